/*
 * test-relocate.c - migrating legacy folders: both strategies, the
 * EXDEV copy path, refusals, and a crash at every failpoint.
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
#include "intent.h"
#include "mailbox.h"
#include "recover.h"
#include "relocate.h"
#include "unit.h"
#include "fixture.h"
#include "legacy.h"

#define ID_INBOX "2d3c1d9e-5f0a-4c1b-9a7e-0123456789ab"
#define ID_SENT  "k2v9d0x7qmz1w3e8r5t6y4u2"
#define ID_2019  "047656355035e6be"
#define ID_DOM   "7a1f0c2e-1111-4c1b-9a7e-0123456789ab"

static int
setup_with(void **state, unsigned flags, const char *extra)
{
	struct fixture *f;

	if (fixture_setup(state, "reloc", flags, extra) < 0)
		return -1;
	f = *state;
	if (legacy_folder(&f->cfg, f->mbl, "user.john", ID_INBOX, 3) < 0 ||
	    legacy_folder(&f->cfg, f->mbl, "user.john.Sent", ID_SENT, 4) < 0 ||
	    legacy_folder(&f->cfg, f->mbl, "user.john.Sent.2019", ID_2019, 2) < 0 ||
	    legacy_folder(&f->cfg, f->mbl, "example.com!user.mary^ann.Lists", ID_DOM, 5) < 0)
		return -1;
	return 0;
}

static int
setup(void **state)
{
	return setup_with(state, 0, "");
}

static int
setup_meta(void **state)
{
	return setup_with(state, FIXTURE_META, "metapartition_files: header index\n");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

static const char *names[] = {
	"user.john.Sent.2019", "user.john.Sent", "user.john",
	"example.com!user.mary^ann.Lists", NULL,
};
static const int counts[] = { 2, 4, 3, 5 };

/*
 * The invariants: every folder resolves to a directory whose index lists
 * exactly its messages, each file's SHA-1 equal to its GUID; the header
 * there names the folder; no intent is left.  Returns the number of
 * folders in the uniqueid layout.
 */
static int
check_invariants(struct fixture *f)
{
	int i, migrated = 0;

	for (i = 0; names[i]; i++) {
		struct ids_mailbox *mb;
		struct ids_index *idx;
		struct ids_index_record rec;
		struct ids_header h;
		uint8_t g[IDS_GUID_LEN];
		char file[32];
		uint32_t n;

		assert_int_equal(ids_mailbox_open(f->mbl, names[i], 0, 1000, &mb), 0);
		migrated += !ids_mbentry_is_legacy(&mb->entry);
		assert_int_equal(ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx), 0);
		assert_int_equal(ids_index_header(idx)->num_records, counts[i]);
		for (n = 0; n < ids_index_header(idx)->num_records; n++) {
			assert_int_equal(ids_index_record(idx, n, &rec), 0);
			snprintf(file, sizeof(file), "%u.", rec.uid);
			assert_int_equal(ids_guid_file(mb->datafd, file, g), 0);
			assert_memory_equal(g, rec.guid, IDS_GUID_LEN);
		}
		ids_index_free(idx);
		ids_header_init(&h);
		assert_int_equal(ids_header_read(ids_mailbox_metafd(mb, IDS_META_HEADER), &h, NULL), 0);
		assert_string_equal(h.uniqueid, mb->entry.uniqueid);
		if (!ids_mbentry_is_legacy(&mb->entry))
			assert_string_equal(h.name, names[i]);
		ids_header_release(&h);
		ids_mailbox_close(mb);
	}
	return migrated;
}

static int
count_intent(const char *id, const struct ids_intent *in, void *rock)
{
	(*(int *)rock)++;
	return 0;
}

static int
intents_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_foreach(txn, count_intent, rock);
}

static int
intents(struct fixture *f)
{
	int n = 0;

	assert_int_equal(ids_mboxlist_read(f->mbl, intents_txn, &n), 0);
	return n;
}

static int
exists(struct fixture *f, const char *rel)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	return lstat(path, &st) == 0;
}

static void
migrate_all(struct fixture *f, enum ids_strategy strategy)
{
	struct ids_relocate_opts opts = { strategy, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };
	int i;

	for (i = 0; names[i]; i++)
		assert_int_equal(ids_relocate_folder(f->mbl, names[i], &opts, &st), 0);
	assert_int_equal(st.folders, 4);
}

