/*
 * mboxlist.c - mailboxes.db on LMDB (see mboxlist.h for the key schema
 * and the transaction model).
 *
 * MDB_NOTLS ties reader slots to transactions, not threads, so a
 * callback of one read transaction may run another (a walk that opens
 * each folder it visits).
 *
 * The environment is one file, $configdirectory/mailboxes.db (plus its
 * LMDB lock file mailboxes.db-lock), opened with full sync: an intent
 * record must be on disk before the file system change it authorises.
 * The map starts large and sparse (mboxlist_mapsize, default 1 GiB) and
 * doubles on MDB_MAP_FULL, as Postfix's slmdb does: abort, grow, run
 * the transaction again, a bounded number of times.  Another process
 * that grew the map shows up as MDB_MAP_RESIZED at txn begin, answered
 * by mdb_env_set_mapsize(env, 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "failpoint.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "journal.h"
#include "mboxname.h"

#define DEFAULT_MAPSIZE ((size_t)1 << 30)
#define MAX_MAPSIZE ((size_t)1 << 40)
#define MAX_RETRIES 12
#define FULL_MARGIN (64u << 10)	/* free bytes below which a write error means "full" */
#define VERSION_KEY "#version"

struct ids_mboxlist {
	const struct ids_config *cfg;
	MDB_env *env;
	MDB_dbi dbi;
	size_t mapsize;
	int rdonly;
	char path[PATH_MAX];
};

struct ids_txn {
	struct ids_mboxlist *mbl;
	MDB_txn *txn;
	int map_full;
	struct ids_buf key;
	struct ids_buf val;
	struct ids_buf note;	/* change journal entries of the folders written */
};

/*
 * Whether the file system holding mailboxes.db has no room left (less
 * than a few pages): LMDB reports a short write as EIO, so an ENOSPC
 * that cut a page write short reads as an I/O error unless checked.
 */
static int
fs_full(const struct ids_mboxlist *mbl)
{
	struct statvfs sv;

	if (statvfs(mbl->path, &sv) < 0)
		return 0;
	return (unsigned long long)sv.f_bavail * sv.f_frsize < FULL_MARGIN;
}

static int
db_error(const struct ids_mboxlist *mbl, int rc, const char *what)
{
	MDB_envinfo info;

	if (rc == MDB_NOTFOUND)
		return IDS_ENOTFOUND;
	if (rc == MDB_MAP_FULL)
		return ids_error(IDS_EDB, "%s: %s: the LMDB map is full (MDB_MAP_FULL) at %zu bytes",
		    mbl->path, what, mbl->env && mdb_env_info(mbl->env, &info) == 0 ?
		    info.me_mapsize : mbl->mapsize);
	if ((rc == ENOSPC || rc == EDQUOT || rc == EIO) && fs_full(mbl))
		return ids_error(-ENOSPC, "%s: %s: the file system is full (%s)", mbl->path, what,
		    strerror(ENOSPC));
	if (rc > 0)
		return ids_error(-rc, "%s: %s: %s", mbl->path, what, strerror(rc));
	return ids_error(IDS_EDB, "%s: %s: %s", mbl->path, what, mdb_strerror(rc));
}

/* Checked by ids_config_load: from 64K to MAX_MAPSIZE. */
static size_t
config_mapsize(const struct ids_config *cfg)
{
	if (cfg->mboxlist_mapsize == 0)
		return DEFAULT_MAPSIZE;
	return cfg->mboxlist_mapsize > MAX_MAPSIZE ? MAX_MAPSIZE : (size_t)cfg->mboxlist_mapsize;
}

/*
 * LMDB's meta page: a 16-byte page header, then the magic 0xBEEFC0DE
 * (host order).  Cyrus's own databases start with their names.
 */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_MAGIC_OFF 16

