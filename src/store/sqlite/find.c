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
 * never behind, and at open a file that does not match the database (a
 * restored backup, a crash that lost the log's last commits) is emptied
 * and filled again. (Its commits are synced all the same, one a batch:
 * walvfs writes a connection's log frames out at its sync, and other
 * connections read them from the file.) */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/log.h"

#define FIND_SUFFIX "-find"
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

/* The file's head matches the database's record of that seq, or the file
 * is empty; otherwise it is emptied. */
static const char find_check[] =
	"DELETE FROM audit_find WHERE EXISTS (SELECT 1 FROM find_head h WHERE NOT EXISTS "
	"  (SELECT 1 FROM kw.audit a WHERE a.seq = h.seq AND a.hash = h.hash))"
	"  OR (NOT EXISTS (SELECT 1 FROM find_head) AND EXISTS (SELECT 1 FROM audit_find));"
	"DELETE FROM find_head WHERE NOT EXISTS (SELECT 1 FROM audit_find);";

static const char find_copy[] =
	"INSERT INTO audit_find (seq, at, result, source, actor_lc, end_user_lc, computer_lc) "
	"SELECT seq, at, result, source, fold(actor), fold(end_user), fold(computer) "
	"FROM kw.audit WHERE seq > coalesce((SELECT max(seq) FROM audit_find), 0) "
	"ORDER BY seq LIMIT ?1";
static const char find_set_head[] =
	"INSERT OR REPLACE INTO find_head (id, seq, hash) SELECT 1, seq, hash FROM kw.audit "
	"WHERE seq = (SELECT max(seq) FROM audit_find)";

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

/* One batch: the number of records copied, or an error (logged). */
static int64_t find_batch(struct store *s, sqlite3_stmt *copy, sqlite3_stmt *head)
{
	sqlite3 *db = s->finder->db;
	int64_t n = 0;
	int rc;

	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
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
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return n;
fail:
	/* Another process's thread (a command beside the server) copied the
	 * same records first: nothing to do. */
	if ((sqlite3_errcode(db) & 0xff) == SQLITE_BUSY) {
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return 0;
	}
	sq_log_failure("database: the audit report's search file %s: %s (reports read "
		       "the records it lacks from the audit table)", s->find_path,
		       sqlite3_errmsg(db));
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return KW_ERR_STORE;
}

static void *find_main(void *p)
{
	struct store *s = p;
	sqlite3_stmt *copy = NULL, *head = NULL;

	pthread_setname_np(pthread_self(), "kw-find");
	/* Background work: requests first when the CPUs are busy (a report
	 * reads what it has not copied yet from the audit table). */
	setpriority(PRIO_PROCESS, (id_t)gettid(), FIND_NICE);
	if (sqlite3_prepare_v2(s->finder->db, find_copy, -1, &copy, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->finder->db, find_set_head, -1, &head, NULL) != SQLITE_OK)
		sq_log_failure("database: the audit report's search file %s: %s",
			       s->find_path, sqlite3_errmsg(s->finder->db));
	pthread_mutex_lock(&s->flock);
	for (;;) {
		struct timespec until;

		while (!s->find_wake && !s->find_stopping)
			pthread_cond_wait(&s->fwake, &s->flock);
		if (s->find_stopping)
			break;
		s->find_wake = false;
		pthread_mutex_unlock(&s->flock);
		while (copy && head && find_batch(s, copy, head) == FIND_BATCH) {
			pthread_mutex_lock(&s->flock);
			if (s->find_stopping) {
				pthread_mutex_unlock(&s->flock);
				break;
			}
			pthread_mutex_unlock(&s->flock);
		}
		/* The pause (a stop ends it). */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += FIND_PAUSE_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&s->flock);
		while (!s->find_stopping &&
		       pthread_cond_timedwait(&s->fwake, &s->flock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&s->flock);
	sqlite3_finalize(copy);
	sqlite3_finalize(head);
	return NULL;
}

int sq_find_open(struct store *s, char *msg, size_t msglen)
{
	pthread_condattr_t attr;
	char *err = NULL;
	int rc;

	if (!(s->find_path = sq_find_path(s->path))) {
		snprintf(msg, msglen, "out of memory");
		return KW_ERR_NOMEM;
	}
	if ((rc = sq_conn_open(s->find_path, true, &s->finder, msg, msglen)) < 0)
		return rc;
	if (sqlite3_exec(s->finder->db, find_schema, NULL, NULL, &err) != SQLITE_OK ||
	    sq_find_attach(s->finder->db, s->path, "kw") < 0 ||
	    sqlite3_exec(s->finder->db, find_check, NULL, NULL, &err) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot set up the audit report's search file %s: %s",
			 s->find_path, err ? err : sqlite3_errmsg(s->finder->db));
		sqlite3_free(err);
		return KW_ERR_STORE;
	}
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->fwake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&s->flock, NULL);
	s->find_init = true;
	/* Records the file lacks (a new file, or one just emptied): at once. */
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
