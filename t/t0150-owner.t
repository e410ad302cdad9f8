#!/usr/bin/perl
# t0150-owner.t - every tool started as root becomes the spool's owner
# before it touches anything (Cyrus's become_cyrus()): a spool and a
# configuration directory owned by an unprivileged user, every tool run
# as root on them, and no file is left owned by anyone else; the
# cyrus_user and cyrus_group keys name the user and group, and one
# that does not exist is refused before anything is written.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use Test::More;
use IdsTest;

die "t0150-owner.t runs as root: it checks what root's runs leave behind\n" if $> != 0;

my $dir = scratch();
my $user = 'idsowner';
unless (defined getpwnam($user)) {
	system('useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin',
	    '--user-group', $user) == 0 or die "useradd $user failed\n";
}
my ($uid, $gid) = (getpwnam($user))[2, 3];

# Every directory above the scratch directory must let the user through.
my $p = $dir;
while ($p =~ s{/[^/]+$}{} && $p ne '') { chmod((stat $p)[2] & 07777 | 0711, $p); }
chmod(0755, $dir);

# A spool owned by the user: what `chown -R cyrus:mail` leaves.
sub spool {
	my ($name, %kv) = @_;
	my $d = "$dir/$name";
	make_path($d);
	my $conf = write_conf($d, %kv);
	system('chown', '-R', "$uid:$gid", "$d/conf", "$d/spool") == 0 or die "chown: $?";
	return ($d, $conf);
}

# The files below $d not owned by the user and group.
sub foreign {
	my ($d) = @_;
	my @bad = grep { length } split /\n/,
	    `find '$d/conf' '$d/spool' \\( ! -user $uid -o ! -group $gid \\) -printf '%u:%g %p\\n'`;
	return \@bad;
}

sub step {
	my ($what, @cmd) = @_;
	my $r = run(@cmd);
	is($r->{rc}, 0, "as root: $what") or diag($r->{err});
	return $r;
}

# ---- every tool, run as root on the user's spool ----------------------
my ($d, $conf) = spool('s');
step('mkspool', 'mkspool', '-C', $conf, '--size', 'tiny');
step('ctl_mboxlist -c', 'ctl_mboxlist', '-C', $conf, '-c', 'user/zed', 'user/zed/New', 'user/zed/Old');
spew("$dir/msg.eml", "From: a\@example.com\r\nSubject: x\r\n\r\nbody\r\n");
step('spool_append', 'spool_append', '-C', $conf, 'user/zed/New', "$dir/msg.eml");
step('mbpath', 'mbpath', '-C', $conf, 'user/zed/New');
step('relocated -1', 'relocated', '-C', $conf, '-1', '--grace', '0', '-q');
step('relocated -s', 'relocated', '-C', $conf, '-s');
step('ctl_rename', 'ctl_rename', '-C', $conf, 'user/zed/New', 'user/zed/Newer');
step('ctl_rename of a user', 'ctl_rename', '-C', $conf, 'user/zed', 'user/zoe');
step('ctl_mboxlist -x', 'ctl_mboxlist', '-C', $conf, '-x', 'user/zoe/Old');
step('spool_append after the rename', 'spool_append', '-C', $conf, 'user/zoe/Newer',
    "$dir/msg.eml");
step('spool_audit', 'spool_audit', '-C', $conf, '-q');
step('reconstruct user/zoe', 'reconstruct', '-C', $conf, '-q', 'user/zoe');
my $dump = step('ctl_mboxlist -d', 'ctl_mboxlist', '-C', $conf, '-d');
unlink(glob("$d/conf/mailboxes.db*"));
step('reconstruct -m (mailboxes.db made anew)', 'reconstruct', '-C', $conf, '-m', '-q');
unlink(glob("$d/conf/mailboxes.db*"));
step('ctl_mboxlist -u (mailboxes.db made anew)', 'ctl_mboxlist', '-C', $conf, '-u',
    stdin => $dump->{out});
step('spool_audit after the undump', 'spool_audit', '-C', $conf, '-q');
is_deeply(foreign($d), [], "no file in the spool or configdirectory owned by another than $user");
ok(-e "$d/conf/mailboxes.db" && (stat "$d/conf/mailboxes.db")[4] == $uid,
    "mailboxes.db is ${user}'s");

# spool_sync, where it writes: a replica fed Cyrus 3.6.1's session.
{
	require CyrusPeer;
	my ($rd, $rconf) = spool('r', unixhierarchysep => 'no', hashimapspool => 'no');
	my $r = run('spool_sync', '-C', $rconf, '--serve',
	    stdin => CyrusPeer::transcript('03-full-user-sync-bob.wire.txt'));
	is($r->{rc}, 0, 'as root: spool_sync --serve') or diag($r->{err});
	ok(-e "$rd/conf/mailboxes.db", 'spool_sync wrote mailboxes.db');
	is_deeply(foreign($rd), [], "spool_sync left nothing owned by another than $user");
}

# ---- cyrus_user and cyrus_group ------------------------------------------
{
	# Named by the keys, with a root-owned configdirectory.
	my $cd = "$dir/k";
	make_path($cd);
	my $c = write_conf($cd, cyrus_user => $user, cyrus_group => $user);
	system('chown', '-R', "$uid:$gid", "$cd/conf", "$cd/spool") == 0 or die;
	chown(0, 0, "$cd/conf");
	chmod(0777, "$cd/conf");
	step('ctl_mboxlist -c with cyrus_user set', 'ctl_mboxlist', '-C', $c, '-c', 'user/ann');
	is((stat "$cd/conf/mailboxes.db")[4], $uid, "cyrus_user: mailboxes.db is ${user}'s");
	is((stat "$cd/conf/mailboxes.db")[5], $gid, 'cyrus_group: ... and its group');

	$c = write_conf($cd, cyrus_user => 'no-such-user-here');
	my @before = sort glob("$cd/conf/* $cd/spool/*");
	for my $cmd (['ctl_mboxlist', '-c', 'user/bob'], ['relocated', '-1'], ['mbpath', 'user/ann'],
	    ['reconstruct', '-m']) {
		my $r = run($cmd->[0], '-C', $c, @$cmd[1 .. $#$cmd]);
		is($r->{rc}, 3, "$cmd->[0]: an unknown cyrus_user is exit 3");
		is($r->{err}, "$cmd->[0]: $c: cyrus_user: 'no-such-user-here': no such user\n",
		    "$cmd->[0]: ... naming the key");
	}
	$c = write_conf($cd, cyrus_group => 'no-such-group-here');
	my $r = run('ctl_mboxlist', '-C', $c, '-c', 'user/bob');
	is($r->{rc}, 3, 'an unknown cyrus_group is exit 3');
	is($r->{err}, "ctl_mboxlist: $c: cyrus_group: 'no-such-group-here': no such group\n",
	    '... naming the key');
	is_deeply([sort glob("$cd/conf/* $cd/spool/*")], \@before, '... and nothing was written');
}

# Not root: a named cyrus_user that is someone else is refused.
{
	my $cd = "$dir/n";
	make_path($cd);
	my $c = write_conf($cd, cyrus_user => 'root');
	system('chown', '-R', "$uid:$gid", $cd) == 0 or die;
	my $r = run('runuser', '-u', $user, '--', tool('mbpath'), '-C', $c, 'user/x');
	is($r->{rc}, 3, 'not root, cyrus_user naming another: exit 3');
	like($r->{err}, qr/^mbpath: must run as root \(uid 0\) or as root, not as uid \d+\n\z/,
	    '... saying so');
}

done_testing();