static void
test_link_strategy(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char path[256];

	assert_true(exists(f, "spool/j/user/john/Sent/2019/1."));
	assert_int_equal(check_invariants(f), 0);
	migrate_all(f, IDS_STRATEGY_LINK);
	assert_int_equal(check_invariants(f), 4);
	assert_int_equal(intents(f), 0);
	/* Old names are gone, and with them the emptied legacy directories. */
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_false(exists(f, "spool/j/user/john/1."));
	assert_false(exists(f, "spool/domain"));
	assert_true(exists(f, "spool/m/user/mary.ann@example.com/" ID_DOM "/5."));
	snprintf(path, sizeof(path), "%s/spool/j/user/john/" ID_SENT "/1.", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	/* Idempotent: a second pass has nothing to do. */
	/* Idempotent: a second pass has nothing to do. */
	{
		struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 0, 1000, NULL, NULL, 0 };
		struct ids_relocate_stats s = { 0 };

		assert_int_equal(ids_relocate_folder(f->mbl, "user.john", &opts, &s), 0);
		assert_int_equal(s.folders, 0);
	}
}

static void
test_rename_strategy(void **state)
{
	struct fixture *f = *state;

	migrate_all(f, IDS_STRATEGY_RENAME);
	assert_int_equal(check_invariants(f), 4);
	assert_int_equal(intents(f), 0);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_false(exists(f, "spool/domain"));
}

/* A parent with a legacy child inside it is linked, not renamed. */
static void
test_rename_parent_first(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_RENAME, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };

	assert_int_equal(ids_relocate_folder(f->mbl, "user.john.Sent", &opts, &st), 0);
	assert_int_equal(st.dirs_renamed, 0);
	assert_true(st.files_linked > 0);
	assert_true(exists(f, "spool/j/user/john/Sent/2019/1."));
	assert_int_equal(check_invariants(f), 1);
	assert_int_equal(ids_relocate_folder(f->mbl, "user.john.Sent.2019", &opts, &st), 0);
	assert_int_equal(st.dirs_renamed, 1);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_int_equal(check_invariants(f), 2);
}

static void
test_metapartition(void **state)
{
	struct fixture *f = *state;

	assert_true(exists(f, "meta/j/user/john/Sent/cyrus.index"));
	assert_false(exists(f, "spool/j/user/john/Sent/cyrus.index"));
	migrate_all(f, IDS_STRATEGY_LINK);
	assert_int_equal(check_invariants(f), 4);
	assert_true(exists(f, "meta/j/user/john/" ID_SENT "/cyrus.header"));
	assert_false(exists(f, "meta/j/user/john/Sent"));
	assert_false(exists(f, "spool/j/user/john/Sent"));
}

/* Where a link is impossible (EXDEV, EMLINK, EPERM) the file is copied. */
static void
test_copy_fallback(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };

	setenv("IDS_FAILPOINT", "relocate.link:EXDEV", 1);
	ids_failpoint_reset();
	assert_int_equal(ids_relocate_folder(f->mbl, "user.john.Sent", &opts, &st), 0);
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	assert_int_equal(st.files_linked, 0);
	assert_true(st.files_copied >= 4);
	assert_true(st.bytes_copied > 0);
	assert_int_equal(check_invariants(f), 1);
}

/* A symlink in the folder: refused before anything is written. */
static void
test_symlink_refused(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };
	char path[256];
	int r;

	snprintf(path, sizeof(path), "%s/spool/j/user/john/Sent/9.", f->dir);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	r = ids_relocate_folder(f->mbl, "user.john.Sent", &opts, &st);
	assert_int_equal(r, IDS_EUNSAFE);
	assert_non_null(strstr(ids_errmsg(r), "9.: symlink"));
	assert_int_equal(check_invariants(f), 0);
	assert_int_equal(intents(f), 0);
	assert_false(exists(f, "spool/j/user/john/" ID_SENT));
}

