/* The SQLite store: WAL, synchronous=FULL, foreign keys, one writer thread
 * that commits concurrent write jobs in groups (writer.c), and a pool of
 * reader connections for snapshots (readers.c). Here: open, close and the
 * operation table, which each record's file fills in. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite.h"
#include "store/sqlite/internal.h"
#include "util/err.h"

static struct store_ops table;
const struct store_ops *sq_ops = &table;
const char *sq_vfs_name;

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
	sq_find_close(s);
	if (s->syncer_started) {
		pthread_mutex_lock(&s->slock);
		s->sync_stopping = true;
		pthread_cond_signal(&s->swake);
		pthread_mutex_unlock(&s->slock);
		pthread_join(s->syncer, NULL);
	}
	sq_readers_close(s);
	sq_conn_close(s->writer);
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

static int sqlite_open(const char *location, struct store **out, char *msg, size_t msglen)
{
	struct store *s = calloc(1, sizeof(*s));
	int rc = KW_ERR_NOMEM, version = 0;

	if (!s || !(s->path = strdup(location)) ||
	    !(s->wal_path = malloc(strlen(location) + sizeof("-wal")))) {
		if (s)
			free(s->path);
		free(s);
		snprintf(msg, msglen, "out of memory");
		return KW_ERR_NOMEM;
	}
	snprintf(s->wal_path, strlen(location) + sizeof("-wal"), "%s-wal", location);
	s->base.ops = sq_ops;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	pthread_mutex_init(&s->slock, NULL);
	pthread_mutex_init(&s->hlock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->swake, NULL);
	store_note_state(STORE_OK);
	if ((rc = sq_conn_open(location, true, &s->writer, msg, msglen)) < 0)
		goto out;
	s->writer->writer = true;
	/* A database from a newer keywarden is never used, migrated or not. */
	if ((rc = sq_schema_version(s->writer, &version)) < 0) {
		snprintf(msg, msglen, "cannot read the schema version of %s", location);
		goto out;
	}
	if ((rc = store_schema_check(location, version, migrations_sqlite, msg, msglen)) < 0)
		goto out;
	sqlite3_wal_hook(s->writer->db, sq_wal_hook, s);
	sq_log_open(s);
	/* The audit report's search file, once there is an audit table (else
	 * after the migrations: sq_migrate). */
	if (version > 0 && (rc = sq_find_open(s, msg, msglen)) < 0)
		goto out;
	if (pthread_create(&s->syncer, NULL, sq_syncer_main, s) != 0) {
		snprintf(msg, msglen, "cannot start the database syncer: %s",
			 strerror(errno));
		rc = KW_ERR_NOMEM;
		goto out;
	}
	s->syncer_started = true;
	if (pthread_create(&s->thread, NULL, sq_writer_main, s) != 0) {
		snprintf(msg, msglen, "cannot start the database writer: %s",
			 strerror(errno));
		rc = KW_ERR_NOMEM;
		goto out;
	}
	s->thread_started = true;
	*out = s;
	s = NULL;   /* owned by caller */
	rc = 0;
out:
	sqlite_close(s);
	return rc;
}

/* SQLite's memory statistics take a global mutex on every allocation:
 * off, before SQLite starts. */
static void setup(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sq_vfs_name = walvfs_register();
	table.name = "sqlite";
	table.shared = false;   /* a file of one machine: one instance */
	table.open = sqlite_open;
	table.close = sqlite_close;
	table.migrate = sq_migrate;
	table.read = sq_read;
	table.lookup = sq_lookup;
	table.write = sq_write;
	table.write_async = sq_write_async;
	table.state = sq_state;
	table.backup = sq_backup;
	sq_meta_ops(&table);
	sq_device_ops(&table);
	sq_key_ops(&table);
	sq_logon_ops(&table);
	sq_user_ops(&table);
	sq_audit_ops(&table);
	sq_limit_ops(&table);
	sq_copy_ops(&table);
}

const struct store_ops *store_sqlite_ops(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, setup);
	return &table;
}
