#!/usr/bin/perl
# ctl_rename: subtree and user renames, refusals with their messages and
# exit codes, --copy, -n, --json; and that a rename of uniqueid folders
# makes no system call on any message file (strace).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use IdsTest;

my $dir = scratch();
my $conf = write_conf($dir);
my $msg = "From: a\@example.com\r\nSubject: hello\r\n\r\nbody\r\n";

sub list {
	my $r = run('ctl_mboxlist', '-C', $conf, '-l');
	return { map { my @f = split /\t/; ($f[0] => $f[1]) } split /\n/, $r->{out} };
}

# A user with a tree of folders, messages in some.
ok_run('create folders', 'ctl_mboxlist', '-C', $conf, '-c', 'user/john', 'user/john/Projects',
    'user/john/Projects/2019', 'user/john/Projects/2019/Q1', 'user/john/Projects/2019/Q1/Jan',
    'user/mary', 'user/john/Other');
for my $f ('user/john/Projects', 'user/john/Projects/2019/Q1/Jan') {
	ok_run("deliver to $f", 'spool_append', '-C', $conf, '-q', $f, 'stdin', $msg) for 1 .. 3;
}
my $before = list();
my $path = run('mbpath', '-C', $conf, 'user/john/Projects/2019/Q1/Jan')->{out};

# -n: the plan, nothing changed.
my $r = ok_run('-n', 'ctl_rename', '-C', $conf, '-n', 'user/john/Projects', 'user/john/Archive');
is($r->{out}, join('', map { "user/john/Projects$_ -> user/john/Archive$_\n" }
    ('', '/2019', '/2019/Q1', '/2019/Q1/Jan')), '-n prints every old -> new');
is_deeply(list(), $before, '-n changed nothing');

