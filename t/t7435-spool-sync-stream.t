#!/usr/bin/perl
# t7435-spool-sync-stream.t - spool_sync --serve applies the RECORD
# list of APPLY MAILBOX as it reads it: a folder of 60,000 records costs
# no more memory than one of 200 (peak RSS of the replica, GNU time's
# %M); a refusal in the middle of the list, or the session cut inside
# it, leaves the old cyrus.index as it was, no cyrus.index.NEW and no
# staging, with the session in step after a refusal; keys sent after
# RECORD are applied (LAST_UID), checked (SINCE_*, refused when they do
# not match), or make the line be read whole (HIGHESTMODSEQ, UNIQUEID).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha1_hex);
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf spool_dir serve answers clean);

my $dir = scratch();
my $bob = CyrusPeer::transcript('03-full-user-sync-bob.wire.txt');

my $n = 0;
sub spool { return spool_conf("$dir/s" . ++$n); }

# An expunged record: needs no file, adds nothing to the CRCs.
sub gone {
	my ($uid) = @_;
	return "%(UID $uid MODSEQ " . ($uid + 1) . " LAST_UPDATED 1796524922 FLAGS (\\Expunged) " .
	    "INTERNALDATE 1796524922 SIZE 100 GUID " . sha1_hex("message $uid") . ")";
}

# A new folder user.carol of $count expunged records, in one line.
sub carol {
	my ($count) = @_;
	return "APPLY MAILBOX %(UNIQUEID c4rol0000000000000000001 MBOXNAME user.carol " .
	    "SYNC_CRC 0 SYNC_CRC_ANNOT 12345678 LAST_UID $count HIGHESTMODSEQ " . ($count + 1) .
	    " RECENTUID 0 RECENTTIME 0 LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 " .
	    "UIDVALIDITY 1796524999 PARTITION default ACL \"carol\tlrswipkxtecdan\t\" OPTIONS P " .
	    "CREATEDMODSEQ 1 FOLDERMODSEQ 1 RECORD (" . join(' ', map { gone($_) } 1 .. $count) .
	    "))\r\n";
}

# ---- memory: flat in the folder's size --------------------------------
# GNU time's %M of the replica: the peak RSS in KiB.
sub peak_rss {
	my ($count) = @_;
	my $conf = spool();
	my $d = spool_dir($conf);
	my $r = run('/usr/bin/time', '-f', '%M', '-o', "$d/rss", tool('spool_sync'), '-C', $conf,
	    '--serve', stdin => carol($count) . "EXIT\r\n");
	is_deeply(answers($r), ['OK success', 'OK Finished'], "a folder of $count records: OK")
	    or diag($r->{err});
	my ($kib) = slurp("$d/rss") =~ /^(\d+)$/m;
	return ($kib, $conf);
}
# the sanitizer's quarantine keeps freed memory (records) alive: keep it small
local $ENV{ASAN_OPTIONS} = join(':', grep { defined } $ENV{ASAN_OPTIONS}, 'quarantine_size_mb=1');
my ($small) = peak_rss(200);
my ($big, $bigconf) = peak_rss(60000);
my $grew = $big - $small;
ok($grew < 16 * 1024, "peak RSS with 60,000 records within 16 MiB of that with 200 " .
    "($small KiB, $big KiB)");
