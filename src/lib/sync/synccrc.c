/*
 * synccrc.c - SYNC_CRC and SYNC_CRC_ANNOT, exactly as Cyrus 3.6
 * computes them (mailbox.c crc_basic(), crc_annot(), crc_virtannot()).
 * The formulas are locked in Cyrus since 2.4: changing a byte of the
 * strings hashed here makes every sync with a real Cyrus a full one.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <zlib.h>

#include "dlist.h"
#include "error.h"
#include "guid.h"
#include "index.h"
#include "sync/sync.h"
#include "sync/sync_int.h"

#define ANNOT_NS SYNC_ANNOT_NS

static uint32_t
crc_bytes(const void *p, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	while (len > 0) {	/* zlib takes uInt lengths */
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = crc32(crc, p, n);
		p = (const char *)p + n;
		len -= n;
	}
	return (uint32_t)crc;
}

/* CRC-32 of a flag name lower-cased (Cyrus lcase()s a 4096-byte copy). */
static uint32_t
crc_flag(const char *name)
{
	char buf[4096];
	size_t i;

	for (i = 0; name[i] && i < sizeof(buf) - 1; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
	return crc_bytes(buf, i);
}

/* The formula of crc_basic() once the flags' CRC is known. */
static uint32_t
crc_basic_fields(uint32_t uid, uint64_t modseq, int64_t last_updated, uint32_t flagcrc,
    int64_t internaldate, const char *guidhex)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), "%" PRIu32 " %" PRIu64 " %" PRId64 " (%" PRIu32 ") %"
	    PRId64 " %s", uid, modseq, last_updated, flagcrc, internaldate, guidhex);

	return crc_bytes(buf, n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

uint32_t
ids_sync_crc_basic(const struct ids_index_record *rec, char *const *flagnames,
    size_t nflags)
{
	static const struct { uint32_t bit; const char *name; } sys[] = {
		{ IDS_FLAG_DELETED, "\\deleted" }, { IDS_FLAG_ANSWERED, "\\answered" },
		{ IDS_FLAG_FLAGGED, "\\flagged" }, { IDS_FLAG_DRAFT, "\\draft" },
		{ IDS_FLAG_SEEN, "\\seen" },
	};
	char hex[IDS_GUID_HEXLEN + 1];
	uint32_t flagcrc = 0;
	size_t i;

	if (rec->system_flags & IDS_FLAG_EXPUNGED)
		return 0;
	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if (rec->system_flags & sys[i].bit)
			flagcrc ^= crc_flag(sys[i].name);
	for (i = 0; i < nflags && i < 128; i++)
		if (flagnames[i] && (rec->user_flags[i / 32] & (1u << (i % 32))))
			flagcrc ^= crc_flag(flagnames[i]);
	ids_guid_hex(rec->guid, hex);
	return crc_basic_fields(rec->uid, rec->modseq, (int64_t)rec->last_updated, flagcrc,
	    rec->internaldate, hex);
}

uint32_t
ids_sync_crc_annot(uint32_t uid, const char *entry, const char *userid,
    const void *value, size_t len)
{
	char head[4096];
	int n;
	uLong crc;

	if (userid == NULL)	/* Cyrus: "a NULL userid is bogus" */
		return 0;
	n = snprintf(head, sizeof(head), "%" PRIu32 " %s %s ", uid, entry, userid);
	if (n < 0 || (size_t)n >= sizeof(head))
		return 0;
	crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)head, (uInt)n);
	while (len > 0) {
		uInt k = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = crc32(crc, value, k);
		value = (const char *)value + k;
		len -= k;
	}
	return (uint32_t)crc;
}

uint32_t
ids_sync_crc_virtannot(const struct ids_index_record *rec, uint32_t minor_version)
{
	char v[32];
	uint32_t crc = 0;
	int n;

	if (rec->system_flags & IDS_FLAG_EXPUNGED)
		return 0;
	if (rec->cid && minor_version >= 13) {
		n = snprintf(v, sizeof(v), "%" PRIx64, rec->cid);
		crc ^= ids_sync_crc_annot(rec->uid, ANNOT_NS "thrid", "", v, (size_t)n);
	}
	if (rec->savedate && minor_version >= 15) {
		n = snprintf(v, sizeof(v), "%" PRIu64, rec->savedate);
		crc ^= ids_sync_crc_annot(rec->uid, ANNOT_NS "savedate", "", v, (size_t)n);
	}
	if (rec->createdmodseq && minor_version >= 16) {
		n = snprintf(v, sizeof(v), "%" PRIu64, rec->createdmodseq);
		crc ^= ids_sync_crc_annot(rec->uid, ANNOT_NS "createdmodseq", "", v, (size_t)n);
	}
	return crc;
}

