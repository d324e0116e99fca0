/* The master key of a database (SPEC §6): which key file holds it, the
 * advisory lock that keeps servers, exports and rekey apart, and rekey.
 * Every command that reads or writes sealed values gets its key from
 * keyfile_open, so an interrupted rekey is found and finished the same way
 * by all of them.
 *
 * The files, for key_file = K:
 *   K           the key the database is sealed with
 *   K.new       the key rekey moves the database to: written and synced
 *               before rekey's transaction, renamed to K after it
 *   K.old.FP    a key rekey retired (FP: its fingerprint), kept so that
 *               database backups taken before that rekey stay readable
 * The database records the fingerprint of its key (meta master_key_id) in
 * the transaction that re-encrypts, so after any interruption it says
 * whether K or K.new holds its key. */
#ifndef KW_CORE_KEYFILE_H
#define KW_CORE_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/seal.h"
#include "store/store.h"

#define KEYFILE_PATH_MAX 4096

enum keyfile_how {
	KEYFILE_MATCHED,     /* K is the database's key */
	KEYFILE_RECORDED,    /* the database had no key yet: K's is now recorded */
	KEYFILE_FINISHED,    /* an interrupted rekey: K.new was renamed to K now */
	KEYFILE_PENDING,     /* an interrupted rekey that could not be finished
			      * (another process uses K, or the rename failed):
			      * the key is K.new's, K is unchanged */
};

struct keyfile {
	struct seal *seal;       /* the database's key; owned */
	int lock;                /* descriptor holding the lock on K; -1 = none */
	enum keyfile_how how;
	char fingerprint[SEAL_FINGERPRINT_LEN + 1];   /* of seal */
	char note[1024];         /* FINISHED or PENDING: what was found and done */
};

/* Locks key_file (shared for a server or an export, exclusive for rekey;
 * KW_ERR_UNAVAILABLE when the other kind is held) and loads the key the
 * database s is sealed with into kf:
 *  - K's key when its fingerprint is the database's, or when the database
 *    records none yet (then it is recorded);
 *  - otherwise K.new's when that is the database's key: a rekey that stopped
 *    after its commit. The rename is finished here when the lock can be held
 *    exclusively (K's current key is first kept as K.old.FP); if not, K.new's
 *    key is used as it is (KEYFILE_PENDING) and the next command finishes it;
 *  - otherwise KW_ERR_CRYPTO, and msg names the files and fingerprints.
 * Errors reading K are seal_load's. On failure kf holds nothing. Release
 * with keyfile_close. */
int keyfile_open(struct store *s, const char *key_file, bool exclusive, struct keyfile *kf,
		 char *msg, size_t msglen);

/* Frees the key and releases the lock. kf may come from a failed
 * keyfile_open, or be zeroed with lock -1. */
void keyfile_close(struct keyfile *kf);

/* For a database several instances share (store_shared), where the key
 * file's lock does not reach the other machines:
 *
 * In a write that stores values sealed with k: 0 when the database's
 * master key (meta master_key_id) is still k's; KW_ERR_UNAVAILABLE when a
 * `keywarden rekey` elsewhere has replaced it, so that what this process
 * seals now could not be opened (logged once; keyfile_stale() turns true).
 * The value is read in the write, so a rekey's change of it waits for this
 * transaction, and rekey changes it before it re-seals the keys: a value
 * this write stores is either re-sealed by that rekey or refused here. */
int keyfile_check_tx(struct store_tx *tx, const struct seal *k);

/* Records the fingerprint of the key this process serves with (NULL: none),
 * for keyfile_seen; and whether a check has found the database re-keyed. */
void keyfile_expect(const char *fingerprint);
/* Compares a master_key_id read from the database with keyfile_expect's: a
 * difference makes keyfile_stale() true (logged once). */
void keyfile_seen(const char *master_key_id);
bool keyfile_stale(void);

struct keyfile_rekey_result {
	size_t keys;                                  /* keys re-encrypted */
	char old_fp[SEAL_FINGERPRINT_LEN + 1];
	char new_fp[SEAL_FINGERPRINT_LEN + 1];
	char retired[KEYFILE_PATH_MAX];               /* K.old.FP of the old key */
	bool reused;           /* the new key is a K.new left by a rekey that had
				* not committed, rather than a fresh one */
};

/* Moves the database to a new master key. kf: from keyfile_open with
 * exclusive, how MATCHED or RECORDED (KW_ERR_INVALID otherwise). In order,
 * each step durable before the next:
 *  1. K's key is kept as K.old.FP (an existing K.old.FP must hold that key);
 *  2. the new key: K.new when it holds a key (left by a rekey that never
 *     committed, since the database is sealed with K's), else a new key
 *     written to K.new exclusively;
 *  3. one transaction re-encrypts every key, records the new fingerprint and
 *     appends an audit record: who's source, actor and client, result
 *     AUDIT_REKEYED, the count in the comment. On failure the database
 *     and K are unchanged and K.new stays for the next rekey;
 *  4. K.new is renamed to K. If that fails the database is already on the
 *     new key: KW_ERR_IO, and msg says the next command finishes it.
 * No step removes or overwrites a key file the database is or was sealed
 * with. On success kf holds the new key and res what was done; msg says
 * why on failure. */
int keyfile_rekey(struct store *s, const char *key_file, struct keyfile *kf,
		  const struct audit_rec *who, struct keyfile_rekey_result *res,
		  char *msg, size_t msglen);

#endif
