/*
 * audithash.c - reading message files for the audit (auditpriv.h): each
 * file is opened without following symlinks, read once from start to
 * end with SHA-1 (and MD5 when asked) computed over the same buffer,
 * and dropped from the page cache afterwards if reading it had to go to
 * the disk.  A full audit of a large spool thus neither evicts what the
 * mail server keeps cached nor fills the cache with cold messages.
 *
 * Whether a file was cached is learnt from its first read, done with
 * RWF_NOWAIT: it succeeds in full only when the pages are in memory.
 * Kernels or filesystems without it make every file count as cold.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <openssl/evp.h>

#include "auditpriv.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"

#define HASH_BUF	(256 * 1024)

struct hasher {
	unsigned char *buf;
	EVP_MD_CTX *sha, *md5;
	EVP_MD *sha_md, *md5_md;	/* fetched once: cheaper per file */
	int noatime_ok;		/* O_NOATIME has not been refused yet */
	int nowait_ok;		/* RWF_NOWAIT has not been refused yet */
};

struct hasher *
ids_hasher_new(void)
{
	struct hasher *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->buf = malloc(HASH_BUF);
	h->sha = EVP_MD_CTX_new();
	h->md5 = EVP_MD_CTX_new();
	h->sha_md = EVP_MD_fetch(NULL, "SHA1", NULL);
	h->md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
	h->noatime_ok = h->nowait_ok = 1;
	if (h->buf == NULL || h->sha == NULL || h->md5 == NULL || h->sha_md == NULL) {
		ids_hasher_free(h);
		return NULL;
	}
	return h;
}

void
ids_hasher_free(struct hasher *h)
{
	if (h == NULL)
		return;
	free(h->buf);
	EVP_MD_CTX_free(h->sha);
	EVP_MD_CTX_free(h->md5);
	EVP_MD_free(h->sha_md);
	EVP_MD_free(h->md5_md);
	free(h);
}

const char *
ids_amsg_what(uint8_t what)
{
	switch ((mode_t)what << 12) {
	case S_IFLNK: return "symlink";
	case S_IFDIR: return "directory";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	default: return "not a regular file";
	}
}

/* Opens name read-only, never through a symlink; O_NOATIME when allowed. */
static int
open_file(struct hasher *h, int dirfd, const char *name)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, fd;

	if (h != NULL && h->noatime_ok) {
		fd = openat(dirfd, name, flags | O_NOATIME);
		if (fd >= 0 || errno != EPERM)
			return fd;
		h->noatime_ok = 0;	/* not the owner: plain opens from now on */
	}
	return openat(dirfd, name, flags);
}

/* Classifies a failed open or a non-regular file into m; returns 1 if so. */
static int
open_failed(int dirfd, const char *name, int fd, const struct stat *st,
    struct amsg *m)
{
	struct stat lst;

	if (fd >= 0 && S_ISREG(st->st_mode))
		return 0;
	if (fd >= 0) {
		m->state = AM_UNSAFE;
		m->what = (uint8_t)((st->st_mode & S_IFMT) >> 12);
	} else if (errno == ENOENT) {
		m->state = AM_ABSENT;
	} else if (errno == ELOOP || errno == ENXIO) {
		m->state = AM_UNSAFE;
		m->what = fstatat(dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 ?
		    (uint8_t)((lst.st_mode & S_IFMT) >> 12) : (uint8_t)(S_IFLNK >> 12);
	} else {
		m->state = AM_ERROR;
		m->err = -errno;
	}
	return 1;
}

void
ids_hasher_stat(int dirfd, const char *name, struct amsg *m)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		m->state = errno == ENOENT ? AM_ABSENT : AM_ERROR;
		m->err = -errno;
		return;
	}
	m->fsize = (uint64_t)st.st_size;
	if (!S_ISREG(st.st_mode)) {
		m->state = AM_UNSAFE;
		m->what = (uint8_t)((st.st_mode & S_IFMT) >> 12);
	} else {
		m->state = m->fsize == m->size ? AM_OK : AM_SIZE;
	}
}

/*
 * The first read, of want bytes from offset 0 (size is what fstat said):
 * with RWF_NOWAIT, to learn whether the file was cached.  A NOWAIT read
 * that returns everything asked for, or the whole file, found it cached.
 */
