/*
 * mbpath - where does this folder live?
 *
 * Prints the data directory (-M, -m: the meta directory; -a: both,
 * labelled; -j: a JSON object) of each mailbox named, in the layout
 * mailboxes.db records for it, or in the layout forced with -L (which
 * also resolves names mailboxes.db does not know, unless -l, and needs
 * no mailboxes.db for the legacy layout).  The options Cyrus 3.6's
 * mbpath has mean what they mean there: -u the arguments are userids,
 * -p paths (the paths of the mailbox each lies in are printed; with -N
 * its name instead), -7 names are modified
 * UTF-7 rather than UTF-8, -q drops error messages, -s stops at the
 * first error, -l resolves only mailboxes mailboxes.db holds; -A, -S
 * and -U are refused with a pointer.  With -I the arguments are unique
 * ids.  A failing argument is reported and the next one tried; the exit
 * status says whether any failed (tool.h).
 */
#include <err.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "layout.h"
#include "mbentry.h"
#include "mboxlist.h"
#include "mboxname.h"
#include "tool.h"

#define SYNOPSIS "mbpath [-C conf] [-7] [-i] [-j] [-l] [-L legacy|uniqueid] [-q] [-s] " \
	"[-u | -p [-N] | -I] [-a | -D | -M | -m] NAME ..."

static const char help[] =
    "  -C conf      the configuration file (default /etc/idspool.conf)\n"
    "  -7           names are in modified UTF-7 (as stored), not UTF-8\n"
    "  -i           names are internal (example.com!user.john^doe.Sent)\n"
    "  -j           print a JSON object per mailbox\n"
    "  -l           local only: a name must be in mailboxes.db, even with -L\n"
    "  -L layout    resolve in this layout, whatever mailboxes.db says\n"
    "  -q           print no error messages (the exit status still tells)\n"
    "  -s           stop at the first argument that fails\n"
    "  -u           the arguments are userids: their INBOX\n"
    "  -p           the arguments are paths: the paths of their mailbox\n"
    "  -N           with -p: print the mailbox's name instead\n"
    "  -I           the arguments are unique ids\n"
    "  -a           print every path, labelled (Data:, Meta:)\n"
    "  -D           print the data directory (the default)\n"
    "  -M, -m       print the meta directory (cyrus.header)\n";

#define DO_DATA 0x1
#define DO_META 0x2
#define DO_ALL (DO_DATA | DO_META)

enum mode { MODE_NAME, MODE_USER, MODE_PATH, MODE_ID };

struct mbpath {
	const char *conf;	/* -C */
	int internal;		/* -i: names in the internal form */
	int utf7;		/* -7: names as stored, no UTF-8 to convert */
	int json;		/* -j */
	int localonly;		/* -l */
	int stop;		/* -s */
	int paths;		/* DO_*: -a, -D, -M */
	int names;		/* -N: -p prints names */
	enum mode mode;		/* -u, -p, -I */
	int forced;		/* -L given */
	enum ids_layout layout;	/* with -L */
	struct ids_config cfg;
	struct ids_mboxlist *mbl;	/* NULL: no mailboxes.db */
};

static void
set_mode(struct mbpath *m, enum mode mode)
{
	if (m->mode != MODE_NAME && m->mode != mode) {
		warnx("only one of -u, -p and -I");
		tool_usage(SYNOPSIS);
	}
	m->mode = mode;
}

static void
set_paths(struct mbpath *m, int paths)
{
	if (m->paths != 0 && m->paths != paths) {
		warnx("only one of -a, -D, -M and -m");
		tool_usage(SYNOPSIS);
	}
	m->paths = paths;
}

static void __attribute__((noreturn))
refuse_cyrus(int c)
{
	static const char *const what[] = {
		['A'] = "the archive partition's path",
		['S'] = "the user's sieve directory",
		['U'] = "the directory of the user's seen and subscription files",
	};

	warnx("-%c (in Cyrus: %s) is not supported: idspool keeps no such path "
	    "per mailbox; see spool-layout.md, and mbpath -a for the paths there are", c, what[c]);
	exit(IDS_EXIT_USAGE);
}

