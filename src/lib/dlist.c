/*
 * dlist.c - Cyrus dlist values: a tree type, a printer that spells
 * strings exactly as Cyrus does, and a reader that treats its input as
 * hostile, in place, with the tree parser built on it (see dlist.h).
 *
 * The reader accepts a little more than Cyrus writes, as Cyrus's own
 * readers do: runs of spaces between items, "{n+}" and a bare LF after
 * a literal's length, and backslash escapes inside quoted strings.  It
 * is not recursive and the depth is capped, so a line of ten thousand
 * '(' costs an error, not the stack.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"

/* --- building ----------------------------------------------------------- */

static struct ids_dlist *
node_new(enum ids_dlist_type type)
{
	struct ids_dlist *dl = calloc(1, sizeof(*dl));

	if (dl)
		dl->type = type;
	return dl;
}

struct ids_dlist *
ids_dlist_new_list(void)
{
	return node_new(IDS_DL_LIST);
}

struct ids_dlist *
ids_dlist_new_kvlist(void)
{
	return node_new(IDS_DL_KVLIST);
}

void
ids_dlist_free(struct ids_dlist *dl)
{
	struct ids_dlist *c, *next;

	if (dl == NULL)
		return;
	for (c = dl->head; c; c = next) {
		next = c->next;
		ids_dlist_free(c);
	}
	if (dl->file) {
		free(dl->file->partition);
		free(dl->file->name);
		free(dl->file);
	}
	free(dl->name);
	free(dl->data);
	free(dl);
}

int
ids_dlist_add_child(struct ids_dlist *parent, const char *name,
    struct ids_dlist *child)
{
	char *dup = NULL;

	if (child == NULL)
		return -ENOMEM;
	if (parent == NULL ||
	    (parent->type != IDS_DL_LIST && parent->type != IDS_DL_KVLIST) ||
	    (parent->type == IDS_DL_LIST && name != NULL) ||
	    (parent->type == IDS_DL_KVLIST && name == NULL && child->name == NULL) ||
	    child->next != NULL) {
		ids_dlist_free(child);
		return ids_error(IDS_EINVAL, "dlist child without a key or parent");
	}
	if (name && (dup = strdup(name)) == NULL) {
		ids_dlist_free(child);
		return -ENOMEM;
	}
	if (dup) {
		free(child->name);
		child->name = dup;
	}
	if (parent->tail)
		parent->tail->next = child;
	else
		parent->head = child;
	parent->tail = child;
	return 0;
}

void
ids_dlist_unlink(struct ids_dlist *parent, struct ids_dlist *child)
{
	struct ids_dlist *c, *prev = NULL;

	for (c = parent->head; c && c != child; c = c->next)
		prev = c;
	if (c == NULL)
		return;
	if (prev)
		prev->next = c->next;
	else
		parent->head = c->next;
	if (parent->tail == c)
		parent->tail = prev;
	c->next = NULL;
}

static struct ids_dlist *
string_new(const char *data, size_t len)
{
	struct ids_dlist *dl = node_new(IDS_DL_STRING);

	if (dl == NULL)
		return NULL;
	if ((dl->data = malloc(len + 1)) == NULL) {
		free(dl);
		return NULL;
	}
	if (len)
		memcpy(dl->data, data, len);
	dl->data[len] = '\0';
	dl->len = len;
	return dl;
}

int
ids_dlist_add_string(struct ids_dlist *parent, const char *name,
    const char *data, size_t len)
{
	return ids_dlist_add_child(parent, name, string_new(data, len));
}

int
ids_dlist_add_atom(struct ids_dlist *parent, const char *name, const char *s)
{
	if (s == NULL)
		return ids_dlist_add_nil(parent, name);
	return ids_dlist_add_string(parent, name, s, strlen(s));
}

int
ids_dlist_add_num(struct ids_dlist *parent, const char *name, uint64_t n)
{
	char num[24];
	int len = snprintf(num, sizeof(num), "%" PRIu64, n);

	if (len < 0 || (size_t)len >= sizeof(num))
		return ids_error(IDS_EINVAL, "number does not fit");
	return ids_dlist_add_string(parent, name, num, (size_t)len);
}

