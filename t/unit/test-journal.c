/*
 * test-journal.c - the change journal of journal.h and the failure
 * records of rolling.h: entries read back as written (odd names
 * included), positions across a compaction, a torn and a damaged
 * entry skipped, the channels of sync_log_channels, the fence refusing
 * an exclusive mailbox lock, failure records (found by their key, the
 * older form read) and the backoff, a user's entries.
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
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "lock.h"
#include "journal.h"
#include "sync/rolling.h"
#include "unit.h"
#include "fixture.h"

#define ID "2d3c1d9e-5f0a-4c1b-9a7e-0123456789ab"

static int
setup(void **state)
{
	return fixture_setup(state, "journal", 0, "sync_log: 1\nsync_log_channels: a \"\" b\n");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

static void
append_one(struct fixture *f, const char *id, const char *name)
{
	struct ids_buf b = IDS_BUF_INIT;

	assert_int_equal(ids_journal_format(&b, id, name), 0);
	assert_int_equal(ids_journal_append(&f->cfg, b.s, b.len), 0);
	ids_buf_release(&b);
}

static void
raw_append(struct fixture *f, const char *text)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/sync/journal", f->dir);
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
test_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct ids_journal_batch b;
	static const char *const names[] = { "user.bob.My Folder", "user.bob.back\\slash",
	    "user.bob.tab\there", "user.bob.caf\xc3\xa9", "-" };
	size_t i;

	for (i = 0; i < 5; i++)
		append_one(f, ID, names[i]);
	append_one(f, NULL, "user.carol");
	append_one(f, ID, NULL);
	assert_int_equal(ids_journal_read(&f->cfg, 0, 0, &b), 0);
	assert_int_equal(b.n, 7);
	assert_int_equal(b.torn, 0);
	for (i = 0; i < 5; i++) {
		assert_string_equal(b.v[i].uniqueid, ID);
		assert_string_equal(b.v[i].name, names[i]);
	}
	assert_null(b.v[5].uniqueid);
	assert_string_equal(b.v[5].name, "user.carol");
	assert_null(b.v[6].name);
	ids_journal_batch_release(&b);

	/* at most 2, then on from where it stopped */
	assert_int_equal(ids_journal_read(&f->cfg, 0, 2, &b), 0);
	assert_int_equal(b.n, 2);
	{
		uint64_t mid = b.end;

		ids_journal_batch_release(&b);
		assert_int_equal(ids_journal_read(&f->cfg, mid, 0, &b), 0);
		assert_int_equal(b.n, 5);
		assert_string_equal(b.v[0].name, names[2]);
		ids_journal_batch_release(&b);
	}
}

