/* Operations on devices and their volumes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "store/pgsql/internal.h"
#include "util/err.h"
#include "util/jsonwipe.h"

static const struct pg_query q_device_insert = {
	"INSERT INTO devices (uid, name, name_lc, domain, os, secret_hash, created_at) "
	"VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::bytea, $7::bigint) "
	"ON CONFLICT DO NOTHING RETURNING id" };
static const struct pg_query q_device_get = {
	"SELECT " PG_DEVICE_COLS " FROM devices d WHERE d.uid = $1::text" };
static const struct pg_query q_device_by_secret = {
	"SELECT " PG_DEVICE_COLS " FROM devices d WHERE d.secret_hash = $1::bytea" };
static const struct pg_query q_device_row = {
	"SELECT id, secret_hash, revoked FROM devices WHERE uid = $1::text" };
/* In a write, the device's row is locked where it is first looked up:
 * writes about one device (two check-ins at once, on two instances) take
 * turns, and at READ COMMITTED the second then reads what the first
 * committed. NO KEY UPDATE still lets rows that refer to it be added. */
static const struct pg_query q_device_row_lock = {
	"SELECT id, secret_hash, revoked FROM devices WHERE uid = $1::text "
	"FOR NO KEY UPDATE" };
static const struct pg_query q_device_get_lock = {
	"SELECT " PG_DEVICE_COLS ", d.id FROM devices d WHERE d.uid = $1::text "
	"FOR NO KEY UPDATE" };
static const struct pg_query q_device_by_secret_lock = {
	"SELECT " PG_DEVICE_COLS " FROM devices d WHERE d.secret_hash = $1::bytea "
	"FOR NO KEY UPDATE" };
/* A device checking in again within the second writes nothing. */
static const struct pg_query q_device_checked_in = {
	"UPDATE devices SET os = $2::text, last_checkin_at = $3::bigint "
	"WHERE id = $1::bigint AND (os <> $2::text OR last_checkin_at <> $3::bigint)" };
/* Several devices' rows locked (in row order: two groups meet in the same
 * order) and read in one round trip; their check-ins recorded in another. */
static const struct pg_query q_device_rows_lock = {
	"SELECT uid, id, secret_hash, revoked FROM devices WHERE uid = "
	"ANY(ARRAY(SELECT json_array_elements_text($1::json))) ORDER BY id FOR NO KEY UPDATE" };
static const struct pg_query q_device_checked_in_many = {
	"UPDATE devices d SET os = x.os, last_checkin_at = x.at "
	"FROM json_to_recordset($1::json) AS x(id bigint, os text, at bigint) "
	"WHERE d.id = x.id AND (d.os <> x.os OR d.last_checkin_at <> x.at)" };
static const struct pg_query q_device_revoke = {
	"UPDATE devices SET revoked = $2::integer WHERE uid = $1::text" };
/* name_lc >= prefix AND < prefix || U+10FFFF keeps the index usable. */
static const struct pg_query q_device_each = {
	"SELECT " PG_DEVICE_COLS " FROM devices d WHERE d.name_lc >= $1::text "
	"AND d.name_lc < $1::text || chr(1114111) ORDER BY d.name_lc, d.id" };
static const struct pg_query q_device_each_limit = {
	"SELECT " PG_DEVICE_COLS " FROM devices d WHERE d.name_lc >= $1::text "
	"AND d.name_lc < $1::text || chr(1114111) ORDER BY d.name_lc, d.id LIMIT $2::bigint" };
static const struct pg_query q_device_cursor = {
	"SELECT name_lc, id FROM devices WHERE uid = $1::text" };
/* A page of devices after the cursor's, each with its volumes and the
 * states of their keys (a bit each). */
static const struct pg_query q_device_each_volumes = {
	"SELECT " PG_DEVICE_COLS ", d.id, " PG_VOLUME_COLS ", "
	"(SELECT coalesce(bit_or(1 << k.state), 0) FROM recovery_keys k "
	"WHERE k.volume = v.id) "
	"FROM (SELECT * FROM devices WHERE name_lc >= $1::text AND "
	"(name_lc > $1::text OR id > $2::bigint) ORDER BY name_lc, id LIMIT $3::bigint) d "
	"LEFT JOIN volumes v ON v.device = d.id ORDER BY d.name_lc, d.id, v.mount, v.guid" };

static const struct pg_query q_volume_get = {
	"SELECT id, mount, type, protection, encryption, percent "
	"FROM volumes WHERE device = $1::bigint AND guid = $2::text" };
