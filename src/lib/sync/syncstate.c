/*
 * syncstate.c - a folder's MAILBOX kvlist and RECORD list as Cyrus
 * 3.6's sync_prepare_dlists() builds them, from cyrus.index,
 * cyrus.header, mailboxes.db and idspool.sync (see sync.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "guid.h"
#include "header.h"
#include "index.h"
#include "mailbox.h"
#include "mbentry.h"
#include "sync/sync.h"
#include "sync/sync_int.h"

#define ANNOT_NS SYNC_ANNOT_NS

/* Index options, as mailbox.h of Cyrus 3.6 numbers them. */
#define OPT_POP3_NEW_UIDL	(1u << 0)
#define OPT_IMAP_SHAREDSEEN	(1u << 2)
#define OPT_IMAP_DUPDELIVER	(1u << 3)
#define OPT_IMAP_HAS_ALARMS	(1u << 4)

void
ids_sync_options(uint32_t options, char out[8])
{
	int i = 0;

	if (options & OPT_POP3_NEW_UIDL)
		out[i++] = 'P';
	if (options & OPT_IMAP_SHAREDSEEN)
		out[i++] = 'S';
	if (options & OPT_IMAP_DUPDELIVER)
		out[i++] = 'D';
	if (options & OPT_IMAP_HAS_ALARMS)
		out[i++] = 'A';
	out[i] = '\0';
}

char *
ids_sync_acl_string(const struct ids_mbentry *e)
{
	struct ids_buf b = IDS_BUF_INIT;
	size_t i;

	for (i = 0; i < e->nacl; i++)
		ids_buf_printf(&b, "%s\t%s\t", e->acl[i].id, e->acl[i].rights);
	if (ids_buf_oom(&b) < 0) {
		ids_buf_release(&b);
		return NULL;
	}
	return ids_buf_detach(&b, NULL);
}

/* The stored annotations' CRC of one record (values not empty). */
static uint32_t
stored_annot_crc(uint32_t uid, const struct ids_dlist *annots)
{
	const struct ids_dlist *a, *v;
	uint32_t crc = 0;

	for (a = annots ? annots->head : NULL; a; a = a->next) {
		v = ids_dlist_get(a, "VALUE");
		if (v && v->type == IDS_DL_STRING && v->len > 0)
			crc ^= ids_sync_crc_annot(uid, ids_dlist_cstr(ids_dlist_get(a, "ENTRY")),
			    ids_dlist_cstr(ids_dlist_get(a, "USERID")), v->data, v->len);
	}
	return crc;
}

int
ids_sync_crcs(const struct ids_sync_source *src, uint32_t *basic, uint32_t *annot)
{
	const struct ids_index_header *h = ids_index_header(src->index);
	struct ids_index_record rec;
	uint32_t i;
	int r;

	*basic = 0;
	*annot = IDS_SYNC_CRC_ANNOT_INIT;
	for (i = 0; i < h->num_records; i++) {
		if ((r = ids_index_record(src->index, i, &rec)) < 0)
			return r;
		ids_sync_crc_record(&rec, h->minor_version, src->header, src->store, basic, annot);
	}
	return 0;
}

void
ids_sync_crc_record(const struct ids_index_record *rec, uint32_t minor_version,
    const struct ids_header *header, const struct ids_sync_store *store,
    uint32_t *basic, uint32_t *annot)
{
	if (rec->system_flags & IDS_FLAG_EXPUNGED)
		return;
	*basic ^= ids_sync_crc_basic(rec, header->flags, header->nflags);
	*annot ^= ids_sync_crc_virtannot(rec, minor_version);
	if (store)
		*annot ^= stored_annot_crc(rec->uid, ids_sync_store_record(store, rec->uid));
}

/* One %(ENTRY e USERID "" MODSEQ 0 VALUE v) the index holds. */
static int
add_virtannot(struct ids_dlist *list, const char *entry, const char *value)
{
	struct ids_dlist *a;
	int r;

	if ((r = ids_dlist_add_kvlist(list, NULL, &a)) < 0 ||
	    (r = ids_dlist_add_atom(a, "ENTRY", entry)) < 0 ||
	    (r = ids_dlist_add_atom(a, "USERID", "")) < 0 ||
	    (r = ids_dlist_add_num(a, "MODSEQ", 0)) < 0)
		return r;
	return ids_dlist_add_atom(a, "VALUE", value);
}

/* encode_annotations() of 3.6: stored ones, then thrid, savedate, createdmodseq. */
static int
record_annots(struct ids_dlist *kv, const struct ids_index_record *rec,
    uint32_t minor, const struct ids_dlist *stored)
{
	struct ids_dlist *list = stored ? ids_dlist_copy(stored) : ids_dlist_new_list();
	char v[32];
	int r = 0;

	if (list == NULL)
		return -ENOMEM;
	if (rec->cid && minor >= 13) {
		snprintf(v, sizeof(v), "%016" PRIx64, rec->cid);
		r = add_virtannot(list, ANNOT_NS "thrid", v);
	}
	if (r == 0 && rec->savedate && minor >= 15) {
		snprintf(v, sizeof(v), "%" PRIu32, (uint32_t)rec->savedate);
		r = add_virtannot(list, ANNOT_NS "savedate", v);
	}
	if (r == 0 && rec->createdmodseq && minor >= 16) {
		snprintf(v, sizeof(v), "%" PRIu64, rec->createdmodseq);
		r = add_virtannot(list, ANNOT_NS "createdmodseq", v);
	}
	if (r < 0 || list->head == NULL) {
		ids_dlist_free(list);
		return r;
	}
	return ids_dlist_add_child(kv, "ANNOTATIONS", list);
}

