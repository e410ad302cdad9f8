/*
 * fixture.c - the scratch spool shared by the unit tests (fixture.h).
 *
 * Setup runs outside any test, where cmocka's assertions would not
 * name a failing test: each step reports failure by returning -1, and
 * cmocka fails the group's setup.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mboxlist.h"
#include "fixture.h"
#include "unit.h"

/* mkdir of root/name; an existing directory is fine. */
static int
make_dir(const char *root, const char *name)
{
	char path[256];

	if (snprintf(path, sizeof(path), "%s%s%s", root, *name ? "/" : "", name) >=
	    (int)sizeof(path))
		return -1;
	return mkdir(path, 0750) < 0 && access(path, F_OK) < 0 ? -1 : 0;
}

/* Appends formatted lines to text; -1 when they do not fit. */
static int __attribute__((format(printf, 3, 4)))
add(char *text, size_t size, const char *fmt, ...)
{
	size_t n = strlen(text);
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(text + n, size - n, fmt, ap);
	va_end(ap);
	return len < 0 || (size_t)len >= size - n ? -1 : 0;
}

int
fixture_config(struct ids_config *cfg, const char *root, unsigned flags,
    const char *extra, const char *file)
{
	char text[1024] = "";

	if (make_dir(root, "") < 0 || add(text, sizeof(text), "configdirectory: %s\n", root) < 0)
		return -1;
	if (flags & FIXTURE_FLAT) {
		if (add(text, sizeof(text), "partition-default: %s\n", root) < 0)
			return -1;
	} else if (make_dir(root, "spool") < 0 ||
	    add(text, sizeof(text), "partition-default: %s/spool\n", root) < 0 ||
	    add(text, sizeof(text), "hashimapspool: yes\nvirtdomains: userid\n") < 0)
		return -1;
	if ((flags & FIXTURE_META) && (make_dir(root, "meta") < 0 ||
	    add(text, sizeof(text), "metapartition-default: %s/meta\n", root) < 0))
		return -1;
	if ((flags & FIXTURE_TWO) && (make_dir(root, "two") < 0 ||
	    add(text, sizeof(text), "partition-two: %s/two\n", root) < 0))
		return -1;
	if ((flags & FIXTURE_SIEVE) && (make_dir(root, "sieve") < 0 ||
	    add(text, sizeof(text), "sievedir: %s/sieve\n", root) < 0))
		return -1;
	if (add(text, sizeof(text), "%s", extra) < 0)
		return -1;
	return ids_config_parse(cfg, text, strlen(text), file) < 0 ? -1 : 0;
}

int
fixture_init(struct fixture *f, const char *tag, unsigned flags, const char *extra)
{
	if (snprintf(f->dir, sizeof(f->dir), "/tmp/ids-%s-XXXXXX", tag) >= (int)sizeof(f->dir) ||
	    mkdtemp(f->dir) == NULL)
		return -1;
	if (fixture_config(&f->cfg, f->dir, flags, extra, "test.conf") < 0)
		return -1;
	return ids_mboxlist_open(&f->cfg, IDS_MBOXLIST_CREATE, &f->mbl) < 0 ? -1 : 0;
}

void
fixture_release(struct fixture *f)
{
	ids_mboxlist_close(f->mbl);
	f->mbl = NULL;
	ids_config_release(&f->cfg);
	if (f->dir[0])
		unit_rmtree(f->dir);
}

int
fixture_setup(void **state, const char *tag, unsigned flags, const char *extra)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	*state = f;
	return fixture_init(f, tag, flags, extra);
}

int
fixture_teardown(void **state)
{
	fixture_release(*state);
	free(*state);
	return 0;
}
