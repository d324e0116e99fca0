#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* libmicrohttpd's per-connection memory: the request line and headers, the
 * parsed header and cookie records (about 64 bytes each, plus a copy of the
 * Cookie header) and the response's headers. 32 KiB holds the 8 KiB of
 * headers browsers send, 150 cookies included; 12 KiB did not. */
#define CONN_MEMORY_LIMIT (32 * 1024)
#define CONN_TIMEOUT_S 30               /* no byte moved either way */
/* A request's line and headers must be complete this long after the
 * connection started or the previous request ended (libmicrohttpd's own
 * timeout starts again with every byte, which a slow client exploits). */
#define HEADER_TIMEOUT_MS 10000
/* A body gets this long, plus a second for every BODY_MIN_RATE bytes that
 * arrived. */
#define BODY_TIMEOUT_MS 10000
#define BODY_MIN_RATE 512
#define SWEEP_INTERVAL_MS 500
#define REPORT_INTERVAL_MS 60000        /* at most one line a minute about refusals */
#define NO_DEADLINE INT64_MAX
#define RETRY_AFTER_S "10"
#define RESPONSE_MAX (64 * 1024 * 1024) /* largest body a handler may build */
#define WORKER_STACK (512 * 1024)
/* An oversized body up to this size is read and dropped so that the client,
 * still sending, gets the 413; beyond it the connection is closed. */
#define DISCARD_MAX (4 * 1024 * 1024)
#define XFF_MAX_HEADERS 16
#define HOP_MAX 64

#define CSP "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
/* TLS 1.3, then TLS 1.2 with ECDHE and AEAD suites only: no CBC, no static
 * RSA key exchange, no SHA-1 MACs or signatures. */
#define TLS_PRIORITIES "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
	"-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"+AES-128-GCM:-MAC-ALL:+AEAD:-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:-SIGN-DSA-SHA1"

enum req_state {
	REQ_READING,       /* headers and body arriving */
	REQ_RUNNING,       /* on a worker thread */
	REQ_PENDING,       /* suspended until http_resume */
	REQ_RESUMED,       /* the route's finish handler is due */
	REQ_READY,         /* the response is built */
};

/* An address in binary; IPv4-mapped IPv6 addresses are kept as IPv4. */
struct ip {
	int family;                 /* AF_INET (4 bytes used) or AF_INET6 */
	unsigned char a[16];
};

/* One connection, from libmicrohttpd's start notification to its close
 * notification (its socket context). */
struct conn {
	int fd;
	struct ip ip;               /* the peer */
	bool trusted;               /* the peer is a trusted proxy */
	_Atomic int64_t deadline;   /* monotonic ms; past it the sweep closes it */
	atomic_bool streamed;       /* has sent a streamed body: a stop cuts it */
	bool cut;                   /* shut down by the sweep (under conn_lock) */
	struct conn *prev, *next;   /* srv->conns, under conn_lock */
};

/* Open connections of one address (not counted for trusted proxies). */
struct addr_count {
	struct ip ip;
	unsigned n;
	struct addr_count *next;
};

struct req {
	struct http_server *srv;
	struct conn *c;             /* NULL only when memory ran out at its start */
	struct http_request r;
	struct http_response resp;
	struct buf body;
	const struct route *route;
	int route_index;
	bool too_large;
	size_t discarded;
	size_t received;            /* body bytes, for the minimum rate */
	int64_t body_start_ms;
	size_t sent;                /* body bytes of the response, for the log */
	bool method_not_allowed;
	bool busy;                  /* counted in srv->busy */
	_Atomic enum req_state state;   /* set by other threads too */
	int64_t start_us;
	const char *path;           /* MHD's copy of the URL path; lives as long */
	enum http_reply reply;      /* how the server's own answers are made */
	struct req *next;           /* worker queue */
};

/* A streamed body (http_response.stream) from its first part to the end of
 * its MHD response, which owns it: MHD's reader takes what was made, and
 * when nothing is left parks the connection and has a worker make more. */
struct stream {
	struct http_server *srv;
	struct MHD_Connection *conn;
	int (*make)(void *arg, struct buf *out);
	void (*free)(void *arg);
	void *arg;
	struct buf part;
	size_t off;                 /* of part, sent already */
	int rc;                     /* make's last: 0 more, 1 the end, < 0 failed */
	bool sensitive;
	char what[96];              /* method and path, for the log */
	size_t *sent;               /* the request's count of body bytes sent,
				     * for the access line (read on completion,
				     * after the last read) */
	struct stream *next;        /* worker queue */
};

/* Threads that run handlers (and make streamed parts) from a queue. */
struct pool {
	struct http_server *srv;
	const char *name;
	pthread_t *threads;
	unsigned n;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct req *head, *tail;
	struct stream *shead, *stail;
	bool parts_first;          /* alternates: downloads never starve requests */
	bool stopping;
};

struct http_server {
	struct MHD_Daemon *d;
	struct http_server_opts o;
	bool tls;
	uint16_t port;
	struct pool workers;
	struct pool signin;

	/* Draining (see http_server_stop) in two steps. Each flag is set
	 * before its counter is read, and each counter raised before its flag
	 * is read (all sequentially consistent): a request either is counted
	 * in time for the stop to wait for it, or sees the flag and is
	 * answered 503 at once. */
	atomic_int inflight;       /* requests from their headers to their end */
	atomic_bool draining;      /* new requests get 503 */
	atomic_int busy;           /* handlers running, queued or suspended */
	atomic_int resuming;       /* http_resume calls under way (another
				    * thread's, inside libmicrohttpd) */
	atomic_bool closing;       /* no handler starts any more */
	atomic_bool cut_streams;   /* the sweep closes connections that stream */

