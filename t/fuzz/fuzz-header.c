/*
 * fuzz-header.c - the cyrus.header reader, both formats.  Property: a
 * header that parses and can be written (ids_header_format refuses
 * values Cyrus could not read back) parses again to the same bytes.
 */
#include <string.h>

#include "buf.h"
#include "header.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ids_buf a = IDS_BUF_INIT, b = IDS_BUF_INIT;
	struct ids_header h, again;

	ids_header_init(&h);
	ids_header_init(&again);
	if (ids_header_parse(&h, (const char *)data, size) == 0 && h.name && h.uniqueid &&
	    ids_header_format(&h, &a) == 0) {
		if (ids_header_parse(&again, a.s, a.len) < 0)
			fuzz_fail("a written header does not parse");
		if (ids_header_format(&again, &b) < 0 || a.len != b.len ||
		    memcmp(a.s, b.s, a.len) != 0)
			fuzz_fail("format(parse(format(x))) != format(x)");
	}
	ids_header_release(&h);
	ids_header_release(&again);
	ids_buf_release(&a);
	ids_buf_release(&b);
	return 0;
}
