/* What is particular to the SQLite store: its files, schema and
 * migrations, the group-commit writer and its syncer, the log (walvfs),
 * failures of the disk and the write health, failures counted. The
 * operations' contract, which every backend keeps, is tested in
 * test_store_contract.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/role.h"
#include "store/store.h"
#include "store/walvfs.h"
#include "util/err.h"

struct fx {
	char dir[64];
	char path[128];
	char db[160];          /* "sqlite:" + path */
	struct store *s;
};

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* A temporary folder and a database path in it; no store opened. */
static int setup_dir(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/kw.db", f->dir);
	snprintf(f->db, sizeof(f->db), "sqlite:%s", f->path);
	*state = f;
	return 0;
}

/* The same, with a migrated store open. */
static int setup(void **state)
{
	struct fx *f;
	char msg[256] = "";

	if (setup_dir(state) < 0)
		return -1;
	f = *state;
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0) {
		print_error("store_open: %s\n", msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	/* A test that failed half-way leaves no fault behind for the next. */
	walvfs_set_sync_hook(NULL);
	walvfs_set_write_hook(NULL);
	remove_dir(f->dir);
	free(f);
	return 0;
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* PRAGMA/SELECT on the file through a connection of our own. */
static int64_t sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void sql_text(const char *path, const char *sql, char *out, size_t outlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
					 SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

/* ---- small transactions ---- */

static int tx_user_insert(struct store_tx *tx, void *arg)
{
	return store_user_insert(tx, arg);
}

static struct user_rec user(const char *name, unsigned roles)
{
	struct user_rec u;

	memset(&u, 0, sizeof(u));
	u.name = name;
	u.password_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA";
	u.roles = roles;
	u.created_at = 1000;
	return u;
}

static int add_user(struct store *s, const char *name)
{
	struct user_rec u = user(name, ROLE_HELPDESK);

	return store_write(s, tx_user_insert, &u);
}

struct names {
	char v[64][32];
	size_t n;
};

static int collect_user(const struct user_rec *u, void *arg)
{
	struct names *n = arg;

	if (n->n < 64)
		snprintf(n->v[n->n], sizeof(n->v[0]), "%s", u->name);
	n->n++;
	return 0;
}

static int tx_user_each(struct store_tx *tx, void *arg)
{
	return store_user_each(tx, collect_user, arg);
}

static bool has_name(const struct names *n, const char *name)
{
	for (size_t i = 0; i < n->n && i < 64; i++)
		if (!strcmp(n->v[i], name))
			return true;
	return false;
}

static int count_token(const struct token_rec *t, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static int tx_token_count(struct store_tx *tx, void *arg)
{
	*(size_t *)arg = 0;
	return store_token_each(tx, count_token, arg);
}

static size_t token_count(struct store *s)
{
	size_t n = 0;

	assert_int_equal(store_read(s, tx_token_count, &n), 0);
	return n;
}

static void hash_of(uint8_t h[STORE_HASH_LEN], int i)
{
	memset(h, 0, STORE_HASH_LEN);
	h[0] = (uint8_t)(i & 0xff);
	h[1] = (uint8_t)((i >> 8) & 0xff);
	h[31] = 0x5a;
}

/* ---- opening and migrations ---- */

static void test_open_fresh_and_again(void **state)
{
	struct fx *f = *state;
	struct names n = { .n = 0 };
	char msg[256] = "";
	int64_t version;

	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	version = sql_int(f->path, "PRAGMA user_version");
	assert_true(version >= 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE "
				 "name IN ('devices', 'volumes', 'recovery_keys', 'logons', "
				 "'associations', 'users', 'sessions', 'audit', "
				 "'enrollment_tokens', 'meta')"), 10);
	assert_int_equal(add_user(f->s, "alice"), 0);
	store_close(f->s);
	f->s = NULL;

	/* Again: nothing to do, nothing lost. */
	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), version);
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 1);
	assert_string_equal(n.v[0], "alice");
	store_close(f->s);
	f->s = NULL;

	/* And once more without migrating. */
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);
	n.n = 0;
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 1);
}

/* A database of version 1 (before limit_events) is brought up to date,
 * its data kept. */
