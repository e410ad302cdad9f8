/*
 * replica_meta.c - what a csync client sends that is not a folder:
 * subscriptions, seen state of other users, sieve scripts, quotas and
 * annotations.  A replica stores them as sent and reports them back
 * (GET USER, GET META), so that the client finds them equal and sends
 * nothing the next time; nothing of them changes how idspool serves
 * mail.
 *
 * One file per owner, $configdirectory/replica/<owner>.meta, holding
 * one dlist kvlist (spool-layout.md "Replication"):
 *   %(SUB (mboxname ...) SEEN (%(UNIQUEID ...) ...)
 *     SIEVE (%(FILENAME f LAST_UPDATE t CONTENT c ISACTIVE 0|1) ...)
 *     QUOTA (%(ROOT r ...) ...) ANNOTATION (%(MBOXNAME m ENTRY e USERID u VALUE v) ...))
 * The owner is the item's USERID, or "%server" for quotas and
 * annotations (they are named by their root or mailbox).  Each change
 * rewrites the file durably (ids_write_durable: a crash leaves the old
 * or the new file) before its OK; failpoint sync.meta_write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "csync.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "replica_int.h"

#define META_DIR	"replica"
#define META_SERVER	"%server"
#define META_MAX	(64u << 20)

static const char *
kv_str(const struct ids_dlist *kv, const char *key)
{
	return ids_dlist_cstr(ids_dlist_get(kv, key));
}

/* An owner usable as a file name: no '/', no leading '.', not empty. */
static int
owner_ok(const char *owner)
{
	return owner != NULL && *owner != '\0' && *owner != '.' && strchr(owner, '/') == NULL &&
	    strlen(owner) < 200;
}

static int
meta_dir(struct ids_repl_session *s, int *fdp)
{
	int root, r;

	if ((r = ids_opendir_abs(s->cfg->configdirectory, &root)) < 0)
		return r;
	r = ids_opendir_beneath(root, META_DIR, IDS_OPEN_CREATE, fdp);
	close(root);
	return r;
}

