#!/usr/bin/perl
# t7410-spool-sync-pull-crash.t - spool_sync --pull killed (SIGKILL) at
# every failpoint it passes while it pulls from another idspool spool
# (spool_sync --serve as the peer, never killed): first a full pull of
# a user (two folders created, their message files fetched), then an
# incremental one (a folder renamed, its ACL changed, a new folder, a
# folder deleted on the peer).  After each kill: the invariant checker
# and spool_audit (after the recovery every tool runs first) find
# nothing wrong, no staging is left after the retry, and the retried
# pull converges on exactly the peer's state.  Then a split brain: both
# sides delivered under the same uid and made a folder of the same
# name; the pull, killed at each point of its merge, its copy-back and
# its findings, converges with every message of either side on both.
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

my $bob = CyrusPeer::transcript('03-full-user-sync-bob.wire.txt');

sub spool { return CyrusPeer::replica_conf("$base/$_[0]"); }

sub serve {
	my ($conf, $in) = @_;
	my $r = run('spool_sync', '-C', $conf, '--serve', stdin => $in);
	die "spool_sync --serve: $r->{out} $r->{err}" if $r->{rc} || $r->{out} =~ /^(NO|BAD)/m;
	return $r;
}

# What a client sees of a spool: every folder's state line.
sub seen {
	my ($conf) = @_;
	my $r = run('spool_sync', '-C', $conf, '--serve', stdin => "GET USER bob\r\nEXIT\r\n");
	return join("\n", sort grep { /^\* MAILBOX/ } split /\r\n/, $r->{out});
}

# The pull, its failpoint settings kept from the peer (env -u).
sub pull {
	my ($conf, $peer, %env) = @_;
	local %ENV = (%ENV, %env);
	return run('spool_sync', '-C', $conf, '--pull', '-u', 'bob', '--', 'env',
	    '-u', 'IDS_FAILPOINT_CRASH', '-u', 'IDS_FAILPOINT_LOG',
	    tool('spool_sync'), '-C', $peer, '--serve');
}

my $peer = spool('peer');
serve($peer, $bob);
my $want = seen($peer);

# ---- the full pull --------------------------------------------------------
my $log = "$base/points";
my $conf = spool('ref');
my $r = pull($conf, $peer, IDS_FAILPOINT_LOG => $log);
is($r->{rc}, 0, 'the uninterrupted pull') or diag($r->{out}, $r->{err});
is(seen($conf), $want, '... gives the peer\'s state');

