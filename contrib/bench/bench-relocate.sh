#!/bin/sh
# bench-relocate.sh - the migration walker (relocated -1) against two
# baselines on the same disk, in the same run.
#
#   bench-relocate.sh [DIR]
#
# DIR (default /var/tmp/idspool-bench-relocate; it must lie on the disk
# to measure) receives a legacy spool from mkspool of size $BENCH_SIZE
# (default large: 1,000,000 messages in 100,000 folders).  Then:
#
#   cp -al      a hard-linked copy of the spool tree, then sync -f:
#               files per second, the baseline of the link strategy;
#   renameloop  the copy's folders renamed to their uniqueid paths,
#               children first, by a bare loop (contrib/bench/renameloop.c:
#               no database, no locks, no fsync): folders per second, the
#               baseline of the rename strategy;
#   link        relocated -1 --strategy link on the spool (durable: every
#               step fsynced, every mailboxes.db commit synced);
#   rename      relocated -1 --strategy rename on the same spool restored.
#
# Each strategy runs once per job count in $BENCH_JOBS (default "1 2":
# relocated --jobs N, N worker processes on the one partition), on the
# spool restored each time; the targets are checked against the best.
#
# Both relocated runs use --grace 0 (old names removed at once, so the
# run includes all the work) and --io-pressure 0 (no pauses: this
# measures throughput, not politeness); their peak RSS comes from
# /usr/bin/time -v (the largest of the process and its children).
#
# The speed-up of two partitions is measured on $BENCH_SPEEDUP_SIZE
# (default medium: 100,000 messages in 10,000 folders): the same spool
# generated on one partition and on two (same disk), link strategy.
#
# BENCH_SPOOL=SRC reuses a spool mkspool already wrote (SRC/spool and
# SRC/conf/mailboxes.db, one partition, hashimapspool: yes, virtdomains:
# userid): it is hard-linked, not generated.  Nothing of SRC is written:
# relocated never writes into a file that has other names.
#
# Everything under DIR is removed at the end unless BENCH_KEEP=1.
# IDS_BUILD names the build.
set -eu

build=${IDS_BUILD:-$(pwd)/build}
bin=$build/bin
dir=${1:-/var/tmp/idspool-bench-relocate}
size=${BENCH_SIZE:-large}
speedsize=${BENCH_SPEEDUP_SIZE:-medium}
timev=/usr/bin/time

die() {
	echo "bench-relocate: $*" >&2
	exit 1
}

# Wall-clock seconds of a command, its output discarded.
seconds() {
	start=$(date +%s.%N)
	"$@" > /dev/null || die "$* failed"
	end=$(date +%s.%N)
	echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }'
}

# The file system of a directory, and for ext4 whether it has a journal
# (without one, ext4 skips inodes freed in the last seconds when it
# allocates, which makes creating files right after removing others
# slow: see BENCHMARKS.md).
fsinfo() {
	src=$(findmnt -no SOURCE -T "$1" 2>/dev/null || echo '?')
	fstype=$(findmnt -no FSTYPE -T "$1" 2>/dev/null || echo '?')
	case $fstype in
	ext4)
		if ls /proc/fs/jbd2/ 2>/dev/null | grep -q "^$(basename "$src")-"; then
			echo "ext4 on $src, journaled"
		else
			echo "ext4 on $src, no journal"
		fi ;;
	*)	echo "$fstype on $src" ;;
	esac
}

# conf NAME NPARTS: $dir/NAME/imapd.conf.
conf() {
	g=$dir/$1
	mkdir -p "$g/conf"
	{
		printf 'configdirectory: %s/conf\n' "$g"
		printf 'partition-default: %s/spool\n' "$g"
		[ "$2" -eq 2 ] && printf 'partition-second: %s/second\n' "$g"
		printf 'hashimapspool: yes\nvirtdomains: userid\n'
	} > "$g/imapd.conf"
}

# gen NAME SIZE NPARTS: a legacy spool in $dir/NAME.
gen() {
	conf "$1" "$3"
	"$bin/mkspool" -C "$dir/$1/imapd.conf" --size "$2" > /dev/null || die "mkspool failed"
	sync
}

# walk NAME LABEL ARGS...: relocated -1 under time -v; sets t, rss, summary.
walk() {
	g=$dir/$1
	label=$2
	shift 2
	start=$(date +%s.%N)
	$timev -v "$bin/relocated" -C "$g/imapd.conf" -1 -q --json --grace 0 \
	    --io-pressure 0 "$@" > "$g/$label.json" 2> "$g/$label.time" ||
	    die "relocated $label failed: $(tail -5 "$g/$label.time")"
	end=$(date +%s.%N)
	t=$(echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }')
	rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$g/$label.time")
	done_=$(awk -F'[:,]' '/"folders_done"/ { gsub(/ /, "", $2); print $2 }' "$g/$label.json")
	files=$(awk -F'[:,]' '/"files_done"/ { gsub(/ /, "", $2); print $2 }' "$g/$label.json")
}

