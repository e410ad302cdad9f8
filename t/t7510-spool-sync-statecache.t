#!/usr/bin/perl
# t7510-spool-sync-statecache.t - the state cache (syncstate.db) of a
# no-op resync between two idspool spools, and that no stale entry ever
# makes a changed folder look equal:
#
#  - once the folders have settled (their files 2 s old), a no-op push
#    takes its states from the caches on both sides: no cyrus.index or
#    cyrus.header is opened, on either side, and no GET STATE is sent
#    (MISSING came with GET USER);
#  - GET USER answers the same bytes from a warm cache as from none;
#  - after each way a writer changes a folder whose entry is cached and
#    valid -- an append, a flag changed in place in cyrus.index (a
#    Cyrus-style rewrite of the same size and inode), an expunge, a
#    cyrus.header rewritten (its quota root), a message file removed --
#    on either side, the next push sees it and makes both sides equal;
#  - a damaged syncstate.db is made anew; a client killed as it commits
#    the cache leaves one the next push reads or refuses, and converges.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Compress::Zlib qw(crc32);
use Time::HiRes qw(sleep);
use Test::More;
use IdsTest;
use SyncPair qw(spool_conf spool_dir folder_dir ok_append sync_run ok_sync);

my $dir = scratch();

sub spool { return spool_conf("$dir/$_[0]"); }

sub cfgdir { return spool_dir($_[0]) . '/conf'; }

# The records of a cyrus.index: uid, flags, modseq, guid.
sub records {
	my ($file) = @_;
	my $b = slurp($file);
	my ($minor, $start, $size, $n) = unpack('x8 N N N N', $b);
	my $foff = $minor == 20 ? 36 : 32;
	my @r;
	for my $i (0 .. $n - 1) {
		my $rec = substr($b, $start + $i * $size, $size);
		push @r, { uid => unpack('N', $rec), flags => unpack("x$foff N", $rec),
		    guid => unpack('H40', substr($rec, 60, 20)) };
	}
	return @r;
}

# Cyrus's way of changing a record: written in place, its CRC with it
# (the file keeps its size and inode).
sub set_flags_in_place {
	my ($file, $uid, $or) = @_;
	open(my $fh, '+<', $file) or die "$file: $!";
	binmode $fh;
	local $/;
	my $b = <$fh>;
	my ($minor, $start, $size, $n) = unpack('x8 N N N N', $b);
	my $foff = $minor == 20 ? 36 : 32;
	for my $i (0 .. $n - 1) {
		my $off = $start + $i * $size;
		next unless unpack('N', substr($b, $off, 4)) == $uid;
		my $rec = substr($b, $off, $size - 4);
		my $fl = unpack("x$foff N", $rec) | $or;
		substr($rec, $foff, 4) = pack('N', $fl);
		seek($fh, $off, 0) or die;
		print $fh $rec, pack('N', crc32($rec));
	}
	close($fh) or die;
}

