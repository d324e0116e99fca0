/* Operations on recovery keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core/keyid.h"
#include "store/pgsql/internal.h"
#include "util/err.h"
#include "util/jsonwipe.h"

#define KEY_COLS "k.id, k.key_hex, k.volume, k.state, k.sealed, k.created_at, " \
	"k.changed_at, k.disclosed_at, k.origin"
#define KEY_FULL_COLS KEY_COLS ", " PG_DEVICE_COLS ", " PG_VOLUME_COLS

static const struct pg_query q_key_get = {
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON "
	"d.id = k.device WHERE k.key_hex = $1::text" };
/* Several keys in one round trip, by key ID. = ANY(ARRAY(…)) rather than
 * IN (SELECT …): the planner guesses a set-returning function's rows (100)
 * and hashed the whole table against them; an array is looked up in the
 * index, one probe a key. */
static const struct pg_query q_key_get_many = {
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON "
	"d.id = k.device WHERE k.key_hex = ANY(ARRAY(SELECT json_array_elements_text($1::json))) "
	"ORDER BY k.key_hex" };
/* In a write, a key ID is locked before it is looked up, whether the key
 * exists or not (a transaction lock on its hash, in ID order for several):
 * two check-ins that report one new key at once, on one instance or two,
 * take turns, and at READ COMMITTED the second then finds the first's key
 * (a conflict) instead of inserting it too; a disclosure reads the state
 * it then changes. */
static const struct pg_query q_key_lock = {
	"SELECT 1 FROM pg_advisory_xact_lock(hashtext($1::text))" };
static const struct pg_query q_key_lock_many = {
	"SELECT count(pg_advisory_xact_lock(hashtext(x))) FROM "
	"(SELECT DISTINCT json_array_elements_text($1::json) AS x ORDER BY 1) ids" };
static const struct pg_query q_key_insert = {
	"INSERT INTO recovery_keys (key_hex, device, volume, state, sealed, created_at, "
	"changed_at) VALUES ($1::text, $2::bigint, $3::bigint, $4::integer, $5::bytea, "
	"$6::bigint, $6::bigint) ON CONFLICT DO NOTHING" };
/* Many keys in one statement: nothing is inserted unless every device and
 * volume is right (refs) and no key ID is taken (taken); a key ID taken
 * meanwhile (another instance) shows as fewer rows inserted. */
static const struct pg_query q_key_insert_many = {
	"WITH x AS (SELECT x.ord, x.key_hex, x.state, x.sealed, x.created_at, "
	"v.device AS dev, v.id AS vol FROM json_to_recordset($1::json) AS "
	"x(key_hex text, device text, volume bigint, state integer, sealed text, "
	"created_at bigint, ord bigint) LEFT JOIN devices d ON d.uid = x.device "
	"LEFT JOIN volumes v ON v.id = x.volume AND v.device = d.id), "
	"bad AS (SELECT count(*) FILTER (WHERE vol IS NULL) AS refs, count(*) FILTER "
	"(WHERE EXISTS (SELECT 1 FROM recovery_keys k WHERE k.key_hex = x.key_hex)) AS taken "
	"FROM x), "
	"ins AS (INSERT INTO recovery_keys (key_hex, device, volume, state, sealed, "
	"created_at, changed_at) SELECT key_hex, dev, vol, state, decode(sealed, 'hex'), "
	"created_at, created_at FROM x WHERE (SELECT refs + taken FROM bad) = 0 ORDER BY ord "
	"ON CONFLICT DO NOTHING RETURNING id) "
	"SELECT (SELECT refs FROM bad), (SELECT taken FROM bad), (SELECT count(*) FROM ins), "
	"(SELECT coalesce(json_agg(id), '[]') FROM ins)::text" };
/* The rows key_insert_many inserted, when not all of them went in. */
static const struct pg_query q_key_uninsert = {
	"DELETE FROM recovery_keys WHERE id = "
	"ANY(ARRAY(SELECT json_array_elements_text($1::json)::bigint))" };
