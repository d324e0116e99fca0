/* Operations on rate-limit events shared by every instance. */
#include "store/pgsql/internal.h"
#include "util/err.h"

/* Takes of one key are serialised across instances by a transaction lock
 * on the hashes of limiter and key (a collision only makes two keys wait
 * for each other), taken before the events are counted: at READ COMMITTED
 * the count then sees every take committed before. */
static const struct pg_query q_limit_lock = {
	"SELECT 1 FROM pg_advisory_xact_lock(hashtext($1::text), hashtext($2::text))" };
/* In one round trip: events that can no longer count (at <= now - window)
 * go; the count-th newest that counts is returned if there is one (the key
 * is at the limit until it leaves the window), else an event at now is
 * recorded and no row returned. Events in the future (a clock that went
 * back) are kept and not counted, as core/limits.c does. */
static const struct pg_query q_limit_take = {
	"WITH pruned AS (DELETE FROM limit_events WHERE limiter = $1::text AND key = $2::text "
	"AND at <= $3::bigint - $4::bigint), "
	"nth AS (SELECT at FROM limit_events WHERE limiter = $1::text AND key = $2::text "
	"AND at > $3::bigint - $4::bigint AND at <= $3::bigint ORDER BY at DESC "
	"LIMIT 1 OFFSET $5::bigint - 1), "
	"ins AS (INSERT INTO limit_events (limiter, key, at) SELECT $1::text, $2::text, "
	"$3::bigint WHERE NOT EXISTS (SELECT 1 FROM nth)) "
	"SELECT at FROM nth" };
static const struct pg_query q_limit_give_back = {
	"DELETE FROM limit_events WHERE id = (SELECT id FROM limit_events "
	"WHERE limiter = $1::text AND key = $2::text AND at = $3::bigint LIMIT 1)" };
static const struct pg_query q_limit_clear = {
	"DELETE FROM limit_events WHERE limiter = $1::text AND key = $2::text" };
static const struct pg_query q_limit_purge = {
	"DELETE FROM limit_events WHERE limiter = $1::text AND at <= $2::bigint - $3::bigint" };

static int limit_take(struct store_tx *tx, const char *limiter, const char *key, int64_t now,
		      int64_t count, int64_t window, int64_t *retry_after)
{
	int64_t nth;
	int rc;

	if ((rc = pg_exec(tx->c, &q_limit_lock, PG_ARGS(PG_TEXT(limiter), PG_TEXT(key)))) < 0)
		return rc;
	rc = pg_int(tx->c, &q_limit_take, PG_ARGS(PG_TEXT(limiter), PG_TEXT(key), PG_INT(now),
						  PG_INT(window), PG_INT(count)), &nth);
	if (rc == 0) {
		*retry_after = window - (now - nth);
		return 0;
	}
	return rc == KW_ERR_NOT_FOUND ? 1 : rc;
}

static int limit_give_back(struct store_tx *tx, const char *limiter, const char *key,
			   int64_t at)
{
	int rc;

	/* Locked as a take is: two give-backs do not pick the same event. */
	if ((rc = pg_exec(tx->c, &q_limit_lock, PG_ARGS(PG_TEXT(limiter), PG_TEXT(key)))) < 0)
		return rc;
	return pg_change(tx->c, &q_limit_give_back,
			 PG_ARGS(PG_TEXT(limiter), PG_TEXT(key), PG_INT(at)));
}

static int limit_clear(struct store_tx *tx, const char *limiter, const char *key)
{
	return pg_exec(tx->c, &q_limit_clear, PG_ARGS(PG_TEXT(limiter), PG_TEXT(key)));
}

static int limit_purge(struct store_tx *tx, const char *limiter, int64_t now, int64_t window)
{
	return pg_exec(tx->c, &q_limit_purge,
		       PG_ARGS(PG_TEXT(limiter), PG_INT(now), PG_INT(window)));
}

void pg_limit_ops(struct store_ops *o)
{
	o->limit_take = limit_take;
	o->limit_give_back = limit_give_back;
	o->limit_clear = limit_clear;
	o->limit_purge = limit_purge;
}