	/* Connections are accepted here and handed to libmicrohttpd, which
	 * spreads them over its threads by descriptor number; left to accept
	 * for themselves, one thread would often take a whole burst. */
	int listen_fd;
	int stop_fd;               /* eventfd: the acceptor stops */
	atomic_int connections;    /* accepted and not closed: at the limit the
				    * rest wait in the listen backlog */
	pthread_t acceptor;
	bool acceptor_started;

	/* Under conn_lock: every connection (for the sweep), the count per
	 * address, and what the next report says. */
	pthread_mutex_t conn_lock;
	pthread_cond_t sweep_wake;
	struct conn *conns;
	struct addr_count **addrs;
	size_t naddrs;             /* buckets, a power of two */
	unsigned char addr_key[crypto_shorthash_KEYBYTES];
	unsigned long refused, cut;
	char refused_from[HTTP_CLIENT_MAX];
	int64_t reported_ms;
	bool sweep_stop;
	pthread_t sweeper;
	bool sweeper_started;
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
	/* A stream never handed to libmicrohttpd (an error came first). */
	if (resp->stream && resp->stream_free)
		resp->stream_free(resp->stream_arg);
	resp->stream = NULL;
	resp->stream_free = NULL;
	resp->stream_arg = NULL;
}

static void response_reset(struct http_response *resp)
{
	response_free(resp);
	buf_init(&resp->body, RESPONSE_MAX);
	resp->status = 0;
	resp->content_type = NULL;
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

/* Does a declaration's pattern (a path, then a "*" segment) hold path? */
static bool prefix_match(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);

	return n >= 2 && !strcmp(pattern + n - 2, "/*") && !strncmp(pattern, path, n - 1);
}

static void route_find(struct req *q, const char *method)
{
	const struct route *routes = q->srv->o.routes;
	bool path_known = false;

	q->route_index = -1;
	q->reply = HTTP_REPLY_HTML;
	for (int i = 0; routes[i].method; i++) {
		if (!routes[i].handler) {   /* a declaration of a reply kind */
			if (!path_known && prefix_match(routes[i].pattern, q->path))
				q->reply = routes[i].reply;
			continue;
		}
		if (!route_match(routes[i].pattern, q->path, q->r.params))
			continue;
		if (!path_known)
			q->reply = routes[i].reply;
		path_known = true;
		if (!strcmp(routes[i].method, method) ||
		    (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
			q->route = &routes[i];
			q->route_index = i;
			q->reply = routes[i].reply;
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
		if (r->handler && route_match(r->pattern, q->path, params) && n < outlen)
			n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? ", " : "",
					      r->method);
}

/* ---- errors the server answers itself ---- */

/* In the route's reply kind: JSON, plain text, or the app's page (plain
 * text without one). */
static void error_response(struct req *q, int status, const char *text)
{
	struct http_server *srv = q->srv;

	response_reset(&q->resp);
	if (q->reply == HTTP_REPLY_JSON) {
		http_json_error(&q->resp, status, text);
		return;
	}
	if (q->reply == HTTP_REPLY_HTML && srv->o.error_page &&
	    srv->o.error_page(srv->o.app, &q->r, &q->resp, status) == 0 &&
	    q->resp.status == status)
		return;
	response_reset(&q->resp);
	http_text(&q->resp, status, text);
}

static bool store_failure(int rc)
{
	return rc == KW_ERR_STORE || rc == KW_ERR_UNAVAILABLE;
}

/* A handler's failure: 503 when the store failed (whatever the route), 500
 * otherwise. The details go to the log; a failing store, which fails every
 * request, gets one line a minute (each 503 is in the access log). */
static void handler_failed(struct req *q, int rc)
{
	static _Atomic int64_t store_logged_ms = INT64_MIN / 2;

	if (store_failure(rc)) {
		int64_t now = time_mono_ms(), last = atomic_load(&store_logged_ms);

		if (now - last >= REPORT_INTERVAL_MS &&
		    atomic_compare_exchange_strong(&store_logged_ms, &last, now))
			log_error("%s %s: %s: answering 503 (further store failures are "
				  "not logged for a minute)", q->r.method, q->path,
				  kw_strerror(rc));
		error_response(q, 503, "the store is unavailable; please try again later");
		return;
	}
	log_error("%s %s: %s", q->r.method, q->path, kw_strerror(rc));
	error_response(q, 500, "internal error; please try again later");
}

/* ---- running handlers ---- */

static struct req *req_of(struct http_request *r)
{
	return (struct req *)(void *)((char *)r - offsetof(struct req, r));
}

/* Counts q in srv->busy unless the server is closing: false then, and no
 * handler may run. */
static bool handler_begin(struct req *q)
{
	atomic_fetch_add(&q->srv->busy, 1);
	if (atomic_load(&q->srv->closing)) {
		atomic_fetch_sub(&q->srv->busy, 1);
		return false;
	}
	q->busy = true;
	return true;
}

/* On the connection's thread, once it is not suspended and will not be
 * again. */
static void handler_end(struct req *q)
{
	if (q->busy) {
		q->busy = false;
		atomic_fetch_sub(&q->srv->busy, 1);
	}
}

void http_suspend(struct http_request *r)
{
	struct req *q = req_of(r);
	bool on_worker = q->state == REQ_RUNNING;   /* parked already by submit */

	q->state = REQ_PENDING;
	if (!on_worker)
		MHD_suspend_connection(r->conn);
}

void http_resume(struct http_request *r)
{
	struct req *q = req_of(r);
	struct http_server *srv = q->srv;

	/* Counted before the resume: once the request it ends lets the stop
	 * go on, the stop still waits for this call to leave libmicrohttpd. */
	atomic_fetch_add(&srv->resuming, 1);
	q->state = REQ_RESUMED;
	MHD_resume_connection(r->conn);
	atomic_fetch_sub(&srv->resuming, 1);
}

/* Runs authorize and the handler; false when the handler went
 * HTTP_PENDING (the connection stays parked until http_resume). */
static bool run_handler(struct req *q)
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
			return false;
	} else if (rc > 0) {
		rc = 0;   /* the check answered */
	}
	if (rc < 0)
		handler_failed(q, rc);
	if (!q->resp.status)
		q->resp.status = 500;
	q->state = REQ_READY;
	return true;
}

