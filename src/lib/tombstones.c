/*
 * tombstones.c - mailboxes.db's tombstones kept where a rebuild finds
 * them (tombstones.h; spool-layout.md, "Tombstones on disk").
 *
 * Real Cyrus never writes a name history into cyrus.header, and its
 * dump exports none, so after an import the old names of renamed
 * folders exist only as tombstone records, and a deleted folder's
 * tombstone has no file anywhere.  The first become history items of
 * the folder they name (written into its header with the rest of its
 * history); the second go into one small file per owner.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "layout.h"
#include "lock.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "tombstones.h"

/* --- a list of entries ------------------------------------------------ */

#define SCAN_BATCH 1024		/* records read between two map trims */
#define LOOKUP_BATCH 128	/* lookups by uniqueid between two map trims */
#define TRIM_OWNERS 32		/* owners' records written between two map trims */

struct elist {
	struct ids_mbentry *v;
	size_t n, alloc;
};

static int
elist_add(struct elist *l, const struct ids_mbentry *e)
{
	if (IDS_ALLOC_GROW(l->v, l->n + 1, l->alloc) < 0)
		return -ENOMEM;
	if (ids_mbentry_copy(&l->v[l->n], e) < 0)
		return -ENOMEM;
	l->n++;
	return 0;
}