static const struct pg_query q_volume_insert = {
	"INSERT INTO volumes (device, guid, mount, type, protection, encryption, percent, "
	"first_seen, last_seen) VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::text, "
	"$6::text, $7::integer, $8::bigint, $8::bigint) ON CONFLICT DO NOTHING RETURNING id" };
static const struct pg_query q_volume_update = {
	"UPDATE volumes SET mount = $2::text, type = $3::text, protection = $4::text, "
	"encryption = $5::text, percent = $6::integer, last_seen = $7::bigint "
	"WHERE id = $1::bigint" };
/* Many volumes in one statement: the ones that changed are updated, the
 * new ones inserted (nothing unless every device exists), and each one's
 * row comes back in the order given (ord), with whether its device was
 * missing; a row missing after all was inserted by another transaction
 * meanwhile. */
static const struct pg_query q_volume_upsert_many = {
	"WITH x AS (SELECT x.*, d.id AS dev FROM json_to_recordset($1::json) AS "
	"x(device text, guid text, mount text, type text, protection text, encryption text, "
	"percent integer, first_seen bigint, last_seen bigint, ord bigint) "
	"LEFT JOIN devices d ON d.uid = x.device), "
	"ok AS (SELECT NOT EXISTS (SELECT 1 FROM x WHERE dev IS NULL) AS ok), "
	"upd AS (UPDATE volumes v SET mount = x.mount, type = x.type, "
	"protection = x.protection, encryption = x.encryption, percent = x.percent, "
	"last_seen = x.last_seen FROM x WHERE (SELECT ok FROM ok) AND v.device = x.dev "
	"AND v.guid = x.guid AND (v.mount, v.type, v.protection, v.encryption, v.percent) "
	"IS DISTINCT FROM (x.mount, x.type, x.protection, x.encryption, x.percent) "
	"RETURNING v.id), "
	"ins AS (INSERT INTO volumes (device, guid, mount, type, protection, encryption, "
	"percent, first_seen, last_seen) SELECT x.dev, x.guid, x.mount, x.type, x.protection, "
	"x.encryption, x.percent, x.first_seen, x.first_seen FROM x WHERE (SELECT ok FROM ok) "
	"AND NOT EXISTS (SELECT 1 FROM volumes v WHERE v.device = x.dev AND v.guid = x.guid) "
	"ORDER BY x.ord ON CONFLICT DO NOTHING RETURNING id, device, guid) "
	"SELECT coalesce(ins.id, v.id, 0), x.dev IS NULL, (SELECT count(*) FROM upd) "
	"FROM x LEFT JOIN ins ON ins.device = x.dev AND ins.guid = x.guid "
	"LEFT JOIN volumes v ON v.device = x.dev AND v.guid = x.guid ORDER BY x.ord" };
static const struct pg_query q_volume_each = {
	"SELECT " PG_VOLUME_COLS " FROM volumes v WHERE v.device = " PG_DEVICE_ROW
	" ORDER BY v.mount, v.guid" };

void pg_device_fill(const PGresult *r, int i, int col, struct device_rec *d)
{
	pg_copy(r, i, col, d->id, sizeof(d->id));
	d->name = pg_text(r, i, col + 1);
	d->domain = pg_text(r, i, col + 2);
	d->os = pg_text(r, i, col + 3);
	d->created_at = pg_i64(r, i, col + 4);
	d->last_checkin_at = pg_i64(r, i, col + 5);
	d->revoked = pg_i64(r, i, col + 6) != 0;
}

void pg_volume_fill(const PGresult *r, int i, int col, struct volume_rec *v)
{
	v->row = pg_i64(r, i, col);
	pg_copy(r, i, col + 1, v->guid, sizeof(v->guid));
	v->mount = pg_text(r, i, col + 2);
	v->type = pg_text(r, i, col + 3);
	v->protection = pg_text(r, i, col + 4);
	v->encryption = pg_text(r, i, col + 5);
	v->percent = (int)pg_i64(r, i, col + 6);
	v->first_seen = pg_i64(r, i, col + 7);
	v->last_seen = pg_i64(r, i, col + 8);
}

struct device_cb {
	store_each_device cb;
	void *arg;
	int64_t id;              /* the row, when the query reads it */
};

/* A device row this write holds (inserted or locked): looked up no more. */
static void remember(struct store_tx *tx, const char *uid, int64_t row)
{
	snprintf(tx->dev_uid, sizeof(tx->dev_uid), "%s", uid);
	tx->dev_row = row;
}

