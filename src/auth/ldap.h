/* The directory sign-in backend (auth/ldap.c; the backend itself is
 * auth_ldap in auth/auth.h). What is declared here is its one pure part,
 * for the unit tests. */
#ifndef KW_AUTH_LDAP_H
#define KW_AUTH_LDAP_H

#define AUTH_LDAP_FILTER_MAX 4096  /* a search filter built from a typed name */

/* The search filter that finds the person typed as name (at most
 * IDENTITY_NAME_MAX bytes), every part of name escaped per RFC 4515 (*, (,
 * ), \ and NUL as \2A, \28, \29, \5C, \00, by libldap):
 *   "sam"            tmpl ([ldap] user_filter, one %s) with sam;
 *   "DOMAIN\sam"     the same when DOMAIN is netbios (any case), else
 *                    KW_ERR_NOT_FOUND (not this directory's);
 *   "user@dns"       (userPrincipalName=user@dns), or, when dns is
 *                    netbios_dns (any case; NULL or "": none),
 *                    (|(userPrincipalName=user@dns)TMPL-with-user).
 * 0 with out; KW_ERR_NOT_FOUND (empty, too long, another domain, "CORP\",
 * two backslashes); KW_ERR_TOO_LARGE (the filter would not fit; out is ""). */
int auth_ldap_user_filter(const char *tmpl, const char *netbios, const char *netbios_dns,
			  const char *name, char out[AUTH_LDAP_FILTER_MAX]);

#endif
