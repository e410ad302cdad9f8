/*
 * ctl_mboxlist - dump, undump and list mailboxes.db.
 *
 * -d writes the database as JSON in exactly the shape of Cyrus 3.6's
 * "ctl_mboxlist -d": a line "{", one line per entry separated by ",\n",
 * then "\n}"; each entry is "<internal name>": {...} with the members in
 * Cyrus's order, the numbers as strings and NULL members left out, so
 * the dumps of both programs can be compared line by line and fed to
 * each other.  Unlike Cyrus, whose dump walks only the by-name records,
 * name_history carries the real history of the by-uniqueid record.
 *
 * -u reads such a dump (ours, or a real Cyrus 3.6 one) from standard
 * input and writes it in one transaction: every entry is checked first
 * and each problem reported with its line, and nothing at all is
 * written unless every entry is good and the database accepts them all.
 *
 * -l lists the live mailboxes with their uniqueid, layout and partition;
 * -c and -x create and delete folders through the library's folder
 * lifecycle (mailbox.h).  -x deletes as Cyrus does with delete_mode:
 * delayed (the default): the folder is renamed, files and all, to
 * DELETED.<name>.<hextime> (rename.h); a DELETED folder given to -x,
 * and every one older than --expire's age, is removed for good.
 *
 * Every option Cyrus 3.6's ctl_mboxlist has means what it means there
 * (-d -p partition dumps one partition; -y changes nothing, since no
 * entry is hidden), or is refused with a pointer to ours.
 *
 * The dump's codec, both ways, is the library's (dump.h); this tool
 * reads and prints.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dump.h"
#include "error.h"
#include "header.h"
#include "lock.h"
#include "mailbox.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "recover.h"
#include "rename.h"
#include "tool.h"

#define NAMEBUF (2 * IDS_MBNAME_MAX + 64)
#define SHOWBUF 1024	/* input shown in a message, made printable */

static const char synopsis[] =
    "ctl_mboxlist [-C conf] -d [-y] [-p partition]\n"
    "       ctl_mboxlist [-C conf] -u\n"
    "       ctl_mboxlist [-C conf] [-i] [--json] -l [name ...]\n"
    "       ctl_mboxlist [-C conf] [-i] -c name ...\n"
    "       ctl_mboxlist [-C conf] [-i] -x name ...\n"
    "       ctl_mboxlist [-C conf] --expire seconds";

static const char help[] =
    "  -C conf       the configuration file (default /etc/idspool.conf)\n"
    "  -d            dump mailboxes.db as JSON, as Cyrus 3.6 does\n"
    "  -y            with -d: accepted (no entry is hidden)\n"
    "  -p partition  with -d: only the mailboxes on this partition\n"
    "  -u            undump: load such a dump from standard input\n"
    "  -l            list live mailboxes (uniqueid, layout, partition)\n"
    "  -c            create each folder named\n"
    "  -x            delete each folder named (delete_mode: delayed renames\n"
    "                it to DELETED.*; a DELETED folder is removed for good)\n"
    "  --expire S    remove every DELETED folder older than S seconds\n"
    "  -i            names are internal (example.com!user.john^doe.Sent)\n"
    "  --json        with -l: a JSON array\n";

enum mode { MODE_NONE, MODE_DUMP, MODE_UNDUMP, MODE_LIST, MODE_CREATE, MODE_DELETE,
	MODE_EXPIRE };

struct options {
	const char *conf;	/* NULL: the default */
	enum mode mode;
	const char *partition;	/* -d -p */
	int purge;		/* Cyrus's -d -x, refused */
	unsigned long long expire;	/* --expire: seconds */
	int internal;		/* -i: names are internal names */
	int json;		/* --json */
	char **names;
	int nnames;
};

/* ---- common --------------------------------------------------------- */

