/*
 * client.c - the client side of csync (client.h): pull from and push
 * to a csync server, folder by uniqueid.
 *
 * Pulling writes only through the replica's applies (replica_apply.c),
 * called on a session with no wire: the folder's records and files
 * (ids_repl_apply_mailbox), a rename (ids_repl_apply_rename) and a
 * delete (ids_repl_apply_unmailbox), with their intents, failpoints and
 * durability; the fetched files are staged by the codec in the
 * session's staging directory, as the replica stages APPLY MESSAGE.
 * Pushing writes nothing here.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "csync.h"
#include "dlist.h"
#include "error.h"
#include "guid.h"
#include "index.h"
#include "lock.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "replica.h"
#include "replica_int.h"
#include "sync.h"
#include "repair.h"
#include "client.h"
#include "findings.h"
#include "merge.h"

/* Files per APPLY MESSAGE line, and bytes: Cyrus batches its uploads too. */
#define PUSH_BATCH_FILES	64
#define PUSH_BATCH_BYTES	((uint64_t)64 << 20)

struct client {
	struct ids_repl_session s;	/* the local side: applies, staging, held files */
	struct ids_replica_opts ropts;
	const struct ids_sync_client_opts *o;
	struct ids_sync_client_report *rep;
	struct ids_csync_in *in;
	struct ids_csync_out *out;
	int idspool;			/* the banner names an idspool peer */
	int pipeline;			/* and its pipelining (group commit) */
	int no_state;			/* it does not answer GET STATE (repair.h) */
	int no_userstate;		/* it refused GET USER %(USERID u MISSING 1) */
	int peer_fd;			/* the peer's output */
	struct ids_repl_names users;	/* -A: the users of both sides */
	const char *meta_user;		/* meta_user(): its refusals are this user's */
	struct ids_repl_names lfailed;	/* the set's folders failed by a local error */
};

/* The untagged lines of one answer and its status. */
struct reply {
	struct ids_csync_line **v;
	size_t n, a;
	enum ids_csync_kind status;
	char text[256];
	int damaged;	/* a line of it was refused by the codec (the code) */
};

static void
client_log(struct client *c, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
client_log(struct client *c, int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (c->o->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->o->log(c->o->rock, prio, msg);
}

static void
reply_release(struct reply *rp)
{
	size_t i;

	for (i = 0; i < rp->n; i++)
		ids_csync_line_free(rp->v[i]);
	free(rp->v);
	memset(rp, 0, sizeof(*rp));
}

/* The session's wire, as repair.c's helpers take it. */
static void
client_wire(struct client *c, struct ids_sync_wire *w)
{
	memset(w, 0, sizeof(*w));
	w->s = &c->s;
	w->in = c->in;
	w->out = c->out;
	w->log = c->o->log;
	w->trace = c->o->trace;
	w->rock = c->o->rock;
	w->no_state = c->no_state;
}

static void
trace_line(struct client *c, int dir, const struct ids_csync_line *l)
{
	struct ids_sync_wire w;

	client_wire(c, &w);
	ids_sync_trace(&w, dir, l);
}

/* Reads lines up to the status (ids_sync_read_answer).  0, or the code that lost the stream. */
static int
read_reply(struct client *c, struct reply *rp)
{
	struct ids_sync_wire w;
	int r, status;

	memset(rp, 0, sizeof(*rp));
	client_wire(c, &w);
	r = ids_sync_read_answer(&w, &rp->v, &rp->n, &status, &rp->damaged, rp->text,
	    sizeof(rp->text));
	rp->a = rp->n;
	rp->status = (enum ids_csync_kind)status;
	return r;
}

/* Sends l (freed) and reads its answer into rp. */
static int
exchange(struct client *c, struct ids_csync_line *l, struct reply *rp)
{
	struct ids_sync_wire w;
	int r;

	memset(rp, 0, sizeof(*rp));
	client_wire(c, &w);
	if ((r = ids_sync_send(&w, l)) < 0)
		return r;
	return read_reply(c, rp);
}

/* A command line "WORD [SUB]". */
static struct ids_csync_line *
cmd(const char *word, const char *sub)
{
	struct ids_csync_line *l;

	if (ids_csync_line_new(IDS_CSYNC_COMMAND, word, &l) < 0)
		return NULL;
	if (sub != NULL && ids_dlist_add_atom(l->args, NULL, sub) < 0) {
		ids_csync_line_free(l);
		return NULL;
	}
	return l;
}

/* cmd() with one more argument, taken over. */
static struct ids_csync_line *
cmd_arg(const char *word, const char *sub, struct ids_dlist *arg)
{
	struct ids_csync_line *l = cmd(word, sub);

	if (arg == NULL || l == NULL || ids_dlist_add_child(l->args, NULL, arg) < 0) {
		if (arg != NULL && l == NULL)
			ids_dlist_free(arg);
		ids_csync_line_free(l);
		return NULL;
	}
	return l;
}

static struct ids_csync_line *
cmd_str(const char *word, const char *sub, const char *v)
{
	struct ids_csync_line *l = cmd(word, sub);

	if (l != NULL && ids_dlist_add_atom(l->args, NULL, v) < 0) {
		ids_csync_line_free(l);
		return NULL;
	}
	return l;
}

/* opts->refused, when set: what was refused, and why. */
static void
report_refusal(struct client *c, enum ids_sync_refusal_code code, const char *name,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
report_refusal(struct client *c, enum ids_sync_refusal_code code, const char *name,
    const char *fmt, ...)
{
	struct ids_sync_refusal x;
	char why[1024];
	va_list ap;

	if (c->o->refused == NULL)
		return;
	why[0] = '\0';
	if (c->meta_user != NULL && strcmp(name, c->meta_user) != 0)
		snprintf(why, sizeof(why), "%s: ", name);	/* the item refused: APPLY SUB ... */
	va_start(ap, fmt);
	vsnprintf(why + strlen(why), sizeof(why) - strlen(why), fmt, ap);
	va_end(ap);
	x.code = c->meta_user != NULL ? IDS_SYNC_REFUSED_META : code;
	x.name = c->meta_user != NULL ? c->meta_user : name;
	x.reason = why;
	c->o->refused(c->o->rock, &x);
}

/* A refusal of the peer: counted and logged, the session goes on. */
static int
peer_refused(struct client *c, const char *what, const struct reply *rp)
{
	c->rep->failed++;
	client_log(c, LOG_ERR, "%s: the peer answered %s %s", what,
	    rp->status == IDS_CSYNC_NO ? "NO" : "BAD", rp->text);
	report_refusal(c, IDS_SYNC_REFUSED_PEER, what, "the peer answered %s %s",
	    rp->status == IDS_CSYNC_NO ? "NO" : "BAD", rp->text);
	return 0;
}

static const char *
kv_str(const struct ids_dlist *kv, const char *key)
{
	return ids_dlist_cstr(ids_dlist_get(kv, key));
}

/*
 * A local error of the folder name, found on our side (its cyrus.header
 * or cyrus.index, a message file missing or unreadable, no memory to
 * build its state): that folder's failure, counted, logged and
 * reported as a refusal (IDS_SYNC_REFUSED_LOCAL), the session going on
 * in step with the peer.  Returns 1 (the folder refused).
 */
static int
folder_error(struct client *c, const char *name, int r)
{
	c->rep->failed++;
	client_log(c, LOG_ERR, "%s: %s", name, ids_errmsg(r));
	report_refusal(c, IDS_SYNC_REFUSED_LOCAL, name, "%s", ids_errmsg(r));
	/* without it (no memory), repair_set counts the folder a second time at worst */
	(void)ids_repl_names_add(&c->lfailed, name);
	return 1;
}

static int
local_failed(const struct client *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->lfailed.n; i++)
		if (strcmp(c->lfailed.v[i], name) == 0)
			return 1;
	return 0;
}

/*
 * folder_error of a line whose files the codec refused before writing
 * anything of it: the message (which begins with the file's name) given
 * its folder's directory, so that the reason names the file.
 */
static int
file_error(struct client *c, const char *name, struct ids_mailbox *mb, int r)
{
	char dir[PATH_MAX], msg[PATH_MAX + 512];

	if (mb == NULL || ids_path_datadir(c->s.cfg, &mb->loc, dir, sizeof(dir)) < 0)
		return folder_error(c, name, r);
	snprintf(msg, sizeof(msg), "%s/%s", dir, ids_errmsg(r));
	return folder_error(c, name, ids_error(r, "%s", msg));
}

/*
 * Sends l (freed) for the folder name, flushed when flush is set: 0; 1
 * when nothing of it was written (its files refused by the codec, or no
 * memory to build it: ids_csync_out_count), that folder's failure
 * reported (file_error) and the stream intact; negative when the line
 * was begun and the link is lost.
 */
static int
send_folder_line(struct client *c, struct ids_csync_line *l, const char *name,
    struct ids_mailbox *mb, int flush)
{
	uint64_t before = ids_csync_out_count(c->out);
	int r;

	if (l == NULL)
		return folder_error(c, name, -ENOMEM);
	trace_line(c, '>', l);
	r = ids_csync_write(c->out, l);
	ids_csync_line_free(l);
	if (r < 0)
		return ids_csync_out_count(c->out) == before ? file_error(c, name, mb, r) : r;
	return flush ? ids_csync_flush(c->out) : 0;
}

/* A refusal (> 0) was counted and logged: the next folder goes on. */
static int
next_one(int r)
{
	return r > 0 ? 0 : r;
}

/* --- the peer's folders -------------------------------------------------- */

struct pfolder {
	const struct ids_dlist *kv;	/* the MAILBOX kvlist (in the reply) */
	const char *uniqueid, *name;
	char *own;			/* its name after a recovery rename (malloc'd) */
	int matched;			/* a local folder has its uniqueid */
	int deleted;			/* push: deleted on the peer */
	int refused;			/* its rename was refused (counted) */
	int same;			/* both states were equal: nothing applied */
	const struct ids_dlist *missing;	/* the peer's MISSING (in the reply) */
	int mknown;			/* the answer that named it named its MISSING too */
	struct ids_dlist *lmissing;	/* ours, when same (the state cache's) */
};

struct pfolders {
	struct reply rp;
	struct reply byid;	/* -m: GET UNIQUEIDS of folders renamed here */
	struct pfolder *v;
	size_t n;
};

static void
pfolders_release(struct pfolders *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->v[i].own);
		ids_dlist_free(p->v[i].lmissing);
	}
	reply_release(&p->rp);
	reply_release(&p->byid);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* The "* MAILBOX" lines of an answer; 1 when the peer refused (reported). */
static int
pfolders_collect(struct client *c, const char *what, struct pfolders *p)
{
	size_t i;

	if (p->rp.status != IDS_CSYNC_OK)
		return peer_refused(c, what, &p->rp) + 1;
	if ((p->v = calloc(p->rp.n + 1, sizeof(*p->v))) == NULL)
		return -ENOMEM;
	for (i = 0; i < p->rp.n; i++) {
		const struct ids_csync_line *l = p->rp.v[i];
		const struct ids_dlist *kv = ids_csync_arg(l, 0);

		if (l->kind != IDS_CSYNC_UNTAGGED || strcmp(l->word, "MAILBOX") != 0 ||
		    kv == NULL || kv->type != IDS_DL_KVLIST ||
		    kv_str(kv, "UNIQUEID") == NULL || kv_str(kv, "MBOXNAME") == NULL)
			continue;
		p->v[p->n].kv = kv;
		p->v[p->n].uniqueid = kv_str(kv, "UNIQUEID");
		p->v[p->n].name = kv_str(kv, "MBOXNAME");
		p->n++;
	}
	return 0;
}

static struct pfolder *
pfolder_by_id(struct pfolders *p, const char *uniqueid)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->v[i].uniqueid, uniqueid) == 0)
			return &p->v[i];
	return NULL;
}

/* The "* MISSING %(UNIQUEID u MISSING (guids))" lines, each to its folder. */
static void
pfolders_missing(struct pfolders *p)
{
	struct pfolder *pf;
	size_t i;

	for (i = 0; i < p->rp.n; i++) {
		const struct ids_csync_line *l = p->rp.v[i];
		const struct ids_dlist *kv = ids_csync_arg(l, 0), *m;

		if (l->kind != IDS_CSYNC_UNTAGGED || strcmp(l->word, "MISSING") != 0 ||
		    kv == NULL || kv->type != IDS_DL_KVLIST || kv_str(kv, "UNIQUEID") == NULL ||
		    (m = ids_dlist_get(kv, "MISSING")) == NULL || m->type != IDS_DL_LIST ||
		    (pf = pfolder_by_id(p, kv_str(kv, "UNIQUEID"))) == NULL)
			continue;
		pf->missing = m;
	}
	/* the folders of this answer (GET UNIQUEIDS may add others: unknown) */
	for (i = 0; i < p->n; i++)
		p->v[i].mknown = 1;
}

/* GET USER userid or GET MAILBOXES (names): the peer's folders. */
static int
peer_folders(struct client *c, const char *userid, const char *const *names, size_t n,
    struct pfolders *p)
{
	struct ids_csync_line *l;
	struct ids_dlist *list;
	size_t i;
	int r;

	memset(p, 0, sizeof(*p));
	if (userid != NULL && c->idspool && !c->no_userstate && !c->o->verify) {
		/*
		 * idspool's GET USER %(USERID u MISSING 1): each folder's MISSING
		 * files with its state, computed once there (the repair step then
		 * asks GET STATE only of the folders this session changes)
		 */
		struct ids_dlist *kv = ids_dlist_new_kvlist();

		if (kv == NULL || ids_dlist_add_atom(kv, "USERID", userid) < 0 ||
		    ids_dlist_add_num(kv, "MISSING", 1) < 0) {
			ids_dlist_free(kv);
			return -ENOMEM;
		}
		if ((r = exchange(c, cmd_arg("GET", "USER", kv), &p->rp)) < 0)
			return r;
		if (p->rp.status != IDS_CSYNC_BAD) {
			if ((r = pfolders_collect(c, userid, p)) == 0)
				pfolders_missing(p);
			return r;
		}
		/* an idspool of before the extension: the plain GET USER */
		c->no_userstate = 1;
		reply_release(&p->rp);
	}
	if (userid != NULL) {
		l = cmd_str("GET", "USER", userid);
	} else {
		if ((list = ids_dlist_new_list()) == NULL)
			return -ENOMEM;
		for (i = 0; i < n; i++)
			if (ids_dlist_add_atom(list, NULL, names[i]) < 0) {
				ids_dlist_free(list);
				return -ENOMEM;
			}
		l = cmd_arg("GET", "MAILBOXES", list);
	}
	if ((r = exchange(c, l, &p->rp)) < 0)
		return r;
	return pfolders_collect(c, userid != NULL ? userid : "GET MAILBOXES", p);
}

