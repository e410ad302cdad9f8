/*
 * test-recover.c - ids_recover(): every operation killed at every one
 * of its failpoints in turn, on a fresh spool each time, and settled
 * by ids_recover() alone.  Each row of spool-layout.md's recovery table
 * (op and stage) must be left behind by some crash and settled: the
 * operation then stands either whole or not at all, every folder is
 * consistent (header, index, every message's GUID), and no intent is
 * left.  Then the dispatch itself: a busy owner, an unknown operation,
 * a migration in its grace period, nothing to do.
 *
 * The reconstruct 'reid' op is settled through ids_recover() in
 * test-reconstruct.c (test_recover_reid), the replica's 'sync' op in
 * t/t7300-spool-sync-crash.t (an APPLY MAILBOX killed at each point).
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
#include "guid.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "lock.h"
#include "mailbox.h"
#include "recover.h"
#include "relocate.h"
#include "rename.h"
#include "unit.h"
#include "fixture.h"
#include "legacy.h"

#define ID_SENT "k2v9d0x7qmz1w3e8r5t6y4u2"
#define ID_2019 "047656355035e6be"
#define ID_X "a0a0a0a0-1111-4222-8333-444444444444"
#define ID_Y "b0b0b0b0-1111-4222-8333-444444444444"

static int
setup(void **state)
{
	return fixture_setup(state, "recover", 0, "");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

/* --- what the spool holds --------------------------------------------- */

/* Messages in name, or -1 when it is not a live folder. */
static int
messages(struct fixture *f, const char *name)
{
	struct ids_mailbox *mb;
	struct ids_index *idx;
	int n;

	if (ids_mailbox_open(f->mbl, name, 0, 1000, &mb) == IDS_ENOTFOUND)
		return -1;
	assert_int_equal(ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx), 0);
	n = (int)ids_index_header(idx)->num_records;
	ids_index_free(idx);
	ids_mailbox_close(mb);
	return n;
}

static int
is_legacy(struct fixture *f, const char *name)
{
	struct ids_mbentry e;
	int legacy;

	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, name, &e), 0);
	legacy = ids_mbentry_is_legacy(&e);
	ids_mbentry_release(&e);
	return legacy;
}

/* A live folder's header names it, and every message has its index GUID. */
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

	if (ids_mbentry_is_tombstone(e))
		return 0;
	assert_int_equal(ids_mailbox_open(f->mbl, e->name, 0, 1000, &mb), 0);
	ids_header_init(&h);
	assert_int_equal(ids_header_read(ids_mailbox_metafd(mb, IDS_META_HEADER), &h, NULL), 0);
	assert_string_equal(h.uniqueid, e->uniqueid);
	if (!ids_mbentry_is_legacy(e))	/* Cyrus leaves stale names in legacy ones */
		assert_string_equal(h.name, e->name);
	ids_header_release(&h);
	assert_int_equal(ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx), 0);
	for (n = 0; n < ids_index_header(idx)->num_records; n++) {
		assert_int_equal(ids_index_record(idx, n, &rec), 0);
		snprintf(file, sizeof(file), "%u.", rec.uid);
		assert_int_equal(ids_guid_file(mb->datafd, file, g), 0);
		assert_memory_equal(g, rec.guid, IDS_GUID_LEN);
	}
	ids_index_free(idx);
	ids_mailbox_close(mb);
	return 0;
}

static int
check_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, NULL, check_cb, rock);
}

static void
check_folders(struct fixture *f)
{
	assert_int_equal(ids_mboxlist_read(f->mbl, check_txn, f), 0);
}

struct intents {
	int n;
	char id[64];
	struct ids_intent in;	/* the last one */
};

static int
intent_cb(const char *id, const struct ids_intent *in, void *rock)
{
	struct intents *s = rock;

	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", id);
	ids_intent_release(&s->in);
	memcpy(s->in.op, in->op, sizeof(in->op));
	memcpy(s->in.stage, in->stage, sizeof(in->stage));
	assert_int_equal(ids_intent_set(&s->in.src, in->src), 0);
	assert_int_equal(ids_intent_set(&s->in.dst, in->dst), 0);
	return 0;
}

