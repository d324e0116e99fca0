/* The store's contract (store.h), held against any backend: the database
 * is the `database =` URL in KW_TEST_DATABASE, as for the integration
 * tests ("{dir}" is replaced by a fresh temporary directory and "{id}" by
 * a unique name; KW_TEST_DB_SETUP and KW_TEST_DB_TEARDOWN are shell
 * commands run before and after each test with {id}, {url} and {dir}
 * replaced), by default a new sqlite: file in a temporary directory.
 * Nothing here may depend on the backend: what is particular to SQLite is
 * tested in test_store.c.
 *
 * With KW_TEST_POSTGRES (a superuser's URL, as tests/with-postgres sets),
 * every test runs a second time against PostgreSQL, each in a database of
 * its own created for it; and the tests of what only a shared database
 * does (two instances on one database, a connection lost) run there. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "core/escrow.h"
#include "core/role.h"
#include "core/seal.h"
#include "store/copy.h"
#include "store/store.h"
#include "util/err.h"

struct fx {
	char dir[64];
	char id[40];
	char db[512];
	struct store *s;
};

/* ---- fixture ---- */

/* The PostgreSQL server to test on (KW_TEST_POSTGRES), and whether the
 * group running now uses it. */
static const char *pg_admin_url;
static bool on_pg;

/* Runs sql on the server as its superuser; fails the test on an error. */
static void pg_admin(const char *sql)
{
	PGconn *c = PQconnectdb(pg_admin_url);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect to %s: %s", pg_admin_url, PQerrorMessage(c));
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		char err[256];

		snprintf(err, sizeof(err), "%s", PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		fail_msg("%s: %s", sql, err);
	}
	PQclear(r);
	PQfinish(c);
}

/* The URL of database name on the test server. */
static void pg_url(const char *name, char *out, size_t outlen)
{
	const char *slash = strrchr(pg_admin_url, '/');
	int n = slash ? (int)(slash - pg_admin_url) : (int)strlen(pg_admin_url);

	snprintf(out, outlen, "%.*s/%s", n, pg_admin_url, name);
}

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

/* tmpl with {dir}, {id} and {url} replaced. */
static void expand(const struct fx *f, const char *tmpl, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	while (*tmpl && n + 1 < outlen) {
		const char *with = NULL;
		size_t skip = 0;

		if (!strncmp(tmpl, "{dir}", 5))
			with = f->dir, skip = 5;
		else if (!strncmp(tmpl, "{id}", 4))
			with = f->id, skip = 4;
		else if (!strncmp(tmpl, "{url}", 5))
			with = f->db, skip = 5;
		if (with) {
			n += (size_t)snprintf(out + n, outlen - n, "%s", with);
			tmpl += skip;
		} else {
			out[n++] = *tmpl++;
			out[n] = '\0';
		}
	}
	assert_true(n + 1 < outlen);
}

static void hook(const struct fx *f, const char *var)
{
	const char *cmd = getenv(var);
	char line[2048];

	if (!cmd || !*cmd)
		return;
	expand(f, cmd, line, sizeof(line));
	if (system(line) != 0 && !strcmp(var, "KW_TEST_DB_SETUP"))
		fail_msg("%s failed: %s", var, line);
}

static int setup(void **state)
{
	static atomic_int serial;
	const char *tmpl = getenv("KW_TEST_DATABASE");
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256] = "";

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-contract-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->id, sizeof(f->id), "kwcontract_%ld_%d", (long)getpid(),
		 atomic_fetch_add(&serial, 1));
	if (on_pg) {
		char sql[128];

		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->id);
		pg_admin(sql);
		pg_url(f->id, f->db, sizeof(f->db));
	} else if (tmpl && *tmpl)
		expand(f, tmpl, f->db, sizeof(f->db));
	else
		snprintf(f->db, sizeof(f->db), "sqlite:%s/kw.db", f->dir);
	if (!on_pg)
		hook(f, "KW_TEST_DB_SETUP");
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0) {
		print_error("store_open %s: %s\n", f->db, msg);
		hook(f, "KW_TEST_DB_TEARDOWN");
		remove_dir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	if (on_pg) {
		char sql[128];

		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->id);
		pg_admin(sql);
	} else {
		hook(f, "KW_TEST_DB_TEARDOWN");
	}
	remove_dir(f->dir);
	free(f);
	return 0;
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

	/* Duplicates, and rows that point nowhere: nothing stored. */
	assert_int_equal(store_write(f->s, tx_key_dup, &k.v2), KW_ERR_EXISTS);
	assert_int_equal(store_write(f->s, tx_key_dangling_volume, NULL), KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_key_unknown_device, &k.v1), KW_ERR_NOT_FOUND);
	/* Another device's volume: the foreign key would take it. */
	assert_int_equal(store_write(f->s, tx_key_other_volume, &k.v1), 0);
	assert_int_equal(key_count(f->s), 2);
	assert_int_equal(store_write(f->s, tx_key_set_missing, NULL), KW_ERR_NOT_FOUND);

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
}


/* ---- helpers of the tests below ---- */

#define DEV9 "99999999-9999-4999-8999-999999999999"   /* never added */

static void volume_of(struct volume_rec *v, const char *dev, const char *guid,
		      const char *mount)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->device_id, sizeof(v->device_id), "%s", dev);
	snprintf(v->guid, sizeof(v->guid), "%s", guid);
	v->mount = mount;
	v->type = "os";
	v->protection = "on";
	v->encryption = "xts_aes_256";
	v->percent = 100;
	v->first_seen = v->last_seen = 200;
}

static const uint8_t sealed_bytes[] = { 1, 2, 3, 0, 5 };

static void key_of(struct key_rec *k, const char *dev, int64_t vol, const char *id,
		   enum key_state st)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->key_id, sizeof(k->key_id), "%s", id);
	snprintf(k->device_id, sizeof(k->device_id), "%s", dev);
	k->volume_row = vol;
	k->state = st;
	k->sealed = sealed_bytes;
	k->sealed_len = sizeof(sealed_bytes);
	k->created_at = 300;
}

/* Key IDs as KEY(1) … KEY(9): "4290B6C0-…-00000000000n". */
#define KEY(n) "4290B6C0-B17A-497A-8552-00000000000" #n

/* What a transaction saw: a list of short strings. */
struct seen {
	char v[32][48];
	size_t n;
};

static void seen_add(struct seen *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void seen_add(struct seen *s, const char *fmt, ...)
{
	va_list ap;

	if (s->n < 32) {
		va_start(ap, fmt);
		vsnprintf(s->v[s->n], sizeof(s->v[0]), fmt, ap);
		va_end(ap);
	}
	s->n++;
}

static int seen_key(const struct key_rec *k, void *arg)
{
	seen_add(arg, "%s %s", k->key_id, key_state_name(k->state));
	return 0;
}

static int put_user(struct store_tx *tx, const char *name)
{
	struct user_rec u = user(name, ROLE_HELPDESK);

	return store_user_insert(tx, &u);
}

/* ---- the store refuses calls from an iteration's callback ---- */

struct nested {
	struct store *s;
	struct store_tx *tx;
	int op_rc, read_rc, write_rc, calls;
};

static int nothing(struct store_tx *tx, void *arg)
{
	return 0;
}

static int any_user(const struct user_rec *u, void *arg)
{
	return 0;
}

static int nested_user(const struct user_rec *u, void *arg)
{
	struct nested *n = arg;

	n->calls++;
	n->op_rc = store_user_get(n->tx, "bob", any_user, NULL);
	n->read_rc = store_read(n->s, nothing, NULL);
	n->write_rc = store_write(n->s, nothing, NULL);
	return 0;
}

static int tx_setup_users(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = put_user(tx, "alice")) < 0 || (rc = put_user(tx, "bob")) < 0)
		return rc;
	return 0;
}

static int tx_nested(struct store_tx *tx, void *arg)
{
	struct nested *n = arg;

	n->tx = tx;
	n->calls = 0;
	return store_user_each(tx, nested_user, n);
}

static void test_callback_must_not_call_the_store(void **state)
{
	struct fx *f = *state;
	struct nested n = { .s = f->s };

	assert_int_equal(store_write(f->s, tx_setup_users, NULL), 0);
	assert_int_equal(store_read(f->s, tx_nested, &n), 0);
	assert_int_equal(n.calls, 2);
	assert_int_equal(n.op_rc, KW_ERR_INTERNAL);
	assert_int_equal(n.read_rc, KW_ERR_INTERNAL);
	assert_int_equal(n.write_rc, KW_ERR_INTERNAL);
	/* Once the iteration is over, the store answers again. */
	assert_int_equal(store_write(f->s, tx_nested, &n), 0);
	assert_int_equal(store_read(f->s, nothing, NULL), 0);
}

/* ---- defaults of the typed functions ---- */

struct defaults {
	char meta[8];
	struct token_rec token;
	int64_t row;
	int meta_rc, token_rc, volume_rc, each_rc, devices;
};

static int count_device(const struct device_rec *d, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int tx_defaults(struct store_tx *tx, void *arg)
{
	struct defaults *d = arg;
	struct volume_rec v;
	uint8_t h[STORE_HASH_LEN];
	int rc;

	memset(d->meta, 'x', sizeof(d->meta));
	memset(&d->token, 0xff, sizeof(d->token));
	d->row = 42;
	d->devices = 0;
	d->meta_rc = store_meta_get(tx, "nothing here", d->meta, sizeof(d->meta));
	hash_of(h, 77);
	d->token_rc = store_token_get(tx, h, &d->token);
	memset(&v, 0, sizeof(v));
	snprintf(v.device_id, sizeof(v.device_id), "%s", DEV9);
	snprintf(v.guid, sizeof(v.guid), "%s", DEV9);
	v.mount = v.type = v.protection = v.encryption = "";
	d->volume_rc = store_volume_upsert(tx, &v, &d->row);
	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0)
		return rc;
	d->each_rc = store_device_each(tx, NULL, 0, count_device, &d->devices);
	return 0;
}

static void test_defaults(void **state)
{
	struct fx *f = *state;
	struct defaults d;
	struct token_rec zero;

	memset(&zero, 0, sizeof(zero));
	assert_int_equal(store_write(f->s, tx_defaults, &d), 0);
	assert_int_equal(d.meta_rc, KW_ERR_NOT_FOUND);
	assert_string_equal(d.meta, "");
	assert_int_equal(d.token_rc, KW_ERR_NOT_FOUND);
	assert_memory_equal(&d.token, &zero, sizeof(zero));
	assert_int_equal(d.volume_rc, KW_ERR_NOT_FOUND);
	assert_int_equal(d.row, 0);
	assert_int_equal(d.each_rc, 0);
	assert_int_equal(d.devices, 1);    /* NULL prefix: all */
}

/* ---- KW_ERR_RETRY: fn runs again, from a clean transaction ---- */

struct flaky {
	int runs;
	int fail_runs;           /* runs that return KW_ERR_RETRY */
	int users;               /* what the last run saw */
	sem_t done;
	int done_rc;
};

static int count_user(const struct user_rec *u, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

/* Inserts "carol" (EXISTS if an undone run's insert had been kept), then
 * asks to be run again until fail_runs runs have. */
static int tx_flaky_write(struct store_tx *tx, void *arg)
{
	struct flaky *f = arg;
	int rc;

	f->runs++;
	if ((rc = put_user(tx, "carol")) < 0)
		return rc;
	return f->runs <= f->fail_runs ? KW_ERR_RETRY : 0;
}

static int tx_flaky_read(struct store_tx *tx, void *arg)
{
	struct flaky *f = arg;
	int rc;

	f->runs++;
	f->users = 0;
	if ((rc = store_user_each(tx, count_user, &f->users)) < 0)
		return rc;
	return f->runs <= f->fail_runs ? KW_ERR_RETRY : 0;
}

static void flaky_done(int rc, void *arg)
{
	struct flaky *f = arg;

	f->done_rc = rc;
	sem_post(&f->done);
}

static void test_retry(void **state)
{
	struct fx *f = *state;
	struct flaky fl;

	memset(&fl, 0, sizeof(fl));
	fl.fail_runs = 1;
	assert_int_equal(store_write(f->s, tx_flaky_write, &fl), 0);
	assert_int_equal(fl.runs, 2);
	fl.runs = 0;
	fl.fail_runs = 0;
	assert_int_equal(store_read(f->s, tx_flaky_read, &fl), 0);
	assert_int_equal(fl.users, 1);     /* one carol: the undone run left nothing */

	fl.runs = 0;
	fl.fail_runs = 2;
	assert_int_equal(store_read(f->s, tx_flaky_read, &fl), 0);
	assert_int_equal(fl.runs, 3);
	fl.runs = 0;
	fl.fail_runs = 1;
	assert_int_equal(store_lookup(f->s, tx_flaky_read, &fl), 0);
	assert_int_equal(fl.runs, 2);

	/* Any other error is the answer: carol exists, no rerun. */
	fl.runs = 0;
	fl.fail_runs = 100;
	assert_int_equal(store_write(f->s, tx_flaky_write, &fl), KW_ERR_EXISTS);
	assert_int_equal(fl.runs, 1);
}

static int tx_flaky_write_new(struct store_tx *tx, void *arg)
{
	struct flaky *f = arg;
	int rc;

	f->runs++;
	if ((rc = put_user(tx, "dave")) < 0)
		return rc;
	return f->runs <= f->fail_runs ? KW_ERR_RETRY : 0;
}

static void test_retry_gives_up(void **state)
{
	struct fx *f = *state;
	struct flaky fl;

	memset(&fl, 0, sizeof(fl));
	fl.fail_runs = 100;
	assert_int_equal(store_write(f->s, tx_flaky_write_new, &fl), KW_ERR_UNAVAILABLE);
	assert_int_equal(fl.runs, STORE_TRIES);
	fl.runs = 0;
	fl.fail_runs = 0;
	assert_int_equal(store_read(f->s, tx_flaky_read, &fl), 0);
	assert_int_equal(fl.users, 0);     /* no dave */
	fl.runs = 0;
	fl.fail_runs = 100;
	assert_int_equal(store_read(f->s, tx_flaky_read, &fl), KW_ERR_UNAVAILABLE);
	assert_int_equal(fl.runs, STORE_TRIES);
	/* A read with effects outside the store runs once, whatever happens. */
	fl.runs = 0;
	fl.fail_runs = 1;
	assert_int_equal(store_read_once(f->s, tx_flaky_read, &fl), KW_ERR_UNAVAILABLE);
	assert_int_equal(fl.runs, 1);
	fl.runs = 0;
	fl.fail_runs = 0;
	assert_int_equal(store_read_once(f->s, tx_flaky_read, &fl), 0);
	assert_int_equal(fl.runs, 1);
}

static void test_retry_async(void **state)
{
	struct fx *f = *state;
	struct flaky fl;

	memset(&fl, 0, sizeof(fl));
	sem_init(&fl.done, 0, 0);
	fl.fail_runs = 2;
	assert_int_equal(store_write_async(f->s, tx_flaky_write_new, &fl, flaky_done, &fl), 0);
	sem_wait(&fl.done);
	assert_int_equal(fl.done_rc, 0);
	assert_int_equal(fl.runs, 3);

	fl.runs = 0;
	fl.fail_runs = 100;
	assert_int_equal(store_write_async(f->s, tx_flaky_write, &fl, flaky_done, &fl), 0);
	sem_wait(&fl.done);
	assert_int_equal(fl.done_rc, KW_ERR_UNAVAILABLE);
	assert_int_equal(fl.runs, STORE_TRIES);
	sem_destroy(&fl.done);

	fl.runs = 0;
	fl.fail_runs = 0;
	assert_int_equal(store_read(f->s, tx_flaky_read, &fl), 0);
	assert_int_equal(fl.users, 1);     /* dave, once; no carol */
}

/* ---- general rules ---- */

struct calls {
	int n;
	int rc[6];
};

static int call_volume(const struct volume_rec *v, void *arg)
{
	((struct calls *)arg)->n++;
	return 0;
}

static int call_key(const struct key_rec *k, void *arg)
{
	((struct calls *)arg)->n++;
	return 0;
}

static int call_logon(const struct logon_rec *l, void *arg)
{
	((struct calls *)arg)->n++;
	return 0;
}

static int call_assoc(const struct assoc_rec *a, void *arg)
{
	((struct calls *)arg)->n++;
	return 0;
}

static int tx_unknown_device(struct store_tx *tx, void *arg)
{
	struct calls *c = arg;

	c->n = 0;
	c->rc[0] = store_volume_each(tx, DEV9, call_volume, c);
	c->rc[1] = store_key_each_device(tx, DEV9, KEY_STATES_ALL, call_key, c);
	c->rc[2] = store_key_each_device(tx, DEV9, KEY_STATE_BIT(KEY_DISCLOSED), call_key, c);
	c->rc[3] = store_logon_each_device(tx, DEV9, call_logon, c);
	c->rc[4] = store_assoc_each_device(tx, DEV9, call_assoc, c);
	return 0;
}

/* Iterating over a device that does not exist: nothing, and no error. */
static void test_iterations_of_unknown_device(void **state)
{
	struct fx *f = *state;
	struct calls c;

	memset(&c, 0xff, sizeof(c));
	assert_int_equal(store_read(f->s, tx_unknown_device, &c), 0);
	assert_int_equal(c.n, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(c.rc[i], 0);
}

/* After KW_ERR_EXISTS, KW_ERR_NOT_FOUND or KW_ERR_INVALID the transaction
 * goes on as if the operation had not been called. */
static int tx_errors_then_more(struct store_tx *tx, void *arg)
{
	struct calls *c = arg;
	struct key_rec k;
	int64_t row;

	if ((c->rc[0] = put_user(tx, "erin")) < 0)
		return c->rc[0];
	c->rc[1] = put_user(tx, "ERIN");
	c->rc[2] = store_device_set_revoked(tx, DEV9, true);
	key_of(&k, DEV9, 1, "not-an-id", KEY_ACTIVE);
	c->rc[3] = store_key_insert(tx, &k);
	c->rc[4] = put_volume(tx, DEV9, DEV9, "C:", &row);
	return put_user(tx, "frank");
}

/* A fn that fails keeps nothing of what it wrote. */
static int tx_write_then_fail(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = put_user(tx, "gina")) < 0 || (rc = put_device(tx, DEV1, "PC-1", 1)) < 0)
		return rc;
	return KW_ERR_CONFLICT;
}

