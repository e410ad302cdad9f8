/*
 * statecache.c - each folder's state line and MISSING list kept where
 * one read finds them, $configdirectory/syncstate.db (LMDB), valid
 * only while the files they were computed from are unchanged (sync.h,
 * spool-layout.md "The state cache").
 *
 * Key: the folder's uniqueid.  Value (little-endian as the host writes
 * it; the file is not carried between machines):
 *
 *	"IDSSTC01"			magic and format version
 *	u32 crc				CRC-32 of everything after this field
 *	u32 len				the whole value's length
 *	struct ids_sync_sig		what the state was computed from
 *	u32 n, n bytes			the entry key (ids_sync_entry_key)
 *	u32 n, n bytes			the MAILBOX kvlist as ids_dlist_print prints it
 *	u32 n, n bytes			the MISSING list, printed likewise; n 0
 *					when it was not computed (unknown)
 *
 * A value whose magic, length or CRC is wrong, or that does not parse,
 * is a miss, as is one whose signature or entry key is not the
 * folder's now: nothing in it is ever believed otherwise.  Puts are
 * queued and committed in one transaction by ids_sync_statecache_flush
 * (failpoint "sync.statecache_commit"); the environment is opened with
 * MDB_NOMETASYNC, so a crash loses at most the last commits, never the
 * consistency of the file, and a file LMDB refuses to open as its own
 * (damaged, another version) is removed and made anew: it holds nothing
 * that cannot be computed again.
 *
 * Entries of folders that are gone (deleted, or renamed to another
 * uniqueid) are swept by the flushes that commit puts, never by a
 * no-op session: a bounded run of entries after the last one examined
 * (key SC_SWEEP_KEY, wrapping at the end) is read, the caller's
 * ids_sync_statecache_live_fn says which have no live record, and
 * those are deleted in the transaction of the puts, before them (an
 * entry put by the same flush is never dropped by it).  Dropping an
 * entry only makes it a miss.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "buf.h"
#include "config.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "layout.h"
#include "mailbox.h"
#include "mbentry.h"
#include "sync/sync.h"

#define SC_FILE		"syncstate.db"
#define SC_MAPSIZE	((size_t)1 << 30)
#define SC_MAXMAP	((size_t)1 << 40)
#define SC_MAGIC	"IDSSTC01"
#define SC_QUEUE	4096		/* puts committed together at most */
#define SC_SETTLE_NS	((int64_t)2000000000)	/* see ids_sync_sig_settled */
#define SC_SWEEP_KEY	"#sweep"	/* not a uniqueid: where the sweep goes on */
#define SC_SWEEP_BASE	64		/* entries examined by a flush, plus */
#define SC_SWEEP_PER	16		/* this many a put it commits, */
#define SC_SWEEP_MAX	4096		/* up to this many */

struct sc_put {
	char *key;
	void *val;
	size_t len;
};

struct ids_sync_statecache {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *rtxn;		/* reset between reads */
	struct sc_put *q;
	size_t nq;
	ids_sync_statecache_live_fn live;	/* NULL: no sweep */
	void *live_rock;
	char **gone;		/* the sweep's entries with no live record */
	size_t ngone;
	char *swept;		/* the last entry the sweep examined, or NULL */
	char path[PATH_MAX];
};

/* --- signatures ---------------------------------------------------------- */

static void
sig_fill(struct ids_sync_sigfile *f, const struct stat *st)
{
	f->dev = (uint64_t)st->st_dev;
	f->ino = (uint64_t)st->st_ino;
	f->size = (uint64_t)st->st_size;
	f->mode = (uint64_t)st->st_mode;
	f->mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	f->ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

/* One file's part: an absent file is all zero (it may appear later: then it differs). */
static int
sig_one(int dirfd, const char *name, struct ids_sync_sigfile *f, int may_lack)
{
	struct stat st;

	memset(f, 0, sizeof(*f));
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH)) < 0) {
		if (errno == ENOENT && may_lack)
			return 0;
		return -errno;
	}
	sig_fill(f, &st);
	return 0;
}