int
ids_dlist_add_snum(struct ids_dlist *parent, const char *name, int64_t n)
{
	char num[24];
	int len = snprintf(num, sizeof(num), "%" PRId64, n);

	if (len < 0 || (size_t)len >= sizeof(num))
		return ids_error(IDS_EINVAL, "number does not fit");
	return ids_dlist_add_string(parent, name, num, (size_t)len);
}

int
ids_dlist_add_nil(struct ids_dlist *parent, const char *name)
{
	return ids_dlist_add_child(parent, name, node_new(IDS_DL_NIL));
}

static int
add_container(struct ids_dlist *parent, const char *name,
    enum ids_dlist_type type, struct ids_dlist **childp)
{
	struct ids_dlist *c = node_new(type);
	int r = ids_dlist_add_child(parent, name, c);

	if (r == 0 && childp)
		*childp = c;
	return r;
}

int
ids_dlist_add_list(struct ids_dlist *parent, const char *name,
    struct ids_dlist **childp)
{
	return add_container(parent, name, IDS_DL_LIST, childp);
}

int
ids_dlist_add_kvlist(struct ids_dlist *parent, const char *name,
    struct ids_dlist **childp)
{
	return add_container(parent, name, IDS_DL_KVLIST, childp);
}

static struct ids_dlist_file *
file_copy(const struct ids_dlist_file *f)
{
	struct ids_dlist_file *cp = calloc(1, sizeof(*cp));

	if (cp == NULL)
		return NULL;
	*cp = *f;
	cp->partition = f->partition ? strdup(f->partition) : NULL;
	cp->name = f->name ? strdup(f->name) : NULL;
	if ((f->partition && !cp->partition) || (f->name && !cp->name)) {
		free(cp->partition);
		free(cp->name);
		free(cp);
		return NULL;
	}
	return cp;
}

struct ids_dlist *
ids_dlist_copy(const struct ids_dlist *dl)
{
	struct ids_dlist *cp, *c;

	cp = dl->data ? string_new(dl->data, dl->len) : node_new(dl->type);
	if (cp == NULL)
		return NULL;
	cp->type = dl->type;
	if (dl->file && (cp->file = file_copy(dl->file)) == NULL)
		goto oom;
	if (dl->name && (cp->name = strdup(dl->name)) == NULL)
		goto oom;
	for (c = dl->head; c; c = c->next)
		if (ids_dlist_add_child(cp, NULL, ids_dlist_copy(c)) < 0)
			goto oom;
	return cp;
oom:
	ids_dlist_free(cp);
	return NULL;
}

/* --- lookups ------------------------------------------------------------ */

struct ids_dlist *
ids_dlist_get(const struct ids_dlist *kv, const char *key)
{
	struct ids_dlist *c;

	if (kv == NULL || kv->type != IDS_DL_KVLIST)
		return NULL;
	for (c = kv->head; c; c = c->next)
		if (c->name && strcmp(c->name, key) == 0)
			return c;
	return NULL;
}

const char *
ids_dlist_cstr(const struct ids_dlist *dl)
{
	if (dl == NULL || (dl->type != IDS_DL_STRING && dl->type != IDS_DL_FLAG) ||
	    memchr(dl->data, '\0', dl->len) != NULL)
		return NULL;
	return dl->data;
}

