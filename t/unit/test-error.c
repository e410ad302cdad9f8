/*
 * test-error.c - the error convention, the failpoints and the durable
 * write helper.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "unit.h"

static void
test_strerror(void **state)
{
	(void)state;
	assert_string_equal(ids_strerror(0), "success");
	assert_string_equal(ids_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(ids_strerror(IDS_EBADNAME), "invalid mailbox name");
	assert_string_equal(ids_strerror(-19999), "unknown error");
}

static void
test_detail(void **state)
{
	(void)state;
	assert_int_equal(ids_error(IDS_EBADNAME, "empty level at %d", 3), IDS_EBADNAME);
	assert_string_equal(ids_errmsg(IDS_EBADNAME), "empty level at 3");
	/* A detail recorded for another code is not handed out. */
	assert_string_equal(ids_errmsg(IDS_ECRC), "checksum mismatch");
	ids_error_clear();
	assert_string_equal(ids_errmsg(IDS_EBADNAME), "invalid mailbox name");
}

/* Wrapping the detail one was handed in a longer one keeps all of it. */
static void
test_detail_wraps_itself(void **state)
{
	int r = ids_error(-ENOSPC, "%s: %s", "cyrus.index", strerror(ENOSPC));

	r = ids_error(r, "%s: converting first: %s", "user.john.Sent", ids_errmsg(r));
	assert_string_equal(ids_errmsg(r),
	    "user.john.Sent: converting first: cyrus.index: No space left on device");
}

static void
test_errno_parse(void **state)
{
	(void)state;
	assert_int_equal(ids_errno_parse("ENOSPC"), ENOSPC);
	assert_int_equal(ids_errno_parse("5"), 5);
	assert_int_equal(ids_errno_parse("EBOGUS"), 0);
	assert_int_equal(ids_errno_parse(""), 0);
}

static void
test_durable_write(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX", *buf;
	size_t len;
	int dfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ids_opendir_abs(dir, &dfd), 0);
	assert_int_equal(ids_write_durable(dfd, "f", "hello", 5, 0600), 0);
	assert_int_equal(ids_read_file(dfd, "f", 100, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "hello");
	free(buf);
	/* A stale .NEW from a crash does not block the next write. */
	close(openat(dfd, "f.NEW", O_CREAT | O_WRONLY, 0600));
	assert_int_equal(ids_write_durable(dfd, "f", "world!", 6, 0600), 0);
	assert_int_equal(ids_read_file(dfd, "f", 100, &buf, &len), 0);
	assert_string_equal(buf, "world!");
	free(buf);
	assert_int_equal(faccessat(dfd, "f.NEW", F_OK, 0), -1);
	/* Size limit and symlink refusal. */
	assert_int_equal(ids_read_file(dfd, "f", 3, &buf, &len), IDS_ETOOLONG);
	assert_int_equal(symlinkat("/etc/passwd", dfd, "link"), 0);
	assert_int_equal(ids_read_file(dfd, "link", 100, &buf, &len), IDS_EUNSAFE);
	close(dfd);
	unit_rmtree(dir);
}

static void
test_opendir_beneath(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	int root, fd;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ids_opendir_abs(dir, &root), 0);
	assert_int_equal(ids_opendir_beneath(root, "a/b/c", 0, &fd), -ENOENT);
	assert_int_equal(ids_opendir_beneath(root, "a/b/c", IDS_OPEN_CREATE, &fd), 0);
	close(fd);
	assert_int_equal(fstatat(root, "a/b/c", &st, 0), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(symlinkat("/tmp", root, "a/evil"), 0);
	assert_int_equal(ids_opendir_beneath(root, "a/evil/x", IDS_OPEN_CREATE, &fd),
	    IDS_EUNSAFE);
	assert_int_equal(ids_opendir_beneath(root, "a/../..", 0, &fd), IDS_EINVAL);
	close(root);
	unit_rmtree(dir);
}

