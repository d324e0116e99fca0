#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <sodium.h>

#include "core/recpw.h"
#include "util/err.h"

/* The two valid passwords published in SPEC §1, and the keys they encode
 * (group / 11, low byte first), worked out independently of recpw.c. */
#define PW1 "496298-461032-321464-595518-463221-173943-033616-139579"
#define PW2 "471207-278498-422125-177177-561902-537405-468006-693451"
static const uint8_t key1[16] = {
	0x3e, 0xb0, 0xb8, 0xa3, 0x28, 0x72, 0x7a, 0xd3,
	0x7f, 0xa4, 0xc5, 0x3d, 0xf0, 0x0b, 0x91, 0x31,
};
static const uint8_t key2[16] = {
	0x55, 0xa7, 0xe6, 0x62, 0xe7, 0x95, 0xeb, 0x3e,
	0x8a, 0xc7, 0xd7, 0xbe, 0x32, 0xa6, 0x41, 0xf6,
};

static int parse(const char *in, char canon[RECPW_CANON_LEN + 1], char *msg,
		 size_t msglen)
{
	return recpw_parse(in, strlen(in), canon, msg, msglen);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void test_published_vectors(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(parse(PW1, canon, msg, sizeof(msg)), 0);
	assert_string_equal(canon, PW1);
	assert_string_equal(msg, "");
	assert_int_equal(parse(PW2, canon, msg, sizeof(msg)), 0);
	assert_string_equal(canon, PW2);
}

static void test_separators_ignored(void **state)
{
	char canon[RECPW_CANON_LEN + 1];

	assert_int_equal(parse("496298461032321464595518463221173943033616139579",
			       canon, NULL, 0), 0);
	assert_string_equal(canon, PW1);
	assert_int_equal(parse(" 496298 461032\t321464\r\n595518-463221 - 173943"
			       "  033616\n139579\n", canon, NULL, 0), 0);
	assert_string_equal(canon, PW1);
	/* Separators need not fall between groups. */
	assert_int_equal(parse("4962-9846 1032-321464595518463221173943033616139-579",
			       canon, NULL, 0), 0);
	assert_string_equal(canon, PW1);
}

static void test_to_key_vectors(void **state)
{
	uint8_t key[16];

	recpw_to_key(PW1, key);
	assert_memory_equal(key, key1, sizeof(key));
	recpw_to_key(PW2, key);
	assert_memory_equal(key, key2, sizeof(key));
}

static void test_from_key_vectors(void **state)
{
	char canon[RECPW_CANON_LEN + 1];

	recpw_from_key(key1, canon);
	assert_string_equal(canon, PW1);
	recpw_from_key(key2, canon);
	assert_string_equal(canon, PW2);
}

static void test_group_limits(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	/* 720885 = 11 * 65535, the largest valid group. */
	assert_int_equal(parse("720885-461032-321464-595518-463221-173943-033616-139579",
			       canon, msg, sizeof(msg)), 0);
	assert_string_equal(canon,
		"720885-461032-321464-595518-463221-173943-033616-139579");
	/* 000000 = 11 * 0, the smallest. */
	assert_int_equal(parse("000000-000000-000000-000000-000000-000000-000000-000000",
			       canon, msg, sizeof(msg)), 0);
	/* 720896 = 11 * 65536: divisible, but one past 16 bits. */
	assert_int_equal(parse("496298-461032-321464-595518-720896-173943-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg,
		"Group 5 (720896) is too large: each group must be below 720896.");
	/* 720895 is below the limit but leaves 10 over 11. */
	assert_int_equal(parse("496298-461032-321464-595518-720895-173943-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "Group 5 (720895) is not divisible by 11.");
	/* 999999 = 11 * 90909: divisible, too large. */
	assert_int_equal(parse("496298-461032-321464-595518-463221-173943-033616-999999",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "Group 8 (999999) is too large");
}

static void test_not_divisible(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(parse("311111-461032-321464-595518-463221-173943-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "Group 1 (311111) is not divisible by 11.");
	assert_int_equal(parse("496298-461032-311111-595518-463221-173943-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "Group 3 (311111) is not divisible by 11.");
	/* Leading zeros are shown as typed. */
	assert_int_equal(parse("496298-461032-321464-595518-463221-173943-033616-000001",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "Group 8 (000001) is not divisible by 11.");
	/* A typo in one digit of a valid password is caught. */
	assert_int_equal(parse("496298-461032-321464-595518-463221-173943-033617-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "Group 7 (033617)");
}

static void test_first_failing_group_reported(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	/* Group 2 too large, group 3 not divisible, group 6 both. */
	assert_int_equal(parse("496298-999999-311111-595518-463221-800000-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "Group 2 (999999)");
	assert_int_equal(parse("496298-461032-311111-595518-463221-800000-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "Group 3 (311111)");
	/* A group both too large and not divisible: size is reported. */
	assert_int_equal(parse("496298-461032-321464-595518-463221-800000-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg,
		"Group 6 (800000) is too large: each group must be below 720896.");
}

static void test_digit_count(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	/* 47 digits: last group short. */
	assert_int_equal(parse("496298-461032-321464-595518-463221-173943-033616-13957",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg,
		"A recovery password has 48 digits; you entered 47.");
	/* 49 digits. */
	assert_int_equal(parse(PW1 "0", canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg,
		"A recovery password has 48 digits; you entered 49.");
	/* The count is checked before the groups: 311111 is not named. */
	assert_int_equal(parse("311111-461032", canon, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "you entered 12");
	assert_null(strstr(msg, "Group"));
}

static void test_empty(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(parse("", canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "Enter the recovery password.");
	assert_int_equal(parse(" - \n", canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "Enter the recovery password.");
}

static void test_letters_rejected(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	assert_int_equal(parse("496298-46I032-321464-595518-463221-173943-033616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg,
		"The recovery password may contain only the digits 0-9; 'I' at position 10 is not allowed.");
	/* Letter O for zero, a common slip. */
	assert_int_equal(parse("496298-461032-321464-595518-463221-173943-O33616-139579",
			       canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "'O' at position 43");
	/* Braces are fine in a key ID, not here. */
	assert_int_equal(parse("{" PW1 "}", canon, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "'{' at position 1");
	/* The character check comes before the digit count. */
	assert_int_equal(parse("12a", canon, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "'a' at position 3");
}

static void test_unprintable_not_quoted(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];
	static const char nul[] = "496298\0" "461032";
	/* U+2013 EN DASH (0xe2 0x80 0x93) in place of a hyphen. */
	static const char dash[] = "496298\xe2\x80\x93" "461032";

	assert_int_equal(recpw_parse(nul, sizeof(nul) - 1, canon, msg,
				     sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "the character at position 7 is not allowed");
	assert_int_equal(recpw_parse(dash, sizeof(dash) - 1, canon, msg,
				     sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "the character at position 7 is not allowed");
}

static void test_input_cap(void **state)
{
	char in[RECPW_INPUT_MAX + 2];
	char canon[RECPW_CANON_LEN + 1];
	char msg[256];

	/* A valid password padded with spaces to exactly the cap. */
	memset(in, ' ', sizeof(in));
	memcpy(in, PW1, RECPW_CANON_LEN);
	assert_int_equal(recpw_parse(in, RECPW_INPUT_MAX, canon, msg,
				     sizeof(msg)), 0);
	assert_string_equal(canon, PW1);
	/* One byte more: refused. */
	assert_int_equal(recpw_parse(in, RECPW_INPUT_MAX + 1, canon, msg,
				     sizeof(msg)), KW_ERR_TOO_LARGE);
	assert_contains(msg, "too long");
}

static void test_uses_inlen(void **state)
{
	char canon[RECPW_CANON_LEN + 1];

	/* The trailing "x" is outside inlen. */
	assert_int_equal(recpw_parse(PW1 "x", RECPW_CANON_LEN, canon, NULL, 0), 0);
	assert_string_equal(canon, PW1);
}

static void test_null_msg(void **state)
{
	char canon[RECPW_CANON_LEN + 1];
	char msg[4] = "xyz";

	assert_int_equal(parse("311111-461032-321464-595518-463221-173943-033616-139579",
			       canon, NULL, 0), KW_ERR_INVALID);
	assert_int_equal(parse("12a", canon, NULL, 0), KW_ERR_INVALID);
	assert_int_equal(parse("123", canon, NULL, 0), KW_ERR_INVALID);
	assert_int_equal(parse(PW2, canon, NULL, 0), 0);
	assert_string_equal(canon, PW2);
	assert_int_equal(parse("12a", canon, msg, 0), KW_ERR_INVALID);
	assert_string_equal(msg, "xyz");
}

static void test_failure_leaves_output(void **state)
{
	char canon[RECPW_CANON_LEN + 1] = "UNTOUCHED";

	assert_int_equal(parse("311111-461032-321464-595518-463221-173943-033616-139579",
			       canon, NULL, 0), KW_ERR_INVALID);
	assert_string_equal(canon, "UNTOUCHED");
}

static void test_from_key_edges(void **state)
{
	uint8_t key[16], back[16];
	char canon[RECPW_CANON_LEN + 1];

	/* All 0x0000: zero-padded groups. */
	memset(key, 0, sizeof(key));
	recpw_from_key(key, canon);
	assert_string_equal(canon,
		"000000-000000-000000-000000-000000-000000-000000-000000");
	recpw_to_key(canon, back);
	assert_memory_equal(back, key, sizeof(key));

	/* All 0xffff: the largest group, 720885. */
	memset(key, 0xff, sizeof(key));
	recpw_from_key(key, canon);
	assert_string_equal(canon,
		"720885-720885-720885-720885-720885-720885-720885-720885");
	recpw_to_key(canon, back);
	assert_memory_equal(back, key, sizeof(key));

	/* Byte order: 0x0001 stored as 01 00 is 11; as 00 01 it is 256*11. */
	memset(key, 0, sizeof(key));
	key[0] = 0x01;
	key[3] = 0x01;
	recpw_from_key(key, canon);
	assert_string_equal(canon,
		"000011-002816-000000-000000-000000-000000-000000-000000");
	recpw_to_key(canon, back);
	assert_memory_equal(back, key, sizeof(key));
}

static void test_round_trip_random(void **state)
{
	uint8_t key[16], back[16];
	char canon[RECPW_CANON_LEN + 1];
	char parsed[RECPW_CANON_LEN + 1];
	char msg[256];

	assert_true(sodium_init() >= 0);
	for (int i = 0; i < 2000; i++) {
		randombytes_buf(key, sizeof(key));
		recpw_from_key(key, canon);
		assert_int_equal(strlen(canon), RECPW_CANON_LEN);
		/* Every generated password must be one the parser accepts. */
		if (recpw_parse(canon, strlen(canon), parsed, msg,
				sizeof(msg)) != 0)
			fail_msg("%s rejected: %s", canon, msg);
		assert_string_equal(parsed, canon);
		recpw_to_key(parsed, back);
		assert_memory_equal(back, key, sizeof(key));
	}
}

/* What must not be kept as typed: passwords and parts of them, long digit
 * strings; what may: key IDs and their prefixes, ordinary mistakes. */
static void test_may_contain(void **state)
{
	static const char *const yes[] = {
		"496298-461032-321464-595518-463221-173943-033616-139579",
		"496298461032321464595518463221173943033616139579",
		"496298 461032 321464",
		"{496298}",
		"496298",                       /* one valid group alone */
		"x 496298",                     /* a group between separators */
		"1234567890123",                /* 13 digits in a row */
		"123456-789012",                /* 12 digits and separators only */
		"12345678-1234-1234-1234-123456789012",   /* a key ID without letters */
		"471207-278498-422125-177177-561902-537405-468006-693451x",
		"496298\xe2\x80\x93" "461032",        /* an en dash between groups */
		"496298\xc2\xa0" "461032",             /* a no-break space */
		"496298.461032", "496298_x", "496298,",
	};
	static const char *const no[] = {
		"", "4290B6C0", "4290B6C0-B17A-497A-8552-272CC30E80D4",
		"12345678-1234-1234-1234-12345678901A",   /* key ID groups: 8, 4 and 12 */
		"123456",                       /* not divisible by 11 */
		"12345678", "12345678901",      /* a prefix of digits */
		"720896",                       /* 11 x 65536: above the last group */
		"A496298", "496298B",           /* digits run into letters */
		"12345678901X", "XYZ-not-a-key",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!recpw_may_contain(yes[i]))
			fail_msg("%s should count as a possible password", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (recpw_may_contain(no[i]))
			fail_msg("%s should not count as a possible password", no[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_vectors),
		cmocka_unit_test(test_separators_ignored),
		cmocka_unit_test(test_to_key_vectors),
		cmocka_unit_test(test_from_key_vectors),
		cmocka_unit_test(test_group_limits),
		cmocka_unit_test(test_not_divisible),
		cmocka_unit_test(test_first_failing_group_reported),
		cmocka_unit_test(test_digit_count),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_letters_rejected),
		cmocka_unit_test(test_unprintable_not_quoted),
		cmocka_unit_test(test_input_cap),
		cmocka_unit_test(test_uses_inlen),
		cmocka_unit_test(test_null_msg),
		cmocka_unit_test(test_failure_leaves_output),
		cmocka_unit_test(test_from_key_edges),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_may_contain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
