/*
 * rename.c - renaming folders (rename.h).
 *
 * Order of work for every kind: parse and classify the names; take the
 * namespace locks (both owners, in byte order); collect the folders and
 * their new names in one read transaction, refusing anything that
 * would clash; report the plan; migrate legacy folders of the set to
 * the uniqueid layout (children first, grace 0); then the kind's own
 * steps.  The intent of a rename is keyed by the uniqueid of the first
 * folder of the set (the root), whose mailbox lock is held throughout,
 * so recovery can tell a live rename from a dead one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "layout.h"
#include "lock.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "relocate.h"
#include "rename.h"
#include "tombstones.h"
#include "userfiles.h"

enum kind { KIND_FOLDER, KIND_OWNER, KIND_COPY };

/*
 * A set this large has its headers made durable by syncfs (group_headers);
 * a smaller one fsyncs each (syncfs flushes every dirty page of the file
 * system, other processes' too, which costs more than a few fsyncs).
 */
#define GROUP_SYNC_MIN 4

/*
 * A folder of the set.  old, new and part point into one allocation of
 * their own (a set may hold 100,000 folders: no fixed-size names here).
 */
struct rfolder {
	char *old, *new, *part;
	char id[IDS_UNIQUEID_MAX + 1];
	int legacy;
};

struct rplan {
	struct ids_mboxlist *mbl;
	const struct ids_config *cfg;
	const struct ids_rename_opts *opts;
	enum kind kind;
	struct ids_mbname oldmb, newmb;
	char oldroot[IDS_MBNAME_MAX + 1], newroot[IDS_MBNAME_MAX + 1];
	char oldowner[IDS_MBNAME_MAX + 1], newowner[IDS_MBNAME_MAX + 1];
	struct rfolder *f;
	size_t n, alloc;
	struct ids_intent in;
	struct ids_lock *ns[2], *rootlock;
	int recovering;		/* collecting current names only */
};

/* --- names ----------------------------------------------------------- */

/* 1 if mb names an owner's root: a user's INBOX or a shared top level. */
static int
is_owner_root(const struct ids_mbname *mb)
{
	if (ids_mbname_is_deleted(mb))
		return 0;
	return ids_mbname_is_user(mb) ? ids_mbname_is_inbox(mb) : mb->nboxes == 1;
}

static int
classify(struct rplan *p)
{
	if (strcmp(p->oldroot, p->newroot) == 0)
		return ids_error(IDS_EINVAL, "%s: renaming a mailbox onto itself", p->oldroot);
	if (ids_mbname_is_within(&p->oldmb, &p->newmb))
		return ids_error(IDS_EINVAL, "%s: inside the subtree of %s", p->newroot, p->oldroot);
	if (strcmp(p->oldowner, p->newowner) == 0 &&
	    ids_mbname_same_owner(&p->oldmb, &p->newmb))
		p->kind = KIND_FOLDER;
	else if (is_owner_root(&p->oldmb) && is_owner_root(&p->newmb) &&
	    ids_mbname_is_user(&p->oldmb) == ids_mbname_is_user(&p->newmb))
		p->kind = KIND_OWNER;
	else if (p->opts->flags & IDS_RENAME_COPY)
		p->kind = KIND_COPY;
	else
		return ids_error(IDS_ECROSSUSER, "%s -> %s: a folder cannot move to another "
		    "owner by renaming; use --copy (a new folder with a new uniqueid)",
		    p->oldroot, p->newroot);
	return 0;
}

/*
 * The new name of folder mb of the set: the new root plus whatever mb
 * has below the old root (DELETED folders of an owner keep their own
 * boxes and hex time under the new owner).
 */
static int
new_name(const struct rplan *p, const struct ids_mbname *mb, char *buf, size_t size)
{
	struct ids_mbname t;
	size_t skip, i;

	ids_mbname_copy(&t, &p->newmb);
	if (p->kind == KIND_OWNER) {
		skip = ids_mbname_is_user(&p->oldmb) ? 0 : 1;
		t.deleted = mb->deleted;
	} else {
		skip = p->oldmb.nboxes;
	}
	if (mb->nboxes < skip || t.nboxes + mb->nboxes - skip > IDS_MBNAME_LEVELS)
		return ids_error(IDS_ETOOLONG, "new name below %s", p->newroot);
	for (i = skip; i < mb->nboxes; i++)
		t.boxes[t.nboxes++] = mb->boxes[i];
	return ids_mbname_internal(&t, buf, size);
}

/* --- collecting the set ---------------------------------------------- */

/* Forgets the folders collected (their strings freed). */
static void
clear_folders(struct rplan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->f[i].old);
	p->n = 0;
}

/* Sets f's strings: old, new ("" while recovering) and part in one block. */
static int
set_names(struct rfolder *f, const char *old, const char *new, const char *part)
{
	size_t lo = strlen(old) + 1, ln = strlen(new) + 1, lp = strlen(part) + 1;
	char *s = malloc(lo + ln + lp);

	if (s == NULL)
		return -ENOMEM;
	f->old = memcpy(s, old, lo);
	f->new = memcpy(s + lo, new, ln);
	f->part = memcpy(s + lo + ln, part, lp);
	return 0;
}

static int
add_folder(struct rplan *p, const struct ids_mbentry *e)
{
	char newname[IDS_MBNAME_MAX + 1] = "";
	struct ids_mbname mb;
	struct rfolder *f;
	int r;

	if (ids_mbentry_is_tombstone(e))
		return 0;
	if (IDS_ALLOC_GROW(p->f, p->n + 1, p->alloc) < 0)
		return -ENOMEM;
	f = &p->f[p->n];
	memset(f, 0, sizeof(*f));
	if (!p->recovering && ((r = ids_mbname_parse_internal(&mb, e->name, 0)) < 0 ||
	    (r = new_name(p, &mb, newname, sizeof(newname))) < 0 ||
	    (r = ids_header_check_entry(e, newname)) < 0))
		return r;
	if ((r = set_names(f, e->name, newname, e->partition ? e->partition : "")) < 0)
		return r;
	snprintf(f->id, sizeof(f->id), "%s", e->uniqueid);
	f->legacy = ids_mbentry_is_legacy(e);
	p->n++;
	return 0;
}

static int
add_cb(const struct ids_mbentry *e, void *rock)
{
	return add_folder(rock, e);
}

/* Nonzero if a live mailbox is named at or below root. */
static int
live_cb(const struct ids_mbentry *e, void *rock)
{
	if (ids_mbentry_is_tombstone(e))
		return 0;
	return ids_error(IDS_EEXIST, "%s: mailbox already exists", e->name);
}

