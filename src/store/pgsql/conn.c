/* Connections of the PostgreSQL store (keywarden's settings, reset after a
 * failure), the reader pool, error mapping and the query helpers every
 * operation goes through. Arguments are always sent apart from the SQL
 * (prepared statements); results come back in binary. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pgsql/internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/str.h"

#define STR_(x) #x
#define STR(x) STR_(x)

int64_t pg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

void pg_log_failure(const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int64_t last = -PG_FAILURE_LOG_SECONDS;
	static unsigned skipped;
	char line[512];
	va_list ap;
	int64_t now = pg_now();
	unsigned n;

	pthread_mutex_lock(&lock);
	if (now - last < PG_FAILURE_LOG_SECONDS) {
		skipped++;
		pthread_mutex_unlock(&lock);
		return;
	}
	last = now;
	n = skipped;
	skipped = 0;
	pthread_mutex_unlock(&lock);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n)
		log_error("%s (and %u more failures not logged)", line, n);
	else
		log_error("%s", line);
}

char *pg_fold(const char *s)
{
	return str_lower_dup(s ? s : "");
}

/* libpq's message, one line, without its trailing newline. */
static void one_line(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; in && *in && n + 1 < outlen; in++)
		out[n++] = (*in == '\n' || *in == '\r') ? ' ' : *in;
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

void pg_conn_close(struct pconn *c)
{
	if (!c)
		return;
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->nprepared = 0;
}

/* A commit is acknowledged once it is on the disk (and on synchronous
 * standbys), whatever the server, the role or the URL say. Statements end:
 * PG_STATEMENT_TIMEOUT_MS unless a statement_timeout is set already (by
 * the server, the role, the database or the URL's options). Prepared
 * statements are planned for their values and the tables as they are at
 * each run: a generic plan made while a table was empty (a new site, the
 * start of an import) kept scanning it whole as it grew, and an import of
 * 20 000 rows went from seconds to many minutes. */
static const char settings[] =
	"SET synchronous_commit = on; "
	"SET plan_cache_mode = force_custom_plan; "
	"SET client_encoding = 'UTF8'; "
	"SET client_min_messages = warning; "
	"SELECT set_config('statement_timeout', '" STR(PG_STATEMENT_TIMEOUT_MS) "', false) "
	"WHERE current_setting('statement_timeout') = '0'; "
	"SELECT setting FROM pg_settings WHERE name = 'statement_timeout'";

/* Notices (a table that exists already, …) are not for the log; a
 * WARNING is noted on the connection: one during a COMMIT means the commit
 * is not what it seems (writer.c). */
static void notice_of(void *arg, const PGresult *r)
{
	struct pconn *c = arg;
	const char *severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);

	if (severity && !strcmp(severity, "WARNING"))
		c->warned = true;
}

int pg_conn_open(struct store *s, struct pconn *c, char *msg, size_t msglen)
{
	/* The defaults come before the URL, which may set its own; libpq
	 * takes the last value of each. */
	const char *keys[] = { "connect_timeout", "tcp_user_timeout", "dbname",
			       "application_name", NULL };
	const char *values[] = { STR(PG_CONNECT_TIMEOUT_S), STR(PG_TCP_TIMEOUT_MS), s->url,
				 "keywarden", NULL };
	char why[200];
	PGresult *r;

	pg_conn_close(c);
	c->pg = PQconnectdbParams(keys, values, 1);
	if (!c->pg) {
		snprintf(msg, msglen, "cannot connect to PostgreSQL at %s: out of memory",
			 s->where);
		return KW_ERR_NOMEM;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		one_line(PQerrorMessage(c->pg), why, sizeof(why));
		snprintf(msg, msglen, "cannot connect to PostgreSQL at %s: %s", s->where, why);
		pg_conn_close(c);
		return KW_ERR_UNAVAILABLE;
	}
	PQsetNoticeReceiver(c->pg, notice_of, c);
	r = PQexec(c->pg, settings);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		one_line(PQerrorMessage(c->pg), why, sizeof(why));
		snprintf(msg, msglen, "cannot set up the connection to PostgreSQL at %s: %s",
			 s->where, why);
		PQclear(r);
		pg_conn_close(c);
		return KW_ERR_STORE;
	}
	/* In milliseconds: how long a COMMIT may wait (writer.c). */
	c->timeout_ms = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	if (c->timeout_ms <= 0)
		c->timeout_ms = PG_STATEMENT_TIMEOUT_MS;
	PQclear(r);
	return 0;
}

