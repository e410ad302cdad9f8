#!/usr/bin/perl
# t7455-journal-crash.t - the change journal's durability (sync_log: 1):
#
#  - spool_append, ctl_mboxlist -c / -x and ctl_rename killed at every
#    failpoint they reach (IDS_FAILPOINT_CRASH=k, k = 1, 2, ...): after
#    each crash and the recovery of the next tool, every folder whose
#    state changed (created, delivered to, renamed, deleted) is named by
#    a journal entry written since the command started: no committed
#    change lacks its entry;
#  - a torn last entry (a writer killed inside its write) is skipped,
#    and the next writer's entry after it is read;
#  - a journal that cannot be made durable (journal.fsync failing with
#    EIO) fails the delivery, which leaves nothing committed;
#  - the walker (relocated -1) and reconstruct journal the folders they
#    write, the walker not once per poll of a pending intent;
#  - with sync_log off, writers leave no journal.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf channel);

my $dir = scratch();
my $p = spool_conf("$dir/p", delete_mode => 'immediate', sync_log => 1);
our $journal = "$dir/p/conf/sync/journal";

# uniqueid -> "name records" of the live folders.
sub snapshot {
	my $s = CyrusPeer::ids_state($p);
	my %snap;
	for my $id (keys %$s) {
		my $rec = $s->{$id}{records};
		$snap{$id} = join(' ', $s->{$id}{name}, map { "$_=$rec->{$_}" } sort keys %$rec);
	}
	return \%snap;
}

# The uniqueids and names of the whole entries after byte offset $from.
sub entries_since {
	my ($from) = @_;
	my $j = -e $journal ? slurp($journal) : '';
	my %seen;
	for my $l (split /\n/, substr($j, $from)) {
		my ($crc, $id, $name) = $l =~ /^([0-9a-f]{8}) (\S+) (.*)$/ or next;
		$seen{$id} = 1 if $id ne '-';
		$seen{$name} = 1 if $name ne '-';
	}
	return \%seen;
}

