/* The schema version (PRAGMA user_version) and one migration applied; the
 * runner that picks the files is store_schema_migrate (backend.h). */
#include <stdio.h>

#include "store/backend.h"
#include "store/sqlite/internal.h"
#include "util/err.h"

int sq_schema_version(struct conn *c, int *v)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return sq_map_rc(c, SQLITE_ERROR, "PRAGMA user_version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : sq_map_rc(c, rc, "PRAGMA user_version");
}

/* One file and its version number, in one transaction. */
static int apply(struct store *s, const char *sql, int version, char *err, size_t errlen)
{
	sqlite3 *db = s->writer->db;
	char pragma[64], *e = NULL;

	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d;", version);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &e) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK ||
	    sqlite3_exec(db, pragma, NULL, NULL, &e) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, &e) != SQLITE_OK) {
		snprintf(err, errlen, "%s", e ? e : sqlite3_errmsg(db));
		sqlite3_free(e);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return KW_ERR_STORE;
	}
	return 0;
}

int sq_migrate(struct store *s, int *from, int *to, char *msg, size_t msglen)
{
	int rc;

	if ((rc = sq_schema_version(s->writer, from)) < 0) {
		snprintf(msg, msglen, "cannot read the schema version of %s", s->path);
		return rc;
	}
	*to = *from;
	if ((rc = store_schema_migrate(s, s->path, migrations_sqlite, apply, to, msg, msglen)) < 0)
		return rc;
	/* A new database has its audit table now (sqlite.c). */
	return s->find_init ? 0 : sq_find_open(s, msg, msglen);
}
