/* Check-ins: a device's report of its volumes, recovery keys and logons
 * (SPEC §5), validated in full before anything is stored (core/checkin.h,
 * the wire format), then applied in one store transaction. */
#ifndef KW_CORE_ESCROW_H
#define KW_CORE_ESCROW_H

#include <stddef.h>
#include <stdint.h>

#include "core/checkin.h"
#include "core/keyid.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"

struct seal;

/* What applying a check-in did. */
struct checkin_result {
	size_t keys_added;
	/* Keys disclosed and still on the device: it must rotate them. */
	char (*rotate)[KEYID_CANON_LEN + 1];
	size_t nrotate;
	/* On KW_ERR_CONFLICT: the key and why. */
	char conflict_key[KEYID_CANON_LEN + 1];
	const char *conflict_why;
};

/* Applies ci for device_id at time now, atomically and durably:
 * new keys sealed and stored; reported keys compared (a known key ID with a
 * different password, or escrowed by another device: KW_ERR_CONFLICT, and
 * nothing of the check-in is kept); active keys absent from a reported
 * volume become removed, disclosed ones superseded; logons recorded.
 * res->rotate is allocated; free with checkin_result_free. */
int checkin_apply(struct store *s, const struct seal *k, const char *device_id,
		  struct checkin *ci, int64_t now, struct checkin_result *res);

/* The work of one check-in in flight; the caller keeps it (and ci, res)
 * until done is called. */
struct checkin_job {
	const struct seal *seal;
	const char *device_id;
	const uint8_t *secret_hash;   /* checked in the write unless NULL */
	const struct checkin *ci;
	int64_t now;
	struct checkin_result *res;
	bool check_key;               /* a shared store: keyfile_check_tx */
};

/* checkin_apply without waiting: done(rc, done_arg) reports the outcome
 * (see store_write_async); on rc < 0 free res with checkin_result_free.
 * Unless secret_hash is NULL the write first checks that device_id has
 * that secret and is not revoked (KW_ERR_AUTH otherwise, nothing stored):
 * the caller may then have named the device from a cache. */
int checkin_apply_async(struct store *s, const struct seal *k, const char *device_id,
			const uint8_t *secret_hash, struct checkin *ci, int64_t now,
			struct checkin_result *res, struct checkin_job *job,
			store_done_fn done, void *done_arg);

void checkin_result_free(struct checkin_result *res);

#endif