/* Checks that everything written to stdout got there. */
static int
flush_stdout(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warnx("stdout: %s", strerror(errno ? errno : EIO));
		return IDS_EXIT_FAIL;
	}
	return IDS_EXIT_OK;
}

/* ---- dump ---------------------------------------------------------- */

struct dump {
	struct ids_txn *txn;
	const char *sep;
	int status;
	const char *partition;	/* -p: only entries on it */
};

/*
 * Prints one entry as the line "<name>": {...}.  An entry that cannot be
 * printed is reported and skipped, and the dump goes on.
 */
static int
dump_entry(const struct ids_mbentry *e, void *rock)
{
	struct dump *d = rock;
	struct ids_mbentry live;
	char *text = NULL;
	int r;

	/* Cyrus's -p: the mailboxes on the partition (tombstones have none). */
	if (d->partition != NULL && (e->partition == NULL || strcmp(e->partition, d->partition) != 0))
		return 0;
	ids_mbentry_init(&live);
	/* An unreadable history is reported; the entry is dumped without it. */
	if ((r = ids_dump_history(d->txn, e, &live)) < 0) {
		d->status = tool_exit_status(tool_error(r, e->name));
		ids_mbentry_release(&live);
	}
	r = ids_dump_format(e, &live, &text);
	if (r == 0) {
		printf("%s%s", d->sep, text);
		d->sep = ",\n";
	} else {
		d->status = tool_exit_status(tool_error(r, e->name));
	}
	free(text);
	ids_mbentry_release(&live);
	return 0;
}

static int
dump_txn(struct ids_txn *txn, void *rock)
{
	struct dump *d = rock;

	d->txn = txn;
	return ids_txn_foreach(txn, NULL, dump_entry, d);
}

static int
do_dump(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	struct dump d = { NULL, "", IDS_EXIT_OK, o->partition };
	int r;

	if (o->partition != NULL && ids_config_partition(cfg, o->partition) == NULL) {
		warnx("-p %s: no such partition in %s", o->partition, cfg->file);
		return IDS_EXIT_ENV;
	}
	if ((r = tool_try_open_mboxlist(cfg, IDS_MBOXLIST_RDONLY, &mbl)) != IDS_EXIT_OK)
		return r;
	fputs("{\n", stdout);
	r = ids_mboxlist_read(mbl, dump_txn, &d);
	fputs("\n}\n", stdout);
	if (r < 0) {
		warnx("%s: %s", ids_mboxlist_path(mbl), tool_reason(ids_mboxlist_path(mbl), r));
		d.status = tool_exit_status(r);
	}
	ids_mboxlist_close(mbl);
	r = flush_stdout();
	return d.status != IDS_EXIT_OK ? d.status : r;
}

/* ---- undump -------------------------------------------------------- */

/* A problem of the dump, as "stdin:LINE: text" ("stdin: text" for 0). */
static void
report(unsigned line, const char *text, void *rock)
{
	if (line)
		warnx("stdin:%u: %s", line, text);
	else
		warnx("stdin: %s", text);
}

static int
write_entries(const struct ids_config *cfg, struct ids_dump *imp)
{
	struct ids_mboxlist *mbl;
	int r;

	if ((r = tool_try_open_mboxlist(cfg, IDS_MBOXLIST_CREATE, &mbl)) != IDS_EXIT_OK)
		return r;
	r = ids_mboxlist_write(mbl, ids_dump_write_txn, imp);
	if (r < 0 && imp->failed) {
		warnx("stdin:%u: %s: %s", imp->failed->line, imp->failed->e.name,
		    imp->why ? imp->why : ids_strerror(r));
	} else if (r < 0) {
		warnx("%s: %s", ids_mboxlist_path(mbl), tool_reason(ids_mboxlist_path(mbl), r));
	}
	ids_mboxlist_close(mbl);
	if (r < 0)
		return imp->failed ? IDS_EXIT_FAIL : tool_exit_status(r);
	return IDS_EXIT_OK;
}

