#!/usr/bin/perl
# t1000-mbpath.t - mbpath: names to paths in both layouts, with and
# without mailboxes.db, meta directories, unique ids, paths back to
# names, bad names and configurations, usage and exit codes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use JSON::PP;
use Test::More;
use IdsTest;

my $dir = scratch();
my $top = "$FindBin::Bin/..";
my $all_err = '';

sub mbpath {
	my $r = run('mbpath', @_);
	$all_err .= $r->{err};
	return $r;
}

# Checks one run: exit status, standard output, standard error.
sub runs {
	my ($args, $rc, $out, $err, $what) = @_;
	my $r = mbpath(@$args);
	is($r->{rc}, $rc, "$what: exit $rc");
	is($r->{out}, $out, "$what: output") if defined $out;
	if (ref $err) {
		like($r->{err}, $err, "$what: message");
	} elsif (defined $err) {
		is($r->{err}, $err, "$what: message");
	}
	return $r;
}

# ---- usage ----------------------------------------------------------

{
	my $r = mbpath('--help');
	is($r->{rc}, 0, '--help exits 0');
	is($r->{err}, '', '--help writes nothing to stderr');
	like($r->{out}, qr/^usage: mbpath \[-C conf\]/, '--help prints the usage');
	my $man = `mandoc -T ascii '$top/src/mbpath/mbpath.8'`;
	$man =~ s/.\x08//g;
	my ($syn) = $man =~ /\nSYNOPSIS\n(.*?)\n\n/s;
	my $help = $r->{out};
	$help =~ s/^usage: //;
	$help =~ s/\n\n.*//s;
	s/\s+/ /g, s/^ | $//g for $syn, $help;
	is($help, $syn, '--help matches the man page SYNOPSIS');
	is(`mandoc -T lint -W warning '$top/src/mbpath/mbpath.8' 2>&1`, '', 'the man page lints clean');

	$r = mbpath('--version');
	is($r->{rc}, 0, '--version exits 0');
	like($r->{out}, qr/^mbpath \(idspool\) \S+\n$/, '--version prints the version');

	for my $args ([], ['-C'], ['-u', '-p', 'x'], ['-L', 'sideways', 'x'], ['-z', 'x'],
	    ['-L'], ['-u', '-I', 'x'], ['-a', '-M', 'x'], ['-N', 'x'], ['-p', '-N', '-j', 'x']) {
		$r = mbpath(@$args);
		is($r->{rc}, 2, "usage error: mbpath @$args");
		like($r->{err}, qr/usage: mbpath /, "usage error prints the usage: @$args");
		is($r->{out}, '', "usage error prints nothing on stdout: @$args");
	}
	like(mbpath('-L', 'sideways', 'x')->{err}, qr/^mbpath: -L sideways: /m,
	    'a bad layout is named');
}

# ---- configuration --------------------------------------------------

{
	runs(['-C', "$dir/nope.conf", '-L', 'legacy', 'user/x'], 3, '',
	    "mbpath: $dir/nope.conf: No such file or directory\n", 'missing config');
	make_path("$dir/bad");
	spew("$dir/bad/imapd.conf", "configdirectory: $dir/bad\npartition-default spool\n");
	runs(['-C', "$dir/bad/imapd.conf", '-L', 'legacy', 'user/x'], 3, '',
	    "mbpath: $dir/bad/imapd.conf:2: expected 'key: value'\n", 'malformed config line');
	spew("$dir/bad/imapd.conf", "configdirectory: $dir/bad\npartition-default: spool\n");
	runs(['-C', "$dir/bad/imapd.conf", '-L', 'legacy', 'user/x'], 3, '',
	    "mbpath: $dir/bad/imapd.conf:2: partition-default: 'spool' is not an absolute path\n",
	    'relative partition');
	spew("$dir/bad/imapd.conf", "configdirectory: $dir/bad\n");
	runs(['-C', "$dir/bad/imapd.conf", '-L', 'legacy', 'user/x'], 3, '',
	    "mbpath: $dir/bad/imapd.conf: no partition-<name> is set\n", 'no partition');
}

# ---- without mailboxes.db -------------------------------------------

make_path("$dir/plain");
my $conf = write_conf("$dir/plain",
    'metapartition-default' => "$dir/plain/meta",
    'metapartition_files' => 'header index');
my $spool = "$dir/plain/spool";
my $meta = "$dir/plain/meta";