/* --- comparing states ------------------------------------------------------ */

static int
value_eq(const struct ids_dlist *a, const struct ids_dlist *b)
{
	struct ids_buf x = IDS_BUF_INIT, y = IDS_BUF_INIT;
	int eq;

	if (a == NULL || b == NULL)
		return a == b;
	/* a string prints as its bytes decide: equal bytes, equal prints */
	if (a->type == IDS_DL_STRING && b->type == IDS_DL_STRING)
		return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
	ids_dlist_print(a, &x);
	ids_dlist_print(b, &y);
	eq = !ids_buf_oom(&x) && !ids_buf_oom(&y) && x.len == y.len &&
	    memcmp(x.s, y.s, x.len) == 0;
	ids_buf_release(&x);
	ids_buf_release(&y);
	return eq;
}

/*
 * 1 when every key of want's MAILBOX line has the same value in have's:
 * what GET MAILBOXES reports then needs no apply.
 */
static int
same_state(const struct ids_dlist *want, const struct ids_dlist *have)
{
	const struct ids_dlist *k, *h, *next;

	if (want == NULL || have == NULL)
		return 0;
	/* both sides print their keys in Cyrus's order: have's next key is tried first */
	for (k = want->head, next = have->head; k != NULL; k = k->next) {
		if (k->name == NULL || strcmp(k->name, "RECORD") == 0)
			continue;
		if (next != NULL && next->name != NULL && strcmp(next->name, k->name) == 0)
			h = next;
		else
			h = ids_dlist_get(have, k->name);
		if (!value_eq(k, h))
			return 0;
		next = h->next;
	}
	return 1;
}

/*
 * Our MAILBOX line (no records) for the live folder name, and its
 * stat-only MISSING list: the state cache's when it holds (no lock
 * taken), else computed under the folder's lock (replica_state.c).
 */
static int
local_state(struct client *c, const char *name, struct ids_dlist **kv,
    struct ids_dlist **missing)
{
	struct ids_mbentry e;
	int r;

	*kv = *missing = NULL;
	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup(c->s.mbl, name, &e);
	if (r == 0 && ids_mbentry_is_tombstone(&e))
		r = ids_error(IDS_ENOTFOUND, "%s: no such mailbox (deleted or renamed)", name);
	if (r == 0)
		r = ids_repl_cached_state(&c->s, &e, NULL, kv, missing);
	ids_mbentry_release(&e);
	return r;
}

/* A local folder, by uniqueid or by name. */
struct lfolder {
	char *name, *uniqueid, *partition;
	uint32_t uidvalidity;
	int deleted;		/* pull: deleted here */
	struct pfolder *pf;	/* the peer's folder of its uniqueid (match_byid), or NULL */
};

static void
lfolders_free(struct lfolder *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].uniqueid);
		free(v[i].partition);
	}
	free(v);
}

/* The live local folders named in names (those that exist). */
/* f (zeroed) from the live entry e. */
static int
lfolder_set(struct lfolder *f, const struct ids_mbentry *e)
{
	f->name = strdup(e->name);
	f->uniqueid = strdup(e->uniqueid);
	f->partition = strdup(e->partition ? e->partition : "default");
	f->uidvalidity = e->uidvalidity;
	return f->name == NULL || f->uniqueid == NULL || f->partition == NULL ? -ENOMEM : 0;
}

static int
lfolders_of(struct client *c, const struct ids_repl_names *names, struct lfolder **vp,
    size_t *np)
{
	struct lfolder *v = calloc(names->n + 1, sizeof(*v));
	size_t i, n = 0;
	int r = 0;

	if (v == NULL)
		return -ENOMEM;
	for (i = 0; i < names->n && r == 0; i++) {
		struct ids_mbentry e;

		ids_mbentry_init(&e);
		r = ids_mboxlist_lookup(c->s.mbl, names->v[i], &e);
		if (r == IDS_ENOTFOUND || (r == 0 && ids_mbentry_is_tombstone(&e))) {
			r = 0;
		} else if (r == 0) {
			r = lfolder_set(&v[n++], &e);
		}
		ids_mbentry_release(&e);
	}
	if (r < 0) {
		lfolders_free(v, n);
		return r;
	}
	*vp = v;
	*np = n;
	return 0;
}

/*
 * Push, -m: a folder the peer reports under a name that is not live
 * here may be live here under another name -- renamed here since the
 * folder was named (the rolling client names the folders of journal
 * entries, and a rename may come between the entry and the session).
 * It is added to *lvp, so that its rename is pushed; were it taken for
 * a folder on the peer only, copying it back would rename ours back.
 */
static int
lfolders_byid(struct client *c, const struct pfolders *p, struct lfolder **lvp, size_t *np)
{
	struct lfolder *v;
	size_t i, k;
	int r = 0;

	for (i = 0; i < p->n && r == 0; i++) {
		struct ids_mbentry e;

		for (k = 0; k < *np; k++)
			if (strcmp((*lvp)[k].uniqueid, p->v[i].uniqueid) == 0)
				break;
		if (k < *np)
			continue;
		ids_mbentry_init(&e);
		r = ids_mboxlist_lookup_id(c->s.mbl, p->v[i].uniqueid, &e);
		if (r == IDS_ENOTFOUND || (r == 0 && ids_mbentry_is_tombstone(&e))) {
			r = 0;
		} else if (r == 0) {
			if ((v = realloc(*lvp, (*np + 2) * sizeof(*v))) == NULL) {
				r = -ENOMEM;
			} else {
				*lvp = v;
				memset(&v[*np], 0, sizeof(v[*np]));
				r = lfolder_set(&v[(*np)++], &e);
			}
		}
		ids_mbentry_release(&e);
	}
	return r;
}

/*
 * -m: the peer's folders of the uniqueids of lv that GET MAILBOXES did
 * not report (a folder renamed on one side), by GET UNIQUEIDS.
 */
static int
pfolders_byid(struct client *c, struct pfolders *p, const struct lfolder *lv, size_t nl)
{
	struct ids_dlist *ids = ids_dlist_new_list();
	struct pfolder *v;
	size_t i;
	int r = 0;

	if (ids == NULL)
		return -ENOMEM;
	for (i = 0; i < nl && r == 0; i++)
		if (pfolder_by_id(p, lv[i].uniqueid) == NULL)
			r = ids_dlist_add_atom(ids, NULL, lv[i].uniqueid);
	if (r < 0 || ids->head == NULL) {
		ids_dlist_free(ids);
		return r;
	}
	if ((r = exchange(c, cmd_arg("GET", "UNIQUEIDS", ids), &p->byid)) < 0)
		return r;
	if (p->byid.status != IDS_CSYNC_OK)
		return peer_refused(c, "GET UNIQUEIDS", &p->byid);
	if ((v = realloc(p->v, (p->n + p->byid.n + 1) * sizeof(*v))) == NULL)
		return -ENOMEM;
	p->v = v;
	for (i = 0; i < p->byid.n; i++) {
		const struct ids_csync_line *l = p->byid.v[i];
		const struct ids_dlist *kv = ids_csync_arg(l, 0);

		if (l->kind != IDS_CSYNC_UNTAGGED || strcmp(l->word, "MAILBOX") != 0 ||
		    kv == NULL || kv->type != IDS_DL_KVLIST ||
		    kv_str(kv, "UNIQUEID") == NULL || kv_str(kv, "MBOXNAME") == NULL ||
		    pfolder_by_id(p, kv_str(kv, "UNIQUEID")) != NULL)
			continue;
		memset(&p->v[p->n], 0, sizeof(p->v[p->n]));
		p->v[p->n].kv = kv;
		p->v[p->n].uniqueid = kv_str(kv, "UNIQUEID");
		p->v[p->n].name = kv_str(kv, "MBOXNAME");
		p->n++;
	}
	return 0;
}

static int
pf_order(const void *a, const void *b)
{
	return strcmp((*(struct pfolder *const *)a)->uniqueid,
	    (*(struct pfolder *const *)b)->uniqueid);
}

static int
pf_find(const void *key, const void *b)
{
	return strcmp(key, (*(struct pfolder *const *)b)->uniqueid);
}

/*
 * The one match of a set's local and peer folders by uniqueid: first
 * the folders either side holds under a name the other did not ask for
 * (pfolders_byid, and with push -m lfolders_byid), then each local
 * folder's pf and each peer folder's matched, through one sorted index
 * of the peer's folders.
 */
static int
match_byid(struct client *c, const char *userid, struct pfolders *p, struct lfolder **lvp,
    size_t *nlp)
{
	struct pfolder **idx, **hit;
	size_t i;
	int r;

	/*
	 * A folder the peer holds under another name (-m: renamed here; a
	 * user: the user renamed here, its folders the old user's there)
	 */
	if ((r = pfolders_byid(c, p, *lvp, *nlp)) < 0 ||
	    (!c->o->pull && userid == NULL && (r = lfolders_byid(c, p, lvp, nlp)) < 0))
		return r;
	if ((idx = calloc(p->n + 1, sizeof(*idx))) == NULL)
		return -ENOMEM;
	for (i = 0; i < p->n; i++)
		idx[i] = &p->v[i];
	qsort(idx, p->n, sizeof(*idx), pf_order);
	for (i = 0; i < *nlp; i++) {
		hit = bsearch((*lvp)[i].uniqueid, idx, p->n, sizeof(*idx), pf_find);
		(*lvp)[i].pf = hit != NULL ? *hit : NULL;
		if (hit != NULL)
			(*hit)->matched = 1;
	}
	free(idx);
	return 0;
}

/*
 * GUIDs (40 hex digits, copied) to pointers, found by open addressing on
 * their first 16 digits (SHA-1 digests: uniform): a folder of any size
 * costs a wave a constant time a file, not a scan of its records.
 */
struct gmap {
	char (*key)[IDS_GUID_HEXLEN];
	const void **val;
	size_t n, a;
	uint32_t *slot;		/* index + 1 into key, 0 free */
	size_t nslot;		/* a power of two, at least twice n */
};

static size_t
gmap_hash(const char *g, size_t nslot)
{
	uint64_t h = 0;
	int i;

	for (i = 0; i < 16; i++)
		h = h << 4 | (uint64_t)(g[i] <= '9' ? g[i] - '0' : (g[i] | 0x20) - 'a' + 10);
	return (size_t)(h & (nslot - 1));
}

/* The slot of g: its own, or the free one where it would go. */
static size_t
gmap_find(const struct gmap *m, const char *g)
{
	size_t i = gmap_hash(g, m->nslot);

	while (m->slot[i] != 0 && memcmp(m->key[m->slot[i] - 1], g, IDS_GUID_HEXLEN) != 0)
		i = (i + 1) & (m->nslot - 1);
	return i;
}

/* The value of g (NULL when absent; present with NULL: found is set). */
static const void *
gmap_get(const struct gmap *m, const char *g, int *found)
{
	size_t i;

	*found = 0;
	if (m->nslot == 0)
		return NULL;
	i = gmap_find(m, g);
	*found = m->slot[i] != 0;
	return *found ? m->val[m->slot[i] - 1] : NULL;
}

/* g (40 hex digits) to v; a g already there keeps its first value. */
static int
gmap_put(struct gmap *m, const char *g, const void *v)
{
	size_t i;

	if (2 * (m->n + 1) > m->nslot) {
		size_t ns = m->nslot ? 2 * m->nslot : 256, k;
		uint32_t *slot = calloc(ns, sizeof(*slot)), *old = m->slot;
		size_t on = m->nslot;

		if (slot == NULL)
			return -ENOMEM;
		m->slot = slot;
		m->nslot = ns;
		for (k = 0; k < on; k++)
			if (old[k] != 0)
				m->slot[gmap_find(m, m->key[old[k] - 1])] = old[k];
		free(old);
	}
	i = gmap_find(m, g);
	if (m->slot[i] != 0)
		return 0;
	if (m->n == m->a) {
		size_t a = m->a ? 2 * m->a : 256;
		char (*key)[IDS_GUID_HEXLEN] = realloc(m->key, a * sizeof(*key));
		const void **val;

		if (key == NULL)
			return -ENOMEM;
		m->key = key;
		if ((val = realloc(m->val, a * sizeof(*val))) == NULL)
			return -ENOMEM;
		m->val = val;
		m->a = a;
	}
	memcpy(m->key[m->n], g, IDS_GUID_HEXLEN);
	m->val[m->n] = v;
	m->slot[i] = (uint32_t)++m->n;
	return 0;
}

static void
gmap_free(struct gmap *m)
{
	free(m->key);
	free(m->val);
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

static int
is_guid(const char *g)
{
	size_t i;

	for (i = 0; g != NULL && i < IDS_GUID_HEXLEN; i++)
		if (!((g[i] >= '0' && g[i] <= '9') || (g[i] >= 'a' && g[i] <= 'f') ||
		    (g[i] >= 'A' && g[i] <= 'F')))
			return 0;
	return g != NULL && g[IDS_GUID_HEXLEN] == '\0';
}

/* --- pull ------------------------------------------------------------------ */

/* The result of a local apply: 0, or the refusal (logged by the replica code). */
static int
local_result(struct client *c, int r, const char *what)
{
	if (r < 0)
		return r;
	if (c->s.nok != NULL) {
		c->rep->failed++;
		client_log(c, LOG_ERR, "%s: not applied here (%s)", what, c->s.nok);
		report_refusal(c, IDS_SYNC_REFUSED_LOCAL, what, "not applied here (%s)", c->s.nok);
		return 1;
	}
	return 0;
}

/* A rename to make, of one folder, on one side. */
struct mv {
	const char *uniqueid;
	char *from;		/* its name now (malloc'd) */
	const char *to;
	const char *partition;
	uint32_t uidvalidity;
	struct pfolder *pf;	/* push: the peer's folder, its name followed */
	int done;
};

/*
 * The APPLY RENAME kvlist of m to name to; with byid, idspool's UNIQUEID
 * too (the replica then renames only the folder of that uniqueid).
 */
static struct ids_dlist *
rename_kv(const struct mv *m, const char *to, int byid)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();

	if (kv == NULL || ids_dlist_add_atom(kv, "OLDMBOXNAME", m->from) < 0 ||
	    ids_dlist_add_atom(kv, "NEWMBOXNAME", to) < 0 ||
	    ids_dlist_add_atom(kv, "PARTITION", m->partition) < 0 ||
	    ids_dlist_add_num(kv, "UIDVALIDITY", m->uidvalidity) < 0 ||
	    (byid && ids_dlist_add_atom(kv, "UNIQUEID", m->uniqueid) < 0)) {
		ids_dlist_free(kv);
		return NULL;
	}
	return kv;
}

