#include <stdio.h>
#include <string.h>

#include "core/role.h"

const char *const role_list[ROLE_COUNT + 1] = {
	"helpdesk", "helpdesk_admin", "reports", "admin", NULL,
};

/* The store keeps the bits: the names above must stay in their order. */
_Static_assert(ROLE_HELPDESK == 1 << 0 && ROLE_HELPDESK_ADMIN == 1 << 1 &&
	       ROLE_REPORTS == 1 << 2 && ROLE_ADMIN == 1 << 3,
	       "role_list[i] names bit 1 << i of enum role");

unsigned role_parse(const char *name)
{
	for (unsigned i = 0; i < ROLE_COUNT; i++)
		if (!strcmp(name, role_list[i]))
			return 1u << i;
	return 0;
}

const char *role_name(unsigned role)
{
	for (unsigned i = 0; i < ROLE_COUNT; i++)
		if (role == 1u << i)
			return role_list[i];
	return NULL;
}

void roles_text(unsigned roles, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < ROLE_COUNT && n < outlen; i++)
		if (roles & (1u << i))
			n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? "," : "",
					      role_list[i]);
	if (!n)
		snprintf(out, outlen, "-");
}

unsigned roles_effective(unsigned roles)
{
	if (roles & ROLE_ADMIN)
		roles |= ROLE_HELPDESK_ADMIN;
	if (roles & ROLE_HELPDESK_ADMIN)
		roles |= ROLE_HELPDESK | ROLE_REPORTS;
	return roles;
}