int
ids_sync_sig_open(struct ids_mailbox *mb, struct ids_sync_sig *sig)
{
	int ifd = ids_mailbox_metafd(mb, IDS_META_INDEX), r;

	memset(sig, 0, sizeof(*sig));
	if ((r = sig_one(ifd, "cyrus.index", &sig->f[0], 0)) < 0 ||
	    (r = sig_one(ids_mailbox_metafd(mb, IDS_META_HEADER), "cyrus.header", &sig->f[1],
	    0)) < 0 ||
	    (r = sig_one(ifd, IDS_SYNC_FILE, &sig->f[2], 1)) < 0 ||
	    (r = sig_one(mb->datafd, "", &sig->f[3], 0)) < 0)
		return r;
	return 0;
}

/* An O_PATH descriptor of the directory path (no component followed at its end). */
static int
open_path(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/*
 * One walk of each directory's path (the data directory's, and the
 * metapartition's when the meta files live there), then fstatat by
 * name inside it: a walk of a long path costs more than the stat.
 */
int
ids_sync_sig_paths(const struct ids_config *cfg, const struct ids_mbentry *e,
    struct ids_sync_sig *sig)
{
	struct ids_mbname mbn;
	struct ids_location loc;
	char idir[PATH_MAX], hdir[PATH_MAX], ddir[PATH_MAX];
	int dfd = -1, ifd = -1, hfd = -1, r;

	memset(sig, 0, sizeof(*sig));
	if ((r = ids_location_from_entry(e, &mbn, &loc)) < 0 ||
	    (r = ids_path_metadir(cfg, &loc, IDS_META_INDEX, idir, sizeof(idir))) < 0 ||
	    (r = ids_path_metadir(cfg, &loc, IDS_META_HEADER, hdir, sizeof(hdir))) < 0 ||
	    (r = ids_path_datadir(cfg, &loc, ddir, sizeof(ddir))) < 0)
		return r;
	if ((r = dfd = open_path(ddir)) < 0)
		goto out;
	if (strcmp(idir, ddir) == 0)
		ifd = dfd;
	else if ((r = ifd = open_path(idir)) < 0)
		goto out;
	if (strcmp(hdir, ddir) == 0)
		hfd = dfd;
	else if (strcmp(hdir, idir) == 0)
		hfd = ifd;
	else if ((r = hfd = open_path(hdir)) < 0)
		goto out;
	if ((r = sig_one(ifd, "cyrus.index", &sig->f[0], 0)) < 0 ||
	    (r = sig_one(hfd, "cyrus.header", &sig->f[1], 0)) < 0 ||
	    (r = sig_one(ifd, IDS_SYNC_FILE, &sig->f[2], 1)) < 0 ||
	    (r = sig_one(dfd, "", &sig->f[3], 0)) < 0)
		goto out;
	r = 0;
out:
	if (hfd >= 0 && hfd != dfd && hfd != ifd)
		close(hfd);
	if (ifd >= 0 && ifd != dfd)
		close(ifd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/*
 * A change made within the same tick of the file system's clock as the
 * one the signature saw leaves the same times behind (and, written in
 * place, the same size and inode): a signature is trusted only when
 * every time in it is older than now by SC_SETTLE_NS, so that any later
 * change carries a later time.  A folder changed in the last seconds is
 * computed each time until it settles.
 */
int
ids_sync_sig_settled(const struct ids_sync_sig *sig)
{
	struct timespec ts;
	int64_t now;
	size_t i;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	for (i = 0; i < IDS_SYNC_SIG_FILES; i++)
		if (sig->f[i].mtime > now - SC_SETTLE_NS || sig->f[i].ctime > now - SC_SETTLE_NS)
			return 0;
	return 1;
}

char *
ids_sync_entry_key(const struct ids_mbentry *e)
{
	struct ids_buf b = IDS_BUF_INIT;
	char *acl = ids_sync_acl_string(e);

	if (acl == NULL)
		return NULL;
	ids_buf_printf(&b, "%s\t%s\t%s\t%llu\t%s\t%s", e->uniqueid, e->name,
	    e->partition ? e->partition : "", (unsigned long long)e->foldermodseq,
	    e->mbtype, acl);
	free(acl);
	if (ids_buf_oom(&b) < 0) {
		ids_buf_release(&b);
		return NULL;
	}
	return ids_buf_detach(&b, NULL);
}

/* --- the environment ---------------------------------------------------- */

static int
sc_error(const struct ids_sync_statecache *sc, int rc, const char *what)
{
	return ids_error(IDS_EDB, "%s: %s: %s", sc->path, what, mdb_strerror(rc));
}

static int
env_open(struct ids_sync_statecache *sc)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_env_create(&sc->env)) != 0)
		return rc;
	if ((rc = mdb_env_set_mapsize(sc->env, SC_MAPSIZE)) != 0 ||
	    (rc = mdb_env_open(sc->env, sc->path, MDB_NOSUBDIR | MDB_NOTLS | MDB_NOMETASYNC,
	    0600)) != 0 || (rc = mdb_txn_begin(sc->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &sc->dbi)) != 0 ||
	    (rc = IDS_FAILPOINT("sync.statecache_open")) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	mdb_env_close(sc->env);
	sc->env = NULL;
	return rc;
}

int
ids_sync_statecache_open(const struct ids_config *cfg, struct ids_sync_statecache **scp)
{
	struct ids_sync_statecache *sc = calloc(1, sizeof(*sc));
	char lock[PATH_MAX + 8];
	int rc;

	*scp = NULL;
	if (sc == NULL)
		return -ENOMEM;
	if ((size_t)snprintf(sc->path, sizeof(sc->path), "%s/%s", cfg->configdirectory,
	    SC_FILE) >= sizeof(sc->path)) {
		free(sc);
		return ids_error(IDS_ETOOLONG, "configdirectory too long for %s", SC_FILE);
	}
	rc = env_open(sc);
	if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH ||
	    rc == MDB_PAGE_NOTFOUND) {
		/* not a cache we can read: it holds nothing that cannot be computed again */
		snprintf(lock, sizeof(lock), "%s-lock", sc->path);
		if ((rc = IDS_FAILPOINT("sync.statecache_reset")) == 0) {
			unlink(sc->path);
			unlink(lock);
			rc = env_open(sc);
		}
	}
	if (rc != 0) {
		rc = sc_error(sc, rc, "open");
		free(sc);
		return rc;
	}
	*scp = sc;
	return 0;
}

