#!/usr/bin/perl
# t6000-spool-audit.t - spool_audit: a clean spool, each kind of damage
# found with its detail (text and JSON), a replica compared by uniqueid
# after it diverged, and the repair of missing and corrupt messages from
# it, which heals exactly those and deletes nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Compress::Zlib qw(crc32);
use File::Path qw(make_path);
use JSON::PP;
use Test::More;
use IdsTest;

my $dir = scratch();
my $top = "$FindBin::Bin/..";
my $all_err = '';

sub audit {
	my ($conf, @args) = @_;
	my $r = run('spool_audit', '-C', $conf, @args);
	$all_err .= $r->{err};
	return $r;
}

sub ok_rc {
	my ($what, $r) = @_;
	is($r->{rc}, 0, $what) or diag($r->{err});
}

# A spool of its own: conf, ctl_mboxlist -c, spool_append.  Deletes
# are immediate: the leftovers of a deleted folder are the point.
sub spool {
	my ($name) = @_;
	make_path("$dir/$name");
	return write_conf("$dir/$name", delete_mode => 'immediate');
}

# A copy of a whole spool (config directory included) with its own conf.
sub replica {
	my ($from, $to) = @_;
	system('cp', '-a', "$dir/$from", "$dir/$to") == 0 or die "cp -a: $?";
	return write_conf("$dir/$to", delete_mode => 'immediate');
}

my $conf = spool('a');
ok_rc('folders created', run('ctl_mboxlist', '-C', $conf, '-c', 'user/john',
    'user/john/Sent', 'user/john/Archive', 'user/mary@example.com', 'shared/news'));

my %msg;
for my $i (1 .. 6) {
	$msg{$i} = "From: a\@example.com\r\nSubject: message $i\r\n\r\nbody of $i\r\n" . ('x' x (100 * $i));
	spew("$dir/m$i", $msg{$i});
}
ok_rc('john gets four messages', run('spool_append', '-q', '-C', $conf, 'user/john',
    map { "$dir/m$_" } 1 .. 4));
ok_rc('Sent gets a copy of message 1 and message 5', run('spool_append', '-q', '-C', $conf,
    'user/john/Sent', "$dir/m1", "$dir/m5"));
ok_rc('Archive gets message 2', run('spool_append', '-q', '-C', $conf, 'user/john/Archive',
    "$dir/m2"));
ok_rc('mary gets message 6', run('spool_append', '-q', '-C', $conf, 'user/mary@example.com',
    "$dir/m6"));

# Folder directories by external name ("user/john", mbpath without -i,
# unlike SyncPair's folder_dir), from the resolver, checked to exist.
sub folder_dir_ext {
	my ($c, $name) = @_;
	my $r = run('mbpath', '-C', $c, $name);
	my ($d) = $r->{out} =~ /^(\S+)/;
	die "mbpath $name: $r->{err}" unless $d && -d $d;
	return $d;
}
my $inbox = folder_dir_ext($conf, 'user/john');
my $sent = folder_dir_ext($conf, 'user/john/Sent');
my $mary = folder_dir_ext($conf, 'user/mary@example.com');
ok(-f "$inbox/4." && -f "$sent/2." && -f "$mary/1.", 'the message files are where mbpath says');

# ---- usage ----------------------------------------------------------

{
	my $r = run('spool_audit', '--help');
	is($r->{rc}, 0, '--help exits 0');
	my $man = `mandoc -T ascii '$top/src/spool_audit/spool_audit.8'`;
	$man =~ s/.\x08//g;
	my ($syn) = $man =~ /\nSYNOPSIS\n(.*?)\n\n/s;
	(my $help = $r->{out}) =~ s/^usage: //;
	$help =~ s/\n\n.*//s;
	s/\s+/ /g, s/^ | $//g for $syn, $help;
	is($help, $syn, '--help matches the man page SYNOPSIS');
	like(run('spool_audit', '--version')->{out}, qr/^spool_audit \(idspool\) \S+$/, '--version');
	my $lint = `mandoc -T lint -W warning '$top/src/spool_audit/spool_audit.8' 2>&1`;
	is($lint, '', 'the man page is clean under mandoc -T lint');
	for my $args (['--compare', 'x', '--repair-from', 'y'], ['--md5'], ['-n'], ['-j', '0'],
	    ['-j', 'x'], ['-u', 'john', 'user/john'], ['--bogus']) {
		$r = run('spool_audit', '-C', $conf, @$args);
		is($r->{rc}, 2, "usage error: @$args");
		like($r->{err}, qr/^usage: spool_audit/m, "... prints the usage: @$args");
	}
	$r = run('spool_audit', '-C', "$dir/none.conf");
	is($r->{rc}, 3, 'a missing configuration: exit status 3');
	my $empty = spool('empty');
	$r = run('spool_audit', '-C', $empty);
	is($r->{rc}, 3, 'a missing mailboxes.db: exit status 3');
	like($r->{err}, qr/^spool_audit: .*mailboxes\.db: /, '... naming it');
	$r = run('spool_audit', '-C', $conf, '--compare', "$dir/none.conf");
	is($r->{rc}, 3, 'a missing other configuration: exit status 3');
	$r = run('spool_audit', '-C', $conf, '--repair-from', $empty);
	is($r->{rc}, 3, 'another spool without mailboxes.db: exit status 3');
}