/* Parses len > 0 decimal digits into *out; -1 on a non-digit or overflow. */
static int
parse_digits(const char *s, size_t len, uint64_t limit, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || n > (limit - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

/* An unsigned decimal number; -1 when it is not one. */
static int
str_u64(const char *s, size_t len, uint64_t *out)
{
	return parse_digits(s, len, UINT64_MAX, out);
}

/* A decimal number with an optional '-'; -1 when it is not one. */
static int
str_i64(const char *s, size_t len, int64_t *out)
{
	uint64_t n;
	int neg;

	if (len == 0)
		return -1;
	neg = s[0] == '-';
	if (parse_digits(s + neg, len - (size_t)neg,
	    neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &n) < 0)
		return -1;
	*out = neg ? (int64_t)(0 - n) : (int64_t)n;
	return 0;
}

int
ids_dlist_u64(const struct ids_dlist *dl, uint64_t *out)
{
	if (dl == NULL || dl->type != IDS_DL_STRING || str_u64(dl->data, dl->len, out) < 0)
		return ids_error(IDS_ECORRUPT, "not an unsigned number");
	return 0;
}

int
ids_dlist_i64(const struct ids_dlist *dl, int64_t *out)
{
	if (dl == NULL || dl->type != IDS_DL_STRING || str_i64(dl->data, dl->len, out) < 0)
		return ids_error(IDS_ECORRUPT, "not a number");
	return 0;
}

/* Finds key; 0 with *dlp NULL when absent or NIL. */
static const struct ids_dlist *
get_value(const struct ids_dlist *kv, const char *key)
{
	const struct ids_dlist *dl = ids_dlist_get(kv, key);

	return dl && dl->type != IDS_DL_NIL ? dl : NULL;
}

int
ids_dlist_get_u64(const struct ids_dlist *kv, const char *key, uint64_t *out)
{
	const struct ids_dlist *dl = get_value(kv, key);

	*out = 0;
	if (dl && ids_dlist_u64(dl, out) < 0)
		return ids_error(IDS_ECORRUPT, "value of '%s' is not an unsigned number",
		    key);
	return 0;
}

int
ids_dlist_get_u32(const struct ids_dlist *kv, const char *key, uint32_t *out)
{
	uint64_t n;
	int r = ids_dlist_get_u64(kv, key, &n);

	*out = 0;
	if (r < 0)
		return r;
	if (n > UINT32_MAX)
		return ids_error(IDS_ECORRUPT, "value of '%s' is over 32 bits", key);
	*out = (uint32_t)n;
	return 0;
}

int
ids_dlist_get_i64(const struct ids_dlist *kv, const char *key, int64_t *out)
{
	const struct ids_dlist *dl = get_value(kv, key);

	*out = 0;
	if (dl && ids_dlist_i64(dl, out) < 0)
		return ids_error(IDS_ECORRUPT, "value of '%s' is not a number", key);
	return 0;
}

int
ids_dlist_get_str(const struct ids_dlist *kv, const char *key, char **out)
{
	const struct ids_dlist *dl = get_value(kv, key);

	*out = NULL;
	if (dl == NULL)
		return 0;
	if (ids_dlist_cstr(dl) == NULL)
		return ids_error(IDS_ECORRUPT, "value of '%s' is not a string", key);
	if ((*out = strdup(dl->data)) == NULL)
		return -ENOMEM;
	return 0;
}

/* --- printing ----------------------------------------------------------- */

enum spelling { SPELL_ATOM, SPELL_QUOTED, SPELL_LITERAL };

/*
 * formats.md section 5, which is Cyrus's imparse_isatom() and
 * prot_printamap(): note that 0x1F, the dbname level separator, is
 * allowed in atoms, and that a NUL byte forces a literal.
 */
static enum spelling
choose_spelling(const char *s, size_t len)
{
	static const char specials[] = " {()\"%*\\";
	int atom = 1, quotable = 1;
	size_t i;

	if (len == 0)
		return SPELL_QUOTED;
	if (len >= IDS_DLIST_MAX_QUOTED)
		return SPELL_LITERAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80 || c < 0x1F || c == 0x7F ||
		    memchr(specials, c, sizeof(specials) - 1))
			atom = 0;
		if (c >= 0x80 || c == '\0' || c == '\r' || c == '\n' ||
		    c == '"' || c == '%' || c == '\\')
			quotable = 0;
	}
	if (atom && !(len == 3 && memcmp(s, "NIL", 3) == 0))
		return SPELL_ATOM;
	return quotable ? SPELL_QUOTED : SPELL_LITERAL;
}

int
ids_dlist_print_string(const char *data, size_t len, struct ids_buf *out)
{
	if (data == NULL)
		return ids_buf_adds(out, "NIL");
	switch (choose_spelling(data, len)) {
	case SPELL_ATOM:
		return ids_buf_add(out, data, len);
	case SPELL_QUOTED:
		ids_buf_addch(out, '"');
		ids_buf_add(out, data, len);
		return ids_buf_addch(out, '"');
	case SPELL_LITERAL:
		break;
	}
	ids_buf_printf(out, "{%zu}\r\n", len);
	return ids_buf_add(out, data, len);
}

