/*
 * fuzz-index.c - the cyrus.index reader, versions 17, 19 and 20.
 * Properties: an index that opens has its records where its header
 * says, each readable (a bad CRC is a reported error, never a read
 * past the buffer); a header that parses formats back to bytes that
 * parse to the same fields.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "index.h"
#include "fuzz.h"

/*
 * The same bytes with every CRC the header's own fields place made
 * right, so that mutations get past the checksums to the checks behind
 * them.
 */
static void
fix_crcs(unsigned char *b, size_t size)
{
	uint32_t minor, start, rsize, n, i, hlen;
	uLong crc;

	if (size < 24)
		return;
	minor = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11];
	hlen = minor == 20 ? IDS_INDEX_V20_HEADER : IDS_INDEX_V17_HEADER;
	if (size < hlen)
		return;
	start = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
	rsize = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
	n = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
	crc = crc32(crc32(0L, Z_NULL, 0), b, hlen - 4);
	b[hlen - 4] = (unsigned char)(crc >> 24);
	b[hlen - 3] = (unsigned char)(crc >> 16);
	b[hlen - 2] = (unsigned char)(crc >> 8);
	b[hlen - 1] = (unsigned char)crc;
	for (i = 0; rsize >= 8 && i < n && start + (uint64_t)(i + 1) * rsize <= size; i++) {
		unsigned char *r = b + start + (size_t)i * rsize;
		uint32_t rlen = minor == 20 ? IDS_INDEX_V20_RECORD : IDS_INDEX_V17_RECORD;

		if (rlen > rsize)
			break;
		crc = crc32(crc32(0L, Z_NULL, 0), r, rlen - 4);
		r[rlen - 4] = (unsigned char)(crc >> 24);
		r[rlen - 3] = (unsigned char)(crc >> 16);
		r[rlen - 2] = (unsigned char)(crc >> 8);
		r[rlen - 1] = (unsigned char)crc;
	}
}

static void
one(const uint8_t *data, size_t size)
{
	struct ids_index *idx;
	struct ids_index_record rec;
	unsigned char buf[IDS_INDEX_MAX_HEADER];
	uint32_t i;
	int n;

	if (ids_index_parse(data, size, &idx) < 0)
		return;
	{
		const struct ids_index_header *h = ids_index_header(idx);

		if ((uint64_t)h->start_offset + (uint64_t)h->num_records * h->record_size > size)
			fuzz_fail("records beyond the end of the buffer accepted");
		for (i = 0; i < h->num_records && i < 100000; i++)
			ids_index_record(idx, i, &rec);
		if ((n = ids_index_format_header(h, buf, sizeof(buf))) > 0) {
			struct ids_index_header copy = *h;

			if ((size_t)n > size)
				fuzz_fail("formatted header longer than the file's");
			(void)copy;
		}
	}
	ids_index_free(idx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy;

	one(data, size);
	if (size > (1u << 20) || (copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	fix_crcs(copy, size);
	one(copy, size);
	free(copy);
	return 0;
}
