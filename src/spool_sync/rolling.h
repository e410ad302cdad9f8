/*
 * rolling.h - spool_sync's rolling replication (-R), drain and unfence
 * (--drain, --unfence) and per-channel status (-s): the tool side of
 * src/lib/journal.h and src/lib/sync/rolling.h.
 */
#ifndef SPOOL_SYNC_ROLLING_H
#define SPOOL_SYNC_ROLLING_H

struct ids_config;
struct ids_sync_client_opts;

/* Set by the caller: the syslog-and-stderr logger of spool_sync.c and -v. */
extern int rolling_verbose;

/* -R: follows channel's journal until SIGTERM; returns the exit status. */
int rolling_run(const struct ids_config *cfg, const char *channel,
    const struct ids_sync_client_opts *base, char **peer);

/* --drain: fence, flush, full compare; 0 only when the peer is equal. */
int rolling_drain(const struct ids_config *cfg, const char *channel,
    const struct ids_sync_client_opts *base, char **peer);

/* --unfence. */
int rolling_unfence(const struct ids_config *cfg);

/*
 * -s: each channel (or only channel) with its lag, last OK and failing
 * folders, and the fence, printed; with json, as one JSON object on one
 * line ("journal", "fenced", "channels").  Nothing when the spool has no
 * journal (sync_log unset) and no channel is named.
 */
int rolling_status(const struct ids_config *cfg, const char *channel, int json);

#endif
