/* Connections, the statement cache, error mapping and the query helpers
 * every operation of the SQLite store goes through. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/str.h"

static const struct sq_query tx_queries[] = {
	{ SQ_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE" },
	{ SQ_BEGIN, "BEGIN" },
	{ SQ_COMMIT, "COMMIT" },
	{ SQ_ROLLBACK, "ROLLBACK" },
	{ SQ_SAVEPOINT, "SAVEPOINT job" },
	{ SQ_RELEASE, "RELEASE job" },
	{ SQ_ROLLBACK_TO, "ROLLBACK TO job" },
	{ SQ_BATCH, "SAVEPOINT batch" },
	{ SQ_BATCH_RELEASE, "RELEASE batch" },
	{ SQ_BATCH_UNDO, "ROLLBACK TO batch" },
};

/* fold(text): user names compared as keywarden compares them (str_fold). */
static void sql_fold(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *in = sqlite3_value_text(argv[0]);
	char *out;

	if (!in) {
		sqlite3_result_null(ctx);
		return;
	}
	if (!(out = str_lower_dup((const char *)in))) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, out, -1, free);
}

int sq_conn_open(const char *path, bool create, struct conn **out, char *msg, size_t msglen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		(create ? SQLITE_OPEN_CREATE : 0);
	struct conn *c = calloc(1, sizeof(*c));
	char *err = NULL;
	int rc = KW_ERR_NOMEM;

	if (!c)
		goto out;
	if (sqlite3_open_v2(path, &c->db, flags, sq_vfs_name) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot open database %s: %s", path,
			 c->db ? sqlite3_errmsg(c->db) : "out of memory");
		rc = KW_ERR_STORE;
		goto out;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_create_function(c->db, "fold", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC |
				SQLITE_INNOCUOUS, NULL, sql_fold, NULL, NULL);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	/* WAL + FULL: a commit is on disk (the log fsynced) before its caller
	 * hears of it (the writer's syncs are deferred: see writer.c). */
	/* 2 KiB pages (for a new database; fixed once it exists): a check-in
	 * dirties a few index pages at random places, and every dirty page is
	 * written to the log and synced at commit. Half-size pages halve that,
	 * at the cost of deeper trees, which costs little for point lookups. */
	if (sqlite3_exec(c->db, "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; "
			 "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
			 "PRAGMA trusted_schema = OFF;", NULL, NULL, &err) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot set up database %s: %s", path,
			 err ? err : sqlite3_errmsg(c->db));
		sqlite3_free(err);
		rc = KW_ERR_STORE;
		goto out;
	}
	*out = c;
	c = NULL;   /* owned by caller */
	rc = 0;
out:
	if (c) {
		sqlite3_close(c->db);
		free(c);
	}
	return rc;
}

void sq_conn_close(struct conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < SQ_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

int64_t sq_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

/* A failure outside the writer's groups (readers, a job's statement that
 * its job undid): at most one line every FAILURE_LOG_SECONDS, with the
 * number left out, so that a failing disk does not flood the log. */
void sq_log_failure(const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int64_t last = -FAILURE_LOG_SECONDS;
	static unsigned long left_out;
	int64_t now = sq_now();
	unsigned long n = 0;
	char line[512];
	va_list ap;
	bool show;

	pthread_mutex_lock(&lock);
	show = now - last >= FAILURE_LOG_SECONDS;
	if (show) {
		last = now;
		n = left_out;
		left_out = 0;
	} else {
		left_out++;
	}
	pthread_mutex_unlock(&lock);
	if (!show)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n)
		log_error("%s (and %lu more database failures not logged)", line, n);
	else
		log_error("%s", line);
}

int sq_sys_errno(struct conn *c)
{
	return sq_vfs_name ? walvfs_errno() : sqlite3_system_errno(c->db);
}

void sq_failed(struct conn *c, const char *what)
{
	if (!c->writer) {
		sq_log_failure("database: %s: %s", what, sqlite3_errmsg(c->db));
		return;
	}
	if (c->err)
		return;   /* the first failure of a group is its cause */
	c->err = sqlite3_extended_errcode(c->db);
	if (!c->err)
		c->err = SQLITE_ERROR;
	c->sys_errno = sq_sys_errno(c);
	snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s", what, sqlite3_errmsg(c->db));
}

int sq_map_rc(struct conn *c, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return KW_ERR_EXISTS;
		if (rc == SQLITE_CONSTRAINT_NOTNULL || rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return KW_ERR_NOT_FOUND;
		break;
	case SQLITE_NOMEM:
		return KW_ERR_NOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		/* A reader's snapshot can be taken again, and a snapshot that
		 * went stale can be begun again; the writer holds the write
		 * lock for its whole group, so for it a busy database is
		 * another program's doing and a failure (writer.c). */
		if (!c->writer || rc == SQLITE_BUSY_SNAPSHOT) {
			sq_failed(c, what);
			return KW_ERR_RETRY;
		}
		break;
	default:
		break;
	}
	sq_failed(c, what);
	return KW_ERR_STORE;
}

