# LegacySpool.pm - legacy (name-based) folders made by hand for the
# walker's end-to-end tests, and the checks run on a spool afterwards.
#
# add_folders() imports the records through `ctl_mboxlist -u` (mbtype
# "el") and asks `mbpath` where Cyrus would keep each folder, then writes
# what Cyrus 3.6 leaves there: message files "<uid>.", a cyrus.index
# (version 17, zlib CRCs) and a cyrus.header (the current format or the
# 3.4 one).  The checks read the spool only through the resolver
# (`mbpath`) and plain file reads, never through the library's walker.
package LegacySpool;

use strict;
use warnings;
use Exporter 'import';
use Compress::Zlib qw(crc32);
use Digest::SHA qw(sha1 sha1_hex);
use File::Find;
use File::Path qw(make_path);
use JSON::PP;
use IdsTest;

our @EXPORT = qw(add_folders folders resolve snapshot index_records tree_listing
    db_listing dirs_under fast_dir message);

my $MAGIC = "\xa1\x02\x8b\x0d";
my $HEADER_TEXT = "Cyrus mailbox header\n"
    . "\"The best thing about this system was that it had lots of goals.\"\n"
    . "\t--Jim Morris on Andrew\n";

# A scratch directory on tmpfs when there is one (a test that crashes
# and re-runs a tool many times pays for every fsync on a real disk).
my @made;
END { if ($? == 0) { system('rm', '-rf', $_) for @made; } }

sub fast_dir {
	my ($name) = @_;
	return undef unless -d '/dev/shm' && -w '/dev/shm';
	my $dir = "/dev/shm/idspool-$name-$$";
	system('rm', '-rf', $dir);
	make_path($dir);
	push @made, $dir;
	return $dir;
}

# The text of message $n of a folder (unique per folder and number).
sub message {
	my ($name, $n) = @_;
	return "From: walker\@example.com\r\nSubject: $name $n\r\n"
	    . "Message-ID: <$n.\Q$name\E\@legacy>\r\n\r\nbody $n of $name\r\n";
}

# Big-endian fields put at their byte offsets into a zeroed block.
sub fields {
	my ($len, @f) = @_;
	my $b = "\0" x $len;
	while (my ($off, $fmt, $v) = splice(@f, 0, 3)) {
		my $bytes = pack($fmt, $v);
		substr($b, $off, length $bytes) = $bytes;
	}
	return $b;
}

sub index_v17 {
	my ($uidvalidity, $hcrc, @recs) = @_;
	my ($n, $records, $used) = (scalar @recs, '', 0);
	for my $r (@recs) {
		my $rec = fields(108, 0 => 'N', $r->{uid}, 4 => 'N', 1700000000,
		    8 => 'N', 1700000000, 12 => 'N', $r->{size}, 20 => 'N', 1700000000,
		    28 => 'N', 1700000000, 60 => 'a20', $r->{guid}, 80 => 'Q>', $r->{uid},
		    96 => 'Q>', $r->{uid});
		$records .= $rec . pack('N', crc32($rec));
		$used += $r->{size};
	}
	my $h = fields(156, 0 => 'N', 1, 8 => 'N', 17, 12 => 'N', 160, 16 => 'N', 112,
	    20 => 'N', $n, 24 => 'N', 1700000000, 28 => 'N', $n, 32 => 'Q>', $used,
	    44 => 'N', $uidvalidity, 68 => 'Q>', $n || 1, 84 => 'N', $n, 96 => 'N', $hcrc,
	    124 => 'N', $n, 128 => 'Q>', 1);
	return $h . pack('N', crc32($h)) . $records;
}

sub header_bytes {
	my ($f) = @_;
	return $MAGIC . $HEADER_TEXT . "\t$f->{uniqueid}\n\n\n" if $f->{old_header};
	return $MAGIC . $HEADER_TEXT . $f->{header} if defined $f->{header};
	# Cyrus leaves stale names in headers: write one on purpose.
	return $MAGIC . $HEADER_TEXT . "%(N user.stale.name I $f->{uniqueid} T e)\n";
}

# The dump line ctl_mboxlist -u reads for one legacy folder.
sub dump_entry {
	my ($f) = @_;
	my $j = JSON::PP->new->canonical;
	return $j->encode($f->{name}) . ': ' . $j->encode({
		name => $f->{name}, mtime => '1700000000', uidvalidity => "$f->{uidvalidity}",
		createdmodseq => '1', foldermodseq => '1', mbtype => 'el',
		partition => $f->{partition} // 'default', acl => $f->{acl} // {}, uniqueid => $f->{uniqueid},
		name_history => [] });
}

# mbpath for many names at once; dies unless every name resolves.
sub resolve {
	my ($conf, $meta, @names) = @_;
	return () unless @names;
	my $r = run('mbpath', '-C', $conf, '-i', ($meta ? '-m' : ()), @names);
	die "mbpath: $r->{err}" if $r->{rc};
	my @dirs = split /\n/, $r->{out};
	die "mbpath gave " . @dirs . " paths for " . @names . " names" unless @dirs == @names;
	return @dirs;
}

