/* The self-service portal (SPEC §3): sign in, accept the notice, enter the
 * first characters of the recovery key ID and a reason, get the key of a
 * computer you have signed in to locally. */
#ifndef KW_WEB_PORTAL_PORTAL_H
#define KW_WEB_PORTAL_PORTAL_H

#include "http/server.h"

int portal_home(void *app, struct http_request *req, struct http_response *resp);
int portal_old_bookmark(void *app, struct http_request *req, struct http_response *resp);
int portal_login_form(void *app, struct http_request *req, struct http_response *resp);
int portal_login(void *app, struct http_request *req, struct http_response *resp);
int portal_logout(void *app, struct http_request *req, struct http_response *resp);
int portal_notice_form(void *app, struct http_request *req, struct http_response *resp);
int portal_notice(void *app, struct http_request *req, struct http_response *resp);
int portal_recover_form(void *app, struct http_request *req, struct http_response *resp);
int portal_recover(void *app, struct http_request *req, struct http_response *resp);
int portal_keepalive(void *app, struct http_request *req, struct http_response *resp);
int portal_expired(void *app, struct http_request *req, struct http_response *resp);

#endif
