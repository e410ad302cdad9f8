#!/usr/bin/perl
# t9400-hostile.t - the hostile input table: names, unique ids,
# configurations, cyrus.header and cyrus.index files, dumps and spools
# built to break things.  Each case asserts the exact message(s) and
# exit status.  Every case runs with a scratch HOME, and a canary
# outside the spool (the target of every symlink planted) is checked
# after each case: nothing outside the scratch spool is ever touched.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use Test::More;
use IdsTest;
use Torture;

my $D = scratch();
my $conf = write_conf("$D/s");
my $canary_dir = "$D/outside";
make_path($canary_dir, "$D/home");
spew("$canary_dir/canary", "canary\n");
utime(1000000000, 1000000000, "$canary_dir/canary", $canary_dir);
$ENV{HOME} = "$D/home";

sub canary {
	my @st = stat("$canary_dir/canary");
	my @dst = stat($canary_dir);
	opendir(my $dh, $canary_dir) or return 'gone';
	my @entries = sort grep { !/^\.\.?$/ } readdir $dh;
	opendir(my $hh, "$D/home") or return 'home gone';
	my @home = grep { !/^\.\.?$/ } readdir $hh;
	return join(' ', slurp("$canary_dir/canary"), $st[9], $st[7], $dst[9], @entries,
	    @home ? "home: @home" : '');
}
my $canary = canary();

my $cases = 0;
# case(what, [cmd...], rc, expected stderr (text, with $D for the
# scratch directory, or a regex), stdin => ...)
sub case {
	my ($what, $cmd, $rc, $err, %o) = @_;
	$cases++;
	my $r = run(@$cmd, defined $o{stdin} ? (stdin => $o{stdin}) : ());
	my $got = $r->{err};
	$got =~ s/\Q$D\E/\$D/g;
	my $ok = $r->{rc} == $rc && (ref $err ? $got =~ $err : $got eq $err);
	if ($ENV{IDS_HOSTILE_RECORD}) {
		open my $fh, '>>', $ENV{IDS_HOSTILE_RECORD};
		(my $g = $got) =~ s/\n/\\n/g;
		print $fh ($ok ? 'OK  ' : 'BAD ') . "$what\t$r->{rc}\t$g\n";
	}
	ok($ok, "$what: exit $rc, message") or diag("exit $r->{rc}, stderr:\n$got");
	is(canary(), $canary, "$what: nothing outside the spool touched");
	return $r;
}

# ---- a spool to be hostile to --------------------------------------

my $r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/john', 'user/john/Sent', 'user/mary');
die $r->{err} if $r->{rc};
for (1 .. 2) {
	$r = run('spool_append', '-C', $conf, '-q', 'user/john/Sent', 'stdin', "Subject: $_\r\n\r\nbody\r\n");
	die $r->{err} if $r->{rc};
}
my ($sent) = split /\n/, run('mbpath', '-C', $conf, 'user/john/Sent')->{out};
my ($inbox) = split /\n/, run('mbpath', '-C', $conf, 'user/john')->{out};
my ($mary) = split /\n/, run('mbpath', '-C', $conf, 'user/mary')->{out};
(my $sent_rel = $sent) =~ s/\Q$D\E/\$D/;

# ---- names -----------------------------------------------------------

