/*
 * mbentry.c - mailbox records: the N and I values of mailboxes.db, the
 * name history they and cyrus.header carry, ACLs and mbtype strings
 * (see mbentry.h for the encodings).
 *
 * Decoding is strict about what it uses and silent about what it does
 * not know: unknown keys are skipped (newer Cyrus versions add keys),
 * but a known key with a malformed value is IDS_ECORRUPT naming it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "mbentry.h"
#include "mboxname.h"

/* --- mbtype ------------------------------------------------------------- */

static const char mbtype_kinds[] = "enbcaspfj";
static const char mbtype_flags[] = "dmrzil";	/* Cyrus's order */

/* The bit of flag c in Cyrus's order, or 0 when c is not a flag. */
static unsigned
mbtype_flag_bit(char c)
{
	unsigned i;

	for (i = 0; i < sizeof(mbtype_flags) - 1; i++)
		if (mbtype_flags[i] == c)
			return 1u << i;
	return 0;
}

/*
 * Checks the mbtype s[0..len) (a kind, then distinct flags) and writes
 * it to out with its flags in Cyrus's order; -1 when it is invalid.
 */
static int
mbtype_canon(const char *s, size_t len, char out[IDS_MBTYPE_MAX])
{
	unsigned seen = 0, bit;
	size_t i, n = 1;

	if (len == 0 || len >= IDS_MBTYPE_MAX || s[0] == '\0' ||
	    memchr(mbtype_kinds, s[0], sizeof(mbtype_kinds) - 1) == NULL)
		return -1;
	for (i = 1; i < len; i++) {
		if ((bit = mbtype_flag_bit(s[i])) == 0 || (seen & bit))
			return -1;
		seen |= bit;
	}
	out[0] = s[0];
	for (i = 0; i < sizeof(mbtype_flags) - 1; i++)
		if (seen & 1u << i)
			out[n++] = mbtype_flags[i];
	out[n] = '\0';
	return 0;
}

int
ids_mbtype_check(const char *mbtype)
{
	char canon[IDS_MBTYPE_MAX];

	if (mbtype == NULL || mbtype_canon(mbtype, strlen(mbtype), canon) < 0)
		return ids_error(IDS_ECORRUPT, "invalid mailbox type '%s'",
		    mbtype ? mbtype : "");
	return 0;
}

int
ids_mbtype_has(const char *mbtype, char flag)
{
	return mbtype[0] != '\0' && flag != '\0' && strchr(mbtype + 1, flag) != NULL;
}

/* Rewrites the flags of a checked mbtype in Cyrus's order. */
static void
mbtype_normalize(char mbtype[IDS_MBTYPE_MAX])
{
	char out[IDS_MBTYPE_MAX];

	if (mbtype_canon(mbtype, strlen(mbtype), out) == 0)
		memcpy(mbtype, out, sizeof(out));
}

int
ids_mbtype_set(char mbtype[IDS_MBTYPE_MAX], char flag, int on)
{
	char *p;
	int r;

	if (flag == '\0' || strchr(mbtype_flags, flag) == NULL)
		return ids_error(IDS_EINVAL, "unknown mailbox type flag '%c'", flag);
	if ((r = ids_mbtype_check(mbtype)) < 0)
		return r;
	p = strchr(mbtype + 1, flag);
	if (on && p == NULL) {
		size_t n = strlen(mbtype);

		mbtype[n] = flag;
		mbtype[n + 1] = '\0';
	} else if (!on && p != NULL) {
		memmove(p, p + 1, strlen(p + 1) + 1);
	}
	mbtype_normalize(mbtype);
	return 0;
}

/* Stores a decoded mbtype string (NULL: the default "e"). */
static int
mbtype_from(char mbtype[IDS_MBTYPE_MAX], const char *s)
{
	if (s == NULL)
		s = "e";
	if (mbtype_canon(s, strlen(s), mbtype) < 0)
		return ids_error(IDS_ECORRUPT, "invalid mailbox type '%s'", s);
	return 0;
}

