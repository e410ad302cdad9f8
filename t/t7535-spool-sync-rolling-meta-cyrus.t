#!/usr/bin/perl
# t7535-spool-sync-rolling-meta-cyrus.t - rolling replication (spool_sync
# -R) of a user's subscriptions from a chained idspool replica into a
# real Cyrus 3.6.1 sync_server on stdio (-X, no SASL): the replica
# stores APPLY SUB and UNSUB from its upstream client, journals the
# user, and -R makes Cyrus's subscriptions the same (IMAP LSUB there).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(WNOHANG);
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf rolling_start rolling_stop);

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

my $m = spool_conf("$dir/m", sync_log => 1, sync_log_chain => 1, sync_repeat_interval => '0.05',
    sync_reconnect_minwait => '0.1', sync_reconnect_maxwait => '0.5');
my $cy = CyrusPeer->new("$dir/cyrus");

my $peer = "$dir/peer";
spew($peer, <<"EOF");
#!/bin/sh
exec runuser -u cyrus -- env CYRUS_SERVICE=sync CYRUS_ID=1 '$CyrusPeer::BIN/sync_server' -C '${\$cy->conf}' -X
EOF
chmod 0755, $peer;

sub upstream {
	my ($what, @lines) = @_;
	my $r = run('spool_sync', '-C', $m, '--serve', stdin => join('', map { "$_\r\n" } @lines, 'EXIT'));
	is(scalar(() = $r->{out} =~ /^OK success/mg), scalar @lines, $what) or diag($r->{out}, $r->{err});
}

sub lsub {
	my $l = eval { $cy->imap('alice', 'LSUB "" "*"') } // [];
	return join(' ', sort map { /"([^"]*)"$/ ? $1 : /(\S+)$/ ? $1 : $_ } grep { /^\* LSUB / } @$l);
}

my $r = run('ctl_mboxlist', '-C', $m, '-i', '-c', 'user.alice', 'user.alice.Work', 'user.alice.Lists');
is($r->{rc}, 0, 'folders on the chained replica') or diag($r->{err});
upstream('two subscriptions stored', 'APPLY SUB %(USERID alice MBOXNAME user.alice.Work)',
    'APPLY SUB %(USERID alice MBOXNAME user.alice.Lists)');

my $log = "$dir/rolling.log";
my $pid = rolling_start($m, $log, 10, $peer);

sub waits_for {
	my ($want, $what) = @_;
	my $got;
	for (1 .. 150) {
		last if ($got = lsub()) eq $want;
		select(undef, undef, undef, 0.2);
	}
	is($got, $want, $what) or diag(slurp($log));
}

waits_for('Lists Work', '-R carries the subscriptions into Cyrus (IMAP LSUB)');
upstream('an UNSUB stored', 'APPLY UNSUB %(USERID alice MBOXNAME user.alice.Lists)');
waits_for('Work', '... and the UNSUB');
ok(waitpid($pid, WNOHANG) == 0, '-R still running');
is(rolling_stop($pid), 0, 'SIGTERM ends it, status 0');

done_testing();
