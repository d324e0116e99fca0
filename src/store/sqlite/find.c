/* The audit report's search table, in a file of its own beside the
 * database (DATABASE-find), filled by a thread of its own in batches after
 * the records' commits.
 *
 * Why not indexes on the audit table (as 0003 had them): each disclosure
 * then wrote its record into seven B-trees, and each commit wrote a page of
 * each to the log, which brought the writer's checkpoints (its stalls)
 * three times as often; batches in the same file stalled the writer while
 * they ran (BENCHMARKS.md, session 6). Here the writer writes only the
 * record; this thread writes the search keys into another file, under that
 * file's own lock, while the writer goes on.
 *
 * The file holds nothing that is not in the audit table: a report reads
 * the records after its last one from the audit table (audit.c), so it is
 * never behind. So it never stops anything: the thread (not store_open)
 * opens and checks it, and a file that does not match the database (a
 * restored backup, a crash that lost the log's last commits), is not a
 * database, cannot be set up, fails while running or is deleted is closed,
 * deleted and made again (deleting is instant, where emptying a million
 * rows took seconds); if it cannot be made, keywarden runs without it
 * (reports read the audit table alone) and tries again later. (Its commits
 * are synced all the same, one a batch: walvfs writes a connection's log
 * frames out at its sync, and other connections read them from the file.)
 *
 * Every store_open starts the thread, the CLI's too: store_open does not
 * know which commands page the report, and the thread costs a command
 * little: it opens the file, checks one row and copies what the server's
 * thread has not copied yet (nothing while a server runs beside it); the
 * command's store_close stops it after the batch in hand. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/log.h"

#define FIND_SUFFIX "-find"
#define STR_(x) #x
#define STR(x) STR_(x)
/* Records copied in one transaction at most; a full batch is followed by
 * the next at once. */
#define FIND_BATCH 4096
/* After a batch that caught up, the thread waits this long before the
 * next: fewer, larger batches (a page of the index written once for many
 * records), while a report reads at most this long's records from the
 * audit table itself. */
#define FIND_PAUSE_MS 200
/* The thread's nice value (Linux: per thread). */
#define FIND_NICE 10

static const char find_schema[] =
	"CREATE TABLE IF NOT EXISTS audit_find ("
	"  seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, result TEXT NOT NULL,"
	"  source TEXT NOT NULL, actor_lc TEXT NOT NULL, end_user_lc TEXT NOT NULL,"
	"  computer_lc TEXT NOT NULL) STRICT;"
	/* The audit record the table ends with and its hash: the check that
	 * this file belongs to the database beside it. */
	"CREATE TABLE IF NOT EXISTS find_head (id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  seq INTEGER NOT NULL, hash BLOB NOT NULL) STRICT;"
	/* A page is newest first (by at, then seq): each index leads with its
	 * filter and goes on with at (and the row's seq), so a filter's newest
	 * records are found in order and the time range bounds the walk.
	 * Result and source follow, so that a second filter is checked in the
	 * index. */
	"CREATE INDEX IF NOT EXISTS audit_find_actor ON audit_find "
	"  (actor_lc, at, result, source);"
	"CREATE INDEX IF NOT EXISTS audit_find_end_user ON audit_find "
	"  (end_user_lc, at, result, source);"
	"CREATE INDEX IF NOT EXISTS audit_find_computer ON audit_find "
	"  (computer_lc, at, result, source);"
	"CREATE INDEX IF NOT EXISTS audit_find_result ON audit_find (result, at, source);"
	"CREATE INDEX IF NOT EXISTS audit_find_source ON audit_find (source, at, result);"
	"CREATE INDEX IF NOT EXISTS audit_find_result_source ON audit_find "
	"  (result, source, at);";

/* 1 when the file does not belong to the database beside it: its head is
 * not the database's record of that seq, or it has records and no head. */
static const char find_check[] =
	"SELECT EXISTS (SELECT 1 FROM find_head h WHERE NOT EXISTS "
	"  (SELECT 1 FROM kw.audit a WHERE a.seq = h.seq AND a.hash = h.hash))"
	"  OR (NOT EXISTS (SELECT 1 FROM find_head) AND EXISTS (SELECT 1 FROM audit_find))";

static const char find_copy[] =
	"INSERT INTO audit_find (seq, at, result, source, actor_lc, end_user_lc, computer_lc) "
	"SELECT seq, at, result, source, fold(actor), fold(end_user), fold(computer) "
	"FROM kw.audit WHERE seq > coalesce((SELECT max(seq) FROM audit_find), 0) "
	"ORDER BY seq LIMIT ?1";