static void
test_torn_and_damaged(void **state)
{
	struct fixture *f = *state;
	struct ids_journal_batch b;

	append_one(f, ID, "user.a");
	raw_append(f, "00000000 " ID " user.damaged\n");	/* a CRC that does not match */
	raw_append(f, "0badc0de " ID " user.torn");		/* no newline: torn */
	assert_int_equal(ids_journal_read(&f->cfg, 0, 0, &b), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.torn, 1);
	ids_journal_batch_release(&b);
	/* the next writer ends the torn line first: it is skipped, its own read */
	append_one(f, ID, "user.b");
	assert_int_equal(ids_journal_read(&f->cfg, 0, 0, &b), 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(b.torn, 2);
	assert_string_equal(b.v[1].name, "user.b");
	ids_journal_batch_release(&b);
}

static void
test_channels_cursor_compact(void **state)
{
	struct fixture *f = *state;
	struct ids_journal_batch b;
	struct ids_sync_channel_status st;
	char **ch;
	size_t n, i;
	uint64_t pos, base, end;
	int64_t t;

	assert_int_equal(ids_journal_channels(&f->cfg, &ch, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ch[0], "a");
	assert_string_equal(ch[1], "");
	assert_string_equal(ch[2], "b");
	ids_journal_channels_free(ch, n);
	assert_int_equal(ids_journal_channel_check(&f->cfg, "b"), 0);
	assert_int_equal(ids_journal_channel_check(&f->cfg, "c"), IDS_ECONFIG);

	/* enough entries to pass the compaction threshold */
	for (i = 0; i < 1200; i++)
		append_one(f, ID, "user.bob.Some Folder Name");
	assert_int_equal(ids_journal_end(&f->cfg, &base, &end), 0);
	assert_int_equal(base, 0);
	assert_int_equal(ids_journal_cursor_write(&f->cfg, "a", end, 1234), 0);
	assert_int_equal(ids_journal_cursor_write(&f->cfg, "", end, 1234), 0);
	/* channel b is behind: nothing is removed */
	assert_int_equal(ids_journal_compact(&f->cfg), 0);
	assert_int_equal(ids_sync_channel_status(&f->cfg, "b", &st), 0);
	assert_int_equal(st.lag, 1200);
	ids_sync_channel_status_release(&st);
	assert_int_equal(ids_journal_cursor_write(&f->cfg, "b", end, 1235), 0);
	assert_int_equal(ids_journal_compact(&f->cfg), 0);
	assert_int_equal(ids_journal_end(&f->cfg, &base, &pos), 0);
	assert_int_equal(base, end);
	assert_int_equal(pos, end);
	/* positions go on counting after it */
	append_one(f, ID, "user.after");
	assert_int_equal(ids_journal_cursor_read(&f->cfg, "b", &pos, &t), 0);
	assert_int_equal(t, 1235);
	assert_int_equal(ids_journal_read(&f->cfg, pos, 0, &b), 0);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.v[0].name, "user.after");
	assert_true(b.end > end);
	ids_journal_batch_release(&b);
	assert_int_equal(ids_sync_channel_status(&f->cfg, "a", &st), 0);
	assert_int_equal(st.lag, 1);
	assert_int_equal(st.last_ok, 1234);
	ids_sync_channel_status_release(&st);
}

static void
test_fence(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *l;
	char why[128];
	int fd;

	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, 0, 0, &l), 0);
	ids_unlock(l);
	assert_int_equal(ids_journal_fence(&f->cfg, "test fence", &fd), 0);
	assert_int_equal(ids_journal_fenced(&f->cfg, why, sizeof(why)), 1);
	assert_string_equal(why, "test fence");
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, 0, 0, &l), IDS_EFENCED);
	assert_non_null(strstr(ids_errmsg(IDS_EFENCED), "test fence"));
	/* a replica's applies too, though without sync_log_chain it journals none */
	ids_journal_set_replica(1);
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, 0, 0, &l), IDS_EFENCED);
	ids_journal_set_replica(0);
	/* readers and recovery are not fenced */
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, IDS_LOCK_SHARED, 0, &l), 0);
	ids_unlock(l);
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, IDS_LOCK_NOJOURNAL, 0, &l), 0);
	ids_unlock(l);
	close(fd);
	/* the file alone still fences */
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, 0, 0, &l), IDS_EFENCED);
	assert_int_equal(ids_journal_unfence(&f->cfg), 0);
	assert_int_equal(ids_journal_fenced(&f->cfg, why, sizeof(why)), 0);
	assert_int_equal(ids_lock_mailbox(&f->cfg, ID, 0, 0, &l), 0);
	ids_unlock(l);
}

