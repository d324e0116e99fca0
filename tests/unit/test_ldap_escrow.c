/* The parts of import ldap that need no directory (auth/ldap_escrow.c):
 * Windows GUID byte order, Active Directory's GeneralizedTime, the key ID
 * in a recovery object's name. Against a real directory:
 * tests/integration/test_import_ldap.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "auth/ldap_escrow.h"
#include "util/err.h"

static void test_guid_byte_order(void **state)
{
	/* {12345678-9ABC-DEF0-1122-334455667788} as Windows stores it. */
	static const uint8_t b[16] = { 0x78, 0x56, 0x34, 0x12, 0xbc, 0x9a, 0xf0, 0xde,
				       0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };
	char out[KEYID_CANON_LEN + 1];

	(void)state;
	ldap_escrow_guid(b, out);
	assert_string_equal(out, "12345678-9ABC-DEF0-1122-334455667788");
}

static void expect_time(const char *gt, const char *want)
{
	char out[LDAP_ESCROW_TIME_LEN];

	assert_int_equal(ldap_escrow_time(gt, out), 0);
	assert_string_equal(out, want);
}

static void expect_no_time(const char *gt)
{
	char out[LDAP_ESCROW_TIME_LEN];

	assert_int_equal(ldap_escrow_time(gt, out), KW_ERR_INVALID);
	assert_string_equal(out, "");
}

static void test_time(void **state)
{
	(void)state;
	expect_time("20260514182345.0Z", "2026-05-14T18:23:45Z");
	expect_time("20260514182345Z", "2026-05-14T18:23:45Z");
	expect_time("20260514182345,123Z", "2026-05-14T18:23:45Z");
	expect_no_time("");
	expect_no_time("2026051418Z");              /* no minutes and seconds */
	expect_no_time("20260514182345");           /* no zone */
	expect_no_time("20260514182345+0100");      /* an offset */
	expect_no_time("20260514182345.Z");
	expect_no_time("20260514182345.0Zjunk");
	expect_no_time("2026-05-14T18:23:45Z");
	expect_no_time("20260514182345.1234567890Z");
}

static int name_guid(const char *v, char out[KEYID_CANON_LEN + 1])
{
	return ldap_escrow_name_guid(v, strlen(v), out);
}

static void test_name_guid(void **state)
{
	char out[KEYID_CANON_LEN + 1];

	(void)state;
	assert_int_equal(name_guid("2026-05-14T10:23:45-08:00{12345678-9abc-DEF0-1122-"
				   "334455667788}", out), 0);
	assert_string_equal(out, "12345678-9ABC-DEF0-1122-334455667788");
	assert_int_equal(name_guid("{12345678-9ABC-DEF0-1122-334455667788}", out), 0);
	assert_int_equal(name_guid("2026-05-14T10:23:45-08:00", out), KW_ERR_INVALID);
	assert_string_equal(out, "");
	assert_int_equal(name_guid("x{12345678-9ABC-DEF0-1122-33445566778}", out),
			 KW_ERR_INVALID);
	assert_int_equal(name_guid("x{12345678-9ABC-DEF0-1122-334455667788} ", out),
			 KW_ERR_INVALID);
	assert_int_equal(name_guid("x{12345678-9ABC-DEF0-1122-33445566778Z}", out),
			 KW_ERR_INVALID);
	assert_int_equal(name_guid("x(12345678-9ABC-DEF0-1122-334455667788}", out),
			 KW_ERR_INVALID);
	assert_int_equal(name_guid("}", out), KW_ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guid_byte_order),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_name_guid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
