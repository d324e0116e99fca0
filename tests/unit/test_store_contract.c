/* The store's contract (store.h), held against any backend: the database
 * is the `database =` URL in KW_TEST_DATABASE, as for the integration
 * tests ("{dir}" is replaced by a fresh temporary directory and "{id}" by
 * a unique name; KW_TEST_DB_SETUP and KW_TEST_DB_TEARDOWN are shell
 * commands run before and after each test with {id}, {url} and {dir}
 * replaced), by default a new sqlite: file in a temporary directory.
 * Nothing here may depend on the backend: what is particular to SQLite is
 * tested in test_store.c. */
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

#include "store/store.h"
#include "util/err.h"

struct fx {
	char dir[64];
	char id[40];
	char db[512];
	struct store *s;
};

/* ---- fixture ---- */

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
	if (tmpl && *tmpl)
		expand(f, tmpl, f->db, sizeof(f->db));
	else
		snprintf(f->db, sizeof(f->db), "sqlite:%s/kw.db", f->dir);
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
	hook(f, "KW_TEST_DB_TEARDOWN");
	remove_dir(f->dir);
	free(f);
	return 0;
}

/* ---- records ---- */

#define DEV1 "11111111-1111-4111-8111-111111111111"
#define DEV2 "22222222-2222-4222-8222-222222222222"
#define DEV9 "99999999-9999-4999-8999-999999999999"   /* never added */

static void hash_of(uint8_t h[STORE_HASH_LEN], int i)
{
	memset(h, 0, STORE_HASH_LEN);
	h[0] = (uint8_t)(i & 0xff);
	h[1] = (uint8_t)((i >> 8) & 0xff);
	h[31] = 0xa5;
}

static int add_device(struct store_tx *tx, const char *id, const char *name, int n)
{
	struct device_rec d;
	uint8_t h[STORE_HASH_LEN];

	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", id);
	d.name = name;
	d.domain = "CORP";
	d.os = "Windows 11";
	d.created_at = 100;
	hash_of(h, n);
	return store_device_insert(tx, &d, h);
}

static int add_user(struct store_tx *tx, const char *name)
{
	struct user_rec u;

	memset(&u, 0, sizeof(u));
	u.name = name;
	u.password_hash = "";
	u.roles = ROLE_HELPDESK;
	u.created_at = 100;
	return store_user_insert(tx, &u);
}

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

static int add_volume(struct store_tx *tx, const char *dev, const char *guid,
		      const char *mount, int64_t *row)
{
	struct volume_rec v;

	volume_of(&v, dev, guid, mount);
	return store_volume_upsert(tx, &v, row);
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

static int add_key(struct store_tx *tx, const char *dev, int64_t vol, const char *id,
		   enum key_state st)
{
	struct key_rec k;

	key_of(&k, dev, vol, id, st);
	return store_key_insert(tx, &k);
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

	if ((rc = add_user(tx, "alice")) < 0 || (rc = add_user(tx, "bob")) < 0)
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
	if ((rc = add_device(tx, DEV1, "PC-1", 1)) < 0)
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
	if ((rc = add_user(tx, "carol")) < 0)
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
	if ((rc = add_user(tx, "dave")) < 0)
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

	if ((rc = add_device(tx, DEV1, "PC-1", 1)) < 0 || (rc = add_device(tx, DEV2, "PC-2", 2)) < 0)
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

struct keys_fx {
	int64_t v1, v2, v3;     /* DEV1: C:, D:; DEV2: C: */
};

static int tx_keys_setup(struct store_tx *tx, void *arg)
{
	struct keys_fx *k = arg;
	int rc;

	if ((rc = add_device(tx, DEV1, "PC-1", 1)) < 0 ||
	    (rc = add_device(tx, DEV2, "PC-2", 2)) < 0 ||
	    (rc = add_volume(tx, DEV1, DEV1, "C:", &k->v1)) < 0 ||
	    (rc = add_volume(tx, DEV1, DEV2, "D:", &k->v2)) < 0 ||
	    (rc = add_volume(tx, DEV2, DEV1, "C:", &k->v3)) < 0 ||
	    (rc = add_key(tx, DEV1, k->v1, KEY(3), KEY_ACTIVE)) < 0 ||
	    (rc = add_key(tx, DEV1, k->v2, KEY(1), KEY_DISCLOSED)) < 0 ||
	    (rc = add_key(tx, DEV2, k->v3, KEY(2), KEY_REMOVED)) < 0)
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

static void test_key_get_many(void **state)
{
	struct fx *f = *state;
	struct keys_fx k;
	struct batch b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_keys_setup, &k), 0);
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
	struct keys_fx *k = arg;
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
	struct keys_fx *k;
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
	struct keys_fx k;
	struct batch b;
	struct changes c;
	struct disclosed_at d;

	memset(&b, 0, sizeof(b));
	assert_int_equal(store_write(f->s, tx_keys_setup, &k), 0);
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

static int tx_logon_batch(struct store_tx *tx, void *arg)
{
	struct batch *b = arg;
	struct logon_rec l[3];
	int rc;

	if ((rc = add_device(tx, DEV1, "PC-1", 1)) < 0)
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_callback_must_not_call_the_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volume_upsert_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_get_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logon_upsert_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_append_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_append_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_give_back_clear_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_take_concurrent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
