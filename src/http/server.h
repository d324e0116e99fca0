/* The HTTP server: libmicrohttpd with its internal epoll threads for I/O,
 * and a pool of worker threads for handlers that may block (store, password
 * hashing), reached by suspending and resuming the connection. Requests are
 * dispatched through a declarative route table; anything not declared is
 * 404 (unknown path) or 405 (known path, other method). */
#ifndef KW_HTTP_SERVER_H
#define KW_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/ini.h"

#define HTTP_MAX_HEADERS 8
#define HTTP_MAX_PARAMS 2
#define HTTP_PARAM_MAX 64
#define HTTP_CLIENT_MAX 64

struct MHD_Connection;
struct route;

struct http_request {
	struct MHD_Connection *conn;
	const char *method;
	const char *path;                    /* without the query string */
	const char *body;                    /* NUL-terminated; "" when none */
	size_t body_len;
	/* The client's address: the peer's, or from a trusted proxy the
	 * rightmost X-Forwarded-For hop that is not itself a trusted proxy. */
	char client[HTTP_CLIENT_MAX];
	char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX]; /* {…} parts of the path */
	bool tls;                            /* this connection is TLS */
	/* "https" over TLS, or from a trusted proxy that sent
	 * X-Forwarded-Proto: https; "http" otherwise. Static string. */
	const char *scheme;
	const struct route *route;
	void *state;                         /* a pending handler's own data */
	void (*state_free)(void *state);
	void *auth;                          /* set by the authorize hook, freed by auth_free */
};

struct http_response {
	int status;
	const char *content_type;            /* static string */
	struct buf body;
	struct {
		const char *name;            /* static string */
		char *value;                 /* owned */
	} headers[HTTP_MAX_HEADERS];
	size_t nheaders;
	bool sensitive;                      /* body holds a secret: wiped after */
	/* A body made while it is sent (reports, exports of any size): when
	 * stream is set, body is not sent. Whenever the client has taken
	 * what was made, stream(stream_arg, out) runs on a worker thread
	 * (so it may read the store), appends the next part to out (about
	 * HTTP_STREAM_PART bytes; out is empty) and returns 0 while more
	 * follows (having appended something), 1 after the last part (which
	 * may be empty), or a negative error: the body is
	 * then cut short (chunked, so the client sees it incomplete) and the
	 * error logged (nothing of that part is sent). A stop cuts a body
	 * still going out short. stream_free(stream_arg) is called once when
	 * the response ends, however it ends, possibly after the request's
	 * own state (http_request.auth, .state) is freed: stream_arg owns
	 * everything stream needs. Parts are made on any worker: stream sets
	 * the language it writes in itself (i18n_use). The status and
	 * headers go first, so decide them before the first part. Over
	 * HTTP/1.1 the body is chunked and a cut is visible; an HTTP/1.0
	 * client (a proxy speaking 1.0 to keywarden) sees only the
	 * connection close, so proxies must speak HTTP/1.1 (nginx:
	 * proxy_http_version 1.1). */
	int (*stream)(void *arg, struct buf *out);
	void (*stream_free)(void *arg);
	void *stream_arg;
};

#define HTTP_STREAM_PART (64 * 1024)

typedef int (*http_handler)(void *app, struct http_request *req, struct http_response *resp);

/* A handler's return when the answer comes later: it called http_suspend,
 * started work elsewhere, and that work calls http_resume when done; then
 * the route's finish handler builds the response (on a server thread). */
#define HTTP_PENDING 1

/* How a route answers what it does not answer itself (404, 405, 413, a
 * refusal, a failing store): its reply kind. */
enum http_reply {
	HTTP_REPLY_HTML = 0,                 /* the app's error page (error_page hook) */
	HTTP_REPLY_JSON,                     /* {"error": "..."} */
	HTTP_REPLY_TEXT,                     /* text/plain */
};

/* Where a route's handler runs. The default is a worker thread: whatever
 * may wait (the store, a password hash, a directory) must never run on
 * libmicrohttpd's I/O threads, which every connection shares. */
enum http_pool {
	HTTP_POOL_WORKER = 0,                /* the shared worker threads */
	HTTP_POOL_SIGNIN,                    /* the sign-in threads: a slow password
					      * check or directory holds only these */
	HTTP_POOL_INLINE,                    /* the I/O thread: never blocks (no
					      * store, no hashing); may go HTTP_PENDING */
};

