/*
 * index.c - reading and writing cyrus.index (see index.h).
 *
 * Each supported version is described by a table of (disk offset,
 * disk width, struct member) for its header and its records; one
 * decoder and one encoder walk the tables.  All multi-byte values are
 * assembled byte by byte, so no access is ever unaligned, and every
 * offset is checked against the file's length before it is touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "index.h"

struct field {
	uint16_t disk;		/* byte offset in the header or record */
	uint8_t width;		/* 4 or 8 bytes on disk */
	uint8_t memw;		/* 4 or 8 bytes in the struct */
	uint16_t mem;		/* offsetof() in the struct */
};

#define HF(off, w, f) { off, w, sizeof(((struct ids_index_header *)0)->f), \
	offsetof(struct ids_index_header, f) }
#define RF(off, w, f) { off, w, sizeof(((struct ids_index_record *)0)->f), \
	offsetof(struct ids_index_record, f) }

/* Fields at the same place in every version. */
#define HF_COMMON \
	HF(0, 4, generation_no), HF(4, 4, format), HF(8, 4, minor_version), \
	HF(12, 4, start_offset), HF(16, 4, record_size), HF(20, 4, num_records), \
	HF(32, 8, quota_mailbox_used), HF(48, 4, deleted), HF(52, 4, answered), \
	HF(56, 4, flagged)

static const struct field v17_header[] = {
	HF_COMMON,
	HF(24, 4, last_appenddate), HF(28, 4, last_uid), HF(40, 4, pop3_last_login),
	HF(44, 4, uidvalidity), HF(60, 4, options), HF(64, 4, leaked_cache),
	HF(68, 8, highestmodseq), HF(76, 8, deletedmodseq), HF(84, 4, exists),
	HF(88, 4, first_expunged), HF(92, 4, last_repack_time),
	HF(96, 4, header_file_crc), HF(100, 4, synccrc_basic), HF(104, 4, recentuid),
	HF(108, 4, recenttime), HF(112, 4, pop3_show_after),
	HF(116, 4, quota_annot_used), HF(120, 4, synccrc_annot), HF(124, 4, unseen),
	HF(128, 8, createdmodseq), HF(136, 4, changes_epoch),
};

static const struct field v19_header[] = {
	HF_COMMON,
	HF(24, 4, last_appenddate), HF(28, 4, last_uid), HF(40, 4, pop3_last_login),
	HF(44, 4, uidvalidity), HF(60, 4, exists), HF(64, 4, options),
	HF(68, 4, leaked_cache), HF(72, 8, highestmodseq), HF(80, 8, deletedmodseq),
	HF(88, 4, first_expunged), HF(92, 4, last_repack_time),
	HF(96, 4, header_file_crc), HF(100, 4, synccrc_basic), HF(104, 4, recentuid),
	HF(108, 4, recenttime), HF(112, 4, pop3_show_after),
	HF(116, 4, quota_annot_used), HF(120, 4, synccrc_annot), HF(124, 4, unseen),
	HF(128, 8, createdmodseq), HF(136, 8, quota_deleted_used),
	HF(144, 8, quota_expunged_used), HF(152, 4, changes_epoch),
};

static const struct field v20_header[] = {
	HF_COMMON,
	HF(24, 8, last_appenddate), HF(40, 8, pop3_last_login), HF(60, 4, exists),
	HF(64, 4, options), HF(68, 4, leaked_cache), HF(72, 8, highestmodseq),
	HF(80, 8, deletedmodseq), HF(88, 4, last_uid), HF(92, 4, uidvalidity),
	HF(96, 4, header_file_crc), HF(100, 4, synccrc_basic), HF(104, 8, recenttime),
	HF(112, 8, pop3_show_after), HF(120, 4, synccrc_annot), HF(124, 4, unseen),
	HF(128, 8, createdmodseq), HF(136, 8, quota_deleted_used),
	HF(144, 8, quota_expunged_used), HF(152, 8, quota_annot_used),
	HF(160, 8, changes_epoch), HF(168, 8, first_expunged),
	HF(176, 8, last_repack_time), HF(184, 4, recentuid),
};

