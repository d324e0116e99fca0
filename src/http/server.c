#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "http/metrics.h"
#include "http/server.h"
#include "util/err.h"
#include "util/jsonwipe.h"
#include "util/log.h"
#include "util/timeutil.h"

#define CONN_MEMORY_LIMIT (12 * 1024)   /* request line + headers */
#define CONN_TIMEOUT_S 30
#define RESPONSE_MAX (64 * 1024 * 1024) /* largest body a handler may build */
#define WORKER_STACK (512 * 1024)
/* An oversized body up to this size is read and dropped so that the client,
 * still sending, gets the 413; beyond it the connection is closed. */
#define DISCARD_MAX (4 * 1024 * 1024)

#define CSP "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

enum req_state {
	REQ_READING,       /* headers and body arriving */
	REQ_RUNNING,       /* on a worker thread */
	REQ_PENDING,       /* suspended until http_resume */
	REQ_RESUMED,       /* the route's finish handler is due */
	REQ_READY,         /* the response is built */
};

struct req {
	struct http_server *srv;
	struct http_request r;
	struct http_response resp;
	struct buf body;
	const struct route *route;
	int route_index;
	bool too_large;
	size_t discarded;
	size_t sent;                /* body bytes of the response, for the log */
	bool method_not_allowed;
	_Atomic enum req_state state;   /* set by other threads too */
	int64_t start_us;
	const char *path;           /* MHD's copy of the URL path; lives as long */
	struct req *next;           /* worker queue */
};

struct http_server {
	struct MHD_Daemon *d;
	struct http_server_opts o;
	bool tls;
	uint16_t port;
	pthread_t *workers;
	unsigned nworkers;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct req *head, *tail;
	bool stopping;
	atomic_int inflight;
	atomic_bool draining;

	/* Connections are accepted here and handed to libmicrohttpd, which
	 * spreads them over its threads by descriptor number; left to accept
	 * for themselves, one thread would often take a whole burst. */
	int listen_fd;
	int stop_fd;               /* eventfd: the acceptor stops */
	atomic_int connections;    /* accepted and not closed: at the limit the
				    * rest wait in the listen backlog */
	pthread_t acceptor;
	bool acceptor_started;
};

/* ---- response helpers ---- */

int http_header(struct http_response *resp, const char *name, const char *value)
{
	if (resp->nheaders >= HTTP_MAX_HEADERS)
		return KW_ERR_TOO_LARGE;
	if (!(resp->headers[resp->nheaders].value = strdup(value)))
		return KW_ERR_NOMEM;
	resp->headers[resp->nheaders++].name = name;
	return 0;
}

int http_text(struct http_response *resp, int status, const char *text)
{
	resp->status = status;
	resp->content_type = "text/plain; charset=utf-8";
	buf_reset(&resp->body);
	return buf_puts(&resp->body, text);
}

int http_json(struct http_response *resp, int status, const json_t *doc)
{
	char *s = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	int rc;

	if (!s)
		return KW_ERR_NOMEM;
	resp->status = status;
	resp->content_type = "application/json; charset=utf-8";
	buf_reset(&resp->body);
	rc = buf_puts(&resp->body, s);
	rc = rc < 0 ? rc : buf_putc(&resp->body, '\n');
	sodium_memzero(s, strlen(s));
	json_free_string(s);
	return rc;
}

int http_json_error(struct http_response *resp, int status, const char *message)
{
	json_t *doc = json_pack("{s:s}", "error", message);
	int rc;

	if (!doc)
		return KW_ERR_NOMEM;
	rc = http_json(resp, status, doc);
	json_decref(doc);
	return rc;
}