# ---- a clean spool ----------------------------------------------------

for my $j (1, 2) {
	my $r = audit($conf, '-j', $j, '-v');
	ok_rc("a clean spool: exit status 0 (-j $j)", $r);
	is($r->{out}, '', "... and no findings (-j $j)");
	like($r->{err}, qr/5 folders, 8 message files, \d+ bytes hashed; 0 findings/,
	    "... -v counts folders and files (-j $j)");
}
is(audit($conf, '--json')->{out}, '', '--json: no findings, no output');

my $rconf = replica('a', 'b');
ok_rc('a fresh replica compares clean', audit($conf, '--compare', $rconf, '--md5'));
my $sconf = replica('a', 's');		# for damage repair cannot heal

# ---- damage -----------------------------------------------------------

sub sha1hex { require Digest::SHA; return Digest::SHA::sha1_hex($_[0]); }

my $bad = $msg{2};
substr($bad, 10, 1) = 'X';
spew("$inbox/2.", $bad);
unlink("$inbox/3.") or die;
spew("$sent/99.", "orphan\n");

my @lines;
{
	my $r = audit($conf);
	is($r->{rc}, 1, 'findings: exit status 1');
	@lines = split /\n/, $r->{out};
	is(scalar @lines, 3, 'three findings') or diag($r->{out});
	is($lines[0], "user/john: uid 2: file-guid: $inbox/2.: expected " . sha1hex($msg{2})
	    . ', actual ' . sha1hex($bad), 'a corrupt byte: the GUID and the SHA-1 found');
	is($lines[1], "user/john: uid 3: file-missing: $inbox/3.: expected " . length($msg{3})
	    . ' bytes, sha1 ' . sha1hex($msg{3}) . ', actual absent', 'a deleted file');
	is($lines[2], "user/john/Sent: uid 99: orphan: $sent/99.: expected no file (no record), "
	    . 'actual 7 bytes', 'an orphan');

	$r = audit($conf, '--json', '-j', '1');
	my @j = map { decode_json($_) } split /\n/, $r->{out};
	is(scalar @j, 3, '--json: one object per line');
	my ($uid) = `cat '$inbox/cyrus.header'` =~ / I (\S+) /;
	is_deeply($j[0], { kind => 'file-guid', folder => 'user/john', uniqueid => $uid, uid => 2,
	    path => "$inbox/2.", expected => sha1hex($msg{2}), actual => sha1hex($bad) },
	    '--json: kind, folder, uniqueid, uid, path, expected, actual');
	is($j[1]{kind}, 'file-missing', '--json: the missing file');
	is($j[2]{kind}, 'orphan', '--json: the orphan');

	$r = audit($conf, '-i', 'user.mary', 'example.com!user.mary');
	like($r->{out}, qr/^user\.mary: mailboxes-db: expected a live mailbox, actual no such mailbox$/m,
	    'NAME: an unknown name is a finding');
	is(scalar(() = $r->{out} =~ /\n/g), 1, '... and the named clean folder has none');
	is(audit($conf, '-u', 'mary@example.com')->{rc}, 0, '-u: only that user\'s folders');
	$r = audit($conf, '-u', 'john', '-q');
	is($r->{rc}, 1, '-u john: findings');
	is($r->{out}, '', '-q prints nothing');
}

# ---- compare with a replica that diverged ---------------------------

