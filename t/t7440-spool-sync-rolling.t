#!/usr/bin/perl
# t7440-spool-sync-rolling.t - rolling replication (spool_sync -R) from
# one idspool spool to two others over pipes, each replica on its own
# channel of the change journal (sync_log_channels: a b):
#
#  - deliveries, creates, a rename and a delete carried by -R on both
#    channels, each replica equal to the primary by uniqueid;
#  - the peer killed mid-session (a crash at a failpoint of its apply),
#    then down for a while: -R does not exit, the lag shows in -s, and
#    it converges once the peer is back;
#  - a folder the peer refuses (a partition it lacks) gets a failure record (-s, --json: reason,
#    attempts, next retry) while the other folders still replicate; the
#    record goes once the peer takes it;
#  - a folder whose writer keeps its lock gets a failure record ("a
#    writer still holds its lock") while the rest replicates;
#  - a replica with sync_log_chain journals the applies it receives;
#  - SIGTERM ends -R with status 0; --drain leaves the peer equal and
#    the writers fenced (exit 75, the fence named) until --unfence; a
#    drain against a peer that is not equal fails and releases the fence.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use JSON::PP;
use POSIX qw(WNOHANG);
use Fcntl qw(F_SETLK F_WRLCK);
use Compress::Zlib qw(crc32);
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf rolling_keys ok_append uniqueid_of channel rolling_start rolling_stop);

my $dir = scratch();

sub spool {
	my ($name, %kv) = @_;
	return spool_conf("$dir/$name", rolling_keys('0.1', '0.4'), %kv);
}

make_path("$dir/p/two");
my $p = spool('p', sync_log => 1, sync_log_channels => 'a b', 'partition-two' => "$dir/p/two");
my $ra = spool('ra');
# rb passes what it receives on (sync_log_chain): a chained replica.
my $rb = spool('rb', sync_log => 1, sync_log_chain => 1);

# The peer of channel a, through a script: "down" makes it fail at once
# (the replica host unreachable), "crash" kills it at its 3rd failpoint.
my $wrap = "$dir/peer-a";
spew($wrap, <<"EOF");
#!/bin/sh
[ -e '$dir/down' ] && exit 1
if [ -e '$dir/crash' ]; then
	rm -f '$dir/crash'
	IDS_FAILPOINT_CRASH=3 exec '${\tool('spool_sync')}' -C '$ra' --serve
fi
exec '${\tool('spool_sync')}' -C '$ra' --serve
EOF
chmod 0755, $wrap;

# -R on one channel of the primary (SyncPair's rolling_start: a test
# that dies leaves no rolling client behind).
sub start_rolling {
	my ($channel, $log, @peer) = @_;
	return rolling_start($p, $log, [5, '--channel', $channel], @peer);
}

sub alive { return waitpid($_[0], WNOHANG) == 0; }

# ok_deliver($folder, $text): a test that a message of subject and body
# $text is appended to $folder of the primary (SyncPair's ok_append).
sub ok_deliver {
	my ($folder, $text) = @_;
	return ok_append("deliver to $folder", $p, $folder, "From: x\@example.com\nSubject: $text\n\n$text\n");
}

# Waits up to 20 s for the replica to equal the primary.
sub converges {
	my ($what, $conf) = @_;
	my $want;
	for (1 .. 200) {
		$want = ids_state($p);
		return pass($what) if JSON::PP->new->canonical->encode(ids_state($conf)) eq
		    JSON::PP->new->canonical->encode($want);
		select(undef, undef, undef, 0.1);
	}
	is_deeply(ids_state($conf), $want, $what);
}

# A replica's state read while -R writes to it may see a folder vanish
# between its listing and its path: read again.
sub ids_state {
	for (1 .. 20) {
		my $s = eval { CyrusPeer::ids_state($_[0]) };
		return $s if $s;
		select(undef, undef, undef, 0.1);
	}
	return CyrusPeer::ids_state($_[0]);
}

sub status {
	my $r = run('spool_sync', '-C', $p, '-s', '--json');
	die "spool_sync -s: $r->{err}" if $r->{rc};
	my $s = decode_json((split /\n/, $r->{out})[0]);
	return { map { ($_->{channel} => $_) } @{ $s->{channels} } }, $s;
}

ok_run('folders on the primary', 'ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice',
    'user.alice.Work', 'user.alice.My Folder', 'user.bob', 'user.carol');
ok_deliver('user.alice', 'first');
my ($st) = status();
ok($st->{a}{lag} >= 5 && $st->{b}{lag} == $st->{a}{lag},
    "-s: each channel lags by the journal's entries ($st->{a}{lag})");
is($st->{a}{last_success}, undef, '-s: no success yet');

