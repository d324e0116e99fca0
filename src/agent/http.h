/* The agent's HTTP client (libcurl): one JSON POST to the server. TLS
 * peers are always verified; plain http:// only to a loopback address. */
#ifndef KW_AGENT_HTTP_H
#define KW_AGENT_HTTP_H

#include <stddef.h>

#define HTTP_RESPONSE_MAX (64 * 1024)

struct agent_conf;

/* Initialises libcurl once; 0 or KW_ERR_INTERNAL. */
int http_global_init(void);
void http_global_cleanup(void);

/* Checks url with libcurl's URL parser: https://, or http:// to a host
 * that is 127.0.0.0/8, ::1 or exactly "localhost"; no user name, password,
 * query or fragment. 0, or KW_ERR_INVALID (KW_ERR_NOMEM) with the reason
 * in msg. */
int http_check_url(const char *url, char *msg, size_t msglen);

/* POSTs body (JSON) to conf->server + path with "Authorization: Bearer
 * bearer" when bearer is not NULL. On an answer returns 0 with its status
 * in *status and its body (NUL-terminated, at most HTTP_RESPONSE_MAX bytes;
 * caller wipes and frees it) in *resp. No answer: KW_ERR_UNAVAILABLE (or
 * KW_ERR_INVALID for a refused URL) with the reason in msg; *resp NULL. */
int http_post_json(const struct agent_conf *conf, const char *path, const char *bearer,
		   const char *body, size_t bodylen, long *status, char **resp,
		   char *msg, size_t msglen);

#endif
