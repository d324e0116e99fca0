/* Operations on recovery keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/keyid.h"
#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/jsonwipe.h"
#include "util/str.h"

#define KEY_COLS "k.id, k.key_hex, k.volume, k.state, k.sealed, k.created_at, " \
	"k.changed_at, k.disclosed_at, k.origin"
#define KEY_FULL_COLS KEY_COLS ", " DEVICE_COLS ", " VOLUME_COLS

static const struct sq_query q_key_get = { SQ_KEY_GET,
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON "
	"d.id = k.device WHERE k.key_hex = ?1" };
static const struct sq_query q_key_insert = { SQ_KEY_INSERT,
	"INSERT INTO recovery_keys (key_hex, device, volume, state, sealed, created_at, "
	"changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)" };
static const struct sq_query q_key_import = { SQ_KEY_IMPORT,
	"INSERT INTO recovery_keys (key_hex, device, volume, state, sealed, created_at, "
	"changed_at, disclosed_at, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)" };
static const struct sq_query q_key_volume_device = { SQ_KEY_VOLUME_DEVICE,
	"SELECT device FROM volumes WHERE id = ?1" };
static const struct sq_query q_key_set_state = { SQ_KEY_SET_STATE,
	"UPDATE recovery_keys SET state = ?2, changed_at = ?3, "
	"disclosed_at = CASE WHEN ?2 = 2 THEN ?3 ELSE disclosed_at END WHERE id = ?1" };
static const struct sq_query q_key_set_sealed = { SQ_KEY_SET_SEALED,
	"UPDATE recovery_keys SET sealed = ?2 WHERE id = ?1" };
static const struct sq_query q_key_each_volume = { SQ_KEY_EACH_VOLUME,
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"WHERE k.volume = ?1 AND k.state IN (?2, ?3, ?4, ?5) ORDER BY k.id" };
/* Through the device's volumes: keys are indexed by volume. */
static const struct sq_query q_key_each_device = { SQ_KEY_EACH_DEVICE,
	"SELECT " KEY_COLS ", d.uid FROM devices d JOIN volumes v ON v.device = d.id "
	"JOIN recovery_keys k ON k.volume = v.id WHERE d.uid = ?1 "
	"AND k.state IN (?2, ?3, ?4, ?5) ORDER BY k.id" };
