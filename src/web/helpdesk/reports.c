#include "web/helpdesk/helpdesk.h"

int helpdesk_report_audit(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_AUDIT);
}

int helpdesk_report_unrotated(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_UNROTATED);
}

int helpdesk_report_compliance(void *ctx, struct http_request *req, struct http_response *resp)
{
	return helpdesk_not_built(ctx, req, resp, HD_NAV_COMPLIANCE);
}
