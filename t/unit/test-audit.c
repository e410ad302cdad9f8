/*
 * test-audit.c - the audit library: message files around the reader's
 * buffer size, findings through the callback, one or two threads, a
 * callback that stops the run, and the repair: a crash at every one of
 * its failpoints leaves each damaged message damaged or healed (never
 * half written), an injected fsync error heals nothing and leaves no
 * temporary file, a symlinked source is refused.
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
#include <unistd.h>
#include <cmocka.h>

#include "audit.h"
#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "layout.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "unit.h"
#include "fixture.h"

/* Sizes around the reader's 256 KiB buffer, and an empty message. */
static const size_t sizes[] = { 0, 1, 262143, 262144, 262145, 1048579 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* Spool a, and b a copy of it as a replica would hold. */
struct spools {
	char dir[64];
	struct ids_config cfg[2];
	char inbox[4096];	/* user.john's directory in spool a */
	char *msg[NSIZES];
};

struct seen {
	int n;
	int kinds[64];
	uint32_t uids[64];
	enum ids_audit_repair repair[64];
	int stop_after;
};

static int
collect(const struct ids_audit_finding *f, void *rock)
{
	struct seen *s = rock;

	if (s->n < 64) {
		s->kinds[s->n] = f->kind;
		s->uids[s->n] = f->uid;
		s->repair[s->n] = f->repair;
	}
	s->n++;
	return s->stop_after && s->n >= s->stop_after ? -ECANCELED : 0;
}

static void
write_conf(struct spools *f, int side)
{
	char root[128], file[160];

	snprintf(root, sizeof(root), "%s/%s", f->dir, side ? "b" : "a");
	snprintf(file, sizeof(file), "%s.conf", root);
	assert_int_equal(fixture_config(&f->cfg[side], root, 0, "", file), 0);
}

static void
make_spool(struct spools *f)
{
	struct ids_mboxlist *mbl;
	struct ids_mbentry e;
	struct ids_mbname mb;
	struct ids_location loc;
	uint32_t uid;
	size_t i, j;

	assert_int_equal(ids_mboxlist_open(&f->cfg[0], IDS_MBOXLIST_CREATE, &mbl), 0);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mailbox_create(mbl, "user.john", NULL, &e), 0);
	assert_int_equal(ids_mailbox_create(mbl, "user.john.Sent", NULL, NULL), 0);
	for (i = 0; i < NSIZES; i++) {
		f->msg[i] = malloc(sizes[i] + 1);
		for (j = 0; j < sizes[i]; j++)
			f->msg[i][j] = (char)('a' + (i * 7 + j * 13) % 26);
		assert_int_equal(ids_mailbox_deliver(mbl, "user.john", f->msg[i], sizes[i],
		    1700000000, &uid), 0);
		assert_int_equal(uid, i + 1);
	}
	assert_int_equal(ids_mailbox_deliver(mbl, "user.john.Sent", f->msg[1], sizes[1],
	    1700000000, &uid), 0);
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), 0);
	assert_true(ids_path_datadir(&f->cfg[0], &loc, f->inbox, sizeof(f->inbox)) > 0);
	ids_mbentry_release(&e);
	ids_mboxlist_close(mbl);
}

