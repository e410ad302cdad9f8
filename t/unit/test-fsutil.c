/*
 * test-fsutil.c - the durable write and the safe opens and walks of
 * fsutil.h: what each call leaves on disk when it succeeds and when
 * each of its failpoints fails it, and what it refuses to follow or
 * to read (symlinks, FIFOs, directories, devices, "..").
 *
 * test-error.c covers the basic durable write, ids_opendir_beneath's
 * walk and ids_dir_each over thousands of entries.
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
#include <unistd.h>
#include <cmocka.h>

#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "unit.h"

struct scratch {
	char dir[64];
	int dfd;
};

static int
setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;
	*state = s;
	umask(022);
	strcpy(s->dir, "/tmp/ids-fsutil-XXXXXX");
	if (mkdtemp(s->dir) == NULL || ids_opendir_abs(s->dir, &s->dfd) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	struct scratch *s = *state;

	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	close(s->dfd);
	unit_rmtree(s->dir);
	free(s);
	return 0;
}

static void
failpoint(const char *spec)
{
	if (spec)
		setenv("IDS_FAILPOINT", spec, 1);
	else
		unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
}

/* The content of name in dfd, or "(none)" when it is missing. */
static const char *
content(int dfd, const char *name)
{
	static char text[256];
	char *buf;
	size_t len;
	int r;

	if ((r = ids_read_file(dfd, name, sizeof(text) - 1, &buf, &len)) == -ENOENT)
		return "(none)";
	assert_int_equal(r, 0);
	memcpy(text, buf, len + 1);
	free(buf);
	return text;
}

