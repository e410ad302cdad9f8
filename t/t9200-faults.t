#!/usr/bin/perl
# t9200-faults.t - the fault table: every failpoint each scenario
# reaches (its first hit; every hit with IDS_TORTURE=full) fails once
# with each errno a disk or kernel can return there.  The command must
# either complete (where the error is handled: a link refused with
# EXDEV, EMLINK or EPERM falls back to a verified copy) or exit 1 or 3
# with "prog: object: reason" naming the errno, and leave a spool that
# holds every invariant after recovery and from which a rerun completes.
# Then mailboxes.db's map-full path, with a map of the smallest size.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IdsTest;
use Torture;
use Scenarios;

my @errnos = qw(ENOSPC EIO EXDEV EMLINK EPERM EINTR);
my %link_points = map { $_ => 1 } qw(fs.link relocate.link);
my %fallback = map { $_ => 1 } qw(EXDEV EMLINK EPERM);

my $dir = fast_scratch();
my ($s, @sc) = build_scenarios("$dir/faults");
my ($total, %all) = (0);
for my $sc (@sc) {
	next if $ENV{IDS_TORTURE_ONLY} && $sc->{name} !~ /$ENV{IDS_TORTURE_ONLY}/;
	$sc->{handled} = sub { my ($p, $e) = @_; return $link_points{$p} && $fallback{$e}; };
	my $t0 = time;
	my ($n, $outcome, $bad) = fault_loop($s, $sc, \@errnos);
	$total += $n;
	$all{$_} += $outcome->{$_} // 0 for qw(failed succeeded);
	$all{completed}{$_} += $outcome->{completed}{$_} for keys %{ $outcome->{completed} // {} };
	ok($n > 0 && !@$bad, sprintf("%s: %d faults, %d failed cleanly, %d completed, %d violations",
	    $sc->{name}, $n, $outcome->{failed} // 0, $outcome->{succeeded} // 0, scalar @$bad))
	    or diag(join("\n", @$bad[0 .. ($#$bad < 9 ? $#$bad : 9)]));
	note(sprintf("figure: fault | %s | %d | %d | %d | %d | %.1fs", $sc->{name}, $n,
	    $outcome->{failed} // 0, $outcome->{succeeded} // 0, scalar @$bad, time - $t0));
}
note("figure: fault completed | $_") for sort keys %{ $all{completed} // {} };
note(sprintf("figure: fault total | %d faults | %d failed cleanly | %d completed",
    $total, $all{failed} // 0, $all{succeeded} // 0));

# MDB_MAP_FULL: a map of 64 KiB fills after a few dozen folders; each
# write transaction that finds it full is aborted, the map doubled and
# the transaction run again.
{
	my $mdir = "$dir/mapfull";
	my $conf = write_conf($mdir, mboxlist_mapsize => '64K');
	my @names = map { sprintf('user/mapfull/f%03d', $_) } 1 .. 300;
	my $r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/mapfull', @names);
	is($r->{rc}, 0, 'a 64 KiB map: 301 folders created through map growth') or diag($r->{err});
	$r = run('spool_append', '-C', $conf, '-q', $names[-1], 'stdin', "Subject: x\r\n\r\nx\r\n");
	is($r->{rc}, 0, '... and a delivery after it') or diag($r->{err});
	my $st = state({ conf => $conf });
	is_deeply($st->{violations}, [], '... every invariant holds');
	is(scalar @{ $st->{folders} }, 301, '... with every folder there');
	my $size = -s "$mdir/conf/mailboxes.db";
	ok($size > 65536, "... in a map grown to $size bytes");
}
done_testing();
