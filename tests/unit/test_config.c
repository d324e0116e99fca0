#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "util/buf.h"
#include "util/err.h"

#define TMPL "/tmp/kw-test-config-XXXXXX"

/* Writes len bytes to a new temporary file; path gets its name. */
static void write_tmp(char path[sizeof(TMPL)], const char *text, size_t len)
{
	int fd;

	memcpy(path, TMPL, sizeof(TMPL));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Loads text over the defaults; path gets the file's (removed) name. */
static int load_len(const char *text, size_t len, struct config *cfg,
		    char *msg, size_t msglen, char path[sizeof(TMPL)])
{
	int r;

	assert_int_equal(config_defaults(cfg), 0);
	write_tmp(path, text, len);
	r = config_load(cfg, path, msg, msglen);
	unlink(path);
	return r;
}

static int load(const char *text, struct config *cfg, char *msg,
		size_t msglen)
{
	char path[sizeof(TMPL)];

	return load_len(text, strlen(text), cfg, msg, msglen, path);
}

/* Loads text, expects KW_ERR_INVALID and exactly "PATH:LINE: reason". */
static void expect_error(const char *text, int line, const char *reason)
{
	struct config cfg;
	char path[sizeof(TMPL)], msg[1024], want[1024];

	assert_int_equal(load_len(text, strlen(text), &cfg, msg, sizeof(msg),
				  path), KW_ERR_INVALID);
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, reason);
	assert_string_equal(msg, want);
	config_free(&cfg);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* Loads text (which must be valid) and runs config_validate on it. */
static int validate_text(const char *text, char *msg, size_t msglen)
{
	struct config cfg;
	char lmsg[512];
	int r;

	r = load(text, &cfg, lmsg, sizeof(lmsg));
	if (r != 0)
		fail_msg("load failed: %s", lmsg);
	r = config_validate(&cfg, msg, msglen);
	config_free(&cfg);
	return r;
}

static const char full_text[] =
	"[server]\n"
	"listen = 192.0.2.10:8443\n"
	"tls_certificate = /etc/keywarden/cert.pem\n"
	"tls_key = /etc/keywarden/key.pem\n"
	"allow_plain_http = yes\n"
	"trusted_proxies = 10.0.0.1, ::1\n"
	"worker_threads = 8\n"
	"max_connections = 500\n"
	"\n"
	"[storage]\n"
	"database = sqlite:/srv/kw/keywarden.db\n"
	"key_file = /srv/kw/master.key\n"
	"\n"
	"[portal]\n"
	"company_name = Fabrikam IT\n"
	"company_name.sv = Fabrikam IT-avdelning\n"
	"helpdesk_text = Call 555-0100\n"
	"helpdesk_text.sv = Ring 555-0100\n"
	"helpdesk_text.sv-fi = Ring 555-0199\n"
	"helpdesk_url = https://help.example.com/bitlocker\n"
	"helpdesk_url.de = http://help.example.com/de/bitlocker\n"
	"display_notice = off\n"
	"notice_file = /srv/kw/notice.txt\n"
	"session_idle_timeout = 10m\n"
	"session_warning = 90s\n"
	"session_max_lifetime = 8h\n"
	"stale_after = 30d\n"
	"\n"
	"[limits]\n"
	"lookup_failures = 3/10m\n"
	"lookup_failures_per_address = 20/1h\n"
	"login_failures = 7/30m\n"
	"\n"
	"[auth]\n"
	"backends = Local\n"
	"\n"
	"[ldap]\n"
	"uri = ldap://dc1.corp.example.com ldap://dc2.corp.example.com\n"
	"base_dn = DC=corp,DC=example,DC=com\n"
	"bind_dn = CN=svc-kw,OU=Service,DC=corp,DC=example,DC=com\n"
	"bind_password_file = /etc/keywarden/ldap.pw\n"
	"user_filter = (sAMAccountName=%s)\n"
	"netbios_domain = CORP\n"
	"starttls = on\n"
	"timeout = 10s\n"
	"\n"
	"[roles]\n"
	"helpdesk = CN=Helpdesk,OU=Groups,DC=corp,DC=example,DC=com\n"
	"helpdesk_admin = CN=Helpdesk Admins,OU=Groups,DC=corp,DC=example,DC=com\n"
	"reports = CN=Auditors,OU=Groups,DC=corp,DC=example,DC=com\n"
	"admin = CN=KW Admins,OU=Groups,DC=corp,DC=example,DC=com\n"
	"\n"
	"[identity]\n"
	"domains = EMEA:emea.example.com, APAC : apac.example.com\n";

static void assert_str_or_null_equal(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_text_equal(const struct ini_text *a,
			      const struct ini_text *b)
{
	assert_string_equal(a->def, b->def);
	assert_int_equal(a->nvar, b->nvar);
	for (size_t i = 0; i < a->nvar; i++) {
		assert_string_equal(a->var[i].lang, b->var[i].lang);
		assert_string_equal(a->var[i].text, b->var[i].text);
	}
}

static void assert_rate_equal(struct ini_rate a, struct ini_rate b)
{
	assert_int_equal(a.count, b.count);
	assert_int_equal(a.window, b.window);
}

/* Every field but path. */
static void assert_config_equal(const struct config *a, const struct config *b)
{
	assert_string_equal(a->listen, b->listen);
	assert_str_or_null_equal(a->tls_certificate, b->tls_certificate);
	assert_str_or_null_equal(a->tls_key, b->tls_key);
	assert_int_equal(a->allow_plain_http, b->allow_plain_http);
	assert_string_equal(a->trusted_proxies, b->trusted_proxies);
	assert_int_equal(a->worker_threads, b->worker_threads);
	assert_int_equal(a->max_connections, b->max_connections);
	assert_string_equal(a->database, b->database);
	assert_string_equal(a->key_file, b->key_file);
	assert_text_equal(&a->company_name, &b->company_name);
	assert_text_equal(&a->helpdesk_text, &b->helpdesk_text);
	assert_text_equal(&a->helpdesk_url, &b->helpdesk_url);
	assert_int_equal(a->display_notice, b->display_notice);
	assert_string_equal(a->notice_file, b->notice_file);
	assert_int_equal(a->session_idle_timeout, b->session_idle_timeout);
	assert_int_equal(a->session_warning, b->session_warning);
	assert_int_equal(a->session_max_lifetime, b->session_max_lifetime);
	assert_int_equal(a->stale_after, b->stale_after);
	assert_rate_equal(a->lookup_failures, b->lookup_failures);
	assert_rate_equal(a->lookup_failures_per_address,
			  b->lookup_failures_per_address);
	assert_rate_equal(a->login_failures, b->login_failures);
	assert_int_equal(a->backends.n, b->backends.n);
	for (size_t i = 0; i < a->backends.n; i++)
		assert_string_equal(a->backends.item[i], b->backends.item[i]);
	assert_string_equal(a->ldap.uri, b->ldap.uri);
	assert_string_equal(a->ldap.base_dn, b->ldap.base_dn);
	assert_string_equal(a->ldap.bind_dn, b->ldap.bind_dn);
	assert_string_equal(a->ldap.bind_password_file,
			    b->ldap.bind_password_file);
	assert_string_equal(a->ldap.user_filter, b->ldap.user_filter);
	assert_string_equal(a->ldap.netbios_domain, b->ldap.netbios_domain);
	assert_int_equal(a->ldap.starttls, b->ldap.starttls);
	assert_int_equal(a->ldap.timeout, b->ldap.timeout);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(a->role_groups[i], b->role_groups[i]);
	assert_int_equal(a->domains.n, b->domains.n);
	for (size_t i = 0; i < a->domains.n; i++) {
		assert_string_equal(a->domains.dom[i].netbios, b->domains.dom[i].netbios);
		assert_string_equal(a->domains.dom[i].dns, b->domains.dom[i].dns);
	}
}

static void test_defaults(void **state)
{
	struct config cfg;
	char msg[256];

	assert_int_equal(config_defaults(&cfg), 0);
	assert_null(cfg.path);
	assert_string_equal(cfg.listen, "127.0.0.1:8080");
	assert_null(cfg.tls_certificate);
	assert_null(cfg.tls_key);
	assert_false(cfg.allow_plain_http);
	assert_string_equal(cfg.trusted_proxies, "");
	assert_int_equal(cfg.worker_threads, 0);
	assert_int_equal(cfg.max_connections, 1024);
	assert_int_equal(cfg.max_connections_per_address, 128);
	assert_string_equal(cfg.database, "sqlite:/var/lib/keywarden/keywarden.db");
	assert_string_equal(cfg.key_file, "/var/lib/keywarden/master.key");
	assert_string_equal(cfg.company_name.def, "Contoso IT");
	assert_int_equal(cfg.company_name.nvar, 0);
	assert_string_equal(cfg.helpdesk_text.def,
			    "Contact Helpdesk or IT Department");
	assert_string_equal(cfg.helpdesk_url.def, "");
	assert_true(cfg.display_notice);
	assert_string_equal(cfg.notice_file, "/etc/keywarden/notice.txt");
	assert_int_equal(cfg.session_idle_timeout, 300);
	assert_int_equal(cfg.session_warning, 60);
	assert_int_equal(cfg.session_max_lifetime, 3600);
	assert_int_equal(cfg.stale_after, 14 * 86400);
	assert_int_equal(cfg.lookup_failures.count, 5);
	assert_int_equal(cfg.lookup_failures.window, 900);
	assert_int_equal(cfg.lookup_failures_per_address.count, 50);
	assert_int_equal(cfg.lookup_failures_per_address.window, 900);
	assert_int_equal(cfg.login_failures.count, 10);
	assert_int_equal(cfg.login_failures.window, 900);
	assert_int_equal(cfg.backends.n, 1);
	assert_string_equal(cfg.backends.item[0], "local");
	assert_null(cfg.backends.item[1]);
	assert_string_equal(cfg.ldap.uri, "");
	assert_string_equal(cfg.ldap.base_dn, "");
	assert_string_equal(cfg.ldap.bind_dn, "");
	assert_string_equal(cfg.ldap.bind_password_file, "");
	assert_string_equal(cfg.ldap.user_filter, "(uid=%s)");
	assert_string_equal(cfg.ldap.netbios_domain, "");
	assert_false(cfg.ldap.starttls);
	assert_int_equal(cfg.ldap.timeout, 5);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(cfg.role_groups[i], "");
	/* No domain mapping unless configured. */
	assert_int_equal(cfg.domains.n, 0);
	/* The defaults are a working configuration. */
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	config_free(&cfg);
}

static void test_empty_file_gives_defaults(void **state)
{
	struct config cfg, def;
	char msg[256];

	assert_int_equal(load("# nothing set\n\n", &cfg, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	assert_non_null(cfg.path);
	assert_int_equal(config_defaults(&def), 0);
	assert_config_equal(&cfg, &def);
	config_free(&def);
	config_free(&cfg);
}

static void test_every_key_parses(void **state)
{
	struct config cfg;
	char msg[256];

	assert_int_equal(load(full_text, &cfg, msg, sizeof(msg)), 0);
	assert_string_equal(cfg.listen, "192.0.2.10:8443");
	assert_string_equal(cfg.tls_certificate, "/etc/keywarden/cert.pem");
	assert_string_equal(cfg.tls_key, "/etc/keywarden/key.pem");
	assert_true(cfg.allow_plain_http);
	assert_string_equal(cfg.trusted_proxies, "10.0.0.1, ::1");
	assert_int_equal(cfg.worker_threads, 8);
	assert_int_equal(cfg.max_connections, 500);
	assert_string_equal(cfg.database, "sqlite:/srv/kw/keywarden.db");
	assert_string_equal(cfg.key_file, "/srv/kw/master.key");
	assert_string_equal(cfg.company_name.def, "Fabrikam IT");
	assert_int_equal(cfg.company_name.nvar, 1);
	assert_string_equal(cfg.company_name.var[0].lang, "sv");
	assert_string_equal(cfg.company_name.var[0].text, "Fabrikam IT-avdelning");
	assert_string_equal(cfg.helpdesk_text.def, "Call 555-0100");
	assert_int_equal(cfg.helpdesk_text.nvar, 2);
	/* The region is stored upper-case whatever was written. */
	assert_string_equal(cfg.helpdesk_text.var[1].lang, "sv-FI");
	assert_string_equal(cfg.helpdesk_text.var[1].text, "Ring 555-0199");
	assert_string_equal(cfg.helpdesk_url.def,
			    "https://help.example.com/bitlocker");
	assert_string_equal(cfg.helpdesk_url.var[0].lang, "de");
	assert_false(cfg.display_notice);
	assert_string_equal(cfg.notice_file, "/srv/kw/notice.txt");
	assert_int_equal(cfg.session_idle_timeout, 600);
	assert_int_equal(cfg.session_warning, 90);
	assert_int_equal(cfg.session_max_lifetime, 8 * 3600);
	assert_int_equal(cfg.stale_after, 30 * 86400);
	assert_int_equal(cfg.lookup_failures.count, 3);
	assert_int_equal(cfg.lookup_failures.window, 600);
	assert_int_equal(cfg.lookup_failures_per_address.count, 20);
	assert_int_equal(cfg.lookup_failures_per_address.window, 3600);
	assert_int_equal(cfg.login_failures.count, 7);
	assert_int_equal(cfg.login_failures.window, 1800);
	/* Backend names are kept lower-case. */
	assert_int_equal(cfg.backends.n, 1);
	assert_string_equal(cfg.backends.item[0], "local");
	assert_string_equal(cfg.ldap.uri, "ldap://dc1.corp.example.com "
			    "ldap://dc2.corp.example.com");
	assert_string_equal(cfg.ldap.base_dn, "DC=corp,DC=example,DC=com");
	assert_string_equal(cfg.ldap.bind_dn,
			    "CN=svc-kw,OU=Service,DC=corp,DC=example,DC=com");
	assert_string_equal(cfg.ldap.bind_password_file, "/etc/keywarden/ldap.pw");
	assert_string_equal(cfg.ldap.user_filter, "(sAMAccountName=%s)");
	assert_string_equal(cfg.ldap.netbios_domain, "CORP");
	assert_true(cfg.ldap.starttls);
	assert_int_equal(cfg.ldap.timeout, 10);
	assert_string_equal(cfg.role_groups[0],
			    "CN=Helpdesk,OU=Groups,DC=corp,DC=example,DC=com");
	assert_string_equal(cfg.role_groups[1],
			    "CN=Helpdesk Admins,OU=Groups,DC=corp,DC=example,DC=com");
	assert_string_equal(cfg.role_groups[2],
			    "CN=Auditors,OU=Groups,DC=corp,DC=example,DC=com");
	assert_string_equal(cfg.role_groups[3],
			    "CN=KW Admins,OU=Groups,DC=corp,DC=example,DC=com");
	assert_int_equal(cfg.domains.n, 2);
	assert_string_equal(cfg.domains.dom[0].netbios, "EMEA");
	assert_string_equal(cfg.domains.dom[0].dns, "emea.example.com");
	assert_string_equal(cfg.domains.dom[1].netbios, "APAC");
	assert_string_equal(cfg.domains.dom[1].dns, "apac.example.com");
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), 0);
	config_free(&cfg);
}

static void test_unknown_key_names_line(void **state)
{
	expect_error("[server]\n"
		     "listen = 127.0.0.1:8080\n"
		     "\n"
		     "; a comment\n"
		     "liste = 127.0.0.1:9090\n",
		     5, "unknown key 'liste' in section [server]");
	/* A key valid in another section is still unknown here. */
	expect_error("[portal]\ndatabase = sqlite:/x\n", 2,
		     "unknown key 'database' in section [portal]");
	/* Language variants exist only for the three texts. */
	expect_error("[server]\nlisten.sv = 127.0.0.1:80\n", 2,
		     "unknown key 'listen.sv' in section [server]");
	expect_error("listen = 127.0.0.1:80\n", 1,
		     "key 'listen' is outside any section");
	/* [roles] has a key per role, spelled as in core/role. */
	expect_error("[roles]\nadmin = CN=a\nauditor = CN=b\n", 3,
		     "unknown key 'auditor' in section [roles]");
}

static void test_unknown_section_names_line(void **state)
{
	expect_error("# keywarden\n"
		     "[server]\n"
		     "listen = 127.0.0.1:8080\n"
		     "\n"
		     "[sever]\n"
		     "listen = 127.0.0.1:8080\n",
		     5, "unknown section [sever]");
	/* inih never calls the handler for an empty section. */
	expect_error("[server]\n[portal]\n[nope]\n", 3, "unknown section [nope]");
}

static void test_syntax_errors_name_line(void **state)
{
	expect_error("[server]\nlisten = 127.0.0.1:8080\nallow_plain_http\n", 3,
		     "expected 'key = value'");
	/* Also on the last line without a newline. */
	expect_error("[server]\nworker_threads 4", 2, "expected 'key = value'");
	expect_error("[server\nlisten = 127.0.0.1:8080\n", 1,
		     "'[server': a section name needs a closing ']'");
	/* CRLF and a byte order mark do not shift the count. */
	expect_error("\xef\xbb\xbf[server]\r\nlisten = 127.0.0.1:1\r\n\r\n"
		     "oops\r\n", 4, "expected 'key = value'");
}

static void test_comments_bom_crlf_indent(void **state)
{
	struct config cfg;
	char msg[256];

	assert_int_equal(load("\xef\xbb\xbf# top\r\n"
			      "[portal]\r\n"
			      "company_name = Fabrikam ; inline comment\r\n"
			      "  helpdesk_text = Indented key\r\n"
			      "\thelpdesk_url: https://x.example/\r\n"
			      "; session_warning = 1s\r\n",
			      &cfg, msg, sizeof(msg)), 0);
	assert_string_equal(cfg.company_name.def, "Fabrikam");
	/* An indented line is a key of its own, not a continuation. */
	assert_string_equal(cfg.helpdesk_text.def, "Indented key");
	assert_string_equal(cfg.helpdesk_url.def, "https://x.example/");
	assert_int_equal(cfg.session_warning, 60);
	config_free(&cfg);
}

/* Only the keys in the file change; a second load reads over the first. */
static void test_load_over_existing(void **state)
{
	static const char a[] = "[server]\nworker_threads = 4\n";
	static const char b[] = "[portal]\ncompany_name = B\n";
	struct config cfg;
	char path_a[sizeof(TMPL)], path_b[sizeof(TMPL)], msg[256];

	write_tmp(path_a, a, sizeof(a) - 1);
	write_tmp(path_b, b, sizeof(b) - 1);
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(config_load(&cfg, path_a, msg, sizeof(msg)), 0);
	assert_int_equal(config_load(&cfg, path_b, msg, sizeof(msg)), 0);
	unlink(path_a);
	unlink(path_b);
	assert_int_equal(cfg.worker_threads, 4);
	assert_string_equal(cfg.company_name.def, "B");
	assert_string_equal(cfg.listen, "127.0.0.1:8080");
	assert_string_equal(cfg.path, path_b);
	config_free(&cfg);
}

static void test_duplicate_key_last_wins(void **state)
{
	struct config cfg;
	char msg[256];

	assert_int_equal(load("[server]\nworker_threads = 2\n"
			      "[portal]\ncompany_name.sv = A\n"
			      "[server]\nworker_threads = 3\n"
			      "[portal]\ncompany_name.SV = B\n",
			      &cfg, msg, sizeof(msg)), 0);
	assert_int_equal(cfg.worker_threads, 3);
	assert_int_equal(cfg.company_name.nvar, 1);
	assert_string_equal(cfg.company_name.var[0].text, "B");
	config_free(&cfg);
}

static void test_bad_duration(void **state)
{
	expect_error("[portal]\nsession_warning = 30s\nsession_idle_timeout = 5x\n",
		     3, "session_idle_timeout: '5x' is not a duration (use e.g. "
		     "90s, 5m, 1h or 0)");
	expect_error("[portal]\nsession_max_lifetime = -1h\n", 2,
		     "session_max_lifetime: '-1h' is not a duration (use e.g. "
		     "90s, 5m, 1h or 0)");
	expect_error("[portal]\nsession_idle_timeout = 3651d\n", 2,
		     "session_idle_timeout: '3651d' is out of range (0 to 3650d)");
	expect_error("[portal]\nstale_after = 0\n", 2,
		     "stale_after: '0' is out of range (1s to 3650d)");
	expect_error("[ldap]\ntimeout = 2h\n", 2,
		     "timeout: '2h' is out of range (1s to 1h)");
}

static void test_bad_bool_and_number(void **state)
{
	expect_error("[server]\nallow_plain_http = maybe\n", 2,
		     "allow_plain_http: 'maybe' is not a boolean (use true or false)");
	expect_error("[portal]\ndisplay_notice =\n", 2,
		     "display_notice: '' is not a boolean (use true or false)");
	expect_error("[server]\nworker_threads = 1025\n", 2,
		     "worker_threads: '1025' is not a number from 0 to 1024");
	expect_error("[server]\nmax_connections = 0\n", 2,
		     "max_connections: '0' is not a number from 1 to 100000");
	expect_error("[server]\nmax_connections = 10k\n", 2,
		     "max_connections: '10k' is not a number from 1 to 100000");
}

static void test_rates(void **state)
{
	static const char *const bad[] = {
		"5", "5/", "/15m", "0/15m", "1000001/1m", "5/0", "5/15x",
		"five/15m", "-5/15m", "5/15m/1", "5/3651d",
	};
	struct config cfg;
	char text[128], reason[256], msg[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[limits]\nlogin_failures = %s\n",
			 bad[i]);
		snprintf(reason, sizeof(reason), "login_failures: '%s' is not a "
			 "rate (use COUNT/DURATION, e.g. 5/15m, with COUNT from 1 "
			 "to 1000000)", bad[i]);
		expect_error(text, 2, reason);
	}
	assert_int_equal(load("[limits]\nlookup_failures = 1000000/1s\n"
			      "login_failures = 3 / 2h\n",
			      &cfg, msg, sizeof(msg)), 0);
	assert_int_equal(cfg.lookup_failures.count, 1000000);
	assert_int_equal(cfg.lookup_failures.window, 1);
	assert_int_equal(cfg.login_failures.count, 3);
	assert_int_equal(cfg.login_failures.window, 7200);
	config_free(&cfg);
}

static void test_bad_listen(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
		"127.0.0.1:80x", "127.0.0.1:+80", "example.com:80", "::1:8080",
		"[::1:8080", "[::1]8080", "[127.0.0.1]:80", "256.0.0.1:80",
		":8080", "[]:80", "",
	};
	char text[128], reason[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nlisten = %s\n", bad[i]);
		snprintf(reason, sizeof(reason), "listen: '%s' is not HOST:PORT "
			 "(use e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:443 or "
			 "localhost:8080)", bad[i]);
		expect_error(text, 2, reason);
	}
}

