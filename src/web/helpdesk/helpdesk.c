#include "core/role.h"
#include "util/i18n.h"
#include "web/app.h"
#include "web/helpdesk/helpdesk.h"
#include "web/web.h"

int helpdesk_page(struct app *app, struct http_request *req, struct http_response *resp,
		  int status, enum helpdesk_nav nav, const char *name, struct tpl *t)
{
	static const char *const current[] = {
		[HD_NAV_HOME] = "nav_home", [HD_NAV_RECOVER] = "nav_recover",
		[HD_NAV_DEVICES] = "nav_devices", [HD_NAV_AUDIT] = "nav_audit",
		[HD_NAV_UNROTATED] = "nav_unrotated", [HD_NAV_COMPLIANCE] = "nav_compliance",
		[HD_NAV_USERS] = "nav_users", [HD_NAV_ENROLLMENT] = "nav_enrollment",
	};
	unsigned r = roles_effective(web_ctx(req)->s.roles);

	tpl_set(t, "wide", "1");
	tpl_set(t, "hd", "1");
	tpl_set(t, current[nav], "1");
	tpl_set(t, "may_recover", r & ROLE_HELPDESK ? "1" : NULL);
	tpl_set(t, "may_devices", r & ROLE_HELPDESK_ADMIN ? "1" : NULL);
	tpl_set(t, "may_reports", r & ROLE_REPORTS ? "1" : NULL);
	tpl_set(t, "may_admin", r & ROLE_ADMIN ? "1" : NULL);
	return web_page(app, req, resp, status, name, t);
}

int helpdesk_home(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct web_req *w = web_ctx(req);
	unsigned r = roles_effective(w->s.roles);
	struct tpl t, roles[ROLE_COUNT];
	size_t n = 0;
	/* Widest first, each with where it starts. */
	const struct {
		unsigned role;
		const char *href;
		const char *text;
	} what[] = {
		{ ROLE_ADMIN, "/helpdesk/admin/users",
		  _("Administrator: accounts, roles and enrollment tokens, and everything below") },
		{ ROLE_HELPDESK_ADMIN, "/helpdesk/devices",
		  _("Help-desk administrator: recovery by key ID, devices, key history and "
		    "reports") },
		{ ROLE_HELPDESK, "/helpdesk/recover",
		  _("Help desk: recovery for a named user of the computer") },
		{ ROLE_REPORTS, "/helpdesk/reports/audit", _("Reports: read the reports; no keys") },
	};

	for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
		if (!(r & what[i].role))
			continue;
		tpl_init(&roles[n]);
		tpl_set(&roles[n], "href", what[i].href);
		tpl_set(&roles[n++], "text", what[i].text);
	}
	tpl_init(&t);
	tpl_set(&t, "title", _("Help desk"));
	tpl_set_list(&t, "roles", roles, n);
	return helpdesk_page(ctx, req, resp, 200, HD_NAV_HOME, "helpdesk.html", &t);
}

int helpdesk_not_built(struct app *app, struct http_request *req, struct http_response *resp,
		       enum helpdesk_nav nav)
{
	struct tpl t;

	tpl_init(&t);
	tpl_set(&t, "title", _("Not available yet"));
	tpl_set(&t, "message", _("This part of the help desk is not available yet."));
	return helpdesk_page(app, req, resp, 501, nav, "message.html", &t);
}
