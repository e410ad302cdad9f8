/*
 * test-dlist.c - the dlist parser and printer: round trips, Cyrus's
 * atom / quoted / literal choice, lookups and number conversions,
 * hostile input that must fail cleanly with IDS_ECORRUPT, and the
 * in-place reader the parser is built on.
 */
#include <errno.h>
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

/* Parses len bytes (all of them) and prints the tree back. */
static void
assert_round_trip(const char *in, size_t len)
{
	struct ids_dlist *dl = NULL;
	struct ids_buf b = IDS_BUF_INIT;
	int r = ids_dlist_parse(in, len, &dl, NULL);

	if (r < 0)
		fail_msg("parse failed: %s", ids_errmsg(r));
	assert_int_equal(ids_dlist_print(dl, &b), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.s, in, len);
	ids_buf_release(&b);
	ids_dlist_free(dl);
}

/* How one string value prints. */
static void
assert_spelling(const char *data, size_t len, const char *want, size_t wantlen)
{
	struct ids_buf b = IDS_BUF_INIT;

	assert_int_equal(ids_dlist_print_string(data, len, &b), 0);
	assert_int_equal(b.len, wantlen);
	assert_memory_equal(b.s, want, wantlen);
	ids_buf_release(&b);
}

#define SPELL(in, want) assert_spelling(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void
assert_corrupt(const char *in, size_t len, const char *detail)
{
	struct ids_dlist *dl = NULL;
	int r = ids_dlist_parse(in, len, &dl, NULL);

	assert_int_equal(r, IDS_ECORRUPT);
	assert_null(dl);
	if (strstr(ids_errmsg(r), detail) == NULL)
		fail_msg("detail '%s' lacks '%s'", ids_errmsg(r), detail);
}

#define CORRUPT(in, detail) assert_corrupt(in, sizeof(in) - 1, detail)

static void
test_round_trips(void **state)
{
	static const char mbentry[] =
	    "%(T el I 2f3c0a53-1b3c-4c43-9d2b-3a9e7bfa0d6c P default V 1700000000 "
	    "C 1 F 7 M 1795000100 A %(john lrswipkxtecdan \"group:a b\" lr))";
	static const char nested[] = "%(A %(B %(C (1 2 NIL () %()))) D \"\")";
	static const char dbname[] = "%(N \"example.com\x1duser\x1fjohn\x1fSent\" "
	    "O user\x1fjohn)";
	static const char eightbit[] = "(x {6}\r\n\xff\x00\xc3\xa9\r\n y)";

	(void)state;
	assert_round_trip(mbentry, sizeof(mbentry) - 1);
	assert_round_trip(nested, sizeof(nested) - 1);
	assert_round_trip(dbname, sizeof(dbname) - 1);
	assert_round_trip(eightbit, sizeof(eightbit) - 1);
	assert_round_trip("NIL", 3);
	assert_round_trip("()", 2);
	assert_round_trip("%()", 3);
	assert_round_trip("\"NIL\"", 5);
}

static void
test_spelling(void **state)
{
	(void)state;
	SPELL("abc", "abc");
	SPELL("", "\"\"");
	SPELL("NIL", "\"NIL\"");
	SPELL("nil", "nil");
	SPELL("a b", "\"a b\"");
	SPELL("a\x1f" "b", "a\x1f" "b");	/* 0x1F is an atom byte */
	SPELL("a\x1e" "b", "\"a\x1e" "b\"");
	SPELL("a\tb", "\"a\tb\"");
	SPELL("a\x7f", "\"a\x7f\"");
	SPELL("(x)", "\"(x)\"");
	SPELL("x*", "\"x*\"");
	SPELL("{x", "\"{x\"");
	SPELL("$Forwarded", "$Forwarded");
	SPELL("\\Seen", "{5}\r\n\\Seen");
	SPELL("100%", "{4}\r\n100%");
	SPELL("say \"hi\"", "{8}\r\nsay \"hi\"");
	SPELL("a\r\nb", "{4}\r\na\r\nb");
	SPELL("caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9");
	SPELL("a\0b", "{3}\r\na\0b");
	assert_spelling(NULL, 0, "NIL", 3);
}