static void test_listen_addr(void **state)
{
	/* Port 0: the system picks a free port (the server logs it). */
	{
		struct config c0;
		char h0[64], m0[256];
		uint16_t p0 = 1;

		assert_int_equal(config_defaults(&c0), 0);
		free(c0.listen);
		c0.listen = strdup("127.0.0.1:0");
		assert_int_equal(config_listen_addr(&c0, h0, sizeof(h0), &p0), 0);
		assert_int_equal(p0, 0);
		assert_int_equal(config_validate(&c0, m0, sizeof(m0)), 0);
		config_free(&c0);
	}

	static const struct {
		const char *listen, *host;
		uint16_t port;
	} good[] = {
		{ "127.0.0.1:8080", "127.0.0.1", 8080 },
		{ "[::1]:8443", "::1", 8443 },
		{ "[::]:1", "::", 1 },
		{ "0.0.0.0:65535", "0.0.0.0", 65535 },
		{ "localhost:80", "127.0.0.1", 80 },
		{ "LocalHost:81", "127.0.0.1", 81 },
	};
	struct config cfg = { 0 };
	char host[64];
	uint16_t port;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cfg.listen = (char *)good[i].listen;
		assert_int_equal(config_listen_addr(&cfg, host, sizeof(host),
						    &port), 0);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	/* A host buffer that is too small is an error, not a cut address. */
	cfg.listen = "127.0.0.1:80";
	assert_int_equal(config_listen_addr(&cfg, host, 9, &port),
			 KW_ERR_INVALID);
	assert_int_equal(config_listen_addr(&cfg, host, 10, &port), 0);
	cfg.listen = NULL;
	assert_int_equal(config_listen_addr(&cfg, host, sizeof(host), &port),
			 KW_ERR_INVALID);
}