my $st = run('spool_sync', '-C', $bigconf, '--serve', stdin => "GET MAILBOXES (user.carol)\r\nEXIT\r\n");
like($st->{out}, qr/^\* MAILBOX %\(UNIQUEID c4rol0000000000000000001 MBOXNAME user\.carol SYNC_CRC 0 SYNC_CRC_ANNOT 12345678 LAST_UID 60000 /m,
    '... and the folder holds them (LAST_UID 60000)');
clean($bigconf, 'the large folder');

# ---- a refusal in the middle of the list --------------------------------
(my $bobbox = $bob) =~ s/.*(APPLY MAILBOX %\(UNIQUEID fjs9[^\r]*)\r\n.*/$1/s;
my ($rec1) = $bobbox =~ /RECORD \((%\(UID 1 .*)\)\)\z/ or BAIL_OUT('no record in the transcript');
my $head = $bobbox =~ s/ RECORD \(.*\z//sr;

sub index_of {
	my ($conf) = @_;
	return slurp(spool_dir($conf) . '/spool/user/bob/fjs9ohlzg88spsk0mehkmhp9/cyrus.index');
}

my $conf = spool();
my $r = serve($conf, $bob);
is($r->{rc}, 0, "bob's full sync") or diag($r->{err});
my $before = index_of($conf);
# records 2..40 expunged (fine), then uid 41 without a file: refused there
my $bad = $head =~ s/LAST_UID 1 /LAST_UID 41 /r . " RECORD ($rec1 " .
    join(' ', map { gone($_) } 2 .. 40) . ' ' . (gone(41) =~ s/\\Expunged//r) . ' ' .
    join(' ', map { gone($_) } 42 .. 60) . "))\r\n";
$r = serve($conf, $bad . "NOOP\r\nEXIT\r\n");
my @a = @{answers($r)};
like($a[0] // '', qr/^NO /, 'a record without its file in the middle of the list: NO');
is_deeply([@a[1, 2]], ['OK Noop completed', 'OK Finished'], '... and the session is in step');
is(index_of($conf), $before, '... and cyrus.index is as it was');
clean($conf, 'the refusal');

# ---- the session cut inside the list ------------------------------------
my $good = $head =~ s/LAST_UID 1 /LAST_UID 60 /r =~ s/HIGHESTMODSEQ 2 /HIGHESTMODSEQ 61 /r .
    " RECORD ($rec1 " . join(' ', map { gone($_) } 2 .. 60) . "))\r\n";
my $start = index($good, 'RECORD (');
my @bad;
for my $cut (map { $start + int(($_ / 12) * (length($good) - 2 - $start)) } 0 .. 12) {
	$r = serve($conf, substr($good, 0, $cut));
	push @bad, "cut at $cut: answered OK" if grep { /^OK/ } @{answers($r)};
	push @bad, "cut at $cut: cyrus.index changed" if index_of($conf) ne $before;
}
is_deeply(\@bad, [], 'cut at 13 offsets inside the RECORD list: nothing applied');
clean($conf, 'the cuts');
$r = serve($conf, $good . "EXIT\r\n");
is_deeply(answers($r), ['OK success', 'OK Finished'], 'the whole line then applies') or diag($r->{err});

# ---- keys after RECORD ------------------------------------------------
$conf = spool();
serve($conf, $bob);
$before = index_of($conf);
my $since_bad = $head =~ s/LAST_UID 1 /LAST_UID 2 /r =~ s/HIGHESTMODSEQ 2 /HIGHESTMODSEQ 3 /r .
    " RECORD ($rec1 " . gone(2) . ") SINCE_MODSEQ 1 SINCE_CRC 7 SINCE_CRC_ANNOT 7)\r\n";
$r = serve($conf, $since_bad . "EXIT\r\n");
like(answers($r)->[0], qr/^NO IMAP_SYNC_CHANGED/, 'SINCE_* after RECORD that do not match: IMAP_SYNC_CHANGED');
is(index_of($conf), $before, '... and cyrus.index is as it was');
my $late = $head =~ s/LAST_UID 1 //r =~ s/HIGHESTMODSEQ 2 /HIGHESTMODSEQ 3 /r .
    " RECORD ($rec1 " . gone(2) . ") SINCE_MODSEQ 2 SINCE_CRC 2446628501 " .
    "SINCE_CRC_ANNOT 3051573483 LAST_UID 2)\r\n";
$r = serve($conf, $late . "GET MAILBOXES (user.bob)\r\nEXIT\r\n");
is(answers($r)->[0], 'OK success', 'matching SINCE_* and LAST_UID after RECORD: applied') or diag($r->{err});
like($r->{out}, qr/^\* MAILBOX %\(UNIQUEID fjs9ohlzg88spsk0mehkmhp9 MBOXNAME user\.bob SYNC_CRC 2446628501 SYNC_CRC_ANNOT 3051573483 LAST_UID 2 HIGHESTMODSEQ 3 /m,
    '... with the LAST_UID sent after the records');
my $whole = $head =~ s/LAST_UID 1 /LAST_UID 3 /r =~ s/HIGHESTMODSEQ 2 //r .
    " RECORD ($rec1 " . gone(2) . ' ' . gone(3) . ") HIGHESTMODSEQ 4)\r\n";
$r = serve($conf, $whole . "GET MAILBOXES (user.bob)\r\nEXIT\r\n");
is(answers($r)->[0], 'OK success', 'HIGHESTMODSEQ after RECORD: the line read whole, applied')
    or diag($r->{err});
like($r->{out}, qr/ LAST_UID 3 HIGHESTMODSEQ 4 /, '... with both');
my $uid_late = $head =~ s/UNIQUEID fjs9ohlzg88spsk0mehkmhp9 //r =~ s/LAST_UID 1 /LAST_UID 4 /r =~
    s/HIGHESTMODSEQ 2 /HIGHESTMODSEQ 5 /r . " RECORD ($rec1 " . join(' ', map { gone($_) } 2 .. 4) .
    ") UNIQUEID fjs9ohlzg88spsk0mehkmhp9)\r\n";
$r = serve($conf, $uid_late . "GET MAILBOXES (user.bob)\r\nEXIT\r\n");
is(answers($r)->[0], 'OK success', 'UNIQUEID after RECORD: the line read whole, applied')
    or diag($r->{err});
like($r->{out}, qr/ LAST_UID 4 HIGHESTMODSEQ 5 /, '... to the folder of that uniqueid');
clean($conf, 'late keys');

done_testing();