static void test_migrate_from_version_1(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";
	int rc;

	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	assert_int_equal(add_user(f->s, "alice"), 0);
	store_close(f->s);
	f->s = NULL;
	/* Version 1: without limit_events (0002), the report indexes and
	 * the folded names of audit records (0003; 0005 moved the indexes
	 * out) and the keys' origin (0004); a record to fold. */
	sql_exec(f->path, "DROP TABLE limit_events; DROP INDEX recovery_keys_disclosed_at; "
		 "ALTER TABLE audit DROP COLUMN actor_lc; "
		 "ALTER TABLE audit DROP COLUMN end_user_lc; "
		 "ALTER TABLE audit DROP COLUMN computer_lc; "
		 "ALTER TABLE recovery_keys DROP COLUMN origin; "
		 "INSERT INTO audit VALUES (1, 1000, 'helpdesk', 'disclosed', 'HelpDesk1', "
		 "'ALICE', 'PC-1', '', '', '', '', '', '', x'', x''); "
		 "PRAGMA user_version = 1;");
	rc = store_open(f->db, true, &f->s, msg, sizeof(msg));
	if (rc)
		fail_msg("%d %s", rc, msg);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 5);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE "
				 "name = 'limit_events'"), 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM pragma_table_info("
				 "'recovery_keys') WHERE name = 'origin'"), 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM audit WHERE actor_lc = "
				 "'helpdesk1' AND end_user_lc = 'alice' AND computer_lc = 'pc-1'"), 1);
	/* 0003's six indexes, made and then dropped by 0005: audit_at only. */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE "
				 "name LIKE 'audit_%' AND type = 'index'"), 1);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";

	sql_exec(f->path, "PRAGMA user_version = 99;");
	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), KW_ERR_SCHEMA);
	assert_null(f->s);
	assert_contains(msg, "99");
	assert_contains(msg, f->path);
	/* The database is left as it was. */
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 99);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema"), 0);
}

static void test_newer_schema_refused_without_migrate(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";
	int rc;

	/* Refused even when not migrating. */
	sql_exec(f->path, "PRAGMA user_version = 99;");
	rc = store_open(f->db, false, &f->s, msg, sizeof(msg));
	assert_int_equal(rc, KW_ERR_SCHEMA);
	assert_contains(msg, "99");
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	char msg[256] = "", bad[300];

	assert_int_equal(store_open("sqlite:", true, &f->s, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_true(msg[0] != '\0');
	msg[0] = '\0';
	assert_int_equal(store_open("mysql://x", true, &f->s, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_true(msg[0] != '\0');
	snprintf(bad, sizeof(bad), "sqlite:%s/no/such/folder/kw.db", f->dir);
	msg[0] = '\0';
	assert_int_equal(store_open(bad, true, &f->s, msg, sizeof(msg)), KW_ERR_STORE);
	assert_contains(msg, "no/such/folder");
	assert_null(f->s);
}

static void test_wal_and_foreign_keys(void **state)
{
	struct fx *f = *state;
	char mode[32];

	/* journal_mode is stored in the file: a second connection sees it. */
	sql_text(f->path, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	/* foreign_keys is per connection: see test_foreign_keys_enforced. */
}

/* A failed operation is counted once for /metrics: by the typed function,
 * not again by the backend's statement. */
static void test_failure_counted_once(void **state)
{
	struct fx *f = *state;
	char msg[256] = "";
	uint64_t before;
	size_t n = 0;

	store_close(f->s);
	f->s = NULL;
	sql_exec(f->path, "DROP TABLE enrollment_tokens;");
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);
	before = store_errors();
	assert_int_equal(store_read(f->s, tx_token_count, &n), KW_ERR_STORE);
	assert_int_equal(store_errors(), before + 1);
}

/* ---- the log's write buffer (walvfs.c) ---- */

static int tx_meta_big(struct store_tx *tx, void *arg)
{
	return store_meta_set(tx, "big", (const char *)arg);
}

/* Commits bigger than the log's write buffer (and than one write of the
 * unix VFS) are whole in the file as soon as store_write returns: a plain
 * SQLite connection sees them while the store is open, and so does one
 * opened after a process wrote them and exited without closing. */
static void test_commit_is_in_the_log_file(void **state)
{
	struct fx *f = *state;
	size_t sizes[] = { 100, 200 * 1024, 1300 * 1024 };
	char *v = malloc(1300 * 1024 + 1);
	int status;
	pid_t pid;

	assert_non_null(v);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char sql[96];

		memset(v, 'a' + (int)i, sizes[i]);
		v[sizes[i]] = '\0';
		assert_int_equal(store_write(f->s, tx_meta_big, v), 0);
		snprintf(sql, sizeof(sql), "SELECT length(value) || substr(value, -1) "
			 "FROM meta WHERE name = 'big'");
		sql_text(f->path, sql, v, 64);
		snprintf(sql, sizeof(sql), "%zu%c", sizes[i], 'a' + (int)i);
		assert_string_equal(v, sql);
	}

	/* A process that commits and dies without closing the store. */
	store_close(f->s);
	f->s = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s = NULL;
		char msg[256];

		memset(v, 'z', 300 * 1024);
		v[300 * 1024] = '\0';
		if (store_open(f->db, false, &s, msg, sizeof(msg)) < 0 ||
		    store_write(s, tx_meta_big, v) < 0)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	sql_text(f->path, "SELECT length(value) || substr(value, -1) FROM meta "
		 "WHERE name = 'big'", v, 64);
	assert_string_equal(v, "307200z");
	free(v);
}

/* Deferred syncs (walvfs.h): a COMMIT made while deferring owes a sync
 * once the log has been synced for real, and is visible to others. */
static void test_walvfs_deferred_sync(void **state)
{
	struct fx *f = *state;
	const char *vfs = walvfs_register();
	struct walvfs_log *log;
	sqlite3 *db = NULL;
	char path[600], v[16];

	assert_non_null(vfs);
	snprintf(path, sizeof(path), "%s/defer.db", f->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
					 vfs), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
				      "CREATE TABLE t (v TEXT)", NULL, NULL, NULL), SQLITE_OK);
	assert_non_null(log = walvfs_log(db));

	/* The log's first sync is real (its directory entry must be durable). */
	assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('one')", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_false(walvfs_owed(log));

	assert_true(walvfs_defer(log, true));
	assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('two')", NULL, NULL, NULL),
			 SQLITE_OK);
	walvfs_defer(log, false);
	assert_true(walvfs_owed(log));
	assert_false(walvfs_owed(log));   /* told once */
	sql_text(path, "SELECT group_concat(v) FROM t", v, sizeof(v));
	assert_string_equal(v, "one,two");
	assert_int_equal(walvfs_sync(log), SQLITE_OK);

	/* When the log starts over its new header is synced for real, even
	 * while deferring (then the commit's own sync is owed as usual). */
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
			 SQLITE_OK);
	{
		unsigned long before = walvfs_real_syncs(log);

		assert_true(walvfs_defer(log, true));
		assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('restart')", NULL, NULL,
					      NULL), SQLITE_OK);
		walvfs_defer(log, false);
		assert_int_equal(walvfs_real_syncs(log), before + 1);
		assert_true(walvfs_owed(log));
		assert_int_equal(walvfs_sync(log), SQLITE_OK);
	}

	/* Not deferring: nothing owed. */
	assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES ('3')", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_false(walvfs_owed(log));
	sqlite3_close(db);
}

