/*
 * replica.c - one csync session on the replica side (replica.h): the
 * banner, the command loop, staging, the GET commands and the simple
 * APPLY commands.  The folder applies are in replica_apply.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "journal.h"
#include "lock.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "csync.h"
#include "replica.h"
#include "replica_int.h"
#include "sync.h"

void
ids_repl_log(struct ids_repl_session *s, int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (s->opts == NULL || s->opts->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->opts->log(s->opts->rock, prio, msg);
}

/* --- staging ----------------------------------------------------------- */

/* Removes the files of directory dirfd (no subdirectories are made there). */
static void
empty_dir(int dirfd)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dirfd);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* the dup shares dirfd's offset, which an earlier walk left at the end */
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
}

/* Makes (and empties) this session's staging directory under partition root. */
static int
staging_open(struct ids_repl_session *s)
{
	const struct ids_partition *part = ids_config_partition(s->cfg, NULL);
	int root, stage, r;

	if (part == NULL)
		return ids_error(IDS_EPARTITION, "no default partition to stage files in");
	snprintf(s->stagename, sizeof(s->stagename), "sync-%ld", (long)getpid());
	if ((r = ids_opendir_abs(part->path, &root)) < 0)
		return ids_error(r, "%s: %s", part->path, ids_strerror(r));
	r = ids_opendir_beneath(root, IDS_REPLICA_STAGE_DIR, IDS_OPEN_CREATE, &stage);
	close(root);
	if (r < 0)
		return r;
	if ((r = IDS_FAILPOINT("sync.stage_mkdir")) < 0 ||
	    (mkdirat(stage, s->stagename, 0700) < 0 && errno != EEXIST && (r = -errno) < 0)) {
		close(stage);
		return r;
	}
	r = ids_opendir_beneath(stage, s->stagename, 0, &s->stagefd);
	s->stageparent = stage;
	if (r < 0)
		return r;
	empty_dir(s->stagefd);
	snprintf(s->stagepath, sizeof(s->stagepath), "%s/%s/%s", part->path,
	    IDS_REPLICA_STAGE_DIR, s->stagename);
	return 0;
}

static void
staging_close(struct ids_repl_session *s)
{
	if (s->stagefd >= 0) {
		empty_dir(s->stagefd);
		close(s->stagefd);
		unlinkat(s->stageparent, s->stagename, AT_REMOVEDIR);
	}
	if (s->stageparent >= 0)
		close(s->stageparent);
	s->stagefd = s->stageparent = -1;
}

/* A staging directory "sync-<pid>" whose process is gone. */
static int
clean_one(int stage, const char *name)
{
	char *end;
	long pid;
	int fd;

	if (strncmp(name, "sync-", 5) != 0)
		return 0;
	pid = strtol(name + 5, &end, 10);
	if (*end != '\0' || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
		return 0;
	if (ids_opendir_beneath(stage, name, 0, &fd) == 0) {
		empty_dir(fd);
		close(fd);
	}
	unlinkat(stage, name, AT_REMOVEDIR);
	return 0;
}

int
ids_replica_clean_staging(const struct ids_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->npartitions; i++) {
		int root, stage;
		DIR *d;
		struct dirent *de;

		if (ids_opendir_abs(cfg->partitions[i].path, &root) < 0)
			continue;
		if (ids_opendir_beneath(root, IDS_REPLICA_STAGE_DIR, 0, &stage) < 0) {
			close(root);
			continue;
		}
		close(root);
		if ((d = fdopendir(dup(stage))) != NULL) {
			rewinddir(d);
			while ((de = readdir(d)) != NULL)
				clean_one(stage, de->d_name);
			closedir(d);
		}
		close(stage);
	}
	return 0;
}

/* --- files the session holds: staged, or found in local folders -------- */

