/*
 * fsutil.c - durable replacement of small files and symlink-safe
 * directory opening.
 *
 * The durable write follows the sequence redis and PostgreSQL use
 * (temp file, fsync, rename, fsync of the directory): a crash at any
 * instant leaves either the old or the new content under the name.
 * A failed fsync is reported, never retried: Linux may have dropped the
 * dirty pages already, so a second fsync could succeed on lost data.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#include "alloc.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"

int
ids_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* --- reading directories -------------------------------------------- */

int
ids_dir_each_fresh(int dirfd, ids_dirent_fn fn, void *rock)
{
	/* Aligned for struct dirent64; 32 KiB: what readdir(3) asks for. */
	union {
		struct dirent64 de;
		char b[32768];
	} buf;
	const struct dirent64 *de;
	ssize_t n, off;
	int r;

	while ((n = getdents64(dirfd, buf.b, sizeof(buf.b))) > 0) {
		for (off = 0; off < n; off += de->d_reclen) {
			de = (const struct dirent64 *)(const void *)(buf.b + off);
			if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
			    (de->d_name[1] == '.' && de->d_name[2] == '\0')))
				continue;
			if ((r = fn(rock, de->d_name, (ino_t)de->d_ino, de->d_type)) != 0)
				return r;
		}
	}
	/* A directory removed while open reads as empty, as readdir(3) has it. */
	return n < 0 && errno != ENOENT ? -errno : 0;
}

int
ids_dir_each(int dirfd, ids_dirent_fn fn, void *rock)
{
	if (lseek(dirfd, 0, SEEK_SET) < 0)
		return -errno;
	return ids_dir_each_fresh(dirfd, fn, rock);
}

int
ids_dirlist_add(struct ids_dirlist *dl, const char *name, ino_t ino, unsigned char type)
{
	size_t len = strlen(name) + 1;
	void *p;

	if (IDS_ALLOC_GROW(dl->ent, dl->n + 1, dl->cap) < 0)
		return -ENOMEM;
	if (dl->len + len > dl->size) {
		size_t size = dl->size ? 2 * dl->size : 1024;

		while (size < dl->len + len)
			size *= 2;
		if ((p = realloc(dl->names, size)) == NULL)
			return -ENOMEM;
		dl->names = p;
		dl->size = size;
	}
	memcpy(dl->names + dl->len, name, len);
	dl->ent[dl->n++] = (struct ids_dirlist_ent){ dl->len, ino, type };
	dl->len += len;
	return 0;
}

struct dirlist_fill {
	struct ids_dirlist *dl;
	size_t max;
};

static int
dirlist_add(void *rock, const char *name, ino_t ino, unsigned char type)
{
	struct dirlist_fill *f = rock;

	if (f->dl->n == f->max) {
		f->dl->complete = 0;
		return 1;
	}
	return ids_dirlist_add(f->dl, name, ino, type);
}

static int
dirlist_cmp(const void *a, const void *b, void *names)
{
	const struct ids_dirlist_ent *x = a, *y = b;

	return strcmp((const char *)names + x->name, (const char *)names + y->name);
}

static int
dirlist_read(int dirfd, size_t max, struct ids_dirlist *dl, int fresh)
{
	struct dirlist_fill f = { dl, max };
	int r;

	memset(dl, 0, sizeof(*dl));
	dl->complete = 1;
	if ((r = (fresh ? ids_dir_each_fresh : ids_dir_each)(dirfd, dirlist_add, &f)) < 0)
		return r;
	ids_dirlist_sort(dl);
	return 0;
}

int
ids_dirlist_read(int dirfd, size_t max, struct ids_dirlist *dl)
{
	return dirlist_read(dirfd, max, dl, 0);
}

int
ids_dirlist_read_fresh(int dirfd, size_t max, struct ids_dirlist *dl)
{
	return dirlist_read(dirfd, max, dl, 1);
}

void
ids_dirlist_sort(struct ids_dirlist *dl)
{
	if (dl->n > 1)
		qsort_r(dl->ent, dl->n, sizeof(*dl->ent), dirlist_cmp, dl->names);
}

