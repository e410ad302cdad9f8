/*
 * index.h - a folder's cyrus.index (formats.md section 8).
 *
 * Reads minor versions 17 (Cyrus 3.4-3.8), 19 (3.10, 3.12) and 20
 * (master), trusting the file's own minor_version, start_offset and
 * record_size after checking them; writes new indexes as version 17,
 * which every Cyrus from 3.4 on reads.  All integers are big-endian on
 * disk; the header and each record end in a zlib CRC-32 of the bytes
 * before it.
 *
 *	struct ids_index *idx;
 *	struct ids_index_record rec;
 *	if ((r = ids_index_open(dirfd, &idx)) < 0) ... ids_errmsg(r) ...
 *	for (i = 0; i < ids_index_header(idx)->num_records; i++)
 *		if ((r = ids_index_record(idx, i, &rec)) < 0) ...
 *	ids_index_free(idx);
 *
 * ids_index_write_new and ids_index_set_uidvalidity build the whole new
 * file in memory and replace cyrus.index with ids_write_durable()
 * (cyrus.index.NEW, fsync, rename, fsync of the directory): a crash
 * leaves the old or the new file, never a mix.  ids_index_append and
 * ids_index_set_header_crc change a file that has one name in place, as
 * Cyrus does (new records written and fsynced past the last one, then
 * the header rewritten at offset 0 and fsynced: their cost does not grow
 * with the number of records), and replace a file that is still
 * hard-linked elsewhere, so the other name keeps its bytes.  They do
 * not lock: the caller holds the folder's lock.
 */
#ifndef IDS_INDEX_H
#define IDS_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "guid.h"

#define IDS_INDEX_FILE		"cyrus.index"
#define IDS_INDEX_MAX_SIZE	((size_t)1 << 31)	/* larger files are refused */

/* Sizes of the header and of a record, with their CRC, per version. */
#define IDS_INDEX_V17_HEADER	160
#define IDS_INDEX_V17_RECORD	112
#define IDS_INDEX_V20_HEADER	192
#define IDS_INDEX_V20_RECORD	144
#define IDS_INDEX_MAX_HEADER	IDS_INDEX_V20_HEADER
#define IDS_INDEX_MAX_RECORD	IDS_INDEX_V20_RECORD

/* system_flags: IMAP flags in the low bits, Cyrus's internal ones high. */
#define IDS_FLAG_ANSWERED	(1u << 0)
#define IDS_FLAG_FLAGGED	(1u << 1)
#define IDS_FLAG_DELETED	(1u << 2)
#define IDS_FLAG_DRAFT		(1u << 3)
#define IDS_FLAG_SEEN		(1u << 4)
#define IDS_FLAG_ARCHIVED	(1u << 29)	/* file on the archive partition */
#define IDS_FLAG_UNLINKED	(1u << 30)	/* file removed (or about to be) */
#define IDS_FLAG_EXPUNGED	(1u << 31)	/* expunged; file may remain until unlinked */

/* The index options (Cyrus 3.6's mailbox.h): new POP3 UIDLs. */
#define IDS_INDEX_OPT_POP3_NEW_UIDL	(1u << 0)

/*
 * Every header field of the three versions.  Fields a version lacks
 * read as 0 and are not written.  Times that version 20 widened to
 * 64 bits are stored here as the file has them.
 */
struct ids_index_header {
	uint32_t generation_no;		/* also the first 4 bytes of cyrus.cache */
	uint32_t format;
	uint32_t minor_version;
	uint32_t start_offset;
	uint32_t record_size;
	uint32_t num_records;		/* including expunged records */
	uint64_t last_appenddate;
	uint32_t last_uid;
	uint64_t quota_mailbox_used;
	uint64_t pop3_last_login;
	uint32_t uidvalidity;
	uint32_t deleted;		/* counts over unexpunged records */
	uint32_t answered;
	uint32_t flagged;
	uint32_t options;		/* IDS_INDEX_OPT_*, Cyrus's OPT_* bits */
	uint32_t leaked_cache;
	uint64_t highestmodseq;
	uint64_t deletedmodseq;
	uint32_t exists;		/* unexpunged records */
	uint64_t first_expunged;
	uint64_t last_repack_time;
	uint32_t header_file_crc;	/* CRC-32 of cyrus.header */
	uint32_t synccrc_basic;
	uint32_t recentuid;
	uint64_t recenttime;
	uint64_t pop3_show_after;
	uint64_t quota_annot_used;
	uint32_t synccrc_annot;
	uint32_t unseen;
	uint64_t createdmodseq;
	uint64_t quota_deleted_used;	/* v19+ */
	uint64_t quota_expunged_used;	/* v19+ */
	uint64_t changes_epoch;
};

struct ids_index_record {
	uint32_t uid;
	int64_t internaldate;		/* seconds since the epoch */
	uint32_t internaldate_nsec;	/* v20 only, else 0 */
	uint64_t sentdate;
	uint64_t size;			/* bytes of the message file */
	uint32_t header_size;
	uint64_t gmtime;
	uint32_t cache_offset;
	uint64_t last_updated;
	uint32_t system_flags;		/* IDS_FLAG_* */
	uint32_t user_flags[4];		/* bit n: cyrus.header flag n */
	uint64_t savedate;
	uint32_t cache_version;
	uint8_t guid[IDS_GUID_LEN];	/* SHA-1 of the message file; zero = none */
	uint64_t modseq;
	uint64_t cid;
	uint64_t createdmodseq;
	uint64_t basecid;		/* v20 only */
	uint32_t cache_crc;
};

struct ids_index;	/* an index read into memory */