# Rewrites one record of a v17 cyrus.index: flags OR'ed in, counts and CRCs fixed.
sub set_flags {
	my ($index, $uid, $flags) = @_;
	my $d = slurp($index);
	my ($start, $rsize, $n) = unpack('N3', substr($d, 12, 12));
	for my $i (0 .. $n - 1) {
		my $off = $start + $i * $rsize;
		next unless unpack('N', substr($d, $off, 4)) == $uid;
		my $old = unpack('N', substr($d, $off + 32, 4));
		my $new = $old | $flags;
		substr($d, $off + 32, 4) = pack('N', $new);
		substr($d, $off + 108, 4) = pack('N', crc32(substr($d, $off, 108)));
		my ($exists, $unseen) = (unpack('N', substr($d, 84, 4)), unpack('N', substr($d, 124, 4)));
		$exists-- if ($new & 0x80000000) && !($old & 0x80000000);
		$unseen-- if !($old & 0x80000010) && ($new & 0x80000010);
		substr($d, 84, 4) = pack('N', $exists);
		substr($d, 124, 4) = pack('N', $unseen);
		substr($d, 156, 4) = pack('N', crc32(substr($d, 0, 156)));
		spew($index, $d);
		return;
	}
	die "uid $uid not in $index";
}

my $rinbox = folder_dir_ext($rconf, 'user/john');
my $rmary = folder_dir_ext($rconf, 'user/mary@example.com');
set_flags("$rinbox/cyrus.index", 1, 0x80000000);		# expunged there
set_flags("$rinbox/cyrus.index", 4, 0x10);			# \Seen there
unlink("$rmary/1.") or die;					# lost there
ok_rc('a folder renamed on the replica', run('ctl_rename', '-q', '-C', $rconf,
    'user/john/Archive', 'user/john/Old'));
ok_rc('a message only the replica has', run('spool_append', '-q', '-C', $rconf, 'user/john',
    "$dir/m5"));
ok_rc('a folder only the replica has', run('ctl_mboxlist', '-C', $rconf, '-c', 'user/john/New'));

{
	my $r = audit($conf, '--compare', $rconf);
	is($r->{rc}, 1, '--compare: differences are findings');
	my $out = $r->{out};
	like($out, qr{^user/john/Archive: name: expected user/john/Archive, actual user/john/Old$}m,
	    'a renamed folder is matched by uniqueid and its new name reported');
	unlike($out, qr{only-here|Archive: cmp-}, '... and nothing else differs in it');
	like($out, qr{^user/john: uid 1: cmp-uid: expected live, actual expunged$}m,
	    'an expunge on one side');
	like($out, qr{^user/john: uid 4: cmp-flags: expected none, actual \\Seen$}m, 'a flag change');
	like($out, qr{^user/john: uid 5: cmp-uid: expected absent, actual live$}m,
	    'a message only there');
	like($out, qr{^user/john: cmp-uidnext: expected 5, actual 6$}m, 'UIDNEXT');
	like($out, qr{^user/john: cmp-unseen: expected 4, actual 3$}m, 'UNSEEN');
	unlike($out, qr{cmp-exists}, 'EXISTS: one expunged, one delivered');
	like($out, qr{^user/mary\@example\.com: uid 1: there-file: \Q$rmary\E/1\.: expected }m,
	    'the replica\'s lost file');
	my $g6 = sha1hex($msg{6});
	like($out, qr{^user/mary\@example\.com: MISSING \(GUID $g6\)$}m,
	    'MISSING (GUID ...) lists what the replica lacks');
	like($out, qr{^\(there\) user/john/New: only-there: expected absent, actual user/john/New$}m,
	    'a folder only the replica has');
	like($out, qr{^user/john: uid 2: file-guid: }m, 'the audit of this side runs too');

	$r = audit($conf, '--compare', $rconf, '--md5', '--json');
	my @j = map { decode_json($_) } split /\n/, $r->{out};
	my ($md5) = grep { $_->{kind} eq 'cmp-md5' } @j;
	is($md5->{uid}, 2, '--md5: the corrupt message\'s MD5 differs');
	require Digest::MD5;
	is($md5->{actual}, Digest::MD5::md5_hex($msg{2}), '... the replica\'s MD5 of its file');
	my ($miss) = grep { $_->{kind} eq 'missing' } @j;
	is_deeply($miss->{guids}, [$g6], '--json: MISSING as a list of GUIDs');
	my ($name) = grep { $_->{kind} eq 'name' } @j;
	is($name->{other_folder}, 'user/john/Old', '--json: other_folder');
}

# ---- repair -----------------------------------------------------------

# The replica also lost Sent's copy of message 1: the copy in INBOX
# there (expunged, but its file kept) has the same GUID.
unlink("$sent/1.") or die;
unlink(folder_dir_ext($rconf, 'user/john/Sent') . '/1.') or die;
# mary's only message is lost on both sides: nothing can heal it.
unlink("$mary/1.") or die;

