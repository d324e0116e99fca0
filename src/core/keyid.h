/* BitLocker recovery key IDs (protector GUIDs): 32 hex digits, shown
 * canonically as upper-case 8-4-4-4-12. SPEC §1. */
#ifndef KW_CORE_KEYID_H
#define KW_CORE_KEYID_H

#include <stdbool.h>
#include <stddef.h>

#define KEYID_HEX_LEN 32        /* digits in a full ID */
#define KEYID_CANON_LEN 36      /* "4290B6C0-B17A-497A-8552-272CC30E80D4" */
#define KEYID_PREFIX_MIN 8      /* fewest digits accepted as a prefix */
#define KEYID_INPUT_MAX 128     /* longest input looked at, separators included */

/* What is wrong with a key ID as typed: a code and its arguments, for the
 * caller to put into words (web/ in the reader's language). */
enum keyid_problem {
	KEYID_OK = 0,
	KEYID_EMPTY,          /* no digits at all */
	KEYID_BAD_CHAR,       /* pos: 1-based; ch: the character when it is
			       * printable ASCII, else 0 (may be invisible) */
	KEYID_TOO_FEW,        /* digits: fewer than 8 (a prefix) or 32 (full) */
	KEYID_TOO_MANY,       /* digits: more than 32 */
	KEYID_TOO_LONG,       /* more than KEYID_INPUT_MAX bytes typed */
};

struct keyid_error {
	enum keyid_problem problem;
	size_t pos;
	char ch;
	size_t digits;
	bool full;            /* all 32 digits were required */
};

/* Parses a prefix typed by a person: as keyid_parse_prefix, with what is
 * wrong in e (may be NULL; e->problem is KEYID_OK on success). */
int keyid_check_prefix(const char *in, size_t inlen, char hex[KEYID_HEX_LEN + 1],
		       size_t *len, struct keyid_error *e);

/* The problem as one English sentence (the device API, the command line,
 * logs); "" for KEYID_OK. */
void keyid_error_text(const struct keyid_error *e, char *msg, size_t msglen);

/* Parses a prefix typed by a person: case-insensitive, hyphens, braces and
 * white space ignored. On success writes the upper-case digits to hex
 * (NUL-terminated, KEYID_HEX_LEN + 1 bytes) and their count to *len, and
 * returns 0. Fewer than 8 or more than 32 digits, or any other character:
 * KW_ERR_INVALID with keyid_error_text's sentence in msg (which character,
 * where; how many digits). inlen above KEYID_INPUT_MAX: KW_ERR_TOO_LARGE. */
int keyid_parse_prefix(const char *in, size_t inlen, char hex[KEYID_HEX_LEN + 1],
		       size_t *len, char *msg, size_t msglen);

/* Like keyid_parse_prefix but requires all 32 digits; writes the canonical
 * form (KEYID_CANON_LEN + 1 bytes). */
int keyid_parse(const char *in, size_t inlen, char canon[KEYID_CANON_LEN + 1],
		char *msg, size_t msglen);

/* Canonical form of 32 upper-case digits. */
void keyid_format(const char hex[KEYID_HEX_LEN], char canon[KEYID_CANON_LEN + 1]);

/* The 32 digits of a canonical ID (drops hyphens). */
void keyid_to_hex(const char canon[KEYID_CANON_LEN], char hex[KEYID_HEX_LEN + 1]);

#endif