static void make_part(struct stream *st);

static void *worker_main(void *p)
{
	struct pool *pool = p;

	pthread_setname_np(pthread_self(), pool->name);

	for (;;) {
		struct req *q = NULL;
		struct stream *st = NULL;

		pthread_mutex_lock(&pool->lock);
		while (!pool->head && !pool->shead && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
		/* Parts of streamed bodies and requests take turns. */
		pool->parts_first = !pool->parts_first;
		if (pool->shead && (pool->parts_first || !pool->head)) {
			st = pool->shead;
			pool->shead = st->next;
			if (!pool->shead)
				pool->stail = NULL;
		} else if ((q = pool->head)) {
			pool->head = q->next;
			if (!pool->head)
				pool->tail = NULL;
		}
		pthread_mutex_unlock(&pool->lock);
		if (st) {
			make_part(st);
			continue;
		}
		if (!q)
			return NULL;

		/* A handler that went pending leaves the resume to its work. */
		if (run_handler(q))
			MHD_resume_connection(q->r.conn);
	}
}

/* q is counted busy, so the workers are still there (see http_server_stop). */
static void submit(struct pool *pool, struct req *q)
{
	q->state = REQ_RUNNING;
	q->next = NULL;
	MHD_suspend_connection(q->r.conn);
	pthread_mutex_lock(&pool->lock);
	if (pool->tail)
		pool->tail->next = q;
	else
		pool->head = q;
	pool->tail = q;
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

static void submit_part(struct pool *pool, struct stream *st)
{
	st->next = NULL;
	pthread_mutex_lock(&pool->lock);
	if (pool->stail)
		pool->stail->next = st;
	else
		pool->shead = st;
	pool->stail = st;
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

static int pool_start(struct pool *pool, struct http_server *srv, const char *name,
		      unsigned n, char *msg, size_t msglen)
{
	pthread_attr_t attr;

	pool->srv = srv;
	pool->name = name;
	if (!n)
		return 0;
	if (!(pool->threads = calloc(n, sizeof(*pool->threads))))
		return KW_ERR_NOMEM;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	for (; pool->n < n; pool->n++)
		if (pthread_create(&pool->threads[pool->n], &attr, worker_main, pool) != 0) {
			pthread_attr_destroy(&attr);
			snprintf(msg, msglen, "cannot start worker threads: %s", strerror(errno));
			return KW_ERR_IO;
		}
	pthread_attr_destroy(&attr);
	return 0;
}

static void pool_init(struct pool *pool)
{
	memset(pool, 0, sizeof(*pool));
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
}

/* Once nothing is queued or running (srv->busy is 0). */
static void pool_stop(struct pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n; i++)
		pthread_join(pool->threads[i], NULL);
	free(pool->threads);
	pool->threads = NULL;
	pool->n = 0;
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->wake);
}

/* ---- every response's headers ---- */

typedef enum MHD_Result (*queue_response_fn)(struct MHD_Connection *, unsigned int,
					     struct MHD_Response *);
static queue_response_fn mhd_queue_response;
static pthread_once_t mhd_queue_response_once = PTHREAD_ONCE_INIT;

static void find_mhd_queue_response(void)
{
	/* POSIX's way to turn dlsym's object pointer into a function's. */
	*(void **)&mhd_queue_response = dlsym(RTLD_NEXT, "MHD_queue_response");
}

/* libmicrohttpd answers some requests itself, without calling on_request:
 * 400 for a malformed request line or header, 414, 431, 413 for an
 * impossible Content-Length, 505. Version 0.9.75 has no option for those
 * responses' headers, but builds each with MHD_queue_response through the
 * PLT (objdump -d of Debian's libmicrohttpd.so.12 shows the call in
 * transmit_error_response going to MHD_queue_response@plt), so this
 * definition, which the linker exports from the executable because the
 * library refers to it, sees them too. Every response, ours and its own,
 * gets the security headers here. */
enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
				   struct MHD_Response *response)
{
	const union MHD_ConnectionInfo *ci;

	if (!MHD_get_response_header(response, "Content-Security-Policy")) {
		MHD_add_response_header(response, "Content-Security-Policy", CSP);
		MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
		MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
		MHD_add_response_header(response, "X-Frame-Options", "DENY");
		if (!MHD_get_response_header(response, "Cache-Control"))
			MHD_add_response_header(response, "Cache-Control", "no-store");
		/* libmicrohttpd's own bodies are HTML. */
		if (!MHD_get_response_header(response, "Content-Type"))
			MHD_add_response_header(response, "Content-Type",
						"text/html; charset=utf-8");
		ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
		if (ci && ci->tls_session)
			MHD_add_response_header(response, "Strict-Transport-Security",
						"max-age=31536000; includeSubDomains");
	}
	return mhd_queue_response(connection, status_code, response);
}

