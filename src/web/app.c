#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/enroll.h"
#include "core/keyfile.h"
#include "core/limits.h"
#include "core/limits_memory.h"
#include "core/limits_store.h"
#include "core/role.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "web/api/api.h"
#include "web/app.h"
#include "web/helpdesk/helpdesk.h"
#include "web/portal/portal.h"
#include "web/static.h"
#include "web/web.h"

#define JSON_BODY_MAX (64 * 1024)
#define FORM_BODY_MAX (16 * 1024)
#define LIMITER_KEYS 10000

/* Every URL the server answers; anything else is 404, or 405 for a known
 * path with another method. A route declares how it is authenticated, the
 * roles it admits, how its errors are answered and its body cap; it runs
 * on a worker thread unless declared inline (never blocks: no store, no
 * hashing) or, for sign-in, on the sign-in threads. finish: answers after
 * HTTP_PENDING. */
#define HTML HTTP_REPLY_HTML
#define JSON HTTP_REPLY_JSON
#define TEXT HTTP_REPLY_TEXT
#define INLINE HTTP_POOL_INLINE
const struct route app_routes[] = {
	/* the device API and operations */
	{ .method = "*", .pattern = "/api/*", .reply = JSON },
	{ .method = "GET", .pattern = "/healthz", .handler = api_healthz,
	  .auth = AUTH_NONE, .reply = TEXT },
	{ .method = "GET", .pattern = "/metrics", .handler = api_metrics,
	  .auth = AUTH_NONE, .reply = TEXT, .pool = INLINE },
	{ .method = "POST", .pattern = "/api/v1/register", .handler = api_register,
	  .auth = AUTH_NONE, .reply = JSON, .body_max = JSON_BODY_MAX },
	/* inline when the device is in the check-in cache (app_runs_inline);
	 * its write goes to the store's group commit without holding a thread */
	{ .method = "POST", .pattern = "/api/v1/checkin", .handler = api_checkin,
	  .auth = AUTH_DEVICE, .reply = JSON, .body_max = JSON_BODY_MAX,
	  .finish = api_checkin_finish },
	{ .method = "GET", .pattern = "/static/{file}", .handler = static_asset,
	  .auth = AUTH_NONE, .reply = TEXT, .pool = INLINE },

	/* the self-service portal */
	{ .method = "GET", .pattern = "/", .handler = portal_home, .auth = AUTH_OPTIONAL },
	{ .method = "GET", .pattern = "/SelfService", .handler = portal_old_bookmark,
	  .auth = AUTH_NONE, .pool = INLINE },
	{ .method = "GET", .pattern = "/SelfService/", .handler = portal_old_bookmark,
	  .auth = AUTH_NONE, .pool = INLINE },
	{ .method = "GET", .pattern = "/login", .handler = portal_login_form,
	  .auth = AUTH_LOGIN },
	{ .method = "POST", .pattern = "/login", .handler = portal_login,
	  .auth = AUTH_LOGIN, .body_max = FORM_BODY_MAX, .pool = HTTP_POOL_SIGNIN },
	{ .method = "POST", .pattern = "/logout", .handler = portal_logout,
	  .auth = AUTH_SESSION, .body_max = FORM_BODY_MAX },
	{ .method = "GET", .pattern = "/notice", .handler = portal_notice_form,
	  .auth = AUTH_SESSION },
	{ .method = "POST", .pattern = "/notice", .handler = portal_notice,
	  .auth = AUTH_SESSION, .body_max = FORM_BODY_MAX },
	{ .method = "GET", .pattern = "/recover", .handler = portal_recover_form,
	  .auth = AUTH_SESSION, .flags = PAGE_NEEDS_NOTICE },
	{ .method = "POST", .pattern = "/recover", .handler = portal_recover,
	  .auth = AUTH_SESSION, .flags = PAGE_NEEDS_NOTICE, .body_max = FORM_BODY_MAX },
	{ .method = "POST", .pattern = "/session/keepalive", .handler = portal_keepalive,
	  .auth = AUTH_SESSION, .reply = JSON, .body_max = FORM_BODY_MAX },
	{ .method = "GET", .pattern = "/session/expired", .handler = portal_expired,
	  .auth = AUTH_OPTIONAL },

	/* the help desk (SPEC §2, §4): the roles each part admits; a role
	 * admits what it implies (core/role.h roles_effective) */
	{ .method = "GET", .pattern = "/helpdesk", .handler = helpdesk_home,
	  .auth = AUTH_SESSION, .roles = ROLES_HELPDESK_ANY },
	{ .method = "GET", .pattern = "/helpdesk/recover", .handler = helpdesk_recover_form,
	  .auth = AUTH_SESSION, .roles = ROLE_HELPDESK },
	{ .method = "POST", .pattern = "/helpdesk/recover", .handler = helpdesk_recover,
	  .auth = AUTH_SESSION, .roles = ROLE_HELPDESK, .body_max = FORM_BODY_MAX },
	{ .method = "GET", .pattern = "/helpdesk/devices", .handler = helpdesk_devices,
	  .auth = AUTH_SESSION, .roles = ROLE_HELPDESK_ADMIN },
	{ .method = "GET", .pattern = "/helpdesk/devices/{id}", .handler = helpdesk_device,
	  .auth = AUTH_SESSION, .roles = ROLE_HELPDESK_ADMIN },
	{ .method = "GET", .pattern = "/helpdesk/devices/{id}/lost",
	  .handler = helpdesk_device_lost, .auth = AUTH_SESSION, .roles = ROLE_HELPDESK_ADMIN },
	{ .method = "POST", .pattern = "/helpdesk/devices/{id}/associations",
	  .handler = helpdesk_device_assoc, .auth = AUTH_SESSION, .roles = ROLE_HELPDESK_ADMIN,
	  .body_max = FORM_BODY_MAX },
	{ .method = "GET", .pattern = "/helpdesk/reports/audit", .handler = helpdesk_report_audit,
	  .auth = AUTH_SESSION, .roles = ROLE_REPORTS },
	{ .method = "GET", .pattern = "/helpdesk/reports/unrotated",
	  .handler = helpdesk_report_unrotated, .auth = AUTH_SESSION, .roles = ROLE_REPORTS },
	{ .method = "GET", .pattern = "/helpdesk/reports/compliance",
	  .handler = helpdesk_report_compliance, .auth = AUTH_SESSION, .roles = ROLE_REPORTS },
	{ .method = "GET", .pattern = "/helpdesk/admin/users", .handler = helpdesk_admin_users,
	  .auth = AUTH_SESSION, .roles = ROLE_ADMIN },
	{ .method = "POST", .pattern = "/helpdesk/admin/users",
	  .handler = helpdesk_admin_users_post, .auth = AUTH_SESSION, .roles = ROLE_ADMIN,
	  .body_max = FORM_BODY_MAX },
	{ .method = "GET", .pattern = "/helpdesk/admin/enrollment",
	  .handler = helpdesk_admin_enrollment, .auth = AUTH_SESSION, .roles = ROLE_ADMIN },
	{ .method = "POST", .pattern = "/helpdesk/admin/enrollment",
	  .handler = helpdesk_admin_enrollment_post, .auth = AUTH_SESSION, .roles = ROLE_ADMIN,
	  .body_max = FORM_BODY_MAX },
	{ .method = NULL },
};
#undef HTML
#undef JSON
#undef TEXT
#undef INLINE