/* The syncer (sqlite.c): a group is answered only once every earlier
 * group's deferred sync is done, even a group that wrote nothing; and a
 * failed sync fails its group and every write after it. A hook stands in
 * for a slow, then a failing disk. */
static sem_t sync_entered, sync_release;
static atomic_int sync_fail;

static int slow_sync(void)
{
	sem_post(&sync_entered);
	while (sem_wait(&sync_release) < 0)
		;
	if (atomic_exchange(&sync_fail, 0)) {   /* this sync only */
		errno = EIO;
		return -1;
	}
	return 0;
}

/* The syncer has reached the disk (within 10 s). */
static void wait_sync_entered(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	while (sem_timedwait(&sync_entered, &ts) < 0)
		assert_int_equal(errno, EINTR);
}

static int tx_write_meta(struct store_tx *tx, void *arg)
{
	return store_meta_set(tx, "order", (const char *)arg);
}

static int tx_nothing(struct store_tx *tx, void *arg)
{
	return 0;
}

struct done_rec {
	atomic_int order[2];
	atomic_int rc[2];
	atomic_int n;
};

static void done_a(int rc, void *arg)
{
	struct done_rec *d = arg;

	d->rc[0] = rc;
	d->order[0] = atomic_fetch_add(&d->n, 1) + 1;
}

static void done_b(int rc, void *arg)
{
	struct done_rec *d = arg;

	d->rc[1] = rc;
	d->order[1] = atomic_fetch_add(&d->n, 1) + 1;
}

static void wait_done(struct done_rec *d, int n)
{
	for (int i = 0; i < 1000 && atomic_load(&d->n) < n; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&d->n), n);
}

static void test_syncer_order_and_failure(void **state)
{
	struct fx *f = *state;
	struct done_rec d;
	char msg[256], reason[128];
	int early;

	/* A store whose syncs go through the hook. */
	store_close(f->s);
	f->s = NULL;
	sem_init(&sync_entered, 0, 0);
	sem_init(&sync_release, 0, 0);
	atomic_store(&sync_fail, 0);
	walvfs_set_sync_hook(slow_sync);
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);

	/* Group A commits and waits for its sync; group B writes nothing. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(store_write_async(f->s, tx_write_meta, "a", done_a, &d), 0);
	wait_sync_entered();
	assert_int_equal(store_write_async(f->s, tx_nothing, NULL, done_b, &d), 0);
	usleep(100000);           /* B has long been run by the writer */
	early = atomic_load(&d.n);
	sem_post(&sync_release);  /* A's sync is done */
	assert_int_equal(early, 0);
	wait_done(&d, 2);
	assert_int_equal(d.order[0], 1);
	assert_int_equal(d.order[1], 2);
	assert_int_equal(d.rc[0], 0);
	assert_int_equal(d.rc[1], 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_OK);

	/* A failing sync fails its group, a group committed meanwhile (no
	 * second fdatasync can vouch for it: Linux reports a writeback error
	 * once), and every write after it. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(store_write_async(f->s, tx_write_meta, "b", done_a, &d), 0);
	wait_sync_entered();
	assert_int_equal(store_write_async(f->s, tx_write_meta, "x", done_b, &d), 0);
	usleep(100000);           /* x committed, waiting for the syncer */
	atomic_store(&sync_fail, 1);
	for (int i = 0; i < 4; i++)   /* later syncs, if any, pass */
		sem_post(&sync_release);
	wait_done(&d, 2);
	assert_int_equal(d.rc[0], KW_ERR_STORE);
	assert_int_equal(d.rc[1], KW_ERR_STORE);
	assert_int_equal(store_write(f->s, tx_write_meta, "c"), KW_ERR_UNAVAILABLE);
	assert_int_equal(store_write(f->s, tx_nothing, NULL), KW_ERR_UNAVAILABLE);
	/* Said with the reason, and final: the disk works again, not the log. */
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_RESTART_NEEDED);
	assert_contains(reason, "restart keywarden");
	assert_contains(reason, strerror(EIO));
	assert_int_equal(store_last_state(), STORE_RESTART_NEEDED);

	store_close(f->s);
	f->s = NULL;
	walvfs_set_sync_hook(NULL);
	sem_destroy(&sync_entered);
	sem_destroy(&sync_release);
}

