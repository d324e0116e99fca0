#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/walvfs.h"
#include "util/err.h"

struct fx {
	char dir[64];
	char path[128];
	char db[160];          /* "sqlite:" + path */
	struct store *s;
};

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* A temporary folder and a database path in it; no store opened. */
static int setup_dir(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/kw.db", f->dir);
	snprintf(f->db, sizeof(f->db), "sqlite:%s", f->path);
	*state = f;
	return 0;
}

/* The same, with a migrated store open. */
static int setup(void **state)
{
	struct fx *f;
	char msg[256] = "";

	if (setup_dir(state) < 0)
		return -1;
	f = *state;
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0) {
		print_error("store_open: %s\n", msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	/* A test that failed half-way leaves no fault behind for the next. */
	walvfs_set_sync_hook(NULL);
	walvfs_set_write_hook(NULL);
	remove_dir(f->dir);
	free(f);
	return 0;
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* PRAGMA/SELECT on the file through a connection of our own. */
static int64_t sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void sql_text(const char *path, const char *sql, char *out, size_t outlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
					 SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

/* ---- small transactions ---- */

static int tx_user_insert(struct store_tx *tx, void *arg)
{
	return store_user_insert(tx, arg);
}

static struct user_rec user(const char *name, unsigned roles)
{
	struct user_rec u;

	memset(&u, 0, sizeof(u));
	u.name = name;
	u.password_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA";
	u.roles = roles;
	u.created_at = 1000;
	return u;
}

static int add_user(struct store *s, const char *name)
{
	struct user_rec u = user(name, ROLE_HELPDESK);

	return store_write(s, tx_user_insert, &u);
}

struct names {
	char v[64][32];
	size_t n;
};

static int collect_user(const struct user_rec *u, void *arg)
{
	struct names *n = arg;

	if (n->n < 64)
		snprintf(n->v[n->n], sizeof(n->v[0]), "%s", u->name);
	n->n++;
	return 0;
}

static int tx_user_each(struct store_tx *tx, void *arg)
{
	return store_user_each(tx, collect_user, arg);
}

static bool has_name(const struct names *n, const char *name)
{
	for (size_t i = 0; i < n->n && i < 64; i++)
		if (!strcmp(n->v[i], name))
			return true;
	return false;
}

static int count_token(const struct token_rec *t, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static int tx_token_count(struct store_tx *tx, void *arg)
{
	*(size_t *)arg = 0;
	return store_token_each(tx, count_token, arg);
}

static size_t token_count(struct store *s)
{
	size_t n = 0;

	assert_int_equal(store_read(s, tx_token_count, &n), 0);
	return n;
}

static int tx_key_count(struct store_tx *tx, void *arg)
{
	int64_t n = store_key_count(tx);

	*(int64_t *)arg = n;
	return n < 0 ? (int)n : 0;
}

static int64_t key_count(struct store *s)
{
	int64_t n = -1;

	assert_int_equal(store_read(s, tx_key_count, &n), 0);
	return n;
}

/* ---- opening and migrations ---- */

static void test_open_fresh_and_again(void **state)
{
	struct fx *f = *state;
	struct names n = { .n = 0 };
	char msg[256] = "";
	int64_t version;

	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	version = sql_int(f->path, "PRAGMA user_version");
	assert_true(version >= 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE "
				 "name IN ('devices', 'volumes', 'recovery_keys', 'logons', "
				 "'associations', 'users', 'sessions', 'audit', "
				 "'enrollment_tokens', 'meta')"), 10);
	assert_int_equal(add_user(f->s, "alice"), 0);
	store_close(f->s);
	f->s = NULL;

	/* Again: nothing to do, nothing lost. */
	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), version);
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 1);
	assert_string_equal(n.v[0], "alice");
	store_close(f->s);
	f->s = NULL;

	/* And once more without migrating. */
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);
	n.n = 0;
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 1);
}

/* A database of version 1 (before limit_events) is brought up to date,
 * its data kept. */
static void test_migrate_from_version_1(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";

	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	assert_int_equal(add_user(f->s, "alice"), 0);
	store_close(f->s);
	f->s = NULL;
	sql_exec(f->path, "DROP TABLE limit_events; PRAGMA user_version = 1;");
	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 2);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE "
				 "name = 'limit_events'"), 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), 1);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";

	sql_exec(f->path, "PRAGMA user_version = 99;");
	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), KW_ERR_SCHEMA);
	assert_null(f->s);
	assert_contains(msg, "99");
	assert_contains(msg, f->path);
	/* The database is left as it was. */
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 99);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema"), 0);
}

