/*
 * csync.c - reading and writing csync lines (see csync.h).
 *
 * Reading is two steps.  The assembler takes one line off the stream:
 * it follows quoted strings and {n} literals to find the line's real
 * end, and streams each file literal's bytes into the staging
 * directory, leaving only its header "%{part guid size}" in the line.
 * The parser then reads that line in memory with dlist.c's reader
 * (IDS_DLIST_WIRE).  So the only unbounded input, a message, is never
 * in memory, and there is one dlist syntax in the library.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "dlist.h"
#include "error.h"
#include "failpoint.h"
#include "fsutil.h"
#include "guid.h"
#include "sync/csync.h"
#include "sync/sync_int.h"

#define INBUF	65536
#define MAX_FILE_HEADER	1024	/* "%{partition guid size}" */

struct ids_csync_in {
	int fd;
	ids_csync_read_fn read_fn;
	void *rock;
	char buf[INBUF];
	size_t pos, end;
	int eof;
	int lost;
	uint64_t offset;		/* bytes consumed */
	struct ids_csync_limits lim;
	int stagefd;
	unsigned nstaged;		/* files staged by this reader, for names */
	struct ids_buf line;
	char **files;			/* staged names of the current line */
	size_t nfiles, filesalloc;
	int lineerr;			/* a failure that leaves the stream in step */
	size_t lit_end;			/* line bytes up to here may be a literal's */
	/* streaming the RECORD list of APPLY MAILBOX (ids_csync_in_set_stream) */
	int nofsync;			/* staged files are not fsynced (ids_csync_in_set_fsync) */
	int want_stream;
	int streaming;			/* a line was handed out before its RECORD list */
	uint64_t nitems;		/* items of the list handed out */
	struct ids_dlist *stream_args;	/* that line's items, for items after the kvlist */
	struct ids_dlist *stream_kv;	/* its kvlist, for the keys after RECORD */
	struct ids_dlist *stream_list;	/* its RECORD list, for ids_csync_read_rest */
};

/* --- lines ----------------------------------------------------------- */

int
ids_csync_line_new(enum ids_csync_kind kind, const char *word,
    struct ids_csync_line **lp)
{
	struct ids_csync_line *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return -ENOMEM;
	l->kind = kind;
	if ((word && (l->word = strdup(word)) == NULL) ||
	    (l->args = ids_dlist_new_list()) == NULL) {
		ids_csync_line_free(l);
		return -ENOMEM;
	}
	*lp = l;
	return 0;
}

void
ids_csync_line_free(struct ids_csync_line *l)
{
	if (l == NULL)
		return;
	free(l->word);
	free(l->text);
	ids_dlist_free(l->args);
	free(l);
}

int
ids_csync_line_set_text(struct ids_csync_line *l, const char *text, size_t len)
{
	char *t = malloc(len + 1);

	if (t == NULL)
		return -ENOMEM;
	memcpy(t, text, len);
	t[len] = '\0';
	free(l->text);
	l->text = t;
	l->textlen = len;
	return 0;
}

struct ids_dlist *
ids_csync_arg(const struct ids_csync_line *l, size_t n)
{
	struct ids_dlist *c;

	for (c = l->args ? l->args->head : NULL; c && n; c = c->next)
		n--;
	return c;
}

const char *
ids_csync_sub(const struct ids_csync_line *l)
{
	return ids_dlist_cstr(ids_csync_arg(l, 0));
}

void
ids_csync_unlink_files(const struct ids_dlist *dl)
{
	const struct ids_dlist *c;

	if (dl == NULL)
		return;
	if (dl->type == IDS_DL_FILE && dl->file->name && dl->file->dirfd >= 0)
		(void)unlinkat(dl->file->dirfd, dl->file->name, 0);
	for (c = dl->head; c; c = c->next)
		ids_csync_unlink_files(c);
}

/* --- the input buffer -------------------------------------------------- */

static int
in_init(struct ids_csync_in **inp, int fd, ids_csync_read_fn fn, void *rock)
{
	struct ids_csync_in *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return -ENOMEM;
	in->fd = fd;
	in->read_fn = fn;
	in->rock = rock;
	in->stagefd = -1;
	in->lim.max_line = IDS_CSYNC_MAX_LINE;
	in->lim.max_literal = IDS_DLIST_MAX_LITERAL;
	in->lim.max_file = IDS_CSYNC_MAX_FILE;
	ids_buf_init(&in->line);
	*inp = in;
	return 0;
}

int
ids_csync_in_new(int fd, struct ids_csync_in **inp)
{
	return in_init(inp, fd, NULL, NULL);
}

ssize_t
ids_csync_read_timed(int fd, unsigned timeout, void *buf, size_t len)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;
	int r;

	if (timeout > 0) {
		r = poll(&p, 1, timeout > INT_MAX / 1000 ? INT_MAX : (int)timeout * 1000);
		if (r < 0)
			return -errno;
		if (r == 0)
			return ids_error(-ETIMEDOUT, "the peer sent nothing for %u s", timeout);
	}
	n = read(fd, buf, len);
	return n < 0 ? -errno : n;
}

void
ids_csync_line_summary(const struct ids_csync_line *l, struct ids_buf *b)
{
	static const char *const keys[] = { "MBOXNAME", "OLDMBOXNAME", "UNIQUEID" };
	const struct ids_dlist *a;
	size_t k = 0, j;

	if (l->kind == IDS_CSYNC_UNTAGGED)
		ids_buf_adds(b, "* ");
	ids_buf_adds(b, l->kind == IDS_CSYNC_OK ? "OK" : l->kind == IDS_CSYNC_NO ? "NO" :
	    l->kind == IDS_CSYNC_BAD ? "BAD" : l->word ? l->word : "");
	if (l->text != NULL) {
		ids_buf_addch(b, ' ');
		ids_buf_add(b, l->text, l->textlen);
	}
	for (a = l->args ? l->args->head : NULL; a != NULL && k < 2; a = a->next, k++) {
		const char *v = ids_dlist_cstr(a);

		for (j = 0; v == NULL && a->type == IDS_DL_KVLIST && j < 3; j++)
			v = ids_dlist_cstr(ids_dlist_get(a, keys[j]));
		ids_buf_printf(b, " %s", v != NULL ? v : a->type == IDS_DL_FILE ? "%{file}" : "(...)");
	}
}