/* Records of versions 17 and 19 (the same layout). */
static const struct field v17_record[] = {
	RF(0, 4, uid), RF(4, 4, internaldate), RF(8, 4, sentdate), RF(12, 4, size),
	RF(16, 4, header_size), RF(20, 4, gmtime), RF(24, 4, cache_offset),
	RF(28, 4, last_updated), RF(32, 4, system_flags), RF(36, 4, user_flags[0]),
	RF(40, 4, user_flags[1]), RF(44, 4, user_flags[2]), RF(48, 4, user_flags[3]),
	RF(52, 4, savedate), RF(56, 4, cache_version), RF(80, 8, modseq),
	RF(88, 8, cid), RF(96, 8, createdmodseq), RF(104, 4, cache_crc),
};

/* Version 20: internaldate holds nanoseconds here (split after decoding). */
static const struct field v20_record[] = {
	RF(0, 4, uid), RF(4, 4, cache_offset), RF(8, 8, internaldate),
	RF(16, 8, sentdate), RF(24, 8, size), RF(32, 4, header_size),
	RF(36, 4, system_flags), RF(40, 4, user_flags[0]), RF(44, 4, user_flags[1]),
	RF(48, 4, user_flags[2]), RF(52, 4, user_flags[3]), RF(56, 4, cache_version),
	RF(80, 8, modseq), RF(88, 8, cid), RF(96, 8, createdmodseq),
	RF(104, 8, gmtime), RF(112, 8, last_updated), RF(120, 8, savedate),
	RF(128, 8, basecid), RF(136, 4, cache_crc),
};

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))
#define GUID_OFFSET 60
#define NSEC 1000000000u

struct layout {
	uint32_t minor;
	size_t header_len;	/* header CRC at header_len - 4 */
	size_t record_len;	/* record CRC at record_len - 4 */
	const struct field *hf, *rf;
	size_t nhf, nrf;
};

static const struct layout layouts[] = {
	{ 17, IDS_INDEX_V17_HEADER, IDS_INDEX_V17_RECORD, v17_header, v17_record,
	  NFIELDS(v17_header), NFIELDS(v17_record) },
	{ 19, IDS_INDEX_V17_HEADER, IDS_INDEX_V17_RECORD, v19_header, v17_record,
	  NFIELDS(v19_header), NFIELDS(v17_record) },
	{ 20, IDS_INDEX_V20_HEADER, IDS_INDEX_V20_RECORD, v20_header, v20_record,
	  NFIELDS(v20_header), NFIELDS(v20_record) },
};

struct ids_index {
	struct ids_index_header h;
	const struct layout *lay;
	unsigned char *buf;
	size_t len;
};

/* --- bytes ----------------------------------------------------------------- */

static uint64_t
get_be(const unsigned char *p, size_t width)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < width; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
put_be(unsigned char *p, size_t width, uint64_t v)
{
	size_t i;

	for (i = width; i > 0; i--) {
		p[i - 1] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint32_t
crc_of(const unsigned char *p, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

static const struct layout *
layout_for(uint32_t minor)
{
	size_t i;

	for (i = 0; i < NFIELDS(layouts); i++)
		if (layouts[i].minor == minor)
			return &layouts[i];
	return NULL;
}

/* Copies each table field from disk bytes into the struct at base. */
static void
decode_fields(const struct field *f, size_t n, const unsigned char *disk, void *base)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t v = get_be(disk + f[i].disk, f[i].width);
		uint32_t v32 = (uint32_t)v;

		if (f[i].memw == 4)
			memcpy((char *)base + f[i].mem, &v32, 4);
		else
			memcpy((char *)base + f[i].mem, &v, 8);
	}
}

/* The reverse; IDS_EINVAL when a value does not fit its disk width. */
static int
encode_fields(const struct field *f, size_t n, const void *base, unsigned char *disk)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t v = 0;
		uint32_t v32;

		if (f[i].memw == 4) {
			memcpy(&v32, (const char *)base + f[i].mem, 4);
			v = v32;
		} else {
			memcpy(&v, (const char *)base + f[i].mem, 8);
		}
		if (f[i].width == 4 && v > UINT32_MAX)
			return ids_error(IDS_EINVAL,
			    "cyrus.index: value %" PRIu64 " does not fit the 32-bit field at byte %u",
			    v, (unsigned)f[i].disk);
		put_be(disk + f[i].disk, f[i].width, v);
	}
	return 0;
}

/* --- encoding --------------------------------------------------------------- */

