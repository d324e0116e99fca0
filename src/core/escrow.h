/* Check-ins: a device's report of its volumes, recovery keys and logons
 * (SPEC §5), validated in full before anything is stored, then applied in
 * one store transaction. */
#ifndef KW_CORE_ESCROW_H
#define KW_CORE_ESCROW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/keyid.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"

#define CHECKIN_MAX_VOLUMES 64
#define CHECKIN_MAX_KEYS 16          /* per volume */
#define CHECKIN_MAX_LOGONS 256
#define CHECKIN_MAX_ERRORS 32        /* field errors reported at most */
#define CHECKIN_TEXT_MAX 255         /* os, user names */
#define CHECKIN_MOUNT_MAX 64

struct checkin_key {
	char key_id[KEYID_CANON_LEN + 1];
	char password[RECPW_CANON_LEN + 1];
	/* Sealed by checkin_apply on the caller's thread, before the store's
	 * single writer gets the job; stored if the key is new. */
	uint8_t sealed[SEAL_MAX];
	size_t sealed_len;
};

struct checkin_volume {
	char guid[KEYID_CANON_LEN + 1];
	char mount[CHECKIN_MOUNT_MAX + 1];
	char type[16];
	char protection[16];
	char encryption[33];
	int percent;
	struct checkin_key keys[CHECKIN_MAX_KEYS];
	size_t nkeys;
};

struct checkin_logon {
	char user[CHECKIN_TEXT_MAX + 1];
	enum logon_type type;
	int64_t at;
};

struct checkin {
	char os[CHECKIN_TEXT_MAX + 1];
	struct checkin_volume *volumes;
	size_t nvolumes;
	size_t volumes_alloc;        /* entries allocated (rejected ones too) */
	struct checkin_logon *logons;
	size_t nlogons;
};

/* A field that failed validation: "volumes[0].recovery_keys[1].key_id". */
struct field_error {
	char field[96];
	char message[192];
};

struct field_errors {
	struct field_error e[CHECKIN_MAX_ERRORS];
	size_t n;
	size_t total;                /* may exceed n */
};

/* A string member of obj for a JSON request: required (then not empty) or
 * optional, at most max bytes of text without control characters. Returns
 * it ("" when absent and optional), or NULL after adding an error for
 * path + name to errs. */
const char *field_text(const json_t *obj, const char *name, bool required, size_t max,
		       struct field_errors *errs, const char *path);

/* Validates and copies a check-in body. On KW_ERR_INVALID errs lists the
 * faults (every one, up to CHECKIN_MAX_ERRORS). now is used for logons
 * without a time and to clamp times in the future. ci is freed with
 * checkin_free (wipes the passwords) in every case. */
int checkin_parse(const json_t *body, int64_t now, struct checkin *ci,
		  struct field_errors *errs);
void checkin_free(struct checkin *ci);

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