/* A string by choose_spelling(), with the literal marker of flags. */
static void
print_string(const char *data, size_t len, int flags, struct ids_buf *out)
{
	if (choose_spelling(data, len) != SPELL_LITERAL) {
		ids_dlist_print_string(data, len, out);
		return;
	}
	ids_buf_printf(out, (flags & IDS_DLIST_LITPLUS) ? "{%zu+}\r\n" : "{%zu}\r\n", len);
	ids_buf_add(out, data, len);
}

/* "%{partition guid size}" CRLF, then the bytes through file_fn. */
static int
print_file(const struct ids_dlist_file *f, int flags, struct ids_buf *out,
    ids_dlist_file_fn file_fn, void *rock)
{
	const char *part = f->partition ? f->partition : "";

	if (file_fn == NULL)
		return ids_error(IDS_EINVAL, "file literal without a way to print it");
	ids_buf_adds(out, "%{");
	print_string(part, strlen(part), flags, out);
	ids_buf_printf(out, " %s %" PRIu64 "}\r\n", f->guid, f->size);
	if (ids_buf_oom(out) < 0)
		return -ENOMEM;
	return file_fn(rock, f, out);
}

static int
print_node(const struct ids_dlist *dl, int flags, struct ids_buf *out,
    ids_dlist_file_fn file_fn, void *rock)
{
	const struct ids_dlist *c;
	int r;

	switch (dl->type) {
	case IDS_DL_NIL:
		ids_buf_adds(out, "NIL");
		break;
	case IDS_DL_STRING:
		print_string(dl->data, dl->len, flags, out);
		break;
	case IDS_DL_FLAG:
		ids_buf_add(out, dl->data, dl->len);
		break;
	case IDS_DL_FILE:
		if ((r = print_file(dl->file, flags, out, file_fn, rock)) < 0)
			return r;
		break;
	case IDS_DL_LIST:
	case IDS_DL_KVLIST:
		ids_buf_adds(out, dl->type == IDS_DL_KVLIST ? "%(" : "(");
		for (c = dl->head; c; c = c->next) {
			if (dl->type == IDS_DL_KVLIST) {
				const char *k = c->name ? c->name : "";

				print_string(k, strlen(k), flags, out);
				ids_buf_addch(out, ' ');
			}
			if ((r = print_node(c, flags, out, file_fn, rock)) < 0)
				return r;
			if (c->next)
				ids_buf_addch(out, ' ');
		}
		ids_buf_addch(out, ')');
		break;
	}
	return ids_buf_oom(out);
}

int
ids_dlist_print(const struct ids_dlist *dl, struct ids_buf *out)
{
	return print_node(dl, 0, out, NULL, NULL);
}

int
ids_dlist_print_wire(const struct ids_dlist *dl, int flags, struct ids_buf *out,
    ids_dlist_file_fn file_fn, void *rock)
{
	return print_node(dl, flags, out, file_fn, rock);
}

/* --- reading ------------------------------------------------------------ */

/*
 * The reader is the one place that knows the syntax: ids_dlist_parse()
 * below builds its tree from the reader's items.  It keeps, per open
 * container, only its kind and where it started, so a line of ten
 * thousand '(' costs an error, not the stack.  Every check is made in
 * the order of the bytes, which is what makes the errors of a reader
 * and of the tree built from it the same.
 */

enum { SCRATCH_KEY, SCRATCH_VALUE };

/* One bit of rd->kvlist per open container. */
_Static_assert(IDS_DLIST_MAX_DEPTH <= 64, "one kvlist bit per open container");

/* A string as lexed: in buf, or decoded into the reader's scratch. */
struct span {
	const char *s;
	size_t len;
};

void
ids_dlist_reader_init(struct ids_dlist_reader *rd, const char *buf, size_t len,
    int flags)
{
	rd->buf = buf;
	rd->len = len;
	rd->pos = 0;
	rd->depth = 0;
	rd->sep = 0;
	rd->done = 0;
	rd->err = 0;
	rd->flags = flags;
	rd->kvlist = 0;
	rd->scratch[SCRATCH_KEY] = rd->scratch[SCRATCH_VALUE] = NULL;
	rd->scratchsize[SCRATCH_KEY] = rd->scratchsize[SCRATCH_VALUE] = 0;
}