static int device_id_row(const PGresult *r, int i, void *arg)
{
	*(int64_t *)arg = pg_i64(r, i, 0);
	return 0;
}

static int device_row(const PGresult *r, int i, void *arg)
{
	struct device_cb *c = arg;
	struct device_rec d;

	pg_device_fill(r, i, 0, &d);
	return c->cb(&d, c->arg);
}

static int device_insert(struct store_tx *tx, const struct device_rec *d,
			 const uint8_t secret_hash[STORE_HASH_LEN])
{
	char *lc = pg_fold(d->name);
	int rc;

	int64_t row = 0;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = pg_one(tx->c, &q_device_insert,
		    PG_ARGS(PG_TEXT(d->id), PG_TEXT(d->name), PG_TEXT(lc),
			    PG_TEXT(d->domain ? d->domain : ""), PG_TEXT(d->os ? d->os : ""),
			    PG_BLOB(secret_hash, STORE_HASH_LEN), PG_INT(d->created_at)),
		    device_id_row, &row);
	free(lc);
	if (rc == KW_ERR_NOT_FOUND)
		return KW_ERR_EXISTS;   /* nothing inserted: its ID or secret is taken */
	if (rc == 0)
		remember(tx, d->id, row);
	return rc;
}

/* device_row, noting the row's id (the 8th column). */
static int device_row_id(const PGresult *r, int i, void *arg)
{
	struct device_cb *c = arg;

	c->id = pg_i64(r, i, 7);
	return device_row(r, i, arg);
}

static int device_get(struct store_tx *tx, const char *id, store_each_device cb, void *arg)
{
	struct device_cb c = { cb, arg, 0 };
	int rc;

	if (!tx->write)
		return pg_one(tx->c, &q_device_get, PG_ARGS(PG_TEXT(id)), device_row, &c);
	rc = pg_one(tx->c, &q_device_get_lock, PG_ARGS(PG_TEXT(id)), device_row_id, &c);
	if (c.id)
		remember(tx, id, c.id);
	return rc;
}

static int device_by_secret(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			    store_each_device cb, void *arg)
{
	struct device_cb c = { cb, arg, 0 };

	return pg_one(tx->c, tx->write ? &q_device_by_secret_lock : &q_device_by_secret,
		      PG_ARGS(PG_BLOB(hash, STORE_HASH_LEN)), device_row, &c);
}

struct row_check {
	const uint8_t *hash;
	int64_t row;
	bool ok;
};

static int row_checked(const PGresult *r, int i, void *arg)
{
	struct row_check *c = arg;
	uint8_t h[STORE_HASH_LEN];

	pg_blob(r, i, 1, h, sizeof(h));
	c->ok = !c->hash || (sodium_memcmp(h, c->hash, STORE_HASH_LEN) == 0 &&
			     !pg_i64(r, i, 2));
	c->row = pg_i64(r, i, 0);
	return 0;
}

int pg_device_row(struct store_tx *tx, const char *uid, const uint8_t *hash, int64_t *row)
{
	struct row_check c = { hash, 0, false };
	int rc;

	if (!hash && tx->dev_uid[0] && !strcmp(tx->dev_uid, uid)) {
		*row = tx->dev_row;
		return 0;
	}
	rc = pg_one(tx->c, tx->write ? &q_device_row_lock : &q_device_row,
		    PG_ARGS(PG_TEXT(uid)), row_checked, &c);
	if (rc == KW_ERR_NOT_FOUND && hash)
		return KW_ERR_AUTH;
	if (rc < 0)
		return rc;
	if (!c.ok)
		return KW_ERR_AUTH;
	*row = c.row;
	remember(tx, uid, c.row);
	return 0;
}

static int device_check_secret(struct store_tx *tx, const char *id,
			       const uint8_t hash[STORE_HASH_LEN])
{
	int64_t row;

	return pg_device_row(tx, id, hash, &row);
}

static int device_checked_in(struct store_tx *tx, const char *id, const char *os, int64_t at)
{
	int64_t row;
	int rc;

	if ((rc = pg_device_row(tx, id, NULL, &row)) < 0)
		return rc;
	return pg_exec(tx->c, &q_device_checked_in,
		       PG_ARGS(PG_INT(row), PG_TEXT(os ? os : ""), PG_INT(at)));
}

struct rows_check {
	const struct device_checkin *c;
	size_t n;
	int *rcs;
	int64_t *rows;
};

