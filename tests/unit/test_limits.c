#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/limits.h"
#include "core/limits_memory.h"
#include "util/err.h"

#if defined(__SANITIZE_ADDRESS__)
/* ASan keeps its own heap; mallinfo2 does not see it. */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}
#endif

#define T 1767225600

static struct limiter *make(int64_t count, int64_t window, size_t capacity)
{
	struct limiter *l = NULL;

	assert_int_equal(limiter_memory_new(count, window, capacity, &l), 0);
	assert_non_null(l);
	return l;
}

static void test_bad_arguments(void **state)
{
	struct limiter *l = (struct limiter *)1;

	(void)state;
	assert_int_equal(limiter_memory_new(0, 60, 10, &l), KW_ERR_INVALID);
	assert_null(l);
	assert_int_equal(limiter_memory_new(5, 0, 10, &l), KW_ERR_INVALID);
	assert_int_equal(limiter_memory_new(5, 60, 0, &l), KW_ERR_INVALID);
	assert_int_equal(limiter_memory_new(-1, 60, 10, &l), KW_ERR_INVALID);
	assert_int_equal(limiter_memory_new(5, 60, (size_t)1 << 40, &l), KW_ERR_TOO_LARGE);
	assert_null(l);
	limiter_free(NULL);
}

static void test_under_at_over(void **state)
{
	struct limiter *l = make(3, 60, 100);
	int64_t retry = -1;

	(void)state;
	assert_false(limiter_memory_blocked(l, "alice", T, &retry));
	assert_int_equal(retry, 0);
	limiter_memory_hit(l, "alice", T);
	limiter_memory_hit(l, "alice", T + 1);
	assert_false(limiter_memory_blocked(l, "alice", T + 2, &retry));   /* under */
	limiter_memory_hit(l, "alice", T + 2);
	assert_true(limiter_memory_blocked(l, "alice", T + 2, &retry));    /* at */
	limiter_memory_hit(l, "alice", T + 3);
	assert_true(limiter_memory_blocked(l, "alice", T + 3, &retry));    /* over */
	assert_false(limiter_memory_blocked(l, "bob", T + 3, &retry));
	assert_true(limiter_memory_blocked(l, "alice", T + 3, NULL));
	limiter_free(l);
}

/* Events count in (now - window, now]: each expires exactly window seconds
 * after it happened. */
static void test_window_expiry(void **state)
{
	struct limiter *l = make(3, 60, 100);

	(void)state;
	limiter_memory_hit(l, "alice", T);
	limiter_memory_hit(l, "alice", T + 10);
	limiter_memory_hit(l, "alice", T + 20);
	assert_true(limiter_memory_blocked(l, "alice", T + 59, NULL));
	assert_false(limiter_memory_blocked(l, "alice", T + 60, NULL));
	/* Sliding, not fixed: one more event blocks again until T+10 expires. */
	limiter_memory_hit(l, "alice", T + 60);
	assert_true(limiter_memory_blocked(l, "alice", T + 60, NULL));
	assert_true(limiter_memory_blocked(l, "alice", T + 69, NULL));
	assert_false(limiter_memory_blocked(l, "alice", T + 70, NULL));
	/* Long after, nothing counts. */
	assert_false(limiter_memory_blocked(l, "alice", T + 10000, NULL));
	limiter_free(l);
}

static void test_retry_after(void **state)
{
	struct limiter *l = make(3, 900, 100);
	int64_t retry = 0;

	(void)state;
	limiter_memory_hit(l, "alice", T);
	limiter_memory_hit(l, "alice", T + 100);
	limiter_memory_hit(l, "alice", T + 200);
	assert_true(limiter_memory_blocked(l, "alice", T + 300, &retry));
	assert_int_equal(retry, 600);          /* T + 900 - (T + 300) */
	assert_true(limiter_memory_blocked(l, "alice", T + 899, &retry));
	assert_int_equal(retry, 1);
	assert_false(limiter_memory_blocked(l, "alice", T + 900, &retry));
	assert_int_equal(retry, 0);
	/* After T expired, T + 100 is the oldest that matters. */
	limiter_memory_hit(l, "alice", T + 950);
	assert_true(limiter_memory_blocked(l, "alice", T + 960, &retry));
	assert_int_equal(retry, 40);           /* T + 100 + 900 - (T + 960) */
	limiter_free(l);
}