static void
elist_release(struct elist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		ids_mbentry_release(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
cmp_name(const void *a, const void *b)
{
	const struct ids_mbentry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* --- history items from tombstones ------------------------------------ */

/*
 * What the scan keeps: every tombstone, and of the live mailboxes only
 * those holding a tombstone's uniqueid (the only ones whose history can
 * lack an item).  A spool of 100,000 folders has as many live records
 * and few tombstones: the live ones are not all kept.
 */
struct scan {
	struct elist tombs;	/* every tombstone */
	struct elist live;	/* the live mailboxes of the tombstones' ids (I record form: with history) */
};

static int
scan_cb(const struct ids_mbentry *e, void *rock)
{
	struct scan *s = rock;

	if (e->uniqueid == NULL || !ids_mbentry_is_tombstone(e))
		return 0;
	return elist_add(&s->tombs, e);
}

static int
cmp_id(const void *a, const void *b)
{
	const struct ids_mbentry *x = a, *y = b;

	return strcmp(x->uniqueid, y->uniqueid);
}

/* The live mailbox holding id, from the list sorted by uniqueid. */
static const struct ids_mbentry *
live_of(const struct scan *s, const char *id)
{
	struct ids_mbentry key;

	key.uniqueid = (char *)id;
	return bsearch(&key, s->live.v, s->live.n, sizeof(*s->live.v), cmp_id);
}

/* The history item of e named name, or NULL. */
static struct ids_history *
find_item(const struct ids_mbentry *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->nhistory; i++)
		if (strcmp(e->history[i].name, name) == 0)
			return &e->history[i];
	return NULL;
}

/* The kind and flags a history item of tombstone t has: t's, less 'd'. */
static void
item_type(const struct ids_mbentry *t, char out[IDS_MBTYPE_MAX])
{
	memcpy(out, t->mbtype, IDS_MBTYPE_MAX);
	ids_mbtype_set(out, IDS_MBFLAG_DELETED, 0);
}

/*
 * 1 if e's history lacks the tombstone t, or holds it with other
 * numbers: a rebuild makes the tombstone from the item, so the item
 * must say what the tombstone says.
 */
static int
item_stale(const struct ids_mbentry *e, const struct ids_mbentry *t)
{
	const struct ids_history *h;
	char type[IDS_MBTYPE_MAX];

	if (strcmp(e->name, t->name) == 0)
		return 0;
	if ((h = find_item(e, t->name)) == NULL)
		return 1;
	item_type(t, type);
	return h->mtime != t->mtime || h->uidvalidity != t->uidvalidity ||
	    h->createdmodseq != t->createdmodseq || h->foldermodseq != t->foldermodseq ||
	    strcmp(h->mbtype, type) != 0;
}

static void
item_fields(struct ids_history *h, const struct ids_mbentry *t)
{
	h->mtime = t->mtime;
	h->uidvalidity = t->uidvalidity;
	h->createdmodseq = t->createdmodseq;
	h->foldermodseq = t->foldermodseq;
	item_type(t, h->mbtype);
}

/* Inserts t's name into e's history, newest first by mtime. */
static int
insert_item(struct ids_mbentry *e, const struct ids_mbentry *t)
{
	struct ids_history *nh, *h;
	size_t at;

	if ((nh = realloc(e->history, (e->nhistory + 1) * sizeof(*nh))) == NULL)
		return -ENOMEM;
	e->history = nh;
	for (at = 0; at < e->nhistory && e->history[at].mtime >= t->mtime; at++)
		;
	memmove(&e->history[at + 1], &e->history[at], (e->nhistory - at) * sizeof(*nh));
	h = &e->history[at];
	memset(h, 0, sizeof(*h));
	e->nhistory++;
	if ((h->name = strdup(t->name)) == NULL)
		return -ENOMEM;
	item_fields(h, t);
	return 0;
}

struct complete {
	struct scan *s;
	size_t added;
	struct elist changed;	/* folders in the uniqueid layout whose history grew */
	size_t from, to;	/* the tombstones of this transaction */
	size_t added0, changed0;	/* the counts before it (a retried one starts again) */
};

/* In the write transaction: each live mailbox whose history lacks a tombstone of its id. */
static int
complete_txn(struct ids_txn *txn, void *rock)
{
	struct complete *c = rock;
	size_t i;
	int r = 0;

	c->added = c->added0;
	while (c->changed.n > c->changed0)
		ids_mbentry_release(&c->changed.v[--c->changed.n]);
	for (i = c->from; i < c->to && r == 0; i++) {
		const struct ids_mbentry *t = &c->s->tombs.v[i];
		struct ids_mbentry e;

		if (live_of(c->s, t->uniqueid) == NULL)
			continue;
		ids_mbentry_init(&e);
		if ((r = ids_txn_lookup_id(txn, t->uniqueid, &e)) == 0 &&
		    !ids_mbentry_is_tombstone(&e) && item_stale(&e, t)) {
			struct ids_buf b = IDS_BUF_INIT;
			struct ids_history *h = find_item(&e, t->name);

			if (h != NULL)
				item_fields(h, t);
			/* The I record only: the N record is not touched. */
			if ((h != NULL || (r = insert_item(&e, t)) == 0) &&
			    (r = ids_mbentry_encode_i(&e, &b)) == 0 &&
			    (r = ids_txn_put_raw(txn, 'I', t->uniqueid, b.s, b.len)) == 0) {
				c->added++;
				if (!ids_mbentry_is_legacy(&e))
					r = elist_add(&c->changed, &e);
			}
			ids_buf_release(&b);
		} else if (r == IDS_ENOTFOUND) {
			r = 0;
		}
		ids_mbentry_release(&e);
	}
	return r;
}

/* 1 if some tombstone of a live id is missing from its folder's history. */
static int
incomplete(const struct scan *s)
{
	size_t i;

	for (i = 0; i < s->tombs.n; i++) {
		const struct ids_mbentry *t = &s->tombs.v[i];
		const struct ids_mbentry *l = live_of(s, t->uniqueid);

		if (l && item_stale(l, t))
			return 1;
	}
	return 0;
}

/*
 * The live mailbox of each tombstone's uniqueid, from its I record (with
 * its history), when that names a live N record of the same uniqueid.
 */
struct chunk {
	struct scan *s;
	size_t from, to, live0;
};

static int
live_histories_txn(struct ids_txn *txn, void *rock)
{
	struct chunk *k = rock;
	struct scan *s = k->s;
	size_t i;
	int r = 0;

	while (s->live.n > k->live0)
		ids_mbentry_release(&s->live.v[--s->live.n]);
	for (i = k->from; i < k->to && r >= 0; i++) {
		struct ids_mbentry e, n;

		if (i > 0 && strcmp(s->tombs.v[i].uniqueid, s->tombs.v[i - 1].uniqueid) == 0)
			continue;
		ids_mbentry_init(&e);
		ids_mbentry_init(&n);
		if ((r = ids_txn_lookup_id(txn, s->tombs.v[i].uniqueid, &e)) == 0 &&
		    !ids_mbentry_is_tombstone(&e) &&
		    (r = ids_txn_lookup_name(txn, e.name, &n)) == 0 &&
		    !ids_mbentry_is_tombstone(&n) && n.uniqueid != NULL &&
		    strcmp(n.uniqueid, e.uniqueid) == 0)
			r = elist_add(&s->live, &e);
		if (r == IDS_ENOTFOUND)
			r = 0;
		ids_mbentry_release(&n);
		ids_mbentry_release(&e);
	}
	return r;
}

/*
 * The tombstones, read in short transactions with the map dropped
 * between them (a walk over every record would keep the whole file
 * resident), then the live mailboxes of their ids.
 */
static int
scan_all(struct ids_mboxlist *mbl, struct scan *s)
{
	struct ids_scanpos pos;
	struct chunk k = { s, 0, 0, 0 };
	int r;

	memset(&pos, 0, sizeof(pos));
	elist_release(&s->tombs);
	while ((r = ids_mboxlist_scan(mbl, &pos, 0, SCAN_BATCH, scan_cb, s)) > 0)
		ids_mboxlist_trim(mbl);
	if (r < 0)
		return r;
	if (s->tombs.n > 1)
		qsort(s->tombs.v, s->tombs.n, sizeof(*s->tombs.v), cmp_id);
	elist_release(&s->live);
	for (k.from = 0; k.from < s->tombs.n; k.from = k.to) {
		k.to = s->tombs.n - k.from < LOOKUP_BATCH ? s->tombs.n : k.from + LOOKUP_BATCH;
		k.live0 = s->live.n;
		if ((r = ids_mboxlist_read(mbl, live_histories_txn, &k)) < 0)
			return r;
		ids_mboxlist_trim(mbl);
	}
	if (s->live.n > 1)
		qsort(s->live.v, s->live.n, sizeof(*s->live.v), cmp_id);
	return 0;
}

/*
 * A folder already in the uniqueid layout (migrated by a rename before
 * any walker run) has its header written again, so that it carries the
 * items added; one that cannot be opened now (busy, damaged) keeps its
 * header, and reconstruct -m adds the history while mailboxes.db exists.
 */
static void
rewrite_headers(struct ids_mboxlist *mbl, const struct elist *l)
{
	struct ids_mailbox *mb;
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (ids_mailbox_open(mbl, l->v[i].name, IDS_MAILBOX_WRITE, IDS_LOCK_TIMEOUT_MS, &mb) < 0)
			continue;
		if (mb->entry.uniqueid && strcmp(mb->entry.uniqueid, l->v[i].uniqueid) == 0)
			(void)ids_mailbox_write_header(mb);
		ids_mailbox_close(mb);
	}
}

static int
complete_scan(struct ids_mboxlist *mbl, struct scan *s, size_t *added)
{
	struct complete c;
	int r;

	memset(&c, 0, sizeof(c));
	c.s = s;
	if (added)
		*added = 0;
	if (!incomplete(s))
		return 0;
	/*
	 * In transactions of LOOKUP_BATCH tombstones, the map dropped
	 * between them: each lookup by uniqueid lands on a page of its
	 * own, and a few thousand would map the whole file.
	 */
	for (r = 0; c.from < s->tombs.n && r == 0; c.from = c.to) {
		c.to = s->tombs.n - c.from < LOOKUP_BATCH ? s->tombs.n : c.from + LOOKUP_BATCH;
		c.added0 = c.added;
		c.changed0 = c.changed.n;
		if ((r = ids_mboxlist_write(mbl, complete_txn, &c)) == 0)
			ids_mboxlist_trim(mbl);
	}
	if (r == 0) {
		rewrite_headers(mbl, &c.changed);
		if (added)
			*added = c.added;
	}
	elist_release(&c.changed);
	return r;
}

int
ids_tombstones_complete(struct ids_mboxlist *mbl, size_t *added)
{
	struct scan s;
	int r;

	memset(&s, 0, sizeof(s));
	if ((r = scan_all(mbl, &s)) == 0)
		r = complete_scan(mbl, &s, added);
	elist_release(&s.tombs);
	elist_release(&s.live);
	return r;
}

/* --- the per-owner record ---------------------------------------------- */

/* The owner root of name (a user's INBOX, a shared top level). */
static int
owner_root(const char *name, struct ids_mbname *root)
{
	int r;

	if ((r = ids_mbname_parse_internal(root, name, 0)) < 0)
		return r;
	root->deleted = NULL;
	root->nboxes = root->localpart ? 0 : (root->nboxes ? 1 : 0);
	return 0;
}

/* "[H/]user/<owner>" or "[H/]<top>": the owner directory, below the root. */
static int
owner_rel(const struct ids_config *cfg, const struct ids_mbname *root, char *buf,
    size_t size)
{
	struct ids_location loc = { root, "0000000000000000", NULL, IDS_LAYOUT_UNIQUEID };
	char *slash;
	int r;

	if ((r = ids_path_reldir(cfg, &loc, buf, size)) < 0)
		return r;
	if ((slash = strrchr(buf, '/')) == NULL)
		return ids_error(IDS_EINVAL, "no owner directory in '%s'", buf);
	*slash = '\0';
	return 0;
}

int
ids_tombstones_format(const struct ids_mbentry *e, struct ids_buf *b)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	int r;

	if (kv == NULL)
		return -ENOMEM;
	if ((r = ids_dlist_add_string(kv, "N", e->name, strlen(e->name))) == 0 &&
	    (r = ids_dlist_add_atom(kv, "I", e->uniqueid)) == 0 &&
	    (r = ids_dlist_add_atom(kv, "T", e->mbtype)) == 0 &&
	    (r = ids_dlist_add_num(kv, "V", e->uidvalidity)) == 0 &&
	    (r = ids_dlist_add_num(kv, "C", e->createdmodseq)) == 0 &&
	    (r = ids_dlist_add_num(kv, "F", e->foldermodseq)) == 0 &&
	    (r = ids_dlist_add_snum(kv, "M", e->mtime)) == 0 &&
	    (r = ids_dlist_print(kv, b)) == 0)
		r = ids_buf_add(b, "\n", 1);
	ids_dlist_free(kv);
	return r;
}

