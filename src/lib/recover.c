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

static int
collect(const char *id, const struct ids_intent *in, void *rock)
{
	return ids_idlist_add(rock, id);
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

/* --- the op table --------------------------------------------------- */

/*
 * Each operation's module settles its own intents, finishing or rolling
 * back by the intent's stage; this table says which module owns which
 * op.  Only a migration needs the grace period and the statistics.
 */
typedef int (*settle_fn)(struct ids_mboxlist *mbl, const char *id,
    const struct ids_intent *in, const struct ids_relocate_opts *opts,
    struct ids_relocate_stats *stats);

static int
settle_migrate(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	static const struct ids_relocate_opts none = { .strategy = IDS_STRATEGY_LINK };

	return ids_relocate_recover(mbl, id, in, opts ? opts : &none, stats);
}

static int
settle_mailbox(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	return ids_mailbox_recover(mbl, id, in);
}

static int
settle_rename(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	return ids_rename_recover(mbl, id, in);
}

static int
settle_reid(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	return ids_reconstruct_recover(mbl, id, in);
}

static int
settle_sync(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	return ids_replica_recover(mbl, id, in);
}

static const struct {
	const char *op;
	settle_fn settle;
} ops[] = {
	{ IDS_OP_CREATE, settle_mailbox },
	{ IDS_OP_DELETE, settle_mailbox },
	{ IDS_OP_MIGRATE, settle_migrate },
	{ IDS_OP_RENAME, settle_rename },
	{ IDS_OP_RENAMEOWNER, settle_rename },
	{ IDS_OP_COPY, settle_rename },
	{ IDS_OP_REID, settle_reid },
	{ IDS_OP_SYNC, settle_sync },
};

static int
settle(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in,
    const struct ids_relocate_opts *opts, struct ids_relocate_stats *stats)
{
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(in->op, ops[i].op) == 0)
			return ops[i].settle(mbl, id, in, opts, stats);
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

	/* no journal entry: what recovery settles was journaled when it was committed */
	r = ids_lock_mailbox(ids_mboxlist_config(mbl), id, IDS_LOCK_NONBLOCK | IDS_LOCK_NOJOURNAL,
	    0, &lock);
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
	struct ids_idlist l = IDS_IDLIST_INIT;
	char why[1024];
	size_t i;
	int r, first = 0;

	if (rep == NULL)
		rep = &local;
	if (stats == NULL)
		stats = &scratch;
	if ((r = ids_mboxlist_read(mbl, collect_txn, &l)) < 0) {
		ids_idlist_release(&l);
		return r;
	}
	for (i = 0; i < l.n; i++)
		if ((r = recover_one(mbl, l.ids[i], opts, stats, rep)) < 0 && first == 0) {
			first = r;
			/* later intents record their own reasons: keep the first's */
			snprintf(why, sizeof(why), "%s", ids_errmsg(r));
		}
	ids_idlist_release(&l);
	return first < 0 ? ids_error(first, "%s", why) : 0;
}
