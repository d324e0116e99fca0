/* Local accounts: argon2id hashes in the store. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/auth.h"
#include "auth/password.h"
#include "store/store.h"
#include "core/config.h"
#include "util/err.h"

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
	const struct config *cfg;
	const char *user;
	struct found *f;
};

/* The account named as typed; else one named by another form of it: the
 * mapped form through [identity] domains (alice@corp.example.com <->
 * CORP\alice), and for a bare name DOMAIN\name and name@dns of each
 * configured domain (a local account may be named as devices report it). */
static int lookup_tx(struct store_tx *tx, void *arg)
{
	struct lookup *l = arg;
	const struct config *cfg = l->cfg;
	char alt[IDENTITY_NAME_MAX * 2];
	struct identity id;
	bool bare = !strchr(l->user, '\\') && !strchr(l->user, '@');
	int rc;

	identity_from_name(&cfg->domains, l->user, &id);
	for (size_t i = 0; i < id.n; i++)
		if ((rc = STORE_TX(tx, user_get, id.forms[i], user_found, l->f)) != KW_ERR_NOT_FOUND)
			return rc;
	for (size_t i = 0; bare && i < cfg->domains.n; i++) {
		snprintf(alt, sizeof(alt), "%s\\%s", cfg->domains.dom[i].netbios, l->user);
		if ((rc = STORE_TX(tx, user_get, alt, user_found, l->f)) != KW_ERR_NOT_FOUND)
			return rc;
		snprintf(alt, sizeof(alt), "%s@%s", l->user, cfg->domains.dom[i].dns);
		if ((rc = STORE_TX(tx, user_get, alt, user_found, l->f)) != KW_ERR_NOT_FOUND)
			return rc;
	}
	return KW_ERR_NOT_FOUND;
}

static int local_authenticate(const struct config *cfg, struct store *s, const char *user,
			      const char *password, struct auth_user *out)
{
	struct found f;
	struct lookup l = { cfg, user, &f };
	int rc, ok;

	memset(&f, 0, sizeof(f));
	rc = store_read(s, lookup_tx, &l);
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
	identity_from_name(&cfg->domains, f.name, &out->id);
	return 0;
}

const struct auth_backend auth_local = { "local", local_authenticate };
