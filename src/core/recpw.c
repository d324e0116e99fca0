#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/recpw.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/str.h"

#define GROUP_DIGITS 6
#define GROUP_LIMIT 720896UL    /* 11 * 65536: a group is 11 x a 16-bit value */

/* The user-facing sentences below spell these numbers out, so that each is
 * one complete string for the translators. */
_Static_assert(RECPW_DIGITS == RECPW_GROUPS * GROUP_DIGITS, "8 groups of 6");
_Static_assert(RECPW_DIGITS == 48, "messages say 48 digits");
_Static_assert(RECPW_INPUT_MAX == 128, "messages say 128 characters");

static int is_separator(char c)
{
	return c == '-' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static unsigned long group_value(const char *d)
{
	unsigned long v = 0;

	for (size_t i = 0; i < GROUP_DIGITS; i++)
		v = v * 10 + (unsigned long)(d[i] - '0');
	return v;
}

/* Checks, in this order, the characters, the digit count, then groups 1..8,
 * and reports the first fault: a person fixes one thing at a time, and the
 * earliest is the easiest to find on the recovery screen. */
int recpw_parse(const char *in, size_t inlen, char canon[RECPW_CANON_LEN + 1],
		char *msg, size_t msglen)
{
	char d[RECPW_DIGITS];
	size_t n = 0, o = 0;
	int r = KW_ERR_INVALID;

	if (!in)
		inlen = 0;
	if (inlen > RECPW_INPUT_MAX) {
		str_msg(msg, msglen,
			_("The recovery password is too long: enter at most 128 characters."));
		return KW_ERR_TOO_LARGE;
	}
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= '0' && c <= '9') {
			/* Keep counting past 48 so "you entered 49" is exact. */
			if (n < RECPW_DIGITS)
				d[n] = (char)c;
			n++;
			continue;
		}
		if (is_separator((char)c))
			continue;
		/* Everything before i is ASCII, so i + 1 is also the position
		 * in characters. Only a printable ASCII character is quoted:
		 * anything else may be invisible or part of a multi-byte
		 * character. */
		if (c > 0x20 && c < 0x7f)
			str_msg(msg, msglen,
				_("The recovery password may contain only the digits 0-9; '%c' at position %zu is not allowed."),
				c, i + 1);
		else
			str_msg(msg, msglen,
				_("The recovery password may contain only the digits 0-9; the character at position %zu is not allowed."),
				i + 1);
		goto out;
	}
	if (n == 0) {
		str_msg(msg, msglen, _("Enter the recovery password."));
		goto out;
	}
	if (n != RECPW_DIGITS) {
		str_msg(msg, msglen,
			_("A recovery password has 48 digits; you entered %zu."), n);
		goto out;
	}
	for (int g = 0; g < RECPW_GROUPS; g++) {
		unsigned long v = group_value(d + g * GROUP_DIGITS);

		/* Range first: a group this large can never be valid, whatever
		 * its remainder. */
		if (v >= GROUP_LIMIT) {
			str_msg(msg, msglen,
				_("Group %d (%06lu) is too large: each group must be below 720896."),
				g + 1, v);
			goto out;
		}
		if (v % 11 != 0) {
			str_msg(msg, msglen,
				_("Group %d (%06lu) is not divisible by 11."), g + 1, v);
			goto out;
		}
	}
	for (int g = 0; g < RECPW_GROUPS; g++) {
		if (g > 0)
			canon[o++] = '-';
		memcpy(canon + o, d + g * GROUP_DIGITS, GROUP_DIGITS);
		o += GROUP_DIGITS;
	}
	canon[o] = '\0';
	str_msg_clear(msg, msglen);
	r = 0;
out:
	sodium_memzero(d, sizeof(d));
	return r;
}

void recpw_to_key(const char canon[RECPW_CANON_LEN], uint8_t key[16])
{
	for (size_t g = 0; g < RECPW_GROUPS; g++) {
		/* Groups start every 7 characters: 6 digits and a hyphen. */
		unsigned long v = group_value(canon + g * (GROUP_DIGITS + 1)) / 11;

		key[2 * g] = (uint8_t)(v & 0xff);
		key[2 * g + 1] = (uint8_t)((v >> 8) & 0xff);
	}
}

void recpw_from_key(const uint8_t key[16], char canon[RECPW_CANON_LEN + 1])
{
	size_t o = 0;

	for (size_t g = 0; g < RECPW_GROUPS; g++) {
		unsigned long v = ((unsigned long)key[2 * g] |
				   (unsigned long)key[2 * g + 1] << 8) * 11;

		if (g > 0)
			canon[o++] = '-';
		/* Zero-padded, most significant digit first. */
		for (size_t i = GROUP_DIGITS; i > 0; i--) {
			canon[o + i - 1] = (char)('0' + v % 10);
			v /= 10;
		}
		o += GROUP_DIGITS;
	}
	canon[o] = '\0';
}

/* What may stand between groups of a password typed into a key ID field:
 * anything but a digit or an ASCII letter (hyphens, white space, braces,
 * dots, the bytes of an en dash or a no-break space …). */
static bool between_groups(char c)
{
	return !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
}

bool recpw_may_contain(const char *text)
{
	size_t run = 0, group = 0, digits = 0;
	unsigned long value = 0;
	bool opened = true;   /* the current group began at a separator or the start */
	bool letters = false;

	for (const char *p = text;; p++) {
		if (*p >= '0' && *p <= '9') {
			digits++;
			if (++run >= 13)
				return true;
			if (++group <= GROUP_DIGITS)
				value = value * 10 + (unsigned long)(*p - '0');
			continue;
		}
		if ((!*p || between_groups(*p)) && opened && group == GROUP_DIGITS &&
		    value % 11 == 0 && value < GROUP_LIMIT)
			return true;
		if (!*p)
			return !letters && digits >= 12;
		opened = between_groups(*p);
		letters |= !opened;
		run = 0;
		group = 0;
		value = 0;
	}
}
