/*
 * reconstruct_plan.c - the rules of a rebuild (spool-layout.md,
 * "Reconstruct"): which unique id and which name every folder found on
 * disk gets, which of two folders wins a conflict, and the history each
 * keeps.  Nothing here touches the disk or the database; the decisions
 * are left in the folders (struct rc_folder) and reported as events.
 *
 * The order matters: ids first (a copy must stop sharing its twin's id
 * before names are compared), then the records mailboxes.db already has
 * for each folder, then names, then histories.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "mailbox.h"
#include "reconstruct_int.h"

#define RECOVERY_TRIES 100

static int
registered(const struct rc_folder *f)
{
	return !(f->flags & (RCF_UNREADABLE | RCF_BUSY | RCF_LEFTOUT));
}

static struct rc_rec *
snap_n(struct rc_ctx *c, const char *name)
{
	size_t i = ids_rc_map_get(&c->snap.byname, name);

	return i == RC_NONE ? NULL : &c->snap.n[i];
}

static struct rc_rec *
snap_i(struct rc_ctx *c, const char *id)
{
	size_t i = ids_rc_map_get(&c->snap.byid, id);

	return i == RC_NONE ? NULL : &c->snap.i[i];
}

static int
is_live(const struct rc_rec *r)
{
	return r != NULL && r->e.uniqueid != NULL && !ids_mbentry_is_tombstone(&r->e);
}

/* --- names ---------------------------------------------------------------- */

/*
 * The name of src's folder levels under the owner of root (a user's
 * INBOX or a shared top level), with extra as a last level before the
 * DELETED time if given: rebases a name onto another owner, and makes
 * recovery names.
 */
static int
build_name(const struct ids_mbname *root, const struct ids_mbname *src,
    const char *extra, char *buf, size_t size)
{
	const char *lv[IDS_MBNAME_ALL_LEVELS + 2];
	size_t n = 0, i;

	if (src->deleted)
		lv[n++] = "DELETED";
	if (root->localpart) {
		lv[n++] = "user";
		lv[n++] = root->localpart;
	} else if (root->nboxes > 0) {
		lv[n++] = root->boxes[0];
	} else {
		return ids_error(IDS_EBADNAME, "no owner");
	}
	for (i = src->localpart ? 0 : 1; i < src->nboxes; i++)
		lv[n++] = src->boxes[i];
	if (extra)
		lv[n++] = extra;
	if (src->deleted)
		lv[n++] = src->deleted;
	return ids_rc_join_levels(root->domain, lv, n, buf, size);
}

/* src's folder levels under the owner of root; 0 or negative. */
static int
rebase(const char *rootname, const char *name, char out[IDS_MBNAME_MAX + 1])
{
	struct ids_mbname root, src, check;
	int r;

	if ((r = ids_mbname_parse_internal(&root, rootname, 0)) < 0 ||
	    (r = ids_mbname_parse_internal(&src, name, 0)) < 0 ||
	    (r = build_name(&root, &src, NULL, out, IDS_MBNAME_MAX + 1)) < 0)
		return r;
	return ids_mbname_parse_internal(&check, out, 0);
}

static int
same_owner(const char *a, const char *b)
{
	char oa[IDS_MBNAME_MAX + 1], ob[IDS_MBNAME_MAX + 1];

	return ids_rc_owner_of(a, oa, sizeof(oa)) >= 0 && ids_rc_owner_of(b, ob, sizeof(ob)) >= 0 &&
	    strcmp(oa, ob) == 0;
}

/* 1 if no live folder or kept live record holds name. */
static int
name_free(struct rc_ctx *c, const char *name)
{
	struct rc_rec *r;

	if (ids_rc_map_get(&c->byname, name) != RC_NONE)
		return 0;
	r = snap_n(c, name);
	return !(r && r->kept && is_live(r));
}

