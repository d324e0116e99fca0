/* Copying a whole store (store.h, "copying a whole store"): every record
 * as it is stored, and inserts that keep rows, IDs and hashes. */
#include <stdio.h>
#include <string.h>

#include "core/keyid.h"
#include "store/sqlite/internal.h"
#include "util/err.h"

static const struct sq_query q_count = { SQ_COPY_COUNT,
	"SELECT (SELECT count(*) FROM meta), (SELECT count(*) FROM users), "
	"(SELECT count(*) FROM enrollment_tokens), (SELECT count(*) FROM devices), "
	"(SELECT count(*) FROM volumes), (SELECT count(*) FROM recovery_keys), "
	"(SELECT count(*) FROM logons), (SELECT count(*) FROM associations), "
	"(SELECT count(*) FROM audit), (SELECT count(*) FROM sessions), "
	"(SELECT count(*) FROM limit_events)" };
static const struct sq_query q_meta_each = { SQ_COPY_META_EACH,
	"SELECT name, value FROM meta ORDER BY name" };
static const struct sq_query q_device_page = { SQ_COPY_DEVICE_PAGE,
	"SELECT d.id, " DEVICE_COLS ", d.secret_hash FROM devices d WHERE d.id > ?1 "
	"ORDER BY d.id LIMIT ?2" };
static const struct sq_query q_device_insert = { SQ_COPY_DEVICE_INSERT,
	"INSERT INTO devices (id, uid, name, name_lc, domain, os, secret_hash, created_at, "
	"last_checkin_at, revoked) VALUES (?1, ?2, ?3, fold(?3), ?4, ?5, ?6, ?7, ?8, ?9)" };
static const struct sq_query q_volume_page = { SQ_COPY_VOLUME_PAGE,
	"SELECT " VOLUME_COLS ", d.uid FROM volumes v JOIN devices d ON d.id = v.device "
	"WHERE v.id > ?1 ORDER BY v.id LIMIT ?2" };
/* The device by its public ID: no row inserted when there is none. */
static const struct sq_query q_volume_insert = { SQ_COPY_VOLUME_INSERT,
	"INSERT INTO volumes (id, device, guid, mount, type, protection, encryption, "
	"percent, first_seen, last_seen) SELECT ?1, d.id, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 "
	"FROM devices d WHERE d.uid = ?2" };
/* The volume, which must be the device's: no row inserted otherwise. */
static const struct sq_query q_key_insert = { SQ_COPY_KEY_INSERT,
	"INSERT INTO recovery_keys (id, key_hex, device, volume, state, sealed, created_at, "
	"changed_at, disclosed_at, origin) SELECT ?1, ?2, v.device, v.id, ?4, ?5, ?6, ?7, "
	"?8, ?9 FROM volumes v JOIN devices d ON d.id = v.device "
	"WHERE v.id = ?3 AND d.uid = ?10" };
static const struct sq_query q_token_insert = { SQ_COPY_TOKEN_INSERT,
	"INSERT INTO enrollment_tokens (id, token_hash, created_at, expires_at, uses_left, "
	"used, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)" };
static const struct sq_query q_user_insert = { SQ_COPY_USER_INSERT,
	"INSERT INTO users (id, name, name_lc, password_hash, roles, disabled, created_at) "
	"VALUES (?1, ?2, fold(?2), ?3, ?4, ?5, ?6)" };
/* As audit.c's insert: the search file (find.c) takes the records from
 * the table after the commit. */
static const struct sq_query q_audit_insert = { SQ_COPY_AUDIT_INSERT,
	"INSERT INTO audit (seq, at, source, result, actor, end_user, computer, device_id, "
	"key_id, key_type, reason, comment, client, prev_hash, hash) VALUES "
	"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)" };

static int count_row(sqlite3_stmt *st, void *arg)
{
	struct store_counts *c = arg;
	int64_t *v[] = { &c->meta, &c->users, &c->tokens, &c->devices, &c->volumes, &c->keys,
			 &c->logons, &c->assocs, &c->audit, &c->sessions, &c->limit_events };

	for (int i = 0; i < (int)(sizeof(v) / sizeof(v[0])); i++)
		*v[i] = sqlite3_column_int64(st, i);
	return 0;
}

static int count_all(struct store_tx *tx, struct store_counts *out)
{
	return sq_one(tx->c, &q_count, SQ_NOARGS, count_row, out);
}

struct meta_cb {
	store_each_meta cb;
	void *arg;
};

static int meta_row(sqlite3_stmt *st, void *arg)
{
	struct meta_cb *c = arg;

	return c->cb(sq_text(st, 0), sq_text(st, 1), c->arg);
}

static int meta_each(struct store_tx *tx, store_each_meta cb, void *arg)
{
	struct meta_cb c = { cb, arg };

	return sq_each(tx->c, &q_meta_each, SQ_NOARGS, meta_row, &c);
}

struct device_cb {
	store_each_device_copy cb;
	void *arg;
};

static int device_row(sqlite3_stmt *st, void *arg)
{
	struct device_cb *c = arg;
	struct device_copy_rec d;

	memset(&d, 0, sizeof(d));
	d.row = sqlite3_column_int64(st, 0);
	sq_device_fill(st, 1, &d.device);
	sq_blob(st, 8, d.secret_hash, sizeof(d.secret_hash));
	return c->cb(&d, c->arg);
}

