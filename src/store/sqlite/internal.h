/* Internals of the SQLite store, shared by the files of src/store/sqlite/:
 *   conn.c      connections, the statement cache, error mapping and the
 *               query helpers (bind arguments, step rows into a callback)
 *   migrate.c   the schema version and how one migration is applied (the
 *               runner is the backends' shared one, store/backend.h)
 *   writer.c    write health, the log's length and checkpoints, the
 *               group-commit writer thread and the syncer thread
 *   readers.c   the pool of reader connections (store_read, store_lookup)
 *   sqlite.c    open, close and the operation table
 *   meta.c devices.c keys.c logons.c users.c audit.c limits.c
 *               the operations, by record
 * Nothing here is part of the store's interface (store.h). */
#ifndef KW_STORE_SQLITE_INTERNAL_H
#define KW_STORE_SQLITE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/walvfs.h"
#include "util/embedded.h"

#define BUSY_TIMEOUT_MS 10000
#define MAX_READERS 16       /* idle reader connections kept */
#define READER_CACHE_KIB 1024  /* page cache of each reader */
#define MAX_GROUP 512       /* write jobs committed together at most */
/* Failures outside the writer's groups are logged at most this often. */
#define FAILURE_LOG_SECONDS 10

/* Every statement any connection prepares, one slot each in struct conn.
 * The SQL sits beside the operation that runs it (struct sq_query). */
enum sq_id {
	/* conn.c: transactions */
	SQ_BEGIN_IMMEDIATE, SQ_BEGIN, SQ_COMMIT, SQ_ROLLBACK,
	SQ_SAVEPOINT, SQ_RELEASE, SQ_ROLLBACK_TO,
	SQ_BATCH, SQ_BATCH_RELEASE, SQ_BATCH_UNDO,
	/* meta.c */
	SQ_META_GET, SQ_META_SET,
	SQ_TOKEN_INSERT, SQ_TOKEN_GET, SQ_TOKEN_USE, SQ_TOKEN_REVOKE, SQ_TOKEN_EACH,
	/* devices.c */
	SQ_DEVICE_INSERT, SQ_DEVICE_GET, SQ_DEVICE_BY_SECRET, SQ_DEVICE_ROW,
	SQ_DEVICE_CHECKED_IN, SQ_DEVICE_REVOKE, SQ_DEVICE_EACH, SQ_DEVICE_EACH_LIMIT,
	SQ_VOLUME_GET, SQ_VOLUME_INSERT, SQ_VOLUME_UPDATE, SQ_VOLUME_EACH,
	SQ_DEVICE_CURSOR, SQ_DEVICE_EACH_VOLUMES,
	/* keys.c */
	SQ_KEY_GET, SQ_KEY_INSERT, SQ_KEY_SET_STATE, SQ_KEY_SET_SEALED,
	SQ_KEY_VOLUME_DEVICE, SQ_KEY_EACH_VOLUME, SQ_KEY_EACH_DEVICE,
	SQ_KEY_EACH_DEVICE_DISCLOSED, SQ_KEY_EACH_PAGE,
	SQ_KEY_EACH_FULL, SQ_KEY_EACH_ENTITLED, SQ_KEY_EACH_PREFIX, SQ_KEY_COUNT,
	SQ_KEY_EACH_DISCLOSED_AT, SQ_KEY_EACH_STATE, SQ_KEY_IMPORT,
	/* logons.c */
	SQ_LOGON_UPSERT, SQ_LOGON_EACH_DEVICE, SQ_ASSOC_ADD, SQ_ASSOC_EACH_DEVICE,
	/* users.c */
	SQ_USER_INSERT, SQ_USER_GET, SQ_USER_UPDATE, SQ_USER_EACH,
	SQ_SESSION_INSERT, SQ_SESSION_GET, SQ_SESSION_TOUCH, SQ_SESSION_DELETE,
	SQ_SESSION_PURGE, SQ_SESSION_DELETE_USER,
	/* audit.c */
	SQ_AUDIT_LAST, SQ_AUDIT_INSERT, SQ_AUDIT_EACH, SQ_AUDIT_CURSOR,
	SQ_AUDIT_PAGE_OLDER, SQ_AUDIT_PAGE_OLDER_COMPUTER, SQ_AUDIT_PAGE_OLDER_USER,
	SQ_AUDIT_PAGE_OLDER_RESULT, SQ_AUDIT_PAGE_OLDER_SOURCE, SQ_AUDIT_PAGE_OLDER_BOTH,
	SQ_AUDIT_PAGE_NEWER, SQ_AUDIT_PAGE_NEWER_COMPUTER, SQ_AUDIT_PAGE_NEWER_USER,
	SQ_AUDIT_PAGE_NEWER_RESULT, SQ_AUDIT_PAGE_NEWER_SOURCE, SQ_AUDIT_PAGE_NEWER_BOTH,
	SQ_AUDIT_PAGE_OLDER_PLAIN, SQ_AUDIT_PAGE_NEWER_PLAIN,
	/* limits.c */
	SQ_LIMIT_PRUNE, SQ_LIMIT_NTH, SQ_LIMIT_INSERT, SQ_LIMIT_GIVE_BACK, SQ_LIMIT_CLEAR,
	SQ_LIMIT_PURGE,
	/* copy.c */
	SQ_COPY_COUNT, SQ_COPY_META_EACH, SQ_COPY_DEVICE_PAGE, SQ_COPY_DEVICE_INSERT,
	SQ_COPY_VOLUME_PAGE, SQ_COPY_VOLUME_INSERT, SQ_COPY_KEY_INSERT, SQ_COPY_TOKEN_INSERT,
	SQ_COPY_USER_INSERT, SQ_COPY_AUDIT_INSERT,
	SQ_COUNT
};

