#!/usr/bin/perl
# A subtree rename (six folders: the headers replaced under one syncfs)
# killed at each of its failpoints, then a power cut imitated on top of
# the kill, and recovery: every folder keeps its user flag names.
#
# A kill keeps the page cache; a power cut on a file system that does
# not order data before metadata may keep a new name and lose the bytes
# written to it.  The worst case is imitated here from the failpoint
# log, for a rename whose set fits one batch (every file it creates is
# created before its first syncfs, every in-place write comes before its
# last one):
#   - no syncfs returned before the kill: every file the run created
#     (a new inode) is cut to 0 bytes, its name kept;
#   - the run's last syncfs did not return: every cyrus.index written
#     in place gets back its bytes from before the run.
# A header replaced by rename(2) before its bytes were synced is then
# empty, and a recovery that rebuilds it from mailboxes.db loses the
# flag names, which only cyrus.header holds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Find;
use Test::More;
use IdsTest;

my $dir = scratch();
my $root = "$dir/s";
mkdir $root or die "$root: $!";
my $conf = write_conf($root);
my @folders = ('user/pat/A', map { "user/pat/A/b$_" } 1 .. 5);
my $r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/pat', @folders);
die $r->{err} if $r->{rc};
$r = run('spool_append', '-C', $conf, '-q', $_, 'stdin', "Subject: x\r\n\r\nx\r\n"),
    $r->{rc} && die $r->{err} for @folders[0, 1];
my (%flags, %idof);
for my $i (0 .. $#folders) {
	(my $internal = $folders[$i]) =~ tr{/}{.};
	my @f = ("keep", "proj$i", "lbl$i");
	$r = run("$ENV{IDS_BUILD}/t/helper/ids-helper", 'flags', '-C', $conf, $internal, @f);
	die $r->{err} if $r->{rc};
}
# By uniqueid: the flag names each folder's header has now.
for my $h (headers()) {
	my ($id, @f) = header_id_flags($h);
	$flags{$id} = join(' ', @f);
}
is(scalar(keys %flags), 7, 'seven folders have their flag names');
ok(scalar(grep { /proj/ } values %flags) == 6, '... six of them the ones given');
system('sync');
system('cp', '-a', $root, "$dir/template") == 0 or die 'cp -a';

# Every cyrus.header* and cyrus.index below the spool.
sub headers {
	my @h;
	find(sub { push @h, $File::Find::name if /^cyrus\.header$/ }, "$root/spool");
	return @h;
}

sub header_id_flags {
	my ($file) = @_;
	my $text = slurp($file);
	my ($id) = $text =~ / I (\S+)/;
	my ($u) = $text =~ / U \(([^)]*)\)/;
	return ($id // '?', defined $u ? split / /, $u : ());
}

sub inodes {
	my %ino;
	find(sub { $ino{$File::Find::name} = (lstat $_)[1] if /^cyrus\.(?:header|index)/ }, $_[0]);
	return \%ino;
}

sub restore {
	system('rm', '-rf', $root) == 0 or die 'rm';
	system('cp', '-a', "$dir/template", $root) == 0 or die 'cp -a';
}

my $log = "$dir/points";
# The whole run's points: how many, and how many syncfs.
restore();
unlink $log;
{
	local $ENV{IDS_FAILPOINT_LOG} = $log;
	$r = run('ctl_rename', '-C', $conf, 'user/pat/A', 'user/pat/Z');
	is($r->{rc}, 0, 'the rename runs whole') or diag($r->{err});
}
my @all = split /\n/, slurp($log);
my $syncs = grep { $_ eq 'fs.syncfs' } @all;
ok($syncs >= 1, "the whole run passes $syncs syncfs");
diag('points: ' . scalar(@all));

my ($cut, $killed) = (0, 0);
for my $k (1 .. scalar(@all)) {
	restore();
	my $before = inodes($root);
	unlink $log;
	{
		local $ENV{IDS_FAILPOINT_LOG} = $log;
		local $ENV{IDS_FAILPOINT_CRASH} = $k;
		$r = run('ctl_rename', '-C', $conf, 'user/pat/A', 'user/pat/Z');
	}
	my @seen = split /\n/, (-e $log ? slurp($log) : '');
	my $at = $seen[-1] // '?';
	next if $r->{rc} == 0;	# ran to its end: no point k in this run
	$killed++;
	# syncfs points passed and returned (a later point was reached)
	my $done = grep { $seen[$_] eq 'fs.syncfs' } 0 .. $#seen - 1;
	my $now = inodes($root);
	for my $f (sort keys %$now) {
		my $new = !defined $before->{$f} || $before->{$f} != $now->{$f};
		if ($new && $done == 0 && -s $f) {
			truncate($f, 0) or die "$f: $!";
			$cut++;
		} elsif (!$new && $f =~ /cyrus\.index$/ && $done < $syncs) {
			(my $t = $f) =~ s{^\Q$root\E}{$dir/template};
			open my $fh, '+<', $f or die "$f: $!";
			print $fh slurp($t);
			close $fh;
		}
	}
	$r = run("$ENV{IDS_BUILD}/t/helper/ids-helper", 'check', '-R', '-q', '-C', $conf);
	is($r->{rc}, 0, "killed at point $k ($at), power cut: recovered, the invariants hold")
	    or diag($r->{out} . $r->{err});
	my %got;
	for my $h (headers()) {
		my ($id, @f) = header_id_flags($h);
		$got{$id} = join(' ', @f);
	}
	is_deeply(\%got, \%flags, "killed at point $k ($at): every folder keeps its flag names");
	# The rename then completes, or stands already.
	$r = run('ctl_rename', '-C', $conf, 'user/pat/A', 'user/pat/Z');
	ok($r->{rc} == 0 || $r->{err} =~ /no such mailbox/, "killed at point $k: the rename completes")
	    or diag($r->{err});
	is(run('mbpath', '-C', $conf, 'user/pat/Z/b5')->{rc}, 0, "killed at point $k: the new names");
}
ok($killed > 10, "$killed runs killed");
ok($cut > 0, "$cut files cut to nothing by the imitated power cut");
done_testing();
