# IdsTest.pm - helpers for idspool's end-to-end tests (Test::More, TAP).
#
# Each test file gets its own scratch directory under t/trash/<test>/,
# wiped at start; tools are run from $IDS_BUILD/bin with stdout, stderr
# and the exit status captured.
package IdsTest;

use strict;
use warnings;
use Exporter 'import';
use File::Basename qw(basename);
use File::Path qw(make_path remove_tree);
use File::Spec;
use Cwd qw(abs_path);
use IPC::Open3;
use Symbol qw(gensym);
use Test::More ();

our @EXPORT = qw(scratch write_conf run tool slurp spew sha1_file man_synopsis norm valgrind
    ok_run ids_peer nofile);

my $top = abs_path(File::Spec->catdir((File::Spec->splitpath(abs_path(__FILE__)))[1], '..', '..'));
my $build = $ENV{IDS_BUILD} // "$top/build";

sub tool { my ($name) = @_; return "$build/bin/$name"; }

# scratch(): a fresh directory for this test file.
sub scratch {
	my $name = basename($0, '.t');
	# Under the build directory when one is given, so that two builds
	# testing one tree at once (make check, the sanitizers, valgrind)
	# never share a scratch directory.
	my $dir = $ENV{IDS_BUILD} ? "$build/trash/$name" : "$top/t/trash/$name";
	remove_tree($dir);
	make_path($dir) or die "cannot create $dir: $!";
	return $dir;
}

# write_conf($dir, key => value, ...): an imapd.conf in $dir with a
# config directory and a default partition inside $dir, plus any keys given
# (a value of undef drops a default key).  Returns the file's path.
sub write_conf {
	my ($dir, %kv) = @_;
	my %conf = (
		configdirectory => "$dir/conf",
		'partition-default' => "$dir/spool",
		defaultpartition => 'default',
		hashimapspool => 'yes',
		unixhierarchysep => 'yes',
		virtdomains => 'userid',
		%kv,
	);
	for my $k (qw(configdirectory partition-default)) {
		make_path($conf{$k}) if defined $conf{$k};
	}
	my $file = "$dir/imapd.conf";
	open my $fh, '>', $file or die "$file: $!";
	print $fh "# written by IdsTest\n";
	for my $k (sort keys %conf) {
		print $fh "$k: $conf{$k}\n" if defined $conf{$k};
	}
	close $fh;
	return $file;
}

# make valgrind (IDS_VALGRIND=1): every program of the build runs under
# memcheck; an error or a definite leak makes it exit 99.  Each process
# (a forked daemon too) writes its report to a file of its own in
# IDS_VALGRIND_LOGS (default $build/valgrind), where `make valgrind`
# looks for any that is not empty once the tests are done: a daemon's
# exit status reaches no test.  A run meant to be killed
# (IDS_FAILPOINT_CRASH) is not run under valgrind, nor any while a test
# sets $IdsTest::NO_VALGRIND (a run that must match such runs).
# valgrind($cmd): the words to put before $cmd, or none.
our $NO_VALGRIND;
sub valgrind {
	my ($cmd) = @_;
	return () unless $ENV{IDS_VALGRIND} && index($cmd, "$build/") == 0 &&
	    !$ENV{IDS_FAILPOINT_CRASH} && !$NO_VALGRIND;
	my $logs = $ENV{IDS_VALGRIND_LOGS} // "$build/valgrind";
	make_path($logs);
	# --max-threads: spool_audit -j takes up to 1024 threads; --vgdb=no:
	# no gdbserver pipes in /tmp, which a tool that becomes the spool's
	# owner could not remove
	return (qw(valgrind -q --error-exitcode=99 --leak-check=full
	    --errors-for-leak-kinds=definite --show-leak-kinds=definite --max-threads=1100 --vgdb=no),
	    "--log-file=$logs/" . basename($0, '.t') . '.%p.log');
}

# run($tool, @args): runs a tool (a bare name is looked up in the build's
# bin/), optionally with stdin => $text as the last two arguments.
# Returns a hash: out, err, rc (exit status, or 128+signal).  Under
# valgrind, its report (if any) is appended to err.
sub run {
	my @cmd = @_;
	my $stdin;
	if (@cmd >= 2 && $cmd[-2] eq 'stdin') { $stdin = pop @cmd; pop @cmd; }
	# A bare name is one of ours if the build has it, else found on PATH.
	$cmd[0] = tool($cmd[0]) if $cmd[0] !~ m{/} && -x tool($cmd[0]);
	my @vg = valgrind($cmd[0]);
	unshift @cmd, @vg;
	my $err = gensym;
	# A program that exits before reading its input must not kill us.
	local $SIG{PIPE} = 'IGNORE';
	my $pid = open3(my $in, my $out, $err, @cmd);
	print $in $stdin if defined $stdin;
	close $in;
	local $/;
	my $o = <$out> // '';
	my $e = <$err> // '';
	waitpid($pid, 0);
	my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
	if (@vg) {
		(my $log = $vg[-1]) =~ s/^--log-file=//;
		$log =~ s/%p/$pid/;
		# Its errors and leaks ("==pid=="), not its notes ("--pid--",
		# such as the unhandled openat2 that valgrind 3.19 answers
		# with ENOSYS, which the program takes as a kernel without it).
		$e .= join('', grep { !/^--\d+-- / } split /^/, slurp($log)) if -s $log;
	}
	return { out => $o, err => $e, rc => $rc };
}

# nofile($limit, @cmd): @cmd run with at most $limit open files and none
# but 0, 1 and 2 inherited (whatever runs prove may pass descriptors of
# its own, which would move the budget from one machine to the next).
sub nofile {
	my ($lim, @cmd) = @_;
	return ('perl', '-MPOSIX', '-e', 'POSIX::close($_) for 3 .. 1023; exec @ARGV or die "$ARGV[0]: $!\n"',
	    'sh', '-c', "ulimit -n $lim; exec \"\$@\"", 'sh', @cmd);
}

# ok_run($what, @cmd): run(@cmd) is a test that it exits 0 (its output
# and errors shown when not); returns run's hash.
sub ok_run {
	my ($what, @cmd) = @_;
	my $r = run(@cmd);
	Test::More::is($r->{rc}, 0, $what) or Test::More::diag($r->{out}, $r->{err});
	return $r;
}

# ids_peer($conf): the command of an idspool replica session on the
# spool of $conf, as spool_sync runs its peer.
sub ids_peer { return (tool('spool_sync'), '-C', $_[0], '--serve'); }

# norm($text): white space folded, ends trimmed.
sub norm {
	my ($s) = @_;
	$s =~ s/\s+/ /g;
	$s =~ s/^ | $//g;
	return $s;
}

# man_synopsis($page): the SYNOPSIS section of a man page (path relative
# to the top of the tree), rendered, normalised.
sub man_synopsis {
	my ($page) = @_;
	my $man = `mandoc -T ascii '$top/$page'`;
	$man =~ s/.\x08//g;
	my ($syn) = $man =~ /\nSYNOPSIS\n(.*?)\n\n/s;
	return norm($syn // '');
}

sub slurp {
	my ($f) = @_;
	open my $fh, '<', $f or die "$f: $!";
	binmode $fh;
	local $/;
	return scalar <$fh>;
}

sub spew {
	my ($f, $data) = @_;
	open my $fh, '>', $f or die "$f: $!";
	binmode $fh;
	print $fh $data;
	close $fh or die "$f: $!";
}

sub sha1_file {
	require Digest::SHA;
	return Digest::SHA->new(1)->addfile($_[0], 'b')->hexdigest;
}

1;
