/*
 * syncmeta.c - per-user replica data in $configdirectory/replica.db
 * (see sync.h): what APPLY SUB/SEEN/QUOTA/SIEVE/ANNOTATION carry and
 * GET META answers with, kept as the client sent it.
 *
 * One LMDB environment in one file, opened with full sync: each put or
 * delete is one transaction, durable when it returns, so a replica can
 * answer OK right after.  Keys are "<kind> NUL <owner> NUL <key>", so
 * all items of one owner and kind are one range of the key order.
 */
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "journal.h"
#include "sync/sync.h"

#define META_FILE	"replica.db"
#define META_MAPSIZE	((size_t)1 << 30)
#define META_MAXMAP	((size_t)1 << 40)

struct ids_sync_meta {
	const struct ids_config *cfg;
	MDB_env *env;
	MDB_dbi dbi;
	size_t mapsize;
	char path[PATH_MAX];
};

static int
meta_error(const struct ids_sync_meta *m, int rc, const char *what)
{
	return ids_error(IDS_EDB, "%s: %s: %s", m->path, what, mdb_strerror(rc));
}

int
ids_sync_meta_open(const struct ids_config *cfg, struct ids_sync_meta **mp)
{
	struct ids_sync_meta *m = calloc(1, sizeof(*m));
	int rc;

	*mp = NULL;
	if (m == NULL)
		return -ENOMEM;
	m->mapsize = META_MAPSIZE;
	m->cfg = cfg;
	if ((size_t)snprintf(m->path, sizeof(m->path), "%s/%s", cfg->configdirectory,
	    META_FILE) >= sizeof(m->path)) {
		free(m);
		return ids_error(IDS_ETOOLONG, "configdirectory too long for %s", META_FILE);
	}
	if ((rc = mdb_env_create(&m->env)) != 0) {
		free(m);
		return ids_error(IDS_EDB, "%s: %s", META_FILE, mdb_strerror(rc));
	}
	if ((rc = mdb_env_set_mapsize(m->env, m->mapsize)) != 0 ||
	    (rc = mdb_env_open(m->env, m->path, MDB_NOSUBDIR | MDB_NOTLS, 0600)) != 0) {
		rc = meta_error(m, rc, "open");
		ids_sync_meta_close(m);
		return rc;
	}
	*mp = m;
	return 0;
}

/* Begins a transaction (adopting a map another process grew) on the main DB. */
static int
txn_begin(struct ids_sync_meta *m, unsigned flags, MDB_txn **txnp)
{
	int rc = mdb_txn_begin(m->env, NULL, flags, txnp);

	if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(m->env, 0) == 0)
		rc = mdb_txn_begin(m->env, NULL, flags, txnp);
	if (rc == 0 && (rc = mdb_dbi_open(*txnp, NULL, 0, &m->dbi)) != 0)
		mdb_txn_abort(*txnp);
	return rc;
}

void
ids_sync_meta_close(struct ids_sync_meta *m)
{
	if (m == NULL)
		return;
	if (m->env)
		mdb_env_close(m->env);
	free(m);
}

/* "<kind> NUL <owner> NUL [key]" into b. */
static int
make_key(struct ids_buf *b, enum ids_sync_kind kind, const char *owner, const char *key)
{
	ids_buf_addch(b, (int)kind);
	ids_buf_addch(b, '\0');
	ids_buf_adds(b, owner);
	ids_buf_addch(b, '\0');
	if (key)
		ids_buf_adds(b, key);
	return ids_buf_oom(b);
}

/*
 * A write transaction running fn (0, a negative code, or an LMDB error),
 * with the map grown on MDB_MAP_FULL.  With user, that user's entry in
 * the change journal is made durable after fn and before the commit
 * (journal.h), so that rolling replication carries the change.
 */