void
ids_dlist_reader_release(struct ids_dlist_reader *rd)
{
	free(rd->scratch[SCRATCH_KEY]);
	free(rd->scratch[SCRATCH_VALUE]);
	rd->scratch[SCRATCH_KEY] = rd->scratch[SCRATCH_VALUE] = NULL;
	rd->scratchsize[SCRATCH_KEY] = rd->scratchsize[SCRATCH_VALUE] = 0;
}

static int
peek(const struct ids_dlist_reader *rd)
{
	return rd->pos < rd->len ? (unsigned char)rd->buf[rd->pos] : -1;
}

/*
 * The loops below keep the position in a local: rd->pos could alias
 * the bytes read, so the compiler would store it at every step.
 */
static void
skip_spaces(struct ids_dlist_reader *rd)
{
	size_t pos = rd->pos;

	while (pos < rd->len && rd->buf[pos] == ' ')
		pos++;
	rd->pos = pos;
}

/* Scratch buffer which, of at least size bytes; NULL when out of memory. */
static char *
scratch(struct ids_dlist_reader *rd, int which, size_t size)
{
	char *s;

	if (size <= rd->scratchsize[which])
		return rd->scratch[which];
	if ((s = realloc(rd->scratch[which], size)) == NULL)
		return NULL;
	rd->scratch[which] = s;
	rd->scratchsize[which] = size;
	return s;
}

/*
 * A quoted string; rd->pos is at the opening quote.  A backslash takes
 * the next byte as it is.  Without one the string stays in place; with
 * one it is decoded into scratch buffer which.
 */
static int
lex_quoted(struct ids_dlist_reader *rd, int which, struct span *out)
{
	const char *b = rd->buf;
	size_t start = rd->pos, from = start + 1, pos = from, len = rd->len, i, n = 0;
	char *d;

	while (pos < len && b[pos] != '"' && b[pos] != '\\')
		pos++;
	if (pos < len && b[pos] == '"') {
		out->s = b + from;
		out->len = pos - from;
		rd->pos = pos + 1;
		return 0;
	}
	while (pos < len && b[pos] != '"')
		pos += b[pos] == '\\' ? 2 : 1;
	if (pos >= len) {
		rd->pos = len;
		return ids_error(IDS_ECORRUPT, "unterminated quoted string at byte %zu", start);
	}
	if ((d = scratch(rd, which, pos - from)) == NULL)
		return -ENOMEM;
	for (i = from; i < pos; i++) {
		if (b[i] == '\\')
			i++;
		d[n++] = b[i];
	}
	rd->pos = pos + 1;
	out->s = d;
	out->len = n;
	return 0;
}

/* "{n}" or "{n+}", then CRLF or LF, then n bytes; rd->pos is at '{'. */
static int
lex_literal(struct ids_dlist_reader *rd, struct span *out)
{
	size_t start = rd->pos++, digits = rd->pos;
	uint64_t n;

	while (peek(rd) >= '0' && peek(rd) <= '9')
		rd->pos++;
	if (rd->pos == digits)
		return ids_error(IDS_ECORRUPT, "literal without a length at byte %zu", start);
	if (parse_digits(rd->buf + digits, rd->pos - digits, IDS_DLIST_MAX_LITERAL, &n) < 0)
		return ids_error(IDS_ECORRUPT, "literal longer than %u bytes at byte %zu",
		    IDS_DLIST_MAX_LITERAL, start);
	if (peek(rd) == '+')
		rd->pos++;
	if (peek(rd) != '}')
		return ids_error(IDS_ECORRUPT, "expected '}' at byte %zu", rd->pos);
	rd->pos++;
	if (peek(rd) == '\r')
		rd->pos++;
	if (peek(rd) != '\n')
		return ids_error(IDS_ECORRUPT, "expected newline after literal length at byte %zu",
		    rd->pos);
	rd->pos++;
	if (n > rd->len - rd->pos)
		return ids_error(IDS_ECORRUPT,
		    "truncated literal of %" PRIu64 " bytes (%zu present) at byte %zu",
		    n, rd->len - rd->pos, start);
	out->s = rd->buf + rd->pos;
	out->len = (size_t)n;
	rd->pos += (size_t)n;
	return 0;
}

