/*
 * userfiles.c - where a user's own files live, and moving them with an
 * owner rename (userfiles.h; spool-layout.md, "A user's own files").
 *
 * Cyrus's rename of a user moves them one by one and logs what it could
 * not move (user_renamedata, seen_rename_user, user_renamesieve); here
 * each move is part of the owner rename's intent: made before the
 * records commit, undone with the directories if the commit fails, and
 * moved back (or on) by recovery, whichever way the intent settles.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "header.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxname.h"
#include "userfiles.h"

/* Cyrus's per-user databases in the configuration directory (user.c). */
static const char *const conf_suffixes[] = {
	"seen", "sub", "counters", "conversations", "dav", "mboxkey", "xapianactive",
};

static int
add(struct ids_userfile *f, const char *kind, const char *root, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
add(struct ids_userfile *f, const char *kind, const char *root, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(f->path, sizeof(f->path), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(f->path) ||
	    strlen(root) + 1 + (size_t)n >= sizeof(f->path))
		return ids_error(IDS_ETOOLONG, "%s/%s: path too long", root, f->path);
	f->kind = kind;
	f->root = root;
	return 0;
}

/* "domain/<D>/<domain>/" or "", as Cyrus prefixes a domain's files. */
static void
domain_prefix(const struct ids_config *cfg, const char *domain, char *buf, size_t size)
{
	if (domain == NULL)
		buf[0] = '\0';
	else
		snprintf(buf, size, "domain/%c/%s/", ids_dir_hash(domain, cfg->fulldirhash),
		    domain);
}

/* The directory quotalegacy keeps its files below: quota_db_path's. */
static const char *
quota_base(const struct ids_config *cfg, char *buf, size_t size)
{
	const char *p = ids_config_get(cfg, "quota_db_path");
	char *slash;

	if (p == NULL || p[0] != '/')
		return cfg->configdirectory;
	snprintf(buf, size, "%s", p);
	if ((slash = strrchr(buf, '/')) == buf)
		return "/";
	*slash = '\0';
	return buf;
}

int
ids_userfiles(const struct ids_config *cfg, const struct ids_mbname *mb,
    struct ids_userfile out[IDS_USERFILES_MAX], size_t *n)
{
	static char qbuf[PATH_MAX];
	struct ids_mbname u;
	const char *sievedir = ids_config_get(cfg, "sievedir");
	const char *qdb = ids_config_get(cfg, "quota_db");
	char dom[300], qlocal[IDS_MBNAME_MAX + 1], *p;
	char l;
	size_t i;
	int r;

	*n = 0;
	if (mb->localpart == NULL)
		return 0;
	ids_mbname_copy(&u, mb);
	ids_mbname_normalize(&u, cfg);
	domain_prefix(cfg, u.domain, dom, sizeof(dom));
	l = ids_dir_hash(u.localpart, cfg->fulldirhash);
	for (i = 0; i < sizeof(conf_suffixes) / sizeof(conf_suffixes[0]); i++)
		if ((r = add(&out[(*n)++], conf_suffixes[i], cfg->configdirectory,
		    "%suser/%c/%s.%s", dom, l, u.localpart, conf_suffixes[i])) < 0)
			return r;
	if (!ids_config_switch(cfg, "sieveusehomedir") &&
	    (r = add(&out[(*n)++], "sieve", sievedir ? sievedir : "/usr/sieve",
	    "%s%c/%s", dom, l, u.localpart)) < 0)
		return r;
	if (qdb == NULL || strcmp(qdb, "quotalegacy") == 0) {
		/* The root's internal spelling: a dot in the localpart is '^'. */
		snprintf(qlocal, sizeof(qlocal), "%s", u.localpart);
		for (p = qlocal; *p; p++)
			if (*p == '.')
				*p = '^';
		if ((r = add(&out[(*n)++], "quota", quota_base(cfg, qbuf, sizeof(qbuf)),
		    "%squota/%c/user.%s", dom, ids_dir_hash(qlocal, cfg->fulldirhash),
		    qlocal)) < 0)
			return r;
	}
	return 0;
}

/* --- moving ---------------------------------------------------------- */

/* 1 if rel exists below rootfd (a symlink counts, and is named), 0 if not. */
static int
present(int rootfd, const char *root, const char *rel)
{
	struct stat st;

	if (fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode))
			return ids_error(IDS_EUNSAFE, "%s/%s: is a symlink", root, rel);
		return 1;
	}
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	return ids_error(ids_errno(), "%s/%s: %s", root, rel, strerror(errno));
}

/* Opens rel's parent below rootfd (created with create); *base: rel's last part. */
static int
open_parent(int rootfd, const char *rel, int create, int *fdp, const char **base)
{
	char parent[PATH_MAX], *slash;

	snprintf(parent, sizeof(parent), "%s", rel);
	if ((slash = strrchr(parent, '/')) == NULL) {
		*base = rel;
		return (*fdp = dup(rootfd)) < 0 ? -errno : 0;
	}
	*slash = '\0';
	*base = rel + (slash - parent) + 1;
	return ids_opendir_beneath(rootfd, parent, create ? IDS_OPEN_CREATE : 0, fdp);
}

