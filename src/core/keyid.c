#include <stdio.h>
#include <string.h>

#include "core/keyid.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/str.h"

/* The user-facing sentences below spell these numbers out, so that each is
 * one complete string for the translators. */
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
		size_t *count, char *msg, size_t msglen)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t n = 0;

	if (inlen > KEYID_INPUT_MAX) {
		str_msg(msg, msglen,
			_("The recovery key ID is too long: enter at most 128 characters."));
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
		if (c > 0x20 && c < 0x7f)
			str_msg(msg, msglen,
				_("The recovery key ID may contain only the digits 0-9 and letters A-F; '%c' at position %zu is not allowed."),
				c, i + 1);
		else
			str_msg(msg, msglen,
				_("The recovery key ID may contain only the digits 0-9 and letters A-F; the character at position %zu is not allowed."),
				i + 1);
		return KW_ERR_INVALID;
	}
	if (n == 0) {
		str_msg(msg, msglen, _("Enter the recovery key ID."));
		return KW_ERR_INVALID;
	}
	if (n > KEYID_HEX_LEN) {
		str_msg(msg, msglen,
			_("A recovery key ID has 32 characters; you entered %zu."), n);
		return KW_ERR_INVALID;
	}
	hex[n] = '\0';
	*count = n;
	return 0;
}

int keyid_parse_prefix(const char *in, size_t inlen, char hex[KEYID_HEX_LEN + 1],
		       size_t *len, char *msg, size_t msglen)
{
	char tmp[KEYID_HEX_LEN + 1];
	size_t n = 0;
	int r;

	r = scan(in, in ? inlen : 0, tmp, &n, msg, msglen);
	if (r < 0)
		return r;
	if (n < KEYID_PREFIX_MIN) {
		str_msg(msg, msglen,
			_("Enter at least the first 8 characters of the recovery key ID (you entered %zu)."),
			n);
		return KW_ERR_INVALID;
	}
	memcpy(hex, tmp, n + 1);
	*len = n;
	str_msg_clear(msg, msglen);
	return 0;
}

int keyid_parse(const char *in, size_t inlen, char canon[KEYID_CANON_LEN + 1],
		char *msg, size_t msglen)
{
	char tmp[KEYID_HEX_LEN + 1];
	size_t n = 0;
	int r;

	r = scan(in, in ? inlen : 0, tmp, &n, msg, msglen);
	if (r < 0)
		return r;
	if (n < KEYID_HEX_LEN) {
		str_msg(msg, msglen,
			_("A full recovery key ID has 32 characters; you entered %zu."), n);
		return KW_ERR_INVALID;
	}
	keyid_format(tmp, canon);
	str_msg_clear(msg, msglen);
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
