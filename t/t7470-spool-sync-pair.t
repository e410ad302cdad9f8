#!/usr/bin/perl
# t7470-spool-sync-pair.t - one lifecycle of a replica pair: two idspool
# spools over a pipe (spool_sync -C a.conf ... -- spool_sync -C b.conf
# --serve), each step followed by a sync and the same checks:
#
#  - the pair audit over the wire (spool_audit --compare -- PEER) exits
#    0 and reports nothing;
#  - the GUID ledger: every GUID ever accepted on either side (read from
#    both sides' indexes after each step's changes, before the sync) is
#    live on both sides, or, when the step meant to remove it (an
#    expunge, a folder or user delete), live on neither: never live on
#    one side only, never lost;
#  - no folder holds a UID twice (read from cyrus.index itself);
#  - a second sync sends no APPLY.
#
# The steps: a full push; an incremental one (spool_append); a folder
# tree rename; a rename cycle (a->c, b->a, c->b); an expunge; a folder
# deleted and created again under its name (a new uniqueid: the old
# one's tombstone deletes it on the other side, the new one is created);
# a user renamed (pushed, then pulled), a user deleted; split brain
# (both sides deliver while apart, then sync both ways); a folder only
# the replica holds; a missing and a corrupted file on each side healed
# through MISSING (a push heals the replica, a pull the primary).  Then a hard failover and
# back (the primary "dies" with deliveries the replica never saw, the
# replica takes deliveries as the new primary, the old primary's
# spool_sync --pull from it brings back all it lacks, and keeps what
# only it had), and a soft failover with spool_sync --drain: exit 0 and
# the peer equal.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf deliver uniqueid_of folder_dir ok_sync sent_applies sync_counts
    pair_audit serve staging_left);

my $dir = scratch();

sub spool {
	my ($name, %kv) = @_;
	return spool_conf("$dir/$name", delete_mode => 'immediate', %kv);
}

# Each side journals its changes for the other (a drain needs a channel).
my $A = spool('a', sync_log => 1, sync_log_channels => 'b');
my $B = spool('b', sync_log => 1, sync_log_channels => 'a');

sub ids_state { return CyrusPeer::ids_state($_[0]); }

# sync($what, $from, $to, @opts): spool_sync -C FROM -A [opts] -- the
# peer TO (a push; --pull in @opts makes it a pull), checked to exit 0.
sub sync {
	my ($what, $from, $to, @opts) = @_;
	return ok_sync("$what: spool_sync exits 0", $from, $to, '-v', '-v', '-A', @opts);
}

sub mk {
	my ($conf, @names) = @_;
	ok_run("create @names", 'ctl_mboxlist', '-C', $conf, '-i', '-c', @names);
}

# deliver_sized($conf, $folder, $n): SyncPair's deliver, each message
# padded to a size of its own (7 x its serial bytes more).
sub deliver_sized { deliver(@_[0 .. 2], 7); }

# An expunge on an idspool spool, as a replica receives one.
sub expunge {
	my ($conf, $name, @uids) = @_;
	my $r = serve($conf, "APPLY EXPUNGE %(MBOXNAME $name UNIQUEID " .
	    uniqueid_of($conf, $name) . " UID (@uids))\r\nEXIT\r\n");
	die "expunge: $r->{out}" unless $r->{out} =~ /^OK success/m;
}

# name -> { uid -> GUID } of a spool's live records, expunged left out.
sub live_records {
	my ($conf) = @_;
	(my $root = $conf) =~ s{/imapd\.conf$}{};
	return {} unless -e "$root/conf/mailboxes.db";
	my $st = ids_state($conf);
	my %l;
	for my $f (values %$st) {
		for my $uid (keys %{$f->{records}}) {
			my $rec = $f->{records}{$uid};
			next if $rec =~ /\\Expunged/;
			($l{$f->{name}}{$uid}) = $rec =~ /(\w{40})$/;
		}
	}
	return \%l;
}

sub live_guids {
	my ($conf) = @_;
	my $l = live_records($conf);
	return { map { map { $_ => 1 } values %$_ } values %$l };
}