my $la = "$dir/rolling-a.log";
my $lb = "$dir/rolling-b.log";
my $ca = start_rolling('a', $la, $wrap);
my $cb = start_rolling('b', $lb, tool('spool_sync'), '-C', $rb, '--serve');

converges('-R, channel a: the replica equals the primary', $ra);
converges('-R, channel b: the second replica too', $rb);

ok_deliver('user.alice.Work', 'second');
ok_deliver('user.bob', 'third');
ok_run('a rename on the primary', 'ctl_rename', '-C', $p, '-i', 'user.alice.Work',
    'user.alice.Projects');
ok_run('a delete on the primary', 'ctl_mboxlist', '-C', $p, '-i', '-x', 'user.carol');
converges('a delivery, a rename and a delete carried on channel a', $ra);
converges('... and on channel b', $rb);
my $chain = channel($rb);
ok($chain->{lag} >= 4,
    "sync_log_chain: the replica's applies are in its own journal ($chain->{lag})");
ok(!-e "$dir/ra/conf/sync/journal", 'without sync_log a replica keeps no journal');
my $names = join ' ', sort map { $_->{name} } values %{ ids_state($ra) };
is($names, 'user.alice user.alice.My Folder user.alice.Projects user.bob', '... by name too');

# ---- the peer killed mid-session, then down ---------------------------------
spew("$dir/crash", '');
ok_deliver('user.bob', 'during a crash');
converges('the peer killed mid-session: converged with the next peer', $ra);
ok(!-e "$dir/crash", '... the peer did crash');
like(slurp($la), qr/session lost/, '... the lost session is logged');
ok(alive($ca), '... and -R did not exit');

spew("$dir/down", '');
ok_deliver('user.alice', 'while down');
ok_run('a folder created while down', 'ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice.Later');
converges('channel b goes on while a is down', $rb);
select(undef, undef, undef, 1.0);
($st) = status();
ok($st->{a}{lag} > 0, "-s: channel a lags while its peer is down ($st->{a}{lag})");
is($st->{b}{lag}, 0, '-s: channel b does not');
ok(alive($ca), '-R keeps retrying while the peer is down');
unlink "$dir/down";
converges('the peer back: channel a converges', $ra);
($st) = status();
is($st->{a}{lag}, 0, '-s: no lag once converged');
ok($st->{a}{last_success} && abs($st->{a}{last_success} - time) < 60, '-s: a recent last success');

