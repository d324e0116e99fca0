#include "core/role.h"
#include "store/store.h"
#include "util/i18n.h"
#include "web/app.h"
#include "web/helpdesk/helpdesk.h"
#include "web/web.h"

int helpdesk_home(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct web_req *w = web_ctx(req);
	unsigned r = roles_effective(w->s.roles);
	struct tpl t;

	tpl_init(&t);
	tpl_set(&t, "title", _("Help desk"));
	tpl_set(&t, "is_admin", r & ROLE_ADMIN ? "1" : NULL);
	tpl_set(&t, "is_helpdesk_admin", r & ROLE_HELPDESK_ADMIN ? "1" : NULL);
	tpl_set(&t, "is_helpdesk", r & ROLE_HELPDESK ? "1" : NULL);
	tpl_set(&t, "is_reports", r & ROLE_REPORTS ? "1" : NULL);
	return web_page(ctx, req, resp, 200, "helpdesk.html", &t);
}