/* A valid, free name "<name>.Recovered-<id8>[-k]" (or under the owner's root). */
static int
recovery_name(struct rc_ctx *c, const struct rc_folder *f, const char *name,
    char out[IDS_MBNAME_MAX + 1])
{
	struct ids_mbname src, root, check;
	char extra[64];
	int i, r;

	if ((r = ids_mbname_parse_internal(&src, name, 0)) < 0 ||
	    (r = ids_mbname_parse_internal(&root, f->pathname, 0)) < 0)
		return r;
	for (i = 0; i < RECOVERY_TRIES; i++) {
		if ((size_t)snprintf(extra, sizeof(extra), i ? "Recovered-%.8s-%d" :
		    "Recovered-%.8s", rc_id(f), i + 1) >= sizeof(extra))
			break;
		r = build_name(&src, &src, extra, out, IDS_MBNAME_MAX + 1);
		if (r < 0 || (size_t)r > IDS_MBNAME_CREATE_MAX ||
		    ids_mbname_parse_internal(&check, out, 0) < 0)
			r = build_name(&root, &root, extra, out, IDS_MBNAME_MAX + 1);
		if (r >= 0 && ids_mbname_parse_internal(&check, out, 0) == 0 &&
		    name_free(c, out))
			return 0;
	}
	return ids_error(IDS_EEXIST, "no free recovery name for %s", name);
}

static int
set_name(struct rc_folder *f, const char *name)
{
	char *copy = strdup(name);

	if (copy == NULL)
		return -ENOMEM;
	free(f->name);
	f->name = copy;
	return 0;
}

/* --- unique ids --------------------------------------------------------------- */

/* A new id that no folder and no record uses. */
static int
fresh_id(struct rc_ctx *c, char out[IDS_UNIQUEID_MAX + 1])
{
	int r, tries;

	for (tries = 0; tries < 16; tries++) {
		if ((r = ids_uniqueid_new(out)) < 0)
			return r;
		if (ids_rc_map_get(&c->byid, out) == RC_NONE && snap_i(c, out) == NULL)
			return 0;
	}
	return ids_error(IDS_EBADID, "no fresh unique id");
}

/* The id a folder's files give it, before conflicts; reports what is odd. */
static int
own_id(struct rc_ctx *c, struct rc_folder *f)
{
	const char *hid = f->h.uniqueid;
	int r;

	if (f->layout == IDS_LAYOUT_UNIQUEID) {
		strcpy(f->id, f->dirid);
		if (hid == NULL || strcmp(hid, f->dirid) != 0) {
			f->flags |= RCF_WRITE;
			ids_rc_emit(c, IDS_RC_CONFLICT, hid ? "id-mismatch" : "no-uniqueid", f,
			    NULL, f->id, hid ? "cyrus.header says uniqueid %s: its directory's "
			    "id wins" : "cyrus.header has no uniqueid: its directory's id is "
			    "written into it", hid);
		}
		return 0;
	}
	if (hid != NULL && ids_uniqueid_check(hid) == 0) {
		strcpy(f->id, hid);
		return 0;
	}
	if ((r = fresh_id(c, f->id)) < 0)
		return r;
	f->flags |= RCF_WRITE;
	ids_rc_emit(c, IDS_RC_CONFLICT, "no-uniqueid", f, f->pathname, f->id,
	    "cyrus.header has %s: new uniqueid %s", hid ? "an invalid uniqueid" :
	    "no uniqueid", f->id);
	return 0;
}

/*
 * A folder whose header cannot be read is left alone: a failure, unless
 * it is a uniqueid folder an operation is working on (a create or a
 * migration writes the header after the directory and its files).
 */
static void
unreadable(struct rc_ctx *c, struct rc_folder *f)
{
	f->flags |= RCF_UNREADABLE;
	if (f->layout == IDS_LAYOUT_UNIQUEID && ids_rc_intent_now(c, f->dirid)) {
		ids_rc_emit(c, IDS_RC_NOTE, "busy", f, NULL, f->dirid, "an operation is in "
		    "progress on it: left alone");
		return;
	}
	ids_rc_failed(c, "unreadable", f->path, NULL, f->hdr_err,
	    "cannot read cyrus.header: %s: left untouched", ids_errmsg(f->hdr_err));
}

