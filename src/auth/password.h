/* User passwords: argon2id (libsodium) with t=2, m=19 MiB, and a cap on how
 * many hashes run at once so a burst of sign-ins cannot exhaust memory. */
#ifndef KW_AUTH_PASSWORD_H
#define KW_AUTH_PASSWORD_H

#include <stddef.h>

#define PASSWORD_HASH_MAX 128    /* crypto_pwhash_STRBYTES */
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024

/* Sets how many hashes may run at once (default: 2). Call before use. */
void password_set_concurrency(unsigned n);

/* Checks length limits; KW_ERR_INVALID with a sentence in msg. */
int password_check_policy(const char *pw, char *msg, size_t msglen);

/* Hashes pw into out (PASSWORD_HASH_MAX bytes). */
int password_hash(const char *pw, char out[PASSWORD_HASH_MAX]);

/* 0 when pw matches hash, KW_ERR_AUTH otherwise. With hash NULL (unknown
 * user) it does the same work against a fixed hash and fails, so the time
 * taken does not tell whether the account exists. */
int password_verify(const char *hash, const char *pw);

#endif
