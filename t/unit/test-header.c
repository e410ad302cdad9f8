/*
 * test-header.c - cyrus.header: both formats Cyrus writes, our own
 * format with the H key and unknown keys, durable writes, and broken
 * files.
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
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "header.h"
#include "unit.h"

/* formats.md section 7, spelled out here rather than taken from header.h. */
#define MAGIC "\xa1\x02\x8b\x0d" "Cyrus mailbox header\n" \
	"\"The best thing about this system was that it had lots of goals.\"\n" \
	"\t--Jim Morris on Andrew\n"
#define ID "3a1f9c2e-8d4b-4f6a-9b1c-2e7d5a0c4f18"

static int
parse(struct ids_header *h, const char *s, size_t len)
{
	ids_header_init(h);
	return ids_header_parse(h, s, len);
}

#define PARSE(h, lit) parse(h, lit, sizeof(lit) - 1)

static void
assert_fails(const char *s, size_t len, int code, const char *detail)
{
	struct ids_header h;
	int r = parse(&h, s, len);

	assert_int_equal(r, code);
	if (strstr(ids_errmsg(r), detail) == NULL)
		fail_msg("detail '%s' lacks '%s'", ids_errmsg(r), detail);
	assert_null(h.uniqueid);
	ids_header_release(&h);
}

#define FAILS(lit, code, detail) assert_fails(lit, sizeof(lit) - 1, code, detail)

static void
test_magic(void **state)
{
	(void)state;
	assert_int_equal(IDS_HEADER_MAGIC_LEN, sizeof(MAGIC) - 1);
	assert_memory_equal(IDS_HEADER_MAGIC, MAGIC, sizeof(MAGIC) - 1);
}

/* A 3.4 header as Cyrus writes it: trailing space after the flags, trailing TAB. */
static void
test_old_format(void **state)
{
	static const char f[] = MAGIC "user.john\t047656355035e6be\n"
	    "$Forwarded NonJunk \n" "john\tlrswipkxtecdan\tanyone\tlr\t\n";
	struct ids_header h;

	(void)state;
	assert_int_equal(PARSE(&h, f), 0);
	assert_true(h.old_format);
	assert_null(h.name);
	assert_string_equal(h.mbtype, "");
	assert_string_equal(h.quotaroot, "user.john");
	assert_string_equal(h.uniqueid, "047656355035e6be");
	assert_int_equal(h.nflags, 2);
	assert_string_equal(h.flags[0], "$Forwarded");
	assert_string_equal(h.flags[1], "NonJunk");
	assert_int_equal(h.nacl, 2);
	assert_string_equal(h.acl[0].id, "john");
	assert_string_equal(h.acl[0].rights, "lrswipkxtecdan");
	assert_string_equal(h.acl[1].id, "anyone");
	assert_string_equal(h.acl[1].rights, "lr");
	assert_null(h.extra);
	ids_header_release(&h);
}

static void
test_old_format_quirks(void **state)
{
	static const char gaps[] = MAGIC "\t047656355035e6be \r\n" "a  b\n" "x\tlr\n";
	static const char ancient[] = MAGIC "user.john\n\n\n";
	static const char noacl[] = MAGIC "user.john\tid\n\n";
	struct ids_header h;

	(void)state;
	/* Empty quota root, blanks after the id, an unused flag bit, no trailing TAB. */
	assert_int_equal(PARSE(&h, gaps), 0);
	assert_null(h.quotaroot);
	assert_string_equal(h.uniqueid, "047656355035e6be");
	assert_int_equal(h.nflags, 3);
	assert_string_equal(h.flags[0], "a");
	assert_null(h.flags[1]);
	assert_string_equal(h.flags[2], "b");
	assert_int_equal(h.nacl, 1);
	assert_string_equal(h.acl[0].rights, "lr");
	/* Parsing again releases what was there. */
	assert_int_equal(ids_header_parse(&h, noacl, sizeof(noacl) - 1), IDS_ETRUNC);
	assert_null(h.uniqueid);
	assert_int_equal(h.nflags, 0);
	ids_header_release(&h);
	/* Very old files: a quota root and no uniqueid. */
	assert_int_equal(PARSE(&h, ancient), 0);
	assert_string_equal(h.quotaroot, "user.john");
	assert_null(h.uniqueid);
	assert_int_equal(h.nflags, 0);
	assert_int_equal(h.nacl, 0);
	ids_header_release(&h);
	assert_int_equal(PARSE(&h, noacl), IDS_ETRUNC);
	assert_non_null(strstr(ids_errmsg(IDS_ETRUNC), "ACL line"));
}

