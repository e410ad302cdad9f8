#!/usr/bin/perl
# t7300-spool-sync-crash.t - spool_sync --serve killed (SIGKILL) at
# every failpoint it passes while it applies a real session of Cyrus
# 3.6.1 (the transcript of bob's full sync: two folders created, two
# messages, a subscription), then of an APPLY MAILBOX that changes a
# folder's ACL (mailboxes.db, the "sync" intent, cyrus.header, the
# index).  After each kill: the invariant checker and spool_audit (after
# the recovery every tool runs first) find nothing wrong, and the
# client's retry of the whole session is answered OK throughout and
# converges on exactly the state of an uninterrupted run (every folder's
# GET MAILBOXES line, CRCs included; cyrus.header's ACL the db's),
# spool_audit is clean and no staging is left.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use Test::More;
use IdsTest;
use CyrusPeer;
use Digest::SHA qw(sha1_hex);
use Torture;

my $top = "$FindBin::Bin/..";
my $base = fast_scratch();
local $IdsTest::NO_VALGRIND = 1;

my $bob = CyrusPeer::transcript('03-full-user-sync-bob.wire.txt');

sub spool { return CyrusPeer::replica_conf("$base/$_[0]"); }

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
	push @bad, map { "k=$k ($points[$k - 1]): before the retry: $_" } Torture::audit({ conf => $c }, $st)
	    if $st->{folders};
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

# ---- an ACL change of a folder the replica has --------------------------
# mailboxes.db takes the ACL first, cyrus.header after it: killed between
# the two, the retry must still bring the header to the new ACL (the db
# has it already, so "changed" alone is not the test).
my ($apply) = $bob =~ /^(APPLY MAILBOX %\(UNIQUEID fjs9ohlzg88spsk0mehkmhp9 [^\n]*\n)/m;
$apply =~ s/ACL "bob\tlrswipkxtecdan\t"/ACL "bob\tlrswipkxtecdan\talice\tlr\t"/ or die 'no ACL';
my $acl = "$apply" . "EXIT\r\n";

sub header_acl {
	my ($c) = @_;
	my $p = run('mbpath', '-C', $c, '-i', 'user.bob');
	chomp(my $dir = $p->{out});
	my ($a) = slurp("$dir/cyrus.header") =~ / A %\(([^)]*)\)/;
	return $a // '';
}

$conf = spool('acl');
serve($conf, $bob);
unlink $log;
$r = serve($conf, $acl, IDS_FAILPOINT_LOG => $log);
is_deeply([grep { /^(OK|NO|BAD)/ } split /\r\n/, $r->{out}], ['OK success', 'OK Finished'],
    'an APPLY MAILBOX that gives alice rights on user.bob');
is(header_acl($conf), 'bob lrswipkxtecdan alice lr', '... in cyrus.header too');
@points = split /\n/, slurp($log);
my %acl_kinds = map { $_ => 1 } @points;
ok(!grep({ !$acl_kinds{"sync.apply_$_"} } qw(db intent header index done)),
    'it passes sync.apply_db, _intent, _header, _index and _done');
@bad = ();
for my $k (1 .. scalar(@points)) {
	my $c = spool("acl$k");
	serve($c, $bob);
	$r = serve($c, $acl, IDS_FAILPOINT_CRASH => $k);
	if ($r->{rc} != 128 + 9) {
		push @bad, "k=$k ($points[$k - 1]): not killed (exit $r->{rc})";
		next;
	}
	my $st = state({ conf => $c }, 1);
	push @bad, map { "k=$k ($points[$k - 1]): after recovery: $_" } @{$st->{violations}},
	    Torture::audit({ conf => $c }, $st);
	$r = serve($c, $acl);
	push @bad, "k=$k ($points[$k - 1]): the retry got $r->{out}" unless $r->{out} =~ /\r\nOK success\r\n/;
	my $h = header_acl($c);
	push @bad, "k=$k ($points[$k - 1]): cyrus.header has ACL '$h'" if $h ne 'bob lrswipkxtecdan alice lr';
	my $a = run('spool_audit', '-C', $c);
	push @bad, "k=$k ($points[$k - 1]): spool_audit: $a->{out}" if $a->{rc};
	remove_tree("$base/acl$k") unless @bad;
}
is_deeply(\@bad, [], 'killed at each of ' . scalar(@points) .
    ' points of the ACL change: the retry brings mailboxes.db and cyrus.header to it');

