/* Internals of the PostgreSQL store, shared by the files of src/store/pgsql/:
 *   conn.c      connections (settings, reset after a failure), the pool,
 *               error mapping and the query helpers
 *   writer.c    the group-commit writer thread and write health
 *   pgsql.c     open, close, migrations, reads and the operation table
 *   meta.c devices.c keys.c logons.c users.c audit.c limits.c
 *               the operations, by record
 * Nothing here is part of the store's interface (store.h). */
#ifndef KW_STORE_PGSQL_INTERNAL_H
#define KW_STORE_PGSQL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store/store.h"
#include "util/embedded.h"

/* Reader connections per store, fixed: each is a server process, and
 * max_connections (100 by default) is shared by every instance; eight
 * readers and the writers let a dozen instances share one server. A read
 * waits for a free connection rather than opening more. */
#define PG_READERS 8
/* Writer threads, each with its connection, committing groups in turn.
 * One: two deadlocked when one device's check-ins fell into both writers'
 * groups (each group holds the row locks of all its jobs until its commit),
 * and PostgreSQL's deadlock_timeout (1 s) stalled both; measured no faster
 * than one (bench/postgres, BENCHMARKS.md). More writers need jobs routed
 * by device, or a group's locks taken in one order. */
#define PG_WRITERS 1
#define PG_MAX_GROUP 256       /* write jobs committed together at most */
/* Every statement is cancelled after this long (statement_timeout), so a
 * hung database fails a request instead of holding its thread forever;
 * doc/behaviour.md says so. A statement_timeout set already (the server's,
 * the role's, the URL's options=-c statement_timeout=…) is kept. */
#define PG_STATEMENT_TIMEOUT_MS 30000
/* Connecting gives up after this long (connect_timeout, unless the URL
 * sets its own), and so does a request sent that TCP does not
 * acknowledge (tcp_user_timeout). */
#define PG_CONNECT_TIMEOUT_S 10
#define PG_TCP_TIMEOUT_MS 30000
/* Statements prepared per connection at most (every query of the store
 * fits; more run unprepared). */
#define PG_MAX_PREPARED 128
/* Failures outside the writer's groups are logged at most this often. */
#define PG_FAILURE_LOG_SECONDS 10

/* A statement, prepared on each connection the first time it runs there
 * (the struct's address names it). $1, $2, … take the arguments. */
struct pg_query {
	const char *sql;
};

/* An argument for $1, $2, … in order: PG_INT(v), PG_TEXT(s) (NULL is
 * NULL), PG_BLOB(p, n) (bytea, sent in binary). Passed as PG_ARGS(a, b, …)
 * or PG_NOARGS. */
enum pg_type { PG_T_INT, PG_T_TEXT, PG_T_BLOB };
struct pg_arg {
	enum pg_type type;
	int64_t i;
	const void *p;
	size_t n;
};
#define PG_INT(v) ((struct pg_arg){ PG_T_INT, (int64_t)(v), NULL, 0 })
#define PG_TEXT(s) ((struct pg_arg){ PG_T_TEXT, 0, (s), 0 })
#define PG_BLOB(b, len) ((struct pg_arg){ PG_T_BLOB, 0, (b), (len) })
#define PG_ARGS(...) (const struct pg_arg[]){ __VA_ARGS__ }, \
	sizeof((const struct pg_arg[]){ __VA_ARGS__ }) / sizeof(struct pg_arg)
#define PG_NOARGS NULL, 0
#define PG_MAX_ARGS 24

/* Reads row i of r (results are binary: pg_i64, pg_text, pg_blob); a
 * non-zero return stops the rows and is returned by pg_each/pg_one. */
typedef int (*pg_row_fn)(const PGresult *r, int i, void *arg);

struct pconn {
	PGconn *pg;
	const struct pg_query *prepared[PG_MAX_PREPARED];
	int nprepared;
	bool writer;
	struct store *owner;
	struct pconn *next;        /* the pool's free list */
	/* The first failure in a writer's group: its cause for store_state. */
	bool failed;
	bool down;                 /* the failure was the connection's */
	bool serious;              /* … or the server's (timeout, no space) */
	bool warned;               /* the server sent a WARNING (notice_of) */
	int64_t timeout_ms;        /* its statement_timeout */
	char errmsg[200];
};

