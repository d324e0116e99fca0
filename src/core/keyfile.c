#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/keyfile.h"
#include "core/recpw.h"
#include "util/err.h"
#include "util/log.h"
#include "util/timeutil.h"

#define FP_NAME "master_key_id"
#define LOCK_TRIES 10

/* K.SUFFIX, or KW_ERR_INVALID when the path does not fit. */
static int sibling(char out[KEYFILE_PATH_MAX], const char *key_file, const char *suffix,
		   const char *fp)
{
	int n = snprintf(out, KEYFILE_PATH_MAX, "%s%s%s", key_file, suffix, fp ? fp : "");

	return n < 0 || n >= KEYFILE_PATH_MAX ? KW_ERR_INVALID : 0;
}

/* Opens path and locks it. rekey replaces K by a rename, and a lock on the
 * file just replaced protects nothing: when path names another file once
 * the lock is held, lock that one instead. Returns the descriptor. */
static int lock_path(const char *path, bool exclusive, char *msg, size_t msglen)
{
	struct stat held, named;
	int fd;

	for (int i = 0; i < LOCK_TRIES; i++) {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
			snprintf(msg, msglen, "cannot read the key file %s: %s (run `keywarden "
				 "init` to create it)", path, strerror(errno));
			return KW_ERR_IO;
		}
		if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
			snprintf(msg, msglen, exclusive ?
				 "the key file %s is in use by a running keywarden server or "
				 "export; stop it before rekey" :
				 "the key file %s is being replaced by keywarden rekey; try "
				 "again when it has finished", path);
			close(fd);
			return KW_ERR_UNAVAILABLE;
		}
		if (fstat(fd, &held) == 0 && stat(path, &named) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			return fd;
		close(fd);
	}
	snprintf(msg, msglen, "the key file %s keeps being replaced", path);
	return KW_ERR_UNAVAILABLE;
}

struct fp_job {
	const char *mine;
	char have[SEAL_FINGERPRINT_LEN + 8];
	bool found, recorded;
};

static int fp_read_tx(struct store_tx *tx, void *arg)
{
	struct fp_job *j = arg;
	int rc = store_meta_get(tx, FP_NAME, j->have, sizeof(j->have));

	j->found = rc == 0;
	return rc == KW_ERR_NOT_FOUND ? 0 : rc;
}

/* Records mine in a database that has no key yet; checks again inside the
 * write, where no other process can record one meanwhile. */
static int fp_record_tx(struct store_tx *tx, void *arg)
{
	struct fp_job *j = arg;
	int rc = fp_read_tx(tx, arg);

	if (rc < 0 || j->found)
		return rc;
	j->recorded = true;
	return store_meta_set(tx, FP_NAME, j->mine);
}

static int fp_of_database(struct store *s, struct fp_job *j, char *msg, size_t msglen)
{
	int rc = store_read(s, fp_read_tx, j);

	if (rc == 0 && !j->found)
		rc = store_write(s, fp_record_tx, j);
	if (rc < 0)
		snprintf(msg, msglen, "cannot read the master key id from the database: %s",
			 kw_strerror(rc));
	return rc;
}

/* Keeps k as K.old.FP: written exclusively, or already there with the same
 * key. path gets the name. */
static int retire(const struct seal *k, const char *key_file, char path[KEYFILE_PATH_MAX],
		  char *msg, size_t msglen)
{
	char fp[SEAL_FINGERPRINT_LEN + 1], have[SEAL_FINGERPRINT_LEN + 1];
	struct seal *kept = NULL;
	int rc;

	seal_fingerprint(k, fp);
	if (sibling(path, key_file, ".old.", fp) < 0) {
		snprintf(msg, msglen, "key file path too long: %s", key_file);
		return KW_ERR_INVALID;
	}
	rc = seal_save(k, path, 1, msg, msglen);
	if (rc != KW_ERR_EXISTS)
		return rc;
	if ((rc = seal_load(path, &kept, msg, msglen)) < 0)
		return rc;
	seal_fingerprint(kept, have);
	seal_free(kept);
	if (strcmp(have, fp)) {
		snprintf(msg, msglen, "%s holds key %s, not %s as its name says; move it "
			 "away", path, have, fp);
		return KW_ERR_CONFLICT;
	}
	return 0;
}

/* Makes K.new, which holds key (already synced), the key file K: locks it
 * the way kf->lock is held before the rename, so the lock never lapses,
 * then renames and syncs the folder, and lets the old lock go. */
