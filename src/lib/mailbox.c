/*
 * mailbox.c - open, create, delete and deliver to a folder (mailbox.h).
 *
 * Each operation keeps the lock order of lock.h and the intent protocol
 * of intent.h:
 *
 *   create   namespace lock, mailbox lock of the new id; intent
 *            "create" committed; directory, cyrus.header, cyrus.index
 *            made durable; the N and I records put and the intent
 *            removed in one transaction (the commit point).  A crash
 *            before it leaves files no record points to: recovery
 *            removes them.
 *   delete   namespace and mailbox locks; tombstone put and intent
 *            "delete" added in one transaction (the commit point); the
 *            files removed; the intent removed.  Recovery finishes the
 *            removal.
 *   deliver  mailbox lock; the message file written and fsynced; the
 *            index record appended durably (the commit point).  A crash
 *            before it leaves a file no record names, which the next
 *            delivery with that uid replaces: the message was never
 *            accepted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "lock.h"
#include "mailbox.h"
#include "tombstones.h"
#include "userfiles.h"
#include "sync/sync.h"
#include "mboxlist.h"
#include "mboxname.h"

/* --- files of a folder ----------------------------------------------- */

int
ids_folder_classify(const char *name, uint32_t *uidp)
{
	const char *p = name;
	unsigned long long uid = 0;
	size_t len = strlen(name);

	if (len > 4 && strcmp(name + len - 4, ".NEW") == 0)
		return IDS_FILE_TEMP;
	if (name[0] >= '1' && name[0] <= '9') {
		while (*p >= '0' && *p <= '9' && uid <= UINT32_MAX)
			uid = uid * 10 + (unsigned)(*p++ - '0');
		if (p[0] == '.' && p[1] == '\0' && uid <= UINT32_MAX) {
			if (uidp)
				*uidp = (uint32_t)uid;
			return IDS_FILE_MESSAGE;
		}
		return IDS_FILE_OTHER;
	}
	/* a replica's record of the folder goes where the folder goes */
	if (ids_metafile_kind(name) >= 0 || strcmp(name, IDS_SYNC_FILE) == 0)
		return IDS_FILE_META;
	return IDS_FILE_OTHER;
}

/* Opens the folder's data (and meta) directories below their roots. */
static int
open_dirs(const struct ids_config *cfg, const struct ids_location *loc, int flags,
    int *datafd, int *metafd)
{
	const struct ids_partition *part = ids_config_partition(cfg, loc->partition);
	char rel[PATH_MAX];
	int r, root;

	*datafd = *metafd = -1;
	if (part == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s' is not configured",
		    loc->partition ? loc->partition : "(default)");
	if ((r = ids_path_reldir(cfg, loc, rel, sizeof(rel))) < 0)
		return r;
	if ((r = ids_opendir_abs(part->path, &root)) < 0)
		return ids_error(r, "%s: %s", part->path, ids_strerror(r));
	r = ids_opendir_beneath(root, rel, flags, datafd);
	close(root);
	if (r < 0 || part->metapath == NULL || cfg->metapartition_files == 0)
		return r < 0 ? ids_error(r, "%s/%s: %s", part->path, rel, ids_errmsg(r)) : 0;
	if ((r = ids_opendir_abs(part->metapath, &root)) < 0)
		return ids_error(r, "%s: %s", part->metapath, ids_strerror(r));
	r = ids_opendir_beneath(root, rel, flags, metafd);
	close(root);
	if (r < 0) {
		close(*datafd);
		*datafd = -1;
		return ids_error(r, "%s/%s: %s", part->metapath, rel, ids_errmsg(r));
	}
	return 0;
}

int
ids_mailbox_metafd(const struct ids_mailbox *mb, enum ids_metafile kind)
{
	const struct ids_config *cfg = ids_mboxlist_config(mb->mbl);

	if (mb->metafd >= 0 && (cfg->metapartition_files & (1u << kind)))
		return mb->metafd;
	return mb->datafd;
}

/* --- open ------------------------------------------------------------ */

static int
lookup_live(struct ids_mboxlist *mbl, const char *name, struct ids_mbentry *e)
{
	int r = ids_mboxlist_lookup(mbl, name, e);

	if (r == 0 && ids_mbentry_is_tombstone(e))
		r = ids_error(IDS_ENOTFOUND, "%s: no such mailbox (deleted or renamed)", name);
	return r;
}

