/*
 * syncstore.c - a folder's idspool.sync: what a csync client told us
 * about a folder that neither cyrus.index, cyrus.header nor
 * mailboxes.db can hold, kept so that it is reported back unchanged
 * (spool-layout.md "Replication").
 *
 * The file is one csync-spelled dlist and a newline:
 *	%(V 1 EXTRA %(key value ...) ANNOTATIONS (%(ENTRY ...) ...)
 *	  RECORDS (%(UID n ANNOTATIONS (%(ENTRY ...) ...)) ...))
 * replaced whole with ids_write_durable(), so a crash leaves the old
 * or the new file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "sync/sync.h"

#define STORE_VERSION	1
#define STORE_MAX	(256u << 20)

void
ids_sync_store_init(struct ids_sync_store *st)
{
	memset(st, 0, sizeof(*st));
}

void
ids_sync_store_release(struct ids_sync_store *st)
{
	size_t i;

	ids_dlist_free(st->extra);
	ids_dlist_free(st->annots);
	for (i = 0; i < st->nrecords; i++)
		ids_dlist_free(st->records[i].annots);
	free(st->records);
	ids_sync_store_init(st);
}

/* The index of uid in records, or where it would go (*found 0). */
static size_t
find_record(const struct ids_sync_store *st, uint32_t uid, int *found)
{
	size_t lo = 0, hi = st->nrecords;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->records[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < st->nrecords && st->records[lo].uid == uid;
	return lo;
}

struct ids_dlist *
ids_sync_store_record(const struct ids_sync_store *st, uint32_t uid)
{
	int found;
	size_t i = find_record(st, uid, &found);

	return found ? st->records[i].annots : NULL;
}

static int
remove_record(struct ids_sync_store *st, size_t i)
{
	ids_dlist_free(st->records[i].annots);
	memmove(st->records + i, st->records + i + 1,
	    (st->nrecords - i - 1) * sizeof(*st->records));
	st->nrecords--;
	return 0;
}

int
ids_sync_store_set_record(struct ids_sync_store *st, uint32_t uid, struct ids_dlist *annots)
{
	struct ids_sync_recannot *n;
	int found;
	size_t i = find_record(st, uid, &found);

	if (annots && annots->head == NULL) {	/* an empty list is no list */
		ids_dlist_free(annots);
		annots = NULL;
	}
	if (found) {
		if (annots == NULL)
			return remove_record(st, i);
		ids_dlist_free(st->records[i].annots);
		st->records[i].annots = annots;
		return 0;
	}
	if (annots == NULL)
		return 0;
	if ((n = realloc(st->records, (st->nrecords + 1) * sizeof(*n))) == NULL) {
		ids_dlist_free(annots);
		return -ENOMEM;
	}
	st->records = n;
	memmove(n + i + 1, n + i, (st->nrecords - i) * sizeof(*n));
	n[i].uid = uid;
	n[i].annots = annots;
	st->nrecords++;
	return 0;
}

/* An ANNOTATIONS list: %(ENTRY e USERID u MODSEQ m VALUE v) items only. */
static int
check_annots(const struct ids_dlist *l, const char *what)
{
	const struct ids_dlist *a;
	uint64_t m;

	if (l->type != IDS_DL_LIST)
		return ids_error(IDS_ECORRUPT, "%s: ANNOTATIONS is not a list", what);
	for (a = l->head; a; a = a->next)
		if (a->type != IDS_DL_KVLIST || !ids_dlist_cstr(ids_dlist_get(a, "ENTRY")) ||
		    !ids_dlist_cstr(ids_dlist_get(a, "USERID")) ||
		    ids_dlist_get_u64(a, "MODSEQ", &m) < 0 || ids_dlist_get(a, "VALUE") == NULL)
			return ids_error(IDS_ECORRUPT, "%s: a malformed annotation", what);
	return 0;
}

/* The RECORDS list of the file into st. */
static int
read_records(struct ids_sync_store *st, struct ids_dlist *recs)
{
	struct ids_dlist *rec, *annots;
	uint32_t uid, last = 0;
	int r;

	if (recs->type != IDS_DL_LIST)
		return ids_error(IDS_ECORRUPT, "RECORDS is not a list");
	for (rec = recs->head; rec; rec = rec->next) {
		if ((r = ids_dlist_get_u32(rec, "UID", &uid)) < 0)
			return r;
		annots = ids_dlist_get(rec, "ANNOTATIONS");
		if (uid <= last || annots == NULL)
			return ids_error(IDS_ECORRUPT, "record %" PRIu32 " out of order or empty",
			    uid);
		if ((r = check_annots(annots, "record")) < 0)
			return r;
		ids_dlist_unlink(rec, annots);
		if ((r = ids_sync_store_set_record(st, uid, annots)) < 0)
			return r;
		last = uid;
	}
	return 0;
}

/* Takes key of kv out of it (NULL when absent). */
static struct ids_dlist *
take(struct ids_dlist *kv, const char *key)
{
	struct ids_dlist *c = ids_dlist_get(kv, key);

	if (c)
		ids_dlist_unlink(kv, c);
	return c;
}

static int
parse_store(struct ids_sync_store *st, struct ids_dlist *top)
{
	struct ids_dlist *recs;
	uint32_t v;
	int r;

	if (top->type != IDS_DL_KVLIST)
		return ids_error(IDS_ECORRUPT, "not a kvlist");
	if ((r = ids_dlist_get_u32(top, "V", &v)) < 0)
		return r;
	if (v != STORE_VERSION)
		return ids_error(IDS_EFORMAT, "version %" PRIu32 ", not %d", v, STORE_VERSION);
	st->extra = take(top, "EXTRA");
	st->annots = take(top, "ANNOTATIONS");
	if (st->extra && st->extra->type != IDS_DL_KVLIST)
		return ids_error(IDS_ECORRUPT, "EXTRA is not a kvlist");
	if (st->annots && (r = check_annots(st->annots, "folder")) < 0)
		return r;
	recs = ids_dlist_get(top, "RECORDS");
	return recs ? read_records(st, recs) : 0;
}

int
ids_sync_store_read(int dirfd, struct ids_sync_store *st)
{
	struct ids_dlist *top = NULL;
	char *buf;
	size_t len;
	int r;

	ids_sync_store_init(st);
	r = ids_read_file(dirfd, IDS_SYNC_FILE, STORE_MAX, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return ids_error(r, "%s: %s", IDS_SYNC_FILE, ids_errmsg(r));
	if (len == 0 || buf[len - 1] != '\n')
		r = ids_error(IDS_ETRUNC, "%s: no newline at its end", IDS_SYNC_FILE);
	else
		r = ids_dlist_parse_flags(buf, len - 1, IDS_DLIST_WIRE, &top, NULL);
	if (r == 0)
		r = parse_store(st, top);
	if (r < 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", ids_errmsg(r));
		r = ids_error(r, "%s: %s", IDS_SYNC_FILE, msg);
		ids_sync_store_release(st);
	}
	ids_dlist_free(top);
	free(buf);
	return r;
}

/* No file literal may be stored: its bytes are not in the dlist. */
static int
no_files(const struct ids_dlist *dl)
{
	const struct ids_dlist *c;

	if (dl->type == IDS_DL_FILE)
		return ids_error(IDS_EINVAL, "a file literal cannot be stored in %s",
		    IDS_SYNC_FILE);
	for (c = dl->head; c; c = c->next)
		if (no_files(c) < 0)
			return IDS_EINVAL;
	return 0;
}

/* Appends " KEY value" with the csync spelling. */
static int
print_kv(struct ids_buf *b, const char *key, const struct ids_dlist *v)
{
	int r;

	if ((r = no_files(v)) < 0)
		return r;
	ids_buf_printf(b, " %s ", key);
	return ids_dlist_print_wire(v, 0, b, NULL, NULL);
}

static int
format_store(const struct ids_sync_store *st, struct ids_buf *b)
{
	size_t i;
	int r = 0;

	ids_buf_printf(b, "%%(V %d", STORE_VERSION);
	if (st->extra && st->extra->head && (r = print_kv(b, "EXTRA", st->extra)) < 0)
		return r;
	if (st->annots && st->annots->head && (r = print_kv(b, "ANNOTATIONS", st->annots)) < 0)
		return r;
	if (st->nrecords)
		ids_buf_adds(b, " RECORDS (");
	for (i = 0; i < st->nrecords; i++) {
		ids_buf_printf(b, "%s%%(UID %" PRIu32, i ? " " : "", st->records[i].uid);
		if ((r = print_kv(b, "ANNOTATIONS", st->records[i].annots)) < 0)
			return r;
		ids_buf_addch(b, ')');
	}
	if (st->nrecords)
		ids_buf_addch(b, ')');
	ids_buf_adds(b, ")\n");
	return ids_buf_oom(b);
}

static int
store_empty(const struct ids_sync_store *st)
{
	return (st->extra == NULL || st->extra->head == NULL) &&
	    (st->annots == NULL || st->annots->head == NULL) && st->nrecords == 0;
}

int
ids_sync_store_write(int dirfd, const struct ids_sync_store *st)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if ((r = IDS_FAILPOINT("sync.store_write")) < 0)
		return r;
	if (store_empty(st)) {
		if (unlinkat(dirfd, IDS_SYNC_FILE, 0) < 0)
			return errno == ENOENT ? 0 : ids_errno();
		return ids_fsync_dir(dirfd);
	}
	if ((r = format_store(st, &b)) == 0)
		r = ids_write_durable(dirfd, IDS_SYNC_FILE, b.s, b.len, 0600);
	ids_buf_release(&b);
	return r;
}

/*
 * The MAILBOX keys the state rebuilds from index, header and
 * mailboxes.db, or that only steer an APPLY (SINCE_*, RECORD): never
 * stored.  Everything else a client sends is kept in EXTRA.
 */
static int
rebuilt_key(const char *k)
{
	static const char *const keys[] = {
		"UNIQUEID", "MBOXNAME", "SYNC_CRC", "SYNC_CRC_ANNOT", "LAST_UID",
		"HIGHESTMODSEQ", "RECENTUID", "RECENTTIME", "LAST_APPENDDATE",
		"POP3_LAST_LOGIN", "POP3_SHOW_AFTER", "UIDVALIDITY", "PARTITION", "ACL",
		"OPTIONS", "CREATEDMODSEQ", "FOLDERMODSEQ", "ANNOTATIONS", "RECORD",
		"SINCE_MODSEQ", "SINCE_CRC", "SINCE_CRC_ANNOT",
	};
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i]) == 0)
			return 1;
	return 0;
}

int
ids_sync_store_from_mailbox(struct ids_sync_store *st, const struct ids_dlist *kv)
{
	const struct ids_dlist *c, *annots = ids_dlist_get(kv, "ANNOTATIONS");
	struct ids_dlist *extra = NULL;
	int r;

	if (kv == NULL || kv->type != IDS_DL_KVLIST)
		return ids_error(IDS_EINVAL, "not a MAILBOX kvlist");
	if (annots && (r = check_annots(annots, "folder")) < 0)
		return r;
	for (c = kv->head; c; c = c->next) {
		if (rebuilt_key(c->name))
			continue;
		if ((r = no_files(c)) < 0)
			goto fail;
		if (extra == NULL && (extra = ids_dlist_new_kvlist()) == NULL)
			return -ENOMEM;
		if ((r = ids_dlist_add_child(extra, NULL, ids_dlist_copy(c))) < 0)
			goto fail;
	}
	ids_dlist_free(st->extra);
	st->extra = extra;
	ids_dlist_free(st->annots);
	st->annots = NULL;
	if (annots && annots->head && (st->annots = ids_dlist_copy(annots)) == NULL)
		return -ENOMEM;
	return 0;
fail:
	ids_dlist_free(extra);
	return r;
}