static void test_errors_and_the_transaction(void **state)
{
	struct fx *f = *state;
	struct calls c;
	struct names n;

	memset(&c, 0, sizeof(c));
	assert_int_equal(store_write(f->s, tx_errors_then_more, &c), 0);
	assert_int_equal(c.rc[0], 0);
	assert_int_equal(c.rc[1], KW_ERR_EXISTS);
	assert_int_equal(c.rc[2], KW_ERR_NOT_FOUND);
	assert_int_equal(c.rc[3], KW_ERR_INVALID);
	assert_int_equal(c.rc[4], KW_ERR_NOT_FOUND);
	assert_int_equal(store_write(f->s, tx_write_then_fail, NULL), KW_ERR_CONFLICT);
	memset(&n, 0, sizeof(n));
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 2);
	assert_string_equal(n.v[0], "erin");
	assert_string_equal(n.v[1], "frank");
	/* gina's device was not kept either: it can be added now. */
	assert_int_equal(store_write(f->s, tx_write_then_fail, NULL), KW_ERR_CONFLICT);
}

struct stopper {
	int calls, stop_at;
};

static int stop_user(const struct user_rec *u, void *arg)
{
	struct stopper *s = arg;

	return ++s->calls == s->stop_at ? 42 : 0;
}

static int tx_stop(struct store_tx *tx, void *arg)
{
	struct stopper *s = arg;
	int rc;

	if ((rc = put_user(tx, "a")) < 0 || (rc = put_user(tx, "b")) < 0 ||
	    (rc = put_user(tx, "c")) < 0)
		return rc;
	s->calls = 0;
	return store_user_each(tx, stop_user, s);
}

/* A callback's non-zero value stops the iteration and is its result. */
static void test_callback_stops_iteration(void **state)
{
	struct fx *f = *state;
	struct stopper s = { 0, 2 };

	assert_int_equal(store_write(f->s, tx_stop, &s), 42);
	assert_int_equal(s.calls, 2);
}

struct touch_q {
	uint8_t hash[STORE_HASH_LEN];
	struct session_rec out;
	int rc[4];
};

static int copy_touched(const struct session_rec *r, void *arg)
{
	((struct touch_q *)arg)->out = *r;
	((struct touch_q *)arg)->out.user = NULL;
	((struct touch_q *)arg)->out.identities = NULL;
	return 0;
}

static int tx_touches(struct store_tx *tx, void *arg)
{
	struct touch_q *q = arg;
	struct session_rec r;

	memset(&r, 0, sizeof(r));
	memcpy(r.hash, q->hash, sizeof(r.hash));
	r.user = "alice";
	r.identities = NULL;        /* stored as "" */
	r.created_at = 100;
	if ((q->rc[0] = store_session_insert(tx, &r)) < 0)
		return q->rc[0];
	q->rc[1] = store_session_insert(tx, &r);
	if ((q->rc[2] = store_session_touch(tx, q->hash, 1000, 1)) < 0 ||
	    (q->rc[3] = store_session_touch(tx, q->hash, 500, -1)) < 0)
		return -1;
	return store_session_get(tx, q->hash, copy_touched, q);
}

/* A touch never moves last_seen back; -1 leaves the notice as it is. */
static void test_session_touch(void **state)
{
	struct fx *f = *state;
	struct touch_q q;

	memset(&q, 0, sizeof(q));
	hash_of(q.hash, 7);
	assert_int_equal(store_write(f->s, tx_touches, &q), 0);
	assert_int_equal(q.rc[1], KW_ERR_EXISTS);
	assert_int_equal(q.out.last_seen, 1000);
	assert_true(q.out.notice_accepted);
	assert_int_equal(q.out.created_at, 100);
}

struct meta_cut {
	char out[6];
	int rc;
};

static int tx_meta_cut(struct store_tx *tx, void *arg)
{
	struct meta_cut *m = arg;
	int rc;

	if ((rc = store_meta_set(tx, "long", "0123456789")) < 0)
		return rc;
	m->rc = store_meta_get(tx, "long", m->out, sizeof(m->out));
	return 0;
}

static void test_meta_cut(void **state)
{
	struct fx *f = *state;
	struct meta_cut m;

	assert_int_equal(store_write(f->s, tx_meta_cut, &m), 0);
	assert_int_equal(m.rc, 0);
	assert_string_equal(m.out, "01234");
}

/* ---- batches ---- */

struct batch {
	int64_t rows[3];
	int rc[8];
	struct seen seen;
};

/* Volumes of DEV1 and DEV2 in one batch, then one naming an unknown device
 * (nothing of it kept, rows zeroed), then an empty one. */
static int tx_volume_batch(struct store_tx *tx, void *arg)
{
	struct batch *b = arg;
	struct volume_rec v[3];
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0 || (rc = put_device(tx, DEV2, "PC-2", 2)) < 0)
		return rc;
	volume_of(&v[0], DEV1, DEV1, "C:");
	volume_of(&v[1], DEV2, DEV1, "C:");
	volume_of(&v[2], DEV1, DEV2, "D:");
	b->rc[0] = store_volume_upsert_many(tx, v, 3, b->rows);
	if (b->rc[0] < 0)
		return b->rc[0];
	volume_of(&v[0], DEV1, DEV9, "E:");
	volume_of(&v[1], DEV9, DEV9, "E:");
	b->rc[1] = store_volume_upsert_many(tx, v, 2, b->rows + 1);
	b->rc[2] = store_volume_upsert_many(tx, v, 0, NULL);
	return 0;
}

static int seen_volume(const struct volume_rec *v, void *arg)
{
	seen_add(arg, "%s %s", v->guid, v->mount);
	return 0;
}

static int tx_volumes_of_dev1(struct store_tx *tx, void *arg)
{
	struct batch *b = arg;

	b->seen.n = 0;
	return store_volume_each(tx, DEV1, seen_volume, &b->seen);
}

static void test_volume_upsert_many(void **state)
{
	struct fx *f = *state;
	struct batch b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_volume_batch, &b), 0);
	assert_int_equal(b.rc[0], 0);
	assert_int_equal(b.rc[1], KW_ERR_NOT_FOUND);
	assert_int_equal(b.rc[2], 0);
	assert_true(b.rows[0] > 0);
	assert_int_equal(b.rows[1], 0);   /* zeroed by the failed batch */
	assert_int_equal(b.rows[2], 0);
	assert_int_equal(store_read(f->s, tx_volumes_of_dev1, &b), 0);
	assert_int_equal(b.seen.n, 2);     /* no E: */
	assert_string_equal(b.seen.v[0], DEV1 " C:");
	assert_string_equal(b.seen.v[1], DEV2 " D:");
}

/* Check-ins of several devices at once: the right secret, a wrong one, a
 * revoked device, an unknown one with a secret and one without. */
static int tx_checkin_many(struct store_tx *tx, void *arg)
{
	struct batch *b = arg;
	uint8_t h1[STORE_HASH_LEN], h2[STORE_HASH_LEN], h3[STORE_HASH_LEN];
	struct device_checkin c[5];
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0 || (rc = put_device(tx, DEV2, "PC-2", 2)) < 0 ||
	    (rc = put_device(tx, DEV3, "PC-3", 3)) < 0 ||
	    (rc = store_device_set_revoked(tx, DEV3, true)) < 0)
		return rc;
	hash_of(h1, 1);
	hash_of(h2, 1);     /* DEV2's is 2 */
	hash_of(h3, 3);
	c[0] = (struct device_checkin){ DEV2, h2, "Windows 12", 700 };
	c[1] = (struct device_checkin){ DEV1, h1, "Windows 12", 700 };
	c[2] = (struct device_checkin){ DEV3, h3, "Windows 12", 700 };
	c[3] = (struct device_checkin){ DEV9, h1, "Windows 12", 700 };
	c[4] = (struct device_checkin){ DEV5, NULL, NULL, 700 };
	b->rc[5] = store_device_checkin_many(tx, c, 5, b->rc);
	b->rc[6] = store_device_checkin_many(tx, c, 0, b->rc + 6);
	return 0;
}

static int seen_device(const struct device_rec *d, void *arg)
{
	seen_add(arg, "%s %s %lld", d->name, d->os, (long long)d->last_checkin_at);
	return 0;
}

static int tx_devices_seen(struct store_tx *tx, void *arg)
{
	struct batch *b = arg;
	int rc;

	b->seen.n = 0;
	if ((rc = store_device_get(tx, DEV1, seen_device, &b->seen)) < 0 ||
	    (rc = store_device_get(tx, DEV2, seen_device, &b->seen)) < 0)
		return rc;
	return store_device_get(tx, DEV3, seen_device, &b->seen);
}

static void test_device_checkin_many(void **state)
{
	struct fx *f = *state;
	struct batch b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_checkin_many, &b), 0);
	assert_int_equal(b.rc[0], KW_ERR_AUTH);
	assert_int_equal(b.rc[1], 0);
	assert_int_equal(b.rc[2], KW_ERR_AUTH);
	assert_int_equal(b.rc[3], KW_ERR_AUTH);
	assert_int_equal(b.rc[4], KW_ERR_NOT_FOUND);
	assert_int_equal(b.rc[5], 0);
	assert_int_equal(b.rc[6], 0);
	/* Only the device that checked is recorded. */
	assert_int_equal(store_read(f->s, tx_devices_seen, &b), 0);
	assert_int_equal(b.seen.n, 3);
	assert_string_equal(b.seen.v[0], "PC-1 Windows 12 700");
	assert_string_equal(b.seen.v[1], "PC-2 Windows 11 Pro 0");
	assert_string_equal(b.seen.v[2], "PC-3 Windows 11 Pro 0");
}

/* ---- check-ins written while the writer is busy (batched where the
 * store batches): the outcome of one at a time, in the order queued ---- */

#define BK1 "4290B6C0-B17A-497A-8552-272CC30E80D1"
#define BK3 "4290B6C0-B17A-497A-8552-272CC30E80D3"
#define BPW1 "496298-461032-321464-595518-463221-173943-033616-139579"
#define BPW3 "000000-000011-000022-000033-000044-000055-000066-000077"

struct queued {
	struct checkin ci;
	struct checkin_result res;
	struct checkin_job job;
	sem_t done;
	int rc;
};

static void queued_done(int rc, void *arg)
{
	struct queued *q = arg;

	q->rc = rc;
	sem_post(&q->done);
}

/* Holds the writer until released: what is queued meanwhile is written
 * together after it. */
static int tx_hold(struct store_tx *tx, void *arg)
{
	(void)tx;
	sem_wait(arg);
	return 0;
}

static void hold_done(int rc, void *arg)
{
	(void)rc;
	sem_post(arg);
}