/* --- lifecycle ---------------------------------------------------------- */

void
ids_mbentry_init(struct ids_mbentry *e)
{
	memset(e, 0, sizeof(*e));
}

void
ids_history_release(struct ids_history *h)
{
	free(h->name);
	free(h->partition);
	memset(h, 0, sizeof(*h));
}

static void
history_free(struct ids_history *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ids_history_release(&h[i]);
	free(h);
}

void
ids_acl_free(struct ids_acl *acl, size_t nacl)
{
	size_t i;

	for (i = 0; i < nacl; i++) {
		free(acl[i].id);
		free(acl[i].rights);
	}
	free(acl);
}

void
ids_mbentry_release(struct ids_mbentry *e)
{
	free(e->name);
	free(e->uniqueid);
	free(e->partition);
	free(e->server);
	ids_acl_free(e->acl, e->nacl);
	history_free(e->history, e->nhistory);
	ids_mbentry_init(e);
}

int
ids_mbentry_is_tombstone(const struct ids_mbentry *e)
{
	return ids_mbtype_has(e->mbtype, IDS_MBFLAG_DELETED);
}

int
ids_mbentry_is_legacy(const struct ids_mbentry *e)
{
	return ids_mbtype_has(e->mbtype, IDS_MBFLAG_LEGACY);
}

/* strdup that keeps NULL; sets *err on failure. */
static char *
dup_or_null(const char *s, int *err)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*err = -ENOMEM;
	return d;
}

static int
history_copy(struct ids_history *dst, const struct ids_history *src)
{
	int err = 0;

	*dst = *src;
	dst->name = dup_or_null(src->name, &err);
	dst->partition = dup_or_null(src->partition, &err);
	if (err)
		ids_history_release(dst);
	return err;
}

/* A copy entry for entry, as it is: no search for repeated identifiers. */
static int
copy_lists(struct ids_mbentry *dst, const struct ids_mbentry *src)
{
	size_t i;
	int r, err = 0;

	if (src->nacl && (dst->acl = calloc(src->nacl, sizeof(*dst->acl))) == NULL)
		return -ENOMEM;
	for (i = 0; i < src->nacl; i++, dst->nacl++) {
		dst->acl[i].id = dup_or_null(src->acl[i].id, &err);
		dst->acl[i].rights = dup_or_null(src->acl[i].rights, &err);
		if (err) {
			dst->nacl++;
			return err;
		}
	}
	if (src->nhistory &&
	    (dst->history = calloc(src->nhistory, sizeof(*dst->history))) == NULL)
		return -ENOMEM;
	for (i = 0; i < src->nhistory; i++, dst->nhistory++)
		if ((r = history_copy(&dst->history[i], &src->history[i])) < 0)
			return r;
	return 0;
}

int
ids_mbentry_copy(struct ids_mbentry *dst, const struct ids_mbentry *src)
{
	int err = 0;

	ids_mbentry_init(dst);
	memcpy(dst->mbtype, src->mbtype, sizeof(dst->mbtype));
	dst->uidvalidity = src->uidvalidity;
	dst->createdmodseq = src->createdmodseq;
	dst->foldermodseq = src->foldermodseq;
	dst->mtime = src->mtime;
	dst->name = dup_or_null(src->name, &err);
	dst->uniqueid = dup_or_null(src->uniqueid, &err);
	dst->partition = dup_or_null(src->partition, &err);
	dst->server = dup_or_null(src->server, &err);
	if (err == 0)
		err = copy_lists(dst, src);
	if (err)
		ids_mbentry_release(dst);
	return err;
}

/* --- ACLs and history ---------------------------------------------------- */

