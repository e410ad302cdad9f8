#!/usr/bin/perl
# t7560-spool-sync-uidvalidity.t - what spool_sync --serve stores in
# mailboxes.db agrees with cyrus.index and with what it reports:
# - a full APPLY MAILBOX with a higher UIDVALIDITY than the folder's
#   changes the folder's record as well as cyrus.index (GET MAILBOXES,
#   ctl_mboxlist -d and spool_audit agree); killed at every failpoint of
#   that apply, the state after recovery has the two agreeing and the
#   retry converges on the new UIDVALIDITY in both;
# - a new folder whose CREATEDMODSEQ comes after its RECORD list (the
#   streamed apply) gets that CREATEDMODSEQ in its record, as one that
#   comes before it does, pushed alone or in a pipelined group.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(remove_tree);
use JSON::PP qw(decode_json);
use Test::More;
use IdsTest;
use CyrusPeer;
use Torture;

my $base = fast_scratch();
local $IdsTest::NO_VALGRIND = 1;

sub spool { return CyrusPeer::replica_conf("$base/$_[0]"); }

sub serve {
	my ($conf, $in, %env) = @_;
	local %ENV = (%ENV, %env);
	return run('spool_sync', '-C', $conf, '--serve', stdin => $in);
}

sub answers { return [grep { /^(OK|NO|BAD)/ } split /\r\n/, $_[0]{out}]; }

# An empty folder's full state (its CRCs: no record); CREATEDMODSEQ
# before the RECORD list, after it (late) or not at all (undef).
sub apply {
	my (%o) = @_;
	my $who = $o{who} // 'carol';
	my $cms = defined $o{cms} && !$o{late} ? "CREATEDMODSEQ $o{cms} " : '';
	my $tail = defined $o{cms} && $o{late} ? " CREATEDMODSEQ $o{cms}" : '';
	my $id = substr($who . ('0' x 24), 0, 23) . '1';
	return "APPLY MAILBOX %(UNIQUEID $id MBOXNAME user.$who " .
	    "SYNC_CRC 0 SYNC_CRC_ANNOT 12345678 LAST_UID 0 HIGHESTMODSEQ $o{hms} RECENTUID 0 " .
	    "RECENTTIME 0 LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 " .
	    "UIDVALIDITY $o{uv} PARTITION default ACL \"$who\tlrswipkxtecdan\t\" OPTIONS P " .
	    "${cms}FOLDERMODSEQ 1 RECORD ()$tail)\r\n";
}

# mailboxes.db's record of user.$who (ctl_mboxlist -d)
sub record_of {
	my ($conf, $who) = @_;
	my $r = run('ctl_mboxlist', '-C', $conf, '-d');
	my $db = eval { decode_json($r->{out}) } // {};
	return $db->{"user.$who"} // {};
}

