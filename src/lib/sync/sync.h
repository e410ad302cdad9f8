/*
 * sync.h - a folder's replication state as Cyrus 3.6 reports it, and
 * the stores that keep what cyrus.index cannot (spool-layout.md
 * "Replication").
 *
 * A replica must answer GET MAILBOXES / GET FULLMAILBOX with exactly
 * the fields and values the master sent in APPLY MAILBOX: a field
 * answered differently (a CRC above all) turns every sync into a full
 * one.  The state is built from three places:
 *   - cyrus.index (header counters, records, flags by bit),
 *   - cyrus.header (user flag names) and mailboxes.db (name, uniqueid,
 *     partition, ACL, createdmodseq, foldermodseq),
 *   - the folder's replica file idspool.sync, for what neither holds:
 *     per-record annotations other than the index's own (savedate,
 *     createdmodseq, thrid), folder annotations, and every MAILBOX key
 *     a client sent that we do not otherwise keep (QUOTAROOT,
 *     XCONVMODSEQ, RACLMODSEQ, MBOXTYPE, unknown keys), reported back
 *     unchanged and in the position Cyrus prints them.
 * Per-user data (SUB, SEEN, QUOTA, SIEVE, server ANNOTATIONs) lives in
 * $configdirectory/replica.db (LMDB), see ids_sync_meta_*.
 *
 * Status: all of it is implemented.
 */
#ifndef IDS_SYNC_H
#define IDS_SYNC_H

#include <stddef.h>
#include <stdint.h>

struct ids_config;
struct ids_dlist;
struct ids_header;
struct ids_index;
struct ids_index_record;
struct ids_mailbox;
struct ids_mbentry;

/* --- CRCs (mailbox.c crc_basic(), crc_annot(), crc_virtannot()) --------- */

#define IDS_SYNC_CRC_ANNOT_INIT	12345678u	/* Cyrus's CRC_INIT_ANNOT */

/*
 * crc_basic(): the CRC-32 of "uid modseq last_updated (flagcrc)
 * internaldate guidhex", flagcrc the XOR of the CRC-32s of the
 * lower-cased names of the record's flags (system and user: user flag
 * bit n is flagnames[n], NULL entries or n >= nflags are skipped, as
 * Cyrus skips bits without a name).  0 for an expunged record.
 */
uint32_t ids_sync_crc_basic(const struct ids_index_record *rec,
    char *const *flagnames, size_t nflags);

/* crc_annot(): CRC-32 of "uid entry userid " followed by the value's bytes. */
uint32_t ids_sync_crc_annot(uint32_t uid, const char *entry, const char *userid,
    const void *value, size_t len);

/*
 * crc_virtannot() of 3.6: the annotations the index record holds
 * (thrid from cid for minor version >= 13, savedate >= 15,
 * createdmodseq >= 16), XORed.  0 for an expunged record.
 */
uint32_t ids_sync_crc_virtannot(const struct ids_index_record *rec,
    uint32_t minor_version);

/*
 * The CRC contributions of one RECORD kvlist as csync carries it
 * (%(UID MODSEQ LAST_UPDATED FLAGS INTERNALDATE SIZE GUID ANNOTATIONS)):
 * *basic gets crc_basic() from its fields and flag names, *annot the
 * XOR of crc_annot() over its ANNOTATIONS with a non-empty VALUE (the
 * index's own ones included: they travel as annotations too, thrid
 * re-spelled as Cyrus hashes it).  Both are 0 for a record flagged
 * \Expunged.  IDS_ECORRUPT names a missing or malformed field.
 */
int ids_sync_record_crcs(const struct ids_dlist *record, uint32_t *basic,
    uint32_t *annot);

/* --- the folder's replica file ------------------------------------------ */

#define IDS_SYNC_FILE	"idspool.sync"