int
ids_index_format_header(const struct ids_index_header *h, unsigned char *buf,
    size_t size)
{
	const struct layout *lay = layout_for(h->minor_version);
	int r;

	if (lay == NULL)
		return ids_error(IDS_EFORMAT, "cyrus.index: cannot write minor version %" PRIu32,
		    h->minor_version);
	if (size < lay->header_len)
		return ids_error(IDS_EINVAL, "cyrus.index: header buffer too small");
	memset(buf, 0, lay->header_len);
	if ((r = encode_fields(lay->hf, lay->nhf, h, buf)) < 0)
		return r;
	put_be(buf + lay->header_len - 4, 4, crc_of(buf, lay->header_len - 4));
	return (int)lay->header_len;
}

int
ids_index_format_record(const struct ids_index_record *rec,
    uint32_t minor_version, unsigned char *buf, size_t size)
{
	const struct layout *lay = layout_for(minor_version);
	struct ids_index_record r20;
	int r;

	if (lay == NULL)
		return ids_error(IDS_EFORMAT, "cyrus.index: cannot write minor version %" PRIu32,
		    minor_version);
	if (size < lay->record_len)
		return ids_error(IDS_EINVAL, "cyrus.index: record buffer too small");
	if (minor_version >= 20) {
		/* Version 20 keeps internaldate as nanoseconds since the epoch. */
		if (rec->internaldate < 0 || rec->internaldate_nsec >= NSEC ||
		    (uint64_t)rec->internaldate > (UINT64_MAX - NSEC) / NSEC)
			return ids_error(IDS_EINVAL, "cyrus.index: internaldate out of range");
		r20 = *rec;
		r20.internaldate = (int64_t)((uint64_t)rec->internaldate * NSEC +
		    rec->internaldate_nsec);
		rec = &r20;
	}
	memset(buf, 0, lay->record_len);
	if ((r = encode_fields(lay->rf, lay->nrf, rec, buf)) < 0)
		return r;
	memcpy(buf + GUID_OFFSET, rec->guid, IDS_GUID_LEN);
	put_be(buf + lay->record_len - 4, 4, crc_of(buf, lay->record_len - 4));
	return (int)lay->record_len;
}

/* --- reading ---------------------------------------------------------------- */

/* Checks the header fields that say where the records are. */
static int
check_geometry(const struct ids_index *idx)
{
	const struct ids_index_header *h = &idx->h;
	size_t total;

	if (h->record_size < idx->lay->record_len)
		return ids_error(IDS_ECORRUPT,
		    "cyrus.index: record_size %" PRIu32 " (byte 16) under %zu for version %" PRIu32,
		    h->record_size, idx->lay->record_len, h->minor_version);
	if (h->start_offset < idx->lay->header_len)
		return ids_error(IDS_ECORRUPT,
		    "cyrus.index: start_offset %" PRIu32 " (byte 12) inside the %zu-byte header",
		    h->start_offset, idx->lay->header_len);
	if (h->start_offset > idx->len)
		return ids_error(IDS_ETRUNC,
		    "cyrus.index: start_offset %" PRIu32 " beyond the end of the file (%zu bytes)",
		    h->start_offset, idx->len);
	if (__builtin_mul_overflow((size_t)h->num_records, (size_t)h->record_size, &total))
		return ids_error(IDS_ECORRUPT, "cyrus.index: num_records %" PRIu32
		    " of %" PRIu32 " bytes overflows", h->num_records, h->record_size);
	if (total > idx->len - h->start_offset)
		return ids_error(IDS_ETRUNC,
		    "cyrus.index: num_records %" PRIu32 " (byte 20) of %" PRIu32
		    " bytes from byte %" PRIu32 " beyond the end of the file (%zu bytes)",
		    h->num_records, h->record_size, h->start_offset, idx->len);
	return 0;
}

static int
read_header(struct ids_index *idx)
{
	uint32_t minor, want, got;

	if (idx->len < 12)
		return ids_error(IDS_ETRUNC, "cyrus.index: %zu bytes, too short for a header",
		    idx->len);
	minor = (uint32_t)get_be(idx->buf + 8, 4);
	if ((idx->lay = layout_for(minor)) == NULL)
		return ids_error(IDS_EFORMAT, "cyrus.index: minor version %" PRIu32
		    " (byte 8) not supported", minor);
	if (idx->len < idx->lay->header_len)
		return ids_error(IDS_ETRUNC, "cyrus.index: %zu bytes, shorter than the %zu-byte"
		    " header of version %" PRIu32, idx->len, idx->lay->header_len, minor);
	want = (uint32_t)get_be(idx->buf + idx->lay->header_len - 4, 4);
	got = crc_of(idx->buf, idx->lay->header_len - 4);
	if (want != got)
		return ids_error(IDS_ECRC, "cyrus.index: header CRC %08" PRIx32
		    " (byte %zu), computed %08" PRIx32, want, idx->lay->header_len - 4, got);
	memset(&idx->h, 0, sizeof(idx->h));
	decode_fields(idx->lay->hf, idx->lay->nhf, idx->buf, &idx->h);
	return check_geometry(idx);
}

