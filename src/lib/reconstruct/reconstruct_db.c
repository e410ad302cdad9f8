/*
 * reconstruct_db.c - the mailboxes.db side of a rebuild: the snapshot of
 * the records taken before the walk, the records the plan wants, the
 * differences between the two (reported as CHANGE events) and the one
 * write transaction that applies them.
 *
 * The commit is atomic (one LMDB transaction: every reader sees the old
 * records or the new ones) and optimistic: the walk takes no namespace
 * lock, so the transaction first compares every N, I and X record with
 * the snapshot.  A record that changed meanwhile belongs to an operation
 * that ran during the walk (its own locks and intent protected it): its
 * name and unique id are frozen, and so is every wanted record that
 * shares one with it; nothing frozen is touched, and the wanted records
 * left out are reported as "changed-meanwhile".  Rebuilding in place
 * keeps every other process's open environment valid, which renaming a
 * fresh database over the old file would not.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "failpoint.h"
#include "mboxlist.h"
#include "reconstruct_int.h"
#include "tombstones.h"

#define RAW_N 0
#define RAW_I 1
#define RAW_X 2
static const char raw_types[3] = { 'N', 'I', 'X' };

/* --- the snapshot --------------------------------------------------------- */

static int
raw_add(struct rc_raw *rw, const char *key, uint64_t hash)
{
	if (rw->n == rw->alloc) {
		size_t na = rw->alloc ? 2 * rw->alloc : 1024;
		char **k = realloc(rw->keys, na * sizeof(*k));
		uint64_t *h;

		if (k == NULL)
			return -ENOMEM;
		rw->keys = k;
		if ((h = realloc(rw->hash, na * sizeof(*h))) == NULL)
			return -ENOMEM;
		rw->hash = h;
		rw->alloc = na;
	}
	if ((rw->keys[rw->n] = strdup(key)) == NULL)
		return -ENOMEM;
	rw->hash[rw->n++] = hash;
	return 0;
}

static int
rec_add(struct rc_rec **v, size_t *n, size_t *alloc, struct rc_rec **out)
{
	if (IDS_ALLOC_GROW(*v, *n + 1, *alloc) < 0)
		return -ENOMEM;
	*out = &(*v)[(*n)++];
	memset(*out, 0, sizeof(**out));
	ids_mbentry_init(&(*out)->e);
	return 0;
}

/* A dbname (the key after 'N') as an internal name. */
static int
dbname_internal(const char *dbname, char out[IDS_MBNAME_MAX + 1])
{
	struct ids_mbname mb;
	int r;

	if ((r = ids_mbname_parse_dbname(&mb, dbname, strlen(dbname), 0)) < 0)
		return r;
	return ids_mbname_internal(&mb, out, IDS_MBNAME_MAX + 1);
}

static int
snap_n_rec(struct rc_ctx *c, const char *key, const char *val, size_t len)
{
	char name[IDS_MBNAME_MAX + 1];
	struct rc_rec *r;
	int rr;

	if (dbname_internal(key, name) < 0)
		return 0;	/* an unreadable key: nothing ever touches it */
	if ((rr = rec_add(&c->snap.n, &c->snap.nn, &c->snap.an, &r)) < 0)
		return rr;
	r->hash = ids_rc_hash(val, len);
	if (ids_mbentry_decode_n(&r->e, name, val, len) < 0 || r->e.uniqueid == NULL) {
		ids_rc_emit(c, IDS_RC_NOTE, "kept", NULL, name, NULL,
		    "its record in mailboxes.db cannot be read: kept");
		ids_mbentry_release(&r->e);
		ids_mbentry_init(&r->e);
		r->kept = 1;
		return (r->e.name = strdup(name)) ? 0 : -ENOMEM;
	}
	r->in_scope = ids_rc_in_scope(c, name, r->e.partition, ids_mbentry_is_tombstone(&r->e));
	return 0;
}

static int
snap_i_rec(struct rc_ctx *c, const char *id, const char *val, size_t len)
{
	struct rc_rec *r;
	int rr;

	if ((rr = rec_add(&c->snap.i, &c->snap.ni, &c->snap.ai, &r)) < 0)
		return rr;
	r->hash = ids_rc_hash(val, len);
	if (ids_uniqueid_check(id) < 0 || ids_mbentry_decode_i(&r->e, id, val, len) < 0 ||
	    r->e.name == NULL) {
		ids_mbentry_release(&r->e);
		ids_mbentry_init(&r->e);
		r->kept = 1;
		return (r->e.uniqueid = strdup(id)) ? 0 : -ENOMEM;
	}
	r->in_scope = ids_rc_in_scope(c, r->e.name, r->e.partition,
	    ids_mbentry_is_tombstone(&r->e));
	return 0;
}

