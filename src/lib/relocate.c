/*
 * relocate.c - one legacy folder to its uniqueid path (relocate.h).
 *
 * The steps, under the folder's mailbox lock (spool-layout.md,
 * "Migration", has the same list with the crash analysis):
 *
 *   1. check the legacy directory: a symlink, device, FIFO or socket in
 *      it stops the folder before anything is written;
 *   2. commit an intent record (stage "link" or "rename");
 *   3. link: create the uniqueid directory, hard-link every file of the
 *      folder into it (copy + SHA-1 verify where linking is impossible),
 *      reading each name back as it is made, then fsync it; rename: move
 *      the directory;
 *   4. write the new directory's cyrus.header afresh (a new inode:
 *      current name, uniqueid, history) and point its cyrus.index at it
 *      (link: a header that is current already was linked in step 3
 *      with its index instead);
 *   5. flip the record to the uniqueid layout and move the intent to
 *      stage "flipped" in one transaction: the commit point;
 *   6. after the grace period, unlink the old names, remove emptied
 *      legacy directories, remove the intent.
 *
 * A crash before 5 leaves the legacy folder complete and in use: the
 * next recovery rolls the new directory back.  A crash after 5 leaves
 * the new folder complete and in use: recovery finishes step 6.
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

#include "buf.h"
#include "error.h"
#include "failpoint.h"
#include "failure.h"
#include "fsutil.h"
#include "guid.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "layout.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "relocate.h"

#define NROOTS 2	/* the partition, and its metapartition */

/*
 * A batch's roots, opened once per partition (up to ROOTS_MAX
 * partitions; members of more open their own) and closed at its end.
 */
#define ROOTS_MAX 16
struct roots {
	const struct ids_partition *part;
	int fd[NROOTS];
	dev_t dev[NROOTS];
	/*
	 * The parent a member's new directory was last made in, open, for
	 * the next member of the same owner (make_dst): kept for one step
	 * only, while every member that uses it is locked.  pdir NULL: none.
	 */
	char *pdir[NROOTS];
	int pfd[NROOTS];
};

struct reloc {
	struct ids_mboxlist *mbl;
	const struct ids_config *cfg;
	const struct ids_partition *part;
	const struct ids_relocate_opts *opts;
	struct ids_relocate_stats *stats;
	struct ids_mbentry *entry;
	struct ids_mbname mb;
	char uniqueid[IDS_UNIQUEID_MAX + 1];
	char src[PATH_MAX];		/* legacy directory, relative to a root */
	char dst[PATH_MAX];		/* uniqueid directory, relative to a root */
	int root[NROOTS];		/* -1 when the root is not in use */
	int sfd[NROOTS];		/* legacy directory per root, or -1 */
	int dfd[NROOTS];		/* uniqueid directory per root, or -1 */
	int sfresh[NROOTS];		/* sfd[i] just opened, not read yet (no rewind) */
	int dfresh[NROOTS];		/* the same for dfd[i] */
	/*
	 * Link: the legacy directory's entries as the check read them
	 * (complete: all of them), which the link pass and the cleanup go
	 * through instead of reading the directory again; and the new
	 * directory's names as the read-back found them, with the header
	 * and index made after it (complete: read whole), for the cleanup.
	 * Both hold while the folder is locked.
	 */
	struct ids_dirlist slist[NROOTS];
	struct ids_dirlist dlist[NROOTS];
	int listing;		/* the check records slist */
	int carry_meta;		/* link: the legacy header is current: linked, with its index */
	char *hdr;		/* link: the legacy cyrus.header as header_current read it */
	size_t hdrlen;
	int checked;		/* the check passed under the lock: no symlink, no special file */
	struct roots *rs;	/* the batch's roots of this partition, or NULL */
	dev_t rootdev[NROOTS];		/* the file system of root[i] (one syncfs each) */
	struct ids_dirlist *dl;		/* cleanup: the destination's names */
	struct ids_dirlist *linked;	/* link: names linked, to read back */
	int has_subdirs;
	int recheck;		/* rename: subdirectories at the check, read it again */
	int renamed;		/* a batch renamed the directories (prune from the parent) */
	int shared_roots;	/* root[] belongs to the batch (struct roots) */
	int saw_header;			/* cleanup: the old cyrus.header, removed last */
	int has_foreign;	/* files not part of the folder: they stay behind */
};

const char *
ids_strategy_name(enum ids_strategy s)
{
	return s == IDS_STRATEGY_RENAME ? "rename" : "link";
}

int
ids_strategy_parse(const char *s, enum ids_strategy *out)
{
	if (strcmp(s, "link") == 0)
		*out = IDS_STRATEGY_LINK;
	else if (strcmp(s, "rename") == 0)
		*out = IDS_STRATEGY_RENAME;
	else
		return ids_error(IDS_EINVAL, "strategy '%s': use link or rename", s);
	return 0;
}

/* --- setting up ------------------------------------------------------ */

static void
reloc_close(struct reloc *rl)
{
	int i;

	for (i = 0; i < NROOTS; i++) {
		if (rl->root[i] >= 0 && !rl->shared_roots)
			close(rl->root[i]);
		if (rl->sfd[i] >= 0)
			close(rl->sfd[i]);
		if (rl->dfd[i] >= 0)
			close(rl->dfd[i]);
		rl->root[i] = rl->sfd[i] = rl->dfd[i] = -1;
		ids_dirlist_free(&rl->slist[i]);
		ids_dirlist_free(&rl->dlist[i]);
	}
	free(rl->hdr);
	rl->hdr = NULL;
}

/* The root (0 data, 1 meta) that holds meta files of kind. */
static int
root_of(const struct reloc *rl, enum ids_metafile kind)
{
	return rl->root[1] >= 0 && (rl->cfg->metapartition_files & (1u << kind)) ? 1 : 0;
}

static int
open_dir(int root, const char *rel, int *fdp)
{
	int r = ids_opendir_beneath(root, rel, 0, fdp);

	if (r == -ENOENT)
		*fdp = -1;
	return r == -ENOENT ? 0 : r;
}

/*
 * Fills in both directories from the record and opens what exists.
 * The record's strings stay owned by the caller.  shared: a batch's
 * member, which takes the batch's roots (shared[ROOTS_MAX], a slot
 * opened for the first member of a partition) and does not look for
 * the uniqueid directory (it finds a leftover one when its rename or
 * mkdir runs into it).
 */
static int
reloc_init(struct reloc *rl, struct ids_mboxlist *mbl, struct ids_mbentry *e,
    const struct ids_intent *in, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats, struct roots *shared)
{
	struct ids_location loc;
	const char *tops[NROOTS];
	size_t k;
	int batch, i, r;

	memset(rl, 0, sizeof(*rl));
	for (i = 0; i < NROOTS; i++)
		rl->root[i] = rl->sfd[i] = rl->dfd[i] = -1;
	rl->mbl = mbl;
	rl->cfg = ids_mboxlist_config(mbl);
	rl->opts = opts;
	rl->stats = stats;
	rl->entry = e;
	snprintf(rl->uniqueid, sizeof(rl->uniqueid), "%s", e->uniqueid);
	if ((r = ids_location_from_entry(e, &rl->mb, &loc)) < 0)
		return r;
	if ((rl->part = ids_config_partition(rl->cfg, e->partition)) == NULL)
		return ids_error(IDS_EPARTITION, "%s: partition '%s' is not configured",
		    e->name, e->partition ? e->partition : "(default)");
	/*
	 * Recovering, the directories are the ones the intent recorded: the
	 * folder may have been renamed since (its legacy path moves with
	 * its name, the files do not).
	 */
	if (in != NULL && in->src != NULL && in->dst != NULL) {
		if (strlen(in->src) >= sizeof(rl->src) || strlen(in->dst) >= sizeof(rl->dst) ||
		    strstr(in->src, "..") || strstr(in->dst, ".."))
			return ids_error(IDS_ECORRUPT, "intent of %s: bad directories", rl->uniqueid);
		strcpy(rl->src, in->src);
		strcpy(rl->dst, in->dst);
	} else {
		loc.layout = IDS_LAYOUT_LEGACY;
		if ((r = ids_path_reldir(rl->cfg, &loc, rl->src, sizeof(rl->src))) < 0)
			return r;
		loc.layout = IDS_LAYOUT_UNIQUEID;
		if ((r = ids_path_reldir(rl->cfg, &loc, rl->dst, sizeof(rl->dst))) < 0)
			return r;
	}
	tops[0] = rl->part->path;
	tops[1] = rl->cfg->metapartition_files ? rl->part->metapath : NULL;
	/* The batch's slot of this partition; a new one for its first member. */
	for (k = 0; shared != NULL && k < ROOTS_MAX && shared[k].part != NULL &&
	    shared[k].part != rl->part; k++)
		;
	batch = shared != NULL;
	shared = shared != NULL && k < ROOTS_MAX ? &shared[k] : NULL;
	if (shared != NULL && shared->part == NULL) {
		/* Opened like a member's own roots below, then handed over. */
		if ((r = reloc_init(rl, mbl, e, in, opts, stats, NULL)) < 0)
			return r;
		for (i = 0; i < NROOTS; i++) {
			shared->fd[i] = rl->root[i];
			shared->dev[i] = rl->rootdev[i];
			rl->root[i] = -1;
		}
		shared->part = rl->part;
		reloc_close(rl);
		return reloc_init(rl, mbl, e, in, opts, stats, shared - k);
	}
	rl->shared_roots = shared != NULL;
	rl->rs = shared;
	for (i = 0; i < NROOTS; i++) {
		struct stat st;

		if (tops[i] == NULL)
			continue;
		if (shared != NULL) {
			rl->root[i] = shared->fd[i];
			rl->rootdev[i] = shared->dev[i];
		} else {
			if ((r = ids_opendir_abs(tops[i], &rl->root[i])) < 0)
				return ids_error(r, "%s: %s", tops[i], ids_strerror(r));
			if (fstat(rl->root[i], &st) < 0)
				return -errno;
			rl->rootdev[i] = st.st_dev;
		}
		if ((r = open_dir(rl->root[i], rl->src, &rl->sfd[i])) < 0 ||
		    (!batch && (r = open_dir(rl->root[i], rl->dst, &rl->dfd[i])) < 0))
			return ids_error(r, "%s: %s", tops[i], ids_errmsg(r));
		rl->sfresh[i] = rl->sfd[i] >= 0;
		rl->dfresh[i] = rl->dfd[i] >= 0;
	}
	return 0;
}

