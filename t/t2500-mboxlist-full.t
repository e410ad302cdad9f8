#!/usr/bin/perl
# mailboxes.db on a full file system, and a map that cannot grow: the
# message names the real cause once ("the file system is full", "the
# LMDB map is full (MDB_MAP_FULL)"), not "Input/output error", and the
# database path is printed once.  The full file system is a real one: a
# tmpfs of 200 KiB mounted in a private mount namespace (unshare).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

# Runs the rest of this file in a mount namespace of its own.
unless ($ENV{IDS_T2500_NS}) {
	$ENV{IDS_T2500_NS} = 1;
	my @ns = $> == 0 ? ('unshare', '--mount', '--propagation', 'private') :
	    ('unshare', '--map-root-user', '--mount', '--propagation', 'private');
	exec(@ns, $^X, "-I$FindBin::Bin/lib", $0) or die "unshare: $!";
}

my $dir = scratch();
my $conf = write_conf($dir, mboxlist_mapsize => '64K');
my $db = "$dir/conf/mailboxes.db";
system('mount', '-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', "$dir/conf") == 0
    or BAIL_OUT('cannot mount a tmpfs in a mount namespace');

my ($r, $created, $failed) = (run('ctl_mboxlist', '-C', $conf, '-c', 'user/a'), 1, undef);
is($r->{rc}, 0, 'a first folder') or diag($r->{err});
for my $i (1 .. 60) {
	my @names = map { "user/a/f${i}_$_" } 1 .. 50;
	$r = run('ctl_mboxlist', '-C', $conf, '-c', @names);
	if ($r->{rc}) { $failed = $r; last; }
	$created += 50;
}
ok($failed, 'the file system fills up');
# Each folder is its own transaction: those before the failing one stay.
my @errs = split /\n/, $failed->{err};
$created += 50 - @errs;
is($failed->{rc}, 1, '... exit 1');
is(scalar(grep { !m{\Actl_mboxlist: user/a/f\d+_\d+: \Q$db\E: commit: the file system is full \(No space left on device\)\z} } @errs), 0,
    '... each failure naming the cause and the database once') or diag($failed->{err});
unlike($failed->{err}, qr/Input\/output error/, '... not as an I/O error');

# Every other writer says the same.
my $full = qr{: \Q$db\E: commit: the file system is full \(No space left on device\)\n\z};
$r = run('ctl_mboxlist', '-C', $conf, '-x', 'user/a/f1_1');
is($r->{rc}, 1, 'delete: exit 1');
like($r->{err}, qr{\Actl_mboxlist: user/a/f1_1$full}, '... the cause');
$r = run('ctl_rename', '-C', $conf, 'user/a/f1_2', 'user/a/g');
is($r->{rc}, 1, 'rename: exit 1');
like($r->{err}, qr{\Actl_rename: user/a/f1_2 -> user/a/g$full}, '... the cause');
is($r->{out}, '', '... and no plan line');
my $dump = run('ctl_mboxlist', '-C', $conf, '-d')->{out};
$r = run('ctl_mboxlist', '-C', $conf, '-u', 'stdin', $dump);
is($r->{rc}, 3, 'import: exit 3');
is($r->{err}, "ctl_mboxlist: $db: commit: the file system is full (No space left on device)\n",
    '... the cause, the path once, no stale reason from a run the map growth retried');

# Nothing accepted was lost: with room again, every folder is there.
system('mount', '-o', 'remount,size=8m', "$dir/conf") == 0 or die 'remount';
my @list = split /\n/, run('ctl_mboxlist', '-C', $conf, '-l')->{out};
is(scalar @list, $created, 'every folder created before is listed, none more');
$r = run('spool_audit', '-C', $conf, '-q');
is($r->{rc}, 0, 'the spool audits clean') or diag($r->{err});
$r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/a/after');
is($r->{rc}, 0, 'with room, creates work again') or diag($r->{err});

# A map that cannot grow: MDB_MAP_FULL named, the sizes given.
{
	my $d2 = "$dir/map";
	my $c2 = write_conf($d2, mboxlist_mapsize => '64K');
	local $ENV{IDS_FAILPOINT} = 'mboxlist.grow:ENOMEM';
	my @names = map { sprintf('user/m/f%03d', $_) } 1 .. 300;
	$r = run('ctl_mboxlist', '-C', $c2, '-c', 'user/m', @names);
	is($r->{rc}, 1, 'a full map that cannot grow: exit 1');
	like($r->{err}, qr{^ctl_mboxlist: user/m/f\d+: \Q$d2\E/conf/mailboxes\.db: the LMDB map is full \(MDB_MAP_FULL\) at 65536 bytes and cannot grow to 131072: Cannot allocate memory$}m,
	    '... naming the map, its size and why it cannot grow') or diag($r->{err});
	delete $ENV{IDS_FAILPOINT};
	$r = run('ctl_mboxlist', '-C', $c2, '-c', 'user/m/later');
	is($r->{rc}, 0, '... and the next run grows it') or diag($r->{err});
}

# The path once where a tool names the database itself.
$r = run('relocated', '-C', write_conf("$dir/none"), '-n');
is($r->{rc}, 3, 'relocated -n without a database: exit 3');
is($r->{err}, "relocated: $dir/none/conf/mailboxes.db: no mailboxes.db (import or create one first)\n",
    '... the path once');
$r = run('relocated', '-C', write_conf("$dir/none"), '-s');
is($r->{err}, "relocated: $dir/none/conf/mailboxes.db: no mailboxes.db (import or create one first)\n",
    'relocated -s: the path once');
$r = run('mbpath', '-C', write_conf("$dir/none"), 'user/a');
is($r->{err}, "mbpath: $dir/none/conf/mailboxes.db: no mailboxes.db (import or create one first); -L resolves names without it\n",
    'mbpath: the path once');
system('umount', "$dir/conf");
done_testing();
