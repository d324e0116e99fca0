#include <stddef.h>

#include "core/limits.h"

int limiter_take(struct limiter *l, const char *key, int64_t now, int64_t *retry_after)
{
	if (retry_after)
		*retry_after = 0;
	if (!l || !key)
		return 1;
	return l->ops->take(l, key, now, retry_after);
}

void limiter_give_back(struct limiter *l, const char *key, int64_t at)
{
	if (l && key)
		l->ops->give_back(l, key, at);
}

void limiter_clear(struct limiter *l, const char *key)
{
	if (l && key)
		l->ops->clear(l, key);
}

void limiter_free(struct limiter *l)
{
	if (l)
		l->ops->free(l);
}