static void queue_checkin(struct fx *f, const struct seal *k, struct queued *q,
			  const char *dev, const char *vol, const char *const *keys,
			  const char *const *pws, size_t n)
{
	json_t *rk = json_array(), *body;
	struct field_errors errs;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(rk, json_pack("{ssss}", "key_id", keys[i],
						    "recovery_password", pws[i]));
	body = json_pack("{ss s[{ss ss ss ss ss si so}]}", "os", "Windows 11",
			 "volumes", "id", vol, "mount", "C:", "type", "os", "protection", "on",
			 "encryption", "xts_aes_256", "percent_encrypted", 100,
			 "recovery_keys", rk);
	assert_non_null(body);
	assert_int_equal(checkin_parse(body, 1000, &q->ci, &errs), 0);
	json_decref(body);
	sem_init(&q->done, 0, 0);
	assert_int_equal(checkin_apply_async(f->s, k, dev, NULL, &q->ci, 1000, &q->res, &q->job,
					     queued_done, q), 0);
}

/* Two devices, and the site's master key (a shared store's writes check
 * it: core/keyfile.h). */
static int tx_two_devices(struct store_tx *tx, void *arg)
{
	char fp[SEAL_FINGERPRINT_LEN + 1];
	int rc;

	seal_fingerprint(arg, fp);
	if ((rc = store_meta_set(tx, "master_key_id", fp)) < 0 ||
	    (rc = put_device(tx, DEV1, "PC-1", 1)) < 0)
		return rc;
	return put_device(tx, DEV2, "PC-2", 2);
}

static int seen_key_device(const struct key_rec *k, void *arg)
{
	seen_add(arg, "%s %s", k->key_id + 34, k->device_id + 34);
	return 0;
}

static int tx_keys_13(struct store_tx *tx, void *arg)
{
	static const char *const ids[] = { BK1, BK3 };

	((struct seen *)arg)->n = 0;
	return store_key_get_many(tx, ids, 2, seen_key_device, arg);
}

/* DEV1 reports K1; DEV1 again, K1 and K3; DEV2, K3: one at a time, DEV1
 * gets K3 and DEV2 a conflict, whatever the store writes together. */
static void test_checkins_queued_together(void **state)
{
	static const char *const k1[] = { BK1 }, *const p1[] = { BPW1 };
	static const char *const k13[] = { BK1, BK3 }, *const p13[] = { BPW1, BPW3 };
	static const char *const k3[] = { BK3 }, *const p3[] = { BPW3 };
	struct fx *f = *state;
	struct queued q[3];
	struct seen seen;
	struct seal *k;
	sem_t hold, held;

	memset(q, 0, sizeof(q));
	assert_true(sodium_init() >= 0);
	assert_int_equal(seal_generate(&k), 0);
	assert_int_equal(store_write(f->s, tx_two_devices, k), 0);
	sem_init(&hold, 0, 0);
	sem_init(&held, 0, 0);
	assert_int_equal(store_write_async(f->s, tx_hold, &hold, hold_done, &held), 0);
	queue_checkin(f, k, &q[0], DEV1, DEV1, k1, p1, 1);
	queue_checkin(f, k, &q[1], DEV1, DEV1, k13, p13, 2);
	queue_checkin(f, k, &q[2], DEV2, DEV2, k3, p3, 1);
	sem_post(&hold);
	sem_wait(&held);
	for (int i = 0; i < 3; i++)
		sem_wait(&q[i].done);
	assert_int_equal(q[0].rc, 0);
	assert_int_equal(q[0].res.keys_added, 1);
	assert_int_equal(q[1].rc, 0);
	assert_int_equal(q[1].res.keys_added, 1);
	assert_int_equal(q[2].rc, KW_ERR_CONFLICT);
	assert_string_equal(q[2].res.conflict_key, BK3);
	assert_int_equal(store_read(f->s, tx_keys_13, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.v[0], "D1 11");
	assert_string_equal(seen.v[1], "D3 11");
	for (int i = 0; i < 3; i++) {
		checkin_result_free(&q[i].res);
		checkin_free(&q[i].ci);
		sem_destroy(&q[i].done);
	}
	sem_destroy(&hold);
	sem_destroy(&held);
	seal_free(k);
}

struct batch_fx {
	int64_t v1, v2, v3;     /* DEV1: C:, D:; DEV2: C: */
};

static int tx_batch_setup(struct store_tx *tx, void *arg)
{
	struct batch_fx *k = arg;
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0 ||
	    (rc = put_device(tx, DEV2, "PC-2", 2)) < 0 ||
	    (rc = put_volume(tx, DEV1, DEV1, "C:", &k->v1)) < 0 ||
	    (rc = put_volume(tx, DEV1, DEV2, "D:", &k->v2)) < 0 ||
	    (rc = put_volume(tx, DEV2, DEV1, "C:", &k->v3)) < 0 ||
	    (rc = put_key(tx, DEV1, k->v1, KEY(3), KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, k->v2, KEY(1), KEY_DISCLOSED)) < 0 ||
	    (rc = put_key(tx, DEV2, k->v3, KEY(2), KEY_REMOVED)) < 0)
		return rc;
	return 0;
}

static int tx_get_many(struct store_tx *tx, void *arg)
{
	static const char *const ids[] = { KEY(3), KEY(9), KEY(2), KEY(3), KEY(1) };
	static const char *const bad[] = { KEY(1), "4290B6C0" };
	struct batch *b = arg;

	b->seen.n = 0;
	b->rc[1] = store_key_get_many(tx, bad, 2, seen_key, &b->seen);
	b->rc[2] = store_key_get_many(tx, ids, 0, seen_key, &b->seen);
	return store_key_get_many(tx, ids, 5, seen_key, &b->seen);
}

/* Keys of several devices: device by device in the order given (an
 * unknown one has none), each one's by row, in the states asked for. */
static int tx_each_devices(struct store_tx *tx, void *arg)
{
	static const char *const ids[] = { DEV2, DEV9, DEV1 };
	struct batch *b = arg;

	b->seen.n = 0;
	b->rc[1] = store_key_each_devices(tx, ids, 3, KEY_STATE_BIT(KEY_ACTIVE), seen_key,
					  &b->seen);
	b->rc[2] = store_key_each_devices(tx, ids, 0, KEY_STATE_BIT(KEY_ACTIVE), seen_key,
					  &b->seen);
	return store_key_each_devices(tx, ids, 3, KEY_STATE_BIT(KEY_ACTIVE) |
				      KEY_STATE_BIT(KEY_DISCLOSED) | KEY_STATE_BIT(KEY_REMOVED),
				      seen_key, &b->seen);
}

static void test_key_each_devices(void **state)
{
	struct fx *f = *state;
	struct batch_fx k;
	struct batch b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_batch_setup, &k), 0);
	assert_int_equal(store_read(f->s, tx_each_devices, &b), 0);
	assert_int_equal(b.rc[1], 0);
	assert_int_equal(b.rc[2], 0);
	assert_int_equal(b.seen.n, 4);
	assert_string_equal(b.seen.v[0], KEY(3) " active");
	assert_string_equal(b.seen.v[1], KEY(2) " removed");
	assert_string_equal(b.seen.v[2], KEY(3) " active");
	assert_string_equal(b.seen.v[3], KEY(1) " disclosed");
}

static void test_key_get_many(void **state)
{
	struct fx *f = *state;
	struct batch_fx k;
	struct batch b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_batch_setup, &k), 0);
	assert_int_equal(store_read(f->s, tx_get_many, &b), 0);
	assert_int_equal(b.rc[1], KW_ERR_INVALID);
	assert_int_equal(b.rc[2], 0);
	/* By key ID, each once, any device, the unknown one left out. */
	assert_int_equal(b.seen.n, 3);
	assert_string_equal(b.seen.v[0], KEY(1) " disclosed");
	assert_string_equal(b.seen.v[1], KEY(2) " removed");
	assert_string_equal(b.seen.v[2], KEY(3) " active");
}

/* A batch with a taken key ID in the middle: nothing of it kept, and the
 * transaction goes on; then one naming another device's volume. */
static int tx_insert_many(struct store_tx *tx, void *arg)
{
	struct batch_fx *k = arg;
	struct key_rec keys[3];
	int rc;

	key_of(&keys[0], DEV1, k->v1, KEY(4), KEY_ACTIVE);
	key_of(&keys[1], DEV1, k->v1, KEY(3), KEY_ACTIVE);    /* taken */
	key_of(&keys[2], DEV1, k->v2, KEY(5), KEY_ACTIVE);
	if ((rc = store_key_insert_many(tx, keys, 3)) != KW_ERR_EXISTS)
		return rc < 0 ? rc : KW_ERR_INTERNAL;
	key_of(&keys[1], DEV1, k->v3, KEY(6), KEY_ACTIVE);    /* DEV2's volume */
	if ((rc = store_key_insert_many(tx, keys, 3)) != KW_ERR_NOT_FOUND)
		return rc < 0 ? rc : KW_ERR_INTERNAL;
	key_of(&keys[1], DEV2, k->v3, KEY(6), KEY_DISCLOSED);
	return store_key_insert_many(tx, keys, 3);
}

static int tx_all_keys(struct store_tx *tx, void *arg)
{
	static const char *const ids[] = { KEY(1), KEY(2), KEY(3), KEY(4), KEY(5), KEY(6) };
	struct batch *b = arg;

	b->seen.n = 0;
	return store_key_get_many(tx, ids, 6, seen_key, &b->seen);
}

struct changes {
	struct batch_fx *k;
	int64_t row[7];          /* by key number */
	int rc;
};

static int row_of(const struct key_rec *k, void *arg)
{
	struct changes *c = arg;

	c->row[k->key_id[STORE_ID_LEN - 1] - '0'] = k->row;
	return 0;
}

/* A batch of changes with a row that does not exist: nothing changed;
 * then the same without it. */
static int tx_set_state_many(struct store_tx *tx, void *arg)
{
	static const char *const ids[] = { KEY(1), KEY(2), KEY(3) };
	struct changes *c = arg;
	struct key_change ch[3];
	int rc;

	if ((rc = store_key_get_many(tx, ids, 3, row_of, c)) < 0)
		return rc;
	ch[0] = (struct key_change){ c->row[1], KEY_SUPERSEDED };
	ch[1] = (struct key_change){ c->row[3], KEY_REMOVED };
	ch[2] = (struct key_change){ c->row[1] + c->row[2] + c->row[3] + 1000, KEY_ACTIVE };
	c->rc = store_key_set_state_many(tx, ch, 3, 900);
	ch[2] = (struct key_change){ c->row[2], KEY_DISCLOSED };
	if (c->rc != KW_ERR_NOT_FOUND)
		return KW_ERR_INTERNAL;
	return store_key_set_state_many(tx, ch, 3, 950);
}

struct disclosed_at {
	int64_t changed, disclosed;
};

static int times_of(const struct key_rec *k, void *arg)
{
	struct disclosed_at *d = arg;

	d->changed = k->changed_at;
	d->disclosed = k->disclosed_at;
	return 0;
}

static int tx_times_of_key2(struct store_tx *tx, void *arg)
{
	return store_key_get(tx, KEY(2), times_of, arg);
}

static void test_key_batches(void **state)
{
	struct fx *f = *state;
	struct batch_fx k;
	struct batch b;
	struct changes c;
	struct disclosed_at d;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_batch_setup, &k), 0);
	assert_int_equal(store_write(f->s, tx_insert_many, &k), 0);
	assert_int_equal(store_read(f->s, tx_all_keys, &b), 0);
	assert_int_equal(b.seen.n, 6);
	assert_string_equal(b.seen.v[3], KEY(4) " active");
	assert_string_equal(b.seen.v[5], KEY(6) " disclosed");

	memset(&c, 0, sizeof(c));
	c.k = &k;
	assert_int_equal(store_write(f->s, tx_set_state_many, &c), 0);
	assert_int_equal(c.rc, KW_ERR_NOT_FOUND);
	assert_int_equal(store_read(f->s, tx_all_keys, &b), 0);
	assert_string_equal(b.seen.v[0], KEY(1) " superseded");
	assert_string_equal(b.seen.v[1], KEY(2) " disclosed");
	assert_string_equal(b.seen.v[2], KEY(3) " removed");
	assert_int_equal(store_read(f->s, tx_times_of_key2, &d), 0);
	assert_int_equal(d.changed, 950);      /* the failed batch left nothing */
	assert_int_equal(d.disclosed, 950);
}

/* DEV2 is named so that it sorts first. */
static int tx_full_setup(struct store_tx *tx, void *arg)
{
	int64_t v1, v2, v3;
	int rc;

	if ((rc = put_device(tx, DEV1, "pc-B", 1)) < 0 ||
	    (rc = put_device(tx, DEV2, "PC-a", 2)) < 0 ||
	    (rc = put_volume(tx, DEV1, DEV1, "C:", &v1)) < 0 ||
	    (rc = put_volume(tx, DEV1, DEV2, "D:", &v2)) < 0 ||
	    (rc = put_volume(tx, DEV2, DEV1, "E:", &v3)) < 0 ||
	    (rc = put_key(tx, DEV1, v2, KEY(1), KEY_DISCLOSED)) < 0 ||
	    (rc = put_key(tx, DEV1, v1, KEY(3), KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, v1, KEY(4), KEY_REMOVED)) < 0 ||
	    (rc = put_key(tx, DEV2, v3, KEY(2), KEY_ACTIVE)) < 0)
		return rc;
	return 0;
}

static int seen_full(const struct key_full_rec *r, void *arg)
{
	/* The record's parts agree with each other. */
	if (strcmp(r->key.device_id, r->device->id) || strcmp(r->volume->device_id, r->device->id) ||
	    r->key.volume_row != r->volume->row)
		seen_add(arg, "inconsistent");
	seen_add(arg, "%c %s %s", r->key.key_id[STORE_ID_LEN - 1], r->device->name,
		 r->volume->mount);
	return 0;
}

struct full_q {
	const char *prefix;
	unsigned states;
	struct seen seen;
};

static int tx_full(struct store_tx *tx, void *arg)
{
	struct full_q *q = arg;

	q->seen.n = 0;
	if (!q->prefix)
		return store_key_each_full(tx, seen_full, &q->seen);
	return store_key_each_prefix(tx, q->prefix, q->states, seen_full, &q->seen);
}