static int device_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			    store_each_device_copy cb, void *arg)
{
	struct device_cb c = { cb, arg };

	return sq_each(tx->c, &q_device_page, SQ_ARGS(SQ_INT(after_row), SQ_INT(limit)),
		       device_row, &c);
}

static int device_copy_many(struct store_tx *tx, const struct device_copy_rec *d, size_t n)
{
	int rc;

	if ((rc = sq_batch_begin(tx->c)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct device_rec *r = &d[i].device;

		rc = sq_exec(tx->c, &q_device_insert,
			     SQ_ARGS(SQ_INT(d[i].row), SQ_TEXT(r->id), SQ_TEXT(r->name),
				     SQ_TEXT(r->domain), SQ_TEXT(r->os),
				     SQ_BLOB(d[i].secret_hash, STORE_HASH_LEN),
				     SQ_INT(r->created_at), SQ_INT(r->last_checkin_at),
				     SQ_INT(r->revoked)));
	}
	tx->dev_uid[0] = '\0';
	return sq_batch_end(tx->c, rc);
}

struct volume_cb {
	store_each_volume cb;
	void *arg;
};

static int volume_row(sqlite3_stmt *st, void *arg)
{
	struct volume_cb *c = arg;
	struct volume_rec v;

	memset(&v, 0, sizeof(v));
	sq_volume_fill(st, 0, &v);
	sq_copy(st, 9, v.device_id, sizeof(v.device_id));
	return c->cb(&v, c->arg);
}

static int volume_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			    store_each_volume cb, void *arg)
{
	struct volume_cb c = { cb, arg };

	return sq_each(tx->c, &q_volume_page, SQ_ARGS(SQ_INT(after_row), SQ_INT(limit)),
		       volume_row, &c);
}

static int volume_copy_many(struct store_tx *tx, const struct volume_rec *v, size_t n)
{
	int rc;

	if ((rc = sq_batch_begin(tx->c)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = sq_change(tx->c, &q_volume_insert,
			       SQ_ARGS(SQ_INT(v[i].row), SQ_TEXT(v[i].device_id),
				       SQ_TEXT(v[i].guid), SQ_TEXT(v[i].mount),
				       SQ_TEXT(v[i].type), SQ_TEXT(v[i].protection),
				       SQ_TEXT(v[i].encryption), SQ_INT(v[i].percent),
				       SQ_INT(v[i].first_seen), SQ_INT(v[i].last_seen)));
	return sq_batch_end(tx->c, rc);
}

static int key_copy_many(struct store_tx *tx, const struct key_rec *k, size_t n)
{
	char hex[KEYID_HEX_LEN + 1];
	int rc;

	if ((rc = sq_batch_begin(tx->c)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		keyid_to_hex(k[i].key_id, hex);
		rc = sq_change(tx->c, &q_key_insert,
			       SQ_ARGS(SQ_INT(k[i].row), SQ_TEXT(hex), SQ_INT(k[i].volume_row),
				       SQ_INT(k[i].state), SQ_BLOB(k[i].sealed, k[i].sealed_len),
				       SQ_INT(k[i].created_at), SQ_INT(k[i].changed_at),
				       SQ_INT(k[i].disclosed_at), SQ_TEXT(k[i].origin),
				       SQ_TEXT(k[i].device_id)));
	}
	return sq_batch_end(tx->c, rc);
}

static int token_copy(struct store_tx *tx, const struct token_rec *t)
{
	return sq_exec(tx->c, &q_token_insert,
		       SQ_ARGS(SQ_INT(t->id), SQ_BLOB(t->hash, STORE_HASH_LEN),
			       SQ_INT(t->created_at), SQ_INT(t->expires_at),
			       SQ_INT(t->uses_left), SQ_INT(t->used), SQ_INT(t->revoked)));
}

static int user_copy(struct store_tx *tx, const struct user_rec *u)
{
	return sq_exec(tx->c, &q_user_insert,
		       SQ_ARGS(SQ_INT(u->id), SQ_TEXT(u->name), SQ_TEXT(u->password_hash),
			       SQ_INT(u->roles), SQ_INT(u->disabled), SQ_INT(u->created_at)));
}

static int audit_copy_many(struct store_tx *tx, const struct audit_rec *r, size_t n)
{
	int rc;

	if ((rc = sq_batch_begin(tx->c)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = sq_exec(tx->c, &q_audit_insert,
			     SQ_ARGS(SQ_INT(r[i].seq), SQ_INT(r[i].at), SQ_TEXT(r[i].source),
				     SQ_TEXT(r[i].result), SQ_TEXT(r[i].actor),
				     SQ_TEXT(r[i].end_user), SQ_TEXT(r[i].computer),
				     SQ_TEXT(r[i].device_id), SQ_TEXT(r[i].key_id),
				     SQ_TEXT(r[i].key_type), SQ_TEXT(r[i].reason),
				     SQ_TEXT(r[i].comment), SQ_TEXT(r[i].client),
				     SQ_BLOB(r[i].prev_hash, 32), SQ_BLOB(r[i].hash, 32)));
	rc = sq_batch_end(tx->c, rc);
	if (rc == 0)
		tx->s->audit_new = true;   /* the search file catches up */
	return rc;
}

void sq_copy_ops(struct store_ops *o)
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
