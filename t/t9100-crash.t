#!/usr/bin/perl
# t9100-crash.t - the crash driver: every scenario is killed at every
# failpoint it reaches (IDS_FAILPOINT_CRASH=k, k = 1, 2, ... until it
# completes), recovered as the next tool start recovers, checked against
# the invariants, and then finished by running it again.  Then recovery
# itself is killed at its points after a crash (nested_loop: in full
# mode every point after every crash point of the plain spool; else
# each kind of step of each path recovery takes, once), recovered
# again, checked and finished the same way.  The walker with --jobs 2
# is also killed as a whole: its parent with SIGKILL at moments spread
# over the pass (parent_kill_loop), after which its workers must be gone
# within seconds.
# IDS_TORTURE=full (make torture) adds a spool with a metapartition.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IdsTest;
use Torture;
use Scenarios;

my @variants = (['plain', []]);
push @variants, ['metapartition', [meta => 1]], ['bigger spool', [size => ['-u', 3, '-f', 10, '-m', 30]]]
    if full_mode();
my ($total, $scenarios, $nested_k, $nested) = (0, 0, 0, 0);
for my $v (@variants) {
	my ($label, $opts) = @$v;
	my $dir = fast_scratch() . "/" . ($label =~ s/\W+/-/gr);
	my ($s, @sc) = build_scenarios($dir, @$opts);
	for my $sc (@sc) {
		next if $ENV{IDS_TORTURE_ONLY} && $sc->{name} !~ /$ENV{IDS_TORTURE_ONLY}/;
		my $t0 = time;
		my ($points, $bad) = crash_loop($s, $sc);
		$total += $points;
		$scenarios++;
		ok($points > 0 && !@$bad, sprintf("%s (%s): %d crash points, %d violations",
		    $sc->{name}, $label, $points, scalar @$bad)) or diag(join("\n", @$bad[0 .. ($#$bad < 9 ? $#$bad : 9)]));
		note(sprintf("figure: crash | %s | %s | %d | %d | %.1fs", $label, $sc->{name},
		    $points, scalar @$bad, time - $t0));
		if ($label eq 'plain' && ($sc->{crashed} // '') eq 'worker') {
			# The parent of the workers killed with -9 at moments
			# spread over the pass: they die with it (issue 14).
			$t0 = time;
			my @ks = map { 1 + $_ * int($points / 8 || 1) } 0 .. 7;
			my ($kills, $kbad) = parent_kill_loop($s, $sc, @ks);
			ok($kills > 0 && !@$kbad, sprintf("%s (%s): its parent killed at %d moments, "
			    . "%d violations", $sc->{name}, $label, $kills, scalar @$kbad))
			    or diag(join("\n", @$kbad[0 .. ($#$kbad < 9 ? $#$kbad : 9)]));
			note(sprintf("figure: parent kill | %s | %s | %d | %d | %.1fs", $label,
			    $sc->{name}, $kills, scalar @$kbad, time - $t0));
		}
		next if $ENV{IDS_TORTURE_NO_NESTED};
		# Recovery killed in its turn, at its points: in full mode every
		# pair on the plain spool, else (the number of every pair is
		# printed) one for each kind of recovery step.
		$t0 = time;
		my @ks = nested_points($sc, full_mode() && $label eq 'plain');
		my $every = 0;
		$every += @$_ for values %{ $sc->{recovery} };
		my ($pairs, $nbad, $moved) = nested_loop($s, $sc, @ks);
		note("$sc->{name} ($label): the recovery after $moved crash points changed between runs")
		    if $moved;
		$nested_k += @ks;
		$nested += $pairs;
		ok(!@$nbad, sprintf("%s (%s): recovery killed at %d points after %d crash points, "
		    . "%d violations", $sc->{name}, $label, $pairs, scalar @ks, scalar @$nbad))
		    or diag(join("\n", @$nbad[0 .. ($#$nbad < 9 ? $#$nbad : 9)]));
		note(sprintf("figure: nested | %s | %s | %d | %d of %d | %d | %.1fs", $label,
		    $sc->{name}, scalar @ks, $pairs, $every, scalar @$nbad, time - $t0));
	}
}
note("figure: crash total | $scenarios scenarios | $total crash points");
note("figure: nested total | $nested_k crash points | $nested recovery crash points");
done_testing();
