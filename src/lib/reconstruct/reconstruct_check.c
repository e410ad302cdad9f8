/*
 * reconstruct_check.c - the check of one live mailbox (reconstruct.h,
 * ids_reconstruct_check): its records, its directory, its cyrus.header
 * and its index, cross-checked and repaired.
 *
 * mailboxes.db wins while it exists: the header gets the record's name,
 * unique id, ACL and type.  Two things go the other way, because the
 * folder's own files are where they are made: the uidvalidity and
 * createdmodseq of its cyrus.index, and the items of the header's name
 * history mailboxes.db lacks (the history is never trimmed, so both
 * sides end with the union).  The owner's namespace lock is held for
 * the whole check (the records may change), the folder's mailbox lock
 * inside it (its files may change).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "index.h"
#include "intent.h"
#include "lock.h"
#include "mboxlist.h"
#include "reconstruct_int.h"

struct chk {
	struct rc_ctx *c;
	struct ids_mbentry e;		/* the live record, history from the I record */
	struct ids_mbname mb;
	struct ids_location loc;
	const struct ids_partition *part;
	char rel[PATH_MAX];
	char path[PATH_MAX];
	struct ids_header h;		/* as read */
	int hdr_err;
	uint32_t crc;			/* of the header file as it is now */
	struct ids_history *hist;	/* the union of both histories */
	size_t nhist;
	int db_dirty;			/* mailboxes.db needs the folder's values */
};

/* --- reading ---------------------------------------------------------------- */

struct lookup {
	const char *name;
	struct ids_mbentry *e;
};

static int
lookup_txn(struct ids_txn *txn, void *rock)
{
	struct lookup *l = rock;
	struct ids_mbentry ie;
	int r;

	if ((r = ids_txn_lookup_name(txn, l->name, l->e)) < 0)
		return r;
	if (ids_mbentry_is_tombstone(l->e))
		return IDS_ENOTFOUND;
	ids_mbentry_init(&ie);
	r = ids_txn_lookup_id(txn, l->e->uniqueid, &ie);
	if (r == 0 && ie.name && strcmp(ie.name, l->name) == 0) {
		l->e->history = ie.history;
		l->e->nhistory = ie.nhistory;
		ie.history = NULL;
		ie.nhistory = 0;
	}
	ids_mbentry_release(&ie);
	return r == IDS_ENOTFOUND ? 0 : r;
}

static int
read_record(struct ids_mboxlist *mbl, const char *name, struct ids_mbentry *e)
{
	struct lookup l = { name, e };
	int r;

	ids_mbentry_release(e);
	ids_mbentry_init(e);
	r = ids_mboxlist_read(mbl, lookup_txn, &l);
	return r == IDS_ENOTFOUND ? ids_error(r, "no such mailbox") : r;
}

static int
intent_txn(struct ids_txn *txn, void *rock)
{
	struct ids_intent in;
	int r;

	ids_intent_init(&in);
	r = ids_intent_get(txn, rock, &in);
	ids_intent_release(&in);
	return r;
}

/* Where the record puts the folder, and its header as it is now. */
static int
read_folder(struct chk *k)
{
	const struct ids_config *cfg = k->c->cfg;
	int64_t mtime;
	int r, hfd, ifd;

	if ((r = ids_location_from_entry(&k->e, &k->mb, &k->loc)) < 0 ||
	    (r = ids_path_reldir(cfg, &k->loc, k->rel, sizeof(k->rel))) < 0 ||
	    (r = ids_path_datadir(cfg, &k->loc, k->path, sizeof(k->path))) < 0)
		return r;
	if ((k->part = ids_config_partition(cfg, k->e.partition)) == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s' is not configured",
		    k->e.partition);
	if ((r = ids_rc_open_meta(cfg, k->part, k->rel, &hfd, &ifd)) < 0) {
		ids_rc_failed(k->c, r == -ENOENT ? "missing" : "unsafe", k->path, k->e.name, r,
		    "%s", r == -ENOENT ? "the folder's directory is missing" : ids_errmsg(r));
		return 1;
	}
	k->hdr_err = ids_rc_read_header(hfd, &k->h, &k->crc, &mtime);
	ids_rc_close_meta(hfd, ifd);
	return 0;
}

/* --- comparing -------------------------------------------------------------- */

