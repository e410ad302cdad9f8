/*
 * reconstruct_scan.c - the walk over the partitions: finding every
 * folder directory of both layouts and reading its cyrus.header and the
 * header of its cyrus.index.
 *
 * The walk opens every directory with openat(O_DIRECTORY | O_NOFOLLOW)
 * relative to its parent, so no symlink is ever followed; anything that
 * is neither a directory nor a regular file (symlinks, devices, FIFOs,
 * sockets) is reported and skipped.  A directory is a folder when it
 * holds a cyrus.header (on the metapartition when headers live there),
 * or a cyrus.index or message files without one (a folder whose header
 * is missing: reported, left alone).  Which folder it is comes from
 * the reverse resolver (layout.h): a directory whose name has the shape
 * of a unique id in the uniqueid layout's place is a uniqueid folder
 * when its header carries that id, else it is read as a legacy folder.
 *
 * With an owner in the options only the owner's directories are
 * walked: its legacy INBOX directory (with every child folder), its
 * legacy DELETED directory and its uniqueid directory.
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
#include <zlib.h>

#include "alloc.h"
#include "dlist.h"
#include "error.h"
#include "fsutil.h"
#include "index.h"
#include "mailbox.h"
#include "reconstruct_int.h"

#define MAX_DEPTH 300	/* deeper than any folder path can be */

struct entries {
	char **dirs;		/* subdirectory names */
	size_t n, alloc;
	int has_header;		/* cyrus.header */
	int has_files;		/* cyrus.index or message files */
};

struct walk {
	struct rc_ctx *c;
	char shown[PATH_MAX + 256];	/* an entry's absolute path, for events */
	const struct ids_partition *part;
	int metafd;		/* the metapartition root, when headers live there */
	char rel[PATH_MAX];	/* the directory below the root */
	size_t len;
};

void
ids_rc_folder_release(struct rc_folder *f)
{
	free(f->rel);
	free(f->path);
	free(f->pathname);
	free(f->name);
	ids_header_release(&f->h);
	if (f->hist != NULL) {
		size_t i;

		for (i = 0; i < f->nhist; i++)
			ids_history_release(&f->hist[i]);
		free(f->hist);
	}
}

/* The absolute path of entry name in the directory being walked. */
static const char *
entry_path(struct walk *w, const char *name)
{
	int n = snprintf(w->shown, sizeof(w->shown), "%s%s%s%s%s", w->part->path,
	    w->len ? "/" : "", w->rel, name ? "/" : "", name ? name : "");

	if (n < 0 || (size_t)n >= sizeof(w->shown))	/* shown cut, marked */
		strcpy(w->shown + sizeof(w->shown) - 4, "...");
	return w->shown;
}

/* --- reading a folder's files ------------------------------------------- */

/* Reads all of fd (a regular file of size bytes) into a malloc'd buffer. */
static int
read_fd(int fd, size_t size, char **bufp, size_t *lenp)
{
	char *buf = malloc(size + 1);
	size_t got = 0;
	ssize_t n = 1;

	if (buf == NULL)
		return -ENOMEM;
	while (got < size && n != 0) {
		n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -errno;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*bufp = buf;
	*lenp = got;
	return 0;
}

int
ids_rc_read_header(int dirfd, struct ids_header *h, uint32_t *crc, int64_t *mtime)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	fd = openat(dirfd, IDS_HEADER_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ELOOP ? ids_error(IDS_EUNSAFE, "cyrus.header is a symlink") :
		    ids_error(-errno, "cyrus.header: %s", strerror(errno));
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = ids_error(IDS_EUNSAFE, "cyrus.header is not a regular file");
	else if ((uint64_t)st.st_size > IDS_HEADER_MAX_SIZE)
		r = ids_error(IDS_ETOOLONG, "cyrus.header of %lld bytes",
		    (long long)st.st_size);
	else
		r = read_fd(fd, (size_t)st.st_size, &buf, &len);
	close(fd);
	if (r < 0)
		return r;
	*mtime = (int64_t)st.st_mtime;
	*crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)buf, (uInt)len);
	r = ids_header_parse(h, buf, len);
	free(buf);
	return r;
}