struct owner {
	struct ids_mbname root;
	char dbname[2 * IDS_MBNAME_MAX + 8];
	char prefix[2 * IDS_MBNAME_MAX + 8];	/* of its DELETED mailboxes */
	int nprefix;
	struct elist tombs;	/* its tombstones whose uniqueid no live mailbox holds */
	struct ids_mboxlist *mbl;
};

static int
owner_cb(const struct ids_mbentry *e, void *rock)
{
	struct owner *o = rock;

	if (!ids_mbentry_is_tombstone(e) || e->uniqueid == NULL)
		return 0;
	return elist_add(&o->tombs, e);
}

/* Drops the tombstones whose uniqueid a live mailbox holds. */
static int
dead_only(struct ids_txn *txn, struct owner *o)
{
	size_t i, n = 0;
	int r;

	for (i = 0; i < o->tombs.n; i++) {
		struct ids_mbentry l;

		ids_mbentry_init(&l);
		r = ids_txn_lookup_id(txn, o->tombs.v[i].uniqueid, &l);
		if (r == 0 && !ids_mbentry_is_tombstone(&l)) {
			struct ids_mbentry n2;

			/* The I record may outlive its mailbox: check its N record. */
			ids_mbentry_init(&n2);
			r = ids_txn_lookup_name(txn, l.name, &n2);
			if (r == 0 && !ids_mbentry_is_tombstone(&n2) && n2.uniqueid &&
			    strcmp(n2.uniqueid, o->tombs.v[i].uniqueid) == 0) {
				ids_mbentry_release(&n2);
				ids_mbentry_release(&l);
				ids_mbentry_release(&o->tombs.v[i]);
				continue;
			}
			ids_mbentry_release(&n2);
		}
		ids_mbentry_release(&l);
		if (r < 0 && r != IDS_ENOTFOUND)
			return r;
		o->tombs.v[n++] = o->tombs.v[i];
	}
	o->tombs.n = n;
	return 0;
}

