/* Makes jansson wipe every block it frees: parsed request bodies hold
 * recovery passwords and secrets. */
#ifndef KW_UTIL_JSONWIPE_H
#define KW_UTIL_JSONWIPE_H

/* Installs the allocator; call once before any JSON is parsed. */
void jsonwipe_install(void);

/* Frees what jansson allocated for the caller (json_dumps output) with
 * jansson's current allocator. */
void json_free_string(char *s);

#endif
