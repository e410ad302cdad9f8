#!/usr/bin/perl
# spool_append refuses a deleted folder (DELETED.<name>.<hex>), as
# Cyrus's lmtpd cannot deliver to one: its messages are kept for
# undelete only.  The folder, its index and its files stay as they were.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $dir = scratch();
my $conf = write_conf($dir);
my $r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/x', 'user/x/Old');
die $r->{err} if $r->{rc};
$r = run('ctl_mboxlist', '-C', $conf, '-i', '-c', 'DELETED.user.x.Old.6B033B15');
die $r->{err} if $r->{rc};
my ($path) = split /\n/, run('mbpath', '-C', $conf, '-i', 'DELETED.user.x.Old.6B033B15')->{out};
my $index = slurp("$path/cyrus.index");
my $msg = "Subject: late\r\n\r\nbody\r\n";

$r = run('spool_append', '-C', $conf, '-i', 'DELETED.user.x.Old.6B033B15', 'stdin', $msg);
is($r->{rc}, 1, 'delivery into a deleted folder (internal name): exit 1');
is($r->{err}, "spool_append: DELETED.user.x.Old.6B033B15: a deleted folder takes no delivery\n",
    '... saying why');
is($r->{out}, '', '... no uid');
$r = run('spool_append', '-C', $conf, 'DELETED/user/x/Old/6B033B15', 'stdin', $msg);
is($r->{rc}, 1, 'delivery into a deleted folder (external name): exit 1');
is($r->{err}, "spool_append: DELETED/user/x/Old/6B033B15: a deleted folder takes no delivery\n",
    '... saying why');
ok(!-e "$path/1.", 'no message file was written');
is(slurp("$path/cyrus.index"), $index, 'the index is unchanged');
is(run('spool_audit', '-C', $conf, '-q')->{rc}, 0, 'the spool audits clean');

# The live folder of the same name still takes mail.
$r = run('spool_append', '-C', $conf, 'user/x/Old', 'stdin', $msg);
is($r->{rc}, 0, 'the live folder takes delivery') or diag($r->{err});
done_testing();
