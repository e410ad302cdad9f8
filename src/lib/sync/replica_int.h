/*
 * replica_int.h - shared by replica.c, replica_apply.c and
 * replica_meta.c only.
 */
#ifndef IDS_REPLICA_INT_H
#define IDS_REPLICA_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

struct ids_config;
struct ids_csync_in;
struct ids_csync_line;
struct ids_csync_out;
struct ids_dlist;
struct ids_mboxlist;
struct ids_sync_meta;
struct ids_sync_statecache;
struct ids_mbentry;
struct ids_replica_opts;

#define IDS_REPLICA_VERSION	"0.1.0"
/*
 * The banner word of idspool's pipelining: a replica that commits the new
 * folders of pipelined applies together (group commit); our client
 * pipelines only to a peer whose banner carries it.
 */
#define IDS_SYNC_PIPELINE_WORD	"idspool-pipeline"

/*
 * A file this session can link from, by GUID: staged (the codec's
 * "<guid>.<n>" in the session's staging directory), or in a local
 * folder.  32 bytes for a staged one: a session that receives a
 * million files holds them in a few tens of MiB, and finds them by a
 * hash of the GUID.
 */
struct ids_repl_have {
	uint8_t guid[20];
	uint32_t n;		/* the staged file's n */
	char *path;		/* absolute, for a local folder's file; NULL when staged */
};

/*
 * A new folder applied, not yet committed: its answer goes at mark in the
 * held output (group commit, replica_apply.c).
 */
struct ids_repl_pending {
	struct ids_mailbox *mb;
	size_t mark;
	size_t nrec, nlinked;
};

struct ids_repl_session {
	struct ids_mboxlist *mbl;
	const struct ids_config *cfg;
	const struct ids_replica_opts *opts;
	struct ids_csync_in *in;
	struct ids_csync_out *out;
	int stagefd, stageparent;
	char stagename[32];
	char stagepath[PATH_MAX];
	struct ids_repl_have *have;
	size_t nhave, ahave;
	uint32_t *hslot;	/* open addressing: index + 1 into have, 0 free */
	size_t nslot;		/* a power of two, at least twice nhave */
	char havepath[PATH_MAX];	/* what ids_repl_have returned last */
	int done;
	struct ids_sync_meta *meta;	/* replica.db, opened on first use */
	struct ids_sync_statecache *sc;	/* syncstate.db, opened on first use */
	int sc_failed;			/* it could not be opened: states computed */
	/* no wire (out NULL): the refusal of the last apply, NULL after OK */
	const char *nok;
	int nok_code;
	size_t guid_tried;	/* folders the last ids_repl_find_guid searched */
	/* no wire: the untagged lines of the last report, for the caller */
	struct ids_csync_line **lines;
	size_t nlines, alines;
	/* new folders applied and awaiting their group commit */
	struct ids_repl_pending *pend;
	size_t npend, apend;
};

/* A session's state and staging directory, with no wire (in, out NULL). */
int ids_repl_session_init(struct ids_repl_session *s, struct ids_mboxlist *mbl,
    const struct ids_replica_opts *opts);
void ids_repl_session_release(struct ids_repl_session *s);

