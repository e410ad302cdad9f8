/*
 * fuzz-failure.c - failure records ('F' + uniqueid in mailboxes.db),
 * which `relocated -s` reads straight from the database's map.
 *
 * The input is a record's value, handed over in a buffer of exactly its
 * length (as LMDB hands it: no NUL after it), so that a read past it is
 * caught by the sanitizers in the replay too.  Properties:
 *   - what ids_failure_parse gives is one NUL-terminated line of
 *     printable ASCII that fits its buffer, whatever the bytes;
 *   - a record it reads, written back by ids_failure_format as
 *     "<name>: <reason>" (split at the first ": "), reads back the
 *     same: the same time and the same text;
 *   - the input taken as "name NUL reason" and formatted reads back
 *     with its time, name and reason (escaped), unless cut to fit.
 */
#include <stdlib.h>
#include <string.h>

#include "failure.h"
#include "fuzz.h"

static void
check_text(const struct ids_failure *f)
{
	size_t n = strnlen(f->text, sizeof(f->text));
	size_t i;

	if (n == sizeof(f->text))
		fuzz_fail("failure text not NUL-terminated in its buffer");
	for (i = 0; i < n; i++)
		if ((unsigned char)f->text[i] < 0x20 || (unsigned char)f->text[i] > 0x7e)
			fuzz_fail("failure text holds a byte that is not printable ASCII");
}

/* Parses the len bytes at data from an exact-size copy. */
static int
parse_exact(const void *data, size_t len, struct ids_failure *f)
{
	char *copy = malloc(len ? len : 1);
	int r;

	if (copy == NULL)
		abort();
	memcpy(copy, data, len);
	r = ids_failure_parse(copy, len, f);
	free(copy);
	check_text(f);
	return r;
}

/* A record that was read, written back, reads back the same. */
static void
round_trip(const struct ids_failure *f)
{
	struct ids_failure g;
	char name[IDS_FAILURE_MAX + 4], rec[IDS_FAILURE_MAX];
	const char *sep = strstr(f->text, ": ");
	const char *reason = sep ? sep + 2 : "";
	size_t n;

	if (strlen(f->text) + 32 > IDS_FAILURE_MAX || sep == NULL)
		return;		/* cut to fit, or not "<name>: <reason>" */
	memcpy(name, f->text, (size_t)(sep - f->text));
	name[sep - f->text] = '\0';
	n = ids_failure_format(rec, sizeof(rec), f->when, name, reason);
	if (n >= sizeof(rec) || rec[n] != '\0')
		fuzz_fail("formatted record overflows its buffer");
	if (parse_exact(rec, n, &g) < 0)
		fuzz_fail("a formatted record does not parse");
	if (g.when != f->when || strcmp(g.text, f->text) != 0)
		fuzz_fail("a record written back reads back different");
}

static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* "name NUL reason" formatted, then read. */
static void
format_parse(const uint8_t *data, size_t size)
{
	struct ids_failure g;
	char name[256], reason[1024], rec[IDS_FAILURE_MAX];
	const uint8_t *nul = memchr(data, '\0', size);
	size_t nl, rl, n;

	if (nul == NULL || (nl = (size_t)(nul - data)) >= sizeof(name) ||
	    (rl = size - nl - 1) >= sizeof(reason) || memchr(nul + 1, '\0', rl) != NULL)
		return;
	memcpy(name, data, nl);
	name[nl] = '\0';
	memcpy(reason, nul + 1, rl);
	reason[rl] = '\0';
	n = ids_failure_format(rec, sizeof(rec), 1700000000, name, reason);
	if (parse_exact(rec, n, &g) < 0 || g.when != 1700000000)
		fuzz_fail("a formatted record does not read back its time");
	if (strchr(rec, '\n') != NULL)
		fuzz_fail("a formatted record is more than one line");
	if (nl + rl + 32 < IDS_FAILURE_MAX && printable(name) && printable(reason) &&
	    (strncmp(g.text, name, nl) != 0 || strncmp(g.text + nl, ": ", 2) != 0 ||
	    strcmp(g.text + nl + 2, reason) != 0))
		fuzz_fail("a printable name and reason do not read back as written");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ids_failure f;

	if (size > (1u << 16))
		return 0;
	if (parse_exact(data, size, &f) == 0)
		round_trip(&f);
	format_parse(data, size);
	return 0;
}
