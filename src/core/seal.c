#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/seal.h"
#include "util/err.h"

#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define AD_MAX 160

struct seal {
	unsigned char *key;          /* sodium_malloc'd, read-only */
};

static int seal_alloc(struct seal **out)
{
	struct seal *k = calloc(1, sizeof(*k));

	if (!k)
		return KW_ERR_NOMEM;
	if (!(k->key = sodium_malloc(KEY_LEN))) {
		free(k);
		return KW_ERR_NOMEM;
	}
	*out = k;
	return 0;
}

int seal_generate(struct seal **out)
{
	struct seal *k;
	int rc;

	if ((rc = seal_alloc(&k)) < 0)
		return rc;
	crypto_aead_xchacha20poly1305_ietf_keygen(k->key);
	sodium_mprotect_readonly(k->key);
	*out = k;
	return 0;
}

void seal_free(struct seal *k)
{
	if (!k)
		return;
	sodium_free(k->key);   /* wipes */
	free(k);
}

int seal_load(const char *path, struct seal **out, char *msg, size_t msglen)
{
	char text[130];
	struct seal *k = NULL;
	struct stat st;
	size_t n = 0, binlen = 0;
	ssize_t r;
	int fd = -1, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot read the key file %s: %s (run `keywarden init` "
			 "to create it)", path, strerror(errno));
		rc = KW_ERR_IO;
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "key file %s is not a regular file", path);
		rc = KW_ERR_IO;
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(msg, msglen, "key file %s is accessible by group or others (mode "
			 "%04o); run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		rc = KW_ERR_PERM;
		goto out;
	}
	while (n < sizeof(text) - 1 && (r = read(fd, text + n, sizeof(text) - 1 - n)) > 0)
		n += (size_t)r;
	text[n] = '\0';
	if (n > 0 && text[n - 1] == '\n')
		text[--n] = '\0';
	if ((rc = seal_alloc(&k)) < 0)
		goto out;
	if (n != 2 * KEY_LEN ||
	    sodium_hex2bin(k->key, KEY_LEN, text, n, NULL, &binlen, NULL) != 0 ||
	    binlen != KEY_LEN) {
		snprintf(msg, msglen, "key file %s does not hold a key (64 hex digits)", path);
		rc = KW_ERR_INVALID;
		goto out;
	}
	sodium_mprotect_readonly(k->key);
	*out = k;
	k = NULL;   /* owned by caller */
	rc = 0;
out:
	sodium_memzero(text, sizeof(text));
	if (fd >= 0)
		close(fd);
	seal_free(k);
	return rc;
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = KW_ERR_NOMEM;

	if (!copy)
		return rc;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = (fd >= 0 && fsync(fd) == 0) ? 0 : KW_ERR_IO;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int seal_save(const struct seal *k, const char *path, int exclusive, char *msg, size_t msglen)
{
	char hex[2 * KEY_LEN + 2], tmp[4096];
	int fd = -1, rc = KW_ERR_IO;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(msg, msglen, "key file path is too long");
		return KW_ERR_INVALID;
	}
	sodium_bin2hex(hex, sizeof(hex), k->key, KEY_LEN);
	hex[2 * KEY_LEN] = '\n';
	/* A temporary file left by an interrupted save never held a key in
	 * use: the key is used only once it has its own name. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0 ||
	    write(fd, hex, 2 * KEY_LEN + 1) != (ssize_t)(2 * KEY_LEN + 1) ||
	    fsync(fd) < 0) {
		snprintf(msg, msglen, "cannot write the key file %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (exclusive) {
		/* link() never replaces an existing file, and the key appears
		 * under its name complete or not at all. */
		if (link(tmp, path) < 0) {
			rc = errno == EEXIST ? KW_ERR_EXISTS : KW_ERR_IO;
			if (rc == KW_ERR_EXISTS)
				snprintf(msg, msglen, "key file %s already exists", path);
			else
				snprintf(msg, msglen, "cannot create %s: %s", path,
					 strerror(errno));
			unlink(tmp);
			goto out;
		}
		unlink(tmp);   /* if this fails, the next save removes it */
	} else if (rename(tmp, path) < 0) {
		snprintf(msg, msglen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	if (fsync_dir_of(path) < 0) {
		snprintf(msg, msglen, "cannot sync the folder of %s", path);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(hex, sizeof(hex));
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	return rc;
}

int seal_rename(const char *from, const char *to, char *msg, size_t msglen)
{
	if (rename(from, to) < 0) {
		snprintf(msg, msglen, "cannot rename %s to %s: %s", from, to, strerror(errno));
		return KW_ERR_IO;
	}
	if (fsync_dir_of(to) < 0) {
		snprintf(msg, msglen, "cannot sync the folder of %s", to);
		return KW_ERR_IO;
	}
	return 0;
}

void seal_fingerprint(const struct seal *k, char *out)
{
	static const unsigned char label[] = "keywarden master key id";
	unsigned char h[SEAL_FINGERPRINT_LEN / 2];

	crypto_generichash(h, sizeof(h), label, sizeof(label) - 1, k->key, KEY_LEN);
	sodium_bin2hex(out, SEAL_FINGERPRINT_LEN + 1, h, sizeof(h));
}

/* "keywarden/v1\0KEY_ID\0DEVICE_ID" binds a sealed value to its row. */
static int make_ad(const char *key_id, const char *device_id, unsigned char *ad, size_t *adlen)
{
	int n = snprintf((char *)ad, AD_MAX, "keywarden/v1%c%s%c%s", 0, key_id, 0, device_id);

	if (n < 0 || n >= AD_MAX)
		return KW_ERR_INVALID;
	*adlen = (size_t)n;
	return 0;
}

int seal_encrypt(const struct seal *k, const char *key_id, const char *device_id,
		 const char *pw, uint8_t *out, size_t *outlen)
{
	unsigned char ad[AD_MAX];
	unsigned long long clen;
	size_t adlen, n = strlen(pw);

	if (make_ad(key_id, device_id, ad, &adlen) < 0 ||
	    SEAL_NONCE_LEN + n + SEAL_TAG_LEN > SEAL_MAX)
		return KW_ERR_INVALID;
	randombytes_buf(out, SEAL_NONCE_LEN);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_NONCE_LEN, &clen,
						       (const unsigned char *)pw, n, ad,
						       adlen, NULL, out, k->key) != 0)
		return KW_ERR_CRYPTO;
	*outlen = SEAL_NONCE_LEN + (size_t)clen;
	return 0;
}

int seal_decrypt(const struct seal *k, const char *key_id, const char *device_id,
		 const uint8_t *in, size_t inlen, char *pw, size_t pwlen)
{
	unsigned char ad[AD_MAX];
	unsigned long long mlen;
	size_t adlen;

	if (make_ad(key_id, device_id, ad, &adlen) < 0 ||
	    inlen < SEAL_NONCE_LEN + SEAL_TAG_LEN ||
	    inlen - SEAL_NONCE_LEN - SEAL_TAG_LEN >= pwlen)
		return KW_ERR_CRYPTO;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)pw, &mlen, NULL,
						       in + SEAL_NONCE_LEN,
						       inlen - SEAL_NONCE_LEN, ad, adlen,
						       in, k->key) != 0) {
		sodium_memzero(pw, pwlen);
		return KW_ERR_CRYPTO;
	}
	pw[mlen] = '\0';
	return 0;
}
