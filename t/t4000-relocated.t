#!/usr/bin/perl
# t4000-relocated.t - the migration walker end to end: a legacy spool
# from mkspool plus hand-made hard cases (folders 5 deep, a DELETED
# folder, a domain, a metapartition, a message file with 3 links, a
# planted symlink, foreign files), migrated with both strategies; the
# plan (-n), progress (-s), crashes at a spread of failpoints, delivery,
# creation, renames and deletes during the walk, SIGTERM and SIGHUP of
# the daemon, two partitions walked in parallel, and --jobs: several
# workers per partition.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Test::More;
use IdsTest;
use LegacySpool;
use Torture ();

my $top = "$FindBin::Bin/..";
my $base = fast_dir('t4000') // scratch();
my $all_err = '';
# Under valgrind (make valgrind) every program is many times slower.
my $slow = $ENV{IDS_VALGRIND} ? 30 : 1;
# The daemon this test starts is stopped whatever happens to the test.
my $daemon = 0;
END {
	if ($daemon && kill(0, $daemon)) {
		kill 'TERM', $daemon;
		for (1 .. 100 * $slow) { last unless kill(0, $daemon); sleep 0.1; }
		kill 'KILL', $daemon if kill(0, $daemon);
	}
}

sub rel {
	my ($conf, @args) = @_;
	my $r = run('relocated', '-C', $conf, @args);
	$all_err .= $r->{err};
	return $r;
}

sub uid { return sprintf('a0000000-0000-4000-8000-%012d', $_[0]); }

# ---- the spool ------------------------------------------------------

my @extra = (
	{ name => 'user.deep', msgs => 2 },
	{ name => 'user.deep.a', msgs => 2 },
	{ name => 'user.deep.a.b', msgs => 1 },
	{ name => 'user.deep.a.b.c', msgs => 2 },
	{ name => 'user.deep.a.b.c.d', msgs => 1 },
	{ name => 'user.deep.a.b.c.d.e', msgs => 3 },
	{ name => 'DELETED.user.deep.Old.6B033B15', msgs => 2 },
	{ name => 'user.sis', msgs => 2, link => { key => 'x', uid => 1 }, old_header => 1 },
	{ name => 'user.sis.Lists', msgs => 2, link => { key => 'x', uid => 2 } },
	{ name => 'shared.news', msgs => 3, link => { key => 'x', uid => 3 } },
	{ name => 'example.org!user.kim', msgs => 1 },
	{ name => 'example.org!user.kim.Sent', msgs => 2 },
	{ name => 'user.sym', msgs => 1 },
	{ name => 'user.sym.Bad', msgs => 2 },
);
$extra[$_]{uniqueid} = uid($_ + 1) for 0 .. $#extra;

# make_spool($name, %conf): mkspool's tiny spool plus @extra, a symlink
# in user.sym.Bad and two foreign files; a pristine copy is kept.
sub make_spool {
	my ($name, %kv) = @_;
	my $w = "$base/$name/w";
	make_path("$w/meta");
	my $conf = write_conf($w, 'metapartition-default' => "$w/meta",
	    metapartition_files => 'header index cache', relocated_io_pressure => 0, %kv);
	my $r = run('mkspool', '-C', $conf, '--size', 'tiny');
	die "mkspool: $r->{err}" if $r->{rc};
	add_folders($conf, map { { %$_ } } @extra);
	my %dir;
	@dir{qw(bad ab news)} = resolve($conf, 0, 'user.sym.Bad', 'user.deep.a.b', 'shared.news');
	symlink('1.', "$dir{bad}/3.") or die "symlink: $!";
	spew("$dir{ab}/notes.txt", "not mail\n");
	spew("$dir{news}/core.1234", "\0\0\0");
	system('cp', '-a', $w, "$base/$name/template") == 0 or die "cp: $?";
	return { w => $w, conf => $conf, base => "$base/$name", roots => ["$w/spool", "$w/meta"],
	    foreign => ["$dir{ab}/notes.txt", "$dir{news}/core.1234"] };
}

sub restore {
	my ($s) = @_;
	remove_tree($s->{w});
	system('cp', '-a', "$s->{base}/template", $s->{w}) == 0 or die "cp: $?";
}

# The directories that may exist after a complete migration: each live
# folder's data and meta directories and their parents, and the
# directories holding the foreign files reported.
sub allowed_dirs {
	my ($s, @keep) = @_;
	my @f = map { $_->{name} } folders($s->{conf});
	my %ok = map { $_ => 1 } @{ $s->{roots} };
	for my $d (resolve($s->{conf}, 0, @f), resolve($s->{conf}, 1, @f), @keep) {
		for (my $p = $d; length $p > length $s->{w}; $p =~ s{/[^/]*$}{}) {
			$ok{$p} = 1;
		}
	}
	return \%ok;
}

sub foreign_reported {
	my ($err) = @_;
	return map { m{^relocated: (/\S.*): \d+ files? not part of the folder left in place$}
	    ? $1 : () } split /\n/, $err;
}

