#!/usr/bin/perl
# t7480-spool-sync-push-crash.t - the peer of an idspool push
# (spool_sync --serve) killed (SIGKILL) at every failpoint it passes
# while our client drives it.  t7300 does this for the session of a real
# Cyrus sync_client; a push of spool_sync reaches steps Cyrus's never
# does: a split-brain merge (the same UIDs given to other messages on
# each side: renumbered), a rename and a delete addressed by uniqueid
# (APPLY RENAME / UNMAILBOX with UNIQUEID), a rename cycle, a missing
# file put back (APPLY REPAIR), besides an expunge and new folders.
#
# After each kill: the peer, once recovered, holds every invariant and
# spool_audit finds nothing (the leftover the invariants allow aside), no
# staging is left on either side; the next push exits 0 and converges:
# both sides equal by uniqueid, every GUID of the uninterrupted run live
# on both (nothing lost), no UID twice, the pair audit clean, and a
# further push sends no APPLY.
#
# make check takes the first hit of each kind and every few hits
# besides; make torture (IDS_TORTURE=full) takes every hit.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;
use SyncPair qw(spool_conf must_run deliver uniqueid_of folder_dir peer sync_run pair_audit
    findings staging_left);

my $base = fast_scratch();
local $IdsTest::NO_VALGRIND = 1;

# Each copy of a spool gets a configuration of its own; folders are deleted at once.
sub conf_in { return spool_conf($_[0], delete_mode => 'immediate'); }

# ---- the two sides, apart after a first push --------------------------------
my $S0 = conf_in("$base/s0");
my $P0 = conf_in("$base/p0");
must_run('ctl_mboxlist', '-C', $S0, '-i', '-c', qw(user.alice user.alice.Sent user.alice.Trash
    user.alice.Work user.alice.Work.Sub user.bob user.bob.Archive));
deliver($S0, 'user.alice', 3);
deliver($S0, $_) for qw(user.alice.Sent user.alice.Trash user.alice.Work.Sub user.bob.Archive);
deliver($S0, 'user.bob', 2);
must_run('spool_sync', '-C', $S0, '-A', '--', peer($P0));

# here: a delivery, an expunge, a tree rename, a rename cycle, a delete,
# a new folder
deliver($S0, 'user.alice', 2);
must_run('spool_sync', '-C', $S0, '--serve', stdin => "APPLY EXPUNGE %(MBOXNAME user.alice UNIQUEID " .
    uniqueid_of($S0, 'user.alice') . " UID (1))\r\nEXIT\r\n");
must_run('ctl_rename', '-C', $S0, '-i', 'user.alice.Work', 'user.alice.Projects');
must_run('ctl_rename', '-C', $S0, '-i', @$_) for ['user.alice.Sent', 'user.alice.X'],
    ['user.alice.Trash', 'user.alice.Sent'], ['user.alice.X', 'user.alice.Trash'];
must_run('ctl_mboxlist', '-C', $S0, '-i', '-x', 'user.bob.Archive');
must_run('ctl_mboxlist', '-C', $S0, '-i', '-c', 'user.alice.New');
deliver($S0, 'user.alice.New');
# there: deliveries under the UIDs given here (split brain), a lost file
deliver($P0, 'user.alice', 2);
deliver($P0, 'user.bob');
my $lost = folder_dir($P0, 'user.alice.Sent') . '/1.';
unlink($lost) or die "unlink: $!";
# the checks after a kill must not count it (the push is to heal it)
(my $lost_rel = $lost) =~ s{^.*/(user/[^/]+/[^/]+/1\.)$}{$1} or die "$lost";

my $s0dir = "$base/s0";
my $p0dir = "$base/p0";

# A fresh copy of both sides in $base/$tag: (source conf, peer conf).
sub copies {
	my ($tag) = @_;
	my @c;
	for my $x (['s', $s0dir], ['p', $p0dir]) {
		my $d = "$base/$tag/$x->[0]";
		remove_tree($d);
		make_path("$base/$tag");
		system('cp', '-a', $x->[1], $d) == 0 or die "cp: $?";
		push @c, conf_in($d);
	}
	return @c;
}

sub push_run {
	my ($s, $p, @env) = @_;
	return sync_run($s, [peer($p, @env)], '-v', '-v', '-A');
}

sub live_guids {
	my ($conf) = @_;
	my $st = CyrusPeer::ids_state($conf);
	my %g;
	for my $f (values %$st) {
		for my $rec (values %{$f->{records}}) {
			$g{$1} = 1 if $rec !~ /\\Expunged/ && $rec =~ /(\w{40})$/;
		}
	}
	return join(' ', sort keys %g);
}

