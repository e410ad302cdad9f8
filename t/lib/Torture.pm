# Torture.pm - the machinery of the reliability tests (t/t91xx-t/t93xx):
# scratch spools on a fast file system, the invariant checker, the crash
# loop and the fault loop.  RELIABILITY.md describes what they prove.
#
# A scenario is a spool (made once, then restored from a copy before
# every attempt), a command (a tool run), and what the command is meant
# to do, as a function that judges a state reported by the checker.
package Torture;

use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Basename qw(basename);
use JSON::PP;
use POSIX ();
use IdsTest;

our @EXPORT = qw(fast_scratch helper helper_path make_spool restore state state_key
    scenario crash_loop nested_points nested_loop parent_kill_loop fault_loop failpoints_hit
    full_mode errno_text children_of alive);

my $build = $ENV{IDS_BUILD} // do {
	require Cwd;
	Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../../build');
};

# IDS_TORTURE=full (make torture): every point of bigger scenarios.
sub full_mode { return ($ENV{IDS_TORTURE} // '') eq 'full'; }

# A scratch directory for this test file.  Crash and fault loops run on
# tmpfs when there is one: a process crash keeps the page cache, so
# fsync has nothing to prove there, and each attempt costs a few
# milliseconds instead of a few dozen.  IDS_TORTURE_DIR overrides; the
# directory is removed at the end unless a test failed.
my @fast_dirs;
END { if ($? == 0 && !$ENV{IDS_TORTURE_KEEP}) { remove_tree($_) for @fast_dirs; } }

sub fast_scratch {
	my $base = $ENV{IDS_TORTURE_DIR};
	$base //= -d '/dev/shm' && -w '/dev/shm' ? '/dev/shm' : undef;
	return scratch() unless defined $base;
	my $dir = "$base/idspool-" . basename($0, '.t') . "-$$";
	remove_tree($dir);
	make_path($dir) or die "$dir: $!";
	push @fast_dirs, $dir;
	return $dir;
}

sub helper_path { return "$build/t/helper/ids-helper"; }
sub helper { return run(helper_path(), @_); }

# make_spool($dir, conf => {...}, mkspool => [...], then => sub {...}):
# a configuration in $dir/spool.conf layout, a legacy spool from mkspool,
# then whatever the scenario adds; a copy of it is kept to restore from.
sub make_spool {
	my ($dir, %a) = @_;
	my $work = "$dir/work";
	make_path($work);
	# Deletes are immediate, so that every run of a scenario ends in the
	# same state (a delayed delete's DELETED name holds the time).
	my $conf = write_conf($work, mboxlist_mapsize => '1M', delete_mode => 'immediate',
	    %{ $a{conf} // {} });
	for my $k (keys %{ $a{conf} // {} }) {
		make_path($a{conf}{$k}) if $k =~ /partition-/ && defined $a{conf}{$k};
	}
	my $r = run('mkspool', '-C', $conf, @{ $a{mkspool} // ['-u', 2, '-f', 6, '-m', 20] });
	die "mkspool: $r->{err}" if $r->{rc};
	$a{then}->($conf, $work) if $a{then};
	system('cp', '-a', $work, "$dir/template") == 0 or die "cp: $?";
	return { dir => $dir, work => $work, conf => $conf };
}

# restore($s, $from): the spool as it was made (or as saved in $from).
sub restore {
	my ($s, $from) = @_;
	remove_tree($s->{work});
	system('cp', '-a', $from // "$s->{dir}/template", $s->{work}) == 0 or die "cp: $?";
}

# The checker's report (a hash), with its exit status.
# With $recover, the checker first recovers as every tool start does
# (its messages, if any, are in err); with $log, the failpoints that
# recovery passes are appended to that file.
sub state {
	my ($s, $recover, $log) = @_;
	my $r = run_env({ $log ? (IDS_FAILPOINT_LOG => $log) : () },
	    helper_path(), 'check', '-C', $s->{conf}, $recover ? '-R' : ());
	my $st = eval { decode_json($r->{out}) } // { violations => ["checker: $r->{err}"] };
	$st->{rc} = $r->{rc};
	$st->{err} = $r->{err};
	return $st;
}

# The folders of a state as one string: name, uniqueid (unless noid) and
# content of each live folder; the layout is left out on purpose.
sub state_key {
	my ($st, $noid) = @_;
	return join("\n", sort map {
		join(' ', $_->{name}, $noid ? () : $_->{uniqueid}, $_->{content})
	} @{ $st->{folders} // [] });
}

sub errno_text {
	my ($name) = @_;
	require Errno;
	my $n = eval "Errno::$name()" or die "unknown errno $name";
	local $! = $n;
	return "$!";
}

# Runs $cmd with extra environment.
sub run_env {
	my ($env, @cmd) = @_;
	local %ENV = (%ENV, %$env);
	return run(@cmd);
}

# spool_audit's findings, when the tool is built, less the one kind of
# leftover the invariants allow: the message file of a delivery that
# died before its index record was committed (never acknowledged, above
# last_uid; the next delivery to the folder replaces it), which the
# checker lists among its notes.
sub audit {
	my ($s, $st) = @_;
	return () unless -x tool('spool_audit');
	my $a = run('spool_audit', '-C', $s->{conf}, '-j', 1);
	return () if $a->{rc} == 0;
	return ("exit $a->{rc}: $a->{err}") if $a->{rc} != 1 || $a->{err} ne '';
	my @allowed = map { m{message file (.+?) above last_uid} ? $1 : () } @{ $st->{notes} };
	return grep {
		my $line = $_;
		!grep { $line =~ m{: orphan: /\S.*/\Q$_\E: } } @allowed;
	} split /\n/, $a->{out};
}

# The state after recovery must hold every invariant and be one the
# scenario accepts; returns a list of problems.
sub judge {
	my ($s, $sc, $what, $log) = @_;
	my @bad;
	my $st = state($s, 1, $log);
	push @bad, "$what: recovery: $st->{err}" if $st->{err} ne '';
	my @v = (@{ $st->{violations} }, map { "spool_audit: $_" } audit($s, $st));
	if ($sc->{baseline} && ($sc->{done}->($st) // -1) == 0) {
		@v = grep { !$sc->{baseline}{$_} && !$sc->{baseline}{s/^spool_audit: //r} } @v;
		# A repair interrupted: the broken folder may have moved on
		# (a new uniqueid, its own directory), still unregistered; the
		# live folders are untouched (the state is the first one) and
		# the rerun must finish the repair.
		@v = grep { !m{stray folder|a second folder of|message files? in no live folder|spool_audit: (?:[^:/]+: )?(?:stray|duplicate-uniqueid):} } @v;
	}
	push @bad, map { "$what: $_" } @v;
	my $why = $sc->{accept}->($st);
	push @bad, "$what: $why" if defined $why;
	return (\@bad, $st);
}

# scenario($s, name => ..., steps => [[cmd], ...], cmd => [cmd], noid => 1,
# extra => sub { $state -> problem or undef }, baseline => 1): the steps
# are independent
# (each on its own folders), and the states a crash or a fault may leave
# are those of any subset of them done (tools go on with the next item
# after a failed one); cmd (default: the only step) is what is crashed
# or failed.  Afterwards the operator runs the steps not done.  With
# baseline, the spool starts broken on purpose (what the operation
# repairs): its violations are allowed while no step is done.
sub scenario {
	my ($s, %a) = @_;
	my $sc = { %a, spool => $s };
	my @steps = @{ $a{steps} };
	$sc->{cmd} //= $steps[0];
	my %keys;
	for my $mask (0 .. 2**@steps - 1) {
		restore($s);
		for my $i (grep { $mask & (1 << $_) } 0 .. $#steps) {
			my $r = run(@{ $steps[$i] });
			die "$a{name}: @{ $steps[$i] }: exit $r->{rc}: $r->{err}" if $r->{rc};
		}
		my $st = state($s);
		if ($mask == 0 && $a{baseline}) {
			$sc->{baseline} = { map { $_ => 1 } @{ $st->{violations} }, audit($s, $st) };
		} elsif (@{ $st->{violations} }) {
			die "$a{name}: @{ $st->{violations} }";
		}
		$keys{$mask} = state_key($st, $a{noid});
	}
	my $all = 2**@steps - 1;
	$sc->{done} = sub {
		my $key = state_key($_[0], $a{noid});
		for my $mask (0 .. $all) { return $mask if $key eq $keys{$mask}; }
		return undef;
	};
	$sc->{todo} = sub {
		my $mask = $sc->{done}->($_[0]) // 0;
		return map { $steps[$_] } grep { !($mask & (1 << $_)) } 0 .. $#steps;
	};
	# files => sub { $mask -> problem or undef }: files outside the
	# folders (a user's own files) that must follow the steps done.
	$sc->{accept} = sub {
		my $mask = $sc->{done}->($_[0]);
		return "the folders are in none of the states the steps lead to"
		    unless defined $mask;
		return $a{files} ? $a{files}->($mask) : undef;
	};
	$sc->{final} = sub {
		my ($st) = @_;
		return "the operation did not complete" unless state_key($st, $a{noid}) eq $keys{$all};
		my $why = $a{files} ? $a{files}->($all) : undef;
		return $why if defined $why;
		return $a{extra} ? $a{extra}->($st) : undef;
	};
	return $sc;
}

# After a crash or a fault, the operator runs the steps not done yet;
# the operation must then be complete.
sub finish {
	my ($s, $sc, $st, $what) = @_;
	for my $step ($sc->{todo}->($st)) {
		my $r = run(@$step);
		return ("$what: rerun of @$step: exit $r->{rc}: $r->{err}") if $r->{rc};
	}
	my $end = state($s);
	my @bad = map { "$what, rerun: $_" } @{ $end->{violations} };
	my $why = $sc->{final}->($end);
	push @bad, "$what, rerun: $why" if defined $why;
	return @bad;
}

# crash_loop($s, $sc): runs the scenario's command with
# IDS_FAILPOINT_CRASH=k for k = 1, 2, ... until it completes without a
# crash.  Returns (points crashed at, [problems]).  The failpoints that
# recovery passes after the crash at k are left in $sc->{recovery}{k}
# (a list of names), for nested_loop.
# Whether the command was killed at its point: by SIGKILL, or for a
# scenario whose command runs workers (crashed => 'worker'), one of its
# workers was, which the parent reports and exits for.
sub crashed {
	my ($sc, $r) = @_;
	return 1 if $r->{rc} == 128 + 9;
	return ($sc->{crashed} // '') eq 'worker' && $r->{rc} != 0 &&
	    $r->{err} =~ /killed by signal 9\b/;
}

sub crash_loop {
	my ($s, $sc) = @_;
	$s = $sc->{spool} // $s;
	my ($k, @bad);
	my $log = "$s->{dir}/recovery-points";
	for ($k = 1; $k < ($sc->{max} // 5000); $k++) {
		restore($s);
		my $r = run_env({ IDS_FAILPOINT_CRASH => $k }, @{ $sc->{cmd} });
		if (!crashed($sc, $r)) {
			push @bad, "k=$k: exit $r->{rc} without a crash: $r->{err}" if $r->{rc};
			my $st = state($s);
			push @bad, map { "k=$k (no crash): $_" } @{ $st->{violations} };
			my $why = $sc->{final}->($st);
			push @bad, "k=$k (no crash): $why" if defined $why;
			last;
		}
		unlink $log;
		my ($b, $st) = judge($s, $sc, "crash at point $k", $log);
		$sc->{recovery}{$k} = [-e $log ? split(/\n/, slurp($log)) : ()];
		push @bad, @$b;
		push @bad, finish($s, $sc, $st, "crash at point $k") unless @$b;
		last if @bad > 20;
	}
	return ($k - 1, \@bad);
}

# The pids whose parent is $ppid (from /proc).
sub children_of {
	my ($ppid) = @_;
	my @kids;
	for my $stat (glob('/proc/[0-9]*/stat')) {
		open(my $fh, '<', $stat) or next;
		my $line = <$fh> // next;
		# pid (comm) state ppid ...: comm may hold spaces and parentheses.
		push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
	}
	return @kids;
}

# Whether $pid runs (a zombie waiting for its reaper does not).
sub alive {
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return 0;
	my $line = <$fh> // return 0;
	return $line !~ /^\d+ \(.*\) [ZX] /;
}

# parent_kill_loop($s, $sc, @ks): for a scenario whose command runs
# workers (relocated --jobs), the command's own process killed with
# SIGKILL while they run (paced by --rate 20), once the processes have
# passed k failpoints between them (IDS_FAILPOINT_LOG), for each k.  Its
# workers must be gone within a second (they die with it, where before
# they went on with the pass for seconds), then the state is judged
# after recovery and finished as after any crash.  Returns (kills,
# [problems]).
sub parent_kill_loop {
	my ($s, $sc, @ks) = @_;
	$s = $sc->{spool} // $s;
	my $log = "$s->{dir}/parent-kill-points";
	my ($n, @bad) = (0);
	require Time::HiRes;
	for my $k (@ks) {
		restore($s);
		unlink $log;
		# Paced, so that workers left running would still have work.
		my @cmd = (@{ $sc->{cmd} }, '--rate', 20);
		$cmd[0] = tool($cmd[0]) if $cmd[0] !~ m{/};
		my $pid = fork() // die "fork: $!";
		if ($pid == 0) {
			$ENV{IDS_FAILPOINT_LOG} = $log;
			open(STDOUT, '>', '/dev/null');
			open(STDERR, '>', '/dev/null');
			exec(@cmd) or POSIX::_exit(127);
		}
		my ($end, @workers) = (Time::HiRes::time() + 30);
		while (Time::HiRes::time() < $end) {
			last if waitpid($pid, POSIX::WNOHANG()) == $pid;
			my @w = children_of($pid);
			@workers = @w if @w;
			my $lines = -e $log ? () = slurp($log) =~ /\n/g : 0;
			last if $lines >= $k && @w;
			Time::HiRes::sleep(0.002);
		}
		if (kill('KILL', $pid) == 0) {
			# The pass was over before k points: no moment left to kill at.
			waitpid($pid, 0);
			last;
		}
		waitpid($pid, 0);
		$n++;
		# SIGKILL from the kernel, at once: a second is generous.
		my $gone = Time::HiRes::time() + 1;
		Time::HiRes::sleep(0.01) while (grep { alive($_) } @workers) && Time::HiRes::time() < $gone;
		my @alive = grep { alive($_) } @workers;
		if (@alive) {
			push @bad, "k=$k: workers @alive outlived their killed parent";
			kill 'KILL', @alive;
			last;
		}
		my $what = "parent killed after $k points";
		my ($b, $st) = judge($s, $sc, $what);
		push @bad, @$b;
		push @bad, finish($s, $sc, $st, $what) unless @$b;
		last if @bad > 20;
	}
	return ($n, \@bad);
}

# The pairs (k, j) nested_loop tries after crash_loop: the command
# killed at its point k, then recovery killed at its point j.  Returns
# a list of [k, j ...].  With $every, every j of every k after which
# recovery passes a failpoint.  Otherwise a pair is tried when the step
# j is of a kind not tried yet in this scenario.  Recovery's points are
# cut into stretches, each ending at a mailboxes.db commit (a step of
# the intent being settled), and a stretch's points into units: a
# sequence of points repeated back to back (once per file, folder or
# directory level) is one unit.  The kind of j is the shape of its
# stretch (its units), its unit, its place in the unit's sequence, and
# whether it is in the first, a middle or the last repetition.  So
# every step of every path recovery takes is killed, however many
# folders or files the path repeats over.
sub nested_points {
	my ($sc, $every) = @_;
	my $rec = $sc->{recovery} // {};
	my @ks = sort { $a <=> $b } grep { @{ $rec->{$_} } } keys %$rec;
	return map { [$_, 1 .. @{ $rec->{$_} }] } @ks if $every;
	my (%seen, @pairs);
	for my $k (@ks) {
		my @p = @{ $rec->{$k} };
		my @js;
		my $start = 0;
		while ($start < @p) {
			my $end = $start;
			$end++ while $end < $#p && $p[$end] ne 'mboxlist.commit';
			my @units = units(@p[$start .. $end]);
			my @names = ('', (map { "($_->[0])" . ($_->[2] > 1 ? '+' : '') } @units), '');
			my $i = $start;
			for my $u (0 .. $#units) {
				my ($seq, $len, $reps) = @{ $units[$u] };
				my $where = "$names[$u]|$names[$u + 1]|$names[$u + 2]";
				for my $rep (1 .. $reps) {
					my $which = $rep == 1 ? 'first' : $rep == $reps ? 'last' : 'middle';
					for my $o (0 .. $len - 1) {
						push @js, $i + 1 unless $seen{"$where|$o|$which"}++;
						$i++;
					}
				}
			}
			$start = $end + 1;
		}
		push @pairs, [$k, @js] if @js;
	}
	return @pairs;
}

# units(@points): [sequence, its length, repetitions] from left to
# right, taking at each place the shortest sequence (up to 12 points)
# that is repeated right after itself.
sub units {
	my @p = @_;
	my @u;
	my $i = 0;
	while ($i < @p) {
		my ($len, $reps) = (1, 1);
		for my $l (1 .. 12) {
			last if $i + 2 * $l > @p;
			my $same = sub { my ($at) = @_; !grep { $p[$i + $_] ne $p[$at + $_] } 0 .. $l - 1 };
			next unless $same->($i + $l);
			($len, $reps) = ($l, 2);
			$reps++ while $i + ($reps + 1) * $l <= @p && $same->($i + $reps * $l);
			last;
		}
		push @u, [join(',', @p[$i .. $i + $len - 1]), $len, $reps];
		$i += $len * $reps;
	}
	return @u;
}

# nested_loop($s, $sc, @pairs): a crash in recovery.  For each [k, j
# ...], the command is killed at its point k, then recovery (ids-helper
# recover: what every tool start does) is itself killed at its point j,
# for each j; after each double crash recovery runs once more, and the
# state is judged and finished as in crash_loop.  First, a recovery run
# of the state left by the crash at k, logging its points, must
# complete; should the walker's timing (it writes its status file
# every 2 s) have moved the crash at k elsewhere, j goes up to the
# points of this state.  Returns (pairs (k, j) tried, [problems],
# crash points whose recovery changed between runs).
sub nested_loop {
	my ($s, $sc, @pairs) = @_;
	$s = $sc->{spool} // $s;
	my $saved = "$s->{dir}/crashed";
	my $log = "$s->{dir}/nested-points";
	my ($tried, $moved, @bad) = (0, 0);
	for my $pair (@pairs) {
		my ($k, @js) = @$pair;
		restore($s);
		my $r = run_env({ IDS_FAILPOINT_CRASH => $k }, @{ $sc->{cmd} });
		if (!crashed($sc, $r)) {
			push @bad, "k=$k: exit $r->{rc}, the crash at k did not happen";
			next;
		}
		remove_tree($saved);
		system('cp', '-a', $s->{work}, $saved) == 0 or die "cp: $?";
		unlink $log;
		$r = run_env({ IDS_FAILPOINT_LOG => $log }, helper_path(), 'recover', '-C', $s->{conf});
		push @bad, "k=$k: recovery: exit $r->{rc}: $r->{err}" if $r->{rc} || $r->{err} ne '';
		my @points = -e $log ? split(/\n/, slurp($log)) : ();
		$moved++ if join(',', @points) ne join(',', @{ $sc->{recovery}{$k} // [] });
		for my $j (grep { $_ <= @points } @js) {
			restore($s, $saved);
			$r = run_env({ IDS_FAILPOINT_CRASH => $j },
			    helper_path(), 'recover', '-C', $s->{conf});
			if ($r->{rc} != 128 + 9) {
				push @bad, "k=$k, j=$j: recovery was not killed (exit $r->{rc}): $r->{err}";
				last;
			}
			$tried++;
			my $what = "crash at point $k, recovery killed at its point $j";
			my ($b, $st) = judge($s, $sc, $what);
			push @bad, @$b;
			push @bad, finish($s, $sc, $st, $what) unless @$b;
			last if @bad > 20;
		}
		last if @bad > 20;
	}
	return ($tried, \@bad, $moved);
}

# The failpoints the scenario's command hits, in order (a clean run).
sub failpoints_hit {
	my ($s, $sc) = @_;
	restore($s);
	my $log = "$s->{dir}/fplog";
	unlink $log;
	my $r = run_env({ IDS_FAILPOINT_LOG => $log }, @{ $sc->{cmd} });
	die "clean run of $sc->{name}: exit $r->{rc}: $r->{err}" if $r->{rc};
	open my $fh, '<', $log or return ();
	chomp(my @points = <$fh>);
	return @points;
}

# The errnos a failpoint's system call can really return, from its
# step name (RELIABILITY.md, "Fault table").
sub relevant_errnos {
	my ($p) = @_;
	my ($step) = $p =~ /\.([^.]+)$/;
	return qw(ENOSPC EIO EXDEV EMLINK EPERM EINTR) if $step =~ /link(?!_tmp)|rename|^dir$/;
	return qw(ENOSPC EIO EPERM EMLINK EINTR) if $step =~ /mkdir|create|^copy$/;
	return qw(EIO EPERM EINTR) if $step =~ /unlink|rmdir/;
	return qw(ENOSPC EIO EINTR);
}

# fault_loop($s, $sc, \@errnos): every failpoint the command hits (every
# hit of each in full mode, else its first) fails once with each of the
# errnos relevant to it.
# The command must then either succeed completely, or exit non-zero
# with "prog: object: reason" naming the errno, leaving a state the
# scenario accepts after recovery, from which a rerun completes.
# Scenarios list in handled{point}{errno} what must succeed.  Returns
# (faults tried, {outcome => count}, [problems]).
sub fault_loop {
	my ($s, $sc, $errnos) = @_;
	$s = $sc->{spool} // $s;
	my (%seen, @faults, @bad, %outcome);
	for my $p (failpoints_hit($s, $sc)) {
		my $n = ++$seen{$p};
		push @faults, [$p, $n] if $n == 1 || full_mode();
	}
	my $prog = basename($sc->{cmd}[0]);
	my %want = map { $_ => 1 } @$errnos;
	my $tried = 0;
	for my $f (@faults) {
		my ($p, $n) = @$f;
		for my $e (grep { $want{$_} } relevant_errnos($p)) {
			$tried++;
			my $what = "$p (hit $n) failing with $e";
			restore($s);
			my $r = run_env({ IDS_FAILPOINT => "$p:$e:$n" }, @{ $sc->{cmd} });
			my $must = $sc->{handled} && $sc->{handled}->($p, $e);
			if ($r->{rc} == 0) {
				$outcome{succeeded}++;
				$outcome{completed}{"$p:$e"}++;
				my $st = state($s);
				push @bad, map { "$what: $_" } @{ $st->{violations} };
				my $why = $sc->{final}->($st);
				push @bad, "$what: exit 0 but $why" if defined $why;
				next;
			}
			push @bad, "$what: exit $r->{rc}, but the fault is handled there" if $must;
			$outcome{failed}++;
			my $text = errno_text($e);
			my @lines = grep { /^\Q$prog\E: .+: .*\Q$text\E/ } split /\n/, $r->{err};
			push @bad, "$what: no message 'prog: object: ...$text': $r->{err}" unless @lines;
			push @bad, "$what: exit status $r->{rc}" unless $r->{rc} == 1 || $r->{rc} == 3;
			my ($b, $st) = judge($s, $sc, $what);
			push @bad, @$b;
			push @bad, finish($s, $sc, $st, $what) unless @$b;
			last if @bad > 20;
		}
	}
	return ($tried, \%outcome, \@bad);
}

1;