int
ids_csync_in_new_fn(ids_csync_read_fn read_fn, void *rock, struct ids_csync_in **inp)
{
	return in_init(inp, -1, read_fn, rock);
}

static void
drop_files(struct ids_csync_in *in, int unlink_them)
{
	size_t i;

	for (i = 0; i < in->nfiles; i++) {
		if (in->files[i] == NULL)
			continue;
		if (unlink_them && in->stagefd >= 0)
			(void)unlinkat(in->stagefd, in->files[i], 0);
		free(in->files[i]);
	}
	in->nfiles = 0;
}

void
ids_csync_in_free(struct ids_csync_in *in)
{
	if (in == NULL)
		return;
	drop_files(in, 1);
	free(in->files);
	ids_buf_release(&in->line);
	free(in);
}

void
ids_csync_in_set_limits(struct ids_csync_in *in, const struct ids_csync_limits *lim)
{
	in->lim = *lim;
}

void
ids_csync_in_set_staging(struct ids_csync_in *in, int dirfd)
{
	in->stagefd = dirfd;
}

void
ids_csync_in_set_fsync(struct ids_csync_in *in, int on)
{
	in->nofsync = !on;
}

int
ids_csync_in_lost(const struct ids_csync_in *in)
{
	return in->lost;
}

uint64_t
ids_csync_in_offset(const struct ids_csync_in *in)
{
	return in->offset;
}

int
ids_csync_in_pending(struct ids_csync_in *in)
{
	struct pollfd p;

	if (in->pos < in->end)
		return 1;
	if (in->eof || in->read_fn != NULL || in->fd < 0)
		return 0;
	p.fd = in->fd;
	p.events = POLLIN;
	p.revents = 0;
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

/* Refills the buffer: 1 with bytes, 0 at the end, or -errno. */
static int
fill(struct ids_csync_in *in)
{
	ssize_t n;

	if (in->pos < in->end)
		return 1;
	if (in->eof)
		return 0;
	in->pos = in->end = 0;
	do {
		n = in->read_fn ? in->read_fn(in->rock, in->buf, sizeof(in->buf)) :
		    read(in->fd, in->buf, sizeof(in->buf));
	} while (n < 0 && (in->read_fn ? n == -EINTR : errno == EINTR));
	if (n < 0)
		return in->read_fn ? (int)n : -errno;
	if (n == 0) {
		in->eof = 1;
		return 0;
	}
	in->end = (size_t)n;
	return 1;
}

/* The next byte, or -1 at the end; *errp gets a read error. */
static int
getbyte(struct ids_csync_in *in, int *errp)
{
	int r = fill(in);

	if (r <= 0) {
		if (r < 0)
			*errp = r;
		return -1;
	}
	in->offset++;
	return (unsigned char)in->buf[in->pos++];
}

/* The stream is out of step from here on: every later read fails. */
static int
lose(struct ids_csync_in *in, int r)
{
	in->lost = 1;
	return r;
}

/* --- file literals ------------------------------------------------------ */

/* "partition guid size" of a file literal header (between "%{" and "}"). */
static int
parse_file_header(const char *h, size_t len, char guid[41], uint64_t *size)
{
	struct ids_dlist_reader rd;
	struct ids_dlist_item it;
	struct ids_buf b = IDS_BUF_INIT;
	int r;

	/* Reuse the dlist reader on "%{...}" so both agree on the syntax. */
	ids_buf_adds(&b, "%{");
	ids_buf_add(&b, h, len);
	ids_buf_addch(&b, '}');
	if ((r = ids_buf_oom(&b)) < 0)
		return r;
	ids_dlist_reader_init(&rd, b.s, b.len, IDS_DLIST_WIRE);
	r = ids_dlist_read(&rd, &it);
	if (r == 1 && it.type == IDS_DL_FILE) {
		memcpy(guid, it.guid, 40);
		guid[40] = '\0';
		*size = it.size;
		r = 0;
	} else if (r >= 0) {
		r = ids_error(IDS_ECORRUPT, "bad file literal header");
	}
	ids_dlist_reader_release(&rd);
	ids_buf_release(&b);
	return r;
}

static int
add_staged(struct ids_csync_in *in, const char *name)
{
	char **f;

	if (in->nfiles == in->filesalloc) {
		size_t n = in->filesalloc ? 2 * in->filesalloc : 8;

		if ((f = realloc(in->files, n * sizeof(*f))) == NULL)
			return -ENOMEM;
		in->files = f;
		in->filesalloc = n;
	}
	if ((in->files[in->nfiles] = strdup(name)) == NULL)
		return -ENOMEM;
	in->nfiles++;
	return 0;
}

/*
 * Copies size bytes of the stream to fd (-1: only consume them) while
 * hashing them.  A write failure is kept in *werr and the bytes are
 * still consumed, so that the stream stays in step.
 */
static int
stream_body(struct ids_csync_in *in, uint64_t size, int fd, EVP_MD_CTX *ctx, int *werr)
{
	size_t n;
	int r;

	while (size > 0) {
		if ((r = fill(in)) <= 0)
			return r < 0 ? r : ids_error(IDS_ETRUNC,
			    "input ended inside a file literal, %" PRIu64 " bytes short", size);
		n = in->end - in->pos;
		if (n > size)
			n = (size_t)size;
		if (EVP_DigestUpdate(ctx, in->buf + in->pos, n) != 1)
			return ids_error(-EIO, "libcrypto: SHA-1 update failed");
		if (fd >= 0 && *werr == 0)
			*werr = ids_write_all(fd, in->buf + in->pos, n);
		in->pos += n;
		in->offset += n;
		size -= n;
	}
	return 0;
}

/* Compares a finished digest with the header's GUID. */
static int
digest_check(EVP_MD_CTX *ctx, const char *guid)
{
	uint8_t md[IDS_GUID_LEN];
	char hex[IDS_GUID_HEXLEN + 1];
	unsigned int mdlen = 0;

	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != IDS_GUID_LEN)
		return ids_error(-EIO, "libcrypto: SHA-1 final failed");
	ids_guid_hex(md, hex);
	if (strcmp(hex, guid) != 0)
		return ids_error(IDS_ECRC, "file literal %s: its bytes hash to %s", guid, hex);
	return 0;
}

