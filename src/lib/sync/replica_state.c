/*
 * replica_state.c - idspool's repair extensions of csync (spool-layout.md
 * "Replication: the replica", "Repair over the wire"), answered only to
 * a client that read our banner (a real Cyrus never sends them):
 *
 *   GET STATE %(UNIQUEID u [MBOXNAME n] [VERIFY 1] [RECORD 1])
 *	"* STATE %(<the MAILBOX kvlist> HISTORY (names) MISSING (guids))":
 *	the folder's state line, the names it had, and the GUIDs of its
 *	records whose files the audit finds missing or damaged;
 *   GET FETCHGUID guid | %(GUID g [UNIQUEID u])
 *	"* MESSAGE %{partition guid size}" from whichever live folder holds
 *	an intact file of the GUID (checked before it is sent), else NO;
 *   APPLY REPAIR %(UNIQUEID u [MBOXNAME n] MESSAGE (%{p guid size} ...))
 *	each file (staged and checked by the codec) put back under every
 *	uid of the folder whose record names its GUID and whose file is
 *	missing or damaged: "* REPAIRED (uids)".  No record changes.
 *
 * The placement (ids_repl_repair_place) is shared with the client's
 * repair step (repair.c), which heals its own spool with files fetched
 * by GET FETCHGUID.  Under the folder's lock (exclusive), per uid: the
 * source is copied to "<uid>.repair.NEW" (O_EXCL, a stale one removed
 * first) while its SHA-1 is computed, discarded unless size and SHA-1
 * are the record's, fsynced, then linked to "<uid>." when that name is
 * free or renamed over the damaged file, and the directory fsynced.  A
 * crash leaves the damaged file or the healed one, never a part of one,
 * and at worst the temporary file, which nothing reads and the next
 * repair of the uid replaces.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit.h"
#include "buf.h"
#include "csync.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "index.h"
#include "lock.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "replica_int.h"
#include "sync.h"
#include "sync_int.h"

static const char *
kv_str(const struct ids_dlist *kv, const char *key)
{
	return kv != NULL && kv->type == IDS_DL_KVLIST ? ids_dlist_cstr(ids_dlist_get(kv, key)) :
	    NULL;
}

static int
guid_valid(const char *g)
{
	size_t i;

	if (g == NULL || strlen(g) != IDS_GUID_HEXLEN)
		return 0;
	for (i = 0; i < IDS_GUID_HEXLEN; i++)
		if (!((g[i] >= '0' && g[i] <= '9') || (g[i] >= 'a' && g[i] <= 'f')))
			return 0;
	return 1;
}

/* --- damaged files, as the audit finds them ------------------------------ */