static void
test_new_format(void **state)
{
	static const char f[] = MAGIC "%(T e N user.john I " ID " Q user.john "
	    "A %(john lrswipkxtecdan) U ($Forwarded NIL NonJunk))\n";
	struct ids_header h;

	(void)state;
	assert_int_equal(PARSE(&h, f), 0);
	assert_false(h.old_format);
	assert_string_equal(h.name, "user.john");
	assert_string_equal(h.uniqueid, ID);
	assert_string_equal(h.quotaroot, "user.john");
	assert_string_equal(h.mbtype, "e");
	assert_int_equal(h.nacl, 1);
	assert_string_equal(h.acl[0].id, "john");
	assert_int_equal(h.nflags, 3);
	assert_null(h.flags[1]);
	assert_string_equal(h.flags[2], "NonJunk");
	assert_int_equal(h.nhistory, 0);
	assert_null(h.extra);
	ids_header_release(&h);
}

/*
 * Unknown keys survive a rewrite; the history goes out in H; the
 * written line follows the documented key order with T last.
 */
static void
test_write_read_round_trip(void **state)
{
	static const char in[] = MAGIC "%(T el N user.john.New I " ID " X \"a b\" "
	    "U (NIL $Junk NIL) Z %(k (1 2)))\n";
	static const char want[] = MAGIC "%(N user.john.New I " ID " Q user.john "
	    "A %(john lrswipkxtecdan) U (NIL $Junk) X \"a b\" Z %(k (1 2)) "
	    "H (%(N user.john.Old M 1795000100 V 1795000050 C 1 F 7 T el P default)) "
	    "T el)\n";
	struct ids_header h, back;
	struct ids_buf b = IDS_BUF_INIT, b2 = IDS_BUF_INIT;

	(void)state;
	assert_int_equal(PARSE(&h, in), 0);
	assert_non_null(h.extra);
	h.quotaroot = strdup("user.john");
	assert_int_equal(ids_acl_set(&h.acl, &h.nacl, "john", "lrswipkxtecdan"), 0);
	h.history = calloc(1, sizeof(*h.history));
	h.nhistory = 1;
	h.history[0].name = strdup("user.john.Old");
	h.history[0].mtime = 1795000100;
	h.history[0].uidvalidity = 1795000050;
	h.history[0].createdmodseq = 1;
	h.history[0].foldermodseq = 7;
	strcpy(h.history[0].mbtype, "el");
	h.history[0].partition = strdup("default");
	assert_int_equal(ids_header_format(&h, &b), 0);
	assert_int_equal(b.len, sizeof(want) - 1);
	assert_memory_equal(b.s, want, b.len);
	/* Read back, and written again: the same bytes. */
	assert_int_equal(parse(&back, b.s, b.len), 0);
	assert_string_equal(back.history[0].name, "user.john.Old");
	assert_string_equal(back.history[0].partition, "default");
	assert_true(back.history[0].foldermodseq == 7);
	assert_string_equal(back.mbtype, "el");
	assert_int_equal(ids_header_format(&back, &b2), 0);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.s, b.s, b.len);
	ids_header_release(&back);
	ids_header_release(&h);
	ids_buf_release(&b);
	ids_buf_release(&b2);
}

static uint32_t
file_crc(int dfd, const char *name)
{
	char *buf;
	size_t len;
	uint32_t crc;

	assert_int_equal(ids_read_file(dfd, name, 1 << 20, &buf, &len), 0);
	crc = (uint32_t)crc32(0, (const Bytef *)buf, (uInt)len);
	free(buf);
	return crc;
}

