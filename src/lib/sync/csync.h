/*
 * csync.h - the wire of Cyrus's replication protocol (csync), both
 * directions, as Cyrus 3.6 speaks it (spool-layout.md "Replication").
 *
 * A session is a sequence of lines.  The client sends commands
 *	APPLY MAILBOX %(UNIQUEID ... RECORD (...))
 *	GET USER alice
 *	EXIT
 * and the server answers zero or more untagged lines and one status:
 *	* MAILBOX %(UNIQUEID ...)
 *	OK success | NO IMAP_MAILBOX_MOVED text | BAD text
 * Every value is a dlist (dlist.h, read with IDS_DLIST_WIRE): atoms,
 * "quoted", {n+} literals (NUL bytes allowed), NIL, \Flags, lists,
 * %(key value ...) kvlists, and file literals
 *	%{partition sha1hex size}CRLF<size bytes>
 * whose bytes never sit in memory: the reader streams each one into a
 * file of the staging directory while hashing it (OpenSSL EVP SHA-1),
 * checks size and SHA-1 against the header, fsyncs it (unless told
 * not to), and removes it on any mismatch; the writer re-hashes a file before sending it, as
 * Cyrus does, and copies it in blocks.
 *
 *	struct ids_csync_in *in;
 *	struct ids_csync_line *l;
 *	ids_csync_in_new(0, &in);
 *	ids_csync_in_set_staging(in, stagefd);
 *	while ((r = ids_csync_read(in, &l)) == 1) {
 *		... l->kind, l->word, l->args ...
 *		ids_csync_line_free(l);
 *	}
 *	if (r < 0 && ids_csync_in_lost(in)) ... end the session ...
 *
 * Hostile input: a line holds at most limits.max_line bytes besides its
 * file literals, values nest at most IDS_DLIST_MAX_DEPTH deep, a {n}
 * literal is at most limits.max_literal bytes and a file literal at
 * most limits.max_file: a larger length is refused from its header,
 * before anything is allocated or read (a 2 GB literal costs nothing).
 *
 * The library never prints: errors are IDS_E* codes with ids_errmsg().
 *
 * Status: everything declared here is implemented except
 * COMPRESS DEFLATE (never offer it: a 3.6 client turns it on whenever
 * the banner offers it).
 */
#ifndef IDS_CSYNC_H
#define IDS_CSYNC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ids_buf;
struct ids_dlist;
struct ids_dlist_file;

/* Defaults of struct ids_csync_limits. */
#define IDS_CSYNC_MAX_LINE	(256u << 20)	/* one line's bytes, file bodies excluded */
#define IDS_CSYNC_MAX_FILE	((uint64_t)1 << 30)	/* one file literal */

struct ids_csync_limits {
	size_t max_line;	/* IDS_CSYNC_MAX_LINE */
	size_t max_literal;	/* IDS_DLIST_MAX_LITERAL */
	uint64_t max_file;	/* IDS_CSYNC_MAX_FILE */
};

enum ids_csync_kind {
	IDS_CSYNC_COMMAND,	/* a client's line: word is the verb */
	IDS_CSYNC_UNTAGGED,	/* "* WORD ...": word is the key */
	IDS_CSYNC_OK,		/* a server's status lines: text is */
	IDS_CSYNC_NO,		/*   the rest of the line after one */
	IDS_CSYNC_BAD,		/*   space, word is NULL */
};

/*
 * One line.  args is a LIST node whose children are the items after
 * word, printed space-separated without parentheses: for
 *	GET USER alice		word "GET", args (USER alice)
 *	APPLY MAILBOX %(...)	word "APPLY", args (MAILBOX %(...))
 *	* MAILBOX %(...)	word "MAILBOX", args (%(...))
 *	* SIEVE-MAILBOX		word "SIEVE-MAILBOX", args ()
 * Status lines and the untagged "* OK/NO/BAD/BYE text" (the banner)
 * carry text instead: the bytes after "OK " as sent (NULL when the line
 * is the bare word); their args is an empty list.  Use
 * ids_csync_sub()/ids_csync_arg() for the usual "VERB SUB value" shape.
 */
struct ids_csync_line {
	enum ids_csync_kind kind;
	char *word;
	struct ids_dlist *args;
	char *text;
	size_t textlen;
};

/* A new line of kind with word (copied; may be NULL for statuses). */
int ids_csync_line_new(enum ids_csync_kind kind, const char *word,
    struct ids_csync_line **lp);
/* Frees l and its args; staged files stay (see ids_csync_unlink_files). */
void ids_csync_line_free(struct ids_csync_line *l);
/* Sets the text of a status line (copied). */
int ids_csync_line_set_text(struct ids_csync_line *l, const char *text, size_t len);