/* 1023 bytes may be an atom or quoted; 1024 bytes are always a literal. */
static void
test_long_values(void **state)
{
	char v[1100], want[1200];
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_dlist *kv = ids_dlist_new_kvlist(), *back = NULL;
	int n;

	(void)state;
	memset(v, 'a', sizeof(v));
	assert_spelling(v, 1023, v, 1023);
	v[10] = ' ';
	memcpy(want + 1, v, 1023);
	want[0] = want[1024] = '"';
	assert_spelling(v, 1023, want, 1025);
	n = snprintf(want, sizeof(want), "{1024}\r\n");
	memcpy(want + n, v, 1024);
	assert_spelling(v, 1024, want, (size_t)n + 1024);
	v[10] = 'a';
	memcpy(want + n, v, 1024);
	assert_spelling(v, 1024, want, (size_t)n + 1024);
	/* And back through the parser, inside a kvlist. */
	assert_int_equal(ids_dlist_add_string(kv, "K", v, 1024), 0);
	assert_int_equal(ids_dlist_print(kv, &b), 0);
	assert_int_equal(ids_dlist_parse(b.s, b.len, &back, NULL), 0);
	assert_int_equal(ids_dlist_get(back, "K")->len, 1024);
	assert_memory_equal(ids_dlist_get(back, "K")->data, v, 1024);
	ids_dlist_free(back);
	ids_dlist_free(kv);
	ids_buf_release(&b);
}

static void
test_nil_and_lookups(void **state)
{
	static const char in[] = "%(S NIL Q \"NIL\" U ($Junk NIL) V 42)";
	struct ids_dlist *kv, *u;
	char *s;

	(void)state;
	assert_int_equal(ids_dlist_parse(in, sizeof(in) - 1, &kv, NULL), 0);
	assert_int_equal(kv->type, IDS_DL_KVLIST);
	assert_int_equal(ids_dlist_get(kv, "S")->type, IDS_DL_NIL);
	assert_null(ids_dlist_cstr(ids_dlist_get(kv, "S")));
	assert_string_equal(ids_dlist_cstr(ids_dlist_get(kv, "Q")), "NIL");
	u = ids_dlist_get(kv, "U");
	assert_int_equal(u->type, IDS_DL_LIST);
	assert_string_equal(ids_dlist_cstr(u->head), "$Junk");
	assert_int_equal(u->head->next->type, IDS_DL_NIL);
	assert_null(ids_dlist_get(kv, "X"));
	assert_int_equal(ids_dlist_get_str(kv, "S", &s), 0);
	assert_null(s);
	assert_int_equal(ids_dlist_get_str(kv, "U", &s), IDS_ECORRUPT);
	assert_int_equal(ids_dlist_get_str(kv, "Q", &s), 0);
	assert_string_equal(s, "NIL");
	free(s);
	ids_dlist_free(kv);
}

