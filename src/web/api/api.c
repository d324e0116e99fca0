#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core/enroll.h"
#include "core/escrow.h"
#include "core/health.h"
#include "http/metrics.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/str.h"
#include "core/keyfile.h"
#include "util/timeutil.h"
#include "web/api/api.h"
#include "web/app.h"

/* 503 for a device: what the store's state says (a full disk, a restart
 * needed), so that an agent's log tells the operator why. */
static int store_unavailable(struct app *app, struct http_response *resp)
{
	char reason[256];

	if (keyfile_stale())
		snprintf(reason, sizeof(reason), "this server's master key is no longer the "
			 "database's (keywarden rekey): it must be restarted");
	else if (store_state(app->store, reason, sizeof(reason)) == STORE_OK)
		snprintf(reason, sizeof(reason), "the store is unavailable; try again later");
	return http_json_error(resp, 503, reason);
}

int api_healthz(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	char reason[256], body[260];

	if (health_check(app->store, reason, sizeof(reason)) < 0) {
		snprintf(body, sizeof(body), "%s\n", reason);
		return http_text(resp, 503, body);
	}
	return http_text(resp, 200, "ok\n");
}

int api_metrics(void *ctx, struct http_request *req, struct http_response *resp)
{
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return metrics_render(&resp->body);
}

/* Parses the request body as one JSON value; on failure answers 400. */
static json_t *parse_body(struct http_request *req, struct http_response *resp)
{
	json_error_t err;
	json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);

	if (!doc) {
		char msg[256];

		snprintf(msg, sizeof(msg), "the body is not valid JSON: %s (line %d, column %d)",
			 err.text, err.line, err.column);
		http_json_error(resp, 400, msg);
	}
	return doc;
}

static int send_field_errors(struct http_response *resp, const struct field_errors *errs)
{
	json_t *doc = json_object(), *list = json_array();
	int rc = KW_ERR_NOMEM;

	if (!doc || !list)
		goto out;
	for (size_t i = 0; i < errs->n; i++)
		if (json_array_append_new(list, json_pack("{s:s,s:s}", "field", errs->e[i].field,
							  "message", errs->e[i].message)) < 0)
			goto out;
	if (json_object_set(doc, "errors", list) < 0)
		goto out;
	if (errs->total > errs->n &&
	    json_object_set_new(doc, "more_errors", json_integer((json_int_t)(errs->total -
									    errs->n))) < 0)
		goto out;
	rc = http_json(resp, 422, doc);
out:
	json_decref(list);
	json_decref(doc);
	return rc;
}

int api_register(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct field_errors errs = { .n = 0, .total = 0 };
	char device_id[UUID_LEN + 1], secret[SECRET_TEXT_MAX];
	struct device_new d;
	const char *token;
	json_t *doc, *out = NULL;
	int rc;

	if (!(doc = parse_body(req, resp)))
		return 0;
	if (!json_is_object(doc)) {
		rc = http_json_error(resp, 400, "the body must be a JSON object");
		goto out;
	}
	token = field_text(doc, "enrollment_token", true, SECRET_TEXT_MAX, &errs, "");
	d.name = field_text(doc, "name", true, DEVICE_NAME_MAX, &errs, "");
	d.domain = field_text(doc, "domain", false, DEVICE_TEXT_MAX, &errs, "");
	d.os = field_text(doc, "os", false, DEVICE_TEXT_MAX, &errs, "");
	if (errs.total) {
		rc = send_field_errors(resp, &errs);
		goto out;
	}
	rc = enroll_register(app->store, token, &d, time_now(), device_id, secret);
	if (rc == KW_ERR_AUTH) {
		rc = http_json_error(resp, 401, "the enrollment token is unknown, expired, "
				     "revoked or used up");
		goto out;
	}
	if (rc < 0)
		goto out;
	log_info("device registered: %s (%s)", device_id, d.name);
	out = json_pack("{s:s,s:s}", "device_id", device_id, "device_secret", secret);
	sodium_memzero(secret, sizeof(secret));
	if (!out) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	resp->sensitive = true;
	rc = http_json(resp, 201, out);
out:
	json_decref(out);
	json_decref(doc);
	return rc;
}