/* An atom ends at a space, a parenthesis, a line end or the data's end. */
static const unsigned char atom_end[256] = {
	[' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1, ['('] = 1, [')'] = 1,
};

static int
lex_atom(struct ids_dlist_reader *rd, struct span *out)
{
	const char *b = rd->buf;
	size_t start = rd->pos, pos = start, len = rd->len;

	while (pos < len && !atom_end[(unsigned char)b[pos]])
		pos++;
	if (pos == start) {
		if (pos == len)
			return ids_error(IDS_ECORRUPT, "unexpected end of data at byte %zu",
			    start);
		return ids_error(IDS_ECORRUPT, "unexpected byte 0x%02x at byte %zu",
		    (unsigned char)b[pos], start);
	}
	rd->pos = pos;
	out->s = b + start;
	out->len = pos - start;
	return 0;
}

/* Any string spelling; *isnil is set for the atom NIL. */
static int
lex_string(struct ids_dlist_reader *rd, int which, struct span *out, int *isnil)
{
	int r;

	*isnil = 0;
	switch (peek(rd)) {
	case '"':
		return lex_quoted(rd, which, out);
	case '{':
		return lex_literal(rd, out);
	case '%':
		return ids_error(IDS_ECORRUPT, "'%%' not followed by '(' at byte %zu", rd->pos);
	}
	if ((r = lex_atom(rd, out)) < 0)
		return r;
	*isnil = out->len == 3 && memcmp(out->s, "NIL", 3) == 0;
	return 0;
}

/* The outer item is complete: ret, or an error for data after it. */
static int
finish(struct ids_dlist_reader *rd, int ret)
{
	rd->done = 1;
	if (!(rd->flags & IDS_DLIST_PREFIX) && rd->pos != rd->len)
		return ids_error(IDS_ECORRUPT, "trailing data at byte %zu", rd->pos);
	return ret;
}

/* "(" or "%("; rd->pos is at its first byte. */
static int
open_container(struct ids_dlist_reader *rd, enum ids_dlist_type type,
    struct ids_dlist_item *it)
{
	uint64_t bit;

	if (rd->depth >= IDS_DLIST_MAX_DEPTH)
		return ids_error(IDS_ECORRUPT, "nesting deeper than %d levels at byte %zu",
		    IDS_DLIST_MAX_DEPTH, rd->pos);
	bit = (uint64_t)1 << rd->depth;
	rd->open[rd->depth] = rd->pos;
	rd->kvlist = type == IDS_DL_KVLIST ? rd->kvlist | bit : rd->kvlist & ~bit;
	rd->depth++;
	rd->pos += type == IDS_DL_KVLIST ? 2 : 1;
	skip_spaces(rd);
	rd->sep = 0;
	it->type = type;
	return 1;
}

/* A kvlist key, then the spaces before its value. */
static int
read_key(struct ids_dlist_reader *rd, struct ids_dlist_item *it)
{
	size_t start = rd->pos, i;
	struct span key;
	int isnil, r, c = peek(rd);

	if (c == '(' || c == ')')
		return ids_error(IDS_ECORRUPT, "expected a key at byte %zu", start);
	if ((r = lex_string(rd, SCRATCH_KEY, &key, &isnil)) < 0)
		return r;
	for (i = 0; i < key.len; i++)	/* keys are short: no memchr call */
		if (key.s[i] == '\0')
			return ids_error(IDS_ECORRUPT, "NUL byte in key at byte %zu", start);
	if (peek(rd) != ' ')
		return ids_error(IDS_ECORRUPT, "expected ' ' after key at byte %zu", rd->pos);
	skip_spaces(rd);
	it->key = key.s;
	it->keylen = key.len;
	return 0;
}

/* Bytes an atom may hold (imparse_isatom()), with no NIL check. */
static int
atom_chars(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char b = (unsigned char)s[i];

		if (b >= 0x80 || b <= 0x1F || b == 0x7F || strchr(" {()\"%*\\", b))
			return 0;
	}
	return 1;
}

/*
 * A file literal's header "%{partition guid size}", rd->pos at '%'
 * (csync; its bytes are not in buf).  The partition is an atom or a
 * quoted string, as Cyrus's getastring() reads it.
 */
