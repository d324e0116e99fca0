/* Operations on the audit trail. */
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/str.h"

#define AUDIT_COLS "seq, at, source, result, actor, end_user, computer, device_id, " \
	"key_id, key_type, reason, comment, client, prev_hash, hash"

static const struct sq_query q_audit_last = { SQ_AUDIT_LAST,
	"SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1" };
/* The folded names (0003's actor_lc, …) are no longer written: the search
 * file holds them (0005, find.c). */
static const struct sq_query q_audit_insert = { SQ_AUDIT_INSERT,
	"INSERT INTO audit (" AUDIT_COLS ") VALUES "
	"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)" };
static const struct sq_query q_audit_each = { SQ_AUDIT_EACH,
	"SELECT " AUDIT_COLS " FROM audit WHERE seq > ?1 "
	"AND (?2 = 0 OR at >= ?2) AND (?3 = 0 OR at < ?3) "
	"AND (?4 IS NULL OR result = ?4) AND (?5 IS NULL OR source = ?5) "
	"AND (?6 IS NULL OR fold(actor) = fold(?6) OR fold(end_user) = fold(?6)) "
	"AND (?7 IS NULL OR fold(computer) = fold(?7)) "
	"ORDER BY seq LIMIT ?8" };

/* A page of the report (store_audit_page), newest first by (at, seq). The
 * filters are looked up in find.audit_find, the search file a thread fills
 * in batches after the commits (0005, find.c), and the records it does not
 * hold yet (those after its last seq: its pause's worth, about 200 ms,
 * while it keeps up) are read from the audit table itself and merged: a
 * page is never behind. Which statement runs
 * depends on the filters given: each leads with the index of one filter
 * (computer, user, result and source together, result, source), so that
 * the page's records are read in order from it and the time range bounds
 * the walk; the other filters are checked in the index. Without a filter
 * the audit table's own index of at (0001) serves. ?1 and ?2 are the one
 * lower and the one upper bound of at (inclusive), the time range and the
 * cursor's time combined in C: with two bounds on one side the planner
 * keeps only one, and the walk could start at the far end of the index.
 * ?7 and ?8 (the cursor record's at and seq) then only break ties within
 * the cursor's second. ?3 to ?6: result, source, user and computer
 * (folded), NULL for any. */
#define AUDIT_COLS_A "a.seq, a.at, a.source, a.result, a.actor, a.end_user, a.computer, " \
	"a.device_id, a.key_id, a.key_type, a.reason, a.comment, a.client, a.prev_hash, a.hash"
#define PAGE_FILTERS "at >= ?1 AND at <= ?2 AND (?3 IS NULL OR result = ?3) " \
	"AND (?4 IS NULL OR source = ?4) " \
	"AND (?5 IS NULL OR actor_lc = ?5 OR end_user_lc = ?5) " \
	"AND (?6 IS NULL OR computer_lc = ?6) "
/* The same on the audit table's records after audit_find's last, walked by
 * seq from there (NOT INDEXED: else the planner walks the index of at for
 * the order, all of it, 250 ms at a million records). */
#define TAIL_FILTERS "at >= ?1 AND at <= ?2 AND (?3 IS NULL OR result = ?3) " \
	"AND (?4 IS NULL OR source = ?4) " \
	"AND (?5 IS NULL OR fold(actor) = ?5 OR fold(end_user) = ?5) " \
	"AND (?6 IS NULL OR fold(computer) = ?6) "
#define TAIL "seq > coalesce((SELECT max(seq) FROM find.audit_find), 0) AND "
/* The cursor's side and the order: the page before it (OLD), after it (NEW). */
#define OLD_WHERE "AND (at < ?7 OR seq < ?8) ORDER BY at DESC, seq DESC LIMIT ?9"
#define NEW_WHERE "AND (at > ?7 OR seq > ?8) ORDER BY at, seq LIMIT ?9"
#define OLD_MERGED "ORDER BY at DESC, seq DESC LIMIT ?9"
#define NEW_MERGED "ORDER BY at, seq LIMIT ?9"
#define OLD_JOINED "ORDER BY p.at DESC, p.seq DESC"
#define NEW_JOINED "ORDER BY p.at, p.seq"
/* The seq and at of the page's records from one source. The two files'
 * snapshots are taken apart: the search file may hold records this
 * snapshot of the audit table has not got yet, which would take places of
 * the LIMIT and then drop out at the join (a short page: the report would
 * end there). */
#define FIND(lead, dir) "SELECT * FROM (SELECT seq, at FROM find.audit_find WHERE " lead \
	"seq <= (SELECT max(seq) FROM main.audit) AND " PAGE_FILTERS dir ")"
