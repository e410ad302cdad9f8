#!/usr/bin/perl
# t7545-spool-sync-fetchguid-bound.t - GET FETCHGUID of a GUID the
# replica holds nowhere searches a bounded number of folders (the
# hinted folder, its owner's folders, then others up to 1000 in all),
# not every folder of the spool; a GUID within the bound is still found:
# in the hinted folder's owner's other folders first, then elsewhere.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf);

my $dir = scratch();
my $c = spool_conf("$dir/s");

ok_run('a user with two folders', 'ctl_mboxlist', '-C', $c, '-i', '-c', 'user.a', 'user.a.Sub');
ok_run('another user with 1,100 folders', 'ctl_mboxlist', '-C', $c, '-i', '-c', 'user.z',
    map { "user.z.f$_" } 1 .. 1100);
ok_run('a message in user.a.Sub', 'spool_append', '-C', $c, '-q', '-i', 'user.a.Sub',
    stdin => "Subject: in a\n\nfirst\n");
ok_run('a message in user.z.f1', 'spool_append', '-C', $c, '-q', '-i', 'user.z.f1',
    stdin => "Subject: in z\n\nsecond\n");
my $st = CyrusPeer::ids_state($c);
my %id = map { ($st->{$_}{name} => $_) } keys %$st;
my ($guid_a) = values %{ $st->{ $id{'user.a.Sub'} }{records} };
my ($guid_z) = values %{ $st->{ $id{'user.z.f1'} }{records} };
ok($guid_a && $guid_z, 'their GUIDs');

sub fetch {
	my ($guid, $hint) = @_;
	return run('spool_sync', '-C', $c, '-v', '--serve',
	    stdin => "GET FETCHGUID %(GUID $guid UNIQUEID $hint)\r\nEXIT\r\n");
}

my $r = fetch('0123456789abcdef0123456789abcdef01234567', $id{'user.a'});
like($r->{out}, qr/^NO IMAP_MAILBOX_NONEXISTENT/m, 'a GUID held nowhere: NO');
my ($n) = $r->{err} =~ /no intact file here \((\d+) folder\(s\) searched/;
ok(defined $n && $n <= 1000, '... after at most 1,000 folders of 1,103 searched (' .
    ($n // 'no count') . ')') or diag($r->{err});

$r = fetch($guid_a, $id{'user.a'});
like($r->{out}, qr/^\* MESSAGE .*\Q$guid_a\E/m, 'a GUID in another folder of the hint\'s owner: found');
$r = fetch($guid_z, $id{'user.a'});
like($r->{out}, qr/^\* MESSAGE .*\Q$guid_z\E/m, 'a GUID in another user\'s folder within the bound: found');

done_testing();
