/*
 * failure.h - failure records: why a folder's migration failed.
 *
 * Key 'F' + uniqueid in mailboxes.db; the value is one line,
 * "<unix time> <internal name>: <reason>", of at most IDS_FAILURE_MAX
 * bytes, every byte outside 0x20-0x7e written as \xNN.  The migration
 * (relocate.c) writes one under the folder's lock and drops it at the
 * flip; the walker writes one for a failure met before the folder was
 * opened, prunes those of folders no longer legacy, and lists them
 * (relocated -s).  This module alone knows the key and the format.  An
 * LMDB value is not NUL-terminated: a record is read from its bytes and
 * length only, never as a C string.
 */
#ifndef IDS_FAILURE_H
#define IDS_FAILURE_H

#include <stddef.h>
#include <stdint.h>

struct ids_txn;

#define IDS_FAILURE_MAX 1536

struct ids_failure {
	int64_t when;			/* unix time; 0 when unreadable */
	char text[IDS_FAILURE_MAX + 4];	/* "<name>: <reason>", printable ASCII */
};

/*
 * Writes the record of a failure into buf (size bytes, at least 64),
 * cut to fit with "..." at its end.  Returns its length.
 */
size_t ids_failure_format(char *buf, size_t size, int64_t when, const char *name,
    const char *reason);

/*
 * Reads the len bytes at val (any bytes, not NUL-terminated) as a
 * failure record into *f: its time, and the rest of the line with
 * every byte outside 0x20-0x7e written as \xNN, so that it prints as
 * one line of ASCII whatever the record holds.  Returns 0, or
 * IDS_ECORRUPT when the record does not start with a time (*f then
 * has when 0 and the whole value as its text).
 */
int ids_failure_parse(const void *val, size_t len, struct ids_failure *f);

/* Writes (or replaces) the record of uniqueid, dated now. */
int ids_failure_put(struct ids_txn *txn, const char *uniqueid, const char *name,
    const char *reason);

/* 1 if uniqueid has a record, 0 if not, or a negative code. */
int ids_failure_exists(struct ids_txn *txn, const char *uniqueid);

/* Removes the record of uniqueid; 0 also when there is none. */
int ids_failure_del(struct ids_txn *txn, const char *uniqueid);

/*
 * Calls fn(uniqueid, val, len, rock) for every record, val being the
 * value's bytes in the map (for ids_failure_parse); stops at non-zero.
 */
typedef int (*ids_failure_fn)(const char *uniqueid, const char *val, size_t len,
    void *rock);
int ids_failure_foreach(struct ids_txn *txn, ids_failure_fn fn, void *rock);

#endif