int
ids_mboxlist_check_file(const char *path)
{
	static const struct { const char *magic; size_t len; const char *what; } cyrus[] = {
		{ "\241\002\213\015twoskip file", 16, "a Cyrus twoskip database" },
		{ "\241\002\213\015skiplist file", 17, "a Cyrus skiplist database" },
	};
	unsigned char head[64];
	uint32_t magic;
	ssize_t n;
	size_t i;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			return ids_error(IDS_EUNSAFE, "%s: a symbolic link", path);
		return ids_error(-errno, "%s: %s", path, strerror(errno));
	}
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n < 0)
		return ids_error(-errno, "%s: %s", path, strerror(errno));
	if (n == 0)
		return 0;	/* created and never written: LMDB sets it up */
	if ((size_t)n >= LMDB_MAGIC_OFF + sizeof(magic)) {
		memcpy(&magic, head + LMDB_MAGIC_OFF, sizeof(magic));
		if (magic == LMDB_MAGIC)
			return 0;
	}
	for (i = 0; i < sizeof(cyrus) / sizeof(cyrus[0]); i++)
		if ((size_t)n >= cyrus[i].len && memcmp(head, cyrus[i].magic, cyrus[i].len) == 0)
			return ids_error(IDS_EFORMAT, "%s: not an idspool mailboxes.db (%s); "
			    "is this Cyrus's configuration directory?", path, cyrus[i].what);
	return ids_error(IDS_EFORMAT, "%s: not an idspool mailboxes.db (unknown format)", path);
}

static int
env_setup(struct ids_mboxlist *mbl, int create)
{
	unsigned envflags = MDB_NOSUBDIR | MDB_NOTLS | (mbl->rdonly ? MDB_RDONLY : 0);
	struct stat st;
	int rc, r, dead;

	if ((r = ids_mboxlist_check_file(mbl->path)) < 0)
		return r;
	if (stat(mbl->path, &st) < 0) {
		if (errno != ENOENT)
			return ids_error(-errno, "%s: %s", mbl->path, strerror(errno));
		if (!create)
			return ids_error(IDS_ENOTFOUND, "%s: no mailboxes.db (import or create one first)",
			    mbl->path);
		if ((r = IDS_FAILPOINT("mboxlist.create")) < 0)
			return ids_error(r, "%s: create: %s", mbl->path, strerror(-r));
	}
	if ((rc = mdb_env_create(&mbl->env)) != 0) {
		mbl->env = NULL;
		return db_error(mbl, rc, "create environment");
	}
	if ((rc = mdb_env_set_mapsize(mbl->env, mbl->mapsize)) != 0 ||
	    (rc = mdb_env_open(mbl->env, mbl->path, envflags, 0640)) != 0) {
		/* A failed open leaves a handle only good for closing. */
		mdb_env_close(mbl->env);
		mbl->env = NULL;
		return db_error(mbl, rc, "open");
	}
	/* A killed process leaves its reader slot behind; clear them. */
	mdb_reader_check(mbl->env, &dead);
	return 0;
}

static int
version_check(struct ids_txn *txn, void *rock)
{
	MDB_val k = { sizeof(VERSION_KEY) - 1, (void *)VERSION_KEY }, v;
	int rc, create = *(int *)rock;
	char buf[16];

	rc = mdb_get(txn->txn, txn->mbl->dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		if (!create)
			return 0;
		snprintf(buf, sizeof(buf), "%d", IDS_MBOXLIST_VERSION);
		v.mv_size = strlen(buf);
		v.mv_data = buf;
		rc = mdb_put(txn->txn, txn->mbl->dbi, &k, &v, 0);
		if (rc == MDB_MAP_FULL)
			txn->map_full = 1;
		return rc ? db_error(txn->mbl, rc, "write version") : 0;
	}
	if (rc != 0)
		return db_error(txn->mbl, rc, "read version");
	if (v.mv_size != 1 || ((char *)v.mv_data)[0] != '0' + IDS_MBOXLIST_VERSION)
		return ids_error(IDS_EFORMAT, "%s: format version '%.*s', this build reads %d",
		    txn->mbl->path, (int)(v.mv_size > 16 ? 16 : v.mv_size),
		    (char *)v.mv_data, IDS_MBOXLIST_VERSION);
	return 0;
}

int
ids_mboxlist_open(const struct ids_config *cfg, int flags,
    struct ids_mboxlist **mblp)
{
	struct ids_mboxlist *mbl;
	int r, create = (flags & IDS_MBOXLIST_CREATE) != 0;

	if ((mbl = calloc(1, sizeof(*mbl))) == NULL)
		return -ENOMEM;
	mbl->cfg = cfg;
	mbl->rdonly = (flags & IDS_MBOXLIST_RDONLY) != 0;
	mbl->mapsize = config_mapsize(cfg);
	if ((size_t)snprintf(mbl->path, sizeof(mbl->path), "%s/mailboxes.db",
	    cfg->configdirectory) >= sizeof(mbl->path)) {
		free(mbl);
		return ids_error(IDS_ETOOLONG, "configdirectory '%s'", cfg->configdirectory);
	}
	r = env_setup(mbl, create && !mbl->rdonly);
	if (r == 0)
		r = (mbl->rdonly ? ids_mboxlist_read : ids_mboxlist_write)(mbl,
		    version_check, &create);
	if (r < 0) {
		ids_mboxlist_close(mbl);
		return r;
	}
	*mblp = mbl;
	return 0;
}