static void test_newer_schema_refused_without_migrate(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";
	int rc;

	/* Refused even when not migrating. */
	sql_exec(f->path, "PRAGMA user_version = 99;");
	rc = store_open(f->db, false, &f->s, msg, sizeof(msg));
	assert_int_equal(rc, KW_ERR_SCHEMA);
	assert_contains(msg, "99");
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	char msg[256] = "", bad[300];

	assert_int_equal(store_open("sqlite:", true, &f->s, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_true(msg[0] != '\0');
	msg[0] = '\0';
	assert_int_equal(store_open("mysql://x", true, &f->s, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_true(msg[0] != '\0');
	snprintf(bad, sizeof(bad), "sqlite:%s/no/such/folder/kw.db", f->dir);
	msg[0] = '\0';
	assert_int_equal(store_open(bad, true, &f->s, msg, sizeof(msg)), KW_ERR_STORE);
	assert_contains(msg, "no/such/folder");
	assert_null(f->s);
}

static void test_wal_and_foreign_keys(void **state)
{
	struct fx *f = *state;
	char mode[32];

	/* journal_mode is stored in the file: a second connection sees it. */
	sql_text(f->path, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	/* foreign_keys is per connection: see test_foreign_keys_enforced. */
}

/* A failed operation is counted once for /metrics: by the typed function,
 * not again by the backend's statement. */
static void test_failure_counted_once(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";
	uint64_t before;
	size_t n = 0;

	store_close(f->s);
	f->s = NULL;
	sql_exec(f->path, "DROP TABLE enrollment_tokens;");
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);
	before = store_errors();
	assert_int_equal(store_read(f->s, tx_token_count, &n), KW_ERR_STORE);
	assert_int_equal(store_errors(), before + 1);
}

/* ---- devices, volumes, keys ---- */

#define DEV1 "11111111-1111-4111-8111-111111111111"
#define DEV2 "22222222-2222-4222-8222-222222222222"
#define DEV3 "33333333-3333-4333-8333-333333333333"
#define DEV4 "44444444-4444-4444-8444-444444444444"
#define DEV5 "55555555-5555-4555-8555-555555555555"

static void hash_of(uint8_t h[STORE_HASH_LEN], int i)
{
	memset(h, 0, STORE_HASH_LEN);
	h[0] = (uint8_t)(i & 0xff);
	h[1] = (uint8_t)((i >> 8) & 0xff);
	h[31] = 0x5a;
}

static int put_device(struct store_tx *tx, const char *id, const char *name, int n)
{
	struct device_rec d;
	uint8_t h[STORE_HASH_LEN];

	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", id);
	d.name = name;
	d.domain = "CORP";
	d.os = "Windows 11 Pro";
	d.created_at = 100;
	hash_of(h, n);
	return store_device_insert(tx, &d, h);
}

static int put_volume(struct store_tx *tx, const char *dev, const char *guid,
		      const char *mount, int64_t *row)
{
	struct volume_rec v;

	memset(&v, 0, sizeof(v));
	snprintf(v.device_id, sizeof(v.device_id), "%s", dev);
	snprintf(v.guid, sizeof(v.guid), "%s", guid);
	v.mount = mount;
	v.type = "os";
	v.protection = "on";
	v.encryption = "xts_aes_256";
	v.percent = 100;
	v.first_seen = v.last_seen = 200;
	return store_volume_upsert(tx, &v, row);
}

static int put_key(struct store_tx *tx, const char *dev, int64_t vol, const char *id,
		   enum key_state st)
{
	static const uint8_t sealed[] = { 1, 2, 3, 4, 5, 0, 7, 8 };
	struct key_rec k;

	memset(&k, 0, sizeof(k));
	snprintf(k.key_id, sizeof(k.key_id), "%s", id);
	snprintf(k.device_id, sizeof(k.device_id), "%s", dev);
	k.volume_row = vol;
	k.state = st;
	k.sealed = sealed;
	k.sealed_len = sizeof(sealed);
	k.created_at = 300;
	return store_key_insert(tx, &k);
}

static int put_logon(struct store_tx *tx, const char *dev, const char *user_name,
		     enum logon_type type, int64_t at)
{
	struct logon_rec l;

	memset(&l, 0, sizeof(l));
	snprintf(l.device_id, sizeof(l.device_id), "%s", dev);
	l.user = user_name;
	l.type = type;
	l.first_seen = l.last_seen = at;
	return store_logon_upsert(tx, &l);
}

static int put_assoc(struct store_tx *tx, const char *dev, const char *user_name)
{
	struct assoc_rec a;

	memset(&a, 0, sizeof(a));
	snprintf(a.device_id, sizeof(a.device_id), "%s", dev);
	a.user = user_name;
	a.added_by = "admin";
	a.created_at = 400;
	return store_assoc_add(tx, &a);
}

struct dev_copy {
	char id[STORE_ID_LEN + 1];
	char name[64], domain[64], os[64];
	int64_t created_at, last_checkin_at;
	bool revoked;
	int calls;
};

static int copy_device(const struct device_rec *d, void *arg)
{
	struct dev_copy *c = arg;

	snprintf(c->id, sizeof(c->id), "%s", d->id);
	snprintf(c->name, sizeof(c->name), "%s", d->name);
	snprintf(c->domain, sizeof(c->domain), "%s", d->domain);
	snprintf(c->os, sizeof(c->os), "%s", d->os);
	c->created_at = d->created_at;
	c->last_checkin_at = d->last_checkin_at;
	c->revoked = d->revoked;
	c->calls++;
	return 0;
}

struct dev_query {
	const char *id;
	uint8_t hash[STORE_HASH_LEN];
	struct dev_copy out;
	int rc;
};

static int tx_device_get(struct store_tx *tx, void *arg)
{
	struct dev_query *q = arg;

	memset(&q->out, 0, sizeof(q->out));
	q->rc = q->id ? store_device_get(tx, q->id, copy_device, &q->out)
		      : store_device_by_secret(tx, q->hash, copy_device, &q->out);
	return 0;
}

static int tx_devices(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-0042", 1)) < 0 ||
	    (rc = put_device(tx, DEV2, "pc-0001", 2)) < 0 ||
	    (rc = put_device(tx, DEV3, "Laptop-7", 3)) < 0)
		return rc;
	return 0;
}

static int tx_device_dup_id(struct store_tx *tx, void *arg)
{
	return put_device(tx, DEV1, "other", 77);
}

static int tx_device_dup_secret(struct store_tx *tx, void *arg)
{
	return put_device(tx, DEV4, "other", 1);
}

static int tx_device_update(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = store_device_checked_in(tx, DEV1, "Windows 11 Pro 24H2", 5000)) < 0)
		return rc;
	return store_device_set_revoked(tx, DEV2, true);
}

static int tx_revoke_unknown(struct store_tx *tx, void *arg)
{
	return store_device_set_revoked(tx, DEV5, true);
}

struct dev_list {
	char names[8][32];
	size_t n;
};

static int list_device(const struct device_rec *d, void *arg)
{
	struct dev_list *l = arg;

	if (l->n < 8)
		snprintf(l->names[l->n], sizeof(l->names[0]), "%s", d->name);
	l->n++;
	return 0;
}

struct dev_each_q {
	const char *prefix;
	int64_t limit;
	struct dev_list l;
};

static int tx_device_each(struct store_tx *tx, void *arg)
{
	struct dev_each_q *q = arg;

	memset(&q->l, 0, sizeof(q->l));
	return store_device_each(tx, q->prefix, q->limit, list_device, &q->l);
}

struct check_q {
	const char *id;
	int hash;
};

static int tx_check_secret(struct store_tx *tx, void *arg)
{
	const struct check_q *q = arg;
	uint8_t h[STORE_HASH_LEN];

	hash_of(h, q->hash);
	return store_device_check_secret(tx, q->id, h);
}

static int check_secret(struct store *s, const char *id, int hash)
{
	struct check_q q = { id, hash };

	return store_write(s, tx_check_secret, &q);
}

static void test_devices(void **state)
{
	struct fx *f = *state;
	struct dev_query q;
	struct dev_each_q e;

	assert_int_equal(store_write(f->s, tx_devices, NULL), 0);

	memset(&q, 0, sizeof(q));
	q.id = DEV1;
	assert_int_equal(store_read(f->s, tx_device_get, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_int_equal(q.out.calls, 1);
	assert_string_equal(q.out.id, DEV1);
	assert_string_equal(q.out.name, "PC-0042");
	assert_string_equal(q.out.domain, "CORP");
	assert_string_equal(q.out.os, "Windows 11 Pro");
	assert_int_equal(q.out.created_at, 100);
	assert_int_equal(q.out.last_checkin_at, 0);
	assert_false(q.out.revoked);

	/* By secret hash. */
	memset(&q, 0, sizeof(q));
	hash_of(q.hash, 2);
	assert_int_equal(store_read(f->s, tx_device_get, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_string_equal(q.out.id, DEV2);
	hash_of(q.hash, 99);
	assert_int_equal(store_read(f->s, tx_device_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);
	assert_int_equal(q.out.calls, 0);
	q.id = DEV5;
	assert_int_equal(store_read(f->s, tx_device_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);

	/* The same ID or the same secret twice. */
	assert_int_equal(store_write(f->s, tx_device_dup_id, NULL), KW_ERR_EXISTS);
	assert_int_equal(store_write(f->s, tx_device_dup_secret, NULL), KW_ERR_EXISTS);
	q.id = DEV4;
	assert_int_equal(store_read(f->s, tx_device_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);

	/* Check-in and revocation. */
	assert_int_equal(store_write(f->s, tx_device_update, NULL), 0);
	q.id = DEV1;
	assert_int_equal(store_read(f->s, tx_device_get, &q), 0);
	assert_string_equal(q.out.os, "Windows 11 Pro 24H2");
	assert_int_equal(q.out.last_checkin_at, 5000);
	assert_false(q.out.revoked);
	q.id = DEV2;
	assert_int_equal(store_read(f->s, tx_device_get, &q), 0);
	assert_true(q.out.revoked);
	assert_int_equal(store_write(f->s, tx_revoke_unknown, NULL), KW_ERR_NOT_FOUND);

	/* The check a check-in makes in its write. */
	assert_int_equal(check_secret(f->s, DEV1, 1), 0);
	assert_int_equal(check_secret(f->s, DEV1, 3), KW_ERR_AUTH);   /* DEV3's */
	assert_int_equal(check_secret(f->s, DEV2, 2), KW_ERR_AUTH);   /* revoked */
	assert_int_equal(check_secret(f->s, DEV5, 1), KW_ERR_AUTH);   /* unknown */

	/* Name prefix, case-insensitive, ordered by name; limit. */
	e.prefix = "PC-00";
	e.limit = 0;
	assert_int_equal(store_read(f->s, tx_device_each, &e), 0);
	assert_int_equal(e.l.n, 2);
	assert_string_equal(e.l.names[0], "pc-0001");
	assert_string_equal(e.l.names[1], "PC-0042");
	e.limit = 1;
	assert_int_equal(store_read(f->s, tx_device_each, &e), 0);
	assert_int_equal(e.l.n, 1);
	assert_string_equal(e.l.names[0], "pc-0001");
	e.prefix = "";
	e.limit = 0;
	assert_int_equal(store_read(f->s, tx_device_each, &e), 0);
	assert_int_equal(e.l.n, 3);
	assert_string_equal(e.l.names[0], "Laptop-7");
	e.prefix = "lap";
	assert_int_equal(store_read(f->s, tx_device_each, &e), 0);
	assert_int_equal(e.l.n, 1);
	e.prefix = "x";
	assert_int_equal(store_read(f->s, tx_device_each, &e), 0);
	assert_int_equal(e.l.n, 0);
	/* LIKE wildcards are not wildcards. */
	e.prefix = "%";
	assert_int_equal(store_read(f->s, tx_device_each, &e), 0);
	assert_int_equal(e.l.n, 0);
	e.prefix = "pc_";
	assert_int_equal(store_read(f->s, tx_device_each, &e), 0);
	assert_int_equal(e.l.n, 0);
}

/* ---- users ---- */

struct user_copy {
	char name[64], hash[128];
	unsigned roles;
	bool disabled;
	int64_t created_at;
	int calls;
};

static int copy_user(const struct user_rec *u, void *arg)
{
	struct user_copy *c = arg;

	snprintf(c->name, sizeof(c->name), "%s", u->name);
	snprintf(c->hash, sizeof(c->hash), "%s", u->password_hash);
	c->roles = u->roles;
	c->disabled = u->disabled;
	c->created_at = u->created_at;
	c->calls++;
	return 0;
}

struct user_q {
	const char *name;
	struct user_copy out;
	int rc;
};

static int tx_user_get(struct store_tx *tx, void *arg)
{
	struct user_q *q = arg;

	memset(&q->out, 0, sizeof(q->out));
	q->rc = store_user_get(tx, q->name, copy_user, &q->out);
	return 0;
}

static int tx_user_update(struct store_tx *tx, void *arg)
{
	return store_user_update(tx, arg);
}

static void test_users(void **state)
{
	struct fx *f = *state;
	struct user_rec u = user("Alice", ROLE_HELPDESK | ROLE_REPORTS);
	struct user_q q;
	struct names n = { .n = 0 };

	assert_int_equal(store_write(f->s, tx_user_insert, &u), 0);
	/* Found whatever the case. */
	static const char *const spellings[] = { "Alice", "alice", "ALICE", "aLiCe" };
	for (size_t i = 0; i < 4; i++) {
		q.name = spellings[i];
		assert_int_equal(store_read(f->s, tx_user_get, &q), 0);
		assert_int_equal(q.rc, 0);
		assert_int_equal(q.out.calls, 1);
		assert_string_equal(q.out.name, "Alice");   /* as created */
		assert_int_equal(q.out.roles, ROLE_HELPDESK | ROLE_REPORTS);
		assert_string_equal(q.out.hash, u.password_hash);
		assert_false(q.out.disabled);
		assert_int_equal(q.out.created_at, 1000);
	}
	/* The same name in another case is a duplicate. */
	u = user("aLICE", ROLE_ADMIN);
	assert_int_equal(store_write(f->s, tx_user_insert, &u), KW_ERR_EXISTS);
	q.name = "alice";
	assert_int_equal(store_read(f->s, tx_user_get, &q), 0);
	assert_int_equal(q.out.roles, ROLE_HELPDESK | ROLE_REPORTS);
	q.name = "bob";
	assert_int_equal(store_read(f->s, tx_user_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);
	assert_int_equal(q.out.calls, 0);
	/* A prefix is not the name. */
	q.name = "alic";
	assert_int_equal(store_read(f->s, tx_user_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);

	/* Update by any spelling. */
	u = user("ALICE", ROLE_ADMIN);
	u.password_hash = "new";
	u.disabled = true;
	assert_int_equal(store_write(f->s, tx_user_update, &u), 0);
	q.name = "Alice";
	assert_int_equal(store_read(f->s, tx_user_get, &q), 0);
	assert_int_equal(q.out.roles, ROLE_ADMIN);
	assert_string_equal(q.out.hash, "new");
	assert_true(q.out.disabled);
	u = user("nobody", 0);
	assert_int_equal(store_write(f->s, tx_user_update, &u), KW_ERR_NOT_FOUND);

	/* Listing, ordered by name. */
	assert_int_equal(add_user(f->s, "bob"), 0);
	assert_int_equal(add_user(f->s, "Aaron"), 0);
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 3);
	assert_string_equal(n.v[0], "Aaron");
	assert_string_equal(n.v[1], "Alice");
	assert_string_equal(n.v[2], "bob");
}

static void test_read_is_read_only(void **state)
{
	struct fx *f = *state;
	struct user_rec u = user("sneaky", 0);
	struct user_q q;

	assert_true(store_read(f->s, tx_user_insert, &u) < 0);
	q.name = "sneaky";
	assert_int_equal(store_read(f->s, tx_user_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);
}

/* ---- meta ---- */

struct meta_q {
	char out[64];
	int rc;
};

static int tx_meta_set(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = store_meta_set(tx, "fingerprint", "aaaa")) < 0)
		return rc;
	return store_meta_set(tx, "fingerprint", (const char *)arg);
}

static int tx_meta_get(struct store_tx *tx, void *arg)
{
	struct meta_q *q = arg;

	q->out[0] = '\0';
	q->rc = store_meta_get(tx, "fingerprint", q->out, sizeof(q->out));
	return 0;
}

static void test_meta(void **state)
{
	struct fx *f = *state;
	struct meta_q q;

	assert_int_equal(store_read(f->s, tx_meta_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_meta_set, "0123456789abcdef"), 0);
	assert_int_equal(store_read(f->s, tx_meta_get, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_string_equal(q.out, "0123456789abcdef");
}

/* ---- the log's write buffer (walvfs.c) ---- */

static int tx_meta_big(struct store_tx *tx, void *arg)
{
	return store_meta_set(tx, "big", (const char *)arg);
}

/* Commits bigger than the log's write buffer (and than one write of the
 * unix VFS) are whole in the file as soon as store_write returns: a plain
 * SQLite connection sees them while the store is open, and so does one
 * opened after a process wrote them and exited without closing. */
static void test_commit_is_in_the_log_file(void **state)
{
	struct fx *f = *state;
	size_t sizes[] = { 100, 200 * 1024, 1300 * 1024 };
	char *v = malloc(1300 * 1024 + 1);
	int status;
	pid_t pid;

	assert_non_null(v);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char sql[96];

		memset(v, 'a' + (int)i, sizes[i]);
		v[sizes[i]] = '\0';
		assert_int_equal(store_write(f->s, tx_meta_big, v), 0);
		snprintf(sql, sizeof(sql), "SELECT length(value) || substr(value, -1) "
			 "FROM meta WHERE name = 'big'");
		sql_text(f->path, sql, v, 64);
		snprintf(sql, sizeof(sql), "%zu%c", sizes[i], 'a' + (int)i);
		assert_string_equal(v, sql);
	}

	/* A process that commits and dies without closing the store. */
	store_close(f->s);
	f->s = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s = NULL;
		char msg[256];

		memset(v, 'z', 300 * 1024);
		v[300 * 1024] = '\0';
		if (store_open(f->db, false, &s, msg, sizeof(msg)) < 0 ||
		    store_write(s, tx_meta_big, v) < 0)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	sql_text(f->path, "SELECT length(value) || substr(value, -1) FROM meta "
		 "WHERE name = 'big'", v, 64);
	assert_string_equal(v, "307200z");
	free(v);
}

/* Deferred syncs (walvfs.h): a COMMIT made while deferring owes a sync
 * once the log has been synced for real, and is visible to others. */
static void test_walvfs_deferred_sync(void **state)
{
	struct fx *f = *state;
	const char *vfs = walvfs_register();
	struct walvfs_log *log;
	sqlite3 *db = NULL;
	char path[600], v[16];

	assert_non_null(vfs);
	snprintf(path, sizeof(path), "%s/defer.db", f->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
					 vfs), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
				      "CREATE TABLE t (v TEXT)", NULL, NULL, NULL), SQLITE_OK);
	assert_non_null(log = walvfs_log(db));

	/* The log's first sync is real (its directory entry must be durable). */
	assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('one')", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_false(walvfs_owed(log));

	assert_true(walvfs_defer(log, true));
	assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('two')", NULL, NULL, NULL),
			 SQLITE_OK);
	walvfs_defer(log, false);
	assert_true(walvfs_owed(log));
	assert_false(walvfs_owed(log));   /* told once */
	sql_text(path, "SELECT group_concat(v) FROM t", v, sizeof(v));
	assert_string_equal(v, "one,two");
	assert_int_equal(walvfs_sync(log), SQLITE_OK);

	/* When the log starts over its new header is synced for real, even
	 * while deferring (then the commit's own sync is owed as usual). */
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
			 SQLITE_OK);
	{
		unsigned long before = walvfs_real_syncs(log);

		assert_true(walvfs_defer(log, true));
		assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('restart')", NULL, NULL,
					      NULL), SQLITE_OK);
		walvfs_defer(log, false);
		assert_int_equal(walvfs_real_syncs(log), before + 1);
		assert_true(walvfs_owed(log));
		assert_int_equal(walvfs_sync(log), SQLITE_OK);
	}

	/* Not deferring: nothing owed. */
	assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('3')", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_false(walvfs_owed(log));
	sqlite3_close(db);
}

/* The syncer (sqlite.c): a group is answered only once every earlier
 * group's deferred sync is done, even a group that wrote nothing; and a
 * failed sync fails its group and every write after it. A hook stands in
 * for a slow, then a failing disk. */
static sem_t sync_entered, sync_release;
static atomic_int sync_fail;

static int slow_sync(void)
{
	sem_post(&sync_entered);
	while (sem_wait(&sync_release) < 0)
		;
	if (atomic_exchange(&sync_fail, 0)) {   /* this sync only */
		errno = EIO;
		return -1;
	}
	return 0;
}

/* The syncer has reached the disk (within 10 s). */
static void wait_sync_entered(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	while (sem_timedwait(&sync_entered, &ts) < 0)
		assert_int_equal(errno, EINTR);
}

static int tx_write_meta(struct store_tx *tx, void *arg)
{
	return store_meta_set(tx, "order", (const char *)arg);
}

static int tx_nothing(struct store_tx *tx, void *arg)
{
	return 0;
}

struct done_rec {
	atomic_int order[2];
	atomic_int rc[2];
	atomic_int n;
};

static void done_a(int rc, void *arg)
{
	struct done_rec *d = arg;

	d->rc[0] = rc;
	d->order[0] = atomic_fetch_add(&d->n, 1) + 1;
}

static void done_b(int rc, void *arg)
{
	struct done_rec *d = arg;

	d->rc[1] = rc;
	d->order[1] = atomic_fetch_add(&d->n, 1) + 1;
}

static void wait_done(struct done_rec *d, int n)
{
	for (int i = 0; i < 1000 && atomic_load(&d->n) < n; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&d->n), n);
}

static void test_syncer_order_and_failure(void **state)
{
	struct fx *f = *state;
	struct done_rec d;
	char msg[256], reason[128];
	int early;

	/* A store whose syncs go through the hook. */
	store_close(f->s);
	f->s = NULL;
	sem_init(&sync_entered, 0, 0);
	sem_init(&sync_release, 0, 0);
	atomic_store(&sync_fail, 0);
	walvfs_set_sync_hook(slow_sync);
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);

	/* Group A commits and waits for its sync; group B writes nothing. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(store_write_async(f->s, tx_write_meta, "a", done_a, &d), 0);
	wait_sync_entered();
	assert_int_equal(store_write_async(f->s, tx_nothing, NULL, done_b, &d), 0);
	usleep(100000);           /* B has long been run by the writer */
	early = atomic_load(&d.n);
	sem_post(&sync_release);  /* A's sync is done */
	assert_int_equal(early, 0);
	wait_done(&d, 2);
	assert_int_equal(d.order[0], 1);
	assert_int_equal(d.order[1], 2);
	assert_int_equal(d.rc[0], 0);
	assert_int_equal(d.rc[1], 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_OK);

	/* A failing sync fails its group, a group committed meanwhile (no
	 * second fdatasync can vouch for it: Linux reports a writeback error
	 * once), and every write after it. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(store_write_async(f->s, tx_write_meta, "b", done_a, &d), 0);
	wait_sync_entered();
	assert_int_equal(store_write_async(f->s, tx_write_meta, "x", done_b, &d), 0);
	usleep(100000);           /* x committed, waiting for the syncer */
	atomic_store(&sync_fail, 1);
	for (int i = 0; i < 4; i++)   /* later syncs, if any, pass */
		sem_post(&sync_release);
	wait_done(&d, 2);
	assert_int_equal(d.rc[0], KW_ERR_STORE);
	assert_int_equal(d.rc[1], KW_ERR_STORE);
	assert_int_equal(store_write(f->s, tx_write_meta, "c"), KW_ERR_UNAVAILABLE);
	assert_int_equal(store_write(f->s, tx_nothing, NULL), KW_ERR_UNAVAILABLE);
	/* Said with the reason, and final: the disk works again, not the log. */
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_RESTART_NEEDED);
	assert_contains(reason, "restart keywarden");
	assert_contains(reason, strerror(EIO));
	assert_int_equal(store_last_state(), STORE_RESTART_NEEDED);

	store_close(f->s);
	f->s = NULL;
	walvfs_set_sync_hook(NULL);
	sem_destroy(&sync_entered);
	sem_destroy(&sync_release);
}