/* A different file already at the new path: a conflict, nothing touched. */
static void
test_conflict(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/spool/j/user/john/" ID_SENT, f->dir);
	assert_int_equal(mkdir(path, 0750), 0);
	strcat(path, "/2.");
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	assert_int_equal(write(fd, "other", 5), 5);
	close(fd);
	assert_int_equal(ids_relocate_folder(f->mbl, "user.john.Sent", &opts, &st), IDS_ECONFLICT);
	assert_non_null(strstr(ids_errmsg(IDS_ECONFLICT), "2.: a different file is already there"));
	assert_int_equal(check_invariants(f), 0);
	assert_true(exists(f, "spool/j/user/john/" ID_SENT "/2."));
	assert_int_equal(intents(f), 0);
}

/* Foreign files stay where they are, and so does their directory. */
static void
test_foreign_files(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };
	char path[256];

	snprintf(path, sizeof(path), "%s/spool/j/user/john/Sent/2019/notes.txt", f->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(ids_relocate_folder(f->mbl, "user.john.Sent.2019", &opts, &st), 0);
	assert_int_equal(st.files_foreign, 1);
	assert_true(exists(f, "spool/j/user/john/Sent/2019/notes.txt"));
	assert_false(exists(f, "spool/j/user/john/Sent/2019/1."));
	assert_int_equal(check_invariants(f), 1);
}

/* With a grace period the old names stay until recovery runs after it. */
static void
test_grace(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 3600, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };

	assert_int_equal(ids_relocate_folder(f->mbl, "user.john.Sent.2019", &opts, &st),
	    IDS_RELOCATE_PENDING);
	assert_int_equal(check_invariants(f), 1);
	assert_true(exists(f, "spool/j/user/john/Sent/2019/1."));
	assert_int_equal(intents(f), 1);
}

/*
 * Kill a migration at every failpoint; after each crash run recovery
 * (migrating again) and check the invariants.
 */
static void
crash_every_point(struct fixture *f, enum ids_strategy strategy)
{
	int k, status, crashed = 0;

	for (k = 1; k < 400; k++) {
		struct ids_relocate_opts opts = { strategy, 0, 1000, NULL, NULL, 0 };
		struct ids_relocate_stats st = { 0 };
		pid_t pid = fork();

		if (pid == 0) {
			struct ids_mboxlist *mbl;
			char env[16];
			int i, r = 0;

			snprintf(env, sizeof(env), "%d", k);
			setenv("IDS_FAILPOINT_CRASH", env, 1);
			ids_failpoint_reset();
			if (ids_mboxlist_open(&f->cfg, 0, &mbl) < 0)
				_exit(2);
			for (i = 0; names[i] && r == 0; i++)
				r = ids_relocate_folder(mbl, names[i], &opts, &st);
			_exit(r == 0 ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status)) {
			assert_int_equal(WEXITSTATUS(status), 0);
			break;
		}
		crashed++;
		/* Recovery, as the next tool start runs it; then the invariants. */
		assert_int_equal(ids_recover(f->mbl, &opts, &st, NULL), 0);
		assert_int_equal(intents(f), 0);
		check_invariants(f);
	}
	assert_true(crashed > 20);
	{
		struct ids_relocate_opts opts = { strategy, 0, 1000, NULL, NULL, 0 };
		struct ids_relocate_stats st = { 0 };
		int i;

		for (i = 0; names[i]; i++) {
			int r = ids_relocate_folder(f->mbl, names[i], &opts, &st);

			/* A first call may only settle a left-over intent. */
			if (r == 0)
				r = ids_relocate_folder(f->mbl, names[i], &opts, &st);
			assert_int_equal(r, 0);
		}
	}
	assert_int_equal(check_invariants(f), 4);
	assert_int_equal(intents(f), 0);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_false(exists(f, "spool/domain"));
}

/*
 * A batch: the same result as one folder at a time, in one group or in
 * groups of one or three (the pipeline: a group's removals, the next's
 * links and the one after's intents in the same step).  The rename
 * strategy moves the leaf folders' directories whole (on both roots
 * with a metapartition) and links the rest.
 */
