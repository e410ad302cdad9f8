/*
 * test-csync.c - the csync codec against the wire transcripts of real
 * Cyrus 3.6.1 sessions in t/data/csync/: every line of every session
 * parses and prints back byte for byte (file literals through the
 * staging directory), the lines a recorder cut short are refused, and
 * SYNC_CRC / SYNC_CRC_ANNOT recomputed from every full record list
 * equal what Cyrus sent.  Then hostile input: truncation anywhere, a
 * file literal whose bytes do not match its GUID or size, a 2 GB
 * literal, limits, and the stream staying in step after a bad line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <zlib.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "index.h"
#include "sync/csync.h"
#include "sync/sync.h"
#include "unit.h"

#define DATA "t/data/csync/"

/* --- memory streams -------------------------------------------------------- */

struct mem {
	const char *p;
	size_t len, pos, chunk;		/* chunk: bytes per read (0: all) */
};

static ssize_t
mem_read(void *rock, void *buf, size_t len)
{
	struct mem *m = rock;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static char stagedir[64];
static int stagefd = -1;

static int
setup(void **state)
{
	strcpy(stagedir, "/tmp/test-csync.XXXXXX");
	if (mkdtemp(stagedir) == NULL)
		return -1;
	stagefd = open(stagedir, O_RDONLY | O_DIRECTORY);
	return stagefd < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	close(stagefd);
	unit_rmtree(stagedir);
	return 0;
}

/* Files left in the staging directory (dot files included). */
static int
staged_count(void)
{
	DIR *d = opendir(stagedir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static struct ids_csync_in *
mem_in(struct mem *m, const char *p, size_t len, size_t chunk)
{
	struct ids_csync_in *in;

	m->p = p;
	m->len = len;
	m->pos = 0;
	m->chunk = chunk;
	assert_int_equal(ids_csync_in_new_fn(mem_read, m, &in), 0);
	ids_csync_in_set_staging(in, stagefd);
	return in;
}

/* --- transcripts into byte streams ------------------------------------------ */

static void
load(const char *name, struct ids_buf *b)
{
	char path[256], *buf;
	size_t len;
	int dfd = open(DATA, O_RDONLY | O_DIRECTORY), r;

	assert_true(dfd >= 0);
	snprintf(path, sizeof(path), "%s", name);
	r = ids_read_file(dfd, path, 1 << 24, &buf, &len);
	close(dfd);
	if (r < 0)
		fail_msg("%s: %s", name, ids_errmsg(r));
	ids_buf_add(b, buf, len);
	free(buf);
}

/* The next line of text (its '\n' included); 0 at the end. */
static size_t
next_line(const struct ids_buf *t, size_t *pos, const char **line)
{
	const char *nl;
	size_t start = *pos;

	if (start >= t->len)
		return 0;
	nl = memchr(t->s + start, '\n', t->len - start);
	*pos = nl ? (size_t)(nl - t->s) + 1 : t->len;
	*line = t->s + start;
	return *pos - start;
}

/* Is line ">123>" or "<123<"?  Returns the direction char and the prefix length. */
static int
tele_prefix(const char *l, size_t len, size_t *plen)
{
	size_t i;

	if (len < 3 || (l[0] != '<' && l[0] != '>'))
		return 0;
	for (i = 1; i < len && l[i] >= '0' && l[i] <= '9'; i++)
		;
	if (i == 1 || i >= len || l[i] != l[0])
		return 0;
	*plen = i + 1;
	return l[0];
}

/*
 * Telemetry (the client's -v -v and the server's log): ">ts>" starts a
 * chunk one way, "<ts<" the other; a line without a prefix that ends in
 * CRLF continues the chunk, any other line is the program's log.
 * sent_dir is the prefix character of the client's bytes.
 */
static void
split_telemetry(const struct ids_buf *t, int sent_dir, struct ids_buf *c, struct ids_buf *s)
{
	struct ids_buf *cur = NULL;
	const char *l;
	size_t pos = 0, len, plen;
	int d;

	while ((len = next_line(t, &pos, &l)) > 0) {
		if ((d = tele_prefix(l, len, &plen))) {
			cur = d == sent_dir ? c : s;
			ids_buf_add(cur, l + plen, len - plen);
		} else if (cur && len >= 2 && l[len - 2] == '\r' && l[len - 1] == '\n') {
			ids_buf_add(cur, l, len);
		}
	}
}

/*
 * The proxy's raw format: "C: " and "S: " lines, '#' comments; a line
 * ending in a backslash had no newline on the wire.  After "OK DEFLATE
 * active" both directions are raw deflate, inflated here.
 */
static void
inflate_into(const struct ids_buf *z, struct ids_buf *out)
{
	unsigned char block[65536];
	z_stream zs;
	int r;

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, -15), Z_OK);
	zs.next_in = (unsigned char *)z->s;
	zs.avail_in = (uInt)z->len;
	do {
		zs.next_out = block;
		zs.avail_out = sizeof(block);
		r = inflate(&zs, Z_SYNC_FLUSH);
		assert_true(r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR);
		ids_buf_add(out, block, sizeof(block) - zs.avail_out);
	} while (zs.avail_in > 0 && r == Z_OK);
	assert_int_equal(zs.avail_in, 0);
	inflateEnd(&zs);
}

static void
split_wire(const struct ids_buf *t, struct ids_buf *c, struct ids_buf *s)
{
	struct ids_buf zc = IDS_BUF_INIT, zs = IDS_BUF_INIT, *dst;
	const char *l;
	size_t pos = 0, len;
	int deflate = 0;

	while ((len = next_line(t, &pos, &l)) > 0) {
		if (l[0] == '#' || len < 3)
			continue;
		assert_true((l[0] == 'C' || l[0] == 'S') && l[1] == ':' && l[2] == ' ');
		dst = l[0] == 'C' ? (deflate ? &zc : c) : (deflate ? &zs : s);
		if (len >= 5 && l[len - 2] == '\\' && l[len - 1] == '\n')
			ids_buf_add(dst, l + 3, len - 5);
		else
			ids_buf_add(dst, l + 3, len - 3);
		if (len == 3 + 19 && memcmp(l + 3, "OK DEFLATE active\r\n", 19) == 0)
			deflate = 1;
	}
	if (deflate) {
		inflate_into(&zc, c);
		inflate_into(&zs, s);
	}
	ids_buf_release(&zc);
	ids_buf_release(&zs);
}

/* --- checks per line ---------------------------------------------------------- */

struct tally {
	int lines, refused, files, crcs, streamed;
};

/* SYNC_CRC and SYNC_CRC_ANNOT of a MAILBOX kvlist with all its records. */
static void
check_crcs(const struct ids_dlist *kv, struct tally *t)
{
	const struct ids_dlist *recs = ids_dlist_get(kv, "RECORD"), *rec;
	uint32_t want_basic, want_annot, basic = 0, annot = IDS_SYNC_CRC_ANNOT_INIT, b, a;

	if (recs == NULL || ids_dlist_get(kv, "SINCE_MODSEQ"))
		return;		/* an incremental list holds only the changes */
	assert_int_equal(ids_dlist_get_u32(kv, "SYNC_CRC", &want_basic), 0);
	assert_int_equal(ids_dlist_get_u32(kv, "SYNC_CRC_ANNOT", &want_annot), 0);
	for (rec = recs->head; rec; rec = rec->next) {
		assert_int_equal(ids_sync_record_crcs(rec, &b, &a), 0);
		basic ^= b;
		annot ^= a;
	}
	assert_int_equal(basic, want_basic);
	assert_int_equal(annot, want_annot);
	t->crcs++;
}

static void
count_files(const struct ids_dlist *dl, struct tally *t)
{
	const struct ids_dlist *c;

	if (dl->type == IDS_DL_FILE)
		t->files++;
	for (c = dl->head; c; c = c->next)
		count_files(c, t);
}

/*
 * Reads every line of stream and prints it back: a line that ends in
 * CRLF must come back byte for byte; one the recorder cut short (no
 * CR) must be refused without losing the stream.
 */
/*
 * With streaming, an APPLY MAILBOX's records are read one by one and
 * put back into its RECORD list: the line must print as it was sent.
 */
static void
round_trip_stream(const char *what, const struct ids_buf *stream, int flags,
    size_t chunk, struct tally *t, int streaming)
{
	struct mem m;
	struct ids_csync_in *in = mem_in(&m, stream->s, stream->len, chunk);
	struct ids_csync_line *l;
	struct ids_buf out = IDS_BUF_INIT;
	uint64_t start = 0, end;
	const struct ids_dlist *kv;
	int r;

	ids_csync_in_set_stream(in, streaming);
	for (;;) {
		r = ids_csync_read(in, &l);
		if (r == 1 && ids_csync_in_streaming(in)) {
			struct ids_dlist *rec = ids_dlist_get(ids_csync_arg(l, 1), "RECORD"), *item;

			assert_non_null(rec);
			assert_null(rec->head);
			t->streamed++;
			while ((r = ids_csync_read_record(in, &item)) == 1)
				assert_int_equal(ids_dlist_add_child(rec, NULL, item), 0);
			assert_false(ids_csync_in_streaming(in));
			if (r == 0) {
				r = 1;
			} else {
				ids_csync_unlink_files(l->args);
				ids_csync_line_free(l);
			}
		}
		end = ids_csync_in_offset(in);
		if (r == 0)
			break;
		assert_true(end > start && end <= stream->len);
		if (end - start < 2 || stream->s[end - 2] != '\r') {
			if (r != IDS_ECORRUPT)
				fail_msg("%s: cut line at byte %llu not refused (%d)", what,
				    (unsigned long long)start, r);
			assert_false(ids_csync_in_lost(in));
			t->refused++;
			start = end;
			continue;
		}
		if (r != 1)
			fail_msg("%s: line at byte %llu: %s", what, (unsigned long long)start,
			    ids_errmsg(r));
		ids_buf_reset(&out);
		assert_int_equal(ids_csync_print(l, flags, &out), 0);
		if (out.len != end - start || memcmp(out.s, stream->s + start, out.len) != 0)
			fail_msg("%s: line at byte %llu prints differently:\n%.*s\nwas\n%.*s", what,
			    (unsigned long long)start, (int)out.len, out.s, (int)(end - start),
			    stream->s + start);
		count_files(l->args, t);
		kv = NULL;
		if (l->kind == IDS_CSYNC_UNTAGGED && strcmp(l->word, "MAILBOX") == 0)
			kv = ids_csync_arg(l, 0);
		else if (l->kind == IDS_CSYNC_COMMAND && strcmp(l->word, "APPLY") == 0 &&
		    ids_csync_sub(l) && strcmp(ids_csync_sub(l), "MAILBOX") == 0)
			kv = ids_csync_arg(l, 1);
		if (kv && kv->type == IDS_DL_KVLIST)
			check_crcs(kv, t);
		ids_csync_unlink_files(l->args);
		ids_csync_line_free(l);
		t->lines++;
		start = end;
	}
	assert_int_equal(end, stream->len);
	assert_int_equal(staged_count(), 0);
	ids_csync_in_free(in);
	ids_buf_release(&out);
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/*
 * One transcript, both directions, read whole and 7 bytes at a time;
 * the client's side again into tc, and streamed into ts.
 */
static void
transcript(const char *name, struct tally *t, struct tally *tc, struct tally *ts)
{
	struct ids_buf text = IDS_BUF_INIT, c = IDS_BUF_INIT, s = IDS_BUF_INIT;
	size_t chunk;

	load(name, &text);
	if (ends_with(name, ".client-v-v.txt"))
		split_telemetry(&text, '>', &c, &s);
	else if (ends_with(name, ".server-telemetry.txt"))
		split_telemetry(&text, '<', &c, &s);
	else if (ends_with(name, ".wire.txt") || ends_with(name, ".wire-compressed.txt"))
		split_wire(&text, &c, &s);
	else if (ends_with(name, ".input.txt"))
		ids_buf_add(&c, text.s, text.len);
	else
		ids_buf_add(&s, text.s, text.len);	/* a server's raw output */
	assert_true(c.len + s.len > 0);
	for (chunk = 0; chunk <= 7; chunk += 7) {
		round_trip_stream(name, &c, IDS_CSYNC_CLIENT, chunk, t, 0);
		round_trip_stream(name, &s, 0, chunk, t, 0);
		round_trip_stream(name, &c, IDS_CSYNC_CLIENT, chunk, tc, 0);
		round_trip_stream(name, &c, IDS_CSYNC_CLIENT, chunk, ts, 1);
	}
	ids_buf_release(&text);
	ids_buf_release(&c);
	ids_buf_release(&s);
}

/* Every file of the transcripts, except the two that are not csync. */
static void
test_transcripts(void **state)
{
	struct tally t = { 0 }, tc = { 0 }, ts = { 0 };
	struct dirent **names;
	int n, i, done = 0;

	n = scandir(DATA, &names, NULL, alphasort);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		const char *f = names[i]->d_name;

		/* events.txt indexes the others; the sync log is not csync */
		if (f[0] != '.' && strcmp(f, "events.txt") != 0 && strncmp(f, "synclog-", 8) != 0) {
			transcript(f, &t, &tc, &ts);
			done++;
		}
		free(names[i]);
	}
	free(names);
	/* two passes (whole, 7-byte reads) over 32 files */
	assert_int_equal(done, 32);
	print_message("# %d lines round-tripped, %d cut lines refused, %d file literals, "
	    "%d CRC pairs checked\n", t.lines, t.refused, t.files, t.crcs);
	assert_true(t.lines > 500);
	assert_int_equal(t.refused, 2 * 5);	/* 11-*: five lines cut at 200 bytes */
	assert_true(t.files >= 2 * 20);
	assert_true(t.crcs >= 2 * 10);
	/* streamed, the client's lines read and print the same */
	print_message("# %d APPLY MAILBOX lines streamed\n", ts.streamed);
	assert_true(ts.streamed >= 2 * 10);
	assert_int_equal(ts.lines, tc.lines);
	assert_int_equal(ts.refused, tc.refused);
	assert_int_equal(ts.files, tc.files);
	assert_int_equal(ts.crcs, tc.crcs);
}

/* Records one at a time: errors inside the list leave the stream in step. */
static void
test_stream_records(void **state)
{
	static const char input[] =
	    /* 1: two records, then a key after the list */
	    "APPLY MAILBOX %(UNIQUEID u MBOXNAME m RECORD (%(UID 1) %(UID 2)) LAST_UID 5)\r\n"
	    /* 2: no space between records: refused after the first */
	    "APPLY MAILBOX %(UNIQUEID u RECORD (%(UID 1) %(UID 2)x %(UID 3)))\r\n"
	    /* 3: the line ends inside the list (an open quote runs to its end) */
	    "APPLY MAILBOX %(UNIQUEID u RECORD (%(UID 1) %(UID \"open))\r\n"
	    /* 4: RECORD not after a key: read whole */
	    "APPLY MAILBOX %(RECORD (%(UID 1)) UNIQUEID u)\r\n"
	    /* 5: " RECORD" inside a literal is no key: read whole, and refused */
	    "APPLY MAILBOX %(UNIQUEID {7+}\r\n RECORD (%(UID 1)))\r\n"
	    /* 6: dropped after the head */
	    "APPLY MAILBOX %(UNIQUEID u RECORD (%(UID 1) %(UID \"a)b\") {3+}\r\n)))))\r\n"
	    /* 7: spaces before an item and the list's end, as the line's parser takes them */
	    "APPLY MAILBOX %(UNIQUEID u RECORD (  %(UID 1)  ))\r\n"
	    "NOOP\r\n";
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct ids_dlist *item, *kv;
	struct mem m;
	size_t chunk;
	int r;

	for (chunk = 0; chunk <= 1; chunk++) {
		in = mem_in(&m, input, sizeof(input) - 1, chunk);
		ids_csync_in_set_stream(in, 1);
		/* 1 */
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_true(ids_csync_in_streaming(in));
		kv = ids_csync_arg(l, 1);
		assert_null(ids_dlist_get(kv, "LAST_UID"));
		assert_int_equal(ids_csync_read_record(in, &item), 1);
		assert_string_equal(ids_dlist_cstr(ids_dlist_get(item, "UID")), "1");
		ids_dlist_free(item);
		assert_int_equal(ids_csync_read_record(in, &item), 1);
		assert_string_equal(ids_dlist_cstr(ids_dlist_get(item, "UID")), "2");
		ids_dlist_free(item);
		assert_int_equal(ids_csync_read_record(in, &item), 0);
		assert_false(ids_csync_in_streaming(in));
		assert_string_equal(ids_dlist_cstr(ids_dlist_get(kv, "LAST_UID")), "5");
		assert_string_equal(kv->tail->name, "LAST_UID");
		ids_csync_line_free(l);
		/* 2 */
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_int_equal(ids_csync_read_record(in, &item), 1);
		ids_dlist_free(item);
		assert_int_equal(ids_csync_read_record(in, &item), 1);
		ids_dlist_free(item);
		assert_int_equal(ids_csync_read_record(in, &item), IDS_ECORRUPT);
		assert_false(ids_csync_in_lost(in));
		assert_false(ids_csync_in_streaming(in));
		ids_csync_line_free(l);
		/* 3 */
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_int_equal(ids_csync_read_rest(in), IDS_ECORRUPT);
		assert_false(ids_csync_in_lost(in));
		ids_csync_line_free(l);
		/* 4 */
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_false(ids_csync_in_streaming(in));
		assert_non_null(ids_dlist_get(ids_dlist_get(ids_csync_arg(l, 1), "RECORD"), "UID") ||
		    ids_dlist_get(ids_csync_arg(l, 1), "RECORD")->head != NULL);
		ids_csync_line_free(l);
		/* 5 */
		assert_int_equal(ids_csync_read(in, &l), IDS_ECORRUPT);
		assert_false(ids_csync_in_lost(in));
		/* 6: the next read drops what was left */
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_true(ids_csync_in_streaming(in));
		ids_csync_line_free(l);
		/* 7: read, in step (the skip above consumed all of line 6) */
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_int_equal(ids_csync_read_record(in, &item), 1);
		assert_string_equal(ids_dlist_cstr(ids_dlist_get(item, "UID")), "1");
		ids_dlist_free(item);
		r = ids_csync_read_record(in, &item);
		assert_int_equal(r, 0);
		assert_false(ids_csync_in_streaming(in));
		ids_csync_line_free(l);
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_string_equal(l->word, "NOOP");
		ids_csync_line_free(l);
		assert_int_equal(ids_csync_read(in, &l), 0);
		assert_int_equal(staged_count(), 0);
		ids_csync_in_free(in);
	}
}

/* The worked example of the protocol notes: bob's INBOX. */
static void
test_crc_worked_example(void **state)
{
	struct ids_index_record rec;
	uint32_t annot;

	memset(&rec, 0, sizeof(rec));
	rec.uid = 1;
	rec.modseq = 2;
	rec.last_updated = 1796524922;
	rec.internaldate = 1796524922;
	rec.savedate = 1796524922;
	rec.createdmodseq = 2;
	{
		static const char hex[] = "3ed2638aa7ac8a59d8a73bab57df194b121756c4";
		for (int i = 0; i < 20; i++)
			sscanf(hex + 2 * i, "%2hhx", &rec.guid[i]);
	}
	assert_int_equal(ids_sync_crc_basic(&rec, NULL, 0), 2446628501u);
	annot = IDS_SYNC_CRC_ANNOT_INIT ^ ids_sync_crc_virtannot(&rec, 17);
	assert_int_equal(annot, 3051573483u);
	/* the same from the two annotation strings */
	assert_int_equal(IDS_SYNC_CRC_ANNOT_INIT ^
	    ids_sync_crc_annot(1, "/vendor/cmu/cyrus-imapd/savedate", "", "1796524922", 10) ^
	    ids_sync_crc_annot(1, "/vendor/cmu/cyrus-imapd/createdmodseq", "", "2", 1),
	    3051573483u);
	/* expunged records count for nothing */
	rec.system_flags = IDS_FLAG_EXPUNGED;
	assert_int_equal(ids_sync_crc_basic(&rec, NULL, 0), 0);
	assert_int_equal(ids_sync_crc_virtannot(&rec, 17), 0);
}

/* User flags by bit and system flags, case-blind, in any order. */
static void
test_crc_flags(void **state)
{
	char *names[3] = { "$Label1", NULL, "Junk" };
	struct ids_index_record rec;
	struct ids_dlist *kv;
	uint32_t b, a;
	const char *wire = "%(UID 3 MODSEQ 5 LAST_UPDATED 1796524881 FLAGS (\\Flagged $Label1) "
	    "INTERNALDATE 1796524881 SIZE 149 GUID 19fcc574c8a0f0484a1329d26d267ac6b6e3bf38)";
	const char *hex = "19fcc574c8a0f0484a1329d26d267ac6b6e3bf38";

	memset(&rec, 0, sizeof(rec));
	rec.uid = 3;
	rec.modseq = 5;
	rec.last_updated = rec.internaldate = 1796524881;
	for (int i = 0; i < 20; i++)
		sscanf(hex + 2 * i, "%2hhx", &rec.guid[i]);
	rec.system_flags = IDS_FLAG_FLAGGED;
	rec.user_flags[0] = 1u << 0 | 1u << 1;	/* bit 1 has no name: skipped */
	assert_int_equal(ids_dlist_parse_flags(wire, strlen(wire), IDS_DLIST_WIRE, &kv, NULL), 0);
	assert_int_equal(ids_sync_record_crcs(kv, &b, &a), 0);
	assert_int_equal(ids_sync_crc_basic(&rec, names, 3), b);
	assert_int_equal(a, 0);
	names[0] = "$LABEL1";	/* case does not count */
	assert_int_equal(ids_sync_crc_basic(&rec, names, 3), b);
	rec.user_flags[0] |= 1u << 2;
	assert_true(ids_sync_crc_basic(&rec, names, 3) != b);
	ids_dlist_free(kv);
}

/* --- hostile input ------------------------------------------------------------- */

static const char msg[] = "From: a\r\n\r\nhello\r\n";	/* 18 bytes */

/* The GUID of msg as hex. */
static void
msg_guid(char hex[41])
{
	uint8_t g[20];

	assert_int_equal(ids_guid_buf(msg, sizeof(msg) - 1, g), 0);
	ids_guid_hex(g, hex);
}

static int
read_all(const char *p, size_t len, struct ids_csync_line **l, struct ids_csync_in **inp,
    struct mem *m)
{
	*inp = mem_in(m, p, len, 0);
	return ids_csync_read(*inp, l);
}

static void
test_file_literal(void **state)
{
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct ids_dlist *f;
	struct mem m;
	char hex[41], *body;
	size_t len;

	msg_guid(hex);
	ids_buf_printf(&b, "APPLY MESSAGE (%%{default %s 18}\r\n%s)\r\nNOOP\r\n", hex, msg);
	assert_int_equal(read_all(b.s, b.len, &l, &in, &m), 1);
	f = ids_csync_arg(l, 1)->head;
	assert_int_equal(f->type, IDS_DL_FILE);
	assert_string_equal(f->file->partition, "default");
	assert_string_equal(f->file->guid, hex);
	assert_int_equal(f->file->size, 18);
	assert_int_equal(ids_read_file(stagefd, f->file->name, 100, &body, &len), 0);
	assert_int_equal(len, 18);
	assert_memory_equal(body, msg, 18);
	free(body);
	ids_csync_unlink_files(l->args);
	ids_csync_line_free(l);
	/* the stream goes on after it */
	assert_int_equal(ids_csync_read(in, &l), 1);
	assert_string_equal(l->word, "NOOP");
	ids_csync_line_free(l);
	assert_int_equal(ids_csync_read(in, &l), 0);
	ids_csync_in_free(in);
	assert_int_equal(staged_count(), 0);
	ids_buf_release(&b);
}

/* A flipped byte or a wrong GUID: the line fails, the stream goes on, nothing stays. */
static void
test_file_literal_mismatch(void **state)
{
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct mem m;
	char hex[41];

	msg_guid(hex);
	ids_buf_printf(&b, "APPLY MESSAGE (%%{default %s 18}\r\n%s %%{default %s 18}\r\n%s)\r\n"
	    "EXIT\r\n", hex, msg, hex, msg);
	b.s[b.len - 12] ^= 0x20;	/* a byte of the second copy */
	assert_int_equal(read_all(b.s, b.len, &l, &in, &m), IDS_ECRC);
	assert_null(l);
	assert_false(ids_csync_in_lost(in));
	assert_int_equal(staged_count(), 0);	/* the good first file went too */
	assert_int_equal(ids_csync_read(in, &l), 1);
	assert_string_equal(l->word, "EXIT");
	ids_csync_line_free(l);
	ids_csync_in_free(in);
	ids_buf_release(&b);
}

/*
 * The staging file cannot be made or made durable (failpoints): the
 * line fails, its bytes are still read, the next line reads, and no
 * staged file stays behind.
 */
static void
test_stage_faults(void **state)
{
	static const char *const faults[] = {
		"sync.stage_open:ENOSPC", "sync.stage_fsync:EIO",
	};
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct mem m;
	char hex[41];
	size_t i;

	msg_guid(hex);
	ids_buf_printf(&b, "APPLY MESSAGE (%%{default %s 18}\r\n%s)\r\nNOOP\r\n", hex, msg);
	for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		setenv("IDS_FAILPOINT", faults[i], 1);
		ids_failpoint_reset();
		in = mem_in(&m, b.s, b.len, 0);
		assert_true(ids_csync_read(in, &l) < 0);
		assert_false(ids_csync_in_lost(in));
		assert_int_equal(staged_count(), 0);
		assert_int_equal(ids_csync_read(in, &l), 1);
		assert_string_equal(l->word, "NOOP");
		ids_csync_line_free(l);
		ids_csync_in_free(in);
	}
	unsetenv("IDS_FAILPOINT");
	ids_failpoint_reset();
	ids_buf_release(&b);
}

