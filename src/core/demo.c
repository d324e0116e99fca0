#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/account.h"
#include "core/demo.h"
#include "core/enroll.h"
#include "core/escrow.h"
#include "core/recpw.h"
#include "core/role.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define DEMO_KEY_META "demo_key_id"

const struct demo_user demo_users[] = {
	{ "admin", "admin-demo-1", ROLE_ADMIN, "administrator" },
	{ "helpdesk", "helpdesk-demo-1", ROLE_HELPDESK_ADMIN,
	  "help-desk administrator: recovery by key ID, devices, reports (/helpdesk)" },
	{ "desk", "desk-demo-1", ROLE_HELPDESK,
	  "help desk: recovery for a named user, e.g. CORP\\alice (/helpdesk)" },
	{ "reports", "reports-demo-1", ROLE_REPORTS, "reads the reports, never a key (/helpdesk)" },
	{ "CORP\\alice", "alice-demo-1", 0, "end user of PC-ALICE and LAPTOP-ALICE" },
	{ "CORP\\bob", "bob-demo-1", 0, "end user of PC-BOB" },
};
const size_t demo_nusers = sizeof(demo_users) / sizeof(demo_users[0]);

struct demo_device {
	const char *name;
	const char *user;        /* local logon */
	const char *remote;      /* remote logon only */
};

static const struct demo_device demo_devices[] = {
	{ "PC-ALICE", "CORP\\alice", NULL },
	{ "PC-BOB", "CORP\\bob", "CORP\\alice" },
	{ "LAPTOP-ALICE", "alice@corp.example.com", NULL },
};

/* A random key ID whose first 8 digits are prefix (when given). */
static void demo_key_id(const char *prefix, char out[KEYID_CANON_LEN + 1])
{
	uint8_t b[16];
	char hex[KEYID_HEX_LEN + 1];

	randombytes_buf(b, sizeof(b));
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02X", b[i]);
	if (prefix)
		memcpy(hex, prefix, 8);
	keyid_format(hex, out);
}

static int save_key_tx(struct store_tx *tx, void *arg)
{
	return store_meta_set(tx, DEMO_KEY_META, arg);
}

static int add_users(struct store *s, char *msg, size_t msglen)
{
	char why[256];
	int rc;

	for (size_t i = 0; i < demo_nusers; i++) {
		rc = account_add(s, demo_users[i].name, demo_users[i].roles,
				 demo_users[i].password, NULL, why, sizeof(why));
		if (rc < 0) {
			str_msg(msg, msglen, "cannot add user %s: %s", demo_users[i].name,
				*why ? why : kw_strerror(rc));
			return rc;
		}
	}
	return 0;
}

/* Registers dd with token and checks in one volume with one key (whose ID
 * starts with prefix unless NULL) and its logons; key_id gets the key ID. */
static int add_device(struct store *s, const struct seal *k, const struct demo_device *dd,
		      const char *token, const char *prefix, int64_t now,
		      char key_id[KEYID_CANON_LEN + 1], char *msg, size_t msglen)
{
	char secret[SECRET_TEXT_MAX], id[UUID_LEN + 1];
	struct device_new d = { dd->name, "CORP", "Windows 11 Pro 23H2" };
	struct checkin_volume vol;
	struct checkin_logon logons[2];
	struct checkin ci;
	struct checkin_result res;
	uint8_t raw[16];
	int rc;

	if ((rc = enroll_register(s, token, &d, now, id, secret)) < 0) {
		str_msg(msg, msglen, "cannot register %s: %s", dd->name, kw_strerror(rc));
		return rc;
	}
	sodium_memzero(secret, sizeof(secret));
	memset(&vol, 0, sizeof(vol));
	memset(&ci, 0, sizeof(ci));
	demo_key_id(NULL, vol.guid);
	snprintf(vol.mount, sizeof(vol.mount), "C:");
	snprintf(vol.type, sizeof(vol.type), "os");
	snprintf(vol.protection, sizeof(vol.protection), "on");
	snprintf(vol.encryption, sizeof(vol.encryption), "xts_aes_256");
	vol.percent = 100;
	vol.nkeys = 1;
	demo_key_id(prefix, vol.keys[0].key_id);
	randombytes_buf(raw, sizeof(raw));
	recpw_from_key(raw, vol.keys[0].password);
	sodium_memzero(raw, sizeof(raw));
	memset(logons, 0, sizeof(logons));
	snprintf(logons[0].user, sizeof(logons[0].user), "%s", dd->user);
	logons[0].type = LOGON_LOCAL;
	logons[0].at = now - 3600;
	if (dd->remote) {
		snprintf(logons[1].user, sizeof(logons[1].user), "%s", dd->remote);
		logons[1].type = LOGON_REMOTE;
		logons[1].at = now - 1800;
	}
	snprintf(ci.os, sizeof(ci.os), "Windows 11 Pro 23H2");
	ci.volumes = &vol;
	ci.nvolumes = 1;
	ci.logons = logons;
	ci.nlogons = dd->remote ? 2 : 1;
	rc = checkin_apply(s, k, id, &ci, now, &res);
	checkin_result_free(&res);
	memcpy(key_id, vol.keys[0].key_id, KEYID_CANON_LEN + 1);
	sodium_memzero(&vol, sizeof(vol));
	if (rc < 0)
		str_msg(msg, msglen, "cannot escrow the demo keys: %s", kw_strerror(rc));
	return rc;
}

int demo_populate(struct store *s, const struct seal *k, char key_id[KEYID_CANON_LEN + 1],
		  char *msg, size_t msglen)
{
	char token[SECRET_TEXT_MAX], prefix[9], other[KEYID_CANON_LEN + 1];
	int64_t now = time_now();
	uint8_t raw[4];
	int rc;

	str_msg_clear(msg, msglen);
	if ((rc = add_users(s, msg, msglen)) < 0)
		return rc;
	if ((rc = enroll_token_create(s, now, now + 3600, -1, NULL, token, NULL)) < 0) {
		str_msg(msg, msglen, "cannot create a token: %s", kw_strerror(rc));
		return rc;
	}
	randombytes_buf(raw, sizeof(raw));
	snprintf(prefix, sizeof(prefix), "%02X%02X%02X%02X", raw[0], raw[1], raw[2], raw[3]);
	for (size_t i = 0; i < sizeof(demo_devices) / sizeof(demo_devices[0]); i++) {
		/* PC-ALICE and PC-BOB share a key ID prefix: alice typing 8
		 * characters still gets only her own key. */
		rc = add_device(s, k, &demo_devices[i], token, i < 2 ? prefix : NULL, now,
				i == 0 ? key_id : other, msg, msglen);
		if (rc < 0)
			goto out;
	}
	if ((rc = store_write(s, save_key_tx, key_id)) < 0)
		str_msg(msg, msglen, "cannot record the demo key: %s", kw_strerror(rc));
out:
	sodium_memzero(token, sizeof(token));
	return rc;
}

static int load_key_tx(struct store_tx *tx, void *arg)
{
	return store_meta_get(tx, DEMO_KEY_META, arg, KEYID_CANON_LEN + 1);
}

int demo_key(struct store *s, char key_id[KEYID_CANON_LEN + 1])
{
	return store_read(s, load_key_tx, key_id);
}
