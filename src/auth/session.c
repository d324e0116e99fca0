#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/session.h"
#include "store/store.h"
#include "util/err.h"

#define SESSION_PREFIX ""

struct create {
	struct session_rec rec;
};

static int create_tx(struct store_tx *tx, void *arg)
{
	return store_session_insert(tx, &((struct create *)arg)->rec);
}

int session_create(struct store *s, const struct auth_user *u, int64_t now,
		   char id[SECRET_TEXT_MAX], struct session *out)
{
	char joined[IDENTITY_MAX * (IDENTITY_NAME_MAX + 1) + 1];
	char token[SECRET_TEXT_MAX];
	struct create c;
	int rc;

	memset(out, 0, sizeof(*out));
	secret_new(SESSION_PREFIX, id);
	secret_hash(id, strlen(id), out->hash);
	secret_new("", token);
	snprintf(out->csrf, sizeof(out->csrf), "%.*s", CSRF_LEN, token);
	sodium_memzero(token, sizeof(token));
	snprintf(out->user, sizeof(out->user), "%s", u->name);
	out->roles = u->roles;
	out->id = u->id;
	out->created_at = out->last_seen = now;
	identity_join(&u->id, joined, sizeof(joined));
	memset(&c, 0, sizeof(c));
	memcpy(c.rec.hash, out->hash, sizeof(c.rec.hash));
	c.rec.user = out->user;
	c.rec.roles = out->roles;
	c.rec.identities = joined;
	snprintf(c.rec.csrf, sizeof(c.rec.csrf), "%s", out->csrf);
	c.rec.created_at = now;
	rc = store_write(s, create_tx, &c);
	sodium_memzero(&c, sizeof(c));
	if (rc < 0)
		sodium_memzero(id, SECRET_TEXT_MAX);
	return rc;
}

static int session_found(const struct session_rec *r, void *arg)
{
	struct session *ss = arg;

	memcpy(ss->hash, r->hash, sizeof(ss->hash));
	snprintf(ss->user, sizeof(ss->user), "%s", r->user);
	ss->roles = r->roles;
	identity_split(r->identities, &ss->id);
	snprintf(ss->csrf, sizeof(ss->csrf), "%.*s", CSRF_LEN, r->csrf);
	ss->notice_accepted = r->notice_accepted;
	ss->created_at = r->created_at;
	ss->last_seen = r->last_seen;
	return 0;
}

static int get_tx(struct store_tx *tx, void *arg)
{
	struct session *ss = arg;

	return store_session_get(tx, ss->hash, session_found, ss);
}

static int delete_tx(struct store_tx *tx, void *arg)
{
	return store_session_delete(tx, ((const struct session *)arg)->hash);
}

int64_t session_remaining(const struct session *ss, int64_t now,
			  const struct session_limits *lim)
{
	int64_t left = -1;

	if (lim->idle > 0)
		left = ss->last_seen + lim->idle - now;
	if (lim->max_lifetime > 0) {
		int64_t life = ss->created_at + lim->max_lifetime - now;

		if (lim->idle <= 0 || life < left)
			left = life;
	}
	return left;
}

int session_load(struct store *s, const char *id, int64_t now,
		 const struct session_limits *lim, struct session *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!id || !*id || strlen(id) >= SECRET_TEXT_MAX)
		return KW_ERR_NOT_FOUND;
	secret_hash(id, strlen(id), out->hash);
	if ((rc = store_lookup(s, get_tx, out)) < 0)
		return rc;
	/* Times are whole seconds: the session lives through its last second,
	 * so a page counting down from "remaining" always ends first. */
	if ((lim->idle > 0 || lim->max_lifetime > 0) && session_remaining(out, now, lim) < 0) {
		store_write(s, delete_tx, out);
		return KW_ERR_EXPIRED;
	}
	return 0;
}

struct touch {
	const struct session *ss;
	int64_t now;
	int notice;
};

static int touch_tx(struct store_tx *tx, void *arg)
{
	struct touch *t = arg;

	return store_session_touch(tx, t->ss->hash, t->now, t->notice);
}

int session_touch(struct store *s, struct session *ss, int64_t now, int notice)
{
	struct touch t = { ss, now, notice };
	int rc = store_write(s, touch_tx, &t);

	if (rc == 0) {
		ss->last_seen = now > ss->last_seen ? now : ss->last_seen;
		if (notice >= 0)
			ss->notice_accepted = notice;
	}
	return rc;
}

int64_t session_touch_interval(const struct session_limits *lim)
{
	int64_t i = lim->idle / 20;

	return i < 1 ? 1 : i > 30 ? 30 : i;
}

int session_activity(struct store *s, struct session *ss, int64_t now,
		     const struct session_limits *lim)
{
	/* Without an idle timeout the time of the last view matters to no one. */
	if (lim->idle <= 0 || now - ss->last_seen < session_touch_interval(lim))
		return 0;
	return session_touch(s, ss, now, -1);
}

int session_end(struct store *s, const struct session *ss)
{
	int rc = store_write(s, delete_tx, (void *)ss);

	/* Already gone (purged, or ended by a request alongside): ended. */
	return rc == KW_ERR_NOT_FOUND ? 0 : rc;
}

struct purge {
	int64_t idle_before, created_before;
};

static int purge_tx(struct store_tx *tx, void *arg)
{
	struct purge *p = arg;

	return store_session_purge(tx, p->idle_before, p->created_before);
}

int session_purge(struct store *s, int64_t now, const struct session_limits *lim)
{
	struct purge p = {
		lim->idle > 0 ? now - lim->idle : INT64_MIN,
		lim->max_lifetime > 0 ? now - lim->max_lifetime : INT64_MIN,
	};

	return store_write(s, purge_tx, &p);
}