my %before = map { $_ => [ (stat $_)[1, 9] ] } ("$inbox/1.", "$inbox/4.", "$sent/2.");
{
	my $r = audit($conf, '--repair-from', $rconf, '-n');
	is($r->{rc}, 1, 'a dry run still has findings');
	like($r->{out}, qr{^user/john: uid 3: file-missing: .* \[would heal from \Q$rinbox\E/3\.\]$}m,
	    'a dry run names the verified source');
	ok(!-e "$inbox/3.", '... and writes nothing');

	$r = audit($conf, '--repair-from', $rconf, '-v');
	is($r->{rc}, 1, 'repair: exit status 1 while findings remain (orphan, unhealable)');
	like($r->{out}, qr{^user/john: uid 2: file-guid: .* \[healed from \Q$rinbox\E/2\.\]$}m,
	    'the corrupt message is healed');
	like($r->{out}, qr{^user/john: uid 3: file-missing: .* \[healed from \Q$rinbox\E/3\.\]$}m,
	    'the missing message is healed');
	like($r->{out}, qr{^user/john/Sent: uid 1: file-missing: .* \[healed from \Q$rinbox\E/1\.\]$}m,
	    'a message is healed from a copy in another folder there');
	like($r->{out}, qr{^user/mary\@example\.com: uid 1: file-missing: .* \[not healed: \Q$rmary\E/1\.: No such file or directory\]$}m,
	    'what cannot be healed is reported, with the reason');
	like($r->{err}, qr/3 healed, 1 not healed/, '-v counts them');
	is(slurp("$inbox/2."), $msg{2}, 'the healed file has the right bytes');
	is(slurp("$inbox/3."), $msg{3}, '... both of them');
	is(slurp("$sent/1."), $msg{1}, '... all three');
	ok(-e "$sent/99.", 'the orphan is not deleted');
	is_deeply({ map { $_ => [ (stat $_)[1, 9] ] } keys %before }, \%before,
	    'good files are not touched');
	is(scalar(() = glob("$inbox/*.NEW $sent/*.NEW")), 0, 'no temporary file is left');

	$r = audit($conf);
	is($r->{out}, "user/mary\@example.com: uid 1: file-missing: $mary/1.: expected " . length($msg{6})
	    . ' bytes, sha1 ' . sha1hex($msg{6}) . ", actual absent\n"
	    . "user/john/Sent: uid 99: orphan: $sent/99.: expected no file (no record), actual 7 bytes\n",
	    'an audit after the repair finds only what was not healed');
	unlink("$sent/99.");
	spew("$mary/1.", $msg{6});
	ok_rc('and is clean once those are dealt with', audit($conf));
	ok_rc('a repair with nothing to heal', audit($conf, '--repair-from', $rconf));
}

# ---- damage repair does not heal ----------------------------------------

