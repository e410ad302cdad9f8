#!/usr/bin/perl
# make install / uninstall into a DESTDIR, and a program built against
# the installed library through pkg-config (contrib/example/resolve.c)
# that opens a folder the way a delivery agent must.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $top = "$FindBin::Bin/..";
my $dir = scratch();
my $dest = "$dir/root";
my $build = $ENV{IDS_BUILD} // "$top/build";

sub sh {
	my ($what, $cmd) = @_;
	my $out = `$cmd 2>&1`;
	is($?, 0, $what) or diag($out);
	return $out;
}

sh('make install', "make -s -C '$top' O='$build' DESTDIR='$dest' PREFIX=/usr install");
for my $f (qw(sbin/relocated sbin/ctl_rename sbin/spool_audit sbin/reconstruct sbin/mbpath
    sbin/ctl_mboxlist sbin/spool_append share/man/man8/relocated.8 share/man/man7/idspool.7
    share/man/man5/idspool.conf.5 lib/libidspool.a lib/pkgconfig/idspool.pc
    include/idspool/idspool.h include/idspool/layout.h include/idspool/lock.h
    lib/systemd/system/relocated.service share/bash-completion/completions/idspool
    share/bash-completion/completions/relocated)) {
	ok(-e "$dest/usr/$f", "installed: $f");
}
ok(!-e "$dest/usr/sbin/mkspool", 'the generator stays in contrib');
like(slurp("$dest/usr/lib/systemd/system/relocated.service"), qr{^ExecStart=/usr/sbin/relocated }m,
    'the unit names the installed daemon');
unlike(slurp("$dest/usr/lib/pkgconfig/idspool.pc"), qr/@/, 'the pkg-config file is filled in');

# A program against the installed library, found through pkg-config.
my $pc = "PKG_CONFIG_SYSROOT_DIR='$dest' PKG_CONFIG_PATH='$dest/usr/lib/pkgconfig'";
my $flags = sh('pkg-config', "$pc pkg-config --cflags --libs --static idspool");
chomp $flags;
# A library built with sanitizers needs them in the program too.
my $san = $ENV{IDS_SANITIZE} ? "-fsanitize=$ENV{IDS_SANITIZE}" : '';
sh('build the example', "cc $san -o '$dir/resolve' '$top/contrib/example/resolve.c' $flags");

my $conf = write_conf("$dir/spool");
is(run('ctl_mboxlist', '-C', $conf, '-c', 'user/ann', 'user/ann/Sent')->{rc}, 0, 'folders');
my $r = run("$dir/resolve", $conf, 'user.ann.Sent');
is($r->{rc}, 0, 'the example runs') or diag($r->{err});
my ($path, $next, $layout) = split /\n/, $r->{out};
is($path, (split /\n/, run('mbpath', '-C', $conf, 'user/ann/Sent')->{out})[0],
    'it resolves the folder as mbpath does');
is($next, "$path/1.", 'and names the next message file');
is($layout, 'uniqueid', 'in the uniqueid layout');

# Every page installed renders.
for my $page (glob("$dest/usr/share/man/man*/*")) {
	my $out = `mandoc -T lint -W warning '$page' 2>&1`;
	is($?, 0, "man page renders: $page") or diag($out);
}

sh('make uninstall', "make -s -C '$top' O='$build' DESTDIR='$dest' PREFIX=/usr uninstall");
my @left = grep { -f $_ || -l $_ } map { glob("$dest/usr/$_/*") }
    qw(sbin lib lib/pkgconfig share/man/man8 share/man/man7 share/man/man5 lib/systemd/system
    share/bash-completion/completions);
is_deeply(\@left, [], 'uninstall leaves nothing behind');

done_testing();
