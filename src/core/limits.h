/* Rate limits (SPEC §3.4, §7): at most N events per window for a key (an
 * account name, a user, a client address). One interface, two kinds:
 * in memory (core/limits_memory.h), for one instance, and in the store
 * (core/limits_store.h), shared by every instance of a site. Keys are
 * compared as user names are (str_fold), cut to 256 bytes. */
#ifndef KW_CORE_LIMITS_H
#define KW_CORE_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct limiter;

struct limiter_ops {
	int (*take)(struct limiter *, const char *key, int64_t now, int64_t *retry_after);
	void (*give_back)(struct limiter *, const char *key, int64_t at);
	void (*clear)(struct limiter *, const char *key);
	void (*free)(struct limiter *);
};

/* Every kind's struct begins with this. */
struct limiter {
	const struct limiter_ops *ops;
};

/* One atomic step: when key is at the limit at now, returns 0 with
 * *retry_after (may be NULL) set to the seconds until one more event is
 * allowed, and records nothing; otherwise records an event at now and
 * returns 1. An attempt takes its event before it runs, so no burst of
 * concurrent attempts gets more than the limit; when the attempt turns out
 * not to count (it succeeded), limiter_give_back(key, now) returns the
 * event. A negative error when the limit could not be read (a store
 * limiter whose store fails): the caller refuses the attempt as a failure
 * of the service, not of the person. NULL limiter or key: 1. */
int limiter_take(struct limiter *l, const char *key, int64_t now, int64_t *retry_after);

/* Removes one event recorded for key at time at (by limiter_take); nothing
 * when there is none (the key was cleared or evicted meanwhile). */
void limiter_give_back(struct limiter *l, const char *key, int64_t at);

/* Forgets key (e.g. after a successful sign-in). */
void limiter_clear(struct limiter *l, const char *key);

/* Accepts NULL. */
void limiter_free(struct limiter *l);

#endif