static int
intents_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_foreach(txn, intent_cb, rock);
}

static void
intents(struct fixture *f, struct intents *s)
{
	ids_intent_release(&s->in);
	memset(s, 0, sizeof(*s));
	assert_int_equal(ids_mboxlist_read(f->mbl, intents_txn, s), 0);
}

/* Is rel (below the partition root) there? */
static int
in_spool(struct fixture *f, const char *rel, const char *file)
{
	char path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/spool/%s%s%s", f->dir, rel, file ? "/" : "", file ? file : "");
	return lstat(path, &st) == 0;
}

static void
deliver(struct fixture *f, const char *name, int n)
{
	char msg[128];
	uint32_t uid;
	int i;

	for (i = 0; i < n; i++) {
		int len = snprintf(msg, sizeof(msg), "From: a@example.com\r\nSubject: %s %d\r\n\r\nx\r\n",
		    name, i);

		assert_int_equal(ids_mailbox_deliver(f->mbl, name, msg, (size_t)len, 1700000000,
		    &uid), 0);
	}
}

/* --- the operations ----------------------------------------------------- */

/*
 * An operation: prepare lays down its spool (in the test process), run
 * does it (in the process that is killed), outcome says which whole
 * state the spool is in after recovery: 0 before, 1 after.  left is
 * the last intent the crash left (n == 0: none) to check its
 * directories against the outcome.
 */
struct op {
	const char *what;
	const char *stages[4];	/* "op stage" of every intent its crashes must leave */
	void (*prepare)(struct fixture *f);
	int (*run)(struct ids_mboxlist *mbl);
	int (*outcome)(struct fixture *f, const struct intents *left);
};

static void
prepare_owner(struct fixture *f)
{
	assert_int_equal(ids_mailbox_create(f->mbl, "user.john", NULL, NULL), 0);
	deliver(f, "user.john", 2);
}

static int
run_create(struct ids_mboxlist *mbl)
{
	return ids_mailbox_create(mbl, "user.john.New", NULL, NULL);
}

static int
outcome_create(struct fixture *f, const struct intents *left)
{
	int n = messages(f, "user.john.New");

	/* Rolled back: the new directory went with the intent. */
	if (n < 0 && left->n)
		assert_false(in_spool(f, left->in.dst, NULL));
	return n == 0 ? 1 : n < 0 ? 0 : -1;
}

static void
prepare_delete(struct fixture *f)
{
	prepare_owner(f);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.john.Trash", NULL, NULL), 0);
	deliver(f, "user.john.Trash", 3);
}

static int
run_delete(struct ids_mboxlist *mbl)
{
	return ids_mailbox_delete(mbl, "user.john.Trash");
}

/* 1 if the owner's tombstone record (spool-layout.md) holds name. */
static int
in_record(struct fixture *f, const char *owner_dir, const char *name)
{
	char path[256], line[1024], want[300];
	FILE *fp;
	int found = 0;

	snprintf(path, sizeof(path), "%s/spool/.tombstones/%s/tombstones", f->dir, owner_dir);
	snprintf(want, sizeof(want), "%%(N %s I ", name);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), fp))
		found = strncmp(line, want, strlen(want)) == 0;
	fclose(fp);
	return found;
}

static int
outcome_delete(struct fixture *f, const struct intents *left)
{
	int n = messages(f, "user.john.Trash");

	/* Finished: the folder's files went with the intent. */
	if (n < 0 && left->n) {
		assert_false(in_spool(f, left->in.dst, "cyrus.header"));
		assert_false(in_spool(f, left->in.dst, "1."));
	}
	/* Its tombstone is on disk once the delete is settled, never before. */
	assert_int_equal(in_record(f, "j/user/john", "user.john.Trash"), n < 0);
	return n == 3 ? 0 : n < 0 ? 1 : -1;
}