/* Takes ownership of buf (malloc'd). */
static int
index_adopt(unsigned char *buf, size_t len, struct ids_index **idxp)
{
	struct ids_index *idx = calloc(1, sizeof(*idx));
	int r;

	if (idx == NULL) {
		free(buf);
		return -ENOMEM;
	}
	idx->buf = buf;
	idx->len = len;
	if ((r = read_header(idx)) < 0) {
		ids_index_free(idx);
		return r;
	}
	*idxp = idx;
	return 0;
}

int
ids_index_parse(const void *buf, size_t len, struct ids_index **idxp)
{
	unsigned char *copy = malloc(len ? len : 1);

	if (copy == NULL)
		return -ENOMEM;
	if (len)
		memcpy(copy, buf, len);
	return index_adopt(copy, len, idxp);
}

int
ids_index_open(int dirfd, struct ids_index **idxp)
{
	char *buf;
	size_t len;
	int r;

	if ((r = ids_read_file(dirfd, IDS_INDEX_FILE, IDS_INDEX_MAX_SIZE, &buf, &len)) < 0)
		return r;
	return index_adopt((unsigned char *)buf, len, idxp);
}

/*
 * Only the header, from the open file fd (st its fstat): the first
 * IDS_INDEX_MAX_HEADER bytes are read into buf, and the geometry is
 * checked against the file's size instead of its bytes.  On success
 * *idx holds the header (its buf is buf).
 */
static int
header_of_fd(int fd, const struct stat *st, unsigned char buf[IDS_INDEX_MAX_HEADER],
    struct ids_index *idx)
{
	ssize_t n;

	memset(buf, 0, IDS_INDEX_MAX_HEADER);
	do
		n = pread(fd, buf, IDS_INDEX_MAX_HEADER, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	memset(idx, 0, sizeof(*idx));
	idx->buf = buf;
	idx->len = (size_t)n < IDS_INDEX_MAX_HEADER ? (size_t)n : (size_t)st->st_size;
	return read_header(idx);
}

/* header_of_fd of IDS_INDEX_FILE in dirfd, opened for reading: *fdp for the caller to close. */
static int
open_header(int dirfd, unsigned char buf[IDS_INDEX_MAX_HEADER], struct ids_index *idx,
    int *fdp)
{
	struct stat st;
	int fd, r;

	if ((r = ids_open_regular(dirfd, IDS_INDEX_FILE, &st, &fd)) < 0)
		return r;
	if ((r = header_of_fd(fd, &st, buf, idx)) < 0) {
		close(fd);
		return r;
	}
	*fdp = fd;
	return 0;
}

int
ids_index_read_header(int dirfd, struct ids_index_header *h)
{
	unsigned char buf[IDS_INDEX_MAX_HEADER];
	struct ids_index idx;
	int fd, r;

	if ((r = open_header(dirfd, buf, &idx, &fd)) == 0) {
		*h = idx.h;
		close(fd);
	}
	return r;
}

void
ids_index_free(struct ids_index *idx)
{
	if (idx == NULL)
		return;
	free(idx->buf);
	free(idx);
}

const struct ids_index_header *
ids_index_header(const struct ids_index *idx)
{
	return &idx->h;
}

/* Decodes the record at p (byte off of the file) and checks its CRC. */
static int
decode_record(const struct layout *lay, const unsigned char *p, uint32_t recno, size_t off,
    struct ids_index_record *rec)
{
	uint32_t want, got;

	memset(rec, 0, sizeof(*rec));
	decode_fields(lay->rf, lay->nrf, p, rec);
	memcpy(rec->guid, p + GUID_OFFSET, IDS_GUID_LEN);
	if (lay->minor >= 20) {
		uint64_t ns = (uint64_t)rec->internaldate;

		rec->internaldate = (int64_t)(ns / NSEC);
		rec->internaldate_nsec = (uint32_t)(ns % NSEC);
	}
	want = (uint32_t)get_be(p + lay->record_len - 4, 4);
	got = crc_of(p, lay->record_len - 4);
	if (want != got)
		return ids_error(IDS_ECRC, "cyrus.index: record %" PRIu32 " (uid %" PRIu32
		    ") at byte %zu: CRC %08" PRIx32 ", computed %08" PRIx32,
		    recno, rec->uid, off, want, got);
	return 0;
}

int
ids_index_record(const struct ids_index *idx, uint32_t recno,
    struct ids_index_record *rec)
{
	size_t off;

