/*
 * test-intent.c - intent records (intent.h): their encoding in
 * mailboxes.db as the spec spells it, every field through a round
 * trip, a record that outlives the process that wrote it and a reopen
 * of the database, one that a failed transaction never wrote, the walk
 * over all of them, and malformed records refused as corrupt.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "error.h"
#include "intent.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "unit.h"
#include "fixture.h"

#define ID_A "2d3c1d9e-5f0a-4c1b-9a7e-0123456789ab"
#define ID_B "k2v9d0x7qmz1w3e8r5t6y4u2"
#define ID_C "047656355035e6be"

static int
setup(void **state)
{
	return fixture_setup(state, "intent", 0, "");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

struct op {
	const char *id;
	struct ids_intent *in;
	char type;
	const char *raw;	/* put_raw: the value */
	char *val;		/* get_raw: what was there */
	size_t len;
	int fail;		/* make the transaction fail after its put */
};

static int
put_txn(struct ids_txn *txn, void *rock)
{
	struct op *o = rock;
	int r = o->raw ? ids_txn_put_raw(txn, 'X', o->id, o->raw, strlen(o->raw)) :
	    ids_intent_put(txn, o->id, o->in);

	return r < 0 ? r : o->fail ? IDS_EINVAL : 0;
}

static int
get_txn(struct ids_txn *txn, void *rock)
{
	struct op *o = rock;

	return ids_intent_get(txn, o->id, o->in);
}

static int
get_raw_txn(struct ids_txn *txn, void *rock)
{
	struct op *o = rock;

	return ids_txn_get_raw(txn, 'X', o->id, &o->val, &o->len);
}

static int
del_txn(struct ids_txn *txn, void *rock)
{
	struct op *o = rock;

	return ids_intent_del(txn, o->id);
}

static int
put(struct ids_mboxlist *mbl, const char *id, const struct ids_intent *in)
{
	struct op o = { id, (struct ids_intent *)in, 0, NULL, NULL, 0, 0 };

	return ids_mboxlist_write(mbl, put_txn, &o);
}

static int
put_raw(struct ids_mboxlist *mbl, const char *id, const char *raw)
{
	struct op o = { id, NULL, 0, raw, NULL, 0, 0 };

	return ids_mboxlist_write(mbl, put_txn, &o);
}

static int
get(struct ids_mboxlist *mbl, const char *id, struct ids_intent *in)
{
	struct op o = { id, in, 0, NULL, NULL, 0, 0 };

	ids_intent_init(in);
	return ids_mboxlist_read(mbl, get_txn, &o);
}

/* The stored value, NUL-terminated (static). */
static const char *
raw(struct ids_mboxlist *mbl, const char *id)
{
	static char text[1024];
	struct op o = { id, NULL, 0, NULL, NULL, 0, 0 };

	assert_int_equal(ids_mboxlist_read(mbl, get_raw_txn, &o), 0);
	assert_true(o.len < sizeof(text));
	memcpy(text, o.val, o.len);
	text[o.len] = '\0';
	free(o.val);
	return text;
}

static void
full(struct ids_intent *in)
{
	ids_intent_init(in);
	strcpy(in->op, "rename");
	strcpy(in->stage, "headers");
	strcpy(in->strategy, "link");
	assert_int_equal(ids_intent_set(&in->name, "user.john.Sent"), 0);
	assert_int_equal(ids_intent_set(&in->newname, "user.john.Old Mail"), 0);
	assert_int_equal(ids_intent_set(&in->partition, "default"), 0);
	assert_int_equal(ids_intent_set(&in->src, "j/user/john/Sent"), 0);
	assert_int_equal(ids_intent_set(&in->dst, "j/user/john/" ID_A), 0);
	in->time = 1700000123;
}

static void
assert_same(const struct ids_intent *a, const struct ids_intent *b)
{
	assert_string_equal(a->op, b->op);
	assert_string_equal(a->stage, b->stage);
	assert_string_equal(a->strategy, b->strategy);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->newname, b->newname);
	assert_string_equal(a->partition, b->partition);
	assert_string_equal(a->src, b->src);
	assert_string_equal(a->dst, b->dst);
	assert_int_equal(a->time, b->time);
}