/* ---- group commit ---- */

#define NJOBS 16

struct gjob {
	struct store *s;
	int i;
	int rc;
};

static atomic_int blocker_running;

/* Runs first and holds the writer so that the others queue up behind it
 * and are committed together in the next group. */
static int tx_blocker(struct store_tx *tx, void *arg)
{
	struct user_rec u = user("blocker", 0);

	atomic_store(&blocker_running, 1);
	usleep(300 * 1000);
	return store_user_insert(tx, &u);
}

static void *blocker_thread(void *p)
{
	struct gjob *j = p;

	j->rc = store_write(j->s, tx_blocker, NULL);
	return NULL;
}

/* Even jobs succeed; odd ones insert a user and a token, then fail. */
static int tx_group_job(struct store_tx *tx, void *arg)
{
	struct gjob *j = arg;
	char name[16];
	struct user_rec u;
	struct token_rec t;
	int rc;

	snprintf(name, sizeof(name), "u%02d", j->i);
	u = user(name, 0);
	if ((rc = store_user_insert(tx, &u)) < 0)
		return rc;
	memset(&t, 0, sizeof(t));
	hash_of(t.hash, 1000 + j->i);
	t.uses_left = -1;
	if ((rc = store_token_insert(tx, &t, NULL)) < 0)
		return rc;
	return (j->i % 2) ? KW_ERR_CONFLICT : 0;
}

static void *group_thread(void *p)
{
	struct gjob *j = p;

	j->rc = store_write(j->s, tx_group_job, j);
	return NULL;
}

static void start_blocker(pthread_t *th, struct gjob *b)
{
	atomic_store(&blocker_running, 0);
	assert_int_equal(pthread_create(th, NULL, blocker_thread, b), 0);
	while (!atomic_load(&blocker_running))
		usleep(1000);
}

static void test_group_commit_failed_job_leaves_nothing(void **state)
{
	struct fx *f = *state;
	pthread_t th[NJOBS], bt;
	struct gjob jobs[NJOBS], b = { f->s, -1, 1 };
	struct names n = { .n = 0 };
	char name[16];

	start_blocker(&bt, &b);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct gjob){ f->s, i, 1 };
		assert_int_equal(pthread_create(&th[i], NULL, group_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < NJOBS; i++)
		pthread_join(th[i], NULL);
	pthread_join(bt, NULL);

	assert_int_equal(b.rc, 0);
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(jobs[i].rc, (i % 2) ? KW_ERR_CONFLICT : 0);
	/* Exactly the successful half, and the blocker. */
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, NJOBS / 2 + 1);
	assert_true(has_name(&n, "blocker"));
	for (int i = 0; i < NJOBS; i++) {
		snprintf(name, sizeof(name), "u%02d", i);
		if (has_name(&n, name) != !(i % 2))
			fail_msg("user %s is %s", name, (i % 2) ? "there" : "missing");
	}
	assert_int_equal(token_count(f->s), NJOBS / 2);
	/* Durable: a fresh connection sees the same. */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), NJOBS / 2 + 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM enrollment_tokens"), NJOBS / 2);
}

/* Two writers of the same name in one group: the second sees the first. */
struct same_job {
	struct store *s;
	int rc;
};

static int tx_same(struct store_tx *tx, void *arg)
{
	struct user_rec u = user("same", 0);

	return store_user_insert(tx, &u);
}

static void *same_thread(void *p)
{
	struct same_job *j = p;

	j->rc = store_write(j->s, tx_same, NULL);
	return NULL;
}

static void test_group_commit_sees_earlier_jobs(void **state)
{
	struct fx *f = *state;
	pthread_t th[4], bt;
	struct same_job jobs[4];
	struct gjob b = { f->s, -1, 1 };
	struct names n = { .n = 0 };
	int ok = 0, exists = 0;

	start_blocker(&bt, &b);
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct same_job){ f->s, 1 };
		assert_int_equal(pthread_create(&th[i], NULL, same_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (jobs[i].rc == 0)
			ok++;
		else if (jobs[i].rc == KW_ERR_EXISTS)
			exists++;
	}
	pthread_join(bt, NULL);
	assert_int_equal(ok, 1);
	assert_int_equal(exists, 3);
	assert_int_equal(store_read(f->s, tx_user_each, &n), 0);
	assert_int_equal(n.n, 2);
}

#define NWRITERS 8
#define NWRITES 40

