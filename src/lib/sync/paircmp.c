/*
 * paircmp.c - the pair audit over the wire (repair.h,
 * ids_sync_audit_remote): spool_audit --compare and --repair-from with
 * a peer command instead of the other spool's configuration (seeds 003
 * b, 004).  The local spool is audited as always (ids_audit_run); then
 * each local folder in scope is compared with the peer's folder of the
 * same uniqueid, as GET STATE %(UNIQUEID u RECORD 1 VERIFY 1) reports
 * it: name, UIDVALIDITY, UIDNEXT, EXISTS and UNSEEN (counted from the
 * records, as the index header counts them), the live uids, the flags,
 * GUID and size of each, the uids whose files the peer finds missing or
 * damaged (there-file, from its MISSING: the peer reads its own files,
 * none travels) and last what replication calls MISSING, our live GUIDs
 * the peer has no intact file of.  With repair, the files missing or
 * damaged here are fetched with GET FETCHGUID and put back.
 *
 * Findings are those of the local comparison (audit.h), expected the
 * value here, actual the value there; they carry no path there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "audit.h"
#include "buf.h"
#include "csync.h"
#include "dlist.h"
#include "error.h"
#include "index.h"
#include "lock.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "replica_int.h"
#include "repair.h"
#include "sync.h"

struct held {
	enum ids_audit_kind kind;
	char *folder, *uniqueid, *path, *expected, *actual;
	uint32_t uid;
};

struct rrun {
	struct ids_mboxlist *mbl;
	struct ids_sync_wire *w;
	const struct ids_audit_opts *o;
	const char *userid;
	ids_audit_fn fn;
	void *rock;
	struct ids_audit_stats st;
	unsigned long unhealed;		/* findings reported that are not healed */
	struct held *held;
	size_t nheld, aheld;
	int oom;
};

static const char *
kv_str(const struct ids_dlist *kv, const char *key)
{
	return kv != NULL && kv->type == IDS_DL_KVLIST ? ids_dlist_cstr(ids_dlist_get(kv, key)) :
	    NULL;
}

static char *
dup_s(const char *s, int *oom)
{
	char *d = s != NULL ? strdup(s) : NULL;

	if (s != NULL && d == NULL)
		*oom = 1;
	return d;
}

static int
emit(struct rrun *rr, const struct ids_audit_finding *f)
{
	rr->st.findings++;
	if (f->repair != IDS_AUDIT_REPAIR_HEALED)
		rr->unhealed++;
	return rr->fn(f, rr->rock);
}

/* Phase 1: the local audit's findings, repairable ones held with repair. */
static int
pass(const struct ids_audit_finding *f, void *rock)
{
	struct rrun *rr = rock;
	struct held *h;

	if (!rr->o->repair || f->uid == 0 || f->folder == NULL || f->uniqueid == NULL ||
	    (f->kind != IDS_AUDIT_FILE_MISSING && f->kind != IDS_AUDIT_FILE_SIZE &&
	    f->kind != IDS_AUDIT_FILE_GUID))
		return emit(rr, f);
	if (rr->nheld == rr->aheld) {
		size_t a = rr->aheld ? 2 * rr->aheld : 16;

		if ((h = realloc(rr->held, a * sizeof(*h))) == NULL)
			return -ENOMEM;
		rr->held = h;
		rr->aheld = a;
	}
	h = &rr->held[rr->nheld++];
	h->kind = f->kind;
	h->uid = f->uid;
	h->folder = dup_s(f->folder, &rr->oom);
	h->uniqueid = dup_s(f->uniqueid, &rr->oom);
	h->path = dup_s(f->path, &rr->oom);
	h->expected = dup_s(f->expected, &rr->oom);
	h->actual = dup_s(f->actual, &rr->oom);
	return rr->oom ? -ENOMEM : 0;
}

