/* The names a person is known by. Devices report users as CORP\alice or
 * alice@corp.example.com; a user matches a logon under any of their forms,
 * compared case-insensitively. [identity] domains maps NetBIOS domains to
 * DNS domains so that either form finds the other. SPEC §3, §8. */
#ifndef KW_CORE_IDENTITY_H
#define KW_CORE_IDENTITY_H

#include <stddef.h>

#define IDENTITY_MAX 4            /* forms per person */
#define IDENTITY_NAME_MAX 256

struct config;

struct identity {
	char forms[IDENTITY_MAX][IDENTITY_NAME_MAX + 1];
	size_t n;
};

/* Starts the set with name and, through the configured domain mapping, its
 * other form (CORP\alice <-> alice@corp.example.com). Duplicates (ignoring
 * case) are not added. */
void identity_from_name(const struct config *cfg, const char *name, struct identity *id);

/* Adds one more form (and its mapped form). */
void identity_add(const struct config *cfg, struct identity *id, const char *name);

/* The forms joined by '\n' (for the session record), and back. */
void identity_join(const struct identity *id, char *out, size_t outlen);
void identity_split(const char *joined, struct identity *id);

/* Pointers to the forms, for store queries. */
size_t identity_list(const struct identity *id, const char *out[IDENTITY_MAX]);

#endif