/* A statement: its slot and its SQL. */
struct sq_query {
	enum sq_id id;
	const char *sql;
};

/* An argument bound to ?1, ?2, … in order: SQ_INT(v), SQ_TEXT(s) (NULL
 * binds NULL), SQ_BLOB(p, n). Passed as SQ_ARGS(a, b, …) or SQ_NOARGS. */
enum sq_type { SQ_T_INT, SQ_T_TEXT, SQ_T_BLOB };
struct sq_arg {
	enum sq_type type;
	int64_t i;
	const void *p;
	size_t n;
};
#define SQ_INT(v) ((struct sq_arg){ SQ_T_INT, (int64_t)(v), NULL, 0 })
#define SQ_TEXT(s) ((struct sq_arg){ SQ_T_TEXT, 0, (s), 0 })
#define SQ_BLOB(b, len) ((struct sq_arg){ SQ_T_BLOB, 0, (b), (len) })
#define SQ_ARGS(...) (const struct sq_arg[]){ __VA_ARGS__ }, \
	sizeof((const struct sq_arg[]){ __VA_ARGS__ }) / sizeof(struct sq_arg)
#define SQ_NOARGS NULL, 0

/* Reads the current row of st; a non-zero return stops the rows and is
 * returned by sq_each/sq_one. */
typedef int (*sq_row_fn)(sqlite3_stmt *st, void *arg);

struct conn {
	sqlite3 *db;
	sqlite3_stmt *st[SQ_COUNT];
	struct conn *next;         /* free list of readers */
	/* The writer's failures are judged once per group (writer_main), not
	 * logged per statement: its first failed statement is kept here. */
	bool writer;
	bool in_job;               /* a job's fn runs: it needs the transaction */
	int err;                   /* extended result code; 0 = none */
	int sys_errno;
	char errmsg[160];
	/* A reader's view of the search file (find.c): the generation it
	 * attached, and whether "find" is attached and has its table. */
	unsigned find_gen;
	bool find_ok;
};

struct job {
	store_fn fn;
	void *arg;
	int rc;
	store_done_fn done;        /* called by the syncer after the commit */
	void *done_arg;
	bool owned;                /* allocated by write_async: freed after done */
	struct job *next;
};

struct store {
	struct store_base base;
	char *path;

	struct conn *writer;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;       /* writer: jobs queued or stopping */
	struct job *head, *tail;
	bool stopping;

	pthread_mutex_t rlock;
	struct conn *readers;      /* idle reader connections */
	int nreaders;

	/* Commits whose log sync is owed: the syncer thread syncs the log and
	 * then tells their callers, while the writer starts the next group. */
	pthread_t syncer;
	bool syncer_started;
	pthread_mutex_t slock;
	pthread_cond_t swake;
	struct job *sync_head, *sync_tail;
	bool sync_owed;            /* a group in the queue needs the sync */
	struct walvfs_log *log;    /* the writer's log, once it defers */
	bool sync_stopping;
	bool sync_failed;          /* a sync failed: no more writes (lock) */