/* --- directory walks ------------------------------------------------- */

/* Directories larger than this are read back a name at a time. */
#define LIST_MAX 65536

typedef int (*entry_fn)(struct reloc *rl, int i, const char *name,
    const struct stat *st);

struct walk {
	struct reloc *rl;
	int i, dirfd, full;
	entry_fn fn;
};

static int
walk_entry(void *rock, const char *name, ino_t ino, unsigned char type)
{
	struct walk *w = rock;
	struct stat st;

	if (!w->full && type != DT_UNKNOWN) {
		memset(&st, 0, sizeof(st));
		st.st_mode = DTTOIF(type);
		st.st_ino = ino;
	} else if (fstatat(w->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	return w->fn(w->rl, w->i, name, &st);
}

/*
 * Calls fn for every entry of dirfd but "." and "..", stat'ed without
 * following.  Without full, only st_mode and st_ino are filled in where
 * readdir tells the type (which spares a stat per file and pass); full
 * asks for the whole stat.
 */
static int
each_entry_how(struct reloc *rl, int i, int dirfd, entry_fn fn, int full)
{
	struct walk w = { rl, i, dirfd, full, fn };
	int *fresh = dirfd == rl->sfd[i] ? &rl->sfresh[i] :
	    dirfd == rl->dfd[i] ? &rl->dfresh[i] : NULL;
	int r;

	/* A directory not read yet needs no rewind. */
	r = (fresh != NULL && *fresh ? ids_dir_each_fresh : ids_dir_each)(dirfd, walk_entry, &w);
	if (fresh != NULL)
		*fresh = 0;
	return r;
}

/* Calls fn for each entry of a list the check recorded (slist). */
static int
each_listed(struct reloc *rl, int i, const struct ids_dirlist *dl, entry_fn fn)
{
	struct stat st;
	size_t k;
	int r;

	for (k = 0; k < dl->n; k++) {
		memset(&st, 0, sizeof(st));
		st.st_mode = DTTOIF(dl->ent[k].type);
		st.st_ino = dl->ent[k].ino;
		if ((r = fn(rl, i, dl->names + dl->ent[k].name, &st)) != 0)
			return r;
	}
	return 0;
}

static int
each_entry(struct reloc *rl, int i, int dirfd, entry_fn fn)
{
	return each_entry_how(rl, i, dirfd, fn, 0);
}

static int
preflight_entry(struct reloc *rl, int i, const char *name, const struct stat *st)
{
	const char *top = i ? rl->part->metapath : rl->part->path;

	/* Past the list's size (or out of memory) the passes read the directory. */
	if (rl->listing && rl->slist[i].complete && (rl->slist[i].n >= LIST_MAX ||
	    ids_dirlist_add(&rl->slist[i], name, st->st_ino, IFTODT(st->st_mode)) < 0))
		rl->slist[i].complete = 0;

	if (S_ISDIR(st->st_mode)) {
		rl->has_subdirs = 1;
		return 0;
	}
	if (S_ISREG(st->st_mode)) {
		rl->has_foreign |= ids_folder_classify(name, NULL) == IDS_FILE_OTHER;
		return 0;
	}
	return ids_error(IDS_EUNSAFE, "%s/%s/%s: %s in the folder; not migrated",
	    top, rl->src, name, S_ISLNK(st->st_mode) ? "symlink" : "special file");
}

/*
 * The check.  For the link strategy it also records the directory's
 * entries (slist): the folder is locked from here to its cleanup, so
 * the link pass and the cleanup go through the list instead of reading
 * the directory twice more.
 */
static int
preflight(struct reloc *rl)
{
	int i, r;

	rl->checked = 0;
	rl->listing = rl->opts != NULL && rl->opts->strategy == IDS_STRATEGY_LINK;
	for (i = 0; i < NROOTS; i++) {
		ids_dirlist_free(&rl->slist[i]);
		rl->slist[i].complete = rl->listing;
		if (rl->sfd[i] >= 0 && (r = each_entry(rl, i, rl->sfd[i], preflight_entry)) < 0) {
			ids_dirlist_free(&rl->slist[i]);
			return r;
		}
		if (rl->sfd[i] < 0)
			rl->slist[i].complete = 0;
	}
	rl->checked = 1;
	return 0;
}

/* --- link and copy --------------------------------------------------- */

/* The name exists at the destination: ours (same inode or content) or a conflict. */
static int
existing_is_ours(struct reloc *rl, int i, const char *name)
{
	int r = ids_same_file(rl->sfd[i], rl->dfd[i], name);

	if (r < 0)
		return r;
	return r ? 0 : ids_error(IDS_ECONFLICT, "%s/%s: a different file is already there",
	    rl->dst, name);
}

static int
link_one(struct reloc *rl, int i, const char *name, enum ids_carry *howp)
{
	unsigned long long *bytes = &rl->stats->bytes_copied;
	enum ids_carry how = IDS_CARRY_EXISTED;
	int r;

	/* An injected link failure takes the path a real one would. */
	if ((r = IDS_FAILPOINT("relocate.link")) < 0 &&
	    r != -EXDEV && r != -EMLINK && r != -EPERM)
		return ids_error(r, "%s/%s: link: %s", rl->dst, name, strerror(-r));
	r = r < 0 ? ids_copy_only(rl->sfd[i], rl->dfd[i], name, &how, bytes) :
	    ids_link_or_copy(rl->sfd[i], rl->dfd[i], name, &how, bytes);
	if (r == IDS_ECONFLICT)
		return ids_error(r, "%s/%s: a different file is already there", rl->dst, name);
	if (r < 0)
		return r;
	if (how == IDS_CARRY_LINKED)
		rl->stats->files_linked++;
	else if (how == IDS_CARRY_COPIED)
		rl->stats->files_copied++;
	*howp = how;
	return 0;
}

/*
 * A file the migration carries over; cyrus.header is written anew
 * instead, unless it is current (carry_meta: linked as it is).
 */
static int
carried(const struct reloc *rl, const char *name)
{
	switch (ids_folder_classify(name, NULL)) {
	case IDS_FILE_MESSAGE:
		return 1;
	case IDS_FILE_META:
		return ids_metafile_kind(name) != IDS_META_HEADER || rl->carry_meta;
	default:
		return 0;
	}
}


/*
 * Read back: every name linked to the destination is the source's
 * file.  Run after the folder's links (rl->linked: each name with the
 * source's inode number from readdir), with the destination's names
 * read once: a new link has the source's inode number there (readdir's,
 * within one file system: linking worked).  Anything else (a name that
 * is not listed, a file system whose readdir numbers differ from
 * stat's) is compared in full.
 */
static int
verify_links(struct reloc *rl, int i, const struct ids_dirlist *linked)
{
	const struct ids_dirlist_ent *d, *e;
	struct ids_dirlist dl;
	const char *name;
	size_t k;
	int listed, r = 0;

	if (linked->n == 0)
		return 0;
	listed = (rl->dfresh[i] ? ids_dirlist_read_fresh : ids_dirlist_read)(rl->dfd[i],
	    LIST_MAX, &dl) == 0;
	rl->dfresh[i] = 0;
	for (k = 0; r == 0 && k < linked->n; k++) {
		e = &linked->ent[k];
		name = linked->names + e->name;
		d = listed ? ids_dirlist_find(&dl, name) : NULL;
		if (d != NULL && d->type == DT_REG && e->ino != 0 && d->ino == e->ino)
			continue;
		if (existing_is_ours(rl, i, name) != 0)
			r = ids_error(IDS_ECONFLICT, "%s/%s: missing or different after linking",
			    rl->dst, name);
	}
	/* Kept for the cleanup, which checks each old name against it. */
	ids_dirlist_free(&rl->dlist[i]);
	if (r == 0 && listed)
		rl->dlist[i] = dl;
	else
		ids_dirlist_free(&dl);
	return r;
}

/* Calls fn for each entry of sfd[i], with dfd[i]'s names at hand in rl->dl. */
static int
each_with_dst(struct reloc *rl, int i, entry_fn fn)
{
	struct ids_dirlist dl;
	int r;

	rl->dl = NULL;
	if (rl->dfd[i] >= 0 && (rl->dfresh[i] ? ids_dirlist_read_fresh :
	    ids_dirlist_read)(rl->dfd[i], LIST_MAX, &dl) == 0)
		rl->dl = &dl;	/* unreadable: fn stats instead */
	rl->dfresh[i] = 0;
	r = each_entry(rl, i, rl->sfd[i], fn);
	rl->dl = NULL;
	if (rl->dfd[i] >= 0)
		ids_dirlist_free(&dl);
	return r;
}

static int
link_entry(struct reloc *rl, int i, const char *name, const struct stat *st)
{
	enum ids_carry how;
	int r;

	if (!S_ISREG(st->st_mode))
		return S_ISDIR(st->st_mode) ? 0 :
		    ids_error(IDS_EUNSAFE, "%s/%s: not a regular file", rl->src, name);
	if (!carried(rl, name)) {
		if (ids_folder_classify(name, NULL) == IDS_FILE_OTHER)
			rl->stats->files_foreign++;
		return 0;
	}
	/* cyrus.index is copied with the new header's CRC (write_header). */
	if (ids_metafile_kind(name) == IDS_META_INDEX && !rl->carry_meta)
		return 0;
	if ((r = link_one(rl, i, name, &how)) < 0)
		return r;
	/*
	 * A new link is read back with the others (verify_links); a copy,
	 * a name that was there, or one past the list's size, at once.
	 */
	if ((how != IDS_CARRY_LINKED || rl->linked->n >= LIST_MAX ||
	    ids_dirlist_add(rl->linked, name, st->st_ino, DT_REG) < 0) &&
	    existing_is_ours(rl, i, name) != 0)
		return ids_error(IDS_ECONFLICT, "%s/%s: missing or different after linking",
		    rl->dst, name);
	return rl->opts->throttle ? rl->opts->throttle(rl->opts->throttle_rock) : 0;
}

/* Creates the uniqueid directory on every root in use (it may exist, empty). */
static int
make_dst(struct reloc *rl)
{
	char parent[PATH_MAX], *slash;
	int i, pfd, r;

	snprintf(parent, sizeof(parent), "%s", rl->dst);
	slash = strrchr(parent, '/');
	*slash = '\0';
	for (i = 0; i < NROOTS; i++) {
		struct roots *rs = ids_fs_deferred() ? rl->rs : NULL;
		int cached = 0;

		if (rl->root[i] < 0 || rl->dfd[i] >= 0)
			continue;
		/*
		 * In a batch's step (no fsync of the parent: the step's syncfs)
		 * the members of one owner share the parent: opened once.
		 */
		if (rs != NULL && rs->pdir[i] != NULL && strcmp(rs->pdir[i], parent) == 0) {
			pfd = rs->pfd[i];
			cached = 1;
		} else if ((r = ids_opendir_beneath(rl->root[i], parent, IDS_OPEN_CREATE, &pfd)) < 0)
			return r;
		if ((r = IDS_FAILPOINT("relocate.mkdir")) == 0 &&
		    mkdirat(pfd, slash + 1, 0750) < 0 && errno != EEXIST)
			r = -errno;
		if (r == 0)
			r = ids_fsync_dir(pfd);
		if (!cached && rs != NULL && r == 0) {
			if (rs->pdir[i] != NULL) {
				close(rs->pfd[i]);
				free(rs->pdir[i]);
			}
			if ((rs->pdir[i] = strdup(parent)) != NULL)
				rs->pfd[i] = pfd;
			else
				close(pfd);
		} else if (!cached)
			close(pfd);
		if (r < 0 || (r = ids_opendir_beneath(rl->root[i], rl->dst, 0, &rl->dfd[i])) < 0)
			return r;
		rl->dfresh[i] = 1;
	}
	return 0;
}

/* Closes the parents a step's members shared (make_dst). */
static void
roots_forget_parents(struct roots *rs)
{
	size_t k;
	int i;

	for (k = 0; k < ROOTS_MAX && rs[k].part != NULL; k++)
		for (i = 0; i < NROOTS; i++)
			if (rs[k].pdir[i] != NULL) {
				close(rs[k].pfd[i]);
				free(rs[k].pdir[i]);
				rs[k].pdir[i] = NULL;
			}
}

static int header_current(struct reloc *rl);

static int
link_all(struct reloc *rl)
{
	struct ids_dirlist linked;
	int i, r;

	rl->carry_meta = header_current(rl);
	if ((r = make_dst(rl)) < 0)
		return r;
	for (i = 0; i < NROOTS; i++) {
		if (rl->sfd[i] < 0)
			continue;
		memset(&linked, 0, sizeof(linked));
		rl->linked = &linked;
		if ((r = rl->slist[i].complete ? each_listed(rl, i, &rl->slist[i], link_entry) :
		    each_entry(rl, i, rl->sfd[i], link_entry)) == 0 &&
		    (r = verify_links(rl, i, &linked)) == 0)
			r = ids_fsync_dir(rl->dfd[i]);
		rl->linked = NULL;
		ids_dirlist_free(&linked);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- the new cyrus.header -------------------------------------------- */

/*
 * Reads a small file of a directory the check went through under the
 * folder's lock (rl->checked: no symlink, device or FIFO in it), so
 * without ids_read_file's fstat: open (never following, never
 * blocking), one read into a buffer of READ_SMALL bytes (a regular file
 * gives all it has up to the count), close.  A file that fills it is
 * read again by ids_read_file, up to max.
 */
#define READ_SMALL 8192

static int
read_checked(int dirfd, const char *name, size_t max, char **bufp, size_t *lenp)
{
	char *buf;
	ssize_t n;
	int fd, r = 0;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) < 0)
		return errno == ELOOP ? ids_error(IDS_EUNSAFE, "'%s' is a symlink", name) : -errno;
	if ((buf = malloc(READ_SMALL)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while ((n = read(fd, buf, READ_SMALL)) < 0 && errno == EINTR)
		;
	if (n < 0)
		r = -errno;
	close(fd);
	if (r < 0 || n == READ_SMALL) {
		free(buf);
		return r < 0 ? r : ids_read_file(dirfd, name, max, bufp, lenp);
	}
	buf[n] = '\0';
	*bufp = buf;
	*lenp = (size_t)n;
	return 0;
}

/*
 * Link: 1 if the legacy cyrus.header already says what the record will
 * say once flipped (the canonical forms equal, as write_header compares
 * them; the header holds no path).  Then it is carried as it is: linked
 * with its cyrus.index, whose CRC of it still holds, instead of a new
 * header and an index copy (two files made, the index read and
 * written).  The bytes read stay in rl->hdr for write_header.
 */
static int
header_current(struct reloc *rl)
{
	struct ids_buf b = IDS_BUF_INIT, was = IDS_BUF_INIT;
	struct ids_mbentry e;
	struct ids_header h;
	int hr = root_of(rl, IDS_META_HEADER), same = 0;

	free(rl->hdr);
	rl->hdr = NULL;
	if (rl->sfd[hr] < 0 || !rl->checked ||
	    read_checked(rl->sfd[hr], IDS_HEADER_FILE, IDS_HEADER_MAX_SIZE, &rl->hdr,
	    &rl->hdrlen) < 0) {
		rl->hdr = NULL;
		return 0;
	}
	ids_header_init(&h);
	ids_mbentry_init(&e);
	/* The old format (<= 3.4) is always rewritten. */
	if (rl->hdrlen > IDS_HEADER_MAGIC_LEN && rl->hdr[IDS_HEADER_MAGIC_LEN] == '%' &&
	    ids_header_parse(&h, rl->hdr, rl->hdrlen) == 0 && ids_header_format(&h, &was) == 0 &&
	    ids_mboxlist_lookup_id(rl->mbl, rl->uniqueid, &e) == 0 &&
	    ids_mbtype_set(e.mbtype, IDS_MBFLAG_LEGACY, 0) == 0 &&
	    ids_header_from_mbentry(&h, &e) == 0 && ids_header_format(&h, &b) == 0)
		same = b.len == was.len && memcmp(b.s, was.s, was.len) == 0;
	ids_buf_release(&b);
	ids_buf_release(&was);
	ids_mbentry_release(&e);
	ids_header_release(&h);
	return same;
}

/* Notes a file made in the new directory in the cleanup's list of it. */
static void
dlist_note(struct reloc *rl, int i, const char *name)
{
	if (ids_dirlist_find(&rl->dlist[i], name) == NULL &&
	    ids_dirlist_add(&rl->dlist[i], name, 0, DT_REG) == 0)
		ids_dirlist_sort(&rl->dlist[i]);
}

/*
 * Writes cyrus.header in the new directory from the record (current
 * name, uniqueid, history; quota root, flags and unknown keys kept from
 * the old header when it is readable), as a new file, and points the
 * new cyrus.index at it.  from is the directory to read the old header
 * in.  linked: the link strategy, before the flip; the new directory
 * has no header yet and no index (cyrus.index is not linked but copied
 * here with the new header's CRC: a linked one would have to be
 * replaced), and nothing reads it before the flip, so both files are
 * made under their names (a rollback removes them).  Otherwise (the
 * directory moved) the header holds no path, so it is replaced only
 * when what it says differs from what the record gives (a stale name
 * or history, lost keys: both compared in the canonical form, since
 * Cyrus orders the keys otherwise), and then the index only when its
 * header_file_crc is not the header's CRC; in a batch's first attempt
 * a header left as it was leaves the index unread too.
 */
static int
write_header(struct reloc *rl, int from, int linked)
{
	struct ids_buf b = IDS_BUF_INIT, was = IDS_BUF_INIT;
	struct ids_index_header ih;
	struct ids_mbentry e;
	struct ids_header h;
	uint32_t crc;
	int hr = root_of(rl, IDS_META_HEADER), ir = root_of(rl, IDS_META_INDEX);
	char *old = NULL;
	size_t oldlen = 0;
	int same = 0, r;

	ids_header_init(&h);
	ids_mbentry_init(&e);
	r = 0;
	if (from >= 0 && from == rl->sfd[hr] && rl->hdr != NULL) {
		old = rl->hdr;		/* header_current read it */
		oldlen = rl->hdrlen;
		rl->hdr = NULL;
	} else if (from >= 0)
		r = (rl->checked ? read_checked : ids_read_file)(from, IDS_HEADER_FILE,
		    IDS_HEADER_MAX_SIZE, &old, &oldlen);
	/*
	 * A header that is not there or does not parse is written anew from
	 * mailboxes.db; one that could not be read (out of descriptors, an
	 * I/O error) fails the folder, named, rather than passing for absent.
	 */
	if (r < 0 && ids_is_errno(r) && r != -ENOENT) {
		r = ids_error(r, "%s/%s/%s: %s", hr ? rl->part->metapath : rl->part->path,
		    from == rl->sfd[hr] ? rl->src : rl->dst, IDS_HEADER_FILE, ids_strerror(r));
		goto out;
	}
	if (from >= 0 && (r < 0 || ids_header_parse(&h, old, oldlen) < 0)) {
		ids_header_release(&h);
		ids_header_init(&h);
		free(old);
		old = NULL;
	}
	/* What the old header says, in the canonical form (Cyrus orders its keys otherwise). */
	if (!linked && old != NULL && from == rl->dfd[hr] && oldlen > IDS_HEADER_MAGIC_LEN &&
	    old[IDS_HEADER_MAGIC_LEN] == '%' && ids_header_format(&h, &was) < 0)
		ids_buf_release(&was);	/* the old format (<= 3.4) is always rewritten */
	if ((r = ids_mboxlist_lookup_id(rl->mbl, rl->uniqueid, &e)) < 0 ||
	    (r = ids_mbtype_set(e.mbtype, IDS_MBFLAG_LEGACY, 0)) < 0 ||
	    (r = ids_header_from_mbentry(&h, &e)) < 0)
		goto out;
	if (was.len > 0 && (r = ids_header_format(&h, &b)) == 0 && b.len == was.len &&
	    memcmp(b.s, was.s, was.len) == 0) {
		same = 1;
		crc = ids_header_crc(old, oldlen);
	}
	if (r < 0 || (!same &&
	    (r = (linked ? ids_header_create : ids_header_write)(rl->dfd[hr], &h, &crc)) < 0))
		goto out;
	if (linked) {
		dlist_note(rl, hr, IDS_HEADER_FILE);
		/* No cyrus.index in the legacy directory: nothing to copy. */
		if (rl->sfd[ir] >= 0 &&
		    (r = ids_index_copy_with_crc(rl->sfd[ir], rl->dfd[ir], crc)) != -ENOENT) {
			if (r == 0)
				dlist_note(rl, ir, IDS_INDEX_FILE);
			if (r == 0 && rl->opts->throttle)
				r = rl->opts->throttle(rl->opts->throttle_rock);	/* a file carried */
		} else
			r = 0;
	} else if (same && rl->renamed) {
		/*
		 * A batch's first attempt: header and index moved together,
		 * unchanged, so whatever the index said of the header it still
		 * says of the same bytes.  Recovery (which may come after a
		 * header was rewritten and before its CRC was stored) and the
		 * one-folder path read the index.
		 */
	} else if (!same) {
		/*
		 * The header was just rewritten: the index gets its CRC
		 * (ids_index_set_header_crc reads the index's header itself,
		 * so it is not read here first).
		 */
		if ((r = ids_index_set_header_crc(rl->dfd[ir], crc)) == -ENOENT)
			r = 0;	/* no index: nothing points at the header */
	} else if ((r = ids_index_read_header(rl->dfd[ir], &ih)) == -ENOENT) {
		r = 0;	/* no index: nothing points at the header */
	} else if (r == 0 && ih.header_file_crc != crc) {
		r = ids_index_set_header_crc(rl->dfd[ir], crc);
	}
out:
	free(old);
	ids_buf_release(&b);
	ids_buf_release(&was);
	ids_mbentry_release(&e);
	ids_header_release(&h);
	return r;
}

/* --- mailboxes.db steps ---------------------------------------------- */

struct step {
	struct reloc *rl;
	struct ids_intent *in;
	const char *reason;
};

static int
intent_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;

	return ids_intent_put(txn, s->rl->uniqueid, s->in);
}

/* The commit point: the record leaves the legacy layout. */
static int
flip_one(struct ids_txn *txn, struct reloc *rl, const struct ids_intent *in)
{
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	if ((r = ids_txn_lookup_name(txn, rl->entry->name, &e)) < 0)
		goto out;
	if (ids_mbentry_is_tombstone(&e) || !ids_mbentry_is_legacy(&e) ||
	    strcmp(e.uniqueid, rl->uniqueid) != 0) {
		r = ids_error(IDS_EBUSY, "%s: changed during migration", e.name);
		goto out;
	}
	ids_mbtype_set(e.mbtype, IDS_MBFLAG_LEGACY, 0);
	if ((r = ids_txn_put(txn, &e)) < 0)
		goto out;
	if (in == NULL)
		r = ids_intent_del(txn, rl->uniqueid);
	else
		r = ids_intent_put(txn, rl->uniqueid, in);
	if (r == 0)
		ids_failure_del(txn, rl->uniqueid);	/* as before: an error here is not the flip's */
out:
	ids_mbentry_release(&e);
	return r;
}

static int
flip_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;

	return flip_one(txn, s->rl, s->in);
}

static int
finish_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;
	int r = ids_intent_del(txn, s->rl->uniqueid);

	return r == IDS_ENOTFOUND ? 0 : r;
}

static int
fail_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;

	return ids_failure_put(txn, s->rl->uniqueid, s->rl->entry->name, s->reason);
}

