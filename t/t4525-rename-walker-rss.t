#!/usr/bin/perl
# Peak RSS that does not grow with the number of folders: relocated -1
# (its scan of the tombstones before a pass) and ctl_rename -n of an
# owner (its list of the set and of the steps to print) over a
# mailboxes.db of 40,000 folders, against the same over one of 10
# folders (GNU time's %M, in KiB).  The records alone are enough: the
# folders are in the uniqueid layout, so the walker has nothing to move
# and the dry run touches no file; both read every record.
#
# Before, the tombstone scan kept every live record of mailboxes.db
# (with the whole file resident: 32 MiB more at 40,000 folders) and
# the rename kept 1.2 KB of fixed-size names per folder and the steps as
# one JSON array (96 MiB more).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $dir = scratch();
my $big = 40000;

# A dump of user u1 with n folders, and a tombstone of a renamed
# folder (same uniqueid) every 1,000.
sub dump_of {
	my ($n) = @_;
	my $entry = '"%s": {"name": "%s", "mtime": "1700000000", "uidvalidity": "%d", '
	    . '"createdmodseq": "1", "foldermodseq": "1", "mbtype": "%s", %s"uniqueid": "%s", '
	    . '"name_history": []}';
	my $live = '"partition": "default", "acl": {"u1": "lrswipkxtecdan"}, ';
	my @e = (sprintf($entry, 'user.u1', 'user.u1', 1700000000, 'e', $live,
	    'ffffffff-0000-4000-8000-000000000000'));
	for my $i (1 .. $n) {
		my $id = sprintf('%08x-0000-4000-8000-%012x', $i, $i);
		my $name = sprintf('user.u1.f%06d', $i);
		push @e, sprintf($entry, $name, $name, 1700000000 + $i, 'e', $live, $id);
		next if $i % 1000;
		$name = sprintf('user.u1.gone%06d', $i);
		push @e, sprintf($entry, $name, $name, 1700000000 + $i, 'ed', '', $id);
	}
	return "{\n" . join(",\n", @e) . "\n}\n";
}

my %conf;
for my $n (10, $big) {
	my $d = "$dir/s$n";
	mkdir $d or die "$d: $!";
	$conf{$n} = write_conf($d);
	my $r = run('ctl_mboxlist', '-C', $conf{$n}, '-u', 'stdin', dump_of($n));
	is($r->{rc}, 0, "$n folders loaded") or diag($r->{err});
}

# The sanitizer's quarantine keeps freed memory alive: keep it small.
local $ENV{ASAN_OPTIONS} = join(':', grep { defined } $ENV{ASAN_OPTIONS}, 'quarantine_size_mb=1');

# GNU time's peak RSS of a command, in KiB.
sub peak {
	my ($what, @cmd) = @_;
	my $out = "$dir/rss";
	unlink $out;
	my $r = run('/usr/bin/time', '-f', '%M', '-o', $out, @cmd);
	is($r->{rc}, 0, "$what: exit 0") or diag($r->{err});
	return undef if $r->{rc} != 0 || !-s $out;
	my ($kib) = slurp($out) =~ /(\d+)\s*\z/;
	return $kib;
}

my %walk = map { $_ => peak("relocated -1 over $_ folders", tool('relocated'), '-C', $conf{$_},
    '-1', '-q', '--grace', '0', '--io-pressure', '0') } (10, $big);
my %plan = map { $_ => peak("ctl_rename -n of $_ folders", tool('ctl_rename'), '-C', $conf{$_},
    '-n', 'user/u1', 'user/u9') } (10, $big);
my $grow = defined $walk{$big} && defined $walk{10} ? $walk{$big} - $walk{10} : 1e9;
ok($grow < 16 * 1024, "relocated: $grow KiB more at $big folders than at 10 (under 16 MiB)")
    or diag(($walk{10} // '?') . ' KiB, ' . ($walk{$big} // '?') . ' KiB');
$grow = defined $plan{$big} && defined $plan{10} ? $plan{$big} - $plan{10} : 1e9;
ok($grow < 40 * 1024, "ctl_rename -n: $grow KiB more at $big folders than at 10 (under 40 MiB, "
    . 'of which the mapped mailboxes.db is most)')
    or diag(($plan{10} // '?') . ' KiB, ' . ($plan{$big} // '?') . ' KiB');
# The plan lists every folder all the same.
my $r = run('ctl_rename', '-C', $conf{$big}, '-n', 'user/u1', 'user/u9');
is(scalar(() = $r->{out} =~ /\n/g), $big + 1, 'the plan has a line for each folder');
done_testing();
