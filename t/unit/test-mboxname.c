/*
 * test-mboxname.c - mailbox names: the three spellings and their round
 * trips, every validation rule (a table of hostile names), modified
 * UTF-7, owners and parents, unique ids, and a randomised round trip.
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
#include "mboxname.h"
#include "unit.h"

static struct ids_config cfg_uhs, cfg_dot, cfg_nodom, cfg_defdom;

static void
load(struct ids_config *cfg, const char *extra)
{
	char text[512];

	snprintf(text, sizeof(text), "configdirectory: /c\npartition-default: /p\n%s",
	    extra);
	if (ids_config_parse(cfg, text, strlen(text), "t.conf") != 0)
		fail_msg("config: %s", ids_errmsg(IDS_ECONFIG));
}

static int
setup(void **state)
{
	(void)state;
	load(&cfg_uhs, "virtdomains: userid\n");
	load(&cfg_dot, "virtdomains: on\nunixhierarchysep: no\n"
	    "defaultdomain: example.net\n");
	load(&cfg_nodom, "virtdomains: off\n");
	load(&cfg_defdom, "virtdomains: userid\ndefaultdomain: example.net\n");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	ids_config_release(&cfg_uhs);
	ids_config_release(&cfg_dot);
	ids_config_release(&cfg_nodom);
	ids_config_release(&cfg_defdom);
	return 0;
}

/* One name in every spelling, and what it is. */
static const struct spelled {
	const char *internal, *external, *dotext, *dbname, *owner;
	int user, inbox, deleted;
	size_t nboxes;
} names[] = {
	{ "user.john", "user/john", "user.john", "user\x1fjohn", "john", 1, 1, 0, 0 },
	{ "user.john.Sent", "user/john/Sent", "user.john.Sent",
	  "user\x1fjohn\x1fSent", "john", 1, 0, 0, 1 },
	{ "example.com!user.john^doe.Sent", "user/john.doe/Sent@example.com",
	  "user.john^doe.Sent@example.com", "example.com\x1duser\x1fjohn.doe\x1fSent",
	  "john.doe@example.com", 1, 0, 0, 1 },
	{ "shared.support", "shared/support", "shared.support",
	  "shared\x1fsupport", "shared", 0, 0, 0, 2 },
	{ "shared", "shared", "shared", "shared", "shared", 0, 0, 0, 1 },
	{ "example.org!news.a^b.c", "news/a.b/c@example.org", "news.a^b.c@example.org",
	  "example.org\x1dnews\x1f" "a.b\x1f" "c", "news@example.org", 0, 0, 0, 3 },
	{ "DELETED.user.dave.Temp.6B033B15", "DELETED/user/dave/Temp/6B033B15",
	  "DELETED.user.dave.Temp.6B033B15",
	  "DELETED\x1fuser\x1f" "dave\x1fTemp\x1f" "6B033B15", "dave", 1, 0, 1, 1 },
	{ "DELETED.user.dave.6B033B15", "DELETED/user/dave/6B033B15",
	  "DELETED.user.dave.6B033B15", "DELETED\x1fuser\x1f" "dave\x1f" "6B033B15",
	  "dave", 1, 0, 1, 0 },
	{ "example.org!DELETED.news.x.5F", "DELETED/news/x/5F@example.org",
	  "DELETED.news.x.5F@example.org", "example.org\x1d" "DELETED\x1fnews\x1fx\x1f" "5F",
	  "news@example.org", 0, 0, 1, 2 },
	{ "example.org!user.carol.Mailing Lists", "user/carol/Mailing Lists@example.org",
	  "user.carol.Mailing Lists@example.org",
	  "example.org\x1duser\x1f" "carol\x1fMailing Lists", "carol@example.org", 1, 0, 0, 1 },
	{ "user.j.&AOk-t&AOk-.Entw&APw-rfe", "user/j/&AOk-t&AOk-/Entw&APw-rfe",
	  "user.j.&AOk-t&AOk-.Entw&APw-rfe", "user\x1fj\x1f&AOk-t&AOk-\x1f" "Entw&APw-rfe",
	  "j", 1, 0, 0, 2 },
	{ "user.john.^hidden", "user/john/.hidden", "user.john.^hidden",
	  "user\x1fjohn\x1f.hidden", "john", 1, 0, 0, 1 },
	{ "user.john.a@b.c", "user/john/a@b/c@example.net", "user.john.a@b.c@example.net",
	  "user\x1fjohn\x1f" "a@b\x1f" "c", "john", 1, 0, 0, 2 },
	{ "user.user.user", "user/user/user", "user.user.user", "user\x1fuser\x1fuser",
	  "user", 1, 0, 0, 1 },
	{ "domain.x", "domain/x", "domain.x", "domain\x1fx", "domain", 0, 0, 0, 2 },
};