int http_redirect(struct http_response *resp, const char *location)
{
	resp->status = 303;
	resp->content_type = "text/plain; charset=utf-8";
	buf_reset(&resp->body);
	return http_header(resp, "Location", location);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_cookie(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

static void response_free(struct http_response *resp)
{
	for (size_t i = 0; i < resp->nheaders; i++)
		free(resp->headers[i].value);
	resp->nheaders = 0;
	if (resp->sensitive)
		buf_wipe_free(&resp->body);
	else
		buf_free(&resp->body);
}

/* ---- routing ---- */

/* Matches path against pattern; {name} takes one non-empty segment. */
static bool route_match(const char *pattern, const char *path,
			char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX])
{
	size_t np = 0;

	while (*pattern && *path) {
		if (*pattern == '{') {
			size_t n = strcspn(path, "/");

			if (n == 0 || n >= HTTP_PARAM_MAX || np >= HTTP_MAX_PARAMS)
				return false;
			memcpy(params[np], path, n);
			params[np++][n] = '\0';
			path += n;
			pattern = strchr(pattern, '}');
			if (!pattern)
				return false;
			pattern++;
			continue;
		}
		if (*pattern++ != *path++)
			return false;
	}
	return !*pattern && !*path;
}

static void route_find(struct req *q, const char *method)
{
	const struct route *routes = q->srv->o.routes;
	bool path_known = false;

	q->route_index = -1;
	for (int i = 0; routes[i].method; i++) {
		if (!route_match(routes[i].pattern, q->path, q->r.params))
			continue;
		path_known = true;
		if (!strcmp(routes[i].method, method) ||
		    (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
			q->route = &routes[i];
			q->route_index = i;
			return;
		}
	}
	q->method_not_allowed = path_known;
}

static void allowed_methods(struct req *q, char *out, size_t outlen)
{
	char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX];
	size_t n = 0;

	out[0] = '\0';
	for (const struct route *r = q->srv->o.routes; r->method; r++)
		if (route_match(r->pattern, q->path, params) && n < outlen)
			n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? ", " : "",
					      r->method);
}

/* ---- running handlers ---- */

static struct req *req_of(struct http_request *r)
{
	return (struct req *)(void *)((char *)r - offsetof(struct req, r));
}

void http_suspend(struct http_request *r)
{
	struct req *q = req_of(r);

	q->state = REQ_PENDING;
	MHD_suspend_connection(r->conn);
}

void http_resume(struct http_request *r)
{
	struct req *q = req_of(r);

	q->state = REQ_RESUMED;
	MHD_resume_connection(r->conn);
}

/* A handler's failure becomes a 500 (the details go to the log). */
static void handler_failed(struct req *q, int rc)
{
	log_error("%s %s: %s", q->r.method, q->path, kw_strerror(rc));
	response_free(&q->resp);
	buf_init(&q->resp.body, RESPONSE_MAX);
	if (!strncmp(q->path, "/api/", 5))
		http_json_error(&q->resp, 500, "internal error");
	else
		http_text(&q->resp, 500, "Internal error; please try again later.\n");
}

static void run_handler(struct req *q)
{
	struct http_server *srv = q->srv;
	int rc = 0;

	q->r.body = q->body.data ? q->body.data : "";
	q->r.body_len = q->body.len;
	q->r.route = q->route;
	if (srv->o.authorize)
		rc = srv->o.authorize(srv->o.app, &q->r, &q->resp);
	if (rc == 0) {
		rc = q->route->handler(srv->o.app, &q->r, &q->resp);
		if (rc == HTTP_PENDING)
			return;
	} else if (rc > 0) {
		rc = 0;   /* the check answered */
	}
	if (rc < 0)
		handler_failed(q, rc);
	if (!q->resp.status)
		q->resp.status = 500;
	q->state = REQ_READY;
}

static void *worker_main(void *p)
{
	struct http_server *srv = p;

	pthread_setname_np(pthread_self(), "kw-worker");

	for (;;) {
		struct req *q;

		pthread_mutex_lock(&srv->lock);
		while (!srv->head && !srv->stopping)
			pthread_cond_wait(&srv->wake, &srv->lock);
		q = srv->head;
		if (!q) {
			pthread_mutex_unlock(&srv->lock);
			return NULL;
		}
		srv->head = q->next;
		if (!srv->head)
			srv->tail = NULL;
		pthread_mutex_unlock(&srv->lock);

		run_handler(q);
		MHD_resume_connection(q->r.conn);
	}
}

static void submit(struct http_server *srv, struct req *q)
{
	q->state = REQ_RUNNING;
	q->next = NULL;
	MHD_suspend_connection(q->r.conn);
	pthread_mutex_lock(&srv->lock);
	if (srv->tail)
		srv->tail->next = q;
	else
		srv->head = q;
	srv->tail = q;
	pthread_cond_signal(&srv->wake);
	pthread_mutex_unlock(&srv->lock);
}

/* ---- MHD callbacks ---- */

