/*
 * lock.c - namespace and mailbox locks (see lock.h for the protocol).
 *
 * Open file description locks (F_OFD_SETLK) belong to the open file,
 * not the process: two lockers in one process exclude each other as two
 * processes do, and the lock goes away when the holder's descriptor is
 * closed, including by the kernel when the holder dies.  The lock files
 * themselves are never removed (removing one would let two processes
 * lock two different inodes under one name).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "lock.h"
#include "mboxname.h"
#include "journal.h"

struct ids_lock {
	int fd;
	int wfd;	/* the shared writers lock of a journaled exclusive mailbox lock, or -1 */
};

/* Names longer than this are replaced by their SHA-1 in the file name. */
#define LOCKNAME_MAX 200

/*
 * Writes the lock directory of kind into buf and returns its length;
 * with make, creates what is missing of it.
 */
static int
lock_dir(const struct ids_config *cfg, const char *kind, int make, char *buf, size_t size)
{
	const char *parts[] = { "lock", kind };
	size_t len;
	int i, r;

	if ((len = (size_t)snprintf(buf, size, "%s", cfg->configdirectory)) >= size)
		return ids_error(IDS_ETOOLONG, "configdirectory '%s'", cfg->configdirectory);
	for (i = 0; i < 2; i++) {
		int n = snprintf(buf + len, size - len, "/%s", parts[i]);

		if (n < 0 || (size_t)n >= size - len)
			return ids_error(IDS_ETOOLONG, "lock directory");
		len += (size_t)n;
		if (!make || access(buf, F_OK) == 0)
			continue;
		if ((r = IDS_FAILPOINT("lock.mkdir")) < 0)
			return ids_error(r, "%s: %s", buf, strerror(-r));
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return ids_error(-errno, "%s: %s", buf, strerror(errno));
	}
	return (int)len;
}

/* The file name for a lock on name: the name itself, or its SHA-1. */
static int
lock_filename(const char *name, char *buf, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen, i;

	if (*name == '\0' || *name == '.' || strchr(name, '/') != NULL)
		return ids_error(IDS_EINVAL, "'%s' cannot name a lock", name);
	if (strlen(name) <= LOCKNAME_MAX)
		return snprintf(buf, size, "%s.lock", name) < (int)size ? 0 : IDS_ETOOLONG;
	if (!EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha1(), NULL))
		return ids_error(IDS_EINVAL, "cannot hash lock name");
	for (i = 0; i < mdlen && 2 * i + 2 < size; i++)
		snprintf(buf + 2 * i, 3, "%02x", md[i]);
	return snprintf(buf + 2 * i, size - 2 * i, ".lock") < (int)(size - 2 * i) ?
	    0 : IDS_ETOOLONG;
}

static void
nap(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Applies the lock, polling with a growing interval until the timeout. */
static int
apply_lock(int fd, int flags, int timeout_ms, const char *path)
{
	struct flock fl = { .l_type = (flags & IDS_LOCK_SHARED) ? F_RDLCK : F_WRLCK,
	    .l_whence = SEEK_SET };
	int waited = 0, step = 1;

	if (timeout_ms < 0 && !(flags & IDS_LOCK_NONBLOCK)) {
		while (fcntl(fd, F_OFD_SETLKW, &fl) < 0)
			if (errno != EINTR)
				return ids_error(-errno, "%s: %s", path, strerror(errno));
		return 0;
	}
	while (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return ids_error(-errno, "%s: %s", path, strerror(errno));
		if ((flags & IDS_LOCK_NONBLOCK) || waited >= timeout_ms)
			return ids_error(IDS_ELOCKED, "%s: held by another process", path);
		nap(step);
		waited += step;
		if (step < 50)
			step *= 2;
	}
	return 0;
}

static int
lock_take(const struct ids_config *cfg, const char *kind, const char *name,
    int flags, int timeout_ms, struct ids_lock **lockp)
{
	char path[PATH_MAX], file[LOCKNAME_MAX + 16];
	struct ids_lock *lock;
	int len, fd, r;

	if ((r = lock_filename(name, file, sizeof(file))) < 0)
		return r;
	if ((len = lock_dir(cfg, kind, 0, path, sizeof(path))) < 0)
		return len;
	if ((size_t)snprintf(path + len, sizeof(path) - (size_t)len, "/%s", file) >=
	    sizeof(path) - (size_t)len)
		return ids_error(IDS_ETOOLONG, "lock file for '%s'", name);
	/* Lock files are made once and never removed (see above). */
	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* The first lock of this name; maybe the first of its kind. */
		if ((r = IDS_FAILPOINT("lock.create")) < 0)
			return ids_error(r, "%s: %s", path, strerror(-r));
		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
		if (fd < 0 && errno == ENOENT) {
			if ((r = lock_dir(cfg, kind, 1, path, sizeof(path))) < 0)
				return r;
			snprintf(path + len, sizeof(path) - (size_t)len, "/%s", file);
			fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
		}
	}
	if (fd < 0)
		return ids_error(-errno, "%s: %s", path, strerror(errno));
	if ((r = apply_lock(fd, flags, timeout_ms, path)) < 0 ||
	    (lock = malloc(sizeof(*lock))) == NULL) {
		close(fd);
		return r < 0 ? r : -ENOMEM;
	}
	lock->fd = fd;
	lock->wfd = -1;
	*lockp = lock;
	return 0;
}

int
ids_lock_namespace(const struct ids_config *cfg, const char *owner, int flags,
    int timeout_ms, struct ids_lock **lockp)
{
	return lock_take(cfg, "user", owner, flags, timeout_ms, lockp);
}

int
ids_lock_mailbox(const struct ids_config *cfg, const char *uniqueid, int flags,
    int timeout_ms, struct ids_lock **lockp)
{
	int r;

	if ((r = ids_uniqueid_check(uniqueid)) < 0)
		return r;
	if ((r = lock_take(cfg, "mailbox", uniqueid, flags, timeout_ms, lockp)) < 0 ||
	    (flags & (IDS_LOCK_SHARED | IDS_LOCK_NOJOURNAL)))
		return r;
	/*
	 * A writer of the folder: the fence, and the folder's entry in the
	 * change journal, durable before anything of it changes (journal.h).
	 */
	if ((r = ids_journal_writer_begin(cfg, uniqueid, &(*lockp)->wfd)) < 0) {
		ids_unlock(*lockp);
		*lockp = NULL;
	}
	return r;
}

void
ids_unlock(struct ids_lock *lock)
{
	if (lock == NULL)
		return;
	close(lock->fd);
	if (lock->wfd >= 0)
		close(lock->wfd);
	free(lock);
}
