/* BitLocker recovery passwords: 48 digits in 8 groups of 6, each group
 * divisible by 11 and below 720896 (11 x a 16-bit value). SPEC §1. */
#ifndef KW_CORE_RECPW_H
#define KW_CORE_RECPW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECPW_DIGITS 48
#define RECPW_GROUPS 8
#define RECPW_CANON_LEN 55      /* 48 digits + 7 hyphens */
#define RECPW_INPUT_MAX 128

/* Parses a recovery password; hyphens and white space are ignored. On
 * success writes the canonical form (groups joined by '-', RECPW_CANON_LEN
 * + 1 bytes) and returns 0. Otherwise KW_ERR_INVALID with msg naming the
 * fault: a character that is not a digit (and where), the wrong number of
 * digits (how many), or which group (1-8) is not divisible by 11 or is
 * 720896 or more. inlen above RECPW_INPUT_MAX: KW_ERR_TOO_LARGE. */
int recpw_parse(const char *in, size_t inlen, char canon[RECPW_CANON_LEN + 1],
		char *msg, size_t msglen);

/* True when text may hold a recovery password or a part of one, so that it
 * must not be kept as typed (in the audit trail, say): a run of 13 or more
 * digits; a group of exactly 6 digits between separators (anything but a
 * digit or an ASCII letter: hyphens, white space, dots, an en dash …) or
 * the ends that is a valid password group; or 12 or more digits with
 * nothing but separators around them. A key ID's format (groups of
 * 8-4-4-4-12 hex digits) never looks like this but for rare IDs with no
 * letters, or a rare run of 13 decimal digits when typed without hyphens. */
bool recpw_may_contain(const char *text);

/* The 16-byte key a valid canonical password encodes (group / 11, each
 * little-endian), as BitLocker derives it. */
void recpw_to_key(const char canon[RECPW_CANON_LEN], uint8_t key[16]);

/* Canonical password for 16 bytes: used to make recovery passwords (agent,
 * demo data) from random bytes. */
void recpw_from_key(const uint8_t key[16], char canon[RECPW_CANON_LEN + 1]);

#endif
