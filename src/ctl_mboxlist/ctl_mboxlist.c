/*
 * ctl_mboxlist - dump, undump and list mailboxes.db.
 *
 * -d writes the database as JSON in exactly the shape of Cyrus 3.6's
 * "ctl_mboxlist -d": a line "{", one line per entry separated by ",\n",
 * then "\n}"; each entry is "<internal name>": {...} with the members in
 * Cyrus's order, the numbers as strings and NULL members left out, so
 * the dumps of both programs can be compared line by line and fed to
 * each other.  Unlike Cyrus, whose dump walks only the by-name records,
 * name_history carries the real history of the by-uniqueid record.
 *
 * -u reads such a dump (ours, or a real Cyrus 3.6 one) from standard
 * input and writes it in one transaction: every entry is checked first
 * and each problem reported with its line, and nothing at all is
 * written unless every entry is good and the database accepts them all.
 *
 * -l lists the live mailboxes with their uniqueid, layout and partition;
 * -c and -x create and delete folders through the library's folder
 * lifecycle (mailbox.h).  -x deletes as Cyrus does with delete_mode:
 * delayed (the default): the folder is renamed, files and all, to
 * DELETED.<name>.<hextime> (rename.h); a DELETED folder given to -x,
 * and every one older than --expire's age, is removed for good.
 *
 * Every option Cyrus 3.6's ctl_mboxlist has means what it means there
 * (-d -p partition dumps one partition; -y changes nothing, since no
 * entry is hidden), or is refused with a pointer to ours.
 *
 * JSON is read and written with jansson, which cannot tell on which line
 * a member of an object starts.  So the dump's outer object is walked
 * here member by member: jansson decodes each name and each entry from
 * where the previous one ended, and the lines it consumed are counted.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "header.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "recover.h"
#include "rename.h"
#include "tool.h"

#define NAMEBUF (2 * IDS_MBNAME_MAX + 64)
#define SHOWBUF 1024	/* input shown in a message, made printable */

static const char synopsis[] =
    "ctl_mboxlist [-C conf] -d [-y] [-p partition]\n"
    "       ctl_mboxlist [-C conf] -u\n"
    "       ctl_mboxlist [-C conf] [-i] [--json] -l [name ...]\n"
    "       ctl_mboxlist [-C conf] [-i] -c name ...\n"
    "       ctl_mboxlist [-C conf] [-i] -x name ...\n"
    "       ctl_mboxlist [-C conf] --expire seconds";

static const char help[] =
    "  -C conf       the configuration file (default /etc/idspool.conf)\n"
    "  -d            dump mailboxes.db as JSON, as Cyrus 3.6 does\n"
    "  -y            with -d: accepted (no entry is hidden)\n"
    "  -p partition  with -d: only the mailboxes on this partition\n"
    "  -u            undump: load such a dump from standard input\n"
    "  -l            list live mailboxes (uniqueid, layout, partition)\n"
    "  -c            create each folder named\n"
    "  -x            delete each folder named (delete_mode: delayed renames\n"
    "                it to DELETED.*; a DELETED folder is removed for good)\n"
    "  --expire S    remove every DELETED folder older than S seconds\n"
    "  -i            names are internal (example.com!user.john^doe.Sent)\n"
    "  --json        with -l: a JSON array\n";

enum mode { MODE_NONE, MODE_DUMP, MODE_UNDUMP, MODE_LIST, MODE_CREATE, MODE_DELETE,
	MODE_EXPIRE };

struct options {
	const char *conf;	/* NULL: the default */
	enum mode mode;
	const char *partition;	/* -d -p */
	int purge;		/* Cyrus's -d -x, refused */
	unsigned long long expire;	/* --expire: seconds */
	int internal;		/* -i: names are internal names */
	int json;		/* --json */
	char **names;
	int nnames;
};

/* ---- common --------------------------------------------------------- */

/* The exit status for a failed library call: environment or object. */
static int
exit_status(int r)
{
	switch (r) {
	case IDS_EDB:
	case IDS_ECONFIG:
	case IDS_EFORMAT:
	case IDS_ELOCKED:
		return IDS_EXIT_ENV;
	}
	return r > -4096 ? IDS_EXIT_ENV : IDS_EXIT_FAIL;	/* -errno */
}

/* Opens mailboxes.db, reporting failure; returns the exit status. */
static int
open_db(const struct ids_config *cfg, int flags, struct ids_mboxlist **mblp)
{
	int r = ids_mboxlist_open(cfg, flags, mblp);

	if (r < 0) {
		/* The library's detail names the database; a bare code does not. */
		if (strcmp(ids_errmsg(r), ids_strerror(r)) != 0)
			warnx("%s", ids_errmsg(r));
		else
			warnx("%s/mailboxes.db: %s", cfg->configdirectory, ids_strerror(r));
		return IDS_EXIT_ENV;
	}
	/* Like every writer, settle what a dead process left half done. */
	if (!(flags & IDS_MBOXLIST_RDONLY) && (r = ids_recover(*mblp, NULL, NULL, NULL)) < 0)
		warnx("recovery: %s", ids_errmsg(r));
	return IDS_EXIT_OK;
}

/* Checks that everything written to stdout got there. */
static int
flush_stdout(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warnx("stdout: %s", strerror(errno ? errno : EIO));
		return IDS_EXIT_FAIL;
	}
	return IDS_EXIT_OK;
}

/* ---- dump: entries as Cyrus 3.6 prints them ------------------------- */

/*
 * Adds key: s to obj.  A NULL s is left out, as Cyrus does; a string
 * jansson refuses (not UTF-8) is an error rather than a silent gap.
 */
static int
set_string(json_t *obj, const char *key, const char *s)
{
	json_t *v;

	if (s == NULL)
		return 0;
	if ((v = json_string(s)) == NULL)
		return ids_error(IDS_ECORRUPT, "%s '%s' is not valid UTF-8", key, s);
	return json_object_set_new(obj, key, v) < 0 ? -ENOMEM : 0;
}