my $long = 'a' x 600;
my @names = (
	['..', 'user/john/..', "ctl_mboxlist: user/john/..: level 3 is '..'\n"],
	['.', 'user/john/.', "ctl_mboxlist: user/john/.: level 3 is '.'\n"],
	['empty level', 'user//john', "ctl_mboxlist: user//john: empty level 2\n"],
	['leading /', '/user/john', "ctl_mboxlist: /user/john: empty level 1\n"],
	['trailing /', 'user/john/', "ctl_mboxlist: user/john/: empty level 3\n"],
	['control byte', "user/john/a\x01b", "ctl_mboxlist: user/john/a\\x01b: control byte 0x01 in level 3\n"],
	['DEL byte', "user/john/a\x7fb", "ctl_mboxlist: user/john/a\\x7fb: control byte 0x7f in level 3\n"],
	['escape sequence', "user/john/\e[2J", "ctl_mboxlist: user/john/\\x1b[2J: control byte 0x1b in level 3\n"],
	['8-bit bytes', "user/john/caf\xc3\xa9", "ctl_mboxlist: user/john/caf\\xc3\\xa9: 8-bit byte 0xc3 in level 3 (names are modified UTF-7)\n"],
	['600-byte name', "user/john/$long", "ctl_mboxlist: " . substr("user/john/$long", 0, 248) . "...: name longer than 510 bytes\n"],
	['^ inside a level', 'user/john/a^b', "ctl_mboxlist: user/john/a^b: '^' inside level 3\n"],
	['^ alone', 'user/john/^', "ctl_mboxlist: user/john/^: '^' inside level 3\n"],
	['! inside a level', 'user/john/a!b', "ctl_mboxlist: user/john/a!b: '!' inside level 3\n"],
	['unterminated UTF-7', 'user/john/&Jjo', "ctl_mboxlist: user/john/&Jjo: modified UTF-7 in level 3: unterminated '&' sequence\n"],
	['UTF-7 encoding ASCII', 'user/john/&AGE-', "ctl_mboxlist: user/john/&AGE-: modified UTF-7 in level 3: invalid encoded character\n"],
	['adjacent UTF-7 runs', 'user/john/&ZeVnLIqe-&ZeVnLIqe-', "ctl_mboxlist: user/john/&ZeVnLIqe-&ZeVnLIqe-: modified UTF-7 in level 3: adjacent encoded sequences\n"],
	['lone surrogate in UTF-7', 'user/john/&2D0-', "ctl_mboxlist: user/john/&2D0-: modified UTF-7 in level 3: invalid encoded character\n"],
	['shared INBOX', 'inbox/x', "ctl_mboxlist: inbox/x: INBOX is not a shared folder: write user/NAME\n"],
	['shared DELETED', 'DELETED/x', "ctl_mboxlist: DELETED/x: the top level DELETED is reserved for deleted mailboxes\n"],
	['bad domain', 'user/john@exa..mple.com', "ctl_mboxlist: user/john\@exa..mple.com: empty label in domain\n"],
	['leading dot localpart', 'user/.john', "ctl_mboxlist: user/.john: user name '.john' starts with '.'\n"],
	['reserved user anyone', 'user/anyone', "ctl_mboxlist: user/anyone: 'anyone' is not a user\n"],
);
for my $n (@names) {
	my ($what, $name, $err) = @$n;
	case("name: $what", ['ctl_mboxlist', '-C', $conf, '-c', $name], 1, $err);
}
case('name: internal ^^ (a level "..")', ['ctl_mboxlist', '-C', $conf, '-i', '-c', 'user.john.^^'], 1,
    "ctl_mboxlist: user.john.^^: level 3 is '..'\n");
case('name: unknown folder', ['mbpath', '-C', $conf, 'user/nobody'], 1,
    "mbpath: user/nobody: not in mailboxes.db (-L resolves it anyway)\n");
case('name: rename onto ..', ['ctl_rename', '-C', $conf, 'user/john/Sent', 'user/john/..'], 1,
    "ctl_rename: user/john/..: level 3 is '..'\n");
case('name: deliver to 8-bit name', ['spool_append', '-C', $conf, "user/\xff", 'stdin', "x\r\n"], 1,
    "spool_append: user/\\xff: 8-bit byte 0xff in level 2 (names are modified UTF-7)\n");

# ---- unique ids ------------------------------------------------------

sub dump1 {
	my (%m) = @_;
	my %e = (name => 'user.x', mbtype => 'e', partition => 'default',
	    uniqueid => '3a1f9c2e-8d4b-4f6a-9b1c-2e7d5a0c4f18', uidvalidity => '1', %m);
	my $name = delete $e{key} // $e{name};
	require JSON::PP;
	my $j = JSON::PP->new->canonical;
	return "{\n" . $j->encode($name) . ': ' . $j->encode(\%e) . "\n}\n";
}
my $dconf = write_conf("$D/d");
my $notid = 'not a unique id (a lower-case UUID, 24 [0-9a-z] or 16 hex digits)';
my @ids = (
	['path separators', '../../../../outside/x', $notid],
	['wrong length', 'abc', $notid],
	['upper-case UUID', '3A1F9C2E-8D4B-4F6A-9B1C-2E7D5A0C4F18', $notid],
	['slash inside', '3a1f9c2e-8d4b-4f6a-9b1c/2e7d5a0c4f18', $notid],
	['37 bytes', '3a1f9c2e-8d4b-4f6a-9b1c-2e7d5a0c4f18a', $notid],
	['empty', '', "member 'uniqueid' must not be empty"],
);
for my $c (@ids) {
	my ($what, $id, $why) = @$c;
	case("uniqueid: $what", ['ctl_mboxlist', '-C', $dconf, '-u'], 1,
	    "ctl_mboxlist: stdin:2: user.x: $why\nctl_mboxlist: stdin: 1 problem found; nothing imported\n",
	    stdin => dump1(uniqueid => $id));
}

