#!/usr/bin/perl
# t7570-spool-sync-local-error.t - a folder that cannot be read on the
# pushing side (its cyrus.index truncated, a message file removed or
# not its GUID's, its cyrus.header corrupt) is that folder's failure,
# reported as a refused folder is (exit 1, "spool_sync: <folder>:
# <reason>" naming the file; under -R a failure record of code "local"
# with its reason), never the end of the session:
#
#  - every other folder, of its user and of the others, arrives whole;
#  - nothing of the damaged folder is half-applied on the peer: a new
#    folder is not created there at all, an existing one keeps its state;
#  - the session stays in step with the peer (the folders after it, and
#    a further push, are answered as they should);
#  - once repaired, the next push converges and the pair audit is clean.
#
# Each damage is met three ways: in a folder the peer already holds (a
# merge), in a new folder pushed alone (a peer that does not pipeline:
# its banner without idspool-pipeline) and in a pipelined wave of new
# folders; then under rolling -R.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy qw(copy);
use File::Find;
use JSON::PP;
use Test::More;
use IdsTest;
use CyrusPeer;
use SyncPair qw(spool_conf must_run deliver uniqueid_of folder_dir);

my $base = scratch();

# The peer; with $flat, one whose banner does not announce pipelining
# (as a Cyrus sync_server's does not): each new folder is pushed alone.
sub peer {
	my ($conf, $flat) = @_;
	return (ids_peer($conf)) if !$flat;
	my $cmd = join(' ', map { "'$_'" } ids_peer($conf));
	return ('sh', '-c', "$cmd | sed -u '1s/ idspool-pipeline//'");
}

sub push_to {
	my ($from, $to, $flat) = @_;
	return run('spool_sync', '-C', $from, '-A', '--', peer($to, $flat));
}