static int __attribute__((format(printf, 3, 4)))
set_printf(json_t *obj, const char *key, const char *fmt, ...)
{
	char buf[32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return set_string(obj, key, buf);
}

/* Takes value (which may be NULL after a failure) into obj. */
static int
set_value(json_t *obj, const char *key, json_t *value, int r)
{
	if (r < 0) {
		json_decref(value);
		return r;
	}
	if (value == NULL || json_object_set_new(obj, key, value) < 0)
		return -ENOMEM;
	return 0;
}

/* mtime, uidvalidity, createdmodseq, foldermodseq: all strings. */
static int
set_numbers(json_t *obj, int64_t mtime, uint32_t uidvalidity, uint64_t cms,
    uint64_t fms)
{
	int r = set_printf(obj, "mtime", "%" PRId64, mtime);

	if (r == 0)
		r = set_printf(obj, "uidvalidity", "%" PRIu32, uidvalidity);
	if (r == 0)
		r = set_printf(obj, "createdmodseq", "%" PRIu64, cms);
	if (r == 0)
		r = set_printf(obj, "foldermodseq", "%" PRIu64, fms);
	return r;
}

/* Cyrus spells the plain email type (0) "e". */
static const char *
mbtype_string(const char *mbtype)
{
	return mbtype[0] ? mbtype : "e";
}

/* Whether jansson takes s as a string (or an object key). */
static int
utf8(const char *s)
{
	json_t *v = json_string(s);

	json_decref(v);
	return v != NULL;
}

static int
acl_json(const struct ids_acl *acl, size_t n, json_t **out)
{
	json_t *obj = json_object();
	size_t i;
	int r = obj ? 0 : -ENOMEM;

	for (i = 0; r == 0 && i < n; i++) {
		if (!utf8(acl[i].id))
			r = ids_error(IDS_ECORRUPT, "acl id '%s' is not valid UTF-8",
			    acl[i].id);
		else
			r = set_string(obj, acl[i].id, acl[i].rights);
	}
	*out = obj;
	return r;
}

static int
history_item_json(const struct ids_history *h, json_t **out)
{
	json_t *obj = json_object();
	int r = obj ? 0 : -ENOMEM;

	if (r == 0)
		r = set_string(obj, "name", h->name);
	if (r == 0)
		r = set_numbers(obj, h->mtime, h->uidvalidity, h->createdmodseq,
		    h->foldermodseq);
	if (r == 0)
		r = set_string(obj, "mbtype", mbtype_string(h->mbtype));
	if (r == 0)
		r = set_string(obj, "partition", h->partition);
	*out = obj;
	return r;
}

static int
history_json(const struct ids_history *h, size_t n, json_t **out)
{
	json_t *arr = json_array(), *item;
	size_t i;
	int r = arr ? 0 : -ENOMEM;

	for (i = 0; r == 0 && i < n; i++) {
		r = history_item_json(&h[i], &item);
		if (r == 0 && json_array_append_new(arr, item) < 0)
			r = -ENOMEM;
		else if (r < 0)
			json_decref(item);
	}
	*out = arr;
	return r;
}

/* The entry's object, members in the order of Cyrus's dump. */
static int
entry_json(const struct ids_mbentry *e, const struct ids_mbentry *live,
    json_t *obj)
{
	json_t *v = NULL;
	int r = set_string(obj, "name", e->name);

	if (r == 0)
		r = set_numbers(obj, e->mtime, e->uidvalidity, e->createdmodseq,
		    e->foldermodseq);
	if (r == 0)
		r = set_string(obj, "mbtype", mbtype_string(e->mbtype));
	if (r == 0)
		r = set_string(obj, "partition", e->partition);
	if (r == 0)
		r = set_string(obj, "server", e->server);
	if (r == 0) {
		r = acl_json(e->acl, e->nacl, &v);
		r = set_value(obj, "acl", v, r);
	}
	if (r == 0)
		r = set_string(obj, "uniqueid", e->uniqueid);
	/* legacy_specialuse: Cyrus's is NULL after its upgrade; we keep none. */
	if (r == 0) {
		r = history_json(live->history, live->nhistory, &v);
		r = set_value(obj, "name_history", v, r);
	}
	return r;
}

/*
 * Fills live with the by-uniqueid record of e when that record is e's
 * (a live mailbox); it stays empty for tombstones and stray records.
 */
static int
read_history(struct ids_txn *txn, const struct ids_mbentry *e,
    struct ids_mbentry *live)
{
	int r;

	if (ids_mbentry_is_tombstone(e) || e->uniqueid == NULL)
		return 0;
	r = ids_txn_lookup_id(txn, e->uniqueid, live);
	if (r == IDS_ENOTFOUND)
		return 0;
	if (r == 0 && (live->name == NULL || strcmp(live->name, e->name) != 0)) {
		ids_mbentry_release(live);
		ids_mbentry_init(live);
	}
	return r;
}

struct dump {
	struct ids_txn *txn;
	const char *sep;
	int status;
	const char *partition;	/* -p: only entries on it */
};

/*
 * Prints one entry as the line "<name>": {...}.  An entry that cannot be
 * printed is reported and skipped, and the dump goes on.
 */
static int
dump_entry(const struct ids_mbentry *e, void *rock)
{
	struct dump *d = rock;
	struct ids_mbentry live;
	json_t *top = json_object(), *obj = json_object();
	char *text = NULL;
	int r = top && obj ? 0 : -ENOMEM;

	/* Cyrus's -p: the mailboxes on the partition (tombstones have none). */
	if (d->partition != NULL && (e->partition == NULL || strcmp(e->partition, d->partition) != 0)) {
		json_decref(top);
		json_decref(obj);
		return 0;
	}
	ids_mbentry_init(&live);
	/* An unreadable history is reported; the entry is dumped without it. */
	if (r == 0 && (r = read_history(d->txn, e, &live)) < 0) {
		d->status = exit_status(tool_error(r, e->name));
		ids_mbentry_release(&live);
		r = 0;
	}
	if (r == 0)
		r = entry_json(e, &live, obj);
	if (r == 0)
		r = set_value(top, e->name, obj, 0);
	else
		json_decref(obj);
	if (r == 0 && (text = json_dumps(top, JSON_EMBED | JSON_PRESERVE_ORDER)) == NULL)
		r = -ENOMEM;
	if (r == 0) {
		printf("%s%s", d->sep, text);
		d->sep = ",\n";
	} else {
		d->status = exit_status(tool_error(r, e->name));
	}
	free(text);
	json_decref(top);
	ids_mbentry_release(&live);
	return 0;
}

static int
dump_txn(struct ids_txn *txn, void *rock)
{
	struct dump *d = rock;

	d->txn = txn;
	return ids_txn_foreach(txn, NULL, dump_entry, d);
}

static int
do_dump(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	struct dump d = { NULL, "", IDS_EXIT_OK, o->partition };
	int r;

	if (o->partition != NULL && ids_config_partition(cfg, o->partition) == NULL) {
		warnx("-p %s: no such partition in %s", o->partition, cfg->file);
		return IDS_EXIT_ENV;
	}
	if ((r = open_db(cfg, IDS_MBOXLIST_RDONLY, &mbl)) != IDS_EXIT_OK)
		return r;
	fputs("{\n", stdout);
	r = ids_mboxlist_read(mbl, dump_txn, &d);
	fputs("\n}\n", stdout);
	if (r < 0) {
		warnx("%s: %s", ids_mboxlist_path(mbl), tool_reason(ids_mboxlist_path(mbl), r));
		d.status = exit_status(r);
	}
	ids_mboxlist_close(mbl);
	r = flush_stdout();
	return d.status != IDS_EXIT_OK ? d.status : r;
}

/* ---- undump: reading entries ---------------------------------------- */

/* An entry read from the dump, with where it came from. */
struct entry {
	struct ids_mbentry e;
	unsigned line;
	char *dbname;		/* the mailboxes.db spelling, to find duplicates */
};

struct import {
	const struct ids_config *cfg;
	struct entry *v;
	size_t n, alloc;
	unsigned bad;		/* problems found in the input */
	const struct entry *failed;	/* the entry the database refused */
	char *why;			/* and why */
};

/* What is being read, for messages: "stdin:LINE: NAME: [WHERE: ]..." */
struct ectx {
	unsigned line;
	const char *name;
	char where[48];
};

/* Reports a problem with the entry being read (its bytes made printable). */
static int __attribute__((format(printf, 2, 3)))
bad(struct ectx *c, const char *fmt, ...)
{
	struct ids_buf msg = IDS_BUF_INIT;
	char shown[SHOWBUF];
	va_list ap;

	ids_buf_printf(&msg, "%s: %s%s", c->name, c->where, c->where[0] ? ": " : "");
	va_start(ap, fmt);
	ids_buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	warnx("stdin:%u: %s", c->line, tool_printable(msg.s, shown, sizeof(shown)));
	ids_buf_release(&msg);
	return -1;
}

/* As bad(), for a reason the library already made printable (\xNN). */
static int
bad_printable(struct ectx *c, const char *why)
{
	char shown[SHOWBUF];

	warnx("stdin:%u: %s: %s", c->line, tool_printable(c->name, shown, sizeof(shown)), why);
	return -1;
}

/* A decimal string of digits only, at most max. */
static int
parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	unsigned d;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/*
 * Member key of obj as a number up to max.  Cyrus writes numbers as
 * decimal strings; a JSON integer is accepted as well.  Absent or null
 * is 0, as in Cyrus's undump.
 */
static int
get_number(struct ectx *c, json_t *obj, const char *key, uint64_t max,
    uint64_t *out)
{
	json_t *v = json_object_get(obj, key);
	json_int_t i;

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v) && parse_decimal(json_string_value(v), max, out) == 0)
		return 0;
	if (json_is_integer(v) && (i = json_integer_value(v)) >= 0 &&
	    (uint64_t)i <= max) {
		*out = (uint64_t)i;
		return 0;
	}
	return bad(c, "member '%s' must be a decimal number up to %" PRIu64
	    " (as a string)", key, max);
}

