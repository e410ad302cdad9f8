/*
 * reconstruct - rebuild mailboxes.db from the spool, or check mailboxes
 * against it.
 *
 * -r walks the partitions and rebuilds every mailbox record from the
 * folders' cyrus.header files, name histories included, resolving the
 * conflicts it meets by the rules of spool-layout.md ("Reconstruct");
 * with -n it only reports what it would change.  Without -r it checks
 * the mailboxes named (or every mailbox of -u's user) and repairs their
 * headers from mailboxes.db.  The library does the work and reports
 * events; this file prints them, one line each (or one JSON object each
 * with --json), and turns the counts into the exit status.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "reconstruct.h"
#include "tool.h"

static const char synopsis[] =
    "reconstruct -r [-C conf] [-p partition] [-u user] [-n] [-q] [-v] [-i] [--json]\n"
    "       reconstruct [-C conf] [-n] [-q] [-v] [-i] [--json] -u user\n"
    "       reconstruct [-C conf] [-n] [-q] [-v] [-i] [--json] name ...";

struct options {
	const char *conf;
	int rebuild;		/* -r */
	const char *partition;	/* -p */
	const char *user;	/* -u, as given */
	int dry_run, quiet, verbose, internal, json;
	char **names;
	int nnames;
};

struct out {
	const struct options *o;
	const struct ids_config *cfg;
	char owner[IDS_MBNAME_MAX + 1];	/* -u as an owner */
	const char *sep;	/* JSON: before the next object */
	int progress;		/* a progress line is on the terminal */
};

/* --- printing events ------------------------------------------------------- */

/* The name as the user gave names: external unless -i; printable. */
static const char *
shown_name(const struct out *u, const char *name, char *buf, size_t size)
{
	char ext[2 * IDS_MBNAME_MAX + 64];
	struct ids_mbname mb;

	if (name == NULL)
		return NULL;
	if (!u->o->internal && ids_mbname_parse_internal(&mb, name, 0) == 0 &&
	    ids_mbname_external(&mb, u->cfg, ext, sizeof(ext)) >= 0)
		name = ext;
	return tool_printable(name, buf, size);
}

static void
clear_progress(struct out *u)
{
	if (u->progress) {
		fprintf(stderr, "\r%60s\r", "");
		u->progress = 0;
	}
}

static void
print_json(struct out *u, const struct ids_rc_event *ev, const char *name)
{
	static const char *kinds[] = { "progress", "change", "conflict", "repair",
	    "failed", "note" };
	json_t *obj = json_object();
	char *text;

	json_object_set_new(obj, "kind", json_string(kinds[ev->kind]));
	json_object_set_new(obj, "rule", json_string(ev->rule));
#define OPT(k, v) do { if (v) json_object_set_new(obj, k, json_string(v)); } while (0)
	OPT("path", ev->path);
	OPT("name", name);
	OPT("uniqueid", ev->uniqueid);
	OPT("field", ev->field);
	OPT("from", ev->from);
	OPT("to", ev->to);
	OPT("detail", ev->detail);
	OPT("error", ev->code ? ids_strerror(ev->code) : NULL);
#undef OPT
	if ((text = json_dumps(obj, JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)) != NULL)
		printf("%s%s", u->sep, text);
	u->sep = ",\n";
	free(text);
	json_decref(obj);
}

static void
print_change(const struct ids_rc_event *ev, const char *name)
{
	if (strcmp(ev->rule, "added") == 0)
		printf("%s: added %s (%s)\n", name, ev->field, ev->to);
	else if (strcmp(ev->rule, "removed") == 0)
		printf("%s: removed %s (%s)\n", name, ev->field, ev->from);
	else
		printf("%s: %s: %s -> %s\n", name, ev->field, ev->from, ev->to);
}

static void
print_repair(const struct out *u, const struct ids_rc_event *ev, const char *where)
{
	int dry = u->o->dry_run;

	if (strcmp(ev->rule, "directory") == 0)
		printf("%s: %s %s\n", where, dry ? "would rename to" : "renamed to", ev->detail);
	else if (strcmp(ev->rule, "index") == 0)
		printf("%s: cyrus.index %s %s\n", where, ev->detail, dry ? "to update" : "updated");
	else
		printf("%s: cyrus.header %s (%s)\n", where, dry ? "to rewrite" : "rewritten",
		    ev->detail);
}

