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
# is faster), and the peak RSS and CPU seconds (user + system, both
# sessions) of each replica process.
#
# Then the same for masters of one folder each, of each size in
# BENCH_SYNC_FOLDER_SIZES (default "10000 50000"; empty: none): the
# replica's memory must not grow with the folder (the RECORD list of
# APPLY MAILBOX is applied as it is read).  BENCH_SYNC_BASE, the build
# directory of another idspool (say, of the commit before a change),
# adds its spool_sync as the replica "base", in the same runs.
#
# Then spool_sync as the client (BENCH_SYNC_CLIENT=0 skips it), on the
# same population, BENCH_RUNS times:
#
#   pull    spool_sync --pull -u USER... from the master's own
#           sync_server -X (started by spool_sync), into an empty spool,
#           against the Cyrus-to-Cyrus full sync above (messages/s);
#   push    spool_sync -A of that spool into spool_sync --serve on an
#           empty spool, against rsync -a of the same spool tree, and
#           rsync -a followed by sync -f (files/s: every file of the
#           spool tree, over the time); with BENCH_SYNC_BASE, the base
#           build's spool_sync pushes too (its client into its server),
#           alternating with this build's, each run in turn first;
#   no-op   a spool of BENCH_SYNC_NOOP_FOLDERS user folders (default
#           10,000, one message each, made by mkspool) pushed once, then
#           pushed again with nothing to do: once with the state caches
#           empty (printed alone), then BENCH_RUNS times (target: under 1 s).
#
# Needs root (the Cyrus programs run as the cyrus user); Cyrus is
# installed by contrib/install-deps when missing, rsync by apt-get.
# IDS_BUILD names the build.
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
my @sizes = split ' ', $ENV{BENCH_SYNC_FOLDER_SIZES} // '10000 50000';
my $base = $ENV{BENCH_SYNC_BASE};
my $client = $ENV{BENCH_SYNC_CLIENT} // 1;
my $noop_folders = $ENV{BENCH_SYNC_NOOP_FOLDERS} // 10000;

CyrusPeer::ensure($top);
remove_tree($dir);
make_path($dir) or die "bench-sync: $dir: $!\n";