static int
owner_txn(struct ids_txn *txn, void *rock)
{
	struct owner *o = rock;
	char name[IDS_MBNAME_MAX + 1];
	int r;

	elist_release(&o->tombs);
	if ((r = ids_mbname_internal(&o->root, name, sizeof(name))) < 0 ||
	    (r = ids_txn_foreach(txn, name, owner_cb, o)) < 0 ||
	    (r = ids_txn_foreach_dbprefix(txn, o->prefix, (size_t)o->nprefix, owner_cb, o)) < 0)
		return r;
	return dead_only(txn, o);
}

/* 1 if the file name in dirfd holds exactly b's bytes. */
static int
same_content(int dirfd, const char *name, const struct ids_buf *b)
{
	char *cur;
	struct stat st;
	ssize_t got;
	int fd, same = 0;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == b->len &&
	    (cur = malloc(b->len + 1)) != NULL) {
		got = pread(fd, cur, b->len + 1, 0);
		same = got == (ssize_t)b->len && memcmp(cur, b->s, b->len) == 0;
		free(cur);
	}
	close(fd);
	return same;
}

/* Writes (or, empty, removes) the record rel below root; 1 if it changed. */
static int
put_record(const char *root, const char *rel, const struct ids_buf *b)
{
	char dir[PATH_MAX];
	const char *base;
	int rootfd, fd, r;

	if (snprintf(dir, sizeof(dir), "%s/%s", IDS_TOMBSTONES_DIR, rel) >= (int)sizeof(dir))
		return ids_error(IDS_ETOOLONG, "%s/%s/%s: path too long", root,
		    IDS_TOMBSTONES_DIR, rel);
	base = IDS_TOMBSTONES_FILE;
	if ((r = ids_opendir_abs(root, &rootfd)) < 0)
		return ids_error(r, "%s: %s", root, ids_errmsg(r));
	r = ids_opendir_beneath(rootfd, dir, b->len ? IDS_OPEN_CREATE : 0, &fd);
	close(rootfd);
	if (r < 0)
		return b->len == 0 && (r == -ENOENT || r == IDS_ENOTFOUND) ? 0 :
		    ids_error(r, "%s/%s: %s", root, dir, ids_errmsg(r));
	if (b->len == 0) {
		r = 0;
		if (faccessat(fd, base, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			if ((r = IDS_FAILPOINT("tombstones.write")) == 0 &&
			    unlinkat(fd, base, 0) < 0)
				r = ids_error(ids_errno(), "%s/%s/%s: %s", root, dir, base,
				    strerror(errno));
			if (r == 0 && (r = ids_fsync_dir(fd)) == 0)
				r = 1;
		}
	} else if (same_content(fd, base, b)) {
		r = 0;
	} else if ((r = IDS_FAILPOINT("tombstones.write")) == 0 &&
	    (r = ids_write_durable(fd, base, b->s, b->len, 0600)) == 0) {
		r = 1;
	}
	close(fd);
	return r;
}

static int
write_owner(struct ids_mboxlist *mbl, const char *name, int lock)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	const struct ids_partition *part = ids_config_partition(cfg, NULL);
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_lock *ns = NULL;
	struct owner o;
	char rel[PATH_MAX], owner[IDS_MBNAME_MAX + 1];
	size_t i;
	int r;

	memset(&o, 0, sizeof(o));
	if (part == NULL)
		return ids_error(IDS_EPARTITION, "no default partition");
	if ((r = owner_root(name, &o.root)) < 0 ||
	    (r = owner_rel(cfg, &o.root, rel, sizeof(rel))) < 0 ||
	    (r = ids_mbname_owner(&o.root, owner, sizeof(owner))) < 0 ||
	    (r = o.nprefix = ids_mbname_deleted_prefix(&o.root, o.prefix, sizeof(o.prefix))) < 0)
		return r;
	if (lock != IDS_TOMBSTONES_HELD &&
	    (r = ids_lock_namespace(cfg, owner, lock == IDS_TOMBSTONES_TRY ?
	    IDS_LOCK_NONBLOCK : 0, IDS_LOCK_TIMEOUT_MS, &ns)) < 0)
		return lock == IDS_TOMBSTONES_TRY && r == IDS_ELOCKED ? 0 : r;
	if ((r = ids_mboxlist_read(mbl, owner_txn, &o)) < 0)
		goto out;
	if (o.tombs.n > 1)
		qsort(o.tombs.v, o.tombs.n, sizeof(*o.tombs.v), cmp_name);
	for (i = 0; i < o.tombs.n && r >= 0; i++)
		r = ids_tombstones_format(&o.tombs.v[i], &b);
	if (r >= 0)
		r = put_record(part->path, rel, &b);
out:
	ids_buf_release(&b);
	elist_release(&o.tombs);
	ids_unlock(ns);
	return r;
}

