/* The SQLite store: WAL, synchronous=FULL, foreign keys, one writer thread
 * that commits concurrent write jobs in groups, and a pool of reader
 * connections for snapshots. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "core/keyid.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "store/walvfs.h"
#include "util/embedded.h"
#include "util/err.h"
#include "util/jsonwipe.h"
#include "util/log.h"
#include "util/str.h"

extern const struct embedded_file migrations_sqlite[];

#define BUSY_TIMEOUT_MS 10000
#define MAX_READERS 16       /* idle reader connections kept */
#define READER_CACHE_KIB 1024  /* page cache of each reader */
#define STR_(x) #x
#define STR(x) STR_(x)
#define MAX_GROUP 512       /* write jobs committed together at most */
/* Where there is room the writer checkpoints a log this long (100 MiB of
 * 2 KiB pages) rather than SQLite's 1000 pages: each checkpoint stalls the
 * writer for tens of milliseconds, and pages written again meanwhile are
 * copied once. Not unbounded: every page lookup searches the log's index,
 * dearer as it grows (BENCHMARKS.md). Where there is less room the log may
 * take a quarter of what it could use (the free space and its own file),
 * and never less than SQLite's default: a small volume does not fill with
 * log (log_budget). */
#define CHECKPOINT_FRAMES 50000
#define LOG_FRAMES_MIN 1000
#define LOG_SHARE 4
#define WAL_FRAME_HEADER 24
/* A checkpoint that empties the log file waits this long for readers
 * (not the usual ten seconds: the writer waits meanwhile). */
#define TRUNCATE_BUSY_MS 100
/* Failures outside the writer's groups are logged at most this often. */
#define FAILURE_LOG_SECONDS 10

enum stmt_id {
	S_BEGIN_IMMEDIATE, S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_META_GET, S_META_SET,
	S_TOKEN_INSERT, S_TOKEN_GET, S_TOKEN_USE, S_TOKEN_REVOKE, S_TOKEN_EACH,
	S_DEVICE_INSERT, S_DEVICE_GET, S_DEVICE_BY_SECRET, S_DEVICE_ROW, S_DEVICE_CHECKED_IN,
	S_DEVICE_REVOKE, S_DEVICE_EACH, S_DEVICE_EACH_LIMIT,
	S_VOLUME_GET, S_VOLUME_INSERT, S_VOLUME_UPDATE, S_VOLUME_EACH,
	S_KEY_GET, S_KEY_INSERT, S_KEY_SET_STATE, S_KEY_SET_SEALED,
	S_KEY_EACH_VOLUME, S_KEY_EACH_DEVICE, S_KEY_EACH_DEVICE_DISCLOSED,
	S_KEY_EACH_FULL, S_KEY_EACH_ENTITLED,
	S_KEY_EACH_PREFIX, S_KEY_COUNT,
	S_LOGON_UPSERT, S_LOGON_EACH_DEVICE, S_ASSOC_ADD, S_ASSOC_EACH_DEVICE,
	S_USER_INSERT, S_USER_GET, S_USER_UPDATE, S_USER_EACH,
	S_SESSION_INSERT, S_SESSION_GET, S_SESSION_TOUCH, S_SESSION_DELETE,
	S_SESSION_PURGE, S_SESSION_DELETE_USER,
	S_AUDIT_LAST, S_AUDIT_INSERT, S_AUDIT_EACH,
	S_COUNT
};

#define DEVICE_COLS "d.uid, d.name, d.domain, d.os, d.created_at, d.last_checkin_at, d.revoked"
#define VOLUME_COLS "v.id, v.guid, v.mount, v.type, v.protection, v.encryption, " \
	"v.percent, v.first_seen, v.last_seen"
#define KEY_COLS "k.id, k.key_hex, k.volume, k.state, k.sealed, k.created_at, " \
	"k.changed_at, k.disclosed_at"
#define USER_COLS "id, name, password_hash, roles, disabled, created_at"
#define AUDIT_COLS "seq, at, source, result, actor, end_user, computer, device_id, " \
	"key_id, key_type, reason, comment, client, prev_hash, hash"

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT job",
	[S_RELEASE] = "RELEASE job",
	[S_ROLLBACK_TO] = "ROLLBACK TO job",
	[S_META_GET] = "SELECT value FROM meta WHERE name = ?1",
	[S_META_SET] = "INSERT INTO meta (name, value) VALUES (?1, ?2) "
		"ON CONFLICT (name) DO UPDATE SET value = excluded.value",
	[S_TOKEN_INSERT] = "INSERT INTO enrollment_tokens (token_hash, created_at, "
		"expires_at, uses_left) VALUES (?1, ?2, ?3, ?4)",
	[S_TOKEN_GET] = "SELECT id, token_hash, created_at, expires_at, uses_left, used, "
		"revoked FROM enrollment_tokens WHERE token_hash = ?1",
	[S_TOKEN_USE] = "UPDATE enrollment_tokens SET used = used + 1, uses_left = "
		"CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END WHERE id = ?1",
	[S_TOKEN_REVOKE] = "UPDATE enrollment_tokens SET revoked = 1 WHERE id = ?1",
	[S_TOKEN_EACH] = "SELECT id, token_hash, created_at, expires_at, uses_left, used, "
		"revoked FROM enrollment_tokens ORDER BY id",
	[S_DEVICE_INSERT] = "INSERT INTO devices (uid, name, name_lc, domain, os, "
		"secret_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_DEVICE_GET] = "SELECT " DEVICE_COLS " FROM devices d WHERE d.uid = ?1",
	[S_DEVICE_BY_SECRET] = "SELECT " DEVICE_COLS " FROM devices d "
		"WHERE d.secret_hash = ?1",
	[S_DEVICE_ROW] = "SELECT id, secret_hash, revoked FROM devices WHERE uid = ?1",
	/* A device checking in again within the second writes nothing. */
	[S_DEVICE_CHECKED_IN] = "UPDATE devices SET os = ?2, last_checkin_at = ?3 "
		"WHERE id = ?1 AND (os IS NOT ?2 OR last_checkin_at IS NOT ?3)",
	[S_DEVICE_REVOKE] = "UPDATE devices SET revoked = ?2 WHERE uid = ?1",
	/* name_lc >= prefix AND < prefix || U+10FFFF keeps the index usable. */
	[S_DEVICE_EACH] = "SELECT " DEVICE_COLS " FROM devices d WHERE d.name_lc >= ?1 "
		"AND d.name_lc < ?1 || char(1114111) ORDER BY d.name_lc, d.id",
	[S_DEVICE_EACH_LIMIT] = "SELECT " DEVICE_COLS " FROM devices d WHERE d.name_lc >= ?1 "
		"AND d.name_lc < ?1 || char(1114111) ORDER BY d.name_lc, d.id LIMIT ?2",
	[S_VOLUME_GET] = "SELECT id, mount, type, protection, encryption, percent "
		"FROM volumes WHERE device = ?1 AND guid = ?2",
	[S_VOLUME_INSERT] = "INSERT INTO volumes (device, guid, mount, type, protection, "
		"encryption, percent, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, "
		"?6, ?7, ?8, ?8)",
	[S_VOLUME_UPDATE] = "UPDATE volumes SET mount = ?2, type = ?3, protection = ?4, "
		"encryption = ?5, percent = ?6, last_seen = ?7 WHERE id = ?1",
	[S_VOLUME_EACH] = "SELECT " VOLUME_COLS " FROM volumes v JOIN devices d ON "
		"d.id = v.device WHERE d.uid = ?1 ORDER BY v.mount, v.guid",
	[S_KEY_GET] = "SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN devices d ON "
		"d.id = k.device WHERE k.key_hex = ?1",
	[S_KEY_INSERT] = "INSERT INTO recovery_keys (key_hex, device, volume, state, "
		"sealed, created_at, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
	[S_KEY_SET_STATE] = "UPDATE recovery_keys SET state = ?2, changed_at = ?3, "
		"disclosed_at = CASE WHEN ?2 = 2 THEN ?3 ELSE disclosed_at END WHERE id = ?1",
	[S_KEY_SET_SEALED] = "UPDATE recovery_keys SET sealed = ?2 WHERE id = ?1",
	[S_KEY_EACH_VOLUME] = "SELECT " KEY_COLS ", d.uid FROM recovery_keys k JOIN "
		"devices d ON d.id = k.device WHERE k.volume = ?1 AND k.state IN "
		"(?2, ?3, ?4, ?5) ORDER BY k.id",
	/* Through the device's volumes: keys are indexed by volume. */
	[S_KEY_EACH_DEVICE] = "SELECT " KEY_COLS ", d.uid FROM devices d JOIN volumes v "
		"ON v.device = d.id JOIN recovery_keys k ON k.volume = v.id WHERE d.uid = ?1 "
		"AND k.state IN (?2, ?3, ?4, ?5) ORDER BY k.id",
	/* The literal state lets the partial index recovery_keys_disclosed serve. */
	[S_KEY_EACH_DEVICE_DISCLOSED] = "SELECT " KEY_COLS ", d.uid FROM recovery_keys k "
		"JOIN devices d ON d.id = k.device WHERE k.device = ?1 AND k.state = 2 "
		"ORDER BY k.id",
	[S_KEY_EACH_FULL] = "SELECT " KEY_COLS ", " DEVICE_COLS ", " VOLUME_COLS
		" FROM recovery_keys k JOIN devices d ON d.id = k.device "
		"JOIN volumes v ON v.id = k.volume ORDER BY d.name_lc, d.id, v.id, k.id",
	/* Driven by the user's own devices: the keys of everyone else are never
	 * touched, so a prefix that exists on another user's device costs the
	 * same work as one that exists nowhere (SPEC §3: no timing difference).
	 * CROSS JOIN fixes that loop order; the key ID index is not used. */
	[S_KEY_EACH_ENTITLED] = "WITH ent(device) AS ("
		"SELECT l.device FROM logons l WHERE l.type = 0 AND l.user_lc IN "
		"(SELECT value FROM json_each(?2)) UNION "
		"SELECT a.device FROM associations a WHERE a.user_lc IN "
		"(SELECT value FROM json_each(?2))) "
		"SELECT " KEY_COLS ", " DEVICE_COLS ", " VOLUME_COLS
		" FROM ent CROSS JOIN volumes v CROSS JOIN recovery_keys k "
		"CROSS JOIN devices d WHERE v.device = ent.device AND k.volume = v.id "
		"AND d.id = v.device AND ((1 << k.state) & ?3) != 0 "
		"AND k.key_hex >= ?1 AND k.key_hex < ?1 || 'G' ORDER BY k.key_hex",
	[S_KEY_EACH_PREFIX] = "SELECT " KEY_COLS ", " DEVICE_COLS ", " VOLUME_COLS
		" FROM recovery_keys k JOIN devices d ON d.id = k.device "
		"JOIN volumes v ON v.id = k.volume "
		"WHERE k.key_hex >= ?1 AND k.key_hex < ?1 || 'G' "
		"AND ((1 << k.state) & ?2) != 0 ORDER BY k.key_hex",
	[S_KEY_COUNT] = "SELECT count(*) FROM recovery_keys",
	[S_LOGON_UPSERT] = "INSERT INTO logons (device, user_lc, user, type, first_seen, "
		"last_seen) VALUES (?1, fold(?2), ?2, "
		"?3, ?4, ?5) ON CONFLICT (device, user_lc, type) DO UPDATE SET "
		"first_seen = min(first_seen, excluded.first_seen), "
		"last_seen = max(last_seen, excluded.last_seen) "
		"WHERE excluded.first_seen < first_seen OR excluded.last_seen > last_seen",
	[S_LOGON_EACH_DEVICE] = "SELECT l.user, l.type, l.first_seen, l.last_seen FROM "
		"logons l JOIN devices d ON d.id = l.device WHERE d.uid = ?1 "
		"ORDER BY l.user_lc, l.type",
	[S_ASSOC_ADD] = "INSERT INTO associations (user_lc, user, device, added_by, "
		"created_at) VALUES (fold(?1), ?1, (SELECT id FROM devices WHERE uid = ?2), "
		"?3, ?4)",
	[S_ASSOC_EACH_DEVICE] = "SELECT a.user, a.added_by, a.created_at FROM "
		"associations a JOIN devices d ON d.id = a.device WHERE d.uid = ?1 "
		"ORDER BY a.user_lc",
	[S_USER_INSERT] = "INSERT INTO users (name, name_lc, password_hash, roles, "
		"disabled, created_at) VALUES (?1, fold(?1), ?2, ?3, ?4, ?5)",
	[S_USER_GET] = "SELECT " USER_COLS " FROM users WHERE name_lc = fold(?1)",
	[S_USER_UPDATE] = "UPDATE users SET password_hash = ?2, roles = ?3, "
		"disabled = ?4 WHERE name_lc = fold(?1)",
	[S_USER_EACH] = "SELECT " USER_COLS " FROM users ORDER BY name_lc",
	[S_SESSION_INSERT] = "INSERT INTO sessions (id_hash, user, roles, identities, "
		"csrf, notice_accepted, created_at, last_seen) VALUES "
		"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
	[S_SESSION_GET] = "SELECT id_hash, user, roles, identities, csrf, "
		"notice_accepted, created_at, last_seen FROM sessions WHERE id_hash = ?1",
	[S_SESSION_TOUCH] = "UPDATE sessions SET last_seen = max(last_seen, ?2), "
		"notice_accepted = CASE WHEN ?3 >= 0 THEN ?3 ELSE notice_accepted END "
		"WHERE id_hash = ?1",
	[S_SESSION_DELETE] = "DELETE FROM sessions WHERE id_hash = ?1",
	[S_SESSION_PURGE] = "DELETE FROM sessions WHERE last_seen < ?1 OR created_at < ?2",
	[S_SESSION_DELETE_USER] = "DELETE FROM sessions WHERE fold(user) = fold(?1)",
	[S_AUDIT_LAST] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
	[S_AUDIT_INSERT] = "INSERT INTO audit (" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, "
		"?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	[S_AUDIT_EACH] = "SELECT " AUDIT_COLS " FROM audit WHERE seq > ?1 "
		"AND (?2 = 0 OR at >= ?2) AND (?3 = 0 OR at < ?3) "
		"AND (?4 IS NULL OR result = ?4) AND (?5 IS NULL OR source = ?5) "
		"AND (?6 IS NULL OR fold(actor) = fold(?6) OR fold(end_user) = fold(?6)) "
		"AND (?7 IS NULL OR fold(computer) = fold(?7)) "
		"ORDER BY seq LIMIT ?8",
};