/* ---- enrollment tokens ---- */

struct token_q {
	uint8_t hash[STORE_HASH_LEN];
	struct token_rec out;
	int rc;
};

static int tx_token_get(struct store_tx *tx, void *arg)
{
	struct token_q *q = arg;

	memset(&q->out, 0, sizeof(q->out));
	q->rc = store_token_get(tx, q->hash, &q->out);
	return 0;
}

struct token_ins {
	struct token_rec rec;
	int64_t id;
};

static int tx_token_insert(struct store_tx *tx, void *arg)
{
	struct token_ins *t = arg;

	return store_token_insert(tx, &t->rec, &t->id);
}

static int tx_token_use(struct store_tx *tx, void *arg)
{
	return store_token_use(tx, *(int64_t *)arg);
}

static int tx_token_revoke(struct store_tx *tx, void *arg)
{
	return store_token_revoke(tx, *(int64_t *)arg);
}

struct id_list {
	int64_t id[16];
	size_t n;
};

static int list_token(const struct token_rec *t, void *arg)
{
	struct id_list *l = arg;

	if (l->n < 16)
		l->id[l->n] = t->id;
	l->n++;
	return 0;
}

static int tx_token_list(struct store_tx *tx, void *arg)
{
	return store_token_each(tx, list_token, arg);
}