/* 40 lower-case hex digits into 20 bytes; -1 when guid is not that. */
static int
guid_bin(const char *guid, uint8_t out[20])
{
	size_t i;

	for (i = 0; i < 40; i++) {
		int c = guid[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return guid[40] == '\0' ? 0 : -1;
}

static size_t
have_hash(const uint8_t guid[20], size_t nslot)
{
	uint64_t h;

	memcpy(&h, guid, sizeof(h));	/* a SHA-1: its bytes are already well spread */
	return (size_t)(h & (nslot - 1));
}

/* The slot of guid: its entry, or the free slot where it would go. */
static uint32_t *
have_slot(struct ids_repl_session *s, const uint8_t guid[20])
{
	size_t i = have_hash(guid, s->nslot);

	while (s->hslot[i] != 0 && memcmp(s->have[s->hslot[i] - 1].guid, guid, 20) != 0)
		i = (i + 1) & (s->nslot - 1);
	return &s->hslot[i];
}

const char *
ids_repl_have(struct ids_repl_session *s, const char *guid)
{
	const struct ids_repl_have *h;
	uint8_t bin[20];
	uint32_t *slot;

	if (s->nhave == 0 || guid_bin(guid, bin) < 0 || *(slot = have_slot(s, bin)) == 0)
		return NULL;
	h = &s->have[*slot - 1];
	if (h->path != NULL)
		return h->path;
	if ((size_t)snprintf(s->havepath, sizeof(s->havepath), "%s/%s.%u", s->stagepath, guid,
	    h->n) >= sizeof(s->havepath))
		return NULL;
	return s->havepath;
}

/* Doubles the slots, placing every entry again. */
static int
have_grow(struct ids_repl_session *s)
{
	size_t n = s->nslot ? 2 * s->nslot : 128, i;
	uint32_t *old = s->hslot;

	if ((s->hslot = calloc(n, sizeof(*s->hslot))) == NULL) {
		s->hslot = old;
		return -ENOMEM;
	}
	s->nslot = n;
	free(old);
	for (i = 0; i < s->nhave; i++)
		*have_slot(s, s->have[i].guid) = (uint32_t)i + 1;
	return 0;
}

int
ids_repl_add_have(struct ids_repl_session *s, const char *guid, const char *path)
{
	struct ids_repl_have *h;
	size_t sl = strlen(s->stagepath);
	uint8_t bin[20];
	uint32_t *slot;
	char *end;
	unsigned long n;

	if (guid_bin(guid, bin) < 0)
		return 0;	/* no file is ever looked for by such a name */
	if (2 * (s->nhave + 1) > s->nslot && have_grow(s) < 0)
		return -ENOMEM;
	if (*(slot = have_slot(s, bin)) != 0)
		return 0;
	if (s->nhave == s->ahave) {
		size_t a = s->ahave ? 2 * s->ahave : 64;

		if ((h = realloc(s->have, a * sizeof(*h))) == NULL)
			return -ENOMEM;
		s->have = h;
		s->ahave = a;
	}
	h = &s->have[s->nhave];
	memcpy(h->guid, bin, 20);
	h->path = NULL;
	h->n = 0;
	/* a staged file "<stagepath>/<guid>.<n>" is kept as n */
	if (sl > 0 && strncmp(path, s->stagepath, sl) == 0 && path[sl] == '/' &&
	    strncmp(path + sl + 1, guid, 40) == 0 && path[sl + 41] == '.' &&
	    path[sl + 42] >= '0' && path[sl + 42] <= '9' &&
	    (n = strtoul(path + sl + 42, &end, 10)) <= UINT32_MAX && *end == '\0')
		h->n = (uint32_t)n;
	else if ((h->path = strdup(path)) == NULL)
		return -ENOMEM;
	*slot = (uint32_t)++s->nhave;
	return 0;
}

static void
have_release(struct ids_repl_session *s)
{
	size_t i;

	for (i = 0; i < s->nhave; i++)
		free(s->have[i].path);
	free(s->have);
	free(s->hslot);
	s->have = NULL;
	s->hslot = NULL;
	s->nhave = s->ahave = s->nslot = 0;
}

/* --- answers ------------------------------------------------------------ */

/*
 * The answers of the applies.  A session without a wire (out NULL: the
 * client applying what it pulled) keeps the refusal in s->nok and
 * s->nok_code instead, and OK clears them.
 */

/* NO with Cyrus's error name for code, logged as a refusal. */
int
ids_repl_refuse(struct ids_repl_session *s, const char *what, const char *imaperr, int code)
{
	const char *why = code ? ids_errmsg(code) : imaperr;

	ids_repl_log(s, LOG_ERR, "%s: %s (%s)", what, why, imaperr);
	if (s->out == NULL) {
		s->nok = imaperr;
		s->nok_code = code ? code : IDS_ECRC;
		return 0;
	}
	return ids_csync_write_no(s->out, imaperr, why);
}

int
ids_repl_ok(struct ids_repl_session *s, const char *text)
{
	if (s->out == NULL) {
		s->nok = NULL;
		s->nok_code = 0;
		return 0;
	}
	return ids_csync_write_ok(s->out, text);
}

/* "* key value", or without a wire, the pair kept in s->lines (copied). */
int
ids_repl_untagged(struct ids_repl_session *s, const char *key, const struct ids_dlist *value)
{
	struct ids_csync_line *l, **v;
	struct ids_dlist *copy;

	if (s->out != NULL)
		return ids_csync_write_untagged(s->out, key, value);
	if (s->nlines == s->alines) {
		size_t a = s->alines ? 2 * s->alines : 8;

		if ((v = realloc(s->lines, a * sizeof(*v))) == NULL)
			return -ENOMEM;
		s->lines = v;
		s->alines = a;
	}
	if (ids_csync_line_new(IDS_CSYNC_UNTAGGED, key, &l) < 0)
		return -ENOMEM;
	if (value != NULL && ((copy = ids_dlist_copy(value)) == NULL ||
	    ids_dlist_add_child(l->args, NULL, copy) < 0)) {
		ids_csync_line_free(l);
		return -ENOMEM;
	}
	s->lines[s->nlines++] = l;
	return 0;
}

void
ids_repl_lines_release(struct ids_repl_session *s)
{
	size_t i;

	for (i = 0; i < s->nlines; i++)
		ids_csync_line_free(s->lines[i]);
	free(s->lines);
	s->lines = NULL;
	s->nlines = s->alines = 0;
}

int
ids_repl_bad(struct ids_repl_session *s, const char *text)
{
	if (s->out == NULL) {
		s->nok = text;
		s->nok_code = IDS_EINVAL;
		return 0;
	}
	return ids_csync_write_bad(s->out, text);
}

/* Cyrus's IMAP error for one of our codes. */
const char *
ids_repl_imap_error(int code)
{
	switch (code) {
	case IDS_ENOTFOUND: return IDS_CSYNC_ENONEXISTENT;
	case IDS_EBADNAME: return "IMAP_MAILBOX_BADNAME";
	case IDS_EPARTITION: return "IMAP_PARTITION_UNKNOWN";
	case IDS_EEXIST: return "IMAP_MAILBOX_EXISTS";
	case IDS_EDUPID: return IDS_CSYNC_EMOVED;
	case IDS_ELOCKED: case IDS_EFENCED: return "IMAP_MAILBOX_LOCKED";
	case IDS_EINVAL: case IDS_ECORRUPT: return IDS_CSYNC_EBADPARAM;
	default: return IDS_CSYNC_EIOERROR;
	}
}

/* --- GET ------------------------------------------------------------------ */

/* "* MAILBOX %(...)" for the live folder name; nothing if there is none. */
int
ids_repl_report_folder(struct ids_repl_session *s, const char *name, int flags)
{
	struct ids_mailbox *mb;
	struct ids_dlist *kv = NULL;
	int r;

	if (flags == 0)	/* the state cache's (replica_state.c) */
		return ids_repl_report_state(s, name, 0);
	r = ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb);
	if (r == IDS_ENOTFOUND)
		return 0;
	if (r < 0)
		return r;
	r = ids_sync_mailbox_state(mb, flags, &kv);
	ids_mailbox_close(mb);
	if (r == 0)
		r = ids_csync_write_untagged(s->out, "MAILBOX", kv);
	ids_dlist_free(kv);
	return r;
}

int
ids_repl_names_add(struct ids_repl_names *l, const char *name)
{
	if (l->n == l->a) {
		size_t a = l->a ? 2 * l->a : 16;
		char **v = realloc(l->v, a * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->a = a;
	}
	if ((l->v[l->n] = strdup(name)) == NULL)
		return -ENOMEM;
	l->n++;
	return 0;
}

void
ids_repl_names_free(struct ids_repl_names *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int
collect_live(const struct ids_mbentry *e, void *rock)
{
	return ids_mbentry_is_tombstone(e) ? 0 : ids_repl_names_add(rock, e->name);
}

struct user_rock {
	const char *inbox;	/* internal name of the user's INBOX */
	const char *dbprefix;	/* dbname prefix of its DELETED folders */
	size_t dblen;
	struct ids_repl_names *names;
};

static int
user_txn(struct ids_txn *txn, void *rock)
{
	struct user_rock *u = rock;
	int r = ids_txn_foreach(txn, u->inbox, collect_live, u->names);

	if ((r == 0 || r == IDS_ENOTFOUND) && u->dblen > 0)
		r = ids_txn_foreach_dbprefix(txn, u->dbprefix, u->dblen, collect_live, u->names);
	return r == IDS_ENOTFOUND ? 0 : r;
}

/*
 * The live folders of userid (csync's "alice" or "bob@example.com"):
 * its INBOX tree and, with deleted, its DELETED folders, in dbname
 * order.
 */
int
ids_repl_user_folders(struct ids_repl_session *s, const char *userid, int deleted,
    struct ids_repl_names *out)
{
	struct ids_mbname mb;
	char inbox[IDS_MBNAME_MAX + 1], dbdel[2 * IDS_MBNAME_MAX + 8];
	struct user_rock u;
	const char *at = strchr(userid, '@');
	int r;

	if (at != NULL)
		snprintf(inbox, sizeof(inbox), "%s!user.%.*s", at + 1, (int)(at - userid), userid);
	else
		snprintf(inbox, sizeof(inbox), "user.%s", userid);
	if ((r = ids_mbname_parse_internal(&mb, inbox, IDS_MBNAME_STRICT)) < 0)
		return r;
	/* the owner's DELETED folders: the dbname of a deleted INBOX without its time */
	mb.deleted = "0";
	if ((r = ids_mbname_dbname(&mb, dbdel, sizeof(dbdel))) < 1)
		return r < 0 ? r : IDS_EINVAL;
	u.inbox = inbox;
	u.dbprefix = dbdel;
	u.dblen = deleted ? (size_t)r - 1 : 0;
	u.names = out;
	return ids_mboxlist_read(s->mbl, user_txn, &u);
}

/*
 * GET USER userid, or idspool's GET USER %(USERID u MISSING 1) (sent
 * only to a peer whose banner names idspool): each folder's MISSING
 * too, as "* MISSING %(UNIQUEID u MISSING (guids))" after its MAILBOX
 * line when it has any.
 */
static int
get_user(struct ids_repl_session *s, const char *userid, int missing)
{
	struct ids_repl_names l = { NULL, 0, 0 };
	size_t i;
	int r;

	if ((r = ids_repl_user_folders(s, userid, 1, &l)) < 0) {
		ids_repl_names_free(&l);
		return ids_repl_refuse(s, userid, ids_repl_imap_error(r), r);
	}
	for (i = 0; i < l.n && r == 0; i++)
		r = ids_repl_report_state(s, l.v[i], missing);
	if (r == 0 && l.n > 0)
		r = ids_repl_report_meta(s, userid);
	ids_repl_names_free(&l);
	if (r < 0)
		return ids_repl_refuse(s, userid, ids_repl_imap_error(r), r);
	return ids_csync_write_ok(s->out, "success");
}

/* GET MAILBOXES (names) / GET UNIQUEIDS (ids) / GET FULLMAILBOX name */
static int
get_folders(struct ids_repl_session *s, const struct ids_dlist *list, int byid)
{
	const struct ids_dlist *i;
	int r = 0;

	if (list == NULL || list->type != IDS_DL_LIST)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_BAD_PARAMETERS");
	for (i = list->head; i != NULL && r == 0; i = i->next) {
		const char *v = ids_dlist_cstr(i);
		struct ids_mbentry e;

		if (v == NULL)
			continue;
		if (!byid) {
			r = ids_repl_report_folder(s, v, 0);
			continue;
		}
		ids_mbentry_init(&e);
		/* a deleted one's I record names its tombstone, which another may now hold */
		if (ids_uniqueid_check(v) == 0 && ids_mboxlist_lookup_id(s->mbl, v, &e) == 0 &&
		    !ids_mbentry_is_tombstone(&e))
			r = ids_repl_report_folder(s, e.name, 0);
		ids_mbentry_release(&e);
	}
	if (r < 0)
		return ids_repl_refuse(s, "GET", ids_repl_imap_error(r), r);
	return ids_csync_write_ok(s->out, "success");
}

static int
get_fullmailbox(struct ids_repl_session *s, const char *name)
{
	struct ids_mailbox *mb;
	struct ids_dlist *kv = NULL;
	int r;

	if (name == NULL)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = ids_mailbox_open(s->mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &mb)) == 0) {
		r = ids_sync_mailbox_state(mb, IDS_SYNC_RECORDS, &kv);
		ids_mailbox_close(mb);
	}
	if (r == 0)
		r = ids_csync_write_untagged(s->out, "MAILBOX", kv);
	ids_dlist_free(kv);
	if (r < 0)
		return ids_repl_refuse(s, name, ids_repl_imap_error(r), r);
	return ids_csync_write_ok(s->out, "success");
}

static int
collect_user(const struct ids_mbentry *e, void *rock)
{
	struct ids_repl_names *l = rock;
	struct ids_mbname mb;
	char user[2 * IDS_MBNAME_MAX + 2];

	if (ids_mbentry_is_tombstone(e) ||
	    ids_mbname_parse_internal(&mb, e->name, IDS_MBNAME_STRICT) < 0 ||
	    mb.localpart == NULL || mb.nboxes != 0 || mb.deleted != NULL)
		return 0;
	snprintf(user, sizeof(user), "%s%s%s", mb.localpart, mb.domain ? "@" : "",
	    mb.domain ? mb.domain : "");
	return ids_repl_names_add(l, user);
}

static int
users_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach_id(txn, collect_user, rock);
}