static void
queue_free(struct ids_sync_statecache *sc)
{
	size_t i;

	for (i = 0; i < sc->nq; i++) {
		free(sc->q[i].key);
		free(sc->q[i].val);
	}
	sc->nq = 0;
	for (i = 0; i < sc->ngone; i++)
		free(sc->gone[i]);
	free(sc->gone);
	sc->gone = NULL;
	sc->ngone = 0;
	free(sc->swept);
	sc->swept = NULL;
}

void
ids_sync_statecache_set_live(struct ids_sync_statecache *sc, ids_sync_statecache_live_fn fn,
    void *rock)
{
	if (sc == NULL)
		return;
	sc->live = fn;
	sc->live_rock = rock;
}

static int
key_cmp(const MDB_val *a, const MDB_val *b)
{
	size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
	int c = memcmp(a->mv_data, b->mv_data, n);

	return c != 0 ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

static char *
key_dup(const MDB_val *k)
{
	char *s = malloc(k->mv_size + 1);

	if (s != NULL) {
		memcpy(s, k->mv_data, k->mv_size);
		s[k->mv_size] = '\0';
	}
	return s;
}

/*
 * Reads up to max entries after the last one swept (from the first
 * after the end), asks the caller which are gone, and keeps them in
 * sc->gone for commit_queue, with the last one read in sc->swept.  Any
 * failure only leaves the sweep out.
 */
static void
sweep_collect(struct ids_sync_statecache *sc, size_t max)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v, pos = { 0, NULL };
	char **ids = NULL, *posbuf = NULL;
	unsigned char *gone = NULL;
	size_t n = 0, i;
	int rc, wrapped = 0;

	if (sc->live == NULL || max == 0 ||
	    mdb_txn_begin(sc->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	if ((ids = calloc(max, sizeof(*ids))) == NULL || (gone = calloc(max, 1)) == NULL ||
	    mdb_cursor_open(txn, sc->dbi, &cur) != 0)
		goto out;
	k.mv_data = SC_SWEEP_KEY;
	k.mv_size = strlen(SC_SWEEP_KEY);
	if (mdb_get(txn, sc->dbi, &k, &v) == 0 && v.mv_size > 0 &&
	    (posbuf = malloc(v.mv_size)) != NULL) {
		memcpy(posbuf, v.mv_data, v.mv_size);
		pos.mv_data = posbuf;
		pos.mv_size = v.mv_size;
		k = pos;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && key_cmp(&k, &pos) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (n < max) {
		if (rc == MDB_NOTFOUND && !wrapped && pos.mv_size > 0) {
			wrapped = 1;
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
			continue;
		}
		if (rc != 0 || (wrapped && key_cmp(&k, &pos) > 0))
			break;
		if (k.mv_size > 0 && ((const char *)k.mv_data)[0] != '#') {
			if ((ids[n] = key_dup(&k)) == NULL)
				break;
			n++;
		}
		if (wrapped && key_cmp(&k, &pos) == 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	cur = NULL;
	mdb_txn_abort(txn);
	txn = NULL;
	if (n == 0 || sc->live(sc->live_rock, (const char *const *)ids, n, gone) < 0)
		goto out;
	if ((sc->gone = calloc(n, sizeof(*sc->gone))) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		if (gone[i]) {
			sc->gone[sc->ngone++] = ids[i];
			ids[i] = NULL;
		}
	sc->swept = ids[n - 1] != NULL ? ids[n - 1] : strdup(sc->gone[sc->ngone - 1]);
	ids[n - 1] = NULL;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	for (i = 0; ids != NULL && i < n; i++)
		free(ids[i]);
	free(ids);
	free(gone);
	free(posbuf);
}

void
ids_sync_statecache_close(struct ids_sync_statecache *sc)
{
	if (sc == NULL)
		return;
	ids_sync_statecache_flush(sc);
	queue_free(sc);
	free(sc->q);
	if (sc->rtxn != NULL)
		mdb_txn_abort(sc->rtxn);
	mdb_env_close(sc->env);
	free(sc);
}

/* One transaction of the queued puts: 0 or an LMDB code; *fp a failpoint's code. */
static int
commit_queue(struct ids_sync_statecache *sc, int *fp)
{
	MDB_txn *txn;
	MDB_val k, v;
	size_t i;
	int rc;

	if ((rc = mdb_txn_begin(sc->env, NULL, 0, &txn)) == MDB_MAP_RESIZED &&
	    mdb_env_set_mapsize(sc->env, 0) == 0)
		rc = mdb_txn_begin(sc->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	/* the sweep's entries gone, before the puts: never one put now */
	for (i = 0; rc == 0 && i < sc->ngone; i++) {
		k.mv_data = sc->gone[i];
		k.mv_size = strlen(sc->gone[i]);
		if ((rc = mdb_del(txn, sc->dbi, &k, NULL)) == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc == 0 && sc->swept != NULL) {
		k.mv_data = SC_SWEEP_KEY;
		k.mv_size = strlen(SC_SWEEP_KEY);
		v.mv_data = sc->swept;
		v.mv_size = strlen(sc->swept);
		rc = mdb_put(txn, sc->dbi, &k, &v, 0);
	}
	for (i = 0; rc == 0 && i < sc->nq; i++) {
		k.mv_data = sc->q[i].key;
		k.mv_size = strlen(sc->q[i].key);
		v.mv_data = sc->q[i].val;
		v.mv_size = sc->q[i].len;
		rc = mdb_put(txn, sc->dbi, &k, &v, 0);
	}
	if (rc != 0 || (*fp = IDS_FAILPOINT("sync.statecache_commit")) < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

int
ids_sync_statecache_flush(struct ids_sync_statecache *sc)
{
	MDB_envinfo info;
	int rc, fp = 0;

	if (sc == NULL || sc->nq == 0)
		return 0;	/* nothing to commit: no sweep either */
	sweep_collect(sc, sc->nq < (SC_SWEEP_MAX - SC_SWEEP_BASE) / SC_SWEEP_PER ?
	    SC_SWEEP_BASE + SC_SWEEP_PER * sc->nq : SC_SWEEP_MAX);
	rc = commit_queue(sc, &fp);
	/* a full map is doubled (up to SC_MAXMAP), with no transaction of ours open */
	while (rc == MDB_MAP_FULL && mdb_env_info(sc->env, &info) == 0 &&
	    info.me_mapsize < SC_MAXMAP) {
		if (sc->rtxn != NULL) {
			mdb_txn_abort(sc->rtxn);
			sc->rtxn = NULL;
		}
		if ((rc = mdb_env_set_mapsize(sc->env, 2 * info.me_mapsize)) == 0)
			rc = commit_queue(sc, &fp);
	}
	queue_free(sc);
	if (fp < 0)
		return fp;
	return rc != 0 ? sc_error(sc, rc, "commit") : 0;
}

/* --- values -------------------------------------------------------------- */

static int
put_str(struct ids_buf *b, const char *s, size_t n)
{
	uint32_t len = (uint32_t)n;

	ids_buf_add(b, &len, sizeof(len));
	ids_buf_add(b, s, n);
	return 0;
}

int
ids_sync_statecache_put(struct ids_sync_statecache *sc, const char *uniqueid,
    const struct ids_sync_sig *sig, const char *ekey, const struct ids_dlist *state,
    const struct ids_dlist *missing)
{
	struct ids_buf b = IDS_BUF_INIT, st = IDS_BUF_INIT, mi = IDS_BUF_INIT;
	uint32_t crc = 0, len;
	struct sc_put *q;
	size_t n;
	int r = 0;

	if (sc == NULL)
		return 0;
	if (sc->nq == SC_QUEUE && (r = ids_sync_statecache_flush(sc)) < 0)
		return r;
	ids_dlist_print(state, &st);
	if (missing != NULL)
		ids_dlist_print(missing, &mi);
	ids_buf_add(&b, SC_MAGIC, 8);
	ids_buf_add(&b, &crc, sizeof(crc));
	ids_buf_add(&b, &crc, sizeof(crc));	/* len, filled below */
	ids_buf_add(&b, sig, sizeof(*sig));
	put_str(&b, ekey, strlen(ekey));
	put_str(&b, st.s ? st.s : "", st.len);
	put_str(&b, mi.s ? mi.s : "", mi.len);
	if (ids_buf_oom(&st) < 0 || ids_buf_oom(&mi) < 0 || ids_buf_oom(&b) < 0) {
		r = -ENOMEM;
		goto out;
	}
	len = (uint32_t)b.len;
	memcpy(b.s + 12, &len, sizeof(len));
	crc = (uint32_t)crc32(0L, (const Bytef *)b.s + 12, (uInt)(b.len - 12));
	memcpy(b.s + 8, &crc, sizeof(crc));
	if (sc->q == NULL && (sc->q = calloc(SC_QUEUE, sizeof(*sc->q))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	q = &sc->q[sc->nq];
	if ((q->key = strdup(uniqueid)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	q->val = ids_buf_detach(&b, &n);
	q->len = n;
	sc->nq++;
out:
	ids_buf_release(&b);
	ids_buf_release(&st);
	ids_buf_release(&mi);
	return r;
}

/* The next length-prefixed string of p (of end); NULL when it does not fit. */
static const char *
get_str(const char **p, const char *end, size_t *n)
{
	uint32_t len;
	const char *s;

	if ((size_t)(end - *p) < sizeof(len))
		return NULL;
	memcpy(&len, *p, sizeof(len));
	*p += sizeof(len);
	if ((size_t)(end - *p) < len)
		return NULL;
	s = *p;
	*p += len;
	*n = len;
	return s;
}

/* Parses the printed dlist s (n bytes) into *out; 0 or a code. */
static int
parse_all(const char *s, size_t n, struct ids_dlist **out)
{
	int r;

	*out = NULL;
	if ((r = ids_dlist_parse(s, n, out, NULL)) < 0)
		return r;
	return *out == NULL ? IDS_ECORRUPT : 0;
}

int
ids_sync_statecache_get(struct ids_sync_statecache *sc, const char *uniqueid,
    const struct ids_sync_sig *sig, const char *ekey, struct ids_dlist **state,
    struct ids_dlist **missing)
{
	MDB_val k, v;
	const char *p, *end, *s;
	uint32_t crc, len;
	size_t n = 0;
	int rc, hit = 0;

	*state = *missing = NULL;
	if (sc == NULL)
		return 0;
	if (sc->rtxn == NULL)
		rc = mdb_txn_begin(sc->env, NULL, MDB_RDONLY, &sc->rtxn);
	else
		rc = mdb_txn_renew(sc->rtxn);
	if (rc == MDB_MAP_RESIZED && sc->rtxn == NULL && mdb_env_set_mapsize(sc->env, 0) == 0)
		rc = mdb_txn_begin(sc->env, NULL, MDB_RDONLY, &sc->rtxn);
	if (rc != 0)
		return 0;
	k.mv_data = (void *)uniqueid;
	k.mv_size = strlen(uniqueid);
	if (mdb_get(sc->rtxn, sc->dbi, &k, &v) != 0)
		goto out;
	p = v.mv_data;
	end = p + v.mv_size;
	if (v.mv_size < 16 + sizeof(*sig) || memcmp(p, SC_MAGIC, 8) != 0)
		goto out;
	memcpy(&crc, p + 8, sizeof(crc));
	memcpy(&len, p + 12, sizeof(len));
	if (len != v.mv_size ||
	    crc != (uint32_t)crc32(0L, (const Bytef *)p + 12, (uInt)(v.mv_size - 12)) ||
	    memcmp(p + 16, sig, sizeof(*sig)) != 0)
		goto out;
	p += 16 + sizeof(*sig);
	if ((s = get_str(&p, end, &n)) == NULL || n != strlen(ekey) || memcmp(s, ekey, n) != 0)
		goto out;
	if ((s = get_str(&p, end, &n)) == NULL || parse_all(s, n, state) < 0 ||
	    (*state)->type != IDS_DL_KVLIST)
		goto out;
	if ((s = get_str(&p, end, &n)) == NULL || p != end)
		goto out;
	if (n > 0 && (parse_all(s, n, missing) < 0 || (*missing)->type != IDS_DL_LIST))
		goto out;
	hit = 1;
out:
	mdb_txn_reset(sc->rtxn);
	if (!hit) {
		ids_dlist_free(*state);
		ids_dlist_free(*missing);
		*state = *missing = NULL;
	}
	return hit;
}