/* args[0] as a C string ("MAILBOX" of "APPLY MAILBOX ..."), or NULL. */
const char *ids_csync_sub(const struct ids_csync_line *l);
/* args[n], or NULL. */
struct ids_dlist *ids_csync_arg(const struct ids_csync_line *l, size_t n);

/* Removes, from their staging directory, the files of dl's file literals. */
void ids_csync_unlink_files(const struct ids_dlist *dl);

/* --- reading --------------------------------------------------------- */

struct ids_csync_in;

/* A buffered reader of fd (not owned, not closed). */
int ids_csync_in_new(int fd, struct ids_csync_in **inp);
/*
 * A reader pulling bytes from read_fn (tests, fuzzing, an inflated
 * stream): it returns the bytes stored (0 at the end) or -errno.
 */
typedef ssize_t (*ids_csync_read_fn)(void *rock, void *buf, size_t len);
int ids_csync_in_new_fn(ids_csync_read_fn read_fn, void *rock,
    struct ids_csync_in **inp);
void ids_csync_in_free(struct ids_csync_in *in);
/*
 * Reads up to len bytes of fd, waiting at most timeout seconds for the
 * first (0: no limit; then -ETIMEDOUT, with its message).  The bytes
 * read (0 at the end) or -errno: a client's read_fn over its peer.
 */
ssize_t ids_csync_read_timed(int fd, unsigned timeout, void *buf, size_t len);
void ids_csync_in_set_limits(struct ids_csync_in *in,
    const struct ids_csync_limits *lim);
/*
 * The directory file literals are staged in (not owned); without one,
 * a file literal is an error that loses the stream.  A received file
 * is named "<guid>.<n>" (n counts files of this reader, so one GUID
 * sent twice gets two names); while being written it is ".<guid>.<n>",
 * unless staged files are not fsynced (then it is written under its name,
 * which only becomes one of the reader's staged files once checked).
 */
void ids_csync_in_set_staging(struct ids_csync_in *in, int dirfd);
/*
 * Whether a staged file is fsynced before it is renamed to its name
 * (the default, failpoint sync.stage_fsync).  A caller that makes the
 * files durable where it links them (the replica and the client's pull:
 * see replica_apply.c) turns it off and saves one fsync per file.
 */
void ids_csync_in_set_fsync(struct ids_csync_in *in, int on);

/*
 * Reads one line.  Returns 1 and a new *lp, 0 at a clean end of input
 * (nothing pending), or a negative code:
 *   IDS_ECORRUPT  a syntax error (byte offset in the detail);
 *   IDS_ECRC      a file literal whose bytes do not hash to its GUID;
 *   IDS_ETRUNC    input ended inside a line, a literal or a file;
 *   IDS_ETOOLONG  a line, literal or file literal over the limits;
 *   -errno        reading or staging failed.
 * After IDS_ECORRUPT or IDS_ECRC the reader has consumed the rest of
 * the line and the session can answer and go on, unless
 * ids_csync_in_lost() says otherwise (a syntax error inside a literal's
 * header loses the line's end; a limit, a truncation or an I/O error
 * always loses the stream).  No staged file of a failed line remains.
 */
int ids_csync_read(struct ids_csync_in *in, struct ids_csync_line **lp);
/*
 * Appends to b a line's summary for a trace: "* " when untagged, its
 * word or status and text, then its first two arguments (a kvlist by
 * its MBOXNAME, OLDMBOXNAME or UNIQUEID); never a file's bytes.
 */
struct ids_buf;
void ids_csync_line_summary(const struct ids_csync_line *l, struct ids_buf *b);
/*
 * Streaming the record list of APPLY MAILBOX, so that a folder of any
 * size costs the memory of one record.  With ids_csync_in_set_stream(in,
 * 1), ids_csync_read() hands out a line
 *	APPLY MAILBOX %(UNIQUEID ... RECORD (%(UID ...) ...) ...)
 * as soon as it reaches the '(' of the RECORD list, parsed as if the
 * list were empty, and ids_csync_in_streaming() is 1: the caller then
 * takes the items with ids_csync_read_record() (1 and a new *itemp
 * per item; 0 at the list's end, when the keys after the list, if any,
 * have been appended to the line's kvlist after RECORD and the line is
 * complete), or the rest of the line at once with ids_csync_read_rest()
 * (the items appended to the RECORD list: the line as ids_csync_read()
 * would have read it whole), or drops it with ids_csync_skip_rest()
 * (file literals staged and removed, nothing kept).  The line must not
 * be freed while streaming.  A line whose RECORD is not the last key
 * as far as the stream shows, or whose head does not parse, is read
 * whole as before.  Errors of ids_csync_read_record() are those of
 * ids_csync_read(); after one, streaming is over and the rest of the
 * line has been consumed unless ids_csync_in_lost().  limits.max_line
 * bounds the head and each item, not the whole line.  The next
 * ids_csync_read() skips what a caller left unread.
 */
