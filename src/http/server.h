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
};

typedef int (*http_handler)(void *app, struct http_request *req, struct http_response *resp);

/* A handler's return when the answer comes later: it called http_suspend,
 * started work elsewhere, and that work calls http_resume when done; then
 * the route's finish handler builds the response (on a server thread). */
#define HTTP_PENDING 1

struct route {
	const char *method;                  /* "GET", "POST" */
	const char *pattern;                 /* "/api/v1/checkin", "/helpdesk/devices/{id}" */
	http_handler handler;
	unsigned access;                     /* passed to the authorize hook */
	size_t body_max;                     /* 0: no body allowed beyond 0 bytes */
	bool blocking;                       /* runs on a worker thread */
	http_handler finish;                 /* after HTTP_PENDING (inline routes) */
};

/* Decides whether req may reach its route; returns 0 to go on, or fills resp
 * (401, 403, 303 to the sign-in page) and returns non-zero. */
typedef int (*http_authorize)(void *app, struct http_request *req, struct http_response *resp);

/* Fills resp with a page for an error the server answers itself (400, 404,
 * 405, 413, 500, 503) on a path outside /api/; returns 0, or a negative
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
	unsigned workers;
	unsigned max_connections;
	unsigned max_per_address;            /* open connections from one address */
	/* Peers whose X-Forwarded-For and X-Forwarded-Proto are believed; they
	 * are exempt from max_per_address. */
	const struct ini_cidr *proxies;
	size_t nproxies;
	const struct route *routes;          /* ended by a NULL method */
	http_authorize authorize;
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

/* For an inline handler about to return HTTP_PENDING: parks the connection.
 * Call it before starting the work that will call http_resume. */
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
