#!/usr/bin/perl
# t4200-relocated-log.t - what relocated says while it works: the daemon
# logs to a file or its standard error with --log, under Cyrus's
# syslog_prefix (CYRUS_SYSLOG_PREFIX wins); a pass cut short by SIGHUP
# is logged as that, not as "(stopped)"; and on a terminal the progress
# bar of -1 says "waiting N s of grace" rather than sitting at 99% or
# "100% (paused)" through the grace period.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use Test::More;
use IdsTest;

my $dir = scratch();
my $slow = $ENV{IDS_VALGRIND} ? 10 : 1;
my @daemons;
END { kill 'TERM', grep { kill 0, $_ } @daemons; }

sub wait_until {
	my ($secs, $cond) = @_;
	my $end = time + $secs * $slow;
	while (time < $end) { return 1 if $cond->(); select(undef, undef, undef, 0.1); }
	return 0;
}

# A fresh legacy spool.
sub spool {
	my ($name, %kv) = @_;
	my $d = "$dir/$name";
	remove_tree($d);
	make_path($d);
	my $conf = write_conf($d, %kv);
	my $r = run('mkspool', '-C', $conf, '-u', 3, '-f', 20, '-m', 60);
	is($r->{rc}, 0, "$name: a legacy spool") or diag($r->{err});
	return ($d, $conf);
}

sub daemon_pid {
	my ($d) = @_;
	my $pid = -e "$d/conf/relocated.pid" ? 0 + slurp("$d/conf/relocated.pid") : 0;
	push @daemons, $pid if $pid;
	return $pid;
}

# ---- --log FILE, syslog_prefix, SIGHUP, SIGTERM ----------------------
{
	my ($d, $conf) = spool('a', syslog_prefix => 'cyrus1');
	my $log = "$dir/a.log";
	my $r = run('relocated', '-C', $conf, '--log', $log, '--grace', '0', '--rate', '20',
	    '--interval', '3600');
	is($r->{rc}, 0, 'the daemon starts with --log FILE') or diag($r->{err});
	my $pid = daemon_pid($d);
	ok(wait_until(10, sub { -s $log && slurp($log) =~ /started/ }), '... and logs to the file');
	like(slurp($log), qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ cyrus1\/relocated\[$pid\]: started: strategy link/m,
	    '... as syslog_prefix/relocated[pid], as Cyrus names its programs');
	kill 'HUP', $pid;
	ok(wait_until(20, sub { slurp($log) =~ /re-read/ }), 'SIGHUP: the configuration is re-read');
	ok(wait_until(30, sub { slurp($log) =~ /^.*pass 2[:( ]/m }), '... and a new pass starts');
	kill 'TERM', $pid;
	ok(wait_until(20, sub { !kill(0, $pid) }), 'SIGTERM: the daemon exits');
	my $text = slurp($log);
	like($text, qr/: stopped$/m, '... logging that it stopped');
	my ($p1) = $text =~ /^.*: (pass 1\b.*)$/m;
	ok(defined $p1, 'pass 1 is logged') or diag($text);
	unlike($p1 // '', qr/\(stopped\)/, '... not as "(stopped)": a reload does not stop the daemon');
	like($p1 // '', qr/^pass 1(?: \(ended early to re-read the configuration\))?: /,
	    '... but as ended early to re-read the configuration, if it was cut short');
}

# ---- --log stderr, and CYRUS_SYSLOG_PREFIX ---------------------------
{
	my ($d, $conf) = spool('b', syslog_prefix => 'cyrus1');
	my $err = "$dir/b.err";
	local $ENV{CYRUS_SYSLOG_PREFIX} = 'imap2';
	my $r = run('sh', '-c', "'" . tool('relocated') . "' -C '$conf' --log stderr --grace 0 " .
	    "--interval 3600 2>'$err'");
	is($r->{rc}, 0, 'the daemon starts with --log stderr') or diag($r->{err});
	my $pid = daemon_pid($d);
	ok(wait_until(20, sub { -s $err && slurp($err) =~ /pass 1/ }), '... and logs to its standard error');
	like(slurp($err), qr/ imap2\/relocated\[$pid\]: started/, '... CYRUS_SYSLOG_PREFIX wins over syslog_prefix');
	kill 'TERM', $pid;
	ok(wait_until(20, sub { !kill(0, $pid) }), 'SIGTERM: the daemon exits');
	$r = run('relocated', '-C', $conf, '--log', "$dir/no/such/dir/x.log", '-1');
	is($r->{rc}, 3, '--log to a file that cannot be opened: exit 3');
	like($r->{err}, qr{^relocated: --log \Q$dir\E/no/such/dir/x\.log: No such file or directory$}m, '... saying why');
	is(run('relocated', '-C', $conf, '--log', '', '-1')->{rc}, 2, '--log with nothing: a usage error');
}

# ---- the progress bar through the grace period ------------------------
{
	my ($d, $conf) = spool('c');
	my $out = "$dir/c.tty";
	my $cmd = "'" . tool('relocated') . "' -C '$conf' -1 --grace 3";
	my $r = run('script', '-qefc', $cmd, $out);
	is($r->{rc}, 0, 'relocated -1 on a terminal') or diag($r->{out}, $r->{err});
	my $tty = slurp($out);
	like($tty, qr/waiting \d+ s of grace \(\d+ old names? kept\)/, 'the bar says it waits for the grace period');
	unlike($tty, qr/\(paused\)/, '... not "(paused)"');
	unlike($tty, qr/ 99% \d+\/\d+ folders[^\r]*ETA 0:00:00/, '... nor 99% with an ETA of 0:00:00');
}

done_testing();
