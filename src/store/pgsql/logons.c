/* Operations on logons and associations: who uses which device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/pgsql/internal.h"
#include "util/err.h"
#include "util/jsonwipe.h"

static const struct pg_query q_logon_upsert = {
	"INSERT INTO logons (device, user_lc, \"user\", type, first_seen, last_seen) "
	"VALUES ($1::bigint, $2::text, $3::text, $4::integer, $5::bigint, $6::bigint) "
	"ON CONFLICT (device, user_lc, type) DO UPDATE SET "
	"first_seen = LEAST(logons.first_seen, excluded.first_seen), "
	"last_seen = GREATEST(logons.last_seen, excluded.last_seen) "
	"WHERE excluded.first_seen < logons.first_seen OR excluded.last_seen > logons.last_seen" };
/* Many logons in one statement (nothing unless every device exists); one
 * logon reported twice counts as one, its first user spelling kept, as
 * one at a time would. The number of logons whose device is missing. */
static const struct pg_query q_logon_upsert_many = {
	"WITH x AS (SELECT x.*, d.id AS dev FROM json_to_recordset($1::json) AS "
	"x(device text, user_lc text, \"user\" text, type integer, first_seen bigint, "
	"last_seen bigint, ord bigint) LEFT JOIN devices d ON d.uid = x.device), "
	"ins AS (INSERT INTO logons (device, user_lc, \"user\", type, first_seen, last_seen) "
	"SELECT dev, user_lc, (array_agg(\"user\" ORDER BY ord))[1], type, min(first_seen), "
	"max(last_seen) FROM x WHERE NOT EXISTS (SELECT 1 FROM x WHERE dev IS NULL) "
	"GROUP BY dev, user_lc, type "
	"ON CONFLICT (device, user_lc, type) DO UPDATE SET "
	"first_seen = LEAST(logons.first_seen, excluded.first_seen), "
	"last_seen = GREATEST(logons.last_seen, excluded.last_seen) "
	"WHERE excluded.first_seen < logons.first_seen OR excluded.last_seen > logons.last_seen "
	"RETURNING 1) "
	"SELECT count(*) FILTER (WHERE dev IS NULL), (SELECT count(*) FROM ins) FROM x" };
static const struct pg_query q_logon_each_device = {
	"SELECT l.\"user\", l.type, l.first_seen, l.last_seen FROM logons l "
	"WHERE l.device = " PG_DEVICE_ROW " ORDER BY l.user_lc, l.type" };
static const struct pg_query q_assoc_add = {
	"INSERT INTO associations (user_lc, \"user\", device, added_by, created_at) "
	"VALUES ($1::text, $2::text, $3::bigint, $4::text, $5::bigint) ON CONFLICT DO NOTHING" };
static const struct pg_query q_assoc_each_device = {
	"SELECT a.\"user\", a.added_by, a.created_at FROM associations a "
	"WHERE a.device = " PG_DEVICE_ROW " ORDER BY a.user_lc" };

static int logon_put(struct store_tx *tx, const struct logon_rec *l, int64_t dev)
{
	char *lc = pg_fold(l->user);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = pg_exec(tx->c, &q_logon_upsert,
		     PG_ARGS(PG_INT(dev), PG_TEXT(lc), PG_TEXT(l->user), PG_INT(l->type),
			     PG_INT(l->first_seen), PG_INT(l->last_seen)));
	free(lc);
	return rc;
}

static int logon_upsert(struct store_tx *tx, const struct logon_rec *l)
{
	int64_t dev;
	int rc;

	if ((rc = pg_device_row(tx, l->device_id, NULL, &dev)) < 0)
		return rc;
	return logon_put(tx, l, dev);
}

