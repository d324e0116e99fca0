/* BitLocker keys that Windows escrowed to Active Directory (SPEC §8,
 * `import ldap`): the msFVE-RecoveryInformation objects under computer
 * objects, read with [ldap]'s service account (auth/ldap.h ldap_dir_*)
 * and turned into text that core/import.h import_items checks and stores.
 * What this file checks itself is what only the directory can get wrong:
 * a missing attribute, a GUID that is not 16 bytes, an object whose name
 * ({KEY-ID}) disagrees with its msFVE-RecoveryGuid, a parent that is no
 * computer. */
#ifndef KW_AUTH_LDAP_ESCROW_H
#define KW_AUTH_LDAP_ESCROW_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/keyid.h"

#define LDAP_ESCROW_MAX 500000          /* recovery objects read, at most */
#define LDAP_ESCROW_PASSWORD_MAX 256    /* bytes of msFVE-RecoveryPassword looked at */
#define LDAP_ESCROW_TIME_LEN 21         /* "2026-05-14T18:23:45Z" and NUL */

/* One msFVE-RecoveryInformation object. */
struct ldap_escrow_entry {
	char *dn;
	char *computer;                  /* the device name, or NULL */
	char device_id[KEYID_CANON_LEN + 1]; /* the computer's objectGUID, or "" */
	char key_id[KEYID_CANON_LEN + 1];
	char volume_id[KEYID_CANON_LEN + 1];
	char *password;                  /* as stored; wiped by ldap_escrow_free */
	char created[LDAP_ESCROW_TIME_LEN]; /* ISO 8601, or "" (none: now) */
	char invalid[256];               /* "" or why it cannot be imported */
};

struct ldap_escrow {
	struct ldap_escrow_entry *e;
	size_t n;
};

/* Reads every msFVE-RecoveryInformation object under [ldap] base_dn (a
 * paged subtree search) and the computer objects they are under. 0 with
 * out filled (ldap_escrow_free, also on error); KW_ERR_INVALID ([ldap]
 * incomplete), KW_ERR_UNAVAILABLE (the directory), KW_ERR_TOO_LARGE (more
 * than LDAP_ESCROW_MAX objects), KW_ERR_NOMEM, with the reason in why. */
int ldap_escrow_read(const struct config *cfg, struct ldap_escrow *out, char *why,
		     size_t whylen);

void ldap_escrow_free(struct ldap_escrow *x);

/* 16 bytes of a GUID as Windows stores it (the first three fields
 * little-endian) as a canonical key ID ("12345678-9ABC-DEF0-1122-...").  */
void ldap_escrow_guid(const uint8_t b[16], char out[KEYID_CANON_LEN + 1]);

/* GeneralizedTime as Active Directory writes it ("20260514182345.0Z":
 * UTC, fraction optional) as ISO 8601 ("2026-05-14T18:23:45Z"). 0, or
 * KW_ERR_INVALID (another form: offsets, no seconds). */
int ldap_escrow_time(const char *gt, char out[LDAP_ESCROW_TIME_LEN]);

/* The key ID in a recovery object's name, "…{KEY-ID}" (the value of its
 * first RDN), canonical. 0 or KW_ERR_INVALID. */
int ldap_escrow_name_guid(const char *rdn_value, size_t len, char out[KEYID_CANON_LEN + 1]);

#endif
