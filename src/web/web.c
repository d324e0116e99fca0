#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/role.h"
#include "core/config.h"
#include "core/keyid.h"
#include "util/err.h"
#include "util/str.h"
#include "web/app.h"
#include "web/web.h"

#define LANG_COOKIE "keywarden_lang"

struct web_req *web_ctx(struct http_request *req)
{
	return req->auth;
}

void web_ctx_free(void *ctx)
{
	struct web_req *w = ctx;

	if (!w)
		return;
	form_free(&w->form);
	/* Only a session (read, even if it expired) or a form holds anything
	 * secret; most page views have neither. */
	if (w->has_session || w->s.csrf[0] || w->s.user[0] || w->has_form)
		sodium_memzero(w, sizeof(*w));
	free(w);
}

const char *web_session_cookie_name(const struct http_request *req)
{
	return req->tls ? SESSION_COOKIE_TLS : SESSION_COOKIE_PLAIN;
}

const char *web_login_cookie_name(const struct http_request *req)
{
	return req->tls ? "__Host-keywarden_login" : "keywarden_login";
}

static int set_cookie(struct http_request *req, struct http_response *resp,
		      const char *name, const char *value, bool http_only)
{
	char c[256];

	snprintf(c, sizeof(c), "%s=%s; Path=/; SameSite=Strict%s%s%s", name,
		 value ? value : "", http_only ? "; HttpOnly" : "",
		 req->tls ? "; Secure" : "", value ? "" : "; Max-Age=0");
	return http_header(resp, "Set-Cookie", c);
}

int web_session_cookie(struct http_request *req, struct http_response *resp,
		       const char *value)
{
	return set_cookie(req, resp, web_session_cookie_name(req), value, true);
}

int web_login_cookie(struct http_request *req, struct http_response *resp, const char *value)
{
	return set_cookie(req, resp, web_login_cookie_name(req), value, true);
}

/* "/recover?lang=sv": the current page in the other language. */
static void lang_link(const struct http_request *req, const char *code, char *out, size_t len)
{
	snprintf(out, len, "%s?lang=%s", req->path, code);
}

int web_render(struct app *app, struct http_request *req, const char *name, struct tpl *t,
	       struct buf *out)
{
	struct web_req *w = web_ctx(req);
	const struct config *cfg = app->cfg;
	const char *code = i18n_code(w->lang);
	char link_en[600], link_sv[600], remaining[24], warning[24];

	tpl_set(t, "lang", code);
	tpl_set(t, "company", ini_text(&cfg->company_name, code));
	tpl_set(t, "helpdesk_text", ini_text(&cfg->helpdesk_text, code));
	tpl_set(t, "helpdesk_url", ini_text(&cfg->helpdesk_url, code));
	lang_link(req, "en", link_en, sizeof(link_en));
	lang_link(req, "sv", link_sv, sizeof(link_sv));
	tpl_set(t, "link_en", link_en);
	tpl_set(t, "link_sv", link_sv);
	tpl_set(t, w->lang == LANG_SV ? "is_sv" : "is_en", "1");
	if (w->has_session) {
		struct session_limits lim = { cfg->session_idle_timeout,
					      cfg->session_max_lifetime };
		int64_t left = session_remaining(&w->s, w->s.last_seen, &lim);

		tpl_set(t, "signed_in", "1");
		tpl_set(t, "user", w->s.user);
		/* Staff see the way to the help desk from every page. */
		tpl_set(t, "staff", roles_effective(w->s.roles) ? "1" : NULL);
		tpl_set(t, "csrf", w->s.csrf);
		if (left >= 0) {
			snprintf(remaining, sizeof(remaining), "%lld", (long long)left);
			snprintf(warning, sizeof(warning), "%lld",
				 (long long)cfg->session_warning);
			tpl_set(t, "remaining", remaining);
			tpl_set(t, "warning", warning);
		}
	}
	return tpl_render(name, t, i18n_gettext, out);
}

int web_page_headers(struct http_request *req, struct http_response *resp, int status)
{
	struct web_req *w = web_ctx(req);

	resp->status = status;
	resp->content_type = "text/html; charset=utf-8";
	buf_reset(&resp->body);
	return w->lang_chosen ? set_cookie(req, resp, LANG_COOKIE, i18n_code(w->lang), false) : 0;
}

int web_page(struct app *app, struct http_request *req, struct http_response *resp,
	     int status, const char *name, struct tpl *t)
{
	int rc = web_page_headers(req, resp, status);

	return rc < 0 ? rc : web_render(app, req, name, t, &resp->body);
}

int web_message(struct app *app, struct http_request *req, struct http_response *resp,
		int status, const char *title, const char *message)
{
	struct tpl t;

	tpl_init(&t);
	tpl_set(&t, "title", title);
	tpl_set(&t, "message", message);
	return web_page(app, req, resp, status, "message.html", &t);
}

void web_keyid_error(const struct keyid_error *e, char *msg, size_t msglen)
{
	switch (e->problem) {
	case KEYID_OK:
		str_msg_clear(msg, msglen);
		return;
	case KEYID_TOO_LONG:
		str_msg(msg, msglen,
			_("The recovery key ID is too long: enter at most 128 characters."));
		return;
	case KEYID_BAD_CHAR:
		if (e->ch)
			str_msg(msg, msglen,
				_("The recovery key ID may contain only the digits 0-9 and letters A-F; '%c' at position %zu is not allowed."),
				e->ch, e->pos);
		else
			str_msg(msg, msglen,
				_("The recovery key ID may contain only the digits 0-9 and letters A-F; the character at position %zu is not allowed."),
				e->pos);
		return;
	case KEYID_EMPTY:
		str_msg(msg, msglen, _("Enter the recovery key ID."));
		return;
	case KEYID_TOO_MANY:
		str_msg(msg, msglen, _("A recovery key ID has 32 characters; you entered %zu."),
			e->digits);
		return;
	case KEYID_TOO_FEW:
		if (e->full)
			str_msg(msg, msglen,
				_("A full recovery key ID has 32 characters; you entered %zu."),
				e->digits);
		else
			str_msg(msg, msglen,
				_("Enter at least the first 8 characters of the recovery key ID (you entered %zu)."),
				e->digits);
		return;
	}
}