/* Member key as a malloc'd non-empty string, or NULL when absent. */
static int
get_string(struct ectx *c, json_t *obj, const char *key, char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(c, "member '%s' must be a string", key);
	if (json_string_length(v) == 0)
		return bad(c, "member '%s' must not be empty", key);
	if ((*out = strdup(json_string_value(v))) == NULL)
		return bad(c, "%s", strerror(ENOMEM));
	return 0;
}

static int
get_mbtype(struct ectx *c, json_t *obj, char mbtype[IDS_MBTYPE_MAX])
{
	char *s;
	int r;

	if (get_string(c, obj, "mbtype", &s) < 0)
		return -1;
	if (s == NULL) {
		strcpy(mbtype, "e");	/* Cyrus's default: a plain mailbox */
		return 0;
	}
	if ((r = ids_mbtype_check(s)) < 0)
		r = bad(c, "%s", ids_errmsg(r));
	else
		strcpy(mbtype, s);
	free(s);
	return r;
}

static int
get_numbers(struct ectx *c, json_t *obj, int64_t *mtime, uint32_t *uidvalidity,
    uint64_t *cms, uint64_t *fms)
{
	uint64_t t, u;

	if (get_number(c, obj, "mtime", INT64_MAX, &t) < 0 ||
	    get_number(c, obj, "uidvalidity", UINT32_MAX, &u) < 0 ||
	    get_number(c, obj, "createdmodseq", UINT64_MAX, cms) < 0 ||
	    get_number(c, obj, "foldermodseq", UINT64_MAX, fms) < 0)
		return -1;
	*mtime = (int64_t)t;
	*uidvalidity = (uint32_t)u;
	return 0;
}

