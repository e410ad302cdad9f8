# SyncPair.pm - two idspool spools that replicate over csync, for the
# spool_sync tests (t/t72xx-t/t75xx): a primary and a replica in the
# namespace of the Cyrus transcripts, messages delivered into them, the
# replica's peer command and a session run between the two (the counts
# of its summary, the APPLYs of its trace), the OPTIONS a peer reports
# of a user's folders, the pair audit, what a session may leave behind,
# a replica fed a session from a string, rolling replication (spool_sync
# -R) run in the background and the status it reports, and a fake Cyrus
# peer that stops reading.
#
# Nothing is exported by default: a test names what it takes.  A "peer"
# argument is the configuration of an idspool replica (whose command is
# IdsTest's ids_peer) or, as an array reference, a whole peer command.
package SyncPair;

use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use JSON::PP;
use Time::HiRes ();
use Test::More ();
use IdsTest;
use CyrusPeer;

our @EXPORT_OK = qw(spool_conf spool_dir must_run deliver ok_append uniqueid_of folder_dir
    peer sync_run ok_sync sent_applies sync_counts folder_options pair_audit serve answers
    staging_left index_new_left clean audit_clean findings rolling_keys rolling_start
    rolling_stop channel poll stuck_peer big_message);

# spool_conf($dir, key => value, ...): an imapd.conf in $dir (made if
# need be) as the transcripts' Cyrus has it -- "." the hierarchy
# separator, no hashed spool -- plus the keys given.  Returns its path.
sub spool_conf {
	my ($dir, %kv) = @_;
	make_path($dir);
	return write_conf($dir, unixhierarchysep => 'no', hashimapspool => 'no', %kv);
}

# spool_dir($conf): the directory that holds $conf (and its spool/, conf/).
sub spool_dir { (my $d = $_[0]) =~ s{/imapd\.conf$}{}; return $d; }

# must_run(@cmd): run(@cmd), dying with its output unless it exits 0.
sub must_run {
	my (@cmd) = @_;
	my $r = run(@cmd);
	die "@cmd[0 .. 2]: $r->{out} $r->{err}" if $r->{rc};
	return $r;
}

# deliver($conf, $folder, $n, $pad): $n messages (default 1) appended to
# $folder, each of its own text ("message <serial>" over the test file);
# with $pad, each body ends in $pad x <serial> "x" (sizes that differ).
my $serial = 0;
sub deliver {
	my ($conf, $folder, $n, $pad) = @_;
	for (1 .. $n // 1) {
		$serial++;
		my $body = $pad ? "Body $serial, " . ('x' x ($serial * $pad)) : "Body $serial";
		must_run('spool_append', '-q', '-C', $conf, '-i', $folder,
		    stdin => "From: x\@example.com\nSubject: message $serial\n\n$body\n");
	}
}

# ok_append($what, $conf, $folder, $text): the message $text appended
# to $folder, as a test that spool_append exits 0 (ok_run).
sub ok_append {
	my ($what, $conf, $folder, $text) = @_;
	return ok_run($what, 'spool_append', '-q', '-C', $conf, '-i', $folder, stdin => $text);
}

# uniqueid_of($conf, $name): the uniqueid of the live folder $name, or undef.
sub uniqueid_of {
	my ($conf, $name) = @_;
	my $st = CyrusPeer::ids_state($conf);
	return (grep { $st->{$_}{name} eq $name } keys %$st)[0];
}

# folder_dir($conf, $name): the folder's directory, from mbpath (dies
# when mbpath fails).
sub folder_dir {
	my ($conf, $name) = @_;
	chomp(my $d = must_run('mbpath', '-C', $conf, '-i', $name)->{out});
	return $d;
}

# peer($conf, @env): the command of an idspool replica session on the
# spool of $conf, run with the environment settings @env ("VAR=value")
# when there are any, which reach the replica alone.
sub peer {
	my ($conf, @env) = @_;
	return (@env ? ('env', @env) : (), ids_peer($conf));
}

