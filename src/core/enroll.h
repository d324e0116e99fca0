/* Enrollment tokens and device registration (SPEC §5): a token, made by an
 * administrator, lets a device register once or a limited number of times
 * before it expires; registration returns the device's own secret. */
#ifndef KW_CORE_ENROLL_H
#define KW_CORE_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include "core/secret.h"
#include "store/store.h"

#define DEVICE_NAME_MAX 255
#define DEVICE_TEXT_MAX 255

struct store;

#define ENROLL_EXPIRES_MAX (10LL * 365 * 86400)   /* 10 years ahead at most */
#define ENROLL_USES_MAX 1000000000LL

/* Parses when a new token expires, at now: a duration ("30d", "12h", "90m";
 * core's durations, util/str.h) from now, or a date "YYYY-MM-DD" (the token
 * is valid through that whole day, UTC), or "0" for never (*expires_at 0).
 * KW_ERR_INVALID for anything else, a date that is not after now, or more
 * than ENROLL_EXPIRES_MAX ahead. */
int enroll_parse_expiry(const char *text, int64_t now, int64_t *expires_at);

/* Makes a token valid until expires_at (0 = never) for uses registrations
 * (-1 = unlimited); writes the token text (shown once) and its id. With
 * who (see core/account.h: source, actor, client; NULL for none) the
 * token_created record, naming the token's ID, expiry and uses, is
 * appended in the same transaction: no record, no token. */
int enroll_token_create(struct store *s, int64_t now, int64_t expires_at, int64_t uses,
			const struct audit_rec *who, char token[SECRET_TEXT_MAX], int64_t *id);

/* Revokes token id, with the token_revoked record when who is given (in
 * the same transaction); KW_ERR_NOT_FOUND when there is none. Revoking a
 * revoked token is no error and records nothing. */
int enroll_token_revoke(struct store *s, int64_t id, const struct audit_rec *who);

/* Calls fn for every token, oldest first, in one read snapshot (the hash,
 * never the token). A non-zero return of fn stops the walk and is
 * returned; fn must not call the store. */
int enroll_token_each(struct store *s, store_each_token fn, void *arg);

/* Whether a token lets a device register at now, and if not, why (the
 * first that applies, in this order). */
enum enroll_token_state {
	ENROLL_TOKEN_VALID = 0,
	ENROLL_TOKEN_REVOKED,
	ENROLL_TOKEN_EXPIRED,
	ENROLL_TOKEN_USED_UP,
};
enum enroll_token_state enroll_token_state(const struct token_rec *t, int64_t now);

struct device_new {
	const char *name;
	const char *domain;          /* may be "" */
	const char *os;              /* may be "" */
};

/* Registers a device with an enrollment token: KW_ERR_AUTH when the token
 * is unknown, revoked, expired or used up (nothing is stored then). On
 * success writes the new device ID and its secret (shown once). */
int enroll_register(struct store *s, const char *token, const struct device_new *d,
		    int64_t now, char device_id[UUID_LEN + 1],
		    char secret[SECRET_TEXT_MAX]);

/* Which device a secret names, remembered: a check-in then needs no read
 * of the store before its write. Remembering is not trusting: the caller
 * must check the device against the hash in the write (store op
 * device_check_secret), which also catches a device revoked since, and
 * then call device_cache_forget. A bounded table of sets of two entries. */
struct device_cache;

int device_cache_new(struct device_cache **out);
void device_cache_free(struct device_cache *c);
/* The device a secret belongs to: its ID, its name (namelen bytes) and the
 * secret's hash; from c, or else looked up and remembered. KW_ERR_AUTH
 * when the secret is unknown or the device revoked. s NULL: from c only,
 * KW_ERR_NOT_FOUND when it is not there (nothing waits for the store). */
int device_cache_authenticate(struct device_cache *c, struct store *s, const char *secret,
			      uint8_t hash[SECRET_HASH_LEN], char device_id[UUID_LEN + 1],
			      char *name, size_t namelen);
void device_cache_forget(struct device_cache *c, const uint8_t hash[SECRET_HASH_LEN]);

#endif
