/*
 * mbentry.h - a mailbox's record in mailboxes.db, and its name history.
 *
 * This is the in-memory form of Cyrus 3.6's N (by name) and I (by
 * uniqueid) records (formats.md section 5), shared by mboxlist.c (LMDB),
 * header.c (cyrus.header keeps the same history) and the dump tools.
 *
 * Encodings (dlist kvlists, see dlist.h):
 *   N value: %(T mbtype I uniqueid P partition S server V uidvalidity
 *              C createdmodseq F foldermodseq M mtime A %(id rights ...))
 *   I value: %(T mbtype N dbname P ... V ... C ... F ... M ... A ...
 *              H (%(N old-dbname M mtime V uidvalidity C createdmodseq
 *                   F foldermodseq T mbtype P partition) ...))
 * Empty or zero fields are omitted on write and default on read.  In
 * mailboxes.db names are dbnames; in cyrus.header the history items
 * carry internal names (ids_history_* take which one as an argument).
 *
 * Strings in these structs are malloc'd and owned by the struct.
 */
#ifndef IDS_MBENTRY_H
#define IDS_MBENTRY_H

#include <stddef.h>
#include <stdint.h>

struct ids_buf;
struct ids_dlist;

/* mbtype: first char the kind ('e' email, also n b c a s p f), then flags. */
#define IDS_MBTYPE_MAX 16
#define IDS_MBFLAG_DELETED	'd'	/* tombstone */
#define IDS_MBFLAG_MOVING	'm'
#define IDS_MBFLAG_REMOTE	'r'
#define IDS_MBFLAG_RESERVED	'z'
#define IDS_MBFLAG_INTERMEDIATE	'i'
#define IDS_MBFLAG_LEGACY	'l'	/* folder lives at its legacy (name-based) path */

struct ids_acl {
	char *id;
	char *rights;
};

struct ids_history {
	char *name;		/* internal name it had (or dbname, see above) */
	int64_t mtime;		/* when it stopped having that name */
	uint32_t uidvalidity;
	uint64_t createdmodseq;
	uint64_t foldermodseq;
	char mbtype[IDS_MBTYPE_MAX];
	char *partition;
};

struct ids_mbentry {
	char *name;		/* internal name */
	char *uniqueid;
	char *partition;	/* NULL only on tombstones */
	char *server;		/* NULL unless remote */
	char mbtype[IDS_MBTYPE_MAX];	/* "e", "el", "ed", ... in Cyrus's flag order */
	uint32_t uidvalidity;
	uint64_t createdmodseq;
	uint64_t foldermodseq;
	int64_t mtime;
	struct ids_acl *acl;
	size_t nacl;
	struct ids_history *history;	/* newest first, never trimmed */
	size_t nhistory;
};

void ids_mbentry_init(struct ids_mbentry *e);
void ids_mbentry_release(struct ids_mbentry *e);
int ids_mbentry_copy(struct ids_mbentry *dst, const struct ids_mbentry *src);

/* Flag tests and edits on mbtype, keeping Cyrus's order "dmrzil". */
int ids_mbtype_has(const char *mbtype, char flag);
int ids_mbtype_set(char mbtype[IDS_MBTYPE_MAX], char flag, int on);
int ids_mbtype_check(const char *mbtype);	/* 0 or IDS_ECORRUPT */
int ids_mbentry_is_tombstone(const struct ids_mbentry *e);
int ids_mbentry_is_legacy(const struct ids_mbentry *e);

/* Adds a history item (newest first) describing e's current name. */
int ids_mbentry_push_history(struct ids_mbentry *e, int64_t when);

void ids_history_release(struct ids_history *h);
/*
 * Sets id's rights (NULL removes id): a repeated id keeps its place.
 * Each call looks for id: use it for one entry, not to build an ACL.
 */
int ids_acl_set(struct ids_acl **acl, size_t *nacl, const char *id, const char *rights);
void ids_acl_free(struct ids_acl *acl, size_t nacl);
/*
 * Building an ACL of many entries in O(n log n): ids_acl_append() adds
 * id => rights at the end (both malloc'd; it owns them from then on,
 * also on failure; *cap is the allocated length, 0 for a new array)
 * without looking for id, then ids_acl_dedup() merges repeated ids the
 * way as many ids_acl_set() calls would: the first place, the last
 * rights.  (n calls of ids_acl_set() cost O(n^2): 230 s for 90,000
 * entries.)  Each returns 0 or -ENOMEM (append: also for a NULL id or
 * rights, so that it can take strdup()'s result).
 */
int ids_acl_append(struct ids_acl **acl, size_t *nacl, size_t *cap, char *id,
    char *rights);
int ids_acl_dedup(struct ids_acl *acl, size_t *nacl);
/* 1 if a and b hold the same id => rights pairs in any order, 0 if not, or -ENOMEM. */
int ids_acl_equal(const struct ids_acl *a, size_t na, const struct ids_acl *b, size_t nb);

/* The N and I record values.  Names in them are converted to dbnames. */
int ids_mbentry_encode_n(const struct ids_mbentry *e, struct ids_buf *out);
int ids_mbentry_encode_i(const struct ids_mbentry *e, struct ids_buf *out);
/*
 * Decoding: name is the mailbox's internal name (from the key for N
 * values); for I values uniqueid comes from the key.  Fills e, which
 * must be initialised; IDS_ECORRUPT with detail on malformed values.
 */
int ids_mbentry_decode_n(struct ids_mbentry *e, const char *name,
    const char *val, size_t len);
int ids_mbentry_decode_i(struct ids_mbentry *e, const char *uniqueid,
    const char *val, size_t len);

/*
 * History and ACL <-> dlist.  dbnames != 0: names in the items are
 * dbnames on the wire (mailboxes.db), else internal names (cyrus.header).
 */
int ids_history_to_dlist(const struct ids_history *h, size_t n, int dbnames,
    struct ids_dlist *list);
int ids_history_from_dlist(const struct ids_dlist *list, int dbnames,
    struct ids_history **hp, size_t *np);
int ids_acl_to_dlist(const struct ids_acl *acl, size_t n, struct ids_dlist *kvlist);
int ids_acl_from_dlist(const struct ids_dlist *kvlist, struct ids_acl **aclp, size_t *np);

#endif