/*
 * The contents of idspool.sync, in memory: extra is a kvlist of the
 * MAILBOX keys to report back (NULL when none), annots the folder's
 * ANNOTATIONS list (NULL when none), and records, by uid, the
 * ANNOTATIONS lists of records (only entries that are not the index's
 * own).  Every list holds %(ENTRY e USERID u MODSEQ m VALUE v) items.
 */
struct ids_sync_recannot {
	uint32_t uid;
	struct ids_dlist *annots;	/* a LIST */
};

struct ids_sync_store {
	struct ids_dlist *extra;
	struct ids_dlist *annots;
	struct ids_sync_recannot *records;	/* sorted by uid */
	size_t nrecords;
};

void ids_sync_store_init(struct ids_sync_store *st);
void ids_sync_store_release(struct ids_sync_store *st);
/*
 * Reads IDS_SYNC_FILE in dirfd (the folder's metadata directory):
 * a missing file is an empty store.  IDS_ECORRUPT names what is wrong.
 */
int ids_sync_store_read(int dirfd, struct ids_sync_store *st);
/*
 * Replaces IDS_SYNC_FILE in dirfd durably (ids_write_durable); an empty
 * store removes the file.  Failpoint "sync.store_write".  The caller
 * holds the folder's lock.
 */
int ids_sync_store_write(int dirfd, const struct ids_sync_store *st);
/* The annotations stored for uid, or NULL. */
struct ids_dlist *ids_sync_store_record(const struct ids_sync_store *st, uint32_t uid);
/* Sets (annots, taken over even on failure) or clears (NULL) uid's annotations. */
int ids_sync_store_set_record(struct ids_sync_store *st, uint32_t uid,
    struct ids_dlist *annots);
/*
 * From an APPLY MAILBOX kvlist, keeps what the state does not rebuild
 * from index, header and mailboxes.db: the keys of extra (see above,
 * every key not in the list of ids_sync_mailbox_kvlist) and the folder
 * ANNOTATIONS.  Record annotations are set per record by the caller.
 */
int ids_sync_store_from_mailbox(struct ids_sync_store *st, const struct ids_dlist *kv);

/* --- the folder's state -------------------------------------------------- */

/*
 * What a folder's state is built from.  header supplies the user flag
 * names; entry the N record; store may be NULL (empty).
 */
struct ids_sync_source {
	const struct ids_mbentry *entry;
	const struct ids_header *header;
	const struct ids_index *index;
	const struct ids_sync_store *store;
};

#define IDS_SYNC_RECORDS	0x1	/* add RECORD (...) as GET FULLMAILBOX does */

/*
 * SYNC_CRC and SYNC_CRC_ANNOT computed over the records (not the
 * index header's stored values, which our writers do not maintain).
 */
int ids_sync_crcs(const struct ids_sync_source *src, uint32_t *basic, uint32_t *annot);
/*
 * One record's share of ids_sync_crcs, XORed into *basic and *annot
 * (which start at 0 and IDS_SYNC_CRC_ANNOT_INIT): nothing for an
 * expunged record.  header supplies the user flag names; store may be
 * NULL.  For writers that see the records one at a time.
 */
void ids_sync_crc_record(const struct ids_index_record *rec, uint32_t minor_version,
    const struct ids_header *header, const struct ids_sync_store *store,
    uint32_t *basic, uint32_t *annot);

/*
 * The MAILBOX kvlist of 3.6's sync_prepare_dlists(), in its key order:
 *   UNIQUEID MBOXNAME [MBOXTYPE] SYNC_CRC SYNC_CRC_ANNOT LAST_UID
 *   HIGHESTMODSEQ RECENTUID RECENTTIME LAST_APPENDDATE POP3_LAST_LOGIN
 *   POP3_SHOW_AFTER [XCONVMODSEQ] [RACLMODSEQ] UIDVALIDITY PARTITION ACL
 *   OPTIONS [QUOTAROOT] [CREATEDMODSEQ] [FOLDERMODSEQ] [ANNOTATIONS]
 *   [RECORD (%(UID MODSEQ LAST_UPDATED FLAGS INTERNALDATE SIZE GUID
 *            [ANNOTATIONS]) ...)]
 * Bracketed keys appear when set (MBOXTYPE, XCONVMODSEQ, RACLMODSEQ and
 * QUOTAROOT from the store's extra; keys of extra Cyrus does not print
 * follow FOLDERMODSEQ).  RECORD holds expunged records too, flagged
 * \Expunged.  MBOXNAME is the internal name.
 */