int
ids_mailbox_open(struct ids_mboxlist *mbl, const char *name, int flags,
    int timeout_ms, struct ids_mailbox **mbp)
{
	struct ids_mailbox *mb;
	struct ids_mbentry first;
	int r, lflags = (flags & IDS_MAILBOX_WRITE) ? 0 : IDS_LOCK_SHARED;

	if ((mb = calloc(1, sizeof(*mb))) == NULL)
		return -ENOMEM;
	mb->mbl = mbl;
	mb->datafd = mb->metafd = -1;
	ids_mbentry_init(&mb->entry);
	ids_mbentry_init(&first);
	if ((r = lookup_live(mbl, name, &first)) < 0)
		goto fail;
	if (!(flags & IDS_MAILBOX_NOLOCK) &&
	    (r = ids_lock_mailbox(ids_mboxlist_config(mbl), first.uniqueid, lflags,
	    timeout_ms, &mb->lock)) < 0)
		goto fail;
	/* Under the lock: the record may have moved (renamed, migrated). */
	if ((r = lookup_live(mbl, name, &mb->entry)) < 0)
		goto fail;
	if (strcmp(mb->entry.uniqueid, first.uniqueid) != 0) {
		r = ids_error(IDS_EBUSY, "%s: replaced while opening", name);
		goto fail;
	}
	if ((r = ids_location_from_entry(&mb->entry, &mb->mbname, &mb->loc)) < 0 ||
	    (!(flags & IDS_MAILBOX_NODIRS) &&
	    (r = open_dirs(ids_mboxlist_config(mbl), &mb->loc, 0, &mb->datafd,
	    &mb->metafd)) < 0))
		goto fail;
	ids_mbentry_release(&first);
	*mbp = mb;
	return 0;
fail:
	ids_mbentry_release(&first);
	ids_mailbox_close(mb);
	return r;
}

/* --- create ---------------------------------------------------------- */

struct create {
	struct ids_mbentry *e;	/* the new record */
	int exact;		/* a replica's create: the UIDVALIDITY given is kept */
	struct ids_intent in;
	const char *rel;
};

static int
create_begin_txn(struct ids_txn *txn, void *rock)
{
	struct create *c = rock;
	struct ids_mbentry old;
	int r;

	ids_mbentry_init(&old);
	r = ids_txn_lookup_name(txn, c->e->name, &old);
	if (r == 0 && !ids_mbentry_is_tombstone(&old))
		r = ids_error(IDS_EEXIST, "%s: mailbox already exists", c->e->name);
	else if (r == 0 && !c->exact && old.uidvalidity >= c->e->uidvalidity &&
	    (old.uniqueid == NULL || strcmp(old.uniqueid, c->e->uniqueid) != 0))
		c->e->uidvalidity = old.uidvalidity + 1;
	else if (r == IDS_ENOTFOUND)
		r = 0;
	ids_mbentry_release(&old);
	/*
	 * A uniqueid whose folder was deleted here may be made again (a
	 * replica given back what its master still has), with its own
	 * UIDVALIDITY: it is the same folder, with the same UIDs.
	 */
	if (r == 0 && (r = ids_txn_lookup_id(txn, c->e->uniqueid, &old)) == 0 &&
	    !ids_mbentry_is_tombstone(&old))
		r = ids_error(IDS_EDUPID, "uniqueid %s is in use", c->e->uniqueid);
	else if (r == IDS_ENOTFOUND || r == 0)
		r = 0;
	ids_mbentry_release(&old);
	return r < 0 ? r : ids_intent_put(txn, c->e->uniqueid, &c->in);
}

static int
create_commit_txn(struct ids_txn *txn, void *rock)
{
	struct create *c = rock;
	struct ids_mbentry old;
	int r;

	/*
	 * The name and the uniqueid are still free: checked again, for a
	 * create filled before its commit no longer holds the namespace
	 * lock (ids_mailbox_create_open).
	 */
	ids_mbentry_init(&old);
	r = ids_txn_lookup_name(txn, c->e->name, &old);
	if (r == 0 && !ids_mbentry_is_tombstone(&old) &&
	    (old.uniqueid == NULL || strcmp(old.uniqueid, c->e->uniqueid) != 0))
		r = ids_error(IDS_EEXIST, "%s: mailbox already exists", c->e->name);
	else if (r == 0 || r == IDS_ENOTFOUND)
		r = 0;
	ids_mbentry_release(&old);
	if (r == 0 && (r = ids_txn_lookup_id(txn, c->e->uniqueid, &old)) == 0 &&
	    !ids_mbentry_is_tombstone(&old))
		r = ids_error(IDS_EDUPID, "uniqueid %s is in use", c->e->uniqueid);
	else if (r == 0 || r == IDS_ENOTFOUND)
		r = 0;
	ids_mbentry_release(&old);
	if (r == 0 && (r = IDS_FAILPOINT("mailbox.create_put")) < 0)
		r = ids_error(r, "%s: cannot commit: %s", c->e->name, ids_strerror(r));
	if (r < 0 || (r = ids_txn_put(txn, c->e)) < 0)
		return r;
	return ids_intent_del(txn, c->e->uniqueid);
}

/*
 * Writes the new folder's cyrus.header and empty cyrus.index.  A folder
 * made here (not a replica's create) gets mailbox_default_options and
 * OPT_POP3_NEW_UIDL, as Cyrus's mboxlist_createmailbox gives every
 * folder it creates other than by a sync; a replica's takes the OPTIONS
 * its master sends.
 */