sub median { my @s = sort { $a <=> $b } @_; return $s[floor($#s / 2)]; }

# ---- a master ------------------------------------------------------------
# A private Cyrus master whose users each have $nfolders folders of
# $nmsgs messages, made by Cyrus's imapd; returns it and its message count.
sub make_master {
	my ($mdir, $users, $nfolders, $nmsgs) = @_;
	my $master = CyrusPeer->new($mdir);
	my $t0 = time;
	$master->imap('admin', map { "CREATE user.$_" } @$users);
	my $total = 0;
	for my $u (@$users) {
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
	    scalar(@$users), @$users * $nfolders, $total, time - $t0;
	return ($master, $total);
}

# ---- the replicas --------------------------------------------------------
# A replica process wrapped in GNU time, which writes its peak RSS (KiB)
# and CPU seconds (user, system) to $rss when the process ends.
sub timed {
	my ($rss, @cmd) = @_;
	return ('/usr/bin/time', '-f', '%M %U %S', '-a', '-o', $rss, @cmd);
}

# The largest RSS of the two sessions, and their CPU seconds together
# (time(1) writes each line when its session has ended, which may be
# just after sync_client's exit).
sub peak {
	my ($f) = @_;
	my $re = qr/^(\d+) ([\d.]+) ([\d.]+)$/m;
	for (1 .. 100) { last if -f $f && (() = slurp($f) =~ /$re/g) >= 6; sleep 0.05; }
	my (@rss, $cpu);
	my $text = -f $f ? slurp($f) : '';
	while ($text =~ /$re/g) {
		push @rss, $1;
		$cpu += $2 + $3;
	}
	my ($m) = sort { $b <=> $a } @rss;
	return ($m // 0, $cpu // 0);
}

# The message files under a replica's spool: every one must have arrived.
sub files_in {
	my ($top) = @_;
	my $n = 0;
	File::Find::find(sub { $n++ if -f $_ && /^\d+\.$/ }, $top);
	return $n;
}

sub check_files {
	my ($top, $what, $total) = @_;
	my $n = files_in($top);
	die "bench-sync: $what holds $n message files, not $total\n" if $n != $total;
}

# sync_client of every user; returns its wall-clock seconds.
sub push_all {
	my ($master, $users, $sock, $what) = @_;
	my $s = time;
	my $r = $master->cyrus('sync_client', '-S', $sock, '-o', '-u', @$users);
	my $t = time - $s;
	die "bench-sync: sync_client into $what: exit $r->{rc}: $r->{err}\n" if $r->{rc};
	return $t;
}

# The replicas: Cyrus's sync_server, ours, and the base build's if any.
my @replicas = ('cyrus', 'idspool', defined $base ? ('base') : ());

# BENCH_RUNS full syncs and resyncs of $master into fresh replicas of
# each kind; prints the medians, messages/s, peak RSS and the ratios.
sub bench_master {
	my ($tag, $master, $users, $total) = @_;
	my (%full, %resync, %rss, %cpu);
	for my $run (1 .. $runs) {
		for my $k (@replicas) {
			my $rdir = "$dir/$tag-$k$run";
			my $sock = "$rdir.sock";
			my $rss = "$rdir.rss";
			make_path($rdir);
			# Cyrus's sync_server or spool_sync --serve, one per connection
			# as inetd would run it, on a spool named as the master names
			# its folders.
			my $cy = CyrusPeer->new($k eq 'cyrus' ? $rdir : "$rdir-cyrus");
			if ($k eq 'cyrus') {
				$cy->serve($sock, timed($rss, $cy->service_cmd('sync_server')));
			} else {
				my $conf = write_conf($rdir, unixhierarchysep => 'no', hashimapspool => 'no');
				my $prog = $k eq 'base' ? "$base/bin/spool_sync" : tool('spool_sync');
				$cy->serve($sock, timed($rss, $prog, '-C', $conf, '--serve'));
			}
			push @{$full{$k}}, push_all($master, $users, $sock, $k);
			check_files($k eq 'cyrus' ? "$rdir/spool" : $rdir, "the $k replica", $total);
			push @{$resync{$k}}, push_all($master, $users, $sock, $k);
			my ($kib, $cpu) = peak($rss);
			push @{$rss{$k}}, $kib;
			push @{$cpu{$k}}, $cpu;
			$cy->stop;
			remove_tree($rdir, "$rdir-cyrus");
		}
	}
	printf "%-9s %12s %12s %10s %12s %9s\n", 'replica', 'full (s)', 'messages/s', 'resync (s)',
	    'peak RSS', 'CPU (s)';
	for my $k (@replicas) {
		my $f = median(@{$full{$k}});
		printf "%-9s %12.2f %12.0f %10.3f %9d KiB %9.2f   (runs: %s / %s)\n", $k, $f,
		    $total / $f, median(@{$resync{$k}}), median(@{$rss{$k}}), median(@{$cpu{$k}}),
		    join(' ', map { sprintf '%.2f', $_ } @{$full{$k}}),
		    join(' ', map { sprintf '%.3f', $_ } @{$resync{$k}});
	}
	for my $k (grep { $_ ne 'cyrus' } @replicas) {
		printf "ratio %s/cyrus: full sync %.2fx, no-op resync %.2fx (above 1: %s faster)\n",
		    $k, median(@{$full{cyrus}}) / median(@{$full{$k}}),
		    median(@{$resync{cyrus}}) / median(@{$resync{$k}}), $k;
	}
	return { full => \%full, resync => \%resync, rss => \%rss };
}

# ---- spool_sync as the client --------------------------------------------
# Wall-clock seconds of a command that must succeed, and its result.
sub timed_run {
	my ($what, @cmd) = @_;
	my $s = time;
	my $r = run(@cmd);
	my $t = time - $s;
	die "bench-sync: $what: exit $r->{rc}: $r->{err}\n" if $r->{rc};
	return ($t, $r);
}

sub all_files {
	my ($top) = @_;
	my $n = 0;
	File::Find::find(sub { $n++ if -f $_ }, $top);
	return $n;
}

sub new_spool {
	my ($d) = @_;
	make_path($d);
	return write_conf($d, unixhierarchysep => 'no', hashimapspool => 'no');
}

sub bench_client {
	my ($master, $users, $total, $pop) = @_;
	my (@pull, @push, @pushbase, @rsync, @rsyncs, $src, $nfiles);
	system('apt-get install -y -qq rsync >/dev/null 2>&1') if !-x '/usr/bin/rsync' && $> == 0;
	-x '/usr/bin/rsync' or die "bench-sync: rsync is not installed\n";
	my $ss = tool('spool_sync');
	for my $run (1 .. $runs) {
		# pull from the master's sync_server into an empty spool
		my $p = "$dir/pull$run";
		my $pconf = new_spool($p);
		my ($t) = timed_run('spool_sync --pull', $ss, '-C', $pconf, '--pull',
		    (map { ('-u', $_) } @$users), '--', 'runuser', '-u', 'cyrus', '--', 'env', 'CYRUS_SERVICE=sync',
		    'CYRUS_ID=1', "$CyrusPeer::BIN/sync_server", '-C', $master->conf, '-X');
		check_files($p, 'the pulled spool', $total);
		push @pull, $t;
		# that spool pushed whole into an empty one (by this build, and by
		# the base build's client and server when given, in turn first),
		# and copied by rsync
		$nfiles = all_files("$p/spool");
		my @order = ('idspool', defined $base ? ('base') : ());
		@order = reverse @order if $run % 2 == 0;
		for my $k (@order) {
			my $q = "$dir/push$run-$k";
			my $qconf = new_spool($q);
			my $prog = $k eq 'base' ? "$base/bin/spool_sync" : $ss;
			($t) = timed_run("spool_sync -A ($k)", $prog, '-C', $pconf, '-A', '--', $prog,
			    '-C', $qconf, '--serve');
			check_files($q, "the spool pushed by $k", $total);
			push @{$k eq 'base' ? \@pushbase : \@push}, $t;
			remove_tree($q);
		}
		($t) = timed_run('rsync -a', 'rsync', '-a', "$p/spool/", "$dir/rsync$run/");
		push @rsync, $t;
		my ($ts) = timed_run('sync -f', 'sync', '-f', "$dir/rsync$run");
		push @rsyncs, $t + $ts;
		remove_tree("$dir/rsync$run", $p);
	}
	my $cy = median(@{$pop->{full}{cyrus}});
	my $pl = median(@pull);
	printf "\nclient: %d messages, %d files in the pulled spool tree\n", $total, $nfiles;
	printf "%-34s %9s %12s %12s   %s\n", 'copy', 'time (s)', 'messages/s', 'files/s', 'runs';
	my $row = sub {
		my ($name, @v) = @_;
		my $m = median(@v);
		printf "%-34s %9.2f %12.0f %12.0f   %s\n", $name, $m, $total / $m, $nfiles / $m,
		    join(' ', map { sprintf '%.2f', $_ } @v);
	};
	$row->('cyrus sync_client -> sync_server', @{$pop->{full}{cyrus}});
	$row->('spool_sync --pull <- sync_server', @pull);
	$row->('spool_sync -A -> spool_sync', @push);
	$row->('spool_sync -A -> spool_sync (base)', @pushbase) if @pushbase;
	$row->('rsync -a', @rsync);
	$row->('rsync -a + sync -f', @rsyncs);
	printf "ratio pull/cyrus-to-cyrus: %.2fx (above 1: the pull is faster)\n", $cy / $pl;
	printf "ratio push/rsync: %.2fx, push/(rsync + sync): %.2fx (target: >= 0.5x)\n",
	    median(@rsync) / median(@push), median(@rsyncs) / median(@push);
	printf "ratio base push/rsync: %.2fx; push/base push: %.2fx (above 1: this build faster)\n",
	    median(@rsync) / median(@pushbase), median(@pushbase) / median(@push) if @pushbase;

	# a no-op push of many folders
	return if !$noop_folders;
	my $a = "$dir/many-a";
	my $aconf = new_spool($a);
	my $bconf = new_spool("$dir/many-b");
	# mkspool also makes shared folders, which -A (users) leaves out
	my $want = int($noop_folders * 1.6);
	timed_run('mkspool', tool('mkspool'), '-C', $aconf, '-u', int($want / 20) || 1, '-f', $want,
	    '-m', $want);
	my ($t, $r) = timed_run('spool_sync -A (full)', $ss, '-C', $aconf, '-A', '--', $ss, '-C', $bconf,
	    '--serve');
	my ($n) = "$r->{out}$r->{err}" =~ /(\d+) folder\(s\) compared/;
	printf "\nno-op push: %d folders (pushed whole in %.1f s)\n", $n // 0, $t;
	# the first one fills both sides' state caches (syncstate.db) once
	# the folders' files are 2 s old; the timed ones read them
	sleep 2.5;
	($t, $r) = timed_run('spool_sync -A (no-op, cold cache)', $ss, '-C', $aconf, '-A', '--', $ss,
	    '-C', $bconf, '--serve');
	printf "%-34s %9.3f s\n", 'spool_sync -A, nothing, cold cache', $t;
	my @noop;
	for (1 .. $runs) {
		($t, $r) = timed_run('spool_sync -A (no-op)', $ss, '-C', $aconf, '-A', '--', $ss, '-C',
		    $bconf, '--serve');
		die "bench-sync: the no-op push applied something: $r->{out}$r->{err}\n"
		    if "$r->{out}$r->{err}" !~ / 0 applied, 0 renamed, 0 deleted, 0 kept, 0 file\(s\)/;
		push @noop, $t;
	}
	printf "%-34s %9.3f s   (runs: %s; target: under 1 s)\n", 'spool_sync -A, nothing to do',
	    median(@noop), join(' ', map { sprintf '%.3f', $_ } @noop);
	remove_tree($a, "$dir/many-b");
}

# ---- the population, then one folder of each size -------------------------
my @users = map { sprintf('u%03d', $_) } 1 .. $nusers;
my ($master, $total) = make_master("$dir/master", \@users, $nfolders, $nmsgs);
my $pop = bench_master('pop', $master, \@users, $total);
bench_client($master, \@users, $total, $pop) if $client;
$master->stop;
remove_tree("$dir/master");

my %big;
for my $size (@sizes) {
	print "\n";
	my ($m, $t) = make_master("$dir/master$size", ['big'], 1, $size);
	$big{$size} = bench_master("f$size", $m, ['big'], $t);
	$m->stop;
	remove_tree("$dir/master$size");
}
if (@sizes > 1) {
	print "\npeak RSS by folder size (KiB):\n";
	printf "%-9s %s\n", 'replica', join(' ', map { sprintf '%10d', $_ } @sizes);
	for my $k (@replicas) {
		printf "%-9s %s\n", $k, join(' ', map { sprintf '%10d', median(@{$big{$_}{rss}{$k}}) } @sizes);
	}
}
