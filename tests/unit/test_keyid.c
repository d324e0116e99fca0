#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/keyid.h"
#include "util/err.h"

#define FULL_CANON "4290B6C0-B17A-497A-8552-272CC30E80D4"
#define FULL_HEX "4290B6C0B17A497A8552272CC30E80D4"

/* Runs keyid_parse_prefix on a C string; hex, len and msg are outputs. */
static int prefix(const char *in, char hex[KEYID_HEX_LEN + 1], size_t *len,
		  char *msg, size_t msglen)
{
	return keyid_parse_prefix(in, strlen(in), hex, len, msg, msglen);
}

static int full(const char *in, char canon[KEYID_CANON_LEN + 1], char *msg,
		size_t msglen)
{
	return keyid_parse(in, strlen(in), canon, msg, msglen);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void test_full_canonical(void **state)
{
	char canon[KEYID_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(full(FULL_CANON, canon, msg, sizeof(msg)), 0);
	assert_string_equal(canon, FULL_CANON);
	assert_string_equal(msg, "");
}

static void test_full_lower_case_and_braces(void **state)
{
	char canon[KEYID_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(full("{4290b6c0-b17a-497a-8552-272cc30e80d4}", canon,
			      msg, sizeof(msg)), 0);
	assert_string_equal(canon, FULL_CANON);
	/* Every digit and letter, in both cases. */
	assert_int_equal(full("abcdef01-2345-6789-ABCD-EFabcdef0123", canon,
			      msg, sizeof(msg)), 0);
	assert_string_equal(canon, "ABCDEF01-2345-6789-ABCD-EFABCDEF0123");
}

static void test_full_bare_digits_and_white_space(void **state)
{
	char canon[KEYID_CANON_LEN + 1];

	assert_int_equal(full(FULL_HEX, canon, NULL, 0), 0);
	assert_string_equal(canon, FULL_CANON);
	assert_int_equal(full(" 4290B6C0 b17a\t497A\r\n8552 272cc30e80d4 \n",
			      canon, NULL, 0), 0);
	assert_string_equal(canon, FULL_CANON);
	/* Separators anywhere, not only at the 8-4-4-4-12 places. */
	assert_int_equal(full("4-2-9-0-B6C0B17A497A8552272CC30E80D}{4", canon,
			      NULL, 0), 0);
	assert_string_equal(canon, FULL_CANON);
}

static void test_full_needs_32(void **state)
{
	char canon[KEYID_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(full("4290B6C0B17A", canon, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_string_equal(msg,
		"A full recovery key ID has 32 characters; you entered 12.");
	/* 31 digits: one short. */
	assert_int_equal(full("4290B6C0-B17A-497A-8552-272CC30E80D", canon,
			      msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "you entered 31");
}

static void test_full_too_many(void **state)
{
	char canon[KEYID_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(full(FULL_CANON "0", canon, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_string_equal(msg,
		"A recovery key ID has 32 characters; you entered 33.");
}

static void test_full_invalid_letter(void **state)
{
	char canon[KEYID_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(full("4290B6G0-B17A-497A-8552-272CC30E80D4", canon,
			      msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "'G' at position 7");
}

static void test_prefix_boundaries(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	char msg[256];
	size_t len = 0;

	/* 7 digits: too few. */
	assert_int_equal(prefix("4290B6C", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_string_equal(msg,
		"Enter at least the first 8 characters of the recovery key ID (you entered 7).");
	/* 8 digits: the shortest prefix. */
	assert_int_equal(prefix("4290b6c0", hex, &len, msg, sizeof(msg)), 0);
	assert_int_equal(len, 8);
	assert_string_equal(hex, "4290B6C0");
	assert_string_equal(msg, "");
	/* 31 digits. */
	assert_int_equal(prefix("4290B6C0-B17A-497A-8552-272CC30E80D", hex,
				&len, msg, sizeof(msg)), 0);
	assert_int_equal(len, 31);
	assert_string_equal(hex, "4290B6C0B17A497A8552272CC30E80D");
	/* 32 digits: an exact ID. */
	assert_int_equal(prefix("{" FULL_CANON "}", hex, &len, msg,
				sizeof(msg)), 0);
	assert_int_equal(len, 32);
	assert_string_equal(hex, FULL_HEX);
	/* 33 digits. */
	assert_int_equal(prefix(FULL_HEX "A", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_string_equal(msg,
		"A recovery key ID has 32 characters; you entered 33.");
}

static void test_prefix_counts_digits_not_separators(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	char msg[256];
	size_t len = 0;

	/* 9 characters, but only 7 digits. */
	assert_int_equal(prefix("{4290-B6C", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "(you entered 7)");
	assert_int_equal(prefix("4290-b6c0-b1", hex, &len, msg, sizeof(msg)), 0);
	assert_int_equal(len, 10);
	assert_string_equal(hex, "4290B6C0B1");
}

static void test_prefix_empty(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	char msg[256];
	size_t len = 0;

	assert_int_equal(prefix("", hex, &len, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "Enter the recovery key ID.");
	/* Separators alone are still nothing. */
	assert_int_equal(prefix(" {-} \r\n", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_string_equal(msg, "Enter the recovery key ID.");
}

static void test_prefix_non_hex(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	char msg[256];
	size_t len = 0;

	assert_int_equal(prefix("42G0B6C0", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_string_equal(msg,
		"The recovery key ID may contain only the digits 0-9 and letters A-F; 'G' at position 3 is not allowed.");
	/* Lower-case non-hex letters are rejected too, and the position
	 * counts separators as typed. */
	assert_int_equal(prefix("4290-b6c0-z", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "'z' at position 11");
	/* The first bad character is the one reported. */
	assert_int_equal(prefix("4290B6C0:x", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "':' at position 9");
	/* A bad character wins over a short count. */
	assert_int_equal(prefix("G", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "'G' at position 1");
}

static void test_prefix_unprintable_not_quoted(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	char msg[256];
	size_t len = 0;
	/* "4290B6C0" with a NUL and with a UTF-8 "é" (0xc3 0xa9) inside. */
	static const char nul[] = "4290\0B6C0";
	static const char utf8[] = "4290\xc3\xa9" "B6C0";

	assert_int_equal(keyid_parse_prefix(nul, sizeof(nul) - 1, hex, &len,
					    msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "the character at position 5 is not allowed");
	assert_int_equal(keyid_parse_prefix(utf8, sizeof(utf8) - 1, hex, &len,
					    msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "the character at position 5 is not allowed");
	/* Vertical tab and form feed are not among the ignored separators. */
	assert_int_equal(prefix("4290\vB6C0", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "position 5");
}

static void test_prefix_uses_inlen(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	size_t len = 0;

	/* Only the first 8 bytes are looked at; the G after them is not. */
	assert_int_equal(keyid_parse_prefix("4290B6C0G", 8, hex, &len, NULL, 0), 0);
	assert_int_equal(len, 8);
	assert_string_equal(hex, "4290B6C0");
}

static void test_input_cap(void **state)
{
	char in[KEYID_INPUT_MAX + 2];
	char hex[KEYID_HEX_LEN + 1];
	char canon[KEYID_CANON_LEN + 1];
	char msg[256];
	size_t len = 0;

	/* 32 digits padded with spaces to exactly the cap: accepted. */
	memset(in, ' ', sizeof(in));
	memcpy(in, FULL_HEX, KEYID_HEX_LEN);
	assert_int_equal(keyid_parse_prefix(in, KEYID_INPUT_MAX, hex, &len, msg,
					    sizeof(msg)), 0);
	assert_int_equal(len, 32);
	assert_int_equal(keyid_parse(in, KEYID_INPUT_MAX, canon, msg,
				     sizeof(msg)), 0);
	assert_string_equal(canon, FULL_CANON);
	/* One byte more: refused before it is looked at. */
	assert_int_equal(keyid_parse_prefix(in, KEYID_INPUT_MAX + 1, hex, &len,
					    msg, sizeof(msg)), KW_ERR_TOO_LARGE);
	assert_contains(msg, "too long");
	assert_int_equal(keyid_parse(in, KEYID_INPUT_MAX + 1, canon, msg,
				     sizeof(msg)), KW_ERR_TOO_LARGE);
	assert_contains(msg, "too long");
}

static void test_null_msg(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	char canon[KEYID_CANON_LEN + 1];
	char msg[4] = "xyz";
	size_t len = 0;

	assert_int_equal(prefix("42G0B6C0", hex, &len, NULL, 0), KW_ERR_INVALID);
	assert_int_equal(prefix("4290", hex, &len, NULL, 0), KW_ERR_INVALID);
	assert_int_equal(full("4290B6C0", canon, NULL, 0), KW_ERR_INVALID);
	assert_int_equal(full(FULL_CANON, canon, NULL, 0), 0);
	assert_string_equal(canon, FULL_CANON);
	/* msglen 0: msg is not touched even when not NULL. */
	assert_int_equal(prefix("42G0B6C0", hex, &len, msg, 0), KW_ERR_INVALID);
	assert_string_equal(msg, "xyz");
}

static void test_msg_truncated_safely(void **state)
{
	char hex[KEYID_HEX_LEN + 1];
	char msg[16];
	size_t len = 0;

	memset(msg, 'x', sizeof(msg));
	assert_int_equal(prefix("42G0B6C0", hex, &len, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_int_equal(strlen(msg), sizeof(msg) - 1);
	assert_memory_equal(msg, "The recovery ke", sizeof(msg) - 1);
}

static void test_failure_leaves_outputs(void **state)
{
	char hex[KEYID_HEX_LEN + 1] = "UNTOUCHED";
	char canon[KEYID_CANON_LEN + 1] = "UNTOUCHED";
	size_t len = 99;

	assert_int_equal(prefix("4290B6C", hex, &len, NULL, 0), KW_ERR_INVALID);
	assert_string_equal(hex, "UNTOUCHED");
	assert_int_equal(len, 99);
	assert_int_equal(full("4290B6C0B17A", canon, NULL, 0), KW_ERR_INVALID);
	assert_string_equal(canon, "UNTOUCHED");
}

static void test_format_and_to_hex(void **state)
{
	char canon[KEYID_CANON_LEN + 1];
	char hex[KEYID_HEX_LEN + 1];

	keyid_format(FULL_HEX, canon);
	assert_string_equal(canon, FULL_CANON);
	assert_int_equal(strlen(canon), KEYID_CANON_LEN);
	assert_true(canon[8] == '-' && canon[13] == '-' && canon[18] == '-' &&
		    canon[23] == '-');
	/* Lower-case hex (as str_hex makes) comes out upper-case. */
	keyid_format("4290b6c0b17a497a8552272cc30e80d4", canon);
	assert_string_equal(canon, FULL_CANON);
	keyid_format("abcdef0123456789abcdef0123456789", canon);
	assert_string_equal(canon, "ABCDEF01-2345-6789-ABCD-EF0123456789");

	keyid_to_hex(FULL_CANON, hex);
	assert_string_equal(hex, FULL_HEX);
	keyid_format("00000000000000000000000000000000", canon);
	assert_string_equal(canon, "00000000-0000-0000-0000-000000000000");
	keyid_to_hex(canon, hex);
	assert_string_equal(hex, "00000000000000000000000000000000");
}

static void test_prefix_of_canonical_round_trip(void **state)
{
	char canon[KEYID_CANON_LEN + 1];
	char hex[KEYID_HEX_LEN + 1];
	char back[KEYID_CANON_LEN + 1];
	size_t len = 0;

	/* What the portal does: parse a prefix, then compare the full ID. */
	assert_int_equal(prefix("{4290b6c0-b17a-497a-8552-272cc30e80d4}", hex,
				&len, NULL, 0), 0);
	keyid_format(hex, canon);
	assert_string_equal(canon, FULL_CANON);
	assert_int_equal(full(canon, back, NULL, 0), 0);
	assert_string_equal(back, canon);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_canonical),
		cmocka_unit_test(test_full_lower_case_and_braces),
		cmocka_unit_test(test_full_bare_digits_and_white_space),
		cmocka_unit_test(test_full_needs_32),
		cmocka_unit_test(test_full_too_many),
		cmocka_unit_test(test_full_invalid_letter),
		cmocka_unit_test(test_prefix_boundaries),
		cmocka_unit_test(test_prefix_counts_digits_not_separators),
		cmocka_unit_test(test_prefix_empty),
		cmocka_unit_test(test_prefix_non_hex),
		cmocka_unit_test(test_prefix_unprintable_not_quoted),
		cmocka_unit_test(test_prefix_uses_inlen),
		cmocka_unit_test(test_input_cap),
		cmocka_unit_test(test_null_msg),
		cmocka_unit_test(test_msg_truncated_safely),
		cmocka_unit_test(test_failure_leaves_outputs),
		cmocka_unit_test(test_format_and_to_hex),
		cmocka_unit_test(test_prefix_of_canonical_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
