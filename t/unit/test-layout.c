/*
 * test-layout.c - the path resolver: Cyrus's legacy paths (hashing,
 * domains, DELETED, fulldirhash, the real 3.6.1 paths of formats.md
 * section 6), the uniqueid layout, meta and message files, the reverse
 * lookup, and the safety property: no name or id, however hostile,
 * resolves outside the partition root (a table and a randomised test).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxname.h"
#include "unit.h"

#define ROOT	"/var/spool/imap"
#define META	"/var/meta/imap"
#define UUID	"48902a4f-73c2-4e0f-ad4a-3e324fd33853"
#define ID24	"k2v9d0x7qmz1w3e8r5t6y4u2"
#define ID16	"047656355035e6be"

enum { HASH, PLAIN, FULL, NODOM, NCFG };
static struct ids_config cfgs[NCFG];

static void
load(struct ids_config *cfg, const char *extra)
{
	char text[1024];

	snprintf(text, sizeof(text), "configdirectory: /var/lib/imap\n"
	    "partition-default: " ROOT "\nmetapartition-default: " META "\n"
	    "metapartition_files: header index\npartition-other: /srv/other\n%s",
	    extra);
	if (ids_config_parse(cfg, text, strlen(text), "t.conf") != 0)
		fail_msg("config: %s", ids_errmsg(IDS_ECONFIG));
}

static int
setup(void **state)
{
	(void)state;
	load(&cfgs[HASH], "hashimapspool: yes\nvirtdomains: userid\n");
	load(&cfgs[PLAIN], "hashimapspool: no\nvirtdomains: userid\n");
	load(&cfgs[FULL], "hashimapspool: yes\nfulldirhash: yes\nvirtdomains: on\n");
	load(&cfgs[NODOM], "hashimapspool: yes\nvirtdomains: off\n");
	return 0;
}

static int
teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < NCFG; i++)
		ids_config_release(&cfgs[i]);
	return 0;
}

/* Resolves an internal name's directory below the root; "" on error. */
static const char *
reldir(int c, const char *internal, const char *id, enum ids_layout layout)
{
	static char buf[4096];
	struct ids_mbname mb;
	struct ids_location loc = { &mb, id, NULL, layout };

	if (ids_mbname_parse_internal(&mb, internal, 0) != 0)
		fail_msg("%s: %s", internal, ids_errmsg(IDS_EBADNAME));
	if (ids_path_reldir(&cfgs[c], &loc, buf, sizeof(buf)) < 0)
		return "";
	return buf;
}