/* The users whose INBOX is live here, as csync names them ("bob@example.com"). */
int
ids_repl_users(struct ids_repl_session *s, struct ids_repl_names *out)
{
	return ids_mboxlist_read(s->mbl, users_txn, out);
}

/* GET USERS, idspool's extension: "* USERS (userids)". */
static int
get_users(struct ids_repl_session *s)
{
	struct ids_repl_names l = { NULL, 0, 0 };
	struct ids_dlist *list = ids_dlist_new_list();
	size_t i;
	int r;

	if (list == NULL)
		return -ENOMEM;
	r = ids_repl_users(s, &l);
	for (i = 0; r == 0 && i < l.n; i++)
		r = ids_dlist_add_atom(list, NULL, l.v[i]);
	if (r == 0)
		r = ids_csync_write_untagged(s->out, "USERS", list);
	ids_dlist_free(list);
	ids_repl_names_free(&l);
	if (r < 0)
		return ids_repl_refuse(s, "GET USERS", ids_repl_imap_error(r), r);
	return ids_csync_write_ok(s->out, "success");
}

/*
 * GET TOMBSTONE %(UNIQUEID u MBOXNAME n), idspool's extension (our
 * client sends it only to a peer whose banner names idspool): "*
 * TOMBSTONE %(...)" when uniqueid is live nowhere and n holds its
 * tombstone, so that the client may delete its own copy.
 */