	if (recno >= idx->h.num_records)
		return ids_error(IDS_EINVAL, "cyrus.index: record %" PRIu32 " of %" PRIu32,
		    recno, idx->h.num_records);
	/* check_geometry() proved that every record lies inside the file. */
	off = idx->h.start_offset + (size_t)recno * idx->h.record_size;
	return decode_record(idx->lay, idx->buf + off, recno, off, rec);
}

/* --- one record by its uid ---------------------------------------------------- */
/*
 * len bytes at off, records from recno on: 0, -errno, or IDS_ETRUNC when
 * the file ends first (a record beyond its end).
 */
static int
pread_records(int fd, unsigned char *buf, size_t len, size_t off, uint32_t recno)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return ids_error(IDS_ETRUNC, "cyrus.index: record %" PRIu32
			    " beyond the end of the file", recno);
		got += (size_t)n;
	}
	return 0;
}


/* Record recno of the open file fd (header in idx->h), read and checked alone. */
static int
pread_record(int fd, const struct ids_index *idx, uint32_t recno, unsigned char *buf,
    struct ids_index_record *rec)
{
	size_t off = idx->h.start_offset + (size_t)recno * idx->h.record_size;
	int r;

	if ((r = pread_records(fd, buf, idx->lay->record_len, off, recno)) < 0)
		return r;
	return decode_record(idx->lay, buf, recno, off, rec);
}

/*
 * A binary search over the uids, as Cyrus finds a record (its records
 * are in ascending uid order): a few records read instead of the file.
 * 1 when the search cannot be trusted (a record that fails its CRC, uids
 * out of order where it looked) and IDS_ENOTFOUND: the caller then
 * reads the file whole.
 */
static int
search_uid(int fd, const struct ids_index *idx, uint32_t uid, struct ids_index_record *rec)
{
	unsigned char buf[512];
	uint32_t lo = 0, hi = idx->h.num_records, mid, below = 0, above = UINT32_MAX;

	if (idx->lay->record_len > sizeof(buf))
		return 1;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (pread_record(fd, idx, mid, buf, rec) < 0 || rec->uid <= below ||
		    rec->uid >= above)
			return 1;
		if (rec->uid == uid)
			return 0;
		if (rec->uid < uid) {
			below = rec->uid;
			lo = mid + 1;
		} else {
			above = rec->uid;
			hi = mid;
		}
	}
	return IDS_ENOTFOUND;
}

int
ids_index_find_uid(int dirfd, uint32_t uid, struct ids_index_record *rec)
{
	unsigned char head[IDS_INDEX_MAX_HEADER];
	struct ids_index idx, *whole;
	uint32_t i;
	int fd, r;

	if ((r = open_header(dirfd, head, &idx, &fd)) < 0)
		return r;
	r = search_uid(fd, &idx, uid, rec);
	close(fd);
	if (r != 1 && r != IDS_ENOTFOUND)
		return r;
	/*
	 * Out of order or damaged where the search looked, or not found (an
	 * index out of order elsewhere would hide a uid from the search):
	 * every record, in turn.  A fetch asks for a uid the folder holds,
	 * so this is the rare path.
	 */
	if ((r = ids_index_open(dirfd, &whole)) < 0)
		return r;
	r = IDS_ENOTFOUND;
	for (i = 0; i < ids_index_header(whole)->num_records && r != 0; i++)
		if (ids_index_record(whole, i, rec) == 0 && rec->uid == uid)
			r = 0;
	ids_index_free(whole);
	return r;
}

/* --- reading a block at a time ------------------------------------------------ */

#define READER_BLOCK	65536

struct ids_index_reader {
	int fd;
	struct ids_index_header h;
	const struct layout *lay;
	uint32_t next;			/* record number of the next record */
	unsigned char *buf;		/* records [first, first + nbuf) */
	uint32_t first, nbuf, cap;
};

int
ids_index_reader_new(int fd, const struct ids_index_header *h,
    struct ids_index_reader **rdp)
{
	struct ids_index_reader *rd;