static int
setup(void **state)
{
	struct spools *f = calloc(1, sizeof(*f));
	char cmd[512];

	strcpy(f->dir, "/tmp/ids-audit-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	write_conf(f, 0);
	make_spool(f);
	/* The replica: a copy of spool and database, configured apart. */
	snprintf(cmd, sizeof(cmd), "cp -a %s/a %s/b", f->dir, f->dir);
	if (system(cmd) != 0)
		return -1;
	write_conf(f, 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct spools *f = *state;
	size_t i;

	for (i = 0; i < NSIZES; i++)
		free(f->msg[i]);
	ids_config_release(&f->cfg[0]);
	ids_config_release(&f->cfg[1]);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

/* Runs an audit of spool a (with b as the other copy when repair). */
static int
audit(struct spools *f, int jobs, int repair, struct seen *s, struct ids_audit_stats *st)
{
	struct ids_mboxlist *mbl, *other = NULL;
	struct ids_audit_opts o;
	int r;

	assert_int_equal(ids_mboxlist_open(&f->cfg[0], repair ? 0 : IDS_MBOXLIST_RDONLY, &mbl), 0);
	ids_audit_opts_init(&o);
	o.jobs = jobs;
	if (repair) {
		assert_int_equal(ids_mboxlist_open(&f->cfg[1], IDS_MBOXLIST_RDONLY, &other), 0);
		o.other = other;
		o.repair = 1;
	}
	r = ids_audit_run(mbl, &o, collect, s, st);
	ids_mboxlist_close(mbl);
	if (other)
		ids_mboxlist_close(other);
	return r;
}

static void
file_path(const struct spools *f, uint32_t uid, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%u.", f->inbox, uid);
}

/* Flips one byte of message uid at offset off. */
static void
flip(const struct spools *f, uint32_t uid, off_t off)
{
	char path[4200], c;
	int fd;

	file_path(f, uid, path, sizeof(path));
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* 1 if message uid has exactly its original bytes. */
static int
intact(const struct spools *f, uint32_t uid)
{
	char path[4200], *buf;
	size_t len;
	int dfd, ok;

	file_path(f, uid, path, sizeof(path));
	if (ids_opendir_abs(f->inbox, &dfd) < 0)
		return 0;
	snprintf(path, sizeof(path), "%u.", uid);
	ok = ids_read_file(dfd, path, 1 << 21, &buf, &len) == 0;
	close(dfd);
	if (!ok)
		return 0;
	ok = len == sizes[uid - 1] && memcmp(buf, f->msg[uid - 1], len) == 0;
	free(buf);
	return ok;
}

static void
test_sizes_clean(void **state)
{
	struct spools *f = *state;
	struct ids_audit_stats st;
	struct seen s;
	unsigned long long total = 0;
	size_t i;
	int jobs;

	for (i = 0; i < NSIZES; i++)
		total += sizes[i];
	for (jobs = 1; jobs <= 2; jobs++) {
		memset(&s, 0, sizeof(s));
		assert_int_equal(audit(f, jobs, 0, &s, &st), 0);
		assert_int_equal(s.n, 0);
		assert_int_equal(st.folders, 2);
		assert_int_equal(st.messages, NSIZES + 1);
		assert_int_equal(st.bytes, total + sizes[1]);
	}
}

static void
test_corrupt_bytes(void **state)
{
	struct spools *f = *state;
	struct seen s;

	flip(f, 6, (off_t)sizes[5] - 1);	/* the last byte of the largest */
	flip(f, 4, 0);				/* the first byte at the buffer size */
	memset(&s, 0, sizeof(s));
	assert_int_equal(audit(f, 2, 0, &s, NULL), 2);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.kinds[0], IDS_AUDIT_FILE_GUID);
	assert_int_equal(s.uids[0], 4);
	assert_int_equal(s.kinds[1], IDS_AUDIT_FILE_GUID);
	assert_int_equal(s.uids[1], 6);
}

static void
test_callback_stops(void **state)
{
	struct spools *f = *state;
	struct seen s;

	flip(f, 2, 0);
	flip(f, 3, 0);
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(audit(f, 2, 0, &s, NULL), -ECANCELED);
	assert_int_equal(s.n, 1);
}

/* Damage for the repair: uid 2 missing, uid 6 corrupt, uid 4 truncated. */
static void
damage(const struct spools *f)
{
	char path[4200];

	file_path(f, 2, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	flip(f, 6, 1000);
	file_path(f, 4, path, sizeof(path));
	assert_int_equal(truncate(path, 100), 0);
}

static void
test_repair_crash_everywhere(void **state)
{
	struct spools *f = *state;
	struct seen s;
	char path[4200];
	int k, status, crashed = 0;
	pid_t pid;

	damage(f);
	for (k = 1; k < 200; k++) {
		if ((pid = fork()) == 0) {
			char spec[32];

			snprintf(spec, sizeof(spec), "%d", k);
			setenv("IDS_FAILPOINT_CRASH", spec, 1);
			ids_failpoint_reset();
			memset(&s, 0, sizeof(s));
			_exit(audit(f, 1, 1, &s, NULL) == 0 ? 0 : 1);
		}
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* Each damaged message is still damaged or whole, never half. */
		file_path(f, 2, path, sizeof(path));
		assert_true(access(path, F_OK) != 0 || intact(f, 2));
		file_path(f, 4, path, sizeof(path));
		assert_true(intact(f, 4) || (access(path, F_OK) == 0 && !intact(f, 4)));
		assert_true(intact(f, 1) && intact(f, 3) && intact(f, 5));
		if (WIFEXITED(status)) {
			assert_int_equal(WEXITSTATUS(status), 0);
			break;
		}
		assert_true(WIFSIGNALED(status));
		crashed++;
	}
	assert_true(crashed >= 6);	/* create, write, fsync, link/rename, ... */
	assert_true(intact(f, 2) && intact(f, 4) && intact(f, 6));
	memset(&s, 0, sizeof(s));
	assert_int_equal(audit(f, 2, 0, &s, NULL), 0);
}

static void
test_repair_fsync_error(void **state)
{
	struct spools *f = *state;
	struct seen s;
	char path[4200];
	int i;

	damage(f);
	setenv("IDS_FAILPOINT", "audit.repair_fsync:EIO", 1);
	ids_failpoint_reset();
	memset(&s, 0, sizeof(s));
	assert_int_equal(audit(f, 1, 1, &s, NULL), 3);
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	for (i = 0; i < s.n; i++)
		assert_int_equal(s.repair[i], IDS_AUDIT_REPAIR_FAILED);
	file_path(f, 2, path, sizeof(path));
	assert_true(access(path, F_OK) != 0);
	assert_false(intact(f, 4) || intact(f, 6));
	snprintf(path, sizeof(path), "%s/6.repair.NEW", f->inbox);
	assert_true(access(path, F_OK) != 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(audit(f, 1, 1, &s, NULL), 0);	/* and heals once it can */
	assert_true(intact(f, 2) && intact(f, 4) && intact(f, 6));
}

static void
test_repair_refuses_symlinked_source(void **state)
{
	struct spools *f = *state;
	struct seen s;
	char src[4200], path[4200];

	file_path(f, 3, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	/* The replica's only copy of uid 3 (same relative path) becomes a symlink. */
	snprintf(src, sizeof(src), "%s/b%s", f->dir, f->inbox + strlen(f->dir) + 2);
	snprintf(src + strlen(src), sizeof(src) - strlen(src), "/3.");
	assert_int_equal(unlink(src), 0);
	assert_int_equal(symlink("/etc/hostname", src), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(audit(f, 1, 1, &s, NULL), 1);
	assert_int_equal(s.kinds[0], IDS_AUDIT_FILE_MISSING);
	assert_int_equal(s.repair[0], IDS_AUDIT_REPAIR_FAILED);
	assert_true(access(path, F_OK) != 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sizes_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repair_crash_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repair_fsync_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repair_refuses_symlinked_source, setup, teardown),
	};

	return unit_run(tests);
}
