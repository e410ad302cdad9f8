/*
 * header.c - reading and writing cyrus.header (see header.h).
 *
 * The old format is read the way Cyrus 3.4 reads it, with its quirks:
 * a first line of just a quota root (no TAB, no uniqueid) in very old
 * files, a trailing space after the flag names, an empty name between
 * two spaces meaning an unused flag bit, and the ACL's trailing TAB.
 * Trailing blanks and CRs at line ends are ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "header.h"

void
ids_header_init(struct ids_header *h)
{
	memset(h, 0, sizeof(*h));
}

static void
history_free(struct ids_history *hist, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ids_history_release(&hist[i]);
	free(hist);
}

static void
flags_free(char **flags, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(flags[i]);
	free(flags);
}

void
ids_header_release(struct ids_header *h)
{
	free(h->name);
	free(h->uniqueid);
	free(h->quotaroot);
	ids_acl_free(h->acl, h->nacl);
	flags_free(h->flags, h->nflags);
	history_free(h->history, h->nhistory);
	ids_dlist_free(h->extra);
	ids_header_init(h);
}

static uint32_t
crc_of(const char *buf, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)buf, (uInt)len);
}

/* --- the old (<= 3.4) format -------------------------------------------- */

/* Length of s[0..n) without trailing blanks and CRs. */
static size_t
trim_end(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	return n;
}

/* A malloc'd copy of s[0..n); NULL for n == 0.  NUL bytes are corrupt. */
static int
take(const char *s, size_t n, char **out)
{
	*out = NULL;
	if (n == 0)
		return 0;
	if (memchr(s, '\0', n))
		return ids_error(IDS_ECORRUPT, "NUL byte in cyrus.header");
	if ((*out = strndup(s, n)) == NULL)
		return -ENOMEM;
	return 0;
}

/* The line starting at *pos, without its LF; *pos moves past the LF. */
static int
next_line(const char *buf, size_t len, size_t *pos, const char **line,
    size_t *linelen, const char *what)
{
	const char *eol = memchr(buf + *pos, '\n', len - *pos);

	if (eol == NULL)
		return ids_error(IDS_ETRUNC, "cyrus.header: %s line at byte %zu not terminated",
		    what, *pos);
	*line = buf + *pos;
	*linelen = (size_t)(eol - *line);
	*pos += *linelen + 1;
	return 0;
}

/* "quotaroot TAB uniqueid", or just "quotaroot" in very old files. */
static int
parse_old_quota(struct ids_header *h, const char *s, size_t n)
{
	const char *tab = memchr(s, '\t', n), *id, *end;
	int r;

	n = trim_end(s, n);
	if (tab == NULL || tab >= s + n)
		return take(s, n, &h->quotaroot);
	if ((r = take(s, (size_t)(tab - s), &h->quotaroot)) < 0)
		return r;
	id = tab + 1;
	end = memchr(id, '\t', (size_t)(s + n - id));
	if (end == NULL)
		end = s + n;
	return take(id, (size_t)(end - id), &h->uniqueid);
}

/* Flag names separated by single spaces; an empty name is an unused bit. */
static int
parse_old_flags(struct ids_header *h, const char *s, size_t n)
{
	size_t i, start = 0, count = 0;
	int r;

	n = trim_end(s, n);
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		count += s[i] == ' ';
	if (++count > IDS_HEADER_MAX_FLAGS)
		return ids_error(IDS_ECORRUPT, "cyrus.header: %zu user flags, over %d",
		    count, IDS_HEADER_MAX_FLAGS);
	if ((h->flags = calloc(count, sizeof(*h->flags))) == NULL)
		return -ENOMEM;
	h->nflags = count;
	for (i = 0, count = 0; i <= n; i++) {
		if (i < n && s[i] != ' ')
			continue;
		if ((r = take(s + start, i - start, &h->flags[count++])) < 0)
			return r;
		start = i + 1;
	}
	return 0;
}