static void test_key_each_full_and_prefix(void **state)
{
	struct fx *f = *state;
	struct full_q q;

	assert_int_equal(store_write(f->s, tx_full_setup, NULL), 0);
	/* By device name (any case), volume, then key as added. */
	memset(&q, 0, sizeof(q));
	assert_int_equal(store_read(f->s, tx_full, &q), 0);
	assert_int_equal(q.seen.n, 4);
	assert_string_equal(q.seen.v[0], "2 PC-a E:");
	assert_string_equal(q.seen.v[1], "3 pc-B C:");
	assert_string_equal(q.seen.v[2], "4 pc-B C:");
	assert_string_equal(q.seen.v[3], "1 pc-B D:");
	/* A prefix of the hex digits, any device, by key ID, in the states. */
	q.prefix = "4290B6C0";
	q.states = KEY_STATES_ALL;
	assert_int_equal(store_read(f->s, tx_full, &q), 0);
	assert_int_equal(q.seen.n, 4);
	assert_string_equal(q.seen.v[0], "1 pc-B D:");
	assert_string_equal(q.seen.v[1], "2 PC-a E:");
	assert_string_equal(q.seen.v[3], "4 pc-B C:");
	q.states = KEY_STATE_BIT(KEY_ACTIVE) | KEY_STATE_BIT(KEY_DISCLOSED);
	assert_int_equal(store_read(f->s, tx_full, &q), 0);
	assert_int_equal(q.seen.n, 3);
	q.prefix = "4290B6C0B17A497A8552000000000002";
	q.states = KEY_STATES_ALL;
	assert_int_equal(store_read(f->s, tx_full, &q), 0);
	assert_int_equal(q.seen.n, 1);
	assert_string_equal(q.seen.v[0], "2 PC-a E:");
	q.prefix = "4290B6C1";
	assert_int_equal(store_read(f->s, tx_full, &q), 0);
	assert_int_equal(q.seen.n, 0);
}

struct ended {
	int rc[3];
	int alive[3];
};

static int alive(const struct session_rec *r, void *arg)
{
	return 0;
}

static int tx_delete_user(struct store_tx *tx, void *arg)
{
	static const char *const who[] = { "Alice", "alice", "bob" };
	struct ended *e = arg;
	struct session_rec r;
	int rc;

	for (int i = 0; i < 3; i++) {
		memset(&r, 0, sizeof(r));
		hash_of(r.hash, 100 + i);
		r.user = who[i];
		r.created_at = 100;
		if ((rc = store_session_insert(tx, &r)) < 0)
			return rc;
	}
	e->rc[0] = store_session_delete_user(tx, "ALICE");
	e->rc[1] = store_session_delete_user(tx, "nobody");
	for (int i = 0; i < 3; i++) {
		memset(&r, 0, sizeof(r));
		hash_of(r.hash, 100 + i);
		e->alive[i] = store_session_get(tx, r.hash, alive, NULL);
	}
	return 0;
}

/* Ending a user's sessions: the name in any case; a set. */
static void test_session_delete_user(void **state)
{
	struct fx *f = *state;
	struct ended e;

	assert_int_equal(store_write(f->s, tx_delete_user, &e), 0);
	assert_int_equal(e.rc[0], 0);
	assert_int_equal(e.rc[1], 0);
	assert_int_equal(e.alive[0], KW_ERR_NOT_FOUND);
	assert_int_equal(e.alive[1], KW_ERR_NOT_FOUND);
	assert_int_equal(e.alive[2], 0);
}

static int tx_logon_batch(struct store_tx *tx, void *arg)
{
	struct batch *b = arg;
	struct logon_rec l[3];
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0)
		return rc;
	memset(l, 0, sizeof(l));
	for (int i = 0; i < 3; i++) {
		snprintf(l[i].device_id, sizeof(l[i].device_id), "%s", DEV1);
		l[i].type = LOGON_LOCAL;
		l[i].first_seen = l[i].last_seen = 500 + i;
	}
	l[0].user = "CORP\\Alice";
	l[1].user = "corp\\alice";
	l[2].user = "CORP\\bob";
	b->rc[0] = store_logon_upsert_many(tx, l, 3);
	snprintf(l[1].device_id, sizeof(l[1].device_id), "%s", DEV9);
	l[0].user = "CORP\\carol";
	b->rc[1] = store_logon_upsert_many(tx, l, 2);
	return 0;
}

static int seen_logon(const struct logon_rec *l, void *arg)
{
	seen_add(arg, "%s %lld-%lld", l->user, (long long)l->first_seen,
		 (long long)l->last_seen);
	return 0;
}

static int tx_logons_of_dev1(struct store_tx *tx, void *arg)
{
	struct batch *b = arg;

	b->seen.n = 0;
	return store_logon_each_device(tx, DEV1, seen_logon, &b->seen);
}

static void test_logon_upsert_many(void **state)
{
	struct fx *f = *state;
	struct batch b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_logon_batch, &b), 0);
	assert_int_equal(b.rc[0], 0);
	assert_int_equal(b.rc[1], KW_ERR_NOT_FOUND);
	assert_int_equal(store_read(f->s, tx_logons_of_dev1, &b), 0);
	assert_int_equal(b.seen.n, 2);        /* no carol */
	assert_string_equal(b.seen.v[0], "CORP\\Alice 500-501");
	assert_string_equal(b.seen.v[1], "CORP\\bob 502-502");
}

/* ---- the audit chain ---- */

/* A stand-in for audit_hash that depends on what the chain must carry:
 * prev_hash, seq, at and the comment. */
static void chain_hash(const struct audit_rec *a, uint8_t out[32])
{
	size_t n = strlen(a->comment);

	for (int i = 0; i < 32; i++)
		out[i] = (uint8_t)(a->prev_hash[(i + 1) % 32] * 7 + (uint8_t)a->seq * 13 +
				   (uint8_t)a->at + i + (n ? (uint8_t)a->comment[(size_t)i % n] : 0));
}

struct chain {
	int64_t n;               /* records read */
	int64_t last_seq;
	uint8_t last_hash[32];
	bool ok;
	char first_comment[16], first_client[16];
};

static int check_link(const struct audit_rec *a, void *arg)
{
	struct chain *c = arg;
	uint8_t h[32];

	if (!c->n) {
		snprintf(c->first_comment, sizeof(c->first_comment), "%s", a->comment);
		snprintf(c->first_client, sizeof(c->first_client), "%s", a->client);
	}
	chain_hash(a, h);
	if (a->seq != c->last_seq + 1 || memcmp(a->prev_hash, c->last_hash, 32) ||
	    memcmp(a->hash, h, 32))
		c->ok = false;
	c->n++;
	c->last_seq = a->seq;
	memcpy(c->last_hash, a->hash, 32);
	return 0;
}

static int tx_check_chain(struct store_tx *tx, void *arg)
{
	struct chain *c = arg;
	int64_t seq;
	uint8_t hash[32];
	int rc;

	memset(c, 0, sizeof(*c));
	c->ok = true;
	if ((rc = store_audit_each(tx, NULL, check_link, c)) < 0)
		return rc;
	/* The head names the newest record. */
	if ((rc = store_audit_head(tx, &seq, hash)) < 0)
		return rc;
	if (seq != c->last_seq || memcmp(hash, c->last_hash, 32))
		c->ok = false;
	return 0;
}

struct appender {
	struct store *s;
	int n;
	int64_t at;
	int64_t seq;             /* the last record's, as written back */
	int failures;
};

static int tx_append(struct store_tx *tx, void *arg)
{
	struct appender *ap = arg;
	struct audit_rec a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.at = ap->at;
	a.source = "cli";
	a.result = "rekeyed";
	a.comment = "x";
	a.client = NULL;          /* stored as "" */
	if ((rc = store_audit_append(tx, &a, chain_hash)) < 0)
		return rc;
	ap->seq = a.seq;
	return 0;
}

static void *append_thread(void *p)
{
	struct appender *ap = p;

	for (int i = 0; i < ap->n; i++)
		if (store_write(ap->s, tx_append, ap) < 0)
			ap->failures++;
	return NULL;
}

static void test_audit_append_chains(void **state)
{
	struct fx *f = *state;
	struct appender ap = { .s = f->s, .n = 1, .at = 1000 };
	struct chain c;

	assert_int_equal(store_read(f->s, tx_check_chain, &c), KW_ERR_NOT_FOUND);
	for (int i = 1; i <= 3; i++) {
		append_thread(&ap);
		assert_int_equal(ap.failures, 0);
		assert_int_equal(ap.seq, i);
	}
	assert_int_equal(store_read(f->s, tx_check_chain, &c), 0);
	assert_true(c.ok);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.first_comment, "x");
	assert_string_equal(c.first_client, "");
}

/* Appends from many threads at once: every record gets its own seq, and
 * each follows the one before. */