	if (layout_for(h->minor_version) == NULL)
		return ids_error(IDS_EFORMAT, "cyrus.index: minor version %" PRIu32
		    " not supported", h->minor_version);
	if (h->record_size < layout_for(h->minor_version)->record_len)
		return ids_error(IDS_ECORRUPT, "cyrus.index: record_size %" PRIu32
		    " under the version's record", h->record_size);
	if ((rd = calloc(1, sizeof(*rd))) == NULL)
		return -ENOMEM;
	rd->fd = fd;
	rd->h = *h;
	rd->lay = layout_for(h->minor_version);
	rd->cap = READER_BLOCK / h->record_size ? READER_BLOCK / h->record_size : 1;
	if ((rd->buf = malloc((size_t)rd->cap * h->record_size)) == NULL) {
		free(rd);
		return -ENOMEM;
	}
	*rdp = rd;
	return 0;
}

int
ids_index_reader_next(struct ids_index_reader *rd, struct ids_index_record *rec)
{
	size_t off;
	int r;

	if (rd->next >= rd->h.num_records)
		return 0;
	if (rd->next >= rd->first + rd->nbuf) {
		uint32_t n = rd->h.num_records - rd->next;
		size_t len;

		if (n > rd->cap)
			n = rd->cap;
		len = (size_t)n * rd->h.record_size;
		off = rd->h.start_offset + (size_t)rd->next * rd->h.record_size;
		if ((r = pread_records(rd->fd, rd->buf, len, off, rd->next)) < 0)
			return r;
		rd->first = rd->next;
		rd->nbuf = n;
	}
	off = rd->h.start_offset + (size_t)rd->next * rd->h.record_size;
	r = decode_record(rd->lay, rd->buf + (size_t)(rd->next - rd->first) * rd->h.record_size,
	    rd->next, off, rec);
	rd->next++;
	return r < 0 ? r : 1;
}

void
ids_index_reader_free(struct ids_index_reader *rd)
{
	if (rd == NULL)
		return;
	free(rd->buf);
	free(rd);
}

/* --- writing ---------------------------------------------------------------- */

int
ids_index_write_new(int dirfd, const struct ids_index_header *init)
{
	struct ids_index_header h;
	unsigned char buf[IDS_INDEX_V17_HEADER];
	int r;

	if (init == NULL || init->uidvalidity == 0)
		return ids_error(IDS_EINVAL, "cyrus.index: a new index needs a uidvalidity");
	memset(&h, 0, sizeof(h));
	h.generation_no = init->generation_no;
	h.minor_version = 17;
	h.start_offset = IDS_INDEX_V17_HEADER;
	h.record_size = IDS_INDEX_V17_RECORD;
	h.uidvalidity = init->uidvalidity;
	h.last_uid = init->last_uid;
	h.highestmodseq = init->highestmodseq ? init->highestmodseq : 1;
	h.deletedmodseq = init->deletedmodseq;
	h.createdmodseq = init->createdmodseq;
	h.options = init->options;
	h.header_file_crc = init->header_file_crc;
	h.recentuid = init->recentuid;
	h.recenttime = init->recenttime;
	h.pop3_last_login = init->pop3_last_login;
	h.pop3_show_after = init->pop3_show_after;
	h.changes_epoch = init->changes_epoch;
	if ((r = ids_index_format_header(&h, buf, sizeof(buf))) < 0 ||
	    (r = IDS_FAILPOINT("index.write_new")) < 0)
		return r;
	return ids_write_durable(dirfd, IDS_INDEX_FILE, buf, sizeof(buf), 0600);
}

/* Folds one new record into the header's counters. */
static int
count_record(struct ids_index_header *h, struct ids_index_record *rec)
{
	if (rec->uid <= h->last_uid)
		return ids_error(IDS_EINVAL, "cyrus.index: uid %" PRIu32
		    " not above last_uid %" PRIu32, rec->uid, h->last_uid);
	if (h->num_records == UINT32_MAX)
		return ids_error(IDS_EINVAL, "cyrus.index: too many records");
	if (rec->modseq == 0)
		rec->modseq = h->highestmodseq + 1;
	if (rec->createdmodseq == 0)
		rec->createdmodseq = rec->modseq;
	if (rec->modseq > h->highestmodseq)
		h->highestmodseq = rec->modseq;
	h->last_uid = rec->uid;
	h->num_records++;
	if (rec->system_flags & IDS_FLAG_EXPUNGED)
		return 0;
	h->exists++;
	h->quota_mailbox_used += rec->size;
	h->deleted += !!(rec->system_flags & IDS_FLAG_DELETED);
	h->answered += !!(rec->system_flags & IDS_FLAG_ANSWERED);
	h->flagged += !!(rec->system_flags & IDS_FLAG_FLAGGED);
	h->unseen += !(rec->system_flags & IDS_FLAG_SEEN);
	return 0;
}

