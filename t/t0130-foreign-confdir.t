#!/usr/bin/perl
# t0130-foreign-confdir.t - never write into Cyrus's own configuration
# directory: a configdirectory whose mailboxes.db is Cyrus's (twoskip,
# skiplist) or anything else not LMDB is refused by every tool before it
# creates a file there (LMDB's mailboxes.db-lock included); the default
# configuration file is /etc/idspool.conf, never /etc/imapd.conf; and
# mkspool, which writes a new spool, has no default at all.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Test::More;
use IdsTest;

my $dir = scratch();

# What `ls -a` shows of a directory tree.
sub listing {
	my ($d) = @_;
	return join("\n", sort split /\n/, `cd '$d' && find . -printf '%p %s\\n'`);
}

my %kinds = (
	twoskip => "\xa1\x02\x8b\x0dtwoskip file\0\0\0\0" . "\0" x 48,
	skiplist => "\xa1\x02\x8b\x0dskiplist file\0\0\0" . "\0" x 48,
	'unknown format' => "configdirectory: not a database at all\n",
);

my $msg = "$dir/m.eml";
spew($msg, "Subject: x\r\n\r\nx\r\n");
my @cmds = (
	['mbpath', 'user/john'],
	['mbpath', '--layout', 'legacy', 'user/john'],
	['ctl_mboxlist', '-d'],
	['ctl_mboxlist', '-l'],
	['ctl_mboxlist', '-c', 'user/john'],
	['ctl_mboxlist', '-x', 'user/john'],
	['ctl_mboxlist', '-u', stdin => "{\n}\n"],
	['ctl_rename', 'user/john', 'user/jane'],
	['reconstruct', '-m'],
	['reconstruct', '-m', '-n'],
	['reconstruct', 'user/john'],
	['spool_audit'],
	['spool_append', 'user/john', $msg],
	['relocated', '-1'],
	['relocated', '-n'],
	['relocated', '-s'],
	['spool_sync', '--serve', stdin => "EXIT\r\n"],
	['mkspool', '--size', 'tiny', '--force'],
);

for my $kind (sort keys %kinds) {
	my $d = "$dir/$kind" =~ s/ /-/r;
	make_path($d);
	my $conf = write_conf($d);
	spew("$d/conf/mailboxes.db", $kinds{$kind});
	# What a Cyrus configuration directory holds beside it.
	make_path("$d/conf/user/j", "$d/conf/proc");
	spew("$d/conf/annotations.db", $kinds{$kind});
	my $before = listing($d);
	for my $c (@cmds) {
		my ($tool, @args) = @$c;
		my $r = run($tool, '-C', $conf, @args);
		is($r->{rc}, 3, "$kind: $tool @args: exit 3") or diag($r->{err});
		my $what = $kind eq 'unknown format' ? 'unknown format' : "a Cyrus $kind database";
		like($r->{err}, qr{^\Q$tool: $d/conf/mailboxes.db: not an idspool mailboxes.db ($what)\E},
		    "$kind: $tool @args: says why");
		is(listing($d), $before, "$kind: $tool @args: no file created or changed");
	}
}

# The default configuration file is idspool's own.
{
	for my $tool (qw(mbpath ctl_mboxlist reconstruct spool_audit relocated ctl_rename)) {
		my @a = $tool eq 'mbpath' ? ('user/x') : $tool eq 'ctl_mboxlist' ? ('-l') :
		    $tool eq 'reconstruct' ? ('user/x') : $tool eq 'relocated' ? ('-s') :
		    $tool eq 'ctl_rename' ? ('user/x', 'user/y') : ();
		my $r = run($tool, @a);
		like($r->{err}, qr{^\Q$tool: /etc/idspool.conf\E}, "$tool without -C reads /etc/idspool.conf")
		    or diag($r->{err});
		unlike($r->{err}, qr{imapd\.conf}, "$tool without -C: never /etc/imapd.conf");
	}
	my $r = run('mkspool', '--size', 'tiny');
	is($r->{rc}, 2, 'mkspool without -C: a usage error');
	like($r->{err}, qr{^mkspool: -C conf is required}, '... saying -C is required');
}

done_testing();
