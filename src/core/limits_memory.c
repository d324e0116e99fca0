#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/limits.h"
#include "core/limits_memory.h"
#include "util/err.h"
#include "util/str.h"

/* Keys are compared folded as user names are compared everywhere (str_fold)
 * and cut to their first KEY_MAX bytes, so two keys that agree that far
 * share one count. Names and addresses are much shorter; the cut keeps
 * every entry the same size. */
#define KEY_MAX 256

/* Up to RING_MAX events per window each key keeps every timestamp: an exact
 * sliding window. Above it, a fixed-window counter approximates the limit
 * (bursts of up to twice the count across a window boundary), so that memory
 * does not scale with a large count. */
#define RING_MAX 1000

/* Every table is allocated at limiter_new and never grows. */
#define CAPACITY_MAX (1u << 22)
#define MEMORY_MAX ((size_t)256 * 1024 * 1024)

#define NONE UINT32_MAX

struct entry {
	uint64_t hash;
	uint32_t prev, next;     /* recency list; next also links the free list */
	uint32_t head, n;        /* ring: oldest stamp at head, n stamps */
	int64_t start, hits;     /* fixed window: [start, start + window) */
	char key[KEY_MAX + 1];
};

struct mlimiter {
	struct limiter base;     /* first: a struct limiter * is one of these */
	pthread_mutex_t lock;
	int64_t count, window;
	uint32_t ring;           /* stamps per key; 0 = fixed window */
	uint32_t capacity;
	uint32_t mask;           /* slots - 1 */
	uint32_t used;           /* entries handed out at least once */
	uint32_t mru, lru;       /* most and least recently used */
	uint32_t free;           /* entries given back by limiter_clear */
	uint32_t *slots;         /* open addressing: entry index + 1; 0 = empty */
	struct entry *e;
	int64_t *stamps;         /* capacity * ring */
	uint8_t seed[crypto_shorthash_KEYBYTES];
};

static const struct limiter_ops memory_ops;
static void memory_free(struct limiter *base);

int limiter_memory_new(int64_t count, int64_t window, size_t capacity, struct limiter **out)
{
	struct mlimiter *l = NULL;
	size_t nslots = 2, ring, per;
	int rc = KW_ERR_INVALID;

	*out = NULL;
	if (count < 1 || window < 1 || capacity < 1)
		goto out;
	rc = KW_ERR_TOO_LARGE;
	if (capacity > CAPACITY_MAX)
		goto out;
	ring = count <= RING_MAX ? (size_t)count : 0;
	per = sizeof(struct entry) + ring * sizeof(int64_t) + 2 * 2 * sizeof(uint32_t);
	if (capacity > MEMORY_MAX / per)
		goto out;
	/* At most half full, so probes stay short and always end. */
	while (nslots < 2 * capacity)
		nslots *= 2;
	rc = KW_ERR_CRYPTO;
	if (sodium_init() < 0)
		goto out;
	rc = KW_ERR_NOMEM;
	if (!(l = calloc(1, sizeof(*l))))
		goto out;
	if (pthread_mutex_init(&l->lock, NULL) != 0) {
		free(l);
		l = NULL;
		goto out;
	}
	l->e = calloc(capacity, sizeof(*l->e));
	l->slots = calloc(nslots, sizeof(*l->slots));
	l->stamps = ring ? calloc(capacity * ring, sizeof(*l->stamps)) : NULL;
	if (!l->e || !l->slots || (ring && !l->stamps))
		goto out;
	l->count = count;
	l->window = window;
	l->ring = (uint32_t)ring;
	l->capacity = (uint32_t)capacity;
	l->mask = (uint32_t)(nslots - 1);
	l->mru = l->lru = l->free = NONE;
	l->base.ops = &memory_ops;
	/* Keys come from outside (user names, client addresses): a keyed hash
	 * keeps anyone from choosing keys that all land in one probe run. */
	randombytes_buf(l->seed, sizeof(l->seed));
	*out = &l->base;
	l = NULL;  /* owned by caller */
	rc = 0;
out:
	memory_free(l ? &l->base : NULL);
	return rc;
}

static void memory_free(struct limiter *base)
{
	struct mlimiter *l = (struct mlimiter *)base;

	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->stamps);
	free(l->slots);
	free(l->e);
	free(l);
}

/* The key cut to KEY_MAX bytes and folded as user names are everywhere
 * (str_fold), and its hash. */
static uint64_t key_norm(const struct mlimiter *l, const char *key, char out[KEY_MAX + 1])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;
	size_t n = strnlen(key, KEY_MAX);

	memcpy(out, key, n);
	out[n] = '\0';
	str_fold(out);
	crypto_shorthash(h, (const unsigned char *)out, n, l->seed);
	for (size_t i = 0; i < sizeof(h); i++)
		v = v << 8 | h[i];
	return v;
}