int ids_sync_mailbox_kvlist(const struct ids_sync_source *src, int flags,
    struct ids_dlist **out);

/*
 * The same for an open folder (its lock held): reads cyrus.index,
 * cyrus.header and idspool.sync from its directories.
 */
int ids_sync_mailbox_state(struct ids_mailbox *mb, int flags, struct ids_dlist **out);

/* Cyrus's OPTIONS letters for index options (sync_encode_options()). */
void ids_sync_options(uint32_t options, char out[8]);
/* Cyrus's ACL string "id\trights\t..." of an N record (malloc'd, or NULL on ENOMEM). */
char *ids_sync_acl_string(const struct ids_mbentry *e);

/* --- the state cache (syncstate.db, statecache.c) ------------------------
 *
 * A folder's state line (no records) and its stat-only MISSING list,
 * kept by uniqueid in $configdirectory/syncstate.db (LMDB) and believed
 * only while its signature still holds: the device, inode, size, mode,
 * mtime and ctime (ns) of cyrus.index, cyrus.header, idspool.sync (all
 * zero when absent) and of the data directory (a message file added or
 * removed changes it), and the entry key of its mailboxes.db record.
 * The signature is taken under the folder's lock before the files are
 * read; a signature with a time less than 2 s old is not stored
 * (ids_sync_sig_settled), so a change in the same clock tick as the one
 * seen cannot look unchanged.  spool-layout.md "The state cache".
 */
#define IDS_SYNC_SIG_FILES	4
struct ids_sync_sigfile {
	uint64_t dev, ino, size, mode;
	int64_t mtime, ctime;
};
struct ids_sync_sig {
	struct ids_sync_sigfile f[IDS_SYNC_SIG_FILES];
};
struct ids_sync_statecache;

/* The signature of the open folder mb (its lock held), by its directories. */
int ids_sync_sig_open(struct ids_mailbox *mb, struct ids_sync_sig *sig);
/* The same, without opening anything (fstatat of the paths e resolves to). */
int ids_sync_sig_paths(const struct ids_config *cfg, const struct ids_mbentry *e,
    struct ids_sync_sig *sig);
/* 1 when every time of sig is at least 2 s old: a signature safe to store. */
int ids_sync_sig_settled(const struct ids_sync_sig *sig);
/* What of e the state line holds (uniqueid, name, partition, ...), malloc'd or NULL. */
char *ids_sync_entry_key(const struct ids_mbentry *e);

/* Opens (creates; a file LMDB cannot read is made anew) the cache of cfg. */
int ids_sync_statecache_open(const struct ids_config *cfg, struct ids_sync_statecache **scp);
/* Commits what is queued, and closes. */
void ids_sync_statecache_close(struct ids_sync_statecache *sc);
/*
 * 1 with *state and *missing (caller frees; *missing NULL when it was
 * stored without one) when the cache holds the folder uniqueid with
 * exactly sig and ekey and a value that reads back whole; else 0 (a
 * miss: nothing is believed).
 */
int ids_sync_statecache_get(struct ids_sync_statecache *sc, const char *uniqueid,
    const struct ids_sync_sig *sig, const char *ekey, struct ids_dlist **state,
    struct ids_dlist **missing);
/* Queues an entry (committed by _flush, or when the queue is full); missing may be NULL. */
int ids_sync_statecache_put(struct ids_sync_statecache *sc, const char *uniqueid,
    const struct ids_sync_sig *sig, const char *ekey, const struct ids_dlist *state,
    const struct ids_dlist *missing);
