#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util/buf.h"
#include "util/err.h"

void buf_init(struct buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

void buf_wipe_free(struct buf *b)
{
	if (!b)
		return;
	if (b->data)
		sodium_memzero(b->data, b->alloc);
	buf_free(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int buf_reserve(struct buf *b, size_t n)
{
	size_t need, na;
	char *p;

	if (n > b->cap || b->len > b->cap - n)
		return KW_ERR_TOO_LARGE;
	need = b->len + n + 1;
	if (need <= b->alloc)
		return 0;
	na = b->alloc ? b->alloc : 64;
	while (na < need)
		na *= 2;
	if (na > b->cap + 1)
		na = b->cap + 1;
	p = realloc(b->data, na);
	if (!p)
		return KW_ERR_NOMEM;
	b->data = p;
	b->alloc = na;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int r = buf_reserve(b, n);

	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return KW_ERR_INVALID;
	r = buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int buf_put_html(struct buf *b, const char *s, size_t n)
{
	/* The characters that need an entity, by byte value. */
	static const char *const entity[256] = {
		['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;",
		['\''] = "&#39;",
	};
	size_t i, start = 0;
	int r;

	for (i = 0; i < n; i++) {
		const char *rep = entity[(unsigned char)s[i]];

		if (!rep)
			continue;
		if ((r = buf_append(b, s + start, i - start)) < 0 || (r = buf_puts(b, rep)) < 0)
			return r;
		start = i + 1;
	}
	return buf_append(b, s + start, n - start);
}

int buf_put_csv(struct buf *b, const char *s)
{
	int r;

	/* A leading = + - @ would be run as a formula by spreadsheets. */
	int formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@';

	if (!formula && !strpbrk(s, ",\"\r\n"))
		return buf_puts(b, s);
	if ((r = buf_putc(b, '"')) < 0)
		return r;
	if (formula && (r = buf_putc(b, '\'')) < 0)
		return r;
	for (; *s; s++) {
		if (*s == '"' && (r = buf_putc(b, '"')) < 0)
			return r;
		if ((r = buf_putc(b, *s)) < 0)
			return r;
	}
	return buf_putc(b, '"');
}

int buf_put_url(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int r;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		    c == '~')
			r = buf_putc(b, (char)c);
		else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			r = buf_append(b, e, 3);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

char *buf_steal(struct buf *b, size_t *len)
{
	char *p = b->data;

	if (len)
		*len = b->len;
	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = b->alloc = 0;
	return p;
}
