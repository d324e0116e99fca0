/* The agent's state directory (0700, files 0600): the registration, one
 * file per recovery password it made (keys/KEY-ID), the last check-in.
 * Every write is a whole file made durable (fsync, rename, fsync of the
 * directory) before the function returns. */
#ifndef KW_AGENT_STATE_H
#define KW_AGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/keyid.h"
#include "core/recpw.h"

#define STATE_SECRET_MAX 256
#define STATE_ID_MAX 128

struct agent_registration {
	char device_id[STATE_ID_MAX];
	char secret[STATE_SECRET_MAX];   /* wipe with state_registration_wipe */
	char server[1024];
};

/* Creates dir (0700) and dir/keys if missing. A directory group or other
 * may read or write: KW_ERR_PERM with the reason in msg. */
int state_prepare(const char *dir, char *msg, size_t msglen);

/* Reads dir/registration. KW_ERR_NOT_FOUND when the agent is not
 * registered; KW_ERR_INVALID when the file is damaged; KW_ERR_PERM when
 * its mode lets group or other read it. */
int state_registration_read(const char *dir, struct agent_registration *reg);

/* Writes dir/registration. KW_ERR_EXISTS when one is there and not
 * replace; nothing is changed then. */
int state_registration_write(const char *dir, const struct agent_registration *reg,
			     bool replace);

void state_registration_wipe(struct agent_registration *reg);

/* dir/keys/KEY-ID holds the recovery password of a slot the agent made,
 * the slot's number and the volume's UUID (volume may be NULL on read).
 * read: 0, KW_ERR_NOT_FOUND, or KW_ERR_INVALID (not a valid password). */
int state_key_write(const char *dir, const char *key_id, const char *password, int slot,
		    const char *volume);
int state_key_read(const char *dir, const char *key_id, char password[RECPW_CANON_LEN + 1],
		   int *slot, char volume[KEYID_CANON_LEN + 1]);
int state_key_remove(const char *dir, const char *key_id);

/* Calls fn for every key file's ID (valid canonical ones only). */
int state_key_each(const char *dir, int (*fn)(const char *key_id, void *arg), void *arg);

/* Takes dir/lock (flock, exclusive) so that two runs (the timer and a
 * person) never change the same headers at once. Returns the descriptor to
 * close when done, or KW_ERR_EXISTS when another run holds it, KW_ERR_IO. */
int state_lock(const char *dir);

/* Removes the ".tmp" files a run killed while writing left in dir and
 * dir/keys: a file becomes valid only by its rename, and a key's slot is
 * added only after that, so none holds anything needed. Call under the
 * lock. */
void state_clean(const char *dir);

/* The last check-in: when, and its outcome in one line. */
int state_last_write(const char *dir, int64_t at, const char *outcome, int64_t interval);
int state_last_read(const char *dir, int64_t *at, char *outcome, size_t outlen,
		    int64_t *interval);

#endif
