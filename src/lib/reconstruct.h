/*
 * reconstruct.h - rebuilding and checking mailboxes.db from the spool.
 *
 * Every cyrus.header idspool writes carries the folder's name history
 * (key H), so the spool alone says which folders exist, what they are
 * called, what they were called, and where each lives.  Two operations
 * use that:
 *
 *   rebuild  walks the partitions (both layouts, never following a
 *            symlink), reads every folder's cyrus.header and the header
 *            of its cyrus.index, resolves the conflicts it finds by the
 *            rules of spool-layout.md ("Reconstruct"), repairs the
 *            files those rules change, and replaces the mailbox records
 *            of mailboxes.db in one write transaction.
 *   check    cross-checks one live mailbox: its records, its directory,
 *            its cyrus.header and the header_file_crc of its index; it
 *            repairs the header from mailboxes.db, which wins while it
 *            exists.
 *
 * Both report everything through a callback (struct ids_rc_event) and
 * never print.  With opts->dry_run nothing is written anywhere: the
 * events describe what would be done.
 *
 * Locks (lock.h): a header is rewritten under the folder's mailbox
 * lock; a directory is renamed under the owner's namespace lock and the
 * mailbox locks of both unique ids; the rebuild's transaction takes no
 * lock but applies only to records nobody changed since the walk began
 * (the others are kept and reported).  Only one rebuild should run at
 * a time.
 *
 *	struct ids_reconstruct_opts o = { 0 };
 *	struct ids_reconstruct_stats st;
 *	r = ids_reconstruct_rebuild(cfg, mbl, &o, report, rock, &st);
 */
#ifndef IDS_RECONSTRUCT_H
#define IDS_RECONSTRUCT_H

#include <stddef.h>

struct ids_config;
struct ids_intent;
struct ids_mboxlist;

struct ids_reconstruct_opts {
	const char *partition;	/* rebuild: only this partition (NULL: all) */
	const char *owner;	/* only this user ("john", "john@example.com") */
	int dry_run;		/* change nothing; report what would change */
	int lock_timeout_ms;	/* per lock; 0 means IDS_LOCK_TIMEOUT_MS */
};

enum ids_rc_kind {
	IDS_RC_PROGRESS,	/* count folders found so far (every 1000) */
	IDS_RC_CHANGE,		/* a difference to mailboxes.db */
	IDS_RC_CONFLICT,	/* a conflict between folders, resolved by a rule */
	IDS_RC_REPAIR,		/* a file or directory rewritten or renamed */
	IDS_RC_FAILED,		/* something left untouched because of code */
	IDS_RC_NOTE,		/* worth knowing, nothing wrong (verbose) */
};

/*
 * One event.  Strings are NULL when they do not apply and live only
 * during the callback.  Names are internal names.
 *
 * rule names what happened:
 *   CHANGE    "added", "removed", "changed" (field, from, to)
 *   CONFLICT  "dup-uniqueid", "dup-name", "no-uniqueid", "stale-name",
 *             "owner", "id-mismatch", "newer-name", "leftover"
 *   REPAIR    "header", "directory", "index"
 *   FAILED    "unreadable", "unsafe", "not-a-folder", "index",
 *             "missing", "left-out", "changed-meanwhile", "error"
 *   NOTE      "busy", "kept"
 */
struct ids_rc_event {
	enum ids_rc_kind kind;
	const char *rule;
	const char *path;	/* the folder's directory (absolute), or NULL */
	const char *name;	/* the mailbox */
	const char *uniqueid;
	const char *field;	/* CHANGE "changed": which field */
	const char *from;	/* old value, or NULL */
	const char *to;		/* new value, or NULL */
	const char *detail;	/* a phrase for people */
	int code;		/* FAILED: the negative error code */
	unsigned long count;	/* PROGRESS */
};

typedef void (*ids_rc_fn)(const struct ids_rc_event *ev, void *rock);

struct ids_reconstruct_stats {
	unsigned long folders;		/* folders found on disk */
	unsigned long legacy;		/* ... of them in the legacy layout */
	unsigned long live;		/* live records in the result */
	unsigned long tombstones;	/* tombstones in the result */
	unsigned long conflicts;	/* CONFLICT events */
	unsigned long repairs;		/* REPAIR events */
	unsigned long changes;		/* CHANGE events */
	unsigned long failed;		/* FAILED events */
};

/*
 * Rebuilds the mailbox records of mbl from the partitions of cfg, in
 * the scope of opts (partition, owner).  mbl may be NULL only with
 * opts->dry_run (no mailboxes.db yet: everything is "added").  X and F
 * records and the format version are never touched.  Returns 0 when
 * the walk and the commit ran (folders that failed are FAILED events
 * and counted in st->failed), or a negative code when the rebuild could
 * not run or its transaction failed; then mailboxes.db is unchanged.
 */
int ids_reconstruct_rebuild(const struct ids_config *cfg, struct ids_mboxlist *mbl,
    const struct ids_reconstruct_opts *opts, ids_rc_fn fn, void *rock,
    struct ids_reconstruct_stats *st);

/*
 * Checks the live mailbox name (internal) and repairs its cyrus.header
 * and the index's header_file_crc from mailboxes.db; the folder's own
 * uidvalidity and createdmodseq (its index) and a longer name history
 * (its header) go into mailboxes.db.  Takes the owner's namespace lock,
 * then the folder's mailbox lock.  Returns 0 (consistent, or repaired,
 * or nothing that could be repaired: see st->failed), IDS_ENOTFOUND for
 * a name with no live record, or another negative code.
 */
int ids_reconstruct_check(struct ids_mboxlist *mbl, const char *name,
    const struct ids_reconstruct_opts *opts, ids_rc_fn fn, void *rock,
    struct ids_reconstruct_stats *st);

/*
 * Calls ids_reconstruct_check for every live mailbox of owner (a
 * userid), DELETED ones included.  Returns 0, IDS_ENOTFOUND when the
 * owner has no live mailbox, or the first other error (the remaining
 * mailboxes are still checked).
 */
int ids_reconstruct_check_owner(struct ids_mboxlist *mbl, const char *owner,
    const struct ids_reconstruct_opts *opts, ids_rc_fn fn, void *rock,
    struct ids_reconstruct_stats *st);

/*
 * Recovery of a re-id (intent op "reid", key: the new unique id) left
 * by a dead process, for ids_recover(): if a directory was renamed, the
 * others are renamed too and the header gets the new id; if none was,
 * the intent is dropped.  The caller holds the new id's mailbox lock.
 */
int ids_reconstruct_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in);

#endif