struct conn {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	struct conn *next;         /* free list of readers */
	/* The writer's failures are judged once per group (writer_main), not
	 * logged per statement: its first failed statement is kept here. */
	bool writer;
	bool in_job;               /* a job's fn runs: it needs the transaction */
	int err;                   /* extended result code; 0 = none */
	int sys_errno;
	char errmsg[160];
};

struct job {
	store_fn fn;
	void *arg;
	int rc;
	store_done_fn done;        /* called by the writer after the commit */
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

static const struct store_ops sqlite_ops;
static const char *vfs_name;  /* walvfs, or NULL for SQLite's default */

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

static int conn_open(const char *path, bool create, struct conn **out,
		     char *msg, size_t msglen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		(create ? SQLITE_OPEN_CREATE : 0);
	struct conn *c = calloc(1, sizeof(*c));
	char *err = NULL;
	int rc = KW_ERR_NOMEM;

	if (!c)
		goto out;
	if (sqlite3_open_v2(path, &c->db, flags, vfs_name) != SQLITE_OK) {
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
	 * hears of it (the writer's syncs are deferred: see writer_main). */
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
	c = NULL;
	rc = 0;
out:
	if (c) {
		sqlite3_close(c->db);
		free(c);
	}
	return rc;
}

static void conn_close(struct conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

static int64_t now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

/* A failure outside the writer's groups (readers, a job's statement that
 * its job undid): at most one line every FAILURE_LOG_SECONDS, with the
 * number left out, so that a failing disk does not flood the log. */
__attribute__((format(printf, 1, 2)))
static void log_failure(const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int64_t last = -FAILURE_LOG_SECONDS;
	static unsigned long left_out;
	int64_t now = now_seconds();
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

/* The errno behind the connection's last failure, if it was a system call. */
static int sys_errno(struct conn *c)
{
	return vfs_name ? walvfs_errno() : sqlite3_system_errno(c->db);
}

static void store_failed(struct conn *c, const char *what)
{
	store_count_error();
	if (!c->writer) {
		log_failure("database: %s: %s", what, sqlite3_errmsg(c->db));
		return;
	}
	if (c->err)
		return;   /* the first failure of a group is its cause */
	c->err = sqlite3_extended_errcode(c->db);
	if (!c->err)
		c->err = SQLITE_ERROR;
	c->sys_errno = sys_errno(c);
	snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s", what, sqlite3_errmsg(c->db));
}

/* The prepared statement id on c, reset and unbound; NULL on error. */
static sqlite3_stmt *stmt(struct conn *c, enum stmt_id id)
{
	sqlite3_stmt *st = c->st[id];

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
		if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1,
				       SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
			store_failed(c, stmt_sql[id]);
			return NULL;
		}
		c->st[id] = st;
	}
	return st;
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int map_rc(struct conn *c, int rc, const char *what)
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
	default:
		break;
	}
	store_failed(c, what);
	return KW_ERR_STORE;
}

/* Runs a statement that returns no rows. */
static int exec_stmt(struct conn *c, sqlite3_stmt *st, enum stmt_id id)
{
	int rc = sqlite3_step(st);

	rc = map_rc(c, rc, stmt_sql[id]);
	stmt_done(st);
	return rc;
}

static int run(struct conn *c, enum stmt_id id)
{
	sqlite3_stmt *st = stmt(c, id);

	return st ? exec_stmt(c, st, id) : KW_ERR_STORE;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", col_text(st, i));
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Rows of st are read by fill(st, rec), handed to cb; a single-row lookup
 * with no row is KW_ERR_NOT_FOUND. */
typedef void (*any_fn)(void);
typedef int (*row_fn)(sqlite3_stmt *st, any_fn cb, void *arg);

static int each_row(struct conn *c, sqlite3_stmt *st, enum stmt_id id, bool one,
		    row_fn row, any_fn cb, void *arg)
{
	int rc, r = 0;
	bool any = false;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		any = true;
		if ((r = row(st, cb, arg)) != 0)
			break;
	}
	if (r == 0) {
		r = map_rc(c, rc, stmt_sql[id]);
		if (r == 0 && one && !any)
			r = KW_ERR_NOT_FOUND;
	}
	stmt_done(st);
	return r;
}

/* ---- migrations ---- */

static int schema_version(struct conn *c, int *v)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return map_rc(c, SQLITE_ERROR, "PRAGMA user_version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : map_rc(c, rc, "PRAGMA user_version");
}

static int latest_version(void)
{
	int v = 0;

	for (const struct embedded_file *f = migrations_sqlite; f->name; f++) {
		int n = (int)strtol(f->name, NULL, 10);

		if (n > v)
			v = n;
	}
	return v;
}

static int sqlite_migrate(struct store *s, int *from, int *to, char *msg, size_t msglen)
{
	struct conn *c = s->writer;
	int cur = 0, latest = latest_version(), rc;
	char *err = NULL;

	if ((rc = schema_version(c, &cur)) < 0) {
		snprintf(msg, msglen, "cannot read the schema version of %s", s->path);
		return rc;
	}
	*from = cur;
	*to = cur;
	if (cur > latest) {
		snprintf(msg, msglen, "database %s has schema version %d, newer than "
			 "this keywarden (%d); run a newer keywarden", s->path, cur, latest);
		return KW_ERR_SCHEMA;
	}
	for (int v = cur + 1; v <= latest; v++) {
		const struct embedded_file *f = NULL;
		char pragma[64];

		for (const struct embedded_file *m = migrations_sqlite; m->name; m++)
			if ((int)strtol(m->name, NULL, 10) == v)
				f = m;
		if (!f) {
			snprintf(msg, msglen, "migration %d is missing", v);
			return KW_ERR_INTERNAL;
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d;", v);
		if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK ||
		    sqlite3_exec(c->db, (const char *)f->data, NULL, NULL, &err) != SQLITE_OK ||
		    sqlite3_exec(c->db, pragma, NULL, NULL, &err) != SQLITE_OK ||
		    sqlite3_exec(c->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
			snprintf(msg, msglen, "migration %s failed: %s", f->name,
				 err ? err : sqlite3_errmsg(c->db));
			sqlite3_free(err);
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			return KW_ERR_STORE;
		}
		*to = v;
	}
	return 0;
}

/* ---- write health ---- */

/* Why the writer failed, for operators: its first failed statement in the
 * group, else the connection's last error. True if the disk is full. */
static bool failure_cause(struct conn *c, char *out, size_t outlen)
{
	int err = c->err ? c->err : sqlite3_extended_errcode(c->db);
	int sys = c->err ? c->sys_errno : sys_errno(c);

	switch (err & 0xff) {
	case SQLITE_FULL:
		snprintf(out, outlen, "the disk is full");
		return true;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		if (sys == ENOSPC || sys == EDQUOT) {
			snprintf(out, outlen, "the disk is full");
			return true;
		}
		snprintf(out, outlen, "a disk write failed (%s)",
			 sys ? strerror(sys) : sqlite3_errstr(err));
		break;
	case SQLITE_READONLY:
		snprintf(out, outlen, "the database file cannot be written (read-only)");
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		snprintf(out, outlen, "another program holds the database's write lock");
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		snprintf(out, outlen, "the database file is damaged");
		break;
	default:
		snprintf(out, outlen, "%s", c->err ? c->errmsg : sqlite3_errmsg(c->db));
		break;
	}
	return false;
}

/* Sets the write health; a change of state is logged once (a failing disk
 * fails every write, and one line says so). STORE_RESTART_NEEDED is final. */
static void health_set(struct store *s, enum store_state state, const char *reason)
{
	enum store_state was;

	pthread_mutex_lock(&s->hlock);
	was = (enum store_state)atomic_load(&s->health);
	if (was != STORE_RESTART_NEEDED) {
		atomic_store(&s->health, (int)state);
		snprintf(s->reason, sizeof(s->reason), "%s", reason);
	}
	pthread_mutex_unlock(&s->hlock);
	if (was == state || was == STORE_RESTART_NEEDED)
		return;
	store_note_state(state);
	if (state == STORE_OK)
		log_info("database: writes work again");
	else if (state == STORE_WRITES_FAILING)
		log_error("database: %s; until the cause is gone, writes are answered with 503 "
			  "and nothing of them is kept; no restart is needed", reason);
	else
		log_error("database: %s: after a failed sync the kernel no longer says what "
			  "reached the disk, so every write is refused until then; reads go on",
			  reason);
}

/* A sync failed (err_no its errno): no write may be reported durable again. */
static void restart_needed(struct store *s, int err_no)
{
	char reason[224];

	pthread_mutex_lock(&s->lock);
	s->sync_failed = true;
	pthread_mutex_unlock(&s->lock);
	snprintf(reason, sizeof(reason), "a disk sync failed (%s): restart keywarden",
		 err_no ? strerror(err_no) : "I/O error");
	health_set(s, STORE_RESTART_NEEDED, reason);
}

static enum store_state sqlite_state(struct store *s, char *reason, size_t reasonlen)
{
	enum store_state state;

	pthread_mutex_lock(&s->hlock);
	state = (enum store_state)atomic_load(&s->health);
	if (reason && reasonlen)
		snprintf(reason, reasonlen, "%s", state == STORE_OK ? "writes work" : s->reason);
	pthread_mutex_unlock(&s->hlock);
	return state;
}

/* ---- the log's length ---- */

/* How long the log may grow before the writer checkpoints: CHECKPOINT_FRAMES
 * where there is room, else a quarter of the space the log could use (the
 * free space and its own file). The file is cut back to about that length
 * when the log starts over after a checkpoint (journal_size_limit). Worked
 * out at most once a second. */
static void log_budget(struct store *s, int64_t now)
{
	struct statvfs vfs;
	struct stat st;
	int64_t room, frames, limit;
	char pragma[64];

	if (now == s->budget_at)
		return;
	s->budget_at = now;
	if (statvfs(s->path, &vfs) != 0)
		return;
	room = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
	if (stat(s->wal_path, &st) == 0)
		room += (int64_t)st.st_size;
	frames = room / LOG_SHARE / s->frame_bytes;
	if (frames > CHECKPOINT_FRAMES)
		frames = CHECKPOINT_FRAMES;
	if (frames < LOG_FRAMES_MIN)
		frames = LOG_FRAMES_MIN;
	s->log_frames = frames;
	/* A quarter more than the checkpoint length: the file is not cut and
	 * grown again by the group that crossed it. A number, not input. */
	limit = frames * s->frame_bytes / 4 * 5;
	if (limit != s->size_limit) {
		snprintf(pragma, sizeof(pragma), "PRAGMA journal_size_limit = %lld",
			 (long long)limit);
		if (sqlite3_exec(s->writer->db, pragma, NULL, NULL, NULL) == SQLITE_OK)
			s->size_limit = limit;
	}
}

/* After a checkpoint: a failure is logged once until one works again, and
 * retried after a second (each try copies pages). */
static void checkpoint_done(struct store *s, int rc, int64_t now)
{
	char cause[192];

	if (rc == SQLITE_OK || rc == SQLITE_BUSY) {
		if (rc == SQLITE_OK && s->checkpoint_failing) {
			s->checkpoint_failing = false;
			log_info("database: the log is copied into the database file again");
		}
		return;
	}
	if (walvfs_sync_failed(s->writer->db)) {
		restart_needed(s, sys_errno(s->writer));
		return;
	}
	store_count_error();
	s->checkpoint_retry_at = now + 1;
	if (!s->checkpoint_failing) {
		s->checkpoint_failing = true;
		s->writer->err = 0;
		failure_cause(s->writer, cause, sizeof(cause));
		log_error("database: cannot copy the log into the database file: %s; "
			  "the log grows until this works", cause);
	}
}

/* Copies the log into the database and empties the log file, which may be
 * what fills the disk. At most once a second. */
static void truncate_log(struct store *s, int64_t now)
{
	int rc;

	if (now == s->truncate_at)
		return;
	s->truncate_at = now;
	sqlite3_busy_timeout(s->writer->db, TRUNCATE_BUSY_MS);
	rc = sqlite3_wal_checkpoint_v2(s->writer->db, "main", SQLITE_CHECKPOINT_TRUNCATE,
				       NULL, NULL);
	sqlite3_busy_timeout(s->writer->db, BUSY_TIMEOUT_MS);
	checkpoint_done(s, rc, now);
}

/* Before the writer starts: the log's length, and a log file longer than
 * that (left by a crash, or by a checkpoint the disk was too full for)
 * emptied, so that a restart gives the space back. */
static void log_open(struct store *s)
{
	struct stat st;
	sqlite3_stmt *q;

	s->frame_bytes = 2048 + WAL_FRAME_HEADER;
	if (sqlite3_prepare_v2(s->writer->db, "PRAGMA page_size", -1, &q, NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) > 0)
			s->frame_bytes = sqlite3_column_int(q, 0) + WAL_FRAME_HEADER;
		sqlite3_finalize(q);
	}
	s->size_limit = -1;
	s->budget_at = -1;
	s->truncate_at = -1;
	log_budget(s, now_seconds());
	if (s->size_limit >= 0 && stat(s->wal_path, &st) == 0 && st.st_size > s->size_limit)
		truncate_log(s, now_seconds());
}

/* ---- the writer thread: group commit ---- */

/* Runs a group of jobs in one transaction. Returns 0 once it committed
 * (*owed: its log sync is owed, see walvfs.h; *wrote: it wrote to the log)
 * or the failure that undid the whole group (each job's rc < 0). */
static int run_group(struct store *s, struct job *jobs, bool *owed, bool *wrote)
{
	struct store_tx tx = { .base = { &sqlite_ops }, .c = s->writer, .s = s };
	struct conn *c = s->writer;
	struct walvfs_log *log;
	int rc;

	*owed = *wrote = false;
	c->err = 0;
	rc = run(c, S_BEGIN_IMMEDIATE);
	for (struct job *j = jobs; j; j = j->next) {
		if (rc < 0) {
			j->rc = rc;
			continue;
		}
		if ((j->rc = run(c, S_SAVEPOINT)) < 0)
			continue;
		tx.dev_uid[0] = '\0';
		c->in_job = true;
		j->rc = j->fn(&tx, j->arg);
		c->in_job = false;
		if (j->rc < 0 && run(c, S_ROLLBACK_TO) < 0)
			rc = KW_ERR_STORE;  /* cannot undo: fail the group */
		if (run(c, S_RELEASE) < 0)
			rc = KW_ERR_STORE;
		if (rc == 0 && c->err) {
			/* This job's statement failed and the job was undone. */
			log_failure("database: %s", c->errmsg);
			c->err = 0;
		}
	}
	if (rc == 0) {
		/* The log exists once the transaction has begun. */
		log = walvfs_log(c->db);
		if (log && walvfs_defer(log, true) && !s->log) {
			pthread_mutex_lock(&s->slock);
			s->log = log;   /* for the syncer; open as long as the writer */
			pthread_mutex_unlock(&s->slock);
		}
		s->wal_wrote = false;
		rc = run(c, S_COMMIT);
		if (log) {
			walvfs_defer(log, false);
			*owed = walvfs_owed(log) && rc == 0;
		}
		*wrote = rc == 0 && s->wal_wrote;
	}
	if (rc < 0) {
		if (!sqlite3_get_autocommit(c->db))
			run(c, S_ROLLBACK);
		/* Log frames a failed write lost belonged to the transaction just
		 * undone: the log may be written again. */
		if (sqlite3_get_autocommit(c->db) && (log = walvfs_log(c->db)))
			walvfs_rolled_back(log);
		for (struct job *j = jobs; j; j = j->next)
			if (j->rc >= 0)
				j->rc = KW_ERR_STORE;
	}
	return rc;
}

/* The write health after a group: one that wrote to the log shows that
 * writes work (a group that changed nothing shows nothing); one that failed
 * says why. A full disk may be the log's own file: empty it. */
static void group_health(struct store *s, int rc, bool wrote, int64_t now)
{
	char cause[192], reason[224];
	bool full;

	if (rc == 0) {
		if (wrote && atomic_load(&s->health) != STORE_OK)
			health_set(s, STORE_OK, "");
		return;
	}
	if (walvfs_sync_failed(s->writer->db)) {
		restart_needed(s, s->writer->err ? s->writer->sys_errno : 0);
		return;
	}
	full = failure_cause(s->writer, cause, sizeof(cause));
	snprintf(reason, sizeof(reason), "writes are failing: %s", cause);
	health_set(s, STORE_WRITES_FAILING, reason);
	if (full)
		truncate_log(s, now);
}

/* Tells each caller alone: no herd on one condition. */
static void jobs_done(struct job *jobs)
{
	for (struct job *j = jobs, *next; j; j = next) {
		bool owned = j->owned;

		next = j->next;
		j->done(j->rc, j->done_arg);
		if (owned)
			free(j);
	}
}

/* After each commit that wrote to the log (sqlite3_wal_hook): the writer
 * checkpoints itself, between groups, so that the checkpoint's sync of the
 * log is never one of the deferred ones. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *s = arg;

	s->wal_frames = frames;
	s->wal_wrote = true;
	return SQLITE_OK;
}

static void checkpoint(struct store *s, int64_t now)
{
	log_budget(s, now);
	if (s->wal_frames < s->log_frames || now < s->checkpoint_retry_at)
		return;
	s->wal_frames = 0;
	checkpoint_done(s, sqlite3_wal_checkpoint_v2(s->writer->db, "main",
						     SQLITE_CHECKPOINT_PASSIVE, NULL, NULL), now);
}

static void *writer_main(void *p)
{
	struct store *s = p;

	pthread_setname_np(pthread_self(), "kw-writer");

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct job *group, *last;
		bool failed, owed = false, wrote;
		int64_t now;
		int n = 1;

		while (!s->head && !s->stopping)
			pthread_cond_wait(&s->wake, &s->lock);
		if (!s->head)
			break;
		group = last = s->head;
		while (last->next && n < MAX_GROUP) {
			last = last->next;
			n++;
		}
		s->head = last->next;
		if (!s->head)
			s->tail = NULL;
		last->next = NULL;
		failed = s->sync_failed;
		pthread_mutex_unlock(&s->lock);

		now = now_seconds();
		if (failed) {
			/* Refused: a restart is needed (restart_needed). */
			for (struct job *j = group; j; j = j->next)
				j->rc = KW_ERR_UNAVAILABLE;
		} else {
			int rc = run_group(s, group, &owed, &wrote);

			group_health(s, rc, wrote, now);
		}
		/* Every group is answered by the syncer, in order: one that wrote
		 * nothing (a repeated check-in), or failed, may still depend on an
		 * earlier group whose sync is not done. */
		pthread_mutex_lock(&s->slock);
		if (s->sync_tail)
			s->sync_tail->next = group;
		else
			s->sync_head = group;
		s->sync_tail = last;
		s->sync_owed |= owed;
		pthread_cond_signal(&s->swake);
		pthread_mutex_unlock(&s->slock);
		if (!failed)
			checkpoint(s, now);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Answers the groups the writer queued, in order: first, if any of them
 * committed, one fdatasync of the log for all. A failed sync fails them and
 * every later group (the writer runs no more): what the log holds is no
 * longer known to be on disk, and a second fdatasync would not say so. */
static void *syncer_main(void *p)
{
	struct store *s = p;

	pthread_setname_np(pthread_self(), "kw-sync");

	pthread_mutex_lock(&s->slock);
	for (;;) {
		struct job *jobs;
		struct walvfs_log *log;
		bool owed, failed, ok = true;

		while (!s->sync_head && !s->sync_stopping)
			pthread_cond_wait(&s->swake, &s->slock);
		if (!s->sync_head)
			break;
		jobs = s->sync_head;
		s->sync_head = s->sync_tail = NULL;
		owed = s->sync_owed;
		s->sync_owed = false;
		log = s->log;
		pthread_mutex_unlock(&s->slock);

		pthread_mutex_lock(&s->lock);
		failed = s->sync_failed;
		pthread_mutex_unlock(&s->lock);
		if (!failed && owed && (!log || walvfs_sync(log) != SQLITE_OK)) {
			int err_no = log ? errno : 0;

			store_count_error();
			restart_needed(s, err_no);
			ok = false;
		}
		/* Groups the writer refused already say so (KW_ERR_UNAVAILABLE). */
		if (failed || !ok)
			for (struct job *j = jobs; j; j = j->next)
				if (j->rc != KW_ERR_UNAVAILABLE)
					j->rc = KW_ERR_STORE;
		jobs_done(jobs);
		pthread_mutex_lock(&s->slock);
	}
	pthread_mutex_unlock(&s->slock);
	return NULL;
}

static int enqueue(struct store *s, struct job *j)
{
	pthread_mutex_lock(&s->lock);
	if (s->stopping || s->sync_failed) {
		pthread_mutex_unlock(&s->lock);
		return KW_ERR_UNAVAILABLE;
	}
	if (s->tail)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int sqlite_write_async(struct store *s, store_fn fn, void *arg,
			      store_done_fn done, void *done_arg)
{
	struct job *j = calloc(1, sizeof(*j));
	int rc;

	if (!j)
		return KW_ERR_NOMEM;
	j->fn = fn;
	j->arg = arg;
	j->done = done;
	j->done_arg = done_arg;
	j->owned = true;
	if ((rc = enqueue(s, j)) < 0)
		free(j);
	return rc;
}

static void post_done(int rc, void *arg)
{
	sem_post(arg);
}

static int sqlite_write(struct store *s, store_fn fn, void *arg)
{
	struct job j = { .fn = fn, .arg = arg, .done = post_done };
	sem_t done;
	int rc;

	sem_init(&done, 0, 0);
	j.done_arg = &done;
	if ((rc = enqueue(s, &j)) == 0) {
		while (sem_wait(&done) < 0 && errno == EINTR)
			;
		rc = j.rc;
	}
	sem_destroy(&done);
	return rc;
}

/* ---- readers ---- */

static int reader_get(struct store *s, struct conn **out)
{
	char msg[256];
	struct conn *c;
	int rc;

	pthread_mutex_lock(&s->rlock);
	c = s->readers;
	if (c) {
		s->readers = c->next;
		s->nreaders--;
	}
	pthread_mutex_unlock(&s->rlock);
	if (c) {
		*out = c;
		return 0;
	}
	if ((rc = conn_open(s->path, false, &c, msg, sizeof(msg))) < 0) {
		store_count_error();
		log_error("database: %s", msg);
		return rc;
	}
	/* Readers look up single rows through indexes: a small cache each
	 * keeps the server's memory flat however large the database grows
	 * (the kernel's page cache holds the rest). */
	sqlite3_exec(c->db, "PRAGMA query_only = ON; PRAGMA cache_size = -"
		     STR(READER_CACHE_KIB), NULL, NULL, NULL);
	*out = c;
	return 0;
}

static void reader_put(struct store *s, struct conn *c)
{
	pthread_mutex_lock(&s->rlock);
	if (s->nreaders < MAX_READERS) {
		c->next = s->readers;
		s->readers = c;
		s->nreaders++;
		c = NULL;
	}
	pthread_mutex_unlock(&s->rlock);
	conn_close(c);
}

static int sqlite_read(struct store *s, store_fn fn, void *arg)
{
	struct store_tx tx = { .base = { &sqlite_ops }, .s = s };
	int rc;

	if ((rc = reader_get(s, &tx.c)) < 0)
		return rc;
	if ((rc = run(tx.c, S_BEGIN)) == 0) {
		rc = fn(&tx, arg);
		run(tx.c, S_ROLLBACK);
	}
	reader_put(s, tx.c);
	return rc;
}

/* One statement is a consistent read on its own: no transaction around. */
static int sqlite_lookup(struct store *s, store_fn fn, void *arg)
{
	struct store_tx tx = { .base = { &sqlite_ops }, .s = s };
	int rc;

	if ((rc = reader_get(s, &tx.c)) < 0)
		return rc;
	rc = fn(&tx, arg);
	reader_put(s, tx.c);
	return rc;
}

/* ---- open and close ---- */

static void sqlite_close(struct store *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	if (s->syncer_started) {
		pthread_mutex_lock(&s->slock);
		s->sync_stopping = true;
		pthread_cond_signal(&s->swake);
		pthread_mutex_unlock(&s->slock);
		pthread_join(s->syncer, NULL);
	}

	while (s->readers) {
		struct conn *c = s->readers;

		s->readers = c->next;
		conn_close(c);
	}
	conn_close(s->writer);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->rlock);
	pthread_mutex_destroy(&s->slock);
	pthread_mutex_destroy(&s->hlock);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->swake);
	free(s->wal_path);
	free(s->path);
	free(s);
}

