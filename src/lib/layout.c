/*
 * layout.c - the path resolver for the legacy and uniqueid layouts, and
 * its reverse (see layout.h and spool-layout.md, "Layouts").
 *
 * Each layout is a pair of functions in the layouts[] table: one writes
 * a folder's directory below the root, one reads a path below the root
 * back.  Everything else (roots, meta files, message files, finding the
 * root of a path) is shared and never asks which layout it serves.
 *
 * Paths are written into the caller's buffer through struct pathbuf,
 * whose pb_comp() is the only way a component gets in: it refuses empty
 * components, "." and "..", '/' and control bytes whatever the caller
 * handed over.  That single check is what keeps every path below its
 * root; the name and id parsers refuse such input earlier, with better
 * messages.  The reverse never trusts its own reading: it resolves the
 * folder it found and compares, so a path reads back only if the
 * forward resolver would have written exactly it.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxname.h"

#define REV_MAX		4096	/* longest path ids_path_reverse reads */
#define REV_COMPS	(IDS_MBNAME_ALL_LEVELS + 8)	/* below the root */
#define NOFIT		1	/* a reverse reading that does not apply */

struct pathbuf {
	char *buf;
	size_t size;	/* > 0 */
	size_t len;
	int r;		/* first error */
	int named;	/* r's detail is recorded already */
};

static void
pb_fail(struct pathbuf *pb, int r)
{
	if (pb->r == 0)
		pb->r = r;
}

static void
pb_raw(struct pathbuf *pb, const char *s, size_t n)
{
	if (pb->r != 0)
		return;
	if (n >= pb->size - pb->len) {
		pb_fail(pb, IDS_ETOOLONG);
		return;
	}
	memcpy(pb->buf + pb->len, s, n);
	pb->len += n;
}

/* Bytes a path component may not hold (1), and '.' (2), by value. */
static const unsigned char byte_class[256] = {
	[0x01] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['.'] = 2, ['/'] = 1, [0x7f] = 1,
};

/*
 * Appends s to the current component; '.' becomes '^' if escape.
 * The common case is one strlen, one memcpy and one branch-free pass
 * of table lookups; only a component holding '.' or a refused byte
 * takes the second, careful pass.
 */
static size_t
pb_bytes(struct pathbuf *pb, const char *s, int escape)
{
	char *d = pb->buf + pb->len;
	size_t n = strlen(s), i;
	unsigned char acc = 0;

	if (n >= pb->size - pb->len) {
		pb_fail(pb, IDS_ETOOLONG);
		return 0;
	}
	memcpy(d, s, n);
	for (i = 0; i < n; i++)
		acc |= byte_class[(unsigned char)d[i]];
	for (i = 0; acc != 0 && i < n; i++) {
		if (byte_class[(unsigned char)d[i]] == 1) {
			pb_fail(pb, ids_error(IDS_EBADNAME, "unsafe byte 0x%02x in a "
			    "path component", (unsigned char)d[i]));
			return 0;
		}
		if (escape && d[i] == '.')
			d[i] = '^';
	}
	pb->len += n;
	return n;
}

/*
 * Appends "/" (unless at the very start) and one checked component:
 * s, followed by "@" suffix when suffix is not NULL.
 */
static void
pb_comp(struct pathbuf *pb, const char *s, const char *suffix, int escape)
{
	size_t start, n;

	if (pb->r != 0)
		return;
	if (pb->len > 0)
		pb_raw(pb, "/", 1);
	start = pb->len;
	pb_bytes(pb, s, escape);
	if (suffix != NULL && pb->r == 0) {
		pb_raw(pb, "@", 1);
		pb_bytes(pb, suffix, 0);
	}
	if (pb->r != 0)
		return;
	n = pb->len - start;
	/* Refused here, before any intent: mkdir would fail after it. */
	if (n > NAME_MAX) {
		pb->named = 1;
		pb_fail(pb, ids_error(IDS_ETOOLONG, "path component '%.20s...' of %zu bytes: "
		    "a file name has at most %d", pb->buf + start, n, NAME_MAX));
		return;
	}
	if (n == 0 || (pb->buf[start] == '.' && (n == 1 ||
	    (n == 2 && pb->buf[start + 1] == '.'))))
		pb_fail(pb, ids_error(IDS_EBADNAME, "empty, '.' or '..' path component"));
}

