/*
 * rolling.c - failure records, journal batches and channel status of
 * rolling replication (rolling.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "lock.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "journal.h"
#include "sync/rolling.h"
#include "sync/sync.h"

#define FAILURES "failures"
#define FAILURES_MAX ((size_t)64 << 20)

/* --- names ------------------------------------------------------------------ */

int
ids_sync_names_has(const struct ids_sync_names *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return 1;
	return 0;
}

int
ids_sync_names_add(struct ids_sync_names *s, const char *name)
{
	char **nv;

	if (ids_sync_names_has(s, name))
		return 0;
	if ((nv = realloc(s->v, (s->n + 1) * sizeof(*nv))) == NULL)
		return -ENOMEM;
	s->v = nv;
	if ((nv[s->n] = strdup(name)) == NULL)
		return -ENOMEM;
	s->n++;
	return 0;
}

void
ids_sync_names_release(struct ids_sync_names *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* --- failure records -------------------------------------------------------- */

static int
esc(struct ids_buf *b, const char *s)
{
	const unsigned char *p;
	int r = 0;

	for (p = (const unsigned char *)(s ? s : ""); *p != '\0' && r == 0; p++)
		r = (*p < 0x20 || *p > 0x7e || *p == '\\') ?
		    ids_buf_printf(b, "\\x%02x", *p) : ids_buf_addch(b, *p);
	return r;
}

static char *
unesc(const char *s, size_t len)
{
	char *v = malloc(len + 1), *w = v;
	size_t i;

	if (v == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned x;

		if (s[i] == '\\' && len - i >= 4 && s[i + 1] == 'x' &&
		    sscanf(s + i + 2, "%2x", &x) == 1) {
			*w++ = (char)x;
			i += 3;
		} else {
			*w++ = s[i];
		}
	}
	*w = '\0';
	return v;
}

void
ids_sync_failures_release(struct ids_sync_failures *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->v[i].key);
		free(f->v[i].code);
		free(f->v[i].name);
		free(f->v[i].reason);
	}
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

static int
add_record(struct ids_sync_failures *f, const struct ids_sync_failure *x)
{
	struct ids_sync_failure *nv = realloc(f->v, (f->n + 1) * sizeof(*nv));

	if (nv == NULL)
		return -ENOMEM;
	f->v = nv;
	nv[f->n++] = *x;
	return 0;
}

/* "=name": the key of a name without a folder here (and of an older record). */
static char *
name_key(const char *name)
{
	size_t len = strlen(name);
	char *k = malloc(len + 2);

	if (k != NULL) {
		k[0] = '=';
		memcpy(k + 1, name, len + 1);
	}
	return k;
}

/* One line's fields t[0..k) into x: the current form (8) or the older one (6). */
static int
parse_record(char **t, int k, struct ids_sync_failure *x)
{
	unsigned long long a, fi, la, ne;
	int o = k == 8 ? 3 : 1;

	memset(x, 0, sizeof(*x));
	if ((k != 8 && k != 6) || sscanf(t[o], "%llu", &a) != 1 ||
	    sscanf(t[o + 1], "%llu", &fi) != 1 || sscanf(t[o + 2], "%llu", &la) != 1 ||
	    sscanf(t[o + 3], "%llu", &ne) != 1)
		return 0;
	x->attempts = (unsigned)a;
	x->first = (int64_t)fi;
	x->last = (int64_t)la;
	x->next = (int64_t)ne;
	x->reason = unesc(t[o + 4], strlen(t[o + 4]));
	if (k == 8) {
		x->key = unesc(t[0], strlen(t[0]));
		x->code = unesc(t[1], strlen(t[1]));
		x->name = unesc(t[2], strlen(t[2]));
	} else {
		x->name = unesc(t[0], strlen(t[0]));
		x->key = x->name != NULL ? name_key(x->name) : NULL;
		x->code = strdup(IDS_SYNC_FAIL_REFUSED);
	}
	if (x->key == NULL || x->code == NULL || x->name == NULL || x->reason == NULL) {
		free(x->key);
		free(x->code);
		free(x->name);
		free(x->reason);
		return -ENOMEM;
	}
	return 1;
}