static void
prepare_legacy(struct fixture *f)
{
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john", "2d3c1d9e-5f0a-4c1b-9a7e-0123456789ab", 1), 0);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.Sent", ID_SENT, 4), 0);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.Sent.2019", ID_2019, 2), 0);
}

static int
migrate(struct ids_mboxlist *mbl, const char *name, enum ids_strategy strategy)
{
	struct ids_relocate_opts o = { strategy, 0, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };

	return ids_relocate_folder(mbl, name, &o, &st);
}

/* A folder with a child folder inside its directory is linked... */
static int
run_migrate_link(struct ids_mboxlist *mbl)
{
	return migrate(mbl, "user.john.Sent", IDS_STRATEGY_LINK);
}

/* ...and a leaf can be moved whole. */
static int
run_migrate_rename(struct ids_mboxlist *mbl)
{
	return migrate(mbl, "user.john.Sent.2019", IDS_STRATEGY_RENAME);
}

/*
 * 1 if name is migrated, 0 if still legacy, its messages all there
 * either way; the other folders untouched.
 */
static int
migrated(struct fixture *f, const struct intents *left, const char *name, const char *other)
{
	int legacy = is_legacy(f, name);

	assert_int_equal(messages(f, "user.john.Sent"), 4);
	assert_int_equal(messages(f, "user.john.Sent.2019"), 2);
	assert_int_equal(messages(f, "user.john"), 1);
	assert_true(is_legacy(f, other));
	assert_true(is_legacy(f, "user.john"));
	/* One copy of the messages: the path not in use holds none. */
	if (left->n && legacy)
		assert_false(in_spool(f, left->in.dst, "1."));
	if (left->n && !legacy)
		assert_false(in_spool(f, left->in.src, "1."));
	return !legacy;
}

static int
outcome_migrate_link(struct fixture *f, const struct intents *left)
{
	return migrated(f, left, "user.john.Sent", "user.john.Sent.2019");
}

static int
outcome_migrate_rename(struct fixture *f, const struct intents *left)
{
	return migrated(f, left, "user.john.Sent.2019", "user.john.Sent");
}

static void
prepare_tree(struct fixture *f)
{
	prepare_owner(f);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.mary", NULL, NULL), 0);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.john.A", NULL, NULL), 0);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.john.A.B", NULL, NULL), 0);
	deliver(f, "user.john.A", 3);
	deliver(f, "user.john.A.B", 1);
}

static int
rename_(struct ids_mboxlist *mbl, const char *from, const char *to, int flags)
{
	struct ids_rename_opts o = { flags, NULL, 2000, NULL, NULL };

	return ids_rename(mbl, from, to, &o);
}

static int
run_rename(struct ids_mboxlist *mbl)
{
	return rename_(mbl, "user.john.A", "user.john.Z", 0);
}

/* 0 when the folders are at their old names, 1 at the new, else -1. */
static int
moved(struct fixture *f, const char *a, const char *ab, const char *z, const char *zb)
{
	int old = messages(f, a) == 3 && messages(f, ab) == 1;
	int new = messages(f, z) == 3 && messages(f, zb) == 1;

	if (old && messages(f, z) < 0 && messages(f, zb) < 0)
		return 0;
	if (new && messages(f, a) < 0 && messages(f, ab) < 0)
		return 1;
	return -1;
}

static int
outcome_rename(struct fixture *f, const struct intents *left)
{
	return moved(f, "user.john.A", "user.john.A.B", "user.john.Z", "user.john.Z.B");
}

static int
run_rename_owner(struct ids_mboxlist *mbl)
{
	return rename_(mbl, "user.john", "user.jack", 0);
}

static int
outcome_rename_owner(struct fixture *f, const struct intents *left)
{
	int r = moved(f, "user.john.A", "user.john.A.B", "user.jack.A", "user.jack.A.B");

	assert_int_equal(messages(f, r ? "user.jack" : "user.john"), 2);
	assert_int_equal(messages(f, r ? "user.john" : "user.jack"), -1);
	return r;
}