void
ids_mboxlist_close(struct ids_mboxlist *mbl)
{
	if (mbl == NULL)
		return;
	if (mbl->env)
		mdb_env_close(mbl->env);
	free(mbl);
}

const char *
ids_mboxlist_path(const struct ids_mboxlist *mbl)
{
	return mbl->path;
}

const struct ids_config *
ids_txn_config(const struct ids_txn *txn)
{
	return txn->mbl->cfg;
}

const struct ids_config *
ids_mboxlist_config(const struct ids_mboxlist *mbl)
{
	return mbl->cfg;
}

/* Begins a transaction, adopting a map grown by another process. */
static int
txn_begin(struct ids_mboxlist *mbl, int write, struct ids_txn *txn)
{
	unsigned flags = write ? 0 : MDB_RDONLY;
	int rc, tries;

	memset(txn, 0, sizeof(*txn));
	txn->mbl = mbl;
	ids_buf_init(&txn->key);
	ids_buf_init(&txn->val);
	ids_buf_init(&txn->note);
	/* ids_mboxlist_trim could not open the environment again: try now. */
	if (mbl->env == NULL && (rc = env_setup(mbl, 0)) < 0)
		return rc;
	rc = mdb_txn_begin(mbl->env, NULL, flags, &txn->txn);
	/* Another process grew the map; it may do so again meanwhile. */
	for (tries = 0; rc == MDB_MAP_RESIZED && tries < MAX_RETRIES; tries++) {
		if ((rc = mdb_env_set_mapsize(mbl->env, 0)) == 0)
			rc = mdb_txn_begin(mbl->env, NULL, flags, &txn->txn);
	}
	if (rc == 0)
		rc = mdb_dbi_open(txn->txn, NULL, 0, &mbl->dbi);
	if (rc != 0) {
		if (txn->txn)
			mdb_txn_abort(txn->txn);
		txn->txn = NULL;
		return db_error(mbl, rc, "begin transaction");
	}
	return 0;
}

static void
txn_end(struct ids_txn *txn)
{
	if (txn->txn)
		mdb_txn_abort(txn->txn);
	txn->txn = NULL;
	ids_buf_release(&txn->key);
	ids_buf_release(&txn->val);
	ids_buf_release(&txn->note);
}

static int
grow_map(struct ids_mboxlist *mbl)
{
	MDB_envinfo info;
	size_t want;
	int rc;

	if (mdb_env_info(mbl->env, &info) == 0 && info.me_mapsize > mbl->mapsize)
		mbl->mapsize = info.me_mapsize;
	if (mbl->mapsize >= MAX_MAPSIZE)
		return ids_error(IDS_EDB, "%s: the LMDB map is full (MDB_MAP_FULL) at its largest "
		    "size, %zu bytes", mbl->path, mbl->mapsize);
	want = mbl->mapsize * 2;
	if ((rc = IDS_FAILPOINT("mboxlist.grow")) < 0)
		rc = -rc;
	else
		rc = mdb_env_set_mapsize(mbl->env, want);
	if (rc != 0) {
		/*
		 * A failed remap leaves the environment without a map: close
		 * it, so that the next transaction opens it afresh.
		 */
		mdb_env_close(mbl->env);
		mbl->env = NULL;
		return ids_error(rc > 0 ? -rc : IDS_EDB, "%s: the LMDB map is full (MDB_MAP_FULL) "
		    "at %zu bytes and cannot grow to %zu: %s", mbl->path, mbl->mapsize, want,
		    rc > 0 ? strerror(rc) : mdb_strerror(rc));
	}
	mbl->mapsize = want;
	return 0;
}

int
ids_mboxlist_read(struct ids_mboxlist *mbl, ids_txn_fn fn, void *rock)
{
	struct ids_txn txn;
	int r;

	if ((r = txn_begin(mbl, 0, &txn)) < 0)
		return r;
	r = fn(&txn, rock);
	txn_end(&txn);
	return r;
}

