/* Random secrets (device secrets, enrollment tokens, session IDs) and the
 * hashes they are stored under. A secret is 256 random bits: SHA-256 is the
 * right hash for it (a slow password hash protects only guessable input). */
#ifndef KW_CORE_SECRET_H
#define KW_CORE_SECRET_H

#include <stddef.h>
#include <stdint.h>

#define SECRET_BYTES 32
#define SECRET_HASH_LEN 32
#define SECRET_TEXT_MAX 64      /* prefix + base64url of 32 bytes + NUL, with room */
#define UUID_LEN 36

/* A new secret as text: prefix followed by base64url (no padding) of 256
 * random bits. out must hold SECRET_TEXT_MAX bytes. */
void secret_new(const char *prefix, char out[SECRET_TEXT_MAX]);

/* SHA-256 of text. */
void secret_hash(const char *text, size_t len, uint8_t out[SECRET_HASH_LEN]);

/* A random (version 4) UUID in lower case. */
void secret_uuid(char out[UUID_LEN + 1]);

/* Constant-time comparison of two equal-length strings; false when the
 * lengths differ or the strings are empty (an empty secret, a missing form
 * field and a missing cookie are never a match). */
int secret_equal(const char *a, const char *b);

#endif
