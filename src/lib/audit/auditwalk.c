/*
 * auditwalk.c - the spool walk of the audit (auditpriv.h): every
 * directory below the partition roots (or below one owner's
 * directories), never through a symlink, looking for folder files
 * (cyrus.header, cyrus.index, message files) in directories no live
 * folder resolved to.  Such a directory is a copy of a live folder when
 * its cyrus.header carries a live uniqueid (restored from a backup, a
 * copied directory, a failed rename: IDS_AUDIT_DUPID), else a stray
 * (a deleted folder's leftovers, a foreign directory: IDS_AUDIT_STRAY).
 *
 * The directories of live folders were collected, as (st_dev, st_ino),
 * while their folders were audited: a rename of a directory during the
 * walk cannot make a live folder look like a stray.
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

#include "auditpriv.h"
#include "error.h"
#include "fsutil.h"
#include "intent.h"
#include "mailbox.h"
#include "mboxlist.h"

#define WALK_DEPTH 64	/* deeper than any layout goes */

/* --- a set of (dev, ino) --------------------------------------------- */

struct dirkey {
	dev_t dev;
	ino_t ino;
	int used;
};

struct dirset {
	struct dirkey *v;
	size_t n, cap;		/* cap is a power of two */
};

struct dirset *
ids_dirset_new(void)
{
	struct dirset *s = calloc(1, sizeof(*s));

	if (s && (s->v = calloc(1024, sizeof(*s->v))) == NULL) {
		free(s);
		return NULL;
	}
	if (s)
		s->cap = 1024;
	return s;
}

void
ids_dirset_free(struct dirset *s)
{
	if (s) {
		free(s->v);
		free(s);
	}
}

static size_t
dirset_slot(const struct dirset *s, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)ino * 0xc2b2ae3d27d4eb4fULL);
	size_t i = (size_t)(h ^ (h >> 29)) & (s->cap - 1);

	while (s->v[i].used && (s->v[i].dev != dev || s->v[i].ino != ino))
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int
dirset_grow(struct dirset *s)
{
	struct dirset bigger = { calloc(2 * s->cap, sizeof(*s->v)), 0, 2 * s->cap };
	size_t i;

	if (bigger.v == NULL)
		return -ENOMEM;
	for (i = 0; i < s->cap; i++)
		if (s->v[i].used)
			bigger.v[dirset_slot(&bigger, s->v[i].dev, s->v[i].ino)] = s->v[i];
	free(s->v);
	s->v = bigger.v;
	s->cap = bigger.cap;
	return 0;
}

int
ids_dirset_add(struct dirset *s, dev_t dev, ino_t ino)
{
	size_t i;
	int r;

	if (2 * (s->n + 1) > s->cap && (r = dirset_grow(s)) < 0)
		return r;
	i = dirset_slot(s, dev, ino);
	if (!s->v[i].used) {
		s->v[i] = (struct dirkey){ dev, ino, 1 };
		s->n++;
	}
	return 0;
}

static int
dirset_has(const struct dirset *s, dev_t dev, ino_t ino)
{
	return s->v[dirset_slot(s, dev, ino)].used;
}

/* --- one directory with folder files --------------------------------- */

struct holder {
	const char *uniqueid;
	struct ids_mbentry e;	/* the live holder of uniqueid, if any */
	int live, intent;
};

static int
holder_txn(struct ids_txn *txn, void *rock)
{
	struct holder *h = rock;
	struct ids_intent in;

	if (ids_txn_lookup_id(txn, h->uniqueid, &h->e) == 0)
		h->live = !ids_mbentry_is_tombstone(&h->e);
	ids_intent_init(&in);
	h->intent = ids_intent_get(txn, h->uniqueid, &in) == 0;
	ids_intent_release(&in);
	return 0;
}

/*
 * Where the live holder's folder is, for the finding; returns 1 if path
 * is its data directory or the metapartition directory of its header.
 */
static int
holder_path(struct arun *run, struct holder *h, const char *path, char *buf, size_t size)
{
	const struct ids_config *cfg = ids_mboxlist_config(run->mbl);
	struct ids_mbname mb;
	struct ids_location loc;
	char meta[PATH_MAX];

	if (ids_location_from_entry(&h->e, &mb, &loc) < 0 ||
	    ids_path_datadir(cfg, &loc, buf, size) < 0) {
		snprintf(buf, size, "its own directory");
		return 0;
	}
	return strcmp(buf, path) == 0 ||
	    (ids_path_metadir(cfg, &loc, IDS_META_HEADER, meta, sizeof(meta)) >= 0 &&
	    strcmp(meta, path) == 0);
}

static int
report_dir(struct arun *run, int fd, const char *path, unsigned nmsg)
{
	struct holder h = { NULL, { 0 }, 0, 0 };
	struct ids_header hd;
	struct aflist l;
	struct afinding *a;
	char where[PATH_MAX], what[PATH_MAX + 128];
	int r = 0;

	ids_header_init(&hd);
	ids_mbentry_init(&h.e);
	memset(&l, 0, sizeof(l));
	if (ids_header_read(fd, &hd, NULL) == 0 && hd.uniqueid &&
	    ids_uniqueid_check(hd.uniqueid) == 0) {
		h.uniqueid = hd.uniqueid;
		r = ids_mboxlist_read(run->mbl, holder_txn, &h);
	}
	if (r < 0 || h.intent)
		goto out;	/* a migration in progress owns the directory */
	snprintf(what, sizeof(what), "%s%s%s%u message files",
	    h.uniqueid ? "cyrus.header of uniqueid " : "no cyrus.header",
	    h.uniqueid ? h.uniqueid : "", h.uniqueid && !h.live ? " (no live mailbox), " : ", ",
	    nmsg);
	if (h.live) {
		if (holder_path(run, &h, path, where, sizeof(where)))
			goto out;	/* a live folder outside the audit's scope */
		snprintf(what + strlen(what), sizeof(what) - strlen(what),
		    "; the folder is at %s", where);
	}
	a = ids_af_add(&l, h.live ? IDS_AUDIT_DUPID : IDS_AUDIT_STRAY, 0, path,
	    h.live ? "one copy of the folder" : "no folder files", what);
	if (a && h.uniqueid)
		a->uniqueid = strdup(h.uniqueid);
	r = ids_run_emit(run, &l, h.live ? h.e.name : NULL, NULL, NULL);
out:
	ids_aflist_release(&l);
	ids_header_release(&hd);
	ids_mbentry_release(&h.e);
	return r;
}

