#!/usr/bin/perl
# t7548-spool-sync-default-options.t - mailbox_default_options, as Cyrus
# 3.6.1 honours it: a folder made here (ctl_mboxlist -c, not a
# replica's apply) gets those option bits and OPT_POP3_NEW_UIDL, the
# same OPTIONS a real Cyrus with the same setting gives a folder it
# creates (IMAP CREATE there, GET USER over sync_server -X); a value
# that is not a number refuses the create (exit 1), nothing made.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf folder_options);

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

# OPT_IMAP_SHAREDSEEN (1 << 2) | OPT_IMAP_DUPDELIVER (1 << 3)
my $cy = CyrusPeer->new("$dir/cyrus", mailbox_default_options => 12);
$cy->imap('admin', 'CREATE user.zed');
$cy->imap('zed', 'CREATE Work');
my $want = folder_options('zed', $cy->sync_cmd);
is_deeply($want, { 'user.zed' => 'PSD', 'user.zed.Work' => 'PSD' },
    'Cyrus with mailbox_default_options 12 creates folders with OPTIONS PSD');

my $a = spool_conf("$dir/a", mailbox_default_options => 12);
my $r = run('ctl_mboxlist', '-C', $a, '-i', '-c', 'user.zed', 'user.zed.Work');
is($r->{rc}, 0, 'ctl_mboxlist -c here, with the same setting') or diag($r->{err});
is_deeply(folder_options('zed', ids_peer($a)), $want, '... the same OPTIONS as Cyrus');

my $b = spool_conf("$dir/b", mailbox_default_options => 'twelve');
$r = run('ctl_mboxlist', '-C', $b, '-i', '-c', 'user.yan');
is($r->{rc}, 3, 'mailbox_default_options not a number: the configuration is refused at load (exit 3, as Cyrus refuses it)');
like($r->{err}, qr/^ctl_mboxlist: \Q$b\E:\d+: mailbox_default_options: 'twelve' is not a whole number/m,
    '... saying where and why') or diag($r->{err});
$r = run('spool_sync', '-C', $b, '-s');
is($r->{rc}, 3, '... by every tool, one that creates no folder included') or diag($r->{err});
spew($b, slurp($b) =~ s/twelve/12/r);
is_deeply(folder_options('yan', ids_peer($b)), {}, '... and nothing was made');

done_testing();