struct writer {
	struct store *s;
	int i;
	int failures;
};

static int tx_token_n(struct store_tx *tx, void *arg)
{
	struct token_rec t;

	memset(&t, 0, sizeof(t));
	hash_of(t.hash, *(int *)arg);
	t.uses_left = -1;
	return store_token_insert(tx, &t, NULL);
}

static void *writer_thread(void *p)
{
	struct writer *w = p;

	for (int j = 0; j < NWRITES; j++) {
		int n = w->i * NWRITES + j;

		if (store_write(w->s, tx_token_n, &n) != 0)
			w->failures++;
	}
	return NULL;
}

struct reader {
	struct store *s;
	atomic_int *stop;
	int failures;
	int decreases;
	size_t reads;
};

static void *reader_thread(void *p)
{
	struct reader *r = p;
	size_t last = 0;

	while (!atomic_load(r->stop)) {
		size_t n = 0;

		if (store_read(r->s, tx_token_count, &n) != 0)
			r->failures++;
		else if (n < last)
			r->decreases++;
		last = n;
		r->reads++;
		usleep(500);
	}
	return NULL;
}

/* Failed writes of the log (walvfs_set_write_hook: the errno the log's
 * writes fail with, 0 for none): a full disk or an I/O error fails the
 * group it hit and keeps nothing of it, store_state says why, and writes
 * work again once the disk does, without reopening the store. */
static atomic_int write_fails;

static int failing_write(void)
{
	return atomic_load(&write_fails);
}

/* NJOBS group jobs committed together behind a blocker, as in
 * test_group_commit_failed_job_leaves_nothing. */
static void run_group_jobs(struct store *s, struct gjob *b, struct gjob jobs[NJOBS])
{
	pthread_t th[NJOBS], bt;

	start_blocker(&bt, b);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct gjob){ s, i, 1 };
		assert_int_equal(pthread_create(&th[i], NULL, group_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < NJOBS; i++)
		pthread_join(th[i], NULL);
	pthread_join(bt, NULL);
}

static void test_failed_log_write(void **state)
{
	struct fx *f = *state;
	struct gjob jobs[NJOBS], b = { NULL, -1, 1 };
	char msg[256], reason[128];
	int64_t users;

	store_close(f->s);
	walvfs_set_write_hook(failing_write);
	assert_int_equal(store_open(f->db, false, &f->s, msg, sizeof(msg)), 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_OK);
	users = sql_int(f->path, "SELECT count(*) FROM users");

	atomic_store(&write_fails, ENOSPC);
	b.s = f->s;
	run_group_jobs(f->s, &b, jobs);
	assert_int_equal(b.rc, KW_ERR_STORE);
	for (int i = 0; i < NJOBS; i++)   /* a job's own failure stays its own */
		assert_int_equal(jobs[i].rc, (i % 2) ? KW_ERR_CONFLICT : KW_ERR_STORE);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), users);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM enrollment_tokens"), 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_WRITES_FAILING);
	assert_string_equal(reason, "writes are failing: the disk is full");
	assert_int_equal(store_last_state(), STORE_WRITES_FAILING);

	/* A write that changes nothing does not show that writes work. */
	assert_int_equal(store_write(f->s, tx_nothing, NULL), 0);
	assert_int_equal(store_state(f->s, NULL, 0), STORE_WRITES_FAILING);

	atomic_store(&write_fails, EIO);
	assert_int_equal(store_write(f->s, tx_meta_big, "lost"), KW_ERR_STORE);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_WRITES_FAILING);
	assert_contains(reason, strerror(EIO));

	atomic_store(&write_fails, 0);
	run_group_jobs(f->s, &b, jobs);
	assert_int_equal(b.rc, 0);
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(jobs[i].rc, (i % 2) ? KW_ERR_CONFLICT : 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM users"), users + NJOBS / 2 + 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM meta WHERE name = 'big'"), 0);
	assert_int_equal(store_state(f->s, reason, sizeof(reason)), STORE_OK);
	assert_int_equal(store_last_state(), STORE_OK);

	store_close(f->s);
	f->s = NULL;
	walvfs_set_write_hook(NULL);
}

static void test_many_concurrent_writers(void **state)
{
	struct fx *f = *state;
	pthread_t th[NWRITERS], rt[2];
	struct writer w[NWRITERS];
	struct reader r[2];
	atomic_int stop = 0;

	for (int i = 0; i < 2; i++) {
		r[i] = (struct reader){ f->s, &stop, 0, 0, 0 };
		assert_int_equal(pthread_create(&rt[i], NULL, reader_thread, &r[i]), 0);
	}
	for (int i = 0; i < NWRITERS; i++) {
		w[i] = (struct writer){ f->s, i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &w[i]), 0);
	}
	for (int i = 0; i < NWRITERS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(rt[i], NULL);

	for (int i = 0; i < NWRITERS; i++)
		assert_int_equal(w[i].failures, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].failures, 0);
		assert_int_equal(r[i].decreases, 0);
	}
	assert_int_equal(token_count(f->s), NWRITERS * NWRITES);
	assert_int_equal(sql_int(f->path, "SELECT count(DISTINCT token_hash) FROM "
				 "enrollment_tokens"), NWRITERS * NWRITES);
}

