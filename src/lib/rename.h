/*
 * rename.h - renaming folders.
 *
 * A folder in the uniqueid layout does not move when it is renamed:
 * its directory is named by its uniqueid, so a rename changes only
 * mailboxes.db.  ids_rename() changes the records of the folder and of
 * every folder below it in one LMDB write transaction, under the
 * owner's namespace lock: all or nothing.  Each renamed folder's name
 * history gains its old name, a tombstone stays at each old name, and
 * the cyrus.header files are brought up to date after the commit (an
 * intent record makes a crash there harmless: recovery finishes them).
 *
 * Three kinds of rename:
 *   folder  same owner ("user.john.A" -> "user.john.B.C"): metadata
 *           only; legacy folders in the subtree are first migrated to
 *           the uniqueid layout with the walker's own per-folder code.
 *   owner   a user to another user ("user.alice" -> "user.alicia", any
 *           domain) or a shared top level to another: every folder of
 *           the owner, DELETED ones included, is renamed, and the
 *           owner's directory is renamed on each root (one directory
 *           rename per root, never a per-file move) under an intent.
 *   copy    a folder to another owner, only with IDS_RENAME_COPY: a new
 *           folder with a new uniqueid is made under the target owner,
 *           the messages hard-linked across (copied where they cannot
 *           be), committed, then the source deleted.  Refused otherwise
 *           (IDS_ECROSSUSER): the path of a folder holds its owner.
 *
 * Refused with no change: a missing source (IDS_ENOTFOUND), an existing
 * target or target descendant (IDS_EEXIST), a target inside the source's
 * own subtree or the source itself (IDS_EINVAL), a missing target owner
 * for copies (IDS_ENOTFOUND), invalid names (IDS_EBADNAME), another
 * partition (IDS_EINVAL: rename does not move data between disks), a
 * copy of a folder with children (IDS_EINVAL), locks held past the
 * timeout (IDS_ELOCKED).
 */
#ifndef IDS_RENAME_H
#define IDS_RENAME_H

struct ids_intent;
struct ids_mboxlist;
struct ids_relocate_opts;

#define IDS_RENAME_COPY		0x1	/* allow a move to another owner, by copying */
#define IDS_RENAME_DRYRUN	0x2	/* call plan for each folder, change nothing */
#define IDS_RENAME_ONE		0x4	/* the folder alone, not its children (one owner) */

/* One folder of a rename, as the plan callback sees it. */
struct ids_rename_step {
	const char *oldname;	/* internal names */
	const char *newname;
	const char *uniqueid;	/* the source's; copies get a new one */
	int legacy;		/* migrated to the uniqueid layout first */
	int copy;		/* copied under a new uniqueid */
};
typedef int (*ids_rename_fn)(const struct ids_rename_step *step, void *rock);

struct ids_rename_opts {
	int flags;			/* IDS_RENAME_* */
	const char *partition;		/* target partition asked for, or NULL */
	int lock_timeout_ms;
	ids_rename_fn plan;		/* called per folder before any change, or NULL */
	void *rock;
};
#define IDS_RENAME_OPTS_INIT { .lock_timeout_ms = IDS_LOCK_TIMEOUT_MS }

/*
 * Renames oldname to newname (internal names).  Returns 0 or a negative
 * code with the detail naming the offending mailbox.  A failure after
 * the commit (a cyrus.header that could not be rewritten) returns its
 * code but the rename stands; recovery finishes the headers.
 */
int ids_rename(struct ids_mboxlist *mbl, const char *oldname, const char *newname,
    const struct ids_rename_opts *opts);

/* Settles a rename, owner rename or copy intent of a dead process. */
int ids_rename_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in);

#endif
