/* The store's backend-neutral half: choosing and opening a backend, the
 * entry points of store.h, and what backends share (backend.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "store/backend.h"
#include "store/pgsql.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"

static atomic_uint_fast64_t error_count;
static atomic_int last_state;
static _Atomic int64_t search_lag;
static _Atomic uint64_t batched_count;

/* Set while an iteration's callback may run on this thread: the store
 * refuses to be called from it (store.h). */
static _Thread_local unsigned iterating;

#define OPS(tx) (((const struct store_tx_base *)(const void *)(tx))->ops)

void store_count_error(void)
{
	atomic_fetch_add(&error_count, 1);
}

uint64_t store_errors(void)
{
	return atomic_load(&error_count);
}

void store_note_state(enum store_state state)
{
	atomic_store(&last_state, (int)state);
}

enum store_state store_last_state(void)
{
	return (enum store_state)atomic_load(&last_state);
}

void store_note_search_lag(int64_t records)
{
	atomic_store(&search_lag, records);
}

int64_t store_search_lag(void)
{
	return atomic_load(&search_lag);
}

enum store_state store_state(struct store *s, char *reason, size_t reasonlen)
{
	return store_ops_of(s)->state(s, reason, reasonlen);
}

const char *key_state_name(enum key_state s)
{
	switch (s) {
	case KEY_ACTIVE: return "active";
	case KEY_REMOVED: return "removed";
	case KEY_DISCLOSED: return "disclosed";
	case KEY_SUPERSEDED: return "superseded";
	}
	return "unknown";
}

const struct store_ops *store_backend(const char *database, const char **location,
				      char *msg, size_t msglen)
{
	if (strncmp(database, "sqlite:", 7) == 0) {
		if (!database[7]) {
			snprintf(msg, msglen, "database = sqlite: needs a file path");
			return NULL;
		}
		*location = database + 7;
		return store_sqlite_ops();
	}
	if (strncmp(database, "postgresql://", 13) == 0 ||
	    strncmp(database, "postgres://", 11) == 0) {
		*location = database;   /* the whole URL: libpq reads it */
		return store_pgsql_ops();
	}
	snprintf(msg, msglen, "database = %s: use sqlite:PATH or postgresql://…", database);
	return NULL;
}

