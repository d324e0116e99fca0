/* Time: UTC seconds since the epoch, ISO 8601 text. */
#ifndef KW_UTIL_TIMEUTIL_H
#define KW_UTIL_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define TIME_ISO_LEN 21 /* "2026-11-20T08:00:00Z" + NUL */

int64_t time_now(void);            /* wall clock, seconds */
int64_t time_mono_ms(void);        /* monotonic, milliseconds */
int64_t time_mono_us(void);        /* monotonic, microseconds */

/* "YYYY-MM-DDTHH:MM:SSZ"; out must hold TIME_ISO_LEN bytes. */
void time_format_iso(int64_t t, char out[TIME_ISO_LEN]);

/* Parses "YYYY-MM-DDTHH:MM:SSZ" (optional fraction, "Z" or "+00:00"),
 * or a date "YYYY-MM-DD" (midnight UTC). Returns 0 or KW_ERR_INVALID. */
int time_parse_iso(const char *s, int64_t *out);

#endif
