#!/usr/bin/perl
# t4300-relocated-calls.t - the system calls the walker makes per folder
# (strace), with both strategies, on a spool from mkspool: the link
# strategy reads each legacy directory once (the check) and each new one
# once (the read-back), never rewinds a directory it has just opened,
# opens a shared parent once per step, and asks for no cyrus.index it
# is about to open; a header read after the check is read without a
# stat; a current header is linked with its index, not made anew; the
# rename strategy rewinds only the parents it checks again.
# And the result is whole: every message file of every folder at its
# new path with its bytes, no file left outside a folder's directory.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Find;
use File::Path qw(make_path);
use Test::More;
use IdsTest;
use LegacySpool;

my $base = scratch();

# A spool of 80 folders of 8 owners, a third of them in a domain.
sub make_spool {
	my ($name) = @_;
	my $w = "$base/$name";
	make_path($w);
	my $conf = write_conf($w, relocated_io_pressure => 0);
	my $r = run('mkspool', '-C', $conf, '-u', 8, '-f', 80, '-m', 800);
	die "mkspool: $r->{err}" if $r->{rc};
	return ($w, $conf);
}

# The calls of one run of relocated, by name: { name => [lines] }.
sub traced {
	my ($w, $conf, @args) = @_;
	my $trace = "$w/trace";
	# LeakSanitizer stops itself under ptrace: no leak check in this run.
	local $ENV{ASAN_OPTIONS} = join(':', grep { length } $ENV{ASAN_OPTIONS} // '', 'detect_leaks=0');
	my $r = run('strace', '-f', '-qq', '-o', $trace, tool('relocated'), '-C', $conf,
	    '-1', '-q', '--grace', '0', '--io-pressure', '0', @args);
	is($r->{rc}, 0, "relocated @args under strace") or diag($r->{err});
	my %calls;
	my @lines = split /\n/, slurp($trace);
	for (@lines) {
		push @{$calls{$1}}, $_ if /^\d+\s+(\w+)\(/;
	}
	$calls{_all} = \@lines;
	return \%calls;
}

sub n { my ($c, $name) = @_; return scalar @{$c->{$name} // []}; }

# Rewinds of a directory: lseek(fd, 0, SEEK_SET) then getdents64(fd).
sub rewinds {
	my ($c) = @_;
	my ($n, %seek) = (0);
	for (@{$c->{_all}}) {
		next unless /^(\d+)\s+(\w+)\((\d+)/;
		my ($pid, $call, $fd) = ($1, $2, $3);
		$n++ if $call eq 'getdents64' && ($seek{$pid} // -1) == $fd;
		$seek{$pid} = $call eq 'lseek' && /, 0, SEEK_SET\)/ ? $fd : -1;
	}
	return $n;
}

# Every message of before at its folder's new directory with its bytes;
# every folder in the uniqueid layout.
sub whole {
	my ($conf, $before, $what) = @_;
	my $after = snapshot($conf);
	my @legacy = grep { $after->{layout}{$_} ne 'uniqueid' } keys %{$after->{layout}};
	is(scalar(@legacy), 0, "$what: every folder migrated") or diag("@legacy");
	is_deeply($after->{files}, $before->{files}, "$what: every message file at its new path, same bytes");
	# No file outside a folder's directory: the old names are all gone.
	my %dirs = map { $_ => 1 } values %{$after->{dir}};
	my @stray;
	find({ no_chdir => 1, wanted => sub {
		push @stray, $_ if -f $_ && !$dirs{($_ =~ m{^(.*)/[^/]+$})[0]};
	} }, "$conf" =~ s{/imapd\.conf$}{/spool}r);
	is(scalar(@stray), 0, "$what: no file left at an old path") or diag(join("\n", @stray[0 .. 4]));
	return $after;
}

# A cyrus.header opened for reading and then stat'ed through its fd.
sub header_stats {
	my ($c) = @_;
	my (%hdr, $n);
	for (@{$c->{_all}}) {
		if (/^(\d+)\s+openat\(\d+, "cyrus\.header", O_RDONLY[^)]*\) = (\d+)/) {
			$hdr{$1} = $2;
		} elsif (/^(\d+)\s+(\w+)\((\d+)/ && defined $hdr{$1}) {
			$n++ if ($2 eq 'newfstatat' || $2 eq 'fstat' || $2 eq 'statx') && $3 == $hdr{$1};
			delete $hdr{$1} if $2 eq 'close' && $3 == $hdr{$1};
		}
	}
	return $n // 0;
}

# Files made anew in a new directory: cyrus.header or cyrus.index
# created (link), or replaced through its .NEW (rename).
sub made {
	my ($c, $file) = @_;
	return scalar grep {
		/^\d+\s+openat\(\d+, "\Q$file\E(?:\.NEW)?", O_WRONLY\|O_CREAT\|O_EXCL/
	} @{$c->{_all}};
}

my %stale;

# ---- link --------------------------------------------------------------

{
	my ($w, $conf) = make_spool('link');
	my $before = snapshot($conf);
	my $nf = scalar keys %{$before->{layout}};
	ok($nf >= 80, "the spool has $nf folders");
	my $c = traced($w, $conf, '--strategy', 'link');
	whole($conf, $before, 'link');
	my $per = sub { sprintf('%.2f', n($c, $_[0]) / $nf) };
	# Before: the check, the link pass, the read-back, and both sides of
	# the cleanup each read a directory (two getdents64 a read): 10 a folder.
	cmp_ok($per->('getdents64'), '<=', 4.5,
	    'link: two directory reads a folder (the check, the read-back), ' . $per->('getdents64') . ' getdents64');
	# Before: a rewind before each of those reads, five a folder.
	is(rewinds($c), 0, 'link: no rewind of a directory (each is read once)');
	# Before: the legacy directory, the new directory's parent, the new directory.
	cmp_ok($per->('openat2'), '<=', 2.5,
	    'link: the parent of new directories opened once per owner and step (' . $per->('openat2') . ' openat2 a folder)');
	my @acc = grep { /cyrus\.index/ } @{$c->{faccessat2} // []}, @{$c->{faccessat} // []};
	is(scalar(@acc), 0, 'link: no access(2) of a cyrus.index about to be opened');
	is(header_stats($c), 0, 'link: the old cyrus.header read without a stat after the check');
	$stale{link} = [made($c, 'cyrus.header'), made($c, 'cyrus.index')];
}

# ---- rename ------------------------------------------------------------

{
	my ($w, $conf) = make_spool('rename');
	my $before = snapshot($conf);
	my $nf = scalar keys %{$before->{layout}};
	my $c = traced($w, $conf, '--strategy', 'rename');
	whole($conf, $before, 'rename');
	# Parents are checked again before their rename (a rewind each);
	# nothing else rewinds.  Before: one for each folder's check too.
	my $rw = rewinds($c);
	my $parents = grep { /RENAME_NOREPLACE/ } @{$c->{renameat2} // []};
	cmp_ok($rw, '<', $nf / 2, "rename: a rewind only for a parent checked again ($rw for $nf folders)");
	is(header_stats($c), 0, 'rename: the moved cyrus.header read without a stat');
	my $renames = grep { /RENAME_NOREPLACE\) = 0/ } @{$c->{renameat2} // []};
	cmp_ok($renames, '>=', $nf / 2, "rename: $renames directories renamed");
	$stale{rename} = made($c, 'cyrus.header');
}

# The same spool (same seed) has the same stale headers: the rename
# strategy rewrites those only, and the link strategy now makes a new
# header (and an index copy) for those only, linking the current ones
# with their index.  Before, it made both for every folder.
ok($stale{rename} > 0 && $stale{rename} < 60, "the spool has $stale{rename} stale headers of 80");
is($stale{link}[0], $stale{rename}, 'link: a new cyrus.header for a stale one only, a current one linked');
is($stale{link}[1], $stale{rename}, 'link: a cyrus.index copy for a stale header only, linked otherwise');

done_testing();
