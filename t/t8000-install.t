#!/usr/bin/perl
# make install / uninstall into a DESTDIR for two prefixes: the tools in
# PREFIX/lib/idspool/bin behind the one front command PREFIX/sbin/idspool,
# a commented /etc/idspool.conf never written over, the library static
# and shared (with its soname), and a pkg-config file made for the
# prefix; a program built against the installed library through
# pkg-config (contrib/example/resolve.c), linked both ways, opens a
# folder the way a delivery agent must.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $top = "$FindBin::Bin/..";
my $dir = scratch();
my $build = $ENV{IDS_BUILD} // "$top/build";
# A library built with sanitizers needs them in the program too.
my $san = $ENV{IDS_SANITIZE} ? "-fsanitize=$ENV{IDS_SANITIZE}" : '';

sub sh {
	my ($what, $cmd) = @_;
	my $out = `$cmd 2>&1`;
	is($?, 0, $what) or diag($out);
	return $out;
}

my $conf = write_conf("$dir/spool");
is(run('ctl_mboxlist', '-C', $conf, '-c', 'user/ann', 'user/ann/Sent')->{rc}, 0, 'folders');
my $where = (split /\n/, run('mbpath', '-C', $conf, 'user/ann/Sent')->{out})[0];

for my $prefix ('/usr', '/opt/idspool') {
	my $dest = "$dir/root" . ($prefix =~ s{/}{-}gr);
	my $p = "$dest$prefix";
	sh("make install PREFIX=$prefix",
	    "make -s -C '$top' O='$build' DESTDIR='$dest' PREFIX=$prefix install");
	for my $f (qw(sbin/idspool lib/idspool/bin/relocated lib/idspool/bin/ctl_rename
	    lib/idspool/bin/spool_audit lib/idspool/bin/reconstruct lib/idspool/bin/mbpath
	    lib/idspool/bin/ctl_mboxlist lib/idspool/bin/spool_append lib/idspool/bin/spool_sync
	    lib/idspool/bin/mkspool share/man/man8/mkspool.8 share/man/man8/idspool.8
	    share/man/man8/relocated.8 share/man/man7/idspool.7
	    share/man/man5/idspool.conf.5 lib/libidspool.a lib/libidspool.so.0 lib/libidspool.so
	    lib/pkgconfig/idspool.pc include/idspool.h include/idspool/layout.h
	    include/idspool/lock.h lib/systemd/system/relocated.service
	    lib/systemd/system/spool_sync@.service include/idspool/journal.h
	    share/bash-completion/completions/idspool)) {
		ok(-e "$p/$f", "$prefix: installed: $f");
	}
	ok(!-e "$p/include/idspool/idspool.h", "$prefix: idspool.h only as <idspool.h>");
	for my $h (qw(mailbox.h mboxlist.h index.h config.h dlist.h)) {
		ok(!-e "$p/include/$h", "$prefix: no $h beside Cyrus's own headers");
	}
	my @inc = slurp("$p/include/idspool.h") =~ /^#include (.*)$/mg;
	ok(@inc > 0 && !grep({ !m{^<idspool/[a-z_]+\.h>$} } @inc),
	    "$prefix: <idspool.h> includes only <idspool/...> headers") or diag(join "\n", @inc);
	my @onpath = map { s{.*/}{}r } glob("$p/sbin/* $p/bin/*");
	is_deeply(\@onpath, ['idspool'], "$prefix: one command on the PATH, idspool");
	ok(-f "$dest/etc/idspool.conf", "$prefix: a sample /etc/idspool.conf");
	like(slurp("$dest/etc/idspool.conf"), qr/^# configdirectory:/m, '... commented');
	spew("$dest/etc/idspool.conf", "configdirectory: /mine\n");
	sh("make install PREFIX=$prefix again",
	    "make -s -C '$top' O='$build' DESTDIR='$dest' PREFIX=$prefix install");
	is(slurp("$dest/etc/idspool.conf"), "configdirectory: /mine\n", '... never written over');
	like(slurp("$p/lib/systemd/system/relocated.service"),
	    qr{^ExecStart=\Q$prefix\E/lib/idspool/bin/relocated }m, "$prefix: the unit names the installed daemon");
	like(slurp("$p/lib/systemd/system/spool_sync\@.service"),
	    qr{^ExecStart=\Q$prefix\E/lib/idspool/bin/spool_sync .*-R --channel %i -- }m,
	    "$prefix: the rolling unit names the installed spool_sync, its channel the instance");
	is(readlink("$p/lib/libidspool.so"), 'libidspool.so.0', "$prefix: libidspool.so -> the soname");
	like(`readelf -d '$p/lib/libidspool.so.0'`, qr/\(SONAME\)\s+Library soname: \[libidspool\.so\.0\]/,
	    "$prefix: the shared library has its soname");

	# The front command.
	my $r = run("$p/sbin/idspool", 'help');
	is($r->{rc}, 0, "$prefix: idspool help");
	for my $t (map { s{.*/}{}r } glob("$p/lib/idspool/bin/*")) {
		like($r->{out}, qr/^  \Q$t\E +\S/m, "$prefix: idspool help lists $t with a line");
	}
	like($r->{out}, qr/\Q$prefix\E\/lib\/idspool\/bin/, "$prefix: ... and says where they are");
	like(slurp("$p/sbin/idspool"), qr{^tooldir=\$\{IDSPOOL_TOOLDIR:-'\Q$prefix\E/lib/idspool/bin'\}$}m,
	    "$prefix: idspool runs the tools of $prefix/lib/idspool/bin");
	local $ENV{IDSPOOL_TOOLDIR} = "$p/lib/idspool/bin";	# staged: not there yet
	$r = run("$p/sbin/idspool", 'mbpath', '-C', $conf, 'user/ann/Sent');
	is($r->{rc}, 0, "$prefix: idspool mbpath runs the installed mbpath") or diag($r->{err});
	is($r->{out}, "$where\n", '... which prints the path');
	$r = run("$p/sbin/idspool", 'help', 'reconstruct');
	like($r->{out}, qr/^usage: reconstruct /, "$prefix: idspool help TOOL: its usage");
	$r = run("$p/sbin/idspool", 'ls');
	is($r->{rc}, 2, "$prefix: idspool of an unknown tool is exit 2");
	is($r->{err}, "idspool: ls: no such tool (idspool help lists them)\n", '... saying so');

	# pkg-config, filled in at install time for this prefix.
	my $pcf = slurp("$p/lib/pkgconfig/idspool.pc");
	like($pcf, qr/^prefix=\Q$prefix\E$/m, "$prefix: idspool.pc names the prefix");
	like($pcf, qr/^libdir=\Q$prefix\E\/lib$/m, '... and the libdir');
	like($pcf, qr/^Requires\.private: lmdb uuid libcrypto zlib jansson$/m, '... the static dependencies');
	unlike($pcf, qr/@/, '... every placeholder filled in');
	like($pcf, qr/^Cflags: -I\$\{includedir\}$/m, '... compiles against <idspool.h>, not a path of Cyrus-named headers');
	# The staged include directory, even when it is /usr/include below DESTDIR.
	my $pc = "PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_SYSROOT_DIR='$dest' PKG_CONFIG_PATH='$p/lib/pkgconfig'";

	# Linked against the shared library.
	my $flags = sh("$prefix: pkg-config", "$pc pkg-config --cflags --libs idspool");
	chomp $flags;
	unlike($flags, qr/-lcrypto|-llmdb/, '... the shared link needs nothing but -lidspool');
	my $exe = "$dest/resolve-shared";
	sh("$prefix: build the example against the shared library",
	    "cc $san -o '$exe' '$top/contrib/example/resolve.c' $flags");
	like(`readelf -d '$exe'`, qr/\(NEEDED\)\s+Shared library: \[libidspool\.so\.0\]/,
	    '... which needs libidspool.so.0');
	$r = run('env', "LD_LIBRARY_PATH=$p/lib", $exe, $conf, 'user.ann.Sent');
	is($r->{rc}, 0, "$prefix: the shared example runs") or diag($r->{err});
	my ($path, $next, $layout) = split /\n/, $r->{out};
	is($path, $where, '... and resolves the folder as mbpath does');
	is($next, "$path/1.", '... names the next message file');
	is($layout, 'uniqueid', '... in the uniqueid layout');

	# Linked statically: libidspool.a and its private dependencies.
	$flags = sh("$prefix: pkg-config --static", "$pc pkg-config --static --cflags --libs idspool");
	chomp $flags;
	like($flags, qr/-llmdb.*-lcrypto|-lcrypto.*-llmdb/, '... names the dependencies');
	$exe = "$dest/resolve-static";
	# A fully static program cannot carry the sanitizers' runtimes: then
	# only libidspool and its dependencies are linked statically.
	my $static = $san ? "-Wl,-Bstatic $flags -Wl,-Bdynamic" : "-static $flags";
	sh("$prefix: build the example statically",
	    "cc $san -o '$exe' '$top/contrib/example/resolve.c' $static");
	unlike(`readelf -d '$exe' 2>&1`, qr/libidspool\.so/, '... which needs no libidspool.so');
	{
		# memcheck cannot replace malloc in a fully static program and
		# reports glibc's own start-up: that one runs bare
		local $IdsTest::NO_VALGRIND = !$san;
		$r = run($exe, $conf, 'user.ann.Sent');
	}
	is($r->{rc}, 0, "$prefix: the static example runs") or diag($r->{err});
	is((split /\n/, $r->{out})[0], $where, '... and resolves the folder too');

	# Every page installed renders.
	for my $page (glob("$p/share/man/man*/*")) {
		my $out = `mandoc -T lint -W warning '$page' 2>&1`;
		is($?, 0, "man page renders: $page") or diag($out);
	}

	sh("$prefix: make uninstall", "make -s -C '$top' O='$build' DESTDIR='$dest' PREFIX=$prefix uninstall");
	my @left = grep { -f $_ || -l $_ } map { glob("$p/$_/*") }
	    qw(sbin lib lib/idspool/bin lib/pkgconfig share/man/man8 share/man/man7 share/man/man5
	    lib/systemd/system share/bash-completion/completions include include/idspool);
	is_deeply(\@left, [], "$prefix: uninstall leaves nothing behind");
	ok(-f "$dest/etc/idspool.conf", '... but the configuration');
}

done_testing();