# ---- configurations --------------------------------------------------

sub conf_text {
	my ($name, $text) = @_;
	spew("$D/$name.conf", $text);
	return "$D/$name.conf";
}
my @confs = (
	['missing partition', "configdirectory: $D/c\n", "ctl_mboxlist: \$D/nopart.conf: no partition-<name> is set\n", 'nopart'],
	['relative configdirectory', "configdirectory: c\npartition-default: $D/p\n", "ctl_mboxlist: \$D/relcd.conf:1: configdirectory: 'c' is not an absolute path\n", 'relcd'],
	['relative partition', "configdirectory: $D/c\npartition-default: p/q\n", "ctl_mboxlist: \$D/relpart.conf:2: partition-default: 'p/q' is not an absolute path\n", 'relpart'],
	['dot-dot in a path', "configdirectory: $D/c/../c\npartition-default: $D/p\n", "ctl_mboxlist: \$D/dotdot.conf:1: configdirectory: '\$D/c/../c' has a '.' or '..' component\n", 'dotdot'],
	['duplicate key', "configdirectory: $D/c\nconfigdirectory: $D/d\npartition-default: $D/p\n", "ctl_mboxlist: \$D/dup.conf:2: 'configdirectory' already set on line 1\n", 'dup'],
	['line without a colon', "configdirectory $D/c\n", "ctl_mboxlist: \$D/nocolon.conf:1: expected 'key: value'\n", 'nocolon'],
	['bad switch', "configdirectory: $D/c\npartition-default: $D/p\nhashimapspool: maybe\n", "ctl_mboxlist: \$D/switch.conf:3: hashimapspool: 'maybe' is not a switch value\n", 'switch'],
	['bad switch read where used', "configdirectory: $D/c\npartition-default: $D/p\nsync_log: maybe\n", "ctl_mboxlist: \$D/synclog.conf:3: sync_log: 'maybe' is not a switch value\n", 'synclog'],
	['switch read where used, set twice', "configdirectory: $D/c\nsync_log: on\npartition-default: $D/p\nsync_log: off\n", "ctl_mboxlist: \$D/synclog2.conf:4: 'sync_log' already set on line 2\n", 'synclog2'],
	['defaultpartition unknown', "configdirectory: $D/c\npartition-default: $D/p\ndefaultpartition: other\n", "ctl_mboxlist: \$D/defpart.conf: defaultpartition 'other' names no partition\n", 'defpart'],
	['NUL byte', "configdirectory: $D/c\0x\npartition-default: $D/p\n", "ctl_mboxlist: \$D/nul.conf:1: NUL byte in line\n", 'nul'],
);
for my $c (@confs) {
	my ($what, $text, $err, $name) = @$c;
	case("config: $what", ['ctl_mboxlist', '-C', conf_text($name, $text), '-l'], 3, $err);
}
case('config: missing file', ['ctl_mboxlist', '-C', "$D/none.conf", '-l'], 3,
    "ctl_mboxlist: \$D/none.conf: No such file or directory\n");
case('config: a directory', ['ctl_mboxlist', '-C', $D, '-l'], 3, "ctl_mboxlist: \$D: not a regular file of sane size\n");
case('config: a symlink to the canary', ['ctl_mboxlist', '-C', do { symlink("$canary_dir/canary", "$D/link.conf"); "$D/link.conf" }, '-l'], 3,
    "ctl_mboxlist: \$D/link.conf:1: expected 'key: value'\n");

# ---- deleted folders --------------------------------------------------

$r = run('ctl_mboxlist', '-C', $conf, '-i', '-c', 'DELETED.user.john.Old.6B033B15');
die $r->{err} if $r->{rc};
case('deliver into a DELETED folder', ['spool_append', '-C', $conf, '-q', 'DELETED/user/john/Old/6B033B15', 'stdin', "x\r\n"], 1,
    "spool_append: DELETED/user/john/Old/6B033B15: a deleted folder takes no delivery\n");

# ---- mailboxes.db named once ------------------------------------------

