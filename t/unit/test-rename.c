/*
 * test-rename.c - the rename engine: subtree renames in one
 * transaction, owner renames, copies to another owner, refusals, and a
 * crash at every failpoint of each.
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
#include "header.h"
#include "intent.h"
#include "mailbox.h"
#include "recover.h"
#include "relocate.h"
#include "rename.h"
#include "unit.h"
#include "fixture.h"
#include "legacy.h"

#define MSG "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"

static int
setup(void **state)
{
	return fixture_setup(state, "ren", 0, "");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

static void
mk(struct fixture *f, const char *name, int msgs)
{
	uint32_t uid;
	int i;

	assert_int_equal(ids_mailbox_create(f->mbl, name, NULL, NULL), 0);
	for (i = 0; i < msgs; i++)
		assert_int_equal(ids_mailbox_deliver(f->mbl, name, MSG, strlen(MSG), i, &uid), 0);
}

/* A tree below root: depth 4, 5 x 4 x 3 ... folders, 2 messages at each level-1 folder. */
static int
mk_tree(struct fixture *f, const char *root)
{
	char a[128], b[192], c[256];
	int i, j, k, n = 0;

	mk(f, root, 2);
	for (i = 0; i < 5; i++) {
		snprintf(a, sizeof(a), "%s.a%d", root, i);
		mk(f, a, 2);
		n++;
		for (j = 0; j < 4; j++) {
			snprintf(b, sizeof(b), "%s.b%d", a, j);
			mk(f, b, 0);
			n++;
			for (k = 0; k < 5; k++) {
				snprintf(c, sizeof(c), "%s.c%d", b, k);
				mk(f, c, 0);
				n++;
			}
		}
	}
	return n;	/* descendants */
}

struct count {
	int live, tomb;
	const char *with_prefix;
};

static int
count_cb(const struct ids_mbentry *e, void *rock)
{
	struct count *c = rock;

	size_t n = c->with_prefix ? strlen(c->with_prefix) : 0;

	/* The name itself and the names below it ("!"-ended prefixes: a domain). */
	if (c->with_prefix && (strncmp(e->name, c->with_prefix, n) != 0 ||
	    (e->name[n] != '\0' && e->name[n] != '.' && c->with_prefix[n - 1] != '!')))
		return 0;
	if (ids_mbentry_is_tombstone(e))
		c->tomb++;
	else
		c->live++;
	return 0;
}

static int
count_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, NULL, count_cb, rock);
}

static struct count
count(struct fixture *f, const char *prefix)
{
	struct count c = { 0, 0, prefix };

	assert_int_equal(ids_mboxlist_read(f->mbl, count_txn, &c), 0);
	return c;
}

static int
intent_cb(const char *id, const struct ids_intent *in, void *rock)
{
	(*(int *)rock)++;
	return 0;
}

static int
intents_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_foreach(txn, intent_cb, rock);
}

static int
intents(struct fixture *f)
{
	int n = 0;

	assert_int_equal(ids_mboxlist_read(f->mbl, intents_txn, &n), 0);
	return n;
}

/* Every live folder: its header names it, its messages match their GUIDs. */
static int
check_cb(const struct ids_mbentry *e, void *rock)
{
	struct fixture *f = rock;
	struct ids_mailbox *mb;
	struct ids_index *idx;
	struct ids_index_record rec;
	struct ids_header h;
	uint8_t g[IDS_GUID_LEN];
	char file[32];
	uint32_t n;
	int r;

	if (ids_mbentry_is_tombstone(e))
		return 0;
	if ((r = ids_mailbox_open(f->mbl, e->name, 0, 1000, &mb)) < 0)
		return r;
	ids_header_init(&h);
	r = ids_header_read(ids_mailbox_metafd(mb, IDS_META_HEADER), &h, NULL);
	/* Cyrus leaves stale names in legacy headers; ours must be right. */
	if (r == 0 && ((!ids_mbentry_is_legacy(e) && strcmp(h.name, e->name) != 0) ||
	    strcmp(h.uniqueid, e->uniqueid) != 0))
		r = ids_error(IDS_ECONFLICT, "header of %s names %s", e->name, h.name);
	ids_header_release(&h);
	if (r == 0 && (r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx)) == 0) {
		for (n = 0; r == 0 && n < ids_index_header(idx)->num_records; n++) {
			if ((r = ids_index_record(idx, n, &rec)) < 0)
				break;
			snprintf(file, sizeof(file), "%u.", rec.uid);
			if ((r = ids_guid_file(mb->datafd, file, g)) == 0 &&
			    memcmp(g, rec.guid, IDS_GUID_LEN) != 0)
				r = ids_error(IDS_ECRC, "%s/%s", e->name, file);
		}
		ids_index_free(idx);
	}
	ids_mailbox_close(mb);
	return r;
}

