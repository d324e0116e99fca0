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
 * compared as user names are (str_fold), cut to 256 bytes. A look only:
 * to gate an attempt use limiter_take, since checking and then counting
 * lets a burst of concurrent attempts all pass the check. */
bool limiter_blocked(struct limiter *l, const char *key, int64_t now, int64_t *retry_after);

/* Records one event (a failure) for key at time now. */
void limiter_hit(struct limiter *l, const char *key, int64_t now);

/* One atomic step: when key is at the limit at now, returns false with
 * *retry_after (may be NULL) set and records nothing; otherwise records an
 * event at now and returns true. An attempt takes its event before it runs,
 * so no burst of concurrent attempts gets more than the limit; when the
 * attempt turns out not to count (it succeeded), limiter_give_back(key, now)
 * returns the event. */
bool limiter_take(struct limiter *l, const char *key, int64_t now, int64_t *retry_after);

/* Removes one event recorded for key at time at (by limiter_take); nothing
 * when there is none (the key was cleared or evicted meanwhile). */
void limiter_give_back(struct limiter *l, const char *key, int64_t at);

/* Forgets key (e.g. after a successful sign-in). */
void limiter_clear(struct limiter *l, const char *key);

#endif
