#!/usr/bin/perl
# t7430-spool-sync-split-brain.t - spool_sync never loses a message when
# both sides changed a folder while apart (seed 003 a, e): two idspool
# spools over a pipe (spool_sync --serve as the peer), then a real Cyrus
# 3.6.1 sync_server -X.
#
#  - split brain, pushed then pulled: both sides deliver (spool_append)
#    under the same UIDs, one side expunges, each side changes flags;
#    afterwards every GUID accepted on either side is live on both (the
#    expunged one expunged on both), no GUID twice, both sides' states
#    equal, a second sync applies nothing, and the findings (conflict,
#    renumbered, copied-back) are listed by spool_sync -s and -s --json;
#  - a folder only the peer holds is copied here by a push (no tombstone
#    here), under a recovery name when its name is another folder's
#    here; the same for a pull and a folder only here;
#  - a push into a real sync_server whose folder gave the same UID to
#    another message: the Cyrus side keeps both, equals the spool, and
#    Cyrus's own sync_client then applies nothing back.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Compress::Zlib qw(crc32);
use File::Path qw(make_path);
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(must_run uniqueid_of ok_sync serve sent_applies);

my $top = "$FindBin::Bin/..";
my $dir = scratch();
chmod 0755, $dir;

sub spool { return CyrusPeer::replica_conf("$dir/$_[0]"); }
sub ids_state { return CyrusPeer::ids_state($_[0]); }

sub client {
	my ($what, $conf, $args, @peer) = @_;
	return ok_sync("$what: spool_sync exits 0", $conf, [@peer], '-v', '-v', @$args);
}

sub mk {
	my ($conf, @names) = @_;
	must_run('ctl_mboxlist', '-C', $conf, '-i', '-c', $_) for @names;
}

my $serial = 0;
# deliver_uid($conf, $folder): a new message (one no side had before,
# its body naming the spool); its uid.
sub deliver_uid {
	my ($conf, $folder) = @_;
	$serial++;
	my $r = must_run('spool_append', '-C', $conf, '-i', $folder,
	    stdin => "From: x\@example.com\nSubject: message $serial\n\nBody $serial of $conf\n");
	my ($uid) = $r->{out} =~ /uid (\d+)/;
	return $uid;
}

# serve_ok($conf, $in): a replica session on $conf fed $in, which dies
# unless every answer is OK; its output.
sub serve_ok {
	my ($conf, $in) = @_;
	my $r = serve($conf, $in);
	die "spool_sync --serve: $r->{out} $r->{err}" if $r->{rc} || $r->{out} =~ /^(NO|BAD)/m;
	return $r->{out};
}

# An expunge on an idspool spool, as a replica receives one.
sub expunge {
	my ($conf, $name, @uids) = @_;
	serve_ok($conf, "APPLY EXPUNGE %(MBOXNAME $name UNIQUEID " . uniqueid_of($conf, $name) .
	    " UID (@uids))\r\nEXIT\r\n");
}

