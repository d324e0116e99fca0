/* The PostgreSQL store's writes: writer threads, each with its own
 * connection, commit concurrent write jobs in groups (one transaction, a
 * savepoint per job, one COMMIT: one sync of the server's log for the
 * group), and the write health (store_state) follows what happens to them.
 *
 * Groups run at READ COMMITTED. What must hold across instances takes a
 * lock first and then reads what is committed (store_audit_append,
 * store_limit_take: advisory locks), and every insert that could meet a
 * concurrent one is an upsert or ON CONFLICT, so no operation depends on a
 * snapshot older than its lock; a deadlock between groups is KW_ERR_RETRY.
 * (SERIALIZABLE would fail whole groups on conflicts that are harmless,
 * and a chain append that waited for the lock would always have to rerun:
 * its snapshot is taken before the wait.) */
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pgsql/internal.h"
#include "util/err.h"
#include "util/log.h"

static void health_set(struct store *s, enum store_state state, const char *reason)
{
	enum store_state was;
	size_t n;

	pthread_mutex_lock(&s->hlock);
	was = (enum store_state)atomic_load(&s->health);
	atomic_store(&s->health, (int)state);
	/* Cut to fit (a reason may quote the server's message). */
	n = strnlen(reason, sizeof(s->reason) - 1);
	memcpy(s->reason, reason, n);
	s->reason[n] = '\0';
	pthread_mutex_unlock(&s->hlock);
	if (was == state)
		return;
	store_note_state(state);
	if (state == STORE_OK)
		log_info("database: writes work again");
	else
		log_error("database: %s; until the cause is gone, writes are answered with 503 "
			  "and nothing of them is kept; no restart is needed", reason);
}

enum store_state pg_state(struct store *s, char *reason, size_t reasonlen)
{
	enum store_state state;

	pthread_mutex_lock(&s->hlock);
	state = (enum store_state)atomic_load(&s->health);
	if (reason && reasonlen)
		snprintf(reason, reasonlen, "%s", state == STORE_OK ? "writes work" : s->reason);
	pthread_mutex_unlock(&s->hlock);
	return state;
}

/* A group being run: its transaction, the statement that opens the next
 * job's savepoint, and the first failure of the server's seen in a job
 * that was undone (for store_state). */
struct group_run {
	struct store *s;
	struct pconn *c;
	struct store_tx tx;
	const char *next;
	bool started;
	char trouble[200];
	char msg[320];
};

/* The next job's savepoint (with the previous one's release, and first
 * the transaction's BEGIN): 0 or the group's failure. */
static int open_job(struct group_run *g)
{
	struct pconn *c = g->c;
	int rc = pg_run(c, g->next);

	if (rc == KW_ERR_UNAVAILABLE && !g->started && !c->pg &&
	    pg_conn_ready(g->s, c, g->msg, sizeof(g->msg)) == 0) {
		/* The connection was lost before anything ran (the server
		 * ended it while idle): once more on a new one. */
		c->failed = c->down = c->serious = false;
		rc = pg_run(c, g->next);
	}
	if (rc == 0) {
		g->started = true;
		g->next = "RELEASE SAVEPOINT job; SAVEPOINT job";
	}
	g->tx.dev_uid[0] = '\0';
	g->tx.vol_row = 0;
	return rc;
}

/* After a job failed: what it did undone; 0 or the group's failure. */
static int undo_job(struct group_run *g)
{
	struct pconn *c = g->c;
	int rc;

	if ((rc = pg_run(c, "ROLLBACK TO SAVEPOINT job")) < 0)
		return rc;  /* cannot undo: fail the group */
	if (c->failed && !c->down) {
		/* This job's statement failed and the job was undone; a
		 * failure of the server's shows in the health. */
		pg_log_failure("database: %s", c->errmsg);
		if (c->serious && !g->trouble[0])
			snprintf(g->trouble, sizeof(g->trouble), "%s", c->errmsg);
		c->failed = c->serious = false;
	}
	return 0;
}

/* Runs j alone: 0, or the group's failure (j->rc has the job's). */
static int run_alone(struct group_run *g, struct job *j)
{
	int rc;

	if ((rc = open_job(g)) < 0) {
		j->rc = rc;
		return rc;
	}
	if ((j->rc = j->fn(&g->tx, j->arg)) < 0)
		return undo_job(g);
	return 0;
}

/* Runs n consecutive jobs of one batch function together (store.h:
 * store_batch_fn), the ones it leaves out alone afterwards, and all of
 * them alone if the batch fails: 0, or the group's failure. */
static int run_batch(struct group_run *g, struct job **jobs, size_t n)
{
	void *args[PG_MAX_GROUP];
	int rcs[PG_MAX_GROUP];
	size_t together = 0;
	int rc;

	if ((rc = open_job(g)) < 0) {
		for (size_t i = 0; i < n; i++)
			jobs[i]->rc = rc;
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		args[i] = jobs[i]->arg;
		rcs[i] = 0;
	}
	if (jobs[0]->batch(&g->tx, args, rcs, n) < 0) {
		if ((rc = undo_job(g)) < 0) {
			for (size_t i = 0; i < n; i++)
				jobs[i]->rc = rc;
			return rc;
		}
		for (size_t i = 0; i < n; i++)
			rcs[i] = STORE_BATCH_ALONE;
	}
	for (size_t i = 0; i < n; i++)
		if (rcs[i] != STORE_BATCH_ALONE) {
			jobs[i]->rc = rcs[i];
			together += rcs[i] == 0;
		}
	store_count_batched(together);
	for (size_t i = 0; i < n; i++) {
		if (rcs[i] != STORE_BATCH_ALONE)
			continue;
		if ((rc = run_alone(g, jobs[i])) < 0) {
			for (size_t k = i + 1; k < n; k++)
				if (rcs[k] == STORE_BATCH_ALONE)
					jobs[k]->rc = rc;
			return rc;
		}
	}
	return 0;
}