case('no mailboxes.db: relocated -n names it once', ['relocated', '-C', conf_text('nodb', "configdirectory: $D/nodb\npartition-default: $D/p\n"), '-n'], 3,
    "relocated: \$D/nodb/mailboxes.db: no mailboxes.db (import or create one first)\n");
case('no mailboxes.db: relocated -s names it once', ['relocated', '-C', "$D/nodb.conf", '-s'], 3,
    "relocated: \$D/nodb/mailboxes.db: no mailboxes.db (import or create one first)\n");

# ---- out of descriptors ------------------------------------------------

case('ulimit -n 5: spool_audit stops, no folder "absent"',
    [nofile(5, tool('spool_audit'), '-C', $conf, '-j', '1')], 3,
    qr{\Aspool_audit: \S+: \$D/s/spool: Too many open files; raise the limit of open files \(ulimit -n\) and audit again\n\z});
case('ulimit -n 7: reconstruct -m -n stops, no folder skipped',
    [nofile(7, tool('reconstruct'), '-C', $conf, '-m', '-n', '-q')], 3,
    qr{\Areconstruct: \$D/s/spool\S*: Too many open files; raise the limit of open files \(ulimit -n\) and run it again\nreconstruct: Too many open files\n\z});

# ---- names the file system cannot hold ---------------------------------

my $n256 = 'n' x 256;
case('owner directory of 256 bytes (create)', ['ctl_mboxlist', '-C', $conf, '-c', "user/$n256"], 1,
    "ctl_mboxlist: user/$n256: path component '" . ('n' x 20) . "...' of 256 bytes: a file name has at most 255\n");
case('owner directory of 256 bytes (rename)', ['ctl_rename', '-C', $conf, 'user/mary', "user/$n256"], 1,
    qr{\Actl_rename: user/mary -> user/n+: .*path component 'n{20}\.\.\.' of 256 bytes: a file name has at most 255\n\z});
case('... and no intent is left for recovery', [Torture::helper_path(), 'recover', '-C', $conf], 0, '');

# ---- numbers ---------------------------------------------------------

my $rel_usage = qr/\nusage: relocated /;
case('number: --grace past int64', ['relocated', '-C', $conf, '-1', '--grace', '9223372036854775807'], 2,
    qr/\Arelocated: --grace: '9223372036854775807' is not a whole number from 0 to 31536000$rel_usage/);
case('number: --grace past uint64', ['relocated', '-C', $conf, '-1', '--grace', '99999999999999999999'], 2,
    qr/\Arelocated: --grace: '99999999999999999999' is not a whole number from 0 to 31536000$rel_usage/);
case('number: spool_audit -j 0', ['spool_audit', '-C', $conf, '-j', '0'], 2,
    qr/\Aspool_audit: -j: '0' is not a whole number from 1 to 1024\nusage: /);
case('number: ctl_rename -t -1', ['ctl_rename', '-C', $conf, '-t', '-1', 'user/john', 'user/jon'], 2,
    qr/\Actl_rename: -t: '-1' is not a whole number from 0 to 86400\nusage: /);
case('number: relocated_grace overflow', ['relocated', '-C', conf_text('grace', "configdirectory: $D/c\npartition-default: $D/p\nrelocated_grace: 99999999999999999999\n"), '-1'], 3,
    "relocated: \$D/grace.conf:3: relocated_grace: '99999999999999999999' is not a whole number from 0 to 31536000\n");
case('number: mboxlist_mapsize wraps', ['ctl_mboxlist', '-C', conf_text('mapsize', "configdirectory: $D/c\npartition-default: $D/p\nmboxlist_mapsize: 18014398509481984K\n"), '-l'], 3,
    "ctl_mboxlist: \$D/mapsize.conf:3: mboxlist_mapsize: '18014398509481984K' is not a size from 64K to 1T\n");

# ---- cyrus.header ----------------------------------------------------

