/*
 * test-mailbox.c - create, deliver, delete, and their crash recovery.
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

#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "layout.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "unit.h"
#include "fixture.h"

static int
setup(void **state)
{
	return fixture_setup(state, "mbox", 0, "");
}

static int
setup_meta(void **state)
{
	return fixture_setup(state, "mbox", FIXTURE_META, "metapartition_files: header index\n");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

static void
path_of(struct fixture *f, const struct ids_mbentry *e, char *buf, size_t size)
{
	struct ids_mbname mb;
	struct ids_location loc;

	assert_int_equal(ids_location_from_entry(e, &mb, &loc), 0);
	assert_true(ids_path_datadir(&f->cfg, &loc, buf, size) > 0);
}

static void
test_create_deliver(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e;
	struct ids_header h;
	struct ids_index *idx;
	struct ids_index_record rec;
	uint8_t guid[IDS_GUID_LEN];
	char dir[512], path[600];
	const char *msg = "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n";
	uint32_t uid;
	int dfd;

	ids_mbentry_init(&e);
	assert_int_equal(ids_mailbox_create(f->mbl, "example.com!user.john^doe.Sent", NULL, &e), 0);
	assert_int_equal(ids_uniqueid_check(e.uniqueid), 0);
	assert_int_equal(strlen(e.uniqueid), 36);
	assert_false(ids_mbentry_is_legacy(&e));
	path_of(f, &e, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/spool/j/user/john.doe@example.com/%s", f->dir, e.uniqueid);
	assert_string_equal(dir, path);
	assert_int_equal(ids_mailbox_create(f->mbl, "example.com!user.john^doe.Sent", NULL, NULL),
	    IDS_EEXIST);
	assert_int_equal(ids_mailbox_deliver(f->mbl, "example.com!user.john^doe.Sent", msg,
	    strlen(msg), 1795000000, &uid), 0);
	assert_int_equal(uid, 1);
	assert_int_equal(ids_mailbox_deliver(f->mbl, "example.com!user.john^doe.Sent", msg,
	    strlen(msg), 1795000001, &uid), 0);
	assert_int_equal(uid, 2);
	assert_int_equal(ids_opendir_abs(dir, &dfd), 0);
	ids_header_init(&h);
	assert_int_equal(ids_header_read(dfd, &h, NULL), 0);
	assert_string_equal(h.name, "example.com!user.john^doe.Sent");
	assert_string_equal(h.uniqueid, e.uniqueid);
	ids_header_release(&h);
	assert_int_equal(ids_index_open(dfd, &idx), 0);
	assert_int_equal(ids_index_header(idx)->num_records, 2);
	assert_int_equal(ids_index_header(idx)->uidvalidity, e.uidvalidity);
	assert_int_equal(ids_index_record(idx, 1, &rec), 0);
	assert_int_equal(rec.uid, 2);
	assert_int_equal(rec.size, strlen(msg));
	assert_int_equal(ids_guid_file(dfd, "2.", guid), 0);
	assert_memory_equal(guid, rec.guid, IDS_GUID_LEN);
	ids_index_free(idx);
	close(dfd);
	ids_mbentry_release(&e);
}

static void
test_delete_and_recreate(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e, e2;
	char dir[512];
	uint32_t uid;
	struct stat st;

	ids_mbentry_init(&e);
	ids_mbentry_init(&e2);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.bob.Trash", NULL, &e), 0);
	assert_int_equal(ids_mailbox_deliver(f->mbl, "user.bob.Trash", "x\n\ny\n", 5, 1, &uid), 0);
	path_of(f, &e, dir, sizeof(dir));
	assert_int_equal(ids_mailbox_delete(f->mbl, "user.bob.Trash"), 0);
	assert_int_equal(stat(dir, &st), -1);
	assert_int_equal(ids_mailbox_deliver(f->mbl, "user.bob.Trash", "x", 1, 1, &uid),
	    IDS_ENOTFOUND);
	/* Created again over the tombstone: a new id, a higher UIDVALIDITY. */
	assert_int_equal(ids_mailbox_create(f->mbl, "user.bob.Trash", NULL, &e2), 0);
	assert_string_not_equal(e.uniqueid, e2.uniqueid);
	assert_true(e2.uidvalidity > e.uidvalidity);
	ids_mbentry_release(&e);
	ids_mbentry_release(&e2);
	assert_int_equal(ids_mailbox_delete(f->mbl, "user.nobody"), IDS_ENOTFOUND);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.bad..name", NULL, NULL), IDS_EBADNAME);
}