static void
pb_hash(struct pathbuf *pb, char c)
{
	if (pb->len > 0)
		pb_raw(pb, "/", 1);
	pb_raw(pb, &c, 1);
}

static int
pb_finish(struct pathbuf *pb)
{
	if (pb->r == IDS_ETOOLONG && !pb->named)
		pb->r = ids_error(IDS_ETOOLONG, "path longer than %zu bytes",
		    pb->size - 1);
	if (pb->r != 0) {
		pb->buf[0] = '\0';
		return pb->r;
	}
	pb->buf[pb->len] = '\0';
	return (int)pb->len;
}

char
ids_dir_hash(const char *name, int fulldirhash)
{
	const unsigned char *p = (const unsigned char *)name;
	uint32_t n = 0;

	if (!fulldirhash) {
		if (*p >= 'a' && *p <= 'z')
			return (char)*p;
		return (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : 'q';
	}
	for (; *p != '\0' && *p != '.'; p++)
		n = ((n << 3) ^ (n >> 5)) ^ *p;
	return (char)('A' + n % 23);
}

/*
 * Cyrus's mboxname_hash(): [domain/[H/]<domain>/][H/]<level>/... with
 * H taken from the second level if there are two, else the first.
 */
static int
legacy_reldir(const struct ids_config *cfg, const struct ids_location *loc,
    struct pathbuf *pb)
{
	const struct ids_mbname *mb = loc->name;
	const char *lv[IDS_MBNAME_ALL_LEVELS];
	size_t n = ids_mbname_levels(mb, lv), i;

	if (n == 0)
		return ids_error(IDS_EBADNAME, "empty name");
	if (mb->domain != NULL) {
		pb_comp(pb, "domain", NULL, 0);
		if (cfg->hashimapspool)
			pb_hash(pb, ids_dir_hash(mb->domain, cfg->fulldirhash));
		pb_comp(pb, mb->domain, NULL, 0);
	}
	if (cfg->hashimapspool)
		pb_hash(pb, ids_dir_hash(n > 1 ? lv[1] : lv[0], cfg->fulldirhash));
	for (i = 0; i < n; i++)
		pb_comp(pb, lv[i], NULL, 1);
	return pb->r;
}

/* [H/]user/<local[@domain]>/<id> or [H/]<top[@domain]>/<id>. */
static int
uniqueid_reldir(const struct ids_config *cfg, const struct ids_location *loc,
    struct pathbuf *pb)
{
	const struct ids_mbname *mb = loc->name;
	const char *who = mb->localpart;
	int r;

	if (who == NULL && mb->nboxes > 0)
		who = mb->boxes[0];
	if (who == NULL)
		return ids_error(IDS_EBADNAME, "name without an owner");
	if ((r = ids_uniqueid_check(loc->uniqueid)) < 0)
		return r;
	if (cfg->hashimapspool)
		pb_hash(pb, ids_dir_hash(who, cfg->fulldirhash));
	if (mb->localpart != NULL)
		pb_comp(pb, "user", NULL, 0);
	pb_comp(pb, who, mb->domain, 0);
	pb_comp(pb, loc->uniqueid, NULL, 0);
	return pb->r;
}

struct revpath;
static int legacy_reverse(const struct ids_config *, const struct revpath *,
    struct ids_pathinfo *);
static int uniqueid_reverse(const struct ids_config *, const struct revpath *,
    struct ids_pathinfo *);

static const struct layout_ops {
	const char *name;
	int (*reldir)(const struct ids_config *, const struct ids_location *,
	    struct pathbuf *);
	/* 0, NOFIT, or a negative code */
	int (*reverse)(const struct ids_config *, const struct revpath *,
	    struct ids_pathinfo *);
} layouts[IDS_LAYOUT_COUNT] = {
	[IDS_LAYOUT_LEGACY] = { "legacy", legacy_reldir, legacy_reverse },
	[IDS_LAYOUT_UNIQUEID] = { "uniqueid", uniqueid_reldir, uniqueid_reverse },
};

const char *
ids_layout_name(enum ids_layout layout)
{
	if ((unsigned)layout >= IDS_LAYOUT_COUNT)
		return NULL;
	return layouts[layout].name;
}

int
ids_layout_parse(const char *s, enum ids_layout *out)
{
	unsigned i;

	for (i = 0; i < IDS_LAYOUT_COUNT; i++) {
		if (strcmp(s, layouts[i].name) == 0) {
			*out = (enum ids_layout)i;
			return 0;
		}
	}
	return ids_error(IDS_EINVAL, "unknown layout (legacy or uniqueid)");
}

int
ids_location_from_entry(const struct ids_mbentry *e, struct ids_mbname *mb,
    struct ids_location *loc)
{
	int r;

	if (e->name == NULL)
		return ids_error(IDS_EBADNAME, "entry without a name");
	if ((r = ids_mbname_parse_internal(mb, e->name, 0)) < 0)
		return r;
	if (ids_mbentry_is_tombstone(e))
		return ids_error(IDS_ENOTFOUND, "a tombstone has no folder");
	if (e->partition == NULL)
		return ids_error(IDS_EPARTITION, "entry without a partition");
	loc->name = mb;
	loc->uniqueid = e->uniqueid;
	loc->partition = e->partition;
	loc->layout = ids_mbentry_is_legacy(e) ? IDS_LAYOUT_LEGACY :
	    IDS_LAYOUT_UNIQUEID;
	return 0;
}

static int
pb_init(struct pathbuf *pb, char *buf, size_t size)
{
	pb->buf = buf;
	pb->size = size;
	pb->len = 0;
	pb->named = 0;
	pb->r = 0;
	if (size == 0)
		return ids_error(IDS_ETOOLONG, "no room for a path");
	buf[0] = '\0';
	return 0;
}

/* root (may be NULL: relative) + the folder's directory, unterminated. */
static int
pb_folder(struct pathbuf *pb, const struct ids_config *cfg,
    const struct ids_location *loc, const char *root)
{
	if ((unsigned)loc->layout >= IDS_LAYOUT_COUNT)
		pb_fail(pb, ids_error(IDS_EINVAL, "unknown layout %d", (int)loc->layout));
	else if (loc->name == NULL)
		pb_fail(pb, ids_error(IDS_EINVAL, "no mailbox name"));
	if (root != NULL)
		pb_raw(pb, root, strlen(root));
	if (pb->r == 0) {
		int r = layouts[loc->layout].reldir(cfg, loc, pb);

		if (r < 0)
			pb_fail(pb, r);
	}
	return pb->r;
}

static const struct ids_partition *
partition_of(const struct ids_config *cfg, const struct ids_location *loc,
    int *rp)
{
	const struct ids_partition *p = ids_config_partition(cfg, loc->partition);

	if (p == NULL)
		*rp = ids_error(IDS_EPARTITION, "unknown partition '%s'",
		    loc->partition ? loc->partition : cfg->defaultpartition);
	return p;
}

int
ids_path_reldir(const struct ids_config *cfg, const struct ids_location *loc,
    char *buf, size_t size)
{
	struct pathbuf pb;
	int r;

	if ((r = pb_init(&pb, buf, size)) < 0)
		return r;
	pb_folder(&pb, cfg, loc, NULL);
	return pb_finish(&pb);
}

/* The root for loc: the metapartition for meta kinds moved there. */
static const char *
root_of(const struct ids_config *cfg, const struct ids_location *loc,
    int kind, int *rp)
{
	const struct ids_partition *p = partition_of(cfg, loc, rp);

	if (p == NULL)
		return NULL;
	if (kind >= 0 && p->metapath != NULL &&
	    (cfg->metapartition_files & (1u << kind)))
		return p->metapath;
	return p->path;
}

/* The absolute directory for kind (-1: data), plus an optional tail. */
static int
path_with(const struct ids_config *cfg, const struct ids_location *loc,
    int kind, const char *tail, size_t taillen, char *buf, size_t size)
{
	struct pathbuf pb;
	const char *root;
	int r = 0;

	if ((r = pb_init(&pb, buf, size)) < 0)
		return r;
	if ((root = root_of(cfg, loc, kind, &r)) == NULL)
		return r;
	pb_folder(&pb, cfg, loc, root);
	if (tail != NULL)
		pb_raw(&pb, tail, taillen);
	return pb_finish(&pb);
}

int
ids_path_datadir(const struct ids_config *cfg, const struct ids_location *loc,
    char *buf, size_t size)
{
	return path_with(cfg, loc, -1, NULL, 0, buf, size);
}

static int
check_kind(enum ids_metafile kind)
{
	if ((int)kind < 0 || kind >= IDS_META_NKINDS)
		return ids_error(IDS_EINVAL, "unknown meta file kind %d", (int)kind);
	return 0;
}

int
ids_path_metadir(const struct ids_config *cfg, const struct ids_location *loc,
    enum ids_metafile kind, char *buf, size_t size)
{
	int r;

	if ((r = check_kind(kind)) < 0)
		return r;
	return path_with(cfg, loc, (int)kind, NULL, 0, buf, size);
}

int
ids_path_metafile(const struct ids_config *cfg, const struct ids_location *loc,
    enum ids_metafile kind, char *buf, size_t size)
{
	char tail[64];
	int r, n;

	if ((r = check_kind(kind)) < 0)
		return r;
	n = snprintf(tail, sizeof(tail), "/%s", ids_metafile_name(kind));
	if (n < 0 || (size_t)n >= sizeof(tail))
		return ids_error(IDS_ETOOLONG, "meta file name");
	return path_with(cfg, loc, (int)kind, tail, (size_t)n, buf, size);
}

int
ids_path_message(const struct ids_config *cfg, const struct ids_location *loc,
    uint32_t uid, char *buf, size_t size)
{
	char tail[16], *p = tail + sizeof(tail);

	if (uid == 0)
		return ids_error(IDS_EINVAL, "uid 0");
	*--p = '.';
	for (; uid > 0; uid /= 10)
		*--p = (char)('0' + uid % 10);
	*--p = '/';
	return path_with(cfg, loc, -1, p, (size_t)(tail + sizeof(tail) - p),
	    buf, size);
}

/*
 * The reverse.  The path is normalised into rel (the part below the
 * root, components joined by single '/') and split into comp[], which
 * point into a second copy, so that the first k components of rel are
 * rel[0 .. prefix_len(k)).
 */
struct revpath {
	const struct ids_partition *partition;
	int metaroot;
	char rel[REV_MAX];
	char split[REV_MAX];
	const char *comp[REV_COMPS];
	size_t n;
};

static size_t
prefix_len(const struct revpath *rp, size_t k)
{
	if (k >= rp->n)
		return strlen(rp->rel);
	return (size_t)(rp->comp[k] - rp->split) - 1;
}

/* Writes path with single slashes into out; "." and ".." are refused. */
static int
normalise(const char *path, char *out, size_t size)
{
	size_t len = 0, n;

	if (path[0] != '/')
		return ids_error(IDS_EINVAL, "not an absolute path");
	while (*path != '\0') {
		while (*path == '/')
			path++;
		if ((n = strcspn(path, "/")) == 0)
			break;
		if ((n == 1 && path[0] == '.') || (n == 2 && !strncmp(path, "..", 2)))
			return ids_error(IDS_EINVAL, "'.' or '..' in the path");
		if (len + n + 2 > size)
			return ids_error(IDS_ETOOLONG, "path longer than %zu bytes", size - 1);
		out[len++] = '/';
		memcpy(out + len, path, n);
		len += n;
		path += n;
	}
	out[len] = '\0';
	return 0;
}

/* strlen(root) + 1 if root (normalised) is path or above it, else 0. */
static size_t
under(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (n == 0 || strncmp(path, root, n) != 0 ||
	    (path[n] != '/' && path[n] != '\0'))
		return 0;
	return n + 1;
}

/* Picks the longest root the path lies under; a data root wins a tie. */
static int
find_root(const struct ids_config *cfg, const char *norm, struct revpath *rp)
{
	const char *rest;
	size_t i, best = 0, n;

	for (i = 0; i < cfg->npartitions; i++) {
		const struct ids_partition *p = &cfg->partitions[i];

		if ((n = under(norm, p->path)) > best) {
			best = n;
			rp->partition = p;
			rp->metaroot = 0;
		}
		if (p->metapath && (n = under(norm, p->metapath)) > best) {
			best = n;
			rp->partition = p;
			rp->metaroot = 1;
		}
	}
	if (best == 0)
		return ids_error(IDS_EPARTITION, "not under any partition root");
	rest = norm + best - 1;		/* the '/' or NUL after the root */
	if (*rest == '/')
		rest++;
	memcpy(rp->rel, rest, strlen(rest) + 1);
	return 0;
}

static int
split_rel(struct revpath *rp)
{
	char *p;

	memcpy(rp->split, rp->rel, sizeof(rp->rel));
	rp->n = 0;
	for (p = rp->split; *p != '\0'; ) {
		if (rp->n == REV_COMPS)
			return ids_error(IDS_ENOTFOUND, "too deep to be a folder path");
		rp->comp[rp->n++] = p;
		p += strcspn(p, "/");
		if (*p == '/')
			*p++ = '\0';
	}
	return 0;
}

static int
is_hashdir(const char *s, int full)
{
	if (s[0] == '\0' || s[1] != '\0')
		return 0;
	return full ? (s[0] >= 'A' && s[0] <= 'W') : (s[0] >= 'a' && s[0] <= 'z');
}

/* "<uid>." with uid in 1..2^32-1 written without leading zeros. */
static int
parse_uid(const char *s, uint32_t *uid)
{
	uint64_t v = 0;
	size_t i;

	if (s[0] < '1' || s[0] > '9')
		return 0;
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++)
		if ((v = v * 10 + (uint64_t)(s[i] - '0')) > UINT32_MAX)
			return 0;
	if (s[i] != '.' || s[i + 1] != '\0')
		return 0;
	*uid = (uint32_t)v;
	return 1;
}

