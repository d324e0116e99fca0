/* The SQLite store's reads: a pool of reader connections, each a snapshot
 * of the database while a store_read runs on it. */
#include <stdio.h>

#include "store/sqlite/internal.h"
#include "util/err.h"
#include "util/log.h"

#define STR_(x) #x
#define STR(x) STR_(x)

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
	if (c)
		goto out;
	if ((rc = sq_conn_open(s->path, false, &c, msg, sizeof(msg))) < 0) {
		store_count_error();
		log_error("database: %s", msg);
		return rc;
	}
	/* Readers look up single rows through indexes: a small cache each
	 * keeps the server's memory flat however large the database grows
	 * (the kernel's page cache holds the rest). */
	sqlite3_exec(c->db, "PRAGMA query_only = ON; PRAGMA cache_size = -"
		     STR(READER_CACHE_KIB), NULL, NULL, NULL);
out:
	/* The audit report's search file, as "find", once the search thread
	 * has set it up (again): without it the report reads the audit table
	 * alone (audit.c). */
	sq_find_reader(s, c);
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
	sq_conn_close(c);
}

int sq_read(struct store *s, store_fn fn, void *arg)
{
	struct store_tx tx = { .base = { .ops = sq_ops }, .s = s };
	int rc;

	if ((rc = reader_get(s, &tx.c)) < 0)
		return rc;
	if ((rc = sq_run(tx.c, SQ_BEGIN)) == 0) {
		rc = fn(&tx, arg);
		sq_run(tx.c, SQ_ROLLBACK);
	}
	reader_put(s, tx.c);
	return rc;
}

/* One statement is a consistent read on its own: no transaction around. */
int sq_lookup(struct store *s, store_fn fn, void *arg)
{
	struct store_tx tx = { .base = { .ops = sq_ops }, .s = s };
	int rc;

	if ((rc = reader_get(s, &tx.c)) < 0)
		return rc;
	rc = fn(&tx, arg);
	reader_put(s, tx.c);
	return rc;
}

void sq_readers_close(struct store *s)
{
	while (s->readers) {
		struct conn *c = s->readers;

		s->readers = c->next;
		sq_conn_close(c);
	}
	s->nreaders = 0;
}