int
ids_acl_set(struct ids_acl **aclp, size_t *np, const char *id, const char *rights)
{
	struct ids_acl *acl = *aclp;
	size_t i;
	char *dup;

	if (id == NULL)
		return ids_error(IDS_EINVAL, "ACL entry without an identifier");
	for (i = 0; i < *np && strcmp(acl[i].id, id) != 0; i++)
		;
	if (rights == NULL) {
		if (i < *np) {
			free(acl[i].id);
			free(acl[i].rights);
			memmove(&acl[i], &acl[i + 1], (*np - i - 1) * sizeof(*acl));
			(*np)--;
		}
		return 0;
	}
	if ((dup = strdup(rights)) == NULL)
		return -ENOMEM;
	if (i < *np) {
		free(acl[i].rights);
		acl[i].rights = dup;
		return 0;
	}
	if ((acl = realloc(acl, (*np + 1) * sizeof(*acl))) == NULL ||
	    (acl[*np].id = strdup(id)) == NULL) {
		if (acl)
			*aclp = acl;
		free(dup);
		return -ENOMEM;
	}
	acl[*np].rights = dup;
	*aclp = acl;
	(*np)++;
	return 0;
}

int
ids_acl_append(struct ids_acl **aclp, size_t *np, size_t *capp, char *id, char *rights)
{
	struct ids_acl *acl;
	size_t cap;

	if (id == NULL || rights == NULL) {	/* a strdup() that failed */
		free(id);
		free(rights);
		return -ENOMEM;
	}
	if (*np == *capp) {
		cap = *capp ? 2 * *capp : 8;
		if (cap > SIZE_MAX / sizeof(*acl) ||
		    (acl = realloc(*aclp, cap * sizeof(*acl))) == NULL) {
			free(id);
			free(rights);
			return -ENOMEM;
		}
		*aclp = acl;
		*capp = cap;
	}
	(*aclp)[*np].id = id;
	(*aclp)[*np].rights = rights;
	(*np)++;
	return 0;
}

/* Orders positions of an ACL by identifier, then by position. */
static int
cmp_acl_pos(const void *a, const void *b, void *arg)
{
	const struct ids_acl *acl = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(acl[x].id, acl[y].id);

	return c ? c : x < y ? -1 : x > y;
}

