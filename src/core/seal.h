/* Recovery passwords at rest: XChaCha20-Poly1305 (libsodium) under a 256-bit
 * master key read from key_file, with the key ID and device ID as associated
 * data, so a sealed value moved to another row does not open. SPEC §6. */
#ifndef KW_CORE_SEAL_H
#define KW_CORE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_NONCE_LEN 24
#define SEAL_TAG_LEN 16
#define SEAL_MAX 160                 /* sealed size of any recovery password */
#define SEAL_FINGERPRINT_LEN 16      /* hex digits identifying a master key */

struct seal;

/* A new random master key, in locked memory. */
int seal_generate(struct seal **out);

/* Reads the master key from path: 64 hex digits and an optional newline.
 * KW_ERR_IO when it cannot be read, KW_ERR_PERM when it is readable or
 * writable by group or others, KW_ERR_INVALID when malformed; msg says
 * which, naming the file. */
int seal_load(const char *path, struct seal **out, char *msg, size_t msglen);

/* Writes the key to path with mode 0600, atomically (temporary file, fsync,
 * then rename, or with exclusive link, then fsync of the folder): path holds
 * the whole key or what it held before. With exclusive, an existing path is
 * KW_ERR_EXISTS and is left untouched, even when another process creates it
 * at the same moment. */
int seal_save(const struct seal *k, const char *path, int exclusive,
	      char *msg, size_t msglen);

/* Renames the key file from to to (replacing to) and syncs the folder, so
 * the change survives a crash once this returns 0. KW_ERR_IO with msg. */
int seal_rename(const char *from, const char *to, char *msg, size_t msglen);

void seal_free(struct seal *k);

/* A short public identifier of the key, stored in the database so a wrong
 * key file is noticed at start-up. out: SEAL_FINGERPRINT_LEN + 1 bytes. */
void seal_fingerprint(const struct seal *k, char *out);

/* Seals pw (a canonical recovery password) for key_id on device_id into
 * out (at least SEAL_MAX bytes); *outlen gets the size. */
int seal_encrypt(const struct seal *k, const char *key_id, const char *device_id,
		 const char *pw, uint8_t *out, size_t *outlen);

/* Opens a sealed value into pw (pwlen bytes, NUL-terminated). KW_ERR_CRYPTO
 * when it does not authenticate (wrong key, row or data). The caller wipes
 * pw with sodium_memzero when done. */
int seal_decrypt(const struct seal *k, const char *key_id, const char *device_id,
		 const uint8_t *in, size_t inlen, char *pw, size_t pwlen);

#endif
