#!/usr/bin/perl
# t7490-spool-sync-cyrus-options.t - a folder's OPTIONS as a real Cyrus
# 3.6.1 has them.  Cyrus creates a folder (mboxlist_createmailbox, not
# from a sync) with OPT_POP3_NEW_UIDL, and reports it for any folder
# that holds no message when its index is read; a folder made here with
# ctl_mboxlist -c must do the same, or every push into a real
# sync_server -X finds OPTIONS "" here and P there and sends the folder
# again: the no-op resync broken.
#
#  - ctl_mboxlist -c makes folders whose state says OPTIONS P;
#  - pushed into a fresh real Cyrus (an empty folder, one with mail),
#    the Cyrus side reports the same OPTIONS; a second push sends no
#    APPLY;
#  - an empty folder applied with OPTIONS "" (as an older idspool
#    sends it) reports P, as Cyrus reads such an index.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf sent_applies folder_options);

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

my $a = spool_conf("$dir/a");
ok_run('create', 'ctl_mboxlist', '-C', $a, '-i', '-c', 'user.zed', 'user.zed.Empty', 'user.zed.Mail');
ok_run('deliver', 'spool_append', '-q', '-C', $a, '-i', 'user.zed.Mail',
    stdin => "From: x\@example.com\nSubject: one\n\nbody\n");
is_deeply(folder_options('zed', ids_peer($a)), { 'user.zed' => 'P', 'user.zed.Empty' => 'P',
    'user.zed.Mail' => 'P' }, 'ctl_mboxlist -c: OPTIONS P, as Cyrus creates a folder');

my $cy = CyrusPeer->new("$dir/cyrus");
my $r = ok_run('push into Cyrus', 'spool_sync', '-C', $a, '-v', '-v', '-u', 'zed', '--',
    $cy->sync_cmd);
is_deeply(folder_options('zed', $cy->sync_cmd), folder_options('zed', ids_peer($a)),
    '... the Cyrus side reports the same OPTIONS');
$r = ok_run('push again', 'spool_sync', '-C', $a, '-v', '-v', '-u', 'zed', '--', $cy->sync_cmd);
is(sent_applies($r), 0, '... sends no APPLY') or diag($r->{err});

# An empty folder whose index holds no P (an older idspool, or a sync
# that set OPTIONS ""): reported P, as Cyrus reads such an index.
my $b = spool_conf("$dir/b");
$r = run(ids_peer($b), stdin => "APPLY MAILBOX %(UNIQUEID 0123456789abcdefghijklmn MBOXNAME user.yan " .
    "SYNC_CRC 0 SYNC_CRC_ANNOT 12345678 LAST_UID 0 HIGHESTMODSEQ 1 RECENTUID 0 RECENTTIME 0 " .
    "LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 1700000000 " .
    "PARTITION default ACL \"yan\tlrswipkxtecdan\t\" OPTIONS \"\" RECORD ())\r\nEXIT\r\n");
like($r->{out}, qr/^OK success/m, 'an empty folder applied with OPTIONS ""') or diag($r->{out});
is(folder_options('yan', ids_peer($b))->{'user.yan'}, 'P', '... reports P, as Cyrus does');

done_testing;
