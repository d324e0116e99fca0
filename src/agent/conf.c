#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "agent/conf.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"

#define OFF(member) offsetof(struct agent_conf, member)

static int check_server(const char *v, char *why, size_t whylen);
static int check_pbkdf(const char *v, char *why, size_t whylen);

static const struct ini_key keys[] = {
	{ "agent", "server", INI_STR, OFF(server), "", 0, 0, check_server, { NULL } },
	{ "agent", "state_dir", INI_STR, OFF(state_dir), "/var/lib/keywarden-agent", 0, 0, ini_check_nonempty, { NULL } },
	{ "agent", "ca_file", INI_OPT, OFF(ca_file), "", 0, 0, NULL, { NULL } },
	{ "agent", "proxy", INI_OPT, OFF(proxy), "", 0, 0, NULL, { NULL } },
	{ "agent", "volumes", INI_STR, OFF(volumes), "auto", 0, 0, ini_check_nonempty, { NULL } },
	{ "agent", "name", INI_OPT, OFF(name), "", 0, 0, NULL, { NULL } },
	{ "agent", "domain", INI_OPT, OFF(domain), "", 0, 0, NULL, { NULL } },
	{ "agent", "logons_file", INI_STR, OFF(logons_file), "/var/log/wtmp", 0, 0, NULL, { NULL } },
	{ "agent", "timeout", INI_DURATION, OFF(timeout), "30s", 1, 600, NULL, { NULL } },
	{ "luks", "pbkdf", INI_STR, OFF(pbkdf), "default", 0, 0, check_pbkdf, { NULL } },
	{ "luks", "pbkdf_iterations", INI_INT, OFF(pbkdf_iterations), "0", 0, 100000000, NULL, { NULL } },
	{ "luks", "pbkdf_time_ms", INI_INT, OFF(pbkdf_time_ms), "2000", 1, 60000, NULL, { NULL } },
};

static const struct ini_schema schema = { keys, sizeof(keys) / sizeof(keys[0]) };

static int check_server(const char *v, char *why, size_t whylen)
{
	char q[64];

	if (!*v)
		return 0;    /* checked where it is needed: status works without */
	if (strncasecmp(v, "https://", 8) && strncasecmp(v, "http://", 7)) {
		str_msg(why, whylen, "must start with https:// (or http:// for a loopback address): %s",
			ini_quote(v, q, sizeof(q)));
		return KW_ERR_INVALID;
	}
	return 0;
}

static int check_pbkdf(const char *v, char *why, size_t whylen)
{
	char q[64];

	if (!strcmp(v, "default") || !strcmp(v, "argon2id") || !strcmp(v, "argon2i") ||
	    !strcmp(v, "pbkdf2"))
		return 0;
	str_msg(why, whylen, "must be default, argon2id, argon2i or pbkdf2: %s",
		ini_quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

int agent_conf_load(struct agent_conf *conf, const char *path, char *msg, size_t msglen)
{
	int r;

	memset(conf, 0, sizeof(*conf));
	if ((r = ini_defaults(&schema, conf)) < 0) {
		str_msg(msg, msglen, "%s", kw_strerror(r));
		return r;
	}
	return ini_load(&schema, conf, path, msg, msglen);
}

void agent_conf_free(struct agent_conf *conf)
{
	ini_free(&schema, conf);
}