struct job {
	store_fn fn;
	store_batch_fn batch;      /* may run with the next jobs of its kind */
	void *arg;
	int rc;
	store_done_fn done;
	void *done_arg;
	bool owned;                /* allocated by write_async: freed after done */
	struct job *next;
};

struct store {
	struct store_base base;
	char *url;                 /* as configured: may hold a password */
	char *where;               /* user@host:port/db, for messages */
	struct pconn *migrating;   /* the connection store_schema_migrate uses */

	/* The pool of reader connections. */
	pthread_mutex_t rlock;
	pthread_cond_t rfree;
	struct pconn readers[PG_READERS];
	struct pconn *idle;

	/* The writers and their queue. */
	struct pconn writers[PG_WRITERS];
	pthread_t threads[PG_WRITERS];
	int nthreads;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *head, *tail;
	bool stopping;

	/* Write health (store_state). */
	pthread_mutex_t hlock;
	atomic_int health;
	char reason[224];
};

struct store_tx {
	struct store_tx_base base;
	struct pconn *c;
	struct store *s;
	bool write;
	/* The last device looked up by its public ID (a check-in names one
	 * device in every statement): a round trip saved each time. Forgotten
	 * at each write job. */
	char dev_uid[STORE_ID_LEN + 1];
	int64_t dev_row;
	/* The last volume written and its device's row (a key names it). */
	int64_t vol_row, vol_dev;
};

extern const struct store_ops *pg_ops;

/* ---- conn.c ---- */

/* Connects c to s's database with keywarden's settings
 * (synchronous_commit on, statement_timeout, UTF-8); on failure msg says
 * why, without the URL's password. A connection that is down is
 * connected again. */
int pg_conn_open(struct store *s, struct pconn *c, char *msg, size_t msglen);
/* Connected and answering, else connected again: 0 or
 * KW_ERR_UNAVAILABLE (msg says why). */
int pg_conn_ready(struct store *s, struct pconn *c, char *msg, size_t msglen);
void pg_conn_close(struct pconn *c);

/* The reader pool: a ready connection (waits for a free one), or
 * KW_ERR_UNAVAILABLE when the database cannot be reached. */
int pg_reader_get(struct store *s, struct pconn **out);
void pg_reader_put(struct store *s, struct pconn *c);

/* Monotonic seconds. */
int64_t pg_now(void);

void pg_log_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs sql (a COMMIT) and returns its last result (NULL when the
 * connection failed); waits at most the connection's statement_timeout,
 * then cancels it (*cancelled): statement_timeout itself does not end a
 * COMMIT's wait for a synchronous standby. */
PGresult *pg_commit(struct pconn *c, const char *sql, bool *cancelled);

/* Runs a statement without arguments or rows (BEGIN, SAVEPOINT, …): 0, or
 * the mapped error (the failure noted). */
int pg_run(struct pconn *c, const char *sql);

/* Runs q: no rows; 0 or an error: KW_ERR_RETRY for a serialization
 * failure, a deadlock or a unique key taken by a concurrent transaction
 * (every insert whose key may be taken says ON CONFLICT), KW_ERR_STORE or
 * KW_ERR_UNAVAILABLE (the connection is lost) for the rest. */
int pg_exec(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n);
/* pg_exec of an UPDATE or DELETE of one named row: KW_ERR_NOT_FOUND when
 * it changed none (also for an INSERT … ON CONFLICT DO NOTHING: see
 * pg_insert). */
int pg_change(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n);
/* pg_exec of an INSERT … ON CONFLICT DO NOTHING: KW_ERR_EXISTS when it
 * inserted no row. */
int pg_insert(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n);
/* Runs q: its result (for PQclear), or NULL with *rc the error. */
PGresult *pg_query(struct pconn *c, const struct pg_query *q, const struct pg_arg *a,
		   size_t n, int *rc);
