/*
 * fuzz-dump.c - the dump importer of ctl_mboxlist -u: the walk of the
 * outer object, every entry's checks and the checks across entries,
 * up to (not including) the mailboxes.db transaction.
 *
 * The importer is the library's (dump.h), the one ctl_mboxlist runs.
 * Property: every entry the
 * importer accepts encodes to mailboxes.db records that decode back to
 * the same name, uniqueid and type.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "buf.h"
#include "dump.h"
#include "mbentry.h"
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
	struct ids_dump imp = IDS_DUMP_INIT(fuzz_config(), NULL, NULL);
	size_t i;

	if (ids_dump_read(&imp, (const char *)data, size) == 0)
		for (i = 0; i < imp.n; i++)
			check_encoding(&imp.v[i].e);
	ids_dump_release(&imp);
	return 0;
}