static void
test_numbers(void **state)
{
	static const char in[] = "%(A 18446744073709551615 B 18446744073709551616 "
	    "C -9223372036854775808 D -9223372036854775809 E 12a F \"\" "
	    "G 4294967295 H 4294967296 I 007)";
	struct ids_dlist *kv;
	uint64_t u;
	uint32_t u32;
	int64_t i;

	(void)state;
	assert_int_equal(ids_dlist_parse(in, sizeof(in) - 1, &kv, NULL), 0);
	assert_int_equal(ids_dlist_get_u64(kv, "A", &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(ids_dlist_get_u64(kv, "B", &u), IDS_ECORRUPT);
	assert_non_null(strstr(ids_errmsg(IDS_ECORRUPT), "'B'"));
	assert_int_equal(ids_dlist_get_i64(kv, "C", &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(ids_dlist_get_i64(kv, "D", &i), IDS_ECORRUPT);
	assert_int_equal(ids_dlist_get_u64(kv, "E", &u), IDS_ECORRUPT);
	assert_int_equal(ids_dlist_get_u64(kv, "F", &u), IDS_ECORRUPT);
	assert_int_equal(ids_dlist_get_u32(kv, "G", &u32), 0);
	assert_true(u32 == UINT32_MAX);
	assert_int_equal(ids_dlist_get_u32(kv, "H", &u32), IDS_ECORRUPT);
	assert_int_equal(ids_dlist_get_u64(kv, "I", &u), 0);
	assert_int_equal(u, 7);
	u = 99;
	assert_int_equal(ids_dlist_get_u64(kv, "missing", &u), 0);
	assert_int_equal(u, 0);
	assert_int_equal(ids_dlist_get_i64(kv, "A", &i), IDS_ECORRUPT);
	ids_dlist_free(kv);
}

static void
test_builder(void **state)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist(), *list, *cp;
	struct ids_buf b = IDS_BUF_INIT, b2 = IDS_BUF_INIT;

	(void)state;
	assert_non_null(kv);
	assert_int_equal(ids_dlist_add_atom(kv, "T", "e"), 0);
	assert_int_equal(ids_dlist_add_num(kv, "V", 4000000000u), 0);
	assert_int_equal(ids_dlist_add_snum(kv, "M", -5), 0);
	assert_int_equal(ids_dlist_add_nil(kv, "S"), 0);
	assert_int_equal(ids_dlist_add_list(kv, "U", &list), 0);
	assert_int_equal(ids_dlist_add_atom(list, NULL, "a b"), 0);
	assert_int_equal(ids_dlist_add_atom(list, NULL, NULL), 0);
	/* A key in a plain list, or none in a kvlist, is refused. */
	assert_int_equal(ids_dlist_add_atom(list, "k", "v"), IDS_EINVAL);
	assert_int_equal(ids_dlist_add_atom(kv, NULL, "v"), IDS_EINVAL);
	assert_int_equal(ids_dlist_print(kv, &b), 0);
	assert_string_equal(b.s, "%(T e V 4000000000 M -5 S NIL U (\"a b\" NIL))");
	cp = ids_dlist_copy(kv);
	assert_non_null(cp);
	assert_int_equal(ids_dlist_print(cp, &b2), 0);
	assert_string_equal(b.s, b2.s);
	list = ids_dlist_get(cp, "V");
	ids_dlist_unlink(cp, list);
	ids_dlist_free(list);
	list = ids_dlist_get(cp, "U");
	ids_dlist_unlink(cp, list);
	assert_null(list->next);
	ids_dlist_free(list);
	ids_buf_reset(&b2);
	assert_int_equal(ids_dlist_print(cp, &b2), 0);
	assert_string_equal(b2.s, "%(T e M -5 S NIL)");
	ids_dlist_free(cp);
	ids_dlist_free(kv);
	ids_buf_release(&b);
	ids_buf_release(&b2);
}

/* What Cyrus's readers accept beyond what it writes. */
static void
test_lenient_reading(void **state)
{
	static const char in[] = "%(  A {3+}\r\nabc  B {2}\nxy C \"q\\\"\\\\z\" D ( 1  2 ) )";
	static const char out[] = "%(A abc B xy C {4}\r\nq\"\\z D (1 2))";
	struct ids_dlist *dl;
	struct ids_buf b = IDS_BUF_INIT;
	size_t used;

	(void)state;
	assert_int_equal(ids_dlist_parse(in, sizeof(in) - 1, &dl, NULL), 0);
	assert_int_equal(ids_dlist_print(dl, &b), 0);
	assert_string_equal(b.s, out);
	ids_dlist_free(dl);
	ids_buf_release(&b);
	/* With consumed, the rest is left to the caller. */
	assert_int_equal(ids_dlist_parse("(a) rest", 8, &dl, &used), 0);
	assert_int_equal(used, 3);
	ids_dlist_free(dl);
	assert_int_equal(ids_dlist_parse("atom\n", 5, &dl, &used), 0);
	assert_int_equal(used, 4);
	ids_dlist_free(dl);
	CORRUPT("(a) rest", "trailing data at byte 3");
}

static void
test_hostile(void **state)
{
	(void)state;
	CORRUPT("", "unexpected end of data at byte 0");
	CORRUPT("{10}\r\nabc", "truncated literal of 10 bytes (3 present) at byte 0");
	CORRUPT("(a {99999999999999999999999}\r\nx)", "literal longer than");
	CORRUPT("{67108865}\r\nx", "literal longer than");
	CORRUPT("{}\r\n", "literal without a length at byte 0");
	CORRUPT("{3x}\r\nabc", "expected '}' at byte 2");
	CORRUPT("{3}abc", "expected newline after literal length at byte 3");
	CORRUPT("{3}\r", "expected newline");
	CORRUPT("\"abc", "unterminated quoted string at byte 0");
	CORRUPT("(x \"ab\\", "unterminated quoted string at byte 3");
	CORRUPT("(a b", "unterminated list opened at byte 0");
	CORRUPT("%(a)", "expected ' ' after key at byte 3");
	CORRUPT("%(a b c)", "expected ' ' after key at byte 7");
	CORRUPT("%(a b c", "expected ' ' after key");
	CORRUPT("%((a) b)", "expected a key at byte 2");
	CORRUPT("%x", "'%' not followed by '(' at byte 0");
	CORRUPT(")", "unexpected ')' at byte 0");
	CORRUPT("(\"a\"\"b\")", "expected ' ' or ')' at byte 4");
	CORRUPT("(\r)", "unexpected byte 0x0d at byte 1");
	CORRUPT("%(\"a\0b\" c)", "NUL byte in key at byte 2");
}

static void
test_depth(void **state)
{
	enum { N = 100000 };
	char *deep = malloc(2 * N);
	struct ids_dlist *dl;
	int i;

	(void)state;
	assert_non_null(deep);
	/* IDS_DLIST_MAX_DEPTH nested lists are fine, one more is not. */
	for (i = 0; i < IDS_DLIST_MAX_DEPTH; i++) {
		deep[i] = '(';
		deep[2 * IDS_DLIST_MAX_DEPTH - 1 - i] = ')';
	}
	assert_int_equal(ids_dlist_parse(deep, 2 * IDS_DLIST_MAX_DEPTH, &dl, NULL), 0);
	ids_dlist_free(dl);
	for (i = 0; i <= IDS_DLIST_MAX_DEPTH; i++) {
		deep[i] = '(';
		deep[2 * IDS_DLIST_MAX_DEPTH + 1 - i] = ')';
	}
	assert_corrupt(deep, 2 * IDS_DLIST_MAX_DEPTH + 2, "nesting deeper than 64 levels");
	/* A hundred thousand '(' cost an error, not the stack. */
	memset(deep, '(', N);
	assert_corrupt(deep, N, "nesting deeper");
	memcpy(deep, "%(a ", 4);
	for (i = 4; i + 4 <= N; i += 4)
		memcpy(deep + i, "%(a ", 4);
	assert_corrupt(deep, N, "nesting deeper");
	free(deep);
}

/*
 * Every prefix of a valid value, and random corruptions of it, must
 * parse or fail with IDS_ECORRUPT; ASan checks that no byte past the
 * end is read (each attempt gets an exactly sized heap copy).
 */
static void
test_prefixes_and_mutations(void **state)
{
	static const char in[] = "%(T el N \"a b\" L {5}\r\nx\ny\0z U ($F NIL) "
	    "H (%(N x M 1) %(N \"q\\\"\")) E \"\")";
	size_t len = sizeof(in) - 1, i, k;
	unsigned seed = 12345;
	struct ids_dlist *dl;
	char *copy;
	int r;

	(void)state;
	for (i = 0; i <= len; i++) {
		copy = malloc(i ? i : 1);
		memcpy(copy, in, i);
		r = ids_dlist_parse(copy, i, &dl, NULL);
		assert_int_equal(r, i == len ? 0 : IDS_ECORRUPT);
		if (r == 0)
			ids_dlist_free(dl);
		free(copy);
	}
	for (k = 0; k < 20000; k++) {
		copy = malloc(len);
		memcpy(copy, in, len);
		seed = seed * 1103515245 + 12345;
		copy[(seed >> 8) % len] = (char)(seed >> 20);
		seed = seed * 1103515245 + 12345;
		copy[(seed >> 8) % len] = "(){}\"%\\ N0\r\n"[(seed >> 20) % 13];
		r = ids_dlist_parse(copy, len, &dl, NULL);
		assert_true(r == 0 || r == IDS_ECORRUPT);
		if (r == 0)
			ids_dlist_free(dl);
		free(copy);
	}
}

/* One item the reader should hand out: what it returns, and the item. */
struct want {
	int r;
	enum ids_dlist_type type;
	const char *key;	/* NULL: none */
	const char *data;	/* IDS_DL_STRING only */
	size_t len;
};

static void
assert_items(const char *in, size_t len, const struct want *w, size_t n)
{
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;
	size_t i;

	ids_dlist_reader_init(&rd, in, len, 0);
	for (i = 0; i < n; i++) {
		int r = ids_dlist_read(&rd, &it);

		if (r != w[i].r)
			fail_msg("item %zu: returned %d, want %d (%s)", i, r, w[i].r,
			    r < 0 ? ids_errmsg(r) : "");
		if (r != 1)
			continue;
		assert_int_equal(it.type, w[i].type);
		if (w[i].key) {
			assert_non_null(it.key);
			assert_int_equal(it.keylen, strlen(w[i].key));
			assert_memory_equal(it.key, w[i].key, it.keylen);
		} else {
			assert_null(it.key);
		}
		if (w[i].type == IDS_DL_STRING) {
			assert_int_equal(it.len, w[i].len);
			assert_memory_equal(it.data, w[i].data, it.len);
		} else {
			assert_null(it.data);
		}
	}
	assert_int_equal(rd.pos, len);
	ids_dlist_reader_release(&rd);
}

#define S(k, v) { 1, IDS_DL_STRING, k, v, sizeof(v) - 1 }
#define NIL_(k) { 1, IDS_DL_NIL, k, NULL, 0 }
#define OPEN(k, t) { 1, t, k, NULL, 0 }
#define END { 0, IDS_DL_NIL, NULL, NULL, 0 }

/* Items come in document order, each container's end as a 0. */
static void
test_reader_items(void **state)
{
	static const char in[] = "%(A x  B (1 NIL ()) C %(k \"v w\") "
	    "\"D\\\"\" {3}\r\nabc {1}\nE \"q\\\\z\" F NIL G \"NIL\" H \"\")";
	static const struct want w[] = {
		OPEN(NULL, IDS_DL_KVLIST),
		S("A", "x"),
		OPEN("B", IDS_DL_LIST), S(NULL, "1"), NIL_(NULL),
		OPEN(NULL, IDS_DL_LIST), END, END,
		OPEN("C", IDS_DL_KVLIST), S("k", "v w"), END,
		S("D\"", "abc"),
		S("E", "q\\z"),
		NIL_("F"),
		S("G", "NIL"),
		S("H", ""),
		END,
		END, END,	/* and from then on */
	};
	static const struct want one[] = { S(NULL, "atom"), END, END };
	static const struct want nil[] = { NIL_(NULL), END };
	static const struct want lit[] = { S(NULL, "a\0b"), END };

	(void)state;
	assert_items(in, sizeof(in) - 1, w, sizeof(w) / sizeof(w[0]));
	/* An outer string is one item, then the end. */
	assert_items("atom", 4, one, 3);
	assert_items("NIL", 3, nil, 2);
	assert_items("{3}\r\na\0b", 8, lit, 2);
}

/* Strings stay in the buffer unless they need decoding. */
static void
test_reader_in_place(void **state)
{
	static const char in[] = "%(key atom \"q k\" \"quoted\" l {4}\r\nlit! "
	    "\"e\\\"k\" \"e\\\\v\")";
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;
	int i;

	(void)state;
	ids_dlist_reader_init(&rd, in, sizeof(in) - 1, 0);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	for (i = 0; i < 3; i++) {
		assert_int_equal(ids_dlist_read(&rd, &it), 1);
		assert_true(it.key >= in && it.key < in + sizeof(in));
		assert_true(it.data >= in && it.data < in + sizeof(in));
	}
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_false(it.key >= in && it.key < in + sizeof(in));
	assert_false(it.data >= in && it.data < in + sizeof(in));
	assert_int_equal(it.keylen, 3);
	assert_memory_equal(it.key, "e\"k", 3);
	assert_int_equal(it.len, 3);
	assert_memory_equal(it.data, "e\\v", 3);
	assert_int_equal(ids_dlist_read(&rd, &it), 0);
	ids_dlist_reader_release(&rd);
}

/* Skipping checks what it skips, and does nothing after a string. */
static void
test_reader_skip(void **state)
{
	static const char in[] = "%(A (1 (2 %(k (3))) 4) B x C %(d NIL) E y)";
	static const char bad[] = "%(A (1 (2 %(k (3))";
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;
	struct ids_dlist *dl;
	int r;

	(void)state;
	ids_dlist_reader_init(&rd, in, sizeof(in) - 1, 0);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);	/* A ( */
	assert_int_equal(ids_dlist_skip(&rd, &it), 0);
	assert_int_equal(rd.depth, 1);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);	/* B x */
	assert_memory_equal(it.key, "B", 1);
	assert_int_equal(ids_dlist_skip(&rd, &it), 0);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);	/* C %( */
	assert_int_equal(ids_dlist_skip(&rd, &it), 0);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);	/* E y */
	assert_memory_equal(it.data, "y", 1);
	assert_int_equal(ids_dlist_read(&rd, &it), 0);
	assert_true(rd.done);
	ids_dlist_reader_release(&rd);
	/* A skipped container that does not end is the parser's error. */
	ids_dlist_reader_init(&rd, bad, sizeof(bad) - 1, 0);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_int_equal(ids_dlist_skip(&rd, &it), IDS_ECORRUPT);
	assert_non_null(strstr(ids_errmsg(IDS_ECORRUPT), "unterminated list opened at byte 7"));
	ids_dlist_reader_release(&rd);
	r = ids_dlist_parse(bad, sizeof(bad) - 1, &dl, NULL);
	assert_int_equal(r, IDS_ECORRUPT);
	assert_non_null(strstr(ids_errmsg(r), "unterminated list opened at byte 7"));
}

