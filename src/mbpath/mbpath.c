/*
 * mbpath - where does this folder live?
 *
 * Prints the data directory (-m: the meta directory) of each mailbox
 * named, in the layout mailboxes.db records for it, or in the layout
 * forced with -l (which also resolves names mailboxes.db does not
 * know, and needs no mailboxes.db for the legacy layout).  With -u the
 * arguments are unique ids; with -p they are paths, and the mailbox
 * each lies in is printed.  A failing argument is reported and the next
 * one tried; the exit status says whether any failed (tool.h).
 */
#include <err.h>
#include <getopt.h>
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

#define SYNOPSIS "mbpath [-C conf] [-i] [-l legacy|uniqueid] [-m] [-q] [-u] [-p] NAME ..."

struct mbpath {
	const char *conf;	/* -C */
	int internal;		/* -i: names in the internal form */
	int meta;		/* -m: the meta directory */
	int ids;		/* -u: arguments are unique ids */
	int paths;		/* -p: arguments are paths */
	int forced;		/* -l given */
	enum ids_layout layout;	/* with -l */
	struct ids_config cfg;
	struct ids_mboxlist *mbl;	/* NULL: no mailboxes.db */
};

static void
parse_args(struct mbpath *m, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "C:il:mqup", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': m->conf = optarg; break;
		case 'i': m->internal = 1; break;
		case 'm': m->meta = 1; break;
		case 'q': break;	/* it prints only paths and errors anyway */
		case 'u': m->ids = 1; break;
		case 'p': m->paths = 1; break;
		case 'l':
			if (ids_layout_parse(optarg, &m->layout) < 0) {
				warnx("-l %s: %s", optarg, ids_errmsg(IDS_EINVAL));
				tool_usage(SYNOPSIS);
			}
			m->forced = 1;
			break;
		case 'h': tool_help(SYNOPSIS);
		case 'V': tool_version();
		default: tool_usage(SYNOPSIS);
		}
	}
	if (optind == argc || (m->ids && m->paths))
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
	warnx("%s%s", ids_errmsg(r), r == IDS_ENOTFOUND && !m->ids ?
	    "; -l resolves names without it" : "");
	exit(IDS_EXIT_ENV);
}

static void
print_dir(struct mbpath *m, const struct ids_location *loc, const char *shown)
{
	char path[4096];
	int r;

	if (m->meta)
		r = ids_path_metadir(&m->cfg, loc, IDS_META_HEADER, path, sizeof(path));
	else
		r = ids_path_datadir(&m->cfg, loc, path, sizeof(path));
	if (r < 0)
		tool_error(r, shown);
	else
		puts(path);
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

static void
do_name(struct mbpath *m, const char *arg)
{
	struct ids_mbname mb;
	struct ids_mbentry e;
	struct ids_location loc;
	char name[IDS_MBNAME_MAX + 2], shown[256];
	int r = IDS_ENOTFOUND;

	tool_printable(arg, shown, sizeof(shown));
	if (tool_parse_name(&mb, arg, m->internal, &m->cfg) < 0)
		return;
	ids_mbentry_init(&e);
	if (m->mbl != NULL && ids_mbname_internal(&mb, name, sizeof(name)) >= 0)
		r = ids_mboxlist_lookup(m->mbl, name, &e);
	/* With -l a tombstone's name is as free as an unknown one. */
	if (r == 0 && m->forced && ids_mbentry_is_tombstone(&e)) {
		ids_mbentry_release(&e);
		r = IDS_ENOTFOUND;
	}
	if (r == IDS_ENOTFOUND && !m->forced)
		r = ids_error(IDS_ENOTFOUND, "not in mailboxes.db (-l resolves it anyway)");
	else if (r == IDS_ENOTFOUND)
		r = 0;
	if (r == 0 && (r = locate(m, &e, &mb, &loc)) == 0)
		print_dir(m, &loc, shown);
	if (r < 0)
		tool_error(r, shown);
	ids_mbentry_release(&e);
}

static void
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
		print_dir(m, &loc, shown);
	if (r < 0)
		tool_error(r, shown);
	ids_mbentry_release(&e);
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

static void
do_path(struct mbpath *m, const char *arg)
{
	struct ids_pathinfo pi;
	struct ids_mbname mb;
	char name[IDS_MBNAME_MAX + 2], shown[256];
	int r;

	tool_printable(arg, shown, sizeof(shown));
	if ((r = reverse(m, arg, &pi, &mb)) < 0)
		tool_error(r, shown);
	else if (tool_format_name(&mb, m->internal, &m->cfg, name, sizeof(name)) >= 0)
		puts(name);
}

int
main(int argc, char **argv)
{
	struct mbpath m;
	int i;

	memset(&m, 0, sizeof(m));
	tool_init(argv);
	parse_args(&m, argc, argv);
	tool_load_config(&m.cfg, m.conf);
	open_db(&m, m.ids || (!m.paths && !m.forced));
	for (i = optind; i < argc; i++) {
		if (m.paths)
			do_path(&m, argv[i]);
		else if (m.ids)
			do_id(&m, argv[i]);
		else
			do_name(&m, argv[i]);
	}
	ids_mboxlist_close(m.mbl);
	ids_config_release(&m.cfg);
	if (fflush(stdout) != 0 || ferror(stdout))
		err(IDS_EXIT_ENV, "stdout");
	return tool_status();
}
