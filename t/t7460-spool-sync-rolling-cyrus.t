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
use File::Path qw(make_path);
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use IdsTest;
use CyrusPeer;

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

make_path("$dir/p");
my $p = write_conf("$dir/p", unixhierarchysep => 'no', hashimapspool => 'no',
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

sub deliver {
	my ($folder, $text) = @_;
	ok_run("deliver to $folder", 'spool_append', '-C', $p, '-q', '-i', $folder,
	    stdin => "From: x\@example.com\nSubject: $text\nMessage-ID: <$text\@example.com>\n\n$text\n");
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
deliver('user.alice', 'one');
deliver('user.alice.Work.2019', 'two');
deliver('user.bob', 'three');

my $log = "$dir/rolling.log";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDOUT, '>>', $log or die;
	open STDERR, '>>', $log or die;
	exec(tool('spool_sync'), '-C', $p, '-v', '-t', '10', '-R', '--', $peer) or die "exec: $!";
}

# A test that dies leaves no rolling client behind.
END { kill 'TERM', $pid if $pid; }

converges('-R into a real Cyrus: the Cyrus side equals the spool');
my ($n, @bad) = $cy->files_differ($p);
ok($n >= 3 && !@bad, "... $n message files identical") or diag("@bad");

ok_run('a folder-tree rename', 'ctl_rename', '-C', $p, '-i', 'user.alice.Work', 'user.alice.Projects');
deliver('user.alice.Projects.2019', 'four');
deliver('user.alice', 'five');
converges('a rename and deliveries carried into Cyrus');
ok(exists $cy->mailboxes->{'user.alice.Projects.2019'}, '... the tree renamed there');

spew("$dir/down", '');
deliver('user.bob', 'six');
select(undef, undef, undef, 1.0);
my $s = decode_json((split /\n/, run('spool_sync', '-C', $p, '-s', '--json')->{out})[0]);
ok($s->{channels}[0]{lag} > 0, "-s: lag while Cyrus is unreachable ($s->{channels}[0]{lag})");
ok(waitpid($pid, WNOHANG) == 0, '-R is still running');
unlink "$dir/down";
converges('Cyrus back: converged');
($n, @bad) = $cy->files_differ($p);
ok($n >= 6 && !@bad, "... $n message files identical") or diag("@bad");
like(slurp($log), qr/session lost/, 'the lost sessions were logged');

kill 'TERM', $pid;
waitpid($pid, 0);
is($?, 0, 'SIGTERM ends -R with status 0');

done_testing();
