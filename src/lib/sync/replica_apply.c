/*
 * replica_apply.c - the folder applies of a csync replica session:
 * APPLY RESERVE, MAILBOX, EXPUNGE, RENAME, UNMAILBOX, UNUSER and GET
 * FETCH (spool-layout.md "Replication").
 *
 * APPLY MAILBOX follows Cyrus's sync_apply_mailbox(): the folder is
 * found by UNIQUEID (a name holding another uniqueid, or the uniqueid
 * under another name, is IMAP_MAILBOX_MOVED and changes nothing), made
 * with the sender's uniqueid and UIDVALIDITY when it does not exist,
 * checked against SINCE_MODSEQ/SINCE_CRC*, then every record is merged
 * in uid order as it comes: from the wire one at a time when the codec
 * streams the RECORD list (a folder of any size costs the memory of one
 * record), with the old records read a block at a time, and the result
 * written a block at a time to cyrus.index.NEW, which a refusal or a
 * cut session abandons.  The writes, each durable before the next:
 *   1. message files of new records linked from staging ("<uid>."),
 *      the directory fsynced (failpoint sync.apply_link);
 *   2. mailboxes.db: the ACL, FOLDERMODSEQ and UIDVALIDITY (sync.apply_db);
 *   3. cyrus.header when the db changed, a user flag or the ACL is new
 *      (sync.apply_header);
 *   4. cyrus.index.NEW's header, the file fsynced and renamed over
 *      cyrus.index: the commit point of the records (sync.apply_index,
 *      then fs.fsync, fs.rename);
 *   5. idspool.sync, the fields the index cannot hold (sync.store_write).
 * A crash between two steps leaves a consistent folder whose CRCs do
 * not match what the client believes; the client then sends the whole
 * folder again, which converges: a file already linked at "<uid>." is
 * kept when its bytes hash to the GUID and replaced otherwise (no
 * record above last_uid points to it).  OK is sent only after step 5,
 * and only when the folder's CRCs are the ones the client sent.
 *
 * A folder that does not exist yet is one durable step instead: the
 * intent "create" committed, then the directory, the files of steps 1,
 * 3, 4 and 5 written with no flush (ids_fs_defer_sync), one syncfs and
 * one mailboxes.db transaction that puts the records and removes the
 * intent (ids_mailbox_create_open/_commit); a failure or a crash before
 * that commit removes the folder, and the client's retry creates it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "csync.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "layout.h"
#include "lock.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "rename.h"
#include "replica.h"
#include "replica_int.h"
#include "sync.h"

#define ANNOT_SAVEDATE		"/vendor/cmu/cyrus-imapd/savedate"
#define ANNOT_CREATEDMODSEQ	"/vendor/cmu/cyrus-imapd/createdmodseq"
#define ANNOT_THRID		"/vendor/cmu/cyrus-imapd/thrid"
#define MAX_USER_FLAGS		128
/* New files of one apply fsynced one by one; above, one syncfs(2) for all. */
#define IDS_REPL_FSYNC_FILES	16
/* New folders committed together at most (their locks and directories stay open). */
#define IDS_REPL_GROUP_MAX	64

static int
guid_parse(const char *hex, uint8_t out[IDS_GUID_LEN])
{
	size_t i;

	for (i = 0; i < IDS_GUID_LEN; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !hex[2 * i + 1])
			return IDS_EINVAL;
		out[i] = (uint8_t)v;
	}
	return hex[2 * IDS_GUID_LEN] == '\0' ? 0 : IDS_EINVAL;
}

static const char *
kv_str(const struct ids_dlist *kv, const char *key)
{
	return ids_dlist_cstr(ids_dlist_get(kv, key));
}

/* --- APPLY RESERVE -------------------------------------------------------- */

struct want {
	const struct ids_dlist *guids;
	struct ids_repl_session *s;
	char dir[PATH_MAX];
};

/* Records of the open folder whose GUID is wanted become files we hold. */
static int
reserve_from(struct ids_repl_session *s, struct ids_mailbox *mb, const struct ids_dlist *guids)
{
	struct ids_index *idx;
	struct ids_index_record rec;
	char dir[PATH_MAX], path[PATH_MAX], hex[IDS_GUID_HEXLEN + 1];
	const struct ids_dlist *g;
	uint32_t i;
	int r;

	if ((r = ids_path_datadir(s->cfg, &mb->loc, dir, sizeof(dir))) < 0 ||
	    (r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx)) < 0)
		return r;
	for (i = 0; i < ids_index_header(idx)->num_records; i++) {
		if (ids_index_record(idx, i, &rec) < 0 ||
		    (rec.system_flags & (IDS_FLAG_UNLINKED | IDS_FLAG_ARCHIVED)))
			continue;
		ids_guid_hex(rec.guid, hex);
		if (ids_repl_have(s, hex) != NULL)
			continue;
		for (g = guids->head; g != NULL; g = g->next) {
			const char *v = ids_dlist_cstr(g);
			char name[32];

			snprintf(name, sizeof(name), "%u.", rec.uid);
			if (v == NULL || strcmp(v, hex) != 0 ||
			    faccessat(mb->datafd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
				continue;
			if ((r = ids_repl_add_have(s, hex, path)) < 0)
				goto out;
			break;
		}
	}
	r = 0;
out:
	ids_index_free(idx);
	return r;
}

/* A folder that cannot be opened holds nothing (it is not an error). */
int
ids_repl_reserve_local(struct ids_repl_session *s, const char *name,
    const struct ids_dlist *guids)
{
	struct ids_mailbox *mb;
	int r;

	if (ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb) < 0)
		return 0;
	r = reserve_from(s, mb, guids);
	ids_mailbox_close(mb);
	return r;
}

int
ids_repl_apply_reserve(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const struct ids_dlist *names = ids_dlist_get(kv, "MBOXNAME");
	const struct ids_dlist *guids = ids_dlist_get(kv, "GUID");
	const struct ids_dlist *i;
	struct ids_dlist *missing;
	size_t found = 0, nmissing = 0;
	int r = 0;

	if (kv == NULL || kv->type != IDS_DL_KVLIST || names == NULL || guids == NULL ||
	    names->type != IDS_DL_LIST || guids->type != IDS_DL_LIST)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	for (i = names->head; i != NULL; i = i->next) {
		const char *name = ids_dlist_cstr(i);

		if (name != NULL && (r = ids_repl_reserve_local(s, name, guids)) < 0)
			return ids_repl_refuse(s, name, IDS_CSYNC_EIOERROR, r);
	}
	if ((missing = ids_dlist_new_list()) == NULL)
		return -ENOMEM;
	for (i = guids->head; i != NULL && r == 0; i = i->next) {
		const char *g = ids_dlist_cstr(i);

		if (g == NULL || ids_repl_have(s, g) != NULL) {
			found++;
			continue;
		}
		r = ids_dlist_add_atom(missing, NULL, g);
		nmissing++;
	}
	if (r == 0 && nmissing > 0)
		r = ids_csync_write_untagged(s->out, "MISSING", missing);
	ids_dlist_free(missing);
	if (r < 0)
		return r;
	ids_repl_log(s, LOG_INFO, "APPLY RESERVE: %zu held, %zu missing", found, nmissing);
	return ids_repl_ok(s, "success");
}

/* --- the records of an APPLY MAILBOX ------------------------------------- */

/*
 * A folder being rewritten.  Its records are never all in memory: the
 * old ones are read from cyrus.index a block at a time, in uid order,
 * merged with the incoming ones (in uid order too), and each result is
 * written, a block at a time, to cyrus.index.NEW, which only a
 * completed apply renames over cyrus.index (write_index).
 */
struct folder {
	struct ids_repl_session *s;
	struct ids_mailbox *mb;
	struct ids_index_header ih;	/* the old header, then the new one */
	struct ids_header h;
	uint32_t hcrc;
	int header_dirty;
	struct ids_sync_store st;
	uint32_t old_last_uid;
	size_t linked;
	size_t synced;	/* files fsynced one by one where they were linked */
	int syncfs;	/* more than that: one syncfs(2) of the folder's file system */
	int intent;	/* the "sync"/"header" intent is committed */
	int created;	/* made by this apply: nothing flushed until its commit */
	/* the old records */
	int oldfd;
	struct ids_index_reader *old;
	struct ids_index_record cur;	/* the next old record, when have_cur */
	int have_cur;
	uint32_t prev_old, prev_in;	/* uids last read, for the order checks */
	/* the new index */
	struct ids_durable nf;
	int writing;
	unsigned char *wbuf;
	size_t wlen, wcap;
	uint64_t woff;
	size_t n;			/* records written */
	uint32_t crc_basic, crc_annot;	/* of the new index, once written */
};

