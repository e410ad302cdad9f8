/*
 * buf.h - a growable byte buffer, always NUL-terminated.
 *
 *	struct ids_buf b = IDS_BUF_INIT;
 *	ids_buf_printf(&b, "%s/%s", a, c);
 *	use(b.s, b.len);
 *	ids_buf_release(&b);
 *
 * Allocation failure is reported once, by ids_buf_oom(): every adding
 * function returns 0 or -ENOMEM, and after a failure the buffer keeps
 * failing until released, so a caller may check only at the end.
 */
#ifndef IDS_BUF_H
#define IDS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct ids_buf {
	char *s;	/* the bytes, NUL-terminated; "" when empty */
	size_t len;	/* bytes used, excluding the NUL */
	size_t alloc;	/* bytes allocated; 0 while s points at a static "" */
	int oom;	/* an allocation failed */
};

#define IDS_BUF_INIT { (char *)"", 0, 0, 0 }

void ids_buf_init(struct ids_buf *b);
void ids_buf_release(struct ids_buf *b);
/* Empties the buffer but keeps its memory. */
void ids_buf_reset(struct ids_buf *b);
int ids_buf_grow(struct ids_buf *b, size_t extra);
int ids_buf_add(struct ids_buf *b, const void *data, size_t len);
int ids_buf_adds(struct ids_buf *b, const char *s);
int ids_buf_addch(struct ids_buf *b, int c);
int ids_buf_printf(struct ids_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int ids_buf_vprintf(struct ids_buf *b, const char *fmt, va_list ap);
/* Returns -ENOMEM if any addition failed since init/reset, else 0. */
int ids_buf_oom(const struct ids_buf *b);
/* Hands the malloc'd string to the caller and re-initialises b. */
char *ids_buf_detach(struct ids_buf *b, size_t *lenp);

/*
 * A copy of s safe to show in a message: bytes outside 0x20-0x7e and
 * the backslash become \xNN; cut at size with "...".  Returns buf.
 */
const char *ids_printable(const char *s, char *buf, size_t size);

#endif