/* The device secret from "Authorization: Bearer …", or NULL. */
static const char *bearer(const struct http_request *req)
{
	const char *h = http_request_header(req, "Authorization");

	if (!h || strncasecmp(h, "Bearer ", 7))
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

bool api_device_known(struct app *app, const struct http_request *req)
{
	const char *secret = bearer(req);
	uint8_t hash[SECRET_HASH_LEN];
	char id[UUID_LEN + 1], name[DEVICE_NAME_MAX + 1];

	return secret && device_cache_authenticate(app->devices, NULL, secret, hash, id, name,
						   sizeof(name)) == 0;
}

static int unauthorized(struct http_response *resp)
{
	int rc = http_header(resp, "WWW-Authenticate", "Bearer realm=\"keywarden\"");

	return rc < 0 ? rc : http_json_error(resp, 401, "unknown or revoked device secret");
}

static int checkin_reply(struct http_response *resp, const struct checkin_result *res)
{
	json_t *doc = json_object(), *rot = json_array();
	int rc = KW_ERR_NOMEM;

	if (!doc || !rot)
		goto out;
	for (size_t i = 0; i < res->nrotate; i++)
		if (json_array_append_new(rot, json_string(res->rotate[i])) < 0)
			goto out;
	if (json_object_set(doc, "rotate", rot) < 0 ||
	    json_object_set_new(doc, "checkin_interval", json_integer(CHECKIN_INTERVAL_S)) < 0)
		goto out;
	rc = http_json(resp, 200, doc);
out:
	json_decref(rot);
	json_decref(doc);
	return rc;
}

/* A check-in between its start on a server thread and its answer. */
struct checkin_state {
	struct http_request *req;
	char device_id[UUID_LEN + 1];
	char name[DEVICE_NAME_MAX + 1];
	uint8_t secret_hash[SECRET_HASH_LEN];
	struct device_cache *devices;
	struct checkin ci;
	struct checkin_result res;
	struct checkin_job job;
	int rc;
};

static void checkin_state_free(void *p)
{
	struct checkin_state *st = p;

	checkin_result_free(&st->res);
	checkin_free(&st->ci);
	free(st);
}

/* On the store's thread once the check-in is durable (or failed). */
static void checkin_done(int rc, void *arg)
{
	struct checkin_state *st = arg;

	st->rc = rc;
	http_resume(st->req);
}

/* Authenticates the device and validates the report on the server thread,
 * then hands the write to the store's group commit without holding a thread
 * while it waits; api_checkin_finish answers. */
int api_checkin(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct field_errors *errs = NULL;
	struct checkin_state *st = NULL;
	const char *secret = bearer(req);
	int64_t now = time_now();
	json_t *doc = NULL;
	int rc;

	if (!secret)
		return unauthorized(resp);
	if (!(st = calloc(1, sizeof(*st))))
		return KW_ERR_NOMEM;
	req->state = st;
	req->state_free = checkin_state_free;
	st->req = req;
	st->devices = app->devices;
	rc = device_cache_authenticate(app->devices, app->store, secret, st->secret_hash,
				       st->device_id, st->name, sizeof(st->name));
	if (rc == KW_ERR_AUTH)
		return unauthorized(resp);
	if (rc < 0)
		return store_unavailable(app, resp);
	if (!(doc = parse_body(req, resp)))
		return 0;
	if (!(errs = calloc(1, sizeof(*errs)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	rc = checkin_parse(doc, now, &st->ci, errs);
	if (rc == KW_ERR_INVALID) {
		rc = send_field_errors(resp, errs);
		goto out;
	}
	if (rc < 0)
		goto out;
	http_suspend(req);
	rc = checkin_apply_async(app->store, app->seal, st->device_id, st->secret_hash, &st->ci,
				 now, &st->res, &st->job, checkin_done, st);
	if (rc < 0) {
		/* Never queued: answer now, as if it had failed in the store. */
		st->rc = rc;
		http_resume(req);
	}
	rc = HTTP_PENDING;
out:
	free(errs);
	json_decref(doc);
	return rc;
}

int api_checkin_finish(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct checkin_state *st = req->state;
	int rc = st->rc;

	if (rc == KW_ERR_CONFLICT) {
		json_t *e = json_pack("{s:s,s:s}", "error", st->res.conflict_why, "key_id",
				      st->res.conflict_key);

		rc = e ? http_json(resp, 409, e) : KW_ERR_NOMEM;
		json_decref(e);
		return rc;
	}
	if (rc == KW_ERR_AUTH) {   /* revoked since it was remembered */
		device_cache_forget(st->devices, st->secret_hash);
		return unauthorized(resp);
	}
	if (rc == KW_ERR_STORE || rc == KW_ERR_UNAVAILABLE)
		return store_unavailable(ctx, resp);
	if (rc < 0)
		return rc;
	if (st->res.keys_added) {
		metrics_escrowed(st->res.keys_added);
		log_debug("device %s (%s): %zu recovery key(s) escrowed", st->device_id,
			  st->name, st->res.keys_added);
	}
	return checkin_reply(resp, &st->res);
}
