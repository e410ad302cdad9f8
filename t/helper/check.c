/*
 * check.c - the invariant checker of the reliability tests
 * ("ids-helper check"), independent of spool_audit.
 *
 * It reads mailboxes.db and the spool and reports, as one JSON object:
 *
 *   violations  every broken invariant, as a sentence;
 *   notes       harmless leftovers (a *.NEW file, an empty directory, a
 *               message file above last_uid left by a delivery that
 *               died before its commit point);
 *   folders     each live folder: name, uniqueid, layout and a digest
 *               of its messages' GUIDs (the "content");
 *   messages    the multiset of SHA-1s reachable through the resolver.
 *
 * The invariants (RELIABILITY.md, "Invariants"):
 *
 *   1. mailboxes.db: every live N record has the I record of its
 *      uniqueid naming it; every I record names an N record with its
 *      uniqueid; no live uniqueid is held by two live names; no intent
 *      record is left (the caller ran recovery first).
 *   2. Every live folder resolves to a directory whose cyrus.header has
 *      its uniqueid (and, in the uniqueid layout, its name), whose
 *      cyrus.index is sound, and whose every unexpunged record has its
 *      message file there, regular, with the record's size and SHA-1.
 *   3. The spool holds no other folder: no cyrus.header and no message
 *      file in a directory that is not a live folder's (a copy of a
 *      folder left behind is a uniqueid held twice on disk).
 *
 * Symlinks are never followed; one in the spool is a violation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "guid.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "layout.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "helper.h"

#define MAX_DEPTH 64

struct live {
	char *name;
	char *uniqueid;
};

struct checker {
	const struct ids_config *cfg;
	struct ids_mboxlist *mbl;
	json_t *violations, *notes, *folders;
	struct live *live;		/* live N records */
	size_t nlive, alive;
	char **dirs;			/* "root-index:reldir" of every live folder's directories */
	size_t ndirs, adirs;
	uint8_t (*guids)[IDS_GUID_LEN];	/* every message reachable */
	size_t nguids, aguids;
};

static void __attribute__((format(printf, 3, 4)))
say(struct checker *c, json_t *list, const char *fmt, ...)
{
	struct ids_buf b = IDS_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	ids_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	json_array_append_new(list, json_string(b.s));
	ids_buf_release(&b);
}

#define violation(c, ...) say((c), (c)->violations, __VA_ARGS__)
#define note(c, ...) say((c), (c)->notes, __VA_ARGS__)

static int
grow(void **p, size_t *alloc, size_t n, size_t size)
{
	void *np;
	size_t na;

	if (n < *alloc)
		return 0;
	na = *alloc ? 2 * *alloc : 64;
	if ((np = realloc(*p, na * size)) == NULL)
		return -ENOMEM;
	*p = np;
	*alloc = na;
	return 0;
}