sub peer_cmd { return ref $_[0] ? @{$_[0]} : ids_peer($_[0]); }

# sync_run($from, $peer, @opts): spool_sync -C $from @opts -- PEER;
# returns run's hash.  ok_sync($what, $from, $peer, @opts): the same as
# a test that it exits 0 (ok_run).
sub sync_run {
	my ($from, $peer, @opts) = @_;
	return run('spool_sync', '-C', $from, @opts, '--', peer_cmd($peer));
}

sub ok_sync {
	my ($what, $from, $peer, @opts) = @_;
	return ok_run($what, 'spool_sync', '-C', $from, @opts, '--', peer_cmd($peer));
}

# sent_applies($r): how many APPLY lines a spool_sync run with -v -v
# sent (its trace on stderr).
sub sent_applies { return scalar grep { /^spool_sync: > APPLY / } split /\n/, $_[0]{err}; }

# sync_counts($r): the counts of a spool_sync push's or pull's summary
# line: { folders, applied, renamed, deleted, kept, files, meta, failed }.
sub sync_counts {
	my ($r) = @_;
	my %c;
	@c{qw(folders applied renamed deleted kept files meta failed)} = $r->{out} =~
	    /^(?:pull|push): (\d+) folder\(s\) compared, (\d+) applied, (\d+) renamed, (\d+) deleted, (\d+) kept, (\d+) file\(s\), (\d+) user item\(s\), (\d+) failed$/m;
	return \%c;
}

# folder_options($user, @peer): name -> OPTIONS of the user's folders,
# as the sync server @peer (a whole command) answers GET USER; "" for
# OPTIONS "".
sub folder_options {
	my ($user, @peer) = @_;
	my $r = run(@peer, stdin => "GET USER $user\r\nEXIT\r\n");
	my %o;
	for my $l (grep { /^\* MAILBOX / } split /\r\n/, $r->{out}) {
		my ($name) = $l =~ / MBOXNAME (\S+)/;
		my ($v) = $l =~ / OPTIONS ("[^"]*"|[^\s)]*)/;
		$v =~ s/^""$//;
		$o{$name} = $v;
	}
	return \%o;
}

# pair_audit($conf, $peer, @opts): spool_audit -C $conf -i @opts
# --compare -- PEER (the two sides compared over the wire).
sub pair_audit {
	my ($conf, $peer, @opts) = @_;
	return run('spool_audit', '-C', $conf, '-i', @opts, '--compare', '--', peer_cmd($peer));
}

# serve($conf, $in): a replica session on $conf fed $in (client lines,
# CRLF ends); answers($r): its answers, the banner left out.
sub serve {
	my ($conf, $in) = @_;
	return run('spool_sync', '-C', $conf, '--serve', stdin => $in);
}

sub answers { return [grep { !/^\* OK / } split /\r\n/, $_[0]{out}]; }

# What a session may leave in the spool of $conf: staging_left, anything
# under the staging directory (stage./sync-<pid> and what it holds);
# index_new_left, a cyrus.index.NEW of a folder.  Each returns the list
# (its length in scalar context: never glob's iterator).
sub staging_left { my @l = glob(spool_dir($_[0]) . '/spool/stage./*'); return @l; }
sub index_new_left { my @l = glob(spool_dir($_[0]) . '/spool/user/*/*/cyrus.index.NEW'); return @l; }

