/* keywarden-agent's configuration: an INI file (/etc/keywarden/agent.conf
 * by default), read through util/ini.h's table. */
#ifndef KW_AGENT_CONF_H
#define KW_AGENT_CONF_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_DEFAULT_CONFIG "/etc/keywarden/agent.conf"

struct agent_conf {
	char *server;            /* https://host[:port]; http:// only to loopback */
	char *state_dir;         /* registration, recovery passwords: 0700 */
	char *ca_file;           /* NULL: the system's CA store */
	char *proxy;             /* NULL: none (the environment's is ignored) */
	char *volumes;           /* "auto" or comma-separated LUKS2 device paths */
	char *name;              /* device name; NULL: the host name */
	char *domain;            /* NULL: none */
	char *logons_file;       /* wtmp to read logons from */
	char *pbkdf;             /* "default" (libcryptsetup's), "argon2id", "pbkdf2" */
	int64_t pbkdf_iterations; /* pbkdf2 only; 0: benchmark */
	int64_t pbkdf_time_ms;   /* when benchmarking */
	int64_t timeout;         /* seconds for one HTTP request */
};

/* Defaults, then the file at path over them. On failure returns
 * KW_ERR_IO or KW_ERR_INVALID with "FILE:LINE: reason" in msg; conf is
 * freed with agent_conf_free in every case. */
int agent_conf_load(struct agent_conf *conf, const char *path, char *msg, size_t msglen);

void agent_conf_free(struct agent_conf *conf);

#endif