static int
exists(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static ino_t
inode(int dfd, const char *name)
{
	struct stat st;

	assert_int_equal(fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
	return st.st_ino;
}

/* A new inode each time: another name for the old one keeps the old bytes. */
static void
test_durable_replace(void **state)
{
	struct scratch *s = *state;
	struct stat st;
	ino_t before;

	assert_int_equal(ids_write_durable(s->dfd, "f", "old", 3, 0640), 0);
	assert_int_equal(fstatat(s->dfd, "f", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(linkat(s->dfd, "f", s->dfd, "other", 0), 0);
	before = inode(s->dfd, "f");
	assert_int_equal(ids_write_durable(s->dfd, "f", "new!", 4, 0600), 0);
	assert_string_equal(content(s->dfd, "f"), "new!");
	assert_string_equal(content(s->dfd, "other"), "old");
	assert_true(inode(s->dfd, "f") != before);
	assert_int_equal(fstatat(s->dfd, "f", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_false(exists(s->dfd, "f.NEW"));
}

/* A stale temporary name, even a symlink out of the tree, is removed, not followed. */
static void
test_durable_stale_tmp(void **state)
{
	struct scratch *s = *state;

	assert_int_equal(ids_write_durable(s->dfd, "victim", "keep", 4, 0600), 0);
	assert_int_equal(symlinkat("victim", s->dfd, "f.NEW"), 0);
	assert_int_equal(ids_write_durable(s->dfd, "f", "data", 4, 0600), 0);
	assert_string_equal(content(s->dfd, "f"), "data");
	assert_string_equal(content(s->dfd, "victim"), "keep");
	assert_false(exists(s->dfd, "f.NEW"));
	assert_int_equal(ids_write_durable(s->dfd, "g.NEW", "x", 1, 0600), 0);	/* left by a crash */
	assert_int_equal(ids_write_durable(s->dfd, "g", "y", 1, 0600), 0);
	assert_string_equal(content(s->dfd, "g"), "y");
	assert_false(exists(s->dfd, "g.NEW"));
}

/*
 * Each step failing: the error comes back, no temporary name stays,
 * and until the rename the old content is what a reader sees.
 */
static void
test_durable_faults(void **state)
{
	static const struct { const char *spec; const char *left; } cases[] = {
		{ "fs.create:ENOSPC", "old" },
		{ "fs.write:ENOSPC", "old" },
		{ "fs.fsync:EIO", "old" },
		{ "fs.rename:EIO", "old" },
		{ "fs.fsync_dir:EIO", "new" },	/* in place; only its durability is unknown */
	};
	struct scratch *s = *state;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int want = -ids_errno_parse(strchr(cases[i].spec, ':') + 1);

		assert_int_equal(ids_write_durable(s->dfd, "f", "old", 3, 0600), 0);
		failpoint(cases[i].spec);
		assert_int_equal(ids_write_durable(s->dfd, "f", "new", 3, 0600), want);
		failpoint(NULL);
		assert_string_equal(content(s->dfd, "f"), cases[i].left);
		assert_false(exists(s->dfd, "f.NEW"));
	}
	/* Removing the temporary name failing too: it stays, and the next write removes it. */
	failpoint("fs.write:EIO,fs.unlink_tmp:EIO");
	assert_int_equal(ids_write_durable(s->dfd, "f", "new", 3, 0600), -EIO);
	failpoint(NULL);
	assert_true(exists(s->dfd, "f.NEW"));
	assert_int_equal(ids_write_durable(s->dfd, "f", "last", 4, 0600), 0);
	assert_string_equal(content(s->dfd, "f"), "last");
	assert_false(exists(s->dfd, "f.NEW"));
}

/* Written in place under its own name; a failure leaves no partial file. */
static void
test_write_new(void **state)
{
	static const char *const faults[] = { "fs.create:EIO", "fs.write:ENOSPC", "fs.fsync:EIO" };
	struct scratch *s = *state;
	struct stat st;
	size_t i;

	assert_int_equal(ids_write_new(s->dfd, "n", "one", 3, 0640), 0);
	assert_string_equal(content(s->dfd, "n"), "one");
	assert_int_equal(fstatat(s->dfd, "n", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_false(exists(s->dfd, "n.NEW"));
	/* Already there: replaced as ids_write_durable() would, links keep the old bytes. */
	assert_int_equal(linkat(s->dfd, "n", s->dfd, "n2", 0), 0);
	assert_int_equal(ids_write_new(s->dfd, "n", "two", 3, 0640), 0);
	assert_string_equal(content(s->dfd, "n"), "two");
	assert_string_equal(content(s->dfd, "n2"), "one");
	for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		failpoint(faults[i]);
		assert_true(ids_write_new(s->dfd, "m", "partial", 7, 0600) < 0);
		failpoint(NULL);
		assert_false(exists(s->dfd, "m"));
	}
	/* A symlink at the name is replaced, never written through. */
	assert_int_equal(symlinkat("n2", s->dfd, "sym"), 0);
	assert_int_equal(ids_write_new(s->dfd, "sym", "three", 5, 0600), 0);
	assert_string_equal(content(s->dfd, "sym"), "three");
	assert_string_equal(content(s->dfd, "n2"), "one");
}

/* Only regular files are read; a FIFO without a writer does not block. */
static void
test_read_file_refuses(void **state)
{
	struct scratch *s = *state;
	char *buf;
	size_t len;

	assert_int_equal(mkfifoat(s->dfd, "fifo", 0600), 0);
	assert_int_equal(ids_read_file(s->dfd, "fifo", 100, &buf, &len), IDS_EUNSAFE);
	assert_non_null(strstr(ids_errmsg(IDS_EUNSAFE), "'fifo' is not a regular file"));
	assert_int_equal(mkdirat(s->dfd, "dir", 0700), 0);
	assert_int_equal(ids_read_file(s->dfd, "dir", 100, &buf, &len), IDS_EUNSAFE);
	assert_int_equal(ids_read_file(AT_FDCWD, "/dev/null", 100, &buf, &len), IDS_EUNSAFE);
	assert_int_equal(symlinkat("/dev/null", s->dfd, "dev"), 0);
	assert_int_equal(ids_read_file(s->dfd, "dev", 100, &buf, &len), IDS_EUNSAFE);
	assert_non_null(strstr(ids_errmsg(IDS_EUNSAFE), "'dev' is a symlink"));
	assert_int_equal(ids_read_file(s->dfd, "missing", 100, &buf, &len), -ENOENT);
	/* Empty, and exactly max bytes: read, NUL-terminated; one byte over: refused. */
	assert_int_equal(ids_write_durable(s->dfd, "empty", "", 0, 0600), 0);
	assert_int_equal(ids_read_file(s->dfd, "empty", 0, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(buf[0], '\0');
	free(buf);
	assert_int_equal(ids_write_durable(s->dfd, "five", "12345", 5, 0600), 0);
	assert_int_equal(ids_read_file(s->dfd, "five", 5, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "12345");
	free(buf);
	assert_int_equal(ids_read_file(s->dfd, "five", 4, &buf, &len), IDS_ETOOLONG);
}

static ino_t
dir_inode(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

/* A file or a symlink where a directory should be; a failing mkdir makes nothing. */
static void
test_opendir_refuses(void **state)
{
	struct scratch *s = *state;
	int fd, fd2;

	assert_int_equal(ids_opendir_beneath(s->dfd, "a/b", IDS_OPEN_CREATE, &fd), 0);
	close(fd);
	assert_int_equal(ids_write_durable(s->dfd, "file", "x", 1, 0600), 0);
	assert_int_equal(ids_opendir_beneath(s->dfd, "file/x", IDS_OPEN_CREATE, &fd), IDS_EUNSAFE);
	assert_non_null(strstr(ids_errmsg(IDS_EUNSAFE), "'file' is not a directory"));
	assert_int_equal(ids_opendir_beneath(s->dfd, "file", 0, &fd), IDS_EUNSAFE);
	/* A symlink to a directory inside the tree, last or in the middle. */
	assert_int_equal(symlinkat("a", s->dfd, "toa"), 0);
	assert_int_equal(ids_opendir_beneath(s->dfd, "toa", 0, &fd), IDS_EUNSAFE);
	assert_non_null(strstr(ids_errmsg(IDS_EUNSAFE), "'toa' is a symlink"));
	assert_int_equal(ids_opendir_beneath(s->dfd, "toa/b/new", IDS_OPEN_CREATE, &fd),
	    IDS_EUNSAFE);
	assert_false(exists(s->dfd, "a/b/new"));
	assert_int_equal(ids_opendir_beneath(s->dfd, "a/../a", 0, &fd), IDS_EINVAL);
	/* "", "." and "./a//b": the root, and the same directory. */
	assert_int_equal(ids_opendir_beneath(s->dfd, "", 0, &fd), 0);
	assert_int_equal(ids_opendir_beneath(s->dfd, ".", 0, &fd2), 0);
	assert_int_equal(dir_inode(fd), dir_inode(s->dfd));
	assert_int_equal(dir_inode(fd2), dir_inode(s->dfd));
	close(fd);
	close(fd2);
	assert_int_equal(ids_opendir_beneath(s->dfd, "./a//b", 0, &fd), 0);
	assert_int_equal(ids_opendir_beneath(s->dfd, "a/b", 0, &fd2), 0);
	assert_int_equal(dir_inode(fd), dir_inode(fd2));
	close(fd);
	close(fd2);
	failpoint("fs.mkdir:ENOSPC");
	assert_int_equal(ids_opendir_beneath(s->dfd, "c/d", IDS_OPEN_CREATE, &fd), -ENOSPC);
	failpoint(NULL);
	assert_false(exists(s->dfd, "c"));
	assert_int_equal(ids_opendir_beneath(s->dfd, "c/d", 0, &fd), -ENOENT);
}

struct types {
	int reg, dir, lnk, fifo, other;
	int stop_at;
	int seen;
};

static int
by_type(void *rock, const char *name, ino_t ino, unsigned char type)
{
	struct types *t = rock;

	assert_true(ino != 0);
	if (type == DT_REG)
		t->reg++;
	else if (type == DT_DIR)
		t->dir++;
	else if (type == DT_LNK)
		t->lnk++;
	else if (type == DT_FIFO)
		t->fifo++;
	else
		t->other++;
	return ++t->seen == t->stop_at ? -ECANCELED : 0;
}

/* Types as the file system reports them; fn's first non-zero value ends the walk. */
static void
test_dir_each_types(void **state)
{
	struct scratch *s = *state;
	struct types t = { 0 };

	assert_int_equal(ids_write_durable(s->dfd, "r1", "x", 1, 0600), 0);
	assert_int_equal(ids_write_durable(s->dfd, "r2", "x", 1, 0600), 0);
	assert_int_equal(mkdirat(s->dfd, "d", 0700), 0);
	assert_int_equal(symlinkat("r1", s->dfd, "l"), 0);
	assert_int_equal(mkfifoat(s->dfd, "p", 0600), 0);
	assert_int_equal(ids_dir_each(s->dfd, by_type, &t), 0);
	assert_int_equal(t.seen, 5);
	if (t.other != 5) {	/* DT_UNKNOWN everywhere is allowed; a wrong type is not */
		assert_int_equal(t.reg, 2);
		assert_int_equal(t.dir, 1);
		assert_int_equal(t.lnk, 1);
		assert_int_equal(t.fifo, 1);
	}
	memset(&t, 0, sizeof(t));
	t.stop_at = 3;
	assert_int_equal(ids_dir_each(s->dfd, by_type, &t), -ECANCELED);
	assert_int_equal(t.seen, 3);
	assert_int_equal(ids_dir_each(-1, by_type, &t), -EBADF);
}

static void
test_same_file(void **state)
{
	struct scratch *s = *state;
	int a, b;

	assert_int_equal(ids_opendir_beneath(s->dfd, "a", IDS_OPEN_CREATE, &a), 0);
	assert_int_equal(ids_opendir_beneath(s->dfd, "b", IDS_OPEN_CREATE, &b), 0);
	assert_int_equal(ids_write_durable(a, "linked", "same", 4, 0600), 0);
	assert_int_equal(linkat(a, "linked", b, "linked", 0), 0);
	assert_int_equal(ids_same_file(a, b, "linked"), 1);
	assert_int_equal(ids_write_durable(a, "copied", "same", 4, 0600), 0);
	assert_int_equal(ids_write_durable(b, "copied", "same", 4, 0600), 0);
	assert_int_equal(ids_same_file(a, b, "copied"), 1);
	assert_int_equal(ids_write_durable(a, "differs", "abcd", 4, 0600), 0);
	assert_int_equal(ids_write_durable(b, "differs", "abce", 4, 0600), 0);
	assert_int_equal(ids_same_file(a, b, "differs"), 0);
	assert_int_equal(ids_write_durable(b, "longer", "abcde", 5, 0600), 0);
	assert_int_equal(ids_write_durable(a, "longer", "abcd", 4, 0600), 0);
	assert_int_equal(ids_same_file(a, b, "longer"), 0);
	assert_int_equal(ids_same_file(a, b, "missing"), -ENOENT);
	/* A symlink to the same bytes is not the same file. */
	assert_int_equal(ids_write_durable(a, "sym", "same", 4, 0600), 0);
	assert_int_equal(symlinkat("copied", b, "sym"), 0);
	assert_int_equal(ids_same_file(a, b, "sym"), 0);
	close(a);
	close(b);
}

/* A hard link where the kernel allows one; else a verified copy; never an overwrite. */
static void
test_link_or_copy(void **state)
{
	static const char *const refusals[] = { "fs.link:EXDEV", "fs.link:EMLINK", "fs.link:EPERM" };
	struct scratch *s = *state;
	unsigned long long bytes = 0;
	enum ids_carry how;
	char name[16];
	size_t i;
	int a, b;

	assert_int_equal(ids_opendir_beneath(s->dfd, "a", IDS_OPEN_CREATE, &a), 0);
	assert_int_equal(ids_opendir_beneath(s->dfd, "b", IDS_OPEN_CREATE, &b), 0);
	assert_int_equal(ids_write_durable(a, "m", "message", 7, 0600), 0);
	assert_int_equal(ids_link_or_copy(a, b, "m", &how, &bytes), 0);
	assert_int_equal(how, IDS_CARRY_LINKED);
	assert_int_equal(inode(a, "m"), inode(b, "m"));
	assert_int_equal(bytes, 0);
	assert_int_equal(ids_link_or_copy(a, b, "m", &how, &bytes), 0);
	assert_int_equal(how, IDS_CARRY_EXISTED);
	/* Different bytes already there: a conflict, and they stay. */
	assert_int_equal(ids_write_durable(a, "c", "mine", 4, 0600), 0);
	assert_int_equal(ids_write_durable(b, "c", "them", 4, 0600), 0);
	assert_int_equal(ids_link_or_copy(a, b, "c", &how, &bytes), IDS_ECONFLICT);
	assert_string_equal(content(b, "c"), "them");
	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		snprintf(name, sizeof(name), "r%zu", i);
		assert_int_equal(ids_write_durable(a, name, "refused!", 8, 0600), 0);
		failpoint(refusals[i]);
		assert_int_equal(ids_link_or_copy(a, b, name, &how, &bytes), 0);
		failpoint(NULL);
		assert_int_equal(how, IDS_CARRY_COPIED);
		assert_true(inode(a, name) != inode(b, name));
		assert_string_equal(content(b, name), "refused!");
		snprintf(name, sizeof(name), "r%zu.NEW", i);
		assert_false(exists(b, name));
	}
	assert_int_equal(bytes, 3 * 8);
	/* The copy path opens only a regular file: a FIFO neither blocks
	 * it nor is read, a symlink is not followed; nothing is made. */
	assert_int_equal(mkfifoat(a, "p", 0600), 0);
	failpoint("fs.link:EXDEV");
	assert_int_equal(ids_link_or_copy(a, b, "p", &how, &bytes), IDS_EUNSAFE);
	assert_int_equal(symlinkat("m", a, "sl"), 0);
	assert_int_equal(ids_copy_only(a, b, "sl", &how, &bytes), IDS_EUNSAFE);
	failpoint(NULL);
	assert_false(exists(b, "p") || exists(b, "p.NEW") || exists(b, "sl") || exists(b, "sl.NEW"));
	assert_int_equal(bytes, 3 * 8);
	/* Any other refusal is an error, and nothing is made. */
	assert_int_equal(ids_write_durable(a, "e", "x", 1, 0600), 0);
	failpoint("fs.link:EIO");
	assert_int_equal(ids_link_or_copy(a, b, "e", &how, &bytes), -EIO);
	failpoint(NULL);
	assert_non_null(strstr(ids_errmsg(-EIO), "e: link:"));
	assert_false(exists(b, "e"));
	/* The copy failing on the way: no name, no temporary. */
	failpoint("fs.copy_write:ENOSPC");
	assert_int_equal(ids_copy_only(a, b, "e", &how, &bytes), -ENOSPC);
	failpoint("fs.link_copy:EIO");
	assert_int_equal(ids_copy_only(a, b, "e", &how, &bytes), -EIO);
	failpoint(NULL);
	assert_false(exists(b, "e"));
	assert_false(exists(b, "e.NEW"));
	/* A symlink as the source is neither linked through nor copied. */
	assert_int_equal(symlinkat("/etc/passwd", a, "s"), 0);
	assert_int_equal(ids_copy_only(a, b, "s", &how, &bytes), IDS_EUNSAFE);
	assert_false(exists(b, "s"));
	close(a);
	close(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_durable_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_durable_stale_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_durable_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_file_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_opendir_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_each_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_or_copy, setup, teardown),
	};

	return unit_run(tests);
}