void ids_csync_in_set_stream(struct ids_csync_in *in, int on);
int ids_csync_in_streaming(const struct ids_csync_in *in);
int ids_csync_read_record(struct ids_csync_in *in, struct ids_dlist **itemp);
int ids_csync_read_rest(struct ids_csync_in *in);
int ids_csync_skip_rest(struct ids_csync_in *in);

/* The stream position is lost: the session must end. */
int ids_csync_in_lost(const struct ids_csync_in *in);
/* Bytes consumed so far (for error messages). */
uint64_t ids_csync_in_offset(const struct ids_csync_in *in);
/*
 * 1 when input is waiting: bytes read but not consumed yet, or the
 * descriptor readable now (poll with no wait); 0 otherwise.  A replica
 * that finds more commands already sent makes several applies durable
 * together (group commit) before it answers them.
 */
int ids_csync_in_pending(struct ids_csync_in *in);

/* --- writing --------------------------------------------------------- */

struct ids_csync_out;

#define IDS_CSYNC_CLIENT	0x1	/* literals as {n+} (the client side) */

/* A buffered writer to fd (not owned); flags: IDS_CSYNC_CLIENT or 0. */
int ids_csync_out_new(int fd, int flags, struct ids_csync_out **outp);
void ids_csync_out_free(struct ids_csync_out *out);
/*
 * Appends l and CRLF, copying file literals from their files after
 * checking the size and SHA-1 of each before anything of the line is
 * written (a file that is not its GUID's is IDS_ECRC and nothing of the
 * line is sent); while the line is sent each is checked for its size
 * only (the receiver hashes every file literal).  Buffered: see
 * ids_csync_flush.
 */
int ids_csync_write(struct ids_csync_out *out, const struct ids_csync_line *l);
/* Shorthands: "OK text", "NO code text", "* key value" (value may be NULL). */
int ids_csync_write_ok(struct ids_csync_out *out, const char *text);
int ids_csync_write_no(struct ids_csync_out *out, const char *code, const char *text);
int ids_csync_write_bad(struct ids_csync_out *out, const char *text);
int ids_csync_write_untagged(struct ids_csync_out *out, const char *key,
    const struct ids_dlist *value);
/* Writes out what is buffered.  Returns 0 or -errno. */
int ids_csync_flush(struct ids_csync_out *out);
/*
 * The bytes written and buffered so far: unchanged by an
 * ids_csync_write that failed, the line's failure is its own (a file
 * missing, unreadable or not its GUID's, found before anything of the
 * line was written) and the stream is intact; changed, the line was
 * begun and the stream is lost.
 */
uint64_t ids_csync_out_count(const struct ids_csync_out *out);
/*
 * Held (on), nothing buffered is written, by ids_csync_flush or when the
 * buffer grows, until the hold ends (a file literal cannot be sent while
 * held: IDS_EBUSY).  ids_csync_out_mark is the buffer's length now, a
 * place for an answer decided later; ids_csync_out_insert_status puts
 * "OK text" (code NULL) or "NO code text" there, before everything
 * written after the mark (marks after it move by its length: insert the
 * latest first).  A replica's group commit answers its applies in order
 * this way.
 */
void ids_csync_out_hold(struct ids_csync_out *out, int on);
size_t ids_csync_out_mark(const struct ids_csync_out *out);
int ids_csync_out_insert_status(struct ids_csync_out *out, size_t mark, const char *code,
    const char *text);

/*
 * Appends l, CRLF included, to buf as ids_csync_write would send it,
 * file bodies read whole into memory (tests and small files only).
 * flags: IDS_CSYNC_CLIENT or 0.
 */
int ids_csync_print(const struct ids_csync_line *l, int flags, struct ids_buf *buf);

/*
 * A file literal node for sending the file name in dirfd (not owned),
 * whose size and GUID the caller knows (the index record's).
 */
struct ids_dlist *ids_csync_file_node(const char *partition, const char *guidhex,
    uint64_t size, int dirfd, const char *name);

/* Cyrus's IMAP_* error names a replica answers with, for NO lines. */
#define IDS_CSYNC_EPROTOCOL	"IMAP_PROTOCOL_ERROR"
#define IDS_CSYNC_EBADPARAM	"IMAP_PROTOCOL_BAD_PARAMETERS"
#define IDS_CSYNC_EMOVED	"IMAP_MAILBOX_MOVED"
#define IDS_CSYNC_ENONEXISTENT	"IMAP_MAILBOX_NONEXISTENT"
#define IDS_CSYNC_ECHECKSUM	"IMAP_SYNC_CHECKSUM"
#define IDS_CSYNC_ECHANGED	"IMAP_SYNC_CHANGED"
#define IDS_CSYNC_EIOERROR	"IMAP_IOERROR"

#endif
