/* HTML templates compiled into the program (the templates folder), with a
 * small mustache-like syntax:
 *   {{name}}             the variable, HTML-escaped
 *   {{{name}}}           the variable as trusted HTML when it was set with
 *                        tpl_set_raw (built with escaping); escaped when
 *                        it was set with tpl_set
 *   {{#name}}…{{/name}}  the part when the variable is set and not empty;
 *                        for a list (tpl_set_list), the part once per item,
 *                        with the item's variables before the page's
 *   {{^name}}…{{/name}}  the part when it is not
 *   {{_ text}}           text translated (gettext) and escaped
 *   {{> file.html}}      another template
 * Unknown variables render as nothing. */
#ifndef KW_HTTP_TEMPLATE_H
#define KW_HTTP_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#define TPL_MAX_VARS 48

struct buf;

struct tpl {
	struct {
		const char *name;
		size_t len;           /* of name */
		const char *value;    /* borrowed: must outlive tpl_render */
		bool raw;
		const struct tpl *items;   /* a list: borrowed, nitems long */
		size_t nitems;
	} v[TPL_MAX_VARS];
	size_t n;
	bool overflow;            /* a variable did not fit: tpl_render refuses */
};

void tpl_init(struct tpl *t);
/* Sets (or replaces) a variable; value NULL unsets it. */
void tpl_set(struct tpl *t, const char *name, const char *value);
void tpl_set_raw(struct tpl *t, const char *name, const char *html);
/* Sets a list (table rows): {{#name}}…{{/name}} renders once per item, each
 * item's variables found before t's; {{^name}} when n is 0. items are
 * borrowed and must outlive tpl_render. */
void tpl_set_list(struct tpl *t, const char *name, const struct tpl *items, size_t n);

/* Renders template name into out; translate maps {{_ text}} (NULL: as is).
 * KW_ERR_NOT_FOUND for an unknown template, KW_ERR_INVALID for a syntax
 * error (a bug in the template), KW_ERR_TOO_LARGE when t or a list's item
 * was given more than TPL_MAX_VARS variables (a bug in the handler). */
int tpl_render(const char *name, const struct tpl *t,
	       const char *(*translate)(const char *msgid), struct buf *out);

#endif
