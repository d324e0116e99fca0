#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/role.h"
#include "store/store.h"

static void test_parse_and_name(void **state)
{
	assert_int_equal(role_parse("helpdesk"), ROLE_HELPDESK);
	assert_int_equal(role_parse("helpdesk_admin"), ROLE_HELPDESK_ADMIN);
	assert_int_equal(role_parse("reports"), ROLE_REPORTS);
	assert_int_equal(role_parse("admin"), ROLE_ADMIN);
	/* Exact spelling only, as the command line always took it. */
	assert_int_equal(role_parse("Admin"), 0);
	assert_int_equal(role_parse("auditor"), 0);
	assert_int_equal(role_parse(""), 0);

	assert_string_equal(role_name(ROLE_HELPDESK_ADMIN), "helpdesk_admin");
	assert_string_equal(role_name(ROLE_ADMIN), "admin");
	assert_null(role_name(0));
	assert_null(role_name(ROLE_ADMIN | ROLE_REPORTS));
	assert_null(role_name(1u << ROLE_COUNT));
	for (unsigned i = 0; i < ROLE_COUNT; i++)
		assert_int_equal(role_parse(role_list[i]), 1u << i);
	assert_null(role_list[ROLE_COUNT]);
}

static void test_roles_text(void **state)
{
	char out[64];

	roles_text(0, out, sizeof(out));
	assert_string_equal(out, "-");
	roles_text(ROLE_ADMIN | ROLE_HELPDESK, out, sizeof(out));
	assert_string_equal(out, "helpdesk,admin");
	roles_text(ROLE_HELPDESK | ROLE_HELPDESK_ADMIN | ROLE_REPORTS | ROLE_ADMIN,
		   out, sizeof(out));
	assert_string_equal(out, "helpdesk,helpdesk_admin,reports,admin");
	/* Unknown bits are left out; a short buffer is cut, not overrun. */
	roles_text(ROLE_REPORTS | 0x100u, out, sizeof(out));
	assert_string_equal(out, "reports");
	roles_text(ROLE_HELPDESK_ADMIN | ROLE_ADMIN, out, 8);
	assert_string_equal(out, "helpdes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_name),
		cmocka_unit_test(test_roles_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
