/*
 * reconstruct.c - rebuilding mailboxes.db from the spool (reconstruct.h):
 * the entry point of the rebuild, the events it reports, and the small
 * helpers the other reconstruct_*.c files share (reconstruct_int.h).
 *
 * The rebuild is one pass over the disk and one write transaction:
 * the records of mailboxes.db are read first (the snapshot), the
 * partitions walked, every folder's id and name decided by the rules
 * of spool-layout.md ("Reconstruct"), the files those rules change
 * repaired, and the records replaced.  Nothing is written before the
 * plan is complete, and nothing at all with dry_run.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "lock.h"
#include "mboxlist.h"
#include "reconstruct_int.h"

/* --- events ------------------------------------------------------------- */

static void
count(struct rc_ctx *c, enum ids_rc_kind kind)
{
	switch (kind) {
	case IDS_RC_CHANGE: c->st->changes++; break;
	case IDS_RC_CONFLICT: c->st->conflicts++; break;
	case IDS_RC_REPAIR: c->st->repairs++; break;
	case IDS_RC_FAILED: c->st->failed++; break;
	default: break;
	}
}

static void
emit(struct rc_ctx *c, struct ids_rc_event *ev, const char *fmt, va_list ap)
{
	struct ids_buf b = IDS_BUF_INIT;

	if (fmt != NULL) {
		ids_buf_vprintf(&b, fmt, ap);
		ev->detail = b.s;
	}
	count(c, ev->kind);
	if (c->fn != NULL)
		c->fn(ev, c->rock);
	ids_buf_release(&b);
}

void
ids_rc_emit(struct rc_ctx *c, enum ids_rc_kind kind, const char *rule,
    const struct rc_folder *f, const char *name, const char *uniqueid,
    const char *fmt, ...)
{
	struct ids_rc_event ev = { .kind = kind, .rule = rule, .path = f ? f->path : NULL,
	    .name = name, .uniqueid = uniqueid };
	va_list ap;

	va_start(ap, fmt);
	emit(c, &ev, fmt, ap);
	va_end(ap);
}

void
ids_rc_emit_at(struct rc_ctx *c, enum ids_rc_kind kind, const char *rule,
    const char *path, const char *name, const char *uniqueid, const char *fmt, ...)
{
	struct ids_rc_event ev = { .kind = kind, .rule = rule, .path = path,
	    .name = name, .uniqueid = uniqueid };
	va_list ap;

	va_start(ap, fmt);
	emit(c, &ev, fmt, ap);
	va_end(ap);
}

void
ids_rc_failed(struct rc_ctx *c, const char *rule, const char *path, const char *name,
    int code, const char *fmt, ...)
{
	struct ids_rc_event ev = { IDS_RC_FAILED, rule, path, name, NULL,
	    NULL, NULL, NULL, NULL, code, 0 };
	va_list ap;

	va_start(ap, fmt);
	emit(c, &ev, fmt, ap);
	va_end(ap);
}

void
ids_rc_change(struct rc_ctx *c, const char *rule, const char *name,
    const char *uniqueid, const char *field, const char *from, const char *to)
{
	struct ids_rc_event ev = { IDS_RC_CHANGE, rule, NULL, name, uniqueid,
	    field, from, to, NULL, 0, 0 };

	count(c, ev.kind);
	if (c->fn != NULL)
		c->fn(&ev, c->rock);
}

/* --- the string map ------------------------------------------------------ */

uint64_t
ids_rc_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return h;
}

static size_t
find_slot(const struct rc_map *m, const char *key)
{
	size_t i = (size_t)ids_rc_hash(key, strlen(key)) & (m->cap - 1);

	while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int
map_grow(struct rc_map *m)
{
	struct rc_map bigger = { NULL, 0, m->cap ? 2 * m->cap : 64 };
	size_t i;

	if ((bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots))) == NULL)
		return -ENOMEM;
	for (i = 0; i < m->cap; i++)
		if (m->slots[i].key != NULL)
			bigger.slots[find_slot(&bigger, m->slots[i].key)] = m->slots[i];
	bigger.n = m->n;
	free(m->slots);
	*m = bigger;
	return 0;
}

int
ids_rc_map_add(struct rc_map *m, const char *key, size_t val, size_t *old)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap && map_grow(m) < 0)
		return -ENOMEM;
	i = find_slot(m, key);
	if (m->slots[i].key != NULL) {
		if (old != NULL)
			*old = m->slots[i].val;
		return 1;
	}
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->n++;
	return 0;
}

void
ids_rc_map_set(struct rc_map *m, const char *key, size_t val)
{
	size_t i;

	if (m->cap == 0)
		return;
	i = find_slot(m, key);
	if (m->slots[i].key != NULL) {
		m->slots[i].key = key;
		m->slots[i].val = val;
	}
}

size_t
ids_rc_map_get(const struct rc_map *m, const char *key)
{
	size_t i;

	if (m->cap == 0 || key == NULL)
		return RC_NONE;
	i = find_slot(m, key);
	return m->slots[i].key != NULL ? m->slots[i].val : RC_NONE;
}