static void add_standard_headers(struct http_server *srv, struct MHD_Response *mr,
				 const struct http_response *resp)
{
	bool cache_set = false;

	MHD_add_response_header(mr, "Content-Security-Policy", CSP);
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(mr, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(mr, "X-Frame-Options", "DENY");
	if (srv->tls)
		MHD_add_response_header(mr, "Strict-Transport-Security",
					"max-age=31536000; includeSubDomains");
	for (size_t i = 0; i < resp->nheaders; i++) {
		MHD_add_response_header(mr, resp->headers[i].name, resp->headers[i].value);
		if (!strcasecmp(resp->headers[i].name, "Cache-Control"))
			cache_set = true;
	}
	if (!cache_set)
		MHD_add_response_header(mr, "Cache-Control", "no-store");
	if (resp->content_type)
		MHD_add_response_header(mr, "Content-Type", resp->content_type);
	if (atomic_load(&srv->draining))
		MHD_add_response_header(mr, "Connection", "close");
}

/* MHD's free callback for a body holding a secret: the whole allocation
 * (its size travels as the callback's argument) is wiped first. */
static void wipe_body(void *cls)
{
	struct buf *b = cls;

	buf_wipe_free(b);
	free(b);
}

static enum MHD_Result send_response(struct req *q)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;
	struct buf *owned = NULL;
	size_t len = q->resp.body.len;

	q->sent = len;
	/* The body is handed over, not copied: no second copy of a secret. */
	if (!q->resp.body.data) {
		mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else if (q->resp.sensitive && (owned = malloc(sizeof(*owned)))) {
		*owned = q->resp.body;
		buf_init(&q->resp.body, RESPONSE_MAX);
		mr = MHD_create_response_from_buffer_with_free_callback_cls(len, owned->data,
									   wipe_body, owned);
	} else if (!q->resp.sensitive) {
		mr = MHD_create_response_from_buffer(len, buf_steal(&q->resp.body, NULL),
						     MHD_RESPMEM_MUST_FREE);
	} else {
		return MHD_NO;   /* out of memory */
	}
	if (!mr) {
		if (owned)
			wipe_body(owned);
		return MHD_NO;
	}
	add_standard_headers(q->srv, mr, &q->resp);
	ret = MHD_queue_response(q->r.conn, (unsigned)q->resp.status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static void plain_error(struct req *q, int status, const char *text)
{
	if (!strncmp(q->path, "/api/", 5))
		http_json_error(&q->resp, status, text);
	else
		http_text(&q->resp, status, text);
}

/* 404, 405 or 413, decided before the body is read. */
static enum MHD_Result respond_now(struct req *q)
{
	if (q->too_large && q->route) {
		char msg[96];

		snprintf(msg, sizeof(msg), "request body too large (at most %zu bytes)",
			 q->body.cap);
		plain_error(q, 413, msg);
	} else if (q->method_not_allowed) {
		char allow[128];

		allowed_methods(q, allow, sizeof(allow));
		http_header(&q->resp, "Allow", allow);
		plain_error(q, 405, "method not allowed");
	} else {
		plain_error(q, 404, "not found");
	}
	q->state = REQ_READY;
	return send_response(q);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *srv = cls;
	struct req *q = *con_cls;

	if (!q) {
		const union MHD_ConnectionInfo *ci;
		const char *clen;

		if (!(q = calloc(1, sizeof(*q))))
			return MHD_NO;
		*con_cls = q;
		atomic_fetch_add(&srv->inflight, 1);
		q->srv = srv;
		q->start_us = time_mono_us();
		q->r.conn = conn;
		q->r.method = method;
		q->r.tls = srv->tls;
		q->path = url;
		q->r.path = url;
		buf_init(&q->resp.body, RESPONSE_MAX);
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (ci && ci->socket_context)
			memcpy(q->r.client, ci->socket_context, sizeof(q->r.client));
		route_find(q, method);
		buf_init(&q->body, q->route ? q->route->body_max : 0);
		/* Refuse an announced oversized body before reading any of it. */
		clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						   MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (clen) {
			char *end;
			unsigned long long n = strtoull(clen, &end, 10);

			if (*end || n > q->body.cap)
				q->too_large = true;
			if (*end || n > DISCARD_MAX)
				return respond_now(q);
		}
		/* Everything else is answered once the request is complete, so
		 * the connection can stay open for the next one. */
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!q->too_large && buf_append(&q->body, upload_data, *upload_data_size) < 0)
			q->too_large = true;
		if (q->too_large)
			q->discarded += *upload_data_size;
		*upload_data_size = 0;
		/* Far past the cap: answer now; MHD closes rather than read on. */
		return q->discarded > DISCARD_MAX ? respond_now(q) : MHD_YES;
	}
	if (q->state == REQ_RESUMED) {
		int rc = q->route->finish(srv->o.app, &q->r, &q->resp);

		if (rc < 0)
			handler_failed(q, rc);
		q->state = REQ_READY;
	}
	if (q->state == REQ_READY)
		return send_response(q);
	if (q->too_large || !q->route)
		return respond_now(q);
	if (q->route->blocking && srv->nworkers) {
		submit(srv, q);
		return MHD_YES;
	}
	run_handler(q);
	return q->state == REQ_READY ? send_response(q) : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct req *q = *con_cls;
	int64_t us;

	if (!q)
		return;
	us = time_mono_us() - q->start_us;
	metrics_request(q->route_index, q->resp.status, us);
	/* The path only: query strings and bodies may hold what must not be
	 * logged. */
	log_access("%s %s %s %d %zu %lld.%01lldms%s", q->r.client[0] ? q->r.client : "-",
		 q->r.method, q->path, q->resp.status, q->sent,
		 (long long)(us / 1000), (long long)(us % 1000 / 100),
		 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
	response_free(&q->resp);
	buf_wipe_free(&q->body);
	if (q->r.auth && srv->o.auth_free)
		srv->o.auth_free(q->r.auth);
	if (q->r.state && q->r.state_free)
		q->r.state_free(q->r.state);
	free(q);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->inflight, 1);
}

/* The client's address, formatted once per connection. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *ci;
	char *client;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		atomic_fetch_sub(&((struct http_server *)cls)->connections, 1);
		free(*socket_context);
		*socket_context = NULL;
		return;
	}
	if (!(client = calloc(1, HTTP_CLIENT_MAX)))
		return;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
				  client, HTTP_CLIENT_MAX);
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
				  client, HTTP_CLIENT_MAX);
	}
	*socket_context = client;
}

static void on_panic(void *cls, const char *file, unsigned line, const char *reason)
{
	log_error("libmicrohttpd failed at %s:%u: %s", file, line, reason ? reason : "");
	abort();
}

/* ---- accepting ---- */

/* After an error that waiting may cure (out of descriptors or memory). */
static void back_off(const char *what)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	log_error("http: %s: %s", what, strerror(errno));
	nanosleep(&ts, NULL);
}

static void *acceptor_main(void *p)
{
	struct http_server *srv = p;
	struct pollfd fds[2] = {
		{ .fd = srv->listen_fd, .events = POLLIN },
		{ .fd = srv->stop_fd, .events = POLLIN },
	};
	unsigned limit = srv->o.max_connections ? srv->o.max_connections : 1024;

	pthread_setname_np(pthread_self(), "kw-accept");
	for (;;) {
		bool full = (unsigned)atomic_load(&srv->connections) >= limit;

		/* At the limit only the stop is watched, and the count looked at
		 * again every 10 ms. */
		if (poll(full ? &fds[1] : fds, full ? 1 : 2, full ? 10 : -1) < 0) {
			if (errno != EINTR)
				back_off("poll");
			continue;
		}
		if (fds[1].revents)
			break;
		if (full || !fds[0].revents)
			continue;
		while ((unsigned)atomic_load(&srv->connections) < limit) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			int fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &len,
					 SOCK_CLOEXEC | SOCK_NONBLOCK);

			if (fd < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				    errno == ENOMEM)
					back_off("cannot accept a connection");
				break;
			}
			/* Counted here, not when libmicrohttpd's thread starts it:
			 * the next accept must see it. On failure libmicrohttpd has
			 * closed the socket and will not report it closed. */
			atomic_fetch_add(&srv->connections, 1);
			if (MHD_add_connection(srv->d, fd, (struct sockaddr *)&ss, len) != MHD_YES)
				atomic_fetch_sub(&srv->connections, 1);
		}
	}
	return NULL;
}