/* APPLY RENAME here, as the replica applies it. */
static int
pull_rename(struct client *c, struct mv *m, const char *to)
{
	struct ids_dlist *kv = rename_kv(m, to, 1);
	int r;

	if (kv == NULL)
		return -ENOMEM;
	c->s.nok = NULL;
	r = local_result(c, ids_repl_apply_rename(&c->s, kv), to);
	ids_dlist_free(kv);
	if (r == 0)
		client_log(c, LOG_INFO, "pull: renamed %s to %s (%s)", m->from, to, m->uniqueid);
	return r;
}

/*
 * GET FETCHes in flight at most: this many, and this many bytes of
 * their lines, so that all of them fit in the peer's input (a pipe
 * holds 64 KiB) however long it takes to read them: the peer, blocked
 * writing its answers while we write, never stops us writing.
 */
#define FETCH_WINDOW		256
#define FETCH_WINDOW_BYTES	(32u << 10)

/* One GET FETCH in flight: the record whose file it asks for. */
struct fetch {
	const char *guid;
	uint32_t uid;
	int optional;		/* an expunged record's: the peer may have removed it */
};

/* Sends GET FETCH of a record's file (not flushed, its answer read later). */
static int
fetch_send(struct client *c, const char *name, const char *partition, const char *uniqueid,
    const struct fetch *f)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	struct ids_csync_line *l;
	int r;

	if (kv == NULL)
		return -ENOMEM;
	if ((r = ids_dlist_add_atom(kv, "MBOXNAME", name)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "PARTITION", partition)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "UNIQUEID", uniqueid)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "GUID", f->guid)) < 0 ||
	    (r = ids_dlist_add_num(kv, "UID", f->uid)) < 0) {
		ids_dlist_free(kv);
		return r;
	}
	if ((l = cmd_arg("GET", "FETCH", kv)) == NULL)
		return -ENOMEM;
	trace_line(c, '>', l);
	r = ids_csync_write(c->out, l);
	ids_csync_line_free(l);
	return r;
}

/*
 * The answer of the GET FETCH of f: its file, staged by the codec (its
 * size and SHA-1 checked there), becomes a held file.  0; 1 when it is
 * refused (counted and logged: the folder fails, the answers still due
 * are read all the same); negative when the link is lost.  With failed
 * (the folder failed on an answer before), the answer is read, its file
 * held, but neither the file nor a refusal is counted again.
 */
static int
fetch_answer(struct client *c, const char *name, const struct fetch *f, int failed)
{
	struct reply rp;
	char path[PATH_MAX];
	size_t i;
	int r;

	if ((r = read_reply(c, &rp)) < 0)
		return r;
	if (f->optional && rp.status != IDS_CSYNC_OK && !rp.damaged) {
		reply_release(&rp);
		return 0;	/* an expunged record whose file is gone there */
	}
	if (rp.status != IDS_CSYNC_OK || rp.damaged) {
		if (rp.damaged)
			client_log(c, LOG_ERR, "%s: uid %u: the file sent is refused: %s", name,
			    f->uid, ids_errmsg(rp.damaged));
		else if (failed)
			client_log(c, LOG_ERR, "%s: uid %u: the peer answered %s %s", name, f->uid,
			    rp.status == IDS_CSYNC_NO ? "NO" : "BAD", rp.text);
		r = failed ? 1 : rp.damaged ? (c->rep->failed++, 1) :
		    peer_refused(c, name, &rp) + 1;
		reply_release(&rp);
		return r;
	}
	r = 1;
	for (i = 0; i < rp.n; i++) {
		const struct ids_dlist *x = ids_csync_arg(rp.v[i], 0);

		if (strcmp(rp.v[i]->word, "MESSAGE") != 0 || x == NULL ||
		    x->type != IDS_DL_FILE || x->file == NULL || x->file->name == NULL ||
		    strcmp(x->file->guid, f->guid) != 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", c->s.stagepath,
		    x->file->name) >= (int)sizeof(path))
			r = ids_error(IDS_ETOOLONG, "staging path too long");
		else if ((r = ids_repl_add_have(&c->s, f->guid, path)) == 0 && !failed)
			c->rep->files++;
		break;
	}
	reply_release(&rp);
	if (r == 1 && f->optional)
		r = 0;
	if (r == 1 && !failed) {
		c->rep->failed++;
		client_log(c, LOG_ERR, "%s: uid %u: GET FETCH sent no file of GUID %s", name,
		    f->uid, f->guid);
	}
	return r;
}

/*
 * The files of the records v (of the peer's folder name) fetched, each
 * unless held by then: GET FETCH pipelined, a window of them sent, then
 * their answers read in order, every one of them (a refused one fails
 * the folder, once the window's answers are read: the session stays in
 * step).  A GUID twice in a window ends it before its second record,
 * which is fetched in the next window only if the first did not bring
 * its file.  0; 1 when one was refused (counted once); negative when the
 * link is lost.
 */
static int
fetch_all(struct client *c, const char *name, const char *partition, const char *uniqueid,
    const struct fetch *v, size_t n)
{
	const struct fetch **win = calloc(FETCH_WINDOW, sizeof(*win));
	size_t k = 0, nw, i;
	int r = 0, found;

	if (win == NULL)
		return -ENOMEM;
	while (r == 0 && k < n) {
		struct gmap inwin = { 0 };
		uint64_t start = ids_csync_out_count(c->out);

		for (nw = 0; k < n && r == 0 && nw < FETCH_WINDOW &&
		    ids_csync_out_count(c->out) - start < FETCH_WINDOW_BYTES; k++) {
			if (ids_repl_have(&c->s, v[k].guid) != NULL)
				continue;
			if (is_guid(v[k].guid)) {
				(void)gmap_get(&inwin, v[k].guid, &found);
				if (found)
					break;
				if ((r = gmap_put(&inwin, v[k].guid, NULL)) < 0)
					break;
			}
			if ((r = fetch_send(c, name, partition, uniqueid, &v[k])) < 0)
				break;
			win[nw++] = &v[k];
		}
		gmap_free(&inwin);
		if (r == 0 && nw > 0)
			r = ids_csync_flush(c->out);
		for (i = 0; i < nw && r >= 0; i++) {
			int x = fetch_answer(c, name, win[i], r > 0);

			r = x < 0 ? x : r > 0 ? r : x;
		}
	}
	free(win);
	return r;
}

/* A record of a RECORD list new to a folder whose last_uid is last_uid. */
static int
new_record(const struct ids_dlist *rec, uint32_t last_uid, const char **guid,
    uint32_t *uid, int *expunged)
{
	const struct ids_dlist *flags = ids_dlist_get(rec, "FLAGS"), *f;

	*expunged = 0;
	*guid = kv_str(rec, "GUID");
	for (f = flags ? flags->head : NULL; f != NULL; f = f->next)
		*expunged |= f->data != NULL && strcasecmp(f->data, "\\Expunged") == 0;
	return *guid != NULL && ids_dlist_get_u32(rec, "UID", uid) == 0 && *uid > last_uid;
}

/*
 * The files the records of full above our last_uid need (the apply
 * refuses any other record new to us) that we do not hold: found in
 * the local folder (if any), else fetched.  The file of an expunged
 * record is fetched too, as Cyrus sends it while it exists, but the
 * peer may have removed it: then the record comes without one.
 */
static int
pull_files(struct client *c, const struct ids_dlist *full, const char *localname,
    uint32_t last_uid)
{
	const struct ids_dlist *recs = ids_dlist_get(full, "RECORD"), *rec;
	const char *name = kv_str(full, "MBOXNAME"), *part = kv_str(full, "PARTITION");
	const char *uniqueid = kv_str(full, "UNIQUEID"), *guid;
	struct ids_dlist *want = ids_dlist_new_list();
	struct fetch *fv = NULL;
	size_t nf = 0, af = 0;
	uint32_t uid;
	int r = 0, expunged;

	if (want == NULL)
		return -ENOMEM;
	for (rec = recs ? recs->head : NULL; rec != NULL && r == 0; rec = rec->next)
		if (new_record(rec, last_uid, &guid, &uid, &expunged))
			r = ids_dlist_add_atom(want, NULL, guid);
	if (r == 0 && localname != NULL && want->head != NULL)
		r = ids_repl_reserve_local(&c->s, localname, want);
	for (rec = recs ? recs->head : NULL; rec != NULL && r == 0; rec = rec->next) {
		if (!new_record(rec, last_uid, &guid, &uid, &expunged) ||
		    ids_repl_have(&c->s, guid) != NULL)
			continue;
		if (nf == af) {
			struct fetch *nv = realloc(fv, (af = af ? 2 * af : 64) * sizeof(*nv));

			if (nv == NULL) {
				r = -ENOMEM;
				break;
			}
			fv = nv;
		}
		fv[nf].guid = guid;
		fv[nf].uid = uid;
		fv[nf++].optional = expunged;
	}
	if (r == 0)
		r = fetch_all(c, name, part ? part : "default", uniqueid, fv, nf);
	free(fv);
	ids_dlist_free(want);
	return r;
}

static int merge_folder(struct client *c, const char *name, const char *uniqueid);

/* One folder of the peer, made ours: created, or merged with ours. */
static int
pull_folder(struct client *c, struct pfolder *pf)
{
	struct ids_mbentry e;
	struct ids_dlist *mine = NULL, *full = NULL;
	struct reply rp;
	size_t i;
	int r, have;

	c->rep->folders++;
	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup_id(c->s.mbl, pf->uniqueid, &e);
	have = r == 0 && !ids_mbentry_is_tombstone(&e);
	if (have)
		pf->matched = 1;
	if (r < 0 && r != IDS_ENOTFOUND)
		goto out;
	r = 0;
	if (have && pf->refused) {
		r = 1;
		goto out;
	}
	if (have && strcmp(e.name, pf->name) != 0) {
		/*
		 * not renamed by the plan (refused there, counted; or, with -m,
		 * a folder not named here): one rename, its target checked by
		 * the apply
		 */
		struct mv m = { pf->uniqueid, e.name, pf->name,
		    e.partition ? e.partition : "default", e.uidvalidity, NULL, 0 };

		if ((r = pull_rename(c, &m, pf->name)) != 0)
			goto out;
		c->rep->renamed++;
	}
	ids_dlist_free(pf->lmissing);
	pf->lmissing = NULL;
	if (have && (r = local_state(c, pf->name, &mine, &pf->lmissing)) < 0)
		goto out;
	if (mine != NULL && same_state(pf->kv, mine)) {
		pf->same = 1;
		goto out;
	}
	if (have) {
		/* both hold it and it differs: merged by uid, both sides written */
		r = merge_folder(c, pf->name, pf->uniqueid);
		goto out;
	}
	if ((r = exchange(c, cmd_str("GET", "FULLMAILBOX", pf->name), &rp)) < 0)
		goto out;
	if (rp.status != IDS_CSYNC_OK) {
		r = peer_refused(c, pf->name, &rp) + 1;
		reply_release(&rp);
		goto out;
	}
	for (i = 0; i < rp.n && full == NULL; i++)
		if (strcmp(rp.v[i]->word, "MAILBOX") == 0 && ids_csync_arg(rp.v[i], 0) != NULL &&
		    (full = ids_dlist_copy(ids_csync_arg(rp.v[i], 0))) == NULL)
			r = -ENOMEM;
	reply_release(&rp);
	if (r == 0 && (full == NULL || strcmp(kv_str(full, "UNIQUEID") ?: "", pf->uniqueid) != 0)) {
		c->rep->failed++;
		client_log(c, LOG_ERR, "%s: GET FULLMAILBOX answered no folder of uniqueid %s",
		    pf->name, pf->uniqueid);
		r = 1;
	}
	if (r == 0)
		r = pull_files(c, full, NULL, 0);
	if (r == 0) {
		c->s.nok = NULL;
		r = local_result(c, ids_repl_apply_mailbox(&c->s, full), pf->name);
	}
	if (r == 0) {
		c->rep->applied++;
		client_log(c, LOG_INFO, "pull: %s (%s) %s", pf->name, pf->uniqueid,
		    have ? "updated" : "created");
	}
out:
	ids_dlist_free(mine);
	ids_dlist_free(full);
	ids_mbentry_release(&e);
	return r;
}

/* GET TOMBSTONE %(UNIQUEID MBOXNAME) of an idspool peer: 1 when it holds one. */
static int
peer_tombstoned(struct client *c, const char *uniqueid, const char *name)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	struct reply rp;
	size_t i;
	int r;

	if (!c->idspool) {
		ids_dlist_free(kv);
		return 0;
	}
	if (kv == NULL || ids_dlist_add_atom(kv, "UNIQUEID", uniqueid) < 0 ||
	    ids_dlist_add_atom(kv, "MBOXNAME", name) < 0) {
		ids_dlist_free(kv);
		return -ENOMEM;
	}
	if ((r = exchange(c, cmd_arg("GET", "TOMBSTONE", kv), &rp)) < 0)
		return r;
	for (i = 0; i < rp.n && r == 0; i++)
		r = strcmp(rp.v[i]->word, "TOMBSTONE") == 0;
	r = rp.status == IDS_CSYNC_OK && r;
	reply_release(&rp);
	return r;
}

static int push_folder(struct client *c, const struct lfolder *lf, const struct pfolder *pf,
    const char *const *names, size_t nnames);
static int finding(struct client *c, struct ids_sync_finding *f);

static const struct pfolder *
pfolder_by_name(const struct pfolders *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!p->v[i].deleted && strcmp(p->v[i].name, name) == 0)
			return &p->v[i];
	return NULL;
}

/* 1 when name is a live folder here. */
static int
local_live(struct client *c, const char *name)
{
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup(c->s.mbl, name, &e);
	r = r == 0 ? !ids_mbentry_is_tombstone(&e) : r == IDS_ENOTFOUND ? 0 : r;
	ids_mbentry_release(&e);
	return r;
}

/*
 * The recovery name of a folder whose name the other side holds with
 * another uniqueid: its sibling "<name>-recovered-<8 characters of its
 * uniqueid>", or with the whole uniqueid when that is taken on either
 * side (a child of name would be inside the subtree it is renamed out
 * of).  1 when neither is free (counted and logged).
 */
