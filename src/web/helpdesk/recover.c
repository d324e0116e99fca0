#include "web/helpdesk/helpdesk.h"

int helpdesk_recover_form(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_RECOVER);
}

int helpdesk_recover(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_RECOVER);
}
