/*
 * merge.c - two sides' records of one folder merged by UID (merge.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dlist.h"
#include "error.h"
#include "sync/sync.h"
#include "sync/merge.h"

struct rec {
	const struct ids_dlist *kv;
	uint32_t uid;
	uint64_t modseq, size;
	const char *guid;
	int expunged;
};

struct side {
	struct rec *v;
	size_t n;
	uint32_t last_uid, uidvalidity;
	uint64_t hms;
};

static int
is_expunged(const struct ids_dlist *rec)
{
	const struct ids_dlist *f, *flags = ids_dlist_get(rec, "FLAGS");

	for (f = flags ? flags->head : NULL; f != NULL; f = f->next)
		if (f->data != NULL && strcasecmp(f->data, "\\Expunged") == 0)
			return 1;
	return 0;
}

static int
rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int
side_parse(const struct ids_dlist *state, struct side *s)
{
	const struct ids_dlist *recs = ids_dlist_get(state, "RECORD"), *i;
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	if (ids_dlist_get_u32(state, "LAST_UID", &s->last_uid) < 0 ||
	    ids_dlist_get_u64(state, "HIGHESTMODSEQ", &s->hms) < 0 ||
	    ids_dlist_get_u32(state, "UIDVALIDITY", &s->uidvalidity) < 0)
		return ids_error(IDS_ECORRUPT, "a MAILBOX without LAST_UID, HIGHESTMODSEQ or "
		    "UIDVALIDITY");
	for (i = recs ? recs->head : NULL; i != NULL; i = i->next)
		n++;
	if ((s->v = calloc(n + 1, sizeof(*s->v))) == NULL)
		return -ENOMEM;
	for (i = recs ? recs->head : NULL; i != NULL; i = i->next) {
		struct rec *r = &s->v[s->n];

		r->kv = i;
		r->guid = ids_dlist_cstr(ids_dlist_get(i, "GUID"));
		if (i->type != IDS_DL_KVLIST || r->guid == NULL || strlen(r->guid) != 40 ||
		    ids_dlist_get_u32(i, "UID", &r->uid) < 0 || r->uid == 0 ||
		    ids_dlist_get_u64(i, "MODSEQ", &r->modseq) < 0)
			return ids_error(IDS_ECORRUPT, "a RECORD without UID, MODSEQ or GUID");
		ids_dlist_get_u64(i, "SIZE", &r->size);
		r->expunged = is_expunged(i);
		s->n++;
	}
	qsort(s->v, s->n, sizeof(*s->v), rec_cmp);
	return 0;
}

static const struct rec *
side_find(const struct side *s, uint32_t uid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->v[mid].uid == uid)
			return &s->v[mid];
		if (s->v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* A copy of rec with uid, modseq (0: kept) and \Expunged (when expunge) set. */
static struct ids_dlist *
rec_copy(const struct ids_dlist *rec, uint32_t uid, uint64_t modseq, int expunge)
{
	struct ids_dlist *out = ids_dlist_new_kvlist(), *fl, *x;
	const struct ids_dlist *i, *f;
	int r = 0, added = !expunge || is_expunged(rec);

	if (out == NULL)
		return NULL;
	for (i = rec->head; i != NULL && r == 0; i = i->next) {
		if (i->name == NULL)
			continue;
		if (strcmp(i->name, "UID") == 0 && uid != 0) {
			r = ids_dlist_add_num(out, "UID", uid);
		} else if (strcmp(i->name, "MODSEQ") == 0 && modseq != 0) {
			r = ids_dlist_add_num(out, "MODSEQ", modseq);
		} else if (strcmp(i->name, "FLAGS") == 0 && !added) {
			/* \Expunged where Cyrus prints it: after \Draft, before \Seen */
			if ((r = ids_dlist_add_list(out, "FLAGS", &fl)) < 0)
				break;
			for (f = i->head; f != NULL && r == 0; f = f->next) {
				if (!added && f->data != NULL && (strcasecmp(f->data, "\\Seen") == 0 ||
				    f->data[0] != '\\')) {
					if ((r = ids_dlist_add_atom(fl, NULL, "\\Expunged")) == 0)
						fl->tail->type = IDS_DL_FLAG;
					added = 1;
				}
				if (r == 0)
					r = ids_dlist_add_child(fl, NULL, ids_dlist_copy(f));
			}
			if (r == 0 && !added && (r = ids_dlist_add_atom(fl, NULL, "\\Expunged")) == 0)
				fl->tail->type = IDS_DL_FLAG;
			added = 1;
		} else {
			x = ids_dlist_copy(i);
			r = x == NULL ? -ENOMEM : ids_dlist_add_child(out, NULL, x);
		}
	}
	if (r < 0 || !added) {
		ids_dlist_free(out);
		return NULL;
	}
	return out;
}