/*
 * Writes the body to ".<guid>.<n>", checks it, renames it "<guid>.<n>".
 * Without the fsync (the replica, the pull) it is written under its
 * name at once: only this reader's list of staged files makes it one
 * (add_staged, after the check), a file that fails is removed, and a
 * crash leaves it in a dead session's staging directory, which is swept;
 * so the rename would buy nothing, and cost a metadata update a file.
 */
static int
stage_file(struct ids_csync_in *in, const char *guid, uint64_t size)
{
	char tmp[96], name[80];
	EVP_MD_CTX *ctx;
	int fd = -1, werr = 0, r;

	snprintf(name, sizeof(name), "%s.%u", guid, in->nstaged);
	snprintf(tmp, sizeof(tmp), "%s%s", in->nofsync ? "" : ".", name);
	in->nstaged++;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return lose(in, -ENOMEM);
	if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return lose(in, ids_error(-EIO, "libcrypto: SHA-1 unavailable"));
	}
	if ((werr = IDS_FAILPOINT("sync.stage_open")) == 0) {
		fd = openat(in->stagefd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd < 0)
			werr = ids_error(-errno, "staging %s: %s", tmp, strerror(errno));
	}
	r = stream_body(in, size, fd, ctx, &werr);
	if (r == 0)
		r = digest_check(ctx, guid);
	EVP_MD_CTX_free(ctx);
	if (r == 0 && werr == 0 && !in->nofsync &&
	    (werr = IDS_FAILPOINT("sync.stage_fsync")) == 0 && fsync(fd) < 0)
		werr = -errno;
	if (fd >= 0 && close(fd) < 0 && werr == 0)
		werr = -errno;
	if (r == 0 && werr == 0 && !in->nofsync &&
	    renameat(in->stagefd, tmp, in->stagefd, name) < 0)
		werr = -errno;
	if (r < 0 || werr < 0) {
		if (fd >= 0)
			(void)unlinkat(in->stagefd, tmp, 0);
		if (r == IDS_ECRC || (r == 0 && werr < 0)) {
			/* the stream is in step: fail the line, not the session */
			if (in->lineerr == 0)
				in->lineerr = r < 0 ? r : werr;
			return 0;
		}
		return lose(in, r);
	}
	return add_staged(in, name);
}

/*
 * After "%{": the header up to "}", its line end, then the body.  The
 * header goes into the line without its line end.
 */
static int
read_file_literal(struct ids_csync_in *in)
{
	char guid[41];
	uint64_t size;
	size_t start = in->line.len;
	int c, err = 0, r;

	ids_buf_adds(&in->line, "%{");
	while ((c = getbyte(in, &err)) >= 0 && c != '}' && c != '\n' &&
	    in->line.len - start < MAX_FILE_HEADER)
		ids_buf_addch(&in->line, c);
	if (c < 0)
		return lose(in, err ? err : ids_error(IDS_ETRUNC, "input ended in a file literal header"));
	if (c != '}')
		return lose(in, ids_error(IDS_ECORRUPT, "bad file literal header at byte %" PRIu64,
		    in->offset));
	r = parse_file_header(in->line.s + start + 2, in->line.len - start - 2, guid, &size);
	ids_buf_addch(&in->line, '}');
	if (r < 0)
		return lose(in, r);
	if (size > in->lim.max_file)
		return lose(in, ids_error(IDS_ETOOLONG, "file literal of %" PRIu64
		    " bytes over the limit of %" PRIu64, size, in->lim.max_file));
	if ((c = getbyte(in, &err)) == '\r')
		c = getbyte(in, &err);
	if (c != '\n')
		return lose(in, c < 0 && err ? err : ids_error(IDS_ECORRUPT,
		    "expected newline after file literal header at byte %" PRIu64, in->offset));
	if (in->stagefd < 0)
		return lose(in, ids_error(IDS_EINVAL, "file literal without a staging directory"));
	return stage_file(in, guid, size);
}

/* --- {n} literals ------------------------------------------------------- */

/*
 * After "{": digits, an optional "+", "}" and a line end make a literal
 * whose n bytes go into the line as they are.  Anything else is kept as
 * ordinary bytes for the parser to refuse.
 */
static int
read_literal(struct ids_csync_in *in)
{
	uint64_t n = 0;
	int c, err = 0, digits = 0;

	ids_buf_addch(&in->line, '{');
	while ((c = getbyte(in, &err)) >= '0' && c <= '9') {
		ids_buf_addch(&in->line, c);
		if (n > in->lim.max_literal)
			return lose(in, ids_error(IDS_ETOOLONG, "literal over %zu bytes",
			    in->lim.max_literal));
		n = n * 10 + (uint64_t)(c - '0');
		digits++;
	}
	if (c == '+') {
		ids_buf_addch(&in->line, c);
		c = getbyte(in, &err);
	}
	if (c < 0)
		return err ? lose(in, err) : 0;
	ids_buf_addch(&in->line, c);
	if (c != '}' || digits == 0)
		return c == '\n' ? 1 : 0;
	if (n > in->lim.max_literal)
		return lose(in, ids_error(IDS_ETOOLONG, "literal of %" PRIu64
		    " bytes over the limit of %zu", n, in->lim.max_literal));
	if ((c = getbyte(in, &err)) == '\r') {
		ids_buf_addch(&in->line, c);
		c = getbyte(in, &err);
	}
	if (c < 0)
		return err ? lose(in, err) : 0;
	ids_buf_addch(&in->line, c);
	if (c != '\n')
		return 0;
	if (in->line.len + n > in->lim.max_line)
		return lose(in, ids_error(IDS_ETOOLONG, "line over %zu bytes", in->lim.max_line));
	while (n > 0) {
		size_t k;

		if ((c = fill(in)) <= 0)
			return lose(in, c < 0 ? c : ids_error(IDS_ETRUNC,
			    "input ended inside a literal, %" PRIu64 " bytes short", n));
		k = in->end - in->pos < n ? in->end - in->pos : (size_t)n;
		ids_buf_add(&in->line, in->buf + in->pos, k);
		in->pos += k;
		in->offset += k;
		n -= k;
	}
	in->lit_end = in->line.len;
	return 0;
}

