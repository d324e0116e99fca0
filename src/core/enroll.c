#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/enroll.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define TOKEN_PREFIX "kwe_"
#define SECRET_PREFIX "kwd_"

int enroll_parse_expiry(const char *text, int64_t now, int64_t *expires_at)
{
	int64_t t;

	if (!text)
		return KW_ERR_INVALID;
	if (strlen(text) == 10 && text[4] == '-' && text[7] == '-') {
		if (time_parse_iso(text, &t) < 0)
			return KW_ERR_INVALID;
		t += 86400;          /* through that whole day */
		if (t <= now || t - now > ENROLL_EXPIRES_MAX)
			return KW_ERR_INVALID;
		*expires_at = t;
		return 0;
	}
	if (str_to_duration(text, ENROLL_EXPIRES_MAX, &t) < 0)
		return KW_ERR_INVALID;
	*expires_at = t ? now + t : 0;
	return 0;
}

/* The record of a change to token id; nothing without who. */
static int record(struct store_tx *tx, const struct audit_rec *who, const char *result,
		  const char *comment)
{
	struct audit_rec a;

	if (!who)
		return 0;
	memset(&a, 0, sizeof(a));
	a.at = time_now();
	a.source = who->source;
	a.actor = who->actor;
	a.client = who->client;
	a.result = result;
	a.comment = comment;
	return audit_append(tx, &a);
}

struct token_new {
	struct token_rec rec;
	const struct audit_rec *who;
	int64_t id;
};

static int token_insert_tx(struct store_tx *tx, void *arg)
{
	struct token_new *t = arg;
	char comment[128], expires[TIME_ISO_LEN], uses[40];
	int rc;

	if ((rc = store_token_insert(tx, &t->rec, &t->id)) < 0)
		return rc;
	if (t->rec.expires_at)
		time_format_iso(t->rec.expires_at, expires);
	else
		snprintf(expires, sizeof(expires), "never");
	if (t->rec.uses_left < 0)
		snprintf(uses, sizeof(uses), "unlimited uses");
	else
		snprintf(uses, sizeof(uses), "%lld use%s", (long long)t->rec.uses_left,
			 t->rec.uses_left == 1 ? "" : "s");
	snprintf(comment, sizeof(comment), "token %lld, expires %s, %s", (long long)t->id,
		 expires, uses);
	return record(tx, t->who, AUDIT_TOKEN_CREATED, comment);
}

int enroll_token_create(struct store *s, int64_t now, int64_t expires_at, int64_t uses,
			const struct audit_rec *who, char token[SECRET_TEXT_MAX], int64_t *id)
{
	struct token_new t;
	int rc;

	memset(&t, 0, sizeof(t));
	secret_new(TOKEN_PREFIX, token);
	secret_hash(token, strlen(token), t.rec.hash);
	t.rec.created_at = now;
	t.rec.expires_at = expires_at;
	t.rec.uses_left = uses;
	t.who = who;
	if ((rc = store_write(s, token_insert_tx, &t)) < 0) {
		sodium_memzero(token, SECRET_TEXT_MAX);
		return rc;
	}
	if (id)
		*id = t.id;
	return 0;
}

struct revoke {
	int64_t id;
	const struct audit_rec *who;
	bool found, was_revoked;
};

static int revoke_seen(const struct token_rec *t, void *arg)
{
	struct revoke *r = arg;

	if (t->id != r->id)
		return 0;
	r->found = true;
	r->was_revoked = t->revoked;
	return 1;
}

static int token_revoke_tx(struct store_tx *tx, void *arg)
{
	struct revoke *r = arg;
	char comment[40];
	int rc;

	/* Tokens are few (one an administrator's action): whether it was
	 * revoked already is read by a walk, not a store operation of its own. */
	r->found = r->was_revoked = false;
	if ((rc = store_token_each(tx, revoke_seen, r)) < 0)
		return rc;
	if (!r->found)
		return KW_ERR_NOT_FOUND;
	if (r->was_revoked)
		return 0;
	if ((rc = store_token_revoke(tx, r->id)) < 0)
		return rc;
	snprintf(comment, sizeof(comment), "token %lld", (long long)r->id);
	return record(tx, r->who, AUDIT_TOKEN_REVOKED, comment);
}

