/* The running application: configuration, store and master key shared by
 * every handler, and the route table of the whole server. */
#ifndef KW_WEB_APP_H
#define KW_WEB_APP_H

#include <stdint.h>

#include "http/server.h"

struct config;
struct store;
struct seal;

/* What a route requires, checked by app_authorize before its handler. */
enum access {
	ACCESS_PUBLIC = 0,   /* anyone */
	ACCESS_DEVICE,       /* a device secret (checked by the API handlers) */
};

#define CHECKIN_INTERVAL_S 5400

struct app {
	const struct config *cfg;
	struct store *store;
	struct seal *seal;
};

/* Loads the master key, opens (and migrates) the store and checks that the
 * key is the one the database was sealed with. msg says what failed. */
int app_open(struct app *app, const struct config *cfg, char *msg, size_t msglen);
void app_close(struct app *app);

/* Checks the master key against the store: records its fingerprint when
 * the store has none; finishes an interrupted rekey (KEY_FILE.new). */
int app_check_key(struct app *app, char *msg, size_t msglen);

extern const struct route app_routes[];

int app_authorize(void *app, struct http_request *req, struct http_response *resp);

#endif