/* SQLite's memory statistics take a global mutex on every allocation:
 * off, before SQLite starts. */
static void sqlite_setup(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	vfs_name = walvfs_register();
}

static int sqlite_open(const char *location, struct store **out, char *msg, size_t msglen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	struct store *s = calloc(1, sizeof(*s));
	int rc = KW_ERR_NOMEM, version = 0;

	pthread_once(&once, sqlite_setup);
	if (!s || !(s->path = strdup(location)) ||
	    !(s->wal_path = malloc(strlen(location) + sizeof("-wal")))) {
		if (s)
			free(s->path);
		free(s);
		snprintf(msg, msglen, "out of memory");
		return KW_ERR_NOMEM;
	}
	snprintf(s->wal_path, strlen(location) + sizeof("-wal"), "%s-wal", location);
	s->base.ops = &sqlite_ops;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	pthread_mutex_init(&s->slock, NULL);
	pthread_mutex_init(&s->hlock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->swake, NULL);
	store_note_state(STORE_OK);
	if ((rc = conn_open(location, true, &s->writer, msg, msglen)) < 0)
		goto out;
	s->writer->writer = true;
	/* A database from a newer keywarden is never used, migrated or not. */
	if ((rc = schema_version(s->writer, &version)) < 0) {
		snprintf(msg, msglen, "cannot read the schema version of %s", location);
		goto out;
	}
	if (version > latest_version()) {
		snprintf(msg, msglen, "database %s has schema version %d, newer than this "
			 "keywarden (%d); run a newer keywarden", location, version,
			 latest_version());
		rc = KW_ERR_SCHEMA;
		goto out;
	}
	sqlite3_wal_hook(s->writer->db, wal_hook, s);
	log_open(s);
	if (pthread_create(&s->syncer, NULL, syncer_main, s) != 0) {
		snprintf(msg, msglen, "cannot start the database syncer: %s",
			 strerror(errno));
		rc = KW_ERR_NOMEM;
		goto out;
	}
	s->syncer_started = true;
	if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
		snprintf(msg, msglen, "cannot start the database writer: %s",
			 strerror(errno));
		rc = KW_ERR_NOMEM;
		goto out;
	}
	s->thread_started = true;
	*out = s;
	s = NULL;
	rc = 0;