static void test_audit_append_concurrent(void **state)
{
	enum { THREADS = 8, EACH = 25 };
	struct fx *f = *state;
	struct appender ap[THREADS];
	pthread_t th[THREADS];
	struct chain c;

	for (int i = 0; i < THREADS; i++) {
		ap[i] = (struct appender){ .s = f->s, .n = EACH, .at = 2000 + i };
		assert_int_equal(pthread_create(&th[i], NULL, append_thread, &ap[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ap[i].failures, 0);
	}
	assert_int_equal(store_read(f->s, tx_check_chain, &c), 0);
	assert_int_equal(c.n, THREADS * EACH);
	assert_int_equal(c.last_seq, THREADS * EACH);
	assert_true(c.ok);
}

/* ---- rate limits ---- */

/* One limit operation per write: take (with its retry_after), give back,
 * clear or purge. */
struct lim {
	char op;                 /* 't', 'g', 'c', 'p' */
	const char *limiter, *key;
	int64_t now, count, window;
	int64_t retry;
};

static int tx_lim(struct store_tx *tx, void *arg)
{
	struct lim *l = arg;

	l->retry = -1;
	switch (l->op) {
	case 't':
		return store_limit_take(tx, l->limiter, l->key, l->now, l->count, l->window,
					&l->retry);
	case 'g':
		return store_limit_give_back(tx, l->limiter, l->key, l->now);
	case 'c':
		return store_limit_clear(tx, l->limiter, l->key);
	default:
		return store_limit_purge(tx, l->limiter, l->now, l->window);
	}
}

/* store_write's result, which is the operation's. */
static int lim(struct store *s, char op, const char *limiter, const char *key, int64_t now,
	       int64_t *retry)
{
	struct lim l = { op, limiter, key, now, 3, 60, 0 };
	int rc = store_write(s, tx_lim, &l);

	if (retry)
		*retry = l.retry;
	return rc;
}

static void test_limit_take(void **state)
{
	struct fx *f = *state;
	struct store *s = f->s;
	int64_t retry = -1;

	/* 3 per 60 s: events at 100, 110, 120; then full until 160. */
	assert_int_equal(lim(s, 't', "login", "alice", 100, &retry), 1);
	assert_int_equal(retry, 0);
	assert_int_equal(lim(s, 't', "login", "alice", 110, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "alice", 120, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "alice", 125, &retry), 0);
	assert_int_equal(retry, 35);                  /* 100 leaves at 160 */
	assert_int_equal(lim(s, 't', "login", "alice", 159, &retry), 0);
	assert_int_equal(retry, 1);
	/* At the limit nothing was recorded: 160 takes the place of 100. */
	assert_int_equal(lim(s, 't', "login", "alice", 160, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "alice", 161, &retry), 0);
	assert_int_equal(retry, 9);                   /* 110 leaves at 170 */

	/* Other keys and other limiters count alone; keys are exact. */
	assert_int_equal(lim(s, 't', "login", "Alice", 161, NULL), 1);
	assert_int_equal(lim(s, 't', "recover", "alice", 161, NULL), 1);

	/* A clock that went back: later events do not count. */
	assert_int_equal(lim(s, 't', "login", "alice", 50, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "alice", 51, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "alice", 52, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "alice", 53, NULL), 0);

	/* Arguments out of range. */
	assert_int_equal(lim(s, 't', "", "", 1, NULL), 1);   /* empty is a name */
	{
		char big[STORE_LIMIT_KEY_MAX + 2];
		struct lim l = { 't', "login", "k", 1, 0, 60, 0 };

		memset(big, 'k', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(lim(s, 't', "login", big, 1, NULL), KW_ERR_INVALID);
		big[STORE_LIMIT_KEY_MAX] = '\0';
		assert_int_equal(lim(s, 't', "login", big, 1, NULL), 1);
		assert_int_equal(store_write(s, tx_lim, &l), KW_ERR_INVALID);   /* count 0 */
		l.count = 1;
		l.window = 0;
		assert_int_equal(store_write(s, tx_lim, &l), KW_ERR_INVALID);
	}
}

static void test_limit_give_back_clear_purge(void **state)
{
	struct fx *f = *state;
	struct store *s = f->s;
	int64_t retry;

	assert_int_equal(lim(s, 't', "login", "bob", 100, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "bob", 100, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "bob", 101, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "bob", 102, NULL), 0);
	/* The attempt at 101 did not count: one more is allowed. */
	assert_int_equal(lim(s, 'g', "login", "bob", 101, NULL), 0);
	assert_int_equal(lim(s, 'g', "login", "bob", 101, NULL), KW_ERR_NOT_FOUND);
	assert_int_equal(lim(s, 'g', "login", "carol", 100, NULL), KW_ERR_NOT_FOUND);
	/* One of the two at 100 only. */
	assert_int_equal(lim(s, 'g', "login", "bob", 100, NULL), 0);
	assert_int_equal(lim(s, 't', "login", "bob", 103, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "bob", 104, NULL), 1);
	assert_int_equal(lim(s, 't', "login", "bob", 105, &retry), 0);
	assert_int_equal(retry, 55);

	/* Cleared: the key starts again; clearing nothing is no error. */
	assert_int_equal(lim(s, 'c', "login", "bob", 0, NULL), 0);
	assert_int_equal(lim(s, 'c', "login", "nobody", 0, NULL), 0);
	assert_int_equal(lim(s, 't', "login", "bob", 106, NULL), 1);
	assert_int_equal(lim(s, 'g', "login", "bob", 104, NULL), KW_ERR_NOT_FOUND);

	/* Purge at 165 (window 60): events at or before 105 go, for every key
	 * of that limiter only; the ones that still count stay. */
	assert_int_equal(lim(s, 't', "login", "dave", 100, NULL), 1);
	assert_int_equal(lim(s, 't', "recover", "dave", 100, NULL), 1);
	assert_int_equal(lim(s, 'p', "login", NULL, 165, NULL), 0);
	assert_int_equal(lim(s, 'g', "login", "dave", 100, NULL), KW_ERR_NOT_FOUND);
	assert_int_equal(lim(s, 'g', "recover", "dave", 100, NULL), 0);
	assert_int_equal(lim(s, 'g', "login", "bob", 106, NULL), 0);
}

struct taker {
	struct store *s;
	int takes, taken, refused, failed;
};

static void *take_thread(void *p)
{
	struct taker *t = p;

	for (int i = 0; i < t->takes; i++) {
		struct lim l = { 't', "login", "mallory", 1000, 25, 600, 0 };
		int rc = store_write(t->s, tx_lim, &l);

		if (rc == 1)
			t->taken++;
		else if (rc == 0)
			t->refused++;
		else
			t->failed++;
	}
	return NULL;
}

/* A burst of concurrent attempts gets no more than the count. */
static void test_limit_take_concurrent(void **state)
{
	enum { THREADS = 16, TAKES = 10 };
	struct fx *f = *state;
	struct taker t[THREADS];
	pthread_t th[THREADS];
	int taken = 0, refused = 0;

	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct taker){ .s = f->s, .takes = TAKES };
		assert_int_equal(pthread_create(&th[i], NULL, take_thread, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].failed, 0);
		taken += t[i].taken;
		refused += t[i].refused;
	}
	assert_int_equal(taken, 25);
	assert_int_equal(refused, THREADS * TAKES - 25);
}

/* ---- reports: a page of the audit report, keys by state, devices with
 * their volumes ---- */

struct page_q {
	struct audit_filter f;
	int64_t cursor;
	bool newer;
	int64_t limit;
	struct seen seen;
	int rc;
};

static int seen_audit(const struct audit_rec *a, void *arg)
{
	seen_add(arg, "%lld", (long long)a->seq);
	return 0;
}

static int tx_audit_page(struct store_tx *tx, void *arg)
{
	struct page_q *q = arg;

	memset(&q->seen, 0, sizeof(q->seen));
	q->rc = store_audit_page(tx, &q->f, q->cursor, q->newer, q->limit, seen_audit,
				 &q->seen);
	return 0;
}

/* The seqs a page lists, joined by spaces. */
static void page_expect(struct store *s, struct audit_filter f, int64_t cursor, bool newer,
			const char *want)
{
	struct page_q q = { .f = f, .cursor = cursor, .newer = newer, .limit = 3 };
	char got[256] = "";

	assert_int_equal(store_read(s, tx_audit_page, &q), 0);
	assert_int_equal(q.rc, 0);
	for (size_t i = 0; i < q.seen.n; i++) {
		strncat(got, i ? " " : "", sizeof(got) - strlen(got) - 1);
		strncat(got, q.seen.v[i], sizeof(got) - strlen(got) - 1);
	}
	if (strcmp(got, want))
		fail_msg("page after %lld: \"%s\", want \"%s\"", (long long)cursor, got, want);
}

static void test_audit_page(void **state)
{
	struct fx *f = *state;
	struct page_q q = { .limit = 0 };

	assert_int_equal(store_write(f->s, tx_audit_fill, NULL), 0);
	/* Newest first, three a page; older after a cursor, newer before it
	 * (oldest first). */
	page_expect(f->s, (struct audit_filter){ 0 }, 0, false, "5 4 3");
	page_expect(f->s, (struct audit_filter){ 0 }, 3, false, "2 1");
	page_expect(f->s, (struct audit_filter){ 0 }, 1, false, "");
	page_expect(f->s, (struct audit_filter){ 0 }, 2, true, "3 4 5");
	page_expect(f->s, (struct audit_filter){ 0 }, 5, true, "");
	page_expect(f->s, (struct audit_filter){ 0 }, 99, false, "");
	/* Each filter, alone and with the time range and a cursor. */
	page_expect(f->s, (struct audit_filter){ .user = "ALICE" }, 0, false, "2 1");
	page_expect(f->s, (struct audit_filter){ .user = "helpdesk1" }, 0, false, "5 1");
	page_expect(f->s, (struct audit_filter){ .user = "helpdesk1" }, 5, false, "1");
	page_expect(f->s, (struct audit_filter){ .user = "alice" }, 1, true, "2");
	page_expect(f->s, (struct audit_filter){ .user = "ali" }, 0, false, "");
	page_expect(f->s, (struct audit_filter){ .computer = "pc-1" }, 0, false, "3 1");
	page_expect(f->s, (struct audit_filter){ .computer = "PC-2" }, 0, false, "5 2");
	page_expect(f->s, (struct audit_filter){ .result = "disclosed" }, 0, false, "4 2 1");
	page_expect(f->s, (struct audit_filter){ .result = "disclosed" }, 4, false, "2 1");
	page_expect(f->s, (struct audit_filter){ .source = "self_service" }, 0, false, "3 2");
	page_expect(f->s, (struct audit_filter){ .from = 1500, .to = 4500 }, 0, false, "4 3 2");
	page_expect(f->s, (struct audit_filter){ .from = 1500, .result = "disclosed" }, 0, false,
		    "4 2");
	page_expect(f->s, (struct audit_filter){ .computer = "pc-1", .user = "bob" }, 0, false,
		    "3");
	page_expect(f->s, (struct audit_filter){ .source = "helpdesk", .result = "disclosed",
						 .to = 4500 }, 0, false, "1");
	/* Result and source together, with cursors both ways. */
	page_expect(f->s, (struct audit_filter){ .source = "self_service",
						 .result = "disclosed" }, 0, false, "2");
	page_expect(f->s, (struct audit_filter){ .source = "helpdesk", .result = "ambiguous" },
		    0, false, "5");
	page_expect(f->s, (struct audit_filter){ .source = "helpdesk", .result = "disclosed" },
		    5, false, "1");
	page_expect(f->s, (struct audit_filter){ .source = "helpdesk", .result = "disclosed" },
		    1, true, "");
	page_expect(f->s, (struct audit_filter){ .source = "api", .result = "not_found" }, 0,
		    false, "");
	/* The time range and the cursor together: the tighter bound wins. */
	page_expect(f->s, (struct audit_filter){ .to = 4500 }, 5, false, "4 3 2");
	page_expect(f->s, (struct audit_filter){ .to = 2500 }, 4, false, "2 1");
	page_expect(f->s, (struct audit_filter){ .from = 2500 }, 1, true, "3 4 5");
	page_expect(f->s, (struct audit_filter){ .from = 1500, .to = 3500 }, 4, true, "");
	page_expect(f->s, (struct audit_filter){ .from = 1500, .to = 3500 }, 1, true, "2 3");
	/* A bad limit. */
	assert_int_equal(store_read(f->s, tx_audit_page, &q), 0);
	assert_int_equal(q.rc, KW_ERR_INVALID);
}

static int tx_state_fill(struct store_tx *tx, void *arg)
{
	int64_t v1, v2, v3;
	int rc;

	(void)arg;
	if ((rc = put_device(tx, DEV1, "Beta", 1)) < 0 ||
	    (rc = put_device(tx, DEV2, "alpha", 2)) < 0 ||
	    (rc = put_device(tx, DEV3, "beta", 3)) < 0 ||
	    (rc = put_volume(tx, DEV1, VOL1, "C:", &v1)) < 0 ||
	    (rc = put_volume(tx, DEV1, VOL2, "D:", &v2)) < 0 ||
	    (rc = put_volume(tx, DEV2, VOL1, "C:", &v3)) < 0 ||
	    (rc = put_key(tx, DEV1, v1, KEY(1), KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, v1, KEY(2), KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, v1, KEY(3), KEY_SUPERSEDED)) < 0 ||
	    (rc = put_key(tx, DEV1, v2, KEY(4), KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV2, v3, KEY(5), KEY_ACTIVE)) < 0)
		return rc;
	/* Disclosed at 900, 700, 700 (rows 5, 4, 1: ties by row). */
	if ((rc = store_key_set_state(tx, 5, KEY_DISCLOSED, 900)) < 0 ||
	    (rc = store_key_set_state(tx, 4, KEY_DISCLOSED, 700)) < 0 ||
	    (rc = store_key_set_state(tx, 1, KEY_DISCLOSED, 700)) < 0)
		return rc;
	return 0;
}

struct state_q {
	enum key_state state;
	int64_t after_changed, after_row, limit;
	struct seen seen;
	int rc;
};

static int seen_key_full(const struct key_full_rec *k, void *arg)
{
	seen_add(arg, "%s %s %s %lld", k->key.key_id + 34, k->device->name, k->volume->mount,
		 (long long)k->key.changed_at);
	return 0;
}

static int tx_key_each_state(struct store_tx *tx, void *arg)
{
	struct state_q *q = arg;

	memset(&q->seen, 0, sizeof(q->seen));
	q->rc = store_key_each_state(tx, q->state, q->after_changed, q->after_row, q->limit,
				     seen_key_full, &q->seen);
	return 0;
}

struct dv_q {
	const char *after;
	int64_t limit;
	struct seen seen;
	int rc;
};

static int seen_device_volumes(const struct device_volumes_rec *r, void *arg)
{
	seen_add(arg, "%s %zu", r->device->name, r->nvolumes);
	for (size_t i = 0; i < r->nvolumes; i++)
		seen_add(arg, " %s %s %x", r->volumes[i].volume.mount,
			 r->volumes[i].volume.device_id, r->volumes[i].key_states);
	return 0;
}

static int tx_device_each_volumes(struct store_tx *tx, void *arg)
{
	struct dv_q *q = arg;

	memset(&q->seen, 0, sizeof(q->seen));
	q->rc = store_device_each_volumes(tx, q->after, q->limit, seen_device_volumes,
					  &q->seen);
	return 0;
}

static void test_report_lists(void **state)
{
	struct fx *f = *state;
	struct state_q q = { .state = KEY_DISCLOSED, .limit = 2 };
	struct dv_q d = { .limit = 2 };

	assert_int_equal(store_write(f->s, tx_state_fill, NULL), 0);

	/* Disclosed keys by disclosure time, then row, a page at a time. */
	assert_int_equal(store_read(f->s, tx_key_each_state, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_int_equal(q.seen.n, 2);
	assert_string_equal(q.seen.v[0], "01 Beta C: 700");
	assert_string_equal(q.seen.v[1], "04 Beta D: 700");
	q.after_changed = 700;
	q.after_row = 4;
	assert_int_equal(store_read(f->s, tx_key_each_state, &q), 0);
	assert_int_equal(q.seen.n, 1);
	assert_string_equal(q.seen.v[0], "05 alpha C: 900");
	q.after_changed = 900;
	q.after_row = 5;
	assert_int_equal(store_read(f->s, tx_key_each_state, &q), 0);
	assert_int_equal(q.seen.n, 0);
	/* Another state. */
	q = (struct state_q){ .state = KEY_ACTIVE, .limit = 10 };
	assert_int_equal(store_read(f->s, tx_key_each_state, &q), 0);
	assert_int_equal(q.seen.n, 1);
	assert_string_equal(q.seen.v[0], "02 Beta C: 300");
	q = (struct state_q){ .state = KEY_ACTIVE, .limit = 0 };
	assert_int_equal(store_read(f->s, tx_key_each_state, &q), 0);
	assert_int_equal(q.rc, KW_ERR_INVALID);

	/* Devices by name (any case), then when added, with their volumes
	 * (by mount) and the states of the volumes' keys. */
	assert_int_equal(store_read(f->s, tx_device_each_volumes, &d), 0);
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.seen.n, 5);
	assert_string_equal(d.seen.v[0], "alpha 1");
	assert_string_equal(d.seen.v[1], " C: " DEV2 " 4");
	assert_string_equal(d.seen.v[2], "Beta 2");
	assert_string_equal(d.seen.v[3], " C: " DEV1 " d");
	assert_string_equal(d.seen.v[4], " D: " DEV1 " 4");
	d.after = DEV1;
	assert_int_equal(store_read(f->s, tx_device_each_volumes, &d), 0);
	assert_int_equal(d.seen.n, 1);
	assert_string_equal(d.seen.v[0], "beta 0");
	d.after = DEV3;
	assert_int_equal(store_read(f->s, tx_device_each_volumes, &d), 0);
	assert_int_equal(d.seen.n, 0);
	d.after = DEV9;
	assert_int_equal(store_read(f->s, tx_device_each_volumes, &d), 0);
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.seen.n, 0);
	d = (struct dv_q){ .limit = 0 };
	assert_int_equal(store_read(f->s, tx_device_each_volumes, &d), 0);
	assert_int_equal(d.rc, KW_ERR_INVALID);
}

/* ---- imported keys (store_key_import) ---- */

#define KI1 "BBBB0001-0000-4000-8000-000000000001"
#define KI2 "BBBB0001-0000-4000-8000-000000000002"

struct import_q {
	int64_t vol;
	struct key_rec k;          /* what to import (tx_key_import) */
	char origin[STORE_ORIGIN_MAX + 1];
	struct key_copy out;       /* what key_get read back */
	int calls;
};

static int copy_imported(const struct key_rec *k, void *arg)
{
	struct import_q *q = arg;

	copy_key(k, &q->out);
	snprintf(q->origin, sizeof(q->origin), "%s", k->origin ? k->origin : "(null)");
	q->out.k.origin = NULL;
	return 0;
}

static int tx_import_setup(struct store_tx *tx, void *arg)
{
	struct import_q *q = arg;
	int rc;

	if ((rc = put_device(tx, DEV1, "PC-1", 1)) < 0 ||
	    (rc = put_volume(tx, DEV1, VOL1, "C:", &q->vol)) < 0 ||
	    (rc = put_key(tx, DEV1, q->vol, KA, KEY_ACTIVE)) < 0)
		return rc;
	return 0;
}

static int tx_key_import(struct store_tx *tx, void *arg)
{
	struct import_q *q = arg;

	return store_key_import(tx, &q->k);
}

static int tx_import_get(struct store_tx *tx, void *arg)
{
	struct import_q *q = arg;

	memset(&q->out, 0, sizeof(q->out));
	q->origin[0] = '\0';
	return store_key_get(tx, q->k.key_id, copy_imported, q);
}

static void test_key_import(void **state)
{
	static const uint8_t sealed[] = { 7, 0, 7 };
	char long_origin[STORE_ORIGIN_MAX + 2];
	struct fx *f = *state;
	struct import_q q;

	memset(&q, 0, sizeof(q));
	assert_int_equal(store_write(f->s, tx_import_setup, &q), 0);

	/* A key escrowed by its device has no origin. */
	snprintf(q.k.key_id, sizeof(q.k.key_id), "%s", KA);
	assert_int_equal(store_read(f->s, tx_import_get, &q), 0);
	assert_string_equal(q.origin, "");

	/* Every time and the state as given, with the origin. */
	memset(&q.k, 0, sizeof(q.k));
	snprintf(q.k.key_id, sizeof(q.k.key_id), "%s", KI1);
	snprintf(q.k.device_id, sizeof(q.k.device_id), "%s", DEV1);
	q.k.volume_row = q.vol;
	q.k.state = KEY_SUPERSEDED;
	q.k.sealed = sealed;
	q.k.sealed_len = sizeof(sealed);
	q.k.created_at = 500;
	q.k.changed_at = 700;
	q.k.disclosed_at = 600;
	q.k.origin = "import:csv:backup.csv";
	assert_int_equal(store_write(f->s, tx_key_import, &q), 0);
	assert_int_equal(store_read(f->s, tx_import_get, &q), 0);
	assert_string_equal(q.out.k.key_id, KI1);
	assert_string_equal(q.out.k.device_id, DEV1);
	assert_int_equal(q.out.k.volume_row, q.vol);
	assert_int_equal(q.out.k.state, KEY_SUPERSEDED);
	assert_int_equal(q.out.k.created_at, 500);
	assert_int_equal(q.out.k.changed_at, 700);
	assert_int_equal(q.out.k.disclosed_at, 600);
	assert_memory_equal(q.out.sealed, sealed, sizeof(sealed));
	assert_string_equal(q.origin, "import:csv:backup.csv");

	/* changed_at 0 is created_at. */
	snprintf(q.k.key_id, sizeof(q.k.key_id), "%s", KI2);
	q.k.state = KEY_ACTIVE;
	q.k.changed_at = 0;
	q.k.disclosed_at = 0;
	q.k.origin = "import:mbam:keys.csv";
	assert_int_equal(store_write(f->s, tx_key_import, &q), 0);
	assert_int_equal(store_read(f->s, tx_import_get, &q), 0);
	assert_int_equal(q.out.k.changed_at, 500);
	assert_int_equal(q.out.k.disclosed_at, 0);
	assert_string_equal(q.origin, "import:mbam:keys.csv");
	assert_int_equal(key_count(f->s), 3);

	/* As store_key_insert: a taken ID, an unknown device or volume. */
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_EXISTS);
	snprintf(q.k.key_id, sizeof(q.k.key_id), "BBBB0001-0000-4000-8000-000000000003");
	q.k.volume_row = 9999;
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_NOT_FOUND);
	q.k.volume_row = q.vol;
	snprintf(q.k.device_id, sizeof(q.k.device_id), "%s", DEV5);
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_NOT_FOUND);
	snprintf(q.k.device_id, sizeof(q.k.device_id), "%s", DEV1);
	/* No origin, one too long, a state that is none, an ID not canonical. */
	q.k.origin = "";
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_INVALID);
	q.k.origin = NULL;
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_INVALID);
	memset(long_origin, 'x', sizeof(long_origin) - 1);
	long_origin[sizeof(long_origin) - 1] = '\0';
	q.k.origin = long_origin;
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_INVALID);
	long_origin[STORE_ORIGIN_MAX] = '\0';
	q.k.state = (enum key_state)7;
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_INVALID);
	q.k.state = KEY_ACTIVE;
	snprintf(q.k.key_id, sizeof(q.k.key_id), "BBBB0001");
	assert_int_equal(store_write(f->s, tx_key_import, &q), KW_ERR_INVALID);
	assert_int_equal(key_count(f->s), 3);
	/* The longest origin fits. */
	snprintf(q.k.key_id, sizeof(q.k.key_id), "BBBB0001-0000-4000-8000-000000000004");
	assert_int_equal(store_write(f->s, tx_key_import, &q), 0);
	assert_int_equal(store_read(f->s, tx_import_get, &q), 0);
	assert_string_equal(q.origin, long_origin);
}