/* What assemble() takes off the stream. */
enum asm_mode {
	ASM_LINE,	/* a line; with want_stream, stops at APPLY MAILBOX's RECORD list */
	ASM_WHOLE,	/* the rest of a line, whole */
	ASM_ITEM,	/* one item of a list: stops after it, before the ' ' or ')' after it */
	ASM_SKIP,	/* the rest of a line, kept nowhere (file literals still staged) */
};

#define STREAM_PREFIX	"APPLY MAILBOX %("
#define STREAM_KEY	" RECORD "

/*
 * At a '(' at depth 1 of the line: 1 when the line so far is
 * "APPLY MAILBOX %(... RECORD " with that key outside any literal (the
 * parse of the head confirms it is the key).
 */
static int
record_list_starts(const struct ids_csync_in *in)
{
	size_t len = in->line.len, kl = strlen(STREAM_KEY), pl = strlen(STREAM_PREFIX);

	return in->want_stream && len >= pl + kl - 1 &&
	    memcmp(in->line.s, STREAM_PREFIX, pl) == 0 &&
	    memcmp(in->line.s + len - kl, STREAM_KEY, kl) == 0 && len - kl >= in->lit_end;
}

/*
 * Takes bytes off the stream into in->line, without the line end,
 * from paren depth depth.  Returns 1 at the line's end (consumed), 2
 * when mode stops earlier (ASM_LINE: at the '(' of a RECORD list to
 * stream, consumed and not stored; ASM_ITEM: after the item), 0 at the
 * end of input before any byte, or negative.
 */
static int
assemble(struct ids_csync_in *in, enum asm_mode mode, int depth)
{
	int c, err = 0, quoted = 0, r, any = 0;
	/* the byte before: a '"' opens a string only where an item starts, as for the parser */
	int prev = in->line.len ? (unsigned char)in->line.s[in->line.len - 1] : ' ';

	for (;;) {
		if (mode == ASM_SKIP && in->line.len > 65536) {
			ids_buf_reset(&in->line);
			in->lit_end = 0;
		}
		if (in->line.len > in->lim.max_line)
			return lose(in, ids_error(IDS_ETOOLONG, "line over %zu bytes",
			    in->lim.max_line));
		if ((r = ids_buf_oom(&in->line)) < 0)
			return lose(in, r);
		if (mode == ASM_ITEM && depth == 0 && any && !quoted &&
		    fill(in) > 0 && (in->buf[in->pos] == ' ' || in->buf[in->pos] == ')'))
			return 2;
		if ((c = getbyte(in, &err)) < 0) {
			if (err)
				return lose(in, err);
			if (!any && mode == ASM_LINE)
				return 0;
			return lose(in, ids_error(IDS_ETRUNC, "input ended inside a line"));
		}
		any = 1;
		if (c == '\n') {
			if (in->line.len && in->line.s[in->line.len - 1] == '\r')
				in->line.s[--in->line.len] = '\0';
			return 1;
		}
		if (quoted) {
			ids_buf_addch(&in->line, c);
			if (c == '\\') {
				/* an escaped byte, unless the line or input ends */
				if (fill(in) > 0 && in->buf[in->pos] != '\n')
					ids_buf_addch(&in->line, getbyte(in, &err));
			} else if (c == '"') {
				quoted = 0;
				prev = c;
			}
			continue;
		}
		if (c == '"' && (prev == ' ' || prev == '(' || prev == '\t')) {
			quoted = 1;
			ids_buf_addch(&in->line, c);
		} else if (c == '{') {
			if ((r = read_literal(in)) < 0)
				return r;
			if (r == 1) {		/* "{...\n": a line end after all */
				in->line.s[--in->line.len] = '\0';
				if (in->line.len && in->line.s[in->line.len - 1] == '\r')
					in->line.s[--in->line.len] = '\0';
				return 1;
			}
			/* after a literal's bytes, or the bytes kept when it was none */
			prev = in->lit_end == in->line.len ? '}' :
			    (unsigned char)in->line.s[in->line.len - 1];
			continue;
		} else if (c == '%' && fill(in) > 0 && in->buf[in->pos] == '{') {
			in->pos++;
			in->offset++;
			if ((r = read_file_literal(in)) < 0)
				return r;
			prev = '}';
			continue;
		} else if (c == '(') {
			if (mode == ASM_LINE && depth == 1 && record_list_starts(in))
				return 2;
			depth++;
			ids_buf_addch(&in->line, c);
		} else if (c == ')') {
			ids_buf_addch(&in->line, c);
			if (depth > 0 && --depth == 0 && mode == ASM_ITEM)
				return 2;
		} else {
			ids_buf_addch(&in->line, c);
		}
		prev = c;
	}
}

/* --- parsing a line ------------------------------------------------------ */

static int
is_status(const char *w, size_t len)
{
	return (len == 2 && memcmp(w, "OK", 2) == 0) ||
	    (len == 2 && memcmp(w, "NO", 2) == 0) ||
	    (len == 3 && memcmp(w, "BAD", 3) == 0);
}

/* Gives the staged names, in order, to the FILE nodes of dl. */
static int
attach_files(struct ids_csync_in *in, struct ids_dlist *dl, size_t *next)
{
	struct ids_dlist *c;
	int r;

	if (dl->type == IDS_DL_FILE) {
		if (*next >= in->nfiles)
			return ids_error(IDS_ECORRUPT, "file literal out of place");
		dl->file->name = in->files[*next];
		in->files[(*next)++] = NULL;
		dl->file->dirfd = in->stagefd;
		return 0;
	}
	for (c = dl->head; c; c = c->next)
		if ((r = attach_files(in, c, next)) < 0)
			return r;
	return 0;
}

