/*
 * spool_audit - prove that every message is where it should be and
 * byte-identical; compare a spool with a copy of it, folder by uniqueid;
 * heal damaged messages from such a copy.
 *
 * main() parses the options and hands the work to ids_audit_run()
 * (audit.h), or, with a peer command after "--compare --" or
 * "--repair-from --", starts it and hands the work to
 * ids_sync_audit_remote() (sync/repair.h), which speaks csync to it; this file only turns each finding into a line of text or
 * one JSON object (jansson) on standard output.  Problems that stop the
 * audit go to standard error, the err(3) way, with exit status 3.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "buf.h"
#include "config.h"
#include "error.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "sync/repair.h"
#include "tool.h"

#define MAX_JOBS 1024	/* -j */

#define SYNOPSIS "spool_audit [-C conf] [-u user] [-i] [-j N] [-n] [-q] [-v] " \
	"[--md5] [--json] [--compare other.conf | --repair-from other.conf] [NAME ...]\n" \
	"       spool_audit [-C conf] [-u user] [-i] [-j N] [-n] [-q] [-v] [--json] [NAME ...] " \
	"(--compare | --repair-from) -- PEER-COMMAND [ARG ...]"

static const char help[] =
    "  -C conf              the configuration file (default /etc/idspool.conf)\n"
    "  -u user              audit the folders of one user\n"
    "  -i                   names are internal (example.com!user.john^doe.Sent)\n"
    "  -j N                 read message files with N threads\n"
    "  -n                   with --repair-from: say what would be healed\n"
    "  -q                   print no findings: the exit status tells\n"
    "  -v                   print a summary on standard error\n"
    "  --md5                with --compare: compare the MD5 of the files too\n"
    "  --json               each finding as a JSON object on a line\n"
    "  --compare other.conf         compare with the replica by uniqueid\n"
    "  --repair-from other.conf     heal messages from the replica's copies\n"
    "  --compare -- PEER-COMMAND    the same with a remote idspool replica, over\n"
    "  --repair-from -- PEER-COMMAND  csync (ssh host spool_sync --serve); last\n";

struct out {
	const struct ids_config *cfg, *ocfg;
	int internal, json, quiet;
	unsigned long lines;
};

/* The name as the user spells it (external unless -i); the internal one if that fails. */
static const char *
shown(const struct out *o, const struct ids_config *cfg, const char *name, char *buf,
    size_t size)
{
	struct ids_mbname mb;
	int r;

	if (name == NULL)
		return NULL;
	if (ids_mbname_parse_internal(&mb, name, 0) < 0)
		return name;
	ids_mbname_normalize(&mb, cfg);
	r = o->internal ? ids_mbname_internal(&mb, buf, size) :
	    ids_mbname_external(&mb, cfg, buf, size);
	return r < 0 ? name : buf;
}

static const char *
repair_word(enum ids_audit_repair r)
{
	switch (r) {
	case IDS_AUDIT_REPAIR_HEALED: return "healed";
	case IDS_AUDIT_REPAIR_WOULD: return "would heal";
	case IDS_AUDIT_REPAIR_FAILED: return "not healed";
	default: return NULL;
	}
}

/* folder: [uid N: ]kind[: path][: expected E, actual A][ [repair]] */
static void
print_text(const struct ids_audit_finding *f, const char *folder, const char *other)
{
	struct ids_buf b = IDS_BUF_INIT;
	size_t i;

	if (folder)
		ids_buf_printf(&b, "%s: ", folder);
	else if (other)
		ids_buf_printf(&b, "(there) %s: ", other);
	if (f->uid)
		ids_buf_printf(&b, "uid %u: ", f->uid);
	if (f->kind == IDS_AUDIT_MISSING) {
		ids_buf_adds(&b, "MISSING (GUID");
		for (i = 0; i < f->nguids; i++)
			ids_buf_printf(&b, " %s", f->guids[i]);
		ids_buf_adds(&b, ")");
	} else {
		ids_buf_adds(&b, ids_audit_kind_name(f->kind));
	}
	if (f->path)
		ids_buf_printf(&b, ": %s", f->path);
	if (f->expected && f->actual)
		ids_buf_printf(&b, ": expected %s, actual %s", f->expected, f->actual);
	else if (f->expected || f->actual)
		ids_buf_printf(&b, ": %s", f->actual ? f->actual : f->expected);
	if (repair_word(f->repair))
		ids_buf_printf(&b, " [%s%s%s]", repair_word(f->repair),
		    f->repair == IDS_AUDIT_REPAIR_FAILED ? ": " : " from ",
		    f->repair_detail ? f->repair_detail : "?");
	puts(b.s);
	ids_buf_release(&b);
}

