/* The portal's CSS and JavaScript, compiled into the program (static/):
 * every asset is served by keywarden itself, no CDN. */
#ifndef KW_WEB_STATIC_H
#define KW_WEB_STATIC_H

#include "http/server.h"

int static_asset(void *app, struct http_request *req, struct http_response *resp);

#endif
