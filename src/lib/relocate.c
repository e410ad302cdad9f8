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
 *      current name, uniqueid, history) and point its cyrus.index at it;
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
	dev_t sdev[NROOTS];		/* the file system of sfd[i] */
	struct ids_dirlist *dl;		/* cleanup: the destination's names */
	struct ids_dirlist *linked;	/* link: names linked, to read back */
	int has_subdirs;
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
reloc_close(struct reloc *r)
{
	int i;

	for (i = 0; i < NROOTS; i++) {
		if (r->root[i] >= 0)
			close(r->root[i]);
		if (r->sfd[i] >= 0)
			close(r->sfd[i]);
		if (r->dfd[i] >= 0)
			close(r->dfd[i]);
		r->root[i] = r->sfd[i] = r->dfd[i] = -1;
	}
}

/* The root (0 data, 1 meta) that holds meta files of kind. */
static int
root_of(const struct reloc *r, enum ids_metafile kind)
{
	return r->root[1] >= 0 && (r->cfg->metapartition_files & (1u << kind)) ? 1 : 0;
}

static int
open_dir(int root, const char *rel, int *fdp)
{
	int rr = ids_opendir_beneath(root, rel, 0, fdp);

	if (rr == -ENOENT)
		*fdp = -1;
	return rr == -ENOENT ? 0 : rr;
}

/*
 * Fills in both directories from the record and opens what exists.
 * The record's strings stay owned by the caller.
 */
static int
reloc_init(struct reloc *r, struct ids_mboxlist *mbl, struct ids_mbentry *e,
    const struct ids_intent *in, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats)
{
	struct ids_location loc;
	const char *tops[NROOTS];
	int i, rr;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < NROOTS; i++)
		r->root[i] = r->sfd[i] = r->dfd[i] = -1;
	r->mbl = mbl;
	r->cfg = ids_mboxlist_config(mbl);
	r->opts = opts;
	r->stats = stats;
	r->entry = e;
	snprintf(r->uniqueid, sizeof(r->uniqueid), "%s", e->uniqueid);
	if ((rr = ids_location_from_entry(e, &r->mb, &loc)) < 0)
		return rr;
	if ((r->part = ids_config_partition(r->cfg, e->partition)) == NULL)
		return ids_error(IDS_EPARTITION, "%s: partition '%s' is not configured",
		    e->name, e->partition ? e->partition : "(default)");
	/*
	 * Recovering, the directories are the ones the intent recorded: the
	 * folder may have been renamed since (its legacy path moves with
	 * its name, the files do not).
	 */
	if (in != NULL && in->src != NULL && in->dst != NULL) {
		if (strlen(in->src) >= sizeof(r->src) || strlen(in->dst) >= sizeof(r->dst) ||
		    strstr(in->src, "..") || strstr(in->dst, ".."))
			return ids_error(IDS_ECORRUPT, "intent of %s: bad directories", r->uniqueid);
		strcpy(r->src, in->src);
		strcpy(r->dst, in->dst);
	} else {
		loc.layout = IDS_LAYOUT_LEGACY;
		if ((rr = ids_path_reldir(r->cfg, &loc, r->src, sizeof(r->src))) < 0)
			return rr;
		loc.layout = IDS_LAYOUT_UNIQUEID;
		if ((rr = ids_path_reldir(r->cfg, &loc, r->dst, sizeof(r->dst))) < 0)
			return rr;
	}
	tops[0] = r->part->path;
	tops[1] = r->cfg->metapartition_files ? r->part->metapath : NULL;
	for (i = 0; i < NROOTS; i++) {
		if (tops[i] == NULL)
			continue;
		if ((rr = ids_opendir_abs(tops[i], &r->root[i])) < 0)
			return ids_error(rr, "%s: %s", tops[i], ids_strerror(rr));
		if ((rr = open_dir(r->root[i], r->src, &r->sfd[i])) < 0 ||
		    (rr = open_dir(r->root[i], r->dst, &r->dfd[i])) < 0)
			return ids_error(rr, "%s: %s", tops[i], ids_errmsg(rr));
		if (r->sfd[i] >= 0) {
			struct stat st;

			if (fstat(r->sfd[i], &st) < 0)
				return -errno;
			r->sdev[i] = st.st_dev;
		}
	}
	return 0;
}

/* --- directory walks ------------------------------------------------- */

typedef int (*entry_fn)(struct reloc *r, int i, const char *name,
    const struct stat *st);

struct walk {
	struct reloc *r;
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
	return w->fn(w->r, w->i, name, &st);
}

/*
 * Calls fn for every entry of dirfd but "." and "..", stat'ed without
 * following.  Without full, only st_mode and st_ino are filled in where
 * readdir tells the type (which spares a stat per file and pass); full
 * asks for the whole stat.
 */
static int
each_entry_how(struct reloc *r, int i, int dirfd, entry_fn fn, int full)
{
	struct walk w = { r, i, dirfd, full, fn };

	return ids_dir_each(dirfd, walk_entry, &w);
}

static int
each_entry(struct reloc *r, int i, int dirfd, entry_fn fn)
{
	return each_entry_how(r, i, dirfd, fn, 0);
}

