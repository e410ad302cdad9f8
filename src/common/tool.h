/*
 * tool.h - what every idspool command shares: the program name, the
 * message shape "prog: object: reason" (err(3)), the exit codes, and
 * --help/--version.
 *
 * Exit codes, the same for every command (documented in idspool(7)):
 */
#ifndef IDS_TOOL_H
#define IDS_TOOL_H

#define IDS_EXIT_OK	0	/* everything asked for was done */
#define IDS_EXIT_FAIL	1	/* at least one object failed (or, for audits: findings) */
#define IDS_EXIT_USAGE	2	/* bad command line */
#define IDS_EXIT_ENV	3	/* could not run: configuration, mailboxes.db, locks */
#define IDS_EXIT_FENCED	75	/* writes fenced for failover (spool_sync --drain); EX_TEMPFAIL */

#define IDS_VERSION "0.1.0"

/*
 * Never Cyrus's /etc/imapd.conf: a tool run without -C must not find
 * (and write beside) a live Cyrus server's mailboxes.db.
 */
#define IDS_DEFAULT_CONFIG "/etc/idspool.conf"

#include <stddef.h>
#include <sys/types.h>

struct ids_config;
struct ids_mbname;

/*
 * Sets the program name used in every message to the last component of
 * argv[0], and argv[0] itself to it, so that getopt's own complaints
 * read "prog: ..." too.
 */
void tool_init(char **argv);

/*
 * Reports "prog: object: reason" for the library code on stderr and
 * remembers that an object failed; returns code.
 */
int tool_error(int code, const char *object);

/*
 * The detail of code (ids_errmsg) without a leading "OBJECT: ", for a
 * message that names object itself: the library's details often start
 * with the path they are about, which must be printed once.
 */
const char *tool_reason(const char *object, int code);

/* With on, tool_error() counts failures without printing them (-q). */
void tool_set_quiet(int on);

/* The exit status so far: IDS_EXIT_OK, IDS_EXIT_FAIL, or IDS_EXIT_FENCED when every failure was a fence. */
int tool_status(void);

/* Prints "usage: <synopsis>" to stderr and exits IDS_EXIT_USAGE. */
void tool_usage(const char *synopsis) __attribute__((noreturn));

/* --help: prints "usage: <synopsis>" to stdout and exits 0. */
void tool_help(const char *synopsis) __attribute__((noreturn));

/*
 * --help: prints "usage: <synopsis>", a blank line and options (a line
 * per option, "  -x ARG   what it does\n") to stdout and exits 0.
 */
void tool_help_options(const char *synopsis, const char *options)
    __attribute__((noreturn));

/* --version: prints "prog (idspool) VERSION" and exits 0. */
void tool_version(void) __attribute__((noreturn));

/*
 * A numeric option argument, checked by the library's one parser
 * (ids_parse_uint, ids_parse_real: digits only, overflow and range
 * refused).  On a bad one reports "prog: OPT: 'ARG' is not a whole
 * number from MIN to MAX" and returns -1; the caller then prints its
 * usage (tool_usage).
 */
int tool_uint(const char *opt, const char *arg, unsigned long long min,
    unsigned long long max, unsigned long long *out);
int tool_real(const char *opt, const char *arg, double min, double max, double *out);

/*
 * -C: loads file (NULL: IDS_DEFAULT_CONFIG) into cfg, then, before the
 * tool opens anything for writing, becomes the spool's owner
 * (tool_become_owner) and refuses a configuration directory that is
 * not ours (tool_check_configdir).  On failure reports "prog: FILE:
 * reason" ("prog: FILE:LINE: reason" for a bad line) and exits
 * IDS_EXIT_ENV.
 */
void tool_load_config(struct ids_config *cfg, const char *file);

/*
 * Cyrus's become_cyrus(): started as root, the tool becomes the user
 * cyrus_user names (with that user's group, or cyrus_group's), or by
 * default the owner and group of configdirectory (of its nearest
 * existing parent while it does not exist yet): initgroups (setgroups
 * for a uid with no name), setgid, setuid.  Not root, it goes on as it
 * is unless cyrus_user names another user.  On failure reports "prog:
 * ...: reason" and exits IDS_EXIT_ENV.
 */
