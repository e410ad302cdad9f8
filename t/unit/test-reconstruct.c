/*
 * test-reconstruct.c - the rebuild's rules that the end-to-end test
 * cannot reach easily: history merging, a rename whose header is newer
 * than mailboxes.db (the newer claim to a name wins), legacy twins on
 * two partitions, headers on a metapartition, copies left by an
 * interrupted migration, the recovery of a re-id, and records that
 * change while a rebuild runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "intent.h"
#include "mailbox.h"
#include "reconstruct.h"
#include "reconstruct/reconstruct_int.h"
#include "recover.h"
#include "unit.h"
#include "fixture.h"
#include "legacy.h"

#define ID_SENT "k2v9d0x7qmz1w3e8r5t6y4u2"
#define ID_INBOX "2d3c1d9e-5f0a-4c1b-9a7e-0123456789ab"

/* What a rebuild reported: one line per event, "kind rule name detail". */
struct seen {
	char text[16384];
	struct fixture *f;
	int meddle;		/* delete user.alice.Two at the first change */
};

static void
collect(const struct ids_rc_event *ev, void *rock)
{
	static const char *kinds[] = { "progress", "change", "conflict", "repair",
	    "failed", "note" };
	struct seen *s = rock;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "%s %s %s %s%s%s\n", kinds[ev->kind],
	    ev->rule, ev->name ? ev->name : "-", ev->field ? ev->field : "",
	    ev->field ? " " : "", ev->detail ? ev->detail : "");
	if (s->meddle && ev->kind == IDS_RC_CHANGE) {
		s->meddle = 0;
		assert_int_equal(ids_mailbox_delete(s->f->mbl, "user.alice.Two"), 0);
	}
}

static int
setup(void **state)
{
	return fixture_setup(state, "rc", FIXTURE_TWO, "");
}

static int
setup_meta(void **state)
{
	return fixture_setup(state, "rc", FIXTURE_TWO | FIXTURE_META,
	    "metapartition_files: header index\n");
}

static int
teardown(void **state)
{
	return fixture_teardown(state);
}

static int
rebuild(struct fixture *f, struct seen *s, struct ids_reconstruct_stats *st)
{
	struct ids_reconstruct_opts o = { NULL, NULL, 0, 2000 };

	s->f = f;
	s->text[0] = '\0';
	return ids_reconstruct_rebuild(&f->cfg, f->mbl, &o, collect, s, st);
}

/* Drops mailboxes.db and opens a fresh one: the "lost database" case. */
static void
lose_db(struct fixture *f)
{
	char path[128];

	ids_mboxlist_close(f->mbl);
	snprintf(path, sizeof(path), "%s/mailboxes.db", f->dir);
	unlink(path);
	strcat(path, "-lock");
	unlink(path);
	assert_int_equal(ids_mboxlist_open(&f->cfg, IDS_MBOXLIST_CREATE, &f->mbl), 0);
}

static void
assert_match(const char *text, const char *re)
{
	regex_t rx;
	int r;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
	r = regexec(&rx, text, 0, NULL, 0);
	regfree(&rx);
	if (r != 0)
		fail_msg("no line matches /%s/ in:\n%s", re, text);
}

static int
shell(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void
lookup(struct fixture *f, const char *name, struct ids_mbentry *e)
{
	ids_mbentry_init(e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, name, e), 0);
}

static int
header_at(const char *dir, struct ids_header *h)
{
	int fd, r;

	ids_header_init(h);
	if ((r = ids_opendir_abs(dir, &fd)) < 0)
		return r;
	r = ids_header_read(fd, h, NULL);
	close(fd);
	return r;
}

/* --- the history union ---------------------------------------------------- */