/* ---- the audit report's search file (DATABASE-find, 0005) ---- */

static void fake_hash(const struct audit_rec *a, uint8_t out[32])
{
	memset(out, (int)(0x10 + a->seq), 32);
}

/* Appends record i: computer PC-(i % 3), actor and end user User(i % 2). */
static int tx_audit_n(struct store_tx *tx, void *arg)
{
	int n = *(int *)arg, rc;

	for (int i = 0; i < n; i++) {
		char computer[16], user[16];
		struct audit_rec a;

		snprintf(computer, sizeof(computer), "PC-%d", i % 3);
		snprintf(user, sizeof(user), "User%d", i % 2);
		memset(&a, 0, sizeof(a));
		a.at = 1000 + i;
		a.source = "self_service";
		a.result = "disclosed";
		a.actor = user;
		a.end_user = user;
		a.computer = computer;
		a.key_type = "recovery_password";
		if ((rc = store_audit_append(tx, &a, fake_hash)) < 0)
			return rc;
	}
	return 0;
}

struct find_page {
	struct audit_filter f;
	char got[512];
	int rc;
};

static int find_row(const struct audit_rec *a, void *arg)
{
	struct find_page *q = arg;
	size_t len = strlen(q->got);

	snprintf(q->got + len, sizeof(q->got) - len, "%s%lld", len ? " " : "", (long long)a->seq);
	return 0;
}

static int tx_find_page(struct store_tx *tx, void *arg)
{
	struct find_page *q = arg;

	q->got[0] = '\0';
	q->rc = store_audit_page(tx, &q->f, 0, false, 100, find_row, q);
	return 0;
}

static void find_expect(struct store *s, struct audit_filter f, const char *want)
{
	struct find_page q = { .f = f };

	assert_int_equal(store_read(s, tx_find_page, &q), 0);
	assert_int_equal(q.rc, 0);
	if (strcmp(q.got, want))
		fail_msg("page: \"%s\", want \"%s\"", q.got, want);
}

/* Rows of the search file (its own connection), -1 if it has no table. */
static int64_t find_count(const struct fx *f, const char *where)
{
	char path[192], sql[256];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	snprintf(path, sizeof(path), "%s-find", f->path);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit_find WHERE %s", where);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;   /* no file (yet) */
	}
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Waits (without a deadline that could fail a slow run: the thread copies
 * within its pause) until the search file holds n records. */
static void find_wait(const struct fx *f, int64_t n)
{
	struct timespec ten_ms = { 0, 10000000L };

	for (int i = 0; find_count(f, "1") != n; i++) {
		if (i > 60000)
			fail_msg("the search file never held %lld records", (long long)n);
		nanosleep(&ten_ms, NULL);
	}
}

static void find_pages(struct store *s)
{
	find_expect(s, (struct audit_filter){ .computer = "pc-1" }, "8 5 2");
	find_expect(s, (struct audit_filter){ .user = "USER1" }, "8 6 4 2");
	find_expect(s, (struct audit_filter){ .user = "user0", .computer = "PC-0" }, "7 1");
	find_expect(s, (struct audit_filter){ .result = "disclosed", .from = 1006 }, "8 7");
	find_expect(s, (struct audit_filter){ .source = "self_service", .to = 1002 }, "2 1");
}

/* The writer writes the records only; the search file's thread copies them
 * after the commit, and a page reads the records the file lacks from the
 * audit table itself: the same pages whatever the file holds. */
static void test_audit_search_file(void **state)
{
	struct fx *f = *state;
	int n = 8;
	char path[192];

	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	find_wait(f, 8);
	assert_int_equal(find_count(f, "computer_lc = 'pc-1' AND actor_lc = 'user1'"), 2);
	/* The audit table itself has no search index any more (0005). */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE "
				 "tbl_name = 'audit' AND type = 'index'"), 1);
	find_pages(f->s);
	/* A file behind the audit table (its thread not yet run): same pages. */
	snprintf(path, sizeof(path), "%s-find", f->path);
	sql_exec(path, "DELETE FROM audit_find WHERE seq > 3");
	find_pages(f->s);
	sql_exec(path, "DELETE FROM audit_find");
	find_pages(f->s);
}

/* A search file that does not belong to the database beside it (a backup
 * restored, a crash that lost the log's last commits) is deleted and
 * made again, and filled from the audit table, by its thread. */
static void test_audit_search_file_rebuilt(void **state)
{
	struct fx *f = *state;
	char msg[256] = "", path[192];
	int n = 8;

	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	find_wait(f, 8);
	store_close(f->s);
	f->s = NULL;
	snprintf(path, sizeof(path), "%s-find", f->path);
	sql_exec(path, "INSERT INTO audit_find VALUES (99, 1, 'disclosed', 'api', 'ghost', "
		 "'ghost', 'ghost'); UPDATE find_head SET seq = 99; CREATE TABLE marker (x);");
	assert_int_equal(store_open(f->db, true, &f->s, msg, sizeof(msg)), 0);
	find_wait(f, 8);
	assert_int_equal(find_count(f, "actor_lc = 'ghost'"), 0);
	/* Made again, not emptied row by row (one long transaction at a
	 * million records): what else the old file held is gone too. */
	assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = "
				 "'marker'"), 0);
	find_pages(f->s);
}