/* Runs a group of jobs in one transaction on c: 0 once it committed, or
 * the failure that undid the whole group (each job's rc < 0). */
static int run_group(struct store *s, struct pconn *c, struct job *jobs)
{
	struct group_run g = {
		.s = s, .c = c,
		.tx = { .base = { .ops = pg_ops }, .c = c, .s = s, .write = true },
		.next = "BEGIN ISOLATION LEVEL READ COMMITTED; SAVEPOINT job",
	};
	struct job *batch[PG_MAX_GROUP];
	char reason[240];
	bool cancelled;
	PGresult *r;
	int rc;

	c->failed = c->down = c->serious = false;
	if ((rc = pg_conn_ready(s, c, g.msg, sizeof(g.msg))) < 0) {
		pg_log_failure("database: %s", g.msg);
		for (struct job *j = jobs; j; j = j->next)
			j->rc = rc;
		store_count_error();
		health_set(s, STORE_WRITES_FAILING,
			   "writes are failing: the database is not answering");
		return rc;
	}
	for (struct job *j = jobs; j;) {
		size_t n = 0;

		if (rc < 0) {
			j->rc = rc;
			j = j->next;
			continue;
		}
		for (struct job *k = j; j->batch && k && k->batch == j->batch &&
		     n < PG_MAX_GROUP; k = k->next)
			batch[n++] = k;
		if (n > 1) {
			rc = run_batch(&g, batch, n);
			j = batch[n - 1]->next;
			continue;
		}
		rc = run_alone(&g, j);
		j = j->next;
	}
	if (rc == 0) {
		/* PostgreSQL answers COMMIT of a failed transaction with ROLLBACK. */
		c->warned = false;
		r = pg_commit(c, "RELEASE SAVEPOINT job; COMMIT", &cancelled);
		if (PQresultStatus(r) == PGRES_COMMAND_OK && !strcmp(PQcmdStatus(r), "COMMIT") &&
		    (c->warned || cancelled)) {
			/* A COMMIT whose wait for a synchronous standby was cancelled
			 * (pg_commit, after statement_timeout) returns success with a
			 * WARNING: it is on the primary only. Not acknowledged (503);
			 * an agent's retry finds it stored (doc/scale-out.md). */
			rc = KW_ERR_UNAVAILABLE;
			c->failed = c->serious = true;
			c->down = false;
			snprintf(c->errmsg, sizeof(c->errmsg), "%s",
				 "a commit was not confirmed by a synchronous standby (its wait "
				 "was cancelled): is the standby down?");
		} else if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT")) {
			rc = PQstatus(c->pg) == CONNECTION_OK ? KW_ERR_STORE : KW_ERR_UNAVAILABLE;
			if (!c->failed) {
				c->failed = true;
				c->down = rc == KW_ERR_UNAVAILABLE;
				snprintf(c->errmsg, sizeof(c->errmsg), "%s",
					 c->down ? "the database is not answering" :
					 "the commit failed");
			}
		}
		PQclear(r);
	}
	if (rc == 0 && g.trouble[0]) {
		snprintf(reason, sizeof(reason), "writes are failing: %s", g.trouble);
		health_set(s, STORE_WRITES_FAILING, reason);
		return 0;
	}
	if (rc == 0) {
		if (atomic_load(&s->health) != STORE_OK)
			health_set(s, STORE_OK, "");
		return 0;
	}
	store_count_error();
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK &&
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		pg_run(c, "ROLLBACK");
	if (c->pg && PQstatus(c->pg) != CONNECTION_OK)
		pg_conn_close(c);
	for (struct job *j = jobs; j; j = j->next)
		if (j->rc >= 0)
			j->rc = rc;  /* undone with the group */
	snprintf(reason, sizeof(reason), "writes are failing: %s",
		 c->failed ? c->errmsg : "the database is not answering");
	health_set(s, STORE_WRITES_FAILING, reason);
	return rc;
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

void *pg_writer_main(void *p)
{
	struct pconn *c = p;
	struct store *s = c->owner;

	pthread_setname_np(pthread_self(), "kw-pg-writer");
	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct job *group, *last;
		int n = 1;

		while (!s->head && !s->stopping)
			pthread_cond_wait(&s->wake, &s->lock);
		if (!s->head)
			break;
		group = last = s->head;
		while (last->next && n < PG_MAX_GROUP) {
			last = last->next;
			n++;
		}
		s->head = last->next;
		if (!s->head)
			s->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->lock);
		run_group(s, c, group);
		jobs_done(group);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int enqueue(struct store *s, struct job *j)
{
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
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

int pg_write_async_batch(struct store *s, store_fn fn, store_batch_fn batch, void *arg,
			 store_done_fn done, void *done_arg)
{
	struct job *j = calloc(1, sizeof(*j));
	int rc;

	if (!j)
		return KW_ERR_NOMEM;
	j->fn = fn;
	j->batch = batch;
	j->arg = arg;
	j->done = done;
	j->done_arg = done_arg;
	j->owned = true;
	if ((rc = enqueue(s, j)) < 0)
		free(j);
	return rc;
}

int pg_write_async(struct store *s, store_fn fn, void *arg, store_done_fn done,
		   void *done_arg)
{
	return pg_write_async_batch(s, fn, NULL, arg, done, done_arg);
}

static void post_done(int rc, void *arg)
{
	sem_post(arg);
}

int pg_write(struct store *s, store_fn fn, void *arg)
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