static void
read_index(struct rc_folder *f, int dirfd)
{
	struct ids_index_header ih;

	if ((f->idx_err = ids_index_read_header(dirfd, &ih)) < 0)
		return;
	f->ix.uidvalidity = ih.uidvalidity;
	f->ix.last_uid = ih.last_uid;
	f->ix.exists = ih.exists;
	f->ix.header_file_crc = ih.header_file_crc;
	f->ix.createdmodseq = ih.createdmodseq;
	f->ix.highestmodseq = ih.highestmodseq;
}

/* The directory of w->rel holding meta files of kind (data or meta). */
static int
meta_dir(struct walk *w, int datafd, enum ids_metafile kind, int *fdp)
{
	if (w->metafd < 0 || !(w->c->cfg->metapartition_files & (1u << kind))) {
		*fdp = datafd;
		return 0;
	}
	return ids_opendir_beneath(w->metafd, w->rel, 0, fdp);
}

/* Reads both files; the folder keeps what it could not read as errors. */
static void
read_files(struct walk *w, struct rc_folder *f, int datafd)
{
	int hfd, ifd, r;

	if ((r = meta_dir(w, datafd, IDS_META_HEADER, &hfd)) < 0) {
		f->hdr_err = r;
	} else {
		f->hdr_err = ids_rc_read_header(hfd, &f->h, &f->hdr_crc, &f->hdr_mtime);
		if (hfd != datafd)
			close(hfd);
	}
	if ((r = meta_dir(w, datafd, IDS_META_INDEX, &ifd)) < 0) {
		f->idx_err = r;
		return;
	}
	read_index(f, ifd);
	if (ifd != datafd)
		close(ifd);
}

/* --- which folder a directory is ----------------------------------------- */

static int
reverse_dir(struct walk *w, const char *abs, const struct ids_header *h,
    struct ids_pathinfo *info)
{
	struct ids_pathinfo *leg;
	int r;

	if ((r = ids_path_reverse(w->c->cfg, abs, info)) < 0)
		return r;
	if (info->kind != IDS_PATH_FOLDER)
		return ids_error(IDS_ENOTFOUND, "not a folder path");
	if (info->layout != IDS_LAYOUT_UNIQUEID || h->uniqueid == NULL ||
	    strcmp(h->uniqueid, info->uniqueid) == 0)
		return 0;
	/* An id-shaped legacy folder name: its header says which it is. */
	if ((leg = malloc(sizeof(*leg))) == NULL)
		return -ENOMEM;
	if (ids_path_reverse_layout(w->c->cfg, abs, IDS_LAYOUT_LEGACY, leg) == 0 &&
	    leg->kind == IDS_PATH_FOLDER)
		memcpy(info, leg, sizeof(*leg));
	free(leg);
	return 0;
}

static int
add_folder(struct rc_ctx *c, struct rc_folder **fp)
{
	if (IDS_ALLOC_GROW(c->f, c->nf + 1, c->af) < 0)
		return -ENOMEM;
	*fp = &c->f[c->nf];
	memset(*fp, 0, sizeof(**fp));
	(*fp)->known = (*fp)->next = RC_NONE;
	return 0;
}

/* Fills the folder's place from the reverse reading. */
static int
set_place(struct walk *w, struct rc_folder *f, const struct ids_pathinfo *info)
{
	char name[IDS_MBNAME_MAX + 1];
	int r;

	f->part = w->part;
	f->layout = info->layout;
	if ((r = ids_mbname_internal(&info->name, name, sizeof(name))) < 0)
		return r;
	if (info->layout == IDS_LAYOUT_UNIQUEID)
		strcpy(f->dirid, info->uniqueid);
	if ((f->rel = strdup(w->rel)) == NULL || (f->pathname = strdup(name)) == NULL)
		return -ENOMEM;
	return 0;
}

/* Drops what the plan never needs, to keep a million folders in memory. */
static void
trim_header(struct ids_header *h)
{
	size_t i;

	free(h->quotaroot);
	h->quotaroot = NULL;
	for (i = 0; i < h->nflags; i++)
		free(h->flags[i]);
	free(h->flags);
	h->flags = NULL;
	h->nflags = 0;
	ids_dlist_free(h->extra);
	h->extra = NULL;
}

