/*
 * repair.c - missing and damaged message files healed over csync
 * (repair.h): the client's repair step of each folder, and the wire of
 * idspool's repair extensions for sessions of their own (spool_audit).
 *
 * Per folder, when the peer holds it too (its STATE, GET STATE):
 *   push  every GUID of the peer's MISSING is looked for here (the same
 *         folder first, then every live folder) and sent in an APPLY
 *         REPAIR: the peer checks it against the GUID and puts it back
 *         under the uids whose records name it;
 *   here  the files the audit finds missing or damaged here are fetched
 *         with GET FETCHGUID (staged, the codec checks size and SHA-1:
 *         a file whose bytes are not its GUID's is refused, never
 *         stored) and put back through the replica's own placement
 *         (ids_repl_repair_place: verified copy, fsync, link or rename,
 *         under the folder's lock).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "csync.h"
#include "dlist.h"
#include "error.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "replica.h"
#include "replica_int.h"
#include "repair.h"
#include "sync.h"

static void
wlog(struct ids_sync_wire *w, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
wlog(struct ids_sync_wire *w, int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (w->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->log(w->rock, prio, msg);
}

static const char *
kv_str(const struct ids_dlist *kv, const char *key)
{
	return kv != NULL && kv->type == IDS_DL_KVLIST ? ids_dlist_cstr(ids_dlist_get(kv, key)) :
	    NULL;
}

/* A line's summary to the trace (ids_csync_line_summary). */
void
ids_sync_trace(struct ids_sync_wire *w, int dir, const struct ids_csync_line *l)
{
	struct ids_buf b = IDS_BUF_INIT;

	if (w->trace == NULL)
		return;
	ids_csync_line_summary(l, &b);
	if (!ids_buf_oom(&b))
		w->trace(w->rock, dir, b.s, b.len);
	ids_buf_release(&b);
}

void
ids_sync_lines_free(struct ids_csync_line **lines, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ids_csync_line_free(lines[i]);
	free(lines);
}

int
ids_sync_read_answer(struct ids_sync_wire *w, struct ids_csync_line ***lines, size_t *nlines,
    int *status, int *damaged, char *text, size_t textsize)
{
	struct ids_csync_line *x, **v = NULL;
	size_t n = 0, a = 0;
	int r;

	*lines = NULL;
	*nlines = 0;
	*damaged = 0;
	*status = IDS_CSYNC_BAD;
	if (text != NULL && textsize > 0)
		text[0] = '\0';
	for (;;) {
		r = ids_csync_read(w->in, &x);
		if (r == 0)
			r = ids_error(IDS_ETRUNC, "the peer closed the session");
		if (r < 0) {
			if (ids_csync_in_lost(w->in) || r == IDS_ETRUNC) {
				ids_sync_lines_free(v, n);
				return r;
			}
			*damaged = r;
			continue;
		}
		ids_sync_trace(w, '<', x);
		if (x->kind == IDS_CSYNC_OK || x->kind == IDS_CSYNC_NO || x->kind == IDS_CSYNC_BAD) {
			*status = x->kind;
			if (text != NULL && textsize > 0)
				snprintf(text, textsize, "%.*s", (int)(x->textlen < 200 ? x->textlen :
				    200), x->text ? x->text : "");
			ids_csync_line_free(x);
			*lines = v;
			*nlines = n;
			return 0;
		}
		if (n == a) {
			struct ids_csync_line **nv = realloc(v, (a ? 2 * a : 8) * sizeof(*nv));

			if (nv == NULL) {
				ids_csync_line_free(x);
				ids_sync_lines_free(v, n);
				return -ENOMEM;
			}
			v = nv;
			a = a ? 2 * a : 8;
		}
		v[n++] = x;
	}
}

int
ids_sync_send(struct ids_sync_wire *w, struct ids_csync_line *l)
{
	int r;

	if (l == NULL)
		return -ENOMEM;
	ids_sync_trace(w, '>', l);
	r = ids_csync_write(w->out, l);
	ids_csync_line_free(l);
	if (r < 0 || (r = ids_csync_flush(w->out)) < 0)
		return r;
	return 0;
}

int
ids_sync_exchange(struct ids_sync_wire *w, struct ids_csync_line *l,
    struct ids_csync_line ***lines, size_t *nlines, int *status, int *damaged)
{
	int r;

	*lines = NULL;
	*nlines = 0;
	*damaged = 0;
	*status = IDS_CSYNC_BAD;
	if ((r = ids_sync_send(w, l)) < 0)
		return r;
	return ids_sync_read_answer(w, lines, nlines, status, damaged, NULL, 0);
}