static void
test_legacy_cyrus(void **state)
{
	static const struct { int cfg; const char *name, *want; } t[] = {
		/* The cases. */
		{ HASH, "example.com!user.john^doe.Sent", "domain/e/example.com/j/user/john^doe/Sent" },
		{ PLAIN, "example.com!user.john^doe.Sent", "domain/example.com/user/john^doe/Sent" },
		{ HASH, "foo.bar", "b/foo/bar" },
		{ HASH, "foo", "f/foo" },
		{ HASH, "DELETED.user.john.Trash.5F3A0000", "u/DELETED/user/john/Trash/5F3A0000" },
		{ HASH, "user.1john", "q/user/1john" },
		{ HASH, "_x", "q/_x" },
		{ HASH, "&AOk-x", "q/&AOk-x" },
		{ HASH, "_x.y", "y/_x/y" },
		{ HASH, "user.John.Sent", "j/user/John/Sent" },
		/* formats.md section 6: real Cyrus 3.6.1 paths. */
		{ HASH, "user.dave.Sent", "d/user/dave/Sent" },
		{ HASH, "DELETED.user.dave.Temp.6B033B15", "u/DELETED/user/dave/Temp/6B033B15" },
		{ HASH, "example.org!user.carol.Mailing Lists",
		  "domain/e/example.org/c/user/carol/Mailing Lists" },
		{ HASH, "shared.news", "n/shared/news" },
		/* More: dots, children inside parents, no hashing, full hashing. */
		{ HASH, "user.john", "j/user/john" },
		{ HASH, "user.john.a^b.c", "j/user/john/a^b/c" },
		{ HASH, "user.john.^hidden", "j/user/john/^hidden" },
		{ HASH, "user.john.Sent.2019", "j/user/john/Sent/2019" },
		{ HASH, "example.com!shared.news", "domain/e/example.com/n/shared/news" },
		{ HASH, "example.com!DELETED.shared.5F", "domain/e/example.com/s/DELETED/shared/5F" },
		{ PLAIN, "user.dave.Sent", "user/dave/Sent" },
		{ PLAIN, "DELETED.user.dave.Temp.6B033B15", "DELETED/user/dave/Temp/6B033B15" },
		{ PLAIN, "shared", "shared" },
		{ FULL, "user.john.Sent", "K/user/john/Sent" },
		{ FULL, "user.john^doe", "K/user/john^doe" },
		{ FULL, "example.com!user.john^doe.Sent", "domain/O/example.com/K/user/john^doe/Sent" },
		{ FULL, "shared.news", "E/shared/news" },
		{ FULL, "foo.bar", "I/foo/bar" },
		{ FULL, "DELETED.user.dave.x.5F", "C/DELETED/user/dave/x/5F" },
		{ FULL, "user.carol", "B/user/carol" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *got = reldir(t[i].cfg, t[i].name, NULL, IDS_LAYOUT_LEGACY);

		if (strcmp(got, t[i].want) != 0)
			fail_msg("%s: got '%s', want '%s'", t[i].name, got, t[i].want);
	}
}

/* The formula of formats.md section 2, written out independently. */
static char
formula(const char *s, int full)
{
	uint32_t n = 0;

	if (!full) {
		unsigned char c = (unsigned char)s[0];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		return (c >= 'a' && c <= 'z') ? (char)c : 'q';
	}
	for (; *s && *s != '.'; s++)
		n = ((n << 3) ^ (n >> 5)) ^ (unsigned char)*s;
	return (char)('A' + n % 23);
}

static void
test_dir_hash(void **state)
{
	static const struct { const char *s; char full; } known[] = {
		{ "john", 'K' }, { "john.doe", 'K' }, { "example.com", 'O' },
		{ "bar", 'I' }, { "user", 'C' }, { "news", 'E' }, { "dave", 'G' },
		{ "carol", 'B' }, { "shared", 'T' }, { "", 'A' },
	};
	char s[64];
	unsigned seed = 7, i, j;

	(void)state;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		assert_int_equal(ids_dir_hash(known[i].s, 1), known[i].full);
	assert_int_equal(ids_dir_hash("", 0), 'q');
	assert_int_equal(ids_dir_hash("Zed", 0), 'z');
	assert_int_equal(ids_dir_hash("\xe9t\xe9", 0), 'q');
	assert_int_equal(ids_dir_hash("[x", 0), 'q');
	assert_int_equal(ids_dir_hash("@x", 0), 'q');
	for (i = 0; i < 20000; i++) {
		size_t n = (size_t)rand_r(&seed) % (sizeof(s) - 1);

		for (j = 0; j < n; j++)
			s[j] = (char)(rand_r(&seed) % 255 + 1);
		s[n] = '\0';
		assert_int_equal(ids_dir_hash(s, 1), formula(s, 1));
		assert_int_equal(ids_dir_hash(s, 0), formula(s, 0));
	}
	/* Long names exercise the shifts beyond 32 bits. */
	memset(s, 'z', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	assert_int_equal(ids_dir_hash(s, 1), formula(s, 1));
}

static void
test_uniqueid_layout(void **state)
{
	static const struct { int cfg; const char *name, *id, *want; } t[] = {
		{ HASH, "user.john", UUID, "j/user/john/" UUID },
		{ HASH, "user.john.Sent.2019", UUID, "j/user/john/" UUID },
		{ HASH, "example.com!user.john^doe.Sent", UUID,
		  "j/user/john.doe@example.com/" UUID },
		{ HASH, "shared.news.x", ID24, "s/shared/" ID24 },
		{ HASH, "example.com!shared.news", ID16, "s/shared@example.com/" ID16 },
		{ HASH, "DELETED.user.dave.Temp.6B033B15", UUID, "d/user/dave/" UUID },
		{ HASH, "example.org!DELETED.news.x.5F", UUID, "n/news@example.org/" UUID },
		{ HASH, "user.1x", ID16, "q/user/1x/" ID16 },
		{ PLAIN, "user.john.Sent", UUID, "user/john/" UUID },
		{ PLAIN, "news", ID24, "news/" ID24 },
		{ FULL, "user.john.Sent", UUID, "K/user/john/" UUID },
		{ FULL, "example.com!user.john^doe", UUID, "K/user/john.doe@example.com/" UUID },
		{ FULL, "shared.news", UUID, "T/shared/" UUID },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *got = reldir(t[i].cfg, t[i].name, t[i].id, IDS_LAYOUT_UNIQUEID);

		if (strcmp(got, t[i].want) != 0)
			fail_msg("%s: got '%s', want '%s'", t[i].name, got, t[i].want);
	}
}

static int
path_of(int c, const char *internal, const char *id, enum ids_layout layout,
    const char *part, int what, uint32_t uid, char *buf, size_t size)
{
	struct ids_mbname mb;
	struct ids_location loc = { &mb, id, part, layout };

	assert_int_equal(ids_mbname_parse_internal(&mb, internal, 0), 0);
	switch (what) {
	case 'd': return ids_path_datadir(&cfgs[c], &loc, buf, size);
	case 'r': return ids_path_reldir(&cfgs[c], &loc, buf, size);
	case 'm': return ids_path_message(&cfgs[c], &loc, uid, buf, size);
	case 'M': return ids_path_metadir(&cfgs[c], &loc, (enum ids_metafile)uid, buf, size);
	default: return ids_path_metafile(&cfgs[c], &loc, (enum ids_metafile)uid, buf, size);
	}
}

#define WANT(expr, s) do { \
	int n_ = (expr); \
	if (n_ != (int)strlen(s) || strcmp(buf, (s)) != 0) \
		fail_msg("got %d '%s', want '%s'", n_, buf, (s)); \
} while (0)

static void
test_files(void **state)
{
	char buf[4096];
	const int L = IDS_LAYOUT_LEGACY, U = IDS_LAYOUT_UNIQUEID;

	(void)state;
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, NULL, 'd', 0, buf, sizeof(buf)),
	    ROOT "/d/user/dave/Sent");
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, "default", 'm', 7, buf, sizeof(buf)),
	    ROOT "/d/user/dave/Sent/7.");
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, NULL, 'm', UINT32_MAX, buf, sizeof(buf)),
	    ROOT "/d/user/dave/Sent/4294967295.");
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, NULL, 'f', IDS_META_HEADER, buf, sizeof(buf)),
	    META "/d/user/dave/Sent/cyrus.header");
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, NULL, 'f', IDS_META_INDEX, buf, sizeof(buf)),
	    META "/d/user/dave/Sent/cyrus.index");
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, NULL, 'f', IDS_META_CACHE, buf, sizeof(buf)),
	    ROOT "/d/user/dave/Sent/cyrus.cache");
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, NULL, 'M', IDS_META_INDEX, buf, sizeof(buf)),
	    META "/d/user/dave/Sent");
	WANT(path_of(HASH, "user.dave.Sent", NULL, L, NULL, 'M', IDS_META_SQUAT, buf, sizeof(buf)),
	    ROOT "/d/user/dave/Sent");
	WANT(path_of(HASH, "user.dave.Sent", UUID, U, NULL, 'f', IDS_META_HEADER, buf, sizeof(buf)),
	    META "/d/user/dave/" UUID "/cyrus.header");
	WANT(path_of(HASH, "user.dave.Sent", UUID, U, "other", 'f', IDS_META_HEADER, buf, sizeof(buf)),
	    "/srv/other/d/user/dave/" UUID "/cyrus.header");
	WANT(path_of(HASH, "user.dave.Sent", UUID, U, "other", 'm', 1, buf, sizeof(buf)),
	    "/srv/other/d/user/dave/" UUID "/1.");
	WANT(path_of(HASH, "user.dave.Sent", UUID, U, NULL, 'r', 0, buf, sizeof(buf)),
	    "d/user/dave/" UUID);
	/* Errors. */
	assert_int_equal(path_of(HASH, "user.d", NULL, L, "nope", 'd', 0, buf, sizeof(buf)),
	    IDS_EPARTITION);
	assert_string_equal(ids_errmsg(IDS_EPARTITION), "unknown partition 'nope'");
	assert_int_equal(path_of(HASH, "user.d", NULL, L, NULL, 'm', 0, buf, sizeof(buf)),
	    IDS_EINVAL);
	assert_int_equal(path_of(HASH, "user.d", NULL, L, NULL, 'f', IDS_META_NKINDS, buf,
	    sizeof(buf)), IDS_EINVAL);
	assert_int_equal(path_of(HASH, "user.d", NULL, L, NULL, 'M', (uint32_t)-1, buf,
	    sizeof(buf)), IDS_EINVAL);
	assert_int_equal(path_of(HASH, "user.d", NULL, U, NULL, 'd', 0, buf, sizeof(buf)),
	    IDS_EBADID);
	assert_int_equal(path_of(HASH, "user.d", "../../x", U, NULL, 'd', 0, buf, sizeof(buf)),
	    IDS_EBADID);
	assert_int_equal(path_of(HASH, "user.d", NULL, (enum ids_layout)2, NULL, 'd', 0, buf,
	    sizeof(buf)), IDS_EINVAL);
}

