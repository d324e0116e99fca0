#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldap.h>

#include "auth/ldap_conf.h"
#include "core/config.h"
#include "core/identity.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"

static int uri_item(char *item, void *arg)
{
	if (strncasecmp(item, "ldap://", 7) == 0 ||
	    strncasecmp(item, "ldaps://", 8) == 0 ||
	    strncasecmp(item, "ldapi://", 8) == 0)
		return 0;
	*(char **)arg = item;
	return KW_ERR_INVALID;
}

int ldap_conf_check_uri(const char *v, char *why, size_t whylen)
{
	char *copy = strdup(v), *bad = NULL, q[96];
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	for (char *p = copy; *p; p++)
		if (*p == ' ' || *p == '\t')
			*p = ',';
	r = ini_each_item(copy, ',', uri_item, &bad);
	if (r < 0)
		str_msg(why, whylen, "'%s' is not an LDAP URI (use ldap://HOST, "
			"ldaps://HOST or ldapi://)", ini_quote(bad, q, sizeof(q)));
	free(copy);
	return r;
}

int ldap_conf_check_filter(const char *v, char *why, size_t whylen)
{
	char q[96];
	size_t n = strlen(v), count = 0;
	const char *p;

	for (p = strchr(v, '%'); p; p = strchr(p + 2, '%')) {
		if (p[1] != 's') {
			count = 2;
			break;
		}
		count++;
	}
	if (count == 1 && n >= 2 && v[0] == '(' && v[n - 1] == ')')
		return 0;
	str_msg(why, whylen, "'%s' must be a parenthesised LDAP filter with "
		"exactly one %%s and no other %% (e.g. (sAMAccountName=%%s))",
		ini_quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

int ldap_conf_check_netbios(const char *v, char *why, size_t whylen)
{
	char q[96];

	if (!*v || identity_netbios_ok(v, strlen(v)))
		return 0;
	str_msg(why, whylen, "'%s' is not a NetBIOS domain name (1 to 15 "
		"letters, digits, - or _)", ini_quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

/* An ldap:// URI (item) that leaves this machine: its host is neither
 * empty (libldap's default, localhost), localhost nor a loopback address. */
static int plain_item(char *item, void *arg)
{
	LDAPURLDesc *u = NULL;
	bool off;

	if (strncasecmp(item, "ldap://", 7) != 0)
		return 0;
	if (ldap_url_parse(item, &u) != LDAP_URL_SUCCESS || !u) {
		*(char **)arg = item;
		return KW_ERR_INVALID;
	}
	off = u->lud_host && *u->lud_host && strcasecmp(u->lud_host, "localhost") != 0 &&
	      !config_host_is_loopback(u->lud_host);
	ldap_free_urldesc(u);
	if (!off)
		return 0;
	*(char **)arg = item;
	return KW_ERR_INVALID;
}

int ldap_conf_validate(const struct ldap_conf *lc, char *msg, size_t msglen)
{
	char *copy, *bad = NULL, q[96];
	int r;

	str_msg_clear(msg, msglen);
	if (lc->starttls && lc->uri && strncasecmp(lc->uri, "ldaps://", 8) == 0) {
		str_msg(msg, msglen, "[ldap] starttls = true cannot be used with "
			"an ldaps:// uri");
		return KW_ERR_INVALID;
	}
	if (!lc->uri || !*lc->uri || lc->starttls)
		return 0;
	if (!(copy = strdup(lc->uri)))
		return KW_ERR_NOMEM;
	for (char *p = copy; *p; p++)
		if (*p == ' ' || *p == '\t')
			*p = ',';
	r = ini_each_item(copy, ',', plain_item, &bad);
	if (r < 0)
		str_msg(msg, msglen, "[ldap] uri '%s': plain ldap:// to another machine "
			"would send passwords in clear; use ldaps://, or starttls = true",
			ini_quote(bad, q, sizeof(q)));
	free(copy);
	return r;
}
