/* Operations on local user accounts and signed-in sessions. */
#include <stdlib.h>
#include <string.h>

#include "store/pgsql/internal.h"
#include "util/err.h"

#define USER_COLS "id, name, password_hash, roles, disabled, created_at"

static const struct pg_query q_user_insert = {
	"INSERT INTO users (name, name_lc, password_hash, roles, disabled, created_at) "
	"VALUES ($1::text, $2::text, $3::text, $4::integer, $5::integer, $6::bigint) "
	"ON CONFLICT DO NOTHING" };
static const struct pg_query q_user_get = {
	"SELECT " USER_COLS " FROM users WHERE name_lc = $1::text" };
/* In a write, rows read are locked (as devices.c says why). */
static const struct pg_query q_user_get_lock = {
	"SELECT " USER_COLS " FROM users WHERE name_lc = $1::text FOR NO KEY UPDATE" };
static const struct pg_query q_session_get_lock = {
	"SELECT id_hash, \"user\", roles, identities, csrf, notice_accepted, created_at, "
	"last_seen FROM sessions WHERE id_hash = $1::bytea FOR NO KEY UPDATE" };
static const struct pg_query q_user_update = {
	"UPDATE users SET password_hash = $2::text, roles = $3::integer, "
	"disabled = $4::integer WHERE name_lc = $1::text" };
static const struct pg_query q_user_each = {
	"SELECT " USER_COLS " FROM users ORDER BY name_lc" };

static const struct pg_query q_session_insert = {
	"INSERT INTO sessions (id_hash, \"user\", user_lc, roles, identities, csrf, "
	"notice_accepted, created_at, last_seen) VALUES ($1::bytea, $2::text, $3::text, "
	"$4::integer, $5::text, $6::text, $7::integer, $8::bigint, $8::bigint) "
	"ON CONFLICT DO NOTHING" };
static const struct pg_query q_session_get = {
	"SELECT id_hash, \"user\", roles, identities, csrf, notice_accepted, created_at, "
	"last_seen FROM sessions WHERE id_hash = $1::bytea" };
static const struct pg_query q_session_touch = {
	"UPDATE sessions SET last_seen = GREATEST(last_seen, $2::bigint), "
	"notice_accepted = CASE WHEN $3::integer >= 0 THEN $3::integer ELSE notice_accepted "
	"END WHERE id_hash = $1::bytea" };
static const struct pg_query q_session_delete = {
	"DELETE FROM sessions WHERE id_hash = $1::bytea" };
static const struct pg_query q_session_purge = {
	"DELETE FROM sessions WHERE last_seen < $1::bigint OR created_at < $2::bigint" };
static const struct pg_query q_session_delete_user = {
	"DELETE FROM sessions WHERE user_lc = $1::text" };

struct user_cb {
	store_each_user cb;
	void *arg;
};

static int user_row(const PGresult *r, int i, void *arg)
{
	struct user_cb *c = arg;
	struct user_rec u;

	u.id = pg_i64(r, i, 0);
	u.name = pg_text(r, i, 1);
	u.password_hash = pg_text(r, i, 2);
	u.roles = (unsigned)pg_i64(r, i, 3);
	u.disabled = pg_i64(r, i, 4) != 0;
	u.created_at = pg_i64(r, i, 5);
	return c->cb(&u, c->arg);
}

static int user_insert(struct store_tx *tx, const struct user_rec *u)
{
	char *lc = pg_fold(u->name);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = pg_insert(tx->c, &q_user_insert,
		       PG_ARGS(PG_TEXT(u->name), PG_TEXT(lc), PG_TEXT(u->password_hash),
			       PG_INT(u->roles), PG_INT(u->disabled), PG_INT(u->created_at)));
	free(lc);
	return rc;
}

