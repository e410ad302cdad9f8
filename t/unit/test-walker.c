/*
 * test-walker.c - the migration walk: order, filters, failures that do
 * not stop the walk, vanished folders, the stop flag, the rate and IO
 * pressure pauses, dry runs, the grace period, worker processes (per
 * partition, and per shard of owners with jobs) and the census behind
 * `relocated -s`.
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "intent.h"
#include "mailbox.h"
#include "walker.h"
#include "unit.h"
#include "fixture.h"
#include "legacy.h"

#define ID_INBOX "2d3c1d9e-5f0a-4c1b-9a7e-0123456789ab"
#define ID_SENT  "k2v9d0x7qmz1w3e8r5t6y4u2"
#define ID_2019  "047656355035e6be"
#define ID_DOM   "7a1f0c2e-1111-4c1b-9a7e-0123456789ab"
#define ID_BOB   "b0b0b0b0-2222-4c1b-9a7e-0123456789ab"
#define NFOLDERS 5
#define NFILES   (3 + 4 + 2 + 5 + 1 + NFOLDERS)	/* messages, and each cyrus.index */

struct walk {
	struct fixture fx;	/* first: fixture_teardown() frees the whole */
	/* what the callbacks saw */
	char order[16][IDS_MBNAME_MAX + 1];
	int nevents[IDS_WALK_WORKER + 1];
	unsigned worker_jobs[8];	/* WORKER events: jobs * 100 + job + 1 */
	char reason[1024];
	char olddir[512], newdir[512];
	int saw_waiting;
	int delete_on_first;	/* delete user.john.Sent at the first DONE */
	volatile sig_atomic_t stop;
	int stop_on_first;
};

static int
setup_with(void **state, unsigned flags)
{
	struct walk *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	*state = f;
	if (fixture_init(&f->fx, "walk", flags, "") < 0)
		return -1;
	if (legacy_folder(&f->fx.cfg, f->fx.mbl, "user.john", ID_INBOX, 3) < 0 ||
	    legacy_folder(&f->fx.cfg, f->fx.mbl, "user.john.Sent", ID_SENT, 4) < 0 ||
	    legacy_folder(&f->fx.cfg, f->fx.mbl, "user.john.Sent.2019", ID_2019, 2) < 0 ||
	    legacy_folder(&f->fx.cfg, f->fx.mbl, "example.com!user.mary^ann.Lists", ID_DOM, 5) < 0 ||
	    legacy_folder(&f->fx.cfg, f->fx.mbl, "user.bob", ID_BOB, 1) < 0)
		return -1;
	return 0;
}

static int
setup(void **state)
{
	return setup_with(state, 0);
}

static int
setup_two(void **state)
{
	return setup_with(state, FIXTURE_TWO);
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

static void
on_event(const struct ids_walk_event *ev, void *rock)
{
	struct walk *f = rock;
	int n = f->nevents[IDS_WALK_DONE] + f->nevents[IDS_WALK_PLAN];

	if (ev->what == IDS_WALK_WORKER && f->nevents[IDS_WALK_WORKER] < 8)
		f->worker_jobs[f->nevents[IDS_WALK_WORKER]] = ev->jobs * 100 + ev->job + 1;
	f->nevents[ev->what]++;
	if ((ev->what == IDS_WALK_DONE || ev->what == IDS_WALK_PLAN) && n < 16)
		snprintf(f->order[n], sizeof(f->order[n]), "%s", ev->name);
	if (ev->what == IDS_WALK_FAILED)
		snprintf(f->reason, sizeof(f->reason), "%s", ev->reason);
	if (ev->what == IDS_WALK_PLAN && strcmp(ev->name, "user.john.Sent") == 0) {
		snprintf(f->olddir, sizeof(f->olddir), "%s", ev->olddir);
		snprintf(f->newdir, sizeof(f->newdir), "%s", ev->newdir);
	}
	if (ev->what != IDS_WALK_DONE || f->nevents[IDS_WALK_DONE] != 1)
		return;
	if (f->stop_on_first)
		f->stop = 1;
	if (f->delete_on_first)
		assert_int_equal(ids_mailbox_delete(f->fx.mbl, "user.john.Sent"), 0);
}

static void
on_progress(const struct ids_walk_progress *p, void *rock)
{
	struct walk *f = rock;

	f->saw_waiting |= p->waiting;
}

static void
opts_init(struct walk *f, struct ids_walk_opts *o)
{
	static const struct ids_walk_opts init = IDS_WALK_OPTS_INIT;

	*o = init;
	o->event = on_event;
	o->progress = on_progress;
	o->progress_ms = 10;
	o->stop = &f->stop;
	o->rock = f;
	o->batch = 2;	/* several read transactions even here */
	o->group = 1;	/* one folder at a time: the vanish and stop tests count on it */
}

static int
position(struct walk *f, const char *name)
{
	int i;

	for (i = 0; i < 16; i++)
		if (strcmp(f->order[i], name) == 0)
			return i;
	return -1;
}

static void
census(struct walk *f, const struct ids_walk_opts *o, struct ids_walk_census *c)
{
	assert_int_equal(ids_walk_census(f->fx.mbl, o, c, NULL, NULL, NULL), 0);
}

static int
exists(struct walk *f, const char *rel)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", f->fx.dir, rel);
	return lstat(path, &st) == 0;
}

