/*
 * walker.c - the background migration walk (walker.h).
 *
 * A pass keeps a position in mailboxes.db and reads the next batch of
 * N records before it (reverse dbname order: children first) in a short
 * read transaction, keeping only the legacy folders it may migrate.
 * Outside the transaction it takes each candidate in turn: it pays off
 * the rate's debt and waits out IO pressure (no lock is held then),
 * settles dead intents when a recovery is due, and calls
 * ids_relocate_folder(), which takes the folder's lock and reads its
 * record again, so a name renamed, deleted or migrated since the batch
 * was read is found out there.  The outcome is reported as an event.
 *
 * The file also holds the worker processes of ids_walk_run (one per
 * partition, or with jobs several per partition, each taking the owners
 * of one shard; each with its own LMDB environment, reporting its
 * progress through a pipe) and the census read by `relocated -s`.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "failure.h"
#include "fsutil.h"
#include "index.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "recover.h"
#include "relocate.h"
#include "walker.h"
#include "tombstones.h"

#define DEFAULT_BATCH		512
#define WALK_GROUP		128	/* folders per group of ids_relocate_batch by default */
#define WALK_GROUP_MAX		128
#define DEFAULT_RECOVER		60
#define DEFAULT_PROGRESS_MS	1000
#define PRESSURE_FILE		"/proc/pressure/io"
#define PRESSURE_EVERY		0.5	/* seconds between PSI reads */
#define SLICE			0.2	/* longest sleep between stop checks */
#define REASON_MAX		1024
#define TRIM_RECORDS		1024	/* records read between two map trims */

struct candidate {
	char name[IDS_MBNAME_MAX + 1];
	char uniqueid[IDS_UNIQUEID_MAX + 1];
	const char *partition;	/* the configured partition's name */
	int known_partition;	/* 0: the record names no configured partition */
};

struct walker {
	struct ids_mboxlist *mbl;
	const struct ids_config *cfg;
	const struct ids_walk_opts *o;
	struct ids_relocate_opts ropts;
	struct ids_relocate_stats rs;		/* cumulative, for deltas */
	struct ids_walk_progress prog;
	struct candidate *batch;
	size_t nbatch, cap;
	const char **names;			/* a batch's names, for ids_relocate_batch */
	struct ids_relocate_result *res;	/* and its results */
	struct ids_scanpos pos;
	double t0, last_progress, last_recover, last_pressure;
	double tokens, bucket_t, burst;
	char reason[REASON_MAX];
	char olddir[PATH_MAX], newdir[PATH_MAX];
	char oldmeta[PATH_MAX], newmeta[PATH_MAX];
};

/* --- time, stopping, reporting --------------------------------------- */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Told to stop, or (a worker) orphaned: a worker whose parent died,
 * were it killed with -9, must not go on walking beside the next
 * walker.  PR_SET_PDEATHSIG kills it at once; this check covers a
 * parent that died between the fork and the prctl().
 */
static int
stopped(const struct walker *w)
{
	return (w->o->stop != NULL && *w->o->stop != 0) ||
	    (w->o->parent != 0 && getppid() != w->o->parent);
}

static void
report(struct walker *w, int force)
{
	unsigned ms = w->o->progress_ms ? w->o->progress_ms : DEFAULT_PROGRESS_MS;
	double t = now();

	if (w->o->progress == NULL ||
	    (!force && (t - w->last_progress) * 1000.0 < (double)ms))
		return;
	w->last_progress = t;
	w->prog.elapsed = t - w->t0;
	w->prog.stopped = stopped(w);
	w->o->progress(&w->prog, w->o->rock);
}

static void
emit(struct walker *w, struct ids_walk_event *ev)
{
	if (w->o->event != NULL)
		w->o->event(ev, w->o->rock);
}

/* Sleeps secs seconds in short slices, returning early once stopped. */
static void
sleep_for(struct walker *w, double secs)
{
	double end = now() + secs, left;
	struct timespec ts;

	while (!stopped(w) && (left = end - now()) > 0) {
		if (left > SLICE)
			left = SLICE;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
		report(w, 0);
	}
}

/* --- throttling ------------------------------------------------------ */

static void
bucket_refill(struct walker *w)
{
	double t = now();

	w->tokens += (t - w->bucket_t) * w->o->rate;
	if (w->tokens > w->burst)
		w->tokens = w->burst;
	w->bucket_t = t;
}

/*
 * relocate.c calls this after every file linked or copied, with the
 * folder's lock held: it only counts (the debt is paid between
 * folders, see walker.h) and keeps progress flowing in huge folders.
 */
static int
throttle_cb(void *rock)
{
	struct walker *w = rock;

	w->tokens -= 1.0;
	w->prog.files_done++;
	report(w, 0);
	return 0;
}

static void
pay_debt(struct walker *w)
{
	if (w->o->rate <= 0)
		return;
	bucket_refill(w);
	if (w->tokens >= 0)
		return;
	w->prog.waiting = 1;
	report(w, 0);
	sleep_for(w, -w->tokens / w->o->rate);
	w->prog.waiting = 0;
	bucket_refill(w);
}

int
ids_walk_read_pressure(const char *file, double *avg10)
{
	char buf[512], *p;
	ssize_t n;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if ((p = strstr(buf, "some ")) == NULL || (p = strstr(p, "avg10=")) == NULL)
		return ids_error(IDS_ECORRUPT, "%s: no 'some avg10=' line", file);
	*avg10 = strtod(p + 6, NULL);
	return 0;
}