static void
test_durable_write(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_header h, back;
	struct ids_mbentry e;
	struct stat st1, st2;
	uint32_t wcrc, rcrc;
	int dfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ids_opendir_abs(dir, &dfd), 0);
	ids_mbentry_init(&e);
	e.name = strdup("user.john");
	e.uniqueid = strdup(ID);
	strcpy(e.mbtype, "e");
	assert_int_equal(ids_acl_set(&e.acl, &e.nacl, "john", "lrswipkxtecdan"), 0);
	assert_int_equal(ids_mbentry_push_history(&e, 5), 0);
	ids_header_init(&h);
	assert_int_equal(ids_header_from_mbentry(&h, &e), 0);
	assert_int_equal(ids_header_write(dfd, &h, &wcrc), 0);
	assert_int_equal(fstatat(dfd, IDS_HEADER_FILE, &st1, 0), 0);
	assert_int_equal(st1.st_mode & 0777, 0600);
	assert_int_equal(file_crc(dfd, IDS_HEADER_FILE), wcrc);
	ids_header_init(&back);
	assert_int_equal(ids_header_read(dfd, &back, &rcrc), 0);
	assert_int_equal(rcrc, wcrc);
	assert_string_equal(back.name, "user.john");
	assert_int_equal(back.nhistory, 1);
	/* A rewrite makes a new inode: a hard link elsewhere keeps the old bytes. */
	assert_int_equal(linkat(dfd, IDS_HEADER_FILE, dfd, "keep", 0), 0);
	free(h.quotaroot);
	h.quotaroot = strdup("user.john");
	assert_int_equal(ids_header_write(dfd, &h, NULL), 0);
	assert_int_equal(fstatat(dfd, IDS_HEADER_FILE, &st2, 0), 0);
	assert_true(st1.st_ino != st2.st_ino);
	assert_int_equal(file_crc(dfd, "keep"), wcrc);
	assert_int_equal(faccessat(dfd, IDS_HEADER_FILE ".NEW", F_OK, 0), -1);
	/* And back into an mbentry. */
	ids_mbentry_release(&e);
	ids_mbentry_init(&e);
	e.partition = strdup("default");
	assert_int_equal(ids_header_to_mbentry(&back, &e), 0);
	assert_string_equal(e.name, "user.john");
	assert_string_equal(e.partition, "default");
	assert_string_equal(e.history[0].name, "user.john");
	ids_mbentry_release(&e);
	ids_header_release(&back);
	ids_header_release(&h);
	close(dfd);
	unit_rmtree(dir);
}

/* A failing write leaves the old file in place. */
static void
test_write_failpoint(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_header h;
	uint32_t crc;
	int dfd, status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ids_opendir_abs(dir, &dfd), 0);
	ids_header_init(&h);
	h.name = strdup("user.john");
	h.uniqueid = strdup(ID);
	assert_int_equal(ids_header_write(dfd, &h, &crc), 0);
	free(h.name);
	h.name = strdup("user.john.Other");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("IDS_FAILPOINT", "header.write:ENOSPC", 1);
		ids_failpoint_reset();
		_exit(ids_header_write(dfd, &h, NULL) == -ENOSPC ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(file_crc(dfd, IDS_HEADER_FILE), crc);
	ids_header_release(&h);
	close(dfd);
	unit_rmtree(dir);
}

static void
test_broken_files(void **state)
{
	char many[sizeof(MAGIC) + 600];
	int i, n;

	(void)state;
	FAILS("", IDS_ETRUNC, "shorter than its magic");
	FAILS("\xa1\x02\x8b\x0d" "Cyrus mail", IDS_ETRUNC, "shorter than its magic");
	FAILS("\xa1\x02\x8b\x0e" "Cyrus mail", IDS_ECORRUPT, "wrong magic");
	FAILS("PK\x03\x04 not a header at all, but long enough to hold the magic "
	    "bytes of a real header and more: really quite long", IDS_ECORRUPT, "wrong magic");
	FAILS(MAGIC, IDS_ETRUNC, "nothing after the magic");
	FAILS(MAGIC "%(N a I b)", IDS_ETRUNC, "no newline");
	FAILS(MAGIC "%(N a I b) x\n", IDS_ECORRUPT, "unexpected byte after the data at byte 126");
	FAILS(MAGIC "%(N a I {99}\r\nb)\n", IDS_ECORRUPT,
	    "in the data starting at byte 115: truncated literal");
	FAILS(MAGIC "%(N a I \"b)\n", IDS_ECORRUPT, "unterminated quoted string");
	FAILS(MAGIC "%(N a T bogus)\n", IDS_ECORRUPT, "invalid mailbox type");
	FAILS(MAGIC "%(N a U x)\n", IDS_ECORRUPT, "U is not a list");
	FAILS(MAGIC "%(N a U ((x)))\n", IDS_ECORRUPT, "user flag 0 is not a name");
	FAILS(MAGIC "%(N a H (%(N \"\")))\n", IDS_ECORRUPT, "missing or empty mailbox name");
	FAILS(MAGIC "user.john\tid", IDS_ETRUNC, "quota root line at byte 115 not terminated");
	FAILS(MAGIC "user.john\tid\nflags", IDS_ETRUNC, "user flags line");
	FAILS(MAGIC "q\tid\n\nlonely\n", IDS_ECORRUPT, "malformed ACL entry");
	FAILS(MAGIC "q\tid\x00x\n\n\n", IDS_ECORRUPT, "NUL byte");
	/* 129 user flags, one more than Cyrus can have. */
	n = snprintf(many, sizeof(many), "%sq\tid\n", MAGIC);
	for (i = 0; i < 129; i++)
		n += snprintf(many + n, sizeof(many) - (size_t)n, "f ");
	n += snprintf(many + n, sizeof(many) - (size_t)n, "\n\n");
	assert_fails(many, (size_t)n, IDS_ECORRUPT, "129 user flags");
}