/* One entry of the route table. An entry without a handler, its pattern
 * a path followed by a "*" segment, declares only the reply kind of every
 * path under it that no route matches (404s under /api/ are JSON). */
struct route {
	const char *method;                  /* "GET", "POST" */
	const char *pattern;                 /* "/api/v1/checkin", "/helpdesk/devices/{id}" */
	http_handler handler;
	unsigned auth;                       /* how requests are authenticated: the
					      * app's kind, for the authorize hook */
	unsigned roles;                      /* the app's role bits, any of which
					      * admits; 0 = none needed. The
					      * authorize hook refuses (403) before
					      * the handler runs. */
	unsigned flags;                      /* the app's page behaviour bits */
	enum http_reply reply;
	size_t body_max;                     /* 0: no body allowed beyond 0 bytes */
	enum http_pool pool;
	http_handler finish;                 /* builds the answer after HTTP_PENDING */
};

/* Decides whether req may reach its route; returns 0 to go on, or fills resp
 * (401, 403, 303 to the sign-in page) and returns non-zero. */
typedef int (*http_authorize)(void *app, struct http_request *req, struct http_response *resp);

/* Fills resp with a page for an error the server answers itself (400, 404,
 * 405, 413, 500, 503) on a route whose reply is HTTP_REPLY_HTML; returns 0, or a negative
 * error and then the server sends plain text. Runs on a server thread and
 * must not block; req->route may be NULL (no route matched) and req->auth
 * NULL (authorize has not run, or failed). The server adds its own headers
 * (Allow, Retry-After, Connection) afterwards. */
typedef int (*http_error_page)(void *app, struct http_request *req, struct http_response *resp,
			       int status);

struct http_server_opts {
	const char *host;                    /* numeric address */
	uint16_t port;                       /* 0 = any free port */
	const char *tls_cert_pem;            /* NULL = plain HTTP */
	const char *tls_key_pem;
	unsigned io_threads;
	unsigned workers;                    /* HTTP_POOL_WORKER threads */
	unsigned signin_workers;             /* HTTP_POOL_SIGNIN threads (0: the
					      * shared workers run them) */
	unsigned max_connections;
	unsigned max_per_address;            /* open connections from one address */
	/* Peers whose X-Forwarded-For and X-Forwarded-Proto are believed; they
	 * are exempt from max_per_address. */
	const struct ini_cidr *proxies;
	size_t nproxies;
	const struct route *routes;          /* ended by a NULL method */
	http_authorize authorize;
	/* For a route in HTTP_POOL_WORKER: true when this request needs no
	 * worker (e.g. a page for anyone, asked without a session cookie, so
	 * the store is not read) and may run on the I/O thread. NULL: never. */
	bool (*runs_inline)(void *app, const struct http_request *req);
	void (*auth_free)(void *auth);       /* frees http_request.auth */
	http_error_page error_page;          /* NULL: plain text */
	void *app;
};

struct http_server;

/* Starts listening; returns KW_ERR_IO with msg on failure. */
int http_server_start(const struct http_server_opts *o, struct http_server **out,
		      char *msg, size_t msglen);

/* The port actually bound (useful with port 0). */
uint16_t http_server_port(const struct http_server *srv);

/* Stops accepting and answers any further request with 503 and
 * Connection: close; waits up to timeout_ms for the requests in flight to
 * finish, then starts no more handlers (503 again), waits for the handlers
 * still running however long they take (their writes may be acknowledged),
 * and stops and frees. */
void http_server_stop(struct http_server *srv, int64_t timeout_ms);

/* For a handler about to return HTTP_PENDING (inline or on a worker):
 * parks the connection. Call it before starting the work that will call
 * http_resume. */
void http_suspend(struct http_request *req);
/* From any thread, once the pending work is done. */
void http_resume(struct http_request *req);

/* ---- helpers for handlers ---- */

/* Adds a response header (value copied). */
int http_header(struct http_response *resp, const char *name, const char *value);
/* A plain or JSON body with a status; text is copied. */
int http_text(struct http_response *resp, int status, const char *text);
struct json_t;
int http_json(struct http_response *resp, int status, const struct json_t *doc);
/* {"error": message} with status. */
int http_json_error(struct http_response *resp, int status, const char *message);
/* 303 See Other to location. */
int http_redirect(struct http_response *resp, const char *location);
/* A request header, or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/* A query-string argument, or NULL. */
const char *http_query(const struct http_request *req, const char *name);
/* A cookie, or NULL. */
const char *http_cookie(const struct http_request *req, const char *name);

#endif
