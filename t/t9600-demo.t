#!/usr/bin/perl
# t9600-demo.t - `make demo` (contrib/demo.sh) runs to the end, and its
# after-view names each uniqueid directory's folder ("NAME -> id") and
# counts its messages in good English ("1 message").
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $top = "$FindBin::Bin/..";
my $dir = scratch();
my $build = $ENV{IDS_BUILD} // "$top/build";
local $IdsTest::NO_VALGRIND = 1;

my $r = run('sh', "$top/contrib/demo.sh", $build, "$dir/demo");
is($r->{rc}, 0, 'the demo runs to the end') or diag($r->{err});
my ($after) = $r->{out} =~ /\n== 7\. [^\n]* after:[^\n]*\n(.*?)\n\n== Summary/s;
ok(defined $after, 'it shows the user after the migration') or diag($r->{out});
my @lines = split /\n/, $after // '';
my @named = grep { m{^\s+(?:DELETED/)?user/\S.* -> [0-9a-z-]{16,36}/  \(\d+ messages?\)$} } @lines;
is(scalar @named, scalar(@lines) - 1, 'every folder directory after: "NAME -> uniqueid/  (N messages)"')
    or diag($after);
unlike($r->{out}, qr/\(1 messages\)/, 'never "1 messages"');
like($r->{out}, qr/\(\d+ messages\)/, 'plural otherwise');
like($r->{out}, qr/audit clean/, 'the audit is clean');
like($r->{out}, qr/legacy left: 0\)/, 'nothing is left in the legacy layout');

done_testing();