static void
print_event(const struct ids_rc_event *ev, void *rock)
{
	struct out *u = rock;
	char name[2 * IDS_MBNAME_MAX + 64], path[1024];
	const char *n = shown_name(u, ev->name, name, sizeof(name)), *where;

	if (ev->kind == IDS_RC_PROGRESS) {
		if (!u->o->quiet && isatty(STDERR_FILENO)) {
			fprintf(stderr, "\rreconstruct: %lu folders", ev->count);
			u->progress = 1;
		}
		return;
	}
	clear_progress(u);
	where = ev->path ? tool_printable(ev->path, path, sizeof(path)) : n ? n : "?";
	if (ev->kind == IDS_RC_FAILED)
		warnx("%s: %s", where, ev->detail ? ev->detail : ids_strerror(ev->code));
	if (u->o->json) {
		if (ev->kind != IDS_RC_NOTE || u->o->verbose)
			print_json(u, ev, n);
		return;
	}
	if (u->o->quiet || ev->kind == IDS_RC_FAILED ||
	    (ev->kind == IDS_RC_NOTE && !u->o->verbose))
		return;
	if (ev->kind == IDS_RC_CHANGE)
		print_change(ev, n ? n : "?");
	else if (ev->kind == IDS_RC_REPAIR)
		print_repair(u, ev, where);
	else
		printf("%s: %s%s%s\n", where, ev->kind == IDS_RC_CONFLICT ? ev->rule : "",
		    ev->kind == IDS_RC_CONFLICT ? ": " : "", ev->detail ? ev->detail : "");
}

/* --- running ----------------------------------------------------------------- */

static void
summary(const struct out *u, const struct ids_reconstruct_stats *st)
{
	if (!u->o->verbose || u->o->json || u->o->quiet)
		return;
	if (u->o->rebuild)
		printf("%lu folders (%lu legacy): %lu mailboxes, %lu tombstones; ",
		    st->folders, st->legacy, st->live, st->tombstones);
	else
		printf("%lu mailboxes checked; ", st->live);
	printf("%lu conflicts, %lu repairs, %lu changes, %lu failed\n", st->conflicts,
	    st->repairs, st->changes, st->failed);
}

/* 1 for failures, and in a dry run for anything to do. */
static int
status_of(const struct options *o, const struct ids_reconstruct_stats *st)
{
	if (st->failed > 0 || tool_status() != IDS_EXIT_OK)
		return IDS_EXIT_FAIL;
	if (o->dry_run && st->changes + st->repairs + st->conflicts > 0)
		return IDS_EXIT_FAIL;
	return IDS_EXIT_OK;
}

static int
env_or_fail(int r)
{
	return r == -ENOMEM || r == IDS_EDB || r == IDS_ECONFIG || r == IDS_EFORMAT ||
	    r == IDS_ELOCKED || r == IDS_EPARTITION || (r < 0 && r > -4096) ?
	    IDS_EXIT_ENV : IDS_EXIT_FAIL;
}

static struct ids_mboxlist *
open_for_rebuild(const struct options *o, const struct ids_config *cfg)
{
	struct ids_mboxlist *mbl = NULL;
	int r;

	if (!o->dry_run)
		return tool_open_mboxlist(cfg, IDS_MBOXLIST_CREATE);
	if ((r = ids_mboxlist_open(cfg, IDS_MBOXLIST_RDONLY, &mbl)) == IDS_ENOTFOUND)
		return NULL;	/* nothing yet: everything found is "added" */
	if (r < 0) {
		warnx("%s/mailboxes.db: %s", cfg->configdirectory, ids_errmsg(r));
		exit(IDS_EXIT_ENV);
	}
	return mbl;
}

static int
do_rebuild(const struct options *o, struct out *u, const struct ids_config *cfg)
{
	struct ids_reconstruct_opts ro = { o->partition, o->user ? u->owner : NULL,
	    o->dry_run, 0 };
	struct ids_reconstruct_stats st;
	struct ids_mboxlist *mbl = open_for_rebuild(o, cfg);
	int r;

	r = ids_reconstruct_rebuild(cfg, mbl, &ro, print_event, u, &st);
	clear_progress(u);
	ids_mboxlist_close(mbl);
	if (r < 0) {
		warnx("%s", ids_errmsg(r));
		return IDS_EXIT_ENV;
	}
	summary(u, &st);
	return status_of(o, &st);
}