my $magic = "\241\002\213\015Cyrus mailbox header\n\"The best thing about this system was that it had lots of goals.\"\n\t--Jim Morris on Andrew\n";
my $good_header = slurp("$sent/cyrus.header");
my $good_index = slurp("$sent/cyrus.index");
# Runs code with file replaced by bytes (or made by a sub), then puts
# the whole folder directory back as it was.
sub with_file {
	my ($file, $bytes, $code) = @_;
	(my $dir = $file) =~ s{/[^/]+$}{};
	system('cp', '-a', $dir, "$dir.save") == 0 or die;
	unlink $file;
	if (ref $bytes) { $bytes->($file); } else { spew($file, $bytes); }
	$code->();
	remove_tree($dir);
	rename("$dir.save", $dir) or die;
}
my @headers = (
	['truncated', substr($magic, 0, 20), 'cyrus.header: 20 bytes, shorter than its magic'],
	['wrong magic', "XXXX" . substr($good_header, 4), 'cyrus.header: wrong magic'],
	['no data line', $magic, 'cyrus.header: nothing after the magic'],
	['giant line', $magic . '%(N user.john.Sent I x ' . ('y' x (2 << 20)) . ")\n",
	    "'cyrus.header' is 2097292 bytes, over 1048576"],
	['bad dlist', $magic . "%(N user.john.Sent I (((\n",
	    'cyrus.header: in the data starting at byte 115: unexpected byte 0x0a at byte 24'],
	['symlink to the canary', sub { symlink("$canary_dir/canary", $_[0]) }, "'cyrus.header' is a symlink"],
	['a directory', sub { mkdir $_[0] }, "'cyrus.header' is not a regular file"],
	['a FIFO', sub { system('mkfifo', $_[0]) }, "'cyrus.header' is not a regular file"],
);
for my $c (@headers) {
	my ($what, $bytes, $why) = @$c;
	with_file("$sent/cyrus.header", $bytes, sub {
		my $r = case("cyrus.header: $what (spool_audit)", ['spool_audit', '-C', $conf, 'user/john/Sent'], 1,
		    qr/\A\z/);
		is($r->{out}, "user/john/Sent: header: $sent/cyrus.header: expected a readable cyrus.header, actual $why\n",
		    "cyrus.header: $what: the finding names the file and why");
		case("cyrus.header: $what (delivery still works)", ['spool_append', '-C', $conf, '-q', 'user/john/Sent', 'stdin', "x\r\n"], 0, '');
	});
}

# ---- cyrus.index -----------------------------------------------------

sub be32 { return pack('N', $_[0]); }
use Compress::Zlib ();
sub with_crc {
	my ($h) = @_;	# the 160-byte v17 header with a fresh CRC
	return substr($h, 0, 156) . be32(Compress::Zlib::crc32(substr($h, 0, 156)));
}
sub set32 { my ($b, $off, $v) = @_; substr($b, $off, 4) = be32($v); return $b; }
my $ih = substr($good_index, 0, 160);
my $rest = substr($good_index, 160);
my $size = length $good_index;
my $badcrc = set32($ih, 44, 12345);
my @indexes = (
	['truncated', substr($good_index, 0, 10), 'cyrus.index: 10 bytes, too short for a header'],
	['bad header CRC', $badcrc . $rest, sprintf('cyrus.index: header CRC %08x (byte 156), computed %08x',
	    unpack('N', substr($ih, 156, 4)), Compress::Zlib::crc32(substr($badcrc, 0, 156)))],
	['record_size 0', with_crc(set32($ih, 16, 0)) . $rest, 'cyrus.index: record_size 0 (byte 16) under 112 for version 17'],
	['num_records overflow', with_crc(set32($ih, 20, 0xffffffff)) . $rest,
	    "cyrus.index: num_records 4294967295 (byte 20) of 112 bytes from byte 160 beyond the end of the file ($size bytes)"],
	['start_offset past the end', with_crc(set32($ih, 12, 0x7fffffff)) . $rest,
	    "cyrus.index: start_offset 2147483647 beyond the end of the file ($size bytes)"],
	['unknown version', with_crc(set32($ih, 8, 99)) . $rest, 'cyrus.index: minor version 99 (byte 8) not supported'],
	['symlink to the canary', sub { symlink("$canary_dir/canary", $_[0]) }, "'cyrus.index' is a symlink"],
);
for my $c (@indexes) {
	my ($what, $bytes, $why) = @$c;
	with_file("$sent/cyrus.index", $bytes, sub {
		my $r = case("cyrus.index: $what (spool_audit)", ['spool_audit', '-C', $conf, 'user/john/Sent'], 1, qr/\A\z/);
		is($r->{out}, "user/john/Sent: index: $sent/cyrus.index: expected a readable cyrus.index, actual $why\n",
		    "cyrus.index: $what: the finding names the file and why");
		case("cyrus.index: $what (delivery refused)", ['spool_append', '-C', $conf, '-q', 'user/john/Sent', 'stdin', "x\r\n"], 1,
		    qr{^spool_append: user/john/Sent: .*\n\z});
	});
}
my $badrec = substr($good_index, 0, 160 + 50) . ('Z' x 62) . substr($good_index, 272);
with_file("$sent/cyrus.index", $badrec, sub {
	my $r = case('cyrus.index: a record with a bad CRC', ['spool_audit', '-C', $conf, 'user/john/Sent'], 1, qr/\A\z/);
	is($r->{out}, "user/john/Sent: uid 1: record: $sent/cyrus.index: expected a valid record, actual "
	    . sprintf("cyrus.index: record 0 (uid 1) at byte 160: CRC 5a5a5a5a, computed %08x\n",
	    Compress::Zlib::crc32(substr($badrec, 160, 108))), '... reported as one bad record, by uid and offset');
});

