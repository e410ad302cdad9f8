#!/usr/bin/perl
# A name the file system cannot hold is refused before any intent is
# written (create, rename); and an intent recovery can never settle
# (as one an older version left) is reported once with its key and
# folder, set aside with its reason ('Z' record), listed by relocated -s
# and spool_audit, and no longer makes every later run fail.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use IdsTest;
use Torture;

my $dir = scratch();
my $conf = write_conf($dir);
my $long = 'a' x 256;
my $r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/x', 'user/x/Sent');
die $r->{err} if $r->{rc};

# The door: a 256-byte owner directory.
$r = run('ctl_mboxlist', '-C', $conf, '-c', "user/$long");
is($r->{rc}, 1, 'create user/<256 bytes>: exit 1');
is($r->{err}, "ctl_mboxlist: user/$long: path component '" . ('a' x 20) .
    "...' of 256 bytes: a file name has at most 255\n", '... naming the component and the limit');
$r = run('ctl_rename', '-C', $conf, 'user/x', "user/$long");
is($r->{rc}, 1, 'rename to user/<256 bytes>: exit 1');
like($r->{err}, qr/^ctl_rename: user\/x -> user\/a+: .*path component 'a{20}\.\.\.' of 256 bytes: a file name has at most 255\n\z/,
    '... naming the component and the limit') or diag($r->{err});
is($r->{out}, '', '... and printing no plan');
$r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/y');
is($r->{rc}, 0, 'the next writer starts clean');
is($r->{err}, '', '... with no recovery message: no intent was left');
$r = run('relocated', '-C', $conf, '-s', '--json');
is_deeply(decode_json($r->{out})->{set_aside}, [], 'relocated -s: nothing set aside');
# 255 bytes is a file name.
$r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/' . ('b' x 255));
is($r->{rc}, 0, 'user/<255 bytes> is created') or diag($r->{err});

# An intent an older version left for such a name, whose directory
# could never be made below a/user/ (there since user/ann's creation).
$r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/ann');
die $r->{err} if $r->{rc};
my $id = '72f84cbd-c190-4095-a7a6-eb1d6c8d7ba9';
$r = run(Torture::helper_path(), 'intent', '-C', $conf, $id, 'create', 'files', "user.$long", "a/user/$long/$id");
is($r->{rc}, 0, 'an unsettlable intent is planted') or diag($r->{err});
$r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/z');
is($r->{rc}, 0, 'the next writer does its work');
is($r->{err}, "ctl_mboxlist: recovery: intent X$id (create user.$long): " .
    "File name too long; set aside as Z$id\n",
    '... reporting the intent by key and folder, once, set aside');
$r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/w');
is($r->{err}, '', 'the run after says nothing of it');
$r = run('relocated', '-C', $conf, '-1', '--grace', '0');
is($r->{rc}, 0, 'relocated -1 exits 0') or diag($r->{err});
$r = run('relocated', '-C', $conf, '-s');
like($r->{out}, qr/^set-aside intents: 1\n  user\/a+ \(Z\Q$id\E, create\): File name too long\n/m,
    'relocated -s lists it with its reason') or diag($r->{out});
$r = run('relocated', '-C', $conf, '-s', '--json');
my $aside = decode_json($r->{out})->{set_aside};
is(scalar @$aside, 1, 'relocated -s --json: one');
is($aside->[0]{uniqueid}, $id, '... its key');
is($aside->[0]{op}, 'create', '... its operation');
$r = run('spool_audit', '-C', $conf);
is($r->{rc}, 1, 'spool_audit: a finding');
like($r->{out}, qr/^user\/a+: mailboxes-db: expected no intent set aside, actual intent Z\Q$id\E \(create\) set aside: File name too long$/m,
    '... naming the folder, the key and the reason') or diag($r->{out} . $r->{err});
done_testing();
