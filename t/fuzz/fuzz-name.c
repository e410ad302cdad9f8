/*
 * fuzz-name.c - the mailbox name parser, all three spellings, and the
 * path resolver behind it.
 *
 * The first byte picks the spelling (internal, external, dbname) and
 * the strict creation rules; the rest is the name.  Properties checked
 * on every name that parses:
 *   - each spelling written back parses to the same name (round trip);
 *   - no path the resolver writes for it, in either layout, is
 *     absolute or holds an empty, "." or ".." component: no name can
 *     reach outside the partition root.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "layout.h"
#include "mboxname.h"
#include "fuzz.h"

#define BUF (2 * IDS_MBNAME_MAX + 64)

static void
check_path(const char *rel)
{
	const char *p = rel;
	size_t n;

	if (*rel == '/' || *rel == '\0')
		fuzz_fail("absolute or empty relative path");
	while (*p) {
		n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			fuzz_fail("empty, '.' or '..' component in a resolved path");
		p += n;
		if (*p == '/')
			p++;
	}
}

static void
check_layouts(const struct ids_mbname *mb)
{
	static const char *const ids[] = {
		"48902a4f-73c2-4e0f-ad4a-3e324fd33853", "k2v9d0x7qmz1w3e8r5t6y4u2",
		"047656355035e6be",
	};
	struct ids_location loc = { mb, ids[mb->nboxes % 3], NULL, IDS_LAYOUT_LEGACY };
	char rel[8192];

	if (ids_path_reldir(fuzz_config(), &loc, rel, sizeof(rel)) >= 0)
		check_path(rel);
	loc.layout = IDS_LAYOUT_UNIQUEID;
	if (ids_path_reldir(fuzz_config(), &loc, rel, sizeof(rel)) >= 0)
		check_path(rel);
}

/* Every spelling of mb reads back as the same internal name. */
static void
round_trip(const struct ids_mbname *mb)
{
	struct ids_mbname again;
	char a[BUF], b[BUF], db[BUF];
	int n;

	if (ids_mbname_internal(mb, a, sizeof(a)) < 0)
		return;
	if (ids_mbname_parse_internal(&again, a, 0) < 0 ||
	    ids_mbname_internal(&again, b, sizeof(b)) < 0 || strcmp(a, b) != 0)
		fuzz_fail("internal spelling does not read back");
	if ((n = ids_mbname_dbname(mb, db, sizeof(db))) >= 0 &&
	    (ids_mbname_parse_dbname(&again, db, (size_t)n, 0) < 0 ||
	    ids_mbname_internal(&again, b, sizeof(b)) < 0 || strcmp(a, b) != 0))
		fuzz_fail("dbname spelling does not read back");
	if (ids_mbname_external(mb, fuzz_config(), db, sizeof(db)) >= 0) {
		struct ids_mbname norm;

		ids_mbname_copy(&norm, mb);
		ids_mbname_normalize(&norm, fuzz_config());
		if (ids_mbname_internal(&norm, a, sizeof(a)) < 0 ||
		    ids_mbname_parse_external(&again, db, fuzz_config(), 0) < 0 ||
		    ids_mbname_internal(&again, b, sizeof(b)) < 0 || strcmp(a, b) != 0)
			fuzz_fail("external spelling does not read back");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ids_mbname mb;
	char *name;
	int r, flags;

	if (size < 1 || size > 4096)
		return 0;
	flags = (data[0] & 4) ? IDS_MBNAME_STRICT : 0;
	if ((name = malloc(size)) == NULL)
		return 0;
	memcpy(name, data + 1, size - 1);
	name[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0: r = ids_mbname_parse_internal(&mb, name, flags); break;
	case 1: r = ids_mbname_parse_external(&mb, name, fuzz_config(), flags); break;
	default: r = ids_mbname_parse_dbname(&mb, (const char *)data + 1, size - 1, flags); break;
	}
	if (r == 0) {
		round_trip(&mb);
		check_layouts(&mb);
	}
	free(name);
	return 0;
}