int store_open(const char *database, bool migrate, struct store **out,
	       char *msg, size_t msglen)
{
	const struct store_ops *ops;
	const char *location = NULL;
	struct store *s = NULL;
	int rc, from, to;

	if (!(ops = store_backend(database, &location, msg, msglen)))
		return KW_ERR_INVALID;
	if ((rc = ops->open(location, &s, msg, msglen)) < 0)
		return rc;
	if (migrate && (rc = ops->migrate(s, &from, &to, msg, msglen)) < 0) {
		ops->close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (s)
		store_ops_of(s)->close(s);
}

const struct store_ops *store_ops_of(struct store *s)
{
	return ((const struct store_base *)(const void *)s)->ops;
}

const struct store_ops *store_tx_ops(struct store_tx *tx)
{
	return ((const struct store_tx_base *)(const void *)tx)->ops;
}

/* ---- transactions, rerun on a transient conflict ---- */

typedef int (*run_fn)(struct store *s, store_fn fn, void *arg);

/* A pause before try n + 1: up to 2^n milliseconds, at random, so that
 * transactions that conflicted do not meet again in step. */
static void backoff(int n)
{
	uint32_t us = 500 + randombytes_uniform(1000u << n);
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

static int with_retries(run_fn run, struct store *s, store_fn fn, void *arg)
{
	int rc;

	if (iterating)
		return KW_ERR_INTERNAL;
	for (int n = 1;; n++) {
		if ((rc = run(s, fn, arg)) != KW_ERR_RETRY)
			return rc;
		if (n == STORE_TRIES)
			break;
		backoff(n);
	}
	store_count_error();
	return KW_ERR_UNAVAILABLE;
}

int store_read(struct store *s, store_fn fn, void *arg)
{
	return with_retries(store_ops_of(s)->read, s, fn, arg);
}

bool store_shared(struct store *s)
{
	return store_ops_of(s)->shared;
}

int store_backup(struct store *s, const char *file, char *msg, size_t msglen)
{
	const struct store_ops *ops = store_ops_of(s);

	if (!ops->backup) {
		/* PostgreSQL: its own tools copy a live database consistently. */
		snprintf(msg, msglen, "keywarden backup copies SQLite databases only: back up "
			 "this %s database with pg_dump (e.g. pg_dump --format=custom "
			 "--file=FILE DBNAME), and the key file separately", ops->name);
		return KW_ERR_INVALID;
	}
	return ops->backup(s, file, msg, msglen);
}

void store_analyze(struct store *s)
{
	const struct store_ops *ops = store_ops_of(s);

	if (ops->analyze)
		ops->analyze(s);
}

int store_read_once(struct store *s, store_fn fn, void *arg)
{
	int rc;

	if (iterating)
		return KW_ERR_INTERNAL;
	if ((rc = store_ops_of(s)->read(s, fn, arg)) != KW_ERR_RETRY)
		return rc;
	store_count_error();
	return KW_ERR_UNAVAILABLE;
}

int store_lookup(struct store *s, store_fn fn, void *arg)
{
	return with_retries(store_ops_of(s)->lookup, s, fn, arg);
}

int store_write(struct store *s, store_fn fn, void *arg)
{
	return with_retries(store_ops_of(s)->write, s, fn, arg);
}

/* An asynchronous write in flight: enqueued again, without a pause (done
 * runs on a thread of the store's), while it returns KW_ERR_RETRY. */
struct async {
	struct store *s;
	store_fn fn;
	store_batch_fn batch;
	void *arg;
	store_done_fn done;
	void *done_arg;
	int tries;
};

static void async_done(int rc, void *p);

static int enqueue(struct async *a)
{
	const struct store_ops *ops = store_ops_of(a->s);

	if (a->batch && ops->write_async_batch)
		return ops->write_async_batch(a->s, a->fn, a->batch, a->arg, async_done, a);
	return ops->write_async(a->s, a->fn, a->arg, async_done, a);
}

static void async_done(int rc, void *p)
{
	struct async *a = p;
	store_done_fn done = a->done;
	void *done_arg = a->done_arg;

	if (rc == KW_ERR_RETRY && ++a->tries <= STORE_TRIES && (rc = enqueue(a)) == 0)
		return;
	if (rc == KW_ERR_RETRY) {
		store_count_error();
		rc = KW_ERR_UNAVAILABLE;
	}
	free(a);
	done(rc, done_arg);
}

int store_write_async_batch(struct store *s, store_fn fn, store_batch_fn batch, void *arg,
			    store_done_fn done, void *done_arg)
{
	struct async *a;
	int rc;

	if (iterating)
		return KW_ERR_INTERNAL;
	if (!(a = malloc(sizeof(*a))))
		return KW_ERR_NOMEM;
	*a = (struct async){ s, fn, batch, arg, done, done_arg, 1 };
	if ((rc = enqueue(a)) < 0)
		free(a);
	return rc;
}

int store_write_async(struct store *s, store_fn fn, void *arg, store_done_fn done,
		      void *done_arg)
{
	return store_write_async_batch(s, fn, NULL, arg, done, done_arg);
}

void store_count_batched(size_t n)
{
	atomic_fetch_add(&batched_count, (uint64_t)n);
}

uint64_t store_batched(void)
{
	return atomic_load(&batched_count);
}

/* ---- the operations ---- */

/* An operation's result, a database failure counted. */
static int counted(int rc)
{
	if (rc == KW_ERR_STORE)
		store_count_error();
	return rc;
}

/* Refuses an operation called from an iteration's callback. */
#define REFUSE_IN_CALLBACK() do { \
		if (iterating) \
			return KW_ERR_INTERNAL; \
	} while (0)

/* Calls operation op of tx's store: its result counted. */
#define CALL(tx, op, ...) counted(OPS(tx)->op((tx), __VA_ARGS__))

/* The same for an operation that hands records to a callback. */
#define EACH(rc, tx, op, ...) do { \
		iterating++; \
		(rc) = OPS(tx)->op((tx), __VA_ARGS__); \
		iterating--; \
		(rc) = counted(rc); \
	} while (0)

int store_meta_get(struct store_tx *tx, const char *name, char *out, size_t outlen)
{
	int rc;

	REFUSE_IN_CALLBACK();
	rc = CALL(tx, meta_get, name, out, outlen);
	if (rc < 0 && outlen)
		out[0] = '\0';
	return rc;
}

