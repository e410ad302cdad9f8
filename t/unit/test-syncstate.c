/*
 * test-syncstate.c - a folder's state as a replica reports it.  Every
 * full MAILBOX kvlist of the 3.6.1 transcripts (APPLY MAILBOX without
 * SINCE_*, and GET FULLMAILBOX answers) is taken apart into what we
 * store (a cyrus.index image, a cyrus.header's flag names, an N record
 * and idspool.sync), and the state built from those must print as the
 * very bytes Cyrus sent: CRCs, counters, ACL, options, flags, records,
 * annotations.  Then idspool.sync itself: round trip through the file,
 * keys a client sent reported back, hostile files refused, and
 * ids_sync_mailbox_state() on a real folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <lmdb.h>

#include "buf.h"
#include "config.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "header.h"
#include "index.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "mbentry.h"
#include "sync/csync.h"
#include "sync/sync.h"
#include "unit.h"

#define ANNOT_NS "/vendor/cmu/cyrus-imapd/"

static char tmpdir[64];
static int tmpfd = -1;

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/test-syncstate.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	tmpfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	return tmpfd < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	close(tmpfd);
	unit_rmtree(tmpdir);
	return 0;
}

/* What a replica keeps of one MAILBOX kvlist. */
struct folder {
	struct ids_mbentry entry;
	struct ids_header header;
	struct ids_index *index;
	struct ids_sync_store store;
};

static uint64_t
num(const struct ids_dlist *kv, const char *key)
{
	uint64_t v;

	assert_int_equal(ids_dlist_get_u64(kv, key, &v), 0);
	return v;
}

/* The bit of a user flag, added to the header's names when new. */
static int
user_flag(struct ids_header *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->nflags; i++)
		if (strcmp(h->flags[i], name) == 0)
			return (int)i;
	h->flags = realloc(h->flags, (h->nflags + 1) * sizeof(*h->flags));
	h->flags[h->nflags] = strdup(name);
	return (int)h->nflags++;
}

static void
set_flags(struct ids_index_record *rec, const struct ids_dlist *fl, struct ids_header *h)
{
	static const struct { const char *name; uint32_t bit; } sys[] = {
		{ "\\Deleted", IDS_FLAG_DELETED }, { "\\Answered", IDS_FLAG_ANSWERED },
		{ "\\Flagged", IDS_FLAG_FLAGGED }, { "\\Draft", IDS_FLAG_DRAFT },
		{ "\\Expunged", IDS_FLAG_EXPUNGED }, { "\\Seen", IDS_FLAG_SEEN },
	};
	const struct ids_dlist *f;
	size_t i;
	int bit;

	for (f = fl->head; f; f = f->next) {
		for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
			if (strcmp(f->data, sys[i].name) == 0)
				break;
		if (i < sizeof(sys) / sizeof(sys[0])) {
			rec->system_flags |= sys[i].bit;
			continue;
		}
		bit = user_flag(h, f->data);
		rec->user_flags[bit / 32] |= 1u << (bit % 32);
	}
}

/* The index's own annotations go into the record, the rest into the store. */
static void
set_annots(struct ids_index_record *rec, const struct ids_dlist *annots,
    struct ids_sync_store *st)
{
	const struct ids_dlist *a;
	struct ids_dlist *keep = ids_dlist_new_list();

	for (a = annots ? annots->head : NULL; a; a = a->next) {
		const char *e = ids_dlist_cstr(ids_dlist_get(a, "ENTRY"));
		const char *u = ids_dlist_cstr(ids_dlist_get(a, "USERID"));
		const char *v = ids_dlist_cstr(ids_dlist_get(a, "VALUE"));

		if (*u == '\0' && strcmp(e, ANNOT_NS "savedate") == 0)
			rec->savedate = strtoull(v, NULL, 10);
		else if (*u == '\0' && strcmp(e, ANNOT_NS "createdmodseq") == 0)
			rec->createdmodseq = strtoull(v, NULL, 10);
		else if (*u == '\0' && strcmp(e, ANNOT_NS "thrid") == 0)
			rec->cid = strtoull(v, NULL, 16);
		else
			assert_int_equal(ids_dlist_add_child(keep, NULL, ids_dlist_copy(a)), 0);
	}
	assert_int_equal(ids_sync_store_set_record(st, rec->uid, keep), 0);
}

static void
hex_guid(const char *hex, uint8_t g[20])
{
	for (int i = 0; i < 20; i++)
		assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &g[i]), 1);
}