struct pending {
	const struct rec *rec;
	int side;
	size_t ev;	/* its event */
};

struct work {
	struct ids_sync_merge *m;
	struct side s[2];
	int src;
	struct ids_dlist *final;	/* the merged list */
	struct pending *pend;
	size_t npend;
	uint64_t hms;
};

static int
add_event(struct work *w, const char *kind, int side, const struct rec *rec, const char *guid2)
{
	struct ids_sync_merge *m = w->m;
	struct ids_sync_merge_event *v = realloc(m->ev, (m->nev + 1) * sizeof(*v)), *e;

	if (v == NULL)
		return -ENOMEM;
	m->ev = v;
	e = &v[m->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->side = side;
	e->uid = rec->uid;
	snprintf(e->guid, sizeof(e->guid), "%s", rec->guid);
	if (guid2 != NULL)
		snprintf(e->guid2, sizeof(e->guid2), "%s", guid2);
	return 0;
}

static int
add(struct ids_dlist *list, struct ids_dlist *rec)
{
	return rec == NULL ? -ENOMEM : ids_dlist_add_child(list, NULL, rec);
}

/*
 * 1 when the merged list will hold guid live under a uid other than
 * uid: the other side holds it live there, and `side` either lacks
 * that uid above its last_uid (it comes over) or holds the same GUID
 * live there too.  An earlier merge cut short between a side's apply
 * and its expunge leaves such a copy.
 */
static int
comes_over(const struct work *w, int side, const char *guid, uint32_t uid)
{
	const struct side *o = &w->s[!side], *me = &w->s[side];
	const struct rec *mine;
	size_t i;

	for (i = 0; i < o->n; i++) {
		if (o->v[i].expunged || o->v[i].uid == uid || strcmp(o->v[i].guid, guid) != 0)
			continue;
		mine = side_find(me, o->v[i].uid);
		if (mine == NULL ? o->v[i].uid > me->last_uid :
		    !mine->expunged && strcmp(mine->guid, guid) == 0)
			return 1;
	}
	return 0;
}

/* rec (live, of side) gets a new uid after both last_uids, unless it comes over. */
static int
renumber(struct work *w, const struct rec *rec, int side, const char *kind, const char *guid2)
{
	struct pending *v;
	int r;

	if (comes_over(w, side, rec->guid, rec->uid))
		return 0;
	if ((r = add_event(w, kind, side, rec, guid2)) < 0)
		return r;
	if ((v = realloc(w->pend, (w->npend + 1) * sizeof(*v))) == NULL)
		return -ENOMEM;
	w->pend = v;
	v[w->npend].rec = rec;
	v[w->npend].side = side;
	v[w->npend].ev = w->m->nev - 1;
	w->npend++;
	return 0;
}

/* One uid both sides hold. */
static int
merge_both(struct work *w, const struct rec *a, const struct rec *b)
{
	const struct rec *s = w->src == IDS_MERGE_LOCAL ? a : b;
	const struct rec *t = w->src == IDS_MERGE_LOCAL ? b : a;
	int tside = !w->src, r = 0;

	if (s->expunged && t->expunged)
		return add(w->final, ids_dlist_copy(s->kv));
	if (strcmp(s->guid, t->guid) != 0) {
		/* split brain: both kept under new uids, the lower GUID first */
		const struct rec *first = strcmp(s->guid, t->guid) < 0 ? s : t;
		const struct rec *second = first == s ? t : s;
		int fside = first == s ? w->src : tside;

		if ((r = add_event(w, "conflict", w->src, s, t->guid)) < 0)
			return r;
		if (!first->expunged && (r = renumber(w, first, fside, "renumbered",
		    second->guid)) < 0)
			return r;
		if (!second->expunged && (r = renumber(w, second, !fside, "renumbered",
		    first->guid)) < 0)
			return r;
		return add(w->final, s->expunged ? ids_dlist_copy(s->kv) :
		    rec_copy(s->kv, 0, ++w->hms, 1));
	}
	if (s->expunged || t->expunged) {
		const struct rec *e = s->expunged ? s : t, *l = s->expunged ? t : s;

		if (e->modseq >= l->modseq)
			return add(w->final, ids_dlist_copy(e->kv));
		return add(w->final, rec_copy(l->kv, 0, ++w->hms, 1));
	}
	return add(w->final, ids_dlist_copy(t->modseq > s->modseq ? t->kv : s->kv));
}

/* One uid only `side` holds. */
static int
merge_one(struct work *w, const struct rec *rec, int side, uint64_t deletedmodseq)
{
	const struct side *o = &w->s[!side];
	int r;

	if (rec->expunged || rec->uid > o->last_uid) {
		if (!rec->expunged && side != w->src &&
		    (r = add_event(w, "copied-back", side, rec, NULL)) < 0)
			return r;
		return add(w->final, ids_dlist_copy(rec->kv));
	}
	/* the other side has seen this uid: cleaned there, or another message's */
	if (side == IDS_MERGE_PEER && rec->modseq <= deletedmodseq)
		return add(w->final, rec_copy(rec->kv, 0, ++w->hms, 1));
	if ((r = renumber(w, rec, side, "renumbered", NULL)) < 0)
		return r;
	return add(w->final, rec_copy(rec->kv, 0, ++w->hms, 1));
}

/* The CRCs of a RECORD list. */
static int
list_crcs(const struct ids_dlist *list, uint32_t *basic, uint32_t *annot)
{
	const struct ids_dlist *i;
	uint32_t b, a;
	int r;

	*basic = 0;
	*annot = IDS_SYNC_CRC_ANNOT_INIT;
	for (i = list->head; i != NULL; i = i->next) {
		if ((r = ids_sync_record_crcs(i, &b, &a)) < 0)
			return r;
		*basic ^= b;
		*annot ^= a;
	}
	return 0;
}

static int
push_u32(uint32_t **v, size_t *n, uint32_t x)
{
	uint32_t *nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (nv == NULL)
		return -ENOMEM;
	nv[(*n)++] = x;
	*v = nv;
	return 0;
}

/* Where side x finds the file of a record it lacks: a record of guid on either side. */
static uint32_t
uid_of(const struct side *s, const char *guid)
{
	uint32_t any = 0;
	size_t i;

	for (i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].guid, guid) != 0)
			continue;
		if (!s->v[i].expunged)
			return s->v[i].uid;
		if (any == 0)
			any = s->v[i].uid;
	}
	return any;
}