/* Waits while the IO pressure is above the threshold (checked twice a second). */
static void
yield_to_pressure(struct walker *w)
{
	const char *file = w->o->pressure_file ? w->o->pressure_file : PRESSURE_FILE;
	double avg;

	if (w->o->max_pressure <= 0 || now() - w->last_pressure < PRESSURE_EVERY)
		return;
	while (!stopped(w) && ids_walk_read_pressure(file, &avg) == 0 &&
	    avg > w->o->max_pressure) {
		w->prog.waiting = 1;
		report(w, 1);
		sleep_for(w, 1.0);
	}
	w->last_pressure = now();
	w->prog.waiting = 0;
}

/* --- recovery -------------------------------------------------------- */

static void
do_recover(struct walker *w)
{
	struct ids_recover_report rep = { 0 };
	struct ids_walk_event ev = { .what = IDS_WALK_ERROR };
	char reason[REASON_MAX];
	int r = ids_recover(w->mbl, &w->ropts, &w->rs, &rep);

	w->last_recover = now();
	w->prog.pending = rep.pending;
	if (r >= 0)
		return;
	snprintf(reason, sizeof(reason), "recovery: %s", ids_errmsg(r));
	w->prog.errors++;
	ev.code = r;
	ev.reason = reason;
	ev.partition = w->o->partition;
	emit(w, &ev);
}

static void
maybe_recover(struct walker *w)
{
	unsigned every = w->o->recover_interval ? w->o->recover_interval : DEFAULT_RECOVER;

	if (now() - w->last_recover >= (double)every)
		do_recover(w);
}

/* Runs recovery until no migration waits for its grace period. */
static void
settle(struct walker *w)
{
	while (!stopped(w)) {
		do_recover(w);
		if (w->prog.pending == 0)
			break;
		w->prog.waiting = 1;
		report(w, 1);
		sleep_for(w, 1.0);
	}
	w->prog.waiting = 0;
}

/* --- choosing the folders -------------------------------------------- */

/*
 * The shard of an owner: zlib's CRC-32 of its spelling, modulo nshards.
 * Every worker of a run must put an owner in the same shard, and a run
 * stopped and started again had better too, so the hash is a fixed
 * function of the bytes (no per-process seed); CRC-32 is one, zlib is
 * linked already, and it spreads names that differ in one character.
 */
static unsigned
owner_shard(const char *owner, unsigned nshards)
{
	uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)owner, (uInt)strlen(owner));

	return nshards > 1 ? (unsigned)(crc % nshards) : 0;
}

/* Into owner (IDS_MBNAME_MAX + 1 bytes) the owner of name; 0 or negative. */
static int
name_owner(const char *name, char *owner)
{
	struct ids_mbname mb;
	int r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0 ||
	    (r = ids_mbname_owner(&mb, owner, IDS_MBNAME_MAX + 1)) < 0)
		return r;
	return 0;
}

unsigned
ids_walk_shard(const char *name, unsigned nshards)
{
	char owner[IDS_MBNAME_MAX + 1];

	if (nshards <= 1 || name_owner(name, owner) < 0)
		return 0;
	return owner_shard(owner, nshards);
}

/* The partition, owner and shard filters of o. */
static int
matches(const struct ids_config *cfg, const struct ids_walk_opts *o,
    const struct ids_mbentry *e)
{
	const struct ids_partition *p = ids_config_partition(cfg, e->partition);
	char owner[IDS_MBNAME_MAX + 1];
	int parsed;

	if (o->partition != NULL && (p == NULL || strcmp(p->name, o->partition) != 0))
		return 0;
	if (o->owner == NULL && o->nshards <= 1)
		return 1;
	parsed = name_owner(e->name, owner) == 0;
	if (o->owner != NULL && (!parsed || strcmp(owner, o->owner) != 0))
		return 0;
	/* A name without an owner we can read is shard 0's: some worker takes it. */
	return o->nshards <= 1 || (parsed ? owner_shard(owner, o->nshards) : 0) == o->shard;
}

/*
 * A live folder this host keeps on its own disk: not a tombstone, not
 * remote, not an intermediate or reserved name, not being moved.
 */
static int
local_folder(const struct ids_mbentry *e)
{
	return !ids_mbentry_is_tombstone(e) &&
	    !ids_mbtype_has(e->mbtype, IDS_MBFLAG_REMOTE) &&
	    !ids_mbtype_has(e->mbtype, IDS_MBFLAG_INTERMEDIATE) &&
	    !ids_mbtype_has(e->mbtype, IDS_MBFLAG_RESERVED) &&
	    !ids_mbtype_has(e->mbtype, IDS_MBFLAG_MOVING);
}

static int
is_candidate(const struct walker *w, const struct ids_mbentry *e)
{
	return local_folder(e) && ids_mbentry_is_legacy(e) && matches(w->cfg, w->o, e);
}

static int
collect_cb(const struct ids_mbentry *e, void *rock)
{
	struct walker *w = rock;
	const struct ids_partition *p;
	struct candidate *c;

	if (!is_candidate(w, e) || w->nbatch == w->cap ||
	    strlen(e->name) >= sizeof(c->name) || strlen(e->uniqueid) >= sizeof(c->uniqueid))
		return 0;
	c = &w->batch[w->nbatch++];
	strcpy(c->name, e->name);
	strcpy(c->uniqueid, e->uniqueid);
	p = ids_config_partition(w->cfg, e->partition);
	c->known_partition = p != NULL;
	c->partition = p ? p->name : NULL;
	return 0;
}

static int
count_cb(const struct ids_mbentry *e, void *rock)
{
	struct walker *w = rock;

	if (is_candidate(w, e))
		w->prog.folders_total++;
	return 0;
}

/*
 * Every TRIM_RECORDS records read, drops the mailboxes.db pages mapped
 * so far from the resident set: a walk touches every page of the file,
 * and without this its RSS would grow with the number of folders.
 */