static int
count_entry(void *rock, const char *name, ino_t ino, unsigned char type)
{
	struct stat st;
	int *n = rock;

	(void)type;
	assert_true(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	assert_int_equal(stat(name, &st), 0);	/* cwd is the directory */
	assert_int_equal(st.st_ino, ino);
	return ++*n == 1000 ? 7 : 0;	/* the first non-zero return stops the walk */
}

/*
 * ids_dir_each sees every entry once with its inode number, more than
 * one getdents buffer's worth, and again from the start when called
 * again; ids_dirlist_read finds each name with its inode and type, and
 * says when it stopped short.
 */
static void
test_dir_each_and_list(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX", name[64], cwd[4096];
	const struct ids_dirlist_ent *e;
	struct ids_dirlist dl;
	struct stat st;
	int fd, i, n;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chdir(dir), 0);
	/* 2,000 names of 40 bytes: several 32 KiB getdents buffers. */
	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "%d.%034d", i, i);
		assert_int_equal(close(open(name, O_CREAT | O_WRONLY, 0600)), 0);
	}
	assert_int_equal(mkdir("sub", 0700), 0);
	assert_int_equal(ids_opendir_abs(dir, &fd), 0);
	n = 0;
	assert_int_equal(ids_dir_each(fd, count_entry, &n), 7);
	assert_int_equal(n, 1000);
	n = -100000;	/* all 2,001 entries, from the start again */
	assert_int_equal(ids_dir_each(fd, count_entry, &n), 0);
	assert_int_equal(n, -100000 + 2001);

	assert_int_equal(ids_dirlist_read(fd, 100000, &dl), 0);
	assert_int_equal(dl.n, 2001);
	assert_true(dl.complete);
	for (i = 0; i < 2000; i += 97) {
		snprintf(name, sizeof(name), "%d.%034d", i, i);
		assert_non_null(e = ids_dirlist_find(&dl, name));
		assert_int_equal(stat(name, &st), 0);
		assert_int_equal(e->ino, st.st_ino);
		assert_string_equal(dl.names + e->name, name);
	}
	assert_non_null(e = ids_dirlist_find(&dl, "sub"));
	assert_true(e->type == DT_DIR || e->type == DT_UNKNOWN);
	assert_null(ids_dirlist_find(&dl, "2000.x"));
	assert_null(ids_dirlist_find(&dl, ""));
	assert_null(ids_dirlist_find(&dl, "."));
	ids_dirlist_free(&dl);

	assert_int_equal(ids_dirlist_read(fd, 10, &dl), 0);
	assert_int_equal(dl.n, 10);
	assert_false(dl.complete);
	ids_dirlist_free(&dl);
	assert_int_equal(ids_dirlist_read(-1, 10, &dl), -EBADF);
	ids_dirlist_free(&dl);

	close(fd);
	/* A directory removed while open reads as empty. */
	assert_int_equal(mkdir("gone", 0700), 0);
	assert_int_equal(ids_opendir_abs("gone", &fd), 0);
	assert_int_equal(rmdir("gone"), 0);
	n = 0;
	assert_int_equal(ids_dir_each(fd, count_entry, &n), 0);
	assert_int_equal(n, 0);
	close(fd);
	assert_int_equal(chdir(cwd), 0);
	unit_rmtree(dir);
}

/* A failpoint given an errno makes the durable write fail cleanly. */
static void
test_failpoint_errno(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	int dfd, status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ids_opendir_abs(dir, &dfd), 0);
	/* The environment is read once per process: test in a child. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("IDS_FAILPOINT", "fs.fsync:ENOSPC", 1);
		ids_failpoint_reset();
		_exit(ids_write_durable(dfd, "f", "x", 1, 0600) == -ENOSPC &&
		    faccessat(dfd, "f.NEW", F_OK, 0) < 0 &&
		    faccessat(dfd, "f", F_OK, 0) < 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* And a crash point kills the process at the k-th hit. */
	pid = fork();
	if (pid == 0) {
		setenv("IDS_FAILPOINT_CRASH", "2:fs.", 1);
		ids_failpoint_reset();
		ids_write_durable(dfd, "g", "x", 1, 0600);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	close(dfd);
	unit_rmtree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_detail),
		cmocka_unit_test(test_detail_wraps_itself),
		cmocka_unit_test(test_errno_parse),
		cmocka_unit_test(test_durable_write),
		cmocka_unit_test(test_opendir_beneath),
		cmocka_unit_test(test_dir_each_and_list),
		cmocka_unit_test(test_failpoint_errno),
	};

	return unit_run(tests);
}
