#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http/template.h"
#include "util/buf.h"
#include "util/embedded.h"
#include "util/err.h"

extern const struct embedded_file templates_html[];

#define MAX_DEPTH 8
#define TAG_MAX 256

/* Templates are parsed once into a tree of nodes; rendering walks it. */
enum node_kind {
	N_TEXT,        /* s, len: literal text */
	N_VAR,         /* s, len: a variable, escaped */
	N_RAW,         /* s, len: a variable, as is */
	N_SECTION,     /* s, len: name; children when set */
	N_INVERTED,    /* s, len: name; children when not set */
	N_TRANSLATE,   /* msgid: a NUL-terminated copy of the text */
	N_INCLUDE,     /* file: index into templates_html */
};

struct node {
	enum node_kind kind;
	const char *s;
	size_t len;
	char *msgid;
	size_t file;
	struct node *child;    /* sections: first child */
	struct node *next;
};

struct compiled {
	struct node *root;
	int rc;                /* KW_ERR_INVALID when the template is broken */
};

static struct compiled *compiled;
static size_t ntemplates;
static pthread_once_t once = PTHREAD_ONCE_INIT;

void tpl_init(struct tpl *t)
{
	t->n = 0;
	t->overflow = false;
}

static void set_var(struct tpl *t, const char *name, const char *value, bool raw,
		    const struct tpl *items, size_t nitems)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			break;
	if (i == t->n) {
		if (t->n == TPL_MAX_VARS) {
			t->overflow = true;
			return;
		}
		t->v[i].name = name;
		t->v[i].len = strlen(name);
		t->n++;
	}
	t->v[i].value = value;
	t->v[i].raw = raw;
	t->v[i].items = items;
	t->v[i].nitems = nitems;
}

static void set(struct tpl *t, const char *name, const char *value, bool raw)
{
	set_var(t, name, value, raw, NULL, 0);
}

void tpl_set_list(struct tpl *t, const char *name, const struct tpl *items, size_t n)
{
	set_var(t, name, n ? "1" : NULL, false, items, n);
}

void tpl_set(struct tpl *t, const char *name, const char *value)
{
	set(t, name, value, false);
}

void tpl_set_raw(struct tpl *t, const char *name, const char *html)
{
	set(t, name, html, true);
}

/* The variables in sight while rendering: a list's item, then the page's. */
struct scope {
	const struct tpl *t;
	const struct scope *up;
};

static const struct tpl *find(const struct scope *sc, const char *name, size_t len, size_t *at)
{
	for (; sc; sc = sc->up)
		for (size_t i = 0; i < sc->t->n; i++)
			if (sc->t->v[i].len == len && !memcmp(sc->t->v[i].name, name, len)) {
				*at = i;
				return sc->t;
			}
	return NULL;
}

static const char *lookup(const struct scope *sc, const char *name, size_t len)
{
	size_t i;
	const struct tpl *t = find(sc, name, len, &i);

	return t ? t->v[i].value : NULL;
}

/* ---- parsing ---- */

static size_t file_index(const char *name, size_t len)
{
	for (size_t i = 0; templates_html[i].name; i++)
		if (strlen(templates_html[i].name) == len &&
		    !memcmp(templates_html[i].name, name, len))
			return i;
	return (size_t)-1;
}

static struct node *add(struct node ***tail, enum node_kind kind, const char *s, size_t len)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->kind = kind;
	n->s = s;
	n->len = len;
	**tail = n;
	*tail = &n->next;
	return n;
}

/* Parses [*p, end) into a list until {{/close}} (or the end when close is
 * NULL); *p is left after what was consumed. */
static int parse(const char **p, const char *end, const char *close, size_t closelen,
		 struct node **out, int depth)
{
	struct node **tail = out;
	const char *s = *p;

