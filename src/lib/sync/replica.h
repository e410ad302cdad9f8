/*
 * replica.h - the replica side of csync: one session of a Cyrus 3.6
 * sync_client (or any csync client) applied to an idspool spool
 * (spool-layout.md "Replication", spool_sync(8)).
 *
 *	struct ids_replica_opts o = { .log = mylog, .rock = NULL };
 *	r = ids_replica_session(mbl, 0, 1, &o);
 *
 * Folders are found by uniqueid; a name is only checked.  Every apply
 * is durable before its OK: message files linked into the folder and
 * fsynced, then mailboxes.db, cyrus.header, cyrus.index (the commit
 * point of the records) and the folder's idspool.sync.  File literals
 * are staged under the partition ("stage./sync-<pid>", removed at the
 * session's start and end) and checked against their GUID by the
 * codec; a mismatch is refused and never stored.
 *
 * The library never prints: what an operator should see (each apply,
 * each refusal) goes to opts->log, which the tool sends to syslog.
 */
#ifndef IDS_REPLICA_H
#define IDS_REPLICA_H

#include <stdint.h>

struct ids_config;
struct ids_intent;
struct ids_mboxlist;

#define IDS_REPLICA_STAGE_DIR	"stage."	/* under each partition root, as Cyrus's */

struct ids_replica_opts {
	/* prio is a syslog priority (LOG_INFO for applies, LOG_ERR for refusals) */
	void (*log)(void *rock, int prio, const char *msg);
	void *rock;
	uint64_t max_file;	/* largest file literal accepted; 0: the codec's default */
};

/*
 * Serves one csync session: writes the banner to outfd, then reads
 * commands from infd until EXIT, the end of input, or an error that
 * loses the stream.  Returns 0 after EXIT or a clean end of input,
 * else the negative code that ended the session (everything answered
 * OK before it stays durable).
 */
int ids_replica_session(struct ids_mboxlist *mbl, int infd, int outfd,
    const struct ids_replica_opts *opts);

/*
 * Removes the staging directories of sessions that no longer run
 * (their pid is gone) under every partition's stage. directory.
 */
int ids_replica_clean_staging(const struct ids_config *cfg);

/*
 * Settles the intent %(OP sync STAGE header) of a replica that died
 * while it rewrote a folder's cyrus.header: the header is written again
 * from the folder's record (keeping its user flags) and the index's
 * header_file_crc set; then the intent is removed.  For ids_recover(),
 * which holds the folder's lock.
 */
int ids_replica_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in);

#endif