const struct ids_dirlist_ent *
ids_dirlist_find(const struct ids_dirlist *dl, const char *name)
{
	size_t lo = 0, hi = dl->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(name, dl->names + dl->ent[mid].name)) == 0)
			return &dl->ent[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void
ids_dirlist_free(struct ids_dirlist *dl)
{
	free(dl->ent);
	free(dl->names);
	memset(dl, 0, sizeof(*dl));
}

/* Nonzero while this thread defers its fsyncs to one ids_fs_sync(). */
static __thread int deferred;

void
ids_fs_defer_sync(int on)
{
	deferred = on;
}

int
ids_fs_deferred(void)
{
	return deferred;
}

int
ids_fs_sync(int fd)
{
	int r;

	if ((r = IDS_FAILPOINT("fs.syncfs")) < 0)
		return r;
	return syncfs(fd) < 0 ? -errno : 0;
}

/* fsync(fd), or nothing while deferred (the caller will ids_fs_sync). */
static int
sync_fd(int fd)
{
	return deferred ? 0 : fsync(fd) < 0 ? -errno : 0;
}

int
ids_fsync_file(int fd)
{
	return sync_fd(fd);
}

int
ids_fsync_dir(int dirfd)
{
	int r;

	if ((r = IDS_FAILPOINT("fs.fsync_dir")) < 0)
		return r;
	return sync_fd(dirfd);
}

static int
open_component(int dirfd, const char *name, int flags, int *fdp)
{
	struct stat st;
	int fd, r;

	if (strcmp(name, "..") == 0)
		return ids_error(IDS_EINVAL, "'..' in path");
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && (flags & IDS_OPEN_CREATE)) {
		if ((r = IDS_FAILPOINT("fs.mkdir")) < 0)
			return r;
		if (mkdirat(dirfd, name, 0750) < 0 && errno != EEXIST)
			return -errno;
		if ((r = ids_fsync_dir(dirfd)) < 0)
			return r;
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR) {
			if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				return ids_error(IDS_EUNSAFE, "'%s' is a symlink", name);
			return ids_error(IDS_EUNSAFE, "'%s' is not a directory", name);
		}
		return -errno;
	}
	*fdp = fd;
	return 0;
}

/*
 * The whole path in one openat2(2) call: the kernel refuses to leave
 * rootfd or to follow a symlink on the way (RESOLVE_BENEATH,
 * RESOLVE_NO_SYMLINKS), which is what the walk below does a component
 * at a time.  Returns 1 when the caller must take the walk instead:
 * no openat2 (older kernel, seccomp), a ".." or an empty path, a
 * refusal the walk reports itself, or a missing directory to create.
 */
