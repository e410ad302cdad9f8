/*
 * auditrepair.c - healing damaged messages from another copy of the
 * spool (auditpriv.h).  Seed 000: "the backup which knows it has
 * corrupted files actively seeks out those missing files".
 *
 * The audit holds back every missing, short or corrupt message whose
 * record has a GUID.  The other copy's indexes are then read (all of
 * its live folders: a GUID may be in another folder there, after a
 * rename or a copy) for records with a wanted GUID.  For each held
 * message, under its folder's mailbox lock (exclusive), with the index
 * read again:
 *
 *   1. the record must still need that file with that GUID, and the
 *      file must still be missing or damaged (a good file is never
 *      touched; a symlink or device is left for the operator);
 *   2. a source is copied to "<uid>.repair.NEW" (O_EXCL) while its
 *      SHA-1 is computed; a source whose size or SHA-1 is not the
 *      record's is discarded and the next one tried;
 *   3. the copy is fsynced, then linked to "<uid>." when that name is
 *      free (link never overwrites) or renamed over the damaged file,
 *      and the directory is fsynced.
 *
 * Nothing else is changed: no record, no other file, nothing removed
 * but the temporary file and, by the rename, the damaged bytes.  A crash
 * leaves at worst a "*.NEW" file, which the audit ignores and the next
 * repair of that uid replaces.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "auditpriv.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "mailbox.h"
#include "mboxlist.h"

/* A record of the other copy holding a wanted GUID. */
struct source {
	uint8_t guid[IDS_GUID_LEN];
	size_t part;		/* partition index in the other configuration */
	char *rel;		/* the folder's directory below the partition root */
	uint32_t uid;
	uint64_t size;
};

struct sources {
	struct source *v;
	size_t n, alloc;
	uint8_t (*want)[IDS_GUID_LEN];	/* sorted, unique */
	size_t nwant;
};

static int
guid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, IDS_GUID_LEN);
}

/* The wanted GUIDs: one of each, sorted. */
static int
sources_want(struct sources *s, const struct aflist *held)
{
	size_t i, k = 0;

	if ((s->want = calloc(held->n + 1, IDS_GUID_LEN)) == NULL)
		return -ENOMEM;
	for (i = 0; i < held->n; i++)
		memcpy(s->want[i], held->v[i].guid, IDS_GUID_LEN);
	qsort(s->want, held->n, IDS_GUID_LEN, guid_cmp);
	for (i = 0; i < held->n; i++)
		if (k == 0 || memcmp(s->want[k - 1], s->want[i], IDS_GUID_LEN) != 0)
			memmove(s->want[k++], s->want[i], IDS_GUID_LEN);
	s->nwant = k;
	return 0;
}

static int
sources_add(struct sources *s, const struct aside *t, size_t part, const char *rel,
    const struct amsg *m)
{
	if (IDS_ALLOC_GROW(s->v, s->n + 1, s->alloc) < 0)
		return -ENOMEM;
	memcpy(s->v[s->n].guid, m->guid, IDS_GUID_LEN);
	s->v[s->n].part = part;
	s->v[s->n].uid = m->uid;
	s->v[s->n].size = m->size;
	if ((s->v[s->n].rel = strdup(rel)) == NULL)
		return -ENOMEM;
	s->n++;
	return 0;
}

struct gather {
	struct arun *run;
	struct sources *s;
};

