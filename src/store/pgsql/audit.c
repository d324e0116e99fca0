/* Operations on the audit trail. */
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/pgsql/internal.h"
#include "util/err.h"

#define AUDIT_COLS "seq, at, source, result, actor, end_user, computer, device_id, " \
	"key_id, key_type, reason, comment, client, prev_hash, hash"

/* Appends are serialised across every instance by this transaction lock
 * (an arbitrary constant, "kwaudit"), taken before the chain's end is
 * read: at READ COMMITTED each later statement sees the appends committed
 * before the lock was granted. */
static const struct pg_query q_audit_lock = {
	"SELECT 1 FROM pg_advisory_xact_lock(7031411785)" };
/* The newest record and the head, in one round trip. */
static const struct pg_query q_audit_last = {
	"SELECT a.seq, a.hash, (SELECT value FROM meta WHERE name = $1::text) "
	"FROM (SELECT 1) one LEFT JOIN "
	"(SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) a ON true" };
/* The record and the new head, in one round trip. */
static const struct pg_query q_audit_insert = {
	"WITH rec AS (INSERT INTO audit (" AUDIT_COLS ", actor_lc, end_user_lc, computer_lc) "
	"VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::text, "
	"$8::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::bytea, "
	"$15::bytea, $16::text, $17::text, $18::text)) "
	"INSERT INTO meta (name, value) VALUES ($19::text, $20::text) "
	"ON CONFLICT (name) DO UPDATE SET value = excluded.value" };
static const struct pg_query q_audit_each = {
	"SELECT " AUDIT_COLS " FROM audit WHERE seq > $1::bigint "
	"AND ($2::bigint = 0 OR at >= $2::bigint) AND ($3::bigint = 0 OR at < $3::bigint) "
	"AND ($4::text IS NULL OR result = $4::text) "
	"AND ($5::text IS NULL OR source = $5::text) "
	"AND ($6::text IS NULL OR actor_lc = $6::text OR end_user_lc = $6::text) "
	"AND ($7::text IS NULL OR computer_lc = $7::text) "
	"ORDER BY seq LIMIT $8::bigint" };

/* A page of the report (store_audit_page), newest first by (at, seq), led
 * by the index of one filter as in the SQLite store (sqlite/audit.c says
 * why): $1 and $2 bound at (inclusive), $3 to $6 are result, source, user
 * and computer (folded; NULL for any), $7 and $8 the cursor record's at and
 * seq, $9 the page's length. */
#define PAGE_FILTERS "at >= $1::bigint AND at <= $2::bigint " \
	"AND ($3::text IS NULL OR result = $3::text) " \
	"AND ($4::text IS NULL OR source = $4::text) " \
	"AND ($5::text IS NULL OR actor_lc = $5::text OR end_user_lc = $5::text) " \
	"AND ($6::text IS NULL OR computer_lc = $6::text) "
#define PAGE_OLDER "AND (at < $7::bigint OR seq < $8::bigint) " \
	"ORDER BY at DESC, seq DESC LIMIT $9::bigint"
#define PAGE_NEWER "AND (at > $7::bigint OR seq > $8::bigint) " \
	"ORDER BY at, seq LIMIT $9::bigint"
#define PAGE(lead, dir) "SELECT " AUDIT_COLS " FROM audit WHERE " lead PAGE_FILTERS dir
#define PAGE_USER(dir, order) "SELECT * FROM (" PAGE("actor_lc = $5::text AND ", dir) \
	") a UNION ALL SELECT * FROM (" \
	PAGE("end_user_lc = $5::text AND actor_lc <> $5::text AND ", dir) ") b " \
	"ORDER BY " order " LIMIT $9::bigint"
static const struct pg_query q_audit_cursor = {
	"SELECT at FROM audit WHERE seq = $1::bigint" };
static const struct pg_query q_audit_page[2][6] = {
	{ { PAGE("", PAGE_OLDER) },
	  { PAGE("computer_lc = $6::text AND ", PAGE_OLDER) },
	  { PAGE_USER(PAGE_OLDER, "at DESC, seq DESC") },
	  { PAGE("result = $3::text AND ", PAGE_OLDER) },
	  { PAGE("source = $4::text AND ", PAGE_OLDER) },
	  { PAGE("result = $3::text AND source = $4::text AND ", PAGE_OLDER) } },
	{ { PAGE("", PAGE_NEWER) },
	  { PAGE("computer_lc = $6::text AND ", PAGE_NEWER) },
	  { PAGE_USER(PAGE_NEWER, "at, seq") },
	  { PAGE("result = $3::text AND ", PAGE_NEWER) },
	  { PAGE("source = $4::text AND ", PAGE_NEWER) },
	  { PAGE("result = $3::text AND source = $4::text AND ", PAGE_NEWER) } },
};

struct last {
	int64_t seq;
	uint8_t hash[32];
	bool has_head;
	char head[STORE_AUDIT_HEAD_LEN + 1];
};

static int last_row(const PGresult *r, int i, void *arg)
{
	struct last *l = arg;

	if (!PQgetisnull(r, i, 0)) {
		l->seq = pg_i64(r, i, 0);
		pg_blob(r, i, 1, l->hash, 32);
	}
	if (!PQgetisnull(r, i, 2)) {
		l->has_head = true;
		pg_copy(r, i, 2, l->head, sizeof(l->head));
	}
	return 0;
}

