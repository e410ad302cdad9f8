/*
 * test-config.c - imapd.conf reading: syntax, the keys idspool knows,
 * defaults, and every error with its "FILE:LINE: reason".
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "unit.h"

static int
parse(struct ids_config *cfg, const char *text)
{
	return ids_config_parse(cfg, text, strlen(text), "t.conf");
}

static void
test_minimal(void **state)
{
	struct ids_config cfg;

	(void)state;
	assert_int_equal(parse(&cfg, "configdirectory: /var/lib/imap\n"
	    "partition-default: /var/spool/imap\n"), 0);
	assert_string_equal(cfg.configdirectory, "/var/lib/imap");
	assert_int_equal(cfg.npartitions, 1);
	assert_string_equal(cfg.partitions[0].name, "default");
	assert_string_equal(cfg.partitions[0].path, "/var/spool/imap");
	assert_null(cfg.partitions[0].metapath);
	assert_string_equal(cfg.defaultpartition, "default");
	assert_int_equal(cfg.hashimapspool, 0);
	assert_int_equal(cfg.fulldirhash, 0);
	assert_int_equal(cfg.unixhierarchysep, 1);
	assert_int_equal(cfg.virtdomains, IDS_VIRTDOMAINS_OFF);
	assert_null(cfg.defaultdomain);
	assert_int_equal(cfg.metapartition_files, 0);
	assert_ptr_equal(ids_config_partition(&cfg, NULL), &cfg.partitions[0]);
	assert_ptr_equal(ids_config_partition(&cfg, "default"), &cfg.partitions[0]);
	assert_null(ids_config_partition(&cfg, "other"));
	ids_config_release(&cfg);
}

/* Every known key, Cyrus's syntax quirks, unknown keys kept. */
static void
test_full(void **state)
{
	struct ids_config cfg;
	const char *text =
	    "# imapd.conf\n"
	    "\n"
	    "   # indented comment\n"
	    "metapartition-fast: /ssd//meta/\n"
	    "ConfigDirectory:   /var/lib/imap   \r\n"
	    "partition-default: /var/spool/imap\n"
	    "partition-fast: /srv/fast/\n"
	    "defaultpartition: fast\n"
	    "metapartition_files: header   index lock cache expunge squat annotations dav archivecache\n"
	    "hashimapspool: true\n"
	    "fulldirhash: On\n"
	    "unixhierarchysep: no\n"
	    "virtdomains: userid\n"
	    "defaultdomain: example.org\n"
	    "sasl_pwcheck_method: saslauthd # not a comment\n"
	    "imap_admins: cyrus\n"
	    "imap_admins: other\n";

	(void)state;
	assert_int_equal(parse(&cfg, text), 0);
	assert_string_equal(cfg.file, "t.conf");
	assert_string_equal(cfg.configdirectory, "/var/lib/imap");
	assert_int_equal(cfg.npartitions, 2);
	assert_string_equal(cfg.partitions[1].name, "fast");
	assert_string_equal(cfg.partitions[1].path, "/srv/fast");
	assert_string_equal(cfg.partitions[1].metapath, "/ssd/meta");
	assert_string_equal(ids_config_partition(&cfg, NULL)->name, "fast");
	assert_int_equal(cfg.metapartition_files, (1u << IDS_META_NKINDS) - 1);
	assert_int_equal(cfg.hashimapspool, 1);
	assert_int_equal(cfg.fulldirhash, 1);
	assert_int_equal(cfg.unixhierarchysep, 0);
	assert_int_equal(cfg.virtdomains, IDS_VIRTDOMAINS_USERID);
	assert_string_equal(cfg.defaultdomain, "example.org");
	assert_string_equal(ids_config_get(&cfg, "sasl_pwcheck_method"),
	    "saslauthd # not a comment");
	assert_string_equal(ids_config_get(&cfg, "imap_admins"), "cyrus");
	assert_string_equal(ids_config_get(&cfg, "configdirectory"), "/var/lib/imap");
	assert_null(ids_config_get(&cfg, "nosuchkey"));
	assert_int_equal(cfg.nentries, 14);
	assert_int_equal(cfg.entries[0].line, 4);
	ids_config_release(&cfg);
}

