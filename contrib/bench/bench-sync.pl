#!/usr/bin/perl
# bench-sync.pl - spool_sync as a csync replica against Cyrus's own
# sync_server, side by side in one run, fed by the same real Cyrus 3.6
# sync_client from the same master.
#
#   bench-sync.pl [DIR]
#
# DIR (default /tmp/idspool-bench-sync, wiped) receives a private Cyrus
# master populated with Cyrus's own imapd: BENCH_SYNC_USERS users
# (default 20), each with BENCH_SYNC_FOLDERS folders (default 5, INBOX
# included) of BENCH_SYNC_MESSAGES messages (default 100): 10,000
# messages by default, with flags on a third of them.  Then, BENCH_RUNS
# times (default 3), each replica is made fresh and timed:
#
#   full    sync_client -o -u USER... into an empty replica (every
#           folder created, every message file sent)
#   resync  the same command again (nothing to apply: the CRCs agree)
#
# for the replica "cyrus" (sync_server -X) and "idspool" (spool_sync
# --serve), each run once per connection by the same listener, as inetd
# would run them.  Printed: the medians, messages/s of
# the full sync, the ratio idspool/cyrus of both (above 1 means idspool
# is faster), and the peak RSS of each replica process.  Needs root
# (the Cyrus programs run as the cyrus user); Cyrus is installed by
# contrib/install-deps when missing.  IDS_BUILD names the build.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use File::Find ();
use File::Path qw(make_path remove_tree);
use POSIX qw(floor);
use Time::HiRes qw(time sleep);
use IdsTest;
use CyrusPeer;

my $top = "$FindBin::Bin/../..";
my $dir = $ARGV[0] // '/tmp/idspool-bench-sync';
my $nusers = $ENV{BENCH_SYNC_USERS} // 20;
my $nfolders = $ENV{BENCH_SYNC_FOLDERS} // 5;
my $nmsgs = $ENV{BENCH_SYNC_MESSAGES} // 100;
my $runs = $ENV{BENCH_RUNS} // 3;

CyrusPeer::ensure($top);
remove_tree($dir);
make_path($dir) or die "bench-sync: $dir: $!\n";

sub median { my @s = sort { $a <=> $b } @_; return $s[floor($#s / 2)]; }

# ---- the master ----------------------------------------------------------
my $master = CyrusPeer->new("$dir/master");
my @users = map { sprintf('u%03d', $_) } 1 .. $nusers;
my $t0 = time;
$master->imap('admin', map { "CREATE user.$_" } @users);
my $total = 0;
for my $u (@users) {
	my @cmds = map { "CREATE F$_" } 1 .. $nfolders - 1;
	for my $f ('INBOX', map { "F$_" } 1 .. $nfolders - 1) {
		for my $m (1 .. $nmsgs) {
			my $flags = $m % 3 == 0 ? '\Seen' : $m % 3 == 1 ? '' : '\Flagged $Label';
			push @cmds, CyrusPeer::append_cmd($f, $flags,
			    CyrusPeer::msg($total++, "$u\@example.com") . ('y' x ($m * 97 % 4000)));
		}
	}
	# imapd sessions of at most 500 commands: the harness writes all of
	# a session's input before it reads the answers.
	$master->imap($u, splice(@cmds, 0, 500)) while @cmds;
}
printf "master: %d users, %d folders, %d messages (made in %.1f s by Cyrus's imapd)\n",
    $nusers, $nusers * $nfolders, $total, time - $t0;

# ---- the replicas --------------------------------------------------------
# A replica process wrapped in GNU time, which writes its peak RSS (KiB)
# to $rss when the process ends.
sub timed { my ($rss, @cmd) = @_; return ('/usr/bin/time', '-f', '%M', '-a', '-o', $rss, @cmd); }

# The largest of the two sessions' figures (time(1) writes each when
# its session has ended, which may be just after sync_client's exit).
sub peak {
	my ($f) = @_;
	for (1 .. 100) { last if -f $f && (() = slurp($f) =~ /^\d+$/mg) >= 2; sleep 0.05; }
	my ($m) = sort { $b <=> $a } (-f $f ? slurp($f) =~ /^(\d+)$/mg : ());
	return $m // 0;
}

# The message files under a replica's spool: every one must have arrived.
sub files_in {
	my ($top) = @_;
	my $n = 0;
	File::Find::find(sub { $n++ if -f $_ && /^\d+\.$/ }, $top);
	return $n;
}

sub check_files {
	my ($top, $what) = @_;
	my $n = files_in($top);
	die "bench-sync: $what holds $n message files, not $total\n" if $n != $total;
}

# sync_client of every user; returns its wall-clock seconds.
sub push_all {
	my ($sock, $what) = @_;
	my $s = time;
	my $r = $master->cyrus('sync_client', '-S', $sock, '-o', '-u', @users);
	my $t = time - $s;
	die "bench-sync: sync_client into $what: exit $r->{rc}: $r->{err}\n" if $r->{rc};
	return $t;
}

my (%full, %resync, %rss);
for my $run (1 .. $runs) {
	# Cyrus's sync_server, one per connection, as inetd would run it.
	my $cy = CyrusPeer->new("$dir/cyrus$run");
	my $csock = "$dir/cyrus$run.sock";
	my $crss = "$dir/cyrus$run.rss";
	$cy->serve($csock, timed($crss, $cy->service_cmd('sync_server')));
	push @{$full{cyrus}}, push_all($csock, 'sync_server');
	check_files("$dir/cyrus$run/spool", 'the Cyrus replica');
	push @{$resync{cyrus}}, push_all($csock, 'sync_server');

	# spool_sync --serve, one per connection in the same way, on an
	# idspool spool named as the master names its folders.
	my $idir = "$dir/ids$run";
	make_path($idir);
	my $conf = write_conf($idir, unixhierarchysep => 'no', hashimapspool => 'no');
	my $isock = "$dir/ids$run.sock";
	my $irss = "$dir/ids$run.rss";
	$cy->serve($isock, timed($irss, tool('spool_sync'), '-C', $conf, '--serve'));
	push @{$full{idspool}}, push_all($isock, 'spool_sync');
	check_files($idir, 'the idspool replica');
	push @{$resync{idspool}}, push_all($isock, 'spool_sync');
	push @{$rss{cyrus}}, peak($crss);
	push @{$rss{idspool}}, peak($irss);
	$cy->stop;
	remove_tree("$dir/cyrus$run", $idir);
}

printf "%-9s %12s %12s %10s %12s\n", 'replica', 'full (s)', 'messages/s', 'resync (s)', 'peak RSS';
for my $k ('cyrus', 'idspool') {
	my $f = median(@{$full{$k}});
	printf "%-9s %12.2f %12.0f %10.3f %9d KiB   (runs: %s / %s)\n", $k, $f, $total / $f,
	    median(@{$resync{$k}}), median(@{$rss{$k}}),
	    join(' ', map { sprintf '%.2f', $_ } @{$full{$k}}),
	    join(' ', map { sprintf '%.3f', $_ } @{$resync{$k}});
}
printf "ratio idspool/cyrus: full sync %.2fx, no-op resync %.2fx (above 1: idspool faster)\n",
    median(@{$full{cyrus}}) / median(@{$full{idspool}}),
    median(@{$resync{cyrus}}) / median(@{$resync{idspool}});
$master->stop;
