/* Operations on local user accounts and signed-in sessions. */
#include <string.h>

#include "store/sqlite/internal.h"
#include "util/err.h"

#define USER_COLS "id, name, password_hash, roles, disabled, created_at"

static const struct sq_query q_user_insert = { SQ_USER_INSERT,
	"INSERT INTO users (name, name_lc, password_hash, roles, disabled, created_at) "
	"VALUES (?1, fold(?1), ?2, ?3, ?4, ?5)" };
static const struct sq_query q_user_get = { SQ_USER_GET,
	"SELECT " USER_COLS " FROM users WHERE name_lc = fold(?1)" };
static const struct sq_query q_user_update = { SQ_USER_UPDATE,
	"UPDATE users SET password_hash = ?2, roles = ?3, disabled = ?4 "
	"WHERE name_lc = fold(?1)" };
static const struct sq_query q_user_each = { SQ_USER_EACH,
	"SELECT " USER_COLS " FROM users ORDER BY name_lc" };

static const struct sq_query q_session_insert = { SQ_SESSION_INSERT,
	"INSERT INTO sessions (id_hash, user, roles, identities, csrf, notice_accepted, "
	"created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)" };
static const struct sq_query q_session_get = { SQ_SESSION_GET,
	"SELECT id_hash, user, roles, identities, csrf, notice_accepted, created_at, "
	"last_seen FROM sessions WHERE id_hash = ?1" };
static const struct sq_query q_session_touch = { SQ_SESSION_TOUCH,
	"UPDATE sessions SET last_seen = max(last_seen, ?2), "
	"notice_accepted = CASE WHEN ?3 >= 0 THEN ?3 ELSE notice_accepted END "
	"WHERE id_hash = ?1" };
static const struct sq_query q_session_delete = { SQ_SESSION_DELETE,
	"DELETE FROM sessions WHERE id_hash = ?1" };
static const struct sq_query q_session_purge = { SQ_SESSION_PURGE,
	"DELETE FROM sessions WHERE last_seen < ?1 OR created_at < ?2" };
static const struct sq_query q_session_delete_user = { SQ_SESSION_DELETE_USER,
	"DELETE FROM sessions WHERE fold(user) = fold(?1)" };

struct user_cb {
	store_each_user cb;
	void *arg;
};

static int user_row(sqlite3_stmt *st, void *arg)
{
	struct user_cb *c = arg;
	struct user_rec u;

	u.id = sqlite3_column_int64(st, 0);
	u.name = sq_text(st, 1);
	u.password_hash = sq_text(st, 2);
	u.roles = (unsigned)sqlite3_column_int(st, 3);
	u.disabled = sqlite3_column_int(st, 4) != 0;
	u.created_at = sqlite3_column_int64(st, 5);
	return c->cb(&u, c->arg);
}

static int user_insert(struct store_tx *tx, const struct user_rec *u)
{
	return sq_exec(tx->c, &q_user_insert,
		       SQ_ARGS(SQ_TEXT(u->name), SQ_TEXT(u->password_hash), SQ_INT(u->roles),
			       SQ_INT(u->disabled), SQ_INT(u->created_at)));
}

static int user_get(struct store_tx *tx, const char *name, store_each_user cb, void *arg)
{
	struct user_cb c = { cb, arg };

	return sq_one(tx->c, &q_user_get, SQ_ARGS(SQ_TEXT(name)), user_row, &c);
}

static int user_update(struct store_tx *tx, const struct user_rec *u)
{
	return sq_change(tx->c, &q_user_update,
			 SQ_ARGS(SQ_TEXT(u->name), SQ_TEXT(u->password_hash), SQ_INT(u->roles),
				 SQ_INT(u->disabled)));
}

static int user_each(struct store_tx *tx, store_each_user cb, void *arg)
{
	struct user_cb c = { cb, arg };

	return sq_each(tx->c, &q_user_each, SQ_NOARGS, user_row, &c);
}

/* ---- sessions ---- */

static int session_insert(struct store_tx *tx, const struct session_rec *r)
{
	return sq_exec(tx->c, &q_session_insert,
		       SQ_ARGS(SQ_BLOB(r->hash, STORE_HASH_LEN), SQ_TEXT(r->user),
			       SQ_INT(r->roles), SQ_TEXT(r->identities ? r->identities : ""),
			       SQ_TEXT(r->csrf), SQ_INT(r->notice_accepted),
			       SQ_INT(r->created_at)));
}

struct session_cb {
	store_each_session cb;
	void *arg;
};

static int session_row(sqlite3_stmt *st, void *arg)
{
	struct session_cb *c = arg;
	struct session_rec r;

	memset(&r, 0, sizeof(r));
	sq_blob(st, 0, r.hash, STORE_HASH_LEN);
	r.user = sq_text(st, 1);
	r.roles = (unsigned)sqlite3_column_int(st, 2);
	r.identities = sq_text(st, 3);
	sq_copy(st, 4, r.csrf, sizeof(r.csrf));
	r.notice_accepted = sqlite3_column_int(st, 5) != 0;
	r.created_at = sqlite3_column_int64(st, 6);
	r.last_seen = sqlite3_column_int64(st, 7);
	return c->cb(&r, c->arg);
}

static int session_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		       store_each_session cb, void *arg)
{
	struct session_cb c = { cb, arg };

	return sq_one(tx->c, &q_session_get, SQ_ARGS(SQ_BLOB(hash, STORE_HASH_LEN)),
		      session_row, &c);
}

static int session_touch(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			 int64_t at, int notice_accepted)
{
	return sq_change(tx->c, &q_session_touch,
			 SQ_ARGS(SQ_BLOB(hash, STORE_HASH_LEN), SQ_INT(at),
				 SQ_INT(notice_accepted)));
}

static int session_delete(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN])
{
	return sq_change(tx->c, &q_session_delete, SQ_ARGS(SQ_BLOB(hash, STORE_HASH_LEN)));
}

static int session_purge(struct store_tx *tx, int64_t idle_before, int64_t created_before)
{
	return sq_exec(tx->c, &q_session_purge,
		       SQ_ARGS(SQ_INT(idle_before), SQ_INT(created_before)));
}

static int session_delete_user(struct store_tx *tx, const char *user)
{
	return sq_exec(tx->c, &q_session_delete_user, SQ_ARGS(SQ_TEXT(user)));
}

void sq_user_ops(struct store_ops *o)
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