/* The prepared statement for q on c, reset and unbound; NULL on error. */
static sqlite3_stmt *stmt(struct conn *c, const struct sq_query *q)
{
	sqlite3_stmt *st = c->st[q->id];

	/* SQLite undoes the whole transaction on some errors (a full disk,
	 * an I/O error): a job that went on would write outside it, each
	 * statement committed alone. */
	if (c->in_job && sqlite3_get_autocommit(c->db)) {
		if (!c->err) {
			c->err = SQLITE_ABORT;
			snprintf(c->errmsg, sizeof(c->errmsg), "the transaction was undone");
		}
		return NULL;
	}
	if (!st) {
		if (sqlite3_prepare_v3(c->db, q->sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
				       NULL) != SQLITE_OK) {
			sq_failed(c, q->sql);
			return NULL;
		}
		c->st[q->id] = st;
	}
	return st;
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* The statement for q with a bound; NULL after an error in *rc. The
 * arguments are bound SQLITE_STATIC: they outlive the statement's use. */
static sqlite3_stmt *prepare(struct conn *c, const struct sq_query *q,
			     const struct sq_arg *a, size_t n, int *rc)
{
	sqlite3_stmt *st = stmt(c, q);
	int r = SQLITE_OK;

	if (!st) {
		*rc = KW_ERR_STORE;
		return NULL;
	}
	for (size_t i = 0; i < n && r == SQLITE_OK; i++) {
		int col = (int)i + 1;

		switch (a[i].type) {
		case SQ_T_INT:
			r = sqlite3_bind_int64(st, col, a[i].i);
			break;
		case SQ_T_TEXT:
			r = a[i].p ? sqlite3_bind_text(st, col, a[i].p, -1, SQLITE_STATIC) :
				sqlite3_bind_null(st, col);
			break;
		case SQ_T_BLOB:
			r = sqlite3_bind_blob64(st, col, a[i].p, a[i].n, SQLITE_STATIC);
			break;
		}
	}
	if (r != SQLITE_OK) {
		*rc = sq_map_rc(c, r, q->sql);
		if (*rc == 0)
			*rc = KW_ERR_STORE;
		stmt_done(st);
		return NULL;
	}
	return st;
}

int sq_run(struct conn *c, enum sq_id id)
{
	int rc = sq_exec(c, &tx_queries[id - SQ_BEGIN_IMMEDIATE], SQ_NOARGS);

	if (rc == KW_ERR_STORE)
		store_count_error();
	return rc;
}

int sq_batch_begin(struct conn *c)
{
	return sq_run(c, SQ_BATCH);
}

int sq_batch_end(struct conn *c, int rc)
{
	if (rc < 0 && sq_run(c, SQ_BATCH_UNDO) < 0)
		return KW_ERR_STORE;  /* the job cannot go on: it fails */
	if (sq_run(c, SQ_BATCH_RELEASE) < 0 && rc == 0)
		rc = KW_ERR_STORE;
	return rc;
}

int sq_exec(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = prepare(c, q, a, n, &rc)))
		return rc;
	rc = sq_map_rc(c, sqlite3_step(st), q->sql);
	stmt_done(st);
	return rc;
}

int sq_change(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n)
{
	int rc = sq_exec(c, q, a, n);

	if (rc == 0 && sqlite3_changes(c->db) == 0)
		rc = KW_ERR_NOT_FOUND;
	return rc;
}

static int rows(struct conn *c, const struct sq_query *q, const struct sq_arg *a,
		size_t n, bool one, sq_row_fn row, void *arg)
{
	sqlite3_stmt *st;
	int rc, r = 0;
	bool any = false;

	if (!(st = prepare(c, q, a, n, &rc)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		any = true;
		if ((r = row(st, arg)) != 0)
			break;
	}
	if (r == 0) {
		r = sq_map_rc(c, rc, q->sql);
		if (r == 0 && one && !any)
			r = KW_ERR_NOT_FOUND;
	}
	stmt_done(st);
	return r;
}

int sq_each(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n,
	    sq_row_fn row, void *arg)
{
	return rows(c, q, a, n, false, row, arg);
}

int sq_one(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n,
	   sq_row_fn row, void *arg)
{
	return rows(c, q, a, n, true, row, arg);
}

static int int_row(sqlite3_stmt *st, void *arg)
{
	*(int64_t *)arg = sqlite3_column_int64(st, 0);
	return 1;   /* the first row is enough */
}

int sq_int(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n,
	   int64_t *out)
{
	int rc = sq_one(c, q, a, n, int_row, out);

	return rc == 1 ? 0 : rc;
}

int64_t sq_last_row(struct conn *c)
{
	return sqlite3_last_insert_rowid(c->db);
}

const char *sq_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

void sq_copy(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", sq_text(st, i));
}

void sq_blob(sqlite3_stmt *st, int i, void *out, size_t len)
{
	const void *b = sqlite3_column_blob(st, i);

	if (b && (size_t)sqlite3_column_bytes(st, i) == len)
		memcpy(out, b, len);
	else
		memset(out, 0, len);
}