static void
check_spellings(const struct ids_mbname *mb, const struct spelled *s)
{
	char buf[IDS_MBNAME_MAX + 64];

	assert_int_equal(ids_mbname_internal(mb, buf, sizeof(buf)), strlen(s->internal));
	assert_string_equal(buf, s->internal);
	assert_int_equal(ids_mbname_external(mb, &cfg_defdom, buf, sizeof(buf)),
	    strlen(s->external));
	assert_string_equal(buf, s->external);
	assert_int_equal(ids_mbname_dbname(mb, buf, sizeof(buf)), strlen(s->dbname));
	assert_string_equal(buf, s->dbname);
	assert_int_equal(ids_mbname_owner(mb, buf, sizeof(buf)), strlen(s->owner));
	assert_string_equal(buf, s->owner);
	assert_int_equal(ids_mbname_is_user(mb), s->user);
	assert_int_equal(ids_mbname_is_inbox(mb), s->inbox);
	assert_int_equal(ids_mbname_is_deleted(mb), s->deleted);
	assert_int_equal(mb->nboxes, s->nboxes);
}

/* Every spelling parses to the same name, which spells back exactly. */
static void
test_spellings(void **state)
{
	struct ids_mbname mb;
	size_t i;
	char buf[IDS_MBNAME_MAX + 64];

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct spelled *s = &names[i];

		if (ids_mbname_parse_internal(&mb, s->internal, 0) != 0)
			fail_msg("%s: %s", s->internal, ids_errmsg(IDS_EBADNAME));
		check_spellings(&mb, s);
		assert_int_equal(ids_mbname_parse_external(&mb, s->external, &cfg_defdom, 0), 0);
		check_spellings(&mb, s);
		assert_int_equal(ids_mbname_parse_external(&mb, s->dotext, &cfg_dot, 0), 0);
		check_spellings(&mb, s);
		assert_int_equal(ids_mbname_external(&mb, &cfg_dot, buf, sizeof(buf)),
		    strlen(s->dotext));
		assert_string_equal(buf, s->dotext);
		assert_int_equal(ids_mbname_parse_dbname(&mb, s->dbname,
		    strlen(s->dbname), 0), 0);
		check_spellings(&mb, s);
	}
}

static void
test_parts(void **state)
{
	struct ids_mbname mb;

	(void)state;
	assert_int_equal(ids_mbname_parse_internal(&mb,
	    "example.com!DELETED.user.john^doe.a.b.6B033B15", 0), 0);
	assert_string_equal(mb.domain, "example.com");
	assert_string_equal(mb.localpart, "john.doe");
	assert_string_equal(mb.deleted, "6B033B15");
	assert_int_equal(mb.nboxes, 2);
	assert_string_equal(mb.boxes[0], "a");
	assert_string_equal(mb.boxes[1], "b");
	assert_int_equal(ids_mbname_parse_internal(&mb, "shared.x", 0), 0);
	assert_null(mb.domain);
	assert_null(mb.localpart);
	assert_null(mb.deleted);
	assert_string_equal(mb.boxes[0], "shared");
}

/* The DELETED prefix of an owner's root: every DELETED folder of the
 * owner's starts with it, in the db's spelling, and no other folder
 * does; below a folder, only the DELETED folders made of its subtree. */