static void
folder_release(struct folder *f)
{
	if (f->writing)
		ids_durable_abort(&f->nf);
	f->writing = 0;
	free(f->wbuf);
	f->wbuf = NULL;
	ids_index_reader_free(f->old);
	f->old = NULL;
	if (f->oldfd >= 0)
		close(f->oldfd);
	f->oldfd = -1;
	ids_header_release(&f->h);
	ids_sync_store_release(&f->st);
}

/* The next old record into f->cur (have_cur 0 after the last). */
static int
old_next(struct folder *f)
{
	int r = ids_index_reader_next(f->old, &f->cur);

	f->have_cur = r == 1;
	if (r < 0)
		return r;
	if (r == 1 && f->cur.uid <= f->prev_old)
		return ids_error(IDS_ECORRUPT, "cyrus.index: uid %u after uid %u", f->cur.uid,
		    f->prev_old);
	if (r == 1)
		f->prev_old = f->cur.uid;
	return 0;
}

/* The header, the store and the old index's header; its records come one by one. */
static int
folder_read(struct folder *f)
{
	int metafd = ids_mailbox_metafd(f->mb, IDS_META_INDEX);
	struct stat st;
	int r;

	ids_header_init(&f->h);
	ids_sync_store_init(&f->st);
	f->oldfd = -1;
	if ((r = ids_index_read_header(metafd, &f->ih)) < 0 ||
	    (r = ids_open_regular(metafd, IDS_INDEX_FILE, &st, &f->oldfd)) < 0 ||
	    (r = ids_index_reader_new(f->oldfd, &f->ih, &f->old)) < 0 ||
	    (r = old_next(f)) < 0)
		return r;
	f->old_last_uid = f->ih.last_uid;
	if ((r = ids_header_read(ids_mailbox_metafd(f->mb, IDS_META_HEADER), &f->h, &f->hcrc)) == 0)
		r = ids_sync_store_read(metafd, &f->st);
	return r;
}

/* Starts cyrus.index.NEW; its header is written last (write_index). */
static int
out_begin(struct folder *f)
{
	size_t rsize = f->ih.record_size;
	int r;

	f->wcap = rsize * (65536 / rsize ? 65536 / rsize : 1);
	if ((f->wbuf = malloc(f->wcap)) == NULL)
		return -ENOMEM;
	f->woff = f->ih.start_offset;
	f->wlen = 0;
	f->n = 0;
	f->ih.exists = f->ih.deleted = f->ih.answered = f->ih.flagged = f->ih.unseen = 0;
	f->ih.quota_mailbox_used = 0;
	if ((r = ids_durable_begin(ids_mailbox_metafd(f->mb, IDS_META_INDEX), IDS_INDEX_FILE,
	    0600, &f->nf)) < 0) {
		ids_durable_abort(&f->nf);
		return r;
	}
	f->writing = 1;
	return 0;
}

static int
out_flush(struct folder *f)
{
	int r;

	if (f->wlen == 0)
		return 0;
	if ((r = ids_durable_write(&f->nf, f->wbuf, f->wlen, f->woff)) < 0)
		return r;
	f->woff += f->wlen;
	f->wlen = 0;
	return 0;
}

/* Appends rec to the new index, counting it in the header. */
static int
emit(struct folder *f, const struct ids_index_record *rec)
{
	struct ids_index_header *h = &f->ih;
	size_t rsize = h->record_size;
	int r;

	if (f->wlen + rsize > f->wcap && (r = out_flush(f)) < 0)
		return r;
	memset(f->wbuf + f->wlen, 0, rsize);
	if ((r = ids_index_format_record(rec, h->minor_version, f->wbuf + f->wlen, rsize)) < 0)
		return r;
	f->wlen += rsize;
	f->n++;
	if (rec->system_flags & IDS_FLAG_EXPUNGED)
		return 0;
	h->exists++;
	h->quota_mailbox_used += rec->size;
	h->deleted += (rec->system_flags & IDS_FLAG_DELETED) != 0;
	h->answered += (rec->system_flags & IDS_FLAG_ANSWERED) != 0;
	h->flagged += (rec->system_flags & IDS_FLAG_FLAGGED) != 0;
	h->unseen += (rec->system_flags & IDS_FLAG_SEEN) == 0;
	return 0;
}

/* The old records below uid go out unchanged (all that are left for UINT32_MAX + 1). */
static int
emit_old_below(struct folder *f, uint64_t uid)
{
	int r;

	while (f->have_cur && f->cur.uid < uid)
		if ((r = emit(f, &f->cur)) < 0 || (r = old_next(f)) < 0)
			return r;
	return 0;
}

/* The bit of user flag name in the header, added when new. */
static int
user_flag(struct folder *f, const char *name)
{
	size_t i, slot = f->h.nflags;

	for (i = 0; i < f->h.nflags; i++) {
		if (f->h.flags[i] == NULL) {
			if (slot == f->h.nflags)
				slot = i;
		} else if (strcasecmp(f->h.flags[i], name) == 0) {
			return (int)i;
		}
	}
	if (slot >= MAX_USER_FLAGS)
		return ids_error(IDS_EINVAL, "more than %d user flags", MAX_USER_FLAGS);
	if (slot == f->h.nflags) {
		char **v = realloc(f->h.flags, (f->h.nflags + 1) * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		f->h.flags = v;
		f->h.nflags++;
	}
	if ((f->h.flags[slot] = strdup(name)) == NULL)
		return -ENOMEM;
	f->header_dirty = 1;
	return (int)slot;
}

static int
parse_flags(struct folder *f, const struct ids_dlist *flags, struct ids_index_record *rec)
{
	static const char *sys[] = { "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Seen" };
	const struct ids_dlist *i;
	size_t k;
	int bit;

	rec->system_flags &= ~(0x1fu | IDS_FLAG_EXPUNGED);
	memset(rec->user_flags, 0, sizeof(rec->user_flags));
	for (i = flags ? flags->head : NULL; i != NULL; i = i->next) {
		const char *name = i->data;

		if (name == NULL || (i->type != IDS_DL_FLAG && i->type != IDS_DL_STRING))
			return ids_error(IDS_ECORRUPT, "uid %u: a flag is not an atom", rec->uid);
		if (strcasecmp(name, "\\Expunged") == 0) {
			rec->system_flags |= IDS_FLAG_EXPUNGED;
			continue;
		}
		for (k = 0; k < 5 && strcasecmp(name, sys[k]) != 0; k++)
			;
		if (k < 5) {
			rec->system_flags |= 1u << k;
			continue;
		}
		if (name[0] == '\\')
			continue;	/* \Recent and other session flags */
		if ((bit = user_flag(f, name)) < 0)
			return bit;
		rec->user_flags[bit / 32] |= 1u << (bit % 32);
	}
	return 0;
}

/*
 * The annotations of a RECORD: the index's own (savedate,
 * createdmodseq, thrid) into rec, the others into *rest (a new list,
 * NULL when there are none).
 */
static int
parse_annots(const struct ids_dlist *annots, struct ids_index_record *rec,
    struct ids_dlist **rest)
{
	const struct ids_dlist *a;
	int r;

	*rest = NULL;
	for (a = annots ? annots->head : NULL; a != NULL; a = a->next) {
		const char *entry = kv_str(a, "ENTRY"), *userid = kv_str(a, "USERID");
		const char *value = kv_str(a, "VALUE");
		struct ids_dlist *copy;

		if (entry == NULL)
			return ids_error(IDS_ECORRUPT, "uid %u: annotation without ENTRY", rec->uid);
		if (userid != NULL && *userid == '\0' && value != NULL) {
			if (strcmp(entry, ANNOT_SAVEDATE) == 0) {
				rec->savedate = strtoull(value, NULL, 10);
				continue;
			}
			if (strcmp(entry, ANNOT_CREATEDMODSEQ) == 0) {
				rec->createdmodseq = strtoull(value, NULL, 10);
				continue;
			}
			if (strcmp(entry, ANNOT_THRID) == 0) {
				rec->cid = strtoull(value, NULL, 16);
				continue;
			}
		}
		if (*rest == NULL && (*rest = ids_dlist_new_list()) == NULL)
			return -ENOMEM;
		if ((copy = ids_dlist_copy(a)) == NULL ||
		    (r = ids_dlist_add_child(*rest, NULL, copy)) < 0) {
			ids_dlist_free(copy);
			return -ENOMEM;
		}
	}
	return 0;
}

/* The fields of one RECORD kvlist, on top of what rec holds. */
static int
parse_record(struct folder *f, const struct ids_dlist *kv, struct ids_index_record *rec,
    struct ids_dlist **annots)
{
	const char *guid = kv_str(kv, "GUID");
	int64_t idate;
	int r;

	if (kv->type != IDS_DL_KVLIST || ids_dlist_get(kv, "UID") == NULL ||
	    guid == NULL || strlen(guid) != IDS_GUID_HEXLEN)
		return ids_error(IDS_ECORRUPT, "a RECORD without UID or GUID");
	if ((r = ids_dlist_get_u32(kv, "UID", &rec->uid)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "MODSEQ", &rec->modseq)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "LAST_UPDATED", &rec->last_updated)) < 0 ||
	    (r = ids_dlist_get_i64(kv, "INTERNALDATE", &idate)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "SIZE", &rec->size)) < 0)
		return r;
	rec->internaldate = idate;
	if (guid_parse(guid, rec->guid) < 0)
		return ids_error(IDS_ECORRUPT, "uid %u: GUID is not 40 hex digits", rec->uid);
	if ((r = parse_flags(f, ids_dlist_get(kv, "FLAGS"), rec)) < 0)
		return r;
	return parse_annots(ids_dlist_get(kv, "ANNOTATIONS"), rec, annots);
}

