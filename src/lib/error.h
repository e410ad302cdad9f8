/*
 * error.h - the one error convention of the idspool library.
 *
 * Every library function that can fail returns an int: 0 (or a
 * non-negative count/length) on success, a negative code on failure.
 * A negative code is either -errno (a system call failed) or one of the
 * IDS_E* codes below.  ids_strerror() turns any code into a phrase.
 *
 * A function that knows more than the code (the offending level of a
 * name, the line of a config file, the offset of a corrupt record)
 * records it with ids_error() and returns the code; the caller fetches
 * the phrase with ids_errmsg().  The detail is per thread and is only
 * the answer for the most recent failure: read it right after the call.
 *
 * The library never prints and never exits.
 */
#ifndef IDS_ERROR_H
#define IDS_ERROR_H

#include <stddef.h>

enum ids_error_code {
	IDS_EBADNAME  = -10001,	/* invalid mailbox name */
	IDS_EBADID    = -10002,	/* invalid unique id */
	IDS_ECONFIG   = -10003,	/* invalid configuration */
	IDS_ECORRUPT  = -10004,	/* corrupt file */
	IDS_ETRUNC    = -10005,	/* truncated file */
	IDS_ECRC      = -10006,	/* checksum mismatch */
	IDS_ENOTFOUND = -10007,	/* no such mailbox */
	IDS_EEXIST    = -10008,	/* mailbox already exists */
	IDS_EDUPID    = -10009,	/* unique id held by another live mailbox */
	IDS_ECONFLICT = -10010,	/* conflicting file on disk */
	IDS_ELOCKED   = -10011,	/* lock held by another process */
	IDS_EDB       = -10012,	/* mailboxes.db failure */
	IDS_EUNSAFE   = -10013,	/* symlink or unexpected file type */
	IDS_EINVAL    = -10014,	/* invalid argument */
	IDS_ETOOLONG  = -10015,	/* name or path too long */
	IDS_ECROSSUSER = -10016, /* move between users */
	IDS_EFORMAT   = -10017,	/* unsupported format version */
	IDS_EPARTITION = -10018, /* unknown partition */
	IDS_EBUSY     = -10019,	/* operation in progress (intent pending) */
	IDS_EFENCED   = -10020,	/* writes fenced for failover (spool_sync --drain) */
};

/* Returns a short lower-case phrase for code (an IDS_E* code or -errno). */
const char *ids_strerror(int code);

/*
 * Records a detailed reason for code, formatted like printf, and
 * returns code, so that library code can write
 *	return ids_error(IDS_EBADNAME, "empty level at byte %zu", off);
 */
int ids_error(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Returns the detailed reason recorded for code by the last ids_error()
 * of this thread, or ids_strerror(code) when none was recorded for it.
 */
const char *ids_errmsg(int code);

/* Forgets the recorded detail (done implicitly by the next ids_error()). */
void ids_error_clear(void);

/* Returns -errno, or -EIO when errno is 0, for the system call just failed. */
int ids_errno(void);

/* 1 if code is -errno (a system call's failure), 0 for success or IDS_E*. */
int ids_is_errno(int code);

#endif
