/*
 * buf.c - growable buffers (see buf.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
ids_buf_init(struct ids_buf *b)
{
	b->s = (char *)"";
	b->len = b->alloc = 0;
	b->oom = 0;
}

void
ids_buf_release(struct ids_buf *b)
{
	if (b->alloc)
		free(b->s);
	ids_buf_init(b);
}

void
ids_buf_reset(struct ids_buf *b)
{
	b->len = 0;
	b->oom = 0;
	if (b->alloc)
		b->s[0] = '\0';
}

int
ids_buf_grow(struct ids_buf *b, size_t extra)
{
	size_t want, n;
	char *p;

	if (b->oom)
		return -ENOMEM;
	if (extra > (size_t)-1 / 2 - b->len)
		goto oom;
	want = b->len + extra + 1;
	if (want <= b->alloc)
		return 0;
	n = b->alloc ? b->alloc : 64;
	while (n < want)
		n *= 2;
	p = realloc(b->alloc ? b->s : NULL, n);
	if (p == NULL)
		goto oom;
	if (!b->alloc)
		p[0] = '\0';
	b->s = p;
	b->alloc = n;
	return 0;
oom:
	b->oom = 1;
	return -ENOMEM;
}

int
ids_buf_add(struct ids_buf *b, const void *data, size_t len)
{
	if (ids_buf_grow(b, len) < 0)
		return -ENOMEM;
	memcpy(b->s + b->len, data, len);
	b->len += len;
	b->s[b->len] = '\0';
	return 0;
}

int
ids_buf_adds(struct ids_buf *b, const char *s)
{
	return ids_buf_add(b, s, strlen(s));
}

int
ids_buf_addch(struct ids_buf *b, int c)
{
	char ch = (char)c;

	return ids_buf_add(b, &ch, 1);
}

int
ids_buf_vprintf(struct ids_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (ids_buf_grow(b, 64) < 0)
		return -ENOMEM;
	va_copy(cp, ap);
	n = vsnprintf(b->s + b->len, b->alloc - b->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= b->alloc - b->len) {
		if (ids_buf_grow(b, (size_t)n) < 0)
			return -ENOMEM;
		vsnprintf(b->s + b->len, b->alloc - b->len, fmt, ap);
	}
	b->len += (size_t)n;
	return 0;
}

int
ids_buf_printf(struct ids_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = ids_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

int
ids_buf_oom(const struct ids_buf *b)
{
	return b->oom ? -ENOMEM : 0;
}

char *
ids_buf_detach(struct ids_buf *b, size_t *lenp)
{
	char *s = b->alloc ? b->s : strdup("");

	if (lenp)
		*lenp = b->alloc ? b->len : 0;
	ids_buf_init(b);
	return s;
}

const char *
ids_printable(const char *s, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (size < 8) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (o + 8 >= size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
			continue;
		}
		buf[o++] = '\\';
		buf[o++] = 'x';
		buf[o++] = hex[c >> 4];
		buf[o++] = hex[c & 15];
	}
	buf[o] = '\0';
	return buf;
}
