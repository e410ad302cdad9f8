#!/usr/bin/perl
# t7530-spool-sync-rolling-meta.t - rolling replication (spool_sync -R)
# carries a user's own data, not only folders: a chained replica
# (sync_log_chain) that stores subscriptions, seen state and sieve
# scripts from its upstream client (APPLY SUB, UNSUB, SEEN, SIEVE,
# ACTIVATE_SIEVE) journals a user entry for each, durable before its
# OK, and its -R makes its own replica's equal (GET META on both sides
# the same); a user whose data the peer refuses gets a failure record
# keyed "@userid" with the code "meta", which goes once it is carried.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use IdsTest;
use CyrusPeer;

my $dir = scratch();

sub spool {
	my ($name, %kv) = @_;
	make_path("$dir/$name");
	return write_conf("$dir/$name", unixhierarchysep => 'no', hashimapspool => 'no',
	    delete_mode => 'immediate', sync_repeat_interval => '0.05',
	    sync_reconnect_minwait => '0.1', sync_reconnect_maxwait => '0.3', %kv);
}

my $m = spool('m', sync_log => 1, sync_log_chain => 1);
my $d = spool('d');

sub meta_lines {
	my ($conf, $user) = @_;
	my $r = run('spool_sync', '-C', $conf, '--serve', stdin => "GET META $user\r\nEXIT\r\n");
	return join("\n", sort grep { /^\* (LSUB|SEEN|SIEVE)/ } split /\r\n/, $r->{out});
}

# What an upstream client (a Cyrus sync_client) sends the chained replica.
sub upstream {
	my ($what, @lines) = @_;
	my $r = run('spool_sync', '-C', $m, '--serve', stdin => join('', map { "$_\r\n" } @lines, 'EXIT'));
	is(scalar(() = $r->{out} =~ /^OK success/mg), scalar @lines, $what) or diag($r->{out}, $r->{err});
}

sub status {
	my $r = run('spool_sync', '-C', $m, '-s', '--json');
	die "spool_sync -s: $r->{err}" if $r->{rc};
	return decode_json((split /\n/, $r->{out})[0])->{channels}[0];
}

ok_run('folders on the chained replica', 'ctl_mboxlist', '-C', $m, '-i', '-c', 'user.alice',
    'user.alice.Work', 'user.alice.Lists');
my $ms = CyrusPeer::ids_state($m);
my ($work) = grep { $ms->{$_}{name} eq 'user.alice.Work' } keys %$ms;
ok($work, "user.alice.Work's uniqueid");
my $lag0 = status()->{lag};
upstream('subscriptions, a seen item and an active sieve script stored',
    'APPLY SUB %(USERID alice MBOXNAME user.alice.Work)',
    'APPLY SUB %(USERID alice MBOXNAME user.alice.Lists)',
    "APPLY SEEN %(USERID alice UNIQUEID $work LASTREAD 1796524000 LASTUID 2 " .
    'LASTCHANGE 1796524000 SEENUIDS 1:2)',
    "APPLY SIEVE %(USERID alice FILENAME vacation.script LAST_UPDATE 1796524000 CONTENT {6+}\r\nkeep;\n)",
    'APPLY ACTIVATE_SIEVE %(USERID alice FILENAME vacation.script)');
ok(status()->{lag} >= $lag0 + 5, 'each is a journal entry, there before its OK');
my $journal = slurp("$dir/m/conf/sync/journal") // '';
like($journal, qr/^[0-9a-f]{8} \@ alice$/m, "... a user entry ('\@ alice')");

