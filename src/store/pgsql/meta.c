/* Operations on small named values (meta) and enrollment tokens. */
#include <stdio.h>
#include <string.h>

#include "store/pgsql/internal.h"
#include "util/err.h"

static const struct pg_query q_meta_get = {
	"SELECT value FROM meta WHERE name = $1::text" };
/* In a write the value read holds until the commit: a write that seals
 * with the master key it names keeps another instance's rekey, which
 * changes it first, waiting (core/keyfile.h keyfile_check_tx). */
static const struct pg_query q_meta_get_share = {
	"SELECT value FROM meta WHERE name = $1::text FOR SHARE" };
static const struct pg_query q_meta_set = {
	"INSERT INTO meta (name, value) VALUES ($1::text, $2::text) "
	"ON CONFLICT (name) DO UPDATE SET value = excluded.value" };

#define TOKEN_COLS "id, token_hash, created_at, expires_at, uses_left, used, revoked"

static const struct pg_query q_token_insert = {
	"INSERT INTO enrollment_tokens (token_hash, created_at, expires_at, uses_left) "
	"VALUES ($1::bytea, $2::bigint, $3::bigint, $4::bigint) "
	"ON CONFLICT DO NOTHING RETURNING id" };
static const struct pg_query q_token_get = {
	"SELECT " TOKEN_COLS " FROM enrollment_tokens WHERE token_hash = $1::bytea" };
/* In a write, the token's row is locked as it is read: of concurrent
 * registrations each reads the uses the one before it left. */
static const struct pg_query q_token_get_lock = {
	"SELECT " TOKEN_COLS " FROM enrollment_tokens WHERE token_hash = $1::bytea "
	"FOR NO KEY UPDATE" };
static const struct pg_query q_token_use = {
	"UPDATE enrollment_tokens SET used = used + 1, uses_left = "
	"CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END WHERE id = $1::bigint" };
static const struct pg_query q_token_revoke = {
	"UPDATE enrollment_tokens SET revoked = 1 WHERE id = $1::bigint" };
static const struct pg_query q_token_each = {
	"SELECT " TOKEN_COLS " FROM enrollment_tokens ORDER BY id" };

struct text_out {
	char *out;
	size_t outlen;
};

static int text_row(const PGresult *r, int i, void *arg)
{
	struct text_out *t = arg;

	pg_copy(r, i, 0, t->out, t->outlen);
	return 0;
}

static int meta_get(struct store_tx *tx, const char *name, char *out, size_t outlen)
{
	struct text_out t = { out, outlen };

	return pg_one(tx->c, tx->write ? &q_meta_get_share : &q_meta_get,
		      PG_ARGS(PG_TEXT(name)), text_row, &t);
}

static int meta_set(struct store_tx *tx, const char *name, const char *value)
{
	return pg_exec(tx->c, &q_meta_set, PG_ARGS(PG_TEXT(name), PG_TEXT(value)));
}

/* ---- enrollment tokens ---- */

static void token_fill(const PGresult *r, int i, struct token_rec *t)
{
	memset(t, 0, sizeof(*t));
	t->id = pg_i64(r, i, 0);
	pg_blob(r, i, 1, t->hash, STORE_HASH_LEN);
	t->created_at = pg_i64(r, i, 2);
	t->expires_at = pg_i64(r, i, 3);
	t->uses_left = pg_i64(r, i, 4);
	t->used = pg_i64(r, i, 5);
	t->revoked = pg_i64(r, i, 6) != 0;
}

static int id_row(const PGresult *r, int i, void *arg)
{
	*(int64_t *)arg = pg_i64(r, i, 0);
	return 0;
}

static int token_insert(struct store_tx *tx, const struct token_rec *t, int64_t *id)
{
	int64_t got = 0;
	int rc = pg_one(tx->c, &q_token_insert,
			PG_ARGS(PG_BLOB(t->hash, STORE_HASH_LEN), PG_INT(t->created_at),
				PG_INT(t->expires_at), PG_INT(t->uses_left)), id_row, &got);

	if (rc == KW_ERR_NOT_FOUND)
		return KW_ERR_EXISTS;
	if (rc == 0 && id)
		*id = got;
	return rc;
}

static int token_copy(const PGresult *r, int i, void *arg)
{
	token_fill(r, i, arg);
	return 0;
}

static int token_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		     struct token_rec *out)
{
	return pg_one(tx->c, tx->write ? &q_token_get_lock : &q_token_get,
		      PG_ARGS(PG_BLOB(hash, STORE_HASH_LEN)), token_copy, out);
}

static int token_use(struct store_tx *tx, int64_t id)
{
	return pg_change(tx->c, &q_token_use, PG_ARGS(PG_INT(id)));
}

static int token_revoke(struct store_tx *tx, int64_t id)
{
	return pg_change(tx->c, &q_token_revoke, PG_ARGS(PG_INT(id)));
}

struct token_cb {
	store_each_token cb;
	void *arg;
};

static int token_row(const PGresult *r, int i, void *arg)
{
	struct token_cb *c = arg;
	struct token_rec t;

	token_fill(r, i, &t);
	return c->cb(&t, c->arg);
}

static int token_each(struct store_tx *tx, store_each_token cb, void *arg)
{
	struct token_cb c = { cb, arg };

	return pg_each(tx->c, &q_token_each, PG_NOARGS, token_row, &c);
}

void pg_meta_ops(struct store_ops *o)
{
	o->meta_get = meta_get;
	o->meta_set = meta_set;
	o->token_insert = token_insert;
	o->token_get = token_get;
	o->token_use = token_use;
	o->token_revoke = token_revoke;
	o->token_each = token_each;
}
