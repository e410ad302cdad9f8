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
	FILE *steps;		/* one JSON object a line, in an unnamed file */
	size_t n;
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
 * them once ids_rename() has returned.  They are kept in a file, not in
 * memory: a rename of 100,000 folders has as many steps.
 */
static int
plan_cb(const struct ids_rename_step *st, void *rock)
{
	struct show *s = rock;
	char a[2 * IDS_MBNAME_MAX], b[2 * IDS_MBNAME_MAX], *text;
	json_t *j;
	int r = 0;

	shown(s, st->oldname, a, sizeof(a));
	shown(s, st->newname, b, sizeof(b));
	j = json_pack("{s:s, s:s, s:s, s:b, s:b}", "old", a, "new", b,
	    "uniqueid", st->uniqueid, "convert_legacy", st->legacy, "copy", st->copy);
	if (j == NULL || (text = json_dumps(j, JSON_PRESERVE_ORDER)) == NULL) {
		json_decref(j);
		return -ENOMEM;
	}
	if (fprintf(s->steps, "%s\n", text) < 0)
		r = ids_error(-EIO, "the list of steps: %s", strerror(errno));
	free(text);
	json_decref(j);
	s->n++;
	return r;
}

/* Calls fn for each step kept, as text and parsed. */
static void
each_step(const struct show *s, void (*fn)(const char *text, json_t *j, size_t i))
{
	char *line = NULL;
	size_t cap = 0, i = 0;
	ssize_t len;
	json_t *j;

	if (fflush(s->steps) != 0 || fseek(s->steps, 0, SEEK_SET) != 0)
		err(IDS_EXIT_ENV, "the list of steps");
	while ((len = getline(&line, &cap, s->steps)) > 0) {
		line[len - 1] = '\0';
		if ((j = json_loads(line, 0, NULL)) == NULL)
			errx(IDS_EXIT_ENV, "the list of steps: unreadable");
		fn(line, j, i++);
		json_decref(j);
	}
	free(line);
}

static void
print_step(const char *text, json_t *j, size_t i)
{
	const char *a = json_string_value(json_object_get(j, "old"));
	const char *b = json_string_value(json_object_get(j, "new"));

	if (json_is_true(json_object_get(j, "convert_legacy")))
		printf("convert %s to the uniqueid layout\n", a);
	printf("%s -> %s%s\n", a, b,
	    json_is_true(json_object_get(j, "copy")) ? " (copy, new uniqueid)" : "");
}

/* The steps as text: the plan with -n, what was done after a rename. */
static void
print_steps(const struct show *s)
{
	if (s->o->quiet && !s->o->dryrun)
		return;
	each_step(s, print_step);
}

static void
print_json_step(const char *text, json_t *j, size_t i)
{
	printf("%s%s", i ? ", " : "", text);
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

/* As json_dumps() of the whole object would print it, the steps streamed. */
static void
print_json(const struct show *s, int r)
{
	json_t *out;
	char *text;

	if (r == 0) {
		printf("{\"ok\": true, \"dry_run\": %s, \"folders\": [",
		    s->o->dryrun ? "true" : "false");
		each_step(s, print_json_step);
		printf("]}\n");
		return;
	}
	/* A failed rename did nothing: its plan is not listed as folders. */
	out = json_pack("{s:b, s:b, s:[]}", "ok", 0, "dry_run", s->o->dryrun, "folders");
	if (out != NULL)
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
	tool_raise_nofile();
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
	s.n = 0;
	if ((s.steps = tmpfile()) == NULL)
		err(IDS_EXIT_ENV, "a file for the list of steps");
	ro.flags = (o.copy ? IDS_RENAME_COPY : 0) | (o.dryrun ? IDS_RENAME_DRYRUN : 0);
	ro.partition = o.partition;
	ro.lock_timeout_ms = o.timeout * 1000;
	ro.plan = plan_cb;
	ro.rock = &s;
	r = ids_rename(mbl, from, to, &ro);
	if (o.json)
		print_json(&s, r);
	else if (r == 0)
		print_steps(&s);
	if (r < 0) {
		snprintf(obj, sizeof(obj), "%s -> %s", argv[optind], argv[optind + 1]);
		tool_error(r, obj);
	}
	fclose(s.steps);
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	return tool_status();
}