static void
test_deleted_prefix(void **state)
{
	static const char *const in[] = { "DELETED.user.alice.6B033B15",
	    "DELETED.user.alice.a.b.6B033B15", "example.com!DELETED.user.alice.x.6B033B15" };
	static const char *const out[] = { "user.alice.DELETED.x", "DELETED.user.alicex.6B033B15",
	    "DELETED.user.bob.6B033B15", "DELETED.shared.6B033B15", "user.alice.a" };
	struct ids_mbname root, mb;
	char prefix[512], key[512];
	size_t i;
	int n, k;

	(void)state;
	assert_int_equal(ids_mbname_parse_internal(&root, "user.alice", 0), 0);
	n = ids_mbname_deleted_prefix(&root, prefix, sizeof(prefix));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(prefix));
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		assert_int_equal(ids_mbname_parse_internal(&mb, in[i], 0), 0);
		k = ids_mbname_dbname(&mb, key, sizeof(key));
		assert_true(k > 0);
		assert_int_equal(strncmp(key, prefix, (size_t)n) == 0, i < 2);
	}
	for (i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
		assert_int_equal(ids_mbname_parse_internal(&mb, out[i], 0), 0);
		assert_true(ids_mbname_dbname(&mb, key, sizeof(key)) > 0);
		assert_int_not_equal(strncmp(key, prefix, (size_t)n), 0);
	}
	assert_true(ids_mbname_deleted_prefix(&root, prefix, 4) < 0);
	assert_int_equal(ids_mbname_parse_internal(&root, "user.alice.a", 0), 0);
	n = ids_mbname_deleted_prefix(&root, prefix, sizeof(prefix));
	assert_true(n > 0);
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		assert_int_equal(ids_mbname_parse_internal(&mb, in[i], 0), 0);
		assert_true(ids_mbname_dbname(&mb, key, sizeof(key)) > 0);
		assert_int_equal(strncmp(key, prefix, (size_t)n) == 0, i == 1);
	}
}

/* The default domain is never spelled; virtdomains off makes '@' plain. */
static void
test_domains(void **state)
{
	struct ids_mbname mb;
	char buf[600];

	(void)state;
	assert_int_equal(ids_mbname_parse_external(&mb, "user/john@example.net",
	    &cfg_defdom, 0), 0);
	assert_null(mb.domain);
	assert_int_equal(ids_mbname_internal(&mb, buf, sizeof(buf)), 9);
	assert_string_equal(buf, "user.john");
	/* The internal parser keeps it; normalize drops it. */
	assert_int_equal(ids_mbname_parse_internal(&mb, "example.net!user.john", 0), 0);
	assert_string_equal(mb.domain, "example.net");
	ids_mbname_normalize(&mb, &cfg_defdom);
	assert_null(mb.domain);
	ids_mbname_normalize(&mb, NULL);
	/* virtdomains off: '@' is part of the name, domains cannot be written. */
	assert_int_equal(ids_mbname_parse_external(&mb, "user/john@example.com",
	    &cfg_nodom, 0), 0);
	assert_null(mb.domain);
	assert_string_equal(mb.localpart, "john@example.com");
	assert_int_equal(ids_mbname_external(&mb, &cfg_nodom, buf, sizeof(buf)), 21);
	assert_string_equal(buf, "user/john@example.com");
	assert_int_equal(ids_mbname_parse_internal(&mb, "example.com!user.john", 0), 0);
	assert_int_equal(ids_mbname_external(&mb, &cfg_nodom, buf, sizeof(buf)),
	    IDS_EBADNAME);
	/* An '@' in a level without a domain needs the default domain written. */
	assert_int_equal(ids_mbname_parse_internal(&mb, "user.john.a@b", 0), 0);
	assert_int_equal(ids_mbname_external(&mb, &cfg_uhs, buf, sizeof(buf)),
	    IDS_EBADNAME);
	assert_non_null(strstr(ids_errmsg(IDS_EBADNAME), "internal name"));
	assert_int_equal(ids_mbname_external(&mb, &cfg_defdom, buf, sizeof(buf)), 25);
	assert_string_equal(buf, "user/john/a@b@example.net");
	/* A NULL config means: virtdomains, unixhierarchysep, no default domain. */
	assert_int_equal(ids_mbname_parse_external(&mb, "user/x/y@example.com", NULL, 0), 0);
	assert_string_equal(mb.domain, "example.com");
}

static void
test_too_small(void **state)
{
	struct ids_mbname mb;
	char buf[32];

	(void)state;
	assert_int_equal(ids_mbname_parse_internal(&mb, "user.john.Sent", 0), 0);
	assert_int_equal(ids_mbname_internal(&mb, buf, 8), IDS_ETOOLONG);
	assert_string_equal(buf, "");
	assert_int_equal(ids_mbname_dbname(&mb, buf, 0), IDS_ETOOLONG);
	assert_int_equal(ids_mbname_external(&mb, &cfg_uhs, buf, 14), IDS_ETOOLONG);
	assert_int_equal(ids_mbname_external(&mb, &cfg_uhs, buf, 15), 14);
	assert_int_equal(ids_mbname_owner(&mb, buf, 4), IDS_ETOOLONG);
	assert_int_equal(ids_mbname_owner(&mb, buf, 5), 4);
}

