#!/usr/bin/perl
# t3000-mkspool.t - the legacy spool generator: determinism, index and
# GUID checks from first principles, header formats, mailboxes.db names,
# metapartitions, hashing options, several partitions, refusal of a
# non-empty partition, usage.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Compress::Raw::Zlib ();
use Digest::SHA qw(sha1 sha1_hex);
use File::Find;
use File::Path qw(make_path);
use JSON::PP;
use Test::More;
use IdsTest;

my $dir = scratch();
my $all_err = '';
my $MAGIC = "\241\002\213\015Cyrus mailbox header\n";
my ($EXPUNGED, $UNLINKED) = (1 << 31, 1 << 30);

# A spool in $dir/$name with its own configuration; returns (run, conf, root).
sub gen {
	my ($name, $args, %conf) = @_;
	make_path("$dir/$name");
	my $conf = write_conf("$dir/$name", %conf);
	my $r = run('mkspool', '-C', $conf, @$args);
	$all_err .= $r->{err} if $r->{rc} == 0;
	return ($r, $conf, "$dir/$name");
}

# relative path => sha1 (files), "dir" (directories), for a whole tree.
sub tree {
	my ($root) = @_;
	my %t;
	find({ no_chdir => 1, wanted => sub {
		(my $rel = $File::Find::name) =~ s{^\Q$root\E/?}{};
		$t{$rel} = -d $_ ? 'dir' : sha1_file($_);
	} }, $root);
	return \%t;
}

sub files_named {
	my ($root, $name) = @_;
	my @f;
	find({ no_chdir => 1, wanted => sub {
		push @f, $File::Find::name if -f $_ && m{/\Q$name\E$};
	} }, $root);
	@f = sort @f;
	return @f;
}

sub crc { return Compress::Raw::Zlib::crc32($_[0]); }

# Checks one cyrus.index (version 17) against its folder; returns a list
# of problems, and adds to the counts in %$n.
sub check_index {
	my ($index, $datadir, $n) = @_;
	my $img = slurp($index);
	my @h = unpack('N40', substr($img, 0, 160));
	my @bad;
	return ("$index: short header") if length($img) < 160;
	push @bad, "$index: minor $h[2]" if $h[2] != 17;
	push @bad, "$index: geometry" if $h[3] != 160 || $h[4] != 112 ||
	    length($img) != 160 + 112 * $h[5];
	push @bad, "$index: header crc" if crc(substr($img, 0, 156)) != $h[39];
	(my $hdr = $index) =~ s{cyrus\.index$}{cyrus.header};
	push @bad, "$index: header_file_crc" if -f $hdr && crc(slurp($hdr)) != $h[24];
	my ($exists, $last) = (0, 0);
	for my $i (0 .. $h[5] - 1) {
		my $rec = substr($img, 160 + 112 * $i, 112);
		my ($uid) = unpack('N', $rec);
		my $flags = unpack('N', substr($rec, 32, 4));
		my $guid = substr($rec, 60, 20);
		push @bad, "$index: record $i crc" if crc(substr($rec, 0, 108)) !=
		    unpack('N', substr($rec, 108, 4));
		push @bad, "$index: uid $uid not rising" if $uid <= $last;
		$last = $uid;
		$exists++ unless $flags & $EXPUNGED;
		$n->{records}++;
		$n->{expunged}++ if ($flags & $EXPUNGED) && !($flags & $UNLINKED);
		my $file = "$datadir/$uid.";
		if ($flags & $UNLINKED) {
			$n->{unlinked}++;
			push @bad, "$file: unlinked but present" if -e $file;
			next;
		}
		if (!-f $file) { push @bad, "$file: missing"; next; }
		push @bad, "$file: GUID is not its SHA-1" if sha1(slurp($file)) ne $guid;
		$n->{files}++;
	}
	push @bad, "$index: exists $h[21], counted $exists" if $h[21] != $exists;
	push @bad, "$index: last_uid below the last record" if $h[7] < $last;
	return @bad;
}

sub mdb_keys {
	my ($root) = @_;
	my $out = `mdb_dump -n -p '$root/conf/mailboxes.db' 2>&1`;
	return $out;
}

{
	pass('mkspool is built');
}

# --- a tiny spool, twice from one seed, once from another --------------------