/* Input that ends anywhere inside a line: refused, nothing staged, never accepted. */
static void
test_truncated_everywhere(void **state)
{
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct mem m;
	char hex[41];
	size_t cut;
	int r;

	static const char tail[] = " {5+}\r\na\0b\"c \"q\\\"\" \\Seen)\r\n";

	msg_guid(hex);
	ids_buf_printf(&b, "APPLY MESSAGE (%%{default %s 18}\r\n%s", hex, msg);
	ids_buf_add(&b, tail, sizeof(tail) - 1);
	for (cut = 1; cut < b.len; cut++) {
		in = mem_in(&m, b.s, cut, 0);
		r = ids_csync_read(in, &l);
		if (r == 1)
			fail_msg("a line cut at byte %zu was accepted", cut);
		assert_true(r < 0);
		assert_int_equal(staged_count(), 0);
		ids_csync_in_free(in);
	}
	in = mem_in(&m, b.s, b.len, 0);
	assert_int_equal(ids_csync_read(in, &l), 1);
	assert_int_equal(ids_csync_arg(l, 1)->head->next->len, 5);	/* NUL inside */
	ids_csync_unlink_files(l->args);
	ids_csync_line_free(l);
	ids_csync_in_free(in);
	ids_buf_release(&b);
}

/* Lengths over the limits are refused from the header, before any allocation. */
static void
test_limits(void **state)
{
	static const char *const big[] = {
		"APPLY MESSAGE (%{default 2b9adb8671b87a3dfc9fd6bbdfb873453c3f3546 2147483648}\r\n",
		"APPLY MESSAGE (%{default 2b9adb8671b87a3dfc9fd6bbdfb873453c3f3546 "
		    "99999999999999999999999}\r\n",
		"APPLY SIEVE %(CONTENT {2147483648+}\r\n",
		"APPLY SIEVE %(CONTENT {99999999999999999999999+}\r\n",
	};
	static const char long_line[] =
	    "GET USER aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
	struct ids_csync_limits lim = { 64, 16, 32 };
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct mem m;
	size_t i;
	int r;

	for (i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		in = mem_in(&m, big[i], strlen(big[i]), 0);
		r = ids_csync_read(in, &l);
		if (r != IDS_ETOOLONG && r != IDS_ECORRUPT)
			fail_msg("%s: %d", big[i], r);
		assert_true(ids_csync_in_lost(in));
		assert_int_equal(ids_csync_read(in, &l), IDS_ECORRUPT);	/* and stays lost */
		ids_csync_in_free(in);
	}
	in = mem_in(&m, long_line, strlen(long_line), 0);
	ids_csync_in_set_limits(in, &lim);
	assert_int_equal(ids_csync_read(in, &l), IDS_ETOOLONG);
	ids_csync_in_free(in);
	in = mem_in(&m, "X {17+}\r\n01234567890123456\r\n", 28, 0);
	ids_csync_in_set_limits(in, &lim);
	assert_int_equal(ids_csync_read(in, &l), IDS_ETOOLONG);
	ids_csync_in_free(in);
	assert_int_equal(staged_count(), 0);
}