/* Many state changes at one time, in one statement. */
static const struct pg_query q_key_set_state_many = {
	"UPDATE recovery_keys k SET state = x.state, changed_at = $2::bigint, "
	"disclosed_at = CASE WHEN x.state = 2 THEN $2::bigint ELSE k.disclosed_at END "
	"FROM json_to_recordset($1::json) AS x(id bigint, state integer) WHERE k.id = x.id" };
static const struct pg_query q_key_import = {
	"INSERT INTO recovery_keys (key_hex, device, volume, state, sealed, created_at, "
	"changed_at, disclosed_at, origin) VALUES ($1::text, $2::bigint, $3::bigint, "
	"$4::integer, $5::bytea, $6::bigint, $7::bigint, $8::bigint, $9::text) "
	"ON CONFLICT DO NOTHING" };
static const struct pg_query q_key_volume_device = {
	"SELECT device FROM volumes WHERE id = $1::bigint" };
static const struct pg_query q_key_set_state = {
	"UPDATE recovery_keys SET state = $2::integer, changed_at = $3::bigint, "
	"disclosed_at = CASE WHEN $2::integer = 2 THEN $3::bigint ELSE disclosed_at END "
	"WHERE id = $1::bigint" };
static const struct pg_query q_key_set_sealed = {
	"UPDATE recovery_keys SET sealed = $2::bytea WHERE id = $1::bigint" };
static const struct pg_query q_key_each_volume = {
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"WHERE k.volume = $1::bigint AND k.state IN ($2::integer, $3::integer, $4::integer, "
	"$5::integer) ORDER BY k.id" };
static const struct pg_query q_key_each_device = {
	"SELECT " KEY_COLS ", $1::text FROM volumes v JOIN recovery_keys k ON k.volume = v.id "
	"WHERE v.device = " PG_DEVICE_ROW " AND k.state IN ($2::integer, $3::integer, "
	"$4::integer, $5::integer) ORDER BY k.id" };
static const struct pg_query q_key_each_devices = {
	"SELECT " KEY_COLS ", t.uid FROM json_array_elements_text($1::json) WITH ORDINALITY "
	"AS t(uid, ord) JOIN devices d ON d.uid = t.uid JOIN volumes v ON v.device = d.id "
	"JOIN recovery_keys k ON k.volume = v.id WHERE k.state IN ($2::integer, $3::integer, "
	"$4::integer, $5::integer) ORDER BY t.ord, k.id" };