static int promote(struct keyfile *kf, const char *key_file, const char *pending,
		   bool exclusive, char *msg, size_t msglen)
{
	int fd, rc;

	if ((fd = lock_path(pending, exclusive, msg, msglen)) < 0)
		return fd;
	if ((rc = seal_rename(pending, key_file, msg, msglen)) < 0) {
		close(fd);
		return rc;
	}
	close(kf->lock);
	kf->lock = fd;
	return 0;
}

/* Notes name up to three paths: cut long ones short. */
static void set_note(struct keyfile *kf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_note(struct keyfile *kf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kf->note, sizeof(kf->note), fmt, ap);
	va_end(ap);
}

static void mismatch(char *msg, size_t msglen, const char *key_file, const char *pending,
		     const char *have, const char *mine, const char *why_not_pending)
{
	char retired[KEYFILE_PATH_MAX];
	int n;

	n = snprintf(msg, msglen, "the key file %s does not match the database (which was "
		     "sealed with key %s, not %s); use the key file made for this database",
		     key_file, have, mine);
	if (n < 0 || (size_t)n >= msglen)
		return;
	if (sibling(retired, key_file, ".old.", have) == 0 && access(retired, F_OK) == 0)
		snprintf(msg + n, msglen - (size_t)n, ". %s holds that key: rekey retired "
			 "it, so this database is older than the key file (restored from a "
			 "backup?)", retired);
	else if (why_not_pending)
		snprintf(msg + n, msglen - (size_t)n, " (%s is not it either: %s)", pending,
			 why_not_pending);
}

int keyfile_open(struct store *s, const char *key_file, bool exclusive, struct keyfile *kf,
		 char *msg, size_t msglen)
{
	char pending[KEYFILE_PATH_MAX], retired[KEYFILE_PATH_MAX], mine[SEAL_FINGERPRINT_LEN + 1];
	char nmsg[512] = "", why[512] = "";
	struct seal *next = NULL;
	struct fp_job j;
	int rc;

	memset(kf, 0, sizeof(*kf));
	kf->lock = -1;
	memset(&j, 0, sizeof(j));
	if (sibling(pending, key_file, ".new", NULL) < 0) {
		snprintf(msg, msglen, "key file path too long: %s", key_file);
		rc = KW_ERR_INVALID;
		goto fail;
	}
	if ((rc = lock_path(key_file, exclusive, msg, msglen)) < 0)
		goto fail;
	kf->lock = rc;
	if ((rc = seal_load(key_file, &kf->seal, msg, msglen)) < 0)
		goto fail;
	seal_fingerprint(kf->seal, mine);
	j.mine = mine;
	if ((rc = fp_of_database(s, &j, msg, msglen)) < 0)
		goto fail;
	memcpy(kf->fingerprint, mine, sizeof(mine));
	if (j.recorded || !strcmp(j.have, mine)) {
		/* A K.new beside a matching K is left by a rekey that never
		 * committed: nothing uses it, and rekey takes it up. */
		kf->how = j.recorded ? KEYFILE_RECORDED : KEYFILE_MATCHED;
		return 0;
	}
	/* A rekey that committed and stopped before its rename leaves the
	 * database's key in K.new. */
	if (seal_load(pending, &next, nmsg, sizeof(nmsg)) < 0) {
		rc = KW_ERR_CRYPTO;
		mismatch(msg, msglen, key_file, pending, j.have, mine,
			 access(pending, F_OK) == 0 ? nmsg : NULL);
		goto fail;
	}
	seal_fingerprint(next, kf->fingerprint);
	if (strcmp(kf->fingerprint, j.have)) {
		rc = KW_ERR_CRYPTO;
		snprintf(why, sizeof(why), "it holds key %s", kf->fingerprint);
		mismatch(msg, msglen, key_file, pending, j.have, mine, why);
		goto fail;
	}
	/* Finishing replaces K, which needs the lock exclusively: a holder of
	 * the shared lock takes it over unless another process shares it. */
	if (!exclusive && flock(kf->lock, LOCK_EX | LOCK_NB) < 0) {
		snprintf(why, sizeof(why), "another keywarden process uses %s", key_file);
		/* A failed conversion has dropped the shared lock too (flock(2)
		 * removes the old lock first): take it again, or rekey could run
		 * while this process uses the key. */
		if (flock(kf->lock, LOCK_SH | LOCK_NB) < 0) {
			snprintf(msg, msglen, "the key file %s is being replaced by keywarden "
				 "rekey; try again when it has finished", key_file);
			rc = KW_ERR_UNAVAILABLE;
			goto fail;
		}
	} else if (retire(kf->seal, key_file, retired, nmsg, sizeof(nmsg)) < 0 ||
		   promote(kf, key_file, pending, exclusive, nmsg, sizeof(nmsg)) < 0) {
		snprintf(why, sizeof(why), "%s", nmsg);
		/* Share K again; losing the lock meanwhile means rekey has it. */
		if (!exclusive && flock(kf->lock, LOCK_SH | LOCK_NB) < 0) {
			snprintf(msg, msglen, "the key file %s is being replaced by keywarden "
				 "rekey; try again when it has finished", key_file);
			rc = KW_ERR_UNAVAILABLE;
			goto fail;
		}
	}
	seal_free(kf->seal);
	kf->seal = next;
	next = NULL;   /* owned by kf */
	if (why[0]) {
		kf->how = KEYFILE_PENDING;
		set_note(kf, "an interrupted rekey: the database uses the "
			 "key in %s (%s), not %s; using it. It becomes %s when a keywarden "
			 "command can finish the rename (%s)", pending, kf->fingerprint,
			 key_file, key_file, why);
	} else {
		kf->how = KEYFILE_FINISHED;
		set_note(kf, "finished an interrupted rekey: %s now "
			 "holds the new key %s; the previous key %s is kept in %s", key_file,
			 kf->fingerprint, mine, retired);
	}
	return 0;
fail:
	seal_free(next);
	keyfile_close(kf);
	return rc;
}