# Crash safety: the replica killed at each failpoint an APPLY SUB
# passes; a subscription stored is never without its user entry.
my $jpath = "$dir/m/conf/sync/journal";
spew("$dir/fp.log", '');
{
	local $ENV{IDS_FAILPOINT_LOG} = "$dir/fp.log";
	upstream('an APPLY SUB, its failpoints counted', 'APPLY SUB %(USERID carol MBOXNAME user.carol.Probe)');
}
my $points = () = slurp("$dir/fp.log") =~ /\n/g;
ok($points >= 3, "... $points failpoint hits");
my @bad;
for my $k (1 .. $points) {
	my $before = -s $jpath;
	my $r;
	{
		local $ENV{IDS_FAILPOINT_CRASH} = $k;
		$r = run('spool_sync', '-C', $m, '--serve',
		    stdin => "APPLY SUB %(USERID carol MBOXNAME user.carol.F$k)\r\nEXIT\r\n");
	}
	my $stored = meta_lines($m, 'carol') =~ /user\.carol\.F$k\b/;
	my $added = substr(slurp($jpath), $before);
	push @bad, "crash at $k: stored without its entry" if $stored && $added !~ /^[0-9a-f]{8} \@ carol$/m;
}
is_deeply(\@bad, [], "killed at each of the $points points: no subscription stored without its entry");

my $log = "$dir/rolling.log";
spew($log, '');
my $pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDOUT, '>>', $log or die;
	open STDERR, '>>', $log or die;
	exec(tool('spool_sync'), '-C', $m, '-v', '-t', '5', '-R', '--', tool('spool_sync'), '-C', $d,
	    '--serve') or die "exec: $!";
}
END { kill 'TERM', $pid if $pid; }

sub carried {
	my ($what) = @_;
	my $want = meta_lines($m, 'alice');
	my $got;
	for (1 .. 100) {
		last if ($got = meta_lines($d, 'alice')) eq $want && status()->{lag} == 0;
		select(undef, undef, undef, 0.1);
	}
	is($got, $want, $what) or diag(slurp($log));
}

my $want = meta_lines($m, 'alice');
like($want, qr/^\* LSUB \(user\.alice\.Lists user\.alice\.Work\)$/m, 'the replica holds the subscriptions');
like($want, qr/^\* SIEVE .*vacation\.script.*ISACTIVE 1/m, '... and the sieve script, active');
carried('-R carries subscriptions, seen state and the sieve script');
is_deeply(CyrusPeer::ids_state($d), CyrusPeer::ids_state($m), '... and the folders');

upstream('an UNSUB, a newer seen item, the script deactivated',
    'APPLY UNSUB %(USERID alice MBOXNAME user.alice.Lists)',
    "APPLY SEEN %(USERID alice UNIQUEID $work LASTREAD 1796525000 LASTUID 3 " .
    'LASTCHANGE 1796525000 SEENUIDS 1:3)',
    'APPLY UNACTIVATE_SIEVE %(USERID alice)');
carried('-R carries the changes');
unlike(meta_lines($d, 'alice'), qr/user\.alice\.Lists/, '... the unsubscribed folder gone there');

# A peer that refuses a user's data: a failure record keyed by the user.
kill 'TERM', $pid;
waitpid($pid, 0);
$pid = 0;
# A peer whose replica.db cannot be opened (a directory in its place).
my $d2 = spool('d2');
make_path("$dir/d2/conf/replica.db");
$pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDOUT, '>>', $log or die;
	open STDERR, '>>', $log or die;
	exec(tool('spool_sync'), '-C', $m, '-v', '-t', '5', '-R', '--', tool('spool_sync'), '-C', $d2,
	    '--serve') or die "exec: $!";
}
upstream('another subscription', 'APPLY SUB %(USERID alice MBOXNAME user.alice.Lists)');
my $fail;
for (1 .. 100) {
	($fail) = grep { $_->{key} eq '@alice' } @{ status()->{failing} };
	last if $fail;
	select(undef, undef, undef, 0.1);
}
ok($fail, 'a peer that refuses the user\'s data: a failure record keyed @alice') or diag(slurp($log));
is($fail->{code} // '', 'meta', '... its code "meta"');
is($fail->{folder} // '', 'alice', '... shown by the userid');
like($fail->{reason} // '', qr/the peer answered NO /, '... the peer\'s answer its reason')
    or diag($fail->{reason});
ok(!grep({ $_->{key} ne '@alice' } @{ status()->{failing} }), '... and no folder of alice on record')
    or diag(explain(status()->{failing}));
kill 'TERM', $pid;
waitpid($pid, 0);
$pid = 0;

done_testing();
