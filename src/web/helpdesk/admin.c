#include "web/helpdesk/helpdesk.h"

int helpdesk_admin_users(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_USERS);
}

int helpdesk_admin_users_post(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_USERS);
}

int helpdesk_admin_enrollment(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_ENROLLMENT);
}

int helpdesk_admin_enrollment_post(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_ENROLLMENT);
}