void keyfile_close(struct keyfile *kf)
{
	if (!kf)
		return;
	seal_free(kf->seal);
	kf->seal = NULL;
	if (kf->lock >= 0)
		close(kf->lock);
	kf->lock = -1;
}

/* Keys are re-sealed a page at a time: a page is read, then written (an
 * iteration's callback must not write: store.h). */
#define REKEY_PAGE 128

struct rekey_key {
	int64_t row;
	char key_id[STORE_ID_LEN + 1];
	char device_id[STORE_ID_LEN + 1];
	uint8_t sealed[SEAL_MAX];
	size_t len;
};

struct rekey_job {
	const struct seal *old, *new;
	const char *old_fp, *new_fp;
	const struct audit_rec *who;
	size_t n;
	char bad[160];           /* the key that did not decrypt */
	struct rekey_key page[REKEY_PAGE];
	size_t npage;
};

static int rekey_collect(const struct key_rec *k, void *arg)
{
	struct rekey_job *j = arg;
	struct rekey_key *p;

	if (j->npage == REKEY_PAGE)
		return KW_ERR_INTERNAL;   /* more than the page asked for */
	p = &j->page[j->npage++];
	p->row = k->row;
	snprintf(p->key_id, sizeof(p->key_id), "%s", k->key_id);
	snprintf(p->device_id, sizeof(p->device_id), "%s", k->device_id);
	p->len = k->sealed_len <= SEAL_MAX ? k->sealed_len : 0;
	memcpy(p->sealed, k->sealed, p->len);
	return 0;
}

static int rekey_key(struct store_tx *tx, struct rekey_job *j, const struct rekey_key *p)
{
	char pw[RECPW_CANON_LEN + 16];
	uint8_t sealed[SEAL_MAX];
	size_t len;
	int rc;

	if ((rc = seal_decrypt(j->old, p->key_id, p->device_id, p->sealed, p->len, pw,
			       sizeof(pw))) < 0) {
		snprintf(j->bad, sizeof(j->bad), "key %s of device %s", p->key_id,
			 p->device_id);
		return rc;
	}
	rc = seal_encrypt(j->new, p->key_id, p->device_id, pw, sealed, &len);
	sodium_memzero(pw, sizeof(pw));
	if (rc < 0)
		return rc;
	if ((rc = store_key_set_sealed(tx, p->row, sealed, len)) < 0)
		return rc;
	j->n++;
	return 0;
}

/* Every key, re-sealed with the new key. */
static int rekey_keys(struct store_tx *tx, struct rekey_job *j)
{
	int64_t after = 0;
	int rc;

	do {
		j->npage = 0;
		if ((rc = store_key_each_page(tx, after, REKEY_PAGE, rekey_collect, j)) < 0)
			return rc;
		for (size_t i = 0; i < j->npage; i++)
			if ((rc = rekey_key(tx, j, &j->page[i])) < 0)
				return rc;
		if (j->npage)
			after = j->page[j->npage - 1].row;
	} while (j->npage == REKEY_PAGE);
	return 0;
}