static int
meta_write(struct ids_sync_meta *m, const char *user, int (*fn)(MDB_txn *, void *),
    void *rock)
{
	MDB_txn *txn;
	int attempt, rc, r;

	for (attempt = 0; attempt < 12; attempt++) {
		if ((rc = txn_begin(m, 0, &txn)) != 0)
			return meta_error(m, rc, "begin transaction");
		rc = fn(txn, rock);
		if (rc == 0 && user != NULL && *user != '\0' &&
		    (r = ids_journal_append_user(m->cfg, user)) < 0) {
			mdb_txn_abort(txn);
			return r;
		}
		if (rc == 0 && (r = IDS_FAILPOINT("sync.meta_commit")) < 0) {
			mdb_txn_abort(txn);
			return r;
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL)
			return rc == 0 ? 0 : rc < 0 ? rc : meta_error(m, rc, "write");
		if (m->mapsize >= META_MAXMAP || mdb_env_set_mapsize(m->env, m->mapsize * 2) != 0)
			return meta_error(m, rc, "grow map");
		m->mapsize *= 2;
	}
	return ids_error(IDS_EDB, "%s: map still full", m->path);
}

/*
 * A write of owner's data: the fence and the writers lock around the
 * transaction; user (owner, or NULL for a quota root's or a folder's
 * annotations, which -R does not carry) journaled inside it.
 */
static int
owner_write(struct ids_sync_meta *m, const char *user, int (*fn)(MDB_txn *, void *),
    void *rock)
{
	int wfd, r;

	if ((r = ids_journal_writer_lock(m->cfg, &wfd)) < 0)
		return r;
	r = meta_write(m, user, fn, rock);
	if (wfd >= 0)
		close(wfd);
	return r;
}

static int
barrier_fn(MDB_txn *txn, void *rock)
{
	(void)txn;
	(void)rock;
	return 0;
}

int
ids_sync_meta_barrier(const struct ids_config *cfg)
{
	struct ids_sync_meta *m;
	int r;

	if ((r = ids_sync_meta_open(cfg, &m)) < 0)
		return r;
	r = meta_write(m, NULL, barrier_fn, NULL);
	ids_sync_meta_close(m);
	return r;
}

struct put_rock {
	struct ids_buf *key, *val;
	struct ids_sync_meta *m;
};

