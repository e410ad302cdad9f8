/*
 * test-mboxlist.c - mailboxes.db on LMDB, and the lock protocol.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "lock.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "unit.h"
#include "fixture.h"

static int
setup(void **state)
{
	return fixture_setup(state, "mbl", FIXTURE_FLAT, "");
}

static int
setup_small_map(void **state)
{
	return fixture_setup(state, "mbl", FIXTURE_FLAT, "mboxlist_mapsize: 65536\n");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

static void
entry(struct ids_mbentry *e, const char *name, const char *id, const char *type)
{
	ids_mbentry_init(e);
	e->name = strdup(name);
	e->uniqueid = strdup(id);
	e->partition = strdup("default");
	strcpy(e->mbtype, type);
	e->uidvalidity = 1795000050;
	e->mtime = 1795000100;
	ids_acl_set(&e->acl, &e->nacl, "john", "lrswipkxtecdan");
}

static int
put_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_put(txn, rock);
}

static int
put(struct fixture *f, const char *name, const char *id, const char *type)
{
	struct ids_mbentry e;
	int r;

	entry(&e, name, id, type);
	r = ids_mboxlist_write(f->mbl, put_txn, &e);
	ids_mbentry_release(&e);
	return r;
}

static void
test_missing_db(void **state)
{
	struct fixture *f = *state;
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	char text[256];

	snprintf(text, sizeof(text), "configdirectory: %s/nonexistent\npartition-default: /tmp\n",
	    f->dir);
	assert_int_equal(ids_config_parse(&cfg, text, strlen(text), "x.conf"), 0);
	assert_int_equal(ids_mboxlist_open(&cfg, 0, &mbl), IDS_ENOTFOUND);
	ids_config_release(&cfg);
}

/*
 * A trim that cannot open mailboxes.db again leaves a handle whose
 * transactions fail with the reason, and work again once it opens.
 */
static void
test_trim_reopen_fails(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e;
	char db[128], away[140];

	assert_int_equal(put(f, "user.john", "k2v9d0x7qmz1w3e8r5t6y4u2", "e"), 0);
	snprintf(db, sizeof(db), "%s/mailboxes.db", f->dir);
	snprintf(away, sizeof(away), "%s.away", db);
	assert_int_equal(rename(db, away), 0);
	assert_int_equal(ids_mboxlist_trim(f->mbl), IDS_ENOTFOUND);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.john", &e), IDS_ENOTFOUND);
	assert_non_null(strstr(ids_errmsg(IDS_ENOTFOUND), "no mailboxes.db"));
	assert_int_equal(put(f, "user.bob", "b2v9d0x7qmz1w3e8r5t6y4u2", "e"), IDS_ENOTFOUND);
	assert_int_equal(rename(away, db), 0);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.john", &e), 0);
	assert_string_equal(e.uniqueid, "k2v9d0x7qmz1w3e8r5t6y4u2");
	ids_mbentry_release(&e);
	assert_int_equal(ids_mboxlist_trim(f->mbl), 0);
}

static void
test_put_lookup(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e;

	assert_int_equal(put(f, "example.com!user.john^doe.Sent", "k2v9d0x7qmz1w3e8r5t6y4u2", "el"), 0);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "example.com!user.john^doe.Sent", &e), 0);
	assert_string_equal(e.uniqueid, "k2v9d0x7qmz1w3e8r5t6y4u2");
	assert_string_equal(e.mbtype, "el");
	assert_int_equal(e.uidvalidity, 1795000050);
	assert_int_equal(e.nacl, 1);
	ids_mbentry_release(&e);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, "k2v9d0x7qmz1w3e8r5t6y4u2", &e), 0);
	assert_string_equal(e.name, "example.com!user.john^doe.Sent");
	ids_mbentry_release(&e);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.nobody", &e), IDS_ENOTFOUND);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, "0123456789abcdef", &e), IDS_ENOTFOUND);
	ids_mbentry_release(&e);
}

static void
test_duplicate_uniqueid(void **state)
{
	struct fixture *f = *state;
	int r;

	assert_int_equal(put(f, "user.a", "0123456789abcdef", "e"), 0);
	r = put(f, "user.b", "0123456789abcdef", "e");
	assert_int_equal(r, IDS_EDUPID);
	assert_non_null(strstr(ids_errmsg(r), "user.a"));
	assert_non_null(strstr(ids_errmsg(r), "user.b"));
	/* A tombstone may share the uniqueid of the mailbox that left it. */
	assert_int_equal(put(f, "user.c", "0123456789abcdef", "ed"), 0);
	/* A live mailbox is not replaced by one with another uniqueid. */
	assert_int_equal(put(f, "user.a", "fedcba9876543210", "e"), IDS_EEXIST);
}

