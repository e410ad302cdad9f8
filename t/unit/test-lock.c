/*
 * test-lock.c - the namespace and mailbox locks of lock.h: where their
 * files are, what excludes what (in one process as between two), the
 * timeout against a second process holding the lock, a lock freed by
 * its holder's death, and the names and files it refuses.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "lock.h"
#include "unit.h"
#include "fixture.h"

#define ID "2d3c1d9e-5f0a-4c1b-9a7e-0123456789ab"

static int
setup(void **state)
{
	return fixture_setup(state, "lock", 0, "");
}

static int
teardown(void **state)
{
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	return fixture_teardown(state);
}

static int
exists(struct fixture *f, const char *rel)
{
	char path[640];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	return lstat(path, &st) == 0;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * A second process that takes the namespace lock of owner and holds
 * it: until the parent closes *release (hold_ms < 0), for hold_ms, or
 * until it kills itself (die).  Returns once the lock is held.
 */
static pid_t
holder(struct fixture *f, const char *owner, int hold_ms, int die, int *release)
{
	int ready[2], go[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	if ((pid = fork()) == 0) {
		struct ids_lock *l;
		struct timespec ts = { hold_ms / 1000, (long)(hold_ms % 1000) * 1000000L };

		close(ready[0]);
		close(go[1]);
		if (ids_lock_namespace(&f->cfg, owner, 0, 1000, &l) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		if (die)
			raise(SIGKILL);
		if (hold_ms < 0)
			(void)read(go[0], &c, 1);
		else
			nanosleep(&ts, NULL);
		ids_unlock(l);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*release = go[1];
	return pid;
}

static int
reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* One file per lock below configdirectory/lock, left in place after unlock. */
static void
test_files(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *a, *b;

	assert_false(exists(f, "lock"));
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", 0, 0, &a), 0);
	assert_true(exists(f, "lock/user/john.lock"));
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, IDS_LOCK_SHARED, 0, &b), 0);
	assert_true(exists(f, "lock/mailbox/" ID ".lock"));
	ids_unlock(b);
	ids_unlock(a);
	ids_unlock(NULL);
	/* Removing one would let two lockers hold two inodes of one name. */
	assert_true(exists(f, "lock/user/john.lock"));
	assert_true(exists(f, "lock/mailbox/" ID ".lock"));
}

/* Open file description locks: two lockers in one process exclude each other. */
static void
test_exclusion(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *a, *b, *c;

	assert_int_equal(ids_lock_namespace(&f->cfg, "john", 0, 0, &a), 0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_NONBLOCK, 0, &b),
	    IDS_ELOCKED);
	assert_non_null(strstr(ids_errmsg(IDS_ELOCKED), "/lock/user/john.lock: held by another process"));
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_SHARED, 0, &b), IDS_ELOCKED);
	/* Other owners, and a mailbox lock, are other locks. */
	assert_int_equal(ids_lock_namespace(&f->cfg, "mary", IDS_LOCK_NONBLOCK, 0, &b), 0);
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, IDS_LOCK_NONBLOCK, 0, &c), 0);
	ids_unlock(c);
	ids_unlock(b);
	ids_unlock(a);
	/* Shared with shared; not exclusive with shared. */
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_SHARED, 0, &a), 0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_SHARED, 0, &b), 0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", 0, 0, &c), IDS_ELOCKED);
	ids_unlock(a);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_NONBLOCK, 0, &c), IDS_ELOCKED);
	ids_unlock(b);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_NONBLOCK, 0, &c), 0);
	ids_unlock(c);
}

/* Held by a live second process: IDS_ELOCKED once the timeout has passed, not before. */
static void
test_timeout(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *l;
	struct timespec t0;
	int release;
	long ms;
	pid_t pid = holder(f, "john", -1, 0, &release);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", 0, 300, &l), IDS_ELOCKED);
	ms = ms_since(&t0);
	assert_true(ms >= 300);
	assert_true(ms < 3000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_SHARED, 0, &l), IDS_ELOCKED);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_NONBLOCK, 5000, &l),
	    IDS_ELOCKED);
	assert_true(ms_since(&t0) < 1000);	/* NONBLOCK wins over the timeout */
	close(release);
	assert_int_equal(reap(pid), 0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_NONBLOCK, 0, &l), 0);
	ids_unlock(l);
}