static void
parse_args(struct mbpath *m, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "layout", required_argument, NULL, 'L' },
		{ "uniqueid", no_argument, NULL, 'I' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "C:7ijlL:qsupNIaDMmASU", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': m->conf = optarg; break;
		case '7': m->utf7 = 1; break;
		case 'i': m->internal = 1; break;
		case 'j': m->json = 1; break;
		case 'l': m->localonly = 1; break;
		case 'q': tool_set_quiet(1); break;
		case 's': m->stop = 1; break;
		case 'u': set_mode(m, MODE_USER); break;
		case 'p': set_mode(m, MODE_PATH); break;
		case 'N': m->names = 1; break;
		case 'I': set_mode(m, MODE_ID); break;
		case 'a': set_paths(m, DO_ALL); break;
		case 'D': set_paths(m, DO_DATA); break;
		case 'M':
		case 'm': set_paths(m, DO_META); break;
		case 'A':
		case 'S':
		case 'U': refuse_cyrus(c);
		case 'L':
			if (ids_layout_parse(optarg, &m->layout) < 0) {
				warnx("-L %s: %s", optarg, ids_errmsg(IDS_EINVAL));
				tool_usage(SYNOPSIS);
			}
			m->forced = 1;
			break;
		case 'h': tool_help_options(SYNOPSIS, help);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	if (m->paths == 0)
		m->paths = DO_DATA;
	if (optind == argc || (m->names && (m->mode != MODE_PATH || m->json)))
		tool_usage(SYNOPSIS);
}

/* Opens mailboxes.db; a missing one is fine unless it is required. */
static void
open_db(struct mbpath *m, int required)
{
	int r = ids_mboxlist_open(&m->cfg, IDS_MBOXLIST_RDONLY, &m->mbl);

	if (r == 0)
		return;
	m->mbl = NULL;
	if (r == IDS_ENOTFOUND && !required)
		return;
	warnx("%s%s", ids_errmsg(r), r == IDS_ENOTFOUND && m->mode != MODE_ID ?
	    "; -L resolves names without it" : "");
	exit(IDS_EXIT_ENV);
}

static int
print_dir(struct mbpath *m, const struct ids_location *loc, const char *shown)
{
	char data[4096], meta[4096];
	int r;

	if ((r = ids_path_datadir(&m->cfg, loc, data, sizeof(data))) < 0 ||
	    (r = ids_path_metadir(&m->cfg, loc, IDS_META_HEADER, meta, sizeof(meta))) < 0)
		return tool_error(r, shown);
	if (m->json) {
		char name[IDS_MBNAME_MAX + 2], ext[2 * IDS_MBNAME_MAX + 64], owner[IDS_MBNAME_MAX + 1];
		json_t *j = json_object(), *mbn = json_object();
		char *text;

		if (ids_mbname_internal(loc->name, name, sizeof(name)) >= 0)
			json_object_set_new(mbn, "intname", json_string(name));
		if (ids_mbname_external(loc->name, &m->cfg, ext, sizeof(ext)) >= 0)
			json_object_set_new(mbn, "extname", json_string(ext));
		if (ids_mbname_is_user(loc->name) &&
		    ids_mbname_owner(loc->name, owner, sizeof(owner)) >= 0)
			json_object_set_new(mbn, "userid", json_string(owner));
		if (loc->name->domain != NULL)
			json_object_set_new(mbn, "domain", json_string(loc->name->domain));
		json_object_set_new(j, "mbname", mbn);
		json_object_set_new(j, "data", json_string(data));
		json_object_set_new(j, "meta", json_string(meta));
		json_object_set_new(j, "layout", json_string(loc->layout == IDS_LAYOUT_LEGACY ?
		    "legacy" : "uniqueid"));
		if (loc->uniqueid != NULL)
			json_object_set_new(j, "uniqueid", json_string(loc->uniqueid));
		text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
		if (text != NULL)
			printf("%s\n", text);
		free(text);
		json_decref(j);
		return 0;
	}
	if (m->paths & DO_DATA)
		printf("%s%s\n", m->paths == DO_ALL ? "Data: " : "", data);
	if (m->paths & DO_META)
		printf("%s%s\n", m->paths == DO_ALL ? "Meta: " : "", meta);
	return 0;
}

/*
 * The location of an entry (its name parsed into *mb), with the layout
 * forced by -l.  A name mailboxes.db does not know has no entry
 * (e->name NULL): then *mb already holds it, and it is resolved on the
 * default partition.
 */
static int
locate(struct mbpath *m, const struct ids_mbentry *e, struct ids_mbname *mb,
    struct ids_location *loc)
{
	int r;

	if (e->name != NULL && (r = ids_location_from_entry(e, mb, loc)) < 0)
		return r;
	if (e->name == NULL) {
		loc->name = mb;
		loc->uniqueid = NULL;
		loc->partition = NULL;
	}
	if (m->forced)
		loc->layout = m->layout;
	if (loc->layout == IDS_LAYOUT_UNIQUEID && loc->uniqueid == NULL)
		return ids_error(IDS_ENOTFOUND, "not in mailboxes.db, so no unique id "
		    "for the uniqueid layout");
	return 0;
}

