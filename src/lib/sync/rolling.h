/*
 * rolling.h - what rolling replication (spool_sync -R) keeps per
 * channel besides its cursor: the failure records of the folders the
 * peer refused, the folders a journal batch names, and a channel's
 * status (spool_sync -s).  spool-layout.md, "Replication: rolling".
 *
 * sync/[CHANNEL/]failures: one line per folder or user,
 *
 *	<key>\t<code>\t<name>\t<attempts>\t<first>\t<last>\t<next>\t<reason>
 *
 * key: the folder's uniqueid, "@<userid>" for a user's own data
 * (subscriptions, seen state, sieve scripts), or "=<name>" for a name
 * that has no folder here; code: why, as a word (IDS_SYNC_FAIL_*);
 * name: the folder's name when it last failed, or the userid; times in
 * unix seconds; key, name and reason with every byte outside 0x20-0x7e
 * (tab included) and '\' written as \xNN.  A record is found by its key
 * alone, never by its text.  Replaced durably (ids_write_durable)
 * before the cursor moves past the batch that failed them.  A line of
 * the older form "<name>\t<attempts>\t<first>\t<last>\t<next>\t<reason>"
 * is read with the key "=<name>" and the code "refused".
 */
#ifndef IDS_SYNC_ROLLING_H
#define IDS_SYNC_ROLLING_H

#include <stddef.h>
#include <stdint.h>

struct ids_config;
struct ids_mboxlist;
struct ids_journal_batch;

/* The codes of a failure record. */
#define IDS_SYNC_FAIL_REFUSED	"refused"	/* the peer answered NO or BAD */
#define IDS_SYNC_FAIL_LOCAL	"local"		/* an apply here refused it, or unreadable here */
#define IDS_SYNC_FAIL_BUSY	"busy"		/* a writer still held its lock */
#define IDS_SYNC_FAIL_META	"meta"		/* a user's subscriptions, seen state or sieve */
#define IDS_SYNC_FAIL_SESSION	"session"	/* refused in a session that named no folder */

struct ids_sync_failure {
	char *key;		/* uniqueid, "@userid" or "=name" */
	char *code;		/* IDS_SYNC_FAIL_* */
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
/* The record of key, or NULL. */
struct ids_sync_failure *ids_sync_failure_find(struct ids_sync_failures *f, const char *key);
/*
 * One more failure of key (name: as shown): attempts + 1, next = now +
 * backoff(attempts); code and reason replaced.
 */
int ids_sync_failure_note(struct ids_sync_failures *f, const char *key, const char *name,
    const char *code, const char *reason, int64_t now, double min, double max);
/* Forgets key's record; 1 if there was one. */
int ids_sync_failure_drop(struct ids_sync_failures *f, const char *key);

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

/* A folder (or user) a batch asks to compare, and its failure record's key. */
struct ids_sync_item {
	char *name;	/* internal name, or the userid */
	char *key;	/* uniqueid, "@userid" or "=name" (ids_sync_failures) */
	int user;	/* a user's own data */
};

struct ids_sync_items {
	struct ids_sync_item *v;
	size_t n;
};
/* Adds (name, key) unless an item has that name or that key already. */
int ids_sync_items_add(struct ids_sync_items *s, const char *name, const char *key, int user);
/* The item of name, or NULL. */
struct ids_sync_item *ids_sync_items_find(struct ids_sync_items *s, const char *name);
void ids_sync_items_release(struct ids_sync_items *s);
/* The key of the folder named name here (its uniqueid, live or tombstone; else "=name"). */
int ids_sync_folder_key(struct ids_mboxlist *mbl, const char *name, char **key);
/* The current name of the folder of key (a uniqueid), or NULL when it has none here. */
int ids_sync_key_name(struct ids_mboxlist *mbl, const char *key, char **name);

/*
 * The folders and users a journal batch asks to compare: the names of
 * its entries, the current name (live or tombstone) of each uniqueid,
 * and the users of its user entries (out, each with its key).
 * It first waits for the writers whose entries it read to finish: an
 * empty mailboxes.db write transaction (after any in progress), then
 * each uniqueid's mailbox lock, shared, for at most timeout_ms; a
 * folder whose writer holds it longer goes to busy instead (the caller
 * gives it a failure record, so that it is retried on its own).
 */
int ids_sync_batch_names(struct ids_mboxlist *mbl, const struct ids_journal_batch *b,
    int timeout_ms, struct ids_sync_items *out, struct ids_sync_items *busy);

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