/* A command "WORD SUB arg" (arg taken over). */
static struct ids_csync_line *
command(const char *word, const char *sub, struct ids_dlist *arg)
{
	struct ids_csync_line *l;

	if (arg == NULL)
		return NULL;
	if (ids_csync_line_new(IDS_CSYNC_COMMAND, word, &l) < 0) {
		ids_dlist_free(arg);
		return NULL;
	}
	if (ids_dlist_add_atom(l->args, NULL, sub) < 0 ||
	    ids_dlist_add_child(l->args, NULL, arg) < 0) {
		ids_csync_line_free(l);
		return NULL;
	}
	return l;
}

/* --- the peer's state ------------------------------------------------------ */

int
ids_sync_get_state(struct ids_sync_wire *w, const char *uniqueid, int flags, int records,
    struct ids_dlist **state)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	struct ids_csync_line **v;
	size_t n, i;
	int r, status, damaged;

	*state = NULL;
	if (kv == NULL || ids_dlist_add_atom(kv, "UNIQUEID", uniqueid) < 0 ||
	    ((flags & IDS_SYNC_REPAIR_VERIFY) && ids_dlist_add_num(kv, "VERIFY", 1) < 0) ||
	    (records && ids_dlist_add_num(kv, "RECORD", 1) < 0)) {
		ids_dlist_free(kv);
		return -ENOMEM;
	}
	if ((r = ids_sync_exchange(w, command("GET", "STATE", kv), &v, &n, &status,
	    &damaged)) < 0)
		return r;
	if (status == IDS_CSYNC_BAD)
		w->no_state = 1;
	if (status != IDS_CSYNC_OK) {
		ids_sync_lines_free(v, n);
		return ids_error(IDS_EINVAL, "GET STATE %s: the peer answered %s", uniqueid,
		    status == IDS_CSYNC_NO ? "NO" : "BAD");
	}
	for (i = 0; i < n && *state == NULL; i++) {
		const struct ids_dlist *st = ids_csync_arg(v[i], 0);

		if (strcmp(v[i]->word, "STATE") == 0 && st != NULL && st->type == IDS_DL_KVLIST &&
		    kv_str(st, "UNIQUEID") != NULL && strcmp(kv_str(st, "UNIQUEID"), uniqueid) == 0 &&
		    (*state = ids_dlist_copy(st)) == NULL)
			r = -ENOMEM;
	}
	ids_sync_lines_free(v, n);
	return r;
}

int
ids_sync_fetchguid(struct ids_sync_wire *w, const char *guid, const char *hint, char *name,
    size_t size)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	struct ids_csync_line **v;
	size_t n, i;
	int r, status, damaged, found = 0;

	if (kv == NULL || ids_dlist_add_atom(kv, "GUID", guid) < 0 ||
	    (hint != NULL && ids_dlist_add_atom(kv, "UNIQUEID", hint) < 0)) {
		ids_dlist_free(kv);
		return -ENOMEM;
	}
	if ((r = ids_sync_exchange(w, command("GET", "FETCHGUID", kv), &v, &n, &status,
	    &damaged)) < 0)
		return r;
	if (damaged)
		wlog(w, LOG_ERR, "GET FETCHGUID %s: the file sent is refused: %s", guid,
		    ids_errmsg(damaged));
	for (i = 0; i < n; i++) {
		const struct ids_dlist *f = ids_csync_arg(v[i], 0);

		if (found || status != IDS_CSYNC_OK || strcmp(v[i]->word, "MESSAGE") != 0 ||
		    f == NULL || f->type != IDS_DL_FILE || f->file == NULL ||
		    f->file->name == NULL || strcmp(f->file->guid, guid) != 0) {
			if (f != NULL)
				ids_csync_unlink_files(f);
			continue;
		}
		snprintf(name, size, "%s", f->file->name);
		found = 1;
	}
	ids_sync_lines_free(v, n);
	if (!found && !damaged)
		wlog(w, LOG_ERR, "GET FETCHGUID %s: the peer has no intact file of it", guid);
	return found;
}

/* --- one folder ----------------------------------------------------------- */

/* The number of uids in the "* REPAIRED (uids)" lines of an answer. */
static size_t
repaired_uids(struct ids_csync_line *const *v, size_t n)
{
	const struct ids_dlist *x;
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (strcmp(v[i]->word, "REPAIRED") == 0 && ids_csync_arg(v[i], 0) != NULL)
			for (x = ids_csync_arg(v[i], 0)->head; x != NULL; x = x->next)
				k++;
	return k;
}