static void
maybe_trim(struct ids_mboxlist *mbl, unsigned long *since, int nread)
{
	*since += (unsigned long)(nread > 0 ? nread : 0);
	if (*since >= TRIM_RECORDS) {
		ids_mboxlist_trim(mbl);
		*since = 0;
	}
}

static int
count_candidates(struct walker *w)
{
	struct ids_scanpos pos;
	unsigned long since = 0;
	int r;

	memset(&pos, 0, sizeof(pos));
	w->prog.folders_total = 0;
	while ((r = ids_mboxlist_scan(w->mbl, &pos, IDS_SCAN_REVERSE, 1024, count_cb, w)) > 0)
		maybe_trim(w->mbl, &since, r);
	return r;
}

/* 1 if name is still the live legacy folder c, 0 if not, or negative. */
static int
still_legacy(struct walker *w, const struct candidate *c)
{
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup(w->mbl, c->name, &e);
	if (r == 0)
		r = local_folder(&e) && ids_mbentry_is_legacy(&e) &&
		    strcmp(e.uniqueid, c->uniqueid) == 0;
	else if (r == IDS_ENOTFOUND)
		r = 0;
	ids_mbentry_release(&e);
	return r;
}

/* --- paths for events ------------------------------------------------ */

/* The directory of the first kind of meta file kept on a metapartition. */
static int
meta_kind(const struct ids_config *cfg)
{
	int k;

	for (k = 0; k < IDS_META_NKINDS; k++)
		if (cfg->metapartition_files & (1u << k))
			return k;
	return -1;
}

static void
one_layout(struct walker *w, struct ids_location *loc, enum ids_layout layout,
    char *data, char *meta)
{
	int k = meta_kind(w->cfg);

	loc->layout = layout;
	if (ids_path_datadir(w->cfg, loc, data, PATH_MAX) < 0)
		data[0] = '\0';
	if (k < 0 || ids_path_metadir(w->cfg, loc, (enum ids_metafile)k, meta, PATH_MAX) < 0 ||
	    strcmp(meta, data) == 0)
		meta[0] = '\0';
}

/* Fills ev's directories for c (left empty when they cannot be computed). */
static void
folder_paths(struct walker *w, const struct candidate *c, struct ids_walk_event *ev)
{
	struct ids_mbname mb;
	struct ids_location loc = { &mb, c->uniqueid, c->partition, IDS_LAYOUT_LEGACY };

	w->olddir[0] = w->newdir[0] = w->oldmeta[0] = w->newmeta[0] = '\0';
	if (c->known_partition && ids_mbname_parse_internal(&mb, c->name, 0) == 0) {
		one_layout(w, &loc, IDS_LAYOUT_LEGACY, w->olddir, w->oldmeta);
		one_layout(w, &loc, IDS_LAYOUT_UNIQUEID, w->newdir, w->newmeta);
	}
	ev->name = c->name;
	ev->uniqueid = c->uniqueid;
	ev->partition = c->partition;
	ev->olddir = w->olddir;
	ev->newdir = w->newdir;
	ev->oldmeta = w->oldmeta[0] ? w->oldmeta : NULL;
	ev->newmeta = w->newmeta[0] ? w->newmeta : NULL;
}

/* --- failure records ------------------------------------------------- */

struct frec {
	const struct candidate *c;
	const char *reason;
	int present;
};

static int
frec_get_txn(struct ids_txn *txn, void *rock)
{
	struct frec *f = rock;
	int r = ids_failure_exists(txn, f->c->uniqueid);

	f->present = r == 1;
	return r < 0 ? r : 0;
}

static int
frec_put_txn(struct ids_txn *txn, void *rock)
{
	struct frec *f = rock;

	return ids_failure_put(txn, f->c->uniqueid, f->c->name, f->reason);
}

/*
 * relocate.c records the failures it meets under the folder's lock;
 * the walker adds one for those met before (opening the folder).
 */
static void
record_failure(struct walker *w, const struct candidate *c, const char *reason)
{
	struct frec f = { c, reason, 0 };

	if (ids_mboxlist_read(w->mbl, frec_get_txn, &f) < 0 || f.present)
		return;
	if (IDS_FAILPOINT("walker.record_failure") == 0)
		ids_mboxlist_write(w->mbl, frec_put_txn, &f);
}

/* 1 if uniqueid belongs to a live legacy folder (its N entry in *e). */
static int
live_legacy_id(struct ids_txn *txn, const char *uniqueid, struct ids_mbentry *e)
{
	struct ids_mbentry i;
	int r;

	ids_mbentry_init(&i);
	r = ids_txn_lookup_id(txn, uniqueid, &i);
	if (r == 0)
		r = ids_txn_lookup_name(txn, i.name, e);
	if (r == 0)
		r = local_folder(e) && ids_mbentry_is_legacy(e) &&
		    strcmp(e->uniqueid, uniqueid) == 0;
	ids_mbentry_release(&i);
	return r == IDS_ENOTFOUND ? 0 : r;
}

struct stale {
	struct ids_txn *txn;
	struct ids_idlist l;
};

static int
stale_cb(const char *id, const char *val, size_t len, void *rock)
{
	struct stale *s = rock;
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	r = live_legacy_id(s->txn, id, &e);
	ids_mbentry_release(&e);
	if (r != 0)
		return r < 0 ? r : 0;
	return ids_idlist_add(&s->l, id);
}

static int
stale_find_txn(struct ids_txn *txn, void *rock)
{
	struct stale *s = rock;

	s->txn = txn;
	s->l.n = 0;
	return ids_failure_foreach(txn, stale_cb, s);
}