/* The same entries, in any order (without memory: differ, and rewrite). */
static int
acl_equal(const struct ids_mbentry *e, const struct ids_header *h)
{
	return ids_acl_equal(e->acl, e->nacl, h->acl, h->nacl) == 1;
}

static int
history_equal(const struct ids_history *a, size_t na, const struct ids_history *b,
    size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (a[i].mtime != b[i].mtime || !a[i].name || !b[i].name ||
		    strcmp(a[i].name, b[i].name) != 0)
			return 0;
	return 1;
}

static void
conflict(struct chk *k, const char *rule, const char *what, const char *value)
{
	ids_rc_emit_at(k->c, IDS_RC_CONFLICT, rule, k->path, k->e.name, k->e.uniqueid,
	    "%s%s: mailboxes.db wins", what, value);
}

/* What differs between header and record; appends the header's fields to what. */
static void
compare_header(struct chk *k, struct ids_buf *what)
{
	const struct ids_header *h = &k->h;
	char type[IDS_MBTYPE_MAX];

	if (h->name == NULL || strcmp(h->name, k->e.name) != 0) {
		conflict(k, "stale-name", "cyrus.header names ", h->name ? h->name : "nothing");
		ids_buf_adds(what, ", name");
	}
	if (h->uniqueid == NULL || strcmp(h->uniqueid, k->e.uniqueid) != 0) {
		conflict(k, "id-mismatch", "cyrus.header says uniqueid ",
		    h->uniqueid ? h->uniqueid : "none");
		ids_buf_adds(what, ", uniqueid");
	}
	if (!acl_equal(&k->e, h)) {
		conflict(k, "acl", "cyrus.header's ACL differs", "");
		ids_buf_adds(what, ", acl");
	}
	if (!history_equal(k->hist, k->nhist, h->history, h->nhistory))
		ids_buf_adds(what, ", history");
	ids_rc_header_type(k->e.mbtype, type);
	if (strcmp(h->mbtype, type) != 0)
		ids_buf_adds(what, ", type");
}

/* --- repairing -------------------------------------------------------------- */

static int
write_header(struct chk *k, int fresh)
{
	const struct ids_config *cfg = k->c->cfg;
	struct ids_mbentry view;
	int hfd, ifd, r;

	view = k->e;
	view.history = k->hist;
	view.nhistory = k->nhist;
	ids_rc_header_type(k->e.mbtype, view.mbtype);
	if (fresh) {
		ids_header_release(&k->h);
		ids_header_init(&k->h);
	}
	if ((r = ids_header_from_mbentry(&k->h, &view)) < 0 ||
	    (r = ids_rc_open_meta(cfg, k->part, k->rel, &hfd, &ifd)) < 0)
		return r;
	if ((r = ids_header_write(hfd, &k->h, &k->crc)) == 0 &&
	    (r = ids_index_set_header_crc(ifd, k->crc)) == -ENOENT)
		r = 0;
	ids_rc_close_meta(hfd, ifd);
	return r;
}

static int
check_header(struct chk *k)
{
	struct ids_buf what = IDS_BUF_INIT;
	int r = 0, fresh = k->hdr_err == -ENOENT;

	if (k->hdr_err < 0 && !fresh) {
		ids_rc_failed(k->c, "unreadable", k->path, k->e.name, k->hdr_err,
		    "cannot read cyrus.header: %s: left untouched", ids_errmsg(k->hdr_err));
		return 1;
	}
	if ((r = ids_rc_history_merge(&k->hist, &k->nhist, k->e.history, k->e.nhistory)) < 0 ||
	    (!fresh && (r = ids_rc_history_merge(&k->hist, &k->nhist, k->h.history,
	    k->h.nhistory)) < 0))
		return r;
	if (fresh)
		ids_buf_adds(&what, ", missing: written from mailboxes.db; "
		    "its user flag names are lost");
	else
		compare_header(k, &what);
	if (!history_equal(k->hist, k->nhist, k->e.history, k->e.nhistory))
		k->db_dirty = 1;
	if (what.len > 0 && !k->c->opts->dry_run)
		r = write_header(k, fresh);
	if (r == 0 && what.len > 0)
		ids_rc_emit_at(k->c, IDS_RC_REPAIR, "header", k->path, k->e.name,
		    k->e.uniqueid, "%s", what.s + 2);
	ids_buf_release(&what);
	return r;
}

