#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/seal.h"
#include "util/err.h"

#define PW "496298-461032-321464-595518-463221-173943-033616-139579"
#define PW2 "471207-278498-422125-177177-561902-537405-468006-693451"
#define KEY_ID "4290B6C0-B17A-497A-8552-272CC30E80D4"
#define KEY_ID2 "4290B6C0-B17A-497A-8552-272CC30E80D5"
#define DEV "0b5e1e6c-3d1f-4c3e-9a51-5b2f8e0c7a11"
#define DEV2 "0b5e1e6c-3d1f-4c3e-9a51-5b2f8e0c7a12"
#define RECPW_LEN_BUF 64     /* a canonical password (55) and its NUL, with room */
#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

struct fx {
	char dir[64];
	char path[128];
	struct seal *k;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-seal-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/master.key", f->dir);
	if (seal_generate(&f->k) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[160];

	seal_free(f->k);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s.tmp", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s/other.key", f->dir);
	unlink(p);
	if (rmdir(f->dir) < 0)
		fail_msg("%s is not empty after the test", f->dir);
	free(f);
	return 0;
}

/* Writes text to path with mode. */
static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	uint8_t sealed[SEAL_MAX];
	char pw[RECPW_LEN_BUF];
	size_t len = 0;

	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, sealed, &len), 0);
	assert_int_equal(len, SEAL_NONCE_LEN + strlen(PW) + SEAL_TAG_LEN);
	assert_true(len <= SEAL_MAX);
	/* The password is not in the sealed bytes. */
	assert_null(memmem(sealed, len, PW, strlen(PW)));
	assert_null(memmem(sealed, len, "496298", 6));
	memset(pw, 'x', sizeof(pw));
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed, len, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PW);
}

static void test_wrong_associated_data(void **state)
{
	struct fx *f = *state;
	uint8_t sealed[SEAL_MAX];
	char pw[RECPW_LEN_BUF];
	size_t len = 0;

	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, sealed, &len), 0);
	/* Moved to another key ID or another device: does not open. */
	assert_int_equal(seal_decrypt(f->k, KEY_ID2, DEV, sealed, len, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV2, sealed, len, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	assert_int_equal(seal_decrypt(f->k, KEY_ID2, DEV2, sealed, len, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	/* Swapping the two fields is not the same data either. */
	assert_int_equal(seal_decrypt(f->k, DEV, KEY_ID, sealed, len, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	/* Shifting a character between key ID and device ID does not collide. */
	assert_int_equal(seal_encrypt(f->k, "AB", "C", PW, sealed, &len), 0);
	assert_int_equal(seal_decrypt(f->k, "A", "BC", sealed, len, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	assert_int_equal(seal_decrypt(f->k, "AB", "C", sealed, len, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PW);
}

static void test_wrong_master_key(void **state)
{
	struct fx *f = *state;
	struct seal *other = NULL;
	uint8_t sealed[SEAL_MAX];
	char pw[RECPW_LEN_BUF];
	size_t len = 0;

	assert_int_equal(seal_generate(&other), 0);
	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, sealed, &len), 0);
	assert_int_equal(seal_decrypt(other, KEY_ID, DEV, sealed, len, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	seal_free(other);
	seal_free(NULL);
}

static void test_tampered(void **state)
{
	struct fx *f = *state;
	uint8_t sealed[SEAL_MAX];
	char pw[RECPW_LEN_BUF];
	size_t len = 0;

	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, sealed, &len), 0);
	/* One flipped bit anywhere: nonce, ciphertext or tag. */
	for (size_t i = 0; i < len; i++) {
		sealed[i] ^= 0x01;
		if (seal_decrypt(f->k, KEY_ID, DEV, sealed, len, pw, sizeof(pw)) !=
		    KW_ERR_CRYPTO)
			fail_msg("a flipped bit at byte %zu was not noticed", i);
		sealed[i] ^= 0x01;
	}
	/* Truncated, or with a byte appended. */
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed, len - 1, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	sealed[len] = 0;
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed, len + 1, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	/* Shorter than nonce + tag, and empty. */
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed,
				      SEAL_NONCE_LEN + SEAL_TAG_LEN - 1, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed, 0, pw, sizeof(pw)),
			 KW_ERR_CRYPTO);
	/* The untouched value still opens. */
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed, len, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PW);
}

static void test_output_buffer_too_small(void **state)
{
	struct fx *f = *state;
	uint8_t sealed[SEAL_MAX];
	char pw[RECPW_LEN_BUF];
	size_t len = 0;

	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, sealed, &len), 0);
	/* No room for the NUL: refused rather than overrun. */
	memset(pw, 'x', sizeof(pw));
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed, len, pw, strlen(PW)),
			 KW_ERR_CRYPTO);
	assert_int_equal(pw[strlen(PW)], 'x');
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, sealed, len, pw, strlen(PW) + 1), 0);
	assert_string_equal(pw, PW);
}