enum spelling { INT, EXT, DOT, DB };

/* Hostile and invalid names: each must fail with the given code and phrase. */
static const struct bad {
	enum spelling sp;
	const char *name;
	int code;
	const char *why;
} bad[] = {
	{ INT, "", IDS_EBADNAME, "empty name" },
	{ INT, ".", IDS_EBADNAME, "empty level 1" },
	{ INT, "..", IDS_EBADNAME, "empty level 1" },
	{ INT, "user..x", IDS_EBADNAME, "empty level 2" },
	{ INT, ".user.x", IDS_EBADNAME, "empty level 1" },
	{ INT, "user.x.", IDS_EBADNAME, "empty level 3" },
	{ INT, "user/x", IDS_EBADNAME, "'/' inside level 1" },
	{ INT, "user.x/y", IDS_EBADNAME, "'/' inside level 2" },
	{ INT, "user.x.../..", IDS_EBADNAME, "empty level 3" },
	{ INT, "user.^", IDS_EBADNAME, "level 2 is '.'" },
	{ INT, "user.^^", IDS_EBADNAME, "level 2 is '..'" },
	{ INT, "user.x.^^", IDS_EBADNAME, "level 3 is '..'" },
	{ INT, "^^.x", IDS_EBADNAME, "level 1 is '..'" },
	{ INT, "user.^x", IDS_EBADNAME, "user name '.x' starts with '.'" },
	{ INT, "^foo.x", IDS_EBADNAME, "top level '.foo' starts with '.'" },
	{ INT, "user.x\x01", IDS_EBADNAME, "control byte 0x01 in level 2" },
	{ INT, "user.x\x1f" "y", IDS_EBADNAME, "control byte 0x1f in level 2" },
	{ INT, "user.x\x7f", IDS_EBADNAME, "control byte 0x7f in level 2" },
	{ INT, "user.x\ty", IDS_EBADNAME, "control byte 0x09 in level 2" },
	{ INT, "user.\xc3\xa9t\xc3\xa9", IDS_EBADNAME, "8-bit byte 0xc3 in level 2 (names are modified UTF-7)" },
	{ INT, "user.x.\xff", IDS_EBADNAME, "8-bit byte 0xff in level 3 (names are modified UTF-7)" },
	{ INT, "user", IDS_EBADNAME, "'user' needs a user name" },
	{ INT, "DELETED", IDS_EBADNAME, "the top level DELETED is reserved for deleted mailboxes" },
	{ INT, "DELETED.x", IDS_EBADNAME, "the top level DELETED is reserved for deleted mailboxes" },
	{ INT, "DELETED.user.x.zz", IDS_EBADNAME, "DELETED name does not end in a hex time" },
	{ INT, "DELETED.user.x.0ABC", IDS_EBADNAME, "DELETED name does not end in a hex time" },
	{ INT, "DELETED.user.x.6b033b15", IDS_EBADNAME, "DELETED name does not end in a hex time" },
	{ INT, "DELETED.user.x.123456789", IDS_EBADNAME, "DELETED name does not end in a hex time" },
	{ INT, "DELETED.user.5F", IDS_EBADNAME, "'user' needs a user name" },
	{ INT, "DELETED.DELETED.x.5F", IDS_EBADNAME, "the top level DELETED is reserved for deleted mailboxes" },
	{ INT, "INBOX", IDS_EBADNAME, "INBOX is not a shared folder: write user/NAME" },
	{ INT, "inbox.Sent", IDS_EBADNAME, "INBOX is not a shared folder: write user/NAME" },
	{ INT, "!user.x", IDS_EBADNAME, "empty domain" },
	{ INT, "ex/ample!user.x", IDS_EBADNAME, "'/' in domain: the @domain goes at the end of the name" },
	{ INT, "a..b!user.x", IDS_EBADNAME, "empty label in domain" },
	{ INT, ".a!user.x", IDS_EBADNAME, "empty label in domain" },
	{ INT, "a.!user.x", IDS_EBADNAME, "empty label in domain" },
	{ INT, "..!user.x", IDS_EBADNAME, "empty label in domain" },
	{ INT, "a b!user.x", IDS_EBADNAME, "byte 0x20 in domain" },
	{ INT, "a!b!user.x", IDS_EBADNAME, "'!' inside level 1" },
	{ INT, "example.com!user.x!y", IDS_EBADNAME, "'!' inside level 2" },
	{ EXT, "user/a^b", IDS_EBADNAME, "'^' inside level 2" },
	{ EXT, "user//x", IDS_EBADNAME, "empty level 2" },
	{ EXT, "/user/x", IDS_EBADNAME, "empty level 1" },
	{ EXT, "user/x/", IDS_EBADNAME, "empty level 3" },
	{ EXT, "user/../x", IDS_EBADNAME, "level 2 is '..'" },
	{ EXT, "user/./x", IDS_EBADNAME, "level 2 is '.'" },
	{ EXT, "../../etc/passwd", IDS_EBADNAME, "level 1 is '..'" },
	{ EXT, "user/x@", IDS_EBADNAME, "empty domain" },
	{ EXT, "user/x@exa/mple", IDS_EBADNAME, "'/' in domain: the @domain goes at the end of the name" },
	{ EXT, "user/x@example.com/Sent", IDS_EBADNAME, "'/' in domain: the @domain goes at the end of the name" },
	{ EXT, "user/x@.com", IDS_EBADNAME, "empty label in domain" },
	{ EXT, "user/x@..", IDS_EBADNAME, "empty label in domain" },
	{ EXT, "@example.com", IDS_EBADNAME, "empty name" },
	{ EXT, "user/.x", IDS_EBADNAME, "user name '.x' starts with '.'" },
	{ EXT, "INBOX/Sent", IDS_EBADNAME, "INBOX is not a shared folder: write user/NAME" },
	{ DOT, "user.a/b", IDS_EBADNAME, "'/' inside level 2" },
	{ DOT, "user..b", IDS_EBADNAME, "empty level 2" },
	{ DB, "", IDS_EBADNAME, "empty name" },
	{ DB, "\x1duser\x1fx", IDS_EBADNAME, "empty domain" },
	{ DB, "user\x1f\x1fx", IDS_EBADNAME, "empty level 2" },
	{ DB, "user\x1fx^y", IDS_EBADNAME, "'^' inside level 2" },
	{ DB, "user\x1f..", IDS_EBADNAME, "level 2 is '..'" },
	{ DB, "user\x1fx\x1d" "y", IDS_EBADNAME, "byte 0x1f in domain" },
	{ DB, "user\x1fx\x7f", IDS_EBADNAME, "control byte 0x7f in level 2" },
};

