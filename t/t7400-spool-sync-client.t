#!/usr/bin/perl
# t7400-spool-sync-client.t - spool_sync as the csync client, against a
# real Cyrus 3.6.1 sync_server on stdio (-X, no SASL) and against
# another idspool spool's spool_sync --serve, each started as the peer
# command over two pipes.
#
#  - pull: spool_sync --pull -u USER from the real sync_server
#    reproduces the Cyrus spool (folders by uniqueid, UIDs, flags,
#    GUIDs, identical message files); a second pull changes nothing.
#  - push: a second idspool spool pushed into a fresh real Cyrus leaves
#    the Cyrus side equal, and the real sync_client of that Cyrus then
#    applies nothing to the spool it came from (the CRCs agree).
#  - idspool to idspool over a pipe, pushed and pulled: a full sync,
#    then an LMTP delivery, a flag change, an expunge, a folder-tree
#    rename and a folder delete, each carried through (Cyrus → pull →
#    push → pull), every spool equal to the Cyrus master afterwards,
#    and a resync sending no apply.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf sent_applies sync_counts);

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

my $master = CyrusPeer->new("$dir/master");
my @users = $master->populate;
$master->start_lmtp;
$master->deliver('alice', "From: Dave <dave\@example.com>\nSubject: by lmtp\n\nNew mail\n");

sub spool {
	my ($name) = @_;
	return spool_conf("$dir/$name");
}

# The peer command of a real Cyrus: its sync_server on stdio.
# spool_sync CONF [args] -- PEER: the run, checked to exit 0.
sub client {
	my ($what, $conf, $args, @peer) = @_;
	my $r = run('spool_sync', '-C', $conf, '-v', '-v', @$args, '--', @peer);
	is($r->{rc}, 0, "$what: spool_sync exits 0") or diag($r->{out}, $r->{err});
	return $r;
}

sub ids_state { return CyrusPeer::ids_state($_[0]); }

# Message files of the Cyrus side's live folders, found by uniqueid
# and uid in the spool and compared byte for byte.
sub same_files {
	my ($what, $cy, $conf) = @_;
	my ($n, @bad) = $cy->files_differ($conf);
	ok($n > 0 && !@bad, "$what: $n message files identical on both sides")
	    or diag("differ or missing: @bad");
}

sub audit_clean {
	my ($what, $conf) = @_;
	my $a = run('spool_audit', '-C', $conf);
	is($a->{rc}, 0, "$what: spool_audit finds nothing") or diag($a->{out}, $a->{err});
	my @left = glob("$conf/../spool/stage./sync-*");
	ok(!@left, "$what: no staging directory is left") or diag("@left");
}

my @u = map { ('-u', $_) } @users;

# What GET META reports of a user (subscriptions, seen state, sieve scripts).
sub meta_lines {
	my ($user, @peer) = @_;
	my $r = run(@peer, stdin => "GET META $user\r\nEXIT\r\n");
	return join("\n", sort grep { /^\* (LSUB|SEEN|SIEVE)/ } split /\r\n/, $r->{out});
}

# ---- (a) pull from a real Cyrus sync_server -X ------------------------------
my $a = spool('a');
my $r = client('pull from Cyrus', $a, ['--pull', @u], $master->sync_cmd);
my $c = sync_counts($r);
ok($c->{applied} >= 6 && $c->{files} >= 8 && $c->{failed} == 0,
    "pull from Cyrus: $c->{applied} folders applied, $c->{files} files fetched");
is_deeply(ids_state($a), $master->cyrus_state,
    'pull from Cyrus: same folders by uniqueid, names, UIDs, flags, GUIDs');
same_files('pull from Cyrus', $master, $a);
audit_clean('pull from Cyrus', $a);
is(meta_lines('alice', ids_peer($a)), '* LSUB (user.alice.Work)',
    'pull from Cyrus: the subscription too');

$r = client('second pull', $a, ['--pull', @u], $master->sync_cmd);
$c = sync_counts($r);
is("$c->{applied} $c->{renamed} $c->{deleted} $c->{files}", '0 0 0 0',
    'a second pull changes nothing');
unlike($r->{err}, qr/GET FULLMAILBOX|GET FETCH/, '... and fetches nothing (the states agree)');

