/*
 * spool_append - deliver RFC 5322 messages into a folder.
 *
 * The stand-in for a delivery agent: each FILE (standard input when
 * none is given) is one message, appended to the folder under its
 * mailbox lock with the next UID, its SHA-1 GUID in the index, durable
 * before the next one starts.  It resolves the folder's path under the
 * lock, so it delivers safely into folders the walker is migrating.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "tool.h"

#define SYNOPSIS "spool_append [-C conf] [-i] [-q] NAME [FILE ...]"

static const char help[] =
    "  -C conf   the configuration file (default /etc/idspool.conf)\n"
    "  -i        the name is internal (example.com!user.john^doe.Sent)\n"
    "  -q        print nothing but errors (not the UIDs)\n"
    "  FILE      a message to deliver (none: one on standard input)\n";
#define MAX_MESSAGE ((size_t)1 << 30)

static int quiet;

static int
read_all(int fd, struct ids_buf *b)
{
	char chunk[65536];
	ssize_t n;

	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (b->len + (size_t)n > MAX_MESSAGE)
			return ids_error(IDS_ETOOLONG, "message over %zu bytes", MAX_MESSAGE);
		if (ids_buf_add(b, chunk, (size_t)n) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Delivers the message in file ("-" for standard input). */
static void
append_one(struct ids_mboxlist *mbl, const char *name, const char *shown,
    const char *file)
{
	struct ids_buf b = IDS_BUF_INIT;
	uint32_t uid;
	int fd = 0, r;

	if (strcmp(file, "-") != 0 && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		tool_error(-errno, file);
		return;
	}
	r = read_all(fd, &b);
	if (fd > 0)
		close(fd);
	if (r < 0) {
		tool_error(r, strcmp(file, "-") ? file : "stdin");
	} else if ((r = ids_mailbox_deliver(mbl, name, b.s, b.len, time(NULL), &uid)) < 0) {
		tool_error(r, shown);
	} else if (!quiet) {
		printf("%s: uid %u\n", shown, uid);
	}
	ids_buf_release(&b);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	struct ids_mbname mb;
	const char *conf = NULL;
	char name[IDS_MBNAME_MAX + 1];
	int c, internal = 0, i;

	tool_init(argv);
	while ((c = getopt_long(argc, argv, "C:iq", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': conf = optarg; break;
		case 'i': internal = 1; break;
		case 'q': quiet = 1; break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	if (optind >= argc)
		tool_usage(SYNOPSIS);
	tool_load_config(&cfg, conf);
	if (tool_parse_name(&mb, argv[optind], internal, &cfg) < 0 ||
	    (ids_mbname_internal(&mb, name, sizeof(name)) < 0 &&
	    tool_error(IDS_ETOOLONG, argv[optind]) < 0)) {
		ids_config_release(&cfg);
		return IDS_EXIT_FAIL;
	}
	mbl = tool_open_mboxlist(&cfg, 0);
	if (optind + 1 == argc)
		append_one(mbl, name, argv[optind], "-");
	for (i = optind + 1; i < argc; i++)
		append_one(mbl, name, argv[optind], argv[i]);
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	return tool_status();
}
