/*
 * rolling.h - what rolling replication (spool_sync -R) keeps per
 * channel besides its cursor: the failure records of the folders the
 * peer refused, the folders a journal batch names, and a channel's
 * status (spool_sync -s).  spool-layout.md, "Replication: rolling".
 *
 * sync/[CHANNEL/]failures: one line per folder,
 *
 *	<name>\t<attempts>\t<first>\t<last>\t<next>\t<reason>
 *
 * times in unix seconds, name and reason with every byte outside
 * 0x20-0x7e (tab included) and '\' written as \xNN; replaced durably
 * (ids_write_durable) before the cursor moves past the batch that
 * failed them.
 */
#ifndef IDS_SYNC_ROLLING_H
#define IDS_SYNC_ROLLING_H

#include <stddef.h>
#include <stdint.h>

struct ids_config;
struct ids_mboxlist;
struct ids_journal_batch;

struct ids_sync_failure {
	char *name;		/* internal folder name (or userid) */
	unsigned attempts;
	int64_t first, last, next;	/* first and last failure, next retry */
	char *reason;
};

struct ids_sync_failures {
	struct ids_sync_failure *v;
	size_t n;
};

int ids_sync_failures_read(const struct ids_config *cfg, const char *channel,
    struct ids_sync_failures *f);
int ids_sync_failures_write(const struct ids_config *cfg, const char *channel,
    const struct ids_sync_failures *f);
void ids_sync_failures_release(struct ids_sync_failures *f);
struct ids_sync_failure *ids_sync_failure_find(struct ids_sync_failures *f, const char *name);
/* One more failure of name: attempts + 1, next = now + backoff(attempts). */
int ids_sync_failure_note(struct ids_sync_failures *f, const char *name, const char *reason,
    int64_t now, double min, double max);
/* Forgets name's record; 1 if there was one. */
int ids_sync_failure_drop(struct ids_sync_failures *f, const char *name);

/* The wait after attempts failures: min * 2^(attempts-1), at most max (max <= 0: no cap). */
double ids_sync_backoff(double min, double max, unsigned attempts);

/* A set of names, in the order added, without repeats. */
struct ids_sync_names {
	char **v;
	size_t n;
};
int ids_sync_names_add(struct ids_sync_names *s, const char *name);
int ids_sync_names_has(const struct ids_sync_names *s, const char *name);
void ids_sync_names_release(struct ids_sync_names *s);

/*
 * The folder names a journal batch asks to compare: the names of its
 * entries, and the current name (live or tombstone) of each uniqueid.
 * It first waits for the writers whose entries it read to finish: an
 * empty mailboxes.db write transaction (after any in progress), then
 * each uniqueid's mailbox lock, shared, for at most timeout_ms; a
 * folder whose writer holds it longer goes to busy instead (the caller
 * gives it a failure record, so that it is retried on its own).
 */
int ids_sync_batch_names(struct ids_mboxlist *mbl, const struct ids_journal_batch *b,
    int timeout_ms, struct ids_sync_names *out, struct ids_sync_names *busy);

/* A channel's figures for spool_sync -s. */
struct ids_sync_channel_status {
	uint64_t cursor, end;	/* journal positions */
	size_t lag;		/* entries after the cursor */
	int64_t last_ok;	/* time of the last batch the peer answered OK; 0: never */
	struct ids_sync_failures failures;
};
int ids_sync_channel_status(const struct ids_config *cfg, const char *channel,
    struct ids_sync_channel_status *st);
void ids_sync_channel_status_release(struct ids_sync_channel_status *st);

#endif