static int
lex_file(struct ids_dlist_reader *rd, struct ids_dlist_item *it)
{
	size_t g, d;
	struct span part;
	int isnil, r;

	rd->pos += 2;
	if (peek(rd) == '{' || peek(rd) == '(' || peek(rd) == '%')
		return ids_error(IDS_ECORRUPT, "bad file literal partition at byte %zu", rd->pos);
	if ((r = lex_string(rd, SCRATCH_VALUE, &part, &isnil)) < 0)
		return r;
	/* a partition is a configuration name: an atom, as Cyrus prints it */
	if (part.len == 0 || !atom_chars(part.s, part.len))
		return ids_error(IDS_ECORRUPT, "bad file literal partition at byte %zu", rd->pos);
	if (peek(rd) != ' ')
		return ids_error(IDS_ECORRUPT, "expected ' ' in file literal at byte %zu", rd->pos);
	g = ++rd->pos;
	while (rd->pos < rd->len && rd->pos - g < 40 && isxdigit((unsigned char)rd->buf[rd->pos]))
		rd->pos++;
	if (rd->pos - g != 40 || peek(rd) != ' ')
		return ids_error(IDS_ECORRUPT, "bad GUID in file literal at byte %zu", g);
	d = ++rd->pos;
	while (peek(rd) >= '0' && peek(rd) <= '9')
		rd->pos++;
	if (parse_digits(rd->buf + d, rd->pos - d, UINT64_MAX, &it->size) < 0 ||
	    peek(rd) != '}')
		return ids_error(IDS_ECORRUPT, "bad size in file literal at byte %zu", d);
	rd->pos++;
	it->type = IDS_DL_FILE;
	it->data = part.s;
	it->len = part.len;
	it->guid = rd->buf + g;
	rd->sep = 1;
	return rd->depth == 0 ? finish(rd, 1) : 1;
}

/* An item: a container opening, NIL or a string. */
static int
read_value(struct ids_dlist_reader *rd, struct ids_dlist_item *it)
{
	struct span val;
	int isnil, r, c = peek(rd);
	int wire = rd->flags & IDS_DLIST_WIRE;

	if (c == '(')
		return open_container(rd, IDS_DL_LIST, it);
	if (c == '%' && rd->pos + 1 < rd->len && rd->buf[rd->pos + 1] == '(')
		return open_container(rd, IDS_DL_KVLIST, it);
	if (c == '%' && wire && rd->pos + 1 < rd->len && rd->buf[rd->pos + 1] == '{')
		return lex_file(rd, it);
	if (c == ')')
		return ids_error(IDS_ECORRUPT, "unexpected ')' at byte %zu", rd->pos);
	if ((r = lex_string(rd, SCRATCH_VALUE, &val, &isnil)) < 0)
		return r;
	if (wire && c == '\\') {
		/* Cyrus reads the rest as an atom: anything else would not print back */
		if (val.len < 2 || !atom_chars(val.s + 1, val.len - 1))
			return ids_error(IDS_ECORRUPT, "bad flag at byte %zu", rd->pos - val.len);
		it->type = IDS_DL_FLAG;
		it->data = val.s;
		it->len = val.len;
	} else if (isnil) {
		it->type = IDS_DL_NIL;
	} else {
		it->type = IDS_DL_STRING;
		it->data = val.s;
		it->len = val.len;
	}
	rd->sep = 1;
	return rd->depth == 0 ? finish(rd, 1) : 1;
}

/* The separator after a child, then the next child or the container's end. */
static int
read_next(struct ids_dlist_reader *rd, struct ids_dlist_item *it)
{
	int r, c;

	if (rd->depth == 0)
		return read_value(rd, it);
	if (rd->sep) {
		c = peek(rd);
		if (c != ')' && c != ' ' && c >= 0)
			return ids_error(IDS_ECORRUPT, "expected ' ' or ')' at byte %zu", rd->pos);
		skip_spaces(rd);
	}
	c = peek(rd);
	if (c == ')') {
		rd->pos++;
		rd->sep = 1;
		return --rd->depth == 0 ? finish(rd, 0) : 0;
	}
	if (c < 0)
		return ids_error(IDS_ECORRUPT, "unterminated list opened at byte %zu",
		    rd->open[rd->depth - 1]);
	if ((rd->kvlist >> (rd->depth - 1) & 1) && (r = read_key(rd, it)) < 0)
		return r;
	return read_value(rd, it);
}

