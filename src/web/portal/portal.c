#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "auth/auth.h"
#include "auth/password.h"
#include "auth/session.h"
#include "core/audit.h"
#include "core/config.h"
#include "core/keyid.h"
#include "core/limits.h"
#include "core/recover.h"
#include "core/role.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "web/app.h"
#include "web/portal/portal.h"
#include "web/web.h"

#define NOTICE_MAX (64 * 1024)
#define USERNAME_MAX 256

/* The reasons of SPEC §3; their labels are in templates/recover.html. */
static const struct {
	const char *code;
	const char *var;
} reasons[] = {
	{ "bios_tpm_changed", "r_bios_tpm_changed" },
	{ "os_files_changed", "r_os_files_changed" },
	{ "lost_pin", "r_lost_pin" },
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

/* Where a signed-in person goes: the notice until it is accepted, then the
 * help desk's start page for staff (any help-desk role), else self-service. */
static const char *next_page(const struct app *app, const struct web_req *w)
{
	if (app->cfg->display_notice && !w->s.notice_accepted)
		return "/notice";
	return roles_effective(w->s.roles) ? "/helpdesk" : "/recover";
}

int portal_home(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct web_req *w = web_ctx(req);

	return http_redirect(resp, w->has_session ? next_page(ctx, w) : "/login");
}

int portal_old_bookmark(void *ctx, struct http_request *req, struct http_response *resp)
{
	int rc = http_redirect(resp, "/");

	resp->status = 301;
	return rc;
}

/* ---- sign-in ---- */

/* The sign-in form with a fresh pre-session CSRF cookie. */
static int login_page(struct app *app, struct http_request *req, struct http_response *resp,
		      int status, const char *error, const char *username)
{
	char token[SECRET_TEXT_MAX];
	struct tpl t;
	int rc;

	secret_new("", token);
	tpl_init(&t);
	tpl_set(&t, "title", _("Sign in"));
	tpl_set(&t, "login_csrf", token);
	tpl_set(&t, "error", error);
	tpl_set(&t, "username", username);
	rc = web_login_cookie(req, resp, token);
	if (rc == 0)
		rc = web_page(app, req, resp, status, "login.html", &t);
	sodium_memzero(token, sizeof(token));
	return rc;
}

/* The empty sign-in form is the same for everyone but for its token: it is
 * rendered once per language around a marker, and each view is the two
 * halves with a fresh token between them. */
#define TOKEN_MARK "\x01token\x01"

static struct {
	pthread_mutex_t lock;
	char *half[LANG_COUNT][2];
	size_t len[LANG_COUNT][2];
} login_cache = { PTHREAD_MUTEX_INITIALIZER, { { NULL } }, { { 0 } } };

static int login_form_halves(struct app *app, struct http_request *req, enum lang l)
{
	struct buf page;
	struct tpl t;
	char *mark;
	int rc;

	buf_init(&page, 1024 * 1024);
	tpl_init(&t);
	tpl_set(&t, "title", _("Sign in"));
	tpl_set(&t, "login_csrf", TOKEN_MARK);
	if ((rc = web_render(app, req, "login.html", &t, &page)) < 0)
		goto out;
	if (!page.data || !(mark = strstr(page.data, TOKEN_MARK))) {
		rc = KW_ERR_INTERNAL;
		goto out;
	}
	login_cache.len[l][0] = (size_t)(mark - page.data);
	login_cache.len[l][1] = page.len - login_cache.len[l][0] - strlen(TOKEN_MARK);
	if (!(login_cache.half[l][0] = strndup(page.data, login_cache.len[l][0])) ||
	    !(login_cache.half[l][1] = strdup(mark + strlen(TOKEN_MARK)))) {
		free(login_cache.half[l][0]);
		login_cache.half[l][0] = NULL;
		rc = KW_ERR_NOMEM;
	}
out:
	buf_free(&page);
	return rc;
}

int portal_login_form(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	char token[SECRET_TEXT_MAX];
	int rc = 0;

	if (w->has_session)
		return http_redirect(resp, next_page(ctx, w));
	pthread_mutex_lock(&login_cache.lock);
	if (!login_cache.half[w->lang][0])
		rc = login_form_halves(app, req, w->lang);
	pthread_mutex_unlock(&login_cache.lock);
	if (rc < 0)
		return rc;
	secret_new("", token);
	if ((rc = web_page_headers(req, resp, 200)) == 0 &&
	    (rc = web_login_cookie(req, resp, token)) == 0 &&
	    (rc = buf_append(&resp->body, login_cache.half[w->lang][0],
			     login_cache.len[w->lang][0])) == 0 &&
	    (rc = buf_puts(&resp->body, token)) == 0)
		rc = buf_append(&resp->body, login_cache.half[w->lang][1],
				login_cache.len[w->lang][1]);
	sodium_memzero(token, sizeof(token));
	return rc;
}

/* The sign-in failure limit counts per person, whatever spelling of the
 * name was typed: alice, CORP\alice and alice@corp.example.com are one. */
static void login_limit_key(const char *user, char *out, size_t outlen)
{
	const char *bs = strrchr(user, '\\'), *at = strchr(user, '@');

	if (bs)
		snprintf(out, outlen, "%s", bs + 1);
	else if (at)
		snprintf(out, outlen, "%.*s", (int)(at - user), user);
	else
		snprintf(out, outlen, "%s", user);
}

int portal_login(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	const char *user = form_get(&w->form, "username");
	const char *pw = form_get(&w->form, "password");
	const char *generic = _("Sign-in failed. Check your user name and password and try "
				"again. After several failed attempts, wait a while first.");
	char id[SECRET_TEXT_MAX], who[USERNAME_MAX + 1];
	struct auth_user u;
	int64_t now = time_now();
	int rc;

	if (!user || !pw || !*user || !*pw)
		return login_page(app, req, resp, 422, _("Enter your user name and password."),
				  user && str_is_clean_text(user, USERNAME_MAX) ? user : NULL);
	if (!str_is_clean_text(user, USERNAME_MAX) || strlen(pw) > PASSWORD_MAX)
		return login_page(app, req, resp, 401, generic, NULL);
	login_limit_key(user, who, sizeof(who));
	memset(&u, 0, sizeof(u));
	/* Each attempt counts as a failure before the password is checked, in
	 * the same step as the check of the limit: a burst of concurrent
	 * guesses gets no more than the limit between them. */
	if ((rc = limiter_take(app->login_failures, who, now, NULL)) < 0)
		return rc;   /* the limit cannot be read: the service fails, not the person */
	if (rc == 0) {
		/* Same work and answer as a wrong password: the lock is not told. */
		password_verify(NULL, pw);
		log_warn("sign-in refused from %s: too many failures for that account",
			 req->client);
		return login_page(app, req, resp, 401, generic, user);
	}
	rc = auth_authenticate(app->auth, user, pw, auth_deadline(app->auth), &u);
	for (size_t i = 0; i < u.ndown; i++)
		log_warn("sign-in from %s: the %s backend did not answer in time%s%s%s",
			 req->client, u.down[i], *u.down_why[i] ? " (" : "", u.down_why[i],
			 *u.down_why[i] ? ")" : "");
	if (rc == KW_ERR_AUTH) {
		/* Only a known account's name: what was typed may be a password. */
		log_info("sign-in failed from %s for %s", req->client,
			 *u.name ? u.name : "an unknown account");
		return login_page(app, req, resp, 401, generic, user);
	}
	if (rc < 0) {
		/* Not the person's failure: the attempt does not count. */
		limiter_give_back(app->login_failures, who, now);
		if (rc == KW_ERR_UNAVAILABLE)
			return login_page(app, req, resp, 503, _("The directory service is "
					  "not answering. Try again in a few minutes."), user);
		return rc;
	}
	limiter_clear(app->login_failures, who);
	if (w->has_session)
		session_end(app->store, &w->s);
	/* The lifetime starts now, not before the password hash (slow by design). */
	if ((rc = session_create(app->store, &u, time_now(), id, &w->s)) < 0)
		return rc;
	w->has_session = true;
	log_info("%s signed in from %s", u.name, req->client);
	rc = web_session_cookie(req, resp, id);
	sodium_memzero(id, sizeof(id));
	if (rc == 0)
		rc = web_login_cookie(req, resp, NULL);
	return rc < 0 ? rc : http_redirect(resp, next_page(app, w));
}

int portal_logout(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	int rc = session_end(app->store, &w->s);

	if (rc < 0)
		return rc;
	if ((rc = web_session_cookie(req, resp, NULL)) < 0)
		return rc;
	return http_redirect(resp, "/login");
}

/* ---- the notice ---- */

/* Reads the notice for the language: notice.sv-SE.txt, notice.sv.txt, then
 * notice.txt (the configured name with the tag before its extension). */
static int read_notice(const struct app *app, enum lang l, struct buf *out)
{
	const char *file = app->cfg->notice_file;
	const char *dot = strrchr(file, '.'), *slash = strrchr(file, '/');
	const char *tags[3] = { l == LANG_SV ? "sv-SE" : "en-US", i18n_code(l), NULL };
	size_t base = (dot && (!slash || dot > slash)) ? (size_t)(dot - file) : strlen(file);
	char path[4096];

	for (size_t i = 0; i < 3; i++) {
		FILE *f;
		char chunk[4096];
		size_t n;

		if (tags[i])
			snprintf(path, sizeof(path), "%.*s.%s%s", (int)base, file, tags[i],
				 file + base);
		else
			snprintf(path, sizeof(path), "%s", file);
		if (!(f = fopen(path, "re"))) {
			if (!tags[i])
				log_error("notice file is missing: %s: %s (display_notice = true "
					  "needs it)", path, strerror(errno));
			continue;
		}
		/* At most NOTICE_MAX bytes are shown; the text is escaped. */
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 &&
		       buf_append(out, chunk, n) == 0)
			;
		fclose(f);
		return 0;
	}
	return KW_ERR_NOT_FOUND;
}