static int listen_on(struct http_server *srv, const struct sockaddr_storage *ss,
		     socklen_t sslen)
{
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);
	int one = 1;

	srv->listen_fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (srv->listen_fd < 0 ||
	    setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (ss->ss_family == AF_INET6 &&   /* an IPv6 address means IPv6 only */
	     setsockopt(srv->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(srv->listen_fd, (const struct sockaddr *)ss, sslen) < 0 ||
	    listen(srv->listen_fd, SOMAXCONN) < 0 ||
	    getsockname(srv->listen_fd, (struct sockaddr *)&bound, &len) < 0)
		return -1;
	srv->port = ntohs(bound.ss_family == AF_INET6 ?
			  ((struct sockaddr_in6 *)&bound)->sin6_port :
			  ((struct sockaddr_in *)&bound)->sin_port);
	return 0;
}

/* New connections are refused from here on. */
static void stop_accepting(struct http_server *srv)
{
	if (srv->acceptor_started) {
		uint64_t one = 1;

		if (write(srv->stop_fd, &one, sizeof(one)) < 0)
			log_error("http: cannot stop accepting: %s", strerror(errno));
		pthread_join(srv->acceptor, NULL);
		srv->acceptor_started = false;
	}
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	srv->listen_fd = -1;
}

/* ---- start and stop ---- */

int http_server_start(const struct http_server_opts *o, struct http_server **out,
		      char *msg, size_t msglen)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
		MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_TURBO |
		MHD_USE_NO_LISTEN_SOCKET;
	pthread_attr_t attr;
	int rc = KW_ERR_IO;

	if (!srv)
		return KW_ERR_NOMEM;
	srv->o = *o;
	srv->tls = o->tls_cert_pem != NULL;
	srv->listen_fd = srv->stop_fd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->wake, NULL);
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, o->host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(o->port);
		sslen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, o->host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(o->port);
		sslen = sizeof(struct sockaddr_in6);
	} else {
		snprintf(msg, msglen, "listen address %s is not a numeric IP address", o->host);
		rc = KW_ERR_INVALID;
		goto out;
	}
	if (listen_on(srv, &ss, sslen) < 0) {
		snprintf(msg, msglen, "cannot listen on %s port %u: %s", o->host,
			 (unsigned)o->port, strerror(errno));
		goto out;
	}
	if ((srv->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		snprintf(msg, msglen, "cannot create an eventfd: %s", strerror(errno));
		goto out;
	}
	if (srv->tls)
		flags |= MHD_USE_TLS;
	if (metrics_init(o->routes) < 0) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	srv->nworkers = o->workers;
	if (srv->nworkers &&
	    !(srv->workers = calloc(srv->nworkers, sizeof(*srv->workers)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	for (unsigned i = 0; i < srv->nworkers; i++)
		if (pthread_create(&srv->workers[i], &attr, worker_main, srv) != 0) {
			srv->nworkers = i;
			pthread_attr_destroy(&attr);
			snprintf(msg, msglen, "cannot start worker threads: %s", strerror(errno));
			goto out;
		}
	pthread_attr_destroy(&attr);
	MHD_set_panic_func(on_panic, NULL);
	srv->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->io_threads ? o->io_threads : 1),
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_connections ? o->max_connections : 1024),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		srv->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, o->tls_key_pem,
		MHD_OPTION_HTTPS_MEM_CERT, o->tls_cert_pem,
		MHD_OPTION_END);
	if (!srv->d) {
		snprintf(msg, msglen, "cannot start the HTTP server: %s",
			 errno ? strerror(errno) : "startup failed");
		goto out;
	}
	if (pthread_create(&srv->acceptor, NULL, acceptor_main, srv) != 0) {
		snprintf(msg, msglen, "cannot start the accepting thread: %s", strerror(errno));
		goto out;
	}
	srv->acceptor_started = true;
	*out = srv;
	srv = NULL;
	rc = 0;
out:
	if (srv)
		http_server_stop(srv, 0);
	return rc;
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv->port;
}

void http_server_stop(struct http_server *srv, int64_t timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;

	if (!srv)
		return;
	if (srv->d) {
		/* Drain: refuse new connections, answer what is in flight with
		 * Connection: close, then stop. */
		atomic_store(&srv->draining, true);
		stop_accepting(srv);
		while (atomic_load(&srv->inflight) > 0 && time_mono_ms() < deadline) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_cond_broadcast(&srv->wake);
	pthread_mutex_unlock(&srv->lock);
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i], NULL);
	stop_accepting(srv);
	if (srv->d)
		MHD_stop_daemon(srv->d);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	free(srv->workers);
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->wake);
	metrics_free();
	log_flush();
	free(srv);
}
