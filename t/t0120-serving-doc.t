#!/usr/bin/perl
# t0120-serving-doc.t - the README and idspool(7) say what serves a
# spool in the uniqueid layout, before the walkthrough's step 3 (where
# the administrator stops Cyrus): stock Cyrus 3.6 keeps uniqueid folders
# at $partition/uuid/<c1>/<c2>/<id> with its own twoskip mailboxes.db,
# so only a server built on libidspool reads ours, and spool_sync or a
# snapshot is the way to keep or get the data in a stock Cyrus.
use strict;
use warnings;
use FindBin;
use Test::More;

my $top = "$FindBin::Bin/..";

sub slurp {
	my ($f) = @_;
	open(my $fh, '<', "$top/$f") or die "$f: $!";
	local $/;
	return <$fh>;
}

my $readme = slurp('README');
my ($walk) = $readme =~ /^Walkthrough: migrating a Cyrus 3\.6 server\n-+\n(.*?)^3\. /ms;
ok(defined $walk, 'README: the walkthrough has a step 3');
$walk //= '';
$walk =~ s/\s+/ /g;
like($walk, qr/stock Cyrus 3\.6 cannot serve/i, 'README: stock Cyrus cannot serve it, before step 3');
like($walk, qr{\$partition/uuid/<c1>/<c2>/<uniqueid>}, "README: Cyrus's own uuid layout named");
like($walk, qr/twoskip mailboxes\.db/, "README: Cyrus's own mailboxes.db named");
like($walk, qr{\$partition/\[H/\]user/<user>/<uniqueid>}, 'README: which layout this is');
like($walk, qr/libidspool/, 'README: who reads it');
like($walk, qr/lock protocol/, 'README: the resolver and lock protocol');
like($walk, qr/spool_sync/, 'README: replication with spool_sync');
like($walk, qr/snapshot/, 'README: or a snapshot');

my $man = slurp('src/man/idspool.7');
my ($sect) = $man =~ /^\.Sh WHAT SERVES THE SPOOL\n(.*?)^\.Sh /ms;
ok(defined $sect, 'idspool(7): a section WHAT SERVES THE SPOOL');
$sect //= '';
$sect =~ s/\n/ /g;
like($sect, qr/Stock Cyrus 3\.6 cannot serve/, 'idspool(7): stock Cyrus cannot serve it');
like($sect, qr{\$partition/uuid/<c1>/<c2>/<uniqueid>}, "idspool(7): Cyrus's uuid layout");
like($sect, qr/twoskip/, "idspool(7): Cyrus's twoskip mailboxes.db");
like($sect, qr{user/<user\[\@domain\]>/<uniqueid>}, 'idspool(7): which layout this is');
like($sect, qr/libidspool/, 'idspool(7): who reads it');
like($sect, qr/spool_sync 8/, 'idspool(7): spool_sync');
like($sect, qr/snapshot/, 'idspool(7): a snapshot');
done_testing();
