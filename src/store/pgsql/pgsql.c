/* The PostgreSQL store (libpq): a pool of reader connections for snapshots
 * and single lookups, writer threads that commit concurrent write jobs in
 * groups (writer.c), its own migrations. Here: open, close, migrations,
 * reads and the operation table, which each record's file fills in. Several
 * keywarden instances may share the database (store_ops.shared). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "store/backend.h"
#include "store/pgsql.h"
#include "store/pgsql/internal.h"
#include "util/err.h"
#include "util/log.h"

/* migrations/pgsql/, embedded by tools/embed.py. */
extern const struct embedded_file migrations_pgsql[];

static struct store_ops table;
const struct store_ops *pg_ops = &table;

/* Migrations take this session lock (an arbitrary constant, "kwmigr"), so
 * that of instances started at once one migrates and the others then find
 * the schema done. */
#define MIGRATE_LOCK "7031" "4116" "9"

/* "user@host:port/db" of the URL, for messages: never its password. */
static char *where_of(const char *url)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL);
	const char *user = "", *host = "", *port = "", *db = "";
	char buf[400];

	if (!opts)
		return strdup("(an invalid PostgreSQL URL)");
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "user"))
			user = o->val;
		else if (!strcmp(o->keyword, "host"))
			host = o->val;
		else if (!strcmp(o->keyword, "port"))
			port = o->val;
		else if (!strcmp(o->keyword, "dbname"))
			db = o->val;
	}
	snprintf(buf, sizeof(buf), "%s%s%s%s%s/%s", user, *user ? "@" : "",
		 *host ? host : "localhost", *port ? ":" : "", port, db);
	PQconninfoFree(opts);
	return strdup(buf);
}

static void pgsql_close(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	for (int i = 0; i < PG_WRITERS; i++)
		pg_conn_close(&s->writers[i]);
	for (int i = 0; i < PG_READERS; i++)
		pg_conn_close(&s->readers[i]);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->rlock);
	pthread_mutex_destroy(&s->hlock);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->rfree);
	if (s->url)
		sodium_memzero(s->url, strlen(s->url));  /* may hold a password */
	free(s->url);
	free(s->where);
	free(s);
}

/* The schema version (kw_schema; 0 before the first migration). */
static int schema_version(struct pconn *c, int *v, char *msg, size_t msglen)
{
	PGresult *r = PQexec(c->pg, "SELECT version FROM kw_schema");
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	int rc = 0;

	*v = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		if (PQntuples(r) == 1)
			*v = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	} else if (!state || strcmp(state, "42P01")) {   /* 42P01: no such table */
		snprintf(msg, msglen, "cannot read the schema version: %s",
			 PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) ?
			 PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : "no answer");
		rc = PQstatus(c->pg) == CONNECTION_OK ? KW_ERR_STORE : KW_ERR_UNAVAILABLE;
	}
	PQclear(r);
	return rc;
}

static const struct pg_query q_version_set = {
	"INSERT INTO kw_schema (version) VALUES ($1::integer)" };

/* One file and its version number, in one transaction. The files are the
 * program's own SQL, run as they are (several statements each). */
static int apply(struct store *s, const char *sql, int version, char *err, size_t errlen)
{
	struct pconn *c = s->migrating;
	PGresult *r;
	int rc = KW_ERR_STORE;

	if (pg_run(c, "BEGIN") < 0)
		goto out;
	r = PQexec(c->pg, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		goto out;
	}
	PQclear(r);
	if (pg_run(c, "CREATE TABLE IF NOT EXISTS kw_schema (version integer NOT NULL); "
		   "DELETE FROM kw_schema") < 0 ||
	    pg_exec(c, &q_version_set, PG_ARGS(PG_INT(version))) < 0)
		goto out;
	r = PQexec(c->pg, "COMMIT");
	if (PQresultStatus(r) == PGRES_COMMAND_OK && !strcmp(PQcmdStatus(r), "COMMIT"))
		rc = 0;
	PQclear(r);
out:
	if (rc < 0) {
		snprintf(err, errlen, "%s", c->pg ? PQerrorMessage(c->pg) : "connection lost");
		if (c->pg)
			pg_run(c, "ROLLBACK");
	}
	return rc;
}

static int pgsql_migrate(struct store *s, int *from, int *to, char *msg, size_t msglen)
{
	struct pconn *c;
	int rc;

	if ((rc = pg_reader_get(s, &c)) < 0) {
		snprintf(msg, msglen, "cannot connect to PostgreSQL at %s", s->where);
		return rc;
	}
	s->migrating = c;
	/* A migration of a large table, and an instance waiting for another's
	 * to finish, may take longer than statements otherwise may. */
	if ((rc = pg_run(c, "SET statement_timeout = 0")) < 0 ||
	    (rc = pg_run(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")")) < 0) {
		snprintf(msg, msglen, "cannot lock the schema of %s for migrating", s->where);
		goto out;
	}
	if ((rc = schema_version(c, from, msg, msglen)) == 0) {
		*to = *from;
		rc = store_schema_migrate(s, s->where, migrations_pgsql, apply, to, msg, msglen);
	}
	pg_run(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
out:
	s->migrating = NULL;
	pg_conn_close(c);   /* the pool's next use connects with its settings */
	pg_reader_put(s, c);
	return rc;
}

/* pg_reader_get waits against the monotonic clock. */
static void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &ca);
	pthread_condattr_destroy(&ca);
}