/* The notice as paragraphs (blank lines separate them), escaped. */
static int notice_html(const struct buf *text, struct buf *html)
{
	const char *p = text->data ? text->data : "";
	int rc = 0;

	while (*p && rc == 0) {
		const char *end = strstr(p, "\n\n");
		size_t n = end ? (size_t)(end - p) : strlen(p);

		while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
			n--;
		if (n) {
			rc = buf_puts(html, "<p>");
			if (rc == 0)
				rc = buf_put_html(html, p, n);
			if (rc == 0)
				rc = buf_puts(html, "</p>\n");
		}
		p = end ? end + 2 : p + strlen(p);
		while (*p == '\n' || *p == '\r')
			p++;
	}
	return rc;
}

static int notice_page(struct app *app, struct http_request *req, struct http_response *resp,
		       int status, const char *error)
{
	struct web_req *w = web_ctx(req);
	struct buf text, html;
	struct tpl t;
	int rc;

	buf_init(&text, NOTICE_MAX);
	buf_init(&html, 4 * NOTICE_MAX);
	tpl_init(&t);
	tpl_set(&t, "title", _("Notice"));
	tpl_set(&t, "error", error);
	if (read_notice(app, w->lang, &text) == 0 && notice_html(&text, &html) == 0)
		tpl_set_raw(&t, "notice", html.data ? html.data : "");
	else
		tpl_set(&t, "notice_missing", "1");
	rc = web_page(app, req, resp, status, "notice.html", &t);
	buf_free(&text);
	buf_free(&html);
	return rc;
}

