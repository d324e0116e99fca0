/* Copying a whole store (store.h, "copying a whole store"): every record
 * as it is stored, and inserts that keep rows, IDs and hashes. An insert
 * that gives its own ID leaves the table's identity sequence behind, so
 * each batch moves it past the highest row: the rows the other operations
 * assign afterwards are above every row copied. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keyid.h"
#include "store/pgsql/internal.h"
#include "util/err.h"

static const struct pg_query q_count = {
	"SELECT (SELECT count(*) FROM meta), (SELECT count(*) FROM users), "
	"(SELECT count(*) FROM enrollment_tokens), (SELECT count(*) FROM devices), "
	"(SELECT count(*) FROM volumes), (SELECT count(*) FROM recovery_keys), "
	"(SELECT count(*) FROM logons), (SELECT count(*) FROM associations), "
	"(SELECT count(*) FROM audit), (SELECT count(*) FROM sessions), "
	"(SELECT count(*) FROM limit_events)" };
static const struct pg_query q_meta_each = {
	"SELECT name, value FROM meta ORDER BY name" };
static const struct pg_query q_device_page = {
	"SELECT d.id, " PG_DEVICE_COLS ", d.secret_hash FROM devices d WHERE d.id > $1::bigint "
	"ORDER BY d.id LIMIT $2::bigint" };
static const struct pg_query q_device_insert = {
	"INSERT INTO devices (id, uid, name, name_lc, domain, os, secret_hash, created_at, "
	"last_checkin_at, revoked) VALUES ($1::bigint, $2::text, $3::text, $4::text, "
	"$5::text, $6::text, $7::bytea, $8::bigint, $9::bigint, $10::integer) "
	"ON CONFLICT DO NOTHING" };
static const struct pg_query q_volume_page = {
	"SELECT " PG_VOLUME_COLS ", d.uid FROM volumes v JOIN devices d ON d.id = v.device "
	"WHERE v.id > $1::bigint ORDER BY v.id LIMIT $2::bigint" };
/* No row inserted when the device does not exist, or on a conflict. */
static const struct pg_query q_volume_insert = {
	"INSERT INTO volumes (id, device, guid, mount, type, protection, encryption, "
	"percent, first_seen, last_seen) SELECT $1::bigint, d.id, $3::text, $4::text, "
	"$5::text, $6::text, $7::text, $8::integer, $9::bigint, $10::bigint "
	"FROM devices d WHERE d.uid = $2::text ON CONFLICT DO NOTHING" };
static const struct pg_query q_volume_device = {
	"SELECT count(*) FROM devices WHERE uid = $1::text" };
/* No row inserted unless the volume is the device's, or on a conflict. */
static const struct pg_query q_key_insert = {
	"INSERT INTO recovery_keys (id, key_hex, device, volume, state, sealed, created_at, "
	"changed_at, disclosed_at, origin) SELECT $1::bigint, $2::text, v.device, v.id, "
	"$4::integer, $5::bytea, $6::bigint, $7::bigint, $8::bigint, $9::text "
	"FROM volumes v JOIN devices d ON d.id = v.device "
	"WHERE v.id = $3::bigint AND d.uid = $10::text ON CONFLICT DO NOTHING" };
static const struct pg_query q_key_volume = {
	"SELECT count(*) FROM volumes v JOIN devices d ON d.id = v.device "
	"WHERE v.id = $1::bigint AND d.uid = $2::text" };
static const struct pg_query q_token_insert = {
	"INSERT INTO enrollment_tokens (id, token_hash, created_at, expires_at, uses_left, "
	"used, revoked) VALUES ($1::bigint, $2::bytea, $3::bigint, $4::bigint, $5::bigint, "
	"$6::bigint, $7::integer) ON CONFLICT DO NOTHING" };
static const struct pg_query q_user_insert = {
	"INSERT INTO users (id, name, name_lc, password_hash, roles, disabled, created_at) "
	"VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::integer, $6::integer, "
	"$7::bigint) ON CONFLICT DO NOTHING" };
/* With the folded names the report's indexes use (as audit.c appends). */
static const struct pg_query q_audit_insert = {
	"INSERT INTO audit (seq, at, source, result, actor, end_user, computer, device_id, "
	"key_id, key_type, reason, comment, client, prev_hash, hash, actor_lc, end_user_lc, "
	"computer_lc) VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::text, "
	"$7::text, $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, "
	"$14::bytea, $15::bytea, $16::text, $17::text, $18::text) ON CONFLICT DO NOTHING" };

/* An identity sequence moved past the table's highest row. */
#define SEQ_PAST(table) "SELECT setval(pg_get_serial_sequence('" table "', 'id'), " \
	"(SELECT max(id) FROM " table "))"
static const struct pg_query q_seq_devices = { SEQ_PAST("devices") };
static const struct pg_query q_seq_volumes = { SEQ_PAST("volumes") };
static const struct pg_query q_seq_keys = { SEQ_PAST("recovery_keys") };
static const struct pg_query q_seq_tokens = { SEQ_PAST("enrollment_tokens") };
static const struct pg_query q_seq_users = { SEQ_PAST("users") };

