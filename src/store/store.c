/* The store's backend-neutral half: choosing and opening a backend, the
 * entry points of store.h, and what backends share (backend.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "util/err.h"

static atomic_uint_fast64_t error_count;
static atomic_int last_state;

void store_count_error(void)
{
	atomic_fetch_add(&error_count, 1);
}

uint64_t store_errors(void)
{
	return atomic_load(&error_count);
}

void store_note_state(enum store_state state)
{
	atomic_store(&last_state, (int)state);
}

enum store_state store_last_state(void)
{
	return (enum store_state)atomic_load(&last_state);
}

enum store_state store_state(struct store *s, char *reason, size_t reasonlen)
{
	return store_ops_of(s)->state(s, reason, reasonlen);
}

const char *key_state_name(enum key_state s)
{
	switch (s) {
	case KEY_ACTIVE: return "active";
	case KEY_REMOVED: return "removed";
	case KEY_DISCLOSED: return "disclosed";
	case KEY_SUPERSEDED: return "superseded";
	}
	return "unknown";
}

const struct store_ops *store_backend(const char *database, const char **location,
				      char *msg, size_t msglen)
{
	if (strncmp(database, "sqlite:", 7) == 0) {
		if (!database[7]) {
			snprintf(msg, msglen, "database = sqlite: needs a file path");
			return NULL;
		}
		*location = database + 7;
		return store_sqlite_ops();
	}
	if (strncmp(database, "postgresql://", 13) == 0 ||
	    strncmp(database, "postgres://", 11) == 0) {
		snprintf(msg, msglen, "this build of keywarden has no PostgreSQL store yet");
		return NULL;
	}
	snprintf(msg, msglen, "database = %s: use sqlite:PATH or postgresql://…", database);
	return NULL;
}

int store_open(const char *database, bool migrate, struct store **out,
	       char *msg, size_t msglen)
{
	const struct store_ops *ops;
	const char *location = NULL;
	struct store *s = NULL;
	int rc, from, to;

	if (!(ops = store_backend(database, &location, msg, msglen)))
		return KW_ERR_INVALID;
	if ((rc = ops->open(location, &s, msg, msglen)) < 0)
		return rc;
	if (migrate && (rc = ops->migrate(s, &from, &to, msg, msglen)) < 0) {
		ops->close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (s)
		store_ops_of(s)->close(s);
}

const struct store_ops *store_ops_of(struct store *s)
{
	return ((const struct store_base *)(const void *)s)->ops;
}

const struct store_ops *store_tx_ops(struct store_tx *tx)
{
	return ((const struct store_tx_base *)(const void *)tx)->ops;
}

int store_read(struct store *s, store_fn fn, void *arg)
{
	return store_ops_of(s)->read(s, fn, arg);
}

int store_lookup(struct store *s, store_fn fn, void *arg)
{
	return store_ops_of(s)->lookup(s, fn, arg);
}

int store_write(struct store *s, store_fn fn, void *arg)
{
	return store_ops_of(s)->write(s, fn, arg);
}

int store_write_async(struct store *s, store_fn fn, void *arg, store_done_fn done,
		      void *done_arg)
{
	return store_ops_of(s)->write_async(s, fn, arg, done, done_arg);
}

/* ---- for backends: migrations ---- */

int store_schema_latest(const struct embedded_file *files)
{
	int v = 0;

	for (const struct embedded_file *f = files; f->name; f++) {
		int n = (int)strtol(f->name, NULL, 10);

		if (n > v)
			v = n;
	}
	return v;
}

int store_schema_check(const char *location, int version,
		       const struct embedded_file *files, char *msg, size_t msglen)
{
	int latest = store_schema_latest(files);

	if (version <= latest)
		return 0;
	snprintf(msg, msglen, "database %s has schema version %d, newer than this "
		 "keywarden (%d); run a newer keywarden", location, version, latest);
	return KW_ERR_SCHEMA;
}

int store_schema_migrate(struct store *s, const char *location,
			 const struct embedded_file *files, store_apply_fn apply, int *to,
			 char *msg, size_t msglen)
{
	int latest = store_schema_latest(files), rc;
	char err[256];

	if ((rc = store_schema_check(location, *to, files, msg, msglen)) < 0)
		return rc;
	for (int v = *to + 1; v <= latest; v++) {
		const struct embedded_file *f = NULL;

		for (const struct embedded_file *m = files; m->name; m++)
			if ((int)strtol(m->name, NULL, 10) == v)
				f = m;
		if (!f) {
			snprintf(msg, msglen, "migration %d is missing", v);
			return KW_ERR_INTERNAL;
		}
		if ((rc = apply(s, (const char *)f->data, v, err, sizeof(err))) < 0) {
			snprintf(msg, msglen, "migration %s failed: %s", f->name, err);
			return rc;
		}
		*to = v;
	}
	return 0;
}