int
ids_dlist_read(struct ids_dlist_reader *rd, struct ids_dlist_item *it)
{
	int r;

	it->type = IDS_DL_NIL;
	it->key = NULL;
	it->keylen = 0;
	it->data = NULL;
	it->len = 0;
	it->guid = NULL;
	it->size = 0;
	if (rd->err)
		return rd->err;
	if (rd->done)
		return 0;
	if ((r = read_next(rd, it)) < 0)
		rd->err = r;
	return r;
}

int
ids_dlist_skip(struct ids_dlist_reader *rd, const struct ids_dlist_item *it)
{
	struct ids_dlist_item child;
	int depth = rd->depth, r;

	if (it->type != IDS_DL_LIST && it->type != IDS_DL_KVLIST)
		return 0;
	/* it is the container open at depth - 1: read until it ends. */
	while (rd->depth >= depth)
		if ((r = ids_dlist_read(rd, &child)) < 0)
			return r;
	return 0;
}

int
ids_dlist_item_u64(const struct ids_dlist_item *it, uint64_t *out)
{
	if (it->type != IDS_DL_STRING || str_u64(it->data, it->len, out) < 0)
		return ids_error(IDS_ECORRUPT, "not an unsigned number");
	return 0;
}

int
ids_dlist_item_i64(const struct ids_dlist_item *it, int64_t *out)
{
	if (it->type != IDS_DL_STRING || str_i64(it->data, it->len, out) < 0)
		return ids_error(IDS_ECORRUPT, "not a number");
	return 0;
}

/* --- parsing into a tree ------------------------------------------------ */

/* The file of a FILE item: its header only (no staged name yet). */
static struct ids_dlist_file *
file_from_item(const struct ids_dlist_item *it)
{
	struct ids_dlist_file *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	if ((f->partition = malloc(it->len + 1)) == NULL) {
		free(f);
		return NULL;
	}
	memcpy(f->partition, it->data, it->len);
	f->partition[it->len] = '\0';
	for (int i = 0; i < 40; i++)
		f->guid[i] = (char)tolower((unsigned char)it->guid[i]);
	f->size = it->size;
	f->dirfd = -1;
	return f;
}

/* A node for an item the reader handed out, with its key. */
static struct ids_dlist *
node_from_item(const struct ids_dlist_item *it)
{
	struct ids_dlist *dl = it->type == IDS_DL_STRING || it->type == IDS_DL_FLAG ?
	    string_new(it->data, it->len) : node_new(it->type);

	if (dl == NULL)
		return NULL;
	dl->type = it->type;
	if (it->type == IDS_DL_FILE && (dl->file = file_from_item(it)) == NULL) {
		ids_dlist_free(dl);
		return NULL;
	}
	if (it->key == NULL)
		return dl;
	if ((dl->name = malloc(it->keylen + 1)) == NULL) {
		ids_dlist_free(dl);
		return NULL;
	}
	memcpy(dl->name, it->key, it->keylen);
	dl->name[it->keylen] = '\0';
	return dl;
}

int
ids_dlist_parse(const char *buf, size_t len, struct ids_dlist **out,
    size_t *consumed)
{
	return ids_dlist_parse_flags(buf, len, 0, out, consumed);
}

int
ids_dlist_parse_flags(const char *buf, size_t len, int flags,
    struct ids_dlist **out, size_t *consumed)
{
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;
	struct ids_dlist *open[IDS_DLIST_MAX_DEPTH], *top = NULL, *dl;
	int n = 0, r;

	flags &= ~IDS_DLIST_PREFIX;
	ids_dlist_reader_init(&rd, buf, len, flags | (consumed ? IDS_DLIST_PREFIX : 0));
	while (!rd.done) {
		if ((r = ids_dlist_read(&rd, &it)) < 0)
			goto fail;
		if (r == 0) {		/* the innermost open container ended */
			n--;
			continue;
		}
		if ((dl = node_from_item(&it)) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
		if (top == NULL)
			top = dl;
		else if ((r = ids_dlist_add_child(open[n - 1], NULL, dl)) < 0)
			goto fail;
		if (dl->type == IDS_DL_LIST || dl->type == IDS_DL_KVLIST)
			open[n++] = dl;
	}
	ids_dlist_reader_release(&rd);
	if (consumed)
		*consumed = rd.pos;
	*out = top;
	return 0;
fail:
	ids_dlist_reader_release(&rd);
	ids_dlist_free(top);
	return r;
}