static uint32_t home(const struct mlimiter *l, uint64_t hash)
{
	return (uint32_t)hash & l->mask;
}

/* The entry holding key, or NONE; *slot gets where it is. */
static uint32_t find(const struct mlimiter *l, const char *key, uint64_t hash,
		     uint32_t *slot)
{
	for (uint32_t i = home(l, hash);; i = (i + 1) & l->mask) {
		uint32_t x = l->slots[i];

		if (!x)
			return NONE;
		if (l->e[x - 1].hash == hash && !strcmp(l->e[x - 1].key, key)) {
			*slot = i;
			return x - 1;
		}
	}
}

/* Empties slot i and moves later entries of its probe run back, so that
 * lookups never need tombstones. */
static void slot_remove(struct mlimiter *l, uint32_t i)
{
	for (uint32_t j = i;;) {
		uint32_t k;

		j = (j + 1) & l->mask;
		if (!l->slots[j])
			break;
		k = home(l, l->e[l->slots[j] - 1].hash);
		/* The entry at j may fill i unless its home lies cyclically in
		 * (i, j]: then it would no longer be found from there. */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			l->slots[i] = l->slots[j];
			i = j;
		}
	}
	l->slots[i] = 0;
}

static void lru_unlink(struct mlimiter *l, uint32_t x)
{
	struct entry *e = &l->e[x];

	if (e->prev != NONE)
		l->e[e->prev].next = e->next;
	else
		l->mru = e->next;
	if (e->next != NONE)
		l->e[e->next].prev = e->prev;
	else
		l->lru = e->prev;
}

static void lru_push(struct mlimiter *l, uint32_t x)
{
	l->e[x].prev = NONE;
	l->e[x].next = l->mru;
	if (l->mru != NONE)
		l->e[l->mru].prev = x;
	l->mru = x;
	if (l->lru == NONE)
		l->lru = x;
}

static void touch(struct mlimiter *l, uint32_t x)
{
	if (l->mru != x) {
		lru_unlink(l, x);
		lru_push(l, x);
	}
}

/* Takes key out of the table and the recency list; the entry is then free
 * for reuse. */
static void drop(struct mlimiter *l, uint32_t x)
{
	uint32_t slot = 0;

	if (find(l, l->e[x].key, l->e[x].hash, &slot) == x)
		slot_remove(l, slot);
	lru_unlink(l, x);
}

/* A fresh entry for key: unused, given back, or the least recently used. */
static uint32_t entry_new(struct mlimiter *l, const char *key, uint64_t hash)
{
	struct entry *e;
	uint32_t x, i;

	if (l->free != NONE) {
		x = l->free;
		l->free = l->e[x].next;
	} else if (l->used < l->capacity) {
		x = l->used++;
	} else {
		x = l->lru;
		drop(l, x);
	}
	e = &l->e[x];
	memset(e, 0, sizeof(*e));
	e->hash = hash;
	memcpy(e->key, key, strlen(key) + 1);
	for (i = home(l, hash); l->slots[i]; i = (i + 1) & l->mask)
		;
	l->slots[i] = x + 1;
	lru_push(l, x);
	return x;
}

/* Whether e is at the limit at now, and when the next event is allowed. */
static bool entry_blocked(const struct mlimiter *l, uint32_t x, int64_t now,
			  int64_t *retry_after)
{
	const struct entry *e = &l->e[x];
	int64_t in = 0, oldest = 0;

	if (!l->ring) {
		if (now < e->start || now - e->start >= l->window || e->hits < l->count)
			return false;
		*retry_after = l->window - (now - e->start);
		return true;
	}
	/* Events in (now - window, now]; stamps past now (a clock that went
	 * back) are not counted. */
	for (uint32_t i = 0; i < e->n; i++) {
		int64_t t = l->stamps[(size_t)x * l->ring + (e->head + i) % l->ring];

		if (t <= now && now - t < l->window) {
			if (!in || t < oldest)
				oldest = t;
			in++;
		}
	}
	if (in < l->count)
		return false;
	*retry_after = l->window - (now - oldest);
	if (*retry_after < 1)
		*retry_after = 1;
	return true;
}

