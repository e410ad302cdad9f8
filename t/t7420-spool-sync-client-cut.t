#!/usr/bin/perl
# t7420-spool-sync-client-cut.t - the link of a spool_sync client
# session cut short, between two idspool spools: the peer's answers cut
# after N bytes (a pull), and the client's commands cut after N bytes
# before the peer reads them (a push), N every few bytes of the whole
# session (IDS_CUT_STEP, default 23; make torture: every byte), and
# each byte of the push's closing EXIT.  Each time the client ends with
# an error and exit 1 (never a hang, never a crash), the written side
# stays consistent (the invariant checker after recovery, spool_audit),
# no staging is left, and the next full session converges on the other
# side's state.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;

my $base = fast_scratch();
local $IdsTest::NO_VALGRIND = 1;
my $step = $ENV{IDS_CUT_STEP} // 23;

my $bob = CyrusPeer::transcript('03-full-user-sync-bob.wire.txt');

sub spool { return CyrusPeer::replica_conf("$base/$_[0]"); }

sub seen {
	my ($conf) = @_;
	my $r = run('spool_sync', '-C', $conf, '--serve', stdin => "GET USER bob\r\nEXIT\r\n");
	return join("\n", sort grep { /^\* / } split /\r\n/, $r->{out});
}

my $src = spool('src');
my $r = run('spool_sync', '-C', $src, '--serve', stdin => $bob);
die "load: $r->{err}" if $r->{rc};
my $want = seen($src);
my $serve = tool('spool_sync') . " -C $src --serve";

# The size of each direction of a whole pull, through tee.
my $ref = spool('ref');
$r = run('spool_sync', '-C', $ref, '--pull', '-u', 'bob', '--', 'sh', '-c',
    "tee $base/in | $serve | tee $base/out");
is($r->{rc}, 0, 'a whole pull through the taps') or diag($r->{err});
is(seen($ref), $want, '... equals the peer');
my ($nin, $nout) = (-s "$base/in", -s "$base/out");
ok($nin > 100 && $nout > 1000, "the pull sent $nin bytes and received $nout");

sub check {
	my ($what, $conf, $dir, $peer_of, $want) = @_;
	my @bad;
	my $st = -e "$dir/conf/mailboxes.db" ? state({ conf => $conf }, 1) : {};
	push @bad, "$what: @{$st->{violations}}" if @{$st->{violations} // []};
	push @bad, map { "$what: $_" } Torture::audit({ conf => $conf }, $st) if $st->{folders};
	my @left = glob("$dir/spool/stage./*");
	push @bad, "$what: staging left: @left" if @left;
	return @bad;
}

# ---- pull: the peer's answers cut after N bytes ------------------------------
# The cutter runs the peer with its output on a pipe, copies N bytes of
# it and exits at once (_exit: perl's exit would wait for the peer): the
# client sees the end of its input (a shell pipeline would keep the
# pipe open while the peer waits for a command).
my $cutter = 'my $n = shift; open(my $s, "-|", @ARGV) or die "$ARGV[0]: $!"; ' .
    'while ($n > 0) { my $k = sysread($s, my $b, $n > 4096 ? 4096 : $n); last unless $k; ' .
    'syswrite(STDOUT, $b); $n -= $k; } require POSIX; POSIX::_exit(0);';
my @bad;
my $runs = 0;
for (my $n = 0; $n < $nout; $n += $step) {
	my $c = spool("p$n");
	$r = run('spool_sync', '-C', $c, '--pull', '-u', 'bob', '--', 'perl', '-e', $cutter, $n,
	    tool('spool_sync'), '-C', $src, '--serve');
	$runs++;
	push @bad, "pull cut at $n: exit $r->{rc}" if $r->{rc} != 1;
	push @bad, "pull cut at $n: no reason given" unless $r->{err} =~ /^spool_sync: session: /m;
	push @bad, check("pull cut at $n", $c, "$base/p$n");
	$r = run('spool_sync', '-C', $c, '--pull', '-u', 'bob', '--', 'sh', '-c', $serve);
	push @bad, "pull cut at $n: the retry: $r->{err}" if $r->{rc};
	push @bad, "pull cut at $n: another state after the retry" if seen($c) ne $want;
	remove_tree("$base/p$n") unless @bad;
}
is_deeply(\@bad, [], "pull cut at each of $runs offsets: exit 1, consistent, the retry converges");

# ---- push: the client's commands cut after N bytes -------------------------
# This cutter gives the peer N bytes of its input, then exits: the peer
# sees the end of its input, ends its session and closes its output.
my $cutter_in = 'my $n = shift; open(my $s, "|-", @ARGV) or die "$ARGV[0]: $!"; ' .
    'while ($n > 0) { my $k = sysread(STDIN, my $b, $n > 4096 ? 4096 : $n); last unless $k; ' .
    'syswrite($s, $b); $n -= $k; } require POSIX; POSIX::_exit(0);';
my $pref = spool('pref');
$r = run('spool_sync', '-C', $src, '-u', 'bob', '--', 'sh', '-c',
    "tee $base/pin | " . tool('spool_sync') . " -C $pref --serve");
is($r->{rc}, 0, 'a whole push through a tap') or diag($r->{err});
my $npush = -s "$base/pin";
ok($npush > 1000, "the push sent $npush bytes");
@bad = ();
$runs = 0;
# every $step bytes, and each byte of the closing EXIT line (all the
# work acknowledged: still the session did not end as it should)
my %at = map { $_ => 1 } grep { $_ % $step == 0 || $_ >= $npush - 6 } 0 .. $npush - 1;
for my $n (sort { $a <=> $b } keys %at) {
	my $c = spool("q$n");
	$r = run('spool_sync', '-C', $src, '-u', 'bob', '--', 'perl', '-e', $cutter_in, $n,
	    tool('spool_sync'), '-C', $c, '--serve');
	$runs++;
	push @bad, "push cut at $n: exit $r->{rc}" if $r->{rc} != 1;
	push @bad, check("push cut at $n", $c, "$base/q$n");
	$r = run('spool_sync', '-C', $src, '-u', 'bob', '--', tool('spool_sync'), '-C', $c,
	    '--serve');
	push @bad, "push cut at $n: the retry: $r->{err}" if $r->{rc};
	push @bad, "push cut at $n: another state after the retry" if seen($c) ne $want;
	remove_tree("$base/q$n") unless @bad;
}
is_deeply(\@bad, [], "push cut at each of $runs offsets: exit 1, the peer consistent, the retry converges");

# ---- a peer that stops answering -----------------------------------------
my $t0 = time;
$r = run('spool_sync', '-C', spool('slow'), '-t', '1', '--pull', '-u', 'bob', '--', 'sh', '-c',
    'printf "* OK slow Cyrus sync server\r\n"; exec sleep 30');
is($r->{rc}, 1, 'a peer that stops answering: exit 1 after -t 1');
like($r->{err}, qr/^spool_sync: sh: the peer sent nothing for 1 s: timed out$/m, '... said');
ok(time - $t0 < 20, '... without waiting for the peer to end');

done_testing;