static int seq_past(struct store_tx *tx, const struct pg_query *q)
{
	int64_t ignored;

	return pg_int(tx->c, q, PG_NOARGS, &ignored);
}

/* A batch that must be all or nothing: a savepoint around it. */
static int batch_begin(struct store_tx *tx)
{
	return pg_run(tx->c, "SAVEPOINT copy");
}

static int batch_end(struct store_tx *tx, int rc)
{
	if (rc < 0) {
		if (pg_run(tx->c, "ROLLBACK TO SAVEPOINT copy; RELEASE SAVEPOINT copy") < 0)
			return KW_ERR_STORE;
		return rc;
	}
	return pg_run(tx->c, "RELEASE SAVEPOINT copy");
}

static int count_row(const PGresult *r, int i, void *arg)
{
	struct store_counts *c = arg;
	int64_t *v[] = { &c->meta, &c->users, &c->tokens, &c->devices, &c->volumes, &c->keys,
			 &c->logons, &c->assocs, &c->audit, &c->sessions, &c->limit_events };

	for (int col = 0; col < (int)(sizeof(v) / sizeof(v[0])); col++)
		*v[col] = pg_i64(r, i, col);
	return 0;
}

static int count_all(struct store_tx *tx, struct store_counts *out)
{
	return pg_one(tx->c, &q_count, PG_NOARGS, count_row, out);
}

struct meta_cb {
	store_each_meta cb;
	void *arg;
};

static int meta_row(const PGresult *r, int i, void *arg)
{
	struct meta_cb *c = arg;

	return c->cb(pg_text(r, i, 0), pg_text(r, i, 1), c->arg);
}

static int meta_each(struct store_tx *tx, store_each_meta cb, void *arg)
{
	struct meta_cb c = { cb, arg };

	return pg_each(tx->c, &q_meta_each, PG_NOARGS, meta_row, &c);
}

struct device_cb {
	store_each_device_copy cb;
	void *arg;
};

static int device_row(const PGresult *r, int i, void *arg)
{
	struct device_cb *c = arg;
	struct device_copy_rec d;

	memset(&d, 0, sizeof(d));
	d.row = pg_i64(r, i, 0);
	pg_device_fill(r, i, 1, &d.device);
	pg_blob(r, i, 8, d.secret_hash, sizeof(d.secret_hash));
	return c->cb(&d, c->arg);
}

static int device_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			    store_each_device_copy cb, void *arg)
{
	struct device_cb c = { cb, arg };

	return pg_each(tx->c, &q_device_page, PG_ARGS(PG_INT(after_row), PG_INT(limit)),
		       device_row, &c);
}

static int device_copy_many(struct store_tx *tx, const struct device_copy_rec *d, size_t n)
{
	int rc;

	if ((rc = batch_begin(tx)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct device_rec *r = &d[i].device;
		char *lc = pg_fold(r->name);

		if (!lc) {
			rc = KW_ERR_NOMEM;
			break;
		}
		rc = pg_insert(tx->c, &q_device_insert,
			       PG_ARGS(PG_INT(d[i].row), PG_TEXT(r->id), PG_TEXT(r->name),
				       PG_TEXT(lc), PG_TEXT(r->domain), PG_TEXT(r->os),
				       PG_BLOB(d[i].secret_hash, STORE_HASH_LEN),
				       PG_INT(r->created_at), PG_INT(r->last_checkin_at),
				       PG_INT(r->revoked)));
		free(lc);
	}
	if (rc == 0)
		rc = seq_past(tx, &q_seq_devices);
	tx->dev_uid[0] = '\0';
	return batch_end(tx, rc);
}

struct volume_cb {
	store_each_volume cb;
	void *arg;
};

static int volume_row(const PGresult *r, int i, void *arg)
{
	struct volume_cb *c = arg;
	struct volume_rec v;

	memset(&v, 0, sizeof(v));
	pg_volume_fill(r, i, 0, &v);
	pg_copy(r, i, 9, v.device_id, sizeof(v.device_id));
	return c->cb(&v, c->arg);
}

static int volume_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			    store_each_volume cb, void *arg)
{
	struct volume_cb c = { cb, arg };

	return pg_each(tx->c, &q_volume_page, PG_ARGS(PG_INT(after_row), PG_INT(limit)),
		       volume_row, &c);
}

/* No row inserted: KW_ERR_NOT_FOUND when count (of what the insert joined
 * with) is 0, else a conflict, KW_ERR_EXISTS. */
static int why_none(struct store_tx *tx, const struct pg_query *count, const struct pg_arg *a,
		    size_t n)
{
	int64_t found = 0;
	int rc = pg_int(tx->c, count, a, n, &found);

	if (rc < 0)
		return rc;
	return found ? KW_ERR_EXISTS : KW_ERR_NOT_FOUND;
}