/* The items after the word: single spaces between them, none at the end. */
static int
parse_items(const char *s, size_t len, struct ids_dlist *args)
{
	struct ids_dlist *dl;
	size_t pos = 0, used;
	int r;

	while (pos < len) {
		r = ids_dlist_parse_flags(s + pos, len - pos, IDS_DLIST_WIRE, &dl, &used);
		if (r < 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s", ids_errmsg(r));
			return ids_error(r, "%s, in the item at byte %zu", msg, pos);
		}
		if ((r = ids_dlist_add_child(args, NULL, dl)) < 0)
			return r;
		pos += used;
		if (pos < len && (s[pos] != ' ' || pos + 1 == len))
			return ids_error(IDS_ECORRUPT, "expected one space between items at byte %zu",
			    pos);
		pos += pos < len;
	}
	return 0;
}

static int
parse_line(const char *s, size_t len, struct ids_csync_line **lp)
{
	enum ids_csync_kind kind = IDS_CSYNC_COMMAND;
	struct ids_csync_line *l;
	size_t wlen, pos = 0;
	char word[64];
	int r;

	if (len >= 2 && s[0] == '*' && s[1] == ' ') {
		kind = IDS_CSYNC_UNTAGGED;
		pos = 2;
	}
	for (wlen = 0; pos + wlen < len && s[pos + wlen] != ' '; wlen++)
		if ((unsigned char)s[pos + wlen] <= ' ' || (unsigned char)s[pos + wlen] >= 0x7f ||
		    strchr("{()\"%\\", s[pos + wlen]))
			return ids_error(IDS_ECORRUPT, "byte 0x%02x in the command word",
			    (unsigned char)s[pos + wlen]);
	if (wlen == 0 || wlen >= sizeof(word))
		return ids_error(IDS_ECORRUPT, "no command word");
	memcpy(word, s + pos, wlen);
	word[wlen] = '\0';
	if (kind == IDS_CSYNC_COMMAND && is_status(word, wlen))
		kind = word[0] == 'O' ? IDS_CSYNC_OK : word[0] == 'N' ? IDS_CSYNC_NO : IDS_CSYNC_BAD;
	if ((r = ids_csync_line_new(kind, kind <= IDS_CSYNC_UNTAGGED ? word : NULL, &l)) < 0)
		return r;
	pos += wlen;
	if (kind > IDS_CSYNC_UNTAGGED || (kind == IDS_CSYNC_UNTAGGED &&
	    (is_status(word, wlen) || strcmp(word, "BYE") == 0))) {
		if (pos < len)		/* the text after one space, as it is */
			r = ids_csync_line_set_text(l, s + pos + 1, len - pos - 1);
	} else if (pos < len) {
		if (pos + 1 == len)
			r = ids_error(IDS_ECORRUPT, "space at the end of the line");
		else
			r = parse_items(s + pos + 1, len - pos - 1, l->args);
	}
	if (r < 0) {
		ids_csync_line_free(l);
		return r;
	}
	*lp = l;
	return 0;
}

/*
 * The head of a line stopped at its RECORD list: parsed as if the list
 * were empty and the line ended there.  1 and *lp when it is an APPLY
 * MAILBOX whose kvlist's last key is that RECORD; 0 when not (the
 * caller reads the line whole); negative on failure.
 */
static int
parse_head(struct ids_csync_in *in, struct ids_csync_line **lp)
{
	struct ids_csync_line *l = NULL;
	struct ids_dlist *kv, *rec;
	size_t len = in->line.len, next = 0;
	int r;

	*lp = NULL;
	ids_buf_adds(&in->line, "())");
	if ((r = ids_buf_oom(&in->line)) < 0)
		return r;
	r = parse_line(in->line.s, in->line.len, &l);
	in->line.len = len;
	in->line.s[len] = '\0';
	if (r < 0)
		return 0;
	kv = ids_csync_arg(l, 1);
	rec = kv ? kv->tail : NULL;
	if (l->kind != IDS_CSYNC_COMMAND || ids_csync_arg(l, 2) != NULL ||
	    kv == NULL || kv->type != IDS_DL_KVLIST || rec == NULL ||
	    rec->type != IDS_DL_LIST || rec->head != NULL || strcmp(rec->name, "RECORD") != 0 ||
	    ids_dlist_get(kv, "RECORD") != rec) {
		ids_csync_line_free(l);
		return 0;
	}
	if ((r = attach_files(in, l->args, &next)) == 0 && next != in->nfiles)
		r = ids_error(IDS_ECORRUPT, "file literal out of place");
	if (r < 0) {
		ids_csync_unlink_files(l->args);
		ids_csync_line_free(l);
		return r;
	}
	drop_files(in, 0);
	in->streaming = 1;
	in->nitems = 0;
	in->stream_args = l->args;
	in->stream_kv = kv;
	in->stream_list = rec;
	*lp = l;
	return 1;
}

int
ids_csync_read(struct ids_csync_in *in, struct ids_csync_line **lp)
{
	struct ids_csync_line *l = NULL;
	size_t next = 0;
	int r;

	*lp = NULL;
	if (in->streaming && (r = ids_csync_skip_rest(in)) < 0 && in->lost)
		return r;
	if (in->lost)
		return ids_error(IDS_ECORRUPT, "the csync stream was lost earlier");
	ids_buf_reset(&in->line);
	drop_files(in, 1);
	in->lineerr = 0;
	in->lit_end = 0;
	if ((r = assemble(in, ASM_LINE, 0)) == 2) {
		if (in->lineerr == 0 && (r = parse_head(in, lp)) != 0) {
			if (r < 0) {
				/* in step: the rest of the line goes, the line fails */
				int k = assemble(in, ASM_SKIP, 2);

				drop_files(in, 1);
				return k < 0 ? k : r;
			}
			return 1;
		}
		/* not a list to stream after all: the line whole */
		ids_buf_addch(&in->line, '(');
		r = assemble(in, ASM_WHOLE, 2);
	}
	if (r <= 0) {
		drop_files(in, 1);
		return r;
	}
	if ((r = in->lineerr) == 0 && (r = parse_line(in->line.s, in->line.len, &l)) == 0 &&
	    (r = attach_files(in, l->args, &next)) == 0 && next != in->nfiles)
		r = ids_error(IDS_ECORRUPT, "file literal out of place");
	if (r < 0) {
		if (l)
			ids_csync_unlink_files(l->args);
		ids_csync_line_free(l);
		drop_files(in, 1);
		return r;
	}
	drop_files(in, 0);
	*lp = l;
	return 1;
}

