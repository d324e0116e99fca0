/* Local accounts: argon2id hashes in the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/auth.h"
#include "auth/password.h"
#include "core/config.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"

/* Calls in progress at once. The hashes themselves are capped by
 * password.c; this keeps local sign-ins from holding more than half of the
 * default 64 workers while they wait for one. */
#define LOCAL_MAX_CONCURRENT 32

struct local {
	struct store *store;
	struct identity_domains domains;
};

struct found {
	char name[IDENTITY_NAME_MAX + 1];
	char hash[PASSWORD_HASH_MAX];
	unsigned roles;
	bool disabled;
	bool any;
};

static int user_found(const struct user_rec *u, void *arg)
{
	struct found *f = arg;

	snprintf(f->name, sizeof(f->name), "%s", u->name);
	snprintf(f->hash, sizeof(f->hash), "%s", u->password_hash);
	f->roles = u->roles;
	f->disabled = u->disabled;
	f->any = true;
	return 0;
}

struct lookup {
	const struct local *l;
	const char *user;
	struct found *f;
};

/* The account named as typed; else one named by another form of it: the
 * mapped form through [identity] domains (alice@corp.example.com <->
 * CORP\alice), and for a bare name DOMAIN\name and name@dns of each
 * configured domain (a local account may be named as devices report it). */
static int lookup_tx(struct store_tx *tx, void *arg)
{
	struct lookup *lk = arg;
	const struct identity_domains *d = &lk->l->domains;
	char alt[IDENTITY_NAME_MAX * 2];
	struct identity id;
	bool bare = !strchr(lk->user, '\\') && !strchr(lk->user, '@');
	int rc;

	memset(lk->f, 0, sizeof(*lk->f));   /* a rerun starts afresh */
	identity_from_name(d, lk->user, &id);
	for (size_t i = 0; i < id.n; i++)
		if ((rc = store_user_get(tx, id.forms[i], user_found, lk->f)) != KW_ERR_NOT_FOUND)
			return rc;
	for (size_t i = 0; bare && i < d->n; i++) {
		snprintf(alt, sizeof(alt), "%s\\%s", d->dom[i].netbios, lk->user);
		if ((rc = store_user_get(tx, alt, user_found, lk->f)) != KW_ERR_NOT_FOUND)
			return rc;
		snprintf(alt, sizeof(alt), "%s@%s", lk->user, d->dom[i].dns);
		if ((rc = store_user_get(tx, alt, user_found, lk->f)) != KW_ERR_NOT_FOUND)
			return rc;
	}
	return KW_ERR_NOT_FOUND;
}

static int local_open(const struct config *cfg, struct store *s, void **ctx, char *msg,
		      size_t msglen)
{
	struct local *l = calloc(1, sizeof(*l));

	if (!l) {
		str_msg(msg, msglen, "%s", kw_strerror(KW_ERR_NOMEM));
		return KW_ERR_NOMEM;
	}
	l->store = s;
	l->domains = cfg->domains;
	*ctx = l;
	return 0;
}

static void local_close(void *ctx)
{
	free(ctx);
}

/* The store answers locally and quickly: the deadline is not needed. */
static int local_authenticate(void *ctx, const char *user, const char *password,
			      int64_t deadline_ms, struct auth_user *out)
{
	struct local *l = ctx;
	struct found f;
	struct lookup lk = { l, user, &f };
	int rc, ok;

	memset(&f, 0, sizeof(f));
	rc = store_read(l->store, lookup_tx, &lk);
	if (rc < 0 && rc != KW_ERR_NOT_FOUND)
		return rc;
	/* An unknown user costs a hash too: timing does not tell. */
	ok = password_verify(f.any ? f.hash : NULL, password) == 0;
	sodium_memzero(f.hash, sizeof(f.hash));
	if (!f.any)
		return KW_ERR_NOT_FOUND;
	snprintf(out->name, sizeof(out->name), "%s", f.name);
	if (!ok || f.disabled || !*f.name)
		return KW_ERR_AUTH;
	out->roles = f.roles;
	identity_from_name(&l->domains, f.name, &out->id);
	return 0;
}

/* Every local account named by a form of id adds its roles; a disabled one
 * is known but grants nothing. */
static int local_roles(void *ctx, const struct identity *id, int64_t deadline_ms,
		       unsigned *roles)
{
	struct local *l = ctx;
	struct found f;
	struct lookup lk = { l, NULL, &f };
	bool known = false;
	int rc;

	*roles = 0;
	for (size_t i = 0; i < id->n; i++) {
		memset(&f, 0, sizeof(f));
		lk.user = id->forms[i];
		rc = store_read(l->store, lookup_tx, &lk);
		sodium_memzero(f.hash, sizeof(f.hash));
		if (rc == KW_ERR_NOT_FOUND)
			continue;
		if (rc < 0)
			return rc;
		known = true;
		if (!f.disabled)
			*roles |= f.roles;
	}
	return known ? 0 : KW_ERR_NOT_FOUND;
}

const struct auth_backend auth_local = {
	.name = "local",
	.max_concurrent = LOCAL_MAX_CONCURRENT,
	.open = local_open,
	.close = local_close,
	.authenticate = local_authenticate,
	.roles = local_roles,
};
