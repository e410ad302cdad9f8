#!/usr/bin/perl
# t7450-spool-sync-repair.t - missing and damaged message files healed
# over csync between two idspool spools on a pipe (seed 000: "the
# backup which knows it has corrupted files actively seeks out those
# missing files"), and the pair audit over the wire (seeds 003 b, 004):
#
#  - a file deleted and one with a byte flipped on the replica: the
#    pair audit (spool_audit --compare -- PEER) reports them, a push
#    heals them (GET STATE's MISSING, APPLY REPAIR), the replica's
#    indexes byte for byte unchanged, the pair audit clean afterwards;
#  - the same on the primary: a pull, and a push, heal the primary from
#    the replica (GET FETCHGUID); spool_audit --repair-from -- PEER too;
#  - a byte flipped inside a file literal on the wire, either way, is
#    refused and never stored;
#  - GET FETCHGUID of a GUID nobody holds is NO; GET STATE names the
#    folder's old names and its MISSING;
#  - the replica killed at every failpoint of APPLY REPAIR leaves the
#    damaged file or the healed one, never a part of one, and the next
#    push heals it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use IdsTest;
use SyncPair qw(spool_conf spool_dir folder_dir ok_append sync_run ok_sync pair_audit audit_clean);

my $dir = scratch();

sub spool { return spool_conf("$dir/$_[0]"); }

sub flip {
	my ($file, $at) = @_;
	my $d = slurp($file);
	substr($d, $at, 1) = chr(ord(substr($d, $at, 1)) ^ 0x20);
	spew($file, $d);
}

# sha1 of every cyrus.index below a spool: an index must never change
sub indexes {
	my ($conf) = @_;
	my $root = spool_dir($conf);
	my %h;
	for my $f (split /\n/, `find $root/spool -name cyrus.index`) {
		$h{$f} = sha1_file($f);
	}
	return \%h;
}

my $a = spool('a');
my $b = spool('b');
ok_run('create INBOX', 'ctl_mboxlist', '-C', $a, '-i', '-c', 'user.alice');
ok_run('create Sent', 'ctl_mboxlist', '-C', $a, '-i', '-c', 'user.alice.Sent');
for my $i (1 .. 4) {
	ok_append("deliver $i", $a, 'user.alice',
	    "From: x\@example.com\nSubject: message $i\n\n" . ("line $i\n" x (10 * $i)));
}
ok_append('deliver to Sent', $a, 'user.alice.Sent',
    "From: alice\@example.com\nSubject: sent\n\nsent body\n");
ok_sync('initial push', $a, $b, '-u', 'alice');

my ($da, $db) = (folder_dir($a, 'user.alice'), folder_dir($b, 'user.alice'));
my %good = map { $_ => slurp("$da/$_.") } 1 .. 4;
ok(-d $da && -d $db && $good{4}, 'both spools hold user.alice');

sub same_as_good {
	my ($what, $d) = @_;
	my @bad = grep { !-f "$d/$_." || slurp("$d/$_.") ne $good{$_} } 1 .. 4;
	ok(!@bad, "$what: every file intact") or diag("bad uids: @bad");
	my @debris = glob("$d/*.NEW");
	ok(!@debris, "$what: no temporary file left") or diag("@debris");
}

my $r = pair_audit($a, $b);
is($r->{rc}, 0, 'the pair audit over the wire is clean after the push') or diag($r->{out}, $r->{err});
is($r->{out}, '', '... and reports nothing');

# ---- damage on the replica ----------------------------------------------------
unlink("$db/2.") or die;
flip("$db/3.", 5);
my $idx_b = indexes($b);

$r = pair_audit($a, $b);
is($r->{rc}, 1, 'the pair audit reports the damage on the replica (exit 1)');
like($r->{out}, qr/^user\.alice: uid 2: there-file: .*MISSING/m, '... the deleted file');
like($r->{out}, qr/^user\.alice: uid 3: there-file: .*MISSING/m, '... the corrupted file');
like($r->{out}, qr/^user\.alice: MISSING \(GUID [0-9a-f]{40} [0-9a-f]{40}\)$/m,
    '... and the GUIDs the replica lacks, as replication spells them');
