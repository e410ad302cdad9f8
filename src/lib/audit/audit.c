/*
 * audit.c - the run of an audit (audit.h): folders are read from
 * mailboxes.db in short read transactions, checked against the
 * database in batches, handed to the worker pool, and their findings
 * reported in mailboxes.db order as they complete, with a bounded
 * number of folders in flight.  After the folders come the checks that
 * need all of them: the I records, the folders only the other copy has,
 * the spool walk for directories no live folder owns, and the repair.
 *
 * Everything that touches mailboxes.db runs in the caller's thread;
 * the workers see only files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "auditpriv.h"
#include "buf.h"
#include "error.h"
#include "fsutil.h"
#include "intent.h"
#include "lock.h"
#include "mboxlist.h"

#define BATCH		256	/* folders read from mailboxes.db at a time */
#define INFLIGHT	128	/* folders in flight per job */

static const char *const kind_names[IDS_AUDIT_NKINDS] = {
	[IDS_AUDIT_FILE_MISSING] = "file-missing",
	[IDS_AUDIT_FILE_SIZE] = "file-size",
	[IDS_AUDIT_FILE_GUID] = "file-guid",
	[IDS_AUDIT_FILE_UNSAFE] = "file-unsafe",
	[IDS_AUDIT_FILE_ERROR] = "file-error",
	[IDS_AUDIT_ORPHAN] = "orphan",
	[IDS_AUDIT_INDEX] = "index",
	[IDS_AUDIT_RECORD] = "record",
	[IDS_AUDIT_INDEX_COUNTS] = "index-counts",
	[IDS_AUDIT_UIDVALIDITY] = "uidvalidity",
	[IDS_AUDIT_HEADER] = "header",
	[IDS_AUDIT_HEADER_ID] = "header-uniqueid",
	[IDS_AUDIT_HEADER_NAME] = "header-name",
	[IDS_AUDIT_HEADER_CRC] = "header-crc",
	[IDS_AUDIT_CACHE] = "cache",
	[IDS_AUDIT_FOLDER_MISSING] = "folder-missing",
	[IDS_AUDIT_LAYOUT_COPY] = "layout-copy",
	[IDS_AUDIT_STRAY] = "stray",
	[IDS_AUDIT_DUPID] = "duplicate-uniqueid",
	[IDS_AUDIT_DB] = "mailboxes-db",
	[IDS_AUDIT_ONLY_HERE] = "only-here",
	[IDS_AUDIT_ONLY_THERE] = "only-there",
	[IDS_AUDIT_NAME] = "name",
	[IDS_AUDIT_CMP_UIDVALIDITY] = "cmp-uidvalidity",
	[IDS_AUDIT_CMP_UIDNEXT] = "cmp-uidnext",
	[IDS_AUDIT_CMP_EXISTS] = "cmp-exists",
	[IDS_AUDIT_CMP_UNSEEN] = "cmp-unseen",
	[IDS_AUDIT_CMP_UID] = "cmp-uid",
	[IDS_AUDIT_CMP_FLAGS] = "cmp-flags",
	[IDS_AUDIT_CMP_GUID] = "cmp-guid",
	[IDS_AUDIT_CMP_SIZE] = "cmp-size",
	[IDS_AUDIT_CMP_MD5] = "cmp-md5",
	[IDS_AUDIT_THERE_FILE] = "there-file",
	[IDS_AUDIT_MISSING] = "missing",
};

const char *
ids_audit_kind_name(enum ids_audit_kind kind)
{
	return (unsigned)kind < IDS_AUDIT_NKINDS ? kind_names[kind] : NULL;
}

void
ids_audit_opts_init(struct ids_audit_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->lock_timeout_ms = IDS_LOCK_TIMEOUT_MS;
}

/* --- findings -------------------------------------------------------- */

static char *
dup_or_null(const char *s, int *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = 1;
	return d;
}