/* The literal state lets the partial index recovery_keys_disclosed serve. */
static const struct sq_query q_key_each_device_disclosed = { SQ_KEY_EACH_DEVICE_DISCLOSED,
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"WHERE k.device = ?1 AND k.state = 2 ORDER BY k.id" };
static const struct sq_query q_key_each_page = { SQ_KEY_EACH_PAGE,
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"WHERE k.id > ?1 ORDER BY k.id LIMIT ?2" };
static const struct sq_query q_key_each_full = { SQ_KEY_EACH_FULL,
	"SELECT " KEY_FULL_COLS " FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"JOIN volumes v ON v.id = k.volume ORDER BY d.name_lc, d.id, v.id, k.id" };
/* Driven by the user's own devices: the keys of everyone else are never
 * touched, so a prefix that exists on another user's device costs the
 * same work as one that exists nowhere (SPEC §3: no timing difference).
 * CROSS JOIN fixes that loop order; the key ID index is not used. */
static const struct sq_query q_key_each_entitled = { SQ_KEY_EACH_ENTITLED,
	"WITH ent(device) AS ("
	"SELECT l.device FROM logons l WHERE l.type = 0 AND l.user_lc IN "
	"(SELECT value FROM json_each(?2)) UNION "
	"SELECT a.device FROM associations a WHERE a.user_lc IN "
	"(SELECT value FROM json_each(?2))) "
	"SELECT " KEY_FULL_COLS " FROM ent CROSS JOIN volumes v CROSS JOIN recovery_keys k "
	"CROSS JOIN devices d WHERE v.device = ent.device AND k.volume = v.id "
	"AND d.id = v.device AND ((1 << k.state) & ?3) != 0 "
	"AND k.key_hex >= ?1 AND k.key_hex < ?1 || 'G' ORDER BY k.key_hex" };
static const struct sq_query q_key_each_prefix = { SQ_KEY_EACH_PREFIX,
	"SELECT " KEY_FULL_COLS " FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"JOIN volumes v ON v.id = k.volume WHERE k.key_hex >= ?1 AND k.key_hex < ?1 || 'G' "
	"AND ((1 << k.state) & ?2) != 0 ORDER BY k.key_hex" };
/* By (changed_at, row) after the cursor; the literal state 2 lets the
 * partial index recovery_keys_disclosed_at serve (0003); other states are
 * not indexed by state (a check-in reads keys by volume only). */
#define KEY_STATE_PAGE(state) "SELECT " KEY_FULL_COLS " FROM recovery_keys k " \
	"JOIN devices d ON d.id = k.device JOIN volumes v ON v.id = k.volume " \
	"WHERE k.state = " state " AND k.changed_at >= ?1 " \
	"AND (k.changed_at > ?1 OR k.id > ?2) ORDER BY k.changed_at, k.id LIMIT ?3"
static const struct sq_query q_key_each_disclosed_at = { SQ_KEY_EACH_DISCLOSED_AT,
	KEY_STATE_PAGE("2") };
static const struct sq_query q_key_each_state = { SQ_KEY_EACH_STATE,
	KEY_STATE_PAGE("?4") };
static const struct sq_query q_key_count = { SQ_KEY_COUNT,
	"SELECT count(*) FROM recovery_keys" };

/* Fills k from the 9 columns of KEY_COLS. */
static void key_fill(sqlite3_stmt *st, struct key_rec *k)
{
	const char *hex = sq_text(st, 1);

	memset(k, 0, sizeof(*k));
	k->row = sqlite3_column_int64(st, 0);
	if (strlen(hex) == KEYID_HEX_LEN)
		keyid_format(hex, k->key_id);
	k->volume_row = sqlite3_column_int64(st, 2);
	k->state = (enum key_state)sqlite3_column_int(st, 3);
	k->sealed = sqlite3_column_blob(st, 4);
	k->sealed_len = (size_t)sqlite3_column_bytes(st, 4);
	k->created_at = sqlite3_column_int64(st, 5);
	k->changed_at = sqlite3_column_int64(st, 6);
	k->disclosed_at = sqlite3_column_int64(st, 7);
	k->origin = sq_text(st, 8);
}

struct key_cb {
	store_each_key cb;
	void *arg;
};

/* KEY_COLS and the device's uid. */
static int key_row(sqlite3_stmt *st, void *arg)
{
	struct key_cb *c = arg;
	struct key_rec k;

	key_fill(st, &k);
	sq_copy(st, 9, k.device_id, sizeof(k.device_id));
	return c->cb(&k, c->arg);
}

struct key_full_cb {
	store_each_key_full cb;
	void *arg;
};

/* KEY_FULL_COLS. */
static int key_full_row(sqlite3_stmt *st, void *arg)
{
	struct key_full_cb *c = arg;
	struct device_rec d;
	struct volume_rec v;
	struct key_full_rec f;

	memset(&v, 0, sizeof(v));
	key_fill(st, &f.key);
	sq_device_fill(st, 9, &d);
	sq_volume_fill(st, 16, &v);
	memcpy(f.key.device_id, d.id, sizeof(d.id));
	memcpy(v.device_id, d.id, sizeof(d.id));
	f.device = &d;
	f.volume = &v;
	return c->cb(&f, c->arg);
}

static int key_get(struct store_tx *tx, const char *key_id, store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg };
	char hex[KEYID_HEX_LEN + 1];

	if (strlen(key_id) != KEYID_CANON_LEN)
		return KW_ERR_INVALID;
	keyid_to_hex(key_id, hex);
	return sq_one(tx->c, &q_key_get, SQ_ARGS(SQ_TEXT(hex)), key_row, &c);
}

/* The row of k's device, KW_ERR_NOT_FOUND unless it exists and
 * k->volume_row is one of its volumes: checked, not left to the foreign
 * key, which would accept another device's volume. */
static int key_device(struct store_tx *tx, const struct key_rec *k, int64_t *dev)
{
	int64_t vdev;
	int rc;

	if ((rc = sq_device_row(tx, k->device_id, NULL, dev)) < 0)
		return rc;
	if ((rc = sq_int(tx->c, &q_key_volume_device, SQ_ARGS(SQ_INT(k->volume_row)),
			 &vdev)) < 0)
		return rc;
	return vdev == *dev ? 0 : KW_ERR_NOT_FOUND;
}

static int key_put(struct store_tx *tx, const struct key_rec *k, int64_t dev)
{
	char hex[KEYID_HEX_LEN + 1];

	if (strlen(k->key_id) != KEYID_CANON_LEN)
		return KW_ERR_INVALID;
	keyid_to_hex(k->key_id, hex);
	return sq_exec(tx->c, &q_key_insert,
		       SQ_ARGS(SQ_TEXT(hex), SQ_INT(dev), SQ_INT(k->volume_row),
			       SQ_INT(k->state), SQ_BLOB(k->sealed, k->sealed_len),
			       SQ_INT(k->created_at)));
}