/* Counts a folder found; every 1000 a progress event. */
static void
counted(struct rc_ctx *c, const struct rc_folder *f)
{
	struct ids_rc_event ev = { .kind = IDS_RC_PROGRESS };

	c->st->folders++;
	c->st->legacy += f->layout == IDS_LAYOUT_LEGACY;
	if (c->st->folders % 1000 == 0 && c->fn != NULL) {
		ev.count = c->st->folders;
		c->fn(&ev, c->rock);
	}
}

static int scan_failed(struct walk *w, const char *name, int r, const char *why);

static int
scan_folder(struct walk *w, int datafd)
{
	struct rc_ctx *c = w->c;
	struct ids_pathinfo *info;
	struct rc_folder *f;
	char abs[PATH_MAX];
	int r;

	if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", w->part->path, w->rel) >= sizeof(abs)) {
		ids_rc_failed(c, "not-a-folder", entry_path(w, NULL), NULL, IDS_ETOOLONG,
		    "path too long");
		return 0;
	}
	if ((r = add_folder(c, &f)) < 0 || (info = malloc(sizeof(*info))) == NULL)
		return r < 0 ? r : -ENOMEM;
	if ((f->path = strdup(abs)) == NULL) {
		free(info);
		return -ENOMEM;
	}
	read_files(w, f, datafd);
	/* Unread for want of a descriptor: no folder to rebuild from, stop. */
	r = f->hdr_err == -EMFILE || f->hdr_err == -ENFILE ? f->hdr_err :
	    f->idx_err == -EMFILE || f->idx_err == -ENFILE ? f->idx_err : 0;
	if (r < 0) {
		free(info);
		return scan_failed(w, NULL, r, ids_strerror(r));
	}
	if ((r = reverse_dir(w, abs, &f->h, info)) < 0) {
		ids_rc_failed(c, "not-a-folder", abs, NULL, r, "a folder's files where no "
		    "folder can be (%s): skipped", ids_errmsg(r));
		ids_rc_folder_release(f);
		free(info);
		return r == -ENOMEM ? r : 0;
	}
	r = set_place(w, f, info);
	free(info);
	trim_header(&f->h);
	if (r < 0) {
		ids_rc_folder_release(f);
		return r;
	}
	c->nf++;
	counted(c, f);
	return 0;
}

/* --- the walk ---------------------------------------------------------- */

static int
add_dir(struct entries *e, const char *name)
{
	if (IDS_ALLOC_GROW(e->dirs, e->n + 1, e->alloc) < 0)
		return -ENOMEM;
	if ((e->dirs[e->n] = strdup(name)) == NULL)
		return -ENOMEM;
	e->n++;
	return 0;
}

static void
entries_release(struct entries *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->dirs[i]);
	free(e->dirs);
}

/* The type of an entry: from readdir, or from fstatat without following. */
static int
entry_type(int dirfd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
}

static int
note_entry(struct walk *w, struct entries *e, int dirfd, const struct dirent *de)
{
	int type = entry_type(dirfd, de);

	if (type == DT_DIR)
		return add_dir(e, de->d_name);
	if (type != DT_REG) {
		ids_rc_failed(w->c, "unsafe", entry_path(w, de->d_name), NULL, IDS_EUNSAFE,
		    "not a directory or regular file: skipped");
		return 0;
	}
	if (strcmp(de->d_name, IDS_HEADER_FILE) == 0)
		e->has_header = 1;
	else if (ids_folder_classify(de->d_name, NULL) == IDS_FILE_MESSAGE ||
	    strcmp(de->d_name, "cyrus.index") == 0)
		e->has_files = 1;
	return 0;
}

static int
read_entries(struct walk *w, int dirfd, struct entries *e)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if ((fd = dup(dirfd)) < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	errno = 0;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			r = note_entry(w, e, dirfd, de);
		errno = 0;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(d);
	return r;
}

