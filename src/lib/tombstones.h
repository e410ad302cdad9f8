/*
 * tombstones.h - keeping mailboxes.db's tombstones on disk, so that a
 * rebuild from the spool alone (reconstruct -m after mailboxes.db is
 * lost) brings them back (spool-layout.md, "Tombstones on disk").
 *
 * Two kinds of tombstone, two places:
 *   - the old names of a live folder (renames, Cyrus's delayed delete)
 *     are its name history: ids_tombstones_complete() adds to each live
 *     folder's I record the tombstones that share its uniqueid and that
 *     its history lacks (a mailboxes.db imported from Cyrus's dump has
 *     none: the dump never exports it), so that the headers written
 *     from it carry them;
 *   - tombstones whose uniqueid no live folder holds (deleted folders,
 *     whose files are gone) go into a per-owner record file,
 *     <default partition>/.tombstones/<owner directory>/tombstones, one dlist
 *     kvlist per tombstone, each followed by '\n':
 *	%(N name I uniqueid T mbtype V uidvalidity C createdmodseq
 *	  F foldermodseq M mtime)
 *     sorted by name, replaced durably (ids_write_durable, after the
 *     failpoint "tombstones.write") under the owner's namespace lock.
 */
#ifndef IDS_TOMBSTONES_H
#define IDS_TOMBSTONES_H

#include <stddef.h>

struct ids_config;
struct ids_mbentry;
struct ids_mboxlist;

#define IDS_TOMBSTONES_DIR ".tombstones"
#define IDS_TOMBSTONES_FILE "tombstones"

/*
 * Adds the missing history items, in one write transaction when there
 * are any (newest first by the tombstone's mtime).  *added (may be
 * NULL) gets their number.  Returns 0 or a negative code.
 */
int ids_tombstones_complete(struct ids_mboxlist *mbl, size_t *added);

/*
 * Rewrites the record of the owner of name (any of its mailboxes'
 * internal names) from mailboxes.db, when it differs from the file.
 * lock: IDS_TOMBSTONES_HELD, the caller holds the owner's namespace
 * lock; IDS_TOMBSTONES_WAIT, it is taken; IDS_TOMBSTONES_TRY, it is
 * taken if free, else nothing is done (recovery, which holds a mailbox
 * lock and may not wait for a namespace lock: the next walker run
 * writes the record).  A record with no tombstone left is removed.
 * Returns 0 or negative.
 */
#define IDS_TOMBSTONES_HELD	0
#define IDS_TOMBSTONES_WAIT	1
#define IDS_TOMBSTONES_TRY	2
int ids_tombstones_write_owner(struct ids_mboxlist *mbl, const char *name, int lock);

/*
 * ids_tombstones_complete(), then the record of every owner that has a
 * tombstone of a deleted folder (or had: a record on disk whose
 * tombstones are all gone is rewritten too).  *written (may be NULL)
 * gets the number of records written.
 */
int ids_tombstones_sync(struct ids_mboxlist *mbl, size_t *written);

/*
 * Calls fn for each tombstone of every record file below every
 * partition root, with the file's path.  A file that cannot be read,
 * or a malformed line (the rest of its file is not read), is handed to
 * bad (may be NULL) with its path and an error code whose detail says
 * why ("line N: not a tombstone record"), and the walk goes on.  A non-zero return of fn or
 * bad stops the walk and is returned.
 */
/*
 * One tombstone of a record: ids_tombstones_format appends e's kvlist
 * and a '\n' to b (one line, unless the name needs a dlist literal:
 * "{n}" CRLF and its bytes); ids_tombstones_parse reads one kvlist at s
 * (n bytes, no NUL needed after them) into the initialised e, storing
 * the bytes it used in *used, or, used NULL, requiring the kvlist to
 * fill the n bytes.  A kvlist without a valid name, uniqueid and a
 * tombstone's type (with 'd') is IDS_ECORRUPT.  Both return 0 or a
 * negative code.
 */
struct ids_buf;
int ids_tombstones_format(const struct ids_mbentry *e, struct ids_buf *b);
int ids_tombstones_parse(const char *s, size_t n, struct ids_mbentry *e, size_t *used);

typedef int (*ids_tombstone_fn)(const struct ids_mbentry *e, const char *path, void *rock);
typedef int (*ids_tombstone_bad_fn)(const char *path, int code, void *rock);
int ids_tombstones_read(const struct ids_config *cfg, ids_tombstone_fn fn,
    ids_tombstone_bad_fn bad, void *rock);

#endif