static int
parse_as(enum spelling sp, struct ids_mbname *mb, const char *name, size_t len,
    int flags)
{
	switch (sp) {
	case INT: return ids_mbname_parse_internal(mb, name, flags);
	case EXT: return ids_mbname_parse_external(mb, name, &cfg_uhs, flags);
	case DOT: return ids_mbname_parse_external(mb, name, &cfg_dot, flags);
	default: return ids_mbname_parse_dbname(mb, name, len, flags);
	}
}

static void
test_bad_names(void **state)
{
	struct ids_mbname mb;
	size_t i;

	(void)state;
	assert_true(sizeof(bad) / sizeof(bad[0]) >= 30);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse_as(bad[i].sp, &mb, bad[i].name, strlen(bad[i].name), 0);

		if (r != bad[i].code || strcmp(ids_errmsg(r), bad[i].why) != 0)
			fail_msg("case %zu '%s': %d '%s'", i, bad[i].name, r, ids_errmsg(r));
		/* A failed parse leaves an empty name behind. */
		assert_int_equal(mb.nboxes, 0);
		assert_null(mb.localpart);
		assert_null(mb.domain);
	}
}

/* NUL inside a dbname, and lengths around the limits. */
static void
test_lengths(void **state)
{
	static char name[2000];
	struct ids_mbname mb;
	size_t i;

	(void)state;
	assert_int_equal(ids_mbname_parse_dbname(&mb, "user\x1fx\0y", 8, 0), IDS_EBADNAME);
	assert_string_equal(ids_errmsg(IDS_EBADNAME), "NUL byte in dbname");
	memset(name, 'a', sizeof(name) - 1);
	memcpy(name, "user.", 5);
	name[IDS_MBNAME_MAX] = '\0';	/* exactly 510 */
	assert_int_equal(ids_mbname_parse_internal(&mb, name, 0), 0);
	assert_int_equal(ids_mbname_parse_internal(&mb, name, IDS_MBNAME_STRICT), IDS_ETOOLONG);
	name[IDS_MBNAME_CREATE_MAX] = '\0';
	assert_int_equal(ids_mbname_parse_internal(&mb, name, IDS_MBNAME_STRICT), 0);
	name[IDS_MBNAME_CREATE_MAX] = 'a';
	name[IDS_MBNAME_MAX] = 'a';
	name[IDS_MBNAME_MAX + 1] = '\0';	/* 511 */
	assert_int_equal(ids_mbname_parse_internal(&mb, name, 0), IDS_ETOOLONG);
	name[IDS_MBNAME_MAX + 1] = 'a';
	name[600] = '\0';
	assert_int_equal(ids_mbname_parse_internal(&mb, name, 0), IDS_ETOOLONG);
	assert_int_equal(ids_mbname_parse_dbname(&mb, name, 600, 0), IDS_ETOOLONG);
	name[600] = 'a';
	assert_int_equal(ids_mbname_parse_external(&mb, name, &cfg_uhs, 0), IDS_ETOOLONG);
	/* The default domain is never spelled internally, so it does not count. */
	memset(name, 'a', 505);
	memcpy(name, "user/", 5);
	strcpy(name + 505, "@example.net");
	assert_int_equal(ids_mbname_parse_external(&mb, name, &cfg_defdom, 0), 0);
	assert_int_equal(ids_mbname_parse_external(&mb, name, &cfg_uhs, 0), IDS_ETOOLONG);
	/* Too many levels: "user.x.a.a.a..." with 300 levels. */
	for (i = 0; i < 600; i += 2) {
		name[i] = 'a';
		name[i + 1] = '.';
	}
	name[599] = '\0';
	assert_int_equal(ids_mbname_parse_internal(&mb, name, 0), IDS_ETOOLONG);
	/* 255 levels fit in 510 bytes and parse. */
	name[509] = '\0';
	assert_int_equal(ids_mbname_parse_internal(&mb, name, 0), 0);
	assert_int_equal(mb.nboxes, 255);
}