static void test_case_insensitive_keys(void **state)
{
	struct limiter *l = make(2, 60, 100);

	(void)state;
	limiter_memory_hit(l, "CORP\\Alice", T);
	limiter_memory_hit(l, "corp\\ALICE", T);
	assert_true(limiter_memory_blocked(l, "corp\\alice", T, NULL));
	assert_true(limiter_memory_blocked(l, "CORP\\ALICE", T, NULL));
	assert_false(limiter_memory_blocked(l, "corp\\alicia", T, NULL));
	limiter_clear(l, "Corp\\Alice");
	assert_false(limiter_memory_blocked(l, "corp\\alice", T, NULL));
	limiter_free(l);
}

/* Keys are cut at 256 bytes: equal that far, they share a count. */
static void test_long_keys(void **state)
{
	struct limiter *l = make(1, 60, 100);
	char a[400], b[400];

	(void)state;
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[300] = 'y';
	limiter_memory_hit(l, a, T);
	assert_true(limiter_memory_blocked(l, b, T, NULL));
	b[300] = 'x';
	b[200] = 'y';
	assert_false(limiter_memory_blocked(l, b, T, NULL));
	limiter_free(l);
}

static void test_clear(void **state)
{
	struct limiter *l = make(2, 60, 100);

	(void)state;
	limiter_memory_hit(l, "alice", T);
	limiter_memory_hit(l, "alice", T);
	limiter_memory_hit(l, "bob", T);
	limiter_memory_hit(l, "bob", T);
	limiter_clear(l, "alice");
	limiter_clear(l, "nobody");
	assert_false(limiter_memory_blocked(l, "alice", T, NULL));
	assert_true(limiter_memory_blocked(l, "bob", T, NULL));
	/* A cleared key counts from zero again. */
	limiter_memory_hit(l, "alice", T);
	assert_false(limiter_memory_blocked(l, "alice", T, NULL));
	limiter_memory_hit(l, "alice", T);
	assert_true(limiter_memory_blocked(l, "alice", T, NULL));
	limiter_free(l);
}

/* When full, the least recently used key gives way. */
static void test_capacity_evicts_least_recently_used(void **state)
{
	struct limiter *l = make(1, 60, 4);
	char k[16];

	(void)state;
	for (int i = 0; i < 4; i++) {
		snprintf(k, sizeof(k), "user%d", i);
		limiter_memory_hit(l, k, T);
	}
	for (int i = 0; i < 4; i++) {
		snprintf(k, sizeof(k), "user%d", i);
		assert_true(limiter_memory_blocked(l, k, T, NULL));
	}
	limiter_memory_hit(l, "user0", T + 1);   /* user0 is now the most recent */
	limiter_memory_hit(l, "user4", T + 1);   /* evicts user1 */
	assert_true(limiter_memory_blocked(l, "user0", T + 1, NULL));
	assert_false(limiter_memory_blocked(l, "user1", T + 1, NULL));
	assert_true(limiter_memory_blocked(l, "user2", T + 1, NULL));
	assert_true(limiter_memory_blocked(l, "user3", T + 1, NULL));
	assert_true(limiter_memory_blocked(l, "user4", T + 1, NULL));
	/* Freed by clear: reused before anything is evicted. */
	limiter_clear(l, "user2");
	limiter_memory_hit(l, "user5", T + 2);
	assert_true(limiter_memory_blocked(l, "user0", T + 2, NULL));
	assert_true(limiter_memory_blocked(l, "user3", T + 2, NULL));
	assert_true(limiter_memory_blocked(l, "user4", T + 2, NULL));
	assert_true(limiter_memory_blocked(l, "user5", T + 2, NULL));
	limiter_free(l);
}

/* A flood of distinct keys: no crash, no growth, and the table still
 * finds every key it holds (removals from probe runs are done right). */
