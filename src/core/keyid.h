/* BitLocker recovery key IDs (protector GUIDs): 32 hex digits, shown
 * canonically as upper-case 8-4-4-4-12. SPEC §1. */
#ifndef KW_CORE_KEYID_H
#define KW_CORE_KEYID_H

#include <stddef.h>

#define KEYID_HEX_LEN 32        /* digits in a full ID */
#define KEYID_CANON_LEN 36      /* "4290B6C0-B17A-497A-8552-272CC30E80D4" */
#define KEYID_PREFIX_MIN 8      /* fewest digits accepted as a prefix */
#define KEYID_INPUT_MAX 128     /* longest input looked at, separators included */

/* Parses a prefix typed by a person: case-insensitive, hyphens, braces and
 * white space ignored. On success writes the upper-case digits to hex
 * (NUL-terminated, KEYID_HEX_LEN + 1 bytes) and their count to *len, and
 * returns 0. Fewer than 8 or more than 32 digits, or any other character:
 * KW_ERR_INVALID with a sentence for the user in msg (which character,
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
