#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "core/config.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"
#include "util/timeutil.h"

/* Every backend built into this keywarden: the one list [auth] backends
 * is checked against. */
static const struct auth_backend *const builtin[] = { &auth_local, &auth_ldap };
#define NBUILTIN (sizeof(builtin) / sizeof(builtin[0]))

/* A counting semaphore with a deadline on the monotonic clock. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	unsigned used, cap;
};

struct link {
	const struct auth_backend *b;
	void *ctx;
	struct gate gate;
	bool open;                        /* b->open succeeded: close it */
};

struct auth {
	struct link link[AUTH_MAX_BACKENDS];
	size_t n;
	int64_t timeout_ms;
};

static int gate_init(struct gate *g, unsigned cap)
{
	pthread_condattr_t attr;
	int e;

	g->used = 0;
	g->cap = cap ? cap : 1;
	if (pthread_condattr_init(&attr))
		return KW_ERR_NOMEM;
	e = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!e)
		e = pthread_cond_init(&g->freed, &attr);
	pthread_condattr_destroy(&attr);
	if (e)
		return KW_ERR_NOMEM;
	if (pthread_mutex_init(&g->lock, NULL)) {
		pthread_cond_destroy(&g->freed);
		return KW_ERR_NOMEM;
	}
	return 0;
}

static void gate_destroy(struct gate *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->freed);
}

/* Takes a place, waiting for one until deadline_ms: 0 or
 * KW_ERR_UNAVAILABLE. A free place is taken even past the deadline: a
 * backend answers quickly when it is not the one that hangs. */
static int gate_enter(struct gate *g, int64_t deadline_ms)
{
	struct timespec until = { (time_t)(deadline_ms / 1000),
				  (long)(deadline_ms % 1000) * 1000000 };
	int rc = 0;

	pthread_mutex_lock(&g->lock);
	while (g->used >= g->cap) {
		if (pthread_cond_timedwait(&g->freed, &g->lock, &until) == ETIMEDOUT &&
		    g->used >= g->cap) {
			rc = KW_ERR_UNAVAILABLE;
			break;
		}
	}
	if (rc == 0)
		g->used++;
	pthread_mutex_unlock(&g->lock);
	return rc;
}

static void gate_leave(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->used--;
	pthread_cond_signal(&g->freed);
	pthread_mutex_unlock(&g->lock);
}

static const struct auth_backend *builtin_find(const char *name)
{
	for (size_t i = 0; i < NBUILTIN; i++)
		if (!strcasecmp(builtin[i]->name, name))
			return builtin[i];
	return NULL;
}

int auth_backend_check(const char *name, char *why, size_t whylen)
{
	char q[96], list[128] = "";
	size_t n = 0;

	if (builtin_find(name))
		return 0;
	for (size_t i = 0; i < NBUILTIN && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
				      builtin[i]->name);
	str_msg(why, whylen, "'%s' is not a sign-in backend of this keywarden (use %s)",
		ini_quote(name, q, sizeof(q)), list);
	return KW_ERR_INVALID;
}

int auth_open_backends(const struct auth_backend *const *chain, size_t n,
		       const struct config *cfg, struct store *s, struct auth **out,
		       char *msg, size_t msglen)
{
	struct auth *a = NULL;
	int rc;

	*out = NULL;
	str_msg_clear(msg, msglen);
	if (n == 0 || n > AUTH_MAX_BACKENDS) {
		str_msg(msg, msglen, "sign-in needs 1 to %d backends", AUTH_MAX_BACKENDS);
		return KW_ERR_INVALID;
	}
	if (!(a = calloc(1, sizeof(*a)))) {
		str_msg(msg, msglen, "%s", kw_strerror(KW_ERR_NOMEM));
		return KW_ERR_NOMEM;
	}
	a->timeout_ms = cfg->ldap.timeout * 1000;
	for (; a->n < n; a->n++) {
		struct link *l = &a->link[a->n];

		for (size_t j = 0; j < a->n; j++) {
			if (a->link[j].b == chain[a->n]) {
				str_msg(msg, msglen, "the sign-in backend %s is listed twice",
					chain[a->n]->name);
				rc = KW_ERR_INVALID;
				goto fail;
			}
		}
		l->b = chain[a->n];
		if ((rc = gate_init(&l->gate, l->b->max_concurrent)) < 0) {
			str_msg(msg, msglen, "%s", kw_strerror(rc));
			goto fail;
		}
		if ((rc = l->b->open(cfg, s, &l->ctx, msg, msglen)) < 0) {
			gate_destroy(&l->gate);
			goto fail;
		}
		l->open = true;
	}
	*out = a; /* owned by the caller */
	return 0;
fail:
	auth_close(a);
	return rc;
}

