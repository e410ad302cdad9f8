#!/usr/bin/perl
# t5000-reconstruct.t - reconstruct: rebuilding a lost mailboxes.db from
# a spool of mixed layouts (renamed folders with multi-step histories,
# DELETED folders, old-format headers), uniqueid clashes of copied
# folders, unreadable headers, symlinks, dry runs, check mode, a crash
# in the middle of a re-id, usage and exit statuses.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Compress::Raw::Zlib ();
use Digest::SHA qw(sha1_hex);
use File::Find;
use File::Path qw(make_path remove_tree);
use JSON::PP;
use Test::More;
use IdsTest;

my $dir = scratch();
my $top = "$FindBin::Bin/..";
# Deletes are immediate: a deleted folder leaves only its tombstone.
my $conf = write_conf($dir, delete_mode => 'immediate');
my $spool = "$dir/spool";
my $all_err = '';

sub tool_run {
	my $r = run(@_);
	$all_err .= $r->{err};
	return $r;
}
sub rc { return tool_run('reconstruct', '-C', $conf, @_); }
sub ctl { return tool_run('ctl_mboxlist', '-C', $conf, @_); }
sub dump_db { return ctl('-d')->{out}; }
sub raw_db { my $out = `mdb_dump -n -p '$dir/conf/mailboxes.db' 2>&1`; return $out; }
sub crc { return Compress::Raw::Zlib::crc32($_[0]); }

sub mbpath {
	my ($name) = @_;
	my $r = tool_run('mbpath', '-C', $conf, $name);
	chomp(my $d = $r->{out});
	return $r->{rc} == 0 ? $d : undef;
}

# The uniqueid of a live mailbox, from ctl_mboxlist -l.
sub id_of {
	my ($name) = @_;
	my $r = ctl('-l', $name);
	return undef if $r->{rc} != 0;
	my ($line) = grep { (split /\t/)[0] eq $name } split /\n/, $r->{out};
	return $line ? (split /\t/, $line)[1] : undef;
}

# uid => SHA-1 of every message a folder's index lists, checked against
# the GUID the index holds; undef if any message is unreachable.
sub messages {
	my ($d) = @_;
	return undef unless defined $d && -f "$d/cyrus.index";
	my $img = slurp("$d/cyrus.index");
	my ($start, $size, $n) = unpack('N3', substr($img, 12, 12));
	my %m;
	for my $i (0 .. $n - 1) {
		my $rec = substr($img, $start + $size * $i, $size);
		my $uid = unpack('N', $rec);
		next if unpack('N', substr($rec, 32, 4)) & (1 << 30);	# unlinked
		my $f = "$d/$uid.";
		return undef unless -f $f;
		my $sha = sha1_file($f);
		return undef unless $sha eq unpack('H*', substr($rec, 60, 20));
		$m{$uid} = $sha;
	}
	return \%m;
}

# Every file below the spool: path => size and SHA-1 (directories: "dir").
sub tree {
	my %t;
	find({ no_chdir => 1, wanted => sub {
		$t{$File::Find::name} = -l $_ ? 'link' : -d _ ? 'dir' :
		    (-s _) . ' ' . sha1_file($_);
	} }, $spool);
	return \%t;
}

# A dump with the fields a rebuild cannot know normalised (spool-layout.md).
sub normalised {
	my ($dump) = @_;
	my @out;
	for my $line (split /\n/, $dump) {
		if ($line =~ /"mbtype": "e?[a-z]*d/) {
			$line =~ s/"partition": "[^"]*", //;
			$line =~ s/"acl": \{[^}]*\}/"acl": {}/;
		}
		$line =~ s/("mtime": )"\d+"(, "uidvalidity")/$1"-"$2/;
		$line =~ s/("foldermodseq": )"\d+"(, "mbtype")/$1"-"$2/;
		push @out, $line;
	}
	return join("\n", @out) . "\n";
}

sub msg {
	my ($n) = @_;
	my $f = "$dir/msg$n.eml";
	spew($f, "From: a\@example.com\r\nSubject: message $n\r\n\r\nbody $n\r\n");
	return $f;
}

# ---- usage ------------------------------------------------------------

