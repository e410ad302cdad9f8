/*
 * renameloop - the baseline for the rename strategy in bench-relocate.sh:
 * a bare loop of directory renames, children first, with no database,
 * no lock, no intent, no verification and no fsync.
 *
 *	renameloop < plan
 *
 * The plan is `relocated -n` output: lines "OLD -> NEW", children before
 * parents.  For each line the loop creates NEW's missing parents and
 * renames OLD to NEW.  Where NEW lies inside OLD (a user's INBOX: its
 * folders' uniqueid directories now live inside its legacy directory) it
 * makes NEW and renames OLD's regular files into it, as few calls as
 * that move can take.  It prints the folders moved, the seconds taken
 * and folders per second, on one line.
 */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* mkdir -p of path's parent. */
static void
make_parents(char *path)
{
	char *p;

	for (p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0750) < 0 && errno != EEXIST)
			err(1, "mkdir %s", path);
		*p = '/';
	}
}

/* The INBOX case: NEW inside OLD, so move OLD's files, not OLD. */
static void
move_files(const char *old, const char *new)
{
	char from[8192], to[8192];
	struct dirent *de;
	DIR *d;

	if (mkdir(new, 0750) < 0 && errno != EEXIST)
		err(1, "mkdir %s", new);
	if ((d = opendir(old)) == NULL)
		err(1, "%s", old);
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_REG)
			continue;
		if ((size_t)snprintf(from, sizeof(from), "%s/%s", old, de->d_name) >= sizeof(from) ||
		    (size_t)snprintf(to, sizeof(to), "%s/%s", new, de->d_name) >= sizeof(to))
			errx(1, "%s: path too long", old);
		if (rename(from, to) < 0)
			err(1, "rename %s", from);
	}
	closedir(d);
}

int
main(void)
{
	char line[16384], *arrow, *nl;
	unsigned long folders = 0;
	double t0 = now(), secs;
	size_t n;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if ((arrow = strstr(line, " -> ")) == NULL)
			continue;
		*arrow = '\0';
		make_parents(arrow + 4);
		n = strlen(line);
		if (strncmp(arrow + 4, line, n) == 0 && arrow[4 + n] == '/')
			move_files(line, arrow + 4);
		else if (rename(line, arrow + 4) < 0)
			err(1, "rename %s", line);
		folders++;
	}
	secs = now() - t0;
	printf("%lu folders %.2f s %.0f folders/s\n", folders, secs,
	    secs > 0 ? (double)folders / secs : 0.0);
	return 0;
}