static int
put_fn(MDB_txn *txn, void *rock)
{
	struct put_rock *p = rock;
	MDB_val k = { p->key->len, p->key->s }, v;
	int rc;

	if (p->val == NULL) {
		rc = mdb_del(txn, p->m->dbi, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	v.mv_size = p->val->len;
	v.mv_data = p->val->s;
	return mdb_put(txn, p->m->dbi, &k, &v, 0);
}

int
ids_sync_meta_put(struct ids_sync_meta *m, enum ids_sync_kind kind, const char *owner,
    const char *key, const struct ids_dlist *val)
{
	struct ids_buf k = IDS_BUF_INIT, v = IDS_BUF_INIT;
	struct put_rock p = { &k, val ? &v : NULL, m };
	int r;

	if ((r = make_key(&k, kind, owner, key)) == 0 && val)
		r = ids_dlist_print_wire(val, 0, &v, NULL, NULL);
	if (r == 0 && k.len > (size_t)mdb_env_get_maxkeysize(m->env))
		r = ids_error(IDS_ETOOLONG, "replica.db key of %zu bytes", k.len);
	if (r == 0)
		r = owner_write(m, kind == IDS_SYNC_SUB || kind == IDS_SYNC_SEEN ||
		    kind == IDS_SYNC_SIEVE ? owner : NULL, put_fn, &p);
	ids_buf_release(&k);
	ids_buf_release(&v);
	return r;
}

static int
parse_value(const MDB_val *v, struct ids_dlist **out)
{
	return ids_dlist_parse_flags(v->mv_data, v->mv_size, IDS_DLIST_WIRE, out, NULL);
}

int
ids_sync_meta_get(struct ids_sync_meta *m, enum ids_sync_kind kind, const char *owner,
    const char *key, struct ids_dlist **out)
{
	struct ids_buf k = IDS_BUF_INIT;
	MDB_txn *txn = NULL;
	MDB_val mk, v;
	int r, rc;

	*out = NULL;
	if ((r = make_key(&k, kind, owner, key)) < 0)
		return r;
	mk.mv_size = k.len;
	mk.mv_data = k.s;
	if ((rc = txn_begin(m, MDB_RDONLY, &txn)) != 0) {
		txn = NULL;
		r = meta_error(m, rc, "begin transaction");
	} else if ((rc = mdb_get(txn, m->dbi, &mk, &v)) == MDB_NOTFOUND)
		r = IDS_ENOTFOUND;
	else if (rc != 0)
		r = meta_error(m, rc, "read");
	else
		r = parse_value(&v, out);
	if (txn)
		mdb_txn_abort(txn);
	ids_buf_release(&k);
	return r;
}

/*
 * Calls fn(key, value) for every item whose key starts with prefix
 * (kind NUL owner NUL).  With del, deletes them instead.
 */
static int
range(MDB_txn *txn, MDB_dbi dbi, const struct ids_buf *prefix, ids_sync_meta_fn fn,
    void *rock, int del)
{
	MDB_cursor *cur;
	MDB_val k = { prefix->len, prefix->s }, v;
	struct ids_dlist *dl;
	int rc, r = 0;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return ids_error(IDS_EDB, "replica.db: cursor: %s", mdb_strerror(rc));
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && r == 0 && k.mv_size >= prefix->len &&
	    memcmp(k.mv_data, prefix->s, prefix->len) == 0) {
		if (del) {
			rc = mdb_cursor_del(cur, 0);
		} else {
			char *key = strndup((const char *)k.mv_data + prefix->len,
			    k.mv_size - prefix->len);

			if (key == NULL)
				r = -ENOMEM;
			else if ((r = parse_value(&v, &dl)) == 0) {
				r = fn(key, dl, rock);
				ids_dlist_free(dl);
			}
			free(key);
		}
		if (rc == 0 && r == 0)
			rc = mdb_cursor_get(cur, &k, &v, del ? MDB_GET_CURRENT : MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r;
	if (rc == 0 || rc == MDB_NOTFOUND || rc == EINVAL)
		return 0;
	return ids_error(IDS_EDB, "replica.db: %s", mdb_strerror(rc));
}

int
ids_sync_meta_foreach(struct ids_sync_meta *m, enum ids_sync_kind kind, const char *owner,
    ids_sync_meta_fn fn, void *rock)
{
	struct ids_buf p = IDS_BUF_INIT;
	MDB_txn *txn;
	int r, rc;

	if ((r = make_key(&p, kind, owner, NULL)) < 0)
		return r;
	if ((rc = txn_begin(m, MDB_RDONLY, &txn)) != 0) {
		ids_buf_release(&p);
		return meta_error(m, rc, "begin transaction");
	}
	r = range(txn, m->dbi, &p, fn, rock, 0);
	mdb_txn_abort(txn);
	ids_buf_release(&p);
	return r;
}

struct owner_rock {
	struct ids_sync_meta *m;
	const char *owner;
};

static int
delete_owner_fn(MDB_txn *txn, void *rock)
{
	static const enum ids_sync_kind kinds[] = {
		IDS_SYNC_SUB, IDS_SYNC_SEEN, IDS_SYNC_QUOTA, IDS_SYNC_SIEVE, IDS_SYNC_ANNOTATION,
	};
	struct owner_rock *o = rock;
	struct ids_buf p = IDS_BUF_INIT;
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		ids_buf_reset(&p);
		if ((r = make_key(&p, kinds[i], o->owner, NULL)) == 0)
			r = range(txn, o->m->dbi, &p, NULL, NULL, 1);
	}
	ids_buf_release(&p);
	return r;
}

int
ids_sync_meta_delete_owner(struct ids_sync_meta *m, const char *owner)
{
	struct owner_rock o = { m, owner };

	return owner_write(m, owner, delete_owner_fn, &o);
}
