/* The limiter interface (core/limits.h) holds for both kinds, in memory and
 * in the store (a real SQLite file): the same answers for the same events,
 * bursts of concurrent takes never past the limit; and two store limiters
 * of one name, as two instances of a site have, share their counts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "core/limits.h"
#include "core/limits_memory.h"
#include "core/limits_store.h"
#include "store/store.h"
#include "util/err.h"

#define T 1767225600
#define THREADS 8
#define TAKES 20

struct fx {
	char dir[64];
	struct store *s;
	bool in_store;
};

static int setup(void **state, bool in_store)
{
	struct fx *f = calloc(1, sizeof(*f));
	char db[128], msg[256];

	assert_non_null(f);
	f->in_store = in_store;
	if (in_store) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/kw-limits-XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(db, sizeof(db), "sqlite:%s/kw.db", f->dir);
		assert_int_equal(store_open(db, true, &f->s, msg, sizeof(msg)), 0);
	}
	*state = f;
	return 0;
}

static int setup_memory(void **state)
{
	return setup(state, false);
}

static int setup_store(void **state)
{
	return setup(state, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	store_close(f->s);
	if (f->in_store) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
		assert_int_equal(system(cmd), 0);
	}
	free(f);
	return 0;
}

static struct limiter *make(struct fx *f, const char *name, int64_t count, int64_t window)
{
	struct limiter *l = NULL;

	if (f->in_store)
		assert_int_equal(limiter_store_new(f->s, name, count, window, &l), 0);
	else
		assert_int_equal(limiter_memory_new(count, window, 64, &l), 0);
	assert_non_null(l);
	return l;
}

static void test_under_at_over(void **state)
{
	struct limiter *l = make(*state, "login", 3, 60);
	int64_t retry = -1;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(limiter_take(l, "alice", T + i, &retry), 1);
		assert_int_equal(retry, 0);
	}
	/* At the limit: refused, nothing recorded, told when to come back. */
	assert_int_equal(limiter_take(l, "alice", T + 10, &retry), 0);
	assert_int_equal(retry, 50);
	assert_int_equal(limiter_take(l, "alice", T + 59, &retry), 0);
	assert_int_equal(retry, 1);
	/* The first event no longer counts a window later. */
	assert_int_equal(limiter_take(l, "alice", T + 60, &retry), 1);
	/* Another key is counted apart. */
	assert_int_equal(limiter_take(l, "bob", T + 10, NULL), 1);
	limiter_free(l);
}

static void test_names_fold(void **state)
{
	struct limiter *l = make(*state, "login", 2, 60);

	/* One person, whatever the case, in ASCII and beyond. */
	assert_int_equal(limiter_take(l, "CORP\\Åsaöé", T, NULL), 1);
	assert_int_equal(limiter_take(l, "corp\\åSAÖÉ", T, NULL), 1);
	assert_int_equal(limiter_take(l, "Corp\\ÅSAöé", T, NULL), 0);
	limiter_free(l);
}

static void test_give_back_and_clear(void **state)
{
	struct limiter *l = make(*state, "lookup", 2, 60);

	assert_int_equal(limiter_take(l, "alice", T, NULL), 1);
	assert_int_equal(limiter_take(l, "alice", T + 1, NULL), 1);
	assert_int_equal(limiter_take(l, "alice", T + 2, NULL), 0);
	/* An attempt that did not count gives its event back. */
	limiter_give_back(l, "alice", T + 1);
	assert_int_equal(limiter_take(l, "alice", T + 2, NULL), 1);
	assert_int_equal(limiter_take(l, "alice", T + 3, NULL), 0);
	/* Nothing to give back: nothing changes. */
	limiter_give_back(l, "alice", T + 30);
	assert_int_equal(limiter_take(l, "alice", T + 3, NULL), 0);
	limiter_clear(l, "ALICE");
	assert_int_equal(limiter_take(l, "alice", T + 4, NULL), 1);
	limiter_free(l);
}

struct taker {
	struct limiter *l;
	int granted;
};

static void *take_many(void *p)
{
	struct taker *t = p;

	for (int i = 0; i < TAKES; i++)
		if (limiter_take(t->l, "Shared", T, NULL) == 1)
			t->granted++;
	return NULL;
}

/* A burst of concurrent takes: no more than the count between them. For the
 * store, each thread has a limiter of its own with the same name, as
 * instances of one site do. */
static void test_concurrent_takes(void **state)
{
	struct fx *f = *state;
	struct limiter *shared = make(f, "lookup", 10, 60);
	pthread_t th[THREADS];
	struct taker t[THREADS];
	int granted = 0;

	for (int i = 0; i < THREADS; i++) {
		t[i].l = f->in_store ? make(f, "lookup", 10, 60) : shared;
		t[i].granted = 0;
		assert_int_equal(pthread_create(&th[i], NULL, take_many, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		granted += t[i].granted;
		if (t[i].l != shared)
			limiter_free(t[i].l);
	}
	assert_int_equal(granted, 10);
	limiter_free(shared);
}

/* Two store limiters of one name see each other's events; of another name,
 * they do not. */
static void test_store_limiters_share_by_name(void **state)
{
	struct fx *f = *state;
	struct limiter *a = make(f, "login", 2, 60), *b = make(f, "login", 2, 60);
	struct limiter *other = make(f, "lookup", 2, 60);

	assert_int_equal(limiter_take(a, "alice", T, NULL), 1);
	assert_int_equal(limiter_take(b, "alice", T, NULL), 1);
	assert_int_equal(limiter_take(a, "alice", T, NULL), 0);
	assert_int_equal(limiter_take(b, "alice", T, NULL), 0);
	assert_int_equal(limiter_take(other, "alice", T, NULL), 1);
	limiter_clear(b, "alice");
	assert_int_equal(limiter_take(a, "alice", T, NULL), 1);
	limiter_free(a);
	limiter_free(b);
	limiter_free(other);
}

static void test_bad_arguments(void **state)
{
	struct fx *f = *state;
	struct limiter *l = NULL;
	char long_name[STORE_LIMITER_MAX + 2];

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(limiter_store_new(f->s, "login", 0, 60, &l), KW_ERR_INVALID);
	assert_int_equal(limiter_store_new(f->s, "login", 5, 0, &l), KW_ERR_INVALID);
	assert_int_equal(limiter_store_new(f->s, long_name, 5, 60, &l), KW_ERR_INVALID);
	assert_null(l);
	/* No limiter, or no key: nothing is limited. */
	assert_int_equal(limiter_take(NULL, "alice", T, NULL), 1);
	limiter_give_back(NULL, "alice", T);
	limiter_clear(NULL, "alice");
	limiter_free(NULL);
}

#define BOTH(fn) \
	cmocka_unit_test_setup_teardown(fn, setup_memory, teardown), \
	cmocka_unit_test_setup_teardown(fn, setup_store, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_under_at_over),
		BOTH(test_names_fold),
		BOTH(test_give_back_and_clear),
		BOTH(test_concurrent_takes),
		cmocka_unit_test_setup_teardown(test_store_limiters_share_by_name, setup_store,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup_store, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
