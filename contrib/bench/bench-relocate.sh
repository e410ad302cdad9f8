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
# Each strategy of $BENCH_STRATEGIES (default "link rename") runs once
# per job count in $BENCH_JOBS (default "1 2": relocated --jobs N, N
# worker processes on the one partition), on the spool restored each
# time; the targets are checked against the best.  Everything runs
# $BENCH_RUNS times (default 3), in rounds, so that each round has
# every command side by side; the medians are reported.
#
# cyrus       Cyrus's own relocate_by_id -u of every user, on a full copy
#             of the same spool with a twoskip mailboxes.db that Cyrus's
#             ctl_mboxlist -u made from our dump (when Cyrus is installed
#             and this runs as root: Cyrus runs as its user; BENCH_CYRUS=0
#             leaves it out).
#
# Each relocated row also gives the median of its CPU time (user +
# system, from time -v): on a loaded machine it moves much less than the
# wall-clock time.
#
# Both relocated runs use --grace 0 (old names removed at once, so the
# run includes all the work) and --io-pressure 0 (no pauses: this
# measures throughput, not politeness); their peak RSS comes from
# /usr/bin/time -v (the largest of the process and its children).
#
# The speed-up of two partitions is measured on $BENCH_SPEEDUP_SIZE
# (default medium: 100,000 messages in 10,000 folders): the same spool
# generated on one partition and on two (same disk), link strategy
# (BENCH_SPEEDUP=0 leaves it out).
#
# BENCH_BASE_BUILD=DIR also runs the relocated of another build (the
# one before a change) in each round, right after this build's, on the
# same spool restored: "(base build)" rows, left out of the targets.
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
	$timev -v "${relbin:-$bin}/relocated" -C "$g/imapd.conf" -1 -q --json --grace 0 \
	    --io-pressure 0 "$@" > "$g/$label.json" 2> "$g/$label.time" ||
	    die "relocated $label failed: $(tail -5 "$g/$label.time")"
	end=$(date +%s.%N)
	t=$(echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }')
	rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$g/$label.time")
	cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$g/$label.time")
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
"$bin/relocated" -C "$one/imapd.conf" -n | sed "s|^$one/spool/|$one/copy/|; s| -> $one/spool/| -> $one/copy/|" \
    > "$one/plan"
cp -al "$one/spool" "$one/spool.orig"
cp -a "$one/conf" "$one/conf.orig"
sync
# What a run leaves is moved aside and removed at the end, not before the
# next run: ext4 without a journal skips inodes freed in the last minute
# when it allocates (recently_deleted), which would make the next run's
# file creations (lock files, headers, directories) pay for this removal.
used=0
set_aside() {
	used=$((used + 1))
	mkdir -p "$dir/used"
	for x in "$@"; do
		[ -e "$x" ] && mv "$x" "$dir/used/$used.$(basename "$x")"
	done
	return 0
}
restore() {
	set_aside "$one/spool" "$one/conf"
	cp -al "$one/spool.orig" "$one/spool"
	cp -a "$one/conf.orig" "$one/conf"
	sync
}

# --- Cyrus's own relocate_by_id on the same spool ----------------------
# Its twoskip mailboxes.db is made by Cyrus's ctl_mboxlist -u from the
# dump of ours; the spool is a full copy (Cyrus rewrites files in place),
# owned by the cyrus user; -u names every user (Cyrus moves users only).
cyrus=${BENCH_CYRUS_BIN:-/usr/lib/cyrus/bin}
cy=$dir/cyrus
if [ "${BENCH_CYRUS:-1}" = 1 ] && [ -x "$cyrus/relocate_by_id" ] && [ "$(id -u)" = 0 ] &&
    getent passwd cyrus > /dev/null; then
	mkdir -p "$cy/conf" "$cy/lock" "$cy/run" "$cy/sieve"
	{
		printf 'configdirectory: %s/conf\npartition-default: %s/spool\n' "$cy" "$cy"
		printf 'defaultpartition: default\nadmins: admin\nproc_path: %s/run/proc\n' "$cy"
		printf 'mboxname_lockpath: %s/lock\nsievedir: %s/sieve\n' "$cy" "$cy"
		printf 'hashimapspool: yes\nvirtdomains: userid\nunixhierarchysep: no\n'
	} > "$cy/imapd.conf"
	"$bin/ctl_mboxlist" -C "$one/imapd.conf" -d > "$cy/dump"
	chown -R cyrus:mail "$cy"
	runuser -u cyrus -- env CYRUS_SERVICE=ctl_mboxlist "$cyrus/ctl_mboxlist" \
	    -C "$cy/imapd.conf" -u < "$cy/dump" > /dev/null 2>&1 ||
	    die "Cyrus's ctl_mboxlist -u failed"
	cp -a "$cy/conf" "$cy/conf.orig"
	"$bin/ctl_mboxlist" -C "$one/imapd.conf" -l -i | awk -F'\t' '
	    $1 ~ /^([^!]+!)?user\.[^.]+$/ {
		n = $1; dom = ""
		if (n ~ /!/) { dom = "@" substr(n, 1, index(n, "!") - 1); n = substr(n, index(n, "!") + 1) }
		u = substr(n, 6); gsub(/\^/, ".", u); print u dom }' > "$cy/users"
