#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "util/err.h"

#define OPSLIMIT 2ULL
#define MEMLIMIT (19ULL * 1024 * 1024)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed = PTHREAD_COND_INITIALIZER;
static unsigned running, limit = 2;
static char dummy_hash[PASSWORD_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

void password_set_concurrency(unsigned n)
{
	pthread_mutex_lock(&lock);
	limit = n ? n : 1;
	pthread_mutex_unlock(&lock);
}

static void slot_take(void)
{
	pthread_mutex_lock(&lock);
	while (running >= limit)
		pthread_cond_wait(&freed, &lock);
	running++;
	pthread_mutex_unlock(&lock);
}

static void slot_give(void)
{
	pthread_mutex_lock(&lock);
	running--;
	pthread_cond_signal(&freed);
	pthread_mutex_unlock(&lock);
}

int password_check_policy(const char *pw, char *msg, size_t msglen)
{
	size_t n = strlen(pw);

	if (n < PASSWORD_MIN) {
		snprintf(msg, msglen, "the password must have at least %d characters",
			 PASSWORD_MIN);
		return KW_ERR_INVALID;
	}
	if (n > PASSWORD_MAX) {
		snprintf(msg, msglen, "the password must have at most %d characters",
			 PASSWORD_MAX);
		return KW_ERR_INVALID;
	}
	return 0;
}

int password_hash(const char *pw, char out[PASSWORD_HASH_MAX])
{
	int r;

	if (strlen(pw) > PASSWORD_MAX)
		return KW_ERR_TOO_LARGE;
	slot_take();
	r = crypto_pwhash_str_alg(out, pw, strlen(pw), OPSLIMIT, MEMLIMIT,
				  crypto_pwhash_ALG_ARGON2ID13);
	slot_give();
	return r == 0 ? 0 : KW_ERR_NOMEM;
}

static void make_dummy(void)
{
	if (password_hash("keywarden-no-such-user", dummy_hash) < 0)
		dummy_hash[0] = '\0';
}

int password_verify(const char *hash, const char *pw)
{
	int r;

	if (!hash || !*hash) {
		pthread_once(&dummy_once, make_dummy);
		hash = dummy_hash;
		pw = "\x01";  /* never matches the dummy */
	}
	if (strlen(pw) > PASSWORD_MAX)
		return KW_ERR_AUTH;
	slot_take();
	r = crypto_pwhash_str_verify(hash, pw, strlen(pw));
	slot_give();
	return (r == 0 && hash != dummy_hash) ? 0 : KW_ERR_AUTH;
}