void
ids_repl_damage_release(struct ids_repl_damage *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static int
damage_add(struct ids_repl_damage *d, uint32_t uid)
{
	if (d->n == d->a) {
		size_t a = d->a ? 2 * d->a : 16;
		struct ids_repl_dmg *v = realloc(d->v, a * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		d->v = v;
		d->a = a;
	}
	memset(&d->v[d->n], 0, sizeof(d->v[d->n]));
	d->v[d->n++].uid = uid;
	return 0;
}

static int
damage_finding(const struct ids_audit_finding *f, void *rock)
{
	if (f->uid == 0 || (f->kind != IDS_AUDIT_FILE_MISSING &&
	    f->kind != IDS_AUDIT_FILE_SIZE && f->kind != IDS_AUDIT_FILE_GUID))
		return 0;
	return damage_add(rock, f->uid);
}

/*
 * The stat-only check of the open folder mb, under its lock: the
 * records whose file is absent, not a regular file or of another size
 * than the record's -- the audit's file-missing, file-unsafe and
 * file-size findings with stat_only (auditfolder.c: the records it
 * checks, ids_hasher_stat), without the audit's second open of the
 * folder and listing of its directory, which made a no-op resync
 * (every folder asked on both sides) several times slower.  The lock
 * keeps a delivery or an expunge from racing the reading, so nothing
 * needs reading again.  Records without a GUID are left out.
 */
static int
damaged_stat(struct ids_mailbox *mb, struct ids_repl_damage *d)
{
	struct ids_index *idx;
	struct ids_index_record rec;
	struct stat st;
	char name[16];
	uint32_t i;
	int r;

	memset(d, 0, sizeof(*d));
	if ((r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx)) < 0)
		return r;
	for (i = 0; r == 0 && i < ids_index_header(idx)->num_records; i++) {
		if (ids_index_record(idx, i, &rec) < 0 || ids_guid_is_null(rec.guid))
			continue;
		if ((rec.system_flags & IDS_FLAG_EXPUNGED) && (rec.system_flags & IDS_FLAG_UNLINKED))
			continue;
		if (rec.system_flags & IDS_FLAG_ARCHIVED)
			continue;
		snprintf(name, sizeof(name), "%u.", rec.uid);
		if (fstatat(mb->datafd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISREG(st.st_mode) && (uint64_t)st.st_size == rec.size)
				continue;
		} else if (errno != ENOENT) {
			r = ids_error(-errno, "%s: %s", mb->entry.name, name);
			break;
		}
		if ((r = damage_add(d, rec.uid)) == 0) {
			ids_guid_hex(rec.guid, d->v[d->n - 1].guid);
			d->v[d->n - 1].size = rec.size;
		}
	}
	ids_index_free(idx);
	if (r < 0)
		ids_repl_damage_release(d);
	return r;
}

/*
 * The records of the live folder name whose files are missing or
 * damaged, as spool_audit reports them (file-missing, file-size and,
 * with verify, file-guid: every file is then read), with the GUID and
 * size of each; records without a GUID are left out (nothing could
 * restore them).  The caller holds no lock of the folder.
 */
int
ids_repl_damaged(struct ids_repl_session *s, const char *name, int verify,
    struct ids_repl_damage *d)
{
	struct ids_audit_opts o;
	const char *names[1] = { name };
	struct ids_mailbox *mb;
	struct ids_index *idx;
	struct ids_index_record rec;
	uint32_t i;
	size_t k, j;
	int r;

	memset(d, 0, sizeof(*d));
	if (!verify) {
		if ((r = ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
			return r;
		r = damaged_stat(mb, d);
		ids_mailbox_close(mb);
		return r;
	}
	ids_audit_opts_init(&o);
	o.jobs = 1;
	o.names = names;
	o.nnames = 1;
	o.stat_only = !verify;
	if ((r = ids_audit_run(s->mbl, &o, damage_finding, d, NULL)) < 0)
		goto fail;
	if (d->n == 0)
		return 0;
	if ((r = ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		goto fail;
	if ((r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx)) == 0) {
		for (i = 0; i < ids_index_header(idx)->num_records; i++) {
			if (ids_index_record(idx, i, &rec) < 0)
				continue;
			for (k = 0; k < d->n; k++)
				if (d->v[k].uid == rec.uid && !ids_guid_is_null(rec.guid)) {
					ids_guid_hex(rec.guid, d->v[k].guid);
					d->v[k].size = rec.size;
				}
		}
		ids_index_free(idx);
	}
	ids_mailbox_close(mb);
	if (r < 0)
		goto fail;
	/* a record read again without a GUID (or gone) is left out */
	for (k = j = 0; k < d->n; k++)
		if (d->v[k].guid[0] != '\0')
			d->v[j++] = d->v[k];
	d->n = j;
	return 0;
fail:
	ids_repl_damage_release(d);
	return r;
}

/* The distinct GUIDs of d as a LIST (MISSING). */
static struct ids_dlist *
damage_guids(const struct ids_repl_damage *d)
{
	struct ids_dlist *l = ids_dlist_new_list();
	size_t k, j;

	for (k = 0; l != NULL && k < d->n; k++) {
		for (j = 0; j < k && strcmp(d->v[j].guid, d->v[k].guid) != 0; j++)
			;
		if (j == k && ids_dlist_add_atom(l, NULL, d->v[k].guid) < 0) {
			ids_dlist_free(l);
			return NULL;
		}
	}
	return l;
}

/* --- the state cache ----------------------------------------------------- */

struct live {
	const char *const *ids;
	size_t n;
	unsigned char *gone;
};

static int
live_txn(struct ids_txn *txn, void *rock)
{
	struct live *l = rock;
	struct ids_mbentry e;
	size_t i;
	int r;

	for (i = 0; i < l->n; i++) {
		ids_mbentry_init(&e);
		r = ids_txn_lookup_id(txn, l->ids[i], &e);
		l->gone[i] = r == IDS_ENOTFOUND || (r == 0 && ids_mbentry_is_tombstone(&e));
		ids_mbentry_release(&e);
		if (r < 0 && r != IDS_ENOTFOUND)
			return r;
	}
	return 0;
}

/* The state cache's sweep: which uniqueids have no live record in mailboxes.db. */
static int
statecache_live(void *rock, const char *const *ids, size_t n, unsigned char *gone)
{
	struct ids_repl_session *s = rock;
	struct live l = { ids, n, gone };

	if (s->mbl == NULL)
		return IDS_EINVAL;
	return ids_mboxlist_read(s->mbl, live_txn, &l);
}

static struct ids_sync_statecache *
statecache(struct ids_repl_session *s)
{
	int r;

	if (s->sc == NULL && !s->sc_failed) {
		if ((r = ids_sync_statecache_open(s->cfg, &s->sc)) < 0) {
			s->sc_failed = 1;
			ids_repl_log(s, LOG_WARNING, "the state cache is not used: %s",
			    ids_errmsg(r));
		} else {
			ids_sync_statecache_set_live(s->sc, statecache_live, s);
		}
	}
	return s->sc;
}

void
ids_repl_statecache_flush(struct ids_repl_session *s)
{
	int r;

	if (s->sc != NULL && (r = ids_sync_statecache_flush(s->sc)) < 0)
		ids_repl_log(s, LOG_WARNING, "the state cache: %s", ids_errmsg(r));
}

void
ids_repl_statecache_release(struct ids_repl_session *s)
{
	ids_repl_statecache_flush(s);
	ids_sync_statecache_close(s->sc);
	s->sc = NULL;
}

int
ids_repl_cached_state(struct ids_repl_session *s, const struct ids_mbentry *e,
    const char *want_id, struct ids_dlist **state, struct ids_dlist **missing)
{
	struct ids_sync_statecache *sc = statecache(s);
	struct ids_dlist *miss = NULL;
	struct ids_sync_sig sig;
	struct ids_repl_damage d;
	struct ids_mailbox *mb;
	char *ekey;
	int r, sig_ok;

	*state = NULL;
	if (missing != NULL)
		*missing = NULL;
	/* the cheap check: four fstatat and one read of the cache, no lock */
	if (sc != NULL && (want_id == NULL || strcmp(e->uniqueid, want_id) == 0) &&
	    (ekey = ids_sync_entry_key(e)) != NULL) {
		r = ids_sync_sig_paths(s->cfg, e, &sig) == 0 &&
		    ids_sync_statecache_get(sc, e->uniqueid, &sig, ekey, state, &miss) == 1;
		free(ekey);
		if (r && missing != NULL && miss == NULL) {
			/* stored without its MISSING list: computed below */
			ids_dlist_free(*state);
			*state = NULL;
			r = 0;
		}
		if (r) {
			if (missing != NULL)
				*missing = miss;
			else
				ids_dlist_free(miss);
			return 0;
		}
	}
	if ((r = ids_mailbox_open(s->mbl, e->name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		return r;
	memset(&d, 0, sizeof(d));
	if (want_id != NULL && strcmp(mb->entry.uniqueid, want_id) != 0) {
		ids_mailbox_close(mb);
		return ids_error(IDS_EBUSY, "%s: renamed meanwhile", e->name);
	}
	/* the signature before the files are read: a change after it shows */
	sig_ok = sc != NULL && ids_sync_sig_open(mb, &sig) == 0;
	/*
	 * MISSING (a stat of each record's file) only when asked: a real
	 * Cyrus's GET USER and GET MAILBOXES do not pay for it, and their
	 * entries are stored without one
	 */
	if ((r = ids_sync_mailbox_state(mb, 0, state)) == 0 && missing != NULL &&
	    (r = damaged_stat(mb, &d)) == 0 && (miss = damage_guids(&d)) == NULL)
		r = -ENOMEM;
	if (r == 0 && sig_ok && ids_sync_sig_settled(&sig) &&
	    (ekey = ids_sync_entry_key(&mb->entry)) != NULL) {
		if (ids_sync_statecache_put(sc, mb->entry.uniqueid, &sig, ekey, *state, miss) < 0)
			ids_repl_log(s, LOG_WARNING, "%s: not kept in the state cache",
			    mb->entry.name);
		free(ekey);
	}
	ids_mailbox_close(mb);
	ids_repl_damage_release(&d);
	if (r < 0) {
		ids_dlist_free(*state);
		ids_dlist_free(miss);
		*state = NULL;
		return r;
	}
	if (missing != NULL)
		*missing = miss;
	else
		ids_dlist_free(miss);
	return 0;
}

int
ids_repl_report_state(struct ids_repl_session *s, const char *name, int with_missing)
{
	struct ids_mbentry e;
	struct ids_dlist *kv = NULL, *miss = NULL, *m = NULL;
	int r;

	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup(s->mbl, name, &e);
	if (r == IDS_ENOTFOUND || (r == 0 && ids_mbentry_is_tombstone(&e))) {
		ids_mbentry_release(&e);
		return 0;
	}
	if (r == 0)
		r = ids_repl_cached_state(s, &e, NULL, &kv, with_missing ? &miss : NULL);
	if (r == IDS_ENOTFOUND)	/* deleted meanwhile */
		r = 0;
	else if (r == 0)
		r = ids_csync_write_untagged(s->out, "MAILBOX", kv);
	if (r == 0 && miss != NULL && miss->head != NULL) {
		if ((m = ids_dlist_new_kvlist()) == NULL ||
		    ids_dlist_add_atom(m, "UNIQUEID", kv_str(kv, "UNIQUEID")) < 0 ||
		    ids_dlist_add_child(m, "MISSING", miss) < 0)
			r = -ENOMEM;
		else
			r = ids_csync_write_untagged(s->out, "MISSING", m);
		miss = NULL;	/* taken over, even on failure */
	}
	ids_dlist_free(m);
	ids_dlist_free(miss);
	ids_dlist_free(kv);
	ids_mbentry_release(&e);
	return r;
}

/* --- GET STATE ------------------------------------------------------------ */

/* The names the folder had (its I record's history), newest first. */
static int
add_history(struct ids_dlist *kv, const struct ids_mbentry *e)
{
	struct ids_dlist *l;
	size_t i;
	int r;

	if ((r = ids_dlist_add_list(kv, "HISTORY", &l)) < 0)
		return r;
	for (i = 0; i < e->nhistory && r == 0; i++)
		if (e->history[i].name != NULL)
			r = ids_dlist_add_atom(l, NULL, e->history[i].name);
	return r;
}

/*
 * The STATE kvlist of the live folder uniqueid (IDS_ENOTFOUND when it
 * is live nowhere here), with verify the files read (SHA-1), with
 * flags IDS_SYNC_RECORDS its records.  Also the folder's name (name,
 * of size namesize, may be NULL) and, when d is not NULL, its damage.
 */
int
ids_repl_folder_state(struct ids_repl_session *s, const char *uniqueid, int verify,
    int flags, struct ids_dlist **out, char *name, size_t namesize,
    struct ids_repl_damage *dout)
{
	struct ids_mbentry e;
	struct ids_mailbox *mb;
	struct ids_repl_damage d;
	struct ids_dlist *kv = NULL, *missing = NULL;
	int r;

	*out = NULL;
	memset(&d, 0, sizeof(d));
	ids_mbentry_init(&e);
	if ((r = ids_mboxlist_lookup_id(s->mbl, uniqueid, &e)) < 0)
		goto out;
	if (ids_mbentry_is_tombstone(&e)) {
		r = IDS_ENOTFOUND;
		goto out;
	}
	if (!verify && flags == 0 && dout == NULL) {
		/* the state and MISSING the cache holds, or computes once */
		if ((r = ids_repl_cached_state(s, &e, uniqueid, &kv, &missing)) == 0 &&
		    (r = add_history(kv, &e)) == 0)
			r = ids_dlist_add_child(kv, "MISSING", missing);
		else
			ids_dlist_free(missing);
		missing = NULL;
		if (r == 0 && name != NULL)
			snprintf(name, namesize, "%s", e.name);
		goto out;
	}
	if ((r = ids_mailbox_open(s->mbl, e.name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		goto out;
	if (strcmp(mb->entry.uniqueid, uniqueid) != 0)
		r = ids_error(IDS_EBUSY, "%s: renamed meanwhile", e.name);
	else if ((r = ids_sync_mailbox_state(mb, flags, &kv)) == 0 && !verify)
		r = damaged_stat(mb, &d);
	ids_mailbox_close(mb);
	if (r == 0 && verify)
		r = ids_repl_damaged(s, e.name, verify, &d);
	if (r == 0)
		r = add_history(kv, &e);
	if (r == 0 && ((missing = damage_guids(&d)) == NULL ||
	    ids_dlist_add_child(kv, "MISSING", missing) < 0))
		r = -ENOMEM;
	if (r == 0 && name != NULL)
		snprintf(name, namesize, "%s", e.name);
out:
	if (r == 0) {
		*out = kv;
		kv = NULL;
		if (dout != NULL) {
			*dout = d;
			memset(&d, 0, sizeof(d));
		}
	}
	ids_dlist_free(kv);
	ids_repl_damage_release(&d);
	ids_mbentry_release(&e);
	return r;
}

/* One folder's STATE line; nothing when it is live nowhere here. */
static int
state_one(struct ids_repl_session *s, const char *id, uint32_t verify, uint32_t records)
{
	struct ids_dlist *st = NULL;
	int r;

	r = ids_repl_folder_state(s, id, verify != 0, records ? IDS_SYNC_RECORDS : 0, &st,
	    NULL, 0, NULL);
	if (r == IDS_ENOTFOUND)
		return 0;
	if (r == 0)
		r = ids_repl_untagged(s, "STATE", st);
	ids_dlist_free(st);
	return r;
}

/* GET STATE %(UNIQUEID u | UNIQUEID (u ...) [VERIFY 1] [RECORD 1]) */
int
ids_repl_get_state(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const struct ids_dlist *ids = kv != NULL && kv->type == IDS_DL_KVLIST ?
	    ids_dlist_get(kv, "UNIQUEID") : NULL, *x;
	uint32_t verify = 0, records = 0;
	int r = 0;

	if (ids == NULL)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if (ids->type == IDS_DL_LIST) {
		for (x = ids->head; x != NULL; x = x->next)
			if (ids_dlist_cstr(x) == NULL || ids_uniqueid_check(ids_dlist_cstr(x)) < 0)
				return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	} else if (ids_dlist_cstr(ids) == NULL || ids_uniqueid_check(ids_dlist_cstr(ids)) < 0) {
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	}
	ids_dlist_get_u32(kv, "VERIFY", &verify);
	ids_dlist_get_u32(kv, "RECORD", &records);
	if (ids->type != IDS_DL_LIST)
		r = state_one(s, ids_dlist_cstr(ids), verify, records);
	for (x = ids->type == IDS_DL_LIST ? ids->head : NULL; x != NULL && r >= 0; x = x->next)
		r = state_one(s, ids_dlist_cstr(x), verify, records);
	if (r < 0)
		return ids_repl_refuse(s, "GET STATE", ids_repl_imap_error(r), r);
	return ids_repl_ok(s, "success");
}

/* --- a GUID's file, wherever it is ------------------------------------------ */

/*
 * In the open folder mb, the uid of a record of guid whose file is
 * intact (size and SHA-1), or 0.
 */
static uint32_t
intact_uid(struct ids_mailbox *mb, const char *guid, uint64_t *size)
{
	struct ids_index *idx;
	struct ids_index_record rec;
	uint8_t sha[IDS_GUID_LEN];
	char hex[IDS_GUID_HEXLEN + 1], fname[32];
	struct stat st;
	uint32_t i, found = 0;

	if (ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx) < 0)
		return 0;
	for (i = 0; i < ids_index_header(idx)->num_records && !found; i++) {
		if (ids_index_record(idx, i, &rec) < 0 ||
		    (rec.system_flags & (IDS_FLAG_UNLINKED | IDS_FLAG_ARCHIVED)))
			continue;
		ids_guid_hex(rec.guid, hex);
		if (strcmp(hex, guid) != 0)
			continue;
		snprintf(fname, sizeof(fname), "%u.", rec.uid);
		if (fstatat(mb->datafd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != rec.size ||
		    ids_guid_file(mb->datafd, fname, sha) < 0 ||
		    memcmp(sha, rec.guid, IDS_GUID_LEN) != 0)
			continue;
		found = rec.uid;
		*size = rec.size;
	}
	ids_index_free(idx);
	return found;
}

struct scan_rock {
	struct ids_repl_names names;
};

static int
scan_live(const struct ids_mbentry *e, void *rock)
{
	struct scan_rock *sr = rock;

	if (ids_mbentry_is_tombstone(e) || ids_mbtype_has(e->mbtype, IDS_MBFLAG_REMOTE) ||
	    ids_mbtype_has(e->mbtype, IDS_MBFLAG_INTERMEDIATE) ||
	    ids_mbtype_has(e->mbtype, IDS_MBFLAG_RESERVED))
		return 0;
	return ids_repl_names_add(&sr->names, e->name);
}

/* 1 and *mbp (open, shared) when the folder name holds an intact file of guid. */
static int
try_folder(struct ids_repl_session *s, const char *name, const char *guid,
    struct ids_mailbox **mbp, uint32_t *uid, uint64_t *size)
{
	struct ids_mailbox *mb;

	if (ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb) < 0)
		return 0;
	if ((*uid = intact_uid(mb, guid, size)) != 0) {
		*mbp = mb;
		return 1;
	}
	ids_mailbox_close(mb);
	return 0;
}

/*
 * A live folder holding an intact file of guid, searched in a bounded
 * order: the folder of uniqueid hint (may be NULL), then the other live
 * folders of its owner, then other live folders in mailboxes.db order
 * up to IDS_REPL_GUID_SCAN folders in all, so that a GUID held nowhere
 * costs a bounded number of index reads, not one per folder of the
 * spool.  1 with *mbp open (shared lock; the caller closes it), *uid and
 * *size; 0 when none holds one; or a negative code.
 */
int
ids_repl_find_guid(struct ids_repl_session *s, const char *hint, const char *guid,
    struct ids_mailbox **mbp, uint32_t *uid, uint64_t *size)
{
	struct ids_repl_names own = { NULL, 0, 0 };
	struct ids_mbentry e;
	struct ids_mbname mb;
	struct ids_scanpos pos;
	struct scan_rock sr;
	char owner[IDS_MBNAME_MAX + 1];
	size_t i, j, tried = 0;
	int r = 0, found = 0;

	*mbp = NULL;
	if (hint != NULL) {
		ids_mbentry_init(&e);
		if (ids_mboxlist_lookup_id(s->mbl, hint, &e) == 0 && !ids_mbentry_is_tombstone(&e)) {
			found = try_folder(s, e.name, guid, mbp, uid, size);
			tried++;
			/* its owner's folders next: where a copy of the message most likely is */
			if (!found && ids_mbname_parse_internal(&mb, e.name, 0) == 0 &&
			    ids_mbname_is_user(&mb) && ids_mbname_owner(&mb, owner, sizeof(owner)) > 0)
				r = ids_repl_user_folders(s, owner, 0, &own);
			for (i = 0; r >= 0 && !found && i < own.n && tried < IDS_REPL_GUID_SCAN; i++)
				if (strcmp(own.v[i], e.name) != 0) {
					found = try_folder(s, own.v[i], guid, mbp, uid, size);
					tried++;
				}
		}
		ids_mbentry_release(&e);
		if (found || r < 0) {
			s->guid_tried = tried;
			ids_repl_names_free(&own);
			return found ? 1 : r;
		}
	}
	memset(&pos, 0, sizeof(pos));
	do {
		memset(&sr, 0, sizeof(sr));
		r = ids_mboxlist_scan(s->mbl, &pos, 0, 256, scan_live, &sr);
		for (i = 0; r >= 0 && !found && i < sr.names.n && tried < IDS_REPL_GUID_SCAN; i++) {
			for (j = 0; j < own.n && strcmp(own.v[j], sr.names.v[i]) != 0; j++)
				;
			if (j < own.n)
				continue;	/* tried above (the hint's folder is among them) */
			found = try_folder(s, sr.names.v[i], guid, mbp, uid, size);
			tried++;
		}
		ids_repl_names_free(&sr.names);
	} while (r > 0 && !found && tried < IDS_REPL_GUID_SCAN);
	ids_repl_names_free(&own);
	s->guid_tried = tried;
	return found ? 1 : r < 0 ? r : 0;
}

int
ids_repl_get_fetchguid(struct ids_repl_session *s, const struct ids_dlist *arg)
{
	const char *guid = arg != NULL && arg->type == IDS_DL_KVLIST ? kv_str(arg, "GUID") :
	    ids_dlist_cstr(arg);
	const char *hint = kv_str(arg, "UNIQUEID");
	struct ids_mailbox *mb;
	struct ids_dlist *node;
	char fname[32];
	uint64_t size = 0;
	uint32_t uid = 0;
	int r;

	if (!guid_valid(guid))
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = ids_repl_find_guid(s, hint, guid, &mb, &uid, &size)) < 0)
		return ids_repl_refuse(s, guid, ids_repl_imap_error(r), r);
	if (r == 0) {
		ids_repl_log(s, LOG_INFO, "GET FETCHGUID %s: no intact file here (%zu folder(s) "
		    "searched, at most %d)", guid, s->guid_tried, IDS_REPL_GUID_SCAN);
		if (s->out == NULL)
			return ids_repl_refuse(s, guid, IDS_CSYNC_ENONEXISTENT, IDS_ENOTFOUND);
		return ids_csync_write_no(s->out, IDS_CSYNC_ENONEXISTENT,
		    "no intact file of that GUID in the folders searched");
	}
	snprintf(fname, sizeof(fname), "%u.", uid);
	/* the writer hashes the file again as it sends it: a change is not sent */
	if ((node = ids_csync_file_node(mb->entry.partition, guid, size, mb->datafd,
	    fname)) == NULL)
		r = -ENOMEM;
	else
		r = ids_repl_untagged(s, "MESSAGE", node);
	ids_dlist_free(node);
	ids_mailbox_close(mb);
	if (r < 0)
		return ids_repl_refuse(s, guid, ids_repl_imap_error(r), r);
	return ids_repl_ok(s, "success");
}

/* --- putting a file back ------------------------------------------------------ */

/* 1 when the file name in dirfd is a regular file of size and sha1 guid. */
static int
file_intact(int dirfd, const char *name, uint64_t size, const uint8_t guid[IDS_GUID_LEN],
    int *absent, int *irregular)
{
	uint8_t sha[IDS_GUID_LEN];
	struct stat st;

	*absent = *irregular = 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		*absent = errno == ENOENT;
		*irregular = !*absent;
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		*irregular = 1;
		return 0;
	}
	return (uint64_t)st.st_size == size && ids_guid_file(dirfd, name, sha) == 0 &&
	    memcmp(sha, guid, IDS_GUID_LEN) == 0;
}

/* Copies sfd to tfd while hashing it: *total bytes, their SHA-1 in md. */
static int
copy_hash(int sfd, int tfd, uint64_t *total, unsigned char md[EVP_MAX_MD_SIZE])
{
	unsigned char *buf = malloc(SYNC_BLOCK);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int mdlen = 0;
	ssize_t n;
	int r = 0;

	*total = 0;
	if (buf == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1)
		r = -ENOMEM;
	while (r == 0 && (n = read(sfd, buf, SYNC_BLOCK)) != 0) {
		if (n < 0) {
			r = errno == EINTR ? 0 : -errno;
			continue;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
			r = -EIO;
		else if ((r = IDS_FAILPOINT("sync.repair_write")) == 0)
			r = ids_write_all(tfd, buf, (size_t)n);
		*total += (uint64_t)n;
	}
	if (r == 0 && (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != IDS_GUID_LEN))
		r = -EIO;
	EVP_MD_CTX_free(ctx);
	free(buf);
	return r;
}

/* Copies srcname of srcdir to tmp in dfd, checking size and SHA-1; fsynced. */
static int
copy_checked(int srcdir, const char *srcname, int dfd, const char *tmp, uint64_t size,
    const uint8_t guid[IDS_GUID_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	uint64_t total = 0;
	int sfd = -1, tfd = -1, r;

	if ((r = ids_open_regular(srcdir, srcname, NULL, &sfd)) < 0)
		return r;
	/* a crash may have left one behind */
	if ((r = IDS_FAILPOINT("sync.repair_clean")) < 0 ||
	    (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT && (r = -errno) < 0) ||
	    (r = IDS_FAILPOINT("sync.repair_create")) < 0)
		goto out;
	if ((tfd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600)) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = copy_hash(sfd, tfd, &total, md)) < 0)
		goto out;
	if (total != size || memcmp(md, guid, IDS_GUID_LEN) != 0) {
		r = ids_error(IDS_ECRC, "the file's size or SHA-1 is not the record's");
		goto out;
	}
	if ((r = IDS_FAILPOINT("sync.repair_fsync")) < 0 || (fsync(tfd) < 0 && (r = -errno) < 0))
		goto out;
out:
	if (tfd >= 0 && close(tfd) < 0 && r == 0)
		r = -errno;
	if (tfd >= 0 && r < 0)
		unlinkat(dfd, tmp, 0);
	close(sfd);
	return r;
}

/*
 * The verified copy tmp in place of name: renamed over the damaged
 * file, or, where name is free, moved there without replacing anything
 * that appeared meanwhile (RENAME_NOREPLACE; link and unlink where the
 * file system lacks it).
 */
static int
install(int dfd, const char *tmp, const char *name, int absent)
{
	int r;

	if ((r = IDS_FAILPOINT("sync.repair_rename")) < 0)
		goto fail;
	if (!absent) {
		if (renameat(dfd, tmp, dfd, name) < 0) {
			r = -errno;
			goto fail;
		}
		return 0;
	}
	if (renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS) {
		r = errno == EEXIST ? ids_error(IDS_EBUSY, "%s appeared meanwhile; left alone",
		    name) : -errno;
		goto fail;
	}
	if ((r = IDS_FAILPOINT("sync.repair_link")) < 0 || (linkat(dfd, tmp, dfd, name, 0) < 0 &&
	    (r = errno == EEXIST ? ids_error(IDS_EBUSY, "%s appeared meanwhile; left alone",
	    name) : -errno) < 0))
		goto fail;
	if ((r = IDS_FAILPOINT("sync.repair_unlink")) < 0 ||
	    (unlinkat(dfd, tmp, 0) < 0 && (r = -errno) < 0))
		return r;
	return 0;
fail:
	unlinkat(dfd, tmp, 0);
	return r;
}

/*
 * Record rec of the open folder mb, if it names guid and its file is
 * missing or damaged: the file srcname of srcdir put back.  1 put back,
 * 0 nothing to do, or a negative code.
 */
static int
place_one(struct ids_repl_session *s, struct ids_mailbox *mb,
    const struct ids_index_record *rec, const char *guid, int srcdir, const char *srcname)
{
	char hex[IDS_GUID_HEXLEN + 1], fname[32], tmp[48];
	int r, absent, irregular;

	if (((rec->system_flags & IDS_FLAG_EXPUNGED) && (rec->system_flags & IDS_FLAG_UNLINKED)) ||
	    (rec->system_flags & IDS_FLAG_ARCHIVED))
		return 0;
	ids_guid_hex(rec->guid, hex);
	if (strcmp(hex, guid) != 0)
		return 0;
	snprintf(fname, sizeof(fname), "%u.", rec->uid);
	snprintf(tmp, sizeof(tmp), "%u.repair.NEW", rec->uid);
	if (file_intact(mb->datafd, fname, rec->size, rec->guid, &absent, &irregular))
		return 0;
	if (irregular) {
		ids_repl_log(s, LOG_ERR, "%s: uid %u: not a regular file; left alone",
		    mb->entry.name, rec->uid);
		return 0;
	}
	if ((r = copy_checked(srcdir, srcname, mb->datafd, tmp, rec->size, rec->guid)) < 0 ||
	    (r = install(mb->datafd, tmp, fname, absent)) < 0 ||
	    (r = ids_fsync_dir(mb->datafd)) < 0)
		return r;
	ids_repl_log(s, LOG_NOTICE, "%s (%s): uid %u: %s file of GUID %s put back",
	    mb->entry.name, mb->entry.uniqueid, rec->uid, absent ? "missing" : "damaged", guid);
	return 1;
}

/*
 * Puts the file srcname of srcdir, of GUID guid, back under every uid
 * of the live folder uniqueid (name, when not NULL, must hold it:
 * IDS_EDUPID otherwise) whose record names guid, needs a file and has
 * none that is intact.  Adds each uid healed to uids (may be NULL) and
 * to *placed.  Under the folder's exclusive lock; no record changes.
 */
int
ids_repl_repair_place(struct ids_repl_session *s, const char *uniqueid, const char *name,
    const char *guid, int srcdir, const char *srcname, struct ids_dlist *uids, size_t *placed)
{
	struct ids_mbentry e;
	struct ids_mailbox *mb;
	struct ids_index *idx = NULL;
	struct ids_index_record rec;
	uint32_t i;
	int r;

	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup_id(s->mbl, uniqueid, &e);
	if (r == 0 && ids_mbentry_is_tombstone(&e))
		r = ids_error(IDS_ENOTFOUND, "%s: live nowhere here", uniqueid);
	if (r == 0 && name != NULL && strcmp(e.name, name) != 0)
		r = ids_error(IDS_EDUPID, "%s is %s here, not %s", uniqueid, e.name, name);
	if (r == 0)
		r = ids_mailbox_open(s->mbl, e.name, IDS_MAILBOX_WRITE, IDS_LOCK_TIMEOUT_MS, &mb);
	ids_mbentry_release(&e);
	if (r < 0)
		return r;
	if (strcmp(mb->entry.uniqueid, uniqueid) != 0)
		r = ids_error(IDS_EBUSY, "%s: renamed meanwhile", mb->entry.name);
	if (r == 0)
		r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx);
	for (i = 0; r == 0 && i < ids_index_header(idx)->num_records; i++) {
		if (ids_index_record(idx, i, &rec) < 0 ||
		    (r = place_one(s, mb, &rec, guid, srcdir, srcname)) <= 0)
			continue;
		(*placed)++;
		r = uids != NULL ? ids_dlist_add_num(uids, NULL, rec.uid) : 0;
	}
	ids_index_free(idx);
	ids_mailbox_close(mb);
	return r;
}

/* --- APPLY REPAIR --------------------------------------------------------------- */

int
ids_repl_apply_repair(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *id = kv_str(kv, "UNIQUEID"), *name = kv_str(kv, "MBOXNAME");
	const struct ids_dlist *files = kv != NULL && kv->type == IDS_DL_KVLIST ?
	    ids_dlist_get(kv, "MESSAGE") : NULL, *f;
	struct ids_dlist *uids;
	size_t placed = 0;
	int r = 0;

	if (id == NULL || ids_uniqueid_check(id) < 0 || files == NULL ||
	    files->type != IDS_DL_LIST) {
		ids_csync_unlink_files(kv);
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	}
	if ((uids = ids_dlist_new_list()) == NULL) {
		ids_csync_unlink_files(kv);
		return -ENOMEM;
	}
	for (f = files->head; f != NULL && r == 0; f = f->next) {
		if (f->type != IDS_DL_FILE || f->file == NULL || f->file->name == NULL)
			continue;
		r = ids_repl_repair_place(s, id, name, f->file->guid, s->stagefd, f->file->name,
		    uids, &placed);
	}
	/* the staged files are copies: they go at once */
	ids_csync_unlink_files(kv);
	if (r < 0) {
		ids_dlist_free(uids);
		return ids_repl_refuse(s, name != NULL ? name : id, ids_repl_imap_error(r), r);
	}
	ids_repl_log(s, LOG_INFO, "APPLY REPAIR %s (%s): %zu file(s) put back",
	    name != NULL ? name : "-", id, placed);
	r = ids_repl_untagged(s, "REPAIRED", uids);
	ids_dlist_free(uids);
	return r < 0 ? r : ids_repl_ok(s, "success");
}