else
	cy=
fi
cyrus_run() {
	set_aside "$cy/spool" "$cy/conf"
	cp -a "$one/spool.orig" "$cy/spool"
	cp -a "$cy/conf.orig" "$cy/conf"
	chown -R cyrus:mail "$cy/spool" "$cy/conf"
	sync
	start=$(date +%s.%N)
	# shellcheck disable=SC2046
	$timev -v runuser -u cyrus -- env CYRUS_SERVICE=relocate_by_id "$cyrus/relocate_by_id" \
	    -C "$cy/imapd.conf" -q -u $(cat "$cy/users") > "$cy/out" 2> "$cy/time" ||
	    die "relocate_by_id failed: $(tail -5 "$cy/time")"
	end=$(date +%s.%N)
	t=$(echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }')
	rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$cy/time")
	# The folders it moved: the live ones its mailboxes.db no longer has legacy.
	left=$(runuser -u cyrus -- env CYRUS_SERVICE=ctl_mboxlist "$cyrus/ctl_mboxlist" \
	    -C "$cy/imapd.conf" -d 2> /dev/null | grep -c '"mbtype": "el"' || true)
	cyfolders=$((nfolders - left))
}

# --- BENCH_RUNS rounds, each command once a round, side by side --------
# A round: cp -al (+ sync -f) and the bare rename loop on a copy, then
# relocated for each strategy and job count and Cyrus's relocate_by_id,
# each on the spool restored.  Medians over the rounds are reported.
jobs=${BENCH_JOBS:-1 2}
strategies=${BENCH_STRATEGIES:-link rename}
res=$dir/results
: > "$res"
round=0
while [ "$round" -lt "${BENCH_RUNS:-3}" ]; do
	round=$((round + 1))
	t_cp=$(seconds cp -al "$one/spool" "$one/copy")
	t_cps=$(seconds sync -f "$one/copy")
	echo "cp $t_cp $t_cps" >> "$res"
	loop=$("$build/contrib/bench/renameloop" < "$one/plan") || die "renameloop failed"
	echo "loop $loop" >> "$res"
	set_aside "$one/copy"
	sync
	for s in $strategies; do
		for j in $jobs; do
			walk one "$s$j" --strategy "$s" --jobs "$j"
			echo "run $s $j $t $rss $done_ $files $cpu" >> "$res"
			restore
			if [ -n "${BENCH_BASE_BUILD:-}" ]; then
				relbin=$BENCH_BASE_BUILD/bin
				walk one "base-$s$j" --strategy "$s" --jobs "$j"
				relbin=
				echo "run base-$s $j $t $rss $done_ $files $cpu" >> "$res"
				restore
			fi
		done
	done
	if [ -n "$cy" ]; then
		cyrus_run
		echo "cyrus $t $rss $cyfolders" >> "$res"
	fi
done
rm -rf "$one" "$dir/used"

# --- one partition against two -----------------------------------------
t_p1=0 done_p1=0 t_p2=0 done_p2=0 rss_p2=0
if [ "${BENCH_SPEEDUP:-1}" = 1 ]; then
	gen p1 "$speedsize" 1
	walk p1 link1 --strategy link
	t_p1=$t done_p1=$done_ rss_p1=$rss
	rm -rf "$dir/p1"
	gen p2 "$speedsize" 2
	walk p2 link2 --strategy link
	t_p2=$t done_p2=$done_ rss_p2=$rss
	rm -rf "$dir/p2"
