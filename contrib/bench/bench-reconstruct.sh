#!/bin/sh
# bench-reconstruct.sh - `reconstruct -m` over a generated spool of
# FOLDERS folders (default 100,000), as a ratio to merely reading every
# cyrus.header of the same spool (find ... -name cyrus.header -exec cat
# {} + > /dev/null), measured in the same run on a warm cache.
#
# Three rebuilds are timed: the first on the generated Cyrus-style
# spool (mailboxes.db present; it completes the headers: name histories,
# old formats), a dry run with nothing left to do, and the rebuild of a
# lost mailboxes.db.
#
#   usage: contrib/bench/bench-reconstruct.sh [FOLDERS]
#
# IDS_BUILD is the build directory (default ./build); the spool goes to
# a new directory under ${TMPDIR:-/tmp}, removed at the end unless
# BENCH_KEEP=1.  Results are printed and appended to BENCHMARKS.md
# (BENCH_OUT names another file; BENCH_OUT=/dev/null appends nowhere).
set -eu

folders=${1:-100000}
users=$((folders / 50 > 0 ? folders / 50 : 1))
messages=$((folders * 2))
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${IDS_BUILD:-$top/build}
bin=$build/bin
out=${BENCH_OUT:-$top/BENCHMARKS.md}
dir=$(mktemp -d "${TMPDIR:-/tmp}/ids-bench-reconstruct.XXXXXX")

cleanup() {
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT

for t in mkspool reconstruct; do
	[ -x "$bin/$t" ] || { echo "bench-reconstruct: $bin/$t: not built" >&2; exit 3; }
done

mkdir -p "$dir/conf" "$dir/spool"
cat > "$dir/imapd.conf" <<EOF
configdirectory: $dir/conf
partition-default: $dir/spool
defaultpartition: default
hashimapspool: yes
unixhierarchysep: yes
virtdomains: userid
EOF

now() { date +%s.%N; }
# Runs "$@" and prints its wall time in seconds; a failure stops the bench.
timed() {
	t0=$(now)
	"$@"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
read_headers() {
	find "$dir/spool" -name cyrus.header -exec cat {} + > /dev/null
}
median() {
	tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

echo "bench-reconstruct: generating $folders folders, $messages messages, $users users" >&2
gen=$(timed "$bin/mkspool" -C "$dir/imapd.conf" -s 1 -u "$users" -f "$folders" -m "$messages")
sync
headers=$(find "$dir/spool" -name cyrus.header | wc -l)
read_headers	# warm the cache for both sides
load=$(cut -d' ' -f1-3 /proc/loadavg)

first=$(timed "$bin/reconstruct" -C "$dir/imapd.conf" -m -q)
sync	# the next runs are not to pay for this one's writeback
# Three rounds, each: read every header, a dry run, a lost-database
# rebuild; the medians are compared, so a burst of other load on the
# machine weighs on both sides alike.
base="" check="" lost=""
for i in 1 2 3; do
	base="$base $(timed read_headers)"
	check="$check $(timed "$bin/reconstruct" -C "$dir/imapd.conf" -m -n -q)"
	rm -f "$dir/conf/mailboxes.db" "$dir/conf/mailboxes.db-lock"
	sync
	lost="$lost $(timed "$bin/reconstruct" -C "$dir/imapd.conf" -m -q)"
	sync
done
base=$(echo $base | median)
check=$(echo $check | median)
lost=$(echo $lost | median)
"$bin/reconstruct" -C "$dir/imapd.conf" -m -n -q || {
	echo "bench-reconstruct: the rebuilt mailboxes.db is not stable" >&2
	exit 1
}

report() {
	cat <<EOF

## reconstruct -m over $folders folders ($(date -u +%Y-%m-%d))

\`reconstruct -m\` walks the spool, reads every folder's cyrus.header
and the header of its cyrus.index, decides every name and uniqueid, and
writes mailboxes.db in one transaction; the baseline merely reads every
cyrus.header of the same spool.  The first run on the generated
(Cyrus-like) spool also rewrites the headers that lack the name history
mailboxes.db holds or are in the old format, each durably (fsync of the
file and of its directory): a one-time cost.

Command: \`make bench-reconstruct\` (that is,
\`IDS_BUILD=<build dir> sh contrib/bench/bench-reconstruct.sh $folders\`)
($(nproc) CPUs, $(uname -sr), $(df -T "$dir" | awk 'NR == 2 { print $2 }'), warm cache;
spool from \`mkspool -s 1 -u $users -f $folders -m $messages\` in ${gen}s:
$headers headers.)

| run | seconds | ratio to reading every header |
| --- | ---: | ---: |
| \`find spool -name cyrus.header -exec cat {} + >/dev/null\` | $base | 1.00 |
| \`reconstruct -m\`, first run on a Cyrus spool (completes the headers) | $first | $(ratio "$first" "$base") |
| \`reconstruct -m -n\`, nothing to do | $check | $(ratio "$check" "$base") |
| \`reconstruct -m\`, mailboxes.db lost | $lost | $(ratio "$lost" "$base") |

Medians of three rounds (the first run: once).  Load average at the
start: $load.  Target: the lost-mailboxes.db rebuild within 3x of
reading every header.
EOF
}
report
[ "$out" = /dev/null ] || report >> "$out"