static int
stale_del_txn(struct ids_txn *txn, void *rock)
{
	struct stale *s = rock;
	size_t i;
	int r;

	for (i = 0; i < s->l.n; i++)
		if ((r = ids_failure_del(txn, s->l.ids[i])) < 0)
			return r;
	return 0;
}

/* Drops failure records of folders that are migrated, renamed or gone. */
static void
prune_failures(struct walker *w)
{
	struct stale s = { NULL, IDS_IDLIST_INIT };

	if (ids_mboxlist_read(w->mbl, stale_find_txn, &s) == 0 && s.l.n > 0 &&
	    IDS_FAILPOINT("walker.prune_failures") == 0)
		ids_mboxlist_write(w->mbl, stale_del_txn, &s);
	ids_idlist_release(&s.l);
}

/* --- one folder ------------------------------------------------------ */

static void
stats_delta(const struct ids_relocate_stats *a, const struct ids_relocate_stats *b,
    struct ids_relocate_stats *d)
{
	d->folders = b->folders - a->folders;
	d->files_linked = b->files_linked - a->files_linked;
	d->files_copied = b->files_copied - a->files_copied;
	d->bytes_copied = b->bytes_copied - a->bytes_copied;
	d->files_foreign = b->files_foreign - a->files_foreign;
	d->dirs_renamed = b->dirs_renamed - a->dirs_renamed;
	d->dirs_removed = b->dirs_removed - a->dirs_removed;
}

/*
 * Migrates c; a first call may only settle what an earlier, dead
 * attempt left (relocate.h), so a folder still legacy is tried again.
 */
static int
relocate_one(struct walker *w, const struct candidate *c, struct ids_relocate_stats *d)
{
	struct ids_relocate_stats before = w->rs;
	int r = 0, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		w->reason[0] = '\0';
		r = ids_relocate_folder(w->mbl, c->name, &w->ropts, &w->rs);
		if (r < 0)
			snprintf(w->reason, sizeof(w->reason), "%s", ids_errmsg(r));
		if (r != 0 || w->rs.folders != before.folders || still_legacy(w, c) != 1)
			break;
	}
	stats_delta(&before, &w->rs, d);
	return r;
}

static void
done(struct walker *w, const struct candidate *c, int pending,
    const struct ids_relocate_stats *d)
{
	struct ids_walk_event ev = { .what = IDS_WALK_DONE };

	w->prog.folders_done++;
	w->prog.pending += pending;
	w->prog.dirs_renamed += d->dirs_renamed;
	w->prog.bytes_copied += d->bytes_copied;
	w->tokens -= (double)d->dirs_renamed;
	folder_paths(w, c, &ev);
	ev.files = d->files_linked + d->files_copied;
	ev.pending = pending;
	emit(w, &ev);
	if (d->files_foreign > 0) {
		ev.what = IDS_WALK_FOREIGN;
		ev.files = d->files_foreign;
		emit(w, &ev);
	}
}

static void
failed(struct walker *w, const struct candidate *c, int code, const char *reason)
{
	struct ids_walk_event ev = { .what = IDS_WALK_FAILED };
	const char *advice = ids_relocate_advice(code);
	char full[REASON_MAX];

	/* One reason per folder, with what to do about it once. */
	if (advice != NULL && strstr(reason, advice) == NULL) {
		snprintf(full, sizeof(full), "%s; %s", reason, advice);
		reason = full;
	}
	w->prog.folders_failed++;
	record_failure(w, c, reason);
	folder_paths(w, c, &ev);
	ev.code = code;
	ev.reason = reason;
	emit(w, &ev);
}

static void account(struct walker *w, const struct candidate *c, int r,
    const struct ids_relocate_stats *dd);

static void
visit(struct walker *w, const struct candidate *c)
{
	struct ids_relocate_stats d;

	pay_debt(w);
	yield_to_pressure(w);
	maybe_recover(w);
	if (stopped(w))
		return;
	account(w, c, relocate_one(w, c, &d), &d);
}

/*
 * The candidates of a batch migrated together by ids_relocate_batch
 * (in groups of group_size() pipelined: one syncfs and one commit per
 * group); a folder the batch only settled (an earlier attempt's intent)
 * is tried again on its own, as relocate_one does.  The stop flag is
 * honoured after the batch.
 */
static void
visit_group(struct walker *w, const struct candidate *cs, size_t n)
{
	const char **names = w->names;
	struct ids_relocate_result *res = w->res;
	struct ids_relocate_stats zero = { 0 };
	size_t i;

	pay_debt(w);
	yield_to_pressure(w);
	maybe_recover(w);
	if (stopped(w))
		return;
	for (i = 0; i < n; i++)
		names[i] = cs[i].name;
	if (ids_relocate_batch(w->mbl, names, n, &w->ropts, &w->rs, res) < 0) {
		for (i = 0; i < n && !stopped(w); i++)
			visit(w, &cs[i]);
		return;
	}
	for (i = 0; i < n; i++) {
		snprintf(w->reason, sizeof(w->reason), "%s", res[i].reason);
		if (res[i].rc == 0 && res[i].st.folders == 0 && still_legacy(w, &cs[i]) == 1)
			visit(w, &cs[i]);
		else
			account(w, &cs[i], res[i].rc, res[i].rc < 0 ? &zero : &res[i].st);
	}
}

static size_t
group_size(const struct walker *w)
{
	unsigned g = w->o->group ? w->o->group : w->o->rate > 0 ? 1 : WALK_GROUP;

	return g > WALK_GROUP_MAX ? WALK_GROUP_MAX : g;
}

