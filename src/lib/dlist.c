/*
 * dlist.c - Cyrus dlist values: a tree type, a printer that spells
 * strings exactly as Cyrus does, and a parser that treats its input as
 * hostile (see dlist.h).
 *
 * The parser accepts a little more than Cyrus writes, as Cyrus's own
 * readers do: runs of spaces between items, "{n+}" and a bare LF after
 * a literal's length, and backslash escapes inside quoted strings.  It
 * is recursive, but the depth is capped, so a line of ten thousand
 * '(' costs an error, not the stack.
 */
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

struct ids_dlist *
ids_dlist_copy(const struct ids_dlist *dl)
{
	struct ids_dlist *cp, *c;

	cp = dl->type == IDS_DL_STRING ? string_new(dl->data, dl->len) :
	    node_new(dl->type);
	if (cp == NULL)
		return NULL;
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
	if (dl == NULL || dl->type != IDS_DL_STRING ||
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

int
ids_dlist_u64(const struct ids_dlist *dl, uint64_t *out)
{
	if (dl == NULL || dl->type != IDS_DL_STRING ||
	    parse_digits(dl->data, dl->len, UINT64_MAX, out) < 0)
		return ids_error(IDS_ECORRUPT, "not an unsigned number");
	return 0;
}

int
ids_dlist_i64(const struct ids_dlist *dl, int64_t *out)
{
	uint64_t n;
	int neg;

	if (dl == NULL || dl->type != IDS_DL_STRING || dl->len == 0)
		return ids_error(IDS_ECORRUPT, "not a number");
	neg = dl->data[0] == '-';
	if (parse_digits(dl->data + neg, dl->len - (size_t)neg,
	    neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &n) < 0)
		return ids_error(IDS_ECORRUPT, "not a number");
	*out = neg ? (int64_t)(0 - n) : (int64_t)n;
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

int
ids_dlist_print(const struct ids_dlist *dl, struct ids_buf *out)
{
	const struct ids_dlist *c;

	switch (dl->type) {
	case IDS_DL_NIL:
		ids_buf_adds(out, "NIL");
		break;
	case IDS_DL_STRING:
		ids_dlist_print_string(dl->data, dl->len, out);
		break;
	case IDS_DL_LIST:
	case IDS_DL_KVLIST:
		ids_buf_adds(out, dl->type == IDS_DL_KVLIST ? "%(" : "(");
		for (c = dl->head; c; c = c->next) {
			if (dl->type == IDS_DL_KVLIST) {
				const char *k = c->name ? c->name : "";

				ids_dlist_print_string(k, strlen(k), out);
				ids_buf_addch(out, ' ');
			}
			ids_dlist_print(c, out);
			if (c->next)
				ids_buf_addch(out, ' ');
		}
		ids_buf_addch(out, ')');
		break;
	}
	return ids_buf_oom(out);
}

/* --- parsing ------------------------------------------------------------ */

struct parser {
	const char *buf;
	size_t len;
	size_t pos;
};

static int
peek(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->buf[p->pos] : -1;
}

static void
skip_spaces(struct parser *p)
{
	while (peek(p) == ' ')
		p->pos++;
}

/* A quoted string; p->pos is at the opening quote. */
static int
parse_quoted(struct parser *p, struct ids_buf *val)
{
	size_t start = p->pos++;
	int c;

	while ((c = peek(p)) != '"') {
		if (c == '\\') {
			p->pos++;
			c = peek(p);
		}
		if (c < 0)
			return ids_error(IDS_ECORRUPT,
			    "unterminated quoted string at byte %zu", start);
		ids_buf_addch(val, c);
		p->pos++;
	}
	p->pos++;
	return ids_buf_oom(val);
}

/* "{n}" or "{n+}", then CRLF or LF, then n bytes; p->pos is at '{'. */
static int
parse_literal(struct parser *p, struct ids_buf *val)
{
	size_t start = p->pos++, digits = p->pos;
	uint64_t n;

	while (peek(p) >= '0' && peek(p) <= '9')
		p->pos++;
	if (p->pos == digits)
		return ids_error(IDS_ECORRUPT, "literal without a length at byte %zu", start);
	if (parse_digits(p->buf + digits, p->pos - digits, IDS_DLIST_MAX_LITERAL, &n) < 0)
		return ids_error(IDS_ECORRUPT, "literal longer than %u bytes at byte %zu",
		    IDS_DLIST_MAX_LITERAL, start);
	if (peek(p) == '+')
		p->pos++;
	if (peek(p) != '}')
		return ids_error(IDS_ECORRUPT, "expected '}' at byte %zu", p->pos);
	p->pos++;
	if (peek(p) == '\r')
		p->pos++;
	if (peek(p) != '\n')
		return ids_error(IDS_ECORRUPT, "expected newline after literal length at byte %zu",
		    p->pos);
	p->pos++;
	if (n > p->len - p->pos)
		return ids_error(IDS_ECORRUPT,
		    "truncated literal of %" PRIu64 " bytes (%zu present) at byte %zu",
		    n, p->len - p->pos, start);
	ids_buf_add(val, p->buf + p->pos, (size_t)n);
	p->pos += (size_t)n;
	return ids_buf_oom(val);
}

/* An atom ends at a space, a parenthesis, a line end or the data's end. */
static int
parse_atom(struct parser *p, struct ids_buf *val)
{
	size_t start = p->pos;
	int c;

	while ((c = peek(p)) >= 0 && c != ' ' && c != '\t' && c != '\r' &&
	    c != '\n' && c != '(' && c != ')')
		p->pos++;
	if (p->pos == start) {
		if (c < 0)
			return ids_error(IDS_ECORRUPT, "unexpected end of data at byte %zu",
			    start);
		return ids_error(IDS_ECORRUPT, "unexpected byte 0x%02x at byte %zu",
		    (unsigned)c, start);
	}
	return ids_buf_add(val, p->buf + start, p->pos - start);
}

/* Any string spelling into val; *isnil is set for the atom NIL. */
static int
parse_string(struct parser *p, struct ids_buf *val, int *isnil)
{
	size_t start = p->pos;
	int r;

	*isnil = 0;
	switch (peek(p)) {
	case '"':
		return parse_quoted(p, val);
	case '{':
		return parse_literal(p, val);
	case '%':
		return ids_error(IDS_ECORRUPT, "'%%' not followed by '(' at byte %zu", start);
	}
	if ((r = parse_atom(p, val)) < 0)
		return r;
	*isnil = val->len == 3 && memcmp(val->s, "NIL", 3) == 0;
	return 0;
}

static int parse_item(struct parser *p, int depth, struct ids_dlist **out);

/* A kvlist key, then the spaces before its value. */
static int
parse_key(struct parser *p, char **keyp)
{
	struct ids_buf key = IDS_BUF_INIT;
	size_t start = p->pos;
	int isnil, r, c = peek(p);

	if (c == '(' || c == ')')
		return ids_error(IDS_ECORRUPT, "expected a key at byte %zu", start);
	if ((r = parse_string(p, &key, &isnil)) < 0)
		goto fail;
	if (memchr(key.s, '\0', key.len)) {
		r = ids_error(IDS_ECORRUPT, "NUL byte in key at byte %zu", start);
		goto fail;
	}
	if (peek(p) != ' ') {
		r = ids_error(IDS_ECORRUPT, "expected ' ' after key at byte %zu", p->pos);
		goto fail;
	}
	skip_spaces(p);
	if ((*keyp = ids_buf_detach(&key, NULL)) == NULL)
		return -ENOMEM;
	return 0;
fail:
	ids_buf_release(&key);
	return r;
}

/* One child of a container, with its key for a kvlist. */
static int
parse_child(struct parser *p, int depth, struct ids_dlist *dl)
{
	struct ids_dlist *child;
	char *key = NULL;
	int r;

	if (dl->type == IDS_DL_KVLIST && (r = parse_key(p, &key)) < 0)
		return r;
	if ((r = parse_item(p, depth + 1, &child)) < 0) {
		free(key);
		return r;
	}
	child->name = key;
	return ids_dlist_add_child(dl, NULL, child);
}

/* "(" or "%(", items, ")"; p->pos is at the opening byte. */
static int
parse_container(struct parser *p, int depth, enum ids_dlist_type type,
    struct ids_dlist **out)
{
	size_t start = p->pos;
	struct ids_dlist *dl;
	int r;

	if (depth >= IDS_DLIST_MAX_DEPTH)
		return ids_error(IDS_ECORRUPT, "nesting deeper than %d levels at byte %zu",
		    IDS_DLIST_MAX_DEPTH, start);
	if ((dl = node_new(type)) == NULL)
		return -ENOMEM;
	p->pos += type == IDS_DL_KVLIST ? 2 : 1;
	skip_spaces(p);
	while (peek(p) != ')') {
		if (peek(p) < 0) {
			r = ids_error(IDS_ECORRUPT, "unterminated list opened at byte %zu",
			    start);
			goto fail;
		}
		if ((r = parse_child(p, depth, dl)) < 0)
			goto fail;
		if (peek(p) != ')' && peek(p) != ' ' && peek(p) >= 0) {
			r = ids_error(IDS_ECORRUPT, "expected ' ' or ')' at byte %zu", p->pos);
			goto fail;
		}
		skip_spaces(p);
	}
	p->pos++;
	*out = dl;
	return 0;
fail:
	ids_dlist_free(dl);
	return r;
}

static int
parse_item(struct parser *p, int depth, struct ids_dlist **out)
{
	struct ids_buf val = IDS_BUF_INIT;
	struct ids_dlist *dl;
	int isnil, r, c = peek(p);

	if (c == '(')
		return parse_container(p, depth, IDS_DL_LIST, out);
	if (c == '%' && p->pos + 1 < p->len && p->buf[p->pos + 1] == '(')
		return parse_container(p, depth, IDS_DL_KVLIST, out);
	if (c == ')')
		return ids_error(IDS_ECORRUPT, "unexpected ')' at byte %zu", p->pos);
	if ((r = parse_string(p, &val, &isnil)) < 0) {
		ids_buf_release(&val);
		return r;
	}
	dl = isnil ? node_new(IDS_DL_NIL) : string_new(val.s, val.len);
	ids_buf_release(&val);
	if (dl == NULL)
		return -ENOMEM;
	*out = dl;
	return 0;
}

int
ids_dlist_parse(const char *buf, size_t len, struct ids_dlist **out,
    size_t *consumed)
{
	struct parser p = { buf, len, 0 };
	struct ids_dlist *dl;
	int r;

	if ((r = parse_item(&p, 0, &dl)) < 0)
		return r;
	if (consumed)
		*consumed = p.pos;
	else if (p.pos != len) {
		ids_dlist_free(dl);
		return ids_error(IDS_ECORRUPT, "trailing data at byte %zu", p.pos);
	}
	*out = dl;
	return 0;
}
