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
use Test::More;
use IdsTest;
use SyncPair qw(spool_conf rolling_keys channel uniqueid_of rolling_start rolling_stop poll);

my $dir = scratch();

sub spool {
	my ($name, %kv) = @_;
	return spool_conf("$dir/$name", rolling_keys('0.2', '0.4'), %kv);
}

make_path("$dir/p/two");
my $p = spool('p', sync_log => 1, 'partition-two' => "$dir/p/two");
my $r = spool('r');

sub failing {
	my $c = channel($p);
	return ($c->{failing}, $c->{lag});
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
my $pid = rolling_start($p, $log, 5, ids_peer($r));

my ($f, $lag);
poll(sub { ($f, $lag) = failing(); @$f && $lag == 0 });
is(scalar @$f, 1, 'one failure record, the refused folder\'s alone') or diag(explain($f), slurp($log));
is($f->[0]{key}, $id, '... keyed by its uniqueid');
is($f->[0]{code}, 'refused', '... the code "refused"');
is($f->[0]{folder}, $odd, '... its name shown whole');
like($f->[0]{reason}, qr/^the peer answered NO IMAP_PARTITION_UNKNOWN/, '... the peer\'s answer');
ok(uniqueid_of($r, 'user.alice.Work'), 'the other folders replicated');

ok_run('the failing folder renamed', 'ctl_rename', '-C', $p, '-i', $odd, 'user.bob.New Name');
my $attempts = $f->[0]{attempts};
poll(sub {
	($f) = failing();
	@$f == 1 && $f->[0]{folder} eq 'user.bob.New Name' && $f->[0]{attempts} > $attempts;
});
is(scalar @$f, 1, 'renamed while failing: still one record') or diag(explain($f), slurp($log));
is($f->[0]{key}, $id, '... the same key');
is($f->[0]{folder}, 'user.bob.New Name', '... retried under its new name');
ok($f->[0]{attempts} > $attempts, "... its attempts counting on ($f->[0]{attempts})");

make_path("$dir/r/two");
spew($r, slurp($r) . "partition-two: $dir/r/two\n");
poll(sub { ($f) = failing(); !@$f });
is(scalar @$f, 0, 'the replica given the partition: the record goes') or diag(explain($f));
is(uniqueid_of($r, 'user.bob.New Name'), $id, '... the folder there under its new name');
rolling_stop($pid);

done_testing();
