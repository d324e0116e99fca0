#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "util/buf.h"
#include "core/config.h"
#include "util/err.h"
#include "util/str.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096
#define TEN_YEARS (3650 * INT64_C(86400))

#define FIELD(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->off))
#define CFG_OFF(member) offsetof(struct config, member)

enum key_type {
	T_STR,          /* char *, never NULL */
	T_OPT,          /* char *, NULL when empty */
	T_BOOL,
	T_INT,          /* int64_t in [min, max] */
	T_DURATION,     /* int64_t seconds in [min, max] */
	T_RATE,         /* struct rate_limit */
	T_TEXT,         /* struct lang_text: "key" and "key.LANG" */
	T_BACKENDS,
	T_DOMAINS,
};

/* Extra rule for a string value; writes the reason after "key: ". */
typedef int (*check_fn)(const char *v, char *why, size_t whylen);

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t off;
	const char *def;
	int64_t min, max;
	check_fn check;
};

static int check_listen(const char *v, char *why, size_t whylen);
static int check_proxies(const char *v, char *why, size_t whylen);
static int check_database(const char *v, char *why, size_t whylen);
static int check_nonempty(const char *v, char *why, size_t whylen);
static int check_url(const char *v, char *why, size_t whylen);
static int check_ldap_uri(const char *v, char *why, size_t whylen);
static int check_filter(const char *v, char *why, size_t whylen);
static int check_netbios(const char *v, char *why, size_t whylen);

/* One table drives defaults, parsing and dumping, so the three cannot
 * disagree about a key. */