static const struct pg_query q_key_each_page = {
	"SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"WHERE k.id > $1::bigint ORDER BY k.id LIMIT $2::bigint" };
static const struct pg_query q_key_each_full = {
	"SELECT " KEY_FULL_COLS " FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"JOIN volumes v ON v.id = k.volume ORDER BY d.name_lc, d.id, v.id, k.id" };
/* Driven by the user's own devices: the keys of everyone else are never
 * touched, so a prefix that exists on another user's device costs the
 * same work as one that exists nowhere (SPEC §3: no timing difference).
 * The devices are materialised first, and key_hex || '' keeps the planner
 * off the key ID index (which would walk every device's keys). */
static const struct pg_query q_key_each_entitled = {
	"WITH ent AS MATERIALIZED ("
	"SELECT l.device FROM logons l WHERE l.type = 0 AND l.user_lc = "
	"ANY(ARRAY(SELECT json_array_elements_text($2::json))) UNION "
	"SELECT a.device FROM associations a WHERE a.user_lc = "
	"ANY(ARRAY(SELECT json_array_elements_text($2::json)))) "
	"SELECT " KEY_FULL_COLS " FROM ent JOIN volumes v ON v.device = ent.device "
	"JOIN recovery_keys k ON k.volume = v.id JOIN devices d ON d.id = v.device "
	"WHERE ((1 << k.state) & $3::integer) <> 0 "
	"AND k.key_hex || '' >= $1::text AND k.key_hex || '' < $1::text || 'G' "
	"ORDER BY k.key_hex" };
static const struct pg_query q_key_each_prefix = {
	"SELECT " KEY_FULL_COLS " FROM recovery_keys k JOIN devices d ON d.id = k.device "
	"JOIN volumes v ON v.id = k.volume WHERE k.key_hex >= $1::text "
	"AND k.key_hex < $1::text || 'G' AND ((1 << k.state) & $2::integer) <> 0 "
	"ORDER BY k.key_hex" };
/* By (changed_at, row) after the cursor; the literal state 2 lets the
 * partial index recovery_keys_disclosed_at serve. */
#define KEY_STATE_PAGE(state) "SELECT " KEY_FULL_COLS " FROM recovery_keys k " \
	"JOIN devices d ON d.id = k.device JOIN volumes v ON v.id = k.volume " \
	"WHERE k.state = " state " AND k.changed_at >= $1::bigint " \
	"AND (k.changed_at > $1::bigint OR k.id > $2::bigint) " \
	"ORDER BY k.changed_at, k.id LIMIT $3::bigint"
static const struct pg_query q_key_each_disclosed_at = { KEY_STATE_PAGE("2") };
static const struct pg_query q_key_each_state = { KEY_STATE_PAGE("$4::integer") };
static const struct pg_query q_key_count = { "SELECT count(*) FROM recovery_keys" };

/* Fills k from the 9 columns of KEY_COLS. */
static void key_fill(const PGresult *r, int i, struct key_rec *k)
{
	const char *hex = pg_text(r, i, 1);

	memset(k, 0, sizeof(*k));
	k->row = pg_i64(r, i, 0);
	if (strlen(hex) == KEYID_HEX_LEN)
		keyid_format(hex, k->key_id);
	k->volume_row = pg_i64(r, i, 2);
	k->state = (enum key_state)pg_i64(r, i, 3);
	k->sealed = pg_bytes(r, i, 4, &k->sealed_len);
	k->created_at = pg_i64(r, i, 5);
	k->changed_at = pg_i64(r, i, 6);
	k->disclosed_at = pg_i64(r, i, 7);
	k->origin = pg_text(r, i, 8);
}

struct key_cb {
	store_each_key cb;
	void *arg;
	bool seen;               /* a row was read */
};

/* KEY_COLS and the device's uid. */
static int key_row(const PGresult *r, int i, void *arg)
{
	struct key_cb *c = arg;
	struct key_rec k;

	key_fill(r, i, &k);
	pg_copy(r, i, 9, k.device_id, sizeof(k.device_id));
	return c->cb(&k, c->arg);
}

static int key_row_seen(const PGresult *r, int i, void *arg)
{
	((struct key_cb *)arg)->seen = true;
	return key_row(r, i, arg);
}

struct key_full_cb {
	store_each_key_full cb;
	void *arg;
};

/* KEY_FULL_COLS. */
static int key_full_row(const PGresult *r, int i, void *arg)
{
	struct key_full_cb *c = arg;
	struct device_rec d;
	struct volume_rec v;
	struct key_full_rec f;

	memset(&v, 0, sizeof(v));
	key_fill(r, i, &f.key);
	pg_device_fill(r, i, 9, &d);
	pg_volume_fill(r, i, 16, &v);
	memcpy(f.key.device_id, d.id, sizeof(d.id));
	memcpy(v.device_id, d.id, sizeof(d.id));
	f.device = &d;
	f.volume = &v;
	return c->cb(&f, c->arg);
}

static int key_get(struct store_tx *tx, const char *key_id, store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg, false };
	char hex[KEYID_HEX_LEN + 1];

	if (strlen(key_id) != KEYID_CANON_LEN)
		return KW_ERR_INVALID;
	keyid_to_hex(key_id, hex);
	if (tx->write) {
		int rc = pg_each_after(tx->c, &q_key_lock, PG_ARGS(PG_TEXT(hex)), &q_key_get,
				       PG_ARGS(PG_TEXT(hex)), key_row_seen, &c);

		return rc == 0 && !c.seen ? KW_ERR_NOT_FOUND : rc;
	}
	return pg_one(tx->c, &q_key_get, PG_ARGS(PG_TEXT(hex)), key_row, &c);
}

/* A list of strings as a JSON array (for json_array_elements_text), each
 * through conv (may be NULL) first. */
static char *json_list(const char *const *v, size_t n, int (*conv)(const char *, char *out))
{
	json_t *arr = json_array();
	char buf[KEYID_HEX_LEN + 1], *list = NULL;

	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *s = v[i];
		char *lc = NULL;

		if (conv) {
			if (conv(v[i], buf) < 0)
				goto out;
			s = buf;
		} else if (!(s = lc = pg_fold(v[i]))) {
			goto out;
		}
		if (json_array_append_new(arr, json_string(s)) < 0) {
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

static int to_hex(const char *id, char *out)
{
	if (strlen(id) != KEYID_CANON_LEN)
		return KW_ERR_INVALID;
	keyid_to_hex(id, out);
	return 0;
}

static int key_get_many(struct store_tx *tx, const char *const *key_ids, size_t n,
			store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg, false };
	char *list;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (strlen(key_ids[i]) != KEYID_CANON_LEN)
			return KW_ERR_INVALID;
	if (!(list = json_list(key_ids, n, to_hex)))
		return KW_ERR_NOMEM;
	if (tx->write)
		rc = pg_each_after(tx->c, &q_key_lock_many, PG_ARGS(PG_TEXT(list)),
				   &q_key_get_many, PG_ARGS(PG_TEXT(list)), key_row, &c);
	else
		rc = pg_each(tx->c, &q_key_get_many, PG_ARGS(PG_TEXT(list)), key_row, &c);
	json_free_string(list);
	return rc;
}

/* The row of k's device, KW_ERR_NOT_FOUND unless it exists and
 * k->volume_row is one of its volumes: checked, not left to the foreign
 * key, which would accept another device's volume. */
static int key_device(struct store_tx *tx, const struct key_rec *k, int64_t *dev)
{
	int64_t vdev;
	int rc;

	if ((rc = pg_device_row(tx, k->device_id, NULL, dev)) < 0)
		return rc;
	if (tx->vol_row && k->volume_row == tx->vol_row) {
		vdev = tx->vol_dev;
	} else {
		if ((rc = pg_int(tx->c, &q_key_volume_device,
				 PG_ARGS(PG_INT(k->volume_row)), &vdev)) < 0)
			return rc;
		tx->vol_row = k->volume_row;
		tx->vol_dev = vdev;
	}
	return vdev == *dev ? 0 : KW_ERR_NOT_FOUND;
}

static int key_put(struct store_tx *tx, const struct key_rec *k, int64_t dev)
{
	char hex[KEYID_HEX_LEN + 1];

	if (strlen(k->key_id) != KEYID_CANON_LEN)
		return KW_ERR_INVALID;
	keyid_to_hex(k->key_id, hex);
	return pg_insert(tx->c, &q_key_insert,
			 PG_ARGS(PG_TEXT(hex), PG_INT(dev), PG_INT(k->volume_row),
				 PG_INT(k->state), PG_BLOB(k->sealed, k->sealed_len),
				 PG_INT(k->created_at)));
}

static int key_import(struct store_tx *tx, const struct key_rec *k)
{
	char hex[KEYID_HEX_LEN + 1];
	int64_t dev;
	int rc;

	if ((rc = key_device(tx, k, &dev)) < 0)
		return rc;
	keyid_to_hex(k->key_id, hex);
	return pg_insert(tx->c, &q_key_import,
			 PG_ARGS(PG_TEXT(hex), PG_INT(dev), PG_INT(k->volume_row),
				 PG_INT(k->state), PG_BLOB(k->sealed, k->sealed_len),
				 PG_INT(k->created_at),
				 PG_INT(k->changed_at ? k->changed_at : k->created_at),
				 PG_INT(k->disclosed_at), PG_TEXT(k->origin)));
}

/* A batch that must be all or nothing: a savepoint around it. */
static int batch_begin(struct store_tx *tx)
{
	return pg_run(tx->c, "SAVEPOINT batch");
}

static int batch_end(struct store_tx *tx, int rc)
{
	if (rc < 0) {
		if (pg_run(tx->c, "ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch") < 0)
			return KW_ERR_STORE;
		return rc;
	}
	return pg_run(tx->c, "RELEASE SAVEPOINT batch");
}

static int key_insert(struct store_tx *tx, const struct key_rec *k)
{
	int64_t dev;
	int rc;

	if ((rc = key_device(tx, k, &dev)) < 0)
		return rc;
	return key_put(tx, k, dev);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct insert_counts {
	int64_t refs, taken, inserted;
	char *rows;    /* the inserted rows' IDs, a JSON array */
};

static int insert_counted(const PGresult *r, int i, void *arg)
{
	struct insert_counts *n = arg;

	n->refs = pg_i64(r, i, 0);
	n->taken = pg_i64(r, i, 1);
	n->inserted = pg_i64(r, i, 2);
	free(n->rows);
	return (n->rows = strdup(pg_text(r, i, 3))) ? 0 : KW_ERR_NOMEM;
}

/* key_insert_many's n keys in one statement. */
static int key_insert_set(struct store_tx *tx, const struct key_rec *k, size_t n)
{
	struct insert_counts got = { 0, 0, 0, NULL };
	json_t *recs = json_array();
	const char **ids = calloc(n, sizeof(*ids));
	char hex[KEYID_HEX_LEN + 1], *list = NULL, *sealed = NULL;
	int rc = KW_ERR_NOMEM;

	if (!recs || !ids)
		goto out;
	/* The same key twice is taken by the first. */
	for (size_t i = 0; i < n; i++)
		ids[i] = k[i].key_id;
	qsort(ids, n, sizeof(*ids), cmp_str);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(ids[i], ids[i - 1])) {
			rc = KW_ERR_EXISTS;
			goto out;
		}
	for (size_t i = 0; i < n; i++) {
		if (!(sealed = malloc(k[i].sealed_len * 2 + 1)))
			goto out;
		sodium_bin2hex(sealed, k[i].sealed_len * 2 + 1, k[i].sealed, k[i].sealed_len);
		keyid_to_hex(k[i].key_id, hex);
		if (json_array_append_new(recs, json_pack(
			"{sIsssssIsIsssI}", "ord", (json_int_t)i, "key_hex", hex,
			"device", k[i].device_id,
			"volume", (json_int_t)k[i].volume_row, "state", (json_int_t)k[i].state,
			"sealed", sealed, "created_at", (json_int_t)k[i].created_at)) < 0)
			goto out;
		free(sealed);
		sealed = NULL;
	}
	if (!(list = json_dumps(recs, JSON_COMPACT)))
		goto out;
	rc = pg_one(tx->c, &q_key_insert_many, PG_ARGS(PG_TEXT(list)), insert_counted, &got);
	if (rc == 0 && got.refs)
		rc = KW_ERR_NOT_FOUND;   /* nothing inserted */
	else if (rc == 0 && got.taken)
		rc = KW_ERR_EXISTS;      /* nothing inserted */
	else if (rc == 0 && got.inserted != (int64_t)n) {
		/* A key ID taken by another transaction meanwhile: the others
		 * went in; a savepoint now would cost every batch a round
		 * trip, so they are deleted again. */
		rc = pg_exec(tx->c, &q_key_uninsert, PG_ARGS(PG_TEXT(got.rows)));
		rc = rc < 0 ? rc : KW_ERR_RETRY;
	}
out:
	free(got.rows);
	free(sealed);
	if (list)
		json_free_string(list);
	json_decref(recs);
	free(ids);
	return rc;
}

static int key_insert_many(struct store_tx *tx, const struct key_rec *k, size_t n)
{
	int64_t *dev;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (strlen(k[i].key_id) != KEYID_CANON_LEN)
			return KW_ERR_INVALID;
	if (n > 1)
		return key_insert_set(tx, k, n);
	if (!(dev = malloc(n * sizeof(*dev))))
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
		rc = batch_begin(tx);
	if (rc == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = key_put(tx, &k[i], dev[i]);
		if (n > 1)
			rc = batch_end(tx, rc);
	}
	free(dev);
	return rc;
}

static int key_set_state(struct store_tx *tx, int64_t row, enum key_state state, int64_t at)
{
	return pg_change(tx->c, &q_key_set_state,
			 PG_ARGS(PG_INT(row), PG_INT(state), PG_INT(at)));
}

static int cmp_change(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* key_set_state_many's n distinct rows in one statement: 1 when rows
 * repeat (then one at a time). */
static int key_set_state_set(struct store_tx *tx, const struct key_change *c, size_t n,
			     int64_t at)
{
	int64_t *rows = malloc(n * sizeof(*rows));
	json_t *recs = json_array();
	char *list = NULL;
	PGresult *r = NULL;
	int rc = KW_ERR_NOMEM;

	if (!rows || !recs)
		goto out;
	for (size_t i = 0; i < n; i++)
		rows[i] = c[i].row;
	qsort(rows, n, sizeof(*rows), cmp_change);
	for (size_t i = 1; i < n; i++)
		if (rows[i] == rows[i - 1]) {
			rc = 1;
			goto out;
		}
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(recs, json_pack("{sIsI}", "id", (json_int_t)c[i].row,
							  "state", (json_int_t)c[i].state)) < 0)
			goto out;
	if (!(list = json_dumps(recs, JSON_COMPACT)))
		goto out;
	if (!(r = pg_query(tx->c, &q_key_set_state_many, PG_ARGS(PG_TEXT(list), PG_INT(at)),
			   &rc)))
		goto out;
	/* A row that does not exist: nothing changed. */
	rc = strtoll(PQcmdTuples(r), NULL, 10) == (long long)n ? 0 : KW_ERR_NOT_FOUND;
out:
	PQclear(r);
	if (list)
		json_free_string(list);
	json_decref(recs);
	free(rows);
	return rc;
}

static int key_set_state_many(struct store_tx *tx, const struct key_change *c, size_t n,
			      int64_t at)
{
	int rc = 0;

	if (n > 1) {
		if ((rc = batch_begin(tx)) < 0)
			return rc;
		if ((rc = key_set_state_set(tx, c, n, at)) <= 0)
			return batch_end(tx, rc);
		rc = 0;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = key_set_state(tx, c[i].row, c[i].state, at);
		return batch_end(tx, rc);
	}

	if (n > 1 && (rc = batch_begin(tx)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = key_set_state(tx, c[i].row, c[i].state, at);
	return n > 1 ? batch_end(tx, rc) : rc;
}

static int key_set_sealed(struct store_tx *tx, int64_t row, const uint8_t *sealed, size_t len)
{
	return pg_change(tx->c, &q_key_set_sealed, PG_ARGS(PG_INT(row), PG_BLOB(sealed, len)));
}

/* The states of a mask as four values (-1 for the ones left out), so that
 * the (volume, state) index skips the other keys: a volume whose key was
 * rotated a thousand times still reads its one live key. */
#define STATE_ARG(states, s) PG_INT(((states) & KEY_STATE_BIT(s)) ? (s) : -1)

static int key_each_volume(struct store_tx *tx, int64_t volume_row, unsigned states,
			   store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg, false };

	return pg_each(tx->c, &q_key_each_volume,
		       PG_ARGS(PG_INT(volume_row), STATE_ARG(states, 0), STATE_ARG(states, 1),
			       STATE_ARG(states, 2), STATE_ARG(states, 3)),
		       key_row, &c);
}

static int key_each_device(struct store_tx *tx, const char *device_id, unsigned states,
			   store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg, false };

	return pg_each(tx->c, &q_key_each_device,
		       PG_ARGS(PG_TEXT(device_id), STATE_ARG(states, 0), STATE_ARG(states, 1),
			       STATE_ARG(states, 2), STATE_ARG(states, 3)),
		       key_row, &c);
}

static int key_each_devices(struct store_tx *tx, const char *const *ids, size_t n,
			    unsigned states, store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg, false };
	json_t *arr = json_array();
	char *list = NULL;
	int rc = KW_ERR_NOMEM;

	if (!arr)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(arr, json_string(ids[i])) < 0)
			goto out;
	if (!(list = json_dumps(arr, JSON_COMPACT)))
		goto out;
	rc = pg_each(tx->c, &q_key_each_devices,
		     PG_ARGS(PG_TEXT(list), STATE_ARG(states, 0), STATE_ARG(states, 1),
			     STATE_ARG(states, 2), STATE_ARG(states, 3)),
		     key_row, &c);
out:
	if (list)
		json_free_string(list);
	json_decref(arr);
	return rc;
}

