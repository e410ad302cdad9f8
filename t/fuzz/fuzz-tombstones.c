/*
 * fuzz-tombstones.c - one line of an owner's tombstone record
 * (spool-layout.md, "Tombstones on disk"), which reconstruct -m reads
 * from the spool when mailboxes.db is lost.
 *
 * The input is a line, handed over in a buffer of exactly its length
 * (the reader hands each line without its '\n' and without a NUL), so
 * that a read past it is caught by the sanitizers in the replay too.
 * Properties:
 *   - what ids_tombstones_parse accepts is a tombstone: a name that
 *     parses, a valid uniqueid, a type with 'd';
 *   - written back by ids_tombstones_format it is one kvlist and a
 *     newline, which reads back the same, field by field, also when a
 *     record holds it between two others (the reader's way, with the
 *     bytes used).
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mbentry.h"
#include "mboxname.h"
#include "tombstones.h"
#include "fuzz.h"

static int
parse_exact(const void *data, size_t len, struct ids_mbentry *e)
{
	char *copy = malloc(len ? len : 1);
	int r;

	if (copy == NULL)
		abort();
	memcpy(copy, data, len);
	r = ids_tombstones_parse(copy, len, e, NULL);
	free(copy);
	return r;
}

static void
check(const struct ids_mbentry *e)
{
	struct ids_mbname mb;

	if (e->name == NULL || ids_mbname_parse_internal(&mb, e->name, 0) < 0)
		fuzz_fail("a tombstone line read with a name that does not parse");
	if (e->uniqueid == NULL || ids_uniqueid_check(e->uniqueid) < 0)
		fuzz_fail("a tombstone line read with an invalid uniqueid");
	if (!ids_mbtype_has(e->mbtype, IDS_MBFLAG_DELETED) || ids_mbtype_check(e->mbtype) < 0)
		fuzz_fail("a tombstone line read with a type that is not a tombstone's");
}

static void
round_trip(const struct ids_mbentry *e)
{
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_mbentry g;

	if (ids_tombstones_format(e, &b) < 0)
		fuzz_fail("a tombstone read cannot be written");
	if (b.len == 0 || b.s[b.len - 1] != '\n')
		fuzz_fail("a tombstone is written without its newline");
	ids_mbentry_init(&g);
	if (parse_exact(b.s, b.len - 1, &g) < 0)
		fuzz_fail("a tombstone written does not read back");
	{
		/* Between two others, as a record holds it. */
		struct ids_buf f = IDS_BUF_INIT;
		struct ids_mbentry h;
		size_t used = 0;

		if (ids_tombstones_format(e, &f) < 0 || ids_buf_add(&f, b.s, b.len) < 0 ||
		    ids_tombstones_format(e, &f) < 0)
			fuzz_fail("out of memory");
		ids_mbentry_init(&h);
		if (ids_tombstones_parse(f.s + b.len, f.len - b.len, &h, &used) < 0 ||
		    used != b.len - 1 || strcmp(h.name, e->name) != 0)
			fuzz_fail("a tombstone between two others does not read back alone");
		ids_mbentry_release(&h);
		ids_buf_release(&f);
	}
	if (strcmp(g.name, e->name) != 0 || strcmp(g.uniqueid, e->uniqueid) != 0 ||
	    strcmp(g.mbtype, e->mbtype) != 0 || g.uidvalidity != e->uidvalidity ||
	    g.createdmodseq != e->createdmodseq || g.foldermodseq != e->foldermodseq ||
	    g.mtime != e->mtime)
		fuzz_fail("a tombstone written reads back different");
	ids_mbentry_release(&g);
	ids_buf_release(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ids_mbentry e;

	if (size > (1u << 16))
		return 0;
	ids_mbentry_init(&e);
	if (parse_exact(data, size, &e) == 0) {
		check(&e);
		round_trip(&e);
	}
	ids_mbentry_release(&e);
	return 0;
}