static void test_tls_pair(void **state)
{
	char msg[512];

	assert_int_equal(validate_text("[server]\ntls_certificate = /c.pem\n",
				       msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "tls_certificate and tls_key must be set together");
	assert_int_equal(validate_text("[server]\ntls_key = /k.pem\n",
				       msg, sizeof(msg)), KW_ERR_INVALID);
	assert_contains(msg, "tls_certificate and tls_key must be set together");
	assert_int_equal(validate_text("[server]\ntls_certificate = /c.pem\n"
				       "tls_key = /k.pem\n", msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
}

static void test_plain_http_loopback_only(void **state)
{
	static const char *const loopback[] = {
		"127.0.0.1:8080", "127.4.5.6:80", "[::1]:80", "localhost:80",
		"[::ffff:127.0.0.1]:80",
	};
	static const char *const public[] = {
		"0.0.0.0:80", "192.0.2.1:80", "[::]:80", "[2001:db8::1]:80",
		"128.0.0.1:80", "[::ffff:192.0.2.1]:80",
	};
	const char *want = "plain HTTP is only allowed on a loopback address; "
			   "set tls_certificate and tls_key, or allow_plain_http "
			   "= true behind a TLS proxy";
	char text[256], msg[512];

	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nlisten = %s\n",
			 loopback[i]);
		assert_int_equal(validate_text(text, msg, sizeof(msg)), 0);
	}
	for (size_t i = 0; i < sizeof(public) / sizeof(public[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nlisten = %s\n", public[i]);
		assert_int_equal(validate_text(text, msg, sizeof(msg)),
				 KW_ERR_INVALID);
		assert_contains(msg, want);
		snprintf(text, sizeof(text), "[server]\nlisten = %s\n"
			 "allow_plain_http = true\n", public[i]);
		assert_int_equal(validate_text(text, msg, sizeof(msg)), 0);
		snprintf(text, sizeof(text), "[server]\nlisten = %s\n"
			 "tls_certificate = /c\ntls_key = /k\n", public[i]);
		assert_int_equal(validate_text(text, msg, sizeof(msg)), 0);
	}
}

static void test_validate_checks(void **state)
{
	struct config cfg;
	char msg[512];

	/* The reason alone: the caller names the file. */
	assert_int_equal(config_defaults(&cfg), 0);
	cfg.path = strdup("/etc/keywarden/keywarden.conf");
	cfg.session_idle_timeout = 60;
	cfg.session_warning = 60;
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "session_warning (1m) must be shorter than "
			    "session_idle_timeout (1m)");
	cfg.session_warning = 59;
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), 0);
	/* No idle timeout: the warning never shows, any value will do. */
	cfg.session_idle_timeout = 0;
	cfg.session_warning = 600;
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), 0);

	/* The store says which databases this build can open, and the
	 * message names the key. */
	free(cfg.database);
	cfg.database = strdup("mysql://db/kw");
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "database = mysql://db/kw: use sqlite:PATH or "
			    "postgresql://…");
	config_free(&cfg);

	expect_error("[storage]\ndatabase = /var/lib/kw.db\n", 2,
		     "database = /var/lib/kw.db: use sqlite:PATH or postgresql://…");
	expect_error("[storage]\ndatabase = sqlite:\n", 2,
		     "database = sqlite: needs a file path");
	/* postgresql:// and postgres:// name the PostgreSQL store. */
	assert_int_equal(validate_text("[storage]\ndatabase = postgres://db/kw\n", msg,
				       sizeof(msg)), 0);
	assert_int_equal(validate_text("[storage]\ndatabase = postgresql://u@db:5433/kw\n",
				       msg, sizeof(msg)), 0);

	assert_int_equal(validate_text("[ldap]\nuri = ldaps://dc\n"
				       "starttls = true\n", msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_contains(msg, "starttls = true cannot be used with an ldaps://");
}

static void test_backends(void **state)
{
	struct config cfg;
	char msg[256];

	expect_error("[auth]\nbackends = local, LOCAL\n", 2,
		     "backends: 'LOCAL' is listed twice");
	expect_error("[auth]\nbackends = local, kerberos\n", 2,
		     "backends: 'kerberos' is not a sign-in backend of this "
		     "keywarden (use local, ldap)");
	/* A backend that is not built in stops start-up instead of being
	 * skipped at every sign-in. */
	expect_error("# directory first\n[auth]\nbackends = kerberos, local\n", 3,
		     "backends: 'kerberos' is not a sign-in backend of this "
		     "keywarden (use local, ldap)");
	assert_int_equal(load("[auth]\nbackends = LDAP, local\n[ldap]\nuri = ldap://dc1\n"
			      "base_dn = dc=corp\n", &cfg, msg, sizeof(msg)), 0);
	/* Without netbios_domain a directory user could be a bare name that
	 * a local account (init's "admin") has. */
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_non_null(strstr(msg, "[ldap] needs netbios_domain"));
	config_free(&cfg);
	assert_int_equal(load("[auth]\nbackends = LDAP, local\n[ldap]\nuri = ldap://dc1\n"
			      "base_dn = dc=corp\nnetbios_domain = CORP\n", &cfg, msg,
			      sizeof(msg)), 0);
	assert_string_equal(cfg.backends.item[0], "ldap");
	/* Plain ldap:// to another machine would send passwords in clear. */
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "[ldap] uri 'ldap://dc1': plain ldap:// to another machine "
			    "would send passwords in clear; use ldaps://, or starttls = true");
	cfg.ldap.starttls = true;
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), 0);
	cfg.ldap.starttls = false;
	static const char *const here[] = {
		"ldap://127.0.0.1:3890", "ldap://localhost", "ldap://[::1]:389",
		"ldaps://dc1 ldapi://%2Frun%2Fslapd%2Fldapi", "ldap:///",
	};
	for (size_t i = 0; i < sizeof(here) / sizeof(here[0]); i++) {
		free(cfg.ldap.uri);
		cfg.ldap.uri = strdup(here[i]);
		assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), 0);
	}
	free(cfg.ldap.uri);
	cfg.ldap.uri = strdup("ldap://127.0.0.1, ldap://10.0.0.5:389");
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_non_null(strstr(msg, "'ldap://10.0.0.5:389'"));
	cfg.ldap.starttls = true;
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), 0);
	free(cfg.ldap.base_dn);
	cfg.ldap.base_dn = strdup("");
	assert_int_equal(config_validate(&cfg, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, "backends names ldap: [ldap] needs uri and base_dn");
	config_free(&cfg);
	expect_error("[auth]\nbackends = ,\n", 2,
		     "backends: at least one name is needed");
	assert_int_equal(load("[auth]\nbackends = LOCAL\n", &cfg, msg,
			      sizeof(msg)), 0);
	assert_int_equal(cfg.backends.n, 1);
	assert_string_equal(cfg.backends.item[0], "local");
	assert_null(cfg.backends.item[1]);
	config_free(&cfg);
}