/* Creation rules: modified UTF-7, policy bytes, reserved users, length. */
static void
test_strict(void **state)
{
	static const struct { const char *name; int ok; } t[] = {
		{ "user.j.&AOk-t&AOk-", 1 }, { "user.j.&-", 1 }, { "user.j.a&-b", 1 },
		{ "user.j.&2D3cAA-", 1 },		/* a surrogate pair: U+1F700 */
		{ "user.j.&ZeVnLIqe-", 1 },	/* CJK */
		{ "user.j.&AOk", 0 },		/* unterminated */
		{ "user.j.&", 0 },
		{ "user.j.&AGE-", 0 },		/* encodes US-ASCII 'a' */
		{ "user.j.&AOk-&AOk-", 0 },	/* adjacent runs */
		{ "user.j.&AOl-", 0 },		/* non-zero padding bits */
		{ "user.j.&AOkA-", 0 },		/* a whole extra sextet */
		{ "user.j.&2D0-", 0 },		/* lone high surrogate */
		{ "user.j.&3AA-", 0 },		/* lone low surrogate */
		{ "user.j.&A*k-", 0 },		/* not base64 */
		{ "user.j.&A-", 0 },		/* no complete unit */
		{ "user.j.a\"b", 0 }, { "user.j.a%b", 0 }, { "user.j.a;b", 0 },
		{ "user.j.a{b", 0 }, { "user.j.a\\b", 0 }, { "user.j.a`b", 0 },
		{ "~shared", 0 }, { "$RACL", 0 }, { "user.anyone", 0 },
		{ "user.anonymous.x", 0 }, { "user.j.a*b", 1 }, { "user.j.#x", 1 },
		{ "example.com!$x", 1 }, { "DELETED.user.j.&AOk.5F", 1 },
	};
	struct ids_mbname mb;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = ids_mbname_parse_internal(&mb, t[i].name, IDS_MBNAME_STRICT);

		if ((r == 0) != t[i].ok)
			fail_msg("'%s': %d %s", t[i].name, r, ids_errmsg(r));
		/* Without the flag, every one of them is accepted. */
		assert_int_equal(ids_mbname_parse_internal(&mb, t[i].name, 0), 0);
	}
	assert_int_equal(ids_mbname_parse_internal(&mb, "user.j.&AOk-&AOk-",
	    IDS_MBNAME_STRICT), IDS_EBADNAME);
	assert_string_equal(ids_errmsg(IDS_EBADNAME),
	    "modified UTF-7 in level 3: adjacent encoded sequences");
}