# A no-op push traced: the files each side opens, and the client's lines.
sub traced_push {
	my ($a, $b, $what) = @_;
	my $log = "$dir/strace.$what";
	unlink glob("$log*");
	# LeakSanitizer cannot run under ptrace
	local $ENV{ASAN_OPTIONS} = join(':', grep { length } $ENV{ASAN_OPTIONS} // '', 'detect_leaks=0');
	my $r = run('strace', '-f', '-qq', '-e', 'trace=openat,openat2', '-o', $log,
	    tool('spool_sync'), '-C', $a, '-vv', '-A', '--', ids_peer($b));
	is($r->{rc}, 0, "$what: exits 0") or diag($r->{out}, $r->{err});
	my $t = slurp($log);
	return ($r, scalar(() = $t =~ /cyrus\.index"/g), scalar(() = $t =~ /cyrus\.header"/g));
}

sub settle { sleep 2.2; }

sub push_ab {
	my ($a, $b, $what) = @_;
	return ok_sync($what, $a, $b, '-A');
}

# Both spools hold the same records (uid, flags, GUID) in each folder.
sub same_pair {
	my ($a, $b, $what, @folders) = @_;
	for my $f (@folders) {
		my @ra = records(folder_dir($a, $f) . '/cyrus.index');
		my @rb = records(folder_dir($b, $f) . '/cyrus.index');
		is_deeply(\@rb, \@ra, "$what: $f is the same on both sides");
	}
}

my $a = spool('a');
my $b = spool('b');
my @folders = ('user.alice', 'user.alice.Sent', 'user.alice.Lists', 'user.bob');
ok_run("create $_", 'ctl_mboxlist', '-C', $a, '-i', '-c', $_) for @folders;
for my $f (@folders) {
	for my $i (1 .. 3) {
		ok_append("deliver $i to $f", $a, $f,
		    "From: x\@example.com\nSubject: $f $i\n\n" . ("line $i\n" x (5 * $i)));
	}
}
push_ab($a, $b, 'initial push');
same_pair($a, $b, 'after the initial push', @folders);

# ---- a no-op push from the caches ---------------------------------------------
settle();
my $r = push_ab($a, $b, 'a no-op push fills the caches');
like($r->{out}, qr/^push: 4 folder\(s\) compared, 0 applied/m, '... nothing applied');
ok(-s cfgdir($a) . '/syncstate.db', '... the client keeps syncstate.db');
ok(-s cfgdir($b) . '/syncstate.db', '... and so does the peer');
my ($ni, $nh);
($r, $ni, $nh) = traced_push($a, $b, 'a no-op push from warm caches');
like($r->{out}, qr/^push: 4 folder\(s\) compared, 0 applied/m, '... nothing applied');
is($ni, 0, '... no cyrus.index is opened on either side');
is($nh, 0, '... nor any cyrus.header');
unlike($r->{err}, qr/> GET STATE/, '... and no GET STATE is sent: MISSING came with GET USER');

# what a real Cyrus client reads: the same bytes from a warm cache as from none
sub warm_cold {
	my ($what) = @_;
	my $in = "GET USER alice\r\nGET USER bob\r\nGET MAILBOXES (user.alice.Sent user.bob)\r\n"
	    . "EXIT\r\n";
	my $warm = ok_run("$what: GET USER, warm", ids_peer($b), stdin => $in);
	my $db = cfgdir($b) . '/syncstate.db';
	ok(-s $db, "$what: the peer has a state cache");
	unlink($db, "$db-lock");
	my $cold = ok_run("$what: GET USER, no cache", ids_peer($b), stdin => $in);
	is($warm->{out}, $cold->{out}, "$what: ... answers the same bytes");
	like($cold->{out}, qr/^\* MAILBOX %\(UNIQUEID \S+ MBOXNAME user\.alice\.Sent SYNC_CRC/m,
	    "$what: ... MAILBOX lines as Cyrus prints them");
	unlike($cold->{out}, qr/MISSING/, "$what: ... and no MISSING line unless asked");
}
warm_cold('settled');

# what a plain GET USER stored holds no MISSING list: computed once when asked
($r, $ni, $nh) = traced_push($a, $b, 'a push after plain GET USERs filled the peer\'s cache');
ok($ni > 0, "... the peer reads its folders once for their MISSING lists ($ni)");
($r, $ni, $nh) = traced_push($a, $b, 'the next push');
is($ni, 0, '... then from the cache again');

# ---- every way a writer changes a cached folder is seen ----------------------
my @changes = (
	[ 'an append here', sub {
		ok_append('deliver', $a, 'user.alice',
		    "From: y\@example.com\nSubject: new\n\nnew\n");
	} ],
	[ 'an append on the peer', sub {
		ok_append('deliver', $b, 'user.bob',
		    "From: y\@example.com\nSubject: new\n\nnew on b\n");
	} ],
	[ 'a flag set in place here (same size and inode)', sub {
		my $f = folder_dir($a, 'user.alice.Sent') . '/cyrus.index';
		my @st = stat($f);
		set_flags_in_place($f, 2, 0x2);
		my @st2 = stat($f);
		is("$st2[1] $st2[7]", "$st[1] $st[7]", '... the index kept its inode and size');
	} ],
	[ 'a flag set in place on the peer', sub {
		set_flags_in_place(folder_dir($b, 'user.alice.Lists') . '/cyrus.index', 1, 0x10);
	} ],
	[ 'an expunge here', sub {
		set_flags_in_place(folder_dir($a, 'user.alice.Lists') . '/cyrus.index', 3,
		    0x80000000);
	} ],
	[ 'cyrus.header rewritten here', sub {
		my $f = folder_dir($a, 'user.bob') . '/cyrus.header';
		my $h = slurp($f);
		$h =~ s/\n%\(N /\n%(Q user.bob N / or die "no header record in $f";
		spew("$f.NEW", $h);
		rename("$f.NEW", $f) or die;
	} ],
);
for my $c (@changes) {
	my ($what, $fn) = @$c;
	settle();
	push_ab($a, $b, "before $what: a no-op push");
	$fn->();
	$r = push_ab($a, $b, "after $what: the next push");
	like($r->{out}, qr/^push: \d+ folder\(s\) compared, [1-9]\d* applied/m,
	    "after $what: the push applies it");
	same_pair($a, $b, "after $what", @folders);
	$r = push_ab($a, $b, "after $what: one more push");
	like($r->{out}, qr/^push: \d+ folder\(s\) compared, 0 applied/m, '... has nothing to do');
}
$r = ok_run('GET MAILBOXES of the peer', ids_peer($b),
    stdin => "GET MAILBOXES (user.bob)\r\nEXIT\r\n");
like($r->{out}, qr/^\* MAILBOX %\(.* QUOTAROOT user\.bob /m, 'the quota root reached the peer');

# a file removed on the peer: MISSING, with the state, from the cache
settle();
push_ab($a, $b, 'before a file removed on the peer: a no-op push');
my $db = folder_dir($b, 'user.alice');
my $good = slurp("$db/2.");
unlink("$db/2.") or die;
$r = push_ab($a, $b, 'after a file removed on the peer: the next push');
like($r->{out}, qr/^push: 1 missing or damaged file\(s\) repaired$/m, '... repairs it');
is(slurp("$db/2."), $good, '... the file is back, intact');

# and one removed here: fetched from the peer
settle();
push_ab($a, $b, 'before a file removed here: a no-op push');
my $da = folder_dir($a, 'user.alice.Sent');
$good = slurp("$da/1.");
unlink("$da/1.") or die;
$r = push_ab($a, $b, 'after a file removed here: the next push');
like($r->{out}, qr/^push: 1 missing or damaged file\(s\) repaired$/m, '... repairs it');
is(slurp("$da/1."), $good, '... the file is back, intact');

settle();
push_ab($a, $b, 'settled after the changes, a push');
warm_cold('after the changes');

# ---- the cache file itself -------------------------------------------------------
spew(cfgdir($a) . '/syncstate.db', 'not an LMDB file' x 512);
unlink(cfgdir($a) . '/syncstate.db-lock');
$r = push_ab($a, $b, 'a damaged syncstate.db');
unlike($r->{err}, qr/state cache/, '... is made anew without a word');
like($r->{out}, qr/^push: 4 folder\(s\) compared, 0 applied/m, '... nothing applied');

# a value whose bytes changed under its CRC (a torn or damaged write) is a miss
settle();
push_ab($a, $b, 'settled, a push fills the cache again');
{
	my $db = cfgdir($a) . '/syncstate.db';
	# The dump in hex (mdb_dump's -p form is not read back by lmdb-utils
	# 0.9.24's mdb_load when a value holds a backslash, which it prints
	# raw: a binary value then failed the test now and then); each line
	# of data decoded, changed, encoded again.
	my $dump = `mdb_dump -n $db`;
	my $n = 0;
	$dump =~ s{^ ([0-9a-f]+)$}{
		my $v = pack('H*', $1);
		$n += $v =~ s/(SYNC_CRC )(\d)/$1 . (($2 + 1) % 10)/ge;
		' ' . unpack('H*', $v);
	}gem;
	ok($n >= 4, "the cached states' SYNC_CRC changed in $n values, their CRC not");
	unlink($db, "$db-lock");
	open(my $fh, '|-', "mdb_load -n -f /dev/stdin $db") or die;
	print $fh $dump;
	close($fh) or die "mdb_load: $?";
	$r = push_ab($a, $b, 'a push with those values');
	like($r->{out}, qr/^push: 4 folder\(s\) compared, 0 applied/m,
	    '... believes none of them: nothing applied');
	($r, $ni, $nh) = traced_push($a, $b, '... and then the cache is whole again');
	is($ni, 0, '... a no-op push opens no cyrus.index');
}

settle();
unlink(cfgdir($a) . '/syncstate.db', cfgdir($a) . '/syncstate.db-lock');
{
	local $ENV{IDS_FAILPOINT_CRASH} = '1:sync.statecache_commit';
	$r = sync_run($a, $b, '-A');
}
is($r->{rc}, 137, 'the client killed as it commits the cache (SIGKILL)');
ok_append('deliver after the crash', $a, 'user.alice',
    "From: z\@example.com\nSubject: after\n\nafter the crash\n");
$r = push_ab($a, $b, 'the next push');
like($r->{out}, qr/^push: 4 folder\(s\) compared, 1 applied/m, '... sees the change');
same_pair($a, $b, 'after the crash', @folders);
settle();
push_ab($a, $b, 'settled, a no-op push');
($r, $ni, $nh) = traced_push($a, $b, 'then another');
is($ni, 0, '... a no-op push reads the caches again');

done_testing();