static const char find_set_head[] =
	"INSERT OR REPLACE INTO find_head (id, seq, hash) SELECT 1, seq, hash FROM kw.audit "
	"WHERE seq = (SELECT max(seq) FROM audit_find)";

/* After a failure the thread tries again after this long, twice as long
 * after each failure in a row, at most FIND_RETRY_MAX_MS. */
#define FIND_RETRY_MS 500
#define FIND_RETRY_MAX_MS 30000
/* Failures in a row (other than BUSY) after which the file is deleted and
 * made again; a file that is not a database, or lost, at once. */
#define FIND_FAILS_REMAKE 3
/* BUSY in a row (another process's thread copies the same records) before
 * it counts as a failure. */
#define FIND_BUSY_FAILS 10
#define FIND_BUSY_MS 1000

char *sq_find_path(const char *path)
{
	size_t n = strlen(path) + sizeof(FIND_SUFFIX);
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s" FIND_SUFFIX, path);
	return p;
}

int sq_find_attach(sqlite3 *db, const char *file, const char *name)
{
	char sql[64];
	sqlite3_stmt *st;
	int rc;

	snprintf(sql, sizeof(sql), "ATTACH DATABASE ?1 AS %s", name);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return KW_ERR_STORE;
	sqlite3_bind_text(st, 1, file, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : KW_ERR_STORE;
}

/* One integer from sql on db: 0 or KW_ERR_STORE. */
static int find_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = KW_ERR_STORE;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return KW_ERR_STORE;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Closes the thread's file and deletes it with its log and shared memory. */
static void find_remove(struct store *s)
{
	static const char *const ext[] = { "", "-wal", "-shm" };

	sq_conn_close(s->finder);
	s->finder = NULL;
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		char name[4096];

		snprintf(name, sizeof(name), "%s%s", s->find_path, ext[i]);
		unlink(name);
	}
}

/* Opens the file (made if missing), sets it up and checks it belongs to
 * the database: 0 with s->finder set, 1 when it does not belong (open),
 * or an error (msg says why; nothing left open). */
static int find_setup(struct store *s, char *msg, size_t msglen)
{
	struct conn *c = NULL;
	struct stat st;
	char *err = NULL;
	int64_t stale = 0, last = 0;
	int rc;

	if ((rc = sq_conn_open(s->find_path, true, &c, msg, msglen)) < 0)
		return rc;
	/* Another process's thread holds the file a batch long: a short wait,
	 * then the thread's pause (and a stop is not kept waiting). */
	sqlite3_busy_timeout(c->db, FIND_BUSY_MS);
	if (sqlite3_exec(c->db, find_schema, NULL, NULL, &err) != SQLITE_OK ||
	    sq_find_attach(c->db, s->path, "kw") < 0 ||
	    find_int(c->db, find_check, &stale) < 0 ||
	    find_int(c->db, "SELECT coalesce(max(seq), 0) FROM audit_find", &last) < 0 ||
	    stat(s->find_path, &st) != 0) {
		snprintf(msg, msglen, "cannot set up %s: %s", s->find_path,
			 err ? err : sqlite3_errmsg(c->db));
		sqlite3_free(err);
		sq_conn_close(c);
		return KW_ERR_STORE;
	}
	s->finder = c;
	s->find_dev = st.st_dev;
	s->find_ino = st.st_ino;
	s->find_last = last;
	return stale ? 1 : 0;
}

/* The file set up, made again if it is bad or does not belong; else
 * (logged once, counted each time) none: reports read the audit table. */
static int find_start(struct store *s)
{
	char msg[512];
	int rc;

	if ((rc = find_setup(s, msg, sizeof(msg))) == 0)
		goto ok;
	if (s->find_down)
		;   /* said when it went down; tried again quietly */
	else if (rc > 0)
		log_info("database: the audit report's search file %s does not match the "
			 "database: made again", s->find_path);
	else
		log_warn("database: the audit report's search file: %s: deleted and made "
			 "again", msg);
	find_remove(s);
	if ((rc = find_setup(s, msg, sizeof(msg))) == 0)
		goto ok;
	find_remove(s);
	store_count_error();
	if (!s->find_down)
		log_error("database: the audit report's search file cannot be made: %s; "
			  "keywarden runs without it (the audit report reads the audit "
			  "trail alone, slower) and tries again", rc > 0 ? "it does not "
			  "match the database" : msg);
	s->find_down = true;
	return KW_ERR_STORE;
ok:
	if (s->find_down)
		log_info("database: the audit report's search file %s works again",
			 s->find_path);
	s->find_down = false;
	s->find_fails = s->find_busy = 0;
	atomic_fetch_add(&s->find_gen, 1);
	return 0;
}