/* The request's own headers; the security headers come in
 * MHD_queue_response. */
static void add_headers(struct http_server *srv, struct MHD_Response *mr,
			const struct http_response *resp)
{
	bool retry_set = false, close_set = false;

	for (size_t i = 0; i < resp->nheaders; i++) {
		MHD_add_response_header(mr, resp->headers[i].name, resp->headers[i].value);
		if (!strcasecmp(resp->headers[i].name, "Retry-After"))
			retry_set = true;
		else if (!strcasecmp(resp->headers[i].name, "Connection"))
			close_set = true;
	}
	if (resp->status == 503 && !retry_set)
		MHD_add_response_header(mr, "Retry-After", RETRY_AFTER_S);
	if (resp->content_type)
		MHD_add_response_header(mr, "Content-Type", resp->content_type);
	if (!close_set && atomic_load(&srv->draining))
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

/* ---- streamed bodies ---- */

#define STREAM_PART_MAX (4 * HTTP_STREAM_PART)

static void next_part(struct stream *st)
{
	buf_reset(&st->part);
	st->off = 0;
	st->rc = st->make(st->arg, &st->part);
	if (st->rc == 0 && st->part.len == 0)
		st->rc = KW_ERR_INTERNAL;   /* "more follows" with nothing: it never ends */
	if (st->rc < 0) {
		/* Nothing of a failed part goes out (half a row looks whole to
		 * a client that cannot see the cut). */
		buf_reset(&st->part);
		log_error("%s: the response was cut short: %s", st->what, kw_strerror(st->rc));
	}
}

/* On a worker: the next part, then the connection goes on. Nothing of st
 * is touched after the resume: the response may end at once. */
static void make_part(struct stream *st)
{
	next_part(st);
	MHD_resume_connection(st->conn);
}

/* libmicrohttpd's reader, on the connection's I/O thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *st = cls;
	size_t n;

	if (st->off < st->part.len) {
		n = st->part.len - st->off < max ? st->part.len - st->off : max;
		memcpy(out, st->part.data + st->off, n);
		st->off += n;
		*st->sent += n;
		return (ssize_t)n;
	}
	if (st->rc < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (st->rc > 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Stopping: a body still going out is cut short, so that a client that
	 * reads slowly cannot hold the stop (no write waits on it). */
	if (atomic_load(&st->srv->closing))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (!st->srv->workers.n) {   /* a server without workers: made here */
		next_part(st);
		return stream_read(cls, pos, out, max);
	}
	/* Nothing made yet: park the connection until a worker has made the
	 * next part (0 with the connection suspended is libmicrohttpd's way
	 * to say "not yet" without spinning). */
	MHD_suspend_connection(st->conn);
	submit_part(&st->srv->workers, st);
	return 0;
}

/* When libmicrohttpd is done with the response: the stream's end. */
static void stream_end(void *cls)
{
	struct stream *st = cls;
	struct http_server *srv = st->srv;

	if (st->free)
		st->free(st->arg);
	if (st->sensitive)
		buf_wipe_free(&st->part);
	else
		buf_free(&st->part);
	free(st);
	atomic_fetch_sub(&srv->busy, 1);   /* taken over from the request */
}

/* A response whose body is made while it is sent; it stays counted busy
 * (workers make its parts) until stream_end. */
static struct MHD_Response *stream_response(struct req *q)
{
	struct stream *st = calloc(1, sizeof(*st));
	struct MHD_Response *mr;

	if (!st)
		return NULL;
	st->srv = q->srv;
	st->conn = q->r.conn;
	st->make = q->resp.stream;
	st->free = q->resp.stream_free;
	st->arg = q->resp.stream_arg;
	st->sensitive = q->resp.sensitive;
	st->sent = &q->sent;
	snprintf(st->what, sizeof(st->what), "%s %s", q->r.method, q->path);
	buf_init(&st->part, STREAM_PART_MAX);
	mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_PART, stream_read,
					       st, stream_end);
	if (!mr) {
		free(st);   /* the request still owns the stream's arg */
		return NULL;
	}
	q->resp.stream = NULL;
	q->resp.stream_free = NULL;
	q->resp.stream_arg = NULL;
	if (q->c)
		atomic_store(&q->c->streamed, true);
	if (q->busy)
		q->busy = false;            /* stream_end gives it back */
	else
		atomic_fetch_add(&q->srv->busy, 1);
	return mr;
}

static enum MHD_Result send_response(struct req *q)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;
	struct buf *owned = NULL;
	size_t len = q->resp.body.len;

	q->sent = len;
	if (q->resp.stream) {
		q->sent = 0;               /* counted as the parts go out */
		if (!(mr = stream_response(q)))
			return MHD_NO;
		add_headers(q->srv, mr, &q->resp);
		ret = MHD_queue_response(q->r.conn, (unsigned)q->resp.status, mr);
		MHD_destroy_response(mr);
		return ret;
	}
	handler_end(q);
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
	add_headers(q->srv, mr, &q->resp);
	ret = MHD_queue_response(q->r.conn, (unsigned)q->resp.status, mr);
	MHD_destroy_response(mr);
	return ret;
}