static void
batch_in_groups(void **state, enum ids_strategy strategy, unsigned group)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { strategy, 0, 1000, NULL, NULL, group };
	struct ids_relocate_stats st = { 0 };
	struct ids_relocate_result results[4];
	int i;

	assert_int_equal(ids_relocate_batch(f->mbl, names, 4, &opts, &st, results), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(results[i].rc, 0);
		assert_int_equal(results[i].st.folders, 1);
	}
	assert_int_equal(st.folders, 4);
	if (strategy == IDS_STRATEGY_RENAME)
		assert_true(st.dirs_renamed >= 2);
	else
		assert_int_equal(st.dirs_renamed, 0);
	assert_int_equal(check_invariants(f), 4);
	assert_int_equal(intents(f), 0);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_false(exists(f, "spool/domain"));
	assert_false(exists(f, "meta/domain"));
}

static void
test_batch(void **state)
{
	batch_in_groups(state, IDS_STRATEGY_LINK, 0);
}

static void
test_batch_groups_of_one(void **state)
{
	batch_in_groups(state, IDS_STRATEGY_LINK, 1);
}

static void
test_batch_groups_of_three(void **state)
{
	batch_in_groups(state, IDS_STRATEGY_LINK, 3);
}

/* The rename strategy in a batch: directories moved, not linked. */
static void
test_batch_rename(void **state)
{
	batch_in_groups(state, IDS_STRATEGY_RENAME, 1);
}

static void
test_batch_rename_one_group(void **state)
{
	batch_in_groups(state, IDS_STRATEGY_RENAME, 0);
}

/* With a grace, every folder is flipped and its old names wait. */
static void
test_batch_grace(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 3600, 1000, NULL, NULL, 1 };
	struct ids_relocate_stats st = { 0 };
	struct ids_relocate_result results[4];
	int i;

	assert_int_equal(ids_relocate_batch(f->mbl, names, 4, &opts, &st, results), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(results[i].rc, IDS_RELOCATE_PENDING);
	assert_int_equal(check_invariants(f), 4);
	assert_int_equal(intents(f), 4);
	assert_true(exists(f, "spool/j/user/john/Sent/2019/1."));
	/* The grace over, recovery removes them. */
	opts.grace = 0;
	assert_int_equal(ids_recover(f->mbl, &opts, &st, NULL), 0);
	assert_int_equal(intents(f), 0);
	assert_int_equal(check_invariants(f), 4);
	assert_false(exists(f, "spool/j/user/john/Sent"));
}

/* A failing member is rolled back and recorded; the others go through. */
static void
test_batch_member_fails(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts opts = { IDS_STRATEGY_LINK, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };
	struct ids_relocate_result results[4];
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/spool/j/user/john/" ID_SENT, f->dir);
	assert_int_equal(mkdir(path, 0750), 0);
	strcat(path, "/2.");
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	assert_int_equal(write(fd, "other", 5), 5);
	close(fd);
	assert_int_equal(ids_relocate_batch(f->mbl, names, 4, &opts, &st, results), 0);
	assert_int_equal(results[0].rc, 0);
	assert_int_equal(results[1].rc, IDS_ECONFLICT);
	assert_non_null(strstr(results[1].reason, "2.: a different file is already there"));
	assert_int_equal(results[3].rc, 0);
	assert_int_equal(check_invariants(f), 3);
	assert_int_equal(intents(f), 0);
	assert_true(exists(f, "spool/j/user/john/" ID_SENT "/2."));
}

/* Kill a batch at every point; recovery and a second batch finish it. */
static void
crash_batch(void **state, enum ids_strategy strategy, unsigned group)
{
	struct fixture *f = *state;
	int k, status, crashed = 0;

	for (k = 1; k < 600; k++) {
		struct ids_relocate_opts opts = { strategy, 0, 1000, NULL, NULL, group };
		struct ids_relocate_stats st = { 0 };
		pid_t pid = fork();

		if (pid == 0) {
			struct ids_mboxlist *mbl;
			struct ids_relocate_result results[4];
			char env[16];

			snprintf(env, sizeof(env), "%d", k);
			setenv("IDS_FAILPOINT_CRASH", env, 1);
			ids_failpoint_reset();
			if (ids_mboxlist_open(&f->cfg, 0, &mbl) < 0)
				_exit(2);
			ids_relocate_batch(mbl, names, 4, &opts, &st, results);
			_exit(results[0].rc || results[1].rc || results[2].rc || results[3].rc);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status)) {
			assert_int_equal(WEXITSTATUS(status), 0);
			break;
		}
		crashed++;
		assert_int_equal(ids_recover(f->mbl, &opts, &st, NULL), 0);
		assert_int_equal(intents(f), 0);
		check_invariants(f);
	}
	assert_true(crashed > 20);
	assert_int_equal(check_invariants(f), 4);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_false(exists(f, "spool/domain"));
}