out:
	sqlite_close(s);
	return rc;
}

/* ---- meta ---- */

static int sqlite_meta_get(struct store_tx *tx, const char *name, char *out, size_t outlen)
{
	sqlite3_stmt *st = stmt(tx->c, S_META_GET);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col_copy(st, 0, out, outlen);
		rc = 0;
	} else {
		rc = map_rc(tx->c, rc, stmt_sql[S_META_GET]);
		if (rc == 0)
			rc = KW_ERR_NOT_FOUND;
	}
	stmt_done(st);
	return rc;
}

static int sqlite_meta_set(struct store_tx *tx, const char *name, const char *value)
{
	sqlite3_stmt *st = stmt(tx->c, S_META_SET);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, name);
	bind_text(st, 2, value);
	return exec_stmt(tx->c, st, S_META_SET);
}

/* ---- enrollment tokens ---- */

static void token_fill(sqlite3_stmt *st, struct token_rec *t)
{
	const void *h = sqlite3_column_blob(st, 1);

	memset(t, 0, sizeof(*t));
	t->id = sqlite3_column_int64(st, 0);
	if (h && sqlite3_column_bytes(st, 1) == STORE_HASH_LEN)
		memcpy(t->hash, h, STORE_HASH_LEN);
	t->created_at = sqlite3_column_int64(st, 2);
	t->expires_at = sqlite3_column_int64(st, 3);
	t->uses_left = sqlite3_column_int64(st, 4);
	t->used = sqlite3_column_int64(st, 5);
	t->revoked = sqlite3_column_int(st, 6) != 0;
}

