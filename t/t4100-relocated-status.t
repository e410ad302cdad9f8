#!/usr/bin/perl
# t4100-relocated-status.t - what relocated says about what went wrong,
# as an administrator meets it: `relocated -s` lists every failure
# record exactly (values are read by their length, never as C
# strings: names in a domain, modified UTF-7 names, records holding
# control and 8-bit bytes, a record without a time), one reason per
# folder when every folder fails the same way (EMFILE, with what to do
# about it; spool_audit and reconstruct stop with that advice instead
# of calling files unreadable or skipping folders), and an index whose
# header fails its checks counted as a finding, never summed into
# "files left".
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Compress::Zlib ();
use JSON::PP;
use Test::More;
use IdsTest;
use LegacySpool;

my $base = fast_dir('t4100') // scratch();
my $all_err = '';

sub rel {
	my ($conf, @args) = @_;
	my $r = run('relocated', '-C', $conf, @args);
	$all_err .= $r->{err};
	return $r;
}

sub uid { return sprintf('b0000000-0000-4000-8000-%012d', $_[0]); }

sub status {
	my ($conf) = @_;
	my $r = rel($conf, '-s', '--json');
	return (eval { decode_json($r->{out}) } || {}, $r);
}

# ---- failure records, listed exactly ---------------------------------

