/*
 * lock.h - the lock protocol between idspool tools, the daemon and any
 * mail server process that links the library.
 *
 * Two kinds of lock, each a file under $configdirectory/lock/ locked
 * with an open file description lock (fcntl F_OFD_SETLK), so a holder
 * that dies releases it with its last descriptor:
 *
 *   namespace lock  lock/user/<owner>.lock     taken by anything that
 *                   changes which folders an owner (user or shared top)
 *                   has or what they are called: create, delete,
 *                   rename, migration's flip
 *   mailbox lock    lock/mailbox/<uniqueid>.lock  taken by anything
 *                   that writes a folder's files: delivery, migration,
 *                   repair, header rewrites
 *
 * Lock order (deadlock freedom): namespace locks before mailbox locks;
 * several namespace locks in owner-name byte order; several mailbox
 * locks in uniqueid byte order; mailboxes.db write transactions are the
 * innermost and never wait for a lock file.
 */
#ifndef IDS_LOCK_H
#define IDS_LOCK_H

struct ids_config;
struct ids_lock;

#define IDS_LOCK_SHARED		0x1	/* a read lock; default exclusive */
#define IDS_LOCK_NONBLOCK	0x2	/* fail at once with IDS_ELOCKED */
/*
 * An exclusive mailbox lock that writes no change-journal entry and
 * takes no part in the fence (journal.h): recovery's, which only
 * settles what a committed (and journaled) transaction decided, and
 * polls pending intents every second.
 */
#define IDS_LOCK_NOJOURNAL	0x4

/* How long a tool or the library waits for a lock unless told otherwise. */
#define IDS_LOCK_TIMEOUT_MS	30000

/*
 * Takes the lock, waiting at most timeout_ms milliseconds (negative:
 * forever).  IDS_ELOCKED on timeout; detail names the lock file.
 */
int ids_lock_namespace(const struct ids_config *cfg, const char *owner,
    int flags, int timeout_ms, struct ids_lock **lockp);
int ids_lock_mailbox(const struct ids_config *cfg, const char *uniqueid,
    int flags, int timeout_ms, struct ids_lock **lockp);

/* Releases and frees the lock (NULL is fine). */
void ids_unlock(struct ids_lock *lock);

#endif