int enroll_token_revoke(struct store *s, int64_t id, const struct audit_rec *who)
{
	struct revoke r = { id, who, false, false };

	return store_write(s, token_revoke_tx, &r);
}

struct token_each {
	store_each_token fn;
	void *arg;
};

static int token_each_tx(struct store_tx *tx, void *arg)
{
	const struct token_each *e = arg;

	return store_token_each(tx, e->fn, e->arg);
}

int enroll_token_each(struct store *s, store_each_token fn, void *arg)
{
	struct token_each e = { fn, arg };

	/* fn may print: the read runs once. */
	return store_read_once(s, token_each_tx, &e);
}

enum enroll_token_state enroll_token_state(const struct token_rec *t, int64_t now)
{
	if (t->revoked)
		return ENROLL_TOKEN_REVOKED;
	if (t->expires_at && t->expires_at <= now)
		return ENROLL_TOKEN_EXPIRED;
	if (t->uses_left == 0)
		return ENROLL_TOKEN_USED_UP;
	return ENROLL_TOKEN_VALID;
}

struct reg {
	uint8_t token_hash[SECRET_HASH_LEN];
	const struct device_new *d;
	int64_t now;
	char device_id[UUID_LEN + 1];
	uint8_t secret_hash[SECRET_HASH_LEN];
};

static int register_tx(struct store_tx *tx, void *arg)
{
	struct reg *r = arg;
	struct token_rec t;
	struct device_rec d;
	int rc;

	rc = store_token_get(tx, r->token_hash, &t);
	if (rc == KW_ERR_NOT_FOUND)
		return KW_ERR_AUTH;
	if (rc < 0)
		return rc;
	if (enroll_token_state(&t, r->now) != ENROLL_TOKEN_VALID)
		return KW_ERR_AUTH;
	if ((rc = store_token_use(tx, t.id)) < 0)
		return rc;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", r->device_id);
	d.name = r->d->name;
	d.domain = r->d->domain ? r->d->domain : "";
	d.os = r->d->os ? r->d->os : "";
	d.created_at = r->now;
	return store_device_insert(tx, &d, r->secret_hash);
}

int enroll_register(struct store *s, const char *token, const struct device_new *d,
		    int64_t now, char device_id[UUID_LEN + 1],
		    char secret[SECRET_TEXT_MAX])
{
	struct reg r;
	int rc;

	memset(&r, 0, sizeof(r));
	secret_hash(token, strlen(token), r.token_hash);
	r.d = d;
	r.now = now;
	secret_uuid(r.device_id);
	secret_new(SECRET_PREFIX, secret);
	secret_hash(secret, strlen(secret), r.secret_hash);
	rc = store_write(s, register_tx, &r);
	if (rc < 0) {
		sodium_memzero(secret, SECRET_TEXT_MAX);
		return rc;
	}
	memcpy(device_id, r.device_id, sizeof(r.device_id));
	return 0;
}

struct auth {
	char *device_id;
	char *name;
	size_t namelen;
	bool revoked;
};

static int auth_found(const struct device_rec *d, void *arg)
{
	struct auth *a = arg;

	snprintf(a->device_id, UUID_LEN + 1, "%s", d->id);
	if (a->name)
		snprintf(a->name, a->namelen, "%s", d->name);
	a->revoked = d->revoked;
	return 0;
}

struct auth_tx {
	uint8_t hash[SECRET_HASH_LEN];
	struct auth *a;
};

static int auth_tx(struct store_tx *tx, void *arg)
{
	struct auth_tx *t = arg;

	return store_device_by_secret(tx, t->hash, auth_found, t->a);
}

/* The live device with this secret hash, into a. */
static int authenticate_hash(struct store *s, const uint8_t hash[SECRET_HASH_LEN],
			     struct auth *a)
{
	struct auth_tx t;
	int rc;

