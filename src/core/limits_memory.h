/* Rate limits kept in memory (core/limits.h): a sliding window per key in
 * a fixed-size table, so a flood of distinct keys cannot grow memory; when
 * the table is full the least recently used entry is reused. For one
 * instance: a second instance of a site counts apart. */
#ifndef KW_CORE_LIMITS_MEMORY_H
#define KW_CORE_LIMITS_MEMORY_H

#include "core/limits.h"

/* A limiter allowing count events per window seconds for each key, tracking
 * at most capacity keys. KW_ERR_INVALID for a count, window or capacity
 * below 1; KW_ERR_TOO_LARGE past the table's memory cap. */
int limiter_memory_new(int64_t count, int64_t window, size_t capacity, struct limiter **out);

/* The table's own look and count, for its tests: true when key has reached
 * the limit at now (*retry_after, may be NULL: seconds until one more event
 * is allowed); and one event recorded without a look. l is a memory
 * limiter. */
bool limiter_memory_blocked(struct limiter *l, const char *key, int64_t now,
			    int64_t *retry_after);
void limiter_memory_hit(struct limiter *l, const char *key, int64_t now);

#endif