/* "id TAB rights TAB id TAB rights TAB" (trailing TAB optional). */
static int
parse_old_acl(struct ids_header *h, const char *s, size_t n)
{
	const char *p = s, *end = s + trim_end(s, n), *t1, *t2;
	char *id = NULL, *rights = NULL;
	size_t cap = 0;
	int r = 0;

	while (r == 0 && p < end) {
		t1 = memchr(p, '\t', (size_t)(end - p));
		if (t1 == NULL || t1 == p)
			return ids_error(IDS_ECORRUPT,
			    "cyrus.header: malformed ACL entry at byte %zu of its line",
			    (size_t)(p - s));
		t2 = memchr(t1 + 1, '\t', (size_t)(end - t1 - 1));
		if (t2 == NULL)
			t2 = end;
		if ((r = take(p, (size_t)(t1 - p), &id)) == 0 &&
		    (r = take(t1 + 1, (size_t)(t2 - t1 - 1), &rights)) == 0) {
			if (rights == NULL)
				rights = strdup("");
			r = ids_acl_append(&h->acl, &h->nacl, &cap, id, rights);
		} else {
			free(id);
			free(rights);
		}
		id = rights = NULL;
		p = t2 < end ? t2 + 1 : end;
	}
	/* A repeated identifier: its first place and its last rights. */
	return r < 0 ? r : ids_acl_dedup(h->acl, &h->nacl);
}

static int
parse_old(struct ids_header *h, const char *buf, size_t len, size_t pos)
{
	const char *line = NULL;
	size_t n = 0;
	int r;

	h->old_format = 1;
	if ((r = next_line(buf, len, &pos, &line, &n, "quota root")) < 0 ||
	    (r = parse_old_quota(h, line, n)) < 0 ||
	    (r = next_line(buf, len, &pos, &line, &n, "user flags")) < 0 ||
	    (r = parse_old_flags(h, line, n)) < 0 ||
	    (r = next_line(buf, len, &pos, &line, &n, "ACL")) < 0)
		return r;
	return parse_old_acl(h, line, n);
}

/* --- the dlist (3.6+) format -------------------------------------------- */