	/* Write health (store_state), set by the writer and the syncer. */
	pthread_mutex_t hlock;
	atomic_int health;         /* enum store_state; changed under hlock */
	char reason[224];          /* (hlock) */

	/* The log's length (the writer's): */
	char *wal_path;
	int wal_frames;            /* the log's length after the last commit */
	bool wal_wrote;            /* the last COMMIT wrote to the log */
	int64_t frame_bytes;       /* a page and its frame header */
	int64_t log_frames;        /* checkpoint at this length (log_budget) */
	int64_t size_limit;        /* journal_size_limit as last set */
	int64_t budget_at;         /* when log_frames was computed (seconds) */
	int64_t checkpoint_retry_at;  /* after a failed checkpoint */
	int64_t truncate_at;       /* the last checkpoint that emptied the log */
	bool checkpoint_failing;

	/* The audit report's search file (find.c): */
	char *find_path;
	struct conn *finder;       /* the thread's connection; NULL: none */
	pthread_t finder_thread;
	bool finder_started, find_init;
	pthread_mutex_t flock;
	pthread_cond_t fwake;      /* records committed, or stopping */
	bool find_wake, find_stopping;   /* (flock) */
	bool audit_new;            /* the writer's group appended a record */
	/* Bumped each time the thread has set up a file (0: none yet, or
	 * running without): readers attach the file again when it changed. */
	_Atomic unsigned find_gen;
	/* The thread's own (no lock): the file it has open, its last seq,
	 * failures in a row, whether running without the file was logged. */
	dev_t find_dev;
	ino_t find_ino;
	int64_t find_last;
	int find_fails, find_busy;
	bool find_down;
};

struct store_tx {
	struct store_tx_base base;
	struct conn *c;
	struct store *s;
	/* The last device looked up by its public ID: a check-in names one
	 * device in every statement. Forgotten at each write job. */
	char dev_uid[STORE_ID_LEN + 1];
	int64_t dev_row;
};

/* The operation table (sqlite.c) and the VFS the connections use (walvfs,
 * or NULL for SQLite's default). */
extern const struct store_ops *sq_ops;
extern const char *sq_vfs_name;

/* ---- conn.c ---- */

/* Opens a connection with keywarden's settings (WAL, synchronous=FULL,
 * foreign keys, fold()); on failure msg says why. */
int sq_conn_open(const char *path, bool create, struct conn **out, char *msg, size_t msglen);
void sq_conn_close(struct conn *c);

/* Monotonic seconds. */
int64_t sq_now(void);

/* Logs a failure outside the writer's groups at most once every
 * FAILURE_LOG_SECONDS, counting the ones left out. */
void sq_log_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The errno behind the connection's last failure, if it was a system call. */
int sq_sys_errno(struct conn *c);

/* Maps a result code of statement what: 0 for success, KW_ERR_EXISTS for
 * a unique key, KW_ERR_NOT_FOUND for a missing reference, KW_ERR_NOMEM,
 * KW_ERR_RETRY for a busy database where running the transaction again
 * helps (a reader); anything else is noted (sq_failed) and KW_ERR_STORE. */
int sq_map_rc(struct conn *c, int rc, const char *what);

/* A failure of statement what: kept as the writer's group's cause, or
 * logged (sq_log_failure) for a reader. Not counted here: store.c counts
 * the operations that fail, sq_run the transactions. */
void sq_failed(struct conn *c, const char *what);

/* Runs a transaction statement (SQ_BEGIN, …); a failure is counted. */
int sq_run(struct conn *c, enum sq_id id);

/* A batch of statements that must be all or nothing (the *_many
 * operations): sq_batch_begin, the statements, then sq_batch_end with
 * their result, which undoes them on an error and returns it. */
int sq_batch_begin(struct conn *c);
int sq_batch_end(struct conn *c, int rc);

/* Runs q, which returns no rows: 0 or an error (sq_map_rc). */
int sq_exec(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n);

/* sq_exec for an UPDATE or DELETE of one named row: KW_ERR_NOT_FOUND when
 * it changed no row. */
int sq_change(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n);

/* Runs q and hands each row to row(st, arg): 0 after the last row, or the
 * first non-zero value row returned, or an error. */
int sq_each(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n,
	    sq_row_fn row, void *arg);

/* sq_each for a lookup of one row: KW_ERR_NOT_FOUND when there is none. */
int sq_one(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n,
	   sq_row_fn row, void *arg);

/* The first column of q's first row as an integer; KW_ERR_NOT_FOUND when
 * there is no row. */
