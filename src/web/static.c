#include <string.h>

#include "util/embedded.h"
#include "util/err.h"
#include "web/static.h"

extern const struct embedded_file static_files[];

static const char *content_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (dot && !strcmp(dot, ".css"))
		return "text/css; charset=utf-8";
	if (dot && !strcmp(dot, ".js"))
		return "text/javascript; charset=utf-8";
	if (dot && !strcmp(dot, ".svg"))
		return "image/svg+xml; charset=utf-8";
	return "application/octet-stream";
}

int static_asset(void *app, struct http_request *req, struct http_response *resp)
{
	const struct embedded_file *f = embedded_find(static_files, req->params[0]);
	int rc;

	if (!f)
		return http_text(resp, 404, "not found");
	resp->status = 200;
	resp->content_type = content_type(f->name);
	if ((rc = http_header(resp, "Cache-Control", "public, max-age=3600")) < 0)
		return rc;
	return buf_append(&resp->body, f->data, f->size);
}