static int
read_input(FILE *f, struct ids_buf *b)
{
	char chunk[16384];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (ids_buf_add(b, chunk, n) < 0)
			return -ENOMEM;
	return ferror(f) ? ids_errno() : 0;
}

static int
do_undump(const struct ids_config *cfg)
{
	struct ids_buf in = IDS_BUF_INIT;
	struct ids_dump imp = IDS_DUMP_INIT(cfg, report, NULL);
	int r, status = IDS_EXIT_FAIL;

	if ((r = read_input(stdin, &in)) < 0) {
		warnx("stdin: %s", ids_strerror(r));
		goto out;
	}
	if (ids_dump_read(&imp, in.s, in.len) < 0)
		goto out;
	if (imp.bad == 0)
		status = write_entries(cfg, &imp);
	else
		warnx("stdin: %u problem%s found; nothing imported", imp.bad,
		    imp.bad == 1 ? "" : "s");
out:
	ids_dump_release(&imp);
	ids_buf_release(&in);
	return status;
}

/* ---- list ----------------------------------------------------------- */

struct list {
	const struct ids_config *cfg;
	int internal, json;
	const char *sep;
	size_t count;
};

/*
 * The internal name of a name argument (external, or internal with -i);
 * IDS_MBNAME_STRICT in flags applies the rules for new names.  Failures
 * are reported, naming the argument.
 */
static int
name_arg(const struct ids_config *cfg, const char *arg, int internal, int flags,
    char *buf, size_t size)
{
	struct ids_mbname mb;
	int r;

	if ((r = tool_parse_name(&mb, arg, internal, cfg)) < 0)
		return r;
	if ((r = ids_mbname_internal(&mb, buf, size)) < 0 ||
	    ((flags & IDS_MBNAME_STRICT) &&
	    (r = ids_mbname_parse_internal(&mb, buf, IDS_MBNAME_STRICT)) < 0))
		return tool_error(r, arg);
	return 0;
}

static int
list_json(struct list *l, const char *name, const struct ids_mbentry *e,
    const char *layout)
{
	json_t *obj = json_object();
	char *text = NULL;
	int r = obj ? 0 : -ENOMEM;

	if (r == 0)
		r = ids_json_set_string(obj, "name", name);
	if (r == 0)
		r = ids_json_set_string(obj, "uniqueid", e->uniqueid);
	if (r == 0)
		r = ids_json_set_string(obj, "layout", layout);
	if (r == 0)
		r = ids_json_set_string(obj, "partition", e->partition);
	if (r == 0 && (text = json_dumps(obj, JSON_PRESERVE_ORDER)) == NULL)
		r = -ENOMEM;
	if (r == 0) {
		printf("%s%s", l->sep, text);
		l->sep = ",\n";
	}
	free(text);
	json_decref(obj);
	return r;
}

static int
list_entry(const struct ids_mbentry *e, void *rock)
{
	struct list *l = rock;
	const char *layout = ids_mbentry_is_legacy(e) ? "legacy" : "uniqueid";
	struct ids_mbname mb;
	char name[NAMEBUF];
	int r;

	if (ids_mbentry_is_tombstone(e))
		return 0;
	l->count++;
	if ((r = ids_mbname_parse_internal(&mb, e->name, 0)) < 0) {
		tool_error(r, e->name);
		return 0;
	}
	if (tool_format_name(&mb, l->internal, l->cfg, name, sizeof(name)) < 0)
		return 0;
	if (l->json)
		r = list_json(l, name, e, layout);
	else
		r = printf("%s\t%s\t%s\t%s\n", name, e->uniqueid ? e->uniqueid : "-",
		    layout, e->partition ? e->partition : "-") < 0 ? ids_errno() : 0;
	if (r < 0)
		tool_error(r, e->name);
	return 0;
}

struct list_args {
	struct list *l;
	char **names;
	int nnames;
};

