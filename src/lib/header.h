/*
 * header.h - a folder's cyrus.header (formats.md section 7).
 *
 * Reads both formats Cyrus has written: the three-line format of
 * Cyrus <= 3.4 and the one-line dlist of 3.6+.  Always writes the
 * dlist, adding our key H (the name history, newest first, with
 * internal names) so that reconstruct can rebuild mailboxes.db from
 * the spool alone.  Keys we do not know are kept in h->extra and
 * written back, so a rewrite never drops what a newer Cyrus stored.
 *
 * The written line is, with the keys in this order (spool-layout.md):
 *   %(N name I uniqueid [Q quotaroot] [A %(id rights ...)]
 *     [U (flag|NIL ...)] [unknown keys...] [H (%(N ...) ...)] [T mbtype])
 * T comes last on purpose: Cyrus's header reader takes the last T it
 * meets anywhere in the line, history items included.
 *
 *	struct ids_header h;
 *	ids_header_init(&h);
 *	if ((r = ids_header_read(dirfd, &h, NULL)) < 0) ... ids_errmsg(r) ...
 *	... change h ...
 *	r = ids_header_write(dirfd, &h, &crc);
 *	ids_header_release(&h);
 */
#ifndef IDS_HEADER_H
#define IDS_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "mbentry.h"

struct ids_buf;
struct ids_dlist;

#define IDS_HEADER_FILE		"cyrus.header"
#define IDS_HEADER_MAX_SIZE	(1u << 20)	/* larger files are refused */
#define IDS_HEADER_MAX_FLAGS	128		/* Cyrus's MAX_USER_FLAGS */
/*
 * What a header may take of IDS_HEADER_MAX_SIZE for the fields that
 * come from mailboxes.db (name, uniqueid, ACL, history, type): the rest
 * is kept for those only the header has (user flags: 128 names of up
 * to 1023 bytes, the quota root, keys of a newer Cyrus).
 */
#define IDS_HEADER_ENTRY_MAX	(IDS_HEADER_MAX_SIZE - (256u << 10))

/* The 4 magic bytes and three text lines every cyrus.header starts with. */
#define IDS_HEADER_MAGIC \
	"\241\002\213\015Cyrus mailbox header\n" \
	"\"The best thing about this system was that it had lots of goals.\"\n" \
	"\t--Jim Morris on Andrew\n"
#define IDS_HEADER_MAGIC_LEN	(sizeof(IDS_HEADER_MAGIC) - 1)

struct ids_header {
	char *name;		/* N: internal name; NULL in the old format */
	char *uniqueid;		/* I; NULL in very old files */
	char *quotaroot;	/* Q; NULL when none */
	char mbtype[IDS_MBTYPE_MAX];	/* T; "" when absent (old format) */
	struct ids_acl *acl;	/* A, in file order */
	size_t nacl;
	char **flags;		/* U: user flag names by bit; NULL entries for NIL */
	size_t nflags;
	struct ids_history *history;	/* H: newest first, internal names */
	size_t nhistory;
	int old_format;		/* read from the <= 3.4 three-line format */
	struct ids_dlist *extra;	/* kvlist of keys we do not know, or NULL */
};

void ids_header_init(struct ids_header *h);
void ids_header_release(struct ids_header *h);

/*
 * Parses a whole cyrus.header image into h (initialised; its old
 * content is released).  Returns 0, IDS_ETRUNC (shorter than the magic,
 * a line or the dlist not terminated), IDS_ECORRUPT (wrong magic, bad
 * dlist, bad field, more than IDS_HEADER_MAX_FLAGS flags) with detail,
 * or -ENOMEM.  On failure h is left released.
 */
int ids_header_parse(struct ids_header *h, const char *buf, size_t len);
/* The CRC-32 of a header's bytes, as cyrus.index's header_file_crc holds it. */
uint32_t ids_header_crc(const char *buf, size_t len);

/*
 * Appends the 3.6 format with our H key to out.  name and uniqueid are
 * required (IDS_EINVAL).  A value that would need a literal (a line
 * break, an 8-bit byte, 1024 bytes or more) is refused with IDS_EINVAL:
 * Cyrus reads cyrus.header only up to the first LF, so it could not
 * read the file back.  What ids_header_read() would refuse is refused
 * too: more than IDS_HEADER_MAX_FLAGS user flags (IDS_EINVAL), a file
 * over IDS_HEADER_MAX_SIZE (IDS_ETOOLONG).  The detail names
 * the folder and, for an ACL entry, the entry.  Returns 0, IDS_EINVAL,
 * IDS_ETOOLONG or -ENOMEM.
 */
int ids_header_format(const struct ids_header *h, struct ids_buf *out);

/*
 * Whether a cyrus.header can hold e, for the tools that let a record
 * into mailboxes.db (an import, a create, a rename): every ACL
 * identifier and right written without a literal (IDS_EINVAL, naming
 * the entry and its first byte that would need one), and the header
 * written from e within IDS_HEADER_ENTRY_MAX bytes (IDS_ETOOLONG, with
 * the size it would have).  With newname, e is checked as a rename to
 * newname leaves it, one history item longer.  Returns 0, one of those
 * or -ENOMEM.  O(size of e).
 */
int ids_header_check_entry(const struct ids_mbentry *e, const char *newname);

/*
 * Reads IDS_HEADER_FILE in dirfd (at most IDS_HEADER_MAX_SIZE bytes,
 * else IDS_ETOOLONG; a symlink is IDS_EUNSAFE) and parses it.  With
 * crcp, stores the CRC-32 of the file's bytes (what cyrus.index keeps
 * as header_file_crc).  Returns 0 or a negative code as above or -errno.
 */
int ids_header_read(int dirfd, struct ids_header *h, uint32_t *crcp);

/*
 * Durably replaces IDS_HEADER_FILE in dirfd (ids_write_durable: a new
 * inode, never the old one rewritten), after failpoint "header.write".
 * With crcp, stores the CRC-32 of the bytes written, which the caller
 * should put into cyrus.index (ids_index_set_header_crc).
 */
int ids_header_write(int dirfd, const struct ids_header *h, uint32_t *crcp);

/*
 * The same into a directory that has no cyrus.header yet and that no
 * reader uses before the caller's next commit point (ids_write_new: the
 * file is made under its name, without a rename); where one is there
 * after all, ids_header_write replaces it.
 */
int ids_header_create(int dirfd, const struct ids_header *h, uint32_t *crcp);

/*
 * Copies e's name, uniqueid, mbtype, ACL and history into h, replacing
 * those fields (quotaroot, flags and extra keys are kept).
 */
int ids_header_from_mbentry(struct ids_header *h, const struct ids_mbentry *e);

/*
 * Copies h's name, uniqueid, mbtype, ACL and history into e, replacing
 * those fields; the others (partition, uidvalidity, ...) are kept.
 */
int ids_header_to_mbentry(const struct ids_header *h, struct ids_mbentry *e);

#endif