static int
add_want(struct work *w, int x, const struct rec *in)
{
	struct ids_sync_merge *m = w->m;
	struct ids_sync_merge_want *v, *n;

	if ((v = realloc(m->want[x], (m->nwant[x] + 1) * sizeof(*v))) == NULL)
		return -ENOMEM;
	m->want[x] = v;
	n = &v[m->nwant[x]++];
	memset(n, 0, sizeof(*n));
	snprintf(n->guid, sizeof(n->guid), "%s", in->guid);
	n->uid[0] = uid_of(&w->s[0], in->guid);
	n->uid[1] = uid_of(&w->s[1], in->guid);
	n->size = in->size;
	n->expunged = in->expunged;
	return 0;
}

/* recs[x]: the merged list, with x's own live record at each uid whose GUID differs. */
static int
side_list(struct work *w, int x)
{
	struct ids_sync_merge *m = w->m;
	const struct ids_dlist *i;
	struct side fin;
	int r;

	if ((m->recs[x] = ids_dlist_new_list()) == NULL)
		return -ENOMEM;
	memset(&fin, 0, sizeof(fin));
	for (i = w->final->head; i != NULL; i = i->next) {
		const char *guid = ids_dlist_cstr(ids_dlist_get(i, "GUID"));
		struct rec in;
		const struct rec *own;

		memset(&in, 0, sizeof(in));
		ids_dlist_get_u32(i, "UID", &in.uid);
		ids_dlist_get_u64(i, "SIZE", &in.size);
		in.guid = guid;
		in.expunged = is_expunged(i);
		own = side_find(&w->s[x], in.uid);
		if (own != NULL && !own->expunged && strcmp(own->guid, guid) != 0) {
			if ((r = add(m->recs[x], ids_dlist_copy(own->kv))) < 0 ||
			    (r = push_u32(&m->expunge[x], &m->nexpunge[x], in.uid)) < 0)
				return r;
			continue;
		}
		if (own == NULL && in.uid > w->s[x].last_uid && (r = add_want(w, x, &in)) < 0)
			return r;
		if ((r = add(m->recs[x], ids_dlist_copy(i))) < 0)
			return r;
	}
	return list_crcs(m->recs[x], &m->crc[x], &m->crc_annot[x]);
}

