#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits_store.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"

/* Events that no longer count are dropped once in this many takes. */
#define PURGE_EVERY 256

struct slimiter {
	struct limiter base;     /* first: a struct limiter * is one of these */
	struct store *s;
	char name[STORE_LIMITER_MAX + 1];
	int64_t count, window;
	atomic_uint takes;       /* counts to the next purge */
};

/* One limiter call in a write: the key cut and folded as the memory kind
 * does (str_fold: names compare as user names do everywhere). */
struct call {
	const struct slimiter *l;
	char key[STORE_LIMIT_KEY_MAX + 1];
	int64_t at;
	bool purge;
	int64_t retry;
	int taken;
};

static void call_init(struct call *c, const struct slimiter *l, const char *key, int64_t at)
{
	size_t n = strnlen(key, STORE_LIMIT_KEY_MAX);

	memset(c, 0, sizeof(*c));
	c->l = l;
	memcpy(c->key, key, n);
	c->key[n] = '\0';
	str_fold(c->key);
	c->at = at;
}

static int take_tx(struct store_tx *tx, void *arg)
{
	struct call *c = arg;
	int rc;

	if (c->purge && (rc = store_limit_purge(tx, c->l->name, c->at, c->l->window)) < 0)
		return rc;
	rc = store_limit_take(tx, c->l->name, c->key, c->at, c->l->count, c->l->window,
			      &c->retry);
	if (rc < 0)
		return rc;
	c->taken = rc;
	return 0;
}

static int store_take(struct limiter *base, const char *key, int64_t now,
		      int64_t *retry_after)
{
	struct slimiter *l = (struct slimiter *)base;
	struct call c;
	int rc;

	call_init(&c, l, key, now);
	c.purge = (atomic_fetch_add(&l->takes, 1) + 1) % PURGE_EVERY == 0;
	if ((rc = store_write(l->s, take_tx, &c)) < 0)
		return rc;
	if (retry_after)
		*retry_after = c.taken ? 0 : c.retry;
	return c.taken;
}

static int give_back_tx(struct store_tx *tx, void *arg)
{
	struct call *c = arg;
	int rc = store_limit_give_back(tx, c->l->name, c->key, c->at);

	return rc == KW_ERR_NOT_FOUND ? 0 : rc;   /* cleared meanwhile */
}

/* No way to report a failure: the event stays and counts (fails closed). */
static void store_give_back(struct limiter *base, const char *key, int64_t at)
{
	struct slimiter *l = (struct slimiter *)base;
	struct call c;

	call_init(&c, l, key, at);
	store_write(l->s, give_back_tx, &c);
}

static int clear_tx(struct store_tx *tx, void *arg)
{
	struct call *c = arg;

	return store_limit_clear(tx, c->l->name, c->key);
}

static void store_clear(struct limiter *base, const char *key)
{
	struct slimiter *l = (struct slimiter *)base;
	struct call c;

	call_init(&c, l, key, 0);
	store_write(l->s, clear_tx, &c);
}

static void store_free(struct limiter *base)
{
	free(base);
}

static const struct limiter_ops store_ops = {
	.take = store_take,
	.give_back = store_give_back,
	.clear = store_clear,
	.free = store_free,
};

int limiter_store_new(struct store *s, const char *name, int64_t count, int64_t window,
		      struct limiter **out)
{
	struct slimiter *l;

	*out = NULL;
	if (count < 1 || window < 1 || strlen(name) > STORE_LIMITER_MAX)
		return KW_ERR_INVALID;
	if (!(l = calloc(1, sizeof(*l))))
		return KW_ERR_NOMEM;
	l->base.ops = &store_ops;
	l->s = s;
	memcpy(l->name, name, strlen(name) + 1);
	l->count = count;
	l->window = window;
	*out = &l->base;
	return 0;
}
