# CyrusPeer.pm - a private, real Cyrus IMAP 3.6 instance for the
# replication tests: its own imapd.conf, config directory and partition
# under a scratch directory, no master process and no SASL daemon.
#
#   my $cy = CyrusPeer->new("$dir/cyrus");
#   $cy->imap('admin', 'CREATE user.alice');          # imapd on stdin
#   $cy->imap('alice', 'APPEND INBOX (\Seen) {3+}', 'x y');
#   $cy->start_lmtp; $cy->deliver('alice', $msg);    # the real deliver
#   my $r = $cy->sync_user($socket, 'alice');        # sync_client -S
#
# Every Cyrus program runs as the cyrus user with runuser, as Cyrus
# demands, on files owned by cyrus:mail.  Services (imapd, lmtpd,
# sync_server) run in their stdio mode (-X), and logins are accepted
# for any password (sasl_pwcheck_method: alwaystrue).  A UNIX socket
# that Cyrus programs connect to (lmtpsocket, the replica socket of a
# Cyrus-to-Cyrus run) is served by a small forking listener that runs
# one stdio service per connection, as inetd would.
package CyrusPeer;

use strict;
use warnings;
use File::Path qw(make_path);
use FindBin;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(sleep);
use IdsTest;

our $BIN = $ENV{IDS_CYRUS_BIN} // '/usr/lib/cyrus/bin';

# ensure(): Cyrus is installed (contrib/install-deps installs it when
# missing and we are root); dies with the reason otherwise.
sub ensure {
	my ($top) = @_;
	die "the Cyrus tests run as root (runuser -u cyrus)\n" if $> != 0;
	unless (-x "$BIN/sync_client" && getpwnam('cyrus')) {
		system("$top/contrib/install-deps") == 0 or die "install-deps failed\n";
	}
	die "no Cyrus in $BIN\n" unless -x "$BIN/sync_client";
}