static void
build_index(struct folder *f, const struct ids_dlist *kv)
{
	const struct ids_dlist *recs = ids_dlist_get(kv, "RECORD"), *r;
	struct ids_index_header h;
	struct ids_buf img = IDS_BUF_INIT;
	unsigned char buf[IDS_INDEX_MAX_HEADER];
	const char *opts = ids_dlist_cstr(ids_dlist_get(kv, "OPTIONS"));
	uint32_t n = 0;
	int len;

	for (r = recs->head; r; r = r->next)
		n++;
	memset(&h, 0, sizeof(h));
	h.minor_version = 17;
	h.start_offset = IDS_INDEX_V17_HEADER;
	h.record_size = IDS_INDEX_V17_RECORD;
	h.num_records = n;
	h.last_uid = (uint32_t)num(kv, "LAST_UID");
	h.highestmodseq = num(kv, "HIGHESTMODSEQ");
	h.recentuid = (uint32_t)num(kv, "RECENTUID");
	h.recenttime = num(kv, "RECENTTIME");
	h.last_appenddate = num(kv, "LAST_APPENDDATE");
	h.pop3_last_login = num(kv, "POP3_LAST_LOGIN");
	h.pop3_show_after = num(kv, "POP3_SHOW_AFTER");
	h.uidvalidity = (uint32_t)num(kv, "UIDVALIDITY");
	h.createdmodseq = num(kv, "CREATEDMODSEQ");
	h.options = strchr(opts, 'P') ? 1 : 0;
	len = ids_index_format_header(&h, buf, sizeof(buf));
	assert_true(len > 0);
	ids_buf_add(&img, buf, (size_t)len);
	for (r = recs->head; r; r = r->next) {
		struct ids_index_record rec;

		memset(&rec, 0, sizeof(rec));
		rec.uid = (uint32_t)num(r, "UID");
		rec.modseq = num(r, "MODSEQ");
		rec.last_updated = num(r, "LAST_UPDATED");
		rec.internaldate = (int64_t)num(r, "INTERNALDATE");
		rec.size = num(r, "SIZE");
		hex_guid(ids_dlist_cstr(ids_dlist_get(r, "GUID")), rec.guid);
		set_flags(&rec, ids_dlist_get(r, "FLAGS"), &f->header);
		set_annots(&rec, ids_dlist_get(r, "ANNOTATIONS"), &f->store);
		len = ids_index_format_record(&rec, 17, buf, sizeof(buf));
		assert_true(len > 0);
		ids_buf_add(&img, buf, (size_t)len);
	}
	assert_int_equal(ids_index_parse(img.s, img.len, &f->index), 0);
	ids_buf_release(&img);
}

/* The N record: name, uniqueid, partition, ACL "id\trights\t...", foldermodseq. */
static void
build_entry(struct folder *f, const struct ids_dlist *kv)
{
	char *acl = strdup(ids_dlist_cstr(ids_dlist_get(kv, "ACL"))), *p = acl, *id, *rights;

	ids_mbentry_init(&f->entry);
	f->entry.name = strdup(ids_dlist_cstr(ids_dlist_get(kv, "MBOXNAME")));
	f->entry.uniqueid = strdup(ids_dlist_cstr(ids_dlist_get(kv, "UNIQUEID")));
	f->entry.partition = strdup(ids_dlist_cstr(ids_dlist_get(kv, "PARTITION")));
	strcpy(f->entry.mbtype, "e");
	f->entry.foldermodseq = num(kv, "FOLDERMODSEQ");
	while ((id = strsep(&p, "\t")) && *id && (rights = strsep(&p, "\t")))
		assert_int_equal(ids_acl_set(&f->entry.acl, &f->entry.nacl, id, rights), 0);
	free(acl);
}

static void
folder_from_wire(struct folder *f, const struct ids_dlist *kv)
{
	ids_header_init(&f->header);
	ids_sync_store_init(&f->store);
	assert_int_equal(ids_sync_store_from_mailbox(&f->store, kv), 0);
	build_entry(f, kv);
	build_index(f, kv);
}

static void
folder_release(struct folder *f)
{
	ids_mbentry_release(&f->entry);
	ids_header_release(&f->header);
	ids_index_free(f->index);
	ids_sync_store_release(&f->store);
}

/* The state of f, printed as a server prints it. */
static void
print_state(struct folder *f, struct ids_buf *out)
{
	struct ids_sync_source src = { &f->entry, &f->header, f->index, &f->store };
	struct ids_dlist *kv;

	assert_int_equal(ids_sync_mailbox_kvlist(&src, IDS_SYNC_RECORDS, &kv), 0);
	assert_int_equal(ids_dlist_print_wire(kv, 0, out, NULL, NULL), 0);
	ids_dlist_free(kv);
}