int portal_notice_form(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;

	if (!app->cfg->display_notice)
		return http_redirect(resp, "/recover");
	return notice_page(app, req, resp, 200, NULL);
}

int portal_notice(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	const char *accept = form_get(&w->form, "accept");
	int rc;

	if (!accept || strcmp(accept, "yes"))
		return notice_page(app, req, resp, 422, _("Accept the notice to continue."));
	rc = session_touch(app->store, &w->s, time_now(), 1);
	if (rc == KW_ERR_NOT_FOUND)   /* ended meanwhile */
		return http_redirect(resp, "/login");
	if (rc < 0)
		return rc;
	w->s.notice_accepted = true;
	return http_redirect(resp, next_page(app, w));
}

/* ---- recovery ---- */

struct recover_form {
	const char *key_text;      /* as entered */
	const char *reason;
	const char *key_error;
	const char *reason_error;
	const char *error;         /* above the form */
	bool not_found;
};

static int recover_page(struct app *app, struct http_request *req, struct http_response *resp,
			int status, const struct recover_form *f)
{
	struct tpl t;

	tpl_init(&t);
	tpl_set(&t, "title", _("Get your BitLocker recovery key"));
	tpl_set(&t, "key_id", f ? f->key_text : NULL);
	tpl_set(&t, "key_error", f ? f->key_error : NULL);
	tpl_set(&t, "reason_error", f ? f->reason_error : NULL);
	tpl_set(&t, "error", f ? f->error : NULL);
	tpl_set(&t, "not_found", f && f->not_found ? "1" : NULL);
	for (size_t i = 0; i < NREASONS; i++) {
		tpl_set(&t, reasons[i].var,
			f && f->reason && !strcmp(f->reason, reasons[i].code) ? "1" : NULL);
	}
	return web_page(app, req, resp, status, "recover.html", &t);
}