/* --- streaming the RECORD list ------------------------------------------ */

void
ids_csync_in_set_stream(struct ids_csync_in *in, int on)
{
	in->want_stream = on;
}

int
ids_csync_in_streaming(const struct ids_csync_in *in)
{
	return in->streaming;
}

static void
stream_end(struct ids_csync_in *in)
{
	in->streaming = 0;
	in->stream_args = in->stream_kv = in->stream_list = NULL;
}

/* A failure with the stream in step: the rest of the line goes. */
static int
stream_fail(struct ids_csync_in *in, int r)
{
	int k = 0;

	if (!in->lost && in->streaming)
		k = assemble(in, ASM_SKIP, 2);
	drop_files(in, 1);
	stream_end(in);
	return k < 0 ? k : r;
}

/* After the list's ')': the keys after RECORD, appended to the line's kvlist. */
static int
read_tail(struct ids_csync_in *in)
{
	struct ids_dlist *kv = NULL, *extra = NULL, *c;
	struct ids_buf b = IDS_BUF_INIT;
	size_t used = 0, next = 0;
	int r;

	ids_buf_reset(&in->line);
	drop_files(in, 1);
	in->lineerr = 0;
	in->lit_end = 0;
	if ((r = assemble(in, ASM_WHOLE, 1)) < 0) {
		stream_end(in);
		return r;
	}
	/* " KEY value ...)" or ")", and possibly more items after it */
	if ((r = in->lineerr) == 0 && (in->line.len == 0 ||
	    (in->line.s[0] != ' ' && in->line.s[0] != ')') ||
	    (in->line.s[0] == ' ' && (in->line.len < 2 || in->line.s[1] == ')'))))
		r = ids_error(IDS_ECORRUPT, "expected one space or ')' after the RECORD list");
	if (r == 0) {
		ids_buf_adds(&b, "%(");
		ids_buf_add(&b, in->line.s + (in->line.s[0] == ' '), in->line.len -
		    (in->line.s[0] == ' '));
		if ((r = ids_buf_oom(&b)) == 0)
			r = ids_dlist_parse_flags(b.s, b.len, IDS_DLIST_WIRE, &kv, &used);
	}
	if (r == 0 && used < b.len) {
		/* more items after the kvlist: checked as the whole line would be */
		if (b.s[used] != ' ' || used + 1 == b.len)
			r = ids_error(IDS_ECORRUPT, "expected one space between items");
		else if ((extra = ids_dlist_new_list()) == NULL)
			r = -ENOMEM;
		else
			r = parse_items(b.s + used + 1, b.len - used - 1, extra);
	}
	if (r == 0 && (r = attach_files(in, kv, &next)) == 0 &&
	    (extra == NULL || (r = attach_files(in, extra, &next)) == 0) && next != in->nfiles)
		r = ids_error(IDS_ECORRUPT, "file literal out of place");
	drop_files(in, r < 0);
	/* the keys after RECORD, and items after the kvlist, as a whole line has them */
	while (r == 0 && (c = kv->head) != NULL) {
		ids_dlist_unlink(kv, c);
		r = ids_dlist_add_child(in->stream_kv, NULL, c);
	}
	while (r == 0 && extra != NULL && (c = extra->head) != NULL) {
		ids_dlist_unlink(extra, c);
		r = ids_dlist_add_child(in->stream_args, NULL, c);
	}
	if (r < 0 && kv != NULL)
		ids_csync_unlink_files(kv);
	if (r < 0 && extra != NULL)
		ids_csync_unlink_files(extra);
	ids_dlist_free(kv);
	ids_dlist_free(extra);
	ids_buf_release(&b);
	stream_end(in);
	return r;
}

int
ids_csync_read_record(struct ids_csync_in *in, struct ids_dlist **itemp)
{
	struct ids_dlist *dl = NULL;
	size_t next = 0;
	int r;

	*itemp = NULL;
	if (!in->streaming)
		return ids_error(IDS_EINVAL, "no RECORD list is being read");
	ids_buf_reset(&in->line);
	drop_files(in, 1);
	in->lineerr = 0;
	in->lit_end = 0;
	if ((r = fill(in)) <= 0) {
		stream_end(in);
		return lose(in, r < 0 ? r : ids_error(IDS_ETRUNC, "input ended inside a line"));
	}
	if (in->nitems > 0 && in->buf[in->pos] != ' ' && in->buf[in->pos] != ')')
		return stream_fail(in, ids_error(IDS_ECORRUPT,
		    "expected a space between RECORD items at byte %" PRIu64, in->offset));
	/* spaces before an item or the list's end, as the line's parser skips them */
	while (in->buf[in->pos] == ' ') {
		in->pos++;
		in->offset++;
		if ((r = fill(in)) <= 0) {
			stream_end(in);
			return lose(in, r < 0 ? r : ids_error(IDS_ETRUNC, "input ended inside a line"));
		}
	}
	if (in->buf[in->pos] == ')') {
		in->pos++;
		in->offset++;
		return read_tail(in);
	}
	if ((r = assemble(in, ASM_ITEM, 0)) < 0) {
		stream_end(in);
		return r;
	}
	if (r == 1) {
		drop_files(in, 1);
		stream_end(in);
		return ids_error(IDS_ECORRUPT, "the line ended inside the RECORD list");
	}
	if ((r = in->lineerr) < 0)
		return stream_fail(in, r);
	if ((r = ids_dlist_parse_flags(in->line.s, in->line.len, IDS_DLIST_WIRE, &dl, NULL)) < 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", ids_errmsg(r));
		return stream_fail(in, ids_error(r, "%s, in RECORD item %" PRIu64, msg,
		    in->nitems + 1));
	}
	if ((r = attach_files(in, dl, &next)) == 0 && next != in->nfiles)
		r = ids_error(IDS_ECORRUPT, "file literal out of place");
	if (r < 0) {
		ids_csync_unlink_files(dl);
		ids_dlist_free(dl);
		return stream_fail(in, r);
	}
	drop_files(in, 0);
	in->nitems++;
	*itemp = dl;
	return 1;
}

