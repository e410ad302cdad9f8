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
 *
 * Messages and exit codes are those of the tools (tool.h).
 */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "intent.h"
#include "mboxlist.h"
#include "relocate.h"
#include "tool.h"
#include "helper.h"

#define SYNOPSIS "ids-helper recover|check|migrate|intent -C conf [-qR] [-s link|rename] " \
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
	} else {
		tool_usage(SYNOPSIS);
	}
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	return status;
}