/* Every field back as written; on disk the kvlist of spool-layout.md. */
static void
test_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct ids_intent in, out;

	full(&in);
	assert_int_equal(put(f->mbl, ID_A, &in), 0);
	assert_int_equal(get(f->mbl, ID_A, &out), 0);
	assert_same(&in, &out);
	assert_string_equal(raw(f->mbl, ID_A),
	    "%(OP rename STAGE headers NAME user.john.Sent NEW \"user.john.Old Mail\" "
	    "PART default SRC j/user/john/Sent DST j/user/john/" ID_A " STRATEGY link "
	    "T 1700000123)");
	ids_intent_release(&out);
	/* Put again: replaced, not added. */
	strcpy(in.stage, "remove");
	assert_int_equal(ids_intent_set(&in.newname, NULL), 0);
	assert_int_equal(put(f->mbl, ID_A, &in), 0);
	assert_int_equal(get(f->mbl, ID_A, &out), 0);
	assert_string_equal(out.stage, "remove");
	assert_null(out.newname);
	ids_intent_release(&out);
	ids_intent_release(&in);
}

/* Empty fields are left out, and read back as empty (NULL strings, time 0). */
static void
test_empty_fields(void **state)
{
	struct fixture *f = *state;
	struct ids_intent in, out;

	ids_intent_init(&in);
	strcpy(in.op, "create");
	strcpy(in.stage, "files");
	assert_int_equal(ids_intent_set(&in.name, ""), 0);
	assert_int_equal(put(f->mbl, ID_B, &in), 0);
	assert_string_equal(raw(f->mbl, ID_B), "%(OP create STAGE files T 0)");
	assert_int_equal(get(f->mbl, ID_B, &out), 0);
	assert_string_equal(out.op, "create");
	assert_string_equal(out.strategy, "");
	assert_null(out.name);
	assert_null(out.newname);
	assert_null(out.partition);
	assert_null(out.src);
	assert_null(out.dst);
	assert_int_equal(out.time, 0);
	ids_intent_release(&out);
	ids_intent_release(&in);
}

/*
 * Committed is durable: the record outlives a writer killed right after
 * the commit and a close and reopen of mailboxes.db; a transaction that
 * fails after its put leaves nothing.
 */