int
ids_tombstones_write_owner(struct ids_mboxlist *mbl, const char *name, int lock)
{
	int r = write_owner(mbl, name, lock);

	return r < 0 ? r : 0;
}

/* --- reading the records ------------------------------------------------ */

int
ids_tombstones_parse(const char *s, size_t n, struct ids_mbentry *e, size_t *used)
{
	struct ids_dlist *kv = NULL;
	int r;

	if ((r = ids_dlist_parse(s, n, &kv, used)) < 0)
		return r;
	if ((r = ids_dlist_get_str(kv, "N", &e->name)) == 0 &&
	    (r = ids_dlist_get_str(kv, "I", &e->uniqueid)) == 0 &&
	    (r = ids_dlist_get_u32(kv, "V", &e->uidvalidity)) == 0 &&
	    (r = ids_dlist_get_u64(kv, "C", &e->createdmodseq)) == 0 &&
	    (r = ids_dlist_get_u64(kv, "F", &e->foldermodseq)) == 0 &&
	    (r = ids_dlist_get_i64(kv, "M", &e->mtime)) == 0) {
		const char *t = ids_dlist_cstr(ids_dlist_get(kv, "T"));
		struct ids_mbname mb;

		if (e->name == NULL || e->uniqueid == NULL || t == NULL ||
		    strlen(t) >= sizeof(e->mbtype) || ids_mbtype_check(t) < 0 ||
		    !ids_mbtype_has(t, IDS_MBFLAG_DELETED) ||
		    ids_mbname_parse_internal(&mb, e->name, 0) < 0 ||
		    ids_uniqueid_check(e->uniqueid) < 0)
			r = IDS_ECORRUPT;
		else
			strcpy(e->mbtype, t);
	}
	ids_dlist_free(kv);
	return r;
}