static int
create_files(const struct ids_config *cfg, const struct ids_mbentry *e,
    int datafd, int metafd, int exact)
{
	struct ids_index_header ih;
	struct ids_header h;
	unsigned long long opts = 0;
	uint32_t crc;
	int hfd = metafd >= 0 && (cfg->metapartition_files & (1u << IDS_META_HEADER)) ? metafd : datafd;
	int ifd = metafd >= 0 && (cfg->metapartition_files & (1u << IDS_META_INDEX)) ? metafd : datafd;
	int r;

	memset(&ih, 0, sizeof(ih));
	if (!exact && (r = ids_config_uint(cfg, "mailbox_default_options", 0, UINT32_MAX,
	    &opts)) < 0)
		return r;
	ih.options = exact ? 0 : (uint32_t)opts | IDS_INDEX_OPT_POP3_NEW_UIDL;
	ids_header_init(&h);
	if ((r = ids_header_from_mbentry(&h, e)) == 0)
		r = ids_header_write(hfd, &h, &crc);
	ids_header_release(&h);
	if (r < 0)
		return r;
	ih.generation_no = 1;
	ih.uidvalidity = e->uidvalidity;
	ih.highestmodseq = 1;
	ih.createdmodseq = e->createdmodseq;
	ih.header_file_crc = crc;
	return ids_index_write_new(ifd, &ih);
}

int
ids_folder_mkdir(const struct ids_config *cfg, const struct ids_location *loc,
    int *datafd, int *metafd)
{
	const struct ids_partition *part = ids_config_partition(cfg, loc->partition);
	char rel[PATH_MAX], *slash;
	int r, parent, root, i;

	if ((r = ids_path_reldir(cfg, loc, rel, sizeof(rel))) < 0)
		return r;
	slash = strrchr(rel, '/');
	for (i = 0; i < 2; i++) {
		const char *top = i == 0 ? part->path : part->metapath;

		if (top == NULL || (i == 1 && cfg->metapartition_files == 0))
			continue;
		if ((r = ids_opendir_abs(top, &root)) < 0)
			return ids_error(r, "%s: %s", top, ids_strerror(r));
		*slash = '\0';
		r = ids_opendir_beneath(root, rel, IDS_OPEN_CREATE, &parent);
		*slash = '/';
		close(root);
		if (r < 0)
			return r;
		if ((r = IDS_FAILPOINT("mailbox.mkdir")) < 0 ||
		    (mkdirat(parent, slash + 1, 0750) < 0 && (r = -errno) < 0) ||
		    (r = ids_fsync_dir(parent)) < 0) {
			close(parent);
			return r == -EEXIST ? ids_error(IDS_ECONFLICT,
			    "%s/%s: already exists", top, rel) : r;
		}
		close(parent);
	}
	return open_dirs(cfg, loc, 0, datafd, metafd);
}

static int
create_entry(struct ids_mboxlist *mbl, const struct ids_mbname *mb,
    const char *partition, struct ids_mbentry *e)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	const struct ids_partition *part = ids_config_partition(cfg, partition);
	char name[IDS_MBNAME_MAX + 1], id[IDS_UNIQUEID_MAX + 1], owner[IDS_MBNAME_MAX + 1];
	int r;

	if (part == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s' is not configured",
		    partition ? partition : "(default)");
	if ((r = ids_mbname_internal(mb, name, sizeof(name))) < 0 ||
	    (r = ids_uniqueid_new(id)) < 0)
		return r;
	if ((e->name = strdup(name)) == NULL || (e->uniqueid = strdup(id)) == NULL ||
	    (e->partition = strdup(part->name)) == NULL)
		return -ENOMEM;
	strcpy(e->mbtype, "e");
	e->uidvalidity = (uint32_t)time(NULL);
	e->createdmodseq = e->foldermodseq = 1;
	e->mtime = time(NULL);
	if (ids_mbname_is_user(mb) && !ids_mbname_is_deleted(mb)) {
		if ((r = ids_mbname_owner(mb, owner, sizeof(owner))) < 0)
			return r;
		return ids_acl_set(&e->acl, &e->nacl, owner, "lrswipkxtecdan");
	}
	return 0;
}