struct rename {
	const char *from, *to;
};

/* A rename as the engine does it: tombstone at the old name, history. */
static int
rename_txn(struct ids_txn *txn, void *rock)
{
	struct rename *rn = rock;
	struct ids_mbentry e;
	char *old;
	int r;

	ids_mbentry_init(&e);
	if ((r = ids_txn_lookup_name(txn, rn->from, &e)) < 0)
		return r;
	ids_mbentry_release(&e);
	ids_mbentry_init(&e);
	if ((r = ids_txn_lookup_id(txn, "0123456789abcdef", &e)) < 0 ||
	    (r = ids_mbentry_push_history(&e, 1795009999)) < 0)
		goto out;
	old = e.name;
	e.name = NULL;
	/* The old name becomes a tombstone first, then the new one is live. */
	ids_mbtype_set(e.mbtype, IDS_MBFLAG_DELETED, 1);
	free(e.name);
	e.name = old;
	old = NULL;
	if ((r = ids_txn_put(txn, &e)) < 0)
		goto out;
	free(e.name);
	e.name = strdup(rn->to);
	ids_mbtype_set(e.mbtype, IDS_MBFLAG_DELETED, 0);
	r = ids_txn_put(txn, &e);
out:
	ids_mbentry_release(&e);
	return r;
}

static void
test_history_survives(void **state)
{
	struct fixture *f = *state;
	struct rename r1 = { "user.a.X", "user.a.Y" }, r2 = { "user.a.Y", "user.a.Z" };
	struct ids_mbentry e;

	assert_int_equal(put(f, "user.a.X", "0123456789abcdef", "e"), 0);
	assert_int_equal(ids_mboxlist_write(f->mbl, rename_txn, &r1), 0);
	assert_int_equal(ids_mboxlist_write(f->mbl, rename_txn, &r2), 0);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, "0123456789abcdef", &e), 0);
	assert_string_equal(e.name, "user.a.Z");
	assert_int_equal(e.nhistory, 2);
	assert_string_equal(e.history[0].name, "user.a.Y");
	assert_string_equal(e.history[1].name, "user.a.X");
	ids_mbentry_release(&e);
	/* A put without history (an N-only view) keeps the stored history. */
	assert_int_equal(put(f, "user.a.Z", "0123456789abcdef", "e"), 0);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, "0123456789abcdef", &e), 0);
	assert_int_equal(e.nhistory, 2);
	ids_mbentry_release(&e);
	/* Both old names are tombstones. */
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.a.X", &e), 0);
	assert_true(ids_mbentry_is_tombstone(&e));
	ids_mbentry_release(&e);
}

struct collect {
	char names[32][64];
	int n;
};

static int
collect_fn(const struct ids_mbentry *e, void *rock)
{
	struct collect *c = rock;

	if (c->n < 32)
		snprintf(c->names[c->n++], 64, "%s", e->name);
	return 0;
}

static int
foreach_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, "user.john", collect_fn, rock);
}