/*
 * The detail of a folder's failure.  One that names nothing (a bare
 * errno from a call deep in the folder's work) is given the folder's
 * legacy directory: the operator acts on a path.
 */
static void
failure_detail(const struct reloc *rl, int code, char *buf, size_t size)
{
	const char *msg = ids_errmsg(code);
	int n;

	if (strcmp(msg, ids_strerror(code)) == 0 && rl->part != NULL && rl->src[0] != '\0')
		n = snprintf(buf, size, "%s/%s: %s", rl->part->path, rl->src, msg);
	else
		n = snprintf(buf, size, "%s", msg);
	if (n < 0)
		buf[0] = '\0';	/* cut short otherwise, as every detail is */
}

static int
record_failure(struct reloc *rl, int code)
{
	const char *advice = ids_relocate_advice(code);
	char detail[1024], reason[sizeof(detail) + 128];
	struct step s = { rl, NULL, reason };

	failure_detail(rl, code, detail, sizeof(detail));
	if (advice != NULL && strstr(detail, advice) != NULL)
		advice = NULL;	/* said once (a batch's member recorded again) */
	snprintf(reason, sizeof(reason), "%s%s%s", detail, advice ? "; " : "",
	    advice ? advice : "");
	ids_mboxlist_write(rl->mbl, fail_txn, &s);
	/* The caller reports code; keep its detail for ids_errmsg(). */
	ids_error(code, "%s", reason);
	return code;
}

