#include <stdio.h>
#include <string.h>

#include "core/identity.h"
#include "core/config.h"
#include "util/str.h"

static void add_one(struct identity *id, const char *name, size_t len)
{
	if (len == 0 || len > IDENTITY_NAME_MAX || id->n >= IDENTITY_MAX)
		return;
	for (size_t i = 0; i < id->n; i++)
		if (str_fold_eq(id->forms[i], strlen(id->forms[i]), name, len))
			return;
	memcpy(id->forms[id->n], name, len);
	id->forms[id->n++][len] = '\0';
}

void identity_add(const struct config *cfg, struct identity *id, const char *name)
{
	const char *bs = strchr(name, '\\'), *at = strrchr(name, '@');
	char other[IDENTITY_NAME_MAX * 2 + 2];

	add_one(id, name, strlen(name));
	for (size_t i = 0; cfg && i < cfg->ndomains; i++) {
		const char *nb = cfg->domains[i].netbios, *dns = cfg->domains[i].dns;

		if (bs && str_fold_eq(name, (size_t)(bs - name), nb, strlen(nb)))
			snprintf(other, sizeof(other), "%s@%s", bs + 1, dns);
		else if (!bs && at && str_fold_eq(at + 1, strlen(at + 1), dns, strlen(dns)))
			snprintf(other, sizeof(other), "%s\\%.*s", nb, (int)(at - name), name);
		else
			continue;
		add_one(id, other, strlen(other));
	}
}

void identity_from_name(const struct config *cfg, const char *name, struct identity *id)
{
	id->n = 0;
	identity_add(cfg, id, name);
}

void identity_join(const struct identity *id, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < id->n && n < outlen; i++)
		n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? "\n" : "", id->forms[i]);
}

void identity_split(const char *joined, struct identity *id)
{
	id->n = 0;
	while (*joined) {
		size_t len = strcspn(joined, "\n");

		add_one(id, joined, len);
		joined += len;
		if (*joined)
			joined++;
	}
}

size_t identity_list(const struct identity *id, const char *out[IDENTITY_MAX])
{
	for (size_t i = 0; i < id->n; i++)
		out[i] = id->forms[i];
	return id->n;
}
