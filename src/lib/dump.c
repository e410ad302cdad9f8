/*
 * dump.c - the Cyrus 3.6 JSON dump of mailboxes.db (dump.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dump.h"
#include "error.h"
#include "header.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"

#define NAMEBUF (2 * IDS_MBNAME_MAX + 64)
#define SHOWBUF 1024	/* input shown in a message, made printable */

/* ---- dump: entries as Cyrus 3.6 prints them ------------------------- */

/*
 * Adds key: s to obj.  A NULL s is left out, as Cyrus does; a string
 * jansson refuses (not UTF-8) is an error rather than a silent gap.
 */
int
ids_json_set_string(json_t *obj, const char *key, const char *s)
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
	return ids_json_set_string(obj, key, buf);
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
			r = ids_json_set_string(obj, acl[i].id, acl[i].rights);
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
		r = ids_json_set_string(obj, "name", h->name);
	if (r == 0)
		r = set_numbers(obj, h->mtime, h->uidvalidity, h->createdmodseq,
		    h->foldermodseq);
	if (r == 0)
		r = ids_json_set_string(obj, "mbtype", mbtype_string(h->mbtype));
	if (r == 0)
		r = ids_json_set_string(obj, "partition", h->partition);
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
	int r = ids_json_set_string(obj, "name", e->name);

	if (r == 0)
		r = set_numbers(obj, e->mtime, e->uidvalidity, e->createdmodseq,
		    e->foldermodseq);
	if (r == 0)
		r = ids_json_set_string(obj, "mbtype", mbtype_string(e->mbtype));
	if (r == 0)
		r = ids_json_set_string(obj, "partition", e->partition);
	if (r == 0)
		r = ids_json_set_string(obj, "server", e->server);
	if (r == 0) {
		r = acl_json(e->acl, e->nacl, &v);
		r = set_value(obj, "acl", v, r);
	}
	if (r == 0)
		r = ids_json_set_string(obj, "uniqueid", e->uniqueid);
	/* legacy_specialuse: Cyrus's is NULL after its upgrade; we keep none. */
	if (r == 0) {
		r = history_json(live->history, live->nhistory, &v);
		r = set_value(obj, "name_history", v, r);
	}
	return r;
}

