#!/usr/bin/perl
# t2000-ctl-mboxlist.t - ctl_mboxlist: Cyrus 3.6 dumps in and out,
# atomic imports, listing, creating and deleting folders, usage.
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
my $cyrus = slurp("$FindBin::Bin/data/cyrus36.dump");

# A configuration of its own for each database.
sub conf {
	my ($name) = @_;
	make_path("$dir/$name");
	return write_conf("$dir/$name");
}

# Every run's messages, to check at the end that no sanitizer spoke.
my $all_err = '';

sub ctl {
	my ($conf, @args) = @_;
	my $r = run('ctl_mboxlist', '-C', $conf, @args);
	$all_err .= $r->{err};
	return $r;
}

sub undump { my ($conf, $text) = @_; return ctl($conf, '-u', stdin => $text); }

# The raw records of a database, to prove that a refused import wrote nothing.
sub raw_db {
	my ($conf) = @_;
	my ($cdir) = $conf =~ m{^(.*)/imapd\.conf$};
	return `mdb_dump -n -p '$cdir/conf/mailboxes.db' 2>&1`;
}

# One entry of a dump, as a line, its members in Cyrus's order.
sub entry {
	my ($name, %m) = @_;
	my @order = qw(name mtime uidvalidity createdmodseq foldermodseq mbtype
	    partition server acl uniqueid name_history);
	my $j = JSON::PP->new->canonical;
	my @parts;
	for my $k (@order) {
		next unless exists $m{$k};
		# A scalar reference is raw JSON; anything else a JSON string.
		push @parts, $j->encode($k) . ': ' .
		    (ref $m{$k} ? ${$m{$k}} : $j->encode("$m{$k}"));
	}
	return $j->encode($name) . ': {' . join(', ', @parts) . '}';
}

sub dump_of { return "{\n" . join(",\n", @_) . "\n}\n"; }

# ---- usage ----------------------------------------------------------

{
	my $r = run('ctl_mboxlist', '--help');
	is($r->{rc}, 0, '--help exits 0');
	like($r->{out}, qr/^usage: ctl_mboxlist \[-C conf\] -d \[-y\] \[-p partition\]\n/, '--help prints the usage');
	my $man = `mandoc -T ascii '$top/src/ctl_mboxlist/ctl_mboxlist.8'`;
	$man =~ s/.\x08//g;
	my ($syn) = $man =~ /\nSYNOPSIS\n(.*?)\n\n/s;
	my $help = $r->{out};
	$help =~ s/^usage: //;
	$help =~ s/\n\n.*//s;
	s/\s+/ /g, s/^ | $//g for $syn, $help;
	is($help, $syn, '--help matches the man page SYNOPSIS');

	$r = run('ctl_mboxlist', '--version');
	is($r->{rc}, 0, '--version exits 0');
	like($r->{out}, qr/^ctl_mboxlist \(idspool\) \S+$/, '--version prints the version');

	for my $args (['-C', 'x'], ['-d', '-u'], ['-d', 'user.x'], ['-i', '-d'],
	    ['--json', '-u'], ['-q']) {
		$r = run('ctl_mboxlist', @$args);
		is($r->{rc}, 2, "usage error: @$args");
		unlike($r->{err}, qr{/}, "no path in the message: @$args");
		like($r->{err}, qr/usage: ctl_mboxlist/, "usage printed: @$args");
	}
}

my $conf = conf('a');

{
	my $r = ctl("$dir/none.conf", '-d');
	is($r->{rc}, 3, 'a missing configuration is exit status 3');
	$r = ctl($conf, '-d');
	is($r->{rc}, 3, 'dumping a missing database is exit status 3');
	like($r->{err}, qr/^ctl_mboxlist: .*mailboxes\.db: /, '... naming the database');
}

# ---- a real Cyrus 3.6 dump ------------------------------------------