static void
json_str(json_t *o, const char *key, const char *val)
{
	json_t *s;

	if (val == NULL)
		return;
	/* Paths are bytes; anything not UTF-8 is shown escaped. */
	if ((s = json_string(val)) == NULL) {
		char safe[8192];

		s = json_string(tool_printable(val, safe, sizeof(safe)));
	}
	json_object_set_new(o, key, s);
}

static void
print_json(const struct ids_audit_finding *f, const char *folder, const char *other)
{
	json_t *o = json_object(), *g;
	char *line;
	size_t i;

	json_str(o, "kind", ids_audit_kind_name(f->kind));
	json_str(o, "folder", folder);
	json_str(o, "uniqueid", f->uniqueid);
	json_str(o, "other_folder", other);
	if (f->uid)
		json_object_set_new(o, "uid", json_integer(f->uid));
	json_str(o, "path", f->path);
	json_str(o, "expected", f->expected);
	json_str(o, "actual", f->actual);
	if (f->kind == IDS_AUDIT_MISSING) {
		g = json_array();
		for (i = 0; i < f->nguids; i++)
			json_array_append_new(g, json_string(f->guids[i]));
		json_object_set_new(o, "guids", g);
	}
	if (repair_word(f->repair)) {
		json_str(o, "repair", f->repair == IDS_AUDIT_REPAIR_HEALED ? "healed" :
		    f->repair == IDS_AUDIT_REPAIR_WOULD ? "would-heal" : "failed");
		json_str(o, "repair_detail", f->repair_detail);
	}
	if ((line = json_dumps(o, JSON_COMPACT)) != NULL)
		puts(line);
	free(line);
	json_decref(o);
}

static int
report(const struct ids_audit_finding *f, void *rock)
{
	struct out *o = rock;
	struct ids_audit_finding g = *f;
	const struct ids_config *ocfg = o->ocfg ? o->ocfg : o->cfg;
	char a[IDS_MBNAME_MAX + 64], b[IDS_MBNAME_MAX + 64];
	char x[IDS_MBNAME_MAX + 64], y[IDS_MBNAME_MAX + 64];
	const char *folder = shown(o, o->cfg, f->folder, a, sizeof(a));
	const char *other = shown(o, ocfg, f->other_folder, b, sizeof(b));

	o->lines++;
	if (o->quiet)
		return 0;
	/* Values that are folder names are spelt like the folder. */
	if (f->kind == IDS_AUDIT_NAME || f->kind == IDS_AUDIT_ONLY_HERE)
		g.expected = shown(o, o->cfg, f->expected, x, sizeof(x));
	if (f->kind == IDS_AUDIT_NAME || f->kind == IDS_AUDIT_ONLY_THERE)
		g.actual = shown(o, ocfg, f->actual, y, sizeof(y));
	if (o->json)
		print_json(&g, folder, other);
	else
		print_text(&g, folder, other);
	return 0;
}

/* -u: the user's INBOX, whose subtree holds all of the user's folders. */
static int
user_inbox(const struct ids_config *cfg, const char *user, struct ids_mbname *mb)
{
	struct ids_buf b = IDS_BUF_INIT;
	const char *at = strchr(user, '@'), *p;
	int r;

	if (cfg->unixhierarchysep) {
		ids_buf_printf(&b, "user/%s", user);
	} else {
		ids_buf_adds(&b, "user.");
		for (p = user; *p && p != at; p++)
			ids_buf_addch(&b, *p == '.' ? '^' : *p);
		ids_buf_adds(&b, at ? at : "");
	}
	r = ids_buf_oom(&b) < 0 ? -ENOMEM : tool_parse_name(mb, b.s, 0, cfg);
	ids_buf_release(&b);
	return r;
}

