/* Is the service healthy? For GET /healthz (SPEC §5): the store answers a
 * read, and its writes work. */
#ifndef KW_CORE_HEALTH_H
#define KW_CORE_HEALTH_H

#include <stddef.h>

struct store;

/* 0 when the store answers and its writes work; otherwise
 * KW_ERR_UNAVAILABLE with reason (a short English sentence for operators:
 * "writes are failing: the disk is full", "a disk sync failed: restart
 * keywarden", "store unavailable"). While writes fail, a check starts one
 * small write in the background unless one is under way: the store learns
 * that writes work again only from a write. Costs one read while all is
 * well. */
int health_check(struct store *s, char *reason, size_t reasonlen);

#endif