/* Runs q and hands each row to row: 0 after the last, the first non-zero
 * value row returned, or an error. */
int pg_each(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	    pg_row_fn row, void *arg);
/* Runs first (no rows wanted: a lock), then q as pg_each, in one round
 * trip (a pipeline): q's statement starts once first's is done, so at READ
 * COMMITTED it sees what was committed before first's lock was granted. */
int pg_each_after(struct pconn *c, const struct pg_query *first, const struct pg_arg *fa,
		  size_t fn, const struct pg_query *q, const struct pg_arg *a, size_t n,
		  pg_row_fn row, void *arg);
/* pg_each for results of any size: the rows come one at a time (libpq's
 * single-row mode), so memory holds one row, not the result: exports of a
 * site with millions of keys or audit records. A little slower a row. */
int pg_stream(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	      pg_row_fn row, void *arg);
/* pg_each for one row: KW_ERR_NOT_FOUND when there is none. */
int pg_one(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	   pg_row_fn row, void *arg);
/* The first column of the first row as an integer; KW_ERR_NOT_FOUND when
 * there is no row. */
int pg_int(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	   int64_t *out);

/* Column readers of binary results: an integer of any width (0 for NULL);
 * text, never NULL (""; PostgreSQL's text holds no NUL); a copy cut to
 * outlen; a bytea of exactly len bytes (else out is zeroed); a bytea's
 * bytes and length. */
int64_t pg_i64(const PGresult *r, int i, int col);
const char *pg_text(const PGresult *r, int i, int col);
void pg_copy(const PGresult *r, int i, int col, char *out, size_t outlen);
void pg_blob(const PGresult *r, int i, int col, void *out, size_t len);
const uint8_t *pg_bytes(const PGresult *r, int i, int col, size_t *len);

/* ---- writer.c ---- */

void *pg_writer_main(void *s);
int pg_write(struct store *s, store_fn fn, void *arg);
int pg_write_async_batch(struct store *s, store_fn fn, store_batch_fn batch, void *arg,
			 store_done_fn done, void *done_arg);
int pg_write_async(struct store *s, store_fn fn, void *arg, store_done_fn done,
		   void *done_arg);
enum store_state pg_state(struct store *s, char *reason, size_t reasonlen);

/* ---- the operations ---- */

void pg_meta_ops(struct store_ops *o);
void pg_device_ops(struct store_ops *o);
void pg_key_ops(struct store_ops *o);
void pg_logon_ops(struct store_ops *o);
void pg_user_ops(struct store_ops *o);
void pg_audit_ops(struct store_ops *o);
void pg_limit_ops(struct store_ops *o);
void pg_copy_ops(struct store_ops *o);

/* devices.c, for the other records' operations: */

#define PG_DEVICE_COLS "d.uid, d.name, d.domain, d.os, d.created_at, d.last_checkin_at, " \
	"d.revoked"
/* The row of the device whose ID is $1, as a value: a query on one
 * device's records starts from it, so the plan is an index lookup of the
 * device and then of its records whatever the statistics say (a table the
 * planner believes empty, after a vacuum of rolled-back rows, had a join
 * scan a whole index for every call). */
#define PG_DEVICE_ROW "(SELECT id FROM devices WHERE uid = $1::text)"
#define PG_VOLUME_COLS "v.id, v.guid, v.mount, v.type, v.protection, v.encryption, " \
	"v.percent, v.first_seen, v.last_seen"

void pg_device_fill(const PGresult *r, int i, int col, struct device_rec *d);
void pg_volume_fill(const PGresult *r, int i, int col, struct volume_rec *v);

/* The row of the device with public ID uid: KW_ERR_NOT_FOUND when there is
 * none. With hash: KW_ERR_AUTH unless the device has that secret hash and
 * is not revoked. */
int pg_device_row(struct store_tx *tx, const char *uid, const uint8_t *hash, int64_t *row);

/* The lower-cased copy (str_fold) of s, or NULL (out of memory). */
char *pg_fold(const char *s);

#endif