/* Writes the new image of idx (header from idx->h) in place of the file. */
static int
replace_file(int dirfd, const struct ids_index *idx, unsigned char *img,
    size_t len)
{
	int r;

	if ((r = ids_index_format_header(&idx->h, img, len)) < 0)
		return r;
	return ids_write_durable(dirfd, IDS_INDEX_FILE, img, len, 0600);
}

/* The old header..records bytes, then n new records, in a new buffer. */
static int
build_appended(struct ids_index *idx, const struct ids_index_record *recs,
    size_t n, unsigned char **imgp, size_t *lenp)
{
	size_t old = idx->h.start_offset + (size_t)idx->h.num_records * idx->h.record_size;
	size_t len, i;
	unsigned char *img;
	int r = 0;

	if (n > UINT32_MAX || __builtin_mul_overflow(n, (size_t)idx->h.record_size, &len) ||
	    __builtin_add_overflow(len, old, &len) || len > IDS_INDEX_MAX_SIZE)
		return ids_error(IDS_EINVAL, "cyrus.index: appending %zu records makes it too large",
		    n);
	if ((img = calloc(1, len)) == NULL)
		return -ENOMEM;
	memcpy(img, idx->buf, old);
	for (i = 0; i < n && r >= 0; i++) {
		struct ids_index_record rec = recs[i];
		size_t off = old + i * idx->h.record_size;

		if ((r = count_record(&idx->h, &rec)) == 0)
			r = ids_index_format_record(&rec, idx->h.minor_version, img + off,
			    idx->h.record_size);
	}
	if (r < 0) {
		free(img);
		return r;
	}
	*imgp = img;
	*lenp = len;
	return 0;
}

/*
 * In-place updates, as Cyrus makes them.  New records are written past
 * the last one and made durable, then the header (at offset 0, inside
 * the first sector) is rewritten and made durable: a crash between the
 * two leaves records past num_records, which readers ignore and the
 * next append overwrites.  Only a file with a single name is changed in
 * place.  A cyrus.index still hard-linked from another directory (a
 * migration's or a copy's twin) is replaced by a new file instead, so
 * the other name keeps its bytes.
 */

/* 1 and an O_RDWR fd when the index has one name; 0 when it has more. */
static int
open_private(int dirfd, int *fdp)
{
	struct stat st;
	int fd, r;

	fd = openat(dirfd, IDS_INDEX_FILE, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? ids_error(IDS_EUNSAFE, "'%s' is a symlink",
		    IDS_INDEX_FILE) : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		r = S_ISREG(st.st_mode) ? 0 : ids_error(IDS_EUNSAFE, "'%s' is not a regular file",
		    IDS_INDEX_FILE);
		close(fd);
		return r;
	}
	*fdp = fd;
	return 1;
}

