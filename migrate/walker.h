/*
 * walker.h - the background migration walk: every live legacy folder,
 * children before parents, through ids_relocate_folder().
 *
 * A pass reads mailboxes.db in reverse dbname order (a child sorts
 * right after its parent, so in reverse it comes first) in short read
 * transactions of a few dozen records (ids_mboxlist_scan), so memory
 * and reader age stay bounded however many folders there are.  Each
 * batch of candidates is migrated outside any transaction; a folder
 * that fails is reported, its reason stays in mailboxes.db ('F' record)
 * and the walk goes on.  Names that vanish, are renamed or stop being
 * legacy under the walk are skipped, not errors.
 *
 * Around the folders a pass settles dead processes' intents
 * (ids_recover) at its start, every recover_interval seconds, and, when
 * asked, at its end until no grace-period cleanup is pending.  Between
 * folders it keeps the --rate token bucket (files linked or copied, and
 * directories renamed, per second, on average: a folder is migrated
 * without pauses so that its mailbox lock is held briefly, and the walk
 * sleeps off the debt afterwards) and yields while the system's IO
 * pressure (/proc/pressure/io, "some avg10") is above max_pressure.
 * It stops between folders once *stop is set (a signal handler's flag).
 *
 *	struct ids_walk_opts o = IDS_WALK_OPTS_INIT;
 *	struct ids_walk_progress res;
 *	o.stop = &got_sigterm;
 *	r = ids_walk_run(cfg, &o, &res);	// < 0: could not run
 *	exit(res.folders_failed || res.errors ? 1 : 0);
 *
 * Nothing here prints: events and progress go to the caller's callbacks.
 *
 * The walker is part of migrate/, on top of the library: it is linked
 * into relocated (with its worker pool, which forks), never into
 * libidspool, and nothing in src/ includes this header.
 */
#ifndef IDS_WALKER_H
#define IDS_WALKER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "relocate.h"

struct ids_config;
struct ids_mboxlist;

/* What a pass reports about one folder (or one worker). */
enum ids_walk_what {
	IDS_WALK_PLAN,		/* dry run: this folder would move */
	IDS_WALK_DONE,		/* migrated (flipped to the uniqueid layout) */
	IDS_WALK_FAILED,	/* not migrated; code and reason say why */
	IDS_WALK_FOREIGN,	/* files not part of the folder were left in olddir */
	IDS_WALK_ERROR,		/* not about one folder (recovery, a worker) */
	IDS_WALK_WORKER,	/* a worker process started for partition */
};

struct ids_walk_event {
	enum ids_walk_what what;
	const char *name;	/* internal name; NULL for ERROR and WORKER */
	const char *uniqueid;
	const char *partition;
	const char *olddir;	/* PLAN, DONE, FOREIGN: legacy data directory */
	const char *newdir;	/* uniqueid data directory */
	const char *oldmeta;	/* the same on the metapartition, or NULL */
	const char *newmeta;
	int code;		/* FAILED, ERROR: the negative code */
	const char *reason;	/* FAILED, ERROR: its detail */
	unsigned long files;	/* DONE: files linked or copied; FOREIGN: files left */
	int pending;		/* DONE: old names wait for the grace period */
	pid_t pid;		/* WORKER */
	unsigned job, jobs;	/* WORKER, a worker's ERROR: with jobs > 1 workers per
				   partition, it is the (job + 1)-th of them; else jobs 0 */
};

/* Counts of a pass so far (summed over workers). */
struct ids_walk_progress {
	unsigned long folders_total;	/* legacy candidates when the pass began */
	unsigned long folders_done;	/* migrated */
	unsigned long folders_failed;	/* reported and skipped */
	unsigned long folders_skipped;	/* vanished or no longer legacy */
	unsigned long long files_done;	/* linked or copied */
	unsigned long long bytes_copied;
	unsigned long dirs_renamed;
	unsigned long pending;		/* migrations waiting for their grace period */
	unsigned long errors;		/* ERROR events (recovery failures, workers) */
	double elapsed;			/* seconds since the pass began */
	int waiting;			/* paused for the rate or for IO pressure */
	int workers;			/* worker processes (0: the caller's process) */
	int stopped;			/* ended early because *stop was set */
};

typedef void (*ids_walk_event_fn)(const struct ids_walk_event *ev, void *rock);
typedef void (*ids_walk_progress_fn)(const struct ids_walk_progress *p, void *rock);