# A flag change on an idspool spool (it has no IMAP server): the folder's
# own FULLMAILBOX with the record's flags replaced, its MODSEQ and the
# folder's HIGHESTMODSEQ raised and SYNC_CRC recomputed (Cyrus's
# crc_basic), applied as a master's APPLY MAILBOX.
sub set_flags {
	my ($conf, $name, $uid, @flags) = @_;
	my ($line) = serve_ok($conf, "GET FULLMAILBOX $name\r\nEXIT\r\n") =~ /^\* MAILBOX (.*)\r$/m;
	my ($hms) = $line =~ / HIGHESTMODSEQ (\d+) /;
	$hms++;
	$line =~ s/ HIGHESTMODSEQ \d+ / HIGHESTMODSEQ $hms /;
	$line =~ s/%\(UID $uid MODSEQ \d+ (LAST_UPDATED \d+) FLAGS \([^)]*\)/%(UID $uid MODSEQ $hms $1 FLAGS (@flags)/
	    or die "no uid $uid in $name";
	my $crc = 0;
	while ($line =~ /%\(UID (\d+) MODSEQ (\d+) LAST_UPDATED (\d+) FLAGS \(([^)]*)\) INTERNALDATE (\d+) SIZE \d+ GUID (\w+)/g) {
		my ($u, $m, $lu, $fl, $id, $g) = ($1, $2, $3, $4, $5, $6);
		my @f = split / /, $fl;
		next if grep { lc($_) eq '\expunged' } @f;
		my $fc = 0;
		$fc ^= crc32(lc $_) for @f;
		$crc ^= crc32("$u $m $lu ($fc) $id $g");
	}
	$line =~ s/ SYNC_CRC \d+ / SYNC_CRC $crc /;
	serve_ok($conf, "APPLY MAILBOX $line\r\nEXIT\r\n");
}

# GUID -> [uid, ...] of the live records of a spool's folder.
sub live {
	my ($state, $name) = @_;
	my ($f) = grep { $_->{name} eq $name } values %$state;
	my %g;
	for my $uid (keys %{$f->{records}}) {
		my $rec = $f->{records}{$uid};
		next if $rec =~ /\\Expunged/;
		my ($guid) = $rec =~ /(\w{40})$/;
		push @{$g{$guid}}, $uid;
	}
	return \%g;
}

# The GUID of a live record of a spool's folder, by uid.
sub guid_at {
	my ($conf, $name, $uid) = @_;
	my $l = live(ids_state($conf), $name);
	return (grep { grep { $_ == $uid } @{$l->{$_}} } keys %$l)[0];
}

sub flags_of {
	my ($state, $name, $guid) = @_;
	my ($f) = grep { $_->{name} eq $name } values %$state;
	my ($rec) = grep { /$guid$/ && !/\\Expunged/ } values %{$f->{records}};
	(my $fl = $rec // '') =~ s/\s*\w{40}$//;
	return $fl;
}

# A spool's state with the GUID of expunged records left out: a UID two
# messages had is expunged on both sides, each side's record keeping
# its own GUID (Cyrus's too: a record's GUID never changes).
sub nstate {
	my ($st) = @_;
	for my $f (values %$st) {
		s/ \w{40}$// for grep { /\\Expunged/ } values %{$f->{records}};
	}
	return $st;
}

# The MAILBOX lines a client compares (GET USER), by spool.
sub mailbox_lines {
	my ($conf, $user) = @_;
	return join("\n", sort grep { /^\* MAILBOX/ } split /\r\n/,
	    serve_ok($conf, "GET USER $user\r\nEXIT\r\n"));
}

# Every GUID of %$want live exactly once on both sides, the two states equal.
sub converged {
	my ($what, $x, $y, $name, $want, $gone) = @_;
	my ($sx, $sy) = (nstate(ids_state($x)), nstate(ids_state($y)));
	is_deeply($sx, $sy, "$what: both sides' states are equal");
	is(mailbox_lines($x, 'alice'), mailbox_lines($y, 'alice'), "$what: ... and their csync states")
	    if $name =~ /alice/;
	my $l = live($sx, $name);
	my @lost = grep { !$l->{$_} } sort keys %$want;
	is("@lost", '', "$what: every GUID accepted on either side is live in $name");
	my @twice = grep { @{$l->{$_}} > 1 } sort keys %$l;
	is("@twice", '', "$what: no GUID twice, no UID twice");
	ok(!grep({ $l->{$_} } @$gone), "$what: the expunged message stays expunged") if $gone;
}

# ---- split brain: pushed ----------------------------------------------------
my $pa = spool('a');
my $pb = spool('b');
mk($pa, 'user.alice', 'user.alice.Work');
deliver_uid($pa, 'user.alice') for 1 .. 3;
deliver_uid($pa, 'user.alice.Work');
client('first push', $pa, ['-u', 'alice'], ids_peer($pb));
is_deeply(ids_state($pb), ids_state($pa), 'the first push: b equals a');

# apart: both deliver under the same next uid, b expunges uid 1 and
# flags uid 2, a marks uid 3 seen
my $ua = deliver_uid($pa, 'user.alice');
deliver_uid($pa, 'user.alice');
my $ub = deliver_uid($pb, 'user.alice');
is($ua, $ub, "a and b give uid $ua to two messages");
deliver_uid($pb, 'user.alice.Work');
my $g1 = guid_at($pa, 'user.alice', 1);
expunge($pb, 'user.alice', 1);
set_flags($pb, 'user.alice', 2, '\Flagged');
set_flags($pa, 'user.alice', 3, '\Seen');
my %ever = (%{live(ids_state($pa), 'user.alice')}, %{live(ids_state($pb), 'user.alice')});
delete $ever{$g1};
my %work = (%{live(ids_state($pa), 'user.alice.Work')}, %{live(ids_state($pb), 'user.alice.Work')});
my $g2 = guid_at($pa, 'user.alice', 2);
my $g3 = guid_at($pa, 'user.alice', 3);

my $r = client('push after the split', $pa, ['-u', 'alice'], ids_peer($pb));
like($r->{out}, qr/^push: 1 folder\(s\) merged, 4 finding\(s\)/m, '... INBOX merged (both sides written), 4 findings');
converged('push after the split', $pa, $pb, 'user.alice', \%ever, [$g1]);
converged('push after the split (Work)', $pa, $pb, 'user.alice.Work', \%work);
my $st = ids_state($pa);
is(flags_of($st, 'user.alice', $g2), '\Flagged', "b's flag (the higher modseq) is on both");
is(flags_of($st, 'user.alice', $g3), '\Seen', "a's flag (the higher modseq) is on both");
my $l = live($st, 'user.alice');
is(join(' ', sort { $a <=> $b } map { @$_ } values %$l), '2 3 5 6 7',
    "the conflicting uid $ua is expunged, both messages renumbered after the last uid (5)");

$r = client('push again', $pa, ['-u', 'alice'], ids_peer($pb));
is(sent_applies($r), 0, '... a second push sends no apply');
$r = client('pull back', $pa, ['--pull', '-u', 'alice'], ids_peer($pb));
like($r->{out}, qr/, 0 applied,/, '... and a pull applies nothing');

my $s = run('spool_sync', '-C', $pa, '-s');
is($s->{rc}, 0, 'spool_sync -s exits 0') or diag($s->{err});
like($s->{out}, qr/^  \S+Z push .*spool_sync -C \S+ --serve: conflict: user\.alice \(\S+\): the local message of uid $ua, GUID \w{40} \(the other side's: \w{40}\)$/m,
    '-s lists the conflict: time, peer, folder, uid, both GUIDs');
is(scalar(() = $s->{out} =~ /: renumbered: user\.alice \(\S+\): the (local|peer) message of uid $ua, now uid [67], GUID \w{40}/g),
    2, '... both messages renumbered, each with its new uid');
like($s->{out}, qr/: copied-back: user\.alice\.Work \(\S+\): the peer message of uid 2, GUID \w{40}$/m,
    '... the message only b had, copied back');
my $j = run('spool_sync', '-C', $pa, '-s', '--json');
my @f = map { decode_json($_) } split /\n/, $j->{out};
is(scalar(@f), 4, '-s --json: one JSON object per finding');
is_deeply([sort map { $_->{kind} } @f], [qw(conflict copied-back renumbered renumbered)], '... with their kinds');
ok(!grep({ !($_->{time} && $_->{peer} && $_->{uniqueid} && $_->{mailbox} && $_->{uid} && $_->{guid}) } @f),
    '... each with time, peer, uniqueid, mailbox, uid and GUID');
my %renum = map { $_->{guid} => $_->{newuid} } grep { $_->{kind} eq 'renumbered' } @f;
is_deeply({ map { $_ => live(ids_state($pb), 'user.alice')->{$_}[0] } keys %renum }, \%renum,
    '... the new uids are where b holds those GUIDs');

# ---- split brain: pulled ----------------------------------------------------
deliver_uid($pa, 'user.alice');
deliver_uid($pb, 'user.alice') for 1 .. 2;
set_flags($pa, 'user.alice', 5, '\Answered');
%ever = (%{live(ids_state($pa), 'user.alice')}, %{live(ids_state($pb), 'user.alice')});
$r = client('pull after a second split', $pa, ['--pull', '-u', 'alice'], ids_peer($pb));
like($r->{out}, qr/^pull: 1 folder\(s\) merged, 3 finding\(s\)/m, '... 1 folder merged, 3 findings');
converged('pull after a second split', $pa, $pb, 'user.alice', \%ever);
is(flags_of(ids_state($pb), 'user.alice', guid_at($pa, 'user.alice', 5)),
    '\Answered', "the pulling side's flag change reaches the peer too");
$r = client('pull again', $pa, ['--pull', '-u', 'alice'], ids_peer($pb));
is(sent_applies($r) + ($r->{out} =~ /, 0 applied,/ ? 0 : 1), 0, '... a second pull applies nothing');
@f = map { decode_json($_) } split /\n/, run('spool_sync', '-C', $pa, '-s', '--json')->{out};
is(scalar(grep { $_->{direction} eq 'pull' } @f), 3, '... its findings are listed too');

# ---- a folder only one side holds -------------------------------------------
mk($pb, 'user.alice.Only');
my $only = deliver_uid($pb, 'user.alice.Only');
mk($pa, 'user.alice.Same');
mk($pb, 'user.alice.Same');
deliver_uid($pa, 'user.alice.Same');
deliver_uid($pb, 'user.alice.Same');
my $bsame = uniqueid_of($pb, 'user.alice.Same');
my $asame = uniqueid_of($pa, 'user.alice.Same');
my %same = (%{live(ids_state($pa), 'user.alice.Same')}, %{live(ids_state($pb), 'user.alice.Same')});
$r = client('push with folders only on the peer', $pa, ['-u', 'alice'], ids_peer($pb));
like($r->{err}, qr/user\.alice\.Only \(\S+\) is on the peer only and has no tombstone here: kept, and copied here/,
    '... the folder only b holds is kept, and said');
my $sa = ids_state($pa);
is_deeply(nstate(ids_state($pb)), nstate($sa), '... both sides equal afterwards');
ok(grep({ $_->{name} eq 'user.alice.Only' } values %$sa), '... b\'s folder copied to a');
my $rec = 'user.alice.Same-recovered-' . substr($bsame, 0, 8);
is($sa->{$bsame}{name}, $rec, "... b's Same, whose name a gives another folder, is $rec on both");
is($sa->{$asame}{name}, 'user.alice.Same', "... and a's Same is Same on both");
my %both = (%{live($sa, 'user.alice.Same')}, %{live($sa, $rec)});
is_deeply([sort keys %both], [sort keys %same], '... no message of either Same lost');
$s = run('spool_sync', '-C', $pa, '-s')->{out};
like($s, qr/: kept-folder: user\.alice\.Only \(\S+\): the peer folder, copied to the other side$/m,
    '-s lists the kept folder');
like($s, qr/: recovered-folder: user\.alice\.Same \(\Q$bsame\E\): the peer folder, copied to the other side as \Q$rec\E$/m,
    '... and the recovered one, with its new name');
$r = client('push again', $pa, ['-u', 'alice'], ids_peer($pb));
is(sent_applies($r), 0, '... a second push sends no apply');

# pull: a folder only here, its name the peer's other folder
mk($pa, 'user.alice.Mine');
mk($pb, 'user.alice.Mine');
deliver_uid($pa, 'user.alice.Mine');
my $amine = uniqueid_of($pa, 'user.alice.Mine');
$r = client('pull with a folder only here', $pa, ['--pull', '-u', 'alice'], ids_peer($pb));
my $mrec = 'user.alice.Mine-recovered-' . substr($amine, 0, 8);
$sa = ids_state($pa);
is_deeply(nstate(ids_state($pb)), nstate($sa), '... both sides equal afterwards');
is($sa->{$amine}{name}, $mrec, "... the local Mine is $mrec on both");
is($sa->{uniqueid_of($pb, 'user.alice.Mine')}{name}, 'user.alice.Mine', "... and b's Mine is Mine");
like(run('spool_sync', '-C', $pa, '-s')->{out},
    qr/pull .*: recovered-folder: user\.alice\.Mine \(\Q$amine\E\): the local folder, copied to the other side as \Q$mrec\E$/m,
    '-s lists it');
for my $conf ($pa, $pb) {
	my $au = run('spool_audit', '-C', $conf);
	is($au->{rc}, 0, "spool_audit finds nothing on $conf") or diag($au->{out}, $au->{err});
}

# -s on a spool that never synced; bad use
$s = run('spool_sync', '-C', spool('never'), '-s');
is("$s->{rc} $s->{out}", "0 findings: none\n", '-s with no findings: "none"');
is(run('spool_sync', '-C', $pa, '--json')->{rc}, 2, '--json without -s: usage, exit 2');
is(run('spool_sync', '-C', $pa, '-s', '-u', 'alice', '--', 'true')->{rc}, 2, '-s with a peer: usage, exit 2');
open my $fh, '>>', "$dir/a/conf/sync/findings" or die;
print $fh "not json\n{\"kind\":\"conflict\"";
close $fh;
$s = run('spool_sync', '-C', $pa, '-s');
is($s->{rc}, 1, '-s: a line that is not a finding: exit 1');
like($s->{err}, qr/^spool_sync: \S+findings: line \d+: not a finding$/m, '... named');
like($s->{out}, qr/kept-folder/, '... the other findings still listed');

# ---- a real Cyrus sync_server, its UID given to another message ------------
CyrusPeer::ensure($top);
my $cy = CyrusPeer->new("$dir/cyrus");
$cy->imap('admin', 'CREATE user.carol');
$cy->imap('carol', map { CyrusPeer::append_cmd('INBOX', '', CyrusPeer::msg($_, 'carol')) } 1 .. 3);
my @cyrus = ('runuser', '-u', 'cyrus', '--', 'env', 'CYRUS_SERVICE=sync', 'CYRUS_ID=1',
    "$CyrusPeer::BIN/sync_server", '-C', $cy->conf, '-X');
my $c = spool('c');
client('pull carol from Cyrus', $c, ['--pull', '-u', 'carol'], @cyrus);
is_deeply(ids_state($c), $cy->cyrus_state, '... equal');
# apart: Cyrus gives uid 4 to one message and flags uid 1, the spool uid 4 to another
$cy->imap('carol', CyrusPeer::append_cmd('INBOX', '', CyrusPeer::msg(40, 'carol')),
    'SELECT INBOX', 'UID STORE 1 +FLAGS (\Flagged)');
is(deliver_uid($c, 'user.carol'), 4, 'the spool gives uid 4 to another message');
%ever = (%{live(ids_state($c), 'user.carol')}, %{live($cy->cyrus_state, 'user.carol')});
$r = client('push into Cyrus after the split', $c, ['-u', 'carol'], @cyrus);
like($r->{out}, qr/, 0 failed$/m, '... nothing refused by the Cyrus side');
converged('push into Cyrus', $c, $c, 'user.carol', \%ever);
is_deeply(nstate($cy->cyrus_state), nstate(ids_state($c)), '... the Cyrus side equals the spool: both messages kept');
my $gf = guid_at($c, 'user.carol', 1);
is(flags_of(ids_state($c), 'user.carol', $gf), '\Flagged', "... and Cyrus's flag (the higher modseq) came back");
my $sock = "$dir/c.sock";
$cy->serve($sock, ids_peer($c));
my $cs = $cy->sync_user($sock, 'carol');
is($cs->{rc}, 0, "Cyrus's sync_client -u carol into the spool") or diag($cs->{err});
is(scalar(grep { /^>\d+>APPLY / } split /\n/, $cs->{err}), 0,
    "... applies nothing: Cyrus's CRCs and the spool's agree") or diag($cs->{err});
$cy->stop;
$r = client('push into Cyrus again', $c, ['-u', 'carol'], @cyrus);
is(sent_applies($r), 0, '... a second push sends no apply');

done_testing();