static int
classify_file(const char *name, struct ids_pathinfo *out)
{
	int kind;

	if (strlen(name) >= sizeof(out->file))
		return NOFIT;
	strcpy(out->file, name);
	if ((kind = ids_metafile_kind(name)) >= 0) {
		out->kind = IDS_PATH_META;
		out->metakind = (enum ids_metafile)kind;
	} else if (parse_uid(name, &out->uid)) {
		out->kind = IDS_PATH_MESSAGE;
	} else {
		out->kind = IDS_PATH_OTHER;
	}
	return 0;
}

/* Resolves loc below the root and compares with the path's first k components. */
static int
same_dir(const struct ids_config *cfg, const struct ids_location *loc,
    const struct revpath *rp, size_t k)
{
	char buf[REV_MAX];
	int n;

	n = ids_path_reldir(cfg, loc, buf, sizeof(buf));
	return n >= 0 && (size_t)n == prefix_len(rp, k) &&
	    memcmp(buf, rp->rel, (size_t)n) == 0;
}

/* Builds the internal name "[dom!]<prefix><a>.<b>..." from path pieces. */
static int
join_name(char *buf, size_t size, const char *domain, const char *prefix,
    const char *const *comp, size_t n, int escape)
{
	struct pathbuf pb;
	size_t i;

	pb_init(&pb, buf, size);
	if (domain != NULL) {
		pb_raw(&pb, domain, strlen(domain));
		pb_raw(&pb, "!", 1);
	}
	pb_raw(&pb, prefix, strlen(prefix));
	for (i = 0; i < n; i++) {
		if (i > 0)
			pb_raw(&pb, ".", 1);
		pb_bytes(&pb, comp[i], escape);
	}
	return pb_finish(&pb);
}