static int sqlite_token_insert(struct store_tx *tx, const struct token_rec *t, int64_t *id)
{
	sqlite3_stmt *st = stmt(tx->c, S_TOKEN_INSERT);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_blob(st, 1, t->hash, STORE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->created_at);
	sqlite3_bind_int64(st, 3, t->expires_at);
	sqlite3_bind_int64(st, 4, t->uses_left);
	rc = exec_stmt(tx->c, st, S_TOKEN_INSERT);
	if (rc == 0 && id)
		*id = sqlite3_last_insert_rowid(tx->c->db);
	return rc;
}

static int sqlite_token_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			    struct token_rec *out)
{
	sqlite3_stmt *st = stmt(tx->c, S_TOKEN_GET);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_blob(st, 1, hash, STORE_HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		token_fill(st, out);
		rc = 0;
	} else {
		rc = map_rc(tx->c, rc, stmt_sql[S_TOKEN_GET]);
		if (rc == 0)
			rc = KW_ERR_NOT_FOUND;
	}
	stmt_done(st);
	return rc;
}

static int update_by_id(struct store_tx *tx, enum stmt_id id, int64_t row)
{
	sqlite3_stmt *st = stmt(tx->c, id);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, row);
	rc = exec_stmt(tx->c, st, id);
	if (rc == 0 && sqlite3_changes(tx->c->db) == 0)
		rc = KW_ERR_NOT_FOUND;
	return rc;
}

static int sqlite_token_use(struct store_tx *tx, int64_t id)
{
	return update_by_id(tx, S_TOKEN_USE, id);
}

static int sqlite_token_revoke(struct store_tx *tx, int64_t id)
{
	return update_by_id(tx, S_TOKEN_REVOKE, id);
}

static int token_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct token_rec t;

	token_fill(st, &t);
	return ((store_each_token)cb)(&t, arg);
}

static int sqlite_token_each(struct store_tx *tx, store_each_token cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_TOKEN_EACH);

	if (!st)
		return KW_ERR_STORE;
	return each_row(tx->c, st, S_TOKEN_EACH, false, token_row, (any_fn)cb, arg);
}

/* ---- devices ---- */

/* Fills d from 7 columns starting at i (DEVICE_COLS). */
static void device_fill(sqlite3_stmt *st, int i, struct device_rec *d)
{
	col_copy(st, i, d->id, sizeof(d->id));
	d->name = col_text(st, i + 1);
	d->domain = col_text(st, i + 2);
	d->os = col_text(st, i + 3);
	d->created_at = sqlite3_column_int64(st, i + 4);
	d->last_checkin_at = sqlite3_column_int64(st, i + 5);
	d->revoked = sqlite3_column_int(st, i + 6) != 0;
}

static int device_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct device_rec d;

	device_fill(st, 0, &d);
	return ((store_each_device)cb)(&d, arg);
}

static int sqlite_device_insert(struct store_tx *tx, const struct device_rec *d,
				const uint8_t secret_hash[STORE_HASH_LEN])
{
	sqlite3_stmt *st = stmt(tx->c, S_DEVICE_INSERT);
	char *lc = str_lower_dup(d->name);
	int rc;

	if (!st || !lc) {
		free(lc);
		return st ? KW_ERR_NOMEM : KW_ERR_STORE;
	}
	bind_text(st, 1, d->id);
	bind_text(st, 2, d->name);
	bind_text(st, 3, lc);
	bind_text(st, 4, d->domain ? d->domain : "");
	bind_text(st, 5, d->os ? d->os : "");
	sqlite3_bind_blob(st, 6, secret_hash, STORE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, d->created_at);
	rc = exec_stmt(tx->c, st, S_DEVICE_INSERT);
	free(lc);
	return rc;
}

static int sqlite_device_get(struct store_tx *tx, const char *id, store_each_device cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_DEVICE_GET);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, id);
	return each_row(tx->c, st, S_DEVICE_GET, true, device_row, (any_fn)cb, arg);
}