#define FROM_TAIL(dir) "SELECT * FROM (SELECT seq, at FROM audit NOT INDEXED WHERE " TAIL \
	TAIL_FILTERS dir ")"
/* The page: the newest of each source, merged, then the records read. */
#define PAGE(finds, dir, merged, joined) "SELECT " AUDIT_COLS_A " FROM (" finds \
	" UNION ALL " FROM_TAIL(dir) " " merged ") p CROSS JOIN audit a " \
	"ON a.seq = p.seq " joined
#define PAGE_LEAD(lead, d) PAGE(FIND(lead, d##_WHERE), d##_WHERE, d##_MERGED, d##_JOINED)
/* The user is the actor or the end user: the newest of each, through its
 * own index (a record of a user's own request is in the first). */
#define PAGE_USER(d) PAGE(FIND("actor_lc = ?5 AND ", d##_WHERE) " UNION ALL " \
	FIND("end_user_lc = ?5 AND actor_lc <> ?5 AND ", d##_WHERE), d##_WHERE, d##_MERGED, \
	d##_JOINED)
#define PAGE_ALL(d) "SELECT " AUDIT_COLS " FROM audit WHERE at >= ?1 AND at <= ?2 " d##_WHERE
/* d: OLD or NEW (the page before or after the cursor). */
#define PAGES(d, name) \
	{ { SQ_AUDIT_PAGE_##name, PAGE_ALL(d) }, \
	  { SQ_AUDIT_PAGE_##name##_COMPUTER, PAGE_LEAD("computer_lc = ?6 AND ", d) }, \
	  { SQ_AUDIT_PAGE_##name##_USER, PAGE_USER(d) }, \
	  { SQ_AUDIT_PAGE_##name##_RESULT, PAGE_LEAD("result = ?3 AND ", d) }, \
	  { SQ_AUDIT_PAGE_##name##_SOURCE, PAGE_LEAD("source = ?4 AND ", d) }, \
	  { SQ_AUDIT_PAGE_##name##_BOTH, PAGE_LEAD("result = ?3 AND source = ?4 AND ", d) } }
/* Without the search file (not set up yet, or it cannot be made: find.c):
 * the audit table alone, walked by its index of at, the filters checked
 * on each record. Slower, the same pages. */
#define PAGE_PLAIN(d) "SELECT " AUDIT_COLS " FROM audit WHERE " TAIL_FILTERS d##_WHERE
static const struct sq_query q_audit_plain[2] = {
	{ SQ_AUDIT_PAGE_OLDER_PLAIN, PAGE_PLAIN(OLD) },
	{ SQ_AUDIT_PAGE_NEWER_PLAIN, PAGE_PLAIN(NEW) },
};
static const struct sq_query q_audit_cursor = { SQ_AUDIT_CURSOR,
	"SELECT at FROM audit WHERE seq = ?1" };
static const struct sq_query q_audit_page[2][6] = {
	PAGES(OLD, OLDER),
	PAGES(NEW, NEWER),
};

struct last {
	int64_t seq;
	uint8_t hash[32];
};

static int last_row(sqlite3_stmt *st, void *arg)
{
	struct last *l = arg;

	l->seq = sqlite3_column_int64(st, 0);
	sq_blob(st, 1, l->hash, 32);
	return 0;
}

/* The single writer serialises appends: nothing writes between reading the
 * newest record and the head and inserting the next. */
static int audit_append(struct store_tx *tx, struct audit_rec *a, store_audit_hash_fn hash)
{
	char now[STORE_AUDIT_HEAD_LEN + 1], head[STORE_AUDIT_HEAD_LEN];
	struct last l;
	int rc;

	memset(&l, 0, sizeof(l));
	if ((rc = sq_each(tx->c, &q_audit_last, SQ_NOARGS, last_row, &l)) < 0)
		return rc;
	rc = sq_ops->meta_get(tx, STORE_AUDIT_HEAD, now, sizeof(now));
	if (rc < 0 && rc != KW_ERR_NOT_FOUND)
		return rc;
	if ((rc = store_audit_chain(l.seq, l.hash, rc == 0 ? now : NULL, a, hash, head)) < 0)
		return rc;
	if ((rc = sq_exec(tx->c, &q_audit_insert,
			  SQ_ARGS(SQ_INT(a->seq), SQ_INT(a->at), SQ_TEXT(a->source),
				  SQ_TEXT(a->result), SQ_TEXT(a->actor), SQ_TEXT(a->end_user),
				  SQ_TEXT(a->computer), SQ_TEXT(a->device_id), SQ_TEXT(a->key_id),
				  SQ_TEXT(a->key_type), SQ_TEXT(a->reason), SQ_TEXT(a->comment),
				  SQ_TEXT(a->client), SQ_BLOB(a->prev_hash, 32),
				  SQ_BLOB(a->hash, 32)))) < 0)
		return rc;
	tx->s->audit_new = true;
	return sq_ops->meta_set(tx, STORE_AUDIT_HEAD, head);
}

struct audit_cb {
	store_each_audit cb;
	void *arg;
	int64_t rows;   /* given to cb */
	int cb_rc;      /* cb's last non-zero answer */
};

static int audit_row(sqlite3_stmt *st, void *arg)
{
	struct audit_cb *c = arg;
	struct audit_rec a;

	memset(&a, 0, sizeof(a));
	a.seq = sqlite3_column_int64(st, 0);
	a.at = sqlite3_column_int64(st, 1);
	a.source = sq_text(st, 2);
	a.result = sq_text(st, 3);
	a.actor = sq_text(st, 4);
	a.end_user = sq_text(st, 5);
	a.computer = sq_text(st, 6);
	a.device_id = sq_text(st, 7);
	a.key_id = sq_text(st, 8);
	a.key_type = sq_text(st, 9);
	a.reason = sq_text(st, 10);
	a.comment = sq_text(st, 11);
	a.client = sq_text(st, 12);
	sq_blob(st, 13, a.prev_hash, 32);
	sq_blob(st, 14, a.hash, 32);
	c->rows++;
	return c->cb_rc = c->cb(&a, c->arg);
}

static int audit_each(struct store_tx *tx, const struct audit_filter *f, store_each_audit cb,
		      void *arg)
{
	struct audit_cb c = { cb, arg, 0, 0 };

	return sq_each(tx->c, &q_audit_each,
		       SQ_ARGS(SQ_INT(f ? f->after_seq : 0), SQ_INT(f ? f->from : 0),
			       SQ_INT(f ? f->to : 0), SQ_TEXT(f ? f->result : NULL),
			       SQ_TEXT(f ? f->source : NULL), SQ_TEXT(f ? f->user : NULL),
			       SQ_TEXT(f ? f->computer : NULL),
			       SQ_INT(f && f->limit > 0 ? f->limit : -1)),
		       audit_row, &c);
}

static int cursor_row(sqlite3_stmt *st, void *arg)
{
	*(int64_t *)arg = sqlite3_column_int64(st, 0);
	return 0;
}

static int audit_page(struct store_tx *tx, const struct audit_filter *f, int64_t cursor,
		      bool newer, int64_t limit, store_each_audit cb, void *arg)
{
	struct audit_cb c = { cb, arg, 0, 0 };
	char *user = NULL, *computer = NULL;
	int64_t at = newer ? INT64_MIN : INT64_MAX, seq = newer ? 0 : INT64_MAX, lo, hi;
	int lead, rc = 0;

	if (cursor > 0) {
		rc = sq_one(tx->c, &q_audit_cursor, SQ_ARGS(SQ_INT(cursor)), cursor_row, &at);
		if (rc == KW_ERR_NOT_FOUND)
			return 0;
		if (rc < 0)
			return rc;
		seq = cursor;
	}
	if ((f->user && !(user = str_lower_dup(f->user))) ||
	    (f->computer && !(computer = str_lower_dup(f->computer)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	/* One bound each way: the range's and the cursor's, whichever is
	 * tighter. */
	lo = f->from ? f->from : INT64_MIN;
	hi = f->to ? f->to - 1 : INT64_MAX;
	if (cursor > 0 && newer && at > lo)
		lo = at;
	if (cursor > 0 && !newer && at < hi)
		hi = at;
	if (lo > hi)
		goto out;
	/* The lead index: the filter most likely to be narrow. */
	lead = computer ? 1 : user ? 2 : f->result && f->source ? 5 : f->result ? 3 :
		f->source ? 4 : 0;
	for (bool find = lead && tx->c->find_ok;; find = false) {
		rc = sq_each(tx->c, find || !lead ? &q_audit_page[newer][lead] :
			     &q_audit_plain[newer],
			     SQ_ARGS(SQ_INT(lo), SQ_INT(hi), SQ_TEXT(f->result),
				     SQ_TEXT(f->source), SQ_TEXT(user), SQ_TEXT(computer),
				     SQ_INT(at), SQ_INT(seq), SQ_INT(limit)),
			     audit_row, &c);
		if (rc >= 0 || !find || c.rows || c.cb_rc)
			break;
		/* The search file failed under this reader (broken while the
		 * server runs): the page from the audit table alone; the reader
		 * attaches the file again next time, and the thread looks at
		 * it. */
		tx->c->find_gen = 0;
		sq_find_wake(tx->s);
	}
out:
	free(user);
	free(computer);
	return rc;
}

void sq_audit_ops(struct store_ops *o)
{
	o->audit_append = audit_append;
	o->audit_each = audit_each;
	o->audit_page = audit_page;
}
