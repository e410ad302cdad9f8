#!/usr/bin/perl
# t7500-spool-sync-push-flushes.t - a folder that an APPLY MAILBOX
# creates on an idspool replica is one durable step: its directory,
# cyrus.header, cyrus.index, message files and idspool.sync are written
# with no flush, then made durable by one syncfs and committed by one
# mailboxes.db transaction (after the durable intent "create"), before
# the OK.
#
#  - a push of new folders costs the peer a few flushes a folder (fsync,
#    fdatasync and syncfs counted under strace), not the two dozen of a
#    create followed by an apply;
#  - an apply of a new folder that fails (a failpoint's EIO) leaves no
#    trace of it on the peer: no mailboxes.db record, no directory, no
#    intent, the invariants held; the next push converges;
#  - the peer killed after the syncfs and before the commit: recovery
#    removes the folder; the next push converges;
#  - after each: both sides equal, the pair audit clean.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Find;
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;
use SyncPair qw(spool_conf spool_dir must_run deliver uniqueid_of peer sync_run pair_audit);

my $base = fast_scratch();
local $IdsTest::NO_VALGRIND = 1;	# strace and killed peers

sub push_to {
	my ($from, $to, @env) = @_;
	return sync_run($from, [peer($to, @env)], '-A');
}

sub applied { return ($_[0]{out} =~ / (\d+) applied,/)[0] // -1; }
sub failed { return ($_[0]{out} =~ / (\d+) failed$/m)[0] // -1; }

# Directories named $id anywhere under the spool of $conf.
sub dirs_named {
	my ($conf, $id) = @_;
	my $root = spool_dir($conf) . '/spool';
	my @d;
	find(sub { push @d, $File::Find::name if -d $_ && $_ eq $id }, $root);
	return @d;
}

sub invariants {
	my ($what, $conf) = @_;
	my $st = Torture::state({ conf => $conf }, 1);
	is_deeply($st->{violations}, [], "$what: the peer holds every invariant")
	    or diag(explain($st));
	my $a = run('spool_audit', '-C', $conf, '-q');
	is($a->{rc}, 0, "$what: spool_audit of the peer is clean") or diag($a->{out}, $a->{err});
}

sub converged {
	my ($what, $from, $to) = @_;
	my $r = push_to($from, $to);
	is($r->{rc}, 0, "$what: the next push exits 0") or diag($r->{out}, $r->{err});
	$r = push_to($from, $to);
	is(applied($r), 0, "$what: a further push applies nothing") or diag($r->{out}, $r->{err});
	is_deeply(CyrusPeer::ids_state($to), CyrusPeer::ids_state($from),
	    "$what: both sides equal by uniqueid");
	$r = pair_audit($from, $to);
	ok($r->{rc} == 0 && $r->{out} eq '', "$what: the pair audit is clean")
	    or diag($r->{out}, $r->{err});
}

# ---- flushes of a push of new folders ---------------------------------------
my $S = spool_conf("$base/s");
my $P = spool_conf("$base/p");
my @folders = qw(user.alice user.alice.Sent user.alice.Big user.bob user.bob.Archive
    user.carol);
must_run('ctl_mboxlist', '-C', $S, '-i', '-c', @folders);
deliver($S, $_, 3) for grep { $_ ne 'user.alice.Big' } @folders;
deliver($S, 'user.alice.Big', 24);	# more files than are fsynced one by one

my $trace = "$base/strace.out";
# LeakSanitizer stops itself under ptrace: no leak check in this run.
my $asan = $ENV{ASAN_OPTIONS};
$ENV{ASAN_OPTIONS} = join(':', grep { length } $asan // '', 'detect_leaks=0');
my $r = run('spool_sync', '-C', $S, '-A', '--', 'strace', '-f', '-qq', '-o', $trace,
    '-e', 'trace=fsync,fdatasync,syncfs,sync,msync,sync_file_range', peer($P));
is($r->{rc}, 0, 'push of 6 new folders under strace exits 0') or diag($r->{out}, $r->{err});
is(applied($r), scalar @folders, '... every folder applied');
if (defined $asan) { $ENV{ASAN_OPTIONS} = $asan; } else { delete $ENV{ASAN_OPTIONS}; }
my %n;
for (split /\n/, slurp($trace)) {
	$n{$1}++ if /^\d+\s+(\w+)\(/;
}
my $flushes = 0;
$flushes += $_ for values %n;
my $per = $flushes / @folders;
note(sprintf "peer flushes: %s; %.1f a folder",
    join(', ', map { "$_ $n{$_}" } sort keys %n), $per);
# one durable intent and one commit in mailboxes.db (an fdatasync each)
# and one syncfs a folder, plus the session's own
cmp_ok($flushes, '<=', 3 * @folders + 4, 'at most 3 flushes a new folder on the peer');
ok(($n{syncfs} // 0) >= 1 && ($n{syncfs} // 0) <= @folders, '... the files made durable by syncfs');
ok(($n{fsync} // 0) <= 4, '... and not by an fsync of each file and directory');
invariants('after the push', $P);
converged('after the push', $S, $P);

# ---- an apply of a new folder that fails -------------------------------------
must_run('ctl_mboxlist', '-C', $S, '-i', '-c', 'user.carol.New');
deliver($S, 'user.carol.New', 2);
my $id = uniqueid_of($S, 'user.carol.New');
$r = push_to($S, $P, 'IDS_FAILPOINT=sync.apply_index:EIO');
is(failed($r), 1, 'an apply failing with EIO: the folder is reported failed')
    or diag($r->{out}, $r->{err});
ok(!grep({ $_->{name} eq 'user.carol.New' } values %{CyrusPeer::ids_state($P)}),
    '... no record of the new folder on the peer');
is_deeply([dirs_named($P, $id)], [], '... nor its directory');
invariants('after a failed apply', $P);
converged('after a failed apply', $S, $P);

# ---- the peer killed after the syncfs, before the commit ---------------------
must_run('ctl_mboxlist', '-C', $S, '-i', '-c', 'user.bob.Later');
deliver($S, 'user.bob.Later', 5);
$id = uniqueid_of($S, 'user.bob.Later');
$r = push_to($S, $P, 'IDS_FAILPOINT_CRASH=1:mailbox.create_commit');
isnt($r->{rc}, 0, 'the peer killed before it commits a new folder: the push fails');
ok(!grep({ $_->{name} eq 'user.bob.Later' } values %{CyrusPeer::ids_state($P)}),
    '... no record of the folder on the peer');
invariants('after the kill (recovered)', $P);
is_deeply([dirs_named($P, $id)], [], '... recovery removed its directory');
converged('after the kill', $S, $P);

done_testing();
