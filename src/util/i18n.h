/* Languages of the web pages: English (the message IDs) and Swedish, through
 * gettext catalogs (po/). The language is chosen per request from a
 * ?lang= switch, the language cookie or Accept-Language, and set for the
 * handling thread only (uselocale), so concurrent requests do not mix.
 * Swedish needs the sv_SE.UTF-8 locale on the system (tools/ install it). */
#ifndef KW_UTIL_I18N_H
#define KW_UTIL_I18N_H

#include <stdbool.h>

enum lang { LANG_EN = 0, LANG_SV = 1 };
#define LANG_COUNT 2

/* Binds the catalog folder (KEYWARDEN_LOCALEDIR, the installed one, or the
 * build tree's) and prepares the locales. Returns false when Swedish is not
 * available (its pages then show English), with the reason in msg. */
bool i18n_init(char *msg, size_t msglen);
void i18n_free(void);

/* The language for a request: an explicit choice ("sv", "en") wins, then the
 * cookie value, then the first supported tag of an Accept-Language header. */
enum lang i18n_negotiate(const char *choice, const char *cookie, const char *accept);

/* "en", "sv": for lang="…", file suffixes and config variants. */
const char *i18n_code(enum lang l);

/* Makes this thread translate into l until the next call. */
void i18n_use(enum lang l);

/* The translation of msgid in this thread's language. */
const char *i18n_gettext(const char *msgid) __attribute__((format_arg(1)));

#define _(s) i18n_gettext(s)
#define N_(s) (s)

#endif