static void
test_giant_file(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_header h;
	size_t len = IDS_HEADER_MAX_SIZE + 1;
	char *big = malloc(len);
	int dfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ids_opendir_abs(dir, &dfd), 0);
	memcpy(big, MAGIC, sizeof(MAGIC) - 1);
	memset(big + sizeof(MAGIC) - 1, 'x', len - (sizeof(MAGIC) - 1));
	assert_int_equal(ids_write_durable(dfd, IDS_HEADER_FILE, big, len, 0600), 0);
	ids_header_init(&h);
	assert_int_equal(ids_header_read(dfd, &h, NULL), IDS_ETOOLONG);
	/* Just under the cap, a giant line without a newline is truncation. */
	assert_int_equal(ids_write_durable(dfd, IDS_HEADER_FILE, big, len - 1, 0600), 0);
	assert_int_equal(ids_header_read(dfd, &h, NULL), IDS_ETRUNC);
	assert_int_equal(ids_header_read(dfd, &h, NULL), IDS_ETRUNC);
	assert_int_equal(unlinkat(dfd, IDS_HEADER_FILE, 0), 0);
	assert_int_equal(ids_header_read(dfd, &h, NULL), -ENOENT);
	free(big);
	close(dfd);
	unit_rmtree(dir);
}

static void
test_format_refusals(void **state)
{
	struct ids_header h;
	struct ids_buf b = IDS_BUF_INIT;

	(void)state;
	ids_header_init(&h);
	h.name = strdup("user.john");
	assert_int_equal(ids_header_format(&h, &b), IDS_EINVAL);
	h.uniqueid = strdup(ID);
	/* An 8-bit identifier would need a literal, which Cyrus cannot read here. */
	assert_int_equal(ids_acl_set(&h.acl, &h.nacl, "j\xc3\xbcrgen", "lr"), 0);
	ids_buf_reset(&b);
	assert_int_equal(ids_header_format(&h, &b), IDS_EINVAL);
	assert_non_null(strstr(ids_errmsg(IDS_EINVAL), "literal"));
	ids_acl_free(h.acl, h.nacl);
	h.acl = NULL;
	h.nacl = 0;
	ids_buf_reset(&b);
	assert_int_equal(ids_header_format(&h, &b), 0);
	assert_string_equal(b.s + IDS_HEADER_MAGIC_LEN, "%(N user.john I " ID ")\n");
	ids_header_release(&h);
	ids_buf_release(&b);
}

