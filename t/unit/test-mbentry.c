/*
 * test-mbentry.c - the N and I record values of mailboxes.db, name
 * history and ACL encodings, and mbtype strings.
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
#include "mbentry.h"
#include "unit.h"

#define ID "2f3c0a53-1b3c-4c43-9d2b-3a9e7bfa0d6c"

static void
make_entry(struct ids_mbentry *e, const char *name, const char *mbtype)
{
	ids_mbentry_init(e);
	e->name = strdup(name);
	e->uniqueid = strdup(ID);
	e->partition = strdup("default");
	strcpy(e->mbtype, mbtype);
	e->uidvalidity = 1795000050;
	e->createdmodseq = 1;
	e->foldermodseq = 7;
	e->mtime = 1795000100;
	assert_int_equal(ids_acl_set(&e->acl, &e->nacl, "carol@example.org",
	    "lrswipkxtecdan"), 0);
	assert_int_equal(ids_acl_set(&e->acl, &e->nacl, "anyone", "lr"), 0);
}

static void
assert_same_entry(const struct ids_mbentry *a, const struct ids_mbentry *b)
{
	size_t i;

	assert_string_equal(a->name, b->name);
	assert_string_equal(a->uniqueid, b->uniqueid);
	if (a->partition || b->partition)
		assert_string_equal(a->partition, b->partition);
	assert_string_equal(a->mbtype, b->mbtype);
	assert_int_equal(a->uidvalidity, b->uidvalidity);
	assert_true(a->createdmodseq == b->createdmodseq);
	assert_true(a->foldermodseq == b->foldermodseq);
	assert_true(a->mtime == b->mtime);
	assert_int_equal(a->nacl, b->nacl);
	for (i = 0; i < a->nacl; i++) {
		assert_string_equal(a->acl[i].id, b->acl[i].id);
		assert_string_equal(a->acl[i].rights, b->acl[i].rights);
	}
	assert_int_equal(a->nhistory, b->nhistory);
	for (i = 0; i < a->nhistory; i++) {
		assert_string_equal(a->history[i].name, b->history[i].name);
		assert_true(a->history[i].mtime == b->history[i].mtime);
		assert_int_equal(a->history[i].uidvalidity, b->history[i].uidvalidity);
		assert_string_equal(a->history[i].mbtype, b->history[i].mbtype);
	}
}

static void
test_encode_n(void **state)
{
	struct ids_mbentry e, back;
	struct ids_buf b = IDS_BUF_INIT;
	static const char want[] = "%(T el I " ID " P default V 1795000050 C 1 F 7 "
	    "M 1795000100 A %(carol@example.org lrswipkxtecdan anyone lr))";

	(void)state;
	make_entry(&e, "example.org!user.carol.Lists", "el");
	assert_int_equal(ids_mbentry_encode_n(&e, &b), 0);
	assert_string_equal(b.s, want);
	ids_mbentry_init(&back);
	assert_int_equal(ids_mbentry_decode_n(&back, e.name, b.s, b.len), 0);
	assert_same_entry(&e, &back);
	ids_mbentry_release(&back);
	/* A tombstone: no partition, no ACL, empty fields omitted. */
	free(e.partition);
	e.partition = NULL;
	ids_acl_free(e.acl, e.nacl);
	e.acl = NULL;
	e.nacl = 0;
	e.foldermodseq = 0;
	strcpy(e.mbtype, "edl");
	ids_buf_reset(&b);
	assert_int_equal(ids_mbentry_encode_n(&e, &b), 0);
	assert_string_equal(b.s, "%(T edl I " ID " V 1795000050 C 1 M 1795000100)");
	e.uidvalidity = 0;
	e.createdmodseq = 0;
	e.mtime = 0;
	ids_buf_reset(&b);
	assert_int_equal(ids_mbentry_encode_n(&e, &b), 0);
	assert_string_equal(b.s, "%(T edl I " ID ")");
	ids_mbentry_release(&e);
	ids_buf_release(&b);
}