[ -x "$timev" ] || die "$timev is needed (Debian: apt-get install time)"
[ -x "$build/contrib/bench/renameloop" ] || die "build contrib/bench/renameloop first"
rm -rf "$dir"
mkdir -p "$dir"

# --- the spool and the baselines ---------------------------------------
one=$dir/one
if [ -n "${BENCH_SPOOL:-}" ]; then
	conf one 1
	cp -al "$BENCH_SPOOL/spool" "$one/spool"
	cp "$BENCH_SPOOL/conf/mailboxes.db" "$one/conf/"
	sync
else
	gen one "$size" 1
fi
nfiles=$(find "$one/spool" -type f | wc -l)
nfolders=$("$bin/relocated" -C "$one/imapd.conf" -s | awk '/^folders:/ { print $2 }')
t_cp=$(seconds cp -al "$one/spool" "$one/copy")
t_cps=$(seconds sync -f "$one/copy")
"$bin/relocated" -C "$one/imapd.conf" -n | sed "s|^$one/spool/|$one/copy/|; s| -> $one/spool/| -> $one/copy/|" \
    > "$one/plan"
loop=$("$build/contrib/bench/renameloop" < "$one/plan") || die "renameloop failed"
rm -rf "$one/copy"

# --- link, then rename, per job count, on the spool restored ----------
jobs=${BENCH_JOBS:-1 2}
cp -al "$one/spool" "$one/spool.orig"
cp -a "$one/conf" "$one/conf.orig"
sync
restore() {
	rm -rf "$one/spool" "$one/conf"
	cp -al "$one/spool.orig" "$one/spool"
	cp -a "$one/conf.orig" "$one/conf"
	sync
}
runs=
for s in link rename; do
	for j in $jobs; do
		walk one "$s$j" --strategy "$s" --jobs "$j"
		runs="$runs $s $j $t $rss $done_ $files"
		restore
	done
done
rm -rf "$one"

# --- one partition against two -----------------------------------------
gen p1 "$speedsize" 1
walk p1 link1 --strategy link
t_p1=$t done_p1=$done_ rss_p1=$rss
rm -rf "$dir/p1"
gen p2 "$speedsize" 2
walk p2 link2 --strategy link
t_p2=$t done_p2=$done_ rss_p2=$rss
rm -rf "$dir/p2"

echo "bench-relocate: ${BENCH_SPOOL:+$BENCH_SPOOL, }--size $size: $nfolders legacy folders, $nfiles files, in $dir"
echo "bench-relocate: file system: $(fsinfo "$dir")"
awk -v nf="$nfiles" -v nd="$nfolders" -v tc="$t_cp" -v ts="$t_cps" -v loop="$loop" \
    -v runs="$runs" \
    -v t1="$t_p1" -v d1="$done_p1" -v t2="$t_p2" -v d2="$done_p2" -v r2="$rss_p2" \
    -v ss="$speedsize" 'BEGIN {
	split(loop, L, " ")
	cpal = nf / tc; cpals = nf / (tc + ts); bare = L[1] / L[3]
	printf "%-34s %9.1f s %10.0f files/s\n", "cp -al", tc, cpal
	printf "%-34s %9.1f s %10.0f files/s\n", "cp -al + sync -f", tc + ts, cpals
	printf "%-34s %9.1f s %10.0f folders/s\n", "renameloop (bare)", L[3], bare
	n = split(runs, R, " ")
	for (i = 1; i + 5 <= n; i += 6) {
		s = R[i]; j = R[i + 1]; t = R[i + 2]; rss = R[i + 3]; d = R[i + 4]; f = R[i + 5]
		label = sprintf("relocated --strategy %s --jobs %d", s, j)
		if (s == "link") {
			r = (f / t) / cpal
			printf "%-34s %9.1f s %10.0f files/s  %6.0f folders/s  peak RSS %.1f MiB  %.3fx cp -al\n", \
			    label, t, f / t, d / t, rss / 1024, r
			if (r > bestl) { bestl = r; bl = j }
		} else {
			r = (d / t) / bare
			printf "%-34s %9.1f s %10.0f folders/s  peak RSS %.1f MiB  %.4fx renameloop\n", \
			    label, t, d / t, rss / 1024, r
			if (r > bestr) { bestr = r; br = j }
		}
	}
	printf "link   / cp -al         = %6.3fx with --jobs %d   (target >= 0.5x)\n", bestl, bl
	printf "rename / renameloop     = %6.4fx with --jobs %d   (target >= 0.5x)\n", bestr, br
	printf "two partitions (--size %s, link): %.1f s for %d folders vs %.1f s for %d on one: %.2fx, peak RSS %.1f MiB\n", \
	    ss, t2, d2, t1, d1, (d2 / t2) / (d1 / t1), r2 / 1024
}'
if [ "${BENCH_KEEP:-0}" != 1 ]; then
	rm -rf "$dir"
fi
