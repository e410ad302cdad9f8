/*
 * reconstruct_repair.c - the file changes a rebuild's rules ask for:
 * cyrus.header rewrites (name, unique id, history, type) and re-ids of
 * uniqueid-layout folders, whose directory is named by the id.
 *
 * A header is rewritten under the folder's mailbox lock (both ids' locks
 * when the id changes), only if no intent is pending on it and only if
 * the file still has the bytes the walk read; the index's
 * header_file_crc follows.
 *
 * A re-id in the uniqueid layout moves <owner>/<old id> to <owner>/<new
 * id> on every root (partition, metapartition), under the owner's
 * namespace lock and both mailbox locks:
 *
 *   1. intent "reid" (key: the new id; SRC and DST the directories)
 *      committed;
 *   2. each directory renamed (never over an existing one), the parent
 *      fsynced;
 *   3. cyrus.header rewritten with the new id, header_file_crc updated;
 *   4. the intent removed.
 *
 * A crash after 1 leaves the intent; recovery (ids_reconstruct_recover)
 * finishes the renames and the header if any directory moved, else
 * drops the intent.  Either way every message stays in one complete
 * directory, under the old id or the new one; the rebuild that was
 * interrupted registers whichever it finds when it runs again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "index.h"
#include "intent.h"
#include "lock.h"
#include "mboxlist.h"
#include "reconstruct_int.h"

#define NROOTS 2

void
ids_rc_header_type(const char *mbtype, char out[IDS_MBTYPE_MAX])
{
	if (ids_mbtype_check(mbtype) < 0) {
		strcpy(out, "e");
		return;
	}
	strcpy(out, mbtype);
	ids_mbtype_set(out, IDS_MBFLAG_DELETED, 0);
	ids_mbtype_set(out, IDS_MBFLAG_LEGACY, 0);
}

/* --- directories and locks -------------------------------------------------- */

/* The partition's roots that hold folder directories: data, and meta if used. */
static int
roots_of(const struct ids_config *cfg, const struct ids_partition *p,
    const char *roots[NROOTS])
{
	roots[0] = p->path;
	roots[1] = cfg->metapartition_files && p->metapath ? p->metapath : NULL;
	return roots[1] ? 2 : 1;
}

static int
open_rel(const char *root, const char *rel, int *fdp)
{
	int rfd, r;

	if ((r = ids_opendir_abs(root, &rfd)) < 0)
		return ids_error(r, "%s: %s", root, ids_strerror(r));
	r = ids_opendir_beneath(rfd, rel, 0, fdp);
	close(rfd);
	return r;
}

/* The directories holding the header and the index of the folder at rel. */
int
ids_rc_open_meta(const struct ids_config *cfg, const struct ids_partition *p, const char *rel,
    int *hfd, int *ifd)
{
	const unsigned both = (1u << IDS_META_HEADER) | (1u << IDS_META_INDEX);
	const char *roots[NROOTS];
	int n = roots_of(cfg, p, roots), fd[NROOTS] = { -1, -1 }, i, r = 0;

	if (!(cfg->metapartition_files & both))
		n = 1;
	for (i = 0; i < n && r == 0; i++)
		r = open_rel(roots[i], rel, &fd[i]);
	if (r < 0) {
		if (fd[0] >= 0)
			close(fd[0]);
		return r;
	}
	*hfd = n > 1 && (cfg->metapartition_files & (1u << IDS_META_HEADER)) ? fd[1] : fd[0];
	*ifd = n > 1 && (cfg->metapartition_files & (1u << IDS_META_INDEX)) ? fd[1] : fd[0];
	/* The one not used is closed; the used ones by ids_rc_close_meta(). */
	for (i = 0; i < n; i++)
		if (fd[i] != *hfd && fd[i] != *ifd)
			close(fd[i]);
	return 0;
}

void
ids_rc_close_meta(int hfd, int ifd)
{
	if (hfd >= 0)
		close(hfd);
	if (ifd >= 0 && ifd != hfd)
		close(ifd);
}

/* Mailbox locks on a and b (either may be NULL), in byte order. */
static int
lock_ids(const struct ids_config *cfg, const char *a, const char *b, int timeout,
    struct ids_lock *l[2])
{
	const char *first = a, *second = b;
	int r;

