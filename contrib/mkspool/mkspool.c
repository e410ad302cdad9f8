/*
 * mkspool - write a realistic legacy Cyrus spool and its mailboxes.db.
 *
 * The spool is what a Cyrus 3.6 server upgraded from older releases
 * holds: name-based (legacy) folder directories on the partitions of
 * the configuration, every mailboxes.db entry flagged 'l', and folders,
 * messages, headers and indexes as plan.c, folder.c and message.c
 * describe.  The same seed always gives the same bytes: no clock is
 * read, and every choice comes from seeded streams.
 *
 * Files are written without fsync; one syncfs(2) per file system at
 * the end makes the whole spool durable.  The tool refuses partitions
 * that already hold something, and an existing mailboxes.db, unless
 * --force is given.
 */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "error.h"
#include "mboxlist.h"
#include "mkspool.h"
#include "tool.h"

#define SYNOPSIS "mkspool -C conf [-s seed] [-u users] [-f folders] " \
	"[-m messages] [--size tiny|small|medium|large|huge] [--force] [--json]"

static const char help[] =
    "  -C conf       the configuration file, required\n"
    "  -s seed       the seed (default 1): the same seed, the same bytes\n"
    "  -u users      how many users (overrides the size)\n"
    "  -f folders    how many folders in all (overrides the size)\n"
    "  -m messages   how many index records in all (overrides the size)\n"
    "  --size S      tiny, small, medium, large or huge (default tiny)\n"
    "  --force       write into partitions that hold something\n"
    "  --json        print what was written as JSON\n";
#define BATCH_FOLDERS 1000

static const struct size_preset {
	const char *name;
	unsigned users;
	unsigned folders;
	uint64_t messages;
} presets[] = {
	{ "tiny", 5, 30, 100 },
	{ "small", 40, 400, 4000 },
	{ "medium", 400, 10000, 100000 },
	{ "large", 4000, 100000, 1000000 },
	{ "huge", 20000, 500000, 5000000 },
};

struct options {
	const char *conf;
	uint64_t seed;
	long long users, folders, messages;	/* -1: from the size */
	const struct size_preset *size;
	int force;
	int json;
};

static uint64_t
parse_number(const char *opt, const char *s, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v > max) {
		warnx("%s: '%s' is not a number from 0 to %llu", opt, s,
		    (unsigned long long)max);
		tool_usage(SYNOPSIS);
	}
	return v;
}

static const struct size_preset *
parse_size(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (strcmp(s, presets[i].name) == 0)
			return &presets[i];
	warnx("--size: '%s' is not tiny, small, medium, large or huge", s);
	tool_usage(SYNOPSIS);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "force", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "C:s:u:f:m:", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': o->conf = optarg; break;
		case 's': o->seed = parse_number("-s", optarg, UINT64_MAX); break;
		case 'u': o->users = (long long)parse_number("-u", optarg, 10000000); break;
		case 'f': o->folders = (long long)parse_number("-f", optarg, 100000000); break;
		case 'm': o->messages = (long long)parse_number("-m", optarg, 1000000000); break;
		case 'S': o->size = parse_size(optarg); break;
		case 'j': o->json = 1; break;
		case 'F': o->force = 1; break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	if (optind != argc) {
		warnx("unexpected argument '%s'", argv[optind]);
		tool_usage(SYNOPSIS);
	}
	/* A generator never defaults to a configuration that may be live. */
	if (o->conf == NULL) {
		warnx("-C conf is required: mkspool writes a new spool and never "
		    "defaults to a live configuration");
		tool_usage(SYNOPSIS);
	}
}