/* APPLY REPAIR of one GUID the peer's folder (its STATE st) lacks, from a file here. */
static int
send_repair(struct ids_sync_wire *w, const char *uniqueid, const struct ids_dlist *st,
    const char *guid, struct ids_sync_repair_counts *c)
{
	const char *pname = kv_str(st, "MBOXNAME"), *part = kv_str(st, "PARTITION");
	struct ids_mailbox *mb;
	struct ids_dlist *kv, *files, *node;
	struct ids_csync_line **v;
	char fname[32];
	uint64_t size = 0;
	uint32_t uid = 0;
	size_t n, k;
	int r, status, damaged;

	if ((r = ids_repl_find_guid(w->s, uniqueid, guid, &mb, &uid, &size)) <= 0) {
		c->failed++;
		wlog(w, LOG_ERR, "push: %s (%s): GUID %s is missing on the peer and %s",
		    pname ? pname : "?", uniqueid, guid, r == 0 ?
		    "no intact file of it is here" : ids_errmsg(r));
		return 0;
	}
	snprintf(fname, sizeof(fname), "%u.", uid);
	kv = ids_dlist_new_kvlist();
	node = ids_csync_file_node(part ? part : mb->entry.partition, guid, size, mb->datafd,
	    fname);
	if (kv == NULL || node == NULL || ids_dlist_add_atom(kv, "UNIQUEID", uniqueid) < 0 ||
	    (pname != NULL && ids_dlist_add_atom(kv, "MBOXNAME", pname) < 0) ||
	    ids_dlist_add_list(kv, "MESSAGE", &files) < 0 ||
	    ids_dlist_add_child(files, NULL, node) < 0) {
		ids_dlist_free(node);
		ids_dlist_free(kv);
		ids_mailbox_close(mb);
		return -ENOMEM;
	}
	/* the folder stays locked (shared) until the file is sent */
	r = ids_sync_exchange(w, command("APPLY", "REPAIR", kv), &v, &n, &status, &damaged);
	ids_mailbox_close(mb);
	if (r < 0)
		return r;
	if (status != IDS_CSYNC_OK) {
		c->failed++;
		wlog(w, LOG_ERR, "push: %s (%s): APPLY REPAIR of GUID %s: the peer answered %s",
		    pname ? pname : "?", uniqueid, guid, status == IDS_CSYNC_NO ? "NO" : "BAD");
	} else if ((k = repaired_uids(v, n)) > 0) {
		c->there += k;
		wlog(w, LOG_NOTICE, "push: %s (%s): %zu file(s) of GUID %s put back on the peer",
		    pname ? pname : "?", uniqueid, k, guid);
	}
	ids_sync_lines_free(v, n);
	return 0;
}

/* The peer's MISSING files (its folder's state st) sent from here, one APPLY REPAIR each. */
static int
heal_there(struct ids_sync_wire *w, const char *uniqueid, const struct ids_dlist *st,
    const struct ids_dlist *missing, struct ids_sync_repair_counts *c)
{
	const struct ids_dlist *g;
	int r = 0;

	for (g = missing && missing->type == IDS_DL_LIST ? missing->head : NULL;
	    g != NULL && r == 0; g = g->next)
		if (ids_dlist_cstr(g) != NULL)
			r = send_repair(w, uniqueid, st, ids_dlist_cstr(g), c);
	return r;
}

/* The files missing or damaged here fetched from the peer and put back. */
static int
heal_here(struct ids_sync_wire *w, const char *uniqueid, const char *name, int verify,
    struct ids_sync_repair_counts *c)
{
	struct ids_repl_damage d;
	char staged[256];
	size_t k, j, placed;
	int r, got;