void app_auth_free(void *auth)
{
	web_ctx_free(auth);
}

/* A browser's POST must come from this site: its Origin is this scheme
 * (as a trusted proxy reports it) and the Host header. Under our Referrer-Policy: no-referrer, browsers
 * send "Origin: null" even for our own forms; then Sec-Fetch-Site, which
 * they also send, must say same-origin. Requests with neither (not from a
 * browser) rely on the CSRF token alone. */
static bool same_origin(const struct http_request *req)
{
	const char *origin = http_request_header(req, "Origin");
	const char *host = http_request_header(req, "Host");
	const char *site = http_request_header(req, "Sec-Fetch-Site");
	const char *scheme = req->scheme;
	size_t n = strlen(scheme);

	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return false;
	if (!origin || (!strcmp(origin, "null") && site))
		return true;
	if (!host || strncmp(origin, scheme, n) || strncmp(origin + n, "://", 3))
		return false;
	return strcmp(origin + n + 3, host) == 0;
}

static int forbidden(struct app *app, struct http_request *req, struct http_response *resp)
{
	int rc = web_message(app, req, resp, 403, _("Request refused"),
			     _("The form was out of date or came from another site. Go back, "
			       "reload the page and try again."));

	return rc < 0 ? rc : 1;
}

/* A route that needs a session: to the sign-in page without one, to the
 * expiry page when it timed out; 401 for JSON. */