/* The steps between the two transactions, under both locks. */
static int
create_locked(struct ids_mboxlist *mbl, struct create *c, struct ids_mbname *mb)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct ids_location loc = { mb, c->e->uniqueid, c->e->partition, IDS_LAYOUT_UNIQUEID };
	char rel[PATH_MAX], full[PATH_MAX];
	int r, datafd = -1, metafd = -1;

	/* Every path the folder will have must be possible before the intent. */
	if ((r = ids_path_reldir(cfg, &loc, rel, sizeof(rel))) < 0 ||
	    (r = ids_path_datadir(cfg, &loc, full, sizeof(full))) < 0 ||
	    (r = ids_path_metafile(cfg, &loc, IDS_META_HEADER, full, sizeof(full))) < 0)
		return r;
	strcpy(c->in.op, IDS_OP_CREATE);
	strcpy(c->in.stage, IDS_STAGE_FILES);
	c->in.time = time(NULL);
	if ((r = ids_intent_set(&c->in.name, c->e->name)) < 0 ||
	    (r = ids_intent_set(&c->in.partition, c->e->partition)) < 0 ||
	    (r = ids_intent_set(&c->in.dst, rel)) < 0 ||
	    (r = ids_mboxlist_write(mbl, create_begin_txn, c)) < 0)
		return r;
	if ((r = ids_folder_mkdir(cfg, &loc, &datafd, &metafd)) == 0 &&
	    (r = create_files(cfg, c->e, datafd, metafd, c->exact)) == 0)
		r = ids_mboxlist_write(mbl, create_commit_txn, c);
	if (datafd >= 0)
		close(datafd);
	if (metafd >= 0)
		close(metafd);
	return r;
}

/* Creates the folder of e (filled in, owned by the caller) under both locks. */
static int
create_with_entry(struct ids_mboxlist *mbl, struct ids_mbname *mb,
    struct ids_mbentry *e, int exact, struct ids_mbentry *out)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct ids_lock *ns = NULL, *ml = NULL;
	struct create c;
	char owner[IDS_MBNAME_MAX + 1], why[512];
	int r;

	/* Refused before any intent: what its cyrus.header could not hold. */
	if ((r = ids_header_check_entry(e, NULL)) < 0)
		return r;
	memset(&c, 0, sizeof(c));
	c.e = e;
	c.exact = exact;
	ids_intent_init(&c.in);
	if ((r = ids_mbname_owner(mb, owner, sizeof(owner))) < 0 ||
	    (r = ids_lock_namespace(cfg, owner, 0, IDS_LOCK_TIMEOUT_MS, &ns)) < 0 ||
	    (r = ids_lock_mailbox(cfg, e->uniqueid, IDS_LOCK_NONBLOCK, 0, &ml)) < 0)
		goto out;
	r = create_locked(mbl, &c, mb);
	if (r < 0 && r != IDS_EEXIST && r != IDS_EDUPID) {
		/* The undo must not replace the reason it undoes. */
		snprintf(why, sizeof(why), "%s", ids_errmsg(r));
		ids_mailbox_recover(mbl, e->uniqueid, &c.in);
		ids_error(r, "%s", why);
	}
	if (r == 0 && out != NULL)
		r = ids_mbentry_copy(out, e);
out:
	ids_unlock(ml);
	ids_unlock(ns);
	ids_intent_release(&c.in);
	return r;
}

int
ids_mailbox_create(struct ids_mboxlist *mbl, const char *name,
    const char *partition, struct ids_mbentry *out)
{
	struct ids_mbname mb;
	struct ids_mbentry e;
	unsigned long long opts;
	int r;

	/* a bad mailbox_default_options refuses the create before anything is written */
	if ((r = ids_config_uint(ids_mboxlist_config(mbl), "mailbox_default_options", 0,
	    UINT32_MAX, &opts)) < 0)
		return ids_error(IDS_ECONFIG, "%s", ids_errmsg(r));
	ids_mbentry_init(&e);
	if ((r = ids_mbname_parse_internal(&mb, name, IDS_MBNAME_STRICT)) == 0 &&
	    (r = create_entry(mbl, &mb, partition, &e)) == 0)
		r = create_with_entry(mbl, &mb, &e, 0, out);
	ids_mbentry_release(&e);
	return r;
}

/* The record of a replica's create: want's identity, the partition's name, type "e". */
static int
entry_as(struct ids_mboxlist *mbl, const struct ids_mbentry *want, struct ids_mbname *mb,
    struct ids_mbentry *e)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	const struct ids_partition *part = ids_config_partition(cfg, want->partition);
	int r;

	if (part == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s' is not configured",
		    want->partition ? want->partition : "(default)");
	if ((r = ids_mbname_parse_internal(mb, want->name, IDS_MBNAME_STRICT)) < 0 ||
	    (r = ids_uniqueid_check(want->uniqueid)) < 0)
		return r;
	if (want->uidvalidity == 0)
		return ids_error(IDS_EINVAL, "%s: no uidvalidity", want->name);
	if ((r = ids_mbentry_copy(e, want)) < 0)
		return r;
	free(e->partition);
	e->partition = strdup(part->name);
	strcpy(e->mbtype, "e");
	e->mtime = time(NULL);
	return e->partition == NULL ? -ENOMEM : 0;
}

int
ids_mailbox_create_as(struct ids_mboxlist *mbl, const struct ids_mbentry *want,
    struct ids_mbentry *out)
{
	struct ids_mbname mb;
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	if ((r = entry_as(mbl, want, &mb, &e)) == 0)
		r = create_with_entry(mbl, &mb, &e, 1, out);
	ids_mbentry_release(&e);
	return r;
}