sub applied { return ($_[0]{out} =~ / (\d+) applied,/)[0] // -1; }
sub failed { return ($_[0]{out} =~ / (\d+) failed$/m)[0] // -1; }

# Directories named $id anywhere under the spool of $conf.
sub dirs_named {
	my ($conf, $id) = @_;
	(my $root = $conf) =~ s{/imapd\.conf$}{/spool};
	my @d;
	find(sub { push @d, $File::Find::name if -d $_ && $_ eq $id }, $root);
	return @d;
}

# The state of every folder of $conf but those named in @skip (by name).
sub state_but {
	my ($conf, @skip) = @_;
	my %skip = map { $_ => 1 } @skip;
	my $mb = decode_json(must_run('ctl_mboxlist', '-C', $conf, '-d')->{out} || '{}');
	delete $mb->{$_} for @skip;
	return CyrusPeer::state($mb, sub { folder_dir($conf, $_[0]) });
}

sub converged {
	my ($what, $from, $to) = @_;
	my $r = push_to($from, $to);
	is($r->{rc}, 0, "$what: the push after the repair exits 0") or diag($r->{out}, $r->{err});
	$r = push_to($from, $to);
	is(applied($r), 0, "$what: a further push applies nothing") or diag($r->{out}, $r->{err});
	is_deeply(CyrusPeer::ids_state($to), CyrusPeer::ids_state($from),
	    "$what: both sides equal by uniqueid");
	$r = run('spool_audit', '-C', $from, '-i', '--compare', '--', ids_peer($to));
	ok($r->{rc} == 0 && $r->{out} eq '', "$what: the pair audit is clean")
	    or diag($r->{out}, $r->{err});
	$r = run('spool_audit', '-C', $to, '-q');
	is($r->{rc}, 0, "$what: spool_audit of the peer is clean") or diag($r->{out}, $r->{err});
}

# The damages: each returns the name of the file it damaged (a pattern
# the reason must match) and a sub that repairs it.
my %damage = (
	'truncated cyrus.index' => sub {
		my ($d) = @_;
		copy("$d/cyrus.index", "$d/cyrus.index.save") or die;
		truncate("$d/cyrus.index", 100) or die;
		return (qr/cyrus\.index/, sub { rename("$d/cyrus.index.save", "$d/cyrus.index") or die; });
	},
	'a message file removed' => sub {
		my ($d) = @_;
		my ($last) = sort { $b <=> $a } map { m{/(\d+)\.$} ? $1 : () } glob("$d/*.");
		rename("$d/$last.", "$d/$last.save") or die;
		return (qr/\Q$d\E\/$last\.: No such file/,
		    sub { rename("$d/$last.save", "$d/$last.") or die; });
	},
	'a message file not its GUID\'s' => sub {
		my ($d) = @_;
		my ($last) = sort { $b <=> $a } map { m{/(\d+)\.$} ? $1 : () } glob("$d/*.");
		my $body = slurp("$d/$last.");
		spew("$d/$last.save", $body);
		(my $bad = $body) =~ s/Body/BODY/;
		spew("$d/$last.", $bad);
		return (qr/\Q$d\E\/$last\. hashes to/,
		    sub { rename("$d/$last.save", "$d/$last.") or die; });
	},
	'a corrupt cyrus.header' => sub {
		my ($d) = @_;
		copy("$d/cyrus.header", "$d/cyrus.header.save") or die;
		spew("$d/cyrus.header", "not a header\n");
		return (qr/cyrus\.header/,
		    sub { rename("$d/cyrus.header.save", "$d/cyrus.header") or die; });
	},
);
my @damages = sort keys %damage;

my $S = spool_conf("$base/s");
my $P = spool_conf("$base/p");
my @users = qw(alice bob carol);
must_run('ctl_mboxlist', '-C', $S, '-i', '-c', map { ("user.$_", "user.$_.Sent") } @users);
deliver($S, $_, 2) for map { ("user.$_", "user.$_.Sent") } @users;
my $r = push_to($S, $P);
is($r->{rc}, 0, 'the first push exits 0') or diag($r->{out}, $r->{err});

my $n = 0;
for my $how (@damages) {
	for my $mode ('merge', 'alone', 'wave') {
		$n++;
		my $what = "$how, $mode";
		my $bad;
		my @others;
		if ($mode eq 'merge') {
			# a folder the peer holds, with new messages here, as the others
			$bad = 'user.bob.Sent';
			@others = ('user.alice', 'user.carol.Sent', 'user.bob');
			deliver($S, $_, 2) for $bad, @others;
		} else {
			# new folders: before and after the damaged one, of its user and others
			$bad = "user.bob.B$n";
			@others = ("user.bob.A$n", "user.bob.C$n", "user.alice.N$n", "user.carol.N$n");
			must_run('ctl_mboxlist', '-C', $S, '-i', '-c', $bad, @others);
			deliver($S, $_, 3) for $bad, @others;
		}
		my $before = CyrusPeer::ids_state($P);
		my $id = uniqueid_of($S, $bad);
		my ($file, $repair) = $damage{$how}->(folder_dir($S, $bad));
		$r = push_to($S, $P, $mode eq 'alone');
		is($r->{rc}, 1, "$what: the push exits 1, as for a refused folder")
		    or diag($r->{out}, $r->{err});
		is(failed($r), 1, "$what: one folder failed") or diag($r->{out}, $r->{err});
		like($r->{err}, qr/^spool_sync: \Q$bad\E: .*$file/m,
		    "$what: the reason names the folder and the file") or diag($r->{err});
		unlike($r->{err}, qr/session|lost|^spool_sync: (?!\Q$bad\E: )/m,
		    "$what: no other error") or diag($r->{err});
		my $after = CyrusPeer::ids_state($P);
		is_deeply($after->{$id}, $before->{$id},
		    "$what: the damaged folder is not half-applied on the peer")
		    or diag(explain($before->{$id}), explain($after->{$id}));
		is_deeply([dirs_named($P, $id)], [], "$what: ... no directory of it there")
		    if $mode ne 'merge';
		is_deeply(state_but($P, $bad), state_but($S, $bad),
		    "$what: every other folder arrived whole");
		my $a = run('spool_audit', '-C', $P, '-q');
		is($a->{rc}, 0, "$what: spool_audit of the peer is clean") or diag($a->{out}, $a->{err});
		$repair->();
		converged($what, $S, $P);
	}
}

# ---- rolling -R: the failure record ------------------------------------------
my $RS = spool_conf("$base/rs", sync_log => 1, delete_mode => 'immediate',
    sync_repeat_interval => '0.05', sync_reconnect_minwait => '0.2',
    sync_reconnect_maxwait => '0.4');
my $RP = spool_conf("$base/rp");
must_run('ctl_mboxlist', '-C', $RS, '-i', '-c', 'user.dave', 'user.dave.A', 'user.erin');
deliver($RS, $_, 2) for 'user.dave', 'user.dave.A', 'user.erin';

sub failing {
	my $x = run('spool_sync', '-C', $RS, '-s', '--json');
	die "spool_sync -s: $x->{err}" if $x->{rc};
	my $c = decode_json((split /\n/, $x->{out})[0])->{channels}[0];
	return ($c->{failing}, $c->{lag});
}

sub wait_for {
	my ($cond) = @_;
	for (1 .. 200) {
		my ($f, $lag) = failing();
		return ($f, $lag) if $cond->($f, $lag);
		select(undef, undef, undef, 0.1);
	}
	return failing();
}

# a new folder damaged before the channel starts, beside new mail in others
must_run('ctl_mboxlist', '-C', $RS, '-i', '-c', 'user.dave.Bad', 'user.dave.Z');
deliver($RS, $_, 2) for 'user.dave.Bad', 'user.dave.Z';
my ($file, $repair) = $damage{'a message file removed'}->(folder_dir($RS, 'user.dave.Bad'));
my $id = uniqueid_of($RS, 'user.dave.Bad');

my $log = "$base/rolling.log";
spew($log, '');
my $pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDOUT, '>>', $log or die;
	open STDERR, '>>', $log or die;
	exec(tool('spool_sync'), '-C', $RS, '-v', '-t', '5', '-R', '--', ids_peer($RP))
	    or die "exec: $!";
}
END { kill 'TERM', $pid if $pid; }

my ($f, $lag) = wait_for(sub { @{$_[0]} && $_[1] == 0 });
is(scalar @$f, 1, '-R: one failure record, the damaged folder\'s') or diag(explain($f), slurp($log));
is($f->[0]{key}, $id, '-R: ... keyed by its uniqueid');
is($f->[0]{code}, 'local', '-R: ... the code "local"');
is($f->[0]{folder}, 'user.dave.Bad', '-R: ... its name');
like($f->[0]{reason}, $file, '-R: ... the reason names the file') or diag($f->[0]{reason});
cmp_ok($f->[0]{attempts} // 0, '>=', 1, '-R: ... its attempts counted') or diag(explain($f));
ok($f->[0]{next_retry}, '-R: ... and its next retry') or diag(explain($f));
is_deeply(state_but($RP, 'user.dave.Bad'), state_but($RS, 'user.dave.Bad'),
    '-R: every other folder replicated');
ok(!grep({ $_->{name} eq 'user.dave.Bad' } values %{CyrusPeer::ids_state($RP)}),
    '-R: the damaged folder is not on the peer');

# the channel goes on: new mail elsewhere arrives while the record stays
deliver($RS, $_, 1) for 'user.dave.A', 'user.erin';
for (1 .. 200) {
	last if ((failing())[1] == 0 && eq_deeply_state());
	select(undef, undef, undef, 0.1);
}
sub eq_deeply_state {
	my $a = state_but($RP, 'user.dave.Bad');
	my $b = state_but($RS, 'user.dave.Bad');
	return JSON::PP->new->canonical->encode($a) eq JSON::PP->new->canonical->encode($b);
}
ok(eq_deeply_state(), '-R: later mail of the other folders replicated');
($f) = failing();
is(scalar @$f, 1, '-R: ... the record kept');
unlike(slurp($log), qr/session lost/, '-R: no session lost') or diag(slurp($log));

$repair->();
($f, $lag) = wait_for(sub { !@{$_[0]} && $_[1] == 0 });
is_deeply($f, [], '-R: repaired, its record goes') or diag(explain($f), slurp($log));
kill 'TERM', $pid;
waitpid($pid, 0);
$pid = 0;
is_deeply(CyrusPeer::ids_state($RP), CyrusPeer::ids_state($RS), '-R: both sides equal');
$r = run('spool_audit', '-C', $RS, '-i', '--compare', '--', ids_peer($RP));
ok($r->{rc} == 0 && $r->{out} eq '', '-R: the pair audit is clean') or diag($r->{out}, $r->{err});

done_testing();