static int
pwrite_all(int fd, const unsigned char *buf, size_t len, off_t off)
{
	ssize_t n;

	while (len > 0) {
		n = pwrite(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int
write_header_at0(int fd, const struct ids_index_header *h)
{
	unsigned char buf[IDS_INDEX_MAX_HEADER];
	int n, r;

	if ((n = ids_index_format_header(h, buf, sizeof(buf))) < 0)
		return n;
	if ((r = IDS_FAILPOINT("index.write_header")) < 0 ||
	    (r = pwrite_all(fd, buf, (size_t)n, 0)) < 0)
		return r;
	/* Deferred only by a group commit (a subtree's headers), never by a delivery. */
	return ids_fsync_file(fd);
}

/* Appends in place: the records, durable, then the header. */
static int
append_inplace(int fd, struct ids_index_header *h, const struct ids_index_record *recs,
    size_t n)
{
	size_t i, len, off = h->start_offset + (size_t)h->num_records * h->record_size;
	unsigned char *buf;
	int r = 0;

	if (n > UINT32_MAX || __builtin_mul_overflow(n, (size_t)h->record_size, &len) ||
	    off + len > IDS_INDEX_MAX_SIZE)
		return ids_error(IDS_EINVAL, "cyrus.index: appending %zu records makes it too large",
		    n);
	if ((buf = calloc(1, len ? len : 1)) == NULL)
		return -ENOMEM;
	for (i = 0; i < n && r >= 0; i++) {
		struct ids_index_record rec = recs[i];

		if ((r = count_record(h, &rec)) == 0)
			r = ids_index_format_record(&rec, h->minor_version,
			    buf + i * h->record_size, h->record_size);
	}
	if (r >= 0 && (r = IDS_FAILPOINT("index.append")) == 0 &&
	    (r = pwrite_all(fd, buf, len, (off_t)off)) == 0)
		r = fsync(fd) < 0 ? -errno : 0;
	free(buf);
	return r < 0 ? r : write_header_at0(fd, h);
}

/* Replaces the file with its image plus n records (a shared inode). */
static int
append_replace(int dirfd, const struct ids_index_record *recs, size_t n)
{
	struct ids_index *idx;
	unsigned char *img = NULL;
	size_t len = 0;
	int r;

	if ((r = ids_index_open(dirfd, &idx)) < 0)
		return r;
	if ((r = build_appended(idx, recs, n, &img, &len)) == 0) {
		if ((r = IDS_FAILPOINT("index.append")) == 0)
			r = replace_file(dirfd, idx, img, len);
		free(img);
	}
	ids_index_free(idx);
	return r;
}

int
ids_index_append(int dirfd, const struct ids_index_record *recs, size_t n)
{
	struct ids_index_header h;
	int fd = -1, r;

	if ((r = ids_index_read_header(dirfd, &h)) < 0 ||
	    (r = open_private(dirfd, &fd)) < 0)
		return r;
	if (r == 0)
		return append_replace(dirfd, recs, n);
	r = append_inplace(fd, &h, recs, n);
	close(fd);
	return r;
}

static int
set_crc_replace(int dirfd, uint32_t crc)
{
	struct ids_index *idx;
	int r;

	if ((r = ids_index_open(dirfd, &idx)) < 0)
		return r;
	idx->h.header_file_crc = crc;
	if ((r = IDS_FAILPOINT("index.set_header_crc")) == 0)
		r = replace_file(dirfd, idx, idx->buf, idx->len);
	ids_index_free(idx);
	return r;
}

/*
 * One descriptor for the read and the write (a rename of many folders
 * does this once per folder): opened read-write without blocking, as
 * ids_open_regular() opens for reading, then the header read from it.
 */
int
ids_index_set_header_crc(int dirfd, uint32_t crc)
{
	unsigned char buf[IDS_INDEX_MAX_HEADER];
	struct ids_index_header h;
	struct ids_index idx;
	struct stat st;
	int fd, r;

	fd = openat(dirfd, IDS_INDEX_FILE, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? ids_error(IDS_EUNSAFE, "'%s' is a symlink",
		    IDS_INDEX_FILE) : -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = ids_error(IDS_EUNSAFE, "'%s' is not a regular file", IDS_INDEX_FILE);
	else
		r = header_of_fd(fd, &st, buf, &idx);
	if (r < 0) {
		close(fd);
		return r;
	}
	h = idx.h;
	if (st.st_nlink != 1) {
		/* a twin's name keeps its bytes: a new file instead */
		close(fd);
		return set_crc_replace(dirfd, crc);
	}
	h.header_file_crc = crc;
	if ((r = IDS_FAILPOINT("index.set_header_crc")) == 0)
		r = write_header_at0(fd, &h);
	close(fd);
	return r;
}

int
ids_index_copy_with_crc(int srcfd, int dstfd, uint32_t crc)
{
	struct ids_index *idx;
	int r;

	if ((r = ids_index_open(srcfd, &idx)) < 0)
		return r;
	idx->h.header_file_crc = crc;
	if ((r = IDS_FAILPOINT("index.set_header_crc")) == 0 &&
	    (r = ids_index_format_header(&idx->h, idx->buf, idx->len)) >= 0)
		r = ids_write_new(dstfd, IDS_INDEX_FILE, idx->buf, idx->len, 0600);
	ids_index_free(idx);
	return r;
}

int
ids_index_set_uidvalidity(int dirfd, uint32_t uidvalidity)
{
	struct ids_index *idx;
	int r;

	if (uidvalidity == 0)
		return ids_error(IDS_EINVAL, "uidvalidity 0");
	if ((r = ids_index_open(dirfd, &idx)) < 0)
		return r;
	idx->h.uidvalidity = uidvalidity;
	if ((r = IDS_FAILPOINT("index.set_uidvalidity")) == 0)
		r = replace_file(dirfd, idx, idx->buf, idx->len);
	ids_index_free(idx);
	return r;
}