int store_meta_set(struct store_tx *tx, const char *name, const char *value)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, meta_set, name, value);
}

int store_token_insert(struct store_tx *tx, const struct token_rec *t, int64_t *id)
{
	int64_t ignored;

	REFUSE_IN_CALLBACK();
	return CALL(tx, token_insert, t, id ? id : &ignored);
}

int store_token_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		    struct token_rec *out)
{
	int rc;

	REFUSE_IN_CALLBACK();
	rc = CALL(tx, token_get, hash, out);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int store_token_use(struct store_tx *tx, int64_t id)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, token_use, id);
}

int store_token_revoke(struct store_tx *tx, int64_t id)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, token_revoke, id);
}

int store_token_each(struct store_tx *tx, store_each_token cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, token_each, cb, arg);
	return rc;
}

int store_device_insert(struct store_tx *tx, const struct device_rec *d,
			const uint8_t secret_hash[STORE_HASH_LEN])
{
	struct device_rec c = *d;

	REFUSE_IN_CALLBACK();
	c.domain = c.domain ? c.domain : "";
	c.os = c.os ? c.os : "";
	return CALL(tx, device_insert, &c, secret_hash);
}

int store_device_get(struct store_tx *tx, const char *id, store_each_device cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, device_get, id, cb, arg);
	return rc;
}

int store_device_by_secret(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			   store_each_device cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, device_by_secret, hash, cb, arg);
	return rc;
}

int store_device_check_secret(struct store_tx *tx, const char *id,
			      const uint8_t hash[STORE_HASH_LEN])
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, device_check_secret, id, hash);
}

int store_device_checked_in(struct store_tx *tx, const char *id, const char *os, int64_t at)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, device_checked_in, id, os ? os : "", at);
}

int store_device_checkin_many(struct store_tx *tx, const struct device_checkin *c, size_t n,
			      int *rcs)
{
	REFUSE_IN_CALLBACK();
	if (!n)
		return 0;
	return CALL(tx, device_checkin_many, c, n, rcs);
}

int store_device_set_revoked(struct store_tx *tx, const char *id, bool revoked)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, device_set_revoked, id, revoked);
}

int store_device_each(struct store_tx *tx, const char *prefix, int64_t limit,
		      store_each_device cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, device_each, prefix ? prefix : "", limit > 0 ? limit : 0, cb, arg);
	return rc;
}

int store_device_each_volumes(struct store_tx *tx, const char *after_id, int64_t limit,
			      store_each_device_volumes cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (limit <= 0)
		return KW_ERR_INVALID;
	EACH(rc, tx, device_each_volumes, after_id ? after_id : "", limit, cb, arg);
	return rc;
}

int store_volume_upsert(struct store_tx *tx, const struct volume_rec *v, int64_t *row)
{
	int64_t r = 0;
	int rc;

	REFUSE_IN_CALLBACK();
	rc = CALL(tx, volume_upsert, v, &r);
	if (row)
		*row = rc < 0 ? 0 : r;
	return rc;
}

int store_volume_upsert_many(struct store_tx *tx, const struct volume_rec *v, size_t n,
			     int64_t *rows)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (!n)
		return 0;
	if ((rc = CALL(tx, volume_upsert_many, v, n, rows)) < 0)
		memset(rows, 0, n * sizeof(*rows));
	return rc;
}

int store_volume_each(struct store_tx *tx, const char *device_id, store_each_volume cb,
		      void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, volume_each, device_id, cb, arg);
	return rc;
}

int store_key_get(struct store_tx *tx, const char *key_id, store_each_key cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (strlen(key_id) != STORE_ID_LEN)
		return KW_ERR_INVALID;
	EACH(rc, tx, key_get, key_id, cb, arg);
	return rc;
}

/* The IDs, each canonical? */
static bool canonical(const char *const *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(ids[i]) != STORE_ID_LEN)
			return false;
	return true;
}

int store_key_get_many(struct store_tx *tx, const char *const *key_ids, size_t n,
		       store_each_key cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (!canonical(key_ids, n))
		return KW_ERR_INVALID;
	if (!n)
		return 0;
	EACH(rc, tx, key_get_many, key_ids, n, cb, arg);
	return rc;
}