/* A connection the server closed (restarted, or ended it) has something
 * to read while idle: look without waiting, so that a stale connection is
 * replaced before a request uses it rather than failing it. */
static bool conn_lost(struct pconn *c)
{
	struct pollfd p = { .fd = PQsocket(c->pg), .events = POLLIN };

	if (PQstatus(c->pg) != CONNECTION_OK || p.fd < 0)
		return true;
	if (poll(&p, 1, 0) <= 0)
		return false;
	return !PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK;
}

int pg_conn_ready(struct store *s, struct pconn *c, char *msg, size_t msglen)
{
	int rc;

	if (c->pg && !conn_lost(c))
		return 0;
	if ((rc = pg_conn_open(s, c, msg, msglen)) < 0)
		return rc == KW_ERR_NOMEM ? rc : KW_ERR_UNAVAILABLE;
	return 0;
}

int pg_reader_get(struct store *s, struct pconn **out)
{
	char msg[320];
	struct pconn *c;
	struct timespec until;
	int rc = 0;

	/* A read waits for a free connection as long as a statement may run,
	 * not for ever (every connection held by slow readers). */
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += PG_STATEMENT_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&s->rlock);
	while (!s->idle && rc == 0)
		rc = pthread_cond_timedwait(&s->rfree, &s->rlock, &until);
	c = s->idle;
	if (c)
		s->idle = c->next;
	pthread_mutex_unlock(&s->rlock);
	if (!c) {
		store_count_error();
		pg_log_failure("database: every connection for reads stayed busy for %d s",
			       PG_STATEMENT_TIMEOUT_MS / 1000);
		return KW_ERR_UNAVAILABLE;
	}
	if ((rc = pg_conn_ready(s, c, msg, sizeof(msg))) < 0) {
		store_count_error();
		pg_log_failure("database: %s", msg);
		pg_reader_put(s, c);
		return rc;
	}
	*out = c;
	return 0;
}

void pg_reader_put(struct store *s, struct pconn *c)
{
	/* A connection left inside a transaction (a failure) starts over. */
	if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		pg_conn_close(c);
	pthread_mutex_lock(&s->rlock);
	c->next = s->idle;
	s->idle = c;
	pthread_cond_signal(&s->rfree);
	pthread_mutex_unlock(&s->rlock);
}

/* ---- errors ---- */

/* Is this SQLSTATE a sign that the server or the connection is gone? */
static bool state_down(const char *st)
{
	return st && (!strncmp(st, "08", 2) || !strcmp(st, "57P01") || !strcmp(st, "57P02") ||
		      !strcmp(st, "57P03"));
}

/* The result of a statement: 0, or its failure mapped (internal.h). */
static int result_rc(struct pconn *c, PGresult *r, const char *sql)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char why[200];
	bool down;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return 0;
	if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01") ||
		      !strcmp(state, "23505")))
		return KW_ERR_RETRY;
	down = PQstatus(c->pg) != CONNECTION_OK || state_down(state);
	if (down)
		snprintf(why, sizeof(why), "the database is not answering");
	else if (state && !strcmp(state, "57014"))
		snprintf(why, sizeof(why), "a statement was cancelled after statement_timeout "
			 "(is the database hung, or a table locked?)");
	else if (state && !strncmp(state, "53", 2))
		snprintf(why, sizeof(why), "the database server is out of resources (%s)",
			 state);
	else
		one_line(primary ? primary : PQerrorMessage(c->pg), why, sizeof(why));
	if (c->writer) {
		if (!c->failed) {
			c->failed = true;
			c->down = down;
			/* Not the request's fault: the operator's to see. */
			c->serious = down || (state && (!strcmp(state, "57014") ||
							!strncmp(state, "53", 2) ||
							!strncmp(state, "58", 2)));
			snprintf(c->errmsg, sizeof(c->errmsg), "%s", why);
		}
	} else {
		/* The SQL, not the arguments: they may be secrets. */
		pg_log_failure("database: %s (in: %.60s)", why, sql);
	}
	if (down && c->pg && PQstatus(c->pg) != CONNECTION_OK)
		pg_conn_close(c);   /* connected again at its next use */
	return down ? KW_ERR_UNAVAILABLE : KW_ERR_STORE;
}