struct ids_walk_opts {
	const char *partition;	/* only this partition (NULL: all) */
	const char *owner;	/* only this owner, as ids_mbname_owner spells it */
	struct ids_relocate_opts relocate;	/* strategy, grace, lock timeout */
	double rate;		/* files (and renamed directories) per second; 0: no limit */
	double max_pressure;	/* pause while IO "some avg10" exceeds it (percent); 0: never */
	const char *pressure_file;	/* NULL: /proc/pressure/io (absent: no pausing) */
	unsigned batch;		/* records per read transaction; 0: 512 */
	unsigned group;		/* folders migrated together (ids_relocate_batch: shared
				   commits and syncfs); 0: 128 without a rate limit, else 1;
				   1: one at a time (stop takes effect after each folder) */
	unsigned recover_interval;	/* seconds between recoveries; 0: 60 */
	unsigned progress_ms;	/* at most one progress call per this; 0: 1000 */
	int settle;		/* at the end, wait until no grace cleanup is pending */
	int dry_run;		/* report PLAN events, change nothing, no recovery */
	int parallel;		/* ids_walk_run: one worker process per partition */
	volatile sig_atomic_t *stop;	/* checked between folders; NULL: never */
	ids_walk_event_fn event;	/* may be NULL */
	ids_walk_progress_fn progress;	/* may be NULL */
	void *rock;
	unsigned jobs;		/* ids_walk_run: workers per partition walked; 0 or 1: one */
	unsigned shard, nshards;	/* only the folders whose owner is in shard `shard`
				   of nshards (ids_walk_shard); nshards 0 or 1: all */
	pid_t parent;		/* nonzero: stop, as *stop does, once the process's
				   parent is no longer this pid (a worker's parent) */
};

/* The walker waits less for a folder's lock than a tool: it comes back later. */
#define IDS_WALK_LOCK_TIMEOUT_MS 10000
#define IDS_WALK_OPTS_INIT { .relocate = { .strategy = IDS_STRATEGY_LINK, \
	.lock_timeout_ms = IDS_WALK_LOCK_TIMEOUT_MS } }

/*
 * The shard, from 0 to nshards - 1, of the folder named name (internal
 * form): a hash of its owner as ids_mbname_owner spells it, so that a
 * user's folders, their DELETED ones included, and a shared top-level
 * folder's tree all fall in one shard.  The same in every process and
 * every run.  0 when nshards is 0 or 1, and for a name that cannot be
 * parsed.
 */
unsigned ids_walk_shard(const char *name, unsigned nshards);

/*
 * One pass over mbl in the calling process.  *res (may be NULL) gets
 * the final counts.  Returns 0 when the pass ran (folders may have
 * failed: see res), or a negative code when it could not go on (a
 * mailboxes.db failure; detail in ids_errmsg).  opts->relocate.throttle
 * is ignored: the walker installs its own.
 */
int ids_walk_pass(struct ids_mboxlist *mbl, const struct ids_walk_opts *opts,
    struct ids_walk_progress *res);

/*
 * A pass that opens mailboxes.db itself (read-only for a dry run).  With
 * opts->parallel, several partitions and no opts->partition, it forks
 * one worker per partition; with opts->jobs > 1, jobs workers for each
 * partition walked (each of the partitions with opts->parallel and no
 * opts->partition; else the one filter of opts->partition, or all),
 * worker k (from 0) taking shard k of jobs (within opts->shard of
 * opts->nshards, when that is set).  A dry run forks nothing and ignores jobs.  Each worker
 * opens its own mailboxes.db environment, walks its partition and shard
 * with rate / workers, and sends its progress to this process, which
 * sums it for opts->progress and *res.  Events are delivered in the
 * worker that saw them.  A worker that dies or cannot run is an ERROR
 * event and makes the return value negative (-ECHILD, detail naming the
 * partition, and the worker when jobs > 1) after the others finished.
 * Callers flush their stdio before: buffered output would be doubled.
 */
int ids_walk_run(const struct ids_config *cfg, const struct ids_walk_opts *opts,
    struct ids_walk_progress *res);

/* What `relocated -s` shows; restricted like a pass by partition and owner. */
struct ids_walk_census {
	unsigned long legacy;		/* live folders still in the legacy layout */
	unsigned long uniqueid;		/* live folders in the uniqueid layout */
	unsigned long long files_left;	/* num_records of the legacy folders' indexes */
	unsigned long unreadable;	/* legacy folders whose cyrus.index failed the checks
					   of ids_index_read_header (not in files_left) */
	unsigned long failures;		/* F records of live legacy folders */
};

/*
 * A failure record: current name (internal), when, and why (the
 * record's text from ids_failure_parse: "<name then>: <reason>", one
 * line of printable ASCII; when is 0 for a record without a time).
 */
typedef int (*ids_walk_failure_fn)(const char *name, const char *uniqueid,
    int64_t when, const char *reason, void *rock);

/* A legacy folder whose cyrus.index is unreadable: name (internal) and why. */
typedef int (*ids_walk_badindex_fn)(const char *name, const char *uniqueid,
    const char *reason, void *rock);

/*
 * Counts the folders of mbl (short read transactions) and reads the
 * header of each legacy folder's cyrus.index with ids_index_read_header
 * (an index that fails its checks is counted in unreadable and passed
 * to bad, never added to files_left); calls fn for each failure record
 * of a folder still live and legacy, inside a read transaction (fn and
 * bad must not use mbl; either may be NULL).  Returns 0 or negative
 * (a callback's negative return included).
 */
int ids_walk_census(struct ids_mboxlist *mbl, const struct ids_walk_opts *filter,
    struct ids_walk_census *out, ids_walk_failure_fn fn, ids_walk_badindex_fn bad,
    void *rock);

/*
 * Reads "some avg10=<x>" from a PSI file such as /proc/pressure/io.
 * Returns 0 and stores x (percent), or a negative code (-ENOENT when
 * the kernel has no PSI, IDS_ECORRUPT when the line is not there).
 */
int ids_walk_read_pressure(const char *file, double *avg10);

#endif