/* One folder of the other copy: its records with wanted GUIDs. */
static int
gather_one(const struct ids_mbentry *e, void *rock)
{
	struct gather *g = rock;
	const struct ids_config *cfg = ids_mboxlist_config(g->run->o->other);
	const struct ids_partition *part;
	struct aside t;
	char rel[PATH_MAX];
	size_t i;
	int r = 0;

	if (ids_mbentry_is_tombstone(e) || e->partition == NULL)
		return 0;
	memset(&t, 0, sizeof(t));
	t.cfg = cfg;
	t.rootfds = g->run->orootfds;
	t.metarootfds = g->run->ometarootfds;
	t.datafd = t.metafd = -1;
	ids_mbentry_init(&t.e);
	r = ids_mbentry_copy(&t.e, e);
	if (r == 0 && ids_side_open(&t) == 0 && ids_side_read_index(&t, NULL, NULL) == 0 &&
	    (part = ids_config_partition(cfg, t.loc.partition)) != NULL &&
	    ids_path_reldir(cfg, &t.loc, rel, sizeof(rel)) >= 0) {
		for (i = 0; i < t.n && r == 0; i++)
			if (t.m[i].state != AM_SKIP &&
			    bsearch(t.m[i].guid, g->s->want, g->s->nwant, IDS_GUID_LEN, guid_cmp))
				r = sources_add(g->s, &t, (size_t)(part - cfg->partitions), rel, &t.m[i]);
	}
	if (t.datafd >= 0)
		close(t.datafd);
	if (t.metafd >= 0)
		close(t.metafd);
	free(t.m);
	ids_mbentry_release(&t.e);
	return r;
}

/* Reads every live folder's index in the other copy. */
static int
sources_gather(struct arun *run, struct sources *s)
{
	struct ids_scanpos pos;
	struct gather g = { run, s };
	int r;

	memset(&pos, 0, sizeof(pos));
	while ((r = ids_mboxlist_scan(run->o->other, &pos, 0, 256, gather_one, &g)) > 0)
		;
	return r;
}

static void
sources_release(struct sources *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i].rel);
	free(s->v);
	free(s->want);
}

static int
source_cmp(const void *a, const void *b)
{
	return memcmp(((const struct source *)a)->guid, ((const struct source *)b)->guid,
	    IDS_GUID_LEN);
}

/* --- one message ----------------------------------------------------- */

struct heal {
	struct arun *run;
	struct hasher *h;
	struct ids_mailbox *mb;
	struct afinding *a;
	char name[16];		/* "<uid>." */
	char tmp[32];		/* "<uid>.repair.NEW" */
};

/* The source's absolute path, for reports. */
static void
source_path(const struct heal *x, const struct source *src, char *buf, size_t size)
{
	const struct ids_config *cfg = ids_mboxlist_config(x->run->o->other);
	char name[16];

	snprintf(name, sizeof(name), "%u.", src->uid);
	if (ids_abspath(buf, size, cfg->partitions[src->part].path, src->rel, name) < 0)
		snprintf(buf, size, "(a path too long)");
}

/* The record of the held message, read again under the lock: still needing it? */
static int
still_wanted(const struct heal *x)
{
	struct ids_index_record rec;
	struct ids_index *idx;
	uint32_t i;
	int r, found = 0;

	if ((r = ids_index_open(ids_mailbox_metafd(x->mb, IDS_META_INDEX), &idx)) < 0)
		return r;
	for (i = 0; i < ids_index_header(idx)->num_records && !found; i++)
		if (ids_index_record(idx, i, &rec) == 0 && rec.uid == x->a->uid &&
		    !((rec.system_flags & IDS_FLAG_EXPUNGED) && (rec.system_flags & IDS_FLAG_UNLINKED)) &&
		    memcmp(rec.guid, x->a->guid, IDS_GUID_LEN) == 0 && rec.size == x->a->size)
			found = 1;
	ids_index_free(idx);
	return found ? 0 : ids_error(IDS_EBUSY, "the record changed meanwhile");
}