static int
add_dir(struct checker *c, int root, const char *rel)
{
	struct ids_buf b = IDS_BUF_INIT;

	if (grow((void **)&c->dirs, &c->adirs, c->ndirs, sizeof(*c->dirs)) < 0 ||
	    ids_buf_printf(&b, "%d:%s", root, rel) < 0)
		return -ENOMEM;
	c->dirs[c->ndirs++] = ids_buf_detach(&b, NULL);
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
known_dir(const struct checker *c, int root, const char *rel)
{
	char key[PATH_MAX + 16];
	const char *k = key;

	if (c->ndirs == 0 ||
	    (size_t)snprintf(key, sizeof(key), "%d:%s", root, rel) >= sizeof(key))
		return 0;
	return bsearch(&k, c->dirs, c->ndirs, sizeof(*c->dirs), cmp_str) != NULL;
}

/* --- 1. mailboxes.db --------------------------------------------------- */

static int
n_record(const struct ids_mbentry *e, void *rock)
{
	struct checker *c = rock;

	if (ids_mbentry_is_tombstone(e))
		return 0;
	if (ids_uniqueid_check(e->uniqueid) < 0) {
		violation(c, "%s: invalid uniqueid '%s'", e->name, e->uniqueid);
		return 0;
	}
	if (grow((void **)&c->live, &c->alive, c->nlive, sizeof(*c->live)) < 0)
		return -ENOMEM;
	c->live[c->nlive].name = strdup(e->name);
	c->live[c->nlive].uniqueid = strdup(e->uniqueid);
	if (!c->live[c->nlive].name || !c->live[c->nlive].uniqueid)
		return -ENOMEM;
	c->nlive++;
	return 0;
}

struct idrock {
	struct checker *c;
	struct ids_txn *txn;
};

/* Every I record names an N record that carries its uniqueid. */
static int
i_record(const struct ids_mbentry *e, void *rock)
{
	struct idrock *ir = rock;
	struct ids_mbentry n;
	int r;

	ids_mbentry_init(&n);
	r = ids_txn_lookup_name(ir->txn, e->name, &n);
	if (r == IDS_ENOTFOUND)
		violation(ir->c, "I record of %s names %s, which has no N record",
		    e->uniqueid, e->name);
	else if (r < 0)
		violation(ir->c, "I record of %s: %s", e->uniqueid, ids_errmsg(r));
	else if (strcmp(n.uniqueid, e->uniqueid) != 0)
		violation(ir->c, "I record of %s names %s, which holds uniqueid %s",
		    e->uniqueid, e->name, n.uniqueid);
	ids_mbentry_release(&n);
	return 0;
}

static int
intent_left(const char *id, const struct ids_intent *in, void *rock)
{
	struct checker *c = rock;

	violation(c, "intent left behind: %s %s stage %s (%s)", id, in->op,
	    in->stage, in->name ? in->name : "?");
	return 0;
}

static int
cmp_live_id(const void *a, const void *b)
{
	const struct live *x = a, *y = b;
	int d = strcmp(x->uniqueid, y->uniqueid);

	return d ? d : strcmp(x->name, y->name);
}

static int
db_txn(struct ids_txn *txn, void *rock)
{
	struct checker *c = rock;
	struct idrock ir = { c, txn };
	size_t i;
	int r;

	if ((r = ids_txn_foreach(txn, NULL, n_record, c)) < 0 ||
	    (r = ids_txn_foreach_id(txn, i_record, &ir)) < 0 ||
	    (r = ids_intent_foreach(txn, intent_left, c)) < 0)
		return r;
	for (i = 0; i < c->nlive; i++) {
		struct ids_mbentry e;

		ids_mbentry_init(&e);
		r = ids_txn_lookup_id(txn, c->live[i].uniqueid, &e);
		if (r < 0)
			violation(c, "%s: no I record for its uniqueid %s", c->live[i].name,
			    c->live[i].uniqueid);
		else if (strcmp(e.name, c->live[i].name) != 0)
			violation(c, "%s: the I record of %s names %s", c->live[i].name,
			    c->live[i].uniqueid, e.name);
		ids_mbentry_release(&e);
	}
	if (c->nlive > 1)
		qsort(c->live, c->nlive, sizeof(*c->live), cmp_live_id);
	for (i = 1; i < c->nlive; i++)
		if (strcmp(c->live[i - 1].uniqueid, c->live[i].uniqueid) == 0)
			violation(c, "uniqueid %s held by two live mailboxes: %s and %s",
			    c->live[i].uniqueid, c->live[i - 1].name, c->live[i].name);
	return 0;
}

/* --- 2. each live folder ----------------------------------------------- */

struct folder {
	struct ids_mbentry e;
	struct ids_mbname mb;
	struct ids_location loc;
	const char *name;
	int fd[2];		/* data directory; meta directory or -1 */
	char rel[PATH_MAX];
	size_t first_guid;	/* this folder's GUIDs in c->guids */
};

/* The directory fd holding meta files of kind. */
static int
meta_fd(const struct checker *c, const struct folder *f, enum ids_metafile kind)
{
	return f->fd[1] >= 0 && (c->cfg->metapartition_files & (1u << kind)) ? f->fd[1] : f->fd[0];
}

static int
open_folder(struct checker *c, struct folder *f)
{
	const struct ids_partition *part;
	const char *tops[2];
	int i, root, r;

	if ((r = ids_location_from_entry(&f->e, &f->mb, &f->loc)) < 0 ||
	    (r = ids_path_reldir(c->cfg, &f->loc, f->rel, sizeof(f->rel))) < 0)
		return r;
	if ((part = ids_config_partition(c->cfg, f->e.partition)) == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s'", f->e.partition);
	tops[0] = part->path;
	tops[1] = c->cfg->metapartition_files ? part->metapath : NULL;
	for (i = 0; i < 2; i++) {
		if (tops[i] == NULL)
			continue;
		if ((r = ids_opendir_abs(tops[i], &root)) < 0)
			return r;
		r = ids_opendir_beneath(root, f->rel, 0, &f->fd[i]);
		close(root);
		if (r < 0)
			return ids_error(r, "%s/%s: %s", tops[i], f->rel, ids_errmsg(r));
		if (add_dir(c, i, f->rel) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int
add_guid(struct checker *c, const uint8_t g[IDS_GUID_LEN])
{
	if (grow((void **)&c->guids, &c->aguids, c->nguids, sizeof(*c->guids)) < 0)
		return -ENOMEM;
	memcpy(c->guids[c->nguids++], g, IDS_GUID_LEN);
	return 0;
}

/* One index record: its file is there, regular, with its size and SHA-1. */
static void
check_record(struct checker *c, struct folder *f, const struct ids_index_record *rec)
{
	char file[32], hex[IDS_GUID_HEXLEN + 1];
	uint8_t g[IDS_GUID_LEN];
	struct stat st;
	int r;

	snprintf(file, sizeof(file), "%u.", rec->uid);
	if (fstatat(f->fd[0], file, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		violation(c, "%s: message %u: file %s/%s is missing", f->name, rec->uid,
		    f->rel, file);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		violation(c, "%s: message %u: %s/%s is not a regular file", f->name,
		    rec->uid, f->rel, file);
		return;
	}
	if ((uint64_t)st.st_size != rec->size)
		violation(c, "%s: message %u: %lld bytes, the index says %llu", f->name,
		    rec->uid, (long long)st.st_size, (unsigned long long)rec->size);
	if ((r = ids_guid_file(f->fd[0], file, g)) < 0) {
		violation(c, "%s: message %u: %s", f->name, rec->uid, ids_errmsg(r));
		return;
	}
	if (memcmp(g, rec->guid, IDS_GUID_LEN) != 0) {
		ids_guid_hex(rec->guid, hex);
		violation(c, "%s: message %u: SHA-1 differs from the GUID %s", f->name,
		    rec->uid, hex);
		return;
	}
	add_guid(c, g);
}

/* Message files no record names: above last_uid a dead delivery's, else lost. */
static void
check_orphans(struct checker *c, struct folder *f, const struct ids_index *idx)
{
	const struct ids_index_header *h = ids_index_header(idx);
	struct ids_index_record rec;
	struct dirent *de;
	uint32_t uid, i;
	DIR *d;
	int fd, known;

	if ((fd = dup(f->fd[0])) < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (ids_folder_classify(de->d_name, &uid) == IDS_FILE_TEMP)
			note(c, "%s: temporary file %s/%s", f->name, f->rel, de->d_name);
		if (ids_folder_classify(de->d_name, &uid) != IDS_FILE_MESSAGE)
			continue;
		for (known = 0, i = 0; i < h->num_records && !known; i++)
			known = ids_index_record(idx, i, &rec) == 0 && rec.uid == uid;
		if (known)
			continue;
		if (uid > h->last_uid)
			note(c, "%s: message file %s/%s above last_uid %u (a delivery "
			    "that died before its commit point)", f->name, f->rel,
			    de->d_name, h->last_uid);
		else
			violation(c, "%s: message file %s/%s is in no index record",
			    f->name, f->rel, de->d_name);
	}
	closedir(d);
}

static void
check_index(struct checker *c, struct folder *f, uint32_t header_crc)
{
	const struct ids_index_header *h;
	struct ids_index_record rec;
	struct ids_index *idx;
	uint32_t i;
	int r;

	if ((r = ids_index_open(meta_fd(c, f, IDS_META_INDEX), &idx)) < 0) {
		violation(c, "%s: cyrus.index: %s", f->name, ids_errmsg(r));
		return;
	}
	h = ids_index_header(idx);
	if (h->uidvalidity != f->e.uidvalidity)
		violation(c, "%s: uidvalidity %u in cyrus.index, %u in mailboxes.db",
		    f->name, h->uidvalidity, f->e.uidvalidity);
	if (h->header_file_crc != header_crc)
		violation(c, "%s: cyrus.index header_file_crc %08x, cyrus.header has %08x",
		    f->name, h->header_file_crc, header_crc);
	for (i = 0; i < h->num_records; i++) {
		if ((r = ids_index_record(idx, i, &rec)) < 0) {
			violation(c, "%s: %s", f->name, ids_errmsg(r));
			continue;
		}
		if (!(rec.system_flags & IDS_FLAG_EXPUNGED))
			check_record(c, f, &rec);
	}
	check_orphans(c, f, idx);
	ids_index_free(idx);
}

static int
cmp_guid(const void *a, const void *b)
{
	return memcmp(a, b, IDS_GUID_LEN);
}

/* The folder's entry in the report, with the digest of its sorted GUIDs. */
static void
report_folder(struct checker *c, struct folder *f)
{
	uint8_t digest[IDS_GUID_LEN];
	char hex[IDS_GUID_HEXLEN + 1];
	size_t n = c->nguids - f->first_guid;
	json_t *j;

	if (n > 1)
		qsort(c->guids[f->first_guid], n, IDS_GUID_LEN, cmp_guid);
	ids_guid_buf(n ? c->guids[f->first_guid] : (void *)"", n * IDS_GUID_LEN, digest);
	ids_guid_hex(digest, hex);
	j = json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", f->name, "uniqueid",
	    f->e.uniqueid, "layout", ids_layout_name(f->loc.layout), "content", hex,
	    "messages", (json_int_t)n);
	json_array_append_new(c->folders, j);
}

static void
check_folder(struct checker *c, const struct live *l)
{
	struct folder f;
	struct ids_header h;
	uint32_t crc = 0;
	int r;

	memset(&f, 0, sizeof(f));
	f.fd[0] = f.fd[1] = -1;
	f.name = l->name;
	f.first_guid = c->nguids;
	ids_mbentry_init(&f.e);
	ids_header_init(&h);
	if ((r = ids_mboxlist_lookup(c->mbl, l->name, &f.e)) < 0 ||
	    (r = open_folder(c, &f)) < 0) {
		violation(c, "%s: not reachable through the resolver: %s", l->name,
		    ids_errmsg(r));
		goto out;
	}
	if ((r = ids_header_read(meta_fd(c, &f, IDS_META_HEADER), &h, &crc)) < 0)
		violation(c, "%s: cyrus.header: %s", l->name, ids_errmsg(r));
	else if (h.uniqueid == NULL || strcmp(h.uniqueid, f.e.uniqueid) != 0)
		violation(c, "%s: cyrus.header has uniqueid %s, mailboxes.db %s", l->name,
		    h.uniqueid ? h.uniqueid : "(none)", f.e.uniqueid);
	else if (f.loc.layout == IDS_LAYOUT_UNIQUEID &&
	    (h.name == NULL || strcmp(h.name, l->name) != 0))
		violation(c, "%s: cyrus.header names %s", l->name, h.name ? h.name : "(none)");
	check_index(c, &f, crc);
	report_folder(c, &f);
out:
	if (f.fd[0] >= 0)
		close(f.fd[0]);
	if (f.fd[1] >= 0)
		close(f.fd[1]);
	ids_header_release(&h);
	ids_mbentry_release(&f.e);
}

/* --- 3. the spool walk --------------------------------------------------- */

struct dirstat {
	int header, messages, temps, entries;
};

static void walk(struct checker *c, int root, int dirfd, const char *rel, int depth);

static void
walk_entry(struct checker *c, int root, int dirfd, const char *rel, const char *name,
    struct dirstat *ds, int depth)
{
	char sub[PATH_MAX];
	struct stat st;
	int fd;

	ds->entries++;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		violation(c, "symlink in the spool: %s%s%s", rel, *rel ? "/" : "", name);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "",
		    name) >= sizeof(sub))
			return;
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			walk(c, root, fd, sub, depth + 1);
		return;
	}
	switch (ids_folder_classify(name, NULL)) {
	case IDS_FILE_MESSAGE: ds->messages++; break;
	case IDS_FILE_TEMP: ds->temps++; break;
	case IDS_FILE_META: ds->header += strcmp(name, IDS_HEADER_FILE) == 0; break;
	}
}

/* A directory that holds folder files must be a live folder's. */
static void
judge_dir(struct checker *c, int root, int dirfd, const char *rel, const struct dirstat *ds)
{
	struct ids_header h;

	if (known_dir(c, root, rel))
		return;
	if (ds->header) {
		ids_header_init(&h);
		if (ids_header_read(dirfd, &h, NULL) == 0 && h.uniqueid != NULL) {
			struct live *l;

			for (l = c->live; l < c->live + c->nlive; l++)
				if (strcmp(l->uniqueid, h.uniqueid) == 0)
					break;
			if (l < c->live + c->nlive)
				violation(c, "%s: a second folder of %s (uniqueid %s) on disk",
				    rel, l->name, h.uniqueid);
			else
				violation(c, "%s: stray folder (uniqueid %s, no live mailbox)",
				    rel, h.uniqueid);
		} else {
			violation(c, "%s: stray cyrus.header (no live mailbox)", rel);
		}
		ids_header_release(&h);
	}
	if (ds->messages)
		violation(c, "%s: %d message file%s in no live folder", rel, ds->messages,
		    ds->messages == 1 ? "" : "s");
	if (ds->temps)
		note(c, "%s: %d temporary file%s", rel, ds->temps, ds->temps == 1 ? "" : "s");
	if (ds->entries == 0 && *rel)
		note(c, "%s: empty directory", rel);
}

static void
walk(struct checker *c, int root, int dirfd, const char *rel, int depth)
{
	struct dirstat ds = { 0, 0, 0, 0 };
	struct dirent *de;
	DIR *d;
	int fd;

	if (depth > MAX_DEPTH || (fd = dup(dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		violation(c, "%s: cannot walk", rel);
		close(dirfd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			walk_entry(c, root, dirfd, rel, de->d_name, &ds, depth);
	closedir(d);
	judge_dir(c, root, dirfd, rel, &ds);
	close(dirfd);
}

static void
walk_spool(struct checker *c)
{
	const char *top;
	size_t i;
	int j, fd;

	if (c->ndirs > 1)
		qsort(c->dirs, c->ndirs, sizeof(*c->dirs), cmp_str);
	for (i = 0; i < c->cfg->npartitions; i++) {
		for (j = 0; j < 2; j++) {
			top = j ? c->cfg->partitions[i].metapath : c->cfg->partitions[i].path;
			if (top == NULL || (j == 1 && c->cfg->metapartition_files == 0))
				continue;
			if (ids_opendir_abs(top, &fd) == 0)
				walk(c, j, fd, "", 0);
		}
	}
}

/* --- the report ---------------------------------------------------------- */

static json_t *
message_multiset(struct checker *c)
{
	char hex[IDS_GUID_HEXLEN + 1];
	json_t *m = json_object();
	size_t i, n;

	if (c->nguids > 1)
		qsort(c->guids, c->nguids, IDS_GUID_LEN, cmp_guid);
	for (i = 0; i < c->nguids; i += n) {
		for (n = 1; i + n < c->nguids && !cmp_guid(c->guids[i], c->guids[i + n]); n++)
			continue;
		ids_guid_hex(c->guids[i], hex);
		json_object_set_new(m, hex, json_integer((json_int_t)n));
	}
	return m;
}

static void
checker_release(struct checker *c)
{
	size_t i;

	for (i = 0; i < c->nlive; i++) {
		free(c->live[i].name);
		free(c->live[i].uniqueid);
	}
	for (i = 0; i < c->ndirs; i++)
		free(c->dirs[i]);
	free(c->live);
	free(c->dirs);
	free(c->guids);
}

int
helper_check(const struct ids_config *cfg, struct ids_mboxlist *mbl, int quiet)
{
	struct checker c;
	json_t *out;
	size_t i, nviol;
	int r;

	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.mbl = mbl;
	c.violations = json_array();
	c.notes = json_array();
	c.folders = json_array();
	if ((r = ids_mboxlist_read(mbl, db_txn, &c)) < 0)
		violation(&c, "mailboxes.db: %s", ids_errmsg(r));
	for (i = 0; i < c.nlive; i++)
		check_folder(&c, &c.live[i]);
	walk_spool(&c);
	nviol = json_array_size(c.violations);
	out = json_pack("{s:o, s:o, s:o, s:o}", "violations", c.violations, "notes",
	    c.notes, "folders", c.folders, "messages", message_multiset(&c));
	if (!quiet)
		json_dumpf(out, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
	else
		for (i = 0; i < nviol; i++)
			printf("%s\n", json_string_value(json_array_get(c.violations, i)));
	if (!quiet)
		putchar('\n');
	json_decref(out);
	checker_release(&c);
	return nviol ? 1 : 0;
}