/* Garbage gets an error per line, and the next good line still reads. */
static void
test_garbage_in_step(void **state)
{
	static const char input[] =
	    "\r\n"
	    "APPLY MAILBOX %(UNIQUEID\r\n"
	    "GET ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((\r\n"
	    "GET USER \"unterminated\r\n"
	    "NOOP \r\n"
	    "GET  USER x\r\n"
	    "APPLY RESERVE %(X )))\r\n"
	    "NOOP\r\n";
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct mem m;
	int bad = 0, r;

	in = mem_in(&m, input, sizeof(input) - 1, 0);
	while ((r = ids_csync_read(in, &l)) != 0) {
		if (r < 0) {
			assert_int_equal(r, IDS_ECORRUPT);
			assert_false(ids_csync_in_lost(in));
			bad++;
			continue;
		}
		assert_string_equal(l->word, "NOOP");
		ids_csync_line_free(l);
	}
	assert_int_equal(bad, 7);
	ids_csync_in_free(in);
}

/* What the writer sends: {n} from a server, {n+} from a client, files re-checked. */
static void
test_writer(void **state)
{
	struct ids_csync_line *l;
	struct ids_csync_out *out;
	struct ids_dlist *kv;
	static const char want[] =
	    "* X %(CONTENT {3+}\r\na\0b)\r\nNO IMAP_MAILBOX_MOVED Mailbox has moved\r\n";
	struct ids_buf b = IDS_BUF_INIT;
	char hex[41], sent[256];
	ssize_t len;
	int fds[2], fd;

	msg_guid(hex);
	fd = openat(stagefd, "m", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, msg, 18), 18);
	close(fd);
	assert_int_equal(ids_csync_line_new(IDS_CSYNC_UNTAGGED, "MESSAGE", &l), 0);
	assert_int_equal(ids_dlist_add_child(l->args, NULL,
	    ids_csync_file_node("default", hex, 18, stagefd, "m")), 0);
	assert_int_equal(ids_csync_print(l, 0, &b), 0);
	assert_int_equal(b.len, 2 + 7 + 1 + 2 + 7 + 1 + 40 + 4 + 2 + 18 + 2);
	ids_csync_line_free(l);

	kv = ids_dlist_new_kvlist();
	assert_int_equal(ids_dlist_add_string(kv, "CONTENT", "a\0b", 3), 0);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(ids_csync_out_new(fds[1], IDS_CSYNC_CLIENT, &out), 0);
	assert_int_equal(ids_csync_write_untagged(out, "X", kv), 0);
	assert_int_equal(ids_csync_write_no(out, "IMAP_MAILBOX_MOVED", "Mailbox has moved"), 0);
	assert_int_equal(ids_csync_flush(out), 0);
	ids_csync_out_free(out);
	close(fds[1]);
	len = read(fds[0], sent, sizeof(sent));
	close(fds[0]);
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(sent, want, sizeof(want) - 1);

	/* a file that changed after its GUID was taken is not sent */
	fd = openat(stagefd, "m", O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(ids_csync_line_new(IDS_CSYNC_UNTAGGED, "MESSAGE", &l), 0);
	assert_int_equal(ids_dlist_add_child(l->args, NULL,
	    ids_csync_file_node("default", hex, 18, stagefd, "m")), 0);
	ids_buf_reset(&b);
	assert_int_equal(ids_csync_print(l, 0, &b), IDS_ECRC);
	ids_csync_line_free(l);
	unlinkat(stagefd, "m", 0);
	ids_dlist_free(kv);
	ids_buf_release(&b);
}