static void
test_failures(void **state)
{
	struct fixture *f = *state;
	struct ids_sync_failures x = { NULL, 0 }, y;
	char path[600];
	int fd;

	assert_true(ids_sync_backoff(1, 60, 1) == 1);
	assert_true(ids_sync_backoff(1, 60, 3) == 4);
	assert_true(ids_sync_backoff(1, 60, 30) == 60);
	assert_int_equal(ids_sync_failure_note(&x, ID, "user.bob.A B", IDS_SYNC_FAIL_REFUSED,
	    "NO\tbecause\\", 100, 1, 60), 0);
	/* the same folder under another name, another code: the same record, by its key */
	assert_int_equal(ids_sync_failure_note(&x, ID, "user.bob.Renamed", IDS_SYNC_FAIL_LOCAL,
	    "NO again", 101, 1, 60), 0);
	assert_int_equal(ids_sync_failure_note(&x, "@carol", "carol", IDS_SYNC_FAIL_META, "x",
	    102, 1, 60), 0);
	assert_int_equal(x.n, 2);
	assert_int_equal(x.v[0].attempts, 2);
	assert_int_equal(x.v[0].first, 100);
	assert_int_equal(x.v[0].next, 103);
	assert_string_equal(x.v[0].name, "user.bob.Renamed");
	assert_int_equal(ids_sync_failures_write(&f->cfg, "a", &x), 0);
	assert_int_equal(ids_sync_failures_read(&f->cfg, "a", &y), 0);
	assert_int_equal(y.n, 2);
	assert_string_equal(y.v[0].key, ID);
	assert_string_equal(y.v[0].code, IDS_SYNC_FAIL_LOCAL);
	assert_string_equal(y.v[0].name, "user.bob.Renamed");
	assert_string_equal(y.v[0].reason, "NO again");
	assert_int_equal(y.v[0].last, 101);
	assert_null(ids_sync_failure_find(&y, "user.bob.Renamed"));	/* never by a name or text */
	assert_int_equal(ids_sync_failure_drop(&y, ID), 1);
	assert_int_equal(ids_sync_failure_drop(&y, ID), 0);
	assert_string_equal(y.v[0].key, "@carol");
	assert_string_equal(y.v[0].code, IDS_SYNC_FAIL_META);
	ids_sync_failures_release(&y);
	free(x.v[0].reason);
	x.v[0].reason = strdup("tab\there\\ and \x01");
	assert_int_equal(ids_sync_failures_write(&f->cfg, "a", &x), 0);
	assert_int_equal(ids_sync_failures_read(&f->cfg, "a", &y), 0);
	assert_string_equal(y.v[0].reason, "tab\there\\ and \x01");
	ids_sync_failures_release(&y);
	ids_sync_failures_release(&x);
	/* a record of the older form: keyed by its name, code "refused" */
	snprintf(path, sizeof(path), "%s/sync/a/failures", f->dir);
	assert_true((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
	assert_int_equal(write(fd, "user.old\t3\t1\t2\t9\twhy\n", 21), 21);
	close(fd);
	assert_int_equal(ids_sync_failures_read(&f->cfg, "a", &y), 0);
	assert_int_equal(y.n, 1);
	assert_string_equal(y.v[0].key, "=user.old");
	assert_string_equal(y.v[0].code, IDS_SYNC_FAIL_REFUSED);
	assert_string_equal(y.v[0].name, "user.old");
	assert_int_equal(y.v[0].attempts, 3);
	assert_int_equal(y.v[0].next, 9);
	ids_sync_failures_release(&y);
}

static void
test_user_entries(void **state)
{
	struct fixture *f = *state;
	struct ids_journal_batch b;
	char why[64];
	int wfd, fd;

	append_one(f, ID, "user.a");
	/* the writers lock alone (a quota, an annotation), then a user's entry */
	assert_int_equal(ids_journal_writer_lock(&f->cfg, &wfd), 0);
	assert_true(wfd >= 0);
	assert_int_equal(ids_journal_append_user(&f->cfg, "bob@example.com"), 0);
	close(wfd);
	assert_int_equal(ids_journal_read(&f->cfg, 0, 0, &b), 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(b.torn, 0);
	assert_false(b.v[0].user);
	assert_true(b.v[1].user);
	assert_null(b.v[1].uniqueid);
	assert_string_equal(b.v[1].name, "bob@example.com");
	ids_journal_batch_release(&b);
	/* fenced: refused, nothing written */
	assert_int_equal(ids_journal_fence(&f->cfg, "test fence", &fd), 0);
	close(fd);
	assert_int_equal(ids_journal_writer_lock(&f->cfg, &wfd), IDS_EFENCED);
	assert_int_equal(ids_journal_fence_check(&f->cfg), IDS_EFENCED);
	assert_int_equal(ids_journal_fenced(&f->cfg, why, sizeof(why)), 1);
	assert_int_equal(ids_journal_unfence(&f->cfg), 0);
	assert_int_equal(ids_journal_fence_check(&f->cfg), 0);
	assert_int_equal(ids_journal_read(&f->cfg, 0, 0, &b), 0);
	assert_int_equal(b.n, 2);
	ids_journal_batch_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_and_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channels_cursor_compact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_entries, setup, teardown),
	};

	return unit_run(tests);
}
