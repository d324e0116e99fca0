/* Rate limits (SPEC §3.4, §7): at most N events per window for a key
 * (an account name, a user, a client address). Kept in memory: a sliding
 * window per key in a fixed-size table, so a flood of distinct keys cannot
 * grow memory; when the table is full the oldest entry is reused. */
#ifndef KW_CORE_LIMITS_H
#define KW_CORE_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct limiter;

/* A limiter allowing count events per window seconds for each key, tracking
 * at most capacity keys. */
int limiter_new(int64_t count, int64_t window, size_t capacity, struct limiter **out);
void limiter_free(struct limiter *l);

/* True when key has reached the limit at time now (seconds); *retry_after
 * (may be NULL) gets the seconds until one more event is allowed. Keys are
 * compared case-insensitively. */
bool limiter_blocked(struct limiter *l, const char *key, int64_t now, int64_t *retry_after);

/* Records one event (a failure) for key at time now. */
void limiter_hit(struct limiter *l, const char *key, int64_t now);

/* Forgets key (e.g. after a successful sign-in). */
void limiter_clear(struct limiter *l, const char *key);

#endif