int
ids_sync_failures_read(const struct ids_config *cfg, const char *channel,
    struct ids_sync_failures *f)
{
	char *s = NULL, *p, *end;
	size_t len;
	int dfd, r;

	f->v = NULL;
	f->n = 0;
	if ((r = ids_journal_channel_dir(cfg, channel, 0, &dfd)) < 0)
		return r == -ENOENT ? 0 : r;
	r = ids_read_file(dfd, FAILURES, FAILURES_MAX, &s, &len);
	close(dfd);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (p = s, end = s + len; p < end && r == 0;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *t[8];
		struct ids_sync_failure x;
		int k;

		if (nl == NULL)
			break;	/* a torn last line: cannot happen with a durable replace */
		*nl = '\0';
		t[0] = p;
		for (k = 1; k < 8 && (t[k] = strchr(t[k - 1], '\t')) != NULL; k++)
			*t[k]++ = '\0';
		if ((r = parse_record(t, k, &x)) == 1 && (r = add_record(f, &x)) < 0) {
			free(x.key);
			free(x.code);
			free(x.name);
			free(x.reason);
		}
		r = r < 0 ? r : 0;
		p = nl + 1;
	}
	free(s);
	if (r < 0)
		ids_sync_failures_release(f);
	return r;
}

int
ids_sync_failures_write(const struct ids_config *cfg, const char *channel,
    const struct ids_sync_failures *f)
{
	struct ids_buf b = IDS_BUF_INIT;
	size_t i;
	int dfd, r = 0;

	for (i = 0; i < f->n && r == 0; i++) {
		const struct ids_sync_failure *x = &f->v[i];

		if ((r = esc(&b, x->key)) == 0 && (r = ids_buf_addch(&b, '\t')) == 0 &&
		    (r = esc(&b, x->code)) == 0 && (r = ids_buf_addch(&b, '\t')) == 0 &&
		    (r = esc(&b, x->name)) == 0 &&
		    (r = ids_buf_printf(&b, "\t%u\t%lld\t%lld\t%lld\t", x->attempts,
		    (long long)x->first, (long long)x->last, (long long)x->next)) == 0 &&
		    (r = esc(&b, x->reason)) == 0)
			r = ids_buf_addch(&b, '\n');
	}
	if (r < 0) {
		ids_buf_release(&b);
		return -ENOMEM;
	}
	if ((r = ids_journal_channel_dir(cfg, channel, 1, &dfd)) == 0) {
		r = ids_write_durable(dfd, FAILURES, b.s ? b.s : "", b.len, 0640);
		close(dfd);
	}
	ids_buf_release(&b);
	return r;
}

struct ids_sync_failure *
ids_sync_failure_find(struct ids_sync_failures *f, const char *key)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].key, key) == 0)
			return &f->v[i];
	return NULL;
}

double
ids_sync_backoff(double min, double max, unsigned attempts)
{
	double d = min;
	unsigned i;

	for (i = 1; i < attempts && (max <= 0 || d < max) && d < 1e9; i++)
		d *= 2;
	return max > 0 && d > max ? max : d;
}