/*
 * The owner directory back to a name: the user's INBOX or the shared
 * top level.  With split, the domain follows the last '@'.
 */
static int
owner_name(const char *owner, int is_user, int split, struct ids_mbname *mb)
{
	char local[IDS_MBNAME_MAX + 1], dom[IDS_MBNAME_MAX + 1], name[IDS_MBNAME_MAX + 2];
	const char *at = split ? strrchr(owner, '@') : NULL;
	const char *lp = local;
	size_t n = at ? (size_t)(at - owner) : strlen(owner);

	if (n >= sizeof(local) || (at && strlen(at + 1) >= sizeof(dom)))
		return NOFIT;
	memcpy(local, owner, n);
	local[n] = '\0';
	if (at)
		strcpy(dom, at + 1);
	if (join_name(name, sizeof(name), at ? dom : NULL, is_user ? "user." : "",
	    &lp, 1, 1) < 0)
		return NOFIT;
	return ids_mbname_parse_internal(mb, name, 0) < 0 ? NOFIT : 0;
}

static int
uniqueid_reverse(const struct ids_config *cfg, const struct revpath *rp,
    struct ids_pathinfo *out)
{
	const char *const *c = rp->comp;
	struct ids_location loc;
	size_t i = cfg->hashimapspool ? 1 : 0, n = rp->n;

