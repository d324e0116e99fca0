/* Operations on devices and their volumes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/str.h"

static const struct sq_query q_device_insert = { SQ_DEVICE_INSERT,
	"INSERT INTO devices (uid, name, name_lc, domain, os, secret_hash, created_at) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)" };
static const struct sq_query q_device_get = { SQ_DEVICE_GET,
	"SELECT " DEVICE_COLS " FROM devices d WHERE d.uid = ?1" };
static const struct sq_query q_device_by_secret = { SQ_DEVICE_BY_SECRET,
	"SELECT " DEVICE_COLS " FROM devices d WHERE d.secret_hash = ?1" };
static const struct sq_query q_device_row = { SQ_DEVICE_ROW,
	"SELECT id, secret_hash, revoked FROM devices WHERE uid = ?1" };
/* A device checking in again within the second writes nothing. */
static const struct sq_query q_device_checked_in = { SQ_DEVICE_CHECKED_IN,
	"UPDATE devices SET os = ?2, last_checkin_at = ?3 "
	"WHERE id = ?1 AND (os IS NOT ?2 OR last_checkin_at IS NOT ?3)" };
static const struct sq_query q_device_revoke = { SQ_DEVICE_REVOKE,
	"UPDATE devices SET revoked = ?2 WHERE uid = ?1" };
/* name_lc >= prefix AND < prefix || U+10FFFF keeps the index usable. */
static const struct sq_query q_device_each = { SQ_DEVICE_EACH,
	"SELECT " DEVICE_COLS " FROM devices d WHERE d.name_lc >= ?1 "
	"AND d.name_lc < ?1 || char(1114111) ORDER BY d.name_lc, d.id" };
static const struct sq_query q_device_each_limit = { SQ_DEVICE_EACH_LIMIT,
	"SELECT " DEVICE_COLS " FROM devices d WHERE d.name_lc >= ?1 "
	"AND d.name_lc < ?1 || char(1114111) ORDER BY d.name_lc, d.id LIMIT ?2" };

/* A page of devices by (name_lc, id) after the cursor's, each with its
 * volumes and the states of their keys (a bit each, summed distinct: an
 * OR). The page is chosen first through devices_name, so its work does not
 * grow with the devices before it; volumes come through (device, guid) and
 * keys through recovery_keys_volume. */
static const struct sq_query q_device_cursor = { SQ_DEVICE_CURSOR,
	"SELECT name_lc, id FROM devices WHERE uid = ?1" };
static const struct sq_query q_device_each_volumes = { SQ_DEVICE_EACH_VOLUMES,
	"SELECT " DEVICE_COLS ", d.id, " VOLUME_COLS ", "
	"(SELECT coalesce(sum(DISTINCT 1 << k.state), 0) FROM recovery_keys k "
	"WHERE k.volume = v.id) "
	"FROM (SELECT * FROM devices WHERE name_lc >= ?1 AND (name_lc > ?1 OR id > ?2) "
	"ORDER BY name_lc, id LIMIT ?3) d LEFT JOIN volumes v ON v.device = d.id "
	"ORDER BY d.name_lc, d.id, v.mount, v.guid" };

static const struct sq_query q_volume_get = { SQ_VOLUME_GET,
	"SELECT id, mount, type, protection, encryption, percent "
	"FROM volumes WHERE device = ?1 AND guid = ?2" };
static const struct sq_query q_volume_insert = { SQ_VOLUME_INSERT,
	"INSERT INTO volumes (device, guid, mount, type, protection, encryption, percent, "
	"first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)" };
static const struct sq_query q_volume_update = { SQ_VOLUME_UPDATE,
	"UPDATE volumes SET mount = ?2, type = ?3, protection = ?4, "
	"encryption = ?5, percent = ?6, last_seen = ?7 WHERE id = ?1" };
static const struct sq_query q_volume_each = { SQ_VOLUME_EACH,
	"SELECT " VOLUME_COLS " FROM volumes v JOIN devices d ON "
	"d.id = v.device WHERE d.uid = ?1 ORDER BY v.mount, v.guid" };

void sq_device_fill(sqlite3_stmt *st, int i, struct device_rec *d)
{
	sq_copy(st, i, d->id, sizeof(d->id));
	d->name = sq_text(st, i + 1);
	d->domain = sq_text(st, i + 2);
	d->os = sq_text(st, i + 3);
	d->created_at = sqlite3_column_int64(st, i + 4);
	d->last_checkin_at = sqlite3_column_int64(st, i + 5);
	d->revoked = sqlite3_column_int(st, i + 6) != 0;
}