static void test_tokens(void **state)
{
	struct fx *f = *state;
	struct token_ins a, b;
	struct token_q q;
	struct id_list l = { .n = 0 };
	int64_t bogus = 999;

	memset(&a, 0, sizeof(a));
	hash_of(a.rec.hash, 1);
	a.rec.created_at = 10;
	a.rec.expires_at = 9999;
	a.rec.uses_left = 2;
	assert_int_equal(store_write(f->s, tx_token_insert, &a), 0);
	assert_true(a.id > 0);
	memset(&b, 0, sizeof(b));
	hash_of(b.rec.hash, 2);
	b.rec.created_at = 11;
	b.rec.uses_left = -1;
	assert_int_equal(store_write(f->s, tx_token_insert, &b), 0);
	assert_true(b.id > a.id);

	hash_of(q.hash, 1);
	assert_int_equal(store_read(f->s, tx_token_get, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_int_equal(q.out.id, a.id);
	assert_memory_equal(q.out.hash, a.rec.hash, STORE_HASH_LEN);
	assert_int_equal(q.out.created_at, 10);
	assert_int_equal(q.out.expires_at, 9999);
	assert_int_equal(q.out.uses_left, 2);
	assert_int_equal(q.out.used, 0);
	assert_false(q.out.revoked);

	/* Each use counts down a limited token... */
	assert_int_equal(store_write(f->s, tx_token_use, &a.id), 0);
	assert_int_equal(store_read(f->s, tx_token_get, &q), 0);
	assert_int_equal(q.out.uses_left, 1);
	assert_int_equal(q.out.used, 1);
	assert_int_equal(store_write(f->s, tx_token_use, &a.id), 0);
	assert_int_equal(store_read(f->s, tx_token_get, &q), 0);
	assert_int_equal(q.out.uses_left, 0);
	assert_int_equal(q.out.used, 2);
	/* ...but not an unlimited one. */
	assert_int_equal(store_write(f->s, tx_token_use, &b.id), 0);
	hash_of(q.hash, 2);
	assert_int_equal(store_read(f->s, tx_token_get, &q), 0);
	assert_int_equal(q.out.uses_left, -1);
	assert_int_equal(q.out.used, 1);

	assert_int_equal(store_write(f->s, tx_token_revoke, &b.id), 0);
	assert_int_equal(store_read(f->s, tx_token_get, &q), 0);
	assert_true(q.out.revoked);
	hash_of(q.hash, 1);
	assert_int_equal(store_read(f->s, tx_token_get, &q), 0);
	assert_false(q.out.revoked);

	/* Unknown hash or id; the same hash twice. */
	hash_of(q.hash, 3);
	assert_int_equal(store_read(f->s, tx_token_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_token_use, &bogus), KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_token_revoke, &bogus), KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_token_insert, &a), KW_ERR_EXISTS);

	assert_int_equal(store_read(f->s, tx_token_list, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.id[0], a.id);
	assert_int_equal(l.id[1], b.id);
}

/* ---- volumes, keys, logons, associations ---- */

#define VOL1 "AAAAAAAA-0000-4000-8000-000000000001"
#define VOL2 "AAAAAAAA-0000-4000-8000-000000000002"
#define KA "AAAA0001-0000-4000-8000-000000000001"
#define KB "AAAA0001-0000-4000-8000-000000000002"

struct keys_fx {
	int64_t v1, v1_again, v2;
};

static int tx_keys_setup(struct store_tx *tx, void *arg)
{
	struct keys_fx *k = arg;
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0 ||
	    (rc = put_volume(tx, DEV1, VOL1, "C:", &k->v1)) < 0 ||
	    (rc = put_volume(tx, DEV1, VOL1, "C:", &k->v1_again)) < 0 ||
	    (rc = put_volume(tx, DEV1, VOL2, "D:", &k->v2)) < 0 ||
	    (rc = put_key(tx, DEV1, k->v1, KB, KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, k->v1, KA, KEY_ACTIVE)) < 0)
		return rc;
	return 0;
}

struct key_copy {
	struct key_rec k;
	uint8_t sealed[32];
	int calls;
};

static int copy_key(const struct key_rec *k, void *arg)
{
	struct key_copy *c = arg;

	c->k = *k;
	c->k.sealed = NULL;
	if (k->sealed_len <= sizeof(c->sealed))
		memcpy(c->sealed, k->sealed, k->sealed_len);
	c->calls++;
	return 0;
}

struct key_q {
	const char *id;
	struct key_copy out;
	int rc;
};

static int tx_key_get(struct store_tx *tx, void *arg)
{
	struct key_q *q = arg;

	memset(&q->out, 0, sizeof(q->out));
	q->rc = store_key_get(tx, q->id, copy_key, &q->out);
	return 0;
}

struct key_state_arg {
	int64_t row;
	enum key_state st;
	int64_t at;
};

static int tx_key_set_state(struct store_tx *tx, void *arg)
{
	struct key_state_arg *a = arg;

	return store_key_set_state(tx, a->row, a->st, a->at);
}

struct key_list {
	char id[16][STORE_ID_LEN + 1];
	size_t n;
	int64_t volume_row;      /* input of tx_keys_of_volume */
};

static int list_key(const struct key_rec *k, void *arg)
{
	struct key_list *l = arg;

	if (l->n < 16)
		snprintf(l->id[l->n], sizeof(l->id[0]), "%s", k->key_id);
	l->n++;
	return 0;
}

static int tx_keys_of_volume(struct store_tx *tx, void *arg)
{
	struct key_list *l = arg;

	l->n = 0;
	return store_key_each_volume(tx, l->volume_row, KEY_STATES_ALL, list_key, l);
}

static int tx_keys_of_device(struct store_tx *tx, void *arg)
{
	struct key_list *l = arg;

	l->n = 0;
	return store_key_each_device(tx, DEV1, KEY_STATES_ALL, list_key, l);
}

static int tx_key_dangling_volume(struct store_tx *tx, void *arg)
{
	return put_key(tx, DEV1, 9999, "CCCC0001-0000-4000-8000-000000000001", KEY_ACTIVE);
}

static int tx_key_unknown_device(struct store_tx *tx, void *arg)
{
	return put_key(tx, DEV5, *(int64_t *)arg, "CCCC0002-0000-4000-8000-000000000001",
		       KEY_ACTIVE);
}

static int tx_key_dup(struct store_tx *tx, void *arg)
{
	return put_key(tx, DEV1, *(int64_t *)arg, KA, KEY_ACTIVE);
}

/* A volume of DEV1 given for a key of DEV2. */
static int tx_key_other_volume(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = put_device(tx, DEV2, "PC-2", 2)) < 0)
		return rc;
	rc = put_key(tx, DEV2, *(int64_t *)arg, "CCCC0003-0000-4000-8000-000000000001",
		     KEY_ACTIVE);
	return rc == KW_ERR_NOT_FOUND ? 0 : (rc < 0 ? rc : KW_ERR_INTERNAL);
}

static int tx_key_set_missing(struct store_tx *tx, void *arg)
{
	static const uint8_t sealed[] = { 9 };
	int rc = store_key_set_state(tx, 9999, KEY_REMOVED, 1);

	if (rc != KW_ERR_NOT_FOUND)
		return rc < 0 ? rc : KW_ERR_INTERNAL;
	return store_key_set_sealed(tx, 9999, sealed, sizeof(sealed));
}

struct page {
	int64_t row[8];
	size_t n;
};

static int page_key(const struct key_rec *k, void *arg)
{
	struct page *p = arg;

	if (p->n < 8)
		p->row[p->n] = k->row;
	p->n++;
	return 0;
}

static int tx_key_page(struct store_tx *tx, void *arg)
{
	struct page *p = arg;
	int64_t after = p->row[0];

	memset(p, 0, sizeof(*p));
	return store_key_each_page(tx, after, 1, page_key, p);
}

