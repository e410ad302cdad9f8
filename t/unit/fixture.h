/*
 * fixture.h - the scratch spool the unit tests start from: a fresh
 * directory below /tmp holding mailboxes.db and the partitions, a
 * parsed configuration, and mailboxes.db open for writing.
 *
 * A group whose state is just that uses fixture_setup() and
 * fixture_teardown() in its own setup and teardown:
 *
 *	static int setup(void **state)
 *	{ return fixture_setup(state, "ren", 0, ""); }
 *
 *	static int teardown(void **state)
 *	{ return fixture_teardown(state); }
 *
 * A group that keeps more state puts a struct fixture first in its own
 * struct, allocates that itself and calls fixture_init(); teardown
 * frees it with fixture_teardown() all the same.
 */
#ifndef IDS_TEST_FIXTURE_H
#define IDS_TEST_FIXTURE_H

#include "config.h"
#include "mboxlist.h"

struct fixture {
	char dir[64];		/* /tmp/ids-<tag>-XXXXXX, the configdirectory */
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
};

/*
 * The layout of the scratch spool.  Without flags: partition-default
 * is <dir>/spool, with hashimapspool and virtdomains: userid.
 */
enum fixture_flags {
	FIXTURE_FLAT = 1 << 0,	/* partition-default is <dir> itself; no other keys */
	FIXTURE_META = 1 << 1,	/* metapartition-default: <dir>/meta */
	FIXTURE_TWO = 1 << 2,	/* partition-two: <dir>/two */
	FIXTURE_SIEVE = 1 << 3,	/* sievedir: <dir>/sieve */
};

/*
 * Makes /tmp/ids-<tag>-XXXXXX with the partitions flags name, parses
 * the configuration (extra appended to it: more "key: value" lines)
 * and opens mailboxes.db with IDS_MBOXLIST_CREATE.  Returns 0, or -1
 * when any step fails (the test group then fails in its setup).
 */
int fixture_init(struct fixture *f, const char *tag, unsigned flags, const char *extra);

/*
 * Parses the configuration of a spool rooted at root (made, with its
 * partitions, if missing) into cfg, as fixture_init() does; file names
 * it in messages.  For groups with more than one spool.  Returns 0 or -1.
 */
int fixture_config(struct ids_config *cfg, const char *root, unsigned flags,
    const char *extra, const char *file);

/* Closes mailboxes.db, releases the configuration, removes the directory. */
void fixture_release(struct fixture *f);

/* fixture_init() on a new struct fixture, made *state. */
int fixture_setup(void **state, const char *tag, unsigned flags, const char *extra);
/* fixture_release() and free() of *state; returns 0. */
int fixture_teardown(void **state);

#endif