/* ---- copying a whole store ---- */

#define KC1 "CCCC0001-0000-4000-8000-000000000001"
#define KC2 "CCCC0001-0000-4000-8000-000000000002"
#define KC3 "CCCC0001-0000-4000-8000-000000000003"
#define KC4 "CCCC0001-0000-4000-8000-000000000004"

/* A second, empty database beside the fixture's, opened: the target of a
 * copy. Dropped (PostgreSQL) by other_close. */
static struct store *other_open(struct fx *f)
{
	struct store *s = NULL;
	char msg[256] = "", db[512];

	if (on_pg) {
		char sql[128], name[64];

		snprintf(name, sizeof(name), "%s_to", f->id);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
		pg_admin(sql);
		pg_url(name, db, sizeof(db));
	} else if (!strncmp(f->db, "sqlite:", 7)) {
		snprintf(db, sizeof(db), "sqlite:%s/other.db", f->dir);
	} else {
		skip();
	}
	if (store_open(db, true, &s, msg, sizeof(msg)) < 0)
		fail_msg("store_open %s: %s", db, msg);
	return s;
}

static void other_close(struct fx *f, struct store *s)
{
	store_close(s);
	if (on_pg) {
		char sql[128];

		snprintf(sql, sizeof(sql), "DROP DATABASE %s_to WITH (FORCE)", f->id);
		pg_admin(sql);
	}
}

static int tx_count_all(struct store_tx *tx, void *arg)
{
	return store_count_all(tx, arg);
}

static struct store_counts counts_of(struct store *s)
{
	struct store_counts c;

	assert_int_equal(store_read(s, tx_count_all, &c), 0);
	return c;
}

struct site {
	int64_t vol1, vol2, vol3, token;
	int64_t row1, row2;
};

static int key_rows(const struct key_rec *k, void *arg)
{
	struct site *st = arg;

	if (!strcmp(k->key_id, KC1))
		st->row1 = k->row;
	if (!strcmp(k->key_id, KC2))
		st->row2 = k->row;
	return 0;
}

/* A site with a record of every kind: meta, two users (one disabled),
 * a token used and revoked, three devices (one revoked, one checked in),
 * volumes, keys in every state (one imported), logons, an association,
 * audit records, and a session and a rate-limit event (not copied). */
static int tx_site(struct store_tx *tx, void *arg)
{
	static const uint8_t sealed[] = { 9, 8, 7, 0, 6 };
	struct site *st = arg;
	struct user_rec u = user("Alice", ROLE_HELPDESK);
	struct token_rec t;
	struct assoc_rec a = { "CORP\\Bob", DEV2, "admin", 444 };
	struct session_rec se;
	struct key_rec k;
	int rc;

	memset(&t, 0, sizeof(t));
	hash_of(t.hash, 900);
	t.created_at = 10;
	t.expires_at = 99999;
	t.uses_left = 5;
	if ((rc = store_meta_set(tx, "master_key_id", "fp-1")) < 0 ||
	    (rc = store_meta_set(tx, "zz_other", "value")) < 0 ||
	    (rc = store_user_insert(tx, &u)) < 0)
		return rc;
	u = user("bob", ROLE_ADMIN);
	u.disabled = true;
	if ((rc = store_user_insert(tx, &u)) < 0 ||
	    (rc = store_token_insert(tx, &t, &st->token)) < 0 ||
	    (rc = store_token_use(tx, st->token)) < 0 ||
	    (rc = store_token_revoke(tx, st->token)) < 0 ||
	    (rc = put_device(tx, DEV2, "pc-b", 2)) < 0 ||
	    (rc = put_device(tx, DEV1, "PC-A", 1)) < 0 ||
	    (rc = put_device(tx, DEV3, "pc-c", 3)) < 0 ||
	    (rc = store_device_set_revoked(tx, DEV3, true)) < 0 ||
	    (rc = store_device_checked_in(tx, DEV1, "Windows 12", 777)) < 0 ||
	    (rc = put_volume(tx, DEV1, "AAAAAAAA-0000-4000-8000-000000000001", "C:",
			     &st->vol1)) < 0 ||
	    (rc = put_volume(tx, DEV1, "AAAAAAAA-0000-4000-8000-000000000002", "D:",
			     &st->vol2)) < 0 ||
	    (rc = put_volume(tx, DEV2, "AAAAAAAA-0000-4000-8000-000000000003", "C:",
			     &st->vol3)) < 0 ||
	    (rc = put_key(tx, DEV1, st->vol1, KC1, KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, st->vol1, KC2, KEY_ACTIVE)) < 0 ||
	    (rc = put_key(tx, DEV1, st->vol2, KC3, KEY_ACTIVE)) < 0)
		return rc;
	memset(&k, 0, sizeof(k));
	snprintf(k.key_id, sizeof(k.key_id), "%s", KC4);
	snprintf(k.device_id, sizeof(k.device_id), "%s", DEV2);
	k.volume_row = st->vol3;
	k.state = KEY_SUPERSEDED;
	k.sealed = sealed;
	k.sealed_len = sizeof(sealed);
	k.created_at = 50;
	k.changed_at = 70;
	k.disclosed_at = 60;
	k.origin = "import:csv:old.csv";
	if ((rc = store_key_import(tx, &k)) < 0 ||
	    (rc = store_key_each_page(tx, 0, 100, key_rows, st)) < 0 ||
	    (rc = store_key_set_state(tx, st->row1, KEY_DISCLOSED, 333)) < 0 ||
	    (rc = store_key_set_state(tx, st->row2, KEY_REMOVED, 334)) < 0)
		return rc;
	memset(&se, 0, sizeof(se));
	hash_of(se.hash, 77);
	se.user = "Alice";
	se.created_at = 5;
	if ((rc = put_logon(tx, DEV1, "CORP\\Alice", LOGON_LOCAL, 400)) < 0 ||
	    (rc = put_logon(tx, DEV1, "carol", LOGON_REMOTE, 410)) < 0 ||
	    (rc = put_logon(tx, DEV2, "CORP\\Bob", LOGON_LOCAL, 420)) < 0 ||
	    (rc = store_assoc_add(tx, &a)) < 0 || (rc = store_session_insert(tx, &se)) < 0 ||
	    (rc = store_limit_take(tx, "login", "alice", 1000, 5, 60, NULL)) < 0)
		return rc;
	for (size_t i = 0; i < 4; i++)
		if ((rc = audit_append(tx, i)) < 0)
			return rc;
	return 0;
}

/* Everything a store holds that a copy keeps, as text. */
struct dump {
	char buf[16384];
	size_t n;
	struct store_tx *tx;
	char ids[8][STORE_ID_LEN + 1];
	size_t nids;
};

static void put(struct dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(d->buf + d->n, sizeof(d->buf) - d->n, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(d->buf) - d->n);
	d->n += (size_t)n;
}

static void put_hex(struct dump *d, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put(d, "%02x", p[i]);
	put(d, "\n");
}

static int dump_meta(const char *name, const char *value, void *arg)
{
	put(arg, "meta %s=%s\n", name, value);
	return 0;
}

static int dump_user(const struct user_rec *u, void *arg)
{
	put(arg, "user %lld %s %s %u %d %lld\n", (long long)u->id, u->name, u->password_hash,
	    u->roles, u->disabled, (long long)u->created_at);
	return 0;
}

static int dump_token(const struct token_rec *t, void *arg)
{
	put(arg, "token %lld %lld %lld %lld %lld %d ", (long long)t->id,
	    (long long)t->created_at, (long long)t->expires_at, (long long)t->uses_left,
	    (long long)t->used, t->revoked);
	put_hex(arg, t->hash, sizeof(t->hash));
	return 0;
}

static int dump_device(const struct device_copy_rec *r, void *arg)
{
	struct dump *d = arg;
	const struct device_rec *v = &r->device;

	put(d, "device %lld %s %s %s %s %lld %lld %d ", (long long)r->row, v->id, v->name,
	    v->domain, v->os, (long long)v->created_at, (long long)v->last_checkin_at,
	    v->revoked);
	put_hex(d, r->secret_hash, sizeof(r->secret_hash));
	if (d->nids < 8)
		snprintf(d->ids[d->nids++], sizeof(d->ids[0]), "%s", v->id);
	return 0;
}

static int dump_volume(const struct volume_rec *v, void *arg)
{
	put(arg, "volume %lld %s %s %s %s %s %s %d %lld %lld\n", (long long)v->row,
	    v->device_id, v->guid, v->mount, v->type, v->protection, v->encryption, v->percent,
	    (long long)v->first_seen, (long long)v->last_seen);
	return 0;
}

static int dump_key(const struct key_rec *k, void *arg)
{
	put(arg, "key %lld %s %s %lld %d %lld %lld %lld %s ", (long long)k->row, k->key_id,
	    k->device_id, (long long)k->volume_row, (int)k->state, (long long)k->created_at,
	    (long long)k->changed_at, (long long)k->disclosed_at, k->origin);
	put_hex(arg, k->sealed, k->sealed_len);
	return 0;
}

static int dump_logon(const struct logon_rec *l, void *arg)
{
	put(arg, "logon %s %s %d %lld %lld\n", l->device_id, l->user, (int)l->type,
	    (long long)l->first_seen, (long long)l->last_seen);
	return 0;
}

static int dump_assoc(const struct assoc_rec *a, void *arg)
{
	put(arg, "assoc %s %s %s %lld\n", a->device_id, a->user, a->added_by,
	    (long long)a->created_at);
	return 0;
}

static int dump_audit(const struct audit_rec *a, void *arg)
{
	put(arg, "audit %lld %lld %s %s %s %s %s %s %s %s %s %s %s ", (long long)a->seq,
	    (long long)a->at, a->source, a->result, a->actor, a->end_user, a->computer,
	    a->device_id, a->key_id, a->key_type, a->reason, a->comment, a->client);
	put_hex(arg, a->prev_hash, 32);
	put_hex(arg, a->hash, 32);
	return 0;
}

static int tx_dump(struct store_tx *tx, void *arg)
{
	struct dump *d = arg;
	uint8_t head[32];
	int64_t seq;
	int rc;

	d->n = d->nids = 0;
	d->buf[0] = '\0';
	if ((rc = store_meta_each(tx, dump_meta, d)) < 0 ||
	    (rc = store_user_each(tx, dump_user, d)) < 0 ||
	    (rc = store_token_each(tx, dump_token, d)) < 0 ||
	    (rc = store_device_each_page(tx, 0, 100, dump_device, d)) < 0 ||
	    (rc = store_volume_each_page(tx, 0, 100, dump_volume, d)) < 0 ||
	    (rc = store_key_each_page(tx, 0, 100, dump_key, d)) < 0 ||
	    (rc = store_audit_each(tx, NULL, dump_audit, d)) < 0)
		return rc;
	for (size_t i = 0; i < d->nids; i++)
		if ((rc = store_logon_each_device(tx, d->ids[i], dump_logon, d)) < 0 ||
		    (rc = store_assoc_each_device(tx, d->ids[i], dump_assoc, d)) < 0)
			return rc;
	if ((rc = store_audit_head(tx, &seq, head)) < 0)
		return rc;
	put(d, "head %lld ", (long long)seq);
	put_hex(d, head, sizeof(head));
	return 0;
}

/* What is added after a copy gets rows above the copied ones, and the
 * chain goes on. */
struct after_copy {
	int64_t vol, token;
	int64_t key_row, user_id, seq;
};

static int new_key_row(const struct key_rec *k, void *arg)
{
	((struct after_copy *)arg)->key_row = k->row;
	return 0;
}

