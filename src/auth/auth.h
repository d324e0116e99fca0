/* Sign-in: the configured backends ([auth] backends = local, or ldap, local)
 * are tried in order; each is one implementation of struct auth_backend.
 * A backend that does not know the user passes to the next; a wrong
 * password or an unreachable directory stops there. */
#ifndef KW_AUTH_AUTH_H
#define KW_AUTH_AUTH_H

#include <stddef.h>

#include "core/identity.h"

struct config;
struct store;

struct auth_user {
	char name[IDENTITY_NAME_MAX + 1];   /* the account, as shown and audited */
	unsigned roles;                     /* enum role bits */
	struct identity id;                 /* every form of the name */
};

struct auth_backend {
	const char *name;
	/* 0 and *out filled; KW_ERR_NOT_FOUND: unknown here, try the next;
	 * KW_ERR_AUTH: wrong password, disabled (out->name then names the
	 * account, for the log); KW_ERR_UNAVAILABLE: the directory did not
	 * answer in time. */
	int (*authenticate)(const struct config *cfg, struct store *s, const char *user,
			    const char *password, struct auth_user *out);
};

extern const struct auth_backend auth_local;

#define AUTH_MAX_BACKENDS 4

/* Is name (any case) a backend built into this keywarden? For [auth]
 * backends, as an ini_check_fn: 0, or KW_ERR_INVALID with the reason in
 * why ("'ldap' is not a sign-in backend of this keywarden (use local)"). */
int auth_backend_check(const char *name, char *why, size_t whylen);

/* Signs user in through the configured backends. KW_ERR_AUTH for every
 * kind of refusal (the caller shows one generic message),
 * KW_ERR_UNAVAILABLE when a directory is down. */
int auth_authenticate(const struct config *cfg, struct store *s, const char *user,
		      const char *password, struct auth_user *out);

#endif
