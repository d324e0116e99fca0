/* The running application: configuration, store, master key and rate
 * limiters shared by every handler, the route table of the whole server and
 * the check every request passes before its handler (app_authorize). */
#ifndef KW_WEB_APP_H
#define KW_WEB_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/role.h"
#include "http/server.h"
#include "store/store.h"

struct auth;
struct config;
struct store;
struct seal;
struct limiter;

/* How a route's requests are authenticated (struct route.auth). */
enum web_auth {
	AUTH_NONE = 0,       /* no one in particular: no session is looked at */
	AUTH_DEVICE,         /* a device secret, checked by the API handler */
	AUTH_OPTIONAL,       /* a page for anyone; the session when there is one */
	AUTH_LOGIN,          /* the sign-in form: as AUTH_OPTIONAL, and a POST
			      * carries the CSRF token of its pre-session cookie */
	AUTH_SESSION,        /* a session; a POST carries the session's CSRF token */
};

/* How a page behaves (struct route.flags). */
#define PAGE_NEEDS_NOTICE 0x1u   /* the notice is accepted first (SPEC §3.2) */

/* Any role of the help-desk portal (store.h enum role). */
#define ROLES_HELPDESK_ANY (ROLE_HELPDESK | ROLE_HELPDESK_ADMIN | ROLE_REPORTS | ROLE_ADMIN)

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

/* The check every request passes before its handler (http_authorize):
 * the language of a page, the session its auth kind needs (else to the
 * sign-in or expiry page, or 401 for JSON), the CSRF token and Origin of a
 * POST (403), the route's roles (403), the notice; records activity. */
int app_authorize(void *app, struct http_request *req, struct http_response *resp);

/* http_server_opts.runs_inline: a page for anyone asked without a session
 * cookie, and a check-in from a device the cache knows, read nothing from
 * the store. */
bool app_runs_inline(void *app, const struct http_request *req);

/* The page for an error the server answers itself (http_error_page): the
 * portal's layout, in the request's language, with a short explanation. */
int app_error_page(void *app, struct http_request *req, struct http_response *resp,
		   int status);
void app_auth_free(void *auth);

#endif