int store_key_insert_many(struct store_tx *tx, const struct key_rec *k, size_t n)
{
	REFUSE_IN_CALLBACK();
	for (size_t i = 0; i < n; i++)
		if (strlen(k[i].key_id) != STORE_ID_LEN)
			return KW_ERR_INVALID;
	if (!n)
		return 0;
	return CALL(tx, key_insert_many, k, n);
}

int store_key_set_state_many(struct store_tx *tx, const struct key_change *c, size_t n,
			     int64_t at)
{
	REFUSE_IN_CALLBACK();
	if (!n)
		return 0;
	return CALL(tx, key_set_state_many, c, n, at);
}

int store_logon_upsert_many(struct store_tx *tx, const struct logon_rec *l, size_t n)
{
	REFUSE_IN_CALLBACK();
	if (!n)
		return 0;
	return CALL(tx, logon_upsert_many, l, n);
}

int store_key_insert(struct store_tx *tx, const struct key_rec *k)
{
	REFUSE_IN_CALLBACK();
	if (strlen(k->key_id) != STORE_ID_LEN)
		return KW_ERR_INVALID;
	return CALL(tx, key_insert, k);
}

int store_key_import(struct store_tx *tx, const struct key_rec *k)
{
	REFUSE_IN_CALLBACK();
	if (strlen(k->key_id) != STORE_ID_LEN || !k->origin || !*k->origin ||
	    strlen(k->origin) > STORE_ORIGIN_MAX || k->state < KEY_ACTIVE ||
	    k->state > KEY_SUPERSEDED)
		return KW_ERR_INVALID;
	return CALL(tx, key_import, k);
}

int store_key_set_state(struct store_tx *tx, int64_t row, enum key_state state, int64_t at)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, key_set_state, row, state, at);
}

int store_key_set_sealed(struct store_tx *tx, int64_t row, const uint8_t *sealed, size_t len)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, key_set_sealed, row, sealed, len);
}

int store_key_each_volume(struct store_tx *tx, int64_t volume_row, unsigned states,
			  store_each_key cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, key_each_volume, volume_row, states, cb, arg);
	return rc;
}

int store_key_each_devices(struct store_tx *tx, const char *const *ids, size_t n,
			   unsigned states, store_each_key cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (!n)
		return 0;
	EACH(rc, tx, key_each_devices, ids, n, states, cb, arg);
	return rc;
}

int store_key_each_device(struct store_tx *tx, const char *device_id, unsigned states,
			  store_each_key cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, key_each_device, device_id, states, cb, arg);
	return rc;
}

int store_key_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			store_each_key cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (limit <= 0)
		return KW_ERR_INVALID;
	EACH(rc, tx, key_each_page, after_row, limit, cb, arg);
	return rc;
}

int store_key_each_state(struct store_tx *tx, enum key_state state, int64_t after_changed,
			 int64_t after_row, int64_t limit, store_each_key_full cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (limit <= 0 || (unsigned)state > KEY_SUPERSEDED)
		return KW_ERR_INVALID;
	EACH(rc, tx, key_each_state, state, after_changed, after_row, limit, cb, arg);
	return rc;
}

int store_key_each_full(struct store_tx *tx, store_each_key_full cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, key_each_full, cb, arg);
	return rc;
}

int store_key_each_entitled(struct store_tx *tx, const char *prefix_hex,
			    const char *const *users, size_t nusers, unsigned states,
			    store_each_key_full cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, key_each_entitled, prefix_hex, users, nusers, states, cb, arg);
	return rc;
}

int store_key_each_prefix(struct store_tx *tx, const char *prefix_hex, unsigned states,
			  store_each_key_full cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, key_each_prefix, prefix_hex, states, cb, arg);
	return rc;
}

int64_t store_key_count(struct store_tx *tx)
{
	int64_t n;

	REFUSE_IN_CALLBACK();
	n = OPS(tx)->key_count(tx);
	if (n == KW_ERR_STORE)
		store_count_error();
	return n;
}

int store_logon_upsert(struct store_tx *tx, const struct logon_rec *l)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, logon_upsert, l);
}

int store_logon_each_device(struct store_tx *tx, const char *device_id,
			    store_each_logon cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, logon_each_device, device_id, cb, arg);
	return rc;
}