static int
list_txn(struct ids_txn *txn, void *rock)
{
	struct list_args *a = rock;
	char name[NAMEBUF];
	size_t before;
	int i, r;

	if (a->nnames == 0)
		return ids_txn_foreach(txn, NULL, list_entry, a->l);
	for (i = 0; i < a->nnames; i++) {
		if (name_arg(a->l->cfg, a->names[i], a->l->internal, 0, name,
		    sizeof(name)) < 0)
			continue;
		before = a->l->count;
		r = ids_txn_foreach(txn, name, list_entry, a->l);
		if (r == IDS_ETOOLONG || r == IDS_EBADNAME) {
			tool_error(r, a->names[i]);
			continue;
		}
		if (r < 0)
			return r;
		if (a->l->count == before)
			tool_error(ids_error(IDS_ENOTFOUND, "no such mailbox"), a->names[i]);
	}
	return 0;
}

static int
do_list(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	struct list l = { cfg, o->internal, o->json, "", 0 };
	struct list_args a = { &l, o->names, o->nnames };
	int r;

	if ((r = tool_try_open_mboxlist(cfg, IDS_MBOXLIST_RDONLY, &mbl)) != IDS_EXIT_OK)
		return r;
	if (o->json)
		fputs("[\n", stdout);
	r = ids_mboxlist_read(mbl, list_txn, &a);
	if (o->json)
		fputs("\n]\n", stdout);
	if (r < 0)
		warnx("%s: %s", ids_mboxlist_path(mbl), tool_reason(ids_mboxlist_path(mbl), r));
	ids_mboxlist_close(mbl);
	if (flush_stdout() != IDS_EXIT_OK)
		return IDS_EXIT_FAIL;
	return r < 0 ? tool_exit_status(r) : tool_status();
}

/* ---- create and delete --------------------------------------------- */

/* Whether delete_mode says delayed (Cyrus's default) or immediate. */
static int
delayed_delete(const struct ids_config *cfg)
{
	const char *mode = ids_config_get(cfg, "delete_mode");

	if (mode == NULL || strcmp(mode, "delayed") == 0)
		return 1;
	if (strcmp(mode, "immediate") == 0)
		return 0;
	warnx("%s: delete_mode: '%s' is not delayed or immediate", cfg->file, mode);
	exit(IDS_EXIT_ENV);
}

/*
 * Deletes name as Cyrus's delayed delete does: renames it (files and
 * all, its children left alone) to DELETED.<name>.<hextime>.  A name
 * that is DELETED already is removed for good, as Cyrus removes it.
 */
static int
delete_folder(struct ids_mboxlist *mbl, const char *name, int delayed)
{
	struct ids_rename_opts ro;
	struct ids_mailbox *box;
	struct ids_mbname mb;
	char hex[16], to[NAMEBUF];
	int r;

	if ((r = ids_mbname_parse_internal(&mb, name, 0)) < 0)
		return r;
	if (!delayed || mb.deleted != NULL)
		return ids_mailbox_delete(mbl, name);
	/* A folder that cannot be opened safely (a symlink) stays as it is. */
	if ((r = ids_mailbox_open(mbl, name, 0, IDS_LOCK_TIMEOUT_MS, &box)) < 0)
		return r;
	ids_mailbox_close(box);
	snprintf(hex, sizeof(hex), "%X", (unsigned)time(NULL));
	mb.deleted = hex;
	if ((r = ids_mbname_internal(&mb, to, sizeof(to))) < 0)
		return r;
	memset(&ro, 0, sizeof(ro));
	ro.flags = IDS_RENAME_ONE;
	ro.lock_timeout_ms = IDS_LOCK_TIMEOUT_MS;
	return ids_rename(mbl, name, to, &ro);
}