static int
flags_from_dlist(struct ids_header *h, const struct ids_dlist *list)
{
	const struct ids_dlist *c;
	size_t n = 0;

	if (list == NULL || list->type == IDS_DL_NIL)
		return 0;
	if (list->type != IDS_DL_LIST)
		return ids_error(IDS_ECORRUPT, "cyrus.header: U is not a list");
	for (c = list->head; c; c = c->next)
		n++;
	if (n > IDS_HEADER_MAX_FLAGS)
		return ids_error(IDS_ECORRUPT, "cyrus.header: %zu user flags, over %d",
		    n, IDS_HEADER_MAX_FLAGS);
	if (n == 0)
		return 0;
	if ((h->flags = calloc(n, sizeof(*h->flags))) == NULL)
		return -ENOMEM;
	for (c = list->head; c; c = c->next, h->nflags++) {
		/* NIL marks a removed flag; read an empty name the same way. */
		if (c->type == IDS_DL_NIL || (c->type == IDS_DL_STRING && c->len == 0))
			continue;
		if (ids_dlist_cstr(c) == NULL)
			return ids_error(IDS_ECORRUPT, "cyrus.header: user flag %zu is not a name",
			    h->nflags);
		if ((h->flags[h->nflags] = strdup(c->data)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Moves the children of kv whose keys we do not know into h->extra, in
 * one pass (unlinking each from the head on was quadratic in a line of
 * known keys followed by unknown ones).
 */
static int
keep_unknown(struct ids_header *h, struct ids_dlist *kv)
{
	struct ids_dlist *c, *next, *prev = NULL;

	for (c = kv->head; c; c = next) {
		next = c->next;
		if (strlen(c->name) == 1 && strchr("TNIQAUH", c->name[0])) {
			prev = c;
			continue;
		}
		if (h->extra == NULL && (h->extra = ids_dlist_new_kvlist()) == NULL)
			return -ENOMEM;
		/* Unlink c after prev, as ids_dlist_unlink() would from the head. */
		if (prev)
			prev->next = next;
		else
			kv->head = next;
		if (kv->tail == c)
			kv->tail = prev;
		c->next = NULL;
		if (ids_dlist_add_child(h->extra, NULL, c) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int
fields_from_dlist(struct ids_header *h, struct ids_dlist *kv)
{
	char *t = NULL;
	int r;

	if ((r = ids_dlist_get_str(kv, "N", &h->name)) < 0 ||
	    (r = ids_dlist_get_str(kv, "I", &h->uniqueid)) < 0 ||
	    (r = ids_dlist_get_str(kv, "Q", &h->quotaroot)) < 0 ||
	    (r = ids_dlist_get_str(kv, "T", &t)) < 0)
		return r;
	if (t && (r = ids_mbtype_check(t)) == 0)
		strcpy(h->mbtype, t);
	free(t);
	if (r < 0 ||
	    (r = ids_acl_from_dlist(ids_dlist_get(kv, "A"), &h->acl, &h->nacl)) < 0 ||
	    (r = flags_from_dlist(h, ids_dlist_get(kv, "U"))) < 0 ||
	    (r = ids_history_from_dlist(ids_dlist_get(kv, "H"), 0, &h->history,
	    &h->nhistory)) < 0)
		return r;
	return keep_unknown(h, kv);
}

/* Re-records the detail of r with the file offset the dlist started at. */
static int
at_offset(int r, size_t pos)
{
	char why[512];

	if (r == -ENOMEM)
		return r;
	/* A cut-short reason is still a reason: truncation is acceptable. */
	if ((size_t)snprintf(why, sizeof(why), "%s", ids_errmsg(r)) >= sizeof(why))
		why[sizeof(why) - 1] = '\0';
	return ids_error(r, "cyrus.header: in the data starting at byte %zu: %s", pos, why);
}

static int
parse_new(struct ids_header *h, const char *buf, size_t len, size_t pos)
{
	struct ids_dlist *kv;
	size_t used, end;
	int r;

	if ((r = ids_dlist_parse(buf + pos, len - pos, &kv, &used)) < 0)
		return at_offset(r, pos);
	end = pos + used;
	while (end < len && (buf[end] == ' ' || buf[end] == '\t' || buf[end] == '\r'))
		end++;
	if (kv->type != IDS_DL_KVLIST)
		r = ids_error(IDS_ECORRUPT, "cyrus.header: data is not a kvlist");
	else if (end == len)
		r = ids_error(IDS_ETRUNC, "cyrus.header: no newline after the data");
	else if (buf[end] != '\n')
		r = ids_error(IDS_ECORRUPT, "cyrus.header: unexpected byte after the data at byte %zu",
		    end);
	else
		r = fields_from_dlist(h, kv);
	ids_dlist_free(kv);
	return r;
}

int
ids_header_parse(struct ids_header *h, const char *buf, size_t len)
{
	size_t pos = IDS_HEADER_MAGIC_LEN;
	int r;

	ids_header_release(h);
	if (len < pos && (len == 0 || memcmp(buf, IDS_HEADER_MAGIC, len) == 0))
		return ids_error(IDS_ETRUNC, "cyrus.header: %zu bytes, shorter than its magic",
		    len);
	if (len < pos || memcmp(buf, IDS_HEADER_MAGIC, pos) != 0)
		return ids_error(IDS_ECORRUPT, "cyrus.header: wrong magic");
	if (pos == len)
		return ids_error(IDS_ETRUNC, "cyrus.header: nothing after the magic");
	r = buf[pos] == '%' ? parse_new(h, buf, len, pos) : parse_old(h, buf, len, pos);
	if (r < 0)
		ids_header_release(h);
	return r;
}

/* --- writing ------------------------------------------------------------- */

static int
flags_to_dlist(const struct ids_header *h, struct ids_dlist *kv)
{
	struct ids_dlist *list;
	size_t i, n = h->nflags;
	int r;

	while (n > 0 && h->flags[n - 1] == NULL)
		n--;
	if (n == 0)
		return 0;
	if ((r = ids_dlist_add_list(kv, "U", &list)) < 0)
		return r;
	for (i = 0; i < n && r == 0; i++)
		r = ids_dlist_add_atom(list, NULL, h->flags[i]);
	return r;
}

/* N I Q A U, unknown keys, H, T: see header.h for why T is last. */
static int
header_to_dlist(const struct ids_header *h, struct ids_dlist *kv)
{
	struct ids_dlist *sub, *c;
	int r;

	if ((r = ids_dlist_add_atom(kv, "N", h->name)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "I", h->uniqueid)) < 0 ||
	    (h->quotaroot && (r = ids_dlist_add_atom(kv, "Q", h->quotaroot)) < 0))
		return r;
	if (h->nacl && ((r = ids_dlist_add_kvlist(kv, "A", &sub)) < 0 ||
	    (r = ids_acl_to_dlist(h->acl, h->nacl, sub)) < 0))
		return r;
	if ((r = flags_to_dlist(h, kv)) < 0)
		return r;
	for (c = h->extra ? h->extra->head : NULL; c; c = c->next)
		if ((r = ids_dlist_add_child(kv, NULL, ids_dlist_copy(c))) < 0)
			return r;
	if (h->nhistory && ((r = ids_dlist_add_list(kv, "H", &sub)) < 0 ||
	    (r = ids_history_to_dlist(h->history, h->nhistory, 0, sub)) < 0))
		return r;
	if (h->mbtype[0])
		r = ids_dlist_add_atom(kv, "T", h->mbtype);
	return r;
}

/*
 * Why s (an ACL identifier or right) cannot be written in a header: the
 * dlist spelling gives a literal to a string of 1024 bytes or more and
 * to one holding an 8-bit byte, NUL, CR, LF, '"', '%' or '\\' (it is
 * then neither an atom nor quotable).  NULL when it can be written.
 */
static const char *
needs_literal(const char *s, char *why, size_t size)
{
	size_t i, len = strlen(s);
	unsigned char c;

	if (len >= IDS_DLIST_MAX_QUOTED) {
		snprintf(why, size, "%zu bytes long (at most %u)", len, IDS_DLIST_MAX_QUOTED - 1);
		return why;
	}
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x80)
			snprintf(why, size, "8-bit byte 0x%02x at byte %zu", c, i);
		else if (c == '\r' || c == '\n')
			snprintf(why, size, "line break 0x%02x at byte %zu", c, i);
		else if (c == '"' || c == '%' || c == '\\')
			snprintf(why, size, "'%c' at byte %zu", c, i);
		else
			continue;
		return why;
	}
	return NULL;
}

/* IDS_EINVAL naming the first ACL entry a header cannot hold, or 0. */
static int
check_acl(const char *name, const struct ids_acl *acl, size_t n)
{
	char why[80], id[129], rights[129];	/* 121 bytes shown, then "..." */
	const char *w;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((w = needs_literal(acl[i].id, why, sizeof(why))) != NULL)
			return ids_error(IDS_EINVAL, "%s: ACL entry %zu, identifier '%s': %s: "
			    "a cyrus.header cannot hold it (it would need a literal)", name,
			    i + 1, ids_printable(acl[i].id, id, sizeof(id)), w);
		if ((w = needs_literal(acl[i].rights, why, sizeof(why))) != NULL)
			return ids_error(IDS_EINVAL, "%s: ACL entry %zu, rights '%s' of '%s': "
			    "%s: a cyrus.header cannot hold them (they would need a literal)", name,
			    i + 1, ids_printable(acl[i].rights, rights, sizeof(rights)),
			    ids_printable(acl[i].id, id, sizeof(id)), w);
	}
	return 0;
}

/* ids_header_format() but for the size: appends the whole file to out. */
static int
format_any_size(const struct ids_header *h, struct ids_buf *out)
{
	struct ids_dlist *kv;
	size_t start, n;
	int r;

	if (h->name == NULL || h->uniqueid == NULL)
		return ids_error(IDS_EINVAL, "cyrus.header needs a name and a uniqueid");
	if ((r = check_acl(h->name, h->acl, h->nacl)) < 0)
		return ids_error(r, "cyrus.header of %s", ids_errmsg(r));
	/* The reader takes at most IDS_HEADER_MAX_FLAGS flags (trailing NILs are not written). */
	for (n = h->nflags; n > 0 && h->flags[n - 1] == NULL; n--)
		;
	if (n > IDS_HEADER_MAX_FLAGS)
		return ids_error(IDS_EINVAL, "cyrus.header of %s: %zu user flags, over %d",
		    h->name, n, IDS_HEADER_MAX_FLAGS);
	if ((kv = ids_dlist_new_kvlist()) == NULL)
		return -ENOMEM;
	ids_buf_add(out, IDS_HEADER_MAGIC, IDS_HEADER_MAGIC_LEN);
	start = out->len;
	if ((r = header_to_dlist(h, kv)) == 0)
		r = ids_dlist_print(kv, out);
	ids_dlist_free(kv);
	if (r < 0)
		return r;
	/* Only a literal can put a LF into the line ("{n}\r\n"). */
	if (memchr(out->s + start, '\n', out->len - start))
		return ids_error(IDS_EINVAL,
		    "cyrus.header of %s: a value needs a literal, which Cyrus cannot read there",
		    h->name);
	ids_buf_addch(out, '\n');
	return ids_buf_oom(out);
}

int
ids_header_format(const struct ids_header *h, struct ids_buf *out)
{
	size_t start = out->len;
	int r;

	if ((r = format_any_size(h, out)) < 0)
		return r;
	/* Never a file that ids_header_read() refuses. */
	if (out->len - start > IDS_HEADER_MAX_SIZE)
		return ids_error(IDS_ETOOLONG, "cyrus.header of %s: %zu bytes (%zu ACL entries, "
		    "%zu user flags, %zu history items), over the %u bytes a cyrus.header "
		    "may have", h->name, out->len - start, h->nacl, h->nflags, h->nhistory,
		    IDS_HEADER_MAX_SIZE);
	return 0;
}

int
ids_header_check_entry(const struct ids_mbentry *e, const char *newname)
{
	struct ids_header h;
	struct ids_history *hist = NULL, *item;
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if ((r = check_acl(newname ? newname : e->name, e->acl, e->nacl)) < 0)
		return r;
	/* A view of e: its strings are borrowed, never freed here. */
	ids_header_init(&h);
	h.name = newname ? (char *)newname : e->name;
	h.uniqueid = e->uniqueid;
	memcpy(h.mbtype, e->mbtype, sizeof(h.mbtype));
	h.acl = e->acl;
	h.nacl = e->nacl;
	h.history = e->history;
	h.nhistory = e->nhistory;
	if (newname != NULL) {
		/* The item a rename pushes: the old name, its numbers. */
		if ((hist = calloc(e->nhistory + 1, sizeof(*hist))) == NULL)
			return -ENOMEM;
		if (e->nhistory)
			memcpy(hist + 1, e->history, e->nhistory * sizeof(*hist));
		item = &hist[0];
		item->name = e->name;
		item->mtime = (int64_t)time(NULL);
		item->uidvalidity = e->uidvalidity;
		item->createdmodseq = e->createdmodseq;
		item->foldermodseq = e->foldermodseq;
		memcpy(item->mbtype, e->mbtype, sizeof(item->mbtype));
		item->partition = e->partition;
		h.history = hist;
		h.nhistory = e->nhistory + 1;
	}
	if (h.name != NULL && h.uniqueid != NULL && (r = format_any_size(&h, &b)) == 0 &&
	    b.len > IDS_HEADER_ENTRY_MAX)
		r = ids_error(IDS_ETOOLONG, "%s: its cyrus.header would be %zu bytes (%zu ACL "
		    "entries, %zu history items), over the %u a folder's record may fill",
		    h.name, b.len, h.nacl, h.nhistory, IDS_HEADER_ENTRY_MAX);
	ids_buf_release(&b);
	free(hist);
	return r;
}

uint32_t
ids_header_crc(const char *buf, size_t len)
{
	return crc_of(buf, len);
}

int
ids_header_read(int dirfd, struct ids_header *h, uint32_t *crcp)
{
	char *buf;
	size_t len;
	int r;

	if ((r = ids_read_file(dirfd, IDS_HEADER_FILE, IDS_HEADER_MAX_SIZE, &buf, &len)) < 0)
		return r;
	r = ids_header_parse(h, buf, len);
	if (r == 0 && crcp)
		*crcp = crc_of(buf, len);
	free(buf);
	return r;
}

int
ids_header_write(int dirfd, const struct ids_header *h, uint32_t *crcp)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if ((r = ids_header_format(h, &b)) == 0 &&
	    (r = IDS_FAILPOINT("header.write")) == 0 &&
	    (r = ids_write_durable(dirfd, IDS_HEADER_FILE, b.s, b.len, 0600)) == 0 &&
	    crcp)
		*crcp = crc_of(b.s, b.len);
	ids_buf_release(&b);
	return r;
}

int
ids_header_create(int dirfd, const struct ids_header *h, uint32_t *crcp)
{
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	if ((r = ids_header_format(h, &b)) == 0 &&
	    (r = IDS_FAILPOINT("header.write")) == 0)
		r = ids_write_new(dirfd, IDS_HEADER_FILE, b.s, b.len, 0600);
	if (r == 0 && crcp)
		*crcp = crc_of(b.s, b.len);
	ids_buf_release(&b);
	return r;
}

/* --- conversions --------------------------------------------------------- */

int
ids_header_from_mbentry(struct ids_header *h, const struct ids_mbentry *e)
{
	struct ids_mbentry tmp;
	int r;

	if ((r = ids_mbentry_copy(&tmp, e)) < 0)
		return r;
	free(h->name);
	free(h->uniqueid);
	ids_acl_free(h->acl, h->nacl);
	history_free(h->history, h->nhistory);
	h->name = tmp.name;
	h->uniqueid = tmp.uniqueid;
	memcpy(h->mbtype, tmp.mbtype, sizeof(h->mbtype));
	h->acl = tmp.acl;
	h->nacl = tmp.nacl;
	h->history = tmp.history;
	h->nhistory = tmp.nhistory;
	tmp.name = tmp.uniqueid = NULL;
	tmp.acl = NULL;
	tmp.history = NULL;
	tmp.nacl = tmp.nhistory = 0;
	ids_mbentry_release(&tmp);
	return 0;
}

int
ids_header_to_mbentry(const struct ids_header *h, struct ids_mbentry *e)
{
	struct ids_mbentry view, tmp;
	int r;

	ids_mbentry_init(&view);
	view.name = h->name;
	view.uniqueid = h->uniqueid;
	memcpy(view.mbtype, h->mbtype, sizeof(view.mbtype));
	view.acl = h->acl;
	view.nacl = h->nacl;
	view.history = h->history;
	view.nhistory = h->nhistory;
	if ((r = ids_mbentry_copy(&tmp, &view)) < 0)
		return r;
	/* Swap the copied fields in; tmp then holds e's old ones. */
	memcpy(e->mbtype, tmp.mbtype, sizeof(e->mbtype));
#define SWAP(f) do { __typeof__(e->f) t_ = e->f; e->f = tmp.f; tmp.f = t_; } while (0)
	SWAP(name);
	SWAP(uniqueid);
	SWAP(acl);
	SWAP(nacl);
	SWAP(history);
	SWAP(nhistory);
#undef SWAP
	ids_mbentry_release(&tmp);
	return 0;
}
