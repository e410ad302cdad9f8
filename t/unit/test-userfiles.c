/*
 * test-userfiles.c - where a user's own files are (userfiles.h;
 * spool-layout.md, "A user's own files"), as Cyrus 3.6 places them for
 * a legacy INBOX: simple and full directory hashing (the expected hash
 * letters computed apart from the library, by dir_hash_c's formula), a
 * domain, a dot in the localpart ('^' in the quota root), sievedir,
 * sieveusehomedir, quota_db and quota_db_path; shared owners have none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "mboxname.h"
#include "userfiles.h"
#include "unit.h"

/* "kind=root/path" lines of the files of name's owner under conf. */
static char *
files(const char *conf, const char *name)
{
	static char out[8192];
	struct ids_userfile f[IDS_USERFILES_MAX];
	struct ids_config cfg;
	struct ids_mbname mb;
	size_t n, i, len = 0;

	assert_int_equal(ids_config_parse(&cfg, conf, strlen(conf), "t.conf"), 0);
	assert_int_equal(ids_mbname_parse_internal(&mb, name, 0), 0);
	assert_int_equal(ids_userfiles(&cfg, &mb, f, &n), 0);
	out[0] = '\0';
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s=%s/%s\n", f[i].kind,
		    f[i].root, f[i].path);
	ids_config_release(&cfg);
	return out;
}

#define BASE "configdirectory: /c\npartition-default: /s\nvirtdomains: userid\n"

static void
test_simple_hash(void **state)
{
	(void)state;
	assert_string_equal(files(BASE "sievedir: /sv\n", "user.john^doe.Sent"),
	    "seen=/c/user/j/john.doe.seen\n"
	    "sub=/c/user/j/john.doe.sub\n"
	    "counters=/c/user/j/john.doe.counters\n"
	    "conversations=/c/user/j/john.doe.conversations\n"
	    "dav=/c/user/j/john.doe.dav\n"
	    "mboxkey=/c/user/j/john.doe.mboxkey\n"
	    "xapianactive=/c/user/j/john.doe.xapianactive\n"
	    "sieve=/sv/j/john.doe\n"
	    "quota=/c/quota/j/user.john^doe\n");
	/* A domain; hashimapspool does not matter; a non-letter hashes to q. */
	assert_string_equal(files(BASE "hashimapspool: yes\n", "example.org!user.7up"),
	    "seen=/c/domain/e/example.org/user/q/7up.seen\n"
	    "sub=/c/domain/e/example.org/user/q/7up.sub\n"
	    "counters=/c/domain/e/example.org/user/q/7up.counters\n"
	    "conversations=/c/domain/e/example.org/user/q/7up.conversations\n"
	    "dav=/c/domain/e/example.org/user/q/7up.dav\n"
	    "mboxkey=/c/domain/e/example.org/user/q/7up.mboxkey\n"
	    "xapianactive=/c/domain/e/example.org/user/q/7up.xapianactive\n"
	    "sieve=/usr/sieve/domain/e/example.org/q/7up\n"
	    "quota=/c/domain/e/example.org/quota/q/user.7up\n");
}

static void
test_full_hash(void **state)
{
	(void)state;
	/* dir_hash_c full: john -> K, john^doe -> B, example.org -> O. */
	assert_string_equal(files(BASE "fulldirhash: yes\nsievedir: /sv\n",
	    "example.org!user.john^doe"),
	    "seen=/c/domain/O/example.org/user/K/john.doe.seen\n"
	    "sub=/c/domain/O/example.org/user/K/john.doe.sub\n"
	    "counters=/c/domain/O/example.org/user/K/john.doe.counters\n"
	    "conversations=/c/domain/O/example.org/user/K/john.doe.conversations\n"
	    "dav=/c/domain/O/example.org/user/K/john.doe.dav\n"
	    "mboxkey=/c/domain/O/example.org/user/K/john.doe.mboxkey\n"
	    "xapianactive=/c/domain/O/example.org/user/K/john.doe.xapianactive\n"
	    "sieve=/sv/domain/O/example.org/K/john.doe\n"
	    "quota=/c/domain/O/example.org/quota/B/user.john^doe\n");
}

static void
test_keys(void **state)
{
	const char *f;

	(void)state;
	f = files(BASE "sieveusehomedir: yes\nquota_db: twoskip\n", "user.kate");
	assert_null(strstr(f, "sieve="));
	assert_null(strstr(f, "quota="));
	assert_non_null(strstr(f, "seen=/c/user/k/kate.seen\n"));
	f = files(BASE "quota_db_path: /q/quotas.db\n", "user.kate");
	assert_non_null(strstr(f, "quota=/q/quota/k/user.kate\n"));
	/* Shared owners, and DELETED folders of a user: the user's files. */
	assert_string_equal(files(BASE, "shared.news"), "");
	assert_non_null(strstr(files(BASE, "DELETED.user.kate.X.6B033B15"),
	    "sub=/c/user/k/kate.sub\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_hash),
		cmocka_unit_test(test_full_hash),
		cmocka_unit_test(test_keys),
	};

	return unit_run(tests);
}
