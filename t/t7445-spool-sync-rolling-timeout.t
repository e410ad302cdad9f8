#!/usr/bin/perl
# t7445-spool-sync-rolling-timeout.t - the peer link of spool_sync -R
# times out on writes as on reads: a peer that stops reading in the
# middle of a large APPLY MESSAGE (its socket buffer full) makes the
# write fail after -t seconds, the session is counted lost, and -R goes
# on retrying instead of blocking for ever; without the peer's OK the
# cursor does not move.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(WNOHANG);
use Test::More;
use IdsTest;
use SyncPair qw(spool_conf stuck_peer big_message rolling_start rolling_stop channel poll);

my $dir = scratch();
my $p = spool_conf("$dir/p", sync_log => 1, sync_reconnect_minwait => '0.2',
    sync_reconnect_maxwait => '0.5');
my $peer = stuck_peer("$dir/peer.pl");

is(run('ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice')->{rc}, 0, 'a folder');
is(big_message($p, 'user.alice', "$dir/big.eml")->{rc}, 0,
    'a 7.7 MB message, more than a socket buffer holds');

my $log = "$dir/rolling.log";
my $pid = rolling_start($p, $log, 1, $peer);

my $lost = 0;
poll(sub { $lost = () = slurp($log) =~ /session lost/g; $lost >= 2 });
ok($lost >= 2, "the blocked write timed out and the session was retried ($lost lost)")
    or diag(slurp($log));
like(slurp($log), qr/Resource temporarily unavailable/, '... the write timed out (EAGAIN)');
ok(waitpid($pid, WNOHANG) == 0, '-R is still running');
my $s = channel($p);
ok($s->{lag} > 0 && !defined $s->{last_success}, '-s: nothing acknowledged, the lag kept');
is(rolling_stop($pid), 0, 'SIGTERM ends it, status 0');

done_testing();
