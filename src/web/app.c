#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/seal.h"
#include "store/store.h"
#include "util/config.h"
#include "util/err.h"
#include "web/api/api.h"
#include "web/app.h"

#define JSON_BODY_MAX (64 * 1024)

const struct route app_routes[] = {
	{ "GET", "/healthz", api_healthz, ACCESS_PUBLIC, 0, true },
	{ "GET", "/metrics", api_metrics, ACCESS_PUBLIC, 0, false },
	{ "POST", "/api/v1/register", api_register, ACCESS_PUBLIC, JSON_BODY_MAX, true },
	{ "POST", "/api/v1/checkin", api_checkin, ACCESS_DEVICE, JSON_BODY_MAX, true },
	{ NULL, NULL, NULL, 0, 0, false },
};

int app_authorize(void *app, struct http_request *req, struct http_response *resp)
{
	return 0;
}

struct fp {
	const char *want;
	char have[SEAL_FINGERPRINT_LEN + 8];
	int found;
};

static int fp_tx(struct store_tx *tx, void *arg)
{
	struct fp *f = arg;
	int rc = STORE_TX(tx, meta_get, "master_key_id", f->have, sizeof(f->have));

	if (rc == KW_ERR_NOT_FOUND) {
		f->found = 0;
		return STORE_TX(tx, meta_set, "master_key_id", f->want);
	}
	f->found = 1;
	return rc;
}

int app_check_key(struct app *app, char *msg, size_t msglen)
{
	char want[SEAL_FINGERPRINT_LEN + 1], pending[4096];
	struct seal *next = NULL;
	struct fp f = { want, "", 0 };
	int rc;

	seal_fingerprint(app->seal, want);
	if ((rc = store_write(app->store, fp_tx, &f)) < 0) {
		snprintf(msg, msglen, "cannot read the master key id from the database: %s",
			 kw_strerror(rc));
		return rc;
	}
	if (!f.found || !strcmp(f.have, want))
		return 0;
	/* A rekey that stopped after the database moved to the new key but
	 * before the new key file replaced the old one. */
	snprintf(pending, sizeof(pending), "%s.new", app->cfg->key_file);
	if (seal_load(pending, &next, msg, msglen) == 0) {
		char nfp[SEAL_FINGERPRINT_LEN + 1];

		seal_fingerprint(next, nfp);
		if (!strcmp(nfp, f.have) && rename(pending, app->cfg->key_file) == 0) {
			seal_free(app->seal);
			app->seal = next;
			return 0;
		}
		seal_free(next);
	}
	snprintf(msg, msglen, "the key file %s does not match the database (which was "
		 "sealed with key %s, not %s); use the key file made for this database",
		 app->cfg->key_file, f.have, want);
	return KW_ERR_CRYPTO;
}

int app_open(struct app *app, const struct config *cfg, char *msg, size_t msglen)
{
	int rc;

	memset(app, 0, sizeof(*app));
	app->cfg = cfg;
	if ((rc = seal_load(cfg->key_file, &app->seal, msg, msglen)) < 0)
		goto fail;
	if ((rc = store_open(cfg->database, true, &app->store, msg, msglen)) < 0)
		goto fail;
	if ((rc = app_check_key(app, msg, msglen)) < 0)
		goto fail;
	return 0;
fail:
	app_close(app);
	return rc;
}

void app_close(struct app *app)
{
	store_close(app->store);
	seal_free(app->seal);
	app->store = NULL;
	app->seal = NULL;
}