/*
 * The user's own files (spool-layout.md, "A user's own files"), with
 * john's names and those of his new name in a domain, relative to the
 * configuration directory (the sieve directory is <dir>/sieve).
 */
static const char *const john_files[] = {
	"user/j/john.seen", "user/j/john.sub", "user/j/john.conversations",
	"user/j/john.counters", "sieve/j/john", "quota/j/user.john", NULL,
};
static const char *const kate_files[] = {
	"domain/e/example.org/user/k/kate.seen", "domain/e/example.org/user/k/kate.sub",
	"domain/e/example.org/user/k/kate.conversations",
	"domain/e/example.org/user/k/kate.counters", "sieve/domain/e/example.org/k/kate",
	"domain/e/example.org/quota/k/user.kate", NULL,
};

static void
put_file(struct fixture *f, const char *rel, const char *text)
{
	char path[512], cmd[1200];

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\" && printf '%%s' '%s' > '%s'",
	    path, text, path);
	assert_int_equal(system(cmd), 0);
}

/* The text of rel (a sieve directory: of its script), or NULL. */
static char *
file_text(struct fixture *f, const char *rel)
{
	static char buf[128];
	char path[512];
	struct stat st;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	if (lstat(path, &st) < 0)
		return NULL;
	if (S_ISDIR(st.st_mode))
		strncat(path, "/main.sieve", sizeof(path) - strlen(path) - 1);
	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void
prepare_files(struct fixture *f)
{
	size_t i;

	prepare_tree(f);
	for (i = 0; john_files[i]; i++) {
		if (strncmp(john_files[i], "sieve/", 6) == 0) {
			char rel[128];

			snprintf(rel, sizeof(rel), "%s/main.sieve", john_files[i]);
			put_file(f, rel, john_files[i]);
		} else {
			put_file(f, john_files[i], john_files[i]);
		}
	}
}

static int
run_rename_files(struct ids_mboxlist *mbl)
{
	return rename_(mbl, "user.john", "example.org!user.kate", 0);
}

/* Every file whole at one set of names, none at the other. */
static int
outcome_rename_files(struct fixture *f, const struct intents *left)
{
	int r = moved(f, "user.john.A", "user.john.A.B", "example.org!user.kate.A",
	    "example.org!user.kate.A.B");
	size_t i;

	for (i = 0; john_files[i]; i++) {
		const char *at = r ? kate_files[i] : john_files[i];
		const char *gone = r ? john_files[i] : kate_files[i];
		const char *t = file_text(f, at);

		if (t == NULL || strcmp(t, john_files[i]) != 0)
			fail_msg("%s: not at %s after recovery", john_files[i], at);
		if (file_text(f, gone) != NULL)
			fail_msg("%s: still at %s after recovery", john_files[i], gone);
	}
	return r;
}

static void
prepare_copy(struct fixture *f)
{
	prepare_owner(f);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.mary", NULL, NULL), 0);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.john.P", NULL, NULL), 0);
	deliver(f, "user.john.P", 3);
}

static int
run_copy(struct ids_mboxlist *mbl)
{
	return rename_(mbl, "user.john.P", "user.mary.P", IDS_RENAME_COPY);
}

static int
outcome_copy(struct fixture *f, const struct intents *left)
{
	int a = messages(f, "user.john.P"), b = messages(f, "user.mary.P");

	/* Rolled back: the copy's directory went with the intent. */
	if (a == 3 && b < 0 && left->n && strcmp(left->in.stage, "copy") == 0)
		assert_false(in_spool(f, left->in.dst, NULL));
	/* The source's tombstone is on disk once the copy is settled. */
	assert_int_equal(in_record(f, "j/user/john", "user.john.P"), a < 0);
	return a == 3 && b < 0 ? 0 : a < 0 && b == 3 ? 1 : -1;
}