/* --- a create filled before it commits ------------------------------- */

struct ids_mbcreate {
	struct create c;
	struct ids_lock *ns;
	int begun;	/* the intent is committed: closing undoes the create */
	char why[256];	/* the reason its commit failed, kept for its caller */
};

static void
mbcreate_free(struct ids_mbcreate *pc)
{
	if (pc == NULL)
		return;
	ids_unlock(pc->ns);
	ids_intent_release(&pc->c.in);
	free(pc);
}

void
ids_mailbox_close(struct ids_mailbox *mb)
{
	if (mb == NULL)
		return;
	if (mb->create != NULL && mb->create->begun) {
		/* a create not committed: undone (or by recovery, if this fails) */
		if (mb->datafd >= 0)
			close(mb->datafd);
		if (mb->metafd >= 0)
			close(mb->metafd);
		mb->datafd = mb->metafd = -1;
		ids_mailbox_recover(mb->mbl, mb->entry.uniqueid, &mb->create->c.in);
	}
	mbcreate_free(mb->create);
	if (mb->datafd >= 0)
		close(mb->datafd);
	if (mb->metafd >= 0)
		close(mb->metafd);
	ids_unlock(mb->lock);
	ids_mbentry_release(&mb->entry);
	free(mb);
}

int
ids_mailbox_create_open(struct ids_mboxlist *mbl, const struct ids_mbentry *want,
    struct ids_mailbox **mbp)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct ids_mailbox *mb;
	struct ids_mbcreate *pc;
	struct ids_mbname parsed;
	char owner[IDS_MBNAME_MAX + 1], rel[PATH_MAX], full[PATH_MAX];
	int r, deferred = ids_fs_deferred();

	*mbp = NULL;
	if ((mb = calloc(1, sizeof(*mb))) == NULL)
		return -ENOMEM;
	mb->mbl = mbl;
	mb->datafd = mb->metafd = -1;
	ids_mbentry_init(&mb->entry);
	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		free(mb);
		return -ENOMEM;
	}
	mb->create = pc;
	ids_intent_init(&pc->c.in);
	pc->c.e = &mb->entry;
	pc->c.exact = 1;
	if ((r = entry_as(mbl, want, &parsed, &mb->entry)) < 0 ||
	    (r = ids_header_check_entry(&mb->entry, NULL)) < 0 ||
	    (r = ids_location_from_entry(&mb->entry, &mb->mbname, &mb->loc)) < 0 ||
	    (r = ids_mbname_owner(&mb->mbname, owner, sizeof(owner))) < 0)
		goto fail;
	mb->loc.layout = IDS_LAYOUT_UNIQUEID;
	if ((r = ids_lock_namespace(cfg, owner, 0, IDS_LOCK_TIMEOUT_MS, &pc->ns)) < 0 ||
	    (r = ids_lock_mailbox(cfg, mb->entry.uniqueid, IDS_LOCK_NONBLOCK, 0, &mb->lock)) < 0)
		goto fail;
	/* Every path the folder will have must be possible before the intent. */
	if ((r = ids_path_reldir(cfg, &mb->loc, rel, sizeof(rel))) < 0 ||
	    (r = ids_path_datadir(cfg, &mb->loc, full, sizeof(full))) < 0 ||
	    (r = ids_path_metafile(cfg, &mb->loc, IDS_META_HEADER, full, sizeof(full))) < 0)
		goto fail;
	strcpy(pc->c.in.op, IDS_OP_CREATE);
	strcpy(pc->c.in.stage, IDS_STAGE_FILES);
	pc->c.in.time = time(NULL);
	if ((r = ids_intent_set(&pc->c.in.name, mb->entry.name)) < 0 ||
	    (r = ids_intent_set(&pc->c.in.partition, mb->entry.partition)) < 0 ||
	    (r = ids_intent_set(&pc->c.in.dst, rel)) < 0 ||
	    (r = ids_mboxlist_write(mbl, create_begin_txn, &pc->c)) < 0)
		goto fail;
	pc->begun = 1;
	/* nothing is flushed until ids_mailbox_create_commit */
	ids_fs_defer_sync(1);
	if ((r = ids_folder_mkdir(cfg, &mb->loc, &mb->datafd, &mb->metafd)) == 0)
		r = create_files(cfg, &mb->entry, mb->datafd, mb->metafd, 1);
	ids_fs_defer_sync(deferred);
	if (r < 0)
		goto fail;
	/*
	 * The namespace lock goes now: the caller may begin other creates
	 * of the owner before this one commits (a replica's group commit);
	 * the commit checks the name and uniqueid again.  The mailbox lock
	 * of the new uniqueid stays until the folder is closed.
	 */
	ids_unlock(pc->ns);
	pc->ns = NULL;
	*mbp = mb;
	return 0;
fail:
	ids_mailbox_close(mb);	/* undoes what was begun */
	return r;
}

