/*
 * auditpriv.h - what the parts of the audit (audit.h) share: findings
 * as they are collected, a folder with its two sides (here and, for
 * comparisons, there), the per-thread hasher, the worker pool, the set
 * of directories known to belong to live folders, and the run.
 *
 *   audit.c        the run: folders in, findings out, in order
 *   auditfolder.c  one folder: its directories, meta files, records
 *   audithash.c    reading a message file once: size, SHA-1, MD5
 *   auditpool.c    the worker threads and their queue
 *   auditcmp.c     the comparison of a folder with its copy there
 *   auditwalk.c    the spool walk for stray folder directories
 *   auditrepair.c  healing damaged messages from the other copy
 *
 * Not installed; nothing outside src/lib/audit*.c includes it.
 */
#ifndef IDS_AUDITPRIV_H
#define IDS_AUDITPRIV_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit.h"
#include "config.h"
#include "guid.h"
#include "header.h"
#include "index.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxname.h"

struct ids_lock;
struct ids_mboxlist;

#define AUDIT_MD5_LEN	16
#define AUDIT_CHUNK	32	/* message files per hashing job */

/* --- findings -------------------------------------------------------- */

struct afinding {
	enum ids_audit_kind kind;
	uint32_t uid;
	int section;		/* sort key: 0 the folder's own checks, 1 comparison */
	size_t seq;		/* sort key: order of addition */
	char *folder;		/* NULL: the folder's name */
	char *uniqueid;		/* NULL: the folder's uniqueid */
	char *path, *expected, *actual;
	char **guids;
	size_t nguids;
	int repairable;		/* a message a verified copy could heal */
	uint8_t guid[IDS_GUID_LEN];	/* repairable: the GUID wanted */
	uint64_t size;		/* repairable: the size wanted */
	enum ids_audit_repair repair;
	char *repair_detail;
};

struct aflist {
	struct afinding *v;
	size_t n, alloc;
	int oom;
	int section;		/* given to findings added */
	int resource;		/* -EMFILE or -ENFILE met: the findings are not the spool's */
};

/*
 * Notes a failure that says nothing about the spool, only about this
 * process (out of descriptors): the audit stops on it instead of
 * reporting files as unreadable (ids_run_emit).
 */
static inline void
ids_af_resource(struct aflist *l, int code)
{
	if ((code == -EMFILE || code == -ENFILE) && l->resource == 0)
		l->resource = code;
}

/*
 * Adds a finding (strings copied; any may be NULL) and returns it, or
 * NULL when out of memory (remembered in l->oom).
 */
struct afinding *ids_af_add(struct aflist *l, enum ids_audit_kind kind, uint32_t uid,
    const char *path, const char *expected, const char *actual);