/* Every full MAILBOX of a file of client lines ("C: " prefixed or raw). */
static int
check_file(const char *name, const char *prefix)
{
	struct ids_buf text = IDS_BUF_INIT, want = IDS_BUF_INIT, got = IDS_BUF_INIT;
	char *buf, *line, *save = NULL;
	size_t len, plen = strlen(prefix);
	int dfd = open("t/data/csync", O_RDONLY | O_DIRECTORY), checked = 0;

	assert_int_equal(ids_read_file(dfd, name, 1 << 24, &buf, &len), 0);
	close(dfd);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *kvtext;
		struct ids_dlist *kv;
		struct folder f;

		if (strncmp(line, prefix, plen) != 0)
			continue;
		line += plen;
		if (plen == 1 && (*prefix == '>' || *prefix == '<')) {	/* ">ts>" */
			while (*line >= '0' && *line <= '9')
				line++;
			if (*line++ != *prefix)
				continue;
		}
		if (strncmp(line, "APPLY MAILBOX ", 14) == 0)
			kvtext = line + 14;
		else if (strncmp(line, "* MAILBOX ", 10) == 0)
			kvtext = line + 10;
		else
			continue;
		if (!strstr(kvtext, " RECORD (") || strstr(kvtext, "SINCE_MODSEQ"))
			continue;
		len = strlen(kvtext) - 1;	/* the CR */
		assert_int_equal(ids_dlist_parse_flags(kvtext, len, IDS_DLIST_WIRE, &kv, NULL), 0);
		folder_from_wire(&f, kv);
		ids_buf_reset(&want);
		ids_buf_reset(&got);
		ids_buf_add(&want, kvtext, len);
		print_state(&f, &got);
		if (got.len != want.len || memcmp(got.s, want.s, got.len) != 0)
			fail_msg("%s: state differs:\n%s\nwant\n%s", name, got.s, want.s);
		folder_release(&f);
		ids_dlist_free(kv);
		checked++;
	}
	free(buf);
	ids_buf_release(&text);
	ids_buf_release(&want);
	ids_buf_release(&got);
	return checked;
}

static void
test_transcript_states(void **state)
{
	int n = 0;

	n += check_file("03-full-user-sync-bob.wire.txt", "C: ");
	n += check_file("10-rolling-once-user-delete.wire.txt", "C: ");
	n += check_file("01-full-user-sync-alice.server-telemetry.txt", "<1796524885<");
	n += check_file("13-hand-driven-sync_server-stdio.output.txt", "");
	n += check_file("rolling-session1.full.client-v-v.txt", ">");
	print_message("# %d full MAILBOX states rebuilt byte for byte\n", n);
	assert_true(n >= 8);
}

/* Keys a client sends that we keep nowhere else come back, in Cyrus's places. */
static void
test_extra_keys(void **state)
{
	static const char wire[] =
	    "%(UNIQUEID u1 MBOXNAME user.x MBOXTYPE c SYNC_CRC 0 SYNC_CRC_ANNOT 12345678 "
	    "LAST_UID 0 HIGHESTMODSEQ 1 RECENTUID 0 RECENTTIME 0 LAST_APPENDDATE 0 "
	    "POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 XCONVMODSEQ 7 RACLMODSEQ 9 UIDVALIDITY 5 "
	    "PARTITION default ACL \"x\tlrs\t\" OPTIONS P QUOTAROOT user.x CREATEDMODSEQ 1 "
	    "FOLDERMODSEQ 1 FUTUREKEY (\\Odd {3}\r\na\0b) ANNOTATIONS (%(ENTRY /comment "
	    "USERID \"\" MODSEQ 3 VALUE hello)) RECORD ())";
	struct ids_dlist *kv;
	struct ids_buf got = IDS_BUF_INIT;
	struct ids_sync_store st;
	struct folder f;

	assert_int_equal(ids_dlist_parse_flags(wire, sizeof(wire) - 1, IDS_DLIST_WIRE, &kv, NULL), 0);
	folder_from_wire(&f, kv);
	/* through the file and back */
	assert_int_equal(ids_sync_store_write(tmpfd, &f.store), 0);
	ids_sync_store_release(&f.store);
	assert_int_equal(ids_sync_store_read(tmpfd, &st), 0);
	f.store = st;
	print_state(&f, &got);
	assert_int_equal(got.len, sizeof(wire) - 1);
	assert_memory_equal(got.s, wire, got.len);
	folder_release(&f);
	ids_dlist_free(kv);
	ids_buf_release(&got);
}