# ---- dumps -----------------------------------------------------------

my @dumps = (
	['bad JSON', "{\n\"user.x\": {\"name\": \n", "ctl_mboxlist: stdin:3: unexpected token near end of file\n"],
	['not an object', "[]\n", "ctl_mboxlist: stdin:1: not a JSON dump: expected '{' (the pre-3.6 line format is not supported: it carries no uniqueids)\n"],
	['empty input', '', "ctl_mboxlist: stdin:1: empty input: expected a JSON dump\n"],
	['entry not an object', "{\n\"user.x\": 3\n}\n", "ctl_mboxlist: stdin:2: user.x: the entry must be an object\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['number of the wrong type', dump1(uidvalidity => JSON::PP::true()), "ctl_mboxlist: stdin:2: user.x: member 'uidvalidity' must be a decimal number up to 4294967295 (as a string)\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['string of the wrong type', dump1(partition => [1]), "ctl_mboxlist: stdin:2: user.x: member 'partition' must be a string\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['NUL in a name', dump1(key => "user.x\0y", name => "user.x\0y"), "ctl_mboxlist: stdin:2: \\x5cu0000 is not allowed without JSON_ALLOW_NUL near '\"user.x\\x5cu0000y\"'\n"],
	['traversal in a name', dump1(key => 'user.x.^^', name => 'user.x.^^'), "ctl_mboxlist: stdin:2: user.x.^^: invalid mailbox name 'user.x.^^': level 3 is '..'\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['unknown partition', dump1(partition => 'nowhere'), "ctl_mboxlist: stdin:2: user.x: unknown partition 'nowhere' (not in \$D/d/imapd.conf)\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['bad mbtype', dump1(mbtype => 'zz'), "ctl_mboxlist: stdin:2: user.x: invalid mailbox type 'zz'\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['name_history not an array', dump1(name_history => {}), "ctl_mboxlist: stdin:2: user.x: member 'name_history' must be an array\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['duplicate names', "{\n\"user.x\": {\"uniqueid\": \"047656355035e6be\", \"partition\": \"default\", \"mbtype\": \"e\"},\n\"user.x\": {\"uniqueid\": \"047656355035e6bf\", \"partition\": \"default\", \"mbtype\": \"e\"}\n}\n",
	    "ctl_mboxlist: stdin:3: user.x: duplicate mailbox (also on line 2)\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['one uniqueid, two live names', "{\n\"user.x\": {\"uniqueid\": \"047656355035e6be\", \"partition\": \"default\", \"mbtype\": \"e\"},\n\"user.y\": {\"uniqueid\": \"047656355035e6be\", \"partition\": \"default\", \"mbtype\": \"e\"}\n}\n",
	    "ctl_mboxlist: stdin:3: user.y: uniqueid 047656355035e6be is already held by live mailbox user.x (line 2)\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['deep nesting', '{' . ('[' x 100000), "ctl_mboxlist: stdin:1: maximum parsing depth reached near '['\n"],
	['an ACL identifier a cyrus.header cannot hold', dump1(acl => { "caf\xc3\xa9" => 'lrs' }),
	    "ctl_mboxlist: stdin:2: user.x: ACL entry 1, identifier 'caf\\xc3\\xa9': 8-bit byte 0xc3 at byte 3: a cyrus.header cannot hold it (it would need a literal)\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
	['an ACL too large for a cyrus.header', dump1(acl => { map { (sprintf('u%06d', $_) => 'lrs') } 1 .. 90000 }),
	    "ctl_mboxlist: stdin:2: user.x: its cyrus.header would be 1080175 bytes (90000 ACL entries, 0 history items), over the 786432 a folder's record may fill\nctl_mboxlist: stdin: 1 problem found; nothing imported\n"],
);
for my $c (@dumps) {
	my ($what, $text, $err) = @$c;
	case("dump: $what", ['ctl_mboxlist', '-C', $dconf, '-u'], 1, $err, stdin => $text);
}
ok(!-e "$D/d/conf/mailboxes.db" || run('ctl_mboxlist', '-C', $dconf, '-l')->{out} eq '',
    'no refused dump wrote a mailbox');

# ---- spools with symlinks, FIFOs and the like ------------------------

my $lconf = write_conf("$D/l");
spew("$D/l/dump", "{\n\"user.eve\": {\"uniqueid\": \"047656355035e6be\", \"partition\": \"default\", \"mbtype\": \"el\", \"uidvalidity\": \"7\"},\n"
    . "\"user.eve.Box\": {\"uniqueid\": \"047656355035e6bf\", \"partition\": \"default\", \"mbtype\": \"el\", \"uidvalidity\": \"7\"}\n}\n");
$r = run('ctl_mboxlist', '-C', $lconf, '-u', 'stdin', slurp("$D/l/dump"));
die $r->{err} if $r->{rc};
my $evedir = "$D/l/spool/e/user/eve";
make_path("$evedir/Box");
for my $d ($evedir, "$evedir/Box") {
	spew("$d/cyrus.header", $magic . "%(N user.eve I " . ($d =~ /Box/ ? '047656355035e6bf' : '047656355035e6be') . " T e)\n");
}
symlink("$canary_dir/canary", "$evedir/1.") or die;
system('mkfifo', "$evedir/Box/2.") == 0 or die;
my $eve_refused = "relocated: user/eve/Box: \$D/l/spool/e/user/eve/Box/2.: special file in the folder; not migrated\n"
    . "relocated: user/eve: \$D/l/spool/e/user/eve/1.: symlink in the folder; not migrated\n";
case('spool: a symlink to outside as a message, a FIFO as another (walker)',
    ['relocated', '-C', $lconf, '-1', '-q', '--grace', 0, '-u', 'eve'], 1, $eve_refused);
like(run('ctl_mboxlist', '-C', $lconf, '-l')->{out}, qr{^user/eve\t047656355035e6be\tlegacy}m, '... and the folder stays legacy');
case('spool: the same, a second pass (walker)', ['relocated', '-C', $lconf, '-1', '-q', '--grace', 0, '-u', 'eve'], 1,
    $eve_refused);
case('spool: symlink and FIFO (spool_audit, no hang)', ['spool_audit', '-C', $lconf], 1, '');
case('spool: symlink and FIFO (reconstruct -m -n)', ['reconstruct', '-C', $lconf, '-m', '-n', '-q'], 1,
    "reconstruct: \$D/l/spool/e/user/eve/1.: not a directory or regular file: skipped\n"
    . "reconstruct: \$D/l/spool/e/user/eve/Box/2.: not a directory or regular file: skipped\n"
    . "reconstruct: \$D/l/spool/e/user/eve: cannot read cyrus.index: No such file or directory: registered with mailboxes.db's uidvalidity\n"
    . "reconstruct: \$D/l/spool/e/user/eve/Box: cannot read cyrus.index: No such file or directory: registered with mailboxes.db's uidvalidity\n");
# relocated -s over those failures, one record made hostile (control
# and 8-bit bytes, read by its length from the database's map), and
# the folders' missing indexes counted as findings, not as numbers.
spew("$D/l/planted", "VERSION=3\nformat=print\ntype=btree\nHEADER=END\n"
    . " F047656355035e6bf\n 1700000000 user.eve.Box: \\01\\ff\\0a\\1b[2J\nDATA=END\n");
system('mdb_load', '-n', '-f', "$D/l/planted", "$D/l/conf/mailboxes.db") == 0 or die 'mdb_load';
$r = case('spool: a hostile failure record and missing indexes (relocated -s)',
    ['relocated', '-C', $lconf, '-s'], 0, '');
like($r->{out}, qr{^unreadable indexes: 2 legacy folders, not counted above:\n  user/eve: \Q$evedir\E/cyrus\.index: No such file or directory\n  user/eve/Box: \Q$evedir\E/Box/cyrus\.index: No such file or directory\nfailed folders: 2\n}m,
    '... the missing indexes are findings, and both failures are counted');
like($r->{out}, qr{^  user/eve/Box \(2023-11-14 22:13:20 UTC\): \\x01\\xff\\x0a\\x1b\[2J$}m,
    '... the hostile record is listed on one line, its bytes escaped');
like($r->{out}, qr{^  user/eve \([^)]*\): \$?\S+/1\.: symlink in the folder; not migrated$}m,
    '... beside the real one, exactly');
# Delayed (the default), the delete renames the folder, which must first
# leave the legacy layout: refused, the folder left as it is.
case('spool: delayed delete of the folder with the symlink', ['ctl_mboxlist', '-C', $lconf, '-x', 'user/eve/Box'], 1,
    "ctl_mboxlist: user/eve/Box: user.eve.Box: converting to the uniqueid layout first: \$D/l/spool/e/user/eve/Box/2.: special file in the folder; not migrated\n");
my $liconf = write_conf("$D/l", delete_mode => 'immediate');
case('spool: delete the folder with the symlink', ['ctl_mboxlist', '-C', $liconf, '-x', 'user/eve/Box'], 0, '');

# A folder directory replaced by a symlink to the outside.
rename($sent, "$sent.real") or die;
symlink($canary_dir, $sent) or die;
my ($sent_id) = $sent =~ m{/([^/]+)$};
case('spool: folder directory is a symlink (deliver)', ['spool_append', '-C', $conf, '-q', 'user/john/Sent', 'stdin', "x\r\n"], 1,
    "spool_append: user/john/Sent: $sent_rel: '$sent_id' is a symlink\n");
case('spool: folder directory is a symlink (delete)', ['ctl_mboxlist', '-C', $conf, '-x', 'user/john/Sent'], 1,
    "ctl_mboxlist: user/john/Sent: $sent_rel: '$sent_id' is a symlink\n");
case('spool: folder directory is a symlink (audit)', ['spool_audit', '-C', $conf, 'user/john/Sent'], 1, '');
unlink $sent;
rename("$sent.real", $sent) or die;
# The owner directory replaced by a symlink.
(my $owner = $mary) =~ s{/[^/]+$}{};
my $mowner = $owner;
rename($mowner, "$mowner.real") or die;
symlink($canary_dir, $mowner) or die;
case('spool: owner directory is a symlink (create)', ['ctl_mboxlist', '-C', $conf, '-c', 'user/mary/New'], 1,
    "ctl_mboxlist: user/mary/New: 'mary' is a symlink\n");
# The create's intent stays until its directory can be reached safely.
case('spool: owner directory is a symlink (deliver)', ['spool_append', '-C', $conf, '-q', 'user/mary', 'stdin', "x\r\n"], 1,
    qr{\Aspool_append: recovery: intent X[0-9a-f-]{36} \(create user\.mary\.New\): 'mary' is a symlink\nspool_append: user/mary: \$D/s/spool/m/user/mary/[0-9a-f-]{36}: 'mary' is a symlink\n\z});
unlink $mowner;
rename("$mowner.real", $mowner) or die;
case('spool: the symlink gone, recovery settles the create', ['spool_append', '-C', $conf, '-q', 'user/mary', 'stdin', "x\r\n"], 0, '');
is(run('mbpath', '-C', $conf, 'user/mary/New')->{rc}, 1, '... which never existed');
# A user rename onto an owner directory that is a symlink.
(my $zed = $owner) =~ s{/m/user/mary$}{/z/user/zed};
make_path($zed =~ s{/[^/]+$}{}r);
symlink($canary_dir, $zed) or die;
my $rn = case('spool: new owner directory is a symlink (rename)', ['ctl_rename', '-C', $conf, 'user/john', 'user/zed'], 1,
    "ctl_rename: user/john -> user/zed: z/user/zed: 'zed' is a symlink\n");
is($rn->{out}, '', '... and no plan line reads as done');
unlink $zed;
case('spool: mbpath -p with ..', ['mbpath', '-C', $conf, '-p', "$sent/../../x"], 1, qr{^mbpath: .*\n\z});
case('spool: mbpath -p outside every partition', ['mbpath', '-C', $conf, '-p', "$canary_dir/canary"], 1, qr{^mbpath: .*\n\z});

ok($cases >= 50, "$cases hostile cases");
note("figure: hostile | $cases cases");
done_testing();