/* sync_print_flags() of 3.6: system flags in its order, then user flags by bit. */
static int
record_flags(struct ids_dlist *kv, const struct ids_index_record *rec,
    const struct ids_header *hdr)
{
	static const struct { uint32_t bit; const char *name; } sys[] = {
		{ IDS_FLAG_DELETED, "\\Deleted" }, { IDS_FLAG_ANSWERED, "\\Answered" },
		{ IDS_FLAG_FLAGGED, "\\Flagged" }, { IDS_FLAG_DRAFT, "\\Draft" },
		{ IDS_FLAG_EXPUNGED, "\\Expunged" }, { IDS_FLAG_SEEN, "\\Seen" },
	};
	struct ids_dlist *fl, *f;
	size_t i;
	int r;

	if ((r = ids_dlist_add_list(kv, "FLAGS", &fl)) < 0)
		return r;
	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if ((rec->system_flags & sys[i].bit) &&
		    (r = ids_dlist_add_atom(fl, NULL, sys[i].name)) < 0)
			return r;
	for (i = 0; i < hdr->nflags && i < IDS_HEADER_MAX_FLAGS; i++)
		if (hdr->flags[i] && (rec->user_flags[i / 32] & (1u << (i % 32))) &&
		    (r = ids_dlist_add_atom(fl, NULL, hdr->flags[i])) < 0)
			return r;
	for (f = fl->head; f; f = f->next)	/* printed as they are, as Cyrus does */
		f->type = IDS_DL_FLAG;
	return 0;
}

static int
add_record(struct ids_dlist *list, const struct ids_sync_source *src,
    const struct ids_index_record *rec)
{
	char hex[IDS_GUID_HEXLEN + 1];
	struct ids_dlist *kv;
	int r;

	ids_guid_hex(rec->guid, hex);
	if ((r = ids_dlist_add_kvlist(list, NULL, &kv)) < 0 ||
	    (r = ids_dlist_add_num(kv, "UID", rec->uid)) < 0 ||
	    (r = ids_dlist_add_num(kv, "MODSEQ", rec->modseq)) < 0 ||
	    (r = ids_dlist_add_num(kv, "LAST_UPDATED", rec->last_updated)) < 0 ||
	    (r = record_flags(kv, rec, src->header)) < 0 ||
	    (r = ids_dlist_add_num(kv, "INTERNALDATE", (uint64_t)rec->internaldate)) < 0 ||
	    (r = ids_dlist_add_num(kv, "SIZE", (uint32_t)rec->size)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "GUID", hex)) < 0)
		return r;
	return record_annots(kv, rec, ids_index_header(src->index)->minor_version,
	    src->store ? ids_sync_store_record(src->store, rec->uid) : NULL);
}

static int
add_records(struct ids_dlist *kv, const struct ids_sync_source *src)
{
	struct ids_index_record rec;
	struct ids_dlist *list;
	uint32_t i, n = ids_index_header(src->index)->num_records;
	int r;

	if ((r = ids_dlist_add_list(kv, "RECORD", &list)) < 0)
		return r;
	for (i = 0; i < n; i++)
		if ((r = ids_index_record(src->index, i, &rec)) < 0 ||
		    (r = add_record(list, src, &rec)) < 0)
			return r;
	return 0;
}

/* Copies key from the store's EXTRA into kv, when it is there. */
static int
add_extra(struct ids_dlist *kv, const struct ids_sync_source *src, const char *key)
{
	const struct ids_dlist *v = src->store ? ids_dlist_get(src->store->extra, key) : NULL;

	return v ? ids_dlist_add_child(kv, key, ids_dlist_copy(v)) : 0;
}

/* Keys of EXTRA that Cyrus 3.6 prints at a place of their own. */
static int
placed_key(const char *k)
{
	return strcmp(k, "MBOXTYPE") == 0 || strcmp(k, "XCONVMODSEQ") == 0 ||
	    strcmp(k, "RACLMODSEQ") == 0 || strcmp(k, "QUOTAROOT") == 0;
}