# Everything the tests promise after a complete migration of $s.  The
# foreign files must have been reported in $err, unless the daemon did
# the work ($syslog: its messages went to syslog).  The folder with the
# symlink stays legacy, unless $legacy says what does ('': nothing).
sub check_migrated {
	my ($s, $before, $what, $err, $syslog, $legacy) = @_;
	$legacy //= 'user.sym.Bad';
	my $after = snapshot($s->{conf});
	is_deeply($after->{files}, $before->{files},
	    "$what: every message file reachable through the resolver, SHA-1 unchanged");
	my @legacy = grep { $after->{layout}{$_} eq 'legacy' } sort keys %{ $after->{layout} };
	is("@legacy", $legacy, $legacy ? "$what: only the folder with the symlink is still legacy"
	    : "$what: no folder is still legacy");
	my @rep = $syslog ? map { s{/[^/]*$}{}r } @{ $s->{foreign} } : foreign_reported($err);
	my %rep = map { $_ => 1 } @rep;
	for my $f (@{ $s->{foreign} }) {
		(my $d = $f) =~ s{/[^/]*$}{};
		ok($rep{$d} && -f $f, "$what: foreign file reported and left: $f");
	}
	my $ok = allowed_dirs($s, @rep);
	my @left = grep { !$ok->{$_} } dirs_under(@{ $s->{roots} });
	is("@left", '', "$what: no legacy directory left but those holding foreign files");
	my @sis = map { "$after->{dir}{$_->[0]}/$_->[1]" }
	    (['user.sis', '1.'], ['user.sis.Lists', '2.'], ['shared.news', '3.']);
	my %ino = map { (stat $_)[1] => 1 } @sis;
	is(scalar(keys %ino) . ' ' . (stat $sis[0])[3], '1 3',
	    "$what: the message with three links is still one inode with three names");
	return $after;
}

# ---- usage ----------------------------------------------------------

{
	my $r = run('relocated', '--help');
	is($r->{rc}, 0, '--help exits 0');
	my $man = `mandoc -T ascii '$top/migrate/relocated/relocated.8'`;
	$man =~ s/.\x08//g;
	my ($syn) = $man =~ /\nSYNOPSIS\n(.*?)\n\n/s;
	(my $help = $r->{out}) =~ s/^usage: //;
	$help =~ s/\n\n.*//s;
	s/\s+/ /g, s/^ | $//g for $syn, $help;
	is($help, $syn, '--help matches the man page SYNOPSIS');
	is(`mandoc -T lint -W warning '$top/migrate/relocated/relocated.8' 2>&1`, '',
	    'the man page is clean under mandoc -T lint');
	$r = run('relocated', '--version');
	like($r->{out}, qr/^relocated \(idspool\) \S+$/, '--version');
	for my $args (['-1', '-n'], ['-s', '-1'], ['--rate', 'fast'], ['--strategy', 'copy'],
	    ['--grace', '-1'], ['extra']) {
		$r = run('relocated', @$args);
		is($r->{rc}, 2, "usage error: @$args");
		like($r->{err}, qr/usage: relocated/, "... prints the usage: @$args");
	}
	for my $jobs ('0', 'x', '65', '-2', '1.5', '') {
		$r = run('relocated', '-n', '--jobs', $jobs);
		is($r->{rc}, 2, "usage error: --jobs '$jobs'");
		like($r->{err}, qr/^relocated: --jobs: '\Q$jobs\E' is not a whole number from 1 to 64$/m,
		    "... named: --jobs '$jobs'");
		like($r->{err}, qr/usage: relocated/, "... and the usage follows: --jobs '$jobs'");
	}
	my $c = write_conf("$base/badjobs", relocated_jobs => 0);
	$r = run('relocated', '-C', $c, '-n');
	is($r->{rc}, 3, 'relocated_jobs: 0 in the configuration: exit 3');
	like($r->{err}, qr/^relocated: \Q$c\E:\d+: relocated_jobs: '0' is not a whole number from 1 to 64$/m,
	    '... naming the file and the key');
}

my $s = make_spool('main');
my $conf = $s->{conf};

{
	my $r = rel($conf, '-1', '-p', 'nowhere');
	is($r->{rc}, 2, 'an unknown partition is a usage error');
	like($r->{err}, qr/^relocated: -p nowhere: no such partition/m, '... naming it');
	my $c2 = write_conf("$base/nodb");
	$r = rel($c2, '-1');
	is($r->{rc}, 3, 'no mailboxes.db: exit status 3');
	like($r->{err}, qr/^relocated: .*mailboxes\.db: /m, '... naming the database');
}

# ---- -n and -s change nothing ---------------------------------------