static void
test_metapartition(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e;
	struct ids_mbname mb;
	struct ids_location loc;
	char meta[512], data[512], path[600];
	uint32_t uid;
	struct stat st;

	ids_mbentry_init(&e);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.meta", NULL, &e), 0);
	assert_int_equal(ids_mailbox_deliver(f->mbl, "user.meta", "a\n\nb\n", 5, 1, &uid), 0);
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), 0);
	assert_true(ids_path_metadir(&f->cfg, &loc, IDS_META_INDEX, meta, sizeof(meta)) > 0);
	assert_true(ids_path_datadir(&f->cfg, &loc, data, sizeof(data)) > 0);
	assert_string_not_equal(meta, data);
	snprintf(path, sizeof(path), "%s/cyrus.index", meta);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/cyrus.index", data);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/1.", data);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(ids_mailbox_delete(f->mbl, "user.meta"), 0);
	assert_int_equal(stat(meta, &st), -1);
	assert_int_equal(stat(data, &st), -1);
	ids_mbentry_release(&e);
}

struct intents {
	int n;
	char id[64];
	struct ids_intent in;
};

static int
one_intent(const char *id, const struct ids_intent *in, void *rock)
{
	struct intents *s = rock;

	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", id);
	strcpy(s->in.op, in->op);
	ids_intent_set(&s->in.partition, in->partition);
	ids_intent_set(&s->in.dst, in->dst);
	ids_intent_set(&s->in.name, in->name);
	return 0;
}

static int
list_intents(struct ids_txn *txn, void *rock)
{
	return ids_intent_foreach(txn, one_intent, rock);
}

/*
 * Crash a create at each of its failpoints in a child; afterwards the
 * mailbox either exists completely or not at all, and recovery from the
 * intent leaves no directory behind.
 */
static void
test_create_crash_recovery(void **state)
{
	struct fixture *f = *state;
	int k, status, done = 0;

	for (k = 1; k < 40 && !done; k++) {
		struct intents s = { 0 };
		struct ids_mbentry e;
		pid_t pid = fork();

		if (pid == 0) {
			struct ids_mboxlist *mbl;
			char env[16];

			snprintf(env, sizeof(env), "%d", k);
			setenv("IDS_FAILPOINT_CRASH", env, 1);
			ids_failpoint_reset();
			if (ids_mboxlist_open(&f->cfg, 0, &mbl) < 0)
				_exit(2);
			_exit(ids_mailbox_create(mbl, "user.crash", NULL, NULL) == 0 ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		done = WIFEXITED(status);
		if (done)
			assert_int_equal(WEXITSTATUS(status), 0);
		ids_intent_init(&s.in);
		assert_int_equal(ids_mboxlist_read(f->mbl, list_intents, &s), 0);
		ids_mbentry_init(&e);
		if (ids_mboxlist_lookup(f->mbl, "user.crash", &e) == 0) {
			char dir[512];
			struct stat st;

			/* Committed: complete, and no intent left. */
			assert_int_equal(s.n, 0);
			path_of(f, &e, dir, sizeof(dir));
			strcat(dir, "/cyrus.index");
			assert_int_equal(stat(dir, &st), 0);
			if (!done)
				break;
		} else if (s.n == 1) {
			assert_string_equal(s.in.op, "create");
			assert_int_equal(ids_mailbox_recover(f->mbl, s.id, &s.in), 0);
			s.n = 0;
			assert_int_equal(ids_mboxlist_read(f->mbl, list_intents, &s), 0);
			assert_int_equal(s.n, 0);
		}
		ids_mbentry_release(&e);
		ids_intent_release(&s.in);
	}
	assert_true(k > 3);
}

/*
 * A create (a replica's APPLY MAILBOX comes through ids_mailbox_create_as)
 * whose ACL no cyrus.header could hold is refused before any intent.
 */
static void
test_create_refused_acl(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry want, got;
	struct intents seen;
	size_t cap = 0;

	ids_mbentry_init(&want);
	want.name = strdup("user.acl");
	want.uniqueid = strdup("3a1f9c2e-8d4b-4f6a-9b1c-2e7d5a0c4f18");
	want.partition = strdup("default");
	want.uidvalidity = 7;
	assert_int_equal(ids_acl_append(&want.acl, &want.nacl, &cap, strdup("acl"), strdup("lrs")), 0);
	assert_int_equal(ids_acl_append(&want.acl, &want.nacl, &cap, strdup("j\xc3\xbcrgen"),
	    strdup("lr")), 0);
	ids_mbentry_init(&got);
	assert_int_equal(ids_mailbox_create_as(f->mbl, &want, &got), IDS_EINVAL);
	assert_string_equal(ids_errmsg(IDS_EINVAL), "user.acl: ACL entry 2, identifier "
	    "'j\\xc3\\xbcrgen': 8-bit byte 0xc3 at byte 1: a cyrus.header cannot hold it "
	    "(it would need a literal)");
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.acl", &got), IDS_ENOTFOUND);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(ids_mboxlist_read(f->mbl, list_intents, &seen), 0);
	assert_int_equal(seen.n, 0);
	ids_intent_release(&seen.in);
	ids_mbentry_release(&got);
	ids_mbentry_release(&want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_deliver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_and_recreate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metapartition, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_create_crash_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refused_acl, setup, teardown),
	};

	return unit_run(tests);
}
