/* Roles (SPEC §2): their names, spelled here and nowhere else, for the
 * command line, the [roles] section of the configuration and the pages.
 * Role i of role_list is the bit 1 << i. */
#ifndef KW_CORE_ROLE_H
#define KW_CORE_ROLE_H

#include <stddef.h>

/* A set of roles is a bit mask of these; the store keeps it as it is. */
enum role {
	ROLE_HELPDESK = 1 << 0,
	ROLE_HELPDESK_ADMIN = 1 << 1,
	ROLE_REPORTS = 1 << 2,
	ROLE_ADMIN = 1 << 3,
};

#define ROLE_COUNT 4
#define ROLES_TEXT_MAX 64          /* roles_text with every role named */

/* "helpdesk", "helpdesk_admin", "reports", "admin", then NULL: the name of
 * bit 1 << i at index i. */
extern const char *const role_list[ROLE_COUNT + 1];

/* The bit of a role name (exact spelling); 0 when name is no role. */
unsigned role_parse(const char *name);

/* The name of one role bit; NULL when role is not exactly one known bit. */
const char *role_name(unsigned role);

/* The names of the bits set in roles, comma-separated ("helpdesk,admin"),
 * or "-" when none; cut to fit outlen (at least 1). Unknown bits are left
 * out. */
void roles_text(unsigned roles, char *out, size_t outlen);

/* The roles held with what each implies: the widest wins (SPEC §2): admin
 * may do everything, helpdesk_admin what helpdesk and reports may. */
unsigned roles_effective(unsigned roles);

#endif
