/* Administration (SPEC §4, issue 10 point 6): local accounts and enrollment
 * tokens. The policy (names, passwords, the last administrator, ending
 * sessions, the audit record in the change's own transaction) is core's
 * (core/account, core/enroll); this file reads the forms, says what was
 * wrong in the user's language, and shows a generated password or a new
 * token once, on a page that is not stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "core/account.h"
#include "core/audit.h"
#include "core/enroll.h"
#include "core/role.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/log.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "web/app.h"
#include "web/helpdesk/helpdesk.h"
#include "web/web.h"

#define USERS_URL "/helpdesk/admin/users"
#define TOKENS_URL "/helpdesk/admin/enrollment"
#define DATE_LEN 17                  /* "2026-12-03 08:31" */
#define ROLES_LABEL_MAX 256
#define LIST_MAX 100000              /* rows a table holds at most */

/* Role i of role_list (core/role.h), as a person reads it. */
static const struct {
	const char *label;
	const char *what;
} role_info[ROLE_COUNT] = {
	{ N_("Help desk"), N_("Recovery for a named user of a computer.") },
	{ N_("Help-desk administrator"),
	  N_("Recovery by key ID, devices, key history and reports.") },
	{ N_("Reports"), N_("Reads the reports; sees no keys.") },
	{ N_("Administrator"), N_("Accounts, roles and enrollment tokens, and everything "
				  "else.") },
};

/* Who makes a change, for its audit record. */
static struct audit_rec who_of(struct http_request *req)
{
	struct audit_rec who;

	memset(&who, 0, sizeof(who));
	who.source = AUDIT_HELPDESK;
	who.actor = web_ctx(req)->s.user;
	who.client = req->client;
	return who;
}

/* "2026-12-03 08:31" and the ISO form for <time datetime>. */
static void date_texts(int64_t t, char date[DATE_LEN], char iso[TIME_ISO_LEN])
{
	time_format_iso(t, iso);
	snprintf(date, DATE_LEN, "%.10s %.5s", iso, iso + 11);
}

/* The translated names of roles, comma-separated, or that there is none. */
static void roles_label(unsigned roles, char *out, size_t outlen)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < ROLE_COUNT; i++) {
		if (!(roles & (1u << i)))
			continue;
		snprintf(out + len, outlen - len, "%s%s", len ? ", " : "",
			 _(role_info[i].label));
		len = strlen(out);
	}
	if (!len)
		snprintf(out, outlen, "%s", _("None (self-service only)"));
}

/* The roles' checkboxes, those in roles checked. */
static void role_choices(struct tpl *t, struct tpl items[ROLE_COUNT], unsigned roles)
{
	for (int i = 0; i < ROLE_COUNT; i++) {
		tpl_init(&items[i]);
		tpl_set(&items[i], "code", role_list[i]);
		tpl_set(&items[i], "label", _(role_info[i].label));
		tpl_set(&items[i], "what", _(role_info[i].what));
		tpl_set(&items[i], "checked", roles & (1u << i) ? "1" : NULL);
	}
	tpl_set_list(t, "role_choices", items, ROLE_COUNT);
}

/* The roles ticked in the form: a checkbox a role, role_<name> (the form
 * keeps the first of repeated fields only). KW_ERR_INVALID for a role_
 * field that names no role. */
static int form_roles(const struct form *f, unsigned *roles)
{
	unsigned r = 0, bit;

	for (size_t i = 0; i < f->n; i++) {
		if (strncmp(f->f[i].name, "role_", 5))
			continue;
		if (!(bit = role_parse(f->f[i].name + 5)))
			return KW_ERR_INVALID;
		r |= bit;
	}
	*roles = r;
	return 0;
}

/* Renders the one-time page of a generated password or a new token. */
struct secret_page {
	const char *title, *message, *label, *secret, *back_url, *back_text;
	const char *terms[3], *values[3];
};

static int secret_page(struct app *app, struct http_request *req, struct http_response *resp,
		       enum helpdesk_nav nav, const struct secret_page *p)
{
	struct tpl t, facts[3];
	size_t n = 0;