	l[0] = l[1] = NULL;
	if (first == NULL || (second != NULL && strcmp(second, first) < 0)) {
		first = b;
		second = a;
	}
	if (second != NULL && first != NULL && strcmp(first, second) == 0)
		second = NULL;
	if (first != NULL && (r = ids_lock_mailbox(cfg, first, 0, timeout, &l[0])) < 0)
		return r;
	if (second != NULL && (r = ids_lock_mailbox(cfg, second, 0, timeout, &l[1])) < 0) {
		ids_unlock(l[0]);
		l[0] = NULL;
		return r;
	}
	return 0;
}

static void
unlock_ids(struct ids_lock *l[2])
{
	ids_unlock(l[1]);
	ids_unlock(l[0]);
}

struct idle {
	const char *a, *b;
};

static int
idle_txn(struct ids_txn *txn, void *rock)
{
	struct idle *d = rock;
	const char *ids[2] = { d->a, d->b };
	struct ids_intent in;
	int i, r;

	for (i = 0; i < 2; i++) {
		if (ids[i] == NULL)
			continue;
		ids_intent_init(&in);
		r = ids_intent_get(txn, ids[i], &in);
		ids_intent_release(&in);
		if (r != IDS_ENOTFOUND)
			return r < 0 ? r : ids_error(IDS_EBUSY, "an operation is in "
			    "progress on uniqueid %s", ids[i]);
	}
	return 0;
}

/* IDS_EBUSY when an intent is pending on a or b. */
static int
check_idle(struct ids_mboxlist *mbl, const char *a, const char *b)
{
	struct idle d = { a, b };

	return mbl ? ids_mboxlist_read(mbl, idle_txn, &d) : 0;
}

/* --- headers -------------------------------------------------------------------- */

struct newhdr {
	const char *name;
	const char *uniqueid;
	const char *type;			/* NULL: keep */
	const struct ids_history *hist;		/* with keep_history: ignored */
	size_t nhist;
	int keep_history;
	int check;				/* the file must still have crc */
	uint32_t crc;
};

/* Replaces h's history by a copy of hist. */
static int
set_history(struct ids_header *h, const struct ids_history *hist, size_t n)
{
	struct ids_mbentry view, copy;
	size_t i;
	int r;

	ids_mbentry_init(&view);
	strcpy(view.mbtype, "e");
	view.history = (struct ids_history *)hist;
	view.nhistory = n;
	if ((r = ids_mbentry_copy(&copy, &view)) < 0)
		return r;
	for (i = 0; i < h->nhistory; i++)
		ids_history_release(&h->history[i]);
	free(h->history);
	h->history = copy.history;
	h->nhistory = copy.nhistory;
	copy.history = NULL;
	copy.nhistory = 0;
	ids_mbentry_release(&copy);
	return 0;
}

/* Rewrites the header in hfd as n says, then the index's crc in ifd. */
static int
put_header(int hfd, int ifd, const struct newhdr *n)
{
	struct ids_header h;
	uint32_t crc;
	int64_t mtime;
	int r;

	ids_header_init(&h);
	if ((r = ids_rc_read_header(hfd, &h, &crc, &mtime)) < 0)
		return r;
	if (n->check && crc != n->crc) {
		ids_header_release(&h);
		return ids_error(IDS_EBUSY, "cyrus.header changed while reconstruct ran");
	}
	if (n->keep_history || (r = set_history(&h, n->hist, n->nhist)) == 0) {
		free(h.name);
		free(h.uniqueid);
		h.name = strdup(n->name);
		h.uniqueid = strdup(n->uniqueid);
		if (n->type)
			memcpy(h.mbtype, n->type, IDS_MBTYPE_MAX);
		r = h.name && h.uniqueid ? ids_header_write(hfd, &h, &crc) : -ENOMEM;
	}
	ids_header_release(&h);
	if (r == 0 && ifd >= 0 && (r = ids_index_set_header_crc(ifd, crc)) == -ENOENT)
		r = 0;
	return r;
}

static void
folder_newhdr(const struct rc_folder *f, char type[IDS_MBTYPE_MAX], struct newhdr *n)
{
	ids_rc_header_type(f->h.mbtype[0] ? f->h.mbtype : "e", type);
	memset(n, 0, sizeof(*n));
	n->name = f->name;
	n->uniqueid = rc_id(f);
	n->type = type;
	n->hist = f->hist;
	n->nhist = f->nhist;
	n->check = 1;
	n->crc = f->hdr_crc;
}