int
ids_csync_read_rest(struct ids_csync_in *in)
{
	struct ids_dlist *item;
	int r = 0;

	while (in->streaming && (r = ids_csync_read_record(in, &item)) == 1)
		if ((r = ids_dlist_add_child(in->stream_list, NULL, item)) < 0)
			return stream_fail(in, r);
	return in->streaming ? r : (r < 0 ? r : 0);
}

int
ids_csync_skip_rest(struct ids_csync_in *in)
{
	int r;

	if (!in->streaming)
		return 0;
	ids_buf_reset(&in->line);
	drop_files(in, 1);
	r = assemble(in, ASM_SKIP, 2);
	drop_files(in, 1);
	stream_end(in);
	return r < 0 ? r : 0;
}

/* --- writing -------------------------------------------------------------- */

/*
 * Hashes the file of f and checks it is a regular file of f->size bytes
 * whose SHA-1 is f->guid: 0, IDS_ECRC (size or digest differ; the
 * detail says which) or negative.  On success *fdp, when not NULL, is
 * the file opened and rewound for the copy (the caller closes it).
 */
/*
 * Opens the file of f (never through a symbolic link) into *fdp and
 * checks it is a regular file of f->size bytes: 0, IDS_EUNSAFE, IDS_ECRC
 * or negative; *fdp is open (the caller closes it) whenever the open
 * itself succeeded.
 */