static void
test_metafiles(void **state)
{
	struct ids_config cfg;

	(void)state;
	assert_int_equal(parse(&cfg, "configdirectory: /c\npartition-default: /p\n"
	    "metapartition-default: /m\nmetapartition_files: index lock\n"), 0);
	assert_int_equal(cfg.metapartition_files, 1u << IDS_META_INDEX);
	ids_config_release(&cfg);
	assert_string_equal(ids_metafile_name(IDS_META_HEADER), "cyrus.header");
	assert_string_equal(ids_metafile_name(IDS_META_ARCHIVECACHE), "cyrus.archivecache");
	assert_null(ids_metafile_name(IDS_META_NKINDS));
	assert_null(ids_metafile_name((enum ids_metafile)-1));
	assert_int_equal(ids_metafile_kind("cyrus.squat"), IDS_META_SQUAT);
	assert_int_equal(ids_metafile_kind("cyrus.index.NEW"), -1);
	assert_int_equal(ids_metafile_kind("1."), -1);
}

static void
test_virtdomains(void **state)
{
	static const struct { const char *v; enum ids_virtdomains want; } t[] = {
		{ "off", IDS_VIRTDOMAINS_OFF }, { "no", IDS_VIRTDOMAINS_OFF },
		{ "0", IDS_VIRTDOMAINS_OFF }, { "false", IDS_VIRTDOMAINS_OFF },
		{ "userid", IDS_VIRTDOMAINS_USERID }, { "UserID", IDS_VIRTDOMAINS_USERID },
		{ "on", IDS_VIRTDOMAINS_ON }, { "yes", IDS_VIRTDOMAINS_ON },
		{ "1", IDS_VIRTDOMAINS_ON }, { "true", IDS_VIRTDOMAINS_ON },
	};
	struct ids_config cfg;
	char text[200];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(text, sizeof(text), "configdirectory: /c\n"
		    "partition-default: /p\nvirtdomains: %s\n", t[i].v);
		assert_int_equal(parse(&cfg, text), 0);
		assert_int_equal(cfg.virtdomains, t[i].want);
		ids_config_release(&cfg);
	}
}

static void
test_bool(void **state)
{
	static const char *const on[] = { "1", "yes", "YES", "on", "true", "t", "T" };
	static const char *const off[] = { "0", "no", "off", "OFF", "false", "f" };
	static const char *const bad[] = { "", "2", "y", "n", "ja", "yes please", "onn" };
	size_t i;
	int b;

	(void)state;
	for (i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		b = -1;
		assert_int_equal(ids_config_bool(on[i], &b), 0);
		assert_int_equal(b, 1);
	}
	for (i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		b = -1;
		assert_int_equal(ids_config_bool(off[i], &b), 0);
		assert_int_equal(b, 0);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ids_config_bool(bad[i], &b), IDS_EINVAL);
}

#define BASE "configdirectory: /c\npartition-default: /p\n"