my $before = snapshot($conf);
my $nlegacy = grep { $_ eq 'legacy' } values %{ $before->{layout} };
{
	my $tree = tree_listing(@{ $s->{roots} });
	my $db = db_listing("$s->{w}/conf");
	my $r = rel($conf, '-n');
	is($r->{rc}, 0, '-n exits 0') or diag($r->{err});
	my $plan_text = $r->{out};
	my @lines = split /\n/, $r->{out};
	is(scalar @lines, 2 * $nlegacy, '-n prints a data and a meta line per legacy folder');
	my $deep = "$before->{dir}{'user.deep.a.b.c.d.e'} -> $s->{w}/spool/d/user/deep/" . uid(6);
	ok((grep { $_ eq $deep } @lines), '-n prints "old -> new"');
	my %at = map { ($lines[$_] =~ /^(\S+)/)[0] => $_ } 0 .. $#lines;
	ok($at{ $before->{dir}{'user.deep.a.b.c.d.e'} } < $at{ $before->{dir}{'user.deep.a'} },
	    '-n lists children before their parents');
	$r = rel($conf, '-n', '--json');
	my $plan = eval { decode_json($r->{out}) } || [];
	is(scalar @$plan, $nlegacy, '-n --json: one object per legacy folder');
	is($plan->[0]{new} =~ m{^/} && $plan->[0]{oldmeta} =~ m{/meta/}, 1, '... with paths');
	$r = rel($conf, '-s');
	is($r->{rc}, 0, '-s exits 0');
	like($r->{out}, qr/^folders: $nlegacy legacy, 0 uniqueid/m, '-s counts the legacy folders');
	like($r->{out}, qr/^files left: [1-9]\d* /m, '-s counts the files left');
	like($r->{out}, qr/^relocated: not running$/m, '-s: no daemon');
	my $status_text = $r->{out};
	$r = rel($conf, '-n', '--jobs', '3');
	is($r->{out}, $plan_text, '-n --jobs 3: the same plan, printed once');
	$r = rel($conf, '-s', '--jobs', '3');
	is($r->{out}, $status_text, '-s --jobs 3: the same progress');
	is(tree_listing(@{ $s->{roots} }), $tree, '-n and -s touch no file');
	is(db_listing("$s->{w}/conf"), $db, '-n and -s change nothing in mailboxes.db');
}

# ---- one pass, link strategy ----------------------------------------

my $migrated;
{
	my $r = rel($conf, '-1', '--grace', '0');
	is($r->{rc}, 1, '-1 exits 1: one folder failed');
	like($r->{err}, qr{^relocated: user/sym/Bad: \S+/3\.: symlink in the folder; not migrated$}m,
	    'the folder with a symlink is reported');
	like($r->{out}, qr/^pass 1: @{[$nlegacy - 1]} of $nlegacy folders migrated, 1 failed/m,
	    'the summary counts them');
	$migrated = check_migrated($s, $before, 'link', $r->{err});
	ok(-l "$migrated->{dir}{'user.sym.Bad'}/3.", 'the symlink is left alone');

	$r = rel($conf, '-s');
	like($r->{out}, qr/^folders: 1 legacy, @{[scalar(keys %{$before->{layout}}) - 1]} uniqueid/m,
	    '-s after the pass');
	like($r->{out}, qr{^  user/sym/Bad \(\d{4}-\d\d-\d\d [\d:]+ UTC\): .*symlink in the folder}m,
	    '-s lists the failed folder with its reason');
	$r = rel($conf, '-s', '--json');
	my $st = eval { decode_json($r->{out}) } || {};
	is($st->{failures}[0]{name}, 'user/sym/Bad', '-s --json: the failure');
	is($st->{folders}{legacy}, 1, '-s --json: the counts');
	ok(!defined $st->{daemon}, '-s --json: no daemon');

	my $tree = tree_listing(@{ $s->{roots} });
	$r = rel($conf, '-1', '--grace', '0');
	is($r->{rc}, 1, 'a second run fails the same folder again');
	like($r->{out}, qr/^pass 1: 0 of 1 folders migrated, 1 failed/m, '... and migrates nothing');
	is(tree_listing(@{ $s->{roots} }), $tree, 'a second run changes no file');

	unlink "$migrated->{dir}{'user.sym.Bad'}/3.";
	$r = rel($conf, '-1', '--grace', '0', '-i', '-v');
	is($r->{rc}, 0, 'once the symlink is gone, the folder migrates');
	my $re = '^user\.sym\.Bad: \S+ -> \S+/' . uid(14) . ' \(\d+ files\)$';
	like($r->{out}, qr/$re/m, '-i -v prints each folder migrated');
	$r = rel($conf, '-s', '--json');
	$st = eval { decode_json($r->{out}) } || {};
	is_deeply([$st->{folders}{legacy}, scalar @{ $st->{failures} }], [0, 0],
	    '-s: nothing left, the failure record is gone');
}

# ---- the rename strategy, and -u ------------------------------------