/* The owner's file as a kvlist (empty when there is none). */
static int
meta_read(struct ids_repl_session *s, const char *owner, struct ids_dlist **out)
{
	char name[256], *buf = NULL;
	size_t len, used;
	int dfd, r;

	*out = NULL;
	if (!owner_ok(owner))
		return ids_error(IDS_EINVAL, "'%s' is not a user name", owner ? owner : "");
	if ((r = meta_dir(s, &dfd)) < 0)
		return r;
	snprintf(name, sizeof(name), "%s.meta", owner);
	r = ids_read_file(dfd, name, META_MAX, &buf, &len);
	close(dfd);
	if (r == -ENOENT) {
		*out = ids_dlist_new_kvlist();
		return *out ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	r = ids_dlist_parse(buf, len, out, &used);
	free(buf);
	if (r == 0 && (*out)->type != IDS_DL_KVLIST) {
		ids_dlist_free(*out);
		*out = NULL;
		r = ids_error(IDS_ECORRUPT, "%s/%s: not a kvlist", META_DIR, name);
	}
	return r;
}

static int
meta_write(struct ids_repl_session *s, const char *owner, const struct ids_dlist *kv)
{
	struct ids_buf b = IDS_BUF_INIT;
	char name[256];
	int dfd, r;

	snprintf(name, sizeof(name), "%s.meta", owner);
	if ((r = meta_dir(s, &dfd)) < 0)
		return r;
	if ((r = ids_dlist_print(kv, &b)) == 0 && (r = IDS_FAILPOINT("sync.meta_write")) == 0)
		r = ids_write_durable(dfd, name, b.s, b.len, 0600);
	close(dfd);
	ids_buf_release(&b);
	return r;
}

/* The list under key in kv, made when missing. */
static struct ids_dlist *
meta_list(struct ids_dlist *kv, const char *key)
{
	struct ids_dlist *l = ids_dlist_get(kv, key);

	if (l == NULL && ids_dlist_add_list(kv, key, &l) < 0)
		return NULL;
	return l;
}

/* Removes the items of list whose key1 (and key2) equal the item's. */
static void
meta_remove(struct ids_dlist *list, const struct ids_dlist *item, const char *key1,
    const char *key2)
{
	struct ids_dlist *i, *next;
	const char *v1 = key1 ? kv_str(item, key1) : ids_dlist_cstr(item);
	const char *v2 = key2 ? kv_str(item, key2) : NULL;

	for (i = list->head; i != NULL; i = next) {
		const char *w1 = key1 ? kv_str(i, key1) : ids_dlist_cstr(i);
		const char *w2 = key2 ? kv_str(i, key2) : NULL;

		next = i->next;
		if (w1 != NULL && v1 != NULL && strcmp(w1, v1) == 0 &&
		    (key2 == NULL || (w2 != NULL && v2 != NULL && strcmp(w2, v2) == 0))) {
			ids_dlist_unlink(list, i);
			ids_dlist_free(i);
		}
	}
}

/* One change: the item removed by its keys, then (add) stored again. */
static int
meta_change(struct ids_repl_session *s, const char *owner, const char *listkey,
    const struct ids_dlist *item, const char *key1, const char *key2, int add)
{
	struct ids_dlist *kv, *list, *copy;
	int r;

	if ((r = meta_read(s, owner, &kv)) < 0)
		return r;
	if ((list = meta_list(kv, listkey)) == NULL) {
		ids_dlist_free(kv);
		return -ENOMEM;
	}
	meta_remove(list, item, key1, key2);
	if (add) {
		if ((copy = ids_dlist_copy(item)) == NULL)
			r = -ENOMEM;
		else if ((r = ids_dlist_add_child(list, NULL, copy)) < 0)
			ids_dlist_free(copy);
	}
	if (r == 0)
		r = meta_write(s, owner, kv);
	ids_dlist_free(kv);
	return r;
}

/* SIEVE scripts: ACTIVATE_SIEVE marks one, UNACTIVATE_SIEVE none. */
static int
meta_activate(struct ids_repl_session *s, const char *owner, const char *file)
{
	struct ids_dlist *kv, *list, *i;
	int r;

	if ((r = meta_read(s, owner, &kv)) < 0)
		return r;
	list = meta_list(kv, "SIEVE");
	for (i = list ? list->head : NULL; i != NULL; i = i->next) {
		struct ids_dlist *a = ids_dlist_get(i, "ISACTIVE");
		const char *f = kv_str(i, "FILENAME");
		int on = file != NULL && f != NULL && strcmp(f, file) == 0;

		if (a != NULL) {
			ids_dlist_unlink(i, a);
			ids_dlist_free(a);
		}
		if ((r = ids_dlist_add_num(i, "ISACTIVE", on)) < 0)
			break;
	}
	if (r == 0)
		r = meta_write(s, owner, kv);
	ids_dlist_free(kv);
	return r;
}

int
ids_repl_apply_meta(struct ids_repl_session *s, const char *sub, const struct ids_dlist *arg)
{
	const char *verb = strncmp(sub, "LOCAL_", 6) == 0 ? sub + 6 : sub;
	const char *user = arg ? kv_str(arg, "USERID") : NULL;
	int r;

	if (arg == NULL)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if (strcmp(verb, "SUB") == 0 || strcmp(verb, "UNSUB") == 0)
		r = meta_change(s, user, "SUB", ids_dlist_get(arg, "MBOXNAME"), NULL, NULL,
		    verb[0] == 'S');
	else if (strcmp(verb, "SEEN") == 0)
		r = meta_change(s, user, "SEEN", arg, "UNIQUEID", NULL, 1);
	else if (strcmp(verb, "SIEVE") == 0 || strcmp(verb, "UNSIEVE") == 0)
		r = meta_change(s, user, "SIEVE", arg, "FILENAME", NULL, verb[0] == 'S');
	else if (strcmp(verb, "ACTIVATE_SIEVE") == 0 || strcmp(verb, "UNACTIVATE_SIEVE") == 0)
		r = meta_activate(s, user, verb[0] == 'A' ? kv_str(arg, "FILENAME") : NULL);
	else if (strcmp(verb, "QUOTA") == 0)
		r = meta_change(s, META_SERVER, "QUOTA", arg, "ROOT", NULL, 1);
	else if (strcmp(verb, "UNQUOTA") == 0)
		r = meta_change(s, META_SERVER, "QUOTA", arg, NULL, NULL, 0);
	else if (strcmp(verb, "ANNOTATION") == 0 || strcmp(verb, "UNANNOTATION") == 0)
		r = meta_change(s, META_SERVER, "ANNOTATION", arg, "MBOXNAME", "ENTRY",
		    verb[0] == 'A');
	else {
		ids_repl_log(s, LOG_ERR, "unknown command APPLY %.40s", sub);
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR Unrecognized command");
	}
	if (r < 0)
		return ids_repl_refuse(s, sub, r == IDS_EINVAL ? IDS_CSYNC_EBADPARAM :
		    IDS_CSYNC_EIOERROR, r);
	ids_repl_log(s, LOG_INFO, "APPLY %s%s%s: stored", sub, user ? " " : "", user ? user : "");
	return ids_csync_write_ok(s->out, "success");
}

/* "* SIEVE %(FILENAME LAST_UPDATE GUID ISACTIVE)" for a stored script. */
static int
report_sieve(struct ids_repl_session *s, const struct ids_dlist *item)
{
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
	if ((r = ids_dlist_add_atom(kv, "FILENAME", kv_str(item, "FILENAME"))) == 0 &&
	    (r = ids_dlist_add_num(kv, "LAST_UPDATE", t)) == 0 &&
	    (r = ids_dlist_add_atom(kv, "GUID", hex)) == 0 &&
	    (r = ids_dlist_add_num(kv, "ISACTIVE", act)) == 0)
		r = ids_csync_write_untagged(s->out, "SIEVE", kv);
	ids_dlist_free(kv);
	return r;
}

/* What Cyrus's user_meta() reports: SEEN items, LSUB, SIEVE scripts. */
int
ids_repl_report_meta(struct ids_repl_session *s, const char *userid)
{
	struct ids_dlist *kv, *l, *i;
	int r;

	if ((r = meta_read(s, userid, &kv)) < 0)
		return r == IDS_EINVAL ? 0 : r;
	l = ids_dlist_get(kv, "SEEN");
	for (i = l ? l->head : NULL; i != NULL && r == 0; i = i->next) {
		struct ids_dlist *c = ids_dlist_copy(i), *u;

		if (c == NULL) {
			r = -ENOMEM;
			break;
		}
		if ((u = ids_dlist_get(c, "USERID")) != NULL) {
			ids_dlist_unlink(c, u);
			ids_dlist_free(u);
		}
		r = ids_csync_write_untagged(s->out, "SEEN", c);
		ids_dlist_free(c);
	}
	l = ids_dlist_get(kv, "SUB");
	if (r == 0 && l != NULL && l->head != NULL)
		r = ids_csync_write_untagged(s->out, "LSUB", l);
	l = ids_dlist_get(kv, "SIEVE");
	for (i = l ? l->head : NULL; i != NULL && r == 0; i = i->next)
		r = report_sieve(s, i);
	ids_dlist_free(kv);
	return r;
}

int
ids_repl_meta_delete_user(struct ids_repl_session *s, const char *userid)
{
	char name[256];
	int dfd, r;

	if (!owner_ok(userid))
		return 0;
	if ((r = meta_dir(s, &dfd)) < 0)
		return r;
	snprintf(name, sizeof(name), "%s.meta", userid);
	if ((r = IDS_FAILPOINT("sync.meta_write")) == 0 &&
	    unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		r = -errno;
	if (r == 0)
		r = ids_fsync_dir(dfd);
	close(dfd);
	return r;
}

void
ids_repl_meta_release(struct ids_repl_session *s)
{
	s->meta = NULL;
}