	tpl_init(&t);
	for (size_t i = 0; i < 3 && p->terms[i]; i++) {
		tpl_init(&facts[n]);
		tpl_set(&facts[n], "term", p->terms[i]);
		tpl_set(&facts[n++], "value", p->values[i]);
	}
	tpl_set(&t, "title", p->title);
	tpl_set(&t, "message", p->message);
	tpl_set(&t, "label", p->label);
	tpl_set(&t, "secret", p->secret);
	tpl_set(&t, "back_url", p->back_url);
	tpl_set(&t, "back_text", p->back_text);
	tpl_set(&t, "has_facts", n ? "1" : NULL);
	tpl_set_list(&t, "facts", facts, n);
	resp->sensitive = true;
	return helpdesk_page(app, req, resp, 200, nav, "admin_secret.html", &t);
}

/* The answer when a change failed in the store (its audit record among
 * what can fail): nothing was changed, and no password or token is shown
 * (fail closed). The handler has logged why. */
static int not_made(struct app *app, struct http_request *req, struct http_response *resp,
		    enum helpdesk_nav nav)
{
	struct tpl t;

	tpl_init(&t);
	tpl_set(&t, "title", _("Service unavailable"));
	tpl_set(&t, "message", _("The change could not be recorded, so it was not made. Try "
				 "again in a few minutes."));
	tpl_set(&t, "link_url", nav == HD_NAV_USERS ? USERS_URL : TOKENS_URL);
	tpl_set(&t, "link_text", _("Back"));
	return helpdesk_page(app, req, resp, 503, nav, "message.html", &t);
}

/* ---- users ---- */

/* What a users page shows besides the accounts. */
struct users_view {
	const char *done;              /* a change made */
	const char *error;             /* above the form */
	const char *add_name;          /* the add form as sent */
	unsigned add_roles;
	const char *name_error, *roles_error, *pw_error;
};

struct user_row {
	struct account a;
	char roles[ROLES_LABEL_MAX];
	char created[DATE_LEN];
	char created_iso[TIME_ISO_LEN];
	char *name_url;
};

struct user_list {
	struct user_row *rows;
	size_t n, alloc;
};

static int user_seen(const struct account *a, void *arg)
{
	struct user_list *l = arg;
	struct user_row *r;

	if (l->n == l->alloc) {
		size_t alloc = l->alloc ? 2 * l->alloc : 32;

		if (alloc > LIST_MAX || !(r = realloc(l->rows, alloc * sizeof(*r))))
			return KW_ERR_NOMEM;
		l->rows = r;
		l->alloc = alloc;
	}
	r = &l->rows[l->n++];
	memset(r, 0, sizeof(*r));
	r->a = *a;
	return 0;
}

static void user_list_free(struct user_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->rows[i].name_url);
	free(l->rows);
}

