#!/usr/bin/perl
# t7460-spool-sync-rolling-cyrus.t - rolling replication (spool_sync -R)
# from an idspool spool into a real Cyrus 3.6.1 sync_server on stdio
# (-X, no SASL), the peer command started anew for each batch:
#
#  - folders created and delivered to, then a folder-tree rename and
#    more deliveries, each carried by -R: the Cyrus side equal to the
#    spool by uniqueid, names, UIDs, flags and GUIDs, the message files
#    identical;
#  - the Cyrus peer unreachable for a while (its command fails), then
#    back: -R does not exit, lags meanwhile (-s), and converges.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf ok_append rolling_start rolling_stop channel);

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

my $p = spool_conf("$dir/p",
    sync_log => 1, sync_repeat_interval => '0.05', sync_reconnect_minwait => '0.1',
    sync_reconnect_maxwait => '0.5');
my $cy = CyrusPeer->new("$dir/cyrus");

my $peer = "$dir/peer";
spew($peer, <<"EOF");
#!/bin/sh
[ -e '$dir/down' ] && exit 1
exec runuser -u cyrus -- env CYRUS_SERVICE=sync CYRUS_ID=1 '$CyrusPeer::BIN/sync_server' -C '${\$cy->conf}' -X
EOF
chmod 0755, $peer;

# ok_deliver($folder, $text): a test that a message of subject, body and
# Message-ID $text is appended to $folder (SyncPair's ok_append).
sub ok_deliver {
	my ($folder, $text) = @_;
	ok_append("deliver to $folder", $p, $folder,
	    "From: x\@example.com\nSubject: $text\nMessage-ID: <$text\@example.com>\n\n$text\n");
}

sub converges {
	my ($what) = @_;
	my ($got, $want);
	for (1 .. 150) {
		# Cyrus's state read while -R writes to it may see a folder vanish
		($got, $want) = (eval { $cy->cyrus_state } // {}, CyrusPeer::ids_state($p));
		last if JSON::PP->new->canonical->encode($got) eq JSON::PP->new->canonical->encode($want);
		select(undef, undef, undef, 0.2);
	}
	is_deeply($got, $want, $what);
}

ok_run('folders', 'ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice', 'user.alice.Work',
    'user.alice.Work.2019', 'user.bob');
ok_deliver('user.alice', 'one');
ok_deliver('user.alice.Work.2019', 'two');
ok_deliver('user.bob', 'three');

my $log = "$dir/rolling.log";
# (A test that dies leaves no rolling client behind: rolling_start.)
my $pid = rolling_start($p, $log, 10, $peer);

converges('-R into a real Cyrus: the Cyrus side equals the spool');
my ($n, @bad) = $cy->files_differ($p);
ok($n >= 3 && !@bad, "... $n message files identical") or diag("@bad");

ok_run('a folder-tree rename', 'ctl_rename', '-C', $p, '-i', 'user.alice.Work', 'user.alice.Projects');
ok_deliver('user.alice.Projects.2019', 'four');
ok_deliver('user.alice', 'five');
converges('a rename and deliveries carried into Cyrus');
ok(exists $cy->mailboxes->{'user.alice.Projects.2019'}, '... the tree renamed there');

spew("$dir/down", '');
ok_deliver('user.bob', 'six');
select(undef, undef, undef, 1.0);
my $s = channel($p);
ok($s->{lag} > 0, "-s: lag while Cyrus is unreachable ($s->{lag})");
ok(waitpid($pid, WNOHANG) == 0, '-R is still running');
unlink "$dir/down";
converges('Cyrus back: converged');
($n, @bad) = $cy->files_differ($p);
ok($n >= 6 && !@bad, "... $n message files identical") or diag("@bad");
like(slurp($log), qr/session lost/, 'the lost sessions were logged');

is(rolling_stop($pid), 0, 'SIGTERM ends -R with status 0');

done_testing();