/* Record annotations stored in the file count in SYNC_CRC_ANNOT and come back. */
static void
test_store_records(void **state)
{
	static const char ann[] = "(%(ENTRY /comment USERID alice MODSEQ 4 VALUE {2}\r\nx\0))";
	struct ids_sync_store st, back;
	struct ids_dlist *a;
	struct ids_buf b1 = IDS_BUF_INIT, b2 = IDS_BUF_INIT;

	ids_sync_store_init(&st);
	for (uint32_t uid = 9; uid >= 1 && uid <= 9; uid -= 4) {
		assert_int_equal(ids_dlist_parse_flags(ann, sizeof(ann) - 1, IDS_DLIST_WIRE, &a,
		    NULL), 0);
		assert_int_equal(ids_sync_store_set_record(&st, uid, a), 0);
	}
	assert_int_equal(st.nrecords, 3);
	assert_int_equal(st.records[0].uid, 1);
	assert_int_equal(st.records[2].uid, 9);
	assert_int_equal(ids_sync_store_set_record(&st, 5, NULL), 0);
	assert_int_equal(st.nrecords, 2);
	assert_int_equal(ids_sync_store_write(tmpfd, &st), 0);
	assert_int_equal(ids_sync_store_read(tmpfd, &back), 0);
	assert_int_equal(back.nrecords, 2);
	assert_int_equal(ids_dlist_print_wire(ids_sync_store_record(&st, 9), 0, &b1, NULL, NULL), 0);
	assert_int_equal(ids_dlist_print_wire(ids_sync_store_record(&back, 9), 0, &b2, NULL, NULL), 0);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.s, b2.s, b1.len);
	assert_int_equal(b1.len, sizeof(ann) - 1);
	ids_sync_store_release(&back);
	/* an empty store removes the file */
	ids_sync_store_release(&st);
	assert_int_equal(ids_sync_store_write(tmpfd, &st), 0);
	assert_true(faccessat(tmpfd, IDS_SYNC_FILE, F_OK, 0) < 0 && errno == ENOENT);
	assert_int_equal(ids_sync_store_read(tmpfd, &st), 0);
	assert_int_equal(st.nrecords, 0);
	ids_buf_release(&b1);
	ids_buf_release(&b2);
}

/* A failed write of idspool.sync leaves the old file as it was. */
static void
test_store_write_fault(void **state)
{
	static const char ann[] = "(%(ENTRY /c USERID u MODSEQ 1 VALUE v))";
	struct ids_sync_store st, back;
	struct ids_dlist *a;

	ids_sync_store_init(&st);
	assert_int_equal(ids_dlist_parse_flags(ann, sizeof(ann) - 1, IDS_DLIST_WIRE, &a, NULL), 0);
	assert_int_equal(ids_sync_store_set_record(&st, 7, a), 0);
	assert_int_equal(ids_sync_store_write(tmpfd, &st), 0);
	assert_int_equal(ids_sync_store_set_record(&st, 7, NULL), 0);
	setenv("IDS_FAILPOINT", "sync.store_write:EIO", 1);
	ids_failpoint_reset();
	assert_int_equal(ids_sync_store_write(tmpfd, &st), -EIO);
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	assert_int_equal(ids_sync_store_read(tmpfd, &back), 0);
	assert_int_equal(back.nrecords, 1);
	assert_int_equal(back.records[0].uid, 7);
	ids_sync_store_release(&back);
	ids_sync_store_release(&st);
	unlinkat(tmpfd, IDS_SYNC_FILE, 0);
}

/* Damaged files are refused with a reason, never half read. */
static void
test_store_hostile(void **state)
{
	static const char *const bad[] = {
		"",
		"%(V 1)",			/* no newline: cut short */
		"%(V 2)\n",
		"%(V 1 RECORDS (%(UID 5 ANNOTATIONS ()) %(UID 3 ANNOTATIONS ())))\n",
		"%(V 1 RECORDS (%(UID 5)))\n",
		"%(V 1 EXTRA (a b))\n",
		"%(V 1 ANNOTATIONS (%(ENTRY e)))\n",
		"%(V 1 ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((\n",
		"(V 1)\n",
	};
	struct ids_sync_store st;
	size_t i;
	int r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ids_write_durable(tmpfd, IDS_SYNC_FILE, bad[i], strlen(bad[i]),
		    0600), 0);
		r = ids_sync_store_read(tmpfd, &st);
		if (r >= 0)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(st.nrecords, 0);
		assert_null(st.extra);
	}
	unlinkat(tmpfd, IDS_SYNC_FILE, 0);
}

static int
collect(const char *key, const struct ids_dlist *val, void *rock)
{
	struct ids_buf *b = rock;

	ids_buf_printf(b, "%s=", key);
	ids_dlist_print_wire(val, 0, b, NULL, NULL);
	ids_buf_addch(b, ';');
	return 0;
}