static int tx_after_copy(struct store_tx *tx, void *arg)
{
	struct after_copy *a = arg;
	struct token_rec t;
	struct audit_rec r;
	struct user_rec u = user("dave", 0);
	int rc;

	memset(&t, 0, sizeof(t));
	hash_of(t.hash, 901);
	memset(&r, 0, sizeof(r));
	r.at = 9000;
	if ((rc = put_device(tx, DEV4, "pc-d", 4)) < 0 ||
	    (rc = put_volume(tx, DEV4, "AAAAAAAA-0000-4000-8000-000000000009", "C:", &a->vol)) < 0 ||
	    (rc = put_key(tx, DEV4, a->vol, "CCCC0001-0000-4000-8000-000000000009",
			  KEY_ACTIVE)) < 0 ||
	    (rc = store_key_get(tx, "CCCC0001-0000-4000-8000-000000000009", new_key_row, a)) < 0 ||
	    (rc = store_token_insert(tx, &t, &a->token)) < 0 ||
	    (rc = store_user_insert(tx, &u)) < 0 ||
	    (rc = store_audit_append(tx, &r, fake_hash)) < 0)
		return rc;
	a->seq = r.seq;
	return 0;
}

static int tx_check_secret_dev1(struct store_tx *tx, void *arg)
{
	return store_device_check_secret(tx, DEV1, arg);
}

/* store_copy: the target holds what the source holds, record for record
 * (rows, hashes, states, times, the chain), sessions and rate-limit events
 * left out; rows assigned afterwards are above the copied ones; a second
 * copy into it is refused and changes nothing. */
static void test_copy(void **state)
{
	struct fx *f = *state;
	struct store *to = other_open(f);
	struct store_counts n, want, have;
	struct site st;
	struct after_copy ac;
	static struct dump a, b;
	char msg[512];
	uint8_t h[STORE_HASH_LEN];

	memset(&st, 0, sizeof(st));
	have = counts_of(to);
	assert_int_equal(have.meta + have.users + have.devices + have.audit + have.keys, 0);
	assert_int_equal(store_write(f->s, tx_site, &st), 0);
	want = counts_of(f->s);
	assert_int_equal(want.devices, 3);
	assert_int_equal(want.keys, 4);
	assert_int_equal(want.sessions, 1);
	assert_int_equal(want.limit_events, 1);

	assert_int_equal(store_copy(f->s, to, &n, msg, sizeof(msg)), 0);
	have = counts_of(to);
	assert_int_equal(n.meta, 3);
	assert_int_equal(n.users, 2);
	assert_int_equal(n.tokens, 1);
	assert_int_equal(n.devices, 3);
	assert_int_equal(n.volumes, 3);
	assert_int_equal(n.keys, 4);
	assert_int_equal(n.logons, 3);
	assert_int_equal(n.assocs, 1);
	assert_int_equal(n.audit, 4);
	assert_int_equal(have.sessions, 0);
	assert_int_equal(have.limit_events, 0);
	assert_memory_equal(&have.meta, &want.meta, offsetof(struct store_counts, sessions));

	assert_int_equal(store_read(f->s, tx_dump, &a), 0);
	assert_int_equal(store_read(to, tx_dump, &b), 0);
	assert_string_equal(a.buf, b.buf);

	/* The devices' secrets still check. */
	hash_of(h, 1);
	assert_int_equal(store_write(to, tx_check_secret_dev1, h), 0);

	/* A second copy is refused and changes nothing. */
	assert_int_equal(store_copy(f->s, to, &n, msg, sizeof(msg)), KW_ERR_EXISTS);
	assert_non_null(strstr(msg, "not empty"));
	assert_int_equal(store_read(to, tx_dump, &b), 0);
	assert_string_equal(a.buf, b.buf);

	/* Rows assigned afterwards are above the copied ones; the chain goes on. */
	memset(&ac, 0, sizeof(ac));
	assert_int_equal(store_write(to, tx_after_copy, &ac), 0);
	assert_true(ac.vol > st.vol3);
	assert_true(ac.key_row > st.row2 && ac.key_row > 4);
	assert_true(ac.token > st.token);
	assert_int_equal(ac.seq, 5);
	other_close(f, to);
}

/* Enough records of each kind to take several pages (STORE_COPY_PAGE). */
static int tx_many(struct store_tx *tx, void *arg)
{
	int64_t vol;
	int rc;

	(void)arg;
	for (int i = 0; i < STORE_COPY_PAGE + 7; i++) {
		char dev[STORE_ID_LEN + 1], name[16], kid[STORE_ID_LEN + 1];

		snprintf(dev, sizeof(dev), "DDDDDDDD-0000-4000-8000-%012d", i);
		snprintf(kid, sizeof(kid), "EEEEEEEE-0000-4000-8000-%012d", i);
		snprintf(name, sizeof(name), "pc-%d", i);
		if ((rc = put_device(tx, dev, name, 1000 + i)) < 0 ||
		    (rc = put_volume(tx, dev, "AAAAAAAA-0000-4000-8000-000000000001", "C:",
				     &vol)) < 0 ||
		    (rc = put_key(tx, dev, vol, kid, KEY_ACTIVE)) < 0 ||
		    (rc = put_logon(tx, dev, "alice", LOGON_LOCAL, 5)) < 0 ||
		    (rc = audit_append(tx, (size_t)i % 4)) < 0)
			return rc;
	}
	return store_meta_set(tx, "master_key_id", "fp-2");
}

static void test_copy_pages(void **state)
{
	struct fx *f = *state;
	struct store *to = other_open(f);
	struct store_counts n, want, have;
	char msg[512];

	assert_int_equal(store_write(f->s, tx_many, NULL), 0);
	assert_int_equal(store_copy(f->s, to, &n, msg, sizeof(msg)), 0);
	want = counts_of(f->s);
	have = counts_of(to);
	assert_int_equal(n.devices, STORE_COPY_PAGE + 7);
	assert_int_equal(n.keys, STORE_COPY_PAGE + 7);
	assert_int_equal(n.logons, STORE_COPY_PAGE + 7);
	assert_int_equal(n.audit, STORE_COPY_PAGE + 7);
	assert_memory_equal(&have, &want, sizeof(have));
	other_close(f, to);
}

/* The chain head of the two records tx_audit_copy inserts (store_audit_copy_many
 * leaves it to the caller). */
static int tx_meta_head(struct store_tx *tx, void *arg)
{
	char v[2 + 64 + 1] = "2:";

	(void)arg;
	for (int i = 0; i < 32; i++)
		memcpy(v + 2 + 2 * i, "12", 2);
	v[66] = '\0';
	return store_meta_set(tx, "audit_head", v);
}

/* The copy operations' own contract: paging, errors, all or nothing. */
struct copy_q {
	struct device_copy_rec d[2];
	struct volume_rec v[2];
	struct key_rec k[2];
	struct token_rec t;
	struct user_rec u;
	struct audit_rec a[2];
	int64_t rows[8];
	size_t nrows;
};

static int page_row(const struct device_copy_rec *d, void *arg)
{
	struct copy_q *q = arg;

	if (q->nrows < 8)
		q->rows[q->nrows++] = d->row;
	return 0;
}

static int tx_dev_page(struct store_tx *tx, void *arg)
{
	struct copy_q *q = arg;
	int64_t after = q->rows[0];

	q->nrows = 0;
	return store_device_each_page(tx, after, 2, page_row, q);
}

static int tx_dev_copy(struct store_tx *tx, void *arg)
{
	return store_device_copy_many(tx, ((struct copy_q *)arg)->d, 2);
}

static int tx_vol_copy(struct store_tx *tx, void *arg)
{
	return store_volume_copy_many(tx, ((struct copy_q *)arg)->v, 2);
}

static int tx_key_copy(struct store_tx *tx, void *arg)
{
	return store_key_copy_many(tx, ((struct copy_q *)arg)->k, 2);
}

static int tx_token_copy(struct store_tx *tx, void *arg)
{
	return store_token_copy(tx, &((struct copy_q *)arg)->t);
}

static int tx_user_copy(struct store_tx *tx, void *arg)
{
	return store_user_copy(tx, &((struct copy_q *)arg)->u);
}

static int tx_audit_copy(struct store_tx *tx, void *arg)
{
	return store_audit_copy_many(tx, ((struct copy_q *)arg)->a, 2);
}

static void test_copy_ops(void **state)
{
	static const uint8_t sealed[] = { 1, 2, 3 };
	struct fx *f = *state;
	struct store_counts c;
	static struct copy_q q;
	static struct dump d;

	memset(&q, 0, sizeof(q));
	for (int i = 0; i < 2; i++) {
		q.d[i].row = 10 + i * 10;
		snprintf(q.d[i].device.id, sizeof(q.d[i].device.id), "%s", i ? DEV2 : DEV1);
		q.d[i].device.name = i ? "PC-B" : "PC-A";
		q.d[i].device.created_at = 5;
		q.d[i].device.last_checkin_at = 6 + i;
		q.d[i].device.revoked = i == 1;
		hash_of(q.d[i].secret_hash, 70 + i);
	}
	/* Rows below 1; then a batch whose second device's ID is the first's:
	 * nothing of it kept. */
	q.d[0].row = 0;
	assert_int_equal(store_write(f->s, tx_dev_copy, &q), KW_ERR_INVALID);
	q.d[0].row = 10;
	snprintf(q.d[1].device.id, sizeof(q.d[1].device.id), "%s", DEV1);
	assert_int_equal(store_write(f->s, tx_dev_copy, &q), KW_ERR_EXISTS);
	c = counts_of(f->s);
	assert_int_equal(c.devices, 0);
	snprintf(q.d[1].device.id, sizeof(q.d[1].device.id), "%s", DEV2);
	assert_int_equal(store_write(f->s, tx_dev_copy, &q), 0);
	assert_int_equal(store_write(f->s, tx_dev_copy, &q), KW_ERR_EXISTS);
	/* Pages by row, after a row. */
	assert_int_equal(store_read(f->s, tx_dev_page, &q), 0);
	assert_int_equal(q.nrows, 2);
	assert_int_equal(q.rows[0], 10);
	assert_int_equal(q.rows[1], 20);
	assert_int_equal(store_read(f->s, tx_dev_page, &q), 0);   /* after 10 */
	assert_int_equal(q.nrows, 1);
	assert_int_equal(q.rows[0], 20);

	for (int i = 0; i < 2; i++) {
		q.v[i].row = 30 + i;
		snprintf(q.v[i].device_id, sizeof(q.v[i].device_id), "%s", DEV1);
		snprintf(q.v[i].guid, sizeof(q.v[i].guid), "AAAAAAAA-0000-4000-8000-00000000000%d",
			 i);
		q.v[i].mount = "C:";
		q.v[i].type = "os";
		q.v[i].protection = "on";
		q.v[i].encryption = "aes";
		q.v[i].first_seen = 7;
		q.v[i].last_seen = 8;
	}
	snprintf(q.v[1].device_id, sizeof(q.v[1].device_id), "%s", DEV5);
	assert_int_equal(store_write(f->s, tx_vol_copy, &q), KW_ERR_NOT_FOUND);
	c = counts_of(f->s);
	assert_int_equal(c.volumes, 0);
	snprintf(q.v[1].device_id, sizeof(q.v[1].device_id), "%s", DEV2);
	assert_int_equal(store_write(f->s, tx_vol_copy, &q), 0);
	assert_int_equal(store_write(f->s, tx_vol_copy, &q), KW_ERR_EXISTS);

	for (int i = 0; i < 2; i++) {
		q.k[i].row = 50 + i;
		snprintf(q.k[i].key_id, sizeof(q.k[i].key_id), "%s", i ? KC2 : KC1);
		snprintf(q.k[i].device_id, sizeof(q.k[i].device_id), "%s", i ? DEV2 : DEV1);
		q.k[i].volume_row = 30 + i;
		q.k[i].state = i ? KEY_SUPERSEDED : KEY_DISCLOSED;
		q.k[i].sealed = sealed;
		q.k[i].sealed_len = sizeof(sealed);
		q.k[i].created_at = 1;
		q.k[i].changed_at = 2;
		q.k[i].disclosed_at = 3;
	}
	/* A volume of another device; a state that is none; an ID not canonical. */
	q.k[1].volume_row = 30;
	assert_int_equal(store_write(f->s, tx_key_copy, &q), KW_ERR_NOT_FOUND);
	q.k[1].volume_row = 31;
	q.k[1].state = (enum key_state)9;
	assert_int_equal(store_write(f->s, tx_key_copy, &q), KW_ERR_INVALID);
	q.k[1].state = KEY_SUPERSEDED;
	snprintf(q.k[1].key_id, sizeof(q.k[1].key_id), "CCCC");
	assert_int_equal(store_write(f->s, tx_key_copy, &q), KW_ERR_INVALID);
	snprintf(q.k[1].key_id, sizeof(q.k[1].key_id), "%s", KC1);
	assert_int_equal(store_write(f->s, tx_key_copy, &q), KW_ERR_EXISTS);
	c = counts_of(f->s);
	assert_int_equal(c.keys, 0);
	snprintf(q.k[1].key_id, sizeof(q.k[1].key_id), "%s", KC2);
	assert_int_equal(store_write(f->s, tx_key_copy, &q), 0);

	q.t.id = 40;
	hash_of(q.t.hash, 5);
	q.t.uses_left = -1;
	q.t.used = 3;
	q.t.revoked = true;
	assert_int_equal(store_write(f->s, tx_token_copy, &q), 0);
	assert_int_equal(store_write(f->s, tx_token_copy, &q), KW_ERR_EXISTS);
	q.t.id = 0;
	assert_int_equal(store_write(f->s, tx_token_copy, &q), KW_ERR_INVALID);

	q.u = user("Erin", ROLE_ADMIN);
	q.u.id = 0;
	assert_int_equal(store_write(f->s, tx_user_copy, &q), KW_ERR_INVALID);
	q.u.id = 60;
	assert_int_equal(store_write(f->s, tx_user_copy, &q), 0);
	q.u.id = 61;
	q.u.name = "ERIN";   /* the name, case-insensitively */
	assert_int_equal(store_write(f->s, tx_user_copy, &q), KW_ERR_EXISTS);

	for (int i = 0; i < 2; i++) {
		q.a[i].seq = 1 + i;
		q.a[i].at = 100 + i;
		q.a[i].source = "cli";
		q.a[i].result = "disclosed";
		q.a[i].actor = "Alice";
		memset(q.a[i].prev_hash, i ? 0x11 : 0, 32);
		memset(q.a[i].hash, 0x11 + i, 32);
	}
	q.a[1].seq = 1;
	assert_int_equal(store_write(f->s, tx_audit_copy, &q), KW_ERR_EXISTS);
	c = counts_of(f->s);
	assert_int_equal(c.audit, 0);
	q.a[1].seq = 2;
	assert_int_equal(store_write(f->s, tx_audit_copy, &q), 0);

	assert_int_equal(store_write(f->s, tx_meta_head, NULL), 0);
	assert_int_equal(store_read(f->s, tx_dump, &d), 0);
	assert_non_null(strstr(d.buf, "device 10 " DEV1 " PC-A   5 6 0 4600"));
	assert_non_null(strstr(d.buf, "device 20 " DEV2 " PC-B   5 7 1 4700"));
	assert_non_null(strstr(d.buf, "volume 31 " DEV2 " AAAAAAAA-0000-4000-8000-000000000001 "
			       "C: os on aes 0 7 8"));
	assert_non_null(strstr(d.buf, "key 51 " KC2 " " DEV2 " 31 3 1 2 3  010203"));
	assert_non_null(strstr(d.buf, "token 40 0 0 -1 3 1 0500"));
	assert_non_null(strstr(d.buf, "user 60 Erin "));
	assert_non_null(strstr(d.buf, "audit 2 101 cli disclosed Alice         1111"));
	assert_non_null(strstr(d.buf, "head 2 1212"));
}