runs(['-C', $conf, '-L', 'legacy', 'user/john.doe/Sent@example.com', 'user/dave/Sent',
    'shared/news', 'DELETED/user/dave/Temp/6B033B15', 'user/carol/Mailing Lists@example.org'],
    0, "$spool/domain/e/example.com/j/user/john^doe/Sent\n$spool/d/user/dave/Sent\n" .
    "$spool/n/shared/news\n$spool/u/DELETED/user/dave/Temp/6B033B15\n" .
    "$spool/domain/e/example.org/c/user/carol/Mailing Lists\n", '', 'legacy paths');
runs(['-C', $conf, '-L', 'legacy', '-i', 'example.com!user.john^doe.Sent',
    'DELETED.user.dave.Temp.6B033B15'], 0,
    "$spool/domain/e/example.com/j/user/john^doe/Sent\n$spool/u/DELETED/user/dave/Temp/6B033B15\n",
    '', 'internal names with -i');
runs(['-C', $conf, '-L', 'legacy', '-m', 'user/dave/Sent'], 0,
    "$meta/d/user/dave/Sent\n", '', '-m: the metapartition');
runs(['-C', $conf, '-L', 'legacy', 'user/dave/Sent', '-m'], 0,
    "$meta/d/user/dave/Sent\n", '', 'options may follow names');
runs(['-C', $conf, '-L', 'legacy', '--', '-m'], 0, "$spool/q/-m\n", '',
    'names after -- may start with -');
runs(['-C', $conf, 'user/dave/Sent'], 3, '',
    qr{^mbpath: \Q$dir\E/plain/conf/mailboxes\.db: .*-L resolves names without it\n\z},
    'names need mailboxes.db unless -L');
runs(['-C', $conf, '-I', '48902a4f-73c2-4e0f-ad4a-3e324fd33853'], 3, '',
    qr{^mbpath: .*mailboxes\.db: }, '-I needs mailboxes.db');
runs(['-C', $conf, '-L', 'uniqueid', 'user/dave/Sent'], 1, '',
    "mbpath: user/dave/Sent: not in mailboxes.db, so no unique id for the uniqueid layout\n",
    'the uniqueid layout needs an id');

# Bad names: each refused with its reason, the good ones still printed.
{
	my @bad = (
		['user/../x', "level 2 is '..'"],
		['user//x', 'empty level 2'],
		['user/a^b', "'^' inside level 2"],
		['../../etc/passwd', "level 1 is '..'"],
		["user/a\x01b", 'control byte 0x01 in level 2'],
		["user/\xc3\xa9", '8-bit byte 0xc3 in level 2 (names are modified UTF-7)'],
		['user/x@example.com/Sent', "'/' in domain: the \@domain goes at the end of the name"],
		['INBOX', 'INBOX is not a shared folder: write user/NAME'],
		['user', "'user' needs a user name"],
		['DELETED/user/x/zz', 'DELETED name does not end in a hex time'],
		['user/' . ('a' x 600), 'name longer than 510 bytes'],
	);
	my $r = mbpath('-C', $conf, '-7', '-L', 'legacy', 'user/dave', (map { $_->[0] } @bad), 'user/erin');
	is($r->{rc}, 1, 'bad names: exit 1');
	is($r->{out}, "$spool/d/user/dave\n$spool/e/user/erin\n", 'bad names: the good ones printed');
	my @lines = split /\n/, $r->{err};
	is(scalar @lines, scalar @bad, 'bad names: one message each');
	for my $i (0 .. $#bad) {
		(my $shown = $bad[$i][0]) =~ s/([^\x20-\x7e]|\\)/sprintf('\\x%02x', ord $1)/ge;
		$shown = substr($shown, 0, 248) . '...' if length $shown > 248;
		is($lines[$i], "mbpath: $shown: $bad[$i][1]", "bad name: $bad[$i][1]");
	}
	runs(['-C', $conf, '-L', 'legacy', '-i', 'user/x'], 1, '',
	    "mbpath: user/x: '/' inside level 1\n", '-i: an external name is refused');
	# Cyrus's default: names in UTF-8, stored as modified UTF-7; -7 takes them as stored.
	runs(['-C', $conf, '-L', 'legacy', "user/\xc3\xa9t\xc3\xa9 & \xf0\x9f\x98\x80"], 0,
	    "$spool/q/user/&AOk-t&AOk- &- &2D3eAA-\n", '', 'names in UTF-8 by default, as in Cyrus');
	runs(['-C', $conf, '-L', 'legacy', '-7', 'user/&AOk-t&AOk-'], 0, "$spool/q/user/&AOk-t&AOk-\n", '',
	    '-7: names in modified UTF-7');
	runs(['-C', $conf, '-L', 'legacy', "user/\xc3("], 1, '',
	    "mbpath: user/\\xc3(: not UTF-8 (-7: modified UTF-7)\n", 'bad UTF-8 is refused');
}

