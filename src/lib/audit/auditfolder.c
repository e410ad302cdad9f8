/*
 * auditfolder.c - the checks of one folder (auditpriv.h, spool-layout.md
 * "Audit"): its directory where the resolver says and no copy at the
 * other layout's path; cyrus.header readable and naming the folder's
 * uniqueid (and, in the uniqueid layout, its name); cyrus.index sound,
 * its records consistent, its uidvalidity that of mailboxes.db and its
 * header_file_crc that of cyrus.header; cyrus.cache of the index's
 * generation; every record that needs a file matched by one, every
 * message file matched by a record.  The files themselves are checked
 * by ids_folder_hash(), in chunks, possibly on several threads.
 */
#include <dirent.h>
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
#include "fsutil.h"
#include "lock.h"
#include "mailbox.h"

/* --- opening ------------------------------------------------------- */

/* The directory fd and absolute path holding meta files of kind. */
static int
side_metafd(const struct aside *s, enum ids_metafile kind, const char **dir)
{
	if (s->metafd >= 0 && (s->cfg->metapartition_files & (1u << kind))) {
		*dir = s->metapath;
		return s->metafd;
	}
	*dir = s->datapath;
	return s->datafd;
}

static int
side_path(const struct aside *s, enum ids_metafile kind, char *buf, size_t size)
{
	const char *dir;

	(void)side_metafd(s, kind, &dir);
	return ids_abspath(buf, size, dir, NULL, ids_metafile_name(kind));
}

int
ids_side_open(struct aside *s)
{
	const struct ids_partition *part;
	char rel[PATH_MAX];
	size_t pi;
	int r;

	if ((r = ids_location_from_entry(&s->e, &s->mbn, &s->loc)) < 0)
		return r;
	s->located = 1;
	if ((part = ids_config_partition(s->cfg, s->loc.partition)) == NULL)
		return ids_error(IDS_EPARTITION, "partition '%s' is not configured",
		    s->loc.partition ? s->loc.partition : "(default)");
	pi = (size_t)(part - s->cfg->partitions);
	if ((r = ids_path_reldir(s->cfg, &s->loc, rel, sizeof(rel))) < 0 ||
	    (r = ids_abspath(s->datapath, sizeof(s->datapath), part->path, rel, NULL)) < 0)
		return r;
	if (s->rootfds[pi] < 0)
		return ids_error(-ENOENT, "partition root %s is missing", part->path);
	if ((r = ids_audit_opendir(s->rootfds[pi], rel, &s->datafd)) < 0)
		return r;
	if (part->metapath == NULL || s->cfg->metapartition_files == 0)
		return 0;
	if ((r = ids_abspath(s->metapath, sizeof(s->metapath), part->metapath, rel, NULL)) < 0)
		return r;
	if (s->metarootfds[pi] < 0)
		return ids_error(-ENOENT, "metapartition root %s is missing", part->metapath);
	if ((r = ids_audit_opendir(s->metarootfds[pi], rel, &s->metafd)) < 0)
		strcpy(s->datapath, s->metapath);	/* name the directory that failed */
	return r;
}

static void
add_known(struct afolder *f, int fd)
{
	struct stat st;

	if (fd >= 0 && f->nknown < 4 && fstat(fd, &st) == 0) {
		f->known_dev[f->nknown] = st.st_dev;
		f->known_ino[f->nknown++] = st.st_ino;
	}
}

/* --- cyrus.header, cyrus.cache ------------------------------------- */

static void
check_header(struct afolder *f)
{
	struct aside *s = &f->here;
	const char *dir;
	char path[PATH_MAX];
	int r, hfd = side_metafd(s, IDS_META_HEADER, &dir);

	side_path(s, IDS_META_HEADER, path, sizeof(path));
	if ((r = ids_header_read(hfd, &s->h, &s->header_crc)) < 0) {
		ids_af_resource(&f->f, r);
		ids_af_add(&f->f, IDS_AUDIT_HEADER, 0, path, "a readable cyrus.header",
		    r == -ENOENT ? "absent" : ids_errmsg(r));
		return;
	}
	s->have_header = 1;
	if (s->h.uniqueid == NULL || strcmp(s->h.uniqueid, s->e.uniqueid) != 0)
		ids_af_add(&f->f, IDS_AUDIT_HEADER_ID, 0, path, s->e.uniqueid,
		    s->h.uniqueid ? s->h.uniqueid : "none");
	/*
	 * Cyrus leaves the old name in the headers of renamed legacy
	 * folders; idspool writes the right one whenever it places a folder
	 * at its uniqueid path, so only there is a wrong name a finding.
	 */
	if (s->loc.layout == IDS_LAYOUT_UNIQUEID && s->h.name != NULL &&
	    strcmp(s->h.name, s->e.name) != 0)
		ids_af_add(&f->f, IDS_AUDIT_HEADER_NAME, 0, path, s->e.name, s->h.name);
}