int store_assoc_add(struct store_tx *tx, const struct assoc_rec *a)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, assoc_add, a);
}

int store_assoc_each_device(struct store_tx *tx, const char *device_id,
			    store_each_assoc cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, assoc_each_device, device_id, cb, arg);
	return rc;
}

int store_user_insert(struct store_tx *tx, const struct user_rec *u)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, user_insert, u);
}

int store_user_get(struct store_tx *tx, const char *name, store_each_user cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, user_get, name, cb, arg);
	return rc;
}

int store_user_update(struct store_tx *tx, const struct user_rec *u)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, user_update, u);
}

int store_user_each(struct store_tx *tx, store_each_user cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, user_each, cb, arg);
	return rc;
}

int store_session_insert(struct store_tx *tx, const struct session_rec *r)
{
	struct session_rec c = *r;

	REFUSE_IN_CALLBACK();
	c.identities = c.identities ? c.identities : "";
	return CALL(tx, session_insert, &c);
}

int store_session_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		      store_each_session cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, session_get, hash, cb, arg);
	return rc;
}

int store_session_touch(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN], int64_t at,
			int notice_accepted)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, session_touch, hash, at, notice_accepted < 0 ? -1 : !!notice_accepted);
}

int store_session_delete(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN])
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, session_delete, hash);
}

int store_session_purge(struct store_tx *tx, int64_t idle_before, int64_t created_before)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, session_purge, idle_before, created_before);
}

int store_session_delete_user(struct store_tx *tx, const char *user)
{
	REFUSE_IN_CALLBACK();
	return CALL(tx, session_delete_user, user);
}

int store_audit_append(struct store_tx *tx, struct audit_rec *rec, store_audit_hash_fn hash)
{
	struct audit_rec c = *rec;
	const char **text[] = { &c.source, &c.result, &c.actor, &c.end_user, &c.computer,
				&c.device_id, &c.key_id, &c.key_type, &c.reason, &c.comment,
				&c.client };
	int rc;

	REFUSE_IN_CALLBACK();
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		if (!*text[i])
			*text[i] = "";
	if ((rc = CALL(tx, audit_append, &c, hash)) < 0)
		return rc;
	rec->seq = c.seq;
	memcpy(rec->prev_hash, c.prev_hash, sizeof(rec->prev_hash));
	memcpy(rec->hash, c.hash, sizeof(rec->hash));
	return 0;
}

/* A head's value: KW_ERR_INVALID unless "<seq>:<64 hex digits>". */
static int head_parse(const char *v, int64_t *seq, uint8_t hash[32])
{
	const char *colon = strchr(v, ':');
	size_t n = colon ? (size_t)(colon - v) : 0, len = 0;
	char num[21];

	if (!n || n >= sizeof(num) || strlen(colon + 1) != 64)
		return KW_ERR_INVALID;
	memcpy(num, v, n);
	num[n] = '\0';
	if (str_to_i64(num, 1, INT64_MAX, seq) < 0 ||
	    sodium_hex2bin(hash, 32, colon + 1, 64, NULL, &len, NULL) != 0 || len != 32)
		return KW_ERR_INVALID;
	return 0;
}

int store_audit_head(struct store_tx *tx, int64_t *seq, uint8_t hash[32])
{
	char v[STORE_AUDIT_HEAD_LEN + 1];
	int rc;

	REFUSE_IN_CALLBACK();
	if ((rc = CALL(tx, meta_get, STORE_AUDIT_HEAD, v, sizeof(v))) < 0)
		return rc;
	return head_parse(v, seq, hash);
}

int store_audit_each(struct store_tx *tx, const struct audit_filter *f, store_each_audit cb,
		     void *arg)
{
	static const struct audit_filter all;
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, audit_each, f ? f : &all, cb, arg);
	return rc;
}

int store_audit_page(struct store_tx *tx, const struct audit_filter *f, int64_t cursor,
		     bool newer, int64_t limit, store_each_audit cb, void *arg)
{
	static const struct audit_filter all;
	int rc;

	REFUSE_IN_CALLBACK();
	if (limit <= 0 || cursor < 0)
		return KW_ERR_INVALID;
	EACH(rc, tx, audit_page, f ? f : &all, cursor, newer, limit, cb, arg);
	return rc;
}

