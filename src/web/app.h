/* The running application: configuration, store, master key and rate
 * limiters shared by every handler, the route table of the whole server and
 * the check every request passes before its handler (app_authorize). */
#ifndef KW_WEB_APP_H
#define KW_WEB_APP_H

#include <stdint.h>

#include "http/server.h"

struct auth;
struct config;
struct store;
struct seal;
struct limiter;

/* What a route requires (struct route.access). */
enum access {
	ACCESS_PUBLIC = 0,   /* anyone; no session looked at */
	ACCESS_DEVICE,       /* a device secret (checked by the API handlers) */
	ACCESS_PAGE,         /* anyone; a web page (language, optional session) */
	ACCESS_LOGIN,        /* the sign-in form: POST needs its CSRF cookie */
	ACCESS_SIGNED_IN,    /* a session; the notice need not be accepted */
	ACCESS_PORTAL,       /* a session with the notice accepted */
};

#define CHECKIN_INTERVAL_S 5400

struct app {
	const struct config *cfg;
	struct store *store;
	struct auth *auth;                       /* the sign-in backends */
	struct seal *seal;
	int key_lock;                            /* shared lock on key_file */
	struct limiter *login_failures;          /* per account name */
	struct limiter *lookup_failures;         /* per user */
	struct limiter *lookup_failures_addr;    /* per client address */
	struct device_cache *devices;            /* check-ins: secret -> device */
};

/* Loads the master key, opens (and migrates) the store, checks that the
 * key is the one the database was sealed with, and sets up the limiters.
 * msg says what failed. */
int app_open(struct app *app, const struct config *cfg, char *msg, size_t msglen);
void app_close(struct app *app);

extern const struct route app_routes[];

int app_authorize(void *app, struct http_request *req, struct http_response *resp);

/* The page for an error the server answers itself (http_error_page): the
 * portal's layout, in the request's language, with a short explanation. */
int app_error_page(void *app, struct http_request *req, struct http_response *resp,
		   int status);
void app_auth_free(void *auth);

#endif
