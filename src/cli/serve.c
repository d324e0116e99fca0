#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/password.h"
#include "auth/session.h"
#include "cli/cli.h"
#include "http/server.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "web/app.h"

#define DRAIN_TIMEOUT_MS 30000
#define PEM_MAX (1024 * 1024)
#define DEFAULT_WORKERS 64
/* Sign-in threads: a slow directory or a burst of password hashes holds
 * only these, never the workers that answer /recover and /healthz. */
#define SIGNIN_WORKERS 16
#define PURGE_INTERVAL_S 60

const char usage_serve[] =
	"usage: keywarden serve\n"
	"\n"
	"Runs the server with the configuration file's settings until SIGTERM or\n"
	"SIGINT, then finishes the requests in progress and exits.\n";

/* Reads a whole PEM file (at most PEM_MAX bytes) into a new string. */
static char *read_pem(const char *path)
{
	FILE *f = fopen(path, "re");
	char *data = NULL;
	size_t n;

	if (!f) {
		cli_error("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!(data = malloc(PEM_MAX + 1))) {
		fclose(f);
		return NULL;
	}
	n = fread(data, 1, PEM_MAX + 1, f);
	fclose(f);
	if (n == 0 || n > PEM_MAX) {
		cli_error("%s is empty or larger than %d bytes", path, PEM_MAX);
		sodium_memzero(data, PEM_MAX + 1);
		free(data);
		return NULL;
	}
	data[n] = '\0';
	return data;
}

int cli_serve_run(struct cli *c, const char *banner)
{
	struct http_server_opts o;
	struct http_server *srv = NULL;
	struct ini_cidr proxies[CONFIG_MAX_PROXIES];
	char host[256], msg[512], *cert = NULL, *key = NULL;
	struct app app;
	sigset_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct session_limits lim = { c->cfg.session_idle_timeout, c->cfg.session_max_lifetime };
	uint16_t port;
	int sig, nproxies, rc = 1;

	memset(&app, 0, sizeof(app));
	/* With dynamic trimming, freed memory is handed back with madvise after
	 * every burst, and the TLB shootdowns that follow cost more than the
	 * memory saved: no trimming below 32 MiB (big blocks such as argon2's
	 * are mapped on their own and still go back at once). */
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	/* Signals go to sigwait below, not to whichever thread runs. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (config_listen_addr(&c->cfg, host, sizeof(host), &port) < 0)
		return cli_error("listen = %s is not HOST:PORT", c->cfg.listen);
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if ((nproxies = config_proxies(&c->cfg, proxies)) < 0)
		return cli_error("trusted_proxies = %s cannot be read", c->cfg.trusted_proxies);
	if (c->cfg.tls_certificate && (!(cert = read_pem(c->cfg.tls_certificate)) ||
				       !(key = read_pem(c->cfg.tls_key))))
		goto out;
	if (app_open(&app, &c->cfg, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	password_set_concurrency(ncpu > 0 ? (unsigned)ncpu : 1);
	if (!i18n_init(msg, sizeof(msg)))
		log_warn("%s", msg);
	memset(&o, 0, sizeof(o));
	o.host = host;
	o.port = port;
	o.tls_cert_pem = cert;
	o.tls_key_pem = key;
	o.io_threads = ncpu > 0 ? (unsigned)ncpu : 1;
	o.workers = c->cfg.worker_threads ? (unsigned)c->cfg.worker_threads : DEFAULT_WORKERS;
	o.max_connections = (unsigned)c->cfg.max_connections;
	o.max_per_address = (unsigned)c->cfg.max_connections_per_address;
	o.proxies = proxies;
	o.nproxies = (size_t)nproxies;
	o.routes = app_routes;
	o.signin_workers = SIGNIN_WORKERS;
	o.authorize = app_authorize;
	o.runs_inline = app_runs_inline;
	o.auth_free = app_auth_free;
	o.error_page = app_error_page;
	o.app = &app;
	if (http_server_start(&o, &srv, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	log_info("keywarden listening on %s://%s%s%s:%u", cert ? "https" : "http",
		 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		 (unsigned)http_server_port(srv));
	if (banner) {
		fputs(banner, stdout);
		fflush(stdout);
	}
	/* Wait for a signal; meanwhile write the access log every second and
	 * drop sessions past their limits every minute. */
	for (int ticks = 1;; ticks++) {
		struct timespec tick = { 1, 0 };

		sig = sigtimedwait(&set, NULL, &tick);
		log_flush();
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (ticks % PURGE_INTERVAL_S == 0)
			session_purge(app.store, time_now(), &lim);
	}
	log_info("%s received: finishing requests in progress", sig == SIGTERM ?
		 "SIGTERM" : "SIGINT");
	http_server_stop(srv, DRAIN_TIMEOUT_MS);
	i18n_free();
	log_info("stopped");
	rc = 0;
out:
	app_close(&app);
	if (key) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	free(cert);
	return rc;
}

int cmd_serve(struct cli_call *call)
{
	return cli_serve_run(call->cli, NULL);
}