PGresult *pg_commit(struct pconn *c, const char *sql, bool *cancelled)
{
	PGresult *r, *last = NULL;
	int64_t deadline;
	struct timespec ts;

	*cancelled = false;
	if (!c->pg || !PQsendQuery(c->pg, sql))
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + c->timeout_ms;
	for (;;) {
		struct pollfd p = { .fd = PQsocket(c->pg), .events = POLLIN };
		int64_t now;

		if (!PQconsumeInput(c->pg))
			break;
		if (!PQisBusy(c->pg)) {
			if (!(r = PQgetResult(c->pg)))
				break;
			PQclear(last);
			last = r;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		if (!*cancelled && now >= deadline) {
			/* A COMMIT waiting for a synchronous standby: statement_timeout
			 * does not end that wait, a cancel does. */
			PGcancel *cn = PQgetCancel(c->pg);
			char err[128];

			if (cn) {
				PQcancel(cn, err, sizeof(err));
				PQfreeCancel(cn);
			}
			*cancelled = true;
		}
		if (poll(&p, 1, *cancelled ? 1000 : (int)(deadline - now)) < 0 && errno != EINTR)
			break;
	}
	return last;
}

int pg_run(struct pconn *c, const char *sql)
{
	PGresult *r;
	int rc;

	if (!c->pg)
		return KW_ERR_UNAVAILABLE;
	r = PQexec(c->pg, sql);
	rc = result_rc(c, r, sql);
	PQclear(r);
	return rc;
}

/* ---- statements ---- */

/* A statement's arguments as libpq takes them. */
struct params {
	char ints[PG_MAX_ARGS][24];
	const char *values[PG_MAX_ARGS];
	int lengths[PG_MAX_ARGS], formats[PG_MAX_ARGS];
};

static void params_fill(struct params *p, const struct pg_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p->lengths[i] = 0;
		p->formats[i] = 0;
		switch (a[i].type) {
		case PG_T_INT:
			snprintf(p->ints[i], sizeof(p->ints[i]), "%lld", (long long)a[i].i);
			p->values[i] = p->ints[i];
			break;
		case PG_T_TEXT:
			p->values[i] = a[i].p;
			break;
		case PG_T_BLOB:
			/* An empty bytea still needs a value that is not NULL. */
			p->values[i] = a[i].p ? a[i].p : "";
			p->lengths[i] = (int)a[i].n;
			p->formats[i] = 1;
			break;
		}
	}
}

/* q's slot among the connection's prepared statements, prepared now if it
 * is not yet; -1 when there is no room left (run it unprepared). */
static int prepared(struct pconn *c, const struct pg_query *q, size_t n, int *rc)
{
	char name[16];
	PGresult *r;

	*rc = 0;
	for (int i = 0; i < c->nprepared; i++)
		if (c->prepared[i] == q)
			return i;
	if (c->nprepared == PG_MAX_PREPARED)
		return -1;
	snprintf(name, sizeof(name), "kw%d", c->nprepared);
	r = PQprepare(c->pg, name, q->sql, (int)n, NULL);
	*rc = result_rc(c, r, q->sql);
	PQclear(r);
	if (*rc < 0)
		return -1;
	c->prepared[c->nprepared] = q;
	return c->nprepared++;
}

PGresult *pg_query(struct pconn *c, const struct pg_query *q, const struct pg_arg *a,
		   size_t n, int *rc)
{
	struct params p;
	char name[16];
	PGresult *r;
	int slot;

	*rc = 0;
	if (n > PG_MAX_ARGS) {
		*rc = KW_ERR_INTERNAL;
		return NULL;
	}
	if (!c->pg) {
		*rc = KW_ERR_UNAVAILABLE;
		return NULL;
	}
	params_fill(&p, a, n);
	if ((slot = prepared(c, q, n, rc)) < 0 && *rc < 0)
		return NULL;
	if (slot >= 0) {
		snprintf(name, sizeof(name), "kw%d", slot);
		r = PQexecPrepared(c->pg, name, (int)n, p.values, p.lengths, p.formats, 1);
	} else {
		r = PQexecParams(c->pg, q->sql, (int)n, NULL, p.values, p.lengths, p.formats, 1);
	}
	if ((*rc = result_rc(c, r, q->sql)) < 0) {
		PQclear(r);
		return NULL;
	}
	return r;
}

