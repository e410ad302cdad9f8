#!/usr/bin/perl
# t7000-sync-cyrus.t - the real Cyrus 3.6 peer of the replication tests
# (t/lib/CyrusPeer.pm): a private master populated with Cyrus's own
# imapd, lmtpd and deliver, replicated with its own sync_client over a
# UNIX socket into a Cyrus sync_server, as the baseline every replica
# must match: both sides equal by uniqueid (folders, UIDs, flags,
# GUIDs, message files) and a second run that applies nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;
use CyrusPeer;

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();

my $master = CyrusPeer->new("$dir/master");
my @users = $master->populate;
$master->start_lmtp;
$master->deliver('alice', "From: Dave <dave\@example.com>\nSubject: by lmtp\n\nNew mail\n");

my $replica = CyrusPeer->new("$dir/replica");
my $sock = "$dir/replica.sock";
$replica->serve($sock, $replica->service_cmd('sync_server'));

sub applies { return scalar grep { /^>\d+>APPLY / } split /\n/, $_[0]{err}; }

for my $u (@users) {
	my $r = $master->sync_user($sock, $u);
	is($r->{rc}, 0, "sync_client -u $u into Cyrus's sync_server") or diag($r->{err});
	ok(applies($r) > 0, "$u: the first run applies changes");
}
my $ms = $master->cyrus_state;
is_deeply($replica->cyrus_state, $ms, 'both sides hold the same folders, UIDs, flags, GUIDs');
ok(scalar(grep { $_->{name} =~ /^example\.com!user\.bob/ } values %$ms) == 2 &&
    (grep { $_->{records}{2} && $_->{records}{2} =~ /\$Label1 \\Flagged/ } values %$ms) &&
    (grep { $_->{records}{3} && $_->{records}{3} =~ /\\Expunged/ } values %$ms),
    'the population has a domain user, user flags and an expunged record');
for my $u (@users) {
	my $r = $master->sync_user($sock, $u);
	is($r->{rc}, 0, "second sync_client -u $u");
	is(applies($r), 0, "$u: the second run applies nothing") or diag($r->{err});
}
$replica->stop;
$master->stop;
done_testing;