static int
snap_intent(struct rc_snap *s, const char *id)
{
	char **v;

	if ((s->nintents & (s->nintents + 1)) == 0 || s->intent_ids == NULL) {
		if ((v = realloc(s->intent_ids, 2 * (s->nintents + 1) * sizeof(*v))) == NULL)
			return -ENOMEM;
		s->intent_ids = v;
	}
	if ((s->intent_ids[s->nintents] = strdup(id)) == NULL)
		return -ENOMEM;
	s->nintents++;
	return 0;
}

struct snapwalk {
	struct rc_ctx *c;
	int type;
};

static int
snap_raw(const char *id, const char *val, size_t len, void *rock)
{
	struct snapwalk *sw = rock;
	struct rc_ctx *c = sw->c;
	int r;

	if ((r = raw_add(&c->snap.raw[sw->type], id, ids_rc_hash(val, len))) < 0)
		return r;
	if (sw->type == RAW_N)
		return snap_n_rec(c, id, val, len);
	if (sw->type == RAW_I)
		return snap_i_rec(c, id, val, len);
	return snap_intent(&c->snap, id);
}

static int
snap_txn(struct ids_txn *txn, void *rock)
{
	struct snapwalk sw = { rock, 0 };
	int r;

	for (sw.type = 0; sw.type < 3; sw.type++)
		if ((r = ids_txn_foreach_raw(txn, raw_types[sw.type], snap_raw, &sw)) < 0)
			return r;
	return 0;
}