# Paths back to names (-p -N), without mailboxes.db: the legacy layout only.
runs(['-C', $conf, '-p', '-N', "$spool/d/user/dave/Sent", "$spool/d/user/dave/Sent/12.",
    "$meta/d/user/dave/Sent/cyrus.index", "$spool/domain/e/example.com/j/user/john^doe/Sent",
    "$spool//u/DELETED/user/dave/Temp/6B033B15/"], 0,
    "user/dave/Sent\nuser/dave/Sent\nuser/dave/Sent\nuser/john.doe/Sent\@example.com\n" .
    "DELETED/user/dave/Temp/6B033B15\n", '', '-p -N: legacy paths');
runs(['-C', $conf, '-p', '-N', '-i', "$spool/domain/e/example.com/j/user/john^doe/Sent/1."], 0,
    "example.com!user.john^doe.Sent\n", '', '-p -N -i: internal names');
# As in Cyrus, -p prints the paths of the mailbox a path lies in.
runs(['-C', $conf, '-p', "$spool/d/user/dave/Sent/12.", "$meta/d/user/dave/Sent/cyrus.index"], 0,
    "$spool/d/user/dave/Sent\n$spool/d/user/dave/Sent\n", '', '-p: the data path of the mailbox, as Cyrus');
runs(['-C', $conf, '-p', '-M', "$spool/d/user/dave/Sent/12."], 0, "$meta/d/user/dave/Sent\n", '',
    '-p -M: its meta path');
{
	my $r = runs(['-C', $conf, '-p', "$spool/d/user", '/etc/passwd', "$spool/x/user/dave",
	    'relative/path', "$spool/d/user/../../../etc", "$spool/j/user/john/48902a4f-73c2-4e0f-ad4a-3e324fd33853"],
	    1, '', undef, '-p: bad paths');
	is($r->{err}, join('', map { "mbpath: $_\n" }
	    "$spool/d/user: a directory above the folders, not inside one",
	    '/etc/passwd: not under any partition root',
	    "$spool/x/user/dave: not a folder path in the legacy or uniqueid layout",
	    'relative/path: not an absolute path',
	    "$spool/d/user/../../../etc: '.' or '..' in the path",
	    "$spool/j/user/john/48902a4f-73c2-4e0f-ad4a-3e324fd33853: unique id " .
	    "48902a4f-73c2-4e0f-ad4a-3e324fd33853: no mailboxes.db to name it"),
	    '-p: bad paths: messages');
}
runs(['-C', $conf, '-p', '-N', '-L', 'legacy', "$spool/j/user/john/48902a4f-73c2-4e0f-ad4a-3e324fd33853"],
    0, "user/john/48902a4f-73c2-4e0f-ad4a-3e324fd33853\n", '', '-p -L legacy reads a legacy folder');

# ---- with mailboxes.db ----------------------------------------------

