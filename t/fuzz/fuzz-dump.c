/*
 * fuzz-dump.c - the dump importer of ctl_mboxlist -u: the walk of the
 * outer object, every entry's checks and the checks across entries,
 * up to (not including) the mailboxes.db transaction.
 *
 * The importer lives in the tool, as static functions; the target
 * includes the tool's source with its main() renamed, so that what is
 * fuzzed is exactly what the tool runs.  Property: every entry the
 * importer accepts encodes to mailboxes.db records that decode back to
 * the same name, uniqueid and type.
 */
#include <stdint.h>
#include <stddef.h>

int ctl_mboxlist_main(int argc, char **argv);
#define main ctl_mboxlist_main
#include "../../src/ctl_mboxlist/ctl_mboxlist.c"
#undef main

#include "fuzz.h"

static void
check_encoding(const struct ids_mbentry *e)
{
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_mbentry back;

	ids_mbentry_init(&back);
	if (ids_mbentry_encode_n(e, &b) == 0) {
		if (ids_mbentry_decode_n(&back, e->name, b.s, b.len) < 0)
			fuzz_fail("an accepted entry's N record does not decode");
		if (strcmp(back.uniqueid, e->uniqueid) != 0 || strcmp(back.mbtype, e->mbtype) != 0)
			fuzz_fail("an accepted entry's N record decodes differently");
	}
	ids_mbentry_release(&back);
	ids_buf_release(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct import imp = { fuzz_config(), NULL, 0, 0, 0, NULL, NULL };
	struct scan s = { (const char *)data, (const char *)data + size, 1 };
	static char *name[] = { (char *)"ctl_mboxlist", NULL };
	size_t i;

	tool_init(name);
	if (scan_dump(&s, &imp) == 0) {
		check_duplicate_names(&imp);
		check_duplicate_ids(&imp);
		for (i = 0; i < imp.n; i++)
			check_encoding(&imp.v[i].e);
	}
	import_release(&imp);
	return 0;
}