/* An answer decided without a handler (404, 405, 413, 400, 503). */
static enum MHD_Result answer_now(struct req *q, int status, const char *text)
{
	error_response(q, status, text);
	if (status == 405) {
		char allow[128];

		allowed_methods(q, allow, sizeof(allow));
		http_header(&q->resp, "Allow", allow);
	} else if (status == 400) {
		/* The body's framing is in doubt: nothing after it can be read. */
		http_header(&q->resp, "Connection", "close");
	}
	q->state = REQ_READY;
	return send_response(q);
}

/* 404, 405 or 413, decided before the body is read. */
static enum MHD_Result respond_now(struct req *q)
{
	if (q->too_large && q->route) {
		char msg[96];

		snprintf(msg, sizeof(msg), "request body too large (at most %zu bytes)",
			 q->body.cap);
		return answer_now(q, 413, msg);
	}
	if (q->method_not_allowed)
		return answer_now(q, 405, "method not allowed");
	return answer_now(q, 404, "not found");
}

/* ---- who the client is ---- */

static void ip_normalize(struct ip *ip)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (ip->family == AF_INET6 && !memcmp(ip->a, mapped, sizeof(mapped))) {
		memmove(ip->a, ip->a + 12, 4);
		memset(ip->a + 4, 0, 12);
		ip->family = AF_INET;
	}
}