/* The I value carries the dbname and the history with dbnames. */
static void
test_encode_i(void **state)
{
	struct ids_mbentry e, back;
	struct ids_buf b = IDS_BUF_INIT;
	static const char want[] = "%(T el N \"example.org\x1duser\x1f" "carol\x1f"
	    "Mailing Lists\" P default V 1795000050 C 1 F 7 M 1795000100 "
	    "A %(carol@example.org lrswipkxtecdan anyone lr) "
	    "H (%(N \"example.org\x1duser\x1f" "carol\x1fLists\" M 1795000100 "
	    "V 1795000050 C 1 F 7 T el P default)))";

	(void)state;
	make_entry(&e, "example.org!user.carol.Lists", "el");
	assert_int_equal(ids_mbentry_push_history(&e, 1795000100), 0);
	free(e.name);
	e.name = strdup("example.org!user.carol.Mailing Lists");
	assert_int_equal(ids_mbentry_encode_i(&e, &b), 0);
	assert_int_equal(b.len, sizeof(want) - 1);
	assert_memory_equal(b.s, want, b.len);
	ids_mbentry_init(&back);
	assert_int_equal(ids_mbentry_decode_i(&back, ID, b.s, b.len), 0);
	assert_same_entry(&e, &back);
	assert_string_equal(back.history[0].name, "example.org!user.carol.Lists");
	assert_string_equal(back.history[0].partition, "default");
	ids_mbentry_release(&back);
	ids_mbentry_release(&e);
	ids_buf_release(&b);
}

/* What Cyrus 3.6 itself writes: its own key order, no T on old entries. */
static void
test_decode_cyrus(void **state)
{
	static const char n[] = "%(I p0o9i8u7y6t5r4e3w2q1a2s3 P default T e V 1795000021 "
	    "C 1 F 2 M 1795000020 A %(dave lrswipkxtecdan) X unknown)";
	static const char i[] = "%(N user\x1f" "dave\x1fSent P default V 1795000021 "
	    "H (%(N user\x1f" "dave\x1fOutbox M 1795000000 F 1)))";
	struct ids_mbentry e;

	(void)state;
	ids_mbentry_init(&e);
	assert_int_equal(ids_mbentry_decode_n(&e, "user.dave.Sent", n, sizeof(n) - 1), 0);
	assert_string_equal(e.uniqueid, "p0o9i8u7y6t5r4e3w2q1a2s3");
	assert_string_equal(e.mbtype, "e");
	assert_int_equal(e.nacl, 1);
	assert_string_equal(e.acl[0].rights, "lrswipkxtecdan");
	assert_true(e.mtime == 1795000020);
	assert_int_equal(ids_mbentry_decode_i(&e, "p0o9i8u7y6t5r4e3w2q1a2s3", i,
	    sizeof(i) - 1), 0);
	assert_string_equal(e.name, "user.dave.Sent");
	assert_string_equal(e.mbtype, "e");	/* T missing: the default */
	assert_int_equal(e.nhistory, 1);
	assert_string_equal(e.history[0].name, "user.dave.Outbox");
	assert_string_equal(e.history[0].mbtype, "");
	assert_true(e.history[0].foldermodseq == 1);
	ids_mbentry_release(&e);
}

static void
assert_decode_fails(const char *val, const char *detail)
{
	struct ids_mbentry e;
	int r;

	ids_mbentry_init(&e);
	r = ids_mbentry_decode_i(&e, ID, val, strlen(val));
	assert_int_equal(r, IDS_ECORRUPT);
	if (strstr(ids_errmsg(r), detail) == NULL)
		fail_msg("detail '%s' lacks '%s'", ids_errmsg(r), detail);
	assert_null(e.name);
	assert_null(e.uniqueid);
}