sub pull_crash_loop {
	my ($what, $prepare, $peerconf, $want) = @_;
	unlink $log;
	my $c = spool('ref');
	$prepare->($c);
	my $r = pull($c, $peerconf, IDS_FAILPOINT_LOG => $log);
	die "$what: $r->{err}" if $r->{rc};
	my @points = split /\n/, slurp($log);
	my %kinds = map { $_ => 1 } @points;
	ok(@points >= 5, "$what: " . scalar(@points) . ' failpoints passed, of ' .
	    scalar(keys %kinds) . ' kinds: ' . join(' ', sort keys %kinds));
	my @bad;
	for my $k (1 .. scalar(@points)) {
		my $c = spool("k$k");
		$prepare->($c);
		$r = pull($c, $peerconf, IDS_FAILPOINT_CRASH => $k);
		if ($r->{rc} != 128 + 9) {
			push @bad, "k=$k ($points[$k - 1]): not killed (exit $r->{rc})";
			next;
		}
		my $st = -e "$base/k$k/conf/mailboxes.db" ? state({ conf => $c }, 1) : {};
		push @bad, "k=$k ($points[$k - 1]): @{$st->{violations}}"
		    if @{$st->{violations} // []};
		push @bad, map { "k=$k ($points[$k - 1]): before the retry: $_" }
		    Torture::audit({ conf => $c }, $st) if $st->{folders};
		$r = pull($c, $peerconf);
		push @bad, "k=$k ($points[$k - 1]): the retry: $r->{rc} $r->{err}" if $r->{rc};
		push @bad, "k=$k ($points[$k - 1]): another state after the retry"
		    if seen($c) ne $want;
		my $a = run('spool_audit', '-C', $c);
		push @bad, "k=$k ($points[$k - 1]): spool_audit: $a->{out}" if $a->{rc};
		my @left = glob("$base/k$k/spool/stage./*");
		push @bad, "k=$k ($points[$k - 1]): staging left: @left" if @left;
		remove_tree("$base/k$k") unless @bad;
	}
	is_deeply(\@bad, [], "$what: killed at each of " . scalar(@points) .
	    ' points: consistent, and the retried pull converges on the peer\'s state');
}

pull_crash_loop('full pull', sub { }, $peer, $want);

# ---- an incremental pull ----------------------------------------------------
# The pulling spool starts as a copy of peer3 (bob and a folder Gone);
# peer2 is then bob with Archive renamed to Old, the INBOX's ACL
# changed, a new folder New, and Gone deleted (its tombstone held).
sub folder {
	my ($id, $name) = @_;
	return "APPLY MAILBOX %(UNIQUEID $id MBOXNAME $name SYNC_CRC 0 " .
	    "SYNC_CRC_ANNOT 12345678 LAST_UID 0 HIGHESTMODSEQ 1 RECENTUID 0 RECENTTIME 0 " .
	    "LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 1796524923 " .
	    "PARTITION default ACL \"bob\tlrswipkxtecdan\t\" OPTIONS P CREATEDMODSEQ 1 " .
	    "FOLDERMODSEQ 1 RECORD ())\r\n";
}
my $gone = folder('q2q2q2q2q2q2q2q2q2q2q2q2', 'user.bob.Gone');
my $peer3 = spool('peer3');
serve($peer3, $bob);
serve($peer3, $gone . "EXIT\r\n");
my $peer2 = spool('peer2');
serve($peer2, $bob);
my ($apply) = $bob =~ /^(APPLY MAILBOX %\(UNIQUEID fjs9ohlzg88spsk0mehkmhp9 [^\n]*\n)/m;
$apply =~ s/ACL "bob\tlrswipkxtecdan\t"/ACL "bob\tlrswipkxtecdan\talice\tlr\t"/ or die 'no ACL';
serve($peer2, "APPLY RENAME %(OLDMBOXNAME user.bob.Archive NEWMBOXNAME user.bob.Old " .
    "PARTITION default UIDVALIDITY 1796524923)\r\n" . $apply .
    folder('q1q1q1q1q1q1q1q1q1q1q1q1', 'user.bob.New') . $gone .
    "APPLY UNMAILBOX user.bob.Gone\r\nEXIT\r\n");
my $want2 = seen($peer2);
like($want2, qr/MBOXNAME user\.bob\.Old .*MBOXNAME user\.bob\.New /s,
    'the peer has Archive as Old, and New');
my $prep = sub {
	my ($c) = @_;
	my $r = pull($c, $peer3);
	die "pull: $r->{err}" if $r->{rc};
	die "no Gone" unless seen($c) =~ /user\.bob\.Gone/;
};
pull_crash_loop('incremental pull (rename, ACL, new folder, delete)', $prep, $peer2, $want2);

# ---- a split brain --------------------------------------------------------
# Both spools hold bob; then each delivers another message under the
# same next uid of the INBOX and creates its own user.bob.Mine.  The
# pull merges the INBOX on both sides (the peer's and its own message
# renumbered, the uid expunged: APPLY EXPUNGE here), renames its own
# Mine to a recovery name and copies it to the peer, creates the
# peer's Mine here, and stores its findings.  The peer is made afresh
# for each kill (the pull writes it too); after the retry both sides
# are equal and every message either side accepted is live on both.
my $serial = 0;
sub sb_prepare {
	my ($c, $p) = @_;
	serve($p, $bob);
	my $r = pull($c, $p);
	die "pull: $r->{err}" if $r->{rc};
	for my $side ($c, $p) {
		$serial++;
		for my $cmd (['spool_append', '-C', $side, '-i', 'user.bob',
		    stdin => "Subject: split $serial\n\nBody $serial\n"],
		    ['ctl_mboxlist', '-C', $side, '-i', '-c', 'user.bob.Mine'],
		    ['spool_append', '-C', $side, '-i', 'user.bob.Mine',
		    stdin => "Subject: mine $serial\n\nMine $serial\n"]) {
			my $x = run(@$cmd);
			die "@$cmd[0]: $x->{err}" if $x->{rc};
		}
	}
}
# The live GUIDs of a spool, each once per folder ("guid" => count).
sub live_guids {
	my ($conf) = @_;
	my %g;
	for my $f (values %{CyrusPeer::ids_state($conf)}) {
		for my $rec (values %{$f->{records}}) {
			$g{$1}++ if $rec !~ /\\Expunged/ && $rec =~ /(\w{40})$/;
		}
	}
	return \%g;
}
{
	unlink $log;
	my ($c, $p) = (spool('sbref'), spool('sbpeer'));
	sb_prepare($c, $p);
	my $r = pull($c, $p, IDS_FAILPOINT_LOG => $log);
	is($r->{rc}, 0, 'split brain: the uninterrupted pull') or diag($r->{err});
	is(seen($c), seen($p), '... both sides equal');
	like($r->{out}, qr/^pull: 1 folder\(s\) merged, 4 finding\(s\)/m, '... one merge, 4 findings');
	my @points = split /\n/, slurp($log);
	my %kinds = map { $_ => 1 } @points;
	ok($kinds{'sync.findings_write'} && $kinds{'sync.apply_index'},
	    'split brain: ' . scalar(@points) . ' failpoints passed, of ' . scalar(keys %kinds) .
	    ' kinds: ' . join(' ', sort keys %kinds));
	my @bad;
	for my $k (1 .. scalar(@points)) {
		my ($c, $p) = (spool("sb$k"), spool("sbp$k"));
		sb_prepare($c, $p);
		my %ever = (%{live_guids($c)}, %{live_guids($p)});
		$r = pull($c, $p, IDS_FAILPOINT_CRASH => $k);
		if ($r->{rc} != 128 + 9) {
			push @bad, "k=$k ($points[$k - 1]): not killed (exit $r->{rc})";
			next;
		}
		my $st = state({ conf => $c }, 1);
		push @bad, "k=$k ($points[$k - 1]): @{$st->{violations}}" if @{$st->{violations} // []};
		$r = pull($c, $p);
		push @bad, "k=$k ($points[$k - 1]): the retry: $r->{rc} $r->{err}" if $r->{rc};
		push @bad, "k=$k ($points[$k - 1]): the sides differ after the retry"
		    if seen($c) ne seen($p);
		my ($lc, $lp) = (live_guids($c), live_guids($p));
		my @lost = grep { !$lc->{$_} || !$lp->{$_} } sort keys %ever;
		push @bad, "k=$k ($points[$k - 1]): lost @lost" if @lost;
		my @twice = grep { $lc->{$_} > 1 } sort keys %$lc;
		push @bad, "k=$k ($points[$k - 1]): twice @twice" if @twice;
		for my $side ($c, $p) {
			my $a = run('spool_audit', '-C', $side);
			push @bad, "k=$k ($points[$k - 1]): spool_audit: $a->{out}" if $a->{rc};
		}
		my @left = glob("$base/sb$k/spool/stage./*");
		push @bad, "k=$k ($points[$k - 1]): staging left: @left" if @left;
		remove_tree("$base/sb$k", "$base/sbp$k") unless @bad;
	}
	is_deeply(\@bad, [], 'split brain: killed at each of ' . scalar(@points) .
	    ' points: consistent, and the retry converges with nothing lost and nothing twice');
}

done_testing;
