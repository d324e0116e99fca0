#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/secret.h"

/* Random bytes from the system, fetched 512 at a time per thread: one
 * system call for every sixteen secrets (the sign-in page makes one per
 * view). Bytes handed out are wiped from the pool. */
#define POOL 512
static _Thread_local unsigned char pool[POOL];
static _Thread_local size_t pool_left;

static void pool_take(unsigned char *out, size_t n)
{
	if (pool_left < n) {
		randombytes_buf(pool, POOL);
		pool_left = POOL;
	}
	memcpy(out, pool + POOL - pool_left, n);
	sodium_memzero(pool + POOL - pool_left, n);
	pool_left -= n;
}

void secret_new(const char *prefix, char out[SECRET_TEXT_MAX])
{
	unsigned char raw[SECRET_BYTES];
	size_t n = strlen(prefix);

	pool_take(raw, sizeof(raw));
	memcpy(out, prefix, n);
	sodium_bin2base64(out + n, SECRET_TEXT_MAX - n, raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

void secret_hash(const char *text, size_t len, uint8_t out[SECRET_HASH_LEN])
{
	crypto_hash_sha256(out, (const unsigned char *)text, len);
}

void secret_uuid(char out[UUID_LEN + 1])
{
	uint8_t b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
		 b[11], b[12], b[13], b[14], b[15]);
}

int secret_equal(const char *a, const char *b)
{
	size_t n = strlen(a);

	if (n == 0 || n != strlen(b))
		return 0;
	return sodium_memcmp(a, b, n) == 0;
}