# transcript($file): the client's side of a real 3.6.1 session kept in
# t/data/csync ("C: " lines), without its AUTHENTICATE: the input a
# replica sees from sync_client.  Needs no Cyrus.
sub transcript {
	my ($file) = @_;
	my $in = join('', map { s/^C: //r } grep { /^C: / }
	    split /^/, slurp("$FindBin::Bin/data/csync/$file"));
	$in =~ s/^AUTHENTICATE[^\n]*\n//m;
	return $in;
}

sub new {
	my ($class, $dir, %kv) = @_;
	my $self = bless { dir => $dir, pids => [] }, $class;
	make_path(map { "$dir/$_" } qw(conf spool run lock sieve));
	my %conf = (
		configdirectory => "$dir/conf",
		'partition-default' => "$dir/spool",
		defaultpartition => 'default',
		admins => 'admin',
		proc_path => "$dir/run/proc",
		mboxname_lockpath => "$dir/lock",
		lmtpsocket => "$dir/run/lmtp",
		idlesocket => "$dir/run/idle",
		notifysocket => "$dir/run/notify",
		sievedir => "$dir/sieve",
		sasl_pwcheck_method => 'alwaystrue',
		allowplaintext => 'yes',
		unixhierarchysep => 'no',
		virtdomains => 'userid',
		delete_mode => 'delayed',
		expunge_mode => 'delayed',
		# sync_client tries IMAP first and waits 10 s for its failure
		sync_try_imap => 'no',
		%kv,
	);
	$self->{conf} = "$dir/imapd.conf";
	spew($self->{conf}, join('', map { "$_: $conf{$_}\n" } sort keys %conf));
	system('chown', '-R', 'cyrus:mail', $dir) == 0 or die "chown $dir: $?";
	# Every directory above must let the cyrus user through.
	my $p = $dir;
	while ($p =~ s{/[^/]+$}{} && $p ne '') { chmod((stat $p)[2] & 07777 | 0711, $p); }
	return $self;
}

sub conf { return $_[0]{conf}; }
sub dir { return $_[0]{dir}; }

# cyrus($prog, @args [, stdin => $text]): runs a Cyrus program as cyrus.
sub cyrus {
	my ($self, $prog, @args) = @_;
	my @stdin = @args >= 2 && $args[-2] eq 'stdin' ? splice(@args, -2) : ();
	return run('runuser', '-u', 'cyrus', '--', 'env', "CYRUS_SERVICE=$prog",
	    'CYRUS_ID=1', "$BIN/$prog", '-C', $self->{conf}, @args, @stdin);
}

# imap($user, @commands): one imapd session logged in as $user; each
# command gets a tag; dies unless every one is answered OK.  A command
# may hold a LITERAL+ "{n+}\r\n..." itself.  Returns the untagged lines.
sub imap {
	my ($self, $user, @cmds) = @_;
	my $in = "L LOGIN $user x\r\n";
	$in .= "C$_ $cmds[$_]\r\n" for 0 .. $#cmds;
	$in .= "Z LOGOUT\r\n";
	my $r = $self->cyrus('imapd', '-X', stdin => $in);
	for my $t ('L', map { "C$_" } 0 .. $#cmds) {
		next if $r->{out} =~ /^\Q$t\E OK/m;
		my ($ans) = $r->{out} =~ /^(\Q$t\E .*)$/m;
		my $what = $t eq 'L' ? 'LOGIN' : $cmds[substr($t, 1)];
		die "imapd ($user): $what: " . ($ans // "no answer\n$r->{out}$r->{err}") . "\n";
	}
	return [grep { /^\*/ } split /\r?\n/, $r->{out}];
}

# append($user, $folder, $flags, $message): APPEND with a LITERAL+.
sub append_cmd {
	my ($folder, $flags, $msg) = @_;
	$msg =~ s/\r?\n/\r\n/g;
	return "APPEND $folder ($flags) {" . length($msg) . "+}\r\n$msg";
}

sub msg {
	my ($n, $to) = @_;
	return "From: Carol <carol\@example.com>\nTo: $to\nSubject: message $n\n" .
	    "Date: Sun, 06 Dec 2026 02:42:02 -0000\nMessage-ID: <m$n\@example.com>\n\n" .
	    "Body of message $n\n" . ('x' x ($n * 37 % 500)) . "\n";
}

# populate(): the population the replication tests start from, made
# with Cyrus itself: a user without a domain (nested folders, system and
# user flags, a folder and a message annotation, an expunged message, a
# subscription, an empty folder) and one with a domain.  Returns the
# users, as sync_client -u names them.
sub populate {
	my ($self) = @_;
	$self->imap('admin', 'CREATE user.alice', 'CREATE user.bob@example.com');
	$self->imap('alice', 'CREATE Sent', 'CREATE Trash', 'CREATE Work', 'CREATE Work.2019',
	    'SUBSCRIBE Work',
	    append_cmd('INBOX', '\Seen', msg(1, 'alice')),
	    append_cmd('INBOX', '\Flagged $Label1', msg(2, 'alice')),
	    append_cmd('INBOX', '', msg(3, 'alice')),
	    append_cmd('INBOX', '\Answered \Seen', msg(4, 'alice')),
	    append_cmd('Sent', '\Seen', msg(5, 'alice')),
	    append_cmd('Work.2019', '$Important', msg(6, 'alice')),
	    'SETMETADATA INBOX (/private/comment "my inbox")',
	    'SELECT INBOX', 'STORE 1 ANNOTATION (/comment (value.priv "a note"))',
	    'STORE 3 +FLAGS (\Deleted)', 'EXPUNGE');
	$self->imap('bob@example.com', 'CREATE Archive',
	    append_cmd('INBOX', '', msg(7, 'bob')),
	    append_cmd('Archive', '\Answered', msg(8, 'bob')),
	    append_cmd('Archive', '', msg(1, 'bob')));
	return ('alice', 'bob@example.com');
}

# serve($socket, @cmd): a listener on the UNIX socket $socket that runs
# @cmd with the connection as its stdin and stdout, once per connection
# (concurrently), until stop().  The socket is open to every local user.
sub serve {
	my ($self, $socket, @cmd) = @_;
	unlink $socket;
	my $l = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $socket, Listen => 8)
	    or die "listen $socket: $!";
	chmod 0666, $socket;
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		$SIG{TERM} = sub { kill 'TERM', -$$; exit 0; };
		setpgrp(0, 0);
		while (1) {
			my $c = $l->accept or next;
			my $k = fork();
			if (defined $k && $k == 0) {
				open(STDIN, '<&', $c) && open(STDOUT, '>&', $c) &&
				    open(STDERR, '>>', "$self->{dir}/serve.log") or exit 111;
				exec(@cmd) or exit 111;
			}
			close $c;
			1 while waitpid(-1, WNOHANG) > 0;
		}
	}
	close $l;
	push @{$self->{pids}}, $pid;
	return $pid;
}