static int
recovery_name(struct client *c, const struct pfolders *p, const char *name,
    const char *uniqueid, char *out, size_t len)
{
	int k, r;

	for (k = 0; k < 2; k++) {
		if ((size_t)snprintf(out, len, "%s-recovered-%.*s", name, k == 0 ? 8 : 255,
		    uniqueid) >= len || strlen(out) > IDS_MBNAME_CREATE_MAX)
			break;
		if ((r = local_live(c, out)) < 0)
			return r;
		if (r == 0 && pfolder_by_name(p, out) == NULL)
			return 0;
	}
	c->rep->failed++;
	client_log(c, LOG_ERR, "%s (%s): no free name to recover it under", name, uniqueid);
	return 1;
}

/* The finding of a folder kept and copied to the other side. */
static int
folder_finding(struct client *c, const char *side, const char *name, const char *uniqueid,
    const char *newname)
{
	struct ids_sync_finding f;

	memset(&f, 0, sizeof(f));
	f.kind = newname != NULL ? "recovered-folder" : "kept-folder";
	f.side = side;
	f.name = name;
	f.uniqueid = uniqueid;
	f.newname = newname;
	return finding(c, &f);
}

/*
 * A local folder the peer does not hold: deleted if the peer deleted
 * it, else kept and copied to the peer (renamed here first when the
 * peer holds its name with another uniqueid).
 */
static int
pull_local_only(struct client *c, struct lfolder *lf, const struct pfolders *p)
{
	char rec[IDS_MBNAME_MAX + 1], *old = NULL;
	const char *names[1];
	int r;

	c->rep->folders++;
	if ((r = peer_tombstoned(c, lf->uniqueid, lf->name)) < 0)
		return r;
	if (r == 0) {
		c->rep->kept++;
		client_log(c, LOG_WARNING, "pull: %s (%s) is not on the peer, which holds no "
		    "tombstone of it: kept, and copied to the peer", lf->name, lf->uniqueid);
		if (pfolder_by_name(p, lf->name) != NULL) {
			struct mv m = { lf->uniqueid, NULL, rec, lf->partition, lf->uidvalidity,
			    NULL, 0 };

			if ((r = recovery_name(c, p, lf->name, lf->uniqueid, rec, sizeof(rec))) != 0)
				return r;
			if ((m.from = strdup(lf->name)) == NULL)
				return -ENOMEM;
			r = pull_rename(c, &m, rec);
			free(m.from);
			if (r != 0)
				return r;
			c->rep->renamed++;
			old = lf->name;
			if ((lf->name = strdup(rec)) == NULL) {
				lf->name = old;
				return -ENOMEM;
			}
		}
		names[0] = lf->name;
		if ((r = push_folder(c, lf, NULL, names, 1)) == 0)
			r = folder_finding(c, "local", old ? old : lf->name, lf->uniqueid,
			    old ? lf->name : NULL);
		free(old);
		return r;
	}
	c->s.nok = NULL;
	if ((r = local_result(c, ids_repl_apply_unmailbox(&c->s, lf->name, lf->uniqueid), lf->name)) == 0) {
		lf->deleted = 1;
		c->rep->deleted++;
		client_log(c, LOG_INFO, "pull: %s (%s) deleted, as on the peer", lf->name, lf->uniqueid);
	}
	return r;
}

/* --- push ------------------------------------------------------------------ */

static int
push_rename(struct client *c, struct mv *m, const char *to)
{
	struct ids_dlist *kv = rename_kv(m, to, c->idspool);
	struct reply rp;
	int r;

	if (kv == NULL)
		return -ENOMEM;
	if ((r = exchange(c, cmd_arg("APPLY", "RENAME", kv), &rp)) < 0)
		return r;
	if (rp.status != IDS_CSYNC_OK)
		r = peer_refused(c, m->from, &rp) + 1;
	else
		client_log(c, LOG_INFO, "push: renamed %s to %s on the peer (%s)", m->from, to,
		    m->uniqueid);
	reply_release(&rp);
	return r;
}

static int
push_unmailbox(struct client *c, struct pfolder *pf)
{
	struct reply rp;
	int r;

	struct ids_dlist *kv;

	/* to an idspool peer by uniqueid: it deletes nothing if the name holds another */
	if (c->idspool) {
		if ((kv = ids_dlist_new_kvlist()) == NULL ||
		    ids_dlist_add_atom(kv, "UNIQUEID", pf->uniqueid) < 0 ||
		    ids_dlist_add_atom(kv, "MBOXNAME", pf->name) < 0) {
			ids_dlist_free(kv);
			return -ENOMEM;
		}
		r = exchange(c, cmd_arg("APPLY", "UNMAILBOX", kv), &rp);
	} else {
		r = exchange(c, cmd_str("APPLY", "UNMAILBOX", pf->name), &rp);
	}
	if (r < 0)
		return r;
	if (rp.status != IDS_CSYNC_OK) {
		r = peer_refused(c, pf->name, &rp) + 1;
	} else {
		pf->deleted = 1;
		c->rep->deleted++;
		client_log(c, LOG_INFO, "push: %s (%s) deleted on the peer", pf->name, pf->uniqueid);
	}
	reply_release(&rp);
	return r;
}

/*
 * APPLY MESSAGE of a batch (taken over); files read from the open folder
 * mb.  A file the codec refuses before the line is begun is the folder's
 * failure (1, nothing of the line sent).
 */
static int
push_batch(struct client *c, struct ids_dlist *files, const char *name, struct ids_mailbox *mb)
{
	struct reply rp;
	int r;

	if ((r = send_folder_line(c, cmd_arg("APPLY", "MESSAGE", files), name, mb, 1)) != 0)
		return r;
	if ((r = read_reply(c, &rp)) < 0)
		return r;
	r = rp.status == IDS_CSYNC_OK ? 0 : peer_refused(c, name, &rp) + 1;
	reply_release(&rp);
	return r;
}

/*
 * The APPLY RESERVE kvlist of the records of kv above peer_last_uid
 * whose files we have (in datafd; an expunged record's file goes too
 * while we have it, as Cyrus sends it), naming the peer's folders
 * names; *resp NULL when there is no GUID to reserve.
 */
