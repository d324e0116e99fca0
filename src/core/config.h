/* keywarden.conf: INI read with libinih (SPEC §10). Every key is known;
 * an unknown key or a bad value is an error naming file, line and reason. */
#ifndef KW_CORE_CONFIG_H
#define KW_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "N/DURATION": at most count events per window seconds. */
struct rate_limit {
	int64_t count;
	int64_t window;
};

/* A value with per-language variants: "key" and "key.sv". */
#define CONFIG_MAX_LANG 4
struct lang_text {
	char *def;                        /* the plain key; may be "" */
	struct {
		char lang[8];             /* "sv", "sv-SE" */
		char *text;
	} var[CONFIG_MAX_LANG];
	size_t nvar;
};

#define CONFIG_MAX_DOMAINS 16
#define CONFIG_MAX_BACKENDS 4
#define CONFIG_MAX_PROXIES 32

/* One entry of trusted_proxies: an address ("10.0.0.7", "::1") or a CIDR
 * range ("10.0.0.0/8", "fd00::/8"). */
struct config_cidr {
	int family;                       /* AF_INET or AF_INET6 */
	unsigned char addr[16];           /* network order; 4 bytes for AF_INET */
	unsigned bits;                    /* prefix length: 32 or 128 for one address */
};

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
	struct lang_text company_name;
	struct lang_text helpdesk_text;
	struct lang_text helpdesk_url;
	bool display_notice;
	char *notice_file;
	int64_t session_idle_timeout;     /* seconds; 0 = none */
	int64_t session_warning;
	int64_t session_max_lifetime;
	int64_t stale_after;              /* compliance: "unknown" after this */

	/* [limits] */
	struct rate_limit lookup_failures;
	struct rate_limit lookup_failures_per_address;
	struct rate_limit login_failures;

	/* [auth] */
	char *backends[CONFIG_MAX_BACKENDS]; /* "local", "ldap" in order */
	size_t nbackends;

	/* [ldap] */
	char *ldap_uri;
	char *ldap_base_dn;
	char *ldap_bind_dn;
	char *ldap_bind_password_file;
	char *ldap_user_filter;
	char *ldap_netbios_domain;
	bool ldap_starttls;
	int64_t ldap_timeout;

	/* [roles]: directory group DNs per role */
	char *role_groups[4];             /* helpdesk, helpdesk_admin, reports, admin */

	/* [identity] domains = CORP:corp.example.com, … */
	struct {
		char netbios[64];
		char dns[256];
	} domains[CONFIG_MAX_DOMAINS];
	size_t ndomains;
};

/* Fills cfg with the defaults of SPEC §10. Returns 0 or KW_ERR_NOMEM. */
int config_defaults(struct config *cfg);

/* Reads path over the defaults: cfg must hold config_defaults() (or an
 * earlier load); only the keys in the file change, and cfg->path is set.
 * On failure returns KW_ERR_IO (cannot open or read) or KW_ERR_INVALID and
 * writes "FILE:LINE: reason" to msg. cfg is left valid for config_free in
 * every case. Lines are at most 4096 bytes, fewer when libinih is built with
 * a smaller INI_MAX_LINE (Debian: 198); indented lines are not
 * continuations. */
int config_load(struct config *cfg, const char *path, char *msg, size_t msglen);

/* Checks the combination of values (TLS pairs, listen address and
 * allow_plain_http, database scheme...). 0 or KW_ERR_INVALID with msg (the
 * reason alone: the caller adds the file name). */
int config_validate(const struct config *cfg, char *msg, size_t msglen);

/* Parses cfg->listen ("127.0.0.1:8080", "[::1]:8443", "localhost:8080")
 * into a numeric host ("localhost" gives "127.0.0.1", brackets removed)
 * and a port. Returns 0 or KW_ERR_INVALID (bad value or hostlen too small). */
int config_listen_addr(const struct config *cfg, char *host, size_t hostlen,
		       uint16_t *port);

/* Parses one trusted_proxies entry: an IPv4 or IPv6 address, optionally
 * with "/BITS". Host bits beyond the prefix must be zero. Returns 0 or
 * KW_ERR_INVALID. */
int config_cidr_parse(const char *s, struct config_cidr *out);

/* Does the range hold the address (family AF_INET with 4 bytes or AF_INET6
 * with 16)? An IPv4-mapped IPv6 address (::ffff:10.0.0.7) counts as the
 * IPv4 address. */
bool config_cidr_contains(const struct config_cidr *range, int family,
			  const unsigned char *addr);

/* cfg->trusted_proxies parsed into out (room for CONFIG_MAX_PROXIES);
 * returns how many, or KW_ERR_INVALID for a value config_load would refuse. */
int config_proxies(const struct config *cfg, struct config_cidr out[CONFIG_MAX_PROXIES]);

/* Writes the effective configuration as INI text (for `config check`). */
struct buf;
int config_dump(const struct config *cfg, struct buf *out);

/* The variant for lang ("sv-SE" tries "sv-SE" then "sv"), else the default. */
const char *config_text(const struct lang_text *t, const char *lang);

void config_free(struct config *cfg);

#endif
