/*
 * auditcmp.c - comparing a folder with its copy in another spool, the
 * two matched by uniqueid (auditpriv.h).  What seed 004's validation
 * compares, side by side: the name, UIDVALIDITY, UIDNEXT, EXISTS and
 * UNSEEN, the list of live UIDs, the flags of each UID, each message's
 * GUID and size (and with MD5 the MD5 of both files); the other copy's
 * files are checked too (stat, or read with MD5).  Last comes what
 * replication calls MISSING: the GUIDs of our live messages that the
 * other copy has no intact file for.
 *
 * In these findings "expected" is the value here, "actual" the value
 * there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditpriv.h"
#include "buf.h"

#define SYSTEM_FLAGS (IDS_FLAG_ANSWERED | IDS_FLAG_FLAGGED | IDS_FLAG_DELETED | \
	IDS_FLAG_DRAFT | IDS_FLAG_SEEN)

static void
cmp_u32(struct aflist *l, enum ids_audit_kind kind, uint32_t uid, uint32_t a,
    uint32_t b)
{
	char x[16], y[16];

	if (a == b)
		return;
	snprintf(x, sizeof(x), "%u", a);
	snprintf(y, sizeof(y), "%u", b);
	ids_af_add(l, kind, uid, NULL, x, y);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The flags of m as text: system flags in IMAP's order, then user flags sorted. */
static void
flags_text(const struct aside *s, const struct amsg *m, struct ids_buf *b)
{
	static const char *const sys[] = { "\\Answered", "\\Flagged", "\\Deleted",
	    "\\Draft", "\\Seen" };
	const char *names[128];
	char num[128][8];
	size_t i, n = 0;

	for (i = 0; i < 5; i++)
		if (m->flags & (1u << i))
			ids_buf_printf(b, "%s%s", b->len ? " " : "", sys[i]);
	for (i = 0; i < 128; i++) {
		if (!(m->user_flags[i / 32] & (1u << (i % 32))))
			continue;
		if (s->have_header && i < s->h.nflags && s->h.flags[i] != NULL) {
			names[n++] = s->h.flags[i];
		} else {
			snprintf(num[i], sizeof(num[i]), "#%zu", i);
			names[n++] = num[i];
		}
	}
	qsort(names, n, sizeof(names[0]), str_cmp);
	for (i = 0; i < n; i++)
		ids_buf_printf(b, "%s%s", b->len ? " " : "", names[i]);
}

static void
cmp_flags(struct aflist *l, const struct afolder *f, const struct amsg *a,
    const struct amsg *b)
{
	struct ids_buf x = IDS_BUF_INIT, y = IDS_BUF_INIT;

	flags_text(&f->here, a, &x);
	flags_text(&f->there, b, &y);
	if (strcmp(x.s, y.s) != 0)
		ids_af_add(l, IDS_AUDIT_CMP_FLAGS, a->uid, NULL, x.len ? x.s : "none",
		    y.len ? y.s : "none");
	ids_buf_release(&x);
	ids_buf_release(&y);
}

static int
live(const struct amsg *m)
{
	return m->skip != SKIP_BAD && !(m->flags & IDS_FLAG_EXPUNGED);
}

/* One uid present in both indexes (or on one side: a or b NULL). */
static void
cmp_uid(struct aflist *l, const struct afolder *f, const struct amsg *a,
    const struct amsg *b)
{
	char x[IDS_GUID_HEXLEN * 2 + 2], y[IDS_GUID_HEXLEN * 2 + 2];
	uint32_t uid = a ? a->uid : b->uid;

	if (a == NULL || b == NULL || live(a) != live(b)) {
		if ((a && live(a)) || (b && live(b)))
			ids_af_add(l, IDS_AUDIT_CMP_UID, uid, NULL,
			    a ? (live(a) ? "live" : "expunged") : "absent",
			    b ? (live(b) ? "live" : "expunged") : "absent");
		return;
	}
	if (!live(a))
		return;
	cmp_flags(l, f, a, b);
	if (memcmp(a->guid, b->guid, IDS_GUID_LEN) != 0) {
		ids_guid_hex(a->guid, x);
		ids_guid_hex(b->guid, y);
		ids_af_add(l, IDS_AUDIT_CMP_GUID, uid, NULL, x, y);
	}
	if (a->size != b->size) {
		snprintf(x, sizeof(x), "%llu", (unsigned long long)a->size);
		snprintf(y, sizeof(y), "%llu", (unsigned long long)b->size);
		ids_af_add(l, IDS_AUDIT_CMP_SIZE, uid, NULL, x, y);
	}
	if (f->md5 && a->hashed && b->hashed && memcmp(a->md5, b->md5, AUDIT_MD5_LEN) != 0) {
		for (size_t i = 0; i < AUDIT_MD5_LEN; i++) {
			snprintf(x + 2 * i, 3, "%02x", a->md5[i]);
			snprintf(y + 2 * i, 3, "%02x", b->md5[i]);
		}
		ids_af_add(l, IDS_AUDIT_CMP_MD5, uid, NULL, x, y);
	}
}

