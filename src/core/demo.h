/* The data of `keywarden demo` (SPEC §9): demo accounts with public
 * passwords, devices with recovery keys and logons, written into a new
 * database the way the real paths write them (enrollment, check-in). Not
 * for production. */
#ifndef KW_CORE_DEMO_H
#define KW_CORE_DEMO_H

#include <stddef.h>

#include "core/keyid.h"

struct store;
struct seal;

struct demo_user {
	const char *name;
	const char *password;        /* public: printed by the demo */
	unsigned roles;
	const char *what;            /* who the account stands for */
};

extern const struct demo_user demo_users[];
extern const size_t demo_nusers;

/* Adds the demo accounts, devices, keys and logons to s (keys sealed with
 * k), and records key_id, a key ID end users can try, for demo_key. Two
 * devices of different users share the first 8 digits of a key ID. On
 * failure msg says what. */
int demo_populate(struct store *s, const struct seal *k, char key_id[KEYID_CANON_LEN + 1],
		  char *msg, size_t msglen);

/* The key ID demo_populate recorded; KW_ERR_NOT_FOUND when none was. */
int demo_key(struct store *s, char key_id[KEYID_CANON_LEN + 1]);

#endif