# A stdio service as the cyrus user, for serve().
sub service_cmd {
	my ($self, $prog) = @_;
	return ('runuser', '-u', 'cyrus', '--', 'env', "CYRUS_SERVICE=$prog",
	    'CYRUS_ID=1', "$BIN/$prog", '-C', $self->{conf}, '-X');
}

# Its sync_server as a peer command for spool_sync (one session on stdio).
sub sync_cmd {
	my ($self) = @_;
	return ('runuser', '-u', 'cyrus', '--', 'env', 'CYRUS_SERVICE=sync', 'CYRUS_ID=1',
	    "$BIN/sync_server", '-C', $self->{conf}, '-X');
}

sub stop {
	my ($self) = @_;
	local $?;	# called from DESTROY at exit: keep the test's status
	for my $pid (@{$self->{pids}}) {
		kill 'TERM', $pid;
		waitpid($pid, 0);
	}
	$self->{pids} = [];
}

sub DESTROY { $_[0]->stop; }

# start_lmtp(): lmtpd behind the configured lmtpsocket, so that the
# real deliver(8) works.
sub start_lmtp {
	my ($self) = @_;
	$self->serve("$self->{dir}/run/lmtp", $self->service_cmd('lmtpd'));
}

# deliver($user, $message): the real deliver, through lmtpd.
sub deliver {
	my ($self, $user, $msg) = @_;
	$msg =~ s/\r?\n/\r\n/g;
	my $r = $self->cyrus('deliver', '-a', $user, '-r', 'sender@example.com', $user,
	    stdin => $msg);
	die "deliver $user: exit $r->{rc}: $r->{out}$r->{err}\n" if $r->{rc};
	return $r;
}

# sync_user($socket, $user, @more): one sync_client -o run of a user to
# the replica listening on $socket, with the wire printed (-v -v).
sub sync_user {
	my ($self, $socket, $user, @more) = @_;
	return $self->cyrus('sync_client', '-S', $socket, '-o', '-v', '-v', @more, '-u', $user);
}

# sync_log($socket): one sync_client -1 run (rolling, one log file) to
# the replica on $socket, for what "-u" cannot carry (a user delete).
# Needs the instance made with sync_log => 1.
sub sync_log {
	my ($self, $socket) = @_;
	return $self->cyrus('sync_client', '-S', $socket, '-o', '-v', '-v', '-r', '-1');
}

# mailboxes(): mailboxes.db as ctl_mboxlist -d prints it (name -> entry).
sub mailboxes {
	my ($self) = @_;
	my $r = $self->cyrus('ctl_mboxlist', '-d');
	die "ctl_mboxlist -d: $r->{err}" if $r->{rc};
	return decode_json($r->{out} =~ /\S/ ? $r->{out} : '{}');
}

sub path {
	my ($self, $name) = @_;
	my $r = $self->cyrus('mbpath', $name);
	die "mbpath $name: $r->{err}" if $r->{rc};
	chomp(my $p = $r->{out});
	return $p;
}

