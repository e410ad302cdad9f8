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
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf rolling_keys serve channel uniqueid_of rolling_start rolling_stop poll);

my $dir = scratch();

sub spool {
	my ($name, %kv) = @_;
	return spool_conf("$dir/$name", rolling_keys('0.1', '0.3'), %kv);
}

my $m = spool('m', sync_log => 1, sync_log_chain => 1);
my $d = spool('d');

sub meta_lines {
	my ($conf, $user) = @_;
	my $r = serve($conf, "GET META $user\r\nEXIT\r\n");
	return join("\n", sort grep { /^\* (LSUB|SEEN|SIEVE)/ } split /\r\n/, $r->{out});
}

# What an upstream client (a Cyrus sync_client) sends the chained replica.
sub upstream {
	my ($what, @lines) = @_;
	my $r = serve($m, join('', map { "$_\r\n" } @lines, 'EXIT'));
	is(scalar(() = $r->{out} =~ /^OK success/mg), scalar @lines, $what) or diag($r->{out}, $r->{err});
}

sub status { return channel($m); }

ok_run('folders on the chained replica', 'ctl_mboxlist', '-C', $m, '-i', '-c', 'user.alice',
    'user.alice.Work', 'user.alice.Lists');
my $work = uniqueid_of($m, 'user.alice.Work');
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
my $pid = rolling_start($m, $log, 5, ids_peer($d));

sub carried {
	my ($what) = @_;
	my $want = meta_lines($m, 'alice');
	my $got;
	poll(sub { ($got = meta_lines($d, 'alice')) eq $want && status()->{lag} == 0 });
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
rolling_stop($pid);
# A peer whose replica.db cannot be opened (a directory in its place).
my $d2 = spool('d2');
make_path("$dir/d2/conf/replica.db");
$pid = rolling_start($m, $log, 5, ids_peer($d2));
upstream('another subscription', 'APPLY SUB %(USERID alice MBOXNAME user.alice.Lists)');
my $fail;
poll(sub { ($fail) = grep { $_->{key} eq '@alice' } @{ status()->{failing} }; $fail });
ok($fail, 'a peer that refuses the user\'s data: a failure record keyed @alice') or diag(slurp($log));
is($fail->{code} // '', 'meta', '... its code "meta"');
is($fail->{folder} // '', 'alice', '... shown by the userid');
like($fail->{reason} // '', qr/the peer answered NO /, '... the peer\'s answer its reason')
    or diag($fail->{reason});
ok(!grep({ $_->{key} ne '@alice' } @{ status()->{failing} }), '... and no folder of alice on record')
    or diag(explain(status()->{failing}));
rolling_stop($pid);

done_testing();
