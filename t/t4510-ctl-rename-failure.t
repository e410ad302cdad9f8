#!/usr/bin/perl
# ctl_rename that fails prints nothing on standard output (its plan lines
# read as a rename done), and names what it found at the new owner's
# directory: a symlink, a file, or a directory with something in it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Test::More;
use JSON::PP;
use IdsTest;

my $dir = scratch();
my $conf = write_conf($dir);
my $r = run('ctl_mboxlist', '-C', $conf, '-c', 'user/li13', 'user/li13/Sent');
die $r->{err} if $r->{rc};
$r = run('spool_append', '-C', $conf, '-q', 'user/li13/Sent', 'stdin', "Subject: x\r\n\r\nx\r\n");
die $r->{err} if $r->{rc};
my ($inbox) = split /\n/, run('mbpath', '-C', $conf, 'user/li13')->{out};
(my $owner = $inbox) =~ s{/[^/]+$}{};
# zelda's owner directory: the same hash letter scheme, z/user/zelda.
(my $target = $owner) =~ s{/l/user/li13$}{/z/user/zelda};
isnt($target, $owner, 'the target owner directory is known');
make_path("$dir/outside");
make_path($target =~ s{/[^/]+$}{}r);

sub attempt {
	my ($what, $setup, $reason) = @_;
	$setup->();
	my $r = run('ctl_rename', '-C', $conf, 'user/li13', 'user/zelda');
	is($r->{rc}, 1, "$what: exit 1");
	is($r->{out}, '', "$what: nothing on standard output");
	is($r->{err}, "ctl_rename: user/li13 -> user/zelda: z/user/zelda: $reason\n",
	    "$what: the reason") or diag($r->{err});
	$r = run('ctl_rename', '-C', $conf, '--json', 'user/li13', 'user/zelda');
	my $j = eval { decode_json($r->{out}) } // {};
	ok(!$j->{ok} && ref $j->{folders} eq 'ARRAY' && !@{ $j->{folders} },
	    "$what: --json lists no folder as renamed") or diag($r->{out});
	is(run('mbpath', '-C', $conf, 'user/li13/Sent')->{rc}, 0, "$what: the folder is still there");
}

attempt('a symlink', sub { symlink("$dir/outside", $target) or die }, "'zelda' is a symlink");
ok(-d "$dir/outside" && !-l "$dir/outside", '... its target untouched');
unlink $target;
attempt('a file', sub { open my $fh, '>', $target or die; close $fh }, "'zelda' is not a directory");
unlink $target;
attempt('a full directory', sub { make_path("$target/x") }, "the new owner's directory exists and is not empty");
rmdir "$target/x";

# Once it can be done, the lines come, after the rename.
$r = run('ctl_rename', '-C', $conf, 'user/li13', 'user/zelda');
is($r->{rc}, 0, 'the rename then succeeds') or diag($r->{err});
is($r->{out}, "user/li13 -> user/zelda\nuser/li13/Sent -> user/zelda/Sent\n", '... and says what was done');
done_testing();