static int
check_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, NULL, check_cb, rock);
}

static void
check_all(struct fixture *f)
{
	int r = ids_mboxlist_read(f->mbl, check_txn, f);

	if (r < 0)
		fail_msg("%s", ids_errmsg(r));
}

static int
do_rename(struct fixture *f, const char *a, const char *b, int flags)
{
	struct ids_rename_opts o = { flags, NULL, 2000, NULL, NULL };

	return ids_rename(f->mbl, a, b, &o);
}

static void
test_subtree(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e, before;
	int n = mk_tree(f, "user.john.A");
	struct count c;

	assert_true(n >= 100);
	ids_mbentry_init(&before);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.john.A.a1.b2.c3", &before), 0);
	assert_int_equal(do_rename(f, "user.john.A", "user.john.Archive.2019.A", 0), 0);
	c = count(f, "user.john.Archive.2019.A");
	assert_int_equal(c.live, n + 1);
	c = count(f, "user.john.A");
	assert_int_equal(c.live, 0);
	assert_int_equal(c.tomb, n + 1);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, before.uniqueid, &e), 0);
	assert_string_equal(e.name, "user.john.Archive.2019.A.a1.b2.c3");
	assert_int_equal(e.nhistory, 1);
	assert_string_equal(e.history[0].name, "user.john.A.a1.b2.c3");
	assert_int_equal(e.uidvalidity, before.uidvalidity);
	ids_mbentry_release(&e);
	ids_mbentry_release(&before);
	assert_int_equal(intents(f), 0);
	check_all(f);
	/* And back: the history grows, tombstones stay. */
	assert_int_equal(do_rename(f, "user.john.Archive.2019.A", "user.john.A", 0), 0);
	ids_mbentry_init(&e);
	ids_mbentry_init(&before);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.john.A.a1", &before), 0);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, before.uniqueid, &e), 0);
	ids_mbentry_release(&before);
	assert_int_equal(e.nhistory, 2);
	assert_string_equal(e.history[0].name, "user.john.Archive.2019.A.a1");
	ids_mbentry_release(&e);
	check_all(f);
}

/* A failure at the commit leaves every record as it was. */
static void
test_atomic(void **state)
{
	struct fixture *f = *state;
	int n = mk_tree(f, "user.john.A"), r;

	setenv("IDS_FAILPOINT", "mboxlist.commit:EIO", 1);
	ids_failpoint_reset();
	r = do_rename(f, "user.john.A", "user.john.B", 0);
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	assert_int_equal(r, -EIO);
	assert_int_equal(count(f, "user.john.A").live, n + 1);
	assert_int_equal(count(f, "user.john.B").live + count(f, "user.john.B").tomb, 0);
	check_all(f);
}

static void
test_refusals(void **state)
{
	struct fixture *f = *state;
	struct ids_rename_opts o = { 0, "other", 2000, NULL, NULL };
	int r;

	mk(f, "user.john", 1);
	mk(f, "user.john.A", 1);
	mk(f, "user.john.A.B", 0);
	mk(f, "user.john.C", 0);
	mk(f, "user.mary", 0);
	assert_int_equal(do_rename(f, "user.john.X", "user.john.Y", 0), IDS_ENOTFOUND);
	assert_int_equal(do_rename(f, "user.john.A", "user.john.C", 0), IDS_EEXIST);
	assert_int_equal(do_rename(f, "user.john.A", "user.john.A.B.D", 0), IDS_EINVAL);
	assert_int_equal(do_rename(f, "user.john", "user.john", 0), IDS_EINVAL);
	r = do_rename(f, "user.john.A", "user.mary.A", 0);
	assert_int_equal(r, IDS_ECROSSUSER);
	assert_non_null(strstr(ids_errmsg(r), "--copy"));
	r = do_rename(f, "user.john.A", "user.mary.A", IDS_RENAME_COPY);
	assert_int_equal(r, IDS_EINVAL);
	assert_non_null(strstr(ids_errmsg(r), "children first"));
	assert_int_equal(do_rename(f, "user.john.C", "user.nobody.C", IDS_RENAME_COPY), IDS_ENOTFOUND);
	assert_int_equal(do_rename(f, "user.john.A", "user.john.bad..name", 0), IDS_EBADNAME);
	r = ids_rename(f->mbl, "user.john.A", "user.john.Z", &o);
	assert_int_equal(r, IDS_EINVAL);
	assert_non_null(strstr(ids_errmsg(r), "partition"));
	/* A target below an existing child of the new root also exists. */
	mk(f, "user.john.Q", 0);
	mk(f, "user.john.P.B", 0);
	assert_int_equal(do_rename(f, "user.john.A", "user.john.P", 0), IDS_EEXIST);
	assert_int_equal(count(f, NULL).tomb, 0);
	check_all(f);
}