/* With headers on the metapartition, they are looked for there. */
static int
header_on_meta(struct walk *w)
{
	int fd, found;

	if (w->metafd < 0 || !(w->c->cfg->metapartition_files & (1u << IDS_META_HEADER)))
		return 0;
	if (ids_opendir_beneath(w->metafd, w->rel, 0, &fd) < 0)
		return 0;
	found = faccessat(fd, IDS_HEADER_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	close(fd);
	return found;
}

static int walk_dir(struct walk *w, int dirfd, int depth);

/*
 * A directory that could not be read: skipped, unless the reason is
 * this process's (no memory, no descriptor left), which says nothing of
 * the spool and would leave folders out of a rebuild: then the scan
 * stops, saying what to do.  Returns 0 (go on) or r.
 */
static int
scan_failed(struct walk *w, const char *name, int r, const char *why)
{
	if (r == -EMFILE || r == -ENFILE) {
		ids_rc_failed(w->c, "unsafe", entry_path(w, name), NULL, r, "%s; %s", why,
		    r == -EMFILE ? "raise the limit of open files (ulimit -n) and run it again" :
		    "the system's table of open files is full (sysctl fs.file-max)");
		return r;
	}
	ids_rc_failed(w->c, "unsafe", entry_path(w, name), NULL, r, "%s: skipped", why);
	return r == -ENOMEM ? r : 0;
}

static int
walk_child(struct walk *w, int dirfd, const char *name, int depth)
{
	size_t len = w->len, n = strlen(name);
	int fd, r;

	if (len + n + 2 > sizeof(w->rel)) {
		ids_rc_failed(w->c, "unsafe", entry_path(w, name), NULL, IDS_ETOOLONG,
		    "path too long: skipped");
		return 0;
	}
	/* One component, O_NOFOLLOW: swapped for a symlink since readdir, refused. */
	if ((r = ids_opendir_beneath(dirfd, name, 0, &fd)) < 0)
		return scan_failed(w, name, r,
		    r == IDS_EUNSAFE ? "not a directory or regular file" : ids_errmsg(r));
	if (len > 0)
		w->rel[w->len++] = '/';
	memcpy(w->rel + w->len, name, n + 1);
	w->len += n;
	r = walk_dir(w, fd, depth + 1);
	close(fd);
	w->len = len;
	w->rel[len] = '\0';
	return r;
}

static int
walk_dir(struct walk *w, int dirfd, int depth)
{
	struct entries e = { NULL, 0, 0, 0, 0 };
	size_t i;
	int r;

	if (depth > MAX_DEPTH) {
		ids_rc_failed(w->c, "unsafe", entry_path(w, NULL), NULL, IDS_ETOOLONG,
		    "too deep to be a folder: skipped");
		return 0;
	}
	if ((r = read_entries(w, dirfd, &e)) < 0) {
		entries_release(&e);
		return scan_failed(w, NULL, r, ids_errmsg(r));
	}
	if (w->len > 0 && !e.has_header)
		e.has_header = header_on_meta(w);
	if (w->len > 0 && (e.has_header || e.has_files))
		r = scan_folder(w, dirfd);
	for (i = 0; r == 0 && i < e.n; i++)
		r = walk_child(w, dirfd, e.dirs[i], depth);
	entries_release(&e);
	return r;
}

/* --- where to start ------------------------------------------------------- */

/* The directory below the root that holds a synthetic folder's parent. */
static int
start_dir(const struct ids_config *cfg, const char *name, const char *id,
    enum ids_layout layout, int parent, char *buf, size_t size)
{
	struct ids_mbname mb;
	struct ids_location loc = { &mb, id, NULL, layout };
	char *slash;
	int r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0 ||
	    (r = ids_path_reldir(cfg, &loc, buf, size)) < 0)
		return r;
	if (parent && (slash = strrchr(buf, '/')) != NULL)
		*slash = '\0';
	return 0;
}

/*
 * The owner's directories: its legacy INBOX (children inside), its
 * legacy DELETED tree and its uniqueid directory.
 */