void
ids_rc_map_release(struct rc_map *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* --- names and scope ------------------------------------------------------ */

int
ids_rc_owner_of(const char *name, char *buf, size_t size)
{
	struct ids_mbname mb;
	int r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0)
		return r;
	return ids_mbname_owner(&mb, buf, size);
}

int
ids_rc_in_scope(const struct rc_ctx *c, const char *name, const char *partition,
    int tombstone)
{
	char owner[IDS_MBNAME_MAX + 1];

	if (c->opts->partition != NULL) {
		if (tombstone || partition == NULL ||
		    strcmp(partition, c->opts->partition) != 0)
			return 0;
	}
	if (c->opts->owner == NULL)
		return 1;
	return ids_rc_owner_of(name, owner, sizeof(owner)) >= 0 &&
	    strcmp(owner, c->opts->owner) == 0;
}

static char *
join_key(const char *partition, const char *rel)
{
	size_t a = strlen(partition), b = strlen(rel);
	char *k = malloc(a + b + 2);

	if (k == NULL)
		return NULL;
	memcpy(k, partition, a);
	k[a] = '\x1f';
	memcpy(k + a + 1, rel, b + 1);
	return k;
}

char *
ids_rc_location_key(const struct rc_ctx *c, const struct ids_mbentry *e)
{
	struct ids_mbname mb;
	struct ids_location loc;
	char rel[PATH_MAX];

	if (ids_location_from_entry(e, &mb, &loc) < 0 ||
	    ids_config_partition(c->cfg, e->partition) == NULL ||
	    ids_path_reldir(c->cfg, &loc, rel, sizeof(rel)) < 0)
		return NULL;
	return join_key(e->partition, rel);
}

char *
ids_rc_folder_key(const struct rc_folder *f)
{
	return join_key(f->part->name, f->rel);
}

int
ids_rc_join_levels(const char *domain, const char *const *lv, size_t n,
    char *buf, size_t size)
{
	struct ids_buf b = IDS_BUF_INIT;
	size_t i;
	const char *p;
	int r;

	if (domain != NULL)
		ids_buf_printf(&b, "%s!", domain);
	for (i = 0; i < n; i++) {
		if (i > 0)
			ids_buf_addch(&b, '.');
		for (p = lv[i]; *p != '\0'; p++)
			ids_buf_addch(&b, *p == '.' ? '^' : *p);
	}
	if ((r = ids_buf_oom(&b)) == 0 && b.len >= size)
		r = ids_error(IDS_ETOOLONG, "name of %zu bytes", b.len);
	if (r == 0) {
		memcpy(buf, b.s, b.len + 1);
		r = (int)b.len;
	}
	ids_buf_release(&b);
	return r;
}

/* --- the rebuild ------------------------------------------------------------ */

static void
ctx_release(struct rc_ctx *c)
{
	size_t i;

	for (i = 0; i < c->nf; i++)
		ids_rc_folder_release(&c->f[i]);
	free(c->f);
	ids_rc_want_release(c);
	ids_rc_snap_release(&c->snap);
	ids_rc_map_release(&c->byid);
	ids_rc_map_release(&c->byname);
}

static int
check_opts(const struct ids_config *cfg, struct ids_mboxlist *mbl,
    const struct ids_reconstruct_opts *o)
{
	if (mbl == NULL && !o->dry_run)
		return ids_error(IDS_EINVAL, "a rebuild needs a mailboxes.db to write");
	if (o->partition != NULL && ids_config_partition(cfg, o->partition) == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s' is not configured",
		    o->partition);
	if (o->owner != NULL && (o->owner[0] == '\0' || strchr(o->owner, '/') != NULL))
		return ids_error(IDS_EINVAL, "'%s' is not a userid", o->owner);
	return 0;
}

int
ids_reconstruct_rebuild(const struct ids_config *cfg, struct ids_mboxlist *mbl,
    const struct ids_reconstruct_opts *opts, ids_rc_fn fn, void *rock,
    struct ids_reconstruct_stats *st)
{
	struct ids_reconstruct_stats local;
	struct rc_ctx c;
	int r;

	memset(&c, 0, sizeof(c));
	if (st == NULL)
		st = &local;
	memset(st, 0, sizeof(*st));
	if ((r = check_opts(cfg, mbl, opts)) < 0)
		return r;
	c.cfg = cfg;
	c.mbl = mbl;
	c.opts = opts;
	c.fn = fn;
	c.rock = rock;
	c.st = st;
	c.timeout_ms = opts->lock_timeout_ms > 0 ? opts->lock_timeout_ms : IDS_LOCK_TIMEOUT_MS;
	if ((r = ids_rc_snapshot(&c)) == 0 && (r = ids_rc_scan(&c)) == 0 &&
	    (r = ids_rc_plan(&c)) == 0 && (r = ids_rc_repair_all(&c)) == 0 &&
	    (r = ids_rc_want_all(&c)) == 0) {
		ids_rc_diff(&c);
		if (!opts->dry_run)
			r = ids_rc_commit(&c);
	}
	ctx_release(&c);
	return r;
}