/*
 * The reason of v's failed commit, taken when it failed: the error
 * detail is per thread, and the commits of the folders after it would
 * put theirs in its place (a lookup's "not found").
 */
static void
commit_failed(struct ids_mailbox *mb, int r)
{
	if (mb->create != NULL)
		snprintf(mb->create->why, sizeof(mb->create->why), "%s", ids_errmsg(r));
}

const char *
ids_mailbox_create_error(const struct ids_mailbox *mb)
{
	return mb->create != NULL && mb->create->why[0] != '\0' ? mb->create->why : NULL;
}

int
ids_mailbox_create_commit(struct ids_mailbox *mb)
{
	int r;

	return ids_mailbox_create_commit_group(&mb, 1, &r) < 0 ? r : 0;
}

struct group_txn {
	struct ids_mailbox **v;
	size_t n;
	const int *rv;
};

static int
group_commit_txn(struct ids_txn *txn, void *rock)
{
	struct group_txn *g = rock;
	size_t i;
	int r;

	for (i = 0; i < g->n; i++)
		if (g->rv[i] == 0 && (r = create_commit_txn(txn, &g->v[i]->create->c)) < 0)
			return r;
	return 0;
}

int
ids_mailbox_create_commit_group(struct ids_mailbox **v, size_t n, int *rv)
{
	dev_t devs[16];
	struct stat st;
	size_t i, k, ndev = 0, todo = 0;
	int r = 0, fail = 0;

	for (i = 0; i < n; i++) {
		rv[i] = v[i]->create == NULL ? IDS_EINVAL : 0;
		todo += rv[i] == 0;
	}
	/* the files, the directories and their parents: one syncfs per file system */
	for (i = 0; i < n && r == 0; i++) {
		int fds[2] = { v[i]->datafd, v[i]->metafd };

		for (k = 0; k < 2 && r == 0; k++) {
			size_t d;

			if (rv[i] != 0 || fds[k] < 0)
				continue;
			if (fstat(fds[k], &st) < 0) {
				r = -errno;
				break;
			}
			for (d = 0; d < ndev && devs[d] != st.st_dev; d++)
				;
			if (d < ndev && d < sizeof(devs) / sizeof(devs[0]))
				continue;
			if (ndev < sizeof(devs) / sizeof(devs[0]))
				devs[ndev++] = st.st_dev;
			r = ids_fs_sync(fds[k]);
		}
	}
	if (r == 0 && todo > 0 && (r = IDS_FAILPOINT("mailbox.create_commit")) == 0) {
		struct group_txn g = { v, n, rv };

		r = ids_mboxlist_write(v[0]->mbl, group_commit_txn, &g);
		/* one failed: each alone, so that its failure is its own */
		for (i = 0; r < 0 && todo > 1 && i < n; i++)
			if (rv[i] == 0 && (rv[i] = ids_mboxlist_write(v[i]->mbl,
			    create_commit_txn, &v[i]->create->c)) < 0)
				commit_failed(v[i], rv[i]);
		if (r < 0 && todo > 1)
			r = 0;
	}
	for (i = 0; i < n; i++) {
		if (rv[i] == 0 && r < 0) {
			rv[i] = r;
			commit_failed(v[i], r);
		}
		if (rv[i] == 0) {
			mbcreate_free(v[i]->create);
			v[i]->create = NULL;
		} else if (fail >= 0) {
			fail = rv[i];	/* the first failure */
		}
	}
	return fail < 0 ? fail : 0;
}

/* --- delete ---------------------------------------------------------- */

/*
 * Removes a folder's own files from dirfd: message files, meta files
 * and our temporary files.  Other files and subdirectories (child
 * folders in the legacy layout) are left alone.  Returns 0 or negative.
 */
