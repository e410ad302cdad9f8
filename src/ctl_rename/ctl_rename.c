/*
 * ctl_rename - rename a folder, a folder tree or a user.
 *
 * A thin front end to the library's rename engine (rename.h): names
 * are parsed as every idspool tool parses them (external form, or
 * internal with -i), -n prints the plan, and --json prints the plan or
 * the result for scripts.  A rename of folders in the uniqueid layout
 * touches no message file; legacy folders in the subtree are migrated
 * first, which -n shows.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "lock.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "rename.h"
#include "tool.h"

#define MAX_TIMEOUT 86400	/* -t: a day, in seconds */

#define SYNOPSIS "ctl_rename [-C conf] [-i] [-n] [-q] [--copy] [--json] " \
	"[-P partition] [-t seconds] OLD NEW"

static const char help[] =
    "  -C conf        the configuration file (default /etc/idspool.conf)\n"
    "  -i             names are internal (example.com!user.john^doe.Sent)\n"
    "  -n             print the plan, change nothing\n"
    "  -q             print nothing but errors\n"
    "  --copy         allow a move to another user, by copying\n"
    "  --json         print the plan or the result as JSON\n"
    "  -P partition   the partition the folders should end up on\n"
    "  -t seconds     wait at most this long for locks (default 30)\n";

struct options {
	const char *conf;
	const char *partition;
	int internal, dryrun, quiet, copy, json, timeout;
};

struct show {
	const struct options *o;
	const struct ids_config *cfg;
	json_t *steps;
};

/* An internal name in the form the user gave names in. */
static const char *
shown(const struct show *s, const char *internal, char *buf, size_t size)
{
	struct ids_mbname mb;

	if (s->o->internal || ids_mbname_parse_internal(&mb, internal, 0) < 0 ||
	    ids_mbname_external(&mb, s->cfg, buf, size) < 0)
		snprintf(buf, size, "%s", internal);
	return buf;
}

/*
 * Each step is kept, not printed: a line printed before the rename is
 * done would read as done when it then fails.  print_steps() prints
 * them once ids_rename() has returned.
 */
static int
plan_cb(const struct ids_rename_step *st, void *rock)
{
	struct show *s = rock;
	char a[2 * IDS_MBNAME_MAX], b[2 * IDS_MBNAME_MAX];
	json_t *j;

	shown(s, st->oldname, a, sizeof(a));
	shown(s, st->newname, b, sizeof(b));
	j = json_pack("{s:s, s:s, s:s, s:b, s:b}", "old", a, "new", b,
	    "uniqueid", st->uniqueid, "convert_legacy", st->legacy, "copy", st->copy);
	if (j == NULL || json_array_append_new(s->steps, j) < 0)
		return -ENOMEM;
	return 0;
}

/* The steps as text: the plan with -n, what was done after a rename. */
static void
print_steps(const struct show *s)
{
	const char *a, *b;
	json_t *j;
	size_t i;

	if (s->o->quiet && !s->o->dryrun)
		return;
	json_array_foreach(s->steps, i, j) {
		a = json_string_value(json_object_get(j, "old"));
		b = json_string_value(json_object_get(j, "new"));
		if (json_is_true(json_object_get(j, "convert_legacy")))
			printf("convert %s to the uniqueid layout\n", a);
		printf("%s -> %s%s\n", a, b,
		    json_is_true(json_object_get(j, "copy")) ? " (copy, new uniqueid)" : "");
	}
}

static void
parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "copy", no_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long t;
	int c;

	memset(o, 0, sizeof(*o));
	o->timeout = IDS_LOCK_TIMEOUT_MS / 1000;
	while ((c = getopt_long(argc, argv, "C:inqP:t:", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': o->conf = optarg; break;
		case 'i': o->internal = 1; break;
		case 'n': o->dryrun = 1; break;
		case 'q': o->quiet = 1; break;
		case 'P': o->partition = optarg; break;
		case 't':
			if (tool_uint("-t", optarg, 0, MAX_TIMEOUT, &t) < 0)
				tool_usage(SYNOPSIS);
			o->timeout = (int)t;
			break;
		case 'c': o->copy = 1; break;
		case 'j': o->json = 1; break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	if (argc - optind != 2)
		tool_usage(SYNOPSIS);
}

static void
print_json(const struct options *o, json_t *steps, int r)
{
	/* A failed rename did nothing: its plan is not listed as folders. */
	json_t *out = r < 0 ?
	    json_pack("{s:b, s:b, s:[]}", "ok", 0, "dry_run", o->dryrun, "folders") :
	    json_pack("{s:b, s:b, s:O}", "ok", 1, "dry_run", o->dryrun, "folders", steps);
	char *text;

	if (out != NULL && r < 0)
		json_object_set_new(out, "error", json_string(ids_errmsg(r)));
	if (out == NULL || (text = json_dumps(out, JSON_PRESERVE_ORDER)) == NULL)
		errx(IDS_EXIT_ENV, "out of memory");
	printf("%s\n", text);
	free(text);
	json_decref(out);
}

int
main(int argc, char **argv)
{
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	struct ids_mbname a, b;
	struct options o;
	struct show s;
	struct ids_rename_opts ro;
	char from[IDS_MBNAME_MAX + 1], to[IDS_MBNAME_MAX + 1], obj[2 * IDS_MBNAME_MAX + 8];
	int r;

	tool_init(argv);
	parse_args(argc, argv, &o);
	tool_load_config(&cfg, o.conf);
	if (tool_parse_name(&a, argv[optind], o.internal, &cfg) < 0 ||
	    tool_parse_name(&b, argv[optind + 1], o.internal, &cfg) < 0) {
		ids_config_release(&cfg);
		return IDS_EXIT_FAIL;
	}
	if (ids_mbname_internal(&a, from, sizeof(from)) < 0 ||
	    ids_mbname_internal(&b, to, sizeof(to)) < 0)
		errx(IDS_EXIT_FAIL, "%s: name too long", argv[optind]);
	mbl = tool_open_mboxlist(&cfg, o.dryrun ? IDS_MBOXLIST_RDONLY : 0);
	s.o = &o;
	s.cfg = &cfg;
	if ((s.steps = json_array()) == NULL)
		errx(IDS_EXIT_ENV, "out of memory");
	ro.flags = (o.copy ? IDS_RENAME_COPY : 0) | (o.dryrun ? IDS_RENAME_DRYRUN : 0);
	ro.partition = o.partition;
	ro.lock_timeout_ms = o.timeout * 1000;
	ro.plan = plan_cb;
	ro.rock = &s;
	r = ids_rename(mbl, from, to, &ro);
	if (o.json)
		print_json(&o, s.steps, r);
	else if (r == 0)
		print_steps(&s);
	if (r < 0) {
		snprintf(obj, sizeof(obj), "%s -> %s", argv[optind], argv[optind + 1]);
		tool_error(r, obj);
	}
	json_decref(s.steps);
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	return tool_status();
}