static int
reserve_kv(int datafd, const struct ids_dlist *kv, uint32_t peer_last_uid,
    const char *const *names, size_t nnames, struct ids_dlist **resp, size_t *nguids)
{
	const struct ids_dlist *recs = ids_dlist_get(kv, "RECORD"), *rec;
	struct ids_dlist *res = ids_dlist_new_kvlist(), *guids = NULL, *mlist = NULL;
	size_t i;
	int r;

	*resp = NULL;
	*nguids = 0;
	if (res == NULL)
		return -ENOMEM;
	if ((r = ids_dlist_add_atom(res, "PARTITION", kv_str(kv, "PARTITION"))) < 0 ||
	    (r = ids_dlist_add_list(res, "MBOXNAME", &mlist)) < 0 ||
	    (r = ids_dlist_add_list(res, "GUID", &guids)) < 0)
		goto out;
	for (i = 0; i < nnames && r == 0; i++)
		r = ids_dlist_add_atom(mlist, NULL, names[i]);
	for (rec = recs ? recs->head : NULL; rec != NULL && r == 0; rec = rec->next) {
		const char *guid;
		char fname[32];
		uint32_t uid = 0;
		int expunged;

		if (!new_record(rec, peer_last_uid, &guid, &uid, &expunged))
			continue;
		snprintf(fname, sizeof(fname), "%u.", uid);
		if (!expunged || faccessat(datafd, fname, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			r = ids_dlist_add_atom(guids, NULL, guid);
			(*nguids)++;
		}
	}
	if (r == 0 && guids->head != NULL) {
		*resp = res;
		res = NULL;
	}
out:
	ids_dlist_free(res);
	return r;
}

/*
 * The files of the records in kv the peer reports MISSING after an
 * APPLY RESERVE of the live records above its last_uid.
 */
static int
push_files(struct client *c, struct ids_mailbox *mb, const struct ids_dlist *kv,
    uint32_t peer_last_uid, const char *const *names, size_t nnames)
{
	const struct ids_dlist *recs = ids_dlist_get(kv, "RECORD"), *rec, *m;
	const char *name = kv_str(kv, "MBOXNAME"), *part = kv_str(kv, "PARTITION");
	struct ids_dlist *res = NULL, *missing = NULL, *batch = NULL;
	struct gmap byguid = { 0 }, sent = { 0 };
	struct reply rp;
	uint64_t bytes = 0;
	size_t i, nbatch = 0;
	int r;

	memset(&rp, 0, sizeof(rp));
	if ((r = reserve_kv(mb->datafd, kv, peer_last_uid, names, nnames, &res, &i)) < 0) {
		r = folder_error(c, name, r);
		goto out;
	}
	if (res == NULL)
		goto out;
	r = send_folder_line(c, cmd_arg("APPLY", "RESERVE", res), name, mb, 1);
	res = NULL;
	if (r != 0 || (r = read_reply(c, &rp)) < 0)
		goto out;
	if (rp.status != IDS_CSYNC_OK) {
		r = peer_refused(c, name, &rp) + 1;
		goto out;
	}
	for (i = 0; i < rp.n && missing == NULL; i++)
		if (strcmp(rp.v[i]->word, "MISSING") == 0)
			missing = ids_csync_arg(rp.v[i], 0);
	/* the first record above the peer's last_uid of each GUID */
	for (rec = recs ? recs->head : NULL; rec != NULL && r == 0; rec = rec->next) {
		const char *rg = kv_str(rec, "GUID");
		uint32_t uid = 0;

		if (is_guid(rg) && ids_dlist_get_u32(rec, "UID", &uid) == 0 && uid > peer_last_uid)
			r = gmap_put(&byguid, rg, rec);
	}
	if (r < 0)
		r = folder_error(c, name, r);	/* nothing awaits an answer */
	for (m = missing ? missing->head : NULL; m != NULL && r == 0; m = m->next) {
		const char *g = ids_dlist_cstr(m);
		char fname[32];
		uint64_t size = 0;
		uint32_t uid = 0;
		int found;

		/* each GUID once, from the first live record that has it */
		if (!is_guid(g))
			continue;
		(void)gmap_get(&sent, g, &found);
		if (found)
			continue;
		rec = gmap_get(&byguid, g, &found);
		if (rec == NULL || ids_dlist_get_u32(rec, "UID", &uid) < 0 ||
		    ids_dlist_get_u64(rec, "SIZE", &size) < 0)
			continue;	/* the peer asked for a GUID we did not offer */
		snprintf(fname, sizeof(fname), "%u.", uid);
		if (batch == NULL && (batch = ids_dlist_new_list()) == NULL)
			r = -ENOMEM;
		if (r < 0 || (r = gmap_put(&sent, g, NULL)) < 0 ||
		    (r = ids_dlist_add_child(batch, NULL, ids_csync_file_node(part, g, size,
		    mb->datafd, fname))) < 0) {
			r = folder_error(c, name, r);	/* the batch is not sent */
			break;
		}
		nbatch++;
		bytes += size;
		if (nbatch >= PUSH_BATCH_FILES || bytes >= PUSH_BATCH_BYTES) {
			r = push_batch(c, batch, name, mb);
			c->rep->files += r == 0 ? nbatch : 0;
			batch = NULL;
			nbatch = 0;
			bytes = 0;
		}
	}
	if (r == 0 && batch != NULL) {
		r = push_batch(c, batch, name, mb);
		c->rep->files += r == 0 ? nbatch : 0;
		batch = NULL;
	}
out:
	ids_dlist_free(batch);
	ids_dlist_free(res);
	reply_release(&rp);
	gmap_free(&byguid);
	gmap_free(&sent);
	return r;
}

/* One local folder sent whole: its missing files, then APPLY MAILBOX. */
static int
push_folder(struct client *c, const struct lfolder *lf, const struct pfolder *pf,
    const char *const *names, size_t nnames)
{
	struct ids_mailbox *mb;
	struct ids_dlist *kv = NULL;
	struct reply rp;
	uint32_t peer_last_uid = 0;
	int r;

	if (pf != NULL)
		ids_dlist_get_u32(pf->kv, "LAST_UID", &peer_last_uid);
	/*
	 * the folder stays locked from its state to the peer's answer; an
	 * error here is the folder's (folder_error), found before its APPLY
	 * MAILBOX: the peer may hold some of its files, never the folder
	 */
	if ((r = ids_mailbox_open(c->s.mbl, lf->name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) < 0)
		return folder_error(c, lf->name, r);
	if ((r = ids_sync_mailbox_state(mb, IDS_SYNC_RECORDS, &kv)) < 0)
		r = folder_error(c, lf->name, r);
	else
		r = push_files(c, mb, kv, peer_last_uid, names, nnames);
	if (r == 0) {
		r = send_folder_line(c, cmd_arg("APPLY", "MAILBOX", kv), lf->name, mb, 1);
		kv = NULL;
		if (r == 0 && (r = read_reply(c, &rp)) == 0) {
			if (rp.status != IDS_CSYNC_OK) {
				r = peer_refused(c, lf->name, &rp) + 1;
			} else {
				c->rep->applied++;
				client_log(c, LOG_INFO, "push: %s (%s) %s on the peer", lf->name,
				    lf->uniqueid, pf != NULL ? "updated" : "created");
			}
			reply_release(&rp);
		}
	}
	ids_dlist_free(kv);
	ids_mailbox_close(mb);
	return r;
}

/* --- new folders, pipelined ------------------------------------------------- */

/*
 * A folder the peer lacks, pushed as part of a batch: what it sends and
 * how many answers it awaits.
 */
struct newf {
	const struct lfolder *lf;
	struct ids_mailbox *mb;
	struct ids_dlist *kv;		/* its state with RECORD (sent by APPLY MAILBOX) */
	int reserve;			/* an APPLY RESERVE was sent */
	size_t nmsg;			/* APPLY MESSAGE lines sent */
	size_t *nfiles;			/* the files of each */
	int failed;			/* a refusal counted */
	int sent;			/* APPLY MAILBOX sent */
	int local;			/* a local error of it (folder_error): no APPLY MAILBOX */
};

/*
 * Batches: at most this many folders, and this many GUIDs offered by
 * their APPLY RESERVE lines, so that those lines (about 45 bytes a GUID)
 * and the peer's MISSING answers each fit in a pipe's buffer: the
 * client writes them all before it reads an answer.
 */
#define PIPE_FOLDERS	32
#define PIPE_GUIDS	1000

/* A refusal of one folder of a batch, counted once. */
static void
newf_refused(struct client *c, struct newf *f, const char *what, const struct reply *rp)
{
	if (!f->failed)
		c->rep->failed++;
	f->failed = 1;
	client_log(c, LOG_ERR, "%s: %s: the peer answered %s %s", f->lf->name, what,
	    rp->status == IDS_CSYNC_NO ? "NO" : "BAD", rp->text);
	report_refusal(c, IDS_SYNC_REFUSED_PEER, f->lf->name, "the peer answered %s %s",
	    rp->status == IDS_CSYNC_NO ? "NO" : "BAD", rp->text);
}

/* A local error of one folder of a batch (folder_error), counted once. */
static void
newf_local(struct client *c, struct newf *f, int r)
{
	if (f->failed)
		c->rep->failed--;	/* folder_error counts it again */
	(void)folder_error(c, f->lf->name, r);
	f->failed = f->local = 1;
}

/*
 * Closes the APPLY MESSAGE line of batch (sent, its answer counted
 * later); its GUIDs join sent only once the line is written.  1 when the
 * codec refused a file of it before the line was begun (the folder's
 * failure, reported; nothing of the line sent).
 */
static int
newf_send(struct client *c, struct newf *f, struct ids_dlist **batch, size_t *nbatch,
    struct gmap *sent)
{
	size_t *v = realloc(f->nfiles, (f->nmsg + 1) * sizeof(*v));
	char (*gs)[IDS_GUID_HEXLEN] = calloc(*nbatch + 1, sizeof(*gs));
	const struct ids_dlist *x;
	struct ids_dlist *b = *batch;
	size_t n = 0, i;
	int r = 0;

	*nbatch = 0;
	*batch = NULL;
	if (v != NULL)
		f->nfiles = v;
	if (v == NULL || gs == NULL) {
		free(gs);
		ids_dlist_free(b);
		newf_local(c, f, -ENOMEM);
		return 1;
	}
	/* the batch's GUIDs, to join sent once the line is written */
	for (x = b->head; x != NULL; x = x->next)
		if (x->type == IDS_DL_FILE && x->file != NULL && is_guid(x->file->guid))
			memcpy(gs[n++], x->file->guid, IDS_GUID_HEXLEN);
	if ((r = send_folder_line(c, cmd_arg("APPLY", "MESSAGE", b), f->lf->name, f->mb,
	    0)) == 0) {
		f->nfiles[f->nmsg++] = n;
		for (i = 0; i < n && r == 0; i++)
			r = gmap_put(sent, gs[i], NULL);
		/* a line sent whose GUIDs are not kept: each is sent again, at worst */
		r = r < 0 ? 0 : r;
	} else if (r > 0) {
		f->failed = f->local = 1;	/* reported by send_folder_line */
	}
	free(gs);
	return r;
}

/*
 * APPLY MESSAGE lines of the files the peer named MISSING (sent, not
 * answered), each GUID once, less those an earlier folder of the wave
 * sent (in sent): every APPLY RESERVE of a wave goes before its files,
 * so the peer names a GUID that two new folders share MISSING for both,
 * and holds it once the first folder's line is read.
 */
static int
newf_files(struct client *c, struct newf *f, const struct ids_dlist *missing, struct gmap *sent)
{
	const struct ids_dlist *recs = ids_dlist_get(f->kv, "RECORD"), *rec, *m;
	const char *part = kv_str(f->kv, "PARTITION");
	struct ids_dlist *batch = NULL;
	struct gmap byguid = { 0 }, mine = { 0 };
	uint64_t bytes = 0;
	size_t nbatch = 0;
	int r = 0, found, link = 0;

	if (missing == NULL || missing->head == NULL)
		return 0;
	/* the first record of each GUID */
	for (rec = recs ? recs->head : NULL; rec != NULL && r == 0; rec = rec->next) {
		const char *rg = kv_str(rec, "GUID");

		if (is_guid(rg))
			r = gmap_put(&byguid, rg, rec);
	}
	for (m = missing->head; m != NULL && r == 0; m = m->next) {
		const char *g = ids_dlist_cstr(m);
		char fname[32];
		uint64_t size = 0;
		uint32_t uid = 0;

		if (!is_guid(g))
			continue;
		(void)gmap_get(sent, g, &found);
		if (!found)
			(void)gmap_get(&mine, g, &found);
		if (found)
			continue;	/* sent already (by this folder, or one before it) */
		rec = gmap_get(&byguid, g, &found);
		if (rec == NULL || ids_dlist_get_u32(rec, "UID", &uid) < 0 ||
		    ids_dlist_get_u64(rec, "SIZE", &size) < 0)
			continue;	/* the peer asked for a GUID we did not offer */
		snprintf(fname, sizeof(fname), "%u.", uid);
		if (batch == NULL && (batch = ids_dlist_new_list()) == NULL)
			r = -ENOMEM;
		if (r < 0 || (r = gmap_put(&mine, g, NULL)) < 0 ||
		    (r = ids_dlist_add_child(batch, NULL, ids_csync_file_node(part, g, size,
		    f->mb->datafd, fname))) < 0)
			break;
		nbatch++;
		bytes += size;
		if (nbatch >= PUSH_BATCH_FILES || bytes >= PUSH_BATCH_BYTES) {
			link = (r = newf_send(c, f, &batch, &nbatch, sent)) < 0;
			bytes = 0;
		}
	}
	if (r == 0 && batch != NULL)
		link = (r = newf_send(c, f, &batch, &nbatch, sent)) < 0;
	if (r < 0 && !link) {
		/* no memory to build its batch (nothing of it sent): the folder's failure */
		newf_local(c, f, r);
		r = 1;
	}
	ids_dlist_free(batch);
	gmap_free(&byguid);
	gmap_free(&mine);
	return r;
}

/*
 * Folders the peer does not have, pushed together to a peer that
 * announces pipelining (spool-layout.md, "Pipelining"): the APPLY
 * RESERVE of each sent, then their answers read; then for each its
 * APPLY MESSAGE lines and its APPLY MAILBOX sent without waiting, then
 * every answer read, in order.  The peer commits the new folders of
 * such a run together (one syncfs, one mailboxes.db transaction) and
 * answers each OK only once it is durable.  Each folder's refusal is
 * its own, and so is a local error of one (its index, header or a
 * message file here: folder_error): found while its state is read, it
 * sends nothing of the folder; found while a line of it is built, that
 * line is not sent, the lines of it sent before are answered in their
 * turn, and its APPLY MAILBOX is not sent, so that the peer holds some
 * of its files at most, never the folder.  A lost link ends the
 * session, and the next one sends again what was not answered OK.
 */
static int
push_wave(struct client *c, const struct lfolder *const *lfs, size_t n,
    const char *const *names, size_t nnames, size_t *used)
{
	struct newf *v = calloc(n ? n : 1, sizeof(*v));
	struct reply rp;
	struct gmap st = { 0 };
	size_t i, k, nw, guids = 0;
	int r = 0;

	if (v == NULL)
		return -ENOMEM;
	memset(&rp, 0, sizeof(rp));
	/* the folders locked, their states, their APPLY RESERVE lines sent */
	for (i = 0; i < n; i++) {
		struct ids_dlist *res = NULL;
		size_t ng = 0;

		v[i].lf = lfs[i];
		if ((r = ids_mailbox_open(c->s.mbl, lfs[i]->name, 0, IDS_LOCK_TIMEOUT_MS,
		    &v[i].mb)) == 0 &&
		    (r = ids_sync_mailbox_state(v[i].mb, IDS_SYNC_RECORDS, &v[i].kv)) == 0)
			r = reserve_kv(v[i].mb->datafd, v[i].kv, 0, names, nnames, &res, &ng);
		if (r < 0 || (i > 0 && guids + ng > PIPE_GUIDS)) {
			ids_dlist_free(res);
			ids_dlist_free(v[i].kv);
			v[i].kv = NULL;
			ids_mailbox_close(v[i].mb);
			v[i].mb = NULL;
			if (r == 0)
				break;	/* too many GUIDs: it goes first in the next wave */
			/* a local error: the folder's failure, nothing of it sent */
			newf_local(c, &v[i], r);
			r = 0;
			continue;
		}
		guids += ng;
		if (res != NULL) {
			if ((r = send_folder_line(c, cmd_arg("APPLY", "RESERVE", res), lfs[i]->name,
			    v[i].mb, 0)) < 0) {
				i++;
				break;
			}
			if (r > 0) {
				v[i].failed = v[i].local = 1;
				r = 0;
				continue;
			}
			v[i].reserve = 1;
		}
	}
	*used = i;
	nw = i;		/* the folders of the wave */
	if (r == 0)
		r = ids_csync_flush(c->out);
	/* their answers: MISSING; then the files of each */
	for (i = 0; i < nw && r == 0; i++) {
		const struct ids_dlist *missing = NULL;

		if (v[i].local)
			continue;
		if (v[i].reserve) {
			if ((r = read_reply(c, &rp)) < 0)
				break;
			if (rp.status != IDS_CSYNC_OK) {
				newf_refused(c, &v[i], "APPLY RESERVE", &rp);
				reply_release(&rp);
				continue;
			}
			for (k = 0; k < rp.n && missing == NULL; k++)
				if (strcmp(rp.v[k]->word, "MISSING") == 0)
					missing = ids_csync_arg(rp.v[k], 0);
		}
		r = newf_files(c, &v[i], missing, &st);
		v[i].sent = r == 0;
		r = r > 0 ? 0 : r;	/* its local error: the next folder goes on */
		reply_release(&rp);
	}
	/*
	 * Then the APPLY MAILBOX lines, one after another: the peer finds the
	 * next one waiting when it has applied one, and commits the wave's new
	 * folders as one group.
	 */
	for (i = 0; i < nw && r == 0; i++) {
		if (!v[i].sent)
			continue;
		r = send_folder_line(c, cmd_arg("APPLY", "MAILBOX", v[i].kv), v[i].lf->name,
		    v[i].mb, 0);
		v[i].kv = NULL;
		if (r > 0) {
			v[i].sent = 0;	/* not sent: no answer awaited */
			v[i].failed = v[i].local = 1;
			r = 0;
		}
	}
	if (r == 0)
		r = ids_csync_flush(c->out);
	/* every answer, in order: the APPLY MESSAGE lines', then the APPLY MAILBOX lines' */
	for (i = 0; i < nw && r == 0; i++) {
		for (k = 0; k < v[i].nmsg && r == 0; k++) {
			if ((r = read_reply(c, &rp)) < 0)
				break;
			if (rp.status == IDS_CSYNC_OK)
				c->rep->files += v[i].nfiles[k];
			else
				newf_refused(c, &v[i], "APPLY MESSAGE", &rp);
			reply_release(&rp);
		}
	}
	for (i = 0; i < nw && r == 0; i++) {
		if (!v[i].sent)
			continue;
		if ((r = read_reply(c, &rp)) < 0)
			break;
		if (rp.status != IDS_CSYNC_OK) {
			newf_refused(c, &v[i], "APPLY MAILBOX", &rp);
		} else {
			c->rep->applied++;
			client_log(c, LOG_INFO, "push: %s (%s) created on the peer", v[i].lf->name,
			    v[i].lf->uniqueid);
		}
		reply_release(&rp);
	}
	reply_release(&rp);
	for (i = 0; i < *used; i++) {
		ids_dlist_free(v[i].kv);
		free(v[i].nfiles);
		ids_mailbox_close(v[i].mb);
	}
	free(v);
	gmap_free(&st);
	return r;
}

static int
push_new(struct client *c, const struct lfolder *const *lfs, size_t n,
    const char *const *names, size_t nnames)
{
	size_t done = 0, used;
	int r = 0;

	while (done < n && r == 0) {
		r = push_wave(c, lfs + done, n - done, names, nnames, &used);
		done += used ? used : 1;
	}
	return r;
}

/* --- findings ---------------------------------------------------------------- */

/* A finding: logged, counted and appended to the findings file. */
static int
finding(struct client *c, struct ids_sync_finding *f)
{
	int r;

	f->peer = c->o->peer;
	f->direction = c->o->pull ? "pull" : "push";
	c->rep->findings++;
	if (f->uid != 0)
		client_log(c, LOG_WARNING, "%s: finding: %s: %s (%s): the %s message of uid %u%s%.0u, "
		    "GUID %s%s%s", f->direction, f->kind, f->name, f->uniqueid, f->side, f->uid,
		    f->newuid ? " now uid " : "", f->newuid, f->guid ? f->guid : "",
		    f->guid2 ? ", the other side's " : "", f->guid2 ? f->guid2 : "");
	else
		client_log(c, LOG_WARNING, "%s: finding: %s: %s (%s): the %s folder, copied to "
		    "the other side%s%s", f->direction, f->kind, f->name, f->uniqueid, f->side,
		    f->newname ? " and named " : "", f->newname ? f->newname : "");
	if ((r = ids_sync_findings_append(c->s.cfg, f, 1)) < 0) {
		client_log(c, LOG_ERR, "%s: the finding is not stored: %s", f->name, ids_errmsg(r));
		return r;
	}
	return 0;
}

/* --- a folder both sides changed: merged by uid (merge.h) ----------------- */

/* GET FULLMAILBOX name: the peer's MAILBOX kvlist of uniqueid (a copy); 1 when refused. */
static int
peer_full(struct client *c, const char *name, const char *uniqueid, struct ids_dlist **full)
{
	struct reply rp;
	size_t i;
	int r;

	*full = NULL;
	if ((r = exchange(c, cmd_str("GET", "FULLMAILBOX", name), &rp)) < 0)
		return r;
	if (rp.status != IDS_CSYNC_OK) {
		r = peer_refused(c, name, &rp) + 1;
		reply_release(&rp);
		return r;
	}
	for (i = 0; i < rp.n && *full == NULL && r == 0; i++)
		if (strcmp(rp.v[i]->word, "MAILBOX") == 0 && ids_csync_arg(rp.v[i], 0) != NULL &&
		    (*full = ids_dlist_copy(ids_csync_arg(rp.v[i], 0))) == NULL)
			r = -ENOMEM;
	reply_release(&rp);
	if (r == 0 && (*full == NULL || strcmp(kv_str(*full, "UNIQUEID") ?: "", uniqueid) != 0)) {
		c->rep->failed++;
		client_log(c, LOG_ERR, "%s: GET FULLMAILBOX answered no folder of uniqueid %s",
		    name, uniqueid);
		ids_dlist_free(*full);
		*full = NULL;
		r = 1;
	}
	return r;
}

/* The %(MBOXNAME UNIQUEID UID (uids)) of an APPLY EXPUNGE. */
static struct ids_dlist *
expunge_kv(const char *name, const char *uniqueid, const uint32_t *uids, size_t n)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist(), *l;
	size_t i;

	if (kv == NULL || ids_dlist_add_atom(kv, "MBOXNAME", name) < 0 ||
	    ids_dlist_add_atom(kv, "UNIQUEID", uniqueid) < 0 ||
	    ids_dlist_add_list(kv, "UID", &l) < 0)
		goto fail;
	for (i = 0; i < n; i++)
		if (ids_dlist_add_num(l, NULL, uids[i]) < 0)
			goto fail;
	return kv;
fail:
	ids_dlist_free(kv);
	return NULL;
}

/*
 * The peer made the merged list: APPLY RESERVE of the GUIDs it lacks
 * (in its own folder, else sent from ours), APPLY MESSAGE of those it
 * reports MISSING, APPLY MAILBOX, then APPLY EXPUNGE of its split-brain
 * uids.  mb (ours, read-locked) gives the files.
 */
static int
merge_peer(struct client *c, struct ids_mailbox *mb, const struct ids_sync_merge *m,
    const struct ids_dlist *src, const struct ids_dlist *theirs, const char *uniqueid)
{
	const char *name = kv_str(theirs, "MBOXNAME"), *part = kv_str(theirs, "PARTITION");
	struct ids_dlist *res = NULL, *guids, *mlist, *batch = NULL, *kv = NULL;
	const struct ids_dlist *missing = NULL, *g;
	struct reply rp;
	uint64_t bytes = 0;
	size_t i, nbatch = 0;
	int r = 0;

	memset(&rp, 0, sizeof(rp));
	part = part ? part : "default";
	if (m->nwant[IDS_MERGE_PEER] > 0) {
		if ((res = ids_dlist_new_kvlist()) == NULL ||
		    ids_dlist_add_atom(res, "PARTITION", part) < 0 ||
		    ids_dlist_add_list(res, "MBOXNAME", &mlist) < 0 ||
		    ids_dlist_add_atom(mlist, NULL, name) < 0 ||
		    ids_dlist_add_list(res, "GUID", &guids) < 0) {
			ids_dlist_free(res);
			return folder_error(c, name, -ENOMEM);
		}
		for (i = 0; i < m->nwant[IDS_MERGE_PEER] && r == 0; i++)
			r = ids_dlist_add_atom(guids, NULL, m->want[IDS_MERGE_PEER][i].guid);
		if (r < 0) {
			ids_dlist_free(res);
			return folder_error(c, name, r);
		}
		if ((r = send_folder_line(c, cmd_arg("APPLY", "RESERVE", res), name, mb, 1)) != 0 ||
		    (r = read_reply(c, &rp)) < 0)
			return r;
		if (rp.status != IDS_CSYNC_OK) {
			r = peer_refused(c, name, &rp) + 1;
			goto out;
		}
		for (i = 0; i < rp.n && missing == NULL; i++)
			if (strcmp(rp.v[i]->word, "MISSING") == 0)
				missing = ids_csync_arg(rp.v[i], 0);
	}
	for (g = missing ? missing->head : NULL; g != NULL && r == 0; g = g->next) {
		const struct ids_sync_merge_want *w = NULL;
		char fname[32];

		for (i = 0; i < m->nwant[IDS_MERGE_PEER] && w == NULL; i++)
			if (ids_dlist_cstr(g) != NULL &&
			    strcmp(m->want[IDS_MERGE_PEER][i].guid, ids_dlist_cstr(g)) == 0)
				w = &m->want[IDS_MERGE_PEER][i];
		if (w == NULL)
			continue;	/* a GUID we did not offer, or one twice */
		snprintf(fname, sizeof(fname), "%u.", w->uid[IDS_MERGE_LOCAL]);
		if (w->uid[IDS_MERGE_LOCAL] == 0 ||
		    faccessat(mb->datafd, fname, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			if (w->expunged)
				continue;	/* an expunged record goes without its file */
			r = file_error(c, name, mb, ids_error(IDS_ENOTFOUND, "%s: %s (the "
			    "peer misses its GUID %s too)", fname, strerror(ENOENT), w->guid));
			break;
		}
		if (batch == NULL && (batch = ids_dlist_new_list()) == NULL)
			r = -ENOMEM;
		if (r < 0 || (r = ids_dlist_add_child(batch, NULL, ids_csync_file_node(part,
		    w->guid, w->size, mb->datafd, fname))) < 0) {
			r = folder_error(c, name, r);
			break;
		}
		nbatch++;
		bytes += w->size;
		if (nbatch >= PUSH_BATCH_FILES || bytes >= PUSH_BATCH_BYTES || g->next == NULL) {
			r = push_batch(c, batch, name, mb);
			c->rep->files += r == 0 ? nbatch : 0;
			batch = NULL;
			nbatch = 0;
			bytes = 0;
		}
	}
	if (r == 0 && batch != NULL) {
		r = push_batch(c, batch, name, mb);
		c->rep->files += r == 0 ? nbatch : 0;
		batch = NULL;
	}
	reply_release(&rp);
	if (r == 0 && (r = ids_sync_merge_kvlist(m, src, theirs, IDS_MERGE_PEER, 0, &kv)) < 0)
		r = folder_error(c, name, r);
	if (r == 0) {
		if ((r = send_folder_line(c, cmd_arg("APPLY", "MAILBOX", kv), name, mb, 1)) != 0 ||
		    (r = read_reply(c, &rp)) < 0)
			goto out;
		if (rp.status != IDS_CSYNC_OK)
			r = peer_refused(c, name, &rp) + 1;
		reply_release(&rp);
	}
	if (r == 0 && m->nexpunge[IDS_MERGE_PEER] > 0) {
		if ((r = exchange(c, cmd_arg("APPLY", "EXPUNGE", expunge_kv(name, uniqueid,
		    m->expunge[IDS_MERGE_PEER], m->nexpunge[IDS_MERGE_PEER])), &rp)) < 0)
			goto out;
		if (rp.status != IDS_CSYNC_OK)
			r = peer_refused(c, name, &rp) + 1;
	}
out:
	ids_dlist_free(batch);
	reply_release(&rp);
	return r;
}

/*
 * This spool made the merged list, through the replica's applies: the
 * files it lacks from its own folder, else fetched from the peer; APPLY
 * MAILBOX; APPLY EXPUNGE of its split-brain uids.
 */
static int
merge_local(struct client *c, const struct ids_sync_merge *m, const struct ids_dlist *src,
    const struct ids_dlist *mine, const struct ids_dlist *theirs, const char *uniqueid)
{
	const char *name = kv_str(mine, "MBOXNAME");
	const char *pname = kv_str(theirs, "MBOXNAME"), *ppart = kv_str(theirs, "PARTITION");
	struct ids_dlist *want = ids_dlist_new_list(), *kv = NULL;
	struct fetch *fv = NULL;
	size_t i, nf = 0;
	int r = 0;

	if (want == NULL)
		return -ENOMEM;
	for (i = 0; i < m->nwant[IDS_MERGE_LOCAL] && r == 0; i++)
		r = ids_dlist_add_atom(want, NULL, m->want[IDS_MERGE_LOCAL][i].guid);
	if (r == 0 && want->head != NULL)
		r = ids_repl_reserve_local(&c->s, name, want);
	ids_dlist_free(want);
	if (r == 0 && (fv = calloc(m->nwant[IDS_MERGE_LOCAL] + 1, sizeof(*fv))) == NULL)
		r = -ENOMEM;
	for (i = 0; i < m->nwant[IDS_MERGE_LOCAL] && r == 0; i++) {
		const struct ids_sync_merge_want *w = &m->want[IDS_MERGE_LOCAL][i];

		if (ids_repl_have(&c->s, w->guid) != NULL)
			continue;
		if (w->uid[IDS_MERGE_PEER] != 0) {
			fv[nf].guid = w->guid;
			fv[nf].uid = w->uid[IDS_MERGE_PEER];
			fv[nf++].optional = w->expunged;
		} else if (!w->expunged) {
			r = ids_error(IDS_ENOTFOUND, "%s: no file of GUID %s on either side",
			    name, w->guid);
		}
	}
	if (r == 0)
		r = fetch_all(c, pname, ppart ? ppart : "default", uniqueid, fv, nf);
	free(fv);
	if (r == 0)
		r = ids_sync_merge_kvlist(m, src, mine, IDS_MERGE_LOCAL, 0, &kv);
	if (r == 0) {
		c->s.nok = NULL;
		r = local_result(c, ids_repl_apply_mailbox(&c->s, kv), name);
	}
	ids_dlist_free(kv);
	if (r == 0 && m->nexpunge[IDS_MERGE_LOCAL] > 0) {
		if ((kv = expunge_kv(name, uniqueid, m->expunge[IDS_MERGE_LOCAL],
		    m->nexpunge[IDS_MERGE_LOCAL])) == NULL)
			return -ENOMEM;
		c->s.nok = NULL;
		r = local_result(c, ids_repl_apply_expunge(&c->s, kv), name);
		ids_dlist_free(kv);
	}
	return r;
}

/* The findings of a merge. */
static int
merge_findings(struct client *c, const struct ids_sync_merge *m, const char *name,
    const char *uniqueid)
{
	size_t i;
	int r = 0;

	for (i = 0; i < m->nev && r == 0; i++) {
		const struct ids_sync_merge_event *e = &m->ev[i];
		struct ids_sync_finding f;

		memset(&f, 0, sizeof(f));
		f.kind = e->kind;
		f.side = e->side == IDS_MERGE_LOCAL ? "local" : "peer";
		f.uniqueid = uniqueid;
		f.name = name;
		f.uid = e->uid;
		f.newuid = e->newuid;
		f.guid = e->guid;
		f.guid2 = e->guid2[0] ? e->guid2 : NULL;
		r = finding(c, &f);
	}
	return r;
}

/*
 * A folder both sides hold, named name on both, whose states differ:
 * both record lists merged, then the peer and this spool made the
 * merged list (each only when its state is not that already).
 */
static int
merge_folder(struct client *c, const char *name, const char *uniqueid)
{
	struct ids_dlist *mine = NULL, *theirs = NULL, *fin = NULL;
	const struct ids_dlist *st[2], *src;
	struct ids_sync_merge m;
	struct ids_mailbox *mb = NULL;
	struct ids_index *idx;
	uint64_t deletedmodseq = 0;
	int r, need[2], applied = 0, x;

	memset(&m, 0, sizeof(m));
	if ((r = peer_full(c, name, uniqueid, &theirs)) != 0)
		return r;
	/* our folder unreadable (its header, its index): its failure (folder_error) */
	if ((r = ids_mailbox_open(c->s.mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) == 0 &&
	    (r = ids_index_open(ids_mailbox_metafd(mb, IDS_META_INDEX), &idx)) == 0) {
		deletedmodseq = ids_index_header(idx)->deletedmodseq;
		ids_index_free(idx);
	}
	if (r == 0)
		r = ids_sync_mailbox_state(mb, IDS_SYNC_RECORDS, &mine);
	if (r < 0) {
		r = folder_error(c, name, r);
		goto out;
	}
	st[IDS_MERGE_LOCAL] = mine;
	st[IDS_MERGE_PEER] = theirs;
	src = c->o->pull ? theirs : mine;
	if ((r = ids_sync_merge(st, c->o->pull ? IDS_MERGE_PEER : IDS_MERGE_LOCAL,
	    deletedmodseq, &m)) < 0) {
		r = folder_error(c, name, r);
		goto out;
	}
	for (x = 0; x < 2 && r == 0; x++) {
		if ((r = ids_sync_merge_kvlist(&m, src, st[x], x, 1, &fin)) == 0)
			need[x] = !same_state(fin, st[x]);
		ids_dlist_free(fin);
		fin = NULL;
	}
	if (r < 0) {
		r = folder_error(c, name, r);
		goto out;
	}
	/* the peer first, while our files are under our read lock */
	if (need[IDS_MERGE_PEER]) {
		if ((r = merge_peer(c, mb, &m, src, theirs, uniqueid)) != 0)
			goto out;
		applied = 1;
	}
	ids_mailbox_close(mb);
	mb = NULL;
	if (need[IDS_MERGE_LOCAL]) {
		if ((r = merge_local(c, &m, src, mine, theirs, uniqueid)) != 0)
			goto out;
		applied = 1;
	}
out:
	if (mb != NULL)
		ids_mailbox_close(mb);
	if (applied) {
		c->rep->applied++;
		if (need[IDS_MERGE_PEER] && need[IDS_MERGE_LOCAL])
			c->rep->merged++;
		client_log(c, LOG_INFO, "%s: %s (%s) merged: %s%s%s, %zu record(s), last_uid %u",
		    c->o->pull ? "pull" : "push", name, uniqueid,
		    need[IDS_MERGE_PEER] ? "the peer" : "", need[0] && need[1] ? " and " : "",
		    need[IDS_MERGE_LOCAL] ? "here" : "", m.nwant[0] + m.nwant[1], m.last_uid);
		if (m.nev > 0) {
			int r2 = merge_findings(c, &m, name, uniqueid);

			r = r == 0 ? r2 : r;
		}
	}
	ids_sync_merge_release(&m);
	ids_dlist_free(mine);
	ids_dlist_free(theirs);
	return r;
}

/* --- per-user data: subscriptions, seen state, sieve scripts ------------- */

/* The item of lines (untagged key lines) whose idkey is id; LSUB: its name. */
static const struct ids_dlist *
meta_find(struct ids_csync_line *const *lines, size_t n, const char *key, const char *idkey,
    const char *id)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct ids_dlist *v = ids_csync_arg(lines[i], 0), *x;

		if (lines[i]->kind != IDS_CSYNC_UNTAGGED || strcmp(lines[i]->word, key) != 0 ||
		    v == NULL)
			continue;
		if (idkey == NULL) {
			for (x = v->type == IDS_DL_LIST ? v->head : NULL; x != NULL; x = x->next)
				if (ids_dlist_cstr(x) != NULL && strcmp(ids_dlist_cstr(x), id) == 0)
					return x;
		} else if (kv_str(v, idkey) != NULL && strcmp(kv_str(v, idkey), id) == 0) {
			return v;
		}
	}
	return NULL;
}

/* %(USERID userid ...) followed by the items of kv (or KEY value pairs). */
static struct ids_dlist *
meta_item(const char *userid, const struct ids_dlist *kv, const char *k1, const char *v1)
{
	struct ids_dlist *out = ids_dlist_new_kvlist(), *copy;
	const struct ids_dlist *i;

	if (out == NULL || ids_dlist_add_atom(out, "USERID", userid) < 0)
		goto fail;
	if (k1 != NULL && ids_dlist_add_atom(out, k1, v1) < 0)
		goto fail;
	for (i = kv ? kv->head : NULL; i != NULL; i = i->next) {
		if (i->name == NULL || strcmp(i->name, "USERID") == 0)
			continue;
		if ((copy = ids_dlist_copy(i)) == NULL || ids_dlist_add_child(out, NULL, copy) < 0)
			goto fail;
	}
	return out;
fail:
	ids_dlist_free(out);
	return NULL;
}

/* APPLY verb kv (taken over) to the peer, or here when pulling. */
static int
meta_apply(struct client *c, const char *verb, struct ids_dlist *kv)
{
	struct reply rp;
	int r;

	if (kv == NULL)
		return -ENOMEM;
	if (c->o->pull) {
		c->s.nok = NULL;
		r = local_result(c, ids_repl_apply_meta(&c->s, verb, kv), verb);
		ids_dlist_free(kv);
		return r;
	}
	if ((r = exchange(c, cmd_arg("APPLY", verb, kv), &rp)) < 0)
		return r;
	r = rp.status == IDS_CSYNC_OK ? 0 : peer_refused(c, verb, &rp) + 1;
	reply_release(&rp);
	return r;
}

/* The LSUB names of lines that other lacks: SUB (from = the side with them) or UNSUB. */
static int
meta_subs(struct client *c, const char *userid, struct ids_csync_line *const *from, size_t nf,
    struct ids_csync_line *const *to, size_t nt, const char *verb, size_t *changed)
{
	size_t i;
	int r = 0;

	for (i = 0; i < nf && r == 0; i++) {
		const struct ids_dlist *v = ids_csync_arg(from[i], 0), *x;

		if (strcmp(from[i]->word, "LSUB") != 0 || v == NULL || v->type != IDS_DL_LIST)
			continue;
		for (x = v->head; x != NULL && r == 0; x = x->next) {
			const char *name = ids_dlist_cstr(x);

			if (name == NULL || meta_find(to, nt, "LSUB", NULL, name) != NULL)
				continue;
			r = next_one(meta_apply(c, verb, meta_item(userid, NULL, "MBOXNAME", name)));
			(*changed)++;
		}
	}
	return r;
}

/*
 * Makes the written side's subscriptions, seen state and (pushing)
 * sieve scripts those of the other, from what GET USER reported (peer)
 * and what replica.db holds (here).
 */
static int
meta_sync(struct client *c, const char *userid, const struct reply *peer)
{
	struct ids_csync_line *const *pl = peer->v, *const *ll;
	struct ids_sync_meta *m;
	size_t i, np = peer->n, nl, changed = 0;
	int pull = c->o->pull, r;

	ids_repl_lines_release(&c->s);
	if ((r = ids_repl_report_meta(&c->s, userid)) < 0)
		return r;
	ll = c->s.lines;
	nl = c->s.nlines;
	/* subscriptions: the source's names subscribed, the others' unsubscribed */
	r = meta_subs(c, userid, pull ? pl : ll, pull ? np : nl, pull ? ll : pl, pull ? nl : np,
	    "SUB", &changed);
	if (r == 0)
		r = meta_subs(c, userid, pull ? ll : pl, pull ? nl : np, pull ? pl : ll,
		    pull ? np : nl, "UNSUB", &changed);
	/* seen state, by folder uniqueid (csync has no way to remove one) */
	for (i = 0; r == 0 && i < (pull ? np : nl); i++) {
		const struct ids_csync_line *l = pull ? pl[i] : ll[i];
		const struct ids_dlist *v = ids_csync_arg(l, 0), *other;
		const char *id = kv_str(v, "UNIQUEID");

		if (strcmp(l->word, "SEEN") != 0 || id == NULL)
			continue;
		other = meta_find(pull ? ll : pl, pull ? nl : np, "SEEN", "UNIQUEID", id);
		if (other != NULL && value_eq(other, v))
			continue;
		r = next_one(meta_apply(c, "SEEN", meta_item(userid, v, NULL, NULL)));
		changed++;
	}
	/*
	 * sieve scripts: pushed only (GET USER carries no script's content),
	 * and only to an idspool peer: Cyrus 3.6 keeps them in a #sieve
	 * mailbox (it stores an APPLY SIEVE but refuses its ACTIVATE_SIEVE);
	 * as Cyrus's sync_client sends them: a script whose GUID differs or
	 * that is newer here.
	 */
	for (i = 0; r == 0 && !pull && !c->idspool && i < nl; i++) {
		if (strcmp(ll[i]->word, "SIEVE") == 0) {
			client_log(c, LOG_WARNING, "push: %s: sieve scripts are not sent to a "
			    "peer that keeps them in a #sieve mailbox", userid);
			break;
		}
	}
	for (i = 0; r == 0 && !pull && c->idspool && i < nl; i++) {
		const struct ids_dlist *v = ids_csync_arg(ll[i], 0), *other;
		const char *name = kv_str(v, "FILENAME");
		struct ids_dlist *item = NULL, *kv;
		uint64_t act = 0, pact = 0, t = 0, pt = 0;

		if (strcmp(ll[i]->word, "SIEVE") != 0 || name == NULL)
			continue;
		other = meta_find(pl, np, "SIEVE", "FILENAME", name);
		ids_dlist_get_u64(v, "ISACTIVE", &act);
		if (other != NULL)
			ids_dlist_get_u64(other, "ISACTIVE", &pact);
		if (other != NULL) {
			ids_dlist_get_u64(v, "LAST_UPDATE", &t);
			ids_dlist_get_u64(other, "LAST_UPDATE", &pt);
		}
		if (other == NULL || t > pt ||
		    !value_eq(ids_dlist_get(v, "GUID"), ids_dlist_get(other, "GUID"))) {
			if ((r = ids_repl_meta(&c->s, &m)) < 0 ||
			    (r = ids_sync_meta_get(m, IDS_SYNC_SIEVE, userid, name, &item)) < 0)
				break;
			if ((kv = meta_item(userid, NULL, "FILENAME", name)) == NULL ||
			    ids_dlist_add_child(kv, NULL, ids_dlist_copy(ids_dlist_get(item,
			    "LAST_UPDATE"))) < 0 || ids_dlist_add_child(kv, NULL,
			    ids_dlist_copy(ids_dlist_get(item, "CONTENT"))) < 0) {
				ids_dlist_free(kv);
				kv = NULL;
			}
			ids_dlist_free(item);
			r = next_one(meta_apply(c, "SIEVE", kv));
			pact = 0;	/* a script sent is not active there yet */
			changed++;
		}
		if (r == 0 && act != pact) {
			r = next_one(meta_apply(c, act ? "ACTIVATE_SIEVE" : "UNACTIVATE_SIEVE",
			    meta_item(userid, NULL, "FILENAME", name)));
			changed++;
		}
	}
	for (i = 0; r == 0 && !pull && c->idspool && i < np; i++) {
		const char *name = kv_str(ids_csync_arg(pl[i], 0), "FILENAME");

		if (strcmp(pl[i]->word, "SIEVE") != 0 || name == NULL ||
		    meta_find(ll, nl, "SIEVE", "FILENAME", name) != NULL)
			continue;
		r = next_one(meta_apply(c, "UNSIEVE", meta_item(userid, NULL, "FILENAME", name)));
		changed++;
	}
	ids_repl_lines_release(&c->s);
	if (r == 0 && changed > 0)
		client_log(c, LOG_INFO, "%s: %s: %zu subscription, seen or sieve item(s) applied",
		    pull ? "pull" : "push", userid, changed);
	c->rep->meta += changed;
	return r;
}

/* --- renames, cycles included ------------------------------------------- */

typedef int (*mv_fn)(struct client *c, struct mv *m, const char *to);

/* The names held on the side being renamed (malloc'd strings). */
struct held {
	char **v;
	size_t n;
};

static ssize_t
held_find(const struct held *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (h->v[i] != NULL && strcmp(h->v[i], name) == 0)
			return (ssize_t)i;
	return -1;
}

static int
held_move(struct held *h, const char *from, const char *to)
{
	ssize_t i = held_find(h, from);
	char *copy = strdup(to);

	if (copy == NULL)
		return -ENOMEM;
	if (i < 0) {
		free(copy);
		return 0;
	}
	free(h->v[i]);
	h->v[i] = copy;
	return 0;
}

static void
held_free(struct held *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		free(h->v[i]);
	free(h->v);
}

/* m's rename to "to" with fn; on success the held names follow. */
static int
mv_do(struct client *c, struct mv *m, const char *to, mv_fn fn, struct held *h)
{
	char *copy;
	int r;

	if ((r = fn(c, m, to)) != 0)
		return r;
	if ((r = held_move(h, m->from, to)) < 0 || (copy = strdup(to)) == NULL)
		return r < 0 ? r : -ENOMEM;
	free(m->from);
	m->from = copy;
	if (m->pf != NULL && to == m->to && !c->o->pull)
		m->pf->name = m->to;
	return 0;
}

/*
 * Makes the renames of v, in an order where no target is held: a rename
 * whose target a folder still to be renamed holds waits for it, and a
 * cycle (a->c, b->a, c->b) is broken by renaming one of its folders to
 * "<name>-<uniqueid>" first.  A target held by a folder that is not
 * renamed is a refusal, counted.
 */
static int
plan_renames(struct client *c, struct mv *v, size_t n, struct held *h, mv_fn fn)
{
	size_t i, j, pending;
	int r, progress;

	for (;;) {
		pending = 0;
		progress = 0;
		for (i = 0; i < n; i++) {
			if (v[i].done)
				continue;
			pending++;
			if (held_find(h, v[i].to) >= 0)
				continue;
			if ((r = mv_do(c, &v[i], v[i].to, fn, h)) < 0)
				return r;
			c->rep->renamed += r == 0;
			if (r > 0 && v[i].pf != NULL)
				v[i].pf->refused = 1;
			v[i].done = 1;
			progress = 1;
		}
		if (pending == 0)
			return 0;
		if (progress)
			continue;
		/* every target is held: free one held by a folder still to be renamed */
		for (i = 0; i < n && !progress; i++) {
			char tmp[IDS_MBNAME_MAX + 1];

			for (j = 0; j < n; j++)
				if (!v[j].done && j != i && strcmp(v[j].from, v[i].to) == 0)
					break;
			if (v[i].done || j == n)
				continue;
			if ((size_t)snprintf(tmp, sizeof(tmp), "%s-%s", v[j].from,
			    v[j].uniqueid) >= sizeof(tmp) || held_find(h, tmp) >= 0) {
				continue;
			}
			if ((r = mv_do(c, &v[j], tmp, fn, h)) < 0)
				return r;
			if (r > 0) {
				v[j].done = 1;
				if (v[j].pf != NULL)
					v[j].pf->refused = 1;
			}
			progress = 1;
		}
		if (progress)
			continue;
		for (i = 0; i < n; i++) {
			if (v[i].done)
				continue;
			v[i].done = 1;
			if (v[i].pf != NULL)
				v[i].pf->refused = 1;
			c->rep->failed++;
			client_log(c, LOG_ERR, "%s (%s): cannot be renamed to %s, which another "
			    "folder holds", v[i].from, v[i].uniqueid, v[i].to);
		}
		return 0;
	}
}

static void
mvs_free(struct mv *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].from);
	free(v);
}

