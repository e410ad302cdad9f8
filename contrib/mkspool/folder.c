/*
 * folder.c - writing one folder of a generated legacy spool.
 *
 * The folder's directories come from the resolver (layout.h) in the
 * legacy layout: its data directory inside its parent's, and for each
 * meta file the directory under the metapartition root when
 * metapartition_files names it.  Message files "<uid>." are written
 * with writev(2) and closed, never fsynced (the caller syncs the file
 * system once at the end); cyrus.index is built in one buffer with the
 * index encoders (index.h) and written with one write(2).
 *
 * What a folder holds: UIDs rising with small gaps, internal dates
 * spread from the folder's creation to "now", \Seen on almost every
 * older message, some \Answered, \Flagged and \Deleted, per-folder user
 * flags, about 3% expunged records whose file is still there (delayed
 * expunge) and 2% expunged and unlinked ones whose file is gone (ten
 * times more in Trash and Junk), and 1% copies of an earlier message of
 * the same owner, hard-linked as Cyrus's single-instance store does.
 *
 * cyrus.header is written as Cyrus 3.6 writes it (the dlist keys in its
 * order: T N I Q A U) or, for some older folders, in the three-line
 * format of Cyrus <= 3.4.  cyrus.cache is the 4-byte generation number
 * only: the records point at no cache entry.  The mailboxes.db records
 * (legacy 'l' entries, tombstones at the names that DELETED and renamed
 * folders had, and their one-item name history) are queued on the
 * spool and written in batches by spool_flush().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "config.h"
#include "dlist.h"
#include "error.h"
#include "header.h"
#include "index.h"
#include "layout.h"
#include "mboxlist.h"
#include "mkspool.h"
#include "tool.h"

#define RIGHTS_OWNER	"lrswipkxtecdan"
#define NMETA		3	/* cyrus.header, cyrus.index, cyrus.cache */

static const enum ids_metafile meta_kinds[NMETA] = {
	IDS_META_HEADER, IDS_META_INDEX, IDS_META_CACHE,
};
static const char *const user_flags[] = {
	"$Forwarded", "NonJunk", "$Junk", "$NotJunk", "$MDNSent", "$label1",
	"$label2", "Old", "$Phishing", "Follow-up",
};

/* A folder being written: its directories and what its index counts. */
struct fwrite {
	struct spool *sp;
	const struct owner *o;
	const struct folder *f;
	struct rng *r;
	struct ids_location loc;
	struct ids_mbname mb;
	char datadir[PATH_MAX];
	int datafd;
	int metafd[NMETA];
	char list[64];		/* FK_LIST: the list's name */
	const char *flags[4];	/* user flag names, by bit */
	unsigned nflags;
	struct ids_index_header h;
	uint64_t changes;	/* records changed after their append */
	char linksrc[PATH_MAX];	/* this folder's last file, for later copies */
	struct msg linkmsg;
};

/* --- directories -------------------------------------------------------- */

int
mkdir_p(char *path)
{
	char *slash;
	int r;

	if (mkdir(path, 0750) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT || (slash = strrchr(path, '/')) == NULL || slash == path)
		return ids_errno();
	*slash = '\0';
	r = mkdir_p(path);
	*slash = '/';
	if (r < 0)
		return r;
	if (mkdir(path, 0750) == 0 || errno == EEXIST)
		return 0;
	return ids_errno();
}

