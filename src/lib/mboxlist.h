/*
 * mboxlist.h - mailboxes.db: the mailbox list, in one LMDB environment
 * at $configdirectory/mailboxes.db.
 *
 * Keys (first byte = type), as Cyrus 3.6 plus idspool's own:
 *   'N' dbname    -> N value (mbentry.h); live mailboxes and tombstones
 *   'I' uniqueid  -> I value with the name history
 *   'X' uniqueid  -> an intent record (a multi-step change in progress)
 *   'F' uniqueid  -> why the walker last failed on this folder
 *   '#version'    -> the format version of this database ("1")
 * The N and I records of a mailbox always change in one transaction.
 *
 * All access goes through transactions run by ids_mboxlist_read() and
 * ids_mboxlist_write(), which take a callback: when the map is full,
 * the write transaction is aborted, the map grown, and the callback run
 * again (bounded), so a callback must have no effect outside its
 * transaction before it returns.  A callback returning a negative code
 * aborts the transaction; that code is returned.
 *
 * Several processes may use the database at once; LMDB serialises the
 * writers.  Never wait for a file lock (lock.h) inside a transaction.
 */
#ifndef IDS_MBOXLIST_H
#define IDS_MBOXLIST_H

#include <stddef.h>

struct ids_config;
struct ids_mbentry;
struct ids_mboxlist;
struct ids_txn;

#define IDS_MBOXLIST_CREATE	0x1	/* create the database if missing */
#define IDS_MBOXLIST_RDONLY	0x2	/* read-only transactions only */

#define IDS_MBOXLIST_VERSION	1

/*
 * Opens (with IDS_MBOXLIST_CREATE: creates) the database of cfg, clears
 * stale reader slots and checks the format version.  IDS_ENOTFOUND when
 * it does not exist and may not be created, IDS_EFORMAT for a version
 * this build does not know, IDS_EDB with detail for LMDB failures.
 * A mailboxes.db that is not an LMDB file (Cyrus's own twoskip or
 * skiplist database: a Cyrus configuration directory) is IDS_EFORMAT,
 * found before LMDB opens it or creates its lock file, so that nothing
 * is ever written into a directory that is not ours.
 */
int ids_mboxlist_open(const struct ids_config *cfg, int flags,
    struct ids_mboxlist **mblp);
void ids_mboxlist_close(struct ids_mboxlist *mbl);

/*
 * Whether path (a mailboxes.db) is ours, reading its first bytes only:
 * 0 when it is missing, empty or an LMDB file; IDS_EFORMAT with the
 * detail "PATH: not an idspool mailboxes.db (a Cyrus twoskip database)"
 * (or skiplist, or "unknown format") otherwise; -errno when it cannot
 * be read.
 */
int ids_mboxlist_check_file(const char *path);

/* The path of the LMDB environment directory. */
const char *ids_mboxlist_path(const struct ids_mboxlist *mbl);

typedef int (*ids_txn_fn)(struct ids_txn *txn, void *rock);
int ids_mboxlist_read(struct ids_mboxlist *mbl, ids_txn_fn fn, void *rock);
int ids_mboxlist_write(struct ids_mboxlist *mbl, ids_txn_fn fn, void *rock);

/* Convenience: one lookup in its own read transaction. */
int ids_mboxlist_lookup(struct ids_mboxlist *mbl, const char *name,
    struct ids_mbentry *e);
int ids_mboxlist_lookup_id(struct ids_mboxlist *mbl, const char *uniqueid,
    struct ids_mbentry *e);

/*
 * Inside a transaction.  Lookups fill an initialised entry (the caller
 * releases it) and return IDS_ENOTFOUND when there is no record.
 * lookup_name reads the N record (tombstones included: check
 * ids_mbentry_is_tombstone); lookup_id reads the I record, whose name
 * is the live name and whose history is filled.
 */
int ids_txn_lookup_name(struct ids_txn *txn, const char *name,
    struct ids_mbentry *e);
int ids_txn_lookup_id(struct ids_txn *txn, const char *uniqueid,
    struct ids_mbentry *e);

/*
 * Writes the N record of e->name and, unless e is a tombstone, the I
 * record of e->uniqueid (with e->history).  IDS_EDUPID (detail names
 * both mailboxes) when another live name holds e->uniqueid.
 */
int ids_txn_put(struct ids_txn *txn, const struct ids_mbentry *e);

/* Removes the N record of name (IDS_ENOTFOUND if none). */
int ids_txn_delete_name(struct ids_txn *txn, const char *name);
/* Removes the I record of uniqueid (IDS_ENOTFOUND if none). */
int ids_txn_delete_id(struct ids_txn *txn, const char *uniqueid);

/*
 * Calls fn for each N record in dbname order (a parent before its
 * children), restricted to name and the mailboxes below it when name is
 * not NULL.  Stops at and returns the first non-zero return of fn.
 */
typedef int (*ids_entry_fn)(const struct ids_mbentry *e, void *rock);
int ids_txn_foreach(struct ids_txn *txn, const char *name, ids_entry_fn fn,
    void *rock);
/*
 * A walk over the N records in short read transactions, for walks too
 * long to hold one transaction open (a long reader makes the file
 * grow): each call visits at most max records after (IDS_SCAN_REVERSE:
 * before) the position, in dbname order, and moves the position on.
 * Returns the number visited (0: the walk is over), the first non-zero
 * return of fn, or a negative code.
 */
#define IDS_SCAN_REVERSE 0x1
struct ids_scanpos {
	char key[520];
	size_t len;
	int started;
};
int ids_mboxlist_scan(struct ids_mboxlist *mbl, struct ids_scanpos *pos,
    int flags, size_t max, ids_entry_fn fn, void *rock);

/*
 * Calls fn for each N record whose dbname starts with the len bytes
 * at dbprefix (e.g. every DELETED mailbox of one owner).
 */
int ids_txn_foreach_dbprefix(struct ids_txn *txn, const char *dbprefix, size_t len,
    ids_entry_fn fn, void *rock);

/* The same over I records (in uniqueid order), histories filled. */
int ids_txn_foreach_id(struct ids_txn *txn, ids_entry_fn fn, void *rock);

/*
 * Raw records of the idspool key types ('X' intents, 'F' failures):
 * type is the key byte, id the rest of the key.  get fills a malloc'd,
 * NUL-terminated copy.  foreach calls fn(id, value, len, rock).
 */
int ids_txn_get_raw(struct ids_txn *txn, char type, const char *id,
    char **valp, size_t *lenp);
int ids_txn_put_raw(struct ids_txn *txn, char type, const char *id,
    const char *val, size_t len);
int ids_txn_del_raw(struct ids_txn *txn, char type, const char *id);
typedef int (*ids_raw_fn)(const char *id, const char *val, size_t len,
    void *rock);
int ids_txn_foreach_raw(struct ids_txn *txn, char type, ids_raw_fn fn,
    void *rock);

/* The configuration the database was opened with. */
const struct ids_config *ids_txn_config(const struct ids_txn *txn);
const struct ids_config *ids_mboxlist_config(const struct ids_mboxlist *mbl);

/*
 * Drops the database's memory map from this process's resident set by
 * closing the environment and opening it again (the pages stay in the
 * page cache).  A walk over every record otherwise keeps the whole file
 * resident, so long walks call it now and then to bound their memory.
 * Call it outside any transaction.  Returns 0, or an open error; then
 * each later transaction tries to open the environment again and fails
 * with the error while it cannot.
 */
int ids_mboxlist_trim(struct ids_mboxlist *mbl);

#endif
