/* The device API (SPEC §5) and the operational endpoints. */
#ifndef KW_WEB_API_API_H
#define KW_WEB_API_API_H

#include "http/server.h"

int api_healthz(void *app, struct http_request *req, struct http_response *resp);
int api_metrics(void *app, struct http_request *req, struct http_response *resp);
int api_register(void *app, struct http_request *req, struct http_response *resp);
int api_checkin(void *app, struct http_request *req, struct http_response *resp);
int api_checkin_finish(void *app, struct http_request *req, struct http_response *resp);

/* For app_runs_inline: the request's device secret is one the check-in
 * cache holds, so authenticating it reads nothing from the store. */
struct app;
bool api_device_known(struct app *app, const struct http_request *req);

#endif
