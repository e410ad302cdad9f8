#!/usr/bin/perl
# t7520-spool-sync-drain-replica.t - the fence of spool_sync --drain holds
# the replica's applies too.  A spool that is both a replica (spool_sync
# --serve, fed by an upstream primary: chained replication) and a
# primary being drained must not change after its drain found its own
# peer equal: while fenced, every APPLY an upstream client sends it is
# answered NO IMAP_MAILBOX_LOCKED with the fence's reason (the client
# counts the folder failed, exits 1 and tries again later), nothing of
# the spool changes, and after --unfence the same push goes through.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf ok_append sync_run);

my $dir = scratch();

sub spool {
	my ($name, %kv) = @_;
	return spool_conf("$dir/$name", delete_mode => 'immediate', %kv);
}

# up -> mid (a replica without sync_log_chain) ; mid -> down (drained)
my $up = spool('up');
my $mid = spool('mid', sync_log => 1);
my $down = spool('down');

# ok_deliver($folder, $text): a test that a message of subject and body
# $text is appended to $folder upstream (SyncPair's ok_append).
sub ok_deliver {
	my ($folder, $text) = @_;
	return ok_append("deliver to $folder", $up, $folder, "From: x\@example.com\nSubject: $text\n\n$text\n");
}

sub push_up { return sync_run($up, $mid, '-u', 'alice'); }

ok_run('folders upstream', 'ctl_mboxlist', '-C', $up, '-i', '-c', 'user.alice',
    'user.alice.Work');
ok_deliver('user.alice', 'first');
my $r = push_up();
is($r->{rc}, 0, 'upstream pushes into the replica') or diag($r->{out}, $r->{err});
is_deeply(CyrusPeer::ids_state($mid), CyrusPeer::ids_state($up), '... which equals it');

$r = sync_run($mid, $down, '--drain');
is($r->{rc}, 0, 'the replica, drained into its own peer: exit 0') or diag($r->{out}, $r->{err});
my $before = CyrusPeer::ids_state($mid);
is_deeply(CyrusPeer::ids_state($down), $before, '... its peer is equal');

ok_deliver('user.alice', 'while fenced');
ok_run('a new folder upstream', 'ctl_mboxlist', '-C', $up, '-i', '-c', 'user.alice.New');
$r = push_up();
is($r->{rc}, 1, 'a push into the fenced replica exits 1') or diag($r->{out}, $r->{err});
like($r->{err}, qr/the peer answered NO IMAP_MAILBOX_LOCKED writes are fenced for failover \(spool_sync --drain/,
    '... the replica answered NO with the fence as its reason') or diag($r->{err});
unlike($r->{out}, qr/ 0 failed/, '... and the folders are counted failed') or diag($r->{out});
is_deeply(CyrusPeer::ids_state($mid), $before, 'nothing changed on the fenced spool');
is_deeply(CyrusPeer::ids_state($down), $before, '... which still equals its drained peer');

ok_run('--unfence', 'spool_sync', '-C', $mid, '--unfence');
$r = push_up();
is($r->{rc}, 0, 'after --unfence the same push goes through') or diag($r->{out}, $r->{err});
is_deeply(CyrusPeer::ids_state($mid), CyrusPeer::ids_state($up), '... and the replica equals upstream');

done_testing();