# Runs @cmd killed at its k-th failpoint for k = 1, 2, ... until it
# finishes; after each run, the recovery of a writing tool, then the
# check.  Returns the number of crashes.
sub crash_each {
	my ($what, @cmd) = @_;
	my ($k, $bad) = (0, 0);
	for ($k = 1; $k < 200; $k++) {
		my $before = snapshot();
		my $off = -e $journal ? -s $journal : 0;
		local $ENV{IDS_FAILPOINT_CRASH} = $k;
		my $r = run(@cmd);
		delete local $ENV{IDS_FAILPOINT_CRASH};
		# the recovery of the next writer (mailboxes.db opened for writing)
		run('ctl_mboxlist', '-C', $p, '-i', '-c', 'user.recovery.x');
		run('ctl_mboxlist', '-C', $p, '-i', '-x', 'user.recovery.x');
		my $after = snapshot();
		my $seen = entries_since($off);
		for my $id (sort keys %{ { %$before, %$after } }) {
			next if ($before->{$id} // '') eq ($after->{$id} // '');
			next if ($before->{$id} // $after->{$id}) =~ /^user\.recovery\b/;
			unless ($seen->{$id}) {
				$bad++;
				diag("$what, crash at point $k: $id changed ('" . ($before->{$id} // '') .
				    "' -> '" . ($after->{$id} // '') . "') with no journal entry");
			}
		}
		last if $r->{rc} != 137;
	}
	is($bad, 0, "$what: killed at each of its " . ($k - 1) . " failpoints, " .
	    "every change it committed is in the journal");
	return $k - 1;
}

ok_run('a folder', 'ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice');
ok(-s $journal, 'the journal is written');
like(slurp($journal), qr/\Aidspool-journal 1 0{20}\n[0-9a-f]{8} [-0-9a-f]+ /,
    'its header, then entries');

my $n = crash_each('spool_append', 'spool_append', '-C', $p, '-q', '-i', 'user.alice',
    stdin => "Subject: one\n\nbody\n");
ok($n >= 3, "spool_append passes $n failpoints (the journal's among them)");
crash_each('ctl_mboxlist -c', 'ctl_mboxlist', '-C', $p, '-i', '-c', 'user.alice.Sub');
crash_each('ctl_rename', 'ctl_rename', '-C', $p, '-i', 'user.alice.Sub', 'user.alice.Moved');
crash_each('ctl_mboxlist -x', 'ctl_mboxlist', '-C', $p, '-i', '-x', 'user.alice.Moved');

# The journal's own points, each alone.
for my $fp (qw(journal.append journal.fsync)) {
	my $before = snapshot();
	local $ENV{IDS_FAILPOINT_CRASH} = "1:$fp";
	my $r = run('spool_append', '-C', $p, '-q', '-i', 'user.alice', stdin => "Subject: x\n\ny\n");
	is($r->{rc}, 137, "spool_append killed at $fp");
	delete local $ENV{IDS_FAILPOINT_CRASH};
	is_deeply(snapshot(), $before, '... before the delivery changed anything');
}

# A torn last entry, as a writer killed inside its write(2) leaves it.
sub lag { return channel($p)->{lag}; }
my $lag = lag();
open my $fh, '>>', $journal or die;
print $fh "0badc0de 12345678-torn";
close $fh;
is(lag(), $lag, 'a torn last entry is not counted');
ok_run('a delivery after it', 'spool_append', '-C', $p, '-q', '-i', 'user.alice',
    stdin => "Subject: after\n\nbody\n");
is(lag(), $lag + 1, '... whose entry is read after the torn one');
like(slurp($journal), qr/12345678-torn\n[0-9a-f]{8} /, '... which the writer ended first');

# A journal that cannot be made durable fails the writer.
my $before = snapshot();
{
	local $ENV{IDS_FAILPOINT} = 'journal.fsync:EIO';
	my $r = run('spool_append', '-C', $p, '-i', 'user.alice', stdin => "Subject: eio\n\nbody\n");
	is($r->{rc}, 1, 'journal.fsync failing: the delivery fails');
	like($r->{err}, qr{^spool_append: user\.alice: .*sync/journal: Input/output error}m, '... naming the journal')
	    or diag($r->{err});
}
is_deeply(snapshot(), $before, '... and nothing was delivered');

# The walker and reconstruct: a legacy spool migrated by relocated -1,
# each folder named in the journal; reconstruct of one folder too.
make_path("$dir/w");
my $w = write_conf("$dir/w", sync_log => 1);
ok_run('a legacy spool', 'mkspool', '-C', $w, '-u', 3, '-f', 6, '-m', 20);
my $wj = "$dir/w/conf/sync/journal";
my $woff = -e $wj ? -s $wj : 0;
ok_run('relocated -1 migrates it', 'relocated', '-C', $w, '-1', '--grace', 3);
my $wdb = decode_json(run('ctl_mboxlist', '-C', $w, '-d')->{out});
my $wseen = do { local $journal = $wj; entries_since($woff) };
my @unseen = grep { !$wseen->{ $wdb->{$_}{uniqueid} } } keys %$wdb;
ok(keys %$wdb == 6 && !@unseen, 'the walker: every migrated folder is in the journal')
    or diag("@unseen");
my @nrec = map { my $c = () = slurp($wj) =~ /\Q$wdb->{$_}{uniqueid}\E -\n/g; $c } keys %$wdb;
ok(!grep({ $_ > 2 } @nrec), '... a few entries each, none per poll of its pending intent')
    or diag("@nrec");
my ($one) = sort keys %$wdb;
$woff = -s $wj;
ok_run('reconstruct of one folder', 'reconstruct', '-C', $w, '-i', $one);
$wseen = do { local $journal = $wj; entries_since($woff) };
ok($wseen->{ $wdb->{$one}{uniqueid} }, 'reconstruct: the folder is in the journal');

# sync_log off: no journal.
my $q = spool_conf("$dir/q");
ok_run('a folder without sync_log', 'ctl_mboxlist', '-C', $q, '-i', '-c', 'user.bob');
ok_run('a delivery without sync_log', 'spool_append', '-C', $q, '-q', '-i', 'user.bob',
    stdin => "Subject: q\n\nbody\n");
ok(!-e "$dir/q/conf/sync/journal", 'sync_log off: no journal is written');

done_testing();
