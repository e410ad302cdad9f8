#!/usr/bin/perl
# t9000-failpoints.t - every failpoint in the sources is in
# RELIABILITY.md's table and every row is a failpoint; every mutating
# system call and mailboxes.db commit in src/ and migrate/ has a
# failpoint before it (contrib/failpoints --check); and the points work
# as failpoint.h says.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use Torture;

my $top = "$FindBin::Bin/..";
my $r = run("$top/contrib/failpoints", '--check');
is($r->{rc}, 0, 'failpoints documented, every mutating call guarded') or diag($r->{out});
my ($n) = $r->{out} =~ /^(\d+) failpoints/m;
ok(($n // 0) >= 40, "$n failpoints in the sources");

# The environment interface, through a tool.
my $dir = fast_scratch();
my $conf = write_conf($dir);
$r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/fp');
is($r->{rc}, 0, 'a folder to deliver to') or diag($r->{err});
{
	local $ENV{IDS_FAILPOINT_LOG} = "$dir/log";
	$r = run('spool_append', '-C', $conf, '-q', 'user/fp', 'stdin', "x\r\n");
	is($r->{rc}, 0, 'IDS_FAILPOINT_LOG: a delivery');
	like(slurp("$dir/log"), qr/^fs\.create\nfs\.write\nfs\.fsync\nfs\.rename\nfs\.fsync_dir\n/m,
	    '... logs the points it passes, in order');
}
{
	local $ENV{IDS_FAILPOINT} = 'fs.write:ENOSPC';
	$r = run('spool_append', '-C', $conf, '-q', 'user/fp', 'stdin', "x\r\n");
	is($r->{rc}, 1, 'IDS_FAILPOINT=fs.write:ENOSPC: the delivery fails');
	is($r->{err}, "spool_append: user/fp: No space left on device\n", '... saying why');
}
{
	local $ENV{IDS_FAILPOINT} = 'fs.write:EIO:2';
	spew("$dir/m1", "one\r\n");
	spew("$dir/m2", "two\r\n");
	$r = run('spool_append', '-C', $conf, 'user/fp', "$dir/m1", "$dir/m2");
	is($r->{rc}, 1, 'IDS_FAILPOINT=fs.write:EIO:2: only the second write fails');
	is($r->{out}, "user/fp: uid 2\n", '... the first message is delivered');
	is($r->{err}, "spool_append: user/fp: Input/output error\n", '... the second is not');
}
{
	# Two rules of one point: each counts every hit (the second and the
	# third write fail, not the second and the fourth).
	local $ENV{IDS_FAILPOINT} = 'fs.write:EIO:2,fs.write:ENOSPC:3';
	spew("$dir/m$_", "m$_\r\n") for 3 .. 6;
	$r = run('spool_append', '-C', $conf, 'user/fp', map { "$dir/m$_" } 3 .. 6);
	is($r->{rc}, 1, 'IDS_FAILPOINT=fs.write:EIO:2,fs.write:ENOSPC:3: two writes fail');
	is($r->{out}, "user/fp: uid 3\nuser/fp: uid 4\n", '... the first and the fourth message are delivered');
	is($r->{err}, "spool_append: user/fp: Input/output error\nspool_append: user/fp: No space left on device\n",
	    '... the second and the third are not, each with its rule\'s error');
}
{
	local $ENV{IDS_FAILPOINT_CRASH} = 2;
	$r = run('spool_append', '-C', $conf, '-q', 'user/fp', 'stdin', "x\r\n");
	is($r->{rc}, 128 + 9, 'IDS_FAILPOINT_CRASH=2: killed (SIGKILL) at the second point');
}
{
	local $ENV{IDS_FAILPOINT_CRASH} = '1:index.';
	$r = run('spool_append', '-C', $conf, '-q', 'user/fp', 'stdin', "x\r\n");
	is($r->{rc}, 128 + 9, 'IDS_FAILPOINT_CRASH=1:index.: killed at the first index point');
}
my $st = Torture::state({ conf => $conf }, 1);
is_deeply($st->{violations}, [], 'and the folder is sound after all of it');
done_testing();
