/*
 * dump.h - the Cyrus 3.6 JSON dump of mailboxes.db (ctl_mboxlist -d
 * and -u), both ways.
 *
 * A dump is a line "{", one line per entry separated by ",\n", then
 * "\n}"; each entry is "<internal name>": {...} with the members in
 * Cyrus's order, the numbers as strings and NULL members left out, so
 * that dumps of Cyrus and of idspool compare line by line and feed each
 * other.  Reading checks every entry and reports each problem with its
 * line, through the caller's report function (nothing here prints);
 * nothing is written unless the caller sees no problem.
 *
 * JSON is read and written with jansson, which cannot tell on which line
 * a member of an object starts.  So the dump's outer object is walked
 * here member by member: jansson decodes each name and each entry from
 * where the previous one ended, and the lines it consumed are counted.
 */
#ifndef IDS_DUMP_H
#define IDS_DUMP_H

#include <stddef.h>

#include "mbentry.h"

struct ids_config;
struct ids_txn;
struct json_t;

/*
 * Adds key: s to the jansson object obj.  A NULL s is left out, as
 * Cyrus does; a string jansson refuses (not UTF-8) is IDS_ECORRUPT,
 * naming it, rather than a silent gap; else 0 or -ENOMEM.
 */
int ids_json_set_string(struct json_t *obj, const char *key, const char *s);

/*
 * Fills live with the by-uniqueid record of e when that record is e's
 * (a live mailbox: its name_history); it stays empty for tombstones and
 * stray records.  0 or a negative code.
 */
int ids_dump_history(struct ids_txn *txn, const struct ids_mbentry *e,
    struct ids_mbentry *live);

/*
 * The dump line of e ("<name>": {...}, no separator), with live's
 * history as its name_history, into *textp (malloc'd).  0, -ENOMEM, or
 * IDS_ECORRUPT for a string that is not UTF-8 (its detail names it).
 */
int ids_dump_format(const struct ids_mbentry *e, const struct ids_mbentry *live,
    char **textp);

/* An entry read from a dump, with the line it starts on. */
struct ids_dump_entry {
	struct ids_mbentry e;
	unsigned line;
	char *dbname;		/* the mailboxes.db spelling, to find duplicates */
};

/*
 * A problem of the input: line (0: of the input as a whole) and a text
 * of printable ASCII ("<name>: <what>" for an entry's).
 */
typedef void (*ids_dump_report_fn)(unsigned line, const char *text, void *rock);

struct ids_dump {
	const struct ids_config *cfg;	/* partitions an entry may name */
	ids_dump_report_fn report;	/* may be NULL */
	void *rock;
	struct ids_dump_entry *v;	/* the good entries, in mailboxes.db order */
	size_t n, alloc;
	unsigned bad;			/* problems reported */
	const struct ids_dump_entry *failed;	/* the entry the database refused */
	char *why;				/* and why */
};
#define IDS_DUMP_INIT(c, fn, r) { .cfg = (c), .report = (fn), .rock = (r) }

/*
 * Reads the len bytes at buf as a dump into d: every entry is checked
 * (a bad one is reported, counted in d->bad and left out; the walk goes
 * on), then names and live uniqueids across entries.  Returns
 * IDS_EFORMAT (reported) for a syntax error, which ends the walk, else
 * 0: d->bad says whether the entries may be written.
 */
int ids_dump_read(struct ids_dump *d, const char *buf, size_t len);

/*
 * For ids_mboxlist_write(), rock a dump read without problems: writes
 * every entry, tombstones first (a dump taken after a rename holds the
 * old name as a tombstone, which must stop being live before the new
 * name can take the uniqueid).  On a refusal d->failed and d->why say
 * which entry and why.
 */
int ids_dump_write_txn(struct ids_txn *txn, void *rock);

void ids_dump_release(struct ids_dump *d);

#endif