/*
 * push: a folder only the peer holds, with no tombstone here: copied
 * here (renamed on the peer first when its name is another uniqueid's
 * here), so that the push loses nothing of the peer's.
 */
static int
copy_here(struct client *c, struct pfolders *p, struct pfolder *pf)
{
	char rec[IDS_MBNAME_MAX + 1];
	const char *old = pf->name;
	int r;

	if ((r = local_live(c, pf->name)) < 0)
		return r;
	if (r == 1) {
		const char *part = kv_str(pf->kv, "PARTITION");
		struct mv m = { pf->uniqueid, NULL, rec, part ? part : "default", 0, NULL, 0 };

		ids_dlist_get_u32(pf->kv, "UIDVALIDITY", &m.uidvalidity);
		if ((r = recovery_name(c, p, pf->name, pf->uniqueid, rec, sizeof(rec))) != 0)
			return r;
		if ((m.from = strdup(pf->name)) == NULL)
			return -ENOMEM;
		r = push_rename(c, &m, rec);
		free(m.from);
		if (r != 0)
			return r;
		c->rep->renamed++;
		if ((pf->own = strdup(rec)) == NULL)
			return -ENOMEM;
		pf->name = pf->own;
	}
	r = pull_folder(c, pf);
	c->rep->folders--;	/* counted already */
	if (r == 0)
		r = folder_finding(c, "peer", old, pf->uniqueid, pf->own);
	return r;
}