static void test_ldap_values(void **state)
{
	expect_error("[ldap]\nuser_filter = (uid=%s)(cn=%s)\n", 2,
		     "user_filter: '(uid=%s)(cn=%s)' must be a parenthesised LDAP "
		     "filter with exactly one %s and no other % (e.g. "
		     "(sAMAccountName=%s))");
	expect_error("[ldap]\nuser_filter = (uid=%d)\n", 2,
		     "user_filter: '(uid=%d)' must be a parenthesised LDAP "
		     "filter with exactly one %s and no other % (e.g. "
		     "(sAMAccountName=%s))");
	expect_error("[ldap]\nuser_filter = (uid=%s%n)\n", 2,
		     "user_filter: '(uid=%s%n)' must be a parenthesised LDAP "
		     "filter with exactly one %s and no other % (e.g. "
		     "(sAMAccountName=%s))");
	expect_error("[ldap]\nuser_filter = uid=%s\n", 2,
		     "user_filter: 'uid=%s' must be a parenthesised LDAP "
		     "filter with exactly one %s and no other % (e.g. "
		     "(sAMAccountName=%s))");
	expect_error("[ldap]\nuri = ldap://dc1, http://dc2\n", 2,
		     "uri: 'http://dc2' is not an LDAP URI (use ldap://HOST, "
		     "ldaps://HOST or ldapi://)");
	expect_error("[ldap]\nnetbios_domain = CORP\\X\n", 2,
		     "netbios_domain: 'CORP\\X' is not a NetBIOS domain name (1 "
		     "to 15 letters, digits, - or _)");
	expect_error("[server]\ntrusted_proxies = 10.0.0.1, proxy.example\n", 2,
		     "trusted_proxies: 'proxy.example' is not an IP address or CIDR "
		     "range such as 10.0.0.0/8 with the host bits zero (list them "
		     "separated by commas)");
	expect_error("[storage]\nkey_file =\n", 2, "key_file: must not be empty");
}

