#!/usr/bin/perl
# t9500-fuzz-replay.t - every fuzz target's corpus (seeds, and the
# inputs that once crashed a parser, kept as regressions) replayed
# through the target without libFuzzer, with whatever compiler built
# this tree: a property a target checks must hold for each input.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $build = $ENV{IDS_BUILD} // "$FindBin::Bin/../build";
for my $t (qw(name dlist header index dump failure csync tombstones)) {
	my $corpus = "$FindBin::Bin/fuzz/corpus/$t";
	my @inputs = glob("$corpus/*");
	ok(@inputs >= 1, "$t: a seed corpus of " . scalar(@inputs) . ' inputs');
	my $r = run("$build/t/fuzz/$t-replay", $corpus);
	is($r->{rc}, 0, "$t: every input replays") or diag($r->{err});
	is($r->{out}, scalar(@inputs) . " inputs replayed\n", "$t: all of them");
}
done_testing();