static void test_keys(void **state)
{
	static const uint8_t sealed[] = { 1, 2, 3, 4, 5, 0, 7, 8 };
	struct fx *f = *state;
	struct keys_fx k;
	struct key_q q;
	struct key_list l;
	struct key_state_arg sa;

	memset(&k, 0, sizeof(k));
	assert_int_equal(store_write(f->s, tx_keys_setup, &k), 0);
	assert_true(k.v1 > 0);
	assert_int_equal(k.v1_again, k.v1);        /* upsert: the same row */
	assert_true(k.v2 != k.v1);
	assert_int_equal(key_count(f->s), 2);

	q.id = KA;
	assert_int_equal(store_read(f->s, tx_key_get, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_int_equal(q.out.calls, 1);
	assert_string_equal(q.out.k.key_id, KA);
	assert_string_equal(q.out.k.device_id, DEV1);
	assert_int_equal(q.out.k.volume_row, k.v1);
	assert_int_equal(q.out.k.state, KEY_ACTIVE);
	assert_int_equal(q.out.k.sealed_len, sizeof(sealed));
	assert_memory_equal(q.out.sealed, sealed, sizeof(sealed));  /* NUL inside kept */
	assert_int_equal(q.out.k.created_at, 300);
	assert_int_equal(q.out.k.changed_at, 300);
	assert_int_equal(q.out.k.disclosed_at, 0);

	q.id = "AAAA0001-0000-4000-8000-000000000003";
	assert_int_equal(store_read(f->s, tx_key_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);
	q.id = "AAAA0001";
	assert_int_equal(store_read(f->s, tx_key_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_INVALID);

	/* Duplicates, and rows that point nowhere: nothing stored. With
	 * foreign keys off the dangling volume would be accepted. */
	assert_int_equal(store_write(f->s, tx_key_dup, &k.v2), KW_ERR_EXISTS);
	assert_int_equal(store_write(f->s, tx_key_dangling_volume, NULL), KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_key_unknown_device, &k.v1), KW_ERR_NOT_FOUND);
	/* Another device's volume: the foreign key would take it. */
	assert_int_equal(store_write(f->s, tx_key_other_volume, &k.v1), 0);
	assert_int_equal(key_count(f->s), 2);
	assert_int_equal(store_write(f->s, tx_key_set_missing, NULL), KW_ERR_NOT_FOUND);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM recovery_keys"), 2);

	/* Disclosure records the time; later changes keep it. */
	q.id = KA;
	assert_int_equal(store_read(f->s, tx_key_get, &q), 0);
	sa.row = q.out.k.row;
	sa.st = KEY_DISCLOSED;
	sa.at = 900;
	assert_int_equal(store_write(f->s, tx_key_set_state, &sa), 0);
	assert_int_equal(store_read(f->s, tx_key_get, &q), 0);
	assert_int_equal(q.out.k.state, KEY_DISCLOSED);
	assert_int_equal(q.out.k.changed_at, 900);
	assert_int_equal(q.out.k.disclosed_at, 900);
	sa.st = KEY_SUPERSEDED;
	sa.at = 950;
	assert_int_equal(store_write(f->s, tx_key_set_state, &sa), 0);
	assert_int_equal(store_read(f->s, tx_key_get, &q), 0);
	assert_int_equal(q.out.k.state, KEY_SUPERSEDED);
	assert_int_equal(q.out.k.changed_at, 950);
	assert_int_equal(q.out.k.disclosed_at, 900);

	/* Per volume and per device, in insertion order. */
	l.volume_row = k.v1;
	assert_int_equal(store_read(f->s, tx_keys_of_volume, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.id[0], KB);
	assert_string_equal(l.id[1], KA);
	l.volume_row = k.v2;
	assert_int_equal(store_read(f->s, tx_keys_of_volume, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(store_read(f->s, tx_keys_of_device, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.id[0], KB);

	/* A page at a time, by row. */
	{
		struct page p;
		int64_t first;

		memset(&p, 0, sizeof(p));
		assert_int_equal(store_read(f->s, tx_key_page, &p), 0);
		assert_int_equal(p.n, 1);
		first = p.row[0];
		assert_int_equal(store_read(f->s, tx_key_page, &p), 0);
		assert_int_equal(p.n, 1);
		assert_true(p.row[0] > first);
		assert_int_equal(store_read(f->s, tx_key_page, &p), 0);
		assert_int_equal(p.n, 0);
	}

	assert_string_equal(key_state_name(KEY_ACTIVE), "active");
	assert_string_equal(key_state_name(KEY_REMOVED), "removed");
	assert_string_equal(key_state_name(KEY_DISCLOSED), "disclosed");
	assert_string_equal(key_state_name(KEY_SUPERSEDED), "superseded");
}

struct vol_copy {
	int64_t row;
	char guid[STORE_ID_LEN + 1], mount[16];
	int64_t first_seen, last_seen;
};

struct vol_list {
	struct vol_copy v[4];
	size_t n;
};

static int list_volume(const struct volume_rec *v, void *arg)
{
	struct vol_list *l = arg;

	assert_string_equal(v->device_id, DEV1);
	if (l->n < 4) {
		l->v[l->n].row = v->row;
		snprintf(l->v[l->n].guid, sizeof(l->v[0].guid), "%s", v->guid);
		snprintf(l->v[l->n].mount, sizeof(l->v[0].mount), "%s", v->mount);
		l->v[l->n].first_seen = v->first_seen;
		l->v[l->n].last_seen = v->last_seen;
	}
	l->n++;
	return 0;
}

static int tx_volumes(struct store_tx *tx, void *arg)
{
	struct vol_list *l = arg;

	memset(l, 0, sizeof(*l));
	return store_volume_each(tx, DEV1, list_volume, l);
}

static int tx_volume_moved(struct store_tx *tx, void *arg)
{
	struct volume_rec v;

	memset(&v, 0, sizeof(v));
	snprintf(v.device_id, sizeof(v.device_id), "%s", DEV1);
	snprintf(v.guid, sizeof(v.guid), "%s", VOL1);
	v.mount = "E:";
	v.type = "fixed";
	v.protection = "suspended";
	v.encryption = "xts_aes_128";
	v.percent = 50;
	v.first_seen = v.last_seen = 700;
	return store_volume_upsert(tx, &v, (int64_t *)arg);
}

static void test_volumes(void **state)
{
	struct fx *f = *state;
	struct keys_fx k;
	struct vol_list l;
	int64_t row = 0;

	memset(&k, 0, sizeof(k));
	assert_int_equal(store_write(f->s, tx_keys_setup, &k), 0);
	assert_int_equal(store_read(f->s, tx_volumes, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].mount, "C:");
	assert_string_equal(l.v[0].guid, VOL1);
	assert_string_equal(l.v[1].mount, "D:");
	/* A changed report updates the row in place, keeping first_seen. */
	assert_int_equal(store_write(f->s, tx_volume_moved, &row), 0);
	assert_int_equal(row, k.v1);
	assert_int_equal(store_read(f->s, tx_volumes, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[1].guid, VOL1);     /* ordered by mount: D:, E: */
	assert_string_equal(l.v[1].mount, "E:");
	assert_int_equal(l.v[1].row, k.v1);
	assert_int_equal(l.v[1].first_seen, 200);
	assert_int_equal(l.v[1].last_seen, 700);
}

struct logon_copy {
	char user[32];
	enum logon_type type;
	int64_t first_seen, last_seen;
};

struct logon_list {
	struct logon_copy l[8];
	size_t n;
};

static int list_logon(const struct logon_rec *r, void *arg)
{
	struct logon_list *l = arg;

	if (l->n < 8) {
		snprintf(l->l[l->n].user, sizeof(l->l[0].user), "%s", r->user);
		l->l[l->n].type = r->type;
		l->l[l->n].first_seen = r->first_seen;
		l->l[l->n].last_seen = r->last_seen;
	}
	l->n++;
	return 0;
}

static int tx_logons_setup(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0 ||
	    (rc = put_logon(tx, DEV1, "CORP\\Alice", LOGON_LOCAL, 500)) < 0 ||
	    (rc = put_logon(tx, DEV1, "corp\\alice", LOGON_LOCAL, 300)) < 0 ||
	    (rc = put_logon(tx, DEV1, "CORP\\ALICE", LOGON_LOCAL, 800)) < 0 ||
	    (rc = put_logon(tx, DEV1, "CORP\\Alice", LOGON_REMOTE, 600)) < 0 ||
	    (rc = put_assoc(tx, DEV1, "CORP\\Bob")) < 0)
		return rc;
	return 0;
}

static int tx_logon_list(struct store_tx *tx, void *arg)
{
	memset(arg, 0, sizeof(struct logon_list));
	return store_logon_each_device(tx, DEV1, list_logon, arg);
}

static int tx_assoc_dup(struct store_tx *tx, void *arg)
{
	return put_assoc(tx, DEV1, "corp\\BOB");
}

static int tx_logon_unknown_device(struct store_tx *tx, void *arg)
{
	return put_logon(tx, DEV5, "x", LOGON_LOCAL, 1);
}

static int tx_assoc_unknown_device(struct store_tx *tx, void *arg)
{
	return put_assoc(tx, DEV5, "x");
}

static int count_assoc(const struct assoc_rec *a, void *arg)
{
	assert_string_equal(a->user, "CORP\\Bob");
	assert_string_equal(a->added_by, "admin");
	assert_string_equal(a->device_id, DEV1);
	(*(int *)arg)++;
	return 0;
}

static int tx_assoc_count(struct store_tx *tx, void *arg)
{
	return store_assoc_each_device(tx, DEV1, count_assoc, arg);
}

static void test_logons_and_associations(void **state)
{
	struct fx *f = *state;
	struct logon_list l;
	int n = 0;

	assert_int_equal(store_write(f->s, tx_logons_setup, NULL), 0);
	assert_int_equal(store_read(f->s, tx_logon_list, &l), 0);
	/* One row per user (case-insensitive) and type; the span widened. */
	assert_int_equal(l.n, 2);
	assert_string_equal(l.l[0].user, "CORP\\Alice");     /* first spelling */
	assert_int_equal(l.l[0].type, LOGON_LOCAL);
	assert_int_equal(l.l[0].first_seen, 300);
	assert_int_equal(l.l[0].last_seen, 800);
	assert_int_equal(l.l[1].type, LOGON_REMOTE);
	assert_int_equal(l.l[1].first_seen, 600);
	assert_int_equal(l.l[1].last_seen, 600);

	assert_int_equal(store_write(f->s, tx_assoc_dup, NULL), KW_ERR_EXISTS);
	assert_int_equal(store_read(f->s, tx_assoc_count, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_write(f->s, tx_logon_unknown_device, NULL), KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_assoc_unknown_device, NULL), KW_ERR_NOT_FOUND);
}

/* ---- entitlement ---- */

#define K1 "AAAA0001-0000-4000-8000-000000000001"   /* DEV1, alice local */
#define K1B "AAAA0001-0000-4000-8000-000000000002"  /* DEV1, removed */
#define K2 "AAAA0002-0000-4000-8000-000000000001"   /* DEV2, alice remote only */
#define K3 "AAAA0003-0000-4000-8000-000000000001"   /* DEV3, bob associated */
#define K4 "BBBB0004-0000-4000-8000-000000000001"   /* DEV4, carol local */
#define K5 "AAAA0005-0000-4000-8000-000000000001"   /* DEV5, alice local + assoc */

static int tx_entitled_setup(struct store_tx *tx, void *arg)
{
	int64_t v[6];
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-ALICE", 1)) < 0 ||
	    (rc = put_device(tx, DEV2, "PC-REMOTE", 2)) < 0 ||
	    (rc = put_device(tx, DEV3, "PC-BOB", 3)) < 0 ||
	    (rc = put_device(tx, DEV4, "PC-CAROL", 4)) < 0 ||
	    (rc = put_device(tx, DEV5, "PC-BOTH", 5)) < 0 ||
	    (rc = put_volume(tx, DEV1, VOL1, "C:", &v[1])) < 0 ||
	    (rc = put_volume(tx, DEV2, VOL1, "C:", &v[2])) < 0 ||
	    (rc = put_volume(tx, DEV3, VOL1, "C:", &v[3])) < 0 ||
	    (rc = put_volume(tx, DEV4, VOL1, "C:", &v[4])) < 0 ||
	    (rc = put_volume(tx, DEV5, VOL2, "D:", &v[5])) < 0 ||
	    (rc = put_key(tx, DEV1, v[1], K1, KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, v[1], K1B, KEY_REMOVED)) < 0 ||
	    (rc = put_key(tx, DEV2, v[2], K2, KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV3, v[3], K3, KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV4, v[4], K4, KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV5, v[5], K5, KEY_ACTIVE)) < 0 ||
	    (rc = put_logon(tx, DEV1, "CORP\\Alice", LOGON_LOCAL, 100)) < 0 ||
	    (rc = put_logon(tx, DEV2, "CORP\\Alice", LOGON_REMOTE, 100)) < 0 ||
	    (rc = put_logon(tx, DEV3, "CORP\\Alice", LOGON_REMOTE, 100)) < 0 ||
	    (rc = put_assoc(tx, DEV3, "corp\\bob")) < 0 ||
	    (rc = put_logon(tx, DEV4, "carol", LOGON_LOCAL, 100)) < 0 ||
	    (rc = put_assoc(tx, DEV4, "O'Hara \"Q\" [x]")) < 0 ||
	    (rc = put_logon(tx, DEV5, "corp\\alice", LOGON_LOCAL, 100)) < 0 ||
	    (rc = put_assoc(tx, DEV5, "CORP\\ALICE")) < 0)
		return rc;
	return 0;
}

struct ent_q {
	const char *prefix;
	const char *users[4];
	size_t nusers;
	unsigned states;
	struct key_list l;
	/* details of the first row */
	char dev_name[32], dev_id[STORE_ID_LEN + 1], vol_guid[STORE_ID_LEN + 1];
	char vol_mount[8], key_dev[STORE_ID_LEN + 1];
};

static int ent_row(const struct key_full_rec *r, void *arg)
{
	struct ent_q *q = arg;

	if (q->l.n == 0) {
		snprintf(q->dev_name, sizeof(q->dev_name), "%s", r->device->name);
		snprintf(q->dev_id, sizeof(q->dev_id), "%s", r->device->id);
		snprintf(q->vol_guid, sizeof(q->vol_guid), "%s", r->volume->guid);
		snprintf(q->vol_mount, sizeof(q->vol_mount), "%s", r->volume->mount);
		snprintf(q->key_dev, sizeof(q->key_dev), "%s", r->key.device_id);
	}
	return list_key(&r->key, &q->l);
}

static int tx_entitled(struct store_tx *tx, void *arg)
{
	struct ent_q *q = arg;

	memset(&q->l, 0, sizeof(q->l));
	return store_key_each_entitled(tx, q->prefix, q->users, q->nusers, q->states,
			ent_row, q);
}

#define ACTIVE_ONLY (1u << KEY_ACTIVE)
#define ALL_STATES ((1u << KEY_ACTIVE) | (1u << KEY_REMOVED) | (1u << KEY_DISCLOSED) | \
		    (1u << KEY_SUPERSEDED))

/* Runs the query and compares the key IDs found with want (NULL-ended). */
static void entitled(struct store *s, const char *prefix, const char *u1,
		     const char *u2, unsigned states, const char *const *want)
{
	struct ent_q q;
	size_t n = 0;

	memset(&q, 0, sizeof(q));
	q.prefix = prefix;
	if (u1)
		q.users[q.nusers++] = u1;
	if (u2)
		q.users[q.nusers++] = u2;
	q.states = states;
	assert_int_equal(store_read(s, tx_entitled, &q), 0);
	while (want[n])
		n++;
	if (q.l.n != n)
		fail_msg("prefix \"%s\" users %s,%s states %x: %zu keys, want %zu",
			 prefix, u1 ? u1 : "-", u2 ? u2 : "-", states, q.l.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(q.l.id[i], want[i]);
}

static void test_entitled(void **state)
{
	struct fx *f = *state;
	struct ent_q q;

	assert_int_equal(store_write(f->s, tx_entitled_setup, NULL), 0);

	/* A local logon or an association entitles; a remote logon does not.
	 * Names compare case-insensitively; DEV5 comes once for two reasons. */
	entitled(f->s, "", "corp\\alice", NULL, ACTIVE_ONLY,
		 (const char *const[]){ K1, K5, NULL });
	entitled(f->s, "", "CORP\\ALICE", NULL, ACTIVE_ONLY,
		 (const char *const[]){ K1, K5, NULL });
	entitled(f->s, "", "CoRp\\BoB", NULL, ACTIVE_ONLY,
		 (const char *const[]){ K3, NULL });
	entitled(f->s, "", "CORP\\Alice", "CORP\\Bob", ACTIVE_ONLY,
		 (const char *const[]){ K1, K3, K5, NULL });
	entitled(f->s, "", "Carol", NULL, ACTIVE_ONLY,
		 (const char *const[]){ K4, NULL });
	entitled(f->s, "", "o'hara \"q\" [X]", NULL, ACTIVE_ONLY,
		 (const char *const[]){ K4, NULL });
	/* Nobody, or only someone unknown, or a name's prefix. */
	entitled(f->s, "", NULL, NULL, ALL_STATES, (const char *const[]){ NULL });
	entitled(f->s, "", "mallory", NULL, ALL_STATES, (const char *const[]){ NULL });
	entitled(f->s, "", "corp\\ali", NULL, ALL_STATES, (const char *const[]){ NULL });
	entitled(f->s, "", "alice", NULL, ALL_STATES, (const char *const[]){ NULL });

	/* State mask. */
	entitled(f->s, "", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ K1, K1B, K5, NULL });
	entitled(f->s, "", "corp\\alice", NULL, 1u << KEY_REMOVED,
		 (const char *const[]){ K1B, NULL });
	entitled(f->s, "", "corp\\alice", NULL, 1u << KEY_DISCLOSED,
		 (const char *const[]){ NULL });
	entitled(f->s, "", "corp\\alice", NULL, 0, (const char *const[]){ NULL });

	/* Prefixes: 8 digits, more, all 32; one that matches nothing. */
	entitled(f->s, "AAAA0001", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ K1, K1B, NULL });
	entitled(f->s, "AAAA00010000400080000000000", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ K1, K1B, NULL });
	entitled(f->s, "AAAA0001000040008000000000000002", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ K1B, NULL });
	entitled(f->s, "AAAA0001000040008000000000000003", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ NULL });
	entitled(f->s, "AAAA0002", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ NULL });   /* remote only */
	entitled(f->s, "BBBB0004", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ NULL });   /* carol's */
	entitled(f->s, "BBBB0004", "carol", NULL, ALL_STATES,
		 (const char *const[]){ K4, NULL });
	entitled(f->s, "AAAA000", "corp\\alice", NULL, ALL_STATES,
		 (const char *const[]){ K1, K1B, K5, NULL });

	/* The row carries its device and volume. */
	memset(&q, 0, sizeof(q));
	q.prefix = "AAAA0005";
	q.users[0] = "corp\\alice";
	q.nusers = 1;
	q.states = ALL_STATES;
	assert_int_equal(store_read(f->s, tx_entitled, &q), 0);
	assert_int_equal(q.l.n, 1);
	assert_string_equal(q.dev_name, "PC-BOTH");
	assert_string_equal(q.dev_id, DEV5);
	assert_string_equal(q.key_dev, DEV5);
	assert_string_equal(q.vol_guid, VOL2);
	assert_string_equal(q.vol_mount, "D:");
}

