/*
 * relocate.h - moving one legacy folder to its uniqueid path.
 *
 * The one implementation of a folder's migration, used by the walker
 * (relocated) and by the rename engine before it renames a legacy
 * folder.  Two strategies share one safety model (spool-layout.md,
 * "Migration"): an intent record committed before the first change, a
 * verified copy of the folder at its uniqueid path before mailboxes.db
 * is flipped (the commit point), and the old names removed only after.
 *
 *   link    hard-links every file of the folder into the new directory
 *           (a copy, verified by SHA-1, where a link is impossible:
 *           EXDEV, EMLINK, EPERM); both paths stay valid until the old
 *           names are removed, `grace` seconds after the flip.
 *   rename  one directory rename per folder (per root with a
 *           metapartition); for maintenance windows: between the rename
 *           and the flip the old path is gone.  A folder whose legacy
 *           directory still holds subdirectories is linked instead.
 */
#ifndef IDS_RELOCATE_H
#define IDS_RELOCATE_H

#include <stdint.h>

#include "lock.h"

struct ids_intent;
struct ids_mboxlist;

enum ids_strategy {
	IDS_STRATEGY_LINK,
	IDS_STRATEGY_RENAME,
};

/* "link" / "rename"; parse returns IDS_EINVAL for anything else. */
const char *ids_strategy_name(enum ids_strategy s);
int ids_strategy_parse(const char *s, enum ids_strategy *out);

struct ids_relocate_opts {
	enum ids_strategy strategy;
	int64_t grace;		/* link: seconds from the flip to removing old names */
	int lock_timeout_ms;	/* waiting for the folder's mailbox lock */
	/* Called after each file linked or copied; a negative return aborts. */
	int (*throttle)(void *rock);
	void *throttle_rock;
	/* ids_relocate_batch: folders per group (0 or more than 128: 128; fewer
	   when RLIMIT_NOFILE is low). */
	unsigned group;
};

#define IDS_RELOCATE_OPTS_INIT { .strategy = IDS_STRATEGY_LINK, \
	.lock_timeout_ms = IDS_LOCK_TIMEOUT_MS }

struct ids_relocate_stats {
	unsigned long folders;		/* flipped to the uniqueid layout */
	unsigned long files_linked;
	unsigned long files_copied;
	unsigned long long bytes_copied;
	unsigned long files_foreign;	/* not part of the folder: left alone */
	unsigned long dirs_renamed;
	unsigned long dirs_removed;
};

/* Returned by ids_relocate_folder when the old names wait for the grace. */
#define IDS_RELOCATE_PENDING 1

/*
 * Migrates the live legacy folder name (internal).  Returns 0 (done,
 * also when the folder is not legacy any more), IDS_RELOCATE_PENDING
 * (flipped; the old names are removed by a later ids_relocate_recover
 * once the grace has passed), or a negative code: IDS_EUNSAFE (a
 * symlink or device in the folder; nothing done), IDS_ECONFLICT (a
 * different file already at the new path; nothing done), IDS_ELOCKED,
 * or a system error, after which the folder is rolled back.  Failures
 * are also recorded in mailboxes.db ('F' records) with their reason.
 */
int ids_relocate_folder(struct ids_mboxlist *mbl, const char *name,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats);

/*
 * Migrates n folders as ids_relocate_folder() would, in groups of up
 * to 128 (opts->group) that share their durability points, pipelined:
 * each step removes one group's old names, links the next group's
 * files, makes both durable with one syncfs and commits one transaction
 * (the first group's flips, the second's intents, the third's start):
 * the way to migrate a whole spool at the speed of the disk rather than
 * of its fsync latency.  Folders that need more than linking (a
 * pending intent, a symlink, the rename strategy) go through
 * ids_relocate_folder()'s path.  Stores each folder's outcome in
 * results[i] (n of them): its code as ids_relocate_folder() returns
 * it, the reason of a failure, and the folder's own figures; adds the
 * figures to *stats.  Returns 0 (or -ENOMEM).
 */
struct ids_relocate_result {
	int rc;				/* as ids_relocate_folder() returns */
	char reason[256];		/* ids_errmsg(rc) when rc < 0 */
	struct ids_relocate_stats st;	/* this folder's own figures */
};
int ids_relocate_batch(struct ids_mboxlist *mbl, const char *const *names, size_t n,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats,
    struct ids_relocate_result *results);

/*
 * Finishes or rolls back the migration of intent in (op "migrate") of
 * uniqueid; the caller holds the folder's mailbox lock.  Before the
 * flip it rolls back; after it, it removes the old names unless the
 * grace has not passed yet (then IDS_RELOCATE_PENDING).
 */
int ids_relocate_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats);

/*
 * What an administrator can do about a failure with code, as a phrase
 * to append to its reason, or NULL: EMFILE asks to raise the limit of
 * open files, ENFILE names the system's table.
 */
const char *ids_relocate_advice(int code);

#endif