	if (depth > MAX_DEPTH)
		return KW_ERR_INVALID;
	while (s < end) {
		const char *tag = memmem(s, (size_t)(end - s), "{{", 2);
		const char *name, *stop;
		struct node *n;
		size_t len;
		int rc;

		if (!tag) {
			if (!add(&tail, N_TEXT, s, (size_t)(end - s)))
				return KW_ERR_NOMEM;
			s = end;
			break;
		}
		if (tag > s && !add(&tail, N_TEXT, s, (size_t)(tag - s)))
			return KW_ERR_NOMEM;
		if (tag[2] == '{') {
			stop = memmem(tag, (size_t)(end - tag), "}}}", 3);
			if (!stop || stop - tag - 3 > TAG_MAX)
				return KW_ERR_INVALID;
			if (!add(&tail, N_RAW, tag + 3, (size_t)(stop - tag - 3)))
				return KW_ERR_NOMEM;
			s = stop + 3;
			continue;
		}
		stop = memmem(tag, (size_t)(end - tag), "}}", 2);
		if (!stop || stop - tag - 2 > TAG_MAX)
			return KW_ERR_INVALID;
		name = tag + 3;
		len = (size_t)(stop - tag - 3);
		s = stop + 2;
		switch (tag[2]) {
		case '#':
		case '^':
			if (!(n = add(&tail, tag[2] == '#' ? N_SECTION : N_INVERTED, name, len)))
				return KW_ERR_NOMEM;
			if ((rc = parse(&s, end, name, len, &n->child, depth + 1)) < 0)
				return rc;
			break;
		case '/':
			if (!close || len != closelen || memcmp(name, close, len))
				return KW_ERR_INVALID;
			*p = s;
			return 0;
		case '_':
		case '>':
			while (len && *name == ' ')
				name++, len--;
			if (tag[2] == '>') {
				if (!(n = add(&tail, N_INCLUDE, name, len)))
					return KW_ERR_NOMEM;
				if ((n->file = file_index(name, len)) == (size_t)-1)
					return KW_ERR_INVALID;
				break;
			}
			if (!(n = add(&tail, N_TRANSLATE, name, len)) || !(n->msgid = strndup(name, len)))
				return KW_ERR_NOMEM;
			break;
		default:
			if (!add(&tail, N_VAR, tag + 2, (size_t)(stop - tag - 2)))
				return KW_ERR_NOMEM;
			break;
		}
	}
	*p = s;
	return close ? KW_ERR_INVALID : 0;    /* a section left open */
}

static void compile_all(void)
{
	while (templates_html[ntemplates].name)
		ntemplates++;
	if (!(compiled = calloc(ntemplates, sizeof(*compiled))))
		return;
	for (size_t i = 0; i < ntemplates; i++) {
		const char *p = (const char *)templates_html[i].data;

		compiled[i].rc = parse(&p, p + templates_html[i].size, NULL, 0,
				       &compiled[i].root, 0);
	}
}

/* ---- rendering ---- */

static int render(const struct node *n, const struct scope *t,
		  const char *(*translate)(const char *), struct buf *out, int depth)
{
	int rc = 0;

	for (; n && rc == 0; n = n->next) {
		const struct tpl *owner;
		const char *v;
		size_t at;

		switch (n->kind) {
		case N_TEXT:
			rc = buf_append(out, n->s, n->len);
			break;
		case N_VAR:
			if ((v = lookup(t, n->s, n->len)))
				rc = buf_put_html(out, v, strlen(v));
			break;
		case N_RAW:
			/* Trusted only when the handler said so (tpl_set_raw). */
			if ((owner = find(t, n->s, n->len, &at)) && (v = owner->v[at].value))
				rc = owner->v[at].raw ? buf_puts(out, v) :
					buf_put_html(out, v, strlen(v));
			break;
		case N_SECTION:
		case N_INVERTED:
			owner = find(t, n->s, n->len, &at);
			if (n->kind == N_SECTION && owner && owner->v[at].items) {
				if (depth >= MAX_DEPTH)
					return KW_ERR_INVALID;
				for (size_t k = 0; k < owner->v[at].nitems && rc == 0; k++) {
					struct scope item = { &owner->v[at].items[k], t };

					if (item.t->overflow)
						return KW_ERR_TOO_LARGE;
					rc = render(n->child, &item, translate, out, depth + 1);
				}
				break;
			}
			v = owner ? owner->v[at].value : NULL;
			if ((v && *v) == (n->kind == N_SECTION))
				rc = render(n->child, t, translate, out, depth);
			break;
		case N_TRANSLATE:
			v = translate ? translate(n->msgid) : n->msgid;
			rc = buf_put_html(out, v, strlen(v));
			break;
		case N_INCLUDE:
			if (depth >= MAX_DEPTH || compiled[n->file].rc < 0)
				return KW_ERR_INVALID;
			rc = render(compiled[n->file].root, t, translate, out, depth + 1);
			break;
		}
	}
	return rc;
}

int tpl_render(const char *name, const struct tpl *t,
	       const char *(*translate)(const char *msgid), struct buf *out)
{
	struct scope page = { t, NULL };
	size_t i;

	pthread_once(&once, compile_all);
	if (!compiled)
		return KW_ERR_NOMEM;
	if ((i = file_index(name, strlen(name))) == (size_t)-1)
		return KW_ERR_NOT_FOUND;
	if (compiled[i].rc < 0)
		return compiled[i].rc;
	if (t->overflow)
		return KW_ERR_TOO_LARGE;
	return render(compiled[i].root, &page, translate, out, 0);
}