/* Where the message's header ends (the offset after the first empty line). */
static uint32_t
file_header_size(int fd, uint64_t size)
{
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	ssize_t i;

	for (i = 0; i + 1 < n; i++) {
		if (buf[i] == '\n' && buf[i + 1] == '\n')
			return (uint32_t)(i + 2);
		if (i + 3 < n && memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return (uint32_t)(i + 4);
	}
	return (uint32_t)(size > UINT32_MAX ? UINT32_MAX : size);
}

/* Copies the file at path to name in dirfd (another file system), fsynced. */
static int
copy_in(const char *path, int dirfd, const char *name)
{
	char buf[65536];
	ssize_t n;
	int in, out, r = 0;

	if ((in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -errno;
	if ((r = IDS_FAILPOINT("sync.apply_link")) < 0) {
		close(in);
		return r;
	}
	if ((out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while (r == 0 && (n = read(in, buf, sizeof(buf))) != 0)
		r = n < 0 ? (errno == EINTR ? 0 : -errno) : ids_write_all(out, buf, (size_t)n);
	if (r == 0 && ((r = IDS_FAILPOINT("sync.apply_link")) < 0 || fsync(out) < 0))
		r = r < 0 ? r : -errno;
	close(in);
	close(out);
	if (r < 0 && IDS_FAILPOINT("sync.apply_link") == 0)
		unlinkat(dirfd, name, 0);
	return r;
}

/*
 * Gives the new record rec its file "<uid>." from a file we hold: a
 * hard link (a copy across file systems); a file already there (an
 * earlier attempt cut short) is kept if its bytes are the GUID's.
 */
static int
link_message(struct folder *f, struct ids_index_record *rec)
{
	char hex[IDS_GUID_HEXLEN + 1], name[32];
	uint8_t have[IDS_GUID_LEN];
	const char *path;
	int r, fd;

	ids_guid_hex(rec->guid, hex);
	snprintf(name, sizeof(name), "%u.", rec->uid);
	if ((path = ids_repl_have(f->s, hex)) == NULL) {
		if (rec->system_flags & IDS_FLAG_EXPUNGED) {
			rec->system_flags |= IDS_FLAG_UNLINKED;
			return 0;
		}
		return ids_error(IDS_ENOTFOUND, "uid %u: no file for GUID %s (not sent)",
		    rec->uid, hex);
	}
	if ((r = IDS_FAILPOINT("sync.apply_link")) < 0)
		return r;
	/* the link first: a name already there (an earlier attempt's) is rare */
	if (linkat(AT_FDCWD, path, f->mb->datafd, name, 0) == 0)
		goto linked;
	if (errno == EEXIST) {
		if (ids_guid_file(f->mb->datafd, name, have) == 0 &&
		    memcmp(have, rec->guid, IDS_GUID_LEN) == 0)
			goto done;
		if ((r = IDS_FAILPOINT("sync.apply_link")) < 0)
			return r;
		if (unlinkat(f->mb->datafd, name, 0) < 0)
			return -errno;
		if (linkat(AT_FDCWD, path, f->mb->datafd, name, 0) == 0)
			goto linked;
	}
	if (errno != EXDEV && errno != EMLINK && errno != EPERM)
		return ids_error(-errno, "%s: %s", name, strerror(errno));
	if ((r = copy_in(path, f->mb->datafd, name)) < 0)
		return r;
linked:
	f->linked++;
done:
	if ((fd = openat(f->mb->datafd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return ids_error(-errno, "%s: %s", name, strerror(errno));
	rec->header_size = file_header_size(fd, rec->size);
	/*
	 * Staged files are not fsynced (the replica's codec is told so):
	 * the first few are here, the others by one syncfs before the
	 * records are committed (apply_folder).
	 */
	if (f->synced < IDS_REPL_FSYNC_FILES && !f->created) {
		if ((r = IDS_FAILPOINT("sync.apply_link")) < 0 || fsync(fd) < 0) {
			r = r < 0 ? r : ids_error(-errno, "%s: fsync: %s", name, strerror(errno));
			close(fd);
			return r;
		}
		f->synced++;
	} else {
		f->syncfs = 1;
	}
	close(fd);
	rec->sentdate = rec->gmtime = (uint64_t)rec->internaldate;
	return 0;
}

/* Cyrus's record checks and merge (sync_mailbox_compare_update). */
static int
merge_one(struct folder *f, const struct ids_dlist *kv)
{
	struct ids_index_record in, *old = NULL;
	struct ids_dlist *annots = NULL;
	int r;

	memset(&in, 0, sizeof(in));
	if ((r = parse_record(f, kv, &in, &annots)) < 0)
		goto out;
	if (in.uid <= f->prev_in) {
		r = ids_error(IDS_ECORRUPT, "RECORD uids not ascending (%u after %u)", in.uid,
		    f->prev_in);
		goto out;
	}
	f->prev_in = in.uid;
	if ((r = emit_old_below(f, in.uid)) < 0)
		goto out;
	if (f->have_cur && f->cur.uid == in.uid)
		old = &f->cur;
	if (old != NULL) {
		int oexp = (old->system_flags & IDS_FLAG_EXPUNGED) != 0;
		int iexp = (in.system_flags & IDS_FLAG_EXPUNGED) != 0;

		if (oexp && iexp)
			goto out;	/* the old record goes out as it is */
		if (memcmp(old->guid, in.guid, IDS_GUID_LEN) != 0) {
			r = ids_error(IDS_ECRC, "uid %u: another GUID here", in.uid);
		} else if (old->modseq > in.modseq) {
			r = ids_error(IDS_ECRC, "uid %u: higher modseq here", in.uid);
		} else if (oexp) {
			r = ids_error(IDS_ECRC, "uid %u: expunged here", in.uid);
		} else {
			old->modseq = in.modseq;
			old->last_updated = in.last_updated;
			old->internaldate = in.internaldate;
			old->savedate = in.savedate;
			old->createdmodseq = in.createdmodseq;
			old->cid = in.cid;
			old->system_flags = (old->system_flags & ~(0x1fu | IDS_FLAG_EXPUNGED)) |
			    (in.system_flags & (0x1fu | IDS_FLAG_EXPUNGED));
			memcpy(old->user_flags, in.user_flags, sizeof(in.user_flags));
			r = ids_sync_store_set_record(&f->st, in.uid, annots);
			annots = NULL;
		}
	} else if (in.uid <= f->old_last_uid) {
		if (!(in.system_flags & IDS_FLAG_EXPUNGED))
			r = ids_error(IDS_ECRC, "uid %u: below last_uid %u and not here",
			    in.uid, f->old_last_uid);
	} else if ((r = link_message(f, &in)) == 0 && (r = emit(f, &in)) == 0) {
		r = ids_sync_store_set_record(&f->st, in.uid, annots);
		annots = NULL;
	}
out:
	ids_dlist_free(annots);
	return r;
}

/*
 * Where the RECORD items come from: a parsed list (the client's pull,
 * or a line read whole), or the wire, one item at a time.
 */
struct recsrc {
	const struct ids_dlist *next;	/* in memory */
	struct ids_csync_in *in;	/* streamed when not NULL */
	int wire_err;			/* the wire failed: answer as for a bad line */
};

/* The records, then the old records above the last of them. */
static int
merge_records(struct folder *f, struct recsrc *rs)
{
	struct ids_dlist *item;
	int r;

	if (rs->in == NULL) {
		for (; rs->next != NULL; rs->next = rs->next->next)
			if ((r = merge_one(f, rs->next)) < 0)
				return r;
	} else {
		while ((r = ids_csync_read_record(rs->in, &item)) == 1) {
			r = merge_one(f, item);
			ids_dlist_free(item);
			if (r < 0)
				return r;
		}
		if (r < 0) {
			rs->wire_err = 1;
			return r;
		}
	}
	return emit_old_below(f, (uint64_t)UINT32_MAX + 1);
}

/* --- writing the folder ---------------------------------------------- */

/* Cyrus's OPTIONS letters back to index option bits. */
static uint32_t
parse_options(const char *s)
{
	uint32_t opts = 0;
	int bit;

	for (bit = 0; s != NULL && bit < 32; bit++) {
		char one[8];

		ids_sync_options(1u << bit, one);
		if (one[0] != '\0' && one[1] == '\0' && strchr(s, one[0]) != NULL)
			opts |= 1u << bit;
	}
	return opts;
}

/*
 * The CRCs of the records of the index at fd with header h (read a
 * block at a time), with the user flag names of hdr and the store st.
 */
static int
index_crcs(int fd, const struct ids_index_header *h, const struct ids_header *hdr,
    const struct ids_sync_store *st, uint32_t *basic, uint32_t *annot)
{
	struct ids_index_reader *rd;
	struct ids_index_record rec;
	int r;

	*basic = 0;
	*annot = IDS_SYNC_CRC_ANNOT_INIT;
	if ((r = ids_index_reader_new(fd, h, &rd)) < 0)
		return r;
	while ((r = ids_index_reader_next(rd, &rec)) == 1)
		ids_sync_crc_record(&rec, h->minor_version, hdr, st, basic, annot);
	ids_index_reader_free(rd);
	return r;
}

/*
 * The commit point of the records: cyrus.index.NEW gets the header
 * (its counts, and the sync CRCs of the records written, read back),
 * then replaces cyrus.index durably.
 */
static int
write_index(struct folder *f)
{
	struct ids_index_header *h = &f->ih;
	unsigned char *buf;
	int r;

	if ((r = out_flush(f)) < 0)
		return r;
	h->num_records = (uint32_t)f->n;
	if ((r = index_crcs(f->nf.fd, h, &f->h, &f->st, &f->crc_basic, &f->crc_annot)) < 0)
		return r;
	h->synccrc_basic = f->crc_basic;
	h->synccrc_annot = f->crc_annot;
	if ((buf = calloc(1, h->start_offset)) == NULL)
		return -ENOMEM;
	r = ids_index_format_header(h, buf, h->start_offset);
	if (r >= 0 && (r = IDS_FAILPOINT("sync.apply_index")) == 0 &&
	    (r = ids_durable_write(&f->nf, buf, h->start_offset, 0)) == 0 &&
	    (r = ids_durable_commit(&f->nf)) == 0)
		f->writing = 0;
	free(buf);
	return r;
}

/*
 * The master's ACL string "id\trights\t..." into entry e, in O(n log n)
 * (appended, then repeated ids merged), and checked as every create and
 * import checks it: what no cyrus.header could hold is refused here,
 * before mailboxes.db or the header is touched.
 */
static int
set_acl(struct ids_mbentry *e, const char *acl)
{
	char *copy, *p, *id, *rights;
	size_t cap = 0;
	int r = 0;

	ids_acl_free(e->acl, e->nacl);
	e->acl = NULL;
	e->nacl = 0;
	if (acl == NULL || (copy = strdup(acl)) == NULL)
		return acl == NULL ? 0 : -ENOMEM;
	for (p = copy; r == 0 && (id = strsep(&p, "\t")) != NULL && *id != '\0'; ) {
		if ((rights = strsep(&p, "\t")) == NULL)
			break;
		r = ids_acl_append(&e->acl, &e->nacl, &cap, strdup(id), strdup(rights));
	}
	free(copy);
	if (r == 0)
		r = ids_acl_dedup(e->acl, &e->nacl);
	if (r == 0)
		r = ids_header_check_entry(e, NULL);
	return r;
}

struct dbupdate {
	const char *uniqueid, *name;
	const char *acl;
	uint64_t foldermodseq;
	uint32_t uidvalidity;	/* the master's, which cyrus.index will hold */
	int header;	/* the header will be written: commit the intent */
	int changed;
};

/*
 * The intent that makes cyrus.header and the index's header_file_crc
 * one step: %(OP sync STAGE header NAME name), committed with the
 * mailboxes.db change (or alone) before the header is written, removed
 * once cyrus.index carries the new header's CRC.  Recovery rewrites the
 * header from the record and sets the CRC (ids_replica_recover).
 */
static int
put_intent(struct ids_txn *txn, const char *uniqueid, const char *name)
{
	struct ids_intent in;
	int r;

	ids_intent_init(&in);
	strcpy(in.op, IDS_OP_SYNC);
	strcpy(in.stage, IDS_STAGE_HEADER);
	if ((r = ids_intent_set(&in.name, name)) == 0 &&
	    (r = IDS_FAILPOINT("sync.apply_intent")) == 0)
		r = ids_intent_put(txn, uniqueid, &in);
	ids_intent_release(&in);
	return r;
}

static int
intent_txn(struct ids_txn *txn, void *rock)
{
	struct dbupdate *u = rock;

	return put_intent(txn, u->uniqueid, u->name);
}

static int
intent_del_txn(struct ids_txn *txn, void *rock)
{
	int r = IDS_FAILPOINT("sync.apply_done");

	if (r == 0 && (r = ids_intent_del(txn, rock)) == IDS_ENOTFOUND)
		r = 0;
	return r;
}

static int
dbupdate_txn(struct ids_txn *txn, void *rock)
{
	struct dbupdate *u = rock;
	struct ids_mbentry e;
	char *now;
	int r;

	u->changed = 0;
	ids_mbentry_init(&e);
	if ((r = ids_txn_lookup_id(txn, u->uniqueid, &e)) < 0)
		goto out;
	now = ids_sync_acl_string(&e);
	if (now == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((u->acl != NULL && strcmp(now, u->acl) != 0) ||
	    (u->foldermodseq && u->foldermodseq != e.foldermodseq) ||
	    (u->uidvalidity && u->uidvalidity != e.uidvalidity)) {
		u->changed = 1;
		if (u->acl != NULL)
			r = set_acl(&e, u->acl);
		if (u->foldermodseq)
			e.foldermodseq = u->foldermodseq;
		if (u->uidvalidity)
			e.uidvalidity = u->uidvalidity;
		if (r == 0 && (r = IDS_FAILPOINT("sync.apply_db")) == 0)
			r = ids_txn_put(txn, &e);
		u->header = 1;
	}
	if (r == 0 && u->header)
		r = put_intent(txn, u->uniqueid, u->name);
	free(now);
out:
	ids_mbentry_release(&e);
	return r;
}

/* 1 when the header's ACL is not the entry's (same ids, rights, order). */
static int
acl_differs(const struct ids_header *h, const struct ids_mbentry *e)
{
	size_t i;

	if (h->nacl != e->nacl)
		return 1;
	for (i = 0; i < h->nacl; i++)
		if (strcmp(h->acl[i].id, e->acl[i].id) != 0 ||
		    strcmp(h->acl[i].rights, e->acl[i].rights) != 0)
			return 1;
	return 0;
}

/*
 * mailboxes.db, then cyrus.header from it when a user flag is new or
 * its ACL is not the db's (not only when this apply changed the db: an
 * apply killed between the two left the db changed and the header not,
 * and its retry finds nothing to change in the db), under the intent.
 */
static int
write_meta(struct folder *f, const struct ids_dlist *kv)
{
	struct dbupdate u = { f->mb->entry.uniqueid, f->mb->entry.name, kv_str(kv, "ACL"), 0, 0,
	    f->header_dirty, 0 };
	struct ids_mbentry e;
	int r;

	ids_dlist_get_u64(kv, "FOLDERMODSEQ", &u.foldermodseq);
	ids_dlist_get_u32(kv, "UIDVALIDITY", &u.uidvalidity);
	if ((r = ids_mboxlist_write(f->s->mbl, dbupdate_txn, &u)) < 0)
		return r;
	f->intent = u.header;
	ids_mbentry_init(&e);
	if ((r = ids_mboxlist_lookup_id(f->s->mbl, f->mb->entry.uniqueid, &e)) < 0 ||
	    (!u.header && !acl_differs(&f->h, &e))) {
		ids_mbentry_release(&e);
		return r;
	}
	if (!f->intent && (r = ids_mboxlist_write(f->s->mbl, intent_txn, &u)) == 0)
		f->intent = 1;
	if (r == 0 && (r = ids_header_from_mbentry(&f->h, &e)) == 0 &&
	    (r = IDS_FAILPOINT("sync.apply_header")) == 0)
		r = ids_header_write(ids_mailbox_metafd(f->mb, IDS_META_HEADER), &f->h, &f->hcrc);
	if (r == 0 && u.changed) {
		ids_mbentry_release(&f->mb->entry);
		r = ids_mbentry_copy(&f->mb->entry, &e);
	}
	ids_mbentry_release(&e);
	return r;
}

/*
 * A folder this apply creates: mailboxes.db is written once, at its
 * commit, with the ACL and FOLDERMODSEQ it was made with; cyrus.header
 * again only when a record brought a user flag (no intent: the create's
 * covers every file of the folder).
 */
static int
write_meta_created(struct folder *f)
{
	int r;

	if (!f->header_dirty)
		return 0;
	if ((r = ids_header_from_mbentry(&f->h, &f->mb->entry)) == 0 &&
	    (r = IDS_FAILPOINT("sync.apply_header")) == 0)
		r = ids_header_write(ids_mailbox_metafd(f->mb, IDS_META_HEADER), &f->h, &f->hcrc);
	return r;
}

/* The index header fields the master sends. */
static int
set_header_fields(struct folder *f, const struct ids_dlist *kv)
{
	struct ids_index_header *h = &f->ih;
	uint32_t last_uid, uidvalidity;
	int r;

	if ((r = ids_dlist_get_u32(kv, "LAST_UID", &last_uid)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "HIGHESTMODSEQ", &h->highestmodseq)) < 0 ||
	    (r = ids_dlist_get_u32(kv, "RECENTUID", &h->recentuid)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "RECENTTIME", &h->recenttime)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "LAST_APPENDDATE", &h->last_appenddate)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "POP3_LAST_LOGIN", &h->pop3_last_login)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "POP3_SHOW_AFTER", &h->pop3_show_after)) < 0 ||
	    (r = ids_dlist_get_u32(kv, "UIDVALIDITY", &uidvalidity)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "CREATEDMODSEQ", &h->createdmodseq)) < 0)
		return r;
	if (last_uid < h->last_uid)
		return ids_error(IDS_ECRC, "last_uid %u is below ours (%u)", last_uid, h->last_uid);
	h->last_uid = last_uid;
	h->uidvalidity = uidvalidity;
	h->options = parse_options(kv_str(kv, "OPTIONS"));
	h->header_file_crc = f->hcrc;
	return 0;
}

/* --- APPLY MAILBOX -------------------------------------------------------- */

/*
 * The CRCs of the folder as it stands on disk (for SINCE_*): its
 * cyrus.header, idspool.sync and cyrus.index read afresh, the index a
 * block at a time.
 */
static int
folder_crcs(struct folder *f, uint32_t *basic, uint32_t *annot)
{
	struct ids_header h;
	struct ids_sync_store st;
	int r;

	ids_header_init(&h);
	ids_sync_store_init(&st);
	if ((r = ids_header_read(ids_mailbox_metafd(f->mb, IDS_META_HEADER), &h, NULL)) == 0 &&
	    (r = ids_sync_store_read(ids_mailbox_metafd(f->mb, IDS_META_INDEX), &st)) == 0)
		r = index_crcs(f->oldfd, &f->ih, &h, &st, basic, annot);
	ids_header_release(&h);
	ids_sync_store_release(&st);
	return r;
}

/*
 * Finds the folder of uniqueid at name, or begins its create when
 * neither exists (*mbp then holds it open, not yet committed: the apply
 * fills it and commits it in one step).  Returns 0, or the refusal
 * already answered (1), or < 0.
 */
static int
find_or_create(struct ids_repl_session *s, const struct ids_dlist *kv, const char *uniqueid,
    const char *name, int *created, struct ids_mailbox **mbp)
{
	struct ids_mbentry byid, byname, want;
	int r, rid, rname;

	ids_mbentry_init(&byid);
	ids_mbentry_init(&byname);
	ids_mbentry_init(&want);
	*created = 0;
	rid = ids_mboxlist_lookup_id(s->mbl, uniqueid, &byid);
	if (rid == 0 && ids_mbentry_is_tombstone(&byid))
		rid = IDS_ENOTFOUND;	/* deleted here: made again */
	rname = ids_mboxlist_lookup(s->mbl, name, &byname);
	if (rid == 0 && strcmp(byid.name, name) != 0) {
		r = ids_error(IDS_EDUPID, "uniqueid %s is %s here", uniqueid, byid.name);
	} else if (rname == 0 && !ids_mbentry_is_tombstone(&byname) &&
	    strcmp(byname.uniqueid, uniqueid) != 0) {
		r = ids_error(IDS_EDUPID, "%s holds uniqueid %s here", name, byname.uniqueid);
	} else if (rid == 0) {
		r = 0;
	} else if (rid != IDS_ENOTFOUND) {
		r = rid;
	} else {
		want.name = (char *)name;
		want.uniqueid = (char *)uniqueid;
		want.partition = (char *)kv_str(kv, "PARTITION");
		ids_dlist_get_u32(kv, "UIDVALIDITY", &want.uidvalidity);
		ids_dlist_get_u64(kv, "CREATEDMODSEQ", &want.createdmodseq);
		ids_dlist_get_u64(kv, "FOLDERMODSEQ", &want.foldermodseq);
		if ((r = set_acl(&want, kv_str(kv, "ACL"))) == 0)
			r = ids_mailbox_create_open(s->mbl, &want, mbp);
		ids_acl_free(want.acl, want.nacl);
		*created = r == 0;
	}
	ids_mbentry_release(&byid);
	ids_mbentry_release(&byname);
	if (r == IDS_EDUPID)
		return ids_repl_refuse(s, name, IDS_CSYNC_EMOVED, r) < 0 ? -EIO : 1;
	return r;
}

/*
 * The checks of sync_apply_mailbox before anything is written, on the
 * old header in f->ih (set_header_fields has not run yet).
 */
static int
check_state(struct folder *f, const struct ids_dlist *kv, int created)
{
	uint64_t since = 0, hms = 0;
	uint32_t sb = 0, sa = 0, b, a, uidvalidity = 0;
	int r = 0;

	ids_dlist_get_u64(kv, "SINCE_MODSEQ", &since);
	ids_dlist_get_u32(kv, "SINCE_CRC", &sb);
	ids_dlist_get_u32(kv, "SINCE_CRC_ANNOT", &sa);
	ids_dlist_get_u64(kv, "HIGHESTMODSEQ", &hms);
	ids_dlist_get_u32(kv, "UIDVALIDITY", &uidvalidity);
	if (created)
		return 0;
	if (since && ((r = folder_crcs(f, &b, &a)) < 0 ||
	    since != f->ih.highestmodseq || sb != b || sa != a))
		return r < 0 ? r : 2;	/* IMAP_SYNC_CHANGED */
	if (hms < f->ih.highestmodseq || uidvalidity < f->ih.uidvalidity)
		return ids_error(IDS_ECRC, "highestmodseq or uidvalidity higher here");
	return 0;
}

/* The keys read before the records, which a streamed line must carry before RECORD. */
static const char *const head_keys[] = {
	"UNIQUEID", "MBOXNAME", "PARTITION", "ACL", "OPTIONS", "UIDVALIDITY", "HIGHESTMODSEQ",
};
/* Optional keys read before the records: checked again if they come after RECORD. */
static const char *const gate_keys[] = {
	"MBOXTYPE", "SINCE_MODSEQ", "SINCE_CRC", "SINCE_CRC_ANNOT",
};
#define NGATES	(sizeof(gate_keys) / sizeof(gate_keys[0]))

static unsigned
gates_present(const struct ids_dlist *kv)
{
	unsigned m = 0;
	size_t i;

	for (i = 0; i < NGATES; i++)
		if (ids_dlist_get(kv, gate_keys[i]) != NULL)
			m |= 1u << i;
	return m;
}

/* MBOXTYPE: only email folders are replicated here. */
static int
check_type(const struct ids_dlist *kv)
{
	const char *type = kv_str(kv, "MBOXTYPE");

	if (type != NULL && *type != '\0' && strcmp(type, "e") != 0)
		return ids_error(IDS_EINVAL, "mailbox type '%s' is not replicated here", type);
	return 0;
}

/*
 * The records merged into cyrus.index.NEW, then the writes in order;
 * gates: the gate keys the line held before its records.
 */
static int
apply_folder(struct folder *f, const struct ids_dlist *kv, int created, struct recsrc *rs,
    unsigned gates)
{
	int r;

	if ((r = folder_read(f)) < 0 || (r = check_state(f, kv, created)) != 0 ||
	    (r = out_begin(f)) < 0)
		return r;
	if ((r = merge_records(f, rs)) < 0)
		return r;
	/* a gate key after the records: its check now, before anything is committed */
	if (gates_present(kv) != gates) {
		if ((r = check_type(kv)) < 0)
			return ids_error(IDS_EINVAL, "%s (sent after RECORD)", ids_errmsg(r));
		if ((r = check_state(f, kv, created)) != 0)
			return r;
	}
	if (created)
		f->ih.highestmodseq = 0;
	if (f->created)
		r = write_meta_created(f);	/* flushed by ids_mailbox_create_commit */
	else if (f->syncfs)
		r = ids_fs_sync(f->mb->datafd);		/* the files and the directory */
	else if (f->linked > 0)
		r = ids_fsync_dir(f->mb->datafd);
	if (r < 0)
		return r;
	if ((!f->created && (r = write_meta(f, kv)) < 0) ||
	    (r = set_header_fields(f, kv)) < 0)
		return r;
	/*
	 * A new folder's record is put at its commit: with the CREATEDMODSEQ
	 * cyrus.index holds, also one sent after the records (the create
	 * was begun with the keys that came before them).
	 */
	if (f->created)
		f->mb->entry.createdmodseq = f->ih.createdmodseq;
	if ((r = write_index(f)) < 0 ||
	    (f->intent && (r = ids_mboxlist_write(f->s->mbl, intent_del_txn,
	    f->mb->entry.uniqueid)) < 0) ||
	    (r = ids_sync_store_from_mailbox(&f->st, kv)) < 0)
		return r;
	return ids_sync_store_write(ids_mailbox_metafd(f->mb, IDS_META_INDEX), &f->st);
}

/* The answer to an apply that failed with r (2: IMAP_SYNC_CHANGED). */
static int
answer(struct ids_repl_session *s, const char *what, int r)
{
	if (r == 2)
		return ids_repl_refuse(s, what, IDS_CSYNC_ECHANGED, 0);
	if (r == IDS_ECRC)
		return ids_repl_refuse(s, what, IDS_CSYNC_ECHECKSUM, r);
	return ids_repl_refuse(s, what, ids_repl_imap_error(r), r);
}

/*
 * After an apply that did not take the rest of a streamed line: the
 * rest is read and dropped so that the session stays in step (the
 * answer is buffered until then).  0, or < 0 when the stream is lost.
 */
static int
drain(struct ids_repl_session *s, struct recsrc *rs)
{
	int r;

	if (rs->in == NULL || !ids_csync_in_streaming(rs->in))
		return 0;
	r = ids_csync_skip_rest(rs->in);
	return r < 0 && ids_csync_in_lost(rs->in) ? r : 0;
}

/* --- group commit ------------------------------------------------------ */

/*
 * A new folder applied in full, its CRCs the client's: kept open and
 * uncommitted, its answer's place marked in the output, which is held
 * from now until the group commit (no byte of a later answer may go
 * before its OK).  The group is committed now unless more input is
 * already waiting: a client that sends its next commands without
 * waiting for this answer (idspool's pipelining) gets its new folders
 * made durable by one syncfs and one mailboxes.db transaction for all.
 */
static int
park(struct ids_repl_session *s, struct folder *f, struct recsrc *rs)
{
	struct ids_repl_pending *p;
	int r;

	if ((r = drain(s, rs)) < 0) {
		ids_mailbox_close(f->mb);
		return r;
	}
	if (s->npend == s->apend) {
		size_t a = s->apend ? 2 * s->apend : 16;

		if ((p = realloc(s->pend, a * sizeof(*p))) == NULL) {
			ids_mailbox_close(f->mb);
			return -ENOMEM;
		}
		s->pend = p;
		s->apend = a;
	}
	p = &s->pend[s->npend++];
	p->mb = f->mb;
	p->nrec = f->n;
	p->nlinked = f->linked;
	ids_csync_out_hold(s->out, 1);
	p->mark = ids_csync_out_mark(s->out);
	if (s->npend >= IDS_REPL_GROUP_MAX || !ids_csync_in_pending(s->in))
		return ids_repl_group_commit(s);
	return 0;
}

int
ids_repl_group_commit(struct ids_repl_session *s)
{
	struct ids_mailbox *one[1];
	struct ids_mailbox **v = one;
	size_t i, n = s->npend;
	int rone[1], *rv = rone, r = 0, w;

	if (n == 0)
		return 0;
	if (n > 1 && ((v = calloc(n, sizeof(*v))) == NULL ||
	    (rv = calloc(n, sizeof(*rv))) == NULL)) {
		free(v);
		v = NULL;
		r = -ENOMEM;
	}
	if (v != NULL) {
		for (i = 0; i < n; i++)
			v[i] = s->pend[i].mb;
		ids_mailbox_create_commit_group(v, n, rv);
	}
	/* the answers in their places, the latest first (the marks before it stay put) */
	for (i = n; i-- > 0; ) {
		struct ids_repl_pending *p = &s->pend[i];
		int e = v == NULL ? r : rv[i];
		const char *name = p->mb->entry.name;
		const char *why = v == NULL ? NULL : ids_mailbox_create_error(p->mb);

		if (e == 0) {
			ids_repl_log(s, LOG_INFO, "APPLY MAILBOX %s (%s): created, %zu record(s), "
			    "%zu file(s) linked%s", name, p->mb->entry.uniqueid, p->nrec, p->nlinked,
			    n > 1 ? " (group commit)" : "");
			w = ids_csync_out_insert_status(s->out, p->mark, NULL, "success");
		} else {
			if (why == NULL)
				why = ids_errmsg(e);
			ids_repl_log(s, LOG_ERR, "%s: %s (%s)", name, why, ids_repl_imap_error(e));
			w = ids_csync_out_insert_status(s->out, p->mark, ids_repl_imap_error(e),
			    why);
		}
		if (w < 0 && r == 0)
			r = w;
	}
	for (i = 0; i < n; i++)
		ids_mailbox_close(s->pend[i].mb);	/* one not committed is undone */
	s->npend = 0;
	if (v != one)
		free(v);
	if (rv != rone)
		free(rv);
	ids_csync_out_hold(s->out, 0);
	return r;
}

int
ids_repl_apply_mailbox(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *uniqueid, *name;
	const struct ids_dlist *records;
	struct recsrc rs = { NULL, NULL, 0 };
	struct folder f;
	uint32_t wb = 0, wa = 0;
	unsigned gates;
	size_t i;
	int r, k, created;

	if (s->in != NULL && ids_csync_in_streaming(s->in)) {
		rs.in = s->in;
		/* a key read before the records that comes after them: the line whole */
		for (i = 0; i < sizeof(head_keys) / sizeof(head_keys[0]); i++)
			if (ids_dlist_get(kv, head_keys[i]) == NULL)
				break;
		if (i < sizeof(head_keys) / sizeof(head_keys[0])) {
			rs.in = NULL;
			if ((r = ids_csync_read_rest(s->in)) < 0)
				return ids_repl_bad_input(s, r);
		}
	}
	uniqueid = kv_str(kv, "UNIQUEID");
	name = kv_str(kv, "MBOXNAME");
	records = ids_dlist_get(kv, "RECORD");
	rs.next = records ? records->head : NULL;
	gates = gates_present(kv);
	if (kv == NULL || kv->type != IDS_DL_KVLIST || uniqueid == NULL || name == NULL ||
	    kv_str(kv, "PARTITION") == NULL || kv_str(kv, "ACL") == NULL ||
	    kv_str(kv, "OPTIONS") == NULL || records == NULL || records->type != IDS_DL_LIST)
		return (r = drain(s, &rs)) < 0 ? r : ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = check_type(kv)) < 0)
		return (k = drain(s, &rs)) < 0 ? k : ids_repl_refuse(s, name, IDS_CSYNC_EBADPARAM, r);
	if ((r = ids_uniqueid_check(uniqueid)) < 0)
		return (k = drain(s, &rs)) < 0 ? k : ids_repl_refuse(s, name, IDS_CSYNC_EBADPARAM, r);
	memset(&f, 0, sizeof(f));
	f.s = s;
	f.oldfd = -1;
	if ((r = find_or_create(s, kv, uniqueid, name, &created, &f.mb)) != 0) {
		if ((k = drain(s, &rs)) < 0)
			return k;
		return r > 0 ? 0 : answer(s, name, r);
	}
	if (!created && (r = ids_mailbox_open(s->mbl, name, IDS_MAILBOX_WRITE,
	    IDS_LOCK_TIMEOUT_MS, &f.mb)) < 0)
		return (k = drain(s, &rs)) < 0 ? k : answer(s, name, r);
	/*
	 * A new folder is one durable step: its files, cyrus.header,
	 * cyrus.index and idspool.sync written with no flush, then one
	 * syncfs and one mailboxes.db commit (ids_mailbox_create_commit).
	 */
	f.created = created;
	if (created)
		ids_fs_defer_sync(1);
	r = apply_folder(&f, kv, created, &rs, gates);
	if (created)
		ids_fs_defer_sync(0);
	if (r == 0) {
		ids_dlist_get_u32(kv, "SYNC_CRC", &wb);
		ids_dlist_get_u32(kv, "SYNC_CRC_ANNOT", &wa);
		if (f.crc_basic != wb || f.crc_annot != wa)
			r = ids_error(IDS_ECRC, "CRCs %u/%u here after the apply, %u/%u sent",
			    f.crc_basic, f.crc_annot, wb, wa);
	}
	folder_release(&f);	/* before the folder's directories close */
	if (r == 0 && created && s->out != NULL && s->in != NULL)
		return park(s, &f, &rs);
	if (r == 0 && created)
		r = ids_mailbox_create_commit(f.mb);
	if (r < 0 && created) {
		/* the undo must not replace the reason it undoes (the CRCs, say) */
		char why[512];

		snprintf(why, sizeof(why), "%s", ids_errmsg(r));
		ids_mailbox_close(f.mb);
		ids_error(r, "%s", why);
	} else {
		ids_mailbox_close(f.mb);	/* a create not committed is undone */
	}
	if (rs.wire_err)
		return ids_repl_bad_input(s, r);
	if ((k = drain(s, &rs)) < 0)
		return k;
	if (r != 0)
		return answer(s, name, r);
	ids_repl_log(s, LOG_INFO, "APPLY MAILBOX %s (%s): %s, %zu record(s), %zu file(s) linked",
	    name, uniqueid, created ? "created" : "updated", f.n, f.linked);
	return ids_repl_ok(s, "success");
}

/* --- APPLY EXPUNGE %(MBOXNAME UNIQUEID UID (uids)) --------------------- */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
ids_repl_apply_expunge(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *name = kv_str(kv, "MBOXNAME"), *uniqueid = kv_str(kv, "UNIQUEID");
	const struct ids_dlist *uids = ids_dlist_get(kv, "UID"), *i;
	uint32_t *want = NULL;
	size_t nwant = 0, n = 0;
	struct folder f;
	int r;

	if (name == NULL || uniqueid == NULL || uids == NULL || uids->type != IDS_DL_LIST)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	memset(&f, 0, sizeof(f));
	f.s = s;
	f.oldfd = -1;
	if ((r = ids_mailbox_open(s->mbl, name, IDS_MAILBOX_WRITE, IDS_LOCK_TIMEOUT_MS, &f.mb)) < 0)
		return answer(s, name, r);
	if (strcmp(f.mb->entry.uniqueid, uniqueid) != 0) {
		ids_mailbox_close(f.mb);
		return ids_repl_refuse(s, name, IDS_CSYNC_EMOVED, ids_error(IDS_EDUPID,
		    "holds uniqueid %s here, not %s", f.mb->entry.uniqueid, uniqueid));
	}
	for (i = uids->head; i != NULL; i = i->next)
		nwant++;
	if (nwant > 0 && (want = calloc(nwant, sizeof(*want))) == NULL)
		r = -ENOMEM;
	for (nwant = 0, i = uids->head; r == 0 && i != NULL; i = i->next) {
		uint64_t uid;

		if (ids_dlist_u64(i, &uid) == 0 && uid <= UINT32_MAX)
			want[nwant++] = (uint32_t)uid;
	}
	if (nwant > 1)
		qsort(want, nwant, sizeof(*want), cmp_u32);
	if (r == 0 && (r = folder_read(&f)) == 0 && (r = out_begin(&f)) == 0) {
		for (; r == 0 && f.have_cur; r = r ? r : old_next(&f)) {
			if (nwant > 0 && bsearch(&f.cur.uid, want, nwant, sizeof(*want), cmp_u32)) {
				f.cur.system_flags |= IDS_FLAG_EXPUNGED;
				n++;
			}
			r = emit(&f, &f.cur);
		}
		if (r == 0)
			r = write_index(&f);
	}
	free(want);
	folder_release(&f);	/* before the folder's directories close */
	ids_mailbox_close(f.mb);
	if (r < 0)
		return answer(s, name, r);
	ids_repl_log(s, LOG_INFO, "APPLY EXPUNGE %s: %zu record(s)", name, n);
	return ids_repl_ok(s, "success");
}

/*
 * The check of a command addressed by uniqueid (idspool's extension):
 * name must hold uniqueid, or be gone with uniqueid live nowhere or at
 * done_name (what the command asks for is done already).  0 to go on, 1 when done
 * already, or the refusal answered (2) or < 0.
 */
static int
check_uniqueid(struct ids_repl_session *s, const char *name, const char *uniqueid,
    const char *done_name)
{
	struct ids_mbentry e, byid;
	int r, rid;

	if (uniqueid == NULL)
		return 0;
	if ((r = ids_uniqueid_check(uniqueid)) < 0)
		return ids_repl_refuse(s, name, IDS_CSYNC_EBADPARAM, r) < 0 ? -EIO : 2;
	ids_mbentry_init(&e);
	ids_mbentry_init(&byid);
	r = ids_mboxlist_lookup(s->mbl, name, &e);
	rid = ids_mboxlist_lookup_id(s->mbl, uniqueid, &byid);
	if (r == 0 && !ids_mbentry_is_tombstone(&e) && strcmp(e.uniqueid, uniqueid) == 0)
		r = 0;
	else if (rid == 0 && !ids_mbentry_is_tombstone(&byid) && done_name != NULL &&
	    strcmp(byid.name, done_name) == 0)
		r = 1;
	else if (rid == 0 && !ids_mbentry_is_tombstone(&byid))
		r = ids_error(IDS_EDUPID, "uniqueid %s is %s here", uniqueid, byid.name);
	else if (r == 0 && !ids_mbentry_is_tombstone(&e))
		r = ids_error(IDS_EDUPID, "%s holds uniqueid %s here, not %s", name, e.uniqueid,
		    uniqueid);
	else if ((r == 0 || r == IDS_ENOTFOUND) && (rid == 0 || rid == IDS_ENOTFOUND))
		r = 1;
	else if (r == IDS_ENOTFOUND)
		r = rid;
	ids_mbentry_release(&e);
	ids_mbentry_release(&byid);
	if (r == IDS_EDUPID)
		return ids_repl_refuse(s, name, IDS_CSYNC_EMOVED, r) < 0 ? -EIO : 2;
	return r;
}

/* --- APPLY RENAME %(OLDMBOXNAME NEWMBOXNAME PARTITION UIDVALIDITY) ------ */

/* 1 if name is live and once was old (a rename applied already). */
static int
renamed_already(struct ids_repl_session *s, const char *old, const char *name)
{
	struct ids_mbentry e, byid;
	size_t i;
	int done = 0;

	ids_mbentry_init(&e);
	ids_mbentry_init(&byid);
	if (ids_mboxlist_lookup(s->mbl, name, &e) == 0 && !ids_mbentry_is_tombstone(&e) &&
	    ids_mboxlist_lookup_id(s->mbl, e.uniqueid, &byid) == 0)
		for (i = 0; i < byid.nhistory && !done; i++)
			done = strcmp(byid.history[i].name, old) == 0;
	ids_mbentry_release(&e);
	ids_mbentry_release(&byid);
	return done;
}

/*
 * 1 when old and new are two users' INBOXes: a user renamed.  The
 * folder alone cannot change owner, so the whole user moves, as
 * ctl_rename does it (its folders, DELETED ones, subscriptions, seen
 * state); the client's renames of its other folders then find them
 * renamed already.
 */
static int
user_rename(const char *old, const char *new)
{
	struct ids_mbname a, b;

	return ids_mbname_parse_internal(&a, old, IDS_MBNAME_STRICT) == 0 &&
	    ids_mbname_parse_internal(&b, new, IDS_MBNAME_STRICT) == 0 &&
	    ids_mbname_is_inbox(&a) && ids_mbname_is_inbox(&b) && !ids_mbname_same_owner(&a, &b);
}

int
ids_repl_apply_rename(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *old = kv_str(kv, "OLDMBOXNAME"), *new = kv_str(kv, "NEWMBOXNAME");
	const char *part = kv_str(kv, "PARTITION");
	struct ids_rename_opts o = { IDS_RENAME_ONE, NULL, IDS_LOCK_TIMEOUT_MS, NULL, NULL };
	struct ids_mbentry e;
	int r;

	if (old == NULL || new == NULL || part == NULL)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	/* idspool's extension: UNIQUEID, the folder the client means */
	if ((r = check_uniqueid(s, old, kv_str(kv, "UNIQUEID"), new)) == 2)
		return 0;
	if (r < 0)
		return answer(s, old, r);
	if (r == 1) {
		if (!renamed_already(s, old, new))
			return ids_repl_refuse(s, old, ids_repl_imap_error(IDS_ENOTFOUND),
			    ids_error(IDS_ENOTFOUND, "%s: no such folder", old));
		return ids_repl_ok(s, "success");
	}
	if (ids_config_partition(s->cfg, part) == NULL)
		return ids_repl_refuse(s, new, "IMAP_PARTITION_UNKNOWN",
		    ids_error(IDS_EPARTITION, "partition '%s' is not configured", part));
	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup(s->mbl, old, &e);
	if (r == 0 && e.partition != NULL && strcmp(e.partition, part) != 0)
		r = ids_error(IDS_EINVAL, "%s is on partition %s here; a rename does not "
		    "move data between partitions", old, e.partition);
	ids_mbentry_release(&e);
	if (r == 0 && user_rename(old, new))
		o.flags &= ~IDS_RENAME_ONE;
	if (r == 0)
		r = ids_rename(s->mbl, old, new, &o);
	if (r == IDS_ENOTFOUND && renamed_already(s, old, new))
		r = 0;
	if (r < 0)
		return answer(s, old, r);
	ids_repl_log(s, LOG_INFO, "APPLY RENAME %s -> %s", old, new);
	return ids_repl_ok(s, "success");
}

/* --- APPLY UNMAILBOX name / APPLY UNUSER userid -------------------------- */

int
ids_repl_tombstoned(struct ids_repl_session *s, const char *uniqueid, const char *name)
{
	struct ids_mbentry e;
	int r, dead = 0;

	/* the I record of a deleted folder stays, naming its tombstone */
	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup_id(s->mbl, uniqueid, &e);
	dead = r == 0 && ids_mbentry_is_tombstone(&e);
	ids_mbentry_release(&e);
	if (r != IDS_ENOTFOUND)
		return r < 0 ? r : dead;
	ids_mbentry_init(&e);
	if ((r = ids_mboxlist_lookup(s->mbl, name, &e)) == 0)
		dead = ids_mbentry_is_tombstone(&e) && e.uniqueid != NULL &&
		    strcmp(e.uniqueid, uniqueid) == 0;
	ids_mbentry_release(&e);
	return r < 0 && r != IDS_ENOTFOUND ? r : dead;
}

int
ids_repl_apply_unmailbox(struct ids_repl_session *s, const char *name, const char *uniqueid)
{
	int r;

	if (name == NULL)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = check_uniqueid(s, name, uniqueid, NULL)) == 1)
		return ids_repl_ok(s, "success");
	if (r == 2)
		return 0;
	if (r < 0)
		return answer(s, name, r);
	/* a folder already gone is what the client wants (Cyrus answers OK too) */
	r = ids_mailbox_delete(s->mbl, name);
	if (r == IDS_ENOTFOUND)
		r = 0;
	if (r < 0)
		return answer(s, name, r);
	ids_repl_log(s, LOG_INFO, "APPLY UNMAILBOX %s: tombstone left", name);
	return ids_repl_ok(s, "success");
}

