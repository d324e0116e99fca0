#include <string.h>

#include "http/template.h"
#include "util/buf.h"
#include "util/embedded.h"
#include "util/err.h"

extern const struct embedded_file templates_html[];

#define MAX_DEPTH 8
#define TAG_MAX 256

void tpl_init(struct tpl *t)
{
	t->n = 0;
}

static void set(struct tpl *t, const char *name, const char *value, bool raw)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name)) {
			t->v[i].value = value;
			t->v[i].raw = raw;
			return;
		}
	if (t->n < TPL_MAX_VARS) {
		t->v[t->n].name = name;
		t->v[t->n].value = value;
		t->v[t->n++].raw = raw;
	}
}

void tpl_set(struct tpl *t, const char *name, const char *value)
{
	set(t, name, value, false);
}

void tpl_set_raw(struct tpl *t, const char *name, const char *html)
{
	set(t, name, html, true);
}

static const char *lookup(const struct tpl *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->v[i].name) == len && !memcmp(t->v[i].name, name, len))
			return t->v[i].value;
	return NULL;
}

/* Finds the {{/name}} closing a section opened just before s, skipping
 * nested sections of the same name. */
static const char *section_end(const char *s, const char *end, const char *name, size_t len,
			       const char **after)
{
	int depth = 1;

	while (s < end) {
		const char *tag = strstr(s, "{{");
		const char *close;

		if (!tag || tag >= end)
			return NULL;
		close = strstr(tag, "}}");
		if (!close || close >= end)
			return NULL;
		if ((tag[2] == '#' || tag[2] == '^') && (size_t)(close - tag - 3) == len &&
		    !memcmp(tag + 3, name, len))
			depth++;
		else if (tag[2] == '/' && (size_t)(close - tag - 3) == len &&
			 !memcmp(tag + 3, name, len) && --depth == 0) {
			*after = close + 2;
			return tag;
		}
		s = close + 2;
	}
	return NULL;
}

static int render(const char *s, const char *end, const struct tpl *t,
		  const char *(*translate)(const char *), struct buf *out, int depth);

static int include(const char *name, size_t len, const struct tpl *t,
		   const char *(*translate)(const char *), struct buf *out, int depth)
{
	char file[TAG_MAX];
	const struct embedded_file *f;

	if (len >= sizeof(file) || depth >= MAX_DEPTH)
		return KW_ERR_INVALID;
	memcpy(file, name, len);
	file[len] = '\0';
	if (!(f = embedded_find(templates_html, file)))
		return KW_ERR_NOT_FOUND;
	return render((const char *)f->data, (const char *)f->data + f->size, t, translate,
		      out, depth + 1);
}

static int render(const char *s, const char *end, const struct tpl *t,
		  const char *(*translate)(const char *), struct buf *out, int depth)
{
	int rc;

	while (s < end) {
		const char *tag = strstr(s, "{{"), *close, *name, *after;
		size_t len;

		if (!tag || tag >= end)
			return buf_append(out, s, (size_t)(end - s));
		if ((rc = buf_append(out, s, (size_t)(tag - s))) < 0)
			return rc;
		if (tag[2] == '{') {          /* {{{raw}}} */
			close = strstr(tag, "}}}");
			if (!close || close >= end)
				return KW_ERR_INVALID;
			name = lookup(t, tag + 3, (size_t)(close - tag - 3));
			if (name && (rc = buf_puts(out, name)) < 0)
				return rc;
			s = close + 3;
			continue;
		}
		close = strstr(tag, "}}");
		if (!close || close >= end || close - tag - 2 > TAG_MAX)
			return KW_ERR_INVALID;
		name = tag + 3;
		len = (size_t)(close - tag - 3);
		switch (tag[2]) {
		case '#':
		case '^': {
			const char *v = lookup(t, name, len);
			const char *body = close + 2;
			const char *stop = section_end(body, end, name, len, &after);
			bool show = v && *v;

			if (!stop)
				return KW_ERR_INVALID;
			if (show == (tag[2] == '#') &&
			    (rc = render(body, stop, t, translate, out, depth)) < 0)
				return rc;
			s = after;
			continue;
		}
		case '_': {
			char msgid[TAG_MAX + 1];
			const char *text;

			while (len && *name == ' ')
				name++, len--;
			memcpy(msgid, name, len);
			msgid[len] = '\0';
			text = translate ? translate(msgid) : msgid;
			if ((rc = buf_put_html(out, text, strlen(text))) < 0)
				return rc;
			break;
		}
		case '>':
			while (len && *name == ' ')
				name++, len--;
			if ((rc = include(name, len, t, translate, out, depth)) < 0)
				return rc;
			break;
		case '/':
			return KW_ERR_INVALID;   /* a close without an open */
		default: {
			const char *v = lookup(t, tag + 2, (size_t)(close - tag - 2));

			if (v && (rc = buf_put_html(out, v, strlen(v))) < 0)
				return rc;
			break;
		}
		}
		s = close + 2;
	}
	return 0;
}

int tpl_render(const char *name, const struct tpl *t,
	       const char *(*translate)(const char *), struct buf *out)
{
	return include(name, strlen(name), t, translate, out, 0);
}