struct reader {
	ids_tombstone_fn fn;
	ids_tombstone_bad_fn bad;
	void *rock;
};

static int
read_file(int dirfd, const char *name, const char *path, const struct reader *rd)
{
	struct ids_buf b = IDS_BUF_INIT;
	char chunk[8192];
	size_t pos = 0;
	unsigned line = 1;
	ssize_t got;
	int fd, r = 0;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return rd->bad ? rd->bad(path, ids_error(ids_errno(), "%s", strerror(errno)),
		    rd->rock) : 0;
	while ((got = read(fd, chunk, sizeof(chunk))) > 0)
		if ((r = ids_buf_add(&b, chunk, (size_t)got)) < 0)
			break;
	if (got < 0)
		r = ids_error(ids_errno(), "%s", strerror(errno));
	close(fd);
	if (r < 0 && r != -ENOMEM) {
		r = rd->bad ? rd->bad(path, r, rd->rock) : 0;
		pos = b.len;	/* nothing of a file that cannot be read whole */
	}
	/* One kvlist after another, each ended by '\n' (a literal spans lines). */
	while (r == 0 && pos < b.len) {
		struct ids_mbentry e;
		size_t used = 0;

		if (b.s[pos] == '\n') {
			line++;
			pos++;
			continue;
		}
		ids_mbentry_init(&e);
		if (ids_tombstones_parse(b.s + pos, b.len - pos, &e, &used) < 0 ||
		    (pos + used < b.len && b.s[pos + used] != '\n')) {
			r = ids_error(IDS_ECORRUPT, "line %u: not a tombstone record", line);
			r = rd->bad ? rd->bad(path, r, rd->rock) : 0;
			pos = b.len;	/* the rest of the file is not trusted */
		} else {
			r = rd->fn(&e, path, rd->rock);
			for (; used > 0; used--, pos++)
				line += b.s[pos] == '\n';
		}
		ids_mbentry_release(&e);
	}
	ids_buf_release(&b);
	return r;
}

