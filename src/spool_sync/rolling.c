/*
 * rolling.c - spool_sync -R (rolling replication of one channel),
 * --drain, --unfence and the per-channel part of -s.
 *
 * -R reads its channel's journal from its cursor, turns a batch of
 * entries into folder names (ids_sync_batch_names), and runs one push
 * session of those folders with a new peer process; the cursor moves
 * past the batch only when that session ended with the peer's OK to
 * EXIT.  A session lost for any reason (the peer's death, an I/O
 * error, a read or write timeout) is retried with exponential backoff
 * (sync_reconnect_minwait .. sync_reconnect_maxwait); the process
 * never exits for it.  A folder the peer refused gets a failure record
 * and is retried on its own backoff, while the cursor moves on.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "mboxlist.h"
#include "sync/client.h"
#include "journal.h"
#include "sync/rolling.h"
#include "tool.h"
#include "rolling.h"

#define BATCH_MAX 1000		/* journal entries per session */
#define BARRIER_MS 5000		/* wait for a writer whose entry was read */

int rolling_verbose;
static volatile sig_atomic_t stopping;
static volatile pid_t peer_pid;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
	if (peer_pid > 0)
		kill(peer_pid, SIGTERM);	/* the session in hand is lost, not acknowledged */
}

/* Sleeps seconds, or less when SIGTERM comes. */
static void
nap(double seconds)
{
	struct timespec ts;

	if (stopping || seconds <= 0)
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);	/* EINTR: stopping is set */
}

/* --- one session ---------------------------------------------------------- */

/* A refusal the client reported (opts->refused): what it named, its code and reason. */
struct refusal {
	char *name;
	const char *code;	/* IDS_SYNC_FAIL_* */
	char *why;
};

struct capture {
	struct refusal *v;
	size_t n;
	char *first;		/* the first error logged, for a refusal that named nothing */
};

static void
capture_release(struct capture *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->v[i].name);
		free(c->v[i].why);
	}
	free(c->v);
	free(c->first);
	memset(c, 0, sizeof(*c));
}

/* The client's log: syslog, stderr with -v; the first error kept (no matching by its text). */
static void
capture_log(void *rock, int prio, const char *msg)
{
	struct capture *c = rock;

	syslog(prio, "spool_sync: %s", msg);
	if (rolling_verbose)
		fprintf(stderr, "spool_sync: %s\n", msg);
	if (prio <= LOG_ERR && c != NULL && c->first == NULL)
		c->first = strdup(msg);
}

/* Each refusal, as the client reports it: by the name it concerns, with a code. */
static void
capture_refusal(void *rock, const struct ids_sync_refusal *x)
{
	struct capture *c = rock;
	struct refusal *nv;

	if (c == NULL || x->name == NULL)
		return;
	if ((nv = realloc(c->v, (c->n + 1) * sizeof(*nv))) == NULL)
		return;
	c->v = nv;
	nv[c->n].name = strdup(x->name);
	nv[c->n].code = x->code == IDS_SYNC_REFUSED_LOCAL ? IDS_SYNC_FAIL_LOCAL :
	    x->code == IDS_SYNC_REFUSED_META ? IDS_SYNC_FAIL_META : IDS_SYNC_FAIL_REFUSED;
	nv[c->n].why = strdup(x->reason ? x->reason : "");
	if (nv[c->n].name == NULL || nv[c->n].why == NULL) {
		free(nv[c->n].name);
		free(nv[c->n].why);
		return;
	}
	c->n++;
}

static void
trace(void *rock, int dir, const char *line, size_t len)
{
	(void)rock;
	if (rolling_verbose > 1)
		fprintf(stderr, "spool_sync: %c %.*s\n", dir, (int)len, line);
}

/*
 * Runs one session with a new peer process on a socket pair (so that
 * writes, too, time out: tool_start_peer).  Returns the session's
 * result; the peer is ended and waited for.
 */
