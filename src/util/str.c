#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "util/err.h"
#include "util/str.h"

int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return KW_ERR_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return KW_ERR_INVALID;
	*out = v;
	return 0;
}

int str_to_duration(const char *s, int64_t max_seconds, int64_t *out)
{
	char num[24];
	size_t n;
	int64_t v, mult = 1;

	if (!s)
		return KW_ERR_INVALID;
	n = strlen(s);
	if (n == 0 || n >= sizeof(num))
		return KW_ERR_INVALID;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's': mult = 1; num[--n] = '\0'; break;
	case 'm': mult = 60; num[--n] = '\0'; break;
	case 'h': mult = 3600; num[--n] = '\0'; break;
	case 'd': mult = 86400; num[--n] = '\0'; break;
	default: break;
	}
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)num[i]))
			return KW_ERR_INVALID;
	if (str_to_i64(num, 0, max_seconds, &v) < 0 || v > max_seconds / mult)
		return KW_ERR_INVALID;
	*out = v * mult;
	return 0;
}

void str_format_duration(int64_t seconds, char *out, size_t outlen)
{
	if (seconds == 0)
		snprintf(out, outlen, "0");
	else if (seconds % 86400 == 0)
		snprintf(out, outlen, "%lldd", (long long)(seconds / 86400));
	else if (seconds % 3600 == 0)
		snprintf(out, outlen, "%lldh", (long long)(seconds / 3600));
	else if (seconds % 60 == 0)
		snprintf(out, outlen, "%lldm", (long long)(seconds / 60));
	else
		snprintf(out, outlen, "%llds", (long long)seconds);
}

int str_to_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (str_ieq(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (str_ieq(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return KW_ERR_INVALID;
}

bool str_ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* Lower case of one code point: ASCII, Latin-1 and Latin Extended-A, which
 * covers the names of Western and Central European users (Å, Ö, Ł, Š …). */
static uint32_t fold_cp(uint32_t c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7))
		return c + 0x20;
	if ((c >= 0x100 && c <= 0x12f) || (c >= 0x132 && c <= 0x137) ||
	    (c >= 0x14a && c <= 0x177))
		return c | 1;
	if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) && (c & 1))
		return c + 1;
	if (c == 0x178)
		return 0xff;
	return c;
}

/* Folds the character at p[0..left) into out[0..1]; returns its length
 * (1 or 2 bytes: every mapping stays within two-byte sequences). */
static size_t fold_at(const unsigned char *p, size_t left, unsigned char out[2])
{
	uint32_t c;

	if (p[0] < 0x80) {
		out[0] = (unsigned char)fold_cp(p[0]);
		return 1;
	}
	if (left < 2 || (p[0] & 0xe0) != 0xc0 || (p[1] & 0xc0) != 0x80) {
		out[0] = p[0];
		return 1;
	}
	c = fold_cp(((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f));
	out[0] = (unsigned char)(0xc0 | (c >> 6));
	out[1] = (unsigned char)(0x80 | (c & 0x3f));
	return 2;
}

void str_fold(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t left = strlen(s);

	while (left) {
		size_t n = fold_at(p, left, p);

		p += n;
		left -= n;
	}
}

bool str_fold_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;

	/* Folding keeps every character's length. */
	if (alen != blen)
		return false;
	while (alen) {
		unsigned char x[2], y[2];
		size_t n = fold_at(p, alen, x), m = fold_at(q, alen, y);

		if (n != m || memcmp(x, y, n))
			return false;
		p += n;
		q += n;
		alen -= n;
	}
	return true;
}

char *str_lower_dup(const char *s)
{
	char *d = strdup(s);

	if (d)
		str_fold(d);
	return d;
}

char *str_trim(char *s)
{
	size_t n = strlen(s);
	size_t i = 0;

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (isspace((unsigned char)s[i]))
		i++;
	if (i)
		memmove(s, s + i, n - i + 1);
	return s;
}

/* The UTF-8 sequence at p: its code point in *cp and its length, or 0 when
 * it is not one (a stray or missing continuation byte, an overlong form, a
 * surrogate, past U+10FFFF). */
static size_t utf8_next(const unsigned char *p, uint32_t *cp)
{
	unsigned char c = *p;
	size_t extra;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		extra = 1;
		*cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		extra = 2;
		*cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		extra = 3;
		*cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i <= extra; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (p[i] & 0x3f);
	}
	if ((extra == 1 && *cp < 0x80) || (extra == 2 && *cp < 0x800) ||
	    (extra == 3 && (*cp < 0x10000 || *cp > 0x10ffff)) ||
	    (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return extra + 1;
}

bool str_is_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	size_t n;

	for (; *p; p += n)
		if (!(n = utf8_next(p, &cp)))
			return false;
	return true;
}

/* Walks s as UTF-8: false at an invalid sequence, a control character
 * (C0 but, with lines, CR, LF and TAB; DEL; C1), or past maxlen bytes or
 * maxchars characters. *blank: nothing but white space. */
static bool text_scan(const char *s, size_t maxlen, size_t maxchars, bool lines, bool *blank)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, chars = 0, len;
	uint32_t cp;

	*blank = true;
	if (!s || !*s)
		return false;
	while (*p) {
		unsigned char c = *p;

		if ((c < 0x20 && !(lines && (c == '\n' || c == '\r' || c == '\t'))) || c == 0x7f)
			return false;
		if (!(len = utf8_next(p, &cp)) || (cp >= 0x80 && cp < 0xa0))
			return false;
		if (!(c == ' ' || c == '\n' || c == '\r' || c == '\t'))
			*blank = false;
		p += len;
		n += len;
		if (n > maxlen || ++chars > maxchars)
			return false;
	}
	return true;
}

bool str_is_clean_text(const char *s, size_t maxlen)
{
	bool blank;

	return text_scan(s, maxlen, SIZE_MAX, false, &blank);
}

bool str_is_clean_lines(const char *s, size_t maxchars)
{
	bool blank;

	return text_scan(s, SIZE_MAX, maxchars, true, &blank) && !blank;
}

void str_hex(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

char *str_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int str_join_path(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	return (n < 0 || (size_t)n >= outlen) ? KW_ERR_TOO_LARGE : 0;
}

void str_msg(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (!msg || msglen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

void str_msg_clear(char *msg, size_t msglen)
{
	if (msg && msglen > 0)
		msg[0] = '\0';
}
