/*
 * journal.h - the change journal of rolling replication (spool_sync -R),
 * its channels' cursors, and the failover fence (spool-layout.md,
 * "Replication: the change journal").
 *
 * With sync_log set, every writer of the spool names the folders it
 * changes in one shared, append-only file, <configdirectory>/sync/journal,
 * durable before the change it announces is committed:
 *
 *   - every exclusive mailbox lock (ids_lock_mailbox: delivery, rename,
 *     create, delete, reconstruct, the walker's migration, spool_audit's
 *     repair, the replica's applies) writes the folder's uniqueid when
 *     taken (ids_journal_writer_begin), before anything of the folder
 *     changes;
 *   - every mailboxes.db write transaction that puts or deletes a
 *     mailbox record writes the uniqueids and names (the old name of a
 *     rename or delete included) before its commit;
 *   - every write of a user's subscriptions, seen state or sieve
 *     scripts in replica.db writes the userid before its commit
 *     (ids_journal_append_user).
 *
 * An entry written for a change that then failed or crashed is harmless
 * (the folder is compared with the peer and found equal); a change never
 * lacks its entry.  Each channel (sync_log_channels; "" is the default)
 * keeps its own cursor, the journal position up to which its peer has
 * answered OK; the journal is emptied when every cursor has reached its
 * end.
 *
 * The fence: spool_sync --drain writes <configdirectory>/sync/fence and
 * holds an exclusive lock on sync/writers.lock while it drains; every
 * writer holds a shared lock on sync/writers.lock while it holds an
 * exclusive mailbox lock, and refuses (IDS_EFENCED) while the fence file
 * exists.  The replica's applies are writers too, journaled or not
 * (sync_log_chain): a fenced replica answers every APPLY NO.
 */
#ifndef IDS_SYNC_JOURNAL_H
#define IDS_SYNC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct ids_config;
struct ids_buf;

/* 1 when cfg sets sync_log (and, in a replica process, sync_log_chain). */
int ids_journal_enabled(const struct ids_config *cfg);

/* Marks this process as a replica: its writes are journaled only with sync_log_chain. */
void ids_journal_set_replica(int on);

/*
 * The writer's step, called with the exclusive mailbox lock of uniqueid
 * held: refuses while fenced (IDS_EFENCED), takes the shared writers
 * lock (its descriptor in *wfdp, -1 when sync_log is off; the caller
 * closes it when it releases the mailbox lock) and makes the entry of
 * uniqueid durable.  A replica without sync_log_chain is fenced and
 * takes the writers lock all the same, but writes no entry.
 */
int ids_journal_writer_begin(const struct ids_config *cfg, const char *uniqueid, int *wfdp);

/*
 * 0 when writes may go on, IDS_EFENCED (its reason set) while the
 * fence stands on a spool with sync_log: the replica's check before
 * each APPLY, whether or not it journals what it applies.
 */
int ids_journal_fence_check(const struct ids_config *cfg);

/*
 * A writer of a user's own data (subscriptions, seen state, sieve
 * scripts, quotas, annotations: replica.db), before its transaction:
 * the fence and the shared writers lock (*wfdp, -1 when sync_log is
 * off; the caller closes it after its commit), no entry.
 */
int ids_journal_writer_lock(const struct ids_config *cfg, int *wfdp);

/*
 * The entry of userid's own data, durable on return (nothing when the
 * journal is off), appended inside the writer's replica.db transaction
 * before its commit, so that a reader's empty write transaction after
 * reading it (ids_sync_meta_barrier) waits for the change.
 */
int ids_journal_append_user(const struct ids_config *cfg, const char *userid);

/* Appends the entry of a folder (uniqueid or name may be NULL) to b. */
int ids_journal_format(struct ids_buf *b, const char *uniqueid, const char *name);
/* Appends the entry of a user's own data (userid as csync names it) to b. */
int ids_journal_format_user(struct ids_buf *b, const char *userid);

/* Appends the entries formatted in text durably (nothing when the journal is off). */
int ids_journal_append(const struct ids_config *cfg, const char *text, size_t len);

/* One entry, as read back. */
struct ids_journal_entry {
	char *uniqueid;		/* or NULL */
	char *name;		/* or NULL; a user's entry: the userid */
	int user;		/* a user's own data, not a folder */
};

struct ids_journal_batch {
	struct ids_journal_entry *v;
	size_t n;
	uint64_t start;		/* the position read from */
	uint64_t end;		/* the position after the last whole entry read */
	size_t torn;		/* entries skipped: torn or damaged */
};

/*
 * Reads the entries from position from up to max of them (0: all) into
 * b; b->end is where the next read starts.  A position before the
 * journal's base (entries removed by a compaction) reads from the base.
 */
int ids_journal_read(const struct ids_config *cfg, uint64_t from, size_t max,
    struct ids_journal_batch *b);
void ids_journal_batch_release(struct ids_journal_batch *b);

/* The position after the last entry, and the journal's base. */
int ids_journal_end(const struct ids_config *cfg, uint64_t *base, uint64_t *end);

/* The channels of sync_log_channels (a single "" when unset); free with ids_journal_channels_free. */
int ids_journal_channels(const struct ids_config *cfg, char ***v, size_t *n);
void ids_journal_channels_free(char **v, size_t n);
/* 0 when name is one of them, else IDS_EINVAL with the reason. */
int ids_journal_channel_check(const struct ids_config *cfg, const char *name);

/* A channel's directory below the configuration directory ("sync" or "sync/NAME"). */
int ids_journal_channel_dir(const struct ids_config *cfg, const char *channel, int create,
    int *dirfdp);

/* The channel's cursor: position and time of the last OK (0, 0 when none). */
int ids_journal_cursor_read(const struct ids_config *cfg, const char *channel,
    uint64_t *pos, int64_t *last_ok);
int ids_journal_cursor_write(const struct ids_config *cfg, const char *channel,
    uint64_t pos, int64_t last_ok);

/* Empties the journal when every channel's cursor is at its end. */
int ids_journal_compact(const struct ids_config *cfg);

/*
 * The fence.  ids_journal_fence writes sync/fence (why: one line) and
 * waits for the writers in progress (the exclusive writers lock, its
 * descriptor in *fdp, held until closed); ids_journal_unfence removes
 * it; ids_journal_fenced is 1 (and the file's line in buf) while it
 * exists.
 */
int ids_journal_fence(const struct ids_config *cfg, const char *why, int *fdp);
int ids_journal_unfence(const struct ids_config *cfg);
int ids_journal_fenced(const struct ids_config *cfg, char *buf, size_t size);

/* A duration key ("30", "30s", "2m", "1h", "0.5"): seconds, or def when unset. */
int ids_journal_duration(const struct ids_config *cfg, const char *key, double def,
    double *out);

#endif