/* A waiter gets the lock when the holder lets go, with a timeout or without one. */
static void
test_waits_for_release(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *l;
	struct timespec t0;
	int release, forever;
	pid_t pid;

	for (forever = 0; forever < 2; forever++) {
		pid = holder(f, "john", 200, 0, &release);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(ids_lock_namespace(&f->cfg, "john", 0, forever ? -1 : 10000, &l), 0);
		assert_true(ms_since(&t0) >= 100);
		assert_int_equal(reap(pid), 0);
		ids_unlock(l);
		close(release);
	}
}

/* The kernel drops the lock of a holder that dies (here SIGKILL). */
static void
test_dead_holder(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *l;
	int release, status;
	pid_t pid = holder(f, "john", -1, 1, &release);

	status = reap(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", IDS_LOCK_NONBLOCK, 0, &l), 0);
	ids_unlock(l);
	close(release);
}

/* Names over 200 bytes are locked under their SHA-1 (checked with sha1sum). */
static void
test_long_names(void **state)
{
	struct fixture *f = *state;
	char name[301], cmd[512], hex[64], rel[320];
	struct ids_lock *l, *l2;
	FILE *p;

	memset(name, 'n', 200);	/* the longest name used as it is */
	name[200] = '\0';
	assert_int_equal(ids_lock_namespace(&f->cfg, name, 0, 0, &l), 0);
	ids_unlock(l);
	snprintf(rel, sizeof(rel), "lock/user/%s.lock", name);
	assert_true(exists(f, rel));
	memset(name, 'n', 300);
	name[300] = '\0';
	assert_int_equal(ids_lock_namespace(&f->cfg, name, 0, 0, &l), 0);
	snprintf(cmd, sizeof(cmd), "printf %%s %s | sha1sum", name);
	assert_non_null(p = popen(cmd, "r"));
	assert_non_null(fgets(hex, sizeof(hex), p));
	assert_int_equal(pclose(p), 0);
	hex[40] = '\0';
	snprintf(rel, sizeof(rel), "lock/user/%s.lock", hex);
	assert_true(exists(f, rel));
	/* The same long name is the same lock. */
	assert_int_equal(ids_lock_namespace(&f->cfg, name, IDS_LOCK_NONBLOCK, 0, &l2), IDS_ELOCKED);
	ids_unlock(l);
}

/* Names that would escape or hide, and ids that are not ids: nothing is made. */
static void
test_bad_names(void **state)
{
	static const char *const bad[] = { "", ".", "..", ".hidden", "a/b", "../../etc" };
	struct fixture *f = *state;
	struct ids_lock *l = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ids_lock_namespace(&f->cfg, bad[i], 0, 0, &l), IDS_EINVAL);
	assert_int_equal(ids_lock_mailbox(&f->cfg, "../x", 0, 0, &l), IDS_EBADID);
	assert_int_equal(ids_lock_mailbox(&f->cfg, "2D3C1D9E-5F0A-4C1B-9A7E-0123456789AB", 0, 0, &l),
	    IDS_EBADID);
	assert_int_equal(ids_lock_mailbox(&f->cfg, NULL, 0, 0, &l), IDS_EBADID);
	assert_null(l);
	assert_false(exists(f, "lock"));
}

/* A symlink at a lock file's name is not followed (nor locked through). */
static void
test_symlink_refused(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *l;
	char path[512], target[512];

	assert_int_equal(ids_lock_namespace(&f->cfg, "john", 0, 0, &l), 0);
	ids_unlock(l);
	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_int_equal(close(open(target, O_CREAT | O_WRONLY, 0600)), 0);
	snprintf(path, sizeof(path), "%s/lock/user/evil.lock", f->dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "evil", 0, 0, &l), -ELOOP);
	assert_non_null(strstr(ids_errmsg(-ELOOP), "evil.lock"));
}

/* Making the lock directory or file failing: the error, with the path. */
static void
test_faults(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *l;

	setenv("IDS_FAILPOINT", "lock.mkdir:EACCES", 1);
	ids_failpoint_reset();
	assert_int_equal(ids_lock_namespace(&f->cfg, "john", 0, 0, &l), -EACCES);
	assert_non_null(strstr(ids_errmsg(-EACCES), "/lock"));
	assert_false(exists(f, "lock"));
	setenv("IDS_FAILPOINT", "lock.create:ENOSPC", 1);
	ids_failpoint_reset();
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, 0, 0, &l), -ENOSPC);
	assert_non_null(strstr(ids_errmsg(-ENOSPC), ID ".lock"));
	assert_false(exists(f, "lock/mailbox/" ID ".lock"));
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, 0, 0, &l), 0);
	ids_unlock(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclusion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waits_for_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_holder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
	};

	return unit_run(tests);
}