static int
uid_cmp(const void *a, const void *b)
{
	const struct ids_dlist *const *x = a, *const *y = b;
	uint32_t u = 0, v = 0;

	ids_dlist_get_u32(*x, "UID", &u);
	ids_dlist_get_u32(*y, "UID", &v);
	return u < v ? -1 : u > v;
}

/* The merged list in uid order (renumbered records were appended). */
static int
sort_final(struct work *w)
{
	struct ids_dlist **v, *i, *next;
	size_t n = 0, k;

	for (i = w->final->head; i != NULL; i = i->next)
		n++;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (i = w->final->head, k = 0; i != NULL; i = next) {
		next = i->next;
		v[k++] = i;
	}
	for (k = 0; k < n; k++)
		ids_dlist_unlink(w->final, v[k]);
	qsort(v, n, sizeof(*v), uid_cmp);
	for (k = 0; k < n; k++)
		ids_dlist_add_child(w->final, NULL, v[k]);
	free(v);
	return 0;
}

int
ids_sync_merge(const struct ids_dlist *const state[2], int src, uint64_t deletedmodseq,
    struct ids_sync_merge *m)
{
	struct work w;
	size_t i = 0, j = 0, k;
	uint32_t next;
	int r = 0;

	memset(m, 0, sizeof(*m));
	memset(&w, 0, sizeof(w));
	w.m = m;
	w.src = src;
	if ((r = side_parse(state[0], &w.s[0])) < 0 || (r = side_parse(state[1], &w.s[1])) < 0)
		goto out;
	if ((w.final = ids_dlist_new_list()) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	w.hms = w.s[0].hms > w.s[1].hms ? w.s[0].hms : w.s[1].hms;
	while (r == 0 && (i < w.s[0].n || j < w.s[1].n)) {
		const struct rec *a = i < w.s[0].n ? &w.s[0].v[i] : NULL;
		const struct rec *b = j < w.s[1].n ? &w.s[1].v[j] : NULL;

		if (a != NULL && b != NULL && a->uid == b->uid) {
			r = merge_both(&w, a, b);
			i++;
			j++;
		} else if (a != NULL && (b == NULL || a->uid < b->uid)) {
			r = merge_one(&w, a, IDS_MERGE_LOCAL, deletedmodseq);
			i++;
		} else {
			r = merge_one(&w, b, IDS_MERGE_PEER, deletedmodseq);
			j++;
		}
	}
	next = w.s[0].last_uid > w.s[1].last_uid ? w.s[0].last_uid : w.s[1].last_uid;
	for (k = 0; r == 0 && k < w.npend; k++) {
		const struct pending *p = &w.pend[k];

		m->ev[p->ev].newuid = ++next;
		r = add(w.final, rec_copy(p->rec->kv, next, ++w.hms, 0));
	}
	if (r == 0)
		r = sort_final(&w);
	m->last_uid = next;
	m->highestmodseq = w.hms;
	m->uidvalidity = w.s[0].uidvalidity > w.s[1].uidvalidity ? w.s[0].uidvalidity :
	    w.s[1].uidvalidity;
	if (r == 0)
		r = list_crcs(w.final, &m->final_crc, &m->final_crc_annot);
	if (r == 0)
		r = side_list(&w, IDS_MERGE_LOCAL);
	if (r == 0)
		r = side_list(&w, IDS_MERGE_PEER);
out:
	ids_dlist_free(w.final);
	free(w.pend);
	free(w.s[0].v);
	free(w.s[1].v);
	if (r < 0)
		ids_sync_merge_release(m);
	return r;
}

void
ids_sync_merge_release(struct ids_sync_merge *m)
{
	int x;

	for (x = 0; x < 2; x++) {
		ids_dlist_free(m->recs[x]);
		free(m->expunge[x]);
		free(m->want[x]);
	}
	free(m->ev);
	memset(m, 0, sizeof(*m));
}

int
ids_sync_merge_kvlist(const struct ids_sync_merge *m, const struct ids_dlist *src_state,
    const struct ids_dlist *x_state, int x, int final, struct ids_dlist **out)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist(), *c;
	const struct ids_dlist *i;
	int r = 0;