{
	restore($s);
	my $r = rel($conf, '-1', '--grace', '0', '-u', 'deep');
	is($r->{rc}, 0, '-u migrates one owner') or diag($r->{err});
	my $err = $r->{err};
	my $snap = snapshot($conf);
	my @moved = sort grep { $snap->{layout}{$_} eq 'uniqueid' } keys %{ $snap->{layout} };
	is("@moved", 'DELETED.user.deep.Old.6B033B15 user.deep user.deep.a user.deep.a.b '
	    . 'user.deep.a.b.c user.deep.a.b.c.d user.deep.a.b.c.d.e',
	    '... its folders, DELETED ones included, and no other');
	$r = rel($conf, '-1', '--grace', '0', '--strategy', 'rename');
	is($r->{rc}, 1, 'rename strategy: exit 1 for the symlink');
	like($r->{out}, qr/ [1-9]\d* directories renamed/, '... directories were renamed');
	check_migrated($s, $before, 'rename', $err . $r->{err});
}

# ---- the rename strategy: parents after their children --------------
# user.deep.a.b.c.d.e moves first, then d and c, whose directories it
# and d have left; b holds a foreign file (linked, its directory stays),
# so a still holds b's directory when its turn comes: a is linked under
# its rename intent; user.deep (an INBOX whose uniqueid directory would
# lie inside it) is linked; the DELETED folder is renamed.  Two roots
# (the metapartition): each renamed folder counts two directories.