/* --- the walk -------------------------------------------------------- */

static int walk_dir(struct arun *run, int fd, const char *path, int depth, int self);

/* Descends into the subdirectory name of fd. */
static int
walk_child(struct arun *run, int fd, const char *path, const char *name, int depth)
{
	char sub[PATH_MAX];
	int cfd, r;

	if (ids_abspath(sub, sizeof(sub), path, name, NULL) < 0)
		return 0;	/* a path too long for any folder: not ours */
	cfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0)
		return 0;	/* gone, or not a directory after all */
	r = walk_dir(run, cfd, sub, depth + 1, 1);
	close(cfd);
	return r;
}

static int
is_dir(int fd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_DIR;
	return fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Walks below fd; with self, fd itself may be a folder directory. */
static int
walk_dir(struct arun *run, int fd, const char *path, int depth, int self)
{
	struct dirent *de;
	struct stat st;
	unsigned nmsg = 0, meta = 0;
	int dfd, r = 0;
	DIR *d;

	if (depth > WALK_DEPTH || run->stop)
		return 0;
	if ((dfd = dup(fd)) < 0 || (d = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return 0;	/* unreadable: the folders in it were reported */
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (is_dir(fd, de))
			r = walk_child(run, fd, path, de->d_name, depth);
		else if (strcmp(de->d_name, IDS_HEADER_FILE) == 0 ||
		    strcmp(de->d_name, IDS_INDEX_FILE) == 0)
			meta++;
		else
			nmsg += ids_folder_classify(de->d_name, NULL) == IDS_FILE_MESSAGE;
	}
	closedir(d);
	if (r == 0 && self && (meta || nmsg) && fstat(fd, &st) == 0 &&
	    !dirset_has(run->known, st.st_dev, st.st_ino))
		r = report_dir(run, fd, path, nmsg);
	return r;
}

static int
walk_path(struct arun *run, int rootfd, const char *root, const char *rel, int self)
{
	char path[PATH_MAX];
	int fd, r;

	if (rootfd < 0 || ids_abspath(path, sizeof(path), root, rel, NULL) < 0)
		return 0;
	if (ids_audit_opendir(rootfd, rel, &fd) < 0)
		return 0;
	r = walk_dir(run, fd, path, 0, self);
	close(fd);
	return r;
}

int
ids_walk_spool(struct arun *run)
{
	const struct ids_config *cfg = ids_mboxlist_config(run->mbl);
	size_t i;
	int r = 0;

	for (i = 0; i < cfg->npartitions && r == 0; i++) {
		r = walk_path(run, run->rootfds[i], cfg->partitions[i].path, "", 0);
		if (r == 0 && cfg->partitions[i].metapath &&
		    strcmp(cfg->partitions[i].metapath, cfg->partitions[i].path) != 0)
			r = walk_path(run, run->metarootfds[i], cfg->partitions[i].metapath, "", 0);
	}
	return r;
}

/*
 * One owner's directories on every root: its legacy directory (which
 * holds the legacy folders below it) and its uniqueid owner directory
 * (the parent of its uniqueid folders).
 */
int
ids_walk_subtree(struct arun *run)
{
	const struct ids_config *cfg = ids_mboxlist_config(run->mbl);
	struct ids_mbname mb;
	struct ids_location loc = { &mb, "0000000000000000", NULL, IDS_LAYOUT_LEGACY };
	char legacy[PATH_MAX], owner[PATH_MAX], *slash;
	size_t i;
	int r = 0;

	if (ids_mbname_parse_internal(&mb, run->o->subtree, 0) < 0)
		return 0;
	for (i = 0; i < cfg->npartitions && r == 0; i++) {
		loc.partition = cfg->partitions[i].name;
		loc.layout = IDS_LAYOUT_LEGACY;
		if (ids_path_reldir(cfg, &loc, legacy, sizeof(legacy)) < 0)
			continue;
		loc.layout = IDS_LAYOUT_UNIQUEID;
		if (ids_path_reldir(cfg, &loc, owner, sizeof(owner)) < 0 ||
		    (slash = strrchr(owner, '/')) == NULL)
			continue;
		*slash = '\0';
		r = walk_path(run, run->rootfds[i], cfg->partitions[i].path, legacy, 1);
		if (r == 0 && strcmp(owner, legacy) != 0)
			r = walk_path(run, run->rootfds[i], cfg->partitions[i].path, owner, 0);
		if (r == 0 && cfg->partitions[i].metapath && cfg->metapartition_files) {
			r = walk_path(run, run->metarootfds[i], cfg->partitions[i].metapath, legacy, 1);
			if (r == 0 && strcmp(owner, legacy) != 0)
				r = walk_path(run, run->metarootfds[i], cfg->partitions[i].metapath,
				    owner, 0);
		}
	}
	return r;
}