/* The next result of a pipeline: NULL when the connection failed (noted). */
static PGresult *next_result(struct pconn *c)
{
	PGresult *r = PQgetResult(c->pg);

	if (!r) {
		result_rc(c, NULL, "pipeline");
		pg_conn_close(c);
	}
	return r;
}

int pg_each_after(struct pconn *c, const struct pg_query *first, const struct pg_arg *fa,
		  size_t fn, const struct pg_query *q, const struct pg_arg *a, size_t n,
		  pg_row_fn row, void *arg)
{
	struct params p1, p2;
	char name1[16], name2[16];
	PGresult *r;
	int s1, s2, rc, rc2;

	if (fn > PG_MAX_ARGS || n > PG_MAX_ARGS)
		return KW_ERR_INTERNAL;
	if (!c->pg)
		return KW_ERR_UNAVAILABLE;
	if ((s1 = prepared(c, first, fn, &rc)) < 0 || (s2 = prepared(c, q, n, &rc)) < 0 ||
	    PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF) {
		/* No room to prepare them: one after the other. */
		if (rc < 0)
			return rc;
		if ((rc = pg_exec(c, first, fa, fn)) < 0)
			return rc;
		return pg_each(c, q, a, n, row, arg);
	}
	params_fill(&p1, fa, fn);
	params_fill(&p2, a, n);
	snprintf(name1, sizeof(name1), "kw%d", s1);
	snprintf(name2, sizeof(name2), "kw%d", s2);
	if (!PQenterPipelineMode(c->pg) ||
	    !PQsendQueryPrepared(c->pg, name1, (int)fn, p1.values, p1.lengths, p1.formats, 1) ||
	    !PQsendQueryPrepared(c->pg, name2, (int)n, p2.values, p2.lengths, p2.formats, 1) ||
	    !PQpipelineSync(c->pg)) {
		result_rc(c, NULL, first->sql);
		pg_conn_close(c);
		return KW_ERR_UNAVAILABLE;
	}
	/* first's result, the end of its results; q's (or that the pipeline
	 * stopped at first's failure), the end of them; the sync. */
	if (!(r = next_result(c)))
		return KW_ERR_UNAVAILABLE;
	rc = result_rc(c, r, first->sql);
	PQclear(r);
	PQclear(PQgetResult(c->pg));
	if (!(r = next_result(c)))
		return KW_ERR_UNAVAILABLE;
	if (PQresultStatus(r) != PGRES_PIPELINE_ABORTED) {
		rc2 = result_rc(c, r, q->sql);
		for (int i = 0; rc == 0 && rc2 == 0 && i < PQntuples(r); i++)
			rc2 = row(r, i, arg);
		if (rc == 0)
			rc = rc2;
		PQclear(r);
		PQclear(PQgetResult(c->pg));
		if (!(r = next_result(c)))
			return KW_ERR_UNAVAILABLE;
	}
	/* Up to the sync (an aborted pipeline answers with it too); two ends in
	 * a row mean there is nothing more. */
	for (int ends = 0; !r || PQresultStatus(r) != PGRES_PIPELINE_SYNC;) {
		if (r)
			ends = 0;
		else if (++ends == 2)
			break;
		PQclear(r);
		r = PQgetResult(c->pg);
	}
	PQclear(r);
	if (!PQexitPipelineMode(c->pg)) {
		pg_conn_close(c);
		return rc < 0 ? rc : KW_ERR_UNAVAILABLE;
	}
	return rc;
}

int pg_exec(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n)
{
	int rc;
	PGresult *r = pg_query(c, q, a, n, &rc);

	PQclear(r);
	return rc;
}

static int changed(struct pconn *c, const struct pg_query *q, const struct pg_arg *a,
		   size_t n, int none)
{
	int rc;
	PGresult *r = pg_query(c, q, a, n, &rc);

	if (r && !strcmp(PQcmdTuples(r), "0"))
		rc = none;
	PQclear(r);
	return rc;
}

int pg_change(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n)
{
	return changed(c, q, a, n, KW_ERR_NOT_FOUND);
}

int pg_insert(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n)
{
	return changed(c, q, a, n, KW_ERR_EXISTS);
}