/* Creates (in the uniqueid layout) or deletes each named folder. */
static int
do_lifecycle(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	char name[NAMEBUF], shown[SHOWBUF];
	int i, r, create = o->mode == MODE_CREATE, delayed = create ? 0 : delayed_delete(cfg);

	r = tool_try_open_mboxlist(cfg, create ? IDS_MBOXLIST_CREATE : 0, &mbl);
	if (r != IDS_EXIT_OK)
		return r;
	for (i = 0; i < o->nnames; i++) {
		if (name_arg(cfg, o->names[i], o->internal,
		    create ? IDS_MBNAME_STRICT : 0, name, sizeof(name)) < 0)
			continue;
		if (create)
			r = ids_mailbox_create(mbl, name, NULL, NULL);
		else
			r = delete_folder(mbl, name, delayed);
		if (r < 0)
			tool_error(r, tool_printable(o->names[i], shown, sizeof(shown)));
	}
	ids_mboxlist_close(mbl);
	return tool_status();
}

/* --expire: the DELETED folders whose hex time is older than the age. */
struct expire {
	unsigned long long before;
	char **v;
	size_t n, cap;
};

static int
expire_add(const struct ids_mbentry *e, void *rock)
{
	struct expire *x = rock;
	struct ids_mbname mb;
	unsigned long long t;
	char *end;

	if (ids_mbentry_is_tombstone(e) || ids_mbname_parse_internal(&mb, e->name, 0) < 0 ||
	    mb.deleted == NULL)
		return 0;
	t = strtoull(mb.deleted, &end, 16);
	if (*end != '\0' || t > x->before)
		return 0;
	if (IDS_ALLOC_GROW(x->v, x->n + 1, x->cap) < 0)
		return -ENOMEM;
	if ((x->v[x->n] = strdup(e->name)) == NULL)
		return -ENOMEM;
	x->n++;
	return 0;
}

static int
expire_txn(struct ids_txn *txn, void *rock)
{
	return ids_txn_foreach(txn, NULL, expire_add, rock);
}

static int
do_expire(const struct ids_config *cfg, const struct options *o)
{
	struct ids_mboxlist *mbl;
	struct expire x = { 0, NULL, 0, 0 };
	unsigned long long now = (unsigned long long)time(NULL);
	char shown[SHOWBUF];
	size_t i;
	int r;

	x.before = o->expire > now ? 0 : now - o->expire;
	if ((r = tool_try_open_mboxlist(cfg, 0, &mbl)) != IDS_EXIT_OK)
		return r;
	if ((r = ids_mboxlist_read(mbl, expire_txn, &x)) < 0)
		tool_error(r, ids_mboxlist_path(mbl));
	for (i = 0; r == 0 && i < x.n; i++)
		if (ids_mailbox_delete(mbl, x.v[i]) < 0)
			tool_error(IDS_EDB, tool_printable(x.v[i], shown, sizeof(shown)));
	for (i = 0; i < x.n; i++)
		free(x.v[i]);
	free(x.v);
	ids_mboxlist_close(mbl);
	return r < 0 ? tool_exit_status(r) : tool_status();
}

/* ---- main ----------------------------------------------------------- */

static void
set_mode(struct options *o, enum mode m)
{
	if (o->mode != MODE_NONE && o->mode != m)
		tool_usage(synopsis);
	o->mode = m;
}

static void __attribute__((noreturn))
refuse_cyrus(const char *opt, const char *meaning, const char *instead)
{
	warnx("%s (in Cyrus: %s) is not supported; use %s (ctl_mboxlist(8))", opt, meaning,
	    instead);
	exit(IDS_EXIT_USAGE);
}

static void __attribute__((noreturn))
bad_option(int c, const char *arg)
{
	if (c == ':')
		warnx("option requires an argument: %s", arg);
	else if (optopt && strncmp(arg, "--", 2) != 0)
		warnx("invalid option: -%c", optopt);
	else
		warnx("invalid option: %s", arg);
	tool_usage(synopsis);
}