static int
preflight_entry(struct reloc *r, int i, const char *name, const struct stat *st)
{
	const char *top = i ? r->part->metapath : r->part->path;

	if (S_ISDIR(st->st_mode)) {
		r->has_subdirs = 1;
		return 0;
	}
	if (S_ISREG(st->st_mode)) {
		r->has_foreign |= ids_folder_classify(name, NULL) == IDS_FILE_OTHER;
		return 0;
	}
	return ids_error(IDS_EUNSAFE, "%s/%s/%s: %s in the folder; not migrated",
	    top, r->src, name, S_ISLNK(st->st_mode) ? "symlink" : "special file");
}

static int
preflight(struct reloc *r)
{
	int i, rr;

	for (i = 0; i < NROOTS; i++)
		if (r->sfd[i] >= 0 && (rr = each_entry(r, i, r->sfd[i], preflight_entry)) < 0)
			return rr;
	return 0;
}

/* --- link and copy --------------------------------------------------- */

/* The name exists at the destination: ours (same inode or content) or a conflict. */
static int
existing_is_ours(struct reloc *r, int i, const char *name)
{
	int rr = ids_same_file(r->sfd[i], r->dfd[i], name);

	if (rr < 0)
		return rr;
	return rr ? 0 : ids_error(IDS_ECONFLICT, "%s/%s: a different file is already there",
	    r->dst, name);
}

static int
link_one(struct reloc *r, int i, const char *name, enum ids_carry *howp)
{
	unsigned long long *bytes = &r->stats->bytes_copied;
	enum ids_carry how = IDS_CARRY_EXISTED;
	int rr;

	/* An injected link failure takes the path a real one would. */
	if ((rr = IDS_FAILPOINT("relocate.link")) < 0 &&
	    rr != -EXDEV && rr != -EMLINK && rr != -EPERM)
		return ids_error(rr, "%s/%s: link: %s", r->dst, name, strerror(-rr));
	rr = rr < 0 ? ids_copy_only(r->sfd[i], r->dfd[i], name, &how, bytes) :
	    ids_link_or_copy(r->sfd[i], r->dfd[i], name, &how, bytes);
	if (rr == IDS_ECONFLICT)
		return ids_error(rr, "%s/%s: a different file is already there", r->dst, name);
	if (rr < 0)
		return rr;
	if (how == IDS_CARRY_LINKED)
		r->stats->files_linked++;
	else if (how == IDS_CARRY_COPIED)
		r->stats->files_copied++;
	*howp = how;
	return 0;
}

/* A file the migration carries over; cyrus.header is written anew instead. */
static int
carried(const struct reloc *r, const char *name)
{
	switch (ids_folder_classify(name, NULL)) {
	case IDS_FILE_MESSAGE:
		return 1;
	case IDS_FILE_META:
		return ids_metafile_kind(name) != IDS_META_HEADER;
	default:
		return 0;
	}
}

/* Directories larger than this are read back a name at a time. */
#define LIST_MAX 65536

/*
 * Read back: every name linked to the destination is the source's
 * file.  Run after the folder's links (r->linked: each name with the
 * source's inode number from readdir), with the destination's names
 * read once: a new link has the source's inode number there (readdir's,
 * within one file system: linking worked).  Anything else (a name that
 * is not listed, a file system whose readdir numbers differ from
 * stat's) is compared in full.
 */
static int
verify_links(struct reloc *r, int i, const struct ids_dirlist *linked)
{
	const struct ids_dirlist_ent *d, *e;
	struct ids_dirlist dl;
	const char *name;
	size_t k;
	int listed, rr = 0;

	if (linked->n == 0)
		return 0;
	listed = ids_dirlist_read(r->dfd[i], LIST_MAX, &dl) == 0;
	for (k = 0; rr == 0 && k < linked->n; k++) {
		e = &linked->ent[k];
		name = linked->names + e->name;
		d = listed ? ids_dirlist_find(&dl, name) : NULL;
		if (d != NULL && d->type == DT_REG && e->ino != 0 && d->ino == e->ino)
			continue;
		if (existing_is_ours(r, i, name) != 0)
			rr = ids_error(IDS_ECONFLICT, "%s/%s: missing or different after linking",
			    r->dst, name);
	}
	ids_dirlist_free(&dl);
	return rr;
}

/* Calls fn for each entry of sfd[i], with dfd[i]'s names at hand in r->dl. */
static int
each_with_dst(struct reloc *r, int i, entry_fn fn)
{
	struct ids_dirlist dl;
	int rr;

	r->dl = NULL;
	if (r->dfd[i] >= 0 && ids_dirlist_read(r->dfd[i], LIST_MAX, &dl) == 0)
		r->dl = &dl;	/* unreadable: fn stats instead */
	rr = each_entry(r, i, r->sfd[i], fn);
	r->dl = NULL;
	if (r->dfd[i] >= 0)
		ids_dirlist_free(&dl);
	return rr;
}

static int
link_entry(struct reloc *r, int i, const char *name, const struct stat *st)
{
	enum ids_carry how;
	int rr;

	if (!S_ISREG(st->st_mode))
		return S_ISDIR(st->st_mode) ? 0 :
		    ids_error(IDS_EUNSAFE, "%s/%s: not a regular file", r->src, name);
	if (!carried(r, name)) {
		if (ids_folder_classify(name, NULL) == IDS_FILE_OTHER)
			r->stats->files_foreign++;
		return 0;
	}
	/* cyrus.index is copied with the new header's CRC (write_header). */
	if (ids_metafile_kind(name) == IDS_META_INDEX)
		return 0;
	if ((rr = link_one(r, i, name, &how)) < 0)
		return rr;
	/*
	 * A new link is read back with the others (verify_links); a copy,
	 * a name that was there, or one past the list's size, at once.
	 */
	if ((how != IDS_CARRY_LINKED || r->linked->n >= LIST_MAX ||
	    ids_dirlist_add(r->linked, name, st->st_ino, DT_REG) < 0) &&
	    existing_is_ours(r, i, name) != 0)
		return ids_error(IDS_ECONFLICT, "%s/%s: missing or different after linking",
		    r->dst, name);
	return r->opts->throttle ? r->opts->throttle(r->opts->throttle_rock) : 0;
}