static void
test_history_merge(void **state)
{
	struct ids_history a[2] = { { "user.x.B", 200, 1, 1, 1, "e", NULL },
	    { "user.x.A", 100, 1, 1, 1, "e", NULL } };
	struct ids_history b[2] = { { "user.x.C", 300, 1, 1, 1, "e", NULL },
	    { "user.x.A", 100, 1, 1, 1, "e", NULL } };
	struct ids_history *h = NULL;
	size_t n = 0, i;

	(void)state;
	assert_int_equal(ids_rc_history_merge(&h, &n, a, 2), 0);
	assert_int_equal(ids_rc_history_merge(&h, &n, b, 2), 0);
	assert_int_equal(n, 3);
	assert_string_equal(h[0].name, "user.x.C");
	assert_string_equal(h[1].name, "user.x.B");
	assert_string_equal(h[2].name, "user.x.A");
	assert_true(ids_rc_history_has(h, n, "user.x.B"));
	assert_false(ids_rc_history_has(h, n, "user.x.D"));
	for (i = 0; i < n; i++)
		ids_history_release(&h[i]);
	free(h);
}

/* --- a rename whose header got ahead of mailboxes.db -------------------------- */

static void
claim_name(struct fixture *f, const char *dir, const char *name, int64_t when)
{
	struct ids_history item = { NULL, when, 1, 1, 1, "e", "default" };
	struct ids_header h;
	uint32_t crc;
	int fd;

	assert_int_equal(header_at(dir, &h), 0);
	item.name = h.name;
	assert_int_equal(ids_rc_history_merge(&h.history, &h.nhistory, &item, 1), 0);
	free(h.name);
	h.name = strdup(name);
	assert_int_equal(ids_opendir_abs(dir, &fd), 0);
	assert_int_equal(ids_header_write(fd, &h, &crc), 0);
	close(fd);
	ids_header_release(&h);
}

static void
test_newer_claim_wins(void **state)
{
	struct fixture *f = *state;
	struct ids_mbentry one, two, e;
	struct ids_mbname mb;
	struct ids_location loc;
	struct ids_reconstruct_stats st;
	struct seen s = { "", NULL, 0 };
	char dir[512], re[512];

	assert_int_equal(ids_mailbox_create(f->mbl, "user.alice", NULL, NULL), 0);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.alice.One", NULL, &one), 0);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.alice.Two", NULL, &two), 0);
	/* Two was renamed to One, but only its header knows it. */
	assert_int_equal(ids_location_from_entry(&two, &mb, &loc), 0);
	assert_true(ids_path_datadir(&f->cfg, &loc, dir, sizeof(dir)) > 0);
	claim_name(f, dir, "user.alice.One", (int64_t)time(NULL) + 10);
	assert_int_equal(rebuild(f, &s, &st), 0);
	snprintf(re, sizeof(re), "^conflict dup-name user\\.alice\\.One\\.Recovered-%.8s ",
	    one.uniqueid);
	assert_match(s.text, re);
	lookup(f, "user.alice.One", &e);
	assert_string_equal(e.uniqueid, two.uniqueid);
	ids_mbentry_release(&e);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup_id(f->mbl, two.uniqueid, &e), 0);
	assert_int_equal(e.nhistory, 1);
	assert_string_equal(e.history[0].name, "user.alice.Two");
	ids_mbentry_release(&e);
	snprintf(re, sizeof(re), "user.alice.One.Recovered-%.8s", one.uniqueid);
	lookup(f, re, &e);
	assert_string_equal(e.uniqueid, one.uniqueid);
	ids_mbentry_release(&e);
	lookup(f, "user.alice.Two", &e);
	assert_true(ids_mbentry_is_tombstone(&e));
	ids_mbentry_release(&e);
	assert_int_equal(st.failed, 0);
	assert_int_equal(rebuild(f, &s, &st), 0);
	if (st.changes + st.conflicts + st.repairs != 0)
		fail_msg("second rebuild:\n%s", s.text);
	ids_mbentry_release(&one);
	ids_mbentry_release(&two);
}

/* --- legacy twins on two partitions ------------------------------------------- */