/* The ACL object {"id": "rights", ...}, kept in the dump's order. */
static int
get_acl(struct ectx *c, json_t *obj, struct ids_mbentry *e)
{
	json_t *acl = json_object_get(obj, "acl"), *v;
	const char *id;
	size_t cap = 0;
	int r;

	if (acl == NULL || json_is_null(acl))
		return 0;
	if (!json_is_object(acl))
		return bad(c, "member 'acl' must be an object");
	/* A JSON object's keys are distinct: append, without a search per entry. */
	json_object_foreach(acl, id, v) {
		if (!json_is_string(v))
			return bad(c, "acl: the rights of '%s' must be a string", id);
		if ((r = ids_acl_append(&e->acl, &e->nacl, &cap, strdup(id),
		    strdup(json_string_value(v)))) < 0)
			return bad(c, "acl: '%s': %s", id, ids_errmsg(r));
	}
	if ((r = ids_acl_dedup(e->acl, &e->nacl)) < 0)
		return bad(c, "acl: %s", ids_errmsg(r));
	return 0;
}

/* Checks an internal name; its dbname (when wanted) is malloc'd. */
static int
check_name(struct ectx *c, const char *name, char **dbnamep)
{
	struct ids_mbname mb;
	char db[NAMEBUF];
	int r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0)
		return bad(c, "invalid mailbox name '%s': %s", name, ids_errmsg(r));
	if (dbnamep == NULL)
		return 0;
	if ((r = ids_mbname_dbname(&mb, db, sizeof(db))) < 0)
		return bad(c, "mailbox name '%s': %s", name, ids_errmsg(r));
	if ((*dbnamep = strdup(db)) == NULL)
		return bad(c, "%s", strerror(ENOMEM));
	return 0;
}

static int
get_history_item(struct ectx *c, json_t *item, struct ids_history *h)
{
	if (!json_is_object(item))
		return bad(c, "must be an object");
	if (get_string(c, item, "name", &h->name) < 0 ||
	    get_numbers(c, item, &h->mtime, &h->uidvalidity, &h->createdmodseq,
	    &h->foldermodseq) < 0 ||
	    get_mbtype(c, item, h->mbtype) < 0 ||
	    get_string(c, item, "partition", &h->partition) < 0)
		return -1;
	if (h->name == NULL)
		return bad(c, "member 'name' is missing");
	return check_name(c, h->name, NULL);
}

/*
 * name_history, newest first.  Tombstones keep no history (only the
 * live mailbox's by-uniqueid record does), so theirs is not read.
 */
static int
get_history(struct ectx *c, json_t *obj, struct ids_mbentry *e)
{
	json_t *arr = json_object_get(obj, "name_history"), *item;
	size_t i;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return bad(c, "member 'name_history' must be an array");
	if (ids_mbentry_is_tombstone(e) || json_array_size(arr) == 0)
		return 0;
	if ((e->history = calloc(json_array_size(arr), sizeof(*e->history))) == NULL)
		return bad(c, "%s", strerror(ENOMEM));
	json_array_foreach(arr, i, item) {
		e->nhistory = i + 1;
		snprintf(c->where, sizeof(c->where), "name_history[%zu]", i);
		if (get_history_item(c, item, &e->history[i]) < 0)
			return -1;
	}
	c->where[0] = '\0';
	return 0;
}

static const char *const known_members[] = {
	"name", "mtime", "uidvalidity", "createdmodseq", "foldermodseq",
	"mbtype", "partition", "server", "acl", "uniqueid",
	"legacy_specialuse", "name_history", NULL,
};

/* A warning about the entry being read: "what ['member'] text". */
static void
warn_entry(const struct ectx *c, const char *what, const char *member,
    const char *text)
{
	char name[SHOWBUF], shown[SHOWBUF];

	tool_printable(c->name, name, sizeof(name));
	if (member)
		warnx("stdin:%u: %s: %s '%s' %s", c->line, name, what,
		    tool_printable(member, shown, sizeof(shown)), text);
	else
		warnx("stdin:%u: %s: %s %s", c->line, name, what, text);
}

/* Members we do not keep are reported, but do not fail the import. */
static void
warn_members(struct ectx *c, json_t *obj)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(obj, key, v) {
		for (i = 0; known_members[i] && strcmp(known_members[i], key); i++)
			continue;
		if (known_members[i] == NULL)
			warn_entry(c, "unknown member", key, "ignored");
		else if (!strcmp(key, "legacy_specialuse") && !json_is_null(v))
			warn_entry(c, "legacy_specialuse", NULL, "is not kept "
			    "(set the special-use annotation instead)");
	}
}

/* The members that say where the mailbox is and what it is called. */
static int
check_entry(struct ectx *c, const struct import *imp, json_t *obj,
    struct ids_mbentry *e)
{
	json_t *v = json_object_get(obj, "name");
	int r;

	if (v && !json_is_null(v) &&
	    (!json_is_string(v) || strcmp(json_string_value(v), e->name) != 0))
		return bad(c, "member 'name' differs from the entry's name");
	if (e->uniqueid == NULL)
		return bad(c, "member 'uniqueid' is missing");
	if ((r = ids_uniqueid_check(e->uniqueid)) < 0)
		return bad(c, "%s", ids_errmsg(r));
	/* Tombstones and intermediates (Cyrus's -y) stand for no folder. */
	if (ids_mbentry_is_tombstone(e) ||
	    ids_mbtype_has(e->mbtype, IDS_MBFLAG_INTERMEDIATE))
		return 0;
	if (e->partition == NULL)
		return bad(c, "member 'partition' is missing");
	if (e->server == NULL && !ids_mbtype_has(e->mbtype, IDS_MBFLAG_REMOTE) &&
	    ids_config_partition(imp->cfg, e->partition) == NULL)
		return bad(c, "unknown partition '%s' (not in %s)", e->partition,
		    imp->cfg->file);
	/* What a cyrus.header cannot hold would never be migrated or read back. */
	if ((r = ids_header_check_entry(e, NULL)) < 0) {
		const char *why = ids_errmsg(r);
		size_t n = strlen(e->name);

		if (strncmp(why, e->name, n) == 0 && strncmp(why + n, ": ", 2) == 0)
			why += n + 2;
		return bad_printable(c, why);
	}
	return 0;
}