void sq_volume_fill(sqlite3_stmt *st, int i, struct volume_rec *v)
{
	v->row = sqlite3_column_int64(st, i);
	sq_copy(st, i + 1, v->guid, sizeof(v->guid));
	v->mount = sq_text(st, i + 2);
	v->type = sq_text(st, i + 3);
	v->protection = sq_text(st, i + 4);
	v->encryption = sq_text(st, i + 5);
	v->percent = sqlite3_column_int(st, i + 6);
	v->first_seen = sqlite3_column_int64(st, i + 7);
	v->last_seen = sqlite3_column_int64(st, i + 8);
}

struct device_cb {
	store_each_device cb;
	void *arg;
};

static int device_row(sqlite3_stmt *st, void *arg)
{
	struct device_cb *c = arg;
	struct device_rec d;

	sq_device_fill(st, 0, &d);
	return c->cb(&d, c->arg);
}

static int device_insert(struct store_tx *tx, const struct device_rec *d,
			 const uint8_t secret_hash[STORE_HASH_LEN])
{
	char *lc = str_lower_dup(d->name);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = sq_exec(tx->c, &q_device_insert,
		     SQ_ARGS(SQ_TEXT(d->id), SQ_TEXT(d->name), SQ_TEXT(lc),
			     SQ_TEXT(d->domain ? d->domain : ""), SQ_TEXT(d->os ? d->os : ""),
			     SQ_BLOB(secret_hash, STORE_HASH_LEN), SQ_INT(d->created_at)));
	free(lc);
	return rc;
}

static int device_get(struct store_tx *tx, const char *id, store_each_device cb, void *arg)
{
	struct device_cb c = { cb, arg };

	return sq_one(tx->c, &q_device_get, SQ_ARGS(SQ_TEXT(id)), device_row, &c);
}

static int device_by_secret(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			    store_each_device cb, void *arg)
{
	struct device_cb c = { cb, arg };

	return sq_one(tx->c, &q_device_by_secret, SQ_ARGS(SQ_BLOB(hash, STORE_HASH_LEN)),
		      device_row, &c);
}

struct row_check {
	const uint8_t *hash;
	int64_t row;
	bool ok;
};

static int row_checked(sqlite3_stmt *st, void *arg)
{
	struct row_check *r = arg;
	const void *h = sqlite3_column_blob(st, 1);

	r->ok = !r->hash || (sqlite3_column_bytes(st, 1) == STORE_HASH_LEN && h &&
			     sodium_memcmp(h, r->hash, STORE_HASH_LEN) == 0 &&
			     !sqlite3_column_int(st, 2));
	r->row = sqlite3_column_int64(st, 0);
	return 0;
}

int sq_device_row(struct store_tx *tx, const char *uid, const uint8_t *hash, int64_t *row)
{
	struct row_check r = { hash, 0, false };
	int rc;

	if (!hash && tx->dev_uid[0] && !strcmp(tx->dev_uid, uid)) {
		*row = tx->dev_row;
		return 0;
	}
	rc = sq_one(tx->c, &q_device_row, SQ_ARGS(SQ_TEXT(uid)), row_checked, &r);
	if (rc == KW_ERR_NOT_FOUND && hash)
		return KW_ERR_AUTH;
	if (rc < 0)
		return rc;
	if (!r.ok)
		return KW_ERR_AUTH;
	*row = r.row;
	snprintf(tx->dev_uid, sizeof(tx->dev_uid), "%s", uid);
	tx->dev_row = r.row;
	return 0;
}

static int device_check_secret(struct store_tx *tx, const char *id,
			       const uint8_t hash[STORE_HASH_LEN])
{
	int64_t row;

	return sq_device_row(tx, id, hash, &row);
}

static int device_checked_in(struct store_tx *tx, const char *id, const char *os, int64_t at)
{
	int64_t row;
	int rc;

	if ((rc = sq_device_row(tx, id, NULL, &row)) < 0)
		return rc;
	return sq_exec(tx->c, &q_device_checked_in,
		       SQ_ARGS(SQ_INT(row), SQ_TEXT(os ? os : ""), SQ_INT(at)));
}

static int device_checkin_many(struct store_tx *tx, const struct device_checkin *c, size_t n,
			       int *rcs)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		rcs[i] = c[i].secret_hash ? device_check_secret(tx, c[i].id, c[i].secret_hash) : 0;
		if (rcs[i] == 0)
			rcs[i] = device_checked_in(tx, c[i].id, c[i].os, c[i].at);
		/* A failure of the store is the batch's, not the device's. */
		if (rcs[i] < 0 && rcs[i] != KW_ERR_AUTH && rcs[i] != KW_ERR_NOT_FOUND) {
			rc = rcs[i];
			return rc;
		}
	}
	return 0;
}