static int
owner_dirs(const struct rc_ctx *c, char dirs[3][PATH_MAX])
{
	const char *at = strrchr(c->opts->owner, '@');
	char local[IDS_MBNAME_MAX + 1], name[IDS_MBNAME_MAX + 32];
	const char *lv[4] = { "user", local, NULL, NULL };
	size_t n = at ? (size_t)(at - c->opts->owner) : strlen(c->opts->owner);
	int r;

	if (n >= sizeof(local))
		return ids_error(IDS_ETOOLONG, "userid '%s'", c->opts->owner);
	memcpy(local, c->opts->owner, n);
	local[n] = '\0';
	if ((r = ids_rc_join_levels(at ? at + 1 : NULL, lv, 2, name, sizeof(name))) < 0 ||
	    (r = start_dir(c->cfg, name, NULL, IDS_LAYOUT_LEGACY, 0, dirs[0], PATH_MAX)) < 0 ||
	    (r = start_dir(c->cfg, name, "0000000000000000", IDS_LAYOUT_UNIQUEID, 1,
	    dirs[2], PATH_MAX)) < 0)
		return ids_error(r, "userid '%s': %s", c->opts->owner, ids_errmsg(r));
	lv[0] = "DELETED";
	lv[1] = "user";
	lv[2] = local;
	lv[3] = "1";
	if ((r = ids_rc_join_levels(at ? at + 1 : NULL, lv, 4, name, sizeof(name))) < 0 ||
	    (r = start_dir(c->cfg, name, NULL, IDS_LAYOUT_LEGACY, 1, dirs[1], PATH_MAX)) < 0)
		return ids_error(r, "userid '%s': %s", c->opts->owner, ids_errmsg(r));
	return 0;
}

/* Walks from rel below the root; a missing start is nothing to do. */
static int
walk_from(struct walk *w, int rootfd, const char *rel)
{
	int fd, r;

	if (rel[0] == '\0') {
		w->len = 0;
		w->rel[0] = '\0';
		return walk_dir(w, rootfd, 0);
	}
	if ((r = ids_opendir_beneath(rootfd, rel, 0, &fd)) < 0)
		return r == -ENOENT ? 0 : ids_error(r, "%s/%s: %s", w->part->path, rel,
		    ids_errmsg(r));
	w->len = strlen(rel);
	memcpy(w->rel, rel, w->len + 1);
	r = walk_dir(w, fd, 0);
	close(fd);
	return r;
}

/* Starts below the DELETED or uniqueid directory do not walk their parent. */
static int
walk_owner(struct walk *w, int rootfd)
{
	char dirs[3][PATH_MAX];
	int r, i, j;

	if ((r = owner_dirs(w->c, dirs)) < 0)
		return r;
	for (i = 0; i < 3; i++) {
		for (j = 0; j < i; j++)
			if (strcmp(dirs[i], dirs[j]) == 0)
				break;
		if (j == i && (r = walk_from(w, rootfd, dirs[i])) < 0)
			return r;
	}
	return 0;
}

static int
scan_partition(struct rc_ctx *c, const struct ids_partition *p)
{
	struct walk *w = calloc(1, sizeof(*w));
	int rootfd, r;

	if (w == NULL)
		return -ENOMEM;
	w->c = c;
	w->part = p;
	w->metafd = -1;
	if ((r = ids_opendir_abs(p->path, &rootfd)) < 0) {
		free(w);
		return ids_error(r, "%s: %s", p->path, ids_strerror(r));
	}
	if (p->metapath != NULL && c->cfg->metapartition_files != 0 &&
	    (r = ids_opendir_abs(p->metapath, &w->metafd)) < 0)
		r = ids_error(r, "%s: %s", p->metapath, ids_strerror(r));
	else
		r = c->opts->owner ? walk_owner(w, rootfd) : walk_from(w, rootfd, "");
	close(rootfd);
	if (w->metafd >= 0)
		close(w->metafd);
	free(w);
	return r;
}

int
ids_rc_scan(struct rc_ctx *c)
{
	size_t i;
	int r;

	for (i = 0; i < c->cfg->npartitions; i++) {
		const struct ids_partition *p = &c->cfg->partitions[i];

		if (c->opts->partition && strcmp(p->name, c->opts->partition) != 0)
			continue;
		if ((r = scan_partition(c, p)) < 0)
			return r;
	}
	return 0;
}