static void test_plaintext_too_long(void **state)
{
	struct fx *f = *state;
	uint8_t sealed[SEAL_MAX];
	char big[SEAL_MAX];
	size_t len = 0;

	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, big, sealed, &len),
			 KW_ERR_INVALID);
	/* The largest that fits. */
	big[SEAL_MAX - SEAL_NONCE_LEN - SEAL_TAG_LEN] = '\0';
	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, big, sealed, &len), 0);
	assert_int_equal(len, SEAL_MAX);
}

static void test_random_nonce(void **state)
{
	struct fx *f = *state;
	uint8_t a[SEAL_MAX], b[SEAL_MAX];
	char pw[RECPW_LEN_BUF];
	size_t alen = 0, blen = 0;

	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, a, &alen), 0);
	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, b, &blen), 0);
	assert_int_equal(alen, blen);
	assert_memory_not_equal(a, b, SEAL_NONCE_LEN);
	assert_memory_not_equal(a + SEAL_NONCE_LEN, b + SEAL_NONCE_LEN,
				alen - SEAL_NONCE_LEN);
	/* Both open to the same password. */
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, a, alen, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PW);
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, b, blen, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PW);
	/* Different passwords give different ciphertexts of the same size. */
	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW2, b, &blen), 0);
	assert_int_equal(seal_decrypt(f->k, KEY_ID, DEV, b, blen, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PW2);
}

static void test_fingerprint(void **state)
{
	struct fx *f = *state;
	struct seal *other = NULL;
	char a[SEAL_FINGERPRINT_LEN + 1], b[SEAL_FINGERPRINT_LEN + 1];

	seal_fingerprint(f->k, a);
	assert_int_equal(strlen(a), SEAL_FINGERPRINT_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), SEAL_FINGERPRINT_LEN);
	seal_fingerprint(f->k, b);
	assert_string_equal(a, b);
	assert_int_equal(seal_generate(&other), 0);
	seal_fingerprint(other, b);
	assert_string_not_equal(a, b);
	seal_free(other);
}

static void test_save_and_load(void **state)
{
	struct fx *f = *state;
	struct seal *loaded = NULL;
	char fa[SEAL_FINGERPRINT_LEN + 1], fb[SEAL_FINGERPRINT_LEN + 1];
	char msg[256] = "", text[80], tmp[160];
	uint8_t sealed[SEAL_MAX];
	char pw[RECPW_LEN_BUF];
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int fd;

	assert_int_equal(seal_save(f->k, f->path, 1, msg, sizeof(msg)), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* No temporary file is left behind. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	assert_int_equal(access(tmp, F_OK), -1);
	/* 64 lower-case hex digits and a newline. */
	fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text));
	close(fd);
	assert_int_equal(n, 65);
	assert_int_equal(text[64], '\n');
	assert_int_equal(strspn(text, "0123456789abcdef"), 64);

	assert_int_equal(seal_load(f->path, &loaded, msg, sizeof(msg)), 0);
	seal_fingerprint(f->k, fa);
	seal_fingerprint(loaded, fb);
	assert_string_equal(fa, fb);
	/* The loaded key opens what the original sealed. */
	assert_int_equal(seal_encrypt(f->k, KEY_ID, DEV, PW, sealed, &len), 0);
	assert_int_equal(seal_decrypt(loaded, KEY_ID, DEV, sealed, len, pw, sizeof(pw)), 0);
	assert_string_equal(pw, PW);
	seal_free(loaded);
}