	if ((r = ids_repl_damaged(w->s, name, verify, &d)) < 0) {
		c->failed++;
		wlog(w, LOG_ERR, "%s (%s): %s", name, uniqueid, ids_errmsg(r));
		return 0;
	}
	for (k = 0; k < d.n; k++) {
		for (j = 0; j < k && strcmp(d.v[j].guid, d.v[k].guid) != 0; j++)
			;
		if (j < k)
			continue;	/* one fetch puts back every uid of the GUID */
		if ((got = ids_sync_fetchguid(w, d.v[k].guid, uniqueid, staged, sizeof(staged))) < 0) {
			ids_repl_damage_release(&d);
			return got;
		}
		if (got == 0) {
			c->failed++;
			wlog(w, LOG_ERR, "%s (%s): uid %u: missing or damaged here, and the peer "
			    "sent no intact copy", name, uniqueid, d.v[k].uid);
			continue;
		}
		placed = 0;
		r = ids_repl_repair_place(w->s, uniqueid, NULL, d.v[k].guid, w->s->stagefd, staged,
		    NULL, &placed);
		unlinkat(w->s->stagefd, staged, 0);
		if (r < 0) {
			c->failed++;
			wlog(w, LOG_ERR, "%s (%s): GUID %s not put back: %s", name, uniqueid,
			    d.v[k].guid, ids_errmsg(r));
			continue;
		}
		c->here += placed;
	}
	ids_repl_damage_release(&d);
	return 0;
}

/* 1 when the LIST l holds s. */
static int
in_list(const struct ids_dlist *l, const char *s)
{
	const struct ids_dlist *x;

	for (x = l->head; x != NULL; x = x->next)
		if (ids_dlist_cstr(x) != NULL && strcmp(ids_dlist_cstr(x), s) == 0)
			return 1;
	return 0;
}

/*
 * One folder, its peer state st and MISSING list in hand; here: 0 when
 * nothing is missing here (known from our own state), so the folder is
 * not opened again.
 */
static int
repair_one(struct ids_sync_wire *w, const char *uniqueid, const struct ids_dlist *st,
    const struct ids_dlist *missing, int here, int flags, struct ids_sync_repair_counts *c)
{
	struct ids_mbentry e;
	int r = 0;

	if (!here && (!(flags & IDS_SYNC_REPAIR_PUSH) || missing == NULL ||
	    missing->head == NULL))
		return 0;
	ids_mbentry_init(&e);
	if (ids_mboxlist_lookup_id(w->s->mbl, uniqueid, &e) == 0 && !ids_mbentry_is_tombstone(&e)) {
		if (flags & IDS_SYNC_REPAIR_PUSH)
			r = heal_there(w, uniqueid, st, missing, c);
		if (r == 0 && here)
			r = heal_here(w, uniqueid, e.name, flags & IDS_SYNC_REPAIR_VERIFY, c);
	}
	ids_mbentry_release(&e);
	return r;
}

int
ids_sync_repair_known(struct ids_sync_wire *w, const char *uniqueid, const struct ids_dlist *st,
    const struct ids_dlist *missing, int here, int flags, struct ids_sync_repair_counts *c)
{
	return repair_one(w, uniqueid, st, missing, here, flags, c);
}

/*
 * GET STATE %(UNIQUEID (ids live here) [VERIFY 1]): the answer's lines
 * and, in *asked, the uniqueids asked (NULL when none is live here).
 * 1 when the peer refused (logged), 0, or the code that lost the session.
 */
static int
ask_states(struct ids_sync_wire *w, const char *const *ids, size_t n, int flags,
    struct ids_dlist **asked, struct ids_csync_line ***v, size_t *nv,
    struct ids_sync_repair_counts *c)
{
	struct ids_dlist *kv, *list = NULL;
	struct ids_mbentry e;
	size_t i;
	int r = 0, status, damaged, live;

	*asked = NULL;
	*v = NULL;
	*nv = 0;
	if ((kv = ids_dlist_new_kvlist()) == NULL || ids_dlist_add_list(kv, "UNIQUEID", &list) < 0 ||
	    ((flags & IDS_SYNC_REPAIR_VERIFY) && ids_dlist_add_num(kv, "VERIFY", 1) < 0))
		r = -ENOMEM;
	for (i = 0; r == 0 && i < n; i++) {
		ids_mbentry_init(&e);
		live = ids_mboxlist_lookup_id(w->s->mbl, ids[i], &e) == 0 &&
		    !ids_mbentry_is_tombstone(&e);
		ids_mbentry_release(&e);
		if (live && ids_dlist_add_atom(list, NULL, ids[i]) < 0)
			r = -ENOMEM;
	}
	if (r == 0 && list->head != NULL && (*asked = ids_dlist_copy(list)) == NULL)
		r = -ENOMEM;
	if (r < 0 || *asked == NULL) {
		ids_dlist_free(kv);	/* none live here (deleted by this session): 0 */
		return r;
	}
	if ((r = ids_sync_exchange(w, command("GET", "STATE", kv), v, nv, &status, &damaged)) < 0)
		return r;
	if (status == IDS_CSYNC_OK)
		return 0;
	if (status == IDS_CSYNC_BAD) {
		w->no_state = 1;
		wlog(w, LOG_WARNING, "the peer does not answer GET STATE: no file is repaired "
		    "in this session");
	} else {
		c->failed++;
		wlog(w, LOG_ERR, "GET STATE: the peer answered NO");
	}
	return 1;
}

