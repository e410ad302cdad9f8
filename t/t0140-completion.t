#!/usr/bin/perl
# t0140-completion.t - the bash completion (contrib/bash-completion/idspool)
# run in bash: the front command completes the tools, a tool's options
# come from its --help, -u completes users with their domain where a
# user is what the tool takes (mbpath -u and reconstruct -u take userids,
# as in Cyrus), and nothing after ctl_mboxlist -u (undump), which takes
# no argument.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IdsTest;

my $top = "$FindBin::Bin/..";
my $dir = scratch();
my $conf = write_conf($dir);
my $front = tool('idspool');
ok(-x $front, 'the build has the front command');
is(run('ctl_mboxlist', '-C', $conf, '-c', 'user/dave', 'user/dave/Sent',
    'user/john.doe@example.com', 'user/john.doe/Notes@example.com', 'shared/news')->{rc}, 0, 'folders');

# complete(@words): what the completion offers for the last word.
sub complete {
	my @w = @_;
	my $words = join(' ', map { "'$_'" } @w);
	my $script = <<"SH";
source '$top/contrib/bash-completion/idspool'
COMP_WORDS=($words)
COMP_CWORD=\$((\${#COMP_WORDS[@]} - 1))
_idspool '$w[0]' "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
SH
	my $r = run('bash', '-c', $script);
	return [sort grep { length } split /\n/, $r->{out}];
}

my $tools = complete($front, '');
ok((grep { $_ eq 'mbpath' } @$tools) && (grep { $_ eq 'reconstruct' } @$tools) &&
    (grep { $_ eq 'help' } @$tools), 'idspool <TAB>: the tools and help') or diag("@$tools");
is_deeply(complete($front, 'rec'), ['reconstruct'], 'idspool rec<TAB>');
is_deeply(complete($front, 'help', 'mb'), ['mbpath'], 'idspool help mb<TAB>');
my $opts = complete($front, 'reconstruct', '-');
ok((grep { $_ eq '-m' } @$opts) && (grep { $_ eq '-r' } @$opts), 'idspool reconstruct -<TAB>: its options')
    or diag("@$opts");
is_deeply(complete($front, 'mbpath', '-C', $conf, '-u', ''), ['dave', 'john.doe@example.com'],
    'mbpath -u <TAB>: userids, with their domain');
is_deeply(complete($front, 'reconstruct', '-C', $conf, '-u', 'j'), ['john.doe@example.com'],
    'reconstruct -u j<TAB>');
is_deeply(complete($front, 'relocated', '-C', $conf, '-u', ''), ['dave', 'john.doe@example.com'],
    'relocated -u <TAB>');
is_deeply(complete($front, 'ctl_mboxlist', '-C', $conf, '-u', ''), [],
    'ctl_mboxlist -u <TAB>: nothing (undump takes no argument)');
is_deeply(complete($front, 'mbpath', '-C', $conf, '-p', ''), [], 'mbpath -p <TAB>: no partitions (paths)');
is_deeply(complete($front, 'relocated', '-C', $conf, '-p', ''), ['default'], 'relocated -p <TAB>: partitions');

done_testing();
