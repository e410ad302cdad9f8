/*
 * reconstruct - rebuild mailboxes.db from the spool, or check mailboxes
 * against it.
 *
 * -m (Cyrus 2.x's "rebuild the mailboxes file") walks the partitions and
 * rebuilds every mailbox record from the folders' cyrus.header files,
 * name histories included, resolving the conflicts it meets by the rules
 * of spool-layout.md ("Reconstruct"); with -n it only reports what it
 * would change.  Without -m it checks the mailboxes named (with -r, and
 * every mailbox below them; with -u, every mailbox of the users named)
 * and repairs their headers from mailboxes.db.  Every option Cyrus 3.6's
 * reconstruct has means what it means there, or is refused with a
 * pointer to ours.  The library does the work and reports
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

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "reconstruct.h"
#include "tool.h"

static const char synopsis[] =
    "reconstruct -m [-C conf] [-p partition] [-n] [-q] [-v] [-i] [--json] [-u user]\n"
    "       reconstruct [-C conf] [-r] [-n] [-q] [-v] [-i] [--json] name ...\n"
    "       reconstruct [-C conf] [-n] [-q] [-v] [-i] [--json] -u user ...";

static const char help[] =
    "  -m            rebuild mailboxes.db from the folders on disk\n"
    "  -C conf       the configuration file (default /etc/idspool.conf)\n"
    "  -p partition  with -m: walk only this partition\n"
    "  -r            also check every mailbox below each name\n"
    "  -u            the arguments are userids: every mailbox of each user\n"
    "  -n            change nothing, print what would change\n"
    "  -q            print nothing but failures\n"
    "  -v            also print notes and a summary line\n"
    "  -i            names are internal (example.com!user.john^doe.Sent)\n"
    "  -M            accepted: mailboxes.db always wins over cyrus.header\n"
    "  --json        print a JSON array of events\n";

struct options {
	const char *conf;
	int rebuild;		/* -m */
	int recursive;		/* -r */
	const char *partition;	/* -p */
	int users;		/* -u: the arguments are userids */
	const char *user;	/* the user being handled, as given */
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
		char path[4096];

		snprintf(path, sizeof(path), "%s/mailboxes.db", cfg->configdirectory);
		warnx("%s: %s", path, tool_reason(path, r));
		exit(IDS_EXIT_ENV);
	}
	return mbl;
}