# findings($conf, $except): what is wrong with the spool of $conf once
# recovered as a tool's start recovers it: the invariants it breaks
# (Torture::state) and spool_audit's findings (Torture::audit, which
# allows the leftover the invariants allow), less any line that holds
# the string $except when given (a damage the test made on purpose).
sub findings {
	my ($conf, $except) = @_;
	require Torture;
	my $st = Torture::state({ conf => $conf }, 1);
	return grep { !defined $except || index($_, $except) < 0 }
	    @{$st->{violations} // ["checker: no report: $st->{err}"]},
	    Torture::audit({ conf => $conf }, $st);
}

# audit_clean($what, $conf): a test that spool_audit finds nothing.
sub audit_clean {
	my ($what, $conf) = @_;
	my $a = run('spool_audit', '-C', $conf);
	Test::More::is($a->{rc}, 0, "$what: spool_audit is clean") or Test::More::diag($a->{out}, $a->{err});
}

# clean($conf, $what): two tests, that no staging and no cyrus.index.NEW
# is left, and audit_clean.
sub clean {
	my ($conf, $what) = @_;
	my @left = (staging_left($conf), index_new_left($conf));
	Test::More::ok(!@left, "$what: no staging and no cyrus.index.NEW left") or Test::More::diag("@left");
	audit_clean($what, $conf);
}

# rolling_keys($minwait, $maxwait): configuration keys of a primary
# whose -R retries quickly: folders deleted at once, a repeat interval
# of 50 ms, the reconnect waits given (seconds).
sub rolling_keys {
	my ($min, $max) = @_;
	return (delete_mode => 'immediate', sync_repeat_interval => '0.05',
	    sync_reconnect_minwait => $min, sync_reconnect_maxwait => $max);
}

# rolling_start($conf, $log, $timeout, @peer): spool_sync -C $conf -v -t
# $timeout -R -- @peer in the background, its output and errors appended
# to $log (made first, so that it can be read at once).  $timeout may be
# [$timeout, @opts]: @opts follow -R (--channel NAME).  Returns its pid;
# one not stopped is sent SIGTERM when the test ends.
# rolling_stop($pid): SIGTERM, then its wait status ($?).
my %rolling;
sub rolling_start {
	my ($conf, $log, $timeout, @peer) = @_;
	my @opts;
	($timeout, @opts) = @$timeout if ref $timeout;
	open my $fh, '>>', $log or die "$log: $!";
	close $fh;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDOUT, '>>', $log or die;
		open STDERR, '>>', $log or die;
		exec(tool('spool_sync'), '-C', $conf, '-v', '-t', $timeout, '-R', @opts, '--', @peer)
		    or die "exec: $!";
	}
	$rolling{$pid} = 1;
	return $pid;
}

sub rolling_stop {
	my ($pid) = @_;
	kill 'TERM', $pid;
	waitpid($pid, 0);
	my $status = $?;
	delete $rolling{$pid};
	return $status;
}

END { kill 'TERM', $_ for keys %rolling; }

# channel($conf): the first channel of `spool_sync -s --json` on $conf
# (lag, last_success, failing, ...); dies when spool_sync -s fails.
sub channel {
	my ($conf) = @_;
	my $r = run('spool_sync', '-C', $conf, '-s', '--json');
	die "spool_sync -s: $r->{err}" if $r->{rc};
	return decode_json((split /\n/, $r->{out})[0])->{channels}[0];
}

# poll($cond): calls $cond until it returns true, at most 100 times
# 0.1 s apart (10 s); returns what it returned last.
sub poll {
	my ($cond) = @_;
	my $v;
	for (1 .. 100) {
		last if $v = $cond->();
		Time::HiRes::sleep(0.1);
	}
	return $v;
}

# stuck_peer($path): writes a fake Cyrus sync server at $path that
# answers every command OK, reports every GUID of APPLY RESERVE missing,
# and at APPLY MESSAGE stops reading (sleeps a minute without exiting),
# so that a large message fills its socket buffer.  Returns $path.
sub stuck_peer {
	my ($path) = @_;
	spew($path, <<'EOF');
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
EOF
	chmod 0755, $path or die "$path: $!";
	return $path;
}

# big_message($conf, $folder, $file): a message of 7.7 MB (more than a
# socket buffer holds) written to $file and appended to $folder; returns
# spool_append's run hash.
sub big_message {
	my ($conf, $folder, $file) = @_;
	spew($file, "Subject: big\n\n" . ("x" x 76 . "\n") x 100000);
	return run('spool_append', '-C', $conf, '-q', '-i', $folder, $file);
}

1;
