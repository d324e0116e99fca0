#include <stdio.h>
#include <string.h>

#include "core/keyid.h"
#include "util/err.h"
#include "util/str.h"

/* The sentences below (and their translations in web/) spell these
 * numbers out. */
_Static_assert(KEYID_HEX_LEN == 32, "messages say 32 characters");
_Static_assert(KEYID_PREFIX_MIN == 8, "messages say 8 characters");
_Static_assert(KEYID_INPUT_MAX == 128, "messages say 128 characters");

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Separators people type or paste around a GUID: the 8-4-4-4-12 hyphens,
 * the braces Windows prints, and line breaks from copying. */
static int is_separator(char c)
{
	return c == '-' || c == '{' || c == '}' ||
	       c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Collects the hex digits of in (upper-cased, at most KEYID_HEX_LEN kept)
 * and counts all of them, so that "you entered 33" is exact. */
static int scan(const char *in, size_t inlen, char hex[KEYID_HEX_LEN + 1],
		size_t *count, struct keyid_error *e)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t n = 0;

	if (inlen > KEYID_INPUT_MAX) {
		e->problem = KEYID_TOO_LONG;
		return KW_ERR_TOO_LARGE;
	}
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		int v = hex_value((char)c);

		if (v >= 0) {
			if (n < KEYID_HEX_LEN)
				hex[n] = digits[v];
			n++;
			continue;
		}
		if (is_separator((char)c))
			continue;
		/* Everything before i is ASCII, so i + 1 is also the
		 * position in characters. Only a printable ASCII character
		 * is quoted: anything else may be invisible or a fragment of
		 * a multi-byte character. */
		e->problem = KEYID_BAD_CHAR;
		e->pos = i + 1;
		e->ch = (c > 0x20 && c < 0x7f) ? (char)c : 0;
		return KW_ERR_INVALID;
	}
	e->digits = n;
	if (n == 0) {
		e->problem = KEYID_EMPTY;
		return KW_ERR_INVALID;
	}
	if (n > KEYID_HEX_LEN) {
		e->problem = KEYID_TOO_MANY;
		return KW_ERR_INVALID;
	}
	hex[n] = '\0';
	*count = n;
	return 0;
}

/* Parses in, requiring at least min digits. */
static int check(const char *in, size_t inlen, char tmp[KEYID_HEX_LEN + 1], size_t *n,
		 size_t min, struct keyid_error *e)
{
	int r;

	memset(e, 0, sizeof(*e));
	e->full = min == KEYID_HEX_LEN;
	if ((r = scan(in, in ? inlen : 0, tmp, n, e)) < 0)
		return r;
	if (*n < min) {
		e->problem = KEYID_TOO_FEW;
		return KW_ERR_INVALID;
	}
	return 0;
}

void keyid_error_text(const struct keyid_error *e, char *msg, size_t msglen)
{
	switch (e->problem) {
	case KEYID_OK:
		str_msg_clear(msg, msglen);
		return;
	case KEYID_TOO_LONG:
		str_msg(msg, msglen, "The recovery key ID is too long: enter at most 128 characters.");
		return;
	case KEYID_BAD_CHAR:
		if (e->ch)
			str_msg(msg, msglen, "The recovery key ID may contain only the digits 0-9 "
				"and letters A-F; '%c' at position %zu is not allowed.", e->ch, e->pos);
		else
			str_msg(msg, msglen, "The recovery key ID may contain only the digits 0-9 "
				"and letters A-F; the character at position %zu is not allowed.",
				e->pos);
		return;
	case KEYID_EMPTY:
		str_msg(msg, msglen, "Enter the recovery key ID.");
		return;
	case KEYID_TOO_MANY:
		str_msg(msg, msglen, "A recovery key ID has 32 characters; you entered %zu.",
			e->digits);
		return;
	case KEYID_TOO_FEW:
		if (e->full)
			str_msg(msg, msglen, "A full recovery key ID has 32 characters; you "
				"entered %zu.", e->digits);
		else
			str_msg(msg, msglen, "Enter at least the first 8 characters of the "
				"recovery key ID (you entered %zu).", e->digits);
		return;
	}
}

int keyid_check_prefix(const char *in, size_t inlen, char hex[KEYID_HEX_LEN + 1],
		       size_t *len, struct keyid_error *e)
{
	struct keyid_error tmp_e;
	char tmp[KEYID_HEX_LEN + 1];
	size_t n = 0;
	int r;

	if (!e)
		e = &tmp_e;
	if ((r = check(in, inlen, tmp, &n, KEYID_PREFIX_MIN, e)) < 0)
		return r;
	memcpy(hex, tmp, n + 1);
	*len = n;
	return 0;
}

int keyid_parse_prefix(const char *in, size_t inlen, char hex[KEYID_HEX_LEN + 1],
		       size_t *len, char *msg, size_t msglen)
{
	struct keyid_error e;
	int r = keyid_check_prefix(in, inlen, hex, len, &e);

	keyid_error_text(&e, msg, msglen);
	return r;
}

int keyid_parse(const char *in, size_t inlen, char canon[KEYID_CANON_LEN + 1],
		char *msg, size_t msglen)
{
	struct keyid_error e;
	char tmp[KEYID_HEX_LEN + 1];
	size_t n = 0;
	int r = check(in, inlen, tmp, &n, KEYID_HEX_LEN, &e);

	keyid_error_text(&e, msg, msglen);
	if (r < 0)
		return r;
	keyid_format(tmp, canon);
	return 0;
}

void keyid_format(const char hex[KEYID_HEX_LEN], char canon[KEYID_CANON_LEN + 1])
{
	size_t o = 0;

	for (size_t i = 0; i < KEYID_HEX_LEN; i++) {
		char c = hex[i];

		if (i == 8 || i == 12 || i == 16 || i == 20)
			canon[o++] = '-';
		/* Upper-cased here too, so a caller holding lower-case hex
		 * (e.g. from str_hex) still gets the canonical form. */
		canon[o++] = (c >= 'a' && c <= 'f') ? (char)(c - 'a' + 'A') : c;
	}
	canon[o] = '\0';
}

void keyid_to_hex(const char canon[KEYID_CANON_LEN], char hex[KEYID_HEX_LEN + 1])
{
	size_t o = 0;

	for (size_t i = 0; i < KEYID_CANON_LEN && o < KEYID_HEX_LEN; i++)
		if (canon[i] != '-')
			hex[o++] = canon[i];
	hex[o] = '\0';
}