static int
get_tombstone(struct ids_repl_session *s, const struct ids_dlist *kv)
{
	const char *id = ids_dlist_cstr(ids_dlist_get(kv, "UNIQUEID"));
	const char *name = ids_dlist_cstr(ids_dlist_get(kv, "MBOXNAME"));
	int r;

	if (kv == NULL || kv->type != IDS_DL_KVLIST || id == NULL || name == NULL)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_BAD_PARAMETERS");
	if ((r = ids_repl_tombstoned(s, id, name)) < 0)
		return ids_repl_refuse(s, name, ids_repl_imap_error(r), r);
	if (r == 1 && (r = ids_csync_write_untagged(s->out, "TOMBSTONE", kv)) < 0)
		return r;
	return ids_csync_write_ok(s->out, "success");
}

static int
do_get(struct ids_repl_session *s, const struct ids_csync_line *l)
{
	const char *sub = ids_csync_sub(l);
	struct ids_dlist *arg = ids_csync_arg(l, 1);
	const char *v = ids_dlist_cstr(arg);

	if (sub == NULL)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR Unrecognized command");
	if (strcmp(sub, "USER") == 0 && v != NULL)
		return get_user(s, v, 0);
	if (strcmp(sub, "USER") == 0 && arg != NULL && arg->type == IDS_DL_KVLIST &&
	    ids_dlist_cstr(ids_dlist_get(arg, "USERID")) != NULL) {
		uint32_t missing = 0;

		ids_dlist_get_u32(arg, "MISSING", &missing);
		return get_user(s, ids_dlist_cstr(ids_dlist_get(arg, "USERID")), missing != 0);
	}
	if (strcmp(sub, "META") == 0 && v != NULL) {
		int r = ids_repl_report_meta(s, v);
		return r < 0 ? ids_repl_refuse(s, v, ids_repl_imap_error(r), r) :
		    ids_csync_write_ok(s->out, "success");
	}
	if (strcmp(sub, "MAILBOXES") == 0)
		return get_folders(s, arg, 0);
	if (strcmp(sub, "UNIQUEIDS") == 0)
		return get_folders(s, arg, 1);
	if (strcmp(sub, "FULLMAILBOX") == 0)
		return get_fullmailbox(s, v);
	if (strcmp(sub, "FETCH") == 0)
		return ids_repl_get_fetch(s, arg);
	if (strcmp(sub, "TOMBSTONE") == 0)
		return get_tombstone(s, arg);
	if (strcmp(sub, "USERS") == 0)
		return get_users(s);
	if (strcmp(sub, "STATE") == 0)
		return ids_repl_get_state(s, arg);
	if (strcmp(sub, "FETCHGUID") == 0)
		return ids_repl_get_fetchguid(s, arg);
	return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR Unrecognized command");
}

