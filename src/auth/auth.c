#include <string.h>

#include "auth/auth.h"
#include "core/config.h"
#include "util/err.h"

static const struct auth_backend *const backends[] = { &auth_local };

static const struct auth_backend *backend(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

int auth_authenticate(const struct config *cfg, struct store *s, const char *user,
		      const char *password, struct auth_user *out)
{
	int rc = KW_ERR_AUTH;

	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct auth_backend *b = backend(cfg->backends[i]);

		if (!b)
			continue;   /* not built in (LDAP): config check reports it */
		rc = b->authenticate(cfg, s, user, password, out);
		if (rc != KW_ERR_NOT_FOUND)
			break;
	}
	return rc == KW_ERR_NOT_FOUND ? KW_ERR_AUTH : rc;
}