static ssize_t
first_read(struct hasher *h, int fd, size_t want, uint64_t size, int *cold)
{
	struct iovec iov = { h->buf, want };
	ssize_t n;

	*cold = 1;
	if (h->nowait_ok) {
		n = preadv2(fd, &iov, 1, 0, RWF_NOWAIT);
		if (n >= 0 && ((size_t)n == want || (uint64_t)n == size)) {
			*cold = 0;
			return n;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			h->nowait_ok = 0;	/* EOPNOTSUPP, EINVAL: never again */
		if (n > 0)
			return n;
	}
	do
		n = pread(fd, h->buf, want, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

/*
 * The next read at off.  A short read that reached the size fstat gave
 * is the end of the file: no further read() is spent to hear it.
 */
static ssize_t
next_read(struct hasher *h, int fd, uint64_t off, uint64_t size, ssize_t last)
{
	ssize_t n;

	if ((size_t)last < HASH_BUF && off >= size)
		return 0;
	do
		n = pread(fd, h->buf, HASH_BUF, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n;
}

static int
digest_init(struct hasher *h, int md5)
{
	if (EVP_DigestInit_ex(h->sha, h->sha_md, NULL) != 1)
		return ids_error(-EIO, "libcrypto: SHA-1 unavailable");
	if (md5 && (h->md5_md == NULL || EVP_DigestInit_ex(h->md5, h->md5_md, NULL) != 1))
		return ids_error(-EIO, "libcrypto: MD5 unavailable");
	return 0;
}

static int
digest_update(struct hasher *h, int md5, size_t n)
{
	if (EVP_DigestUpdate(h->sha, h->buf, n) != 1 ||
	    (md5 && EVP_DigestUpdate(h->md5, h->buf, n) != 1))
		return ids_error(-EIO, "libcrypto: digest update failed");
	return 0;
}

/* Reads fd from start to end through both digests; returns bytes or negative. */
static int64_t
hash_fd(struct hasher *h, int fd, uint64_t size, int md5, struct amsg *m)
{
	uint64_t off = 0;
	unsigned int len;
	ssize_t n;
	int cold, r;

	if ((r = digest_init(h, md5)) < 0)
		return r;
	if (size >= HASH_BUF)	/* one read() is all a smaller file needs */
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	n = first_read(h, fd, size < HASH_BUF ? (size_t)size + 1 : HASH_BUF, size, &cold);
	while (n > 0) {
		if ((r = digest_update(h, md5, (size_t)n)) < 0)
			return r;
		off += (uint64_t)n;
		n = next_read(h, fd, off, size, n);
	}
	if (n < 0)
		return -errno;
	if (cold)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (EVP_DigestFinal_ex(h->sha, m->sha1, &len) != 1 ||
	    (md5 && EVP_DigestFinal_ex(h->md5, m->md5, &len) != 1))
		return ids_error(-EIO, "libcrypto: digest final failed");
	m->fsize = off;
	m->hashed = 1;
	return (int64_t)off;
}

uint64_t
ids_hasher_check(struct hasher *h, int dirfd, const char *name, struct amsg *m,
    int md5)
{
	struct stat st;
	int64_t n;
	int fd = open_file(h, dirfd, name);

	if (fd >= 0 && fstat(fd, &st) < 0) {
		m->state = AM_ERROR;
		m->err = -errno;
		close(fd);
		return 0;
	}
	if (open_failed(dirfd, name, fd, &st, m)) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	m->fsize = (uint64_t)st.st_size;
	if (m->fsize != m->size && !md5) {
		m->state = AM_SIZE;
		close(fd);
		return 0;
	}
	n = hash_fd(h, fd, m->fsize, md5, m);
	close(fd);
	if (n < 0) {
		m->state = AM_ERROR;
		m->err = (int)n;
		return 0;
	}
	if (m->fsize != m->size)
		m->state = AM_SIZE;
	else if (!ids_guid_is_null(m->guid) && memcmp(m->sha1, m->guid, IDS_GUID_LEN) != 0)
		m->state = AM_GUID;
	else
		m->state = AM_OK;
	return (uint64_t)n;
}

/* Writes and hashes srcfd to dstfd, starting with the n bytes in h->buf. */
static int64_t
copy_rest(struct hasher *h, int srcfd, int dstfd, uint64_t size, ssize_t n)
{
	uint64_t off = 0;
	int r;

	while (n > 0) {
		if ((r = digest_update(h, 0, (size_t)n)) < 0 ||
		    (r = IDS_FAILPOINT("audit.repair_write")) < 0 ||
		    (r = ids_write_all(dstfd, h->buf, (size_t)n)) < 0)
			return r;
		off += (uint64_t)n;
		n = next_read(h, srcfd, off, size, n);
	}
	return n < 0 ? -errno : (int64_t)off;
}

int64_t
ids_hasher_copy(struct hasher *h, int srcdir, const char *name, int dstfd,
    uint8_t sha1[IDS_GUID_LEN])
{
	struct amsg m;
	struct stat st;
	unsigned int len;
	uint64_t size;
	int64_t n;
	int cold, fd = open_file(h, srcdir, name), r;

	memset(&m, 0, sizeof(m));
	if (fd >= 0 && fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (open_failed(srcdir, name, fd, &st, &m)) {
		if (fd >= 0)
			close(fd);
		if (m.state == AM_UNSAFE)
			return ids_error(IDS_EUNSAFE, "%s", ids_amsg_what(m.what));
		return m.state == AM_ABSENT ? -ENOENT : m.err;
	}
	if ((r = digest_init(h, 0)) < 0) {
		close(fd);
		return r;
	}
	size = (uint64_t)st.st_size;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	n = first_read(h, fd, size < HASH_BUF ? (size_t)size + 1 : HASH_BUF, size, &cold);
	n = copy_rest(h, fd, dstfd, size, n);
	if (n >= 0 && cold)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	if (n >= 0 && EVP_DigestFinal_ex(h->sha, sha1, &len) != 1)
		n = ids_error(-EIO, "libcrypto: digest final failed");
	return n;
}

/*
 * One openat2() call with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS does what
 * ids_opendir_beneath() does component by component (no symlink, no
 * "..", nothing outside rootfd), in one system call instead of one per
 * component: the audit opens two or three such paths per folder.  When
 * the kernel lacks openat2 (before 5.6), or the path is refused, the
 * fsutil walk runs instead and gives the precise error.
 */
int
ids_audit_opendir(int rootfd, const char *rel, int *fdp)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof(how));
	if (fd >= 0) {
		*fdp = (int)fd;
		return 0;
	}
	if (errno == ENOENT)
		return -ENOENT;
	return ids_opendir_beneath(rootfd, rel, 0, fdp);
}
