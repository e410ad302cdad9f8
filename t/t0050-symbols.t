#!/usr/bin/perl
# The library exports only ids_-prefixed symbols.  A program that links
# libidspool.a (a delivery agent, Cyrus itself) has its own abspath,
# pool_new or walk_spool; a global of the library by such a name would
# collide with it at link time, or silently replace it.  nm(1) over the
# built library: every defined global must start with ids_ (names
# starting with "__" belong to the compiler: a sanitizer build adds them).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

my $build = $ENV{IDS_BUILD} // "$FindBin::Bin/../build";
my $lib = "$build/libidspool.a";

ok(-f $lib, 'libidspool.a is built') or BAIL_OUT("no $lib");
my @lines = `nm -g --defined-only '$lib' 2>&1`;
is($?, 0, 'nm reads the library') or diag(@lines);

my ($obj, $n, %bad) = ('', 0);
for (@lines) {
	if (/^(\S+\.o):$/) {
		$obj = $1;
		next;
	}
	next unless /^[0-9a-fA-F]*\s+([A-Za-z])\s+(\S+)$/;
	$n++;
	$bad{$2} = "$obj ($1)" unless $2 =~ /^(ids_|__)/;
}
ok($n >= 100, "$n global symbols defined");
is(scalar(keys %bad), 0, 'every global symbol starts with ids_')
    or diag(join('', map { "  $_ in $bad{$_}\n" } sort keys %bad));

done_testing();