/* The positions 0..n-1 of acl in identifier order (malloc'd), or NULL. */
static size_t *
acl_order(const struct ids_acl *acl, size_t n)
{
	size_t *pos, i;

	if ((pos = calloc(n ? n : 1, sizeof(*pos))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		pos[i] = i;
	qsort_r(pos, n, sizeof(*pos), cmp_acl_pos, (void *)acl);
	return pos;
}

int
ids_acl_dedup(struct ids_acl *acl, size_t *np)
{
	size_t *pos, i, j, k, n = *np;

	if (n < 2)
		return 0;
	if ((pos = acl_order(acl, n)) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i = j) {
		/* pos[i..j) hold one identifier, pos[i] its first place. */
		for (j = i + 1; j < n && strcmp(acl[pos[j]].id, acl[pos[i]].id) == 0; j++)
			;
		if (j - i == 1)
			continue;
		free(acl[pos[i]].rights);
		acl[pos[i]].rights = acl[pos[j - 1]].rights;
		acl[pos[j - 1]].rights = NULL;
		for (k = i + 1; k < j; k++) {
			free(acl[pos[k]].id);
			free(acl[pos[k]].rights);
			acl[pos[k]].id = acl[pos[k]].rights = NULL;
		}
	}
	free(pos);
	for (i = k = 0; i < n; i++)
		if (acl[i].id != NULL)
			acl[k++] = acl[i];
	*np = k;
	return 0;
}

int
ids_acl_equal(const struct ids_acl *a, size_t na, const struct ids_acl *b, size_t nb)
{
	size_t *pa, *pb, i;
	int eq = 1;

	if (na != nb)
		return 0;
	if (na == 0)
		return 1;
	pa = acl_order(a, na);
	pb = acl_order(b, nb);
	if (pa == NULL || pb == NULL)
		eq = -ENOMEM;
	for (i = 0; eq == 1 && i < na; i++)
		if (strcmp(a[pa[i]].id, b[pb[i]].id) != 0 ||
		    strcmp(a[pa[i]].rights, b[pb[i]].rights) != 0)
			eq = 0;
	free(pa);
	free(pb);
	return eq;
}

int
ids_mbentry_push_history(struct ids_mbentry *e, int64_t when)
{
	struct ids_history h, *nh;
	int err = 0;

	if (e->name == NULL)
		return ids_error(IDS_EINVAL, "mailbox entry without a name");
	memset(&h, 0, sizeof(h));
	h.name = dup_or_null(e->name, &err);
	h.partition = dup_or_null(e->partition, &err);
	h.mtime = when;
	h.uidvalidity = e->uidvalidity;
	h.createdmodseq = e->createdmodseq;
	h.foldermodseq = e->foldermodseq;
	memcpy(h.mbtype, e->mbtype, sizeof(h.mbtype));
	if (err == 0 &&
	    (nh = realloc(e->history, (e->nhistory + 1) * sizeof(*nh))) != NULL) {
		memmove(nh + 1, nh, e->nhistory * sizeof(*nh));
		nh[0] = h;
		e->history = nh;
		e->nhistory++;
		return 0;
	}
	ids_history_release(&h);
	return -ENOMEM;
}

/* Wraps a name conversion failure as corruption of the record. */
static int
bad_dbname(int r)
{
	char why[256];

	if (r == -ENOMEM)
		return r;
	/* A cut-short reason is still a reason: truncation is acceptable. */
	if ((size_t)snprintf(why, sizeof(why), "%s", ids_errmsg(r)) >= sizeof(why))
		why[sizeof(why) - 1] = '\0';
	return ids_error(IDS_ECORRUPT, "bad dbname in record: %s", why);
}

/* An internal name as stored: its dbname (dbnames) or itself. */
static int
name_to_wire(const char *name, int dbnames, char **out)
{
	struct ids_mbname mb;
	char db[2 * IDS_MBNAME_MAX + 64];
	int r;

	if (!dbnames)
		return (*out = strdup(name)) ? 0 : -ENOMEM;
	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0 ||
	    (r = ids_mbname_dbname(&mb, db, sizeof(db))) < 0)
		return r;
	return (*out = strdup(db)) ? 0 : -ENOMEM;
}

/* The internal name of a stored name (a dbname when dbnames). */
static int
name_from_wire(const struct ids_dlist *dl, int dbnames, char **out)
{
	struct ids_mbname mb;
	char name[2 * IDS_MBNAME_MAX + 64];
	int r;

	if (ids_dlist_cstr(dl) == NULL || dl->len == 0)
		return ids_error(IDS_ECORRUPT, "missing or empty mailbox name in record");
	if (!dbnames)
		return (*out = strdup(dl->data)) ? 0 : -ENOMEM;
	if ((r = ids_mbname_parse_dbname(&mb, dl->data, dl->len, 0)) < 0 ||
	    (r = ids_mbname_internal(&mb, name, sizeof(name))) < 0)
		return bad_dbname(r);
	return (*out = strdup(name)) ? 0 : -ENOMEM;
}

static int
history_item_to_dlist(const struct ids_history *h, int dbnames,
    struct ids_dlist *item)
{
	char *wire = NULL;
	int r;

	if (h->name == NULL)
		return ids_error(IDS_EINVAL, "history item without a name");
	if ((r = name_to_wire(h->name, dbnames, &wire)) == 0)
		r = ids_dlist_add_atom(item, "N", wire);
	free(wire);
	if (r == 0 && h->mtime)
		r = ids_dlist_add_snum(item, "M", h->mtime);
	if (r == 0 && h->uidvalidity)
		r = ids_dlist_add_num(item, "V", h->uidvalidity);
	if (r == 0 && h->createdmodseq)
		r = ids_dlist_add_num(item, "C", h->createdmodseq);
	if (r == 0 && h->foldermodseq)
		r = ids_dlist_add_num(item, "F", h->foldermodseq);
	if (r == 0 && h->mbtype[0])
		r = ids_dlist_add_atom(item, "T", h->mbtype);
	if (r == 0 && h->partition && h->partition[0])
		r = ids_dlist_add_atom(item, "P", h->partition);
	return r;
}

int
ids_history_to_dlist(const struct ids_history *h, size_t n, int dbnames,
    struct ids_dlist *list)
{
	struct ids_dlist *item;
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		if ((r = ids_dlist_add_kvlist(list, NULL, &item)) < 0 ||
		    (r = history_item_to_dlist(&h[i], dbnames, item)) < 0)
			return r;
	return 0;
}

static int
history_item_from_dlist(const struct ids_dlist *item, int dbnames,
    struct ids_history *h)
{
	char *t = NULL;
	int r;

	if (item->type != IDS_DL_KVLIST)
		return ids_error(IDS_ECORRUPT, "name history item is not a kvlist");
	if ((r = name_from_wire(ids_dlist_get(item, "N"), dbnames, &h->name)) < 0 ||
	    (r = ids_dlist_get_i64(item, "M", &h->mtime)) < 0 ||
	    (r = ids_dlist_get_u32(item, "V", &h->uidvalidity)) < 0 ||
	    (r = ids_dlist_get_u64(item, "C", &h->createdmodseq)) < 0 ||
	    (r = ids_dlist_get_u64(item, "F", &h->foldermodseq)) < 0 ||
	    (r = ids_dlist_get_str(item, "P", &h->partition)) < 0 ||
	    (r = ids_dlist_get_str(item, "T", &t)) < 0)
		return r;
	/* Items may omit T; keep "" then, so a rewrite omits it too. */
	if (t)
		r = mbtype_from(h->mbtype, t);
	free(t);
	return r;
}

int
ids_history_from_dlist(const struct ids_dlist *list, int dbnames,
    struct ids_history **hp, size_t *np)
{
	const struct ids_dlist *c;
	struct ids_history *h;
	size_t n = 0;
	int r;

	*hp = NULL;
	*np = 0;
	if (list == NULL || list->type == IDS_DL_NIL)
		return 0;
	if (list->type != IDS_DL_LIST)
		return ids_error(IDS_ECORRUPT, "name history is not a list");
	for (c = list->head; c; c = c->next)
		n++;
	if (n == 0)
		return 0;
	if ((h = calloc(n, sizeof(*h))) == NULL)
		return -ENOMEM;
	for (c = list->head, n = 0; c; c = c->next, n++)
		if ((r = history_item_from_dlist(c, dbnames, &h[n])) < 0) {
			history_free(h, n + 1);
			return r;
		}
	*hp = h;
	*np = n;
	return 0;
}

int
ids_acl_to_dlist(const struct ids_acl *acl, size_t n, struct ids_dlist *kvlist)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		if ((r = ids_dlist_add_atom(kvlist, acl[i].id, acl[i].rights)) < 0)
			return r;
	return 0;
}

