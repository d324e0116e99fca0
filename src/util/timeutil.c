#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/err.h"
#include "util/timeutil.h"

int64_t time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

int64_t time_mono_ms(void)
{
	return time_mono_us() / 1000;
}

int64_t time_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void time_format_iso(int64_t t, char out[TIME_ISO_LEN])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) ||
	    strftime(out, TIME_ISO_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, TIME_ISO_LEN, "1970-01-01T00:00:00Z");
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int time_parse_iso(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h = 0, mi = 0, se = 0;
	struct tm tm;
	size_t n = strlen(s);
	const char *p;

	if (n < 10 || n > 40 || digits(s, 4, &y) || s[4] != '-' ||
	    digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d))
		return KW_ERR_INVALID;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
		return KW_ERR_INVALID;
	if (n > 10) {
		if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || n < 20 ||
		    digits(s + 11, 2, &h) || s[13] != ':' ||
		    digits(s + 14, 2, &mi) || s[16] != ':' ||
		    digits(s + 17, 2, &se))
			return KW_ERR_INVALID;
		if (h > 23 || mi > 59 || se > 60)
			return KW_ERR_INVALID;
		p = s + 19;
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return KW_ERR_INVALID;
			while (isdigit((unsigned char)*p))
				p++;
		}
		if (strcmp(p, "Z") && strcmp(p, "z") && strcmp(p, "+00:00"))
			return KW_ERR_INVALID;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	/* The date is valid; a leap second :60 becomes the next minute. */
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return KW_ERR_INVALID;
	*out = (int64_t)t;
	return 0;
}