static int
collect_owner_deleted(struct ids_txn *txn, struct rplan *p, const struct ids_mbname *root,
    ids_entry_fn fn)
{
	char prefix[2 * IDS_MBNAME_MAX + 8];
	int n = ids_mbname_deleted_prefix(root, prefix, sizeof(prefix));

	return n < 0 ? n : ids_txn_foreach_dbprefix(txn, prefix, (size_t)n, fn, p);
}

static int
check_target(struct ids_txn *txn, struct rplan *p)
{
	struct ids_mbentry e;
	size_t i;
	int r;

	for (i = 0; i < p->n; i++) {
		ids_mbentry_init(&e);
		r = ids_txn_lookup_name(txn, p->f[i].new, &e);
		if (r == 0 && !ids_mbentry_is_tombstone(&e))
			r = ids_error(IDS_EEXIST, "%s: mailbox already exists", p->f[i].new);
		else if (r == 0 || r == IDS_ENOTFOUND)
			r = 0;
		ids_mbentry_release(&e);
		if (r < 0)
			return r;
	}
	if (p->kind != KIND_OWNER)
		return 0;
	/* A new owner must have nothing yet, not even deleted folders. */
	if ((r = ids_txn_foreach(txn, p->newroot, live_cb, p)) < 0)
		return r;
	return collect_owner_deleted(txn, p, &p->newmb, live_cb);
}

static int
copy_target_owner(struct ids_txn *txn, struct rplan *p)
{
	struct ids_mbname inbox;
	struct ids_mbentry e;
	char name[IDS_MBNAME_MAX + 1];
	int r;

	if (!ids_mbname_is_user(&p->newmb))
		return 0;
	ids_mbname_copy(&inbox, &p->newmb);
	inbox.nboxes = 0;
	inbox.deleted = NULL;
	if ((r = ids_mbname_internal(&inbox, name, sizeof(name))) < 0)
		return r;
	ids_mbentry_init(&e);
	r = ids_txn_lookup_name(txn, name, &e);
	if (r == 0 && ids_mbentry_is_tombstone(&e))
		r = IDS_ENOTFOUND;
	ids_mbentry_release(&e);
	return r == IDS_ENOTFOUND ?
	    ids_error(r, "%s: the target user %s does not exist", p->newroot, name) : r;
}

static int
collect_txn(struct ids_txn *txn, void *rock)
{
	struct rplan *p = rock;
	struct ids_mbentry e;
	int r;

	clear_folders(p);
	ids_mbentry_init(&e);
	r = ids_txn_lookup_name(txn, p->oldroot, &e);
	if (r == 0 && ids_mbentry_is_tombstone(&e))
		r = ids_error(IDS_ENOTFOUND, "%s: no such mailbox", p->oldroot);
	ids_mbentry_release(&e);
	if (r < 0)
		return r;
	if (p->opts->flags & IDS_RENAME_ONE) {
		/* the folder alone: a replica gets its children's renames one by one */
		if (p->kind != KIND_FOLDER)
			return ids_error(IDS_EINVAL, "%s -> %s: only a folder of one owner "
			    "can be renamed without its children", p->oldroot, p->newroot);
		ids_mbentry_init(&e);
		if ((r = ids_txn_lookup_name(txn, p->oldroot, &e)) == 0)
			r = add_folder(p, &e);
		ids_mbentry_release(&e);
		return r < 0 ? r : check_target(txn, p);
	}
	if ((r = ids_txn_foreach(txn, p->oldroot, add_cb, p)) < 0)
		return r;
	if (p->kind == KIND_OWNER &&
	    (r = collect_owner_deleted(txn, p, &p->oldmb, add_cb)) < 0)
		return r;
	if (p->kind == KIND_COPY && p->n > 1)
		return ids_error(IDS_EINVAL, "%s: has %zu folders below it; --copy moves one "
		    "folder at a time: move its children first", p->oldroot, p->n - 1);
	if (p->kind == KIND_COPY && (r = copy_target_owner(txn, p)) < 0)
		return r;
	return check_target(txn, p);
}

static int
check_partition(const struct rplan *p)
{
	size_t i;

	if (p->opts->partition == NULL)
		return 0;
	for (i = 0; i < p->n; i++)
		if (strcmp(p->f[i].part, p->opts->partition) != 0)
			return ids_error(IDS_EINVAL, "%s: on partition %s, not %s: rename does "
			    "not move folders between partitions; create the folder on the "
			    "target partition and copy its messages instead", p->f[i].old,
			    p->f[i].part, p->opts->partition);
	return 0;
}

/* --- locks and plan -------------------------------------------------- */

static int
lock_owners(struct rplan *p)
{
	const char *a = p->oldowner, *b = p->newowner;
	int r, t = p->opts->lock_timeout_ms;

	if (strcmp(a, b) > 0) {
		a = p->newowner;
		b = p->oldowner;
	}
	if ((r = ids_lock_namespace(p->cfg, a, 0, t, &p->ns[0])) < 0)
		return r;
	if (strcmp(a, b) == 0)
		return 0;
	return ids_lock_namespace(p->cfg, b, 0, t, &p->ns[1]);
}

static int
report_plan(struct rplan *p)
{
	struct ids_rename_step st;
	size_t i;
	int r;

	if (p->opts->plan == NULL)
		return 0;
	for (i = 0; i < p->n; i++) {
		st.oldname = p->f[i].old;
		st.newname = p->f[i].new;
		st.uniqueid = p->f[i].id;
		st.legacy = p->f[i].legacy;
		st.copy = p->kind == KIND_COPY;
		if ((r = p->opts->plan(&st, p->opts->rock)) < 0)
			return r;
	}
	return 0;
}

/* Legacy folders of the set move to the uniqueid layout, children first. */
static int
convert_legacy(struct rplan *p)
{
	struct ids_relocate_opts ro = { .strategy = IDS_STRATEGY_LINK,
	    .lock_timeout_ms = p->opts->lock_timeout_ms };
	struct ids_relocate_stats st = { 0 };
	size_t i;
	int r;

	for (i = p->n; i-- > 0;) {
		if (!p->f[i].legacy || p->kind == KIND_COPY)
			continue;
		if ((r = ids_relocate_folder(p->mbl, p->f[i].old, &ro, &st)) < 0)
			return ids_error(r, "%s: converting to the uniqueid layout first: %s",
			    p->f[i].old, ids_errmsg(r));
		p->f[i].legacy = 0;
	}
	return 0;
}

/* --- the records ----------------------------------------------------- */

/*
 * The tombstone left at e's name: as Cyrus writes one, the type with
 * 'd', no partition and no ACL; e itself is unchanged.
 */