/*
 * Commits the queued entries in one transaction (failpoint
 * "sync.statecache_commit"); when there are any and a live function is
 * set, the same transaction first deletes the entries a bounded sweep
 * found gone (64 entries examined, plus 16 a put, up to 4096, each
 * flush going on where the last stopped).  No puts queued: nothing is read or written.
 */
int ids_sync_statecache_flush(struct ids_sync_statecache *sc);
/*
 * Which of the n uniqueids ids have no live folder: gone[i] set to 1
 * for those (0: live, or unknown); < 0 when it cannot say (nothing is
 * swept).
 */
typedef int (*ids_sync_statecache_live_fn)(void *rock, const char *const *ids, size_t n,
    unsigned char *gone);
/* Sets the function the sweep asks (NULL: no sweep, as when never set). */
void ids_sync_statecache_set_live(struct ids_sync_statecache *sc,
    ids_sync_statecache_live_fn fn, void *rock);

/* --- per-user replica data (replica.db) ----------------------------------
 *
 * One LMDB environment, $configdirectory/replica.db; key
 * "<kind>\0<owner>\0<key>", value the dlist of the item as received:
 *   SUB         owner userid, key mailbox name, value %(USERID MBOXNAME)
 *   SEEN        owner userid, key folder uniqueid,
 *               value %(USERID UNIQUEID LASTREAD LASTUID LASTCHANGE SEENUIDS)
 *   QUOTA       owner quota root, key "", value %(ROOT ... LIMITS ...)
 *   SIEVE       owner userid, key script name,
 *               value %(USERID FILENAME LAST_UPDATE CONTENT ISACTIVE)
 *   ANNOTATION  owner "" (server) or mailbox name, key "entry\tuserid",
 *               value %(MBOXNAME ENTRY USERID MODSEQ VALUE)
 * Each put or delete is one durable LMDB transaction (failpoint
 * "sync.meta_commit").  A key over LMDB's key size (511 bytes) is
 * IDS_ETOOLONG.
 */
enum ids_sync_kind {
	IDS_SYNC_SUB = 'U',
	IDS_SYNC_SEEN = 'S',
	IDS_SYNC_QUOTA = 'Q',
	IDS_SYNC_SIEVE = 'V',
	IDS_SYNC_ANNOTATION = 'A',
};

struct ids_sync_meta;

int ids_sync_meta_open(const struct ids_config *cfg, struct ids_sync_meta **mp);
void ids_sync_meta_close(struct ids_sync_meta *m);
/* Stores val (copied) for (kind, owner, key); val NULL deletes (absent is fine). */
int ids_sync_meta_put(struct ids_sync_meta *m, enum ids_sync_kind kind,
    const char *owner, const char *key, const struct ids_dlist *val);
/* The stored value (caller frees) or IDS_ENOTFOUND. */
int ids_sync_meta_get(struct ids_sync_meta *m, enum ids_sync_kind kind,
    const char *owner, const char *key, struct ids_dlist **out);
/*
 * Calls fn for every item of (kind, owner) in key order; a non-zero
 * return of fn stops the walk and is returned.
 */
typedef int (*ids_sync_meta_fn)(const char *key, const struct ids_dlist *val, void *rock);
int ids_sync_meta_foreach(struct ids_sync_meta *m, enum ids_sync_kind kind,
    const char *owner, ids_sync_meta_fn fn, void *rock);
/* Deletes everything of owner, every kind (APPLY UNUSER). */
int ids_sync_meta_delete_owner(struct ids_sync_meta *m, const char *owner);
/*
 * An empty write transaction of replica.db: returns once every write
 * transaction begun before it has ended (the rolling client, after
 * reading user entries of the change journal, which their writers
 * append inside their transactions).
 */
int ids_sync_meta_barrier(const struct ids_config *cfg);

#endif
