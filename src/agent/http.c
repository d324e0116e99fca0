#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sodium.h>

#include "agent/conf.h"
#include "agent/http.h"
#include "util/err.h"
#include "util/str.h"

struct sink {
	char *p;
	size_t len;
	bool over;
};

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : KW_ERR_INTERNAL;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

/* host as libcurl's URL parser returns it (an IPv6 literal in brackets,
 * perhaps with a zone). Loopback: 127.0.0.0/8, ::1 or exactly localhost. */
static bool host_is_loopback(const char *host)
{
	char h[64];
	unsigned char a[16];
	size_t n = strlen(host);

	if (n == 0 || n >= sizeof(h))
		return false;
	memcpy(h, host, n + 1);
	if (!strcasecmp(h, "localhost"))
		return true;
	if (inet_pton(AF_INET, h, a) == 1)
		return a[0] == 127;
	if (h[0] == '[' && h[n - 1] == ']') {
		h[n - 1] = '\0';
		return inet_pton(AF_INET6, h + 1, a) == 1 &&
		       !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
	}
	return false;
}

/* Whether part of u is present (any value, even empty). */
static bool url_has(CURLU *u, CURLUPart what)
{
	char *v = NULL;
	bool has = curl_url_get(u, what, &v, 0) == CURLUE_OK;

	curl_free(v);
	return has;
}

int http_check_url(const char *url, char *msg, size_t msglen)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL;
	int r = KW_ERR_INVALID;

	if (!url || !*url) {
		str_msg(msg, msglen, "no server configured ([agent] server)");
		return KW_ERR_INVALID;
	}
	if (strncasecmp(url, "https://", 8) && strncasecmp(url, "http://", 7)) {
		str_msg(msg, msglen, "the server URL must start with https://");
		return KW_ERR_INVALID;
	}
	/* The same parser libcurl connects with decides what the host is. */
	if (!(u = curl_url())) {
		str_msg(msg, msglen, "%s", kw_strerror(KW_ERR_NOMEM));
		return KW_ERR_NOMEM;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		str_msg(msg, msglen, "the server URL is not a valid URL");
		goto out;
	}
	if (url_has(u, CURLUPART_USER) || url_has(u, CURLUPART_PASSWORD) ||
	    url_has(u, CURLUPART_OPTIONS)) {
		str_msg(msg, msglen, "the server URL must not hold a user name or password "
			"(user@host)");
		goto out;
	}
	if (url_has(u, CURLUPART_QUERY) || url_has(u, CURLUPART_FRAGMENT)) {
		str_msg(msg, msglen, "the server URL must not hold a query or fragment ('?', '#')");
		goto out;
	}
	if (strcasecmp(scheme, "https") && !host_is_loopback(host)) {
		str_msg(msg, msglen, "plain http:// is allowed only to a loopback address; use https://");
		goto out;
	}
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

static size_t sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	char *p;

	if (s->len + n > HTTP_RESPONSE_MAX) {
		s->over = true;
		return 0;
	}
	if (!(p = malloc(s->len + n + 1)))
		return 0;
	if (s->p) {
		memcpy(p, s->p, s->len);
		sodium_memzero(s->p, s->len);
		free(s->p);
	}
	memcpy(p + s->len, data, n);
	s->p = p;
	s->len += n;
	s->p[s->len] = '\0';
	return n;
}

int http_post_json(const struct agent_conf *conf, const char *path, const char *bearer,
		   const char *body, size_t bodylen, long *status, char **resp,
		   char *msg, size_t msglen)
{
	struct sink sink = { NULL, 0, false };
	struct curl_slist *hdrs = NULL, *h;
	char url[2048], auth[512];
	char err[CURL_ERROR_SIZE] = "";
	size_t base;
	CURL *c = NULL;
	CURLcode cr;
	int r;

	*resp = NULL;
	*status = 0;
	auth[0] = '\0';
	if ((r = http_check_url(conf->server, msg, msglen)) < 0)
		return r;
	base = strlen(conf->server);
	while (base && conf->server[base - 1] == '/')
		base--;
	if ((size_t)snprintf(url, sizeof(url), "%.*s%s", (int)base, conf->server, path) >=
	    sizeof(url)) {
		str_msg(msg, msglen, "the server URL is too long");
		return KW_ERR_INVALID;
	}
	/* What is connected to is checked too, not only the configured base. */
	if ((r = http_check_url(url, msg, msglen)) < 0)
		return r;
	r = KW_ERR_NOMEM;
	if (!(c = curl_easy_init()))
		goto out;
	if (!(h = curl_slist_append(hdrs, "Content-Type: application/json")))
		goto out;
	hdrs = h;
	if (!(h = curl_slist_append(hdrs, "Expect:")))
		goto out;
	hdrs = h;
	if (bearer) {
		if ((size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer) >=
		    sizeof(auth)) {
			r = KW_ERR_INVALID;
			str_msg(msg, msglen, "the device secret is too long");
			goto out;
		}
		if (!(h = curl_slist_append(hdrs, auth)))
			goto out;
		hdrs = h;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)conf->timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)conf->timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "keywarden-agent");
	if (conf->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, conf->ca_file);
	/* No proxy from the environment (http_proxy, HTTPS_PROXY): a unit's or
	 * a shell's variable must not route recovery passwords elsewhere; only
	 * the configuration names one. */
	curl_easy_setopt(c, CURLOPT_PROXY, conf->proxy ? conf->proxy : "");
	cr = curl_easy_perform(c);
	if (cr != CURLE_OK) {
		r = KW_ERR_UNAVAILABLE;
		str_msg(msg, msglen, "cannot reach %s: %s", conf->server,
			sink.over ? "answer too large" : *err ? err : curl_easy_strerror(cr));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (!sink.p && !(sink.p = calloc(1, 1)))
		goto out;
	*resp = sink.p;
	sink.p = NULL;    /* owned by caller */
	r = 0;
out:
	if (sink.p) {
		sodium_memzero(sink.p, sink.len);
		free(sink.p);
	}
	sodium_memzero(auth, sizeof(auth));
	for (h = hdrs; h; h = h->next)    /* the copy of the bearer token */
		sodium_memzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	if (r == KW_ERR_NOMEM)
		str_msg(msg, msglen, "%s", kw_strerror(r));
	return r;
}