static int rows_checked(const PGresult *r, int i, void *arg)
{
	struct rows_check *m = arg;
	uint8_t h[STORE_HASH_LEN];
	const char *uid = pg_text(r, i, 0);

	pg_blob(r, i, 2, h, sizeof(h));
	for (size_t j = 0; j < m->n; j++) {
		const struct device_checkin *c = &m->c[j];

		if (strcmp(c->id, uid))
			continue;
		m->rows[j] = pg_i64(r, i, 1);
		m->rcs[j] = !c->secret_hash ||
			(sodium_memcmp(h, c->secret_hash, STORE_HASH_LEN) == 0 &&
			 !pg_i64(r, i, 3)) ? 0 : KW_ERR_AUTH;
	}
	return 0;
}

static int device_checkin_many(struct store_tx *tx, const struct device_checkin *c, size_t n,
			       int *rcs)
{
	struct rows_check m = { c, n, rcs, calloc(n, sizeof(int64_t)) };
	json_t *ids = json_array(), *recs = json_array();
	char *list = NULL;
	size_t ok = 0;
	int rc = KW_ERR_NOMEM;

	if (!m.rows || !ids || !recs)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* Not found unless its row comes back. */
		rcs[i] = c[i].secret_hash ? KW_ERR_AUTH : KW_ERR_NOT_FOUND;
		if (json_array_append_new(ids, json_string(c[i].id)) < 0)
			goto out;
	}
	if (!(list = json_dumps(ids, JSON_COMPACT)))
		goto out;
	if ((rc = pg_each(tx->c, &q_device_rows_lock, PG_ARGS(PG_TEXT(list)), rows_checked,
			  &m)) < 0)
		goto out;
	json_free_string(list);
	list = NULL;
	rc = KW_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		if (rcs[i] < 0)
			continue;
		if (json_array_append_new(recs, json_pack("{sIsssI}", "id", (json_int_t)m.rows[i],
							  "os", c[i].os ? c[i].os : "",
							  "at", (json_int_t)c[i].at)) < 0)
			goto out;
		ok++;
	}
	rc = 0;
	if (ok) {
		if (!(list = json_dumps(recs, JSON_COMPACT))) {
			rc = KW_ERR_NOMEM;
			goto out;
		}
		rc = pg_exec(tx->c, &q_device_checked_in_many, PG_ARGS(PG_TEXT(list)));
	}
out:
	if (list)
		json_free_string(list);
	json_decref(ids);
	json_decref(recs);
	free(m.rows);
	return rc;
}

static int device_set_revoked(struct store_tx *tx, const char *id, bool revoked)
{
	return pg_change(tx->c, &q_device_revoke, PG_ARGS(PG_TEXT(id), PG_INT(revoked)));
}

static int device_each(struct store_tx *tx, const char *prefix, int64_t limit,
		       store_each_device cb, void *arg)
{
	struct device_cb c = { cb, arg, 0 };
	char *lc = pg_fold(prefix);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	if (limit > 0)
		rc = pg_each(tx->c, &q_device_each_limit, PG_ARGS(PG_TEXT(lc), PG_INT(limit)),
			     device_row, &c);
	else
		rc = pg_stream(tx->c, &q_device_each, PG_ARGS(PG_TEXT(lc)), device_row, &c);
	free(lc);
	return rc;
}

struct dv_cursor {
	char *name_lc;
	int64_t row;
};

static int dv_cursor_row(const PGresult *r, int i, void *arg)
{
	struct dv_cursor *c = arg;

	c->row = pg_i64(r, i, 1);
	return (c->name_lc = strdup(pg_text(r, i, 0))) ? 0 : KW_ERR_NOMEM;
}

/* The page is read whole (it is small) and handed over from the result,
 * which holds every string until it is cleared. */
