/* Operations on small named values (meta) and enrollment tokens. */
#include <stdio.h>
#include <string.h>

#include "store/sqlite/internal.h"
#include "util/err.h"

static const struct sq_query q_meta_get = { SQ_META_GET,
	"SELECT value FROM meta WHERE name = ?1" };
static const struct sq_query q_meta_set = { SQ_META_SET,
	"INSERT INTO meta (name, value) VALUES (?1, ?2) "
	"ON CONFLICT (name) DO UPDATE SET value = excluded.value" };

#define TOKEN_COLS "id, token_hash, created_at, expires_at, uses_left, used, revoked"

static const struct sq_query q_token_insert = { SQ_TOKEN_INSERT,
	"INSERT INTO enrollment_tokens (token_hash, created_at, expires_at, uses_left) "
	"VALUES (?1, ?2, ?3, ?4)" };
static const struct sq_query q_token_get = { SQ_TOKEN_GET,
	"SELECT " TOKEN_COLS " FROM enrollment_tokens WHERE token_hash = ?1" };
static const struct sq_query q_token_use = { SQ_TOKEN_USE,
	"UPDATE enrollment_tokens SET used = used + 1, uses_left = "
	"CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END WHERE id = ?1" };
static const struct sq_query q_token_revoke = { SQ_TOKEN_REVOKE,
	"UPDATE enrollment_tokens SET revoked = 1 WHERE id = ?1" };
static const struct sq_query q_token_each = { SQ_TOKEN_EACH,
	"SELECT " TOKEN_COLS " FROM enrollment_tokens ORDER BY id" };

struct text_out {
	char *out;
	size_t outlen;
};

static int text_row(sqlite3_stmt *st, void *arg)
{
	struct text_out *t = arg;

	sq_copy(st, 0, t->out, t->outlen);
	return 0;
}

static int meta_get(struct store_tx *tx, const char *name, char *out, size_t outlen)
{
	struct text_out t = { out, outlen };

	return sq_one(tx->c, &q_meta_get, SQ_ARGS(SQ_TEXT(name)), text_row, &t);
}

static int meta_set(struct store_tx *tx, const char *name, const char *value)
{
	return sq_exec(tx->c, &q_meta_set, SQ_ARGS(SQ_TEXT(name), SQ_TEXT(value)));
}

/* ---- enrollment tokens ---- */

static void token_fill(sqlite3_stmt *st, struct token_rec *t)
{
	memset(t, 0, sizeof(*t));
	t->id = sqlite3_column_int64(st, 0);
	sq_blob(st, 1, t->hash, STORE_HASH_LEN);
	t->created_at = sqlite3_column_int64(st, 2);
	t->expires_at = sqlite3_column_int64(st, 3);
	t->uses_left = sqlite3_column_int64(st, 4);
	t->used = sqlite3_column_int64(st, 5);
	t->revoked = sqlite3_column_int(st, 6) != 0;
}

static int token_insert(struct store_tx *tx, const struct token_rec *t, int64_t *id)
{
	int rc = sq_exec(tx->c, &q_token_insert,
			 SQ_ARGS(SQ_BLOB(t->hash, STORE_HASH_LEN), SQ_INT(t->created_at),
				 SQ_INT(t->expires_at), SQ_INT(t->uses_left)));

	if (rc == 0 && id)
		*id = sq_last_row(tx->c);
	return rc;
}

static int token_copy(sqlite3_stmt *st, void *arg)
{
	token_fill(st, arg);
	return 0;
}

static int token_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		     struct token_rec *out)
{
	return sq_one(tx->c, &q_token_get, SQ_ARGS(SQ_BLOB(hash, STORE_HASH_LEN)),
		      token_copy, out);
}

static int token_use(struct store_tx *tx, int64_t id)
{
	return sq_change(tx->c, &q_token_use, SQ_ARGS(SQ_INT(id)));
}

static int token_revoke(struct store_tx *tx, int64_t id)
{
	return sq_change(tx->c, &q_token_revoke, SQ_ARGS(SQ_INT(id)));
}

struct token_cb {
	store_each_token cb;
	void *arg;
};

static int token_row(sqlite3_stmt *st, void *arg)
{
	struct token_cb *c = arg;
	struct token_rec t;

	token_fill(st, &t);
	return c->cb(&t, c->arg);
}

static int token_each(struct store_tx *tx, store_each_token cb, void *arg)
{
	struct token_cb c = { cb, arg };

	return sq_each(tx->c, &q_token_each, SQ_NOARGS, token_row, &c);
}

void sq_meta_ops(struct store_ops *o)
{
	o->meta_get = meta_get;
	o->meta_set = meta_set;
	o->token_insert = token_insert;
	o->token_get = token_get;
	o->token_use = token_use;
	o->token_revoke = token_revoke;
	o->token_each = token_each;
}
