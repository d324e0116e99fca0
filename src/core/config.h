/* keywarden.conf (SPEC §10): keywarden's keys in one table read by the INI
 * engine (util/ini.h). Every key is known; an unknown key or a bad value
 * is an error naming file, line and reason. Values are checked by their
 * owners: identity domains by core/identity, the database URL by the store,
 * sign-in backends by auth, [ldap] by auth/ldap_conf, role names by
 * core/role. */
#ifndef KW_CORE_CONFIG_H
#define KW_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/ldap_conf.h"
#include "core/identity.h"
#include "core/role.h"
#include "util/ini.h"

#define CONFIG_MAX_PROXIES 32

/* Strings are never NULL ("" when unset), except tls_certificate and tls_key,
 * which are NULL when unset. */
struct config {
	char *path;                       /* file read, or NULL for defaults */

	/* [server] */
	char *listen;                     /* "127.0.0.1:8080", "[::1]:8443" */
	char *tls_certificate;            /* NULL when unset */
	char *tls_key;
	bool allow_plain_http;
	char *trusted_proxies;            /* comma-separated addresses and CIDR ranges */
	int64_t worker_threads;           /* handler threads; 0 = automatic */
	int64_t max_connections;
	int64_t max_connections_per_address; /* open connections from one client
					      * address (trusted proxies exempt) */

	/* [storage] */
	char *database;                   /* "sqlite:/path" or "postgresql://…" */
	char *key_file;

	/* [portal] */
	struct ini_text company_name;
	struct ini_text helpdesk_text;
	struct ini_text helpdesk_url;
	bool display_notice;
	char *notice_file;
	int64_t session_idle_timeout;     /* seconds; 0 = none */
	int64_t session_warning;
	int64_t session_max_lifetime;
	int64_t stale_after;              /* compliance: "unknown" after this */

	/* [limits] */
	struct ini_rate lookup_failures;
	struct ini_rate lookup_failures_per_address;
	struct ini_rate login_failures;

	/* [auth] */
	struct ini_list backends;         /* sign-in backends built into this
					   * keywarden, in order: "local" */

	/* [ldap] */
	struct ldap_conf ldap;

	/* [roles]: directory group DN per role, in role_list order */
	char *role_groups[ROLE_COUNT];

	/* [identity] */
	struct identity_domains domains;
};

/* Fills cfg with the defaults of SPEC §10. Returns 0 or KW_ERR_NOMEM. */
int config_defaults(struct config *cfg);

/* Reads path over the defaults: cfg must hold config_defaults() (or an
 * earlier load); only the keys in the file change, and cfg->path is set.
 * On failure returns KW_ERR_IO (cannot open or read) or KW_ERR_INVALID and
 * writes "FILE:LINE: reason" to msg (ini_load says more). cfg is left
 * valid for config_free in every case. */
int config_load(struct config *cfg, const char *path, char *msg, size_t msglen);

/* Checks the combination of values (TLS pairs, listen address and
 * allow_plain_http, database scheme, [ldap]...), and the values again for
 * a cfg changed by hand. 0 or KW_ERR_INVALID with msg (the reason alone:
 * the caller adds the file name). */
int config_validate(const struct config *cfg, char *msg, size_t msglen);

/* Parses cfg->listen ("127.0.0.1:8080", "[::1]:8443", "localhost:8080")
 * into a numeric host ("localhost" gives "127.0.0.1", brackets removed)
 * and a port. Returns 0 or KW_ERR_INVALID (bad value or hostlen too small). */
int config_listen_addr(const struct config *cfg, char *host, size_t hostlen,
		       uint16_t *port);

/* Is host a numeric loopback address (127.0.0.0/8, ::1, ::ffff:127.x)? */
bool config_host_is_loopback(const char *host);

/* cfg->trusted_proxies parsed into out (room for CONFIG_MAX_PROXIES);
 * returns how many, or KW_ERR_INVALID for a value config_load would refuse. */
int config_proxies(const struct config *cfg, struct ini_cidr out[CONFIG_MAX_PROXIES]);

/* Writes the effective configuration as INI text (for `config check`);
 * config_load reads it back to the same values. */
struct buf;
int config_dump(const struct config *cfg, struct buf *out);

/* Safe on a zeroed cfg, on NULL and twice. */
void config_free(struct config *cfg);

#endif