static void
changed_number(struct chk *k, const char *field, uint64_t db, uint64_t disk)
{
	char a[32], b[32];

	snprintf(a, sizeof(a), "%llu", (unsigned long long)db);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)disk);
	ids_rc_change(k->c, "changed", k->e.name, k->e.uniqueid, field, a, b);
	k->db_dirty = 1;
}

/* The index's header_file_crc follows the header; its values go to the record. */
static int
check_index(struct chk *k)
{
	struct ids_index_header ih;
	int hfd, ifd, r;

	if ((r = ids_rc_open_meta(k->c->cfg, k->part, k->rel, &hfd, &ifd)) < 0)
		return r;
	if ((r = ids_index_read_header(ifd, &ih)) < 0) {
		ids_rc_failed(k->c, "index", k->path, k->e.name, r, "cannot read cyrus.index: %s",
		    ids_errmsg(r));
		ids_rc_close_meta(hfd, ifd);
		return 1;
	}
	if (k->hdr_err == 0 && ih.header_file_crc != k->crc) {
		if (!k->c->opts->dry_run)
			r = ids_index_set_header_crc(ifd, k->crc);
		if (r == 0)
			ids_rc_emit_at(k->c, IDS_RC_REPAIR, "index", k->path, k->e.name,
			    k->e.uniqueid, "header_file_crc");
	}
	ids_rc_close_meta(hfd, ifd);
	if (ih.uidvalidity != k->e.uidvalidity && ih.uidvalidity != 0) {
		changed_number(k, "uidvalidity", k->e.uidvalidity, ih.uidvalidity);
		k->e.uidvalidity = ih.uidvalidity;
	}
	if (ih.createdmodseq != k->e.createdmodseq) {
		changed_number(k, "createdmodseq", k->e.createdmodseq, ih.createdmodseq);
		k->e.createdmodseq = ih.createdmodseq;
	}
	return r;
}

static int
update_txn(struct ids_txn *txn, void *rock)
{
	const struct chk *k = rock;
	struct ids_mbentry cur, put;
	int r;

	ids_mbentry_init(&cur);
	if ((r = ids_txn_lookup_name(txn, k->e.name, &cur)) == 0 &&
	    (ids_mbentry_is_tombstone(&cur) || strcmp(cur.uniqueid, k->e.uniqueid) != 0))
		r = ids_error(IDS_EBUSY, "%s: changed during the check", k->e.name);
	if (r == 0) {
		put = cur;
		put.uidvalidity = k->e.uidvalidity;
		put.createdmodseq = k->e.createdmodseq;
		put.history = k->hist;
		put.nhistory = k->nhist;
		r = ids_txn_put(txn, &put);
	}
	ids_mbentry_release(&cur);
	return r;
}

static int
update_record(struct chk *k)
{
	int r;

	if (!k->db_dirty || k->c->opts->dry_run)
		return 0;
	if (!history_equal(k->hist, k->nhist, k->e.history, k->e.nhistory))
		ids_rc_change(k->c, "changed", k->e.name, k->e.uniqueid, "history",
		    "mailboxes.db's", "with cyrus.header's items");
	if ((r = IDS_FAILPOINT("reconstruct.check_commit")) < 0)
		return r;
	return ids_mboxlist_write(k->c->mbl, update_txn, k);
}

/* --- the check -------------------------------------------------------------- */

static int
check_locked(struct chk *k, const char *name)
{
	int r;

	if ((r = read_record(k->c->mbl, name, &k->e)) < 0)
		return r;
	if (ids_mboxlist_read(k->c->mbl, intent_txn, k->e.uniqueid) == 0) {
		ids_rc_emit_at(k->c, IDS_RC_NOTE, "busy", NULL, k->e.name, k->e.uniqueid,
		    "an operation is in progress on it: not checked");
		return 0;
	}
	if ((r = read_folder(k)) != 0)
		return r < 0 ? r : 0;
	if ((r = check_header(k)) != 0)
		return r < 0 ? r : 0;
	if ((r = check_index(k)) < 0)
		return r;
	return update_record(k);
}

static void
chk_release(struct chk *k)
{
	size_t i;

	ids_mbentry_release(&k->e);
	ids_header_release(&k->h);
	for (i = 0; i < k->nhist; i++)
		ids_history_release(&k->hist[i]);
	free(k->hist);
}

