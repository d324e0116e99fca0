#include "web/helpdesk/helpdesk.h"

int helpdesk_devices(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_DEVICES);
}

int helpdesk_device(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_DEVICES);
}

int helpdesk_device_lost(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_DEVICES);
}

int helpdesk_device_assoc(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_DEVICES);
}
