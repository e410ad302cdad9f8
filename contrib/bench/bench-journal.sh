#!/bin/sh
# bench-journal.sh - the cost of the change journal (sync_log: 1) on
# delivery: spool_append of N messages (default 1000) in one run into
# one folder of a spool without the journal and of one with it, on the
# same disk, alternately, ROUNDS times (default 3); prints the time per
# delivery of each run.
#
#   bench-journal.sh [DIR]
#
# DIR (default /var/tmp/idspool-bench-journal) is emptied first.
# IDS_BUILD names the build.
set -eu

build=${IDS_BUILD:-$(pwd)/build}
dir=${1:-/var/tmp/idspool-bench-journal}
n=${BENCH_N:-1000}
rounds=${BENCH_ROUNDS:-3}

rm -rf "$dir"
mkdir -p "$dir/msgs"
i=0
while [ $i -lt "$n" ]; do
	printf 'From: a@example.com\nSubject: m%d\n\nbody %d\n' $i $i > "$dir/msgs/$i"
	i=$((i + 1))
done
for mode in off on; do
	mkdir -p "$dir/$mode/conf" "$dir/$mode/spool"
	{
		echo "configdirectory: $dir/$mode/conf"
		echo "partition-default: $dir/$mode/spool"
		echo "virtdomains: userid"
		[ $mode = on ] && echo "sync_log: 1"
	} > "$dir/$mode/imapd.conf"
	"$build/bin/ctl_mboxlist" -C "$dir/$mode/imapd.conf" -c user/bench > /dev/null
done
r=1
while [ $r -le "$rounds" ]; do
	for mode in off on; do
		s=$(date +%s%N)
		"$build/bin/spool_append" -C "$dir/$mode/imapd.conf" -q user/bench "$dir"/msgs/*
		e=$(date +%s%N)
		echo "sync_log $mode, round $r: $(( (e - s) / 1000 / n )) us per delivery"
	done
	r=$((r + 1))
done