/* Data after the outer item: an error, or left alone with IDS_DLIST_PREFIX. */
static void
test_reader_prefix(void **state)
{
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;

	(void)state;
	ids_dlist_reader_init(&rd, "(a) rest", 8, IDS_DLIST_PREFIX);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_int_equal(ids_dlist_read(&rd, &it), 0);
	assert_int_equal(rd.pos, 3);
	assert_int_equal(ids_dlist_read(&rd, &it), 0);
	ids_dlist_reader_release(&rd);
	ids_dlist_reader_init(&rd, "(a) rest", 8, 0);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_int_equal(ids_dlist_read(&rd, &it), 1);
	assert_int_equal(ids_dlist_read(&rd, &it), IDS_ECORRUPT);
	assert_non_null(strstr(ids_errmsg(IDS_ECORRUPT), "trailing data at byte 3"));
	ids_dlist_reader_release(&rd);
	ids_dlist_reader_init(&rd, "atom rest", 9, 0);
	assert_int_equal(ids_dlist_read(&rd, &it), IDS_ECORRUPT);
	ids_dlist_reader_release(&rd);
}

/*
 * Reading hostile input to its end, skipping every container, fails
 * exactly as the parser does, and keeps failing.
 */
static void
assert_reader_fails_as_parser(const char *in, size_t len)
{
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;
	struct ids_dlist *dl = NULL;
	char want[1100];
	int r, pr = ids_dlist_parse(in, len, &dl, NULL);

	assert_int_equal(pr, IDS_ECORRUPT);
	snprintf(want, sizeof(want), "%s", ids_errmsg(pr));
	ids_error_clear();
	ids_dlist_reader_init(&rd, in, len, 0);
	while ((r = ids_dlist_read(&rd, &it)) >= 0 && !rd.done)
		if (r == 1 && (r = ids_dlist_skip(&rd, &it)) < 0)
			break;
	assert_int_equal(r, IDS_ECORRUPT);
	assert_string_equal(ids_errmsg(r), want);
	assert_int_equal(ids_dlist_read(&rd, &it), IDS_ECORRUPT);
	ids_dlist_reader_release(&rd);
}

