#!/usr/bin/perl
# t7580-spool-sync-group-fallback.t - the replica's group commit when
# its one mailboxes.db transaction fails because of one folder
# (ids_mailbox_create_commit_group: each folder is then committed
# alone, so that its failure is its own).
#
#  - a real pipelined push of 5 new folders recorded through a tap, then
#    replayed into fresh replicas (every command waiting at once: one
#    group), the commit of one chosen folder failing
#    (mailbox.create_put, EIO, on its hit in the group's transaction and
#    on its hit when committed alone);
#  - the other folders committed and answered OK, in their places; the
#    failing one answered NO with its own name in the reason, and leaves
#    nothing: no directory, no record, no intent (its uniqueid nowhere
#    in mailboxes.db nor in the spool); every other command answered, in
#    order (the session in step); the invariants and spool_audit hold;
#  - two folders failing: each NO carries its own folder's name (never
#    the other's);
#  - after each, the next real push converges and spool_audit --compare
#    finds nothing.
use strict;
use warnings;
use FindBin;
use File::Find;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;
use SyncPair qw(spool_conf spool_dir must_run deliver sync_run findings staging_left
    uniqueid_of pair_audit);

my $base = fast_scratch();

sub names_of {
	my ($conf) = @_;
	return [sort map { $_->{name} } values %{CyrusPeer::ids_state($conf)}];
}

# The answers of a replica session, in order, the banner left out.
sub answer_lines {
	my ($out) = @_;
	return [grep { /^(OK|NO|BAD)\b/ } split /\r\n/, $out];
}

# Where a uniqueid still shows in a spool: mailboxes.db (records,
# tombstones, intents) and any path under the spool's directory but the
# lock files (a uniqueid's lock file is kept, as for every folder).
sub traces_of {
	my ($conf, $uid) = @_;
	my @t;
	my $dir = spool_dir($conf);
	my $db = `mdb_dump -n -p '$dir/conf/mailboxes.db' 2>&1`;
	push @t, 'mailboxes.db' if index($db, $uid) >= 0;
	find({ no_chdir => 1, wanted => sub {
		$File::Find::prune = 1, return if $File::Find::name eq "$dir/conf/lock";
		push @t, $File::Find::name if index($File::Find::name, $uid) >= 0;
	} }, $dir);
	return @t;
}

my $S = spool_conf("$base/s");
my @folders = qw(user.dave user.dave.A user.dave.B user.dave.C user.dave.D);
must_run('ctl_mboxlist', '-C', $S, '-i', '-c', @folders);
deliver($S, $_, 2) for @folders;

# ---- a real pipelined push, recorded -----------------------------------------
my $P0 = spool_conf("$base/p0");
my $r = run('spool_sync', '-C', $S, '-v', '-v', '-u', 'dave', '--', 'sh', '-c',
    "tee $base/in | " . tool('spool_sync') . " -C $P0 --serve");
is($r->{rc}, 0, 'a pipelined push of 5 new folders exits 0') or diag($r->{err});
my @cmds = map { /^spool_sync: > (\S+(?: \S+)?)/ ? $1 : () } split /\n/, $r->{err};
my @mb = grep { $cmds[$_] =~ /^APPLY MAILBOX/ } 0 .. $#cmds;
is(scalar @mb, 5, '... 5 APPLY MAILBOX sent');
# the folder each APPLY MAILBOX names, in the order sent
my @sent = map { /^APPLY MAILBOX %\(UNIQUEID \S+ MBOXNAME (\S+)/ ? $1 : () }
    split /\r\n/, slurp("$base/in");
is(scalar @sent, 5, '... each naming its folder') or diag(explain(\@sent));

# replay($conf, @failing): the recorded session replayed into $conf, the
# commit of the folders at the positions @failing (0-based, in the order
# sent) failing in the group's transaction and alone.  The group's
# transaction stops at the first of them (hit k+1, k its position);
# then each folder alone is one hit more, in order (each rule counts
# every hit of its point).
sub replay {
	my ($conf, @failing) = @_;
	my $first = $failing[0] + 1;
	my @hits = ($first, map { $first + $_ + 1 } @failing);
	my $spec = join(',', map { "mailbox.create_put:EIO:$_" } @hits);
	unlink "$base/fplog";
	my $r = run('sh', '-c', 'exec "$@" < "$0"', "$base/in", 'env', "IDS_FAILPOINT=$spec",
	    "IDS_FAILPOINT_LOG=$base/fplog", tool('spool_sync'), '-C', $conf, '--serve');
	my $hits = () = slurp("$base/fplog") =~ /^mailbox\.create_put$/mg;
	is($hits, $first + 5, "... mailbox.create_put hit $first time(s) in the group's "
	    . 'transaction, then once a folder alone');
	return $r;
}

# check($what, $conf, $r, @failing): the answers and the spool after a replay.
sub check {
	my ($what, $conf, $r, @failing) = @_;
	my %fail = map { $_ => 1 } @failing;
	my $ans = answer_lines($r->{out});
	is(scalar @$ans, scalar @cmds, "$what: one answer a command, the session in step")
	    or diag(explain($ans));
	my @want = ('OK') x @cmds;
	$want[$mb[$_]] = 'NO' for @failing;
	is_deeply([map { /^(\S+)/ ? $1 : '' } @$ans], \@want,
	    "$what: NO for the failing APPLY MAILBOX alone, in its place, OK for the rest");
	for my $k (@failing) {
		my $a = $ans->[$mb[$k]] // '';
		like($a, qr/\Q$sent[$k]\E: cannot commit: /,
		    "$what: the NO of $sent[$k] gives its own reason");
		for my $o (grep { $_ != $k } 0 .. $#sent) {
			unlike($a, qr/\Q$sent[$o]\E:/, "$what: ... not that of $sent[$o]");
		}
	}
	is_deeply(names_of($conf), [sort map { $sent[$_] } grep { !$fail{$_} } 0 .. 4],
	    "$what: the other folders committed");
	for my $k (@failing) {
		my $uid = uniqueid_of($S, $sent[$k]);
		is_deeply([traces_of($conf, $uid)], [],
		    "$what: $sent[$k] leaves nothing (no record, no intent, no directory)");
	}
	is_deeply([findings($conf)], [], "$what: the invariants and spool_audit hold");
	is_deeply([staging_left($conf)], [], "$what: no staging left");
	my $s = sync_run($S, $conf, '-u', 'dave');
	is($s->{rc}, 0, "$what: the next push exits 0") or diag($s->{err});
	like($s->{out}, qr/ ${\ scalar @failing} applied, .* 0 failed$/m,
	    "$what: ... and applies the missing folder(s)");
	is_deeply(CyrusPeer::ids_state($conf), CyrusPeer::ids_state($S), "$what: ... converges");
	my $a = pair_audit($S, $conf);
	is($a->{rc}, 0, "$what: spool_audit --compare is clean") or diag($a->{out}, $a->{err});
}

# ---- one folder of the group failing: the second, then the last ---------------
for my $k (1, 4) {
	my $P = spool_conf("$base/one$k");
	check("folder $k failing", $P, replay($P, $k), $k);
}

# ---- two folders failing: each its own reason ----------------------------------
my $P2 = spool_conf("$base/two");
check('folders 1 and 3 failing', $P2, replay($P2, 1, 3), 1, 3);

done_testing();