static void
parse_ok(struct ids_mbname *mb, const char *internal)
{
	if (ids_mbname_parse_internal(mb, internal, 0) != 0)
		fail_msg("%s: %s", internal, ids_errmsg(IDS_EBADNAME));
}

static void
test_parent_within_owner(void **state)
{
	struct ids_mbname a, b, p;
	char buf[600];

	(void)state;
	parse_ok(&a, "user.john.Sent.2019");
	assert_int_equal(ids_mbname_parent(&a, &p), 0);
	ids_mbname_internal(&p, buf, sizeof(buf));
	assert_string_equal(buf, "user.john.Sent");
	assert_int_equal(ids_mbname_parent(&p, &p), 0);
	ids_mbname_internal(&p, buf, sizeof(buf));
	assert_string_equal(buf, "user.john");
	assert_int_equal(ids_mbname_parent(&p, &b), IDS_ENOTFOUND);
	parse_ok(&a, "shared.x");
	assert_int_equal(ids_mbname_parent(&a, &p), 0);
	ids_mbname_internal(&p, buf, sizeof(buf));
	assert_string_equal(buf, "shared");
	assert_int_equal(ids_mbname_parent(&p, &b), IDS_ENOTFOUND);
	parse_ok(&a, "DELETED.user.john.A.B.5F");
	assert_int_equal(ids_mbname_parent(&a, &p), 0);
	ids_mbname_internal(&p, buf, sizeof(buf));
	assert_string_equal(buf, "DELETED.user.john.A.5F");

	parse_ok(&a, "user.john");
	parse_ok(&b, "user.john.Sent.x");
	assert_true(ids_mbname_is_within(&a, &b));
	assert_true(ids_mbname_is_within(&a, &a));
	assert_false(ids_mbname_is_within(&b, &a));
	assert_true(ids_mbname_same_owner(&a, &b));
	parse_ok(&b, "user.johnny.Sent");
	assert_false(ids_mbname_is_within(&a, &b));
	assert_false(ids_mbname_same_owner(&a, &b));
	parse_ok(&b, "example.com!user.john.Sent");
	assert_false(ids_mbname_is_within(&a, &b));
	assert_false(ids_mbname_same_owner(&a, &b));
	parse_ok(&b, "DELETED.user.john.Sent.5F");
	assert_false(ids_mbname_is_within(&a, &b));
	assert_true(ids_mbname_same_owner(&a, &b));
	parse_ok(&a, "user.john.Sen");
	parse_ok(&b, "user.john.Sent");
	assert_false(ids_mbname_is_within(&a, &b));
	parse_ok(&a, "shared.a");
	parse_ok(&b, "shared.b.c");
	assert_true(ids_mbname_same_owner(&a, &b));
	assert_false(ids_mbname_is_within(&a, &b));
	parse_ok(&b, "other.a");
	assert_false(ids_mbname_same_owner(&a, &b));
	parse_ok(&b, "user.shared");
	assert_false(ids_mbname_same_owner(&a, &b));
}

static void
test_copy(void **state)
{
	struct ids_mbname a, *b = malloc(sizeof(*b));
	char buf[600];

	(void)state;
	parse_ok(&a, "example.com!DELETED.user.x.y.z.5F");
	ids_mbname_copy(b, &a);
	memset(&a, 0xa5, sizeof(a));	/* b must not point into a */
	assert_int_equal(ids_mbname_internal(b, buf, sizeof(buf)), 33);
	assert_string_equal(buf, "example.com!DELETED.user.x.y.z.5F");
	ids_mbname_copy(b, b);
	assert_string_equal(b->boxes[1], "z");
	free(b);
}

