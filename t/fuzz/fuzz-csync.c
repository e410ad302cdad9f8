/*
 * fuzz-csync.c - the csync reader over a whole session's bytes.
 * Properties: reading ends (every line is read, refused, or the stream
 * is declared lost); a line read prints, the print reads back as one
 * line that prints the same bytes; no staged file survives its line.
 * Read again streaming APPLY MAILBOX's RECORD list item by item (the
 * items put back into the list), the session reads the same: the same
 * lines print the same, the same lines are refused.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dlist.h"
#include "fuzz.h"
#include "sync/csync.h"

struct mem {
	const uint8_t *p;
	size_t len, pos;
};

static ssize_t
mem_read(void *rock, void *buf, size_t len)
{
	struct mem *m = rock;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (n > 4093)	/* odd-sized reads, so lines straddle refills */
		n = 4093;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static char dir[] = "/tmp/fuzz-csync.XXXXXX";

/* The staging directory is empty whenever a line is done: remove it at exit. */
static void
remove_dir(void)
{
	(void)rmdir(dir);
}

static int
stage_dir(void)
{
	static int fd = -1;

	if (fd < 0) {
		if (mkdtemp(dir) == NULL || (fd = open(dir, O_RDONLY | O_DIRECTORY)) < 0)
			fuzz_fail("no staging directory");
		atexit(remove_dir);
	}
	return fd;
}

static void
check_empty(int fd)
{
	DIR *d = fdopendir(dup(fd));
	struct dirent *e;

	if (d == NULL)
		fuzz_fail("cannot read the staging directory");
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			fuzz_fail("a staged file outlived its line");
	closedir(d);
}

/* print(read(print(l))) == print(l) */
static void
reprint(const struct ids_csync_line *l, int fd)
{
	struct ids_buf a = IDS_BUF_INIT, b = IDS_BUF_INIT;
	struct ids_csync_in *in;
	struct ids_csync_line *again = NULL;
	struct mem m;

	if (ids_csync_print(l, 0, &a) < 0)
		fuzz_fail("a line read does not print");
	m.p = (const uint8_t *)a.s;
	m.len = a.len;
	m.pos = 0;
	if (ids_csync_in_new_fn(mem_read, &m, &in) < 0)
		fuzz_fail("out of memory");
	ids_csync_in_set_staging(in, fd);
	if (ids_csync_read(in, &again) != 1 || m.pos != a.len)
		fuzz_fail("a printed line does not read back as one line");
	if (ids_csync_print(again, 0, &b) < 0 || a.len != b.len || memcmp(a.s, b.s, a.len))
		fuzz_fail("print(read(print(x))) != print(x)");
	ids_csync_unlink_files(again->args);
	ids_csync_line_free(again);
	ids_csync_in_free(in);
	ids_buf_release(&a);
	ids_buf_release(&b);
}

/*
 * One pass over the session; out gets each line's print, or "!" for a
 * refused one and "LOST" where the stream was lost.
 */
static void
pass(const uint8_t *data, size_t size, int streaming, struct ids_buf *out)
{
	struct ids_csync_limits lim = { 1 << 20, 1 << 16, 1 << 20 };
	struct ids_csync_in *in;
	struct ids_csync_line *l;
	struct ids_dlist *rec, *item;
	struct mem m = { data, size, 0 };
	int fd = stage_dir(), r, n = 0;

	if (ids_csync_in_new_fn(mem_read, &m, &in) < 0)
		fuzz_fail("out of memory");
	ids_csync_in_set_limits(in, &lim);
	ids_csync_in_set_staging(in, fd);
	ids_csync_in_set_stream(in, streaming);
	while ((r = ids_csync_read(in, &l)) != 0) {
		if (++n > (int)size + 1)
			fuzz_fail("more lines than bytes");
		if (r == 1 && ids_csync_in_streaming(in)) {
			rec = ids_dlist_get(ids_csync_arg(l, 1), "RECORD");
			if (rec == NULL || rec->head != NULL)
				fuzz_fail("a streamed line without its empty RECORD list");
			while ((r = ids_csync_read_record(in, &item)) == 1)
				if (ids_dlist_add_child(rec, NULL, item) < 0)
					fuzz_fail("out of memory");
			if (ids_csync_in_streaming(in))
				fuzz_fail("still streaming after the list");
			if (r == 0) {
				r = 1;
			} else {
				ids_csync_unlink_files(l->args);
				ids_csync_line_free(l);
				check_empty(fd);
			}
		}
		if (r < 0) {
			if (ids_csync_in_lost(in)) {
				ids_buf_adds(out, "LOST");
				break;
			}
			ids_buf_adds(out, "!\n");
			continue;
		}
		/* before reprint(), whose reader stages the files under the same names */
		if (ids_csync_print(l, 0, out) < 0)
			fuzz_fail("a line read does not print");
		reprint(l, fd);
		ids_csync_unlink_files(l->args);
		ids_csync_line_free(l);
		check_empty(fd);
	}
	check_empty(fd);
	ids_csync_in_free(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ids_buf whole = IDS_BUF_INIT, streamed = IDS_BUF_INIT;

	pass(data, size, 0, &whole);
	pass(data, size, 1, &streamed);
	if (ids_buf_oom(&whole) < 0 || ids_buf_oom(&streamed) < 0)
		fuzz_fail("out of memory");
	if (whole.len != streamed.len || memcmp(whole.s, streamed.s, whole.len) != 0)
		fuzz_fail("the session reads differently with the RECORD list streamed");
	ids_buf_release(&whole);
	ids_buf_release(&streamed);
	return 0;
}