/* Each bad file and the exact detail it must produce. */
static void
test_errors(void **state)
{
	static const struct { const char *text, *detail; } t[] = {
		{ "configdirectory /c\n", "t.conf:1: expected 'key: value'" },
		{ BASE ": value\n", "t.conf:3: expected 'key: value'" },
		{ BASE "key.with.dots: x\n", "t.conf:3: expected 'key: value'" },
		{ BASE "@include: /etc/other.conf\n", "t.conf:3: expected 'key: value'" },
		{ BASE "foo:\n", "t.conf:3: empty value for 'foo'" },
		{ BASE "foo:   \t \n", "t.conf:3: empty value for 'foo'" },
		{ BASE "hashimapspool: maybe\n",
		  "t.conf:3: hashimapspool: 'maybe' is not a switch value" },
		{ BASE "fulldirhash: 2\n", "t.conf:3: fulldirhash: '2' is not a switch value" },
		{ BASE "unixhierarchysep: sometimes\n",
		  "t.conf:3: unixhierarchysep: 'sometimes' is not a switch value" },
		{ BASE "virtdomains: maybe\n",
		  "t.conf:3: virtdomains: 'maybe' is not off, userid or on" },
		{ "configdirectory: var/lib/imap\npartition-default: /p\n",
		  "t.conf:1: configdirectory: 'var/lib/imap' is not an absolute path" },
		{ "configdirectory: /c\npartition-default: spool\n",
		  "t.conf:2: partition-default: 'spool' is not an absolute path" },
		{ "configdirectory: /c\npartition-default: /var/../etc\n",
		  "t.conf:2: partition-default: '/var/../etc' has a '.' or '..' component" },
		{ "configdirectory: /c\npartition-default: /var/./x\n",
		  "t.conf:2: partition-default: '/var/./x' has a '.' or '..' component" },
		{ "configdirectory: /c\npartition-default: //\n",
		  "t.conf:2: partition-default: the root directory cannot be a partition" },
		{ BASE "metapartition-default: meta\n",
		  "t.conf:3: metapartition-default: 'meta' is not an absolute path" },
		{ BASE "configdirectory: /d\n",
		  "t.conf:3: 'configdirectory' already set on line 1" },
		{ BASE "partition-default: /q\n",
		  "t.conf:3: 'partition-default' already set on line 2" },
		{ BASE "HashIMAPSpool: yes\nhashimapspool: no\n",
		  "t.conf:4: 'hashimapspool' already set on line 3" },
		{ BASE "metapartition-default: /m\nmetapartition-default: /n\n",
		  "t.conf:4: 'metapartition-default' already set on line 3" },
		{ BASE "relocated_rate: 10\nrelocated_rate: 20\n",
		  "t.conf:4: 'relocated_rate' already set on line 3" },
		{ BASE "cyrus_user: cyrus\ncyrus_user: mail\n",
		  "t.conf:4: 'cyrus_user' already set on line 3" },
		{ BASE "metapartition-other: /m\n",
		  "t.conf:3: metapartition-other: there is no partition-other" },
		{ BASE "metapartition_files: header index bogus\n",
		  "t.conf:3: metapartition_files: unknown kind 'bogus'" },
		{ BASE "partition-: /x\n", "t.conf:3: partition without a name" },
		{ "partition-default: /p\n", "t.conf: configdirectory is not set" },
		{ "configdirectory: /c\n# partition-default: /p\n",
		  "t.conf: no partition-<name> is set" },
		{ "configdirectory: /c\npartition-spool: /p\n",
		  "t.conf: defaultpartition 'default' names no partition" },
		{ BASE "defaultpartition: other\n",
		  "t.conf: defaultpartition 'other' names no partition" },
		{ "", "t.conf: configdirectory is not set" },
	};
	struct ids_config cfg;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = parse(&cfg, t[i].text);

		if (r != IDS_ECONFIG)
			fail_msg("case %zu: %d %s", i, r, ids_errmsg(r));
		assert_string_equal(ids_errmsg(r), t[i].detail);
		assert_null(cfg.file);	/* released on failure */
	}
}

static void
test_nul_byte(void **state)
{
	struct ids_config cfg;
	static const char text[] = "configdirectory: /c\npartition-default: /p\0x\n";

	(void)state;
	assert_int_equal(ids_config_parse(&cfg, text, sizeof(text) - 1, "t.conf"),
	    IDS_ECONFIG);
	assert_string_equal(ids_errmsg(IDS_ECONFIG), "t.conf:2: NUL byte in line");
}

/* A file without a final newline, and one with only CRLF line ends. */
static void
test_line_ends(void **state)
{
	struct ids_config cfg;

	(void)state;
	assert_int_equal(parse(&cfg, "configdirectory: /c\r\npartition-default: /p"), 0);
	assert_string_equal(cfg.partitions[0].path, "/p");
	assert_string_equal(cfg.configdirectory, "/c");
	ids_config_release(&cfg);
}

static void
test_load(void **state)
{
	char dir[] = "/tmp/ids-unit-XXXXXX", file[200], missing[200];
	struct ids_config cfg;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/imapd.conf", dir);
	snprintf(missing, sizeof(missing), "%s/nope.conf", dir);
	assert_non_null(f = fopen(file, "w"));
	fputs("configdirectory: /c\npartition-default: /p\nhashimapspool: bad\n", f);
	fclose(f);
	assert_int_equal(ids_config_load(&cfg, file), IDS_ECONFIG);
	assert_non_null(strstr(ids_errmsg(IDS_ECONFIG), ":3: hashimapspool:"));
	assert_memory_equal(ids_errmsg(IDS_ECONFIG), file, strlen(file));
	assert_int_equal(ids_config_load(&cfg, missing), -ENOENT);
	assert_memory_equal(ids_errmsg(-ENOENT), missing, strlen(missing));
	assert_non_null(f = fopen(file, "w"));
	fputs("configdirectory: /c\npartition-default: /p\n", f);
	fclose(f);
	assert_int_equal(ids_config_load(&cfg, file), 0);
	assert_string_equal(cfg.file, file);
	ids_config_release(&cfg);
	assert_int_equal(ids_config_load(&cfg, dir), IDS_ECONFIG);
	unit_rmtree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_metafiles),
		cmocka_unit_test(test_virtdomains),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_load),
	};

	return unit_run(tests);
}
