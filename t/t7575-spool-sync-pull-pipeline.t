#!/usr/bin/perl
# t7575-spool-sync-pull-pipeline.t - spool_sync --pull sends its GET
# FETCH lines pipelined (a window of them before their answers), and
# reads every answer in order with the checks of one:
#
#  - from an idspool peer, a folder of several windows arrives whole:
#    many GET FETCH lines go before the first answer is read;
#  - a fetch refused mid-window (a file on the peer that is not its
#    GUID's: the peer answers NO) fails that folder alone: nothing of it
#    is created here, the answers after it are read (the session stays in
#    step), every other folder arrives; once the peer's file is
#    repaired, the next pull converges and the pair audit is clean;
#  - from a real Cyrus 3.6.1 sync_server, the same pipelined pull.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf must_run folder_dir);

my $top = "$FindBin::Bin/..";
my $base = scratch();
chmod 0755, $base;

# $n messages into $folder of $conf, by one spool_append.
my $serial = 0;
sub deliver {
	my ($conf, $folder, $n) = @_;
	my @f;
	for (1 .. $n) {
		$serial++;
		my $f = "$base/msg.$serial";
		spew($f, "From: x\@example.com\nSubject: message $serial\n\nBody $serial\n");
		push @f, $f;
	}
	must_run('spool_append', '-q', '-C', $conf, '-i', $folder, @f);
	unlink @f;
}


# run(), its output and trace (-v -v: far more than a pipe holds, which
# run() reads only after the output) written to files.
my $nrun = 0;
sub run_traced {
	my (@cmd) = @_;
	my $f = "$base/run." . ++$nrun;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDOUT, '>', "$f.out" or die;
		open STDERR, '>', "$f.err" or die;
		exec(tool($cmd[0]), @cmd[1 .. $#cmd]) or die "exec: $!";
	}
	waitpid($pid, 0);
	my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
	return { out => slurp("$f.out"), err => slurp("$f.err"), rc => $rc };
}

sub pull_from {
	my ($to, @peer) = @_;
	return run_traced('spool_sync', '-C', $to, '-v', '-v', '--pull', '-A', '--', @peer);
}

# The most GET FETCH lines sent in a row before an answer was read.
sub most_in_flight {
	my ($trace) = @_;
	my ($most, $n) = (0, 0);
	for (split /\n/, $trace) {
		if (/^spool_sync: > GET FETCH /) {
			$n++;
			$most = $n if $n > $most;
		} elsif (/^spool_sync: < /) {
			$n = 0;
		}
	}
	return $most;
}

sub applied { return ($_[0]{out} =~ / (\d+) applied,/)[0] // -1; }
sub failed { return ($_[0]{out} =~ / (\d+) failed$/m)[0] // -1; }
sub files { return ($_[0]{out} =~ / (\d+) file\(s\),/)[0] // -1; }

# ---- from an idspool peer ----------------------------------------------------
my $P = spool_conf("$base/p");
my $S = spool_conf("$base/s");
must_run('ctl_mboxlist', '-C', $P, '-i', '-c', 'user.alice', 'user.alice.Big', 'user.alice.Z',
    'user.bob');
deliver($P, 'user.alice.Big', 700);
deliver($P, $_, 3) for 'user.alice', 'user.alice.Z', 'user.bob';

# a file of the peer whose bytes are not its GUID's, in the middle of a window
my $pbig = folder_dir($P, 'user.alice.Big');
my $good = slurp("$pbig/100.");
(my $bad = $good) =~ s/Body/BODY/;
spew("$pbig/100.", $bad);

my $r = pull_from($S, ids_peer($P));
is($r->{rc}, 1, 'a fetch refused: the pull exits 1') or diag($r->{out}, $r->{err});
is(failed($r), 1, '... one folder failed') or diag($r->{out});
like($r->{err}, qr/^spool_sync: user\.alice\.Big: the peer answered NO IMAP_SYNC_CHECKSUM 100\./m,
    '... the peer\'s refusal of the file, named') or diag($r->{err});
cmp_ok(most_in_flight($r->{err}), '>=', 100, '... GET FETCH pipelined (100 or more in flight)');
my @after = grep { /^spool_sync: < / } split(/\n/, substr($r->{err}, index($r->{err}, 'IMAP_SYNC_CHECKSUM')));
ok(scalar(grep { /^spool_sync: < \* MESSAGE / } @after) > 0,
    '... the answers after the refused one are read') or diag($r->{err});
unlike($r->{err}, qr/session|lost|unexpected/i, '... the session stays in step') or diag($r->{err});
my $st = CyrusPeer::ids_state($S);
my $pst = CyrusPeer::ids_state($P);
my ($bigid) = grep { $pst->{$_}{name} eq 'user.alice.Big' } keys %$pst;
ok(!exists $st->{$bigid}, '... the failed folder is not created here');
is_deeply($st->{$_}, $pst->{$_}, "... $pst->{$_}{name} arrived whole")
    for grep { $_ ne $bigid } sort keys %$pst;
is(run('spool_audit', '-C', $S, '-q')->{rc}, 0, '... spool_audit here is clean');

spew("$pbig/100.", $good);
$r = pull_from($S, ids_peer($P));
is($r->{rc}, 0, 'the peer\'s file repaired: the pull exits 0') or diag($r->{out}, $r->{err});
is(files($r), 700, '... the 700 files of the folder fetched') or diag($r->{out});
cmp_ok(most_in_flight($r->{err}), '>', 1, '... pipelined');
is_deeply(CyrusPeer::ids_state($S), CyrusPeer::ids_state($P), '... both sides equal');
$r = run('spool_audit', '-C', $S, '-i', '--compare', '--', ids_peer($P));
ok($r->{rc} == 0 && $r->{out} eq '', '... the pair audit is clean') or diag($r->{out}, $r->{err});
$r = pull_from($S, ids_peer($P));
is(applied($r), 0, '... a further pull applies nothing') or diag($r->{out});

# ---- from a real Cyrus -------------------------------------------------------
CyrusPeer::ensure($top);
my $cy = CyrusPeer->new("$base/cyrus");
$r = run('spool_sync', '-C', $P, '-u', 'alice', '--', $cy->sync_cmd);
is($r->{rc}, 0, 'Cyrus: alice pushed to a Cyrus sync_server') or diag($r->{out}, $r->{err});
my $C = CyrusPeer::replica_conf("$base/c");
$r = run_traced('spool_sync', '-C', $C, '-v', '-v', '--pull', '-u', 'alice', '--', $cy->sync_cmd);
is($r->{rc}, 0, 'Cyrus: the pull from it exits 0') or diag($r->{out}, substr($r->{err}, -2000));
is(files($r), 706, 'Cyrus: ... every file fetched') or diag($r->{out});
cmp_ok(most_in_flight($r->{err}), '>=', 100, 'Cyrus: ... GET FETCH pipelined');
my $cst = CyrusPeer::ids_state($C);
is_deeply([sort map { $cst->{$_}{name} } keys %$cst], ['user.alice', 'user.alice.Big',
    'user.alice.Z'], 'Cyrus: ... alice\'s folders here');
my %want = map { $_ => $pst->{$_} } grep { $pst->{$_}{name} =~ /^user\.alice/ } keys %$pst;
is_deeply($cst, \%want, 'Cyrus: ... as the idspool spool they came from');
is(run('spool_audit', '-C', $C, '-q')->{rc}, 0, 'Cyrus: ... spool_audit is clean');

done_testing();
