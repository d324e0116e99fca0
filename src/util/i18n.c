#include <libintl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kw_build.h"
#include "util/i18n.h"

#define DOMAIN "keywarden"

static locale_t sv_locale = (locale_t)0;
static _Thread_local enum lang current = LANG_EN;

static bool has_catalog(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/sv/LC_MESSAGES/" DOMAIN ".mo", dir);
	return access(path, R_OK) == 0;
}

bool i18n_init(char *msg, size_t msglen)
{
	const char *dirs[] = { getenv("KEYWARDEN_LOCALEDIR"), KW_LOCALEDIR, KW_BUILD_LOCALEDIR };
	const char *dir = NULL;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !dir; i++)
		if (dirs[i] && has_catalog(dirs[i]))
			dir = dirs[i];
	if (!dir) {
		snprintf(msg, msglen, "no Swedish catalog (%s.mo) found under %s or %s; pages "
			 "will be in English", DOMAIN, KW_LOCALEDIR, KW_BUILD_LOCALEDIR);
		return false;
	}
	bindtextdomain(DOMAIN, dir);
	bind_textdomain_codeset(DOMAIN, "UTF-8");
	if (!sv_locale)
		sv_locale = newlocale(LC_MESSAGES_MASK, "sv_SE.UTF-8", (locale_t)0);
	if (!sv_locale) {
		snprintf(msg, msglen, "the sv_SE.UTF-8 locale is not installed (run: localedef "
			 "-i sv_SE -f UTF-8 sv_SE.UTF-8); pages will be in English");
		return false;
	}
	return true;
}

void i18n_free(void)
{
	if (sv_locale)
		freelocale(sv_locale);
	sv_locale = (locale_t)0;
}

/* The language of one tag: "sv", "sv-SE", "sv_FI" → Swedish. */
static bool tag_lang(const char *tag, size_t len, enum lang *out)
{
	if (len >= 2 && !strncasecmp(tag, "sv", 2) && (len == 2 || tag[2] == '-' || tag[2] == '_')) {
		*out = LANG_SV;
		return true;
	}
	if (len >= 2 && !strncasecmp(tag, "en", 2) && (len == 2 || tag[2] == '-' || tag[2] == '_')) {
		*out = LANG_EN;
		return true;
	}
	return false;
}

enum lang i18n_negotiate(const char *choice, const char *cookie, const char *accept)
{
	enum lang l = LANG_EN, best_l = LANG_EN;
	double best_q = -1;

	if (choice && tag_lang(choice, strlen(choice), &l))
		return l;
	if (cookie && tag_lang(cookie, strlen(cookie), &l))
		return l;
	if (!accept)
		return LANG_EN;
	/* "sv-SE,sv;q=0.9,en;q=0.8": the supported tag with the highest q. */
	while (*accept) {
		size_t n = strcspn(accept, ",");
		size_t tl = strcspn(accept, ";,");
		const char *p = accept;
		double q = 1.0;

		while (tl && *p == ' ')
			p++, tl--;
		while (tl && p[tl - 1] == ' ')
			tl--;
		const char *qs = memchr(accept, ';', n);
		if (qs) {
			const char *qv = strstr(qs, "q=");

			if (qv && qv < accept + n)
				q = strtod(qv + 2, NULL);
		}
		if (q > 0 && q > best_q && tag_lang(p, tl, &l)) {
			best_q = q;
			best_l = l;
		}
		accept += n;
		if (*accept == ',')
			accept++;
	}
	return best_l;
}

const char *i18n_code(enum lang l)
{
	return l == LANG_SV ? "sv" : "en";
}

void i18n_use(enum lang l)
{
	current = (l == LANG_SV && sv_locale) ? LANG_SV : LANG_EN;
	uselocale(current == LANG_SV ? sv_locale : LC_GLOBAL_LOCALE);
}

const char *i18n_gettext(const char *msgid)
{
	if (current == LANG_EN)
		return msgid;
	return dgettext(DOMAIN, msgid);
}
