/* [ldap]: how to reach the directory (SPEC §8). The configuration reads
 * these keys with the checks below; the LDAP sign-in backend (auth/ldap.c)
 * takes them in its open(), which also refuses an empty uri or base_dn. */
#ifndef KW_AUTH_LDAP_CONF_H
#define KW_AUTH_LDAP_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strings are never NULL ("" when unset). */
struct ldap_conf {
	char *uri;                        /* "ldap://dc1 ldap://dc2", ldaps://, ldapi:// */
	char *base_dn;
	char *bind_dn;
	char *bind_password_file;         /* a trailing newline is not part of it */
	char *user_filter;                /* "(sAMAccountName=%s)" */
	char *netbios_domain;             /* "CORP", or "" */
	bool starttls;
	int64_t timeout;                  /* seconds; also sign-in's deadline */
};

/* Checks of one value, as struct ini_key checks: 0, or KW_ERR_INVALID with
 * the reason in why (KW_ERR_NOMEM when out of memory). */

/* One or more LDAP URIs separated by spaces or commas (OpenLDAP's form),
 * each ldap://, ldaps:// or ldapi://. */
int ldap_conf_check_uri(const char *v, char *why, size_t whylen);

/* A parenthesised filter with exactly one %s (the user name) and no other
 * '%', which whoever formats the filter would take for a conversion. */
int ldap_conf_check_filter(const char *v, char *why, size_t whylen);

/* "" or a NetBIOS domain name (identity_netbios_ok). */
int ldap_conf_check_netbios(const char *v, char *why, size_t whylen);

/* The settings together: StartTLS cannot run on an ldaps:// connection,
 * which is TLS already (it would fail at every sign-in); and a plain
 * ldap:// URI without starttls must name this machine (localhost or a
 * loopback address): otherwise users' and the service account's passwords,
 * and imported recovery passwords, would cross the network in clear. 0 or
 * KW_ERR_INVALID with the reason in msg. */
int ldap_conf_validate(const struct ldap_conf *lc, char *msg, size_t msglen);

#endif
