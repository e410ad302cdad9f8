#!/usr/bin/perl
# t9300-load.t - concurrent load: for IDS_LOAD_SECONDS (20; make torture:
# 120) deliveries into many folders, renames back and forth (a legacy
# subtree, then a user), the walker, spool_audit and reconstruct's check
# all run at once on one spool.  Afterwards the spool holds every
# invariant and exactly the messages it started with plus every delivery
# that was acknowledged (exit 0): none lost, none twice.  A watchdog
# fails the test when a command hangs (a deadlock) and kills it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha1_hex);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use IPC::Open3 ();
use Symbol ();
use IdsTest;
use Torture;
use Scenarios;

my $seconds = $ENV{IDS_LOAD_SECONDS} // (full_mode() ? 120 : 20);
my $hang = 60;		# one command running longer than this is a hang
my $dir = fast_scratch();
my $s = make_spool("$dir/load", mkspool => ['-u', 4, '-f', 24, '-m', 200]);
my $conf = $s->{conf};
my ($users, $kids) = Scenarios::users($conf);
my ($ua, $ub, $uc, $ud) = @$users;
my ($sub) = sort @{ $kids->{$ua} };
(my $sub2 = $sub) =~ s/([^.]+)$/$1Renamed/;
(my $ub2 = $ub) =~ s/([^.]+)$/$1renamed/;
my @targets = ($uc, @{ $kids->{$uc} }, $ud, @{ $kids->{$ud} }, $sub, $sub2);
my $initial = Torture::state($s);
is_deeply($initial->{violations}, [], 'the spool starts sound');

# IdsTest::run with a time limit: undef (and the command killed) when
# it runs longer than $hang seconds.
sub run_timed {
	my ($cmd) = @_;
	my @cmd = @$cmd;
	$cmd[0] = tool($cmd[0]) if $cmd[0] !~ m{/};
	my $err = Symbol::gensym();
	my $pid = IPC::Open3::open3(my $in, my $out, $err, @cmd);
	close $in;
	my ($o, $e) = ('', '');
	my $ok = eval {
		local $SIG{ALRM} = sub { die "hang\n" };
		alarm $hang;
		local $/;
		$o = <$out> // '';
		$e = <$err> // '';
		waitpid($pid, 0);
		alarm 0;
		1;
	};
	if (!$ok) {
		kill 'KILL', $pid;
		waitpid($pid, 0);
		return undef;
	}
	my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
	return { out => $o, err => $e, rc => $rc };
}

# Each actor is a child process running its command in a loop until the
# deadline, logging one line per command: "ok|fail|hang|signal kind ...".
sub actor {
	my ($name, $next) = @_;
	my $pid = fork // die "fork: $!";
	return $pid if $pid;
	open my $log, '>', "$dir/$name.log" or die;
	$log->autoflush(1);
	my $end = time + $seconds;
	my $i = 0;
	while (time < $end) {
		my ($cmd, $after) = $next->($i++);
		my $t0 = time;
		my $r = run_timed($cmd);
		if (!$r) {
			print $log "hang $name @$cmd\n";
			last;
		}
		my $what = $r->{rc} == 0 ? 'ok' : $r->{rc} >= 128 ? 'signal' :
		    $r->{rc} == 1 || $r->{rc} == 3 ? 'fail' : 'bad';
		(my $err = $r->{err} . ($what eq 'fail' ? $r->{out} : '')) =~ s/\n/ | /g;
		print $log "$what $name rc=$r->{rc} " . sprintf('%.2fs', time - $t0) . " $err\n";
		$after->($r, $log) if $after;
	}
	close $log;
	POSIX::_exit(0);	# no END blocks: they belong to the parent
}

my @pids;
for my $d (1 .. 2) {
	push @pids, actor("deliver$d", sub {
		my ($i) = @_;
		my $to = $targets[($i * 7 + $d) % @targets];
		my $msg = "From: load\@example.com\r\nSubject: load $d/$i\r\n"
		    . "Message-ID: <$d.$i.$$\@load>\r\n\r\nbody $d $i\r\n";
		my $file = "$dir/msg-$d";
		spew($file, $msg);
		return (['spool_append', '-C', $conf, '-i', '-q', $to, $file], sub {
			my ($r, $log) = @_;
			print $log "delivered " . sha1_hex($msg) . "\n" if $r->{rc} == 0;
		});
	});
}
push @pids, actor('rename', sub {
	my ($i) = @_;
	my @pair = $i % 4 < 2 ? ($sub, $sub2) : ($ub, $ub2);
	@pair = reverse @pair if $i % 2;
	return (['ctl_rename', '-C', $conf, '-i', '-q', @pair]);
});
push @pids, actor('walker', sub { return (['relocated', '-C', $conf, '-1', '-q', '--grace', 0]); });
push @pids, actor('audit', sub { return (['spool_audit', '-C', $conf, '-j', 1]); });
push @pids, actor('reconstruct', sub {
	my ($i) = @_;
	my ($owner) = (($i % 2 ? $uc : $ud) =~ /user\.(.*)$/);
	$owner =~ s/\^/./g;
	return (['reconstruct', '-C', $conf, '-q', '-u', $owner]);
});

# The watchdog: every actor must be back within the time plus one hang.
my $deadline = time + $seconds + $hang + 10;
my %left = map { $_ => 1 } @pids;
while (%left && time < $deadline) {
	for my $p (keys %left) { delete $left{$p} if waitpid($p, WNOHANG) > 0; }
	sleep 0.2;
}
ok(!%left, 'no actor hung (watchdog)') or do { kill 'KILL', keys %left; waitpid($_, 0) for keys %left; };

my (%count, @delivered, @bad);
for my $f (glob("$dir/*.log")) {
	for (split /\n/, slurp($f)) {
		if (/^delivered (\w+)/) { push @delivered, $1; next; }
		my ($what, $who) = split / /;
		$count{"$who $what"}++;
		push @bad, $_ if $what =~ /^(hang|signal|bad)$/;
	}
}
is_deeply(\@bad, [], 'no command hung, crashed or failed badly') or diag(join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]));
for my $who (qw(deliver1 deliver2 rename walker audit reconstruct)) {
	ok(($count{"$who ok"} // 0) > 0, "$who: " . ($count{"$who ok"} // 0) . ' done, '
	    . ($count{"$who fail"} // 0) . ' refused');
}

# Afterwards: recovery, the invariants, and every message counted.
my $st = Torture::state($s, 1);
is($st->{err}, '', 'recovery after the load is silent');
is_deeply($st->{violations}, [], 'every invariant holds after the load')
    or diag(join("\n", @{ $st->{violations} }));
my $audit = run('spool_audit', '-C', $conf, '-q');
is($audit->{rc}, 0, 'spool_audit finds nothing after the load') or diag("$audit->{out}$audit->{err}");
my %want = %{ $initial->{messages} };
$want{$_}++ for @delivered;
my %have = %{ $st->{messages} };
my @lost = grep { ($have{$_} // 0) < $want{$_} } keys %want;
my @extra = grep { ($want{$_} // 0) < $have{$_} } keys %have;
is(scalar @lost, 0, scalar(@delivered) . ' deliveries acknowledged: none lost');
is(scalar @extra, 0, '... none there twice, nothing unexpected');
my $ops = 0;
$ops += $count{$_} for grep { / (ok|fail)$/ } keys %count;
note("figure: load | $seconds s | $ops commands | " . join(', ', map { "$_ $count{$_}" } sort keys %count));
done_testing();