static int volume_copy_many(struct store_tx *tx, const struct volume_rec *v, size_t n)
{
	int rc;

	if ((rc = batch_begin(tx)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = pg_insert(tx->c, &q_volume_insert,
			       PG_ARGS(PG_INT(v[i].row), PG_TEXT(v[i].device_id),
				       PG_TEXT(v[i].guid), PG_TEXT(v[i].mount),
				       PG_TEXT(v[i].type), PG_TEXT(v[i].protection),
				       PG_TEXT(v[i].encryption), PG_INT(v[i].percent),
				       PG_INT(v[i].first_seen), PG_INT(v[i].last_seen)));
		if (rc == KW_ERR_EXISTS)
			rc = why_none(tx, &q_volume_device, PG_ARGS(PG_TEXT(v[i].device_id)));
	}
	if (rc == 0)
		rc = seq_past(tx, &q_seq_volumes);
	tx->vol_row = 0;
	return batch_end(tx, rc);
}

static int key_copy_many(struct store_tx *tx, const struct key_rec *k, size_t n)
{
	char hex[KEYID_HEX_LEN + 1];
	int rc;

	if ((rc = batch_begin(tx)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		keyid_to_hex(k[i].key_id, hex);
		rc = pg_insert(tx->c, &q_key_insert,
			       PG_ARGS(PG_INT(k[i].row), PG_TEXT(hex), PG_INT(k[i].volume_row),
				       PG_INT(k[i].state), PG_BLOB(k[i].sealed, k[i].sealed_len),
				       PG_INT(k[i].created_at), PG_INT(k[i].changed_at),
				       PG_INT(k[i].disclosed_at), PG_TEXT(k[i].origin),
				       PG_TEXT(k[i].device_id)));
		if (rc == KW_ERR_EXISTS)
			rc = why_none(tx, &q_key_volume,
				      PG_ARGS(PG_INT(k[i].volume_row), PG_TEXT(k[i].device_id)));
	}
	if (rc == 0)
		rc = seq_past(tx, &q_seq_keys);
	return batch_end(tx, rc);
}

static int token_copy(struct store_tx *tx, const struct token_rec *t)
{
	int rc;

	if ((rc = batch_begin(tx)) < 0)
		return rc;
	rc = pg_insert(tx->c, &q_token_insert,
		       PG_ARGS(PG_INT(t->id), PG_BLOB(t->hash, STORE_HASH_LEN),
			       PG_INT(t->created_at), PG_INT(t->expires_at),
			       PG_INT(t->uses_left), PG_INT(t->used), PG_INT(t->revoked)));
	if (rc == 0)
		rc = seq_past(tx, &q_seq_tokens);
	return batch_end(tx, rc);
}

static int user_copy(struct store_tx *tx, const struct user_rec *u)
{
	char *lc = pg_fold(u->name);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	if ((rc = batch_begin(tx)) == 0) {
		rc = pg_insert(tx->c, &q_user_insert,
			       PG_ARGS(PG_INT(u->id), PG_TEXT(u->name), PG_TEXT(lc),
				       PG_TEXT(u->password_hash), PG_INT(u->roles),
				       PG_INT(u->disabled), PG_INT(u->created_at)));
		if (rc == 0)
			rc = seq_past(tx, &q_seq_users);
		rc = batch_end(tx, rc);
	}
	free(lc);
	return rc;
}

static int audit_copy_many(struct store_tx *tx, const struct audit_rec *r, size_t n)
{
	int rc;

	if ((rc = batch_begin(tx)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *lc[3] = { pg_fold(r[i].actor), pg_fold(r[i].end_user),
				pg_fold(r[i].computer) };

		if (!lc[0] || !lc[1] || !lc[2])
			rc = KW_ERR_NOMEM;
		else
			rc = pg_insert(tx->c, &q_audit_insert,
				       PG_ARGS(PG_INT(r[i].seq), PG_INT(r[i].at),
					       PG_TEXT(r[i].source), PG_TEXT(r[i].result),
					       PG_TEXT(r[i].actor), PG_TEXT(r[i].end_user),
					       PG_TEXT(r[i].computer), PG_TEXT(r[i].device_id),
					       PG_TEXT(r[i].key_id), PG_TEXT(r[i].key_type),
					       PG_TEXT(r[i].reason), PG_TEXT(r[i].comment),
					       PG_TEXT(r[i].client), PG_BLOB(r[i].prev_hash, 32),
					       PG_BLOB(r[i].hash, 32), PG_TEXT(lc[0]),
					       PG_TEXT(lc[1]), PG_TEXT(lc[2])));
		for (int j = 0; j < 3; j++)
			free(lc[j]);
	}
	return batch_end(tx, rc);
}

void pg_copy_ops(struct store_ops *o)
{
	o->count_all = count_all;
	o->meta_each = meta_each;
	o->device_each_page = device_each_page;
	o->device_copy_many = device_copy_many;
	o->volume_each_page = volume_each_page;
	o->volume_copy_many = volume_copy_many;
	o->key_copy_many = key_copy_many;
	o->token_copy = token_copy;
	o->user_copy = user_copy;
	o->audit_copy_many = audit_copy_many;
}
