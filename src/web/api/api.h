/* The device API (SPEC §5) and the operational endpoints. */
#ifndef KW_WEB_API_API_H
#define KW_WEB_API_API_H

#include "http/server.h"

int api_healthz(void *app, struct http_request *req, struct http_response *resp);
int api_metrics(void *app, struct http_request *req, struct http_response *resp);
int api_register(void *app, struct http_request *req, struct http_response *resp);
int api_checkin(void *app, struct http_request *req, struct http_response *resp);
int api_checkin_finish(void *app, struct http_request *req, struct http_response *resp);

#endif