static void test_save_under_umask(void **state)
{
	struct fx *f = *state;
	struct stat st;
	char msg[256];
	mode_t old = umask(0);

	/* A permissive umask does not widen the mode. */
	assert_int_equal(seal_save(f->k, f->path, 1, msg, sizeof(msg)), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_save_exclusive_existing(void **state)
{
	struct fx *f = *state;
	struct seal *other = NULL, *loaded = NULL;
	char fa[SEAL_FINGERPRINT_LEN + 1], fb[SEAL_FINGERPRINT_LEN + 1];
	char msg[256] = "";

	assert_int_equal(seal_save(f->k, f->path, 1, msg, sizeof(msg)), 0);
	assert_int_equal(seal_generate(&other), 0);
	assert_int_equal(seal_save(other, f->path, 1, msg, sizeof(msg)), KW_ERR_EXISTS);
	assert_contains(msg, f->path);
	/* The existing key is untouched. */
	assert_int_equal(seal_load(f->path, &loaded, msg, sizeof(msg)), 0);
	seal_fingerprint(f->k, fa);
	seal_fingerprint(loaded, fb);
	assert_string_equal(fa, fb);
	seal_free(loaded);
	/* Without exclusive the file is replaced. */
	assert_int_equal(seal_save(other, f->path, 0, msg, sizeof(msg)), 0);
	assert_int_equal(seal_load(f->path, &loaded, msg, sizeof(msg)), 0);
	seal_fingerprint(other, fa);
	seal_fingerprint(loaded, fb);
	assert_string_equal(fa, fb);
	seal_free(loaded);
	seal_free(other);
}

static void test_rename(void **state)
{
	struct fx *f = *state;
	struct seal *other = NULL, *loaded = NULL;
	char fa[SEAL_FINGERPRINT_LEN + 1], fb[SEAL_FINGERPRINT_LEN + 1];
	char from[160], msg[256] = "";

	snprintf(from, sizeof(from), "%s/other.key", f->dir);
	assert_int_equal(seal_save(f->k, f->path, 1, msg, sizeof(msg)), 0);
	assert_int_equal(seal_generate(&other), 0);
	assert_int_equal(seal_save(other, from, 1, msg, sizeof(msg)), 0);
	/* The key moves over the existing file, which then holds it. */
	assert_int_equal(seal_rename(from, f->path, msg, sizeof(msg)), 0);
	assert_int_equal(access(from, F_OK), -1);
	assert_int_equal(seal_load(f->path, &loaded, msg, sizeof(msg)), 0);
	seal_fingerprint(other, fa);
	seal_fingerprint(loaded, fb);
	assert_string_equal(fa, fb);
	seal_free(loaded);
	seal_free(other);
	/* A missing source is an error naming it; the target is untouched. */
	assert_int_equal(seal_rename(from, f->path, msg, sizeof(msg)), KW_ERR_IO);
	assert_contains(msg, from);
	assert_int_equal(access(f->path, F_OK), 0);
}

static void test_load_refuses_loose_mode(void **state)
{
	static const mode_t modes[] = { 0640, 0604, 0644, 0660, 0606, 0620, 0602, 0610, 0601,
					0666 };
	struct fx *f = *state;
	struct seal *loaded = NULL;
	char msg[256];

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_file(f->path, HEX64 "\n", modes[i]);
		msg[0] = '\0';
		if (seal_load(f->path, &loaded, msg, sizeof(msg)) != KW_ERR_PERM)
			fail_msg("mode %04o was accepted", (unsigned)modes[i]);
		assert_null(loaded);
		assert_contains(msg, f->path);
	}
	/* Owner-only modes are fine. */
	write_file(f->path, HEX64 "\n", 0400);
	assert_int_equal(seal_load(f->path, &loaded, msg, sizeof(msg)), 0);
	seal_free(loaded);
	loaded = NULL;
	write_file(f->path, HEX64 "\n", 0600);
	assert_int_equal(seal_load(f->path, &loaded, msg, sizeof(msg)), 0);
	seal_free(loaded);
}

static void test_load_formats(void **state)
{
	struct fx *f = *state;
	struct seal *a = NULL, *b = NULL, *c = NULL;
	char fa[SEAL_FINGERPRINT_LEN + 1], fb[SEAL_FINGERPRINT_LEN + 1];
	char msg[256];
	char upper[80];

	/* With and without the newline, upper or lower case: the same key. */
	write_file(f->path, HEX64 "\n", 0600);
	assert_int_equal(seal_load(f->path, &a, msg, sizeof(msg)), 0);
	write_file(f->path, HEX64, 0600);
	assert_int_equal(seal_load(f->path, &b, msg, sizeof(msg)), 0);
	snprintf(upper, sizeof(upper), "%s", HEX64);
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	write_file(f->path, upper, 0600);
	assert_int_equal(seal_load(f->path, &c, msg, sizeof(msg)), 0);
	seal_fingerprint(a, fa);
	seal_fingerprint(b, fb);
	assert_string_equal(fa, fb);
	seal_fingerprint(c, fb);
	assert_string_equal(fa, fb);
	seal_free(a);
	seal_free(b);
	seal_free(c);
}

static void test_load_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"0011",
		/* 63 digits, 65 digits */
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeef\n",
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0\n",
		/* a non-hex character */
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeegf\n",
		/* two newlines, CRLF, a leading space */
		HEX64 "\n\n",
		HEX64 "\r\n",
		" " HEX64,
		HEX64 HEX64 "\n",
	};
	struct fx *f = *state;
	struct seal *loaded = NULL;
	char msg[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(f->path, bad[i], 0600);
		msg[0] = '\0';
		if (seal_load(f->path, &loaded, msg, sizeof(msg)) != KW_ERR_INVALID)
			fail_msg("malformed key file %zu was not KW_ERR_INVALID", i);
		assert_null(loaded);
		assert_contains(msg, f->path);
	}
}

static void test_load_missing(void **state)
{
	struct fx *f = *state;
	struct seal *loaded = NULL;
	char msg[256] = "";

	assert_int_equal(seal_load(f->path, &loaded, msg, sizeof(msg)), KW_ERR_IO);
	assert_null(loaded);
	assert_contains(msg, f->path);
	/* A folder is not a key file. */
	assert_int_equal(seal_load(f->dir, &loaded, msg, sizeof(msg)), KW_ERR_IO);
	assert_null(loaded);
}

static void test_save_into_missing_folder(void **state)
{
	struct fx *f = *state;
	char path[160], msg[256] = "";

	snprintf(path, sizeof(path), "%s/no/such/key", f->dir);
	assert_int_equal(seal_save(f->k, path, 1, msg, sizeof(msg)), KW_ERR_IO);
	assert_true(msg[0] != '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_associated_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_buffer_too_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plaintext_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_nonce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_under_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_exclusive_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_refuses_loose_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_formats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_into_missing_folder, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