sub nstate {
	my $st = CyrusPeer::ids_state($_[0]);
	for my $f (values %$st) {
		s/ \w{40}$// for grep { /\\Expunged/ } values %{$f->{records}};
	}
	return JSON::PP->new->canonical->encode($st);
}

sub dup_uids {
	my ($conf) = @_;
	my $db = decode_json(run('ctl_mboxlist', '-C', $conf, '-d')->{out} || '{}');
	my @bad;
	for my $name (sort keys %$db) {
		next if ($db->{$name}{mbtype} // '') =~ /d/;
		my $idx = slurp(folder_dir($conf, $name) . '/cyrus.index');
		my ($start, $rsize, $n) = unpack('N N N', substr($idx, 12, 12));
		my %seen;
		push @bad, map { "$name uid $_" } grep { $seen{$_}++ }
		    map { unpack('N', substr($idx, $start + $_ * $rsize, 4)) } 0 .. $n - 1;
	}
	return @bad;
}

# ---- the uninterrupted push --------------------------------------------------
my ($rs, $rp) = copies('ref');
my $log = "$base/points";
my $r = push_run($rs, $rp, "IDS_FAILPOINT_LOG=$log");
is($r->{rc}, 0, 'the uninterrupted push') or diag($r->{out}, $r->{err});
like($r->{err}, qr/renumber/i, '... merges the split brain (renumbers)');
like($r->{out}, qr/\b1 deleted\b/, '... deletes the folder deleted here');
like($r->{out}, qr/missing or damaged file\(s\) repaired/, '... repairs the lost file');
my $want = live_guids($rs);
is(live_guids($rp), $want, '... both sides hold the same live GUIDs');
my @ever = split / /, join(' ', live_guids($S0), live_guids($P0));
my %have = map { $_ => 1 } split / /, $want;
# the expunged uid 1 and bob's Archive are the only messages removed on purpose
my $removed = 0;
for my $g (keys %{{ map { $_ => 1 } @ever }}) { $removed++ unless $have{$g}; }
is($removed, 2, '... and every GUID either side held is live but the two removed on purpose');
is(nstate($rp), nstate($rs), '... the states are equal');

my @points = split /\n/, slurp($log);
my %kinds;
$kinds{$_}++ for @points;
ok(@points >= 40, scalar(@points) . ' failpoint hits on the peer, of ' . scalar(keys %kinds) .
    ' kinds');

# Which of them a real Cyrus sync_client's session (t7300's) never reaches.
my $cy = conf_in("$base/cyrus");
unlink "$base/cpoints";
run('env', "IDS_FAILPOINT_LOG=$base/cpoints", tool('spool_sync'), '-C', $cy, '--serve',
    stdin => CyrusPeer::transcript('03-full-user-sync-bob.wire.txt'));
my %cyrus = map { $_ => 1 } split /\n/, slurp("$base/cpoints");
my @extra = sort grep { !$cyrus{$_} } keys %kinds;
ok(@extra > 0, 'kinds our push reaches and a Cyrus sync_client session does not: ' . "@extra");

# ---- killed at each hit ------------------------------------------------------
my @ks;
if (Torture::full_mode()) {
	@ks = 1 .. scalar(@points);
} else {
	my %first;
	for my $k (1 .. scalar(@points)) {
		push @ks, $k if !$first{$points[$k - 1]}++ || $k % 9 == 0;
	}
}
my @bad;
for my $k (@ks) {
	my $what = "k=$k ($points[$k - 1])";
	my ($s, $p) = copies("k$k");
	$r = push_run($s, $p, "IDS_FAILPOINT_CRASH=$k");
	push @bad, "$what: the client exits $r->{rc}" if $r->{rc} != 1;
	push @bad, map { "$what: the peer: $_" } findings($p, $lost_rel);
	$r = push_run($s, $p);
	push @bad, "$what: the next push exits $r->{rc}: $r->{err}" if $r->{rc};
	push @bad, "$what: the live GUIDs differ from the uninterrupted run's"
	    if live_guids($s) ne $want || live_guids($p) ne $want;
	push @bad, map { "$what: $_ twice" } dup_uids($s), dup_uids($p);
	push @bad, "$what: the two sides differ" if nstate($s) ne nstate($p);
	my $a = pair_audit($s, $p);
	push @bad, "$what: the pair audit: $a->{out}" if $a->{rc} || $a->{out} ne '';
	$r = push_run($s, $p);
	push @bad, "$what: a further push sends an APPLY" if $r->{err} =~ /^spool_sync: > APPLY /m;
	my @left = (staging_left($s), staging_left($p));
	push @bad, "$what: staging left: @left" if @left;
	remove_tree("$base/k$k") unless @bad;
}
is_deeply(\@bad, [], 'the peer killed at ' . scalar(@ks) . ' of ' . scalar(@points) .
    ' hits: consistent, and the next push converges, nothing lost');

done_testing;