/* Whatever the writer writes, its reader reads: never a file over the cap. */
static void
test_format_size(void **state)
{
	struct ids_header h;
	struct ids_mbentry e;
	struct ids_buf b = IDS_BUF_INIT;
	char id[32];
	size_t i, cap = 0;

	(void)state;
	ids_header_init(&h);
	h.name = strdup("user.john");
	h.uniqueid = strdup(ID);
	/* 100,000 entries of 15 bytes: 1.5 MB. */
	for (i = 0; i < 100000; i++) {
		snprintf(id, sizeof(id), "u%09zu", i);
		assert_int_equal(ids_acl_append(&h.acl, &h.nacl, &cap, strdup(id), strdup("lrs")), 0);
	}
	assert_int_equal(ids_header_format(&h, &b), IDS_ETOOLONG);
	assert_non_null(strstr(ids_errmsg(IDS_ETOOLONG), "cyrus.header of user.john: "));
	assert_non_null(strstr(ids_errmsg(IDS_ETOOLONG), "(100000 ACL entries, 0 user flags, "
	    "0 history items), over the 1048576 bytes"));
	/* The door: the same entry, and one of a few entries renamed. */
	ids_mbentry_init(&e);
	e.name = h.name;
	e.uniqueid = h.uniqueid;
	strcpy(e.mbtype, "e");
	e.acl = h.acl;
	e.nacl = h.nacl;
	assert_int_equal(ids_header_check_entry(&e, NULL), IDS_ETOOLONG);
	assert_non_null(strstr(ids_errmsg(IDS_ETOOLONG), "user.john: its cyrus.header would be "));
	e.nacl = 3;
	assert_int_equal(ids_header_check_entry(&e, NULL), 0);
	assert_int_equal(ids_header_check_entry(&e, "user.john.New"), 0);
	/* Every entry is checked, the last one too, and named by its place. */
	free(h.acl[2].id);
	h.acl[2].id = strdup("x\\y");
	assert_int_equal(ids_header_check_entry(&e, "user.john.New"), IDS_EINVAL);
	assert_string_equal(ids_errmsg(IDS_EINVAL), "user.john.New: ACL entry 3, identifier "
	    "'x\\x5cy': '\\' at byte 1: a cyrus.header cannot hold it (it would need a literal)");
	h.nacl = 3;
	ids_buf_reset(&b);
	assert_int_equal(ids_header_format(&h, &b), IDS_EINVAL);
	assert_string_equal(ids_errmsg(IDS_EINVAL), "cyrus.header of user.john: ACL entry 3, "
	    "identifier 'x\\x5cy': '\\' at byte 1: a cyrus.header cannot hold it (it would need "
	    "a literal)");
	for (i = 3; i < 100000; i++) {
		free(h.acl[i].id);
		free(h.acl[i].rights);
	}
	/* 129 user flags: the reader takes 128; trailing unused bits are not written. */
	free(h.acl[2].id);
	h.acl[2].id = strdup("x");
	h.flags = calloc(140, sizeof(*h.flags));
	h.nflags = 140;
	for (i = 0; i < 129; i++) {
		snprintf(id, sizeof(id), "f%zu", i);
		h.flags[i] = strdup(id);
	}
	ids_buf_reset(&b);
	assert_int_equal(ids_header_format(&h, &b), IDS_EINVAL);
	assert_string_equal(ids_errmsg(IDS_EINVAL), "cyrus.header of user.john: 129 user flags, over 128");
	free(h.flags[128]);
	h.flags[128] = NULL;
	ids_buf_reset(&b);
	assert_int_equal(ids_header_format(&h, &b), 0);
	ids_header_release(&h);
	ids_buf_release(&b);
}

/* A repeated identifier, in either format: its first place, its last rights. */
static void
test_acl_repeated(void **state)
{
	struct ids_header h;

	(void)state;
	assert_int_equal(PARSE(&h, MAGIC "%(N user.john I " ID " A %(a lr b lrs a lrsw c l b x))\n"), 0);
	assert_int_equal(h.nacl, 3);
	assert_string_equal(h.acl[0].id, "a");
	assert_string_equal(h.acl[0].rights, "lrsw");
	assert_string_equal(h.acl[1].id, "b");
	assert_string_equal(h.acl[1].rights, "x");
	assert_string_equal(h.acl[2].id, "c");
	ids_header_release(&h);
	assert_int_equal(PARSE(&h, MAGIC "\t" ID "\n\nb\tl\ta\tlr\tb\tlrs\t\n"), 0);
	assert_int_equal(h.nacl, 2);
	assert_string_equal(h.acl[0].id, "b");
	assert_string_equal(h.acl[0].rights, "lrs");
	assert_string_equal(h.acl[1].id, "a");
	ids_header_release(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_magic),
		cmocka_unit_test(test_old_format),
		cmocka_unit_test(test_old_format_quirks),
		cmocka_unit_test(test_new_format),
		cmocka_unit_test(test_write_read_round_trip),
		cmocka_unit_test(test_durable_write),
		cmocka_unit_test(test_write_failpoint),
		cmocka_unit_test(test_broken_files),
		cmocka_unit_test(test_giant_file),
		cmocka_unit_test(test_format_refusals),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_acl_repeated),
	};

	return unit_run(tests);
}