struct find_walk {
	struct audit_filter f;
	int64_t cursor, limit, n;
	char got[512];
};

static int walk_row(const struct audit_rec *a, void *arg)
{
	struct find_walk *w = arg;
	size_t len = strlen(w->got);

	snprintf(w->got + len, sizeof(w->got) - len, "%s%lld", len ? " " : "", (long long)a->seq);
	w->cursor = a->seq;
	w->n++;
	return 0;
}

static int tx_walk_page(struct store_tx *tx, void *arg)
{
	struct find_walk *w = arg;

	w->n = 0;
	return store_audit_page(tx, &w->f, w->cursor, false, w->limit, walk_row, w);
}

/* Pages of limit records, newest first, each after the last one's cursor,
 * until a short page (as the report does): the seqs seen, in order. */
static void find_walk_expect(struct store *s, struct audit_filter f, int64_t limit,
			     const char *want)
{
	struct find_walk w = { .f = f, .limit = limit };

	do
		assert_int_equal(store_read(s, tx_walk_page, &w), 0);
	while (w.n == limit);
	if (strcmp(w.got, want))
		fail_msg("pages: \"%s\", want \"%s\"", w.got, want);
}

/* Paging with a cursor across the boundary between the search file's
 * records and those it has not got yet, and with a file ahead of the
 * reader's snapshot of the audit table (the two files' snapshots are taken
 * apart): every record once, in order, and no short page before the end. */
static void test_audit_search_file_paging(void **state)
{
	struct fx *f = *state;
	struct audit_filter all = { .result = "disclosed" }, user = { .user = "user0" };
	char path[192];
	int n = 8;

	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	find_wait(f, 8);
	snprintf(path, sizeof(path), "%s-find", f->path);
	sql_exec(path, "DELETE FROM audit_find WHERE seq > 5");
	for (int64_t limit = 1; limit <= 4; limit++) {
		find_walk_expect(f->s, all, limit, "8 7 6 5 4 3 2 1");
		find_walk_expect(f->s, user, limit, "7 5 3 1");
	}
	/* The file filled again, then records 9 to 11 as it has them once the
	 * thread copied commits this snapshot does not see (the newest, and
	 * matching every filter). */
	sql_exec(path, "INSERT INTO audit_find VALUES "
		 "(6, 1005, 'disclosed', 'self_service', 'user1', 'user1', 'pc-2'), "
		 "(7, 1006, 'disclosed', 'self_service', 'user0', 'user0', 'pc-0'), "
		 "(8, 1007, 'disclosed', 'self_service', 'user1', 'user1', 'pc-1'), "
		 "(9, 2000, 'disclosed', 'self_service', 'user0', 'user0', 'pc-0'), "
		 "(10, 2001, 'disclosed', 'self_service', 'user0', 'user0', 'pc-1'), "
		 "(11, 2002, 'disclosed', 'self_service', 'user0', 'user0', 'pc-2')");
	for (int64_t limit = 1; limit <= 4; limit++) {
		find_walk_expect(f->s, all, limit, "8 7 6 5 4 3 2 1");
		find_walk_expect(f->s, user, limit, "7 5 3 1");
	}
}

static void pause_10ms(void)
{
	struct timespec ten_ms = { 0, 10000000L };

	nanosleep(&ten_ms, NULL);
}

/* Waits (no deadline that could fail a slow run) for /metrics' lag. */
static void lag_wait(int64_t want)
{
	for (int i = 0; store_search_lag() != want; i++) {
		if (i > 60000)
			fail_msg("lag %lld, want %lld", (long long)store_search_lag(),
				 (long long)want);
		pause_10ms();
	}
}

static void errors_wait(uint64_t above)
{
	for (int i = 0; store_errors() <= above; i++) {
		if (i > 60000)
			fail_msg("no store error counted");
		pause_10ms();
	}
}

static void find_files_remove(const struct fx *f)
{
	static const char *const ext[] = { "-find", "-find-wal", "-find-shm" };

	for (size_t i = 0; i < 3; i++) {
		char path[192];

		snprintf(path, sizeof(path), "%s%s", f->path, ext[i]);
		unlink(path);
	}
}

/* A search file that is not a database never stops keywarden: it is
 * deleted and made again at open. */
static void test_audit_search_file_garbage(void **state)
{
	struct fx *f = *state;
	char msg[256] = "", path[192];
	int n = 8;
	FILE *fp;

	store_close(f->s);
	f->s = NULL;
	find_files_remove(f);
	snprintf(path, sizeof(path), "%s-find", f->path);
	assert_non_null(fp = fopen(path, "w"));
	for (int i = 0; i < 512; i++)
		fputs("not a database, not at all; ", fp);
	fclose(fp);
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0)
		fail_msg("store_open: %s", msg);
	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	find_pages(f->s);
	find_wait(f, 8);
	lag_wait(0);
	find_pages(f->s);
}