/* replica.db: put, get, walk by owner and kind, delete an owner, durable across opens. */
static void
test_meta(void **state)
{
	static const char seen[] = "%(LASTREAD 5 SEENUIDS \"1:3\")";
	struct ids_config cfg;
	struct ids_sync_meta *m;
	struct ids_dlist *v, *got;
	struct ids_buf b = IDS_BUF_INIT, text = IDS_BUF_INIT;
	char big[600];

	ids_buf_printf(&text, "configdirectory: %s\npartition-default: %s/spool\n", tmpdir, tmpdir);
	assert_int_equal(ids_config_parse(&cfg, text.s, text.len, "test.conf"), 0);
	assert_int_equal(ids_sync_meta_open(&cfg, &m), 0);
	assert_int_equal(ids_dlist_parse_flags(seen, sizeof(seen) - 1, IDS_DLIST_WIRE, &v, NULL), 0);
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SEEN, "alice", "u1", v), 0);
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SEEN, "alice", "u2", v), 0);
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SEEN, "al", "u3", v), 0);
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SUB, "alice", "user.bob.x", v), 0);
	assert_int_equal(ids_sync_meta_get(m, IDS_SYNC_SEEN, "alice", "u9", &got), IDS_ENOTFOUND);
	ids_sync_meta_close(m);

	assert_int_equal(ids_sync_meta_open(&cfg, &m), 0);	/* what was OKed is there */
	assert_int_equal(ids_sync_meta_get(m, IDS_SYNC_SEEN, "alice", "u2", &got), 0);
	assert_int_equal(ids_dlist_print_wire(got, 0, &b, NULL, NULL), 0);
	assert_string_equal(b.s, "%(LASTREAD 5 SEENUIDS 1:3)");
	ids_dlist_free(got);
	ids_buf_reset(&b);
	assert_int_equal(ids_sync_meta_foreach(m, IDS_SYNC_SEEN, "alice", collect, &b), 0);
	assert_string_equal(b.s, "u1=%(LASTREAD 5 SEENUIDS 1:3);u2=%(LASTREAD 5 SEENUIDS 1:3);");
	/* a deleted item, then the whole owner */
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SEEN, "alice", "u1", NULL), 0);
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SEEN, "alice", "u1", NULL), 0);
	assert_int_equal(ids_sync_meta_delete_owner(m, "alice"), 0);
	ids_buf_reset(&b);
	assert_int_equal(ids_sync_meta_foreach(m, IDS_SYNC_SEEN, "alice", collect, &b), 0);
	assert_int_equal(ids_sync_meta_foreach(m, IDS_SYNC_SUB, "alice", collect, &b), 0);
	assert_string_equal(b.s, "");
	assert_int_equal(ids_sync_meta_get(m, IDS_SYNC_SEEN, "al", "u3", &got), 0);	/* not alice's */
	ids_dlist_free(got);
	/* a commit that fails changes nothing */
	setenv("IDS_FAILPOINT", "sync.meta_commit:EIO", 1);
	ids_failpoint_reset();
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SEEN, "al", "u3", NULL), -EIO);
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	assert_int_equal(ids_sync_meta_get(m, IDS_SYNC_SEEN, "al", "u3", &got), 0);
	ids_dlist_free(got);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(ids_sync_meta_put(m, IDS_SYNC_SUB, "al", big, v), IDS_ETOOLONG);
	ids_sync_meta_close(m);
	ids_dlist_free(v);
	ids_config_release(&cfg);
	ids_buf_release(&b);
	ids_buf_release(&text);
}

/* The sum of the CRCs of a RECORD list, as the wire computes them. */
static void
wire_crcs(const struct ids_dlist *kv, uint32_t *basic, uint32_t *annot)
{
	const struct ids_dlist *r;
	uint32_t b, a;

	*basic = 0;
	*annot = IDS_SYNC_CRC_ANNOT_INIT;
	for (r = ids_dlist_get(kv, "RECORD")->head; r; r = r->next) {
		assert_int_equal(ids_sync_record_crcs(r, &b, &a), 0);
		*basic ^= b;
		*annot ^= a;
	}
}

/*
 * The spool of both real-folder tests: cfg under tmpdir, mailboxes.db,
 * and the folder name made (its record in *e) with msg delivered once.
 */
static struct ids_mboxlist *
spool_with(struct ids_config *cfg, struct ids_buf *text, const char *name, const char *msg,
    size_t len, struct ids_mbentry *e, uint32_t *uid)
{
	struct ids_mboxlist *mbl;

	ids_buf_printf(text, "configdirectory: %s\npartition-default: %s/spool\n", tmpdir, tmpdir);
	assert_int_equal(ids_config_parse(cfg, text->s, text->len, "test.conf"), 0);
	mkdirat(tmpfd, "spool", 0750);
	assert_int_equal(ids_mboxlist_open(cfg, IDS_MBOXLIST_CREATE, &mbl), 0);
	ids_mbentry_init(e);
	assert_int_equal(ids_mailbox_create(mbl, name, NULL, e), 0);
	assert_int_equal(ids_mailbox_deliver(mbl, name, msg, len, 1796524881, uid), 0);
	return mbl;
}

/*
 * A real folder: created and delivered to by the library, its state read
 * under its lock; the CRCs agree with those of its own RECORD list, a
 * stored record annotation shows and counts; deleting the folder takes
 * idspool.sync with it.
 */