/* Family 0 for anything but IPv4 and IPv6. */
static void ip_from_sockaddr(const struct sockaddr *sa, struct ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (sa && sa->sa_family == AF_INET) {
		ip->family = AF_INET;
		memcpy(ip->a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		ip->family = AF_INET6;
		memcpy(ip->a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		ip_normalize(ip);
	}
}

static void ip_format(const struct ip *ip, char out[HTTP_CLIENT_MAX])
{
	out[0] = '\0';
	if (ip->family)
		inet_ntop(ip->family, ip->a, out, HTTP_CLIENT_MAX);
}

static bool ip_trusted(const struct http_server *srv, const struct ip *ip)
{
	for (size_t i = 0; i < srv->o.nproxies; i++)
		if (ini_cidr_contains(&srv->o.proxies[i], ip->family, ip->a))
			return true;
	return false;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* One X-Forwarded-For entry (n bytes at s): "192.0.2.7", "2001:db8::7",
 * and as some proxies write them "192.0.2.7:4711", "[2001:db8::7]" and
 * "[2001:db8::7]:4711". */
static bool hop_parse(const char *s, size_t n, struct ip *ip)
{
	char tmp[HOP_MAX], *addr = tmp, *end;

	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(ip, 0, sizeof(*ip));
	if (tmp[0] == '[') {
		if (!(end = strchr(tmp, ']')) || (end[1] && (end[1] != ':' || !all_digits(end + 2))))
			return false;
		*end = '\0';
		addr = tmp + 1;
		ip->family = AF_INET6;
	} else if ((end = strchr(tmp, ':')) && !strchr(end + 1, ':')) {
		if (!all_digits(end + 1))
			return false;
		*end = '\0';
		ip->family = AF_INET;
	} else {
		ip->family = end ? AF_INET6 : AF_INET;
	}
	if (inet_pton(ip->family, addr, ip->a) != 1)
		return false;
	ip_normalize(ip);
	return true;
}

/* The last XFF_MAX_HEADERS X-Forwarded-For headers: only the rightmost
 * entries can be vouched for, so extra headers a client sends in front
 * push out its own, never the proxies'. */
struct xff {
	const char *v[XFF_MAX_HEADERS];
	size_t n;
};

static enum MHD_Result xff_collect(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct xff *x = cls;

	if (strcasecmp(key, "X-Forwarded-For"))
		return MHD_YES;
	if (x->n == XFF_MAX_HEADERS) {
		memmove(x->v, x->v + 1, sizeof(x->v[0]) * (XFF_MAX_HEADERS - 1));
		x->n--;
	}
	x->v[x->n++] = value ? value : "";
	return MHD_YES;
}

/* From a trusted proxy, X-Forwarded-For is read from the right (each proxy
 * appends the address it was talking to) for as long as the address
 * reached is a trusted proxy; the first one that is not is the client.
 * When an entry cannot be read, the client is the trusted proxy that
 * passed it on: what lies to its left was never vouched for. */
static void client_resolve(struct req *q, struct MHD_Connection *conn)
{
	struct http_server *srv = q->srv;
	struct ip cur = q->c->ip;
	struct xff x = { .n = 0 };
	const char *proto;

	q->r.scheme = srv->tls ? "https" : "http";
	if (q->c->trusted) {
		MHD_get_connection_values(conn, MHD_HEADER_KIND, xff_collect, &x);
		for (size_t i = x.n; i-- > 0 && ip_trusted(srv, &cur);) {
			const char *v = x.v[i];
			size_t end = strlen(v);

			for (;;) {
				size_t start = end;
				struct ip hop;

				while (start > 0 && v[start - 1] != ',')
					start--;
				if (!hop_parse(v + start, end - start, &hop)) {
					i = 0;   /* stop at the proxy that passed it on */
					break;
				}
				cur = hop;
				if (start == 0 || !ip_trusted(srv, &cur))
					break;
				end = start - 1;
			}
		}
		proto = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-Proto");
		/* The first value: what the browser spoke to the outermost
		 * proxy. */
		if (!srv->tls && proto) {
			proto += strspn(proto, " \t");
			if (!strncasecmp(proto, "https", 5) && strchr(" \t,", proto[5]))
				q->r.scheme = "https";
		}
	}
	ip_format(&cur, q->r.client);
}

/* ---- framing ---- */

struct framing {
	unsigned content_length;
	unsigned transfer_encoding;
};

static enum MHD_Result framing_count(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	struct framing *f = cls;

	if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
		f->content_length++;
	else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		f->transfer_encoding++;
	return MHD_YES;
}

/* Two Content-Length headers, or one with Transfer-Encoding: a proxy in
 * front may read the body's end elsewhere than libmicrohttpd does (request
 * smuggling). */
static bool framing_ambiguous(struct MHD_Connection *conn)
{
	struct framing f = { 0, 0 };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_count, &f);
	return f.content_length > 1 || (f.content_length && f.transfer_encoding);
}

/* ---- MHD callbacks ---- */

static struct conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void set_deadline(struct req *q, int64_t when)
{
	if (q->c)
		atomic_store(&q->c->deadline, when);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *srv = cls;
	struct req *q = *con_cls;

	if (!q) {
		const char *clen;

		/* Counted before draining is read: see struct http_server. */
		atomic_fetch_add(&srv->inflight, 1);
		if (!(q = calloc(1, sizeof(*q)))) {
			atomic_fetch_sub(&srv->inflight, 1);
			return MHD_NO;
		}
		*con_cls = q;
		q->srv = srv;
		q->start_us = time_mono_us();
		q->r.conn = conn;
		q->r.method = method;
		q->r.tls = srv->tls;
		q->r.scheme = srv->tls ? "https" : "http";
		q->path = url;
		q->r.path = url;
		buf_init(&q->resp.body, RESPONSE_MAX);
		if ((q->c = conn_of(conn)))
			client_resolve(q, conn);
		route_find(q, method);
		buf_init(&q->body, q->route ? q->route->body_max : 0);
		if (atomic_load(&srv->draining))
			return answer_now(q, 503, "the server is shutting down; please try again");
		if (framing_ambiguous(conn))
			return answer_now(q, 400, "conflicting Content-Length or Transfer-Encoding "
					  "headers");
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
		q->body_start_ms = time_mono_ms();
		set_deadline(q, q->body_start_ms + BODY_TIMEOUT_MS);
		/* Everything else is answered once the request is complete, so
		 * the connection can stay open for the next one. */
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!q->too_large && buf_append(&q->body, upload_data, *upload_data_size) < 0)
			q->too_large = true;
		if (q->too_large)
			q->discarded += *upload_data_size;
		q->received += *upload_data_size;
		/* A body being dropped earns no more time: a trickle must not
		 * hold the connection for the whole discard budget. */
		if (!q->too_large)
			set_deadline(q, q->body_start_ms + BODY_TIMEOUT_MS +
				     (int64_t)(q->received * 1000 / BODY_MIN_RATE));
		*upload_data_size = 0;
		/* Far past the cap: answer now; MHD closes rather than read on. */
		return q->discarded > DISCARD_MAX ? respond_now(q) : MHD_YES;
	}
	set_deadline(q, NO_DEADLINE);
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
	if (!handler_begin(q))
		return answer_now(q, 503, "the server is shutting down; please try again");
	q->r.route = q->route;
	if (q->route->pool != HTTP_POOL_INLINE && srv->workers.n &&
	    !(q->route->pool == HTTP_POOL_WORKER && srv->o.runs_inline &&
	      srv->o.runs_inline(srv->o.app, &q->r))) {
		submit(q->route->pool == HTTP_POOL_SIGNIN && srv->signin.n ? &srv->signin :
		       &srv->workers, q);
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
	handler_end(q);
	/* The next request's headers are due from now. */
	set_deadline(q, time_mono_ms() + HEADER_TIMEOUT_MS);
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

/* ---- connections per address ---- */

/* What one client is, for the cap: an IPv4 address, or an IPv6 /64 (a
 * host is usually given a whole /64 and could take a new address for
 * every connection). */
static struct ip addr_client(const struct ip *ip)
{
	struct ip k = *ip;

	if (k.family == AF_INET6)
		memset(k.a + 8, 0, 8);
	return k;
}

static struct addr_count **addr_bucket(struct http_server *srv, const struct ip *ip)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)ip, sizeof(*ip), srv->addr_key);
	memcpy(&v, h, sizeof(v));
	return &srv->addrs[v & (srv->naddrs - 1)];
}

/* Under conn_lock: counts a connection from ip unless it has
 * max_per_address open already (false then). */
static bool addr_take(struct http_server *srv, const struct ip *peer)
{
	struct ip k = addr_client(peer);
	struct addr_count **b = addr_bucket(srv, &k), *a;

	for (a = *b; a; a = a->next)
		if (!memcmp(&a->ip, &k, sizeof(k)))
			break;
	if (!a) {
		if (!(a = calloc(1, sizeof(*a))))
			return false;
		a->ip = k;
		a->next = *b;
		*b = a;
	}
	if (a->n >= srv->o.max_per_address)
		return false;
	a->n++;
	return true;
}

/* Under conn_lock. */
static void addr_release(struct http_server *srv, const struct ip *peer)
{
	struct ip k = addr_client(peer);
	struct addr_count **p = addr_bucket(srv, &k), *a;

	for (; (a = *p); p = &a->next)
		if (!memcmp(&a->ip, &k, sizeof(k)))
			break;
	if (a && a->n > 0 && --a->n == 0) {
		*p = a->next;
		free(a);
	}
}