int
ids_repl_apply_unuser(struct ids_repl_session *s, const char *userid)
{
	struct ids_repl_names l = { NULL, 0, 0 };
	size_t i;
	int r;

	if (userid == NULL || *userid == '\0')
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	r = ids_repl_user_folders(s, userid, 0, &l);
	/* children before their parents, INBOX last, as Cyrus deletes them */
	for (i = l.n; r == 0 && i > 0; i--) {
		r = ids_mailbox_delete(s->mbl, l.v[i - 1]);
		if (r == IDS_ENOTFOUND)
			r = 0;
	}
	if (r == 0)
		r = ids_repl_meta_delete_user(s, userid);
	if (r < 0) {
		ids_repl_names_free(&l);
		return answer(s, userid, r);
	}
	ids_repl_log(s, LOG_INFO, "APPLY UNUSER %s: %zu folder(s) deleted", userid, l.n);
	ids_repl_names_free(&l);
	return ids_repl_ok(s, "success");
}

/* --- GET FETCH %(MBOXNAME PARTITION UNIQUEID GUID UID) ------------------ */

int
ids_repl_get_fetch(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *name = kv_str(kv, "MBOXNAME"), *guid = kv_str(kv, "GUID");
	struct ids_mailbox *mb;
	struct ids_index_record rec;
	struct ids_dlist *node = NULL;
	char fname[32], hex[IDS_GUID_HEXLEN + 1];
	uint32_t uid = 0;
	int r;

	if (name == NULL || guid == NULL ||
	    ids_dlist_get_u32(kv, "UID", &uid) < 0 || uid == 0)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		return answer(s, name, r);
	/* the record by a binary search, as Cyrus finds it: not the whole index a fetch */
	r = ids_index_find_uid(ids_mailbox_metafd(mb, IDS_META_INDEX), uid, &rec);
	if (r == 0) {
		ids_guid_hex(rec.guid, hex);
		if (strcmp(hex, guid) != 0)
			r = IDS_ENOTFOUND;
	}
	snprintf(fname, sizeof(fname), "%u.", uid);
	if (r == IDS_ENOTFOUND)
		r = ids_error(IDS_ENOTFOUND, "%s: no uid %u with GUID %s", name, uid, guid);
	/* "* MESSAGE %{partition guid size}" and the bytes, as Cyrus answers */
	if (r == 0 && (node = ids_csync_file_node(mb->entry.partition, guid, rec.size,
	    mb->datafd, fname)) == NULL)
		r = -ENOMEM;
	if (r == 0)
		r = ids_csync_write_untagged(s->out, "MESSAGE", node);
	ids_dlist_free(node);
	ids_mailbox_close(mb);
	if (r < 0)
		return answer(s, name, r);
	return ids_repl_ok(s, "success");
}