/* ---- group commit ---- */

#define NJOBS 16

struct gjob {
	struct store *s;
	int i;
	int rc;
};

static atomic_int blocker_running;

/* Runs first and holds the writer so that the others queue up behind it
 * and are committed together in the next group. */
static int tx_blocker(struct store_tx *tx, void *arg)
{
	struct user_rec u = user("blocker", 0);

	atomic_store(&blocker_running, 1);
	usleep(300 * 1000);
	return store_user_insert(tx, &u);
}

static void *blocker_thread(void *p)
{
	struct gjob *j = p;

	j->rc = store_write(j->s, tx_blocker, NULL);
	return NULL;
}

/* Even jobs succeed; odd ones insert a user and a token, then fail. */
static int tx_group_job(struct store_tx *tx, void *arg)
{
	struct gjob *j = arg;
	char name[16];
	struct user_rec u;
	struct token_rec t;
	int rc;

	snprintf(name, sizeof(name), "u%02d", j->i);
	u = user(name, 0);
	if ((rc = store_user_insert(tx, &u)) < 0)
		return rc;
	memset(&t, 0, sizeof(t));
	hash_of(t.hash, 1000 + j->i);
	t.uses_left = -1;
	if ((rc = store_token_insert(tx, &t, NULL)) < 0)
		return rc;
	return (j->i % 2) ? KW_ERR_CONFLICT : 0;
}

static void *group_thread(void *p)
{
	struct gjob *j = p;

	j->rc = store_write(j->s, tx_group_job, j);
	return NULL;
}

static void start_blocker(pthread_t *th, struct gjob *b)
{
	atomic_store(&blocker_running, 0);
	assert_int_equal(pthread_create(th, NULL, blocker_thread, b), 0);
	while (!atomic_load(&blocker_running))
		usleep(1000);
}

