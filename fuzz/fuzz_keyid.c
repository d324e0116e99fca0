/* Fuzzes the recovery key ID parsers: whatever the bytes, they must not
 * crash, and whatever they accept must be canonical and stable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/keyid.h"
#include "util/err.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_upper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Upper-case 8-4-4-4-12. */
static void check_canonical(const char *canon)
{
	CHECK(strlen(canon) == KEYID_CANON_LEN);
	for (size_t i = 0; i < KEYID_CANON_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			CHECK(canon[i] == '-');
		else
			CHECK(is_upper_hex(canon[i]));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char hex[KEYID_HEX_LEN + 1], hex2[KEYID_HEX_LEN + 1];
	char canon[KEYID_CANON_LEN + 1], canon2[KEYID_CANON_LEN + 1];
	char msg[256], tiny[8];
	size_t len = 0, len2 = 0;
	int rp, rf;

	rp = keyid_parse_prefix(in, size, hex, &len, msg, sizeof(msg));
	CHECK(rp == 0 || rp == KW_ERR_INVALID || rp == KW_ERR_TOO_LARGE);
	CHECK((rp == KW_ERR_TOO_LARGE) == (size > KEYID_INPUT_MAX));
	/* A failure always explains itself; a success leaves no message. */
	CHECK(strlen(msg) < sizeof(msg));
	CHECK(rp == 0 ? msg[0] == '\0' : msg[0] != '\0');

	/* The result does not depend on whether a message is wanted, nor
	 * on how small its buffer is. */
	CHECK(keyid_parse_prefix(in, size, hex2, &len2, NULL, 0) == rp);
	CHECK(keyid_parse_prefix(in, size, hex2, &len2, tiny,
				 size % sizeof(tiny)) == rp);

	rf = keyid_parse(in, size, canon, msg, sizeof(msg));
	if (rp != 0) {
		/* Whatever is not a prefix is not a full ID either. */
		CHECK(rf == rp);
		return 0;
	}

	CHECK(len >= KEYID_PREFIX_MIN && len <= KEYID_HEX_LEN);
	CHECK(strlen(hex) == len);
	for (size_t i = 0; i < len; i++)
		CHECK(is_upper_hex(hex[i]));
	/* The digits parsed are canonical: they parse to themselves. */
	CHECK(keyid_parse_prefix(hex, len, hex2, &len2, NULL, 0) == 0);
	CHECK(len2 == len && memcmp(hex, hex2, len + 1) == 0);

	CHECK((rf == 0) == (len == KEYID_HEX_LEN));
	if (rf != 0)
		return 0;
	check_canonical(canon);
	keyid_format(hex, canon2);
	CHECK(strcmp(canon, canon2) == 0);
	keyid_to_hex(canon, hex2);
	CHECK(strcmp(hex, hex2) == 0);
	CHECK(keyid_parse(canon, KEYID_CANON_LEN, canon2, NULL, 0) == 0);
	CHECK(strcmp(canon, canon2) == 0);
	return 0;
}
