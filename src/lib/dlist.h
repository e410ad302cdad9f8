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
 *
 * Hot paths that want a few fields of a value read it in place with a
 * struct ids_dlist_reader instead, item by item, without building a
 * tree.  ids_dlist_parse() is built on the same reader, so both accept
 * exactly the same input and fail with exactly the same errors.
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
	IDS_DL_FLAG,	/* csync only: "\Seen", printed as it is */
	IDS_DL_FILE,	/* csync only: %{partition guid size} and its bytes */
};

/*
 * A file literal (csync, IDS_DLIST_WIRE).  Its bytes are never in
 * memory: a received one was streamed into name in the staging
 * directory dirfd (see csync.h) and checked; one to send is read from
 * name in dirfd, and checked again, when printed.  dirfd is not owned.
 */
struct ids_dlist_file {
	char *partition;
	char guid[41];		/* SHA-1, 40 lower-case hex digits */
	uint64_t size;
	int dirfd;
	char *name;		/* malloc'd; NULL for a header read without its body */
};

struct ids_dlist {
	enum ids_dlist_type type;
	char *name;		/* key inside a kvlist, else NULL */
	char *data;		/* IDS_DL_STRING: len bytes, NUL-terminated past them */
	size_t len;
	struct ids_dlist *head, *tail;	/* children of a list or kvlist */
	struct ids_dlist *next;		/* next sibling */
	struct ids_dlist_file *file;	/* IDS_DL_FILE only (owned) */
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
 * The csync spelling (IDS_DLIST_WIRE), which is Cyrus's dlist_print():
 * flags as they are, literals as "{n+}" when IDS_DLIST_LITPLUS (the
 * client's side of a session) else "{n}", and each file literal as
 * "%{partition guid size}" CRLF, then its bytes, which file_fn appends
 * (or writes out itself, after flushing out: see csync.c).  file_fn
 * may be NULL when dl holds no file.  Returns 0, -ENOMEM or what
 * file_fn returned.
 */
#define IDS_DLIST_LITPLUS	0x4
typedef int (*ids_dlist_file_fn)(void *rock, const struct ids_dlist_file *f,
    struct ids_buf *out);
int ids_dlist_print_wire(const struct ids_dlist *dl, int flags, struct ids_buf *out,
    ids_dlist_file_fn file_fn, void *rock);

/*
 * Parses one item at the start of buf[0..len).  With consumed, stores
 * the number of bytes used and leaves the rest to the caller; without,
 * the item must fill buf exactly.  On success *out is a new tree the
 * caller frees.  Returns 0, IDS_ECORRUPT (with "... at byte N"), or
 * -ENOMEM.
 */
int ids_dlist_parse(const char *buf, size_t len, struct ids_dlist **out,
    size_t *consumed);
/* As ids_dlist_parse, with reader flags (IDS_DLIST_WIRE); FILE nodes get no name. */
int ids_dlist_parse_flags(const char *buf, size_t len, int flags,
    struct ids_dlist **out, size_t *consumed);

/*
 * Reading in place.  The reader hands out the items of buf[0..len) in
 * document order: first the outer item, then, if it is a container,
 * its children, each container's children following the item that
 * opened it, and the end of each container as a return of 0.
 *
 *	struct ids_dlist_reader rd;
 *	struct ids_dlist_item it;
 *
 *	ids_dlist_reader_init(&rd, val, len, 0);
 *	if ((r = ids_dlist_read(&rd, &it)) == 1 && it.type == IDS_DL_KVLIST)
 *		while ((r = ids_dlist_read(&rd, &it)) == 1)
 *			if (want(it.key, it.keylen)) use(&it);	// may read its children
 *			else if ((r = ids_dlist_skip(&rd, &it)) < 0) break;
 *	ids_dlist_reader_release(&rd);
 *
 * Strings point into buf, except quoted strings with backslash escapes,
 * which are decoded into the reader's own memory; either way they stay
 * valid only until the next ids_dlist_read().  They are not
 * NUL-terminated and may contain NUL bytes (keys never do).  The reader
 * allocates nothing unless it meets an escape.
 */
struct ids_dlist_item {
	enum ids_dlist_type type;	/* a LIST or KVLIST is opened: its children follow */
	const char *key;		/* inside a kvlist: the key, keylen bytes; else NULL */
	size_t keylen;
	const char *data;		/* IDS_DL_STRING, _FLAG: len bytes; _FILE: the partition */
	size_t len;
	const char *guid;		/* IDS_DL_FILE: 40 hex digits */
	uint64_t size;			/* IDS_DL_FILE: bytes of the file */
};

#define IDS_DLIST_PREFIX	0x1	/* the item may be followed by other data */
/*
 * csync syntax on top: "\Flag" is an IDS_DL_FLAG item, and "%{part guid
 * size}" an IDS_DL_FILE item whose bytes are NOT in buf (the stream
 * reader of csync.h took them off the line): data/len is the
 * partition, guid its 40 hex digits, size the byte count.
 */
#define IDS_DLIST_WIRE		0x2

struct ids_dlist_reader {
	const char *buf;
	size_t len;
	size_t pos;			/* bytes used so far */
	int depth;			/* containers open */
	int sep;			/* a child was read: a separator comes next */
	int done;			/* the outer item is complete */
	int err;			/* the first failure, returned again after it */
	int flags;
	uint64_t kvlist;		/* bit d: the container at depth d is a kvlist */
	size_t open[IDS_DLIST_MAX_DEPTH];	/* where each open container starts */
	char *scratch[2];		/* decoded escaped key and value */
	size_t scratchsize[2];
};

/* Starts reading buf[0..len); flags: IDS_DLIST_PREFIX, IDS_DLIST_WIRE or 0. */
void ids_dlist_reader_init(struct ids_dlist_reader *rd, const char *buf, size_t len,
    int flags);
/* Frees what the reader allocated; the items it handed out go with it. */
void ids_dlist_reader_release(struct ids_dlist_reader *rd);

/*
 * The next item: returns 1 and fills *it; 0 at the end of the current
 * container (its ')' consumed) and, once the outer item is complete,
 * from then on; or IDS_ECORRUPT (the same detail as ids_dlist_parse())
 * or -ENOMEM, then the same code on every later call.  Without
 * IDS_DLIST_PREFIX, data after the outer item is an error.
 */
int ids_dlist_read(struct ids_dlist_reader *rd, struct ids_dlist_item *it);

/*
 * Skips the children of it, the item just read, if it opened a
 * container (checking them as the parser would); nothing otherwise.
 * Returns 0 or the error of ids_dlist_read().
 */
int ids_dlist_skip(struct ids_dlist_reader *rd, const struct ids_dlist_item *it);

/*
 * Decimal numbers in an item, by the rules of ids_dlist_u64() and
 * ids_dlist_i64(): 0, or IDS_ECORRUPT when it is not a string of
 * digits in range.
 */
int ids_dlist_item_u64(const struct ids_dlist_item *it, uint64_t *out);
int ids_dlist_item_i64(const struct ids_dlist_item *it, int64_t *out);

#endif