/* Legacy folders in the subtree are migrated first, then renamed. */
static void
test_legacy_source(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e;

	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john", "047656355035e6be", 2), 0);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.Old", "k2v9d0x7qmz1w3e8r5t6y4u2", 3), 0);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.Old.Sub", "0a1b2c3d4e5f6a7b", 1), 0);
	assert_int_equal(do_rename(f, "user.john.Old", "user.john.New", 0), 0);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.john.New.Sub", &e), 0);
	assert_false(ids_mbentry_is_legacy(&e));
	assert_string_equal(e.uniqueid, "0a1b2c3d4e5f6a7b");
	ids_mbentry_release(&e);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.john", &e), 0);
	assert_true(ids_mbentry_is_legacy(&e));	/* not in the subtree: untouched */
	ids_mbentry_release(&e);
	check_all(f);
}

static int
exists(struct fixture *f, const char *rel)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	return lstat(path, &st) == 0;
}

/* Sets (q non-NULL) or reads back the quota root in name's cyrus.header. */
static char *
quotaroot(struct fixture *f, const char *name, const char *q)
{
	static char buf[IDS_MBNAME_MAX + 1];
	struct ids_mailbox *mb;
	struct ids_header h;
	int hfd;

	assert_int_equal(ids_mailbox_open(f->mbl, name, IDS_MAILBOX_WRITE, 2000, &mb), 0);
	hfd = ids_mailbox_metafd(mb, IDS_META_HEADER);
	ids_header_init(&h);
	assert_int_equal(ids_header_read(hfd, &h, NULL), 0);
	if (q != NULL) {
		free(h.quotaroot);
		h.quotaroot = strdup(q);
		assert_int_equal(ids_header_write(hfd, &h, NULL), 0);
	}
	snprintf(buf, sizeof(buf), "%s", h.quotaroot ? h.quotaroot : "");
	ids_header_release(&h);
	ids_mailbox_close(mb);
	return buf;
}

/* The quota root in the headers follows a user rename, as Cyrus's does. */
static void
test_owner_quotaroot(void **state)
{
	struct fixture *f = *state;

	mk(f, "user.alice", 1);
	mk(f, "user.alice.Sent", 1);
	mk(f, "user.alice.Sent.2019", 0);
	mk(f, "user.alice.Box", 0);
	quotaroot(f, "user.alice", "user.alice");
	quotaroot(f, "user.alice.Sent", "user.alice");
	quotaroot(f, "user.alice.Sent.2019", "user.alice.Sent");
	quotaroot(f, "user.alice.Box", "shared.other");
	assert_int_equal(do_rename(f, "user.alice", "example.com!user.bob", 0), 0);
	assert_string_equal(quotaroot(f, "example.com!user.bob", NULL), "example.com!user.bob");
	assert_string_equal(quotaroot(f, "example.com!user.bob.Sent", NULL), "example.com!user.bob");
	assert_string_equal(quotaroot(f, "example.com!user.bob.Sent.2019", NULL),
	    "example.com!user.bob.Sent");
	/* A root the folder was not under is not the user's: it stays. */
	assert_string_equal(quotaroot(f, "example.com!user.bob.Box", NULL), "shared.other");
	/* A folder rename within the user leaves the root alone. */
	assert_int_equal(do_rename(f, "example.com!user.bob.Sent", "example.com!user.bob.Out", 0), 0);
	assert_string_equal(quotaroot(f, "example.com!user.bob.Out", NULL), "example.com!user.bob");
	check_all(f);
}