/* --- from the wire ------------------------------------------------------- */

/* The flags' CRC of a FLAGS list; *expunged set for \Expunged. */
static int
flags_crc(const struct ids_dlist *flags, uint32_t *crc, int *expunged)
{
	const struct ids_dlist *f;
	const char *name;

	*crc = 0;
	*expunged = 0;
	if (flags == NULL)
		return 0;
	if (flags->type != IDS_DL_LIST)
		return ids_error(IDS_ECORRUPT, "FLAGS is not a list");
	for (f = flags->head; f; f = f->next) {
		if ((name = ids_dlist_cstr(f)) == NULL)
			return ids_error(IDS_ECORRUPT, "a flag is not a string");
		if (strcasecmp(name, "\\Expunged") == 0)
			*expunged = 1;
		else if (strcasecmp(name, "\\Recent") != 0)
			*crc ^= crc_flag(name);
	}
	return 0;
}

/*
 * One ANNOTATIONS item.  thrid travels as 16 hex digits (sethex64) but
 * crc_virtannot() hashes "%llx": the value is re-spelled before hashing.
 */
static int
annot_crc(uint32_t uid, const struct ids_dlist *a, uint32_t *crc)
{
	const struct ids_dlist *v = ids_dlist_get(a, "VALUE");
	const char *entry = ids_dlist_cstr(ids_dlist_get(a, "ENTRY"));
	const char *userid = ids_dlist_cstr(ids_dlist_get(a, "USERID"));
	unsigned long long cid;
	char hex[32];
	int n;

	if (entry == NULL || userid == NULL || v == NULL ||
	    (v->type != IDS_DL_STRING && v->type != IDS_DL_NIL))
		return ids_error(IDS_ECORRUPT, "annotation of uid %" PRIu32 " without ENTRY, "
		    "USERID or VALUE", uid);
	if (v->type == IDS_DL_NIL || v->len == 0)
		return 0;
	if (strcmp(entry, ANNOT_NS "thrid") == 0 && *userid == '\0' &&
	    sscanf(v->data, "%llx", &cid) == 1) {
		n = snprintf(hex, sizeof(hex), "%llx", cid);
		*crc ^= ids_sync_crc_annot(uid, entry, userid, hex, (size_t)n);
		return 0;
	}
	*crc ^= ids_sync_crc_annot(uid, entry, userid, v->data, v->len);
	return 0;
}

int
ids_sync_record_crcs(const struct ids_dlist *record, uint32_t *basic, uint32_t *annot)
{
	const struct ids_dlist *annots, *a;
	const char *guid = ids_dlist_cstr(ids_dlist_get(record, "GUID"));
	uint32_t uid, flagcrc;
	uint64_t modseq;
	int64_t last_updated, internaldate;
	int expunged, r;

	*basic = *annot = 0;
	if ((r = ids_dlist_get_u32(record, "UID", &uid)) < 0 ||
	    (r = ids_dlist_get_u64(record, "MODSEQ", &modseq)) < 0 ||
	    (r = ids_dlist_get_i64(record, "LAST_UPDATED", &last_updated)) < 0 ||
	    (r = ids_dlist_get_i64(record, "INTERNALDATE", &internaldate)) < 0 ||
	    (r = flags_crc(ids_dlist_get(record, "FLAGS"), &flagcrc, &expunged)) < 0)
		return r;
	if (guid == NULL || uid == 0)
		return ids_error(IDS_ECORRUPT, "RECORD without UID or GUID");
	if (expunged)
		return 0;
	*basic = crc_basic_fields(uid, modseq, last_updated, flagcrc, internaldate, guid);
	annots = ids_dlist_get(record, "ANNOTATIONS");
	for (a = annots ? annots->head : NULL; a; a = a->next)
		if ((r = annot_crc(uid, a, annot)) < 0)
			return r;
	return 0;
}