my ($r, $conf, $a) = gen('a', ['-s', '42', '--json']);
is($r->{rc}, 0, 'a tiny spool is written') or diag($r->{err});
my $sum = eval { decode_json($r->{out}) } // {};
is($sum->{messages}, 100, 'the summary counts 100 messages');
is($sum->{folders}, 30, 'and 30 folders');
cmp_ok($sum->{bytes} // 0, '>', 100_000, 'of realistic sizes');
is($sum->{partitions}{default}{messages}, 100, 'per partition too');

my ($r2, undef, $b) = gen('b', ['-s', '42']);
is($r2->{rc}, 0, 'the same seed again, elsewhere');
is($r2->{out}, '', 'quiet without --json');
is_deeply(tree("$b/spool"), tree("$a/spool"), 'the same seed gives the same spool');
is(mdb_keys($b), mdb_keys($a), 'and the same mailboxes.db records');
my (undef, undef, $c) = gen('c', ['-s', '43']);
isnt(join(',', sort values %{tree("$c/spool")}), join(',', sort values %{tree("$a/spool")}),
    'another seed gives another spool');

# --- every index, every GUID ------------------------------------------------

my %n;
my @bad;
my @indexes = files_named("$a/spool", 'cyrus.index');
is(scalar(@indexes), 30, 'one cyrus.index per folder');
for my $index (@indexes) {
	(my $d = $index) =~ s{/cyrus\.index$}{};
	push @bad, check_index($index, $d, \%n);
	my $cache = slurp("$d/cyrus.cache");
	push @bad, "$d: cyrus.cache does not start with the generation"
	    if length($cache) < 4 || substr($cache, 0, 4) ne substr(slurp($index), 0, 4);
}
is_deeply(\@bad, [], 'every index parses, CRCs and GUIDs match their files');
is($n{records}, 100, 'the indexes hold the 100 records');
cmp_ok($n{expunged} // 0, '>=', 1, 'some records are expunged with the file kept');
cmp_ok($n{unlinked} // 0, '>=', 1, 'some are expunged and unlinked, file gone');
is($n{files} + ($n{unlinked} // 0), 100, 'every other record has its file');

my (@old, @new);
for my $h (files_named("$a/spool", 'cyrus.header')) {
	my $t = slurp($h);
	next unless substr($t, 0, length $MAGIC) eq $MAGIC;
	my @l = split /\n/, $t;
	if ($l[3] =~ /^%\(T e N /) { push @new, $h } else { push @old, $h }
}
cmp_ok(scalar(@new), '>', scalar(@old), 'most headers are in the 3.6 format');
cmp_ok(scalar(@old), '>=', 1, 'some are in the <= 3.4 three-line format');
is(scalar(@new) + scalar(@old), 30, 'every header has the magic');

my @links = grep { -f $_ && (stat $_)[3] > 1 } map { glob("$_/*.") }
    map { (my $d = $_) =~ s{/cyrus\.index$}{}; $d } @indexes;
cmp_ok(scalar(@links), '>=', 2, 'a copy is hard-linked (single-instance store)');

# --- names ------------------------------------------------------------------

my $db = mdb_keys($a);
like($db, qr/^ Nexample\.com\\1duser\\1fjohn\.doe$/m, 'a user with a domain and a dot');
like($db, qr/^ Nexample\.com\\1duser\\1fjohn\.doe\\1fMailing Lists$/m, 'a name with a space');
like($db, qr/^ N[^\n]*\\1f&AOQ-rger$/m, 'a modified UTF-7 name');
like($db, qr/^ N[^\n]*\\1fRechnungen &- Belege$/m, "a name with '&-'");
like($db, qr/^ N[^\n]*\\1fRelease 2\.0$/m, 'a dot inside a folder name');
like($db, qr/^ Nexample\.com\\1dDELETED\\1fuser\\1fjohn\.doe\\1fOld Stuff\\1f[0-9A-F]{8}$/m,
    'a DELETED folder');
like($db, qr/^ Nuser\\1f[^\\\n]+$/m, 'a user without a domain');
like($db, qr/^ Nshared$/m, 'a shared folder');
like($db, qr/\\1fClients\\1fAcme Corp$/m, 'a folder five levels below INBOX');
like($db, qr/%\(T edl I /, 'a tombstone where a folder was');
like($db, qr/ H \(%\(N /, 'with the name history in the I record');
my @types = $db =~ /^ %\(T (e[a-z]*) I /mg;
my @live = grep { !/d/ } @types;
cmp_ok(scalar(@live), '>=', 30, 'every folder has its entry');
is(scalar(grep { $_ ne 'el' } @live), 0, 'every live entry is flagged legacy');
like($db, qr/^ I[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/m, 'UUID ids');
like($db, qr/^ I[0-9a-z]{24}$/m, '24-character ids');
like($db, qr/^ I[0-9a-f]{16}$/m, '16-hex Cyrus 2.x ids');
ok(-d "$a/spool/domain/e/example.com/j/user/john^doe/Projects/2023/Q1/Clients/Acme Corp",
    'children live inside their parent (legacy, hashed)');

{
	my $d = run('ctl_mboxlist', '-C', $conf, '-d');
	is($d->{rc}, 0, 'ctl_mboxlist dumps the generated mailboxes.db') or diag($d->{err});
	my $json = eval { decode_json($d->{out}) } // {};
	is($json->{'example.com!user.john^doe'}{mbtype}, 'el', 'and reads the entries back');
}

# --- layout options ---------------------------------------------------------

my ($rm, undef, $m) = gen('meta', ['-s', '7'],
    'metapartition-default' => "$dir/meta/meta", metapartition_files => 'header index');
is($rm->{rc}, 0, 'a spool with a metapartition') or diag($rm->{err});
is(scalar(files_named("$m/meta", 'cyrus.header')), 30, 'headers on the metapartition');
is(scalar(files_named("$m/meta", 'cyrus.index')), 30, 'indexes too');
is(scalar(files_named("$m/spool", 'cyrus.header')) + scalar(files_named("$m/spool", 'cyrus.index')),
    0, 'none left on the data partition');
is(scalar(files_named("$m/spool", 'cyrus.cache')), 30, 'cyrus.cache stays with the data');
is(scalar(grep { m{/\d+\.$} } keys %{tree("$m/meta")}), 0, 'no message file on the metapartition');

my ($rh, undef, $h) = gen('nohash', ['-s', '42'], hashimapspool => 'no');
is($rh->{rc}, 0, 'a spool without hashimapspool');
ok(-d "$h/spool/domain/example.com/user/john^doe/Sent", 'unhashed legacy paths');
my ($rf, undef, $f) = gen('full', ['-s', '42'], fulldirhash => 'yes');
is($rf->{rc}, 0, 'a spool with fulldirhash');
ok((grep { -d $_ } glob("$f/spool/domain/[A-W]/example.com/[A-W]/user/john^doe")),
    'full-hash directories');

my ($rp, undef, $p) = gen('parts', ['-s', '5', '--json', '-u', '8', '-f', '60', '-m', '300'],
    'partition-p2' => "$dir/parts/p2");
is($rp->{rc}, 0, 'a spool over two partitions') or diag($rp->{err});
my $ps = eval { decode_json($rp->{out}) } // {};
cmp_ok($ps->{partitions}{default}{folders} // 0, '>', 0, 'folders on the default partition');
cmp_ok($ps->{partitions}{p2}{folders} // 0, '>', 0, 'and on the second');
is(($ps->{partitions}{default}{messages} // 0) + ($ps->{partitions}{p2}{messages} // 0),
    300, 'all messages accounted for');

# --- refusals and usage -----------------------------------------------------

my $again = run('mkspool', '-C', "$a/imapd.conf", '-s', '42');
is($again->{rc}, 3, 'a non-empty partition is refused');
like($again->{err}, qr{^mkspool: \Q$a\E/spool: partition is not empty}m, 'saying why');
my $forced = run('mkspool', '-C', "$a/imapd.conf", '-s', '42', '--force');
is($forced->{rc}, 0, '--force writes into it') or diag($forced->{err});
is_deeply(tree("$a/spool"), tree("$b/spool"), 'the same spool again');

is(run('mkspool', '--help')->{rc}, 0, '--help');
like(run('mkspool', '--help')->{out}, qr/^usage: mkspool -C conf /, 'prints the synopsis');
like(run('mkspool', '--version')->{out}, qr/^mkspool \(idspool\) /, '--version');
my $u = run('mkspool', '--size', 'enormous');
is($u->{rc}, 2, 'a bad size is a usage error');
like($u->{err}, qr/^mkspool: --size: 'enormous'/m, 'naming it');
my $few = run('mkspool', '-C', "$dir/full/imapd.conf", '-u', '10', '-f', '5');
is($few->{rc}, 2, 'fewer folders than users is refused');
is(run('mkspool', '-C', "$dir/nonexistent.conf")->{rc}, 3, 'a missing configuration');

is($all_err, '', 'successful runs print nothing on stderr');

done_testing();