/* Every folder, children before parents; a second pass has nothing to do. */
static void
test_pass_order(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;

	opts_init(f, &o);
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, NFOLDERS);
	assert_int_equal(res.folders_done, NFOLDERS);
	assert_int_equal(res.folders_failed, 0);
	assert_int_equal(res.files_done, NFILES);
	assert_true(position(f, "user.john.Sent.2019") < position(f, "user.john.Sent"));
	assert_true(position(f, "user.john.Sent") < position(f, "user.john"));
	assert_true(position(f, "user.john") >= 0 && position(f, "user.bob") >= 0);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_true(exists(f, "spool/j/user/john/" ID_2019 "/1."));
	memset(f->nevents, 0, sizeof(f->nevents));
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, 0);
	assert_int_equal(f->nevents[IDS_WALK_DONE], 0);
}

/* Groups migrated together (ids_relocate_batch): the same outcome, counted per folder. */
static void
test_pass_grouped(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;

	opts_init(f, &o);
	o.batch = 0;
	o.group = 0;	/* the default: groups of up to 32 */
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, NFOLDERS);
	assert_int_equal(res.folders_done, NFOLDERS);
	assert_int_equal(res.folders_failed, 0);
	assert_int_equal(res.files_done, NFILES);
	assert_int_equal(f->nevents[IDS_WALK_DONE], NFOLDERS);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_true(exists(f, "spool/j/user/john/" ID_2019 "/1."));
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, 0);
}

static void
test_filters(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	struct ids_walk_census c;

	opts_init(f, &o);
	o.owner = "mary.ann@example.com";
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, 1);
	assert_string_equal(f->order[0], "example.com!user.mary^ann.Lists");
	o.owner = "nobody";
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, 0);
	o.owner = NULL;
	o.partition = "elsewhere";
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, 0);
	o.partition = "default";
	o.owner = "john";
	census(f, &o, &c);
	assert_int_equal(c.legacy, 3);
	assert_int_equal(c.uniqueid, 0);
	assert_int_equal(c.files_left, 3 + 4 + 2);
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, 3);
	o.owner = NULL;
	census(f, &o, &c);
	assert_int_equal(c.legacy, 1);
	assert_int_equal(c.uniqueid, 4);
	assert_int_equal(c.files_left, 1);
}

static int
failure_cb(const char *name, const char *uniqueid, int64_t when, const char *reason,
    void *rock)
{
	struct walk *f = rock;

	assert_string_equal(name, "user.john.Sent");
	assert_string_equal(uniqueid, ID_SENT);
	assert_true(when > 1700000000);
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
	return 0;
}

