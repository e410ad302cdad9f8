/*
 * replay.c - runs a fuzz target over files without libFuzzer: each
 * argument is an input file, or a directory whose files are inputs.
 * Linked with one target; `make check` replays t/fuzz/corpus/<target>/
 * through it (t/t9500-fuzz-replay.t), with any compiler.
 */
#include <dirent.h>
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fsutil.h"
#include "fuzz.h"

static int
replay_file(const char *path)
{
	struct ids_buf b = IDS_BUF_INIT;
	char chunk[65536];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		warn("%s", path);
		return 1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ids_buf_add(&b, chunk, n);
	fclose(f);
	if (ids_buf_oom(&b) < 0)
		errx(3, "%s: out of memory", path);
	LLVMFuzzerTestOneInput((const uint8_t *)b.s, b.len);
	ids_buf_release(&b);
	return 0;
}

static int
replay(const char *path, unsigned long *count)
{
	struct dirent *de;
	struct stat st;
	char sub[4096];
	DIR *d;
	int bad = 0;

	if (stat(path, &st) < 0) {
		warn("%s", path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		++*count;
		return replay_file(path);
	}
	if ((d = opendir(path)) == NULL) {
		warn("%s", path);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >= sizeof(sub))
			errx(3, "%s/%s: path too long", path, de->d_name);
		bad |= replay(sub, count);
	}
	closedir(d);
	return bad;
}

int
main(int argc, char **argv)
{
	unsigned long count = 0;
	int i, bad = 0;

	for (i = 1; i < argc; i++)
		bad |= replay(argv[i], &count);
	printf("%lu inputs replayed\n", count);
	return bad;
}
