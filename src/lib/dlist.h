/*
 * dlist.h - Cyrus's dlist syntax: the value format of mailboxes.db
 * records and of the one-line cyrus.header (formats.md section 5).
 *
 *   item    = NIL | atom | "quoted" | {n}CRLF<n bytes> | list | kvlist
 *   list    = "(" [item *(SP item)] ")"
 *   kvlist  = "%(" [key SP item *(SP key SP item)] ")"
 *
 * A parsed or built value is a tree of struct ids_dlist nodes.  Atoms,
 * quoted strings and literals all become IDS_DL_STRING nodes: the
 * spelling is a matter of printing, and ids_dlist_print() chooses it
 * by Cyrus's rule, so print(parse(x)) == x for anything Cyrus wrote.
 *
 *	struct ids_dlist *kv = ids_dlist_new_kvlist();
 *	if (!kv || ids_dlist_add_atom(kv, "T", "e") < 0 ||
 *	    ids_dlist_add_num(kv, "V", 1700000000) < 0) ...
 *	ids_dlist_print(kv, &buf);
 *	ids_dlist_free(kv);
 *
 * The parser takes hostile input: it never reads past len, nests at
 * most IDS_DLIST_MAX_DEPTH levels, accepts literals of at most
 * IDS_DLIST_MAX_LITERAL bytes, and reports every failure as
 * IDS_ECORRUPT with the byte offset in the detail (ids_errmsg).
 */
#ifndef IDS_DLIST_H
#define IDS_DLIST_H

#include <stddef.h>
#include <stdint.h>

struct ids_buf;

#define IDS_DLIST_MAX_DEPTH	64
#define IDS_DLIST_MAX_LITERAL	(64u << 20)	/* 64 MiB */
#define IDS_DLIST_MAX_QUOTED	1024	/* values this long or longer print as literals */

enum ids_dlist_type {
	IDS_DL_NIL,
	IDS_DL_STRING,
	IDS_DL_LIST,
	IDS_DL_KVLIST,
};

struct ids_dlist {
	enum ids_dlist_type type;
	char *name;		/* key inside a kvlist, else NULL */
	char *data;		/* IDS_DL_STRING: len bytes, NUL-terminated past them */
	size_t len;
	struct ids_dlist *head, *tail;	/* children of a list or kvlist */
	struct ids_dlist *next;		/* next sibling */
};

/* New empty containers; NULL when out of memory. */
struct ids_dlist *ids_dlist_new_list(void);
struct ids_dlist *ids_dlist_new_kvlist(void);

/* Frees dl and its children (not its siblings); NULL is allowed. */
void ids_dlist_free(struct ids_dlist *dl);

/* A deep copy of dl (name included, next not followed); NULL on ENOMEM. */
struct ids_dlist *ids_dlist_copy(const struct ids_dlist *dl);

/*
 * Appending children.  name is the key when parent is a kvlist (it is
 * required there and must be NULL for a plain list).  Each returns 0,
 * -ENOMEM, or IDS_EINVAL for a wrong key or a parent that is not a
 * container.  The _list/_kvlist variants store the new child in
 * *childp when childp is not NULL.
 */
int ids_dlist_add_string(struct ids_dlist *parent, const char *name,
    const char *data, size_t len);
int ids_dlist_add_atom(struct ids_dlist *parent, const char *name, const char *s);
int ids_dlist_add_num(struct ids_dlist *parent, const char *name, uint64_t n);
int ids_dlist_add_snum(struct ids_dlist *parent, const char *name, int64_t n);
int ids_dlist_add_nil(struct ids_dlist *parent, const char *name);
int ids_dlist_add_list(struct ids_dlist *parent, const char *name,
    struct ids_dlist **childp);
int ids_dlist_add_kvlist(struct ids_dlist *parent, const char *name,
    struct ids_dlist **childp);
/*
 * Appends an existing tree (its next must be NULL) and takes ownership,
 * also on failure.  A non-NULL name replaces child's name.
 */
int ids_dlist_add_child(struct ids_dlist *parent, const char *name,
    struct ids_dlist *child);
/* Removes child from parent's children without freeing it. */
void ids_dlist_unlink(struct ids_dlist *parent, struct ids_dlist *child);

/* The first child of kvlist kv with key key, or NULL. */
struct ids_dlist *ids_dlist_get(const struct ids_dlist *kv, const char *key);

/* The string of dl as a C string; NULL for NIL, containers or embedded NULs. */
const char *ids_dlist_cstr(const struct ids_dlist *dl);

/*
 * Decimal numbers: 0 and the value, or IDS_ECORRUPT (not a string of
 * digits, or out of range).
 */
int ids_dlist_u64(const struct ids_dlist *dl, uint64_t *out);
int ids_dlist_i64(const struct ids_dlist *dl, int64_t *out);

/*
 * Typed lookups in a kvlist, for records whose empty fields are
 * omitted: a missing key or NIL gives 0 / NULL and returns 0.
 * A malformed value is IDS_ECORRUPT naming the key; get_str may also
 * return -ENOMEM.  *out of get_str is malloc'd (or NULL).
 */
int ids_dlist_get_u64(const struct ids_dlist *kv, const char *key, uint64_t *out);
int ids_dlist_get_u32(const struct ids_dlist *kv, const char *key, uint32_t *out);
int ids_dlist_get_i64(const struct ids_dlist *kv, const char *key, int64_t *out);
int ids_dlist_get_str(const struct ids_dlist *kv, const char *key, char **out);

/*
 * Appends dl (without its name) to out: strings as atom, "quoted" or
 * literal by formats.md section 5, kvlist children as "key value",
 * items separated by one space.  Returns 0 or -ENOMEM.
 */
int ids_dlist_print(const struct ids_dlist *dl, struct ids_buf *out);

/* Appends one string spelled by the same rule (NULL prints NIL). */
int ids_dlist_print_string(const char *data, size_t len, struct ids_buf *out);

/*
 * Parses one item at the start of buf[0..len).  With consumed, stores
 * the number of bytes used and leaves the rest to the caller; without,
 * the item must fill buf exactly.  On success *out is a new tree the
 * caller frees.  Returns 0, IDS_ECORRUPT (with "... at byte N"), or
 * -ENOMEM.
 */
int ids_dlist_parse(const char *buf, size_t len, struct ids_dlist **out,
    size_t *consumed);

#endif