{
	my $r = undump($conf, $cyrus);
	is($r->{rc}, 0, 'a hand-made Cyrus 3.6 dump imports') or diag($r->{err});
	is($r->{err}, '', '... silently');
	$r = ctl($conf, '-d');
	is($r->{rc}, 0, 'dump exits 0');
	is($r->{out}, $cyrus, 'its dump is the Cyrus dump, byte for byte');
	like($r->{out}, qr/"example\.org!user\.carol\.Lists": \{[^\n]*"mbtype": "edl", "acl": \{\}/,
	    'the tombstone keeps its type and has no partition');
}

# ---- list -----------------------------------------------------------

{
	my $r = ctl($conf, '-l');
	is($r->{rc}, 0, '-l exits 0') or diag($r->{err});
	my @lines = split /\n/, $r->{out};
	is(scalar @lines, 13, '-l lists the 13 live mailboxes, not the tombstone');
	my %by = map { (split /\t/)[0] => $_ } @lines;
	is($by{'user/dave/Sent'}, "user/dave/Sent\tp0o9i8u7y6t5r4e3w2q1a2s3\tlegacy\tdefault",
	    '-l: name, uniqueid, layout, partition');
	is($by{'user/john.doe/Sent@example.com'},
	    "user/john.doe/Sent\@example.com\t7c02d9e1-4f3a-4b2c-8d1e-6a5b4c3d2e1f\tlegacy\tdefault",
	    '-l: external name of a domain user with a dot');
	ok($by{'user/carol/&AOQ-rger'}, '-l: modified UTF-7 name');
	ok($by{'shared/news'}, '-l: shared folder');
	ok($by{'user/oldtimer'} && $by{'user/oldtimer'} =~ /\t047656355035e6be\t/,
	    '-l: 16-hex uniqueid');
	is(scalar(grep { m{^user/carol/Lists\@example\.org\t} } @lines), 0, '-l: no tombstone');
	ok($by{'user/carol/Mailing Lists@example.org'}, '-l: the live mailbox that left it');

	$r = ctl($conf, '-i', '-l');
	my %in = map { (split /\t/)[0] => 1 } split /\n/, $r->{out};
	ok($in{'example.com!user.john^doe.Sent'} && $in{'DELETED.user.dave.Temp.6B033B15'},
	    '-i -l prints internal names');

	$r = ctl($conf, '-l', 'user/dave');
	is($r->{rc}, 0, '-l NAME exits 0');
	is(join(',', map { (split /\t/)[0] } split /\n/, $r->{out}),
	    'user/dave,user/dave/Sent', '-l NAME lists the mailbox and those below it');

	$r = ctl($conf, '-i', '-l', 'example.com!user.john^doe');
	my @two = split /\n/, $r->{out};
	is(scalar @two, 2, '-i -l NAME takes an internal name');

	$r = ctl($conf, '-l', 'user/nobody', 'user/carol');
	is($r->{rc}, 1, '-l with an unknown name exits 1');
	like($r->{err}, qr{^ctl_mboxlist: user/nobody: no such mailbox$}m, '... and names it');
	like($r->{out}, qr{^user/carol\t}m, '... after listing the others');

	$r = ctl($conf, '--json', '-l');
	is($r->{rc}, 0, '--json -l exits 0');
	my $list = eval { decode_json($r->{out}) };
	is(ref $list, 'ARRAY', '--json prints a JSON array');
	is(scalar @{$list || []}, 13, '... of 13 mailboxes');
	my ($sent) = grep { $_->{name} eq 'user/dave/Sent' } @{$list || []};
	is_deeply($sent, { name => 'user/dave/Sent', uniqueid => 'p0o9i8u7y6t5r4e3w2q1a2s3',
	    layout => 'legacy', partition => 'default' }, '... with name, uniqueid, layout, partition');
}

# ---- name history, and the round trip -------------------------------

my $hist = '[{"name": "user.dave.Outbox", "mtime": "1795000200", "uidvalidity": "1795000021", '
    . '"createdmodseq": "1", "foldermodseq": "5", "mbtype": "el", "partition": "default"}, '
    . '{"name": "user.dave.Old", "mtime": "1795000100", "uidvalidity": "1795000021", '
    . '"createdmodseq": "1", "foldermodseq": "3", "mbtype": "el", "partition": "default"}]';
{
	my $line = entry('user.dave.Sent', name => 'user.dave.Sent', mtime => '1795000020',
	    uidvalidity => '1795000021', createdmodseq => '1', foldermodseq => '2',
	    mbtype => 'el', partition => 'default', acl => \'{"dave": "lrswipkxtecdan"}',
	    uniqueid => 'p0o9i8u7y6t5r4e3w2q1a2s3', name_history => \$hist);
	my $r = undump($conf, dump_of($line));
	is($r->{rc}, 0, 'an entry with a name history replaces its old self') or diag($r->{err});
	$r = ctl($conf, '-d');
	ok(index($r->{out}, "$line,\n") >= 0, 'the dump carries the real name history');
	my $a = $r->{out};

	my $fresh = conf('b');
	$r = undump($fresh, $a);
	is($r->{rc}, 0, 'our own dump undumps into a fresh database') or diag($r->{err});
	$r = ctl($fresh, '-d');
	is($r->{out}, $a, 'dump -> undump -> dump is byte-identical');
	ok(length($a) > length($cyrus), '... and not trivially so');
}

# ---- missing members, pretty-printed input --------------------------

{
	my $c = conf('c');
	my $in = qq({\n"user.min": {"uniqueid": "m1n2m3a4l5e6n7t8r9y0a1b2", "partition": "default"}\n}\n);
	my $r = undump($c, $in);
	is($r->{rc}, 0, 'an entry with only uniqueid and partition imports') or diag($r->{err});
	$r = ctl($c, '-d');
	is($r->{out}, dump_of(entry('user.min', name => 'user.min', mtime => '0',
	    uidvalidity => '0', createdmodseq => '0', foldermodseq => '0', mbtype => 'e',
	    partition => 'default', acl => \'{}', uniqueid => 'm1n2m3a4l5e6n7t8r9y0a1b2',
	    name_history => \'[]')), '... with Cyrus defaults for the rest');

	$in = dump_of(entry('user.inter', mbtype => 'ei', uniqueid => 'i1n2t3e4r5m6e7d8i9a0t1e2'));
	$r = undump($c, $in);
	is($r->{rc}, 0, 'an intermediate (Cyrus -y) needs no partition') or diag($r->{err});
	like(ctl($c, '-d')->{out}, qr/^"user\.inter": \{[^\n]*"mbtype": "ei", "acl": \{\}/m,
	    '... and dumps without one');

	$in = qq({\n  "user.pretty": {\n    "uniqueid": "p1r2e3t4t5y6p7r8i9n0t1e2",\n)
	    . qq(    "partition": "default",\n    "uidvalidity": 17\n  },\n)
	    . qq(  "user.pretty.bad": {\n    "uniqueid": "p1r2e3t4t5y6p7r8i9n0t1e3",\n)
	    . qq(    "partition": "default",\n    "uidvalidity": "x"\n  }\n}\n);
	$r = undump($c, $in);
	is($r->{rc}, 1, 'a pretty-printed dump is read too');
	like($r->{err}, qr/^ctl_mboxlist: stdin:7: user\.pretty\.bad: member 'uidvalidity' must be/m,
	    '... and a bad entry is reported at the line of its name');
	$in =~ s/"x"/"18"/;
	$r = undump($c, $in);
	is($r->{rc}, 0, '... and imports once fixed; JSON integers are accepted') or diag($r->{err});
}

# ---- refused imports change nothing ---------------------------------

my $before = raw_db($conf);
my $dump_before = ctl($conf, '-d')->{out};
like($before, qr/VERSION=3/, 'mdb_dump reads the database');

sub unchanged {
	my ($what) = @_;
	is(raw_db($conf), $before, "$what: the database is unchanged (mdb_dump)");
	is(ctl($conf, '-d')->{out}, $dump_before, "$what: ... and so is its dump");
}

{
	my $eve = entry('user.eve', mbtype => 'el', partition => 'default', acl => \'{}',
	    uniqueid => 'p0o9i8u7y6t5r4e3w2q1a2s3');
	my $ok = entry('user.frank', mbtype => 'el', partition => 'default', acl => \'{}',
	    uniqueid => 'f1r2a3n4k5f6r7a8n9k0f1r2');
	my $r = undump($conf, dump_of($ok, $eve));
	is($r->{rc}, 1, 'a live uniqueid held by another live mailbox is refused');
	like($r->{err}, qr/^ctl_mboxlist: stdin:3: user\.eve: .*user\.dave\.Sent/m,
	    '... naming both mailboxes, at the line of the entry');
	unchanged('duplicate uniqueid in the database');
	is(ctl($conf, '-i', '-l', 'user.frank')->{rc}, 1, '... the good entry was not written either');

	$r = undump($conf, dump_of($ok, entry('user.gina', partition => 'default',
	    uniqueid => 'f1r2a3n4k5f6r7a8n9k0f1r2')));
	is($r->{rc}, 1, 'a uniqueid given to two live entries is refused');
	like($r->{err}, qr/^ctl_mboxlist: stdin:3: user\.gina: uniqueid f1r2a3n4k5f6r7a8n9k0f1r2 is already held by live mailbox user\.frank \(line 2\)$/m,
	    '... naming both');
	unchanged('duplicate uniqueid in the input');

	$r = undump($conf, dump_of($ok, $ok));
	is($r->{rc}, 1, 'a name given twice is refused');
	like($r->{err}, qr/^ctl_mboxlist: stdin:3: user\.frank: duplicate mailbox \(also on line 2\)$/m,
	    '... with both lines');
	unchanged('duplicate name');
}

{
	my $ok = entry('user.frank', mbtype => 'el', partition => 'default', acl => \'{}',
	    uniqueid => 'f1r2a3n4k5f6r7a8n9k0f1r2');
	my %cases = (
		'bad JSON' => [ "{\n$ok,\n\"user.x\": {\"uniqueid\": \"abc\",,}\n}\n",
		    qr/^ctl_mboxlist: stdin:3: /m ],
		'truncated JSON' => [ "{\n$ok,\n", qr/^ctl_mboxlist: stdin:3: /m ],
		'not an object' => [ "[1]\n", qr/^ctl_mboxlist: stdin:1: not a JSON dump/m ],
		'the pre-3.6 line format' => [ "user.x\t0 default x\tlrs\t\n",
		    qr/^ctl_mboxlist: stdin:1: .*pre-3\.6 line format/m ],
		'trailing data' => [ dump_of($ok) . "{}\n", qr/^ctl_mboxlist: stdin:4: unexpected data/m ],
		'a member given twice' => [ "{\n$ok,\n\"user.y\": {\"uniqueid\": \"y1\",\n \"uniqueid\": \"y2\"}\n}\n",
		    qr/^ctl_mboxlist: stdin:4: duplicate object key/m ],
		'an entry that is not an object' => [ dump_of($ok, '"user.z": "x"'),
		    qr/^ctl_mboxlist: stdin:3: user\.z: the entry must be an object$/m ],
		'a number as a number string' => [ dump_of($ok, entry('user.z', uidvalidity => '12a',
		    partition => 'default', uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'uidvalidity' must be a decimal number/m ],
		'a uidvalidity too large' => [ dump_of($ok, entry('user.z', uidvalidity => '4294967296',
		    partition => 'default', uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'uidvalidity' must be/m ],
		'an ACL that is an array' => [ dump_of($ok, entry('user.z', acl => \'[]',
		    partition => 'default', uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'acl' must be an object$/m ],
		'rights that are not a string' => [ dump_of($ok, entry('user.z', acl => \'{"z": 1}',
		    partition => 'default', uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: acl: the rights of 'z' must be a string$/m ],
		'a partition that is a number' => [ dump_of($ok, entry('user.z', partition => \'7',
		    uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'partition' must be a string$/m ],
		'an unknown partition' => [ dump_of($ok, entry('user.z', partition => 'nope',
		    uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: unknown partition 'nope'/m ],
		'a missing uniqueid' => [ dump_of($ok, entry('user.z', partition => 'default')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'uniqueid' is missing$/m ],
		'an invalid uniqueid' => [ dump_of($ok, entry('user.z', partition => 'default',
		    uniqueid => 'Not/An-Id')), qr/^ctl_mboxlist: stdin:3: user\.z: /m ],
		'an invalid mbtype' => [ dump_of($ok, entry('user.z', mbtype => 'eq',
		    partition => 'default', uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: invalid mailbox type 'eq'$/m ],
		'an invalid name' => [ dump_of($ok, entry('user..z', partition => 'default',
		    uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.\.z: invalid mailbox name/m ],
		'a name with a control character' => [ dump_of($ok, '"user.a\\u001bb": {}'),
		    qr/^ctl_mboxlist: stdin:3: user\.a\\x1bb: invalid mailbox name 'user\.a\\x1bb'/m ],
		'a name member that differs' => [ dump_of($ok, entry('user.z', name => 'user.w',
		    partition => 'default', uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'name' differs/m ],
		'a live entry without a partition' => [ dump_of($ok, entry('user.z', mbtype => 'el',
		    uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'partition' is missing$/m ],
		'a history that is an object' => [ dump_of($ok, entry('user.z', partition => 'default',
		    uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2', name_history => \'{}')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: member 'name_history' must be an array$/m ],
		'a history item without a name' => [ dump_of($ok, entry('user.z', partition => 'default',
		    uniqueid => 'z1z2z3z4z5z6z7z8z9z0z1z2', name_history => \'[{"mtime": "1"}]')),
		    qr/^ctl_mboxlist: stdin:3: user\.z: name_history\[0\]: member 'name' is missing$/m ],
	);
	for my $what (sort keys %cases) {
		my ($in, $re) = @{$cases{$what}};
		my $r = undump($conf, $in);
		is($r->{rc}, 1, "$what: exit status 1");
		like($r->{err}, $re, "$what: reported with its line") or diag($r->{err});
		unchanged($what);
	}

	# Every bad entry is reported, not just the first.
	my $in = dump_of(entry('user.p', partition => 'default', uidvalidity => \'true',
	    uniqueid => 'p1p2p3p4p5p6p7p8p9p0p1p2'), $ok,
	    entry('user.q', partition => 'default', acl => \'"x"', uniqueid => 'q1q2q3q4q5q6q7q8q9q0q1q2'));
	my $r = undump($conf, $in);
	is($r->{rc}, 1, 'several bad entries: exit status 1');
	like($r->{err}, qr/stdin:2: user\.p: member 'uidvalidity'.*stdin:4: user\.q: member 'acl'.*2 problems found; nothing imported/s,
	    '... each reported with its line');
	unchanged('several bad entries');

	# Nothing is created for a bad dump either.
	my $c = conf('d');
	$r = undump($c, "{\n\"user.x\": 1\n}\n");
	is($r->{rc}, 1, 'a bad dump into no database');
	ok(!-e "$dir/d/conf/mailboxes.db", '... creates no database');
}

# ---- warnings that do not fail --------------------------------------

{
	my $c = conf('e');
	my $in = dump_of('"user.w": {"uniqueid": "w1w2w3w4w5w6w7w8w9w0w1w2", "partition": "default", '
	    . '"legacy_specialuse": "\\\\Sent", "jmapid": "J1"}');
	my $r = undump($c, $in);
	is($r->{rc}, 0, 'unknown members and legacy_specialuse do not fail the import');
	like($r->{err}, qr/stdin:2: user\.w: unknown member 'jmapid' ignored/, '... but are reported');
	like($r->{err}, qr/stdin:2: user\.w: legacy_specialuse is not kept/, '... both of them');
	is(undump($c, "{\n\n}\n")->{rc}, 0, 'an empty dump imports');
	is(ctl(conf('f'), '-u', stdin => "{\n\n}\n")->{rc}, 0, '... also into no database');
	is(ctl(conf('f'), '-d')->{out}, "{\n\n}\n", 'and dumps as Cyrus dumps an empty list');
}

# ---- create and delete ----------------------------------------------

{
	my $c = conf('g');
	is(undump($c, $cyrus)->{rc}, 0, 'a Cyrus dump to create folders in');
	my $r = ctl($c, '-c', 'user/dave/Drafts', 'user/john.doe/Notes@example.com');
	is($r->{rc}, 0, '-c creates folders') or diag($r->{err});
	$r = ctl($c, '-l', 'user/dave/Drafts');
	like($r->{out}, qr{^user/dave/Drafts\t[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\tuniqueid\tdefault\n\z},
	    '... in the uniqueid layout, with a new uniqueid');
	my ($id) = $r->{out} =~ /\t(\S+)\tuniqueid/;
	ok(ctl($c, '-i', '-l', 'example.com!user.john^doe.Notes')->{out} =~ /\tuniqueid\t/,
	    '... also for a domain user');
	my ($old) = ctl($c, '-d')->{out} =~ /^"user\.dave\.Drafts": .*"uidvalidity": "(\d+)"/m;

	$r = ctl($c, '-c', 'user/dave/Sent', 'user/dave/Bad&Name', 'user/dave/Drafts2');
	is($r->{rc}, 1, '-c of a live name or a bad name fails');
	like($r->{err}, qr{^ctl_mboxlist: user/dave/Sent: .*exists}m, '... naming the live one');
	like($r->{err}, qr{^ctl_mboxlist: user/dave/Bad&Name: .*UTF-7}m, '... and the bad one');
	is(ctl($c, '-l', 'user/dave/Drafts2')->{rc}, 0, '... and goes on with the next name');

	$r = ctl($c, '-x', 'user/dave/Drafts');
	is($r->{rc}, 0, '-x deletes a folder') or diag($r->{err});
	is(ctl($c, '-l', 'user/dave/Drafts')->{rc}, 1, '... which is no longer listed');
	like(ctl($c, '-d')->{out}, qr/^"user\.dave\.Drafts": \{[^\n]*"mbtype": "ed", [^\n]*"uniqueid": "\Q$id\E"/m,
	    '... and leaves a tombstone with its uniqueid');

	$r = ctl($c, '-c', 'user/dave/Drafts');
	is($r->{rc}, 0, '-c over a tombstone');
	my ($new) = ctl($c, '-d')->{out} =~ /^"user\.dave\.Drafts": .*"uidvalidity": "(\d+)"/m;
	ok($new > $old, '... raises the UIDVALIDITY above the old one');
	unlike(ctl($c, '-l', 'user/dave/Drafts')->{out}, qr/\Q$id\E/, '... with a new uniqueid');

	$r = ctl($c, '-x', 'user/dave/Nope');
	is($r->{rc}, 1, '-x of an unknown name fails');
	like($r->{err}, qr{^ctl_mboxlist: user/dave/Nope: }m, '... naming it');
	is(ctl($c, '-x', '-i', 'user.dave.Drafts2')->{rc}, 0, '-x -i takes an internal name');
	is(ctl($c, '-c')->{rc}, 2, '-c without a name is a usage error');
	is(ctl($c, '--json', '-x', 'user/dave')->{rc}, 2, '--json -x is a usage error');
}

# ---- -x: Cyrus's delete_mode (delayed by default), --expire ------------

{
	my $c = conf('x');
	my $r = ctl($c, '-c', 'user/ann', 'user/ann/A', 'user/ann/A/B');
	is($r->{rc}, 0, 'folders to delete') or diag($r->{err});
	my $msg = "$dir/x.eml";
	spew($msg, "Subject: keep me\r\n\r\nbody\r\n");
	is(run('spool_append', '-C', $c, 'user/ann/A', $msg)->{rc}, 0, 'a message in user/ann/A');
	my ($id) = ctl($c, '-l', 'user/ann/A')->{out} =~ /\t(\S+)\tuniqueid/;
	my $path = (split /\n/, run('mbpath', '-C', $c, 'user/ann/A')->{out})[0];
	my $before = time;
	$r = ctl($c, '-x', 'user/ann/A');
	is($r->{rc}, 0, '-x user/ann/A') or diag($r->{err});
	my $list = ctl($c, '-l')->{out};
	my ($hex) = $list =~ m{^DELETED/user/ann/A/([0-9A-F]+)\t\Q$id\E\tuniqueid\tdefault$}m;
	ok(defined $hex, 'delete_mode delayed (the default): renamed to DELETED.user.ann.A.<hextime>, as Cyrus does')
	    or diag($list);
	ok(defined $hex && hex($hex) >= $before - 1 && hex($hex) <= time + 1, '... the time of the delete, in hex');
	like($list, qr{^user/ann/A/B\t}m, '... its child left alone');
	ok(-e "$path/1.", '... its message file still there');
	is(run('mbpath', '-C', $c, "DELETED/user/ann/A/$hex")->{out}, "$path\n", '... in the same directory');
	is(run('spool_audit', '-C', $c, '-q')->{rc}, 0, '... and spool_audit is clean');
	like(ctl($c, '-d')->{out}, qr/^"user\.ann\.A": \{[^\n]*"mbtype": "ed"/m, '... a tombstone at the old name');

	# --expire: the final removal.
	is(ctl($c, '--expire', '3600')->{rc}, 0, '--expire 3600');
	ok(-e "$path/1.", '... leaves a folder deleted a moment ago');
	is(ctl($c, '--expire', '0')->{rc}, 0, '--expire 0');
	unlike(ctl($c, '-l')->{out}, qr{^DELETED/}m, '... removes every DELETED folder');
	ok(!-e $path, '... with its files');
	is(ctl($c, '--expire', 'soon')->{rc}, 2, '--expire needs a number of seconds');

	# A DELETED folder given to -x goes for good, as in Cyrus.
	is(ctl($c, '-x', 'user/ann/A/B')->{rc}, 0, '-x user/ann/A/B');
	($hex) = ctl($c, '-l')->{out} =~ m{^DELETED/user/ann/A/B/([0-9A-F]+)\t}m;
	my $bpath = (split /\n/, run('mbpath', '-C', $c, "DELETED/user/ann/A/B/$hex")->{out})[0];
	ok(-d $bpath, '... kept as DELETED');
	is(ctl($c, '-x', "DELETED/user/ann/A/B/$hex")->{rc}, 0, '-x of the DELETED name');
	ok(!-e $bpath, '... removes it for good');

	# delete_mode: immediate.
	my $ci = write_conf("$dir/x", delete_mode => 'immediate');
	my $ipath = (split /\n/, run('mbpath', '-C', $ci, 'user/ann')->{out})[0];
	is(ctl($ci, '-x', 'user/ann')->{rc}, 0, 'delete_mode: immediate');
	ok(!-e $ipath, '... removes the folder at once');
	unlike(ctl($ci, '-l')->{out}, qr{^DELETED/}m, '... leaving no DELETED folder');
	my $cb = write_conf("$dir/x", delete_mode => 'later');
	$r = ctl($cb, '-x', 'user/zed');
	is($r->{rc}, 3, 'a bad delete_mode is exit 3');
	like($r->{err}, qr{^ctl_mboxlist: \Q$cb\E: delete_mode: 'later' is not delayed or immediate$}m,
	    '... naming it');
}

# ---- Cyrus's options mean what they mean in Cyrus ------------------------

{
	make_path("$dir/y/other");
	my $c = write_conf("$dir/y", 'partition-other' => "$dir/y/other");
	my %common = (mtime => 1795000000, uidvalidity => 1795000000, createdmodseq => 1,
	    foldermodseq => 1, acl => \'{}', name_history => \'[]');
	my @e = (entry('user.ann', name => 'user.ann', %common, mbtype => 'e', partition => 'default',
	    uniqueid => 'aaaaaaaa-1111-4111-8111-111111111111'),
	    entry('user.bob', name => 'user.bob', %common, mbtype => 'e', partition => 'other',
	    uniqueid => 'bbbbbbbb-2222-4222-8222-222222222222'),
	    entry('user.old', name => 'user.old', %common, mbtype => 'ed', uniqueid => 'cccccccc-3333-4333-8333-333333333333'));
	is(undump($c, dump_of(@e))->{rc}, 0, 'entries on two partitions and a tombstone');
	my $r = ctl($c, '-d', '-p', 'other');
	is($r->{rc}, 0, '-d -p other');
	is($r->{out}, dump_of($e[1]), '... dumps the mailboxes on that partition only, as Cyrus does');
	is(ctl($c, '-d', '-y')->{out}, dump_of(@e), '-d -y: the whole dump (no entry is hidden)');
	$r = ctl($c, '-d', '-p', 'nowhere');
	is($r->{rc}, 3, '-d -p of an unknown partition is exit 3');
	is(ctl($c, '-l', '-p', 'other')->{rc}, 2, '-p without -d is a usage error');
	my $raw = raw_db($c);
	for my $t (['-d', '-x'], ['-f', "$dir/y/conf/mailboxes.db", '-d'], ['-u', '-L'], ['-m'], ['-m', '-a'],
	    ['-m', '-w'], ['-v']) {
		$r = ctl($c, @$t, stdin => '');
		is($r->{rc}, 2, "Cyrus's @$t is refused");
		like($r->{err}, qr{^ctl_mboxlist: -\w (?:with -d )?\(in Cyrus: [^)]+\) is not supported; .+ \(ctl_mboxlist\(8\)\)\n\z},
		    "... with what to use instead (@$t)");
	}
	is(raw_db($c), $raw, '... and mailboxes.db is untouched');
}

unlike($all_err, qr/Sanitizer|runtime error/, 'no sanitizer reports');

done_testing();
