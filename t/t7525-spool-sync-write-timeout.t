#!/usr/bin/perl
# t7525-spool-sync-write-timeout.t - the one-shot client's writes time
# out as its reads do: a peer that stops reading in the middle of a
# large APPLY MESSAGE (its socket buffer full) makes spool_sync end
# after -t seconds with "spool_sync: PEER: ...: timed out" and exit 1,
# instead of blocking for ever; nothing of the spool changed, and the
# next push into a real replica carries everything.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Test::More;
use IdsTest;
use CyrusPeer;

my $dir = scratch();
make_path("$dir/p", "$dir/r");
my $p = write_conf("$dir/p", unixhierarchysep => 'no', hashimapspool => 'no');
my $rc = write_conf("$dir/r", unixhierarchysep => 'no', hashimapspool => 'no');

# A peer that answers everything, reports every reserved GUID missing,
# and stops reading at APPLY MESSAGE (without exiting).
my $peer = "$dir/stuck-peer";
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
my $before = CyrusPeer::ids_state($p);

my $t0 = time;
my $r = run('spool_sync', '-C', $p, '-t', '1', '-u', 'alice', '--', $peer);
my $took = time - $t0;
is($r->{rc}, 1, 'a peer that stops reading: exit 1') or diag($r->{out}, $r->{err});
like($r->{err}, qr{^spool_sync: \Q$peer\E: .*: timed out$}m, '... "spool_sync: PEER: ...: timed out"')
    or diag($r->{err});
ok($took < 20, "... after -t 1, not when the peer ends ($took s)");
is_deeply(CyrusPeer::ids_state($p), $before, 'nothing of the spool changed');

$r = run('spool_sync', '-C', $p, '-u', 'alice', '--', tool('spool_sync'), '-C', $rc, '--serve');
is($r->{rc}, 0, 'the next push into a real replica') or diag($r->{out}, $r->{err});
is_deeply(CyrusPeer::ids_state($rc), CyrusPeer::ids_state($p), '... carries everything');

done_testing();