int
ids_dump_history(struct ids_txn *txn, const struct ids_mbentry *e,
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

int
ids_dump_format(const struct ids_mbentry *e, const struct ids_mbentry *live, char **textp)
{
	json_t *top = json_object(), *obj = json_object();
	int r = top && obj ? 0 : -ENOMEM;

	*textp = NULL;
	if (r == 0)
		r = entry_json(e, live, obj);
	if (r == 0)
		r = set_value(top, e->name, obj, 0);
	else
		json_decref(obj);
	if (r == 0 && (*textp = json_dumps(top, JSON_EMBED | JSON_PRESERVE_ORDER)) == NULL)
		r = -ENOMEM;
	json_decref(top);
	return r;
}

/* ---- reading a dump: reading entries ---------------------------------------- */

/* Reports a problem at line (0: of the whole input) to the caller. */
static void __attribute__((format(printf, 3, 4)))
report(const struct ids_dump *d, unsigned line, const char *fmt, ...)
{
	struct ids_buf msg = IDS_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	ids_buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (d->report != NULL)
		d->report(line, msg.s, d->rock);
	ids_buf_release(&msg);
}

/* What is being read, for messages: "LINE: NAME: [WHERE: ]..." */
struct ectx {
	unsigned line;
	const char *name;
	char where[48];
	const struct ids_dump *d;
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
	report(c->d, c->line, "%s", ids_printable(msg.s, shown, sizeof(shown)));
	ids_buf_release(&msg);
	return -1;
}

/* As bad(), for a reason the library already made printable (\xNN). */
static int
bad_printable(struct ectx *c, const char *why)
{
	char shown[SHOWBUF];

	report(c->d, c->line, "%s: %s", ids_printable(c->name, shown, sizeof(shown)), why);
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

	ids_printable(c->name, name, sizeof(name));
	if (member)
		report(c->d, c->line, "%s: %s '%s' %s", name, what,
		    ids_printable(member, shown, sizeof(shown)), text);
	else
		report(c->d, c->line, "%s: %s %s", name, what, text);
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
check_entry(struct ectx *c, const struct ids_dump *imp, json_t *obj,
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
read_entry(struct ectx *c, const struct ids_dump *imp, const char *name,
    json_t *obj, struct ids_dump_entry *ent)
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
entry_release(struct ids_dump_entry *ent)
{
	ids_mbentry_release(&ent->e);
	free(ent->dbname);
	ent->dbname = NULL;
}

/* Adds the entry name: obj found on line to imp, or counts it bad. */
static void
add_entry(struct ids_dump *imp, unsigned line, const char *name, json_t *obj)
{
	struct ectx c = { line, name, "", imp };
	struct ids_dump_entry *ent;

	if (IDS_ALLOC_GROW(imp->v, imp->n + 1, imp->alloc) < 0) {
		bad(&c, "%s", strerror(ENOMEM));
		imp->bad++;
		return;
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

/* ---- reading a dump: walking the dump's outer object ------------------------ */

struct scan {
	const char *p, *end;
	unsigned line;
	const struct ids_dump *d;
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

	report(s->d, line ? line : s->line, "%s", ids_printable(what, shown, sizeof(shown)));
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
scan_member(struct scan *s, struct ids_dump *imp)
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
scan_dump(struct scan *s, struct ids_dump *imp)
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

/* ---- reading a dump: checks across entries, and the write ------------------- */

static int
cmp_dbname(const void *a, const void *b)
{
	const struct ids_dump_entry *x = a, *y = b;
	int c = strcmp(x->dbname, y->dbname);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int
cmp_live_id(const void *a, const void *b)
{
	const struct ids_dump_entry *x = *(const struct ids_dump_entry *const *)a;
	const struct ids_dump_entry *y = *(const struct ids_dump_entry *const *)b;
	int c = strcmp(x->e.uniqueid, y->e.uniqueid);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Each name once (sorts the entries by dbname, the database's order). */
static void
check_duplicate_names(struct ids_dump *imp)
{
	size_t i;

	if (imp->n > 1)
		qsort(imp->v, imp->n, sizeof(*imp->v), cmp_dbname);
	for (i = 1; i < imp->n; i++) {
		if (strcmp(imp->v[i - 1].dbname, imp->v[i].dbname) != 0)
			continue;
		report(imp, imp->v[i].line, "%s: duplicate mailbox (also on line %u)",
		    imp->v[i].e.name, imp->v[i - 1].line);
		imp->bad++;
	}
}

/* A live uniqueid belongs to one live name (tombstones may share it). */
static void
check_duplicate_ids(struct ids_dump *imp)
{
	struct ids_dump_entry **live;
	size_t i, n = 0;

	if ((live = calloc(imp->n + 1, sizeof(*live))) == NULL) {
		report(imp, 0, "%s", strerror(ENOMEM));
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
		report(imp, live[i]->line, "%s: uniqueid %s is already held by live "
		    "mailbox %s (line %u)", live[i]->e.name,
		    live[i]->e.uniqueid, live[i - 1]->e.name, live[i - 1]->line);
		imp->bad++;
	}
	free(live);
}

int
ids_dump_write_txn(struct ids_txn *txn, void *rock)
{
	struct ids_dump *imp = rock;
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

int
ids_dump_read(struct ids_dump *d, const char *buf, size_t len)
{
	struct scan s = { buf, buf + len, 1, d };

	if (scan_dump(&s, d) < 0)
		return IDS_EFORMAT;
	check_duplicate_names(d);
	check_duplicate_ids(d);
	return 0;
}

void
ids_dump_release(struct ids_dump *imp)
{
	size_t i;

	for (i = 0; i < imp->n; i++)
		entry_release(&imp->v[i]);
	free(imp->v);
	free(imp->why);
	memset(imp, 0, sizeof(*imp));
}