/* The same with the actual value formatted like printf. */
struct afinding *ids_af_addf(struct aflist *l, enum ids_audit_kind kind, uint32_t uid,
    const char *path, const char *expected, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
void ids_af_release(struct afinding *f);
void ids_aflist_release(struct aflist *l);
/* Sorts by section, then uid (0 first), then order of addition. */
void ids_aflist_sort(struct aflist *l);

/* --- message files --------------------------------------------------- */

enum amsg_state {
	AM_SKIP,	/* no file needed (expunged and unlinked, archived) */
	AM_TODO,	/* to be opened */
	AM_OK,
	AM_ABSENT,
	AM_SIZE,	/* size differs (not hashed unless MD5 is wanted) */
	AM_GUID,	/* SHA-1 differs */
	AM_UNSAFE,
	AM_ERROR,
};

enum amsg_skip {
	SKIP_NONE,
	SKIP_UNLINKED,	/* expunged and unlinked: no file expected */
	SKIP_ARCHIVED,	/* the file is on an archive partition */
	SKIP_BAD,	/* the record's CRC is wrong: nothing in it is trusted */
	SKIP_GONE,	/* no longer needs a file when the index was read again */
};

struct amsg {
	uint32_t uid;
	uint32_t flags;		/* system_flags */
	uint32_t user_flags[4];
	uint64_t size;		/* recorded */
	uint8_t guid[IDS_GUID_LEN];	/* recorded */
	uint8_t state;		/* enum amsg_state */
	uint8_t hashed;		/* sha1 (and md5 when asked) are valid */
	uint8_t what;		/* AM_UNSAFE: S_IF* >> 12; AM_ERROR: none */
	uint8_t skip;		/* AM_SKIP: why (enum amsg_skip) */
	uint8_t vanished;	/* listed, then gone when opened */
	int err;		/* AM_ERROR: negative code */
	uint64_t fsize;		/* found */
	uint8_t sha1[IDS_GUID_LEN];
	uint8_t md5[AUDIT_MD5_LEN];
};

/* The per-thread reader: a buffer and reusable digest contexts. */
struct hasher;

struct hasher *ids_hasher_new(void);
void ids_hasher_free(struct hasher *h);

/*
 * Checks message file name in dirfd against m (m->size, m->guid): opens
 * it without following symlinks, compares the size, and (when the size
 * matches, or always with md5) hashes it in one sequential pass.  Sets
 * m->state and the found values.  Returns the bytes read.
 */
uint64_t ids_hasher_check(struct hasher *h, int dirfd, const char *name,
    struct amsg *m, int md5);

/* The same, only stat()ing the file (no read): AM_OK, ABSENT, SIZE, UNSAFE. */
void ids_hasher_stat(int dirfd, const char *name, struct amsg *m);

/*
 * Reads the regular file name below srcfd while writing it to dstfd,
 * computing its SHA-1: copies are verified as they are made.  Returns
 * the bytes copied or a negative code; *sha1 is set on success.
 */
int64_t ids_hasher_copy(struct hasher *h, int srcfd, const char *name, int dstfd,
    uint8_t sha1[IDS_GUID_LEN]);

/*
 * ids_opendir_beneath(rootfd, rel, 0, fdp) in one system call where the
 * kernel allows: same refusals (symlinks, "..", escaping rootfd).
 */
int ids_audit_opendir(int rootfd, const char *rel, int *fdp);

/* "symlink", "directory", ... for AM_UNSAFE's what. */
const char *ids_amsg_what(uint8_t what);

/* --- a folder on one side -------------------------------------------- */

struct aside {
	const struct ids_config *cfg;
	int *rootfds;		/* per partition: data root, or -1 */
	int *metarootfds;	/* per partition: metapartition root, or -1 */
	struct ids_mbentry e;
	struct ids_mbname mbn;
	struct ids_location loc;
	int located;		/* loc is valid */
	int datafd, metafd;	/* -1 when not open */
	char datapath[4096];	/* absolute, for findings */
	char metapath[4096];	/* the metapartition's directory, or "" */
	uint32_t header_crc;	/* CRC-32 of cyrus.header as read */
	int have_header, have_index;
	struct ids_header h;
	struct ids_index_header ih;
	struct amsg *m;		/* records, in uid order */
	size_t n;
};

struct afolder {
	size_t seq;
	struct aside here, there;
	int has_there;
	int intent;		/* an operation is in progress on it */
	int lock_timeout_ms;	/* for the recheck of suspicious findings */
	struct aflist f;
	int md5;		/* hash both sides with MD5 too */
	int stat_only;		/* stat here's files too, read none */
	size_t pending;		/* hashing jobs not yet done (pool lock) */
	int done;		/* findings complete (pool lock) */
	dev_t known_dev[4];	/* directories that belong to it */
	ino_t known_ino[4];
	int nknown;
	unsigned long messages;	/* files opened */
	unsigned long long bytes;
	unsigned long archived;
};

/* Opens the folder's directories and meta files, lists its messages. */
void ids_folder_prepare(struct afolder *f);
/* Files to open: here's records, then there's (both sides, in uid order). */
size_t ids_folder_nwork(const struct afolder *f);
/* Opens and checks files [start, end) of ids_folder_nwork()'s numbering. */
void ids_folder_hash(struct afolder *f, struct hasher *h, size_t start, size_t end,
    unsigned long *files, unsigned long long *bytes);
/* Turns the message results into findings; comparisons; sorting. */
void ids_folder_finish(struct afolder *f);
void ids_folder_free(struct afolder *f);
/*
 * Opens side s's folder directories (s->e must be set).  On failure
 * s->datapath names the directory that failed when s->located.
 */
int ids_side_open(struct aside *s);
/* Reads side s's index into s->m (uid order); a finding on failure when l. */
int ids_side_read_index(struct aside *s, struct aflist *l, unsigned long *archived);

/* The finding for a checked file m of s (THERE_FILE when there). */
void ids_msg_finding(struct aflist *l, const struct aside *s, const struct amsg *m,
    int there);

/* The comparison (auditcmp.c): findings of section 1 into f->f. */
void ids_compare_folder(struct afolder *f);

/* --- the worker pool ------------------------------------------------- */

struct pool;

/* jobs <= 1: no threads, jobs run in the caller's thread when waited for. */
int ids_pool_new(int jobs, struct pool **pp);
void ids_pool_free(struct pool *p);
/* Queues the preparation and hashing of f. */
int ids_pool_submit(struct pool *p, struct afolder *f);
/* Waits until f is done (runs jobs itself without threads). */
void ids_pool_wait(struct pool *p, struct afolder *f);

/* --- directories known to hold live folders -------------------------- */

struct dirset;
struct dirset *ids_dirset_new(void);
void ids_dirset_free(struct dirset *s);
int ids_dirset_add(struct dirset *s, dev_t dev, ino_t ino);

/* --- the run --------------------------------------------------------- */

struct arun {
	struct ids_mboxlist *mbl;
	const struct ids_audit_opts *o;
	ids_audit_fn fn;
	void *rock;
	struct ids_audit_stats st;
	struct pool *pool;
	struct dirset *known;
	int *rootfds, *metarootfds;		/* here, per partition */
	int *orootfds, *ometarootfds;		/* there */
	struct aflist held;	/* repairable findings waiting for the repair */
	unsigned long unhealed;	/* findings reported that were not healed */
	int stop;		/* fn's negative return */
};

/* Reports every finding of l in order (repairable ones held with repair). */
int ids_run_emit(struct arun *run, struct aflist *l, const char *folder,
    const char *uniqueid, const char *other_folder);

/* The spool walk (auditwalk.c): stray and duplicated folder directories. */
int ids_walk_spool(struct arun *run);
/* The walk below one owner's directories only (subtree audits). */
int ids_walk_subtree(struct arun *run);

/* Heals the held findings from o->other (auditrepair.c), then reports them. */
int ids_repair_held(struct arun *run);

/* An absolute path from a root index and a relative path (truncation checked). */
int ids_abspath(char *buf, size_t size, const char *root, const char *rel,
    const char *file);

#endif