/* --- APPLY -------------------------------------------------------------- */

/* APPLY MESSAGE (%{part guid size}... ): the codec staged and checked each. */
static int
apply_message(struct ids_repl_session *s, const struct ids_dlist *list)
{
	const struct ids_dlist *i;
	char path[PATH_MAX];
	size_t n = 0;
	int r;

	if (list == NULL || list->type != IDS_DL_LIST)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_BAD_PARAMETERS");
	for (i = list->head; i != NULL; i = i->next) {
		if (i->type != IDS_DL_FILE || i->file == NULL || i->file->name == NULL)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", s->stagepath,
		    i->file->name) >= (int)sizeof(path))
			return ids_error(IDS_ETOOLONG, "staging path too long");
		if ((r = ids_repl_add_have(s, i->file->guid, path)) < 0)
			return r;
		n++;
	}
	ids_repl_log(s, LOG_INFO, "APPLY MESSAGE: %zu file(s) staged", n);
	return ids_csync_write_ok(s->out, "success");
}

static int
apply_capabilities(struct ids_repl_session *s)
{
	struct ids_dlist *l = ids_dlist_new_list();
	int r;

	/* we enable nothing: #sieve travels as SIEVE commands */
	if (l == NULL)
		return -ENOMEM;
	r = ids_csync_write_untagged(s->out, "ENABLED", l);
	ids_dlist_free(l);
	return r < 0 ? r : ids_csync_write_ok(s->out, "success");
}