sub write_folder {
	my ($f, $data, $meta, $links) = @_;
	make_path($data, $meta);
	my @recs;
	for my $uid (1 .. $f->{msgs}) {
		my $file = "$data/$uid.";
		my $shared = $f->{link} && $f->{link}{uid} == $uid ? $f->{link}{key} : undef;
		if (defined $shared && $links->{$shared}) {
			link($links->{$shared}, $file) or die "link $file: $!";
		} else {
			spew($file, defined $shared ? message("shared $shared", 1) : message($f->{name}, $uid));
			$links->{$shared} = $file if defined $shared;
		}
		my $body = slurp($file);
		push @recs, { uid => $uid, size => length $body, guid => sha1($body) };
	}
	my $hdr = header_bytes($f);
	spew("$meta/cyrus.header", $hdr);
	spew("$meta/cyrus.index", index_v17($f->{uidvalidity}, crc32($hdr), @recs));
}

# add_folders($conf, {name, uniqueid, msgs, partition, old_header,
# header (the text after the magic), acl => {id => rights},
# link => {key, uid}}, ...): legacy folders with their records.  Folders
# naming the same link key share one inode for message uid.
sub add_folders {
	my ($conf, @f) = @_;
	my $uv = 1700000001;
	$_->{uidvalidity} //= $uv++ for @f;
	my $dump = "{\n" . join(",\n", map { dump_entry($_) } @f) . "\n}\n";
	my $r = run('ctl_mboxlist', '-C', $conf, '-u', stdin => $dump);
	die "ctl_mboxlist -u: $r->{err}" if $r->{rc};
	my @names = map { $_->{name} } @f;
	my @data = resolve($conf, 0, @names);
	my @meta = resolve($conf, 1, @names);
	my %links;
	write_folder($f[$_], $data[$_], $meta[$_], \%links) for 0 .. $#f;
}

# The live folders: [{name, uniqueid, layout, partition}, ...].
sub folders {
	my ($conf) = @_;
	my $r = run('ctl_mboxlist', '-C', $conf, '-i', '-l');
	die "ctl_mboxlist -l: $r->{err}" if $r->{rc};
	return map {
		my @c = split /\t/;
		{ name => $c[0], uniqueid => $c[1], layout => $c[2], partition => $c[3] }
	} split /\n/, $r->{out};
}

# The message files of every live folder, found through the resolver:
# { name => { "uid." => sha1 } }, plus {layout}{name} and {dir}{name}.
sub snapshot {
	my ($conf) = @_;
	my @f = folders($conf);
	my @dirs = resolve($conf, 0, map { $_->{name} } @f);
	my %s;
	for my $i (0 .. $#f) {
		my $name = $f[$i]{name};
		$s{layout}{$name} = $f[$i]{layout};
		$s{dir}{$name} = $dirs[$i];
		$s{files}{$name} = {};
		opendir(my $dh, $dirs[$i]) or die "$name: $dirs[$i]: $!";
		for my $e (grep { /^[0-9]+\.$/ } readdir $dh) {
			my $p = "$dirs[$i]/$e";
			$s{files}{$name}{$e} = -l $p ? 'symlink' : sha1_file($p);
		}
		closedir $dh;
	}
	return \%s;
}

# The records of a cyrus.index: [{uid, guid (hex), flags}, ...].
sub index_records {
	my ($file) = @_;
	my $b = slurp($file);
	my ($minor, $start, $size, $n) = unpack('x8 N N N N', $b);
	my @r;
	for my $i (0 .. $n - 1) {
		my $rec = substr($b, $start + $i * $size, $size);
		my $flags = unpack($minor == 20 ? 'x36 N' : 'x32 N', $rec);
		push @r, { uid => unpack('N', $rec), flags => $flags,
		    guid => unpack('H40', substr($rec, 60, 20)) };
	}
	return @r;
}

# Every entry below the roots, with its type and inode: two equal
# listings mean nothing was created, removed, renamed or relinked.
sub tree_listing {
	my @roots = @_;
	my @l;
	find({ no_chdir => 1, wanted => sub {
		my @st = lstat($_);
		my $t = -l _ ? 'l' : -d _ ? 'd' : 'f';
		push @l, "$_ $t $st[1] $st[3]" . ($t eq 'f' ? " $st[7]" : '');
	} }, grep { -d } @roots);
	return join("\n", sort @l);
}

sub db_listing {
	my ($confdir) = @_;
	return scalar `mdb_dump -n -p '$confdir/mailboxes.db' 2>&1`;
}

# Every directory below the roots.
sub dirs_under {
	my @d;
	find({ no_chdir => 1, wanted => sub { push @d, $_ if -d $_ && !-l $_ } },
	    grep { -d } @_);
	return @d;
}

1;
