/*
 * test-guid.c - message GUIDs: the SHA-1 of a message file's bytes,
 * checked against sha1sum(1) over the same files, from a buffer, a
 * descriptor's current offset and a name, across the reader's 64 KiB
 * blocks; and the names it refuses to read.
 */
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
#include "fsutil.h"
#include "guid.h"
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
	strcpy(s->dir, "/tmp/ids-guid-XXXXXX");
	if (mkdtemp(s->dir) == NULL || ids_opendir_abs(s->dir, &s->dfd) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	struct scratch *s = *state;

	close(s->dfd);
	unit_rmtree(s->dir);
	free(s);
	return 0;
}

/* What sha1sum(1) prints for the output of cmd (a shell command). */
static void
sha1sum(const char *cmd, char hex[IDS_GUID_HEXLEN + 1])
{
	char line[4300];
	FILE *p;

	snprintf(line, sizeof(line), "%s | sha1sum", cmd);
	assert_non_null(p = popen(line, "r"));
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	assert_true(strlen(line) > IDS_GUID_HEXLEN && line[IDS_GUID_HEXLEN] == ' ');
	memcpy(hex, line, IDS_GUID_HEXLEN);
	hex[IDS_GUID_HEXLEN] = '\0';
}

/* Bytes that repeat with no period of a power of two. */
static char *
pattern(size_t len)
{
	char *buf = malloc(len + 1);
	size_t i;

	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = (char)((i * 7919 + i / 251) % 253);
	return buf;
}

/* Sizes around the 64 KiB read block, and none at all. */
static const size_t sizes[] = { 0, 1, 65535, 65536, 65537, 3 * 65536 + 11, 1048579 };

static void
test_against_sha1sum(void **state)
{
	struct scratch *s = *state;
	char want[IDS_GUID_HEXLEN + 1], got[IDS_GUID_HEXLEN + 1], cmd[256], name[32];
	uint8_t g[IDS_GUID_LEN];
	size_t i;
	int fd;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *buf = pattern(sizes[i]);

		snprintf(name, sizeof(name), "%zu.", i + 1);
		assert_int_equal(ids_write_durable(s->dfd, name, buf, sizes[i], 0600), 0);
		snprintf(cmd, sizeof(cmd), "cat %s/%s", s->dir, name);
		sha1sum(cmd, want);
		/* The same digest three ways: buffer, name, descriptor. */
		assert_int_equal(ids_guid_buf(buf, sizes[i], g), 0);
		ids_guid_hex(g, got);
		assert_string_equal(got, want);
		memset(g, 0, sizeof(g));
		assert_int_equal(ids_guid_file(s->dfd, name, g), 0);
		ids_guid_hex(g, got);
		assert_string_equal(got, want);
		assert_true((fd = openat(s->dfd, name, O_RDONLY)) >= 0);
		memset(g, 0, sizeof(g));
		assert_int_equal(ids_guid_fd(fd, g), 0);
		ids_guid_hex(g, got);
		assert_string_equal(got, want);
		close(fd);
		free(buf);
	}
}

/* The well-known digests of nothing and of "abc" (FIPS 180-1). */
static void
test_known_values(void **state)
{
	char hex[IDS_GUID_HEXLEN + 1];
	uint8_t g[IDS_GUID_LEN];

	(void)state;
	assert_int_equal(ids_guid_buf("", 0, g), 0);
	ids_guid_hex(g, hex);
	assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	assert_false(ids_guid_is_null(g));
	assert_int_equal(ids_guid_buf("abc", 3, g), 0);
	ids_guid_hex(g, hex);
	assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	sha1sum("printf abc", hex);
	assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

/* A descriptor is hashed from where it stands to its end. */
static void
test_fd_from_offset(void **state)
{
	struct scratch *s = *state;
	char want[IDS_GUID_HEXLEN + 1], got[IDS_GUID_HEXLEN + 1], cmd[256];
	char *buf = pattern(100000);
	uint8_t g[IDS_GUID_LEN];
	int fd;

	assert_int_equal(ids_write_durable(s->dfd, "msg", buf, 100000, 0600), 0);
	assert_true((fd = openat(s->dfd, "msg", O_RDONLY)) >= 0);
	assert_int_equal(lseek(fd, 70000, SEEK_SET), 70000);
	assert_int_equal(ids_guid_fd(fd, g), 0);
	ids_guid_hex(g, got);
	snprintf(cmd, sizeof(cmd), "tail -c +70001 %s/msg", s->dir);
	sha1sum(cmd, want);
	assert_string_equal(got, want);
	/* At the end: the digest of nothing. */
	assert_int_equal(ids_guid_fd(fd, g), 0);
	ids_guid_hex(g, got);
	assert_string_equal(got, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	close(fd);
	assert_int_equal(ids_guid_fd(-1, g), -EBADF);
	assert_int_equal(ids_guid_fd(fd, g), -EBADF);	/* closed */
	free(buf);
}

/* A symlink, a FIFO (without blocking on it), a directory, a device: refused. */
static void
test_refuses_non_regular(void **state)
{
	struct scratch *s = *state;
	uint8_t g[IDS_GUID_LEN];

	assert_int_equal(ids_write_durable(s->dfd, "real", "x", 1, 0600), 0);
	assert_int_equal(symlinkat("real", s->dfd, "link"), 0);
	assert_int_equal(ids_guid_file(s->dfd, "link", g), IDS_EUNSAFE);
	assert_non_null(strstr(ids_errmsg(IDS_EUNSAFE), "'link' is a symlink"));
	assert_int_equal(mkfifoat(s->dfd, "fifo", 0600), 0);
	assert_int_equal(ids_guid_file(s->dfd, "fifo", g), IDS_EUNSAFE);
	assert_non_null(strstr(ids_errmsg(IDS_EUNSAFE), "'fifo' is not a regular file"));
	assert_int_equal(mkdirat(s->dfd, "sub", 0700), 0);
	assert_int_equal(ids_guid_file(s->dfd, "sub", g), IDS_EUNSAFE);
	assert_int_equal(ids_guid_file(AT_FDCWD, "/dev/null", g), IDS_EUNSAFE);
	assert_int_equal(ids_guid_file(s->dfd, "missing", g), -ENOENT);
	/* The target through the symlink would have hashed fine. */
	assert_int_equal(ids_guid_file(s->dfd, "real", g), 0);
}

static void
test_hex_and_null(void **state)
{
	uint8_t g[IDS_GUID_LEN];
	char hex[IDS_GUID_HEXLEN + 1];
	size_t i;

	(void)state;
	memset(g, 0, sizeof(g));
	assert_true(ids_guid_is_null(g));
	ids_guid_hex(g, hex);
	assert_string_equal(hex, "0000000000000000000000000000000000000000");
	for (i = 0; i < IDS_GUID_LEN; i++)
		g[i] = (uint8_t)(i * 17 + 10);
	ids_guid_hex(g, hex);
	assert_string_equal(hex, "0a1b2c3d4e5f708192a3b4c5d6e7f8091a2b3c4d");
	memset(g, 0, sizeof(g));
	g[IDS_GUID_LEN - 1] = 1;	/* one bit anywhere is a GUID */
	assert_false(ids_guid_is_null(g));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_against_sha1sum, setup, teardown),
		cmocka_unit_test(test_known_values),
		cmocka_unit_test_setup_teardown(test_fd_from_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_non_regular, setup, teardown),
		cmocka_unit_test(test_hex_and_null),
	};

	return unit_run(tests);
}