static int
do_apply(struct ids_repl_session *s, const struct ids_csync_line *l)
{
	const char *sub = ids_csync_sub(l);
	struct ids_dlist *arg = ids_csync_arg(l, 1);
	int r;

	if (sub == NULL)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR Unrecognized command");
	if (strcmp(sub, "CAPABILITIES") == 0)
		return apply_capabilities(s);
	/* a fenced spool (spool_sync --drain) takes no change: the client retries later */
	if ((r = ids_journal_fence_check(s->cfg)) < 0)
		return ids_repl_refuse(s, sub, ids_repl_imap_error(r), r);
	if (strcmp(sub, "MESSAGE") == 0)
		return apply_message(s, arg);
	if (strcmp(sub, "RESERVE") == 0)
		return ids_repl_apply_reserve(s, arg);
	if (strcmp(sub, "MAILBOX") == 0)
		return ids_repl_apply_mailbox(s, arg);
	if (strcmp(sub, "EXPUNGE") == 0)
		return ids_repl_apply_expunge(s, arg);
	if (strcmp(sub, "RENAME") == 0)
		return ids_repl_apply_rename(s, arg);
	if (strcmp(sub, "REPAIR") == 0)
		return ids_repl_apply_repair(s, arg);
	if (strcmp(sub, "UNMAILBOX") == 0 || strcmp(sub, "LOCAL_UNMAILBOX") == 0)
		return arg != NULL && arg->type == IDS_DL_KVLIST ?
		    ids_repl_apply_unmailbox(s, ids_dlist_cstr(ids_dlist_get(arg, "MBOXNAME")),
		    ids_dlist_cstr(ids_dlist_get(arg, "UNIQUEID"))) :
		    ids_repl_apply_unmailbox(s, ids_dlist_cstr(arg), NULL);
	if (strcmp(sub, "UNUSER") == 0 || strcmp(sub, "LOCAL_UNUSER") == 0)
		return ids_repl_apply_unuser(s, ids_dlist_cstr(arg));
	return ids_repl_apply_meta(s, sub, arg);
}

