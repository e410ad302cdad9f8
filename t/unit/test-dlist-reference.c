/*
 * test-dlist-reference.c - ids_dlist_parse() against the recursive
 * parser it replaced, kept here as the reference: on the fuzz corpora,
 * their prefixes and suffixes, and generated and mutated values, both
 * must build the same tree, consume the same bytes, or fail with the
 * same error code and detail.  The reader the parser is now built on
 * is the one place that knows the syntax; this pins that syntax to
 * what it was.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "unit.h"

/* --- the reference: the recursive parser as it was ---------------------- */

struct parser {
	const char *buf;
	size_t len;
	size_t pos;
};

static struct ids_dlist *
ref_node(enum ids_dlist_type type)
{
	struct ids_dlist *dl = calloc(1, sizeof(*dl));

	if (dl)
		dl->type = type;
	return dl;
}

static struct ids_dlist *
ref_string(const char *data, size_t len)
{
	struct ids_dlist *dl = ref_node(IDS_DL_STRING);

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

static int
ref_digits(const char *s, size_t len, uint64_t limit, uint64_t *out)
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

static int
parse_literal(struct parser *p, struct ids_buf *val)
{
	size_t start = p->pos++, digits = p->pos;
	uint64_t n;

	while (peek(p) >= '0' && peek(p) <= '9')
		p->pos++;
	if (p->pos == digits)
		return ids_error(IDS_ECORRUPT, "literal without a length at byte %zu", start);
	if (ref_digits(p->buf + digits, p->pos - digits, IDS_DLIST_MAX_LITERAL, &n) < 0)
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
	if ((dl = ref_node(type)) == NULL)
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
	dl = isnil ? ref_node(IDS_DL_NIL) : ref_string(val.s, val.len);
	ids_buf_release(&val);
	if (dl == NULL)
		return -ENOMEM;
	*out = dl;
	return 0;
}

static int
ref_parse(const char *buf, size_t len, struct ids_dlist **out, size_t *consumed)
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

/* --- the comparison ------------------------------------------------------ */

static int
same_tree(const struct ids_dlist *a, const struct ids_dlist *b)
{
	const struct ids_dlist *x, *y;

	if (a->type != b->type || (a->name == NULL) != (b->name == NULL) ||
	    (a->name && strcmp(a->name, b->name) != 0))
		return 0;
	if (a->type == IDS_DL_STRING &&
	    (a->len != b->len || memcmp(a->data, b->data, a->len) != 0 ||
	    b->data[b->len] != '\0'))
		return 0;
	for (x = a->head, y = b->head; x && y; x = x->next, y = y->next)
		if (!same_tree(x, y))
			return 0;
	return x == NULL && y == NULL && (b->head == NULL) == (b->tail == NULL);
}

static unsigned long inputs, parsed;

static void
compare_one(const char *in, size_t len, int prefix)
{
	struct ids_dlist *a = NULL, *b = NULL;
	size_t ca = 1, cb = 2;
	char ma[1100];
	int ra, rb;

	ra = ref_parse(in, len, &a, prefix ? &ca : NULL);
	snprintf(ma, sizeof(ma), "%s", ra < 0 ? ids_errmsg(ra) : "");
	ids_error_clear();
	rb = ids_dlist_parse(in, len, &b, prefix ? &cb : NULL);
	if (ra != rb || (ra < 0 && strcmp(ma, ids_errmsg(rb)) != 0))
		fail_msg("%zu bytes, prefix %d: reference %d '%s', parser %d '%s': %.*s",
		    len, prefix, ra, ma, rb, rb < 0 ? ids_errmsg(rb) : "", (int)len, in);
	if (ra == 0) {
		if (!same_tree(a, b) || (prefix && ca != cb))
			fail_msg("%zu bytes, prefix %d: different trees: %.*s", len, prefix,
			    (int)len, in);
		parsed++;
	}
	inputs++;
	ids_dlist_free(a);
	ids_dlist_free(b);
}

/* Both ways, from an exactly sized copy (ASan sees any overread). */
static void
compare(const char *in, size_t len)
{
	char *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	memcpy(copy, in, len);
	compare_one(copy, len, 0);
	compare_one(copy, len, 1);
	free(copy);
}

static uint32_t
next_rand(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

static const char alphabet[] = "(){}\"%\\ NIL0123456789\r\n\t+ab\0";

static size_t
mutate(char *buf, size_t len, size_t size, uint32_t *seed)
{
	int n = 1 + (int)(next_rand(seed) % 4);

	while (n-- > 0) {
		size_t at = len ? next_rand(seed) % len : 0;
		char c = next_rand(seed) % 4 ?
		    alphabet[next_rand(seed) % (sizeof(alphabet) - 1)] : (char)next_rand(seed);

		switch (next_rand(seed) % 4) {
		case 0:
			if (len)
				buf[at] = c;
			break;
		case 1:
			if (len + 1 < size) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = c;
				len++;
			}
			break;
		case 2:
			if (len) {
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
			break;
		default:
			len = at;
			break;
		}
	}
	return len;
}

static const char *const seeds[] = {
	"%(T el I 2f3c0a53-1b3c-4c43-9d2b-3a9e7bfa0d6c P default V 1700000000 "
	    "C 1 F 7 M 1795000100 A %(john lrswipkxtecdan \"group:a b\" lr))",
	"%(A %(B %(C (1 2 NIL () %()))) D \"\")",
	"%(  A {3+}\r\nabc  B {2}\nxy C \"q\\\"\\\\z\" D ( 1  2 ) )",
	"%(T el N \"a b\" L {5}\r\nx\ny\nz U ($F NIL) H (%(N x M 1) %(N \"q\\\"\")) E \"\")",
	"%(\"a\\\\b\" \"c\\\"d\" \"\" x {0}\r\n NIL NIL \"NIL\")",
	"(x {6}\r\n\xff\x01\xc3\xa9\r\n y)",
	"((((((((((((((((((((a))))))))))))))))))))",
	"%(a %(b %(c %(d %(e f)))))", "NIL", "atom", "\"q\"", "{1}\r\nx", "()", "%()",
};

static void
test_seeds_and_mutations(void **state)
{
	char buf[1024];
	uint32_t seed = 1795000100;
	size_t i, k, len;

	(void)state;
	inputs = parsed = 0;
	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		len = strlen(seeds[i]);
		for (k = 0; k <= len; k++) {
			compare(seeds[i], k);
			compare(seeds[i] + k, len - k);
		}
		for (k = 0; k < 6000; k++) {
			memcpy(buf, seeds[i], len);
			compare(buf, mutate(buf, len, sizeof(buf), &seed));
		}
	}
	/* Short strings over the syntax's own bytes. */
	for (k = 0; k < 60000; k++) {
		len = next_rand(&seed) % 24;
		for (i = 0; i < len; i++)
			buf[i] = alphabet[next_rand(&seed) % (sizeof(alphabet) - 1)];
		compare(buf, len);
	}
	assert_true(parsed > inputs / 20);
}

static void
test_depth(void **state)
{
	char deep[2 * IDS_DLIST_MAX_DEPTH + 16];
	int n;

	(void)state;
	for (n = IDS_DLIST_MAX_DEPTH - 1; n <= IDS_DLIST_MAX_DEPTH + 2; n++) {
		memset(deep, '(', (size_t)n);
		memset(deep + n, ')', (size_t)n);
		compare(deep, 2 * (size_t)n);
		compare(deep, (size_t)n);
	}
}

/* Every fuzz corpus file, every prefix, and from every '%' or '(' on. */
static void
test_corpus(void **state)
{
	static const char *const targets[] = { "dlist", "header", "dump", "index", "name" };
	static char buf[1 << 16];
	const char *slash = strrchr(__FILE__, '/');
	int dirlen = slash ? (int)(slash + 1 - __FILE__) : 0;
	char dir[4200], path[8400];
	struct dirent *de;
	size_t i, n, at, files = 0;
	DIR *d;
	FILE *f;

	(void)state;
	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		snprintf(dir, sizeof(dir), "%.*s../fuzz/corpus/%s", dirlen, __FILE__,
		    targets[i]);
		if ((d = opendir(dir)) == NULL)
			fail_msg("%s: cannot open (run from the top of the tree)", dir);
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			f = fopen(path, "rb");
			assert_non_null(f);
			n = fread(buf, 1, sizeof(buf), f);
			fclose(f);
			files++;
			for (at = 0; at <= n && at < 2000; at++)
				compare(buf, at);
			for (at = 0; at < n; at++)
				if (buf[at] == '%' || buf[at] == '(')
					compare(buf + at, n - at);
		}
		closedir(d);
	}
	assert_true(files >= 20);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seeds_and_mutations),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_corpus),
	};

	return unit_run(tests);
}
