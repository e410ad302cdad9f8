/*
 * test-index.c - cyrus.index versions 17, 19 and 20 built byte by byte
 * here (from formats.md section 8, independently of index.c's tables),
 * the checks on broken files, new indexes and appends, and message
 * GUIDs.
 */
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
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "index.h"
#include "unit.h"

/* --- hand-built images --------------------------------------------------- */

static void
be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void
be64(unsigned char *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

static void
seal(unsigned char *p, size_t crcoff)
{
	be32(p + crcoff, (uint32_t)crc32(0, p, (uInt)crcoff));
}

struct image {
	unsigned char *buf;
	size_t len;
	uint32_t minor, hlen, start, rsize, nrec;
};

/* Header fields with distinct values, at each version's offsets. */
static void
fill_header(struct image *im)
{
	unsigned char *h = im->buf;

	be32(h + 0, 7);
	be32(h + 8, im->minor);
	be32(h + 12, im->start);
	be32(h + 16, im->rsize);
	be32(h + 20, im->nrec);
	be64(h + 32, 12345678901ull);	/* quota_mailbox_used */
	be32(h + 48, 1);		/* deleted */
	be32(h + 52, 2);		/* answered */
	be32(h + 56, 3);		/* flagged */
	be32(h + 96, 0xdeadbeef);	/* header_file_crc */
	be32(h + 124, 19);		/* unseen */
	be64(h + 128, 20);		/* createdmodseq */
	if (im->minor == 17) {
		be32(h + 24, 1700000001);
		be32(h + 28, im->nrec * 10);
		be32(h + 44, 1700000000);
		be64(h + 68, 0x1122334455667788ull);
		be32(h + 84, im->nrec - 1);
		be32(h + 136, 21);
	} else if (im->minor == 19) {
		be32(h + 24, 1700000001);
		be32(h + 28, im->nrec * 10);
		be32(h + 44, 1700000000);
		be32(h + 60, im->nrec - 1);
		be64(h + 72, 0x1122334455667788ull);
		be64(h + 136, 22);	/* quota_deleted_used */
		be64(h + 144, 23);	/* quota_expunged_used */
		be32(h + 152, 21);
	} else {
		be64(h + 24, 1700000001000000000ull);
		be32(h + 60, im->nrec - 1);
		be64(h + 72, 0x1122334455667788ull);
		be32(h + 88, im->nrec * 10);
		be32(h + 92, 1700000000);
		be64(h + 160, 21);
		be32(h + 184, 24);	/* recentuid */
	}
	seal(h, im->hlen - 4);
}

/* Added to v20's 64-bit times, so that a 32-bit read shows. */
#define WIDE (1ull << 40)

/* Record i: uid (i+1)*10; the second one expunged and unlinked. */
static void
fill_record(struct image *im, uint32_t i)
{
	unsigned char *r = im->buf + im->start + (size_t)i * im->rsize;
	uint32_t flags = i == 1 ? (1u << 31 | 1u << 30 | 1u << 4) : 1u << 1;
	int j;

	be32(r + 0, (i + 1) * 10);
	for (j = 0; j < 20; j++)
		r[60 + j] = (unsigned char)(0xa0 + i + j);
	be64(r + 80, 100 + i);		/* modseq */
	be64(r + 88, 0xc1d0000000000000ull + i);	/* cid */
	be64(r + 96, 50 + i);		/* createdmodseq */
	if (im->minor < 20) {
		be32(r + 4, 1600000000 + i);
		be32(r + 8, 1500000000 + i);
		be32(r + 12, 1000 + i);
		be32(r + 16, 200 + i);
		be32(r + 20, 1500000100 + i);
		be32(r + 24, 4096 * i);
		be32(r + 28, 1700000100 + i);
		be32(r + 52, 1700000200 + i);
		be32(r + 32, flags);
		be32(r + 36 + 12, 0x80000001u);	/* user flags 96 and 127 */
		be32(r + 56, 3);
		be32(r + 104, 0xcace);
		seal(r, 108);
	} else {
		be32(r + 4, 4096 * i);
		be64(r + 8, (1600000000ull + i) * 1000000000ull + 123456789);
		be64(r + 16, 1500000000ull + i + WIDE);
		be64(r + 24, 5000000000ull + i);
		be32(r + 32, 200 + i);
		be64(r + 104, 1500000100ull + i + WIDE);
		be64(r + 112, 1700000100ull + i + WIDE);
		be64(r + 120, 1700000200ull + i + WIDE);
		be32(r + 36, flags);
		be32(r + 40 + 12, 0x80000001u);
		be32(r + 56, 3);
		be64(r + 128, 77);	/* basecid */
		be32(r + 136, 0xcace);
		seal(r, 140);
	}
}

static struct image
make_image(uint32_t minor, uint32_t nrec, uint32_t gap, uint32_t pad)
{
	struct image im;
	uint32_t i;

	im.minor = minor;
	im.hlen = minor == 20 ? 192 : 160;
	im.start = im.hlen + gap;
	im.rsize = (minor == 20 ? 144 : 112) + pad;
	im.nrec = nrec;
	im.len = im.start + (size_t)nrec * im.rsize;
	im.buf = calloc(1, im.len);
	fill_header(&im);
	for (i = 0; i < nrec; i++)
		fill_record(&im, i);
	return im;
}

/* The first n records, as fill_record() made them. */
static void
check_records(struct ids_index *idx, uint32_t minor, uint32_t n)
{
	struct ids_index_record rec;
	uint32_t i;

	for (i = 0; i < n; i++) {
		assert_int_equal(ids_index_record(idx, i, &rec), 0);
		assert_int_equal(rec.uid, (i + 1) * 10);
		assert_true(rec.internaldate == 1600000000 + (int64_t)i);
		assert_int_equal(rec.internaldate_nsec, minor == 20 ? 123456789 : 0);
		assert_true(rec.size == (minor == 20 ? 5000000000ull : 1000) + i);
		assert_true(rec.sentdate == 1500000000 + i + (minor == 20 ? WIDE : 0));
		assert_true(rec.gmtime == 1500000100 + i + (minor == 20 ? WIDE : 0));
		assert_true(rec.last_updated == 1700000100 + i + (minor == 20 ? WIDE : 0));
		assert_true(rec.savedate == 1700000200 + i + (minor == 20 ? WIDE : 0));
		assert_int_equal(rec.header_size, 200 + i);
		assert_int_equal(rec.cache_offset, 4096 * i);
		assert_int_equal(rec.user_flags[3], 0x80000001u);
		assert_int_equal(rec.user_flags[0], 0);
		assert_int_equal(rec.cache_version, 3);
		assert_int_equal(rec.cache_crc, 0xcace);
		assert_int_equal(rec.guid[0], 0xa0 + i);
		assert_int_equal(rec.guid[19], 0xa0 + i + 19);
		assert_true(rec.modseq == 100 + i);
		assert_true(rec.cid == 0xc1d0000000000000ull + i);
		assert_true(rec.createdmodseq == 50 + i);
		assert_true(rec.basecid == (minor == 20 ? 77 : 0));
		if (i == 1) {
			assert_true(rec.system_flags & IDS_FLAG_EXPUNGED);
			assert_true(rec.system_flags & IDS_FLAG_UNLINKED);
			assert_false(rec.system_flags & IDS_FLAG_ARCHIVED);
		} else {
			assert_int_equal(rec.system_flags, IDS_FLAG_FLAGGED);
		}
	}
}

static void
read_version(uint32_t minor, uint32_t gap, uint32_t pad)
{
	struct image im = make_image(minor, 3, gap, pad);
	const struct ids_index_header *h;
	struct ids_index_record rec;
	struct ids_index *idx;
	int r = ids_index_parse(im.buf, im.len, &idx);

	if (r < 0)
		fail_msg("v%u: %s", minor, ids_errmsg(r));
	h = ids_index_header(idx);
	assert_int_equal(h->generation_no, 7);
	assert_int_equal(h->minor_version, minor);
	assert_int_equal(h->start_offset, im.start);
	assert_int_equal(h->record_size, im.rsize);
	assert_int_equal(h->num_records, 3);
	assert_int_equal(h->last_uid, 30);
	assert_int_equal(h->uidvalidity, 1700000000);
	assert_int_equal(h->exists, 2);
	assert_true(h->quota_mailbox_used == 12345678901ull);
	assert_true(h->highestmodseq == 0x1122334455667788ull);
	assert_true(h->createdmodseq == 20);
	assert_true(h->changes_epoch == 21);
	assert_int_equal(h->deleted, 1);
	assert_int_equal(h->answered, 2);
	assert_int_equal(h->flagged, 3);
	assert_int_equal(h->unseen, 19);
	assert_int_equal(h->header_file_crc, 0xdeadbeef);
	assert_true(h->quota_deleted_used == (minor == 19 ? 22 : 0));
	assert_int_equal(h->recentuid, minor == 20 ? 24 : 0);
	assert_true(h->last_appenddate == (minor == 20 ? 1700000001000000000ull : 1700000001));
	check_records(idx, minor, 3);
	assert_int_equal(ids_index_record(idx, 3, &rec), IDS_EINVAL);
	ids_index_free(idx);
	free(im.buf);
}

static void
test_read_versions(void **state)
{
	(void)state;
	read_version(17, 0, 0);
	read_version(19, 0, 0);
	read_version(20, 0, 0);
	/* The file's own start_offset and record_size are what count. */
	read_version(17, 8, 8);
	read_version(20, 64, 16);
}

/* --- broken files ------------------------------------------------------- */

static void
assert_parse_fails(const unsigned char *buf, size_t len, int code, const char *detail)
{
	struct ids_index *idx = NULL;
	int r = ids_index_parse(buf, len, &idx);

	assert_int_equal(r, code);
	assert_null(idx);
	if (strstr(ids_errmsg(r), detail) == NULL)
		fail_msg("detail '%s' lacks '%s'", ids_errmsg(r), detail);
}

/* Changes a header field and re-seals the header CRC. */
static void
poke32(struct image *im, size_t off, uint32_t v)
{
	be32(im->buf + off, v);
	seal(im->buf, im->hlen - 4);
}

static void
test_broken(void **state)
{
	struct image im = make_image(17, 3, 0, 0);
	struct ids_index *idx;
	struct ids_index_record rec;
	unsigned char save;

	(void)state;
	assert_parse_fails(im.buf, 11, IDS_ETRUNC, "11 bytes, too short for a header");
	assert_parse_fails(im.buf, 159, IDS_ETRUNC, "shorter than the 160-byte header");
	assert_parse_fails(im.buf, im.len - 1, IDS_ETRUNC, "num_records 3 (byte 20)");
	/* A flipped byte in the header. */
	save = im.buf[30];
	im.buf[30] ^= 1;
	assert_parse_fails(im.buf, im.len, IDS_ECRC, "header CRC");
	im.buf[30] = save;
	/* A flipped byte in record 1: the others still read. */
	im.buf[160 + 112 + 13] ^= 0x10;
	assert_int_equal(ids_index_parse(im.buf, im.len, &idx), 0);
	assert_int_equal(ids_index_record(idx, 0, &rec), 0);
	assert_int_equal(ids_index_record(idx, 1, &rec), IDS_ECRC);
	assert_non_null(strstr(ids_errmsg(IDS_ECRC), "record 1 (uid 20) at byte 272"));
	assert_int_equal(ids_index_record(idx, 2, &rec), 0);
	ids_index_free(idx);
	im.buf[160 + 112 + 13] ^= 0x10;
	poke32(&im, 8, 18);
	assert_parse_fails(im.buf, im.len, IDS_EFORMAT, "minor version 18 (byte 8)");
	poke32(&im, 8, 17);
	poke32(&im, 16, 0);
	assert_parse_fails(im.buf, im.len, IDS_ECORRUPT, "record_size 0 (byte 16)");
	poke32(&im, 16, 111);
	assert_parse_fails(im.buf, im.len, IDS_ECORRUPT, "record_size 111");
	poke32(&im, 16, 112);
	poke32(&im, 12, 100);
	assert_parse_fails(im.buf, im.len, IDS_ECORRUPT, "start_offset 100 (byte 12) inside");
	poke32(&im, 12, (uint32_t)im.len + 1);
	assert_parse_fails(im.buf, im.len, IDS_ETRUNC, "beyond the end of the file");
	poke32(&im, 12, 160);
	poke32(&im, 20, UINT32_MAX);
	assert_parse_fails(im.buf, im.len, IDS_ETRUNC, "num_records 4294967295");
	poke32(&im, 16, UINT32_MAX);
	assert_parse_fails(im.buf, im.len, IDS_ETRUNC, "num_records 4294967295");
	/* No records and an absurd record size is still a readable index. */
	poke32(&im, 20, 0);
	assert_int_equal(ids_index_parse(im.buf, im.len, &idx), 0);
	ids_index_free(idx);
	free(im.buf);
}

/*
 * Every truncation of a valid file fails with IDS_ETRUNC, and random
 * header corruption (CRC re-sealed, so the geometry checks see it)
 * never leads to a read outside the file: ids_index_parse copies into
 * an exactly sized buffer, and ASan watches it.
 */
static void
test_truncations_and_fuzz(void **state)
{
	struct image im = make_image(20, 3, 0, 0);
	struct ids_index_record rec;
	struct ids_index *idx;
	unsigned seed = 4242;
	size_t len, k;
	uint32_t i;
	int r;

	(void)state;
	for (len = 0; len < im.len; len++)
		assert_parse_fails(im.buf, len, IDS_ETRUNC, "cyrus.index");
	for (k = 0; k < 5000; k++) {
		struct image m = make_image(k % 2 ? 17 : 20, 3, 0, 0);

		seed = seed * 1103515245 + 12345;
		m.buf[12 + (seed >> 8) % 12] ^= (unsigned char)(1u << ((seed >> 20) % 8));
		seal(m.buf, m.hlen - 4);
		r = ids_index_parse(m.buf, m.len, &idx);
		if (r == 0) {
			for (i = 0; i < ids_index_header(idx)->num_records; i++)
				ids_index_record(idx, i, &rec);
			ids_index_free(idx);
		} else {
			assert_true(r == IDS_ETRUNC || r == IDS_ECORRUPT || r == IDS_EFORMAT);
		}
		free(m.buf);
	}
	free(im.buf);
}

/* --- writing ------------------------------------------------------------ */

static int
scratch(char *dir)
{
	int dfd;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(ids_opendir_abs(dir, &dfd), 0);
	return dfd;
}

static void
read_all(int dfd, unsigned char **bufp, size_t *lenp)
{
	assert_int_equal(ids_read_file(dfd, IDS_INDEX_FILE, 1 << 24, (char **)bufp, lenp), 0);
}

static void
test_write_new(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_index_header init;
	unsigned char want[160], *got;
	size_t len;
	int dfd = scratch(dir);

	(void)state;
	memset(&init, 0, sizeof(init));
	assert_int_equal(ids_index_write_new(dfd, &init), IDS_EINVAL);
	init.generation_no = 1;
	init.uidvalidity = 1795000050;
	init.createdmodseq = 4;
	init.header_file_crc = 0x01020304;
	init.num_records = 99;	/* ignored: a new index is empty */
	assert_int_equal(ids_index_write_new(dfd, &init), 0);
	memset(want, 0, sizeof(want));
	be32(want + 0, 1);
	be32(want + 8, 17);
	be32(want + 12, 160);
	be32(want + 16, 112);
	be32(want + 44, 1795000050);
	be64(want + 68, 1);
	be32(want + 96, 0x01020304);
	be64(want + 128, 4);
	seal(want, 156);
	read_all(dfd, &got, &len);
	assert_int_equal(len, 160);
	assert_memory_equal(got, want, 160);
	free(got);
	close(dfd);
	unit_rmtree(dir);
}

static void
make_rec(struct ids_index_record *rec, uint32_t uid, uint32_t flags)
{
	int j;

	memset(rec, 0, sizeof(*rec));
	rec->uid = uid;
	rec->internaldate = 1795000000 + uid;
	rec->size = 1000 + uid;
	rec->header_size = 300;
	rec->system_flags = flags;
	rec->user_flags[0] = 5;
	for (j = 0; j < IDS_GUID_LEN; j++)
		rec->guid[j] = (uint8_t)(uid + j);
}

/*
 * 2,000 records (four blocks of the reader) written a piece at a time
 * with ids_durable_*, then read back a block at a time: the same
 * records; a file cut short is IDS_ETRUNC at the first missing record;
 * an abandoned write leaves no cyrus.index.NEW.
 */
static void
test_reader_and_durable(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_index_header h;
	struct ids_index_record rec, back;
	struct ids_index_reader *rd;
	struct ids_durable d;
	unsigned char hdr[IDS_INDEX_V17_HEADER], one[IDS_INDEX_V17_RECORD];
	struct stat st;
	uint32_t i;
	int dfd = scratch(dir), fd, r;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.minor_version = 17;
	h.start_offset = IDS_INDEX_V17_HEADER;
	h.record_size = IDS_INDEX_V17_RECORD;
	h.uidvalidity = 1795000050;
	h.num_records = 2000;
	assert_int_equal(ids_durable_begin(dfd, IDS_INDEX_FILE, 0600, &d), 0);
	for (i = 0; i < 2000; i++) {
		make_rec(&rec, i + 1, i % 2 ? IDS_FLAG_SEEN : 0);
		assert_int_equal(ids_index_format_record(&rec, 17, one, sizeof(one)), sizeof(one));
		assert_int_equal(ids_durable_write(&d, one, sizeof(one),
		    IDS_INDEX_V17_HEADER + (uint64_t)i * sizeof(one)), 0);
	}
	assert_int_equal(ids_index_format_header(&h, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(ids_durable_write(&d, hdr, sizeof(hdr), 0), 0);
	assert_int_equal(d.off, IDS_INDEX_V17_HEADER + 2000 * IDS_INDEX_V17_RECORD);
	assert_int_equal(ids_durable_commit(&d), 0);
	assert_int_equal(fstatat(dfd, IDS_INDEX_FILE ".NEW", &st, 0), -1);
	assert_int_equal(ids_index_read_header(dfd, &h), 0);
	assert_int_equal(h.num_records, 2000);
	fd = openat(dfd, IDS_INDEX_FILE, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(ids_index_reader_new(fd, &h, &rd), 0);
	for (i = 0; (r = ids_index_reader_next(rd, &back)) == 1; i++) {
		make_rec(&rec, i + 1, i % 2 ? IDS_FLAG_SEEN : 0);
		assert_memory_equal(&back, &rec, sizeof(rec));
	}
	assert_int_equal(r, 0);
	assert_int_equal(i, 2000);
	ids_index_reader_free(rd);
	/* one record more than the file holds */
	h.num_records = 2001;
	assert_int_equal(ids_index_reader_new(fd, &h, &rd), 0);
	while ((r = ids_index_reader_next(rd, &back)) == 1)
		;
	assert_int_equal(r, IDS_ETRUNC);
	ids_index_reader_free(rd);
	close(fd);
	/* abandoned: cyrus.index is untouched, no .NEW */
	assert_int_equal(ids_durable_begin(dfd, IDS_INDEX_FILE, 0600, &d), 0);
	assert_int_equal(ids_durable_write(&d, hdr, 10, 0), 0);
	ids_durable_abort(&d);
	assert_int_equal(fstatat(dfd, IDS_INDEX_FILE ".NEW", &st, 0), -1);
	assert_int_equal(ids_index_read_header(dfd, &h), 0);
	assert_int_equal(h.num_records, 2000);
	close(dfd);
	unit_rmtree(dir);
}

/*
 * ids_index_find_uid: 3,000 records with every other uid; each found
 * by the binary search, a uid between two or beyond the last not found;
 * a record that fails its CRC and two records out of order (the
 * search's first probe among them) fall back to a scan, which still
 * finds every intact record and never the damaged one.
 */
static void
test_find_uid(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_index_header init, h;
	struct ids_index_record *recs, back;
	unsigned char a[IDS_INDEX_MAX_RECORD], b[IDS_INDEX_MAX_RECORD];
	uint32_t i, n = 3000;
	off_t off;
	int dfd = scratch(dir), fd;

	(void)state;
	memset(&init, 0, sizeof(init));
	init.uidvalidity = 1795000050;
	assert_int_equal(ids_index_write_new(dfd, &init), 0);
	recs = calloc(n, sizeof(*recs));
	assert_non_null(recs);
	for (i = 0; i < n; i++)
		make_rec(&recs[i], 2 * (i + 1), 0);
	assert_int_equal(ids_index_append(dfd, recs, n), 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(ids_index_find_uid(dfd, recs[i].uid, &back), 0);
		assert_int_equal(back.uid, recs[i].uid);
		assert_memory_equal(back.guid, recs[i].guid, IDS_GUID_LEN);
		assert_int_equal(ids_index_find_uid(dfd, recs[i].uid + 1, &back), IDS_ENOTFOUND);
	}
	assert_int_equal(ids_index_find_uid(dfd, 1, &back), IDS_ENOTFOUND);
	assert_int_equal(ids_index_find_uid(dfd, UINT32_MAX, &back), IDS_ENOTFOUND);
	/* records 1499 and 1500 swapped (each keeps its CRC): out of order */
	assert_int_equal(ids_index_read_header(dfd, &h), 0);
	fd = openat(dfd, IDS_INDEX_FILE, O_RDWR);
	assert_true(fd >= 0);
	off = (off_t)h.start_offset + (off_t)1499 * h.record_size;
	assert_int_equal(pread(fd, a, h.record_size, off), (ssize_t)h.record_size);
	assert_int_equal(pread(fd, b, h.record_size, off + h.record_size), (ssize_t)h.record_size);
	assert_int_equal(pwrite(fd, b, h.record_size, off), (ssize_t)h.record_size);
	assert_int_equal(pwrite(fd, a, h.record_size, off + h.record_size), (ssize_t)h.record_size);
	for (i = 0; i < n; i++)
		assert_int_equal(ids_index_find_uid(dfd, recs[i].uid, &back), 0);
	/* the record the search reads first damaged: found by the scan, the others too */
	off = (off_t)h.start_offset + (off_t)(n / 2) * h.record_size + 4;
	assert_int_equal(pwrite(fd, "\xff", 1, off), 1);
	close(fd);
	for (i = 0; i < n; i++) {
		int want = i == 1499 ? IDS_ENOTFOUND : 0;	/* record 1500 held uid 3000 */

		assert_int_equal(ids_index_find_uid(dfd, recs[i].uid, &back), want);
	}
	free(recs);
	close(dfd);
	unit_rmtree(dir);
}

static void
test_append(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_index_header init;
	struct ids_index_record recs[3], back;
	const struct ids_index_header *h;
	struct ids_index *idx;
	unsigned char want[112], *got;
	size_t len;
	int dfd = scratch(dir);

	(void)state;
	memset(&init, 0, sizeof(init));
	init.uidvalidity = 1795000050;
	init.highestmodseq = 10;
	assert_int_equal(ids_index_write_new(dfd, &init), 0);
	make_rec(&recs[0], 1, IDS_FLAG_SEEN | IDS_FLAG_ANSWERED);
	make_rec(&recs[1], 2, IDS_FLAG_DELETED);
	make_rec(&recs[2], 5, IDS_FLAG_EXPUNGED);
	recs[2].modseq = 40;
	assert_int_equal(ids_index_append(dfd, recs, 2), 0);
	assert_int_equal(ids_index_append(dfd, &recs[2], 1), 0);
	/* uids must rise; a refused append leaves the file alone. */
	assert_int_equal(ids_index_append(dfd, &recs[1], 1), IDS_EINVAL);
	assert_non_null(strstr(ids_errmsg(IDS_EINVAL), "uid 2 not above last_uid 5"));
	assert_int_equal(ids_index_open(dfd, &idx), 0);
	h = ids_index_header(idx);
	assert_int_equal(h->num_records, 3);
	assert_int_equal(h->last_uid, 5);
	assert_int_equal(h->exists, 2);
	assert_true(h->quota_mailbox_used == 1001 + 1002);
	assert_true(h->highestmodseq == 40);
	assert_int_equal(h->answered, 1);
	assert_int_equal(h->deleted, 1);
	assert_int_equal(h->flagged, 0);
	assert_int_equal(h->unseen, 1);
	assert_int_equal(h->uidvalidity, 1795000050);
	assert_int_equal(ids_index_record(idx, 0, &back), 0);
	assert_true(back.modseq == 11 && back.createdmodseq == 11);
	assert_int_equal(ids_index_record(idx, 1, &back), 0);
	assert_true(back.modseq == 12);
	assert_int_equal(ids_index_record(idx, 2, &back), 0);
	assert_int_equal(back.uid, 5);
	assert_true(back.modseq == 40);
	assert_memory_equal(back.guid, recs[2].guid, IDS_GUID_LEN);
	assert_int_equal(back.system_flags, IDS_FLAG_EXPUNGED);
	ids_index_free(idx);
	/* The first record, byte for byte. */
	memset(want, 0, sizeof(want));
	be32(want + 0, 1);
	be32(want + 4, 1795000001);
	be32(want + 12, 1001);
	be32(want + 16, 300);
	be32(want + 32, IDS_FLAG_SEEN | IDS_FLAG_ANSWERED);
	be32(want + 36, 5);
	memcpy(want + 60, recs[0].guid, IDS_GUID_LEN);
	be64(want + 80, 11);
	be64(want + 96, 11);
	seal(want, 108);
	read_all(dfd, &got, &len);
	assert_int_equal(len, 160 + 3 * 112);
	assert_memory_equal(got + 160, want, 112);
	free(got);
	close(dfd);
	unit_rmtree(dir);
}

/* Appending keeps the file's version and geometry. */
static void
append_to(uint32_t minor, uint32_t gap, uint32_t pad)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct image im = make_image(minor, 3, gap, pad);
	struct ids_index_record rec, back;
	struct ids_index *idx;
	int dfd = scratch(dir);

	assert_int_equal(ids_write_durable(dfd, IDS_INDEX_FILE, im.buf, im.len, 0600), 0);
	make_rec(&rec, 31, 0);
	rec.internaldate_nsec = minor == 20 ? 999999999 : 0;
	rec.size = minor == 20 ? 6000000000ull : 77;
	assert_int_equal(ids_index_append(dfd, &rec, 1), 0);
	assert_int_equal(ids_index_open(dfd, &idx), 0);
	assert_int_equal(ids_index_header(idx)->minor_version, minor);
	assert_int_equal(ids_index_header(idx)->start_offset, im.start);
	assert_int_equal(ids_index_header(idx)->record_size, im.rsize);
	assert_int_equal(ids_index_header(idx)->num_records, 4);
	assert_int_equal(ids_index_header(idx)->exists, 3);
	assert_int_equal(ids_index_header(idx)->unseen, 20);
	check_records(idx, minor, 3);
	assert_int_equal(ids_index_record(idx, 3, &back), 0);
	assert_int_equal(back.uid, 31);
	assert_true(back.internaldate == rec.internaldate);
	assert_int_equal(back.internaldate_nsec, rec.internaldate_nsec);
	assert_true(back.size == rec.size);
	ids_index_free(idx);
	/* A version 17 record cannot hold a size over 32 bits. */
	if (minor != 20) {
		make_rec(&rec, 40, 0);
		rec.size = 5000000000ull;
		assert_int_equal(ids_index_append(dfd, &rec, 1), IDS_EINVAL);
	}
	free(im.buf);
	close(dfd);
	unit_rmtree(dir);
}

static void
test_append_versions(void **state)
{
	(void)state;
	append_to(17, 8, 8);
	append_to(19, 0, 0);
	append_to(20, 0, 0);
}

static void
test_set_header_crc_and_failpoint(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	struct ids_index_header init;
	struct ids_index_record rec;
	struct ids_index *idx;
	int dfd = scratch(dir), status;
	pid_t pid;

	(void)state;
	memset(&init, 0, sizeof(init));
	init.uidvalidity = 1;
	assert_int_equal(ids_index_write_new(dfd, &init), 0);
	assert_int_equal(ids_index_set_header_crc(dfd, 0xfeedface), 0);
	assert_int_equal(ids_index_open(dfd, &idx), 0);
	assert_int_equal(ids_index_header(idx)->header_file_crc, 0xfeedface);
	ids_index_free(idx);
	make_rec(&rec, 1, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("IDS_FAILPOINT", "index.append:EIO", 1);
		ids_failpoint_reset();
		_exit(ids_index_append(dfd, &rec, 1) == -EIO ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(ids_index_open(dfd, &idx), 0);
	assert_int_equal(ids_index_header(idx)->num_records, 0);
	ids_index_free(idx);
	assert_int_equal(unlinkat(dfd, IDS_INDEX_FILE, 0), 0);
	assert_int_equal(ids_index_append(dfd, &rec, 1), -ENOENT);
	close(dfd);
	unit_rmtree(dir);
}

/* --- GUIDs ---------------------------------------------------------------- */

static void
assert_hex(const uint8_t g[IDS_GUID_LEN], const char *want)
{
	char hex[IDS_GUID_HEXLEN + 1];

	ids_guid_hex(g, hex);
	assert_string_equal(hex, want);
}

static void
test_guid(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX";
	uint8_t g[IDS_GUID_LEN], zero[IDS_GUID_LEN] = { 0 };
	size_t n = 1000000;
	char *million = malloc(n);
	int dfd = scratch(dir), fd;

	(void)state;
	/* FIPS 180-1 test vectors. */
	assert_int_equal(ids_guid_buf("abc", 3, g), 0);
	assert_hex(g, "a9993e364706816aba3e25717850c26c9cd0d89d");
	assert_int_equal(ids_guid_buf("", 0, g), 0);
	assert_hex(g, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	assert_false(ids_guid_is_null(g));
	assert_true(ids_guid_is_null(zero));
	/* A file larger than the read block, through fd and by name. */
	memset(million, 'a', n);
	assert_int_equal(ids_write_durable(dfd, "1.", million, n, 0600), 0);
	assert_int_equal(ids_guid_file(dfd, "1.", g), 0);
	assert_hex(g, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	fd = openat(dfd, "1.", O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(ids_guid_fd(fd, g), 0);
	assert_hex(g, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	close(fd);
	assert_int_equal(symlinkat("1.", dfd, "2."), 0);
	assert_int_equal(ids_guid_file(dfd, "2.", g), IDS_EUNSAFE);
	assert_int_equal(ids_guid_file(dfd, "3.", g), -ENOENT);
	free(million);
	close(dfd);
	unit_rmtree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_versions),
		cmocka_unit_test(test_broken),
		cmocka_unit_test(test_truncations_and_fuzz),
		cmocka_unit_test(test_write_new),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_find_uid),
		cmocka_unit_test(test_append_versions),
		cmocka_unit_test(test_reader_and_durable),
		cmocka_unit_test(test_set_header_crc_and_failpoint),
		cmocka_unit_test(test_guid),
	};

	return unit_run(tests);
}
