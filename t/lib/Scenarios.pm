# Scenarios.pm - the operations the crash and fault tests run, each on
# the same small spool: a legacy spool from mkspool (two users, one in
# a domain), plus folders in the uniqueid layout under the first user's
# Sent folder, so that renames meet both layouts at once.
#
# Names are discovered from mailboxes.db rather than assumed, so the
# scenarios follow mkspool wherever its generator goes.
package Scenarios;

use strict;
use warnings;
use Exporter 'import';
use IdsTest;
use Torture;
use LegacySpool qw(add_folders resolve);
use File::Path qw(make_path);

our @EXPORT = qw(build_scenarios);

sub live_names {
	my ($conf) = @_;
	my $r = run('ctl_mboxlist', '-C', $conf, '-i', '-l');
	die "ctl_mboxlist -l: $r->{err}" if $r->{rc};
	return map { (split /\t/)[0] } split /\n/, $r->{out};
}

# The users (INBOX names) and their other folders.
sub users {
	my ($conf) = @_;
	my @names = live_names($conf);
	my %kids;
	my @inboxes = sort grep { /^(?:[^!]+!)?user\.[^.]+$/ } @names;
	for my $in (@inboxes) {
		$kids{$in} = [sort grep { index($_, "$in.") == 0 } @names];
	}
	return (\@inboxes, \%kids);
}

sub msg {
	my ($file, $n) = @_;
	spew($file, "From: torture\@example.com\r\nSubject: message $n\r\n"
	    . "Message-ID: <$n.$$\@torture>\r\n\r\nbody $n\r\n");
	return $file;
}

