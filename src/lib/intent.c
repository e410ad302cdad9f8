/*
 * intent.c - intent records in mailboxes.db (see intent.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "intent.h"
#include "mboxlist.h"

void
ids_intent_init(struct ids_intent *in)
{
	memset(in, 0, sizeof(*in));
}

void
ids_intent_release(struct ids_intent *in)
{
	free(in->name);
	free(in->newname);
	free(in->partition);
	free(in->src);
	free(in->dst);
	ids_intent_init(in);
}

int
ids_intent_set(char **field, const char *value)
{
	char *copy = NULL;

	if (value != NULL && (copy = strdup(value)) == NULL)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

static int
add_str(struct ids_dlist *kv, const char *key, const char *value)
{
	if (value == NULL || *value == '\0')
		return 0;
	return ids_dlist_add_atom(kv, key, value);
}

static int
encode(const struct ids_intent *in, const char *why, struct ids_buf *out)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	int r;

	if (kv == NULL)
		return -ENOMEM;
	if ((r = add_str(kv, "OP", in->op)) < 0 ||
	    (r = add_str(kv, "STAGE", in->stage)) < 0 ||
	    (r = add_str(kv, "NAME", in->name)) < 0 ||
	    (r = add_str(kv, "NEW", in->newname)) < 0 ||
	    (r = add_str(kv, "PART", in->partition)) < 0 ||
	    (r = add_str(kv, "SRC", in->src)) < 0 ||
	    (r = add_str(kv, "DST", in->dst)) < 0 ||
	    (r = add_str(kv, "STRATEGY", in->strategy)) < 0 ||
	    (r = ids_dlist_add_snum(kv, "T", in->time)) < 0 ||
	    (r = add_str(kv, "WHY", why)) < 0)
		goto out;
	r = ids_dlist_print(kv, out);
out:
	ids_dlist_free(kv);
	return r;
}

static int
get_word(const struct ids_dlist *kv, const char *key, char word[IDS_INTENT_WORD])
{
	const char *s = ids_dlist_cstr(ids_dlist_get(kv, key));

	if (s == NULL) {
		word[0] = '\0';
		return 0;
	}
	if (strlen(s) >= IDS_INTENT_WORD)
		return ids_error(IDS_ECORRUPT, "intent field %s too long", key);
	strcpy(word, s);
	return 0;
}

static int
decode(struct ids_intent *in, const char *val, size_t len)
{
	struct ids_dlist *kv;
	int r;

	if ((r = ids_dlist_parse(val, len, &kv, NULL)) < 0)
		return r;
	if (kv->type != IDS_DL_KVLIST) {
		ids_dlist_free(kv);
		return ids_error(IDS_ECORRUPT, "intent record is not a kvlist");
	}
	if ((r = get_word(kv, "OP", in->op)) < 0 ||
	    (r = get_word(kv, "STAGE", in->stage)) < 0 ||
	    (r = get_word(kv, "STRATEGY", in->strategy)) < 0 ||
	    (r = ids_dlist_get_str(kv, "NAME", &in->name)) < 0 ||
	    (r = ids_dlist_get_str(kv, "NEW", &in->newname)) < 0 ||
	    (r = ids_dlist_get_str(kv, "PART", &in->partition)) < 0 ||
	    (r = ids_dlist_get_str(kv, "SRC", &in->src)) < 0 ||
	    (r = ids_dlist_get_str(kv, "DST", &in->dst)) < 0 ||
	    (r = ids_dlist_get_i64(kv, "T", &in->time)) < 0)
		ids_intent_release(in);
	ids_dlist_free(kv);
	return r;
}

int
ids_intent_put(struct ids_txn *txn, const char *uniqueid, const struct ids_intent *in)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if ((r = encode(in, NULL, &b)) == 0)
		r = ids_txn_put_raw(txn, 'X', uniqueid, b.s, b.len);
	ids_buf_release(&b);
	return r;
}

int
ids_intent_get(struct ids_txn *txn, const char *uniqueid, struct ids_intent *in)
{
	char *val;
	size_t len;
	int r;

	if ((r = ids_txn_get_raw(txn, 'X', uniqueid, &val, &len)) < 0)
		return r;
	r = decode(in, val, len);
	free(val);
	return r;
}

int
ids_intent_del(struct ids_txn *txn, const char *uniqueid)
{
	return ids_txn_del_raw(txn, 'X', uniqueid);
}

struct each {
	ids_intent_fn fn;
	void *rock;
};

static int
each_raw(const char *id, const char *val, size_t len, void *rock)
{
	struct each *e = rock;
	struct ids_intent in;
	int r;

	ids_intent_init(&in);
	if ((r = decode(&in, val, len)) < 0)
		return ids_error(r, "intent of %s: %s", id, ids_errmsg(r));
	r = e->fn(id, &in, e->rock);
	ids_intent_release(&in);
	return r;
}

int
ids_intent_foreach(struct ids_txn *txn, ids_intent_fn fn, void *rock)
{
	struct each e = { fn, rock };

	return ids_txn_foreach_raw(txn, 'X', each_raw, &e);
}

int
ids_intent_set_aside(struct ids_txn *txn, const char *uniqueid,
    const struct ids_intent *in, const char *why)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if ((r = encode(in, why, &b)) == 0 &&
	    (r = ids_txn_put_raw(txn, 'Z', uniqueid, b.s, b.len)) == 0)
		r = ids_txn_del_raw(txn, 'X', uniqueid);
	ids_buf_release(&b);
	return r == IDS_ENOTFOUND ? 0 : r;
}

struct each_aside {
	ids_intent_aside_fn fn;
	void *rock;
};

static int
each_aside_raw(const char *id, const char *val, size_t len, void *rock)
{
	struct each_aside *e = rock;
	struct ids_intent in;
	struct ids_dlist *kv = NULL;
	const char *why = NULL;
	int r;

	ids_intent_init(&in);
	/* An unreadable record is still listed, with what is wrong with it. */
	if (decode(&in, val, len) < 0)
		why = "unreadable set-aside intent record";
	else if (ids_dlist_parse(val, len, &kv, NULL) == 0)
		why = ids_dlist_cstr(ids_dlist_get(kv, "WHY"));
	r = e->fn(id, &in, why ? why : "", e->rock);
	ids_dlist_free(kv);
	ids_intent_release(&in);
	return r;
}

int
ids_intent_foreach_aside(struct ids_txn *txn, ids_intent_aside_fn fn, void *rock)
{
	struct each_aside e = { fn, rock };

	return ids_txn_foreach_raw(txn, 'Z', each_aside_raw, &e);
}
