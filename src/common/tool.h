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

#define IDS_VERSION "0.1.0"

/* Sets the program name used in every message. */
void tool_init(const char *argv0);

/*
 * Reports "prog: object: reason" for the library code on stderr and
 * remembers that an object failed; returns code.
 */
int tool_error(int code, const char *object);

/* The exit status so far: IDS_EXIT_OK or IDS_EXIT_FAIL. */
int tool_status(void);

/* Prints "usage: <synopsis>" to stderr and exits IDS_EXIT_USAGE. */
void tool_usage(const char *synopsis) __attribute__((noreturn));

/* --help: prints "usage: <synopsis>" to stdout and exits 0. */
void tool_help(const char *synopsis) __attribute__((noreturn));

/* --version: prints "prog (idspool) VERSION" and exits 0. */
void tool_version(void) __attribute__((noreturn));

#endif