int
ids_acl_from_dlist(const struct ids_dlist *kvlist, struct ids_acl **aclp, size_t *np)
{
	const struct ids_dlist *c;
	size_t cap = 0;
	int r;

	*aclp = NULL;
	*np = 0;
	if (kvlist == NULL || kvlist->type == IDS_DL_NIL)
		return 0;
	if (kvlist->type != IDS_DL_KVLIST)
		return ids_error(IDS_ECORRUPT, "ACL is not a kvlist");
	for (c = kvlist->head; c; c = c->next) {
		if (ids_dlist_cstr(c) == NULL) {
			r = ids_error(IDS_ECORRUPT, "ACL rights of '%s' are not a string",
			    c->name);
			goto fail;
		}
		if ((r = ids_acl_append(aclp, np, &cap, strdup(c->name), strdup(c->data))) < 0)
			goto fail;
	}
	if ((r = ids_acl_dedup(*aclp, np)) < 0)
		goto fail;
	return 0;
fail:
	ids_acl_free(*aclp, *np);
	*aclp = NULL;
	*np = 0;
	return r;
}

/* --- N and I values ------------------------------------------------------ */

/* T, then key2 (I or N), then P S V C F M A: the fields both records share. */
static int
add_fields(struct ids_dlist *kv, const struct ids_mbentry *e,
    const char *key2, const char *val2)
{
	struct ids_dlist *a;
	int r = 0;

	if (e->mbtype[0])
		r = ids_dlist_add_atom(kv, "T", e->mbtype);
	if (r == 0 && val2 && val2[0])
		r = ids_dlist_add_atom(kv, key2, val2);
	if (r == 0 && e->partition && e->partition[0])
		r = ids_dlist_add_atom(kv, "P", e->partition);
	if (r == 0 && e->server && e->server[0])
		r = ids_dlist_add_atom(kv, "S", e->server);
	if (r == 0 && e->uidvalidity)
		r = ids_dlist_add_num(kv, "V", e->uidvalidity);
	if (r == 0 && e->createdmodseq)
		r = ids_dlist_add_num(kv, "C", e->createdmodseq);
	if (r == 0 && e->foldermodseq)
		r = ids_dlist_add_num(kv, "F", e->foldermodseq);
	if (r == 0 && e->mtime)
		r = ids_dlist_add_snum(kv, "M", e->mtime);
	if (r == 0 && e->nacl && (r = ids_dlist_add_kvlist(kv, "A", &a)) == 0)
		r = ids_acl_to_dlist(e->acl, e->nacl, a);
	return r;
}