static int
session(struct ids_mboxlist *mbl, struct ids_sync_client_opts *o, char **peer,
    struct ids_sync_client_report *rep, struct capture *cap)
{
	int in, out, r, st;
	pid_t pid;

	static char name[1024];
	size_t len = 0, i;

	/* the peer command as one line, for the findings (as the one-shot client names it) */
	name[0] = '\0';
	for (i = 0; peer[i] != NULL && len < sizeof(name) - 1; i++)
		len += (size_t)snprintf(name + len, sizeof(name) - len, "%s%s", i ? " " : "", peer[i]);
	o->peer = name;
	memset(rep, 0, sizeof(*rep));
	o->log = capture_log;
	o->refused = capture_refusal;
	o->rock = cap;
	o->trace = trace;
	if ((pid = tool_start_peer(peer, o->timeout, &out, &in)) < 0)
		return ids_error(-errno, "%s: %s", peer[0], strerror(errno));
	peer_pid = pid;
	if (stopping)
		kill(pid, SIGTERM);
	r = ids_sync_client_session(mbl, out, in, o, rep);
	if (r == 0 && stopping)
		r = ids_error(-EINTR, "stopped by SIGTERM");
	shutdown(in, SHUT_RDWR);
	close(in);
	close(out);
	if (r < 0)
		kill(pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	peer_pid = 0;
	return r;
}

/* --- the channel's state ------------------------------------------------- */

struct chan {
	const struct ids_config *cfg;
	const char *channel;
	const char *shown;	/* the channel as printed: its name, or "(default)" */
	struct ids_mboxlist *mbl;
	struct ids_sync_client_opts o;
	char **peer;
	double minwait, maxwait, interval;
	uint64_t cursor;
	int64_t last_ok;
	struct ids_sync_failures fail;
	unsigned link_failures;
};

/*
 * The first refusal of item it in cap, or NULL: a user's data by its
 * code (a shared folder may bear a userid's name), a folder by its name.
 */
static const struct refusal *
refused(const struct capture *cap, const struct ids_sync_item *it)
{
	size_t i;

	for (i = 0; i < cap->n; i++)
		if (strcmp(cap->v[i].name, it->name) == 0 &&
		    (strcmp(cap->v[i].code, IDS_SYNC_FAIL_META) == 0) == it->user)
			return &cap->v[i];
	return NULL;
}

/* Adds the record f to set under the name its folder has now (by its key). */
static int
add_retry(struct chan *c, struct ids_sync_items *set, const struct ids_sync_failure *f)
{
	char *name = NULL;
	int r;

	if ((r = ids_sync_key_name(c->mbl, f->key, &name)) < 0)
		return r;
	r = ids_sync_items_add(set, name != NULL ? name : f->name, f->key, f->key[0] == '@');
	free(name);
	return r;
}

/*
 * One batch: the journal from the cursor and the failure records due
 * (all of them with all_due); *empty when the journal had nothing new.
 * Returns 1 when the batch was acknowledged, 0 when it is to be retried
 * after the session was lost (the reason logged), negative for a local
 * error.
 */
static int
batch(struct chan *c, int all_due, int *empty)
{
	struct ids_journal_batch b;
	struct ids_sync_items items, set, busy;
	struct ids_sync_names folders, users;
	struct ids_sync_client_report rep;
	struct capture cap = { NULL, 0, NULL };
	int64_t now = (int64_t)time(NULL);
	size_t i, matched = 0;
	int r, changed = 0;

	*empty = 0;
	memset(&items, 0, sizeof(items));
	memset(&set, 0, sizeof(set));
	memset(&busy, 0, sizeof(busy));
	memset(&folders, 0, sizeof(folders));
	memset(&users, 0, sizeof(users));
	if ((r = ids_journal_read(c->cfg, c->cursor, BATCH_MAX, &b)) < 0)
		return r;
	*empty = b.end == c->cursor;	/* nothing new in the journal */
	if ((r = ids_sync_batch_names(c->mbl, &b, BARRIER_MS, &items, &busy)) < 0) {
		ids_journal_batch_release(&b);
		return r;
	}
	/* a folder still being written is retried on its own, as a failing one is */
	for (i = 0; i < busy.n && r == 0; i++) {
		if (ids_sync_items_find(&items, busy.v[i].name) != NULL)
			continue;
		r = ids_sync_failure_note(&c->fail, busy.v[i].key, busy.v[i].name,
		    IDS_SYNC_FAIL_BUSY, "a writer still holds its lock", now, c->minwait, c->maxwait);
		changed = 1;
	}
	for (i = 0; i < items.n && r == 0; i++) {
		struct ids_sync_failure *f = ids_sync_failure_find(&c->fail, items.v[i].key);

		/* a failing folder waits for its own retry; its record keeps it */
		if (f == NULL || f->next <= now || all_due)
			r = ids_sync_items_add(&set, items.v[i].name, items.v[i].key, items.v[i].user);
	}
	for (i = 0; i < c->fail.n && r == 0; i++)
		if (c->fail.v[i].next <= now || all_due)
			r = add_retry(c, &set, &c->fail.v[i]);
	if (r < 0)
		goto out;
	if (set.n == 0) {
		if (changed)
			r = ids_sync_failures_write(c->cfg, c->channel, &c->fail);
		if (r == 0 && b.end != c->cursor && (r = ids_journal_cursor_write(c->cfg,
		    c->channel, b.end, c->last_ok)) == 0)
			c->cursor = b.end;
		r = r < 0 ? r : 1;
		goto out;
	}
	for (i = 0; i < set.n && r == 0; i++)
		r = ids_sync_names_add(set.v[i].user ? &users : &folders, set.v[i].name);
	if (r < 0)
		goto out;
	c->o.folders = (const char *const *)folders.v;
	c->o.nfolders = folders.n;
	c->o.meta_users = (const char *const *)users.v;
	c->o.nmeta_users = users.n;
	c->o.all = 0;
	r = session(c->mbl, &c->o, c->peer, &rep, &cap);
	c->o.meta_users = NULL;
	c->o.nmeta_users = 0;
	if (r < 0) {
		c->link_failures++;
		syslog(LOG_WARNING, "spool_sync: %s: session lost: %s; retrying in %.1f s", c->shown,
		    ids_errmsg(r), ids_sync_backoff(c->minwait, c->maxwait, c->link_failures));
		if (rolling_verbose)
			fprintf(stderr, "spool_sync: %s: session lost: %s\n", c->shown, ids_errmsg(r));
		r = 0;
		goto out;
	}
	c->link_failures = 0;
	/*
	 * each key's outcome, once (a folder may be named twice: its old and
	 * new names): refused under any of its names (recorded, under the
	 * first), or carried (its record goes)
	 */
	for (i = 0; i < set.n && r == 0; i++) {
		const struct refusal *x = NULL;
		size_t j;

		for (j = 0; j < i && strcmp(set.v[j].key, set.v[i].key) != 0; j++)
			;
		if (j < i)
			continue;	/* this key's outcome is done */
		for (j = i; j < set.n && x == NULL; j++)
			if (strcmp(set.v[j].key, set.v[i].key) == 0)
				x = refused(&cap, &set.v[j]);
		if (x != NULL) {
			matched++;
			r = ids_sync_failure_note(&c->fail, set.v[i].key, set.v[i].name, x->code,
			    x->why, now, c->minwait, c->maxwait);
			changed = 1;
		} else if (ids_sync_failure_drop(&c->fail, set.v[i].key)) {
			changed = 1;
		}
	}
	/* refusals that named no item of the set: every item of it is retried */
	if (r == 0 && rep.failed > 0 && matched == 0)
		for (i = 0; i < set.n && r == 0; i++, changed = 1)
			r = ids_sync_failure_note(&c->fail, set.v[i].key, set.v[i].name,
			    IDS_SYNC_FAIL_SESSION, cap.n > 0 ? cap.v[0].why : cap.first ? cap.first :
			    "refused", now, c->minwait, c->maxwait);
	/* the failure records before the cursor that no longer carries their changes */
	if (r == 0 && changed)
		r = ids_sync_failures_write(c->cfg, c->channel, &c->fail);
	if (r == 0)
		r = ids_journal_cursor_write(c->cfg, c->channel, b.end, now);
	if (r == 0) {
		c->cursor = b.end;
		c->last_ok = now;
		syslog(LOG_INFO, "spool_sync: %s: %zu folder(s) and %zu user(s) pushed, %zu applied, "
		    "%zu failing", c->shown, folders.n, users.n, rep.applied, c->fail.n);
		if (rolling_verbose)
			fprintf(stderr, "spool_sync: %s: %zu folder(s) and %zu user(s) pushed, "
			    "%zu applied, %zu failing\n", c->shown, folders.n, users.n, rep.applied,
			    c->fail.n);
		r = ids_journal_compact(c->cfg);
		r = r < 0 ? r : 1;
	}
out:
	capture_release(&cap);
	ids_sync_items_release(&items);
	ids_sync_items_release(&set);
	ids_sync_items_release(&busy);
	ids_sync_names_release(&folders);
	ids_sync_names_release(&users);
	ids_journal_batch_release(&b);
	return r;
}

static int
chan_open(struct chan *c, const struct ids_config *cfg, const char *channel,
    const struct ids_sync_client_opts *base, char **peer)
{
	int r;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->channel = channel;
	c->shown = *channel ? channel : "(default)";
	c->o = *base;
	c->peer = peer;
	if (!ids_journal_enabled(cfg)) {
		fprintf(stderr, "spool_sync: %s: sync_log is not set: there is no change journal\n",
		    cfg->file);
		return IDS_EXIT_ENV;
	}
	if ((r = ids_journal_channel_check(cfg, channel)) < 0 ||
	    (r = ids_journal_duration(cfg, "sync_reconnect_minwait", 1, &c->minwait)) < 0 ||
	    (r = ids_journal_duration(cfg, "sync_reconnect_maxwait", 60, &c->maxwait)) < 0 ||
	    (r = ids_journal_duration(cfg, "sync_repeat_interval", 1, &c->interval)) < 0 ||
	    (r = ids_journal_cursor_read(cfg, channel, &c->cursor, &c->last_ok)) < 0 ||
	    (r = ids_sync_failures_read(cfg, channel, &c->fail)) < 0) {
		tool_error(r, *channel ? channel : cfg->file);
		return tool_exit_status(r);
	}
	if (c->minwait <= 0)
		c->minwait = 0.1;
	c->mbl = tool_open_mboxlist(cfg, IDS_MBOXLIST_CREATE);
	return 0;
}

static void
chan_close(struct chan *c)
{
	ids_sync_failures_release(&c->fail);
	if (c->mbl != NULL)
		ids_mboxlist_close(c->mbl);
}

static void
handle_term(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;	/* no SA_RESTART: sleeps end at once */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int
rolling_run(const struct ids_config *cfg, const char *channel,
    const struct ids_sync_client_opts *base, char **peer)
{
	struct chan c;
	int r, empty;

	if ((r = chan_open(&c, cfg, channel, base, peer)) != 0)
		return r;
	handle_term();
	syslog(LOG_INFO, "spool_sync: %s: rolling from journal position %llu", c.shown,
	    (unsigned long long)c.cursor);
	while (!stopping) {
		if ((r = batch(&c, 0, &empty)) < 0) {
			/* a local error (the journal, mailboxes.db): logged, retried */
			c.link_failures++;
			syslog(LOG_ERR, "spool_sync: %s: %s", c.shown, ids_errmsg(r));
			if (rolling_verbose)
				fprintf(stderr, "spool_sync: %s: %s\n", c.shown, ids_errmsg(r));
			nap(ids_sync_backoff(c.minwait, c.maxwait, c.link_failures));
		} else if (r == 0) {
			nap(ids_sync_backoff(c.minwait, c.maxwait, c.link_failures ? c.link_failures : 1));
		} else if (empty) {
			nap(c.interval);
		}
	}
	syslog(LOG_INFO, "spool_sync: %s: stopped at journal position %llu", c.shown,
	    (unsigned long long)c.cursor);
	chan_close(&c);
	return IDS_EXIT_OK;
}

/* --- drain ------------------------------------------------------------------ */

static int
drain_fail(struct chan *c, const char *why)
{
	int r = ids_journal_unfence(c->cfg);

	fprintf(stderr, "spool_sync: drain: %s: %s; %s\n", c->shown, why,
	    r < 0 ? "the fence could not be released (spool_sync --unfence)" :
	    "the fence is released");
	return IDS_EXIT_FAIL;
}

int
rolling_drain(const struct ids_config *cfg, const char *channel,
    const struct ids_sync_client_opts *base, char **peer)
{
	struct ids_sync_client_report rep;
	struct capture cap = { NULL, 0, NULL };
	struct chan c;
	char why[256], msg[512];
	int r, empty, fd, pass, rc;

	if ((r = chan_open(&c, cfg, channel, base, peer)) != 0)
		return r;
	handle_term();
	snprintf(why, sizeof(why), "spool_sync --drain --channel '%s', pid %ld, at %lld",
	    channel, (long)getpid(), (long long)time(NULL));
	if ((r = ids_journal_fence(cfg, why, &fd)) < 0) {
		tool_error(r, "fence");
		ids_journal_unfence(cfg);
		chan_close(&c);
		return tool_exit_status(r);
	}
	/* the journal up to its end: every change a writer reported */
	for (;;) {
		if (stopping) {
			rc = drain_fail(&c, "stopped by a signal");
			goto out;
		}
		if ((r = batch(&c, 1, &empty)) < 0) {
			rc = drain_fail(&c, ids_errmsg(r));
			goto out;
		}
		if (r == 0) {
			rc = drain_fail(&c, "the session with the peer was lost");
			goto out;
		}
		if (empty)
			break;
	}
	if (c.fail.n > 0) {
		snprintf(msg, sizeof(msg), "%zu folder(s) or user(s) refused by the peer, first "
		    "%s: %s", c.fail.n, c.fail.v[0].name, c.fail.v[0].reason);
		rc = drain_fail(&c, msg);
		goto out;
	}
	/* a full compare, then a second one that must find nothing to do */
	for (pass = 0; pass < 2; pass++) {
		c.o.folders = NULL;
		c.o.nfolders = 0;
		c.o.all = 1;
		r = session(c.mbl, &c.o, peer, &rep, &cap);
		if (r < 0) {
			capture_release(&cap);
			rc = drain_fail(&c, ids_errmsg(r));
			goto out;
		}
		if (rep.failed > 0) {
			snprintf(msg, sizeof(msg), "the full compare: %zu refusal(s)%s%s", rep.failed,
			    cap.first != NULL ? ", first " : "", cap.first != NULL ? cap.first : "");
			capture_release(&cap);
			rc = drain_fail(&c, msg);
			goto out;
		}
		capture_release(&cap);
		if (pass == 1 && (rep.applied || rep.renamed || rep.deleted || rep.kept)) {
			snprintf(msg, sizeof(msg), "the peer is not equal after the full compare "
			    "(%zu applied, %zu renamed, %zu deleted, %zu kept)", rep.applied,
			    rep.renamed, rep.deleted, rep.kept);
			rc = drain_fail(&c, msg);
			goto out;
		}
	}
	printf("drain: %s: the peer is equal (%zu folder(s) compared); writes stay fenced "
	    "until spool_sync --unfence\n", c.shown, rep.folders);
	syslog(LOG_NOTICE, "spool_sync: drain: %s: the peer is equal; writes fenced", c.shown);
	rc = IDS_EXIT_OK;
out:
	close(fd);
	chan_close(&c);
	return rc;
}

int
rolling_unfence(const struct ids_config *cfg)
{
	int r;

	if ((r = ids_journal_unfence(cfg)) < 0) {
		tool_error(r, "fence");
		return tool_exit_status(r);
	}
	syslog(LOG_NOTICE, "spool_sync: writes unfenced");
	return IDS_EXIT_OK;
}

/* --- status ----------------------------------------------------------------- */

static void
print_time(const char *label, int64_t t)
{
	char buf[64];
	time_t tt = (time_t)t;

	if (t == 0) {
		printf("  %s: never\n", label);
		return;
	}
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", gmtime(&tt));
	printf("  %s: %s\n", label, buf);
}

int
rolling_status(const struct ids_config *cfg, const char *channel, int json)
{
	struct ids_sync_channel_status st;
	char **ch, fence[512];
	size_t n, i, j;
	json_t *arr = NULL, *obj = NULL;
	int r, fenced;

	if (channel == NULL && !ids_journal_enabled(cfg))
		return IDS_EXIT_OK;
	if (json)
		obj = json_object();
	if ((r = ids_journal_channels(cfg, &ch, &n)) < 0) {
		json_decref(obj);
		tool_error(r, cfg->file);
		return tool_exit_status(r);
	}
	if ((fenced = ids_journal_fenced(cfg, fence, sizeof(fence))) < 0)
		fenced = 0;
	if (obj != NULL) {
		json_object_set_new(obj, "journal", json_boolean(ids_journal_enabled(cfg)));
		json_object_set_new(obj, "fenced", fenced ? json_string(fence) : json_null());
		arr = json_array();
	} else {
		printf("journal: %s\n", ids_journal_enabled(cfg) ? "on (sync_log)" : "off");
		printf("fence: %s\n", fenced ? fence : "none");
	}
	for (i = 0; i < n; i++) {
		if (channel != NULL && strcmp(channel, ch[i]) != 0)
			continue;
		if ((r = ids_sync_channel_status(cfg, ch[i], &st)) < 0) {
			tool_error(r, *ch[i] ? ch[i] : "(default)");
			continue;
		}
		if (obj != NULL) {
			json_t *f = json_array();

			for (j = 0; j < st.failures.n; j++) {
				const struct ids_sync_failure *x = &st.failures.v[j];

				json_array_append_new(f, json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:I}",
				    "folder", x->name, "key", x->key, "code", x->code,
				    "reason", x->reason, "attempts", (int)x->attempts,
				    "first", (json_int_t)x->first, "last", (json_int_t)x->last,
				    "next_retry", (json_int_t)x->next));
			}
			json_array_append_new(arr, json_pack("{s:s,s:I,s:I,s:I,s:o,s:o}",
			    "channel", ch[i], "lag", (json_int_t)st.lag,
			    "cursor", (json_int_t)st.cursor, "end", (json_int_t)st.end,
			    "last_success", st.last_ok ? json_integer(st.last_ok) : json_null(),
			    "failing", f));
		} else {
			printf("channel %s:\n", *ch[i] ? ch[i] : "(default)");
			printf("  lag: %zu journal entr%s\n", st.lag, st.lag == 1 ? "y" : "ies");
			print_time("last success", st.last_ok);
			printf("  failing folders: %zu\n", st.failures.n);
			for (j = 0; j < st.failures.n; j++) {
				const struct ids_sync_failure *x = &st.failures.v[j];
				time_t nx = (time_t)x->next;
				char buf[64];

				strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", gmtime(&nx));
				printf("    %s: %u attempt(s), next retry %s (%s): %s\n", x->name,
				    x->attempts, buf, x->code, x->reason);
			}
		}
		ids_sync_channel_status_release(&st);
	}
	if (obj != NULL) {
		json_object_set_new(obj, "channels", arr);
		json_dumpf(obj, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(obj);
	}
	ids_journal_channels_free(ch, n);
	return tool_status();
}
