/* Fuzzes the recovery password parser and its key conversions: no input
 * may crash them, an accepted password is canonical, and password and key
 * convert into each other without loss. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/recpw.h"
#include "util/err.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_canonical(const char *canon)
{
	CHECK(strlen(canon) == RECPW_CANON_LEN);
	for (size_t i = 0; i < RECPW_CANON_LEN; i++) {
		if (i % 7 == 6)
			CHECK(canon[i] == '-');
		else
			CHECK(canon[i] >= '0' && canon[i] <= '9');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char canon[RECPW_CANON_LEN + 1], canon2[RECPW_CANON_LEN + 1];
	char msg[256], tiny[8];
	uint8_t key[16], key2[16];
	int r;

	/* Any 16 bytes make a password the parser accepts and that maps back
	 * to the same bytes. */
	if (size >= sizeof(key)) {
		recpw_from_key(data, canon);
		check_canonical(canon);
		CHECK(recpw_parse(canon, RECPW_CANON_LEN, canon2, NULL, 0) == 0);
		CHECK(strcmp(canon, canon2) == 0);
		recpw_to_key(canon, key);
		CHECK(memcmp(key, data, sizeof(key)) == 0);
	}

	r = recpw_parse(in, size, canon, msg, sizeof(msg));
	CHECK(r == 0 || r == KW_ERR_INVALID || r == KW_ERR_TOO_LARGE);
	CHECK((r == KW_ERR_TOO_LARGE) == (size > RECPW_INPUT_MAX));
	CHECK(strlen(msg) < sizeof(msg));
	CHECK(r == 0 ? msg[0] == '\0' : msg[0] != '\0');
	CHECK(recpw_parse(in, size, canon2, NULL, 0) == r);
	CHECK(recpw_parse(in, size, canon2, tiny, size % sizeof(tiny)) == r);
	if (r != 0)
		return 0;

	check_canonical(canon);
	CHECK(recpw_parse(canon, RECPW_CANON_LEN, canon2, NULL, 0) == 0);
	CHECK(strcmp(canon, canon2) == 0);
	recpw_to_key(canon, key);
	recpw_from_key(key, canon2);
	CHECK(strcmp(canon, canon2) == 0);
	recpw_to_key(canon2, key2);
	CHECK(memcmp(key, key2, sizeof(key)) == 0);
	return 0;
}