/* The file the thread has open was deleted or replaced. */
static bool find_gone(struct store *s)
{
	struct stat st;

	return stat(s->find_path, &st) != 0 || st.st_dev != s->find_dev ||
		st.st_ino != s->find_ino;
}

struct max_seq {
	int64_t seq;
};

static int max_seq_fn(struct store_tx *tx, void *arg)
{
	return find_int(tx->c->db, "SELECT coalesce(max(seq), 0) FROM audit",
			&((struct max_seq *)arg)->seq);
}

/* The lag for /metrics: the audit table's last seq less the file's. */
static void find_note_lag(struct store *s)
{
	struct max_seq m = { 0 };

	if (sq_lookup(s, max_seq_fn, &m) == 0)
		store_note_search_lag(m.seq > s->find_last ? m.seq - s->find_last : 0);
}

/* One batch: the number of records copied, or an error: KW_ERR_RETRY
 * (BUSY: another process's thread copies), KW_ERR_STORE. */
static int64_t find_batch(struct store *s, sqlite3_stmt *copy, sqlite3_stmt *head,
			  int *code, char *why, size_t whylen)
{
	sqlite3 *db = s->finder->db;
	int64_t n = 0, last = 0;
	int rc;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(copy, 1, FIND_BATCH);
	rc = sqlite3_step(copy);
	sqlite3_reset(copy);
	if (rc != SQLITE_DONE)
		goto fail;
	n = sqlite3_changes64(db);
	if (n > 0) {
		rc = sqlite3_step(head);
		sqlite3_reset(head);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	if (find_int(db, "SELECT coalesce(max(seq), 0) FROM audit_find", &last) < 0 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	s->find_last = last;
	return n;
fail:
	/* Before the rollback, which sets them again. */
	rc = *code = sqlite3_errcode(db) & 0xff;
	snprintf(why, whylen, "%s", sqlite3_errmsg(db));
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		return KW_ERR_RETRY;
	return KW_ERR_STORE;
}

/* Copies what the file lacks, setting it up first if need be: 0 once it
 * caught up (or a stop), else an error (logged, counted; the thread tries
 * again after a pause). */
static int find_work(struct store *s)
{
	sqlite3_stmt *copy = NULL, *head = NULL;
	const char *what = NULL;
	char why[256] = "";
	bool remake = false;
	int64_t n = 0;
	int code = 0, rc = 0;

	if (s->finder && find_gone(s)) {
		log_warn("database: the audit report's search file %s was deleted or "
			 "replaced: opened again", s->find_path);
		sq_conn_close(s->finder);
		s->finder = NULL;
	}
	if (!s->finder && (rc = find_start(s)) < 0)
		goto out;
	if (sqlite3_prepare_v2(s->finder->db, find_copy, -1, &copy, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->finder->db, find_set_head, -1, &head, NULL) != SQLITE_OK) {
		what = "cannot prepare the copy";
		code = sqlite3_errcode(s->finder->db) & 0xff;
		snprintf(why, sizeof(why), "%s", sqlite3_errmsg(s->finder->db));
		remake = true;
		rc = KW_ERR_STORE;
		goto out;
	}
	for (;;) {
		bool stop;

		n = find_batch(s, copy, head, &code, why, sizeof(why));
		if (n < FIND_BATCH)
			break;
		/* A long build (a new file) shows its progress. */
		find_note_lag(s);
		pthread_mutex_lock(&s->flock);
		stop = s->find_stopping;
		pthread_mutex_unlock(&s->flock);
		if (stop)
			break;
	}
	if (n == KW_ERR_RETRY) {
		/* Not a failure while it does not last: the other thread copies
		 * the same records. */
		if (++s->find_busy < FIND_BUSY_FAILS) {
			rc = KW_ERR_RETRY;
			goto out;
		}
		/* Counted and logged, never a reason to delete the file
		 * another process is writing. */
		what = "busy";
		code = SQLITE_BUSY;
	} else if (n < 0) {
		what = "the copy failed";
	}
	if (what) {
		rc = KW_ERR_STORE;
		goto out;
	}
	s->find_fails = s->find_busy = 0;
out:
	if (what) {
		store_count_error();
		sq_log_failure("database: the audit report's search file %s: %s: %s (reports "
			       "read the records it lacks from the audit trail)", s->find_path,
			       what, why);
		if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT || find_gone(s) ||
		    (code != SQLITE_BUSY && code != SQLITE_LOCKED &&
		     ++s->find_fails >= FIND_FAILS_REMAKE))
			remake = true;
	}
	sqlite3_finalize(copy);
	sqlite3_finalize(head);
	if (remake && s->finder) {
		log_warn("database: the audit report's search file %s is deleted and made "
			 "again", s->find_path);
		find_remove(s);
		s->find_last = 0;
		s->find_fails = 0;
	}
	if (!s->finder)
		s->find_last = 0;
	find_note_lag(s);
	return rc;
}

/* Waits ms or until a stop (flock held). */
static void find_pause(struct store *s, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	while (!s->find_stopping &&
	       pthread_cond_timedwait(&s->fwake, &s->flock, &until) != ETIMEDOUT)
		;
}

static void *find_main(void *p)
{
	struct store *s = p;
	long retry = 0;   /* ms before the next try after a failure; 0: none */

	pthread_setname_np(pthread_self(), "kw-find");
	/* Background work: requests first when the CPUs are busy (a report
	 * reads what it has not copied yet from the audit table). */
	setpriority(PRIO_PROCESS, (id_t)gettid(), FIND_NICE);
	pthread_mutex_lock(&s->flock);
	while (!s->find_stopping) {
		int rc;

		/* After a failure: again after the pause, commits or not. */
		if (retry)
			find_pause(s, retry);
		else
			while (!s->find_wake && !s->find_stopping)
				pthread_cond_wait(&s->fwake, &s->flock);
		if (s->find_stopping)
			break;
		s->find_wake = false;
		pthread_mutex_unlock(&s->flock);
		rc = find_work(s);
		pthread_mutex_lock(&s->flock);
		if (rc < 0)
			retry = !retry ? FIND_RETRY_MS : retry * 2 > FIND_RETRY_MAX_MS ?
				FIND_RETRY_MAX_MS : retry * 2;
		else
			retry = 0;
		if (!retry)
			find_pause(s, FIND_PAUSE_MS);
	}
	pthread_mutex_unlock(&s->flock);
	return NULL;
}

void sq_find_reader(struct store *s, struct conn *c)
{
	unsigned gen = atomic_load(&s->find_gen);
	sqlite3_stmt *st = NULL;

	if (c->find_gen == gen || !s->find_path)
		return;
	/* A file made again: the one attached may be deleted. */
	if (c->find_ok)
		sqlite3_exec(c->db, "DETACH DATABASE find", NULL, NULL, NULL);
	c->find_ok = false;
	c->find_gen = gen;
	if (!gen)
		return;
	if (sq_find_attach(c->db, s->find_path, "find") < 0) {
		sq_log_failure("database: cannot open %s: %s (the audit report reads the "
			       "audit trail alone)", s->find_path, sqlite3_errmsg(c->db));
		return;
	}
	if (sqlite3_prepare_v2(c->db, "SELECT seq FROM find.audit_find", -1, &st, NULL) !=
	    SQLITE_OK) {
		sq_log_failure("database: %s: %s (the audit report reads the audit trail "
			       "alone)", s->find_path, sqlite3_errmsg(c->db));
		sqlite3_finalize(st);
		sqlite3_exec(c->db, "DETACH DATABASE find", NULL, NULL, NULL);
		return;
	}
	sqlite3_finalize(st);
	sqlite3_exec(c->db, "PRAGMA find.cache_size = -" STR(READER_CACHE_KIB), NULL, NULL,
		     NULL);
	c->find_ok = true;
}

int sq_find_open(struct store *s, char *msg, size_t msglen)
{
	pthread_condattr_t attr;
	int rc;

	if (!(s->find_path = sq_find_path(s->path))) {
		snprintf(msg, msglen, "out of memory");
		return KW_ERR_NOMEM;
	}
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->fwake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&s->flock, NULL);
	s->find_init = true;
	/* The file is opened, checked and filled by the thread: never a wait
	 * at start-up; until then reports read the audit table alone. */
	s->find_wake = true;
	if ((rc = pthread_create(&s->finder_thread, NULL, find_main, s)) != 0) {
		snprintf(msg, msglen, "cannot start the audit report's search thread: %s",
			 strerror(rc));
		return KW_ERR_NOMEM;
	}
	s->finder_started = true;
	return 0;
}

void sq_find_wake(struct store *s)
{
	if (!s->find_init)
		return;
	pthread_mutex_lock(&s->flock);
	s->find_wake = true;
	pthread_cond_signal(&s->fwake);
	pthread_mutex_unlock(&s->flock);
}

void sq_find_close(struct store *s)
{
	if (s->finder_started) {
		pthread_mutex_lock(&s->flock);
		s->find_stopping = true;
		pthread_cond_signal(&s->fwake);
		pthread_mutex_unlock(&s->flock);
		pthread_join(s->finder_thread, NULL);
	}
	if (s->find_init) {
		pthread_mutex_destroy(&s->flock);
		pthread_cond_destroy(&s->fwake);
	}
	sq_conn_close(s->finder);
	free(s->find_path);
}