/* This process's key, and whether the database has moved on from it. */
static char expected[SEAL_FINGERPRINT_LEN + 1];
static pthread_mutex_t expected_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stale;

static void note_stale(const char *mine, const char *have)
{
	if (atomic_exchange(&stale, true))
		return;
	log_error("the database's master key is now %s, not this process's %s: keywarden "
		  "rekey ran elsewhere. Nothing is sealed or opened with the old key any "
		  "more: restart keywarden with the new key file", have, mine);
}

void keyfile_expect(const char *fingerprint)
{
	pthread_mutex_lock(&expected_lock);
	snprintf(expected, sizeof(expected), "%s", fingerprint ? fingerprint : "");
	pthread_mutex_unlock(&expected_lock);
	atomic_store(&stale, false);
}

void keyfile_seen(const char *master_key_id)
{
	char mine[SEAL_FINGERPRINT_LEN + 1];

	pthread_mutex_lock(&expected_lock);
	memcpy(mine, expected, sizeof(mine));
	pthread_mutex_unlock(&expected_lock);
	if (mine[0] && master_key_id && master_key_id[0] && strcmp(mine, master_key_id))
		note_stale(mine, master_key_id);
}

bool keyfile_stale(void)
{
	return atomic_load(&stale);
}

int keyfile_check_tx(struct store_tx *tx, const struct seal *k)
{
	char mine[SEAL_FINGERPRINT_LEN + 1], have[SEAL_FINGERPRINT_LEN + 8];
	int rc;

	seal_fingerprint(k, mine);
	if ((rc = store_meta_get(tx, FP_NAME, have, sizeof(have))) < 0)
		return rc == KW_ERR_NOT_FOUND ? KW_ERR_UNAVAILABLE : rc;
	if (!strcmp(have, mine))
		return 0;
	note_stale(mine, have);
	return KW_ERR_UNAVAILABLE;
}

static int rekey_tx(struct store_tx *tx, void *arg)
{
	struct rekey_job *j = arg;
	char have[SEAL_FINGERPRINT_LEN + 8], comment[160];
	struct audit_rec a;
	int rc;

	j->n = 0;
	j->bad[0] = '\0';
	/* The lock keeps other rekeys out; the database is the judge. */
	if ((rc = store_meta_get(tx, FP_NAME, have, sizeof(have))) < 0 &&
	    rc != KW_ERR_NOT_FOUND)
		return rc;
	if (rc == 0 && strcmp(have, j->old_fp))
		return KW_ERR_CONFLICT;
	/* The new key's ID first: on a shared database a write that seals
	 * with the old key (keyfile_check_tx) holds the row until it commits,
	 * so this waits for it and the pages below see its keys; the writes
	 * after it find the new ID and refuse. */
	if ((rc = store_meta_set(tx, FP_NAME, j->new_fp)) < 0)
		return rc;
	if ((rc = rekey_keys(tx, j)) < 0)
		return rc;
	snprintf(comment, sizeof(comment), "%zu keys re-encrypted; master key %s replaced "
		 "by %s", j->n, j->old_fp, j->new_fp);
	a = *j->who;
	a.at = time_now();
	a.result = AUDIT_REKEYED;
	a.comment = comment;
	return audit_append(tx, &a);
}

/* The new key for rekey: a K.new left by a rekey that never committed
 * (the database is sealed with K's key, checked by keyfile_open), or a new
 * one written to K.new. */
static int new_key(const struct keyfile *kf, const char *pending, struct seal **out,
		   bool *reused, char *msg, size_t msglen)
{
	char fp[SEAL_FINGERPRINT_LEN + 1], lmsg[512];
	struct stat st;
	int rc;

	*reused = false;
	if (lstat(pending, &st) < 0 && errno == ENOENT) {
		if ((rc = seal_generate(out)) < 0) {
			snprintf(msg, msglen, "cannot make a key: %s", kw_strerror(rc));
			return rc;
		}
		if ((rc = seal_save(*out, pending, 1, msg, msglen)) < 0) {
			seal_free(*out);
			*out = NULL;
		}
		return rc;
	}
	if ((rc = seal_load(pending, out, lmsg, sizeof(lmsg))) < 0) {
		snprintf(msg, msglen, "%s is left from a rekey that did not commit, and it "
			 "cannot be used (%s); the database does not use it: move it away and "
			 "run rekey again", pending, lmsg);
		return rc;
	}
	seal_fingerprint(*out, fp);
	if (!strcmp(fp, kf->fingerprint)) {
		snprintf(msg, msglen, "%s holds the current key %s, a copy of the key file: "
			 "move it away and run rekey again", pending, fp);
		seal_free(*out);
		*out = NULL;
		return KW_ERR_CONFLICT;
	}
	*reused = true;
	return 0;
}

