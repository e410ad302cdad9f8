/*
 * error.c - error codes and per-thread error details.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static __thread int last_code;
static __thread char last_msg[1024];

static const struct {
	int code;
	const char *text;
} ids_errors[] = {
	{ IDS_EBADNAME, "invalid mailbox name" },
	{ IDS_EBADID, "invalid unique id" },
	{ IDS_ECONFIG, "invalid configuration" },
	{ IDS_ECORRUPT, "corrupt file" },
	{ IDS_ETRUNC, "truncated file" },
	{ IDS_ECRC, "checksum mismatch" },
	{ IDS_ENOTFOUND, "no such mailbox" },
	{ IDS_EEXIST, "mailbox already exists" },
	{ IDS_EDUPID, "unique id held by another mailbox" },
	{ IDS_ECONFLICT, "conflicting file on disk" },
	{ IDS_ELOCKED, "locked by another process" },
	{ IDS_EDB, "mailboxes.db failure" },
	{ IDS_EUNSAFE, "unsafe file type" },
	{ IDS_EINVAL, "invalid argument" },
	{ IDS_ETOOLONG, "name too long" },
	{ IDS_ECROSSUSER, "move between users" },
	{ IDS_EFORMAT, "unsupported format version" },
	{ IDS_EPARTITION, "unknown partition" },
	{ IDS_EBUSY, "operation in progress" },
	{ IDS_EFENCED, "writes fenced for failover" },
};

const char *
ids_strerror(int code)
{
	size_t i;

	if (code == 0)
		return "success";
	if (ids_is_errno(code))
		return strerror(-code);
	for (i = 0; i < sizeof(ids_errors) / sizeof(ids_errors[0]); i++)
		if (ids_errors[i].code == code)
			return ids_errors[i].text;
	return "unknown error";
}

/*
 * The detail is formatted into a buffer of its own first: callers often
 * wrap the detail they were handed, ids_error(r, "%s: %s", what,
 * ids_errmsg(r)), and formatting straight into last_msg would read the
 * string it is overwriting.
 */
int
ids_error(int code, const char *fmt, ...)
{
	char msg[sizeof(last_msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(last_msg, msg, sizeof(last_msg));
	last_code = code;
	return code;
}

const char *
ids_errmsg(int code)
{
	if (code != 0 && code == last_code && last_msg[0] != '\0')
		return last_msg;
	return ids_strerror(code);
}

void
ids_error_clear(void)
{
	last_code = 0;
	last_msg[0] = '\0';
}

int
ids_errno(void)
{
	return errno ? -errno : -EIO;
}

int
ids_is_errno(int code)
{
	return code < 0 && code > -10000;
}
