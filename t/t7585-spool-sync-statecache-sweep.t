#!/usr/bin/perl
# t7585-spool-sync-statecache-sweep.t - entries of folders that are gone
# leave the state cache (syncstate.db; spool-layout.md, "The state
# cache"):
#
#  - a no-op push of 100 settled folders stores an entry for each;
#  - 70 of them deleted and the deletes pushed: a session that puts no
#    entry leaves syncstate.db's bytes as they were (no sweep on the
#    no-op path), the stale entries still there;
#  - a push that puts one entry sweeps a bounded run (64, plus 16 a put:
#    80 entries of the 100) after where the last sweep stopped: some
#    stale entries go, not all; the next such push goes on from there and the rest go;
#    every live folder's entry stays all along;
#  - dropping entries is always safe: syncstate.db removed on both sides
#    (or only some entries gone), the next push converges and spool_audit
#    --compare finds nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Time::HiRes qw(sleep);
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;
use SyncPair qw(spool_conf spool_dir must_run ok_append sync_run pair_audit);

my $dir = fast_scratch();
sub settle { sleep 2.2; }

sub cache_file { return spool_dir($_[0]) . '/conf/syncstate.db'; }

# The keys of syncstate.db.
sub cache_keys {
	my ($conf) = @_;
	my $f = cache_file($conf);
	return () unless -e $f;
	my @l = split /\n/, `mdb_dump -n -p '$f'`;
	shift @l while @l && $l[0] ne 'HEADER=END';
	shift @l;
	my @k;
	while (@l >= 2 && $l[0] ne 'DATA=END') {
		(my $k = shift @l) =~ s/^ //;
		shift @l;
		push @k, $k;
	}
	return @k;
}

# What is live on $conf: uniqueid => name.
sub live { my $st = CyrusPeer::ids_state($_[0]); return { map { $_ => $st->{$_}{name} } keys %$st }; }

my $S = spool_conf("$dir/s", delete_mode => 'immediate');
my $P = spool_conf("$dir/p", delete_mode => 'immediate');
my @sub = map { sprintf('user.erin.F%03d', $_) } 1 .. 99;
must_run('ctl_mboxlist', '-C', $S, '-i', '-c', 'user.erin', @sub);
ok_append('a message in user.erin', $S, 'user.erin', "Subject: a\r\n\r\nbody\r\n");
my $r = sync_run($S, $P, '-u', 'erin');
is($r->{rc}, 0, 'a push of 100 new folders exits 0') or diag($r->{err});
settle();
$r = sync_run($S, $P, '-u', 'erin');
is($r->{rc}, 0, '... settled, a no-op push exits 0') or diag($r->{err});
my $all = live($S);
my %k = map { $_ => 1 } cache_keys($S);
is(scalar(grep { $k{$_} } keys %$all), 100, '... and stores an entry for each of them');

# ---- 70 deleted: no puts, no sweep ----------------------------------------------
my @del = @sub[0 .. 69];
must_run('ctl_mboxlist', '-C', $S, '-i', '-x', @del);
my %gone = map { $_ => 1 } grep { !live($S)->{$_} } keys %$all;
is(scalar keys %gone, 70, '70 folders deleted');
my $before = slurp(cache_file($S));
$r = sync_run($S, $P, '-u', 'erin');
is($r->{rc}, 0, 'the deletes pushed') or diag($r->{err});
is_deeply([sort keys %{live($P)}], [sort keys %{live($S)}], '... the peer has the 30 left');
ok(slurp(cache_file($S)) eq $before,
    '... a session that puts no entry leaves syncstate.db as it was (no sweep)');
%k = map { $_ => 1 } cache_keys($S);
is(scalar(grep { $k{$_} } keys %gone), 70, '... the 70 stale entries still there');

# ---- each push that puts an entry sweeps a bounded run ----------------------------
my @stale;
for my $round (1, 2) {
	my $f = $sub[69 + $round];
	ok_append("round $round: a message in $f", $S, $f, "Subject: $round\r\n\r\nbody\r\n");
	settle();
	$r = sync_run($S, $P, '-u', 'erin');
	is($r->{rc}, 0, "round $round: the push exits 0") or diag($r->{err});
	%k = map { $_ => 1 } cache_keys($S);
	push @stale, scalar(grep { $k{$_} } keys %gone);
	my $l = live($S);
	is_deeply([grep { !$k{$_} } sort keys %$l], [],
	    "round $round: every live folder's entry is there");
	ok($k{'#sweep'}, "round $round: where the sweep stopped is kept");
}
# 100 entries, 30 live: the first run of 80 (from the first key) holds at
# least 50 stale ones, and the 20 it leaves are not all live but by a
# chance of C(30,20)/C(100,20) (below 1e-13)
ok($stale[0] >= 1 && $stale[0] <= 20,
    "a push that puts one entry sweeps a bounded run: $stale[0] of 70 stale left");
is($stale[1], 0, '... the next goes on from there: none left');
my $n = () = cache_keys($S);
is($n, 31, '... syncstate.db holds the 30 live folders and the sweep\'s place');

# ---- dropping entries is always safe ----------------------------------------------
ok_append('a message in user.erin', $S, 'user.erin', "Subject: b\r\n\r\nbody\r\n");
for my $c ($S, $P) {
	unlink(cache_file($c), cache_file($c) . '-lock');
}
$r = sync_run($S, $P, '-u', 'erin');
is($r->{rc}, 0, 'syncstate.db removed on both sides: the push exits 0') or diag($r->{err});
is_deeply(CyrusPeer::ids_state($P), CyrusPeer::ids_state($S), '... converges');
my $a = pair_audit($S, $P);
is($a->{rc}, 0, '... spool_audit --compare is clean') or diag($a->{out}, $a->{err});

done_testing();