/*
 * Held output: answers decided later go at their marks, before what was
 * written after them; nothing reaches the descriptor until the hold ends.
 */
static void
test_held_answers(void **state)
{
	static const char want[] = "OK first\r\n* MISSING (a)\r\nOK later\r\n"
	    "NO IMAP_IOERROR no room\r\nOK last\r\n";
	struct ids_csync_out *out;
	struct ids_dlist *l = ids_dlist_new_list();
	char sent[256];
	size_t m1, m2;
	ssize_t len;
	int fds[2];

	(void)state;
	assert_non_null(l);
	assert_int_equal(ids_dlist_add_atom(l, NULL, "a"), 0);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(ids_csync_out_new(fds[1], 0, &out), 0);
	ids_csync_out_hold(out, 1);
	m1 = ids_csync_out_mark(out);
	assert_int_equal(ids_csync_write_untagged(out, "MISSING", l), 0);
	assert_int_equal(ids_csync_write_ok(out, "later"), 0);
	m2 = ids_csync_out_mark(out);
	assert_int_equal(ids_csync_write_ok(out, "last"), 0);
	assert_int_equal(ids_csync_flush(out), 0);
	assert_true(read(fds[0], sent, sizeof(sent)) < 0);	/* held: nothing sent */
	/* the latest mark first: the earlier ones stay where they are */
	assert_int_equal(ids_csync_out_insert_status(out, m2, "IMAP_IOERROR", "no room"), 0);
	assert_int_equal(ids_csync_out_insert_status(out, m1, NULL, "first"), 0);
	assert_int_equal(ids_csync_out_insert_status(out, 9999, NULL, "x"), IDS_EINVAL);
	ids_csync_out_hold(out, 0);
	assert_int_equal(ids_csync_flush(out), 0);
	len = read(fds[0], sent, sizeof(sent));
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(sent, want, sizeof(want) - 1);
	ids_csync_out_free(out);
	ids_dlist_free(l);
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcripts),
		cmocka_unit_test(test_stream_records),
		cmocka_unit_test(test_crc_worked_example),
		cmocka_unit_test(test_crc_flags),
		cmocka_unit_test(test_file_literal),
		cmocka_unit_test(test_file_literal_mismatch),
		cmocka_unit_test(test_stage_faults),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_garbage_in_step),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_held_answers),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