/* Fills ent from the dump entry obj named name. */
static int
read_entry(struct ectx *c, const struct import *imp, const char *name,
    json_t *obj, struct entry *ent)
{
	struct ids_mbentry *e = &ent->e;

	if (check_name(c, name, &ent->dbname) < 0)
		return -1;
	if (!json_is_object(obj))
		return bad(c, "the entry must be an object");
	warn_members(c, obj);
	if ((e->name = strdup(name)) == NULL)
		return bad(c, "%s", strerror(ENOMEM));
	if (get_numbers(c, obj, &e->mtime, &e->uidvalidity, &e->createdmodseq,
	    &e->foldermodseq) < 0 ||
	    get_mbtype(c, obj, e->mbtype) < 0 ||
	    get_string(c, obj, "partition", &e->partition) < 0 ||
	    get_string(c, obj, "server", &e->server) < 0 ||
	    get_acl(c, obj, e) < 0 ||
	    get_string(c, obj, "uniqueid", &e->uniqueid) < 0 ||
	    get_history(c, obj, e) < 0)
		return -1;
	return check_entry(c, imp, obj, e);
}

static void
entry_release(struct entry *ent)
{
	ids_mbentry_release(&ent->e);
	free(ent->dbname);
	ent->dbname = NULL;
}

/* Adds the entry name: obj found on line to imp, or counts it bad. */
static void
add_entry(struct import *imp, unsigned line, const char *name, json_t *obj)
{
	struct ectx c = { line, name, "" };
	struct entry *ent;

	if (imp->n == imp->alloc) {
		size_t alloc = imp->alloc ? 2 * imp->alloc : 64;
		struct entry *v = realloc(imp->v, alloc * sizeof(*v));

		if (v == NULL) {
			bad(&c, "%s", strerror(ENOMEM));
			imp->bad++;
			return;
		}
		imp->v = v;
		imp->alloc = alloc;
	}
	ent = &imp->v[imp->n];
	memset(ent, 0, sizeof(*ent));
	ids_mbentry_init(&ent->e);
	ent->line = line;
	if (read_entry(&c, imp, name, obj, ent) == 0)
		imp->n++;
	else {
		entry_release(ent);
		imp->bad++;
	}
}

/* ---- undump: walking the dump's outer object ------------------------ */

struct scan {
	const char *p, *end;
	unsigned line;
};

static void
scan_space(struct scan *s)
{
	for (; s->p < s->end; s->p++) {
		if (*s->p == '\n')
			s->line++;
		else if (*s->p != ' ' && *s->p != '\t' && *s->p != '\r')
			break;
	}
}

/* Skips white space, then c if it is next; returns whether it was. */
static int
scan_char(struct scan *s, char c)
{
	scan_space(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return 1;
	}
	return 0;
}

static int
syntax_error(struct scan *s, unsigned line, const char *what)
{
	char shown[SHOWBUF];

	warnx("stdin:%u: %s", line ? line : s->line,
	    tool_printable(what, shown, sizeof(shown)));
	return -1;
}

/* Decodes the JSON value at the cursor with jansson and moves past it. */
static json_t *
scan_value(struct scan *s, size_t flags)
{
	json_error_t jerr;
	json_t *v;
	const char *q;

	scan_space(s);
	v = json_loadb(s->p, (size_t)(s->end - s->p),
	    flags | JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL) {
		syntax_error(s, jerr.line > 0 ? s->line + (unsigned)jerr.line - 1 : 0,
		    jerr.text);
		return NULL;
	}
	for (q = s->p; q < s->p + jerr.position; q++)
		if (*q == '\n')
			s->line++;
	s->p += jerr.position;
	return v;
}

/* One member "name": {...} of the outer object. */
static int
scan_member(struct scan *s, struct import *imp)
{
	json_t *key, *obj;
	unsigned line;

	scan_space(s);
	line = s->line;
	if ((key = scan_value(s, JSON_DECODE_ANY)) == NULL)
		return -1;
	if (!json_is_string(key)) {
		json_decref(key);
		return syntax_error(s, line, "expected a mailbox name in double quotes");
	}
	if (!scan_char(s, ':')) {
		json_decref(key);
		return syntax_error(s, 0, "expected ':' after the mailbox name");
	}
	if ((obj = scan_value(s, JSON_DECODE_ANY)) == NULL) {
		json_decref(key);
		return -1;
	}
	add_entry(imp, line, json_string_value(key), obj);
	json_decref(key);
	json_decref(obj);
	return 0;
}

/*
 * The outer object, member by member.  A syntax error ends the walk
 * (nothing after it can be trusted); a bad entry does not.
 */
static int
scan_dump(struct scan *s, struct import *imp)
{
	if (!scan_char(s, '{'))
		return syntax_error(s, 0, s->p < s->end ?
		    "not a JSON dump: expected '{' (the pre-3.6 line format is "
		    "not supported: it carries no uniqueids)" :
		    "empty input: expected a JSON dump");
	if (!scan_char(s, '}')) {
		do {
			if (scan_member(s, imp) < 0)
				return -1;
		} while (scan_char(s, ','));
		if (!scan_char(s, '}'))
			return syntax_error(s, 0, "expected ',' or '}' after an entry");
	}
	scan_space(s);
	if (s->p != s->end)
		return syntax_error(s, 0, "unexpected data after the dump");
	return 0;
}

/* ---- undump: checks across entries, and the write ------------------- */