/* A folder that fails is recorded and skipped; the walk goes on. */
static void
test_failure_continues(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	struct ids_walk_census c;
	char path[256];

	snprintf(path, sizeof(path), "%s/spool/j/user/john/Sent/9.", f->fx.dir);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	opts_init(f, &o);
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_failed, 1);
	assert_int_equal(res.folders_done, NFOLDERS - 1);
	assert_non_null(strstr(f->reason, "9.: symlink"));
	f->reason[0] = '\0';
	assert_int_equal(ids_walk_census(f->fx.mbl, &o, &c, failure_cb, NULL, f), 0);
	assert_int_equal(c.failures, 1);
	assert_int_equal(c.legacy, 1);
	assert_non_null(strstr(f->reason, "symlink in the folder"));
	/* Fixed by the operator: the next pass migrates it and forgets the failure. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, 1);
	assert_int_equal(res.folders_failed, 0);
	census(f, &o, &c);
	assert_int_equal(c.failures, 0);
	assert_int_equal(c.legacy, 0);
}

/*
 * A folder deleted under the walk (after its batch was read: user.john.Sent
 * comes right after user.john.Sent.2019) is skipped, not a failure.
 */
static void
test_vanished(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;

	opts_init(f, &o);
	f->delete_on_first = 1;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_failed, 0);
	assert_int_equal(res.folders_skipped, 1);
	assert_int_equal(res.folders_done, NFOLDERS - 1);
	assert_int_equal(position(f, "user.john.Sent"), -1);
	assert_false(exists(f, "spool/j/user/john/Sent"));
}

/* The stop flag ends the pass after the folder in hand. */
static void
test_stop(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	struct ids_walk_census c;

	opts_init(f, &o);
	f->stop_on_first = 1;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, 1);
	assert_true(res.stopped);
	census(f, &o, &c);
	assert_int_equal(c.uniqueid, 1);
	f->stop = 0;
	f->stop_on_first = 0;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, NFOLDERS - 1);
	assert_false(res.stopped);
}

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --rate: files per second on average, the debt paid between folders. */
static void
test_rate(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	double t0 = seconds(), took;

	opts_init(f, &o);
	o.rate = 20;	/* 20 files, a burst of 5: at least 15 / 20 s */
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	took = seconds() - t0;
	assert_int_equal(res.files_done, NFILES);
	assert_true(took >= 0.6);
	assert_true(f->saw_waiting);
}

