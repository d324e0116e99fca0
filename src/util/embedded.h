/* Files compiled into the program by tools/embed.py (migrations,
 * templates, static assets). */
#ifndef KW_UTIL_EMBEDDED_H
#define KW_UTIL_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
	const char *name;               /* path relative to its folder */
	const unsigned char *data;      /* NUL-terminated */
	size_t size;                    /* without the NUL */
};

/* The entry named name in a table ended by a NULL name, or NULL. */
const struct embedded_file *embedded_find(const struct embedded_file *table,
					  const char *name);

#endif