static int device_each_volumes(struct store_tx *tx, const char *after_id, int64_t limit,
			       store_each_device_volumes cb, void *arg)
{
	struct dv_cursor cur = { NULL, 0 };
	struct device_rec *dev = NULL;
	struct volume_keys_rec *vol = NULL;
	size_t *first = NULL, *nvol = NULL, ndev = 0, nv = 0;
	PGresult *r = NULL;
	int rc = 0, rows;

	if (after_id[0]) {
		rc = pg_one(tx->c, &q_device_cursor, PG_ARGS(PG_TEXT(after_id)), dv_cursor_row,
			    &cur);
		if (rc == KW_ERR_NOT_FOUND)
			return 0;
		if (rc < 0)
			goto out;
	}
	r = pg_query(tx->c, &q_device_each_volumes,
		     PG_ARGS(PG_TEXT(cur.name_lc ? cur.name_lc : ""), PG_INT(cur.row),
			     PG_INT(limit)), &rc);
	if (!r)
		goto out;
	rows = PQntuples(r);
	if (!rows)
		goto out;
	dev = calloc((size_t)rows, sizeof(*dev));
	vol = calloc((size_t)rows, sizeof(*vol));
	first = calloc((size_t)rows, sizeof(*first));
	nvol = calloc((size_t)rows, sizeof(*nvol));
	if (!dev || !vol || !first || !nvol) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		if (!ndev || pg_i64(r, i, 7) != pg_i64(r, i - 1, 7)) {
			pg_device_fill(r, i, 0, &dev[ndev]);
			first[ndev] = nv;
			ndev++;
		}
		if (PQgetisnull(r, i, 8))
			continue;
		pg_volume_fill(r, i, 8, &vol[nv].volume);
		memcpy(vol[nv].volume.device_id, dev[ndev - 1].id, sizeof(dev[0].id));
		vol[nv].key_states = (unsigned)pg_i64(r, i, 17);
		nv++;
		nvol[ndev - 1]++;
	}
	for (size_t i = 0; rc == 0 && i < ndev; i++) {
		struct device_volumes_rec d = { &dev[i], vol + first[i], nvol[i] };

		rc = cb(&d, arg);
	}
out:
	PQclear(r);
	free(dev);
	free(vol);
	free(first);
	free(nvol);
	free(cur.name_lc);
	return rc;
}

/* ---- volumes ---- */

static int volume_id(const PGresult *r, int i, void *arg)
{
	*(int64_t *)arg = pg_i64(r, i, 0);
	return 0;
}

struct volume_same {
	const struct volume_rec *v;
	int64_t row;
	bool same;
};

static int volume_found(const PGresult *r, int i, void *arg)
{
	struct volume_same *m = arg;
	const struct volume_rec *v = m->v;

	m->row = pg_i64(r, i, 0);
	m->same = !strcmp(pg_text(r, i, 1), v->mount) && !strcmp(pg_text(r, i, 2), v->type) &&
		  !strcmp(pg_text(r, i, 3), v->protection) &&
		  !strcmp(pg_text(r, i, 4), v->encryption) && pg_i64(r, i, 5) == v->percent;
	return 0;
}

static int volume_upsert(struct store_tx *tx, const struct volume_rec *v, int64_t *row)
{
	struct volume_same m = { v, 0, false };
	int64_t dev;
	int rc;

	if ((rc = pg_device_row(tx, v->device_id, NULL, &dev)) < 0)
		return rc;
	rc = pg_one(tx->c, &q_volume_get, PG_ARGS(PG_INT(dev), PG_TEXT(v->guid)),
		    volume_found, &m);
	if (rc == 0) {
		*row = m.row;
		tx->vol_row = m.row;
		tx->vol_dev = dev;
		if (m.same)
			return 0;  /* a repeated check-in changes nothing */
		return pg_exec(tx->c, &q_volume_update,
			       PG_ARGS(PG_INT(m.row), PG_TEXT(v->mount), PG_TEXT(v->type),
				       PG_TEXT(v->protection), PG_TEXT(v->encryption),
				       PG_INT(v->percent), PG_INT(v->last_seen)));
	}
	if (rc != KW_ERR_NOT_FOUND)
		return rc;
	rc = pg_one(tx->c, &q_volume_insert,
		    PG_ARGS(PG_INT(dev), PG_TEXT(v->guid), PG_TEXT(v->mount),
			    PG_TEXT(v->type), PG_TEXT(v->protection), PG_TEXT(v->encryption),
			    PG_INT(v->percent), PG_INT(v->first_seen)), volume_id, row);
	if (rc == 0) {
		tx->vol_row = *row;
		tx->vol_dev = dev;
	}
	/* No row: another instance inserted it meanwhile; run again. */
	return rc == KW_ERR_NOT_FOUND ? KW_ERR_RETRY : rc;
}

static int cmp_volume(const void *a, const void *b)
{
	const struct volume_rec *x = *(const struct volume_rec *const *)a;
	const struct volume_rec *y = *(const struct volume_rec *const *)b;
	int c = strcmp(x->device_id, y->device_id);

	return c ? c : strcmp(x->guid, y->guid);
}