/* ---- group commit ---- */

struct gc_job {
	char name[16];
	bool fail;               /* inserts its user, then fails */
	int rc;
	sem_t *done;
};

static int tx_gc(struct store_tx *tx, void *arg)
{
	struct gc_job *j = arg;
	struct user_rec u = user(j->name, 0);
	int rc;

	if ((rc = store_user_insert(tx, &u)) < 0)
		return rc;
	return j->fail ? KW_ERR_CONFLICT : 0;
}

static void gc_done(int rc, void *arg)
{
	struct gc_job *j = arg;

	j->rc = rc;
	sem_post(j->done);
}

/* Many writes queued at once (committed in groups): the one that fails
 * keeps none of its changes, every other one is kept. */
static void test_group_commit_one_fails(void **state)
{
	enum { JOBS = 64, FAILING = 37 };
	struct fx *f = *state;
	struct gc_job j[JOBS];
	struct names n;
	sem_t done;

	sem_init(&done, 0, 0);
	for (int i = 0; i < JOBS; i++) {
		j[i] = (struct gc_job){ .fail = i == FAILING, .rc = 1, .done = &done };
		snprintf(j[i].name, sizeof(j[i].name), "gc%02d", i);
		assert_int_equal(store_write_async(f->s, tx_gc, &j[i], gc_done, &j[i]), 0);
	}
	for (int i = 0; i < JOBS; i++)
		sem_wait(&done);
	sem_destroy(&done);
	for (int i = 0; i < JOBS; i++)
		assert_int_equal(j[i].rc, i == FAILING ? KW_ERR_CONFLICT : 0);
	memset(&n, 0, sizeof(n));
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, JOBS - 1);
	for (size_t i = 0; i < n.n; i++)
		assert_string_not_equal(n.v[i], "gc37");
}

/* ---- a read, then a write of what was read, in one store_write ---- */

struct spender {
	struct store *s;
	int tries, spent, refused, failed;
};

/* Uses the token when it has a use left: the check and the use are one
 * atomic write, so no more uses than it had are spent. */
static int tx_spend(struct store_tx *tx, void *arg)
{
	uint8_t h[STORE_HASH_LEN];
	struct token_rec t;
	int rc;

	(void)arg;
	hash_of(h, 77);
	if ((rc = store_token_get(tx, h, &t)) < 0)
		return rc;
	if (t.uses_left == 0)
		return 0;
	if ((rc = store_token_use(tx, t.id)) < 0)
		return rc;
	return 1;
}

static void *spend_thread(void *p)
{
	struct spender *sp = p;

	for (int i = 0; i < sp->tries; i++) {
		int rc = store_write(sp->s, tx_spend, NULL);

		if (rc == 1)
			sp->spent++;
		else if (rc == 0)
			sp->refused++;
		else
			sp->failed++;
	}
	return NULL;
}

/* Threads spending a 5-use token at once, on s1 and s2 in turn: exactly 5
 * succeed. */
static void spend_concurrently(struct store *s1, struct store *s2)
{
	enum { THREADS = 8, TRIES = 4 };
	struct token_ins ins;
	struct spender sp[THREADS];
	pthread_t th[THREADS];
	int spent = 0;

	memset(&ins, 0, sizeof(ins));
	hash_of(ins.rec.hash, 77);
	ins.rec.created_at = 1;
	ins.rec.uses_left = 5;
	assert_int_equal(store_write(s1, tx_token_insert, &ins), 0);
	for (int i = 0; i < THREADS; i++) {
		sp[i] = (struct spender){ .s = i % 2 ? s2 : s1, .tries = TRIES };
		assert_int_equal(pthread_create(&th[i], NULL, spend_thread, &sp[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(sp[i].failed, 0);
		spent += sp[i].spent;
	}
	assert_int_equal(spent, 5);
}

static void test_read_then_write_is_atomic(void **state)
{
	struct fx *f = *state;

	spend_concurrently(f->s, f->s);
}

/* ---- PostgreSQL: several instances on one database ---- */

/* A second instance: another store on the test's database. */
static struct store *second(const struct fx *f)
{
	struct store *s = NULL;
	char msg[256] = "";

	if (store_open(f->db, true, &s, msg, sizeof(msg)) < 0)
		fail_msg("store_open %s: %s", f->db, msg);
	assert_true(store_shared(s));
	return s;
}

/* Two instances disclosing at once keep one valid chain. */
static void test_pg_two_instances_audit(void **state)
{
	enum { THREADS = 4, EACH = 20 };
	struct fx *f = *state;
	struct store *s2 = second(f);
	struct appender ap[THREADS];
	pthread_t th[THREADS];
	struct chain c;

	for (int i = 0; i < THREADS; i++) {
		ap[i] = (struct appender){ .s = i % 2 ? s2 : f->s, .n = EACH, .at = 3000 + i };
		assert_int_equal(pthread_create(&th[i], NULL, append_thread, &ap[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ap[i].failures, 0);
	}
	assert_int_equal(store_read(s2, tx_check_chain, &c), 0);
	assert_int_equal(c.n, THREADS * EACH);
	assert_int_equal(c.last_seq, THREADS * EACH);
	assert_true(c.ok);
	store_close(s2);
}

/* A limit taken from two instances at once allows no more than its count. */
static void test_pg_two_instances_limit(void **state)
{
	enum { THREADS = 8, TAKES = 8 };
	struct fx *f = *state;
	struct store *s2 = second(f);
	struct taker t[THREADS];
	pthread_t th[THREADS];
	int taken = 0, refused = 0;

	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct taker){ .s = i % 2 ? s2 : f->s, .takes = TAKES };
		assert_int_equal(pthread_create(&th[i], NULL, take_thread, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].failed, 0);
		taken += t[i].taken;
		refused += t[i].refused;
	}
	assert_int_equal(taken, 25);
	assert_int_equal(refused, THREADS * TAKES - 25);
	store_close(s2);
}

/* A session started on one instance is found, touched and ended on the
 * other. */
static void test_pg_two_instances_session(void **state)
{
	struct fx *f = *state;
	struct store *s2 = second(f);
	struct sess_q q;
	int step = 0;

	assert_int_equal(store_write(f->s, tx_session_ops, &step), 0);
	hash_of(q.hash, 1);
	assert_int_equal(store_read(s2, tx_session_get, &q), 0);
	assert_int_equal(q.rc, 0);
	assert_string_equal(q.user, "alice");
	assert_string_equal(q.identities, "alice\nCORP\\alice");
	store_close(s2);
}

/* A token spent from two instances at once is spent no more than its
 * uses. */
static void test_pg_two_instances_token(void **state)
{
	struct fx *f = *state;
	struct store *s2 = second(f);

	spend_concurrently(f->s, s2);
	store_close(s2);
}

/* A database whose schema is newer than this program is refused. */
static void test_pg_schema_newer(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char sql[256], msg[256] = "";
	PGconn *c;
	PGresult *r;

	pg_url(f->id, sql, sizeof(sql));
	c = PQconnectdb(sql);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c, "UPDATE kw_schema SET version = 99");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
	assert_int_equal(store_open(f->db, true, &s, msg, sizeof(msg)), KW_ERR_SCHEMA);
	assert_non_null(strstr(msg, "newer"));
	assert_int_equal(store_open(f->db, false, &s, msg, sizeof(msg)), KW_ERR_SCHEMA);
	assert_null(s);
}

/* Ends every connection to the test's database, and (allow false) refuses
 * new ones: the database "stops answering". */
static void pg_cut(const struct fx *f, bool allow)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS %s", f->id,
		 allow ? "true" : "false");
	pg_admin(sql);
	/* Waits until each has ended (up to 30 s). */
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid, 30000) "
		 "FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()", f->id);
	pg_admin(sql);
}

/* Connections the server ended are replaced at their next use: the
 * requests after it work. While the database refuses connections, writes
 * fail (KW_ERR_UNAVAILABLE), nothing of them is kept, and store_state says
 * so; once it answers again, writes work and the state is STORE_OK, with
 * no restart. */
static void test_pg_connection_lost(void **state)
{
	struct fx *f = *state;
	char reason[128];
	struct names n;

	assert_int_equal(add_user(f->s, "before"), 0);
	memset(&n, 0, sizeof(n));
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);

	/* The server ends every connection: the next requests reconnect. */
	pg_cut(f, true);
	assert_int_equal(add_user(f->s, "after1"), 0);
	memset(&n, 0, sizeof(n));
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 2);
	assert_int_equal(store_state(f->s, NULL, 0), STORE_OK);

	/* The database does not answer. */
	pg_cut(f, false);
	assert_true(add_user(f->s, "during") < 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_WRITES_FAILING);
	assert_non_null(strstr(reason, "not answering"));
	assert_null(strstr(reason, "kwtest@"));
	memset(&n, 0, sizeof(n));
	assert_true(store_read(f->s, tx_user_each, &n) < 0);

	/* It answers again: no restart needed. */
	pg_cut(f, true);
	assert_int_equal(add_user(f->s, "after2"), 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_OK);
	memset(&n, 0, sizeof(n));
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 3);
	assert_string_equal(n.v[0], "after1");
	assert_string_equal(n.v[1], "after2");
	assert_string_equal(n.v[2], "before");
}

/* A URL's password is never in a message: they name user@host:port/db. */
static void test_pg_password_not_shown(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char url[512], msg[512] = "";
	const char *at = strstr(f->db, "@");

	assert_non_null(at);
	snprintf(url, sizeof(url), "postgresql://kwtest:Sup3rSecretPw%s_missing", at);
	assert_true(store_open(url, true, &s, msg, sizeof(msg)) < 0);
	assert_null(s);
	assert_null(strstr(msg, "Sup3rSecretPw"));
	assert_non_null(strstr(msg, "kwtest@127.0.0.1:"));
	assert_non_null(strstr(msg, "_missing"));
}

static int ignore_key(const struct key_rec *k, void *arg)
{
	(void)k;
	(void)arg;
	return 0;
}

static int tx_key_lookup(struct store_tx *tx, void *arg)
{
	(void)arg;
	return store_key_get(tx, "AAAA0001-0000-4000-8000-000000000009", ignore_key, NULL);
}

/* A hung database (here: a table locked by another session) fails the
 * write after statement_timeout (the URL's own, 300 ms here; keywarden's
 * default is 30 s) instead of holding it, and store_state says why; once
 * the table is free, writes work again. */
static void test_pg_statement_timeout(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char url[600], reason[160], msg[256] = "";
	PGconn *admin;
	PGresult *r;

	snprintf(url, sizeof(url), "%s?options=-c%%20statement_timeout%%3D300", f->db);
	if (store_open(url, true, &s, msg, sizeof(msg)) < 0)
		fail_msg("store_open: %s", msg);
	admin = PQconnectdb(f->db);
	assert_int_equal(PQstatus(admin), CONNECTION_OK);
	r = PQexec(admin, "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);

	assert_int_equal(add_user(s, "waits"), KW_ERR_STORE);
	assert_int_equal(store_state(s, reason, sizeof(reason)), STORE_WRITES_FAILING);
	assert_non_null(strstr(reason, "statement_timeout"));

	r = PQexec(admin, "COMMIT");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	assert_int_equal(add_user(s, "waits"), 0);
	assert_int_equal(store_state(s, NULL, 0), STORE_OK);

	/* A key ID locked elsewhere: a write looking it up (its lock and the
	 * lookup sent together) fails the same way, and its connection goes on. */
	r = PQexec(admin, "SELECT pg_advisory_lock(hashtext('AAAA0001000040008000000000000009'))");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	assert_int_equal(store_write(s, tx_key_lookup, NULL), KW_ERR_STORE);
	r = PQexec(admin, "SELECT pg_advisory_unlock_all()");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	PQfinish(admin);
	assert_int_equal(store_write(s, tx_key_lookup, NULL), KW_ERR_NOT_FOUND);
	assert_int_equal(add_user(s, "after"), 0);
	store_close(s);
}

struct opener {
	char url[512];
	int rc;
	char msg[256];
};

static void *open_thread(void *p)
{
	struct opener *o = p;
	struct store *s = NULL;

	o->rc = store_open(o->url, true, &s, o->msg, sizeof(o->msg));
	store_close(s);
	return NULL;
}

/* Instances started at once on an empty database: one migrates, the
 * others find the schema done; none fails. */
static void test_pg_migrate_at_once(void **state)
{
	enum { N = 4 };
	struct fx *f = *state;
	struct opener o[N];
	pthread_t th[N];
	char name[64], sql[128];

	snprintf(name, sizeof(name), "%s_m", f->id);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	pg_admin(sql);
	for (int i = 0; i < N; i++) {
		memset(&o[i], 0, sizeof(o[i]));
		pg_url(name, o[i].url, sizeof(o[i].url));
		assert_int_equal(pthread_create(&th[i], NULL, open_thread, &o[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		if (o[i].rc != 0)
			print_error("open %d: %s\n", i, o[i].msg);
		assert_int_equal(o[i].rc, 0);
	}
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", name);
	pg_admin(sql);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_is_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logons_and_associations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entitled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_must_not_call_the_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iterations_of_unknown_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_and_the_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_stops_iteration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_touch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volume_upsert_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_checkin_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_each_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkins_queued_together, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_get_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logon_upsert_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_each_full_and_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_delete_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_append_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_append_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_give_back_clear_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_take_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_one_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_then_write_is_atomic, setup, teardown),
	};
	const struct CMUnitTest pg_tests[] = {
		cmocka_unit_test_setup_teardown(test_pg_two_instances_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_two_instances_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_two_instances_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_two_instances_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_schema_newer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_connection_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_password_not_shown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_statement_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_migrate_at_once, setup, teardown),
	};
	int failed;

	failed = cmocka_run_group_tests_name("store contract", tests, NULL, NULL);
	pg_admin_url = getenv("KW_TEST_POSTGRES");
	if (!pg_admin_url || !*pg_admin_url)
		return failed;
	on_pg = true;
	failed += cmocka_run_group_tests_name("store contract on PostgreSQL", tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("PostgreSQL: several instances", pg_tests, NULL,
					      NULL);
	return failed;
}
