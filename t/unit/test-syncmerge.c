/*
 * test-syncmerge.c - two sides' records of one folder merged by UID
 * (src/lib/sync/merge.c): a split-brain UID, a copy-back, an expunge on
 * one side, flags of the higher modseq, a record cleaned on one side,
 * and the copy an interrupted merge left, each with its findings.
 */
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
#include "sync/merge.h"
#include "unit.h"

#define GA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define GB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define GC "cccccccccccccccccccccccccccccccccccccccc"
#define G1 "1111111111111111111111111111111111111111"

/* %(UID u MODSEQ m ... FLAGS (flags) ... GUID g) */
static void
rec(struct ids_buf *b, unsigned uid, unsigned modseq, const char *flags, const char *guid)
{
	ids_buf_printf(b, "%%(UID %u MODSEQ %u LAST_UPDATED 100 FLAGS (%s) INTERNALDATE 100 "
	    "SIZE 10 GUID %s)", uid, modseq, flags, guid);
}

/* A MAILBOX kvlist with last_uid, highestmodseq and the records given. */
static struct ids_dlist *
state(unsigned last_uid, unsigned hms, const char *records)
{
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_dlist *dl = NULL;

	ids_buf_printf(&b, "%%(UNIQUEID u1 MBOXNAME user.x SYNC_CRC 0 SYNC_CRC_ANNOT 12345678 "
	    "LAST_UID %u HIGHESTMODSEQ %u UIDVALIDITY 7 PARTITION default RECORD (%s))",
	    last_uid, hms, records);
	assert_int_equal(ids_dlist_parse_flags(b.s, b.len, IDS_DLIST_WIRE, &dl, NULL), 0);
	ids_buf_release(&b);
	return dl;
}

/* "uid:flags:guid" of each record of side x's list, by uid, space-separated. */
static char *
show(const struct ids_sync_merge *m, int x)
{
	struct ids_buf b = IDS_BUF_INIT;
	const struct ids_dlist *r, *f;
	char *s;

	for (r = m->recs[x]->head; r != NULL; r = r->next) {
		const char *g = ids_dlist_cstr(ids_dlist_get(r, "GUID"));

		ids_buf_printf(&b, "%s%s:", b.len ? " " : "",
		    ids_dlist_cstr(ids_dlist_get(r, "UID")));
		for (f = ids_dlist_get(r, "FLAGS")->head; f != NULL; f = f->next)
			ids_buf_printf(&b, "%s%s", f == ids_dlist_get(r, "FLAGS")->head ? "" : ",",
			    f->data);
		ids_buf_printf(&b, ":%c", g[0]);
	}
	s = strdup(b.s ? b.s : "");
	ids_buf_release(&b);
	return s;
}

static void
merge(const char *lrecs, unsigned llast, const char *precs, unsigned plast, int src,
    uint64_t deletedmodseq, struct ids_sync_merge *m)
{
	const struct ids_dlist *st[2];
	struct ids_dlist *l = state(llast, 9, lrecs), *p = state(plast, 9, precs);

	st[0] = l;
	st[1] = p;
	assert_int_equal(ids_sync_merge(st, src, deletedmodseq, m), 0);
	ids_dlist_free(l);
	ids_dlist_free(p);
}

static void
assert_show(const struct ids_sync_merge *m, int x, const char *want)
{
	char *s = show(m, x);

	assert_string_equal(s, want);
	free(s);
}

/* Both sides gave uid 2 to another message: both kept, lower GUID first. */
static void
test_split_brain(void **state)
{
	struct ids_buf l = IDS_BUF_INIT, p = IDS_BUF_INIT;
	struct ids_sync_merge m;

	(void)state;
	rec(&l, 1, 2, "", G1);
	ids_buf_addch(&l, ' ');
	rec(&l, 2, 5, "\\Seen", GB);
	rec(&p, 1, 2, "", G1);
	ids_buf_addch(&p, ' ');
	rec(&p, 2, 4, "", GA);
	merge(l.s, 2, p.s, 2, IDS_MERGE_LOCAL, 0, &m);
	/* here uid 2 (the source's) is expunged in the apply; the peer keeps its own, then expunges */
	assert_show(&m, IDS_MERGE_LOCAL, "1::1 2:\\Expunged,\\Seen:b 3::a 4:\\Seen:b");
	assert_show(&m, IDS_MERGE_PEER, "1::1 2::a 3::a 4:\\Seen:b");
	assert_int_equal(m.nexpunge[IDS_MERGE_LOCAL], 0);
	assert_int_equal(m.nexpunge[IDS_MERGE_PEER], 1);
	assert_int_equal(m.expunge[IDS_MERGE_PEER][0], 2);
	assert_int_equal(m.last_uid, 4);
	assert_true(m.highestmodseq > 9);
	assert_int_equal(m.nev, 3);
	assert_string_equal(m.ev[0].kind, "conflict");
	assert_string_equal(m.ev[1].kind, "renumbered");
	assert_int_equal(m.ev[1].side, IDS_MERGE_PEER);
	assert_int_equal(m.ev[1].newuid, 3);
	assert_int_equal(m.ev[2].side, IDS_MERGE_LOCAL);
	assert_int_equal(m.ev[2].newuid, 4);
	/* each side gets the file of the message it lacks */
	assert_int_equal(m.nwant[IDS_MERGE_LOCAL], 2);
	assert_int_equal(m.nwant[IDS_MERGE_PEER], 2);
	ids_sync_merge_release(&m);
	ids_buf_release(&l);
	ids_buf_release(&p);
}