/* The GUID and size of the record uid of folder name, read now. */
static int
record_guid(struct rrun *rr, const char *name, uint32_t uid, char hex[IDS_GUID_HEXLEN + 1])
{
	struct ids_mailbox *mb;
	struct ids_index *idx;
	struct ids_index_record rec;
	uint32_t i;
	int r, found = 0;

	if ((r = ids_mailbox_open(rr->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		return r;
	if ((r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx)) == 0) {
		for (i = 0; i < ids_index_header(idx)->num_records && !found; i++)
			if (ids_index_record(idx, i, &rec) == 0 && rec.uid == uid &&
			    !ids_guid_is_null(rec.guid)) {
				ids_guid_hex(rec.guid, hex);
				found = 1;
			}
		ids_index_free(idx);
	}
	ids_mailbox_close(mb);
	if (r == 0 && !found)
		r = ids_error(IDS_ENOTFOUND, "no record of uid %u with a GUID now", uid);
	return r;
}

/* Phase 2: each held finding healed from the peer, then reported. */
static int
repair_held(struct rrun *rr)
{
	struct ids_audit_finding f;
	char hex[IDS_GUID_HEXLEN + 1], staged[256], detail[512];
	size_t i, placed;
	int r = 0, got;

	for (i = 0; i < rr->nheld && r >= 0; i++) {
		struct held *h = &rr->held[i];

		memset(&f, 0, sizeof(f));
		f.kind = h->kind;
		f.folder = h->folder;
		f.uniqueid = h->uniqueid;
		f.uid = h->uid;
		f.path = h->path;
		f.expected = h->expected;
		f.actual = h->actual;
		f.repair = IDS_AUDIT_REPAIR_FAILED;
		f.repair_detail = detail;
		placed = 0;
		if ((got = record_guid(rr, h->folder, h->uid, hex)) < 0) {
			snprintf(detail, sizeof(detail), "%s", ids_errmsg(got));
		} else if ((got = ids_sync_fetchguid(rr->w, hex, h->uniqueid, staged,
		    sizeof(staged))) < 0) {
			return got;
		} else if (got == 0) {
			snprintf(detail, sizeof(detail), "the peer sent no intact copy of GUID %s", hex);
		} else if (rr->o->dry_run) {
			f.repair = IDS_AUDIT_REPAIR_WOULD;
			snprintf(detail, sizeof(detail), "the peer (GUID %s)", hex);
		} else if ((got = ids_repl_repair_place(rr->w->s, h->uniqueid, h->folder, hex,
		    rr->w->s->stagefd, staged, NULL, &placed)) < 0) {
			snprintf(detail, sizeof(detail), "%s", ids_errmsg(got));
		} else {
			/* placed 0: intact when checked again under the lock */
			f.repair = IDS_AUDIT_REPAIR_HEALED;
			snprintf(detail, sizeof(detail), placed ? "the peer (GUID %s)" :
			    "intact when checked again under the lock", hex);
		}
		if (got > 0)
			unlinkat(rr->w->s->stagefd, staged, 0);
		if (f.repair == IDS_AUDIT_REPAIR_HEALED)
			rr->st.healed++;
		else
			rr->st.unhealed++;
		r = emit(rr, &f);
	}
	return r;
}

/* --- the comparison ------------------------------------------------------- */

struct rec {
	uint32_t uid;
	int live, seen;
	const char *guid;
	uint64_t size;
	char *flags;	/* as the local comparison spells them */
};

static int
flag_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* System flags in IMAP's order, then user flags sorted (auditcmp.c's spelling). */
static char *
flags_text(const struct ids_dlist *flags, int *live, int *seen)
{
	static const char *const sys[] = { "\\Answered", "\\Flagged", "\\Deleted",
	    "\\Draft", "\\Seen" };
	const struct ids_dlist *x;
	const char **user = NULL;
	struct ids_buf b = IDS_BUF_INIT;
	size_t i, n = 0, a = 0;
	char *out;

	*live = 1;
	*seen = 0;
	for (x = flags ? flags->head : NULL; x != NULL; x = x->next) {
		const char *v = x->data;

		if (v == NULL)
			continue;
		if (strcasecmp(v, "\\Expunged") == 0)
			*live = 0;
		if (strcasecmp(v, "\\Seen") == 0)
			*seen = 1;
		if (v[0] == '\\')
			continue;
		if (n == a) {
			const char **nu = realloc(user, (a ? 2 * a : 8) * sizeof(*nu));

			if (nu == NULL) {
				free(user);
				return NULL;
			}
			user = nu;
			a = a ? 2 * a : 8;
		}
		user[n++] = v;
	}
	for (i = 0; i < 5; i++)
		for (x = flags ? flags->head : NULL; x != NULL; x = x->next)
			if (x->data != NULL && strcasecmp(x->data, sys[i]) == 0) {
				ids_buf_printf(&b, "%s%s", b.len ? " " : "", sys[i]);
				break;
			}
	if (n > 1)
		qsort(user, n, sizeof(*user), flag_cmp);
	for (i = 0; i < n; i++)
		ids_buf_printf(&b, "%s%s", b.len ? " " : "", user[i]);
	free(user);
	out = ids_buf_oom(&b) ? NULL : strdup(b.len ? b.s : "none");
	ids_buf_release(&b);
	return out;
}

static void
recs_free(struct rec *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].flags);
	free(v);
}

