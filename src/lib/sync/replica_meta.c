/*
 * replica_meta.c - what a csync client sends that is not a folder:
 * subscriptions, seen state, sieve scripts, quotas and server
 * annotations.  A replica stores them as sent, in replica.db
 * (ids_sync_meta_*, sync.h), and reports them back (GET USER, GET
 * META), so that the client finds them equal and sends nothing the
 * next time; nothing of them changes how idspool serves mail.
 *
 * Each APPLY is one durable replica.db transaction before its OK,
 * except ACTIVATE_SIEVE, one per script of the owner (the named one
 * first): a crash between them leaves flags the client's next GET
 * USER finds different, and it sends the ACTIVATE again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "buf.h"
#include "csync.h"
#include "dlist.h"
#include "error.h"
#include "guid.h"
#include "mboxname.h"
#include "replica_int.h"
#include "sync.h"

static const char *
kv_str(const struct ids_dlist *kv, const char *key)
{
	return ids_dlist_cstr(ids_dlist_get(kv, key));
}

/* replica.db, opened on first use and kept for the session. */
int
ids_repl_meta(struct ids_repl_session *s, struct ids_sync_meta **mp)
{
	int r = 0;

	if (s->meta == NULL)
		r = ids_sync_meta_open(s->cfg, &s->meta);
	*mp = s->meta;
	return r;
}