int
ids_mboxlist_write(struct ids_mboxlist *mbl, ids_txn_fn fn, void *rock)
{
	struct ids_txn txn;
	int attempt, r, rc;

	if (mbl->rdonly)
		return ids_error(IDS_EDB, "%s: opened read-only", mbl->path);
	for (attempt = 0; attempt < MAX_RETRIES; attempt++) {
		if ((r = txn_begin(mbl, 1, &txn)) < 0)
			return r;
		r = fn(&txn, rock);
		/* the folders changed, in the change journal before the commit (journal.h) */
		if (!txn.map_full && r >= 0 && txn.note.len > 0 &&
		    (rc = ids_journal_append(mbl->cfg, txn.note.s, txn.note.len)) < 0) {
			txn_end(&txn);
			return rc;
		}
		if (!txn.map_full && r >= 0) {
			if ((rc = IDS_FAILPOINT("mboxlist.commit")) < 0) {
				txn_end(&txn);
				return ids_error(rc, "%s: commit: %s", mbl->path, strerror(-rc));
			}
			rc = mdb_txn_commit(txn.txn);
			txn.txn = NULL;
			if (rc == MDB_MAP_FULL)
				txn.map_full = 1;
			else if (rc != 0)
				r = db_error(mbl, rc, "commit");
		}
		txn_end(&txn);
		if (!txn.map_full)
			return r;
		if ((r = grow_map(mbl)) < 0)
			return r;
	}
	return ids_error(IDS_EDB, "%s: the LMDB map is still full (MDB_MAP_FULL) after %d "
	    "attempts, at %zu bytes", mbl->path, MAX_RETRIES, mbl->mapsize);
}

/* --- keys ------------------------------------------------------------ */

/* The N key of a parsed name, written straight into txn->key. */
static int
key_mbname(struct ids_txn *txn, const struct ids_mbname *mb, const char *name, MDB_val *k)
{
	const size_t room = 2 * IDS_MBNAME_MAX + 8;	/* any dbname and its NUL */
	int n;

	ids_buf_reset(&txn->key);
	if (ids_buf_grow(&txn->key, 1 + room) < 0)
		return -ENOMEM;
	txn->key.s[0] = 'N';
	if ((n = ids_mbname_dbname(mb, txn->key.s + 1, room)) < 0)
		return n;
	txn->key.len = 1 + (size_t)n;
	if (txn->key.len > (size_t)mdb_env_get_maxkeysize(txn->mbl->env))
		return ids_error(IDS_ETOOLONG, "%s: key of %zu bytes for mailboxes.db",
		    name, txn->key.len);
	k->mv_size = txn->key.len;
	k->mv_data = txn->key.s;
	return 0;
}

static int
key_name(struct ids_txn *txn, const char *name, MDB_val *k)
{
	struct ids_mbname mb;
	int r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0)
		return r;
	return key_mbname(txn, &mb, name, k);
}

static int
key_raw(struct ids_txn *txn, char type, const char *id, MDB_val *k)
{
	size_t len = strlen(id);

	if (len == 0 || len + 1 > (size_t)mdb_env_get_maxkeysize(txn->mbl->env))
		return ids_error(IDS_EINVAL, "key '%c%s' of %zu bytes", type, id, len + 1);
	ids_buf_reset(&txn->key);
	ids_buf_addch(&txn->key, type);
	ids_buf_add(&txn->key, id, len);
	if (ids_buf_oom(&txn->key))
		return -ENOMEM;
	k->mv_size = txn->key.len;
	k->mv_data = txn->key.s;
	return 0;
}

static int
db_put(struct ids_txn *txn, MDB_val *k, const struct ids_buf *v, const char *what)
{
	MDB_val val = { v->len, v->s };
	int rc, r;

	if ((r = IDS_FAILPOINT("mboxlist.put")) < 0)
		return ids_error(r, "%s: %s: %s", txn->mbl->path, what, strerror(-r));
	rc = mdb_put(txn->txn, txn->mbl->dbi, k, &val, 0);
	if (rc == MDB_MAP_FULL)
		txn->map_full = 1;
	return rc ? db_error(txn->mbl, rc, what) : 0;
}

static int
db_del(struct ids_txn *txn, MDB_val *k, const char *what)
{
	int rc = mdb_del(txn->txn, txn->mbl->dbi, k, NULL);

	if (rc == MDB_MAP_FULL)
		txn->map_full = 1;
	return rc ? db_error(txn->mbl, rc, what) : 0;
}