# state($mailboxes, $pathfn): what two replicas must agree on, by
# uniqueid: the live folder's name, uidvalidity, and per UID its flags
# and GUID (expunged records included, marked), read from the files.
sub state {
	my ($mboxes, $pathfn) = @_;
	my %s;
	for my $name (sort keys %$mboxes) {
		my $e = $mboxes->{$name};
		next if ($e->{mbtype} // '') =~ /d/;
		my $dir = $pathfn->($name);
		$s{$e->{uniqueid}} = {
			name => $name,
			uidvalidity => $e->{uidvalidity},
			records => index_records($dir),
		};
	}
	return \%s;
}

# replica_conf($dir): a fresh idspool spool in $dir named as a Cyrus
# master names its folders (unixhierarchysep and hashimapspool off);
# returns its configuration file.
sub replica_conf {
	my ($d) = @_;
	File::Path::remove_tree($d);
	make_path($d);
	return write_conf($d, unixhierarchysep => 'no', hashimapspool => 'no');
}

# ids_state($conf): the same for an idspool spool, from its own
# ctl_mboxlist -d and mbpath -i.
sub ids_state {
	my ($conf) = @_;
	my $r = run('ctl_mboxlist', '-C', $conf, '-d');
	die "ctl_mboxlist -d: $r->{err}" if $r->{rc};
	my $mb = decode_json($r->{out} =~ /\S/ ? $r->{out} : '{}');
	return state($mb, sub {
		my $p = run('mbpath', '-C', $conf, '-i', $_[0]);
		die "mbpath $_[0]: $p->{err}" if $p->{rc};
		chomp(my $path = $p->{out});
		return $path;
	});
}

# files_differ($conf): the message files of this instance's live
# folders, each found by uniqueid and uid in the idspool spool of $conf
# and compared by SHA-1.  Returns how many were compared and the ones
# that differ or are missing there.
sub files_differ {
	my ($self, $conf) = @_;
	my $cm = $self->mailboxes;
	my $im = decode_json(run('ctl_mboxlist', '-C', $conf, '-d')->{out});
	my %ipath;
	for my $n (keys %$im) {
		next if ($im->{$n}{mbtype} // '') =~ /d/;
		chomp($ipath{$im->{$n}{uniqueid}} = run('mbpath', '-C', $conf, '-i', $n)->{out});
	}
	my ($n, @bad) = (0);
	for my $name (sort keys %$cm) {
		my $e = $cm->{$name};
		next if ($e->{mbtype} // '') =~ /d/;
		my $cdir = $self->path($name);
		for my $f (glob("$cdir/*.")) {
			(my $b = $f) =~ s{.*/}{};
			my $i = ($ipath{$e->{uniqueid}} // '/nonexistent') . "/$b";
			$n++;
			push @bad, "$name/$b" unless -f $i && IdsTest::sha1_file($i) eq IdsTest::sha1_file($f);
		}
	}
	return ($n, @bad);
}

sub cyrus_state {
	my ($self) = @_;
	return state($self->mailboxes, sub { $self->path($_[0]) });
}

# The records of a version 17 cyrus.index: uid -> "FLAGS guid".
my @sysflags = ('\Answered', '\Flagged', '\Deleted', '\Draft', '\Seen');
sub index_records {
	my ($dir) = @_;
	my $idx = IdsTest::slurp("$dir/cyrus.index");
	my ($start, $rsize, $n) = unpack('N N N', substr($idx, 12, 12));
	my @names = header_flags($dir);
	my %rec;
	for my $i (0 .. $n - 1) {
		my $r = substr($idx, $start + $i * $rsize, $rsize);
		my ($uid, $sys, @uf) = (unpack('N', $r), unpack('N', substr($r, 32, 4)),
		    unpack('N4', substr($r, 36, 16)));
		my @f = map { $sysflags[$_] } grep { $sys & (1 << $_) } 0 .. 4;
		for my $b (0 .. 127) {
			push @f, $names[$b] // "#$b" if $uf[$b >> 5] & (1 << ($b & 31));
		}
		push @f, '\Expunged' if $sys & (1 << 31);
		$rec{$uid} = join(' ', sort(@f), unpack('H40', substr($r, 60, 20)));
	}
	return \%rec;
}

# The user flag names of a cyrus.header: the U list of its dlist line
# (Cyrus 3.x), or the space-separated line after "quotaroot\tuniqueid".
sub header_flags {
	my ($dir) = @_;
	my @l = split /\n/, IdsTest::slurp("$dir/cyrus.header");
	# Three lines of magic, then the folder's own lines.
	my $line = $l[3] // '';
	if ($line =~ /^%\(/) {
		my ($u) = $line =~ / U \(([^)]*)\)/;
		return defined $u ? map { $_ eq 'NIL' ? undef : $_ } split / /, $u : ();
	}
	return split / /, $l[4] // '';
}

1;
