/*
 * repair.h - missing and damaged message files healed over csync, both
 * ways, with idspool's extensions GET STATE, GET FETCHGUID and APPLY
 * REPAIR (spool-layout.md "Repair over the wire"); seed 000: "the
 * backup which knows it has corrupted files actively seeks out those
 * missing files".  Never a record changes, on either side: only files
 * are put back under the uids whose records name their GUID.
 *
 * The client's sessions (client.c) call ids_sync_repair_set() for each
 * set of local folders when the peer is idspool; spool_audit --compare and
 * --repair-from with a peer command use ids_sync_peer_* for a session
 * of their own.
 *
 * The library never prints: each repair and refusal goes to log.
 */
#ifndef IDS_SYNC_REPAIR_H
#define IDS_SYNC_REPAIR_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"

struct ids_csync_in;
struct ids_csync_out;
struct ids_dlist;
struct ids_mboxlist;
struct ids_repl_session;

/* One session's wire and its local side (not owned). */
struct ids_sync_wire {
	struct ids_repl_session *s;	/* the local spool: lookups, staging, placement */
	struct ids_csync_in *in;	/* the peer's answers (staged into s's directory) */
	struct ids_csync_out *out;	/* our commands */
	void (*log)(void *rock, int prio, const char *msg);
	void (*trace)(void *rock, int dir, const char *line, size_t len);
	void *rock;
	int no_state;			/* the peer answered GET STATE with BAD: not asked again */
};

struct ids_sync_repair_counts {
	size_t here;		/* files put back here */
	size_t there;		/* files put back on the peer */
	size_t failed;		/* files that could not be healed (logged) */
};

#define IDS_SYNC_REPAIR_PUSH	0x1	/* heal the peer's files too (from ours) */
#define IDS_SYNC_REPAIR_VERIFY	0x2	/* read every file (SHA-1), not only its size */

/*
 * For each local live folder of ids (n uniqueids) that the peer holds
 * too (one GET STATE for all): the files the peer reports MISSING are
 * sent to it with APPLY REPAIR (flags IDS_SYNC_REPAIR_PUSH), and the
 * files missing or damaged here (what spool_audit finds) are fetched
 * with GET FETCHGUID and put back.  Returns 0 (refusals counted in
 * c->failed and logged) or the negative code that lost the session.
 */
int ids_sync_repair_set(struct ids_sync_wire *w, const char *const *ids, size_t n, int flags,
    struct ids_sync_repair_counts *c);

/*
 * The repair step of one folder whose state both sides computed this
 * session with its MISSING files (GET USER %(USERID u MISSING 1)): st
 * the peer's MAILBOX kvlist, missing its MISSING list (NULL: none), here
 * 1 when our own state found files missing or damaged here.  Nothing is
 * asked or opened when neither side misses a file.  Returns as
 * ids_sync_repair_set.
 */
int ids_sync_repair_known(struct ids_sync_wire *w, const char *uniqueid,
    const struct ids_dlist *st, const struct ids_dlist *missing, int here, int flags,
    struct ids_sync_repair_counts *c);

/*
 * Sends one command line (taken over: freed) and reads its answer: the
 * untagged lines into *lines and *nlines (the caller frees them with
 * ids_sync_lines_free) and the status (IDS_CSYNC_OK, _NO, _BAD) into
 * *status; *damaged is the codec's refusal of an answer line (a file
 * whose bytes are not its GUID's), else 0.  Returns 0 or the negative
 * code that lost the session.
 */
struct ids_csync_line;
int ids_sync_exchange(struct ids_sync_wire *w, struct ids_csync_line *l,
    struct ids_csync_line ***lines, size_t *nlines, int *status, int *damaged);
/* ids_sync_exchange in two halves: the line sent (freed, traced, flushed)... */
int ids_sync_send(struct ids_sync_wire *w, struct ids_csync_line *l);
/* ...and its answer read, with the status line's text (up to 200 bytes) in text. */
int ids_sync_read_answer(struct ids_sync_wire *w, struct ids_csync_line ***lines,
    size_t *nlines, int *status, int *damaged, char *text, size_t textsize);
/* A line's summary (ids_csync_line_summary) to w->trace, dir '>' or '<'. */
void ids_sync_trace(struct ids_sync_wire *w, int dir, const struct ids_csync_line *l);
void ids_sync_lines_free(struct ids_csync_line **lines, size_t n);

/* --- a session of its own (spool_audit) ----------------------------------- */

struct ids_sync_peer;

/*
 * Reads the banner of the peer writing peer_out and reading peer_in
 * (neither closed); IDS_EINVAL when the peer is not idspool (a real
 * Cyrus cannot answer GET STATE).  timeout: seconds to wait for a byte
 * (0: no limit).
 */
int ids_sync_peer_open(struct ids_mboxlist *mbl, int peer_out, int peer_in,
    unsigned timeout, void (*log)(void *rock, int prio, const char *msg), void *rock,
    struct ids_sync_peer **pp);
/* Sends EXIT (when the session is not lost) and frees p. */
int ids_sync_peer_close(struct ids_sync_peer *p);
struct ids_sync_wire *ids_sync_peer_wire(struct ids_sync_peer *p);

/*
 * GET STATE of uniqueid (flags: IDS_SYNC_REPAIR_VERIFY; records: with
 * RECORD): *state the peer's STATE kvlist (caller frees), NULL when the
 * peer holds no live folder of that uniqueid.  A refusal is IDS_EINVAL
 * with the peer's text in the detail.
 */
int ids_sync_get_state(struct ids_sync_wire *w, const char *uniqueid, int flags,
    int records, struct ids_dlist **state);

/*
 * The peer's live folders, as GET STATE would name them: every user of
 * GET USERS and its folders (GET USER), as %(UNIQUEID MBOXNAME ...)
 * MAILBOX kvlists, in *v (caller frees each and v).
 */
int ids_sync_peer_folders(struct ids_sync_wire *w, struct ids_dlist ***v, size_t *n);

/*
 * GET FETCHGUID guid (hint: a uniqueid the peer tries first, may be
 * NULL): the file staged in the local session's staging directory, its
 * name there in name (size bytes).  1 fetched, 0 the peer has none
 * (or sent a file whose bytes are not the GUID's: refused, never
 * stored), negative: the session is lost.
 */
int ids_sync_fetchguid(struct ids_sync_wire *w, const char *guid, const char *hint,
    char *name, size_t size);

/*
 * The pair audit over the wire (spool_audit --compare / --repair-from
 * with a peer command): the local audit of o's scope (o->other unused),
 * with o->repair its missing and damaged files fetched from the peer
 * (GET FETCHGUID) and put back, with o->compare each folder compared
 * with the peer's of the same uniqueid (GET STATE with its records, the
 * peer reading its own files) and, without names, the peer's users'
 * folders live nowhere here (only-there).  Findings as ids_audit_run()
 * reports them (no path for the peer's side); returns as it does.
 */
int ids_sync_audit_remote(struct ids_mboxlist *mbl, struct ids_sync_wire *w,
    const struct ids_audit_opts *o, ids_audit_fn fn, void *rock, struct ids_audit_stats *st);

#endif