static int
put_tombstone(struct ids_txn *txn, const struct ids_mbentry *e, int64_t now)
{
	struct ids_mbentry t;
	int r;

	ids_mbentry_init(&t);
	if ((r = ids_mbentry_copy(&t, e)) < 0)
		goto out;
	free(t.partition);
	t.partition = NULL;
	ids_acl_free(t.acl, t.nacl);
	t.acl = NULL;
	t.nacl = 0;
	t.mtime = now;
	if ((r = ids_mbtype_set(t.mbtype, IDS_MBFLAG_DELETED, 1)) == 0)
		r = ids_txn_put(txn, &t);
out:
	ids_mbentry_release(&t);
	return r;
}

/* Renames one folder's records: a tombstone at the old name, history. */
static int
rename_record(struct ids_txn *txn, const struct rfolder *f, int64_t now)
{
	struct ids_mbentry e;
	char *newname;
	int r;

	ids_mbentry_init(&e);
	if ((r = ids_txn_lookup_id(txn, f->id, &e)) < 0)
		goto out;
	if (strcmp(e.name, f->old) != 0 || ids_mbentry_is_tombstone(&e) ||
	    ids_mbentry_is_legacy(&e)) {
		r = ids_error(IDS_EBUSY, "%s: changed during the rename", f->old);
		goto out;
	}
	if ((r = put_tombstone(txn, &e, now)) < 0 ||
	    (r = ids_mbentry_push_history(&e, now)) < 0)
		goto out;
	if ((newname = strdup(f->new)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	free(e.name);
	e.name = newname;
	e.mtime = now;
	e.foldermodseq++;
	r = ids_txn_put(txn, &e);
out:
	ids_mbentry_release(&e);
	return r;
}

/* All records in one transaction, with the intent moved to "headers". */
static int
records_txn(struct ids_txn *txn, void *rock)
{
	struct rplan *p = rock;
	int64_t now = time(NULL);
	size_t i;
	int r;

	for (i = 0; i < p->n; i++)
		if ((r = rename_record(txn, &p->f[i], now)) < 0)
			return r;
	strcpy(p->in.stage, IDS_STAGE_HEADERS);
	p->in.time = now;
	return ids_intent_put(txn, p->f[0].id, &p->in);
}

static int
intent_txn(struct ids_txn *txn, void *rock)
{
	struct rplan *p = rock;

	return ids_intent_put(txn, p->f[0].id, &p->in);
}

static int
intent_del_txn(struct ids_txn *txn, void *rock)
{
	int r = ids_intent_del(txn, rock);

	return r == IDS_ENOTFOUND ? 0 : r;
}

/* Rewrites one folder's cyrus.header; held: the caller has its lock. */
static int
rewrite_header(struct ids_mboxlist *mbl, const char *name, int held, int timeout_ms)
{
	struct ids_mailbox *mb;
	int r;

	if ((r = ids_mailbox_open(mbl, name, IDS_MAILBOX_WRITE |
	    (held ? IDS_MAILBOX_NOLOCK : 0), timeout_ms, &mb)) < 0)
		return r;
	r = ids_mailbox_write_header(mb);
	ids_mailbox_close(mb);
	return r;
}

/*
 * --- the headers of a large set ---------------------------------------
 *
 * A set of GROUP_SYNC_MIN folders or more has its headers replaced in
 * batches, without an fsync per folder, and never with a header file
 * whose bytes may not be on disk yet:
 *
 *   1. each folder's mailbox lock is taken (uniqueid order) and held to
 *      step 3; its record is read again (one read transaction for the
 *      batch), its cyrus.header read, and the new header written aside
 *      as cyrus.header.NEW (failpoint rename.header_new);
 *   2. one syncfs(2) per file system: the new headers are durable;
 *   3. each cyrus.header.NEW is renamed over cyrus.header (a metadata
 *      change only: rename.header_swap) and the index gets the new
 *      header's CRC in place; the locks go;
 *   4. after the last batch, one more syncfs makes the renames and the
 *      CRCs durable; only then does the intent go.
 *
 * So cyrus.header is at every instant a whole file, the old one or the
 * new one, even on a file system that does not order data before
 * metadata: a power cut before step 2 may leave a cyrus.header.NEW
 * with nothing in it, never a cyrus.header.  Recovery (the intent is
 * there until step 4) runs the same steps again: the header it reads
 * is the one the folder had, user flag names and all.
 *
 * A batch holds a lock (two descriptors with sync_log) and the folder's
 * directories open; batches shrink to fit RLIMIT_NOFILE.
 */
#define HEADER_TMP "cyrus.header.NEW"
#define BATCH_MAX 4096
#define SLOT_FDS 4
#define FD_RESERVE 64

struct hroot {
	char *part;			/* the partition's name ("" default) */
	const struct ids_partition *pp;
	int fd[2];			/* partition, metapartition (-1: none) */
};

struct hslot {
	struct rfolder *f;
	const char *name;		/* the name its record must have now */
	struct ids_lock *lock;		/* NULL: held by the caller */
	int hfd, ifd;			/* directories of cyrus.header, cyrus.index */
	int datafd, metafd;
	uint32_t crc;
	int written;			/* HEADER_TMP is there, whole */
};

struct hgroup {
	struct rplan *p;
	const char *held;		/* uniqueid whose lock the caller holds */
	int current;			/* names: f->old (recovery), else f->new */
	struct hroot *roots;
	size_t nroots;
	struct hslot *s;
	size_t n;
	int first;			/* the first error, reported once */
};

/* Keeps the first failure of the set, naming its folder. */
static void
note(struct hgroup *g, int r, const struct hslot *s)
{
	if (r < 0 && g->first == 0)
		g->first = ids_error(r, "%s: renamed, but its cyrus.header is not updated "
		    "yet (recovery will): %s", s->name, ids_errmsg(r));
}

/* The roots of partition part, opened once for the whole set. */
static int
group_root(struct hgroup *g, const char *part, struct hroot **rootp)
{
	const struct ids_config *cfg = g->p->cfg;
	struct hroot *rt;
	size_t i;
	int r;

	for (i = 0; i < g->nroots; i++)
		if (strcmp(g->roots[i].part, part) == 0) {
			*rootp = &g->roots[i];
			return 0;
		}
	if ((rt = realloc(g->roots, (g->nroots + 1) * sizeof(*rt))) == NULL)
		return -ENOMEM;
	g->roots = rt;
	rt = &g->roots[g->nroots];
	rt->fd[0] = rt->fd[1] = -1;
	if ((rt->pp = ids_config_partition(cfg, part[0] ? part : NULL)) == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s' is not configured",
		    part[0] ? part : "(default)");
	if ((rt->part = strdup(part)) == NULL)
		return -ENOMEM;
	g->nroots++;
	if ((r = ids_opendir_abs(rt->pp->path, &rt->fd[0])) < 0)
		return ids_error(r, "%s: %s", rt->pp->path, ids_strerror(r));
	if (rt->pp->metapath != NULL && cfg->metapartition_files != 0 &&
	    (r = ids_opendir_abs(rt->pp->metapath, &rt->fd[1])) < 0)
		return ids_error(r, "%s: %s", rt->pp->metapath, ids_strerror(r));
	*rootp = rt;
	return 0;
}

/* One syncfs(2) for each file system holding a root of the set. */
static int
group_sync(struct hgroup *g)
{
	dev_t devs[32];
	size_t i, k, n = 0;
	int j, r;

	for (i = 0; i < g->nroots; i++)
		for (j = 0; j < 2; j++) {
			struct stat st;
			int fd = g->roots[i].fd[j];

			if (fd < 0)
				continue;
			if (fstat(fd, &st) < 0)
				return -errno;
			for (k = 0; k < n && devs[k] != st.st_dev; k++)
				;
			if (k < n)
				continue;
			if (n < sizeof(devs) / sizeof(devs[0]))
				devs[n++] = st.st_dev;
			if ((r = ids_fs_sync(fd)) < 0)
				return r;
		}
	return 0;
}

static void
group_release(struct hgroup *g)
{
	size_t i;

	for (i = 0; i < g->nroots; i++) {
		if (g->roots[i].fd[0] >= 0)
			close(g->roots[i].fd[0]);
		if (g->roots[i].fd[1] >= 0)
			close(g->roots[i].fd[1]);
		free(g->roots[i].part);
	}
	free(g->roots);
	free(g->s);
}

static int
slot_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hslot *)a)->f->id, ((const struct hslot *)b)->f->id);
}