static void test_group_commit_failed_job_leaves_nothing(void **state)
{
	struct fx *f = *state;
	pthread_t th[NJOBS], bt;
	struct gjob jobs[NJOBS], b = { f->s, -1, 1 };
	struct names n = { .n = 0 };
	char name[16];

	start_blocker(&bt, &b);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct gjob){ f->s, i, 1 };
		assert_int_equal(pthread_create(&th[i], NULL, group_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < NJOBS; i++)
		pthread_join(th[i], NULL);
	pthread_join(bt, NULL);

	assert_int_equal(b.rc, 0);
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(jobs[i].rc, (i % 2) ? KW_ERR_CONFLICT : 0);
	/* Exactly the successful half, and the blocker. */
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, NJOBS / 2 + 1);
	assert_true(has_name(&n, "blocker"));
	for (int i = 0; i < NJOBS; i++) {
		snprintf(name, sizeof(name), "u%02d", i);
		if (has_name(&n, name) != !(i % 2))
			fail_msg("user %s is %s", name, (i % 2) ? "there" : "missing");
	}
	assert_int_equal(token_count(f->s), NJOBS / 2);
	/* Durable: a fresh connection sees the same. */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), NJOBS / 2 + 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM enrollment_tokens"), NJOBS / 2);
}

/* Two writers of the same name in one group: the second sees the first. */
struct same_job {
	struct store *s;
	int rc;
};

static int tx_same(struct store_tx *tx, void *arg)
{
	struct user_rec u = user("same", 0);

	return store_user_insert(tx, &u);
}

static void *same_thread(void *p)
{
	struct same_job *j = p;

	j->rc = store_write(j->s, tx_same, NULL);
	return NULL;
}

static void test_group_commit_sees_earlier_jobs(void **state)
{
	struct fx *f = *state;
	pthread_t th[4], bt;
	struct same_job jobs[4];
	struct gjob b = { f->s, -1, 1 };
	struct names n = { .n = 0 };
	int ok = 0, exists = 0;

	start_blocker(&bt, &b);
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct same_job){ f->s, 1 };
		assert_int_equal(pthread_create(&th[i], NULL, same_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (jobs[i].rc == 0)
			ok++;
		else if (jobs[i].rc == KW_ERR_EXISTS)
			exists++;
	}
	pthread_join(bt, NULL);
	assert_int_equal(ok, 1);
	assert_int_equal(exists, 3);
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 2);
}

#define NWRITERS 8
#define NWRITES 40

struct writer {
	struct store *s;
	int i;
	int failures;
};

static int tx_token_n(struct store_tx *tx, void *arg)
{
	struct token_rec t;

	memset(&t, 0, sizeof(t));
	hash_of(t.hash, *(int *)arg);
	t.uses_left = -1;
	return store_token_insert(tx, &t, NULL);
}

static void *writer_thread(void *p)
{
	struct writer *w = p;

	for (int j = 0; j < NWRITES; j++) {
		int n = w->i * NWRITES + j;

		if (store_write(w->s, tx_token_n, &n) != 0)
			w->failures++;
	}
	return NULL;
}

struct reader {
	struct store *s;
	atomic_int *stop;
	int failures;
	int decreases;
	size_t reads;
};

static void *reader_thread(void *p)
{
	struct reader *r = p;
	size_t last = 0;

	while (!atomic_load(r->stop)) {
		size_t n = 0;

		if (store_read(r->s, tx_token_count, &n) != 0)
			r->failures++;
		else if (n < last)
			r->decreases++;
		last = n;
		r->reads++;
		usleep(500);
	}
	return NULL;
}

/* Failed writes of the log (walvfs_set_write_hook: the errno the log's
 * writes fail with, 0 for none): a full disk or an I/O error fails the
 * group it hit and keeps nothing of it, store_state says why, and writes
 * work again once the disk does, without reopening the store. */
static atomic_int write_fails;

static int failing_write(void)
{
	return atomic_load(&write_fails);
}

/* NJOBS group jobs committed together behind a blocker, as in
 * test_group_commit_failed_job_leaves_nothing. */
static void run_group_jobs(struct store *s, struct gjob *b, struct gjob jobs[NJOBS])
{
	pthread_t th[NJOBS], bt;

	start_blocker(&bt, b);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct gjob){ s, i, 1 };
		assert_int_equal(pthread_create(&th[i], NULL, group_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < NJOBS; i++)
		pthread_join(th[i], NULL);
	pthread_join(bt, NULL);
}

static void test_failed_log_write(void **state)
{
	struct fx *f = *state;
	struct gjob jobs[NJOBS], b = { NULL, -1, 1 };
	char msg[256], reason[128];
	int64_t users;

	store_close(f->s);
	walvfs_set_write_hook(failing_write);
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_OK);
	users = sql_int(f->path, "SELECT count(*) FROM users");

	atomic_store(&write_fails, ENOSPC);
	b.s = f->s;
	run_group_jobs(f->s, &b, jobs);
	assert_int_equal(b.rc, KW_ERR_STORE);
	for (int i = 0; i < NJOBS; i++)   /* a job's own failure stays its own */
		assert_int_equal(jobs[i].rc, (i % 2) ? KW_ERR_CONFLICT : KW_ERR_STORE);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), users);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM enrollment_tokens"), 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_WRITES_FAILING);
	assert_string_equal(reason, "writes are failing: the disk is full");
	assert_int_equal(store_last_state(), STORE_WRITES_FAILING);

	/* A write that changes nothing does not show that writes work. */
	assert_int_equal(store_write(f->s, tx_nothing, NULL), 0);
	assert_int_equal(store_state(f->s, NULL, 0), STORE_WRITES_FAILING);

	atomic_store(&write_fails, EIO);
	assert_int_equal(store_write(f->s, tx_meta_big, "lost"), KW_ERR_STORE);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_WRITES_FAILING);
	assert_contains(reason, strerror(EIO));

	atomic_store(&write_fails, 0);
	run_group_jobs(f->s, &b, jobs);
	assert_int_equal(b.rc, 0);
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(jobs[i].rc, (i % 2) ? KW_ERR_CONFLICT : 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), users + NJOBS / 2 + 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM meta WHERE name = 'big'"), 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_OK);
	assert_int_equal(store_last_state(), STORE_OK);

	store_close(f->s);
	f->s = NULL;
	walvfs_set_write_hook(NULL);
}

static void test_many_concurrent_writers(void **state)
{
	struct fx *f = *state;
	pthread_t th[NWRITERS], rt[2];
	struct writer w[NWRITERS];
	struct reader r[2];
	atomic_int stop = 0;

	for (int i = 0; i < 2; i++) {
		r[i] = (struct reader){ f->s, &stop, 0, 0, 0 };
		assert_int_equal(pthread_create(&rt[i], NULL, reader_thread, &r[i]), 0);
	}
	for (int i = 0; i < NWRITERS; i++) {
		w[i] = (struct writer){ f->s, i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &w[i]), 0);
	}
	for (int i = 0; i < NWRITERS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(rt[i], NULL);

	for (int i = 0; i < NWRITERS; i++)
		assert_int_equal(w[i].failures, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].failures, 0);
		assert_int_equal(r[i].decreases, 0);
	}
	assert_int_equal(token_count(f->s), NWRITERS * NWRITES);
	assert_int_equal(sql_int(f->path, "SELECT count(DISTINCT token_hash) FROM "
				 "enrollment_tokens"), NWRITERS * NWRITES);
}

/* ---- sessions ---- */

struct sess_q {
	uint8_t hash[STORE_HASH_LEN];
	struct session_rec out;
	char user[32], identities[64];
	int rc;
};

static int copy_session(const struct session_rec *r, void *arg)
{
	struct sess_q *q = arg;

	q->out = *r;
	snprintf(q->user, sizeof(q->user), "%s", r->user);
	snprintf(q->identities, sizeof(q->identities), "%s", r->identities);
	return 0;
}

static int tx_session_get(struct store_tx *tx, void *arg)
{
	struct sess_q *q = arg;

	q->rc = store_session_get(tx, q->hash, copy_session, q);
	return 0;
}

static int tx_session_ops(struct store_tx *tx, void *arg)
{
	struct session_rec r;
	int step = *(int *)arg, rc;

	memset(&r, 0, sizeof(r));
	switch (step) {
	case 0:
		for (int i = 1; i <= 3; i++) {
			hash_of(r.hash, i);
			r.user = "alice";
			r.roles = ROLE_HELPDESK;
			r.identities = "alice\nCORP\\alice";
			snprintf(r.csrf, sizeof(r.csrf), "csrf-%d", i);
			r.created_at = 100 * i;
			if ((rc = store_session_insert(tx, &r)) < 0)
				return rc;
		}
		return 0;
	case 1:
		hash_of(r.hash, 1);
		return store_session_touch(tx, r.hash, 1000, 1);
	case 2:
		hash_of(r.hash, 2);
		return store_session_delete(tx, r.hash);
	case 3:
		/* Idle since before 500 or created before 150. */
		return store_session_purge(tx, 500, 150);
	case 4:
		hash_of(r.hash, 42);
		return store_session_touch(tx, r.hash, 1000, -1);
	default:
		hash_of(r.hash, 2);   /* deleted at step 2 */
		return store_session_delete(tx, r.hash);
	}
}

