/* The inventory (SPEC §4, §9 `device`, `assoc`): registered devices, what
 * is known of each (volumes, recovery-key history, logons, associations),
 * revoking a device and associating a user with one. The CLI and the help
 * desk call these; records reach the caller through callbacks that get the
 * store's plain records (store/store.h), which live until the callback
 * returns. Callbacks must not call the store. Never a recovery password:
 * key records come without their sealed value. */
#ifndef KW_CORE_INVENTORY_H
#define KW_CORE_INVENTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define INVENTORY_USER_MAX 255      /* a user name as devices report it */

/* Devices whose name starts with prefix (case-insensitive; "" or NULL =
 * all), by name, at most limit (0 = all), in one read snapshot. A non-zero
 * return of fn stops the walk and is returned. */
int inventory_devices(struct store *s, const char *prefix, int64_t limit,
		      store_each_device fn, void *arg);

/* What inventory_device_show reports, in this order; NULL = not wanted. */
struct inventory_device_fns {
	store_each_device device;    /* once */
	store_each_volume volume;    /* each volume */
	store_each_key key;          /* each key in any state, oldest first */
	store_each_logon logon;      /* each recorded logon */
	store_each_assoc assoc;      /* each association */
};

/* Device id and everything recorded about it, in one read snapshot, to the
 * callbacks of fns with arg. KW_ERR_NOT_FOUND when there is no such
 * device; a non-zero return of a callback stops and is returned. */
int inventory_device_show(struct store *s, const char *id,
			  const struct inventory_device_fns *fns, void *arg);

/* Revokes device id: its secret is no longer accepted (check-ins are
 * refused). KW_ERR_NOT_FOUND when there is no such device; revoking a
 * revoked device is no error. */
int inventory_device_revoke(struct store *s, const char *id);

/* True when user may be recorded in an association: 1-255 bytes of text
 * without control characters. */
bool inventory_user_valid(const char *user);

/* An association to add (inventory_assoc_add) and who adds it, for its
 * audit record. */
struct inventory_assoc {
	const char *user;        /* the end user (inventory_user_valid) */
	const char *device_id;
	const char *source;      /* AUDIT_HELPDESK, AUDIT_CLI */
	const char *actor;       /* who adds it: the help-desk user, the system
				  * account running the CLI (cli_actor) */
	const char *client;      /* the client's address; NULL for the CLI */
	int64_t now;
};

/* Lets a->user recover the keys of a->device_id through self-service
 * without a recorded local logon (SPEC §3.2), added by a->actor at a->now,
 * and appends its audit record (source, result AUDIT_ASSOCIATED, actor,
 * end_user = user, the device's name and ID, client) in the same
 * transaction: without the record nothing is added (fail closed).
 * *audit_seq (may be NULL) gets the record's seq. Checked before anything
 * is written: KW_ERR_INVALID when user is not valid (inventory_user_valid)
 * or source or actor is missing, KW_ERR_NOT_FOUND when there is no such
 * device, KW_ERR_EXISTS when user (compared case-insensitively) is
 * associated already (nothing written, no record). */
int inventory_assoc_add(struct store *s, const struct inventory_assoc *a, int64_t *audit_seq);

/* What a volume's last report says of its data (the lost-device view). */
enum inventory_protection {
	INVENTORY_PROTECTED,     /* protection on, fully encrypted */
	INVENTORY_ENCRYPTING,    /* protection on, not yet fully encrypted */
	INVENTORY_SUSPENDED,     /* protection suspended: the key is on the disk
				  * in the clear, the data readable */
	INVENTORY_UNPROTECTED,   /* protection off */
	INVENTORY_UNREPORTED,    /* nothing reported: a volume imported
				  * (core/import.h) whose computer has not
				  * checked in; its protection is unknown */
};
enum inventory_protection inventory_volume_protection(const struct volume_rec *v);

#endif
