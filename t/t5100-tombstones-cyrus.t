#!/usr/bin/perl
# t5100-tombstones-cyrus.t - tombstones survive a rebuild.  A real Cyrus
# 3.6.1 (legacy directories) makes a spool with renames (a folder, a
# subtree, in a domain), delayed deletes and a deleted DELETED folder,
# the way Cyrus makes them: its ctl_mboxlist -d dump holds a tombstone
# at each old name, and none of it is in any cyrus.header.  idspool
# imports the dump, migrates the spool (relocated -1), and after
# mailboxes.db is deleted, reconstruct -m brings back every entry,
# tombstones included: the old names of live folders from the name
# history the walker wrote into their headers (also into the header of
# a folder a rename migrated before the walk), those of deleted folders
# from the owner's tombstone record.  A delete made after the migration
# comes back too.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(remove_tree);
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;

my $top = "$FindBin::Bin/..";
CyrusPeer::ensure($top);
my $dir = scratch();
chmod 0755, $dir;

my $cy = CyrusPeer->new("$dir/cyrus", mailbox_legacy_dirs => 'yes');
$cy->imap('admin', 'CREATE user.alice', 'CREATE user.bob@example.com');
$cy->imap('alice', 'CREATE A', 'CREATE A.B', 'CREATE Old', 'CREATE Trash', 'CREATE Gone',
    CyrusPeer::append_cmd('A.B', '', CyrusPeer::msg(1, 'alice')),
    CyrusPeer::append_cmd('Old', '\Seen', CyrusPeer::msg(2, 'alice')),
    CyrusPeer::append_cmd('Trash', '', CyrusPeer::msg(3, 'alice')),
    CyrusPeer::append_cmd('Gone', '', CyrusPeer::msg(4, 'alice')),
    'RENAME Old New', 'RENAME A Z', 'DELETE Trash');
$cy->imap('bob@example.com', 'CREATE X', 'CREATE Y', 'CREATE Tmp',
    CyrusPeer::append_cmd('X', '', CyrusPeer::msg(5, 'bob')),
    'RENAME X W', 'DELETE Y', 'DELETE Tmp');
# DELETED folders deleted for good: only the tombstone at the first name stays.
my $list = $cy->imap('admin', 'LIST "" "DELETED.*"');
for my $re (qr/DELETED\.user\.alice\.Trash\.[0-9A-F]+/,
    qr/DELETED\.user\.bob\.Tmp\.[0-9A-F]+\@example\.com/) {
	my ($deleted) = map { /"?($re)"?\s*$/ ? $1 : () } @$list;
	ok(defined $deleted, "Cyrus's delayed delete made " . ($deleted // 'nothing'));
	$cy->imap('admin', "DELETE $deleted") if defined $deleted;
}

my $d = $cy->cyrus('ctl_mboxlist', '-d');
is($d->{rc}, 0, "Cyrus's ctl_mboxlist -d") or diag($d->{err});
my $cyrus = decode_json($d->{out});
my @ctombs = sort grep { $cyrus->{$_}{mbtype} =~ /d/ } keys %$cyrus;
ok(@ctombs >= 6, "Cyrus's dump holds " . scalar(@ctombs) . ' tombstones') or diag(join ' ', @ctombs);
my %cid = map { $cyrus->{$_}{uniqueid} => 1 } grep { $cyrus->{$_}{mbtype} !~ /d/ } keys %$cyrus;
my @dead = grep { !$cid{ $cyrus->{$_}{uniqueid} } } @ctombs;
ok(@dead >= 2, 'of which ' . scalar(@dead) . " belong to deleted folders: @dead");

# idspool, on Cyrus's spool, with a configuration directory of its own.
my $conf = write_conf("$dir/ids", 'partition-default' => "$dir/cyrus/spool",
    unixhierarchysep => 'no', hashimapspool => 'no');

sub dump_db {
	my $r = run('ctl_mboxlist', '-C', $conf, '-d');
	is($r->{rc}, 0, 'ctl_mboxlist -d') or diag($r->{err});
	return decode_json($r->{out});
}

my $r = run('ctl_mboxlist', '-C', $conf, '-u', stdin => $d->{out});
is($r->{rc}, 0, 'the dump imported') or diag($r->{err});
# Renamed before any walker run: migrated by the rename, its header
# written before the history had Cyrus's old name in it.
$r = run('ctl_rename', '-C', $conf, '-i', '-q', 'user.alice.New', 'user.alice.Newer');
is($r->{rc}, 0, 'a Cyrus-renamed legacy folder renamed again before the walk') or diag($r->{err});
push @ctombs, 'user.alice.New';
@ctombs = sort @ctombs;
$r = run('relocated', '-C', $conf, '-1', '-q', '--grace', 0);
is($r->{rc}, 0, 'relocated -1 migrates the spool') or diag($r->{err});
my $before = dump_db();
is_deeply([sort grep { $before->{$_}{mbtype} =~ /d/ } keys %$before], \@ctombs,
    'after the migration: the tombstones of the Cyrus dump');

# The fields a rebuild cannot know (spool-layout.md, "Reconstruct"):
# mtime and foldermodseq of live entries.
sub comparable {
	my ($db) = @_;
	my %out;
	for my $n (keys %$db) {
		my %e = %{ $db->{$n} };
		delete @e{qw(mtime foldermodseq)} unless $e{mbtype} =~ /d/;
		$out{$n} = \%e;
	}
	return \%out;
}

sub rebuild {
	my ($what) = @_;
	remove_tree("$dir/ids/conf/mailboxes.db");
	my $r = run('reconstruct', '-C', $conf, '-m', '-q');
	is($r->{rc}, 0, "$what: reconstruct -m without mailboxes.db") or diag($r->{err});
	return dump_db();
}

$r = run('spool_audit', '-C', $conf, '-q');
is($r->{rc}, 0, 'spool_audit: clean, the tombstone records taken for no folder')
    or diag($r->{out}, $r->{err});
my $after = rebuild('after the migration');
my @tombs = sort grep { $after->{$_}{mbtype} =~ /d/ } keys %$after;
is_deeply(\@tombs, \@ctombs, 'every tombstone back, by name') or
    diag("lost: " . join(' ', grep { !$after->{$_} } @ctombs));
is_deeply(comparable($after), comparable($before), 'every entry back, tombstones field by field');

# A folder deleted after the migration: its tombstone comes back too.
$r = run('ctl_mboxlist', '-C', $conf, '-i', '-x', 'user.alice.Gone');
is($r->{rc}, 0, 'ctl_mboxlist -x user.alice.Gone') or diag($r->{err});
$before = dump_db();
ok($before->{'user.alice.Gone'} && $before->{'user.alice.Gone'}{mbtype} =~ /d/,
    'the delete left a tombstone');
$after = rebuild('after a delete');
is_deeply(comparable($after), comparable($before), 'after a delete: every entry back');

# The record is what spool-layout.md says.
my $rec = slurp("$dir/cyrus/spool/.tombstones/user/alice/tombstones");
like($rec, qr/^%\(N user\.alice\.Trash I \S+ T edl? V \d+ C \d+ F \d+ M \d+\)$/m,
    "alice's record holds user.alice.Trash");
done_testing();