static void test_language_variants(void **state)
{
	struct config cfg;
	char msg[256];

	assert_int_equal(load("[portal]\n"
			      "helpdesk_text = Call IT\n"
			      "helpdesk_text.sv = Ring IT\n"
			      "helpdesk_text.SV-se = Ring IT Sverige\n"
			      "helpdesk_text.es-419 = Llame a IT\n",
			      &cfg, msg, sizeof(msg)), 0);
	assert_int_equal(cfg.helpdesk_text.nvar, 3);
	assert_string_equal(cfg.helpdesk_text.var[1].lang, "sv-SE");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "sv-SE"),
			    "Ring IT Sverige");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "sv-se"),
			    "Ring IT Sverige");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "sv-FI"), "Ring IT");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "sv"), "Ring IT");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "SV"), "Ring IT");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "es-419"),
			    "Llame a IT");
	/* "es" alone does not pick a regional variant. */
	assert_string_equal(ini_text(&cfg.helpdesk_text, "es"), "Call IT");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "de-DE"), "Call IT");
	assert_string_equal(ini_text(&cfg.helpdesk_text, "en"), "Call IT");
	assert_string_equal(ini_text(&cfg.helpdesk_text, ""), "Call IT");
	assert_string_equal(ini_text(&cfg.helpdesk_text, NULL), "Call IT");
	/* A text with no variants at all. */
	assert_string_equal(ini_text(&cfg.company_name, "sv-SE"),
			    "Contoso IT");
	config_free(&cfg);

	expect_error("[portal]\ncompany_name.swedish = X\n", 2,
		     "company_name: 'swedish' is not a language tag (use e.g. sv "
		     "or sv-SE)");
	expect_error("[portal]\ncompany_name.sv-S = X\n", 2,
		     "company_name: 'sv-S' is not a language tag (use e.g. sv or "
		     "sv-SE)");
	expect_error("[portal]\ncompany_name. = X\n", 2,
		     "company_name: '' is not a language tag (use e.g. sv or "
		     "sv-SE)");
	expect_error("[portal]\n"
		     "company_name.sv = 1\ncompany_name.de = 2\n"
		     "company_name.fr = 3\ncompany_name.nl = 4\n"
		     "company_name.sv = 5\n"    /* a repeat is no new variant */
		     "company_name.fi = 6\n",
		     7, "company_name.fi: more than 4 language variants");
}

