#!/bin/sh
# bench-rss.sh - the peak RSS of relocated -1 and of ctl_rename (a dry
# run, then the rename) over a mailboxes.db of FOLDERS folders of one
# user (default 100,000), against the same over 10 folders, with GNU
# time's %M.  The records alone (loaded with ctl_mboxlist -u): the
# folders are in the uniqueid layout, so the walker has nothing to move
# and reads every record (its tombstone scan, its pass), and the rename
# has every record to collect and rename; its headers then fail (there
# are no folder directories), which stops it after the commit of the
# records, the part whose memory grows with the set.  The walk of a
# real spool of 100,000 folders, files and all, is in bench-relocate.sh
# (BENCH_SIZE=large) with its peak RSS.
#
#   usage: contrib/bench/bench-rss.sh [FOLDERS]
#
# IDS_BUILD is the build directory (default ./build); BENCH_BASE=<build
# dir> adds an older build's rows, run alternately in the same run.  The
# spools go to a new directory under ${TMPDIR:-/tmp}, removed at the end
# unless BENCH_KEEP=1.
set -eu

folders=${1:-100000}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${IDS_BUILD:-$top/build}
timev=/usr/bin/time
dir=$(mktemp -d "${TMPDIR:-/tmp}/ids-bench-rss.XXXXXX")

cleanup() {
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT
[ -x "$timev" ] || { echo "bench-rss: $timev is needed (Debian: apt-get install time)" >&2; exit 1; }

# dump N: user u1 with N folders, a tombstone of a renamed folder every 1,000.
dump() {
	perl -e '
		my $n = shift;
		my $e = q|"%s": {"name": "%s", "mtime": "1700000000", "uidvalidity": "%d", |
		    . q|"createdmodseq": "1", "foldermodseq": "1", "mbtype": "%s", %s"uniqueid": "%s", |
		    . q|"name_history": []}|;
		my $live = q|"partition": "default", "acl": {"u1": "lrswipkxtecdan"}, |;
		my @e = (sprintf($e, "user.u1", "user.u1", 1700000000, "e", $live,
		    "ffffffff-0000-4000-8000-000000000000"));
		for my $i (1 .. $n) {
			my $id = sprintf("%08x-0000-4000-8000-%012x", $i, $i);
			my $name = sprintf("user.u1.f%06d", $i);
			push @e, sprintf($e, $name, $name, 1700000000 + $i, "e", $live, $id);
			next if $i % 1000;
			$name = sprintf("user.u1.gone%06d", $i);
			push @e, sprintf($e, $name, $name, 1700000000 + $i, "ed", "", $id);
		}
		print "{\n", join(",\n", @e), "\n}\n";
	' "$1"
}

# spool NAME N: a fresh spool $dir/NAME with N folders.
spool() {
	rm -rf "$dir/$1"
	mkdir -p "$dir/$1/conf" "$dir/$1/spool"
	printf 'configdirectory: %s/conf\npartition-default: %s/spool\nhashimapspool: yes\nunixhierarchysep: yes\nvirtdomains: userid\n' \
	    "$dir/$1" "$dir/$1" > "$dir/$1/imapd.conf"
	dump "$2" | "$build/bin/ctl_mboxlist" -C "$dir/$1/imapd.conf" -u
}

# peak LABEL BIN CONF ARGS...: prints the peak RSS (MiB) of BIN -C CONF ARGS.
peak() {
	label=$1 bin=$2 conf=$3
	shift 3
	"$timev" -f %M -o "$dir/rss" "$bin" -C "$conf" "$@" > /dev/null 2>&1 || true
	printf '    %-44s %8.1f MiB\n' "$label" "$(awk '{ v = $1 } END { print v / 1024 }' "$dir/rss")"
}

echo "peak RSS, records of one user in mailboxes.db (GNU time %M), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
for n in 10 "$folders"; do
	for b in "$build" ${BENCH_BASE:+"$BENCH_BASE"}; do
		tag=$( [ "$b" = "$build" ] && echo this || echo base )
		spool s "$n"
		c=$dir/s/imapd.conf
		peak "relocated -1, $n folders ($tag)" "$b/bin/relocated" "$c" -1 -q --grace 0 --io-pressure 0
		peak "ctl_rename -n, $n folders ($tag)" "$b/bin/ctl_rename" "$c" -n user/u1 user/u9
		peak "ctl_rename, $n folders ($tag)" "$b/bin/ctl_rename" "$c" -q user/u1 user/u9
	done
done