int portal_recover_form(void *ctx, struct http_request *req, struct http_response *resp)
{
	return recover_page(ctx, req, resp, 200, NULL);
}

/* The key page: the password in its 8 groups, the computer and key ID. */
static int key_page(struct app *app, struct http_request *req, struct http_response *resp,
		    const struct recover_result *r)
{
	char groups[8][8], group_names[8][4] = { "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8" };
	struct tpl t;
	int rc;

	tpl_init(&t);
	tpl_set(&t, "title", _("Your BitLocker recovery key"));
	tpl_set(&t, "computer", r->computer);
	tpl_set(&t, "key_id", r->key_id);
	tpl_set(&t, "password", r->password);
	for (int i = 0; i < 8; i++) {
		memcpy(groups[i], r->password + 7 * i, 6);
		groups[i][6] = '\0';
		tpl_set(&t, group_names[i], groups[i]);
	}
	resp->sensitive = true;
	rc = web_page(app, req, resp, 200, "key.html", &t);
	sodium_memzero(groups, sizeof(groups));
	return rc;
}

static void minutes_text(int64_t seconds, char *out, size_t outlen)
{
	int64_t min = (seconds + 59) / 60;

	if (min <= 1)
		snprintf(out, outlen, "%s", _("Too many unsuccessful attempts. Try again in a "
					      "minute."));
	else
		snprintf(out, outlen, _("Too many unsuccessful attempts. Try again in %lld "
					"minutes."), (long long)min);
}

/* The answer when the audit record of a request cannot be written: no key
 * is shown without one (fail closed). */
static int unrecorded(struct app *app, struct http_request *req, struct http_response *resp)
{
	return web_message(app, req, resp, 503, _("Service unavailable"),
			   _("The request could not be recorded, so no key can be shown. "
			     "Try again in a few minutes."));
}

static int wait_page(struct app *app, struct http_request *req, struct http_response *resp,
		     int64_t retry_after)
{
	char wait_msg[160], secs[24];
	struct tpl t;
	int rc;

	minutes_text(retry_after, wait_msg, sizeof(wait_msg));
	snprintf(secs, sizeof(secs), "%lld", (long long)retry_after);
	if ((rc = http_header(resp, "Retry-After", secs)) < 0)
		return rc;
	tpl_init(&t);
	tpl_set(&t, "title", _("Please wait"));
	tpl_set(&t, "message", wait_msg);
	tpl_set(&t, "link_url", "/recover");
	tpl_set(&t, "link_text", _("Back to the form"));
	return web_page(app, req, resp, 429, "message.html", &t);
}

/* The form again with what was wrong with it. */
static int invalid_page(struct app *app, struct http_request *req, struct http_response *resp,
			struct recover_form *f, const struct recover_invalid *iv)
{
	char key_msg[256];