int auth_open(const struct config *cfg, struct store *s, struct auth **out, char *msg,
	      size_t msglen)
{
	const struct auth_backend *chain[AUTH_MAX_BACKENDS];
	size_t n = cfg->backends.n;

	*out = NULL;
	/* More than AUTH_MAX_BACKENDS: auth_open_backends refuses them. */
	for (size_t i = 0; i < n && i < AUTH_MAX_BACKENDS; i++) {
		/* config_load refuses these; a cfg changed by hand may not. */
		if (!(chain[i] = builtin_find(cfg->backends.item[i]))) {
			auth_backend_check(cfg->backends.item[i], msg, msglen);
			return KW_ERR_INVALID;
		}
	}
	return auth_open_backends(chain, n, cfg, s, out, msg, msglen);
}

void auth_close(struct auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		if (a->link[i].open) {
			a->link[i].b->close(a->link[i].ctx);
			gate_destroy(&a->link[i].gate);
		}
	}
	free(a);
}

int64_t auth_deadline(const struct auth *a)
{
	return time_mono_ms() + a->timeout_ms;
}

static int call_authenticate(struct link *l, const char *user, const char *password,
			     int64_t deadline_ms, struct auth_user *out)
{
	int rc = gate_enter(&l->gate, deadline_ms);

	if (rc < 0)
		return rc;
	rc = l->b->authenticate(l->ctx, user, password, deadline_ms, out);
	gate_leave(&l->gate);
	return rc;
}

static int call_roles(struct link *l, const struct identity *id, int64_t deadline_ms,
		      unsigned *roles)
{
	int rc = gate_enter(&l->gate, deadline_ms);

	if (rc < 0)
		return rc;
	rc = l->b->roles(l->ctx, id, deadline_ms, roles);
	gate_leave(&l->gate);
	return rc;
}

int auth_authenticate(struct auth *a, const char *user, const char *password,
		      int64_t deadline_ms, struct auth_user *out)
{
	struct auth_user u;
	bool down[AUTH_MAX_BACKENDS] = { false };
	char why[AUTH_MAX_BACKENDS][AUTH_REASON_MAX] = { { 0 } };
	size_t by = a->n;
	unsigned roles;
	int rc = KW_ERR_NOT_FOUND;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < a->n && by == a->n; i++) {
		memset(&u, 0, sizeof(u));
		rc = call_authenticate(&a->link[i], user, password, deadline_ms, &u);
		if (rc == 0) {
			by = i;
			*out = u;
		} else if (rc == KW_ERR_UNAVAILABLE) {
			down[i] = true;
			memcpy(why[i], u.reason, sizeof(why[i]));
			why[i][sizeof(why[i]) - 1] = '\0';
		} else if (rc != KW_ERR_NOT_FOUND) {
			/* Known here and refused, or broken: no further backend
			 * may let the person in. */
			memcpy(out->name, u.name, sizeof(out->name));
			goto out;
		}
	}
	if (by == a->n) {
		rc = KW_ERR_AUTH;
		for (size_t i = 0; i < a->n; i++)
			if (down[i])
				rc = KW_ERR_UNAVAILABLE;
		goto out;
	}
	out->backend = a->link[by].b->name;
	/* The widest wins: every other backend that knows the person adds its
	 * roles (one that was down a moment ago is not asked again). */
	for (size_t i = 0; i < a->n; i++) {
		if (i == by || down[i])
			continue;
		roles = 0;
		rc = call_roles(&a->link[i], &out->id, deadline_ms, &roles);
		if (rc == 0)
			out->roles |= roles;
		else if (rc == KW_ERR_UNAVAILABLE)
			down[i] = true;
		else if (rc != KW_ERR_NOT_FOUND)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		/* Nobody is signed in: keep only what the caller may log. */
		memcpy(u.name, out->name, sizeof(u.name));
		memset(out, 0, sizeof(*out));
		if (rc == KW_ERR_AUTH)
			memcpy(out->name, u.name, sizeof(out->name));
	}
	out->reason[0] = '\0';
	for (size_t i = 0; i < a->n; i++) {
		if (down[i]) {
			memcpy(out->down_why[out->ndown], why[i], sizeof(why[i]));
			out->down[out->ndown++] = a->link[i].b->name;
		}
	}
	return rc;
}
