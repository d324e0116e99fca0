/* What every web page shares: the per-request context set up by
 * app_authorize (language, session, decoded form), cookies, and rendering a
 * page inside the common layout (company name, help-desk text, language
 * switch, the session timeout dialog). */
#ifndef KW_WEB_WEB_H
#define KW_WEB_WEB_H

#include <stdbool.h>

#include "auth/session.h"
#include "http/form.h"
#include "http/server.h"
#include "http/template.h"
#include "util/i18n.h"

struct app;

struct web_req {
	enum lang lang;
	bool lang_chosen;          /* ?lang= given: remember it in a cookie */
	bool has_session;
	struct session s;
	bool has_form;
	struct form form;
};

/* The request's context (never NULL after app_authorize). */
struct web_req *web_ctx(struct http_request *req);
void web_ctx_free(void *ctx);

/* Renders template name (with the layout it includes) as an HTML page with
 * the given status. Adds the variables every page uses to t. */
int web_page(struct app *app, struct http_request *req, struct http_response *resp,
	     int status, const char *name, struct tpl *t);

/* The parts of web_page: the variables every page uses added to t and
 * template name rendered into out; and the status, type and language
 * cookie of a page response (its body emptied). */
int web_render(struct app *app, struct http_request *req, const char *name, struct tpl *t,
	       struct buf *out);
int web_page_headers(struct http_request *req, struct http_response *resp, int status);

/* Set-Cookie for the session (value NULL: delete it). */
int web_session_cookie(struct http_request *req, struct http_response *resp,
		       const char *value);
const char *web_session_cookie_name(const struct http_request *req);

/* The pre-sign-in CSRF cookie of the login form. */
const char *web_login_cookie_name(const struct http_request *req);
int web_login_cookie(struct http_request *req, struct http_response *resp,
		     const char *value);

/* An error page in the layout: status, a title and a message (translated
 * by the caller). */
int web_message(struct app *app, struct http_request *req, struct http_response *resp,
		int status, const char *title, const char *message);

/* A key ID's problem (core/keyid.h) in the request's language. */
struct keyid_error;
void web_keyid_error(const struct keyid_error *e, char *msg, size_t msglen);

#endif
