/*
 * mailbox.h - a folder's life: open, create, delete, deliver.
 *
 * Every new folder is created in the uniqueid layout.  Each operation
 * takes the locks of lock.h in the documented order, writes an intent
 * record (intent.h) before its first file system change, and is
 * durable before it returns.
 *
 *	struct ids_mailbox *mb;
 *	r = ids_mailbox_open(mbl, "user.john.Sent", IDS_MAILBOX_WRITE, 5000, &mb);
 *	... mb->entry, mb->datafd, ids_mailbox_metafd(mb, IDS_META_INDEX) ...
 *	ids_mailbox_close(mb);
 */
#ifndef IDS_MAILBOX_H
#define IDS_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxname.h"

struct ids_lock;
struct ids_mboxlist;
struct ids_intent;
struct ids_mbcreate;

#define IDS_MAILBOX_WRITE	0x1	/* exclusive mailbox lock (else shared) */
#define IDS_MAILBOX_NOLOCK	0x2	/* the caller holds the mailbox lock already */
#define IDS_MAILBOX_NODIRS	0x4	/* no directory opened (datafd, metafd stay -1) */

struct ids_mailbox {
	struct ids_mboxlist *mbl;
	struct ids_mbentry entry;	/* the N record, read under the lock */
	struct ids_mbname mbname;
	struct ids_location loc;
	struct ids_lock *lock;
	int datafd;			/* the folder's data directory */
	int metafd;			/* its directory on the metapartition, or -1 */
	struct ids_mbcreate *create;	/* ids_mailbox_create_open's, until committed */
};

/*
 * Looks name up, takes its mailbox lock (waiting at most timeout_ms),
 * reads the record again under the lock (a rename or migration may have
 * moved it meanwhile) and opens its directories without following
 * symlinks.  IDS_ENOTFOUND for missing names and tombstones.
 */
int ids_mailbox_open(struct ids_mboxlist *mbl, const char *name, int flags,
    int timeout_ms, struct ids_mailbox **mbp);
void ids_mailbox_close(struct ids_mailbox *mb);

/* The directory fd holding meta files of kind (the metapartition's or datafd). */
int ids_mailbox_metafd(const struct ids_mailbox *mb, enum ids_metafile kind);

/*
 * Creates the folder name (internal) on partition (NULL: the default)
 * in the uniqueid layout: a new uniqueid from libuuid, its directory, a
 * cyrus.header, an empty cyrus.index (options: OPT_POP3_NEW_UIDL, as
 * Cyrus creates a folder) and its records in mailboxes.db.
 * The UIDVALIDITY is above that of any tombstone at the name.  User
 * folders get the owner's full rights.  IDS_EEXIST if name is live.
 * Fills out (when not NULL) with the new record.
 */
int ids_mailbox_create(struct ids_mboxlist *mbl, const char *name,
    const char *partition, struct ids_mbentry *out);

/*
 * As ids_mailbox_create, for a folder whose identity is given (a
 * replica creating what its master made): want's name, uniqueid,
 * partition (NULL: the default), uidvalidity, createdmodseq,
 * foldermodseq and ACL; history is kept, mbtype becomes "e".  The
 * UIDVALIDITY given is kept even above a tombstone at the name, as
 * Cyrus's sync create keeps the master's (mboxlist_createmailbox with
 * MBOXLIST_CREATE_SYNC): the replica's index must carry the master's,
 * and a folder copied back under a name whose own folder was renamed
 * away arrives with a lower one.  IDS_EDUPID when the uniqueid is live
 * under any name.
 */
int ids_mailbox_create_as(struct ids_mboxlist *mbl, const struct ids_mbentry *want,
    struct ids_mbentry *out);