static int
cmp_dbname(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->dbname, y->dbname);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int
cmp_live_id(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a;
	const struct entry *y = *(const struct entry *const *)b;
	int c = strcmp(x->e.uniqueid, y->e.uniqueid);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Each name once (sorts the entries by dbname, the database's order). */
static void
check_duplicate_names(struct import *imp)
{
	size_t i;

	if (imp->n > 1)
		qsort(imp->v, imp->n, sizeof(*imp->v), cmp_dbname);
	for (i = 1; i < imp->n; i++) {
		if (strcmp(imp->v[i - 1].dbname, imp->v[i].dbname) != 0)
			continue;
		warnx("stdin:%u: %s: duplicate mailbox (also on line %u)",
		    imp->v[i].line, imp->v[i].e.name, imp->v[i - 1].line);
		imp->bad++;
	}
}

/* A live uniqueid belongs to one live name (tombstones may share it). */
static void
check_duplicate_ids(struct import *imp)
{
	struct entry **live;
	size_t i, n = 0;

	if ((live = calloc(imp->n + 1, sizeof(*live))) == NULL) {
		warnx("stdin: %s", strerror(ENOMEM));
		imp->bad++;
		return;
	}
	for (i = 0; i < imp->n; i++)
		if (!ids_mbentry_is_tombstone(&imp->v[i].e))
			live[n++] = &imp->v[i];
	if (n > 1)
		qsort(live, n, sizeof(*live), cmp_live_id);
	for (i = 1; i < n; i++) {
		if (strcmp(live[i - 1]->e.uniqueid, live[i]->e.uniqueid) != 0)
			continue;
		warnx("stdin:%u: %s: uniqueid %s is already held by live mailbox "
		    "%s (line %u)", live[i]->line, live[i]->e.name,
		    live[i]->e.uniqueid, live[i - 1]->e.name, live[i - 1]->line);
		imp->bad++;
	}
	free(live);
}

/*
 * Writes every entry, tombstones first: a dump taken after a rename
 * holds the old name as a tombstone, which must stop being live before
 * the new name can take the uniqueid.
 */
static int
import_txn(struct ids_txn *txn, void *rock)
{
	struct import *imp = rock;
	size_t i;
	int pass, r;

	/* A run again after the map grew: an earlier run's failure is not this one's. */
	imp->failed = NULL;
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < imp->n; i++) {
			if (ids_mbentry_is_tombstone(&imp->v[i].e) != (pass == 0))
				continue;
			if ((r = ids_txn_put(txn, &imp->v[i].e)) < 0) {
				imp->failed = &imp->v[i];
				free(imp->why);
				imp->why = strdup(ids_errmsg(r));
				return r;
			}
		}
	}
	return 0;
}

static int
write_entries(const struct ids_config *cfg, struct import *imp)
{
	struct ids_mboxlist *mbl;
	int r;

	if ((r = open_db(cfg, IDS_MBOXLIST_CREATE, &mbl)) != IDS_EXIT_OK)
		return r;
	r = ids_mboxlist_write(mbl, import_txn, imp);
	if (r < 0 && imp->failed) {
		warnx("stdin:%u: %s: %s", imp->failed->line, imp->failed->e.name,
		    imp->why ? imp->why : ids_strerror(r));
	} else if (r < 0) {
		warnx("%s: %s", ids_mboxlist_path(mbl), tool_reason(ids_mboxlist_path(mbl), r));
	}
	ids_mboxlist_close(mbl);
	if (r < 0)
		return imp->failed ? IDS_EXIT_FAIL : exit_status(r);
	return IDS_EXIT_OK;
}

static int
read_input(FILE *f, struct ids_buf *b)
{
	char chunk[16384];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (ids_buf_add(b, chunk, n) < 0)
			return -ENOMEM;
	return ferror(f) ? ids_errno() : 0;
}

static void
import_release(struct import *imp)
{
	size_t i;

	for (i = 0; i < imp->n; i++)
		entry_release(&imp->v[i]);
	free(imp->v);
	free(imp->why);
}

static int
do_undump(const struct ids_config *cfg)
{
	struct ids_buf in = IDS_BUF_INIT;
	struct import imp = { cfg, NULL, 0, 0, 0, NULL, NULL };
	struct scan s;
	int r, status = IDS_EXIT_FAIL;

	if ((r = read_input(stdin, &in)) < 0) {
		warnx("stdin: %s", ids_strerror(r));
		goto out;
	}
	s.p = in.s;
	s.end = in.s + in.len;
	s.line = 1;
	if (scan_dump(&s, &imp) < 0)
		goto out;
	check_duplicate_names(&imp);
	check_duplicate_ids(&imp);
	if (imp.bad == 0)
		status = write_entries(cfg, &imp);
	else
		warnx("stdin: %u problem%s found; nothing imported", imp.bad,
		    imp.bad == 1 ? "" : "s");
out:
	import_release(&imp);
	ids_buf_release(&in);
	return status;
}

/* ---- list ----------------------------------------------------------- */

struct list {
	const struct ids_config *cfg;
	int internal, json;
	const char *sep;
	size_t count;
};

/*
 * The internal name of a name argument (external, or internal with -i);
 * IDS_MBNAME_STRICT in flags applies the rules for new names.  Failures
 * are reported, naming the argument.
 */
static int
name_arg(const struct ids_config *cfg, const char *arg, int internal, int flags,
    char *buf, size_t size)
{
	struct ids_mbname mb;
	int r;

	if ((r = tool_parse_name(&mb, arg, internal, cfg)) < 0)
		return r;
	if ((r = ids_mbname_internal(&mb, buf, size)) < 0 ||
	    ((flags & IDS_MBNAME_STRICT) &&
	    (r = ids_mbname_parse_internal(&mb, buf, IDS_MBNAME_STRICT)) < 0))
		return tool_error(r, arg);
	return 0;
}

static int
list_json(struct list *l, const char *name, const struct ids_mbentry *e,
    const char *layout)
{
	json_t *obj = json_object();
	char *text = NULL;
	int r = obj ? 0 : -ENOMEM;

	if (r == 0)
		r = set_string(obj, "name", name);
	if (r == 0)
		r = set_string(obj, "uniqueid", e->uniqueid);
	if (r == 0)
		r = set_string(obj, "layout", layout);
	if (r == 0)
		r = set_string(obj, "partition", e->partition);
	if (r == 0 && (text = json_dumps(obj, JSON_PRESERVE_ORDER)) == NULL)
		r = -ENOMEM;
	if (r == 0) {
		printf("%s%s", l->sep, text);
		l->sep = ",\n";
	}
	free(text);
	json_decref(obj);
	return r;
}