	int split = cfg->virtdomains != IDS_VIRTDOMAINS_OFF;

	out->is_user = n >= i + 3 && strcmp(c[i], "user") == 0;
	i += (size_t)out->is_user;
	if (n < i + 2 || n > i + 3 || ids_uniqueid_check(c[i + 1]) < 0 ||
	    strlen(c[i]) >= sizeof(out->owner))
		return NOFIT;
	loc.name = &out->name;
	loc.uniqueid = c[i + 1];
	loc.partition = NULL;
	loc.layout = IDS_LAYOUT_UNIQUEID;
	/* "a@b" is user a of domain b, or else a name holding an '@'. */
	for (; split >= 0; split--)
		if (owner_name(c[i], out->is_user, split, &out->name) == 0 &&
		    same_dir(cfg, &loc, rp, i + 2))
			break;
	if (split < 0)
		return NOFIT;
	strcpy(out->owner, c[i]);
	strcpy(out->uniqueid, c[i + 1]);
	out->layout = IDS_LAYOUT_UNIQUEID;
	out->kind = IDS_PATH_FOLDER;
	return n == i + 3 ? classify_file(c[i + 2], out) : 0;
}

/*
 * Counts the structural components above the folders: domain/H/dom, H.
 * With domains != 0 a first component "domain" starts a domain.
 */
