/*
 * intent.h - intent records: what a multi-step change is about to do.
 *
 * Before the first file system change of a create, delete, migration
 * or rename, the operation writes an intent record (key 'X' + uniqueid
 * in mailboxes.db) and commits it; it moves the record's stage forward
 * in the same transactions that commit its database changes; it removes
 * the record when the last file system step is durable.  A process that
 * dies leaves the record behind, and the next recovery (ids_recover)
 * finishes or rolls back the operation from it.
 *
 * On the wire an intent is a dlist kvlist:
 *   %(OP op STAGE stage NAME name NEW newname PART partition
 *     SRC srcdir DST dstdir STRATEGY s T time)
 * with empty fields omitted.  Directories are relative to the
 * partition root.
 */
#ifndef IDS_INTENT_H
#define IDS_INTENT_H

#include <stddef.h>
#include <stdint.h>

struct ids_txn;

#define IDS_INTENT_WORD 32

/*
 * The operations (OP) and their stages (STAGE), each spelled here only;
 * spool-layout.md's recovery table says what recovery does at each, and
 * recover.c's op table names the module that does it.
 */
#define IDS_OP_CREATE		"create"	/* mailbox.c */
#define IDS_OP_DELETE		"delete"	/* mailbox.c */
#define IDS_OP_MIGRATE		"migrate"	/* relocate.c */
#define IDS_OP_RENAME		"rename"	/* rename.c */
#define IDS_OP_RENAMEOWNER	"renameowner"	/* rename.c */
#define IDS_OP_COPY		"copy"		/* rename.c */
#define IDS_OP_REID		"reid"		/* reconstruct/ */
#define IDS_OP_SYNC		"sync"		/* sync/replica_apply.c */

#define IDS_STAGE_FILES		"files"		/* create, delete */
#define IDS_STAGE_LINK		"link"		/* migrate (strategy link) */
#define IDS_STAGE_RENAME	"rename"	/* migrate (strategy rename), reid */
#define IDS_STAGE_FLIPPED	"flipped"	/* migrate, after the flip */
#define IDS_STAGE_HEADERS	"headers"	/* rename, renameowner */
#define IDS_STAGE_DIRS		"dirs"		/* renameowner */
#define IDS_STAGE_COPY		"copy"		/* copy */
#define IDS_STAGE_REMOVE	"remove"	/* copy */
#define IDS_STAGE_HEADER	"header"	/* sync */

struct ids_intent {
	char op[IDS_INTENT_WORD];	/* IDS_OP_* */
	char stage[IDS_INTENT_WORD];	/* IDS_STAGE_*, the op's own */
	char *name;		/* internal name the operation started from */
	char *newname;		/* rename target, or NULL */
	char *partition;
	char *src;		/* source directory (relative to the partition root) */
	char *dst;		/* destination directory */
	char strategy[IDS_INTENT_WORD];	/* migrations: "link" or "rename" */
	int64_t time;		/* when the stage was entered */
};

void ids_intent_init(struct ids_intent *in);
void ids_intent_release(struct ids_intent *in);

/* Sets a string field (strdup; NULL clears); 0 or -ENOMEM. */
int ids_intent_set(char **field, const char *value);

int ids_intent_put(struct ids_txn *txn, const char *uniqueid,
    const struct ids_intent *in);
/* IDS_ENOTFOUND when there is none; IDS_ECORRUPT for a malformed record. */
int ids_intent_get(struct ids_txn *txn, const char *uniqueid,
    struct ids_intent *in);
int ids_intent_del(struct ids_txn *txn, const char *uniqueid);

/* Calls fn(uniqueid, intent, rock) for every intent; stops at non-zero. */
typedef int (*ids_intent_fn)(const char *uniqueid, const struct ids_intent *in,
    void *rock);
int ids_intent_foreach(struct ids_txn *txn, ids_intent_fn fn, void *rock);

/*
 * An intent recovery can never settle (a name too long for the file
 * system, a malformed record) is set aside: in one transaction its 'X'
 * record is removed and written as 'Z' + uniqueid, the same kvlist with
 * "WHY reason" added.  Recovery no longer tries it; relocated -s and
 * spool_audit list it, with its reason, for the administrator.
 */
int ids_intent_set_aside(struct ids_txn *txn, const char *uniqueid,
    const struct ids_intent *in, const char *why);

typedef int (*ids_intent_aside_fn)(const char *uniqueid, const struct ids_intent *in,
    const char *why, void *rock);
/* Calls fn for every set-aside intent (an unreadable one: in->op empty). */
int ids_intent_foreach_aside(struct ids_txn *txn, ids_intent_aside_fn fn, void *rock);

#endif