static const struct key keys[] = {
	{ "server", "listen", T_STR, CFG_OFF(listen), "127.0.0.1:8080", 0, 0, check_listen },
	{ "server", "tls_certificate", T_OPT, CFG_OFF(tls_certificate), "", 0, 0, NULL },
	{ "server", "tls_key", T_OPT, CFG_OFF(tls_key), "", 0, 0, NULL },
	{ "server", "allow_plain_http", T_BOOL, CFG_OFF(allow_plain_http), "false", 0, 0, NULL },
	{ "server", "trusted_proxies", T_STR, CFG_OFF(trusted_proxies), "", 0, 0, check_proxies },
	{ "server", "worker_threads", T_INT, CFG_OFF(worker_threads), "0", 0, 1024, NULL },
	{ "server", "max_connections", T_INT, CFG_OFF(max_connections), "1024", 1, 100000, NULL },
	{ "server", "max_connections_per_address", T_INT, CFG_OFF(max_connections_per_address), "128", 1, 100000, NULL },

	{ "storage", "database", T_STR, CFG_OFF(database), "sqlite:/var/lib/keywarden/keywarden.db", 0, 0, check_database },
	{ "storage", "key_file", T_STR, CFG_OFF(key_file), "/var/lib/keywarden/master.key", 0, 0, check_nonempty },

	{ "portal", "company_name", T_TEXT, CFG_OFF(company_name), "Contoso IT", 0, 0, NULL },
	{ "portal", "helpdesk_text", T_TEXT, CFG_OFF(helpdesk_text), "Contact Helpdesk or IT Department", 0, 0, NULL },
	{ "portal", "helpdesk_url", T_TEXT, CFG_OFF(helpdesk_url), "", 0, 0, check_url },
	{ "portal", "display_notice", T_BOOL, CFG_OFF(display_notice), "true", 0, 0, NULL },
	{ "portal", "notice_file", T_STR, CFG_OFF(notice_file), "/etc/keywarden/notice.txt", 0, 0, NULL },
	{ "portal", "session_idle_timeout", T_DURATION, CFG_OFF(session_idle_timeout), "5m", 0, TEN_YEARS, NULL },
	{ "portal", "session_warning", T_DURATION, CFG_OFF(session_warning), "60s", 0, TEN_YEARS, NULL },
	{ "portal", "session_max_lifetime", T_DURATION, CFG_OFF(session_max_lifetime), "1h", 0, TEN_YEARS, NULL },
	{ "portal", "stale_after", T_DURATION, CFG_OFF(stale_after), "14d", 1, TEN_YEARS, NULL },

	{ "limits", "lookup_failures", T_RATE, CFG_OFF(lookup_failures), "5/15m", 0, 0, NULL },
	{ "limits", "lookup_failures_per_address", T_RATE, CFG_OFF(lookup_failures_per_address), "50/15m", 0, 0, NULL },
	{ "limits", "login_failures", T_RATE, CFG_OFF(login_failures), "10/15m", 0, 0, NULL },

	{ "auth", "backends", T_BACKENDS, CFG_OFF(backends), "local", 0, 0, NULL },

	{ "ldap", "uri", T_STR, CFG_OFF(ldap_uri), "", 0, 0, check_ldap_uri },
	{ "ldap", "base_dn", T_STR, CFG_OFF(ldap_base_dn), "", 0, 0, NULL },
	{ "ldap", "bind_dn", T_STR, CFG_OFF(ldap_bind_dn), "", 0, 0, NULL },
	{ "ldap", "bind_password_file", T_STR, CFG_OFF(ldap_bind_password_file), "", 0, 0, NULL },
	{ "ldap", "user_filter", T_STR, CFG_OFF(ldap_user_filter), "(uid=%s)", 0, 0, check_filter },
	{ "ldap", "netbios_domain", T_STR, CFG_OFF(ldap_netbios_domain), "", 0, 0, check_netbios },
	{ "ldap", "starttls", T_BOOL, CFG_OFF(ldap_starttls), "false", 0, 0, NULL },
	{ "ldap", "timeout", T_DURATION, CFG_OFF(ldap_timeout), "5s", 1, 3600, NULL },

	{ "roles", "helpdesk", T_STR, CFG_OFF(role_groups[0]), "", 0, 0, NULL },
	{ "roles", "helpdesk_admin", T_STR, CFG_OFF(role_groups[1]), "", 0, 0, NULL },
	{ "roles", "reports", T_STR, CFG_OFF(role_groups[2]), "", 0, 0, NULL },
	{ "roles", "admin", T_STR, CFG_OFF(role_groups[3]), "", 0, 0, NULL },

	{ "identity", "domains", T_DOMAINS, CFG_OFF(domains), "", 0, 0, NULL },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void msgf(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void msgf(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (!msg || !msglen)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

/* A value for an error message: control characters become '?' so a hostile
 * file cannot write escape sequences to the terminal, and long values are
 * cut (on a UTF-8 boundary) to keep the message readable. */
static const char *quote(const char *s, char *tmp, size_t tmplen)
{
	size_t n = 0;

	for (; *s && n + 1 < tmplen; s++, n++) {
		unsigned char c = (unsigned char)*s;

		tmp[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	tmp[n] = '\0';
	if (*s && tmplen > 4) {
		n = tmplen - 4;
		while (n > 0 && ((unsigned char)tmp[n] & 0xc0) == 0x80)
			n--;
		memcpy(tmp + n, "...", 4);
	}
	return tmp;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	       c == '\v';
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_digit(*s))
			return false;
	return true;
}

/* Splits s at sep into trimmed items; calls fn for each non-empty one.
 * s is modified. Stops at the first error. */
static int for_each_item(char *s, char sep,
			 int (*fn)(char *item, void *arg), void *arg)
{
	char *item = s, *next;
	int r;

	for (; item; item = next) {
		next = strchr(item, sep);
		if (next)
			*next++ = '\0';
		str_trim(item);
		if (*item && (r = fn(item, arg)) < 0)
			return r;
	}
	return 0;
}

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
	if (!all_digits(portstr) || str_to_i64(portstr, 0, 65535, &p) < 0)
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

static bool host_is_loopback(const char *host)
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
	msgf(why, whylen, "'%s' is not HOST:PORT (use e.g. 127.0.0.1:8080, "
	     "[::1]:8080, 0.0.0.0:443 or localhost:8080)",
	     quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

int config_cidr_parse(const char *s, struct config_cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s), len;
	int64_t bits;

	memset(out, 0, sizeof(*out));
	if (n == 0 || n >= sizeof(addr))
		return KW_ERR_INVALID;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, out->addr) == 1)
		out->family = AF_INET6;
	else
		return KW_ERR_INVALID;
	len = out->family == AF_INET ? 4 : 16;
	out->bits = (unsigned)len * 8;
	if (slash) {
		if (!all_digits(slash + 1) || str_to_i64(slash + 1, 0, (int64_t)len * 8, &bits) < 0)
			return KW_ERR_INVALID;
		out->bits = (unsigned)bits;
	}
	/* "10.0.0.1/8" is refused rather than read as 10.0.0.0/8: in a list
	 * of trusted addresses a typo must not widen it silently. */
	for (size_t i = 0; i < len; i++) {
		unsigned keep = out->bits > i * 8 ? out->bits - (unsigned)i * 8 : 0;
		unsigned mask = keep >= 8 ? 0xff : (0xff00u >> keep) & 0xff;

		if (out->addr[i] & ~mask)
			return KW_ERR_INVALID;
	}
	/* A range of every address trusts anyone to name the client. */
	if (out->bits == 0)
		return KW_ERR_INVALID;
	/* ::ffff:10.0.0.5 is 10.0.0.5: peers are compared as IPv4. */
	if (out->family == AF_INET6 && out->bits >= 96 &&
	    !memcmp(out->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->bits -= 96;
	}
	return 0;
}

bool config_cidr_contains(const struct config_cidr *range, int family,
			  const unsigned char *addr)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned bits = range->bits;

	if (family == AF_INET6 && range->family == AF_INET && !memcmp(addr, mapped, 12)) {
		family = AF_INET;
		addr += 12;
	}
	if (family != range->family)
		return false;
	for (size_t i = 0; bits > 0; i++, bits = bits > 8 ? bits - 8 : 0) {
		unsigned mask = bits >= 8 ? 0xff : (0xff00u >> bits) & 0xff;

		if ((addr[i] ^ range->addr[i]) & mask)
			return false;
	}
	return true;
}

struct proxy_list {
	struct config_cidr *out;
	size_t n;
	char *bad;
};

static int proxy_item(char *item, void *arg)
{
	struct proxy_list *l = arg;
	struct config_cidr c;

	l->bad = item;
	if (config_cidr_parse(item, &c) < 0 || l->n >= CONFIG_MAX_PROXIES)
		return KW_ERR_INVALID;
	if (l->out)
		l->out[l->n] = c;
	l->n++;
	return 0;
}

int config_proxies(const struct config *cfg, struct config_cidr out[CONFIG_MAX_PROXIES])
{
	struct proxy_list l = { out, 0, NULL };
	char *copy = strdup(cfg->trusted_proxies);
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	r = for_each_item(copy, ',', proxy_item, &l);
	free(copy);
	return r < 0 ? r : (int)l.n;
}

static int check_proxies(const char *v, char *why, size_t whylen)
{
	char *copy = strdup(v), q[96];
	struct proxy_list l = { NULL, 0, NULL };
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	r = for_each_item(copy, ',', proxy_item, &l);
	if (r < 0 && l.n >= CONFIG_MAX_PROXIES)
		msgf(why, whylen, "more than %d entries", CONFIG_MAX_PROXIES);
	else if (r < 0)
		msgf(why, whylen, "'%s' is not an IP address or CIDR range such as "
		     "10.0.0.0/8 with the host bits zero (list them separated by commas)",
		     quote(l.bad, q, sizeof(q)));
	free(copy);
	return r;
}

static int check_database(const char *v, char *why, size_t whylen)
{
	char q[96];

	if ((strncmp(v, "sqlite:", 7) == 0 && v[7]) ||
	    (strncmp(v, "postgresql://", 13) == 0) ||
	    (strncmp(v, "postgres://", 11) == 0))
		return 0;
	msgf(why, whylen, "'%s' must be sqlite:PATH, postgresql://... or "
	     "postgres://...", quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

static int check_nonempty(const char *v, char *why, size_t whylen)
{
	if (*v)
		return 0;
	msgf(why, whylen, "must not be empty");
	return KW_ERR_INVALID;
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
	msgf(why, whylen, "'%s' must be a web address starting with https:// "
	     "or http://", quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

static int check_uri_item(char *item, void *arg)
{
	if (strncasecmp(item, "ldap://", 7) == 0 ||
	    strncasecmp(item, "ldaps://", 8) == 0 ||
	    strncasecmp(item, "ldapi://", 8) == 0)
		return 0;
	*(char **)arg = item;
	return KW_ERR_INVALID;
}

/* OpenLDAP takes several URIs separated by spaces or commas. */
static int check_ldap_uri(const char *v, char *why, size_t whylen)
{
	char *copy = strdup(v), *bad = NULL, q[96];
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	for (char *p = copy; *p; p++)
		if (*p == ' ' || *p == '\t')
			*p = ',';
	r = for_each_item(copy, ',', check_uri_item, &bad);
	if (r < 0)
		msgf(why, whylen, "'%s' is not an LDAP URI (use ldap://HOST, "
		     "ldaps://HOST or ldapi://)", quote(bad, q, sizeof(q)));
	free(copy);
	return r;
}

/* The user name replaces the one %s; any other % would be taken as a
 * conversion by whoever formats the filter. */
static int check_filter(const char *v, char *why, size_t whylen)
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
	msgf(why, whylen, "'%s' must be a parenthesised LDAP filter with "
	     "exactly one %%s and no other %% (e.g. (sAMAccountName=%%s))",
	     quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

static bool netbios_ok(const char *s, size_t n)
{
	if (n == 0 || n > 15)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return false;
	return true;
}

static int check_netbios(const char *v, char *why, size_t whylen)
{
	char q[96];

	if (!*v || netbios_ok(v, strlen(v)))
		return 0;
	msgf(why, whylen, "'%s' is not a NetBIOS domain name (1 to 15 "
	     "letters, digits, - or _)", quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

static bool dns_name_ok(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_alpha(c) || is_digit(c) || (c == '-' && label)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* "sv", "sve", "sv-SE", "es-419"; stored as "sv-SE" whatever the case. */
static int lang_tag(const char *s, char out[8])
{
	size_t i = 0, j;

	while (is_alpha(s[i]))
		i++;
	if (i < 2 || i > 3)
		return KW_ERR_INVALID;
	if (s[i] == '-') {
		j = i + 1;
		if (is_alpha(s[j]) && is_alpha(s[j + 1]) && !s[j + 2])
			;
		else if (is_digit(s[j]) && is_digit(s[j + 1]) &&
			 is_digit(s[j + 2]) && !s[j + 3])
			;
		else
			return KW_ERR_INVALID;
	} else if (s[i]) {
		return KW_ERR_INVALID;
	}
	for (j = 0; s[j]; j++) {
		char c = s[j];

		if (j < i && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (j > i && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		out[j] = c;
	}
	out[j] = '\0';
	return 0;
}

/* Replaces *slot with a copy of v (NULL for "" when opt). */
static int set_string(char **slot, const char *v, bool opt)
{
	char *copy = NULL;

	if (!opt || *v) {
		copy = strdup(v);
		if (!copy)
			return KW_ERR_NOMEM;
	}
	free(*slot);
	*slot = copy;
	return 0;
}

static int set_text(struct lang_text *t, const char *lang, const char *name,
		    const char *v, char *why, size_t whylen)
{
	size_t i;

	if (!lang)
		return set_string(&t->def, v, false);
	for (i = 0; i < t->nvar; i++)
		if (str_ieq(t->var[i].lang, lang))
			return set_string(&t->var[i].text, v, false);
	if (t->nvar == CONFIG_MAX_LANG) {
		msgf(why, whylen, "%s: more than %d language variants",
		     name, CONFIG_MAX_LANG);
		return KW_ERR_INVALID;
	}
	if (set_string(&t->var[i].text, v, false) < 0)
		return KW_ERR_NOMEM;
	memcpy(t->var[i].lang, lang, strlen(lang) + 1);
	t->nvar++;
	return 0;
}

static int parse_duration(const char *v, int64_t min, int64_t max,
			  int64_t *out, const char *name, char *why,
			  size_t whylen)
{
	char q[96], lo[24], hi[24];
	int64_t d;

	if (str_to_duration(v, INT64_MAX, &d) < 0) {
		msgf(why, whylen, "%s: '%s' is not a duration (use e.g. 90s, "
		     "5m, 1h%s)", name, quote(v, q, sizeof(q)),
		     min == 0 ? " or 0" : " or 30d");
		return KW_ERR_INVALID;
	}
	if (d < min || d > max) {
		str_format_duration(min, lo, sizeof(lo));
		str_format_duration(max, hi, sizeof(hi));
		msgf(why, whylen, "%s: '%s' is out of range (%s to %s)", name,
		     quote(v, q, sizeof(q)), lo, hi);
		return KW_ERR_INVALID;
	}
	*out = d;
	return 0;
}

static int parse_rate(const char *v, struct rate_limit *out,
		      const char *name, char *why, size_t whylen)
{
	char num[16], q[96];
	const char *slash = strchr(v, '/');
	size_t n = slash ? (size_t)(slash - v) : 0;
	int64_t count, window;

	if (slash && n > 0 && n < sizeof(num)) {
		memcpy(num, v, n);
		num[n] = '\0';
		str_trim(num);
		if (all_digits(num) &&
		    str_to_i64(num, 1, 1000000, &count) == 0 &&
		    str_to_duration(slash + 1 + strspn(slash + 1, " \t"),
				    TEN_YEARS, &window) == 0 &&
		    window > 0) {
			out->count = count;
			out->window = window;
			return 0;
		}
	}
	msgf(why, whylen, "%s: '%s' is not a rate (use COUNT/DURATION, e.g. "
	     "5/15m, with COUNT from 1 to 1000000)", name,
	     quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

struct backend_list {
	const char *names[CONFIG_MAX_BACKENDS];
	size_t n;
	const char *bad;
	const char *why;
};

static int backend_item(char *item, void *arg)
{
	struct backend_list *l = arg;
	const char *name;

	if (str_ieq(item, "local"))
		name = "local";
	else if (str_ieq(item, "ldap"))
		name = "ldap";
	else {
		l->bad = item;
		l->why = "is not a backend (use local or ldap)";
		return KW_ERR_INVALID;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (l->names[i] == name) {
			l->bad = item;
			l->why = "is listed twice";
			return KW_ERR_INVALID;
		}
	}
	/* Two names without repeats always fit in CONFIG_MAX_BACKENDS. */
	l->names[l->n++] = name;
	return 0;
}

static int set_backends(struct config *cfg, const char *v, char *why,
			size_t whylen)
{
	struct backend_list l = { .n = 0 };
	char *copy = strdup(v), *dup[CONFIG_MAX_BACKENDS] = { NULL };
	char q[96];
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	r = for_each_item(copy, ',', backend_item, &l);
	if (r < 0) {
		msgf(why, whylen, "backends: '%s' %s", quote(l.bad, q, sizeof(q)),
		     l.why);
		goto out;
	}
	if (l.n == 0) {
		msgf(why, whylen, "backends: at least one backend is needed "
		     "(local, ldap)");
		r = KW_ERR_INVALID;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		if (!(dup[i] = strdup(l.names[i]))) {
			r = KW_ERR_NOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < CONFIG_MAX_BACKENDS; i++) {
		free(cfg->backends[i]);
		cfg->backends[i] = dup[i];
		dup[i] = NULL; /* owned by cfg */
	}
	cfg->nbackends = l.n;
out:
	for (size_t i = 0; i < CONFIG_MAX_BACKENDS; i++)
		free(dup[i]);
	free(copy);
	return r;
}

struct domain_list {
	struct config *cfg;
	const char *bad;
	const char *why;
};

/* "CORP:corp.example.com", already trimmed; the item is left intact for
 * the error message. */
static int domain_item(char *item, void *arg)
{
	struct domain_list *l = arg;
	struct config *cfg = l->cfg;
	const char *colon = strchr(item, ':');
	const char *dns;
	size_t nblen, dnslen;

	l->bad = item;
	l->why = "is not NETBIOS:dns.name";
	if (!colon)
		return KW_ERR_INVALID;
	nblen = (size_t)(colon - item);
	while (nblen > 0 && is_space(item[nblen - 1]))
		nblen--;
	dns = colon + 1 + strspn(colon + 1, " \t");
	dnslen = strlen(dns);
	if (!netbios_ok(item, nblen) || !dns_name_ok(dns, dnslen))
		return KW_ERR_INVALID;
	for (size_t i = 0; i < cfg->ndomains; i++) {
		if (strlen(cfg->domains[i].netbios) == nblen &&
		    strncasecmp(cfg->domains[i].netbios, item, nblen) == 0) {
			l->why = "repeats a NetBIOS name";
			return KW_ERR_INVALID;
		}
	}
	if (cfg->ndomains == CONFIG_MAX_DOMAINS) {
		l->why = "is one domain too many (at most 16)";
		return KW_ERR_INVALID;
	}
	memcpy(cfg->domains[cfg->ndomains].netbios, item, nblen);
	cfg->domains[cfg->ndomains].netbios[nblen] = '\0';
	memcpy(cfg->domains[cfg->ndomains].dns, dns, dnslen + 1);
	cfg->ndomains++;
	return 0;
}

/* On failure the list is partly replaced; config_load then fails anyway. */
static int set_domains(struct config *cfg, const char *v, char *why,
		       size_t whylen)
{
	struct domain_list l = { .cfg = cfg };
	char *copy = strdup(v), q[96];
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	cfg->ndomains = 0;
	r = for_each_item(copy, ',', domain_item, &l);
	if (r < 0)
		msgf(why, whylen, "domains: '%s' %s", quote(l.bad, q, sizeof(q)),
		     l.why);
	free(copy);
	return r;
}

/* Sets key k (variant lang, or NULL) from text v; name is the key as
 * written, for messages. KW_ERR_INVALID with why, or KW_ERR_NOMEM. */
static int key_set(struct config *cfg, const struct key *k, const char *lang,
		   const char *name, const char *v, char *why, size_t whylen)
{
	char q[96];
	int r;

	if (*v && !str_is_clean_text(v, CONFIG_LINE_MAX)) {
		msgf(why, whylen, "%s: the value has control characters or is "
		     "not UTF-8", name);
		return KW_ERR_INVALID;
	}
	if (k->check) {
		char reason[320];

		r = k->check(v, reason, sizeof(reason));
		if (r == KW_ERR_INVALID)
			msgf(why, whylen, "%s: %s", name, reason);
		if (r < 0)
			return r;
	}
	switch (k->type) {
	case T_STR:
	case T_OPT:
		return set_string(FIELD(cfg, k, char *), v, k->type == T_OPT);
	case T_TEXT:
		return set_text(FIELD(cfg, k, struct lang_text), lang, name, v,
				why, whylen);
	case T_BOOL:
		if (str_to_bool(v, FIELD(cfg, k, bool)) == 0)
			return 0;
		msgf(why, whylen, "%s: '%s' is not a boolean (use true or false)",
		     name, quote(v, q, sizeof(q)));
		return KW_ERR_INVALID;
	case T_INT:
		if (str_to_i64(v, k->min, k->max, FIELD(cfg, k, int64_t)) == 0)
			return 0;
		msgf(why, whylen, "%s: '%s' is not a number from %lld to %lld",
		     name, quote(v, q, sizeof(q)), (long long)k->min,
		     (long long)k->max);
		return KW_ERR_INVALID;
	case T_DURATION:
		return parse_duration(v, k->min, k->max, FIELD(cfg, k, int64_t),
				      name, why, whylen);
	case T_RATE:
		return parse_rate(v, FIELD(cfg, k, struct rate_limit), name, why,
				  whylen);
	case T_BACKENDS:
		return set_backends(cfg, v, why, whylen);
	case T_DOMAINS:
		return set_domains(cfg, v, why, whylen);
	}
	return KW_ERR_INTERNAL;
}

static const struct key *key_find(const char *section, const char *name,
				  size_t n)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strlen(keys[i].name) == n &&
		    strncmp(keys[i].name, name, n) == 0)
			return &keys[i];
	return NULL;
}

static bool section_known(const char *name, size_t n)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(keys[i].section) == n &&
		    strncmp(keys[i].section, name, n) == 0)
			return true;
	return false;
}

int config_defaults(struct config *cfg)
{
	char why[256];
	int r;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++) {
		r = key_set(cfg, &keys[i], NULL, keys[i].name, keys[i].def, why,
			    sizeof(why));
		if (r < 0) {
			config_free(cfg);
			/* Anything but ENOMEM means the table above is wrong. */
			return r == KW_ERR_NOMEM ? r : KW_ERR_INTERNAL;
		}
	}
	return 0;
}

/* State shared by the line reader and the handler. The reader feeds inih
 * one line at a time, so it knows the line number the handler is on. */
struct parse {
	struct config *cfg;
	FILE *f;
	size_t lineno;        /* line last handed to inih */
	size_t nread;         /* bytes read, against CONFIG_FILE_MAX */
	bool pending_key;     /* that line must reach the handler */
	int read_errno;
	int err;              /* first error: code, line and reason */
	size_t err_line;
	char reason[512];
};

static void parse_fail(struct parse *p, int err, size_t line,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void parse_fail(struct parse *p, int err, size_t line,
		       const char *fmt, ...)
{
	va_list ap;

	if (p->err)
		return;
	p->err = err;
	p->err_line = line;
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
}

/* "[name]" with inih's rule: " ;" starts a comment before the ']'. */
static void parse_section_line(struct parse *p, const char *s, size_t line)
{
	const char *name = s + 1, *end = name;
	bool was_space = false;
	char q[96], tmp[64];
	size_t n;

	for (; *end && *end != ']'; end++) {
		if (was_space && *end == ';')
			break;
		was_space = is_space(*end);
	}
	if (*end != ']') {
		parse_fail(p, KW_ERR_INVALID, line, "'%s': a section name "
			   "needs a closing ']'", quote(s, q, sizeof(q)));
		return;
	}
	n = (size_t)(end - name);
	if (section_known(name, n))
		return;
	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	memcpy(tmp, name, n);
	tmp[n] = '\0';
	parse_fail(p, KW_ERR_INVALID, line, "unknown section [%s]",
		   quote(tmp, q, sizeof(q)));
}

/* inih reader (fgets-like) used instead of fgets for three reasons: an
 * over-long line must be an error, not split into two lines (Debian's inih
 * holds 200 bytes); an indented line must not continue the previous value
 * (inih's multi-line mode would silently replace it); and inih reports
 * neither unknown empty sections nor why a line was rejected. */
static char *parse_read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	size_t line = p->lineno + 1, cap, n = 0, skip = 0;
	int c = EOF;

	/* inih calls the handler for every line holding '=' or ':'. */
	if (p->pending_key)
		parse_fail(p, KW_ERR_INVALID, p->lineno,
			   "expected 'key = value'");
	p->pending_key = false;
	if (p->err || num < 3)
		return NULL;
	/* Keep room for '\n': newer inih takes a full buffer without one
	 * for an over-long line and skips the next. */
	cap = (size_t)num - 2;
	if (cap > CONFIG_LINE_MAX)
		cap = CONFIG_LINE_MAX;
	while ((c = getc(p->f)) != EOF) {
		if (++p->nread > CONFIG_FILE_MAX) {
			parse_fail(p, KW_ERR_INVALID, line,
				   "the file is larger than 1 MiB");
			return NULL;
		}
		if (c == '\n')
			break;
		if (c == '\0') {
			parse_fail(p, KW_ERR_INVALID, line,
				   "the line holds a NUL byte");
			return NULL;
		}
		if (n == cap) {
			parse_fail(p, KW_ERR_INVALID, line,
				   "the line is longer than %zu bytes", cap);
			return NULL;
		}
		str[n++] = (char)c;
	}
	if (c == EOF && ferror(p->f)) {
		p->read_errno = errno ? errno : EIO;
		return NULL;
	}
	if (c == EOF && n == 0)
		return NULL;
	str[n] = '\0';
	p->lineno = line;

	if (line == 1 && n >= 3 && memcmp(str, "\xef\xbb\xbf", 3) == 0)
		skip = 3;
	while (skip < n && is_space(str[skip]))
		skip++;
	n -= skip;
	memmove(str, str + skip, n + 1);

	if (str[0] == '[')
		parse_section_line(p, str, line);
	else if (str[0] && str[0] != ';' && str[0] != '#')
		p->pending_key = true;
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static int parse_handler(void *user, const char *section, const char *name,
			 const char *value)
{
	struct parse *p = user;
	const struct key *k;
	const char *dot = strchr(name, '.');
	char lang[8], why[512], q[96], qs[64];
	int r;

	p->pending_key = false;
	if (p->err)
		return 0;
	if (!*section) {
		parse_fail(p, KW_ERR_INVALID, p->lineno, "key '%s' is outside "
			   "any section", quote(name, q, sizeof(q)));
		return 0;
	}
	k = key_find(section, name, dot ? (size_t)(dot - name) : strlen(name));
	if (!k || (dot && k->type != T_TEXT)) {
		parse_fail(p, KW_ERR_INVALID, p->lineno, "unknown key '%s' in "
			   "section [%s]", quote(name, q, sizeof(q)),
			   quote(section, qs, sizeof(qs)));
		return 0;
	}
	if (dot && lang_tag(dot + 1, lang) < 0) {
		parse_fail(p, KW_ERR_INVALID, p->lineno, "%s: '%s' is not a "
			   "language tag (use e.g. sv or sv-SE)", k->name,
			   quote(dot + 1, q, sizeof(q)));
		return 0;
	}
	r = key_set(p->cfg, k, dot ? lang : NULL, name, value, why, sizeof(why));
	if (r == KW_ERR_NOMEM)
		parse_fail(p, r, p->lineno, "out of memory");
	else if (r < 0)
		parse_fail(p, r, p->lineno, "%s", why);
	return r < 0 ? 0 : 1;
}

int config_load(struct config *cfg, const char *path, char *msg, size_t msglen)
{
	struct parse p = { .cfg = cfg };
	struct stat st;
	int r;

	msgf(msg, msglen, "%s", "");
	if ((r = set_string(&cfg->path, path, false)) < 0) {
		msgf(msg, msglen, "%s", kw_strerror(r));
		return r;
	}
	p.f = fopen(path, "re");
	if (!p.f) {
		msgf(msg, msglen, "cannot open %s: %s", path, strerror(errno));
		return KW_ERR_IO;
	}
	/* The reader counts bytes too, for files that are not regular. */
	if (fstat(fileno(p.f), &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > CONFIG_FILE_MAX) {
		msgf(msg, msglen, "%s: the file is larger than 1 MiB", path);
		r = KW_ERR_INVALID;
		goto out;
	}
	r = ini_parse_stream(parse_read_line, &p, parse_handler, &p);
	if (p.read_errno) {
		msgf(msg, msglen, "cannot read %s: %s", path,
		     strerror(p.read_errno));
		r = KW_ERR_IO;
	} else if (r > 0 && (!p.err || (size_t)r < p.err_line)) {
		/* inih rejected a line the reader and handler accepted. */
		msgf(msg, msglen, "%s:%d: syntax error", path, r);
		r = KW_ERR_INVALID;
	} else if (p.err) {
		msgf(msg, msglen, "%s:%zu: %s", path, p.err_line, p.reason);
		r = p.err;
	} else if (r < 0) {
		msgf(msg, msglen, "%s: %s", path, kw_strerror(KW_ERR_NOMEM));
		r = KW_ERR_NOMEM;
	}
out:
	fclose(p.f);
	return r;
}

int config_listen_addr(const struct config *cfg, char *host, size_t hostlen,
		       uint16_t *port)
{
	return parse_listen(cfg->listen, host, hostlen, port);
}

static bool has_backend(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (cfg->backends[i] && strcmp(cfg->backends[i], name) == 0)
			return true;
	return false;
}

int config_validate(const struct config *cfg, char *msg, size_t msglen)
{
	char host[INET6_ADDRSTRLEN], why[384], a[24], b[24];
	bool cert = cfg->tls_certificate && *cfg->tls_certificate;
	bool key = cfg->tls_key && *cfg->tls_key;
	uint16_t port;

	msgf(msg, msglen, "%s", "");
	if (cert != key) {
		msgf(msg, msglen, "tls_certificate and tls_key must be set "
		     "together");
		return KW_ERR_INVALID;
	}
	if (config_listen_addr(cfg, host, sizeof(host), &port) < 0) {
		check_listen(cfg->listen ? cfg->listen : "", why, sizeof(why));
		msgf(msg, msglen, "listen: %s", why);
		return KW_ERR_INVALID;
	}
	if (!cert && !cfg->allow_plain_http && !host_is_loopback(host)) {
		msgf(msg, msglen, "plain HTTP is only allowed on a loopback "
		     "address; set tls_certificate and tls_key, or "
		     "allow_plain_http = true behind a TLS proxy");
		return KW_ERR_INVALID;
	}
	if (check_database(cfg->database ? cfg->database : "", why,
			   sizeof(why)) < 0) {
		msgf(msg, msglen, "database: %s", why);
		return KW_ERR_INVALID;
	}
	if (cfg->session_idle_timeout > 0 &&
	    cfg->session_warning >= cfg->session_idle_timeout) {
		str_format_duration(cfg->session_warning, a, sizeof(a));
		str_format_duration(cfg->session_idle_timeout, b, sizeof(b));
		msgf(msg, msglen, "session_warning (%s) must be shorter than "
		     "session_idle_timeout (%s)", a, b);
		return KW_ERR_INVALID;
	}
	if (has_backend(cfg, "ldap") &&
	    (!cfg->ldap_uri || !*cfg->ldap_uri || !cfg->ldap_base_dn ||
	     !*cfg->ldap_base_dn)) {
		msgf(msg, msglen, "backends lists ldap, so [ldap] uri and "
		     "base_dn must be set");
		return KW_ERR_INVALID;
	}
	/* StartTLS on a connection that is already TLS fails at sign-in. */
	if (cfg->ldap_starttls && cfg->ldap_uri &&
	    strncasecmp(cfg->ldap_uri, "ldaps://", 8) == 0) {
		msgf(msg, msglen, "[ldap] starttls = true cannot be used with "
		     "an ldaps:// uri");
		return KW_ERR_INVALID;
	}
	return 0;
}

/* "key = value", or "key=value" where the spaced form would not load back:
 * a value starting with ';' (newer inih takes " ;" for a comment) or a line
 * that the two spaces could push past libinih's line limit. */
#define DUMP_SPACED_MAX 160

static int dump_pair(struct buf *out, const char *name, const char *lang,
		     const char *v)
{
	size_t len = strlen(name) + (lang ? 1 + strlen(lang) : 0) + 3 +
		     strlen(v);
	const char *eq = " = ";

	if (v[0] == ';' || len > DUMP_SPACED_MAX)
		eq = "=";
	else if (!v[0])
		eq = " =";
	return buf_printf(out, "%s%s%s%s%s\n", name, lang ? "." : "",
			  lang ? lang : "", eq, v);
}

static int dump_domains(const struct config *cfg, const char *sep,
			struct buf *v)
{
	int r;

	for (size_t i = 0; i < cfg->ndomains; i++)
		if ((r = buf_printf(v, "%s%s:%s", i ? sep : "",
				    cfg->domains[i].netbios,
				    cfg->domains[i].dns)) < 0)
			return r;
	return 0;
}

static int dump_key(const struct config *cfg, const struct key *k,
		    struct buf *out)
{
	char tmp[32];
	const struct lang_text *t;
	const struct rate_limit *rl;
	struct buf list;
	const char *s;
	int r;

	switch (k->type) {
	case T_STR:
	case T_OPT:
		s = *FIELD(cfg, k, char *const);
		return dump_pair(out, k->name, NULL, s ? s : "");
	case T_TEXT:
		t = FIELD(cfg, k, const struct lang_text);
		if ((r = dump_pair(out, k->name, NULL, t->def ? t->def : "")) < 0)
			return r;
		for (size_t i = 0; i < t->nvar; i++)
			if ((r = dump_pair(out, k->name, t->var[i].lang,
					   t->var[i].text ? t->var[i].text :
							    "")) < 0)
				return r;
		return 0;
	case T_BOOL:
		return dump_pair(out, k->name, NULL,
				 *FIELD(cfg, k, const bool) ? "true" : "false");
	case T_INT:
		snprintf(tmp, sizeof(tmp), "%lld",
			 (long long)*FIELD(cfg, k, const int64_t));
		return dump_pair(out, k->name, NULL, tmp);
	case T_DURATION:
		str_format_duration(*FIELD(cfg, k, const int64_t), tmp,
				    sizeof(tmp));
		return dump_pair(out, k->name, NULL, tmp);
	case T_RATE:
		rl = FIELD(cfg, k, const struct rate_limit);
		str_format_duration(rl->window, tmp, sizeof(tmp));
		return buf_printf(out, "%s = %lld/%s\n", k->name,
				  (long long)rl->count, tmp);
	case T_BACKENDS:
		if ((r = buf_printf(out, "%s =", k->name)) < 0)
			return r;
		for (size_t i = 0; i < cfg->nbackends; i++)
			if ((r = buf_printf(out, "%s%s", i ? ", " : " ",
					    cfg->backends[i])) < 0)
				return r;
		return buf_putc(out, '\n');
	case T_DOMAINS:
		buf_init(&list, CONFIG_MAX_DOMAINS * sizeof(cfg->domains[0]));
		r = dump_domains(cfg, ", ", &list);
		/* Without spaces the list is no longer than the line it came
		 * from. */
		if (r == 0 && list.len > DUMP_SPACED_MAX) {
			buf_reset(&list);
			r = dump_domains(cfg, ",", &list);
		}
		if (r == 0)
			r = dump_pair(out, k->name, NULL,
				      list.data ? list.data : "");
		buf_free(&list);
		return r;
	}
	return KW_ERR_INTERNAL;
}

int config_dump(const struct config *cfg, struct buf *out)
{
	const char *section = NULL;
	int r;

	for (size_t i = 0; i < NKEYS; i++) {
		if (!section || strcmp(section, keys[i].section) != 0) {
			section = keys[i].section;
			if ((r = buf_printf(out, "%s[%s]\n", i ? "\n" : "",
					    section)) < 0)
				return r;
		}
		if ((r = dump_key(cfg, &keys[i], out)) < 0)
			return r;
	}
	return 0;
}

const char *config_text(const struct lang_text *t, const char *lang)
{
	size_t n;

	if (lang && *lang) {
		for (size_t i = 0; i < t->nvar; i++)
			if (str_ieq(t->var[i].lang, lang))
				return t->var[i].text;
		n = strcspn(lang, "-");
		if (lang[n])
			for (size_t i = 0; i < t->nvar; i++)
				if (strlen(t->var[i].lang) == n &&
				    strncasecmp(t->var[i].lang, lang, n) == 0)
					return t->var[i].text;
	}
	return t->def ? t->def : "";
}

static void lang_text_free(struct lang_text *t)
{
	free(t->def);
	for (size_t i = 0; i < CONFIG_MAX_LANG; i++)
		free(t->var[i].text);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		switch (keys[i].type) {
		case T_STR:
		case T_OPT:
			free(*FIELD(cfg, &keys[i], char *));
			break;
		case T_TEXT:
			lang_text_free(FIELD(cfg, &keys[i], struct lang_text));
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < CONFIG_MAX_BACKENDS; i++)
		free(cfg->backends[i]);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}