static int device_set_revoked(struct store_tx *tx, const char *id, bool revoked)
{
	return sq_change(tx->c, &q_device_revoke, SQ_ARGS(SQ_TEXT(id), SQ_INT(revoked)));
}

static int device_each(struct store_tx *tx, const char *prefix, int64_t limit,
		       store_each_device cb, void *arg)
{
	struct device_cb c = { cb, arg };
	char *lc = str_lower_dup(prefix ? prefix : "");
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	if (limit > 0)
		rc = sq_each(tx->c, &q_device_each_limit, SQ_ARGS(SQ_TEXT(lc), SQ_INT(limit)),
			     device_row, &c);
	else
		rc = sq_each(tx->c, &q_device_each, SQ_ARGS(SQ_TEXT(lc)), device_row, &c);
	free(lc);
	return rc;
}

/* A page of store_device_each_volumes, read whole (it is small) before the
 * callback sees any of it: the strings are copies. */
struct dv_page {
	struct device_rec *dev;
	char **strs;                 /* every copy, freed at the end */
	size_t ndev, nstrs, capdev, capstrs;
	struct volume_keys_rec *vol;
	size_t *first, *nvol;        /* per device: its volumes in vol */
	size_t nv, capv;
	int64_t last_row;
};

static const char *dv_copy(struct dv_page *p, sqlite3_stmt *st, int i, int *rc)
{
	char *s;

	if (p->nstrs == p->capstrs) {
		size_t cap = p->capstrs ? p->capstrs * 2 : 64;
		char **n = realloc(p->strs, cap * sizeof(*n));

		if (!n) {
			*rc = KW_ERR_NOMEM;
			return "";
		}
		p->strs = n;
		p->capstrs = cap;
	}
	if (!(s = strdup(sq_text(st, i)))) {
		*rc = KW_ERR_NOMEM;
		return "";
	}
	p->strs[p->nstrs++] = s;
	return s;
}

static int dv_row(sqlite3_stmt *st, void *arg)
{
	struct dv_page *p = arg;
	int64_t row = sqlite3_column_int64(st, 7);
	int rc = 0;

	if (!p->ndev || row != p->last_row) {
		struct device_rec *d;

		if (p->ndev == p->capdev) {
			size_t cap = p->capdev ? p->capdev * 2 : 32;
			struct device_rec *n = realloc(p->dev, cap * sizeof(*n));
			size_t *f = realloc(p->first, cap * sizeof(*f));

			if (n)
				p->dev = n;
			if (f)
				p->first = f;
			if (!n || !f)
				return KW_ERR_NOMEM;
			if (!(f = realloc(p->nvol, cap * sizeof(*f))))
				return KW_ERR_NOMEM;
			p->nvol = f;
			p->capdev = cap;
		}
		d = &p->dev[p->ndev];
		sq_device_fill(st, 0, d);
		d->name = dv_copy(p, st, 1, &rc);
		d->domain = dv_copy(p, st, 2, &rc);
		d->os = dv_copy(p, st, 3, &rc);
		p->first[p->ndev] = p->nv;
		p->nvol[p->ndev] = 0;
		p->ndev++;
		p->last_row = row;
	}
	if (rc < 0 || sqlite3_column_type(st, 8) == SQLITE_NULL)
		return rc;
	if (p->nv == p->capv) {
		size_t cap = p->capv ? p->capv * 2 : 64;
		struct volume_keys_rec *n = realloc(p->vol, cap * sizeof(*n));

		if (!n)
			return KW_ERR_NOMEM;
		p->vol = n;
		p->capv = cap;
	}
	{
		struct volume_keys_rec *v = &p->vol[p->nv];

		memset(v, 0, sizeof(*v));
		sq_volume_fill(st, 8, &v->volume);
		snprintf(v->volume.device_id, sizeof(v->volume.device_id), "%s",
			 p->dev[p->ndev - 1].id);
		v->volume.mount = dv_copy(p, st, 10, &rc);
		v->volume.type = dv_copy(p, st, 11, &rc);
		v->volume.protection = dv_copy(p, st, 12, &rc);
		v->volume.encryption = dv_copy(p, st, 13, &rc);
		v->key_states = (unsigned)sqlite3_column_int64(st, 17);
		p->nv++;
		p->nvol[p->ndev - 1]++;
	}
	return rc;
}

struct dv_cursor {
	char *name_lc;
	int64_t row;
};

static int dv_cursor_row(sqlite3_stmt *st, void *arg)
{
	struct dv_cursor *c = arg;

	c->row = sqlite3_column_int64(st, 1);
	return (c->name_lc = strdup(sq_text(st, 0))) ? 0 : KW_ERR_NOMEM;
}