static int
do_rebuild(const struct options *o, struct out *u, const struct ids_config *cfg)
{
	struct ids_reconstruct_opts ro = { .partition = o->partition,
	    .owner = o->user ? u->owner : NULL, .dry_run = o->dry_run };
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

/* The live mailboxes at and below a name (-r), for check_tree. */
struct tree {
	const char *name;
	char **v;
	size_t n, cap;
	int err;
};

static int
tree_add(const struct ids_mbentry *e, void *rock)
{
	struct tree *t = rock;

	if (ids_mbentry_is_tombstone(e))
		return 0;
	if (IDS_ALLOC_GROW(t->v, t->n + 1, t->cap) < 0)
		return -ENOMEM;
	if ((t->v[t->n] = strdup(e->name)) == NULL)
		return -ENOMEM;
	t->n++;
	return 0;
}

static int
tree_txn(struct ids_txn *txn, void *rock)
{
	struct tree *t = rock;

	return ids_txn_foreach(txn, t->name, tree_add, t);
}

/* Checks name, and with -r every live mailbox below it. */
static int
check_tree(const struct options *o, struct out *u, struct ids_mboxlist *mbl,
    const char *name, const char *shown, struct ids_reconstruct_stats *all)
{
	struct ids_reconstruct_opts ro = { .dry_run = o->dry_run };
	struct ids_reconstruct_stats st;
	struct tree t = { name, NULL, 0, 0, 0 };
	size_t i;
	int r, env = 0;

	if (o->recursive && (r = ids_mboxlist_read(mbl, tree_txn, &t)) < 0) {
		env = tool_exit_status(tool_error(r, shown)) == IDS_EXIT_ENV;
		t.n = 0;
	} else if (o->recursive && t.n > 0) {
		for (i = 0; i < t.n; i++) {
			char one[2 * IDS_MBNAME_MAX + 64];
			const char *s = shown_name(u, t.v[i], one, sizeof(one));

			r = ids_reconstruct_check(mbl, t.v[i], &ro, print_event, u, &st);
			add_stats(all, &st);
			if (r < 0 && tool_exit_status(tool_error(r, s)) == IDS_EXIT_ENV)
				env = 1;
		}
	} else {
		r = ids_reconstruct_check(mbl, name, &ro, print_event, u, &st);
		add_stats(all, &st);
		if (r < 0 && tool_exit_status(tool_error(r, shown)) == IDS_EXIT_ENV)
			env = 1;
	}
	for (i = 0; i < t.n; i++)
		free(t.v[i]);
	free(t.v);
	return env;
}

static void parse_user(const char *user, const struct ids_config *cfg, char *owner,
    size_t size);

static int
do_check(const struct options *o, struct out *u, const struct ids_config *cfg)
{
	struct ids_reconstruct_opts ro = { .dry_run = o->dry_run };
	struct ids_reconstruct_stats st, all = { 0 };
	struct ids_mboxlist *mbl = tool_open_mboxlist(cfg, o->dry_run ? IDS_MBOXLIST_RDONLY : 0);
	char name[IDS_MBNAME_MAX + 1];
	struct ids_mbname mb;
	int i, r, env = 0;

	for (i = 0; i < o->nnames; i++) {
		if (o->users) {
			parse_user(o->names[i], cfg, u->owner, sizeof(u->owner));
			r = ids_reconstruct_check_owner(mbl, u->owner, &ro, print_event, u, &st);
			add_stats(&all, &st);
			if (r < 0 && tool_exit_status(tool_error(r, o->names[i])) == IDS_EXIT_ENV)
				env = 1;
			continue;
		}
		if (tool_parse_name(&mb, o->names[i], o->internal, cfg) < 0 ||
		    ids_mbname_internal(&mb, name, sizeof(name)) < 0)
			continue;
		env |= check_tree(o, u, mbl, name, o->names[i], &all);
	}
	ids_mboxlist_close(mbl);
	summary(u, &all);
	return env ? IDS_EXIT_ENV : status_of(o, &all);
}

/* --- options --------------------------------------------------------------- */

/*
 * Cyrus 3.6's options that idspool's reconstruct does not have: each is
 * refused with what it means there and what to use here.
 */
static const struct cyrus_option {
	int c;
	const char *meaning;	/* in Cyrus */
	const char *instead;	/* here */
} cyrus_only[] = {
	{ 'x', "do not import metadata from disk", "reconstruct -m reads every header" },
	{ 'f', "add folders found on disk below the mailbox", "reconstruct -m" },
	{ 's', "do not stat message files", "spool_audit checks message files" },
	{ 'd', "check mailboxes.db and insert missing entries", "reconstruct -m" },
	{ 'G', "re-parse every message to check its GUID", "spool_audit" },
	{ 'R', "keep messages whose GUID does not match", "spool_audit --repair-from" },
	{ 'U', "delete messages whose GUID does not match", "spool_audit --repair-from" },
	{ 'I', "give a new unique id to a duplicate", "reconstruct -m, which always does" },
	{ 'o', "ignore odd files", "spool_audit" },
	{ 'O', "delete odd files", "spool_audit" },
	{ 'V', "set the cyrus.index minor version", "nothing: idspool keeps Cyrus's version" },
	{ 'P', "create records from cyrus.header paths", "reconstruct -m -p partition" },
};

static void __attribute__((noreturn))
refuse_cyrus(int c)
{
	size_t i;

	for (i = 0; i < sizeof(cyrus_only) / sizeof(cyrus_only[0]); i++)
		if (cyrus_only[i].c == c)
			break;
	warnx("-%c (in Cyrus: %s) is not supported; use %s (reconstruct(8))", c,
	    cyrus_only[i].meaning, cyrus_only[i].instead);
	exit(IDS_EXIT_USAGE);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "C:mrp:unqviMkgxfsdGRUIoOV:P", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': o->conf = optarg; break;
		case 'm': o->rebuild = 1; break;
		case 'r': o->recursive = 1; break;
		case 'p': o->partition = optarg; break;
		case 'u': o->users = 1; break;
		case 'n': o->dry_run = 1; break;
		case 'q': o->quiet = 1; break;
		case 'v': o->verbose = 1; break;
		case 'i': o->internal = 1; break;
		case 'j': o->json = 1; break;
		case 'M': break;	/* Cyrus's "prefer mailboxes.db": always so here */
		case 'k':
		case 'g':
			/* What Cyrus says of them. */
			warnx("deprecated option -%c ignored", c);
			break;
		case 'x': case 'f': case 's': case 'd': case 'G': case 'R': case 'U':
		case 'I': case 'o': case 'O': case 'V': case 'P':
			refuse_cyrus(c);
		case 'h': tool_help_options(synopsis, help);
		case 'H': tool_version();
		default: tool_usage(synopsis);
		}
	}
	o->names = argv + optind;
	o->nnames = argc - optind;
	if (o->partition && !o->rebuild) {
		warnx("-p without -m (in Cyrus: look for the named mailboxes on a partition) "
		    "is not supported; use reconstruct -m -p partition (reconstruct(8))");
		exit(IDS_EXIT_USAGE);
	}
	if (o->recursive && !o->rebuild && o->nnames == 0) {
		warnx("-r is recursive, as in Cyrus, and needs mailbox names; "
		    "the rebuild of mailboxes.db from the spool is reconstruct -m (reconstruct(8))");
		exit(IDS_EXIT_USAGE);
	}
	if ((o->rebuild && (o->recursive || o->nnames != o->users)) ||
	    (!o->rebuild && o->nnames == 0) || (o->quiet && o->verbose))
		tool_usage(synopsis);
	if (o->rebuild && o->users)
		o->user = o->names[0];
}

/* A userid as the owner spelling of the library ("john@example.com"). */
static void
parse_user(const char *user, const struct ids_config *cfg, char *owner, size_t size)
{
	char ext[IDS_MBNAME_MAX + 16];
	struct ids_mbname mb;

	if (strchr(user, '/') != NULL || user[0] == '\0' ||
	    (size_t)snprintf(ext, sizeof(ext), "user/%s", user) >= sizeof(ext) ||
	    ids_mbname_parse_external(&mb, ext, cfg, 0) < 0 || !ids_mbname_is_inbox(&mb)) {
		warnx("-u %s: not a userid", user);
		exit(IDS_EXIT_USAGE);
	}
	ids_mbname_normalize(&mb, cfg);
	if (ids_mbname_owner(&mb, owner, size) < 0) {
		warnx("-u %s: not a userid", user);
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
	if (o.user != NULL)
		parse_user(o.user, &cfg, u.owner, sizeof(u.owner));
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