{
	restore($s);
	my $r = rel($conf, '-1', '--grace', '0', '-u', 'deep', '--strategy', 'rename');
	is($r->{rc}, 0, 'rename strategy, -u deep: exit 0') or diag($r->{err});
	like($r->{out}, qr/ 8 directories renamed/,
	    '... e, d, c and the DELETED folder renamed on both roots (parents after children)');
	my $snap = snapshot($conf);
	my @moved = sort grep { /^(DELETED\.)?user\.deep/ && $snap->{layout}{$_} eq 'uniqueid' }
	    keys %{ $snap->{layout} };
	is(scalar @moved, 7, '... every folder of the owner migrated');
	my %want = map { $_ => $before->{files}{$_} } grep { /^(DELETED\.)?user\.deep/ }
	    keys %{ $before->{files} };
	my %got = map { $_ => $snap->{files}{$_} } keys %want;
	is_deeply(\%got, \%want, '... every message file reachable, SHA-1 unchanged');
	ok(-f $s->{foreign}[0], '... the foreign file left in place');
	like($r->{out}, qr/ 0 pending/, '... nothing pending');
	my $st = eval { decode_json(rel($conf, '-s', '--json')->{out}) } || {};
	is_deeply([scalar @{ $st->{failures} // [1] }, scalar @{ $st->{set_aside} // [1] }], [0, 0],
	    '... no failure, no intent set aside');
}

# ---- --jobs: two workers on one partition ---------------------------

{
	restore($s);
	my $bad = (resolve($conf, 0, 'user.sym.Bad'))[0];
	unlink "$bad/3." or die "unlink $bad/3.: $!";
	my $b = snapshot($conf);
	my $n = grep { $_ eq 'legacy' } values %{ $b->{layout} };
	my $r = rel($conf, '-1', '--grace', '0', '--jobs', '2', '-v');
	is($r->{rc}, 0, '--jobs 2: exit 0') or diag($r->{err});
	like($r->{out}, qr{^partition default, worker 1/2: pid \d+$}m, '... worker 1/2 started');
	like($r->{out}, qr{^partition default, worker 2/2: pid \d+$}m, '... and worker 2/2');
	like($r->{out}, qr/^pass 1: $n of $n folders migrated, 0 failed, 0 skipped,/m,
	    "... the summary counts each of the $n folders once");
	my @done = grep { / -> \S+ \(\d+ files\)$/ } split /\n/, $r->{out};
	is(scalar @done, $n, '... and -v prints each folder once');
	my %at;
	for my $i (0 .. $#done) { $at{$1} = $i if $done[$i] =~ m{^(user/deep(?:/a(?:/b/c/d/e)?)?): }; }
	ok(defined $at{'user/deep'} && $at{'user/deep/a/b/c/d/e'} < $at{'user/deep/a'} &&
	    $at{'user/deep/a'} < $at{'user/deep'}, '... an owner\'s children before their parents');
	check_migrated($s, $b, '--jobs 2', $r->{err}, 0, '');
}

# ---- crashes at a spread of points ----------------------------------

sub crash_run {
	my ($strategy, $k) = @_;
	local $ENV{IDS_FAILPOINT_CRASH} = $k;
	return rel($conf, '-1', '--grace', '0', '--strategy', $strategy);
}

# The failpoints a clean run of a strategy passes.  Counted without
# valgrind, as the crash runs run: under it the slower walker writes
# its status file more often.
sub points_of {
	my ($strategy) = @_;
	restore($s);
	my $log = "$s->{base}/points";
	unlink $log;
	local $ENV{IDS_FAILPOINT_LOG} = $log;
	local $IdsTest::NO_VALGRIND = 1;
	rel($conf, '-1', '--grace', '0', '--strategy', $strategy);
	my @points = split /\n/, slurp($log);
	return scalar @points;
}

for my $strategy (qw(link rename)) {
	my $n = points_of($strategy);
	ok($n > 200, "$strategy: a whole run passes $n failpoints");
	my @ks = map { 1 + int($_ * ($n - 2) / 12) } 0 .. 12;
	@ks = @ks[map { $_ * 3 } 0 .. 4] if $strategy eq 'rename';
	my (@bad, $crashed);
	for my $k (@ks) {
		restore($s);
		my $r = crash_run($strategy, $k);
		if ($r->{rc} == 128 + 9) {
			$crashed++;
		} else {
			push @bad, "k=$k: no crash, exit $r->{rc}";
		}
		if ($strategy eq 'link') {
			# Before any recovery, every folder resolves to a complete copy.
			my $mid = snapshot($conf);
			push @bad, "k=$k: a folder is incomplete before recovery"
			    unless is_deeply_quiet($mid->{files}, $before->{files});
		}
		$r = rel($conf, '-1', '--grace', '0', '--strategy', $strategy);
		push @bad, "k=$k: re-run exit $r->{rc}: $r->{err}" unless $r->{rc} == 1;
		my $after = snapshot($conf);
		push @bad, "k=$k: messages differ after the re-run"
		    unless is_deeply_quiet($after->{files}, $before->{files});
		my @legacy = grep { $after->{layout}{$_} eq 'legacy' } keys %{ $after->{layout} };
		push @bad, "k=$k: still legacy: @legacy" unless "@legacy" eq 'user.sym.Bad';
		my $ok = allowed_dirs($s, map { s{/[^/]*$}{}r } @{ $s->{foreign} });
		my @left = grep { !$ok->{$_} } dirs_under(@{ $s->{roots} });
		push @bad, "k=$k: left behind: @left" if @left;
	}
	is(join("\n", @bad), '', "$strategy: killed at " . scalar(@ks)
	    . " points of a whole run, re-run, invariants hold each time");
	is($crashed, scalar @ks, "$strategy: every one of those runs was killed");
}

sub is_deeply_quiet {
	my ($a, $b) = @_;
	return JSON::PP->new->canonical->encode($a) eq JSON::PP->new->canonical->encode($b);
}

# ---- delivery, creates, renames and deletes during the walk ---------

{
	restore($s);
	my %expect;
	for my $n (keys %{ $before->{files} }) {
		$expect{$_}++ for grep { $_ ne 'symlink' } values %{ $before->{files}{$n} };
	}
	my @targets = qw(user.deep user.deep.a.b.c.d.e user.sis.Lists example.org!user.kim.Sent
	    user.olga^smith user.zoe-novak.Brouillons shared.news);
	my $errfile = "$s->{base}/walker.err";
	my $pid = fork();
	if ($pid == 0) {
		open(STDERR, '>', $errfile) or exit 98;
		# Under valgrind the walker runs under memcheck too, slowed
		# down more than the deliveries it must overlap (a dozen of
		# them take half a minute or more on a busy machine).
		exec(valgrind(tool('relocated')), tool('relocated'), '-C', $conf, '-1', '-q',
		    '--grace', '1', '--rate', $ENV{IDS_VALGRIND} ? 2 : 150) or exit 99;
	}
	my ($i, %delivered, @ops) = (0);
	my $deliver = sub {
		my ($name) = @_;
		my $m = message("delivered", ++$i);
		my $r = run('spool_append', '-C', $conf, '-i', '-q', $name, stdin => $m);
		$all_err .= $r->{err};
		if ($r->{rc} == 0) { $expect{ Digest::SHA::sha1_hex($m) }++; $delivered{$i} = 1; }
		return $r->{rc};
	};
	while (waitpid($pid, WNOHANG) == 0) {
		$deliver->($targets[$i % @targets]);
		if ($i == 5) {
			my $r = run('ctl_mboxlist', '-C', $conf, '-i', '-c', 'user.deep.new');
			push @ops, "create $r->{rc}";
			push @targets, 'user.deep.new' unless $r->{rc};
		}
		if ($i == 8 && -x tool('ctl_rename')) {
			my $r = run('ctl_rename', '-C', $conf, '-i', '-q', 'user.deep.a.b.c', 'user.deep.moved');
			push @ops, "rename $r->{rc} $r->{err}";
			unless ($r->{rc}) { s/^user\.deep\.a\.b\.c\.d\.e$/user.deep.moved.d.e/ for @targets; }
		}
		if ($i == 11) {
			# A delayed delete (the default): the folder becomes
			# DELETED.user.sym.<hex>, its messages stay.
			my $r = run('ctl_mboxlist', '-C', $conf, '-i', '-x', 'user.sym');
			push @ops, "delete $r->{rc}";
		}
	}
	my $rc = $? >> 8;
	my $werr = slurp($errfile);
	$all_err .= $werr;
	is($rc, 1, 'the walker ran while mail was delivered (exit 1: the symlink)');
	like($werr, qr{^relocated: user/sym/Bad: }m, '... and reported only that folder')
	    and unlike($werr, qr{^relocated: (?!user/sym/Bad: |/\S+: 1 file not part)}m,
	    '... and nothing else went wrong');
	ok($i >= 12, "$i deliveries were tried during the walk (@ops)");
	is(scalar(keys %delivered), $i, '... and every one succeeded');
	my $snap = snapshot($conf);
	my %have;
	for my $n (keys %{ $snap->{files} }) {
		$have{$_}++ for grep { $_ ne 'symlink' } values %{ $snap->{files}{$n} };
	}
	delete $expect{$_} for grep { !$expect{$_} } keys %expect;
	is_deeply(\%have, \%expect, 'every message, old and delivered, is present exactly once');
	my @bad;
	for my $n (sort keys %{ $snap->{files} }) {
		my $meta = (resolve($conf, 1, $n))[0];
		my %idx = map { ("$_->{uid}." => $_->{guid}) }
		    grep { !($_->{flags} & (1 << 30)) } index_records("$meta/cyrus.index");
		my %files = %{ $snap->{files}{$n} };
		delete $files{$_} for grep { $files{$_} eq 'symlink' } keys %files;
		push @bad, $n unless is_deeply_quiet(\%idx, \%files);
	}
	is("@bad", '', 'each folder: its index records and its files agree one to one');
	my @legacy = grep { $snap->{layout}{$_} eq 'legacy' } keys %{ $snap->{layout} };
	is("@legacy", 'user.sym.Bad', 'and everything but the symlinked folder is migrated');
}

# ---- the daemon: SIGHUP, SIGTERM, restart ---------------------------

sub status_json {
	my $r = rel($conf, '-s', '--json');
	return eval { decode_json($r->{out}) } || {};
}

sub wait_until {
	my ($secs, $cond) = @_;
	my $end = time + $secs * $slow;
	while (time < $end) { return 1 if $cond->(); sleep 0.1; }
	return 0;
}

{
	restore($s);
	# Slow enough to be stopped mid-walk, under valgrind too (each
	# status poll is then a second or two).
	my $r = rel($conf, '--grace', '0', '--rate', $ENV{IDS_VALGRIND} ? 2 : 15,
	    '--interval', '3600');
	is($r->{rc}, 0, 'the daemon starts') or diag($r->{err});
	my $pid = $daemon = 0 + slurp("$s->{w}/conf/relocated.pid");
	ok($pid > 0 && kill(0, $pid), "it runs detached, pid $pid in the pidfile");
	ok(wait_until(20, sub { (status_json()->{daemon}{folders_done} // 0) >= 2 }),
	    '-s shows the running daemon\'s progress');
	my $st = status_json();
	is($st->{daemon}{pid}, $pid, '... with its pid');
	ok(defined $st->{daemon}{files_per_second}, '... and its rate');
	$r = rel($conf, '-1');
	is($r->{rc}, 3, 'a second walker refuses to start');
	like($r->{err}, qr/already running \(pid $pid\)/, '... naming the pid');

	is($st->{daemon}{strategy}, 'link', 'the daemon links by default');
	my $pass = $st->{daemon}{pass} // 0;
	open my $fh, '>>', $conf or die;
	print $fh "relocated_strategy: rename\n";
	close $fh;
	kill 'HUP', $pid;
	ok(wait_until(20, sub { my $d = status_json()->{daemon};
	    ($d->{strategy} // '') eq 'rename' && ($d->{pass} // 0) > $pass }),
	    'SIGHUP: the daemon re-reads its configuration and starts a new pass with it');
	ok(wait_until(20, sub { (status_json()->{daemon}{folders_done} // 0) >= 1 }),
	    '... and keeps migrating');

	kill 'TERM', $pid;
	ok(wait_until(20, sub { !kill(0, $pid) }), 'SIGTERM: the daemon exits');
	$st = status_json();
	ok(!defined $st->{daemon}, '-s: not running any more');
	ok($st->{folders}{legacy} > 1 && $st->{folders}{uniqueid} > 0,
	    "stopped mid-walk: $st->{folders}{uniqueid} migrated, $st->{folders}{legacy} left");
	is(scalar(() = db_listing("$s->{w}/conf") =~ /^ X/mg), 0,
	    '... cleanly: no intent left behind');
	my $mid = snapshot($conf);
	ok(is_deeply_quiet($mid->{files}, $before->{files}), '... and every message reachable');
	$r = rel($conf, '-1', '--grace', '0');
	is($r->{rc}, 1, 'a restart finishes the walk');
	check_migrated($s, $before, 'after SIGTERM and a restart', $r->{err}, 1);
}

# ---- kill -9 of the daemon with --jobs 2: its workers die with it ----

{
	restore($s);
	my $r = rel($conf, '--grace', '0', '--jobs', '2', '--rate', $ENV{IDS_VALGRIND} ? 2 : 15,
	    '--interval', '3600');
	is($r->{rc}, 0, '--jobs 2: the daemon starts') or diag($r->{err});
	my $pid = $daemon = 0 + slurp("$s->{w}/conf/relocated.pid");
	my @workers;
	ok(wait_until(20, sub { @workers = Torture::children_of($pid); @workers == 2 }),
	    "... with two workers (@workers)");
	ok(wait_until(20, sub { (status_json()->{daemon}{folders_done} // 0) >= 2 }),
	    '... migrating');
	kill 'KILL', $pid;
	ok(wait_until(5, sub { !grep { Torture::alive($_) } $pid, @workers }),
	    'kill -9 of the daemon: its workers are gone within seconds');
	$daemon = 0;
	my $st = status_json();
	ok(!defined $st->{daemon}, '-s --json: no daemon');
	like(rel($conf, '-s')->{out}, qr/^relocated: not running$/m, '-s: not running');
	$r = rel($conf, '-1', '--grace', '0', '--jobs', '2');
	unlike($r->{err}, qr/already running/, 'a restart is not refused');
	is($r->{rc}, 1, '... and finishes the walk');
	check_migrated($s, $before, 'after kill -9 of the daemon and a restart', $r->{err}, 1);
}

# A pidfile still locked (by what a dead walker left: here a process
# of the test) but naming a dead pid: not running, and a new walker
# waits for the lock, then says why it cannot start.
{
	my $dead = fork() // die;
	POSIX::_exit(0) if $dead == 0;
	waitpid($dead, 0);
	my $pidfile = "$s->{w}/conf/relocated.pid";
	pipe(my $rd, my $wr) or die;
	my $holder = fork() // die;
	if ($holder == 0) {
		close $rd;
		open(my $fh, '+<', $pidfile) or POSIX::_exit(1);
		# struct flock: l_type F_WRLCK, l_whence SEEK_SET, l_start, l_len, l_pid; F_OFD_SETLK 37
		my $fl = pack('s s x4 q q i x4', 1, 0, 0, 0, 0);
		fcntl($fh, 37, $fl) or POSIX::_exit(2);
		truncate($fh, 0);
		syswrite($fh, "$dead\n");
		syswrite($wr, "locked\n");
		sleep 60;
		POSIX::_exit(0);
	}
	close $wr;
	my $line = <$rd> // '';
	is($line, "locked\n", "the pidfile locked, naming pid $dead, which is dead");
	like(rel($conf, '-s')->{out}, qr/^relocated: not running$/m, '-s: not running');
	my $t0 = time;
	my $r = rel($conf, '-1', '--grace', '0');
	is($r->{rc}, 3, 'a walker starting meanwhile waits, then refuses');
	is($r->{err}, "relocated: $pidfile: locked by processes of a walker that is gone; try again when they have exited\n",
	    '... saying why, without naming the dead pid as running');
	ok(time - $t0 >= 4, '... after waiting for the lock to go');
	kill 'KILL', $holder;
	waitpid($holder, 0);
}

# ---- SIGHUP re-reads the configuration, and never stops the walk ----

{
	restore($s);
	my $c = slurp($conf);
	my ($out, $err) = ("$s->{w}/hup.out", "$s->{w}/hup.err");
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		open(STDOUT, '>', $out);
		open(STDERR, '>', $err);
		exec(valgrind(tool('relocated')), tool('relocated'), '-C', $conf, '-1', '--grace', '0',
		    '--rate', $ENV{IDS_VALGRIND} ? 2 : 15) or POSIX::_exit(127);
	}
	ok(wait_until(20, sub { (status_json()->{daemon}{folders_done} // 0) >= 1 }),
	    'relocated -1 walks');
	# A configuration that cannot be read is kept out, the walk goes on.
	spew($conf, "$c" . "relocated_interval: soon\n");
	kill 'HUP', $pid;
	ok(wait_until(20, sub { -s $err && slurp($err) =~ /keeping the old configuration/ }),
	    'SIGHUP with a bad configuration: reported, the old one kept');
	spew($conf, "$c" . "relocated_strategy: rename\n");
	kill 'HUP', $pid;
	ok(wait_until(20, sub { (status_json()->{daemon}{strategy} // '') eq 'rename' }),
	    'SIGHUP: relocated -1 re-reads the configuration (the strategy is now rename)');
	waitpid($pid, 0);
	my $rc = $? >> 8;
	spew($conf, $c);
	my $o = slurp($out);
	is($rc, 1, '... and finishes its walk (exit 1: the folder with the symlink)');
	like($o, qr/^\Q$conf\E re-read$/m, '... saying the configuration was re-read');
	like($o, qr/^pass 1 \(ended early to re-read the configuration\): .*\npass 2 \(ended early to re-read the configuration\): .*\npass 3: /ms,
	    '... each SIGHUP ending a pass after the folder in hand and starting the next');
	like(slurp($err), qr/^relocated: \Q$conf\E:\d+: relocated_interval: 'soon' is not a .*; keeping the old configuration$/m,
	    '... the bad value named');
	check_migrated($s, $before, 'after two SIGHUPs', slurp($err) . $o);
}

# ---- two partitions, in parallel ------------------------------------

{
	my $w = "$base/two";
	make_path("$w/second");
	my $c = write_conf($w, 'partition-second' => "$w/second", relocated_io_pressure => 0);
	my $r = run('mkspool', '-C', $c, '--size', 'tiny');
	die "mkspool: $r->{err}" if $r->{rc};
	add_folders($c, map { { name => "user.p$_", uniqueid => uid(100 + $_), msgs => 3,
	    partition => 'second' } } 1 .. 4);
	my $b = snapshot($c);
	my $parts = run('ctl_mboxlist', '-C', $c, '-l')->{out};
	ok($parts =~ /\tsecond$/m && $parts =~ /\tdefault$/m, 'folders on both partitions');
	{
		local $ENV{IDS_FAILPOINT} = 'relocate.link:EXDEV';
		$r = run('relocated', '-C', $c, '-1', '--grace', '0', '-p', 'second');
	}
	is($r->{rc}, 0, '-p second, every link failing with EXDEV') or diag($r->{err});
	my $mid = snapshot($c);
	my %part = map { $_->{name} => $_->{partition} } folders($c);
	my @wrong = grep { ($mid->{layout}{$_} eq 'uniqueid') != ($part{$_} eq 'second') }
	    sort keys %part;
	is("@wrong", '', '... migrates that partition, and only that one');
	is((stat "$mid->{dir}{'user.p1'}/1.")[3], 1, '... by copying (verified) where linking fails');
	ok(is_deeply_quiet($mid->{files}, $b->{files}), '... with every message intact');
	$r = run('relocated', '-C', $c, '-1', '--grace', '0', '--json', '-u', 'nobody');
	my $sum = eval { decode_json($r->{out}) } || {};
	is_deeply([$r->{rc}, $sum->{folders_total}, $sum->{workers}], [0, 0, 2],
	    '-1 --json prints the summary (two workers, nothing for -u nobody)');
	$r = run('relocated', '-C', $c, '-1', '--grace', '0', '-v');
	is($r->{rc}, 0, 'then both partitions') or diag($r->{err});
	like($r->{out}, qr/^partition default: worker \d+$/m, 'a worker for partition default');
	like($r->{out}, qr/^partition second: worker \d+$/m, 'and one for partition second');
	my $a = snapshot($c);
	ok(is_deeply_quiet($a->{files}, $b->{files}), 'every message intact');
	is(scalar(grep { $_ eq 'legacy' } values %{ $a->{layout} }), 0, 'nothing legacy left');
	$all_err .= $r->{err};
}

# ---- two partitions, three workers each -----------------------------

{
	my $w = "$base/two-jobs";
	make_path("$w/second");
	my $c = write_conf($w, 'partition-second' => "$w/second", relocated_io_pressure => 0,
	    relocated_jobs => 2);
	my $r = run('mkspool', '-C', $c, '--size', 'tiny');
	die "mkspool: $r->{err}" if $r->{rc};
	add_folders($c, map { { name => "user.q$_", uniqueid => uid(200 + $_), msgs => 3,
	    partition => 'second' } } 1 .. 4);
	my $b = snapshot($c);
	my $n = grep { $_ eq 'legacy' } values %{ $b->{layout} };
	my $summary = sub {
		my $r = run('relocated', '-C', $c, '-1', '--grace', '0', '--json', @_);
		$all_err .= $r->{err};
		return ($r, eval { decode_json($r->{out}) } || {});
	};
	my ($r1, $sum) = $summary->('-u', 'nobody');
	is_deeply([$r1->{rc}, $sum->{workers}], [0, 4],
	    'relocated_jobs: 2 in the configuration: two workers per partition');
	($r1, $sum) = $summary->('-u', 'nobody', '-p', 'second', '--jobs', '3');
	is_deeply([$r1->{rc}, $sum->{workers}], [0, 3], '-p second --jobs 3: three workers');
	($r1, $sum) = $summary->('--jobs', '3');
	is($r1->{rc}, 0, '--jobs 3 on two partitions: exit 0') or diag($r1->{err});
	is_deeply([@$sum{qw(workers folders_total folders_done folders_failed folders_skipped
	    folders_left)}], [6, $n, $n, 0, 0, 0],
	    "... six workers; the JSON summary counts each of the $n folders once");
	my $a = snapshot($c);
	ok(is_deeply_quiet($a->{files}, $b->{files}),
	    '... every message file reachable through the resolver, SHA-1 unchanged');
	is(scalar(grep { $_ eq 'legacy' } values %{ $a->{layout} }), 0, '... no folder legacy');
	my $t = { w => $w, conf => $c, roots => ["$w/spool", "$w/second"] };
	my $ok = allowed_dirs($t, foreign_reported($r1->{err}));
	my @left = grep { !$ok->{$_} } dirs_under(@{ $t->{roots} });
	is("@left", '', '... and no legacy directory left');
}

unlike($all_err, qr/runtime error|AddressSanitizer|LeakSanitizer/, 'no sanitizer spoke');
done_testing();