# ---- (c) idspool to idspool over a pipe -------------------------------------
# Seen state and a sieve script that only a holds, as a replica stores them.
my $seen_id = (grep { $_->{name} eq 'user.alice.Sent' } values %{ids_state($a)})[0];
my $sv = run(ids_peer($a), stdin => "APPLY SEEN %(USERID alice UNIQUEID qqqqqqqqqqqqqqqqqqqqqqqq " .
    "LASTREAD 1796524000 LASTUID 2 LASTCHANGE 1796524000 SEENUIDS 1:2)\r\n" .
    "APPLY SIEVE %(USERID alice FILENAME vacation.script LAST_UPDATE 1796524000 " .
    "CONTENT {6+}\r\nkeep;\n)\r\nAPPLY ACTIVATE_SIEVE %(USERID alice FILENAME vacation.script)\r\n" .
    "EXIT\r\n");
is(scalar(() = $sv->{out} =~ /^OK success/mg), 3, 'a seen item and an active sieve script on a');
my $a_meta = meta_lines('alice', ids_peer($a));

my $b = spool('b');
$r = client('push a to b', $a, \@u, ids_peer($b));
$c = sync_counts($r);
ok($c->{applied} >= 6 && $c->{files} >= 8, "push a to b: $c->{applied} folders, $c->{files} files");
is_deeply(ids_state($b), ids_state($a), 'push a to b: b equals a by uniqueid');
same_files('push a to b', $master, $b);
audit_clean('push a to b', $b);
$r = client('push a to b again', $a, \@u, ids_peer($b));
is(sent_applies($r), 0, 'a second push sends no apply');

is(meta_lines('alice', ids_peer($b)), $a_meta, 'push a to b: subscription, seen, sieve equal');
like($a_meta, qr/^\* SIEVE %\(FILENAME vacation\.script LAST_UPDATE 1796524000 GUID \w+ ISACTIVE 1\)$/m,
    '... the sieve script active');
my $d = spool('d');
$r = client('pull b into d', $d, ['--pull', @u], ids_peer($b));
is(meta_lines('alice', ids_peer($d)), join("\n", grep { !/SIEVE/ } split /\n/, $a_meta),
    'pull b into d: subscription and seen state equal (sieve scripts are not pulled)');
is_deeply(ids_state($d), ids_state($a), 'pull b into d: d equals a and b');
same_files('pull b into d', $master, $d);

# Each change made on the Cyrus master, pulled into a, pushed to b,
# pulled into d.
sub carry {
	my ($what) = @_;
	client("$what: pull into a", $a, ['--pull', @u], $master->sync_cmd);
	client("$what: push a to b", $a, \@u, ids_peer($b));
	client("$what: pull b into d", $d, ['--pull', @u], ids_peer($b));
	my $want = $master->cyrus_state;
	is_deeply(ids_state($a), $want, "$what: a equals the Cyrus master");
	is_deeply(ids_state($b), $want, "$what: b equals it");
	is_deeply(ids_state($d), $want, "$what: d equals it");
	my $again = client("$what: resync a to b", $a, \@u, ids_peer($b));
	is(sent_applies($again), 0, "$what: a resync sends no apply");
}

$master->deliver('alice', "From: Eve <eve\@example.com>\nSubject: second\n\nMore mail\n");
carry('after a delivery');
same_files('after a delivery', $master, $d);

$master->imap('alice', 'SELECT INBOX', 'STORE 2 -FLAGS (\Flagged)', 'STORE 1 +FLAGS (\Draft $Done)');
carry('after a flag change');

$master->imap('alice', 'SELECT INBOX', 'STORE 1 +FLAGS (\Deleted)', 'EXPUNGE');
carry('after an expunge');