/* A message only the target holds, above the source's last uid: copied back. */
static void
test_copy_back(void **state)
{
	struct ids_buf l = IDS_BUF_INIT, p = IDS_BUF_INIT;
	struct ids_sync_merge m;

	(void)state;
	rec(&l, 1, 2, "", G1);
	rec(&p, 1, 2, "", G1);
	ids_buf_addch(&p, ' ');
	rec(&p, 2, 3, "", GC);
	merge(l.s, 1, p.s, 2, IDS_MERGE_LOCAL, 0, &m);
	assert_show(&m, IDS_MERGE_LOCAL, "1::1 2::c");
	assert_int_equal(m.nev, 1);
	assert_string_equal(m.ev[0].kind, "copied-back");
	assert_int_equal(m.ev[0].uid, 2);
	assert_int_equal(m.nwant[IDS_MERGE_LOCAL], 1);
	assert_int_equal(m.want[IDS_MERGE_LOCAL][0].uid[IDS_MERGE_PEER], 2);
	ids_sync_merge_release(&m);
	/* pulled, the same record is the source's: no finding */
	merge(l.s, 1, p.s, 2, IDS_MERGE_PEER, 0, &m);
	assert_int_equal(m.nev, 0);
	ids_sync_merge_release(&m);
	ids_buf_release(&l);
	ids_buf_release(&p);
}

/* An expunge is never undone; flags are those of the higher modseq. */
static void
test_expunge_and_flags(void **state)
{
	struct ids_buf l = IDS_BUF_INIT, p = IDS_BUF_INIT;
	struct ids_sync_merge m;

	(void)state;
	rec(&l, 1, 5, "\\Expunged", G1);
	ids_buf_addch(&l, ' ');
	rec(&l, 2, 3, "\\Seen", GA);
	rec(&p, 1, 7, "\\Flagged", G1);
	ids_buf_addch(&p, ' ');
	rec(&p, 2, 4, "\\Flagged", GA);
	merge(l.s, 2, p.s, 2, IDS_MERGE_LOCAL, 0, &m);
	assert_show(&m, IDS_MERGE_LOCAL, "1:\\Flagged,\\Expunged:1 2:\\Flagged:a");
	assert_int_equal(m.nev, 0);
	ids_sync_merge_release(&m);
	ids_buf_release(&l);
	ids_buf_release(&p);
}

/* A record one side lacks below its last uid: cleaned there, or never seen. */
static void
test_missing(void **state)
{
	struct ids_buf l = IDS_BUF_INIT, p = IDS_BUF_INIT;
	struct ids_sync_merge m;

	(void)state;
	rec(&l, 2, 6, "", GA);
	rec(&p, 1, 2, "", G1);
	ids_buf_addch(&p, ' ');
	rec(&p, 2, 6, "", GA);
	/* we cleaned records up to modseq 5: the peer's uid 1 was expunged here */
	merge(l.s, 2, p.s, 2, IDS_MERGE_PEER, 5, &m);
	assert_show(&m, IDS_MERGE_PEER, "1:\\Expunged:1 2::a");
	assert_int_equal(m.nev, 0);
	ids_sync_merge_release(&m);
	/* we never saw it: renumbered, kept on both */
	merge(l.s, 2, p.s, 2, IDS_MERGE_PEER, 0, &m);
	assert_show(&m, IDS_MERGE_PEER, "1:\\Expunged:1 2::a 3::1");
	assert_int_equal(m.nev, 1);
	assert_string_equal(m.ev[0].kind, "renumbered");
	ids_sync_merge_release(&m);
	ids_buf_release(&l);
	ids_buf_release(&p);
}

/* A merge cut short between this side's apply and its expunge: no third copy. */
static void
test_interrupted(void **state)
{
	struct ids_buf l = IDS_BUF_INIT, p = IDS_BUF_INIT;
	struct ids_sync_merge m;

	(void)state;
	rec(&l, 2, 5, "", GB);
	ids_buf_addch(&l, ' ');
	rec(&l, 3, 10, "", GA);
	ids_buf_addch(&l, ' ');
	rec(&l, 4, 11, "", GB);
	rec(&p, 2, 4, "\\Expunged", GA);
	ids_buf_addch(&p, ' ');
	rec(&p, 3, 10, "", GA);
	ids_buf_addch(&p, ' ');
	rec(&p, 4, 11, "", GB);
	merge(l.s, 4, p.s, 4, IDS_MERGE_PEER, 0, &m);
	assert_show(&m, IDS_MERGE_LOCAL, "2::b 3::a 4::b");
	assert_int_equal(m.nexpunge[IDS_MERGE_LOCAL], 1);
	assert_int_equal(m.last_uid, 4);
	assert_int_equal(m.nev, 1);
	assert_string_equal(m.ev[0].kind, "conflict");
	ids_sync_merge_release(&m);
	ids_buf_release(&l);
	ids_buf_release(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_brain),
		cmocka_unit_test(test_copy_back),
		cmocka_unit_test(test_expunge_and_flags),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_interrupted),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
