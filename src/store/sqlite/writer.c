/* The SQLite store's writes: one writer thread commits concurrent write
 * jobs in groups (one transaction, a savepoint per job), a syncer thread
 * syncs the log once for the groups committed meanwhile and answers their
 * callers, the writer checkpoints the log between groups, and the write
 * health (store_state) follows what happens to them. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/log.h"

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

/* ---- write health ---- */

/* Why the writer failed, for operators: its first failed statement in the
 * group, else the connection's last error. True if the disk is full. */
static bool failure_cause(struct conn *c, char *out, size_t outlen)
{
	int err = c->err ? c->err : sqlite3_extended_errcode(c->db);
	int sys = c->err ? c->sys_errno : sq_sys_errno(c);

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

enum store_state sq_state(struct store *s, char *reason, size_t reasonlen)
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
		restart_needed(s, sq_sys_errno(s->writer));
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

void sq_log_open(struct store *s)
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
	log_budget(s, sq_now());
	/* A log left longer than that (by a crash, or by a checkpoint the disk
	 * was too full for) is emptied, so that a restart gives the space back. */
	if (s->size_limit >= 0 && stat(s->wal_path, &st) == 0 && st.st_size > s->size_limit)
		truncate_log(s, sq_now());
}

/* ---- the writer thread: group commit ---- */

/* Runs a group of jobs in one transaction. Returns 0 once it committed
 * (*owed: its log sync is owed, see walvfs.h; *wrote: it wrote to the log)
 * or the failure that undid the whole group (each job's rc < 0). */
static int run_group(struct store *s, struct job *jobs, bool *owed, bool *wrote)
{
	struct store_tx tx = { .base = { .ops = sq_ops }, .c = s->writer, .s = s };
	struct conn *c = s->writer;
	struct walvfs_log *log;
	int rc;

	*owed = *wrote = false;
	c->err = 0;
	rc = sq_run(c, SQ_BEGIN_IMMEDIATE);
	for (struct job *j = jobs; j; j = j->next) {
		if (rc < 0) {
			j->rc = rc;
			continue;
		}
		if ((j->rc = sq_run(c, SQ_SAVEPOINT)) < 0)
			continue;
		tx.dev_uid[0] = '\0';
		c->in_job = true;
		j->rc = j->fn(&tx, j->arg);
		c->in_job = false;
		if (j->rc < 0 && sq_run(c, SQ_ROLLBACK_TO) < 0)
			rc = KW_ERR_STORE;  /* cannot undo: fail the group */
		if (sq_run(c, SQ_RELEASE) < 0)
			rc = KW_ERR_STORE;
		if (rc == 0 && c->err) {
			/* This job's statement failed and the job was undone. */
			sq_log_failure("database: %s", c->errmsg);
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
		rc = sq_run(c, SQ_COMMIT);
		if (log) {
			walvfs_defer(log, false);
			*owed = walvfs_owed(log) && rc == 0;
		}
		*wrote = rc == 0 && s->wal_wrote;
	}
	if (rc < 0) {
		if (!sqlite3_get_autocommit(c->db))
			sq_run(c, SQ_ROLLBACK);
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
int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
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

void *sq_writer_main(void *p)
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

		now = sq_now();
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
		if (s->audit_new) {
			/* Committed (if the group did): the search file copies it. */
			s->audit_new = false;
			sq_find_wake(s);
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Answers the groups the writer queued, in order: first, if any of them
 * committed, one fdatasync of the log for all. A failed sync fails them and
 * every later group (the writer runs no more): what the log holds is no
 * longer known to be on disk, and a second fdatasync would not say so. */
void *sq_syncer_main(void *p)
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

int sq_write_async(struct store *s, store_fn fn, void *arg, store_done_fn done,
		   void *done_arg)
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

int sq_write(struct store *s, store_fn fn, void *arg)
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