/* --- the session -------------------------------------------------------- */

/* Commands whose answers may wait behind those of a group commit. */
static int
may_wait(const struct ids_csync_line *l)
{
	const char *sub = ids_csync_sub(l);

	return l->kind == IDS_CSYNC_COMMAND && l->word != NULL && strcmp(l->word, "APPLY") == 0 &&
	    sub != NULL && (strcmp(sub, "MESSAGE") == 0 || strcmp(sub, "RESERVE") == 0 ||
	    strcmp(sub, "MAILBOX") == 0);
}

static int
dispatch(struct ids_repl_session *s, const struct ids_csync_line *l)
{
	int r;

	if (s->npend > 0 && !may_wait(l) && (r = ids_repl_group_commit(s)) < 0)
		return r;
	if (l->kind != IDS_CSYNC_COMMAND || l->word == NULL)
		return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR Unrecognized command");
	if (strcmp(l->word, "NOOP") == 0)
		return ids_csync_write_ok(s->out, "Noop completed");
	if (strcmp(l->word, "RESTART") == 0) {
		/* Cyrus forgets what was reserved and staged */
		empty_dir(s->stagefd);
		have_release(s);
		return ids_csync_write_ok(s->out, "Restarting");
	}
	if (strcmp(l->word, "EXIT") == 0) {
		s->done = 1;
		return ids_csync_write_ok(s->out, "Finished");
	}
	if (strcmp(l->word, "GET") == 0)
		return do_get(s, l);
	if (strcmp(l->word, "APPLY") == 0)
		return do_apply(s, l);
	ids_repl_log(s, LOG_ERR, "unknown command %.40s", l->word);
	return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR Unrecognized command");
}

/* A line the codec refused: answer it, or end the session if the stream is lost. */
int
ids_repl_bad_input(struct ids_repl_session *s, int r)
{
	ids_repl_log(s, LOG_ERR, "input at byte %llu: %s",
	    (unsigned long long)ids_csync_in_offset(s->in), ids_errmsg(r));
	if (ids_csync_in_lost(s->in)) {
		ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR input lost");
		ids_csync_flush(s->out);
		return r;
	}
	if (r == IDS_ECRC)
		return ids_csync_write_no(s->out, "IMAP_IOERROR", ids_errmsg(r));
	return ids_csync_write_bad(s->out, "IMAP_PROTOCOL_ERROR");
}