/* Exactly the length fits; one byte less is IDS_ETOOLONG, never a cut path. */
static void
test_buffer_sizes(void **state)
{
	const char *want = ROOT "/d/user/dave/Sent/12.";
	size_t n = strlen(want), size;
	char buf[128];

	(void)state;
	for (size = 0; size <= n + 1; size++) {
		int r;

		memset(buf, 'x', sizeof(buf));
		r = path_of(HASH, "user.dave.Sent", NULL, IDS_LAYOUT_LEGACY, NULL, 'm', 12,
		    buf, size);
		if (size <= n) {
			assert_int_equal(r, IDS_ETOOLONG);
			if (size > 0)
				assert_int_equal(buf[0], '\0');
			assert_int_equal(buf[size], 'x');	/* nothing written past size */
		} else {
			assert_int_equal(r, (int)n);
			assert_string_equal(buf, want);
		}
	}
}

static void
test_layout_names(void **state)
{
	enum ids_layout l;

	(void)state;
	assert_string_equal(ids_layout_name(IDS_LAYOUT_LEGACY), "legacy");
	assert_string_equal(ids_layout_name(IDS_LAYOUT_UNIQUEID), "uniqueid");
	assert_null(ids_layout_name((enum ids_layout)2));
	assert_int_equal(ids_layout_parse("legacy", &l), 0);
	assert_int_equal(l, IDS_LAYOUT_LEGACY);
	assert_int_equal(ids_layout_parse("uniqueid", &l), 0);
	assert_int_equal(l, IDS_LAYOUT_UNIQUEID);
	assert_int_equal(ids_layout_parse("Legacy", &l), IDS_EINVAL);
	assert_int_equal(ids_layout_parse("", &l), IDS_EINVAL);
}