static int
list_entry(const struct ids_mbentry *e, void *rock)
{
	struct list *l = rock;
	const char *layout = ids_mbentry_is_legacy(e) ? "legacy" : "uniqueid";
	struct ids_mbname mb;
	char name[NAMEBUF];
	int r;

	if (ids_mbentry_is_tombstone(e))
		return 0;
	l->count++;
	if ((r = ids_mbname_parse_internal(&mb, e->name, 0)) < 0) {
		tool_error(r, e->name);
		return 0;
	}
	if (tool_format_name(&mb, l->internal, l->cfg, name, sizeof(name)) < 0)
		return 0;
	if (l->json)
		r = list_json(l, name, e, layout);
	else
		r = printf("%s\t%s\t%s\t%s\n", name, e->uniqueid ? e->uniqueid : "-",
		    layout, e->partition ? e->partition : "-") < 0 ? ids_errno() : 0;
	if (r < 0)
		tool_error(r, e->name);
	return 0;
}

struct list_args {
	struct list *l;
	char **names;
	int nnames;
};

static int
list_txn(struct ids_txn *txn, void *rock)
{
	struct list_args *a = rock;
	char name[NAMEBUF];
	size_t before;
	int i, r;

	if (a->nnames == 0)
		return ids_txn_foreach(txn, NULL, list_entry, a->l);
	for (i = 0; i < a->nnames; i++) {
		if (name_arg(a->l->cfg, a->names[i], a->l->internal, 0, name,
		    sizeof(name)) < 0)
			continue;
		before = a->l->count;
		r = ids_txn_foreach(txn, name, list_entry, a->l);
		if (r == IDS_ETOOLONG || r == IDS_EBADNAME) {
			tool_error(r, a->names[i]);
			continue;
		}
		if (r < 0)
			return r;
		if (a->l->count == before)
			tool_error(ids_error(IDS_ENOTFOUND, "no such mailbox"), a->names[i]);
	}
	return 0;
}

static int
do_list(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	struct list l = { cfg, o->internal, o->json, "", 0 };
	struct list_args a = { &l, o->names, o->nnames };
	int r;

	if ((r = open_db(cfg, IDS_MBOXLIST_RDONLY, &mbl)) != IDS_EXIT_OK)
		return r;
	if (o->json)
		fputs("[\n", stdout);
	r = ids_mboxlist_read(mbl, list_txn, &a);
	if (o->json)
		fputs("\n]\n", stdout);
	if (r < 0)
		warnx("%s: %s", ids_mboxlist_path(mbl), tool_reason(ids_mboxlist_path(mbl), r));
	ids_mboxlist_close(mbl);
	if (flush_stdout() != IDS_EXIT_OK)
		return IDS_EXIT_FAIL;
	return r < 0 ? exit_status(r) : tool_status();
}

/* ---- create and delete --------------------------------------------- */

/* Whether delete_mode says delayed (Cyrus's default) or immediate. */
static int
delayed_delete(const struct ids_config *cfg)
{
	const char *mode = ids_config_get(cfg, "delete_mode");

	if (mode == NULL || strcmp(mode, "delayed") == 0)
		return 1;
	if (strcmp(mode, "immediate") == 0)
		return 0;
	warnx("%s: delete_mode: '%s' is not delayed or immediate", cfg->file, mode);
	exit(IDS_EXIT_ENV);
}

/*
 * Deletes name as Cyrus's delayed delete does: renames it (files and
 * all, its children left alone) to DELETED.<name>.<hextime>.  A name
 * that is DELETED already is removed for good, as Cyrus removes it.
 */
static int
delete_folder(struct ids_mboxlist *mbl, const char *name, int delayed)
{
	struct ids_rename_opts ro;
	struct ids_mailbox *box;
	struct ids_mbname mb;
	char hex[16], to[NAMEBUF];
	int r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0)
		return r;
	if (!delayed || mb.deleted != NULL)
		return ids_mailbox_delete(mbl, name);
	/* A folder that cannot be opened safely (a symlink) stays as it is. */
	if ((r = ids_mailbox_open(mbl, name, 0, 30000, &box)) < 0)
		return r;
	ids_mailbox_close(box);
	snprintf(hex, sizeof(hex), "%X", (unsigned)time(NULL));
	mb.deleted = hex;
	if ((r = ids_mbname_internal(&mb, to, sizeof(to))) < 0)
		return r;
	memset(&ro, 0, sizeof(ro));
	ro.flags = IDS_RENAME_ONE;
	ro.lock_timeout_ms = 30000;
	return ids_rename(mbl, name, to, &ro);
}

/* Creates (in the uniqueid layout) or deletes each named folder. */
static int
do_lifecycle(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	char name[NAMEBUF], shown[SHOWBUF];
	int i, r, create = o->mode == MODE_CREATE, delayed = create ? 0 : delayed_delete(cfg);

	r = open_db(cfg, create ? IDS_MBOXLIST_CREATE : 0, &mbl);
	if (r != IDS_EXIT_OK)
		return r;
	for (i = 0; i < o->nnames; i++) {
		if (name_arg(cfg, o->names[i], o->internal,
		    create ? IDS_MBNAME_STRICT : 0, name, sizeof(name)) < 0)
			continue;
		if (create)
			r = ids_mailbox_create(mbl, name, NULL, NULL);
		else
			r = delete_folder(mbl, name, delayed);
		if (r < 0)
			tool_error(r, tool_printable(o->names[i], shown, sizeof(shown)));
	}
	ids_mboxlist_close(mbl);
	return tool_status();
}

/* --expire: the DELETED folders whose hex time is older than the age. */
struct expire {
	unsigned long long before;
	char **v;
	size_t n, cap;
};

static int
expire_add(const struct ids_mbentry *e, void *rock)
{
	struct expire *x = rock;
	struct ids_mbname mb;
	unsigned long long t;
	char *end, **v;

	if (ids_mbentry_is_tombstone(e) || ids_mbname_parse_internal(&mb, e->name, 0) < 0 ||
	    mb.deleted == NULL)
		return 0;
	t = strtoull(mb.deleted, &end, 16);
	if (*end != '\0' || t > x->before)
		return 0;
	if (x->n == x->cap) {
		if ((v = realloc(x->v, (x->cap ? 2 * x->cap : 16) * sizeof(*v))) == NULL)
			return -ENOMEM;
		x->v = v;
		x->cap = x->cap ? 2 * x->cap : 16;
	}
	if ((x->v[x->n] = strdup(e->name)) == NULL)
		return -ENOMEM;
	x->n++;
	return 0;
}