struct volume_rows {
	int64_t *rows;
	size_t n, got;
	bool missing_device, missing_row;
};

static int volume_upserted(const PGresult *r, int i, void *arg)
{
	struct volume_rows *m = arg;

	if (m->got >= m->n)
		return KW_ERR_STORE;
	m->rows[m->got] = pg_i64(r, i, 0);
	if (pg_i64(r, i, 1))
		m->missing_device = true;
	else if (!m->rows[m->got])
		m->missing_row = true;
	m->got++;
	return 0;
}

/* volume_upsert_many's n volumes in one statement; 1 when one volume
 * comes twice (then one at a time, each seeing the one before). */
static int volume_upsert_set(struct store_tx *tx, const struct volume_rec *v, size_t n,
			     int64_t *rows)
{
	struct volume_rows m = { rows, n, 0, false, false };
	const struct volume_rec **by = calloc(n, sizeof(*by));
	json_t *recs = json_array();
	char *list = NULL;
	int rc = KW_ERR_NOMEM;

	if (!by || !recs)
		goto out;
	for (size_t i = 0; i < n; i++)
		by[i] = &v[i];
	qsort(by, n, sizeof(*by), cmp_volume);
	for (size_t i = 1; i < n; i++)
		if (!cmp_volume(&by[i], &by[i - 1])) {
			rc = 1;
			goto out;
		}
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(recs, json_pack(
			"{sIsssssssssssssIsIsI}", "ord", (json_int_t)i,
			"device", v[i].device_id, "guid", v[i].guid,
			"mount", v[i].mount, "type", v[i].type, "protection", v[i].protection,
			"encryption", v[i].encryption, "percent", (json_int_t)v[i].percent,
			"first_seen", (json_int_t)v[i].first_seen,
			"last_seen", (json_int_t)v[i].last_seen)) < 0)
			goto out;
	if (!(list = json_dumps(recs, JSON_COMPACT)))
		goto out;
	if ((rc = pg_each(tx->c, &q_volume_upsert_many, PG_ARGS(PG_TEXT(list)),
			  volume_upserted, &m)) < 0)
		goto out;
	if (m.got != n)
		rc = KW_ERR_STORE;
	else if (m.missing_device)
		rc = KW_ERR_NOT_FOUND;
	else if (m.missing_row)
		rc = KW_ERR_RETRY;   /* inserted by another instance meanwhile */
out:
	if (list)
		json_free_string(list);
	json_decref(recs);
	free(by);
	return rc;
}

static int volume_upsert_many(struct store_tx *tx, const struct volume_rec *v, size_t n,
			      int64_t *rows)
{
	int64_t dev;
	int rc;

	if (n > 1 && (rc = volume_upsert_set(tx, v, n, rows)) <= 0)
		return rc;

	/* Every device first: past them only a failure of the database can
	 * stop the batch, and that fails the transaction. */
	for (size_t i = 0; i < n; i++)
		if ((rc = pg_device_row(tx, v[i].device_id, NULL, &dev)) < 0)
			return rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = volume_upsert(tx, &v[i], &rows[i])) < 0)
			return rc;
	return 0;
}

struct volume_cb {
	const char *device_id;
	store_each_volume cb;
	void *arg;
};

static int volume_row(const PGresult *r, int i, void *arg)
{
	struct volume_cb *c = arg;
	struct volume_rec v;

	memset(&v, 0, sizeof(v));
	pg_volume_fill(r, i, 0, &v);
	snprintf(v.device_id, sizeof(v.device_id), "%s", c->device_id);
	return c->cb(&v, c->arg);
}

static int volume_each(struct store_tx *tx, const char *device_id, store_each_volume cb,
		       void *arg)
{
	struct volume_cb c = { device_id, cb, arg };

	return pg_each(tx->c, &q_volume_each, PG_ARGS(PG_TEXT(device_id)), volume_row, &c);
}

void pg_device_ops(struct store_ops *o)
{
	o->device_insert = device_insert;
	o->device_get = device_get;
	o->device_by_secret = device_by_secret;
	o->device_check_secret = device_check_secret;
	o->device_checked_in = device_checked_in;
	o->device_checkin_many = device_checkin_many;
	o->device_set_revoked = device_set_revoked;
	o->device_each = device_each;
	o->device_each_volumes = device_each_volumes;
	o->volume_upsert = volume_upsert;
	o->volume_upsert_many = volume_upsert_many;
	o->volume_each = volume_each;
}
