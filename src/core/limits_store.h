/* Rate limits kept in the store (core/limits.h), shared by every instance
 * of a site: a take is one durable write, and of concurrent takes of one
 * key, in any instance, no more than the limit succeed. */
#ifndef KW_CORE_LIMITS_STORE_H
#define KW_CORE_LIMITS_STORE_H

#include "core/limits.h"

struct store;

/* A limiter named name (at most STORE_LIMITER_MAX bytes; each limiter of a
 * site has its own name: "login", "lookup", …) allowing count events per
 * window seconds for each key, kept in s (which must outlive it).
 * KW_ERR_INVALID for a count or window below 1 or a name too long. */
int limiter_store_new(struct store *s, const char *name, int64_t count, int64_t window,
		      struct limiter **out);

#endif