void tool_become_owner(const struct ids_config *cfg);

/*
 * Refuses (exits IDS_EXIT_ENV, "prog: DIR/mailboxes.db: not an idspool
 * mailboxes.db (...)") a configuration directory whose mailboxes.db is
 * not ours, such as Cyrus's own: nothing is created there.
 */
void tool_check_configdir(const struct ids_config *cfg);

/*
 * A mailbox name argument: the admin namespace's external form
 * ("user/john.doe/Sent@example.com", "shared/support"), or with
 * internal != 0 the internal form exactly as dumps print it
 * ("example.com!user.john^doe.Sent").  No guessing between the two.
 * The default domain is dropped either way.  On failure reports
 * "prog: NAME: reason" through tool_error() and returns the code.
 */
int tool_parse_name(struct ids_mbname *mb, const char *arg, int internal,
    const struct ids_config *cfg);

/*
 * Writes mb in the form tool_parse_name() reads with the same internal
 * flag.  Returns the length, or reports through tool_error() (naming
 * the internal name) and returns the code.
 */
int tool_format_name(const struct ids_mbname *mb, int internal,
    const struct ids_config *cfg, char *buf, size_t size);

/*
 * Opens mailboxes.db for cfg (flags as ids_mboxlist_open) and, unless
 * read-only, settles what dead processes left half done (ids_recover);
 * a recovery failure is reported but does not stop the tool.  On an
 * open failure reports "prog: PATH: reason" and exits IDS_EXIT_ENV.
 */
struct ids_mboxlist;
struct ids_mboxlist *tool_open_mboxlist(const struct ids_config *cfg, int flags);

/* As tool_open_mboxlist, but returns IDS_EXIT_ENV rather than exit (else IDS_EXIT_OK). */
int tool_try_open_mboxlist(const struct ids_config *cfg, int flags,
    struct ids_mboxlist **mblp);

/*
 * The exit status for a failed library call: IDS_EXIT_ENV when the
 * environment failed (the configuration, mailboxes.db, a lock, a
 * partition, the format of a file, or the system: -errno), else
 * IDS_EXIT_FAIL (the object is at fault).
 */
int tool_exit_status(int code);

/*
 * A copy of s safe to print in a message: bytes outside 0x20-0x7e and
 * the backslash become \xNN; cut at size with "...".  Returns buf.
 */
const char *tool_printable(const char *s, char *buf, size_t size);

/*
 * A name in UTF-8 as modified UTF-7 (RFC 3501 5.1.3), the encoding of
 * mailboxes.db: Cyrus's tools take UTF-8 names unless told -7.  Returns
 * the length, or -1 for bad UTF-8 or no room.
 */
int tool_utf8_to_mutf7(const char *in, char *out, size_t size);

/*
 * A userid ("john.doe@example.com") as its INBOX's name, as Cyrus's
 * tools take -u userids.  On failure reports "prog: USERID: reason"
 * through tool_error() and returns the code.
 */
int tool_parse_user(struct ids_mbname *mb, const char *userid, const struct ids_config *cfg);

/*
 * Starts the peer command argv (a csync server: spool_sync --serve over
 * ssh, a Cyrus sync_server) with its standard input on a socket pair
 * (*peer_in, to write to it) and its standard output on a pipe
 * (*peer_out, to read it).  A write the peer does not take within
 * send_timeout seconds (0: no limit) fails with EAGAIN.  Its pid, or -1
 * with errno.
 */
pid_t tool_start_peer(char **argv, unsigned send_timeout, int *peer_out, int *peer_in);

/*
 * Raises the soft limit of open files towards the hard one, as far as
 * 65536, for a tool whose library calls size their batches of open
 * folders to the limit; left as it is when it cannot be raised (the
 * batches are then smaller).
 */
void tool_raise_nofile(void);

#endif