static void
add_stats(struct ids_reconstruct_stats *a, const struct ids_reconstruct_stats *b)
{
	a->live += b->live;
	a->conflicts += b->conflicts;
	a->repairs += b->repairs;
	a->changes += b->changes;
	a->failed += b->failed;
}

static int
do_check(const struct options *o, struct out *u, const struct ids_config *cfg)
{
	struct ids_reconstruct_opts ro = { NULL, NULL, o->dry_run, 0 };
	struct ids_reconstruct_stats st, all = { 0 };
	struct ids_mboxlist *mbl = tool_open_mboxlist(cfg, o->dry_run ? IDS_MBOXLIST_RDONLY : 0);
	char name[IDS_MBNAME_MAX + 1];
	struct ids_mbname mb;
	int i, r, env = 0;

	if (o->user && (r = ids_reconstruct_check_owner(mbl, u->owner, &ro, print_event,
	    u, &st)) < 0 && env_or_fail(tool_error(r, o->user)) == IDS_EXIT_ENV)
		env = 1;
	if (o->user)
		add_stats(&all, &st);
	for (i = 0; i < o->nnames; i++) {
		if (tool_parse_name(&mb, o->names[i], o->internal, cfg) < 0 ||
		    ids_mbname_internal(&mb, name, sizeof(name)) < 0)
			continue;
		r = ids_reconstruct_check(mbl, name, &ro, print_event, u, &st);
		add_stats(&all, &st);
		if (r < 0 && env_or_fail(tool_error(r, o->names[i])) == IDS_EXIT_ENV)
			env = 1;
	}
	ids_mboxlist_close(mbl);
	summary(u, &all);
	return env ? IDS_EXIT_ENV : status_of(o, &all);
}

/* --- options --------------------------------------------------------------- */

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "C:rp:u:nqvi", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': o->conf = optarg; break;
		case 'r': o->rebuild = 1; break;
		case 'p': o->partition = optarg; break;
		case 'u': o->user = optarg; break;
		case 'n': o->dry_run = 1; break;
		case 'q': o->quiet = 1; break;
		case 'v': o->verbose = 1; break;
		case 'i': o->internal = 1; break;
		case 'j': o->json = 1; break;
		case 'h': tool_help(synopsis);
		case 'V': tool_version();
		default: tool_usage(synopsis);
		}
	}
	o->names = argv + optind;
	o->nnames = argc - optind;
	if ((o->rebuild && o->nnames > 0) || (!o->rebuild && o->partition) ||
	    (!o->rebuild && !o->user && o->nnames == 0) || (o->user && o->nnames > 0) ||
	    (o->quiet && o->verbose))
		tool_usage(synopsis);
}

/* -u's userid as the owner spelling of the library ("john@example.com"). */
static void
parse_user(const struct options *o, const struct ids_config *cfg, struct out *u)
{
	char ext[IDS_MBNAME_MAX + 16];
	struct ids_mbname mb;

	if (o->user == NULL)
		return;
	if (strchr(o->user, '/') != NULL || o->user[0] == '\0' ||
	    (size_t)snprintf(ext, sizeof(ext), "user/%s", o->user) >= sizeof(ext) ||
	    ids_mbname_parse_external(&mb, ext, cfg, 0) < 0 || !ids_mbname_is_inbox(&mb)) {
		warnx("-u %s: not a userid", o->user);
		exit(IDS_EXIT_USAGE);
	}
	ids_mbname_normalize(&mb, cfg);
	if (ids_mbname_owner(&mb, u->owner, sizeof(u->owner)) < 0) {
		warnx("-u %s: not a userid", o->user);
		exit(IDS_EXIT_USAGE);
	}
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	struct out u = { &o, NULL, "", "", 0 };
	struct ids_config cfg;
	int rc;

	tool_init(argv);
	parse_options(argc, argv, &o);
	tool_load_config(&cfg, o.conf);
	u.cfg = &cfg;
	if (o.partition && ids_config_partition(&cfg, o.partition) == NULL) {
		warnx("-p %s: no such partition in %s", o.partition, cfg.file);
		ids_config_release(&cfg);
		return IDS_EXIT_ENV;
	}
	parse_user(&o, &cfg, &u);
	if (o.json)
		fputs("[\n", stdout);
	rc = o.rebuild ? do_rebuild(&o, &u, &cfg) : do_check(&o, &u, &cfg);
	if (o.json)
		fputs("\n]\n", stdout);
	ids_config_release(&cfg);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		warn("stdout");
		return IDS_EXIT_ENV;
	}
	return rc;
}
