/*
 * reconstruct_int.h - what the files of the reconstruct module share
 * (not part of the library's interface; see reconstruct.h for that).
 *
 *   reconstruct.c         entry points, events, the string map, names
 *   reconstruct_scan.c    the walk over the partitions, reading folders
 *   reconstruct_plan.c    the rules: ids, names, conflicts, history
 *   reconstruct_db.c      the snapshot of mailboxes.db, the wanted
 *                         records, the difference and the commit
 *   reconstruct_repair.c  header rewrites, re-ids and their recovery
 *   reconstruct_check.c   the check of one live mailbox
 *
 * A rebuild runs: snapshot (read mailboxes.db) -> scan (walk the disk)
 * -> plan (decide every folder's id and name) -> want (the records to
 * have) -> repair (files) -> commit (one write transaction).
 */
#ifndef IDS_RECONSTRUCT_INT_H
#define IDS_RECONSTRUCT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "header.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxname.h"
#include "reconstruct.h"

#define RC_NONE ((size_t)-1)

/* A string -> index map with open addressing; keys are borrowed. */
struct rc_slot {
	const char *key;
	size_t val;
};
struct rc_map {
	struct rc_slot *slots;
	size_t n, cap;
};
/* Adds key; if it is there already, stores its value in *old and returns 1. */
int ids_rc_map_add(struct rc_map *m, const char *key, size_t val, size_t *old);
/* Points an existing key's slot at key (equal bytes) and val. */
void ids_rc_map_set(struct rc_map *m, const char *key, size_t val);
/* The value of key, or RC_NONE. */
size_t ids_rc_map_get(const struct rc_map *m, const char *key);
void ids_rc_map_release(struct rc_map *m);

/* What a folder's index header says (the fields reconstruct uses). */
struct rc_index {
	uint32_t uidvalidity;
	uint32_t last_uid;
	uint32_t exists;
	uint32_t header_file_crc;
	uint64_t createdmodseq;
	uint64_t highestmodseq;
};

#define RCF_UNREADABLE	0x001	/* cyrus.header unreadable: left untouched */
#define RCF_REID	0x002	/* gets a new unique id */
#define RCF_WRITE	0x004	/* its cyrus.header is rewritten */
#define RCF_LEFTOUT	0x008	/* not registered */
#define RCF_BUSY	0x010	/* an operation of another process holds it */
#define RCF_NOINDEX	0x020	/* cyrus.index unreadable */
#define RCF_RECOVERED	0x040	/* given a recovery name */
#define RCF_SKIPPED	0x080	/* a repair failed: records kept as they were */

/* A folder found on disk, and what the plan decides for it. */
struct rc_folder {
	const struct ids_partition *part;
	char *rel;		/* its directory below the partition root */
	char *path;		/* the same, absolute, for events */
	enum ids_layout layout;
	char *pathname;		/* legacy: the name of the path; uniqueid: the owner's root */
	char dirid[IDS_UNIQUEID_MAX + 1];	/* uniqueid layout: the directory's id */
	struct ids_header h;	/* name, uniqueid, mbtype, ACL, history as read */
	uint32_t hdr_crc;	/* of the file's bytes, to notice later changes */
	int64_t hdr_mtime;
	int hdr_err, idx_err;
	struct rc_index ix;
	/* decided */
	char id[IDS_UNIQUEID_MAX + 1];		/* its own id (header, or directory) */
	char newid[IDS_UNIQUEID_MAX + 1];	/* RCF_REID: the id it gets instead */
	char *name;
	struct ids_history *hist;	/* merged history, newest first */
	size_t nhist;
	size_t known;		/* the snapshot's N record of this folder, or RC_NONE */
	size_t next;		/* the next folder with the same id, or RC_NONE */
	int64_t took_name;	/* when it took its name: newest history M, else 0 */
	unsigned flags;
};

/* The id a folder ends up with. */
static inline const char *
rc_id(const struct rc_folder *f)
{
	return f->newid[0] ? f->newid : f->id;
}

/* One record of mailboxes.db as the rebuild found it. */
struct rc_rec {
	struct ids_mbentry e;
	uint64_t hash;		/* of the raw value */
	unsigned in_scope:1;	/* the rebuild may change it */
	unsigned kept:1;	/* the rebuild leaves it as it is */
	unsigned wanted:1;	/* a wanted record has its key */
	unsigned matched:1;	/* a folder on disk is this record's */
};

/* Raw keys and value hashes of one record type, in key order. */
struct rc_raw {
	char **keys;
	uint64_t *hash;
	size_t n, alloc;
};

