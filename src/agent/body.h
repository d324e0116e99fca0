/* The check-in body (SPEC §5) the agent sends, built from what it found on
 * the machine: the encoder next to core/checkin.h's parser. */
#ifndef KW_AGENT_BODY_H
#define KW_AGENT_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/checkin.h"

/* The server's limits on a check-in: its body (the JSON routes' 64 KiB in
 * src/web/app.c) and the encryption name (core/checkin.c). */
#define BODY_MAX (64 * 1024)
#define BODY_ENCRYPTION_MAX 32

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
 * passwords). Text fields go through body_clean_text (os, user to
 * CHECKIN_TEXT_MAX bytes, mount to CHECKIN_MOUNT_MAX) and the encryption
 * name through body_encryption_name, so the server accepts each. Returns 0,
 * KW_ERR_NOMEM, or KW_ERR_TOO_LARGE (nothing in *out) when the body would
 * pass the server's BODY_MAX. */
int body_build(const struct agent_facts *f, char **out, size_t *outlen);

/* The same as a jansson value (caller json_decref's it). NULL on NOMEM. */
json_t *body_json(const struct agent_facts *f);

/* "aes-xts-plain64" as the API spells encryption methods: ASCII lower
 * case, anything but [a-z0-9] becomes '_'; at most outlen - 1 bytes and
 * BODY_ENCRYPTION_MAX. mode may be NULL. */
void body_encryption_name(const char *cipher, const char *mode, char *out, size_t outlen);

/* in as text the server accepts (valid UTF-8, no control characters): a
 * byte that starts no valid character, or a control character, becomes
 * '?'; cut to outlen - 1 bytes on a character boundary. */
void body_clean_text(const char *in, char *out, size_t outlen);

/* A mount point as /proc/self/mountinfo writes it (\040 for a space,
 * \011, \012, \134) decoded, then through body_clean_text. */
void body_mount_decode(const char *raw, char *out, size_t outlen);

#endif