int
ids_sync_repair_set(struct ids_sync_wire *w, const char *const *ids, size_t n, int flags,
    struct ids_sync_repair_counts *c)
{
	struct ids_dlist *asked = NULL;
	const struct ids_dlist *cur;
	struct ids_csync_line **v = NULL;
	size_t k, nv = 0;
	int r;

	if (w->no_state || n == 0)
		return 0;
	/* one GET STATE for the set: a round trip per folder would slow a no-op resync */
	if ((r = ask_states(w, ids, n, flags, &asked, &v, &nv, c)) != 0 || asked == NULL) {
		ids_dlist_free(asked);
		ids_sync_lines_free(v, nv);
		return r < 0 ? r : 0;
	}
	/*
	 * the peer answers in the order asked, a folder live nowhere there
	 * left out: a cursor over the asked ids finds each in one pass
	 */
	cur = asked->head;
	for (k = 0; r == 0 && k < nv; k++) {
		const struct ids_dlist *st = ids_csync_arg(v[k], 0);
		const char *id = kv_str(st, "UNIQUEID");

		if (strcmp(v[k]->word, "STATE") != 0 || id == NULL)
			continue;
		while (cur != NULL && strcmp(ids_dlist_cstr(cur) ?: "", id) != 0)
			cur = cur->next;
		if (cur == NULL) {
			cur = asked->head;	/* out of order: one we asked for at all? */
			if (!in_list(asked, id))
				continue;
		} else {
			cur = cur->next;
		}
		r = repair_one(w, id, st, ids_dlist_get(st, "MISSING"), 1, flags, c);
	}
	ids_dlist_free(asked);
	ids_sync_lines_free(v, nv);
	return r;
}

/* --- a session of its own ------------------------------------------------------ */

struct ids_sync_peer {
	struct ids_sync_wire w;
	struct ids_repl_session s;
	struct ids_replica_opts ropts;
	int fd;
	unsigned timeout;
};

static ssize_t
peer_read(void *rock, void *buf, size_t len)
{
	struct ids_sync_peer *p = rock;

	return ids_csync_read_timed(p->fd, p->timeout, buf, len);
}

int
ids_sync_peer_open(struct ids_mboxlist *mbl, int peer_out, int peer_in, unsigned timeout,
    void (*log)(void *rock, int prio, const char *msg), void *rock, struct ids_sync_peer **pp)
{
	struct ids_sync_peer *p = calloc(1, sizeof(*p));
	struct ids_csync_line *l;
	int r;

	*pp = NULL;
	if (p == NULL)
		return -ENOMEM;
	p->fd = peer_out;
	p->timeout = timeout;
	p->ropts.log = log;
	p->ropts.rock = rock;
	p->w.s = &p->s;
	p->w.log = log;
	p->w.rock = rock;
	if ((r = ids_repl_session_init(&p->s, mbl, &p->ropts)) < 0 ||
	    (r = ids_csync_in_new_fn(peer_read, p, &p->w.in)) < 0 ||
	    (r = ids_csync_out_new(peer_in, IDS_CSYNC_CLIENT, &p->w.out)) < 0)
		goto fail;
	ids_csync_in_set_staging(p->w.in, p->s.stagefd);
	for (;;) {
		if ((r = ids_csync_read(p->w.in, &l)) <= 0) {
			r = r == 0 ? ids_error(IDS_ETRUNC, "the peer sent no banner") : r;
			goto fail;
		}
		if (l->kind == IDS_CSYNC_UNTAGGED && strcmp(l->word, "OK") == 0) {
			int idspool = l->text != NULL && memmem(l->text, l->textlen, "idspool-", 8);

			ids_csync_line_free(l);
			if (!idspool) {
				r = ids_error(IDS_EINVAL, "the peer is not idspool (its banner does "
				    "not name it): it cannot report its files' state");
				goto fail;
			}
			*pp = p;
			return 0;
		}
		if (l->kind != IDS_CSYNC_UNTAGGED || strcmp(l->word, "NO") == 0 ||
		    strcmp(l->word, "BAD") == 0 || strcmp(l->word, "BYE") == 0) {
			ids_csync_line_free(l);
			r = ids_error(IDS_EINVAL, "the peer refused the session");
			goto fail;
		}
		ids_csync_line_free(l);
	}
fail:
	ids_sync_peer_close(p);
	return r;
}