$master->imap('alice', 'RENAME Work Projects');
carry('after a folder-tree rename');
my $ren = decode_json(run('ctl_mboxlist', '-C', $d, '-d')->{out});
ok($ren->{'user.alice.Projects.2019'} && !grep({ $_ eq 'user.alice.Work' &&
    ($ren->{$_}{mbtype} // '') !~ /d/ } keys %$ren), '... the tree is renamed on d');

# A delete on an idspool spool.  delete_mode delayed: ctl_mboxlist -x
# renames the folder to DELETED.<name>.<hex>, which travels as a
# rename; -x of that name removes it for good, leaving a tombstone, and
# the push deletes the folder on the peer, the pull from that peer here
# (the peer holds the tombstone).
sub deleted_name {
	my ($conf, $name) = @_;
	my $db = decode_json(run('ctl_mboxlist', '-C', $conf, '-d')->{out});
	my ($d) = grep { /^DELETED\.\Q$name\E\./ && ($db->{$_}{mbtype} // '') !~ /d/ } keys %$db;
	return $d;
}
sub delete_for_good {
	my ($conf, $name) = @_;
	my $x = run('ctl_mboxlist', '-C', $conf, '-i', '-x', $name);
	return $x->{rc} ? $x : run('ctl_mboxlist', '-C', $conf, '-i', '-x', deleted_name($conf, $name));
}
my $del = run('ctl_mboxlist', '-C', $a, '-i', '-x', 'user.alice.Sent');
is($del->{rc}, 0, 'user.alice.Sent deleted on a') or diag($del->{err});
my $dname = deleted_name($a, 'user.alice.Sent');
ok($dname, "... as $dname");
$r = client('push the delayed delete', $a, \@u, ids_peer($b));
is(sync_counts($r)->{renamed}, 1, '... the push renames it on b');
$r = client('pull the delayed delete', $d, ['--pull', @u], ids_peer($b));
is(sync_counts($r)->{renamed}, 1, '... the pull renames it on d');
is_deeply(ids_state($b), ids_state($a), 'after a delayed delete: b equals a');
is_deeply(ids_state($d), ids_state($a), 'after a delayed delete: d equals a');
$del = run('ctl_mboxlist', '-C', $a, '-i', '-x', $dname);
is($del->{rc}, 0, "$dname removed for good on a") or diag($del->{err});
$r = client('push the delete', $a, \@u, ids_peer($b));
is(sync_counts($r)->{deleted}, 1, '... the push deletes it on b');
$r = client('pull the delete', $d, ['--pull', @u], ids_peer($b));
is(sync_counts($r)->{deleted}, 1, '... the pull deletes it on d (b holds its tombstone)');
is_deeply(ids_state($b), ids_state($a), 'after a folder delete: b equals a');
is_deeply(ids_state($d), ids_state($a), 'after a folder delete: d equals a');
ok(!grep({ $_->{name} =~ /user\.alice\.Sent/ } values %{ids_state($d)}), '... and Sent is gone');

# A folder only on the pulling side, with no tombstone on the peer:
# kept, and copied to the peer (t7430 tests this further).
my $only = run('ctl_mboxlist', '-C', $d, '-i', '-c', 'user.alice.Local');
is($only->{rc}, 0, 'a folder made on d only') or diag($only->{err});
$r = client('pull with a local-only folder', $d, ['--pull', @u], ids_peer($b));
$c = sync_counts($r);
is("$c->{kept} $c->{deleted}", '1 0', '... is kept, not deleted');
like($r->{err}, qr/user\.alice\.Local .* not on the peer, which holds no tombstone of it: kept/,
    '... and reported');
ok(grep({ $_->{name} eq 'user.alice.Local' } values %{ids_state($d)}), '... it is still there');
ok(grep({ $_->{name} eq 'user.alice.Local' } values %{ids_state($b)}), '... and copied to the peer');
is(delete_for_good($_, 'user.alice.Local')->{rc}, 0, '(removed again)') for $d, $b;
audit_clean('the idspool spools', $_) for $b, $d;

# ---- folders by name (-m) -----------------------------------------------------
my $m = spool('m');
$r = client('pull -m', $m, ['--pull', '-m', 'user.alice', '-m', 'example.com!user.bob.Archive'],
    ids_peer($b));
my $ms = ids_state($m);
my $bs = ids_state($b);
is_deeply([sort map { $_->{name} } values %$ms], ['example.com!user.bob.Archive', 'user.alice'],
    'pull -m: exactly the folders named');
is_deeply($ms, { map { $_ => $bs->{$_} } keys %$ms }, '... equal to the peer\'s');
$r = client('push -m', $m, ['-m', 'user.alice'], ids_peer($b));
is(sent_applies($r), 0, 'push -m of an equal folder sends no apply');
is(run('ctl_rename', '-C', $m, '-i', 'example.com!user.bob.Archive',
    'example.com!user.bob.Old')->{rc}, 0, 'a folder renamed on m');
$r = client('pull -m of its old name', $m, ['--pull', '-m', 'example.com!user.bob.Archive'],
    ids_peer($b));
is(sync_counts($r)->{renamed}, 1, '... the pull -m renames it back (found by uniqueid)');
is_deeply(ids_state($m), $ms, '... as it was');
my $m2 = spool('m2');
client('push -m into m2', $m, ['-m', 'example.com!user.bob.Archive'], ids_peer($m2));
is(run('ctl_rename', '-C', $m, '-i', 'example.com!user.bob.Archive',
    'example.com!user.bob.Old')->{rc}, 0, 'renamed on m again');
$r = client('push -m of its new name', $m, ['-m', 'example.com!user.bob.Old'], ids_peer($m2));
is(sync_counts($r)->{renamed}, 1, '... the push -m renames it on the peer (GET UNIQUEIDS)');
is_deeply([map { $_->{name} } values %{ids_state($m2)}], ['example.com!user.bob.Old'],
    '... which holds it under the new name');
# the rolling client names a folder by the name of its journal entry; a
# rename here may come before the session: pushing the OLD name renames
# the peer's, never ours back
is(run('ctl_rename', '-C', $m, '-i', 'example.com!user.bob.Old',
    'example.com!user.bob.Newer')->{rc}, 0, 'renamed on m a third time');
$r = client('push -m of its old name', $m, ['-m', 'example.com!user.bob.Old'], ids_peer($m2));
is(sync_counts($r)->{renamed}, 1, '... the push -m of the old name renames it on the peer');
ok((grep { $_->{name} eq 'example.com!user.bob.Newer' } values %{ids_state($m)}) &&
    !(grep { $_->{name} eq 'example.com!user.bob.Old' } values %{ids_state($m)}),
    '... and leaves ours as it is');
is_deeply([map { $_->{name} } values %{ids_state($m2)}], ['example.com!user.bob.Newer'],
    '... the peer holds it under the newest name');

# ---- every user (-A), through idspool's GET USERS ----------------------------
my $all = spool('all');
$r = client('pull -A', $all, ['--pull', '-A'], ids_peer($b));
is_deeply(ids_state($all), ids_state($b), 'pull -A from an idspool peer: every user, equal');
my $all2 = spool('all2');
$r = client('push -A', $all, ['-A'], ids_peer($all2));
is_deeply(ids_state($all2), ids_state($b), 'push -A to an empty idspool peer: every user, equal');
$r = client('push -A again', $all, ['-A'], ids_peer($all2));
is(sent_applies($r), 0, '... and again sends no apply');

# ---- a bad peer ---------------------------------------------------------------
# A peer that changes a byte inside each file literal it sends (the
# same length: only the SHA-1 tells): refused, never stored, reported.
my $bad = spool('bad');
my $flip = 'BEGIN { $| = 1 } s/Body of message/Body of massage/';
$r = run('spool_sync', '-C', $bad, '--pull', @u, '--', 'sh', '-c',
    tool('spool_sync') . " -C $b --serve | perl -pe '$flip'");
is($r->{rc}, 1, 'a peer whose file literals do not match their GUID: exit 1');
$c = sync_counts($r);
ok($c->{failed} > 0 && $c->{files} == 0, "... $c->{failed} refused, no file taken");
like($r->{err}, qr/the file sent is refused: file literal [0-9a-f]{40}: its bytes hash to /m, '... and the reason logged')
    or diag($r->{err});
my @stored = grep { slurp($_) =~ /massage/ } glob("$dir/bad/spool/*/*/*/*.") ,
    glob("$dir/bad/spool/*/*/*/*/*.");
is("@stored", '', '... no damaged message stored');
ok(!glob("$dir/bad/spool/stage./*"), '... no staging left');
client('the retry from a sound peer', $bad, ['--pull', @u], ids_peer($b));
is_deeply(ids_state($bad), ids_state($b), '... converges');

$r = run('spool_sync', '-C', $bad, '-u', 'alice', '--', "$dir/no-such-peer");
is($r->{rc}, 1, 'a peer command that does not run: exit 1');
like($r->{err}, qr/^spool_sync: .*no-such-peer: No such file or directory$/m, '... named');
like($r->{err}, qr/^spool_sync: session: .*banner/m, '... and no session');
$r = run('spool_sync', '-C', $bad, '-u', 'alice');
is($r->{rc}, 2, 'no peer command: usage, exit 2');
$r = run('spool_sync', '-C', $bad, '--pull', '--', 'true');
is($r->{rc}, 2, 'no user nor folder: usage, exit 2');

# ---- (b) push into a real Cyrus sync_server -X ------------------------------
my $cy = CyrusPeer->new("$dir/replica");
$r = client('push b into a fresh Cyrus', $b, \@u, $cy->sync_cmd);
$c = sync_counts($r);
ok($c->{applied} >= 6 && $c->{failed} == 0, "push into Cyrus: $c->{applied} folders applied");
is_deeply($cy->cyrus_state, ids_state($b),
    'push into Cyrus: the Cyrus side equals the spool by uniqueid, names, UIDs, flags, GUIDs');
same_files('push into Cyrus', $cy, $b);
sub no_sieve { return join("\n", grep { !/SIEVE/ } split /\n/, $_[0]); }
is(meta_lines('alice', $cy->sync_cmd), no_sieve(meta_lines('alice', ids_peer($b))),
    'push into Cyrus: subscription and seen state equal');
like($r->{err}, qr/sieve scripts are not sent to a peer that keeps them in a #sieve mailbox/,
    '... the sieve script not sent (Cyrus 3.6 keeps them in a #sieve mailbox), and said');
$r = client('push into Cyrus again', $b, \@u, $cy->sync_cmd);
is(sent_applies($r), 0, 'a second push into Cyrus sends no apply');

# The Cyrus replica's own sync_client, pushing back into b through
# spool_sync --serve, finds nothing to apply: its CRCs and ours agree.
my $sock = "$dir/b.sock";
$cy->serve($sock, ids_peer($b));
for my $user (@users) {
	my $s = $cy->sync_user($sock, $user);
	is($s->{rc}, 0, "Cyrus's sync_client -u $user into b") or diag($s->{err});
	# but the sieve script, which the push did not send: UNSIEVE removes it from b
	is(scalar(grep { /^>\d+>APPLY / && !/^>\d+>APPLY UNSIEVE / } split /\n/, $s->{err}), 0,
	    "... applies nothing: the Cyrus side and b agree") or diag($s->{err});
}
$cy->stop;

# The Cyrus master still has Sent: the next pull brings it back into a
# (under its uniqueid, over a's tombstone), and the push into b and d.
# Incremental push into Cyrus: a delivery and an expunge on the master,
# pulled into a, carried to b, pushed into the Cyrus replica.
$master->deliver('bob@example.com', "From: Eve <eve\@example.com>\nSubject: third\n\nMail\n");
$master->imap('alice', 'SELECT Projects.2019', 'STORE 1 +FLAGS (\Seen)');
carry('after a delivery to bob');
$r = client('incremental push into Cyrus', $b, \@u, $cy->sync_cmd);
is(sync_counts($r)->{failed}, 0, '... nothing refused');
is_deeply($cy->cyrus_state, ids_state($b), 'incremental push into Cyrus: equal again');

# ---- a rename cycle ----------------------------------------------------------
# On a: Sent -> Trash, Trash -> Projects.2019, Projects.2019 -> Sent
# (through a free name).  Pushed to b, pulled into d and pushed into the
# Cyrus replica, each side must rename a folder out of the way first.
for my $mv (['user.alice.Sent', 'user.alice.Cycle'], ['user.alice.Projects.2019', 'user.alice.Sent'],
    ['user.alice.Trash', 'user.alice.Projects.2019'], ['user.alice.Cycle', 'user.alice.Trash']) {
	my $x = run('ctl_rename', '-C', $a, '-i', @$mv);
	is($x->{rc}, 0, "on a: ctl_rename @$mv") or diag($x->{err});
}
$r = client('push the cycle to b', $a, \@u, ids_peer($b));
is(sync_counts($r)->{renamed}, 3, '... three renames on b');
is_deeply(ids_state($b), ids_state($a), 'after a rename cycle: b equals a');
$r = client('pull the cycle into d', $d, ['--pull', @u], ids_peer($b));
is(sync_counts($r)->{renamed}, 3, '... three renames on d');
is_deeply(ids_state($d), ids_state($a), 'after a rename cycle: d equals a');
$r = client('push the cycle into Cyrus', $b, \@u, $cy->sync_cmd);
is(sync_counts($r)->{renamed}, 3, '... three renames on the Cyrus replica');
is_deeply($cy->cyrus_state, ids_state($b), 'after a rename cycle: the Cyrus replica equals b');
is(sent_applies(client('resync after the cycle', $a, \@u, ids_peer($b))), 0,
    '... and a resync sends no apply');
audit_clean('after a rename cycle', $_) for $a, $b, $d;

done_testing;