static const struct op ops[] = {
	{ "create", { "create files" }, prepare_owner, run_create, outcome_create },
	{ "delete", { "delete files" }, prepare_delete, run_delete, outcome_delete },
	{ "migrate (link)", { "migrate link", "migrate flipped" }, prepare_legacy,
	    run_migrate_link, outcome_migrate_link },
	{ "migrate (rename)", { "migrate rename", "migrate flipped" }, prepare_legacy,
	    run_migrate_rename, outcome_migrate_rename },
	{ "rename", { "rename headers" }, prepare_tree, run_rename, outcome_rename },
	{ "owner rename", { "renameowner dirs", "renameowner headers" }, prepare_tree,
	    run_rename_owner, outcome_rename_owner },
	{ "copy", { "copy copy", "copy remove" }, prepare_copy, run_copy, outcome_copy },
	{ "owner rename with user files", { "renameowner dirs", "renameowner headers" },
	    prepare_files, run_rename_files, outcome_rename_files },
};

/* --- the crash sweep ---------------------------------------------------- */

/* Runs op in a child killed at its k-th failpoint; 1 if it finished instead. */
static int
crash_at(struct fixture *f, const struct op *op, int k)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct ids_mboxlist *mbl;
		char env[16];

		snprintf(env, sizeof(env), "%d", k);
		setenv("IDS_FAILPOINT_CRASH", env, 1);
		ids_failpoint_reset();
		if (ids_mboxlist_open(&f->cfg, 0, &mbl) < 0)
			_exit(2);
		_exit(op->run(mbl) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status)) {
		assert_int_equal(WEXITSTATUS(status), 0);
		return 1;
	}
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	return 0;
}

/* Replaces the tree at to (if any) with a copy of from. */
static void
copy_tree(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
	assert_int_equal(system(cmd), 0);
}

/*
 * Crashes op at each of its points in turn, each time on a copy of the
 * spool prepare made (copied rather than prepared again: fsync is
 * slow), until one run finishes.
 */
static void
sweep(struct fixture *f, const struct op *op)
{
	char seen[8][2 * IDS_INTENT_WORD + 1], copy[80];
	int nseen = 0, k, i, done = 0, back = 0, forward = 0;

	op->prepare(f);
	ids_mboxlist_close(f->mbl);
	snprintf(copy, sizeof(copy), "%s.copy", f->dir);
	copy_tree(f->dir, copy);
	for (k = 1; !done; k++) {
		struct ids_recover_report rep = { 0 };
		struct intents left = { 0 };
		char stage[sizeof(seen[0])];
		int state;

		assert_true(k < 500);
		if (k > 1) {
			ids_mboxlist_close(f->mbl);
			copy_tree(copy, f->dir);
		}
		assert_int_equal(ids_mboxlist_open(&f->cfg, 0, &f->mbl), 0);
		done = crash_at(f, op, k);
		intents(f, &left);
		if (left.n) {
			snprintf(stage, sizeof(stage), "%s %s", left.in.op, left.in.stage);
			for (i = 0; i < nseen && strcmp(seen[i], stage) != 0; i++)
				;
			if (i == nseen && nseen < 8)
				strcpy(seen[nseen++], stage);
		}
		assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), 0);
		assert_int_equal(rep.settled, left.n);
		assert_int_equal(rep.failed + rep.busy + rep.pending, 0);
		{
			struct intents after = { 0 };

			intents(f, &after);
			assert_int_equal(after.n, 0);
		}
		state = op->outcome(f, &left);
		if (state < 0)
			fail_msg("%s killed at point %d (intent '%s'): neither before nor after",
			    op->what, k, left.n ? stage : "none");
		back += left.n && state == 0;
		forward += left.n && state == 1;
		check_folders(f);
		if (done)
			assert_int_equal(state, 1);
		ids_intent_release(&left.in);
	}
	/* Every stage of the table was met and settled, and nothing else. */
	for (i = 0; op->stages[i]; i++) {
		int j;

		for (j = 0; j < nseen && strcmp(seen[j], op->stages[i]) != 0; j++)
			;
		if (j == nseen)
			fail_msg("%s: no crash left an intent at '%s'", op->what, op->stages[i]);
	}
	assert_int_equal(nseen, i);
	assert_true(back + forward > 0);
	print_message("# %s: %d crash points, %d rolled back, %d rolled forward\n", op->what,
	    k - 2, back, forward);
	unit_rmtree(copy);
}