/* The fingerprint the database records now ("" for none). */
static int fp_now(struct store *s, char have[SEAL_FINGERPRINT_LEN + 8])
{
	struct fp_job j;
	int rc;

	memset(&j, 0, sizeof(j));
	rc = store_read(s, fp_read_tx, &j);
	memcpy(have, j.have, sizeof(j.have));
	return rc;
}

int keyfile_rekey(struct store *s, const char *key_file, struct keyfile *kf,
		  const struct audit_rec *who, struct keyfile_rekey_result *res,
		  char *msg, size_t msglen)
{
	char pending[KEYFILE_PATH_MAX], emsg[512], have[SEAL_FINGERPRINT_LEN + 8];
	struct seal *new = NULL;
	struct rekey_job j;
	int rc, frc = 0;

	memset(res, 0, sizeof(*res));
	if (!kf->seal || (kf->how != KEYFILE_MATCHED && kf->how != KEYFILE_RECORDED)) {
		snprintf(msg, msglen, "rekey needs the key file the database is sealed with");
		return KW_ERR_INVALID;
	}
	if (sibling(pending, key_file, ".new", NULL) < 0) {
		snprintf(msg, msglen, "key file path too long: %s", key_file);
		return KW_ERR_INVALID;
	}
	memcpy(res->old_fp, kf->fingerprint, sizeof(res->old_fp));
	if ((rc = retire(kf->seal, key_file, res->retired, msg, msglen)) < 0 ||
	    (rc = new_key(kf, pending, &new, &res->reused, msg, msglen)) < 0)
		goto out;
	seal_fingerprint(new, res->new_fp);
	memset(&j, 0, sizeof(j));
	j.old = kf->seal;
	j.new = new;
	j.old_fp = res->old_fp;
	j.new_fp = res->new_fp;
	j.who = who;
	rc = store_write(s, rekey_tx, &j);
	/* A commit whose outcome was not reported may still have happened:
	 * the database says which key it has. */
	if (rc < 0 && (frc = fp_now(s, have)) == 0 && !strcmp(have, res->new_fp)) {
		/* Committed, but not known to be durable (its sync failed): the
		 * database may come back with either key, so both files stay as
		 * they are and the next command uses the one it names. */
		snprintf(msg, msglen, "rekey's transaction was written but not confirmed on "
			 "disk (%s); %s and %s are both kept, and after a restart every "
			 "keywarden command uses the one the database names", kw_strerror(rc),
			 key_file, pending);
		goto out;
	}
	if (rc < 0 && frc < 0) {
		snprintf(msg, msglen, "rekey failed: %s, and the database cannot tell which key "
			 "it has now (%s); %s and %s are both kept, and every keywarden "
			 "command uses the one it has", kw_strerror(rc), kw_strerror(frc),
			 key_file, pending);
		goto out;
	}
	if (rc < 0) {
		if (j.bad[0])
			snprintf(msg, msglen, "rekey failed, nothing changed: %s does not decrypt "
				 "with %s", j.bad, key_file);
		else
			snprintf(msg, msglen, "rekey failed, nothing changed: %s; %s is kept, "
				 "and the next rekey uses it", kw_strerror(rc), pending);
		goto out;
	}
	res->keys = j.n;
	seal_free(kf->seal);
	kf->seal = new;
	new = NULL;   /* owned by kf */
	memcpy(kf->fingerprint, res->new_fp, sizeof(kf->fingerprint));
	if ((rc = promote(kf, key_file, pending, true, emsg, sizeof(emsg))) < 0) {
		kf->how = KEYFILE_PENDING;
		snprintf(msg, msglen, "the database now uses the key in %s, but it could not "
			 "become %s (%s); every keywarden command uses %s until one can finish "
			 "the rename", pending, key_file, emsg, pending);
		rc = KW_ERR_IO;
		goto out;
	}
	kf->how = KEYFILE_MATCHED;
	rc = 0;
out:
	seal_free(new);
	return rc;
}