static int
open_file_literal(const struct ids_dlist_file *f, int *fdp)
{
	struct stat st;

	*fdp = openat(f->dirfd, f->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*fdp < 0)
		return ids_error(-errno, "%s: %s", f->name, strerror(errno));
	if (fstat(*fdp, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return ids_error(IDS_EUNSAFE, "%s is not a regular file", f->name);
	if ((uint64_t)st.st_size != f->size)
		return ids_error(IDS_ECRC, "%s has %lld bytes, not %" PRIu64, f->name,
		    (long long)st.st_size, f->size);
	return 0;
}

static int
sync_file_check(const struct ids_dlist_file *f, int *fdp)
{
	uint8_t md[IDS_GUID_LEN];
	char hex[IDS_GUID_HEXLEN + 1];
	int fd, r;

	if ((r = open_file_literal(f, &fd)) < 0 && fd < 0)
		return r;
	if (r == 0 && (r = ids_guid_fd(fd, md)) == 0) {
		ids_guid_hex(md, hex);
		if (strcmp(hex, f->guid) != 0)
			r = ids_error(IDS_ECRC, "%s hashes to %s, not %s", f->name, hex, f->guid);
	}
	if (r == 0 && fdp && lseek(fd, 0, SEEK_SET) < 0)
		r = -errno;
	if (r < 0 || fdp == NULL)
		close(fd);
	else
		*fdp = fd;
	return r;
}

/* Checks every file of dl before anything of its line is written. */
static int
check_files(const struct ids_dlist *dl)
{
	const struct ids_dlist *c;
	int r;

	if (dl->type == IDS_DL_FILE)
		return dl->file->name ? sync_file_check(dl->file, NULL) :
		    ids_error(IDS_EINVAL, "file literal %s without a file", dl->file->guid);
	for (c = dl->head; c; c = c->next)
		if ((r = check_files(c)) < 0)
			return r;
	return 0;
}

/* Copies f->size bytes of fd to sink (a buffer or an fd). */
static int
copy_file(int fd, uint64_t size, struct ids_buf *buf, int outfd)
{
	char block[SYNC_BLOCK];
	ssize_t n;
	int r;

	while (size > 0) {
		n = read(fd, block, size < sizeof(block) ? (size_t)size : sizeof(block));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return ids_error(IDS_ECRC, "file literal shrank while being sent");
		r = outfd >= 0 ? ids_write_all(outfd, block, (size_t)n) :
		    ids_buf_add(buf, block, (size_t)n);
		if (r < 0)
			return r;
		size -= (uint64_t)n;
	}
	return 0;
}

/* file_fn for printing into memory. */
static int
file_to_buf(void *rock, const struct ids_dlist_file *f, struct ids_buf *out)
{
	int fd, r;

	(void)rock;
	if ((r = sync_file_check(f, &fd)) < 0)
		return r;
	r = copy_file(fd, f->size, out, -1);
	close(fd);
	return r;
}

static int
print_line(const struct ids_csync_line *l, int flags, struct ids_buf *out,
    ids_dlist_file_fn file_fn, void *rock)
{
	static const char *const status[] = {
		[IDS_CSYNC_OK] = "OK", [IDS_CSYNC_NO] = "NO", [IDS_CSYNC_BAD] = "BAD",
	};
	int dflags = (flags & IDS_CSYNC_CLIENT) ? IDS_DLIST_LITPLUS : 0;
	struct ids_dlist *c;
	int r;

	if (l->kind == IDS_CSYNC_UNTAGGED)
		ids_buf_adds(out, "* ");
	ids_buf_adds(out, l->kind <= IDS_CSYNC_UNTAGGED ? (l->word ? l->word : "") :
	    status[l->kind]);
	if (l->text) {
		ids_buf_addch(out, ' ');
		ids_buf_add(out, l->text, l->textlen);
	}
	for (c = l->args ? l->args->head : NULL; c; c = c->next) {
		ids_buf_addch(out, ' ');
		if ((r = ids_dlist_print_wire(c, dflags, out, file_fn, rock)) < 0)
			return r;
	}
	ids_buf_adds(out, "\r\n");
	return ids_buf_oom(out);
}

int
ids_csync_print(const struct ids_csync_line *l, int flags, struct ids_buf *buf)
{
	return print_line(l, flags, buf, file_to_buf, NULL);
}

struct ids_csync_out {
	int fd;
	int flags;
	int hold;	/* nothing written until released */
	struct ids_buf buf;
	uint64_t written;	/* bytes handed to write(2) so far (ids_csync_out_count) */
};

int
ids_csync_out_new(int fd, int flags, struct ids_csync_out **outp)
{
	struct ids_csync_out *out = calloc(1, sizeof(*out));

	if (out == NULL)
		return -ENOMEM;
	out->fd = fd;
	out->flags = flags;
	ids_buf_init(&out->buf);
	*outp = out;
	return 0;
}

void
ids_csync_out_free(struct ids_csync_out *out)
{
	if (out == NULL)
		return;
	ids_buf_release(&out->buf);
	free(out);
}

int
ids_csync_flush(struct ids_csync_out *out)
{
	int r;

	if ((r = ids_buf_oom(&out->buf)) < 0)
		return r;
	if (out->buf.len == 0 || out->hold)
		return 0;
	out->written += out->buf.len;
	r = ids_write_all(out->fd, out->buf.s, out->buf.len);
	ids_buf_reset(&out->buf);
	return r;
}

uint64_t
ids_csync_out_count(const struct ids_csync_out *out)
{
	return out->written + out->buf.len;
}

void
ids_csync_out_hold(struct ids_csync_out *out, int on)
{
	out->hold = on;
}

size_t
ids_csync_out_mark(const struct ids_csync_out *out)
{
	return out->buf.len;
}

int
ids_csync_out_insert_status(struct ids_csync_out *out, size_t mark, const char *code,
    const char *text)
{
	struct ids_buf t = IDS_BUF_INIT;
	size_t tail;
	int r;

	if (mark > out->buf.len)
		return ids_error(IDS_EINVAL, "an answer's place is past the buffer");
	if (code != NULL)
		ids_buf_printf(&t, "NO %s %s\r\n", code, text ? text : "");
	else
		ids_buf_printf(&t, "OK %s\r\n", text ? text : "");
	tail = out->buf.len - mark;
	if ((r = ids_buf_oom(&t)) == 0 && (r = ids_buf_add(&out->buf, t.s, t.len)) == 0 &&
	    (r = ids_buf_oom(&out->buf)) == 0) {
		memmove(out->buf.s + mark + t.len, out->buf.s + mark, tail);
		memcpy(out->buf.s + mark, t.s, t.len);
	}
	ids_buf_release(&t);
	return r;
}

/*
 * file_fn for a stream: what is buffered goes first, then the file
 * itself.  Its SHA-1 was checked by check_files before the line began
 * (ids_csync_write, ids_csync_write_untagged): here it is opened again,
 * checked to be a regular file of its size and copied, not hashed a
 * second time.  A file changed in between is still never stored: the
 * receiving codec hashes every file literal and refuses one whose bytes
 * are not its GUID's.
 */
static int
file_to_fd(void *rock, const struct ids_dlist_file *f, struct ids_buf *buf)
{
	struct ids_csync_out *out = rock;
	int fd, r;

	(void)buf;
	if (out->hold)
		return ids_error(IDS_EBUSY, "a file literal while the answers are held");
	if ((r = ids_csync_flush(out)) < 0)
		return r;
	out->written++;		/* the line is begun: an error now loses the stream */
	if ((r = open_file_literal(f, &fd)) < 0 && fd < 0)
		return r;
	if (r == 0) {
		out->written += f->size;
		r = copy_file(fd, f->size, NULL, out->fd);
	}
	close(fd);
	return r;
}

int
ids_csync_write(struct ids_csync_out *out, const struct ids_csync_line *l)
{
	int r;

	if (l->args && (r = check_files(l->args)) < 0)
		return r;
	if ((r = print_line(l, out->flags, &out->buf, file_to_fd, out)) < 0)
		return r;
	return out->buf.len >= SYNC_BLOCK ? ids_csync_flush(out) : 0;
}

static int
write_status(struct ids_csync_out *out, enum ids_csync_kind kind, const char *code,
    const char *text)
{
	struct ids_csync_line *l;
	struct ids_buf t = IDS_BUF_INIT;
	int r;

	if ((r = ids_csync_line_new(kind, NULL, &l)) < 0)
		return r;
	if (code)
		ids_buf_printf(&t, "%s ", code);
	ids_buf_adds(&t, text ? text : "");
	if ((r = ids_buf_oom(&t)) == 0 &&
	    (r = ids_csync_line_set_text(l, t.s, t.len)) == 0)
		r = ids_csync_write(out, l);
	ids_buf_release(&t);
	ids_csync_line_free(l);
	return r;
}

int
ids_csync_write_ok(struct ids_csync_out *out, const char *text)
{
	return write_status(out, IDS_CSYNC_OK, NULL, text);
}

int
ids_csync_write_no(struct ids_csync_out *out, const char *code, const char *text)
{
	return write_status(out, IDS_CSYNC_NO, code, text);
}

int
ids_csync_write_bad(struct ids_csync_out *out, const char *text)
{
	return write_status(out, IDS_CSYNC_BAD, NULL, text);
}

int
ids_csync_write_untagged(struct ids_csync_out *out, const char *key,
    const struct ids_dlist *value)
{
	int dflags = (out->flags & IDS_CSYNC_CLIENT) ? IDS_DLIST_LITPLUS : 0;
	int r;

	if (value && (r = check_files(value)) < 0)
		return r;
	ids_buf_printf(&out->buf, "* %s", key);
	if (value) {
		ids_buf_addch(&out->buf, ' ');
		if ((r = ids_dlist_print_wire(value, dflags, &out->buf, file_to_fd, out)) < 0)
			return r;
	}
	if ((r = ids_buf_adds(&out->buf, "\r\n")) < 0)
		return r;
	return out->buf.len >= SYNC_BLOCK ? ids_csync_flush(out) : 0;
}

struct ids_dlist *
ids_csync_file_node(const char *partition, const char *guidhex, uint64_t size,
    int dirfd, const char *name)
{
	struct ids_dlist *dl = ids_dlist_new_list();
	struct ids_dlist_file *f = calloc(1, sizeof(*f));

	if (dl == NULL || f == NULL || strlen(guidhex) != 40)
		goto fail;
	dl->type = IDS_DL_FILE;
	dl->file = f;
	memcpy(f->guid, guidhex, 41);
	f->size = size;
	f->dirfd = dirfd;
	if ((f->partition = strdup(partition)) == NULL || (f->name = strdup(name)) == NULL)
		goto fail;
	return dl;
fail:
	if (dl && dl->file == NULL)
		free(f);
	ids_dlist_free(dl);
	return NULL;
}