static void
write_pressure(const char *file, const char *avg10)
{
	char tmp[256], text[256];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	snprintf(text, sizeof(text), "some avg10=%s avg60=1.00 avg300=1.00 total=1\n"
	    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", avg10);
	assert_true((fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY, 0600)) >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	assert_int_equal(rename(tmp, file), 0);
}

/* High IO pressure pauses the walk until it falls. */
static void
test_pressure(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	char file[128];
	double avg, t0;
	pid_t pid;
	int status;

	snprintf(file, sizeof(file), "%s/pressure", f->fx.dir);
	assert_int_equal(ids_walk_read_pressure(file, &avg), -ENOENT);
	write_pressure(file, "12.50");
	assert_int_equal(ids_walk_read_pressure(file, &avg), 0);
	assert_true(avg > 12.49 && avg < 12.51);
	write_pressure(file, "95.00");
	if ((pid = fork()) == 0) {
		usleep(700000);
		write_pressure(file, "3.00");
		_exit(0);
	}
	opts_init(f, &o);
	o.max_pressure = 40;
	o.pressure_file = file;
	t0 = seconds();
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_true(seconds() - t0 >= 0.6);
	assert_int_equal(res.folders_done, NFOLDERS);
	assert_true(f->saw_waiting);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Not a PSI file: never a pause. */
	assert_int_equal(unlink(file), 0);
	assert_int_equal(creat(file, 0600) >= 0, 1);
	assert_int_equal(ids_walk_read_pressure(file, &avg), IDS_ECORRUPT);
}

/* -n: the plan, children first, and nothing changes. */
static void
test_dry_run(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	struct ids_walk_census c;
	char want[512];

	opts_init(f, &o);
	o.dry_run = 1;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(f->nevents[IDS_WALK_PLAN], NFOLDERS);
	assert_int_equal(f->nevents[IDS_WALK_DONE], 0);
	assert_true(position(f, "user.john.Sent.2019") < position(f, "user.john.Sent"));
	snprintf(want, sizeof(want), "%s/spool/j/user/john/Sent", f->fx.dir);
	assert_string_equal(f->olddir, want);
	snprintf(want, sizeof(want), "%s/spool/j/user/john/" ID_SENT, f->fx.dir);
	assert_string_equal(f->newdir, want);
	census(f, &o, &c);
	assert_int_equal(c.legacy, NFOLDERS);
	assert_true(exists(f, "spool/j/user/john/Sent/1."));
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

/* With a grace period, settle waits until the old names can go. */
static void
test_settle_grace(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	double t0 = seconds();
	int n = 0;

	opts_init(f, &o);
	o.relocate.grace = 1;
	o.owner = "bob";
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, 1);
	assert_int_equal(res.pending, 1);
	assert_true(exists(f, "spool/b/user/bob/1."));
	o.owner = "john";
	o.settle = 1;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_true(seconds() - t0 >= 1.0);
	assert_int_equal(res.pending, 0);
	assert_int_equal(ids_mboxlist_read(f->fx.mbl, intents_txn, &n), 0);
	assert_int_equal(n, 0);
	assert_false(exists(f, "spool/b/user/bob/1."));
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_false(exists(f, "spool/j/user/john/1."));
}

/* One worker per partition, each with its own mailboxes.db environment. */
static void
test_workers(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	struct ids_walk_census c;

	opts_init(f, &o);
	o.parallel = 1;
	assert_int_equal(ids_walk_run(&f->fx.cfg, &o, &res), 0);
	assert_int_equal(f->nevents[IDS_WALK_WORKER], 2);
	assert_int_equal(res.workers, 2);
	assert_int_equal(res.folders_done, NFOLDERS);
	assert_int_equal(res.folders_total, NFOLDERS);
	census(f, &o, &c);
	assert_int_equal(c.uniqueid, NFOLDERS);
	/* A dry run stays in this process. */
	o.dry_run = 1;
	assert_int_equal(ids_walk_run(&f->fx.cfg, &o, &res), 0);
	assert_int_equal(res.workers, 0);
}

/*
 * An owner's folders, DELETED ones included, share a shard; the shards
 * of a few owners are spread; no shards, and an unreadable name, are 0.
 */
static void
test_shard(void **state)
{
	static const char *const john[] = { "user.john", "user.john.Sent", "user.john.Sent.2019",
	    "DELETED.user.john.Old.6B033B15", "DELETED.user.john.6B033B15" };
	static const char *const shared[] = { "shared", "shared.news", "shared.news.2024" };
	static const char *const dom[] = { "example.com!user.mary^ann",
	    "example.com!user.mary^ann.Lists", "example.com!DELETED.user.mary^ann.X.6B033B15" };
	unsigned n, i, seen[3], s;
	char name[64];

	for (n = 2; n <= 7; n++) {
		for (i = 1; i < 5; i++)
			assert_int_equal(ids_walk_shard(john[i], n), ids_walk_shard(john[0], n));
		for (i = 1; i < 3; i++) {
			assert_int_equal(ids_walk_shard(shared[i], n), ids_walk_shard(shared[0], n));
			assert_int_equal(ids_walk_shard(dom[i], n), ids_walk_shard(dom[0], n));
		}
	}
	for (n = 2; n <= 3; n++) {
		memset(seen, 0, sizeof(seen));
		for (i = 0; i < 8; i++) {
			snprintf(name, sizeof(name), "user.u%u.Sent", i);
			assert_true((s = ids_walk_shard(name, n)) < n);
			seen[s]++;
		}
		for (i = 0; i < n; i++)
			assert_true(seen[i] > 0);
	}
	/* The same as the walk's: a fixed function, whatever the process. */
	assert_int_equal(ids_walk_shard("user.john", 2), 0);
	assert_int_equal(ids_walk_shard("example.com!user.mary^ann.Lists", 2), 1);
	assert_int_equal(ids_walk_shard("user.john", 0), 0);
	assert_int_equal(ids_walk_shard("user.john", 1), 0);
	assert_int_equal(ids_walk_shard("", 5), 0);
	assert_int_equal(ids_walk_shard("user.", 5), 0);
}

/* Two passes, one per shard: each owner in one of them, children first. */
static void
test_shard_filter(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	struct ids_walk_census c;

	opts_init(f, &o);
	o.nshards = 2;
	o.shard = 1;	/* mary.ann@example.com */
	census(f, &o, &c);
	assert_int_equal(c.legacy, 1);
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, 1);
	assert_int_equal(res.folders_done, 1);
	assert_string_equal(f->order[0], "example.com!user.mary^ann.Lists");
	memset(f->order, 0, sizeof(f->order));
	memset(f->nevents, 0, sizeof(f->nevents));
	o.shard = 0;	/* john and bob */
	o.owner = "john";
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, 3);
	assert_true(position(f, "user.john.Sent.2019") < position(f, "user.john.Sent"));
	assert_true(position(f, "user.john.Sent") < position(f, "user.john"));
	o.owner = NULL;
	o.shard = 1;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_total, 0);
	o.shard = 0;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, 1);
	o.nshards = 0;
	census(f, &o, &c);
	assert_int_equal(c.uniqueid, NFOLDERS);
	assert_false(exists(f, "spool/j/user/john/Sent"));
}

