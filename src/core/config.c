#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "auth/ldap_conf.h"
#include "core/config.h"
#include "core/identity.h"
#include "core/role.h"
#include "store/store.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"

#define TEN_YEARS (3650 * INT64_C(86400))

#define CFG_OFF(member) offsetof(struct config, member)

static int check_listen(const char *v, char *why, size_t whylen);
static int check_database(const char *v, char *why, size_t whylen);
static int check_url(const char *v, char *why, size_t whylen);

static int domains_parse(void *field, const char *v, char *why, size_t whylen)
{
	return identity_domains_parse(field, v, why, whylen);
}

static int domains_format(const void *field, bool compact, struct buf *out)
{
	return identity_domains_format(field, compact, out);
}

static const struct ini_custom domains = { domains_parse, domains_format };

/* One table drives defaults, parsing and dumping, so the three cannot
 * disagree about a key. */
static const struct ini_key keys[] = {
	{ "server", "listen", INI_STR, CFG_OFF(listen), "127.0.0.1:8080", 0, 0, check_listen, { NULL } },
	{ "server", "tls_certificate", INI_OPT, CFG_OFF(tls_certificate), "", 0, 0, NULL, { NULL } },
	{ "server", "tls_key", INI_OPT, CFG_OFF(tls_key), "", 0, 0, NULL, { NULL } },
	{ "server", "allow_plain_http", INI_BOOL, CFG_OFF(allow_plain_http), "false", 0, 0, NULL, { NULL } },
	{ "server", "trusted_proxies", INI_CIDRS, CFG_OFF(trusted_proxies), "", 0, CONFIG_MAX_PROXIES, NULL, { NULL } },
	{ "server", "worker_threads", INI_INT, CFG_OFF(worker_threads), "0", 0, 1024, NULL, { NULL } },
	{ "server", "max_connections", INI_INT, CFG_OFF(max_connections), "1024", 1, 100000, NULL, { NULL } },
	{ "server", "max_connections_per_address", INI_INT, CFG_OFF(max_connections_per_address), "128", 1, 100000, NULL, { NULL } },

	{ "storage", "database", INI_STR, CFG_OFF(database), "sqlite:/var/lib/keywarden/keywarden.db", 0, 0, check_database, { NULL } },
	{ "storage", "key_file", INI_STR, CFG_OFF(key_file), "/var/lib/keywarden/master.key", 0, 0, ini_check_nonempty, { NULL } },

	{ "portal", "company_name", INI_TEXT, CFG_OFF(company_name), "Contoso IT", 0, 0, NULL, { NULL } },
	{ "portal", "helpdesk_text", INI_TEXT, CFG_OFF(helpdesk_text), "Contact Helpdesk or IT Department", 0, 0, NULL, { NULL } },
	{ "portal", "helpdesk_url", INI_TEXT, CFG_OFF(helpdesk_url), "", 0, 0, check_url, { NULL } },
	{ "portal", "display_notice", INI_BOOL, CFG_OFF(display_notice), "true", 0, 0, NULL, { NULL } },
	{ "portal", "notice_file", INI_STR, CFG_OFF(notice_file), "/etc/keywarden/notice.txt", 0, 0, NULL, { NULL } },
	{ "portal", "session_idle_timeout", INI_DURATION, CFG_OFF(session_idle_timeout), "5m", 0, TEN_YEARS, NULL, { NULL } },
	{ "portal", "session_warning", INI_DURATION, CFG_OFF(session_warning), "60s", 0, TEN_YEARS, NULL, { NULL } },
	{ "portal", "session_max_lifetime", INI_DURATION, CFG_OFF(session_max_lifetime), "1h", 0, TEN_YEARS, NULL, { NULL } },
	{ "portal", "stale_after", INI_DURATION, CFG_OFF(stale_after), "14d", 1, TEN_YEARS, NULL, { NULL } },

	{ "limits", "lookup_failures", INI_RATE, CFG_OFF(lookup_failures), "5/15m", 0, 0, NULL, { NULL } },
	{ "limits", "lookup_failures_per_address", INI_RATE, CFG_OFF(lookup_failures_per_address), "50/15m", 0, 0, NULL, { NULL } },
	{ "limits", "login_failures", INI_RATE, CFG_OFF(login_failures), "10/15m", 0, 0, NULL, { NULL } },

	{ "auth", "backends", INI_LIST, CFG_OFF(backends), "local", 1, AUTH_MAX_BACKENDS, auth_backend_check, { NULL } },

	{ "ldap", "uri", INI_STR, CFG_OFF(ldap.uri), "", 0, 0, ldap_conf_check_uri, { NULL } },
	{ "ldap", "base_dn", INI_STR, CFG_OFF(ldap.base_dn), "", 0, 0, NULL, { NULL } },
	{ "ldap", "bind_dn", INI_STR, CFG_OFF(ldap.bind_dn), "", 0, 0, NULL, { NULL } },
	{ "ldap", "bind_password_file", INI_STR, CFG_OFF(ldap.bind_password_file), "", 0, 0, NULL, { NULL } },
	{ "ldap", "user_filter", INI_STR, CFG_OFF(ldap.user_filter), "(uid=%s)", 0, 0, ldap_conf_check_filter, { NULL } },
	{ "ldap", "netbios_domain", INI_STR, CFG_OFF(ldap.netbios_domain), "", 0, 0, ldap_conf_check_netbios, { NULL } },
	{ "ldap", "starttls", INI_BOOL, CFG_OFF(ldap.starttls), "false", 0, 0, NULL, { NULL } },
	{ "ldap", "timeout", INI_DURATION, CFG_OFF(ldap.timeout), "5s", 1, 3600, NULL, { NULL } },

	{ "roles", NULL, INI_NAMED, CFG_OFF(role_groups), "", 0, 0, NULL, { .names = role_list } },

	{ "identity", "domains", INI_CUSTOM, CFG_OFF(domains), "", 0, 0, NULL, { .custom = &domains } },
};

