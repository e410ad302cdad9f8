/*
 * bench-rename.c - what a rename costs in the uniqueid layout, by
 * folder size and by subtree size, against moving the files of the same
 * folder the way a name-based layout must (cp -al, then rm -r).
 *
 *   bench-rename DIR
 *
 * DIR is a scratch directory (created, and emptied at the end) on the
 * disk to measure.  Folders are made through the library; the message
 * files of the big folder are written directly and indexed with one
 * ids_index_append() so that setting up 100,000 messages takes seconds.
 * Each rename is timed in wall-clock time including its fsyncs, as the
 * median of several renames back and forth.  The baseline of a subtree
 * rename is a bare loop writing 1,000 small files with one syncfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "guid.h"
#include "index.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "rename.h"

#define ROUNDS 7

static struct ids_config cfg;
static struct ids_mboxlist *mbl;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "bench-rename: %s: %s\n", what, ids_errmsg(r));
		exit(1);
	}
}

/* A folder with n messages: files written directly, one index append. */
static void
make_folder(const char *name, int n)
{
	static const char body[] = "From: a@example.com\r\nSubject: bench\r\n\r\n"
	    "A message of a few hundred bytes, as a short mail would be.\r\n";
	struct ids_index_record *recs = calloc((size_t)n + 1, sizeof(*recs));
	struct ids_mailbox *mb;
	char file[32];
	int i, fd;

	check(ids_mailbox_create(mbl, name, NULL, NULL), name);
	check(ids_mailbox_open(mbl, name, IDS_MAILBOX_WRITE, 1000, &mb), name);
	for (i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%d.", i + 1);
		fd = openat(mb->datafd, file, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || ids_write_all(fd, body, sizeof(body) - 1) < 0 || close(fd) < 0)
			check(-errno, file);
		recs[i].uid = (uint32_t)i + 1;
		recs[i].size = sizeof(body) - 1;
		ids_guid_buf(body, sizeof(body) - 1, recs[i].guid);
	}
	if (n > 0)
		check(ids_index_append(ids_mailbox_metafd(mb, IDS_META_INDEX), recs, (size_t)n), name);
	ids_mailbox_close(mb);
	free(recs);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median time of renaming name to name + "X" and back, ROUNDS times each way. */
static double
time_rename(const char *name)
{
	struct ids_rename_opts o = { 0, NULL, 10000, NULL, NULL };
	char other[256];
	double t[2 * ROUNDS], t0;
	int i;

	snprintf(other, sizeof(other), "%sX", name);
	for (i = 0; i < 2 * ROUNDS; i++) {
		t0 = now();
		check(ids_rename(mbl, i % 2 ? other : name, i % 2 ? name : other, &o), name);
		t[i] = now() - t0;
	}
	qsort(t, 2 * ROUNDS, sizeof(t[0]), cmp_double);
	return t[ROUNDS];
}

static void
make_tree(const char *root, int folders)
{
	char name[256];
	int i;

	check(ids_mailbox_create(mbl, root, NULL, NULL), root);
	/* 10 per level below the root, then below each of those. */
	for (i = 1; i < folders; i++) {
		if (i <= 10)
			snprintf(name, sizeof(name), "%s.f%d", root, i);
		else
			snprintf(name, sizeof(name), "%s.f%d.g%d", root, i % 10 + 1, i);
		check(ids_mailbox_create(mbl, name, NULL, NULL), name);
	}
}

/* What moving the files costs: cp -al of the folder directory, then rm -r. */
static double
time_file_move(const char *name)
{
	struct ids_mailbox *mb;
	char dir[1024], cmd[8400];
	double t0, t;
	int r;

	check(ids_mailbox_open(mbl, name, 0, 1000, &mb), name);
	check(ids_path_datadir(&cfg, &mb->loc, dir, sizeof(dir)), name);
	ids_mailbox_close(mb);
	snprintf(cmd, sizeof(cmd), "cp -al '%s' '%s.moved' && rm -r '%s' && sync -f '%s.moved'"
	    " && mv '%s.moved' '%s'", dir, dir, dir, dir, dir, dir);
	t0 = now();
	r = system(cmd);
	t = now() - t0;
	if (r != 0)
		check(-EIO, "cp -al / rm -r");
	return t;
}

/*
 * The baseline of a subtree rename: a bare loop that writes n small
 * files (the size of a cyrus.header) and calls syncfs once; median of
 * 2 * ROUNDS.
 */
static double
time_bare_writes(const char *dir, int n)
{
	static const char text[300] = "a small file, the size of a cyrus.header";
	char path[4200];
	double t[2 * ROUNDS], t0;
	int i, k, fd;

	snprintf(path, sizeof(path), "%s/bare", dir);
	if (mkdir(path, 0750) < 0 && errno != EEXIST)
		check(-errno, path);
	for (k = 0; k < 2 * ROUNDS; k++) {
		t0 = now();
		for (i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "%s/bare/f%d", dir, i);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (fd < 0 || write(fd, text, sizeof(text)) != (ssize_t)sizeof(text) ||
			    close(fd) < 0)
				check(-errno, path);
		}
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0)
			check(-errno, "syncfs");
		close(fd);
		t[k] = now() - t0;
	}
	qsort(t, 2 * ROUNDS, sizeof(t[0]), cmp_double);
	return t[ROUNDS];
}

