#!/usr/bin/perl
# t7200-spool-sync-input.t - spool_sync --serve against bad and hostile
# input, with real csync sessions of Cyrus 3.6.1 (the transcripts) as
# the good input: unknown commands, garbage, a file literal whose bytes
# are not its GUID or that is cut short, a 2 GB literal header, names
# and partitions it does not have, a folder whose name or uniqueid is
# held by another (IMAP_MAILBOX_MOVED), and the session cut at every
# byte offset of a real session.  Each gets its answer or ends the
# session; what was answered OK stays, nothing else is stored, no
# staging is left, and the spool stays clean for spool_audit.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha1_hex);
use File::Path qw(remove_tree);
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf serve answers clean staging_left);

my $dir = scratch();
my $top = "$FindBin::Bin/..";

# A real session: bob's full sync from the transcripts (its client lines).
my $bob = CyrusPeer::transcript('03-full-user-sync-bob.wire.txt');

my $n = 0;
sub spool { return spool_conf("$dir/s" . ++$n); }

sub dump_db {
	my ($conf) = @_;
	my $r = run('ctl_mboxlist', '-C', $conf, '-d');
	return $r->{out} =~ /\S/ ? decode_json($r->{out}) : {};
}

# ---- the good session, and the protocol basics ----------------------
my $conf = spool();
my $r = serve($conf, $bob);
is($r->{rc}, 0, "bob's full sync from Cyrus 3.6.1's transcript") or diag($r->{err});
like($r->{out}, qr/^\* OK \S+ Cyrus sync server idspool-/, 'the banner is Cyrus\'s');
unlike($r->{out}, qr/COMPRESS|SASL/, 'offering no COMPRESS and no SASL');
is(scalar(grep { /^OK / } @{answers($r)}), 8, 'every command answered OK');
my $db = dump_db($conf);
is($db->{'user.bob'}{uniqueid}, 'fjs9ohlzg88spsk0mehkmhp9', 'user.bob has the master\'s uniqueid');
is($db->{'user.bob.Archive'}{uidvalidity}, '1796524923', '... and UIDVALIDITY');
clean($conf, 'the good session');