{
	my $r = run('reconstruct', '--help');
	is($r->{rc}, 0, '--help exits 0');
	like($r->{out}, qr/^usage: reconstruct -m /, '--help prints the usage');
	my $man = `mandoc -T ascii '$top/src/reconstruct/reconstruct.8'`;
	$man =~ s/.\x08//g;
	my ($syn) = $man =~ /\nSYNOPSIS\n(.*?)\n\n/s;
	(my $help = $r->{out}) =~ s/^usage: //;
	$help =~ s/\n\n.*//s;
	s/\s+/ /g, s/^ | $//g for $syn, $help;
	is($help, $syn, '--help matches the man page SYNOPSIS');
	is(system("mandoc -T lint -W warning '$top/src/reconstruct/reconstruct.8' >/dev/null 2>&1"),
	    0, 'the man page is clean under mandoc -T lint');
	$r = run('reconstruct', '--version');
	like($r->{out}, qr/^reconstruct \(idspool\) \S+$/, '--version');
	for my $args (['-m', 'user/x'], [], ['-q', '-v', '-m'], ['-m', '-r'], ['-m', '-u'],
	    ['-m', '-u', 'x', 'y'], ['-m', '-Z']) {
		$r = run('reconstruct', '-C', $conf, @$args);
		is($r->{rc}, 2, "usage error: @$args");
		like($r->{err}, qr/usage: reconstruct/, "... prints the usage: @$args");
	}
	is(run('reconstruct', '-C', $conf, '-m', '-u', 'a/b')->{rc}, 2, '-u with a slash');
	is(run('reconstruct', '-C', "$dir/none.conf", '-m')->{rc}, 3,
	    'a missing configuration is exit status 3');
	is(rc('-m', '-p', 'nope')->{rc}, 3, 'an unknown partition is exit status 3');
}

# ---- a spool of both layouts -------------------------------------------

my $r = tool_run('mkspool', '-C', $conf, '-s', '7', '--size', 'tiny');
is($r->{rc}, 0, 'mkspool writes a legacy spool') or diag($r->{err});
$r = ctl('-c', 'user/alice', 'user/alice/Work', 'user/alice/Work/2024', 'user/alice/Notes',
    'user/bob', 'user/bob/Inbox2');