static void
test_survives(void **state)
{
	struct fixture *f = *state;
	struct ids_intent in, out;
	struct op o;
	int status;
	pid_t pid;

	full(&in);
	if ((pid = fork()) == 0) {
		struct ids_mboxlist *mbl;

		if (ids_mboxlist_open(&f->cfg, 0, &mbl) < 0 || put(mbl, ID_C, &in) < 0)
			_exit(1);
		raise(SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(get(f->mbl, ID_C, &out), 0);
	assert_same(&in, &out);
	ids_intent_release(&out);
	ids_mboxlist_close(f->mbl);
	assert_int_equal(ids_mboxlist_open(&f->cfg, 0, &f->mbl), 0);
	assert_int_equal(get(f->mbl, ID_C, &out), 0);
	assert_same(&in, &out);
	ids_intent_release(&out);
	o = (struct op){ ID_A, &in, 0, NULL, NULL, 0, 1 };
	assert_int_equal(ids_mboxlist_write(f->mbl, put_txn, &o), IDS_EINVAL);
	assert_int_equal(get(f->mbl, ID_A, &out), IDS_ENOTFOUND);
	ids_intent_release(&in);
}

static void
test_delete(void **state)
{
	struct fixture *f = *state;
	struct ids_intent in, out;
	struct op o = { ID_A, NULL, 0, NULL, NULL, 0, 0 };

	assert_int_equal(get(f->mbl, ID_A, &out), IDS_ENOTFOUND);
	assert_int_equal(ids_mboxlist_write(f->mbl, del_txn, &o), IDS_ENOTFOUND);
	full(&in);
	assert_int_equal(put(f->mbl, ID_A, &in), 0);
	assert_int_equal(put(f->mbl, ID_B, &in), 0);
	assert_int_equal(ids_mboxlist_write(f->mbl, del_txn, &o), 0);
	assert_int_equal(get(f->mbl, ID_A, &out), IDS_ENOTFOUND);
	assert_int_equal(get(f->mbl, ID_B, &out), 0);	/* only that one */
	ids_intent_release(&out);
	ids_intent_release(&in);
}

struct walk {
	char ids[8][64];
	char stages[8][IDS_INTENT_WORD];
	int n, stop_at;
};

static int
each(const char *id, const struct ids_intent *in, void *rock)
{
	struct walk *w = rock;

	if (w->n < 8) {
		snprintf(w->ids[w->n], sizeof(w->ids[w->n]), "%s", id);
		snprintf(w->stages[w->n], sizeof(w->stages[w->n]), "%s", in->stage);
	}
	return ++w->n == w->stop_at ? 42 : 0;
}

static int
each_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_foreach(txn, each, rock);
}

/* Every intent, in byte order of the uniqueid, and nothing else; fn can stop it. */
static void
test_foreach(void **state)
{
	struct fixture *f = *state;
	struct ids_intent in;
	struct walk w = { .n = 0 };

	assert_int_equal(ids_mboxlist_read(f->mbl, each_txn, &w), 0);
	assert_int_equal(w.n, 0);
	/* A folder's own records (N, I) are not intents. */
	assert_int_equal(ids_mailbox_create(f->mbl, "user.john", NULL, NULL), 0);
	full(&in);
	strcpy(in.stage, "b");
	assert_int_equal(put(f->mbl, ID_B, &in), 0);
	strcpy(in.stage, "a");
	assert_int_equal(put(f->mbl, ID_A, &in), 0);
	strcpy(in.stage, "c");
	assert_int_equal(put(f->mbl, ID_C, &in), 0);
	assert_int_equal(ids_mboxlist_read(f->mbl, each_txn, &w), 0);
	assert_int_equal(w.n, 3);
	assert_string_equal(w.ids[0], ID_C);	/* "0476..." < "2d3c..." < "k2v9..." */
	assert_string_equal(w.stages[0], "c");
	assert_string_equal(w.ids[1], ID_A);
	assert_string_equal(w.stages[1], "a");
	assert_string_equal(w.ids[2], ID_B);
	assert_string_equal(w.stages[2], "b");
	w = (struct walk){ .stop_at = 2 };
	assert_int_equal(ids_mboxlist_read(f->mbl, each_txn, &w), 42);
	assert_int_equal(w.n, 2);
	ids_intent_release(&in);
}

/* What no writer of ours makes: refused as corrupt, with the reason. */
static void
test_corrupt(void **state)
{
	static const struct { const char *raw; const char *why; } bad[] = {
		{ "%(OP create STAGE", "" },
		{ "(OP create STAGE files)", "not a kvlist" },
		{ "%(OP aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa STAGE files)", "intent field OP too long" },
		{ "%(OP create STAGE files T soon)", "value of 'T' is not a number" },
		{ "%(OP create NAME (a b))", "value of 'NAME' is not a string" },
	};
	struct fixture *f = *state;
	struct ids_intent out;
	struct walk w = { .n = 0 };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(put_raw(f->mbl, ID_A, bad[i].raw), 0);
		assert_int_equal(get(f->mbl, ID_A, &out), IDS_ECORRUPT);
		assert_non_null(strstr(ids_errmsg(IDS_ECORRUPT), bad[i].why));
		assert_null(out.name);
	}
	/* The walk names the record it could not read. */
	assert_int_equal(ids_mboxlist_read(f->mbl, each_txn, &w), IDS_ECORRUPT);
	assert_non_null(strstr(ids_errmsg(IDS_ECORRUPT), "intent of " ID_A ": "));
	assert_int_equal(w.n, 0);
	/* The longest word that fits. */
	assert_int_equal(put_raw(f->mbl, ID_A, "%(OP aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)"), 0);
	assert_int_equal(get(f->mbl, ID_A, &out), 0);
	assert_int_equal(strlen(out.op), IDS_INTENT_WORD - 1);
	ids_intent_release(&out);
}

static void
test_set_release(void **state)
{
	struct ids_intent in;

	(void)state;
	ids_intent_init(&in);
	assert_int_equal(ids_intent_set(&in.name, "a"), 0);
	assert_string_equal(in.name, "a");
	assert_int_equal(ids_intent_set(&in.name, "b"), 0);
	assert_string_equal(in.name, "b");
	assert_int_equal(ids_intent_set(&in.name, NULL), 0);
	assert_null(in.name);
	full(&in);
	ids_intent_release(&in);
	assert_null(in.name);
	assert_null(in.dst);
	assert_string_equal(in.op, "");
	assert_int_equal(in.time, 0);
	ids_intent_release(&in);	/* twice is fine */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test(test_set_release),
	};

	return unit_run(tests);
}