{
	my $s_inbox = folder_dir_ext($sconf, 'user/john');
	my $s_sent = folder_dir_ext($sconf, 'user/john/Sent');
	my $s_mary = folder_dir_ext($sconf, 'user/mary@example.com');
	my $s_news = folder_dir_ext($sconf, 'shared/news');
	ok_rc('the second copy starts clean', audit($sconf));

	truncate("$s_mary/cyrus.index", 100) or die;
	system('cp', '-a', $s_sent, "$dir/s/spool/j/user/john/restored") == 0 or die;
	unlink("$s_inbox/1.") or die;
	symlink('/etc/passwd', "$s_inbox/1.") or die;
	my $s_arch = folder_dir_ext($sconf, 'user/john/Archive');
	# A legacy directory with a message of the (uniqueid) INBOX in it.
	my $legacy = "$dir/s/spool/j/user/john";
	spew("$legacy/2.", $msg{2});
	# A record whose bytes changed under its CRC.
	my $ix = slurp("$s_sent/cyrus.index");
	substr($ix, 160 + 112 + 12, 1) = "\x7f";
	spew("$s_sent/cyrus.index", $ix);
	# Another uniqueid in a header.
	my $ah = slurp("$s_arch/cyrus.header");
	$ah =~ s/ I (\S+) / I 047656355035e6be / or die;
	spew("$s_arch/cyrus.header", $ah);
	# The leftovers of a deleted folder.
	ok_rc('a folder to delete', run('ctl_mboxlist', '-C', $sconf, '-c', 'user/john/Gone'));
	my $gone = folder_dir_ext($sconf, 'user/john/Gone');
	system('cp', '-a', $gone, "$dir/s/spool/j/user/john/leftover") == 0 or die;
	ok_rc('... deleted', run('ctl_mboxlist', '-C', $sconf, '-x', 'user/john/Gone'));
	my $h = slurp("$s_news/cyrus.header");
	$h =~ s/%\(N shared\.news /%(N shared.olds / or die 'no name in the header';
	spew("$s_news/cyrus.header", $h);

	my $r = audit($sconf);
	is($r->{rc}, 1, 'more damage: exit status 1');
	my $out = $r->{out};
	like($out, qr{^user/mary\@example\.com: index: \Q$s_mary\E/cyrus\.index: expected a readable cyrus\.index, actual cyrus\.index: 100 bytes, shorter than}m,
	    'a truncated index');
	like($out, qr{^user/john/Sent: duplicate-uniqueid: \Q$dir\E/s/spool/j/user/john/restored: expected one copy of the folder, actual cyrus\.header of uniqueid \S+, 2 message files; the folder is at \Q$s_sent\E$}m,
	    'a copied folder directory: its uniqueid twice');
	like($out, qr{^user/john: uid 1: file-unsafe: \Q$s_inbox\E/1\.: expected a regular file, actual symlink$}m,
	    'a symlink where a message should be');
	like($out, qr{^shared/news: header-name: \Q$s_news\E/cyrus\.header: expected shared\.news, actual shared\.olds$}m,
	    'a wrong name in a uniqueid folder\'s header');
	like($out, qr{^shared/news: header-crc: }m, '... whose CRC the index no longer has');
	like($out, qr{^user/john: layout-copy: \Q$legacy\E: expected no copy of the folder, actual 1 message files \(legacy layout; the folder is where the resolver says\)$}m,
	    'message files at the legacy path of a uniqueid folder');
	like($out, qr{^user/john/Sent: uid 2: record: \Q$s_sent\E/cyrus\.index: expected a valid record, actual cyrus\.index: record 1 \(uid 2\) at byte 272: CRC [0-9a-f]+, computed [0-9a-f]+$}m,
	    'a record with a bad CRC');
	unlike($out, qr{user/john/Sent: (uid 2: orphan|index-counts)}, '... whose file is not called an orphan, nor its counts wrong');
	like($out, qr{^user/john/Archive: header-uniqueid: \Q$s_arch\E/cyrus\.header: expected \S+, actual 047656355035e6be$}m,
	    'a header with another uniqueid');
	like($out, qr{^stray: \Q$dir\E/s/spool/j/user/john/leftover: expected no folder files, actual cyrus\.header of uniqueid \S+ \(no live mailbox\), 0 message files$}m,
	    'the leftovers of a deleted folder');
	my $j1 = audit($sconf, '-j', '1')->{out};
	is(audit($sconf, '-j', '2')->{out}, $j1, 'the same findings in the same order with -j 1 and -j 2');
	like(audit($sconf, '-u', 'john')->{out}, qr{duplicate-uniqueid.*\n(?s:.*)stray}, '-u walks the user\'s directories too');

	$r = audit($sconf, '--repair-from', $rconf);
	like($r->{out}, qr{^user/john: uid 1: file-unsafe: }m, 'repair leaves a symlink alone');
	ok(-l "$s_inbox/1.", '... in place');
	ok(-d "$dir/s/spool/j/user/john/restored", '... and deletes no directory');
}

# ---- a metapartition ----------------------------------------------------

{
	make_path("$dir/m/meta");
	my $mconf = write_conf("$dir/m", 'metapartition-default' => "$dir/m/meta",
	    metapartition_files => 'header index');
	ok_rc('metapartition: a folder', run('ctl_mboxlist', '-C', $mconf, '-c', 'user/john'));
	ok_rc('... with messages', run('spool_append', '-q', '-C', $mconf, 'user/john',
	    "$dir/m1", "$dir/m2"));
	ok_rc('a spool with a metapartition audits clean (its walk too)', audit($mconf));
	my $d = folder_dir_ext($mconf, 'user/john');
	(my $md = $d) =~ s{/m/spool/}{/m/meta/};
	ok(!-e "$d/cyrus.index" && -e "$md/cyrus.index", '... its index is on the metapartition');
	unlink("$d/1.") or die;
	unlink("$md/cyrus.header") or die;
	my $out = audit($mconf)->{out};
	like($out, qr{^user/john: header: \Q$md\E/cyrus\.header: expected a readable cyrus\.header, actual absent$}m,
	    '... a header missing there is found');
	like($out, qr{^user/john: uid 1: file-missing: \Q$d\E/1\.: }m, '... and so is a message');
}

unlike($all_err, qr/Sanitizer|runtime error/, 'no sanitizer reports');

done_testing();