/* A limiter's name and a key within their caps. */
static bool limit_names(const char *limiter, const char *key)
{
	return limiter && strlen(limiter) <= STORE_LIMITER_MAX &&
		(!key || strlen(key) <= STORE_LIMIT_KEY_MAX);
}

int store_limit_take(struct store_tx *tx, const char *limiter, const char *key, int64_t now,
		     int64_t count, int64_t window, int64_t *retry_after)
{
	int64_t retry = 0;
	int rc;

	REFUSE_IN_CALLBACK();
	if (retry_after)
		*retry_after = 0;
	if (!key || !limit_names(limiter, key) || count < 1 || window < 1)
		return KW_ERR_INVALID;
	rc = CALL(tx, limit_take, limiter, key, now, count, window, &retry);
	if (rc == 0 && retry_after)
		*retry_after = retry < 1 ? 1 : retry;
	return rc;
}

int store_limit_give_back(struct store_tx *tx, const char *limiter, const char *key,
			  int64_t at)
{
	REFUSE_IN_CALLBACK();
	if (!key || !limit_names(limiter, key))
		return KW_ERR_INVALID;
	return CALL(tx, limit_give_back, limiter, key, at);
}

int store_limit_clear(struct store_tx *tx, const char *limiter, const char *key)
{
	REFUSE_IN_CALLBACK();
	if (!key || !limit_names(limiter, key))
		return KW_ERR_INVALID;
	return CALL(tx, limit_clear, limiter, key);
}

int store_limit_purge(struct store_tx *tx, const char *limiter, int64_t now, int64_t window)
{
	REFUSE_IN_CALLBACK();
	if (!limit_names(limiter, NULL) || window < 1)
		return KW_ERR_INVALID;
	return CALL(tx, limit_purge, limiter, now, window);
}

/* ---- copying a whole store ---- */

int store_count_all(struct store_tx *tx, struct store_counts *out)
{
	int rc;

	REFUSE_IN_CALLBACK();
	memset(out, 0, sizeof(*out));
	if ((rc = CALL(tx, count_all, out)) < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int store_meta_each(struct store_tx *tx, store_each_meta cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	EACH(rc, tx, meta_each, cb, arg);
	return rc;
}

int store_device_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			   store_each_device_copy cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (limit <= 0)
		return KW_ERR_INVALID;
	EACH(rc, tx, device_each_page, after_row, limit, cb, arg);
	return rc;
}

int store_device_copy_many(struct store_tx *tx, const struct device_copy_rec *d, size_t n)
{
	struct device_copy_rec *c;
	int rc;

	REFUSE_IN_CALLBACK();
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (d[i].row < 1)
			return KW_ERR_INVALID;
	if (!(c = malloc(n * sizeof(*c))))
		return KW_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = d[i];
		c[i].device.domain = c[i].device.domain ? c[i].device.domain : "";
		c[i].device.os = c[i].device.os ? c[i].device.os : "";
	}
	rc = CALL(tx, device_copy_many, c, n);
	free(c);
	return rc;
}

int store_volume_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			   store_each_volume cb, void *arg)
{
	int rc;

	REFUSE_IN_CALLBACK();
	if (limit <= 0)
		return KW_ERR_INVALID;
	EACH(rc, tx, volume_each_page, after_row, limit, cb, arg);
	return rc;
}

int store_volume_copy_many(struct store_tx *tx, const struct volume_rec *v, size_t n)
{
	REFUSE_IN_CALLBACK();
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].row < 1)
			return KW_ERR_INVALID;
	return CALL(tx, volume_copy_many, v, n);
}

int store_key_copy_many(struct store_tx *tx, const struct key_rec *k, size_t n)
{
	struct key_rec *c;
	int rc;

	REFUSE_IN_CALLBACK();
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (k[i].row < 1 || strlen(k[i].key_id) != STORE_ID_LEN ||
		    k[i].state < KEY_ACTIVE || k[i].state > KEY_SUPERSEDED)
			return KW_ERR_INVALID;
	if (!(c = malloc(n * sizeof(*c))))
		return KW_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = k[i];
		c[i].origin = c[i].origin ? c[i].origin : "";
	}
	rc = CALL(tx, key_copy_many, c, n);
	free(c);
	return rc;
}