static int
plan_ids(struct rc_ctx *c)
{
	size_t i, first;
	int r;

	for (i = 0; i < c->nf; i++) {
		struct rc_folder *f = &c->f[i];

		if (f->hdr_err < 0) {
			unreadable(c, f);
			continue;
		}
		if ((r = own_id(c, f)) < 0)
			return r;
		f->took_name = f->h.nhistory ? f->h.history[0].mtime : 0;
		if (ids_rc_map_get(&c->snap.intents, f->id) != RC_NONE) {
			f->flags |= RCF_BUSY;
			ids_rc_emit(c, IDS_RC_NOTE, "busy", f, NULL, f->id, "an operation is in "
			    "progress on it: its records are kept as they are");
			continue;
		}
		if ((r = ids_rc_map_add(&c->byid, f->id, i, &first)) < 0)
			return r;
		if (r == 1) {	/* chain it after the first */
			f->next = c->f[first].next;
			c->f[first].next = i;
		}
	}
	return 0;
}

/* --- what mailboxes.db knows --------------------------------------------------- */

/* Marks the records of busy ids and of unreadable folders' places kept. */
static void
keep_untouchable(struct rc_ctx *c)
{
	size_t i, k;
	char *key;

	for (i = 0; i < c->snap.nn; i++) {
		struct rc_rec *r = &c->snap.n[i];

		if (!r->in_scope || (r->e.uniqueid &&
		    ids_rc_map_get(&c->snap.intents, r->e.uniqueid) != RC_NONE))
			r->kept = 1;
	}
	for (i = 0; i < c->nf; i++) {
		if (!(c->f[i].flags & RCF_UNREADABLE) || (key = ids_rc_folder_key(&c->f[i])) == NULL)
			continue;
		if ((k = ids_rc_map_get(&c->snap.byloc, key)) != RC_NONE) {
			c->snap.n[k].kept = c->snap.n[k].matched = 1;
			ids_rc_emit(c, IDS_RC_NOTE, "kept", &c->f[i], c->snap.n[k].e.name,
			    c->snap.n[k].e.uniqueid, "its record in mailboxes.db is kept");
		}
		free(key);
	}
}

static int
plan_known(struct rc_ctx *c)
{
	size_t i, k;
	char *key;

	keep_untouchable(c);
	for (i = 0; i < c->nf; i++) {
		struct rc_folder *f = &c->f[i];

		if (!registered(f))
			continue;
		if ((key = ids_rc_folder_key(f)) == NULL)
			return -ENOMEM;
		k = ids_rc_map_get(&c->snap.byloc, key);
		free(key);
		if (k == RC_NONE || c->snap.n[k].kept)
			continue;
		c->snap.n[k].matched = 1;
		if (strcmp(c->snap.n[k].e.uniqueid, f->id) == 0)
			f->known = k;
	}
	return 0;
}

/* Live records no folder was found for: gone if their directory is. */
static int
dir_gone(struct rc_ctx *c, const struct ids_mbentry *e)
{
	const struct ids_partition *p = ids_config_partition(c->cfg, e->partition);
	char *key = ids_rc_location_key(c, e), *rel;
	int root, fd, r;

	if (key == NULL || p == NULL) {
		free(key);
		return 0;
	}
	rel = strchr(key, '\x1f') + 1;
	r = ids_opendir_abs(p->path, &root);
	if (r == 0) {
		r = ids_opendir_beneath(root, rel, 0, &fd);
		close(root);
		if (r == 0)
			close(fd);
	}
	free(key);
	return r == -ENOENT;
}

static void
plan_unmatched(struct rc_ctx *c)
{
	size_t i;

	for (i = 0; i < c->snap.nn; i++) {
		struct rc_rec *r = &c->snap.n[i];
		const char *t = r->e.mbtype;

		if (r->kept || r->matched || !is_live(r))
			continue;
		if (ids_mbtype_has(t, IDS_MBFLAG_REMOTE) ||
		    ids_mbtype_has(t, IDS_MBFLAG_INTERMEDIATE) ||
		    ids_mbtype_has(t, IDS_MBFLAG_RESERVED) || !dir_gone(c, &r->e)) {
			r->kept = 1;
			ids_rc_emit(c, IDS_RC_NOTE, "kept", NULL, r->e.name, r->e.uniqueid,
			    "no folder found for this record, but its directory is not "
			    "gone either: kept");
		}
	}
}

/* --- unique id conflicts --------------------------------------------------------- */

/* The header's name fits where the folder lies. */
static int
name_fits(const struct rc_folder *f)
{
	if (f->h.name == NULL)
		return 0;
	if (f->layout == IDS_LAYOUT_LEGACY)
		return strcmp(f->h.name, f->pathname) == 0;
	return same_owner(f->h.name, f->pathname);
}