/*
 * As ids_mailbox_create_as, in two steps, for a folder that is filled
 * before it exists for anyone else (a replica's APPLY MAILBOX of a new
 * folder: one durable step, not a create then an apply).
 * ids_mailbox_create_open takes the namespace and mailbox locks, commits
 * the intent "create" (durably), makes the directory, cyrus.header and an
 * empty cyrus.index with every fsync left out, lets the namespace lock
 * go (the mailbox lock stays) and returns the folder open for writing:
 * mb->entry is the record to be, not yet in mailboxes.db.  The caller writes the folder's files with its fsyncs
 * deferred (ids_fs_defer_sync), then ids_mailbox_create_commit makes
 * everything durable with one syncfs(2) per file system (data and
 * metapartition: fs.syncfs) and puts the records and removes the intent
 * in one transaction (failpoint mailbox.create_commit, then the commit
 * point).  ids_mailbox_close of a folder not committed undoes the create
 * (its files and directory removed, the intent too); a crash before the
 * commit leaves the intent, and recovery does the same.
 */
int ids_mailbox_create_open(struct ids_mboxlist *mbl, const struct ids_mbentry *want,
    struct ids_mailbox **mbp);
int ids_mailbox_create_commit(struct ids_mailbox *mb);
/*
 * ids_mailbox_create_commit of n folders at once (a replica's group
 * commit): one syncfs per file system they are on, then one transaction
 * for all of them; if it fails, each in a transaction of its own, so that
 * one folder's failure is its own.  rv[i] is 0 or the error of v[i];
 * returns 0 when every one committed.  The namespace lock is not held
 * between the two steps: the commit checks the name and uniqueid again
 * (IDS_EEXIST, IDS_EDUPID).
 */
int ids_mailbox_create_commit_group(struct ids_mailbox **v, size_t n, int *rv);
/*
 * After a failed ids_mailbox_create_commit(_group): the reason of this
 * folder's failure, as ids_errmsg gave it when it failed (NULL if none);
 * valid until the folder is closed.
 */
const char *ids_mailbox_create_error(const struct ids_mailbox *mb);

/*
 * Deletes the folder name: its records become a tombstone in one
 * transaction (the commit point), then its files and directory go.
 * Child folders are not touched.
 */
int ids_mailbox_delete(struct ids_mboxlist *mbl, const char *name);

/*
 * Delivers one message (RFC 5322 bytes) to name: the next UID, its
 * file "<uid>." written and fsynced, its index record (SHA-1 GUID,
 * size, internaldate) appended durably.  Stores the UID in *uidp.
 * A deleted folder (DELETED.<name>.<hex>) is refused, IDS_EINVAL, as
 * Cyrus's lmtpd cannot deliver to one either.
 */
int ids_mailbox_deliver(struct ids_mboxlist *mbl, const char *name,
    const void *msg, size_t len, int64_t internaldate, uint32_t *uidp);

/*
 * Rewrites the folder's cyrus.header from its mailboxes.db record
 * (name, uniqueid, type, ACL, history; quota root, flags and unknown
 * keys kept from the old header when readable) as a new file, and
 * points cyrus.index's header_file_crc at it.  mb must be open for
 * writing.  Failpoints header.write, index.set_header_crc.
 */
int ids_mailbox_write_header(struct ids_mailbox *mb);

/*
 * Makes a new folder directory (and its metapartition twin) for loc;
 * its parents are created as needed, it must not exist yet
 * (IDS_ECONFLICT).  Opens them into *datafd and *metafd (-1 if none).
 */
int ids_folder_mkdir(const struct ids_config *cfg, const struct ids_location *loc,
    int *datafd, int *metafd);

/*
 * Removes a folder's own files (message, meta and temporary files) and
 * then its directory rel (relative to the roots of partition, data and
 * meta), if that leaves it empty.  Other files and subdirectories stay.
 */
int ids_folder_remove(const struct ids_config *cfg, const char *partition,
    const char *rel);

/* What a file name in a folder directory is. */
enum ids_filekind {
	IDS_FILE_MESSAGE,	/* "<uid>." */
	IDS_FILE_META,		/* cyrus.header, cyrus.index, ... */
	IDS_FILE_TEMP,		/* "*.NEW": a durable write interrupted */
	IDS_FILE_OTHER,		/* not part of the folder */
};
/* Classifies a file name; stores the uid of a message file in *uidp. */
int ids_folder_classify(const char *name, uint32_t *uidp);

/* Recovery of a create or delete left behind by a dead process. */
int ids_mailbox_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in);

#endif