static void
test_legacy_twins(void **state)
{
	struct fixture *f = *state;
	struct ids_reconstruct_stats st;
	struct seen s = { "", NULL, 0 };
	struct ids_mbentry e;
	struct ids_header h;
	char dir[256];
	uint32_t crc;
	int fd;

	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john", ID_INBOX, 1), 0);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.Sent", ID_SENT, 3), 0);
	assert_int_equal(shell("mkdir -p %s/two/j/user/john && cp -a %s/spool/j/user/john/Sent "
	    "%s/two/j/user/john/", f->dir, f->dir, f->dir), 0);
	/* The twin has an id of its own: only the name clashes. */
	snprintf(dir, sizeof(dir), "%s/two/j/user/john/Sent", f->dir);
	assert_int_equal(header_at(dir, &h), 0);
	free(h.uniqueid);
	h.uniqueid = strdup("0123456789abcdef");
	assert_int_equal(ids_opendir_abs(dir, &fd), 0);
	assert_int_equal(ids_header_write(fd, &h, &crc), 0);
	close(fd);
	ids_header_release(&h);
	assert_int_equal(rebuild(f, &s, &st), 0);
	assert_match(s.text, "^failed left-out user\\.john\\.Sent .*has the same name");
	assert_int_equal(st.failed, 1);
	lookup(f, "user.john.Sent", &e);
	assert_string_equal(e.uniqueid, ID_SENT);
	assert_string_equal(e.partition, "default");
	ids_mbentry_release(&e);
	/* The stale header names legacy.h writes are the path's now. */
	assert_match(s.text, "^conflict stale-name user\\.john\\.Sent cyrus\\.header names "
	    "user\\.stale\\.name: the path wins");
}

/* --- headers on a metapartition -------------------------------------------------- */

static void
test_metapartition(void **state)
{
	struct fixture *f = *state;
	struct ids_reconstruct_stats st;
	struct seen s = { "", NULL, 0 };
	struct ids_mbentry e;
	struct ids_header h;
	char dir[256];

	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john", ID_INBOX, 2), 0);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.Sent", ID_SENT, 3), 0);
	lose_db(f);
	assert_int_equal(rebuild(f, &s, &st), 0);
	assert_int_equal(st.folders, 2);
	assert_int_equal(st.failed, 0);
	lookup(f, "user.john.Sent", &e);
	assert_string_equal(e.uniqueid, ID_SENT);
	assert_string_equal(e.mbtype, "el");
	assert_int_equal(e.uidvalidity, 1700000000);
	ids_mbentry_release(&e);
	snprintf(dir, sizeof(dir), "%s/meta/j/user/john/Sent", f->dir);
	assert_int_equal(header_at(dir, &h), 0);
	assert_string_equal(h.name, "user.john.Sent");
	ids_header_release(&h);
}

/* --- a copy left by an interrupted migration ------------------------------------ */

static void
test_leftover(void **state)
{
	struct fixture *f = *state;
	struct ids_reconstruct_stats st;
	struct seen s = { "", NULL, 0 };
	struct ids_mbentry e;
	struct ids_header h;
	char dir[256];
	uint32_t crc;
	int fd;

	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john", ID_INBOX, 1), 0);
	assert_int_equal(legacy_folder(&f->cfg, f->mbl, "user.john.Sent", ID_SENT, 3), 0);
	assert_int_equal(shell("cp -al %s/spool/j/user/john/Sent %s/spool/j/user/john/" ID_SENT,
	    f->dir, f->dir), 0);
	/* As a migration does: a header of its own (a new inode) in the copy. */
	snprintf(dir, sizeof(dir), "%s/spool/j/user/john/" ID_SENT, f->dir);
	assert_int_equal(header_at(dir, &h), 0);
	free(h.name);
	h.name = strdup("user.john.Sent");
	assert_int_equal(ids_opendir_abs(dir, &fd), 0);
	assert_int_equal(ids_header_write(fd, &h, &crc), 0);
	close(fd);
	ids_header_release(&h);
	/* mailboxes.db knows the legacy folder: the linked copy is the leftover. */
	assert_int_equal(rebuild(f, &s, &st), 0);
	assert_match(s.text, "^conflict leftover .*shares its message files");
	lookup(f, "user.john.Sent", &e);
	assert_string_equal(e.mbtype, "el");
	ids_mbentry_release(&e);
	/* Without it, the uniqueid one (the later state) stays. */
	lose_db(f);
	assert_int_equal(rebuild(f, &s, &st), 0);
	assert_match(s.text, "^conflict leftover user\\.john\\.Sent .*/" ID_SENT);
	lookup(f, "user.john.Sent", &e);
	assert_string_equal(e.mbtype, "e");
	assert_string_equal(e.uniqueid, ID_SENT);
	ids_mbentry_release(&e);
	assert_int_equal(st.failed, 0);
}

