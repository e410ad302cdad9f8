/*
 * failure.c - failure records ('F' + uniqueid in mailboxes.db;
 * failure.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "failure.h"
#include "mboxlist.h"

#define FAILURE_KEY 'F'

/*
 * Appends the len bytes at s to buf (o bytes used of size), bytes
 * outside 0x20-0x7e as \xNN; stops with "..." where the next would not
 * fit.  Returns the new length (buf is NUL-terminated).
 */
static size_t
put_printable(char *buf, size_t o, size_t size, const unsigned char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		if (o + 4 + 4 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			buf[o++] = (char)s[i];
			continue;
		}
		buf[o++] = '\\';
		buf[o++] = 'x';
		buf[o++] = hex[s[i] >> 4];
		buf[o++] = hex[s[i] & 15];
	}
	buf[o] = '\0';
	return o;
}

size_t
ids_failure_format(char *buf, size_t size, int64_t when, const char *name,
    const char *reason)
{
	int n = snprintf(buf, size, "%lld ", (long long)when);
	size_t o = n > 0 && (size_t)n < size ? (size_t)n : 0;

	o = put_printable(buf, o, size, (const unsigned char *)name, strlen(name));
	o = put_printable(buf, o, size, (const unsigned char *)": ", 2);
	return put_printable(buf, o, size, (const unsigned char *)reason, strlen(reason));
}

int
ids_failure_parse(const void *val, size_t len, struct ids_failure *f)
{
	const unsigned char *b = val;
	size_t i = 0;
	int64_t t = 0;

	while (i < len && i < 18 && b[i] >= '0' && b[i] <= '9')
		t = t * 10 + (b[i++] - '0');
	if (i == 0 || i == len || b[i] != ' ') {
		f->when = 0;
		put_printable(f->text, 0, sizeof(f->text), b, len);
		return ids_error(IDS_ECORRUPT, "failure record without a time");
	}
	f->when = t;
	put_printable(f->text, 0, sizeof(f->text), b + i + 1, len - i - 1);
	return 0;
}

int
ids_failure_put(struct ids_txn *txn, const char *uniqueid, const char *name,
    const char *reason)
{
	char buf[IDS_FAILURE_MAX];
	size_t n = ids_failure_format(buf, sizeof(buf), (int64_t)time(NULL), name, reason);

	return ids_txn_put_raw(txn, FAILURE_KEY, uniqueid, buf, n);
}

int
ids_failure_exists(struct ids_txn *txn, const char *uniqueid)
{
	char *val;
	int r = ids_txn_get_raw(txn, FAILURE_KEY, uniqueid, &val, NULL);

	if (r == 0)
		free(val);
	return r == 0 ? 1 : r == IDS_ENOTFOUND ? 0 : r;
}

int
ids_failure_del(struct ids_txn *txn, const char *uniqueid)
{
	int r = ids_txn_del_raw(txn, FAILURE_KEY, uniqueid);

	return r == IDS_ENOTFOUND ? 0 : r;
}

int
ids_failure_foreach(struct ids_txn *txn, ids_failure_fn fn, void *rock)
{
	return ids_txn_foreach_raw(txn, FAILURE_KEY, fn, rock);
}
