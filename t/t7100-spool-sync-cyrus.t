#!/usr/bin/perl
# t7100-spool-sync-cyrus.t - spool_sync as the replica of a real Cyrus
# 3.6.1: the master's own sync_client pushes each user over a UNIX
# socket into spool_sync --listen.  Afterwards every folder is on the
# idspool side at its uniqueid path with the master's uniqueid, UIDs,
# flags, GUIDs and identical message files, spool_audit is clean, and
# a second sync_client run applies nothing (the CRCs agree).  Then,
# one after another and each synced by the real client, an LMTP
# delivery, a folder-tree rename, an expunge, a delayed delete and a
# user delete leave both sides equal.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);
use Test::More;
use IdsTest;
use CyrusPeer;

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

# sync_log: the user delete travels by the rolling client (-1), as "-u"
# skips a user the master no longer has
my $master = CyrusPeer->new("$dir/master", sync_log => 1);
my @users = $master->populate;
$master->start_lmtp;
$master->deliver('alice', "From: Dave <dave\@example.com>\nSubject: by lmtp\n\nNew mail\n");

# The replica: an idspool spool named as the master names its folders.
make_path_all("$dir/ids");
my $conf = write_conf("$dir/ids", unixhierarchysep => 'no', hashimapspool => 'no');
my $sock = "$dir/ids.sock";
my $log = "$dir/spool_sync.log";
my $daemon;
END { stop_daemon() if $daemon; }

sub make_path_all { require File::Path; File::Path::make_path(@_); }

sub start_daemon {
	my $old = umask 0;	# the socket must be writable by the cyrus user
	$daemon = fork() // die "fork: $!";
	if ($daemon == 0) {
		open(STDERR, '>>', $log) or die;
		open(STDOUT, '>>', $log) or die;
		exec(tool('spool_sync'), '-C', $conf, '-v', '--listen', $sock) or exit 111;
	}
	umask $old;
	for (1 .. 100) { last if -S $sock; sleep 0.05; }
	die "spool_sync did not listen on $sock" unless -S $sock;
}

sub stop_daemon {
	kill 'TERM', $daemon;
	waitpid($daemon, 0);
	my $rc = $?;
	$daemon = undef;
	return $rc;
}

sub serve_once {
	my ($in) = @_;
	my $r = run('spool_sync', '-C', $conf, '--serve', stdin => $in);
	die "spool_sync --serve: $r->{err}" if $r->{rc};
	return $r->{out};
}

sub applies { return scalar grep { /^>\d+>APPLY / } split /\n/, $_[0]{err}; }
sub refusals { return grep { /^<\d+<(NO|BAD) / } split /\n/, $_[0]{err}; }

sub ids_state { return CyrusPeer::ids_state($conf); }

# Message files of the master's live records, by uniqueid and uid, read
# on both sides.
sub same_files {
	my ($what) = @_;
	my ($n, @bad) = $master->files_differ($conf);
	ok($n > 0 && !@bad, "$what: $n message files identical on both sides")
	    or diag("differ or missing: @bad");
}

sub equal {
	my ($what) = @_;
	is_deeply(ids_state(), $master->cyrus_state,
	    "$what: same folders by uniqueid, names, UIDs, flags, GUIDs");
}

sub sync_all {
	my ($what, @u) = @_;
	for my $u (@u) {
		my $r = $master->sync_user($sock, $u);
		is($r->{rc}, 0, "$what: sync_client -u $u") or diag($r->{err});
		is(join("\n", refusals($r)), '', "$what: $u: nothing refused");
	}
}

start_daemon();

# ---- the first, full sync --------------------------------------------
sync_all('full sync', @users);
equal('full sync');
same_files('full sync');
my $a = run('spool_audit', '-C', $conf);
is($a->{rc}, 0, 'spool_audit finds nothing') or diag($a->{out}, $a->{err});
my $st = ids_state();
my %layout = map { $_->{uniqueid} => 1 } @{decode_json(run('ctl_mboxlist', '-C', $conf,
    '--json', '-l')->{out})};