static int sqlite_device_by_secret(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
				   store_each_device cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_DEVICE_BY_SECRET);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_blob(st, 1, hash, STORE_HASH_LEN, SQLITE_STATIC);
	return each_row(tx->c, st, S_DEVICE_BY_SECRET, true, device_row, (any_fn)cb, arg);
}

/* The row of the device with public ID uid, remembered for the job. With
 * hash: KW_ERR_AUTH unless the device has that secret hash and is not
 * revoked (checked in the statement, whatever is remembered). */
static int device_row_checked(struct store_tx *tx, const char *uid,
			      const uint8_t *hash, int64_t *row)
{
	sqlite3_stmt *st;
	int rc;

	if (!hash && tx->dev_uid[0] && !strcmp(tx->dev_uid, uid)) {
		*row = tx->dev_row;
		return 0;
	}
	if (!(st = stmt(tx->c, S_DEVICE_ROW)))
		return KW_ERR_STORE;
	bind_text(st, 1, uid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 1);

		rc = 0;
		if (hash && (sqlite3_column_bytes(st, 1) != STORE_HASH_LEN || !h ||
			     sodium_memcmp(h, hash, STORE_HASH_LEN) != 0 ||
			     sqlite3_column_int(st, 2)))
			rc = KW_ERR_AUTH;
		if (rc == 0) {
			*row = sqlite3_column_int64(st, 0);
			snprintf(tx->dev_uid, sizeof(tx->dev_uid), "%s", uid);
			tx->dev_row = *row;
		}
	} else {
		rc = map_rc(tx->c, rc, stmt_sql[S_DEVICE_ROW]);
		if (rc == 0)
			rc = hash ? KW_ERR_AUTH : KW_ERR_NOT_FOUND;
	}
	stmt_done(st);
	return rc;
}

static int device_rowid(struct store_tx *tx, const char *uid, int64_t *row)
{
	return device_row_checked(tx, uid, NULL, row);
}

static int sqlite_device_check_secret(struct store_tx *tx, const char *id,
				      const uint8_t hash[STORE_HASH_LEN])
{
	int64_t row;

	return device_row_checked(tx, id, hash, &row);
}

static int sqlite_device_checked_in(struct store_tx *tx, const char *id, const char *os,
				    int64_t at)
{
	sqlite3_stmt *st = stmt(tx->c, S_DEVICE_CHECKED_IN);
	int64_t row;
	int rc;

	if (!st)
		return KW_ERR_STORE;
	if ((rc = device_rowid(tx, id, &row)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, row);
	bind_text(st, 2, os ? os : "");
	sqlite3_bind_int64(st, 3, at);
	return exec_stmt(tx->c, st, S_DEVICE_CHECKED_IN);
}

static int sqlite_device_set_revoked(struct store_tx *tx, const char *id, bool revoked)
{
	sqlite3_stmt *st = stmt(tx->c, S_DEVICE_REVOKE);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, id);
	sqlite3_bind_int(st, 2, revoked);
	rc = exec_stmt(tx->c, st, S_DEVICE_REVOKE);
	if (rc == 0 && sqlite3_changes(tx->c->db) == 0)
		rc = KW_ERR_NOT_FOUND;
	return rc;
}

static int sqlite_device_each(struct store_tx *tx, const char *prefix, int64_t limit,
			      store_each_device cb, void *arg)
{
	enum stmt_id id = limit > 0 ? S_DEVICE_EACH_LIMIT : S_DEVICE_EACH;
	sqlite3_stmt *st = stmt(tx->c, id);
	char *lc = str_lower_dup(prefix ? prefix : "");
	int rc;

	if (!st || !lc) {
		free(lc);
		return st ? KW_ERR_NOMEM : KW_ERR_STORE;
	}
	bind_text(st, 1, lc);
	if (limit > 0)
		sqlite3_bind_int64(st, 2, limit);
	rc = each_row(tx->c, st, id, false, device_row, (any_fn)cb, arg);
	free(lc);
	return rc;
}

/* ---- volumes ---- */

/* Fills v from 9 columns starting at i (VOLUME_COLS). */
static void volume_fill(sqlite3_stmt *st, int i, struct volume_rec *v)
{
	v->row = sqlite3_column_int64(st, i);
	col_copy(st, i + 1, v->guid, sizeof(v->guid));
	v->mount = col_text(st, i + 2);
	v->type = col_text(st, i + 3);
	v->protection = col_text(st, i + 4);
	v->encryption = col_text(st, i + 5);
	v->percent = sqlite3_column_int(st, i + 6);
	v->first_seen = sqlite3_column_int64(st, i + 7);
	v->last_seen = sqlite3_column_int64(st, i + 8);
}

static int sqlite_volume_upsert(struct store_tx *tx, const struct volume_rec *v, int64_t *row)
{
	sqlite3_stmt *st = stmt(tx->c, S_VOLUME_GET);
	int64_t dev;
	int rc;
	bool same = false;

	if (!st)
		return KW_ERR_STORE;
	if ((rc = device_rowid(tx, v->device_id, &dev)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, dev);
	bind_text(st, 2, v->guid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*row = sqlite3_column_int64(st, 0);
		same = !strcmp(col_text(st, 1), v->mount) && !strcmp(col_text(st, 2), v->type) &&
		       !strcmp(col_text(st, 3), v->protection) &&
		       !strcmp(col_text(st, 4), v->encryption) &&
		       sqlite3_column_int(st, 5) == v->percent;
		stmt_done(st);
		if (same)
			return 0;  /* a repeated check-in changes nothing */
		st = stmt(tx->c, S_VOLUME_UPDATE);
		if (!st)
			return KW_ERR_STORE;
		sqlite3_bind_int64(st, 1, *row);
		bind_text(st, 2, v->mount);
		bind_text(st, 3, v->type);
		bind_text(st, 4, v->protection);
		bind_text(st, 5, v->encryption);
		sqlite3_bind_int(st, 6, v->percent);
		sqlite3_bind_int64(st, 7, v->last_seen);
		return exec_stmt(tx->c, st, S_VOLUME_UPDATE);
	}
	rc = map_rc(tx->c, rc, stmt_sql[S_VOLUME_GET]);
	stmt_done(st);
	if (rc < 0)
		return rc;
	st = stmt(tx->c, S_VOLUME_INSERT);
	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, dev);
	bind_text(st, 2, v->guid);
	bind_text(st, 3, v->mount);
	bind_text(st, 4, v->type);
	bind_text(st, 5, v->protection);
	bind_text(st, 6, v->encryption);
	sqlite3_bind_int(st, 7, v->percent);
	sqlite3_bind_int64(st, 8, v->first_seen);
	rc = exec_stmt(tx->c, st, S_VOLUME_INSERT);
	if (rc == 0)
		*row = sqlite3_last_insert_rowid(tx->c->db);
	return rc;
}

static int volume_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct volume_rec v;

	memset(&v, 0, sizeof(v));
	volume_fill(st, 0, &v);
	return ((store_each_volume)cb)(&v, arg);
}

static int sqlite_volume_each(struct store_tx *tx, const char *device_id,
			      store_each_volume cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_VOLUME_EACH);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, device_id);
	return each_row(tx->c, st, S_VOLUME_EACH, false, volume_row, (any_fn)cb, arg);
}

/* ---- keys ---- */

/* Fills k from 8 columns starting at 0 (KEY_COLS). */
static void key_fill(sqlite3_stmt *st, struct key_rec *k)
{
	const char *hex = col_text(st, 1);

	memset(k, 0, sizeof(*k));
	k->row = sqlite3_column_int64(st, 0);
	if (strlen(hex) == KEYID_HEX_LEN)
		keyid_format(hex, k->key_id);
	k->volume_row = sqlite3_column_int64(st, 2);
	k->state = (enum key_state)sqlite3_column_int(st, 3);
	k->sealed = sqlite3_column_blob(st, 4);
	k->sealed_len = (size_t)sqlite3_column_bytes(st, 4);
	k->created_at = sqlite3_column_int64(st, 5);
	k->changed_at = sqlite3_column_int64(st, 6);
	k->disclosed_at = sqlite3_column_int64(st, 7);
}

static int key_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct key_rec k;

	key_fill(st, &k);
	col_copy(st, 8, k.device_id, sizeof(k.device_id));
	return ((store_each_key)cb)(&k, arg);
}

static int key_full_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct device_rec d;
	struct volume_rec v;
	struct key_full_rec f;

	memset(&v, 0, sizeof(v));
	key_fill(st, &f.key);
	device_fill(st, 8, &d);
	volume_fill(st, 15, &v);
	memcpy(f.key.device_id, d.id, sizeof(d.id));
	memcpy(v.device_id, d.id, sizeof(d.id));
	f.device = &d;
	f.volume = &v;
	return ((store_each_key_full)cb)(&f, arg);
}

static int sqlite_key_get(struct store_tx *tx, const char *key_id, store_each_key cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_GET);
	char hex[KEYID_HEX_LEN + 1];

	if (!st)
		return KW_ERR_STORE;
	if (strlen(key_id) != KEYID_CANON_LEN)
		return KW_ERR_INVALID;
	keyid_to_hex(key_id, hex);
	bind_text(st, 1, hex);
	return each_row(tx->c, st, S_KEY_GET, true, key_row, (any_fn)cb, arg);
}