# The rename, under strace: no system call names a message file.
{
	my $trace = "$dir/trace";
	my @cmd = ('strace', '-f', '-qq', '-e', 'trace=%file,%desc', '-o', $trace,
	    tool('ctl_rename'), '-C', $conf, 'user/john/Projects', 'user/john/Archive');
	# LeakSanitizer stops itself under ptrace: no leak check in this run.
	local $ENV{ASAN_OPTIONS} = join(':', grep { length } $ENV{ASAN_OPTIONS} // '', 'detect_leaks=0');
	$r = run(@cmd);
	is($r->{rc}, 0, 'rename under strace') or diag($r->{err});
	my @calls = grep { m{/\d+\.["/.]|"\d+\.(?:\.NEW)?"} } split /\n/, slurp($trace);
	is(scalar(@calls), 0, 'no system call on a message file') or diag(join("\n", @calls[0 .. 4]));
	ok(scalar(grep { /cyrus\.header/ } split /\n/, slurp($trace)) > 0, 'the trace saw the headers rewritten');
	# The four new headers durable together (one syncfs), then swapped in
	# and their index CRCs written (one more syncfs): no fsync of each.
	my @sync = grep { /^\d+\s+(?:syncfs\(|rename(?:at2?)?\(.*cyrus\.header)/ }
	    split /\n/, slurp($trace);
	is(join(' ', map { /(fsync|syncfs|rename)/ } @sync), 'syncfs rename rename rename rename syncfs',
	    'the new headers made durable by one syncfs before any is renamed into place, '
	    . 'the renames by a second, none fsynced one by one') or diag(join("\n", @sync));
	is(scalar(grep { /^\d+\s+fsync\(/ } split /\n/, slurp($trace)), 0, '... and no fsync');
}
my $after = list();
is($after->{'user/john/Archive/2019/Q1/Jan'}, $before->{'user/john/Projects/2019/Q1/Jan'},
    'the folder kept its uniqueid');
ok(!exists $after->{'user/john/Projects'}, 'the old name is gone');
is(run('mbpath', '-C', $conf, 'user/john/Archive/2019/Q1/Jan')->{out}, $path,
    'the folder did not move on disk');
my $hdr = slurp((split /\n/, $path)[0] . '/cyrus.header');
like($hdr, qr/N user\.john\.Archive\.2019\.Q1\.Jan /, 'cyrus.header names the new name');
like($hdr, qr/H \(%\(N user\.john\.Projects\.2019\.Q1\.Jan /, 'and keeps the old one in its history');

# The dump shows the history and the tombstones.
my $dump = run('ctl_mboxlist', '-C', $conf, '-d')->{out};
like($dump, qr/"user\.john\.Projects": \{[^\n]*"mbtype": "ed"/, 'a tombstone at the old name');
like($dump, qr/"user\.john\.Archive": \{[^\n]*"name_history": \[\{"name": "user\.john\.Projects"/,
    'name_history in the dump');

# Refusals: each with its message and exit status 1, nothing changed.
my @refusals = (
	[['user/john/Nope', 'user/john/X'], qr/no such mailbox/, 'missing source'],
	[['user/john/Archive', 'user/john/Other'], qr/user\.john\.Other: mailbox already exists/, 'target exists'],
	[['user/john/Archive', 'user/john/Archive/2019/Sub'], qr/inside the subtree/, 'target inside the source'],
	[['user/john', 'user/john'], qr/onto itself/, 'INBOX onto itself'],
	[['user/john/Other', 'user/mary/Other'], qr/use --copy/, 'cross-user move'],
	[['user/john/Other', 'user/nobody/Other', '--copy'], qr/target user user\.nobody does not exist/, 'copy to a missing user'],
	[['user/john/Archive', 'user/mary/Archive', '--copy'], qr/move its children first/, 'copy of a tree'],
	[['user/john/Other', 'user/john/Bad/../x'], qr/\S/, 'invalid name'],
	[['-P', 'other', 'user/john/Other', 'user/john/Else'], qr/does not move folders between partitions/, 'another partition'],
);
my $snap = run('ctl_mboxlist', '-C', $conf, '-d')->{out};
for my $t (@refusals) {
	my ($args, $re, $what) = @$t;
	$r = run('ctl_rename', '-C', $conf, @$args);
	is($r->{rc}, 1, "$what: exit 1");
	like($r->{err}, qr/^ctl_rename: .*$re/m, "$what: message");
}
is(run('ctl_mboxlist', '-C', $conf, '-d')->{out}, $snap, 'the refusals changed nothing');

# --copy: a new folder with a new uniqueid under the other user.
$r = ok_run('--copy', 'ctl_rename', '-C', $conf, '--copy', '--json', 'user/john/Other', 'user/mary/Other');
my $j = decode_json($r->{out});
ok($j->{ok} && $j->{folders}[0]{copy}, '--json reports the copy');
$after = list();
ok($after->{'user/mary/Other'} && $after->{'user/mary/Other'} ne $before->{'user/john/Other'},
    'the copy has a new uniqueid');
ok(!exists $after->{'user/john/Other'}, 'the source is gone');

# A user rename moves the user's directory, one rename.
my ($jdir) = run('mbpath', '-C', $conf, 'user/john')->{out} =~ m{^(.*)/[^/]+\n};
ok(-d $jdir, 'john has a directory');
ok_run('user rename', 'ctl_rename', '-C', $conf, 'user/john', 'user/jack@example.com');
ok(!-e $jdir, 'the old user directory is gone');
$after = list();
is($after->{'user/jack/Archive/2019/Q1/Jan@example.com'}, $before->{'user/john/Projects/2019/Q1/Jan'},
    'every folder moved with the user');
for my $f ('user/jack/Archive@example.com', 'user/jack/Archive/2019/Q1/Jan@example.com') {
	my ($p) = split /\n/, run('mbpath', '-C', $conf, $f)->{out};
	my @files = glob("$p/*.");
	is(scalar(@files), 3, "$f: its three messages");
	is(sha1_file($_), sha1_file($files[0]), "$f: $_ intact") for @files;
}

# Usage and environment errors.
is(run('ctl_rename', '-C', $conf, 'only-one')->{rc}, 2, 'usage: exit 2');
is(run('ctl_rename', '-C', "$dir/nonexistent.conf", 'a', 'b')->{rc}, 3, 'no config: exit 3');
$r = run('ctl_rename', '--help');
is($r->{rc}, 0, '--help exits 0');
is(norm($r->{out} =~ s/^usage: //r =~ s/\n\n.*//sr), man_synopsis('src/ctl_rename/ctl_rename.8'),
    '--help matches the man page SYNOPSIS');

done_testing();
