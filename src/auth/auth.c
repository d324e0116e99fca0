#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "core/config.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"

static const struct auth_backend *const backends[] = { &auth_local };

static const struct auth_backend *backend(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcasecmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

int auth_backend_check(const char *name, char *why, size_t whylen)
{
	char q[96], list[64] = "";
	size_t n = 0;

	if (backend(name))
		return 0;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]) && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
				      backends[i]->name);
	str_msg(why, whylen, "'%s' is not a sign-in backend of this keywarden (use %s)",
		ini_quote(name, q, sizeof(q)), list);
	return KW_ERR_INVALID;
}

int auth_authenticate(const struct config *cfg, struct store *s, const char *user,
		      const char *password, struct auth_user *out)
{
	int rc = KW_ERR_AUTH;

	for (size_t i = 0; i < cfg->backends.n; i++) {
		const struct auth_backend *b = backend(cfg->backends.item[i]);

		if (!b)
			continue;   /* not built in (LDAP): config check reports it */
		rc = b->authenticate(cfg, s, user, password, out);
		if (rc != KW_ERR_NOT_FOUND)
			break;
	}
	return rc == KW_ERR_NOT_FOUND ? KW_ERR_AUTH : rc;
}