static int key_import(struct store_tx *tx, const struct key_rec *k)
{
	char hex[KEYID_HEX_LEN + 1];
	int64_t dev;
	int rc;

	if ((rc = key_device(tx, k, &dev)) < 0)
		return rc;
	keyid_to_hex(k->key_id, hex);
	return sq_exec(tx->c, &q_key_import,
		       SQ_ARGS(SQ_TEXT(hex), SQ_INT(dev), SQ_INT(k->volume_row),
			       SQ_INT(k->state), SQ_BLOB(k->sealed, k->sealed_len),
			       SQ_INT(k->created_at),
			       SQ_INT(k->changed_at ? k->changed_at : k->created_at),
			       SQ_INT(k->disclosed_at), SQ_TEXT(k->origin)));
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int key_get_many(struct store_tx *tx, const char *const *key_ids, size_t n,
			store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg };
	const char **ids = malloc(n * sizeof(*ids));
	char hex[KEYID_HEX_LEN + 1];
	int rc = 0;

	if (!ids)
		return KW_ERR_NOMEM;
	memcpy(ids, key_ids, n * sizeof(*ids));
	qsort(ids, n, sizeof(*ids), cmp_id);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (i && !strcmp(ids[i], ids[i - 1]))
			continue;
		if (strlen(ids[i]) != KEYID_CANON_LEN) {
			rc = KW_ERR_INVALID;
			break;
		}
		keyid_to_hex(ids[i], hex);
		rc = sq_each(tx->c, &q_key_get, SQ_ARGS(SQ_TEXT(hex)), key_row, &c);
	}
	free(ids);
	return rc;
}

static int key_insert(struct store_tx *tx, const struct key_rec *k)
{
	int64_t dev;
	int rc;

	if ((rc = key_device(tx, k, &dev)) < 0)
		return rc;
	return key_put(tx, k, dev);
}

static int key_insert_many(struct store_tx *tx, const struct key_rec *k, size_t n)
{
	int64_t *dev = malloc(n * sizeof(*dev));
	int rc = 0;

	if (!dev)
		return KW_ERR_NOMEM;
	/* Devices and volumes first (a check-in's keys share one or a few). */
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (i && !strcmp(k[i].device_id, k[i - 1].device_id) &&
		    k[i].volume_row == k[i - 1].volume_row)
			dev[i] = dev[i - 1];
		else
			rc = key_device(tx, &k[i], &dev[i]);
	}
	/* A taken key ID shows only when inserted: a savepoint undoes the
	 * ones before it. */
	if (rc == 0 && n > 1)
		rc = sq_batch_begin(tx->c);
	if (rc == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = key_put(tx, &k[i], dev[i]);
		if (n > 1)
			rc = sq_batch_end(tx->c, rc);
	}
	free(dev);
	return rc;
}

static int key_set_state(struct store_tx *tx, int64_t row, enum key_state state, int64_t at)
{
	return sq_change(tx->c, &q_key_set_state, SQ_ARGS(SQ_INT(row), SQ_INT(state), SQ_INT(at)));
}

static int key_set_state_many(struct store_tx *tx, const struct key_change *c, size_t n,
			      int64_t at)
{
	int rc = 0;

	if (n > 1 && (rc = sq_batch_begin(tx->c)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = key_set_state(tx, c[i].row, c[i].state, at);
	return n > 1 ? sq_batch_end(tx->c, rc) : rc;
}

static int key_set_sealed(struct store_tx *tx, int64_t row, const uint8_t *sealed, size_t len)
{
	return sq_change(tx->c, &q_key_set_sealed, SQ_ARGS(SQ_INT(row), SQ_BLOB(sealed, len)));
}

/* The states of a mask as four values (-1 for the ones left out), so that
 * the (volume, state) index skips the other keys. */
#define STATE_ARG(states, s) SQ_INT(((states) & KEY_STATE_BIT(s)) ? (s) : -1)

static int key_each_volume(struct store_tx *tx, int64_t volume_row, unsigned states,
			   store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg };

	return sq_each(tx->c, &q_key_each_volume,
		       SQ_ARGS(SQ_INT(volume_row), STATE_ARG(states, 0), STATE_ARG(states, 1),
			       STATE_ARG(states, 2), STATE_ARG(states, 3)),
		       key_row, &c);
}

static int key_each_device(struct store_tx *tx, const char *device_id, unsigned states,
			   store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg };
	int64_t dev;
	int rc;

	if (states != KEY_STATE_BIT(KEY_DISCLOSED))
		return sq_each(tx->c, &q_key_each_device,
			       SQ_ARGS(SQ_TEXT(device_id), STATE_ARG(states, 0),
				       STATE_ARG(states, 1), STATE_ARG(states, 2),
				       STATE_ARG(states, 3)),
			       key_row, &c);
	if ((rc = sq_device_row(tx, device_id, NULL, &dev)) < 0)
		return rc == KW_ERR_NOT_FOUND ? 0 : rc;
	return sq_each(tx->c, &q_key_each_device_disclosed, SQ_ARGS(SQ_INT(dev)), key_row, &c);
}

