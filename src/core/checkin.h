/* The check-in wire format (SPEC §5): the JSON body a device sends, parsed
 * and validated in full into plain structs, every fault reported with the
 * field it is in. No store and no server: the agent and the fuzzers link
 * this with the formats alone (libkw_format). Applying a check-in is
 * core/escrow.h. */
#ifndef KW_CORE_CHECKIN_H
#define KW_CORE_CHECKIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/keyid.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"       /* enum logon_type: no store functions */

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

#endif