/* --- one user or one set of folders ------------------------------------- */

/*
 * The renames that make the names of the side written (pull: here;
 * push: the peer) those of the other, for the folders both hold.
 */
static int
renames(struct client *c, struct pfolders *p, struct lfolder *lv, size_t nl)
{
	struct held h = { NULL, 0 };
	struct mv *v = calloc(nl + 1, sizeof(*v));
	size_t i, n = 0;
	int r = 0;

	if (v == NULL || (h.v = calloc((c->o->pull ? nl : p->n) + 1, sizeof(char *))) == NULL) {
		free(v);
		return -ENOMEM;
	}
	/* the names held on the side renamed */
	if (c->o->pull) {
		for (i = 0; i < nl && r == 0; i++)
			if (!lv[i].deleted && (h.v[h.n++] = strdup(lv[i].name)) == NULL)
				r = -ENOMEM;
	} else {
		for (i = 0; i < p->n && r == 0; i++)
			if (!p->v[i].deleted && (h.v[h.n++] = strdup(p->v[i].name)) == NULL)
				r = -ENOMEM;
	}
	for (i = 0; i < nl && r == 0; i++) {
		struct pfolder *pf = lv[i].pf;
		const char *part = pf != NULL ? kv_str(pf->kv, "PARTITION") : NULL;

		if (pf == NULL || lv[i].deleted || strcmp(pf->name, lv[i].name) == 0)
			continue;
		v[n].uniqueid = lv[i].uniqueid;
		v[n].from = strdup(c->o->pull ? lv[i].name : pf->name);
		v[n].to = c->o->pull ? pf->name : lv[i].name;
		v[n].partition = c->o->pull || part == NULL ? lv[i].partition : part;
		v[n].uidvalidity = lv[i].uidvalidity;
		v[n].pf = pf;
		if (v[n++].from == NULL)
			r = -ENOMEM;
	}
	if (r == 0 && n > 0)
		r = plan_renames(c, v, n, &h, c->o->pull ? pull_rename : push_rename);
	mvs_free(v, n);
	held_free(&h);
	return r;
}

