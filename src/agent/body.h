/* The check-in body (SPEC §5) the agent sends, built from what it found on
 * the machine: the encoder next to core/checkin.h's parser. */
#ifndef KW_AGENT_BODY_H
#define KW_AGENT_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/checkin.h"

struct agent_key {
	char key_id[KEYID_CANON_LEN + 1];
	char password[RECPW_CANON_LEN + 1];
};

struct agent_volume {
	char id[KEYID_CANON_LEN + 1];        /* canonical GUID (LUKS UUID) */
	char mount[CHECKIN_MOUNT_MAX + 1];   /* "" when not mounted */
	const char *type;                    /* "os", "fixed", "removable" */
	const char *protection;              /* "on", "off", "suspended" */
	char encryption[33];                 /* "aes_xts_plain64", "none" */
	int percent;
	struct agent_key keys[CHECKIN_MAX_KEYS];
	size_t nkeys;
};

struct agent_logon {
	char user[CHECKIN_TEXT_MAX + 1];
	bool remote;
	int64_t at;                          /* Unix seconds */
};

struct agent_facts {
	char os[CHECKIN_TEXT_MAX + 1];
	struct agent_volume *volumes;
	size_t nvolumes;
	struct agent_logon *logons;
	size_t nlogons;
};

/* The body as compact JSON text in *out (caller wipes it with
 * sodium_memzero and frees it with json_free_string: it holds recovery
 * passwords). Returns 0 or KW_ERR_NOMEM. */
int body_build(const struct agent_facts *f, char **out, size_t *outlen);

/* The same as a jansson value (caller json_decref's it). NULL on NOMEM. */
json_t *body_json(const struct agent_facts *f);

/* "aes-xts-plain64" as the API spells encryption methods:
 * lower case, '-' becomes '_'; at most outlen - 1 bytes. */
void body_encryption_name(const char *cipher, const char *mode, char *out, size_t outlen);

#endif