int
ids_sync_peer_close(struct ids_sync_peer *p)
{
	struct ids_csync_line **v, *l;
	size_t n;
	int r = 0, status, damaged;

	if (p == NULL)
		return 0;
	if (p->w.out != NULL && p->w.in != NULL && !ids_csync_in_lost(p->w.in) &&
	    ids_csync_line_new(IDS_CSYNC_COMMAND, "EXIT", &l) == 0 &&
	    (r = ids_sync_exchange(&p->w, l, &v, &n, &status, &damaged)) == 0)
		ids_sync_lines_free(v, n);
	ids_csync_out_free(p->w.out);
	ids_csync_in_free(p->w.in);
	ids_repl_session_release(&p->s);
	free(p);
	return r;
}

struct ids_sync_wire *
ids_sync_peer_wire(struct ids_sync_peer *p)
{
	return &p->w;
}

/* A growing array of kvlists. */
struct kvs {
	struct ids_dlist **v;
	size_t n, a;
};

static void
kvs_free(struct kvs *k)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		ids_dlist_free(k->v[i]);
	free(k->v);
	memset(k, 0, sizeof(*k));
}

/* "GET sub [arg]" with its answer. */
static int
get(struct ids_sync_wire *w, const char *sub, const char *arg, struct ids_csync_line ***v,
    size_t *n, int *status)
{
	struct ids_csync_line *l;
	int damaged;

	if (ids_csync_line_new(IDS_CSYNC_COMMAND, "GET", &l) < 0)
		return -ENOMEM;
	if (ids_dlist_add_atom(l->args, NULL, sub) < 0 ||
	    (arg != NULL && ids_dlist_add_atom(l->args, NULL, arg) < 0)) {
		ids_csync_line_free(l);
		return -ENOMEM;
	}
	return ids_sync_exchange(w, l, v, n, status, &damaged);
}

/* The MAILBOX kvlists of GET USER userid, added to out. */
static int
user_folders(struct ids_sync_wire *w, const char *userid, struct kvs *out)
{
	struct ids_csync_line **v;
	size_t n, k;
	int r, status;

	if ((r = get(w, "USER", userid, &v, &n, &status)) < 0)
		return r;
	for (k = 0; r == 0 && status == IDS_CSYNC_OK && k < n; k++) {
		const struct ids_dlist *kv = ids_csync_arg(v[k], 0);

		if (strcmp(v[k]->word, "MAILBOX") != 0 || kv_str(kv, "UNIQUEID") == NULL ||
		    kv_str(kv, "MBOXNAME") == NULL)
			continue;
		if (out->n == out->a) {
			size_t a = out->a ? 2 * out->a : 16;
			struct ids_dlist **nv = realloc(out->v, a * sizeof(*nv));

			if (nv == NULL) {
				r = -ENOMEM;
				break;
			}
			out->v = nv;
			out->a = a;
		}
		if ((out->v[out->n] = ids_dlist_copy(kv)) == NULL)
			r = -ENOMEM;
		else
			out->n++;
	}
	ids_sync_lines_free(v, n);
	return r;
}

/* GET USER of each user of GET USERS: the MAILBOX kvlists. */
int
ids_sync_peer_folders(struct ids_sync_wire *w, struct ids_dlist ***vp, size_t *np)
{
	struct ids_csync_line **users;
	struct kvs out = { NULL, 0, 0 };
	const struct ids_dlist *x;
	size_t nu, i;
	int r, status;

	*vp = NULL;
	*np = 0;
	if ((r = get(w, "USERS", NULL, &users, &nu, &status)) < 0)
		return r;
	if (status != IDS_CSYNC_OK)
		r = ids_error(IDS_EINVAL, "GET USERS: the peer refused it");
	for (i = 0; r == 0 && i < nu; i++) {
		const struct ids_dlist *list = ids_csync_arg(users[i], 0);

		if (strcmp(users[i]->word, "USERS") != 0 || list == NULL)
			continue;
		for (x = list->head; r == 0 && x != NULL; x = x->next)
			if (ids_dlist_cstr(x) != NULL)
				r = user_folders(w, ids_dlist_cstr(x), &out);
	}
	ids_sync_lines_free(users, nu);
	if (r < 0) {
		kvs_free(&out);
		return r;
	}
	*vp = out.v;
	*np = out.n;
	return 0;
}