static void
test_reader_hostile(void **state)
{
	static const char *const bad[] = {
		"", "{10}\r\nabc", "(a {99999999999999999999999}\r\nx)", "{}\r\n",
		"{3x}\r\nabc", "{3}abc", "\"abc", "(x \"ab\\", "(a b", "%(a)",
		"%(a b c)", "%((a) b)", "%x", ")", "(\"a\"\"b\")", "(\r)",
		"%(a (b c) d", "%(a %(b c d)", "(a) b", " (a)", "%(\t a b)",
		"%(a\tb)", "%(a \"x\"y)", "%(%(a b) c)", "%(a %x)", "(((\"",
	};
	static const char nulkey[] = "%(\"a\0b\" c)";
	char deep[2 * IDS_DLIST_MAX_DEPTH + 8];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_reader_fails_as_parser(bad[i], strlen(bad[i]));
	assert_reader_fails_as_parser(nulkey, sizeof(nulkey) - 1);
	memset(deep, '(', IDS_DLIST_MAX_DEPTH + 1);
	memset(deep + IDS_DLIST_MAX_DEPTH + 1, ')', IDS_DLIST_MAX_DEPTH + 1);
	assert_reader_fails_as_parser(deep, 2 * IDS_DLIST_MAX_DEPTH + 2);
}