static void test_crash_create(void **state) { sweep(*state, &ops[0]); }
static void test_crash_delete(void **state) { sweep(*state, &ops[1]); }
static void test_crash_migrate_link(void **state) { sweep(*state, &ops[2]); }
static void test_crash_migrate_rename(void **state) { sweep(*state, &ops[3]); }
static void test_crash_rename(void **state) { sweep(*state, &ops[4]); }
static void test_crash_rename_owner(void **state) { sweep(*state, &ops[5]); }
static void test_crash_copy(void **state) { sweep(*state, &ops[6]); }
static void test_crash_user_files(void **state) { sweep(*state, &ops[7]); }

static int
setup_sieve(void **state)
{
	return fixture_setup(state, "recover", FIXTURE_SIEVE, "");
}

/* A move that fails puts back every file and directory moved before it. */
static void
test_user_files_fail(void **state)
{
	struct fixture *f = *state;
	struct intents left = { 0 };
	int r;

	prepare_files(f);
	setenv("IDS_FAILPOINT", "rename.userfile:EIO:3", 1);
	ids_failpoint_reset();
	r = run_rename_files(f->mbl);
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	assert_int_equal(r, -EIO);
	intents(f, &left);
	assert_int_equal(left.n, 0);
	assert_int_equal(outcome_rename_files(f, &left), 0);
	check_folders(f);
	/* A file of the new name in the way: refused before anything moves. */
	put_file(f, "domain/e/example.org/user/k/kate.sub", "stale");
	r = run_rename_files(f->mbl);
	assert_int_equal(r, IDS_ECONFLICT);
	assert_non_null(strstr(ids_errmsg(r), "kate.sub: the new user's sub file exists"));
	assert_string_equal(file_text(f, "user/j/john.sub"), "user/j/john.sub");
	ids_intent_release(&left.in);
}

/* --- the dispatch ------------------------------------------------------- */

static int
put_txn(struct ids_txn *txn, void *rock)
{
	const struct ids_intent *in = rock;

	return ids_intent_put(txn, in->name, in);
}

/* An intent of op for id (held in its name field, for put_txn). */
static void
put_intent(struct fixture *f, const char *id, const char *op, const char *stage)
{
	struct ids_intent in;

	ids_intent_init(&in);
	snprintf(in.op, sizeof(in.op), "%s", op);
	snprintf(in.stage, sizeof(in.stage), "%s", stage);
	assert_int_equal(ids_intent_set(&in.name, id), 0);
	assert_int_equal(ids_intent_set(&in.partition, "default"), 0);
	assert_int_equal(ids_intent_set(&in.dst, "n/user/nobody/" ID_X), 0);
	assert_int_equal(ids_mboxlist_write(f->mbl, put_txn, &in), 0);
	ids_intent_release(&in);
}

static void
test_nothing(void **state)
{
	struct fixture *f = *state;
	struct ids_recover_report rep = { 1, 1, 1, 1, 1 };

	memset(&rep, 0, sizeof(rep));
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), 0);
	assert_int_equal(rep.settled + rep.pending + rep.busy + rep.failed + rep.set_aside, 0);
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, NULL), 0);
}