	memcpy(t.hash, hash, SECRET_HASH_LEN);
	t.a = a;
	rc = store_lookup(s, auth_tx, &t);
	if (rc == KW_ERR_NOT_FOUND || (rc == 0 && a->revoked))
		return KW_ERR_AUTH;
	return rc;
}


/* ---- the device cache ---- */

/* Sets of two: two devices whose secrets fall in one set do not push each
 * other out at every check-in (with one slot a set, 64 devices would meet
 * in one set about every other time). */
#define DEVICE_CACHE_SETS 4096
#define DEVICE_CACHE_WAYS 2

struct device_slot {
	uint8_t hash[SECRET_HASH_LEN];
	char device_id[UUID_LEN + 1];
	char name[DEVICE_NAME_MAX + 1];
	bool used;
};

struct device_set {
	struct device_slot way[DEVICE_CACHE_WAYS];
	unsigned recent;              /* the way used last */
};

struct device_cache {
	pthread_mutex_t lock;
	struct device_set set[DEVICE_CACHE_SETS];
};

int device_cache_new(struct device_cache **out)
{
	struct device_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return KW_ERR_NOMEM;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void device_cache_free(struct device_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	sodium_memzero(c, sizeof(*c));
	free(c);
}

/* The hash is of a random secret: its first bytes spread evenly. */
static struct device_set *set_of(struct device_cache *c, const uint8_t *hash)
{
	uint32_t i;

	memcpy(&i, hash, sizeof(i));
	return &c->set[i % DEVICE_CACHE_SETS];
}

/* Under the lock: the way holding hash, or -1. */
static int way_of(const struct device_set *st, const uint8_t *hash)
{
	for (int w = 0; w < DEVICE_CACHE_WAYS; w++)
		if (st->way[w].used && sodium_memcmp(st->way[w].hash, hash, SECRET_HASH_LEN) == 0)
			return w;
	return -1;
}

int device_cache_authenticate(struct device_cache *c, struct store *s, const char *secret,
			      uint8_t hash[SECRET_HASH_LEN], char device_id[UUID_LEN + 1],
			      char *name, size_t namelen)
{
	struct device_set *st;
	struct device_slot *sl;
	char found_name[DEVICE_NAME_MAX + 1];
	struct auth a = { device_id, found_name, sizeof(found_name), false };
	int rc, w;

	if (strlen(secret) >= SECRET_TEXT_MAX)
		return KW_ERR_AUTH;
	secret_hash(secret, strlen(secret), hash);
	st = set_of(c, hash);
	pthread_mutex_lock(&c->lock);
	if ((w = way_of(st, hash)) >= 0) {
		sl = &st->way[w];
		snprintf(device_id, UUID_LEN + 1, "%s", sl->device_id);
		snprintf(name, namelen, "%s", sl->name);
		st->recent = (unsigned)w;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);

	if (!s)
		return KW_ERR_NOT_FOUND;
	if ((rc = authenticate_hash(s, hash, &a)) < 0)
		return rc;
	snprintf(name, namelen, "%s", found_name);
	pthread_mutex_lock(&c->lock);
	/* Its way if another thread put it in meanwhile, else an empty way,
	 * else the one not used last. */
	if ((w = way_of(st, hash)) < 0) {
		for (w = 0; w < DEVICE_CACHE_WAYS && st->way[w].used; w++)
			;
		if (w == DEVICE_CACHE_WAYS)
			w = (int)((st->recent + 1) % DEVICE_CACHE_WAYS);
	}
	sl = &st->way[w];
	memcpy(sl->hash, hash, SECRET_HASH_LEN);
	snprintf(sl->device_id, sizeof(sl->device_id), "%s", device_id);
	snprintf(sl->name, sizeof(sl->name), "%s", found_name);
	sl->used = true;
	st->recent = (unsigned)w;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void device_cache_forget(struct device_cache *c, const uint8_t hash[SECRET_HASH_LEN])
{
	struct device_set *st = set_of(c, hash);
	int w;

	pthread_mutex_lock(&c->lock);
	if ((w = way_of(st, hash)) >= 0)
		st->way[w].used = false;
	pthread_mutex_unlock(&c->lock);
}