/* Counts and reports one folder's outcome. */
static void
account(struct walker *w, const struct candidate *c, int r,
    const struct ids_relocate_stats *dd)
{
	struct ids_relocate_stats d = *dd;
	int live;

	if (r >= 0 && d.folders > 0) {
		done(w, c, r == IDS_RELOCATE_PENDING, &d);
	} else if (r == 0 || r == IDS_ENOTFOUND || r == IDS_EBUSY) {
		/* Gone, renamed, replaced or migrated by someone else: not ours. */
		if ((live = still_legacy(w, c)) == 0)
			w->prog.folders_skipped++;
		else if (r == 0)
			failed(w, c, IDS_EBUSY, "still legacy after settling an earlier attempt");
		else
			failed(w, c, r, w->reason);
	} else {
		failed(w, c, r, w->reason);
	}
	report(w, 0);
}

static void
plan(struct walker *w, const struct candidate *c)
{
	struct ids_walk_event ev = { .what = IDS_WALK_PLAN };

	folder_paths(w, c, &ev);
	emit(w, &ev);
}

/* --- a pass ---------------------------------------------------------- */

static struct walker *
walker_new(struct ids_mboxlist *mbl, const struct ids_walk_opts *o)
{
	struct walker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->cap = o->batch ? o->batch : DEFAULT_BATCH;
	w->batch = calloc(w->cap, sizeof(*w->batch));
	w->names = calloc(w->cap, sizeof(*w->names));
	w->res = calloc(w->cap, sizeof(*w->res));
	if (w->batch == NULL || w->names == NULL || w->res == NULL) {
		free(w->batch);
		free(w->names);
		free(w->res);
		free(w);
		return NULL;
	}
	w->mbl = mbl;
	w->cfg = ids_mboxlist_config(mbl);
	w->o = o;
	w->ropts = o->relocate;
	w->ropts.throttle = throttle_cb;
	w->ropts.throttle_rock = w;
	w->ropts.group = (unsigned)group_size(w);
	w->t0 = w->bucket_t = now();
	w->burst = o->rate > 4.0 ? o->rate / 4.0 : 1.0;	/* a quarter second's worth */
	w->tokens = w->burst;
	w->last_pressure = -1e9;
	return w;
}

static int
walk_batches(struct walker *w)
{
	unsigned long since = 0;
	size_t i, n;
	int r;

	while (!stopped(w)) {
		w->nbatch = 0;
		r = ids_mboxlist_scan(w->mbl, &w->pos, IDS_SCAN_REVERSE, w->cap, collect_cb, w);
		if (r <= 0)
			return r;
		maybe_trim(w->mbl, &since, r);
		for (i = 0; i < w->nbatch && !stopped(w); i += n) {
			/* Groups: the whole batch in one pipeline. */
			n = group_size(w) > 1 ? w->nbatch - i : 1;
			if (w->o->dry_run)
				plan(w, &w->batch[i]), n = 1;
			else if (n == 1)
				visit(w, &w->batch[i]);
			else
				visit_group(w, &w->batch[i], n);
			/*
			 * A folder migrated writes some 30 pages (copy on write,
			 * anywhere in the file's free space) that its later
			 * lookups map again, each with the neighbours the
			 * kernel's fault-around maps with it (64 KiB): some 2 MiB
			 * per folder.  Dropping the map costs ~150 us: do it
			 * after every folder, or group of folders.
			 */
			if (!w->o->dry_run) {
				ids_mboxlist_trim(w->mbl);
				since = 0;
			}
		}
	}
	return 0;
}

int
ids_walk_pass(struct ids_mboxlist *mbl, const struct ids_walk_opts *o,
    struct ids_walk_progress *res)
{
	struct walker *w = walker_new(mbl, o);
	int r;

	if (w == NULL)
		return -ENOMEM;
	if (!o->dry_run)
		do_recover(w);
	if ((r = count_candidates(w)) >= 0) {
		report(w, 1);
		r = walk_batches(w);
	}
	if (r >= 0 && !o->dry_run) {
		pay_debt(w);	/* the last folder's files count too */
		prune_failures(w);
		if (o->settle)
			settle(w);
	}
	report(w, 1);
	w->prog.elapsed = now() - w->t0;
	w->prog.stopped = stopped(w);
	if (res != NULL)
		*res = w->prog;
	free(w->batch);
	free(w->names);
	free(w->res);
	free(w);
	return r < 0 ? r : 0;
}

/* --- worker processes: per partition, and per shard with jobs -------- */

/*
 * The most workers of one run: the parent holds a pipe from each, and
 * the usual limit of open files is 1024.
 */
#define WORKERS_MAX	512

enum { MSG_PROGRESS, MSG_FINAL };

/* One pipe write each, under PIPE_BUF, so never interleaved or torn. */
struct wmsg {
	int kind;
	int code;
	struct ids_walk_progress p;
	char text[1024];
};

struct worker {
	pid_t pid;
	int fd;
	const char *partition;		/* its partition filter (NULL: all) */
	unsigned shard, nshards;	/* its shard filter */
	unsigned job, jobs;		/* it is job + 1 of jobs of its partition */
	struct ids_walk_progress p;
	int final;
	int code;
	char text[1024];
};

struct wctx {
	const struct ids_walk_opts *o;
	int fd;
};

/* What messages call w: "partition P", or "partition P, worker K/N". */
static const char *
worker_label(const struct worker *w, char *buf, size_t size)
{
	if (w->jobs <= 1)
		snprintf(buf, size, "partition %s", w->partition ? w->partition : "*");
	else if (w->partition != NULL)
		snprintf(buf, size, "partition %s, worker %u/%u", w->partition, w->job + 1, w->jobs);
	else
		snprintf(buf, size, "worker %u/%u", w->job + 1, w->jobs);
	return buf;
}

