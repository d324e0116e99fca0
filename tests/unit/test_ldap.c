/* The directory's search filter for a typed name (auth/ldap.c): the name
 * forms, and RFC 4515 escaping that keeps every typed character a literal.
 * The backend against a real directory: tests/integration/test_ldap.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "auth/ldap.h"
#include "core/identity.h"
#include "util/err.h"

#define AD "(sAMAccountName=%s)"

static void expect_filter(const char *tmpl, const char *name, const char *want)
{
	char out[AUTH_LDAP_FILTER_MAX];

	assert_int_equal(auth_ldap_user_filter(tmpl, "CORP", "corp.example.com", name, out), 0);
	assert_string_equal(out, want);
}

static void expect_refused(const char *name, int rc)
{
	char out[AUTH_LDAP_FILTER_MAX];

	assert_int_equal(auth_ldap_user_filter(AD, "CORP", "corp.example.com", name, out), rc);
}

static void test_name_forms(void **state)
{
	char out[AUTH_LDAP_FILTER_MAX];

	(void)state;
	expect_filter(AD, "alice", "(sAMAccountName=alice)");
	expect_filter("(&(objectClass=user)(sAMAccountName=%s))", "CORP\\alice",
		      "(&(objectClass=user)(sAMAccountName=alice))");
	expect_filter(AD, "corp\\alice", "(sAMAccountName=alice)");
	expect_filter("(uid=%s)", "alice@Corp.Example.com",
		      "(|(userPrincipalName=alice@Corp.Example.com)(uid=alice))");
	expect_filter(AD, "alice@other.example", "(userPrincipalName=alice@other.example)");
	/* Without a DNS domain for CORP, a UPN is only a UPN. */
	assert_int_equal(auth_ldap_user_filter(AD, "CORP", NULL, "alice@corp.example.com",
					       out), 0);
	assert_string_equal(out, "(userPrincipalName=alice@corp.example.com)");
	/* A leading or trailing @ is no UPN: the whole is the name. */
	expect_filter(AD, "@alice", "(sAMAccountName=@alice)");
	expect_filter(AD, "alice@", "(sAMAccountName=alice@)");
}

static void test_other_domains_are_not_this_directorys(void **state)
{
	char out[AUTH_LDAP_FILTER_MAX];

	(void)state;
	expect_refused("OTHER\\alice", KW_ERR_NOT_FOUND);
	expect_refused("CORPX\\alice", KW_ERR_NOT_FOUND);
	expect_refused("COR\\alice", KW_ERR_NOT_FOUND);
	expect_refused("CORP\\", KW_ERR_NOT_FOUND);
	expect_refused("CORP\\a\\b", KW_ERR_NOT_FOUND);
	expect_refused("\\alice", KW_ERR_NOT_FOUND);
	expect_refused("", KW_ERR_NOT_FOUND);
	/* No netbios_domain: no DOMAIN\ form is this directory's. */
	assert_int_equal(auth_ldap_user_filter(AD, "", NULL, "CORP\\alice", out),
			 KW_ERR_NOT_FOUND);
}

static void test_injection_is_escaped(void **state)
{
	(void)state;
	expect_filter(AD, "*", "(sAMAccountName=\\2A)");
	expect_filter(AD, "a*", "(sAMAccountName=a\\2A)");
	expect_filter(AD, "alice)(uid=*", "(sAMAccountName=alice\\29\\28uid=\\2A)");
	expect_filter(AD, "*)(|(uid=*", "(sAMAccountName=\\2A\\29\\28|\\28uid=\\2A)");
	expect_refused("\\2a", KW_ERR_NOT_FOUND);        /* a backslash means DOMAIN\\ */
	expect_filter(AD, "CORP\\*", "(sAMAccountName=\\2A)");
	expect_filter(AD, "*@corp.example.com",
		      "(|(userPrincipalName=\\2A@corp.example.com)(sAMAccountName=\\2A))");
	expect_filter(AD, "a)(x=*@other.example",
		      "(userPrincipalName=a\\29\\28x=\\2A@other.example)");
	/* libldap escapes bytes beyond ASCII too: the same value to the server. */
	expect_filter(AD, "\xc3\xa5sa", "(sAMAccountName=\\C3\\A5sa)");
}

static void test_caps(void **state)
{
	char name[IDENTITY_NAME_MAX + 2], tmpl[AUTH_LDAP_FILTER_MAX], out[AUTH_LDAP_FILTER_MAX];

	(void)state;
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	expect_refused(name, KW_ERR_NOT_FOUND);              /* one byte too long */
	name[IDENTITY_NAME_MAX] = '\0';
	expect_refused(name, 0);
	/* Every character escaped takes three bytes: still fits. */
	memset(name, '*', IDENTITY_NAME_MAX);
	expect_refused(name, 0);
	/* A template that leaves no room for the name: too large, no output. */
	memset(tmpl, 'x', sizeof(tmpl) - 8);
	memcpy(tmpl + sizeof(tmpl) - 8, "(a=%s)", 7);
	assert_int_equal(auth_ldap_user_filter(tmpl, "CORP", NULL, "alice", out),
			 KW_ERR_TOO_LARGE);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_forms),
		cmocka_unit_test(test_other_domains_are_not_this_directorys),
		cmocka_unit_test(test_injection_is_escaped),
		cmocka_unit_test(test_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