static int users_page(struct app *app, struct http_request *req, struct http_response *resp,
		      int status, const struct users_view *v)
{
	struct user_list l = { 0 };
	struct tpl t, choices[ROLE_COUNT], *items = NULL;
	struct buf b;
	int rc;

	if ((rc = account_each(app->store, user_seen, &l)) < 0)
		goto out;
	if (l.n && !(items = calloc(l.n, sizeof(*items)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct user_row *r = &l.rows[i];
		struct tpl *it = &items[i];

		roles_label(r->a.roles, r->roles, sizeof(r->roles));
		date_texts(r->a.created_at, r->created, r->created_iso);
		buf_init(&b, 4 * ACCOUNT_NAME_MAX);
		if ((rc = buf_put_url(&b, r->a.name)) < 0) {
			buf_free(&b);
			goto out;
		}
		r->name_url = buf_steal(&b, NULL);
		tpl_init(it);
		tpl_set(it, "name", r->a.name);
		tpl_set(it, "name_url", r->name_url ? r->name_url : "");
		tpl_set(it, "roles", r->roles);
		tpl_set(it, "off", r->a.disabled ? "1" : NULL);
		tpl_set(it, "created", r->created);
		tpl_set(it, "created_iso", r->created_iso);
	}
	tpl_init(&t);
	tpl_set(&t, "title", _("Users"));
	tpl_set(&t, "done", v ? v->done : NULL);
	tpl_set(&t, "error", v ? v->error : NULL);
	tpl_set(&t, "add_name", v ? v->add_name : NULL);
	tpl_set(&t, "name_error", v ? v->name_error : NULL);
	tpl_set(&t, "roles_error", v ? v->roles_error : NULL);
	tpl_set(&t, "pw_error", v ? v->pw_error : NULL);
	tpl_set(&t, "has_users", l.n ? "1" : NULL);
	tpl_set_list(&t, "users", items, l.n);
	role_choices(&t, choices, v ? v->add_roles : 0);
	rc = helpdesk_page(app, req, resp, status, HD_NAV_USERS, "admin_users.html", &t);
out:
	free(items);
	user_list_free(&l);
	return rc;
}

/* One account's page, with its forms. */
struct user_view {
	const char *done, *error, *roles_error, *pw_error;
};

static int user_page(struct app *app, struct http_request *req, struct http_response *resp,
		     int status, const struct account *a, const struct user_view *v)
{
	char roles[ROLES_LABEL_MAX], created[DATE_LEN], created_iso[TIME_ISO_LEN];
	char title[ACCOUNT_NAME_MAX + 64];
	struct tpl t, choices[ROLE_COUNT];

	roles_label(a->roles, roles, sizeof(roles));
	date_texts(a->created_at, created, created_iso);
	snprintf(title, sizeof(title), _("User %s"), a->name);
	tpl_init(&t);
	tpl_set(&t, "title", title);
	tpl_set(&t, "name", a->name);
	tpl_set(&t, "roles", roles);
	tpl_set(&t, "off", a->disabled ? "1" : NULL);
	tpl_set(&t, "created", created);
	tpl_set(&t, "created_iso", created_iso);
	tpl_set(&t, "done", v ? v->done : NULL);
	tpl_set(&t, "error", v ? v->error : NULL);
	tpl_set(&t, "roles_error", v ? v->roles_error : NULL);
	tpl_set(&t, "pw_error", v ? v->pw_error : NULL);
	role_choices(&t, choices, a->roles);
	return helpdesk_page(app, req, resp, status, HD_NAV_USERS, "admin_user.html", &t);
}

static int no_such_user(struct app *app, struct http_request *req, struct http_response *resp)
{
	struct tpl t;

	tpl_init(&t);
	tpl_set(&t, "title", _("No such user"));
	tpl_set(&t, "message", _("There is no local account with this name."));
	tpl_set(&t, "link_url", USERS_URL);
	tpl_set(&t, "link_text", _("All users"));
	return helpdesk_page(app, req, resp, 404, HD_NAV_USERS, "message.html", &t);
}

/* An account's page again after a change (or a refusal) to it. */
static int user_page_after(struct app *app, struct http_request *req,
			   struct http_response *resp, int status, const char *name,
			   const struct user_view *v)
{
	struct account a;
	int rc;

	if ((rc = account_get(app->store, name, &a)) == KW_ERR_NOT_FOUND)
		return no_such_user(app, req, resp);
	if (rc < 0)
		return rc;
	return user_page(app, req, resp, status, &a, v);
}

int helpdesk_admin_users(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	const char *name = http_query(req, "name");
	struct account a;
	int rc;

	if (!name || !*name)
		return users_page(app, req, resp, 200, NULL);
	if ((rc = account_get(app->store, name, &a)) == KW_ERR_NOT_FOUND)
		return no_such_user(app, req, resp);
	if (rc < 0)
		return rc;
	return user_page(app, req, resp, 200, &a, NULL);
}

/* The address of name's page into out. */
#define USER_URL_MAX (sizeof(USERS_URL "?name=") + 3 * ACCOUNT_NAME_MAX)
static int user_url(const char *name, char *out, size_t outlen)
{
	struct buf b;
	int rc;

	buf_init(&b, outlen - 1);
	if ((rc = buf_puts(&b, USERS_URL "?name=")) == 0 && (rc = buf_put_url(&b, name)) == 0)
		snprintf(out, outlen, "%s", b.data);
	buf_free(&b);
	return rc;
}

/* The password typed, or one generated into gen (*generated set); a typed
 * one that fails the policy sets *pw_error. */
static const char *new_password(const char *typed, char gen[ACCOUNT_RANDOM_PASSWORD_LEN + 1],
				bool *generated, const char **pw_error)
{
	char msg[128];

	*generated = false;
	if (!typed || !*typed) {
		account_random_password(gen);
		*generated = true;
		return gen;
	}
	if (password_check_policy(typed, msg, sizeof(msg)) < 0) {
		*pw_error = _("A password needs at least 8 and at most 1024 characters.");
		return NULL;
	}
	return typed;
}

static int add_user(struct app *app, struct http_request *req, struct http_response *resp)
{
	struct web_req *w = web_ctx(req);
	const char *name = form_get(&w->form, "name");
	const char *typed = form_get(&w->form, "password");
	char gen[ACCOUNT_RANDOM_PASSWORD_LEN + 1], msg[512], done[ACCOUNT_NAME_MAX + 64];
	char back[USER_URL_MAX];
	struct users_view v = { 0 };
	struct audit_rec who = who_of(req);
	const char *pw = NULL;
	bool generated = false;
	int rc;

	v.add_name = name;
	if (form_roles(&w->form, &v.add_roles) < 0)
		v.roles_error = _("Choose roles from the list.");
	if (!name || !*name)
		v.name_error = _("Enter a user name.");
	else if (account_check_name(name, msg, sizeof(msg)) < 0)
		v.name_error = _("A user name has 1 to 256 characters, without spaces or "
				 "control characters.");
	pw = new_password(typed, gen, &generated, &v.pw_error);
	if (v.name_error || v.roles_error || v.pw_error) {
		rc = users_page(app, req, resp, 422, &v);
		goto out;
	}
	rc = account_add(app->store, name, v.add_roles, pw, &who, msg, sizeof(msg));
	if (rc == KW_ERR_EXISTS) {
		v.name_error = _("There is already an account with this name.");
		rc = users_page(app, req, resp, 422, &v);
		goto out;
	}
	if (rc == KW_ERR_INVALID) {
		v.error = _("The account could not be added: check the form.");
		rc = users_page(app, req, resp, 422, &v);
		goto out;
	}
	if (rc < 0) {
		log_error("%s could not add the user %s: %s", w->s.user, name, kw_strerror(rc));
		rc = not_made(app, req, resp, HD_NAV_USERS);
		goto out;
	}
	roles_text(v.add_roles, msg, sizeof(msg));
	log_info("%s added the user %s (roles %s) from %s", w->s.user, name, msg, req->client);
	snprintf(done, sizeof(done), _("The user %s was added."), name);
	if (!generated) {
		v = (struct users_view){ .done = done };
		rc = users_page(app, req, resp, 200, &v);
		goto out;
	}
	if ((rc = user_url(name, back, sizeof(back))) < 0)
		goto out;
	rc = secret_page(app, req, resp, HD_NAV_USERS, &(struct secret_page){
		.title = done,
		.message = _("Give this password to the person in a safe way. They sign in "
			     "with it at once."),
		.label = _("Password"),
		.secret = gen,
		.back_url = back,
		.back_text = _("Done"),
		.terms = { _("User name") },
		.values = { name },
	});
out:
	sodium_memzero(gen, sizeof(gen));
	return rc;
}

static int set_password(struct app *app, struct http_request *req, struct http_response *resp,
			const char *name)
{
	struct web_req *w = web_ctx(req);
	char gen[ACCOUNT_RANDOM_PASSWORD_LEN + 1], msg[256], title[ACCOUNT_NAME_MAX + 64];
	char back[USER_URL_MAX];
	struct user_view v = { 0 };
	struct audit_rec who = who_of(req);
	const char *pw;
	bool generated;
	int rc;

	pw = new_password(form_get(&w->form, "password"), gen, &generated, &v.pw_error);
	if (!pw) {
		rc = user_page_after(app, req, resp, 422, name, &v);
		goto out;
	}
	rc = account_set_password(app->store, name, pw, &who, msg, sizeof(msg));
	if (rc == KW_ERR_NOT_FOUND) {
		rc = no_such_user(app, req, resp);
		goto out;
	}
	if (rc < 0) {
		log_error("%s could not reset the password of %s: %s", w->s.user, name,
			  kw_strerror(rc));
		rc = not_made(app, req, resp, HD_NAV_USERS);
		goto out;
	}
	log_info("%s reset the password of %s from %s", w->s.user, name, req->client);
	if (!generated) {
		v.done = _("The password was changed. The person was signed out everywhere.");
		rc = user_page_after(app, req, resp, 200, name, &v);
		goto out;
	}
	if ((rc = user_url(name, back, sizeof(back))) < 0)
		goto out;
	snprintf(title, sizeof(title), _("New password for %s"), name);
	rc = secret_page(app, req, resp, HD_NAV_USERS, &(struct secret_page){
		.title = title,
		.message = _("The person was signed out everywhere. Give them this password in "
			     "a safe way."),
		.label = _("Password"),
		.secret = gen,
		.back_url = back,
		.back_text = _("Done"),
		.terms = { _("User name") },
		.values = { name },
	});
out:
	sodium_memzero(gen, sizeof(gen));
	return rc;
}

static int set_roles(struct app *app, struct http_request *req, struct http_response *resp,
		     const char *name)
{
	struct web_req *w = web_ctx(req);
	struct audit_rec who = who_of(req);
	struct user_view v = { 0 };
	char msg[512], text[ROLES_TEXT_MAX];
	unsigned roles;
	bool changed = false;
	int rc;

	if (form_roles(&w->form, &roles) < 0) {
		v.roles_error = _("Choose roles from the list.");
		return user_page_after(app, req, resp, 422, name, &v);
	}
	rc = account_set_roles(app->store, name, roles, &who, &changed, msg, sizeof(msg));
	if (rc == KW_ERR_NOT_FOUND)
		return no_such_user(app, req, resp);
	if (rc == KW_ERR_CONFLICT) {
		v.error = _("This is the only enabled account with the Administrator role, so "
			    "it keeps that role: someone must be left to administer keywarden. "
			    "Give the role to another account first.");
		return user_page_after(app, req, resp, 409, name, &v);
	}
	if (rc < 0) {
		log_error("%s could not change the roles of %s: %s", w->s.user, name,
			  kw_strerror(rc));
		return not_made(app, req, resp, HD_NAV_USERS);
	}
	roles_text(roles, text, sizeof(text));
	log_info("%s set the roles of %s to %s from %s", w->s.user, name, text, req->client);
	v.done = changed ? _("The roles were saved. The person was signed out and has the new "
			     "roles from their next sign-in.") :
		_("These were the roles already: nothing changed.");
	return user_page_after(app, req, resp, 200, name, &v);
}

static int set_disabled(struct app *app, struct http_request *req, struct http_response *resp,
			const char *name, bool disabled)
{
	struct web_req *w = web_ctx(req);
	struct audit_rec who = who_of(req);
	struct user_view v = { 0 };
	char msg[512];
	int rc;

	rc = account_set_disabled(app->store, name, disabled, &who, msg, sizeof(msg));
	if (rc == KW_ERR_NOT_FOUND)
		return no_such_user(app, req, resp);
	if (rc == KW_ERR_CONFLICT) {
		v.error = _("This is the only enabled account with the Administrator role, so "
			    "it cannot be disabled: someone must be left to administer "
			    "keywarden. Give the role to another account first.");
		return user_page_after(app, req, resp, 409, name, &v);
	}
	if (rc < 0) {
		log_error("%s could not %s the user %s: %s", w->s.user,
			  disabled ? "disable" : "enable", name, kw_strerror(rc));
		return not_made(app, req, resp, HD_NAV_USERS);
	}
	log_info("%s %s the user %s from %s", w->s.user, disabled ? "disabled" : "enabled",
		 name, req->client);
	v.done = disabled ? _("The account was disabled and the person signed out "
			      "everywhere.")
			  : _("The account was enabled.");
	return user_page_after(app, req, resp, 200, name, &v);
}

int helpdesk_admin_users_post(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	const char *action = form_get(&w->form, "action");
	const char *name = form_get(&w->form, "name");
	struct users_view v = { 0 };

	if (action && !strcmp(action, "add"))
		return add_user(app, req, resp);
	if (!action || (strcmp(action, "roles") && strcmp(action, "password") &&
			strcmp(action, "disable") && strcmp(action, "enable"))) {
		v.error = _("The form was not understood. Use the forms on this page.");
		return users_page(app, req, resp, 422, &v);
	}
	if (!name || !*name) {
		v.error = _("Choose a user from the list.");
		return users_page(app, req, resp, 422, &v);
	}
	if (!strcmp(action, "roles"))
		return set_roles(app, req, resp, name);
	if (!strcmp(action, "password"))
		return set_password(app, req, resp, name);
	return set_disabled(app, req, resp, name, !strcmp(action, "disable"));
}

/* ---- enrollment tokens ---- */

struct tokens_view {
	const char *done, *error;
	const char *expires, *uses;        /* the create form as sent */
	const char *expires_error, *uses_error;
};

struct token_row {
	struct token_rec rec;
	char id[24], used[24], uses_left[64];
	char created[DATE_LEN], created_iso[TIME_ISO_LEN];
	char expires[DATE_LEN], expires_iso[TIME_ISO_LEN];
};

struct token_list {
	struct token_row *rows;
	size_t n, alloc;
};

static int token_seen(const struct token_rec *t, void *arg)
{
	struct token_list *l = arg;
	struct token_row *r;

	if (l->n == l->alloc) {
		size_t alloc = l->alloc ? 2 * l->alloc : 32;

		if (alloc > LIST_MAX || !(r = realloc(l->rows, alloc * sizeof(*r))))
			return KW_ERR_NOMEM;
		l->rows = r;
		l->alloc = alloc;
	}
	r = &l->rows[l->n++];
	memset(r, 0, sizeof(*r));
	r->rec = *t;
	return 0;
}

static const char *token_state_text(enum enroll_token_state s)
{
	switch (s) {
	case ENROLL_TOKEN_VALID:
		return _("Valid");
	case ENROLL_TOKEN_REVOKED:
		return _("Revoked");
	case ENROLL_TOKEN_EXPIRED:
		return _("Expired");
	case ENROLL_TOKEN_USED_UP:
		return _("Used up");
	}
	return "";
}

static int tokens_page(struct app *app, struct http_request *req, struct http_response *resp,
		       int status, const struct tokens_view *v)
{
	struct token_list l = { 0 };
	struct tpl t, *items = NULL;
	int64_t now = time_now();
	int rc;

	if ((rc = enroll_token_each(app->store, token_seen, &l)) < 0)
		goto out;
	if (l.n && !(items = calloc(l.n, sizeof(*items)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		/* Newest first. */
		struct token_row *r = &l.rows[l.n - 1 - i];
		enum enroll_token_state s = enroll_token_state(&r->rec, now);
		struct tpl *it = &items[i];

		snprintf(r->id, sizeof(r->id), "%lld", (long long)r->rec.id);
		snprintf(r->used, sizeof(r->used), "%lld", (long long)r->rec.used);
		if (r->rec.uses_left < 0)
			snprintf(r->uses_left, sizeof(r->uses_left), "%s", _("No limit"));
		else
			snprintf(r->uses_left, sizeof(r->uses_left), "%lld",
				 (long long)r->rec.uses_left);
		date_texts(r->rec.created_at, r->created, r->created_iso);
		if (r->rec.expires_at)
			date_texts(r->rec.expires_at, r->expires, r->expires_iso);
		tpl_init(it);
		tpl_set(it, "id", r->id);
		tpl_set(it, "created", r->created);
		tpl_set(it, "created_iso", r->created_iso);
		tpl_set(it, "expires_at", r->rec.expires_at ? r->expires : NULL);
		tpl_set(it, "expires_iso", r->rec.expires_at ? r->expires_iso : NULL);
		tpl_set(it, "uses_left", r->uses_left);
		tpl_set(it, "used", r->used);
		tpl_set(it, "state", token_state_text(s));
		tpl_set(it, "valid", s == ENROLL_TOKEN_VALID ? "1" : NULL);
		tpl_set(it, "can_revoke", r->rec.revoked ? NULL : "1");
	}
	tpl_init(&t);
	tpl_set(&t, "title", _("Enrollment tokens"));
	tpl_set(&t, "done", v ? v->done : NULL);
	tpl_set(&t, "error", v ? v->error : NULL);
	tpl_set(&t, "expires", v && v->expires ? v->expires : "30d");
	tpl_set(&t, "uses", v ? v->uses : NULL);
	tpl_set(&t, "expires_error", v ? v->expires_error : NULL);
	tpl_set(&t, "uses_error", v ? v->uses_error : NULL);
	tpl_set(&t, "has_tokens", l.n ? "1" : NULL);
	tpl_set_list(&t, "tokens", items, l.n);
	rc = helpdesk_page(app, req, resp, status, HD_NAV_ENROLLMENT, "admin_enrollment.html", &t);
out:
	free(items);
	free(l.rows);
	return rc;
}

int helpdesk_admin_enrollment(void *ctx, struct http_request *req, struct http_response *resp)
{
	return tokens_page(ctx, req, resp, 200, NULL);
}

static int create_token(struct app *app, struct http_request *req, struct http_response *resp)
{
	struct web_req *w = web_ctx(req);
	struct audit_rec who = who_of(req);
	struct tokens_view v = { 0 };
	char token[SECRET_TEXT_MAX], id_text[24], expires[DATE_LEN + 8], iso[TIME_ISO_LEN];
	char uses_text[64], done[256];
	int64_t now = time_now(), expires_at = 0, uses = -1, id = 0;
	int rc;

	v.expires = form_get(&w->form, "expires");
	v.uses = form_get(&w->form, "uses");
	if (!v.expires || enroll_parse_expiry(v.expires, now, &expires_at) < 0)
		v.expires_error = _("Enter a time from now such as 30d, 12h or 90m (at most 10 "
				    "years), a date after today such as 2027-06-30, or 0 for "
				    "never.");
	if (v.uses && *v.uses && str_to_i64(v.uses, 1, ENROLL_USES_MAX, &uses) < 0)
		v.uses_error = _("Enter a whole number of at least 1, or leave it empty for "
				 "no limit.");
	if (v.expires_error || v.uses_error)
		return tokens_page(app, req, resp, 422, &v);
	if ((rc = enroll_token_create(app->store, now, expires_at, uses, &who, token, &id)) < 0) {
		log_error("%s could not create an enrollment token: %s", w->s.user,
			  kw_strerror(rc));
		return not_made(app, req, resp, HD_NAV_ENROLLMENT);
	}
	log_info("%s created enrollment token %lld from %s", w->s.user, (long long)id,
		 req->client);
	snprintf(id_text, sizeof(id_text), "%lld", (long long)id);
	if (expires_at) {
		date_texts(expires_at, expires, iso);
		snprintf(expires + strlen(expires), sizeof(expires) - strlen(expires), " UTC");
	} else {
		snprintf(expires, sizeof(expires), "%s", _("Never"));
	}
	if (uses < 0)
		snprintf(uses_text, sizeof(uses_text), "%s", _("No limit"));
	else
		snprintf(uses_text, sizeof(uses_text), "%lld", (long long)uses);
	snprintf(done, sizeof(done), _("Token %lld created"), (long long)id);
	rc = secret_page(app, req, resp, HD_NAV_ENROLLMENT, &(struct secret_page){
		.title = done,
		.message = _("Put this token in the agent's configuration on the computers "
			     "that are to register with it."),
		.label = _("Enrollment token"),
		.secret = token,
		.back_url = TOKENS_URL,
		.back_text = _("Done"),
		.terms = { _("ID"), _("Expires"), _("Uses") },
		.values = { id_text, expires, uses_text },
	});
	sodium_memzero(token, sizeof(token));
	return rc;
}

static int revoke_token(struct app *app, struct http_request *req, struct http_response *resp)
{
	struct web_req *w = web_ctx(req);
	struct audit_rec who = who_of(req);
	struct tokens_view v = { 0 };
	const char *id_text = form_get(&w->form, "id");
	char done[256];
	int64_t id;
	int rc;

	if (!id_text || str_to_i64(id_text, 1, INT64_MAX, &id) < 0) {
		v.error = _("Choose a token from the list.");
		return tokens_page(app, req, resp, 422, &v);
	}
	rc = enroll_token_revoke(app->store, id, &who);
	if (rc == KW_ERR_NOT_FOUND) {
		v.error = _("There is no token with this ID.");
		return tokens_page(app, req, resp, 404, &v);
	}
	if (rc < 0) {
		log_error("%s could not revoke enrollment token %lld: %s", w->s.user,
			  (long long)id, kw_strerror(rc));
		return not_made(app, req, resp, HD_NAV_ENROLLMENT);
	}
	log_info("%s revoked enrollment token %lld from %s", w->s.user, (long long)id,
		 req->client);
	snprintf(done, sizeof(done), _("Token %lld was revoked. No computer can register "
				       "with it any more."), (long long)id);
	v.done = done;
	return tokens_page(app, req, resp, 200, &v);
}

int helpdesk_admin_enrollment_post(void *ctx, struct http_request *req,
				   struct http_response *resp)
{
	struct web_req *w = web_ctx(req);
	const char *action = form_get(&w->form, "action");
	struct tokens_view v = { 0 };

	if (action && !strcmp(action, "create"))
		return create_token(ctx, req, resp);
	if (action && !strcmp(action, "revoke"))
		return revoke_token(ctx, req, resp);
	v.error = _("The form was not understood. Use the forms on this page.");
	return tokens_page(ctx, req, resp, 422, &v);
}