sub layout_is {
	my ($want, @names) = @_;
	return sub {
		my ($st) = @_;
		my %l = map { $_->{name} => $_->{layout} } @{ $st->{folders} };
		for my $n (@names) {
			return "$n is not in the $want layout" unless ($l{$n} // '') eq $want;
		}
		return undef;
	};
}

# A user's own files (spool-layout.md, "A user's own files"), relative
# to the work directory (configdirectory conf/, sievedir sieve/), for
# the user of an INBOX's internal name; hashimapspool and fulldirhash
# off, as write_conf has it.
sub user_files {
	my ($inbox) = @_;
	my ($dom, $local) = $inbox =~ /^(?:([^!]+)!)?user\.(.+)$/ or die "not an INBOX: $inbox";
	(my $real = $local) =~ s/\^/./g;
	my $h = sub { my $c = lc substr($_[0], 0, 1); $c =~ /^[a-z]$/ ? $c : 'q' };
	my $d = defined $dom ? "domain/" . $h->($dom) . "/$dom/" : '';
	my $l = $h->($real);
	return ((map { "conf/${d}user/$l/$real.$_" } qw(seen sub conversations counters)),
	    "sieve/$d$l/$real/main.sieve", "conf/${d}quota/" . $h->($local) . "/user.$local");
}

# A check for files: every one of $from's files whole at its name for
# mask 0, at $to's for mask 1, and none at the other.
sub files_follow {
	my ($work, $from, $to) = @_;
	my @f = user_files($from);
	my @t = user_files($to);
	return sub {
		my ($mask) = @_;
		for my $i (0 .. $#f) {
			my ($at, $gone) = $mask ? ($t[$i], $f[$i]) : ($f[$i], $t[$i]);
			return "$f[$i]: not at $at" unless -f "$work/$at" && slurp("$work/$at") eq $f[$i];
			return "$f[$i]: also at $gone" if -e "$work/$gone";
		}
		return undef;
	};
}

# build_scenarios($dir, meta => 1, size => [mkspool args]): the spool
# and the list of scenarios on it.
sub build_scenarios {
	my ($dir, %o) = @_;
	# Small enough that make check tries every point of every scenario.
	$o{size} //= ['-u', 2, '-f', 5, '-m', 8];
	my %conf = (sievedir => "$dir/work/sieve");
	%conf = (%conf, 'metapartition-default' => "$dir/work/meta",
	    metapartition_files => 'header index') if $o{meta};
	my $s = make_spool($dir, conf => \%conf, mkspool => $o{size}, then => sub {
		my ($conf, $work) = @_;
		my ($users, $kids) = users($conf);
		my $a = $users->[0];
		for my $f (user_files($a)) {
			make_path("$work/" . ($f =~ s{/[^/]+$}{}r));
			spew("$work/$f", $f);
		}
		my ($sent) = grep { /\.Sent$/ } @{ $kids->{$a} };
		$sent //= $kids->{$a}[0];
		for my $c (['-c', "$sent.2019", "$sent.2020", "$a.Extra"]) {
			my $r = run('ctl_mboxlist', '-C', $conf, '-i', @$c);
			die "ctl_mboxlist @$c: $r->{err}" if $r->{rc};
		}
		for my $n (1 .. 4) {
			my $r = run('spool_append', '-C', $conf, '-i', '-q',
			    $n <= 2 ? "$sent.2019" : "$a.Extra", msg("$dir/seed$n", "seed$n"));
			die "spool_append: $r->{err}" if $r->{rc};
		}
	});
	my $c = $s->{conf};
	my ($users, $kids) = users($c);
	my ($a, $b) = @$users;
	my @akids = grep { !/\.20(19|20)$/ } @{ $kids->{$a} };
	my @bkids = @{ $kids->{$b} };
	my ($sent) = grep { /\.Sent$/ } @akids;
	$sent //= $akids[0];
	my ($other) = grep { $_ ne $sent && !/\.Extra$/ } @akids;
	$other //= "$a.Extra";
	(my $a2 = $a) =~ s/\.([^.]+)$/.$1x/;
	(my $bdom = $b) =~ s/!.*//;
	my @m = map { msg("$dir/m$_", "m$_") } 1 .. 3;
	my @sc;
	push @sc, scenario($s, name => 'migrate one user, link strategy',
	    steps => [[helper_path(), 'migrate', '-C', $c, '-q', '-s', 'link', reverse(@akids), $a]],
	    extra => layout_is('uniqueid', @akids, $a));
	push @sc, scenario($s, name => 'migrate one user in a domain, rename strategy',
	    steps => [[helper_path(), 'migrate', '-C', $c, '-q', '-s', 'rename', reverse(@bkids), $b]],
	    extra => layout_is('uniqueid', @bkids, $b));
	push @sc, scenario($s, name => 'rename a legacy subtree with uniqueid children',
	    steps => [['ctl_rename', '-C', $c, '-i', '-q', $sent, "$a.Archive"]]);
	push @sc, scenario($s, name => 'rename a uniqueid folder',
	    steps => [['ctl_rename', '-C', $c, '-i', '-q', "$sent.2019", "$a.Old2019"]]);
	push @sc, scenario($s, name => 'rename a user',
	    steps => [['ctl_rename', '-C', $c, '-i', '-q', $a, $a2]],
	    files => files_follow($s->{work}, $a, $a2));
	push @sc, scenario($s, name => 'copy a folder to another user (--copy)', noid => 1,
	    steps => [['ctl_rename', '-C', $c, '-i', '-q', '--copy', $other, "$b.Copied"]]);
	push @sc, scenario($s, name => 'deliver three messages',
	    cmd => ['spool_append', '-C', $c, '-i', '-q', $sent, @m],
	    steps => [map { ['spool_append', '-C', $c, '-i', '-q', $sent, $_] } @m]);
	push @sc, scenario($s, name => 'create two folders', noid => 1,
	    cmd => ['ctl_mboxlist', '-C', $c, '-i', '-c', "$a.New", "$a.New.Sub"],
	    steps => [map { ['ctl_mboxlist', '-C', $c, '-i', '-c', $_] } "$a.New", "$a.New.Sub"]);
	push @sc, scenario($s, name => 'delete a legacy and a uniqueid folder',
	    cmd => ['ctl_mboxlist', '-C', $c, '-i', '-x', $other, "$sent.2020"],
	    steps => [map { ['ctl_mboxlist', '-C', $c, '-i', '-x', $_] } $other, "$sent.2020"]);
	push @sc, scenario($s, name => 'walker pass (relocated -1), link strategy',
	    steps => [['relocated', '-C', $c, '-1', '-q', '--grace', 0]],
	    extra => layout_is('uniqueid', live_names($c)));
	push @sc, scenario($s, name => 'walker pass (relocated -1), rename strategy',
	    steps => [['relocated', '-C', $c, '-1', '-q', '--grace', 0, '--strategy', 'rename']],
	    extra => layout_is('uniqueid', live_names($c)));
	# Two workers on the one partition, each killed at its own k-th point.
	push @sc, scenario($s, name => 'walker pass (relocated -1 --jobs 2), link strategy',
	    crashed => 'worker', steps => [['relocated', '-C', $c, '-1', '-q', '--grace', 0, '--jobs', 2]],
	    extra => layout_is('uniqueid', live_names($c)));
	push @sc, reid_scenario("$dir-reid", %o);
	push @sc, nested_scenario("$dir-nested", %o);
	return ($s, @sc);
}

# The rename strategy's batch on nested legacy folders: Nest.In.Deep,
# Nest.In and Nest each renamed after its children left its directory;
# Keep.Odd holds a foreign file, so it is linked and its directory
# stays inside Keep's, which is then linked under its rename intent.
sub nested_scenario {
	my ($dir, %o) = @_;
	my %conf = $o{meta} ? ('metapartition-default' => "$dir/work/meta",
	    metapartition_files => 'header index') : ();
	my $s = make_spool($dir, conf => \%conf, mkspool => ['-u', 1, '-f', 1, '-m', 2], then => sub {
		my ($conf, $work) = @_;
		my ($users) = users($conf);
		my $u = $users->[0];
		my $n = 0;
		my @f = map { { name => "$u.$_", msgs => 1,
		    uniqueid => sprintf('b0000000-0000-4000-8000-%012d', ++$n) } }
		    qw(Nest Nest.In Nest.In.Deep Keep Keep.Odd);
		add_folders($conf, @f);
		my ($odd) = resolve($conf, 0, "$u.Keep.Odd");
		spew("$odd/notes.txt", "not mail\n");
	});
	return scenario($s, name => 'walker pass (relocated -1), rename strategy, nested folders',
	    steps => [['relocated', '-C', $s->{conf}, '-1', '-q', '--grace', 0, '--strategy', 'rename']],
	    extra => layout_is('uniqueid', live_names($s->{conf})));
}

# reconstruct's re-id: a folder directory copied into another user's
# directory (a restore gone wrong) holds a live uniqueid twice; the
# rebuild gives the copy a new uniqueid, renaming its directory under
# an intent.  The spool starts with that violation on purpose.
sub reid_scenario {
	my ($dir, %o) = @_;
	my $s = make_spool($dir, mkspool => $o{size}, then => sub {
		my ($conf, $work) = @_;
		my $r = run('relocated', '-C', $conf, '-1', '-q', '--grace', 0);
		die "relocated: $r->{err}" if $r->{rc};
		my $st = Torture::state({ conf => $conf });
		my ($users) = users($conf);
		my ($ua, $ub) = @$users;
		my ($f) = sort { $b->{messages} <=> $a->{messages} }
		    grep { index($_->{name}, "$ua.") == 0 } @{ $st->{folders} };
		my $from = run('mbpath', '-C', $conf, '-i', $f->{name})->{out};
		my $to = run('mbpath', '-C', $conf, '-i', $ub)->{out};
		chomp($from, $to);
		($to) = $to =~ m{^(.*)/[^/]+$};
		system('cp', '-a', (split /\n/, $from)[0], "$to/") == 0 or die "cp: $?";
	});
	return scenario($s, name => 'reconstruct -m: re-id of a copied folder', noid => 1,
	    baseline => 1, steps => [['reconstruct', '-C', $s->{conf}, '-m', '-q']]);
}

1;