/* Prints kv into out and frees it. */
static int
print_free(struct ids_dlist *kv, int r, struct ids_buf *out)
{
	if (r == 0)
		r = ids_dlist_print(kv, out);
	ids_dlist_free(kv);
	return r;
}

int
ids_mbentry_encode_n(const struct ids_mbentry *e, struct ids_buf *out)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();

	if (kv == NULL)
		return -ENOMEM;
	return print_free(kv, add_fields(kv, e, "I", e->uniqueid), out);
}

int
ids_mbentry_encode_i(const struct ids_mbentry *e, struct ids_buf *out)
{
	struct ids_dlist *kv, *h;
	char *dbname = NULL;
	int r;

	if (e->name == NULL)
		return ids_error(IDS_EINVAL, "mailbox entry without a name");
	if ((r = name_to_wire(e->name, 1, &dbname)) < 0)
		return r;
	if ((kv = ids_dlist_new_kvlist()) == NULL) {
		free(dbname);
		return -ENOMEM;
	}
	r = add_fields(kv, e, "N", dbname);
	free(dbname);
	if (r == 0 && e->nhistory && (r = ids_dlist_add_list(kv, "H", &h)) == 0)
		r = ids_history_to_dlist(e->history, e->nhistory, 1, h);
	return print_free(kv, r, out);
}

static int
parse_value(const char *val, size_t len, struct ids_dlist **kvp)
{
	int r;

	if ((r = ids_dlist_parse(val, len, kvp, NULL)) < 0)
		return r;
	if ((*kvp)->type != IDS_DL_KVLIST) {
		ids_dlist_free(*kvp);
		return ids_error(IDS_ECORRUPT, "record value is not a kvlist");
	}
	return 0;
}

static int
decode_fields(struct ids_mbentry *e, const struct ids_dlist *kv)
{
	char *t = NULL;
	int r;

	if ((r = ids_dlist_get_str(kv, "T", &t)) < 0)
		return r;
	r = mbtype_from(e->mbtype, t);
	free(t);
	if (r < 0 ||
	    (r = ids_dlist_get_str(kv, "P", &e->partition)) < 0 ||
	    (r = ids_dlist_get_str(kv, "S", &e->server)) < 0 ||
	    (r = ids_dlist_get_u32(kv, "V", &e->uidvalidity)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "C", &e->createdmodseq)) < 0 ||
	    (r = ids_dlist_get_u64(kv, "F", &e->foldermodseq)) < 0 ||
	    (r = ids_dlist_get_i64(kv, "M", &e->mtime)) < 0)
		return r;
	return ids_acl_from_dlist(ids_dlist_get(kv, "A"), &e->acl, &e->nacl);
}