static int
open_dir(char *path, int *fdp)
{
	int r;

	if ((r = mkdir_p(path)) < 0)
		return tool_error(r, path);
	if ((*fdp = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return tool_error(ids_errno(), path);
	return 0;
}

/*
 * Opens (creating them) the data directory and the directory of each
 * meta file; kinds that share a directory share its descriptor.
 */
static int
open_dirs(struct fwrite *w)
{
	const struct ids_config *cfg = w->sp->cfg;
	char meta[NMETA][PATH_MAX];
	int i, j, r;

	if ((r = ids_path_datadir(cfg, &w->loc, w->datadir, sizeof(w->datadir))) < 0)
		return tool_error(r, w->f->name);
	if ((r = open_dir(w->datadir, &w->datafd)) < 0)
		return r;
	for (i = 0; i < NMETA; i++) {
		if ((r = ids_path_metadir(cfg, &w->loc, meta_kinds[i], meta[i],
		    sizeof(meta[i]))) < 0)
			return tool_error(r, w->f->name);
		w->metafd[i] = strcmp(meta[i], w->datadir) == 0 ? w->datafd : -1;
		for (j = 0; j < i && w->metafd[i] < 0; j++)
			if (strcmp(meta[i], meta[j]) == 0)
				w->metafd[i] = w->metafd[j];
		if (w->metafd[i] < 0 && (r = open_dir(meta[i], &w->metafd[i])) < 0)
			return r;
	}
	return 0;
}

static void
close_dirs(struct fwrite *w)
{
	int i, j, shared;

	for (i = 0; i < NMETA; i++) {
		shared = w->metafd[i] < 0 || w->metafd[i] == w->datafd;
		for (j = 0; j < i; j++)
			shared |= w->metafd[j] == w->metafd[i];
		if (!shared)
			close(w->metafd[i]);
	}
	if (w->datafd >= 0)
		close(w->datafd);
}

/* --- files --------------------------------------------------------------- */

/* Writes all of iov (which it consumes), restarting after short writes. */
static int
write_iov(int fd, struct iovec *iov, int n)
{
	ssize_t got;

	while (n > 0) {
		if ((got = writev(fd, iov, n)) < 0) {
			if (errno == EINTR)
				continue;
			return ids_errno();
		}
		while (n > 0 && (size_t)got >= iov->iov_len) {
			got -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + got;
			iov->iov_len -= (size_t)got;
		}
	}
	return 0;
}

/* Creates name in dirfd (replacing it with --force) and writes iov to it. */
static int
write_file(struct fwrite *w, int dirfd, const char *name, struct iovec *iov, int n)
{
	int fd, r;

	if (w->sp->force && unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return ids_errno();
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return ids_errno();
	r = write_iov(fd, iov, n);
	if (close(fd) < 0 && r == 0)
		r = ids_errno();
	return r;
}

/* The same, for one buffer; reports failures as <dir>/<name>. */
static int
write_meta(struct fwrite *w, int kind, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };
	const char *name = ids_metafile_name(meta_kinds[kind]);
	char path[PATH_MAX];
	int r;

	if ((r = write_file(w, w->metafd[kind], name, &v, 1)) == 0)
		return 0;
	if (ids_path_metafile(w->sp->cfg, &w->loc, meta_kinds[kind], path,
	    sizeof(path)) < 0)
		return tool_error(r, w->f->name);
	return tool_error(r, path);
}

/* --- messages and index records -------------------------------------- */

/* The first folder with three messages shows both kinds of expunge. */
static uint32_t
force_flags(struct fwrite *w, uint32_t i, uint32_t fl)
{
	struct spool *sp = w->sp;

	if (w->f->nmsgs < 3 || (sp->forced & FORCE_UNLINKED))
		return fl;
	if (i == 1) {
		sp->forced |= FORCE_EXPUNGED;
		return (fl & ~IDS_FLAG_UNLINKED) | IDS_FLAG_EXPUNGED | IDS_FLAG_DELETED;
	}
	if (i == 2) {
		sp->forced |= FORCE_UNLINKED;
		return fl | IDS_FLAG_EXPUNGED | IDS_FLAG_UNLINKED | IDS_FLAG_DELETED;
	}
	return fl;
}

/* The system flags of record i, appended at t. */
static uint32_t
pick_flags(struct fwrite *w, uint32_t i, int64_t t)
{
	const struct folder *f = w->f;
	struct rng *r = w->r;
	unsigned bin = f->kind == FK_TRASH || f->kind == FK_JUNK, x;
	uint32_t fl = 0;

	if (f->kind == FK_SENT || f->kind == FK_DRAFTS ||
	    rng_chance(r, t < w->sp->now - 30 * DAY ? 970 : 450))
		fl |= IDS_FLAG_SEEN;
	if (f->kind == FK_DRAFTS)
		fl |= IDS_FLAG_DRAFT;
	if (f->kind == FK_INBOX && rng_chance(r, 80))
		fl |= IDS_FLAG_ANSWERED;
	if (rng_chance(r, 30))
		fl |= IDS_FLAG_FLAGGED;
	if (rng_chance(r, 5))
		fl |= IDS_FLAG_DELETED;
	x = rng_below(r, 1000);
	if (x < (bin ? 100u : 20u))
		fl |= IDS_FLAG_EXPUNGED | IDS_FLAG_UNLINKED | IDS_FLAG_DELETED;
	else if (x < (bin ? 200u : 50u))
		fl |= IDS_FLAG_EXPUNGED | IDS_FLAG_DELETED;
	return force_flags(w, i, fl);
}

/* Counts rec into the index header, as Cyrus does for unexpunged records. */
static void
count_record(struct ids_index_header *h, const struct ids_index_record *rec)
{
	h->num_records++;
	if (rec->system_flags & IDS_FLAG_EXPUNGED) {
		if (h->first_expunged == 0 || rec->last_updated < h->first_expunged)
			h->first_expunged = rec->last_updated;
		return;
	}
	h->exists++;
	h->quota_mailbox_used += rec->size;
	h->deleted += !!(rec->system_flags & IDS_FLAG_DELETED);
	h->answered += !!(rec->system_flags & IDS_FLAG_ANSWERED);
	h->flagged += !!(rec->system_flags & IDS_FLAG_FLAGGED);
	h->unseen += !(rec->system_flags & IDS_FLAG_SEEN);
}

/* When a changed record was last changed: expunges wait for cyr_expire. */
static int64_t
change_time(struct fwrite *w, uint32_t fl, int64_t t)
{
	int64_t now = w->sp->now;

	if ((fl & IDS_FLAG_EXPUNGED) && !(fl & IDS_FLAG_UNLINKED))
		return rng_between(w->r, t > now - 6 * DAY ? t : now - 6 * DAY, now);
	return rng_between(w->r, t, now - 7 * DAY);
}

static int
add_record(struct fwrite *w, uint32_t uid, int64_t t, const struct msg *m,
    uint32_t fl, uint32_t i)
{
	struct ids_index_record rec;
	unsigned b;
	int r;

	memset(&rec, 0, sizeof(rec));
	rec.uid = uid;
	rec.internaldate = t;
	rec.sentdate = (uint64_t)m->sentdate;
	rec.size = m->size;
	rec.header_size = m->header_size;
	rec.gmtime = rec.last_updated = rec.savedate = (uint64_t)t;
	rec.system_flags = fl;
	for (b = 0; b < w->nflags; b++)
		if (rng_chance(w->r, 100))
			rec.user_flags[0] |= 1u << b;
	memcpy(rec.guid, m->guid, IDS_GUID_LEN);
	rec.createdmodseq = rec.modseq = w->h.createdmodseq + 1 + i;
	if (fl & ~(uint32_t)IDS_FLAG_SEEN || rec.user_flags[0]) {
		rec.modseq = w->h.createdmodseq + w->f->nmsgs + ++w->changes;
		rec.last_updated = (uint64_t)change_time(w, fl, t);
	}
	count_record(&w->h, &rec);
	r = ids_index_format_record(&rec, 17, w->sp->ibuf + IDS_INDEX_V17_HEADER +
	    (size_t)i * IDS_INDEX_V17_RECORD, IDS_INDEX_V17_RECORD);
	return r < 0 ? tool_error(r, w->f->name) : 0;
}

/* Hard-links the owner's last message file as name, as a COPY would. */
static int
link_copy(struct fwrite *w, const char *name, struct msg *m)
{
	struct spool *sp = w->sp;

	if (sp->force && unlinkat(w->datafd, name, 0) < 0 && errno != ENOENT)
		return ids_errno();
	if (linkat(AT_FDCWD, sp->linksrc, w->datafd, name, 0) < 0)
		return ids_errno();
	*m = sp->linkmsg;
	sp->forced |= FORCE_LINK;
	sp->st.links++;
	return 0;
}

/* Makes message i, writes its file (unless unlinked) and remembers it. */
static int
new_message(struct fwrite *w, uint32_t uid, const char *name, int64_t t,
    uint32_t fl, struct msg *m)
{
	struct spool *sp = w->sp;
	struct msgspec spec = { w->o, w->f->kind, w->list[0] ? w->list : NULL, t,
	    !(sp->forced & FORCE_ATTACH) && sp->st.messages == 4 };
	int r;

	if ((r = msggen_make(sp->mg, w->r, &spec, m)) < 0)
		return r;
	if (m->attachment) {
		sp->forced |= FORCE_ATTACH;
		sp->st.attachments++;
	}
	if (fl & IDS_FLAG_UNLINKED)
		return 0;
	if ((r = write_file(w, w->datafd, name, m->iov, m->niov)) < 0)
		return r;
	sp->st.bytes += m->size;
	sp->st.part[w->o->partition].bytes += m->size;
	if (m->size > sp->st.largest)
		sp->st.largest = m->size;
	if (ids_path_message(w->sp->cfg, &w->loc, uid, w->linksrc,
	    sizeof(w->linksrc)) < 0)
		w->linksrc[0] = '\0';
	w->linkmsg = *m;
	w->linkmsg.niov = 0;
	return 0;
}

static int
write_message(struct fwrite *w, uint32_t uid, int64_t t, uint32_t i)
{
	struct spool *sp = w->sp;
	uint32_t fl = pick_flags(w, i, t);
	char name[16], path[PATH_MAX];
	struct msg m;
	int r;

	if (snprintf(name, sizeof(name), "%u.", uid) >= (int)sizeof(name))
		return tool_error(IDS_ETOOLONG, w->f->name);
	if (!(fl & IDS_FLAG_UNLINKED) && sp->linksrc[0] &&
	    (!(sp->forced & FORCE_LINK) || rng_chance(w->r, 10)))
		r = link_copy(w, name, &m);
	else
		r = new_message(w, uid, name, t, fl, &m);
	if (r < 0) {
		if (ids_path_message(sp->cfg, &w->loc, uid, path, sizeof(path)) < 0)
			return tool_error(r, w->f->name);
		return tool_error(r, path);
	}
	sp->st.messages++;
	sp->st.expunged += !!(fl & IDS_FLAG_EXPUNGED);
	sp->st.unlinked += !!(fl & IDS_FLAG_UNLINKED);
	sp->st.files += !(fl & IDS_FLAG_UNLINKED);
	sp->st.part[w->o->partition].files += !(fl & IDS_FLAG_UNLINKED);
	return add_record(w, uid, t, &m, fl, i);
}

/* Every message of the folder, internal dates spread up to its end. */
static int
write_messages(struct fwrite *w)
{
	const struct folder *f = w->f;
	int64_t end = (f->flags & FF_DELETED) ? f->changed : w->sp->now, gap, t = 0;
	uint32_t uid = 0, i;
	int r;

	gap = (end - f->created) / ((int64_t)f->nmsgs + 1);
	if (gap < 2)
		gap = 2;
	for (i = 0; i < f->nmsgs; i++) {
		t = f->created + gap * (i + 1) - rng_below(w->r, (uint32_t)(gap / 2));
		uid += 1 + (rng_chance(w->r, 100) ? rng_below(w->r, 5) : 0);
		if ((r = write_message(w, uid, t, i)) < 0)
			return r;
	}
	w->h.highestmodseq = w->h.createdmodseq + f->nmsgs + w->changes;
	if (w->h.highestmodseq == 0)
		w->h.highestmodseq = 1;
	w->h.last_uid = uid + (rng_chance(w->r, 50) ? 1 + rng_below(w->r, 3) : 0);
	w->h.last_appenddate = (uint64_t)t;
	w->h.recentuid = w->h.last_uid;
	w->h.recenttime = (uint64_t)t;
	return 0;
}

/* --- mailboxes.db records ---------------------------------------------- */

static int
set_acl(struct fwrite *w, struct ids_mbentry *e)
{
	const struct owner *o = w->o;
	int r = 0;

	if (o->is_user) {
		r = ids_acl_set(&e->acl, &e->nacl, o->userid, RIGHTS_OWNER);
		if (r == 0 && (w->f->flags & FF_COLLEAGUE))
			r = ids_acl_set(&e->acl, &e->nacl, o->colleague, "lrs");
		if (r == 0 && w->f->kind == FK_LIST)
			r = ids_acl_set(&e->acl, &e->nacl, "anyone", "p");
		return r;
	}
	r = ids_acl_set(&e->acl, &e->nacl, "anyone", "lrs");
	if (r == 0)
		r = ids_acl_set(&e->acl, &e->nacl, "group:staff", "lrswipkxtecdn");
	return r;
}

/* The one history item of a DELETED or renamed folder: its old name. */
static int
set_history(struct fwrite *w, struct ids_mbentry *e)
{
	const struct folder *f = w->f;
	struct ids_history *h;

	if ((e->history = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	h = e->history;
	e->nhistory = 1;
	h->mtime = f->changed;
	h->uidvalidity = f->uidvalidity;
	h->createdmodseq = e->createdmodseq;
	h->foldermodseq = e->createdmodseq;
	memcpy(h->mbtype, "el", 3);
	h->name = strdup(f->oldname);
	h->partition = strdup(e->partition);
	return h->name && h->partition ? 0 : -ENOMEM;
}

/* The live record: type "el" (email, legacy directories). */
static int
make_entry(struct fwrite *w, struct ids_mbentry *e)
{
	const struct folder *f = w->f;
	int moved = (f->flags & (FF_DELETED | FF_RENAMED)) != 0;

	ids_mbentry_init(e);
	memcpy(e->mbtype, "el", 3);
	e->name = strdup(f->name);
	e->uniqueid = strdup(f->uniqueid);
	e->partition = strdup(w->loc.partition);
	if (e->name == NULL || e->uniqueid == NULL || e->partition == NULL)
		return -ENOMEM;
	e->uidvalidity = f->uidvalidity;
	e->createdmodseq = w->h.createdmodseq;
	e->foldermodseq = moved ? w->h.highestmodseq : w->h.createdmodseq;
	e->mtime = moved ? f->changed : f->created;
	if (set_acl(w, e) < 0 || (moved && set_history(w, e) < 0))
		return -ENOMEM;
	return 0;
}

/* The tombstone left at the name a DELETED or renamed folder had. */
static int
make_tombstone(const struct ids_mbentry *live, struct ids_mbentry *t)
{
	ids_mbentry_init(t);
	memcpy(t->mbtype, "edl", 4);
	t->name = strdup(live->history[0].name);
	t->uniqueid = strdup(live->uniqueid);
	if (t->name == NULL || t->uniqueid == NULL)
		return -ENOMEM;
	t->uidvalidity = live->uidvalidity;
	t->createdmodseq = live->createdmodseq;
	t->foldermodseq = live->foldermodseq;
	t->mtime = live->mtime;
	return 0;
}

static int
queue_entry(struct spool *sp, struct ids_mbentry **ep)
{
	struct ids_mbentry *nb;

	if (sp->nbatch == sp->abatch) {
		sp->abatch = sp->abatch ? 2 * sp->abatch : 256;
		if ((nb = realloc(sp->batch, sp->abatch * sizeof(*nb))) == NULL)
			return -ENOMEM;
		sp->batch = nb;
	}
	*ep = &sp->batch[sp->nbatch++];
	return 0;
}

/* Queues the folder's records; *live is set to the live one. */
static int
queue_entries(struct fwrite *w, const struct ids_mbentry **live)
{
	struct spool *sp = w->sp;
	struct ids_mbentry *e, *t;
	int r;

	if ((r = queue_entry(sp, &e)) < 0)
		return tool_error(r, w->f->name);
	if ((r = make_entry(w, e)) < 0)
		return tool_error(r, w->f->name);
	*live = e;
	if (e->nhistory == 0)
		return 0;
	if ((r = queue_entry(sp, &t)) < 0)
		return tool_error(r, w->f->name);
	*live = &sp->batch[sp->nbatch - 2];	/* the queue may have moved */
	if ((r = make_tombstone(*live, t)) < 0)
		return tool_error(r, w->f->name);
	sp->st.tombstones++;
	return 0;
}

static int
put_batch(struct ids_txn *txn, void *rock)
{
	struct spool *sp = rock;
	size_t i;
	int r;

	for (i = 0; i < sp->nbatch; i++)
		if ((r = ids_txn_put(txn, &sp->batch[i])) < 0)
			return r;
	return 0;
}

int
spool_flush(struct spool *sp)
{
	size_t i;
	int r;

	if (sp->nbatch == 0)
		return 0;
	r = ids_mboxlist_write(sp->mbl, put_batch, sp);
	if (r < 0)
		tool_error(r, ids_mboxlist_path(sp->mbl));
	for (i = 0; i < sp->nbatch; i++)
		ids_mbentry_release(&sp->batch[i]);
	sp->nbatch = 0;
	return r;
}

/* --- cyrus.header, cyrus.index, cyrus.cache --------------------------- */

/* Cyrus 3.6's line: %(T e N name I id [Q root] [A %(id rights...)] [U (flags)]) */
static int
header_dlist(struct fwrite *w, const struct ids_mbentry *e, const char *name,
    const char *qroot, struct ids_buf *out)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist(), *acl = NULL, *u = NULL;
	int r = kv ? 0 : -ENOMEM;
	size_t i;

	if (r == 0 && (r = ids_dlist_add_atom(kv, "T", "e")) == 0 &&
	    (r = ids_dlist_add_atom(kv, "N", name)) == 0 &&
	    (r = ids_dlist_add_atom(kv, "I", e->uniqueid)) == 0 && qroot)
		r = ids_dlist_add_atom(kv, "Q", qroot);
	if (r == 0 && e->nacl)
		r = ids_dlist_add_kvlist(kv, "A", &acl);
	for (i = 0; r == 0 && i < e->nacl; i++)
		r = ids_dlist_add_atom(acl, e->acl[i].id, e->acl[i].rights);
	if (r == 0 && w->nflags)
		r = ids_dlist_add_list(kv, "U", &u);
	for (i = 0; r == 0 && i < w->nflags; i++)
		r = ids_dlist_add_atom(u, NULL, w->flags[i]);
	if (r == 0 && (r = ids_buf_add(out, IDS_HEADER_MAGIC, IDS_HEADER_MAGIC_LEN)) == 0 &&
	    (r = ids_dlist_print(kv, out)) == 0)
		r = ids_buf_addch(out, '\n');
	ids_dlist_free(kv);
	return r;
}

/* Cyrus <= 3.4: "root\tid", the flag names each with a space, "id\trights\t"... */
static void
header_old(struct fwrite *w, const struct ids_mbentry *e, const char *qroot,
    struct ids_buf *out)
{
	size_t i;

	ids_buf_add(out, IDS_HEADER_MAGIC, IDS_HEADER_MAGIC_LEN);
	ids_buf_printf(out, "%s\t%s\n", qroot ? qroot : "", e->uniqueid);
	for (i = 0; i < w->nflags; i++)
		ids_buf_printf(out, "%s ", w->flags[i]);
	ids_buf_addch(out, '\n');
	for (i = 0; i < e->nacl; i++)
		ids_buf_printf(out, "%s\t%s\t", e->acl[i].id, e->acl[i].rights);
	ids_buf_addch(out, '\n');
}

static int
write_header(struct fwrite *w, const struct ids_mbentry *e)
{
	const struct folder *f = w->f;
	const char *qroot = w->o->quota && !(f->flags & FF_DELETED) ? w->o->prefix : NULL;
	struct ids_buf b = IDS_BUF_INIT;
	int r = 0;

	if (f->flags & FF_OLDHEADER)
		header_old(w, e, qroot, &b);
	else
		r = header_dlist(w, e, (f->flags & FF_STALEHDR) ? f->oldname : f->name,
		    qroot, &b);
	if (r == 0)
		r = ids_buf_oom(&b);
	if (r < 0) {
		ids_buf_release(&b);
		return tool_error(r, f->name);
	}
	w->h.header_file_crc = (uint32_t)crc32(0L, (const Bytef *)b.s, (uInt)b.len);
	r = write_meta(w, 0, b.s, b.len);
	ids_buf_release(&b);
	w->sp->st.old_headers += !!(f->flags & FF_OLDHEADER);
	return r;
}

static int
write_index(struct fwrite *w)
{
	struct ids_index_header *h = &w->h;
	int r;

	if ((r = ids_index_format_header(h, w->sp->ibuf, IDS_INDEX_V17_HEADER)) < 0)
		return tool_error(r, w->f->name);
	return write_meta(w, 1, w->sp->ibuf, IDS_INDEX_V17_HEADER +
	    (size_t)h->num_records * IDS_INDEX_V17_RECORD);
}

static int
write_cache(struct fwrite *w)
{
	unsigned char gen[4];
	uint32_t g = w->h.generation_no;

	gen[0] = (unsigned char)(g >> 24);
	gen[1] = (unsigned char)(g >> 16);
	gen[2] = (unsigned char)(g >> 8);
	gen[3] = (unsigned char)g;
	return write_meta(w, 2, gen, sizeof(gen));
}

/* --- one folder ------------------------------------------------------------ */

/* Room for the index image; the folder's user flags; its index header. */
static int
fwrite_init(struct fwrite *w)
{
	size_t need = IDS_INDEX_V17_HEADER + (size_t)w->f->nmsgs * IDS_INDEX_V17_RECORD;
	struct spool *sp = w->sp;
	const char *leaf = strrchr(w->f->name, '.');
	unsigned first = rng_below(w->r, 10), i;
	unsigned char *nb;

	if (need > sp->ibufsize) {
		if ((nb = realloc(sp->ibuf, need)) == NULL)
			return tool_error(-ENOMEM, w->f->name);
		sp->ibuf = nb;
		sp->ibufsize = need;
	}
	w->nflags = rng_chance(w->r, 400) ? 1 + rng_below(w->r, 4) : 0;
	for (i = 0; i < w->nflags; i++)
		w->flags[i] = user_flags[(first + i) % 10];
	if (w->f->kind == FK_LIST && leaf &&
	    snprintf(w->list, sizeof(w->list), "%.*s", (int)strcspn(leaf + 1, " "),
	    leaf + 1) >= (int)sizeof(w->list))
		w->list[0] = '\0';	/* not a list name after all */
	w->h.generation_no = 1 + rng_below(w->r, 40);
	w->h.minor_version = 17;
	w->h.start_offset = IDS_INDEX_V17_HEADER;
	w->h.record_size = IDS_INDEX_V17_RECORD;
	w->h.uidvalidity = w->f->uidvalidity;
	w->h.createdmodseq = w->f->uniqueid[16] == '\0' ? 0 : 1;	/* 2.x had none */
	return 0;
}

static int
fwrite_open(struct fwrite *w)
{
	int r;

	w->datafd = w->metafd[0] = w->metafd[1] = w->metafd[2] = -1;
	if ((r = ids_mbname_parse_internal(&w->mb, w->f->name, IDS_MBNAME_STRICT)) < 0)
		return tool_error(r, w->f->name);
	w->loc.name = &w->mb;
	w->loc.uniqueid = w->f->uniqueid;
	w->loc.partition = w->sp->cfg->partitions[w->o->partition].name;
	w->loc.layout = IDS_LAYOUT_LEGACY;
	if ((r = fwrite_init(w)) < 0)
		return r;
	return open_dirs(w);
}

static void
count_folder(struct spool *sp, const struct owner *o, const struct folder *f)
{
	sp->st.folders++;
	sp->st.shared_folders += !o->is_user;
	sp->st.deleted_folders += !!(f->flags & FF_DELETED);
	sp->st.renamed += !!(f->flags & FF_RENAMED);
	sp->st.part[o->partition].folders++;
	sp->st.part[o->partition].messages += f->nmsgs;
	if (f->uniqueid[16] == '\0')
		sp->st.ids_16++;
	else if (f->uniqueid[24] == '\0')
		sp->st.ids_24++;
	else
		sp->st.ids_uuid++;
}

int
folder_write(struct spool *sp, const struct owner *o, const struct folder *f,
    struct rng *r)
{
	struct fwrite w;
	const struct ids_mbentry *e = NULL;
	int ret;

	memset(&w, 0, sizeof(w));
	w.sp = sp;
	w.o = o;
	w.f = f;
	w.r = r;
	if (sp->linkowner != o->index)
		sp->linksrc[0] = '\0';
	sp->linkowner = o->index;
	if ((ret = fwrite_open(&w)) == 0 && (ret = write_messages(&w)) == 0 &&
	    (ret = queue_entries(&w, &e)) == 0 && (ret = write_header(&w, e)) == 0 &&
	    (ret = write_index(&w)) == 0)
		ret = write_cache(&w);
	close_dirs(&w);
	if (ret == 0 && w.linksrc[0]) {
		memcpy(sp->linksrc, w.linksrc, sizeof(sp->linksrc));
		sp->linkmsg = w.linkmsg;
	}
	if (ret == 0)
		count_folder(sp, o, f);
	return ret;
}