static int user_get(struct store_tx *tx, const char *name, store_each_user cb, void *arg)
{
	struct user_cb c = { cb, arg };
	char *lc = pg_fold(name);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = pg_one(tx->c, tx->write ? &q_user_get_lock : &q_user_get, PG_ARGS(PG_TEXT(lc)),
		    user_row, &c);
	free(lc);
	return rc;
}

static int user_update(struct store_tx *tx, const struct user_rec *u)
{
	char *lc = pg_fold(u->name);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = pg_change(tx->c, &q_user_update,
		       PG_ARGS(PG_TEXT(lc), PG_TEXT(u->password_hash), PG_INT(u->roles),
			       PG_INT(u->disabled)));
	free(lc);
	return rc;
}

static int user_each(struct store_tx *tx, store_each_user cb, void *arg)
{
	struct user_cb c = { cb, arg };

	return pg_each(tx->c, &q_user_each, PG_NOARGS, user_row, &c);
}

/* ---- sessions ---- */

static int session_insert(struct store_tx *tx, const struct session_rec *r)
{
	char *lc = pg_fold(r->user);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = pg_insert(tx->c, &q_session_insert,
		       PG_ARGS(PG_BLOB(r->hash, STORE_HASH_LEN), PG_TEXT(r->user), PG_TEXT(lc),
			       PG_INT(r->roles), PG_TEXT(r->identities ? r->identities : ""),
			       PG_TEXT(r->csrf), PG_INT(r->notice_accepted),
			       PG_INT(r->created_at)));
	free(lc);
	return rc;
}

struct session_cb {
	store_each_session cb;
	void *arg;
};

static int session_row(const PGresult *r, int i, void *arg)
{
	struct session_cb *c = arg;
	struct session_rec s;

	memset(&s, 0, sizeof(s));
	pg_blob(r, i, 0, s.hash, STORE_HASH_LEN);
	s.user = pg_text(r, i, 1);
	s.roles = (unsigned)pg_i64(r, i, 2);
	s.identities = pg_text(r, i, 3);
	pg_copy(r, i, 4, s.csrf, sizeof(s.csrf));
	s.notice_accepted = pg_i64(r, i, 5) != 0;
	s.created_at = pg_i64(r, i, 6);
	s.last_seen = pg_i64(r, i, 7);
	return c->cb(&s, c->arg);
}

static int session_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		       store_each_session cb, void *arg)
{
	struct session_cb c = { cb, arg };

	return pg_one(tx->c, tx->write ? &q_session_get_lock : &q_session_get,
		      PG_ARGS(PG_BLOB(hash, STORE_HASH_LEN)), session_row, &c);
}

static int session_touch(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			 int64_t at, int notice_accepted)
{
	return pg_change(tx->c, &q_session_touch,
			 PG_ARGS(PG_BLOB(hash, STORE_HASH_LEN), PG_INT(at),
				 PG_INT(notice_accepted)));
}

static int session_delete(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN])
{
	return pg_change(tx->c, &q_session_delete, PG_ARGS(PG_BLOB(hash, STORE_HASH_LEN)));
}

static int session_purge(struct store_tx *tx, int64_t idle_before, int64_t created_before)
{
	return pg_exec(tx->c, &q_session_purge,
		       PG_ARGS(PG_INT(idle_before), PG_INT(created_before)));
}

static int session_delete_user(struct store_tx *tx, const char *user)
{
	char *lc = pg_fold(user);
	int rc;

	if (!lc)
		return KW_ERR_NOMEM;
	rc = pg_exec(tx->c, &q_session_delete_user, PG_ARGS(PG_TEXT(lc)));
	free(lc);
	return rc;
}

void pg_user_ops(struct store_ops *o)
{
	o->user_insert = user_insert;
	o->user_get = user_get;
	o->user_update = user_update;
	o->user_each = user_each;
	o->session_insert = session_insert;
	o->session_get = session_get;
	o->session_touch = session_touch;
	o->session_delete = session_delete;
	o->session_purge = session_purge;
	o->session_delete_user = session_delete_user;
}