static void test_sessions(void **state)
{
	struct fx *f = *state;
	struct sess_q q;
	int step;

	step = 0;
	assert_int_equal(store_write(f->s, tx_session_ops, &step), 0);
	hash_of(q.hash, 1);
	assert_int_equal(store_read(f->s, tx_session_get, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_string_equal(q.user, "alice");
	assert_string_equal(q.identities, "alice\nCORP\\alice");
	assert_string_equal(q.out.csrf, "csrf-1");
	assert_int_equal(q.out.roles, ROLE_HELPDESK);
	assert_false(q.out.notice_accepted);
	assert_int_equal(q.out.created_at, 100);
	assert_int_equal(q.out.last_seen, 100);

	step = 1;
	assert_int_equal(store_write(f->s, tx_session_ops, &step), 0);
	assert_int_equal(store_read(f->s, tx_session_get, &q), 0);
	assert_int_equal(q.out.last_seen, 1000);
	assert_true(q.out.notice_accepted);

	step = 2;
	assert_int_equal(store_write(f->s, tx_session_ops, &step), 0);
	hash_of(q.hash, 2);
	assert_int_equal(store_read(f->s, tx_session_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);

	/* Session 1: created at 100 (< 150): purged although active.
	 * Session 3: created 300, last seen 300 (< 500): purged as idle. */
	step = 3;
	assert_int_equal(store_write(f->s, tx_session_ops, &step), 0);
	hash_of(q.hash, 1);
	assert_int_equal(store_read(f->s, tx_session_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);
	hash_of(q.hash, 3);
	assert_int_equal(store_read(f->s, tx_session_get, &q), 0);
	assert_int_equal(q.rc, KW_ERR_NOT_FOUND);

	step = 4;
	assert_int_equal(store_write(f->s, tx_session_ops, &step), KW_ERR_NOT_FOUND);
	/* Deleting what is gone is NOT_FOUND too, like every named row. */
	step = 5;
	assert_int_equal(store_write(f->s, tx_session_ops, &step), KW_ERR_NOT_FOUND);
}

/* ---- audit ---- */

struct audit_in {
	int64_t at;
	const char *source, *result, *actor, *end_user, *computer;
};

static const struct audit_in audit_data[] = {
	{ 1000, "helpdesk", "disclosed", "HelpDesk1", "alice", "PC-1" },
	{ 2000, "self_service", "disclosed", "alice", "alice", "pc-2" },
	{ 3000, "self_service", "not_found", "Bob", "bob", "PC-1" },
	{ 4000, "api", "disclosed", "", "", "PC-3" },
	{ 5000, "helpdesk", "ambiguous", "helpdesk1", "carol", "PC-2" },
};

/* A stand-in for audit_hash: every byte 0x10 + seq. */
static void fake_hash(const struct audit_rec *a, uint8_t out[32])
{
	memset(out, (int)(0x10 + a->seq), 32);
}

/* Appends record i. */
static int audit_append(struct store_tx *tx, size_t i)
{
	struct audit_rec a;

	memset(&a, 0, sizeof(a));
	a.at = audit_data[i].at;
	a.source = audit_data[i].source;
	a.result = audit_data[i].result;
	a.actor = audit_data[i].actor;
	a.end_user = audit_data[i].end_user;
	a.computer = audit_data[i].computer;
	a.device_id = DEV1;
	a.key_id = K1;
	a.key_type = "recovery_password";
	a.reason = "locked out";
	a.comment = NULL;        /* stored as "" */
	a.client = "192.0.2.7";
	return store_audit_append(tx, &a, fake_hash);
}

static int tx_audit_fill(struct store_tx *tx, void *arg)
{
	int rc;

	for (size_t i = 0; i < sizeof(audit_data) / sizeof(audit_data[0]); i++)
		if ((rc = audit_append(tx, i)) < 0)
			return rc;
	return 0;
}

struct last_q {
	int64_t seq;
	uint8_t hash[32];
};

static int tx_audit_head(struct store_tx *tx, void *arg)
{
	struct last_q *q = arg;

	return store_audit_head(tx, &q->seq, q->hash);
}

struct audit_list {
	int64_t seq[16];
	size_t n;
	int stop_after;          /* > 0: return 7 after this many */
	bool chain_ok;
	uint8_t prev[32];
};

static int list_audit(const struct audit_rec *a, void *arg)
{
	struct audit_list *l = arg;
	uint8_t want[32];

	static const uint8_t zero[32];

	if (l->n < 16)
		l->seq[l->n] = a->seq;
	l->n++;
	if (a->seq < 1 || a->seq > 5) {
		l->chain_ok = false;
		return 0;
	}
	if (a->seq == 1 && memcmp(a->prev_hash, zero, 32))
		l->chain_ok = false;
	/* Each record carries what was inserted. */
	memset(want, (int)(0x10 + a->seq), sizeof(want));
	if (memcmp(a->hash, want, 32) || strcmp(a->key_type, "recovery_password") ||
	    strcmp(a->comment, "") || strcmp(a->client, "192.0.2.7") ||
	    strcmp(a->device_id, DEV1) || strcmp(a->key_id, K1) ||
	    strcmp(a->reason, "locked out") ||
	    strcmp(a->source, audit_data[a->seq - 1].source) ||
	    strcmp(a->actor, audit_data[a->seq - 1].actor) ||
	    a->at != audit_data[a->seq - 1].at)
		l->chain_ok = false;
	if (l->n > 1 && memcmp(a->prev_hash, l->prev, 32) && a->seq == l->seq[l->n - 2] + 1)
		l->chain_ok = false;
	memcpy(l->prev, a->hash, 32);
	if (l->stop_after > 0 && l->n == (size_t)l->stop_after)
		return 7;
	return 0;
}

struct audit_q {
	struct audit_filter f;
	bool no_filter;
	struct audit_list l;
	int rc;
};

static int tx_audit_each(struct store_tx *tx, void *arg)
{
	struct audit_q *q = arg;
	int stop = q->l.stop_after;

	memset(&q->l, 0, sizeof(q->l));
	q->l.stop_after = stop;
	q->l.chain_ok = true;
	q->rc = store_audit_each(tx, q->no_filter ? NULL : &q->f, list_audit, &q->l);
	return 0;
}

static void audit_expect(struct store *s, const struct audit_filter *f,
			 const int64_t *want, size_t n)
{
	struct audit_q q;

	memset(&q, 0, sizeof(q));
	q.f = *f;
	assert_int_equal(store_read(s, tx_audit_each, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_true(q.l.chain_ok);
	if (q.l.n != n)
		fail_msg("%zu records, want %zu", q.l.n, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(q.l.seq[i], want[i]);
}

#define SEQS(...) (const int64_t[]){ __VA_ARGS__ }, \
	sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)

static void test_audit(void **state)
{
	struct fx *f = *state;
	struct last_q last;
	struct audit_q q;
	uint8_t want[32];

	assert_int_equal(store_read(f->s, tx_audit_head, &last), KW_ERR_NOT_FOUND);

	assert_int_equal(store_write(f->s, tx_audit_fill, NULL), 0);
	assert_int_equal(store_read(f->s, tx_audit_head, &last), 0);
	assert_int_equal(last.seq, 5);
	memset(want, 0x15, sizeof(want));
	assert_memory_equal(last.hash, want, 32);

	/* All, in order, chained (prev_hash = the hash before). */
	memset(&q, 0, sizeof(q));
	q.no_filter = true;
	assert_int_equal(store_read(f->s, tx_audit_each, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_int_equal(q.l.n, 5);
	assert_true(q.l.chain_ok);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(q.l.seq[i], (int64_t)i + 1);
	audit_expect(f->s, &(struct audit_filter){ 0 }, SEQS(1, 2, 3, 4, 5));

	/* Filters. */
	audit_expect(f->s, &(struct audit_filter){ .result = "disclosed" }, SEQS(1, 2, 4));
	audit_expect(f->s, &(struct audit_filter){ .source = "self_service" }, SEQS(2, 3));
	audit_expect(f->s, &(struct audit_filter){ .result = "disclosed",
						   .source = "helpdesk" }, SEQS(1));
	/* user: actor or end user, any case. */
	audit_expect(f->s, &(struct audit_filter){ .user = "ALICE" }, SEQS(1, 2));
	audit_expect(f->s, &(struct audit_filter){ .user = "helpdesk1" }, SEQS(1, 5));
	audit_expect(f->s, &(struct audit_filter){ .user = "carol" }, SEQS(5));
	audit_expect(f->s, &(struct audit_filter){ .user = "ali" }, (const int64_t *)NULL, 0);
	audit_expect(f->s, &(struct audit_filter){ .computer = "pc-1" }, SEQS(1, 3));
	audit_expect(f->s, &(struct audit_filter){ .computer = "PC-2" }, SEQS(2, 5));
	audit_expect(f->s, &(struct audit_filter){ .result = "nothing" },
		     (const int64_t *)NULL, 0);
	/* Time range (bounds chosen between records). */
	audit_expect(f->s, &(struct audit_filter){ .from = 1500 }, SEQS(2, 3, 4, 5));
	audit_expect(f->s, &(struct audit_filter){ .to = 3500 }, SEQS(1, 2, 3));
	audit_expect(f->s, &(struct audit_filter){ .from = 1500, .to = 4500 }, SEQS(2, 3, 4));
	audit_expect(f->s, &(struct audit_filter){ .from = 1000 }, SEQS(1, 2, 3, 4, 5));
	/* Paging. */
	audit_expect(f->s, &(struct audit_filter){ .limit = 2 }, SEQS(1, 2));
	audit_expect(f->s, &(struct audit_filter){ .after_seq = 2, .limit = 2 }, SEQS(3, 4));
	audit_expect(f->s, &(struct audit_filter){ .after_seq = 4, .limit = 2 }, SEQS(5));
	audit_expect(f->s, &(struct audit_filter){ .after_seq = 5 }, (const int64_t *)NULL, 0);
	audit_expect(f->s, &(struct audit_filter){ .result = "disclosed", .after_seq = 1,
						   .limit = 1 }, SEQS(2));

	/* A callback's non-zero result stops the iteration and is returned. */
	memset(&q, 0, sizeof(q));
	q.no_filter = true;
	q.l.stop_after = 2;
	assert_int_equal(store_read(f->s, tx_audit_each, &q), 0);
	assert_int_equal(q.rc, 7);
	assert_int_equal(q.l.n, 2);

	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM audit"), 5);

	/* The newest records deleted: the next append continues from the
	 * head, leaving a gap for audit_verify to see. */
	sql_exec(f->path, "DELETE FROM audit WHERE seq >= 4;");
	assert_int_equal(store_write(f->s, tx_audit_fill, NULL), 0);
	memset(&q, 0, sizeof(q));
	q.f.limit = 4;
	assert_int_equal(store_read(f->s, tx_audit_each, &q), 0);
	assert_int_equal(q.l.n, 4);
	assert_int_equal(q.l.seq[2], 3);
	assert_int_equal(q.l.seq[3], 6);
	assert_int_equal(store_read(f->s, tx_audit_head, &last), 0);
	assert_int_equal(last.seq, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_fresh_and_again, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_version_1, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused_without_migrate,
						setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_wal_and_foreign_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_is_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_is_in_the_log_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walvfs_deferred_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syncer_order_and_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logons_and_associations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entitled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_failed_job_leaves_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_sees_earlier_jobs,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_log_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