/* An intent whose mailbox lock is held belongs to a live process: left alone. */
static void
test_busy(void **state)
{
	struct fixture *f = *state;
	struct ids_recover_report rep = { 0 };
	struct intents left = { 0 };
	int ready[2], go[2], status;
	char c;
	pid_t pid;

	put_intent(f, ID_X, "create", "files");
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	if ((pid = fork()) == 0) {
		struct ids_lock *l;

		close(go[1]);
		if (ids_lock_mailbox(&f->cfg, ID_X, 0, 1000, &l) < 0 || write(ready[1], "x", 1) != 1)
			_exit(1);
		(void)read(go[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), 0);
	assert_int_equal(rep.busy, 1);
	assert_int_equal(rep.settled, 0);
	intents(f, &left);
	assert_int_equal(left.n, 1);
	close(go[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), 0);
	assert_int_equal(rep.settled, 1);
	intents(f, &left);
	assert_int_equal(left.n, 0);
	ids_intent_release(&left.in);
	close(ready[0]);
	close(ready[1]);
}

/*
 * An op it does not know: reported with its key and folder, and set
 * aside as a Z record with its reason, so that later recoveries settle
 * the others and no longer fail on it.
 */
static void
test_unknown_op(void **state)
{
	struct fixture *f = *state;
	struct ids_recover_report rep = { 0 };
	struct intents left = { 0 };

	put_intent(f, ID_X, "frobnicate", "files");
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), IDS_ECORRUPT);
	assert_string_equal(ids_errmsg(IDS_ECORRUPT),
	    "intent X" ID_X " (frobnicate " ID_X "): intent of " ID_X
	    ": unknown operation 'frobnicate'; set aside as Z" ID_X);
	assert_int_equal(rep.failed, 1);
	assert_int_equal(rep.set_aside, 1);
	memset(&rep, 0, sizeof(rep));
	put_intent(f, ID_Y, "create", "files");
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), 0);
	assert_int_equal(rep.failed, 0);
	assert_int_equal(rep.settled, 1);
	intents(f, &left);
	assert_int_equal(left.n, 0);	/* the set-aside one is no intent any more */
	ids_intent_release(&left.in);
}

/* Two that fail: the first's reason is the one returned, not the last's. */
static void
test_first_reason(void **state)
{
	struct fixture *f = *state;
	struct ids_recover_report rep = { 0 };

	put_intent(f, ID_X, "frobnicate", "files");
	put_intent(f, ID_Y, "wibble", "files");
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), IDS_ECORRUPT);
	assert_int_equal(rep.failed, 2);
	assert_string_equal(ids_errmsg(IDS_ECORRUPT),
	    "intent X" ID_X " (frobnicate " ID_X "): intent of " ID_X
	    ": unknown operation 'frobnicate'; set aside as Z" ID_X);
}

/* Flipped, within the grace period: pending, until a recovery without one. */
static void
test_pending(void **state)
{
	struct fixture *f = *state;
	struct ids_relocate_opts grace = { IDS_STRATEGY_LINK, 3600, 1000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };
	struct ids_recover_report rep = { 0 };
	struct intents left = { 0 };

	prepare_legacy(f);
	assert_int_equal(ids_relocate_folder(f->mbl, "user.john.Sent", &grace, &st),
	    IDS_RELOCATE_PENDING);
	intents(f, &left);
	assert_int_equal(left.n, 1);
	assert_string_equal(left.in.stage, "flipped");
	assert_true(in_spool(f, left.in.src, "1."));	/* the old names, kept */
	assert_int_equal(ids_recover(f->mbl, &grace, &st, &rep), 0);
	assert_int_equal(rep.pending, 1);
	assert_int_equal(rep.settled, 0);
	assert_true(in_spool(f, left.in.src, "1."));
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), 0);	/* no grace */
	assert_int_equal(rep.settled, 1);
	assert_false(in_spool(f, left.in.src, "1."));
	ids_intent_release(&left.in);
	intents(f, &left);
	assert_int_equal(left.n, 0);
	assert_false(is_legacy(f, "user.john.Sent"));
	assert_int_equal(messages(f, "user.john.Sent"), 4);
	check_folders(f);
	ids_intent_release(&left.in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_migrate_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_migrate_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_rename_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_user_files, setup_sieve, teardown),
		cmocka_unit_test_setup_teardown(test_user_files_fail, setup_sieve, teardown),
		cmocka_unit_test_setup_teardown(test_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_op, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
	};

	return unit_run(tests);
}