# The ledger: GUID -> 'live' or 'gone' (removed on purpose).
my %ledger;
sub harvest {
	for my $conf ($A, $B) {
		$ledger{$_} //= 'live' for keys %{live_guids($conf)};
	}
}
sub removed { $ledger{$_} = 'gone' for @_; }

# UIDs of a folder's cyrus.index, every record, in file order.
sub index_uids {
	my ($d) = @_;
	my $idx = slurp("$d/cyrus.index");
	my ($start, $rsize, $n) = unpack('N N N', substr($idx, 12, 12));
	return map { unpack('N', substr($idx, $start + $_ * $rsize, 4)) } 0 .. $n - 1;
}

sub dup_uids {
	my ($conf) = @_;
	my @bad;
	my $db = decode_json(run('ctl_mboxlist', '-C', $conf, '-d')->{out} || '{}');
	for my $name (sort keys %$db) {
		next if ($db->{$name}{mbtype} // '') =~ /d/;
		my %seen;
		push @bad, map { "$name uid $_" } grep { $seen{$_}++ } index_uids(folder_dir($conf, $name));
	}
	return @bad;
}

sub pair_clean {
	my ($what, $x, $y) = @_;
	my $r = pair_audit($x, $y);
	ok($r->{rc} == 0 && $r->{out} eq '', "$what: the pair audit over the wire is clean")
	    or diag($r->{out}, $r->{err});
}

# A spool's state with the GUID of expunged records left out: a UID two
# messages had (split brain) is expunged on both sides, each side's
# record keeping its own GUID (Cyrus's too: a record's GUID never changes).
sub nstate {
	my $st = ids_state($_[0]);
	for my $f (values %$st) {
		s/ \w{40}$// for grep { /\\Expunged/ } values %{$f->{records}};
	}
	return $st;
}

# The checks after each step's sync.
sub check {
	my ($what, $x, $y) = @_;
	($x, $y) = ($A, $B) unless $x;
	pair_clean($what, $x, $y);
	my ($lx, $ly) = (live_guids($x), live_guids($y));
	my (@one, @lost, @back);
	for my $g (sort keys %ledger) {
		if ($ledger{$g} eq 'live') {
			push @one, $g if !$lx->{$g} != !$ly->{$g};
			push @lost, $g if !$lx->{$g} && !$ly->{$g};
		} else {
			push @back, $g if $lx->{$g} || $ly->{$g};
		}
	}
	my $n = grep { $ledger{$_} eq 'live' } keys %ledger;
	ok(!@one && !@lost && !@back, "$what: the ledger holds ($n GUIDs live on both sides, " .
	    (keys(%ledger) - $n) . ' removed on both)')
	    or diag("live on one side only: @one\nlost: @lost\nremoved but live: @back");
	my @dup = (dup_uids($x), dup_uids($y));
	is("@dup", '', "$what: no UID twice");
	is_deeply(nstate($y), nstate($x), "$what: the states are equal by uniqueid");
	my $again = sync("$what: the sync again", $x, $y);
	is(sent_applies($again), 0, "$what: a second sync sends no APPLY") or diag($again->{err});
	my @left = (staging_left($A), staging_left($B));
	ok(!@left, "$what: no staging left") or diag("@left");
}

# ---- full --------------------------------------------------------------------
mk($A, qw(user.alice user.alice.Sent user.alice.Trash user.alice.Work user.alice.Work.2024
    user.alice.Work.2024.Q1 user.bob user.bob.Archive example.com!user.dave));
deliver_sized($A, 'user.alice', 4);
deliver_sized($A, 'user.alice.Sent', 2);
deliver_sized($A, 'user.alice.Trash', 1);
deliver_sized($A, 'user.alice.Work.2024', 2);
deliver_sized($A, 'user.alice.Work.2024.Q1', 1);
deliver_sized($A, 'user.bob', 3);
deliver_sized($A, 'user.bob.Archive', 1);
deliver_sized($A, 'example.com!user.dave', 2);
harvest();
my $r = sync('full push', $A, $B);
my $c = sync_counts($r);
is("$c->{applied} $c->{files} $c->{failed}", '9 16 0', 'full push: 9 folders, 16 files');
check('full');

# ---- incremental -------------------------------------------------------------
deliver_sized($A, 'user.alice', 2);
deliver_sized($A, 'user.bob.Archive', 1);
harvest();
$r = sync('incremental push', $A, $B);
$c = sync_counts($r);
is("$c->{applied} $c->{files}", '2 3', 'incremental: 2 folders applied, 3 files sent');
check('incremental');

# ---- tree rename -------------------------------------------------------------
my %work_ids = map { $_ => uniqueid_of($A, $_) } qw(user.alice.Work user.alice.Work.2024.Q1);
ok_run('tree rename on a', 'ctl_rename', '-C', $A, '-i', 'user.alice.Work', 'user.alice.Projects');
$r = sync('push the tree rename', $A, $B);
is(sync_counts($r)->{renamed}, 3, 'tree rename: three folders renamed on b');
is(uniqueid_of($B, 'user.alice.Projects.2024.Q1'), $work_ids{'user.alice.Work.2024.Q1'},
    '... by uniqueid');
check('tree rename');

# ---- rename cycle ------------------------------------------------------------
my %before = map { $_ => uniqueid_of($A, $_) } qw(user.alice.Sent user.alice.Trash);
for my $mv (['user.alice.Sent', 'user.alice.Cycle'], ['user.alice.Trash', 'user.alice.Sent'],
    ['user.alice.Cycle', 'user.alice.Trash']) {
	ok_run("on a: ctl_rename @$mv", 'ctl_rename', '-C', $A, '-i', @$mv);
}
$r = sync('push the rename cycle', $A, $B);
is(sync_counts($r)->{renamed}, 2, 'rename cycle: two folders renamed on b');
is(uniqueid_of($B, 'user.alice.Trash'), $before{'user.alice.Sent'}, '... Sent is Trash on b');
is(uniqueid_of($B, 'user.alice.Sent'), $before{'user.alice.Trash'}, '... and Trash is Sent');
check('rename cycle');

# ---- expunge -----------------------------------------------------------------
my $gone = live_records($A)->{'user.alice'};
expunge($A, 'user.alice', 1, 3);
removed(@$gone{1, 3});
$r = sync('push the expunge', $A, $B);
is(sync_counts($r)->{applied}, 1, 'expunge: one folder applied');
check('expunge');

# ---- delete and recreate under the same name --------------------------------
my $old_trash = uniqueid_of($A, 'user.alice.Trash');
removed(values %{live_records($A)->{'user.alice.Trash'}});
ok_run('delete Trash on a', 'ctl_mboxlist', '-C', $A, '-i', '-x', 'user.alice.Trash');
mk($A, 'user.alice.Trash');
deliver_sized($A, 'user.alice.Trash', 1);
my $new_trash = uniqueid_of($A, 'user.alice.Trash');
isnt($new_trash, $old_trash, 'the new Trash has a new uniqueid');
harvest();
$r = sync('push the delete and recreate', $A, $B);
$c = sync_counts($r);
is("$c->{deleted} $c->{applied}", '1 1', '... the old one deleted on b, the new one created');
is(uniqueid_of($B, 'user.alice.Trash'), $new_trash, '... b holds the new one');
ok(!ids_state($B)->{$old_trash}, '... and not the old one');
check('delete and recreate');

# ---- user rename -------------------------------------------------------------
my $bob_inbox = uniqueid_of($A, 'user.bob');
ok_run('rename user bob to carol on a', 'ctl_rename', '-C', $A, '-i', 'user.bob', 'user.carol');
$r = sync('push the user rename', $A, $B);
is(sync_counts($r)->{renamed}, 2, 'user rename: both folders renamed on b');
is(uniqueid_of($B, 'user.carol'), $bob_inbox, '... user.carol is bob\'s INBOX');
ok(!grep({ $_->{name} =~ /^user\.bob/ } values %{ids_state($B)}), '... no user.bob is left on b');
check('user rename');

# ---- user rename, pulled ------------------------------------------------------
# made on b, pulled into a; then back again on a, pushed
ok_run('rename user carol to erin on b', 'ctl_rename', '-C', $B, '-i', 'user.carol', 'user.erin');
$r = sync('pull the user rename', $A, $B, '--pull');
is(sync_counts($r)->{renamed}, 2, 'user rename pulled: both folders renamed on a');
is(uniqueid_of($A, 'user.erin'), $bob_inbox, '... by uniqueid');
check('user rename pulled');
ok_run('rename user erin back to carol on a', 'ctl_rename', '-C', $A, '-i', 'user.erin', 'user.carol');
sync('push the user rename back', $A, $B);
check('user rename back');

# ---- user delete -------------------------------------------------------------
my $dl = live_records($A);
removed(values %{$dl->{'example.com!user.dave'}});
ok_run('delete user dave on a', 'ctl_mboxlist', '-C', $A, '-i', '-x', 'example.com!user.dave');
$r = sync('push the user delete', $A, $B);
is(sync_counts($r)->{deleted}, 1, 'user delete: deleted on b');
ok(!grep({ $_->{name} =~ /dave/ } values %{ids_state($B)}), '... nothing of dave is left on b');
check('user delete');

# ---- split brain ---------------------------------------------------------------
# Apart: both deliver to the same folders (the same next UIDs), b into a
# folder a does not touch, a creates a folder.
deliver_sized($A, 'user.alice', 2);
deliver_sized($B, 'user.alice', 3);
deliver_sized($B, 'user.carol.Archive', 1);
mk($A, 'user.alice.New');
deliver_sized($A, 'user.alice.New', 1);
harvest();
my $n_alice = keys %{live_records($A)->{'user.alice'}};
$r = sync('split brain: push a to b', $A, $B);
like($r->{err}, qr/renumber/i, '... the UIDs both sides gave are renumbered, and said');
$r = sync('split brain: push b to a', $B, $A);
is(scalar(keys %{live_records($A)->{'user.alice'}}), $n_alice + 3,
    'split brain: alice\'s INBOX holds both sides\' messages');
check('split brain');

# ---- a folder only the replica holds ------------------------------------------
mk($B, 'user.carol.Local');
deliver_sized($B, 'user.carol.Local', 2);
harvest();
$r = sync('push with a replica-only folder', $A, $B);
$c = sync_counts($r);
is("$c->{deleted}", '0', 'a replica-only folder is not deleted by a push');
ok(uniqueid_of($A, 'user.carol.Local'), '... and is copied back to the primary');
is(uniqueid_of($A, 'user.carol.Local'), uniqueid_of($B, 'user.carol.Local'), '... by uniqueid');
check('replica-only folder');

# ---- MISSING: a missing and a corrupted file, on each side ------------------
sub flip {
	my ($file, $at) = @_;
	my $d = slurp($file);
	substr($d, $at, 1) = chr(ord(substr($d, $at, 1)) ^ 0x20);
	spew($file, $d);
}
sub damage {
	my ($conf, $name) = @_;
	my $d = folder_dir($conf, $name);
	my @uids = sort { $a <=> $b } keys %{live_records($conf)->{$name}};
	my %good = map { $_ => slurp("$d/$_.") } @uids[0, 1];
	unlink("$d/$uids[0].") or die "unlink: $!";
	flip("$d/$uids[1].", 10);
	return ($d, \%good);
}
sub healed {
	my ($what, $d, $good) = @_;
	my @bad = grep { !-f "$d/$_." || slurp("$d/$_.") ne $good->{$_} } keys %$good;
	ok(!@bad, "$what: the files are whole again") or diag("uids: @bad");
}
my ($db, $goodb) = damage($B, 'user.alice');
$r = pair_audit($A, $B);
is($r->{rc}, 1, 'the replica damaged: the pair audit says so');
$r = sync('push heals the replica', $A, $B, '--verify');
like($r->{err}, qr/REPAIR/, '... through APPLY REPAIR');
healed('push heals the replica', $db, $goodb);
check('MISSING pushed');

my ($da, $gooda) = damage($A, 'user.carol.Archive');
$r = sync('pull heals the primary', $A, $B, '--pull', '--verify');
like($r->{err}, qr/FETCHGUID/, '... through GET FETCHGUID');
healed('pull heals the primary', $da, $gooda);
check('MISSING pulled');

# ---- hard failover and back ----------------------------------------------------
# a takes deliveries it never pushes, then "dies"; b is the new primary.
deliver_sized($A, 'user.alice', 2);
deliver_sized($A, 'user.carol', 1);
mk($A, 'user.alice.Unsent');
deliver_sized($A, 'user.alice.Unsent', 1);
harvest();
my %only_a = %{live_guids($A)};
delete @only_a{keys %{live_guids($B)}};
is(scalar(keys %only_a), 4, 'a holds 4 messages b never got, then dies');
deliver_sized($B, 'user.alice', 2);
deliver_sized($B, 'user.carol.Archive', 1);
mk($B, 'user.alice.AfterFailover');
deliver_sized($B, 'user.alice.AfterFailover', 1);
ok_run('b renames a folder as primary', 'ctl_rename', '-C', $B, '-i', 'user.alice.Projects.2024.Q1',
    'user.alice.Projects.2024.First');
harvest();
my %only_b = %{live_guids($B)};
delete @only_b{keys %{live_guids($A)}};
is(scalar(keys %only_b), 4, 'b, the new primary, takes 4 messages');
# a comes back: it pulls from the ex-replica, then pushes what only it had.
$r = sync('a pulls from the ex-replica', $A, $B, '--pull');
my $la = live_guids($A);
ok(!grep({ !$la->{$_} } keys %only_b), '... every message only b had is on a');
ok(!grep({ !$la->{$_} } keys %only_a), '... and a kept its own');
ok(uniqueid_of($A, 'user.alice.Projects.2024.First'), '... the rename made on b is on a');
my $lb = live_guids($B);
ok(!grep({ !$lb->{$_} } keys %only_a), '... a\'s own messages went to b too');
check('hard failover and back', $B, $A);

# ---- soft failover: drain a, and back --------------------------------------
deliver_sized($A, 'user.alice', 1);
deliver_sized($A, 'user.carol', 1);
harvest();
$r = run('spool_sync', '-C', $A, '--drain', '--channel', 'b', '--', ids_peer($B));
is($r->{rc}, 0, 'soft failover: spool_sync --drain exits 0') or diag($r->{out}, $r->{err});
like($r->{out}, qr/the peer is equal/, '... the peer is equal');
is_deeply(nstate($B), nstate($A), '... and it is');
my $f = run('spool_append', '-C', $A, '-i', 'user.alice', stdin => "Subject: fenced\n\nx\n");
is($f->{rc}, 75, '... the old primary refuses deliveries (fenced)');
deliver_sized($B, 'user.alice', 2);
harvest();
# the fence holds every writer of a, its replica's applies included: b's
# drain into the fenced a fails (and releases b's fence) until a is unfenced
$r = run('spool_sync', '-C', $B, '--drain', '--channel', 'a', '--', ids_peer($A));
is($r->{rc}, 1, 'and back: --drain from b into the fenced a exits 1') or diag($r->{out}, $r->{err});
like($r->{err}, qr/IMAP_MAILBOX_LOCKED writes are fenced for failover/, '... a refused the applies');
ok_run('unfence a', 'spool_sync', '-C', $A, '--unfence');
$r = run('spool_sync', '-C', $B, '--drain', '--channel', 'a', '--', ids_peer($A));
is($r->{rc}, 0, 'and back: --drain from b exits 0') or diag($r->{out}, $r->{err});
is_deeply(nstate($A), nstate($B), '... a equals b');
ok_run('unfence b', 'spool_sync', '-C', $B, '--unfence');
check('soft failover and back', $A, $B);

done_testing;
