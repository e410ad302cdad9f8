#!/usr/bin/perl
# t7445-spool-sync-rolling-timeout.t - the peer link of spool_sync -R
# times out on writes as on reads: a peer that stops reading in the
# middle of a large APPLY MESSAGE (its socket buffer full) makes the
# write fail after -t seconds, the session is counted lost, and -R goes
# on retrying instead of blocking for ever; without the peer's OK the
# cursor does not move.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use IdsTest;

my $dir = scratch();
make_path("$dir/p");
my $p = write_conf("$dir/p", unixhierarchysep => 'no', hashimapspool => 'no', sync_log => 1,
    sync_reconnect_minwait => '0.2', sync_reconnect_maxwait => '0.5');

# A peer that answers everything, reports every reserved GUID missing,
# and stops reading at APPLY MESSAGE.
my $peer = "$dir/peer.pl";
spew($peer, <<'EOF2');
#!/usr/bin/perl
$| = 1;
print "* OK fake Cyrus sync server 3.6.1\r\n";
while (my $l = <STDIN>) {
	$l =~ s/\r?\n$//;
	if ($l =~ /^APPLY MESSAGE/) { sleep 60; exit 0; }
	if ($l =~ /^APPLY RESERVE .*GUID \(([0-9a-f ]+)\)/) { print "* MISSING ($1)\r\nOK success\r\n"; next; }
	if ($l =~ /^EXIT/) { print "OK bye\r\n"; exit 0; }
	print "OK success\r\n";
}
EOF2
chmod 0755, $peer;

is(run('ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice')->{rc}, 0, 'a folder');
spew("$dir/big.eml", "Subject: big\n\n" . ("x" x 76 . "\n") x 100000);
is(run('spool_append', '-C', $p, '-q', '-i', 'user.alice', "$dir/big.eml")->{rc}, 0,
    'a 7.7 MB message, more than a socket buffer holds');

my $log = "$dir/rolling.log";
spew($log, "");
my $pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDOUT, '>>', $log or die;
	open STDERR, '>>', $log or die;
	exec(tool('spool_sync'), '-C', $p, '-v', '-t', '1', '-R', '--', $peer) or die "exec: $!";
}
END { kill 'TERM', $pid if $pid; }

my $lost = 0;
for (1 .. 100) {
	$lost = () = slurp($log) =~ /session lost/g;
	last if $lost >= 2;
	select(undef, undef, undef, 0.1);
}
ok($lost >= 2, "the blocked write timed out and the session was retried ($lost lost)")
    or diag(slurp($log));
like(slurp($log), qr/Resource temporarily unavailable/, '... the write timed out (EAGAIN)');
ok(waitpid($pid, WNOHANG) == 0, '-R is still running');
my $s = decode_json((split /\n/, run('spool_sync', '-C', $p, '-s', '--json')->{out})[0]);
ok($s->{channels}[0]{lag} > 0 && !defined $s->{channels}[0]{last_success},
    '-s: nothing acknowledged, the lag kept');
kill 'TERM', $pid;
waitpid($pid, 0);
is($?, 0, 'SIGTERM ends it, status 0');
$pid = 0;

done_testing();