/*
 * Reads IDS_INDEX_FILE in dirfd (a symlink is IDS_EUNSAFE; over
 * IDS_INDEX_MAX_SIZE is IDS_ETOOLONG) and checks its header:
 *   IDS_ETRUNC   file shorter than the header, start_offset beyond the
 *                file, or num_records records of record_size not in it;
 *   IDS_EFORMAT  minor_version not 17, 19 or 20;
 *   IDS_ECRC     header CRC mismatch;
 *   IDS_ECORRUPT record_size 0 or under the version's record,
 *                start_offset inside the header, size overflow.
 * Records are checked when read.  On success the caller frees *idxp.
 */
int ids_index_open(int dirfd, struct ids_index **idxp);

/*
 * Reads and checks only the header of IDS_INDEX_FILE in dirfd, with the
 * checks of ids_index_open (the record area is checked against the
 * file's size, not read): for tools that need a folder's uidvalidity,
 * last_uid or counts without its records.  Returns 0 or the codes of
 * ids_index_open.
 */
int ids_index_read_header(int dirfd, struct ids_index_header *h);

/* As ids_index_open, from len bytes at buf (copied). */
int ids_index_parse(const void *buf, size_t len, struct ids_index **idxp);

void ids_index_free(struct ids_index *idx);

const struct ids_index_header *ids_index_header(const struct ids_index *idx);

/*
 * Decodes record recno (0-based, below num_records, else IDS_EINVAL)
 * into *rec and checks its CRC: IDS_ECRC naming the record, its uid
 * and its byte offset when it does not match (*rec is filled anyway).
 */
int ids_index_record(const struct ids_index *idx, uint32_t recno,
    struct ids_index_record *rec);

/*
 * The record of uid in the IDS_INDEX_FILE of dirfd, found as Cyrus finds
 * one: a binary search over the records (ascending uids), each read
 * alone and its CRC checked, so that a fetch from a large folder reads a
 * few records, not the file.  Where the search meets a damaged record or
 * uids out of order, or does not find uid, every record is read in turn
 * (the damaged ones skipped): the answer is always that of a full scan.
 * 0 and *rec, IDS_ENOTFOUND when no intact record has uid, or the codes
 * of ids_index_read_header.
 */
int ids_index_find_uid(int dirfd, uint32_t uid, struct ids_index_record *rec);

/*
 * Reading the records of a large index a block at a time (64 KiB), in
 * order, without the whole file in memory: fd (not owned) holds an
 * index whose header is h (from ids_index_read_header, or the header a
 * writer is about to store); num_records records of h->record_size
 * from h->start_offset are read.  ids_index_reader_next returns 1 and
 * the next record (its CRC checked as ids_index_record does), 0 after
 * the last, or negative (IDS_ETRUNC when the file is shorter).
 */
struct ids_index_reader;
int ids_index_reader_new(int fd, const struct ids_index_header *h,
    struct ids_index_reader **rdp);
int ids_index_reader_next(struct ids_index_reader *rd, struct ids_index_record *rec);
void ids_index_reader_free(struct ids_index_reader *rd);

/*
 * Encoders, for h->minor_version / minor_version 17, 19 or 20
 * (IDS_EFORMAT otherwise): write the header or one record, CRC
 * included, into buf of size bytes (IDS_EINVAL if too small, or if a
 * value does not fit its on-disk field).  Return the bytes written.
 */
int ids_index_format_header(const struct ids_index_header *h, unsigned char *buf,
    size_t size);
int ids_index_format_record(const struct ids_index_record *rec,
    uint32_t minor_version, unsigned char *buf, size_t size);

/*
 * Creates (or replaces) IDS_INDEX_FILE in dirfd: an empty version 17
 * index.  From init it takes generation_no, uidvalidity (required, else
 * IDS_EINVAL), last_uid, highestmodseq (0 becomes 1), deletedmodseq,
 * createdmodseq, options, header_file_crc, recentuid, recenttime,
 * pop3_last_login, pop3_show_after, changes_epoch; counts are zero.
 * Failpoint "index.write_new".  Returns 0 or negative.
 */
int ids_index_write_new(int dirfd, const struct ids_index_header *init);

/*
 * Appends n records to IDS_INDEX_FILE in dirfd, in the file's own
 * version.  uids must rise above last_uid (IDS_EINVAL).  A record with
 * modseq 0 gets highestmodseq + 1; createdmodseq 0 becomes its modseq.
 * Updates num_records, last_uid, highestmodseq and, for unexpunged
 * records, exists, quota_mailbox_used, deleted, answered, flagged and
 * unseen.  last_appenddate and the sync CRCs are left as they were.
 * Failpoint "index.append".  Returns 0 or negative (see ids_index_open).
 */
int ids_index_append(int dirfd, const struct ids_index_record *recs, size_t n);

/*
 * Stores crc as header_file_crc (after the caller rewrote cyrus.header;
 * Cyrus warns on a mismatch).  Failpoint "index.set_header_crc".
 */
int ids_index_set_header_crc(int dirfd, uint32_t crc);

/*
 * Writes a copy of srcfd's cyrus.index, read and checked as
 * ids_index_open does, with header_file_crc set to crc, into dstfd,
 * which no reader uses before the caller's next commit point
 * (ids_write_new; a cyrus.index already there is replaced durably).
 * Failpoint "index.set_header_crc".
 */
int ids_index_copy_with_crc(int srcfd, int dstfd, uint32_t crc);

/*
 * Stores a new uidvalidity (a folder copied to a name whose tombstone
 * demands a higher one).  Failpoint "index.set_uidvalidity".
 */
int ids_index_set_uidvalidity(int dirfd, uint32_t uidvalidity);

#endif