static int key_each_devices(struct store_tx *tx, const char *const *ids, size_t n,
			    unsigned states, store_each_key cb, void *arg)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = key_each_device(tx, ids[i], states, cb, arg);
	return rc;
}

static int key_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			 store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg };

	if (limit <= 0)
		return KW_ERR_INVALID;
	return sq_each(tx->c, &q_key_each_page, SQ_ARGS(SQ_INT(after_row), SQ_INT(limit)),
		       key_row, &c);
}

static int key_each_full(struct store_tx *tx, store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };

	return sq_each(tx->c, &q_key_each_full, SQ_NOARGS, key_full_row, &c);
}

/* The users, lower-cased, as a JSON array for json_each(). */
static char *user_list(const char *const *users, size_t nusers)
{
	json_t *arr = json_array();
	char *list = NULL;

	if (!arr)
		return NULL;
	for (size_t i = 0; i < nusers; i++) {
		char *lc = str_lower_dup(users[i]);

		if (!lc || json_array_append_new(arr, json_string(lc)) < 0) {
			free(lc);
			goto out;
		}
		free(lc);
	}
	list = json_dumps(arr, JSON_COMPACT);
out:
	json_decref(arr);
	return list;
}

static int key_each_entitled(struct store_tx *tx, const char *prefix_hex,
			     const char *const *users, size_t nusers, unsigned states,
			     store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };
	char *list = user_list(users, nusers);
	int rc;

	if (!list)
		return KW_ERR_NOMEM;
	rc = sq_each(tx->c, &q_key_each_entitled,
		     SQ_ARGS(SQ_TEXT(prefix_hex), SQ_TEXT(list), SQ_INT(states)),
		     key_full_row, &c);
	json_free_string(list);
	return rc;
}

static int key_each_prefix(struct store_tx *tx, const char *prefix_hex, unsigned states,
			   store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };

	return sq_each(tx->c, &q_key_each_prefix, SQ_ARGS(SQ_TEXT(prefix_hex), SQ_INT(states)),
		       key_full_row, &c);
}

static int64_t key_count(struct store_tx *tx)
{
	int64_t n = 0;
	int rc = sq_int(tx->c, &q_key_count, SQ_NOARGS, &n);

	return rc < 0 ? rc : n;
}

static int key_each_state(struct store_tx *tx, enum key_state state, int64_t after_changed,
			  int64_t after_row, int64_t limit, store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };

	if (state == KEY_DISCLOSED)
		return sq_each(tx->c, &q_key_each_disclosed_at,
			       SQ_ARGS(SQ_INT(after_changed), SQ_INT(after_row), SQ_INT(limit)),
			       key_full_row, &c);
	return sq_each(tx->c, &q_key_each_state,
		       SQ_ARGS(SQ_INT(after_changed), SQ_INT(after_row), SQ_INT(limit),
			       SQ_INT(state)),
		       key_full_row, &c);
}

void sq_key_ops(struct store_ops *o)
{
	o->key_each_state = key_each_state;
	o->key_get = key_get;
	o->key_get_many = key_get_many;
	o->key_insert = key_insert;
	o->key_insert_many = key_insert_many;
	o->key_import = key_import;
	o->key_set_state = key_set_state;
	o->key_set_state_many = key_set_state_many;
	o->key_set_sealed = key_set_sealed;
	o->key_each_volume = key_each_volume;
	o->key_each_device = key_each_device;
	o->key_each_devices = key_each_devices;
	o->key_each_page = key_each_page;
	o->key_each_full = key_each_full;
	o->key_each_entitled = key_each_entitled;
	o->key_each_prefix = key_each_prefix;
	o->key_count = key_count;
}
