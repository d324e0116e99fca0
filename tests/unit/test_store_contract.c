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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_callback_must_not_call_the_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_async, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