static int
read_dir(int dirfd, char *path, size_t size, int depth, const struct reader *rd)
{
	struct dirent *de;
	size_t len = strlen(path);
	DIR *d;
	int fd, r = 0;

	if (depth > 5 || (fd = dup(dirfd)) < 0)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return 0;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		int sub;

		if (de->d_name[0] == '.' ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    snprintf(path + len, size - len, "/%s", de->d_name) >= (int)(size - len))
			continue;
		if (S_ISREG(st.st_mode)) {
			if (strcmp(de->d_name, IDS_TOMBSTONES_FILE) == 0)
				r = read_file(dirfd, de->d_name, path, rd);
		} else if (S_ISDIR(st.st_mode) &&
		    ids_opendir_beneath(dirfd, de->d_name, 0, &sub) == 0) {
			r = read_dir(sub, path, size, depth + 1, rd);
			close(sub);
		}
		path[len] = '\0';
	}
	closedir(d);
	return r;
}

int
ids_tombstones_read(const struct ids_config *cfg, ids_tombstone_fn fn,
    ids_tombstone_bad_fn bad, void *rock)
{
	struct reader rd = { fn, bad, rock };
	char path[PATH_MAX];
	size_t i;
	int rootfd, fd, r = 0;

	for (i = 0; i < cfg->npartitions && r == 0; i++) {
		if (ids_opendir_abs(cfg->partitions[i].path, &rootfd) < 0)
			continue;
		if (ids_opendir_beneath(rootfd, IDS_TOMBSTONES_DIR, 0, &fd) == 0) {
			snprintf(path, sizeof(path), "%s/%s", cfg->partitions[i].path,
			    IDS_TOMBSTONES_DIR);
			r = read_dir(fd, path, sizeof(path), 0, &rd);
			close(fd);
		}
		close(rootfd);
	}
	return r;
}

/* --- every owner -------------------------------------------------------- */

/* The owner root of name, spelled as an internal name, in buf. */
static int
owner_key(const char *name, char *buf, size_t size)
{
	struct ids_mbname root;
	int r;

	if ((r = owner_root(name, &root)) < 0)
		return r;
	return ids_mbname_internal(&root, buf, size) < 0 ? IDS_ETOOLONG : 0;
}

struct dead {
	char *owner;			/* owner root, internal spelling */
	const struct ids_mbentry *t;	/* NULL: an owner with a record on disk */
};

struct deadlist {
	struct dead *v;
	size_t n, alloc;
};