static int sqlite_key_insert(struct store_tx *tx, const struct key_rec *k)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_INSERT);
	char hex[KEYID_HEX_LEN + 1];
	int64_t dev;
	int rc;

	if (!st)
		return KW_ERR_STORE;
	if ((rc = device_rowid(tx, k->device_id, &dev)) < 0)
		return rc;
	keyid_to_hex(k->key_id, hex);
	bind_text(st, 1, hex);
	sqlite3_bind_int64(st, 2, dev);
	sqlite3_bind_int64(st, 3, k->volume_row);
	sqlite3_bind_int(st, 4, (int)k->state);
	sqlite3_bind_blob(st, 5, k->sealed, (int)k->sealed_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, k->created_at);
	return exec_stmt(tx->c, st, S_KEY_INSERT);
}

static int sqlite_key_set_state(struct store_tx *tx, int64_t row, enum key_state state,
				int64_t at)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_SET_STATE);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, row);
	sqlite3_bind_int(st, 2, (int)state);
	sqlite3_bind_int64(st, 3, at);
	return exec_stmt(tx->c, st, S_KEY_SET_STATE);
}

static int sqlite_key_set_sealed(struct store_tx *tx, int64_t row, const uint8_t *sealed,
				 size_t len)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_SET_SEALED);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, row);
	sqlite3_bind_blob(st, 2, sealed, (int)len, SQLITE_STATIC);
	return exec_stmt(tx->c, st, S_KEY_SET_SEALED);
}

/* Binds the states of a mask to ?2..?5 (-1 for the ones left out), so that
 * the (volume, state) and (device, state) indexes skip the other keys. */
static void bind_states(sqlite3_stmt *st, unsigned states)
{
	for (int s = 0; s < 4; s++)
		sqlite3_bind_int(st, 2 + s, (states & KEY_STATE_BIT(s)) ? s : -1);
}

static int sqlite_key_each_volume(struct store_tx *tx, int64_t volume_row,
				  unsigned states, store_each_key cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_EACH_VOLUME);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, volume_row);
	bind_states(st, states);
	return each_row(tx->c, st, S_KEY_EACH_VOLUME, false, key_row, (any_fn)cb, arg);
}

static int sqlite_key_each_device(struct store_tx *tx, const char *device_id,
				  unsigned states, store_each_key cb, void *arg)
{
	enum stmt_id id = states == KEY_STATE_BIT(KEY_DISCLOSED) ?
		S_KEY_EACH_DEVICE_DISCLOSED : S_KEY_EACH_DEVICE;
	sqlite3_stmt *st = stmt(tx->c, id);

	int64_t dev;
	int rc;

	if (!st)
		return KW_ERR_STORE;
	if (id == S_KEY_EACH_DEVICE) {
		bind_text(st, 1, device_id);
		bind_states(st, states);
	} else {
		if ((rc = device_rowid(tx, device_id, &dev)) < 0)
			return rc == KW_ERR_NOT_FOUND ? 0 : rc;
		sqlite3_bind_int64(st, 1, dev);
	}
	return each_row(tx->c, st, id, false, key_row, (any_fn)cb, arg);
}

static int sqlite_key_each_full(struct store_tx *tx, store_each_key_full cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_EACH_FULL);

	if (!st)
		return KW_ERR_STORE;
	return each_row(tx->c, st, S_KEY_EACH_FULL, false, key_full_row, (any_fn)cb, arg);
}

static int sqlite_key_each_entitled(struct store_tx *tx, const char *prefix_hex,
				    const char *const *users, size_t nusers, unsigned states,
				    store_each_key_full cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_EACH_ENTITLED);
	json_t *arr = json_array();
	char *list = NULL;
	int rc = KW_ERR_NOMEM;

	if (!st) {
		json_decref(arr);
		return KW_ERR_STORE;
	}
	if (!arr)
		goto out;
	for (size_t i = 0; i < nusers; i++) {
		char *lc = str_lower_dup(users[i]);

		if (!lc || json_array_append_new(arr, json_string(lc)) < 0) {
			free(lc);
			goto out;
		}
		free(lc);
	}
	if (!(list = json_dumps(arr, JSON_COMPACT)))
		goto out;
	bind_text(st, 1, prefix_hex);
	bind_text(st, 2, list);
	sqlite3_bind_int(st, 3, (int)states);
	rc = each_row(tx->c, st, S_KEY_EACH_ENTITLED, false, key_full_row, (any_fn)cb, arg);
out:
	if (list)
		json_free_string(list);
	json_decref(arr);
	return rc;
}

static int sqlite_key_each_prefix(struct store_tx *tx, const char *prefix_hex,
				  unsigned states, store_each_key_full cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_EACH_PREFIX);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, prefix_hex);
	sqlite3_bind_int(st, 2, (int)states);
	return each_row(tx->c, st, S_KEY_EACH_PREFIX, false, key_full_row, (any_fn)cb, arg);
}

static int64_t sqlite_key_count(struct store_tx *tx)
{
	sqlite3_stmt *st = stmt(tx->c, S_KEY_COUNT);
	int64_t n = -1;

	if (!st)
		return KW_ERR_STORE;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	stmt_done(st);
	return n < 0 ? KW_ERR_STORE : n;
}

/* ---- logons and associations ---- */

static int sqlite_logon_upsert(struct store_tx *tx, const struct logon_rec *l)
{
	sqlite3_stmt *st = stmt(tx->c, S_LOGON_UPSERT);
	int64_t dev;
	int rc;

	if (!st)
		return KW_ERR_STORE;
	if ((rc = device_rowid(tx, l->device_id, &dev)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, dev);
	bind_text(st, 2, l->user);
	sqlite3_bind_int(st, 3, (int)l->type);
	sqlite3_bind_int64(st, 4, l->first_seen);
	sqlite3_bind_int64(st, 5, l->last_seen);
	return exec_stmt(tx->c, st, S_LOGON_UPSERT);
}

struct device_cb {
	const char *device_id;
	any_fn cb;
	void *arg;
};

static int logon_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct device_cb *dc = arg;
	struct logon_rec l;

	snprintf(l.device_id, sizeof(l.device_id), "%s", dc->device_id);
	l.user = col_text(st, 0);
	l.type = (enum logon_type)sqlite3_column_int(st, 1);
	l.first_seen = sqlite3_column_int64(st, 2);
	l.last_seen = sqlite3_column_int64(st, 3);
	return ((store_each_logon)dc->cb)(&l, dc->arg);
}

static int sqlite_logon_each_device(struct store_tx *tx, const char *device_id,
				    store_each_logon cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_LOGON_EACH_DEVICE);
	struct device_cb dc = { device_id, (any_fn)cb, arg };

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, device_id);
	return each_row(tx->c, st, S_LOGON_EACH_DEVICE, false, logon_row, NULL, &dc);
}

static int sqlite_assoc_add(struct store_tx *tx, const struct assoc_rec *a)
{
	sqlite3_stmt *st = stmt(tx->c, S_ASSOC_ADD);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, a->user);
	bind_text(st, 2, a->device_id);
	bind_text(st, 3, a->added_by);
	sqlite3_bind_int64(st, 4, a->created_at);
	return exec_stmt(tx->c, st, S_ASSOC_ADD);
}

static int assoc_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct device_cb *dc = arg;
	struct assoc_rec a;

	snprintf(a.device_id, sizeof(a.device_id), "%s", dc->device_id);
	a.user = col_text(st, 0);
	a.added_by = col_text(st, 1);
	a.created_at = sqlite3_column_int64(st, 2);
	return ((store_each_assoc)dc->cb)(&a, dc->arg);
}

static int sqlite_assoc_each_device(struct store_tx *tx, const char *device_id,
				    store_each_assoc cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_ASSOC_EACH_DEVICE);
	struct device_cb dc = { device_id, (any_fn)cb, arg };

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, device_id);
	return each_row(tx->c, st, S_ASSOC_EACH_DEVICE, false, assoc_row, NULL, &dc);
}

/* ---- users ---- */

static int user_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct user_rec u;

	u.id = sqlite3_column_int64(st, 0);
	u.name = col_text(st, 1);
	u.password_hash = col_text(st, 2);
	u.roles = (unsigned)sqlite3_column_int(st, 3);
	u.disabled = sqlite3_column_int(st, 4) != 0;
	u.created_at = sqlite3_column_int64(st, 5);
	return ((store_each_user)cb)(&u, arg);
}

static int sqlite_user_insert(struct store_tx *tx, const struct user_rec *u)
{
	sqlite3_stmt *st = stmt(tx->c, S_USER_INSERT);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, u->name);
	bind_text(st, 2, u->password_hash);
	sqlite3_bind_int(st, 3, (int)u->roles);
	sqlite3_bind_int(st, 4, u->disabled);
	sqlite3_bind_int64(st, 5, u->created_at);
	return exec_stmt(tx->c, st, S_USER_INSERT);
}

static int sqlite_user_get(struct store_tx *tx, const char *name, store_each_user cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_USER_GET);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, name);
	return each_row(tx->c, st, S_USER_GET, true, user_row, (any_fn)cb, arg);
}

static int sqlite_user_update(struct store_tx *tx, const struct user_rec *u)
{
	sqlite3_stmt *st = stmt(tx->c, S_USER_UPDATE);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, u->name);
	bind_text(st, 2, u->password_hash);
	sqlite3_bind_int(st, 3, (int)u->roles);
	sqlite3_bind_int(st, 4, u->disabled);
	rc = exec_stmt(tx->c, st, S_USER_UPDATE);
	if (rc == 0 && sqlite3_changes(tx->c->db) == 0)
		rc = KW_ERR_NOT_FOUND;
	return rc;
}