static void test_flood_of_keys(void **state)
{
	struct limiter *l = make(2, 60, 1000);
	size_t before;
	char k[32];

	(void)state;
	before = heap_in_use();
	for (int i = 0; i < 200000; i++) {
		snprintf(k, sizeof(k), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		limiter_memory_hit(l, k, T);
		limiter_memory_hit(l, k, T);
		if (i % 7 == 0) {
			snprintf(k, sizeof(k), "10.%d.%d.%d", (i / 2) >> 16, ((i / 2) >> 8) & 255,
				 (i / 2) & 255);
			limiter_clear(l, k);
		}
	}
	assert_true((long long)heap_in_use() - (long long)before < 64 * 1024);
	/* The newest 1000 keys (minus any cleared) are all still there. */
	for (int i = 200000 - 500; i < 200000; i++) {
		snprintf(k, sizeof(k), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_true(limiter_memory_blocked(l, k, T, NULL));
	}
	snprintf(k, sizeof(k), "10.0.0.5");
	assert_false(limiter_memory_blocked(l, k, T, NULL));
	limiter_free(l);
}

/* A tiny table (8 slots) under random hits, clears and lookups behaves
 * like a plain list of the 3 most recently used keys: probe runs wrap and
 * are shortened by removals all the time. */
static void test_table_matches_model(void **state)
{
	enum { CAP = 3, KEYS = 12 };
	struct limiter *l = make(1, 60, CAP);
	int model[CAP], n = 0;   /* most recent first */
	uint32_t rnd = 12345;
	char k[16];

	(void)state;
	for (int step = 0; step < 50000; step++) {
		int key, op, at = -1;

		rnd ^= rnd << 13;
		rnd ^= rnd >> 17;
		rnd ^= rnd << 5;
		key = (int)(rnd % KEYS);
		op = (int)((rnd >> 8) % 3);
		snprintf(k, sizeof(k), "Key%d", key);
		for (int i = 0; i < n; i++)
			if (model[i] == key)
				at = i;
		if (op == 0) {
			limiter_memory_hit(l, k, T);
		} else if (op == 1) {
			limiter_clear(l, k);
		} else if (limiter_memory_blocked(l, k, T, NULL) != (at >= 0)) {
			fail_msg("step %d: %s %s", step, k, at >= 0 ? "lost" : "appeared");
		}
		if (op == 1 && at >= 0) {
			memmove(model + at, model + at + 1, sizeof(int) * (size_t)(n - at - 1));
			n--;
		} else if (op != 1 && at >= 0) {
			memmove(model + 1, model, sizeof(int) * (size_t)at);
			model[0] = key;
		} else if (op == 0) {
			if (n == CAP)
				n--;
			memmove(model + 1, model, sizeof(int) * (size_t)n);
			model[0] = key;
			n++;
		}
	}
	limiter_free(l);
}

/* Counts above the ring size use a fixed window. */
static void test_large_count(void **state)
{
	struct limiter *l = make(5000, 60, 10);
	int64_t retry = 0;

	(void)state;
	for (int i = 0; i < 4999; i++)
		limiter_memory_hit(l, "10.0.0.1", T + i % 30);
	assert_false(limiter_memory_blocked(l, "10.0.0.1", T + 30, NULL));
	limiter_memory_hit(l, "10.0.0.1", T + 30);
	assert_true(limiter_memory_blocked(l, "10.0.0.1", T + 30, &retry));
	assert_int_equal(retry, 30);
	assert_false(limiter_memory_blocked(l, "10.0.0.1", T + 60, NULL));
	limiter_free(l);
}

#define THREADS 8
#define HITS 100

struct worker {
	struct limiter *l;
	const char *key;   /* NULL: a key of its own per hit */
	int id;
};

static void *hammer(void *p)
{
	struct worker *w = p;
	char k[32];

	for (int i = 0; i < HITS; i++) {
		if (w->key) {
			limiter_memory_hit(w->l, w->key, T);
		} else {
			snprintf(k, sizeof(k), "t%d-%d", w->id, i);
			limiter_memory_hit(w->l, k, T);
			(void)limiter_memory_blocked(w->l, k, T, NULL);
			if (i % 3 == 0)
				limiter_clear(w->l, k);
		}
	}
	return NULL;
}

static void run_threads(struct limiter *l, const char *key)
{
	pthread_t t[THREADS];
	struct worker w[THREADS];

	for (int i = 0; i < THREADS; i++) {
		w[i].l = l;
		w[i].key = key;
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
}

/* No hit is lost under concurrency: exactly count hits block, one fewer
 * does not; for the exact window and for the fixed one. */
static void test_concurrent_hits(void **state)
{
	/* THREADS * HITS + 1 keeps every stamp; 2000 is above the ring size. */
	static const int64_t counts[] = { THREADS * HITS + 1, 2000 };
	struct limiter *l;

	(void)state;
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		l = make(counts[c], 60, 16);
		run_threads(l, "Shared");
		for (int64_t i = THREADS * HITS; i < counts[c] - 1; i++)
			limiter_memory_hit(l, "shared", T);
		assert_false(limiter_memory_blocked(l, "SHARED", T, NULL));
		limiter_memory_hit(l, "shared", T);
		assert_true(limiter_memory_blocked(l, "shared", T, NULL));
		limiter_free(l);
	}
	/* Many keys, few slots: eviction and clearing under contention. */
	l = make(2, 60, 16);
	run_threads(l, NULL);
	limiter_memory_hit(l, "last", T);
	limiter_memory_hit(l, "last", T);
	assert_true(limiter_memory_blocked(l, "last", T, NULL));
	limiter_free(l);
}

/* Non-ASCII letters fold as user names do everywhere (str_fold). */
static void test_non_ascii_keys(void **state)
{
	struct limiter *l = make(2, 60, 100);

	(void)state;
	limiter_memory_hit(l, "CORP\\\xc3\x85sa\xc3\xb6\xc3\xa9", T);      /* Åsaöé */
	limiter_memory_hit(l, "corp\\\xc3\xa5SA\xc3\x96\xc3\x89", T);      /* åSAÖÉ */
	assert_true(limiter_memory_blocked(l, "Corp\\\xc3\x85SA\xc3\xb6\xc3\x89", T, NULL));
	assert_false(limiter_memory_blocked(l, "corp\\asaoe", T, NULL));
	limiter_free(l);
}

/* take: the check and the count in one step; give_back returns one. */
static void test_take_and_give_back(void **state)
{
	struct limiter *l = make(3, 60, 100);
	int64_t retry = 0;

	(void)state;
	assert_true(limiter_take(l, "alice", T, &retry));
	assert_int_equal(retry, 0);
	assert_true(limiter_take(l, "alice", T + 1, NULL));
	assert_true(limiter_take(l, "alice", T + 2, NULL));
	assert_false(limiter_take(l, "alice", T + 3, &retry));
	assert_int_equal(retry, 57);
	/* A refused take records nothing: after T expires one more fits. */
	assert_true(limiter_take(l, "alice", T + 60, NULL));
	assert_false(limiter_take(l, "alice", T + 60, NULL));
	/* Giving back the event of T + 1 makes room for one. */
	limiter_give_back(l, "alice", T + 1);
	assert_true(limiter_take(l, "alice", T + 61, NULL));
	assert_false(limiter_take(l, "alice", T + 61, NULL));
	/* Nothing to give back: no change, no other key touched. */
	limiter_give_back(l, "alice", T + 30);
	limiter_give_back(l, "nobody", T);
	assert_false(limiter_take(l, "alice", T + 61, NULL));
	assert_true(limiter_memory_blocked(l, "alice", T + 61, NULL));
	limiter_free(l);

	/* The fixed window of large counts gives back too. */
	l = make(2000, 60, 10);
	for (int i = 0; i < 2000; i++)
		assert_true(limiter_take(l, "10.0.0.1", T, NULL));
	assert_false(limiter_take(l, "10.0.0.1", T + 1, NULL));
	limiter_give_back(l, "10.0.0.1", T);
	assert_true(limiter_take(l, "10.0.0.1", T + 1, NULL));
	limiter_free(l);
}

struct taker {
	struct limiter *l;
	int granted;
};

static void *take_many(void *p)
{
	struct taker *t = p;

	for (int i = 0; i < HITS; i++)
		if (limiter_take(t->l, "Shared", T, NULL))
			t->granted++;
	return NULL;
}

/* Concurrent takes never grant more than the count between them. */
static void test_concurrent_takes(void **state)
{
	struct limiter *l = make(10, 60, 16);
	pthread_t th[THREADS];
	struct taker t[THREADS];
	int granted = 0;

	(void)state;
	for (int i = 0; i < THREADS; i++) {
		t[i].l = l;
		t[i].granted = 0;
		assert_int_equal(pthread_create(&th[i], NULL, take_many, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		granted += t[i].granted;
	}
	assert_int_equal(granted, 10);
	limiter_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_under_at_over),
		cmocka_unit_test(test_window_expiry),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_case_insensitive_keys),
		cmocka_unit_test(test_long_keys),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_capacity_evicts_least_recently_used),
		cmocka_unit_test(test_table_matches_model),
		cmocka_unit_test(test_flood_of_keys),
		cmocka_unit_test(test_large_count),
		cmocka_unit_test(test_concurrent_hits),
		cmocka_unit_test(test_non_ascii_keys),
		cmocka_unit_test(test_take_and_give_back),
		cmocka_unit_test(test_concurrent_takes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
