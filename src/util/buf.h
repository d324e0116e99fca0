/* Growable byte buffer with a hard cap (cf. curl's dynbuf). The content is
 * always NUL-terminated so it can be used as a C string. */
#ifndef KW_UTIL_BUF_H
#define KW_UTIL_BUF_H

#include <stddef.h>

struct buf {
	char *data;     /* NULL until the first append */
	size_t len;
	size_t alloc;
	size_t cap;     /* appends past this fail with KW_ERR_TOO_LARGE */
};

/* Prepares an empty buffer that will never grow beyond cap bytes. */
void buf_init(struct buf *b, size_t cap);
/* Frees the storage (after wiping it when the buffer may hold a secret). */
void buf_free(struct buf *b);
void buf_wipe_free(struct buf *b);
/* Empties without freeing. */
void buf_reset(struct buf *b);

/* Append; return 0, KW_ERR_TOO_LARGE past the cap or KW_ERR_NOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Escapers: append s (n bytes) escaped for the named context. */
int buf_put_html(struct buf *b, const char *s, size_t n);
int buf_put_csv(struct buf *b, const char *s);   /* RFC 4180 field */
int buf_put_url(struct buf *b, const char *s);   /* percent-encoding */

/* Hands the storage to the caller (who frees it) and empties the buffer. */
char *buf_steal(struct buf *b, size_t *len);

#endif
