#!/bin/sh
# demo.sh - idspool end to end on a generated sample spool.
#
#   sh contrib/demo.sh BUILD_DIR SCRATCH_DIR
#
# Generates a legacy Cyrus spool (users with and without domains, nested,
# shared and DELETED folders, a few thousand messages), exports its
# mailbox list the way `ctl_mboxlist -d` does on a Cyrus server and
# imports it, then starts the migration walker in the background and,
# while it runs, delivers new mail and renames a folder tree; waits for
# the walk; deletes mailboxes.db and rebuilds it from the spool with
# reconstruct; audits the result; and prints a before/after summary.
# Everything happens below SCRATCH_DIR, which is wiped first: the demo
# can be run again and again.
set -eu

bin=$(cd "$1" && pwd)/bin
top=$2
PATH=$bin:$PATH
export PATH

case $top in
/*) ;;
*) top=$(pwd)/$top ;;
esac
rm -rf "$top"
mkdir -p "$top/conf" "$top/spool" "$top/cyrus/conf" "$top/cyrus/spool"

conf=$top/imapd.conf
cat > "$conf" <<CONF
configdirectory: $top/conf
partition-default: $top/spool
defaultpartition: default
hashimapspool: yes
virtdomains: userid
unixhierarchysep: yes
CONF
sed "s|$top/|$top/cyrus/|" "$conf" > "$top/cyrus/imapd.conf"

say() { printf '\n== %s\n' "$*"; }

# A tree-like view of one user's directories (folder files summarised);
# a directory named by a uniqueid is shown as "NAME -> uniqueid", the
# folder's name from mailboxes.db (ctl_mboxlist -l: name, id, ...).
show_tree() {
	dir=$1
	ctl_mboxlist -C "$conf" -l > "$top/names.tsv"
	( cd "$dir" && find . -type d | sort | while read -r d; do
		depth=$(printf '%s' "$d" | tr -cd / | wc -c)
		n=$(find "$d" -maxdepth 1 -type f -name '*.' | wc -l)
		indent=$(printf '%*s' $((depth * 2)) '')
		name=${d##*/}
		[ "$d" = . ] && name=$(basename "$dir")
		folder=$(awk -F '\t' -v id="$name" '$2 == id && $3 == "uniqueid" { print $1; exit }' \
			"$top/names.tsv")
		[ -n "$folder" ] && name="$folder -> $name"
		[ "$n" = 1 ] && what=message || what=messages
		printf '%s%s/  (%s %s)\n' "$indent" "$name" "$n" "$what"
	done )
}

start=$(date +%s)

say "1. A legacy Cyrus spool, generated"
mkspool -C "$top/cyrus/imapd.conf" --size small -s 7 --json > "$top/mkspool.json"
folders=$(sed -n 's/^  "folders": \([0-9]*\),/\1/p' "$top/mkspool.json")
messages=$(sed -n 's/^  "messages": \([0-9]*\),/\1/p' "$top/mkspool.json")
echo "$folders folders, $messages messages, in the legacy (name-based) layout"