static int pgsql_open(const char *location, struct store **out, char *msg, size_t msglen)
{
	struct store *s = calloc(1, sizeof(*s));
	int rc = KW_ERR_NOMEM, version = 0;

	if (!s) {
		snprintf(msg, msglen, "out of memory");
		return KW_ERR_NOMEM;
	}
	s->base.ops = pg_ops;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	pthread_mutex_init(&s->hlock, NULL);
	pthread_cond_init(&s->wake, NULL);
	cond_init_monotonic(&s->rfree);
	if (!(s->url = strdup(location)) || !(s->where = where_of(location))) {
		snprintf(msg, msglen, "out of memory");
		goto out;
	}
	for (int i = PG_READERS - 1; i >= 0; i--) {
		s->readers[i].owner = s;
		s->readers[i].next = s->idle;
		s->idle = &s->readers[i];
	}
	store_note_state(STORE_OK);
	/* Connected at once: a wrong URL or password is said at start. */
	if ((rc = pg_conn_open(s, &s->readers[0], msg, msglen)) < 0)
		goto out;
	/* A database from a newer keywarden is never used, migrated or not. */
	if ((rc = schema_version(&s->readers[0], &version, msg, msglen)) < 0 ||
	    (rc = store_schema_check(s->where, version, migrations_pgsql, msg, msglen)) < 0)
		goto out;
	for (int i = 0; i < PG_WRITERS; i++) {
		s->writers[i].owner = s;
		s->writers[i].writer = true;
		if ((rc = pg_conn_open(s, &s->writers[i], msg, msglen)) < 0)
			goto out;
	}
	for (int i = 0; i < PG_WRITERS; i++) {
		if (pthread_create(&s->threads[i], NULL, pg_writer_main, &s->writers[i]) != 0) {
			snprintf(msg, msglen, "cannot start the database writer: %s",
				 strerror(errno));
			rc = KW_ERR_NOMEM;
			goto out;
		}
		s->nthreads++;
	}
	*out = s;
	s = NULL;   /* owned by caller */
	rc = 0;
out:
	pgsql_close(s);
	return rc;
}

static int pgsql_read(struct store *s, store_fn fn, void *arg)
{
	struct store_tx tx = { .base = { .ops = pg_ops }, .s = s };
	int rc;

	if ((rc = pg_reader_get(s, &tx.c)) < 0)
		return rc;
	rc = pg_run(tx.c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc == KW_ERR_UNAVAILABLE && !tx.c->pg) {
		/* Lost while idle, before fn ran: once more on a new connection. */
		char msg[320];

		if ((rc = pg_conn_ready(s, tx.c, msg, sizeof(msg))) == 0)
			rc = pg_run(tx.c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	}
	if (rc == 0) {
		rc = fn(&tx, arg);
		pg_run(tx.c, "ROLLBACK");
	}
	pg_reader_put(s, tx.c);
	return rc;
}

/* One statement is a consistent read on its own: no transaction around. */
static int pgsql_lookup(struct store *s, store_fn fn, void *arg)
{
	struct store_tx tx = { .base = { .ops = pg_ops }, .s = s };
	int rc;

	if ((rc = pg_reader_get(s, &tx.c)) < 0)
		return rc;
	rc = fn(&tx, arg);
	pg_reader_put(s, tx.c);
	return rc;
}

/* On a connection of its own: readers are read-only, the writers busy. */
static void pgsql_analyze(struct store *s)
{
	struct pconn c = { .owner = s };
	char msg[320];
	int rc;

	if ((rc = pg_conn_open(s, &c, msg, sizeof(msg))) < 0) {
		log_error("database: statistics not updated: %s", msg);
		return;
	}
	/* A failure is logged by pg_run. */
	pg_run(&c, "ANALYZE devices, volumes, recovery_keys, logons, associations, audit");
	pg_conn_close(&c);
}

static void setup(void)
{
	table.name = "postgresql";
	table.shared = true;   /* a network database: several instances */
	table.open = pgsql_open;
	table.close = pgsql_close;
	table.migrate = pgsql_migrate;
	table.read = pgsql_read;
	table.lookup = pgsql_lookup;
	table.write = pg_write;
	table.write_async = pg_write_async;
	table.write_async_batch = pg_write_async_batch;
	table.state = pg_state;
	table.analyze = pgsql_analyze;
	pg_meta_ops(&table);
	pg_device_ops(&table);
	pg_key_ops(&table);
	pg_logon_ops(&table);
	pg_user_ops(&table);
	pg_audit_ops(&table);
	pg_limit_ops(&table);
	pg_copy_ops(&table);
}

const struct store_ops *store_pgsql_ops(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, setup);
	return &table;
}
