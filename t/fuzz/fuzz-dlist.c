/*
 * fuzz-dlist.c - the dlist parser (mailboxes.db values, cyrus.header).
 * Property: whatever parses prints, and the print parses back to a
 * tree that prints the same bytes.
 */
#include <string.h>

#include "buf.h"
#include "dlist.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ids_buf a = IDS_BUF_INIT, b = IDS_BUF_INIT;
	struct ids_dlist *dl = NULL, *again = NULL;
	size_t used;

	if (ids_dlist_parse((const char *)data, size, &dl, &used) == 0) {
		if (used > size)
			fuzz_fail("consumed more bytes than given");
		if (ids_dlist_print(dl, &a) == 0) {
			if (ids_dlist_parse(a.s, a.len, &again, NULL) < 0)
				fuzz_fail("a printed dlist does not parse");
			if (ids_dlist_print(again, &b) == 0 &&
			    (a.len != b.len || memcmp(a.s, b.s, a.len) != 0))
				fuzz_fail("print(parse(print(x))) != print(x)");
		}
	}
	ids_dlist_free(dl);
	ids_dlist_free(again);
	ids_buf_release(&a);
	ids_buf_release(&b);
	return 0;
}