int
ids_sync_failure_note(struct ids_sync_failures *f, const char *key, const char *name,
    const char *code, const char *reason, int64_t now, double min, double max)
{
	struct ids_sync_failure *x = ids_sync_failure_find(f, key), n;
	char *rs = strdup(reason ? reason : ""), *cs = strdup(code), *ns = strdup(name);

	if (rs == NULL || cs == NULL || ns == NULL)
		goto nomem;
	if (x == NULL) {
		memset(&n, 0, sizeof(n));
		if ((n.key = strdup(key)) == NULL || add_record(f, &n) < 0) {
			free(n.key);
			goto nomem;
		}
		x = &f->v[f->n - 1];
		x->first = now;
	}
	free(x->reason);
	free(x->code);
	free(x->name);
	x->reason = rs;
	x->code = cs;
	x->name = ns;
	x->attempts++;
	x->last = now;
	x->next = now + (int64_t)(ids_sync_backoff(min, max, x->attempts) + 0.999);
	return 0;
nomem:
	free(rs);
	free(cs);
	free(ns);
	return -ENOMEM;
}

int
ids_sync_failure_drop(struct ids_sync_failures *f, const char *key)
{
	struct ids_sync_failure *x = ids_sync_failure_find(f, key);
	size_t i;

	if (x == NULL)
		return 0;
	i = (size_t)(x - f->v);
	free(x->key);
	free(x->code);
	free(x->name);
	free(x->reason);
	memmove(&f->v[i], &f->v[i + 1], (f->n - i - 1) * sizeof(f->v[0]));
	f->n--;
	return 1;
}

/* --- items -------------------------------------------------------------------- */

struct ids_sync_item *
ids_sync_items_find(struct ids_sync_items *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return &s->v[i];
	return NULL;
}

int
ids_sync_items_add(struct ids_sync_items *s, const char *name, const char *key, int user)
{
	struct ids_sync_item *nv;

	if (ids_sync_items_find(s, name) != NULL)
		return 0;
	if ((nv = realloc(s->v, (s->n + 1) * sizeof(*nv))) == NULL)
		return -ENOMEM;
	s->v = nv;
	nv[s->n].name = strdup(name);
	nv[s->n].key = strdup(key);
	nv[s->n].user = user;
	if (nv[s->n].name == NULL || nv[s->n].key == NULL) {
		free(nv[s->n].name);
		free(nv[s->n].key);
		return -ENOMEM;
	}
	s->n++;
	return 0;
}

void
ids_sync_items_release(struct ids_sync_items *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].key);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

int
ids_sync_folder_key(struct ids_mboxlist *mbl, const char *name, char **key)
{
	struct ids_mbentry me;
	int r;

	ids_mbentry_init(&me);
	r = ids_mboxlist_lookup(mbl, name, &me);
	if (r == 0 && me.uniqueid != NULL)
		*key = strdup(me.uniqueid);
	else if (r == 0 || r == IDS_ENOTFOUND)
		*key = name_key(name);
	ids_mbentry_release(&me);
	if (r < 0 && r != IDS_ENOTFOUND)
		return r;
	return *key == NULL ? -ENOMEM : 0;
}

int
ids_sync_key_name(struct ids_mboxlist *mbl, const char *key, char **name)
{
	struct ids_mbentry me;
	int r;

	*name = NULL;
	if (key[0] == '=' || key[0] == '@')
		return 0;
	ids_mbentry_init(&me);
	r = ids_mboxlist_lookup_id(mbl, key, &me);
	if (r == 0 && me.name != NULL && (*name = strdup(me.name)) == NULL)
		r = -ENOMEM;
	ids_mbentry_release(&me);
	return r == IDS_ENOTFOUND || r == IDS_EBADID ? 0 : r;
}

/* --- batches ---------------------------------------------------------------- */

static int
barrier(struct ids_txn *txn, void *rock)
{
	(void)txn;
	(void)rock;
	return 0;
}

/* A name of an entry: its folder's key (uniqueid when it has one), into s. */
static int
add_named(struct ids_mboxlist *mbl, struct ids_sync_items *s, const char *name,
    const char *uniqueid)
{
	char *key = NULL;
	int r;

	if (ids_sync_items_find(s, name) != NULL)
		return 0;
	if (uniqueid != NULL)
		return ids_sync_items_add(s, name, uniqueid, 0);
	if ((r = ids_sync_folder_key(mbl, name, &key)) == 0)
		r = ids_sync_items_add(s, name, key, 0);
	free(key);
	return r;
}

