/* Operations on logons and associations: who uses which device. */
#include <stdio.h>
#include <string.h>

#include "store/sqlite/internal.h"
#include "util/err.h"

static const struct sq_query q_logon_upsert = { SQ_LOGON_UPSERT,
	"INSERT INTO logons (device, user_lc, user, type, first_seen, last_seen) "
	"VALUES (?1, fold(?2), ?2, ?3, ?4, ?5) ON CONFLICT (device, user_lc, type) "
	"DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), "
	"last_seen = max(last_seen, excluded.last_seen) "
	"WHERE excluded.first_seen < first_seen OR excluded.last_seen > last_seen" };
static const struct sq_query q_logon_each_device = { SQ_LOGON_EACH_DEVICE,
	"SELECT l.user, l.type, l.first_seen, l.last_seen FROM logons l "
	"JOIN devices d ON d.id = l.device WHERE d.uid = ?1 ORDER BY l.user_lc, l.type" };
static const struct sq_query q_assoc_add = { SQ_ASSOC_ADD,
	"INSERT INTO associations (user_lc, user, device, added_by, created_at) "
	"VALUES (fold(?1), ?1, ?2, ?3, ?4)" };
static const struct sq_query q_assoc_each_device = { SQ_ASSOC_EACH_DEVICE,
	"SELECT a.user, a.added_by, a.created_at FROM associations a "
	"JOIN devices d ON d.id = a.device WHERE d.uid = ?1 ORDER BY a.user_lc" };

static int logon_upsert(struct store_tx *tx, const struct logon_rec *l)
{
	int64_t dev;
	int rc;

	if ((rc = sq_device_row(tx, l->device_id, NULL, &dev)) < 0)
		return rc;
	return sq_exec(tx->c, &q_logon_upsert,
		       SQ_ARGS(SQ_INT(dev), SQ_TEXT(l->user), SQ_INT(l->type),
			       SQ_INT(l->first_seen), SQ_INT(l->last_seen)));
}

static int logon_upsert_many(struct store_tx *tx, const struct logon_rec *l, size_t n)
{
	int64_t dev;
	int rc;

	/* Every device first, as volume_upsert_many. */
	for (size_t i = 0; i < n; i++)
		if ((rc = sq_device_row(tx, l[i].device_id, NULL, &dev)) < 0)
			return rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = logon_upsert(tx, &l[i])) < 0)
			return rc;
	return 0;
}

struct logon_cb {
	const char *device_id;
	store_each_logon cb;
	void *arg;
};

static int logon_row(sqlite3_stmt *st, void *arg)
{
	struct logon_cb *c = arg;
	struct logon_rec l;

	snprintf(l.device_id, sizeof(l.device_id), "%s", c->device_id);
	l.user = sq_text(st, 0);
	l.type = (enum logon_type)sqlite3_column_int(st, 1);
	l.first_seen = sqlite3_column_int64(st, 2);
	l.last_seen = sqlite3_column_int64(st, 3);
	return c->cb(&l, c->arg);
}

static int logon_each_device(struct store_tx *tx, const char *device_id,
			     store_each_logon cb, void *arg)
{
	struct logon_cb c = { device_id, cb, arg };

	return sq_each(tx->c, &q_logon_each_device, SQ_ARGS(SQ_TEXT(device_id)), logon_row, &c);
}

static int assoc_add(struct store_tx *tx, const struct assoc_rec *a)
{
	int64_t dev;
	int rc;

	if ((rc = sq_device_row(tx, a->device_id, NULL, &dev)) < 0)
		return rc;
	return sq_exec(tx->c, &q_assoc_add,
		       SQ_ARGS(SQ_TEXT(a->user), SQ_INT(dev), SQ_TEXT(a->added_by),
			       SQ_INT(a->created_at)));
}

struct assoc_cb {
	const char *device_id;
	store_each_assoc cb;
	void *arg;
};

static int assoc_row(sqlite3_stmt *st, void *arg)
{
	struct assoc_cb *c = arg;
	struct assoc_rec a;

	snprintf(a.device_id, sizeof(a.device_id), "%s", c->device_id);
	a.user = sq_text(st, 0);
	a.added_by = sq_text(st, 1);
	a.created_at = sqlite3_column_int64(st, 2);
	return c->cb(&a, c->arg);
}

static int assoc_each_device(struct store_tx *tx, const char *device_id,
			     store_each_assoc cb, void *arg)
{
	struct assoc_cb c = { device_id, cb, arg };

	return sq_each(tx->c, &q_assoc_each_device, SQ_ARGS(SQ_TEXT(device_id)), assoc_row, &c);
}

void sq_logon_ops(struct store_ops *o)
{
	o->logon_upsert = logon_upsert;
	o->logon_upsert_many = logon_upsert_many;
	o->logon_each_device = logon_each_device;
	o->assoc_add = assoc_add;
	o->assoc_each_device = assoc_each_device;
}