/* < 0 when a should keep the id rather than b. */
static int
keeper_cmp(const struct rc_folder *a, const struct rc_folder *b)
{
	int c;

	if ((a->known != RC_NONE) != (b->known != RC_NONE))
		return a->known != RC_NONE ? -1 : 1;
	if (name_fits(a) != name_fits(b))
		return name_fits(a) ? -1 : 1;
	if (a->took_name != b->took_name)
		return a->took_name > b->took_name ? -1 : 1;
	if ((c = strcmp(a->part->name, b->part->name)) != 0)
		return c;
	return strcmp(a->rel, b->rel);
}

static int
open_folder_dir(const struct rc_folder *f, int *fdp)
{
	int root, r;

	if ((r = ids_opendir_abs(f->part->path, &root)) < 0)
		return r;
	r = ids_opendir_beneath(root, f->rel, 0, fdp);
	close(root);
	return r;
}

/*
 * 1 if the two folders share a message file (the same inode under the
 * same uid): one is what an interrupted migration linked from the other.
 */
static int
share_messages(const struct rc_folder *a, const struct rc_folder *b)
{
	uint32_t uid, last = a->ix.last_uid < b->ix.last_uid ? a->ix.last_uid : b->ix.last_uid;
	struct stat sa, sb;
	char file[16];
	int fa, fb, found = 0;

	if (open_folder_dir(a, &fa) < 0)
		return 0;
	if (open_folder_dir(b, &fb) < 0) {
		close(fa);
		return 0;
	}
	/* Newest first; a half-finished cleanup may have unlinked any of them. */
	for (uid = last; uid > 0 && !found; uid--) {
		snprintf(file, sizeof(file), "%u.", uid);
		if (fstatat(fa, file, &sa, AT_SYMLINK_NOFOLLOW) == 0 &&
		    fstatat(fb, file, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			found = sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino ? 1 : -1;
	}
	close(fa);
	close(fb);
	return found == 1;
}

/*
 * Pairs of a uniqueid and a legacy folder sharing message files are one
 * folder twice, left by an interrupted migration: the one mailboxes.db
 * knows where it lies stays, else the uniqueid one (the later state);
 * the other is not registered.
 */
static void
drop_leftovers(struct rc_ctx *c, size_t head)
{
	struct rc_folder *u, *l, *gone;
	size_t i, j;

	for (i = head; i != RC_NONE; i = c->f[i].next) {
		for (j = head; j != RC_NONE; j = c->f[j].next) {
			u = &c->f[i];
			l = &c->f[j];
			if (u->layout != IDS_LAYOUT_UNIQUEID || l->layout != IDS_LAYOUT_LEGACY ||
			    ((u->flags | l->flags) & RCF_LEFTOUT) || !share_messages(u, l))
				continue;
			gone = l->known != RC_NONE && u->known == RC_NONE ? u : l;
			gone->flags |= RCF_LEFTOUT;
			ids_rc_emit(c, IDS_RC_CONFLICT, "leftover", gone, gone->pathname, gone->id,
			    "shares its message files with %s, which has the same uniqueid: "
			    "left by an interrupted migration; not registered",
			    gone == l ? u->path : l->path);
		}
	}
}

static int
give_new_id(struct rc_ctx *c, struct rc_folder *f, const char *why)
{
	int r;

	if ((r = fresh_id(c, f->newid)) < 0)
		return r;
	f->flags |= RCF_REID | RCF_WRITE;
	f->known = RC_NONE;
	ids_rc_emit(c, IDS_RC_CONFLICT, "dup-uniqueid", f, f->h.name ? f->h.name : f->pathname,
	    f->newid, "uniqueid %s is also held by %s: new uniqueid %s", f->id, why,
	    f->newid);
	return ids_rc_map_add(&c->byid, f->newid, (size_t)(f - c->f), NULL) < 0 ? -ENOMEM : 0;
}

/* One group of folders sharing an id: one keeps it, the others get new ones. */
static int
settle_group(struct rc_ctx *c, size_t head)
{
	struct rc_rec *ir = snap_i(c, c->f[head].id), *holder = NULL;
	size_t i, keep = RC_NONE;
	int r;

	if (ir != NULL && ir->e.name != NULL && (holder = snap_n(c, ir->e.name)) != NULL &&
	    !(holder->kept && is_live(holder) && strcmp(holder->e.uniqueid, ir->e.uniqueid) == 0))
		holder = NULL;
	drop_leftovers(c, head);
	for (i = head; i != RC_NONE && holder == NULL; i = c->f[i].next)
		if (registered(&c->f[i]) &&
		    (keep == RC_NONE || keeper_cmp(&c->f[i], &c->f[keep]) < 0))
			keep = i;
	for (i = head; i != RC_NONE; i = c->f[i].next) {
		if (i == keep || !registered(&c->f[i]))
			continue;
		r = give_new_id(c, &c->f[i], holder ? holder->e.name : c->f[keep].path);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
plan_id_clashes(struct rc_ctx *c)
{
	size_t i, n = c->nf;
	int r;

	for (i = 0; i < n; i++) {
		struct rc_folder *f = &c->f[i];

		if (!registered(f) || (f->flags & RCF_REID) ||
		    ids_rc_map_get(&c->byid, f->id) != i)
			continue;
		if ((r = settle_group(c, i)) < 0)
			return r;
	}
	return 0;
}

/* --- names ----------------------------------------------------------------------- */

/* A uniqueid folder: its header's name, on its directory's owner, checked against the db. */
static int
uniqueid_name(struct rc_ctx *c, struct rc_folder *f, char out[IDS_MBNAME_MAX + 1])
{
	const struct rc_rec *k = f->known != RC_NONE ? &c->snap.n[f->known] : NULL;
	const struct rc_rec *ki = k ? snap_i(c, f->id) : NULL;
	struct ids_mbname check;
	int r;

	out[0] = '\0';
	if (f->h.name && ids_mbname_parse_internal(&check, f->h.name, 0) == 0) {
		if ((r = rebase(f->pathname, f->h.name, out)) < 0)
			return r;
		if (strcmp(out, f->h.name) != 0)
			ids_rc_emit(c, IDS_RC_CONFLICT, "owner", f, out, f->id, "cyrus.header "
			    "names %s, which another owner's directory cannot hold", f->h.name);
	}
	if (k == NULL || strcmp(out, k->e.name) == 0)
		return 0;
	if (out[0] != '\0' && ki && ids_rc_history_has(f->h.history, f->h.nhistory, k->e.name) &&
	    !ids_rc_history_has(ki->e.history, ki->e.nhistory, out))
		return 0;	/* the header is newer: a rename not committed */
	ids_rc_emit(c, IDS_RC_CONFLICT, out[0] && ki && ids_rc_history_has(ki->e.history,
	    ki->e.nhistory, out) ? "newer-name" : "stale-name", f, k->e.name, f->id,
	    "cyrus.header names %s: mailboxes.db's name wins", out[0] ? out : "nothing");
	strcpy(out, k->e.name);
	return 0;
}

static int
base_name(struct rc_ctx *c, struct rc_folder *f)
{
	char name[IDS_MBNAME_MAX + 1];
	int r;

	if (f->layout == IDS_LAYOUT_LEGACY) {
		if (f->h.name != NULL && strcmp(f->h.name, f->pathname) != 0)
			ids_rc_emit(c, IDS_RC_CONFLICT, "stale-name", f, f->pathname, f->id,
			    "cyrus.header names %s: the path wins", f->h.name);
		return set_name(f, f->pathname);
	}
	if ((r = uniqueid_name(c, f, name)) < 0)
		return r;
	if (name[0] == '\0') {
		if ((r = set_name(f, f->pathname)) < 0 ||
		    (r = recovery_name(c, f, f->pathname, name)) < 0)
			return r;
		f->flags |= RCF_RECOVERED;
		ids_rc_emit(c, IDS_RC_CONFLICT, "no-name", f, name, rc_id(f),
		    "cyrus.header has no usable name");
	}
	return set_name(f, name);
}

/* < 0 when a keeps the name rather than b (both uniqueid or both legacy). */
static int
name_cmp(const struct rc_folder *a, const struct rc_folder *b)
{
	int c;

	if (a->took_name != b->took_name)
		return a->took_name > b->took_name ? -1 : 1;
	if ((a->known != RC_NONE) != (b->known != RC_NONE))
		return a->known != RC_NONE ? -1 : 1;
	if ((c = strcmp(a->part->name, b->part->name)) != 0)
		return c;
	return strcmp(a->rel, b->rel);
}

/* The loser of a name gets a recovery name, or (legacy) is left out. */
static int
lose_name(struct rc_ctx *c, struct rc_folder *f, const char *winner)
{
	char name[IDS_MBNAME_MAX + 1];
	int r;

	if (f->layout == IDS_LAYOUT_LEGACY) {
		f->flags |= RCF_LEFTOUT;
		ids_rc_failed(c, "left-out", f->path, f->name, IDS_EEXIST, "%s has the same "
		    "name, and a legacy folder's name is its path: not registered; "
		    "rename or move one of them", winner);
		return 0;
	}
	if ((r = recovery_name(c, f, f->name, name)) < 0)
		return r;
	ids_rc_emit(c, IDS_RC_CONFLICT, "dup-name", f, name, rc_id(f), "%s is also claimed by %s, "
	    "whose claim is newer: renamed", f->name, winner);
	f->flags |= RCF_RECOVERED | RCF_WRITE;
	return set_name(f, name);
}

/*
 * Which of two folders claiming a name keeps it: a legacy folder (its
 * name is its path), then one whose name is not a recovery name, then
 * (two legacy folders) the one mailboxes.db knows, then the newer claim
 * (name_cmp).
 */
static int
f_wins(const struct rc_folder *f, const struct rc_folder *o)
{
	int fr = (f->flags & RCF_RECOVERED) != 0, orr = (o->flags & RCF_RECOVERED) != 0;

	if (o->layout != f->layout)
		return f->layout == IDS_LAYOUT_LEGACY;
	if (fr != orr)
		return !fr;
	if (f->layout == IDS_LAYOUT_LEGACY && (f->known != RC_NONE) != (o->known != RC_NONE))
		return f->known != RC_NONE;
	return name_cmp(f, o) < 0;
}

/* Adds f under its name; on a clash one of the two gives way. */
static int
claim_name(struct rc_ctx *c, size_t i)
{
	struct rc_folder *f = &c->f[i], *o;
	struct rc_rec *kr;
	size_t other;
	int r;

	kr = snap_n(c, f->name);
	if (kr && kr->kept && is_live(kr) && strcmp(kr->e.uniqueid, rc_id(f)) != 0)
		return lose_name(c, f, kr->e.name);
	if ((r = ids_rc_map_add(&c->byname, f->name, i, &other)) <= 0)
		return r;
	o = &c->f[other];
	if (f_wins(f, o)) {
		ids_rc_map_set(&c->byname, f->name, i);
		if ((r = lose_name(c, o, f->path)) < 0 || (o->flags & RCF_LEFTOUT))
			return r;
		return ids_rc_map_add(&c->byname, o->name, other, NULL) < 0 ? -ENOMEM : 0;
	}
	if ((r = lose_name(c, f, o->path)) < 0 || (f->flags & RCF_LEFTOUT))
		return r;
	return ids_rc_map_add(&c->byname, f->name, i, NULL) < 0 ? -ENOMEM : 0;
}

static int
plan_names(struct rc_ctx *c)
{
	size_t i;
	int r;

	for (i = 0; i < c->nf; i++)
		if (registered(&c->f[i]) && (r = base_name(c, &c->f[i])) < 0)
			return r;
	for (i = 0; i < c->nf; i++)
		if (registered(&c->f[i]) && !(c->f[i].flags & RCF_RECOVERED) &&
		    (r = claim_name(c, i)) < 0)
			return r;
	for (i = 0; i < c->nf; i++)
		if (registered(&c->f[i]) && (c->f[i].flags & RCF_RECOVERED) &&
		    ids_rc_map_get(&c->byname, c->f[i].name) != i &&
		    (r = claim_name(c, i)) < 0)
			return r;
	return 0;
}

/* --- histories ------------------------------------------------------------------- */

int
ids_rc_history_has(const struct ids_history *h, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (h[i].name != NULL && strcmp(h[i].name, name) == 0)
			return 1;
	return 0;
}

static int
history_dup(struct ids_history *dst, const struct ids_history *src)
{
	*dst = *src;
	dst->name = dst->partition = NULL;
	if ((src->name && (dst->name = strdup(src->name)) == NULL) ||
	    (src->partition && (dst->partition = strdup(src->partition)) == NULL)) {
		ids_history_release(dst);
		return -ENOMEM;
	}
	return 0;
}

static int
has_item(const struct ids_history *h, size_t n, const struct ids_history *x)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (h[i].mtime == x->mtime && h[i].name && x->name &&
		    strcmp(h[i].name, x->name) == 0)
			return 1;
	return 0;
}

/* Inserts x (a copy) keeping newest first; equal times keep their order. */
static int
insert_item(struct ids_history *h, size_t *n, const struct ids_history *x)
{
	size_t at = *n;
	int r;

	while (at > 0 && h[at - 1].mtime < x->mtime)
		at--;
	memmove(&h[at + 1], &h[at], (*n - at) * sizeof(*h));
	if ((r = history_dup(&h[at], x)) < 0) {
		memmove(&h[at], &h[at + 1], (*n - at) * sizeof(*h));
		return r;
	}
	(*n)++;
	return 0;
}

int
ids_rc_history_merge(struct ids_history **a, size_t *na, const struct ids_history *b,
    size_t nb)
{
	struct ids_history *h;
	size_t i;
	int r;

	if (nb == 0)
		return 0;
	if ((h = realloc(*a, (*na + nb) * sizeof(*h))) == NULL)
		return -ENOMEM;
	*a = h;
	for (i = 0; i < nb; i++)
		if (!has_item(*a, *na, &b[i]) && (r = insert_item(*a, na, &b[i])) < 0)
			return r;
	return 0;
}

/* The header's items with usable names, then mailboxes.db's for a kept id. */
static int
merge_history(struct rc_ctx *c, struct rc_folder *f)
{
	struct ids_mbname check;
	const struct rc_rec *ir;
	size_t i;
	int r;

	if (f->flags & RCF_REID) {	/* a new mailbox: the history stays with the id */
		if (f->h.nhistory > 0)
			f->flags |= RCF_WRITE;
		return 0;
	}
	for (i = 0; i < f->h.nhistory; i++) {
		if (f->h.history[i].name == NULL ||
		    ids_mbname_parse_internal(&check, f->h.history[i].name, 0) < 0) {
			ids_rc_emit(c, IDS_RC_NOTE, "history", f, f->name, rc_id(f),
			    "history item %zu has no valid name: dropped", i);
			f->flags |= RCF_WRITE;
			continue;
		}
		if ((r = ids_rc_history_merge(&f->hist, &f->nhist, &f->h.history[i], 1)) < 0)
			return r;
	}
	ir = snap_i(c, f->id);
	if (ir && ir->in_scope && !ir->kept &&
	    (r = ids_rc_history_merge(&f->hist, &f->nhist, ir->e.history, ir->e.nhistory)) < 0)
		return r;
	if (f->nhist != f->h.nhistory)
		f->flags |= RCF_WRITE;
	return 0;
}

/* The header is rewritten when its name, id, type or history would change. */
static void
note_header_changes(struct rc_folder *f)
{
	char type[IDS_MBTYPE_MAX];

	ids_rc_header_type(f->h.mbtype[0] ? f->h.mbtype : "e", type);
	if (f->h.name == NULL || strcmp(f->h.name, f->name) != 0 ||
	    f->h.uniqueid == NULL || strcmp(f->h.uniqueid, rc_id(f)) != 0 ||
	    strcmp(f->h.mbtype, type) != 0)
		f->flags |= RCF_WRITE;
}

int
ids_rc_plan(struct rc_ctx *c)
{
	size_t i;
	int r;

	if ((r = plan_ids(c)) < 0 || (r = plan_known(c)) < 0)
		return r;
	plan_unmatched(c);
	if ((r = plan_id_clashes(c)) < 0 || (r = plan_names(c)) < 0)
		return r;
	for (i = 0; i < c->nf; i++) {
		if (!registered(&c->f[i]))
			continue;
		if ((r = merge_history(c, &c->f[i])) < 0)
			return r;
		note_header_changes(&c->f[i]);
	}
	return 0;
}
