#!/usr/bin/perl
# t7540-spool-sync-rolling-failures.t - rolling replication's failure
# records are found by key, never by the text of a log line: a refused
# folder whose name holds a space (and ": ") gets one record, keyed by
# its uniqueid with the code "refused", and no other folder of its
# session is put on record; renamed while it fails, it keeps that
# record (the same key, its attempts counting on, its new name shown)
# and is retried under its new name; once the peer takes it the record
# goes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;

my $dir = scratch();

sub spool {
	my ($name, %kv) = @_;
	make_path("$dir/$name");
	return write_conf("$dir/$name", unixhierarchysep => 'no', hashimapspool => 'no',
	    delete_mode => 'immediate', sync_repeat_interval => '0.05',
	    sync_reconnect_minwait => '0.2', sync_reconnect_maxwait => '0.4', %kv);
}

make_path("$dir/p/two");
my $p = spool('p', sync_log => 1, 'partition-two' => "$dir/p/two");
my $r = spool('r');

sub failing {
	my $x = run('spool_sync', '-C', $p, '-s', '--json');
	die "spool_sync -s: $x->{err}" if $x->{rc};
	my $c = decode_json((split /\n/, $x->{out})[0])->{channels}[0];
	return ($c->{failing}, $c->{lag});
}

sub uniqueid_of {
	my ($conf, $name) = @_;
	my $s = CyrusPeer::ids_state($conf);
	return (grep { $s->{$_}{name} eq $name } keys %$s)[0];
}

my $odd = 'user.bob.My Folder: old';
ok_run('folders', 'ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice', 'user.alice.Work', 'user.bob');
my $p2 = "$dir/p/two.conf";
spew($p2, slurp($p) =~ s/^defaultpartition: .*$/defaultpartition: two/mr);
ok_run('a folder on a partition the replica lacks, its name with a space and ": "',
    'ctl_mboxlist', '-C', $p2, '-i', '-c', $odd);
my $id = uniqueid_of($p, $odd);
ok($id, '... its uniqueid');

my $log = "$dir/rolling.log";
spew($log, '');
my $pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDOUT, '>>', $log or die;
	open STDERR, '>>', $log or die;
	exec(tool('spool_sync'), '-C', $p, '-v', '-t', '5', '-R', '--', tool('spool_sync'), '-C', $r,
	    '--serve') or die "exec: $!";
}
END { kill 'TERM', $pid if $pid; }

my ($f, $lag);
for (1 .. 100) {
	($f, $lag) = failing();
	last if @$f && $lag == 0;
	select(undef, undef, undef, 0.1);
}
is(scalar @$f, 1, 'one failure record, the refused folder\'s alone') or diag(explain($f), slurp($log));
is($f->[0]{key}, $id, '... keyed by its uniqueid');
is($f->[0]{code}, 'refused', '... the code "refused"');
is($f->[0]{folder}, $odd, '... its name shown whole');
like($f->[0]{reason}, qr/^the peer answered NO IMAP_PARTITION_UNKNOWN/, '... the peer\'s answer');
ok(uniqueid_of($r, 'user.alice.Work'), 'the other folders replicated');

ok_run('the failing folder renamed', 'ctl_rename', '-C', $p, '-i', $odd, 'user.bob.New Name');
my $attempts = $f->[0]{attempts};
for (1 .. 100) {
	($f) = failing();
	last if @$f == 1 && $f->[0]{folder} eq 'user.bob.New Name' && $f->[0]{attempts} > $attempts;
	select(undef, undef, undef, 0.1);
}
is(scalar @$f, 1, 'renamed while failing: still one record') or diag(explain($f), slurp($log));
is($f->[0]{key}, $id, '... the same key');
is($f->[0]{folder}, 'user.bob.New Name', '... retried under its new name');
ok($f->[0]{attempts} > $attempts, "... its attempts counting on ($f->[0]{attempts})");

make_path("$dir/r/two");
spew($r, slurp($r) . "partition-two: $dir/r/two\n");
for (1 .. 100) {
	($f) = failing();
	last if !@$f;
	select(undef, undef, undef, 0.1);
}
is(scalar @$f, 0, 'the replica given the partition: the record goes') or diag(explain($f));
is(uniqueid_of($r, 'user.bob.New Name'), $id, '... the folder there under its new name');
kill 'TERM', $pid;
waitpid($pid, 0);
$pid = 0;

done_testing();