	*out = NULL;
	if (kv == NULL)
		return -ENOMEM;
	for (i = src_state->head; i != NULL && r == 0; i = i->next) {
		const char *k = i->name;

		if (k == NULL)
			continue;
		if (strcmp(k, "SYNC_CRC") == 0)
			r = ids_dlist_add_num(kv, k, final ? m->final_crc : m->crc[x]);
		else if (strcmp(k, "SYNC_CRC_ANNOT") == 0)
			r = ids_dlist_add_num(kv, k, final ? m->final_crc_annot : m->crc_annot[x]);
		else if (strcmp(k, "LAST_UID") == 0)
			r = ids_dlist_add_num(kv, k, m->last_uid);
		else if (strcmp(k, "HIGHESTMODSEQ") == 0)
			r = ids_dlist_add_num(kv, k, m->highestmodseq);
		else if (strcmp(k, "UIDVALIDITY") == 0)
			r = ids_dlist_add_num(kv, k, m->uidvalidity);
		else if (strcmp(k, "RECORD") == 0)
			r = final ? 0 : ids_dlist_add_child(kv, k, ids_dlist_copy(m->recs[x]));
		else if ((strcmp(k, "MBOXNAME") == 0 || strcmp(k, "PARTITION") == 0) &&
		    ids_dlist_get(x_state, k) != NULL)
			r = ids_dlist_add_child(kv, NULL, ids_dlist_copy(ids_dlist_get(x_state, k)));
		else
			r = (c = ids_dlist_copy(i)) == NULL ? -ENOMEM : ids_dlist_add_child(kv, NULL, c);
	}
	if (r == 0 && !final && ids_dlist_get(kv, "RECORD") == NULL)
		r = ids_dlist_add_child(kv, "RECORD", ids_dlist_copy(m->recs[x]));
	if (r < 0) {
		ids_dlist_free(kv);
		return r;
	}
	*out = kv;
	return 0;
}
