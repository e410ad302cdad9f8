/*
 * resolve - how a delivery agent or IMAP server uses libidspool.
 *
 *	cc -o resolve resolve.c $(pkg-config --cflags --libs idspool)
 *	./resolve /etc/idspool.conf user.john.Sent
 *
 * Opens the folder (internal name) the way any writer must: its mailbox
 * lock first, then its directory, resolved under the lock, whichever
 * layout the folder is in.  Prints the data directory, the path of the
 * next message file and the layout, and releases the lock.
 */
#include <stdio.h>

#include <idspool.h>

int
main(int argc, char **argv)
{
	struct ids_config cfg;
	struct ids_mboxlist *mbl;
	struct ids_mailbox *mb;
	struct ids_index_header h;
	char dir[4096], next[4096];
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: resolve idspool.conf internal-name\n");
		return 2;
	}
	if ((r = ids_config_load(&cfg, argv[1])) < 0) {
		fprintf(stderr, "resolve: %s\n", ids_errmsg(r));
		return 3;
	}
	if ((r = ids_mboxlist_open(&cfg, IDS_MBOXLIST_RDONLY, &mbl)) < 0) {
		fprintf(stderr, "resolve: mailboxes.db: %s\n", ids_errmsg(r));
		return 3;
	}
	/* The lock, then the path: a migration cannot move it meanwhile. */
	if ((r = ids_mailbox_open(mbl, argv[2], IDS_MAILBOX_WRITE, 5000, &mb)) < 0 ||
	    (r = ids_path_datadir(&cfg, &mb->loc, dir, sizeof(dir))) < 0 ||
	    (r = ids_index_read_header(ids_mailbox_metafd(mb, IDS_META_INDEX), &h)) < 0 ||
	    (r = ids_path_message(&cfg, &mb->loc, h.last_uid + 1, next, sizeof(next))) < 0) {
		fprintf(stderr, "resolve: %s: %s\n", argv[2], ids_errmsg(r));
		return 1;
	}
	printf("%s\n%s\n%s\n", dir, next, ids_layout_name(mb->loc.layout));
	ids_mailbox_close(mb);
	ids_mboxlist_close(mbl);
	ids_config_release(&cfg);
	return 0;
}