/* logon_upsert_many's n logons in one statement. */
static int logon_upsert_set(struct store_tx *tx, const struct logon_rec *l, size_t n)
{
	json_t *recs = json_array();
	char *list = NULL, *lc = NULL;
	int64_t missing = 0;
	int rc = KW_ERR_NOMEM;

	if (!recs)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (!(lc = pg_fold(l[i].user)))
			goto out;
		if (json_array_append_new(recs, json_pack(
			"{sIssssss?sIsIsI}", "ord", (json_int_t)i, "device", l[i].device_id,
			"user_lc", lc,
			"user", l[i].user, "type", (json_int_t)l[i].type,
			"first_seen", (json_int_t)l[i].first_seen,
			"last_seen", (json_int_t)l[i].last_seen)) < 0)
			goto out;
		free(lc);
		lc = NULL;
	}
	if (!(list = json_dumps(recs, JSON_COMPACT)))
		goto out;
	if ((rc = pg_int(tx->c, &q_logon_upsert_many, PG_ARGS(PG_TEXT(list)), &missing)) < 0)
		goto out;
	rc = missing ? KW_ERR_NOT_FOUND : 0;
out:
	free(lc);
	if (list)
		json_free_string(list);
	json_decref(recs);
	return rc;
}

static int logon_upsert_many(struct store_tx *tx, const struct logon_rec *l, size_t n)
{
	int64_t *dev;
	int rc = 0;

	if (n > 1)
		return logon_upsert_set(tx, l, n);
	if (!(dev = malloc(n * sizeof(*dev))))
		return KW_ERR_NOMEM;
	/* Every device first: past them only a failure of the database can
	 * stop the batch, and that fails the transaction. */
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (i && !strcmp(l[i].device_id, l[i - 1].device_id))
			dev[i] = dev[i - 1];
		else
			rc = pg_device_row(tx, l[i].device_id, NULL, &dev[i]);
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = logon_put(tx, &l[i], dev[i]);
	free(dev);
	return rc;
}

struct logon_cb {
	const char *device_id;
	store_each_logon cb;
	void *arg;
};

static int logon_row(const PGresult *r, int i, void *arg)
{
	struct logon_cb *c = arg;
	struct logon_rec l;

	snprintf(l.device_id, sizeof(l.device_id), "%s", c->device_id);
	l.user = pg_text(r, i, 0);
	l.type = (enum logon_type)pg_i64(r, i, 1);
	l.first_seen = pg_i64(r, i, 2);
	l.last_seen = pg_i64(r, i, 3);
	return c->cb(&l, c->arg);
}

static int logon_each_device(struct store_tx *tx, const char *device_id,
			     store_each_logon cb, void *arg)
{
	struct logon_cb c = { device_id, cb, arg };

	return pg_each(tx->c, &q_logon_each_device, PG_ARGS(PG_TEXT(device_id)), logon_row, &c);
}

static int assoc_add(struct store_tx *tx, const struct assoc_rec *a)
{
	int64_t dev;
	char *lc;
	int rc;

	if ((rc = pg_device_row(tx, a->device_id, NULL, &dev)) < 0)
		return rc;
	if (!(lc = pg_fold(a->user)))
		return KW_ERR_NOMEM;
	rc = pg_insert(tx->c, &q_assoc_add,
		       PG_ARGS(PG_TEXT(lc), PG_TEXT(a->user), PG_INT(dev), PG_TEXT(a->added_by),
			       PG_INT(a->created_at)));
	free(lc);
	return rc;
}

struct assoc_cb {
	const char *device_id;
	store_each_assoc cb;
	void *arg;
};

static int assoc_row(const PGresult *r, int i, void *arg)
{
	struct assoc_cb *c = arg;
	struct assoc_rec a;

	snprintf(a.device_id, sizeof(a.device_id), "%s", c->device_id);
	a.user = pg_text(r, i, 0);
	a.added_by = pg_text(r, i, 1);
	a.created_at = pg_i64(r, i, 2);
	return c->cb(&a, c->arg);
}

static int assoc_each_device(struct store_tx *tx, const char *device_id,
			     store_each_assoc cb, void *arg)
{
	struct assoc_cb c = { device_id, cb, arg };

	return pg_each(tx->c, &q_assoc_each_device, PG_ARGS(PG_TEXT(device_id)), assoc_row, &c);
}

void pg_logon_ops(struct store_ops *o)
{
	o->logon_upsert = logon_upsert;
	o->logon_upsert_many = logon_upsert_many;
	o->logon_each_device = logon_each_device;
	o->assoc_add = assoc_add;
	o->assoc_each_device = assoc_each_device;
}