/* A name usable as an owner or key: present, no control bytes. */
static int
name_ok(const char *v)
{
	const unsigned char *p = (const unsigned char *)v;

	if (v == NULL)
		return 0;
	for (; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* kv without its key (a copy), or NULL on ENOMEM. */
static struct ids_dlist *
without(const struct ids_dlist *kv, const char *key)
{
	struct ids_dlist *c = ids_dlist_copy(kv), *k;

	if (c != NULL && (k = ids_dlist_get(c, key)) != NULL) {
		ids_dlist_unlink(c, k);
		ids_dlist_free(k);
	}
	return c;
}

/* Sets ISACTIVE of (owner, file) to on; absent is fine. */
static int
sieve_flag(struct ids_sync_meta *m, const char *owner, const char *file, int on)
{
	struct ids_dlist *v, *c;
	uint64_t was = 0;
	int r;

	if ((r = ids_sync_meta_get(m, IDS_SYNC_SIEVE, owner, file, &v)) < 0)
		return r == IDS_ENOTFOUND ? 0 : r;
	ids_dlist_get_u64(v, "ISACTIVE", &was);
	if ((uint64_t)on == was && ids_dlist_get(v, "ISACTIVE") != NULL) {
		ids_dlist_free(v);
		return 0;
	}
	if ((c = without(v, "ISACTIVE")) == NULL)
		r = -ENOMEM;
	else if ((r = ids_dlist_add_num(c, "ISACTIVE", on)) == 0)
		r = ids_sync_meta_put(m, IDS_SYNC_SIEVE, owner, file, c);
	ids_dlist_free(c);
	ids_dlist_free(v);
	return r;
}

struct activate {
	struct ids_sync_meta *m;
	const char *owner, *file;
	struct ids_repl_names others;
};

static int
collect_sieve(const char *key, const struct ids_dlist *val, void *rock)
{
	struct activate *a = rock;
	char **v;

	(void)val;
	if (a->file != NULL && strcmp(key, a->file) == 0)
		return 0;
	if (a->others.n == a->others.a) {
		a->others.a = a->others.a ? 2 * a->others.a : 8;
		if ((v = realloc(a->others.v, a->others.a * sizeof(*v))) == NULL)
			return -ENOMEM;
		a->others.v = v;
	}
	return (a->others.v[a->others.n++] = strdup(key)) ? 0 : -ENOMEM;
}

/* ACTIVATE_SIEVE file (file NULL: UNACTIVATE_SIEVE): one active, the others not. */
static int
activate(struct ids_sync_meta *m, const char *owner, const char *file)
{
	struct activate a = { m, owner, file, { NULL, 0, 0 } };
	size_t i;
	int r;

	if ((r = ids_sync_meta_foreach(m, IDS_SYNC_SIEVE, owner, collect_sieve, &a)) == 0 &&
	    file != NULL)
		r = sieve_flag(m, owner, file, 1);
	for (i = 0; r == 0 && i < a.others.n; i++)
		r = sieve_flag(m, owner, a.others.v[i], 0);
	ids_repl_names_free(&a.others);
	return r;
}

/* APPLY SIEVE: the script as sent, ISACTIVE kept from the one it replaces. */
static int
put_sieve(struct ids_sync_meta *m, const char *owner, const struct ids_dlist *arg)
{
	const char *file = kv_str(arg, "FILENAME");
	struct ids_dlist *old = NULL, *v;
	uint64_t on = 0;
	int r;

	if (!name_ok(file))
		return ids_error(IDS_EINVAL, "SIEVE without a FILENAME");
	if ((r = ids_sync_meta_get(m, IDS_SYNC_SIEVE, owner, file, &old)) == 0)
		ids_dlist_get_u64(old, "ISACTIVE", &on);
	else if (r != IDS_ENOTFOUND)
		return r;
	ids_dlist_free(old);
	if ((v = without(arg, "ISACTIVE")) == NULL)
		return -ENOMEM;
	if ((r = ids_dlist_add_num(v, "ISACTIVE", on)) == 0)
		r = ids_sync_meta_put(m, IDS_SYNC_SIEVE, owner, file, v);
	ids_dlist_free(v);
	return r;
}

/* ANNOTATION's key: "entry TAB userid" (neither holds a control byte). */
static int
put_annotation(struct ids_sync_meta *m, const struct ids_dlist *arg, int add)
{
	const char *box = kv_str(arg, "MBOXNAME"), *entry = kv_str(arg, "ENTRY");
	const char *user = kv_str(arg, "USERID");
	struct ids_buf k = IDS_BUF_INIT;
	int r;

	if (!name_ok(box) || !name_ok(entry) || *entry == '\0' || !name_ok(user ? user : ""))
		return ids_error(IDS_EINVAL,
		    "ANNOTATION: MBOXNAME, ENTRY or USERID missing or with a control byte");
	ids_buf_printf(&k, "%s\t%s", entry, user ? user : "");
	if ((r = ids_buf_oom(&k)) == 0)
		r = ids_sync_meta_put(m, IDS_SYNC_ANNOTATION, box, k.s, add ? arg : NULL);
	ids_buf_release(&k);
	return r;
}

/* One APPLY of a non-folder item into replica.db. */
static int
meta_apply(struct ids_sync_meta *m, const char *verb, const char *user,
    const struct ids_dlist *arg)
{
	const char *box = kv_str(arg, "MBOXNAME");

	if (strcmp(verb, "QUOTA") == 0 || strcmp(verb, "UNQUOTA") == 0) {
		const char *root = verb[0] == 'Q' ? kv_str(arg, "ROOT") : ids_dlist_cstr(arg);

		if (!name_ok(root) || *root == '\0')
			return ids_error(IDS_EINVAL, "QUOTA without a ROOT");
		return ids_sync_meta_put(m, IDS_SYNC_QUOTA, root, "", verb[0] == 'Q' ? arg : NULL);
	}
	if (strcmp(verb, "ANNOTATION") == 0 || strcmp(verb, "UNANNOTATION") == 0)
		return put_annotation(m, arg, verb[0] == 'A');
	if (!name_ok(user) || *user == '\0')
		return ids_error(IDS_EINVAL, "APPLY %s without a USERID", verb);
	if (strcmp(verb, "SUB") == 0 || strcmp(verb, "UNSUB") == 0) {
		if (!name_ok(box) || *box == '\0')
			return ids_error(IDS_EINVAL, "%s without a MBOXNAME", verb);
		return ids_sync_meta_put(m, IDS_SYNC_SUB, user, box, verb[0] == 'S' ? arg : NULL);
	}
	if (strcmp(verb, "SEEN") == 0) {
		const char *id = kv_str(arg, "UNIQUEID");

		if (ids_uniqueid_check(id ? id : "") < 0)
			return ids_error(IDS_EINVAL, "SEEN without a UNIQUEID");
		return ids_sync_meta_put(m, IDS_SYNC_SEEN, user, id, arg);
	}
	if (strcmp(verb, "SIEVE") == 0)
		return put_sieve(m, user, arg);
	if (strcmp(verb, "UNSIEVE") == 0)
		return name_ok(kv_str(arg, "FILENAME")) ?
		    ids_sync_meta_put(m, IDS_SYNC_SIEVE, user, kv_str(arg, "FILENAME"), NULL) :
		    ids_error(IDS_EINVAL, "UNSIEVE without a FILENAME");
	if (strcmp(verb, "ACTIVATE_SIEVE") == 0)
		return name_ok(kv_str(arg, "FILENAME")) ?
		    activate(m, user, kv_str(arg, "FILENAME")) :
		    ids_error(IDS_EINVAL, "ACTIVATE_SIEVE without a FILENAME");
	return activate(m, user, NULL);	/* UNACTIVATE_SIEVE */
}

static int
known_verb(const char *verb)
{
	static const char *const v[] = { "SUB", "UNSUB", "SEEN", "SIEVE", "UNSIEVE",
		"ACTIVATE_SIEVE", "UNACTIVATE_SIEVE", "QUOTA", "UNQUOTA", "ANNOTATION",
		"UNANNOTATION" };
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (strcmp(verb, v[i]) == 0)
			return 1;
	return 0;
}

int
ids_repl_apply_meta(struct ids_repl_session *s, const char *sub, const struct ids_dlist *arg)
{
	const char *verb = strncmp(sub, "LOCAL_", 6) == 0 ? sub + 6 : sub;
	const char *user = arg ? kv_str(arg, "USERID") : NULL;
	struct ids_sync_meta *m;
	int r;

	if (!known_verb(verb)) {
		ids_repl_log(s, LOG_ERR, "unknown command APPLY %.40s", sub);
		return ids_repl_bad(s, "IMAP_PROTOCOL_ERROR Unrecognized command");
	}
	if (arg == NULL)
		return ids_repl_bad(s, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = ids_repl_meta(s, &m)) == 0)
		r = meta_apply(m, verb, user, arg);
	if (r < 0)
		return ids_repl_refuse(s, sub, r == IDS_EINVAL || r == IDS_ETOOLONG ?
		    IDS_CSYNC_EBADPARAM : IDS_CSYNC_EIOERROR, r);
	ids_repl_log(s, LOG_INFO, "APPLY %s%s%s: stored", sub, user ? " " : "", user ? user : "");
	return ids_repl_ok(s, "success");
}

/* "* SEEN %(UNIQUEID LASTREAD ...)": the item as sent, without its USERID. */
static int
report_seen(const char *key, const struct ids_dlist *val, void *rock)
{
	struct ids_repl_session *s = rock;
	struct ids_dlist *c = without(val, "USERID");
	int r;

	(void)key;
	if (c == NULL)
		return -ENOMEM;
	r = ids_repl_untagged(s, "SEEN", c);
	ids_dlist_free(c);
	return r;
}

static int
collect_sub(const char *key, const struct ids_dlist *val, void *rock)
{
	(void)val;
	return ids_dlist_add_atom(rock, NULL, key);
}

/* "* SIEVE %(FILENAME LAST_UPDATE GUID ISACTIVE)" for a stored script. */
static int
report_sieve(const char *key, const struct ids_dlist *item, void *rock)
{
	struct ids_repl_session *s = rock;
	struct ids_dlist *kv = ids_dlist_new_kvlist(), *c = ids_dlist_get(item, "CONTENT");
	uint8_t g[IDS_GUID_LEN];
	char hex[IDS_GUID_HEXLEN + 1];
	uint64_t t = 0, act = 0;
	int r;

	if (kv == NULL)
		return -ENOMEM;
	ids_dlist_get_u64(item, "LAST_UPDATE", &t);
	ids_dlist_get_u64(item, "ISACTIVE", &act);
	ids_guid_buf(c && c->data ? c->data : "", c && c->data ? c->len : 0, g);
	ids_guid_hex(g, hex);
	if ((r = ids_dlist_add_atom(kv, "FILENAME", key)) == 0 &&
	    (r = ids_dlist_add_num(kv, "LAST_UPDATE", t)) == 0 &&
	    (r = ids_dlist_add_atom(kv, "GUID", hex)) == 0 &&
	    (r = ids_dlist_add_num(kv, "ISACTIVE", act)) == 0)
		r = ids_repl_untagged(s, "SIEVE", kv);
	ids_dlist_free(kv);
	return r;
}

/* What Cyrus's user_meta() reports: SEEN items, LSUB, SIEVE scripts. */
int
ids_repl_report_meta(struct ids_repl_session *s, const char *userid)
{
	struct ids_sync_meta *m;
	struct ids_dlist *subs;
	int r;

	if (!name_ok(userid) || *userid == '\0')
		return 0;
	if ((r = ids_repl_meta(s, &m)) < 0 ||
	    (r = ids_sync_meta_foreach(m, IDS_SYNC_SEEN, userid, report_seen, s)) < 0)
		return r;
	if ((subs = ids_dlist_new_list()) == NULL)
		return -ENOMEM;
	r = ids_sync_meta_foreach(m, IDS_SYNC_SUB, userid, collect_sub, subs);
	if (r == 0 && subs->head != NULL)
		r = ids_repl_untagged(s, "LSUB", subs);
	ids_dlist_free(subs);
	if (r == 0)
		r = ids_sync_meta_foreach(m, IDS_SYNC_SIEVE, userid, report_sieve, s);
	return r;
}

int
ids_repl_meta_delete_user(struct ids_repl_session *s, const char *userid)
{
	struct ids_sync_meta *m;
	int r;

	if (!name_ok(userid) || *userid == '\0')
		return 0;
	if ((r = ids_repl_meta(s, &m)) == 0)
		r = ids_sync_meta_delete_owner(m, userid);
	return r;
}

void
ids_repl_meta_release(struct ids_repl_session *s)
{
	ids_sync_meta_close(s->meta);
	s->meta = NULL;
}