static void
test_real_folder(void **state)
{
	static const char msg[] = "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n";
	static const char ann[] = "(%(ENTRY /comment USERID alice MODSEQ 3 VALUE note))";
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	struct ids_mailbox *mb;
	struct ids_mbentry e;
	struct ids_sync_store st;
	struct ids_dlist *kv, *a;
	struct ids_buf text = IDS_BUF_INIT, out = IDS_BUF_INIT;
	char dirpath[PATH_MAX], fdpath[64];
	uint32_t uid, basic, annot, want, before;
	ssize_t n;

	mbl = spool_with(&cfg, &text, "user.alice", msg, sizeof(msg) - 1, &e, &uid);
	assert_int_equal(ids_mailbox_deliver(mbl, "user.alice", msg, sizeof(msg) - 2,
	    1796524882, &uid), 0);
	assert_int_equal(uid, 2);

	assert_int_equal(ids_mailbox_open(mbl, "user.alice", IDS_MAILBOX_WRITE, 5000, &mb), 0);
	assert_int_equal(ids_sync_mailbox_state(mb, IDS_SYNC_RECORDS, &kv), 0);
	assert_string_equal(ids_dlist_cstr(ids_dlist_get(kv, "UNIQUEID")), e.uniqueid);
	assert_string_equal(ids_dlist_cstr(ids_dlist_get(kv, "MBOXNAME")), "user.alice");
	assert_string_equal(ids_dlist_cstr(ids_dlist_get(kv, "LAST_UID")), "2");
	wire_crcs(kv, &basic, &annot);
	assert_int_equal(ids_dlist_get_u32(kv, "SYNC_CRC", &want), 0);
	assert_int_equal(basic, want);
	assert_true(want != 0);
	assert_int_equal(ids_dlist_get_u32(kv, "SYNC_CRC_ANNOT", &want), 0);
	assert_int_equal(annot, want);
	before = want;
	ids_dlist_free(kv);

	/* a record annotation kept for uid 2 */
	ids_sync_store_init(&st);
	assert_int_equal(ids_dlist_parse_flags(ann, sizeof(ann) - 1, IDS_DLIST_WIRE, &a, NULL), 0);
	assert_int_equal(ids_sync_store_set_record(&st, 2, a), 0);
	assert_int_equal(ids_sync_store_write(ids_mailbox_metafd(mb, IDS_META_INDEX), &st), 0);
	ids_sync_store_release(&st);
	assert_int_equal(ids_sync_mailbox_state(mb, IDS_SYNC_RECORDS, &kv), 0);
	assert_int_equal(ids_dlist_print_wire(kv, 0, &out, NULL, NULL), 0);
	assert_non_null(strstr(out.s, "%(ENTRY /comment USERID alice MODSEQ 3 VALUE note)"));
	wire_crcs(kv, &basic, &annot);
	assert_int_equal(ids_dlist_get_u32(kv, "SYNC_CRC_ANNOT", &want), 0);
	assert_int_equal(annot, want);
	assert_int_equal(want, before ^ ids_sync_crc_annot(2, "/comment", "alice", "note", 4));
	ids_dlist_free(kv);
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", ids_mailbox_metafd(mb, IDS_META_INDEX));
	n = readlink(fdpath, dirpath, sizeof(dirpath) - 1);
	assert_true(n > 0);
	dirpath[n] = '\0';
	ids_mailbox_close(mb);

	/* the folder goes with its idspool.sync */
	assert_int_equal(ids_mailbox_delete(mbl, "user.alice"), 0);
	assert_true(access(dirpath, F_OK) < 0 && errno == ENOENT);
	ids_mbentry_release(&e);
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	ids_buf_release(&text);
	ids_buf_release(&out);
}