static int
session_loop(struct ids_repl_session *s)
{
	struct ids_csync_line *l;
	int r;

	while (!s->done) {
		/* new folders applied are committed before the replica waits for input */
		if (s->npend > 0 && !ids_csync_in_pending(s->in) &&
		    (r = ids_repl_group_commit(s)) < 0)
			return r;
		if ((r = ids_csync_flush(s->out)) < 0)
			return r;
		r = ids_csync_read(s->in, &l);
		if (r == 0)
			return 0;
		if (r < 0) {
			if ((r = ids_repl_bad_input(s, r)) < 0)
				return r;
			continue;
		}
		r = dispatch(s, l);
		/* the rest of a streamed line an apply left unread goes before the line */
		if (r >= 0 && ids_csync_in_streaming(s->in) && (r = ids_csync_skip_rest(s->in)) < 0 &&
		    !ids_csync_in_lost(s->in))
			r = 0;
		ids_csync_line_free(l);
		if (r < 0) {
			ids_repl_log(s, LOG_ERR, "session ends: %s", ids_errmsg(r));
			return r;
		}
	}
	return ids_csync_flush(s->out);
}

/* "* OK <host> Cyrus sync server ...": no SASL, no COMPRESS, no SIEVE-MAILBOX. */
static int
write_banner(struct ids_repl_session *s, const char *text)
{
	struct ids_csync_line *l;
	int r;

	if ((r = ids_csync_line_new(IDS_CSYNC_UNTAGGED, "OK", &l)) < 0)
		return r;
	if ((r = ids_csync_line_set_text(l, text, strlen(text))) == 0)
		r = ids_csync_write(s->out, l);
	ids_csync_line_free(l);
	return r;
}

int
ids_repl_session_init(struct ids_repl_session *s, struct ids_mboxlist *mbl,
    const struct ids_replica_opts *opts)
{
	memset(s, 0, sizeof(*s));
	s->mbl = mbl;
	s->cfg = ids_mboxlist_config(mbl);
	s->opts = opts;
	s->stagefd = s->stageparent = -1;
	return staging_open(s);
}

void
ids_repl_session_release(struct ids_repl_session *s)
{
	size_t i;

	for (i = 0; i < s->npend; i++)
		ids_mailbox_close(s->pend[i].mb);	/* not committed: undone */
	free(s->pend);
	s->pend = NULL;
	s->npend = s->apend = 0;
	have_release(s);
	staging_close(s);
	ids_repl_meta_release(s);
	ids_repl_statecache_release(s);
	ids_repl_lines_release(s);
}

int
ids_replica_session(struct ids_mboxlist *mbl, int infd, int outfd,
    const struct ids_replica_opts *opts)
{
	struct ids_repl_session s;
	struct ids_csync_limits lim = { IDS_CSYNC_MAX_LINE, IDS_DLIST_MAX_LITERAL,
	    IDS_CSYNC_MAX_FILE };
	char host[256] = "idspool", banner[400];
	int r;

	if (opts != NULL && opts->max_file)
		lim.max_file = opts->max_file;
	if ((r = ids_repl_session_init(&s, mbl, opts)) < 0 ||
	    (r = ids_csync_in_new(infd, &s.in)) < 0 ||
	    (r = ids_csync_out_new(outfd, 0, &s.out)) < 0)
		goto out;
	ids_csync_in_set_limits(s.in, &lim);
	ids_csync_in_set_staging(s.in, s.stagefd);
	ids_csync_in_set_stream(s.in, 1);	/* APPLY MAILBOX's records one at a time */
	ids_csync_in_set_fsync(s.in, 0);	/* files are made durable where they are linked */
	gethostname(host, sizeof(host) - 1);
	snprintf(banner, sizeof(banner), "%s Cyrus sync server idspool-" IDS_REPLICA_VERSION
	    " " IDS_SYNC_PIPELINE_WORD, host);
	if ((r = write_banner(&s, banner)) < 0)
		goto out;
	r = session_loop(&s);
out:
	if (s.out != NULL) {
		/* what is applied is committed, answered or not (a cut link) */
		ids_repl_group_commit(&s);
		ids_csync_flush(s.out);
	}
	ids_csync_out_free(s.out);
	ids_csync_in_free(s.in);
	ids_repl_session_release(&s);
	return r;
}