static void
test_item_numbers(void **state)
{
	struct ids_dlist_item it = { .type = IDS_DL_STRING, .data = "18446744073709551615", .len = 20 };
	uint64_t u = 1;
	int64_t i = 1;

	(void)state;
	assert_int_equal(ids_dlist_item_u64(&it, &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(ids_dlist_item_i64(&it, &i), IDS_ECORRUPT);
	it.data = "-9223372036854775808";
	assert_int_equal(ids_dlist_item_i64(&it, &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(ids_dlist_item_u64(&it, &u), IDS_ECORRUPT);
	it.data = "007x";
	it.len = 3;		/* the item's length counts, not a NUL */
	assert_int_equal(ids_dlist_item_u64(&it, &u), 0);
	assert_int_equal(u, 7);
	it.len = 0;
	assert_int_equal(ids_dlist_item_u64(&it, &u), IDS_ECORRUPT);
	assert_int_equal(ids_dlist_item_i64(&it, &i), IDS_ECORRUPT);
	it.data = "-";
	it.len = 1;
	assert_int_equal(ids_dlist_item_i64(&it, &i), IDS_ECORRUPT);
	it.type = IDS_DL_NIL;
	it.data = NULL;
	it.len = 0;
	assert_int_equal(ids_dlist_item_u64(&it, &u), IDS_ECORRUPT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_spelling),
		cmocka_unit_test(test_long_values),
		cmocka_unit_test(test_nil_and_lookups),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_builder),
		cmocka_unit_test(test_lenient_reading),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_prefixes_and_mutations),
		cmocka_unit_test(test_reader_items),
		cmocka_unit_test(test_reader_in_place),
		cmocka_unit_test(test_reader_skip),
		cmocka_unit_test(test_reader_prefix),
		cmocka_unit_test(test_reader_hostile),
		cmocka_unit_test(test_item_numbers),
	};

	return unit_run(tests);
}