/* 1 if path is a directory holding anything, 0 if empty or missing. */
static int
is_nonempty(const char *path)
{
	struct dirent *de;
	DIR *d;
	int found = 0;

	if ((d = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : tool_error(ids_errno(), path);
	while (!found && (de = readdir(d)) != NULL)
		found = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return found;
}

/* Refuses what is there already (unless force) and creates the roots. */
static int
check_target(int force, const char *path, const char *what)
{
	char buf[PATH_MAX];
	int r;

	if ((r = is_nonempty(path)) < 0)
		return r;
	if (r > 0 && !force) {
		warnx("%s: %s is not empty (--force writes into it)", path, what);
		return IDS_EEXIST;
	}
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return tool_error(IDS_ETOOLONG, path);
	if ((r = mkdir_p(buf)) < 0)
		return tool_error(r, path);
	return 0;
}

static int
check_targets(const struct ids_config *cfg, int force)
{
	char db[PATH_MAX];
	struct stat st;
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < cfg->npartitions; i++) {
		r = check_target(force, cfg->partitions[i].path, "partition");
		if (r == 0 && cfg->partitions[i].metapath)
			r = check_target(force, cfg->partitions[i].metapath,
			    "metapartition");
	}
	if (r == 0)
		r = check_target(1, cfg->configdirectory, "configdirectory");
	if (r < 0)
		return r;
	if (snprintf(db, sizeof(db), "%s/mailboxes.db", cfg->configdirectory) >=
	    (int)sizeof(db))
		return tool_error(IDS_ETOOLONG, cfg->configdirectory);
	if (!force && lstat(db, &st) == 0) {
		warnx("%s: mailboxes.db exists (--force adds to it)", db);
		return IDS_EEXIST;
	}
	return 0;
}

/* --- the run -------------------------------------------------------------- */

struct run {
	struct ids_config cfg;
	int have_cfg;
	struct spool sp;
	struct plan *plan;
	uint64_t seed;
	char domains[32][64];	/* the distinct domains seen */
	unsigned ndomains;
};

static void
count_owner(struct run *run, const struct owner *o)
{
	struct stats *st = &run->sp.st;
	unsigned i;

	st->users += o->is_user && !o->deleted;
	st->deleted_users += o->is_user && o->deleted;
	st->shared_tops += !o->is_user;
	if (o->domain[0] == '\0')
		return;
	for (i = 0; i < run->ndomains; i++)
		if (strcmp(run->domains[i], o->domain) == 0)
			return;
	if (run->ndomains < sizeof(run->domains) / sizeof(run->domains[0]))
		memcpy(run->domains[run->ndomains++], o->domain, sizeof(o->domain));
	st->domains = run->ndomains;
}

static int
generate_owner(struct run *run, unsigned i)
{
	struct folder *f;
	struct owner o;
	struct rng r;
	size_t n, k;
	int ret;

	if ((ret = plan_owner(run->plan, i, &o, &f, &n, &r)) < 0)
		return tool_error(ret, o.prefix[0] ? o.prefix : "plan");
	for (k = 0; k < n; k++)
		if ((ret = folder_write(&run->sp, &o, &f[k], &r)) < 0)
			return ret;
	count_owner(run, &o);
	if (run->sp.nbatch >= BATCH_FOLDERS)
		return spool_flush(&run->sp);
	return 0;
}

static int
sync_root(const char *path)
{
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return tool_error(ids_errno(), path);
	if (syncfs(fd) < 0)
		r = tool_error(ids_errno(), path);
	close(fd);
	return r;
}

/* Writes the last records and makes everything durable. */
static int
finish(struct run *run)
{
	const struct ids_config *cfg = &run->cfg;
	size_t i;
	int r;

	if ((r = spool_flush(&run->sp)) < 0)
		return r;
	for (i = 0; r == 0 && i < cfg->npartitions; i++) {
		r = sync_root(cfg->partitions[i].path);
		if (r == 0 && cfg->partitions[i].metapath)
			r = sync_root(cfg->partitions[i].metapath);
	}
	return r;
}

static void
jset(json_t *obj, const char *key, uint64_t v)
{
	json_object_set_new(obj, key, json_integer((json_int_t)v));
}

static json_t *
json_partitions(const struct run *run)
{
	json_t *parts = json_object(), *p;
	size_t i;

	for (i = 0; parts && i < run->cfg.npartitions; i++) {
		const struct part_stats *ps = &run->sp.st.part[i];

		if ((p = json_object()) == NULL)
			break;
		jset(p, "folders", ps->folders);
		jset(p, "messages", ps->messages);
		jset(p, "files", ps->files);
		jset(p, "bytes", ps->bytes);
		json_object_set_new(parts, run->cfg.partitions[i].name, p);
	}
	return parts;
}

static int
print_json(const struct run *run)
{
	const struct stats *st = &run->sp.st;
	json_t *root = json_object(), *ids = json_object();
	int r;

	if (root == NULL || ids == NULL)
		return tool_error(-ENOMEM, "json");
	json_object_set_new(root, "seed", json_integer((json_int_t)run->seed));
	jset(root, "users", st->users);
	jset(root, "deleted_users", st->deleted_users);
	jset(root, "shared_tops", st->shared_tops);
	jset(root, "domains", st->domains);
	jset(root, "folders", st->folders);
	jset(root, "shared_folders", st->shared_folders);
	jset(root, "deleted_folders", st->deleted_folders);
	jset(root, "renamed_folders", st->renamed);
	jset(root, "tombstones", st->tombstones);
	jset(root, "old_headers", st->old_headers);
	jset(root, "messages", st->messages);
	jset(root, "expunged", st->expunged);
	jset(root, "unlinked", st->unlinked);
	jset(root, "hardlinks", st->links);
	jset(root, "attachments", st->attachments);
	jset(root, "files", st->files);
	jset(root, "bytes", st->bytes);
	jset(root, "largest", st->largest);
	jset(ids, "uuid", st->ids_uuid);
	jset(ids, "base36", st->ids_24);
	jset(ids, "hex16", st->ids_16);
	json_object_set_new(root, "uniqueids", ids);
	json_object_set_new(root, "partitions", json_partitions(run));
	r = json_dumpf(root, stdout, JSON_INDENT(2));
	json_decref(root);
	if (r < 0 || putchar('\n') == EOF || fflush(stdout) == EOF)
		return tool_error(-EIO, "standard output");
	return 0;
}

/* Plans the spool, checks the targets, opens mailboxes.db: IDS_EXIT_*. */
static int
setup(struct run *run, const struct options *o)
{
	struct plan_opts po;
	int r;

	po.seed = run->seed = o->seed;
	po.users = (unsigned)(o->users >= 0 ? o->users : o->size->users);
	po.folders = (unsigned)(o->folders >= 0 ? o->folders : o->size->folders);
	po.messages = (uint64_t)(o->messages >= 0 ? o->messages : (long long)o->size->messages);
	if ((r = plan_new(&run->cfg, &po, &run->plan)) < 0) {
		warnx("%s", ids_errmsg(r));
		return r == -ENOMEM ? IDS_EXIT_FAIL : IDS_EXIT_USAGE;
	}
	if (check_targets(&run->cfg, o->force) < 0)
		return IDS_EXIT_ENV;
	if ((r = ids_mboxlist_open(&run->cfg, IDS_MBOXLIST_CREATE, &run->sp.mbl)) < 0) {
		tool_error(r, "mailboxes.db");
		return IDS_EXIT_ENV;
	}
	run->sp.cfg = &run->cfg;
	run->sp.force = o->force;
	run->sp.now = plan_now(run->plan);
	run->sp.st.part = calloc(run->cfg.npartitions, sizeof(*run->sp.st.part));
	if (run->sp.st.part == NULL || (r = msggen_new(o->seed, &run->sp.mg)) < 0) {
		tool_error(run->sp.st.part ? r : -ENOMEM, "message generator");
		return IDS_EXIT_FAIL;
	}
	return IDS_EXIT_OK;
}

static void
teardown(struct run *run)
{
	size_t i;

	for (i = 0; i < run->sp.nbatch; i++)
		ids_mbentry_release(&run->sp.batch[i]);
	free(run->sp.batch);
	free(run->sp.ibuf);
	free(run->sp.st.part);
	msggen_free(run->sp.mg);
	if (run->sp.mbl)
		ids_mboxlist_close(run->sp.mbl);
	plan_free(run->plan);
	if (run->have_cfg)
		ids_config_release(&run->cfg);
}

int
main(int argc, char **argv)
{
	struct options o = { NULL, 1, -1, -1, -1, &presets[0], 0, 0 };
	struct run run;
	unsigned i, n;
	int r, status;

	tool_init(argv);
	parse_options(argc, argv, &o);
	memset(&run, 0, sizeof(run));
	tool_load_config(&run.cfg, o.conf);
	run.have_cfg = 1;
	if ((status = setup(&run, &o)) == IDS_EXIT_OK) {
		n = plan_owners(run.plan);
		for (i = 0, r = 0; r == 0 && i < n; i++)
			r = generate_owner(&run, i);
		if (r == 0)
			r = finish(&run);
		if (r == 0 && o.json)
			r = print_json(&run);
		status = r == 0 ? IDS_EXIT_OK : IDS_EXIT_FAIL;
	}
	teardown(&run);
	return status;
}
