/*
 * bench-lookup.c - by-name lookups in mailboxes.db against a bare
 * mdb_get loop over the same keys.
 *
 *   bench-lookup DIR
 *
 * Fills a fresh mailboxes.db in DIR with 100,000 mailboxes (users,
 * nested folders, domains), then times 1,000,000 lookups by internal
 * name, single threaded, through ids_txn_lookup_name() (name parsing,
 * dbname encoding, mdb_get and decoding of the record into an entry),
 * and a bare mdb_get loop on the same, already encoded, keys in the
 * same environment, each in one read transaction.  The two loops take
 * turns for ROUNDS rounds and each keeps its best round, so that the
 * load of a shared machine weighs on both alike.  Prints both rates
 * and their ratio (target: the library at least 0.5 of the bare loop).
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "error.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"

#define NBOXES 100000
#define NLOOKUPS 1000000
#define ROUNDS 11

static char **names;
static struct { char *key; size_t len; } *keys;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "bench-lookup: %s: %s\n", what, ids_errmsg(r));
		exit(1);
	}
}

static int
fill_txn(struct ids_txn *txn, void *rock)
{
	int *base = rock, i, r;
	struct ids_mbentry e;
	char id[17];

	for (i = *base; i < *base + 10000 && i < NBOXES; i++) {
		ids_mbentry_init(&e);
		e.name = strdup(names[i]);
		snprintf(id, sizeof(id), "%016x", i + 1);
		e.uniqueid = strdup(id);
		e.partition = strdup("default");
		strcpy(e.mbtype, "e");
		e.uidvalidity = 1700000000u + (unsigned)i;
		ids_acl_set(&e.acl, &e.nacl, "owner", "lrswipkxtecdan");
		r = ids_txn_put(txn, &e);
		ids_mbentry_release(&e);
		if (r < 0)
			return r;
	}
	return 0;
}

static void
make_names(void)
{
	char buf[256];
	struct ids_mbname mb;
	char db[1100];
	int i, n;

	names = calloc(NBOXES, sizeof(*names));
	keys = calloc(NBOXES, sizeof(*keys));
	for (i = 0; i < NBOXES; i++) {
		int user = i / 10, box = i % 10;

		if (user % 3 == 0)
			snprintf(buf, sizeof(buf), "example%d.com!user.u%d%s%s%d", user % 97, user,
			    box ? ".Folder" : "", box ? "." : "", box);
		else
			snprintf(buf, sizeof(buf), "user.u%d%s%s", user, box ? ".Archive.Sub" : "",
			    box ? (char[4]){ '.', (char)('a' + box), 0, 0 } : "");
		names[i] = strdup(buf);
		check(ids_mbname_parse_internal(&mb, buf, 0), buf);
		check(n = ids_mbname_dbname(&mb, db + 1, sizeof(db) - 1), buf);
		db[0] = 'N';
		keys[i].key = malloc((size_t)n + 1);
		memcpy(keys[i].key, db, (size_t)n + 1);
		keys[i].len = (size_t)n + 1;
	}
}

struct run {
	double secs;
	unsigned long found;
};

static int
lib_txn(struct ids_txn *txn, void *rock)
{
	struct run *r = rock;
	struct ids_mbentry e;
	double t0 = now();
	long i;

	for (i = 0; i < NLOOKUPS; i++) {
		ids_mbentry_init(&e);
		if (ids_txn_lookup_name(txn, names[(i * 7919) % NBOXES], &e) == 0)
			r->found++;
		ids_mbentry_release(&e);
	}
	r->secs = now() - t0;
	return 0;
}

struct bare_env {
	MDB_env *env;
	MDB_dbi dbi;
};

static void
bare_open(struct bare_env *b, const char *path)
{
	MDB_txn *txn;

	if (mdb_env_create(&b->env) || mdb_env_set_mapsize(b->env, (size_t)1 << 30) ||
	    mdb_env_open(b->env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOTLS, 0640) ||
	    mdb_txn_begin(b->env, NULL, MDB_RDONLY, &txn) ||
	    mdb_dbi_open(txn, NULL, 0, &b->dbi)) {
		fprintf(stderr, "bench-lookup: cannot open %s\n", path);
		exit(1);
	}
	mdb_txn_abort(txn);
}

static void
bare(struct bare_env *b, struct run *r)
{
	MDB_txn *txn;
	MDB_val k, v;
	double t0;
	long i;

	if (mdb_txn_begin(b->env, NULL, MDB_RDONLY, &txn)) {
		fprintf(stderr, "bench-lookup: cannot begin a read transaction\n");
		exit(1);
	}
	t0 = now();
	for (i = 0; i < NLOOKUPS; i++) {
		k.mv_data = keys[(i * 7919) % NBOXES].key;
		k.mv_size = keys[(i * 7919) % NBOXES].len;
		if (mdb_get(txn, b->dbi, &k, &v) == 0)
			r->found++;
	}
	r->secs = now() - t0;
	mdb_txn_abort(txn);
}

/* Keeps the faster of two rounds in *best. */
static void
keep_best(struct run *best, const struct run *r)
{
	if (best->secs == 0 || r->secs < best->secs)
		*best = *r;
}

int
main(int argc, char **argv)
{
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	struct run lib = { 0, 0 }, raw = { 0, 0 }, r;
	struct bare_env benv;
	char text[4200], path[4200];
	int base, round;

	if (argc != 2) {
		fprintf(stderr, "usage: bench-lookup DIR\n");
		return 2;
	}
	if (mkdir(argv[1], 0750) < 0 && errno != EEXIST) {
		perror(argv[1]);
		return 1;
	}
	snprintf(text, sizeof(text), "configdirectory: %s\npartition-default: %s\n", argv[1], argv[1]);
	check(ids_config_parse(&cfg, text, strlen(text), "bench.conf"), "config");
	check(ids_mboxlist_open(&cfg, IDS_MBOXLIST_CREATE, &mbl), "mailboxes.db");
	make_names();
	for (base = 0; base < NBOXES; base += 10000)
		check(ids_mboxlist_write(mbl, fill_txn, &base), "fill");
	snprintf(path, sizeof(path), "%s/mailboxes.db", argv[1]);
	bare_open(&benv, path);
	for (round = 0; round < ROUNDS; round++) {
		r.secs = 0;
		r.found = 0;
		check(ids_mboxlist_read(mbl, lib_txn, &r), "lookups");
		keep_best(&lib, &r);
		r.secs = 0;
		r.found = 0;
		bare(&benv, &r);
		keep_best(&raw, &r);
	}
	mdb_env_close(benv.env);
	printf("mailboxes.db: %d lookups by name over %d mailboxes, one thread, CPU time, "
	    "best of %d rounds\n", NLOOKUPS, NBOXES, ROUNDS);
	printf("%-40s %8.0f ns/op %10.0f ops/s  1.00x  (%lu found)\n", "bare mdb_get loop",
	    raw.secs / NLOOKUPS * 1e9, NLOOKUPS / raw.secs, raw.found);
	printf("%-40s %8.0f ns/op %10.0f ops/s  %.2fx  (%lu found; target >= 0.5x)\n",
	    "ids_txn_lookup_name (parse, key, decode)", lib.secs / NLOOKUPS * 1e9,
	    NLOOKUPS / lib.secs, raw.secs / lib.secs, lib.found);
	ids_mboxlist_close(mbl);
	snprintf(text, sizeof(text), "rm -rf '%s'", argv[1]);
	return system(text) == 0 ? 0 : 1;
}