static int
legacy_slots(const struct ids_config *cfg, const struct revpath *rp,
    int domains, size_t *firstp, const char **domainp)
{
	const char *const *c = rp->comp;
	size_t i = 0, n = rp->n, h = cfg->hashimapspool ? 1 : 0;

	*domainp = NULL;
	*firstp = n;
	if (domains && n > 0 && strcmp(c[0], "domain") == 0) {
		if (h && n > 1 && !is_hashdir(c[1], cfg->fulldirhash))
			return NOFIT;
		if (n <= 1 + h)
			return 0;
		*domainp = c[1 + h];
		if (h && c[1][0] != ids_dir_hash(*domainp, cfg->fulldirhash))
			return NOFIT;
		i = 2 + h;
	}
	if (h && n > i && !is_hashdir(c[i], cfg->fulldirhash))
		return NOFIT;
	*firstp = i + h;
	return 0;
}

static int
legacy_read(const struct ids_config *cfg, const struct revpath *rp,
    int domains, struct ids_pathinfo *out)
{
	const char *domain;
	char name[IDS_MBNAME_MAX + 2];
	struct ids_location loc;
	size_t first, end, n = rp->n;

	out->layout = IDS_LAYOUT_LEGACY;
	out->kind = IDS_PATH_SLOT;
	if (legacy_slots(cfg, rp, domains, &first, &domain) != 0)
		return NOFIT;
	if (first >= n || (first + 1 == n && strcmp(rp->comp[first], "user") == 0))
		return 0;
	for (end = first; end < n && strchr(rp->comp[end], '.') == NULL; end++)
		;
	if (end == first || end + 1 < n ||
	    join_name(name, sizeof(name), domain, "", rp->comp + first,
	    end - first, 0) < 0 ||
	    ids_mbname_parse_internal(&out->name, name, 0) < 0)
		return NOFIT;
	loc.name = &out->name;
	loc.uniqueid = NULL;
	loc.partition = NULL;
	loc.layout = IDS_LAYOUT_LEGACY;
	if (!same_dir(cfg, &loc, rp, end))
		return NOFIT;
	out->kind = IDS_PATH_FOLDER;
	return end < n ? classify_file(rp->comp[end], out) : 0;
}