/* NAME arguments (and -u) to internal names; bad ones are reported. */
static char **
parse_names(const struct ids_config *cfg, char **argv, int argc, int internal)
{
	char **names = calloc((size_t)argc + 1, sizeof(char *));
	char buf[IDS_MBNAME_MAX + 1];
	struct ids_mbname mb;
	int i, n = 0;

	if (names == NULL)
		err(IDS_EXIT_ENV, "out of memory");
	for (i = 0; i < argc; i++)
		if (tool_parse_name(&mb, argv[i], internal, cfg) == 0 &&
		    ids_mbname_internal(&mb, buf, sizeof(buf)) >= 0 &&
		    (names[n] = strdup(buf)) != NULL)
			n++;
	return names;
}

struct args {
	const char *conf, *user, *other;
	char **peer;		/* the peer command (--compare -- ...) */
	int internal, jobs, dry, quiet, verbose, md5, json, compare, repair;
};

static int
parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "md5", no_argument, NULL, 'M' },
		{ "json", no_argument, NULL, 'J' },
		{ "compare", required_argument, NULL, 'O' },
		{ "repair-from", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long j;
	int c;

	memset(a, 0, sizeof(*a));
	/* "--compare -- PEER-COMMAND ...": the rest of the line is the peer's */
	for (c = 1; c + 1 < argc; c++) {
		if (strcmp(argv[c], "--") == 0)
			break;
		if ((strcmp(argv[c], "--compare") == 0 || strcmp(argv[c], "--repair-from") == 0) &&
		    strcmp(argv[c + 1], "--") == 0) {
			a->peer = argv + c + 2;
			argc = c + 2;
			break;
		}
	}
	while ((c = getopt_long(argc, argv, "C:u:ij:nqv", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': a->conf = optarg; break;
		case 'u': a->user = optarg; break;
		case 'i': a->internal = 1; break;
		case 'j':
			if (tool_uint("-j", optarg, 1, MAX_JOBS, &j) < 0)
				tool_usage(SYNOPSIS);
			a->jobs = (int)j;
			break;
		case 'n': a->dry = 1; break;
		case 'q': a->quiet = 1; break;
		case 'v': a->verbose = 1; break;
		case 'M': a->md5 = 1; break;
		case 'J': a->json = 1; break;
		case 'O': a->other = optarg; a->compare = 1; break;
		case 'R': a->other = optarg; a->repair = 1; break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	if ((a->compare && a->repair) || (a->md5 && !a->compare) ||
	    (a->dry && !a->repair) || (a->user && optind < argc) ||
	    (a->peer != NULL && (a->peer[0] == NULL || a->md5)) ||
	    (a->peer == NULL && a->other != NULL && strcmp(a->other, "--") == 0))
		tool_usage(SYNOPSIS);
	return argc;
}

static void
summary(const struct ids_audit_stats *st, int r)
{
	warnx("%lu folders, %lu message files, %llu bytes hashed; %lu findings"
	    "%s%lu healed, %lu not healed",
	    st->folders, st->messages, st->bytes, st->findings, r < 0 ? " (stopped); " : "; ",
	    st->healed, st->unhealed);
}

/* The options, -u and NAME: what to audit.  0, or IDS_EXIT_FAIL for bad names. */
static int
scope(const struct args *a, const struct ids_config *cfg, int argc, char **argv,
    struct ids_audit_opts *o, char *top, size_t size, char ***namesp)
{
	struct ids_mbname inbox;
	char **names;

	ids_audit_opts_init(o);
	o->jobs = a->jobs;
	o->md5 = a->md5;
	o->compare = a->compare;
	o->repair = a->repair;
	o->dry_run = a->dry;
	if (a->user) {
		if (user_inbox(cfg, a->user, &inbox) < 0 ||
		    ids_mbname_internal(&inbox, top, size) < 0)
			return IDS_EXIT_FAIL;
		o->subtree = top;
	}
	if (optind >= argc)
		return 0;
	*namesp = names = parse_names(cfg, argv + optind, argc - optind, a->internal);
	if (names[0] == NULL)
		return IDS_EXIT_FAIL;
	o->names = (const char *const *)names;
	for (o->nnames = 0; names[o->nnames]; o->nnames++)
		;
	return 0;
}

static void
free_names(char **names)
{
	size_t i;

	for (i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

static void
peer_log(void *rock, int prio, const char *msg)
{
	syslog(prio, "spool_audit: %s", msg);
	if (rock != NULL)
		fprintf(stderr, "spool_audit: %s\n", msg);
}

/* --compare / --repair-from -- PEER-COMMAND: the pair audit over csync. */
static int
remote(const struct args *a, const struct ids_config *cfg, struct ids_audit_opts *o,
    struct ids_audit_stats *st)
{
	struct ids_mboxlist *mbl;
	struct ids_sync_peer *p = NULL;
	struct out out = { cfg, NULL, a->internal, a->json, a->quiet, 0 };
	int in, pout, status, r;
	pid_t pid;

	memset(st, 0, sizeof(*st));
	openlog("spool_audit", LOG_PID, LOG_MAIL);
	signal(SIGPIPE, SIG_IGN);
	/* the session stages fetched files and locks folders: not read-only */
	mbl = tool_open_mboxlist(cfg, 0);
	if ((pid = tool_start_peer(a->peer, 1800, &pout, &in)) < 0) {
		warn("%s", a->peer[0]);
		ids_mboxlist_close(mbl);
		return IDS_EXIT_ENV;
	}
	o->other = NULL;
	r = ids_sync_peer_open(mbl, pout, in, 1800, peer_log, a->verbose ? (void *)1 : NULL, &p);
	if (r == 0)
		r = ids_sync_audit_remote(mbl, ids_sync_peer_wire(p), o, report, &out, st);
	fflush(stdout);
	if (ids_sync_peer_close(p) < 0 && r >= 0)
		r = IDS_ETRUNC;
	close(in);
	close(pout);
	if (r < 0)
		kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ids_mboxlist_close(mbl);
	if (r < 0) {
		warnx("%s: %s", a->peer[0], ids_errmsg(r));
		return IDS_EXIT_ENV;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		warnx("%s: exited with status %d", a->peer[0],
		    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		return IDS_EXIT_ENV;
	}
	return r > 0 || tool_status() != IDS_EXIT_OK ? IDS_EXIT_FAIL : IDS_EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct ids_config cfg, ocfg;
	struct ids_mboxlist *mbl, *other = NULL;
	struct ids_audit_opts o;
	struct ids_audit_stats st;
	struct out out = { 0 };
	struct args a;
	char top[IDS_MBNAME_MAX + 1], **names = NULL;
	int r;

	tool_init(argv);
	argc = parse_args(argc, argv, &a);
	tool_load_config(&cfg, a.conf);
	if ((r = scope(&a, &cfg, argc, argv, &o, top, sizeof(top), &names)) != 0)
		return r;
	if (a.peer != NULL) {
		r = remote(&a, &cfg, &o, &st);
		if (a.verbose)
			summary(&st, r);
		free_names(names);
		ids_config_release(&cfg);
		return r;
	}
	mbl = tool_open_mboxlist(&cfg, a.repair && !a.dry ? 0 : IDS_MBOXLIST_RDONLY);
	if (a.other) {
		tool_load_config(&ocfg, a.other);
		o.other = other = tool_open_mboxlist(&ocfg, IDS_MBOXLIST_RDONLY);
	}
	out = (struct out){ &cfg, a.other ? &ocfg : NULL, a.internal, a.json, a.quiet, 0 };
	r = ids_audit_run(mbl, &o, report, &out, &st);
	fflush(stdout);
	if (a.verbose)
		summary(&st, r);
	if (r < 0)
		warnx("%s: %s", cfg.configdirectory, ids_errmsg(r));
	ids_mboxlist_close(mbl);
	if (other) {
		ids_mboxlist_close(other);
		ids_config_release(&ocfg);
	}
	free_names(names);
	ids_config_release(&cfg);
	if (r < 0)
		return IDS_EXIT_ENV;
	return r > 0 || tool_status() != IDS_EXIT_OK ? IDS_EXIT_FAIL : IDS_EXIT_OK;
}