static void
send_msg(int fd, int kind, int code, const struct ids_walk_progress *p, const char *text)
{
	struct wmsg m;

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.code = code;
	m.p = *p;
	if (text != NULL)
		snprintf(m.text, sizeof(m.text), "%s", text);
	if (write(fd, &m, sizeof(m)) < 0)
		return;	/* the parent is gone: PR_SET_PDEATHSIG ends this worker */
}

static void
worker_progress(const struct ids_walk_progress *p, void *rock)
{
	struct wctx *x = rock;

	send_msg(x->fd, MSG_PROGRESS, 0, p, NULL);
}

static void
worker_event(const struct ids_walk_event *ev, void *rock)
{
	struct wctx *x = rock;

	if (x->o->event != NULL)
		x->o->event(ev, x->o->rock);
}

/*
 * The child: its own environment, its own partition and shard, then
 * _exit.  It dies with its parent (SIGKILL, as if killed beside it: the
 * walk is safe at every point), so that a walker killed with -9 leaves
 * no worker holding its pidfile's lock or migrating beside the next one.
 */
static void __attribute__((noreturn))
worker_main(const struct ids_config *cfg, const struct ids_walk_opts *o,
    const struct worker *me, size_t nworkers, int fd, pid_t parent)
{
	struct ids_walk_opts wo = *o;
	struct ids_walk_progress res;
	struct ids_mboxlist *mbl;
	struct wctx x = { o, fd };
	int r;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(3);	/* no way to follow the parent, or it is gone already */
	signal(SIGPIPE, SIG_IGN);
	memset(&res, 0, sizeof(res));
	wo.partition = me->partition;
	wo.shard = me->shard;
	wo.nshards = me->nshards;
	wo.rate = o->rate / (double)nworkers;
	wo.parallel = 0;
	wo.jobs = 0;
	wo.event = worker_event;
	wo.progress = worker_progress;
	wo.rock = &x;
	wo.parent = parent;
	if ((r = ids_mboxlist_open(cfg, 0, &mbl)) == 0) {
		r = ids_walk_pass(mbl, &wo, &res);
		ids_mboxlist_close(mbl);
	}
	send_msg(fd, MSG_FINAL, r, &res, r < 0 ? ids_errmsg(r) : NULL);
	fflush(NULL);
	_exit(r < 0 ? 3 : 0);
}

/*
 * The workers of a run: for each partition walked, jobs of them, the
 * k-th taking shard base * k + o->shard of base * jobs, base being
 * o->nshards (or 1): the owners of o's own shard, split in jobs.
 */
static int
plan_workers(const struct ids_config *cfg, const struct ids_walk_opts *o,
    struct worker **wsp, size_t *np)
{
	int each = o->parallel && o->partition == NULL;
	size_t nparts = each ? cfg->npartitions : 1;
	unsigned jobs = o->jobs > 1 ? o->jobs : 1, k;
	unsigned base = o->nshards > 1 ? o->nshards : 1;
	struct worker *ws, *w;
	size_t i, n = nparts * jobs;

	*wsp = NULL;
	*np = n;
	if (n > WORKERS_MAX)
		return ids_error(IDS_EINVAL, "%zu partitions, %u workers each: at most %d workers",
		    nparts, jobs, WORKERS_MAX);
	if (base > UINT_MAX / jobs)
		return ids_error(IDS_EINVAL, "%u shards, %u workers each: too many shards",
		    base, jobs);
	if ((ws = calloc(n ? n : 1, sizeof(*ws))) == NULL)
		return -ENOMEM;
	for (i = 0; i < nparts; i++) {
		for (k = 0; k < jobs; k++) {
			w = &ws[i * jobs + k];
			w->fd = -1;
			w->partition = each ? cfg->partitions[i].name : o->partition;
			w->job = k;
			w->jobs = jobs;
			w->shard = jobs > 1 ? (base > 1 ? o->shard : 0) + base * k : o->shard;
			w->nshards = jobs > 1 ? base * jobs : o->nshards;
		}
	}
	*wsp = ws;
	return 0;
}

static int
start_workers(const struct ids_config *cfg, const struct ids_walk_opts *o,
    struct worker *ws, size_t n)
{
	struct ids_walk_event ev = { .what = IDS_WALK_WORKER };
	pid_t self = getpid();
	int p[2];
	size_t i, j;

	fflush(NULL);
	for (i = 0; i < n; i++) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return ids_error(ids_errno(), "pipe: %s", strerror(errno));
		if ((ws[i].pid = fork()) < 0) {
			close(p[0]);
			close(p[1]);
			return ids_error(ids_errno(), "fork: %s", strerror(errno));
		}
		if (ws[i].pid == 0) {
			close(p[0]);
			for (j = 0; j < i; j++)
				close(ws[j].fd);
			worker_main(cfg, o, &ws[i], n, p[1], self);
		}
		close(p[1]);
		ws[i].fd = p[0];
		ev.partition = ws[i].partition;
		ev.pid = ws[i].pid;
		ev.job = ws[i].job;
		ev.jobs = ws[i].jobs > 1 ? ws[i].jobs : 0;
		if (o->event != NULL)
			o->event(&ev, o->rock);
	}
	return 0;
}

static void
sum_progress(const struct worker *ws, size_t n, struct ids_walk_progress *s)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < n; i++) {
		const struct ids_walk_progress *p = &ws[i].p;

		s->folders_total += p->folders_total;
		s->folders_done += p->folders_done;
		s->folders_failed += p->folders_failed;
		s->folders_skipped += p->folders_skipped;
		s->files_done += p->files_done;
		s->bytes_copied += p->bytes_copied;
		s->dirs_renamed += p->dirs_renamed;
		s->pending += p->pending;
		s->errors += p->errors;
		s->elapsed = p->elapsed > s->elapsed ? p->elapsed : s->elapsed;
		s->waiting |= p->waiting;
		s->stopped |= p->stopped;
	}
	s->workers = (int)n;
}