	if (iv->key_is_password)
		/* Not shown again, and said for what it is. */
		f->key_error = _("This is a recovery password, not a recovery key ID. Enter "
				 "the first 8 characters of the ID shown on the BitLocker "
				 "recovery screen.");
	else if (iv->key.problem == KEYID_EMPTY && (!f->key_text || !*f->key_text))
		f->key_error = _("Enter the first 8 characters of the recovery key ID.");
	else if (iv->key.problem != KEYID_OK) {
		web_keyid_error(&iv->key, key_msg, sizeof(key_msg));
		f->key_error = key_msg;
	}
	if (iv->reason)
		f->reason_error = _("Choose the reason for this request.");
	if (iv->key_is_password || !f->key_text || strlen(f->key_text) > KEYID_INPUT_MAX)
		f->key_text = NULL;
	return recover_page(app, req, resp, 422, f);
}

int portal_recover(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	struct recover_form f = { 0 };
	struct recover_request rq = {
		.source = AUDIT_SELF_SERVICE,
		.entitled = &w->s.id,
		.key_text = form_get(&w->form, "key_id"),
		.reason = form_get(&w->form, "reason"),
		.actor = w->s.user,
		.end_user = w->s.user,
		.client = req->client,
		.now = time_now(),
		.per_user = app->lookup_failures,
		.per_address = app->lookup_failures_addr,
	};
	struct recover_result *res;
	int rc;

	f.key_text = rq.key_text;
	f.reason = rq.reason;
	if (!(res = malloc(sizeof(*res))))
		return KW_ERR_NOMEM;
	rc = recover_run(app->store, app->seal, &rq, res);
	if (rc < 0) {
		log_error("self-service recovery for %s failed, nothing disclosed: %s",
			  w->s.user, kw_strerror(rc));
		rc = unrecorded(app, req, resp);
		goto out;
	}
	switch (res->outcome) {
	case RECOVER_DISCLOSED:
		log_info("recovery key %s of %s disclosed to %s (audit record %lld)",
			 res->key_id, res->computer, w->s.user, (long long)res->audit_seq);
		rc = key_page(app, req, resp, res);
		break;
	case RECOVER_AMBIGUOUS:
		f.key_error = _("More than one recovery key starts with these characters. "
				"Enter all 32 characters of the recovery key ID.");
		rc = recover_page(app, req, resp, 409, &f);
		break;
	case RECOVER_NOT_FOUND:
		f.error = _("No recovery key was found for this ID among the computers you "
			    "have signed in to.");
		f.not_found = true;
		rc = recover_page(app, req, resp, 404, &f);
		break;
	case RECOVER_INVALID:
		rc = invalid_page(app, req, resp, &f, &res->invalid);
		break;
	case RECOVER_RATE_LIMITED:
		rc = wait_page(app, req, resp, res->retry_after);
		break;
	}
out:
	sodium_memzero(res, sizeof(*res));
	free(res);
	return rc;
}

/* ---- the session ---- */

int portal_keepalive(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	struct session_limits lim = { app->cfg->session_idle_timeout,
				      app->cfg->session_max_lifetime };
	int64_t now = time_now();
	json_t *doc;
	int rc;

	/* "Continue" is written at once, not coalesced with page views. */
	if (w->s.last_seen < now && (rc = session_touch(app->store, &w->s, now, -1)) < 0)
		return rc == KW_ERR_NOT_FOUND ? http_json_error(resp, 401, "session expired") : rc;
	doc = json_pack("{s:I}", "remaining",
			(json_int_t)session_remaining(&w->s, w->s.last_seen, &lim));
	if (!doc)
		return KW_ERR_NOMEM;
	rc = http_json(resp, 200, doc);
	json_decref(doc);
	return rc;
}

int portal_expired(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	struct tpl t;
	int rc;

	/* A GET changes nothing (the page's script ends the session with a
	 * POST /logout first); only a cookie naming no live session goes. */
	if (!w->has_session && http_cookie(req, web_session_cookie_name(req)) &&
	    (rc = web_session_cookie(req, resp, NULL)) < 0)
		return rc;
	tpl_init(&t);
	tpl_set(&t, "title", _("Your session has expired"));
	tpl_set(&t, "message", _("For your security, you were signed out after a period of "
				 "inactivity. Sign in again to continue."));
	tpl_set(&t, "link_url", "/login");
	tpl_set(&t, "link_text", _("Sign in again"));
	return web_page(app, req, resp, 200, "message.html", &t);
}