static int audit_append(struct store_tx *tx, struct audit_rec *a, store_audit_hash_fn hash)
{
	char head[STORE_AUDIT_HEAD_LEN];
	char *lc[3] = { pg_fold(a->actor), pg_fold(a->end_user), pg_fold(a->computer) };
	struct last l;
	int rc;

	memset(&l, 0, sizeof(l));
	if (!lc[0] || !lc[1] || !lc[2]) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	if ((rc = pg_exec(tx->c, &q_audit_lock, PG_NOARGS)) < 0 ||
	    (rc = pg_one(tx->c, &q_audit_last, PG_ARGS(PG_TEXT(STORE_AUDIT_HEAD)), last_row,
			 &l)) < 0)
		goto out;
	if ((rc = store_audit_chain(l.seq, l.hash, l.has_head ? l.head : NULL, a, hash,
				    head)) < 0)
		goto out;
	rc = pg_exec(tx->c, &q_audit_insert,
		     PG_ARGS(PG_INT(a->seq), PG_INT(a->at), PG_TEXT(a->source),
			     PG_TEXT(a->result), PG_TEXT(a->actor), PG_TEXT(a->end_user),
			     PG_TEXT(a->computer), PG_TEXT(a->device_id), PG_TEXT(a->key_id),
			     PG_TEXT(a->key_type), PG_TEXT(a->reason), PG_TEXT(a->comment),
			     PG_TEXT(a->client), PG_BLOB(a->prev_hash, 32), PG_BLOB(a->hash, 32),
			     PG_TEXT(lc[0]), PG_TEXT(lc[1]), PG_TEXT(lc[2]),
			     PG_TEXT(STORE_AUDIT_HEAD), PG_TEXT(head)));
out:
	for (int i = 0; i < 3; i++)
		free(lc[i]);
	return rc;
}

struct audit_cb {
	store_each_audit cb;
	void *arg;
};

static int audit_row(const PGresult *r, int i, void *arg)
{
	struct audit_cb *c = arg;
	struct audit_rec a;

	memset(&a, 0, sizeof(a));
	a.seq = pg_i64(r, i, 0);
	a.at = pg_i64(r, i, 1);
	a.source = pg_text(r, i, 2);
	a.result = pg_text(r, i, 3);
	a.actor = pg_text(r, i, 4);
	a.end_user = pg_text(r, i, 5);
	a.computer = pg_text(r, i, 6);
	a.device_id = pg_text(r, i, 7);
	a.key_id = pg_text(r, i, 8);
	a.key_type = pg_text(r, i, 9);
	a.reason = pg_text(r, i, 10);
	a.comment = pg_text(r, i, 11);
	a.client = pg_text(r, i, 12);
	pg_blob(r, i, 13, a.prev_hash, 32);
	pg_blob(r, i, 14, a.hash, 32);
	return c->cb(&a, c->arg);
}

static int audit_each(struct store_tx *tx, const struct audit_filter *f, store_each_audit cb,
		      void *arg)
{
	struct audit_cb c = { cb, arg };
	char *user = NULL, *computer = NULL;
	int rc;

	if ((f->user && !(user = pg_fold(f->user))) ||
	    (f->computer && !(computer = pg_fold(f->computer)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	/* LIMIT NULL is no limit: the whole trail, a row at a time. */
	rc = (f->limit > 0 ? pg_each : pg_stream)(tx->c, &q_audit_each,
		     PG_ARGS(PG_INT(f->after_seq), PG_INT(f->from), PG_INT(f->to),
			     PG_TEXT(f->result), PG_TEXT(f->source), PG_TEXT(user),
			     PG_TEXT(computer),
			     f->limit > 0 ? PG_INT(f->limit) : PG_TEXT(NULL)),
		     audit_row, &c);
out:
	free(user);
	free(computer);
	return rc;
}

static int cursor_row(const PGresult *r, int i, void *arg)
{
	*(int64_t *)arg = pg_i64(r, i, 0);
	return 0;
}

static int audit_page(struct store_tx *tx, const struct audit_filter *f, int64_t cursor,
		      bool newer, int64_t limit, store_each_audit cb, void *arg)
{
	struct audit_cb c = { cb, arg };
	char *user = NULL, *computer = NULL;
	int64_t at = newer ? INT64_MIN : INT64_MAX, seq = newer ? 0 : INT64_MAX, lo, hi;
	int lead, rc = 0;

	if (cursor > 0) {
		rc = pg_one(tx->c, &q_audit_cursor, PG_ARGS(PG_INT(cursor)), cursor_row, &at);
		if (rc == KW_ERR_NOT_FOUND)
			return 0;
		if (rc < 0)
			return rc;
		seq = cursor;
	}
	if ((f->user && !(user = pg_fold(f->user))) ||
	    (f->computer && !(computer = pg_fold(f->computer)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	lo = f->from ? f->from : INT64_MIN;
	hi = f->to ? f->to - 1 : INT64_MAX;
	if (cursor > 0 && newer && at > lo)
		lo = at;
	if (cursor > 0 && !newer && at < hi)
		hi = at;
	if (lo > hi)
		goto out;
	lead = computer ? 1 : user ? 2 : f->result && f->source ? 5 : f->result ? 3 :
		f->source ? 4 : 0;
	rc = pg_each(tx->c, &q_audit_page[newer][lead],
		     PG_ARGS(PG_INT(lo), PG_INT(hi), PG_TEXT(f->result), PG_TEXT(f->source),
			     PG_TEXT(user), PG_TEXT(computer), PG_INT(at), PG_INT(seq),
			     PG_INT(limit)),
		     audit_row, &c);
out:
	free(user);
	free(computer);
	return rc;
}

void pg_audit_ops(struct store_ops *o)
{
	o->audit_append = audit_append;
	o->audit_each = audit_each;
	o->audit_page = audit_page;
}