/*
 * The repair step of a set's local folders (repair.h), with an idspool
 * peer.  A folder whose states were equal, when the peer's answer named
 * its MISSING files, is repaired from what both sides computed with its
 * state (no GET STATE, no second open of it here unless our MISSING
 * names a file); the others are asked by one GET STATE.
 */
static int
repair_set(struct client *c, const struct lfolder *lv, size_t nl)
{
	struct ids_sync_wire w;
	struct ids_sync_repair_counts n = { 0, 0, 0 };
	const char **ids = calloc(nl + 1, sizeof(*ids));
	int flags = (c->o->pull ? 0 : IDS_SYNC_REPAIR_PUSH) |
	    (c->o->verify ? IDS_SYNC_REPAIR_VERIFY : 0);
	size_t i, k = 0;
	int r = 0;

	if (ids == NULL)
		return -ENOMEM;
	client_wire(c, &w);
	for (i = 0; i < nl && r == 0; i++) {
		struct pfolder *pf = lv[i].pf;

		if (local_failed(c, lv[i].name))
			continue;	/* failed already (folder_error) */
		if (pf == NULL || !pf->same || !pf->mknown || c->o->verify) {
			ids[k++] = lv[i].uniqueid;
			continue;
		}
		r = ids_sync_repair_known(&w, lv[i].uniqueid, pf->kv, pf->missing,
		    pf->lmissing != NULL && pf->lmissing->head != NULL, flags, &n);
	}
	if (r == 0)
		r = ids_sync_repair_set(&w, ids, k, flags, &n);
	free(ids);

	c->no_state = w.no_state;
	c->rep->repaired += n.here + n.there;
	c->rep->failed += n.failed;
	return r;
}

/*
 * Codes of a write to the peer that lost the link: a broken pipe or
 * reset, an I/O error, or a send that timed out (the rolling client's
 * socket has SO_SNDTIMEO: EAGAIN).  The session cannot go on after one.
 */
static int
link_lost(int r)
{
	return r == -EPIPE || r == -EIO || r == -ECONNRESET || r == -EAGAIN ||
	    r == -EWOULDBLOCK || r == -ETIMEDOUT;
}

static int
sync_set(struct client *c, const char *userid, const char *const *names, size_t nnames)
{
	struct pfolders p;
	struct ids_repl_names ln = { NULL, 0, 0 };
	struct lfolder *lv = NULL;
	const char **pnames = NULL;
	const struct lfolder **batch = NULL;	/* new on the peer, pipelined */
	size_t i, nl = 0, nbatch = 0;
	int r;

	if ((r = peer_folders(c, userid, names, nnames, &p)) != 0) {
		pfolders_release(&p);
		return next_one(r);
	}
	if (userid != NULL) {
		if ((r = ids_repl_user_folders(&c->s, userid, 1, &ln)) < 0) {
			c->rep->failed++;
			client_log(c, LOG_ERR, "%s: %s", userid, ids_errmsg(r));
			ids_repl_names_free(&ln);
			pfolders_release(&p);
			return 0;
		}
	} else {
		if ((ln.v = calloc(nnames + 1, sizeof(*ln.v))) == NULL)
			r = -ENOMEM;
		for (i = 0; r == 0 && i < nnames; i++, ln.n++)
			if ((ln.v[i] = strdup(names[i])) == NULL)
				r = -ENOMEM;
		ln.a = nnames + 1;
	}
	if (r == 0)
		r = lfolders_of(c, &ln, &lv, &nl);
	if (r == 0)
		r = match_byid(c, userid, &p, &lv, &nl);
	if (r < 0)
		goto out;
	if (c->o->pull) {
		/* deletes first (a name may be taken again), then renames, then contents */
		for (i = 0; i < nl && r == 0; i++)
			if (lv[i].pf == NULL)
				r = next_one(pull_local_only(c, &lv[i], &p));
		if (r == 0)
			r = renames(c, &p, lv, nl);
		for (i = 0; i < p.n && r == 0; i++)
			r = next_one(pull_folder(c, &p.v[i]));
		if (r == 0 && userid != NULL)
			r = meta_sync(c, userid, &p.rp);
		goto out;
	}
	/* push: the same order */
	for (i = 0; i < p.n && r == 0; i++) {
		if (p.v[i].matched)
			continue;
		c->rep->folders++;
		if ((r = ids_repl_tombstoned(&c->s, p.v[i].uniqueid, p.v[i].name)) == 1) {
			r = next_one(push_unmailbox(c, &p.v[i]));
		} else if (r == 0) {
			c->rep->kept++;
			client_log(c, LOG_WARNING, "push: %s (%s) is on the peer only and has no "
			    "tombstone here: kept, and copied here", p.v[i].name, p.v[i].uniqueid);
			r = next_one(copy_here(c, &p, &p.v[i]));
		}
	}
	if (r == 0)
		r = renames(c, &p, lv, nl);
	/* APPLY RESERVE names the peer's folders, as they are now */
	if (r == 0 && (pnames = calloc(p.n + 1, sizeof(*pnames))) == NULL)
		r = -ENOMEM;
	for (i = 0; r == 0 && i < p.n; i++)
		pnames[i] = p.v[i].name;
	if (r == 0 && c->pipeline && (batch = calloc(PIPE_FOLDERS, sizeof(*batch))) == NULL)
		r = -ENOMEM;
	for (i = 0; i < nl && r == 0; i++) {
		struct pfolder *pf = lv[i].pf;
		struct ids_dlist *mine = NULL;

		c->rep->folders++;
		if (pf != NULL && strcmp(pf->name, lv[i].name) != 0)
			continue;	/* its rename was refused */
		/* a folder the peer lacks joins the batch, pushed when full */
		if (pf == NULL && batch != NULL) {
			if (nbatch == PIPE_FOLDERS) {
				r = push_new(c, batch, nbatch, pnames, p.n);
				nbatch = 0;
				if (r < 0)
					break;
			}
			batch[nbatch++] = &lv[i];
			continue;
		}
		if (pf != NULL) {
			ids_dlist_free(pf->lmissing);
			pf->lmissing = NULL;
		}
		if (pf != NULL && (r = local_state(c, lv[i].name, &mine, &pf->lmissing)) == 0 &&
		    same_state(mine, pf->kv)) {
			pf->same = 1;
			ids_dlist_free(mine);
			continue;
		}
		ids_dlist_free(mine);
		if (r == IDS_ENOTFOUND)
			r = 0;
		if (r < 0) {
			/* our folder unreadable: its failure, the next one goes on */
			r = next_one(folder_error(c, lv[i].name, r));
			continue;
		}
		if (r == 0 && pf != NULL)
			r = next_one(merge_folder(c, lv[i].name, lv[i].uniqueid));
		else if (r == 0)
			r = next_one(push_folder(c, &lv[i], pf, pnames, p.n));
	}
	if (r == 0 && nbatch > 0)
		r = push_new(c, batch, nbatch, pnames, p.n);
	free(batch);
	if (r == 0 && userid != NULL)
		r = meta_sync(c, userid, &p.rp);
out:
	if (r == 0 && c->idspool)
		r = repair_set(c, lv, nl);
	free(pnames);
	lfolders_free(lv, nl);
	ids_repl_names_free(&ln);
	ids_repl_names_free(&c->lfailed);
	memset(&c->lfailed, 0, sizeof(c->lfailed));
	pfolders_release(&p);
	if (r < 0 && r != -ENOMEM && r != IDS_ETRUNC && !ids_csync_in_lost(c->in) &&
	    !link_lost(r)) {
		/* a local error of one set: counted, the session goes on */
		c->rep->failed++;
		client_log(c, LOG_ERR, "%s: %s", userid ? userid : "folders", ids_errmsg(r));
		return 0;
	}
	return r;
}

/* --- the session ------------------------------------------------------------ */

/* The banner: untagged lines up to "* OK ..." (a NO or BAD ends it). */
static int
read_banner(struct client *c)
{
	struct ids_csync_line *l;
	int r;

	for (;;) {
		if ((r = ids_csync_read(c->in, &l)) <= 0)
			return r == 0 ? ids_error(IDS_ETRUNC, "the peer sent no banner") : r;
		trace_line(c, '<', l);
		if (l->kind == IDS_CSYNC_UNTAGGED && strcmp(l->word, "OK") == 0) {
			c->idspool = l->text != NULL &&
			    memmem(l->text, l->textlen, "idspool-", 8) != NULL;
			c->pipeline = c->idspool &&
			    memmem(l->text, l->textlen, IDS_SYNC_PIPELINE_WORD,
			    strlen(IDS_SYNC_PIPELINE_WORD)) != NULL;
			ids_csync_line_free(l);
			return 0;
		}
		if (l->kind != IDS_CSYNC_UNTAGGED || strcmp(l->word, "NO") == 0 ||
		    strcmp(l->word, "BAD") == 0 || strcmp(l->word, "BYE") == 0) {
			ids_csync_line_free(l);
			return ids_error(IDS_EINVAL, "the peer refused the session");
		}
		ids_csync_line_free(l);
	}
}

/*
 * -A: the users whose INBOX is live here and, from an idspool peer (GET
 * USERS, idspool's extension), there; csync has no way to ask a real
 * Cyrus for its users, so against one only ours are taken.
 */
static int
all_users(struct client *c)
{
	struct reply rp;
	const struct ids_dlist *x;
	size_t i, j;
	int r;

	if ((r = ids_repl_users(&c->s, &c->users)) < 0)
		return r;
	if (!c->idspool) {
		client_log(c, LOG_WARNING, "-A: the peer is not idspool: only the users "
		    "of this spool (%zu)", c->users.n);
		return 0;
	}
	if ((r = exchange(c, cmd("GET", "USERS"), &rp)) < 0)
		return r;
	if (rp.status != IDS_CSYNC_OK) {
		r = peer_refused(c, "GET USERS", &rp);
		reply_release(&rp);
		return r;
	}
	for (i = 0; i < rp.n && r == 0; i++) {
		const struct ids_dlist *l = ids_csync_arg(rp.v[i], 0);

		if (strcmp(rp.v[i]->word, "USERS") != 0 || l == NULL)
			continue;
		for (x = l->head; x != NULL && r == 0; x = x->next) {
			const char *u = ids_dlist_cstr(x);

			if (u == NULL)
				continue;
			for (j = 0; j < c->users.n && strcmp(c->users.v[j], u) != 0; j++)
				;
			if (j == c->users.n)
				r = ids_repl_names_add(&c->users, u);
		}
	}
	reply_release(&rp);
	return r;
}

/*
 * A user's subscriptions, seen state and sieve scripts alone (the
 * rolling client's user entries): GET USER for what the peer holds,
 * then meta_sync.  Each refusal is the user's (IDS_SYNC_REFUSED_META).
 */
static int
meta_user(struct client *c, const char *userid)
{
	struct reply rp;
	int r;

	c->meta_user = userid;
	if ((r = exchange(c, cmd_str("GET", "USER", userid), &rp)) == 0) {
		if (rp.status != IDS_CSYNC_OK)
			r = peer_refused(c, userid, &rp);
		else
			r = next_one(meta_sync(c, userid, &rp));
		reply_release(&rp);
	}
	c->meta_user = NULL;
	return r;
}

/* Reads the peer's output, waiting at most opts->timeout seconds for a byte. */
static ssize_t
peer_read(void *rock, void *buf, size_t len)
{
	struct client *c = rock;

	return ids_csync_read_timed(c->peer_fd, c->o->timeout, buf, len);
}

int
ids_sync_client_session(struct ids_mboxlist *mbl, int peer_out, int peer_in,
    const struct ids_sync_client_opts *opts, struct ids_sync_client_report *report)
{
	struct ids_csync_limits lim = { IDS_CSYNC_MAX_LINE, IDS_DLIST_MAX_LITERAL,
	    IDS_CSYNC_MAX_FILE };
	struct client c;
	struct reply rp;
	size_t i;
	int r;

	memset(&c, 0, sizeof(c));
	memset(report, 0, sizeof(*report));
	c.peer_fd = peer_out;
	c.o = opts;
	c.rep = report;
	c.ropts.log = opts->log;
	c.ropts.rock = opts->rock;
	c.ropts.max_file = opts->max_file;
	if (opts->max_file)
		lim.max_file = opts->max_file;
	if ((r = ids_repl_session_init(&c.s, mbl, &c.ropts)) < 0 ||
	    (r = ids_csync_in_new_fn(peer_read, &c, &c.in)) < 0 ||
	    (r = ids_csync_out_new(peer_in, IDS_CSYNC_CLIENT, &c.out)) < 0)
		goto out;
	ids_csync_in_set_limits(c.in, &lim);
	ids_csync_in_set_staging(c.in, c.s.stagefd);
	ids_csync_in_set_fsync(c.in, 0);	/* the applies make the files they link durable */
	if ((r = read_banner(&c)) < 0)
		goto out;
	if (opts->all && (r = all_users(&c)) < 0)
		goto out;
	for (i = 0; i < c.users.n && r == 0; i++)
		r = sync_set(&c, c.users.v[i], NULL, 0);
	for (i = 0; i < opts->nusers && r == 0; i++)
		r = sync_set(&c, opts->users[i], NULL, 0);
	if (r == 0 && opts->nfolders > 0)
		r = sync_set(&c, NULL, opts->folders, opts->nfolders);
	for (i = 0; i < opts->nmeta_users && r == 0; i++)
		r = meta_user(&c, opts->meta_users[i]);
	/*
	 * A session whose EXIT is not answered OK did not end as it should
	 * (the link cut inside the EXIT line: the peer answers BAD): the
	 * same failure as a peer that closes before its answer.
	 */
	if (r == 0 && (r = exchange(&c, cmd("EXIT", NULL), &rp)) == 0) {
		if (rp.status != IDS_CSYNC_OK)
			r = ids_error(IDS_ETRUNC, "EXIT: the peer answered %s %s",
			    rp.status == IDS_CSYNC_NO ? "NO" : "BAD", rp.text);
		reply_release(&rp);
	}
out:
	ids_csync_out_free(c.out);
	ids_csync_in_free(c.in);
	ids_repl_session_release(&c.s);
	ids_repl_names_free(&c.users);
	ids_repl_names_free(&c.lfailed);
	return r;
}
