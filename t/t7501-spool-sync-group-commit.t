#!/usr/bin/perl
# t7501-spool-sync-group-commit.t - idspool's pipelining and the
# replica's group commit (spool-layout.md, "Pipelining and group
# commit").
#
#  - spool_sync --serve announces idspool-pipeline in its banner; our
#    client, pushing new folders to it, sends several APPLY MAILBOX lines
#    before it reads their answers;
#  - that session replayed from a file (every command waiting at once)
#    into a fresh replica: one syncfs for all its new folders, every
#    answer OK, in order, and the replica equal to the one the client
#    itself pushed to;
#  - replayed with the second new folder's apply failing (a failpoint's
#    EIO): that command alone answered NO, in its place; that folder
#    alone absent; the next real push converges;
#  - replayed with the group's commit failing: every APPLY MAILBOX
#    answered NO in its place, no folder left; the next push converges;
#  - replayed cut just after each APPLY MAILBOX line and inside it: the
#    folders whose lines were whole are committed (what is applied is
#    made durable, answered or not), the others absent, the replica
#    consistent, no staging left; the next push converges.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;
use SyncPair qw(spool_conf must_run deliver sync_run findings staging_left);

my $base = fast_scratch();
local $IdsTest::NO_VALGRIND = 1;	# strace

sub names_of {
	my ($conf) = @_;
	return [sort map { $_->{name} } values %{CyrusPeer::ids_state($conf)}];
}

# The invariants and spool_audit after recovery, then the staging.
sub consistent {
	my ($what, $conf) = @_;
	my @bad = map { "$what: $_" } findings($conf);
	my @left = staging_left($conf);
	push @bad, "$what: staging left: @left" if @left;
	return @bad;
}

# The statuses of a replica's answers, in order ("OK", "NO", "BAD"), the banner left out.
sub statuses {
	my ($out) = @_;
	return [map { /^(OK|NO|BAD)\b/ ? $1 : () } split /\r\n/, $out];
}

my $S = spool_conf("$base/s");
my @folders = qw(user.dave user.dave.A user.dave.B user.dave.C user.dave.D);
must_run('ctl_mboxlist', '-C', $S, '-i', '-c', @folders);
deliver($S, $_, 2) for @folders;

# ---- the banner and a pipelined push through a tap ---------------------------
my $P0 = spool_conf("$base/p0");
my $r = run('spool_sync', '-C', $P0, '--serve', stdin => "EXIT\r\n");
like($r->{out}, qr/^\* OK \S+ Cyrus sync server idspool-\S+ idspool-pipeline\r\n/,
    'the banner announces idspool-pipeline');