int
ids_sync_batch_names(struct ids_mboxlist *mbl, const struct ids_journal_batch *b,
    int timeout_ms, struct ids_sync_items *out, struct ids_sync_items *busy)
{
	const struct ids_config *cfg = ids_mboxlist_config(mbl);
	struct ids_buf ukey = IDS_BUF_INIT;
	size_t i;
	int r;

	out->v = NULL;
	out->n = 0;
	busy->v = NULL;
	busy->n = 0;
	if (b->n == 0)
		return 0;
	/* a write transaction whose entries were read commits before this one begins */
	if ((r = ids_mboxlist_write(mbl, barrier, NULL)) < 0)
		return r;
	/* the same for replica.db, whose writers journal a user inside their transaction */
	for (i = 0; i < b->n && !b->v[i].user; i++)
		;
	if (i < b->n && (r = ids_sync_meta_barrier(cfg)) < 0)
		return r;
	for (i = 0; i < b->n && r == 0; i++) {
		const struct ids_journal_entry *e = &b->v[i];
		struct ids_lock *lk;
		struct ids_mbentry me;

		if (e->user) {
			/* a user's own data: its writer's transaction ended (the barrier above) */
			ids_buf_reset(&ukey);
			if (ids_buf_printf(&ukey, "@%s", e->name) < 0)
				r = -ENOMEM;
			else
				r = ids_sync_items_add(out, e->name, ukey.s, 1);
			continue;
		}
		if (e->name != NULL)
			r = add_named(mbl, out, e->name, e->uniqueid);
		if (r < 0 || e->uniqueid == NULL)
			continue;
		/* the writer that wrote the entry holds this lock until its change is done */
		if ((r = ids_lock_mailbox(cfg, e->uniqueid, IDS_LOCK_SHARED, timeout_ms, &lk)) < 0 &&
		    r != IDS_ELOCKED) {
			if (r == IDS_EBADID)
				r = 0;
			continue;
		}
		if (r == 0)
			ids_unlock(lk);
		ids_mbentry_init(&me);
		if (r == IDS_ELOCKED) {
			/* still being written (a long migration): retried on its own */
			r = ids_mboxlist_lookup_id(mbl, e->uniqueid, &me);
			if (r == 0 && me.name != NULL)
				r = ids_sync_items_add(busy, me.name, e->uniqueid, 0);
		} else {
			r = ids_mboxlist_lookup_id(mbl, e->uniqueid, &me);
			if (r == 0 && me.name != NULL)
				r = ids_sync_items_add(out, me.name, e->uniqueid, 0);
		}
		if (r == IDS_ENOTFOUND)
			r = 0;
		ids_mbentry_release(&me);
	}
	ids_buf_release(&ukey);
	if (r < 0) {
		ids_sync_items_release(out);
		ids_sync_items_release(busy);
	}
	return r;
}

/* --- status ----------------------------------------------------------------- */

void
ids_sync_channel_status_release(struct ids_sync_channel_status *st)
{
	ids_sync_failures_release(&st->failures);
}

int
ids_sync_channel_status(const struct ids_config *cfg, const char *channel,
    struct ids_sync_channel_status *st)
{
	struct ids_journal_batch b;
	int r;

	memset(st, 0, sizeof(*st));
	if ((r = ids_journal_cursor_read(cfg, channel, &st->cursor, &st->last_ok)) < 0 ||
	    (r = ids_journal_read(cfg, st->cursor, 0, &b)) < 0)
		return r;
	st->lag = b.n;	/* torn entries are none */
	st->end = b.end;
	if (st->cursor < b.start)
		st->cursor = b.start;
	ids_journal_batch_release(&b);
	return ids_sync_failures_read(cfg, channel, &st->failures);
}