int store_token_copy(struct store_tx *tx, const struct token_rec *t)
{
	REFUSE_IN_CALLBACK();
	if (t->id < 1)
		return KW_ERR_INVALID;
	return CALL(tx, token_copy, t);
}

int store_user_copy(struct store_tx *tx, const struct user_rec *u)
{
	struct user_rec c = *u;

	REFUSE_IN_CALLBACK();
	if (u->id < 1 || !u->name)
		return KW_ERR_INVALID;
	c.password_hash = c.password_hash ? c.password_hash : "";
	return CALL(tx, user_copy, &c);
}

/* NULL strings of an audit record as "". */
static void audit_defaults(struct audit_rec *r)
{
	const char **f[] = { &r->source, &r->result, &r->actor, &r->end_user, &r->computer,
			     &r->device_id, &r->key_id, &r->key_type, &r->reason, &r->comment,
			     &r->client };

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!*f[i])
			*f[i] = "";
}

int store_audit_copy_many(struct store_tx *tx, const struct audit_rec *r, size_t n)
{
	struct audit_rec *c;
	int rc;

	REFUSE_IN_CALLBACK();
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (r[i].seq < 1)
			return KW_ERR_INVALID;
	if (!(c = malloc(n * sizeof(*c))))
		return KW_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = r[i];
		audit_defaults(&c[i]);
	}
	rc = CALL(tx, audit_copy_many, c, n);
	free(c);
	return rc;
}

/* ---- for backends: the audit chain ---- */

int store_audit_chain(int64_t last_seq, const uint8_t last_hash[32], const char *head_now,
		      struct audit_rec *rec, store_audit_hash_fn hash,
		      char head[STORE_AUDIT_HEAD_LEN])
{
	uint8_t prev[32], hhash[32];
	int64_t seq = last_seq, hseq;
	char hex[65];

	memcpy(prev, last_hash, sizeof(prev));
	/* When the newest records were deleted, continue from the head rather
	 * than from what is left: the gap keeps the deletion visible to
	 * audit_verify after this append overwrites the head. A malformed head
	 * is left for audit_verify to report. */
	if (head_now && head_parse(head_now, &hseq, hhash) == 0 && hseq > seq) {
		seq = hseq;
		memcpy(prev, hhash, sizeof(prev));
	}
	if (seq == INT64_MAX)
		return KW_ERR_TOO_LARGE;
	rec->seq = seq + 1;
	memcpy(rec->prev_hash, prev, sizeof(rec->prev_hash));
	hash(rec, rec->hash);
	str_hex(rec->hash, sizeof(rec->hash), hex);
	snprintf(head, STORE_AUDIT_HEAD_LEN, "%lld:%s", (long long)rec->seq, hex);
	return 0;
}

/* ---- for backends: migrations ---- */

int store_schema_latest(const struct embedded_file *files)
{
	int v = 0;

	for (const struct embedded_file *f = files; f->name; f++) {
		int n = (int)strtol(f->name, NULL, 10);

		if (n > v)
			v = n;
	}
	return v;
}

int store_schema_check(const char *location, int version,
		       const struct embedded_file *files, char *msg, size_t msglen)
{
	int latest = store_schema_latest(files);

	if (version <= latest)
		return 0;
	snprintf(msg, msglen, "database %s has schema version %d, newer than this "
		 "keywarden (%d); run a newer keywarden", location, version, latest);
	return KW_ERR_SCHEMA;
}

int store_schema_migrate(struct store *s, const char *location,
			 const struct embedded_file *files, store_apply_fn apply, int *to,
			 char *msg, size_t msglen)
{
	int latest = store_schema_latest(files), rc;
	char err[256];

	if ((rc = store_schema_check(location, *to, files, msg, msglen)) < 0)
		return rc;
	for (int v = *to + 1; v <= latest; v++) {
		const struct embedded_file *f = NULL;

		for (const struct embedded_file *m = files; m->name; m++)
			if ((int)strtol(m->name, NULL, 10) == v)
				f = m;
		if (!f) {
			snprintf(msg, msglen, "migration %d is missing", v);
			return KW_ERR_INTERNAL;
		}
		if ((rc = apply(s, (const char *)f->data, v, err, sizeof(err))) < 0) {
			snprintf(msg, msglen, "migration %s failed: %s", f->name, err);
			return rc;
		}
		*to = v;
	}
	return 0;
}