/* --- recovery of a re-id ------------------------------------------------------- */

static int
put_intent_txn(struct ids_txn *txn, void *rock)
{
	return ids_intent_put(txn, "a0a0a0a0-1111-4222-8333-444444444444", rock);
}

static void
test_recover_reid(void **state)
{
	struct fixture *f = *state;
	const char *newid = "a0a0a0a0-1111-4222-8333-444444444444";
	struct ids_mbentry one;
	struct ids_intent in;
	struct ids_header h;
	struct ids_recover_report rep = { 0 };
	char src[256], dst[256], abs[512];
	int round;

	assert_int_equal(ids_mailbox_create(f->mbl, "user.alice", NULL, NULL), 0);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.alice.One", NULL, &one), 0);
	snprintf(src, sizeof(src), "a/user/alice/%s", one.uniqueid);
	snprintf(dst, sizeof(dst), "a/user/alice/%s", newid);
	for (round = 0; round < 2; round++) {
		ids_intent_init(&in);
		strcpy(in.op, "reid");
		strcpy(in.stage, "rename");
		ids_intent_set(&in.name, "user.alice.Copy");
		ids_intent_set(&in.partition, "default");
		ids_intent_set(&in.src, src);
		ids_intent_set(&in.dst, dst);
		assert_int_equal(ids_mboxlist_write(f->mbl, put_intent_txn, &in), 0);
		ids_intent_release(&in);
		if (round == 1)	/* the crash came after the rename */
			assert_int_equal(shell("mv %s/spool/%s %s/spool/%s", f->dir, src,
			    f->dir, dst), 0);
		assert_int_equal(ids_recover(f->mbl, NULL, NULL, &rep), 0);
		snprintf(abs, sizeof(abs), "%s/spool/%s", f->dir, round ? dst : src);
		assert_int_equal(header_at(abs, &h), 0);
		/* Nothing moved: nothing changed.  Moved: the header follows. */
		assert_string_equal(h.uniqueid, round ? newid : one.uniqueid);
		assert_string_equal(h.name, round ? "user.alice.Copy" : "user.alice.One");
		ids_header_release(&h);
	}
	assert_int_equal(rep.settled, 2);
	assert_int_equal(rep.failed, 0);
	ids_mbentry_release(&one);
}

/* --- a record that changes while the rebuild runs -------------------------------- */

static void
test_changed_meanwhile(void **state)
{
	struct fixture *f = *state;
	struct ids_reconstruct_stats st;
	struct seen s = { "", NULL, 1 };
	struct ids_mbentry two, e;
	struct ids_mbname mb;
	struct ids_location loc;
	char dir[512];

	assert_int_equal(ids_mailbox_create(f->mbl, "user.alice", NULL, NULL), 0);
	assert_int_equal(ids_mailbox_create(f->mbl, "user.alice.Two", NULL, &two), 0);
	/* The header's newer name makes the rebuild want to change Two... */
	assert_int_equal(ids_location_from_entry(&two, &mb, &loc), 0);
	assert_true(ids_path_datadir(&f->cfg, &loc, dir, sizeof(dir)) > 0);
	claim_name(f, dir, "user.alice.Three", (int64_t)time(NULL) + 10);
	/* ...while another process deletes it (in the event callback). */
	assert_int_equal(rebuild(f, &s, &st), 0);
	assert_match(s.text, "^failed changed-meanwhile user\\.alice\\.Three ");
	lookup(f, "user.alice.Two", &e);
	assert_true(ids_mbentry_is_tombstone(&e));
	ids_mbentry_release(&e);
	ids_mbentry_init(&e);
	assert_int_equal(ids_mboxlist_lookup(f->mbl, "user.alice.Three", &e), IDS_ENOTFOUND);
	ids_mbentry_release(&e);
	ids_mbentry_release(&two);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_history_merge),
		cmocka_unit_test_setup_teardown(test_newer_claim_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_twins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metapartition, setup_meta, teardown),
		cmocka_unit_test_setup_teardown(test_leftover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_reid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_meanwhile, setup, teardown),
	};

	return unit_run(tests);
}