static int device_each_volumes(struct store_tx *tx, const char *after_id, int64_t limit,
			       store_each_device_volumes cb, void *arg)
{
	struct dv_cursor cur = { NULL, 0 };
	struct dv_page p;
	int rc;

	memset(&p, 0, sizeof(p));
	if (after_id[0]) {
		rc = sq_one(tx->c, &q_device_cursor, SQ_ARGS(SQ_TEXT(after_id)), dv_cursor_row,
			    &cur);
		if (rc == KW_ERR_NOT_FOUND)
			return 0;
		if (rc < 0)
			goto out;
	}
	rc = sq_each(tx->c, &q_device_each_volumes,
		     SQ_ARGS(SQ_TEXT(cur.name_lc ? cur.name_lc : ""), SQ_INT(cur.row),
			     SQ_INT(limit)), dv_row, &p);
	for (size_t i = 0; rc == 0 && i < p.ndev; i++) {
		struct device_volumes_rec r = { &p.dev[i], p.vol + p.first[i], p.nvol[i] };

		rc = cb(&r, arg);
	}
out:
	for (size_t i = 0; i < p.nstrs; i++)
		free(p.strs[i]);
	free(p.strs);
	free(p.dev);
	free(p.first);
	free(p.nvol);
	free(p.vol);
	free(cur.name_lc);
	return rc;
}

/* ---- volumes ---- */

struct volume_same {
	const struct volume_rec *v;
	int64_t row;
	bool same;
};

static int volume_found(sqlite3_stmt *st, void *arg)
{
	struct volume_same *m = arg;
	const struct volume_rec *v = m->v;

	m->row = sqlite3_column_int64(st, 0);
	m->same = !strcmp(sq_text(st, 1), v->mount) && !strcmp(sq_text(st, 2), v->type) &&
		  !strcmp(sq_text(st, 3), v->protection) &&
		  !strcmp(sq_text(st, 4), v->encryption) &&
		  sqlite3_column_int(st, 5) == v->percent;
	return 0;
}

static int volume_upsert(struct store_tx *tx, const struct volume_rec *v, int64_t *row)
{
	struct volume_same m = { v, 0, false };
	int64_t dev;
	int rc;

	if ((rc = sq_device_row(tx, v->device_id, NULL, &dev)) < 0)
		return rc;
	rc = sq_one(tx->c, &q_volume_get, SQ_ARGS(SQ_INT(dev), SQ_TEXT(v->guid)),
		    volume_found, &m);
	if (rc == 0) {
		*row = m.row;
		if (m.same)
			return 0;  /* a repeated check-in changes nothing */
		return sq_exec(tx->c, &q_volume_update,
			       SQ_ARGS(SQ_INT(m.row), SQ_TEXT(v->mount), SQ_TEXT(v->type),
				       SQ_TEXT(v->protection), SQ_TEXT(v->encryption),
				       SQ_INT(v->percent), SQ_INT(v->last_seen)));
	}
	if (rc != KW_ERR_NOT_FOUND)
		return rc;
	rc = sq_exec(tx->c, &q_volume_insert,
		     SQ_ARGS(SQ_INT(dev), SQ_TEXT(v->guid), SQ_TEXT(v->mount),
			     SQ_TEXT(v->type), SQ_TEXT(v->protection), SQ_TEXT(v->encryption),
			     SQ_INT(v->percent), SQ_INT(v->first_seen)));
	if (rc == 0)
		*row = sq_last_row(tx->c);
	return rc;
}

static int volume_upsert_many(struct store_tx *tx, const struct volume_rec *v, size_t n,
			      int64_t *rows)
{
	int64_t dev;
	int rc;

	/* Every device first: past them only a failure of the database can
	 * stop the batch, and that fails the transaction. */
	for (size_t i = 0; i < n; i++)
		if ((rc = sq_device_row(tx, v[i].device_id, NULL, &dev)) < 0)
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

static int volume_row(sqlite3_stmt *st, void *arg)
{
	struct volume_cb *c = arg;
	struct volume_rec v;

	memset(&v, 0, sizeof(v));
	sq_volume_fill(st, 0, &v);
	snprintf(v.device_id, sizeof(v.device_id), "%s", c->device_id);
	return c->cb(&v, c->arg);
}

static int volume_each(struct store_tx *tx, const char *device_id, store_each_volume cb,
		       void *arg)
{
	struct volume_cb c = { device_id, cb, arg };

	return sq_each(tx->c, &q_volume_each, SQ_ARGS(SQ_TEXT(device_id)), volume_row, &c);
}

void sq_device_ops(struct store_ops *o)
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