/* Walks both uid lists together. */
static void
cmp_messages(struct aflist *l, const struct afolder *f)
{
	const struct aside *a = &f->here, *b = &f->there;
	size_t i = 0, j = 0;

	while (i < a->n || j < b->n) {
		if (j == b->n || (i < a->n && a->m[i].uid < b->m[j].uid))
			cmp_uid(l, f, &a->m[i++], NULL);
		else if (i == a->n || b->m[j].uid < a->m[i].uid)
			cmp_uid(l, f, NULL, &b->m[j++]);
		else
			cmp_uid(l, f, &a->m[i++], &b->m[j++]);
	}
	for (j = 0; j < b->n; j++)
		ids_msg_finding(l, b, &b->m[j], 1);
}

static int
guid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, IDS_GUID_LEN);
}

/* MISSING: our live GUIDs with no intact file behind any record there. */
static void
cmp_missing(struct aflist *l, const struct afolder *f)
{
	const struct aside *a = &f->here, *b = &f->there;
	uint8_t (*have)[IDS_GUID_LEN] = calloc(b->n + 1, IDS_GUID_LEN);
	uint8_t (*want)[IDS_GUID_LEN] = calloc(a->n + 1, IDS_GUID_LEN);
	size_t i, nh = 0, nw = 0, k = 0;
	struct afinding *x;

	if (have == NULL || want == NULL)
		goto out;
	for (i = 0; i < b->n; i++)
		if (b->m[i].state == AM_OK)
			memcpy(have[nh++], b->m[i].guid, IDS_GUID_LEN);
	for (i = 0; i < a->n; i++)
		if (live(&a->m[i]) && !ids_guid_is_null(a->m[i].guid))
			memcpy(want[nw++], a->m[i].guid, IDS_GUID_LEN);
	qsort(have, nh, IDS_GUID_LEN, guid_cmp);
	qsort(want, nw, IDS_GUID_LEN, guid_cmp);
	for (i = 0; i < nw; i++)
		if ((k == 0 || memcmp(want[k - 1], want[i], IDS_GUID_LEN) != 0) &&
		    bsearch(want[i], have, nh, IDS_GUID_LEN, guid_cmp) == NULL)
			memcpy(want[k++], want[i], IDS_GUID_LEN);
	if (k == 0 || (x = ids_af_addf(l, IDS_AUDIT_MISSING, 0, NULL, NULL, "%zu", k)) == NULL)
		goto out;
	free(x->actual);
	x->actual = NULL;
	if ((x->guids = calloc(k, sizeof(char *))) == NULL)
		goto out;
	for (i = 0; i < k; i++) {
		if ((x->guids[i] = malloc(IDS_GUID_HEXLEN + 1)) == NULL)
			break;
		ids_guid_hex(want[i], x->guids[i]);
		x->nguids++;
	}
out:
	free(have);
	free(want);
}

void
ids_compare_folder(struct afolder *f)
{
	const struct aside *a = &f->here, *b = &f->there;
	struct aflist *l = &f->f;
	int section = l->section;

	l->section = 1;
	if (strcmp(a->e.name, b->e.name) != 0)
		ids_af_add(l, IDS_AUDIT_NAME, 0, NULL, a->e.name, b->e.name);
	if (a->have_index && b->have_index) {
		cmp_u32(l, IDS_AUDIT_CMP_UIDVALIDITY, 0, a->ih.uidvalidity, b->ih.uidvalidity);
		cmp_u32(l, IDS_AUDIT_CMP_UIDNEXT, 0, a->ih.last_uid + 1, b->ih.last_uid + 1);
		cmp_u32(l, IDS_AUDIT_CMP_EXISTS, 0, a->ih.exists, b->ih.exists);
		cmp_u32(l, IDS_AUDIT_CMP_UNSEEN, 0, a->ih.unseen, b->ih.unseen);
		cmp_messages(l, f);
	} else if (a->e.uidvalidity != b->e.uidvalidity) {
		cmp_u32(l, IDS_AUDIT_CMP_UIDVALIDITY, 0, a->e.uidvalidity, b->e.uidvalidity);
	}
	l->section = 2;		/* after every other finding of the folder */
	if (a->have_index)
		cmp_missing(l, f);
	l->section = section;
}
