#!/usr/bin/perl
# Every numeric option and configuration value goes through one checked
# parser: digits only, overflow and range refused (never clamped, never
# wrapped), and a bad value names itself, its option or its key and
# line, before the usage line or exit 3.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $dir = scratch();
my $conf = write_conf($dir);
my $r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/john', 'user/john/Sent');
die $r->{err} if $r->{rc};

# The line of key in file.
sub line_of {
	my ($file, $key) = @_;
	my @l = split /\n/, slurp($file);
	my ($n) = grep { $l[$_ - 1] =~ /^\Q$key\E:/ } 1 .. @l;
	return $n;
}

my $huge = '99999999999999999999';
my $i64 = '9223372036854775807';
my @cases = (
	# tool, option, value, range
	['relocated', '--grace', $i64, 'a whole number from 0 to 31536000'],
	['relocated', '--grace', $huge, 'a whole number from 0 to 31536000'],
	['relocated', '--grace', '18446744073709551616', 'a whole number from 0 to 31536000'],
	['relocated', '--grace', '-1', 'a whole number from 0 to 31536000'],
	['relocated', '--grace', ' 60', 'a whole number from 0 to 31536000'],
	['relocated', '--grace', '0x10', 'a whole number from 0 to 31536000'],
	['relocated', '--interval', $huge, 'a whole number from 0 to 31536000'],
	['relocated', '--rate', '1e999', 'a number from 0 to 1000000000'],
	['relocated', '--rate', 'nan', 'a number from 0 to 1000000000'],
	['relocated', '--rate', 'inf', 'a number from 0 to 1000000000'],
	['relocated', '--rate', '1.', 'a number from 0 to 1000000000'],
	['relocated', '--io-pressure', '101', 'a number from 0 to 100'],
	['relocated', '--jobs', $huge, 'a whole number from 1 to 64'],
	['spool_audit', '-j', '0', 'a whole number from 1 to 1024'],
	['spool_audit', '-j', '4294967297', 'a whole number from 1 to 1024'],
	['ctl_rename', '-t', '-1', 'a whole number from 0 to 86400'],
	['ctl_rename', '-t', '4294967296', 'a whole number from 0 to 86400'],
	['ctl_rename', '-t', '2147484', 'a whole number from 0 to 86400'],
);
for my $c (@cases) {
	my ($tool, $opt, $val, $range) = @$c;
	my @rest = $tool eq 'ctl_rename' ? ('user/john/Sent', 'user/john/Old') :
	    $tool eq 'relocated' ? ('-1') : ();
	$r = run($tool, '-C', $conf, $opt, $val, @rest);
	is($r->{rc}, 2, "$tool $opt '$val': exit 2");
	like($r->{err}, qr/^\Q$tool: $opt: '$val' is not $range\E\nusage: \Q$tool\E /,
	    "... naming the option, the value and the range") or diag($r->{err});
}

# Nothing was done by any of them: the old name still resolves, no
# uniqueid path was made, no rename happened.
$r = run('ctl_mboxlist', '-C', $conf, '-l');
like($r->{out}, qr{^user/john/Sent\t}m, 'the folder is still where it was');

# The largest values accepted are accepted.
$r = run('relocated', '-C', $conf, '-n', '--grace', '31536000', '--rate', '0.5',
    '--io-pressure', '100', '--jobs', '64', '--interval', '0');
is($r->{rc}, 0, 'the bounds themselves are accepted') or diag($r->{err});
$r = run('spool_audit', '-C', $conf, '-q', '-j', '1024');
is($r->{rc}, 0, 'spool_audit -j 1024') or diag($r->{err});

# Configuration values: the file, the line and the key are named, exit 3.
my @conf_cases = (
	['relocated_grace', $i64, 'a whole number from 0 to 31536000'],
	['relocated_grace', $huge, 'a whole number from 0 to 31536000'],
	['relocated_interval', '-5', 'a whole number from 0 to 31536000'],
	['relocated_rate', '1e9999', 'a number from 0 to 1000000000'],
	['relocated_io_pressure', '-1', 'a number from 0 to 100'],
	['relocated_jobs', '0', 'a whole number from 1 to 64'],
);
my $n = 0;
for my $c (@conf_cases) {
	my ($key, $val, $range) = @$c;
	my $d = "$dir/c" . $n++;
	my $file = write_conf($d, $key => $val);
	my $line = line_of($file, $key);
	$r = run('relocated', '-C', $file, '-n');
	is($r->{rc}, 3, "$key: $val: exit 3");
	is($r->{err}, "relocated: $file:$line: $key: '$val' is not $range\n",
	    '... naming the file, line, key, value and range');
}
for my $val ('5X', '-1', '0', '1023', '2T', $huge, "${huge}K", '18014398509481984K') {
	my $d = "$dir/c" . $n++;
	my $file = write_conf($d, mboxlist_mapsize => $val);
	my $line = line_of($file, 'mboxlist_mapsize');
	$r = run('mbpath', '-C', $file, 'user/john');
	is($r->{rc}, 3, "mboxlist_mapsize: $val: exit 3");
	is($r->{err}, "mbpath: $file:$line: mboxlist_mapsize: '$val' is not a size from 64K to 1T\n",
	    '... named');
}
for my $val ('64K', '65536', '1g', '1T') {
	my $d = "$dir/c" . $n++;
	my $file = write_conf($d, mboxlist_mapsize => $val);
	# memcheck cannot give a process a 1 TiB map (its address space
	# stops at 128 GiB): that one runs bare under make valgrind
	local $IdsTest::NO_VALGRIND = $val eq '1T';
	$r = run('ctl_mboxlist', '-C', $file, '-c', 'user/john');
	is($r->{rc}, 0, "mboxlist_mapsize: $val is accepted") or diag($r->{err});
}

done_testing();
