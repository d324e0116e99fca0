/* Operations on rate-limit events shared by every instance. */
#include "store/sqlite/internal.h"
#include "util/err.h"

/* Events that can no longer count (at <= now - window) go first: a key's
 * rows stay about count long. Events in the future (a clock that went
 * back) are kept and not counted, as core/limits.c does. */
static const struct sq_query q_limit_prune = { SQ_LIMIT_PRUNE,
	"DELETE FROM limit_events WHERE limiter = ?1 AND key = ?2 AND at <= ?3 - ?4" };
/* The count-th newest event that counts: if there is one, the key is at
 * the limit until it leaves the window. */
static const struct sq_query q_limit_nth = { SQ_LIMIT_NTH,
	"SELECT at FROM limit_events WHERE limiter = ?1 AND key = ?2 "
	"AND at > ?3 - ?4 AND at <= ?3 ORDER BY at DESC LIMIT 1 OFFSET ?5 - 1" };
static const struct sq_query q_limit_insert = { SQ_LIMIT_INSERT,
	"INSERT INTO limit_events (limiter, key, at) VALUES (?1, ?2, ?3)" };
static const struct sq_query q_limit_give_back = { SQ_LIMIT_GIVE_BACK,
	"DELETE FROM limit_events WHERE rowid = (SELECT rowid FROM limit_events "
	"WHERE limiter = ?1 AND key = ?2 AND at = ?3 LIMIT 1)" };
static const struct sq_query q_limit_clear = { SQ_LIMIT_CLEAR,
	"DELETE FROM limit_events WHERE limiter = ?1 AND key = ?2" };
static const struct sq_query q_limit_purge = { SQ_LIMIT_PURGE,
	"DELETE FROM limit_events WHERE limiter = ?1 AND at <= ?2 - ?3" };

/* The single writer serialises takes: nothing writes between the count and
 * the insert. */
static int limit_take(struct store_tx *tx, const char *limiter, const char *key, int64_t now,
		      int64_t count, int64_t window, int64_t *retry_after)
{
	int64_t nth;
	int rc;

	if ((rc = sq_exec(tx->c, &q_limit_prune, SQ_ARGS(SQ_TEXT(limiter), SQ_TEXT(key),
							 SQ_INT(now), SQ_INT(window)))) < 0)
		return rc;
	rc = sq_int(tx->c, &q_limit_nth, SQ_ARGS(SQ_TEXT(limiter), SQ_TEXT(key), SQ_INT(now),
						 SQ_INT(window), SQ_INT(count)), &nth);
	if (rc == 0) {
		*retry_after = window - (now - nth);
		return 0;
	}
	if (rc != KW_ERR_NOT_FOUND)
		return rc;
	if ((rc = sq_exec(tx->c, &q_limit_insert,
			  SQ_ARGS(SQ_TEXT(limiter), SQ_TEXT(key), SQ_INT(now)))) < 0)
		return rc;
	return 1;
}

static int limit_give_back(struct store_tx *tx, const char *limiter, const char *key,
			   int64_t at)
{
	return sq_change(tx->c, &q_limit_give_back,
			 SQ_ARGS(SQ_TEXT(limiter), SQ_TEXT(key), SQ_INT(at)));
}

static int limit_clear(struct store_tx *tx, const char *limiter, const char *key)
{
	return sq_exec(tx->c, &q_limit_clear, SQ_ARGS(SQ_TEXT(limiter), SQ_TEXT(key)));
}

static int limit_purge(struct store_tx *tx, const char *limiter, int64_t now, int64_t window)
{
	return sq_exec(tx->c, &q_limit_purge,
		       SQ_ARGS(SQ_TEXT(limiter), SQ_INT(now), SQ_INT(window)));
}

void sq_limit_ops(struct store_ops *o)
{
	o->limit_take = limit_take;
	o->limit_give_back = limit_give_back;
	o->limit_clear = limit_clear;
	o->limit_purge = limit_purge;
}
