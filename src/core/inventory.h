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

/* Lets user recover the keys of device_id through self-service without a
 * recorded local logon (SPEC §3.2). added_by names who did it. Checked
 * before anything is written: KW_ERR_INVALID when user is not valid
 * (inventory_user_valid), KW_ERR_NOT_FOUND when there is no such device,
 * KW_ERR_EXISTS when user (compared case-insensitively) is associated
 * already. */
int inventory_assoc_add(struct store *s, const char *user, const char *device_id,
			const char *added_by, int64_t now);

#endif