bool limiter_memory_blocked(struct limiter *base, const char *key, int64_t now,
			    int64_t *retry_after)
{
	struct mlimiter *l = (struct mlimiter *)base;
	char k[KEY_MAX + 1];
	int64_t retry = 0;
	uint32_t x, slot;
	uint64_t hash;
	bool blocked = false;

	if (!l || !key)
		return false;
	hash = key_norm(l, key, k);
	pthread_mutex_lock(&l->lock);
	if ((x = find(l, k, hash, &slot)) != NONE) {
		blocked = entry_blocked(l, x, now, &retry);
		touch(l, x);
	}
	pthread_mutex_unlock(&l->lock);
	if (retry_after)
		*retry_after = blocked ? retry : 0;
	return blocked;
}

/* Records one event at now for key (its normalised form and hash); the
 * lock is held. */
static void record(struct mlimiter *l, const char *k, uint64_t hash, int64_t now)
{
	struct entry *e;
	uint32_t x, slot;

	if ((x = find(l, k, hash, &slot)) == NONE)
		x = entry_new(l, k, hash);
	else
		touch(l, x);
	e = &l->e[x];
	if (!l->ring) {
		if (e->hits == 0 || now < e->start || now - e->start >= l->window) {
			e->start = now;
			e->hits = 0;
		}
		e->hits++;
	} else if (e->n < l->ring) {
		l->stamps[(size_t)x * l->ring + (e->head + e->n) % l->ring] = now;
		e->n++;
	} else {
		/* Full: the oldest stamp gives way, as only the newest count
		 * events can decide whether the limit is reached. */
		l->stamps[(size_t)x * l->ring + e->head] = now;
		e->head = (e->head + 1) % l->ring;
	}
}

void limiter_memory_hit(struct limiter *base, const char *key, int64_t now)
{
	struct mlimiter *l = (struct mlimiter *)base;
	char k[KEY_MAX + 1];
	uint64_t hash;

	if (!l || !key)
		return;
	hash = key_norm(l, key, k);
	pthread_mutex_lock(&l->lock);
	record(l, k, hash, now);
	pthread_mutex_unlock(&l->lock);
}

static int memory_take(struct limiter *base, const char *key, int64_t now,
		       int64_t *retry_after)
{
	struct mlimiter *l = (struct mlimiter *)base;
	char k[KEY_MAX + 1];
	int64_t retry = 0;
	uint32_t x, slot;
	uint64_t hash;
	bool blocked = false;

	if (retry_after)
		*retry_after = 0;
	if (!l || !key)
		return 1;
	hash = key_norm(l, key, k);
	pthread_mutex_lock(&l->lock);
	if ((x = find(l, k, hash, &slot)) != NONE)
		blocked = entry_blocked(l, x, now, &retry);
	if (!blocked)
		record(l, k, hash, now);
	pthread_mutex_unlock(&l->lock);
	if (retry_after && blocked)
		*retry_after = retry;
	return blocked ? 0 : 1;
}

static void memory_give_back(struct limiter *base, const char *key, int64_t at)
{
	struct mlimiter *l = (struct mlimiter *)base;
	char k[KEY_MAX + 1];
	struct entry *e;
	uint32_t x, slot;
	uint64_t hash;

	if (!l || !key)
		return;
	hash = key_norm(l, key, k);
	pthread_mutex_lock(&l->lock);
	if ((x = find(l, k, hash, &slot)) == NONE)
		goto out;   /* cleared or evicted meanwhile: nothing to give back */
	e = &l->e[x];
	if (!l->ring) {
		if (e->hits > 0 && at >= e->start && at - e->start < l->window)
			e->hits--;
		goto out;
	}
	/* The newest stamp at that time goes; the later ones move down. */
	for (uint32_t i = e->n; i-- > 0;) {
		int64_t *st = l->stamps + (size_t)x * l->ring;

		if (st[(e->head + i) % l->ring] != at)
			continue;
		for (uint32_t j = i; j + 1 < e->n; j++)
			st[(e->head + j) % l->ring] = st[(e->head + j + 1) % l->ring];
		e->n--;
		break;
	}
out:
	pthread_mutex_unlock(&l->lock);
}

static void memory_clear(struct limiter *base, const char *key)
{
	struct mlimiter *l = (struct mlimiter *)base;
	char k[KEY_MAX + 1];
	uint32_t x, slot;
	uint64_t hash;

	if (!l || !key)
		return;
	hash = key_norm(l, key, k);
	pthread_mutex_lock(&l->lock);
	if ((x = find(l, k, hash, &slot)) != NONE) {
		slot_remove(l, slot);
		lru_unlink(l, x);
		l->e[x].next = l->free;
		l->free = x;
	}
	pthread_mutex_unlock(&l->lock);
}

static const struct limiter_ops memory_ops = {
	.take = memory_take,
	.give_back = memory_give_back,
	.clear = memory_clear,
	.free = memory_free,
};