/* "name, uniqueid, history": what a rewrite of f's header changes. */
static void
header_changes(const struct rc_folder *f, struct ids_buf *b)
{
	int hist = f->nhist != f->h.nhistory;
	size_t i;

	for (i = 0; !hist && i < f->nhist; i++)
		hist = f->hist[i].mtime != f->h.history[i].mtime ||
		    strcmp(f->hist[i].name ? f->hist[i].name : "",
		    f->h.history[i].name ? f->h.history[i].name : "") != 0;
	if (f->h.old_format)
		ids_buf_adds(b, ", new format");
	if (f->h.name == NULL || strcmp(f->h.name, f->name) != 0)
		ids_buf_adds(b, ", name");
	if (f->h.uniqueid == NULL || strcmp(f->h.uniqueid, rc_id(f)) != 0)
		ids_buf_adds(b, ", uniqueid");
	if (hist)
		ids_buf_adds(b, ", history");
	if (b->len == 0)
		ids_buf_adds(b, ", type");
}

static int
rewrite_header(struct rc_ctx *c, struct rc_folder *f)
{
	const char *old = f->h.uniqueid && ids_uniqueid_check(f->h.uniqueid) == 0 ?
	    f->h.uniqueid : NULL;
	struct ids_lock *l[2];
	char type[IDS_MBTYPE_MAX];
	struct newhdr n;
	int hfd, ifd, r;

	if ((r = lock_ids(c->cfg, old, rc_id(f), c->timeout_ms, l)) < 0)
		return r;
	if ((r = check_idle(c->mbl, old, rc_id(f))) == 0 &&
	    (r = ids_rc_open_meta(c->cfg, f->part, f->rel, &hfd, &ifd)) == 0) {
		folder_newhdr(f, type, &n);
		r = put_header(hfd, ifd, &n);
		ids_rc_close_meta(hfd, ifd);
	}
	unlock_ids(l);
	return r;
}

/* --- re-ids -------------------------------------------------------------------- */

/* The directory next to rel named newid ("a/b/<old>" -> "a/b/<new>"). */
static int
sibling(const char *rel, const char *newid, char *buf, size_t size)
{
	const char *slash = strrchr(rel, '/');
	int n = (int)(slash ? slash - rel : 0);

	if ((size_t)snprintf(buf, size, "%.*s%s%s", n, rel, slash ? "/" : "", newid) >= size)
		return ids_error(IDS_ETOOLONG, "%s: path too long", rel);
	return 0;
}

