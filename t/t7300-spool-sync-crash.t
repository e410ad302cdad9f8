#!/usr/bin/perl
# t7300-spool-sync-crash.t - spool_sync --serve killed (SIGKILL) at
# every failpoint it passes while it applies a real session of Cyrus
# 3.6.1 (the transcript of bob's full sync: two folders created, two
# messages, a subscription).  After each kill: the
# invariant checker (with the recovery every tool runs first) finds
# nothing wrong, and the client's retry of the whole session is
# answered OK throughout and converges on exactly the state of an
# uninterrupted run (every folder's GET MAILBOXES line, CRCs included),
# spool_audit is clean and no staging is left.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;

my $top = "$FindBin::Bin/..";
my $base = fast_scratch();
local $IdsTest::NO_VALGRIND = 1;

my $bob = CyrusPeer::transcript('03-full-user-sync-bob.wire.txt');

sub spool {
	my ($name) = @_;
	my $d = "$base/$name";
	remove_tree($d);
	make_path($d);
	return write_conf($d, unixhierarchysep => 'no', hashimapspool => 'no');
}

sub serve {
	my ($conf, $in, %env) = @_;
	local %ENV = (%ENV, %env);
	return run('spool_sync', '-C', $conf, '--serve', stdin => $in);
}

# What a client sees of the spool: every folder's state line.
sub seen {
	my ($conf) = @_;
	my $r = serve($conf, "GET USER bob\r\nEXIT\r\n");
	return join("\n", sort grep { /^\* / } split /\r\n/, $r->{out});
}

my $conf = spool('ref');
my $log = "$base/points";
my $r = serve($conf, $bob, IDS_FAILPOINT_LOG => $log);
is($r->{rc}, 0, 'the uninterrupted session') or diag($r->{err});
my $want = seen($conf);
like($want, qr/MBOXNAME user\.bob\.Archive SYNC_CRC 3255655503 /, 'its state is the master\'s');
my @points = split /\n/, slurp($log);
my %kinds = map { $_ => 1 } @points;
ok(@points >= 20, scalar(@points) . ' failpoints passed, of ' . scalar(keys %kinds) . ' kinds');
ok($kinds{'sync.apply_link'} && $kinds{'sync.apply_index'} && $kinds{'sync.store_write'} &&
    $kinds{'sync.meta_commit'} && $kinds{'index.write_new'},
    'among them every step of an apply');

my @bad;
for my $k (1 .. scalar(@points)) {
	my $c = spool("k$k");
	$r = serve($c, $bob, IDS_FAILPOINT_CRASH => $k);
	if ($r->{rc} != 128 + 9) {
		push @bad, "k=$k ($points[$k - 1]): not killed (exit $r->{rc})";
		next;
	}
	# killed before mailboxes.db was made: nothing to check yet
	my $st = -e "$base/k$k/conf/mailboxes.db" ? state({ conf => $c }, 1) : {};
	push @bad, "k=$k ($points[$k - 1]): @{$st->{violations}}" if @{$st->{violations} // []};
	$r = serve($c, $bob);
	my @no = grep { /^(NO|BAD)/ } split /\r\n/, $r->{out};
	push @bad, "k=$k ($points[$k - 1]): the retry got @no" if @no || $r->{rc};
	my $got = seen($c);
	push @bad, "k=$k ($points[$k - 1]): another state after the retry" if $got ne $want;
	my $a = run('spool_audit', '-C', $c);
	push @bad, "k=$k ($points[$k - 1]): spool_audit: $a->{out}" if $a->{rc};
	my @left = glob("$base/k$k/spool/stage./*");
	push @bad, "k=$k ($points[$k - 1]): staging left: @left" if @left;
	remove_tree("$base/k$k") unless @bad;
}
is_deeply(\@bad, [], 'killed at each of ' . scalar(@points) .
    ' points: consistent, and the retry converges on the same state');

done_testing;
