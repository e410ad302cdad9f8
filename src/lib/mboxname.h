/*
 * mboxname.h - Cyrus mailbox names in their three spellings.
 *
 *   internal:  [domain!]user.<local>[.<box>...]   ("example.com!user.john^doe.Sent")
 *              [domain!]<top>[.<box>...]           (shared)
 *              [domain!]DELETED.<name>.<HEXTIME>   (delayed delete)
 *   external:  user/john.doe/Sent@example.com      (admin namespace, unixhierarchysep)
 *   dbname:    mailboxes.db key encoding (formats.md section 5)
 *
 * A parsed name (struct ids_mbname) holds every level decoded: a level
 * "john.doe" has a real dot, never '^'.  It needs no allocation: the
 * strings live in the struct's own storage, so it can be copied with
 * memcpy only via ids_mbname_copy() (pointers refer into the struct).
 *
 * Validation (every parse): no empty level, no '/' inside a level (in
 * the internal spelling), no NUL, control (< 0x20, 0x7f) or 8-bit byte,
 * no level "." or "..", no leading '.', internal length at most
 * IDS_MBNAME_MAX.  IDS_MBNAME_STRICT additionally enforces the create
 * limit IDS_MBNAME_CREATE_MAX and valid modified UTF-7 (RFC 3501 5.1.3).
 * Failures are IDS_EBADNAME or IDS_ETOOLONG with the reason as detail.
 * In detail (spool-layout.md, "Mailbox names"):
 *   - '^' and '!' are refused inside a level too (no spelling could
 *     carry them back), and a leading '.' is refused on the domain, the
 *     localpart and a shared top level (the parts that name directories);
 *   - a shared top level may not be "user", "DELETED" or any case of
 *     "INBOX"; DELETED names need >= 3 levels and end in Cyrus's "%X"
 *     hex time (no leading zero);
 *   - domains are [A-Za-z0-9_-] labels joined by single dots;
 *   - IDS_MBNAME_STRICT also refuses Cyrus's non-creatable bytes
 *     (! " % ; < > \ ` { | }), a leading '~' or '$', and the users
 *     "anyone" and "anonymous"; like Cyrus it does not apply to DELETED
 *     names.
 * A failed parse leaves *mb an empty name (no levels).
 */
#ifndef IDS_MBNAME_H
#define IDS_MBNAME_H

#include <stddef.h>

struct ids_config;

#define IDS_MBNAME_MAX		510	/* longest internal name Cyrus handles */
#define IDS_MBNAME_CREATE_MAX	490	/* longest name Cyrus lets anyone create */
#define IDS_MBNAME_LEVELS	256

#define IDS_MBNAME_STRICT	0x1	/* creation rules: length 490, modified UTF-7 */

struct ids_mbname {
	const char *domain;	/* NULL for the default domain */
	const char *localpart;	/* user mailboxes: the user's localpart; NULL for shared */
	const char *deleted;	/* DELETED mailboxes: the hex time ("6B033B15"); else NULL */
	size_t nboxes;		/* levels below the user (0 = INBOX), or shared top + levels */
	const char *boxes[IDS_MBNAME_LEVELS];
	char store[2 * IDS_MBNAME_MAX + 64];	/* backing storage of the strings */
};

/*
 * The internal spelling: the domain is everything before the first '!'.
 * It is kept as written, even when it is the default domain (Cyrus never
 * writes that one); ids_mbname_normalize() drops it.
 */
int ids_mbname_parse_internal(struct ids_mbname *mb, const char *name, int flags);

/*
 * The external spelling of Cyrus's admin namespace.  With virtdomains
 * (cfg NULL counts as on) the domain is what follows the last '@', and
 * the default domain is dropped; without, '@' is an ordinary byte.
 * With unixhierarchysep (cfg NULL counts as yes) levels are separated by
 * '/' and '.' is literal; without, by '.', and a dot inside a level is
 * written '^' as in the internal spelling.
 */
int ids_mbname_parse_external(struct ids_mbname *mb, const char *name,
    const struct ids_config *cfg, int flags);