/* Creates the uniqueid directory on every root in use (it may exist, empty). */
static int
make_dst(struct reloc *r)
{
	char parent[PATH_MAX], *slash;
	int i, pfd, rr;

	snprintf(parent, sizeof(parent), "%s", r->dst);
	slash = strrchr(parent, '/');
	*slash = '\0';
	for (i = 0; i < NROOTS; i++) {
		if (r->root[i] < 0 || r->dfd[i] >= 0)
			continue;
		if ((rr = ids_opendir_beneath(r->root[i], parent, IDS_OPEN_CREATE, &pfd)) < 0)
			return rr;
		if ((rr = IDS_FAILPOINT("relocate.mkdir")) == 0 &&
		    mkdirat(pfd, slash + 1, 0750) < 0 && errno != EEXIST)
			rr = -errno;
		if (rr == 0)
			rr = ids_fsync_dir(pfd);
		close(pfd);
		if (rr < 0 || (rr = ids_opendir_beneath(r->root[i], r->dst, 0, &r->dfd[i])) < 0)
			return rr;
	}
	return 0;
}

static int
link_all(struct reloc *r)
{
	struct ids_dirlist linked;
	int i, rr;

	if ((rr = make_dst(r)) < 0)
		return rr;
	for (i = 0; i < NROOTS; i++) {
		if (r->sfd[i] < 0)
			continue;
		memset(&linked, 0, sizeof(linked));
		r->linked = &linked;
		if ((rr = each_entry(r, i, r->sfd[i], link_entry)) == 0 &&
		    (rr = verify_links(r, i, &linked)) == 0)
			rr = ids_fsync_dir(r->dfd[i]);
		r->linked = NULL;
		ids_dirlist_free(&linked);
		if (rr < 0)
			return rr;
	}
	return 0;
}

/* --- the new cyrus.header -------------------------------------------- */

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
 * directory moved) the header is replaced and the index updated.
 */