# what the replica reports of user.$who: UIDVALIDITY, CREATEDMODSEQ
sub reported {
	my ($conf, $who) = @_;
	my $r = serve($conf, "GET MAILBOXES (user.$who)\r\nEXIT\r\n");
	my ($line) = $r->{out} =~ /^(\* MAILBOX .*MBOXNAME user\.$who .*)$/m;
	$line //= '';
	my ($uv) = $line =~ / UIDVALIDITY (\d+) /;
	my ($cms) = $line =~ / CREATEDMODSEQ (\d+) /;
	return ($uv // 'none', $cms // 'none');
}

my ($uv1, $uv2) = (1796524999, 1796530000);

# ---- a higher UIDVALIDITY ------------------------------------------------
my $conf = spool('uv');
my $r = serve($conf, apply(uv => $uv1, hms => 4, cms => 2) . "EXIT\r\n");
is_deeply(answers($r), ['OK success', 'OK Finished'], 'user.carol created') or diag($r->{err});
my $raise = apply(uv => $uv2, hms => 5, cms => 2) . "EXIT\r\n";
$r = serve($conf, $raise);
is_deeply(answers($r), ['OK success', 'OK Finished'], 'a full apply with a higher UIDVALIDITY: OK')
    or diag($r->{err});
is((reported($conf, 'carol'))[0], $uv2, '... GET MAILBOXES reports the new one');
is(record_of($conf, 'carol')->{uidvalidity}, $uv2, '... and mailboxes.db holds it');
my $a = run('spool_audit', '-C', $conf);
is($a->{rc}, 0, '... and spool_audit is clean') or diag($a->{out}, $a->{err});
$r = serve($conf, apply(uv => $uv1, hms => 6, cms => 2) . "EXIT\r\n");
like(answers($r)->[0], qr/^NO IMAP_SYNC_CHECKSUM/, 'a lower UIDVALIDITY is refused');
is(record_of($conf, 'carol')->{uidvalidity}, $uv2, '... and changes nothing');

# killed at each failpoint of the apply that raises it
my $log = "$base/points";
$conf = spool('ref');
serve($conf, apply(uv => $uv1, hms => 4, cms => 2) . "EXIT\r\n");
serve($conf, $raise, IDS_FAILPOINT_LOG => $log);
my @points = split /\n/, slurp($log);
my %kinds = map { $_ => 1 } @points;
ok(!grep({ !$kinds{"sync.apply_$_"} } qw(db intent index done)),
    'that apply passes sync.apply_db, _intent, _index and _done') or diag("@points");
my @bad;
for my $k (1 .. scalar(@points)) {
	my $c = spool("k$k");
	my $what = "k=$k ($points[$k - 1])";
	serve($c, apply(uv => $uv1, hms => 4, cms => 2) . "EXIT\r\n");
	$r = serve($c, $raise, IDS_FAILPOINT_CRASH => $k);
	if ($r->{rc} != 128 + 9) {
		push @bad, "$what: not killed (exit $r->{rc})";
		next;
	}
	my $st = state({ conf => $c }, 1);
	push @bad, map { "$what: after recovery: $_" } @{$st->{violations}},
	    Torture::audit({ conf => $c }, $st);
	my ($uv) = reported($c, 'carol');
	my $db = record_of($c, 'carol')->{uidvalidity} // 'none';
	push @bad, "$what: after recovery cyrus.index has $uv, mailboxes.db $db" if $uv ne $db;
	$r = serve($c, $raise);
	push @bad, "$what: the retry got @{answers($r)}"
	    unless "@{answers($r)}" eq 'OK success OK Finished';
	($uv) = reported($c, 'carol');
	$db = record_of($c, 'carol')->{uidvalidity} // 'none';
	push @bad, "$what: after the retry cyrus.index has $uv, mailboxes.db $db"
	    if $uv ne $uv2 || $db ne $uv2;
	remove_tree("$base/k$k") unless @bad;
}
is_deeply(\@bad, [], 'killed at each of ' . scalar(@points) .
    ' points: mailboxes.db and cyrus.index agree, and the retry brings both to it');

# ---- CREATEDMODSEQ after the RECORD list ----------------------------------
for my $case (['before the records', 0], ['after the records', 1]) {
	my ($where, $late) = @$case;
	$conf = spool("cms$late");
	# dave alone; erin and frank in one pipelined group
	$r = serve($conf, apply(who => 'dave', uv => $uv1, hms => 9, cms => 7, late => $late) .
	    "EXIT\r\n");
	is_deeply(answers($r), ['OK success', 'OK Finished'], "CREATEDMODSEQ $where: created")
	    or diag($r->{err});
	$r = serve($conf, apply(who => 'erin', uv => $uv1, hms => 9, cms => 8, late => $late) .
	    apply(who => 'frank', uv => $uv1, hms => 9, cms => 5, late => $late) . "EXIT\r\n");
	is_deeply(answers($r), ['OK success', 'OK success', 'OK Finished'],
	    "... two more in one pipelined group") or diag($r->{err});
	for my $f (['dave', 7], ['erin', 8], ['frank', 5]) {
		my ($who, $cms) = @$f;
		is(record_of($conf, $who)->{createdmodseq}, $cms,
		    "... user.$who: mailboxes.db holds CREATEDMODSEQ $cms");
		is((reported($conf, $who))[1], $cms, "... and GET MAILBOXES reports it");
	}
}

done_testing();