int sq_int(struct conn *c, const struct sq_query *q, const struct sq_arg *a, size_t n,
	   int64_t *out);

/* The row ID of the row the connection inserted last. */
int64_t sq_last_row(struct conn *c);

/* Column readers: text never NULL (""), copies cut to outlen, a blob of
 * exactly len bytes copied (else out is zeroed). */
const char *sq_text(sqlite3_stmt *st, int i);
void sq_copy(sqlite3_stmt *st, int i, char *out, size_t outlen);
void sq_blob(sqlite3_stmt *st, int i, void *out, size_t len);

/* ---- migrate.c ---- */

/* migrations/sqlite/, embedded by tools/embed.py. */
extern const struct embedded_file migrations_sqlite[];

int sq_schema_version(struct conn *c, int *v);
int sq_migrate(struct store *s, int *from, int *to, char *msg, size_t msglen);

/* ---- writer.c ---- */

/* Sets up the log's length before the writer starts, emptying a log file
 * left longer than that. */
void sq_log_open(struct store *s);
/* sqlite3_wal_hook of the writer's connection (arg: the store). */
int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames);
void *sq_writer_main(void *s);
void *sq_syncer_main(void *s);
int sq_write(struct store *s, store_fn fn, void *arg);
int sq_write_async(struct store *s, store_fn fn, void *arg, store_done_fn done,
		   void *done_arg);
enum store_state sq_state(struct store *s, char *reason, size_t reasonlen);

/* ---- find.c: the audit report's search file ---- */

/* DATABASE-find for the database at path (malloc'd), NULL without memory. */
char *sq_find_path(const char *path);
/* Attaches file to db as name: 0 or KW_ERR_STORE. */
int sq_find_attach(sqlite3 *db, const char *file, const char *name);
/* Starts the search file's thread, which opens the file beside s->path
 * (made if missing; deleted and made again if it does not match the
 * database, is not a database or cannot be set up; without it, logged and
 * counted, it tries again later). A bad file never fails this: only
 * memory or a thread that cannot start; then msg says why and
 * sq_find_close cleans up. */
int sq_find_open(struct store *s, char *msg, size_t msglen);
/* Attaches the search file to reader c as "find" if the thread has set
 * one up since c last looked (c->find_ok says whether it is there); the
 * audit report reads the audit table alone on a reader without it. */
void sq_find_reader(struct store *s, struct conn *c);
/* Records were committed: the thread copies them after its pause. */
void sq_find_wake(struct store *s);
/* Stops the thread and closes the file (any state sq_find_open left). */
void sq_find_close(struct store *s);

/* ---- backup.c ---- */

/* store_backup (store.h). */
int sq_backup(struct store *s, const char *file, char *msg, size_t msglen);

/* ---- readers.c ---- */

int sq_read(struct store *s, store_fn fn, void *arg);
int sq_lookup(struct store *s, store_fn fn, void *arg);
/* Closes the idle readers (at close). */
void sq_readers_close(struct store *s);

/* ---- the operations: each file fills in its part of the table ---- */

void sq_meta_ops(struct store_ops *o);
void sq_device_ops(struct store_ops *o);
void sq_key_ops(struct store_ops *o);
void sq_logon_ops(struct store_ops *o);
void sq_user_ops(struct store_ops *o);
void sq_audit_ops(struct store_ops *o);
void sq_limit_ops(struct store_ops *o);
void sq_copy_ops(struct store_ops *o);

/* devices.c, for the other records' operations: */

#define DEVICE_COLS "d.uid, d.name, d.domain, d.os, d.created_at, d.last_checkin_at, d.revoked"
#define VOLUME_COLS "v.id, v.guid, v.mount, v.type, v.protection, v.encryption, " \
	"v.percent, v.first_seen, v.last_seen"

/* Fills d from the 7 columns of DEVICE_COLS starting at i. */
void sq_device_fill(sqlite3_stmt *st, int i, struct device_rec *d);
/* Fills v from the 9 columns of VOLUME_COLS starting at i. */
void sq_volume_fill(sqlite3_stmt *st, int i, struct volume_rec *v);

/* The row of the device with public ID uid, remembered for the job:
 * KW_ERR_NOT_FOUND when there is none. With hash: KW_ERR_AUTH unless the
 * device has that secret hash and is not revoked (checked in the
 * statement, whatever is remembered). */
int sq_device_row(struct store_tx *tx, const char *uid, const uint8_t *hash, int64_t *row);

#endif
