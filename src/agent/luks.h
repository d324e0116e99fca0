/* The agent's recovery keyslots on LUKS2 volumes (libcryptsetup). Each
 * slot the agent makes holds a BitLocker-format recovery password and is
 * named by a LUKS2 token of type "keywarden-recovery":
 *   {"type": "keywarden-recovery", "keyslots": ["3"],
 *    "key_id": "<GUID>", "escrowed": false}
 * The agent touches no slot that none of its tokens names. The password of
 * each such slot is kept in the state directory (state.h) from before the
 * slot exists until after it is gone, with the slot number it is meant for,
 * so a run interrupted anywhere can be finished by luks_repair. */
#ifndef KW_AGENT_LUKS_H
#define KW_AGENT_LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/keyid.h"
#include "core/recpw.h"

#define LUKS_TOKEN_TYPE "keywarden-recovery"
#define LUKS_MAX_KEYS 32
#define LUKS_PATH_MAX 512

/* How new keyslots derive their key ("default": libcryptsetup's LUKS2
 * default, argon2id with a benchmark). A recovery password holds 128
 * random bits, so a fast PBKDF does not weaken it much; tests use pbkdf2
 * with few iterations. */
struct luks_pbkdf {
	const char *type;          /* "default", "argon2id", "argon2i", "pbkdf2" */
	uint32_t iterations;       /* pbkdf2: 0 = benchmark time_ms */
	uint32_t time_ms;
};

struct luks_key {
	int token;
	int slot;                  /* -1: the token names no slot */
	char key_id[KEYID_CANON_LEN + 1];
	bool escrowed;             /* the server acknowledged a check-in with it */
	bool active;               /* its slot is active */
	bool known;                /* its password is in the state directory */
	bool opens;                /* the password opens the slot: proven now
				    * (verify) or before it was escrowed */
	int check;                 /* verify's PBKDF run: 0 not run, 1 opens,
				    * -EPERM the password does not open the
				    * slot, another -errno: could not tell */
	char password[RECPW_CANON_LEN + 1];
};

struct luks_volume {
	char path[LUKS_PATH_MAX];
	char type[16];             /* "LUKS2", "LUKS1", "" (not LUKS) */
	char uuid[KEYID_CANON_LEN + 1];   /* canonical, upper case */
	char encryption[33];       /* "aes_xts_plain64" */
	struct luks_key keys[LUKS_MAX_KEYS];
	size_t nkeys;
	int active_slots;
	int free_slots;
};

/* Silences libcryptsetup's own messages (the agent says what failed) and
 * disables external token plugins. Call once. */
void luks_global_init(void);

/* Reads the header of path: type, UUID, cipher, the agent's tokens and,
 * from state_dir, their passwords. verify: also test the known password of
 * every key not yet escrowed against its slot (one PBKDF run each); an
 * escrowed key with its password and its slot counts as opening. Changes
 * nothing. KW_ERR_IO with
 * the reason in msg when path cannot be read; a device that is not LUKS2 is
 * returned with v->type telling what it is. */
int luks_inspect(const char *path, const char *state_dir, bool verify,
		 struct luks_volume *v, char *msg, size_t msglen);

/* Wipes the passwords in v. */
void luks_volume_wipe(struct luks_volume *v);

/* Finishes what an interrupted run left: a token whose slot is gone is
 * removed; a password file whose slot opens with it but has no token gets
 * its token (not escrowed); a password file for no slot, or whose password
 * does not open its slot (-EPERM), is removed. A token not yet escrowed
 * whose password is lost or does not open its slot (-EPERM) loses the
 * token and the file only: the slot is not proven to be the agent's and
 * stays. No keyslot is ever destroyed here. When a password cannot be
 * tested (ENOMEM, EIO) nothing about that key changes and an error is
 * returned with msg. Escrowed keys are left alone. *changed tells whether
 * anything was done. 0 or an error with msg. */
int luks_repair(const char *path, const char *state_dir, bool *changed, char *msg,
		size_t msglen);

/* Adds a recovery slot: a new random password (CSPRNG) and key ID, its
 * file in state_dir, the slot (unlocked with existing, a passphrase that
 * opens some slot), its token (not escrowed), and proves the new slot
 * opens the volume. Returns 0 with the key ID in key_id; on any failure
 * nothing is left behind: KW_ERR_LIMIT when no keyslot is free (the table
 * is full), KW_ERR_AUTH when existing opens no slot, KW_ERR_IO or
 * KW_ERR_CRYPTO otherwise, with msg. */
int luks_add_key(const char *path, const char *state_dir, const struct luks_pbkdf *pbkdf,
		 const char *existing, size_t existing_len, char key_id[KEYID_CANON_LEN + 1],
		 char *msg, size_t msglen);

/* Records in key_id's token that the server acknowledged it. */
int luks_mark_escrowed(const char *path, const char *key_id, char *msg, size_t msglen);

/* Removes the slot named by key_id's token, the token, and the password
 * file, in that order, after proving in this call (one PBKDF run each)
 * that keep_key_id's slot opens the volume with its password and that
 * key_id's slot is the one its password file names and opens with that
 * password. When that last proof fails (-EPERM, or the file names another
 * slot) the slot is not proven the agent's: it stays, the token and file
 * go, and 0 is returned with *slot_kept and the reason in msg. Refused
 * with nothing changed (KW_ERR_PERM) when the replacement is not proven,
 * the token does not name exactly one slot or the volume would be left
 * without another active slot; KW_ERR_IO when a password cannot be tested.
 * A token whose slot is already gone loses the token and the file. */
int luks_kill_key(const char *path, const char *state_dir, const char *key_id,
		  const char *keep_key_id, bool *slot_kept, char *msg, size_t msglen);

/* Device paths of the LUKS volumes on this machine (/proc/partitions and
 * device-mapper devices are not included): up to max, written to out.
 * Returns how many. */
int luks_find(char out[][LUKS_PATH_MAX], size_t max);

/* Where the volume with this UUID is mounted, through its active
 * device-mapper mapping ("" when it is not open or not mounted), and
 * whether it is the root file system's. */
void luks_mount_of(const char *uuid, char *mount, size_t mountlen);

/* "removable" when the device's disk says so, else "fixed"; "os" is the
 * caller's decision (mounted at /). */
const char *luks_media_type(const char *path);

/* A random recovery password (CSPRNG: randombytes_uniform, each group 11 x
 * a 16-bit value) and a random version-4 GUID in canonical form. */
void luks_new_password(char out[RECPW_CANON_LEN + 1]);
void luks_new_key_id(char out[KEYID_CANON_LEN + 1]);

#endif