static void
test_decode_errors(void **state)
{
	(void)state;
	assert_decode_fails("(a b)", "not a kvlist");
	assert_decode_fails("%(N user\x1fjohn", "unterminated list");
	assert_decode_fails("%(P default)", "missing or empty mailbox name");
	assert_decode_fails("%(N user\x1fjohn V x)", "'V'");
	assert_decode_fails("%(N user\x1fjohn V 4294967296)", "over 32 bits");
	assert_decode_fails("%(N user\x1fjohn C -1)", "'C'");
	assert_decode_fails("%(N user\x1fjohn T q)", "invalid mailbox type 'q'");
	assert_decode_fails("%(N user\x1fjohn A (x))", "ACL is not a kvlist");
	assert_decode_fails("%(N user\x1fjohn A %(x NIL))", "ACL rights of 'x'");
	assert_decode_fails("%(N user\x1fjohn H %(a b))", "name history is not a list");
	assert_decode_fails("%(N user\x1fjohn H (%(M 1)))", "missing or empty mailbox name");
	assert_decode_fails("%(N user\x1fjohn H (x))", "not a kvlist");
	assert_decode_fails("%(N user\x1f\x1f)", "bad dbname");
}

static void
test_mbtype(void **state)
{
	char t[IDS_MBTYPE_MAX] = "e";

	(void)state;
	assert_int_equal(ids_mbtype_check("e"), 0);
	assert_int_equal(ids_mbtype_check("edl"), 0);
	assert_int_equal(ids_mbtype_check("c"), 0);
	assert_int_equal(ids_mbtype_check(""), IDS_ECORRUPT);
	assert_int_equal(ids_mbtype_check("x"), IDS_ECORRUPT);
	assert_int_equal(ids_mbtype_check("edd"), IDS_ECORRUPT);
	assert_int_equal(ids_mbtype_check("ee"), IDS_ECORRUPT);
	assert_int_equal(ids_mbtype_check("eddddddddddddddd"), IDS_ECORRUPT);
	assert_int_equal(ids_mbtype_set(t, 'l', 1), 0);
	assert_string_equal(t, "el");
	assert_int_equal(ids_mbtype_set(t, 'd', 1), 0);
	assert_string_equal(t, "edl");
	assert_int_equal(ids_mbtype_set(t, 'i', 1), 0);
	assert_string_equal(t, "edil");
	assert_int_equal(ids_mbtype_set(t, 'd', 1), 0);
	assert_string_equal(t, "edil");
	assert_int_equal(ids_mbtype_set(t, 'l', 0), 0);
	assert_string_equal(t, "edi");
	assert_int_equal(ids_mbtype_set(t, 'q', 1), IDS_EINVAL);
	assert_true(ids_mbtype_has(t, 'd'));
	assert_false(ids_mbtype_has(t, 'l'));
	assert_false(ids_mbtype_has("e", 'e'));
}

/* Out-of-order flags in a stored value come back in Cyrus's order. */
static void
test_mbtype_normalised_on_read(void **state)
{
	static const char n[] = "%(T eld I x)";
	struct ids_mbentry e;

	(void)state;
	ids_mbentry_init(&e);
	assert_int_equal(ids_mbentry_decode_n(&e, "user.x", n, sizeof(n) - 1), 0);
	assert_string_equal(e.mbtype, "edl");
	assert_true(ids_mbentry_is_tombstone(&e));
	assert_true(ids_mbentry_is_legacy(&e));
	ids_mbentry_release(&e);
}