is($r->{rc}, 0, 'uniqueid folders created') or diag($r->{err});
for my $box ('user/alice/Work', 'user/alice/Work/2024', 'user/bob/Inbox2') {
	is(tool_run('spool_append', '-C', $conf, '-q', $box, map { msg($_) } 1 .. 3)->{rc}, 0,
	    "messages delivered to $box");
}
for my $step (['user/alice/Work', 'user/alice/Jobs'], ['user/alice/Jobs', 'user/alice/Career'],
    ['user/mmueller/Travel', 'user/mmueller/Voyages']) {
	$r = tool_run('ctl_rename', '-C', $conf, '-q', @$step);
	is($r->{rc}, 0, "renamed @$step") or diag($r->{err});
}
like(dump_db(), qr/"user\.alice\.Career": \{[^\n]*"name_history": \[\{"name": "user\.alice\.Jobs"[^\n]*"name": "user\.alice\.Work"/,
    'a folder with a two-step history');
like(dump_db(), qr/"user\.alice\.Career\.2024": /, '... whose child moved with it');
like(dump_db(), qr/"example\.com!DELETED\.user\.john\^doe\.[^"]*": \{[^\n]*"mbtype": "el"/,
    'a legacy DELETED folder');

# ---- with mailboxes.db: a consistent spool changes no record ---------------

my $dump0 = dump_db();
$r = rc('-m', '-n');
is($r->{rc}, 1, '-r -n: headers to complete are something to do');
like($r->{out}, qr/cyrus\.header to rewrite \([^)]*history/, '... histories go into headers');
unlike($r->{out}, qr/: (added|removed) | -> /, '... but no record changes');
$r = rc('-m');
is($r->{rc}, 0, '-r with mailboxes.db present') or diag($r->{err});
is(dump_db(), $dump0, '... leaves every record as it was');
$r = rc('-m', '-n');
is($r->{rc}, 0, '-r -n afterwards: nothing to do') or diag($r->{out});
is($r->{out}, '', '... and nothing printed');

# ---- -n changes nothing ------------------------------------------------

{
	my ($db, $files) = (raw_db(), tree());
	ctl('-x', 'user/alice/Notes');
	my ($db1, $files1) = (raw_db(), tree());
	my $n = rc('-m', '-n');
	is($n->{rc}, 0, '-n: a deleted folder\'s tombstone is kept, nothing to do')
	    or diag($n->{out});
	is(raw_db(), $db1, '-n: mailboxes.db unchanged (mdb_dump)');
	is_deeply(tree(), $files1, '-n: no file changed');
	isnt($db1, $db, '(the deletion did change the database)');
}

# ---- lose mailboxes.db, rebuild it -------------------------------------

my $dump1 = dump_db();
unlink("$dir/conf/mailboxes.db", "$dir/conf/mailboxes.db-lock");
$r = rc('-m', '-n');
is($r->{rc}, 1, '-r -n without a mailboxes.db: everything to add');
like($r->{out}, qr{^user/alice/Career: added mailbox \(uniqueid \S+, uniqueid, partition default\)$}m,
    '... a uniqueid folder');
ok(!-e "$dir/conf/mailboxes.db", '... and no mailboxes.db is created');
$r = rc('-m', '-v');
is($r->{rc}, 0, '-r rebuilds a lost mailboxes.db') or diag($r->{err});
like($r->{out}, qr/^\d+ folders \(\d+ legacy\): \d+ mailboxes, \d+ tombstones; 0 conflicts/m,
    '-v prints a summary');
my $dump2 = dump_db();
my @kept = grep { /"user\.alice\.Notes":/ } split /\n/, $dump1;
is(scalar @kept, 1, '(the deleted folder had a tombstone)');
like(join('', map { slurp($_) } glob("$dir/spool/.tombstones/a/user/alice/tombstones")),
    qr/^%\(N user\.alice\.Notes I /m, '... kept in alice\'s tombstone record');
is(normalised($dump2), normalised($dump1),
    'the rebuilt dump equals the old one, the deleted folder\'s tombstone included, '
    . 'but for mtimes, foldermodseqs, tombstone partitions and ACLs');
like($dump2, qr/"user\.alice\.Career": \{[^\n]*"name_history": \[\{"name": "user\.alice\.Jobs"/,
    '... the history is back');
like($dump2, qr/"user\.alice\.Work": \{[^\n]*"mbtype": "ed"/, '... a tombstone at each old name');
like($dump2, qr/"user\.mmueller\.Voyages": \{[^\n]*"mbtype": "e", /,
    '... a migrated and renamed legacy folder in the uniqueid layout');
like($dump2, qr/"example\.com!user\.john\^doe\.Trips": \{[^\n]*"mbtype": "edl"/,
    '... the tombstone of a Cyrus rename, from the history the first run stored');
is(rc('-m', '-n')->{rc}, 0, 'a second rebuild has nothing to do');
{
	my $c = ctl('-c', 'user/alice/Work');
	my ($old) = $dump2 =~ /"user\.alice\.Work": \{[^\n]*"uidvalidity": "(\d+)"/;
	my ($new) = dump_db() =~ /"user\.alice\.Work": \{[^\n]*"uidvalidity": "(\d+)"/;
	ok($c->{rc} == 0 && $new > $old, 'a folder created at an old name gets a higher UIDVALIDITY');
	ctl('-x', 'user/alice/Work');
}

# ---- copies: a uniqueid folder into another user's tree, a legacy one next to itself

my $career = mbpath('user/alice/Career');
my $career_id = id_of('user/alice/Career');
my $sent = mbpath('user/john.doe/Sent@example.com');
my $sent_id = id_of('user/john.doe/Sent@example.com');
my %before = (career => messages($career), sent => messages($sent));
ok($before{career} && keys %{$before{career}} == 3, 'Career holds 3 reachable messages');
ok($before{sent} && keys %{$before{sent}} > 0, 'Sent holds reachable messages');
(my $bobdir = mbpath('user/bob')) =~ s{/[^/]+$}{};
system('cp', '-a', $career, "$bobdir/$career_id") == 0 or die 'cp';
system('cp', '-a', $sent, "$sent-copy") == 0 or die 'cp';
$r = rc('-m', '-n');
is($r->{rc}, 1, '-r -n reports the copies');
like($r->{out}, qr{^\Q$bobdir/$career_id\E: dup-uniqueid: uniqueid \Q$career_id\E is also held by \Q$career\E: new uniqueid \S+$}m,
    '... the uniqueid copy keeps nothing of the id');
like($r->{out}, qr{^\Q$sent-copy\E: dup-uniqueid: }m, '... nor the legacy copy');
$r = rc('-m');
is($r->{rc}, 0, '-r gives the copies new ids') or diag($r->{err});
like($r->{out}, qr{^\Q$bobdir/$career_id\E: renamed to \Q$bobdir\E/(\S+)$}m,
    '... and renames the uniqueid copy\'s directory');
ok(!-e "$bobdir/$career_id", '... away from the old id');
is(id_of('user/alice/Career'), $career_id, 'the original keeps its id');
my $bob_id = id_of('user/bob/Career');
ok($bob_id && $bob_id ne $career_id, 'the copy is user/bob/Career, with a new id');
is(mbpath('user/bob/Career'), "$bobdir/$bob_id", '... in the directory named by it');
my $copy_id = id_of('user/john.doe/Sent-copy@example.com');
ok($copy_id && $copy_id ne $sent_id, 'the legacy copy is registered with a new id');
like(slurp("$sent-copy/cyrus.header"), qr/ I \Q$copy_id\E /, '... written into its header');
is_deeply(messages(mbpath('user/alice/Career')), $before{career}, 'every message of Career is reachable');
is_deeply(messages(mbpath('user/bob/Career')), $before{career}, '... and of its copy');
is_deeply(messages(mbpath('user/john.doe/Sent@example.com')), $before{sent}, '... of Sent');
is_deeply(messages(mbpath('user/john.doe/Sent-copy@example.com')), $before{sent},
    '... and of its copy');
is(rc('-m', '-n')->{rc}, 0, 'and the next rebuild has nothing to do');

# ---- old-format headers without uniqueids; unreadable headers; symlinks

{
	my $kenji = mbpath('user/kenji_doe');
	my $old = "$kenji/Oldie";
	make_path($old);
	system('cp', '-a', "$career/cyrus.index", "$career/1.", $old) == 0 or die 'cp';
	spew("$old/cyrus.header", "\241\002\213\015Cyrus mailbox header\n" .
	    "\"The best thing about this system was that it had lots of goals.\"\n" .
	    "\t--Jim Morris on Andrew\nuser.kenji_doe\n\$Forwarded \nkenji_doe\tlrswipkxtecdan\t\n");
	$r = rc('-m');
	is($r->{rc}, 0, 'an old-format header without a uniqueid') or diag($r->{err});
	like($r->{out}, qr{^\Q$old\E: no-uniqueid: cyrus\.header has no uniqueid: new uniqueid (\S+)$}m,
	    '... gets a new uniqueid');
	my $id = id_of('user/kenji_doe/Oldie');
	ok($id, '... and is registered with it');
	like(slurp("$old/cyrus.header"), qr/^%\(N user\.kenji_doe\.Oldie I \Q$id\E Q user\.kenji_doe A %\(kenji_doe lrswipkxtecdan\) U \(\$Forwarded\) T e\)$/m,
	    '... written into a new-format header, quota root, ACL and flags kept');

	my $trash = mbpath('user/mmueller/Drafts');
	my $saved = slurp("$trash/cyrus.header");
	my $bytes = "\241\002\213\015garbage";
	spew("$trash/cyrus.header", $bytes);
	my $db = raw_db();
	$r = rc('-m');
	is($r->{rc}, 1, 'an unreadable header is exit status 1');
	like($r->{err}, qr{^reconstruct: \Q$trash\E: cannot read cyrus\.header: .*: left untouched$}m,
	    '... reported with its path and reason');
	is(slurp("$trash/cyrus.header"), $bytes, '... the header left as it was');
	is(raw_db(), $db, '... and its record too (nothing else changed)');
	ok(id_of('user/mmueller/Drafts'), '... so the folder is still listed');

	my $evil = "$dir/elsewhere";
	make_path($evil);
	system('cp', '-a', "$career/cyrus.header", "$career/cyrus.index", $evil) == 0 or die 'cp';
	symlink($evil, "$kenji/Linked") or die 'symlink';
	$r = rc('-m');
	like($r->{err}, qr{^reconstruct: \Q$kenji/Linked\E: not a directory or regular file: skipped$}m,
	    'a symlink in the spool is reported');
	is(id_of('user/kenji_doe/Linked'), undef, '... and not followed');
	unlink("$kenji/Linked");
	spew("$trash/cyrus.header", $saved);
	is(rc('-m', '-n')->{rc}, 0, 'with the header restored there is nothing to do');
}

# ---- check mode ---------------------------------------------------------

{
	my $d = mbpath('user/alice/Career');
	my $h = slurp("$d/cyrus.header");
	(my $stale = $h) =~ s/N user\.alice\.Career /N user.alice.Wrong /;
	spew("$d/cyrus.header", $stale);
	$r = rc('-n', 'user/alice/Career');
	is($r->{rc}, 1, 'check -n: a stale header is something to do');
	like($r->{out}, qr{^\Q$d\E: stale-name: cyrus\.header names user\.alice\.Wrong: mailboxes\.db wins$}m,
	    '... reported');
	is(slurp("$d/cyrus.header"), $stale, '... and left alone');
	$r = rc('user/alice/Career');
	is($r->{rc}, 0, 'check repairs the header') or diag($r->{err});
	like($r->{out}, qr{^\Q$d\E: cyrus\.header rewritten \(name\)$}m, '... saying what');
	is(slurp("$d/cyrus.header"), $h, '... back to what it was');
	my $idx = slurp("$d/cyrus.index");
	is(unpack('N', substr($idx, 96, 4)), crc($h), '... and the index holds its CRC');
	is(rc('-u', 'alice')->{rc}, 0, 'check -u: every mailbox of a user');
	$r = rc('user/nobody', 'user/alice');
	is($r->{rc}, 1, 'check of an unknown mailbox is exit status 1');
	like($r->{err}, qr{^reconstruct: user/nobody: no such mailbox$}m, '... naming it');
	$r = rc('-i', '--json', '-n', 'user.alice.Career');
	my $j = eval { decode_json($r->{out}) };
	is(ref $j, 'ARRAY', '--json prints a JSON array');
}

# ---- Cyrus's options mean what they mean in Cyrus -------------------------

{
	# -r is recursive: the mailboxes below each name are checked too.
	my @d = map { mbpath($_) } qw(user/alice user/alice/Career);
	my @h = map { slurp("$_/cyrus.header") } @d;
	(my $s0 = $h[0]) =~ s/N user\.alice /N user.alice.Wrong /;
	(my $s1 = $h[1]) =~ s/N user\.alice\.Career /N user.alice.Wrong /;
	spew("$d[0]/cyrus.header", $s0);
	spew("$d[1]/cyrus.header", $s1);
	$r = rc('-n', 'user/alice');
	is($r->{rc}, 1, 'without -r: only the mailbox named');
	unlike($r->{out}, qr{^\Q$d[1]\E:}m, '... not the one below it');
	$r = rc('-r', 'user/alice');
	is($r->{rc}, 0, '-r (recursive, as in Cyrus): the mailbox and those below it') or diag($r->{err});
	like($r->{out}, qr{^\Q$d[1]\E: cyrus\.header rewritten}m, '... the one below it repaired');
	is(slurp("$d[$_]/cyrus.header"), $h[$_], "... header $_ back as it was") for 0, 1;
	is(rc('-r', 'user/alice/Career')->{rc}, 0, '-r on a leaf: just the mailbox');
	$r = rc('-r', 'user/nobody');
	is($r->{rc}, 1, '-r of an unknown mailbox is exit status 1');
	like($r->{err}, qr{^reconstruct: user/nobody: no such mailbox$}m, '... naming it');

	# -u: the arguments are userids, as many as given.
	$r = rc('-u', 'alice', 'bob');
	is($r->{rc}, 0, '-u alice bob: two users (the arguments are userids)') or diag($r->{err});
	$r = rc('-u', 'alice', 'nobody');
	is($r->{rc}, 1, '-u with an unknown user is exit status 1');

	# Cyrus's options idspool has not: refused, with what to use instead.
	for my $o (qw(-x -f -s -d -G -R -U -I -o -O -P), '-V') {
		my @a = $o eq '-V' ? ('-V', 'max', 'user/alice') : ($o, 'user/alice');
		$r = rc(@a);
		is($r->{rc}, 2, "Cyrus's $o is refused");
		like($r->{err}, qr{^reconstruct: \Q$o\E \(in Cyrus: [^)]+\) is not supported; use .+ \(reconstruct\(8\)\)\n\z},
		    "... with a pointer to ours ($o)");
	}
	$r = rc('-p', 'default', 'user/alice');
	is($r->{rc}, 2, 'Cyrus\'s -p without -m is refused');
	like($r->{err}, qr{^reconstruct: -p without -m \(in Cyrus: .*\) is not supported; use reconstruct -m -p partition},
	    '... with a pointer to ours');
	for my $o ('-k', '-g') {
		$r = rc($o, 'user/alice');
		is($r->{rc}, 0, "Cyrus's deprecated $o is ignored, as there");
		is($r->{err}, "reconstruct: deprecated option $o ignored\n", '... saying so');
	}
	is(rc('-M', 'user/alice')->{rc}, 0, '-M (prefer mailboxes.db) is what check mode does');
	$r = rc('-r', '-q');
	is($r->{rc}, 2, '-r without names (the old spelling of the rebuild) is a usage error');
	is($r->{err}, "reconstruct: -r is recursive, as in Cyrus, and needs mailbox names; " .
	    "the rebuild of mailboxes.db from the spool is reconstruct -m (reconstruct(8))\n", '... pointing to -m');
}

# ---- JSON and scope ------------------------------------------------------

{
	my $d = mbpath('user/bob/Inbox2');
	(my $h = slurp("$d/cyrus.header")) =~ s/N user\.bob\.Inbox2 /N user.alice.Inbox2 /;
	spew("$d/cyrus.header", $h);
	$r = rc('-m', '-n', '--json', '-u', 'bob');
	my $j = eval { decode_json($r->{out}) } // [];
	my ($ev) = grep { $_->{rule} eq 'owner' } @$j;
	is($ev && $ev->{kind}, 'conflict', '--json: a header naming another owner');
	is($ev && $ev->{name}, 'user/bob/Inbox2', '... re-based onto the directory\'s owner');
	is(scalar(grep { ($_->{name} // '') !~ m{^user/bob} } @$j), 0, '-u bob: only bob\'s folders');
	is(rc('-m', '-q')->{rc}, 0, '-m -q repairs it');
	unlike(slurp("$d/cyrus.header"), qr/user\.alice/, '... the header names bob\'s folder');
}

# ---- a crash in the middle of a re-id -------------------------------------

for my $k (2, 3) {
	my $copy = "$bobdir/$career_id";
	system('cp', '-a', $career, $copy) == 0 or die 'cp';
	local $ENV{IDS_FAILPOINT_CRASH} = "$k:reconstruct.";
	$r = run('reconstruct', '-C', $conf, '-m', '-q');
	is($r->{rc}, 137, "crash at reconstruct failpoint $k (killed)");
	delete local $ENV{IDS_FAILPOINT_CRASH};
	$r = rc('-m', '-q');
	is($r->{rc}, 0, '... recovery and a second run finish') or diag($r->{err});
	ok(!-e $copy, '... the copy no longer has the old id');
	my @copies = grep { m{^user/bob/Career/Recovered-} } map { (split /\t/)[0] }
	    split /\n/, ctl('-l', 'user/bob')->{out};
	is(scalar @copies, 1, '... one recovered copy');
	is_deeply(messages(mbpath($copies[0] // 'none')), $before{career},
	    '... with every message reachable');
	is(rc('-m', '-n')->{rc}, 0, '... nothing left to do');
	ctl('-x', $copies[0]) if @copies;
}

# ---- a damaged tombstone record ---------------------------------------------

{
	my $rec = "$dir/spool/.tombstones/a/user/alice/tombstones";
	my $good = slurp($rec);
	spew($rec, "$good%(N user.alice.Bad I nonsense\n%(N user.alice.Later)\n");
	my $want = dump_db();
	unlink("$dir/conf/mailboxes.db", "$dir/conf/mailboxes.db-lock");
	my $b = rc('-m', '-q');
	is($b->{rc}, 1, 'a damaged tombstone record: -m exits 1');
	like($b->{err}, qr{^reconstruct: \Q$rec\E: line \d+: not a tombstone record: the rest of the file is not read$}m,
	    '... naming the file and line');
	like(dump_db(), qr/"user\.alice\.Notes": \{[^\n]*"mbtype": "ed"/,
	    '... the tombstones before the bad line are back');
	unlike(dump_db(), qr/user\.alice\.(Bad|Later)/, '... none from it or after it');
	spew($rec, $good);
}

unlike($all_err, qr/Sanitizer|runtime error/, 'no sanitizer reports');
done_testing();
