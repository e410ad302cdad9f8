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
 * in uid order.  The writes, each durable before the next:
 *   1. message files of new records linked from staging ("<uid>."),
 *      the directory fsynced (failpoint sync.apply_link);
 *   2. mailboxes.db: the ACL and FOLDERMODSEQ (sync.apply_db);
 *   3. cyrus.header when a user flag or the ACL is new (sync.apply_header);
 *   4. cyrus.index, whole, replaced durably: the commit point of the
 *      records (sync.apply_index, then index's own points);
 *   5. idspool.sync, the fields the index cannot hold (sync.store_write).
 * A crash between two steps leaves a consistent folder whose CRCs do
 * not match what the client believes; the client then sends the whole
 * folder again, which converges: a file already linked at "<uid>." is
 * kept when its bytes hash to the GUID and replaced otherwise (no
 * record above last_uid points to it).  OK is sent only after step 5,
 * and only when the folder's CRCs are the ones the client sent.
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

struct folder {
	struct ids_repl_session *s;
	struct ids_mailbox *mb;
	struct ids_index_header ih;
	struct ids_index_record *rec;	/* sorted by uid */
	size_t n, a;
	struct ids_header h;
	uint32_t hcrc;
	int header_dirty;
	struct ids_sync_store st;
	uint32_t old_last_uid;
	size_t linked;
	int intent;	/* the "sync"/"header" intent is committed */
};

static void
folder_release(struct folder *f)
{
	free(f->rec);
	ids_header_release(&f->h);
	ids_sync_store_release(&f->st);
}

static int
folder_read(struct folder *f)
{
	struct ids_index *idx;
	uint32_t i;
	int r;

	ids_header_init(&f->h);
	ids_sync_store_init(&f->st);
	if ((r = ids_index_open(ids_mailbox_metafd(f->mb, IDS_META_INDEX), &idx)) < 0)
		return r;
	f->ih = *ids_index_header(idx);
	f->n = f->a = f->ih.num_records;
	if (f->n > 0 && (f->rec = calloc(f->n, sizeof(*f->rec))) == NULL)
		r = -ENOMEM;
	for (i = 0; r == 0 && i < f->n; i++)
		r = ids_index_record(idx, i, &f->rec[i]);
	ids_index_free(idx);
	f->old_last_uid = f->ih.last_uid;
	if (r == 0)
		r = ids_header_read(ids_mailbox_metafd(f->mb, IDS_META_HEADER), &f->h, &f->hcrc);
	if (r == 0)
		r = ids_sync_store_read(ids_mailbox_metafd(f->mb, IDS_META_INDEX), &f->st);
	return r;
}

static struct ids_index_record *
find_record(struct folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (f->rec[mid].uid == uid)
			return &f->rec[mid];
		if (f->rec[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
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

static int
add_record(struct folder *f, const struct ids_index_record *rec)
{
	if (f->n == f->a) {
		size_t a = f->a ? 2 * f->a : 16;
		struct ids_index_record *v = realloc(f->rec, a * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		f->rec = v;
		f->a = a;
	}
	f->rec[f->n++] = *rec;
	return 0;
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
	if (ids_guid_file(f->mb->datafd, name, have) == 0) {
		if (memcmp(have, rec->guid, IDS_GUID_LEN) == 0)
			goto done;
		if (unlinkat(f->mb->datafd, name, 0) < 0)
			return -errno;
	}
	if (linkat(AT_FDCWD, path, f->mb->datafd, name, 0) < 0) {
		if (errno != EXDEV && errno != EMLINK && errno != EPERM)
			return ids_error(-errno, "%s: %s", name, strerror(errno));
		if ((r = copy_in(path, f->mb->datafd, name)) < 0)
			return r;
	}
	f->linked++;
done:
	if ((fd = openat(f->mb->datafd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		rec->header_size = file_header_size(fd, rec->size);
		close(fd);
	}
	rec->sentdate = rec->gmtime = (uint64_t)rec->internaldate;
	return 0;
}

/* Cyrus's record checks and merge (sync_mailbox_compare_update). */
static int
merge_one(struct folder *f, const struct ids_dlist *kv)
{
	struct ids_index_record in, *old;
	struct ids_dlist *annots = NULL;
	int r;

	memset(&in, 0, sizeof(in));
	if ((r = parse_record(f, kv, &in, &annots)) < 0)
		goto out;
	old = find_record(f, in.uid);
	if (old != NULL) {
		int oexp = (old->system_flags & IDS_FLAG_EXPUNGED) != 0;
		int iexp = (in.system_flags & IDS_FLAG_EXPUNGED) != 0;

		if (oexp && iexp)
			goto out;
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
	} else if ((r = link_message(f, &in)) == 0 && (r = add_record(f, &in)) == 0) {
		r = ids_sync_store_set_record(&f->st, in.uid, annots);
		annots = NULL;
	}
out:
	ids_dlist_free(annots);
	return r;
}

static int
merge_records(struct folder *f, const struct ids_dlist *records)
{
	const struct ids_dlist *i;
	uint32_t prev = 0;
	int r;

	for (i = records->head; i != NULL; i = i->next) {
		if ((r = merge_one(f, i)) < 0)
			return r;
		if (f->n > 0 && f->rec[f->n - 1].uid < prev)
			return ids_error(IDS_ECORRUPT, "RECORD uids not ascending");
		prev = f->n > 0 ? f->rec[f->n - 1].uid : 0;
	}
	return 0;
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

/* Counts of the header recomputed from the records. */
static void
recount(struct folder *f)
{
	struct ids_index_header *h = &f->ih;
	size_t i;

	h->num_records = (uint32_t)f->n;
	h->exists = h->deleted = h->answered = h->flagged = h->unseen = 0;
	h->quota_mailbox_used = 0;
	for (i = 0; i < f->n; i++) {
		const struct ids_index_record *r = &f->rec[i];

		if (r->system_flags & IDS_FLAG_EXPUNGED)
			continue;
		h->exists++;
		h->quota_mailbox_used += r->size;
		h->deleted += (r->system_flags & IDS_FLAG_DELETED) != 0;
		h->answered += (r->system_flags & IDS_FLAG_ANSWERED) != 0;
		h->flagged += (r->system_flags & IDS_FLAG_FLAGGED) != 0;
		h->unseen += (r->system_flags & IDS_FLAG_SEEN) == 0;
	}
}

/* The whole index image: header and records, in the file's own version. */
static int
format_index(struct folder *f, unsigned char **bufp, size_t *lenp)
{
	size_t start = f->ih.start_offset, rsize = f->ih.record_size;
	size_t len = start + f->n * rsize, i;
	unsigned char *buf = calloc(1, len ? len : 1);
	int r;

	if (buf == NULL)
		return -ENOMEM;
	r = ids_index_format_header(&f->ih, buf, start);
	for (i = 0; r >= 0 && i < f->n; i++)
		r = ids_index_format_record(&f->rec[i], f->ih.minor_version,
		    buf + start + i * rsize, rsize);
	if (r < 0) {
		free(buf);
		return r;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

/* The index image with the sync CRCs of its records in its header. */
static int
write_index(struct folder *f)
{
	struct ids_sync_source src;
	struct ids_index *idx;
	unsigned char *buf;
	size_t len;
	int r;

	recount(f);
	if ((r = format_index(f, &buf, &len)) < 0)
		return r;
	if ((r = ids_index_parse(buf, len, &idx)) == 0) {
		src.entry = &f->mb->entry;
		src.header = &f->h;
		src.index = idx;
		src.store = &f->st;
		r = ids_sync_crcs(&src, &f->ih.synccrc_basic, &f->ih.synccrc_annot);
		ids_index_free(idx);
	}
	if (r == 0)
		r = ids_index_format_header(&f->ih, buf, f->ih.start_offset);
	if (r >= 0 && (r = IDS_FAILPOINT("sync.apply_index")) == 0)
		r = ids_write_durable(ids_mailbox_metafd(f->mb, IDS_META_INDEX),
		    IDS_INDEX_FILE, buf, len, 0600);
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
	    (u->foldermodseq && u->foldermodseq != e.foldermodseq)) {
		u->changed = 1;
		if (u->acl != NULL)
			r = set_acl(&e, u->acl);
		if (u->foldermodseq)
			e.foldermodseq = u->foldermodseq;
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
	struct dbupdate u = { f->mb->entry.uniqueid, f->mb->entry.name, kv_str(kv, "ACL"), 0,
	    f->header_dirty, 0 };
	struct ids_mbentry e;
	int r;

	ids_dlist_get_u64(kv, "FOLDERMODSEQ", &u.foldermodseq);
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

/* Our CRCs of the open folder as it stands (for SINCE_* and the final check). */
static int
folder_crcs(struct ids_mailbox *mb, uint32_t *basic, uint32_t *annot, uint64_t *hms)
{
	struct ids_dlist *kv = NULL;
	int r;

	if ((r = ids_sync_mailbox_state(mb, 0, &kv)) == 0 &&
	    (r = ids_dlist_get_u32(kv, "SYNC_CRC", basic)) == 0 &&
	    (r = ids_dlist_get_u32(kv, "SYNC_CRC_ANNOT", annot)) == 0)
		r = ids_dlist_get_u64(kv, "HIGHESTMODSEQ", hms);
	ids_dlist_free(kv);
	return r;
}

/*
 * Finds the folder of uniqueid at name, creating it when neither
 * exists.  Returns 0, or the refusal already answered (1), or < 0.
 */
static int
find_or_create(struct ids_repl_session *s, const struct ids_dlist *kv, const char *uniqueid,
    const char *name, int *created)
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
			r = ids_mailbox_create_as(s->mbl, &want, NULL);
		ids_acl_free(want.acl, want.nacl);
		*created = r == 0;
	}
	ids_mbentry_release(&byid);
	ids_mbentry_release(&byname);
	if (r == IDS_EDUPID)
		return ids_repl_refuse(s, name, IDS_CSYNC_EMOVED, r) < 0 ? -EIO : 1;
	return r;
}

/* The checks of sync_apply_mailbox before anything is written. */
static int
check_state(struct folder *f, const struct ids_dlist *kv, int created)
{
	uint64_t since = 0, hms = 0;
	uint32_t sb = 0, sa = 0, b, a, uidvalidity = 0;
	int r;

	ids_dlist_get_u64(kv, "SINCE_MODSEQ", &since);
	ids_dlist_get_u32(kv, "SINCE_CRC", &sb);
	ids_dlist_get_u32(kv, "SINCE_CRC_ANNOT", &sa);
	ids_dlist_get_u64(kv, "HIGHESTMODSEQ", &hms);
	ids_dlist_get_u32(kv, "UIDVALIDITY", &uidvalidity);
	if (created)
		return 0;
	if (since && ((r = folder_crcs(f->mb, &b, &a, &hms)) < 0 ||
	    since != hms || sb != b || sa != a))
		return r < 0 ? r : 2;	/* IMAP_SYNC_CHANGED */
	ids_dlist_get_u64(kv, "HIGHESTMODSEQ", &hms);
	if (hms < f->ih.highestmodseq || uidvalidity < f->ih.uidvalidity)
		return ids_error(IDS_ECRC, "highestmodseq or uidvalidity higher here");
	return 0;
}

static int
apply_folder(struct folder *f, const struct ids_dlist *kv, int created)
{
	const struct ids_dlist *records = ids_dlist_get(kv, "RECORD");
	int r;

	if ((r = folder_read(f)) < 0 || (r = check_state(f, kv, created)) != 0)
		return r;
	if (created)
		f->ih.highestmodseq = 0;
	if ((r = merge_records(f, records)) < 0)
		return r;
	if (f->linked > 0 && (r = ids_fsync_dir(f->mb->datafd)) < 0)
		return r;
	if ((r = write_meta(f, kv)) < 0 ||
	    (r = set_header_fields(f, kv)) < 0 ||
	    (r = write_index(f)) < 0 ||
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

int
ids_repl_apply_mailbox(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *uniqueid = kv_str(kv, "UNIQUEID"), *name = kv_str(kv, "MBOXNAME");
	const char *type = kv_str(kv, "MBOXTYPE");
	const struct ids_dlist *records = ids_dlist_get(kv, "RECORD");
	struct folder f;
	uint32_t b = 0, a = 0, wb = 0, wa = 0;
	uint64_t hms;
	int r, created;

	if (kv == NULL || kv->type != IDS_DL_KVLIST || uniqueid == NULL || name == NULL ||
	    kv_str(kv, "PARTITION") == NULL || kv_str(kv, "ACL") == NULL ||
	    kv_str(kv, "OPTIONS") == NULL || records == NULL || records->type != IDS_DL_LIST)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if (type != NULL && *type != '\0' && strcmp(type, "e") != 0)
		return ids_repl_refuse(s, name, IDS_CSYNC_EBADPARAM,
		    ids_error(IDS_EINVAL, "mailbox type '%s' is not replicated here", type));
	if ((r = ids_uniqueid_check(uniqueid)) < 0)
		return ids_repl_refuse(s, name, IDS_CSYNC_EBADPARAM, r);
	if ((r = find_or_create(s, kv, uniqueid, name, &created)) != 0)
		return r > 0 ? 0 : answer(s, name, r);
	memset(&f, 0, sizeof(f));
	f.s = s;
	if ((r = ids_mailbox_open(s->mbl, name, IDS_MAILBOX_WRITE, IDS_LOCK_TIMEOUT_MS, &f.mb)) < 0)
		return answer(s, name, r);
	r = apply_folder(&f, kv, created);
	if (r == 0 && (r = folder_crcs(f.mb, &b, &a, &hms)) == 0) {
		ids_dlist_get_u32(kv, "SYNC_CRC", &wb);
		ids_dlist_get_u32(kv, "SYNC_CRC_ANNOT", &wa);
		if (b != wb || a != wa)
			r = ids_error(IDS_ECRC, "CRCs %u/%u here after the apply, %u/%u sent",
			    b, a, wb, wa);
	}
	ids_mailbox_close(f.mb);
	folder_release(&f);
	if (r != 0)
		return answer(s, name, r);
	ids_repl_log(s, LOG_INFO, "APPLY MAILBOX %s (%s): %s, %zu record(s), %zu file(s) linked",
	    name, uniqueid, created ? "created" : "updated", f.n, f.linked);
	return ids_repl_ok(s, "success");
}

/* --- APPLY EXPUNGE %(MBOXNAME UNIQUEID UID (uids)) --------------------- */

int
ids_repl_apply_expunge(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *name = kv_str(kv, "MBOXNAME"), *uniqueid = kv_str(kv, "UNIQUEID");
	const struct ids_dlist *uids = ids_dlist_get(kv, "UID"), *i;
	struct folder f;
	size_t n = 0;
	int r;

	if (name == NULL || uniqueid == NULL || uids == NULL || uids->type != IDS_DL_LIST)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	memset(&f, 0, sizeof(f));
	f.s = s;
	if ((r = ids_mailbox_open(s->mbl, name, IDS_MAILBOX_WRITE, IDS_LOCK_TIMEOUT_MS, &f.mb)) < 0)
		return answer(s, name, r);
	if (strcmp(f.mb->entry.uniqueid, uniqueid) != 0) {
		ids_mailbox_close(f.mb);
		return ids_repl_refuse(s, name, IDS_CSYNC_EMOVED, ids_error(IDS_EDUPID,
		    "holds uniqueid %s here, not %s", f.mb->entry.uniqueid, uniqueid));
	}
	if ((r = folder_read(&f)) == 0) {
		for (i = uids->head; i != NULL; i = i->next) {
			uint64_t uid;
			struct ids_index_record *rec;

			if (ids_dlist_u64(i, &uid) < 0 || uid > UINT32_MAX ||
			    (rec = find_record(&f, (uint32_t)uid)) == NULL)
				continue;
			rec->system_flags |= IDS_FLAG_EXPUNGED;
			n++;
		}
		r = write_index(&f);
	}
	ids_mailbox_close(f.mb);
	folder_release(&f);
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
	struct ids_index *idx;
	struct ids_index_record rec;
	struct ids_dlist *node = NULL;
	char fname[32], hex[IDS_GUID_HEXLEN + 1];
	uint32_t uid = 0, i;
	int r, found = 0;

	if (name == NULL || guid == NULL ||
	    ids_dlist_get_u32(kv, "UID", &uid) < 0 || uid == 0)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		return answer(s, name, r);
	if ((r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx)) == 0) {
		for (i = 0; i < ids_index_header(idx)->num_records && !found; i++) {
			if (ids_index_record(idx, i, &rec) < 0 || rec.uid != uid)
				continue;
			ids_guid_hex(rec.guid, hex);
			found = strcmp(hex, guid) == 0;
		}
		ids_index_free(idx);
	}
	snprintf(fname, sizeof(fname), "%u.", uid);
	if (r == 0 && !found)
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
		/* the lock is the recovery's: the header from the record, its CRC */
		if ((r = ids_mailbox_open(mbl, e.name, IDS_MAILBOX_WRITE | IDS_MAILBOX_NOLOCK, 0,
		    &mb)) == 0) {
			r = ids_mailbox_write_header(mb);
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
