/* The help-desk portal (SPEC §4) under /helpdesk: its routes admit only
 * the roles they declare (web/app.c); every page shares the portal's
 * layout, wider, with the help desk's navigation. One file a part:
 * helpdesk.c (start page, layout), recover.c, devices.c, reports.c,
 * admin.c. */
#ifndef KW_WEB_HELPDESK_HELPDESK_H
#define KW_WEB_HELPDESK_HELPDESK_H

#include "http/server.h"
#include "http/template.h"

struct app;

/* Which entry of the navigation a page is (its aria-current). */
enum helpdesk_nav {
	HD_NAV_HOME, HD_NAV_RECOVER, HD_NAV_DEVICES, HD_NAV_AUDIT, HD_NAV_UNROTATED,
	HD_NAV_COMPLIANCE, HD_NAV_USERS, HD_NAV_ENROLLMENT,
};

/* Renders template name as a help-desk page: web_page with the wide
 * layout and the navigation the user's roles allow, nav marked current. */
int helpdesk_page(struct app *app, struct http_request *req, struct http_response *resp,
		  int status, enum helpdesk_nav nav, const char *name, struct tpl *t);

/* GET /helpdesk: what the signed-in user's roles let them do here. */
int helpdesk_home(void *app, struct http_request *req, struct http_response *resp);

/* recover.c: GET and POST /helpdesk/recover (helpdesk and up). */
int helpdesk_recover_form(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_recover(void *app, struct http_request *req, struct http_response *resp);

/* devices.c (helpdesk_admin and up): GET /helpdesk/devices?q=, GET
 * /helpdesk/devices/{id}, GET /helpdesk/devices/{id}/lost, POST
 * /helpdesk/devices/{id}/associations. */
int helpdesk_devices(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_device(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_device_lost(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_device_assoc(void *app, struct http_request *req, struct http_response *resp);

/* reports.c (reports and up): GET /helpdesk/reports/audit,
 * /helpdesk/reports/unrotated, /helpdesk/reports/compliance (each with
 * ?format=csv). */
int helpdesk_report_audit(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_report_unrotated(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_report_compliance(void *app, struct http_request *req,
			       struct http_response *resp);

/* admin.c (admin): GET and POST /helpdesk/admin/users,
 * /helpdesk/admin/enrollment. */
int helpdesk_admin_users(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_admin_users_post(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_admin_enrollment(void *app, struct http_request *req, struct http_response *resp);
int helpdesk_admin_enrollment_post(void *app, struct http_request *req,
				   struct http_response *resp);

/* A page not built yet (501), for the parts to come. */
int helpdesk_not_built(struct app *app, struct http_request *req, struct http_response *resp,
		       enum helpdesk_nav nav);

#endif