static int sqlite_user_each(struct store_tx *tx, store_each_user cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_USER_EACH);

	if (!st)
		return KW_ERR_STORE;
	return each_row(tx->c, st, S_USER_EACH, false, user_row, (any_fn)cb, arg);
}

/* ---- sessions ---- */

static int sqlite_session_insert(struct store_tx *tx, const struct session_rec *r)
{
	sqlite3_stmt *st = stmt(tx->c, S_SESSION_INSERT);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_blob(st, 1, r->hash, STORE_HASH_LEN, SQLITE_STATIC);
	bind_text(st, 2, r->user);
	sqlite3_bind_int(st, 3, (int)r->roles);
	bind_text(st, 4, r->identities ? r->identities : "");
	bind_text(st, 5, r->csrf);
	sqlite3_bind_int(st, 6, r->notice_accepted);
	sqlite3_bind_int64(st, 7, r->created_at);
	return exec_stmt(tx->c, st, S_SESSION_INSERT);
}

static int session_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct session_rec r;
	const void *h = sqlite3_column_blob(st, 0);

	memset(&r, 0, sizeof(r));
	if (h && sqlite3_column_bytes(st, 0) == STORE_HASH_LEN)
		memcpy(r.hash, h, STORE_HASH_LEN);
	r.user = col_text(st, 1);
	r.roles = (unsigned)sqlite3_column_int(st, 2);
	r.identities = col_text(st, 3);
	col_copy(st, 4, r.csrf, sizeof(r.csrf));
	r.notice_accepted = sqlite3_column_int(st, 5) != 0;
	r.created_at = sqlite3_column_int64(st, 6);
	r.last_seen = sqlite3_column_int64(st, 7);
	return ((store_each_session)cb)(&r, arg);
}

static int sqlite_session_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			      store_each_session cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_SESSION_GET);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_blob(st, 1, hash, STORE_HASH_LEN, SQLITE_STATIC);
	return each_row(tx->c, st, S_SESSION_GET, true, session_row, (any_fn)cb, arg);
}

static int sqlite_session_touch(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
				int64_t at, int notice_accepted)
{
	sqlite3_stmt *st = stmt(tx->c, S_SESSION_TOUCH);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_blob(st, 1, hash, STORE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, at);
	sqlite3_bind_int(st, 3, notice_accepted);
	rc = exec_stmt(tx->c, st, S_SESSION_TOUCH);
	if (rc == 0 && sqlite3_changes(tx->c->db) == 0)
		rc = KW_ERR_NOT_FOUND;
	return rc;
}

static int sqlite_session_delete(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN])
{
	sqlite3_stmt *st = stmt(tx->c, S_SESSION_DELETE);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_blob(st, 1, hash, STORE_HASH_LEN, SQLITE_STATIC);
	return exec_stmt(tx->c, st, S_SESSION_DELETE);
}

static int sqlite_session_purge(struct store_tx *tx, int64_t idle_before, int64_t created_before)
{
	sqlite3_stmt *st = stmt(tx->c, S_SESSION_PURGE);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, idle_before);
	sqlite3_bind_int64(st, 2, created_before);
	return exec_stmt(tx->c, st, S_SESSION_PURGE);
}

static int sqlite_session_delete_user(struct store_tx *tx, const char *user)
{
	sqlite3_stmt *st = stmt(tx->c, S_SESSION_DELETE_USER);

	if (!st)
		return KW_ERR_STORE;
	bind_text(st, 1, user);
	return exec_stmt(tx->c, st, S_SESSION_DELETE_USER);
}

/* ---- audit ---- */

static int sqlite_audit_last(struct store_tx *tx, int64_t *seq, uint8_t hash[32])
{
	sqlite3_stmt *st = stmt(tx->c, S_AUDIT_LAST);
	int rc;

	if (!st)
		return KW_ERR_STORE;
	*seq = 0;
	memset(hash, 0, 32);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 1);

		*seq = sqlite3_column_int64(st, 0);
		if (h && sqlite3_column_bytes(st, 1) == 32)
			memcpy(hash, h, 32);
		rc = 0;
	} else {
		rc = map_rc(tx->c, rc, stmt_sql[S_AUDIT_LAST]);
	}
	stmt_done(st);
	return rc;
}

static int sqlite_audit_insert(struct store_tx *tx, const struct audit_rec *a)
{
	sqlite3_stmt *st = stmt(tx->c, S_AUDIT_INSERT);
	const char *text[] = { a->source, a->result, a->actor, a->end_user, a->computer,
			       a->device_id, a->key_id, a->key_type, a->reason,
			       a->comment, a->client };

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, a->seq);
	sqlite3_bind_int64(st, 2, a->at);
	for (int i = 0; i < 11; i++)
		bind_text(st, 3 + i, text[i] ? text[i] : "");
	sqlite3_bind_blob(st, 14, a->prev_hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 15, a->hash, 32, SQLITE_STATIC);
	return exec_stmt(tx->c, st, S_AUDIT_INSERT);
}

static int audit_row(sqlite3_stmt *st, any_fn cb, void *arg)
{
	struct audit_rec a;
	const void *p = sqlite3_column_blob(st, 13);
	const void *h = sqlite3_column_blob(st, 14);

	memset(&a, 0, sizeof(a));
	a.seq = sqlite3_column_int64(st, 0);
	a.at = sqlite3_column_int64(st, 1);
	a.source = col_text(st, 2);
	a.result = col_text(st, 3);
	a.actor = col_text(st, 4);
	a.end_user = col_text(st, 5);
	a.computer = col_text(st, 6);
	a.device_id = col_text(st, 7);
	a.key_id = col_text(st, 8);
	a.key_type = col_text(st, 9);
	a.reason = col_text(st, 10);
	a.comment = col_text(st, 11);
	a.client = col_text(st, 12);
	if (p && sqlite3_column_bytes(st, 13) == 32)
		memcpy(a.prev_hash, p, 32);
	if (h && sqlite3_column_bytes(st, 14) == 32)
		memcpy(a.hash, h, 32);
	return ((store_each_audit)cb)(&a, arg);
}

static int sqlite_audit_each(struct store_tx *tx, const struct audit_filter *f,
			     store_each_audit cb, void *arg)
{
	sqlite3_stmt *st = stmt(tx->c, S_AUDIT_EACH);

	if (!st)
		return KW_ERR_STORE;
	sqlite3_bind_int64(st, 1, f ? f->after_seq : 0);
	sqlite3_bind_int64(st, 2, f ? f->from : 0);
	sqlite3_bind_int64(st, 3, f ? f->to : 0);
	bind_text(st, 4, f ? f->result : NULL);
	bind_text(st, 5, f ? f->source : NULL);
	bind_text(st, 6, f ? f->user : NULL);
	bind_text(st, 7, f ? f->computer : NULL);
	sqlite3_bind_int64(st, 8, f && f->limit > 0 ? f->limit : -1);
	return each_row(tx->c, st, S_AUDIT_EACH, false, audit_row, (any_fn)cb, arg);
}

static const struct store_ops sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.migrate = sqlite_migrate,
	.read = sqlite_read,
	.lookup = sqlite_lookup,
	.write = sqlite_write,
	.write_async = sqlite_write_async,
	.state = sqlite_state,
	.meta_get = sqlite_meta_get,
	.meta_set = sqlite_meta_set,
	.token_insert = sqlite_token_insert,
	.token_get = sqlite_token_get,
	.token_use = sqlite_token_use,
	.token_revoke = sqlite_token_revoke,
	.token_each = sqlite_token_each,
	.device_insert = sqlite_device_insert,
	.device_get = sqlite_device_get,
	.device_by_secret = sqlite_device_by_secret,
	.device_check_secret = sqlite_device_check_secret,
	.device_checked_in = sqlite_device_checked_in,
	.device_set_revoked = sqlite_device_set_revoked,
	.device_each = sqlite_device_each,
	.volume_upsert = sqlite_volume_upsert,
	.volume_each = sqlite_volume_each,
	.key_get = sqlite_key_get,
	.key_insert = sqlite_key_insert,
	.key_set_state = sqlite_key_set_state,
	.key_set_sealed = sqlite_key_set_sealed,
	.key_each_volume = sqlite_key_each_volume,
	.key_each_device = sqlite_key_each_device,
	.key_each_full = sqlite_key_each_full,
	.key_each_entitled = sqlite_key_each_entitled,
	.key_each_prefix = sqlite_key_each_prefix,
	.key_count = sqlite_key_count,
	.logon_upsert = sqlite_logon_upsert,
	.logon_each_device = sqlite_logon_each_device,
	.assoc_add = sqlite_assoc_add,
	.assoc_each_device = sqlite_assoc_each_device,
	.user_insert = sqlite_user_insert,
	.user_get = sqlite_user_get,
	.user_update = sqlite_user_update,
	.user_each = sqlite_user_each,
	.session_insert = sqlite_session_insert,
	.session_get = sqlite_session_get,
	.session_touch = sqlite_session_touch,
	.session_delete = sqlite_session_delete,
	.session_purge = sqlite_session_purge,
	.session_delete_user = sqlite_session_delete_user,
	.audit_last = sqlite_audit_last,
	.audit_insert = sqlite_audit_insert,
	.audit_each = sqlite_audit_each,
};

const struct store_ops *store_sqlite_ops(void)
{
	return &sqlite_ops;
}
