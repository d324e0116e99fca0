/* Sign-in: the configured backends ([auth] backends = local, or later
 * ldap, local) form a chain; each is one implementation of struct
 * auth_backend, opened once at start-up.
 *
 * The user is signed in by the first backend that accepts the password:
 * a backend that does not know the user, or does not answer in time
 * (a directory that is down), passes to the next, so a local break-glass
 * account still works while the directory is down; a backend that knows
 * the user and refuses the password stops the chain. The roles are the
 * union of what every backend that knows the user grants ("the widest
 * wins", SPEC §2).
 *
 * Every call into a backend has a deadline, and each backend has a cap on
 * concurrent calls: a call that finds the cap reached waits for a free
 * place until the deadline, then counts as "did not answer", so a hanging
 * directory holds at most its cap of the server's workers. */
#ifndef KW_AUTH_AUTH_H
#define KW_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/identity.h"

struct config;
struct store;
struct auth;

#define AUTH_MAX_BACKENDS 4
#define AUTH_REASON_MAX 192

struct auth_user {
	char name[IDENTITY_NAME_MAX + 1];   /* the account, as shown and audited */
	unsigned roles;                     /* enum role bits, from every backend */
	struct identity id;                 /* every form of the name */
	const char *backend;                /* the backend that took the password */
	/* Backends that did not answer (down, slow, at their cap): they
	 * granted no roles. For the caller's log; static names. */
	const char *down[AUTH_MAX_BACKENDS];
	size_t ndown;
	/* Why down[i] did not answer ("ldap://dc1: Can't contact LDAP
	 * server"), or "": for the log, never a secret. A backend that
	 * returns KW_ERR_UNAVAILABLE may say why in reason. */
	char down_why[AUTH_MAX_BACKENDS][AUTH_REASON_MAX];
	char reason[AUTH_REASON_MAX];
};

struct auth_backend {
	const char *name;
	unsigned max_concurrent;            /* cap on calls in progress, >= 1 */

	/* Called once at start-up: takes from cfg what the backend needs
	 * (cfg need not outlive it) and keeps it in *ctx, with s (which
	 * outlives it). 0, or an error with a sentence in msg. */
	int (*open)(const struct config *cfg, struct store *s, void **ctx, char *msg,
		    size_t msglen);
	void (*close)(void *ctx);           /* accepts NULL */

	/* Checks the password. Returns by deadline_ms (time_mono_ms()):
	 * 0 with *out filled (name, roles, id);
	 * KW_ERR_NOT_FOUND: the user is unknown here;
	 * KW_ERR_AUTH: known here, and a wrong password or a disabled account
	 * (out->name then names the account, for the log);
	 * KW_ERR_UNAVAILABLE: could not answer in time (out->reason may say
	 * why, for the log);
	 * another error: the sign-in fails with it. */
	int (*authenticate)(void *ctx, const char *user, const char *password,
			    int64_t deadline_ms, struct auth_user *out);

	/* The roles this backend grants a user signed in by another backend,
	 * looked up under every form of id. Returns by deadline_ms: 0 with
	 * *roles (maybe 0: known, no roles), KW_ERR_NOT_FOUND (unknown here),
	 * KW_ERR_UNAVAILABLE, or another error. */
	int (*roles)(void *ctx, const struct identity *id, int64_t deadline_ms,
		     unsigned *roles);
};

/* Local accounts in the store (auth/local.c). */
extern const struct auth_backend auth_local;

/* A directory through OpenLDAP's libldap (auth/ldap.c): [ldap], [roles]. */
extern const struct auth_backend auth_ldap;

/* Is name (any case) a backend built into this keywarden? The one check of
 * [auth] backends, as an ini_check_fn: 0, or KW_ERR_INVALID with the
 * reason in why ("'ldap' is not a sign-in backend of this keywarden (use
 * local)"). */
int auth_backend_check(const char *name, char *why, size_t whylen);

/* Opens the chain of cfg->backends over store s. cfg need not outlive the
 * chain; s must. 0 with *out (free with auth_close), or an error with a
 * sentence in msg (an unknown backend: KW_ERR_INVALID; a backend's open
 * failed: its error). */
int auth_open(const struct config *cfg, struct store *s, struct auth **out, char *msg,
	      size_t msglen);

/* The same with the backends given (1 to AUTH_MAX_BACKENDS, none twice),
 * in chain order: for tests, and for backends not named in cfg. */
int auth_open_backends(const struct auth_backend *const *chain, size_t n,
		       const struct config *cfg, struct store *s, struct auth **out,
		       char *msg, size_t msglen);

/* Closes every backend. No call may be in progress. Accepts NULL. */
void auth_close(struct auth *a);

/* The deadline of a sign-in starting now: time_mono_ms() plus [ldap]
 * timeout. */
int64_t auth_deadline(const struct auth *a);

/* Signs user in through the chain (see above), every backend call done by
 * deadline_ms (time_mono_ms(); see auth_deadline). Returns 0 with *out;
 * KW_ERR_AUTH for every kind of refusal (the caller shows one generic
 * message; out->name names a known account, else is ""); KW_ERR_UNAVAILABLE
 * when no backend took the password and one did not answer; or a backend's
 * other error. out->down lists the backends that did not answer, in every
 * case. */
int auth_authenticate(struct auth *a, const char *user, const char *password,
		      int64_t deadline_ms, struct auth_user *out);

#endif