/* The N value through a dlist tree: the reference for the fast path below. */
static int
decode_n_tree(struct ids_mbentry *e, const char *name, const char *val, size_t len)
{
	struct ids_dlist *kv;
	int r;

	ids_mbentry_release(e);
	if ((r = parse_value(val, len, &kv)) < 0)
		return r;
	if ((e->name = strdup(name)) == NULL)
		r = -ENOMEM;
	if (r == 0 && (r = decode_fields(e, kv)) == 0)
		r = ids_dlist_get_str(kv, "I", &e->uniqueid);
	ids_dlist_free(kv);
	if (r < 0)
		ids_mbentry_release(e);
	return r;
}

/*
 * --- N values in place ----------------------------------------------------
 *
 * A by-name lookup decodes one N value, and building its dlist tree
 * (a node, a key and a string per field) cost more than the LMDB
 * lookup itself.  decode_n_inplace() reads the value with a dlist
 * reader and fills the entry straight from it, allocating only what
 * the entry owns.  It is a fast path, not a second decoder: it takes
 * the first occurrence of each key and skips the rest, as
 * ids_dlist_get() does, applies the checks of the tree decoder, and on
 * any failure at all (a syntax error, a bad field, no memory) gives
 * up, so that the tree decoder decides and reports the error it would
 * have reported alone, whichever of several comes first.
 */

enum n_field { NF_T, NF_I, NF_P, NF_S, NF_V, NF_C, NF_F, NF_M, NF_A, NF_UNKNOWN };

static enum n_field
n_field(const struct ids_dlist_item *it)
{
	static const char keys[] = "TIPSVCFMA";	/* in the order of enum n_field */
	int f;

	if (it->keylen == 1)
		for (f = NF_T; f < NF_UNKNOWN; f++)
			if (keys[f] == it->key[0])
				return (enum n_field)f;
	return NF_UNKNOWN;
}

/* Whether s[0..len) holds a NUL byte (memchr costs more on short strings). */
static int
has_nul(const char *s, size_t len)
{
	size_t i;

	if (len > 32)
		return memchr(s, '\0', len) != NULL;
	for (i = 0; i < len; i++)
		if (s[i] == '\0')
			return 1;
	return 0;
}

/* A string field as a C string: -1 for anything ids_dlist_get_str refuses. */
static int
item_str(const struct ids_dlist_item *it, char **out)
{
	if (it->type == IDS_DL_NIL)
		return 0;
	if (it->type != IDS_DL_STRING || has_nul(it->data, it->len) ||
	    (*out = malloc(it->len + 1)) == NULL)
		return -1;
	memcpy(*out, it->data, it->len);
	(*out)[it->len] = '\0';
	return 0;
}

static int
item_u64(const struct ids_dlist_item *it, uint64_t *out)
{
	return it->type == IDS_DL_NIL ? 0 : ids_dlist_item_u64(it, out);
}

static int
item_mbtype(const struct ids_dlist_item *it, char mbtype[IDS_MBTYPE_MAX])
{
	if (it->type == IDS_DL_NIL)
		return mbtype_canon("e", 1, mbtype);
	if (it->type != IDS_DL_STRING || has_nul(it->data, it->len))
		return -1;
	return mbtype_canon(it->data, it->len, mbtype);
}

/* Appends id => rights; item_acl merges repeated ids once all are read. */
static int
acl_add(struct ids_mbentry *e, size_t *cap, const struct ids_dlist_item *it)
{
	char *id = NULL, *rights = NULL;

	if (it->type != IDS_DL_STRING || item_str(it, &rights) < 0)
		return -1;
	if ((id = malloc(it->keylen + 1)) == NULL) {
		free(rights);
		return -1;
	}
	memcpy(id, it->key, it->keylen);
	id[it->keylen] = '\0';
	return ids_acl_append(&e->acl, &e->nacl, cap, id, rights) < 0 ? -1 : 0;
}

