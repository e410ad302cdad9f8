/*
 * client.h - the client side of csync: an idspool spool made equal to
 * a peer (pull) or a peer made equal to the spool (push), folder by
 * uniqueid, over one session on two file descriptors (spool_sync(8)).
 *
 *	struct ids_sync_client_opts o = { .users = u, .nusers = 1, .pull = 1 };
 *	struct ids_sync_client_report rep;
 *	r = ids_sync_client_session(mbl, peer_out, peer_in, &o, &rep);
 *
 * The peer is a csync server: a real Cyrus 3.6 sync_server, or an
 * idspool spool_sync --serve.  The session reads its banner, then for
 * each user asks GET USER (for each folder GET MAILBOXES) and compares
 * the peer's folders with the local ones by UNIQUEID:
 *
 *   pull  a folder we lack is fetched whole (GET FULLMAILBOX), the
 *         message files we do not hold are fetched (GET FETCH, staged
 *         and checked against their GUID by the codec), and the result
 *         is applied locally through the replica's own applies
 *         (replica_apply.c), so that every write, intent and failpoint
 *         is the replica's; a folder the peer holds under another name
 *         is renamed first.
 *   push  a folder the peer holds under another name is renamed there
 *         (APPLY RENAME); a folder it lacks is sent whole: APPLY
 *         RESERVE, APPLY MESSAGE of the files the peer reports MISSING
 *         (streamed from our files), APPLY MAILBOX with every record.
 *
 * A folder both sides hold whose state lines differ is merged by UID
 * (merge.h), both ways whatever the direction: both record lists are
 * read (ours, the peer's GET FULLMAILBOX), and each side is made the
 * merged list (a split-brain UID renumbered on both sides, a record
 * only the target has copied back, an expunge kept, flags of the
 * higher MODSEQ), the peer by APPLY RESERVE/MESSAGE/MAILBOX/EXPUNGE,
 * this spool through the replica's applies.  The source (pull: the
 * peer) only wins ties.
 *
 * Each user's subscriptions and seen state follow its folders (both
 * ways), and its sieve scripts when pushing to an idspool peer.
 * Renames come before any folder's contents, deletes before them; a
 * rename cycle is broken through a temporary name.
 *
 * A folder one side holds and the other does not is deleted from the
 * side holding it only when the other side holds a tombstone of its
 * uniqueid (locally: mailboxes.db; on an idspool peer: the extension
 * GET TOMBSTONE, sent only when the banner names idspool; a real Cyrus
 * is never asked, so its replica-only folders are kept).  Otherwise it
 * is kept, counted in report->kept, and copied to the other side: under
 * its own name, or "<name>-recovered-<first 8 characters of its
 * uniqueid>" (the whole uniqueid if that is taken too) on both sides
 * when the other side holds its name with another uniqueid.
 *
 * Every renumbering, copy-back, conflict and kept folder is a finding:
 * logged, counted in report->findings and appended to the findings
 * file of the configuration (findings.h).
 *
 * With an idspool peer, each folder both sides hold is then checked for
 * missing and damaged message files (repair.h): the peer's are sent to
 * it when pushing, ours fetched from it either way; no record changes.
 * A user's folders are asked as GET USER %(USERID u MISSING 1), so
 * that for a folder whose states are equal each side's MISSING list
 * comes with its state and no GET STATE is needed.
 *
 * Both sides take a folder's state line (no records) and its MISSING
 * list from the state cache, syncstate.db, without locking it, while
 * its signature (its files' and directory's stat, its mailboxes.db
 * record) is unchanged (sync.h, "the state cache"); a folder that
 * differs is merged through the locked paths as before.
 *
 * The library never prints: what an operator should see goes to
 * opts->log (syslog priorities).
 */
#ifndef IDS_SYNC_CLIENT_H
#define IDS_SYNC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct ids_mboxlist;

/* A refusal the client counts in report->failed, as it happened (opts->refused). */
enum ids_sync_refusal_code {
	IDS_SYNC_REFUSED_PEER = 1,	/* the peer answered NO or BAD */
	IDS_SYNC_REFUSED_LOCAL,		/* an apply here refused, or a push cannot read it */
	IDS_SYNC_REFUSED_META,		/* a user's subscriptions, seen state or sieve scripts */
};

struct ids_sync_refusal {
	enum ids_sync_refusal_code code;
	const char *name;	/* the folder's internal name (a rename: its old one), or the userid */
	const char *reason;	/* the peer's answer ("NO IMAP_... text"), or the local refusal */
};

struct ids_sync_client_opts {
	void (*log)(void *rock, int prio, const char *msg);
	void *rock;
	/* each line sent (dir '>') and received ('<'), without CRLF, file bytes elided */
	void (*trace)(void *rock, int dir, const char *line, size_t len);
	int pull;		/* make the spool equal to the peer; else the peer to the spool */
	const char *const *users;	/* csync userids: "alice", "bob@example.com" */
	size_t nusers;
	const char *const *folders;	/* internal names, as csync carries them */
	size_t nfolders;
	int all;		/* -A: every user here, and there when the peer is idspool */
	uint64_t max_file;	/* largest file literal accepted; 0: the codec's default */
	unsigned timeout;	/* seconds to wait for a byte of the peer; 0: no limit */
	const char *peer;	/* how the peer is named in findings (its command) */
	int verify;		/* repair step: read every file (SHA-1), not only its size */
	/* each refusal of a folder or a user's data, beside its log line; may be NULL */
	void (*refused)(void *rock, const struct ids_sync_refusal *r);
	/*
	 * Users whose subscriptions, seen state and sieve scripts alone are
	 * made equal (GET USER, then the APPLYs), after the folders: the
	 * rolling client's user entries of the journal.
	 */
	const char *const *meta_users;
	size_t nmeta_users;
};

struct ids_sync_client_report {
	size_t folders;		/* folders compared */
	size_t applied;		/* folders applied (pull: here; push: on the peer) */
	size_t renamed;
	size_t deleted;
	size_t kept;		/* held by one side only, no tombstone on the other */
	size_t files;		/* message files fetched or sent */
	size_t meta;		/* subscriptions, seen items and sieve scripts applied */
	size_t failed;		/* folders or users refused; the session went on */
	size_t merged;		/* folders whose records were merged (both sides written) */
	size_t findings;	/* renumberings, copy-backs, conflicts, folders recovered */
	size_t repaired;	/* missing or damaged files put back, here or on the peer */
};

/*
 * Runs one session with the peer reading peer_out (its standard output)
 * and writing peer_in (its standard input); neither is closed.  Returns
 * 0 when the session ended with EXIT (report->failed may still count
 * refusals), or the negative code that lost it.
 */
int ids_sync_client_session(struct ids_mboxlist *mbl, int peer_out, int peer_in,
    const struct ids_sync_client_opts *opts, struct ids_sync_client_report *report);

#endif