void ids_repl_log(struct ids_repl_session *s, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ids_repl_refuse(struct ids_repl_session *s, const char *what, const char *imaperr,
    int code);
const char *ids_repl_imap_error(int code);
int ids_repl_ok(struct ids_repl_session *s, const char *text);
int ids_repl_bad(struct ids_repl_session *s, const char *text);
/* A line the codec refused with r: BAD or NO, or r when the stream is lost. */
int ids_repl_bad_input(struct ids_repl_session *s, int r);
int ids_repl_untagged(struct ids_repl_session *s, const char *key,
    const struct ids_dlist *value);
void ids_repl_lines_release(struct ids_repl_session *s);
/* The path of a file of guid (valid until the next call), or NULL. */
const char *ids_repl_have(struct ids_repl_session *s, const char *guid);
int ids_repl_add_have(struct ids_repl_session *s, const char *guid, const char *path);
int ids_repl_report_folder(struct ids_repl_session *s, const char *name, int flags);

/* A list of folder names. */
struct ids_repl_names {
	char **v;
	size_t n, a;
};
void ids_repl_names_free(struct ids_repl_names *l);
int ids_repl_names_add(struct ids_repl_names *l, const char *name);
/* The users whose INBOX is live here, as csync names them ("bob@example.com"). */
int ids_repl_users(struct ids_repl_session *s, struct ids_repl_names *out);
/* The live folders of a csync userid ("alice", "bob@example.com"), DELETED ones too. */
int ids_repl_user_folders(struct ids_repl_session *s, const char *userid, int deleted,
    struct ids_repl_names *out);

/*
 * replica_apply.c: the group commit of the new folders applied so far
 * (their answers, in order, in the held output); 0 or < 0 when the
 * output cannot be written.  Called before any command whose answer
 * cannot wait behind theirs, when no more input is waiting, and at the
 * session's end.
 */
int ids_repl_group_commit(struct ids_repl_session *s);

/* replica_apply.c: each answers the client itself (OK/NO/BAD). */
int ids_repl_apply_reserve(struct ids_repl_session *s, const struct ids_dlist *kv);
int ids_repl_apply_mailbox(struct ids_repl_session *s, const struct ids_dlist *kv);
int ids_repl_apply_expunge(struct ids_repl_session *s, const struct ids_dlist *kv);
int ids_repl_apply_rename(struct ids_repl_session *s, const struct ids_dlist *kv);
/* uniqueid (idspool's extension) may be NULL: by name, as Cyrus */
int ids_repl_apply_unmailbox(struct ids_repl_session *s, const char *name,
    const char *uniqueid);
int ids_repl_apply_unuser(struct ids_repl_session *s, const char *userid);
/* Files of the local folder name whose GUID is in guids become held ones. */
int ids_repl_reserve_local(struct ids_repl_session *s, const char *name,
    const struct ids_dlist *guids);
/* 1 when uniqueid is live nowhere and name holds its tombstone. */
int ids_repl_tombstoned(struct ids_repl_session *s, const char *uniqueid, const char *name);
int ids_repl_get_fetch(struct ids_repl_session *s, const struct ids_dlist *kv);

/* replica_state.c: idspool's repair extensions (GET STATE, GET FETCHGUID, APPLY REPAIR). */
struct ids_mailbox;
struct ids_repl_dmg {
	uint32_t uid;
	char guid[41];		/* hex */
	uint64_t size;
};
struct ids_repl_damage {
	struct ids_repl_dmg *v;
	size_t n, a;
};
void ids_repl_damage_release(struct ids_repl_damage *d);
/* The records of live folder name whose files are missing or damaged (the audit's). */
int ids_repl_damaged(struct ids_repl_session *s, const char *name, int verify,
    struct ids_repl_damage *d);
/* The STATE kvlist of live folder uniqueid: its MAILBOX line, HISTORY and MISSING. */
int ids_repl_folder_state(struct ids_repl_session *s, const char *uniqueid, int verify,
    int flags, struct ids_dlist **out, char *name, size_t namesize,
    struct ids_repl_damage *d);
/*
 * A live folder with an intact file of guid (hint: a uniqueid to try
 * first, then its owner's folders), among at most IDS_REPL_GUID_SCAN
 * folders.
 */
#define IDS_REPL_GUID_SCAN 1000
int ids_repl_find_guid(struct ids_repl_session *s, const char *hint, const char *guid,
    struct ids_mailbox **mbp, uint32_t *uid, uint64_t *size);
/* The file srcname of srcdir back under the uids of uniqueid whose records name guid. */
int ids_repl_repair_place(struct ids_repl_session *s, const char *uniqueid, const char *name,
    const char *guid, int srcdir, const char *srcname, struct ids_dlist *uids,
    size_t *placed);
int ids_repl_get_state(struct ids_repl_session *s, const struct ids_dlist *kv);
/*
 * The state line (no records) and stat-only MISSING list of the live
 * folder e (by its name; want_id, when not NULL, must still be its
 * uniqueid under the lock: IDS_EBUSY otherwise), from the state cache
 * without a lock when its signature holds, else computed under the
 * folder's shared lock and queued for the cache.  missing may be NULL
 * (not wanted: then it is not computed, and the entry is stored
 * without it; an entry without one does not answer a caller that wants
 * it).
 */
int ids_repl_cached_state(struct ids_repl_session *s, const struct ids_mbentry *e,
    const char *want_id, struct ids_dlist **state, struct ids_dlist **missing);
/* "* MAILBOX" of the live folder name (nothing when none), and with
 * missing its "* MISSING %(UNIQUEID u MISSING (guids))" when any is. */
int ids_repl_report_state(struct ids_repl_session *s, const char *name, int missing);
/* Commits the cache's queued entries (a failure is logged, never fatal);
 * the session's release does, and a put when 4096 are queued. */
void ids_repl_statecache_flush(struct ids_repl_session *s);
void ids_repl_statecache_release(struct ids_repl_session *s);
int ids_repl_get_fetchguid(struct ids_repl_session *s, const struct ids_dlist *arg);
int ids_repl_apply_repair(struct ids_repl_session *s, const struct ids_dlist *kv);

/* replica_meta.c: SUB, SEEN, QUOTA, SIEVE, ANNOTATION and their UN* forms. */
int ids_repl_apply_meta(struct ids_repl_session *s, const char *sub,
    const struct ids_dlist *arg);
/* replica.db, opened on first use and kept for the session. */
int ids_repl_meta(struct ids_repl_session *s, struct ids_sync_meta **mp);
int ids_repl_report_meta(struct ids_repl_session *s, const char *userid);
int ids_repl_meta_delete_user(struct ids_repl_session *s, const char *userid);
void ids_repl_meta_release(struct ids_repl_session *s);

#endif