static int
rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* The RECORD list of kv, sorted by uid; exists and unseen counted. */
static int
recs_of(const struct ids_dlist *kv, struct rec **vp, size_t *np, uint32_t *exists,
    uint32_t *unseen)
{
	const struct ids_dlist *recs = ids_dlist_get(kv, "RECORD"), *r;
	struct rec *v;
	size_t n = 0, max = 0;

	*exists = *unseen = 0;
	for (r = recs ? recs->head : NULL; r != NULL; r = r->next)
		max++;
	if ((v = calloc(max + 1, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (r = recs ? recs->head : NULL; r != NULL; r = r->next) {
		if (ids_dlist_get_u32(r, "UID", &v[n].uid) < 0)
			continue;
		ids_dlist_get_u64(r, "SIZE", &v[n].size);
		v[n].guid = kv_str(r, "GUID");
		if ((v[n].flags = flags_text(ids_dlist_get(r, "FLAGS"), &v[n].live,
		    &v[n].seen)) == NULL) {
			recs_free(v, n);
			return -ENOMEM;
		}
		*exists += v[n].live;
		*unseen += v[n].live && !v[n].seen;
		n++;
	}
	qsort(v, n, sizeof(*v), rec_cmp);
	*vp = v;
	*np = n;
	return 0;
}

static int
in_list(const struct ids_dlist *l, const char *s)
{
	const struct ids_dlist *x;

	for (x = l && l->type == IDS_DL_LIST ? l->head : NULL; s != NULL && x != NULL; x = x->next)
		if (ids_dlist_cstr(x) != NULL && strcmp(ids_dlist_cstr(x), s) == 0)
			return 1;
	return 0;
}

struct fctx {
	struct rrun *rr;
	const char *name, *uniqueid, *other;
};

static int
cmp_emit(struct fctx *c, enum ids_audit_kind kind, uint32_t uid, const char *expected,
    const char *actual)
{
	struct ids_audit_finding f;

	memset(&f, 0, sizeof(f));
	f.kind = kind;
	f.folder = c->name;
	f.uniqueid = c->uniqueid;
	f.other_folder = c->other;
	f.uid = uid;
	f.expected = expected;
	f.actual = actual;
	return emit(c->rr, &f);
}

static int
cmp_num(struct fctx *c, enum ids_audit_kind kind, uint64_t a, uint64_t b)
{
	char x[24], y[24];

	if (a == b)
		return 0;
	snprintf(x, sizeof(x), "%llu", (unsigned long long)a);
	snprintf(y, sizeof(y), "%llu", (unsigned long long)b);
	return cmp_emit(c, kind, 0, x, y);
}

static int
cmp_uid(struct fctx *c, const struct rec *a, const struct rec *b,
    const struct ids_dlist *missing)
{
	char x[24], y[24];
	int r = 0;

	if (a == NULL || b == NULL || a->live != b->live) {
		if ((a && a->live) || (b && b->live))
			r = cmp_emit(c, IDS_AUDIT_CMP_UID, a ? a->uid : b->uid,
			    a ? (a->live ? "live" : "expunged") : "absent",
			    b ? (b->live ? "live" : "expunged") : "absent");
	} else if (a->live) {
		if (strcmp(a->flags, b->flags) != 0)
			r = cmp_emit(c, IDS_AUDIT_CMP_FLAGS, a->uid, a->flags, b->flags);
		if (r >= 0 && strcmp(a->guid ? a->guid : "", b->guid ? b->guid : "") != 0)
			r = cmp_emit(c, IDS_AUDIT_CMP_GUID, a->uid, a->guid ? a->guid : "none",
			    b->guid ? b->guid : "none");
		if (r >= 0 && a->size != b->size) {
			snprintf(x, sizeof(x), "%llu", (unsigned long long)a->size);
			snprintf(y, sizeof(y), "%llu", (unsigned long long)b->size);
			r = cmp_emit(c, IDS_AUDIT_CMP_SIZE, a->uid, x, y);
		}
	}
	/* the peer's own check of its file of this uid */
	if (r >= 0 && b != NULL && b->live && in_list(missing, b->guid))
		r = cmp_emit(c, IDS_AUDIT_THERE_FILE, b->uid, "an intact file",
		    "missing or damaged (the peer's MISSING)");
	return r;
}

/* MISSING: our live GUIDs the peer has no intact file of. */
static int
cmp_missing(struct fctx *c, const struct rec *a, size_t na, const struct rec *b, size_t nb,
    const struct ids_dlist *missing)
{
	struct ids_audit_finding f;
	const char **g = calloc(na + 1, sizeof(*g));
	char count[24];
	size_t i, j, k = 0;
	int r = 0, have;

	if (g == NULL)
		return -ENOMEM;
	for (i = 0; i < na; i++) {
		if (!a[i].live || a[i].guid == NULL || strspn(a[i].guid, "0") == strlen(a[i].guid))
			continue;
		for (j = 0, have = 0; j < nb && !have; j++)
			have = b[j].guid != NULL && strcmp(b[j].guid, a[i].guid) == 0;
		if (have && !in_list(missing, a[i].guid))
			continue;
		for (j = 0; j < k && strcmp(g[j], a[i].guid) != 0; j++)
			;
		if (j == k)
			g[k++] = a[i].guid;
	}
	if (k > 0) {
		memset(&f, 0, sizeof(f));
		snprintf(count, sizeof(count), "%zu", k);
		f.kind = IDS_AUDIT_MISSING;
		f.folder = c->name;
		f.uniqueid = c->uniqueid;
		f.other_folder = c->other;
		f.guids = g;
		f.nguids = k;
		r = emit(c->rr, &f);
	}
	free(g);
	return r;
}

static int
cmp_folder(struct rrun *rr, const char *name, const char *uniqueid,
    const struct ids_dlist *mine, const struct ids_dlist *theirs)
{
	struct fctx c = { rr, name, uniqueid, kv_str(theirs, "MBOXNAME") };
	const struct ids_dlist *missing = ids_dlist_get(theirs, "MISSING");
	struct rec *a = NULL, *b = NULL;
	size_t na = 0, nb = 0, i = 0, j = 0;
	uint32_t ea, ua, eb, ub, x = 0, y = 0;
	uint64_t la = 0, lb = 0;
	int r;

	if (c.other != NULL && strcmp(name, c.other) != 0 &&
	    (r = cmp_emit(&c, IDS_AUDIT_NAME, 0, name, c.other)) < 0)
		return r;
	if ((r = recs_of(mine, &a, &na, &ea, &ua)) < 0 ||
	    (r = recs_of(theirs, &b, &nb, &eb, &ub)) < 0)
		goto out;
	ids_dlist_get_u32(mine, "UIDVALIDITY", &x);
	ids_dlist_get_u32(theirs, "UIDVALIDITY", &y);
	ids_dlist_get_u64(mine, "LAST_UID", &la);
	ids_dlist_get_u64(theirs, "LAST_UID", &lb);
	if ((r = cmp_num(&c, IDS_AUDIT_CMP_UIDVALIDITY, x, y)) < 0 ||
	    (r = cmp_num(&c, IDS_AUDIT_CMP_UIDNEXT, la + 1, lb + 1)) < 0 ||
	    (r = cmp_num(&c, IDS_AUDIT_CMP_EXISTS, ea, eb)) < 0 ||
	    (r = cmp_num(&c, IDS_AUDIT_CMP_UNSEEN, ua, ub)) < 0)
		goto out;
	while (r >= 0 && (i < na || j < nb)) {
		if (j == nb || (i < na && a[i].uid < b[j].uid))
			r = cmp_uid(&c, &a[i++], NULL, missing);
		else if (i == na || b[j].uid < a[i].uid)
			r = cmp_uid(&c, NULL, &b[j++], missing);
		else {
			r = cmp_uid(&c, &a[i], &b[j], missing);
			i++;
			j++;
		}
	}
	if (r >= 0)
		r = cmp_missing(&c, a, na, b, nb, missing);
out:
	recs_free(a, na);
	recs_free(b, nb);
	return r;
}

/* GET TOMBSTONE: 1 when the peer deleted uniqueid (name its last name here). */
static int
peer_deleted(struct rrun *rr, const char *uniqueid, const char *name)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	struct ids_csync_line *l, **v;
	size_t n, i;
	int r, status, damaged, found = 0;

	if (kv == NULL || ids_dlist_add_atom(kv, "UNIQUEID", uniqueid) < 0 ||
	    ids_dlist_add_atom(kv, "MBOXNAME", name) < 0 ||
	    ids_csync_line_new(IDS_CSYNC_COMMAND, "GET", &l) < 0) {
		ids_dlist_free(kv);
		return -ENOMEM;
	}
	if (ids_dlist_add_atom(l->args, NULL, "TOMBSTONE") < 0 ||
	    ids_dlist_add_child(l->args, NULL, kv) < 0) {
		ids_csync_line_free(l);
		return -ENOMEM;
	}
	if ((r = ids_sync_exchange(rr->w, l, &v, &n, &status, &damaged)) < 0)
		return r;
	for (i = 0; status == IDS_CSYNC_OK && i < n; i++)
		found |= strcmp(v[i]->word, "TOMBSTONE") == 0;
	ids_sync_lines_free(v, n);
	return found;
}

/* One local folder against the peer's. */
static int
compare_one(struct rrun *rr, const char *name, const char *uniqueid)
{
	struct ids_mailbox *mb;
	struct ids_dlist *mine = NULL, *theirs = NULL;
	struct fctx c = { rr, name, uniqueid, NULL };
	int r;

	if ((r = ids_mailbox_open(rr->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		return r == IDS_ENOTFOUND ? 0 : r;	/* gone meanwhile */
	r = ids_sync_mailbox_state(mb, IDS_SYNC_RECORDS, &mine);
	ids_mailbox_close(mb);
	if (r < 0)
		return 0;	/* the local audit reported why */
	r = ids_sync_get_state(rr->w, uniqueid, IDS_SYNC_REPAIR_VERIFY, 1, &theirs);
	if (r == IDS_EINVAL && rr->w->no_state) {
		ids_dlist_free(mine);
		return ids_error(IDS_EINVAL, "the peer does not answer GET STATE: not idspool, "
		    "or an older one");
	}
	if (r == IDS_EINVAL) {
		r = cmp_emit(&c, IDS_AUDIT_THERE_FILE, 0, "the folder's state", ids_errmsg(r));
	} else if (r == 0 && theirs == NULL) {
		if ((r = peer_deleted(rr, uniqueid, name)) >= 0)
			r = cmp_emit(&c, IDS_AUDIT_ONLY_HERE, 0, name, r ? "deleted" : "absent");
	} else if (r == 0) {
		r = cmp_folder(rr, name, uniqueid, mine, theirs);
	}
	ids_dlist_free(mine);
	ids_dlist_free(theirs);
	return r;
}

/* The local live folders in scope, in mailboxes.db order. */
struct lf {
	struct ids_repl_names names, ids;
	const char *subtree;
	int oom;
};

static int
lf_add(const struct ids_mbentry *e, void *rock)
{
	struct lf *l = rock;

	if (ids_mbentry_is_tombstone(e) || ids_mbtype_has(e->mbtype, IDS_MBFLAG_REMOTE) ||
	    ids_mbtype_has(e->mbtype, IDS_MBFLAG_INTERMEDIATE) ||
	    ids_mbtype_has(e->mbtype, IDS_MBFLAG_RESERVED))
		return 0;
	if (ids_repl_names_add(&l->names, e->name) < 0 || ids_repl_names_add(&l->ids, e->uniqueid) < 0)
		return -ENOMEM;
	return 0;
}

static int
lf_subtree(struct ids_txn *txn, void *rock)
{
	struct lf *l = rock;
	int r = ids_txn_foreach(txn, l->subtree, lf_add, l);

	return r == IDS_ENOTFOUND ? 0 : r;
}

static int
local_folders(struct rrun *rr, struct lf *l)
{
	struct ids_scanpos pos;
	struct ids_mbentry e;
	size_t i;
	int r = 0;

	if (rr->o->names != NULL) {
		for (i = 0; i < rr->o->nnames && r >= 0; i++) {
			ids_mbentry_init(&e);
			if (ids_mboxlist_lookup(rr->mbl, rr->o->names[i], &e) == 0)
				r = lf_add(&e, l);
			ids_mbentry_release(&e);
		}
		return r;
	}
	if (rr->o->subtree != NULL) {
		l->subtree = rr->o->subtree;
		return ids_mboxlist_read(rr->mbl, lf_subtree, l);
	}
	memset(&pos, 0, sizeof(pos));
	while ((r = ids_mboxlist_scan(rr->mbl, &pos, 0, 256, lf_add, l)) > 0)
		;
	return r;
}

/* 1 when name is subtree or below it. */
static int
below(const char *name, const char *subtree)
{
	size_t n = strlen(subtree);

	return strncmp(name, subtree, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

/* The peer's folders (its users' ones) that are live nowhere here. */
static int
only_there(struct rrun *rr)
{
	struct ids_dlist **v = NULL;
	struct ids_mbentry e;
	struct fctx c = { rr, NULL, NULL, NULL };
	size_t n = 0, i;
	int r, live, got;

	if ((r = ids_sync_peer_folders(rr->w, &v, &n)) < 0)
		return r;
	for (i = 0; i < n && r >= 0; i++) {
		const char *id = kv_str(v[i], "UNIQUEID"), *name = kv_str(v[i], "MBOXNAME");

		if (rr->o->subtree != NULL && !below(name, rr->o->subtree))
			continue;
		ids_mbentry_init(&e);
		got = ids_mboxlist_lookup_id(rr->mbl, id, &e);
		live = got == 0 && !ids_mbentry_is_tombstone(&e);
		ids_mbentry_release(&e);
		if (live)
			continue;
		c.uniqueid = id;
		c.other = name;
		r = cmp_emit(&c, IDS_AUDIT_ONLY_THERE, 0, got == 0 ? "deleted" : "absent", name);
	}
	for (i = 0; i < n; i++)
		ids_dlist_free(v[i]);
	free(v);
	return r;
}

int
ids_sync_audit_remote(struct ids_mboxlist *mbl, struct ids_sync_wire *w,
    const struct ids_audit_opts *o, ids_audit_fn fn, void *rock, struct ids_audit_stats *st)
{
	struct ids_audit_opts lo = *o;
	struct ids_audit_stats ls;
	struct rrun rr;
	struct lf l;
	size_t i;
	int r;

	memset(&rr, 0, sizeof(rr));
	memset(&l, 0, sizeof(l));
	rr.mbl = mbl;
	rr.w = w;
	rr.o = o;
	rr.fn = fn;
	rr.rock = rock;
	lo.other = NULL;
	lo.compare = lo.repair = lo.md5 = 0;
	r = ids_audit_run(mbl, &lo, pass, &rr, &ls);
	rr.st.folders = ls.folders;
	rr.st.messages = ls.messages;
	rr.st.bytes = ls.bytes;
	rr.st.archived = ls.archived;
	if (r > 0)
		r = 0;	/* the findings were counted by emit() */
	if (r == 0 && o->repair)
		r = repair_held(&rr);
	if (r == 0 && o->compare)
		r = local_folders(&rr, &l);
	for (i = 0; r >= 0 && o->compare && i < l.names.n; i++)
		r = compare_one(&rr, l.names.v[i], l.ids.v[i]);
	if (r >= 0 && o->compare && o->names == NULL)
		r = only_there(&rr);
	ids_repl_names_free(&l.names);
	ids_repl_names_free(&l.ids);
	for (i = 0; i < rr.nheld; i++) {
		free(rr.held[i].folder);
		free(rr.held[i].uniqueid);
		free(rr.held[i].path);
		free(rr.held[i].expected);
		free(rr.held[i].actual);
	}
	free(rr.held);
	if (st != NULL)
		*st = rr.st;
	if (r < 0)
		return r;
	return rr.unhealed > INT32_MAX ? INT32_MAX : (int)rr.unhealed;
}
