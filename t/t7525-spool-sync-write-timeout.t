#!/usr/bin/perl
# t7525-spool-sync-write-timeout.t - the one-shot client's writes time
# out as its reads do: a peer that stops reading in the middle of a
# large APPLY MESSAGE (its socket buffer full) makes spool_sync end
# after -t seconds with "spool_sync: PEER: ...: timed out" and exit 1,
# instead of blocking for ever; nothing of the spool changed, and the
# next push into a real replica carries everything.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf stuck_peer big_message sync_run);

my $dir = scratch();
my $p = spool_conf("$dir/p");
my $rc = spool_conf("$dir/r");
my $peer = stuck_peer("$dir/stuck-peer");

is(run('ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice')->{rc}, 0, 'a folder');
is(big_message($p, 'user.alice', "$dir/big.eml")->{rc}, 0,
    'a 7.7 MB message, more than a socket buffer holds');
my $before = CyrusPeer::ids_state($p);

my $t0 = time;
my $r = run('spool_sync', '-C', $p, '-t', '1', '-u', 'alice', '--', $peer);
my $took = time - $t0;
is($r->{rc}, 1, 'a peer that stops reading: exit 1') or diag($r->{out}, $r->{err});
like($r->{err}, qr{^spool_sync: \Q$peer\E: .*: timed out$}m, '... "spool_sync: PEER: ...: timed out"')
    or diag($r->{err});
ok($took < 20, "... after -t 1, not when the peer ends ($took s)");
is_deeply(CyrusPeer::ids_state($p), $before, 'nothing of the spool changed');

$r = sync_run($p, $rc, '-u', 'alice');
is($r->{rc}, 0, 'the next push into a real replica') or diag($r->{out}, $r->{err});
is_deeply(CyrusPeer::ids_state($rc), CyrusPeer::ids_state($p), '... carries everything');

done_testing();
