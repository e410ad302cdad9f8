/*
 * helper.c - ids-helper, a test program in the manner of git's
 * t/helper: it exposes what no command offers (yet) to the end-to-end
 * reliability tests.
 *
 *   ids-helper recover -C conf
 *	what every tool does when it starts (tool_open_mboxlist): open
 *	mailboxes.db and settle the intents of dead processes.
 *   ids-helper check -C conf [-q] [-R]
 *	the invariant checker (check.c); exit 1 on a violation.  With -R
 *	it first recovers, as "recover" does (one process for both).
 *   ids-helper migrate -C conf [-s link|rename] [-g grace] NAME ...
 *	migrates legacy folders (internal names) one by one with the
 *	walker's per-folder code; stops at the first failure.
 *   ids-helper intent -C conf UNIQUEID OP STAGE NAME DST
 *	writes the intent record (X + UNIQUEID) a process left as it died,
 *	such as one an older version wrote for a name the door now refuses.
 *   ids-helper flags -C conf NAME FLAG ...
 *	gives the folder NAME (internal) the user flag names FLAG ...
 *	(bits 0, 1, ...) in its cyrus.header, as a Cyrus client's STORE of
 *	new keywords would, with the index's header CRC to match.
 *
 * Messages and exit codes are those of the tools (tool.h).
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "header.h"
#include "index.h"
#include "intent.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "relocate.h"
#include "tool.h"
#include "helper.h"

#define SYNOPSIS "ids-helper recover|check|migrate|intent|flags -C conf [-qR] [-s link|rename] " \
	"[-g grace] [NAME ...]"

struct options {
	const char *conf;
	int quiet;
	int recover;
	enum ids_strategy strategy;
	long grace;
};

static void
parse(int argc, char **argv, struct options *o)
{
	unsigned long long g;
	int c;

	while ((c = getopt(argc, argv, "C:qRs:g:")) != -1) {
		switch (c) {
		case 'C': o->conf = optarg; break;
		case 'q': o->quiet = 1; break;
		case 'R': o->recover = 1; break;
		case 'g':
			if (tool_uint("-g", optarg, 0, 31536000, &g) < 0)
				tool_usage(SYNOPSIS);
			o->grace = (long)g;
			break;
		case 's':
			if (ids_strategy_parse(optarg, &o->strategy) < 0)
				tool_usage(SYNOPSIS);
			break;
		default: tool_usage(SYNOPSIS);
		}
	}
}

static int
do_migrate(struct ids_mboxlist *mbl, const struct options *o, char **names, int n)
{
	struct ids_relocate_opts ro = { o->strategy, o->grace, 30000, NULL, NULL, 0 };
	struct ids_relocate_stats st = { 0 };
	int i, r;

	for (i = 0; i < n; i++) {
		r = ids_relocate_folder(mbl, names[i], &ro, &st);
		if (r < 0) {
			tool_error(r, names[i]);
			break;
		}
		if (!o->quiet)
			printf("%s: %s\n", names[i], r == IDS_RELOCATE_PENDING ? "pending" : "done");
	}
	return tool_status();
}

static int
put_intent_txn(struct ids_txn *txn, void *rock)
{
	char **a = rock;
	struct ids_intent in;
	int r;

	ids_intent_init(&in);
	snprintf(in.op, sizeof(in.op), "%s", a[1]);
	snprintf(in.stage, sizeof(in.stage), "%s", a[2]);
	in.time = 1;
	if ((r = ids_intent_set(&in.name, a[3])) == 0 &&
	    (r = ids_intent_set(&in.dst, a[4])) == 0)
		r = ids_intent_put(txn, a[0], &in);
	ids_intent_release(&in);
	return r;
}

static int
do_intent(struct ids_mboxlist *mbl, char **args, int n)
{
	int r;

	if (n != 5)
		tool_usage(SYNOPSIS);
	if ((r = ids_mboxlist_write(mbl, put_intent_txn, args)) < 0)
		tool_error(r, args[0]);
	return tool_status();
}

static int
do_flags(struct ids_mboxlist *mbl, char **args, int n)
{
	struct ids_mailbox *mb;
	struct ids_header h;
	uint32_t crc;
	int i, r;

	if (n < 2 || n - 1 > IDS_HEADER_MAX_FLAGS)
		tool_usage(SYNOPSIS);
	if ((r = ids_mailbox_open(mbl, args[0], IDS_MAILBOX_WRITE, 10000, &mb)) < 0)
		return tool_error(r, args[0]), tool_status();
	ids_header_init(&h);
	if ((r = ids_header_read(ids_mailbox_metafd(mb, IDS_META_HEADER), &h, NULL)) < 0)
		goto out;
	for (i = 0; i < (int)h.nflags; i++)
		free(h.flags[i]);
	free(h.flags);
	h.nflags = 0;
	if ((h.flags = calloc((size_t)n - 1, sizeof(*h.flags))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 1; i < n; i++, h.nflags++)
		if ((h.flags[i - 1] = strdup(args[i])) == NULL) {
			r = -ENOMEM;
			goto out;
		}
	if ((r = ids_header_write(ids_mailbox_metafd(mb, IDS_META_HEADER), &h, &crc)) == 0)
		r = ids_index_set_header_crc(ids_mailbox_metafd(mb, IDS_META_INDEX), crc);
out:
	if (r < 0)
		tool_error(r, args[0]);
	ids_header_release(&h);
	ids_mailbox_close(mb);
	return tool_status();
}

int
main(int argc, char **argv)
{
	struct options o = { NULL, 0, 0, IDS_STRATEGY_LINK, 0 };
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	const char *cmd;
	int status;

	static char *name[] = { (char *)"ids-helper", NULL };

	tool_init(name);
	if (argc < 2)
		tool_usage(SYNOPSIS);
	cmd = argv[1];
	parse(argc - 1, argv + 1, &o);
	tool_load_config(&cfg, o.conf);
	if (strcmp(cmd, "check") == 0) {
		if (o.recover)
			ids_mboxlist_close(tool_open_mboxlist(&cfg, 0));
		mbl = tool_open_mboxlist(&cfg, IDS_MBOXLIST_RDONLY);
		status = helper_check(&cfg, mbl, o.quiet);
	} else if (strcmp(cmd, "recover") == 0) {
		mbl = tool_open_mboxlist(&cfg, 0);
		status = IDS_EXIT_OK;
	} else if (strcmp(cmd, "migrate") == 0) {
		mbl = tool_open_mboxlist(&cfg, 0);
		status = do_migrate(mbl, &o, argv + 1 + optind, argc - 1 - optind);
	} else if (strcmp(cmd, "intent") == 0) {
		/* Opened without recovery, which would settle what it plants. */
		if ((status = ids_mboxlist_open(&cfg, 0, &mbl)) < 0)
			errx(IDS_EXIT_ENV, "%s", ids_errmsg(status));
		status = do_intent(mbl, argv + 1 + optind, argc - 1 - optind);
	} else if (strcmp(cmd, "flags") == 0) {
		mbl = tool_open_mboxlist(&cfg, 0);
		status = do_flags(mbl, argv + 1 + optind, argc - 1 - optind);
	} else {
		tool_usage(SYNOPSIS);
	}
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	return status;
}