/* Copies src to the temporary file, verifying it.  0 or negative. */
static int
copy_source(struct heal *x, const struct source *src)
{
	uint8_t sha1[IDS_GUID_LEN];
	char name[16];
	int64_t n;
	int sfd, tfd, r = 0, dfd = x->mb->datafd;

	if ((r = ids_audit_opendir(x->run->orootfds[src->part], src->rel, &sfd)) < 0)
		return r;
	/* A crash may have left one behind. */
	if ((r = IDS_FAILPOINT("audit.repair_clean")) < 0 ||
	    (unlinkat(dfd, x->tmp, 0) < 0 && errno != ENOENT) ||
	    (r = IDS_FAILPOINT("audit.repair_create")) < 0 ||
	    (tfd = openat(dfd, x->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600)) < 0) {
		r = r < 0 ? r : -errno;
		close(sfd);
		return r;
	}
	snprintf(name, sizeof(name), "%u.", src->uid);
	n = ids_hasher_copy(x->h, sfd, name, tfd, sha1);
	close(sfd);
	if (n >= 0 && ((uint64_t)n != x->a->size || memcmp(sha1, x->a->guid, IDS_GUID_LEN) != 0))
		n = ids_error(IDS_ECRC, "the copy's SHA-1 or size is not the record's");
	if (n >= 0 && ((r = IDS_FAILPOINT("audit.repair_fsync")) < 0 || fsync(tfd) < 0))
		n = r < 0 ? r : -errno;
	if (close(tfd) < 0 && n >= 0)
		n = -errno;
	if (n < 0)
		unlinkat(dfd, x->tmp, 0);
	return n < 0 ? (int)n : 0;
}

/* Puts the verified copy in place: link if the name is free, else rename. */
static int
install(struct heal *x, int absent)
{
	int r, dfd = x->mb->datafd;

	if (absent) {
		if ((r = IDS_FAILPOINT("audit.repair_link")) < 0 ||
		    linkat(dfd, x->tmp, dfd, x->name, 0) < 0) {
			r = r < 0 ? r : errno == EEXIST ?
			    ids_error(IDS_EBUSY, "a file appeared meanwhile; left alone") : -errno;
			unlinkat(dfd, x->tmp, 0);
			return r;
		}
		if ((r = IDS_FAILPOINT("audit.repair_unlink")) < 0 ||
		    unlinkat(dfd, x->tmp, 0) < 0)
			return r < 0 ? r : -errno;
	} else if ((r = IDS_FAILPOINT("audit.repair_rename")) < 0 ||
	    renameat(dfd, x->tmp, dfd, x->name) < 0) {
		r = r < 0 ? r : -errno;
		unlinkat(dfd, x->tmp, 0);
		return r;
	}
	return ids_fsync_dir(dfd);
}

/* The file as it is now, under the lock: AM_OK, ABSENT, SIZE, GUID, ... */
static int
current_state(struct heal *x)
{
	struct amsg m;

	memset(&m, 0, sizeof(m));
	m.uid = x->a->uid;
	m.size = x->a->size;
	memcpy(m.guid, x->a->guid, IDS_GUID_LEN);
	(void)ids_hasher_check(x->h, x->mb->datafd, x->name, &m, 0);
	return m.state;
}

static void
outcome(struct afinding *a, enum ids_audit_repair how, const char *detail)
{
	a->repair = how;
	free(a->repair_detail);
	a->repair_detail = strdup(detail);
}

/* Dry run: would the source do?  Reads it; writes nothing. */
static int
dry_check(struct heal *x, const struct source *src)
{
	struct amsg m;
	char name[16];
	int sfd, r;

	if ((r = ids_audit_opendir(x->run->orootfds[src->part], src->rel, &sfd)) < 0)
		return r;
	memset(&m, 0, sizeof(m));
	m.size = x->a->size;
	memcpy(m.guid, x->a->guid, IDS_GUID_LEN);
	snprintf(name, sizeof(name), "%u.", src->uid);
	(void)ids_hasher_check(x->h, sfd, name, &m, 0);
	close(sfd);
	if (m.state == AM_OK)
		return 0;
	if (m.state == AM_ERROR)
		return m.err;
	return ids_error(IDS_ECRC, "the copy's SHA-1 or size is not the record's");
}