static void test_zeroed_lang_text(void **state)
{
	struct ini_text t = { 0 };

	assert_string_equal(ini_text(&t, "sv"), "");
}

static void test_helpdesk_url(void **state)
{
	static const char *const bad[] = {
		"javascript:alert(1)", "JavaScript://x", "data:text/html,x",
		"//evil.example", "https://", "https:///path", "ftp://x.example",
		"https://a b",
	};
	char text[128], reason[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[portal]\nhelpdesk_url.sv = %s\n",
			 bad[i]);
		snprintf(reason, sizeof(reason), "helpdesk_url.sv: '%s' must be a "
			 "web address starting with https:// or http://", bad[i]);
		expect_error(text, 2, reason);
	}
}

static void test_control_characters_rejected(void **state)
{
	expect_error("[portal]\ncompany_name = a\tb\n", 2,
		     "company_name: the value has control characters or is not "
		     "UTF-8");
	expect_error("[portal]\ncompany_name = \xc0\xaf\n", 2,
		     "company_name: the value has control characters or is not "
		     "UTF-8");
	/* Error messages do not echo control characters either. */
	expect_error("[server]\nfoo\x1b[31m = 1\n", 2,
		     "unknown key 'foo?[31m' in section [server]");
}

static void test_trusted_proxies(void **state)
{
	static const unsigned char v4[4] = { 10, 1, 2, 3 }, other4[4] = { 11, 1, 2, 3 },
		mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 },
		v6[16] = { 0xfd, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
		one[16] = { [15] = 1 };
	struct ini_cidr c, c2, list[CONFIG_MAX_PROXIES];
	struct config cfg;
	char msg[256], many[40 * 12] = "[server]\ntrusted_proxies = ";

	assert_int_equal(ini_cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(c.bits, 8);
	assert_true(ini_cidr_contains(&c, AF_INET, v4));
	assert_true(ini_cidr_contains(&c, AF_INET6, mapped));
	assert_false(ini_cidr_contains(&c, AF_INET, other4));
	assert_false(ini_cidr_contains(&c, AF_INET6, v6));
	assert_int_equal(ini_cidr_parse("10.1.2.3", &c), 0);
	assert_int_equal(c.bits, 32);
	assert_true(ini_cidr_contains(&c, AF_INET, v4));
	assert_int_equal(ini_cidr_parse("10.1.2.2/31", &c), 0);
	assert_true(ini_cidr_contains(&c, AF_INET, v4));
	assert_int_equal(ini_cidr_parse("fd00::/8", &c), 0);
	assert_true(ini_cidr_contains(&c, AF_INET6, v6));
	assert_false(ini_cidr_contains(&c, AF_INET, v4));
	assert_false(ini_cidr_contains(&c, AF_INET6, one));
	assert_int_equal(ini_cidr_parse("::1", &c), 0);
	assert_int_equal(c.bits, 128);
	assert_true(ini_cidr_contains(&c, AF_INET6, one));
	assert_false(ini_cidr_contains(&c, AF_INET6, v6));
	/* Everyone is no proxy list; a mapped IPv6 entry is its IPv4 address. */
	assert_int_equal(ini_cidr_parse("0.0.0.0/0", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("::/0", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("::ffff:10.1.2.3", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.bits, 32);
	assert_int_equal(ini_cidr_parse("10.1.2.3", &c2), 0);
	assert_memory_equal(c.addr, c2.addr, 4);
	assert_int_equal(ini_cidr_parse("::ffff:10.0.0.0/104", &c), 0);
	assert_int_equal(c.bits, 8);
	assert_true(ini_cidr_contains(&c, AF_INET, c2.addr));
	assert_false(ini_cidr_contains(&c, AF_INET, other4));
	/* host bits set, prefixes out of range, not numbers, not addresses */
	assert_int_equal(ini_cidr_parse("10.0.0.1/8", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("fd00::1/8", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("10.0.0.0/33", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("::/129", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("10.0.0.0/", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("10.0.0.0/+8", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("/8", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("10.0.0/8", &c), KW_ERR_INVALID);
	assert_int_equal(ini_cidr_parse("proxy.example", &c), KW_ERR_INVALID);

	assert_int_equal(load("[server]\ntrusted_proxies = 10.0.0.0/8, ::1 ,fd00::/8\n",
			      &cfg, msg, sizeof(msg)), 0);
	assert_int_equal(config_proxies(&cfg, list), 3);
	assert_int_equal(list[0].family, AF_INET);
	assert_int_equal(list[0].bits, 8);
	assert_int_equal(list[1].family, AF_INET6);
	assert_int_equal(list[1].bits, 128);
	assert_int_equal(list[2].bits, 8);
	config_free(&cfg);
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(config_proxies(&cfg, list), 0);
	config_free(&cfg);

	expect_error("[server]\ntrusted_proxies = 10.0.0.1/8\n", 2,
		     "trusted_proxies: '10.0.0.1/8' is not an IP address or CIDR "
		     "range such as 10.0.0.0/8 with the host bits zero (list them "
		     "separated by commas)");
	/* short entries: Debian's libinih reads lines of at most 198 bytes */
	for (int i = 0; i <= CONFIG_MAX_PROXIES; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "::1,");
	snprintf(many + strlen(many), sizeof(many) - strlen(many), "\n");
	expect_error(many, 2, "trusted_proxies: more than 32 entries");
	expect_error("[server]\nmax_connections_per_address = 0\n", 2,
		     "max_connections_per_address: '0' is not a number from 1 to 100000");
}

static void test_identity_domains(void **state)
{
	struct config cfg;
	char msg[256];

	assert_int_equal(load("[identity]\n"
			      "domains = CORP:corp.example.com,LAB : lab.corp."
			      "example.com , , X-1:x1.example\n",
			      &cfg, msg, sizeof(msg)), 0);
	assert_int_equal(cfg.domains.n, 3);
	assert_string_equal(cfg.domains.dom[0].netbios, "CORP");
	assert_string_equal(cfg.domains.dom[0].dns, "corp.example.com");
	assert_string_equal(cfg.domains.dom[1].netbios, "LAB");
	assert_string_equal(cfg.domains.dom[1].dns, "lab.corp.example.com");
	assert_string_equal(cfg.domains.dom[2].netbios, "X-1");
	assert_string_equal(cfg.domains.dom[2].dns, "x1.example");
	config_free(&cfg);

	assert_int_equal(load("[identity]\ndomains =\n", &cfg, msg, sizeof(msg)),
			 0);
	assert_int_equal(cfg.domains.n, 0);
	config_free(&cfg);

	expect_error("[identity]\ndomains = CORP\n", 2,
		     "domains: 'CORP' is not NETBIOS:dns.name");
	expect_error("[identity]\ndomains = CORP:corp..example\n", 2,
		     "domains: 'CORP:corp..example' is not NETBIOS:dns.name");
	expect_error("[identity]\ndomains = CORP:-corp.example\n", 2,
		     "domains: 'CORP:-corp.example' is not NETBIOS:dns.name");
	expect_error("[identity]\ndomains = TOOLONGNETBIOSNAME:x.example\n", 2,
		     "domains: 'TOOLONGNETBIOSNAME:x.example' is not "
		     "NETBIOS:dns.name");
	expect_error("[identity]\ndomains = :x.example\n", 2,
		     "domains: ':x.example' is not NETBIOS:dns.name");
	expect_error("[identity]\ndomains = A:a.example, a:b.example\n", 2,
		     "domains: 'a:b.example' repeats a NetBIOS name");
	expect_error("[identity]\ndomains = A:a,B:b,C:c,D:d,E:e,F:f,G:g,H:h,"
		     "I:i,J:j,K:k,L:l,M:m,N:n,O:o,P:p,Q:q\n", 2,
		     "domains: 'Q:q' is one domain too many (at most 16)");
}

static void test_long_lines(void **state)
{
	struct config cfg;
	char path[sizeof(TMPL)], msg[512], want[512];
	char *text = malloc(8000), *v;
	size_t n;
	int r;

	assert_non_null(text);
	/* A long line that fits is read whole. */
	n = (size_t)snprintf(text, 8000, "[portal]\nhelpdesk_text = ");
	memset(text + n, 'a', 170);
	memcpy(text + n + 170, "\nhelpdesk_url = https://x.example/\n", 36);
	assert_int_equal(load(text, &cfg, msg, sizeof(msg)), 0);
	assert_int_equal(strlen(cfg.helpdesk_text.def), 170);
	assert_string_equal(cfg.helpdesk_url.def, "https://x.example/");
	config_free(&cfg);

	/* Over the cap: an error on that line, never a value cut in two. */
	n = (size_t)snprintf(text, 8000, "[portal]\n\nhelpdesk_text = ");
	memset(text + n, 'b', 5000);
	memcpy(text + n + 5000, "\n", 2);
	assert_int_equal(load_len(text, strlen(text), &cfg, msg, sizeof(msg),
				  path), KW_ERR_INVALID);
	snprintf(want, sizeof(want), "%s:3: the line is longer than ", path);
	assert_memory_equal(msg, want, strlen(want));
	config_free(&cfg);

	/* In between, depending on how libinih was built: whole or an error,
	 * never split (the tail of the line used to become a second key). */
	n = (size_t)snprintf(text, 8000, "[roles]\nadmin = ");
	v = text + n;
	for (size_t i = 0; i < 30; i++)
		memcpy(v + 10 * i, "OU=abcdef,", 10);
	memcpy(v + 300, "DC=x\n", 6);
	r = load_len(text, strlen(text), &cfg, msg, sizeof(msg), path);
	if (r == 0) {
		assert_int_equal(strlen(cfg.role_groups[3]), 304);
	} else {
		assert_int_equal(r, KW_ERR_INVALID);
		snprintf(want, sizeof(want), "%s:2: the line is longer than ",
			 path);
		assert_memory_equal(msg, want, strlen(want));
	}
	config_free(&cfg);
	free(text);
}

static void test_nul_byte(void **state)
{
	static const char text[] = "[server]\nlisten = 127.0.0.1:80\0junk\n";
	struct config cfg;
	char path[sizeof(TMPL)], msg[256], want[256];

	assert_int_equal(load_len(text, sizeof(text) - 1, &cfg, msg, sizeof(msg),
				  path), KW_ERR_INVALID);
	snprintf(want, sizeof(want), "%s:2: the line holds a NUL byte", path);
	assert_string_equal(msg, want);
	config_free(&cfg);
}

static void test_file_too_large(void **state)
{
	size_t len = 1024 * 1024 + 1;
	char *text = malloc(len);
	struct config cfg;
	char path[sizeof(TMPL)], msg[256], want[256];

	assert_non_null(text);
	/* Valid content: only the size is wrong. */
	memset(text, '\n', len);
	memcpy(text, "# big\n", 6);
	assert_int_equal(load_len(text, len, &cfg, msg, sizeof(msg), path),
			 KW_ERR_INVALID);
	snprintf(want, sizeof(want), "%s: the file is larger than 1 MiB", path);
	assert_string_equal(msg, want);
	config_free(&cfg);
	/* Exactly 1 MiB is fine. */
	assert_int_equal(load_len(text, len - 1, &cfg, msg, sizeof(msg), path), 0);
	config_free(&cfg);
	free(text);
}

static void test_missing_file(void **state)
{
	struct config cfg;
	char path[sizeof(TMPL)], msg[256], want[256];

	write_tmp(path, "", 0);
	unlink(path);
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(config_load(&cfg, path, msg, sizeof(msg)), KW_ERR_IO);
	snprintf(want, sizeof(want), "cannot open %s: No such file or directory",
		 path);
	assert_string_equal(msg, want);
	/* Still the defaults, and safe to free. */
	assert_string_equal(cfg.listen, "127.0.0.1:8080");
	config_free(&cfg);

	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(config_load(&cfg, "/tmp", msg, sizeof(msg)), KW_ERR_IO);
	assert_string_equal(msg, "cannot read /tmp: Is a directory");
	config_free(&cfg);
}

/* dump → load gives the same values, and dumping again the same text. */
static void check_round_trip(const struct config *cfg)
{
	struct config again;
	struct buf out, out2;
	char path[sizeof(TMPL)], msg[256];

	buf_init(&out, 1 << 20);
	buf_init(&out2, 1 << 20);
	assert_int_equal(config_dump(cfg, &out), 0);
	assert_int_equal(load_len(out.data, out.len, &again, msg, sizeof(msg),
				  path), 0);
	assert_config_equal(cfg, &again);
	assert_int_equal(config_dump(&again, &out2), 0);
	assert_string_equal(out.data, out2.data);
	config_free(&again);
	buf_free(&out);
	buf_free(&out2);
}

static void test_dump_round_trip(void **state)
{
	struct config cfg;
	struct buf out;
	char msg[256];

	assert_int_equal(load(full_text, &cfg, msg, sizeof(msg)), 0);
	check_round_trip(&cfg);

	/* Every section and the variants are written. */
	buf_init(&out, 1 << 20);
	assert_int_equal(config_dump(&cfg, &out), 0);
	assert_contains(out.data, "[server]\nlisten = 192.0.2.10:8443\n");
	assert_contains(out.data, "\n[storage]\n");
	assert_contains(out.data, "\nhelpdesk_text.sv-FI = Ring 555-0199\n");
	assert_contains(out.data, "\nlogin_failures = 7/30m\n");
	assert_contains(out.data, "\n[auth]\nbackends = local\n");
	assert_contains(out.data, "\nbind_password_file = /etc/keywarden/ldap.pw\n");
	assert_contains(out.data, "\n[roles]\n");
	assert_contains(out.data, "\n[identity]\ndomains = EMEA:emea.example.com, "
			"APAC:apac.example.com\n");
	buf_free(&out);
	config_free(&cfg);

	assert_int_equal(config_defaults(&cfg), 0);
	check_round_trip(&cfg);
	buf_init(&out, 1 << 20);
	assert_int_equal(config_dump(&cfg, &out), 0);
	assert_contains(out.data, "\ntls_certificate =\n");
	assert_contains(out.data, "\nsession_idle_timeout = 5m\n");
	buf_free(&out);
	config_free(&cfg);
}

/* Values that "key = value" would not carry back: a leading ';' and lines
 * near the length limit. */
static void test_dump_round_trip_edges(void **state)
{
	struct config cfg;
	char text[1024], msg[256];
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "[portal]\ncompany_name=;odd\n"
			     "helpdesk_text=");
	memset(text + n, 'x', 180);
	n += 180;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\n[identity]\n"
			      "domains=");
	for (char c = 'A'; c <= 'P'; c++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%c:%c%c%c%c"
				      "%c.ex", c == 'A' ? "" : ",", c, c, c, c,
				      c, c);
	memcpy(text + n, "\n", 2);
	assert_int_equal(load(text, &cfg, msg, sizeof(msg)), 0);
	assert_string_equal(cfg.company_name.def, ";odd");
	assert_int_equal(cfg.domains.n, 16);
	check_round_trip(&cfg);
	config_free(&cfg);
}

static void test_dump_cap(void **state)
{
	struct config cfg;
	struct buf out;

	assert_int_equal(config_defaults(&cfg), 0);
	buf_init(&out, 64);
	assert_int_equal(config_dump(&cfg, &out), KW_ERR_TOO_LARGE);
	buf_free(&out);
	config_free(&cfg);
}

static void test_free_is_safe(void **state)
{
	struct config cfg = { 0 };

	config_free(&cfg);
	config_free(NULL);
	assert_int_equal(config_defaults(&cfg), 0);
	config_free(&cfg);
	/* config_free leaves a zeroed struct: a second call is harmless. */
	config_free(&cfg);
	assert_null(cfg.listen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file_gives_defaults),
		cmocka_unit_test(test_every_key_parses),
		cmocka_unit_test(test_unknown_key_names_line),
		cmocka_unit_test(test_unknown_section_names_line),
		cmocka_unit_test(test_syntax_errors_name_line),
		cmocka_unit_test(test_comments_bom_crlf_indent),
		cmocka_unit_test(test_load_over_existing),
		cmocka_unit_test(test_duplicate_key_last_wins),
		cmocka_unit_test(test_bad_duration),
		cmocka_unit_test(test_bad_bool_and_number),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_bad_listen),
		cmocka_unit_test(test_listen_addr),
		cmocka_unit_test(test_tls_pair),
		cmocka_unit_test(test_plain_http_loopback_only),
		cmocka_unit_test(test_validate_checks),
		cmocka_unit_test(test_backends),
		cmocka_unit_test(test_ldap_values),
		cmocka_unit_test(test_language_variants),
		cmocka_unit_test(test_zeroed_lang_text),
		cmocka_unit_test(test_helpdesk_url),
		cmocka_unit_test(test_control_characters_rejected),
		cmocka_unit_test(test_trusted_proxies),
		cmocka_unit_test(test_identity_domains),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_file_too_large),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_dump_round_trip),
		cmocka_unit_test(test_dump_round_trip_edges),
		cmocka_unit_test(test_dump_cap),
		cmocka_unit_test(test_free_is_safe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