/* Which operands and options each mode takes. */
static void
check_options(const struct options *o)
{
	if (o->purge) {
		warnx("-x with -d (in Cyrus: remove the dumped entries from mailboxes.db, "
		    "leaving their files) is not supported; ctl_mboxlist -x NAME deletes "
		    "folders (ctl_mboxlist(8))");
		exit(IDS_EXIT_USAGE);
	}
	if (o->partition && o->mode != MODE_DUMP)
		tool_usage(synopsis);
	switch (o->mode) {
	case MODE_DUMP:
	case MODE_UNDUMP:
	case MODE_EXPIRE:
		if (o->nnames || o->internal || o->json)
			tool_usage(synopsis);
		break;
	case MODE_CREATE:
	case MODE_DELETE:
		if (o->nnames == 0 || o->json)
			tool_usage(synopsis);
		break;
	case MODE_LIST:
		break;
	case MODE_NONE:
		tool_usage(synopsis);
	}
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "expire", required_argument, NULL, 'E' },
		{ NULL, 0, NULL, 0 },
	};
	int c, x = 0;

	opterr = 0;	/* getopt would name the program by its whole path */
	while ((c = getopt_long(argc, argv, ":C:cdiluxyp:f:Lmawv", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': o->conf = optarg; break;
		case 'd': set_mode(o, MODE_DUMP); break;
		case 'u': set_mode(o, MODE_UNDUMP); break;
		case 'l': set_mode(o, MODE_LIST); break;
		case 'c': set_mode(o, MODE_CREATE); break;
		case 'x': x = 1; break;
		case 'y': break;	/* Cyrus's -d -y: no entry is hidden here */
		case 'p': o->partition = optarg; break;
		case 'i': o->internal = 1; break;
		case 'j': o->json = 1; break;
		case 'E':
			set_mode(o, MODE_EXPIRE);
			if (tool_uint("--expire", optarg, 0, 100ull * 365 * 86400, &o->expire) < 0)
				tool_usage(synopsis);
			break;
		case 'f':
			refuse_cyrus("-f", "use another database file",
			    "-C with a configuration of its own");
		case 'L':
			refuse_cyrus("-L", "undump a dump of Cyrus 2.x",
			    "a JSON dump of Cyrus 3 (ctl_mboxlist -d)");
		case 'm':
		case 'a':
		case 'w':
			refuse_cyrus(c == 'm' ? "-m" : c == 'a' ? "-a" : "-w",
			    "synchronise with the MUPDATE server of a Murder",
			    "nothing: idspool serves no Murder");
		case 'v':
			refuse_cyrus("-v", "verify mailboxes.db against the partitions",
			    "spool_audit, or reconstruct -m -n");
		case 'h': tool_help_options(synopsis, help);
		case 'V': tool_version();
		default: bad_option(c, argv[optind - 1]);
		}
	}
	/* -x deletes folders; with -d it would be Cyrus's purge. */
	if (x && o->mode == MODE_DUMP)
		o->purge = 1;
	else if (x)
		set_mode(o, MODE_DELETE);
	o->names = argv + optind;
	o->nnames = argc - optind;
	check_options(o);
}

int
main(int argc, char **argv)
{
	struct options o = { NULL, MODE_NONE, NULL, 0, 0, 0, 0, NULL, 0 };
	struct ids_config cfg;
	int status = IDS_EXIT_FAIL;

	tool_init(argv);
	parse_options(argc, argv, &o);
	tool_load_config(&cfg, o.conf);
	switch (o.mode) {
	case MODE_DUMP: status = do_dump(&cfg, &o); break;
	case MODE_UNDUMP: status = do_undump(&cfg); break;
	case MODE_LIST: status = do_list(&cfg, &o); break;
	case MODE_CREATE:
	case MODE_DELETE: status = do_lifecycle(&cfg, &o); break;
	case MODE_EXPIRE: status = do_expire(&cfg, &o); break;
	case MODE_NONE: break;
	}
	ids_config_release(&cfg);
	return status;
}