/* Tries each source of the GUID in turn. */
static void
heal_from(struct heal *x, const struct source *v, size_t n, int absent)
{
	char path[PATH_MAX], why[PATH_MAX + 256] = "no copy of this GUID in the other spool";
	int dry = x->run->o->dry_run;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		source_path(x, &v[i], path, sizeof(path));
		if (dry)
			r = dry_check(x, &v[i]);
		else if ((r = copy_source(x, &v[i])) == 0)
			r = install(x, absent);
		if (r == 0) {
			outcome(x->a, dry ? IDS_AUDIT_REPAIR_WOULD : IDS_AUDIT_REPAIR_HEALED, path);
			return;
		}
		snprintf(why, sizeof(why), "%s: %s", path, ids_errmsg(r));
	}
	outcome(x->a, IDS_AUDIT_REPAIR_FAILED, why);
}

/* One held message, its folder open and locked. */
static void
heal_one(struct heal *x, const struct sources *s)
{
	struct source key, *v;
	size_t lo, hi;
	int state, r;

	snprintf(x->name, sizeof(x->name), "%u.", x->a->uid);
	snprintf(x->tmp, sizeof(x->tmp), "%u.repair.NEW", x->a->uid);
	if ((r = still_wanted(x)) < 0) {
		outcome(x->a, IDS_AUDIT_REPAIR_FAILED, ids_errmsg(r));
		return;
	}
	state = current_state(x);
	if (state == AM_OK) {
		outcome(x->a, IDS_AUDIT_REPAIR_HEALED, "intact when checked again under the lock");
		return;
	}
	if (state != AM_ABSENT && state != AM_SIZE && state != AM_GUID) {
		outcome(x->a, IDS_AUDIT_REPAIR_FAILED, "not a regular file now; left alone");
		return;
	}
	memcpy(key.guid, x->a->guid, IDS_GUID_LEN);
	v = s->n ? bsearch(&key, s->v, s->n, sizeof(key), source_cmp) : NULL;
	for (lo = v ? (size_t)(v - s->v) : 0; v && lo > 0 && source_cmp(&s->v[lo - 1], &key) == 0; lo--)
		;
	for (hi = lo; v && hi < s->n && source_cmp(&s->v[hi], &key) == 0; hi++)
		;
	heal_from(x, v ? &s->v[lo] : NULL, v ? hi - lo : 0, state == AM_ABSENT);
}

/* The held messages of one folder, from held->v[*i] on. */
static void
heal_folder(struct arun *run, struct hasher *h, const struct sources *s, size_t *i)
{
	struct aflist *held = &run->held;
	const char *folder = held->v[*i].folder;
	struct heal x = { run, h, NULL, NULL, "", "" };
	int r;

	r = ids_mailbox_open(run->mbl, folder, IDS_MAILBOX_WRITE, run->o->lock_timeout_ms, &x.mb);
	for (; *i < held->n && strcmp(held->v[*i].folder, folder) == 0; (*i)++) {
		x.a = &held->v[*i];
		if (r < 0)
			outcome(x.a, IDS_AUDIT_REPAIR_FAILED, ids_errmsg(r));
		else
			heal_one(&x, s);
		if (x.a->repair == IDS_AUDIT_REPAIR_HEALED)
			run->st.healed++;
		else
			run->st.unhealed++;
	}
	ids_mailbox_close(x.mb);
}

int
ids_repair_held(struct arun *run)
{
	struct aflist *held = &run->held;
	struct sources s;
	struct hasher *h = NULL;
	size_t i;
	int r;

	memset(&s, 0, sizeof(s));
	if (held->n == 0)
		return 0;
	if ((r = sources_want(&s, held)) == 0 && (r = sources_gather(run, &s)) == 0 &&
	    (h = ids_hasher_new()) == NULL)
		r = -ENOMEM;
	if (r == 0 && s.n > 1)
		qsort(s.v, s.n, sizeof(*s.v), source_cmp);
	for (i = 0; r == 0 && i < held->n; )
		heal_folder(run, h, &s, &i);
	for (i = 0; i < held->n; i++)
		held->v[i].repairable = 0;	/* reported now, not held again */
	if (r == 0)
		r = ids_run_emit(run, held, NULL, NULL, NULL);
	ids_hasher_free(h);
	sources_release(&s);
	return r;
}