static int
open_resolved(int rootfd, const char *relpath, int flags, int *fdp)
{
#ifdef SYS_openat2
	static int unsupported;	/* accessed atomically: threads share it */
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	const char *p;
	long fd;

	if (__atomic_load_n(&unsupported, __ATOMIC_RELAXED) || relpath[0] == '\0' || relpath[0] == '/')
		return 1;
	for (p = relpath; (p = strstr(p, "..")) != NULL; p += 2)
		if ((p == relpath || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return 1;
	fd = syscall(SYS_openat2, rootfd, relpath, &how, sizeof(how));
	if (fd >= 0) {
		*fdp = (int)fd;
		return 0;
	}
	if (errno == ENOENT && !(flags & IDS_OPEN_CREATE))
		return -ENOENT;
	if (errno == ENOSYS || errno == EPERM || errno == E2BIG)
		__atomic_store_n(&unsupported, 1, __ATOMIC_RELAXED);
	return 1;
#else
	(void)rootfd;
	(void)relpath;
	(void)flags;
	(void)fdp;
	return 1;
#endif
}

int
ids_opendir_beneath(int rootfd, const char *relpath, int flags, int *fdp)
{
	char buf[4096], *comp, *save;
	int cur = -1, next = -1, r;

	if (strlen(relpath) >= sizeof(buf))
		return ids_error(IDS_ETOOLONG, "path of %zu bytes", strlen(relpath));
	if ((r = open_resolved(rootfd, relpath, flags, fdp)) <= 0)
		return r;
	strcpy(buf, relpath);
	if ((cur = dup(rootfd)) < 0)
		return -errno;
	for (comp = strtok_r(buf, "/", &save); comp;
	    comp = strtok_r(NULL, "/", &save)) {
		if (strcmp(comp, ".") == 0)
			continue;
		r = open_component(cur, comp, flags, &next);
		close(cur);
		if (r < 0)
			return r;
		cur = next;
	}
	*fdp = cur;
	return 0;
}

int
ids_opendir_abs(const char *path, int *fdp)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	*fdp = fd;
	return 0;
}

/*
 * Removes a temporary file a crash left behind, if there is one.  The
 * failpoint is reached only when there is something to remove, so that
 * crash tests count the points that change the disk.
 */
static int
unlink_stale(int dirfd, const char *tmp)
{
	struct stat st;
	int r;

	if (fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if ((r = IDS_FAILPOINT("fs.unlink")) < 0)
		return r;
	return unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT ? -errno : 0;
}

int
ids_write_new(int dirfd, const char *name, const void *buf, size_t len, mode_t mode)
{
	int fd, r;

	if ((r = IDS_FAILPOINT("fs.create")) < 0)
		return r;
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == EEXIST ? ids_write_durable(dirfd, name, buf, len, mode) : -errno;
	if ((r = IDS_FAILPOINT("fs.write")) < 0 ||
	    (r = ids_write_all(fd, buf, len)) < 0 ||
	    (r = IDS_FAILPOINT("fs.fsync")) < 0 ||
	    (r = sync_fd(fd)) < 0) {
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		r = -errno;
		goto fail;
	}
	return ids_fsync_dir(dirfd);
fail:
	if (IDS_FAILPOINT("fs.unlink_tmp") == 0)
		unlinkat(dirfd, name, 0);
	return r;
}

int
ids_write_durable(int dirfd, const char *name, const void *buf, size_t len,
    mode_t mode)
{
	char tmp[512];
	int fd, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.NEW", name) >= sizeof(tmp))
		return ids_error(IDS_ETOOLONG, "file name '%s'", name);
	if ((r = unlink_stale(dirfd, tmp)) < 0)
		return r;
	if ((r = IDS_FAILPOINT("fs.create")) < 0)
		return r;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if ((r = IDS_FAILPOINT("fs.write")) < 0 ||
	    (r = ids_write_all(fd, buf, len)) < 0 ||
	    (r = IDS_FAILPOINT("fs.fsync")) < 0 ||
	    (r = sync_fd(fd)) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto fail;
	}
	fd = -1;
	if ((r = IDS_FAILPOINT("fs.rename")) < 0)
		goto fail;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = -errno;
		goto fail;
	}
	return ids_fsync_dir(dirfd);
fail:
	if (fd >= 0)
		close(fd);
	if (IDS_FAILPOINT("fs.unlink_tmp") == 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}

/* --- a durable replacement written a piece at a time ------------------ */

int
ids_durable_begin(int dirfd, const char *name, mode_t mode, struct ids_durable *d)
{
	int r;

	d->dirfd = dirfd;
	d->fd = -1;
	d->off = 0;
	if ((size_t)snprintf(d->name, sizeof(d->name), "%s", name) >= sizeof(d->name) ||
	    (size_t)snprintf(d->tmp, sizeof(d->tmp), "%s.NEW", name) >= sizeof(d->tmp))
		return ids_error(IDS_ETOOLONG, "file name '%s'", name);
	if ((r = unlink_stale(dirfd, d->tmp)) < 0)
		return r;
	if ((r = IDS_FAILPOINT("fs.create")) < 0)
		return r;
	d->fd = openat(dirfd, d->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	return d->fd < 0 ? -errno : 0;
}

int
ids_durable_write(struct ids_durable *d, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	int r;

	if ((r = IDS_FAILPOINT("fs.write")) < 0)
		return r;
	while (done < len) {
		ssize_t n = pwrite(d->fd, (const char *)buf + done, len - done,
		    (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	if (off + len > d->off)
		d->off = off + len;
	return 0;
}

int
ids_durable_commit(struct ids_durable *d)
{
	int r;

	if ((r = IDS_FAILPOINT("fs.fsync")) < 0 || (r = sync_fd(d->fd)) < 0)
		return r;
	r = close(d->fd) < 0 ? -errno : 0;
	d->fd = -1;
	if (r < 0 || (r = IDS_FAILPOINT("fs.rename")) < 0)
		return r;
	if (renameat(d->dirfd, d->tmp, d->dirfd, d->name) < 0)
		return -errno;
	d->tmp[0] = '\0';
	return ids_fsync_dir(d->dirfd);
}

void
ids_durable_abort(struct ids_durable *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	if (d->tmp[0] != '\0' && IDS_FAILPOINT("fs.unlink_tmp") == 0)
		unlinkat(d->dirfd, d->tmp, 0);
	d->tmp[0] = '\0';
}

int
ids_open_regular(int dirfd, const char *name, struct stat *stp, int *fdp)
{
	struct stat st;
	int fd, r;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			return ids_error(IDS_EUNSAFE, "'%s' is a symlink", name);
		return -errno;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ids_error(IDS_EUNSAFE, "'%s' is not a regular file", name);
	}
	if (stp != NULL)
		*stp = st;
	*fdp = fd;
	return 0;
}

int
ids_read_file(int dirfd, const char *name, size_t max, char **bufp,
    size_t *lenp)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	ssize_t n = 0;
	int fd, r;

	if ((r = ids_open_regular(dirfd, name, &st, &fd)) < 0)
		return r;
	if ((size_t)st.st_size > max) {
		close(fd);
		return ids_error(IDS_ETOOLONG, "'%s' is %lld bytes, over %zu",
		    name, (long long)st.st_size, max);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[got] = '\0';
	*bufp = buf;
	*lenp = got;
	return 0;
}

int
ids_same_file(int afd, int bfd, const char *name)
{
	uint8_t ga[IDS_GUID_LEN], gb[IDS_GUID_LEN];
	struct stat a, b;
	int r;

	if (fstatat(afd, name, &a, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fstatat(bfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		return 1;
	if (!S_ISREG(a.st_mode) || !S_ISREG(b.st_mode) || a.st_size != b.st_size)
		return 0;
	if ((r = ids_guid_file(afd, name, ga)) < 0 || (r = ids_guid_file(bfd, name, gb)) < 0)
		return r;
	return memcmp(ga, gb, IDS_GUID_LEN) == 0;
}

/* Copies name from sfd to tmp in dfd, fsynced; counts the bytes. */
static int
copy_to_tmp(int sfd, int dfd, const char *name, const char *tmp,
    unsigned long long *bytesp)
{
	char buf[65536];
	ssize_t n;
	int in, out = -1, r = 0;

	if ((r = ids_open_regular(sfd, name, NULL, &in)) < 0)
		return r;
	r = unlink_stale(dfd, tmp);
	if (r == 0 && (r = IDS_FAILPOINT("fs.copy")) == 0 &&
	    (out = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		r = -errno;
	while (r == 0 && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0)
			r = errno == EINTR ? 0 : -errno;
		else if ((r = IDS_FAILPOINT("fs.copy_write")) == 0 &&
		    (r = ids_write_all(out, buf, (size_t)n)) == 0 && bytesp)
			*bytesp += (unsigned long long)n;
	}
	if (r == 0 && ((r = IDS_FAILPOINT("fs.copy_fsync")) < 0 || fsync(out) < 0))
		r = r < 0 ? r : -errno;
	if (out >= 0 && close(out) < 0 && r == 0)
		r = -errno;
	close(in);
	return r;
}

int
ids_copy_only(int sfd, int dfd, const char *name, enum ids_carry *howp,
    unsigned long long *bytesp)
{
	uint8_t sg[IDS_GUID_LEN], dg[IDS_GUID_LEN];
	char tmp[512];
	int r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.NEW", name) >= sizeof(tmp))
		return ids_error(IDS_ETOOLONG, "%s: name too long to copy", name);
	if ((r = copy_to_tmp(sfd, dfd, name, tmp, bytesp)) < 0 ||
	    (r = ids_guid_file(sfd, name, sg)) < 0 ||
	    (r = ids_guid_file(dfd, tmp, dg)) < 0)
		goto out;
	if (memcmp(sg, dg, IDS_GUID_LEN) != 0) {
		r = ids_error(-EIO, "%s: the copy does not match the original", name);
		goto out;
	}
	if ((r = IDS_FAILPOINT("fs.link_copy")) < 0)
		goto out;
	if (linkat(dfd, tmp, dfd, name, 0) == 0)
		*howp = IDS_CARRY_COPIED;
	else if (errno != EEXIST)
		r = -errno;
	else if ((r = ids_same_file(sfd, dfd, name)) >= 0)
		r = r ? (*howp = IDS_CARRY_EXISTED, 0) :
		    ids_error(IDS_ECONFLICT, "%s: a different file is already there", name);
out:
	/* The temporary name goes; a crash here leaves a *.NEW, which is harmless. */
	if (IDS_FAILPOINT("fs.unlink_tmp") == 0)
		unlinkat(dfd, tmp, 0);
	return r;
}

int
ids_link_or_copy(int sfd, int dfd, const char *name, enum ids_carry *howp,
    unsigned long long *bytesp)
{
	int r;

	if ((r = IDS_FAILPOINT("fs.link")) == 0 && linkat(sfd, name, dfd, name, 0) == 0) {
		*howp = IDS_CARRY_LINKED;
		return 0;
	}
	if (r == 0)
		r = -errno;
	switch (-r) {
	case EEXIST:
		if ((r = ids_same_file(sfd, dfd, name)) < 0)
			return r;
		if (r == 0)
			return ids_error(IDS_ECONFLICT, "%s: a different file is already there",
			    name);
		*howp = IDS_CARRY_EXISTED;
		return 0;
	case EXDEV:	/* a bind mount or another file system */
	case EMLINK:	/* the inode is at its link limit */
	case EPERM:	/* fs.protected_hardlinks and a file we do not own */
		return ids_copy_only(sfd, dfd, name, howp, bytesp);
	}
	return ids_error(r, "%s: link: %s", name, strerror(-r));
}