/*
 * Without hashimapspool a shared folder "domain" lies where the domain
 * directories do (as in Cyrus): "domain/<x>" reads as the directory of
 * domain x, and only a path that fits no domain reads as that folder.
 */
static int
legacy_reverse(const struct ids_config *cfg, const struct revpath *rp,
    struct ids_pathinfo *out)
{
	int r = legacy_read(cfg, rp, 1, out);

	if (r == NOFIT && !cfg->hashimapspool && rp->n > 0 &&
	    strcmp(rp->comp[0], "domain") == 0)
		r = legacy_read(cfg, rp, 0, out);
	return r;
}

/* The uniqueid reading first: see ids_path_reverse() in layout.h. */
static const enum ids_layout reverse_order[IDS_LAYOUT_COUNT] = {
	IDS_LAYOUT_UNIQUEID, IDS_LAYOUT_LEGACY,
};

static int
reverse(const struct ids_config *cfg, const char *path, int layout,
    struct ids_pathinfo *out)
{
	struct revpath rp;
	char norm[REV_MAX];
	int r, i;

	memset(out, 0, sizeof(*out));
	if ((r = normalise(path, norm, sizeof(norm))) < 0 ||
	    (r = find_root(cfg, norm, &rp)) < 0 || (r = split_rel(&rp)) < 0)
		return r;
	for (i = 0, r = NOFIT; i < IDS_LAYOUT_COUNT && r == NOFIT; i++) {
		if (layout >= 0 && layout != (int)reverse_order[i])
			continue;
		memset(out, 0, sizeof(*out));
		out->partition = rp.partition;
		out->metaroot = rp.metaroot;
		r = layouts[reverse_order[i]].reverse(cfg, &rp, out);
	}
	if (r == NOFIT)
		return ids_error(IDS_ENOTFOUND, "not a folder path in the %s layout",
		    layout < 0 ? "legacy or uniqueid" : layouts[layout].name);
	return r;
}

int
ids_path_reverse(const struct ids_config *cfg, const char *path,
    struct ids_pathinfo *out)
{
	return reverse(cfg, path, -1, out);
}

int
ids_path_reverse_layout(const struct ids_config *cfg, const char *path,
    enum ids_layout layout, struct ids_pathinfo *out)
{
	if ((unsigned)layout >= IDS_LAYOUT_COUNT)
		return ids_error(IDS_EINVAL, "unknown layout %d", (int)layout);
	return reverse(cfg, path, (int)layout, out);
}