static void
test_owner(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry e;

	mk(f, "user.alice", 2);
	mk(f, "user.alice.Sent", 3);
	mk(f, "user.alice.Sent.2019", 1);
	/* A deleted folder with a message: delivered before its delayed delete. */
	mk(f, "user.alice.Old", 1);
	assert_int_equal(do_rename(f, "user.alice.Old", "DELETED.user.alice.Old.6B033B15", 0), 0);
	assert_true(exists(f, "spool/a/user/alice"));
	assert_int_equal(do_rename(f, "user.alice", "example.com!user.bob", 0), 0);
	assert_false(exists(f, "spool/a/user/alice"));
	assert_true(exists(f, "spool/b/user/bob@example.com"));
	assert_int_equal(count(f, "example.com!").live, 4);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "example.com!DELETED.user.bob.Old.6B033B15", &e), 0);
	ids_mbentry_release(&e);
	assert_int_equal(intents(f), 0);
	check_all(f);
	/* A new owner that has folders already is refused. */
	mk(f, "user.carol.X", 0);
	mk(f, "user.dave", 0);
	assert_int_equal(do_rename(f, "user.dave", "user.carol", 0), IDS_EEXIST);
}

static void
test_copy(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry a, b;

	mk(f, "user.alice", 0);
	mk(f, "user.alice.Project", 3);
	mk(f, "user.bob", 0);
	ids_mbentry_init(&a);
	ids_mbentry_init(&b);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.alice.Project", &a), 0);
	assert_int_equal(do_rename(f, "user.alice.Project", "user.bob.Project", IDS_RENAME_COPY), 0);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.bob.Project", &b), 0);
	assert_string_not_equal(a.uniqueid, b.uniqueid);
	assert_true(b.uidvalidity >= a.uidvalidity);
	ids_mbentry_release(&b);
	ids_mbentry_init(&b);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.alice.Project", &b), 0);
	assert_true(ids_mbentry_is_tombstone(&b));
	ids_mbentry_release(&b);
	ids_mbentry_release(&a);
	assert_int_equal(intents(f), 0);
	check_all(f);
	assert_int_equal(count(f, "user.bob.Project").live, 1);
}

/*
 * Kill a rename at every failpoint; after each crash recovery settles
 * it: either every folder has its old name or every one its new name,
 * and every message is reachable.
 */
static void
crash_loop(struct fixture *f, const char *from, const char *to, int flags, int nfolders)
{
	int k, status, crashed = 0;

	for (k = 1; k < 2000; k++) {
		struct count co, cn;
		pid_t pid = fork();

		if (pid == 0) {
			struct ids_mboxlist *mbl;
			char env[16];

			snprintf(env, sizeof(env), "%d", k);
			setenv("IDS_FAILPOINT_CRASH", env, 1);
			ids_failpoint_reset();
			if (ids_mboxlist_open(&f->cfg, 0, &mbl) < 0)
				_exit(2);
			{
				struct ids_rename_opts o = { flags, NULL, 2000, NULL, NULL };

				_exit(ids_rename(mbl, from, to, &o) == 0 ? 0 : 1);
			}
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_int_equal(ids_recover(f->mbl, NULL, NULL, NULL), 0);
		assert_int_equal(intents(f), 0);
		co = count(f, from);
		cn = count(f, to);
		if (!(co.live == nfolders && cn.live == 0) && !(co.live == 0 && cn.live == nfolders))
			fail_msg("after a crash at point %d: %d old and %d new live folders", k,
			    co.live, cn.live);
		check_all(f);
		if (WIFEXITED(status)) {
			assert_int_equal(WEXITSTATUS(status), 0);
			assert_int_equal(cn.live, nfolders);
			break;
		}
		crashed++;
		if (cn.live == nfolders)	/* done, crashed in the cleanup: go back */
			assert_int_equal(do_rename(f, to, from, flags), 0);
	}
	assert_true(crashed >= 3);
}

static void
test_crash_subtree(void **state)
{
	struct fixture *f = *state;

	mk(f, "user.john.A", 1);
	mk(f, "user.john.A.B", 2);
	mk(f, "user.john.A.B.C", 1);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.A.L", "0a1b2c3d4e5f6a7b", 2), 0);
	crash_loop(f, "user.john.A", "user.john.Z", 0, 4);
}

static void
test_crash_owner(void **state)
{
	struct fixture *f = *state;

	mk(f, "user.alice", 1);
	mk(f, "user.alice.Sent", 2);
	crash_loop(f, "user.alice", "user.zed", 0, 2);
}

static void
test_crash_copy(void **state)
{
	struct fixture *f = *state;

	mk(f, "user.alice", 0);
	mk(f, "user.bob", 0);
	mk(f, "user.alice.P", 3);
	crash_loop(f, "user.alice.P", "user.bob.P", IDS_RENAME_COPY, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_subtree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_quotaroot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_subtree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_copy, setup, teardown),
	};

	return unit_run(tests);
}