static const struct ini_schema schema = { keys, sizeof(keys) / sizeof(keys[0]) };

/* "HOST:PORT" with HOST an IPv4 address, [IPv6] or localhost. host gets
 * the bare numeric address. Port 0 lets the system pick a free port (the
 * server logs the one it got): handy for tests. */
static int parse_listen(const char *s, char *host, size_t hostlen,
			uint16_t *port)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *h, *end, *portstr;
	size_t n;
	int64_t p;
	bool v6 = false;

	if (!s)
		return KW_ERR_INVALID;
	if (s[0] == '[') {
		h = s + 1;
		end = strchr(h, ']');
		if (!end || end[1] != ':')
			return KW_ERR_INVALID;
		portstr = end + 2;
		v6 = true;
	} else {
		/* A bare IPv6 address would make the port ambiguous. */
		end = strchr(s, ':');
		if (!end || strchr(end + 1, ':'))
			return KW_ERR_INVALID;
		h = s;
		portstr = end + 1;
	}
	n = (size_t)(end - h);
	if (n == 0 || n >= sizeof(addr))
		return KW_ERR_INVALID;
	memcpy(addr, h, n);
	addr[n] = '\0';
	if (v6) {
		if (inet_pton(AF_INET6, addr, bin) != 1)
			return KW_ERR_INVALID;
	} else if (str_ieq(addr, "localhost")) {
		memcpy(addr, "127.0.0.1", sizeof("127.0.0.1"));
	} else if (inet_pton(AF_INET, addr, bin) != 1) {
		return KW_ERR_INVALID;
	}
	if (!*portstr || portstr[strspn(portstr, "0123456789")] ||
	    str_to_i64(portstr, 0, 65535, &p) < 0)
		return KW_ERR_INVALID;
	if (host) {
		if (strlen(addr) >= hostlen)
			return KW_ERR_INVALID;
		memcpy(host, addr, strlen(addr) + 1);
	}
	if (port)
		*port = (uint16_t)p;
	return 0;
}

bool config_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

