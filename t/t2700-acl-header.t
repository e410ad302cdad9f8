#!/usr/bin/perl
# t2700-acl-header.t - what a cyrus.header can hold, as an administrator
# meets it: an ACL that no cyrus.header could hold (an identifier or a
# right that would need a literal, or too many entries for the 1 MiB the
# header reader takes) is refused at the door, by the import and by a
# rename, naming the entry and why; the writer never writes a header
# its own reader refuses; and a large ACL costs time in proportion to
# its size, from the import through the walker, the audit, the dump and
# a rebuilt mailboxes.db (90,000 entries took the walker 230 s when
# each entry was looked up among those before it), as does a header of
# many keys.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);
use IdsTest;
use LegacySpool;
use Torture ();

my $base = fast_dir('t2700') // scratch();
my $all_err = '';
my $j = JSON::PP->new->canonical;

sub uid { return sprintf('c0000000-0000-4000-8000-%012d', $_[0]); }
sub acl_of { my ($n, $fmt) = @_; return { map { (sprintf($fmt // 'u%06d', $_) => 'lrs') } 1 .. $n }; }
sub tool_run {
	my $r = run(@_);
	$all_err .= $r->{err};
	return $r;
}
sub dump_of {
	my ($name, $id, $acl) = @_;
	return "{\n" . $j->encode($name) . ': ' . $j->encode({ uniqueid => $id,
	    partition => 'default', mbtype => 'e', uidvalidity => '7', acl => $acl }) . "\n}\n";
}

# ---- refused at the door: import -------------------------------------

my $w = "$base/door";
my $conf = write_conf($w);
my @refused = (
	['an 8-bit identifier', { "caf\xc3\xa9" => 'lrs' },
	    "ACL entry 1, identifier 'caf\\xc3\\xa9': 8-bit byte 0xc3 at byte 3: a cyrus.header cannot hold it (it would need a literal)"],
	['a quote in the rights', { anne => 'lr"s' },
	    "ACL entry 1, rights 'lr\"s' of 'anne': '\"' at byte 2: a cyrus.header cannot hold them (they would need a literal)"],
	['a % in an identifier', { 'x%y' => 'lrs' },
	    "ACL entry 1, identifier 'x%y': '%' at byte 1: a cyrus.header cannot hold it (it would need a literal)"],
	['an identifier of 1024 bytes', { 'a' x 1024 => 'lrs' },
	    "ACL entry 1, identifier '" . ('a' x 121) . "...': 1024 bytes long (at most 1023): a cyrus.header cannot hold it (it would need a literal)"],
	['70,000 entries', acl_of(70000),
	    "its cyrus.header would be 840175 bytes (70000 ACL entries, 0 history items), over the 786432 a folder's record may fill"],
);
for my $c (@refused) {
	my ($what, $acl, $why) = @$c;
	my $r = tool_run('ctl_mboxlist', '-C', $conf, '-u', stdin => dump_of('user.x', uid(1), $acl));
	is($r->{rc}, 1, "import of $what: exit 1");
	is($r->{err}, "ctl_mboxlist: stdin:2: user.x: $why\nctl_mboxlist: stdin: 1 problem found; nothing imported\n",
	    '... naming the entry and why');
}
is(tool_run('ctl_mboxlist', '-C', $conf, '-l')->{out}, '', 'nothing was imported');

# ---- refused at the door: rename ---------------------------------------

# 12 bytes an entry ("u000001 lrs "), 175 for the rest: the largest ACL
# a record may carry, which a rename makes one history item too long.
my $fit = int((786432 - 175) / 12);
my $r = tool_run('ctl_mboxlist', '-C', $conf, '-u', stdin => dump_of('user.y', uid(2), acl_of($fit)));
is($r->{rc}, 0, "an ACL of $fit entries fits") or diag($r->{err});
$r = tool_run('ctl_mboxlist', '-C', $conf, '-u', stdin => dump_of('user.y', uid(2), acl_of($fit + 1)));
like($r->{err}, qr/would be 786439 bytes \(\Q@{[$fit + 1]}\E ACL entries/, '... and one more does not');
$r = tool_run('ctl_rename', '-C', $conf, 'user/y', 'user/z');
is($r->{rc}, 1, 'a rename that would make its header too long: exit 1');
like($r->{err}, qr{\Actl_rename: user/y -> user/z: user\.z: its cyrus\.header would be 7864\d\d bytes \($fit ACL entries, 1 history items\), over the 786432 a folder's record may fill\n\z},
    '... naming the folder and the size');
is($r->{out}, '', '... with nothing reported as done');
like(tool_run('ctl_mboxlist', '-C', $conf, '-l')->{out}, qr{^user/y\t}m, '... and the folder keeps its name');
$r = tool_run(Torture::helper_path(), 'recover', '-C', $conf);
is("$r->{rc} $r->{err}", '0 ', '... with no intent left behind');

# ---- the writer never writes what its reader refuses -------------------

{
	my $w2 = "$base/writer";
	my $c2 = write_conf($w2, relocated_io_pressure => 0);
	# A header whose keys of a newer Cyrus take 400 KB, beside an ACL
	# that mailboxes.db may carry: together over 1 MiB.
	my $extra = join(' ', map { sprintf('X%04d %s', $_, 'v' x 1000) } 1 .. 400);
	add_folders($c2, { name => 'user.wide', msgs => 2, uniqueid => uid(3), acl => acl_of(60000),
	    header => "%(N user.wide I " . uid(3) . " $extra T e)\n" });
	my ($dir) = resolve($c2, 0, 'user.wide');
	my $before = slurp("$dir/cyrus.header");
	$r = tool_run('relocated', '-C', $c2, '-1', '-q', '--grace', '0');
	is($r->{rc}, 1, 'relocated: a header that would be over 1 MiB: exit 1');
	like($r->{err}, qr{\Arelocated: user/wide: cyrus\.header of user\.wide: 1\d{6} bytes \(60000 ACL entries, 0 user flags, 0 history items\), over the 1048576 bytes a cyrus\.header may have\n\z},
	    '... naming the folder and the size');
	like(tool_run('ctl_mboxlist', '-C', $c2, '-l')->{out}, qr{^user/wide\t\S+\tlegacy}m,
	    '... the folder stays where it was');
	is(-e "$dir/cyrus.header" ? slurp("$dir/cyrus.header") : '', $before, '... its header untouched');
	$r = tool_run('spool_audit', '-C', $c2);
	is($r->{rc}, 0, '... and the audit reads it') or diag($r->{out});
	like(tool_run('relocated', '-C', $c2, '-s')->{out}, qr{^  user/wide \([^)]*\): cyrus\.header of user\.wide: 1\d{6} bytes}m,
	    '... recorded as its failure');
}

# ---- a large ACL costs time in proportion to its size -------------------

# Each step at 2,000 and at 40,000 entries: 20 times the entries may
# cost at most 20 times the time (plus two seconds of noise), where a
# search of the entries before each one costs 400 times.
sub large {
	my ($n, $tag) = @_;
	my $w3 = "$base/large$n";
	my $c3 = write_conf($w3, relocated_io_pressure => 0);
	my %t;
	my $t0 = time;
	add_folders($c3, { name => 'user.big', msgs => 3, uniqueid => uid(10 + $n), acl => acl_of($n, 'user%06d') });
	$t{import} = time - $t0;
	my $step = sub {
		my ($what, @cmd) = @_;
		my $t1 = time;
		my $r = tool_run(@cmd);
		$t{$what} = time - $t1;
		return $r;
	};
	my $r = $step->('relocated', 'relocated', '-C', $c3, '-1', '-q', '--grace', '0');
	is($r->{rc}, 0, "$n entries: relocated migrates the folder") or diag($r->{err});
	my ($dir) = resolve($c3, 0, 'user.big');
	my $h = slurp("$dir/cyrus.header");
	my $count = () = $h =~ /\buser\d{6} lrs\b/g;
	is($count, $n, "... its new cyrus.header holds the $n entries");
	$r = $step->('audit', 'spool_audit', '-C', $c3);
	is($r->{rc}, 0, '... spool_audit reads it back') or diag($r->{out});
	$r = $step->('dump', 'ctl_mboxlist', '-C', $c3, '-d');
	my $d = eval { decode_json($r->{out}) } || {};
	is(scalar keys %{ $d->{'user.big'}{acl} // {} }, $n, '... the dump lists them');
	rename("$w3/conf/mailboxes.db", "$w3/lost.db") or die;
	$r = $step->('reconstruct', 'reconstruct', '-C', $c3, '-m', '-q');
	is($r->{rc}, 0, '... mailboxes.db lost, reconstruct registers the folder again') or diag($r->{err});
	$r = $step->('dump2', 'ctl_mboxlist', '-C', $c3, '-d');
	$d = eval { decode_json($r->{out}) } || {};
	is(scalar keys %{ $d->{'user.big'}{acl} // {} }, $n, '... with its whole ACL');
	$r = $step->('rename', 'ctl_rename', '-C', $c3, 'user/big', 'user/bigger');
	is($r->{rc}, 0, '... and it can be renamed') or diag($r->{err});
	return \%t;
}
my $small = large(2000);
my $big = large(40000);
my ($ts, $tb) = (0, 0);
for my $k (sort keys %$small) {
	$ts += $small->{$k};
	$tb += $big->{$k};
	note(sprintf('%-12s 2,000: %.3f s   40,000: %.3f s', $k, $small->{$k}, $big->{$k}));
}
ok($tb < 20 * $ts + 2, sprintf('40,000 entries took %.2f s, 2,000 took %.2f s: in proportion, not squared', $tb, $ts));

# ---- a header of many keys reads in proportion to its size --------------

# Known keys repeated, then keys of a newer Cyrus (kept and written
# back): each of those was unlinked by a search from the line's start.
sub keys_run {
	my ($n) = @_;
	my $w4 = "$base/keys$n";
	my $c4 = write_conf($w4, relocated_io_pressure => 0);
	my $id = uid(100000 + $n);
	add_folders($c4, { name => 'user.keys', msgs => 2, uniqueid => $id,
	    header => "%(N user.keys I $id " . join(' ', ('Q q') x $n) . ' '
	    . join(' ', map { "K$_ v" } 1 .. $n) . " T e)\n" });
	my $t0 = time;
	my $r = tool_run('spool_audit', '-C', $c4);
	is($r->{rc}, 0, "a header with $n repeated and $n unknown keys: spool_audit reads it")
	    or diag($r->{out});
	$r = tool_run('relocated', '-C', $c4, '-1', '-q', '--grace', '0');
	is($r->{rc}, 0, '... relocated migrates the folder') or diag($r->{err});
	my ($dir) = resolve($c4, 0, 'user.keys');
	my $kept = () = slurp("$dir/cyrus.header") =~ / K\d+ v/g;
	is($kept, $n, '... keeping the unknown keys');
	return time - $t0;
}
my ($ks, $kb) = (keys_run(3000), keys_run(60000));
ok($kb < 20 * $ks + 2, sprintf('60,000 keys of each kind took %.2f s, 3,000 took %.2f s: in proportion', $kb, $ks));

unlike($all_err, qr/runtime error|AddressSanitizer|LeakSanitizer/, 'no sanitizer spoke');
done_testing();
