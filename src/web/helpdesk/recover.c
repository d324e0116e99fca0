#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/config.h"
#include "core/identity.h"
#include "core/keyid.h"
#include "core/recover.h"
#include "core/role.h"
#include "http/form.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/log.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "web/app.h"
#include "web/helpdesk/helpdesk.h"
#include "web/web.h"

/* The reasons of SPEC §4, in the order the form lists them. */
static const struct {
	const char *code;
	const char *label;
} reasons[] = {
	{ "os_boot_order_changed", N_("Operating system boot order changed") },
	{ "bios_changed", N_("BIOS changed") },
	{ "os_files_changed", N_("Operating system files changed") },
	{ "lost_startup_key", N_("Lost startup key") },
	{ "lost_pin", N_("Lost PIN") },
	{ "tpm_reset", N_("TPM reset") },
	{ "lost_passphrase", N_("Lost passphrase") },
	{ "lost_smartcard", N_("Lost smart card") },
	{ "other", N_("Other") },
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

/* What the form shows again: the fields as entered and what was wrong. */
struct hd_form {
	const char *key_text;
	const char *end_user;
	const char *reason;
	const char *comment;
	const char *key_error;
	const char *end_user_error;
	const char *reason_error;
	const char *comment_error;
	const char *error;          /* above the form */
	const char *error_hint;     /* a second line under it */
	const struct recover_result *choices;   /* 409: the matching keys */
};

/* Where a key was, said in a list of keys (NULL: on its volume). */
static const char *was_label(enum recover_key_was was)
{
	switch (was) {
	case RECOVER_KEY_ON_VOLUME:
		break;
	case RECOVER_KEY_REMOVED:
		return _("No longer on the computer");
	case RECOVER_KEY_SUPERSEDED:
		return _("Replaced (for a backup)");
	}
	return NULL;
}

/* May name no one: a help-desk administrator (or an administrator). */
static bool any_key(struct http_request *req)
{
	return (roles_effective(web_ctx(req)->s.roles) & ROLE_HELPDESK_ADMIN) != 0;
}

static int form_page(struct app *app, struct http_request *req, struct http_response *resp,
		     int status, const struct hd_form *f)
{
	static const struct hd_form empty;
	struct tpl t, items[NREASONS], choices[RECOVER_CHOICES_MAX];
	size_t nchoices = 0;

	if (!f)
		f = &empty;
	tpl_init(&t);
	tpl_set(&t, "title", _("Recover a BitLocker key"));
	tpl_set(&t, "any_key", any_key(req) ? "1" : NULL);
	tpl_set(&t, "key_id", f->key_text);
	tpl_set(&t, "end_user", f->end_user);
	tpl_set(&t, "reason", f->reason);
	tpl_set(&t, "comment", f->comment);
	tpl_set(&t, "key_error", f->key_error);
	tpl_set(&t, "end_user_error", f->end_user_error);
	tpl_set(&t, "reason_error", f->reason_error);
	tpl_set(&t, "comment_error", f->comment_error);
	tpl_set(&t, "error", f->error);
	tpl_set(&t, "error_hint", f->error_hint);
	for (size_t i = 0; i < NREASONS; i++) {
		tpl_init(&items[i]);
		tpl_set(&items[i], "code", reasons[i].code);
		tpl_set(&items[i], "label", _(reasons[i].label));
		tpl_set(&items[i], "checked",
			f->reason && !strcmp(f->reason, reasons[i].code) ? "1" : NULL);
	}
	tpl_set_list(&t, "reasons", items, NREASONS);
	for (size_t i = 0; f->choices && i < f->choices->nchoices; i++) {
		tpl_init(&choices[nchoices]);
		tpl_set(&choices[nchoices], "choice_id", f->choices->choices[i].key_id);
		tpl_set(&choices[nchoices], "choice_computer", f->choices->choices[i].computer);
		tpl_set(&choices[nchoices++], "choice_was", was_label(f->choices->choices[i].was));
	}
	tpl_set_list(&t, "choices", choices, nchoices);
	tpl_set(&t, "has_choices", nchoices ? "1" : NULL);
	tpl_set(&t, "choices_more", f->choices && f->choices->choices_more ? "1" : NULL);
	return helpdesk_page(app, req, resp, status, HD_NAV_RECOVER, "helpdesk_recover.html", &t);
}

/* The form, filled from ?key_id=…&end_user=… when a link gives them (a
 * device page's key history): only shown, nothing is looked up. */
int helpdesk_recover_form(void *ctx, struct http_request *req, struct http_response *resp)
{
	const char *key_id = http_query(req, "key_id"), *end_user = http_query(req, "end_user");
	struct hd_form f = { 0 };

	if (key_id && str_is_clean_text(key_id, KEYID_INPUT_MAX))
		f.key_text = key_id;
	if (end_user && str_is_clean_text(end_user, IDENTITY_NAME_MAX))
		f.end_user = end_user;
	return form_page(ctx, req, resp, 200, &f);
}

/* The key page: the password in its 8 groups, the computer and key ID,
 * Copy and Save (static/portal.js), and that the key is to be replaced. */
static int key_page(struct app *app, struct http_request *req, struct http_response *resp,
		    const struct recover_result *r, const char *end_user)
{
	static const char *const group_names[8] = { "g1", "g2", "g3", "g4", "g5", "g6", "g7",
						    "g8" };
	char groups[8][8], file[80];
	struct tpl t;
	int rc;

	tpl_init(&t);
	tpl_set(&t, "title", _("BitLocker recovery key"));
	tpl_set(&t, "computer", r->computer);
	tpl_set(&t, "key_id", r->key_id);
	tpl_set(&t, "end_user", end_user && *end_user ? end_user : NULL);
	tpl_set(&t, "password", r->password);
	for (int i = 0; i < 8; i++) {
		memcpy(groups[i], r->password + 7 * i, 6);
		groups[i][6] = '\0';
		tpl_set(&t, group_names[i], groups[i]);
	}
	/* The name Windows gives the file when it saves a recovery key. */
	snprintf(file, sizeof(file), "BitLocker Recovery Key %s.txt", r->key_id);
	tpl_set(&t, "file", file);
	switch (r->was) {
	case RECOVER_KEY_ON_VOLUME:
		tpl_set(&t, "rotates", "1");
		break;
	case RECOVER_KEY_REMOVED:
		tpl_set(&t, "was_removed", "1");
		break;
	case RECOVER_KEY_SUPERSEDED:
		tpl_set(&t, "was_superseded", "1");
		break;
	}
	resp->sensitive = true;
	rc = helpdesk_page(app, req, resp, 200, HD_NAV_RECOVER, "helpdesk_key.html", &t);
	sodium_memzero(groups, sizeof(groups));
	return rc;
}

/* The form again with what was wrong with the input. */
static int invalid_page(struct app *app, struct http_request *req, struct http_response *resp,
			struct hd_form *f, const struct recover_invalid *iv)
{
	char key_msg[256];

	if (iv->key_is_password)
		/* Not shown again, and said for what it is. */
		f->key_error = _("This is a recovery password, not a recovery key ID. Enter "
				 "the ID shown on the BitLocker recovery screen.");
	else if (iv->key.problem != KEYID_OK) {
		web_keyid_error(&iv->key, key_msg, sizeof(key_msg));
		f->key_error = key_msg;
	}
	if (iv->end_user)
		f->end_user_error = !f->end_user || !*f->end_user ?
			_("Enter the name of the user you are helping, as DOMAIN\\user or "
			  "user@domain.") :
			_("Enter the user as DOMAIN\\user or user@domain.");
	if (iv->reason)
		f->reason_error = _("Choose the reason for this request.");
	if (iv->comment) {
		if (!f->comment || strspn(f->comment, " \t\r\n") == strlen(f->comment))
			f->comment_error = _("Describe the reason in the comment.");
		else if (str_is_clean_lines(f->comment, SIZE_MAX))
			f->comment_error = _("The comment is too long: write at most 500 "
					     "characters.");
		else
			f->comment_error = _("Write the comment as plain text, without control "
					     "characters.");
	}
	if (iv->key_is_password || !f->key_text || strlen(f->key_text) > KEYID_INPUT_MAX)
		f->key_text = NULL;
	if (f->end_user && !str_is_clean_text(f->end_user, IDENTITY_NAME_MAX))
		f->end_user = NULL;
	if (f->comment && strlen(f->comment) > RECOVER_COMMENT_MAX * 4)
		f->comment = NULL;
	return form_page(app, req, resp, 422, f);
}

int helpdesk_recover(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	const char *typed_user = form_get(&w->form, "end_user");
	const char *comment = form_get(&w->form, "comment");
	bool admin = any_key(req);
	char end_user[FORM_VALUE_MAX + 1];
	struct identity id;
	struct recover_request rq = {
		.source = AUDIT_HELPDESK,
		.end_user_required = !admin,
		/* Old keys too: a backup of the volume needs them (SPEC §5). */
		.any_state = true,
		.key_text = form_get(&w->form, "key_id"),
		.reason = form_get(&w->form, "reason"),
		.comment = comment && *comment ? comment : NULL,
		.actor = w->s.user,
		.end_user = end_user,
		.client = req->client,
		.now = time_now(),
		/* No failed-lookup limits: see doc/behaviour.md, Help desk. */
		.per_user = NULL,
		.per_address = NULL,
		.list_choices = RECOVER_CHOICES_MAX,
	};
	struct hd_form f = { 0 };
	struct recover_result *res;
	int rc;

	snprintf(end_user, sizeof(end_user), "%s", typed_user ? typed_user : "");
	str_trim(end_user);
	/* A help-desk user gets only the keys of the named user's computers;
	 * an administrator any key (the name is recorded, not enforced). */
	memset(&id, 0, sizeof(id));
	if (!admin) {
		identity_from_name(&app->cfg->domains, end_user, &id);
		rq.entitled = &id;
	}
	f.key_text = rq.key_text;
	f.end_user = end_user;
	f.reason = rq.reason;
	f.comment = comment;
	if (!(res = malloc(sizeof(*res))))
		return KW_ERR_NOMEM;
	rc = recover_run(app->store, app->seal, &rq, res);
	if (rc < 0) {
		log_error("help-desk recovery by %s failed, nothing disclosed: %s", w->s.user,
			  kw_strerror(rc));
		rc = web_message(app, req, resp, 503, _("Service unavailable"),
				 _("The request could not be recorded, so no key can be shown. "
				   "Try again in a few minutes."));
		goto out;
	}
	switch (res->outcome) {
	case RECOVER_DISCLOSED:
		log_info("recovery key %s of %s disclosed to %s for %s (audit record %lld)",
			 res->key_id, res->computer, w->s.user, *end_user ? end_user : "no one named",
			 (long long)res->audit_seq);
		rc = key_page(app, req, resp, res, end_user);
		break;
	case RECOVER_AMBIGUOUS:
		/* Told at the field, as on the self-service page, with the
		 * matching keys to choose from. */
		f.key_error = _("More than one recovery key starts with these characters. "
				"Enter all 32 characters of the recovery key ID.");
		f.choices = res;
		rc = form_page(app, req, resp, 409, &f);
		break;
	case RECOVER_NOT_FOUND:
		if (admin) {
			f.error = _("No recovery key was found for this ID.");
			f.error_hint = _("Check the recovery key ID with the user.");
		} else {
			f.error = _("No recovery key was found for this ID among the computers of "
				    "this user.");
			f.error_hint = _("Check the recovery key ID and the user's name. A key is "
					 "given only for a computer the user has signed in to "
					 "locally or is associated with.");
		}
		rc = form_page(app, req, resp, 404, &f);
		break;
	case RECOVER_INVALID:
		rc = invalid_page(app, req, resp, &f, &res->invalid);
		break;
	case RECOVER_RATE_LIMITED:
		/* Not with no limiters; answered as a failure if it ever were. */
		rc = KW_ERR_INTERNAL;
		break;
	}
out:
	sodium_memzero(res, sizeof(*res));
	free(res);
	return rc;
}