static void
test_location_from_entry(void **state)
{
	struct ids_mbentry e;
	struct ids_mbname mb;
	struct ids_location loc;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.name = (char *)"user.dave.Sent";
	e.uniqueid = (char *)UUID;
	e.partition = (char *)"other";
	strcpy(e.mbtype, "el");
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), 0);
	assert_ptr_equal(loc.name, &mb);
	assert_string_equal(mb.localpart, "dave");
	assert_string_equal(loc.uniqueid, UUID);
	assert_string_equal(loc.partition, "other");
	assert_int_equal(loc.layout, IDS_LAYOUT_LEGACY);
	strcpy(e.mbtype, "e");
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), 0);
	assert_int_equal(loc.layout, IDS_LAYOUT_UNIQUEID);
	strcpy(e.mbtype, "edl");
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), IDS_ENOTFOUND);
	strcpy(e.mbtype, "e");
	e.partition = NULL;
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), IDS_EPARTITION);
	e.name = (char *)"user..x";
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), IDS_EBADNAME);
	e.name = NULL;
	assert_int_equal(ids_location_from_entry(&e, &mb, &loc), IDS_EBADNAME);
}

/* What ids_path_reverse must find for each path (HASH config). */
static const struct rev {
	const char *path;
	int rc;
	enum ids_layout layout;
	enum ids_pathkind kind;
	const char *name;	/* legacy: internal name; uniqueid: owner */
	const char *id;
	uint32_t uid;
	int metaroot;
} revs[] = {
	{ ROOT "/d/user/dave/Sent", 0, IDS_LAYOUT_LEGACY, IDS_PATH_FOLDER, "user.dave.Sent", NULL, 0, 0 },
	{ ROOT "/d/user/dave/Sent/12.", 0, IDS_LAYOUT_LEGACY, IDS_PATH_MESSAGE, "user.dave.Sent", NULL, 12, 0 },
	{ ROOT "/d/user/dave/Sent/4294967295.", 0, IDS_LAYOUT_LEGACY, IDS_PATH_MESSAGE, "user.dave.Sent", NULL, 4294967295u, 0 },
	{ ROOT "/d/user/dave/Sent/4294967296.", 0, IDS_LAYOUT_LEGACY, IDS_PATH_OTHER, "user.dave.Sent", NULL, 0, 0 },
	{ ROOT "/d/user/dave/Sent/0.", 0, IDS_LAYOUT_LEGACY, IDS_PATH_OTHER, "user.dave.Sent", NULL, 0, 0 },
	{ ROOT "/d/user/dave/Sent/012.", 0, IDS_LAYOUT_LEGACY, IDS_PATH_OTHER, "user.dave.Sent", NULL, 0, 0 },
	{ META "/d/user/dave/Sent/cyrus.index", 0, IDS_LAYOUT_LEGACY, IDS_PATH_META, "user.dave.Sent", NULL, 0, 1 },
	{ ROOT "/d/user/dave/Sent/cyrus.index.NEW", 0, IDS_LAYOUT_LEGACY, IDS_PATH_OTHER, "user.dave.Sent", NULL, 0, 0 },
	{ ROOT "/d/user/dave", 0, IDS_LAYOUT_LEGACY, IDS_PATH_FOLDER, "user.dave", NULL, 0, 0 },
	{ ROOT "/domain/e/example.com/j/user/john^doe/Sent", 0, IDS_LAYOUT_LEGACY, IDS_PATH_FOLDER, "example.com!user.john^doe.Sent", NULL, 0, 0 },
	{ ROOT "//u/DELETED/user/dave/Temp/6B033B15/", 0, IDS_LAYOUT_LEGACY, IDS_PATH_FOLDER, "DELETED.user.dave.Temp.6B033B15", NULL, 0, 0 },
	{ ROOT "/n/shared/news/cyrus.header", 0, IDS_LAYOUT_LEGACY, IDS_PATH_META, "shared.news", NULL, 0, 0 },
	{ ROOT "/j/user/john/" UUID, 0, IDS_LAYOUT_UNIQUEID, IDS_PATH_FOLDER, "john", UUID, 0, 0 },
	{ ROOT "/j/user/john.doe@example.com/" UUID "/5.", 0, IDS_LAYOUT_UNIQUEID, IDS_PATH_MESSAGE, "john.doe@example.com", UUID, 5, 0 },
	{ META "/s/shared/" ID16 "/cyrus.header", 0, IDS_LAYOUT_UNIQUEID, IDS_PATH_META, "shared", ID16, 0, 1 },
	{ ROOT "/s/shared@example.com/" ID24 "/x.tmp", 0, IDS_LAYOUT_UNIQUEID, IDS_PATH_OTHER, "shared@example.com", ID24, 0, 0 },
	/* Deeper than a uniqueid folder: only the legacy reading fits. */
	{ ROOT "/j/user/john/" UUID "/x/y", 0, IDS_LAYOUT_LEGACY, IDS_PATH_FOLDER, "user.john." UUID ".x.y", NULL, 0, 0 },
	/* Slots above the folders. */
	{ ROOT, 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	{ META, 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 1 },
	{ ROOT "/d", 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	{ ROOT "/d/user", 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	{ ROOT "/domain", 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	{ ROOT "/domain/e", 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	{ ROOT "/domain/e/example.com", 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	{ ROOT "/domain/e/example.com/j", 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	{ ROOT "/domain/e/example.com/j/user", 0, IDS_LAYOUT_LEGACY, IDS_PATH_SLOT, NULL, NULL, 0, 0 },
	/* Not a path either layout writes. */
	{ ROOT "/x/user/dave", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/dd/user/dave", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/d/user/dave/a.b/c", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/x/user/john/" UUID, IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/domain/x/example.com/j/user/john", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/domain/e/exa^mple.com/j/user/john", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/d/user/da\x01ve", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/d/user/dave/Sent/1./x", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/u/DELETED", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/q/cyrus.index", IDS_ENOTFOUND, 0, 0, NULL, NULL, 0, 0 },
	{ "/etc/passwd", IDS_EPARTITION, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "x/d/user/dave", IDS_EPARTITION, 0, 0, NULL, NULL, 0, 0 },
	{ "/var/spool", IDS_EPARTITION, 0, 0, NULL, NULL, 0, 0 },
	{ "var/spool/imap/d/user/dave", IDS_EINVAL, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/../../etc/passwd", IDS_EINVAL, 0, 0, NULL, NULL, 0, 0 },
	{ ROOT "/d/user/dave/./Sent", IDS_EINVAL, 0, 0, NULL, NULL, 0, 0 },
	{ "", IDS_EINVAL, 0, 0, NULL, NULL, 0, 0 },
};

static void
check_rev(const struct rev *t, const struct ids_pathinfo *pi)
{
	char buf[600];

	assert_int_equal(pi->layout, t->layout);
	assert_int_equal(pi->kind, t->kind);
	assert_int_equal(pi->metaroot, t->metaroot);
	assert_string_equal(pi->partition->name, "default");
	if (t->kind == IDS_PATH_SLOT)
		return;
	if (t->layout == IDS_LAYOUT_LEGACY) {
		ids_mbname_internal(&pi->name, buf, sizeof(buf));
		assert_string_equal(buf, t->name);
	} else {
		assert_string_equal(pi->owner, t->name);
		assert_string_equal(pi->uniqueid, t->id);
		assert_int_equal(pi->is_user, strncmp(t->name, "shared", 6) != 0);
	}
	if (t->kind == IDS_PATH_MESSAGE)
		assert_int_equal(pi->uid, t->uid);
	if (t->kind == IDS_PATH_META)
		assert_string_equal(ids_metafile_name(pi->metakind), pi->file);
}

static void
test_reverse(void **state)
{
	static struct ids_pathinfo pi;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(revs) / sizeof(revs[0]); i++) {
		int r = ids_path_reverse(&cfgs[HASH], revs[i].path, &pi);

		if (r != revs[i].rc)
			fail_msg("%s: %d (%s), want %d", revs[i].path, r, ids_errmsg(r),
			    revs[i].rc);
		if (r == 0)
			check_rev(&revs[i], &pi);
	}
	/* Forcing the legacy reading of a uniqueid-shaped path. */
	assert_int_equal(ids_path_reverse_layout(&cfgs[HASH], ROOT "/j/user/john/" UUID,
	    IDS_LAYOUT_LEGACY, &pi), 0);
	assert_int_equal(pi.layout, IDS_LAYOUT_LEGACY);
	assert_string_equal(pi.name.boxes[0], UUID);
	assert_int_equal(ids_path_reverse_layout(&cfgs[HASH], ROOT "/d/user/dave/Sent",
	    IDS_LAYOUT_UNIQUEID, &pi), IDS_ENOTFOUND);
	assert_int_equal(ids_path_reverse_layout(&cfgs[HASH], ROOT, (enum ids_layout)5, &pi),
	    IDS_EINVAL);
	/* Without hashing a top-level "domain" introduces a domain. */
	assert_int_equal(ids_path_reverse(&cfgs[PLAIN], ROOT "/domain/example.com/user/x",
	    &pi), 0);
	assert_string_equal(pi.name.domain, "example.com");
	/* ... so the folder "domain.x" reads as the domain x's directory. */
	assert_int_equal(ids_path_reverse(&cfgs[PLAIN], ROOT "/domain/x", &pi), 0);
	assert_int_equal(pi.kind, IDS_PATH_SLOT);
	assert_int_equal(ids_path_reverse(&cfgs[PLAIN], ROOT "/domain/x/1.", &pi), 0);
	assert_int_equal(pi.kind, IDS_PATH_MESSAGE);
	assert_string_equal(pi.name.boxes[0], "domain");
	assert_int_equal(ids_path_reverse(&cfgs[PLAIN], "/srv/other/user/x/" UUID, &pi), 0);
	assert_string_equal(pi.partition->name, "other");
	assert_int_equal(pi.layout, IDS_LAYOUT_UNIQUEID);
}

/* Names of every kind: forward in both layouts, then back. */
static const char *const sample[] = {
	"user.john", "user.john.Sent", "user.john^doe.a^b.c", "example.com!user.john^doe.Sent",
	"shared", "shared.news.x", "example.com!news", "DELETED.user.dave.Temp.6B033B15",
	"example.org!DELETED.news.x.5F", "user.1x", "user.john.&AOk-", "user.a@b.c",
	"domain.x", "user.user.user", "_x.y",
};

static void
roundtrip_one(int c, const char *name, enum ids_layout layout, int what)
{
	static struct ids_pathinfo pi;
	struct ids_mbname mb;
	char path[4096], back[600];
	int r;

	assert_int_equal(ids_mbname_parse_internal(&mb, name, 0), 0);
	r = path_of(c, name, UUID, layout, NULL, what, what == 'm' ? 17 : IDS_META_HEADER,
	    path, sizeof(path));
	assert_true(r > 0);
	if ((r = ids_path_reverse(&cfgs[c], path, &pi)) != 0)
		fail_msg("%s: %s: %s", name, path, ids_errmsg(r));
	if (pi.layout != layout)
		fail_msg("%s: %s read in the wrong layout", name, path);
	assert_int_equal(pi.kind, what == 'd' ? IDS_PATH_FOLDER :
	    what == 'm' ? IDS_PATH_MESSAGE : IDS_PATH_META);
	assert_int_equal(pi.metaroot, what == 'f');
	if (layout == IDS_LAYOUT_LEGACY) {
		ids_mbname_internal(&pi.name, back, sizeof(back));
		assert_string_equal(back, name);
	} else {
		ids_mbname_owner(&mb, back, sizeof(back));
		assert_string_equal(pi.owner, back);
		assert_string_equal(pi.uniqueid, UUID);
		assert_int_equal(pi.is_user, ids_mbname_is_user(&mb));
	}
}

static void
test_reverse_roundtrip(void **state)
{
	static const int whats[] = { 'd', 'm', 'f' };
	size_t i, w;
	int c, l;

	(void)state;
	for (c = 0; c < NCFG; c++)
		for (i = 0; i < sizeof(sample) / sizeof(sample[0]); i++)
			for (l = 0; l < IDS_LAYOUT_COUNT; l++)
				for (w = 0; w < 3; w++)
					if ((c != NODOM || strchr(sample[i], '!') == NULL) &&
					    !(c == PLAIN && l == IDS_LAYOUT_LEGACY && w == 0 &&
					    strncmp(sample[i], "domain.", 7) == 0))
						roundtrip_one(c, sample[i], (enum ids_layout)l, whats[w]);
}

/*
 * A path is safe when it is root + one or more components, none of
 * them empty, "." or "..", with no control bytes anywhere.
 */
static void
assert_safe(const char *path, const char *root)
{
	size_t n = strlen(root);
	const char *p, *c;

	if (strncmp(path, root, n) != 0 || path[n] != '/')
		fail_msg("'%s' is not below %s", path, root);
	for (p = path + n; *p == '/'; p = c) {
		size_t len;

		c = strchr(p + 1, '/');
		if (c == NULL)
			c = p + strlen(p);
		len = (size_t)(c - p - 1);
		if (len == 0 || (len == 1 && p[1] == '.') ||
		    (len == 2 && p[1] == '.' && p[2] == '.'))
			fail_msg("unsafe component in '%s'", path);
	}
	if (*p != '\0')
		fail_msg("'%s' does not end cleanly", path);
	for (p = path; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			fail_msg("control byte in '%s'", path);
}

/*
 * Hand-made names that never went through the parser: the resolver's
 * own component check must stop each one.
 */
static void
test_hostile_structs(void **state)
{
	static const struct { const char *domain, *local, *deleted, *b0, *b1; } t[] = {
		{ NULL, "..", NULL, NULL, NULL }, { NULL, ".", NULL, NULL, NULL },
		{ NULL, "", NULL, NULL, NULL }, { NULL, "a/b", NULL, NULL, NULL },
		{ NULL, "../../etc", NULL, NULL, NULL }, { NULL, "x\x01", NULL, NULL, NULL },
		{ NULL, NULL, NULL, "..", NULL }, { NULL, NULL, NULL, ".", "x" },
		{ NULL, NULL, NULL, "", "x" }, { NULL, NULL, NULL, "/etc", NULL },
		{ NULL, NULL, NULL, "a\n", NULL }, { NULL, NULL, NULL, NULL, NULL },
		{ "..", "x", NULL, NULL, NULL }, { "a/b", "x", NULL, NULL, NULL },
		{ "", "x", NULL, NULL, NULL }, { ".", NULL, NULL, "x", NULL },
		{ NULL, "x", NULL, "a/../../b", NULL }, { NULL, "x", NULL, "ok", "" },
		{ NULL, "x", NULL, "ok", "/" }, { NULL, "x", "../..", NULL, NULL },
		{ NULL, "x", "", "a", NULL }, { NULL, "x", "a/b", "a", NULL },
		{ NULL, "x", NULL, "\x7f", NULL },
	};
	static const char *const ids[] = { UUID, NULL, "..", "../" "x", "a/b", "" };
	size_t i, k;
	int c, l;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ids_mbname mb;

		memset(&mb, 0, sizeof(mb));
		mb.domain = t[i].domain;
		mb.localpart = t[i].local;
		mb.deleted = t[i].deleted;
		mb.boxes[0] = t[i].b0;
		mb.boxes[1] = t[i].b1;
		mb.nboxes = t[i].b1 ? 2 : t[i].b0 ? 1 : 0;
		for (c = 0; c < NCFG; c++)
			for (l = 0; l < IDS_LAYOUT_COUNT; l++)
				for (k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
					struct ids_location loc = { &mb, ids[k], NULL, (enum ids_layout)l };
					char buf[4096];

					if (ids_path_datadir(&cfgs[c], &loc, buf, sizeof(buf)) >= 0)
						assert_safe(buf, ROOT);
				}
	}
}

/* Hostile names and ids from outside: each is refused with its code. */
static void
test_hostile_inputs(void **state)
{
	static const struct { const char *name, *id; int ext, rc; } t[] = {
		{ "..", UUID, 0, IDS_EBADNAME }, { "user...", UUID, 0, IDS_EBADNAME },
		{ "user.^^", UUID, 0, IDS_EBADNAME }, { "user.^", UUID, 0, IDS_EBADNAME },
		{ "^^", UUID, 0, IDS_EBADNAME }, { "^^.x", UUID, 0, IDS_EBADNAME },
		{ "user/../../etc", UUID, 0, IDS_EBADNAME }, { "../../etc", UUID, 1, IDS_EBADNAME },
		{ "user/../x", UUID, 1, IDS_EBADNAME }, { "user/x/../../..", UUID, 1, IDS_EBADNAME },
		{ "/etc/passwd", UUID, 1, IDS_EBADNAME }, { "user/x@../..", UUID, 1, IDS_EBADNAME },
		{ "user/x@..", UUID, 1, IDS_EBADNAME }, { "..!user.x", UUID, 0, IDS_EBADNAME },
		{ "a/b!user.x", UUID, 0, IDS_EBADNAME }, { "user.x\n", UUID, 0, IDS_EBADNAME },
		{ "user.x\r", UUID, 0, IDS_EBADNAME }, { "user.\x80", UUID, 0, IDS_EBADNAME },
		{ "user.x.\xc0\xaf", UUID, 0, IDS_EBADNAME }, { "user.x^/", UUID, 0, IDS_EBADNAME },
		{ "user./", UUID, 0, IDS_EBADNAME }, { "user.x.y^^z/", UUID, 0, IDS_EBADNAME },
		{ "user.x", "..", 0, IDS_EBADID }, { "user.x", "../../../../etc/passwd", 0, IDS_EBADID },
		{ "user.x", "a/b", 0, IDS_EBADID }, { "user.x", "", 0, IDS_EBADID },
		{ "user.x", "48902a4f-73c2-4e0f-ad4a-3e324fd3385", 0, IDS_EBADID },
		{ "user.x", "48902a4f-73c2-4e0f-ad4a-3e324fd338530", 0, IDS_EBADID },
		{ "user.x", "48902A4F-73C2-4E0F-AD4A-3E324FD33853", 0, IDS_EBADID },
		{ "user.x", "48902a4f/73c2-4e0f-ad4a-3e324fd33853", 0, IDS_EBADID },
		{ "user.x", "k2v9d0x7qmz1w3e8r5t6y4u/", 0, IDS_EBADID },
		{ "user.x", "k2v9d0x7qmz1w3e8r5t6y4u.", 0, IDS_EBADID },
		{ "user.x", "047656355035e6b\n", 0, IDS_EBADID },
		{ "user.x", "%s%s%s%s%s%s%n%n%n%n", 0, IDS_EBADID },
	};
	static char longname[700];
	struct ids_mbname mb;
	size_t i;

	(void)state;
	assert_true(sizeof(t) / sizeof(t[0]) >= 30);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ids_location loc = { &mb, t[i].id, NULL, IDS_LAYOUT_UNIQUEID };
		char buf[4096];
		int r = t[i].ext ? ids_mbname_parse_external(&mb, t[i].name, &cfgs[HASH], 0) :
		    ids_mbname_parse_internal(&mb, t[i].name, 0);

		if (r == 0)
			r = ids_path_datadir(&cfgs[HASH], &loc, buf, sizeof(buf));
		if (r != t[i].rc)
			fail_msg("case %zu: %d (%s)", i, r, ids_errmsg(r));
	}
	memset(longname, 'a', sizeof(longname) - 1);
	memcpy(longname, "user.", 5);
	assert_int_equal(ids_mbname_parse_internal(&mb, longname, 0), IDS_ETOOLONG);
}

/* Random bytes weighted toward separators, dots and other trouble. */
static const char alphabet[] = "....///^^^!@user.DELETED\x1f\x01\x7f\x80 -abcXYZ09";

static void
random_bytes(char *buf, size_t n, unsigned *seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = rand_r(seed) % 6 == 0 ? (char)(rand_r(seed) % 255 + 1) :
		    alphabet[(size_t)rand_r(seed) % (sizeof(alphabet) - 1)];
	buf[n] = '\0';
}

/* An id: a valid one of some shape, or random bytes of a plausible length. */
static void
random_id(char *id, unsigned *seed)
{
	static const size_t lens[] = { 16, 24, 36, 2, 35 };
	size_t n = lens[(size_t)rand_r(seed) % 5], i;

	if (rand_r(seed) % 2) {
		random_bytes(id, n, seed);
		return;
	}
	for (i = 0; i < n; i++)
		id[i] = "0123456789abcdef"[rand_r(seed) % 16];
	id[n] = '\0';
	if (n == 36)
		id[8] = id[13] = id[18] = id[23] = '-';
}

static void
random_check(int c, struct ids_mbname *mb, const char *id, unsigned *seed)
{
	static struct ids_pathinfo pi;
	struct ids_location loc = { mb, id, NULL, (enum ids_layout)(rand_r(seed) % 2) };
	char buf[4096];
	int r;

	if (ids_path_message(&cfgs[c], &loc, 1, buf, sizeof(buf)) < 0)
		return;
	assert_safe(buf, ROOT);
	r = ids_path_reverse(&cfgs[c], buf, &pi);
	assert_int_equal(r, 0);
	assert_int_equal(pi.kind, IDS_PATH_MESSAGE);
	if (pi.layout != loc.layout && loc.layout != IDS_LAYOUT_LEGACY)
		fail_msg("%s read as legacy", buf);
	if (pi.layout != loc.layout) {
		/* Only a legacy folder named like an id may read as uniqueid. */
		assert_int_equal(loc.layout, IDS_LAYOUT_LEGACY);
		assert_true(mb->nboxes > 0);
		assert_int_equal(ids_uniqueid_check(mb->boxes[mb->nboxes - 1]), 0);
	}
}

/*
 * 100,000 random names (parsed, so valid or refused) and 100,000 random
 * hand-made ones (never parsed), with random ids, in both layouts:
 * every path the resolver writes is safe and reads back.
 */
static void
test_random(void **state)
{
	char name[64], lv[2][24], id[40];
	unsigned seed = 31052016, i, parsed = 0;
	struct ids_mbname mb;

	(void)state;
	for (i = 0; i < 100000; i++) {
		random_bytes(name, (size_t)rand_r(&seed) % 40, &seed);
		random_id(id, &seed);
		if (ids_mbname_parse_internal(&mb, name, 0) == 0) {
			parsed++;
			random_check((int)(i % NCFG), &mb, id, &seed);
		}
		memset(&mb, 0, sizeof(mb));
		random_bytes(lv[0], (size_t)rand_r(&seed) % 6, &seed);
		random_bytes(lv[1], (size_t)rand_r(&seed) % 6, &seed);
		mb.localpart = rand_r(&seed) % 2 ? lv[0] : NULL;
		mb.boxes[0] = lv[1];
		mb.nboxes = 1;
		mb.domain = rand_r(&seed) % 4 == 0 ? lv[0] : NULL;
		{
			struct ids_location loc = { &mb, id, NULL, (enum ids_layout)(i % 2) };
			char buf[4096];

			if (ids_path_datadir(&cfgs[i % NCFG], &loc, buf, sizeof(buf)) >= 0)
				assert_safe(buf, ROOT);
		}
	}
	assert_true(parsed > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_legacy_cyrus),
		cmocka_unit_test(test_dir_hash),
		cmocka_unit_test(test_uniqueid_layout),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_buffer_sizes),
		cmocka_unit_test(test_layout_names),
		cmocka_unit_test(test_location_from_entry),
		cmocka_unit_test(test_reverse),
		cmocka_unit_test(test_reverse_roundtrip),
		cmocka_unit_test(test_hostile_structs),
		cmocka_unit_test(test_hostile_inputs),
		cmocka_unit_test(test_random),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