/*
 * The header a folder had: cyrus.header, or where that cannot be read
 * and a whole HEADER_TMP of the same folder is there, that one.  Only
 * when neither can be read is the header made afresh from the record
 * (which has no user flag names).
 */
static void
read_old_header(int hfd, const char *uniqueid, struct ids_header *h)
{
	char *buf;
	size_t len;

	if (ids_header_read(hfd, h, NULL) == 0)
		return;
	ids_header_release(h);
	ids_header_init(h);
	if (ids_read_file(hfd, HEADER_TMP, IDS_HEADER_MAX_SIZE, &buf, &len) == 0) {
		int r = ids_header_parse(h, buf, len);

		free(buf);
		if (r == 0 && h->uniqueid != NULL && strcmp(h->uniqueid, uniqueid) == 0)
			return;
	}
	ids_header_release(h);
	ids_header_init(h);
}

/* Writes HEADER_TMP (replacing a stale one) with len bytes of buf; no fsync. */
static int
write_aside(int hfd, const char *buf, size_t len)
{
	int fd, r;

	if ((r = IDS_FAILPOINT("rename.header_new")) < 0)
		return r;
	fd = openat(hfd, HEADER_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* left by a crash, or by a failed batch: never renamed, never read as a header */
		if ((r = IDS_FAILPOINT("rename.header_stale")) < 0)
			return r;
		if (unlinkat(hfd, HEADER_TMP, 0) < 0 && errno != ENOENT)
			return -errno;
		fd = openat(hfd, HEADER_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	}
	if (fd < 0)
		return -errno;
	/* A failed write leaves HEADER_TMP, never renamed: the next writer removes it. */
	r = ids_write_all(fd, buf, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Step 1 for one folder whose lock is held: its new header, aside. */
static int
slot_prepare(struct hgroup *g, struct ids_txn *txn, struct hslot *s)
{
	const struct ids_config *cfg = g->p->cfg;
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_location loc;
	struct ids_mbentry e;
	struct ids_mbname mb;
	struct ids_header h;
	struct hroot *rt = NULL;
	char rel[PATH_MAX];
	int r;

	ids_mbentry_init(&e);
	ids_header_init(&h);
	if ((r = ids_txn_lookup_id(txn, s->f->id, &e)) < 0)
		goto out;
	if (ids_mbentry_is_tombstone(&e) || strcmp(e.name, s->name) != 0) {
		r = ids_error(IDS_EBUSY, "%s: changed during the rename", s->name);
		goto out;
	}
	if ((r = ids_location_from_entry(&e, &mb, &loc)) < 0 ||
	    (r = ids_path_reldir(cfg, &loc, rel, sizeof(rel))) < 0 ||
	    (r = group_root(g, e.partition ? e.partition : "", &rt)) < 0)
		goto out;
	if ((r = ids_opendir_beneath(rt->fd[0], rel, 0, &s->datafd)) < 0 ||
	    (rt->fd[1] >= 0 && (r = ids_opendir_beneath(rt->fd[1], rel, 0, &s->metafd)) < 0)) {
		r = ids_error(r, "%s: %s", rel, ids_errmsg(r));
		goto out;
	}
	s->hfd = s->metafd >= 0 && (cfg->metapartition_files & (1u << IDS_META_HEADER)) ?
	    s->metafd : s->datafd;
	s->ifd = s->metafd >= 0 && (cfg->metapartition_files & (1u << IDS_META_INDEX)) ?
	    s->metafd : s->datafd;
	read_old_header(s->hfd, e.uniqueid, &h);
	if ((r = ids_header_from_mbentry(&h, &e)) < 0 ||
	    (r = ids_userfiles_follow_quotaroot(&h, &e)) < 0 ||
	    (r = ids_header_format(&h, &b)) < 0 ||
	    (r = write_aside(s->hfd, b.s, b.len)) < 0)
		goto out;
	s->crc = ids_header_crc(b.s, b.len);
	s->written = 1;
out:
	ids_buf_release(&b);
	ids_header_release(&h);
	ids_mbentry_release(&e);
	return r;
}

static int
prepare_txn(struct ids_txn *txn, void *rock)
{
	struct hgroup *g = rock;
	size_t i;

	/* After a failure nothing of the batch is swapped in: no more to write. */
	for (i = 0; i < g->n && g->first == 0; i++)
		note(g, slot_prepare(g, txn, &g->s[i]), &g->s[i]);
	return 0;
}

/* Step 3 for one folder: the header swapped in, its CRC in the index. */
static int
slot_swap(struct hslot *s)
{
	int r;

	if ((r = IDS_FAILPOINT("rename.header_swap")) < 0)
		return r;
	if (renameat(s->hfd, HEADER_TMP, s->hfd, IDS_HEADER_FILE) < 0)
		return -errno;
	r = ids_index_set_header_crc(s->ifd, s->crc);
	return r == -ENOENT ? 0 : r;	/* a folder without an index yet */
}

static void
slot_release(struct hslot *s)
{
	if (s->datafd >= 0)
		close(s->datafd);
	if (s->metafd >= 0)
		close(s->metafd);
	ids_unlock(s->lock);
	s->datafd = s->metafd = -1;
	s->lock = NULL;
}

/* Folders a batch may hold: two or more descriptors each, a reserve kept. */
static size_t
batch_size(void)
{
	struct rlimit rl;
	size_t fit = BATCH_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		fit = rl.rlim_cur > FD_RESERVE + SLOT_FDS ?
		    (size_t)(rl.rlim_cur - FD_RESERVE) / SLOT_FDS : 1;
	return fit < BATCH_MAX ? fit : BATCH_MAX;
}

/* Steps 1-3 for the folders [from, from + n) of the set. */
static int
group_batch(struct hgroup *g, size_t from, size_t n)
{
	struct rplan *p = g->p;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		struct hslot *s = &g->s[i];

		memset(s, 0, sizeof(*s));
		s->f = &p->f[from + i];
		s->name = g->current ? s->f->old : s->f->new;
		s->datafd = s->metafd = s->hfd = s->ifd = -1;
	}
	g->n = n;
	qsort(g->s, n, sizeof(g->s[0]), slot_cmp);
	for (i = 0; i < n && g->first == 0; i++)
		if (strcmp(g->s[i].f->id, g->held) != 0)
			note(g, ids_lock_mailbox(p->cfg, g->s[i].f->id, 0, p->opts->lock_timeout_ms,
			    &g->s[i].lock), &g->s[i]);
	if (g->first == 0 && (r = ids_mboxlist_read(p->mbl, prepare_txn, g)) < 0)
		note(g, r, &g->s[0]);
	if (g->first == 0 && (r = group_sync(g)) < 0)
		g->first = ids_error(r, "renamed, but the headers are not durable yet "
		    "(recovery will rewrite them): %s", ids_errmsg(r));
	/* Nothing is swapped in unless every new header of the batch is durable. */
	for (i = 0; i < n; i++) {
		if (g->first == 0 && g->s[i].written)
			note(g, slot_swap(&g->s[i]), &g->s[i]);
		slot_release(&g->s[i]);
	}
	return g->first;
}

/*
 * Rewrites the headers of every folder of the set (by the names in
 * f->new, or f->old with current) as the comment above says; held is
 * the uniqueid whose lock the caller holds.
 */
static int
group_headers(struct rplan *p, const char *held, int current)
{
	struct hgroup g = { p, held, current, NULL, 0, NULL, 0, 0 };
	size_t per = batch_size(), from, k;
	int r;

	if ((g.s = calloc(per < p->n ? per : p->n, sizeof(*g.s))) == NULL)
		return -ENOMEM;
	ids_fs_defer_sync(1);	/* the index CRC writes: durable by step 4 */
	for (from = 0; from < p->n && g.first == 0; from += k) {
		k = p->n - from < per ? p->n - from : per;
		ids_mboxlist_trim(p->mbl);	/* the records' pages, the last batch's */
		group_batch(&g, from, k);
	}
	/* Step 4: the renames and CRCs durable before the intent goes. */
	if (g.first == 0 && (r = group_sync(&g)) < 0)
		g.first = ids_error(r, "renamed, but the headers are not durable yet "
		    "(recovery will rewrite them): %s", ids_errmsg(r));
	ids_fs_defer_sync(0);
	group_release(&g);
	return g.first;
}


/* After the commit: every header names its folder again, then the intent goes. */
static int
headers(struct rplan *p)
{
	size_t i;
	int r, first = 0;

	if (p->n >= GROUP_SYNC_MIN) {
		first = group_headers(p, p->f[0].id, 0);
	} else {
		for (i = 0; i < p->n; i++) {
			r = rewrite_header(p->mbl, p->f[i].new, i == 0, p->opts->lock_timeout_ms);
			if (r < 0 && first == 0)
				first = ids_error(r, "%s: renamed, but its cyrus.header is not "
				    "updated yet (recovery will): %s", p->f[i].new, ids_errmsg(r));
		}
	}
	if (first < 0)
		return first;
	return ids_mboxlist_write(p->mbl, intent_del_txn, p->f[0].id);
}

static int
set_intent(struct rplan *p, const char *op, const char *stage)
{
	int r;

	snprintf(p->in.op, sizeof(p->in.op), "%s", op);
	snprintf(p->in.stage, sizeof(p->in.stage), "%s", stage);
	p->in.time = time(NULL);
	if ((r = ids_intent_set(&p->in.name, p->oldroot)) < 0)
		return r;
	return ids_intent_set(&p->in.newname, p->newroot);
}

static int
rename_folder(struct rplan *p)
{
	int r;

	if ((r = set_intent(p, IDS_OP_RENAME, IDS_STAGE_HEADERS)) < 0 ||
	    (r = ids_mboxlist_write(p->mbl, records_txn, p)) < 0)
		return r;
	return headers(p);
}

/* --- owner renames: the owner's directory ---------------------------- */

/* The owner directory of root (relative to a root) for partition part. */
static int
owner_dir(const struct rplan *p, const struct ids_mbname *root, const char *part,
    char *buf, size_t size)
{
	struct ids_location loc = { root, p->f[0].id, part, IDS_LAYOUT_UNIQUEID };
	char *slash;
	int r;

	if ((r = ids_path_reldir(p->cfg, &loc, buf, size)) < 0)
		return r;
	if ((slash = strrchr(buf, '/')) == NULL)
		return ids_error(IDS_EINVAL, "no owner directory in '%s'", buf);
	*slash = '\0';
	return 0;
}

typedef int (*root_fn)(struct rplan *p, int rootfd, const char *src, const char *dst);

/* Calls fn for each root (partition and metapartition) of the set's partitions. */
static int
each_root(struct rplan *p, const char *parts, root_fn fn)
{
	char list[1024], *tok, *save, src[PATH_MAX], dst[PATH_MAX];
	const struct ids_partition *part;
	int i, r = 0, fd;

	snprintf(list, sizeof(list), "%s", parts);
	for (tok = strtok_r(list, " ", &save); tok && r == 0; tok = strtok_r(NULL, " ", &save)) {
		if ((part = ids_config_partition(p->cfg, tok)) == NULL)
			return ids_error(IDS_EPARTITION, "partition '%s' is not configured", tok);
		if ((r = owner_dir(p, &p->oldmb, tok, src, sizeof(src))) < 0 ||
		    (r = owner_dir(p, &p->newmb, tok, dst, sizeof(dst))) < 0)
			return r;
		for (i = 0; i < 2 && r == 0; i++) {
			const char *top = i ? (p->cfg->metapartition_files ? part->metapath : NULL) :
			    part->path;

			if (top == NULL || ids_opendir_abs(top, &fd) < 0)
				continue;
			r = fn(p, fd, src, dst);
			close(fd);
		}
	}
	return r;
}

static int
exists_at(int rootfd, const char *rel)
{
	struct stat st;

	return fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int fsync_parent(int rootfd, const char *rel);

/*
 * Before anything: the new owner's directory is absent, or empty
 * (removed).  A symlink or another file there is named for what it is:
 * rmdir would call both "not a directory", and a full directory tells
 * nothing of them.
 */
static int
check_dst_dir(struct rplan *p, int rootfd, const char *src, const char *dst)
{
	const char *base = strrchr(dst, '/') ? strrchr(dst, '/') + 1 : dst;
	struct stat st;
	int r;

	if (fstatat(rootfd, dst, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : ids_error(ids_errno(), "%s: %s", dst, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return ids_error(IDS_EUNSAFE, "%s: '%s' is a symlink", dst, base);
	if (!S_ISDIR(st.st_mode))
		return ids_error(IDS_EUNSAFE, "%s: '%s' is not a directory", dst, base);
	if ((r = IDS_FAILPOINT("rename.rmdir")) < 0)
		return r;
	if (unlinkat(rootfd, dst, AT_REMOVEDIR) == 0)
		return fsync_parent(rootfd, dst);
	if (errno != ENOTEMPTY && errno != EEXIST)
		return ids_error(ids_errno(), "%s: %s", dst, strerror(errno));
	return ids_error(IDS_ECONFLICT, "%s: the new owner's directory exists and is not "
	    "empty", dst);
}

static int
fsync_parent(int rootfd, const char *rel)
{
	char parent[PATH_MAX], *slash;
	int fd, r;

	snprintf(parent, sizeof(parent), "%s", rel);
	if ((slash = strrchr(parent, '/')) == NULL)
		return ids_fsync_dir(rootfd);
	*slash = '\0';
	if ((r = ids_opendir_beneath(rootfd, parent, IDS_OPEN_CREATE, &fd)) < 0)
		return r;
	r = ids_fsync_dir(fd);
	close(fd);
	return r;
}

static int
move_dir(int rootfd, const char *from, const char *to)
{
	int r;

	if (!exists_at(rootfd, from))
		return 0;
	if ((r = fsync_parent(rootfd, to)) < 0)	/* also creates the parents */
		return r;
	if ((r = IDS_FAILPOINT("rename.dir")) < 0)
		return r;
	if (renameat2(rootfd, from, rootfd, to, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL || exists_at(rootfd, to))
			return ids_error(-errno, "%s -> %s: %s", from, to, strerror(errno));
		if (renameat(rootfd, from, rootfd, to) < 0)
			return ids_error(-errno, "%s -> %s: %s", from, to, strerror(errno));
	}
	if ((r = fsync_parent(rootfd, to)) < 0)
		return r;
	return fsync_parent(rootfd, from);
}

static int
move_forward(struct rplan *p, int rootfd, const char *src, const char *dst)
{
	return move_dir(rootfd, src, dst);
}

/* Undoing: the directory goes back where it was, if it moved. */
static int
move_back(struct rplan *p, int rootfd, const char *src, const char *dst)
{
	if (exists_at(rootfd, src))
		return 0;
	return move_dir(rootfd, dst, src);
}

/* The set's partitions, space-separated. */
static void
partitions(const struct rplan *p, char *buf, size_t size)
{
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < p->n; i++) {
		char word[130];

		snprintf(word, sizeof(word), " %s ", p->f[i].part);
		if (p->f[i].part[0] == '\0' || strstr(buf, word + 1) != NULL)
			continue;
		len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? " " : "",
		    p->f[i].part);
		if (len >= size)
			break;
	}
}

static int
rename_owner(struct rplan *p)
{
	char parts[1024];
	int r;

	partitions(p, parts, sizeof(parts));
	if ((r = set_intent(p, IDS_OP_RENAMEOWNER, IDS_STAGE_DIRS)) < 0 ||
	    (r = ids_intent_set(&p->in.partition, parts)) < 0 ||
	    (r = each_root(p, parts, check_dst_dir)) < 0 ||
	    (r = ids_userfiles_check(p->cfg, &p->oldmb, &p->newmb)) < 0 ||
	    (r = ids_mboxlist_write(p->mbl, intent_txn, p)) < 0)
		return r;
	/*
	 * The user's own files (seen state, subscriptions, sieve scripts,
	 * quota root...) move under the same intent, after the directories
	 * and before the commit: undone with them, or moved on by recovery.
	 */
	if ((r = each_root(p, parts, move_forward)) < 0 ||
	    (r = ids_userfiles_move(p->cfg, &p->oldmb, &p->newmb, IDS_USERFILES_STRICT)) < 0 ||
	    (r = ids_mboxlist_write(p->mbl, records_txn, p)) < 0) {
		/* Not committed: put the files and directories back, drop the intent. */
		if (ids_userfiles_move(p->cfg, &p->newmb, &p->oldmb, 0) == 0 &&
		    each_root(p, parts, move_back) == 0)
			ids_mboxlist_write(p->mbl, intent_del_txn, p->f[0].id);
		return r;
	}
	return headers(p);
}

/* --- copies to another owner ----------------------------------------- */

struct carry {
	int from, to;
	unsigned long long bytes;
};

static int
carry_dir(const struct carry *c)
{
	unsigned long long bytes = 0;
	enum ids_carry how;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, r = 0;

	if ((fd = dup(c->from)) < 0 || (d = fdopendir(fd)) == NULL) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		int kind = ids_folder_classify(de->d_name, NULL);

		if (fstatat(c->from, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || kind == IDS_FILE_OTHER || kind == IDS_FILE_TEMP ||
		    ids_metafile_kind(de->d_name) == IDS_META_HEADER)
			continue;
		r = ids_link_or_copy(c->from, c->to, de->d_name, &how, &bytes);
	}
	closedir(d);
	return r < 0 ? r : ids_fsync_dir(c->to);
}

struct copyjob {
	struct rplan *p;
	struct ids_mailbox *src;
	struct ids_mbentry e;		/* the new folder */
	struct ids_lock *newlock;
	int datafd, metafd;
};

static int
copy_files(struct copyjob *j)
{
	const struct ids_config *cfg = j->p->cfg;
	struct ids_mbname mb;
	struct ids_location loc;
	struct ids_header h;
	struct carry c;
	uint32_t crc;
	int hfd, ifd, r;

	if ((r = ids_location_from_entry(&j->e, &mb, &loc)) < 0 ||
	    (r = ids_folder_mkdir(cfg, &loc, &j->datafd, &j->metafd)) < 0)
		return r;
	c.from = j->src->datafd;
	c.to = j->datafd;
	if ((r = carry_dir(&c)) < 0)
		return r;
	if (j->src->metafd >= 0 && j->metafd >= 0) {
		c.from = j->src->metafd;
		c.to = j->metafd;
		if ((r = carry_dir(&c)) < 0)
			return r;
	}
	hfd = j->metafd >= 0 && (cfg->metapartition_files & (1u << IDS_META_HEADER)) ? j->metafd : j->datafd;
	ifd = j->metafd >= 0 && (cfg->metapartition_files & (1u << IDS_META_INDEX)) ? j->metafd : j->datafd;
	ids_header_init(&h);
	if ((r = ids_header_from_mbentry(&h, &j->e)) == 0)
		r = ids_header_write(hfd, &h, &crc);
	ids_header_release(&h);
	if (r < 0 || faccessat(ifd, IDS_INDEX_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return r;
	if ((r = ids_index_set_header_crc(ifd, crc)) < 0)
		return r;
	return ids_index_set_uidvalidity(ifd, j->e.uidvalidity);
}

/* The new folder's record: a new uniqueid, a UIDVALIDITY above any tombstone. */
static int
copy_entry_txn(struct ids_txn *txn, void *rock)
{
	struct copyjob *j = rock;
	struct ids_mbentry t;
	int r;

	ids_mbentry_init(&t);
	r = ids_txn_lookup_name(txn, j->e.name, &t);
	if (r == 0 && t.uidvalidity >= j->e.uidvalidity)
		j->e.uidvalidity = t.uidvalidity + 1;
	ids_mbentry_release(&t);
	if (r < 0 && r != IDS_ENOTFOUND)
		return r;
	return ids_intent_put(txn, j->e.uniqueid, &j->p->in);
}

static int
copy_commit_txn(struct ids_txn *txn, void *rock)
{
	struct copyjob *j = rock;
	struct ids_mbentry src;
	int r;

	ids_mbentry_init(&src);
	if ((r = ids_txn_lookup_name(txn, j->p->oldroot, &src)) < 0)
		goto out;
	if (ids_mbentry_is_tombstone(&src) || strcmp(src.uniqueid, j->src->entry.uniqueid)) {
		r = ids_error(IDS_EBUSY, "%s: changed during the copy", j->p->oldroot);
		goto out;
	}
	ids_mbtype_set(src.mbtype, IDS_MBFLAG_DELETED, 1);
	ids_mbtype_set(src.mbtype, IDS_MBFLAG_LEGACY, 0);
	free(src.partition);
	src.partition = NULL;
	ids_acl_free(src.acl, src.nacl);
	src.acl = NULL;
	src.nacl = 0;
	src.mtime = time(NULL);
	if ((r = ids_txn_put(txn, &src)) < 0 || (r = ids_txn_put(txn, &j->e)) < 0)
		goto out;
	strcpy(j->p->in.stage, IDS_STAGE_REMOVE);
	r = ids_intent_put(txn, j->e.uniqueid, &j->p->in);
out:
	ids_mbentry_release(&src);
	return r;
}

static int
copy_setup(struct copyjob *j)
{
	struct rplan *p = j->p;
	struct ids_mbentry *s = &j->src->entry;
	char id[IDS_UNIQUEID_MAX + 1], owner[IDS_MBNAME_MAX + 1], rel[PATH_MAX];
	struct ids_location nloc;
	struct ids_mbname nmb;
	int r;

	if ((r = ids_uniqueid_new(id)) < 0 ||
	    (r = ids_lock_mailbox(p->cfg, id, IDS_LOCK_NONBLOCK, 0, &j->newlock)) < 0)
		return r;
	if ((j->e.name = strdup(p->newroot)) == NULL || (j->e.uniqueid = strdup(id)) == NULL ||
	    (j->e.partition = strdup(s->partition)) == NULL)
		return -ENOMEM;
	strcpy(j->e.mbtype, "e");
	j->e.uidvalidity = s->uidvalidity;
	j->e.createdmodseq = s->createdmodseq;
	j->e.foldermodseq = s->foldermodseq + 1;
	j->e.mtime = time(NULL);
	if (ids_mbname_is_user(&p->newmb)) {
		if ((r = ids_mbname_owner(&p->newmb, owner, sizeof(owner))) < 0 ||
		    (r = ids_acl_set(&j->e.acl, &j->e.nacl, owner, "lrswipkxtecdan")) < 0)
			return r;
	}
	if ((r = ids_path_reldir(p->cfg, &j->src->loc, rel, sizeof(rel))) < 0 ||
	    (r = set_intent(p, IDS_OP_COPY, IDS_STAGE_COPY)) < 0 || (r = ids_intent_set(&p->in.src, rel)) < 0 ||
	    (r = ids_intent_set(&p->in.partition, s->partition)) < 0)
		return r;
	if ((r = ids_location_from_entry(&j->e, &nmb, &nloc)) < 0 ||
	    (r = ids_path_reldir(p->cfg, &nloc, rel, sizeof(rel))) < 0)
		return r;
	return ids_intent_set(&p->in.dst, rel);
}

static int
copy_folder(struct rplan *p)
{
	struct copyjob j;
	int r;

	memset(&j, 0, sizeof(j));
	j.p = p;
	j.datafd = j.metafd = -1;
	ids_mbentry_init(&j.e);
	if ((r = ids_mailbox_open(p->mbl, p->oldroot, IDS_MAILBOX_WRITE,
	    p->opts->lock_timeout_ms, &j.src)) < 0 ||
	    (r = copy_setup(&j)) < 0 ||
	    (r = ids_mboxlist_write(p->mbl, copy_entry_txn, &j)) < 0)
		goto out;
	if ((r = copy_files(&j)) < 0 ||
	    (r = ids_mboxlist_write(p->mbl, copy_commit_txn, &j)) < 0) {
		/* Not committed: the new directory goes, the source stays. */
		if (ids_folder_remove(p->cfg, p->in.partition, p->in.dst) == 0)
			ids_mboxlist_write(p->mbl, intent_del_txn, j.e.uniqueid);
		goto out;
	}
	/*
	 * Committed: the source is a tombstone; its files go, and its
	 * tombstone goes on disk (under the namespace lock we hold), before
	 * the intent, so that recovery does both after a crash.
	 */
	if ((r = ids_folder_remove(p->cfg, p->in.partition, p->in.src)) == 0 &&
	    (r = ids_tombstones_write_owner(p->mbl, p->oldroot, IDS_TOMBSTONES_HELD)) == 0)
		r = ids_mboxlist_write(p->mbl, intent_del_txn, j.e.uniqueid);
out:
	if (j.datafd >= 0)
		close(j.datafd);
	if (j.metafd >= 0)
		close(j.metafd);
	ids_mailbox_close(j.src);
	ids_unlock(j.newlock);
	ids_mbentry_release(&j.e);
	return r;
}

/* --- the driver ------------------------------------------------------ */

static int
plan_init(struct rplan *p, struct ids_mboxlist *mbl, const char *oldname,
    const char *newname, const struct ids_rename_opts *opts)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->mbl = mbl;
	p->cfg = ids_mboxlist_config(mbl);
	p->opts = opts;
	ids_intent_init(&p->in);
	if ((r = ids_mbname_parse_internal(&p->oldmb, oldname, 0)) < 0 ||
	    (r = ids_mbname_parse_internal(&p->newmb, newname, IDS_MBNAME_STRICT)) < 0 ||
	    (r = ids_mbname_internal(&p->oldmb, p->oldroot, sizeof(p->oldroot))) < 0 ||
	    (r = ids_mbname_internal(&p->newmb, p->newroot, sizeof(p->newroot))) < 0 ||
	    (r = ids_mbname_owner(&p->oldmb, p->oldowner, sizeof(p->oldowner))) < 0 ||
	    (r = ids_mbname_owner(&p->newmb, p->newowner, sizeof(p->newowner))) < 0)
		return r;
	return classify(p);
}

static void
plan_release(struct rplan *p)
{
	ids_unlock(p->rootlock);
	ids_unlock(p->ns[1]);
	ids_unlock(p->ns[0]);
	ids_intent_release(&p->in);
	clear_folders(p);
	free(p->f);
}

static int
collect(struct rplan *p)
{
	int r;

	if ((r = ids_mboxlist_read(p->mbl, collect_txn, p)) < 0)
		return r;
	/* A set of many folders mapped much of the file: out of the resident set. */
	if (p->n >= GROUP_SYNC_MIN)
		ids_mboxlist_trim(p->mbl);
	return check_partition(p);
}

int
ids_rename(struct ids_mboxlist *mbl, const char *oldname, const char *newname,
    const struct ids_rename_opts *opts)
{
	struct rplan p;
	int r;

	if ((r = plan_init(&p, mbl, oldname, newname, opts)) < 0 ||
	    (r = lock_owners(&p)) < 0 || (r = collect(&p)) < 0 ||
	    (r = report_plan(&p)) < 0 || (opts->flags & IDS_RENAME_DRYRUN))
		goto out;
	if (p.kind == KIND_COPY) {
		r = copy_folder(&p);
		goto out;
	}
	/* Migrate first, then collect again: names and layouts are settled. */
	if ((r = convert_legacy(&p)) < 0 || (r = collect(&p)) < 0 ||
	    (r = ids_lock_mailbox(p.cfg, p.f[0].id, 0, opts->lock_timeout_ms, &p.rootlock)) < 0)
		goto out;
	r = p.kind == KIND_FOLDER ? rename_folder(&p) : rename_owner(&p);
out:
	plan_release(&p);
	return r;
}

/* --- recovery -------------------------------------------------------- */

/* The folders now under the intent's new root (and its owner's DELETED ones). */
static int
recover_plan(struct rplan *p, struct ids_mboxlist *mbl, const struct ids_intent *in,
    const struct ids_rename_opts *opts)
{
	int r;

	if (in->name == NULL || in->newname == NULL)
		return ids_error(IDS_ECORRUPT, "rename intent without names");
	if ((r = plan_init(p, mbl, in->name, in->newname, opts)) < 0)
		return r;
	p->recovering = 1;
	return 0;
}

static int
collect_new_txn(struct ids_txn *txn, void *rock)
{
	struct rplan *p = rock;
	int r;

	clear_folders(p);
	if ((r = ids_txn_foreach(txn, p->newroot, add_cb, p)) < 0)
		return r;
	if (p->kind == KIND_OWNER)
		r = collect_owner_deleted(txn, p, &p->newmb, add_cb);
	return r;
}

static int
recover_headers(struct rplan *p, const char *uniqueid)
{
	size_t i;
	int r, first = 0;

	if ((r = ids_mboxlist_read(p->mbl, collect_new_txn, p)) < 0)
		return r;
	/* Collected while recovering, f->old holds each folder's current name. */
	if (p->n >= GROUP_SYNC_MIN) {
		first = group_headers(p, uniqueid, 1);
		goto out;
	}
	for (i = 0; i < p->n; i++) {
		r = rewrite_header(p->mbl, p->f[i].old, strcmp(p->f[i].id, uniqueid) == 0,
		    p->opts->lock_timeout_ms);
		if (r < 0 && first == 0)
			first = r;
	}
out:
	return first < 0 ? first : ids_mboxlist_write(p->mbl, intent_del_txn, (void *)uniqueid);
}

static int
recover_copy(struct ids_mboxlist *mbl, const char *uniqueid, const struct ids_intent *in)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	int r;

	if (strcmp(in->stage, IDS_STAGE_REMOVE) == 0) {
		r = ids_folder_remove(cfg, in->partition, in->src);
		if (r == 0 && in->name != NULL)
			r = ids_tombstones_write_owner(mbl, in->name, IDS_TOMBSTONES_TRY);
	} else {
		r = ids_folder_remove(cfg, in->partition, in->dst);
	}
	return r < 0 ? r : ids_mboxlist_write(mbl, intent_del_txn, (void *)uniqueid);
}

int
ids_rename_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in)
{
	struct ids_rename_opts opts = IDS_RENAME_OPTS_INIT;
	struct rplan p;
	int r;

	if (strcmp(in->op, IDS_OP_COPY) == 0)
		return recover_copy(mbl, uniqueid, in);
	memset(&p, 0, sizeof(p));
	ids_intent_init(&p.in);
	if ((r = recover_plan(&p, mbl, in, &opts)) < 0)
		goto out;
	if (strcmp(in->stage, IDS_STAGE_DIRS) == 0) {
		/* The records were not renamed: the directories go back. */
		if (in->partition == NULL) {
			r = ids_error(IDS_ECORRUPT, "owner rename intent without partitions");
			goto out;
		}
		p.f = calloc(1, sizeof(*p.f));
		if (p.f == NULL || (r = set_names(&p.f[0], "", "", "")) < 0) {
			r = -ENOMEM;
			goto out;
		}
		p.n = 1;
		snprintf(p.f[0].id, sizeof(p.f[0].id), "%s", uniqueid);
		if ((r = ids_userfiles_move(p.cfg, &p.newmb, &p.oldmb, 0)) == 0 &&
		    (r = each_root(&p, in->partition, move_back)) == 0)
			r = ids_mboxlist_write(mbl, intent_del_txn, (void *)uniqueid);
	} else {
		/* Committed: a user file still at the old name goes on. */
		if (strcmp(in->op, IDS_OP_RENAMEOWNER) != 0 ||
		    (r = ids_userfiles_move(p.cfg, &p.oldmb, &p.newmb, 0)) == 0)
			r = recover_headers(&p, uniqueid);
	}
out:
	plan_release(&p);
	return r;
}