/* Locks: the owner's namespace (exclusive unless dry), then the mailbox. */
static int
check_one(struct rc_ctx *c, const char *name)
{
	struct chk *k = calloc(1, sizeof(*k));
	struct ids_lock *ns = NULL, *ml = NULL;
	char owner[IDS_MBNAME_MAX + 1];
	int r, shared = c->opts->dry_run ? IDS_LOCK_SHARED : 0;

	if (k == NULL)
		return -ENOMEM;
	k->c = c;
	ids_mbentry_init(&k->e);
	ids_header_init(&k->h);
	if ((r = read_record(c->mbl, name, &k->e)) == 0 &&
	    (r = ids_rc_owner_of(k->e.name, owner, sizeof(owner))) >= 0 &&
	    (r = ids_lock_namespace(c->cfg, owner, shared, c->timeout_ms, &ns)) == 0 &&
	    (r = ids_lock_mailbox(c->cfg, k->e.uniqueid, shared, c->timeout_ms, &ml)) == 0)
		r = check_locked(k, name);
	ids_unlock(ml);
	ids_unlock(ns);
	chk_release(k);
	free(k);
	return r;
}

static void
ctx_init(struct rc_ctx *c, struct ids_mboxlist *mbl, const struct ids_reconstruct_opts *o,
    ids_rc_fn fn, void *rock, struct ids_reconstruct_stats *st)
{
	memset(c, 0, sizeof(*c));
	memset(st, 0, sizeof(*st));
	c->cfg = ids_mboxlist_config(mbl);
	c->mbl = mbl;
	c->opts = o;
	c->fn = fn;
	c->rock = rock;
	c->st = st;
	c->timeout_ms = o->lock_timeout_ms > 0 ? o->lock_timeout_ms : IDS_LOCK_TIMEOUT_MS;
}

int
ids_reconstruct_check(struct ids_mboxlist *mbl, const char *name,
    const struct ids_reconstruct_opts *opts, ids_rc_fn fn, void *rock,
    struct ids_reconstruct_stats *st)
{
	struct ids_reconstruct_stats local;
	struct rc_ctx c;
	int r;

	ctx_init(&c, mbl, opts, fn, rock, st ? st : &local);
	if ((r = check_one(&c, name)) == 0)
		c.st->live++;
	return r;
}

/* --- every mailbox of an owner ------------------------------------------------ */

struct names {
	const char *owner;
	char **v;
	size_t n, alloc;
};

static int
owner_entry(const struct ids_mbentry *e, void *rock)
{
	struct names *l = rock;
	char owner[IDS_MBNAME_MAX + 1];

	if (ids_mbentry_is_tombstone(e) || ids_rc_owner_of(e->name, owner, sizeof(owner)) < 0 ||
	    strcmp(owner, l->owner) != 0)
		return 0;
	if (IDS_ALLOC_GROW(l->v, l->n + 1, l->alloc) < 0)
		return -ENOMEM;
	return (l->v[l->n++] = strdup(e->name)) ? 0 : -ENOMEM;
}

static int
owner_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, NULL, owner_entry, rock);
}

int
ids_reconstruct_check_owner(struct ids_mboxlist *mbl, const char *owner,
    const struct ids_reconstruct_opts *opts, ids_rc_fn fn, void *rock,
    struct ids_reconstruct_stats *st)
{
	struct ids_reconstruct_stats local;
	struct names l = { owner, NULL, 0, 0 };
	struct rc_ctx c;
	size_t i;
	int r;

	ctx_init(&c, mbl, opts, fn, rock, st ? st : &local);
	if ((r = ids_mboxlist_read(mbl, owner_txn, &l)) == 0 && l.n == 0)
		r = ids_error(IDS_ENOTFOUND, "%s: no mailboxes", owner);
	for (i = 0; r == 0 && i < l.n; i++) {
		if ((r = check_one(&c, l.v[i])) == 0)
			c.st->live++;
		else if (r != -ENOMEM && r != IDS_EDB) {
			ids_rc_failed(&c, "error", NULL, l.v[i], r, "%s", ids_errmsg(r));
			r = 0;
		}
	}
	for (i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
	return r < 0 ? r : 0;
}