/* The dbname: key points after the record type byte ('N'), len bytes. */
int ids_mbname_parse_dbname(struct ids_mbname *mb, const char *key, size_t len,
    int flags);

/* Drops mb's domain when it is cfg's defaultdomain (cfg may be NULL). */
void ids_mbname_normalize(struct ids_mbname *mb, const struct ids_config *cfg);

/*
 * Each spelling into buf of size bytes, NUL-terminated.  Returns the
 * length, or IDS_ETOOLONG when it does not fit.  ids_mbname_external
 * returns IDS_EBADNAME for a name with a domain when virtdomains is off,
 * and for a name without one whose levels hold an '@' (it would read
 * back as a domain) unless defaultdomain can be written instead.
 */
int ids_mbname_internal(const struct ids_mbname *mb, char *buf, size_t size);
int ids_mbname_external(const struct ids_mbname *mb, const struct ids_config *cfg,
    char *buf, size_t size);
int ids_mbname_dbname(const struct ids_mbname *mb, char *buf, size_t size);

/*
 * The dbname prefix of every DELETED mailbox made of root or of a
 * mailbox below it (root's DELETED name with the level of the hex time
 * left empty: the prefix ends in the separator); for an owner's root
 * (user.alice), every DELETED mailbox of that owner.  Returns its
 * length, or a negative code as ids_mbname_dbname().
 */
int ids_mbname_deleted_prefix(const struct ids_mbname *root, char *buf, size_t size);

/*
 * The owner's userid for user mailboxes ("john.doe@example.com", or
 * "john" without a domain); for shared mailboxes the top level ("shared",
 * or "shared@example.com" in a domain).  DELETED mailboxes belong to the
 * owner of the name they had.
 */
int ids_mbname_owner(const struct ids_mbname *mb, char *buf, size_t size);

int ids_mbname_is_user(const struct ids_mbname *mb);	/* user.x... (also DELETED) */
int ids_mbname_is_inbox(const struct ids_mbname *mb);	/* user.x itself, not deleted */
int ids_mbname_is_deleted(const struct ids_mbname *mb);

/* Both names belong to the same owner (same domain and user / top). */
int ids_mbname_same_owner(const struct ids_mbname *a, const struct ids_mbname *b);

/* The parent mailbox's name; IDS_ENOTFOUND for a user's INBOX or a shared top. */
int ids_mbname_parent(const struct ids_mbname *mb, struct ids_mbname *parent);

/* 1 if b is a, or lies below a in the hierarchy (same owner), else 0. */
int ids_mbname_is_within(const struct ids_mbname *a, const struct ids_mbname *b);

/*
 * All levels of mb in order, as the legacy layout and the internal
 * spelling list them: ["DELETED",] ["user", localpart,] boxes...
 * [, hex time].  Returns their number (at most IDS_MBNAME_ALL_LEVELS).
 */
#define IDS_MBNAME_ALL_LEVELS	(IDS_MBNAME_LEVELS + 4)
size_t ids_mbname_levels(const struct ids_mbname *mb,
    const char *lv[IDS_MBNAME_ALL_LEVELS]);

/* Copies src into dst, fixing the internal pointers. */
void ids_mbname_copy(struct ids_mbname *dst, const struct ids_mbname *src);

/* Unique ids: 36-char lower-case UUID, 24 [0-9a-z], or 16 lower-case hex. */
#define IDS_UNIQUEID_MAX 36
int ids_uniqueid_check(const char *id);	/* 0 or IDS_EBADID */
int ids_uniqueid_new(char out[IDS_UNIQUEID_MAX + 1]);	/* libuuid, lower case */

/* A growable list of unique ids, copied in. */
struct ids_idlist {
	char (*ids)[IDS_UNIQUEID_MAX + 1];
	size_t n, alloc;
};
#define IDS_IDLIST_INIT { .ids = NULL }
/* Adds a copy of id: 0 or -ENOMEM; an id too long to be one is skipped (0). */
int ids_idlist_add(struct ids_idlist *l, const char *id);
void ids_idlist_release(struct ids_idlist *l);

#endif