static int need_session(struct app *app, struct http_request *req, struct http_response *resp,
			int load_rc)
{
	int rc;

	if (req->route->reply == HTTP_REPLY_JSON) {
		rc = http_json_error(resp, 401, "session expired");
		return rc < 0 ? rc : 1;
	}
	if (load_rc == KW_ERR_EXPIRED) {
		if ((rc = web_session_cookie(req, resp, NULL)) < 0)
			return rc;
		rc = http_redirect(resp, "/session/expired");
	} else {
		rc = http_redirect(resp, "/login");
	}
	return rc < 0 ? rc : 1;
}

/* Signed in, but the route admits none of the user's roles. */
static int not_allowed(struct app *app, struct http_request *req, struct http_response *resp)
{
	int rc;

	if (req->route->reply == HTTP_REPLY_JSON)
		rc = http_json_error(resp, 403, "your roles do not allow this");
	else {
		struct tpl t;

		tpl_init(&t);
		tpl_set(&t, "title", _("Access denied"));
		tpl_set(&t, "message", _("Your account does not have access to this page. If "
					 "you need it, ask your administrator."));
		tpl_set(&t, "link_url", "/");
		tpl_set(&t, "link_text", _("Go to the self-service page"));
		rc = web_page(app, req, resp, 403, "message.html", &t);
	}
	return rc < 0 ? rc : 1;
}

/* The language of a page for this request, from ?lang=, its cookie or
 * Accept-Language; recorded in w and made the thread's. */
static void choose_language(struct http_request *req, struct web_req *w)
{
	w->lang = i18n_negotiate(http_query(req, "lang"), http_cookie(req, "keywarden_lang"),
				 http_request_header(req, "Accept-Language"));
	w->lang_chosen = http_query(req, "lang") != NULL;
	i18n_use(w->lang);
}

int app_error_page(void *ctx, struct http_request *req, struct http_response *resp, int status)
{
	struct app *app = ctx;
	struct web_req *w = req->auth;
	const char *title, *text;

	if (!w) {
		/* No context yet (no route, or the check failed before it was
		 * made): a signed-out page in the asked-for language. */
		if (!(w = calloc(1, sizeof(*w))))
			return KW_ERR_NOMEM;
		req->auth = w;
		choose_language(req, w);
	} else {
		i18n_use(w->lang);
	}
	title = _("Request refused");   /* translated after i18n_use */
	switch (status) {
	case 404:
		title = _("Page not found");
		text = _("There is no page at this address.");
		break;
	case 405:
		text = _("This page cannot be used that way.");
		break;
	case 413:
		text = _("The form was too large.");
		break;
	case 503:
		title = _("Service unavailable");
		text = _("The service cannot answer right now. Try again in a few minutes; if "
			 "it keeps happening, contact the help desk.");
		break;
	case 500:
		title = _("Something went wrong");
		text = _("The request could not be completed. Try again; if it keeps "
			 "happening, contact the help desk.");
		break;
	default:
		text = _("The request could not be read.");
		break;
	}
	return web_message(app, req, resp, status, title, text);
}

bool app_runs_inline(void *ctx, const struct http_request *req)
{
	unsigned auth = req->route->auth;

	if (auth == AUTH_DEVICE)
		return api_device_known(ctx, req);
	return (auth == AUTH_OPTIONAL || auth == AUTH_LOGIN) && !req->route->roles &&
		strcmp(req->method, "POST") && !http_cookie(req, web_session_cookie_name(req));
}