struct rc_snap {
	int present;		/* a mailboxes.db was read */
	struct rc_rec *n;	/* N records */
	size_t nn, an;
	struct rc_rec *i;	/* I records */
	size_t ni, ai;
	struct rc_map byname;	/* internal name -> n[] */
	struct rc_map byid;	/* uniqueid -> i[] */
	struct rc_map byloc;	/* location key -> n[] (live records) */
	char **lockeys;		/* the location keys, owned */
	size_t nlockeys;
	struct rc_map intents;	/* uniqueids with an intent record */
	char **intent_ids;
	size_t nintents;
	struct rc_raw raw[3];	/* 'N', 'I', 'X' */
};

/* A record the rebuild wants mailboxes.db to hold. */
struct rc_want {
	struct ids_mbentry e;	/* live: with its history */
	size_t folder;		/* the folder it describes, or RC_NONE */
	uint64_t nhash, ihash;	/* of its N and (live) I values */
	int put;		/* differs from the snapshot: to be written */
};

struct rc_ctx {
	const struct ids_config *cfg;
	struct ids_mboxlist *mbl;	/* NULL: no database (dry run) */
	const struct ids_reconstruct_opts *opts;
	ids_rc_fn fn;
	void *rock;
	struct ids_reconstruct_stats *st;
	int timeout_ms;
	struct rc_folder *f;
	size_t nf, af;
	struct rc_snap snap;
	struct rc_map byid;	/* effective id -> first folder */
	struct rc_map byname;	/* decided name -> folder */
	struct rc_want *w;
	size_t nw, aw;
	struct rc_map wname;	/* wanted name -> w[] */
	struct rc_map wid;	/* wanted live uniqueid -> w[] */
};

/* --- reconstruct.c ---------------------------------------------------- */

void ids_rc_emit(struct rc_ctx *c, enum ids_rc_kind kind, const char *rule,
    const struct rc_folder *f, const char *name, const char *uniqueid,
    const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void ids_rc_emit_at(struct rc_ctx *c, enum ids_rc_kind kind, const char *rule,
    const char *path, const char *name, const char *uniqueid, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
void ids_rc_failed(struct rc_ctx *c, const char *rule, const char *path,
    const char *name, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void ids_rc_change(struct rc_ctx *c, const char *rule, const char *name,
    const char *uniqueid, const char *field, const char *from, const char *to);
/* The owner's userid or top level of an internal name, in buf. */
int ids_rc_owner_of(const char *name, char *buf, size_t size);
/* 1 if the record is within opts' partition and owner. */
int ids_rc_in_scope(const struct rc_ctx *c, const char *name, const char *partition,
    int tombstone);
/* "<partition>\x1f<reldir>", malloc'd, for a live entry; NULL if it has none. */
char *ids_rc_location_key(const struct rc_ctx *c, const struct ids_mbentry *e);
char *ids_rc_folder_key(const struct rc_folder *f);
uint64_t ids_rc_hash(const void *p, size_t n);
/* The internal name from levels (real dots), with an optional domain. */
int ids_rc_join_levels(const char *domain, const char *const *lv, size_t n,
    char *buf, size_t size);

/* --- reconstruct_scan.c ----------------------------------------------- */

int ids_rc_scan(struct rc_ctx *c);
void ids_rc_folder_release(struct rc_folder *f);
/* Reads cyrus.header in dirfd: the parsed header, its CRC and mtime. */
int ids_rc_read_header(int dirfd, struct ids_header *h, uint32_t *crc, int64_t *mtime);

/* --- reconstruct_plan.c ----------------------------------------------- */

int ids_rc_plan(struct rc_ctx *c);
/* Merges b into the history a (newest first, no item twice). */
int ids_rc_history_merge(struct ids_history **a, size_t *na,
    const struct ids_history *b, size_t nb);
int ids_rc_history_has(const struct ids_history *h, size_t n, const char *name);

/* --- reconstruct_db.c ------------------------------------------------- */

int ids_rc_snapshot(struct rc_ctx *c);
/* 1 if uniqueid has an intent record, in the snapshot or by now. */
int ids_rc_intent_now(struct rc_ctx *c, const char *uniqueid);
void ids_rc_snap_release(struct rc_snap *s);
int ids_rc_want_all(struct rc_ctx *c);
void ids_rc_diff(struct rc_ctx *c);
int ids_rc_commit(struct rc_ctx *c);
void ids_rc_want_release(struct rc_ctx *c);

/* --- reconstruct_repair.c --------------------------------------------- */

int ids_rc_repair_all(struct rc_ctx *c);
/* The directories holding the header and the index of the folder at rel. */
int ids_rc_open_meta(const struct ids_config *cfg, const struct ids_partition *p,
    const char *rel, int *hfd, int *ifd);
void ids_rc_close_meta(int hfd, int ifd);
/* The mbtype a cyrus.header carries for a record: no 'd', no 'l'. */
void ids_rc_header_type(const char *mbtype, char out[IDS_MBTYPE_MAX]);

#endif