/* The A field: NIL or a kvlist of id => rights (a repeated id: its last rights). */
static int
item_acl(struct ids_mbentry *e, struct ids_dlist_reader *rd,
    const struct ids_dlist_item *it)
{
	struct ids_dlist_item ace;
	size_t cap = 0;
	int r;

	if (it->type == IDS_DL_NIL)
		return 0;
	if (it->type != IDS_DL_KVLIST)
		return -1;
	while ((r = ids_dlist_read(rd, &ace)) == 1)
		if (acl_add(e, &cap, &ace) < 0)
			return -1;
	if (r == 0 && ids_acl_dedup(e->acl, &e->nacl) < 0)
		return -1;
	return r;
}

static int
n_field_decode(struct ids_mbentry *e, enum n_field f, struct ids_dlist_reader *rd,
    const struct ids_dlist_item *it)
{
	uint64_t n = 0;

	switch (f) {
	case NF_T:
		return item_mbtype(it, e->mbtype);
	case NF_I:
		return item_str(it, &e->uniqueid);
	case NF_P:
		return item_str(it, &e->partition);
	case NF_S:
		return item_str(it, &e->server);
	case NF_V:
		if (item_u64(it, &n) < 0 || n > UINT32_MAX)
			return -1;
		e->uidvalidity = (uint32_t)n;
		return 0;
	case NF_C:
		return item_u64(it, &e->createdmodseq);
	case NF_F:
		return item_u64(it, &e->foldermodseq);
	case NF_M:
		return it->type == IDS_DL_NIL ? 0 : ids_dlist_item_i64(it, &e->mtime);
	case NF_A:
		return item_acl(e, rd, it);
	case NF_UNKNOWN:
		break;
	}
	return ids_dlist_skip(rd, it);
}

/* 0 and a complete entry, or -1: let the tree decoder decide. */
static int
decode_n_inplace(struct ids_mbentry *e, const char *name, const char *val, size_t len)
{
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;
	unsigned seen = 0;
	enum n_field f;
	int r;

	ids_dlist_reader_init(&rd, val, len, 0);
	if ((r = ids_dlist_read(&rd, &it)) != 1 || it.type != IDS_DL_KVLIST)
		goto punt;
	while ((r = ids_dlist_read(&rd, &it)) == 1) {
		if ((f = n_field(&it)) != NF_UNKNOWN && (seen & 1u << f))
			f = NF_UNKNOWN;		/* only the first one counts */
		seen |= 1u << f;
		if (n_field_decode(e, f, &rd, &it) < 0)
			goto punt;
	}
	if (r < 0 || (e->name = strdup(name)) == NULL)
		goto punt;
	if (!(seen & 1u << NF_T))
		mbtype_canon("e", 1, e->mbtype);
	ids_dlist_reader_release(&rd);
	return 0;
punt:
	ids_dlist_reader_release(&rd);
	ids_mbentry_release(e);
	return -1;
}

int
ids_mbentry_decode_n(struct ids_mbentry *e, const char *name,
    const char *val, size_t len)
{
	ids_mbentry_release(e);
	if (decode_n_inplace(e, name, val, len) == 0)
		return 0;
	return decode_n_tree(e, name, val, len);
}

int
ids_mbentry_decode_i(struct ids_mbentry *e, const char *uniqueid,
    const char *val, size_t len)
{
	struct ids_dlist *kv;
	int r;

	ids_mbentry_release(e);
	if ((r = parse_value(val, len, &kv)) < 0)
		return r;
	if ((e->uniqueid = strdup(uniqueid)) == NULL)
		r = -ENOMEM;
	if (r == 0 && (r = name_from_wire(ids_dlist_get(kv, "N"), 1, &e->name)) == 0 &&
	    (r = decode_fields(e, kv)) == 0)
		r = ids_history_from_dlist(ids_dlist_get(kv, "H"), 1, &e->history,
		    &e->nhistory);
	ids_dlist_free(kv);
	if (r < 0)
		ids_mbentry_release(e);
	return r;
}