say "2. Its mailbox list exported (ctl_mboxlist -d) and imported here"
ctl_mboxlist -C "$top/cyrus/imapd.conf" -d > "$top/cyrus.dump"
mv "$top/cyrus/spool"/* "$top/spool/"
ctl_mboxlist -C "$conf" -u < "$top/cyrus.dump"
echo "$(grep -c '": {' "$top/cyrus.dump") entries imported"

# The user with the most folders is the one we watch (internal names
# from here on: -i).
inbox=$(ctl_mboxlist -C "$conf" -i -l | cut -f1 |
	perl -ne 'print "$1\n" if /^((?:[^!]*!)?user\.[^.]+)/' |
	sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')

say "3. $inbox before: folders inside folders, named by their names"
before_dir=$(mbpath -C "$conf" -i "$inbox" | head -n 1)
show_tree "$before_dir" | head -n 25

say "4. relocated migrates in the background; meanwhile mail arrives and a tree is renamed"
relocated -C "$conf" -1 -q --rate 2000 --grace 3 &
walker=$!
# A folder of that user with children: the tree to rename.
sub=$(ctl_mboxlist -C "$conf" -i -l | cut -f1 |
	perl -ne 'BEGIN { $p = quotemeta(shift) } print "$1\n" if /^($p\.[^.]+)\.[^.]/' "$inbox" |
	head -n 1)
delivered=0
i=0
while kill -0 "$walker" 2>/dev/null; do
	printf 'From: demo@example.com\r\nSubject: delivered during the migration %s\r\n\r\nhello\r\n' "$i" |
		spool_append -C "$conf" -i -q "$inbox" && delivered=$((delivered + 1))
	if [ "$i" = 2 ] && [ -n "$sub" ]; then
		new="$inbox.Renamed-${sub##*.}"
		ctl_rename -C "$conf" -i -q "$sub" "$new" &&
			echo "  renamed the tree $sub -> $new, while migrating"
	fi
	relocated -C "$conf" -s | sed -n 's/^folders: /  progress: /p'
	i=$((i + 1))
	sleep 1
done
wait "$walker"
relocated -C "$conf" -s
echo "$delivered messages delivered during the walk"

say "5. mailboxes.db deleted, and rebuilt from the spool alone"
# A folder deleted after the walk: its tombstone must come back too.
gone=$(ctl_mboxlist -C "$conf" -i -l | cut -f1 | grep -v '^DELETED\.' |
	perl -ne 'BEGIN { $p = quotemeta(shift) } print "$_" if /^$p\.[^.]+$/' "$inbox" | tail -n 1)
if [ -n "$gone" ]; then
	ctl_mboxlist -C "$conf" -i -x "$gone" && echo "deleted $gone"
fi
ctl_mboxlist -C "$conf" -d > "$top/before-rebuild.dump"
rm -f "$top/conf/mailboxes.db" "$top/conf/mailboxes.db-lock"
reconstruct -C "$conf" -m -q
ctl_mboxlist -C "$conf" -d > "$top/after-rebuild.dump"
# Live entries by name and uniqueid (their mtime and foldermodseq are in
# no file); tombstones field by field.
entries() {
	perl -MJSON::PP -e 'local $/; my $d = decode_json(<STDIN>);
		for my $n (sort keys %$d) { my $e = $d->{$n};
			if ($e->{mbtype} =~ /d/) { print "tombstone ", JSON::PP->new->canonical->encode($e), "\n" }
			else { print "live $n $e->{uniqueid}\n" } }' < "$1"
}
entries "$top/before-rebuild.dump" > "$top/before-rebuild.entries"
entries "$top/after-rebuild.dump" > "$top/after-rebuild.entries"
live_before=$(grep -c '^live ' "$top/before-rebuild.entries" || true)
live_after=$(grep -c '^live ' "$top/after-rebuild.entries" || true)
tomb_before=$(grep -c '^tombstone ' "$top/before-rebuild.entries" || true)
tomb_after=$(grep -c '^tombstone ' "$top/after-rebuild.entries" || true)
echo "live entries before: $live_before, after the rebuild: $live_after"
echo "tombstones before:   $tomb_before, after the rebuild: $tomb_after"
if cmp -s "$top/before-rebuild.entries" "$top/after-rebuild.entries"; then
	echo "every entry back, tombstones included"
else
	echo "the rebuild differs:" >&2
	diff "$top/before-rebuild.entries" "$top/after-rebuild.entries" >&2 || true
	exit 1
fi

say "6. spool_audit: every message where it should be, byte for byte"
spool_audit -C "$conf" -q && echo "audit clean"

say "7. $inbox after: one flat directory of uniqueids"
after_dir=$(dirname "$(mbpath -C "$conf" -i "$inbox" | head -n 1)")
show_tree "$after_dir" | head -n 25

end=$(date +%s)
say "Summary"
legacy_left=$(find "$top/spool" -name cyrus.header | while read -r h; do
	d=${h%/cyrus.header}; basename "$d"; done | grep -cvE '^[0-9a-f-]{36}$|^[0-9a-z]{24}$|^[0-9a-f]{16}$' || true)
echo "folders migrated:        $folders (legacy left: $legacy_left)"
echo "messages moved:          $messages (by hard link: no byte copied)"
echo "delivered during it:     $delivered"
echo "time:                    $((end - start)) s"
echo "scratch directory:       $top"