/* --- recovery of the "sync" intent --------------------------------------- */

/*
 * cyrus.index takes the record's uidvalidity when it is higher (an apply
 * only ever raises it: check_state refuses a lower one); never lowered,
 * for a record left lower by an older replica is raised by the next apply.
 */
static int
recover_uidvalidity(struct ids_mailbox *mb, uint32_t uidvalidity)
{
	int ifd = ids_mailbox_metafd(mb, IDS_META_INDEX);
	struct ids_index_header ih;
	int r;

	if (uidvalidity == 0 || faccessat(ifd, IDS_INDEX_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if ((r = ids_index_read_header(ifd, &ih)) < 0 || ih.uidvalidity >= uidvalidity)
		return r;
	return ids_index_set_uidvalidity(ifd, uidvalidity);
}

int
ids_replica_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in)
{
	struct ids_mbentry e;
	struct ids_mailbox *mb;
	int r;

	if (strcmp(in->stage, "header") != 0)
		return ids_error(IDS_ECORRUPT, "sync intent of %s: unknown stage '%s'",
		    uniqueid, in->stage);
	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup_id(mbl, uniqueid, &e);
	if (r == 0 && !ids_mbentry_is_tombstone(&e)) {
		/*
		 * The lock is the recovery's: the header from the record, its
		 * CRC, and the record's UIDVALIDITY (a master's higher one, put
		 * with the intent) in cyrus.index if the apply died before it.
		 */
		if ((r = ids_mailbox_open(mbl, e.name, IDS_MAILBOX_WRITE | IDS_MAILBOX_NOLOCK, 0,
		    &mb)) == 0) {
			r = ids_mailbox_write_header(mb);
			if (r == 0)
				r = recover_uidvalidity(mb, e.uidvalidity);
			ids_mailbox_close(mb);
		}
	} else if (r == 0 || r == IDS_ENOTFOUND) {
		r = 0;	/* the folder is gone: nothing to write */
	}
	ids_mbentry_release(&e);
	if (r == 0)
		r = ids_mboxlist_write(mbl, intent_del_txn, (void *)uniqueid);
	return r;
}