static void conn_closed(struct http_server *srv, struct conn *c, const struct ip *ip,
			bool trusted)
{
	pthread_mutex_lock(&srv->conn_lock);
	if (c) {
		if (c->prev)
			c->prev->next = c->next;
		else
			srv->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	if (!trusted)
		addr_release(srv, ip);
	pthread_mutex_unlock(&srv->conn_lock);
	free(c);
	atomic_fetch_sub(&srv->connections, 1);
}

/* Every connection gets a struct conn as its socket context: its peer, and
 * the deadline the sweep enforces. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	const union MHD_ConnectionInfo *ci;
	struct conn *c;
	struct ip ip;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	ip_from_sockaddr(ci ? ci->client_addr : NULL, &ip);
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		/* libmicrohttpd closes the socket only after this: the sweep,
		 * under the same lock, never shuts down a reused descriptor. */
		c = *socket_context;
		conn_closed(srv, c, &ip, c ? c->trusted : ip_trusted(srv, &ip));
		*socket_context = NULL;
		return;
	}
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!(c = calloc(1, sizeof(*c)))) {
		/* Untracked, it could outlive every deadline: end it. */
		if (ci)
			shutdown(ci->connect_fd, SHUT_RDWR);
		return;
	}
	c->fd = ci ? ci->connect_fd : -1;
	c->ip = ip;
	c->trusted = ip_trusted(srv, &ip);
	atomic_store(&c->deadline, time_mono_ms() + HEADER_TIMEOUT_MS);
	pthread_mutex_lock(&srv->conn_lock);
	c->next = srv->conns;
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	pthread_mutex_unlock(&srv->conn_lock);
	*socket_context = c;
}

static void on_panic(void *cls, const char *file, unsigned line, const char *reason)
{
	log_error("libmicrohttpd failed at %s:%u: %s", file, line, reason ? reason : "");
	abort();
}

/* ---- the sweep: slow headers and bodies ---- */

/* Under conn_lock: at most one line a minute about refused and cut
 * connections (an attack must not flood the log). */
static void report(struct http_server *srv, int64_t now)
{
	if ((!srv->refused && !srv->cut) || now - srv->reported_ms < REPORT_INTERVAL_MS)
		return;
	if (srv->refused)
		log_warn("http: refused %lu connection(s) beyond max_connections_per_address = %u "
			 "(the last from %s)", srv->refused, srv->o.max_per_address,
			 srv->refused_from);
	if (srv->cut)
		log_warn("http: closed %lu connection(s) that sent no whole request within %d s "
			 "(idle keep-alive connections among them) or whose body came slower "
			 "than %d bytes/s", srv->cut, HEADER_TIMEOUT_MS / 1000, BODY_MIN_RATE);
	srv->refused = srv->cut = 0;
	srv->reported_ms = now;
}

/* Shuts down the connections past their deadline. shutdown(2) leaves the
 * descriptor to libmicrohttpd, whose next read sees the end and closes the
 * connection as if the client had (libmicrohttpd itself shuts down sockets
 * from other threads to stop them); the descriptor stays valid until the
 * close notification, which takes conn_lock first. */
static void *sweeper_main(void *p)
{
	struct http_server *srv = p;

	pthread_setname_np(pthread_self(), "kw-sweep");
	pthread_mutex_lock(&srv->conn_lock);
	while (!srv->sweep_stop) {
		struct timespec ts;
		int64_t now;
		bool cut_streams;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SWEEP_INTERVAL_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&srv->sweep_wake, &srv->conn_lock, &ts);
		now = time_mono_ms();
		cut_streams = atomic_load(&srv->cut_streams);
		for (struct conn *c = srv->conns; c; c = c->next) {
			bool late = atomic_load(&c->deadline) <= now;

			if (c->cut || c->fd < 0 || !(late || (cut_streams &&
							    atomic_load(&c->streamed))))
				continue;
			shutdown(c->fd, SHUT_RDWR);
			c->cut = true;
			srv->cut += late;   /* the report is about slow clients */
		}
		report(srv, now);
	}
	pthread_mutex_unlock(&srv->conn_lock);
	return NULL;
}

static void stop_sweeper(struct http_server *srv)
{
	if (!srv->sweeper_started)
		return;
	pthread_mutex_lock(&srv->conn_lock);
	srv->sweep_stop = true;
	pthread_cond_signal(&srv->sweep_wake);
	pthread_mutex_unlock(&srv->conn_lock);
	pthread_join(srv->sweeper, NULL);
	srv->sweeper_started = false;
}

/* ---- accepting ---- */

/* After an error that waiting may cure (out of descriptors or memory). */
static void back_off(const char *what)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	log_error("http: %s: %s", what, strerror(errno));
	nanosleep(&ts, NULL);
}

/* Takes one accepted socket to libmicrohttpd, or closes it when its address
 * has max_per_address connections open already. */