static void
check_cache(struct afolder *f)
{
	struct aside *s = &f->here;
	const char *dir;
	unsigned char b[4];
	char path[PATH_MAX];
	uint32_t gen;
	ssize_t n;
	int fd, cfd = side_metafd(s, IDS_META_CACHE, &dir);

	side_path(s, IDS_META_CACHE, path, sizeof(path));
	if ((fd = openat(cfd, "cyrus.cache", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) < 0) {
		ids_af_resource(&f->f, -errno);
		if (errno != ENOENT)	/* Cyrus always has one; idspool does not need it */
			ids_af_add(&f->f, IDS_AUDIT_CACHE, 0, path, "a readable cyrus.cache",
			    errno == ELOOP ? "symlink" : strerror(errno));
		return;
	}
	n = pread(fd, b, sizeof(b), 0);
	close(fd);
	gen = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	if (n < (ssize_t)sizeof(b))
		ids_af_addf(&f->f, IDS_AUDIT_CACHE, 0, path, "generation header",
		    "%zd bytes", n < 0 ? (ssize_t)0 : n);
	else if (gen != s->ih.generation_no)
		ids_af_addf(&f->f, IDS_AUDIT_CACHE, 0, path, NULL, "generation %u, index %u",
		    gen, s->ih.generation_no);
}

/* --- cyrus.index --------------------------------------------------- */

static int
amsg_cmp(const void *a, const void *b)
{
	const struct amsg *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static void
record_to_msg(const struct ids_index_record *rec, struct amsg *m, unsigned long *archived)
{
	memset(m, 0, sizeof(*m));
	m->uid = rec->uid;
	m->flags = rec->system_flags;
	memcpy(m->user_flags, rec->user_flags, sizeof(m->user_flags));
	m->size = rec->size;
	memcpy(m->guid, rec->guid, IDS_GUID_LEN);
	m->state = AM_TODO;
	if ((m->flags & IDS_FLAG_EXPUNGED) && (m->flags & IDS_FLAG_UNLINKED)) {
		m->state = AM_SKIP;
		m->skip = SKIP_UNLINKED;
	} else if (m->flags & IDS_FLAG_ARCHIVED) {
		m->state = AM_SKIP;
		m->skip = SKIP_ARCHIVED;
		if (archived)
			(*archived)++;
	}
}

/* The counts and order the header promises, against the records (l may be NULL). */
static void
check_counts(struct aside *s, struct aflist *l, const char *path, uint32_t exists,
    int disorder, uint32_t beyond, int bad)
{
	if (l == NULL)
		return;
	if (disorder)
		ids_af_add(l, IDS_AUDIT_INDEX_COUNTS, 0, path, "uids ascending", "out of order");
	if (beyond)
		ids_af_addf(l, IDS_AUDIT_INDEX_COUNTS, beyond, path, NULL,
		    "uid %u above last_uid %u", beyond, s->ih.last_uid);
	if (!bad && exists != s->ih.exists)	/* a bad record's flags are unknown */
		ids_af_addf(l, IDS_AUDIT_INDEX_COUNTS, 0, path, NULL,
		    "exists %u, unexpunged records %u", s->ih.exists, exists);
}

/* Record i into s->m; a bad CRC is a finding (l) and leaves it untrusted. */
static int
read_record(struct aside *s, const struct ids_index *idx, uint32_t i, struct aflist *l,
    const char *path, unsigned long *archived)
{
	struct ids_index_record rec;
	struct amsg *m = &s->m[s->n++];
	int r = ids_index_record(idx, i, &rec);

	record_to_msg(&rec, m, archived);
	if (r == 0)
		return 0;
	m->state = AM_SKIP;
	m->skip = SKIP_BAD;
	if (l)
		ids_af_add(l, IDS_AUDIT_RECORD, rec.uid <= s->ih.last_uid ? rec.uid : 0, path,
		    "a valid record", ids_errmsg(r));
	return r;
}

int
ids_side_read_index(struct aside *s, struct aflist *l, unsigned long *archived)
{
	struct ids_index *idx;
	const char *dir;
	char path[PATH_MAX];
	uint32_t i, exists = 0, beyond = 0, prev = 0;
	int r, disorder = 0, bad = 0;

	side_path(s, IDS_META_INDEX, path, sizeof(path));
	if ((r = ids_index_open(side_metafd(s, IDS_META_INDEX, &dir), &idx)) < 0)
		return r;
	s->ih = *ids_index_header(idx);
	s->have_index = 1;
	if (s->ih.num_records && (s->m = calloc(s->ih.num_records, sizeof(*s->m))) == NULL) {
		ids_index_free(idx);
		return -ENOMEM;
	}
	for (i = 0; i < s->ih.num_records; i++) {
		const struct amsg *m = &s->m[s->n];

		if (read_record(s, idx, i, l, path, archived) < 0) {
			bad = 1;
			continue;
		}
		disorder |= i > 0 && m->uid <= prev;
		if (m->uid > s->ih.last_uid && beyond == 0)
			beyond = m->uid;
		exists += !(m->flags & IDS_FLAG_EXPUNGED);
		prev = m->uid;
	}
	ids_index_free(idx);
	check_counts(s, l, path, exists, disorder, beyond, bad);
	if (disorder)
		qsort(s->m, s->n, sizeof(*s->m), amsg_cmp);
	return 0;
}

/* --- the directory listing ----------------------------------------- */

struct dent {
	uint32_t uid;
	unsigned char type;
};

static int
dent_cmp(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* The message files in dirfd, sorted by uid, in *vp (malloc'd). */
static int
list_messages(int dirfd, struct dent **vp, size_t *np)
{
	struct dent *v = NULL;
	struct dirent *de;
	size_t n = 0, alloc = 0;
	uint32_t uid;
	DIR *d;
	int fd;

	if ((fd = dup(dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (ids_folder_classify(de->d_name, &uid) != IDS_FILE_MESSAGE)
			continue;
		if (IDS_ALLOC_GROW(v, n + 1, alloc) < 0) {
			closedir(d);
			free(v);
			return -ENOMEM;
		}
		v[n].uid = uid;
		v[n++].type = de->d_type;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), dent_cmp);
	*vp = v;
	*np = n;
	return 0;
}

static void
report_orphan(struct aside *s, struct aflist *l, const struct dent *d,
    const struct amsg *m)
{
	char path[PATH_MAX], name[16];
	const char *expected;
	struct stat st;

	snprintf(name, sizeof(name), "%u.", d->uid);
	if (ids_abspath(path, sizeof(path), s->datapath, NULL, name) < 0)
		return;
	if (fstatat(s->datafd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;		/* gone meanwhile */
	expected = m ? "no file (record expunged and unlinked)" : "no file (no record)";
	if (S_ISREG(st.st_mode))
		ids_af_addf(l, IDS_AUDIT_ORPHAN, d->uid, path, expected, "%lld bytes",
		    (long long)st.st_size);
	else
		ids_af_add(l, IDS_AUDIT_ORPHAN, d->uid, path, expected,
		    ids_amsg_what((uint8_t)((st.st_mode & S_IFMT) >> 12)));
}

/* Marks s->m present/absent from a listing of the data directory; orphans to l. */
static int
side_list(struct aside *s, struct aflist *l)
{
	struct dent *d = NULL;
	size_t nd = 0, i = 0, j = 0;
	int r;

	if ((r = list_messages(s->datafd, &d, &nd)) < 0)
		return r;
	while (i < s->n || j < nd) {
		if (j == nd || (i < s->n && s->m[i].uid < d[j].uid)) {
			if (s->m[i].state == AM_TODO)
				s->m[i].state = AM_ABSENT;
			i++;
		} else if (i == s->n || d[j].uid < s->m[i].uid) {
			if (l)
				report_orphan(s, l, &d[j], NULL);
			j++;
		} else {
			/* Every record of this uid (a corrupt index may repeat one). */
			uint32_t uid = d[j].uid;
			int needed = 0;

			for (; i < s->n && s->m[i].uid == uid; i++)
				needed |= s->m[i].state != AM_SKIP || s->m[i].skip != SKIP_UNLINKED;
			if (!needed && l)
				report_orphan(s, l, &d[j], &s->m[i - 1]);
			j++;
		}
	}
	free(d);
	return 0;
}

/* --- the other layout's directory ----------------------------------- */

/* Counts the message files in dirfd (stops counting at 1000). */
static unsigned
count_messages(int dirfd)
{
	struct dirent *de;
	unsigned n = 0;
	DIR *d;
	int fd;

	if ((fd = dup(dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while (n < 1000 && (de = readdir(d)) != NULL)
		n += ids_folder_classify(de->d_name, NULL) == IDS_FILE_MESSAGE;
	closedir(d);
	return n;
}

/*
 * A copy of the folder at the path the other layout gives it: a
 * cyrus.header with its uniqueid there, or message files without any
 * cyrus.header (a legacy directory may also just hold child folders).
 */
static void
check_other_layout(struct afolder *f)
{
	struct aside *s = &f->here;
	struct ids_location o = s->loc;
	const struct ids_partition *part = ids_config_partition(s->cfg, s->loc.partition);
	struct ids_header h;
	char rel[PATH_MAX], path[PATH_MAX];
	unsigned nmsg;
	int fd, same, hr;

	o.layout = s->loc.layout == IDS_LAYOUT_LEGACY ? IDS_LAYOUT_UNIQUEID : IDS_LAYOUT_LEGACY;
	if (part == NULL || ids_path_reldir(s->cfg, &o, rel, sizeof(rel)) < 0 ||
	    ids_abspath(path, sizeof(path), part->path, rel, NULL) < 0 ||
	    s->rootfds[part - s->cfg->partitions] < 0 ||
	    ids_audit_opendir(s->rootfds[part - s->cfg->partitions], rel, &fd) < 0)
		return;
	add_known(f, fd);
	ids_header_init(&h);
	hr = ids_header_read(fd, &h, NULL);
	same = hr == 0 && h.uniqueid != NULL && strcmp(h.uniqueid, s->e.uniqueid) == 0;
	nmsg = count_messages(fd);
	close(fd);
	ids_header_release(&h);
	if (same || (hr == -ENOENT && nmsg > 0))
		ids_af_addf(&f->f, IDS_AUDIT_LAYOUT_COPY, 0, path, "no copy of the folder",
		    "%s%u message files (%s layout; the folder is %s)",
		    same ? "its cyrus.header and " : "", nmsg, ids_layout_name(o.layout),
		    s->datafd >= 0 ? "where the resolver says" : "not where the resolver says");
}

/* --- a folder ------------------------------------------------------ */

static void
check_index(struct afolder *f)
{
	struct aside *s = &f->here;
	char path[PATH_MAX];
	int r;

	side_path(s, IDS_META_INDEX, path, sizeof(path));
	if ((r = ids_side_read_index(s, &f->f, &f->archived)) < 0) {
		ids_af_resource(&f->f, r);
		ids_af_add(&f->f, IDS_AUDIT_INDEX, 0, path, "a readable cyrus.index",
		    r == -ENOENT ? "absent" : ids_errmsg(r));
		return;
	}
	if (s->e.uidvalidity != 0 && s->ih.uidvalidity != s->e.uidvalidity)
		ids_af_addf(&f->f, IDS_AUDIT_UIDVALIDITY, 0, path, NULL,
		    "mailboxes.db %u, cyrus.index %u", s->e.uidvalidity, s->ih.uidvalidity);
	if (s->have_header && s->ih.header_file_crc != s->header_crc)
		ids_af_addf(&f->f, IDS_AUDIT_HEADER_CRC, 0, path, NULL,
		    "header_file_crc %08x, cyrus.header %08x", s->ih.header_file_crc,
		    s->header_crc);
	check_cache(f);
	if ((r = side_list(s, &f->f)) < 0) {
		ids_af_resource(&f->f, r);
		ids_af_add(&f->f, IDS_AUDIT_FOLDER_MISSING, 0, s->datapath, "a readable directory",
		    ids_errmsg(r));
	}
}

/* The other copy: its directory, header (for flag names), index, listing. */
static void
prepare_there(struct afolder *f)
{
	struct aside *t = &f->there;
	struct aflist *l = &f->f;
	char path[PATH_MAX];
	int r, section = l->section;

	l->section = 1;
	if ((r = ids_side_open(t)) < 0) {
		ids_af_resource(l, r);
		ids_af_add(l, IDS_AUDIT_THERE_FILE, 0, t->datapath, "the folder directory",
		    ids_errmsg(r));
	} else {
		const char *dir;

		if (ids_header_read(side_metafd(t, IDS_META_HEADER, &dir), &t->h, NULL) == 0)
			t->have_header = 1;
		side_path(t, IDS_META_INDEX, path, sizeof(path));
		if ((r = ids_side_read_index(t, NULL, NULL)) < 0) {
			ids_af_resource(l, r);
			ids_af_add(l, IDS_AUDIT_THERE_FILE, 0, path, "a readable cyrus.index",
			    ids_errmsg(r));
		} else if ((r = side_list(t, NULL)) < 0) {
			ids_af_resource(l, r);
			ids_af_add(l, IDS_AUDIT_THERE_FILE, 0, t->datapath, "a readable directory",
			    ids_errmsg(r));
		}
	}
	l->section = section;
}

void
ids_folder_prepare(struct afolder *f)
{
	struct aside *s = &f->here;
	int r;

	if ((r = ids_side_open(s)) < 0) {
		ids_af_resource(&f->f, r);
		ids_af_add(&f->f, s->located ? IDS_AUDIT_FOLDER_MISSING : IDS_AUDIT_DB, 0,
		    s->located ? s->datapath : NULL, "the folder directory",
		    r == -ENOENT ? "absent" : ids_errmsg(r));
	} else {
		add_known(f, s->datafd);
		add_known(f, s->metafd);
		check_header(f);
		check_index(f);
	}
	if (s->located && !f->intent)
		check_other_layout(f);
	if (f->has_there)
		prepare_there(f);
}

size_t
ids_folder_nwork(const struct afolder *f)
{
	return f->here.n + (f->has_there ? f->there.n : 0);
}

void
ids_folder_hash(struct afolder *f, struct hasher *h, size_t start, size_t end,
    unsigned long *files, unsigned long long *bytes)
{
	struct aside *s;
	struct amsg *m;
	char name[16];
	size_t i;

	for (i = start; i < end; i++) {
		s = i < f->here.n ? &f->here : &f->there;
		m = &s->m[s == &f->here ? i : i - f->here.n];
		if (m->state != AM_TODO)
			continue;
		snprintf(name, sizeof(name), "%u.", m->uid);
		if ((s == &f->there && !f->md5) || f->stat_only) {
			ids_hasher_stat(s->datafd, name, m);
		} else if (h == NULL) {
			m->state = AM_ERROR;
			m->err = -ENOMEM;
		} else {
			*bytes += ids_hasher_check(h, s->datafd, name, m, f->md5);
			(*files)++;
			m->vanished = m->state == AM_ABSENT;
		}
	}
}

/* A damaged file here whose GUID a copy could restore; there: another kind. */
static void
mark_repairable(struct afinding *a, const struct amsg *m, int there)
{
	if (a == NULL)
		return;
	if (there) {
		a->kind = IDS_AUDIT_THERE_FILE;
	} else if (!ids_guid_is_null(m->guid)) {
		a->repairable = 1;
		memcpy(a->guid, m->guid, IDS_GUID_LEN);
		a->size = m->size;
	}
}

/* The finding for a checked file (here or, as THERE_FILE, there). */
void
ids_msg_finding(struct aflist *l, const struct aside *s, const struct amsg *m,
    int there)
{
	char path[PATH_MAX], name[16], want[IDS_GUID_HEXLEN + 1], got[IDS_GUID_HEXLEN + 1];
	char exp[96];
	struct afinding *a = NULL;

	snprintf(name, sizeof(name), "%u.", m->uid);
	if (ids_abspath(path, sizeof(path), s->datapath, NULL, name) < 0)
		return;
	ids_guid_hex(m->guid, want);
	ids_guid_hex(m->sha1, got);
	switch (m->state) {
	case AM_ABSENT:
		snprintf(exp, sizeof(exp), "%llu bytes%s%s", (unsigned long long)m->size,
		    ids_guid_is_null(m->guid) ? "" : ", sha1 ",
		    ids_guid_is_null(m->guid) ? "" : want);
		a = ids_af_add(l, IDS_AUDIT_FILE_MISSING, m->uid, path, exp, "absent");
		break;
	case AM_SIZE:
		snprintf(exp, sizeof(exp), "%llu bytes", (unsigned long long)m->size);
		a = ids_af_addf(l, IDS_AUDIT_FILE_SIZE, m->uid, path, exp, "%llu bytes",
		    (unsigned long long)m->fsize);
		break;
	case AM_GUID:
		a = ids_af_add(l, IDS_AUDIT_FILE_GUID, m->uid, path, want, got);
		break;
	case AM_UNSAFE:
		ids_af_add(l, IDS_AUDIT_FILE_UNSAFE, m->uid, path, "a regular file", ids_amsg_what(m->what));
		return;
	case AM_ERROR:
		ids_af_resource(l, m->err);
		ids_af_add(l, IDS_AUDIT_FILE_ERROR, m->uid, path, "a readable file", ids_strerror(m->err));
		return;
	default:
		return;
	}
	mark_repairable(a, m, there);
}

static void
side_close(struct aside *s)
{
	if (s->datafd >= 0)
		close(s->datafd);
	if (s->metafd >= 0)
		close(s->metafd);
	s->datafd = s->metafd = -1;
}

/* The record of uid in s->m (sorted), or NULL. */
static struct amsg *
find_msg(const struct aside *s, uint32_t uid)
{
	struct amsg key;

	key.uid = uid;
	return s->n ? bsearch(&key, s->m, s->n, sizeof(key), amsg_cmp) : NULL;
}

static int
suspicious(const struct afolder *f)
{
	size_t i;

	for (i = 0; i < f->f.n; i++)
		if (f->f.v[i].kind == IDS_AUDIT_ORPHAN)
			return 1;
	for (i = 0; i < f->here.n; i++)
		if (f->here.m[i].state == AM_ABSENT)
			return 1;
	return 0;
}

/* Applies a fresh reading of the index to the missing files and orphans. */
static void
recheck_index(struct afolder *f, const struct ids_index *idx)
{
	struct ids_index_record rec;
	struct amsg fresh, *m;
	uint32_t i;
	size_t k, j = 0;

	for (k = 0; k < f->here.n; k++)
		if (f->here.m[k].state == AM_ABSENT)
			f->here.m[k].skip = SKIP_GONE;
	for (i = 0; i < ids_index_header(idx)->num_records; i++) {
		if (ids_index_record(idx, i, &rec) < 0)
			continue;
		record_to_msg(&rec, &fresh, NULL);
		if ((m = find_msg(&f->here, rec.uid)) != NULL && m->state == AM_ABSENT)
			m->skip = fresh.state == AM_SKIP ? SKIP_GONE : SKIP_NONE;
		if (fresh.state == AM_SKIP)
			continue;
		for (k = 0; k < f->f.n; k++)	/* delivered meanwhile: not an orphan */
			if (f->f.v[k].kind == IDS_AUDIT_ORPHAN && f->f.v[k].uid == rec.uid)
				f->f.v[k].kind = IDS_AUDIT_NKINDS;
	}
	for (k = 0; k < f->here.n; k++)	/* expunged and unlinked, or repacked away */
		if (f->here.m[k].state == AM_ABSENT && f->here.m[k].skip == SKIP_GONE)
			f->here.m[k].state = AM_SKIP;
	for (k = 0; k < f->f.n; k++) {
		if (f->f.v[k].kind == IDS_AUDIT_NKINDS)
			ids_af_release(&f->f.v[k]);
		else
			f->f.v[j++] = f->f.v[k];
	}
	f->f.n = j;
}

/*
 * Missing files and orphans may be a delivery or an expunge that ran
 * between the reading of the index and the listing: under the folder's
 * lock (shared), the index is read again and what it explains dropped.
 */
static void
recheck(struct afolder *f)
{
	struct ids_lock *lock = NULL;
	struct ids_index *idx;
	const char *dir;

	if (!f->here.have_index || f->here.datafd < 0 || !suspicious(f))
		return;
	if (ids_lock_mailbox(f->here.cfg, f->here.e.uniqueid, IDS_LOCK_SHARED,
	    f->lock_timeout_ms, &lock) < 0)
		lock = NULL;	/* a read-only config directory: recheck unlocked */
	if (ids_index_open(side_metafd(&f->here, IDS_META_INDEX, &dir), &idx) == 0) {
		recheck_index(f, idx);
		ids_index_free(idx);
	}
	ids_unlock(lock);
}

void
ids_folder_finish(struct afolder *f)
{
	size_t i;

	recheck(f);
	for (i = 0; i < f->here.n; i++)
		ids_msg_finding(&f->f, &f->here, &f->here.m[i], 0);
	if (f->has_there)
		ids_compare_folder(f);
	ids_aflist_sort(&f->f);
	side_close(&f->here);
	side_close(&f->there);
}

static void
side_release(struct aside *s)
{
	side_close(s);
	ids_mbentry_release(&s->e);
	ids_header_release(&s->h);
	free(s->m);
	s->m = NULL;
	s->n = 0;
}

void
ids_folder_free(struct afolder *f)
{
	if (f == NULL)
		return;
	side_release(&f->here);
	side_release(&f->there);
	ids_aflist_release(&f->f);
	free(f);
}
