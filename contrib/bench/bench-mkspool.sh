#!/bin/sh
# bench-mkspool.sh - how long mkspool takes to write a spool, against
# cp -r of the same spool in the same run.
#
#   bench-mkspool.sh [DIR]
#
# DIR (default /tmp/idspool-bench-mkspool; it must lie on the disk to
# measure) receives a fresh spool of size $BENCH_SIZE (default large:
# 1,000,000 messages in 100,000 folders, about 19 GiB) on $BENCH_PARTS
# partitions (default 1), then each partition is copied with cp -r into
# DIR/copy, and the copy removed before the next one (untimed), so that
# the copies need the space of the largest partition only.
# Times are wall-clock seconds, summed over the partitions:
#   mkspool     the whole run, its final syncfs(2) included;
#   cp -r       the copies, which return before their data is on disk;
#   cp -r+sync  each copy followed by sync -f: durable, as mkspool's is.
# The ratios are mkspool's time over each copy time (target: < 10).
# Everything is removed at the end unless BENCH_KEEP=1.  IDS_BUILD
# names the build.
set -eu

build=${IDS_BUILD:-$(pwd)/build}
dir=${1:-/tmp/idspool-bench-mkspool}
size=${BENCH_SIZE:-large}
parts=${BENCH_PARTS:-1}
conf=$dir/imapd.conf

# Wall-clock seconds of a command, its output discarded.
seconds() {
	start=$(date +%s.%N)
	rc=0
	"$@" > /dev/null || rc=$?
	end=$(date +%s.%N)
	if [ "$rc" -ne 0 ]; then
		echo "bench-mkspool: $* exited $rc" >&2
		exit 1
	fi
	echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }'
}

add() { echo "$1 $2" | awk '{ printf "%.2f", $1 + $2 }'; }

rm -rf "$dir"
mkdir -p "$dir/conf"
printf 'configdirectory: %s/conf\npartition-default: %s/spool\nhashimapspool: yes\nvirtdomains: userid\n' \
    "$dir" "$dir" > "$conf"
roots="$dir/spool"
i=2
while [ "$i" -le "$parts" ]; do
	printf 'partition-p%d: %s/spool%d\n' "$i" "$dir" "$i" >> "$conf"
	roots="$roots $dir/spool$i"
	i=$((i + 1))
done
sync

t_gen=$(seconds "$build/bin/mkspool" -C "$conf" --size "$size")
printf '%-12s %9.2f s\n' mkspool "$t_gen"
# shellcheck disable=SC2086
mib=$(du -cs --block-size=1M $roots | tail -1 | cut -f1)
# shellcheck disable=SC2086
files=$(find $roots -type f | wc -l)
echo "mkspool --size $size: $files files, $mib MiB on $parts partition(s) in $dir"

t_cp=0
t_cps=0
for root in $roots; do
	t=$(seconds cp -r "$root" "$dir/copy")
	s=$(seconds sync -f "$dir/copy")
	t_cp=$(add "$t_cp" "$t")
	t_cps=$(add "$t_cps" "$(add "$t" "$s")")
	rm -rf "$dir/copy"
done

awk -v g="$t_gen" -v c="$t_cp" -v s="$t_cps" 'BEGIN {
	printf "%-12s %9.2f s   mkspool / cp -r      = %5.2fx\n", "cp -r", c, g / c
	printf "%-12s %9.2f s   mkspool / cp -r+sync = %5.2fx\n", "cp -r+sync", s, g / s
}'

if [ "${BENCH_KEEP:-0}" != 1 ]; then
	rm -rf "$dir"
fi