static int
dead_add(struct deadlist *l, const char *name, const struct ids_mbentry *t)
{
	char key[IDS_MBNAME_MAX + 1];

	if (owner_key(name, key, sizeof(key)) < 0)
		return 0;	/* a name no record can hold */
	if (IDS_ALLOC_GROW(l->v, l->n + 1, l->alloc) < 0)
		return -ENOMEM;
	if ((l->v[l->n].owner = strdup(key)) == NULL)
		return -ENOMEM;
	l->v[l->n++].t = t;
	return 0;
}

/* By owner, then the owner's tombstones by name, then the owners on disk. */
static int
cmp_dead(const void *a, const void *b)
{
	const struct dead *x = a, *y = b;
	int c = strcmp(x->owner, y->owner);

	if (c != 0)
		return c;
	if (x->t == NULL || y->t == NULL)
		return (x->t == NULL) - (y->t == NULL);
	return strcmp(x->t->name, y->t->name);
}

static int
disk_cb(const struct ids_mbentry *e, const char *path, void *rock)
{
	(void)path;
	return dead_add(rock, e->name, NULL);
}

/* 1 if the owner's record on disk holds exactly these tombstones. */
static int
record_current(const struct ids_config *cfg, const struct dead *v, size_t n)
{
	const struct ids_partition *part = ids_config_partition(cfg, NULL);
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_mbname root;
	char rel[PATH_MAX], dir[PATH_MAX];
	size_t i;
	int rootfd, fd, same = 0;

	for (i = 0; i < n; i++)
		if (v[i].t != NULL && ids_tombstones_format(v[i].t, &b) < 0)
			goto out;
	if (part == NULL || owner_root(v[0].owner, &root) < 0 ||
	    owner_rel(cfg, &root, rel, sizeof(rel)) < 0 ||
	    snprintf(dir, sizeof(dir), "%s/%s", IDS_TOMBSTONES_DIR, rel) >= (int)sizeof(dir) ||
	    ids_opendir_abs(part->path, &rootfd) < 0)
		goto out;
	if (ids_opendir_beneath(rootfd, dir, 0, &fd) == 0) {
		same = b.len > 0 && same_content(fd, IDS_TOMBSTONES_FILE, &b);
		close(fd);
	} else {
		same = b.len == 0;	/* no tombstone, no record: as it should be */
	}
	close(rootfd);
out:
	ids_buf_release(&b);
	return same;
}

int
ids_tombstones_sync(struct ids_mboxlist *mbl, size_t *written)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct deadlist d = { NULL, 0, 0 };
	struct scan s;
	size_t i, j, n = 0, owners = 0;
	int r;

	memset(&s, 0, sizeof(s));
	if ((r = scan_all(mbl, &s)) < 0 || (r = complete_scan(mbl, &s, NULL)) < 0)
		goto out;
	for (i = 0; i < s.tombs.n && r == 0; i++)
		if (live_of(&s, s.tombs.v[i].uniqueid) == NULL)
			r = dead_add(&d, s.tombs.v[i].name, &s.tombs.v[i]);
	/* Owners with a record but no tombstone left (or a damaged record). */
	if (r == 0)
		r = ids_tombstones_read(cfg, disk_cb, NULL, &d);
	if (r < 0)
		goto out;
	if (d.n > 1)
		qsort(d.v, d.n, sizeof(*d.v), cmp_dead);
	/* Per owner: the record is written (under its lock) only when it is not current. */
	for (i = 0; i < d.n && r >= 0; i = j) {
		for (j = i + 1; j < d.n && strcmp(d.v[j].owner, d.v[i].owner) == 0; j++)
			;
		if (record_current(cfg, &d.v[i], j - i))
			continue;
		if ((r = write_owner(mbl, d.v[i].owner, IDS_TOMBSTONES_WAIT)) > 0)
			n++;
		/* each owner's records mapped: 1,000 owners map the whole file */
		if (++owners % TRIM_OWNERS == 0)
			ids_mboxlist_trim(mbl);
	}
out:
	for (i = 0; i < d.n; i++)
		free(d.v[i].owner);
	free(d.v);
	elist_release(&s.tombs);
	elist_release(&s.live);
	if (written)
		*written = n;
	return r < 0 ? r : 0;
}
