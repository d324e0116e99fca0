#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utmpx.h>

#include "agent/facts.h"
#include "util/str.h"

void facts_os_name(char *out, size_t outlen)
{
	static const char *const files[] = { "/etc/os-release", "/usr/lib/os-release" };
	char line[512];

	snprintf(out, outlen, "Linux");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "re");

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			char *v;
			size_t n;

			if (strncmp(line, "PRETTY_NAME=", 12))
				continue;
			v = line + 12;
			v[strcspn(v, "\n")] = '\0';
			n = strlen(v);
			if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
				v[n - 1] = '\0';
				v++;
			}
			if (*v && str_is_clean_text(v, outlen - 1))
				snprintf(out, outlen, "%s", v);
			break;
		}
		fclose(f);
		return;
	}
}

static int newest_first(const void *a, const void *b)
{
	const struct agent_logon *x = a, *y = b;

	return x->at < y->at ? 1 : x->at > y->at ? -1 : 0;
}

size_t facts_logons(const char *path, struct agent_logon *out, size_t max)
{
	struct utmpx *u;
	size_t n = 0;

	if (!max || utmpxname(path) < 0)
		return 0;
	setutxent();
	while ((u = getutxent())) {
		char user[sizeof(u->ut_user) + 1];
		bool remote;
		size_t i;

		if (u->ut_type != USER_PROCESS || !u->ut_user[0])
			continue;
		memcpy(user, u->ut_user, sizeof(u->ut_user));
		user[sizeof(u->ut_user)] = '\0';
		if (!str_is_clean_text(user, CHECKIN_TEXT_MAX))
			continue;
		remote = u->ut_host[0] && u->ut_host[0] != ':';
		for (i = 0; i < n; i++)
			if (out[i].remote == remote && !strcmp(out[i].user, user))
				break;
		if (i == n) {
			if (n == max) {
				/* Full: the oldest entry makes room for a newer one. */
				qsort(out, n, sizeof(*out), newest_first);
				if (out[n - 1].at >= u->ut_tv.tv_sec)
					continue;
				i = n - 1;
			} else {
				n++;
			}
			snprintf(out[i].user, sizeof(out[i].user), "%s", user);
			out[i].remote = remote;
			out[i].at = 0;
		}
		if (u->ut_tv.tv_sec > out[i].at)
			out[i].at = u->ut_tv.tv_sec;
	}
	endutxent();
	qsort(out, n, sizeof(*out), newest_first);
	return n;
}