int app_authorize(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	const struct config *cfg = app->cfg;
	const struct route *route = req->route;
	struct session_limits lim = { cfg->session_idle_timeout, cfg->session_max_lifetime };
	struct web_req *w;
	int64_t now = time_now();
	bool post = !strcmp(req->method, "POST");
	const char *csrf, *cookie;
	int rc;

	if (route->auth == AUTH_NONE || route->auth == AUTH_DEVICE) {
		i18n_use(LANG_EN);
		return 0;
	}
	if (!(w = calloc(1, sizeof(*w))))
		return KW_ERR_NOMEM;
	req->auth = w;
	choose_language(req, w);

	cookie = http_cookie(req, web_session_cookie_name(req));
	rc = cookie ? session_load(app->store, cookie, now, &lim, &w->s) : KW_ERR_NOT_FOUND;
	if (rc < 0 && rc != KW_ERR_NOT_FOUND && rc != KW_ERR_EXPIRED)
		return rc;
	w->has_session = rc == 0;
	if (route->auth == AUTH_SESSION && !w->has_session)
		return need_session(app, req, resp, rc);
	/* Before the form is read: a user without the role learns nothing more. */
	if (route->roles && !(roles_effective(w->s.roles) & route->roles))
		return w->has_session ? not_allowed(app, req, resp) :
			need_session(app, req, resp, rc);

	if (post) {
		if (!same_origin(req))
			return forbidden(app, req, resp);
		if (form_parse(req, &w->form) < 0 || w->form.too_large) {
			rc = web_message(app, req, resp, 400, _("Request refused"),
					 _("The form could not be read."));
			return rc < 0 ? rc : 1;
		}
		w->has_form = true;
		csrf = form_get(&w->form, "csrf_token");
		if (route->auth == AUTH_LOGIN) {
			const char *login = http_cookie(req, web_login_cookie_name(req));

			if (!csrf || !login || !secret_equal(csrf, login))
				return forbidden(app, req, resp);
		} else if (!w->has_session || !csrf || !secret_equal(csrf, w->s.csrf)) {
			return forbidden(app, req, resp);
		}
	}
	if (w->has_session && route->auth == AUTH_SESSION) {
		/* Activity: the idle timeout starts again (written at most once in
		 * a while: a page view does not cost a disk sync). */
		rc = session_activity(app->store, &w->s, now, &lim);
		if (rc == KW_ERR_NOT_FOUND) {
			/* Ended meanwhile (signed out in another tab, expired,
			 * the account disabled): as if it had not been there. */
			w->has_session = false;
			return need_session(app, req, resp, KW_ERR_EXPIRED);
		}
		if (rc < 0)
			return rc;
		if ((route->flags & PAGE_NEEDS_NOTICE) && cfg->display_notice &&
		    !w->s.notice_accepted) {
			rc = http_redirect(resp, "/notice");
			return rc < 0 ? rc : 1;
		}
	}
	return 0;
}

/* The key the database is sealed with, found as every command finds it
 * (core/keyfile.h: an interrupted rekey is finished or its key used), and
 * the shared lock on the key file that keeps rekey out while serving. */
static int check_key(struct app *app, char *msg, size_t msglen)
{
	struct keyfile kf;
	int rc;

	if ((rc = keyfile_open(app->store, app->cfg->key_file, false, &kf, msg, msglen)) < 0)
		return rc;
	if (kf.how == KEYFILE_FINISHED || kf.how == KEYFILE_PENDING)
		log_warn("%s", kf.note);
	app->seal = kf.seal;        /* owned by app */
	app->key_lock = kf.lock;
	/* A rekey on another instance of a shared database shows in /healthz. */
	keyfile_expect(kf.fingerprint);
	return 0;
}

/* In the store when several instances share it (each must see every
 * attempt), else in memory (no disk write per attempt). */
static int new_limiter(struct app *app, const char *name, const struct ini_rate *r,
		       struct limiter **out)
{
	if (store_shared(app->store))
		return limiter_store_new(app->store, name, r->count, r->window, out);
	return limiter_memory_new(r->count, r->window, LIMITER_KEYS, out);
}

int app_open(struct app *app, const struct config *cfg, char *msg, size_t msglen)
{
	int rc;

	memset(app, 0, sizeof(*app));
	app->cfg = cfg;
	app->key_lock = -1;
	if ((rc = store_open(cfg->database, true, &app->store, msg, msglen)) < 0)
		goto fail;
	if ((rc = check_key(app, msg, msglen)) < 0)
		goto fail;
	if ((rc = auth_open(cfg, app->store, &app->auth, msg, msglen)) < 0)
		goto fail;
	if ((rc = new_limiter(app, "login", &cfg->login_failures, &app->login_failures)) < 0 ||
	    (rc = new_limiter(app, "lookup", &cfg->lookup_failures, &app->lookup_failures)) < 0 ||
	    (rc = new_limiter(app, "lookup_address", &cfg->lookup_failures_per_address,
			      &app->lookup_failures_addr)) < 0) {
		snprintf(msg, msglen, "cannot set up rate limits: %s", kw_strerror(rc));
		goto fail;
	}
	if ((rc = device_cache_new(&app->devices)) < 0) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	return 0;
fail:
	app_close(app);
	return rc;
}

void app_close(struct app *app)
{
	limiter_free(app->login_failures);
	limiter_free(app->lookup_failures);
	limiter_free(app->lookup_failures_addr);
	device_cache_free(app->devices);
	app->devices = NULL;
	auth_close(app->auth);
	app->auth = NULL;
	store_close(app->store);
	seal_free(app->seal);
	if (app->cfg && app->key_lock >= 0)   /* cfg is set once app_open ran */
		close(app->key_lock);
	app->key_lock = -1;
	app->login_failures = app->lookup_failures = app->lookup_failures_addr = NULL;
	app->store = NULL;
	app->seal = NULL;
}