my $serve = "strace -f -qq -o $base/strace.live -e trace=syncfs " . tool('spool_sync') .
    " -C $P0 --serve";
{
	# LeakSanitizer stops itself under ptrace: no leak check in this run.
	local $ENV{ASAN_OPTIONS} = join(':', grep { length } $ENV{ASAN_OPTIONS} // '',
	    'detect_leaks=0');
	$r = run('spool_sync', '-C', $S, '-v', '-v', '-u', 'dave', '--', 'sh', '-c',
	    "tee $base/in | $serve");
}
is($r->{rc}, 0, 'a push of 5 new folders through a tap exits 0') or diag($r->{err});
like($r->{out}, qr/ 5 applied, /, '... all applied');
# the APPLY MAILBOX lines go one after another, after the files: one group
# (two when the peer happens to read between two of them)
my $live = () = slurp("$base/strace.live") =~ /\bsyncfs\(/g;
ok($live >= 1 && $live <= 2, "... committed by the peer in one group ($live syncfs)");
# the trace: the commands sent ('>') and the answers read ('<'), in order,
# and the client's "created on the peer" once it has read an APPLY MAILBOX's OK
my @trace = map { /^spool_sync: ([<>]) (\S+(?: \S+)?)/ ? "$1 $2" : () } split /\n/, $r->{err};
my $before = 0;
for (split /\n/, $r->{err}) {
	last if /created on the peer/;
	$before++ if /^spool_sync: > APPLY MAILBOX/;
}
is($before, 5, '... all 5 APPLY MAILBOX sent before the first answer to one is read');
my @cmds = map { /^> (.*)/ ? $1 : () } @trace;
my $in = slurp("$base/in");

# ---- replayed: one group, answers in order -----------------------------------
my $P1 = spool_conf("$base/p1");
my $trace = "$base/strace.out";
# LeakSanitizer stops itself under ptrace: no leak check in this run.
my $asan = $ENV{ASAN_OPTIONS};
$ENV{ASAN_OPTIONS} = join(':', grep { length } $asan // '', 'detect_leaks=0');
$r = run('sh', '-c', 'exec "$@" < "$0"', "$base/in", 'strace', '-f', '-qq', '-o', $trace,
    '-e', 'trace=syncfs,fsync,fdatasync', tool('spool_sync'), '-C', $P1, '--serve');
is($r->{rc}, 0, 'the session replayed from a file') or diag($r->{err});
if (defined $asan) { $ENV{ASAN_OPTIONS} = $asan; } else { delete $ENV{ASAN_OPTIONS}; }
my $st = statuses($r->{out});
is(scalar @$st, scalar @cmds, '... one answer a command');
is_deeply($st, [('OK') x @cmds], '... every one OK');
my $syncfs = () = slurp($trace) =~ /\bsyncfs\(/g;
is($syncfs, 1, '... the 5 new folders made durable by one syncfs');
is_deeply(CyrusPeer::ids_state($P1), CyrusPeer::ids_state($P0),
    '... the replica equal to the one the client pushed to');
is_deeply([consistent('replayed', $P1)], [], '... consistent, no staging left');

# ---- the second new folder fails: its NO in its place --------------------------
my @mb = grep { $cmds[$_] =~ /^APPLY MAILBOX/ } 0 .. $#cmds;
my $P2 = spool_conf("$base/p2");
$r = run('sh', '-c', 'exec "$@" < "$0"', "$base/in", 'env', 'IDS_FAILPOINT=sync.apply_index:EIO:2',
    tool('spool_sync'), '-C', $P2, '--serve');
$st = statuses($r->{out});
my @want = ('OK') x @cmds;
$want[$mb[1]] = 'NO';
is_deeply($st, \@want, 'the second new folder failing: NO for its APPLY MAILBOX alone, in its place');
my $have = names_of($P2);
is(scalar @$have, 4, '... 4 folders on the replica');
my %have = map { $_ => 1 } @$have;
my @absent = grep { !$have{$_} } @folders;
is(scalar @absent, 1, "... one absent (@absent)");
is_deeply([consistent('one failed', $P2)], [], '... consistent, no staging left');
$r = sync_run($S, $P2, '-u', 'dave');
like($r->{out}, qr/ 1 applied, .* 0 failed$/m, '... the next push applies that one');
is_deeply(CyrusPeer::ids_state($P2), CyrusPeer::ids_state($S), '... and converges');

# ---- the group's commit fails: every folder of it answered NO, in place ---------
my $P3 = spool_conf("$base/p3");
$r = run('sh', '-c', 'exec "$@" < "$0"', "$base/in", 'env',
    'IDS_FAILPOINT=mailbox.create_commit:EIO', tool('spool_sync'), '-C', $P3, '--serve');
$st = statuses($r->{out});
@want = map { $cmds[$_] =~ /^APPLY MAILBOX/ ? 'NO' : 'OK' } 0 .. $#cmds;
is_deeply($st, \@want, 'the group commit failing: NO for every APPLY MAILBOX, in place, '
    . 'OK for the rest');
is_deeply(names_of($P3), [], '... no folder on the replica');
is_deeply([consistent('group failed', $P3)], [], '... consistent, no staging left');
$r = sync_run($S, $P3, '-u', 'dave');
is_deeply(CyrusPeer::ids_state($P3), CyrusPeer::ids_state($S), '... the next push converges');

# ---- cut after and inside each APPLY MAILBOX line ------------------------------
my @bad;
my @ends;
while ($in =~ /^APPLY MAILBOX .*?\r\n/mg) { push @ends, [$-[0], $+[0]]; }
is(scalar @ends, 5, 'the session holds 5 APPLY MAILBOX lines');
my $k = 0;
for my $e (@ends) {
	$k++;
	for my $cut ($e->[1], int(($e->[0] + $e->[1]) / 2)) {
		my $whole = $cut == $e->[1] ? $k : $k - 1;
		my $c = spool_conf("$base/c$cut");
		open my $fh, '>', "$base/cut" or die "$base/cut: $!";
		binmode $fh;
		print $fh substr($in, 0, $cut);
		close $fh;
		$r = run('sh', '-c', 'exec "$@" < "$0"', "$base/cut", tool('spool_sync'), '-C', $c,
		    '--serve');
		my $n = scalar @{names_of($c)};
		push @bad, "cut at $cut: $n folders, not the $whole whose lines were whole"
		    if $n != $whole;
		push @bad, consistent("cut at $cut", $c);
		$r = sync_run($S, $c, '-u', 'dave');
		push @bad, "cut at $cut: the retry: exit $r->{rc} $r->{err}" if $r->{rc};
		push @bad, "cut at $cut: not equal after the retry"
		    unless join(',', @{names_of($c)}) eq join(',', @{names_of($S)});
	}
}
is_deeply(\@bad, [], 'cut after and inside each APPLY MAILBOX: the whole ones committed, '
    . 'consistent, the retry converges');

done_testing();