/* --- the advice of a failure ---------------------------------------- */

const char *
ids_relocate_advice(int code)
{
	if (code == -EMFILE)
		return "raise the limit of open files (ulimit -n, or LimitNOFILE= "
		    "in relocated.service)";
	if (code == -ENFILE)
		return "the system's table of open files is full (sysctl fs.file-max)";
	return NULL;
}

/* --- removing what is left over -------------------------------------- */

static int
unlink_in(int dirfd, const char *name)
{
	int r;

	if ((r = IDS_FAILPOINT("relocate.unlink")) < 0)
		return r;
	return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

/* Rolling back: drop the destination's names the source still has. */
static int
rollback_entry(struct reloc *rl, int i, const char *name, const struct stat *st)
{
	int kind = ids_folder_classify(name, NULL);
	struct stat sst;

	if (!S_ISREG(st->st_mode) || kind == IDS_FILE_OTHER)
		return 0;
	if (kind == IDS_FILE_TEMP || ids_metafile_kind(name) == IDS_META_HEADER ||
	    ids_metafile_kind(name) == IDS_META_INDEX)
		return unlink_in(rl->dfd[i], name);
	/*
	 * Only a name that is the source's file (or a verified copy of it)
	 * is ours to remove; anything else was there before us: keep it.
	 */
	if (rl->sfd[i] < 0 || fstatat(rl->sfd[i], name, &sst, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if ((sst.st_dev != st->st_dev || sst.st_ino != st->st_ino) &&
	    ids_same_file(rl->sfd[i], rl->dfd[i], name) != 1)
		return 0;
	return unlink_in(rl->dfd[i], name);
}

/* 1 if name is in dfd[i]: from rl->dl when it is complete or has it. */
static int
at_dst(struct reloc *rl, int i, const char *name)
{
	struct stat st;

	if (rl->dl != NULL) {
		if (ids_dirlist_find(rl->dl, name) != NULL)
			return 1;
		if (rl->dl->complete)
			return 0;
	}
	return fstatat(rl->dfd[i], name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Finishing: drop the source's names the destination has. */
static int
cleanup_entry(struct reloc *rl, int i, const char *name, const struct stat *st)
{
	int kind = ids_folder_classify(name, NULL);

	if (!S_ISREG(st->st_mode) || kind == IDS_FILE_OTHER)
		return 0;
	/* cyrus.header goes last, so a half-cleaned folder still says what it was. */
	if (ids_metafile_kind(name) == IDS_META_HEADER) {
		rl->saw_header = 1;
		return 0;
	}
	if (kind != IDS_FILE_TEMP && rl->dfd[i] >= 0 && !at_dst(rl, i, name))
		return ids_error(IDS_ECONFLICT, "%s/%s: not at the new path; kept", rl->src, name);
	return unlink_in(rl->sfd[i], name);
}

static int
rmdir_in(int rootfd, const char *rel)
{
	int r;

	if ((r = IDS_FAILPOINT("relocate.rmdir")) < 0)
		return r;
	return unlinkat(rootfd, rel, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/*
 * 1 if the directory rel (relative to a root) may be removed once empty:
 * it is not at or above the owner's uniqueid directory, and no live
 * legacy folder lives in it.
 */
static int
prunable(struct reloc *rl, const char *rel, const char *top)
{
	struct ids_pathinfo pi;
	struct ids_mbentry e;
	char abs[PATH_MAX];
	size_t n = strlen(rel);
	int live = 0;

	if (strncmp(rl->dst, rel, n) == 0 && (rl->dst[n] == '/' || rl->dst[n] == '\0'))
		return 0;
	if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", top, rel) >= sizeof(abs))
		return 0;
	if (ids_path_reverse_layout(rl->cfg, abs, IDS_LAYOUT_LEGACY, &pi) == 0 &&
	    pi.kind == IDS_PATH_FOLDER) {
		char name[IDS_MBNAME_MAX + 1];

		ids_mbentry_init(&e);
		if (ids_mbname_internal(&pi.name, name, sizeof(name)) > 0 &&
		    ids_mboxlist_lookup(rl->mbl, name, &e) == 0)
			live = !ids_mbentry_is_tombstone(&e) && ids_mbentry_is_legacy(&e) &&
			    strcmp(e.uniqueid, rl->uniqueid) != 0;
		ids_mbentry_release(&e);
	}
	return !live;
}

/* Removes the emptied legacy directory and its emptied ancestors. */
static void
prune(struct reloc *rl, int i)
{
	const char *top = i ? rl->part->metapath : rl->part->path;
	char rel[PATH_MAX], *slash;

	int r;

	snprintf(rel, sizeof(rel), "%s", rl->src);
	/*
	 * The folder's own directory may be gone already (renamed).  A
	 * batch that renamed it starts at its parent, and stops at a
	 * missing one: nothing crashed between its rmdirs, so a parent that
	 * is gone was renamed itself (a parent folder that moved after its
	 * children), and its own cleanup prunes above it.  Recovery goes on
	 * past missing directories, which a crash between two rmdirs leaves.
	 */
	if (rl->renamed && (slash = strrchr(rel, '/')) != NULL)
		*slash = '\0';
	while (rel[0] != '\0' && prunable(rl, rel, top) &&
	    ((r = rmdir_in(rl->root[i], rel)) == 0 || (r == -ENOENT && !rl->renamed))) {
		if (r == 0)
			rl->stats->dirs_removed++;
		slash = strrchr(rel, '/');
		if (slash == NULL) {
			ids_fsync_dir(rl->root[i]);
			break;
		}
		*slash = '\0';
		/* Deferred, the step's syncfs covers the parent: no need to open it. */
		if (!ids_fs_deferred()) {
			int pfd;

			if (ids_opendir_beneath(rl->root[i], rel, 0, &pfd) == 0) {
				ids_fsync_dir(pfd);
				close(pfd);
			}
		}
	}
}

/* Removes the old names and the emptied legacy directories. */
static int
cleanup_files(struct reloc *rl)
{
	int i, r;

	for (i = 0; i < NROOTS; i++) {
		if (rl->root[i] < 0)
			continue;
		if (rl->sfd[i] >= 0) {
			rl->saw_header = 0;
			/*
			 * The lists of this run (the folder is still locked):
			 * no directory read.  A file that came without the
			 * lock after the check is neither carried nor removed,
			 * and keeps the legacy directory.  Else (recovery,
			 * after a grace) both directories are read.
			 */
			rl->dl = &rl->dlist[i];
			r = rl->slist[i].complete ? each_listed(rl, i, &rl->slist[i], cleanup_entry) :
			    each_with_dst(rl, i, cleanup_entry);
			rl->dl = NULL;
			if (r < 0 ||
			    (rl->saw_header && (r = unlink_in(rl->sfd[i], IDS_HEADER_FILE)) < 0) ||
			    (r = ids_fsync_dir(rl->sfd[i])) < 0)
				return r;
			close(rl->sfd[i]);
			rl->sfd[i] = -1;
		}
		/* Also when the directory is gone: a crash may have come between rmdirs. */
		prune(rl, i);
	}
	return 0;
}

static int
cleanup(struct reloc *rl)
{
	int r;

	if ((r = cleanup_files(rl)) < 0)
		return r;
	return ids_mboxlist_write(rl->mbl, finish_txn, &(struct step){ rl, NULL, NULL });
}

static int
rollback(struct reloc *rl)
{
	int i, r;

	for (i = 0; i < NROOTS; i++) {
		if (rl->dfd[i] < 0)
			continue;
		if ((r = each_entry_how(rl, i, rl->dfd[i], rollback_entry, 1)) < 0 ||
		    (r = ids_fsync_dir(rl->dfd[i])) < 0)
			return r;
		close(rl->dfd[i]);
		rl->dfd[i] = -1;
		/* Not empty: files that were there before us stay with it. */
		if ((r = rmdir_in(rl->root[i], rl->dst)) < 0 && r != -ENOENT &&
		    r != -ENOTEMPTY && r != -EEXIST)
			return r;
		if ((r = ids_fsync_dir(rl->root[i])) < 0)
			return r;
	}
	return ids_mboxlist_write(rl->mbl, finish_txn, &(struct step){ rl, NULL, NULL });
}

/* --- the rename strategy --------------------------------------------- */

/*
 * Moves the legacy directory of root i to the uniqueid path: one
 * renameat2(RENAME_NOREPLACE).  Under a deferred sync (a batch) that is
 * all in the usual case: the new parent is made only when the rename
 * says it is missing, a leftover empty destination is removed only
 * when the rename runs into it, no parent is opened to be fsynced (the
 * step's syncfs covers both), and the open legacy directory becomes the
 * new one (a descriptor follows its directory).  Otherwise both parents
 * are fsynced.
 */
static int
rename_dir(struct reloc *rl, int i)
{
	char parent[PATH_MAX], *slash;
	int deferred = ids_fs_deferred(), pfd = -1, tries, r;

	snprintf(parent, sizeof(parent), "%s", rl->dst);
	slash = strrchr(parent, '/');
	*slash = '\0';
	if (!deferred && (r = ids_opendir_beneath(rl->root[i], parent, IDS_OPEN_CREATE, &pfd)) < 0)
		return r;
	/* An empty destination left by a rolled-back attempt may be there. */
	if (rl->dfd[i] >= 0) {
		close(rl->dfd[i]);
		rl->dfd[i] = -1;
		rmdir_in(rl->root[i], rl->dst);
	}
	r = IDS_FAILPOINT("relocate.rename");
	for (tries = 0; r == 0; tries++) {
		if (renameat2(rl->root[i], rl->src, rl->root[i], rl->dst, RENAME_NOREPLACE) == 0)
			break;
		r = -errno;
		if (r == -EINVAL && faccessat(rl->root[i], rl->dst, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			r = renameat(rl->root[i], rl->src, rl->root[i], rl->dst) < 0 ? -errno : 0;
			break;
		}
		if (tries > 0)
			break;
		if (r == -ENOENT && pfd < 0)		/* the owner directory is new */
			r = ids_opendir_beneath(rl->root[i], parent, IDS_OPEN_CREATE, &pfd);
		else if (r == -EEXIST)			/* a leftover, empty or not */
			r = rmdir_in(rl->root[i], rl->dst) < 0 ? r : 0;
	}
	if (r == 0 && !deferred)
		r = ids_fsync_dir(pfd);
	if (pfd >= 0)
		close(pfd);
	if (r < 0)
		return ids_error(r, "%s -> %s: %s", rl->src, rl->dst, ids_errmsg(r));
	rl->stats->dirs_renamed++;
	rl->dfd[i] = rl->sfd[i];
	rl->dfresh[i] = rl->sfresh[i];
	rl->sfd[i] = -1;
	if (!deferred && (slash = strrchr(rl->src, '/')) != NULL) {
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rl->src), rl->src);
		if (ids_opendir_beneath(rl->root[i], parent, 0, &pfd) == 0) {
			r = ids_fsync_dir(pfd);
			close(pfd);
		}
	}
	return r;
}

static int
rename_all(struct reloc *rl)
{
	int i, r;

	for (i = 0; i < NROOTS; i++)
		if (rl->sfd[i] >= 0 && (r = rename_dir(rl, i)) < 0)
			return r;
	return 0;
}

/* --- driving one folder ---------------------------------------------- */

static int
set_intent(struct ids_intent *in, struct reloc *rl, const char *stage,
    enum ids_strategy strategy)
{
	int r;

	strcpy(in->op, IDS_OP_MIGRATE);
	snprintf(in->stage, sizeof(in->stage), "%s", stage);
	snprintf(in->strategy, sizeof(in->strategy), "%s", ids_strategy_name(strategy));
	in->time = time(NULL);
	if ((r = ids_intent_set(&in->name, rl->entry->name)) < 0 ||
	    (r = ids_intent_set(&in->partition, rl->part->name)) < 0 ||
	    (r = ids_intent_set(&in->src, rl->src)) < 0)
		return r;
	return ids_intent_set(&in->dst, rl->dst);
}

/* After the flip: remove the old names now, or leave them for the grace. */
static int
after_flip(struct reloc *rl, struct ids_intent *in)
{
	rl->stats->folders++;
	if (rl->opts->grace > 0 && time(NULL) < in->time + rl->opts->grace)
		return IDS_RELOCATE_PENDING;
	return cleanup(rl);
}

/*
 * The rename strategy's commit point.  The intent stays, at stage
 * "flipped", until the emptied legacy directories are gone, so that a
 * crash among the rmdirs is finished by recovery.
 */
static int
flip_and_prune(struct reloc *rl, struct ids_intent *in)
{
	struct step s = { rl, in, NULL };
	int r;

	strcpy(in->stage, IDS_STAGE_FLIPPED);
	in->time = time(NULL);
	if ((r = ids_mboxlist_write(rl->mbl, flip_txn, &s)) < 0)
		return r;
	rl->stats->folders++;
	return cleanup(rl);
}

static int
migrate_link(struct reloc *rl, struct ids_intent *in)
{
	struct step s = { rl, in, NULL };
	int r;

	if ((r = ids_mboxlist_write(rl->mbl, intent_txn, &s)) < 0)
		return r;
	if ((r = link_all(rl)) < 0 || (!rl->carry_meta &&
	    (r = write_header(rl, rl->sfd[root_of(rl, IDS_META_HEADER)], 1)) < 0))
		goto undo;
	strcpy(in->stage, IDS_STAGE_FLIPPED);
	in->time = time(NULL);
	if ((r = ids_mboxlist_write(rl->mbl, flip_txn, &s)) < 0)
		goto undo;
	return after_flip(rl, in);
undo:
	rollback(rl);
	return r;
}

static int
migrate_rename(struct reloc *rl, struct ids_intent *in)
{
	struct step s = { rl, in, NULL };
	int r;

	if ((r = ids_mboxlist_write(rl->mbl, intent_txn, &s)) < 0)
		return r;
	if ((r = rename_all(rl)) < 0) {
		/* Nothing moved, or part of it: finish from the intent. */
		return ids_relocate_recover(rl->mbl, rl->uniqueid, in, rl->opts, rl->stats) < 0 ?
		    r : r;
	}
	if ((r = write_header(rl, rl->dfd[root_of(rl, IDS_META_HEADER)], 0)) < 0)
		return r;	/* the intent finishes it at the next recovery */
	return flip_and_prune(rl, in);
}

/*
 * 1 if the folder's legacy directory may be moved whole.  A directory
 * cannot be moved into itself (EINVAL): a user's INBOX at j/user/john
 * whose uniqueid directory is j/user/john/<id> is linked, like a folder
 * with child folders inside, and one holding foreign files (linking
 * leaves them, and reports them).
 */
static int
renamable(const struct reloc *rl)
{
	size_t n = strlen(rl->src);

	return !rl->has_subdirs && !rl->has_foreign &&
	    !(strncmp(rl->dst, rl->src, n) == 0 && rl->dst[n] == '/');
}

/*
 * In a batch, a folder whose directory holds subdirectories (its child
 * folders, which come before it in the batch and move out first) is
 * given a rename intent all the same and checked again right before
 * its rename (recheck); if a subdirectory is still there it is linked
 * under that intent (recovery of a rename intent of which nothing moved
 * rolls the links back).
 */
static int
renamable_later(struct reloc *rl)
{
	int r;

	rl->has_subdirs = 0;
	r = renamable(rl);
	rl->has_subdirs = 1;
	return r;
}

/* 0 if the folder's directories hold no subdirectory any more (recheck). */
static int
recheck(struct reloc *rl)
{
	int r;

	rl->has_subdirs = 0;
	if ((r = preflight(rl)) < 0)
		return r;
	return rl->has_subdirs ? 1 : 0;
}

static int
pending_intent(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;
	int r = ids_intent_get(txn, s->rl->uniqueid, s->in);

	return r == IDS_ENOTFOUND ? 0 : r < 0 ? r : 1;
}

static int
relocate_locked(struct ids_mailbox *mb, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats)
{
	struct reloc rl;
	struct ids_intent in;
	enum ids_strategy strategy = opts->strategy;
	int r;

	ids_intent_init(&in);
	if ((r = reloc_init(&rl, mb->mbl, &mb->entry, NULL, opts, stats, NULL)) < 0)
		goto out;
	/* A crashed earlier attempt is settled first. */
	if ((r = ids_mboxlist_read(mb->mbl, pending_intent, &(struct step){ &rl, &in, NULL })) > 0) {
		r = ids_relocate_recover(mb->mbl, rl.uniqueid, &in, opts, stats);
		goto out;	/* the walker comes back to the folder if still legacy */
	}
	if (r < 0 || (r = preflight(&rl)) < 0) {
		if (r < 0)
			record_failure(&rl, r);
		goto out;
	}
	if (!renamable(&rl))
		strategy = IDS_STRATEGY_LINK;
	if ((r = set_intent(&in, &rl, strategy == IDS_STRATEGY_LINK ? IDS_STAGE_LINK : IDS_STAGE_RENAME,
	    strategy)) < 0)
		goto out;
	r = strategy == IDS_STRATEGY_LINK ? migrate_link(&rl, &in) : migrate_rename(&rl, &in);
	if (r < 0)
		record_failure(&rl, r);
out:
	reloc_close(&rl);
	ids_intent_release(&in);
	return r;
}

int
ids_relocate_folder(struct ids_mboxlist *mbl, const char *name,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	struct ids_mailbox *mb;
	int r;

	/* A detail left by an earlier folder must not become this one's. */
	ids_error_clear();
	if ((r = ids_mailbox_open(mbl, name, IDS_MAILBOX_WRITE, opts->lock_timeout_ms, &mb)) < 0)
		return r;
	r = ids_mbentry_is_legacy(&mb->entry) ? relocate_locked(mb, opts, stats) : 0;
	ids_mailbox_close(mb);
	return r;
}

/* --- many folders at once ------------------------------------------- */

/*
 * A batch migrates folders with the link strategy, GROUP_MAX at a time,
 * with the ordering points of one folder shared by a group and the
 * groups pipelined, so that each group costs one syncfs(2) and one
 * transaction.  Step k, with group k-1 flipped, group k's intents
 * committed and group k+1 locked and checked:
 *
 *   1. remove group k-1's old names and link group k's files (with
 *      their fsyncs deferred, spool-layout.md "Many folders at once");
 *   2. one syncfs for every file system touched: group k's new names
 *      and group k-1's removals are durable;
 *   3. one transaction drops group k-1's intents, flips group k and
 *      commits group k+1's intents.
 *
 * Each folder still passes its own ordering points in order (intent
 * durable before its first change, its links durable before its flip,
 * its removals durable before its intent goes), so the crash analysis
 * is the folder's: before the flip it rolls back, after it the cleanup
 * finishes, whatever the other folders were doing.  With a grace the
 * old names stay and the intents with them (ids_relocate_recover).
 */
#define GROUP_MAX 128
/*
 * Descriptors a member holds: its lock, the mailbox's directories, and
 * a root, the legacy and the new directory per root; three groups are
 * open at a time.  Groups shrink to fit RLIMIT_NOFILE, less a reserve.
 */
#define MEMBER_FDS (3 + 3 * NROOTS)
#define FD_RESERVE 64

struct bitem {
	struct ids_mailbox *mb;
	struct reloc rl;
	struct ids_relocate_stats st;	/* this folder's own figures */
	struct ids_intent in;
	struct ids_relocate_result *res;
	int active;		/* intent committed or about to be, not failed */
	int rename;		/* the rename strategy (else link) */
	int flipped;
	int cleanup;		/* flipped, old names to remove in the next step */
	int rc;
	char reason[256];
};

/* Sets a member's outcome, keeping the detail while it is fresh. */
static int
set_rc(struct bitem *it, int rc)
{
	it->rc = rc;
	if (rc < 0)
		failure_detail(&it->rl, rc, it->reason, sizeof(it->reason));
	return rc;
}

struct group {
	struct bitem it[GROUP_MAX];
	size_t n;
};

struct batch {
	struct ids_mboxlist *mbl;
	const struct ids_relocate_opts *opts;
	struct ids_relocate_stats *stats;
	struct group *done;	/* flipped: old names to remove, intents to drop */
	struct group *cur;	/* intents committed: to link and flip */
	struct group *next;	/* locked and checked: intents to commit */
	struct roots roots[ROOTS_MAX];	/* the members' roots */
};

/*
 * A legacy directory that is not there, reported as opening the
 * mailbox reports it (the batch opens the mailbox without its
 * directories and has reloc_init open them).
 */
static int
missing_src(const struct reloc *rl)
{
	const char *top[NROOTS] = { rl->part->path, rl->part->metapath };
	int i;

	for (i = 0; i < NROOTS; i++)
		if (rl->root[i] >= 0 && rl->sfd[i] < 0)
			return ids_error(-ENOENT, "%s/%s: %s", top[i], rl->src, ids_errmsg(-ENOENT));
	return 0;
}

/* Opens, checks and plans one folder; 1 if it joins the batch. */
static int
batch_prepare(struct batch *b, struct bitem *it, const char *name)
{
	struct ids_relocate_opts one = *b->opts;
	int r;

	ids_error_clear();	/* the member before's detail is not this one's */
	ids_intent_init(&it->in);
	it->rl.root[0] = it->rl.root[1] = it->rl.sfd[0] = it->rl.sfd[1] = -1;
	it->rl.dfd[0] = it->rl.dfd[1] = -1;
	/* The batch opens the directories itself (reloc_init). */
	if (set_rc(it, ids_mailbox_open(b->mbl, name, IDS_MAILBOX_WRITE | IDS_MAILBOX_NODIRS,
	    b->opts->lock_timeout_ms, &it->mb)) < 0 || !ids_mbentry_is_legacy(&it->mb->entry))
		return 0;
	if ((r = reloc_init(&it->rl, b->mbl, &it->mb->entry, NULL, b->opts, &it->st, b->roots)) < 0 ||
	    (r = missing_src(&it->rl)) < 0 ||
	    (r = ids_mboxlist_read(b->mbl, pending_intent,
	    &(struct step){ &it->rl, &it->in, NULL })) != 0 ||
	    (r = preflight(&it->rl)) < 0) {
		/* Anything out of the ordinary takes the one-folder path. */
		ids_intent_release(&it->in);
		reloc_close(&it->rl);
		one.lock_timeout_ms = 0;
		set_rc(it, r < 0 && r != IDS_EUNSAFE ? r : relocate_locked(it->mb, &one, &it->st));
		return 0;
	}
	if (b->opts->strategy == IDS_STRATEGY_RENAME && !renamable(&it->rl) &&
	    it->rl.has_subdirs && renamable_later(&it->rl))
		it->rl.recheck = 1;
	it->rename = b->opts->strategy == IDS_STRATEGY_RENAME &&
	    (renamable(&it->rl) || it->rl.recheck);
	if (set_rc(it, set_intent(&it->in, &it->rl, it->rename ? IDS_STAGE_RENAME : IDS_STAGE_LINK,
	    it->rename ? IDS_STRATEGY_RENAME : IDS_STRATEGY_LINK)) < 0)
		return 0;
	return 1;
}

/* Locks and checks the next n names into g. */
static void
group_prepare(struct batch *b, struct group *g, const char *const *names,
    struct ids_relocate_result *res, size_t n)
{
	size_t i;

	memset(g, 0, sizeof(*g));
	g->n = n;
	for (i = 0; i < n; i++) {
		g->it[i].res = &res[i];
		g->it[i].active = batch_prepare(b, &g->it[i], names[i]);
	}
}

/* Flips every ready folder of g; one that changed meanwhile is left out. */
static int
group_flip(struct ids_txn *txn, struct group *g)
{
	struct bitem *it;
	size_t i;
	int r;

	for (i = 0; i < g->n; i++) {
		it = &g->it[i];
		if (!it->active)
			continue;
		strcpy(it->in.stage, IDS_STAGE_FLIPPED);
		it->in.time = time(NULL);
		r = flip_one(txn, &it->rl, &it->in);
		if (r == IDS_EBUSY)
			set_rc(it, r);
		else if (r < 0)
			return r;
		it->flipped = r == 0;
	}
	return 0;
}

/* The transaction of a step: drop done's intents, flip cur, start next. */
static int
step_txn(struct ids_txn *txn, void *rock)
{
	struct batch *b = rock;
	struct bitem *it;
	size_t i;
	int r;

	for (i = 0; b->done && i < b->done->n; i++) {
		it = &b->done->it[i];
		if (it->cleanup && it->rc == 0 &&
		    (r = ids_intent_del(txn, it->rl.uniqueid)) < 0 && r != IDS_ENOTFOUND)
			return r;
	}
	if (b->cur && (r = group_flip(txn, b->cur)) < 0)
		return r;
	for (i = 0; b->next && i < b->next->n; i++) {
		it = &b->next->it[i];
		if (it->active && (r = ids_intent_put(txn, it->rl.uniqueid, &it->in)) < 0)
			return r;
	}
	return 0;
}

/* Adds the file system of every root of g's members in use to devs. */
static void
group_devs(const struct group *g, int cleaning, dev_t *devs, int *fds, size_t *ndevs,
    size_t max)
{
	size_t i, k;
	int j;

	for (i = 0; g && i < g->n; i++) {
		if (!(cleaning ? g->it[i].cleanup : g->it[i].active))
			continue;
		for (j = 0; j < NROOTS; j++) {
			if (g->it[i].rl.root[j] < 0)
				continue;
			for (k = 0; k < *ndevs && devs[k] != g->it[i].rl.rootdev[j]; k++)
				;
			if (k == *ndevs && *ndevs < max) {
				devs[*ndevs] = g->it[i].rl.rootdev[j];
				fds[(*ndevs)++] = g->it[i].rl.root[j];
			}
		}
	}
}

/* One syncfs for each file system the step wrote to. */
static int
step_sync(struct batch *b)
{
	dev_t devs[2 * GROUP_MAX * NROOTS];
	int fds[2 * GROUP_MAX * NROOTS], r;
	size_t i, n = 0;

	group_devs(b->done, 1, devs, fds, &n, sizeof(devs) / sizeof(devs[0]));
	group_devs(b->cur, 0, devs, fds, &n, sizeof(devs) / sizeof(devs[0]));
	for (i = 0; i < n; i++)
		if ((r = ids_fs_sync(fds[i])) < 0)
			return r;
	return 0;
}

/*
 * A folder that failed before its flip: undone and recorded.  A linked
 * one rolls back; a renamed one is settled from its intent as the
 * one-folder path does (what moved moves on and is flipped; if nothing
 * moved, the intent goes).
 */
static void
batch_drop(struct bitem *it, int rc)
{
	struct ids_relocate_opts opts = *it->rl.opts;
	char keep[sizeof(it->reason)];

	if (it->rc != rc)
		set_rc(it, rc);
	snprintf(keep, sizeof(keep), "%s", it->reason);
	it->active = 0;
	it->flipped = 0;
	/* Not flipped: mailboxes.db still has the intent's first stage. */
	strcpy(it->in.stage, it->rename ? IDS_STAGE_RENAME : IDS_STAGE_LINK);
	if (it->rename) {
		opts.grace = 0;
		if (ids_relocate_recover(it->rl.mbl, it->rl.uniqueid, &it->in, &opts, &it->st) == 0 &&
		    it->st.folders > 0) {
			it->rc = 0;	/* moved on and flipped after all */
			return;
		}
	} else
		rollback(&it->rl);
	/* The detail of the failure, not of whatever the rollback did. */
	ids_error(rc, "%s", keep);
	record_failure(&it->rl, rc);
}

/* Step 1: old names of done go, cur's files are linked; no fsync yet. */
static void
step_files(struct batch *b)
{
	struct bitem *it;
	size_t i;
	int r;

	ids_fs_defer_sync(1);
	for (i = 0; b->done && i < b->done->n; i++) {
		it = &b->done->it[i];
		ids_error_clear();	/* the member before's detail is not this one's */
		if (it->cleanup && set_rc(it, cleanup_files(&it->rl)) < 0) {
			ids_fs_defer_sync(0);
			record_failure(&it->rl, it->rc);
			ids_fs_defer_sync(1);
		}
	}
	for (i = 0; b->cur && i < b->cur->n; i++) {
		it = &b->cur->it[i];
		if (!it->active)
			continue;
		ids_error_clear();
		/* Its children moved out first; if one did not, it is linked. */
		if (it->rename && it->rl.recheck && (r = recheck(&it->rl)) != 0) {
			if (r < 0) {
				ids_fs_defer_sync(0);
				batch_drop(it, r);
				ids_fs_defer_sync(1);
				continue;
			}
			it->rename = 0;
		}
		if (it->rename) {
			it->rl.renamed = 1;
			if ((r = rename_all(&it->rl)) == 0)
				r = write_header(&it->rl, it->rl.dfd[root_of(&it->rl, IDS_META_HEADER)], 0);
		} else if ((r = link_all(&it->rl)) == 0 && !it->rl.carry_meta)
			r = write_header(&it->rl, it->rl.sfd[root_of(&it->rl, IDS_META_HEADER)], 1);
		if (r < 0) {
			ids_fs_defer_sync(0);
			batch_drop(it, r);
			ids_fs_defer_sync(1);
		}
	}
	roots_forget_parents(b->roots);
	ids_fs_defer_sync(0);
}

static void
add_stats(struct ids_relocate_stats *to, const struct ids_relocate_stats *d)
{
	to->folders += d->folders;
	to->files_linked += d->files_linked;
	to->files_copied += d->files_copied;
	to->bytes_copied += d->bytes_copied;
	to->files_foreign += d->files_foreign;
	to->dirs_renamed += d->dirs_renamed;
	to->dirs_removed += d->dirs_removed;
}

/*
 * Releases g, storing each member's outcome.  r is a batch-wide
 * failure that came before the members' flips: those whose intents
 * were committed roll back; the others just report it.
 */
static void
group_close(struct batch *b, struct group *g, int r, int committed)
{
	struct bitem *it;
	size_t i;

	for (i = 0; g && i < g->n; i++) {
		it = &g->it[i];
		if (r < 0 && it->active && !it->flipped) {
			if (committed)
				batch_drop(it, r);
			else
				set_rc(it, r);
		}
		it->res->rc = it->rc;
		snprintf(it->res->reason, sizeof(it->res->reason), "%s",
		    it->rc < 0 ? it->reason : "");
		it->res->st = it->st;
		add_stats(b->stats, &it->st);
		reloc_close(&it->rl);
		ids_intent_release(&it->in);
		ids_mailbox_close(it->mb);
	}
}

/* After a step's commit: cur's members that did not flip roll back. */
static void
settle_flips(struct batch *b)
{
	struct bitem *it;
	size_t i;

	for (i = 0; b->cur && i < b->cur->n; i++) {
		it = &b->cur->it[i];
		if (it->active && !it->flipped)
			batch_drop(it, it->rc ? it->rc : IDS_EBUSY);
		else if (it->flipped) {
			it->st.folders++;
			/* A renamed folder's emptied parents go at once (no grace). */
			it->cleanup = it->rename || b->opts->grace <= 0;
			it->rc = it->cleanup ? 0 : IDS_RELOCATE_PENDING;
		}
	}
}

static int
group_cleans(const struct group *g)
{
	size_t i;

	for (i = 0; g && i < g->n; i++)
		if (g->it[i].cleanup)
			return 1;
	return 0;
}

static int
group_any(const struct group *g)
{
	size_t i;

	for (i = 0; g && i < g->n; i++)
		if (g->it[i].active)
			return 1;
	return 0;
}

int
ids_relocate_batch(struct ids_mboxlist *mbl, const char *const *names, size_t n,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats,
    struct ids_relocate_result *results)
{
	struct group *groups = malloc(3 * sizeof(*groups)), *spare;
	struct batch b = { mbl, opts, stats, NULL, NULL, NULL, { { NULL, { -1, -1 }, { 0, 0 }, { NULL, NULL }, { -1, -1 } } } };
	size_t off = 0, k;
	int j, r = 0;

	size_t gmax = opts->group > 0 && opts->group < GROUP_MAX ? opts->group : GROUP_MAX;
	struct rlimit rl;

	if (groups == NULL)
		return -ENOMEM;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		size_t fit = rl.rlim_cur > FD_RESERVE + 3 * MEMBER_FDS ?
		    (size_t)(rl.rlim_cur - FD_RESERVE) / (3 * MEMBER_FDS) : 1;

		if (gmax > fit)
			gmax = fit;
	}
	/* The first group's intents: a step with nothing else to do. */
	k = n < gmax ? n : gmax;
	b.next = &groups[0];
	group_prepare(&b, b.next, names, results, k);
	off = k;
	while (b.done || b.cur || b.next) {
		if (b.done || group_any(b.cur))
			step_files(&b);
		/*
		 * The step's sync covers done's removals and cur's links;
		 * nothing of next is written before its intents commit.
		 */
		if ((b.done || group_any(b.cur)) && (r = step_sync(&b)) < 0)
			break;
		if ((b.done || group_any(b.cur) || group_any(b.next)) &&
		    (r = ids_mboxlist_write(mbl, step_txn, &b)) < 0) {
			/* Nothing of the transaction happened: no flip either. */
			for (k = 0; b.cur && k < b.cur->n; k++)
				b.cur->it[k].flipped = 0;
			break;
		}
		settle_flips(&b);
		/*
		 * A step maps some pages of mailboxes.db per folder (its
		 * lookups, and the pages its commits wrote); dropping the map
		 * (~150 us) keeps a long batch's memory from growing with it.
		 */
		ids_mboxlist_trim(mbl);
		group_close(&b, b.done, 0, 1);
		/* Without a grace, cur's old names go in the next step. */
		if (group_cleans(b.cur)) {
			b.done = b.cur;
		} else {
			group_close(&b, b.cur, 0, 1);
			b.done = NULL;
		}
		b.cur = b.next;
		b.next = NULL;
		if (off < n) {
			k = n - off < gmax ? n - off : gmax;
			for (spare = groups; spare == b.done || spare == b.cur; spare++)
				;
			b.next = spare;
			group_prepare(&b, b.next, names + off, results + off, k);
			off += k;
		}
	}
	if (r < 0) {
		/*
		 * A batch-wide failure: done's folders are flipped (their
		 * intents, left in place, have recovery finish the removals),
		 * cur's roll back, next's never started.
		 */
		group_close(&b, b.done, 0, 1);
		group_close(&b, b.cur, r, 1);
		group_close(&b, b.next, r, 0);
		for (; off < n; off++) {
			results[off].rc = r;
			snprintf(results[off].reason, sizeof(results[off].reason), "%s",
			    ids_errmsg(r));
			memset(&results[off].st, 0, sizeof(results[off].st));
		}
	}
	for (k = 0; k < ROOTS_MAX; k++)
		for (j = 0; b.roots[k].part != NULL && j < NROOTS; j++)
			if (b.roots[k].fd[j] >= 0)
				close(b.roots[k].fd[j]);
	free(groups);
	return 0;
}

/* --- recovery -------------------------------------------------------- */

/* Stage "rename": roll forward whatever moved; roll back if nothing did. */
static int
recover_rename(struct reloc *rl, const struct ids_intent *orig)
{
	struct ids_intent in;
	int i, moved = 0, left = 0, r;

	for (i = 0; i < NROOTS; i++) {
		if (rl->root[i] < 0)
			continue;
		moved += rl->sfd[i] < 0 && rl->dfd[i] >= 0;
		left += rl->sfd[i] >= 0;
	}
	/*
	 * Nothing moved: the legacy directory is whole.  The new one may
	 * be absent, empty, or hold links made under this intent by a batch
	 * that found a child folder still inside: a rollback removes what
	 * is ours, as for a link intent.
	 */
	if (!moved)
		return rollback(rl);
	if (left && (r = rename_all(rl)) < 0)
		return r;
	if ((r = write_header(rl, rl->dfd[root_of(rl, IDS_META_HEADER)], 0)) < 0)
		return r;
	ids_intent_init(&in);
	strcpy(in.op, orig->op);
	strcpy(in.strategy, orig->strategy);
	if ((r = ids_intent_set(&in.name, orig->name)) == 0 &&
	    (r = ids_intent_set(&in.partition, orig->partition)) == 0 &&
	    (r = ids_intent_set(&in.src, rl->src)) == 0 &&
	    (r = ids_intent_set(&in.dst, rl->dst)) == 0)
		r = flip_and_prune(rl, &in);
	ids_intent_release(&in);
	return r;
}

/*
 * The record of the folder the intent is about, found by its uniqueid:
 * it may have been renamed since the intent was written.
 */
static int
recover_setup(struct reloc *rl, struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in, struct ids_mbentry *e,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	int r;

	memset(rl, 0, sizeof(*rl));
	rl->root[0] = rl->root[1] = rl->sfd[0] = rl->sfd[1] = rl->dfd[0] = rl->dfd[1] = -1;
	rl->mbl = mbl;
	snprintf(rl->uniqueid, sizeof(rl->uniqueid), "%s", uniqueid);
	if ((r = ids_mboxlist_lookup_id(mbl, uniqueid, e)) < 0)
		return r;
	if (ids_mbentry_is_tombstone(e))
		return ids_error(IDS_ENOTFOUND, "%s: deleted during its migration; "
		    "files left at %s", e->name, in->src ? in->src : "?");
	/* reloc_init reads the legacy name from a legacy-flagged record. */
	ids_mbtype_set(e->mbtype, IDS_MBFLAG_LEGACY, 1);
	return reloc_init(rl, mbl, e, in, opts, stats, NULL);
}

int
ids_relocate_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats)
{
	struct ids_mbentry e;
	struct reloc rl;
	int r;

	ids_mbentry_init(&e);
	r = recover_setup(&rl, mbl, uniqueid, in, &e, opts, stats);
	if (r < 0) {
		if (r == IDS_ENOTFOUND)	/* the folder is gone: drop the intent */
			r = ids_mboxlist_write(mbl, finish_txn, &(struct step){ &rl, NULL, NULL });
	} else if (strcmp(in->stage, IDS_STAGE_FLIPPED) == 0) {
		r = opts->grace > 0 && time(NULL) < in->time + opts->grace ?
		    IDS_RELOCATE_PENDING : cleanup(&rl);
	} else if (strcmp(in->stage, IDS_STAGE_RENAME) == 0) {
		r = recover_rename(&rl, in);
	} else {
		r = rollback(&rl);
	}
	reloc_close(&rl);
	ids_mbentry_release(&e);
	return r;
}
