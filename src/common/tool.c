/*
 * tool.c - shared command-line support (see tool.h).
 */
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tool.h"

static int failed;

void
tool_init(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');

	program_invocation_short_name = (char *)(slash ? slash + 1 : argv0);
	program_invocation_name = program_invocation_short_name;
}

int
tool_error(int code, const char *object)
{
	warnx("%s: %s", object, ids_errmsg(code));
	failed = 1;
	return code;
}

int
tool_status(void)
{
	return failed ? IDS_EXIT_FAIL : IDS_EXIT_OK;
}

void
tool_usage(const char *synopsis)
{
	fprintf(stderr, "usage: %s\n", synopsis);
	exit(IDS_EXIT_USAGE);
}

void
tool_help(const char *synopsis)
{
	printf("usage: %s\n", synopsis);
	exit(IDS_EXIT_OK);
}

void
tool_version(void)
{
	printf("%s (idspool) %s\n", program_invocation_short_name, IDS_VERSION);
	exit(IDS_EXIT_OK);
}