/* Reads one message from w's pipe; 0 at its end (the fd is closed then). */
static int
read_msg(struct worker *w)
{
	struct wmsg m;
	ssize_t n;

	while ((n = read(w->fd, &m, sizeof(m))) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(m)) {
		close(w->fd);
		w->fd = -1;
		return 0;
	}
	w->p = m.p;
	if (m.kind == MSG_FINAL) {
		w->final = 1;
		w->code = m.code;
		memcpy(w->text, m.text, sizeof(w->text));
	}
	return 1;
}

/*
 * Relays the workers' progress until every pipe is closed; pfd and who
 * have room for n entries (who[j]: the worker of pfd[j]).
 */
static void
watch_workers(const struct ids_walk_opts *o, struct worker *ws, size_t n,
    struct pollfd *pfd, size_t *who)
{
	unsigned ms = o->progress_ms ? o->progress_ms : DEFAULT_PROGRESS_MS;
	struct ids_walk_progress sum;
	size_t i, j, k;
	int forwarded = 0;

	for (;;) {
		for (i = k = 0; i < n; i++) {
			if (ws[i].fd < 0)
				continue;
			pfd[k] = (struct pollfd){ ws[i].fd, POLLIN, 0 };
			who[k++] = i;
		}
		if (k == 0)
			break;
		if (o->stop != NULL && *o->stop && !forwarded) {
			for (i = 0; i < n; i++)
				if (ws[i].pid > 0)
					kill(ws[i].pid, SIGTERM);
			forwarded = 1;
		}
		if (poll(pfd, (nfds_t)k, (int)ms) > 0)
			for (j = 0; j < k; j++)
				if (pfd[j].revents & (POLLIN | POLLHUP | POLLERR))
					read_msg(&ws[who[j]]);
		sum_progress(ws, n, &sum);
		if (o->progress != NULL)
			o->progress(&sum, o->rock);
	}
}

/* Reaps the workers; a worker that could not run or died is an ERROR. */
static int
reap_workers(const struct ids_walk_opts *o, struct worker *ws, size_t n,
    struct ids_walk_progress *sum)
{
	struct ids_walk_event ev = { .what = IDS_WALK_ERROR };
	char reason[1200], label[300];
	const char *who;
	int status, first = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (ws[i].pid <= 0)
			continue;
		while (waitpid(ws[i].pid, &status, 0) < 0 && errno == EINTR)
			;
		worker_label(&ws[i], label, sizeof(label));
		who = ws[i].jobs > 1 ? "" : "worker ";	/* the label says worker already */
		if (ws[i].final && ws[i].code < 0)
			snprintf(reason, sizeof(reason), "%s: %s", label, ws[i].text);
		else if (WIFSIGNALED(status))
			snprintf(reason, sizeof(reason), "%s: %skilled by signal %d",
			    label, who, WTERMSIG(status));
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !ws[i].final)
			snprintf(reason, sizeof(reason), "%s: %sexited with status %d",
			    label, who, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		else
			continue;
		sum->errors++;
		ev.code = -ECHILD;
		ev.reason = reason;
		ev.partition = ws[i].partition;
		ev.job = ws[i].job;
		ev.jobs = ws[i].jobs > 1 ? ws[i].jobs : 0;
		if (o->event != NULL)
			o->event(&ev, o->rock);
		if (first == 0)
			first = ids_error(-ECHILD, "%s", reason);
	}
	return first;
}

static int
run_workers(const struct ids_config *cfg, const struct ids_walk_opts *o,
    struct worker *ws, size_t n, struct ids_walk_progress *res)
{
	struct ids_walk_progress sum;
	struct pollfd *pfd;
	size_t *who, i;
	int r, r2;

	/*
	 * Allocated after the fork, so that no worker inherits a block it
	 * never frees.  Without them the workers cannot be watched: they
	 * are asked to stop after the folder in hand, and reaped.
	 */
	r = start_workers(cfg, o, ws, n);
	pfd = calloc(n, sizeof(*pfd));
	who = calloc(n, sizeof(*who));
	if (pfd == NULL || who == NULL) {
		for (i = 0; i < n; i++) {
			if (ws[i].pid > 0)
				kill(ws[i].pid, SIGTERM);
			if (ws[i].fd >= 0)
				close(ws[i].fd);	/* a worker writing gets EPIPE */
			ws[i].fd = -1;
		}
		r = -ENOMEM;
	} else
		watch_workers(o, ws, n, pfd, who);
	sum_progress(ws, n, &sum);
	r2 = reap_workers(o, ws, n, &sum);
	if (o->progress != NULL)
		o->progress(&sum, o->rock);
	if (res != NULL)
		*res = sum;
	free(pfd);
	free(who);
	return r < 0 ? r : r2;
}

int
ids_walk_run(const struct ids_config *cfg, const struct ids_walk_opts *o,
    struct ids_walk_progress *res)
{
	struct ids_mboxlist *mbl;
	struct worker *ws;
	size_t n;
	int r;

	if (!o->dry_run) {
		/*
		 * Before any header is written: every live folder's history
		 * holds the tombstones of its old names, and every owner's
		 * deleted folders have their tombstone record on disk, so that
		 * a rebuild from the spool brings them back.
		 */
		if ((r = ids_mboxlist_open(cfg, 0, &mbl)) < 0)
			return r;
		r = ids_tombstones_sync(mbl, NULL);
		ids_mboxlist_close(mbl);
		if (r < 0)
			return r;
		if ((r = plan_workers(cfg, o, &ws, &n)) < 0)
			return r;
		if (n > 1) {
			r = run_workers(cfg, o, ws, n, res);
			free(ws);
			return r;
		}
		free(ws);
	}
	if ((r = ids_mboxlist_open(cfg, o->dry_run ? IDS_MBOXLIST_RDONLY : 0, &mbl)) < 0)
		return r;
	r = ids_walk_pass(mbl, o, res);
	ids_mboxlist_close(mbl);
	return r;
}