static void
test_foreach_subtree(void **state)
{
	struct fixture *f = *state;
	struct collect c = { .n = 0 };

	assert_int_equal(put(f, "user.johnny", "00000000000000a1", "e"), 0);
	assert_int_equal(put(f, "user.john.Sent.2019", "00000000000000a2", "e"), 0);
	assert_int_equal(put(f, "user.john", "00000000000000a3", "e"), 0);
	assert_int_equal(put(f, "user.john.Sent", "00000000000000a4", "e"), 0);
	assert_int_equal(put(f, "user.john.Archive", "00000000000000a5", "e"), 0);
	assert_int_equal(put(f, "user.jo", "00000000000000a6", "e"), 0);
	assert_int_equal(ids_mboxlist_read(f->mbl, foreach_txn, &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.names[0], "user.john");
	assert_string_equal(c.names[1], "user.john.Archive");
	assert_string_equal(c.names[2], "user.john.Sent");
	assert_string_equal(c.names[3], "user.john.Sent.2019");
}

static int
many_txn(struct ids_txn *txn, void *rock)
{
	int i, r, base = *(int *)rock;
	char name[64], id[17];
	struct ids_mbentry e;

	for (i = 0; i < 400; i++) {
		snprintf(name, sizeof(name), "user.u%d.folder", base + i);
		snprintf(id, sizeof(id), "%016x", base + i);
		entry(&e, name, id, "e");
		ids_acl_set(&e.acl, &e.nacl, "anyone-with-a-long-identifier-to-fill-the-map", "lrs");
		r = ids_txn_put(txn, &e);
		ids_mbentry_release(&e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
count_fn(const struct ids_mbentry *e, void *rock)
{
	(*(int *)rock)++;
	return 0;
}

static int
count_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, NULL, count_fn, rock);
}

/* A 64 KiB map fills up at once: the write must grow it and go on. */
static void
test_map_growth(void **state)
{
	struct fixture *f = *state;
	int base, n = 0;

	for (base = 0; base < 4000; base += 400)
		assert_int_equal(ids_mboxlist_write(f->mbl, many_txn, &base), 0);
	assert_int_equal(ids_mboxlist_read(f->mbl, count_txn, &n), 0);
	assert_int_equal(n, 4000);
}

/* Two processes write at once; nothing is lost. */
static void
test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	pid_t pid[2];
	int i, status, n = 0;

	for (i = 0; i < 2; i++) {
		if ((pid[i] = fork()) == 0) {
			struct ids_mboxlist *mbl;
			int base, ok = ids_mboxlist_open(&f->cfg, 0, &mbl) == 0;

			for (base = 10000 * (i + 1); ok && base < 10000 * (i + 1) + 2000; base += 400) {
				int r = ids_mboxlist_write(mbl, many_txn, &base);

				if (r < 0)
					fprintf(stderr, "# child %d: %s\n", i, ids_errmsg(r));
				ok = r == 0;
			}
			_exit(ok ? 0 : 1);
		}
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(ids_mboxlist_read(f->mbl, count_txn, &n), 0);
	assert_int_equal(n, 4000);
}

static int
raw_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_put_raw(txn, 'X', "0123456789abcdef", "intent", 6);
}

static int
raw_get_txn(struct ids_txn *txn, void *rock)
{
	char *v;
	size_t len;
	int r = ids_txn_get_raw(txn, 'X', "0123456789abcdef", &v, &len);

	if (r == 0) {
		r = len == 6 && memcmp(v, "intent", 6) == 0 ? 0 : -1;
		free(v);
	}
	return r;
}

static int
version_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_put_raw(txn, '#', "version", "9", 1);
}

static void
test_raw_and_version(void **state)
{
	struct fixture *f = *state;
	struct ids_mboxlist *mbl;

	assert_int_equal(ids_mboxlist_write(f->mbl, raw_txn, NULL), 0);
	assert_int_equal(ids_mboxlist_read(f->mbl, raw_get_txn, NULL), 0);
	assert_int_equal(ids_mboxlist_write(f->mbl, version_txn, NULL), 0);
	assert_int_equal(ids_mboxlist_open(&f->cfg, 0, &mbl), IDS_EFORMAT);
}

/* A failure injected at the commit leaves nothing behind. */
static void
test_commit_failure(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e;
	int r;

	setenv("IDS_FAILPOINT", "mboxlist.commit:EIO", 1);
	ids_failpoint_reset();
	r = put(f, "user.x", "00000000000000ff", "e");
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	assert_int_equal(r, -EIO);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.x", &e), IDS_ENOTFOUND);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, "00000000000000ff", &e), IDS_ENOTFOUND);
	ids_mbentry_release(&e);
}

static void
test_locks(void **state)
{
	struct fixture *f = *state;
	struct ids_lock *a, *b;
	int fds[2], status;
	char c;
	pid_t pid;

	assert_int_equal(ids_lock_namespace(&f->cfg, "john@example.com", 0, 0, &a), 0);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john@example.com", IDS_LOCK_NONBLOCK, 0, &b),
	    IDS_ELOCKED);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john@example.com", 0, 30, &b), IDS_ELOCKED);
	ids_unlock(a);
	assert_int_equal(ids_lock_namespace(&f->cfg, "john@example.com", 0, 0, &b), 0);
	ids_unlock(b);
	assert_int_equal(ids_lock_mailbox(&f->cfg, "../../etc", 0, 0, &a), IDS_EBADID);
	assert_int_equal(ids_lock_namespace(&f->cfg, "a/b", 0, 0, &a), IDS_EINVAL);
	/* A holder that is killed releases its lock. */
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		struct ids_lock *l;

		if (ids_lock_mailbox(&f->cfg, "0123456789abcdef", 0, -1, &l) == 0)
			(void)write(fds[1], "x", 1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(fds[0], &c, 1), 1);
	assert_int_equal(ids_lock_mailbox(&f->cfg, "0123456789abcdef", IDS_LOCK_NONBLOCK, 0, &a),
	    IDS_ELOCKED);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	assert_int_equal(ids_lock_mailbox(&f->cfg, "0123456789abcdef", 0, 1000, &a), 0);
	ids_unlock(a);
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trim_reopen_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_uniqueid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_survives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_subtree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_growth, setup_small_map, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup_small_map, teardown),
		cmocka_unit_test_setup_teardown(test_raw_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locks, setup, teardown),
	};

	return unit_run(tests);
}
