/*
 * recover.c - finishing or rolling back operations of dead processes
 * (recover.h).  Each kind of operation settles its own intents; this
 * file only finds them and dispatches by the intent's op.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "failpoint.h"
#include "intent.h"
#include "lock.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "reconstruct.h"
#include "recover.h"
#include "relocate.h"
#include "rename.h"
#include "sync/replica.h"

struct idlist {
	char (*ids)[IDS_UNIQUEID_MAX + 1];
	size_t n, alloc;
};

static int
collect(const char *id, const struct ids_intent *in, void *rock)
{
	struct idlist *l = rock;

	if (strlen(id) > IDS_UNIQUEID_MAX)
		return 0;
	if (l->n == l->alloc) {
		size_t na = l->alloc ? 2 * l->alloc : 16;
		void *p = realloc(l->ids, na * sizeof(*l->ids));

		if (p == NULL)
			return -ENOMEM;
		l->ids = p;
		l->alloc = na;
	}
	strcpy(l->ids[l->n++], id);
	return 0;
}

static int
collect_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_foreach(txn, collect, rock);
}

struct one {
	const char *id;
	struct ids_intent *in;
};

static int
reread_txn(struct ids_txn *txn, void *rock)
{
	struct one *o = rock;

	return ids_intent_get(txn, o->id, o->in);
}

static int
settle(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	static const struct ids_relocate_opts none = { IDS_STRATEGY_LINK, 0, 0, NULL, NULL, 0 };

	if (strcmp(in->op, "migrate") == 0)
		return ids_relocate_recover(mbl, id, in, opts ? opts : &none, stats);
	if (strcmp(in->op, "create") == 0 || strcmp(in->op, "delete") == 0)
		return ids_mailbox_recover(mbl, id, in);
	if (strcmp(in->op, "reid") == 0)
		return ids_reconstruct_recover(mbl, id, in);
	if (strcmp(in->op, "sync") == 0)
		return ids_replica_recover(mbl, id, in);
	if (strcmp(in->op, "rename") == 0 || strcmp(in->op, "renameowner") == 0 ||
	    strcmp(in->op, "copy") == 0)
		return ids_rename_recover(mbl, id, in);
	return ids_error(IDS_ECORRUPT, "intent of %s: unknown operation '%s'", id, in->op);
}

/*
 * Failures no later try can cure: the name or path cannot exist on
 * this file system, or the record cannot be read.  Anything else (a
 * lock, a symlink in the way, a full disk, an I/O error) may pass, and
 * the intent stays to be tried again.
 */
static int
is_permanent(int r)
{
	return r == -ENAMETOOLONG || r == IDS_ETOOLONG || r == IDS_EBADNAME ||
	    r == IDS_ECORRUPT || r == IDS_EFORMAT;
}

struct aside {
	const char *id;
	const struct ids_intent *in;
	const char *why;
};

static int
aside_txn(struct ids_txn *txn, void *rock)
{
	struct aside *a = rock;

	return ids_intent_set_aside(txn, a->id, a->in, a->why);
}

/*
 * Names the intent in the reason of r (its key and folder), and sets
 * it aside when r is permanent, so that it is reported once, not on
 * every later run.
 */
static int
report(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in, int r,
    struct ids_recover_report *rep)
{
	char why[512];
	struct aside a = { id, in, why };
	int w;

	snprintf(why, sizeof(why), "%s", ids_errmsg(r));
	if (!is_permanent(r))
		return ids_error(r, "intent X%s (%s %s): %s", id, in->op,
		    in->name ? in->name : "?", why);
	if ((w = IDS_FAILPOINT("recover.set_aside")) == 0)
		w = ids_mboxlist_write(mbl, aside_txn, &a);
	if (w < 0)
		return ids_error(r, "intent X%s (%s %s): %s; not set aside: %s", id, in->op,
		    in->name ? in->name : "?", why, ids_errmsg(w));
	rep->set_aside++;
	return ids_error(r, "intent X%s (%s %s): %s; set aside as Z%s", id, in->op,
	    in->name ? in->name : "?", why, id);
}

/* Settles the intent of id if its owner is gone. */
static int
recover_one(struct ids_mboxlist *mbl, const char *id,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats,
    struct ids_recover_report *rep)
{
	struct ids_lock *lock;
	struct ids_intent in;
	struct one o = { id, &in };
	int r;

	r = ids_lock_mailbox(ids_mboxlist_config(mbl), id, IDS_LOCK_NONBLOCK, 0, &lock);
	if (r == IDS_ELOCKED) {
		rep->busy++;
		return 0;
	}
	if (r < 0)
		return r;
	ids_intent_init(&in);
	r = ids_mboxlist_read(mbl, reread_txn, &o);
	if (r == IDS_ENOTFOUND)
		r = 0;	/* settled by someone else meanwhile */
	else if (r == 0 && (r = settle(mbl, id, &in, opts, stats)) < 0 &&
	    r != IDS_RELOCATE_PENDING)
		r = report(mbl, id, &in, r, rep);
	if (r == IDS_RELOCATE_PENDING)
		rep->pending++;
	else if (r == 0)
		rep->settled++;
	else
		rep->failed++;
	ids_intent_release(&in);
	ids_unlock(lock);
	return r == IDS_RELOCATE_PENDING ? 0 : r;
}

int
ids_recover(struct ids_mboxlist *mbl, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats, struct ids_recover_report *rep)
{
	struct ids_recover_report local = { 0 };
	struct ids_relocate_stats scratch = { 0 };
	struct idlist l = { NULL, 0, 0 };
	char why[1024];
	size_t i;
	int r, first = 0;

	if (rep == NULL)
		rep = &local;
	if (stats == NULL)
		stats = &scratch;
	if ((r = ids_mboxlist_read(mbl, collect_txn, &l)) < 0) {
		free(l.ids);
		return r;
	}
	for (i = 0; i < l.n; i++)
		if ((r = recover_one(mbl, l.ids[i], opts, stats, rep)) < 0 && first == 0) {
			first = r;
			/* later intents record their own reasons: keep the first's */
			snprintf(why, sizeof(why), "%s", ids_errmsg(r));
		}
	free(l.ids);
	return first < 0 ? ids_error(first, "%s", why) : 0;
}
