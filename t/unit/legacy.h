/*
 * legacy.h - unit-test helpers that lay down legacy (name-based)
 * folders the way Cyrus 3.6 leaves them, with their mailboxes.db records.
 * Include after unit.h and the library headers.
 */
#ifndef IDS_TEST_LEGACY_H
#define IDS_TEST_LEGACY_H

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "guid.h"
#include "header.h"
#include "index.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxlist.h"

static int
legacy_put_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_put(txn, rock);
}

/* The legacy directory of a name, opened (created) below its root. */
static inline int
legacy_dir(const struct ids_config *cfg, const char *name, int meta, int *fdp)
{
	const struct ids_partition *part = ids_config_partition(cfg, NULL);
	struct ids_mbname mb;
	struct ids_location loc = { &mb, NULL, NULL, IDS_LAYOUT_LEGACY };
	char rel[4096];
	int root, r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0 ||
	    (r = ids_path_reldir(cfg, &loc, rel, sizeof(rel))) < 0 ||
	    (r = ids_opendir_abs(meta ? part->metapath : part->path, &root)) < 0)
		return r;
	r = ids_opendir_beneath(root, rel, IDS_OPEN_CREATE, fdp);
	close(root);
	return r;
}

/*
 * Creates legacy folder name with uniqueid id and nmsgs messages, and
 * its record (mbtype "el").  With a metapartition for header and index,
 * those go there.  Returns 0 or negative.
 */
static inline int
legacy_folder(const struct ids_config *cfg, struct ids_mboxlist *mbl,
    const char *name, const char *id, int nmsgs)
{
	struct ids_index_header ih;
	struct ids_index_record rec;
	struct ids_mbentry e;
	struct ids_header h;
	char file[32], msg[256];
	uint32_t crc;
	int dfd, mfd = -1, hfd, ifd, r, i, n;

	if ((r = legacy_dir(cfg, name, 0, &dfd)) < 0)
		return r;
	if (cfg->metapartition_files && (r = legacy_dir(cfg, name, 1, &mfd)) < 0)
		return r;
	hfd = (cfg->metapartition_files & (1u << IDS_META_HEADER)) ? mfd : dfd;
	ifd = (cfg->metapartition_files & (1u << IDS_META_INDEX)) ? mfd : dfd;
	ids_mbentry_init(&e);
	e.name = strdup(name);
	e.uniqueid = strdup(id);
	e.partition = strdup("default");
	strcpy(e.mbtype, "el");
	e.uidvalidity = 1700000000;
	e.createdmodseq = e.foldermodseq = 1;
	ids_header_init(&h);
	/* Cyrus leaves stale names in headers: write an old one on purpose. */
	if ((r = ids_header_from_mbentry(&h, &e)) < 0)
		return r;
	free(h.name);
	h.name = strdup("user.stale.name");
	if ((r = ids_header_write(hfd, &h, &crc)) < 0)
		return r;
	ids_header_release(&h);
	memset(&ih, 0, sizeof(ih));
	ih.generation_no = 1;
	ih.uidvalidity = e.uidvalidity;
	ih.header_file_crc = crc;
	if ((r = ids_index_write_new(ifd, &ih)) < 0)
		return r;
	for (i = 1; i <= nmsgs; i++) {
		n = snprintf(msg, sizeof(msg), "From: a@example.com\r\nSubject: %s %d\r\n\r\nbody %d\r\n",
		    name, i, i);
		snprintf(file, sizeof(file), "%d.", i);
		memset(&rec, 0, sizeof(rec));
		rec.uid = (uint32_t)i;
		rec.size = (uint64_t)n;
		ids_guid_buf(msg, (size_t)n, rec.guid);
		if ((r = ids_write_durable(dfd, file, msg, (size_t)n, 0600)) < 0 ||
		    (r = ids_index_append(ifd, &rec, 1)) < 0)
			return r;
	}
	close(dfd);
	if (mfd >= 0)
		close(mfd);
	r = ids_mboxlist_write(mbl, legacy_put_txn, &e);
	ids_mbentry_release(&e);
	return r;
}

#endif