/* The maps over the snapshot: by name, by id, by location, intents. */
static int
snap_index(struct rc_ctx *c)
{
	struct rc_snap *s = &c->snap;
	size_t i;
	char *key;

	if ((s->lockeys = calloc(s->nn + 1, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (i = 0; i < s->nn; i++) {
		if (ids_rc_map_add(&s->byname, s->n[i].e.name, i, NULL) < 0)
			return -ENOMEM;
		if (s->n[i].e.uniqueid == NULL || ids_mbentry_is_tombstone(&s->n[i].e) ||
		    (key = ids_rc_location_key(c, &s->n[i].e)) == NULL)
			continue;
		s->lockeys[s->nlockeys++] = key;
		if (ids_rc_map_add(&s->byloc, key, i, NULL) < 0)
			return -ENOMEM;
	}
	for (i = 0; i < s->ni; i++)
		if (ids_rc_map_add(&s->byid, s->i[i].e.uniqueid, i, NULL) < 0)
			return -ENOMEM;
	for (i = 0; i < s->nintents; i++)
		if (ids_rc_map_add(&s->intents, s->intent_ids[i], i, NULL) < 0)
			return -ENOMEM;
	return 0;
}

int
ids_rc_snapshot(struct rc_ctx *c)
{
	int r;

	if (c->mbl == NULL)
		return 0;
	if ((r = ids_mboxlist_read(c->mbl, snap_txn, c)) < 0)
		return r;
	c->snap.present = 1;
	return snap_index(c);
}

static int
intent_txn(struct ids_txn *txn, void *rock)
{
	char *val = NULL;
	int r = ids_txn_get_raw(txn, 'X', rock, &val, NULL);

	free(val);
	return r;
}

int
ids_rc_intent_now(struct rc_ctx *c, const char *uniqueid)
{
	if (ids_rc_map_get(&c->snap.intents, uniqueid) != RC_NONE)
		return 1;
	return c->mbl != NULL && ids_mboxlist_read(c->mbl, intent_txn, (void *)uniqueid) == 0;
}

static void
recs_free(struct rc_rec *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ids_mbentry_release(&v[i].e);
	free(v);
}

static void
strings_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

void
ids_rc_snap_release(struct rc_snap *s)
{
	size_t i;

	recs_free(s->n, s->nn);
	recs_free(s->i, s->ni);
	ids_rc_map_release(&s->byname);
	ids_rc_map_release(&s->byid);
	ids_rc_map_release(&s->byloc);
	strings_free(s->lockeys, s->nlockeys);
	ids_rc_map_release(&s->intents);
	strings_free(s->intent_ids, s->nintents);
	for (i = 0; i < 3; i++) {
		strings_free(s->raw[i].keys, s->raw[i].n);
		free(s->raw[i].hash);
	}
	memset(s, 0, sizeof(*s));
}

/* --- the wanted records ----------------------------------------------------- */

static struct rc_rec *
snap_n(struct rc_ctx *c, const char *name)
{
	size_t i = ids_rc_map_get(&c->snap.byname, name);

	return i == RC_NONE ? NULL : &c->snap.n[i];
}

static int
want_add(struct rc_ctx *c, size_t folder, struct rc_want **wp)
{
	if (IDS_ALLOC_GROW(c->w, c->nw + 1, c->aw) < 0)
		return -ENOMEM;
	*wp = &c->w[c->nw++];
	memset(*wp, 0, sizeof(**wp));
	ids_mbentry_init(&(*wp)->e);
	(*wp)->folder = folder;
	return 0;
}

void
ids_rc_want_release(struct rc_ctx *c)
{
	size_t i;

	for (i = 0; i < c->nw; i++)
		ids_mbentry_release(&c->w[i].e);
	free(c->w);
	c->w = NULL;
	c->nw = c->aw = 0;
	ids_rc_map_release(&c->wname);
	ids_rc_map_release(&c->wid);
}

static int
want_tomb(const struct rc_want *w)
{
	return ids_mbentry_is_tombstone(&w->e);
}

/* The record's type: the header's kind, 'l' for the legacy layout. */
static void
folder_type(const struct rc_folder *f, const struct rc_rec *k, char out[IDS_MBTYPE_MAX])
{
	char kind[2] = { f->h.mbtype[0], '\0' };

	if (kind[0] == '\0' || ids_mbtype_check(kind) < 0)
		kind[0] = k ? k->e.mbtype[0] : 'e';
	out[0] = kind[0];
	out[1] = '\0';
	if (f->layout == IDS_LAYOUT_LEGACY)
		ids_mbtype_set(out, IDS_MBFLAG_LEGACY, 1);
}

/* Fields no file stores come from the record the folder had, if any. */
static void
folder_numbers(struct rc_ctx *c, const struct rc_folder *f, const struct rc_rec *k,
    const struct rc_rec *prev, struct ids_mbentry *e)
{
	if (f->idx_err == 0) {
		e->uidvalidity = f->ix.uidvalidity;
		e->createdmodseq = f->ix.createdmodseq;
		e->foldermodseq = f->ix.highestmodseq;
	} else if (k != NULL) {
		e->uidvalidity = k->e.uidvalidity;
		e->createdmodseq = k->e.createdmodseq;
		e->foldermodseq = k->e.foldermodseq;
	}
	e->mtime = f->hdr_mtime;
	if (prev != NULL) {
		e->foldermodseq = prev->e.foldermodseq;
		e->mtime = prev->e.mtime;
	}
	if (f->idx_err < 0)
		ids_rc_failed(c, "index", f->path, f->name, f->idx_err, "cannot read "
		    "cyrus.index: %s: registered with %s", ids_errmsg(f->idx_err),
		    k ? "mailboxes.db's uidvalidity" : "uidvalidity 0");
}

static int
copy_acl_history(struct ids_mbentry *e, const struct rc_folder *f)
{
	struct ids_mbentry view;

	ids_mbentry_init(&view);
	view.acl = f->h.acl;
	view.nacl = f->h.nacl;
	view.history = f->hist;
	view.nhistory = f->nhist;
	strcpy(view.mbtype, "e");
	return ids_mbentry_copy(e, &view);
}

static int
live_want(struct rc_ctx *c, size_t i)
{
	struct rc_folder *f = &c->f[i];
	const struct rc_rec *k = f->known != RC_NONE ? &c->snap.n[f->known] : NULL;
	const struct rc_rec *prev = snap_n(c, f->name);
	struct rc_want *w;
	int r;

	if (prev && (ids_mbentry_is_tombstone(&prev->e) || prev->e.uniqueid == NULL ||
	    strcmp(prev->e.uniqueid, rc_id(f)) != 0))
		prev = NULL;
	if ((r = want_add(c, i, &w)) < 0 || (r = copy_acl_history(&w->e, f)) < 0)
		return r;
	if ((w->e.name = strdup(f->name)) == NULL ||
	    (w->e.uniqueid = strdup(rc_id(f))) == NULL ||
	    (w->e.partition = strdup(f->part->name)) == NULL ||
	    (prev && prev->e.server && (w->e.server = strdup(prev->e.server)) == NULL))
		return -ENOMEM;
	folder_type(f, k, w->e.mbtype);
	folder_numbers(c, f, k, prev, &w->e);
	if (ids_rc_map_add(&c->wname, w->e.name, c->nw - 1, NULL) < 0 ||
	    ids_rc_map_add(&c->wid, w->e.uniqueid, c->nw - 1, NULL) < 0)
		return -ENOMEM;
	return 0;
}

static int
newer_item(const struct ids_history *h, const struct ids_mbentry *e)
{
	return h->uidvalidity > e->uidvalidity ||
	    (h->uidvalidity == e->uidvalidity && h->mtime > e->mtime);
}

static void
tomb_fields(struct ids_mbentry *e, const struct ids_history *h)
{
	memcpy(e->mbtype, h->mbtype, sizeof(e->mbtype));
	if (ids_mbtype_check(e->mbtype) < 0)
		strcpy(e->mbtype, "e");
	ids_mbtype_set(e->mbtype, IDS_MBFLAG_DELETED, 1);
	e->uidvalidity = h->uidvalidity;
	e->createdmodseq = h->createdmodseq;
	e->foldermodseq = h->foldermodseq;
	e->mtime = h->mtime;
}

/* A tombstone of id at a name, unless something else is there. */
static int
tomb_at(struct rc_ctx *c, const char *id, const struct ids_history *h)
{
	size_t x = ids_rc_map_get(&c->wname, h->name);
	const struct rc_rec *kr = snap_n(c, h->name);
	struct rc_want *w;
	int r;

	if (!ids_rc_in_scope(c, h->name, NULL, 1) || (kr && kr->kept))
		return 0;
	if (x != RC_NONE) {
		w = &c->w[x];
		if (want_tomb(w) && newer_item(h, &w->e)) {
			free(w->e.uniqueid);
			if ((w->e.uniqueid = strdup(id)) == NULL)
				return -ENOMEM;
			tomb_fields(&w->e, h);
		}
		return 0;
	}
	if ((r = want_add(c, RC_NONE, &w)) < 0)
		return r;
	if ((w->e.name = strdup(h->name)) == NULL || (w->e.uniqueid = strdup(id)) == NULL)
		return -ENOMEM;
	tomb_fields(&w->e, h);
	return ids_rc_map_add(&c->wname, w->e.name, c->nw - 1, NULL) < 0 ? -ENOMEM : 0;
}

/* A tombstone at a name the folder used to have. */
static int
tomb_candidate(struct rc_ctx *c, const struct rc_folder *f, const struct ids_history *h)
{
	return tomb_at(c, rc_id(f), h);
}

/* A tombstone of a deleted folder, from its owner's record on disk. */
static int
record_cb(const struct ids_mbentry *e, const char *path, void *rock)
{
	struct ids_history h;

	(void)path;
	memset(&h, 0, sizeof(h));
	h.name = e->name;
	h.mtime = e->mtime;
	h.uidvalidity = e->uidvalidity;
	h.createdmodseq = e->createdmodseq;
	h.foldermodseq = e->foldermodseq;
	memcpy(h.mbtype, e->mbtype, sizeof(h.mbtype));
	return tomb_at(rock, e->uniqueid, &h);
}

/* A record that cannot be read: reported, the rest of its file skipped. */
static int
record_bad(const char *path, int code, void *rock)
{
	if (code == -ENOMEM)
		return code;
	ids_rc_failed(rock, "tombstones", path, NULL, code, "%s: the rest of the file "
	    "is not read", ids_errmsg(code));
	return 0;
}

static int
record_tombs(struct rc_ctx *c)
{
	return ids_tombstones_read(c->cfg, record_cb, record_bad, c);
}

/*
 * Tombstones mailboxes.db has in the scope: one the disk cannot rebuild
 * (a deleted folder's) is kept; against a rebuilt one at the same name
 * the record of the same id, or else the higher uidvalidity, wins.
 */
static void
merge_snapshot_tombs(struct rc_ctx *c)
{
	size_t i, x;

	for (i = 0; i < c->snap.nn; i++) {
		struct rc_rec *r = &c->snap.n[i];
		struct rc_want *w;

		if (r->kept || !ids_mbentry_is_tombstone(&r->e))
			continue;
		if ((x = ids_rc_map_get(&c->wname, r->e.name)) == RC_NONE) {
			r->kept = 1;
			continue;
		}
		w = &c->w[x];
		if (!want_tomb(w))
			continue;
		if (strcmp(w->e.uniqueid, r->e.uniqueid) == 0 ||
		    r->e.uidvalidity > w->e.uidvalidity || (r->e.uidvalidity ==
		    w->e.uidvalidity && r->e.mtime >= w->e.mtime)) {
			w->put = -1;	/* dropped: the snapshot's stays */
			r->kept = 1;
		}
	}
}

/* I records stay with the N records they belong to. */
static void
keep_i_records(struct rc_ctx *c)
{
	size_t i;

	for (i = 0; i < c->snap.ni; i++) {
		struct rc_rec *r = &c->snap.i[i], *n;

		if (r->kept || ids_rc_map_get(&c->wid, r->e.uniqueid) != RC_NONE)
			continue;
		n = snap_n(c, r->e.name);
		if (!r->in_scope || (n && n->kept) ||
		    ids_rc_map_get(&c->snap.intents, r->e.uniqueid) != RC_NONE)
			r->kept = 1;
	}
}

static void
count_result(struct rc_ctx *c)
{
	size_t i;

	for (i = 0; i < c->nw; i++)
		if (c->w[i].put >= 0)
			*(want_tomb(&c->w[i]) ? &c->st->tombstones : &c->st->live) += 1;
	for (i = 0; i < c->snap.nn; i++)
		if (c->snap.n[i].kept && c->snap.n[i].e.uniqueid)
			*(ids_mbentry_is_tombstone(&c->snap.n[i].e) ? &c->st->tombstones :
			    &c->st->live) += 1;
}

int
ids_rc_want_all(struct rc_ctx *c)
{
	size_t i, j;
	int r;

	for (i = 0; i < c->nf; i++)
		if (!(c->f[i].flags & (RCF_UNREADABLE | RCF_BUSY | RCF_LEFTOUT | RCF_SKIPPED)) &&
		    (r = live_want(c, i)) < 0)
			return r;
	for (i = 0; i < c->nf; i++) {
		const struct rc_folder *f = &c->f[i];

		if (f->flags & (RCF_UNREADABLE | RCF_BUSY | RCF_LEFTOUT | RCF_SKIPPED))
			continue;
		for (j = 0; j < f->nhist; j++)
			if ((r = tomb_candidate(c, f, &f->hist[j])) < 0)
				return r;
	}
	if ((r = record_tombs(c)) < 0)
		return r;
	merge_snapshot_tombs(c);
	keep_i_records(c);
	count_result(c);
	return 0;
}

/* --- the differences ------------------------------------------------------- */

static struct rc_rec *
snap_i(struct rc_ctx *c, const char *id)
{
	size_t i = ids_rc_map_get(&c->snap.byid, id);

	return i == RC_NONE ? NULL : &c->snap.i[i];
}

static int
want_hashes(struct rc_want *w)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if ((r = ids_mbentry_encode_n(&w->e, &b)) == 0) {
		w->nhash = ids_rc_hash(b.s, b.len);
		ids_buf_reset(&b);
		if (!want_tomb(w) && (r = ids_mbentry_encode_i(&w->e, &b)) == 0)
			w->ihash = ids_rc_hash(b.s, b.len);
	}
	ids_buf_release(&b);
	return r;
}

/* "uniqueid U, legacy, partition P" or "uniqueid U" for a tombstone. */
static void
summary(const struct ids_mbentry *e, char *buf, size_t size)
{
	int n;

	if (ids_mbentry_is_tombstone(e))
		n = snprintf(buf, size, "uniqueid %s", e->uniqueid ? e->uniqueid : "none");
	else
		n = snprintf(buf, size, "uniqueid %s, %s, partition %s", e->uniqueid,
		    ids_mbentry_is_legacy(e) ? "legacy" : "uniqueid",
		    e->partition ? e->partition : "none");
	if (n < 0 || (size_t)n >= size)		/* a long partition name: cut, marked */
		strcpy(buf + size - 4, "...");
}

static void
str_field(struct rc_ctx *c, const struct ids_mbentry *n, const char *field,
    const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
		ids_rc_change(c, "changed", n->name, n->uniqueid, field, a ? a : "none",
		    b ? b : "none");
}

static void
num_field(struct rc_ctx *c, const struct ids_mbentry *n, const char *field,
    int64_t a, int64_t b)
{
	char sa[32], sb[32];

	if (a == b)
		return;
	snprintf(sa, sizeof(sa), "%" PRId64, a);
	snprintf(sb, sizeof(sb), "%" PRId64, b);
	ids_rc_change(c, "changed", n->name, n->uniqueid, field, sa, sb);
}

static void
acl_string(const struct ids_mbentry *e, struct ids_buf *b)
{
	size_t i;

	for (i = 0; i < e->nacl; i++)
		ids_buf_printf(b, "%s%s %s", i ? " " : "", e->acl[i].id, e->acl[i].rights);
}

static void
history_string(const struct ids_mbentry *e, struct ids_buf *b)
{
	size_t i;

	for (i = 0; i < e->nhistory; i++)
		ids_buf_printf(b, "%s%s", i ? ", " : "", e->history[i].name);
}

static void
list_field(struct rc_ctx *c, const struct ids_mbentry *o, const struct ids_mbentry *n,
    const char *field, void (*fmt)(const struct ids_mbentry *, struct ids_buf *))
{
	struct ids_buf a = IDS_BUF_INIT, b = IDS_BUF_INIT;

	fmt(o, &a);
	fmt(n, &b);
	if (!ids_buf_oom(&a) && !ids_buf_oom(&b) && strcmp(a.s, b.s) != 0)
		ids_rc_change(c, "changed", n->name, n->uniqueid, field, a.len ? a.s : "none",
		    b.len ? b.s : "none");
	ids_buf_release(&a);
	ids_buf_release(&b);
}

static void
report_fields(struct rc_ctx *c, const struct ids_mbentry *o, const struct ids_mbentry *n)
{
	str_field(c, n, "uniqueid", o->uniqueid, n->uniqueid);
	str_field(c, n, "type", o->mbtype, n->mbtype);
	str_field(c, n, "partition", o->partition, n->partition);
	str_field(c, n, "server", o->server, n->server);
	num_field(c, n, "uidvalidity", o->uidvalidity, n->uidvalidity);
	num_field(c, n, "createdmodseq", (int64_t)o->createdmodseq, (int64_t)n->createdmodseq);
	num_field(c, n, "foldermodseq", (int64_t)o->foldermodseq, (int64_t)n->foldermodseq);
	num_field(c, n, "mtime", o->mtime, n->mtime);
	list_field(c, o, n, "acl", acl_string);
}

static void
diff_want(struct rc_ctx *c, struct rc_want *w)
{
	const struct rc_rec *n = snap_n(c, w->e.name);
	const struct rc_rec *i = want_tomb(w) ? NULL : snap_i(c, w->e.uniqueid);
	char sum[256];
	int nsame, isame;

	if (want_hashes(w) < 0) {
		w->put = 1;
		return;
	}
	nsame = n != NULL && n->hash == w->nhash;
	isame = want_tomb(w) || (i != NULL && i->hash == w->ihash);
	w->put = !nsame || !isame;
	if (n == NULL) {
		summary(&w->e, sum, sizeof(sum));
		ids_rc_change(c, "added", w->e.name, w->e.uniqueid,
		    want_tomb(w) ? "tombstone" : "mailbox", NULL, sum);
	} else if (!nsame) {
		report_fields(c, &n->e, &w->e);
	}
	if (isame || n == NULL)
		return;
	if (i == NULL || strcmp(i->e.name, w->e.name) != 0)
		ids_rc_change(c, "changed", w->e.name, w->e.uniqueid, "by-uniqueid record",
		    i ? i->e.name : "none", w->e.name);
	else
		list_field(c, &i->e, &w->e, "history", history_string);
}

void
ids_rc_diff(struct rc_ctx *c)
{
	char sum[256];
	size_t k;

	for (k = 0; k < c->nw; k++)
		if (c->w[k].put >= 0)
			diff_want(c, &c->w[k]);
	for (k = 0; k < c->snap.nn; k++) {
		const struct rc_rec *r = &c->snap.n[k];

		if (r->kept || ids_rc_map_get(&c->wname, r->e.name) != RC_NONE)
			continue;
		summary(&r->e, sum, sizeof(sum));
		ids_rc_change(c, "removed", r->e.name, r->e.uniqueid,
		    ids_mbentry_is_tombstone(&r->e) ? "tombstone" : "mailbox", sum, NULL);
	}
	for (k = 0; k < c->snap.ni; k++) {
		const struct rc_rec *r = &c->snap.i[k];

		if (!r->kept && ids_rc_map_get(&c->wid, r->e.uniqueid) == RC_NONE)
			ids_rc_change(c, "removed", r->e.name, r->e.uniqueid,
			    "by-uniqueid record", r->e.uniqueid, NULL);
	}
}

/* --- the commit ------------------------------------------------------------ */

struct commit {
	struct rc_ctx *c;
	struct ids_txn *txn;
	struct rc_map names, ids;	/* frozen: changed since the snapshot */
	char **own;			/* the frozen keys */
	size_t nown, aown;
	unsigned char *skip;		/* per want: left out */
	int changed;
};

static int
freeze(struct commit *cm, struct rc_map *m, const char *key)
{
	if (key == NULL || ids_rc_map_get(m, key) != RC_NONE)
		return 0;
	if (IDS_ALLOC_GROW(cm->own, cm->nown + 1, cm->aown) < 0)
		return -ENOMEM;
	if ((cm->own[cm->nown] = strdup(key)) == NULL)
		return -ENOMEM;
	cm->changed = 1;
	return ids_rc_map_add(m, cm->own[cm->nown++], 0, NULL) < 0 ? -ENOMEM : 0;
}

static void
commit_reset(struct commit *cm)
{
	size_t i;

	for (i = 0; i < cm->nown; i++)
		free(cm->own[i]);
	cm->nown = 0;
	ids_rc_map_release(&cm->names);
	ids_rc_map_release(&cm->ids);
	if (cm->skip)
		memset(cm->skip, 0, cm->c->nw);
}

/* A record of type differs from the snapshot: freeze what it names. */
static int
touched(struct commit *cm, int type, const char *key, const char *val, size_t len)
{
	char name[IDS_MBNAME_MAX + 1];
	struct ids_mbentry e;
	const struct rc_rec *r;
	int rr;

	if (type != RAW_N)
		return freeze(cm, &cm->ids, key);
	if (dbname_internal(key, name) < 0)
		return 0;
	if ((rr = freeze(cm, &cm->names, name)) < 0)
		return rr;
	if ((r = snap_n(cm->c, name)) != NULL && (rr = freeze(cm, &cm->ids, r->e.uniqueid)) < 0)
		return rr;
	if (val == NULL)
		return 0;
	ids_mbentry_init(&e);
	if (ids_mbentry_decode_n(&e, name, val, len) == 0)
		rr = freeze(cm, &cm->ids, e.uniqueid);
	ids_mbentry_release(&e);
	return rr;
}

struct rawcmp {
	struct commit *cm;
	int type;
	size_t j;	/* the next snapshot key */
};

static int
raw_cmp(const char *id, const char *val, size_t len, void *rock)
{
	struct rawcmp *rc = rock;
	const struct rc_raw *rw = &rc->cm->c->snap.raw[rc->type];
	int r;

	while (rc->j < rw->n && strcmp(rw->keys[rc->j], id) < 0)
		if ((r = touched(rc->cm, rc->type, rw->keys[rc->j++], NULL, 0)) < 0)
			return r;
	if (rc->j < rw->n && strcmp(rw->keys[rc->j], id) == 0) {
		if (rw->hash[rc->j++] == ids_rc_hash(val, len) && rc->type != RAW_X)
			return 0;
	}
	return touched(rc->cm, rc->type, id, val, len);
}

static int
detect_changes(struct commit *cm)
{
	struct rawcmp rc = { cm, 0, 0 };
	const struct rc_raw *rw;
	int r;

	for (rc.type = 0; rc.type < 3; rc.type++) {
		rc.j = 0;
		if ((r = ids_txn_foreach_raw(cm->txn, raw_types[rc.type], raw_cmp, &rc)) < 0)
			return r;
		rw = &cm->c->snap.raw[rc.type];
		while (rc.j < rw->n)
			if ((r = touched(cm, rc.type, rw->keys[rc.j++], NULL, 0)) < 0)
				return r;
	}
	return 0;
}

/* The live record now holding w's id under another, frozen name. */
static int
id_held_frozen(struct commit *cm, const struct rc_want *w)
{
	struct ids_mbentry e;
	int held;

	ids_mbentry_init(&e);
	held = ids_txn_lookup_id(cm->txn, w->e.uniqueid, &e) == 0 && e.name != NULL &&
	    strcmp(e.name, w->e.name) != 0 && ids_rc_map_get(&cm->names, e.name) != RC_NONE;
	ids_mbentry_release(&e);
	return held;
}

/* Leaves out every want sharing a name or id with a frozen record, to a fixpoint. */
static int
propagate(struct commit *cm)
{
	struct rc_ctx *c = cm->c;
	size_t k;
	int r;

	while (cm->names.n + cm->ids.n > 0 && cm->changed) {
		cm->changed = 0;
		for (k = 0; k < c->nw; k++) {
			struct rc_want *w = &c->w[k];

			if (w->put != 1 || cm->skip[k] ||
			    (ids_rc_map_get(&cm->names, w->e.name) == RC_NONE &&
			    ids_rc_map_get(&cm->ids, w->e.uniqueid) == RC_NONE &&
			    (want_tomb(w) || !id_held_frozen(cm, w))))
				continue;
			cm->skip[k] = 1;
			if ((r = freeze(cm, &cm->names, w->e.name)) < 0 ||
			    (r = freeze(cm, &cm->ids, w->e.uniqueid)) < 0)
				return r;
		}
	}
	return 0;
}

static int
frozen(const struct commit *cm, const char *name, const char *id)
{
	return (name && ids_rc_map_get(&cm->names, name) != RC_NONE) ||
	    (id && ids_rc_map_get(&cm->ids, id) != RC_NONE);
}

/* Removes the records that go or change (a put then writes them anew). */
static int
apply_deletes(struct commit *cm)
{
	struct rc_ctx *c = cm->c;
	size_t k, x;
	int r;

	for (k = 0; k < c->snap.nn; k++) {
		const struct rc_rec *s = &c->snap.n[k];

		x = ids_rc_map_get(&c->wname, s->e.name);
		if (s->kept || (x != RC_NONE && (c->w[x].put != 1 || cm->skip[x])) ||
		    frozen(cm, s->e.name, s->e.uniqueid))
			continue;
		if ((r = ids_txn_delete_name(cm->txn, s->e.name)) < 0 && r != IDS_ENOTFOUND)
			return r;
	}
	for (k = 0; k < c->snap.ni; k++) {
		const struct rc_rec *s = &c->snap.i[k];

		if (s->kept || ids_rc_map_get(&c->wid, s->e.uniqueid) != RC_NONE ||
		    frozen(cm, NULL, s->e.uniqueid))
			continue;
		if ((r = ids_txn_delete_id(cm->txn, s->e.uniqueid)) < 0 && r != IDS_ENOTFOUND)
			return r;
	}
	return 0;
}

/* Tombstones first: a live put then finds its old name no longer live. */
static int
apply_puts(struct commit *cm)
{
	struct rc_ctx *c = cm->c;
	size_t k;
	int pass, r;

	for (pass = 0; pass < 2; pass++) {
		for (k = 0; k < c->nw; k++) {
			struct rc_want *w = &c->w[k];

			if (w->put != 1 || cm->skip[k] || want_tomb(w) != (pass == 0))
				continue;
			r = ids_txn_put(cm->txn, &w->e);
			if (r == IDS_EEXIST || r == IDS_EDUPID)
				cm->skip[k] = 1;
			else if (r < 0)
				return ids_error(r, "%s: %s", w->e.name, ids_errmsg(r));
		}
	}
	return 0;
}

static int
apply_txn(struct ids_txn *txn, void *rock)
{
	struct commit *cm = rock;
	int r;

	commit_reset(cm);
	cm->txn = txn;
	if ((r = detect_changes(cm)) < 0 || (r = propagate(cm)) < 0 ||
	    (r = apply_deletes(cm)) < 0)
		return r;
	return apply_puts(cm);
}

int
ids_rc_commit(struct rc_ctx *c)
{
	struct commit cm;
	size_t k;
	int r;

	memset(&cm, 0, sizeof(cm));
	cm.c = c;
	if ((cm.skip = calloc(c->nw + 1, 1)) == NULL)
		return -ENOMEM;
	if ((r = IDS_FAILPOINT("reconstruct.commit")) < 0)
		r = ids_error(r, "%s: commit: %s", ids_mboxlist_path(c->mbl), strerror(-r));
	else
		r = ids_mboxlist_write(c->mbl, apply_txn, &cm);
	for (k = 0; r == 0 && k < c->nw; k++)
		if (cm.skip[k])
			ids_rc_failed(c, "changed-meanwhile", NULL, c->w[k].e.name, IDS_EBUSY,
			    "changed while reconstruct ran: left as it is; run it again");
	commit_reset(&cm);
	free(cm.own);
	free(cm.skip);
	return r;
}