static int
expire_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, NULL, expire_add, rock);
}

static int
do_expire(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	struct expire x = { 0, NULL, 0, 0 };
	unsigned long long now = (unsigned long long)time(NULL);
	char shown[SHOWBUF];
	size_t i;
	int r;

	x.before = o->expire > now ? 0 : now - o->expire;
	if ((r = open_db(cfg, 0, &mbl)) != IDS_EXIT_OK)
		return r;
	if ((r = ids_mboxlist_read(mbl, expire_txn, &x)) < 0)
		tool_error(r, ids_mboxlist_path(mbl));
	for (i = 0; r == 0 && i < x.n; i++)
		if (ids_mailbox_delete(mbl, x.v[i]) < 0)
			tool_error(IDS_EDB, tool_printable(x.v[i], shown, sizeof(shown)));
	for (i = 0; i < x.n; i++)
		free(x.v[i]);
	free(x.v);
	ids_mboxlist_close(mbl);
	return r < 0 ? exit_status(r) : tool_status();
}

/* ---- main ----------------------------------------------------------- */

static void
set_mode(struct options *o, enum mode m)
{
	if (o->mode != MODE_NONE && o->mode != m)
		tool_usage(synopsis);
	o->mode = m;
}

static void __attribute__((noreturn))
refuse_cyrus(const char *opt, const char *meaning, const char *instead)
{
	warnx("%s (in Cyrus: %s) is not supported; use %s (ctl_mboxlist(8))", opt, meaning,
	    instead);
	exit(IDS_EXIT_USAGE);
}

static void __attribute__((noreturn))
bad_option(int c, const char *arg)
{
	if (c == ':')
		warnx("option requires an argument: %s", arg);
	else if (optopt && strncmp(arg, "--", 2) != 0)
		warnx("invalid option: -%c", optopt);
	else
		warnx("invalid option: %s", arg);
	tool_usage(synopsis);
}

/* Which operands and options each mode takes. */
static void
check_options(const struct options *o)
{
	if (o->purge) {
		warnx("-x with -d (in Cyrus: remove the dumped entries from mailboxes.db, "
		    "leaving their files) is not supported; ctl_mboxlist -x NAME deletes "
		    "folders (ctl_mboxlist(8))");
		exit(IDS_EXIT_USAGE);
	}
	if (o->partition && o->mode != MODE_DUMP)
		tool_usage(synopsis);
	switch (o->mode) {
	case MODE_DUMP:
	case MODE_UNDUMP:
	case MODE_EXPIRE:
		if (o->nnames || o->internal || o->json)
			tool_usage(synopsis);
		break;
	case MODE_CREATE:
	case MODE_DELETE:
		if (o->nnames == 0 || o->json)
			tool_usage(synopsis);
		break;
	case MODE_LIST:
		break;
	case MODE_NONE:
		tool_usage(synopsis);
	}
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "expire", required_argument, NULL, 'E' },
		{ NULL, 0, NULL, 0 },
	};
	int c, x = 0;

	opterr = 0;	/* getopt would name the program by its whole path */
	while ((c = getopt_long(argc, argv, ":C:cdiluxyp:f:Lmawv", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': o->conf = optarg; break;
		case 'd': set_mode(o, MODE_DUMP); break;
		case 'u': set_mode(o, MODE_UNDUMP); break;
		case 'l': set_mode(o, MODE_LIST); break;
		case 'c': set_mode(o, MODE_CREATE); break;
		case 'x': x = 1; break;
		case 'y': break;	/* Cyrus's -d -y: no entry is hidden here */
		case 'p': o->partition = optarg; break;
		case 'i': o->internal = 1; break;
		case 'j': o->json = 1; break;
		case 'E':
			set_mode(o, MODE_EXPIRE);
			if (tool_uint("--expire", optarg, 0, 100ull * 365 * 86400, &o->expire) < 0)
				tool_usage(synopsis);
			break;
		case 'f':
			refuse_cyrus("-f", "use another database file",
			    "-C with a configuration of its own");
		case 'L':
			refuse_cyrus("-L", "undump a dump of Cyrus 2.x",
			    "a JSON dump of Cyrus 3 (ctl_mboxlist -d)");
		case 'm':
		case 'a':
		case 'w':
			refuse_cyrus(c == 'm' ? "-m" : c == 'a' ? "-a" : "-w",
			    "synchronise with the MUPDATE server of a Murder",
			    "nothing: idspool serves no Murder");
		case 'v':
			refuse_cyrus("-v", "verify mailboxes.db against the partitions",
			    "spool_audit, or reconstruct -m -n");
		case 'h': tool_help_options(synopsis, help);
		case 'V': tool_version();
		default: bad_option(c, argv[optind - 1]);
		}
	}
	/* -x deletes folders; with -d it would be Cyrus's purge. */
	if (x && o->mode == MODE_DUMP)
		o->purge = 1;
	else if (x)
		set_mode(o, MODE_DELETE);
	o->names = argv + optind;
	o->nnames = argc - optind;
	check_options(o);
}

int
main(int argc, char **argv)
{
	struct options o = { NULL, MODE_NONE, NULL, 0, 0, 0, 0, NULL, 0 };
	struct ids_config cfg;
	int status = IDS_EXIT_FAIL;

	tool_init(argv);
	parse_options(argc, argv, &o);
	tool_load_config(&cfg, o.conf);
	switch (o.mode) {
	case MODE_DUMP: status = do_dump(&cfg, &o); break;
	case MODE_UNDUMP: status = do_undump(&cfg); break;
	case MODE_LIST: status = do_list(&cfg, &o); break;
	case MODE_CREATE:
	case MODE_DELETE: status = do_lifecycle(&cfg, &o); break;
	case MODE_EXPIRE: status = do_expire(&cfg, &o); break;
	case MODE_NONE: break;
	}
	ids_config_release(&cfg);
	return status;
}