/* A search file that cannot be made (here a directory in its place):
 * keywarden runs without it, counted and with the lag in /metrics, the
 * pages the same (from the audit table alone); it is made once it can be. */
static void test_audit_search_file_cannot_be_made(void **state)
{
	struct fx *f = *state;
	char msg[256] = "", path[192];
	uint64_t errors = store_errors();
	int n = 8;

	store_close(f->s);
	f->s = NULL;
	find_files_remove(f);
	snprintf(path, sizeof(path), "%s-find", f->path);
	assert_int_equal(mkdir(path, 0700), 0);
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0)
		fail_msg("store_open: %s", msg);
	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	errors_wait(errors);
	lag_wait(8);
	find_pages(f->s);
	find_walk_expect(f->s, (struct audit_filter){ .user = "user0" }, 1, "7 5 3 1");
	assert_int_equal(rmdir(path), 0);
	find_wait(f, 8);
	lag_wait(0);
	find_pages(f->s);
}

/* The file deleted while the server runs: the thread makes it again
 * (not a deleted file's inode) and new readers use the new one. */
static void test_audit_search_file_deleted(void **state)
{
	struct fx *f = *state;
	int n = 8;

	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	find_wait(f, 8);
	find_pages(f->s);
	find_files_remove(f);
	n = 2;
	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	find_wait(f, 10);
	lag_wait(0);
	find_expect(f->s, (struct audit_filter){ .computer = "pc-1" }, "8 5 10 2");
}

/* The file broken while the server runs (its table gone: the copy cannot
 * even be prepared): counted, deleted and made again; a page meanwhile
 * reads the audit table alone. */
static void test_audit_search_file_broken(void **state)
{
	struct fx *f = *state;
	char path[192];
	uint64_t errors;
	int n = 8;

	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	find_wait(f, 8);
	find_pages(f->s);
	errors = store_errors();
	snprintf(path, sizeof(path), "%s-find", f->path);
	sql_exec(path, "DROP TABLE audit_find");
	find_pages(f->s);
	n = 2;
	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	errors_wait(errors);
	find_wait(f, 10);
	lag_wait(0);
	find_expect(f->s, (struct audit_filter){ .computer = "pc-1" }, "8 5 10 2");
}

/* ---- store_backup ---- */

static void test_backup(void **state)
{
	struct fx *f = *state;
	char msg[256] = "", copy[192], copydb[200];
	struct store *c = NULL;
	struct names names = { .n = 0 };
	int n = 8;

	assert_int_equal(add_user(f->s, "alice"), 0);
	assert_int_equal(store_write(f->s, tx_audit_n, &n), 0);
	snprintf(copy, sizeof(copy), "%s/copy.db", f->dir);
	assert_int_equal(store_backup(f->s, copy, msg, sizeof(msg)), 0);
	/* A keywarden database as it is: the same schema, the records. */
	assert_int_equal(sql_int(copy, "PRAGMA user_version"),
			 sql_int(f->path, "PRAGMA user_version"));
	assert_int_equal(sql_int(copy, "SELECT count(*) FROM audit"), 8);
	snprintf(copydb, sizeof(copydb), "sqlite:%s", copy);
	assert_int_equal(store_open(copydb, true, &c, msg, sizeof(msg)), 0);
	assert_int_equal(store_read(c, tx_user_each, &names), 0);
	assert_true(has_name(&names, "alice"));
	find_expect(c, (struct audit_filter){ .computer = "pc-1" }, "8 5 2");
	store_close(c);

	/* An existing file is never replaced. */
	assert_int_equal(store_backup(f->s, copy, msg, sizeof(msg)), KW_ERR_EXISTS);
	assert_contains(msg, "exists");
	assert_int_equal(sql_int(copy, "SELECT count(*) FROM audit"), 8);
	/* Nowhere to write: a clear error, nothing left. */
	snprintf(copy, sizeof(copy), "%s/none/copy.db", f->dir);
	assert_int_equal(store_backup(f->s, copy, msg, sizeof(msg)), KW_ERR_IO);
	assert_contains(msg, "cannot create a file in");
	assert_contains(msg, "No such file or directory");
	/* A directory there is a file there too. */
	snprintf(copy, sizeof(copy), "%s/taken", f->dir);
	assert_int_equal(mkdir(copy, 0700), 0);
	assert_int_equal(store_backup(f->s, copy, msg, sizeof(msg)), KW_ERR_EXISTS);
	assert_int_equal(rmdir(copy), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_fresh_and_again, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_version_1, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused_without_migrate,
						setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_wal_and_foreign_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_is_in_the_log_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walvfs_deferred_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syncer_order_and_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_failed_job_leaves_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_sees_earlier_jobs,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_log_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_search_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_search_file_rebuilt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_search_file_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_search_file_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_search_file_cannot_be_made, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_audit_search_file_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_search_file_broken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