static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* A name argument (or, with -u, a userid's INBOX): 0 or an error code. */
static int
do_name(struct mbpath *m, const char *arg)
{
	struct ids_mbname mb;
	struct ids_mbentry e;
	struct ids_location loc;
	char name[IDS_MBNAME_MAX + 2], shown[256], conv[2 * IDS_MBNAME_MAX + 64];
	const char *given = arg;
	int r = IDS_ENOTFOUND;

	tool_printable(arg, shown, sizeof(shown));
	/* Cyrus's tools take names in UTF-8 unless told -7. */
	if (!m->utf7 && !m->internal && has_8bit(arg)) {
		if (tool_utf8_to_mutf7(arg, conv, sizeof(conv)) < 0)
			return tool_error(ids_error(IDS_EBADNAME, "not UTF-8 (-7: modified UTF-7)"),
			    shown);
		given = conv;
	}
	if (m->mode == MODE_USER) {
		if ((r = tool_parse_user(&mb, given, &m->cfg)) < 0)
			return r;
	} else if ((r = tool_parse_name(&mb, given, m->internal, &m->cfg)) < 0) {
		return r;
	}
	r = IDS_ENOTFOUND;
	ids_mbentry_init(&e);
	if (m->mbl != NULL && ids_mbname_internal(&mb, name, sizeof(name)) >= 0)
		r = ids_mboxlist_lookup(m->mbl, name, &e);
	/* With -L a tombstone's name is as free as an unknown one. */
	if (r == 0 && m->forced && ids_mbentry_is_tombstone(&e)) {
		ids_mbentry_release(&e);
		ids_mbentry_init(&e);
		r = IDS_ENOTFOUND;
	}
	if (r == IDS_ENOTFOUND && m->localonly)
		r = ids_error(IDS_ENOTFOUND, "not in mailboxes.db");
	else if (r == IDS_ENOTFOUND && !m->forced)
		r = ids_error(IDS_ENOTFOUND, "not in mailboxes.db (-L resolves it anyway)");
	else if (r == IDS_ENOTFOUND)
		r = 0;
	if (r == 0 && (r = locate(m, &e, &mb, &loc)) == 0)
		r = print_dir(m, &loc, shown);
	else if (r < 0)
		tool_error(r, shown);
	ids_mbentry_release(&e);
	return r;
}

static int
do_id(struct mbpath *m, const char *arg)
{
	struct ids_mbname mb;
	struct ids_mbentry e;
	struct ids_location loc;
	char shown[256];
	int r;

	tool_printable(arg, shown, sizeof(shown));
	ids_mbentry_init(&e);
	if ((r = ids_uniqueid_check(arg)) == 0 &&
	    (r = ids_mboxlist_lookup_id(m->mbl, arg, &e)) == 0 &&
	    (r = locate(m, &e, &mb, &loc)) == 0)
		r = print_dir(m, &loc, shown);
	else if (r < 0)
		tool_error(r, shown);
	ids_mbentry_release(&e);
	return r;
}

/* Whether entry e (its name parsed into mb) has the folder pi names. */
static int
same_place(const struct ids_mbentry *e, const struct ids_mbname *mb,
    const struct ids_pathinfo *pi)
{
	char owner[IDS_MBNAME_MAX + 1];

	return !ids_mbentry_is_legacy(e) && e->partition != NULL &&
	    strcmp(e->partition, pi->partition->name) == 0 &&
	    ids_mbname_is_user(mb) == pi->is_user &&
	    ids_mbname_owner(mb, owner, sizeof(owner)) >= 0 &&
	    strcmp(owner, pi->owner) == 0;
}

/* A uniqueid-layout path: mailboxes.db names the folder with that id. */
static int
name_of_id(struct mbpath *m, const struct ids_pathinfo *pi, struct ids_mbname *mb)
{
	struct ids_mbentry e;
	int r;

	if (m->mbl == NULL)
		return ids_error(IDS_ENOTFOUND, "unique id %s: no mailboxes.db to "
		    "name it", pi->uniqueid);
	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup_id(m->mbl, pi->uniqueid, &e);
	if (r == 0)
		r = ids_mbname_parse_internal(mb, e.name, 0);
	if (r == 0 && !same_place(&e, mb, pi))
		r = ids_error(IDS_ENOTFOUND, "unique id %s belongs to %s, whose "
		    "folder is elsewhere", pi->uniqueid, e.name);
	ids_mbentry_release(&e);
	return r;
}

/*
 * A legacy-layout path names its mailbox itself; mailboxes.db, when
 * there is one, must agree that the mailbox lives there.
 */
static int
legacy_name(struct mbpath *m, const struct ids_pathinfo *pi, struct ids_mbname *mb)
{
	struct ids_mbentry e;
	char name[IDS_MBNAME_MAX + 2];
	int r;

	ids_mbname_copy(mb, &pi->name);
	if (m->mbl == NULL || (r = ids_mbname_internal(mb, name, sizeof(name))) < 0)
		return 0;
	ids_mbentry_init(&e);
	r = ids_mboxlist_lookup(m->mbl, name, &e);
	if (r == IDS_ENOTFOUND)
		r = ids_error(IDS_ENOTFOUND, "%s is not in mailboxes.db", name);
	else if (r == 0 && ids_mbentry_is_tombstone(&e))
		r = ids_error(IDS_ENOTFOUND, "%s is a tombstone", name);
	else if (r == 0 && !ids_mbentry_is_legacy(&e))
		r = ids_error(IDS_ENOTFOUND, "%s lives in the uniqueid layout, "
		    "not here", name);
	ids_mbentry_release(&e);
	return r;
}

static int
reverse(struct mbpath *m, const char *arg, struct ids_pathinfo *pi,
    struct ids_mbname *mb)
{
	char why[1024];
	size_t n;
	int r;

	r = m->forced ? ids_path_reverse_layout(&m->cfg, arg, m->layout, pi) :
	    ids_path_reverse(&m->cfg, arg, pi);
	if (r == 0 && pi->kind == IDS_PATH_SLOT)
		r = ids_error(IDS_ENOTFOUND, "a directory above the folders, "
		    "not inside one");
	if (r < 0)
		return r;
	if (pi->layout == IDS_LAYOUT_LEGACY)
		return legacy_name(m, pi, mb);
	r = name_of_id(m, pi, mb);
	if (r != IDS_ENOTFOUND || m->forced || m->mbl == NULL)
		return r;
	/* Perhaps a legacy folder whose name looks like a unique id. */
	n = strnlen(ids_errmsg(r), sizeof(why) - 1);
	memcpy(why, ids_errmsg(r), n);
	why[n] = '\0';
	if (ids_path_reverse_layout(&m->cfg, arg, IDS_LAYOUT_LEGACY, pi) == 0 &&
	    pi->kind != IDS_PATH_SLOT && legacy_name(m, pi, mb) == 0)
		return 0;
	return ids_error(r, "%s", why);
}

static int
do_path(struct mbpath *m, const char *arg)
{
	struct ids_location loc;
	struct ids_pathinfo pi;
	struct ids_mbname mb;
	char name[IDS_MBNAME_MAX + 2], shown[256];
	int r;

	tool_printable(arg, shown, sizeof(shown));
	if ((r = reverse(m, arg, &pi, &mb)) < 0)
		return tool_error(r, shown);
	if (m->names) {
		if ((r = tool_format_name(&mb, m->internal, &m->cfg, name, sizeof(name))) < 0)
			return r;
		puts(name);
		return 0;
	}
	/* As Cyrus: the paths of the mailbox the path lies in. */
	loc.name = &mb;
	loc.uniqueid = pi.layout == IDS_LAYOUT_UNIQUEID ? pi.uniqueid : NULL;
	loc.partition = pi.partition->name;
	loc.layout = pi.layout;
	return print_dir(m, &loc, shown);
}

int
main(int argc, char **argv)
{
	struct mbpath m;
	int i, r;

	memset(&m, 0, sizeof(m));
	tool_init(argv);
	parse_args(&m, argc, argv);
	tool_load_config(&m.cfg, m.conf);
	open_db(&m, m.mode == MODE_ID || m.localonly ||
	    (m.mode != MODE_PATH && !m.forced));
	for (i = optind; i < argc; i++) {
		if (m.mode == MODE_PATH)
			r = do_path(&m, argv[i]);
		else if (m.mode == MODE_ID)
			r = do_id(&m, argv[i]);
		else
			r = do_name(&m, argv[i]);
		if (r < 0 && m.stop)
			break;
	}
	ids_mboxlist_close(m.mbl);
	ids_config_release(&m.cfg);
	if (fflush(stdout) != 0 || ferror(stdout))
		err(IDS_EXIT_ENV, "stdout");
	return tool_status();
}