int pg_each(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	    pg_row_fn row, void *arg)
{
	int rc;
	PGresult *r = pg_query(c, q, a, n, &rc);

	for (int i = 0; r && rc == 0 && i < PQntuples(r); i++)
		rc = row(r, i, arg);
	PQclear(r);
	return rc;
}

int pg_stream(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	      pg_row_fn row, void *arg)
{
	struct params p;
	char name[16];
	PGresult *r;
	int slot, rc = 0, sent;

	if (n > PG_MAX_ARGS)
		return KW_ERR_INTERNAL;
	if (!c->pg)
		return KW_ERR_UNAVAILABLE;
	if (PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF)
		return pg_each(c, q, a, n, row, arg);
	params_fill(&p, a, n);
	if ((slot = prepared(c, q, n, &rc)) < 0 && rc < 0)
		return rc;
	if (slot >= 0) {
		snprintf(name, sizeof(name), "kw%d", slot);
		sent = PQsendQueryPrepared(c->pg, name, (int)n, p.values, p.lengths, p.formats, 1);
	} else {
		sent = PQsendQueryParams(c->pg, q->sql, (int)n, NULL, p.values, p.lengths,
					 p.formats, 1);
	}
	if (!sent) {
		rc = result_rc(c, NULL, q->sql);
		return rc < 0 ? rc : KW_ERR_UNAVAILABLE;
	}
	PQsetSingleRowMode(c->pg);
	/* A row a result; after a callback stopped, or a failure, the rest is
	 * read and dropped (cancelling would fail the transaction), up to the
	 * end of the statement's results. */
	while ((r = PQgetResult(c->pg))) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_SINGLE_TUPLE) {
			if (rc == 0)
				rc = row(r, 0, arg);
		} else if (st != PGRES_TUPLES_OK) {
			int err = result_rc(c, r, q->sql);

			if (rc >= 0 && err < 0)
				rc = err;
			if (!c->pg) {
				PQclear(r);
				break;
			}
		}
		PQclear(r);
	}
	return rc;
}

int pg_one(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	   pg_row_fn row, void *arg)
{
	int rc;
	PGresult *r = pg_query(c, q, a, n, &rc);

	if (r)
		rc = PQntuples(r) ? row(r, 0, arg) : KW_ERR_NOT_FOUND;
	PQclear(r);
	return rc;
}

int pg_int(struct pconn *c, const struct pg_query *q, const struct pg_arg *a, size_t n,
	   int64_t *out)
{
	int rc;
	PGresult *r = pg_query(c, q, a, n, &rc);

	if (r) {
		if (PQntuples(r))
			*out = pg_i64(r, 0, 0);
		else
			rc = KW_ERR_NOT_FOUND;
	}
	PQclear(r);
	return rc;
}

/* ---- columns ---- */

int64_t pg_i64(const PGresult *r, int i, int col)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(r, i, col);
	int len = PQgetlength(r, i, col);
	uint64_t v = 0;

	if (PQgetisnull(r, i, col) || len < 1 || len > 8)
		return 0;
	for (int k = 0; k < len; k++)
		v = v << 8 | p[k];
	/* Sign-extend the narrower integers. */
	if (len < 8 && (p[0] & 0x80))
		v |= ~(uint64_t)0 << (len * 8);
	return (int64_t)v;
}

const char *pg_text(const PGresult *r, int i, int col)
{
	return PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col);
}

void pg_copy(const PGresult *r, int i, int col, char *out, size_t outlen)
{
	size_t len = PQgetisnull(r, i, col) ? 0 : (size_t)PQgetlength(r, i, col);

	if (!outlen)
		return;
	if (len > outlen - 1)
		len = outlen - 1;
	memcpy(out, PQgetvalue(r, i, col), len);
	out[len] = '\0';
}

void pg_blob(const PGresult *r, int i, int col, void *out, size_t len)
{
	if (!PQgetisnull(r, i, col) && (size_t)PQgetlength(r, i, col) == len)
		memcpy(out, PQgetvalue(r, i, col), len);
	else
		memset(out, 0, len);
}

const uint8_t *pg_bytes(const PGresult *r, int i, int col, size_t *len)
{
	*len = PQgetisnull(r, i, col) ? 0 : (size_t)PQgetlength(r, i, col);
	return (const uint8_t *)PQgetvalue(r, i, col);
}
