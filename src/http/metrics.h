/* Counters for GET /metrics (Prometheus text format): requests and their
 * latency by route and status, escrowed keys, recovery outcomes by source
 * and result (counted by core/recover), store errors and the store's write
 * health (store_last_state). Lock-free; safe from any thread. */
#ifndef KW_HTTP_METRICS_H
#define KW_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct route;

/* Declares the routes (ended by a NULL method) once, before any request. */
int metrics_init(const struct route *routes);
void metrics_free(void);

/* route_index: position in the table, or -1 for a path not routed. */
void metrics_request(int route_index, int status, int64_t micros);
void metrics_escrowed(uint64_t keys);

int metrics_render(struct buf *out);

#endif