{
	my $w = "$base/fail";
	my $conf = write_conf($w, relocated_io_pressure => 0);
	# The length of a record's value decides what LMDB puts right after
	# it: a name in a domain and one outside differ in parity, so one of
	# them is followed by the next node's bytes, whatever the scratch path.
	my @bad = ('user.ann.Bad', 'example.org!user.kim.Bad', 'user.ann.&ZeVnLIqe-',
	    'example.org!user.kim.&ZeVnLIqe-', 'user.ann.Caf&AOk-');
	my @f = (map { { name => $bad[$_], msgs => 2, uniqueid => uid($_ + 1) } } 0 .. $#bad);
	push @f, { name => 'user.ann', msgs => 1, uniqueid => uid(10) },
	    { name => 'example.org!user.kim', msgs => 1, uniqueid => uid(11) },
	    { name => 'user.zed', msgs => 1, uniqueid => uid(12) },
	    { name => 'user.zed.Two', msgs => 1, uniqueid => uid(13) };
	add_folders($conf, @f);
	my @dirs = resolve($conf, 0, @bad);
	symlink('1.', "$_/3.") or die "symlink: $!" for @dirs;
	my %shown = ('user.ann.Bad' => 'user/ann/Bad', 'example.org!user.kim.Bad' => 'user/kim/Bad@example.org',
	    'user.ann.&ZeVnLIqe-' => 'user/ann/&ZeVnLIqe-',
	    'example.org!user.kim.&ZeVnLIqe-' => 'user/kim/&ZeVnLIqe-@example.org',
	    'user.ann.Caf&AOk-' => 'user/ann/Caf&AOk-');
	my %why = map { ($shown{$bad[$_]} => "$dirs[$_]/3.: symlink in the folder; not migrated") } 0 .. $#bad;
	my $r = rel($conf, '-1', '-q', '--grace', '0', '-u', 'ann');
	is($r->{rc}, 1, 'a pass with failed folders exits 1');
	$r = rel($conf, '-1', '-q', '--grace', '0', '-u', 'kim@example.org');
	is($r->{rc}, 1, '... and so does one over the domain');

	$r = rel($conf, '-s');
	is($r->{rc}, 0, '-s exits 0');
	like($r->{out}, qr/^failed folders: 5$/m, '-s counts five failed folders');
	my %listed = map { /^  (\S+) \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\): (.*)$/ ? ($1 => $2) : () }
	    split /\n/, $r->{out};
	is_deeply(\%listed, \%why, '-s lists each of them with its reason, exactly: no byte read past a record')
	    or diag($r->{out});
	my ($st) = status($conf);
	is(scalar @{ $st->{failures} // [] }, 5, '-s --json lists all five');
	is_deeply({ map { ($_->{name} => $_->{reason}) } @{ $st->{failures} // [] } }, \%why,
	    '-s --json: the same names and reasons');

	# Hostile records planted beside the real ones: control and 8-bit
	# bytes, no time at all.  Listed, each on one line, bytes escaped.
	my $dump = "VERSION=3\nformat=print\ntype=btree\nHEADER=END\n"
	    . ' F' . uid(12) . "\n 1700000000 user.zed: bad\\01\\ffbytes\\0a\\1b[2J\n"
	    . ' F' . uid(13) . "\n no time here\n"
	    . "DATA=END\n";
	spew("$w/planted", $dump);
	system('mdb_load', '-n', '-f', "$w/planted", "$w/conf/mailboxes.db") == 0 or die 'mdb_load';
	$r = rel($conf, '-s');
	like($r->{out}, qr/^failed folders: 7$/m, 'planted records: seven failed folders');
	like($r->{out}, qr{^  user/zed \(2023-11-14 22:13:20 UTC\): bad\\x01\\xffbytes\\x0a\\x1b\[2J$}m,
	    '... control and 8-bit bytes are shown escaped, on one line');
	like($r->{out}, qr{^  user/zed/Two \(1970-01-01 00:00:00 UTC\): no time here$}m,
	    '... a record without a time is listed, not dropped');
	($st, $r) = status($conf);
	is($r->{rc}, 0, '-s --json with the planted records exits 0');
	is(scalar @{ $st->{failures} // [] }, 7, '... and lists all seven');
}

# ---- EMFILE: one reason per folder -----------------------------------

{
	my $w = "$base/emfile";
	my $conf = write_conf($w, relocated_io_pressure => 0);
	add_folders($conf, map { { name => "user.u$_", msgs => 3, uniqueid => uid(100 + $_) } } 1 .. 8);
	my $rel = tool('relocated');
	my @vg = valgrind($rel);
	# valgrind needs descriptors of its own: the limit is lower without it.
	my $lim = @vg ? 28 : 12;
	my $under = sub { run(nofile($_[0], @vg, $rel, '-C', $conf, '-1', '-q', '--grace', '0')) };
	my $pat = qr{^relocated: user/u\d: \Q$w\E/[^:\s]+: Too many open files; raise the limit of open files \(ulimit -n, or LimitNOFILE= in relocated\.service\)$};
	# Around that limit each open meets it in another place (the header
	# read, a directory, a lock file, a new file): whichever it is, the
	# folder's line names a path.  Run before the counted case, on the
	# same legacy folders (a folder that migrates at a higher limit is
	# put back by the next write_conf below).
	my @shapes;
	for my $l ($lim - 3 .. $lim + 5) {
		my $t = "$base/emfile-$l";
		my $c = write_conf($t, relocated_io_pressure => 0);
		add_folders($c, map { { name => "user.u$_", msgs => 3, uniqueid => uid(100 + $_) } } 1 .. 8);
		my $s = run(nofile($l, @vg, $rel, '-C', $c, '-1', '-q', '--grace', '0'));
		my $p = qr{^relocated: user/u\d: \Q$t\E/[^:\s]+: Too many open files; raise the limit of open files \(ulimit -n, or LimitNOFILE= in relocated\.service\)$};
		push @shapes, "ulimit -n $l: rc $s->{rc}: $_" for grep { /^relocated: user\// && !/$p/ } split /\n/, $s->{err};
		# ... and never another folder's (a detail left by the member
		# before in the batch, read again for a bare errno).
		push @shapes, "ulimit -n $l: another's path: $_"
		    for grep { m{^relocated: user/(u\d): .*/user/(u\d)\b} && $1 ne $2 } split /\n/, $s->{err};
		push @shapes, "ulimit -n $l: exit $s->{rc}" if $s->{rc} != 0 && $s->{rc} != 1;
	}
	is(join("\n", @shapes), '', "ulimit -n " . ($lim - 3) . ' to ' . ($lim + 5) . ': every failed folder names a path, its own, exit 0 or 1');
	my $r = $under->($lim);
	$all_err .= $r->{err};
	is($r->{rc}, 1, "ulimit -n $lim: the folders fail, exit 1");
	# Which open meets the limit first depends on what the pass still
	# holds at that moment (a status write every 2 s, old names kept
	# until the grace ends): the spool, a user's directory or a lock
	# file.  Each line names that one path and the one reason.
	my @lines = grep { /^relocated: user\/u\d: / } split /\n/, $r->{err};
	ok(@lines >= 4, scalar(@lines) . ' folders failed with too many open files');
	my @bad = grep { !/$pat/ } @lines;
	is("@bad", "", "... each with one path and one reason, and what to do about it") or diag($r->{err});
	$r = rel($conf, '-s');
	my @rec = grep { /^  user\/u\d / } split /\n/, $r->{out};
	is(scalar @rec, scalar @lines, '-s lists each of those failures');
	@bad = grep { !m{\): \Q$w\E/[^:\s]+: Too many open files; raise the limit of open files \(ulimit -n, or LimitNOFILE= in relocated\.service\)$} } @rec;
	is("@bad", '', '... with that one reason, as recorded');
	$r = rel($conf, '-1', '-q', '--grace', '0');
	is($r->{rc}, 0, 'with the usual limit they migrate') or diag($r->{err});
}

# ---- EMFILE in spool_audit and reconstruct: what to do, no false finding

{
	my $w = "$base/emfile2";
	my $conf = write_conf($w, relocated_io_pressure => 0);
	add_folders($conf, map { { name => "user.v$_", msgs => 3, uniqueid => uid(300 + $_) } } 1 .. 8);
	my ($aud, $rc) = (tool('spool_audit'), tool('reconstruct'));
	my $r = run(nofile(7, $aud, '-C', $conf, '-j', '1'));
	$all_err .= $r->{err};
	is($r->{rc}, 3, 'spool_audit out of descriptors: exit 3, an error of the audit');
	like($r->{err}, qr{\Aspool_audit: \S+: user\.v\d: Too many open files; raise the limit of open files \(ulimit -n\) and audit again\n\z},
	    '... saying to raise the limit');
	unlike($r->{out}, qr/expected a readable|folder-missing/, '... and no file called unreadable for it');
	$r = run(nofile(5, $aud, '-C', $conf, '-j', '1'));
	$all_err .= $r->{err};
	is("$r->{rc} $r->{out}", '3 ', '... the same when the partition root cannot be opened: no folder "absent"');
	like($r->{err}, qr{\Aspool_audit: \S+: \Q$w\E/spool: Too many open files; raise the limit of open files \(ulimit -n\) and audit again\n\z},
	    '... naming the root');
	$r = run(nofile(9, $rc, '-C', $conf, '-m', '-n', '-q'));
	$all_err .= $r->{err};
	is($r->{rc}, 3, 'reconstruct out of descriptors: exit 3, the scan stopped');
	like($r->{err}, qr{\Areconstruct: \Q$w\E/spool/\S+: Too many open files; raise the limit of open files \(ulimit -n\) and run it again\n}m,
	    '... saying to raise the limit, not skipping folders');
	unlike($r->{err}, qr/skipped|registered with/, '... no folder skipped or registered without its index');
	is(run('spool_audit', '-C', $conf)->{rc}, 0, 'with the usual limit the audit is clean');
}

# ---- an index that fails its checks is a finding ---------------------

{
	my $w = "$base/index";
	my $conf = write_conf($w, relocated_io_pressure => 0);
	add_folders($conf, { name => 'user.ix', msgs => 2, uniqueid => uid(200) },
	    { name => 'user.ix.Bad', msgs => 3, uniqueid => uid(201) },
	    { name => 'user.ix.Short', msgs => 3, uniqueid => uid(202) });
	my ($bad, $short) = resolve($conf, 0, 'user.ix.Bad', 'user.ix.Short');
	my $b = slurp("$bad/cyrus.index");
	substr($b, 20, 4) = pack('N', 0xffffffff);
	substr($b, 156, 4) = pack('N', Compress::Zlib::crc32(substr($b, 0, 156)));
	spew("$bad/cyrus.index", $b);
	spew("$short/cyrus.index", substr(slurp("$short/cyrus.index"), 0, 10));
	my $r = rel($conf, '-s');
	is($r->{rc}, 0, '-s with two bad indexes exits 0');
	like($r->{out}, qr/^files left: 2 /m, 'files left counts only the readable index (2, not 4294967297)');
	like($r->{out}, qr/^unreadable indexes: 2 legacy folders, not counted above:$/m,
	    'the bad indexes are counted as findings');
	like($r->{out}, qr{^  user/ix/Bad: \Q$bad\E/cyrus\.index: num_records 4294967295 \(byte 20\) .*beyond the end of the file}m,
	    '... each named, with why: the record count');
	like($r->{out}, qr{^  user/ix/Short: \Q$short\E/cyrus\.index: 10 bytes, too short for a header$}m,
	    '... and the truncated one');
	my ($st) = status($conf);
	is_deeply([$st->{files_left}, $st->{unreadable_indexes}, scalar @{ $st->{bad_indexes} // [] }],
	    [2, 2, 2], '-s --json: files_left 2, unreadable_indexes 2, both listed');
}

unlike($all_err, qr/runtime error|AddressSanitizer|LeakSanitizer/, 'no sanitizer spoke');
done_testing();