/* --- the census ------------------------------------------------------ */

struct census {
	const struct ids_config *cfg;
	const struct ids_walk_opts *filter;
	struct ids_walk_census *out;
	int *roots;		/* per partition: data root, meta root; -1 unopened */
	ids_walk_failure_fn fn;
	ids_walk_badindex_fn bad;
	void *rock;
	struct ids_txn *txn;
};

/* 1 if partition p keeps its index files on its metapartition. */
static int
meta_root(const struct census *c, const struct ids_partition *p)
{
	return p->metapath != NULL && (c->cfg->metapartition_files & (1u << IDS_META_INDEX)) != 0;
}

/* The root directory holding index files of partition p (opened once). */
static int
index_root(struct census *c, const struct ids_partition *p, int *fdp)
{
	size_t i = (size_t)(p - c->cfg->partitions);
	int meta = meta_root(c, p);
	int *slot = &c->roots[2 * i + meta];
	int r;

	if (*slot < 0 && (r = ids_opendir_abs(meta ? p->metapath : p->path, slot)) < 0) {
		*slot = -1;
		return r;
	}
	*fdp = *slot;
	return 0;
}

/*
 * The checked header of e's cyrus.index (never follows a symlink); on
 * failure why gets "<path of the index>: <what is wrong>".
 */
static int
index_records(struct census *c, const struct ids_mbentry *e, uint32_t *np, char *why,
    size_t size)
{
	const struct ids_partition *p = ids_config_partition(c->cfg, e->partition);
	struct ids_index_header h;
	struct ids_mbname mb;
	struct ids_location loc;
	char rel[PATH_MAX];
	const char *detail;
	int root, dfd, r;

	if (p == NULL) {
		snprintf(why, size, "partition '%s' is not configured", e->partition);
		return IDS_EPARTITION;
	}
	if ((r = ids_location_from_entry(e, &mb, &loc)) < 0 ||
	    (r = ids_path_reldir(c->cfg, &loc, rel, sizeof(rel))) < 0 ||
	    (r = index_root(c, p, &root)) < 0 ||
	    (r = ids_opendir_beneath(root, rel, 0, &dfd)) < 0) {
		snprintf(why, size, "%s", ids_errmsg(r));
		return r;
	}
	r = ids_index_read_header(dfd, &h);
	close(dfd);
	if (r == 0) {
		*np = h.num_records;
		return 0;
	}
	detail = ids_errmsg(r);
	if (strncmp(detail, IDS_INDEX_FILE ": ", sizeof(IDS_INDEX_FILE ": ") - 1) == 0)
		detail += sizeof(IDS_INDEX_FILE ": ") - 1;
	snprintf(why, size, "%s/%s/" IDS_INDEX_FILE ": %s",
	    meta_root(c, p) ? p->metapath : p->path, rel, detail);
	return r;
}

static int
census_cb(const struct ids_mbentry *e, void *rock)
{
	struct census *c = rock;
	char why[PATH_MAX + 512];
	uint32_t n;

	if (!local_folder(e) || !matches(c->cfg, c->filter, e))
		return 0;
	if (!ids_mbentry_is_legacy(e)) {
		c->out->uniqueid++;
		return 0;
	}
	c->out->legacy++;
	ids_error_clear();
	if (index_records(c, e, &n, why, sizeof(why)) == 0) {
		c->out->files_left += n;
		return 0;
	}
	/* A finding, not a number: it adds nothing to files_left. */
	c->out->unreadable++;
	return c->bad ? c->bad(e->name, e->uniqueid, why, c->rock) : 0;
}

static int
failure_cb(const char *id, const char *val, size_t len, void *rock)
{
	struct census *c = rock;
	struct ids_failure f;
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	r = live_legacy_id(c->txn, id, &e);
	if (r == 1 && matches(c->cfg, c->filter, &e)) {
		c->out->failures++;
		/* val is the value's bytes in the map, not a C string. */
		ids_failure_parse(val, len, &f);
		r = c->fn ? c->fn(e.name, id, f.when, f.text, c->rock) : 0;
	}
	ids_mbentry_release(&e);
	return r < 0 ? r : 0;
}

static int
failures_txn(struct ids_txn *txn, void *rock)
{
	struct census *c = rock;

	c->txn = txn;
	return ids_failure_foreach(txn, failure_cb, c);
}

int
ids_walk_census(struct ids_mboxlist *mbl, const struct ids_walk_opts *filter,
    struct ids_walk_census *out, ids_walk_failure_fn fn, ids_walk_badindex_fn bad,
    void *rock)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct census c = { cfg, filter, out, NULL, fn, bad, rock, NULL };
	struct ids_scanpos pos;
	unsigned long since = 0;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&pos, 0, sizeof(pos));
	if ((c.roots = malloc(2 * cfg->npartitions * sizeof(int))) == NULL)
		return -ENOMEM;
	for (i = 0; i < 2 * cfg->npartitions; i++)
		c.roots[i] = -1;
	while ((r = ids_mboxlist_scan(mbl, &pos, 0, 256, census_cb, &c)) > 0)
		maybe_trim(mbl, &since, r);
	if (r == 0)
		r = ids_mboxlist_read(mbl, failures_txn, &c);
	for (i = 0; i < 2 * cfg->npartitions; i++)
		if (c.roots[i] >= 0)
			close(c.roots[i]);
	free(c.roots);
	return r;
}