static int check_listen(const char *v, char *why, size_t whylen)
{
	char q[96];

	if (parse_listen(v, NULL, 0, NULL) == 0)
		return 0;
	str_msg(why, whylen, "'%s' is not HOST:PORT (use e.g. 127.0.0.1:8080, "
		"[::1]:8080, 0.0.0.0:443 or localhost:8080)",
		ini_quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

/* The store knows which schemes this build can open: a database it could
 * not open stops the configuration, not the first request. */
static int check_database(const char *v, char *why, size_t whylen)
{
	const char *location;

	return store_backend(v, &location, why, whylen) ? 0 : KW_ERR_INVALID;
}

/* Only web links: the URL becomes an href, where javascript: would run. */
static int check_url(const char *v, char *why, size_t whylen)
{
	char q[96];
	size_t n = 0;

	if (!*v)
		return 0;
	if (strncasecmp(v, "https://", 8) == 0)
		n = 8;
	else if (strncasecmp(v, "http://", 7) == 0)
		n = 7;
	if (n && v[n] && v[n] != '/' && !strpbrk(v, " \t"))
		return 0;
	str_msg(why, whylen, "'%s' must be a web address starting with https:// "
		"or http://", ini_quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

int config_defaults(struct config *cfg)
{
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if ((r = ini_defaults(&schema, cfg)) < 0)
		config_free(cfg);
	return r;
}

int config_load(struct config *cfg, const char *path, char *msg, size_t msglen)
{
	char *copy = strdup(path);

	if (!copy) {
		str_msg(msg, msglen, "%s", kw_strerror(KW_ERR_NOMEM));
		return KW_ERR_NOMEM;
	}
	free(cfg->path);
	cfg->path = copy;
	return ini_load(&schema, cfg, path, msg, msglen);
}

int config_listen_addr(const struct config *cfg, char *host, size_t hostlen,
		       uint16_t *port)
{
	return parse_listen(cfg->listen, host, hostlen, port);
}

int config_proxies(const struct config *cfg, struct ini_cidr out[CONFIG_MAX_PROXIES])
{
	return ini_cidrs_parse(cfg->trusted_proxies, out, CONFIG_MAX_PROXIES);
}

int config_validate(const struct config *cfg, char *msg, size_t msglen)
{
	char host[INET6_ADDRSTRLEN], why[384], a[24], b[24];
	bool cert = cfg->tls_certificate && *cfg->tls_certificate;
	bool key = cfg->tls_key && *cfg->tls_key;
	uint16_t port;

	str_msg_clear(msg, msglen);
	if (cert != key) {
		str_msg(msg, msglen, "tls_certificate and tls_key must be set "
			"together");
		return KW_ERR_INVALID;
	}
	if (config_listen_addr(cfg, host, sizeof(host), &port) < 0) {
		check_listen(cfg->listen ? cfg->listen : "", why, sizeof(why));
		str_msg(msg, msglen, "listen: %s", why);
		return KW_ERR_INVALID;
	}
	if (!cert && !cfg->allow_plain_http && !config_host_is_loopback(host)) {
		str_msg(msg, msglen, "plain HTTP is only allowed on a loopback "
			"address; set tls_certificate and tls_key, or "
			"allow_plain_http = true behind a TLS proxy");
		return KW_ERR_INVALID;
	}
	/* The store says what is wrong with the URL. */
	if (check_database(cfg->database ? cfg->database : "", msg, msglen) < 0)
		return KW_ERR_INVALID;
	if (cfg->session_idle_timeout > 0 &&
	    cfg->session_warning >= cfg->session_idle_timeout) {
		str_format_duration(cfg->session_warning, a, sizeof(a));
		str_format_duration(cfg->session_idle_timeout, b, sizeof(b));
		str_msg(msg, msglen, "session_warning (%s) must be shorter than "
			"session_idle_timeout (%s)", a, b);
		return KW_ERR_INVALID;
	}
	for (size_t i = 0; i < cfg->backends.n; i++) {
		if (str_ieq(cfg->backends.item[i], "ldap") &&
		    (!*cfg->ldap.uri || !*cfg->ldap.base_dn)) {
			str_msg(msg, msglen, "backends names ldap: [ldap] needs uri and "
				"base_dn");
			return KW_ERR_INVALID;
		}
		/* A directory person is always DOMAIN\name (or a UPN), never a
		 * bare name that a local account (init's "admin") may hold. */
		if (str_ieq(cfg->backends.item[i], "ldap") && !*cfg->ldap.netbios_domain) {
			str_msg(msg, msglen, "backends names ldap: [ldap] needs netbios_domain "
				"(directory users are DOMAIN\\name, never a bare name a local "
				"account may have)");
			return KW_ERR_INVALID;
		}
	}
	return ldap_conf_validate(&cfg->ldap, msg, msglen);
}

int config_dump(const struct config *cfg, struct buf *out)
{
	return ini_dump(&schema, cfg, out);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	ini_free(&schema, cfg);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}