static int
remove_folder_files(int dirfd)
{
	DIR *d;
	struct dirent *de;
	int fd, r = 0;

	if ((fd = dup(dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_type == DT_DIR ||
		    ids_folder_classify(de->d_name, NULL) == IDS_FILE_OTHER)
			continue;
		if ((r = IDS_FAILPOINT("mailbox.unlink")) == 0 &&
		    unlinkat(dirfd, de->d_name, 0) < 0 && errno != ENOENT)
			r = -errno;
	}
	closedir(d);
	return r < 0 ? r : ids_fsync_dir(dirfd);
}

int
ids_folder_remove(const struct ids_config *cfg, const char *partition, const char *rel)
{
	const struct ids_partition *part = ids_config_partition(cfg, partition);
	const char *roots[2];
	int i, r = 0, root, dfd;

	if (part == NULL || rel == NULL)
		return ids_error(IDS_ECORRUPT, "no partition or directory to remove");
	roots[0] = part->path;
	roots[1] = cfg->metapartition_files ? part->metapath : NULL;
	for (i = 0; i < 2 && r == 0; i++) {
		if (roots[i] == NULL || ids_opendir_abs(roots[i], &root) < 0)
			continue;
		r = ids_opendir_beneath(root, rel, 0, &dfd);
		if (r == 0) {
			r = remove_folder_files(dfd);
			close(dfd);
			if (r == 0 && (r = IDS_FAILPOINT("mailbox.rmdir")) == 0 &&
			    unlinkat(root, rel, AT_REMOVEDIR) == 0)
				r = ids_fsync_dir(root);
			else if (r == 0 && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
				r = -errno;
		} else if (r == -ENOENT) {
			r = 0;
		}
		close(root);
	}
	return r;
}

struct delete {
	const char *name;
	const char *uniqueid;
	struct ids_intent *in;
};

static int
delete_begin_txn(struct ids_txn *txn, void *rock)
{
	struct delete *d = rock;
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	if ((r = ids_txn_lookup_name(txn, d->name, &e)) < 0)
		goto out;
	if (ids_mbentry_is_tombstone(&e) || strcmp(e.uniqueid, d->uniqueid) != 0) {
		r = ids_error(IDS_EBUSY, "%s: changed while deleting", d->name);
		goto out;
	}
	ids_mbtype_set(e.mbtype, IDS_MBFLAG_DELETED, 1);
	ids_mbtype_set(e.mbtype, IDS_MBFLAG_LEGACY, 0);
	free(e.partition);
	e.partition = NULL;
	ids_acl_free(e.acl, e.nacl);
	e.acl = NULL;
	e.nacl = 0;
	e.foldermodseq++;
	e.mtime = time(NULL);
	if ((r = ids_txn_put(txn, &e)) == 0)
		r = ids_intent_put(txn, d->uniqueid, d->in);
out:
	ids_mbentry_release(&e);
	return r;
}

static int
intent_del_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_del(txn, rock);
}

static int
delete_intent(struct ids_mailbox *mb, struct ids_intent *in)
{
	const struct ids_config *cfg = ids_mboxlist_config(mb->mbl);
	char rel[PATH_MAX];
	int r;

	if ((r = ids_path_reldir(cfg, &mb->loc, rel, sizeof(rel))) < 0)
		return r;
	strcpy(in->op, IDS_OP_DELETE);
	strcpy(in->stage, IDS_STAGE_FILES);
	in->time = time(NULL);
	if ((r = ids_intent_set(&in->name, mb->entry.name)) < 0 ||
	    (r = ids_intent_set(&in->partition, mb->entry.partition)) < 0)
		return r;
	return ids_intent_set(&in->dst, rel);
}

int
ids_mailbox_delete(struct ids_mboxlist *mbl, const char *name)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct ids_mailbox *mb = NULL;
	struct ids_lock *ns = NULL;
	struct ids_intent in;
	struct ids_mbname mbn;
	struct delete d;
	char owner[IDS_MBNAME_MAX + 1];
	int r;

	ids_intent_init(&in);
	if ((r = ids_mbname_parse_internal(&mbn, name, 0)) < 0 ||
	    (r = ids_mbname_owner(&mbn, owner, sizeof(owner))) < 0 ||
	    (r = ids_lock_namespace(cfg, owner, 0, IDS_LOCK_TIMEOUT_MS, &ns)) < 0 ||
	    (r = ids_mailbox_open(mbl, name, IDS_MAILBOX_WRITE, IDS_LOCK_TIMEOUT_MS, &mb)) < 0 ||
	    (r = delete_intent(mb, &in)) < 0)
		goto out;
	d.name = mb->entry.name;
	d.uniqueid = mb->entry.uniqueid;
	d.in = &in;
	if ((r = ids_mboxlist_write(mbl, delete_begin_txn, &d)) < 0)
		goto out;
	/*
	 * Committed: the mailbox is gone; what follows frees space and
	 * puts its tombstone on disk for a rebuild, both before the intent
	 * goes, so that recovery does them after a crash.
	 */
	if ((r = ids_folder_remove(cfg, in.partition, in.dst)) == 0 &&
	    (r = ids_tombstones_write_owner(mbl, name, IDS_TOMBSTONES_HELD)) == 0)
		r = ids_mboxlist_write(mbl, intent_del_txn, mb->entry.uniqueid);
out:
	ids_mailbox_close(mb);
	ids_unlock(ns);
	ids_intent_release(&in);
	return r;
}

/* --- recovery -------------------------------------------------------- */

/*
 * A create that did not commit left a directory no record points to;
 * a delete that committed left files of a tombstone.  Both are removed.
 * The caller holds the mailbox lock of uniqueid.
 */