{
	make_path("$dir/db/other");
	my $dconf = write_conf("$dir/db", 'partition-other' => "$dir/db/other");
	my $dspool = "$dir/db/spool";
	my $u1 = '48902a4f-73c2-4e0f-ad4a-3e324fd33853';
	my $dump = <<"EOF";
{
"example.org!user.carol.Lists": {"name": "example.org!user.carol.Lists", "mtime": "1795000100", "uidvalidity": "1795000050", "createdmodseq": "1", "foldermodseq": "7", "mbtype": "edl", "acl": {}, "uniqueid": "k2v9d0x7qmz1w3e8r5t6y4u2", "name_history": []},
"example.org!user.carol.Mailing Lists": {"name": "example.org!user.carol.Mailing Lists", "mtime": "1795000100", "uidvalidity": "1795000050", "createdmodseq": "1", "foldermodseq": "7", "mbtype": "el", "partition": "default", "acl": {"carol\@example.org": "lrswipkxtecdan"}, "uniqueid": "k2v9d0x7qmz1w3e8r5t6y4u2", "name_history": []},
"shared.news": {"name": "shared.news", "mtime": "1795000010", "uidvalidity": "1795000010", "createdmodseq": "1", "foldermodseq": "1", "mbtype": "e", "partition": "other", "acl": {}, "uniqueid": "047656355035e6be", "name_history": []},
"user.dave.Sent": {"name": "user.dave.Sent", "mtime": "1795000020", "uidvalidity": "1795000021", "createdmodseq": "1", "foldermodseq": "2", "mbtype": "el", "partition": "default", "acl": {"dave": "lrswipkxtecdan"}, "uniqueid": "p0o9i8u7y6t5r4e3w2q1a2s3", "name_history": []},
"user.erin.Sent": {"name": "user.erin.Sent", "mtime": "1795000030", "uidvalidity": "1795000031", "createdmodseq": "1", "foldermodseq": "2", "mbtype": "e", "partition": "default", "acl": {"erin": "lrswipkxtecdan"}, "uniqueid": "$u1", "name_history": []}
}
EOF
	my $r = run('ctl_mboxlist', '-C', $dconf, '-u', stdin => $dump);
	is($r->{rc}, 0, 'ctl_mboxlist -u loads the test database') or diag($r->{err});

	runs(['-C', $dconf, 'user/dave/Sent', 'user/erin/Sent', 'shared/news',
	    'user/carol/Mailing Lists@example.org'], 0,
	    "$dspool/d/user/dave/Sent\n$dspool/e/user/erin/$u1\n$dir/db/other/s/shared/047656355035e6be\n" .
	    "$dspool/domain/e/example.org/c/user/carol/Mailing Lists\n", '',
	    'each mailbox in its own layout and partition');
	runs(['-C', $dconf, '-i', 'user.erin.Sent'], 0, "$dspool/e/user/erin/$u1\n", '',
	    '-i with mailboxes.db');
	runs(['-C', $dconf, '-L', 'legacy', 'user/erin/Sent'], 0, "$dspool/e/user/erin/Sent\n", '',
	    '-L legacy overrides the database');
	runs(['-C', $dconf, '-L', 'uniqueid', 'user/dave/Sent'], 0,
	    "$dspool/d/user/dave/p0o9i8u7y6t5r4e3w2q1a2s3\n", '', '-L uniqueid uses the id from the database');
	runs(['-C', $dconf, 'user/carol/Lists@example.org', 'user/nobody'], 1, '',
	    "mbpath: user/carol/Lists\@example.org: a tombstone has no folder\n" .
	    "mbpath: user/nobody: not in mailboxes.db (-L resolves it anyway)\n",
	    'tombstones and unknown names');
	runs(['-C', $dconf, '-L', 'legacy', 'user/carol/Lists@example.org'], 0,
	    "$dspool/domain/e/example.org/c/user/carol/Lists\n", '', '-L resolves a tombstone\'s name');
	runs(['-C', $dconf, '-I', $u1, '047656355035e6be', '../etc', 'ffffffffffffffff'], 1,
	    "$dspool/e/user/erin/$u1\n$dir/db/other/s/shared/047656355035e6be\n",
	    qr{\Ambpath: \.\./etc: not a unique id .*\nmbpath: ffffffffffffffff: .+\n\z},
	    '-I: unique ids');
	runs(['-C', $dconf, '-p', '-N', "$dspool/e/user/erin/$u1", "$dspool/e/user/erin/$u1/3.",
	    "$dir/db/other/s/shared/047656355035e6be/cyrus.header", "$dspool/d/user/dave/Sent/1."], 0,
	    "user/erin/Sent\nuser/erin/Sent\nshared/news\nuser/dave/Sent\n", '', '-p -N: both layouts');
	runs(['-C', $dconf, '-p', '-N', '-i', "$dspool/e/user/erin/$u1"], 0, "user.erin.Sent\n", '',
	    '-p -N -i');
	runs(['-C', $dconf, '-p', "$dspool/e/user/erin/$u1/3.", "$dir/db/other/s/shared/047656355035e6be/cyrus.header"],
	    0, "$dspool/e/user/erin/$u1\n$dir/db/other/s/shared/047656355035e6be\n", '',
	    '-p: the folder directories, both layouts');
	$r = mbpath('-C', $dconf, '-p', '-j', "$dspool/e/user/erin/$u1/3.");
	my $pj = eval { JSON::PP::decode_json($r->{out}) } // {};
	is($pj->{mbname}{intname}, 'user.erin.Sent', '-p -j: the mailbox, as Cyrus prints it');
	runs(['-C', $dconf, '-p', "$dspool/e/user/erin/Sent"], 1, '',
	    "mbpath: $dspool/e/user/erin/Sent: user.erin.Sent lives in the uniqueid layout, not here\n",
	    '-p: a legacy path of a moved mailbox');
	runs(['-C', $dconf, '-p', "$dspool/j/user/john/$u1"], 1, '',
	    "mbpath: $dspool/j/user/john/$u1: unique id $u1 belongs to user.erin.Sent, " .
	    "whose folder is elsewhere\n", '-p: a uniqueid path that does not fit its id');
	runs(['-C', $dconf, '-p', "$dspool/z/user/zed/Sent", "$dspool/domain/e/example.org/c/user/carol/Lists"],
	    1, '', "mbpath: $dspool/z/user/zed/Sent: user.zed.Sent is not in mailboxes.db\n" .
	    "mbpath: $dspool/domain/e/example.org/c/user/carol/Lists: example.org!user.carol.Lists is a tombstone\n",
	    '-p: legacy paths mailboxes.db does not know');

	# ---- Cyrus's options mean what they mean in Cyrus ---------------
	runs(['-C', $dconf, '-u', 'dave', 'carol@example.org'], 1, '', qr{^mbpath: dave: not in mailboxes.db.*\nmbpath: carol\@example.org: not in},
	    '-u: the arguments are userids (their INBOX), as in Cyrus');
	$r = run('ctl_mboxlist', '-C', $dconf, '-c', 'user/dave', 'user/john.doe@example.org');
	is($r->{rc}, 0, 'two INBOXes') or diag($r->{err});
	my $dave = (split /\n/, mbpath('-C', $dconf, 'user/dave')->{out})[0];
	my $john = (split /\n/, mbpath('-C', $dconf, 'user/john.doe@example.org')->{out})[0];
	runs(['-C', $dconf, '-u', 'dave', 'john.doe@example.org'], 0, "$dave\n$john\n", '',
	    '-u dave john.doe@example.org: their INBOXes');
	runs(['-C', $dconf, '-u', 'a/b'], 1, '', "mbpath: a/b: not a userid\n", '-u: not a userid');
	runs(['-C', $dconf, '-a', 'user/erin/Sent'], 0,
	    "Data: $dspool/e/user/erin/$u1\nMeta: $dspool/e/user/erin/$u1\n", '', '-a: every path, labelled');
	runs(['-C', $dconf, '-M', 'user/erin/Sent'], 0, "$dspool/e/user/erin/$u1\n", '', '-M as -m');
	runs(['-C', $dconf, '-D', 'user/erin/Sent'], 0, "$dspool/e/user/erin/$u1\n", '', '-D: the data path');
	$r = mbpath('-C', $dconf, '-j', 'user/erin/Sent');
	is($r->{rc}, 0, '-j exits 0');
	my $j = eval { JSON::PP::decode_json($r->{out}) } // {};
	is($j->{data}, "$dspool/e/user/erin/$u1", '-j: the data path');
	is($j->{meta}, "$dspool/e/user/erin/$u1", '-j: the meta path');
	is($j->{mbname}{intname}, 'user.erin.Sent', '-j: the internal name');
	is($j->{mbname}{userid}, 'erin', '-j: the userid');
	runs(['-C', $dconf, '-q', 'user/nobody', 'user/erin/Sent'], 1, "$dspool/e/user/erin/$u1\n", '',
	    '-q: no error messages, the exit status still tells');
	runs(['-C', $dconf, '-s', 'user/nobody', 'user/erin/Sent'], 1, '',
	    "mbpath: user/nobody: not in mailboxes.db (-L resolves it anyway)\n", '-s: stops at the first error');
	runs(['-C', $dconf, '-l', '-L', 'legacy', 'user/nobody', 'user/erin/Sent'], 1,
	    "$dspool/e/user/erin/Sent\n", "mbpath: user/nobody: not in mailboxes.db\n",
	    '-l: only mailboxes mailboxes.db holds, even with -L');
	for my $o ('-A', '-S', '-U') {
		runs(['-C', $dconf, $o, 'user/erin/Sent'], 2, '',
		    qr{^mbpath: \Q$o\E \(in Cyrus: [^)]+\) is not supported: .*mbpath -a}, "Cyrus's $o is refused");
	}
}

unlike($all_err, qr/AddressSanitizer|runtime error|LeakSanitizer/, 'no sanitizer reports');

done_testing();