# ---- a folder of more new files than are fsynced one by one ------------
# The replica does not fsync staged files: the first 16 files an apply
# links are fsynced there, the others by one syncfs before the records
# are committed.  18 files, killed at each point of the apply.
my @files = map { "From: carol\r\nSubject: dave $_\r\n\r\nmessage $_ " . ('z' x ($_ * 53)) . "\r\n" } 1 .. 18;
sub dave_session {
	my ($crc, $acrc) = @_;
	my $recs = join(' ', map {
		my $i = $_ + 1;
		"%(UID $i MODSEQ " . ($i + 1) . " LAST_UPDATED 1796524922 FLAGS () INTERNALDATE 1796524922 " .
		    "SIZE " . length($files[$_]) . " GUID " . sha1_hex($files[$_]) . ")"
	} 0 .. $#files);
	return 'APPLY MESSAGE (' . join(' ', map { '%{default ' . sha1_hex($_) . ' ' . length($_) .
	    "}\r\n$_" } @files) . ")\r\n" .
	    "APPLY MAILBOX %(UNIQUEID d4ve00000000000000000001 MBOXNAME user.dave SYNC_CRC $crc " .
	    "SYNC_CRC_ANNOT $acrc LAST_UID 18 HIGHESTMODSEQ 19 RECENTUID 0 RECENTTIME 0 " .
	    "LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 1796524999 " .
	    "PARTITION default ACL \"dave\tlrswipkxtecdan\t\" OPTIONS P RECORD ($recs))\r\nEXIT\r\n";
}
# the CRCs, as the replica computes them, from its refusal of wrong ones
$r = serve(spool('dave-crc'), dave_session(0, 0));
my ($crc, $acrc) = $r->{out} =~ m{CRCs (\d+)/(\d+) here after the apply} or BAIL_OUT("no CRCs: $r->{out}");
my $dave = dave_session($crc, $acrc);
sub seen_dave {
	my ($c) = @_;
	my $r = serve($c, "GET MAILBOXES (user.dave)\r\nEXIT\r\n");
	return join("\n", sort grep { /^\* / } split /\r\n/, $r->{out});
}
$conf = spool('dave');
unlink $log;
$r = serve($conf, $dave, IDS_FAILPOINT_LOG => $log);
is_deeply([grep { /^(OK|NO|BAD)/ } split /\r\n/, $r->{out}], ['OK success', 'OK success', 'OK Finished'],
    'a folder of 18 new files') or diag($r->{out}, $r->{err});
$want = seen_dave($conf);
@points = split /\n/, slurp($log);
is(scalar(grep { $_ eq 'fs.syncfs' } @points), 1, '... made durable by one syncfs');
is(scalar(grep { $_ eq 'sync.stage_fsync' } @points), 0, '... and no fsync in staging');
@bad = ();
for my $k (1 .. scalar(@points)) {
	my $c = spool("dave$k");
	$r = serve($c, $dave, IDS_FAILPOINT_CRASH => $k);
	if ($r->{rc} != 128 + 9) {
		push @bad, "k=$k ($points[$k - 1]): not killed (exit $r->{rc})";
		next;
	}
	my $st = -e "$base/dave$k/conf/mailboxes.db" ? state({ conf => $c }, 1) : {};
	push @bad, "k=$k ($points[$k - 1]): @{$st->{violations}}" if @{$st->{violations} // []};
	push @bad, map { "k=$k ($points[$k - 1]): before the retry: $_" } Torture::audit({ conf => $c }, $st)
	    if $st->{folders};
	$r = serve($c, $dave);
	my @no = grep { /^(NO|BAD)/ } split /\r\n/, $r->{out};
	push @bad, "k=$k ($points[$k - 1]): the retry got @no" if @no || $r->{rc};
	push @bad, "k=$k ($points[$k - 1]): another state after the retry" if seen_dave($c) ne $want;
	my $a = run('spool_audit', '-C', $c);
	push @bad, "k=$k ($points[$k - 1]): spool_audit: $a->{out}" if $a->{rc};
	remove_tree("$base/dave$k") unless @bad;
}
is_deeply(\@bad, [], 'killed at each of ' . scalar(@points) .
    ' points of it: consistent, and the retry converges on the same state');

done_testing;