/* 1 if rel exists below root, 0 if not, or negative. */
static int
exists_rel(const char *root, const char *rel)
{
	int fd, r = open_rel(root, rel, &fd);

	if (r == 0)
		close(fd);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

static int
rename_noreplace(int pfd, const char *a, const char *b)
{
	if (renameat2(pfd, a, pfd, b, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A file system without RENAME_NOREPLACE: look first (we hold the locks). */
	if (faccessat(pfd, b, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(pfd, a, pfd, b) < 0 ? -errno : 0;
}

/* Renames src to dst (siblings) below root and makes it durable. */
static int
move_dir(const char *root, const char *src, const char *dst)
{
	const char *slash = strrchr(src, '/');
	char parent[PATH_MAX];
	int pfd, r;

	if ((size_t)snprintf(parent, sizeof(parent), "%.*s", (int)(slash ? slash - src : 0),
	    src) >= sizeof(parent))
		return ids_error(IDS_ETOOLONG, "%s: path too long", src);
	if ((r = open_rel(root, parent, &pfd)) < 0)
		return r;
	if ((r = IDS_FAILPOINT("reconstruct.rename")) == 0 &&
	    (r = rename_noreplace(pfd, slash ? slash + 1 : src,
	    strrchr(dst, '/') ? strrchr(dst, '/') + 1 : dst)) == 0)
		r = ids_fsync_dir(pfd);
	close(pfd);
	return r < 0 ? ids_error(r, "%s/%s: rename to %s: %s", root, src, dst,
	    ids_strerror(r)) : 0;
}

struct keyed {
	const char *id;
	const struct ids_intent *in;
};

static int
intent_put_txn(struct ids_txn *txn, void *rock)
{
	const struct keyed *k = rock;

	return ids_intent_put(txn, k->id, k->in);
}

static int
intent_del_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_del(txn, rock);
}

static int
reid_intent(const struct rc_folder *f, const char *dst, struct ids_intent *in)
{
	int r;

	strcpy(in->op, IDS_OP_REID);
	strcpy(in->stage, IDS_STAGE_RENAME);
	in->time = time(NULL);
	if ((r = ids_intent_set(&in->name, f->name)) < 0 ||
	    (r = ids_intent_set(&in->partition, f->part->name)) < 0 ||
	    (r = ids_intent_set(&in->src, f->rel)) < 0)
		return r;
	return ids_intent_set(&in->dst, dst);
}

/* Steps 2 and 3 (see the top of the file) for every root. */
static int
reid_move(struct rc_ctx *c, struct rc_folder *f, const char *dst)
{
	const char *roots[NROOTS];
	char type[IDS_MBTYPE_MAX];
	struct newhdr n;
	int nr = roots_of(c->cfg, f->part, roots), i, hfd, ifd, r = 0;

	for (i = 0; i < nr && r == 0; i++)
		if ((r = exists_rel(roots[i], f->rel)) == 1)
			r = move_dir(roots[i], f->rel, dst);
	if (r < 0 || (r = ids_rc_open_meta(c->cfg, f->part, dst, &hfd, &ifd)) < 0)
		return r;
	folder_newhdr(f, type, &n);
	n.check = 0;
	r = put_header(hfd, ifd, &n);
	ids_rc_close_meta(hfd, ifd);
	return r;
}

/* Checks, under the locks, that the header is still the one read. */
static int
unchanged(struct rc_ctx *c, const struct rc_folder *f)
{
	struct ids_header h;
	uint32_t crc = 0;
	int64_t mtime;
	int hfd, ifd, r;

	if ((r = ids_rc_open_meta(c->cfg, f->part, f->rel, &hfd, &ifd)) < 0)
		return r;
	ids_header_init(&h);
	r = ids_rc_read_header(hfd, &h, &crc, &mtime);
	ids_header_release(&h);
	ids_rc_close_meta(hfd, ifd);
	if (r == 0 && crc != f->hdr_crc)
		r = ids_error(IDS_EBUSY, "cyrus.header changed while reconstruct ran");
	return r;
}

static int
reid_locked(struct rc_ctx *c, struct rc_folder *f, const char *dst)
{
	struct ids_intent in;
	struct keyed k = { f->newid, &in };
	int r;

	ids_intent_init(&in);
	if ((r = check_idle(c->mbl, f->dirid, f->newid)) < 0 ||
	    (r = unchanged(c, f)) < 0 || (r = reid_intent(f, dst, &in)) < 0)
		goto out;
	if ((r = IDS_FAILPOINT("reconstruct.reid_intent")) < 0 ||
	    (r = ids_mboxlist_write(c->mbl, intent_put_txn, &k)) < 0)
		goto out;
	if ((r = reid_move(c, f, dst)) < 0) {
		/* Settle now what a crash would leave to recovery. */
		ids_reconstruct_recover(c->mbl, f->newid, &in);
		goto out;
	}
	if ((r = IDS_FAILPOINT("reconstruct.reid_done")) == 0)
		r = ids_mboxlist_write(c->mbl, intent_del_txn, f->newid);
out:
	ids_intent_release(&in);
	return r;
}

static int
reid_dir(struct rc_ctx *c, struct rc_folder *f)
{
	char owner[IDS_MBNAME_MAX + 1], dst[PATH_MAX];
	struct ids_lock *ns = NULL, *l[2];
	int r;

	if ((r = ids_rc_owner_of(f->name, owner, sizeof(owner))) < 0 ||
	    (r = sibling(f->rel, f->newid, dst, sizeof(dst))) < 0 ||
	    (r = ids_lock_namespace(c->cfg, owner, 0, c->timeout_ms, &ns)) < 0)
		return r;
	if ((r = lock_ids(c->cfg, f->dirid, f->newid, c->timeout_ms, l)) == 0) {
		r = reid_locked(c, f, dst);
		unlock_ids(l);
	}
	ids_unlock(ns);
	if (r == 0)
		ids_rc_emit(c, IDS_RC_REPAIR, "directory", f, f->name, f->newid, "%s/%s",
		    f->part->path, dst);
	return r;
}

/* --- all of them ------------------------------------------------------------------ */

/* A folder whose repair failed keeps the records it had. */
static void
skip_folder(struct rc_ctx *c, struct rc_folder *f, int r)
{
	char *key = ids_rc_folder_key(f);
	size_t k;

	f->flags |= RCF_SKIPPED;
	ids_rc_failed(c, "error", f->path, f->name, r, "cannot repair: %s: its records are "
	    "kept as they were", ids_errmsg(r));
	if (key != NULL && (k = ids_rc_map_get(&c->snap.byloc, key)) != RC_NONE)
		c->snap.n[k].kept = 1;
	free(key);
}

static int
repair_one(struct rc_ctx *c, struct rc_folder *f)
{
	struct ids_buf what = IDS_BUF_INIT;
	char dst[PATH_MAX];
	int r = 0;

	header_changes(f, &what);
	if (c->opts->dry_run) {
		if ((f->flags & RCF_REID) && f->layout == IDS_LAYOUT_UNIQUEID &&
		    sibling(f->rel, f->newid, dst, sizeof(dst)) == 0)
			ids_rc_emit(c, IDS_RC_REPAIR, "directory", f, f->name, f->newid,
			    "%s/%s", f->part->path, dst);
	} else if ((f->flags & RCF_REID) && f->layout == IDS_LAYOUT_UNIQUEID) {
		r = c->mbl ? reid_dir(c, f) : ids_error(IDS_EINVAL, "no mailboxes.db");
	} else {
		r = rewrite_header(c, f);
	}
	if (r == 0)
		ids_rc_emit(c, IDS_RC_REPAIR, "header", f, f->name, rc_id(f), "%s",
		    what.len > 2 ? what.s + 2 : "type");
	ids_buf_release(&what);
	return r;
}

int
ids_rc_repair_all(struct rc_ctx *c)
{
	size_t i;
	int r;

	for (i = 0; i < c->nf; i++) {
		struct rc_folder *f = &c->f[i];

		if ((f->flags & (RCF_UNREADABLE | RCF_BUSY | RCF_LEFTOUT)) ||
		    !(f->flags & RCF_WRITE))
			continue;
		if ((r = repair_one(c, f)) == -ENOMEM)
			return r;
		if (r < 0)
			skip_folder(c, f, r);
	}
	return 0;
}

/* --- recovery -------------------------------------------------------------------- */

/* Per root: 1 if moved (dst only), 0 if not (src only or neither). */
static int
moved_state(const char *root, const struct ids_intent *in, int *src, int *dst)
{
	if ((*src = exists_rel(root, in->src)) < 0)
		return *src;
	if ((*dst = exists_rel(root, in->dst)) < 0)
		return *dst;
	if (*src && *dst)
		return ids_error(IDS_ECONFLICT, "%s: both %s and %s exist", root, in->src,
		    in->dst);
	return *dst;
}

static int
recover_forward(const struct ids_config *cfg, const struct ids_partition *p,
    const char *uniqueid, const struct ids_intent *in)
{
	const char *roots[NROOTS];
	struct newhdr n = { in->name, uniqueid, NULL, NULL, 0, 1, 0, 0 };
	int nr = roots_of(cfg, p, roots), i, s, d, hfd, ifd, r = 0;

	for (i = 0; i < nr && r == 0; i++)
		if ((r = moved_state(roots[i], in, &s, &d)) >= 0 && s)
			r = move_dir(roots[i], in->src, in->dst);
	if (r < 0 || (r = ids_rc_open_meta(cfg, p, in->dst, &hfd, &ifd)) < 0)
		return r;
	r = put_header(hfd, ifd, &n);
	ids_rc_close_meta(hfd, ifd);
	return r;
}

int
ids_reconstruct_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	const struct ids_partition *p = ids_config_partition(cfg, in->partition);
	const char *roots[NROOTS];
	int nr, i, s, d, moved = 0, r;

	if (strcmp(in->op, IDS_OP_REID) != 0 || p == NULL || in->src == NULL ||
	    in->dst == NULL || in->name == NULL)
		return ids_error(IDS_ECORRUPT, "intent of %s: not a complete reid", uniqueid);
	nr = roots_of(cfg, p, roots);
	for (i = 0; i < nr; i++) {
		if ((r = moved_state(roots[i], in, &s, &d)) < 0)
			return r;
		moved |= r;
	}
	if (moved && (r = recover_forward(cfg, p, uniqueid, in)) < 0)
		return r;
	if ((r = IDS_FAILPOINT("reconstruct.recover")) < 0)
		return r;
	return ids_mboxlist_write(mbl, intent_del_txn, (void *)uniqueid);
}