$r = pair_audit($a, $b, '--json');
my @j = map { decode_json($_) } split /\n/, $r->{out};
my ($miss) = grep { $_->{kind} eq 'missing' } @j;
is(scalar @{$miss->{guids} // []}, 2, '--json: the missing finding lists 2 GUIDs');

# without --verify only presence and size are checked: the deleted file
$r = ok_sync('push (sizes only)', $a, $b, '-u', 'alice');
like($r->{out}, qr/^push: 1 missing or damaged file\(s\) repaired$/m, '... repairs the deleted file');
ok(-f "$db/2." && slurp("$db/2.") eq $good{2}, '... which is back, intact');
ok(slurp("$db/3.") ne $good{3}, '... the corrupted one (same size) is not found without --verify');
$r = ok_sync('push --verify', $a, $b, '-v', '--verify', '-u', 'alice');
like($r->{out}, qr/^push: 1 missing or damaged file\(s\) repaired$/m, '... repairs the corrupted file');
like($r->{err}, qr/user\.alice \(\S+\): 1 file\(s\) of GUID [0-9a-f]{40} put back on the peer/,
    '... and logs it');
same_as_good('the replica after the push', $db);
is_deeply(indexes($b), $idx_b, '... its indexes are byte for byte unchanged');
audit_clean('the replica', $b);
$r = pair_audit($a, $b);
is($r->{rc}, 0, 'the pair audit is clean again') or diag($r->{out});
$r = ok_sync('a resync', $a, $b, '--verify', '-u', 'alice');
unlike($r->{out}, qr/repaired/, '... repairs nothing');

# ---- damage on the primary ------------------------------------------------------
my $idx_a = indexes($a);
unlink("$da/1.") or die;
flip("$da/4.", 7);
$r = run('spool_audit', '-C', $a);
is($r->{rc}, 1, 'the primary audits damaged');
$r = ok_sync('pull --verify', $a, $b, '-v', '--pull', '--verify', '-u', 'alice');
like($r->{out}, qr/^pull: 2 missing or damaged file\(s\) repaired$/m, '... heals the primary from the replica');
like($r->{err}, qr/uid 1: missing file of GUID [0-9a-f]{40} put back/, '... logs the missing one');
like($r->{err}, qr/uid 4: damaged file of GUID [0-9a-f]{40} put back/, '... and the damaged one');
same_as_good('the primary after the pull', $da);
is_deeply(indexes($a), $idx_a, '... its indexes are unchanged');

# a push session heals the primary too (it fetches what it lacks)
unlink("$da/3.") or die;
$r = ok_sync('push', $a, $b, '-u', 'alice');
like($r->{out}, qr/^push: 1 missing or damaged file\(s\) repaired$/m, 'a push heals the primary\'s own loss');
same_as_good('the primary after the push', $da);
same_as_good('the replica after the push', $db);

# ---- spool_audit --repair-from -- PEER --------------------------------------------
unlink("$da/2.") or die;
flip("$da/1.", 3);
$r = run('spool_audit', '-C', $a, '-i', '-n', '--repair-from', '--', ids_peer($b));
is($r->{rc}, 1, '--repair-from -n: exit 1');
is(scalar(() = $r->{out} =~ /\[would heal from the peer/g), 2, '... two would heal');
ok(!-e "$da/2.", '... and nothing is written');
$r = run('spool_audit', '-C', $a, '-i', '--repair-from', '--', ids_peer($b));
is($r->{rc}, 0, '--repair-from -- PEER: exit 0, every finding healed') or diag($r->{out}, $r->{err});
like($r->{out}, qr/^user\.alice: uid 1: file-guid: .*\[healed from the peer/m, '... the corrupted file');
like($r->{out}, qr/^user\.alice: uid 2: file-missing: .*\[healed from the peer/m, '... the deleted file');
same_as_good('the primary after --repair-from', $da);
is_deeply(indexes($a), $idx_a, '... its indexes are unchanged');
audit_clean('the primary', $a);

ok_run('the pair audit of one user (-u)', 'spool_audit', '-C', $a, '-u', 'alice', '--compare', '--',
    ids_peer($b));
ok_run('... and of one folder', 'spool_audit', '-C', $a, '-i', 'user.alice.Sent', '--compare', '--',
    ids_peer($b));

# usage: the local form still works, --md5 needs a configuration
$r = run('spool_audit', '-C', $a, '--compare', $b);
is($r->{rc}, 0, '--compare other.conf still works') or diag($r->{out}, $r->{err});
is(run('spool_audit', '-C', $a, '--md5', '--compare', '--', ids_peer($b))->{rc}, 2,
    '--md5 with a peer command is a usage error');
is(run('spool_audit', '-C', $a, '--compare', '--')->{rc}, 2, 'a missing peer command is a usage error');
$r = run('spool_audit', '-C', $a, '--compare', '--', 'false');
is($r->{rc}, 3, 'a peer that sends no banner: exit 3');

# ---- a byte flipped inside a file literal on the wire ------------------------------
# A filter between the two: the peer's output (or input) passes through
# unchanged except the first byte of each file literal's body.
my $filter = "$dir/flip.pl";
spew($filter, <<'EOF');
use strict;
use warnings;
use IPC::Open2;
my $dir = shift;	# "out": the peer's answers, "in": our commands
my $pid = open2(my $from, my $to, @ARGV);
binmode $_ for \*STDIN, \*STDOUT, $from, $to;
$| = 1;
sub pump {
	my ($src, $dst, $flip) = @_;
	my ($buf, $skip) = ('', 0);
	while (sysread($src, my $chunk, 65536)) {
		$buf .= $chunk;
		my $out = '';
		while (length $buf) {
			if ($skip) { my $n = $skip < length $buf ? $skip : length $buf;
				$out .= substr($buf, 0, $n, ''); $skip -= $n; next; }
			if ($flip && $buf =~ /\A(.*?%\{\S+ [0-9a-f]{40} (\d+)\}\r\n)(.)/s) {
				my ($head, $size) = ($1, $2);
				$out .= $head . chr(ord($3) ^ 1);
				substr($buf, 0, length($head) + 1, '');
				$skip = $size - 1;
				next;
			}
			# keep a possible partial header for the next read
			my $keep = $flip && $buf =~ /(%\{[^\n]*\n?)\z/ ? length $1 : 0;
			$out .= substr($buf, 0, length($buf) - $keep, '');
			last;
		}
		syswrite($dst, $out) if length $out;
	}
	close $dst;
}
if (fork() == 0) { close $from; pump(\*STDIN, $to, $dir eq 'in'); exit 0; }
close $to;
pump($from, \*STDOUT, $dir eq 'out');
waitpid($pid, 0);
wait;
exit($? >> 8);
EOF

unlink("$da/3.") or die;
$r = run('spool_sync', '-C', $a, '-v', '--pull', '-u', 'alice', '--', $^X, $filter, 'out', ids_peer($b));
like($r->{err}, qr/GET FETCHGUID [0-9a-f]{40}: the file sent is refused/,
    'a flipped byte in a fetched file literal is refused');
ok(!-e "$da/3.", '... and nothing is stored');
ok(!glob("$dir/a/spool/stage./*/*"), '... no staged file remains');
$r = run('spool_audit', '-C', $a, '-i', '--repair-from', '--', $^X, $filter, 'out', ids_peer($b));
is($r->{rc}, 1, '--repair-from through the flipping filter: not healed (exit 1)');
like($r->{out}, qr/uid 3: file-missing: .*\[not healed: /, '... the finding says so');
ok(!-e "$da/3.", '... and nothing is stored');
ok_sync('the next pull without the filter', $a, $b, '--pull', '-u', 'alice');
same_as_good('the primary', $da);

unlink("$db/4.") or die;
$r = run('spool_sync', '-C', $a, '-v', '-u', 'alice', '--', $^X, $filter, 'in', ids_peer($b));
like($r->{err}, qr/APPLY REPAIR of GUID [0-9a-f]{40}: the peer answered NO/,
    'a flipped byte in a file literal sent to the replica is refused there');
isnt($r->{rc}, 0, '... and the session reports a failure');
ok(!-e "$db/4.", '... nothing is stored');
ok_sync('the next push without the filter', $a, $b, '-u', 'alice');
same_as_good('the replica', $db);

# ---- the extensions on the wire ------------------------------------------------------
my ($uid_a) = decode_json(run('ctl_mboxlist', '-C', $a, '-d')->{out})->{'user.alice'}{uniqueid};
ok_run('rename Sent on the replica', 'ctl_rename', '-C', $b, '-i', 'user.alice.Sent', 'user.alice.Old');
my $sent = decode_json(run('ctl_mboxlist', '-C', $b, '-d')->{out})->{'user.alice.Old'}{uniqueid};
unlink("$db/1.") or die;
$r = run('spool_sync', '-C', $b, '--serve', stdin =>
    "GET STATE %(UNIQUEID $uid_a VERIFY 1)\r\nGET STATE %(UNIQUEID $sent)\r\n" .
    "GET FETCHGUID 0123456789abcdef0123456789abcdef01234567\r\n" .
    "GET FETCHGUID " . ('f' x 39) . "\r\nGET STATE %(UNIQUEID 00000000-0000-0000-0000-000000000000)\r\nEXIT\r\n");
like($r->{out}, qr/^\* STATE %\(UNIQUEID $uid_a MBOXNAME user\.alice .* MISSING \([0-9a-f]{40}\)\)\r$/m,
    'GET STATE: the state line with MISSING');
like($r->{out}, qr/^\* STATE %\(UNIQUEID $sent MBOXNAME user\.alice\.Old .*HISTORY \(user\.alice\.Sent\) MISSING \(\)\)\r$/m,
    '... the name history');
my $r2 = run('spool_sync', '-C', $b, '--serve', stdin =>
    "GET STATE %(UNIQUEID ($uid_a 00000000-0000-0000-0000-000000000000 $sent))\r\nEXIT\r\n");
like($r2->{out}, qr/^\* STATE %\(UNIQUEID $uid_a .*\r\n\* STATE %\(UNIQUEID $sent .*\r\nOK success\r$/m,
    'GET STATE of a list: a state line for each live one, in the order asked');
like($r->{out}, qr/^NO IMAP_MAILBOX_NONEXISTENT .*\r\nBAD IMAP_PROTOCOL_BAD_PARAMETERS\r\nOK success\r\nOK Finished/m,
    'GET FETCHGUID of an unknown GUID: NO; a bad GUID: BAD; GET STATE of an unknown uniqueid: OK, no state');
ok_run('rename it back', 'ctl_rename', '-C', $b, '-i', 'user.alice.Old', 'user.alice.Sent');
ok_sync('heal the replica', $a, $b, '-u', 'alice');
same_as_good('the replica', $db);
$idx_b = indexes($b);	# the renames rewrote a header

# ---- the replica killed at each failpoint of APPLY REPAIR ---------------------------------
my $log = "$dir/points.log";
unlink("$db/2.") or die;
flip("$db/3.", 1);
{
	local $ENV{IDS_FAILPOINT_LOG} = $log;
	ok_sync('a push with the points logged', $a, $b, '--verify', '-u', 'alice');
}
my @points = grep { /^sync\.repair/ } split /\n/, slurp($log);
ok(@points >= 10, scalar(@points) . ' failpoints of the repair passed');
same_as_good('the replica', $db);
my @bad;
for my $k (1 .. @points) {
	unlink("$db/2.") or die;
	my $damaged = slurp("$db/3.");
	flip("$db/3.", 1);
	my $flipped = slurp("$db/3.");
	$r = run('spool_sync', '-C', $a, '--verify', '-u', 'alice', '--', 'env',
	    "IDS_FAILPOINT_CRASH=$k:sync.repair", ids_peer($b));
	push @bad, "k=$k ($points[$k - 1]): the session did not fail" if $r->{rc} == 0;
	push @bad, "k=$k ($points[$k - 1]): uid 2 is neither absent nor intact"
	    if -e "$db/2." && slurp("$db/2.") ne $good{2};
	my $now = slurp("$db/3.");
	push @bad, "k=$k ($points[$k - 1]): uid 3 is neither the damaged file nor the healed one"
	    unless $now eq $flipped || $now eq $good{3};
	$r = sync_run($a, $b, '--verify', '-u', 'alice');
	push @bad, "k=$k: the next push fails: $r->{err}" if $r->{rc} != 0;
	push @bad, "k=$k: not healed by the next push"
	    if grep { !-f "$db/$_." || slurp("$db/$_.") ne $good{$_} } 1 .. 4;
	push @bad, "k=$k: debris: " . join(' ', glob("$db/*.NEW")) if glob("$db/*.NEW");
}
ok(!@bad, 'killed at each of ' . scalar(@points) . ' points: the old or the new file, then healed')
    or diag(join("\n", @bad));

# ---- the client killed at each failpoint of its own repair (a pull) ------------------
@bad = ();
for my $k (1 .. @points) {
	unlink("$da/2.") or die;
	flip("$da/3.", 1);
	my $flipped = slurp("$da/3.");
	{
		# the peer only reads: the points counted are the client's
		local $ENV{IDS_FAILPOINT_CRASH} = "$k:sync.repair";
		$r = sync_run($a, $b, '--pull', '--verify', '-u', 'alice');
	}
	push @bad, "k=$k: the client was not killed (exit $r->{rc})" if $r->{rc} != 128 + 9;
	push @bad, "k=$k: uid 2 is neither absent nor intact"
	    if -e "$da/2." && slurp("$da/2.") ne $good{2};
	my $now = slurp("$da/3.");
	push @bad, "k=$k: uid 3 is neither the damaged file nor the healed one"
	    unless $now eq $flipped || $now eq $good{3};
	$r = sync_run($a, $b, '--pull', '--verify', '-u', 'alice');
	push @bad, "k=$k: the next pull fails: $r->{err}" if $r->{rc} != 0;
	push @bad, "k=$k: not healed by the next pull"
	    if grep { !-f "$da/$_." || slurp("$da/$_.") ne $good{$_} } 1 .. 4;
	push @bad, "k=$k: debris: " . join(' ', glob("$da/*.NEW")) if glob("$da/*.NEW");
}
ok(!@bad, 'the pulling client killed at each point: the old or the new file, then healed')
    or diag(join("\n", @bad));
is_deeply(indexes($a), $idx_a, 'the primary\'s indexes never changed');
is_deeply(indexes($b), $idx_b, 'the replica\'s indexes never changed');
audit_clean('the replica at the end', $b);
audit_clean('the primary at the end', $a);

done_testing();