static void
test_crash_batch(void **state)
{
	crash_batch(state, IDS_STRATEGY_LINK, 0);
}

static void
test_crash_batch_pipelined(void **state)
{
	crash_batch(state, IDS_STRATEGY_LINK, 1);
}

static void
test_crash_batch_rename(void **state)
{
	crash_batch(state, IDS_STRATEGY_RENAME, 1);
}

/*
 * A batch whose steps fail (EIO) at one point and one hit at a time:
 * every mailboxes.db commit, syncfs, link, rename, header and index
 * write, unlink and rmdir in turn, each on a fresh spool.  The batch
 * returns, every folder is whole where the resolver says, and recovery
 * then a clean batch finish the job.
 */
static void
fail_batch_points(void **state, enum ids_strategy strategy, int min_failed)
{
	static const char *const points[] = {
		"mboxlist.commit", "fs.syncfs", "relocate.link", "relocate.mkdir",
		"relocate.rename", "fs.create", "fs.write", "fs.rename", "header.write",
		"index.set_header_crc", "relocate.unlink", "relocate.rmdir", "fs.fsync_dir",
	};
	struct fixture *f;
	size_t p;
	int k, failed = 0;

	for (p = 0; p < sizeof(points) / sizeof(points[0]); p++)
	for (k = 1; k < 8; k++) {
		struct ids_relocate_opts opts = { strategy, 0, 1000, NULL, NULL, 1 };
		struct ids_relocate_stats st = { 0 };
		struct ids_relocate_result results[4];
		char env[64];
		int i;

		assert_int_equal(teardown(state), 0);
		assert_int_equal(setup_meta(state), 0);
		f = *state;
		snprintf(env, sizeof(env), "%s:EIO:%d", points[p], k);
		setenv("IDS_FAILPOINT", env, 1);
		ids_failpoint_reset();
		assert_int_equal(ids_relocate_batch(f->mbl, names, 4, &opts, &st, results), 0);
		unsetenv("IDS_FAILPOINT");
		ids_failpoint_reset();
		for (i = 0; i < 4; i++)
			failed += results[i].rc < 0;
		check_invariants(f);
		assert_int_equal(ids_recover(f->mbl, &opts, &st, NULL), 0);
		assert_int_equal(intents(f), 0);
		check_invariants(f);
		/* Then a clean batch finishes the job. */
		assert_int_equal(ids_relocate_batch(f->mbl, names, 4, &opts, &st, results), 0);
		for (i = 0; i < 4; i++)
			assert_true(results[i].rc == 0);
		assert_int_equal(check_invariants(f), 4);
		assert_int_equal(intents(f), 0);
	}
	assert_true(failed > min_failed);
}

static void
test_fail_batch_points_link(void **state)
{
	fail_batch_points(state, IDS_STRATEGY_LINK, 50);
}

static void
test_fail_batch_points_rename(void **state)
{
	/*
	 * Fewer points lie on the rename strategy's path: a current header
	 * is not rewritten, and no parent is fsynced under the step's syncfs.
	 */
	fail_batch_points(state, IDS_STRATEGY_RENAME, 30);
}

static void
test_crash_link(void **state)
{
	crash_every_point(*state, IDS_STRATEGY_LINK);
}

static void
test_crash_rename(void **state)
{
	crash_every_point(*state, IDS_STRATEGY_RENAME);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_link_strategy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_strategy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_parent_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metapartition, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_copy_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_batch_groups_of_one, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_batch_groups_of_three, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_rename, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_batch_rename_one_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_member_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_batch, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_crash_batch_pipelined, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_crash_batch_rename, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_fail_batch_points_link, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_fail_batch_points_rename, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_crash_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_rename, setup_meta, teardown),
	};

	return unit_run(tests);
}