ok(!grep({ !$layout{$_} } keys %$st), 'every folder keeps the uniqueid Cyrus gave it');
ok(!grep({ $_->{layout} ne 'uniqueid' } @{decode_json(run('ctl_mboxlist', '-C', $conf,
    '--json', '-l')->{out})}), 'every folder is at its uniqueid path');

for my $u (@users) {
	my $r = $master->sync_user($sock, $u);
	is($r->{rc}, 0, "resync -u $u");
	is(applies($r), 0, "resync of $u applies nothing: the CRCs agree") or diag($r->{err});
}

# ---- events, each synced by the real client ---------------------------
$master->deliver('alice', "From: Eve <eve\@example.com>\nSubject: second\n\nMore mail\n");
sync_all('after an LMTP delivery', 'alice');
equal('after an LMTP delivery');
same_files('after an LMTP delivery');

$master->imap('alice', 'RENAME Work Projects');
sync_all('after a folder-tree rename', 'alice');
equal('after a folder-tree rename');
my $ren = decode_json(run('ctl_mboxlist', '-C', $conf, '-d')->{out});
ok($ren->{'user.alice.Projects.2019'} && ($ren->{'user.alice.Work.2019'}{mbtype} // '') =~ /d/,
    'the child moved with its parent, a tombstone stays at the old name');

$master->imap('alice', 'SELECT INBOX', 'STORE 1 +FLAGS (\Deleted)', 'EXPUNGE');
sync_all('after an expunge', 'alice');
equal('after an expunge');

$master->imap('alice', 'DELETE Trash');
sync_all('after a delayed delete', 'alice');
equal('after a delayed delete');
ok(grep({ /^DELETED\.user\.alice\.Trash\./ } map { $_->{name} } values %{ids_state()}),
    'the deleted folder lives on as DELETED.user.alice.Trash.* on the replica');

# a user delete: the master renames bob's folders to DELETED.* and the
# rolling client replays its log once: the renames, then APPLY UNUSER
$master->imap('bob@example.com', 'SUBSCRIBE Archive');
sync_all('after a subscription', 'bob@example.com');
sub bob_meta {
	my $out = serve_once("GET META bob\@example.com\r\nEXIT\r\n");
	return [grep { /^\* (SEEN|LSUB|SIEVE)/ } split /\r\n/, $out];
}
is_deeply(bob_meta(), ['* LSUB (example.com!user.bob.Archive)'], '... is stored on the replica');
unlink("$dir/master/conf/sync/log");
$master->imap('admin', 'SETACL user.bob@example.com admin lrswipkxtecda',
    'DELETE user.bob@example.com');
my $r = $master->sync_log($sock);
is($r->{rc}, 0, 'after a user delete: sync_client -1 replays the log') or diag($r->{err});
is(join("\n", refusals($r)), '', 'after a user delete: nothing refused');
like($r->{err}, qr/^>\d+>APPLY UNUSER bob\@example\.com\r?$/m, '... and APPLY UNUSER was sent');
equal('after a user delete');
ok(!grep({ $_->{name} =~ /^example\.com!user\.bob/ } values %{ids_state()}),
    'no live folder of bob is left on the replica');
is_deeply(bob_meta(), [], '... nor his subscription');

for my $u ('alice') {
	my $r = $master->sync_user($sock, $u);
	is(applies($r), 0, "a last resync of $u applies nothing") or diag($r->{err});
}
$a = run('spool_audit', '-C', $conf);
is($a->{rc}, 0, 'spool_audit finds nothing at the end') or diag($a->{out}, $a->{err});

is(stop_daemon(), 0, 'spool_sync --listen exits 0 on SIGTERM');
ok(!-e $sock, 'and removes its socket');
my @left = glob("$dir/ids/spool/stage./sync-*");
ok(!@left, 'no staging directory is left') or diag("@left");
like(slurp($log), qr/APPLY MAILBOX user\.alice \(/, 'each apply is logged');

done_testing;
