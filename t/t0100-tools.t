#!/usr/bin/perl
# The conventions every command keeps (idspool(7)): --help prints the
# man page's SYNOPSIS and a line on each of its options, --version, the same exit codes (2 for a bad
# command line, 3 when the configuration cannot be read), messages
# shaped "prog: object: reason", -q accepted everywhere, and man pages
# that render without warnings.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my %pages = (
	mbpath       => 'src/mbpath/mbpath.8',
	ctl_mboxlist => 'src/ctl_mboxlist/ctl_mboxlist.8',
	ctl_rename   => 'src/ctl_rename/ctl_rename.8',
	spool_append => 'src/spool_append/spool_append.8',
	spool_audit  => 'src/spool_audit/spool_audit.8',
	spool_sync   => 'src/spool_sync/spool_sync.8',
	reconstruct  => 'src/reconstruct/reconstruct.8',
	relocated    => 'migrate/relocated/relocated.8',
	mkspool      => 'contrib/mkspool/mkspool.8',
	idspool      => 'src/idspool/idspool.8',
);
# Arguments that get each command as far as reading its configuration.
my %args = (
	mbpath       => ['user/x'],
	ctl_mboxlist => ['-l'],
	ctl_rename   => ['user/x/a', 'user/x/b'],
	spool_append => ['user/x'],
	spool_audit  => [],
	spool_sync   => ['--serve'],
	reconstruct  => ['-m'],
	relocated    => ['-s'],
	mkspool      => [],
	idspool      => undef,	# the front command reads no configuration
);
my $top = "$FindBin::Bin/..";
my $dir = scratch();
my $missing = "$dir/no-such-dir/imapd.conf";

for my $tool (sort keys %pages) {
	my $r = run($tool, '--help');
	is($r->{rc}, 0, "$tool --help: exit 0");
	like($r->{out}, qr/^usage: \Q$tool\E /, "$tool --help: usage on stdout");
	my ($usage, $options) = split /\n\n/, $r->{out}, 2;
	is(norm($usage =~ s/^usage: //r =~ s/\n\s*usage: / /gr), man_synopsis($pages{$tool}),
	    "$tool --help: the man page's SYNOPSIS");
	# A line on each option of the synopsis, saying what it does.
	my %opt = map { $_ => 1 } $usage =~ /(?<![\w-])(--?[A-Za-z0-9][\w-]*)/g;
	delete @opt{qw(--help --version)};
	my @missing = grep { ($options // '') !~ /^\s+(?:-\S+, )?\Q$_\E\b.*\S\s\S/m } sort keys %opt;
	is("@missing", '', "$tool --help: a line with a word on each option") if $tool ne 'idspool';

	$r = run($tool, '--version');
	is($r->{rc}, 0, "$tool --version: exit 0");
	like($r->{out}, qr/^\Q$tool\E \(idspool\) \d+\.\d+\.\d+\n\z/, "$tool --version");

	$r = run($tool, '--no-such-option');
	is($r->{rc}, 2, "$tool: a bad option exits 2");
	like($r->{err}, qr/^\Q$tool\E: /m, "$tool: the message names the program, not a path");
	like($r->{err}, qr/usage: \Q$tool\E/, "$tool: the usage follows");

	next unless defined $args{$tool};
	$r = run($tool, '-C', $missing, @{$args{$tool}}, 'stdin', '');
	is($r->{rc}, 3, "$tool: an unreadable configuration exits 3");
	like($r->{err}, qr/^\Q$tool\E: \Q$missing\E: No such file or directory$/m,
	    "$tool: prog: object: reason");
}

# A mailboxes.db this build cannot read: its path is named once.
{
	my $c = write_conf("$dir/v");
	open my $fh, '|-', "mdb_load -n -f /dev/stdin '$dir/v/conf/mailboxes.db'" or die;
	print $fh "VERSION=3\nformat=print\ntype=btree\nHEADER=END\n #version\n 9\nDATA=END\n";
	close $fh or die "mdb_load failed";
	for my $tool (grep { $_ ne 'mkspool' && defined $args{$_} } sort keys %args) {
		for my $extra ([], $tool eq 'reconstruct' ? (['-n']) : ()) {
			my $r = run($tool, '-C', $c, @{$args{$tool}}, @$extra, 'stdin', '');
			is($r->{rc}, 3, "$tool @$extra: an unreadable mailboxes.db exits 3");
			is($r->{err}, "$tool: $dir/v/conf/mailboxes.db: format version '9', this build reads 1\n",
			    "$tool @$extra: ... naming the path once");
		}
	}
}

# Every page renders without warnings, the general ones too.
for my $page ((values %pages), 'src/man/idspool.7', 'src/man/idspool.conf.5') {
	my $out = `mandoc -T lint -W warning '$top/$page' 2>&1`;
	is($?, 0, "$page: mandoc -T lint") or diag($out);
	like(slurp("$top/$page"), qr/^\.Sh SEE ALSO\n(?:\.Xr \S+ \d(?: ,)?\n)+/m, "$page: SEE ALSO");
}

done_testing();
