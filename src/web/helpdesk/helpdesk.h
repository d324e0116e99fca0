/* The help-desk portal (SPEC §4) under /helpdesk: its routes admit only
 * the roles they declare (web/app.c). */
#ifndef KW_WEB_HELPDESK_HELPDESK_H
#define KW_WEB_HELPDESK_HELPDESK_H

#include "http/server.h"

/* GET /helpdesk: what the signed-in user's roles let them do here. */
int helpdesk_home(void *app, struct http_request *req, struct http_response *resp);

#endif
