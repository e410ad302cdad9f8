/*
 * bench-resolver.c - how fast the path resolver is, against a plain
 * snprintf of a fixed path.
 *
 * Generates 1,000,000 distinct mailbox names (users, subfolders, shared
 * folders, domains, DELETED names) with unique ids, then times, single
 * threaded, best of several rounds:
 *
 *   snprintf "%s"        copying one fixed data path (the baseline)
 *   snprintf "%s/%c/..." formatting a path from its parts
 *   resolve, legacy      ids_path_datadir of an already parsed name
 *   resolve, uniqueid    the same in the uniqueid layout
 *   parse+resolve        ids_mbname_parse_internal, then ids_path_datadir
 *
 * The snprintf and resolve-only rows cycle through 4096 parsed names
 * and ids (a parsed name is 3 KB: a million of them would measure the
 * memory system, not the resolver); the parse+resolve rows walk all
 * 1,000,000 name and id strings.  The target is a resolver costing at
 * most 5 times the baseline.  The fixed path is read through a volatile
 * pointer, so that the compiler cannot turn the snprintf into a memcpy.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "error.h"
#include "layout.h"
#include "mboxname.h"

#define NNAMES	1000000
#define POOL	4096
#define ROUNDS	5

static char **names, **ids;
static struct ids_mbname *pool;
static struct ids_config cfg;
static volatile unsigned long sink;
static const char *volatile fixed = "/var/spool/imap/j/user/john/Sent";

static double
now(void)
{
	struct timespec ts;

	/* CPU time of this thread: other processes on the machine do not count. */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL) {
		perror("strdup");
		exit(1);
	}
	return d;
}

/* Name i: a mix of the shapes a real spool holds. */
static void
make_name(unsigned i, char *buf, size_t size)
{
	static const char *const folders[] = { "Sent", "Drafts", "Trash",
	    "Archive.2019", "Lists.cyrus^devel", "Mailing Lists" };
	const char *f = folders[i % 6];

	switch (i % 8) {
	case 0: snprintf(buf, size, "user.u%06u", i); break;
	case 1: case 2: case 3: snprintf(buf, size, "user.u%06u.%s", i, f); break;
	case 4: snprintf(buf, size, "example%u.com!user.first^last%u.%s", i % 97, i, f); break;
	case 5: snprintf(buf, size, "shared.list%06u", i); break;
	case 6: snprintf(buf, size, "DELETED.user.u%06u.%s.6B033B15", i, f); break;
	default: snprintf(buf, size, "user.u%06u.%s.sub%u", i, f, i % 10); break;
	}
}

static void
make_id(unsigned i, char *buf)
{
	uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15u;

	snprintf(buf, 37, "%08x-%04x-4%03x-a%03x-%012llx", (unsigned)(x >> 32),
	    (unsigned)(x >> 16) & 0xffff, (unsigned)x & 0xfff, i & 0xfff,
	    (unsigned long long)i * 2654435761u);
}

static void
generate(void)
{
	char buf[256], id[40];
	unsigned i;

	names = calloc(NNAMES, sizeof(*names));
	ids = calloc(NNAMES, sizeof(*ids));
	pool = calloc(POOL, sizeof(*pool));
	if (names == NULL || ids == NULL || pool == NULL) {
		perror("calloc");
		exit(1);
	}
	for (i = 0; i < NNAMES; i++) {
		make_name(i, buf, sizeof(buf));
		make_id(i, id);
		names[i] = xstrdup(buf);
		ids[i] = xstrdup(id);
		if (ids_uniqueid_check(id) != 0) {
			fprintf(stderr, "bad id %s\n", id);
			exit(1);
		}
		if (i < POOL && ids_mbname_parse_internal(&pool[i], buf, 0) != 0) {
			fprintf(stderr, "%s: %s\n", buf, ids_errmsg(IDS_EBADNAME));
			exit(1);
		}
	}
}

enum what { SNPRINTF_FIXED, SNPRINTF_PARTS, RESOLVE, PARSE_RESOLVE };

/* One timed pass over NNAMES; returns seconds. */
static double
pass(enum what what, enum ids_layout layout)
{
	char buf[4096];
	unsigned long sum = 0;
	double t0 = now();
	unsigned i;
	int n;

	for (i = 0; i < NNAMES; i++) {
		struct ids_mbname mb;
		struct ids_location loc = { &pool[i % POOL], ids[i % POOL], NULL, layout };

		switch (what) {
		case SNPRINTF_FIXED:
			n = snprintf(buf, sizeof(buf), "%s", fixed);
			break;
		case SNPRINTF_PARTS:
			n = snprintf(buf, sizeof(buf), "%s/%c/user/%s/%s", cfg.partitions[0].path,
			    'j', "john", "Sent");
			break;
		case RESOLVE:
			n = ids_path_datadir(&cfg, &loc, buf, sizeof(buf));
			break;
		default:
			n = ids_mbname_parse_internal(&mb, names[i], 0);
			loc.name = &mb;
			loc.uniqueid = ids[i];
			if (n == 0)
				n = ids_path_datadir(&cfg, &loc, buf, sizeof(buf));
			break;
		}
		if (n < 0 || (size_t)n >= sizeof(buf)) {
			fprintf(stderr, "failed at %u: %s\n", i, ids_errmsg(n));
			exit(1);
		}
		sum += (unsigned long)n + (unsigned char)buf[n - 1];
	}
	sink += sum;
	return now() - t0;
}

static double
best(enum what what, enum ids_layout layout)
{
	double b = 1e9, t;
	int r;

	for (r = 0; r < ROUNDS; r++)
		if ((t = pass(what, layout)) < b)
			b = t;
	return b;
}

static void
row(const char *label, double secs, double base)
{
	printf("%-34s %9.1f ns/op %12.0f ops/s %7.2fx\n", label,
	    secs * 1e9 / NNAMES, NNAMES / secs, secs / base);
}

int
main(void)
{
	static const char conf[] = "configdirectory: /var/lib/imap\n"
	    "partition-default: /var/spool/imap\nhashimapspool: yes\n"
	    "virtdomains: userid\n";
	double base;

	if (ids_config_parse(&cfg, conf, strlen(conf), "bench.conf") != 0) {
		fprintf(stderr, "config: %s\n", ids_errmsg(IDS_ECONFIG));
		return 1;
	}
	generate();
	base = best(SNPRINTF_FIXED, IDS_LAYOUT_LEGACY);
	printf("resolver: %d names, single thread, best of %d rounds\n", NNAMES, ROUNDS);
	row("snprintf \"%s\" fixed path (base)", base, base);
	row("snprintf \"%s/%c/user/%s/%s\"", best(SNPRINTF_PARTS, IDS_LAYOUT_LEGACY), base);
	row("resolve, legacy", best(RESOLVE, IDS_LAYOUT_LEGACY), base);
	row("resolve, uniqueid", best(RESOLVE, IDS_LAYOUT_UNIQUEID), base);
	row("parse+resolve, legacy", best(PARSE_RESOLVE, IDS_LAYOUT_LEGACY), base);
	row("parse+resolve, uniqueid", best(PARSE_RESOLVE, IDS_LAYOUT_UNIQUEID), base);
	ids_config_release(&cfg);
	return 0;
}