/* --- entries --------------------------------------------------------- */

/*
 * A name that ids_mbname_parse_internal() accepts is already in its
 * normal form (that parser keeps the domain as written, and a parsed
 * name spells back exactly: test-mboxname.c), so the entry gets a plain
 * copy of it rather than a reprint.  The copy is made first because
 * name may be one of e's own strings, which the decoding frees.
 */
int
ids_txn_lookup_name(struct ids_txn *txn, const char *name, struct ids_mbentry *e)
{
	MDB_val k, v;
	char norm[IDS_MBNAME_MAX + 1];
	struct ids_mbname mb;
	size_t len;
	int r, rc;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0)
		return r;
	if ((len = strlen(name)) >= sizeof(norm))	/* the parse refuses these */
		return ids_error(IDS_ETOOLONG, "name longer than %d bytes", IDS_MBNAME_MAX);
	memcpy(norm, name, len + 1);
	if ((r = key_mbname(txn, &mb, norm, &k)) < 0)
		return r;
	if ((rc = mdb_get(txn->txn, txn->mbl->dbi, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? ids_error(IDS_ENOTFOUND, "%s: no such mailbox", norm) :
		    db_error(txn->mbl, rc, "lookup");
	return ids_mbentry_decode_n(e, norm, v.mv_data, v.mv_size);
}

int
ids_txn_lookup_id(struct ids_txn *txn, const char *uniqueid, struct ids_mbentry *e)
{
	MDB_val k, v;
	int r, rc;

	if ((r = ids_uniqueid_check(uniqueid)) < 0)
		return r;
	if ((r = key_raw(txn, 'I', uniqueid, &k)) < 0)
		return r;
	if ((rc = mdb_get(txn->txn, txn->mbl->dbi, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ?
		    ids_error(IDS_ENOTFOUND, "%s: no mailbox with this uniqueid", uniqueid) :
		    db_error(txn->mbl, rc, "lookup");
	return ids_mbentry_decode_i(e, uniqueid, v.mv_data, v.mv_size);
}

/*
 * Refuses to give e->uniqueid to e->name while another live name holds
 * it, and to put a live mailbox over a live one with another uniqueid.
 */
static int
check_put(struct ids_txn *txn, const struct ids_mbentry *e, struct ids_mbentry *cur)
{
	struct ids_mbentry other;
	int r, tomb = ids_mbentry_is_tombstone(e);

	ids_mbentry_init(&other);
	r = ids_txn_lookup_name(txn, e->name, &other);
	if (r == 0 && !tomb && !ids_mbentry_is_tombstone(&other) &&
	    (other.uniqueid == NULL || strcmp(other.uniqueid, e->uniqueid) != 0))
		r = ids_error(IDS_EEXIST, "%s: exists with uniqueid %s", e->name,
		    other.uniqueid ? other.uniqueid : "(none)");
	else if (r == 0 || r == IDS_ENOTFOUND)
		r = 0;
	ids_mbentry_release(&other);
	if (r < 0)
		return r;
	r = ids_txn_lookup_id(txn, e->uniqueid, cur);
	if (r == IDS_ENOTFOUND)
		return 0;
	if (r < 0 || tomb || strcmp(cur->name, e->name) == 0 ||
	    ids_mbentry_is_tombstone(cur))
		return r;
	/* The I record names another mailbox: is that one still live? */
	ids_mbentry_init(&other);
	r = ids_txn_lookup_name(txn, cur->name, &other);
	if (r == 0 && !ids_mbentry_is_tombstone(&other) && other.uniqueid != NULL &&
	    strcmp(other.uniqueid, e->uniqueid) == 0)
		r = ids_error(IDS_EDUPID, "uniqueid %s of %s is held by live mailbox %s",
		    e->uniqueid, e->name, cur->name);
	else
		r = 0;
	ids_mbentry_release(&other);
	return r;
}

int
ids_txn_put(struct ids_txn *txn, const struct ids_mbentry *e)
{
	struct ids_mbentry cur, merged;
	const struct ids_mbentry *w = e;
	MDB_val k;
	int r, have_i, tomb;

	if ((r = ids_uniqueid_check(e->uniqueid)) < 0 ||
	    (r = ids_mbtype_check(e->mbtype)) < 0)
		return r;
	tomb = ids_mbentry_is_tombstone(e);
	ids_mbentry_init(&cur);
	ids_mbentry_init(&merged);
	if ((r = check_put(txn, e, &cur)) < 0)
		goto out;
	have_i = cur.uniqueid != NULL;
	if ((r = key_name(txn, e->name, &k)) < 0)
		goto out;
	ids_buf_reset(&txn->val);
	if ((r = ids_mbentry_encode_n(e, &txn->val)) < 0 ||
	    (r = db_put(txn, &k, &txn->val, "write N record")) < 0)
		goto out;
	/* A tombstone rewrites the I record only when it names this mailbox. */
	if (tomb && have_i && strcmp(cur.name, e->name) != 0)
		goto out;
	/* The history is never trimmed: keep the stored one if e has none. */
	if (e->nhistory == 0 && have_i && cur.nhistory > 0) {
		if ((r = ids_mbentry_copy(&merged, e)) < 0)
			goto out;
		merged.history = cur.history;
		merged.nhistory = cur.nhistory;
		cur.history = NULL;
		cur.nhistory = 0;
		w = &merged;
	}
	if ((r = key_raw(txn, 'I', e->uniqueid, &k)) < 0)
		goto out;
	ids_buf_reset(&txn->val);
	if ((r = ids_mbentry_encode_i(w, &txn->val)) < 0)
		goto out;
	r = db_put(txn, &k, &txn->val, "write I record");
out:
	if (r >= 0 && (ids_journal_format(&txn->note, e->uniqueid, e->name) < 0 ||
	    (have_i && cur.name != NULL && strcmp(cur.name, e->name) != 0 &&
	    ids_journal_format(&txn->note, e->uniqueid, cur.name) < 0)))
		r = -ENOMEM;
	ids_mbentry_release(&merged);
	ids_mbentry_release(&cur);
	return r;
}

int
ids_txn_delete_name(struct ids_txn *txn, const char *name)
{
	MDB_val k;
	int r;

	if ((r = key_name(txn, name, &k)) < 0)
		return r;
	r = db_del(txn, &k, "delete N record");
	if (r >= 0 && ids_journal_format(&txn->note, NULL, name) < 0)
		r = -ENOMEM;
	return r == IDS_ENOTFOUND ? ids_error(r, "%s: no such mailbox", name) : r;
}

int
ids_txn_delete_id(struct ids_txn *txn, const char *uniqueid)
{
	MDB_val k;
	int r;

	if ((r = key_raw(txn, 'I', uniqueid, &k)) < 0)
		return r;
	r = db_del(txn, &k, "delete I record");
	return r == IDS_ENOTFOUND ?
	    ids_error(r, "%s: no mailbox with this uniqueid", uniqueid) : r;
}

/* --- iteration ------------------------------------------------------- */

struct scan {
	struct ids_txn *txn;
	const char *prefix;
	size_t plen;
	char sep;	/* after the prefix: 0 for any key, else this byte or end */
};

/*
 * Returns 1 while the key belongs to the scan.  Below a name, children
 * sort right after it (0x1F is below every byte a name may hold), so
 * the first key that does not match ends the scan.
 */
static int
scan_match(const struct scan *s, const MDB_val *k)
{
	const char *d = k->mv_data;

	if (k->mv_size < s->plen || memcmp(d, s->prefix, s->plen) != 0)
		return 0;
	return s->sep == 0 || k->mv_size == s->plen || d[s->plen] == s->sep;
}

static int
decode_entry(struct ids_txn *txn, const MDB_val *k, const MDB_val *v,
    struct ids_mbentry *e)
{
	struct ids_mbname mb;
	char name[IDS_MBNAME_MAX + 1];
	char id[IDS_UNIQUEID_MAX + 1];
	int r;

	if (((const char *)k->mv_data)[0] == 'I') {
		if (k->mv_size - 1 > IDS_UNIQUEID_MAX)
			return ids_error(IDS_ECORRUPT, "I key of %zu bytes", k->mv_size);
		memcpy(id, (const char *)k->mv_data + 1, k->mv_size - 1);
		id[k->mv_size - 1] = '\0';
		return ids_mbentry_decode_i(e, id, v->mv_data, v->mv_size);
	}
	if ((r = ids_mbname_parse_dbname(&mb, (const char *)k->mv_data + 1,
	    k->mv_size - 1, 0)) < 0 ||
	    (r = ids_mbname_internal(&mb, name, sizeof(name))) < 0)
		return r;
	return ids_mbentry_decode_n(e, name, v->mv_data, v->mv_size);
}

static int
scan_run(const struct scan *s, ids_entry_fn fn, void *rock)
{
	struct ids_txn *txn = s->txn;
	struct ids_mbentry e;
	MDB_cursor *cur;
	MDB_val k = { s->plen, (void *)s->prefix }, v;
	int rc, r = 0;

	if ((rc = mdb_cursor_open(txn->txn, txn->mbl->dbi, &cur)) != 0)
		return db_error(txn->mbl, rc, "open cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	    rc == 0 && r == 0 && scan_match(s, &k);
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ids_mbentry_init(&e);
		r = decode_entry(txn, &k, &v, &e);
		if (r == 0)
			r = fn(&e, rock);
		ids_mbentry_release(&e);
	}
	mdb_cursor_close(cur);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = db_error(txn->mbl, rc, "iterate");
	return r;
}

int
ids_txn_foreach(struct ids_txn *txn, const char *name, ids_entry_fn fn, void *rock)
{
	struct scan s = { txn, "N", 1, 0 };
	MDB_val k;
	char prefix[2 * IDS_MBNAME_MAX + 8];
	int r;

	if (name != NULL) {
		if ((r = key_name(txn, name, &k)) < 0)
			return r;
		memcpy(prefix, k.mv_data, k.mv_size);
		s.prefix = prefix;
		s.plen = k.mv_size;
		s.sep = 0x1F;
	}
	return scan_run(&s, fn, rock);
}

int
ids_txn_foreach_dbprefix(struct ids_txn *txn, const char *dbprefix, size_t len,
    ids_entry_fn fn, void *rock)
{
	char prefix[2 * IDS_MBNAME_MAX + 8];
	struct scan s = { txn, prefix, len + 1, 0 };

	if (len + 1 > sizeof(prefix))
		return ids_error(IDS_ETOOLONG, "prefix of %zu bytes", len);
	prefix[0] = 'N';
	memcpy(prefix + 1, dbprefix, len);
	return scan_run(&s, fn, rock);
}

int
ids_txn_foreach_id(struct ids_txn *txn, ids_entry_fn fn, void *rock)
{
	struct scan s = { txn, "I", 1, 0 };

	return scan_run(&s, fn, rock);
}

struct scanwalk {
	struct ids_scanpos *pos;
	int reverse;
	size_t max;
	ids_entry_fn fn;
	void *rock;
};

/* Puts the cursor on the first record of this batch. */
static int
scan_position(MDB_cursor *cur, const struct scanwalk *w, MDB_val *k, MDB_val *v)
{
	int rc;

	if (!w->pos->started) {
		*k = (MDB_val){ 1, w->reverse ? "O" : "N" };
		rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
		if (!w->reverse)
			return rc;
		return mdb_cursor_get(cur, k, v, rc == 0 ? MDB_PREV : MDB_LAST);
	}
	*k = (MDB_val){ w->pos->len, w->pos->key };
	rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	if (w->reverse)
		return mdb_cursor_get(cur, k, v, rc == 0 ? MDB_PREV : MDB_LAST);
	if (rc == 0 && k->mv_size == w->pos->len &&
	    memcmp(k->mv_data, w->pos->key, k->mv_size) == 0)
		rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
	return rc;
}

static int
scan_batch(struct ids_txn *txn, void *rock)
{
	struct scanwalk *w = rock;
	struct ids_mbentry e;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = 0;
	int rc, r = 0;

	if ((rc = mdb_cursor_open(txn->txn, txn->mbl->dbi, &cur)) != 0)
		return db_error(txn->mbl, rc, "open cursor");
	for (rc = scan_position(cur, w, &k, &v);
	    rc == 0 && r == 0 && n < w->max && k.mv_size > 1 &&
	    ((char *)k.mv_data)[0] == 'N' && k.mv_size <= sizeof(w->pos->key);
	    rc = mdb_cursor_get(cur, &k, &v, w->reverse ? MDB_PREV : MDB_NEXT)) {
		memcpy(w->pos->key, k.mv_data, k.mv_size);
		w->pos->len = k.mv_size;
		w->pos->started = 1;
		n++;
		ids_mbentry_init(&e);
		if ((r = decode_entry(txn, &k, &v, &e)) == 0)
			r = w->fn(&e, w->rock);
		ids_mbentry_release(&e);
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return db_error(txn->mbl, rc, "iterate");
	return (int)n;
}

int
ids_mboxlist_scan(struct ids_mboxlist *mbl, struct ids_scanpos *pos, int flags,
    size_t max, ids_entry_fn fn, void *rock)
{
	struct scanwalk w = { pos, (flags & IDS_SCAN_REVERSE) != 0, max, fn, rock };

	return ids_mboxlist_read(mbl, scan_batch, &w);
}

/* --- raw records ----------------------------------------------------- */

int
ids_txn_get_raw(struct ids_txn *txn, char type, const char *id, char **valp,
    size_t *lenp)
{
	MDB_val k, v;
	char *copy;
	int r, rc;

	if ((r = key_raw(txn, type, id, &k)) < 0)
		return r;
	if ((rc = mdb_get(txn->txn, txn->mbl->dbi, &k, &v)) != 0)
		return db_error(txn->mbl, rc, "read record");
	if ((copy = malloc(v.mv_size + 1)) == NULL)
		return -ENOMEM;
	memcpy(copy, v.mv_data, v.mv_size);
	copy[v.mv_size] = '\0';
	*valp = copy;
	if (lenp)
		*lenp = v.mv_size;
	return 0;
}

int
ids_txn_put_raw(struct ids_txn *txn, char type, const char *id, const char *val,
    size_t len)
{
	MDB_val k;
	int r;

	if ((r = key_raw(txn, type, id, &k)) < 0)
		return r;
	ids_buf_reset(&txn->val);
	if ((r = ids_buf_add(&txn->val, val, len)) < 0)
		return r;
	return db_put(txn, &k, &txn->val, "write record");
}

int
ids_txn_del_raw(struct ids_txn *txn, char type, const char *id)
{
	MDB_val k;
	int r;

	if ((r = key_raw(txn, type, id, &k)) < 0)
		return r;
	return db_del(txn, &k, "delete record");
}

int
ids_txn_foreach_raw(struct ids_txn *txn, char type, ids_raw_fn fn, void *rock)
{
	MDB_cursor *cur;
	MDB_val k = { 1, &type }, v;
	char id[512];
	int rc, r = 0;

	if ((rc = mdb_cursor_open(txn->txn, txn->mbl->dbi, &cur)) != 0)
		return db_error(txn->mbl, rc, "open cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	    rc == 0 && r == 0 && k.mv_size >= 1 && ((char *)k.mv_data)[0] == type;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size - 1 >= sizeof(id))
			continue;
		memcpy(id, (char *)k.mv_data + 1, k.mv_size - 1);
		id[k.mv_size - 1] = '\0';
		r = fn(id, v.mv_data, v.mv_size, rock);
	}
	mdb_cursor_close(cur);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = db_error(txn->mbl, rc, "iterate");
	return r;
}

/* --- one-shot lookups ------------------------------------------------ */

struct lookup {
	const char *key;
	struct ids_mbentry *e;
};

static int
lookup_name_txn(struct ids_txn *txn, void *rock)
{
	struct lookup *l = rock;

	return ids_txn_lookup_name(txn, l->key, l->e);
}

static int
lookup_id_txn(struct ids_txn *txn, void *rock)
{
	struct lookup *l = rock;

	return ids_txn_lookup_id(txn, l->key, l->e);
}

int
ids_mboxlist_lookup(struct ids_mboxlist *mbl, const char *name, struct ids_mbentry *e)
{
	struct lookup l = { name, e };

	return ids_mboxlist_read(mbl, lookup_name_txn, &l);
}

int
ids_mboxlist_lookup_id(struct ids_mboxlist *mbl, const char *uniqueid,
    struct ids_mbentry *e)
{
	struct lookup l = { uniqueid, e };

	return ids_mboxlist_read(mbl, lookup_id_txn, &l);
}

/* --- memory ---------------------------------------------------------- */

/*
 * LMDB tells the map's address only for MDB_FIXEDMAP environments, so
 * the map is dropped by closing the environment and opening it again
 * (with the map size it has grown to meanwhile).
 */
int
ids_mboxlist_trim(struct ids_mboxlist *mbl)
{
	MDB_envinfo info;

	if (mbl->env == NULL)
		return env_setup(mbl, 0);
	if (mdb_env_info(mbl->env, &info) == 0 && info.me_mapsize > mbl->mapsize)
		mbl->mapsize = info.me_mapsize;
	mdb_env_close(mbl->env);
	mbl->env = NULL;
	/* On failure the next transaction tries again (txn_begin). */
	return env_setup(mbl, 0);
}