static void hand_over(struct http_server *srv, int fd, const struct sockaddr_storage *ss,
		      socklen_t len)
{
	struct ip ip;
	bool trusted, ok = true;

	ip_from_sockaddr((const struct sockaddr *)ss, &ip);
	trusted = ip_trusted(srv, &ip);
	if (!trusted) {
		pthread_mutex_lock(&srv->conn_lock);
		if (!(ok = addr_take(srv, &ip))) {
			srv->refused++;
			ip_format(&ip, srv->refused_from);
		}
		pthread_mutex_unlock(&srv->conn_lock);
	}
	if (!ok) {
		close(fd);
		return;
	}
	/* Counted here, not when libmicrohttpd's thread starts it: the next
	 * accept must see it. On failure libmicrohttpd has closed the socket
	 * and will not report it closed. */
	atomic_fetch_add(&srv->connections, 1);
	if (MHD_add_connection(srv->d, fd, (const struct sockaddr *)ss, len) != MHD_YES) {
		atomic_fetch_sub(&srv->connections, 1);
		if (!trusted) {
			pthread_mutex_lock(&srv->conn_lock);
			addr_release(srv, &ip);
			pthread_mutex_unlock(&srv->conn_lock);
		}
	}
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
			hand_over(srv, fd, &ss, len);
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
	unsigned threads = o->io_threads ? o->io_threads : 1;
	unsigned limit = o->max_connections ? o->max_connections : 1024;
	pthread_condattr_t cattr;
	int rc = KW_ERR_IO;

	if (!srv)
		return KW_ERR_NOMEM;
	srv->o = *o;
	if (!srv->o.max_per_address)
		srv->o.max_per_address = limit;
	srv->tls = o->tls_cert_pem != NULL;
	srv->listen_fd = srv->stop_fd = -1;
	pool_init(&srv->workers);
	pool_init(&srv->signin);
	pthread_mutex_init(&srv->conn_lock, NULL);
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->sweep_wake, &cattr);
	pthread_condattr_destroy(&cattr);
	for (srv->naddrs = 64; srv->naddrs < limit; srv->naddrs *= 2)
		;
	randombytes_buf(srv->addr_key, sizeof(srv->addr_key));
	if (!(srv->addrs = calloc(srv->naddrs, sizeof(*srv->addrs)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	pthread_once(&mhd_queue_response_once, find_mhd_queue_response);
	if (!mhd_queue_response) {
		snprintf(msg, msglen, "cannot find libmicrohttpd's MHD_queue_response: %s", dlerror());
		goto out;
	}
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
	if ((rc = pool_start(&srv->workers, srv, "kw-worker", o->workers, msg, msglen)) < 0 ||
	    (rc = pool_start(&srv->signin, srv, "kw-signin", o->signin_workers, msg,
			     msglen)) < 0)
		goto out;
	rc = KW_ERR_IO;
	MHD_set_panic_func(on_panic, NULL);
	/* libmicrohttpd splits its connection limit over its threads and
	 * closes, unreported, a connection beyond a thread's share; the
	 * acceptor keeps the real limit, so each thread may take them all. */
	srv->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, limit * threads,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		srv->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, o->tls_key_pem,
		MHD_OPTION_HTTPS_MEM_CERT, o->tls_cert_pem,
		MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
		MHD_OPTION_END);
	if (!srv->d) {
		snprintf(msg, msglen, "cannot start the HTTP server: %s",
			 errno ? strerror(errno) : "startup failed");
		goto out;
	}
	if (pthread_create(&srv->sweeper, NULL, sweeper_main, srv) != 0) {
		snprintf(msg, msglen, "cannot start the sweeping thread: %s", strerror(errno));
		goto out;
	}
	srv->sweeper_started = true;
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

/* Waits until *v is 0 or deadline (monotonic ms) passes; true when 0. */
static bool wait_zero(atomic_int *v, int64_t deadline)
{
	while (atomic_load(v) > 0) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (time_mono_ms() >= deadline)
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

void http_server_stop(struct http_server *srv, int64_t timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;

	if (!srv)
		return;
	if (srv->d) {
		/* New connections are refused and new requests answered 503
		 * with Connection: close; requests in flight may finish. */
		atomic_store(&srv->draining, true);
		stop_accepting(srv);
		if (!wait_zero(&srv->inflight, deadline))
			log_warn("http: %d request(s) still in progress after %lld s: no "
				 "handler starts any more", atomic_load(&srv->inflight),
				 (long long)(timeout_ms / 1000));
		/* From here no handler starts, so none suspends a connection:
		 * once the running ones are done, libmicrohttpd may stop (it
		 * aborts when a connection is suspended). They are waited for
		 * however long they take: a write they started may already be
		 * acknowledged. */
		atomic_store(&srv->closing, true);
		/* A body going out to a slow reader would hold the stop: its
		 * connection is closed (no write waits on a download). */
		pthread_mutex_lock(&srv->conn_lock);
		atomic_store(&srv->cut_streams, true);
		pthread_cond_signal(&srv->sweep_wake);
		pthread_mutex_unlock(&srv->conn_lock);
		if (atomic_load(&srv->busy) > 0)
			log_info("http: waiting for %d request handler(s) to finish",
				 atomic_load(&srv->busy));
		wait_zero(&srv->busy, INT64_MAX);
	}
	pool_stop(&srv->workers);
	pool_stop(&srv->signin);
	wait_zero(&srv->resuming, INT64_MAX);
	stop_accepting(srv);
	stop_sweeper(srv);
	if (srv->d)
		MHD_stop_daemon(srv->d);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	for (size_t i = 0; srv->addrs && i < srv->naddrs; i++)
		while (srv->addrs[i]) {
			struct addr_count *a = srv->addrs[i];

			srv->addrs[i] = a->next;
			free(a);
		}
	free(srv->addrs);
	pthread_mutex_destroy(&srv->conn_lock);
	pthread_cond_destroy(&srv->sweep_wake);
	metrics_free();
	log_flush();
	free(srv);
}