static int
write_header(struct reloc *r, int from, int linked)
{
	struct ids_mbentry e;
	struct ids_header h;
	uint32_t crc;
	int hr = root_of(r, IDS_META_HEADER), ir = root_of(r, IDS_META_INDEX);
	int rr;

	ids_header_init(&h);
	if (from >= 0 && ids_header_read(from, &h, NULL) < 0)
		ids_header_init(&h);
	ids_mbentry_init(&e);
	if ((rr = ids_mboxlist_lookup_id(r->mbl, r->uniqueid, &e)) < 0 ||
	    (rr = ids_mbtype_set(e.mbtype, IDS_MBFLAG_LEGACY, 0)) < 0 ||
	    (rr = ids_header_from_mbentry(&h, &e)) < 0 ||
	    (rr = (linked ? ids_header_create : ids_header_write)(r->dfd[hr], &h, &crc)) < 0)
		goto out;
	if (linked) {
		if (r->sfd[ir] >= 0 &&
		    faccessat(r->sfd[ir], IDS_INDEX_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			if ((rr = ids_index_copy_with_crc(r->sfd[ir], r->dfd[ir], crc)) == 0 &&
			    r->opts->throttle)
				rr = r->opts->throttle(r->opts->throttle_rock);	/* a file carried */
	} else if (faccessat(r->dfd[ir], IDS_INDEX_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		rr = ids_index_set_header_crc(r->dfd[ir], crc);
out:
	ids_mbentry_release(&e);
	ids_header_release(&h);
	return rr;
}

/* --- mailboxes.db steps ---------------------------------------------- */

struct step {
	struct reloc *r;
	struct ids_intent *in;
	const char *reason;
};

static int
intent_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;

	return ids_intent_put(txn, s->r->uniqueid, s->in);
}

/* The commit point: the record leaves the legacy layout. */
static int
flip_one(struct ids_txn *txn, struct reloc *r, const struct ids_intent *in)
{
	struct ids_mbentry e;
	int rr;

	ids_mbentry_init(&e);
	if ((rr = ids_txn_lookup_name(txn, r->entry->name, &e)) < 0)
		goto out;
	if (ids_mbentry_is_tombstone(&e) || !ids_mbentry_is_legacy(&e) ||
	    strcmp(e.uniqueid, r->uniqueid) != 0) {
		rr = ids_error(IDS_EBUSY, "%s: changed during migration", e.name);
		goto out;
	}
	ids_mbtype_set(e.mbtype, IDS_MBFLAG_LEGACY, 0);
	if ((rr = ids_txn_put(txn, &e)) < 0)
		goto out;
	if (in == NULL)
		rr = ids_intent_del(txn, r->uniqueid);
	else
		rr = ids_intent_put(txn, r->uniqueid, in);
	if (rr == 0)
		ids_failure_del(txn, r->uniqueid);	/* as before: an error here is not the flip's */
out:
	ids_mbentry_release(&e);
	return rr;
}

static int
flip_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;

	return flip_one(txn, s->r, s->in);
}

static int
finish_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;
	int rr = ids_intent_del(txn, s->r->uniqueid);

	return rr == IDS_ENOTFOUND ? 0 : rr;
}

static int
fail_txn(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;

	return ids_failure_put(txn, s->r->uniqueid, s->r->entry->name, s->reason);
}

static int
record_failure(struct reloc *r, int code)
{
	const char *advice = ids_relocate_advice(code);
	char reason[1024];
	struct step s = { r, NULL, reason };

	snprintf(reason, sizeof(reason), "%s%s%s", ids_errmsg(code), advice ? "; " : "",
	    advice ? advice : "");
	ids_mboxlist_write(r->mbl, fail_txn, &s);
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
	int rr;

	if ((rr = IDS_FAILPOINT("relocate.unlink")) < 0)
		return rr;
	return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

/* Rolling back: drop the destination's names the source still has. */
static int
rollback_entry(struct reloc *r, int i, const char *name, const struct stat *st)
{
	int kind = ids_folder_classify(name, NULL);
	struct stat sst;

	if (!S_ISREG(st->st_mode) || kind == IDS_FILE_OTHER)
		return 0;
	if (kind == IDS_FILE_TEMP || ids_metafile_kind(name) == IDS_META_HEADER ||
	    ids_metafile_kind(name) == IDS_META_INDEX)
		return unlink_in(r->dfd[i], name);
	/*
	 * Only a name that is the source's file (or a verified copy of it)
	 * is ours to remove; anything else was there before us: keep it.
	 */
	if (r->sfd[i] < 0 || fstatat(r->sfd[i], name, &sst, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if ((sst.st_dev != st->st_dev || sst.st_ino != st->st_ino) &&
	    ids_same_file(r->sfd[i], r->dfd[i], name) != 1)
		return 0;
	return unlink_in(r->dfd[i], name);
}

/* 1 if name is in dfd[i]: from r->dl when it is complete or has it. */
static int
at_dst(struct reloc *r, int i, const char *name)
{
	struct stat st;

	if (r->dl != NULL) {
		if (ids_dirlist_find(r->dl, name) != NULL)
			return 1;
		if (r->dl->complete)
			return 0;
	}
	return fstatat(r->dfd[i], name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Finishing: drop the source's names the destination has. */
static int
cleanup_entry(struct reloc *r, int i, const char *name, const struct stat *st)
{
	int kind = ids_folder_classify(name, NULL);

	if (!S_ISREG(st->st_mode) || kind == IDS_FILE_OTHER)
		return 0;
	/* cyrus.header goes last, so a half-cleaned folder still says what it was. */
	if (ids_metafile_kind(name) == IDS_META_HEADER) {
		r->saw_header = 1;
		return 0;
	}
	if (kind != IDS_FILE_TEMP && r->dfd[i] >= 0 && !at_dst(r, i, name))
		return ids_error(IDS_ECONFLICT, "%s/%s: not at the new path; kept", r->src, name);
	return unlink_in(r->sfd[i], name);
}

static int
rmdir_in(int rootfd, const char *rel)
{
	int rr;

	if ((rr = IDS_FAILPOINT("relocate.rmdir")) < 0)
		return rr;
	return unlinkat(rootfd, rel, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/*
 * 1 if the directory rel (relative to a root) may be removed once empty:
 * it is not at or above the owner's uniqueid directory, and no live
 * legacy folder lives in it.
 */
static int
prunable(struct reloc *r, const char *rel, const char *top)
{
	struct ids_pathinfo pi;
	struct ids_mbentry e;
	char abs[PATH_MAX];
	size_t n = strlen(rel);
	int live = 0;

	if (strncmp(r->dst, rel, n) == 0 && (r->dst[n] == '/' || r->dst[n] == '\0'))
		return 0;
	if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", top, rel) >= sizeof(abs))
		return 0;
	if (ids_path_reverse_layout(r->cfg, abs, IDS_LAYOUT_LEGACY, &pi) == 0 &&
	    pi.kind == IDS_PATH_FOLDER) {
		char name[IDS_MBNAME_MAX + 1];

		ids_mbentry_init(&e);
		if (ids_mbname_internal(&pi.name, name, sizeof(name)) > 0 &&
		    ids_mboxlist_lookup(r->mbl, name, &e) == 0)
			live = !ids_mbentry_is_tombstone(&e) && ids_mbentry_is_legacy(&e) &&
			    strcmp(e.uniqueid, r->uniqueid) != 0;
		ids_mbentry_release(&e);
	}
	return !live;
}

/* Removes the emptied legacy directory and its emptied ancestors. */
static void
prune(struct reloc *r, int i)
{
	const char *top = i ? r->part->metapath : r->part->path;
	char rel[PATH_MAX], *slash;

	int rr;

	snprintf(rel, sizeof(rel), "%s", r->src);
	/* The folder's own directory may be gone already (renamed). */
	while (rel[0] != '\0' && prunable(r, rel, top) &&
	    ((rr = rmdir_in(r->root[i], rel)) == 0 || rr == -ENOENT)) {
		if (rr == 0)
			r->stats->dirs_removed++;
		slash = strrchr(rel, '/');
		if (slash == NULL) {
			ids_fsync_dir(r->root[i]);
			break;
		}
		*slash = '\0';
		{
			int pfd;

			if (ids_opendir_beneath(r->root[i], rel, 0, &pfd) == 0) {
				ids_fsync_dir(pfd);
				close(pfd);
			}
		}
	}
}

/* Removes the old names and the emptied legacy directories. */
static int
cleanup_files(struct reloc *r)
{
	int i, rr;

	for (i = 0; i < NROOTS; i++) {
		if (r->root[i] < 0)
			continue;
		if (r->sfd[i] >= 0) {
			r->saw_header = 0;
			if ((rr = each_with_dst(r, i, cleanup_entry)) < 0 ||
			    (r->saw_header && (rr = unlink_in(r->sfd[i], IDS_HEADER_FILE)) < 0) ||
			    (rr = ids_fsync_dir(r->sfd[i])) < 0)
				return rr;
			close(r->sfd[i]);
			r->sfd[i] = -1;
		}
		/* Also when the directory is gone: a crash may have come between rmdirs. */
		prune(r, i);
	}
	return 0;
}

static int
cleanup(struct reloc *r)
{
	int rr;

	if ((rr = cleanup_files(r)) < 0)
		return rr;
	return ids_mboxlist_write(r->mbl, finish_txn, &(struct step){ r, NULL, NULL });
}

static int
rollback(struct reloc *r)
{
	int i, rr;

	for (i = 0; i < NROOTS; i++) {
		if (r->dfd[i] < 0)
			continue;
		if ((rr = each_entry_how(r, i, r->dfd[i], rollback_entry, 1)) < 0 ||
		    (rr = ids_fsync_dir(r->dfd[i])) < 0)
			return rr;
		close(r->dfd[i]);
		r->dfd[i] = -1;
		/* Not empty: files that were there before us stay with it. */
		if ((rr = rmdir_in(r->root[i], r->dst)) < 0 && rr != -ENOENT &&
		    rr != -ENOTEMPTY && rr != -EEXIST)
			return rr;
		if ((rr = ids_fsync_dir(r->root[i])) < 0)
			return rr;
	}
	return ids_mboxlist_write(r->mbl, finish_txn, &(struct step){ r, NULL, NULL });
}

/* --- the rename strategy --------------------------------------------- */

static int
rename_dir(struct reloc *r, int i)
{
	char parent[PATH_MAX], *slash;
	int pfd, rr;

	snprintf(parent, sizeof(parent), "%s", r->dst);
	slash = strrchr(parent, '/');
	*slash = '\0';
	if ((rr = ids_opendir_beneath(r->root[i], parent, IDS_OPEN_CREATE, &pfd)) < 0)
		return rr;
	/* An empty destination left by a rolled-back attempt may be there. */
	if (r->dfd[i] >= 0) {
		close(r->dfd[i]);
		r->dfd[i] = -1;
		rmdir_in(r->root[i], r->dst);
	}
	if ((rr = IDS_FAILPOINT("relocate.rename")) == 0 &&
	    renameat2(r->root[i], r->src, r->root[i], r->dst, RENAME_NOREPLACE) < 0) {
		rr = -errno;
		if (rr == -EINVAL && faccessat(r->root[i], r->dst, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			rr = renameat(r->root[i], r->src, r->root[i], r->dst) < 0 ? -errno : 0;
	}
	if (rr == 0)
		rr = ids_fsync_dir(pfd);
	close(pfd);
	if (rr < 0)
		return ids_error(rr, "%s -> %s: %s", r->src, r->dst, ids_errmsg(rr));
	r->stats->dirs_renamed++;
	close(r->sfd[i]);
	r->sfd[i] = -1;
	if ((slash = strrchr(r->src, '/')) != NULL) {
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - r->src), r->src);
		if (ids_opendir_beneath(r->root[i], parent, 0, &pfd) == 0) {
			rr = ids_fsync_dir(pfd);
			close(pfd);
		}
	}
	return rr < 0 ? rr : ids_opendir_beneath(r->root[i], r->dst, 0, &r->dfd[i]);
}

static int
rename_all(struct reloc *r)
{
	int i, rr;

	for (i = 0; i < NROOTS; i++)
		if (r->sfd[i] >= 0 && (rr = rename_dir(r, i)) < 0)
			return rr;
	return 0;
}

/* --- driving one folder ---------------------------------------------- */

static int
set_intent(struct ids_intent *in, struct reloc *r, const char *stage,
    enum ids_strategy strategy)
{
	int rr;

	strcpy(in->op, IDS_OP_MIGRATE);
	snprintf(in->stage, sizeof(in->stage), "%s", stage);
	snprintf(in->strategy, sizeof(in->strategy), "%s", ids_strategy_name(strategy));
	in->time = time(NULL);
	if ((rr = ids_intent_set(&in->name, r->entry->name)) < 0 ||
	    (rr = ids_intent_set(&in->partition, r->part->name)) < 0 ||
	    (rr = ids_intent_set(&in->src, r->src)) < 0)
		return rr;
	return ids_intent_set(&in->dst, r->dst);
}

/* After the flip: remove the old names now, or leave them for the grace. */
static int
after_flip(struct reloc *r, struct ids_intent *in)
{
	r->stats->folders++;
	if (r->opts->grace > 0 && time(NULL) < in->time + r->opts->grace)
		return IDS_RELOCATE_PENDING;
	return cleanup(r);
}

/*
 * The rename strategy's commit point.  The intent stays, at stage
 * "flipped", until the emptied legacy directories are gone, so that a
 * crash among the rmdirs is finished by recovery.
 */
static int
flip_and_prune(struct reloc *r, struct ids_intent *in)
{
	struct step s = { r, in, NULL };
	int rr;

	strcpy(in->stage, IDS_STAGE_FLIPPED);
	in->time = time(NULL);
	if ((rr = ids_mboxlist_write(r->mbl, flip_txn, &s)) < 0)
		return rr;
	r->stats->folders++;
	return cleanup(r);
}

static int
migrate_link(struct reloc *r, struct ids_intent *in)
{
	struct step s = { r, in, NULL };
	int rr;

	if ((rr = ids_mboxlist_write(r->mbl, intent_txn, &s)) < 0)
		return rr;
	if ((rr = link_all(r)) < 0 ||
	    (rr = write_header(r, r->sfd[root_of(r, IDS_META_HEADER)], 1)) < 0)
		goto undo;
	strcpy(in->stage, IDS_STAGE_FLIPPED);
	in->time = time(NULL);
	if ((rr = ids_mboxlist_write(r->mbl, flip_txn, &s)) < 0)
		goto undo;
	return after_flip(r, in);
undo:
	rollback(r);
	return rr;
}

static int
migrate_rename(struct reloc *r, struct ids_intent *in)
{
	struct step s = { r, in, NULL };
	int rr;

	if ((rr = ids_mboxlist_write(r->mbl, intent_txn, &s)) < 0)
		return rr;
	if ((rr = rename_all(r)) < 0) {
		/* Nothing moved, or part of it: finish from the intent. */
		return ids_relocate_recover(r->mbl, r->uniqueid, in, r->opts, r->stats) < 0 ?
		    rr : rr;
	}
	if ((rr = write_header(r, r->dfd[root_of(r, IDS_META_HEADER)], 0)) < 0)
		return rr;	/* the intent finishes it at the next recovery */
	return flip_and_prune(r, in);
}

/*
 * 1 if the folder's legacy directory may be moved whole.  A directory
 * cannot be moved into itself (EINVAL): a user's INBOX at j/user/john
 * whose uniqueid directory is j/user/john/<id> is linked, like a folder
 * with child folders inside, and one holding foreign files (linking
 * leaves them, and reports them).
 */
static int
renamable(const struct reloc *r)
{
	size_t n = strlen(r->src);

	return !r->has_subdirs && !r->has_foreign &&
	    !(strncmp(r->dst, r->src, n) == 0 && r->dst[n] == '/');
}

static int
pending_intent(struct ids_txn *txn, void *rock)
{
	struct step *s = rock;
	int rr = ids_intent_get(txn, s->r->uniqueid, s->in);

	return rr == IDS_ENOTFOUND ? 0 : rr < 0 ? rr : 1;
}

static int
relocate_locked(struct ids_mailbox *mb, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats)
{
	struct reloc r;
	struct ids_intent in;
	enum ids_strategy strategy = opts->strategy;
	int rr;

	ids_intent_init(&in);
	if ((rr = reloc_init(&r, mb->mbl, &mb->entry, NULL, opts, stats)) < 0)
		goto out;
	/* A crashed earlier attempt is settled first. */
	if ((rr = ids_mboxlist_read(mb->mbl, pending_intent, &(struct step){ &r, &in, NULL })) > 0) {
		rr = ids_relocate_recover(mb->mbl, r.uniqueid, &in, opts, stats);
		goto out;	/* the walker comes back to the folder if still legacy */
	}
	if (rr < 0 || (rr = preflight(&r)) < 0) {
		if (rr < 0)
			record_failure(&r, rr);
		goto out;
	}
	if (!renamable(&r))
		strategy = IDS_STRATEGY_LINK;
	if ((rr = set_intent(&in, &r, strategy == IDS_STRATEGY_LINK ? IDS_STAGE_LINK : IDS_STAGE_RENAME,
	    strategy)) < 0)
		goto out;
	rr = strategy == IDS_STRATEGY_LINK ? migrate_link(&r, &in) : migrate_rename(&r, &in);
	if (rr < 0)
		record_failure(&r, rr);
out:
	reloc_close(&r);
	ids_intent_release(&in);
	return rr;
}

int
ids_relocate_folder(struct ids_mboxlist *mbl, const char *name,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	struct ids_mailbox *mb;
	int rr;

	/* A detail left by an earlier folder must not become this one's. */
	ids_error_clear();
	if ((rr = ids_mailbox_open(mbl, name, IDS_MAILBOX_WRITE, opts->lock_timeout_ms, &mb)) < 0)
		return rr;
	rr = ids_mbentry_is_legacy(&mb->entry) ? relocate_locked(mb, opts, stats) : 0;
	ids_mailbox_close(mb);
	return rr;
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
	struct reloc r;
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
		snprintf(it->reason, sizeof(it->reason), "%s", ids_errmsg(rc));
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
};

/* Opens, checks and plans one folder; 1 if it joins the batch. */
static int
batch_prepare(struct batch *b, struct bitem *it, const char *name)
{
	struct ids_relocate_opts one = *b->opts;
	int rr;

	ids_error_clear();	/* the member before's detail is not this one's */
	ids_intent_init(&it->in);
	it->r.root[0] = it->r.root[1] = it->r.sfd[0] = it->r.sfd[1] = -1;
	it->r.dfd[0] = it->r.dfd[1] = -1;
	if (set_rc(it, ids_mailbox_open(b->mbl, name, IDS_MAILBOX_WRITE,
	    b->opts->lock_timeout_ms, &it->mb)) < 0 || !ids_mbentry_is_legacy(&it->mb->entry))
		return 0;
	if ((rr = reloc_init(&it->r, b->mbl, &it->mb->entry, NULL, b->opts, &it->st)) < 0 ||
	    (rr = ids_mboxlist_read(b->mbl, pending_intent,
	    &(struct step){ &it->r, &it->in, NULL })) != 0 ||
	    (rr = preflight(&it->r)) < 0) {
		/* Anything out of the ordinary takes the one-folder path. */
		ids_intent_release(&it->in);
		reloc_close(&it->r);
		one.lock_timeout_ms = 0;
		set_rc(it, rr < 0 && rr != IDS_EUNSAFE ? rr : relocate_locked(it->mb, &one, &it->st));
		return 0;
	}
	it->rename = b->opts->strategy == IDS_STRATEGY_RENAME && renamable(&it->r);
	if (set_rc(it, set_intent(&it->in, &it->r, it->rename ? IDS_STAGE_RENAME : IDS_STAGE_LINK,
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
	int rr;

	for (i = 0; i < g->n; i++) {
		it = &g->it[i];
		if (!it->active)
			continue;
		strcpy(it->in.stage, IDS_STAGE_FLIPPED);
		it->in.time = time(NULL);
		rr = flip_one(txn, &it->r, &it->in);
		if (rr == IDS_EBUSY)
			set_rc(it, rr);
		else if (rr < 0)
			return rr;
		it->flipped = rr == 0;
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
	int rr;

	for (i = 0; b->done && i < b->done->n; i++) {
		it = &b->done->it[i];
		if (it->cleanup && it->rc == 0 &&
		    (rr = ids_intent_del(txn, it->r.uniqueid)) < 0 && rr != IDS_ENOTFOUND)
			return rr;
	}
	if (b->cur && (rr = group_flip(txn, b->cur)) < 0)
		return rr;
	for (i = 0; b->next && i < b->next->n; i++) {
		it = &b->next->it[i];
		if (it->active && (rr = ids_intent_put(txn, it->r.uniqueid, &it->in)) < 0)
			return rr;
	}
	return 0;
}

/* Adds the file system of every root of g's members in use to devs. */
static void
group_devs(const struct group *g, int cleaning, dev_t *devs, int *fds, size_t *ndevs,
    size_t max)
{
	struct stat st;
	size_t i, k;
	int j;

	for (i = 0; g && i < g->n; i++) {
		if (!(cleaning ? g->it[i].cleanup : g->it[i].active))
			continue;
		for (j = 0; j < NROOTS; j++) {
			if (g->it[i].r.root[j] < 0 || fstat(g->it[i].r.root[j], &st) < 0)
				continue;
			for (k = 0; k < *ndevs && devs[k] != st.st_dev; k++)
				;
			if (k == *ndevs && *ndevs < max) {
				devs[*ndevs] = st.st_dev;
				fds[(*ndevs)++] = g->it[i].r.root[j];
			}
		}
	}
}

/* One syncfs for each file system the step wrote to. */
static int
step_sync(struct batch *b)
{
	dev_t devs[2 * GROUP_MAX * NROOTS];
	int fds[2 * GROUP_MAX * NROOTS], rr;
	size_t i, n = 0;

	group_devs(b->done, 1, devs, fds, &n, sizeof(devs) / sizeof(devs[0]));
	group_devs(b->cur, 0, devs, fds, &n, sizeof(devs) / sizeof(devs[0]));
	for (i = 0; i < n; i++)
		if ((rr = ids_fs_sync(fds[i])) < 0)
			return rr;
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
	struct ids_relocate_opts opts = *it->r.opts;
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
		if (ids_relocate_recover(it->r.mbl, it->r.uniqueid, &it->in, &opts, &it->st) == 0 &&
		    it->st.folders > 0) {
			it->rc = 0;	/* moved on and flipped after all */
			return;
		}
	} else
		rollback(&it->r);
	/* The detail of the failure, not of whatever the rollback did. */
	ids_error(rc, "%s", keep);
	record_failure(&it->r, rc);
}

/* Step 1: old names of done go, cur's files are linked; no fsync yet. */
static void
step_files(struct batch *b)
{
	struct bitem *it;
	size_t i;
	int rr;

	ids_fs_defer_sync(1);
	for (i = 0; b->done && i < b->done->n; i++) {
		it = &b->done->it[i];
		if (it->cleanup && set_rc(it, cleanup_files(&it->r)) < 0) {
			ids_fs_defer_sync(0);
			record_failure(&it->r, it->rc);
			ids_fs_defer_sync(1);
		}
	}
	for (i = 0; b->cur && i < b->cur->n; i++) {
		it = &b->cur->it[i];
		if (!it->active)
			continue;
		if (it->rename) {
			if ((rr = rename_all(&it->r)) == 0)
				rr = write_header(&it->r, it->r.dfd[root_of(&it->r, IDS_META_HEADER)], 0);
		} else if ((rr = link_all(&it->r)) == 0)
			rr = write_header(&it->r, it->r.sfd[root_of(&it->r, IDS_META_HEADER)], 1);
		if (rr < 0) {
			ids_fs_defer_sync(0);
			batch_drop(it, rr);
			ids_fs_defer_sync(1);
		}
	}
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
 * Releases g, storing each member's outcome.  rr is a batch-wide
 * failure that came before the members' flips: those whose intents
 * were committed roll back; the others just report it.
 */
static void
group_close(struct batch *b, struct group *g, int rr, int committed)
{
	struct bitem *it;
	size_t i;

	for (i = 0; g && i < g->n; i++) {
		it = &g->it[i];
		if (rr < 0 && it->active && !it->flipped) {
			if (committed)
				batch_drop(it, rr);
			else
				set_rc(it, rr);
		}
		it->res->rc = it->rc;
		snprintf(it->res->reason, sizeof(it->res->reason), "%s",
		    it->rc < 0 ? it->reason : "");
		it->res->st = it->st;
		add_stats(b->stats, &it->st);
		reloc_close(&it->r);
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
	struct batch b = { mbl, opts, stats, NULL, NULL, NULL };
	size_t off = 0, k;
	int rr = 0;

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
		if ((b.done || group_any(b.cur)) && (rr = step_sync(&b)) < 0)
			break;
		if ((b.done || group_any(b.cur) || group_any(b.next)) &&
		    (rr = ids_mboxlist_write(mbl, step_txn, &b)) < 0) {
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
	if (rr < 0) {
		/*
		 * A batch-wide failure: done's folders are flipped (their
		 * intents, left in place, have recovery finish the removals),
		 * cur's roll back, next's never started.
		 */
		group_close(&b, b.done, 0, 1);
		group_close(&b, b.cur, rr, 1);
		group_close(&b, b.next, rr, 0);
		for (; off < n; off++) {
			results[off].rc = rr;
			snprintf(results[off].reason, sizeof(results[off].reason), "%s",
			    ids_errmsg(rr));
			memset(&results[off].st, 0, sizeof(results[off].st));
		}
	}
	free(groups);
	return 0;
}

/* --- recovery -------------------------------------------------------- */

/* Stage "rename": roll forward whatever moved; roll back if nothing did. */
static int
recover_rename(struct reloc *r, const struct ids_intent *orig)
{
	struct ids_intent in;
	int i, moved = 0, left = 0, rr;

	for (i = 0; i < NROOTS; i++) {
		if (r->root[i] < 0)
			continue;
		moved += r->sfd[i] < 0 && r->dfd[i] >= 0;
		left += r->sfd[i] >= 0;
	}
	if (!moved) {
		for (i = 0; i < NROOTS; i++)
			if (r->dfd[i] >= 0) {
				close(r->dfd[i]);
				r->dfd[i] = -1;
				rmdir_in(r->root[i], r->dst);
			}
		return ids_mboxlist_write(r->mbl, finish_txn, &(struct step){ r, NULL, NULL });
	}
	if (left && (rr = rename_all(r)) < 0)
		return rr;
	if ((rr = write_header(r, r->dfd[root_of(r, IDS_META_HEADER)], 0)) < 0)
		return rr;
	ids_intent_init(&in);
	strcpy(in.op, orig->op);
	strcpy(in.strategy, orig->strategy);
	if ((rr = ids_intent_set(&in.name, orig->name)) == 0 &&
	    (rr = ids_intent_set(&in.partition, orig->partition)) == 0 &&
	    (rr = ids_intent_set(&in.src, r->src)) == 0 &&
	    (rr = ids_intent_set(&in.dst, r->dst)) == 0)
		rr = flip_and_prune(r, &in);
	ids_intent_release(&in);
	return rr;
}

/*
 * The record of the folder the intent is about, found by its uniqueid:
 * it may have been renamed since the intent was written.
 */
static int
recover_setup(struct reloc *r, struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in, struct ids_mbentry *e,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	int rr;

	memset(r, 0, sizeof(*r));
	r->root[0] = r->root[1] = r->sfd[0] = r->sfd[1] = r->dfd[0] = r->dfd[1] = -1;
	r->mbl = mbl;
	snprintf(r->uniqueid, sizeof(r->uniqueid), "%s", uniqueid);
	if ((rr = ids_mboxlist_lookup_id(mbl, uniqueid, e)) < 0)
		return rr;
	if (ids_mbentry_is_tombstone(e))
		return ids_error(IDS_ENOTFOUND, "%s: deleted during its migration; "
		    "files left at %s", e->name, in->src ? in->src : "?");
	/* reloc_init reads the legacy name from a legacy-flagged record. */
	ids_mbtype_set(e->mbtype, IDS_MBFLAG_LEGACY, 1);
	return reloc_init(r, mbl, e, in, opts, stats);
}

int
ids_relocate_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats)
{
	struct ids_mbentry e;
	struct reloc r;
	int rr;

	ids_mbentry_init(&e);
	rr = recover_setup(&r, mbl, uniqueid, in, &e, opts, stats);
	if (rr < 0) {
		if (rr == IDS_ENOTFOUND)	/* the folder is gone: drop the intent */
			rr = ids_mboxlist_write(mbl, finish_txn, &(struct step){ &r, NULL, NULL });
	} else if (strcmp(in->stage, IDS_STAGE_FLIPPED) == 0) {
		rr = opts->grace > 0 && time(NULL) < in->time + opts->grace ?
		    IDS_RELOCATE_PENDING : cleanup(&r);
	} else if (strcmp(in->stage, IDS_STAGE_RENAME) == 0) {
		rr = recover_rename(&r, in);
	} else {
		rr = rollback(&r);
	}
	reloc_close(&r);
	ids_mbentry_release(&e);
	return rr;
}