static void
test_history_and_copy(void **state)
{
	struct ids_mbentry e, c;
	struct ids_dlist *list = ids_dlist_new_list();
	struct ids_history *h;
	size_t n;

	(void)state;
	make_entry(&e, "user.john.A", "e");
	assert_int_equal(ids_mbentry_push_history(&e, 100), 0);
	free(e.name);
	e.name = strdup("user.john.B");
	assert_int_equal(ids_mbentry_push_history(&e, 200), 0);
	assert_int_equal(e.nhistory, 2);
	assert_string_equal(e.history[0].name, "user.john.B");	/* newest first */
	assert_string_equal(e.history[1].name, "user.john.A");
	assert_int_equal(ids_mbentry_copy(&c, &e), 0);
	assert_same_entry(&e, &c);
	assert_ptr_not_equal(c.history[0].name, e.history[0].name);
	ids_mbentry_release(&c);
	/* Internal names (cyrus.header) stay as they are. */
	assert_int_equal(ids_history_to_dlist(e.history, e.nhistory, 0, list), 0);
	assert_string_equal(ids_dlist_cstr(ids_dlist_get(list->head, "N")), "user.john.B");
	assert_int_equal(ids_history_from_dlist(list, 0, &h, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(h[1].name, "user.john.A");
	assert_true(h[1].mtime == 100);
	ids_history_release(&h[0]);
	ids_history_release(&h[1]);
	free(h);
	ids_dlist_free(list);
	ids_mbentry_release(&e);
}

static void
test_acl_set(void **state)
{
	struct ids_acl *acl = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(ids_acl_set(&acl, &n, "a", "lr"), 0);
	assert_int_equal(ids_acl_set(&acl, &n, "b", "lrs"), 0);
	assert_int_equal(ids_acl_set(&acl, &n, "a", "lrswi"), 0);
	assert_int_equal(n, 2);
	assert_string_equal(acl[0].rights, "lrswi");
	assert_int_equal(ids_acl_set(&acl, &n, "a", NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(acl[0].id, "b");
	assert_int_equal(ids_acl_set(&acl, &n, "zz", NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids_acl_set(&acl, &n, NULL, "x"), IDS_EINVAL);
	ids_acl_free(acl, n);
}

/* Appending then merging gives what as many ids_acl_set() calls give. */
static void
test_acl_append_dedup(void **state)
{
	struct ids_acl *a, *b;
	size_t na, nb, cap, i, round;
	char id[8], rights[8];

	(void)state;
	srandom(14);
	for (round = 0; round < 200; round++) {
		a = b = NULL;
		na = nb = cap = 0;
		for (i = 0; i < round % 40; i++) {
			snprintf(id, sizeof(id), "i%ld", random() % 12);
			snprintf(rights, sizeof(rights), "r%zu", i);
			assert_int_equal(ids_acl_set(&a, &na, id, rights), 0);
			assert_int_equal(ids_acl_append(&b, &nb, &cap, strdup(id), strdup(rights)), 0);
		}
		assert_int_equal(ids_acl_dedup(b, &nb), 0);
		assert_int_equal(na, nb);
		for (i = 0; i < na; i++) {
			assert_string_equal(a[i].id, b[i].id);
			assert_string_equal(a[i].rights, b[i].rights);
		}
		assert_int_equal(ids_acl_equal(a, na, b, nb), 1);
		if (nb > 1) {
			/* The same pairs in another order are equal; other rights are not. */
			struct ids_acl t = b[0];

			b[0] = b[nb - 1];
			b[nb - 1] = t;
			assert_int_equal(ids_acl_equal(a, na, b, nb), 1);
			b[0].rights[0] = 'x';
			assert_int_equal(ids_acl_equal(a, na, b, nb), 0);
			assert_int_equal(ids_acl_equal(a, na, b, nb - 1), 0);
		}
		ids_acl_free(a, na);
		ids_acl_free(b, nb);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_n),
		cmocka_unit_test(test_encode_i),
		cmocka_unit_test(test_decode_cyrus),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_mbtype),
		cmocka_unit_test(test_mbtype_normalised_on_read),
		cmocka_unit_test(test_history_and_copy),
		cmocka_unit_test(test_acl_set),
		cmocka_unit_test(test_acl_append_dedup),
	};

	return unit_run(tests);
}