/* jobs: that many workers per partition walked, each with its shard of the owners. */
static void
test_jobs(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;
	struct ids_walk_census c;

	opts_init(f, &o);
	o.parallel = 1;
	o.jobs = 3;
	o.partition = "default";
	o.owner = "bob";	/* another owner's shard finds nothing: fine */
	assert_int_equal(ids_walk_run(&f->fx.cfg, &o, &res), 0);
	assert_int_equal(res.workers, 3);
	assert_int_equal(f->nevents[IDS_WALK_WORKER], 3);
	assert_int_equal(f->worker_jobs[0], 301);
	assert_int_equal(f->worker_jobs[2], 303);
	assert_int_equal(res.folders_total, 1);
	assert_int_equal(res.folders_done, 1);
	memset(f->nevents, 0, sizeof(f->nevents));
	/* Two partitions, two workers each; the totals are every folder once. */
	o.partition = NULL;
	o.owner = NULL;
	o.jobs = 2;
	assert_int_equal(ids_walk_run(&f->fx.cfg, &o, &res), 0);
	assert_int_equal(res.workers, 4);
	assert_int_equal(f->nevents[IDS_WALK_WORKER], 4);
	assert_int_equal(f->worker_jobs[3], 202);
	assert_int_equal(res.folders_total, NFOLDERS - 1);
	assert_int_equal(res.folders_done, NFOLDERS - 1);
	assert_int_equal(res.folders_failed + res.folders_skipped + res.errors, 0);
	assert_int_equal(res.files_done, NFILES - 2);	/* bob's message and index went first */
	census(f, &o, &c);
	assert_int_equal(c.uniqueid, NFOLDERS);
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_true(exists(f, "spool/j/user/john/" ID_2019 "/1."));
	/* Without parallel: jobs workers over every partition; a dry run forks none. */
	memset(f->nevents, 0, sizeof(f->nevents));
	o.parallel = 0;
	assert_int_equal(ids_walk_run(&f->fx.cfg, &o, &res), 0);
	assert_int_equal(res.workers, 2);
	assert_int_equal(res.folders_total, 0);
	o.dry_run = 1;
	assert_int_equal(ids_walk_run(&f->fx.cfg, &o, &res), 0);
	assert_int_equal(res.workers, 0);
	assert_int_equal(f->nevents[IDS_WALK_WORKER], 2);
}

/* The rename strategy moves leaf directories; the INBOX is linked. */
static void
test_rename_strategy(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_progress res;

	opts_init(f, &o);
	o.relocate.strategy = IDS_STRATEGY_RENAME;
	assert_int_equal(ids_walk_pass(f->fx.mbl, &o, &res), 0);
	assert_int_equal(res.folders_done, NFOLDERS);
	assert_true(res.dirs_renamed >= 3);	/* Sent.2019, Sent, the domain folder */
	assert_false(exists(f, "spool/j/user/john/Sent"));
	assert_true(exists(f, "spool/j/user/john/" ID_SENT "/1."));
	assert_false(exists(f, "spool/domain"));
}

/* Dropping the map's pages from the resident set loses nothing. */
static void
test_trim(void **state)
{
	struct walk *f = *state;
	struct ids_walk_opts o;
	struct ids_walk_census a, b;

	opts_init(f, &o);
	census(f, &o, &a);
	assert_int_equal(ids_mboxlist_trim(f->fx.mbl), 0);
	census(f, &o, &b);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(a.legacy, NFOLDERS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pass_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pass_grouped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workers, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_shard, NULL, NULL),
		cmocka_unit_test_setup_teardown(test_shard_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jobs, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_rename_strategy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
	};

	return unit_run(tests);
}