static int
move_file(int rootfd, const struct ids_userfile *from, const struct ids_userfile *to,
    int strict)
{
	const char *fb, *tb;
	int ffd = -1, tfd = -1, r;

	if ((r = present(rootfd, from->root, from->path)) <= 0)
		return r;	/* nothing to move, or moved already */
	if ((r = present(rootfd, to->root, to->path)) < 0)
		return r;
	if (r > 0)
		return strict ? ids_error(IDS_ECONFLICT, "%s/%s: the new user's %s appeared "
		    "while renaming", to->root, to->path, to->kind) : 0;
	if ((r = open_parent(rootfd, from->path, 0, &ffd, &fb)) < 0 ||
	    (r = open_parent(rootfd, to->path, 1, &tfd, &tb)) < 0)
		goto out;
	if ((r = IDS_FAILPOINT("rename.userfile")) < 0)
		goto out;
	if (renameat2(ffd, fb, tfd, tb, RENAME_NOREPLACE) < 0 &&
	    (errno != EINVAL || renameat(ffd, fb, tfd, tb) < 0)) {
		r = ids_error(ids_errno(), "%s/%s -> %s: %s", from->root, from->path,
		    to->path, strerror(errno));
		goto out;
	}
	if ((r = ids_fsync_dir(tfd)) == 0)
		r = ids_fsync_dir(ffd);
out:
	if (ffd >= 0)
		close(ffd);
	if (tfd >= 0)
		close(tfd);
	return r;
}

static int
move_one(int rootfd, const struct ids_userfile *from, const struct ids_userfile *to)
{
	return move_file(rootfd, from, to, 0);
}

static int
move_strict(int rootfd, const struct ids_userfile *from, const struct ids_userfile *to)
{
	return move_file(rootfd, from, to, 1);
}

typedef int (*pair_fn)(int rootfd, const struct ids_userfile *from,
    const struct ids_userfile *to);

/* Calls fn for each kind of file, from's and to's name, below their root. */
static int
each_pair(const struct ids_config *cfg, const struct ids_mbname *from,
    const struct ids_mbname *to, pair_fn fn)
{
	struct ids_userfile a[IDS_USERFILES_MAX], b[IDS_USERFILES_MAX];
	size_t na, nb, i;
	int r, fd;

	if ((r = ids_userfiles(cfg, from, a, &na)) < 0 ||
	    (r = ids_userfiles(cfg, to, b, &nb)) < 0)
		return r;
	if (na != nb)
		return 0;	/* a user and a shared owner: no files to carry */
	for (i = 0; i < na; i++) {
		if (strcmp(a[i].root, b[i].root) != 0 || ids_opendir_abs(a[i].root, &fd) < 0)
			continue;	/* no such root: no such file */
		r = fn(fd, &a[i], &b[i]);
		close(fd);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
check_one(int rootfd, const struct ids_userfile *from, const struct ids_userfile *to)
{
	int r;

	if ((r = present(rootfd, from->root, from->path)) <= 0)
		return r;
	if ((r = present(rootfd, to->root, to->path)) < 0)
		return r;
	if (r > 0)
		return ids_error(IDS_ECONFLICT, "%s/%s: the new user's %s %s exists",
		    to->root, to->path, to->kind,
		    strcmp(to->kind, "sieve") == 0 ? "directory" : "file");
	return 0;
}

int
ids_userfiles_check(const struct ids_config *cfg, const struct ids_mbname *from,
    const struct ids_mbname *to)
{
	return each_pair(cfg, from, to, check_one);
}

int
ids_userfiles_move(const struct ids_config *cfg, const struct ids_mbname *from,
    const struct ids_mbname *to, int flags)
{
	return each_pair(cfg, from, to, (flags & IDS_USERFILES_STRICT) ? move_strict : move_one);
}

/* --- the quota root in cyrus.header ---------------------------------- */

int
ids_userfiles_follow_quotaroot(struct ids_header *h, const struct ids_mbentry *e)
{
	struct ids_mbname q, old, cur, root;
	char buf[IDS_MBNAME_MAX + 1];
	size_t drop;
	char *s;

	if (h->quotaroot == NULL || h->quotaroot[0] == '\0' || e->nhistory == 0 ||
	    ids_mbname_parse_internal(&q, h->quotaroot, 0) < 0 ||
	    ids_mbname_parse_internal(&old, e->history[0].name, 0) < 0 ||
	    ids_mbname_parse_internal(&cur, e->name, 0) < 0 ||
	    ids_mbname_same_owner(&old, &cur) || ids_mbname_is_deleted(&old) ||
	    ids_mbname_is_deleted(&cur) || !ids_mbname_is_within(&q, &old) ||
	    ids_mbname_is_within(&q, &cur))
		return 0;
	/* The root is as many levels above the new name as it was above the old. */
	drop = old.nboxes - q.nboxes;
	if (drop > cur.nboxes)
		return 0;
	ids_mbname_copy(&root, &cur);
	root.nboxes -= drop;
	if (ids_mbname_internal(&root, buf, sizeof(buf)) < 0)
		return 0;
	if ((s = strdup(buf)) == NULL)
		return -ENOMEM;
	free(h->quotaroot);
	h->quotaroot = s;
	return 0;
}