fi

echo "bench-relocate: ${BENCH_SPOOL:-"--size $size"}: $nfolders legacy folders, $nfiles files, in $dir"
echo "bench-relocate: file system: $(fsinfo "$dir"); medians of ${BENCH_RUNS:-3} rounds (all runs in brackets)"
awk -v nf="$nfiles" -v nd="$nfolders" \
    -v t1="$t_p1" -v d1="$done_p1" -v t2="$t_p2" -v d2="$done_p2" -v r2="$rss_p2" \
    -v ss="$speedsize" '
function median(list,   a, n, i, j, x) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "cp" { tc = tc " " $2; tcs = tcs " " ($2 + $3) }
$1 == "loop" { tl = tl " " $4; nl = $2 }
$1 == "run" { k = $2 " " $3; if (!(k in T)) order[++nk] = k; T[k] = T[k] " " $4; M[k] = M[k] " " $5; D[k] = $6; F[k] = $7; C[k] = C[k] " " $8 }
$1 == "cyrus" { tcy = tcy " " $2; mcy = mcy " " $3; dcy = $4 }
END {
	c = median(tc); cs = median(tcs); l = median(tl)
	cpal = nf / c; bare = nl / l
	printf "%-40s %9.2f s %10.0f files/s     [%s ]\n", "cp -al", c, cpal, tc
	printf "%-40s %9.2f s %10.0f files/s     [%s ]\n", "cp -al + sync -f", cs, nf / cs, tcs
	printf "%-40s %9.2f s %10.0f folders/s   [%s ]\n", "renameloop (bare)", l, bare, tl
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, sj, " "); s = sj[1]; j = sj[2]
		t = median(T[k]); rss = median(M[k]); d = D[k]; f = F[k]; cpu = median(C[k])
		label = sprintf("relocated --strategy %s --jobs %d", s, j)
		base = s ~ /^base-/
		if (base) { s = substr(s, 6); label = sprintf("(base build) --strategy %s --jobs %d", s, j) }
		if (s == "link") {
			r = (f / t) / cpal
			printf "%-40s %9.2f s %10.0f files/s  %6.0f folders/s  peak RSS %.1f MiB  %.3fx cp -al  [%s ]  cpu %.2f s [%s ]\n", \
			    label, t, f / t, d / t, rss / 1024, r, T[k], cpu, C[k]
			if (!base && r > bestl) { bestl = r; bl = j }
		} else {
			r = (d / t) / bare
			printf "%-40s %9.2f s %10.0f folders/s  peak RSS %.1f MiB  %.4fx renameloop  [%s ]  cpu %.2f s [%s ]\n", \
			    label, t, d / t, rss / 1024, r, T[k], cpu, C[k]
			if (!base && r > bestr) { bestr = r; br = j; bestrate = d / t }
		}
	}
	if (tcy != "") {
		t = median(tcy)
		printf "%-40s %9.2f s %10.0f folders/s  peak RSS %.1f MiB  [%s ]\n", \
		    "cyrus relocate_by_id -u (users)", t, dcy / t, median(mcy) / 1024, tcy
	}
	if (bl) printf "link   / cp -al         = %6.3fx with --jobs %d   (target >= 0.5x with one job, >= 0.8x with two)\n", bestl, bl
	if (br) printf "rename / renameloop     = %6.4fx with --jobs %d   (target >= 0.5x)\n", bestr, br
	if (br && tcy != "") printf "rename / relocate_by_id = %6.2fx (folders per second; target >= 5x)\n", bestrate / (dcy / median(tcy))
	if (t1 > 0) printf "two partitions (--size %s, link): %.1f s for %d folders vs %.1f s for %d on one: %.2fx, peak RSS %.1f MiB\n", \
	    ss, t2, d2, t1, d1, (d2 / t2) / (d1 / t1), r2 / 1024
}' "$res"
if [ "${BENCH_KEEP:-0}" != 1 ]; then
	rm -rf "$dir"
fi