struct afinding *
ids_af_add(struct aflist *l, enum ids_audit_kind kind, uint32_t uid, const char *path,
    const char *expected, const char *actual)
{
	struct afinding *f;

	if (IDS_ALLOC_GROW(l->v, l->n + 1, l->alloc) < 0) {
		l->oom = 1;
		return NULL;
	}
	f = &l->v[l->n];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->uid = uid;
	f->section = l->section;
	f->seq = l->n++;
	f->path = dup_or_null(path, &l->oom);
	f->expected = dup_or_null(expected, &l->oom);
	f->actual = dup_or_null(actual, &l->oom);
	return f;
}

struct afinding *
ids_af_addf(struct aflist *l, enum ids_audit_kind kind, uint32_t uid, const char *path,
    const char *expected, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);	/* a cut detail is still a detail */
	va_end(ap);
	return ids_af_add(l, kind, uid, path, expected, buf);
}

void
ids_af_release(struct afinding *f)
{
	size_t i;

	free(f->folder);
	free(f->uniqueid);
	free(f->path);
	free(f->expected);
	free(f->actual);
	for (i = 0; i < f->nguids; i++)
		free(f->guids[i]);
	free(f->guids);
	free(f->repair_detail);
	memset(f, 0, sizeof(*f));
}

void
ids_aflist_release(struct aflist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		ids_af_release(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
af_cmp(const void *a, const void *b)
{
	const struct afinding *x = a, *y = b;

	if (x->section != y->section)
		return x->section < y->section ? -1 : 1;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void
ids_aflist_sort(struct aflist *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), af_cmp);
}

/* --- paths and roots ------------------------------------------------- */

int
ids_abspath(char *buf, size_t size, const char *root, const char *rel, const char *file)
{
	int n = snprintf(buf, size, "%s%s%s%s%s", root, rel && *rel ? "/" : "",
	    rel ? rel : "", file ? "/" : "", file ? file : "");

	if (n < 0 || (size_t)n >= size)
		return ids_error(IDS_ETOOLONG, "path below %s too long", root);
	return n;
}

/* -1 for a root that is missing; -EMFILE or -ENFILE stop the audit. */
static int
root_open(const char *path, int *fdp)
{
	int r;

	*fdp = -1;
	if (path == NULL || (r = ids_opendir_abs(path, fdp)) == 0)
		return 0;
	*fdp = -1;
	if (r == -EMFILE || r == -ENFILE)
		return ids_error(r, "%s: %s; %s", path, ids_strerror(r), r == -EMFILE ?
		    "raise the limit of open files (ulimit -n) and audit again" :
		    "the system's table of open files is full (sysctl fs.file-max)");
	return 0;
}

/* Opens every partition root of cfg (data and meta); -1 where missing. */
static int
roots_open(const struct ids_config *cfg, int **rootfds, int **metarootfds)
{
	size_t i;
	int r = 0;

	*rootfds = malloc(cfg->npartitions * sizeof(int));
	*metarootfds = malloc(cfg->npartitions * sizeof(int));
	if (*rootfds == NULL || *metarootfds == NULL)
		return -ENOMEM;
	for (i = 0; i < cfg->npartitions; i++)
		(*rootfds)[i] = (*metarootfds)[i] = -1;
	/* A root not opened for want of a descriptor is not missing. */
	for (i = 0; i < cfg->npartitions && r == 0; i++) {
		const struct ids_partition *p = &cfg->partitions[i];

		if ((r = root_open(p->path, &(*rootfds)[i])) == 0)
			r = root_open(p->metapath, &(*metarootfds)[i]);
	}
	return r;
}

static void
roots_close(const struct ids_config *cfg, int *rootfds, int *metarootfds)
{
	size_t i;

	for (i = 0; rootfds && metarootfds && i < cfg->npartitions; i++) {
		if (rootfds[i] >= 0)
			close(rootfds[i]);
		if (metarootfds[i] >= 0)
			close(metarootfds[i]);
	}
	free(rootfds);
	free(metarootfds);
}

/* --- reporting ------------------------------------------------------- */

static int
emit_one(struct arun *run, const struct afinding *a, const char *folder,
    const char *uniqueid, const char *other_folder)
{
	struct ids_audit_finding f;
	int r;

	memset(&f, 0, sizeof(f));
	f.kind = a->kind;
	f.folder = a->folder ? a->folder : folder;
	f.uniqueid = a->uniqueid ? a->uniqueid : uniqueid;
	f.other_folder = other_folder;
	f.uid = a->uid;
	f.path = a->path;
	f.expected = a->expected;
	f.actual = a->actual;
	f.guids = (const char *const *)a->guids;
	f.nguids = a->nguids;
	f.repair = a->repair;
	f.repair_detail = a->repair_detail;
	run->st.findings++;
	if (a->repair != IDS_AUDIT_REPAIR_HEALED)
		run->unhealed++;
	if ((r = run->fn(&f, run->rock)) < 0)
		run->stop = r;
	return r < 0 ? r : 0;
}

int
ids_run_emit(struct arun *run, struct aflist *l, const char *folder,
    const char *uniqueid, const char *other_folder)
{
	struct afinding *h;
	size_t i;
	int r = 0;

	/*
	 * Out of descriptors: the folder's files were not read, which says
	 * nothing of them (unless a recheck under the lock read them after all).
	 */
	if (l->resource && l->n > 0)
		return ids_error(l->resource, "%s: %s; %s", folder ? folder : "audit",
		    ids_strerror(l->resource), l->resource == -EMFILE ?
		    "raise the limit of open files (ulimit -n) and audit again" :
		    "the system's table of open files is full (sysctl fs.file-max)");
	for (i = 0; i < l->n && r == 0; i++) {
		if (!run->o->repair || !l->v[i].repairable) {
			r = emit_one(run, &l->v[i], folder, uniqueid, other_folder);
			continue;
		}
		/* Held for the repair: it takes the finding over. */
		if ((h = ids_af_add(&run->held, l->v[i].kind, 0, NULL, NULL, NULL)) == NULL)
			return -ENOMEM;
		*h = l->v[i];
		h->seq = run->held.n - 1;
		if (h->folder == NULL)
			h->folder = dup_or_null(folder, &run->held.oom);
		if (h->uniqueid == NULL)
			h->uniqueid = dup_or_null(uniqueid, &run->held.oom);
		memset(&l->v[i], 0, sizeof(l->v[i]));
	}
	if (run->held.oom || l->oom)
		return -ENOMEM;
	return r;
}

/* A finding about no folder's own files: reported at once. */
static int
emit_now(struct arun *run, enum ids_audit_kind kind, const char *folder,
    const char *uniqueid, const char *other_folder, const char *expected,
    const char *actual)
{
	struct aflist l;
	int r;

	memset(&l, 0, sizeof(l));
	if (ids_af_add(&l, kind, 0, NULL, expected, actual) == NULL)
		return -ENOMEM;
	r = ids_run_emit(run, &l, folder, uniqueid, other_folder);
	ids_aflist_release(&l);
	return r;
}

/* --- folders from mailboxes.db --------------------------------------- */

struct batch {
	struct ids_mbentry *e;
	size_t n, alloc;
};

static void
batch_release(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		ids_mbentry_release(&b->e[i]);
	b->n = 0;
}

/* Takes a copy of e if it is a live folder with files on this server. */
static int
batch_add(const struct ids_mbentry *e, void *rock)
{
	struct batch *b = rock;
	int r;

	if (ids_mbentry_is_tombstone(e) || ids_mbtype_has(e->mbtype, IDS_MBFLAG_REMOTE) ||
	    ids_mbtype_has(e->mbtype, IDS_MBFLAG_INTERMEDIATE) ||
	    ids_mbtype_has(e->mbtype, IDS_MBFLAG_RESERVED))
		return 0;
	if (IDS_ALLOC_GROW(b->e, b->n + 1, b->alloc) < 0)
		return -ENOMEM;
	ids_mbentry_init(&b->e[b->n]);
	if ((r = ids_mbentry_copy(&b->e[b->n], e)) < 0) {
		ids_mbentry_release(&b->e[b->n]);
		return r;
	}
	b->n++;
	return 0;
}

/* Where the folders come from: all, one subtree, or a list of names. */
struct source {
	struct ids_mboxlist *mbl;
	const char *subtree;
	struct ids_scanpos pos;
	int done;
};

struct subtree_walk {
	struct batch *b;
	const char *subtree;
};

static int
subtree_txn(struct ids_txn *txn, void *rock)
{
	struct subtree_walk *w = rock;

	return ids_txn_foreach(txn, w->subtree, batch_add, w->b);
}

/* The next folders into b (empty: the walk is over). */
static int
source_next(struct source *src, struct batch *b)
{
	struct subtree_walk w = { b, src->subtree };
	int r;

	while (!src->done && b->n == 0) {
		if (src->subtree == NULL) {
			if ((r = ids_mboxlist_scan(src->mbl, &src->pos, 0, BATCH, batch_add, b)) < 0)
				return r;
			src->done = r == 0;
			continue;
		}
		r = ids_mboxlist_read(src->mbl, subtree_txn, &w);
		src->done = 1;
		if (r < 0 && r != IDS_ENOTFOUND)
			return r;
	}
	return 0;
}

/* The named folders, up to a batch at a time; unknown names are findings. */
static int
names_next(struct arun *run, size_t *next, struct batch *b)
{
	struct ids_mbentry e;
	const char *name;
	int r;

	while (*next < run->o->nnames && b->n < BATCH) {
		name = run->o->names[(*next)++];
		ids_mbentry_init(&e);
		r = ids_mboxlist_lookup(run->mbl, name, &e);
		if (r == 0 && !ids_mbentry_is_tombstone(&e))
			r = batch_add(&e, b);
		else if (r == 0 || r == IDS_ENOTFOUND)
			r = emit_now(run, IDS_AUDIT_DB, name, NULL, NULL, "a live mailbox",
			    "no such mailbox");
		ids_mbentry_release(&e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- checks against mailboxes.db, in the caller's thread ------------- */

struct fbatch {
	struct afolder **v;
	size_t n;
};

/* The I record must name this N record; a second live holder is a dupid. */
static void
db_check_one(struct ids_txn *txn, struct afolder *f)
{
	const struct ids_mbentry *e = &f->here.e;
	struct ids_mbentry ie, ne;
	struct ids_intent in;
	int r;

	ids_mbentry_init(&ie);
	ids_mbentry_init(&ne);
	if ((r = ids_txn_lookup_id(txn, e->uniqueid, &ie)) < 0) {
		ids_af_add(&f->f, IDS_AUDIT_DB, 0, NULL, "an I record for its uniqueid",
		    r == IDS_ENOTFOUND ? "none" : ids_errmsg(r));
	} else if (strcmp(ie.name, e->name) != 0) {
		if (ids_txn_lookup_name(txn, ie.name, &ne) == 0 &&
		    !ids_mbentry_is_tombstone(&ne) && strcmp(ne.uniqueid, e->uniqueid) == 0)
			ids_af_addf(&f->f, IDS_AUDIT_DUPID, 0, NULL, "one live mailbox",
			    "also held by live mailbox %s", ie.name);
		else
			ids_af_addf(&f->f, IDS_AUDIT_DB, 0, NULL, "the I record naming it",
			    "the I record names %s", ie.name);
	}
	ids_mbentry_release(&ie);
	ids_mbentry_release(&ne);
	ids_intent_init(&in);
	f->intent = ids_intent_get(txn, e->uniqueid, &in) == 0;
	ids_intent_release(&in);
}

static int
db_check_txn(struct ids_txn *txn, void *rock)
{
	struct fbatch *fb = rock;
	size_t i;

	for (i = 0; i < fb->n; i++)
		db_check_one(txn, fb->v[i]);
	return 0;
}

/* The same folder there: the live holder of its uniqueid. */
static int
other_txn(struct ids_txn *txn, void *rock)
{
	struct fbatch *fb = rock;
	struct afolder *f;
	size_t i;
	int r;

	for (i = 0; i < fb->n; i++) {
		f = fb->v[i];
		r = ids_txn_lookup_id(txn, f->here.e.uniqueid, &f->there.e);
		if (r == 0 && !ids_mbentry_is_tombstone(&f->there.e)) {
			f->has_there = 1;
			continue;
		}
		ids_mbentry_release(&f->there.e);
		ids_mbentry_init(&f->there.e);
		f->f.section = 1;
		ids_af_add(&f->f, IDS_AUDIT_ONLY_HERE, 0, NULL, f->here.e.name,
		    r == 0 ? "deleted" : "absent");
		f->f.section = 0;
	}
	return 0;
}

static void
side_init(struct aside *s, const struct ids_config *cfg, int *rootfds, int *metarootfds)
{
	s->cfg = cfg;
	s->rootfds = rootfds;
	s->metarootfds = metarootfds;
	s->datafd = s->metafd = -1;
	ids_mbentry_init(&s->e);
	ids_header_init(&s->h);
}

/* A folder for entry e, which it takes over. */
static struct afolder *
folder_new(struct arun *run, struct ids_mbentry *e)
{
	struct afolder *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	side_init(&f->here, ids_mboxlist_config(run->mbl), run->rootfds, run->metarootfds);
	side_init(&f->there, run->o->other ? ids_mboxlist_config(run->o->other) : NULL,
	    run->orootfds, run->ometarootfds);
	f->here.e = *e;
	ids_mbentry_init(e);
	f->md5 = run->o->compare && run->o->md5;
	f->stat_only = run->o->stat_only && !f->md5;
	f->lock_timeout_ms = run->o->lock_timeout_ms;
	return f;
}

/* --- the pipeline ---------------------------------------------------- */

struct inflight {
	struct afolder **v;
	size_t head, n, cap;
};

/* Waits for the oldest folder in flight; reports it unless r is an error. */
static int
finish_oldest(struct arun *run, struct inflight *q, int r)
{
	struct afolder *f = q->v[q->head];
	int k;

	ids_pool_wait(run->pool, f);
	q->head = (q->head + 1) % q->cap;
	q->n--;
	if (r == 0)
		r = ids_run_emit(run, &f->f, f->here.e.name, f->here.e.uniqueid,
		    f->has_there ? f->there.e.name : NULL);
	for (k = 0; k < f->nknown && r == 0; k++)
		r = ids_dirset_add(run->known, f->known_dev[k], f->known_ino[k]);
	run->st.folders++;
	run->st.messages += f->messages;
	run->st.bytes += f->bytes;
	run->st.archived += f->archived;
	ids_folder_free(f);
	return r;
}

/* Checks a batch against mailboxes.db and hands it to the pool. */
static int
run_batch(struct arun *run, struct batch *b, struct inflight *q)
{
	struct fbatch fb = { calloc(b->n, sizeof(struct afolder *)), 0 };
	size_t i;
	int r = fb.v ? 0 : -ENOMEM;

	for (i = 0; i < b->n && r == 0; i++)
		if ((fb.v[fb.n] = folder_new(run, &b->e[i])) == NULL)
			r = -ENOMEM;
		else
			fb.n++;
	batch_release(b);
	if (r == 0)
		r = ids_mboxlist_read(run->mbl, db_check_txn, &fb);
	if (r == 0 && run->o->other && run->o->compare)
		r = ids_mboxlist_read(run->o->other, other_txn, &fb);
	for (i = 0; i < fb.n; i++) {
		if (r == 0 && q->n == q->cap)
			r = finish_oldest(run, q, 0);
		if (r == 0)
			r = ids_pool_submit(run->pool, fb.v[i]);
		if (r < 0) {
			ids_folder_free(fb.v[i]);
			continue;
		}
		q->v[(q->head + q->n++) % q->cap] = fb.v[i];
	}
	free(fb.v);
	return r;
}

static int
run_folders(struct arun *run, int jobs)
{
	struct source src = { run->mbl, run->o->subtree, { "", 0, 0 }, 0 };
	struct batch b = { NULL, 0, 0 };
	struct inflight q = { NULL, 0, 0, (size_t)INFLIGHT * (size_t)jobs };
	size_t next = 0;
	int r = 0;

	if ((q.v = calloc(q.cap, sizeof(*q.v))) == NULL)
		return -ENOMEM;
	for (;;) {
		r = run->o->names ? names_next(run, &next, &b) : source_next(&src, &b);
		if (r < 0 || b.n == 0 || (r = run_batch(run, &b, &q)) < 0)
			break;
	}
	while (q.n > 0)
		r = finish_oldest(run, &q, r);
	batch_release(&b);
	free(b.e);
	free(q.v);
	return r;
}

/* --- mailboxes.db as a whole ----------------------------------------- */

struct idscan {
	struct ids_txn *txn;
	struct aflist l;
};

/* A live I record must name a live N record that holds its uniqueid. */
static int
idscan_one(const struct ids_mbentry *ie, void *rock)
{
	struct idscan *s = rock;
	struct ids_mbentry ne;
	struct afinding *a = NULL;
	int r;

	if (ids_mbentry_is_tombstone(ie))
		return 0;
	ids_mbentry_init(&ne);
	r = ids_txn_lookup_name(s->txn, ie->name, &ne);
	if (r < 0)
		a = ids_af_add(&s->l, IDS_AUDIT_DB, 0, NULL, "the live N record it names",
		    r == IDS_ENOTFOUND ? "no N record" : ids_errmsg(r));
	else if (ids_mbentry_is_tombstone(&ne))
		a = ids_af_add(&s->l, IDS_AUDIT_DB, 0, NULL, "the live N record it names",
		    "a tombstone");
	else if (strcmp(ne.uniqueid, ie->uniqueid) != 0)
		a = ids_af_addf(&s->l, IDS_AUDIT_DB, 0, NULL, "the live N record it names",
		    "the N record holds uniqueid %s", ne.uniqueid);
	ids_mbentry_release(&ne);
	if (a != NULL) {
		a->folder = strdup(ie->name);
		a->uniqueid = strdup(ie->uniqueid);
	}
	return s->l.oom ? -ENOMEM : 0;
}

/* An intent recovery could not settle and set aside: the administrator's to look at. */
static int
aside_one(const char *id, const struct ids_intent *in, const char *why, void *rock)
{
	struct idscan *s = rock;
	struct afinding *a;

	a = ids_af_addf(&s->l, IDS_AUDIT_DB, 0, NULL, "no intent set aside",
	    "intent Z%s (%s) set aside: %s", id, in->op[0] ? in->op : "?", why);
	if (a != NULL) {
		a->folder = strdup(in->name ? in->name : "?");
		a->uniqueid = strdup(id);
	}
	return s->l.oom ? -ENOMEM : 0;
}

static int
idscan_txn(struct ids_txn *txn, void *rock)
{
	struct idscan *s = rock;
	int r;

	s->txn = txn;
	if ((r = ids_txn_foreach_id(txn, idscan_one, s)) < 0)
		return r;
	return ids_intent_foreach_aside(txn, aside_one, s);
}

static int
scan_ids(struct arun *run)
{
	struct idscan s;
	int r;

	memset(&s, 0, sizeof(s));
	if ((r = ids_mboxlist_read(run->mbl, idscan_txn, &s)) == 0)
		r = ids_run_emit(run, &s.l, NULL, NULL, NULL);
	ids_aflist_release(&s.l);
	return r;
}

/* --- folders only the other copy has ---------------------------------- */

struct herecheck {
	struct batch *b;
	struct aflist l;
};

static int
here_txn(struct ids_txn *txn, void *rock)
{
	struct herecheck *h = rock;
	struct ids_mbentry e;
	struct afinding *a;
	size_t i;
	int r;

	for (i = 0; i < h->b->n; i++) {
		ids_mbentry_init(&e);
		r = ids_txn_lookup_id(txn, h->b->e[i].uniqueid, &e);
		if (r == 0 && !ids_mbentry_is_tombstone(&e)) {
			ids_mbentry_release(&e);
			continue;
		}
		ids_mbentry_release(&e);
		if ((a = ids_af_add(&h->l, IDS_AUDIT_ONLY_THERE, 0, NULL,
		    r == 0 ? "deleted" : "absent", h->b->e[i].name)) != NULL)
			a->uniqueid = strdup(h->b->e[i].uniqueid);
	}
	return h->l.oom ? -ENOMEM : 0;
}

static int
only_there(struct arun *run)
{
	struct source src = { run->o->other, run->o->subtree, { "", 0, 0 }, 0 };
	struct batch b = { NULL, 0, 0 };
	struct herecheck h;
	size_t i;
	int r;

	memset(&h, 0, sizeof(h));
	h.b = &b;
	while ((r = source_next(&src, &b)) == 0 && b.n > 0) {
		r = ids_mboxlist_read(run->mbl, here_txn, &h);
		for (i = 0; r == 0 && i < h.l.n; i++)
			r = emit_one(run, &h.l.v[i], NULL, NULL, h.l.v[i].actual);
		ids_aflist_release(&h.l);
		batch_release(&b);
		if (r < 0)
			break;
	}
	free(b.e);
	return r;
}

/* --- the run --------------------------------------------------------- */

static int
run_all(struct arun *run, int jobs)
{
	const struct ids_audit_opts *o = run->o;
	int full = o->subtree == NULL && o->names == NULL, r;

	if ((r = run_folders(run, jobs)) < 0 || run->stop)
		return r;
	if (full && (r = scan_ids(run)) < 0)
		return r;
	if (o->other && o->compare && o->names == NULL && (r = only_there(run)) < 0)
		return r;
	if (full)
		r = ids_walk_spool(run);
	else if (o->subtree)
		r = ids_walk_subtree(run);
	if (r == 0 && o->repair)
		r = ids_repair_held(run);
	return r;
}

int
ids_audit_run(struct ids_mboxlist *mbl, const struct ids_audit_opts *o,
    ids_audit_fn fn, void *rock, struct ids_audit_stats *st)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct arun run;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int jobs = o->jobs > 0 ? o->jobs : cpus > 0 ? (int)cpus : 1, r;

	memset(&run, 0, sizeof(run));
	run.mbl = mbl;
	run.o = o;
	run.fn = fn;
	run.rock = rock;
	if ((o->compare || o->repair) && o->other == NULL)
		return ids_error(IDS_EINVAL, "a comparison or repair needs the other copy");
	r = roots_open(cfg, &run.rootfds, &run.metarootfds);
	if (r == 0 && o->other)
		r = roots_open(ids_mboxlist_config(o->other), &run.orootfds, &run.ometarootfds);
	if (r == 0)
		r = ids_pool_new(jobs, &run.pool);
	if (r == 0 && (run.known = ids_dirset_new()) == NULL)
		r = -ENOMEM;
	if (r == 0)
		r = run_all(&run, jobs);
	ids_pool_free(run.pool);
	ids_dirset_free(run.known);
	roots_close(cfg, run.rootfds, run.metarootfds);
	if (o->other)
		roots_close(ids_mboxlist_config(o->other), run.orootfds, run.ometarootfds);
	ids_aflist_release(&run.held);
	if (st)
		*st = run.st;
	if (run.stop)
		return run.stop;
	return r < 0 ? r : run.unhealed > INT32_MAX ? INT32_MAX : (int)run.unhealed;
}