# ---- a folder the peer refuses --------------------------------------------------
# A folder on a partition of the primary the replica does not have: its
# APPLY MAILBOX is refused (IMAP_PARTITION_UNKNOWN) until the replica's
# configuration gains that partition.
my $p2 = "$dir/p/two.conf";
spew($p2, slurp($p) =~ s/^defaultpartition: .*$/defaultpartition: two/mr);
ok_run('a folder on partition two', 'ctl_mboxlist', '-C', $p2, '-i', '-c', 'user.bob.Two');
ok_deliver('user.alice', 'while refused');
my $fail;
for (1 .. 100) {
	($st) = status();
	($fail) = grep { $_->{folder} eq 'user.bob.Two' } @{ $st->{a}{failing} };
	last if $fail && $st->{a}{lag} == 0;
	select(undef, undef, undef, 0.1);
}
ok($fail, '-s --json: a failure record for the refused folder');
like($fail->{reason} // '', qr/IMAP_PARTITION_UNKNOWN/, '... with the peer\'s reason');
ok(($fail->{attempts} // 0) >= 1 && $fail->{next_retry} >= $fail->{last},
    "... its attempts (@{[ $fail->{attempts} // 0 ]}) and next retry");
is($st->{a}{lag}, 0, '... while the cursor moved on');
my $msgs = sub { scalar keys %{ (grep { $_->{name} eq 'user.alice' } values %{ ids_state($_[0]) })[0]{records} } };
my $n_p = $msgs->($p);
my $n_ra;
for (1 .. 100) { last if ($n_ra = $msgs->($ra)) == $n_p; select(undef, undef, undef, 0.1); }
is($n_ra, $n_p, '... and the other folders still replicate');
my $text = run('spool_sync', '-C', $p, '-s', '--channel', 'a');
like($text->{out}, qr/^    user\.bob\.Two: \d+ attempt\(s\), next retry .*IMAP_PARTITION_UNKNOWN/m,
    '-s lists the failing folder') or diag($text->{out});
unlike($text->{out}, qr/channel b/, '-s --channel a: that channel only');
make_path("$dir/ra/two");
spew($ra, slurp($ra) . "partition-two: $dir/ra/two\n");
converges('the replica given the partition: the refused folder is taken on its retry', $ra);
for (1 .. 50) { ($st) = status(); last unless @{ $st->{a}{failing} }; select(undef, undef, undef, 0.1); }
is(scalar @{ $st->{a}{failing} }, 0, '... and its failure record is gone');

# ---- a folder whose writer holds its lock ---------------------------------------
# A writer of user.bob that keeps its lock (a long migration): its entry
# is in the journal, -R cannot wait for it, so user.bob gets a failure
# record while the rest goes on; once the lock goes, it is carried.
my $bob_id = uniqueid_of($p, 'user.bob');
open my $lk, '+<', "$dir/p/conf/lock/mailbox/$bob_id.lock" or die "lock file: $!";
my $fl = pack('s s x4 q q i x4', F_WRLCK, 0, 0, 0, 0);
fcntl($lk, F_SETLK, $fl) or die "fcntl: $!";
my $entry = "$bob_id -";
open my $jf, '>>', "$dir/p/conf/sync/journal" or die;
printf $jf "%08x %s\n", crc32($entry), $entry;
close $jf;
ok_deliver('user.alice', 'while bob is busy');
for (1 .. 150) {
	($st) = status();
	($fail) = grep { $_->{folder} eq 'user.bob' } @{ $st->{a}{failing} };
	last if $fail && $st->{a}{lag} == 0;
	select(undef, undef, undef, 0.1);
}
like($fail->{reason} // '', qr/a writer still holds its lock/,
    'a folder whose writer holds its lock gets a failure record');
for (1 .. 100) { last if ($n_ra = $msgs->($ra)) == $msgs->($p); select(undef, undef, undef, 0.1); }
is($n_ra, $msgs->($p), '... while the other folders replicate');
close $lk;
ok_deliver('user.bob', 'bob free again');
converges('the lock gone: the folder is carried', $ra);
for (1 .. 50) { ($st) = status(); last unless @{ $st->{a}{failing} }; select(undef, undef, undef, 0.1); }
is(scalar @{ $st->{a}{failing} }, 0, '... and its record is gone');

# ---- SIGTERM, then a drain on channel a --------------------------------------
is(rolling_stop($ca), 0, 'SIGTERM ends -R with status 0');
ok_deliver('user.bob', 'after the stop');
my $dr = run('spool_sync', '-C', $p, '--drain', '--channel', 'a', '--', $wrap);
is($dr->{rc}, 0, '--drain exits 0') or diag($dr->{out}, $dr->{err});
like($dr->{out}, qr/the peer is equal/, '... the peer is equal');
is_deeply(ids_state($ra), ids_state($p), '... and it is');
my $f = run('spool_append', '-C', $p, '-i', 'user.bob', stdin => "Subject: fenced\n\nx\n");
is($f->{rc}, 75, 'a delivery while fenced exits 75');
like($f->{err}, qr/^spool_append: user\.bob: writes are fenced for failover \(spool_sync --drain/m,
    '... saying why');
$f = run('ctl_rename', '-C', $p, '-i', 'user.alice.Projects', 'user.alice.Gone');
is($f->{rc}, 75, 'a rename while fenced exits 75 too');
my (undef, $all) = status();
like($all->{fenced} // '', qr/--drain --channel 'a'/, '-s --json: the fence');
is_deeply(ids_state($ra), ids_state($p), 'nothing changed on the primary while fenced');
ok_run('--unfence', 'spool_sync', '-C', $p, '--unfence');
ok_deliver('user.bob', 'after the fence');

# A drain that cannot end equal: the replica holds a folder the primary
# has no tombstone of, which would have to be copied back here, where
# writes are fenced.  It fails, says why, and releases the fence.
ok_run('a replica-only folder', 'ctl_mboxlist', '-C', $ra, '-i', '-c', 'user.alice.Extra');
$dr = run('spool_sync', '-C', $p, '--drain', '--channel', 'a', '--', $wrap);
is($dr->{rc}, 1, 'a drain against an unequal peer exits 1');
like($dr->{err}, qr/drain: a: the full compare: 1 refusal\(s\), first .*fenced.*; the fence is released/,
    '... with the reason') or diag($dr->{err});
ok_deliver('user.bob', 'after the failed drain');

is(rolling_stop($cb), 0, 'channel b stopped');
my $usage = run('spool_sync', '-C', $p, '-R', '--channel', 'zz', '--', 'true');
is($usage->{rc}, 3, '-R on a channel not in sync_log_channels exits 3');
like($usage->{err}, qr/no channel 'zz' in sync_log_channels/, '... saying so');
$usage = run('spool_sync', '-C', $ra, '-R', '--', 'true');
is($usage->{rc}, 3, '-R without sync_log exits 3');

done_testing();