$r = serve($conf, "GET USER bob\r\nEXIT\r\n");
like($r->{out}, qr/^\* MAILBOX %\(UNIQUEID fjs9ohlzg88spsk0mehkmhp9 MBOXNAME user\.bob SYNC_CRC 2446628501 SYNC_CRC_ANNOT 3051573483 /m,
    'GET USER reports the CRCs Cyrus computed');
like($r->{out}, qr/^\* LSUB \(user\.bob\.Archive\)\r$/m, '... and the subscription');
like($r->{out}, qr/\r\nOK success\r\nOK Finished\r\n\z/, '... then OK and EXIT');

$r = serve($conf, "GET FETCH %(MBOXNAME user.bob PARTITION default UNIQUEID fjs9ohlzg88spsk0mehkmhp9 " .
    "GUID 3ed2638aa7ac8a59d8a73bab57df194b121756c4 UID 1)\r\nEXIT\r\n");
my ($body) = $bob =~ /%\{default 3ed2638aa7ac8a59d8a73bab57df194b121756c4 156\}\r\n(.{156})/s;
is(substr($r->{out}, index($r->{out}, "\r\n") + 2),
    "* MESSAGE %{default 3ed2638aa7ac8a59d8a73bab57df194b121756c4 156}\r\n$body\r\nOK success\r\nOK Finished\r\n",
    'GET FETCH sends the file as Cyrus does');

$r = serve($conf, "NOOP\r\nFROB x\r\nAPPLY FROB x\r\nGET FROB\r\n\x01\x02garbage\x7f\r\nRESTART\r\nEXIT\r\n");
is_deeply(answers($r), ['OK Noop completed', 'BAD IMAP_PROTOCOL_ERROR Unrecognized command',
    'BAD IMAP_PROTOCOL_ERROR Unrecognized command', 'BAD IMAP_PROTOCOL_ERROR Unrecognized command',
    'BAD IMAP_PROTOCOL_ERROR', 'OK Restarting', 'OK Finished'],
    'NOOP, unknown commands and garbage get BAD, RESTART and EXIT their OK');
is($r->{rc}, 0, '... and the session ends cleanly');

# ---- what is not a folder, kept in replica.db and reported back -------
my $uid = 'fjs9ohlzg88spsk0mehkmhp9';
$r = serve($conf, join('', map { "$_\r\n" }
    'APPLY SUB %(USERID bob MBOXNAME user.bob)',
    "APPLY SEEN %(USERID bob UNIQUEID $uid LASTREAD 1796524922 LASTUID 1 LASTCHANGE 1796524922 SEENUIDS 1)",
    'APPLY SIEVE %(USERID bob FILENAME vacation LAST_UPDATE 1796524900 CONTENT {4+}',
    'keep)',
    'APPLY SIEVE %(USERID bob FILENAME other LAST_UPDATE 1796524901 CONTENT x)',
    'APPLY ACTIVATE_SIEVE %(USERID bob FILENAME vacation)',
    'APPLY QUOTA %(ROOT user.bob LIMITS %(STORAGE 1000))',
    'APPLY ANNOTATION %(MBOXNAME "" ENTRY /motd USERID "" MODSEQ 0 VALUE hello)',
    'APPLY SUB %(USERID bob)', 'APPLY SEEN %(USERID bob UNIQUEID ../x)',
    "APPLY ANNOTATION %(MBOXNAME \"\" ENTRY \"/a\tb\" USERID \"\" VALUE x)",
    'GET META bob', 'EXIT'));
is_deeply(answers($r), [('OK success') x 7,
    'NO IMAP_PROTOCOL_BAD_PARAMETERS SUB without a MBOXNAME',
    'NO IMAP_PROTOCOL_BAD_PARAMETERS SEEN without a UNIQUEID',
    'NO IMAP_PROTOCOL_BAD_PARAMETERS ANNOTATION: MBOXNAME, ENTRY or USERID missing or with a control byte',
    "* SEEN %(UNIQUEID $uid LASTREAD 1796524922 LASTUID 1 LASTCHANGE 1796524922 SEENUIDS 1)",
    '* LSUB (user.bob user.bob.Archive)',
    '* SIEVE %(FILENAME other LAST_UPDATE 1796524901 GUID 11f6ad8ec52a2984abaafd7c3b516503785c2072 ISACTIVE 0)',
    '* SIEVE %(FILENAME vacation LAST_UPDATE 1796524900 GUID ' . sha1_hex('keep') . ' ISACTIVE 1)',
    'OK success', 'OK Finished'],
    'SUB, SEEN, SIEVE, ACTIVATE_SIEVE, QUOTA and ANNOTATION stored, reported as Cyrus reports them; '
    . 'items without their key refused');
ok(-f "$dir/s$n/conf/replica.db", '... in replica.db');
$r = serve($conf, join('', map { "$_\r\n" }
    'APPLY UNSUB %(USERID bob MBOXNAME user.bob)', 'APPLY UNSIEVE %(USERID bob FILENAME other)',
    'APPLY UNACTIVATE_SIEVE %(USERID bob)', 'APPLY UNQUOTA user.bob',
    'APPLY UNANNOTATION %(MBOXNAME "" ENTRY /motd USERID "")', 'GET META bob', 'EXIT'));
is_deeply([grep { /^\* / } @{answers($r)}], ['* SEEN %(UNIQUEID ' . $uid .
    ' LASTREAD 1796524922 LASTUID 1 LASTCHANGE 1796524922 SEENUIDS 1)', '* LSUB (user.bob.Archive)',
    '* SIEVE %(FILENAME vacation LAST_UPDATE 1796524900 GUID ' . sha1_hex('keep') . ' ISACTIVE 0)'],
    'their UN* forms remove them');

# ---- file literals ---------------------------------------------------
my $msg = "From: x\@example.com\r\nSubject: t\r\n\r\nbody\r\n";
my $sha = sha1_hex($msg);
my $other = sha1_hex("something else");
$conf = spool();
$r = serve($conf, "APPLY MESSAGE (%{default $other " . length($msg) . "}\r\n$msg)\r\nNOOP\r\nEXIT\r\n");
is_deeply(answers($r), ['NO IMAP_IOERROR ' . (answers($r)->[0] =~ s/^NO IMAP_IOERROR //r),
    'OK Noop completed', 'OK Finished'], 'a file literal whose SHA-1 is not its GUID is refused');
like(answers($r)->[0], qr/^NO IMAP_IOERROR /, '... with NO');
like($r->{err}, qr/^spool_sync: input at byte \d+: /m, '... and logged');
clean($conf, 'a bad SHA-1');

$r = serve($conf, "APPLY MESSAGE (%{default $sha " . (length($msg) + 1000) . "}\r\n$msg)\r\nEXIT\r\n");
isnt($r->{rc}, 0, 'a file literal longer than what follows ends the session');
clean($conf, 'a truncated literal');

$r = serve($conf, "APPLY MESSAGE (%{default $sha 2147483648}\r\nxxxx");
like($r->{out}, qr/BAD IMAP_PROTOCOL_ERROR input lost/, 'a 2 GB file literal is refused from its header');
isnt($r->{rc}, 0, '... and ends the session');
clean($conf, 'a 2 GB literal');

# ---- names, partitions, uniqueids -------------------------------------
(my $mbox = $bob) =~ s/.*(APPLY MAILBOX %\(UNIQUEID fjs9[^\r]*)\r\n.*/$1/s;
my $apply = sub {
	my ($conf, %set) = @_;
	my $l = $mbox;
	for my $k (keys %set) {
		next if $k eq 'ACL' && $l =~ s/(?<=[ (])ACL "[^"]*"/ACL $set{$k}/;
		$l =~ s/(?<=[ (])$k \S+/$k $set{$k}/;
	}
	# no records: nothing to link
	$l =~ s/ RECORD \(.*\)\)$/ RECORD ())/;
	$l =~ s/ SYNC_CRC \d+ SYNC_CRC_ANNOT \d+/ SYNC_CRC 0 SYNC_CRC_ANNOT 12345678/;
	$l =~ s/ LAST_UID \d+/ LAST_UID 0/;
	return serve($conf, "$l\r\nEXIT\r\n");
};
$conf = spool();
$r = $apply->($conf, MBOXNAME => 'user..bob');
like(answers($r)->[0], qr/^NO IMAP_MAILBOX_BADNAME /, 'a name our rules refuse: IMAP_MAILBOX_BADNAME');
$r = $apply->($conf, PARTITION => 'nosuch');
like(answers($r)->[0], qr/^NO IMAP_PARTITION_UNKNOWN /, 'a partition we lack: IMAP_PARTITION_UNKNOWN');
is_deeply(dump_db($conf), {}, '... and neither made anything');
$r = $apply->($conf);
is(answers($r)->[0], 'OK success', 'an empty user.bob is made');
# An ACL no cyrus.header can hold (an identifier with an 8-bit byte):
# refused as a create or an import refuses it, and nothing changes.
my $acl = dump_db($conf)->{'user.bob'}{acl};
my $lit = "bob\tlrswipkxtecdan\t\xe9ve\tlr\t";
$r = $apply->($conf, ACL => '{' . length($lit) . "+}\r\n$lit");
like(answers($r)->[0], qr/^NO /, 'an ACL identifier a header cannot hold: NO') or diag($r->{out}, $r->{err});
like($r->{err}, qr/needs a literal|cannot hold|8-bit/i, '... saying why') or diag($r->{err});
is_deeply(dump_db($conf)->{'user.bob'}{acl}, $acl, '... and the ACL is unchanged');
$r = serve($conf, "GET MAILBOXES (user.bob)\r\nEXIT\r\n");
like($r->{out}, qr/ACL "bob\tlrswipkxtecdan\t"/, '... as the replica reports it');
$r = $apply->($conf, UNIQUEID => 'aaaaaaaaaaaaaaaaaaaaaaaa');
like(answers($r)->[0], qr/^NO IMAP_MAILBOX_MOVED /, 'its name with another uniqueid: IMAP_MAILBOX_MOVED');
$r = $apply->($conf, MBOXNAME => 'user.bob.Other');
like(answers($r)->[0], qr/^NO IMAP_MAILBOX_MOVED /, 'its uniqueid under another name: IMAP_MAILBOX_MOVED');
$db = dump_db($conf);
is_deeply([sort keys %$db], ['user.bob'], '... and neither changed anything');
is($db->{'user.bob'}{uniqueid}, 'fjs9ohlzg88spsk0mehkmhp9', '... user.bob keeps its uniqueid');
# idspool's extension: RENAME and UNMAILBOX that name the uniqueid meant
$r = serve($conf, "APPLY RENAME %(OLDMBOXNAME user.bob NEWMBOXNAME user.bob2 PARTITION default " .
    "UIDVALIDITY 1 UNIQUEID aaaaaaaaaaaaaaaaaaaaaaaa)\r\n" .
    "APPLY UNMAILBOX %(UNIQUEID aaaaaaaaaaaaaaaaaaaaaaaa MBOXNAME user.bob)\r\nEXIT\r\n");
like(answers($r)->[0], qr/^NO IMAP_MAILBOX_MOVED /, 'RENAME of a name that holds another uniqueid: IMAP_MAILBOX_MOVED');
like(answers($r)->[1], qr/^NO IMAP_MAILBOX_MOVED /, 'UNMAILBOX of a name that holds another uniqueid: IMAP_MAILBOX_MOVED');
is_deeply([sort keys %{dump_db($conf)}], ['user.bob'], '... and neither changed anything');
$r = serve($conf, "APPLY UNMAILBOX %(UNIQUEID fjs9ohlzg88spsk0mehkmhp9 MBOXNAME user.bob)\r\n" .
    "APPLY UNMAILBOX %(UNIQUEID fjs9ohlzg88spsk0mehkmhp9 MBOXNAME user.bob)\r\n" .
    "APPLY UNMAILBOX user.nosuch\r\nEXIT\r\n");
is_deeply(answers($r), ['OK success', 'OK success', 'OK success', 'OK Finished'],
    'UNMAILBOX by uniqueid, again (done already), and by name of none');
like(dump_db($conf)->{'user.bob'}{mbtype}, qr/d/, 'a deleted folder leaves a tombstone');
$r = $apply->($conf, UNIQUEID => 'aaaaaaaaaaaaaaaaaaaaaaaa');
is(answers($r)->[0], 'OK success', 'another user.bob is made at the name');
$r = serve($conf, "GET UNIQUEIDS (fjs9ohlzg88spsk0mehkmhp9)\r\nEXIT\r\n");
is_deeply(answers($r), ['OK success', 'OK Finished'],
    'GET UNIQUEIDS of the deleted uniqueid reports nothing (not the new folder at its name)');
$r = serve($conf, "APPLY UNMAILBOX user.bob\r\nEXIT\r\n");
clean($conf, 'names and uniqueids');

# ---- the session cut at every byte offset ----------------------------
my @bad;
my $full = dump_db(do { my $c = spool(); serve($c, $bob); $c });
sub cut_at {
	my ($cut) = @_;
	my $c = spool();
	$r = serve($c, substr($bob, 0, $cut));
	my $a = run('spool_audit', '-C', $c);
	push @bad, "cut at $cut: audit $a->{rc}: $a->{out}" if $a->{rc};
	push @bad, "cut at $cut: staging left" if staging_left($c);
	# the whole session after the cut converges on the same folders
	$r = serve($c, $bob);
	my $db = dump_db($c);
	push @bad, "cut at $cut: retry exit $r->{rc}" if $r->{rc};
	my @no = grep { !/^(OK|\* )/ } @{answers($r)};
	push @bad, "cut at $cut: retry answered @no" if @no;
	push @bad, "cut at $cut: other folders" unless join(',', map { "$_=$db->{$_}{uniqueid}" }
	    sort keys %$db) eq join(',', map { "$_=$full->{$_}{uniqueid}" } sort keys %$full);
	remove_tree("$dir/s$n");
}
for (my $cut = 0; $cut < length($bob); $cut += 53) {
	cut_at($cut);
}
is_deeply(\@bad, [], 'a session cut every 53 bytes leaves a clean spool, and the retry converges');
# and at random bytes (inside literals, line ends, numbers): the seed is
# printed, IDS_CUT_SEED replays it
my $seed = $ENV{IDS_CUT_SEED} // time() ^ $$;
srand($seed);
cut_at(int(rand(length($bob)))) for 1 .. 12;
is_deeply(\@bad, [], "... and at 12 random bytes (IDS_CUT_SEED=$seed)");

done_testing;