/* The raw value of key in the LMDB file path (the cache closed meanwhile). */
static void
raw_get(const char *path, const char *key, char **val, size_t *len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	*val = malloc(v.mv_size);
	assert_non_null(*val);
	memcpy(*val, v.mv_data, v.mv_size);
	*len = v.mv_size;
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static void
raw_put(const char *path, const char *key, const char *val, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* 1 when the cache of cfg answers uniqueid's entry for sig and ekey. */
static int
cache_hit(const struct ids_config *cfg, const char *uniqueid, const struct ids_sync_sig *sig,
    const char *ekey, struct ids_dlist **kv, struct ids_dlist **missing)
{
	struct ids_sync_statecache *sc;
	int hit;

	assert_int_equal(ids_sync_statecache_open(cfg, &sc), 0);
	hit = ids_sync_statecache_get(sc, uniqueid, sig, ekey, kv, missing);
	ids_sync_statecache_close(sc);
	return hit;
}

/*
 * The state cache: the signature taken through a folder's descriptors
 * is the one taken by its paths; an entry reads back as stored, and
 * only for the same signature and entry key; every byte of a stored
 * value changed, and every shorter value, is a miss, never a state;
 * a file that is not LMDB's is made anew.
 */
static void
test_statecache(void **state)
{
	static const char msg[] = "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n";
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	struct ids_mailbox *mb;
	struct ids_mbentry e;
	struct ids_sync_statecache *sc;
	struct ids_sync_sig sig, sig2;
	struct ids_dlist *kv, *missing, *got, *gotm;
	struct ids_buf text = IDS_BUF_INIT, a = IDS_BUF_INIT, b = IDS_BUF_INIT;
	char path[PATH_MAX], *ekey, *val, *bad;
	size_t len, i;
	uint32_t uid;
	int fd;

	mbl = spool_with(&cfg, &text, "user.carol", msg, sizeof(msg) - 1, &e, &uid);
	assert_int_equal(ids_mailbox_open(mbl, "user.carol", 0, 5000, &mb), 0);
	assert_int_equal(ids_sync_sig_open(mb, &sig), 0);
	assert_int_equal(ids_sync_sig_paths(&cfg, &mb->entry, &sig2), 0);
	assert_memory_equal(&sig, &sig2, sizeof(sig));
	assert_true(sig.f[0].ino != 0 && sig.f[1].ino != 0 && sig.f[3].ino != 0);
	assert_true(sig.f[2].ino == 0);		/* no idspool.sync: all zero */
	assert_false(ids_sync_sig_settled(&sig));	/* just written */
	assert_int_equal(ids_sync_mailbox_state(mb, 0, &kv), 0);
	assert_int_equal(ids_dlist_parse("(0123456789abcdef0123456789abcdef01234567)", 42,
	    &missing, NULL), 0);
	ekey = ids_sync_entry_key(&mb->entry);
	assert_non_null(ekey);
	ids_mailbox_close(mb);

	assert_int_equal(ids_sync_statecache_open(&cfg, &sc), 0);
	assert_int_equal(ids_sync_statecache_put(sc, e.uniqueid, &sig, ekey, kv, missing), 0);
	assert_int_equal(ids_sync_statecache_put(sc, "other", &sig, ekey, kv, NULL), 0);
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	ids_sync_statecache_close(sc);

	assert_int_equal(cache_hit(&cfg, e.uniqueid, &sig, ekey, &got, &gotm), 1);
	ids_dlist_print(kv, &a);
	ids_dlist_print(got, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.s, b.s, a.len);
	ids_buf_reset(&a);
	ids_buf_reset(&b);
	ids_dlist_print(missing, &a);
	ids_dlist_print(gotm, &b);
	assert_string_equal(a.s, b.s);
	ids_dlist_free(got);
	ids_dlist_free(gotm);
	/* stored without MISSING: a hit whose MISSING is unknown */
	assert_int_equal(cache_hit(&cfg, "other", &sig, ekey, &got, &gotm), 1);
	assert_null(gotm);
	ids_dlist_free(got);
	/* another signature (a file's ctime a nanosecond on), another entry key */
	sig2 = sig;
	sig2.f[0].ctime++;
	assert_int_equal(cache_hit(&cfg, e.uniqueid, &sig2, ekey, &got, &gotm), 0);
	assert_null(got);
	ekey[strlen(ekey) - 2] ^= 1;
	assert_int_equal(cache_hit(&cfg, e.uniqueid, &sig, ekey, &got, &gotm), 0);
	ekey[strlen(ekey) - 2] ^= 1;

	/* every byte changed, every length cut: a miss */
	snprintf(path, sizeof(path), "%s/syncstate.db", tmpdir);
	raw_get(path, e.uniqueid, &val, &len);
	bad = malloc(len);
	assert_non_null(bad);
	for (i = 0; i < len; i++) {
		memcpy(bad, val, len);
		bad[i] ^= 0x5a;
		raw_put(path, e.uniqueid, bad, len);
		assert_int_equal(cache_hit(&cfg, e.uniqueid, &sig, ekey, &got, &gotm), 0);
		assert_null(got);
		assert_null(gotm);
	}
	for (i = 0; i < len; i++) {
		raw_put(path, e.uniqueid, val, i);
		assert_int_equal(cache_hit(&cfg, e.uniqueid, &sig, ekey, &got, &gotm), 0);
	}
	raw_put(path, e.uniqueid, val, len);
	assert_int_equal(cache_hit(&cfg, e.uniqueid, &sig, ekey, &got, &gotm), 1);
	ids_dlist_free(got);
	ids_dlist_free(gotm);

	/* not an LMDB file: made anew, empty */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a database\n", 15), 15);
	close(fd);
	snprintf(path, sizeof(path), "%s/syncstate.db-lock", tmpdir);
	unlink(path);
	assert_int_equal(cache_hit(&cfg, e.uniqueid, &sig, ekey, &got, &gotm), 0);

	free(bad);
	free(val);
	free(ekey);
	ids_dlist_free(kv);
	ids_dlist_free(missing);
	ids_buf_release(&a);
	ids_buf_release(&b);
	ids_mbentry_release(&e);
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	ids_buf_release(&text);
}

/* 1 when the LMDB file path holds key. */
static int
raw_has(const char *path, const char *key)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	rc = mdb_get(txn, dbi, &k, &v);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc == 0;
}

struct sweep_live {
	size_t asked, calls;
	int fail;
};

/* The sweep's question: "idNNN" with NNN odd is gone. */
static int
sweep_live(void *rock, const char *const *ids, size_t n, unsigned char *gone)
{
	struct sweep_live *l = rock;
	size_t i;

	l->calls++;
	l->asked += n;
	if (l->fail)
		return -EIO;
	for (i = 0; i < n; i++)
		gone[i] = strlen(ids[i]) == 5 && (ids[i][4] - '0') % 2 == 1;
	return 0;
}

static void
sweep_put(struct ids_sync_statecache *sc, const char *id, const struct ids_dlist *kv)
{
	struct ids_sync_sig sig;

	memset(&sig, 0, sizeof(sig));
	assert_int_equal(ids_sync_statecache_put(sc, id, &sig, "k", kv, NULL), 0);
}

/*
 * The sweep of entries that are gone: a flush with no puts reads
 * nothing (the live function is not asked); a flush with one put asks
 * about 80 entries after where the last stopped, deletes those gone,
 * never the one it puts, and goes on from there the next time,
 * wrapping at the end; a live function that fails sweeps nothing.
 */
static void
test_statecache_sweep(void **state)
{
	struct ids_config cfg;
	struct ids_buf text = IDS_BUF_INIT;
	struct ids_sync_statecache *sc;
	struct sweep_live l = { 0, 0, 0 };
	struct ids_dlist *kv;
	char dir[128], path[PATH_MAX], id[16], *pos;
	size_t len;
	int i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/sweep", tmpdir);
	assert_int_equal(mkdir(dir, 0750), 0);
	snprintf(path, sizeof(path), "%s/syncstate.db", dir);
	ids_buf_printf(&text, "configdirectory: %s\npartition-default: %s\n", dir, dir);
	assert_int_equal(ids_config_parse(&cfg, text.s, text.len, "test.conf"), 0);
	assert_int_equal(ids_dlist_parse("%(A 1)", 6, &kv, NULL), 0);

	/* 300 entries into an empty cache: nothing to sweep, nothing asked */
	assert_int_equal(ids_sync_statecache_open(&cfg, &sc), 0);
	ids_sync_statecache_set_live(sc, sweep_live, &l);
	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "id%03d", i);
		sweep_put(sc, id, kv);
	}
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	assert_int_equal(l.calls, 0);
	/* no puts: not asked */
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	assert_int_equal(l.calls, 0);

	/* one put: the first 80 entries asked about, the odd ones of them gone */
	sweep_put(sc, "id000", kv);
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.asked, 80);
	ids_sync_statecache_close(sc);
	assert_false(raw_has(path, "id001"));
	assert_false(raw_has(path, "id079"));
	assert_true(raw_has(path, "id078"));
	assert_true(raw_has(path, "id081"));
	raw_get(path, "#sweep", &pos, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(pos, "id079", 5);
	free(pos);

	/* the next: id080 to id159, and id081 it puts stays */
	assert_int_equal(ids_sync_statecache_open(&cfg, &sc), 0);
	ids_sync_statecache_set_live(sc, sweep_live, &l);
	sweep_put(sc, "id081", kv);
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	ids_sync_statecache_close(sc);
	assert_int_equal(l.asked, 160);
	assert_true(raw_has(path, "id081"));
	assert_false(raw_has(path, "id083"));
	assert_false(raw_has(path, "id159"));
	assert_true(raw_has(path, "id161"));

	/* a live function that fails: nothing swept, the place kept */
	assert_int_equal(ids_sync_statecache_open(&cfg, &sc), 0);
	ids_sync_statecache_set_live(sc, sweep_live, &l);
	l.fail = 1;
	sweep_put(sc, "id002", kv);
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	assert_true(raw_has(path, "id161"));
	l.fail = 0;

	/* id160 to id239, then id240 to id299 and, wrapped, the first 20 left */
	sweep_put(sc, "id002", kv);
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	sweep_put(sc, "id004", kv);
	assert_int_equal(ids_sync_statecache_flush(sc), 0);
	ids_sync_statecache_close(sc);
	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "id%03d", i);
		assert_int_equal(raw_has(path, id), i % 2 == 0 || i == 81);
	}
	raw_get(path, "#sweep", &pos, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(pos, "id038", 5);	/* id000 ... id038, the even ones, and id081 */
	free(pos);

	ids_dlist_free(kv);
	ids_config_release(&cfg);
	ids_buf_release(&text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcript_states),
		cmocka_unit_test(test_extra_keys),
		cmocka_unit_test(test_store_records),
		cmocka_unit_test(test_store_write_fault),
		cmocka_unit_test(test_store_hostile),
		cmocka_unit_test(test_meta),
		cmocka_unit_test(test_real_folder),
		cmocka_unit_test(test_statecache),
		cmocka_unit_test(test_statecache_sweep),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