int
ids_mailbox_recover(struct ids_mboxlist *mbl, const char *uniqueid,
    const struct ids_intent *in)
{
	struct ids_mbentry e;
	int r;

	if (strcmp(in->op, IDS_OP_CREATE) == 0) {
		ids_mbentry_init(&e);
		r = ids_mboxlist_lookup_id(mbl, uniqueid, &e);
		/* a tombstone of the uniqueid (made again after a delete) is not the create */
		if (r == 0 && ids_mbentry_is_tombstone(&e))
			r = IDS_ENOTFOUND;
		ids_mbentry_release(&e);
		if (r == 0)	/* committed after all: nothing to undo */
			return ids_mboxlist_write(mbl, intent_del_txn, (void *)uniqueid);
		if (r != IDS_ENOTFOUND)
			return r;
	} else if (strcmp(in->op, IDS_OP_DELETE) != 0) {
		return ids_error(IDS_EINVAL, "not a create or delete intent");
	}
	if ((r = ids_folder_remove(ids_mboxlist_config(mbl), in->partition, in->dst)) < 0)
		return r;
	/* A delete's tombstone on disk (a create has none to keep). */
	if (strcmp(in->op, IDS_OP_DELETE) == 0 && in->name != NULL &&
	    (r = ids_tombstones_write_owner(mbl, in->name, IDS_TOMBSTONES_TRY)) < 0)
		return r;
	return ids_mboxlist_write(mbl, intent_del_txn, (void *)uniqueid);
}

/* --- deliver --------------------------------------------------------- */

/* Where the header ends: the offset after the first empty line. */
static uint32_t
header_size(const char *msg, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++) {
		if (msg[i] == '\n' && msg[i + 1] == '\n')
			return (uint32_t)(i + 2);
		if (i + 3 < len && memcmp(msg + i, "\r\n\r\n", 4) == 0)
			return (uint32_t)(i + 4);
	}
	return (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len);
}

static int
deliver_locked(struct ids_mailbox *mb, const void *msg, size_t len,
    int64_t internaldate, uint32_t *uidp)
{
	struct ids_index_record rec;
	struct ids_index *idx;
	char file[32];
	int r, ifd = ids_mailbox_metafd(mb, IDS_META_INDEX);

	if ((r = ids_index_open(ifd, &idx)) < 0)
		return r;
	memset(&rec, 0, sizeof(rec));
	rec.uid = ids_index_header(idx)->last_uid + 1;
	ids_index_free(idx);
	if (rec.uid == 0)
		return ids_error(IDS_EINVAL, "%s: uid space exhausted", mb->entry.name);
	snprintf(file, sizeof(file), "%u.", rec.uid);
	rec.internaldate = internaldate;
	rec.sentdate = rec.gmtime = (uint64_t)internaldate;
	rec.last_updated = (uint64_t)time(NULL);
	rec.size = len;
	rec.header_size = header_size(msg, len);
	if ((r = ids_guid_buf(msg, len, rec.guid)) < 0 ||
	    (r = ids_write_durable(mb->datafd, file, msg, len, 0600)) < 0 ||
	    (r = ids_index_append(ifd, &rec, 1)) < 0)
		return r;
	*uidp = rec.uid;
	return 0;
}

int
ids_mailbox_deliver(struct ids_mboxlist *mbl, const char *name, const void *msg,
    size_t len, int64_t internaldate, uint32_t *uidp)
{
	struct ids_mailbox *mb;
	struct ids_mbname n;
	int r;

	/*
	 * A folder deleted with delete_mode: delayed keeps its messages
	 * for undelete only: Cyrus's lmtpd cannot address it (a recipient
	 * names user.x..., never DELETED...), so neither may we deliver.
	 */
	if (ids_mbname_parse_internal(&n, name, 0) == 0 && ids_mbname_is_deleted(&n))
		return ids_error(IDS_EINVAL, "a deleted folder takes no delivery");
	if ((r = ids_mailbox_open(mbl, name, IDS_MAILBOX_WRITE, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		return r;
	r = deliver_locked(mb, msg, len, internaldate, uidp);
	ids_mailbox_close(mb);
	return r;
}

/* --- header ---------------------------------------------------------- */

int
ids_mailbox_write_header(struct ids_mailbox *mb)
{
	struct ids_mbentry e;
	struct ids_header h;
	uint32_t crc;
	int hfd = ids_mailbox_metafd(mb, IDS_META_HEADER);
	int ifd = ids_mailbox_metafd(mb, IDS_META_INDEX);
	int r;

	ids_header_init(&h);
	if (ids_header_read(hfd, &h, NULL) < 0)
		ids_header_init(&h);	/* unreadable: written afresh from the record */
	ids_mbentry_init(&e);
	if ((r = ids_mboxlist_lookup_id(mb->mbl, mb->entry.uniqueid, &e)) == 0 &&
	    (r = ids_header_from_mbentry(&h, &e)) == 0 &&
	    (r = ids_userfiles_follow_quotaroot(&h, &e)) == 0 &&
	    (r = ids_header_write(hfd, &h, &crc)) == 0 &&
	    faccessat(ifd, IDS_INDEX_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		r = ids_index_set_header_crc(ifd, crc);
	ids_mbentry_release(&e);
	ids_header_release(&h);
	return r;
}