static int key_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			 store_each_key cb, void *arg)
{
	struct key_cb c = { cb, arg, false };

	if (limit <= 0)
		return KW_ERR_INVALID;
	return pg_each(tx->c, &q_key_each_page, PG_ARGS(PG_INT(after_row), PG_INT(limit)),
		       key_row, &c);
}

static int key_each_full(struct store_tx *tx, store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };

	return pg_stream(tx->c, &q_key_each_full, PG_NOARGS, key_full_row, &c);
}

static int key_each_entitled(struct store_tx *tx, const char *prefix_hex,
			     const char *const *users, size_t nusers, unsigned states,
			     store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };
	char *list = json_list(users, nusers, NULL);
	int rc;

	if (!list)
		return KW_ERR_NOMEM;
	rc = pg_each(tx->c, &q_key_each_entitled,
		     PG_ARGS(PG_TEXT(prefix_hex), PG_TEXT(list), PG_INT(states)),
		     key_full_row, &c);
	json_free_string(list);
	return rc;
}

static int key_each_prefix(struct store_tx *tx, const char *prefix_hex, unsigned states,
			   store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };

	return pg_each(tx->c, &q_key_each_prefix, PG_ARGS(PG_TEXT(prefix_hex), PG_INT(states)),
		       key_full_row, &c);
}

static int64_t key_count(struct store_tx *tx)
{
	int64_t n = 0;
	int rc = pg_int(tx->c, &q_key_count, PG_NOARGS, &n);

	return rc < 0 ? rc : n;
}

static int key_each_state(struct store_tx *tx, enum key_state state, int64_t after_changed,
			  int64_t after_row, int64_t limit, store_each_key_full cb, void *arg)
{
	struct key_full_cb c = { cb, arg };

	if (state == KEY_DISCLOSED)
		return pg_each(tx->c, &q_key_each_disclosed_at,
			       PG_ARGS(PG_INT(after_changed), PG_INT(after_row), PG_INT(limit)),
			       key_full_row, &c);
	return pg_each(tx->c, &q_key_each_state,
		       PG_ARGS(PG_INT(after_changed), PG_INT(after_row), PG_INT(limit),
			       PG_INT(state)),
		       key_full_row, &c);
}

void pg_key_ops(struct store_ops *o)
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