/* UNIQUEID .. POP3_SHOW_AFTER, XCONVMODSEQ, RACLMODSEQ */
static int
add_counters(struct ids_dlist *kv, const struct ids_sync_source *src)
{
	const struct ids_index_header *h = ids_index_header(src->index);
	uint32_t basic, annot;
	int r;

	if ((r = ids_sync_crcs(src, &basic, &annot)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "UNIQUEID", src->entry->uniqueid)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "MBOXNAME", src->entry->name)) < 0 ||
	    (r = add_extra(kv, src, "MBOXTYPE")) < 0 ||
	    (r = ids_dlist_add_num(kv, "SYNC_CRC", basic)) < 0 ||
	    (r = ids_dlist_add_num(kv, "SYNC_CRC_ANNOT", annot)) < 0 ||
	    (r = ids_dlist_add_num(kv, "LAST_UID", h->last_uid)) < 0 ||
	    (r = ids_dlist_add_num(kv, "HIGHESTMODSEQ", h->highestmodseq)) < 0 ||
	    (r = ids_dlist_add_num(kv, "RECENTUID", h->recentuid)) < 0 ||
	    (r = ids_dlist_add_num(kv, "RECENTTIME", h->recenttime)) < 0 ||
	    (r = ids_dlist_add_num(kv, "LAST_APPENDDATE", h->last_appenddate)) < 0 ||
	    (r = ids_dlist_add_num(kv, "POP3_LAST_LOGIN", h->pop3_last_login)) < 0 ||
	    (r = ids_dlist_add_num(kv, "POP3_SHOW_AFTER", h->pop3_show_after)) < 0 ||
	    (r = add_extra(kv, src, "XCONVMODSEQ")) < 0)
		return r;
	return add_extra(kv, src, "RACLMODSEQ");
}

/* UIDVALIDITY .. FOLDERMODSEQ, the other EXTRA keys, ANNOTATIONS */
static int
add_identity(struct ids_dlist *kv, const struct ids_sync_source *src)
{
	const struct ids_index_header *h = ids_index_header(src->index);
	const struct ids_dlist *c;
	char opts[8], *acl = ids_sync_acl_string(src->entry);
	int r;

	/*
	 * Cyrus reads OPT_POP3_NEW_UIDL into the header of any folder that
	 * holds no message (mailbox_buf_to_index_header), and so reports it
	 */
	ids_sync_options(h->exists ? h->options : h->options | OPT_POP3_NEW_UIDL, opts);
	if (acl == NULL)
		return -ENOMEM;
	if ((r = ids_dlist_add_num(kv, "UIDVALIDITY", h->uidvalidity)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "PARTITION", src->entry->partition)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "ACL", acl)) < 0 ||
	    (r = ids_dlist_add_atom(kv, "OPTIONS", opts)) < 0)
		goto out;
	if (src->header->quotaroot)
		r = ids_dlist_add_atom(kv, "QUOTAROOT", src->header->quotaroot);
	else
		r = add_extra(kv, src, "QUOTAROOT");
	if (r == 0 && h->createdmodseq)
		r = ids_dlist_add_num(kv, "CREATEDMODSEQ", h->createdmodseq);
	if (r == 0 && src->entry->foldermodseq)
		r = ids_dlist_add_num(kv, "FOLDERMODSEQ", src->entry->foldermodseq);
	for (c = src->store && src->store->extra ? src->store->extra->head : NULL;
	    r == 0 && c; c = c->next)
		if (!placed_key(c->name))
			r = ids_dlist_add_child(kv, NULL, ids_dlist_copy(c));
	if (r == 0 && src->store && src->store->annots && src->store->annots->head)
		r = ids_dlist_add_child(kv, "ANNOTATIONS", ids_dlist_copy(src->store->annots));
out:
	free(acl);
	return r;
}

int
ids_sync_mailbox_kvlist(const struct ids_sync_source *src, int flags, struct ids_dlist **out)
{
	struct ids_dlist *kv = ids_dlist_new_kvlist();
	int r;

	*out = NULL;
	if (kv == NULL)
		return -ENOMEM;
	if ((r = add_counters(kv, src)) < 0 || (r = add_identity(kv, src)) < 0 ||
	    ((flags & IDS_SYNC_RECORDS) && (r = add_records(kv, src)) < 0)) {
		ids_dlist_free(kv);
		return r;
	}
	*out = kv;
	return 0;
}

int
ids_sync_mailbox_state(struct ids_mailbox *mb, int flags, struct ids_dlist **out)
{
	struct ids_sync_source src;
	struct ids_sync_store st;
	struct ids_header hdr;
	struct ids_index *idx = NULL;
	int ifd = ids_mailbox_metafd(mb, IDS_META_INDEX), r;

	ids_header_init(&hdr);
	ids_sync_store_init(&st);
	*out = NULL;
	if ((r = ids_index_open(ifd, &idx)) < 0 ||
	    (r = ids_header_read(ids_mailbox_metafd(mb, IDS_META_HEADER), &hdr, NULL)) < 0 ||
	    (r = ids_sync_store_read(ifd, &st)) < 0)
		goto out;
	src.entry = &mb->entry;
	src.header = &hdr;
	src.index = idx;
	src.store = &st;
	r = ids_sync_mailbox_kvlist(&src, flags, out);
out:
	ids_index_free(idx);
	ids_header_release(&hdr);
	ids_sync_store_release(&st);
	return r;
}
