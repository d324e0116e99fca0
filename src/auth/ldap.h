/* The directory sign-in backend (auth/ldap.c; the backend itself is
 * auth_ldap in auth/auth.h). What is declared here is its one pure part,
 * for the unit tests. */
#ifndef KW_AUTH_LDAP_H
#define KW_AUTH_LDAP_H

#include <stdbool.h>
#include <stddef.h>

#include <ldap.h>

#include "core/config.h"

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

/* dn in LDAPv3 form, spaces and escapes normalized, for a case-insensitive
 * comparison. A malloc'd string, or NULL (not a DN, or out of memory). */
char *auth_ldap_dn_norm(const char *dn);

/* A connection to [ldap] for a task that reads the directory (import
 * ldap), set up as a sign-in's is (the same checks of [ldap], certificates
 * always checked, StartTLS, the service account's bind, the watchdog);
 * each step (connecting, each page of a search) gets [ldap] timeout. */
struct ldap_dir;

/* Checks cfg's [ldap] (uri and base_dn needed), connects and binds. 0 with
 * *out (ldap_dir_close); KW_ERR_INVALID (the settings), KW_ERR_UNAVAILABLE
 * (the directory: down, slow, TLS, the service account refused) or
 * KW_ERR_NOMEM, with the reason in why (never the password). */
int ldap_dir_open(const struct config *cfg, struct ldap_dir **out, char *why, size_t whylen);

/* Searches the subtree under base (NULL: [ldap] base_dn) with the paged
 * results control (RFC 2696), and calls each on every entry; a negative
 * return from each stops the search and is returned. 0;
 * KW_ERR_NOT_FOUND (base is not there), KW_ERR_UNAVAILABLE or
 * KW_ERR_TOO_LARGE, with ldap_dir_why. */
int ldap_dir_search(struct ldap_dir *d, const char *base, const char *filter,
		    char **attrs, int (*each)(struct ldap_dir *, LDAPMessage *, void *),
		    void *arg);

/* The handle, for reading the entries passed to each (ldap_get_values_len). */
LDAP *ldap_dir_handle(struct ldap_dir *d);

/* Why the last call failed, for a message. */
const char *ldap_dir_why(const struct ldap_dir *d);

/* Accepts NULL. */
void ldap_dir_close(struct ldap_dir *d);

#endif