static void
test_uniqueid(void **state)
{
	static const char *const good[] = {
		"48902a4f-73c2-4e0f-ad4a-3e324fd33853",
		"k2v9d0x7qmz1w3e8r5t6y4u2", "047656355035e6be",
		"00000000-0000-0000-0000-000000000000",
	};
	static const char *const badids[] = {
		"", "48902A4F-73C2-4E0F-AD4A-3E324FD33853",
		"48902a4f-73c2-4e0f-ad4a-3e324fd3385", "48902a4f-73c2-4e0f-ad4a-3e324fd338533",
		"48902a4f73c2-4e0f-ad4a-3e324fd33853-", "48902a4f-73c2-4e0f-ad4a/3e324fd33853",
		"k2v9d0x7qmz1w3e8r5t6y4u", "K2V9D0X7QMZ1W3E8R5T6Y4U2", "k2v9d0x7qmz1w3e8r5t6y4u/",
		"047656355035e6bg", "047656355035E6BE", "../../../../etc", "..", "/", "a/b",
		"0476563550/5e6be", "04765635\n035e6be", "047656355035e6be ",
		"g7656355035e6be0",
	};
	char id[IDS_UNIQUEID_MAX + 1], id2[IDS_UNIQUEID_MAX + 1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(ids_uniqueid_check(good[i]), 0);
	for (i = 0; i < sizeof(badids) / sizeof(badids[0]); i++)
		if (ids_uniqueid_check(badids[i]) != IDS_EBADID)
			fail_msg("accepted '%s'", badids[i]);
	assert_int_equal(ids_uniqueid_check(NULL), IDS_EBADID);
	assert_int_equal(ids_uniqueid_new(id), 0);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(ids_uniqueid_check(id), 0);
	assert_int_equal(ids_uniqueid_new(id2), 0);
	assert_string_not_equal(id, id2);
}

/* Bytes that matter to the parsers, weighted toward trouble. */
static const char alphabet[] = "..../^^!@@user.DELETED\x1f\x1d\x01\x7f\x80\xff &-abcXYZ09";

static size_t
random_name(char *buf, size_t max, unsigned *seed)
{
	size_t n = (size_t)rand_r(seed) % max, i;

	for (i = 0; i < n; i++) {
		int k = rand_r(seed) % 8;

		if (k == 0)
			buf[i] = (char)(rand_r(seed) % 255 + 1);
		else
			buf[i] = alphabet[(size_t)rand_r(seed) % (sizeof(alphabet) - 1)];
	}
	buf[n] = '\0';
	return n;
}

/*
 * 100,000 random byte strings in each spelling: whatever parses spells
 * back into all three forms, which parse to the same name again.
 */
static void
test_random_roundtrip(void **state)
{
	struct ids_mbname mb, mb2;
	char in[80], a[IDS_MBNAME_MAX + 64], b[IDS_MBNAME_MAX + 64];
	unsigned seed = 20160531, ok = 0, i;
	int n;

	(void)state;
	for (i = 0; i < 100000; i++) {
		size_t len = random_name(in, 40, &seed);

		if (parse_as((enum spelling)(i % 4), &mb, in, len, 0) != 0)
			continue;
		ok++;
		n = ids_mbname_internal(&mb, a, sizeof(a));
		assert_true(n > 0 && n <= IDS_MBNAME_MAX);
		assert_int_equal(ids_mbname_parse_internal(&mb2, a, 0), 0);
		assert_int_equal(ids_mbname_dbname(&mb2, b, sizeof(b)), n);
		assert_int_equal(ids_mbname_parse_dbname(&mb2, b, (size_t)n, 0), 0);
		if (ids_mbname_external(&mb2, &cfg_defdom, b, sizeof(b)) >= 0)
			assert_int_equal(ids_mbname_parse_external(&mb2, b, &cfg_defdom, 0), 0);
		assert_int_equal(ids_mbname_internal(&mb2, b, sizeof(b)), n);
		assert_string_equal(a, b);
		assert_true(ids_mbname_same_owner(&mb, &mb2));
		assert_true(ids_mbname_is_within(&mb, &mb2));
	}
	assert_true(ok > 1000);	/* the generator does reach valid names */
}

/*
 * An internal name the parser accepts is its own normal form: printed
 * again it is the same bytes (lookups by name copy the name they were
 * given into the entry instead of printing it again).
 */
static void
test_internal_is_normal(void **state)
{
	struct ids_mbname mb;
	char in[80], out[IDS_MBNAME_MAX + 64];
	unsigned seed = 20261123, ok = 0, i;

	(void)state;
	for (i = 0; i < 200000; i++) {
		random_name(in, 40, &seed);
		if (ids_mbname_parse_internal(&mb, in, 0) != 0)
			continue;
		ok++;
		assert_int_equal(ids_mbname_internal(&mb, out, sizeof(out)), (int)strlen(in));
		assert_string_equal(out, in);
	}
	assert_true(ok > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spellings),
		cmocka_unit_test(test_parts),
		cmocka_unit_test(test_deleted_prefix),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_internal_is_normal),
		cmocka_unit_test(test_parent_within_owner),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_uniqueid),
		cmocka_unit_test(test_random_roundtrip),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