static void
setup(const char *dir)
{
	char text[8400], path[4200];

	snprintf(path, sizeof(path), "%s/spool", dir);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		check(-errno, dir);
	if (mkdir(path, 0750) < 0)
		check(-errno, path);
	snprintf(text, sizeof(text), "configdirectory: %s\npartition-default: %s\n"
	    "hashimapspool: yes\n", dir, path);
	check(ids_config_parse(&cfg, text, strlen(text), "bench.conf"), "config");
	check(ids_mboxlist_open(&cfg, IDS_MBOXLIST_CREATE, &mbl), "mailboxes.db");
}

int
main(int argc, char **argv)
{
	static const int sizes[] = { 1, 100, 1000 };
	double small, big, tree[3], move, bare;
	char cmd[4200];
	int i;

	if (argc != 2) {
		fprintf(stderr, "usage: bench-rename DIR\n");
		return 2;
	}
	setup(argv[1]);
	make_folder("user.bench.Small", 10);
	make_folder("user.bench.Big", 100000);
	small = time_rename("user.bench.Small");
	big = time_rename("user.bench.Big");
	for (i = 0; i < 3; i++) {
		char root[64];

		snprintf(root, sizeof(root), "user.tree%d.T", sizes[i]);
		make_tree(root, sizes[i]);
		tree[i] = time_rename(root);
	}
	move = time_file_move("user.bench.Big");
	bare = time_bare_writes(argv[1], 1000);
	printf("rename: uniqueid layout, median of %d, wall clock with fsyncs\n", 2 * ROUNDS);
	printf("%-44s %10.2f ms   1.00x\n", "folder, 10 messages", small * 1e3);
	printf("%-44s %10.2f ms %6.2fx  (target <= 1.5x)\n", "folder, 100,000 messages",
	    big * 1e3, big / small);
	for (i = 0; i < 3; i++) {
		char what[64];

		snprintf(what, sizeof(what), "subtree, %d folder%s", sizes[i], sizes[i] > 1 ? "s" : "");
		printf("%-44s %10.2f ms %6.2fx  (%.3f ms/folder)\n", what, tree[i] * 1e3,
		    tree[i] / small, tree[i] * 1e3 / sizes[i]);
	}
	printf("%-44s %10.2f ms %6.0fx  (moving the files: cp -al + rm -r)\n",
	    "legacy layout, 100,000 messages", move * 1e3, move / small);
	printf("%-44s %10.2f ms %6.2fx  (1,000 small files written, one syncfs)\n",
	    "bare loop", bare * 1e3, bare / small);
	printf("subtree of 1000 / one folder = %.2fx (target <= 10x); / bare loop = %.2fx (target <= 2x)\n",
	    tree[2] / small, tree[2] / bare);
	ids_mboxlist_close(mbl);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", argv[1]);
	return system(cmd) == 0 ? 0 : 1;
}
