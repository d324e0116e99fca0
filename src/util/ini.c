#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <ini.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"

#define TEN_YEARS (3650 * INT64_C(86400))

#define FIELD(obj, k, type) ((type *)(void *)((char *)(obj) + (k)->off))
#define CFIELD(obj, k, type) \
	((const type *)(const void *)((const char *)(obj) + (k)->off))

/* "key = value", or "key=value" where the spaced form would not load back:
 * a value starting with ';' (newer inih takes " ;" for a comment) or a line
 * that the two spaces could push past libinih's line limit. */
#define DUMP_SPACED_MAX 160

const char *ini_quote(const char *s, char *tmp, size_t tmplen)
{
	size_t n = 0;

	for (; *s && n + 1 < tmplen; s++, n++) {
		unsigned char c = (unsigned char)*s;

		tmp[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	tmp[n] = '\0';
	if (*s && tmplen > 4) {
		n = tmplen - 4;
		while (n > 0 && ((unsigned char)tmp[n] & 0xc0) == 0x80)
			n--;
		memcpy(tmp + n, "...", 4);
	}
	return tmp;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	       c == '\v';
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_digit(*s))
			return false;
	return true;
}

int ini_each_item(char *s, char sep, int (*fn)(char *item, void *arg), void *arg)
{
	char *item = s, *next;
	int r;

	for (; item; item = next) {
		next = strchr(item, sep);
		if (next)
			*next++ = '\0';
		str_trim(item);
		if (*item && (r = fn(item, arg)) < 0)
			return r;
	}
	return 0;
}

int ini_check_nonempty(const char *v, char *why, size_t whylen)
{
	if (*v)
		return 0;
	str_msg(why, whylen, "must not be empty");
	return KW_ERR_INVALID;
}

/* ---- addresses ---- */

int ini_cidr_parse(const char *s, struct ini_cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s), len;
	int64_t bits;

	memset(out, 0, sizeof(*out));
	if (n == 0 || n >= sizeof(addr))
		return KW_ERR_INVALID;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, out->addr) == 1)
		out->family = AF_INET6;
	else
		return KW_ERR_INVALID;
	len = out->family == AF_INET ? 4 : 16;
	out->bits = (unsigned)len * 8;
	if (slash) {
		if (!all_digits(slash + 1) || str_to_i64(slash + 1, 0, (int64_t)len * 8, &bits) < 0)
			return KW_ERR_INVALID;
		out->bits = (unsigned)bits;
	}
	/* "10.0.0.1/8" is refused rather than read as 10.0.0.0/8: in a list
	 * of trusted addresses a typo must not widen it silently. */
	for (size_t i = 0; i < len; i++) {
		unsigned keep = out->bits > i * 8 ? out->bits - (unsigned)i * 8 : 0;
		unsigned mask = keep >= 8 ? 0xff : (0xff00u >> keep) & 0xff;

		if (out->addr[i] & ~mask)
			return KW_ERR_INVALID;
	}
	/* A range of every address trusts anyone. */
	if (out->bits == 0)
		return KW_ERR_INVALID;
	/* ::ffff:10.0.0.5 is 10.0.0.5: peers are compared as IPv4. */
	if (out->family == AF_INET6 && out->bits >= 96 &&
	    !memcmp(out->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->bits -= 96;
	}
	return 0;
}

bool ini_cidr_contains(const struct ini_cidr *range, int family,
		       const unsigned char *addr)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned bits = range->bits;

	if (family == AF_INET6 && range->family == AF_INET && !memcmp(addr, mapped, 12)) {
		family = AF_INET;
		addr += 12;
	}
	if (family != range->family)
		return false;
	for (size_t i = 0; bits > 0; i++, bits = bits > 8 ? bits - 8 : 0) {
		unsigned mask = bits >= 8 ? 0xff : (0xff00u >> bits) & 0xff;

		if ((addr[i] ^ range->addr[i]) & mask)
			return false;
	}
	return true;
}

struct cidr_list {
	struct ini_cidr *out;   /* NULL: count only */
	size_t n, max;
	char *bad;
};

static int cidr_item(char *item, void *arg)
{
	struct cidr_list *l = arg;
	struct ini_cidr c;

	l->bad = item;
	if (ini_cidr_parse(item, &c) < 0 || l->n >= l->max)
		return KW_ERR_INVALID;
	if (l->out)
		l->out[l->n] = c;
	l->n++;
	return 0;
}

int ini_cidrs_parse(const char *text, struct ini_cidr *out, size_t max)
{
	struct cidr_list l = { out, 0, max, NULL };
	char *copy = strdup(text);
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	r = ini_each_item(copy, ',', cidr_item, &l);
	free(copy);
	return r < 0 ? r : (int)l.n;
}

static int check_cidrs(const char *v, size_t max, char *why, size_t whylen)
{
	struct cidr_list l = { NULL, 0, max, NULL };
	char *copy = strdup(v), q[96];
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	r = ini_each_item(copy, ',', cidr_item, &l);
	if (r < 0 && l.n >= max)
		str_msg(why, whylen, "more than %zu entries", max);
	else if (r < 0)
		str_msg(why, whylen, "'%s' is not an IP address or CIDR range such as "
			"10.0.0.0/8 with the host bits zero (list them separated by commas)",
			ini_quote(l.bad, q, sizeof(q)));
	free(copy);
	return r;
}

/* ---- values ---- */

/* "sv", "sve", "sv-SE", "es-419"; stored as "sv-SE" whatever the case. */
static int lang_tag(const char *s, char out[8])
{
	size_t i = 0, j;

	while (is_alpha(s[i]))
		i++;
	if (i < 2 || i > 3)
		return KW_ERR_INVALID;
	if (s[i] == '-') {
		j = i + 1;
		if (is_alpha(s[j]) && is_alpha(s[j + 1]) && !s[j + 2])
			;
		else if (is_digit(s[j]) && is_digit(s[j + 1]) &&
			 is_digit(s[j + 2]) && !s[j + 3])
			;
		else
			return KW_ERR_INVALID;
	} else if (s[i]) {
		return KW_ERR_INVALID;
	}
	for (j = 0; s[j]; j++) {
		char c = s[j];

		if (j < i && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (j > i && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		out[j] = c;
	}
	out[j] = '\0';
	return 0;
}

/* Replaces *slot with a copy of v (NULL for "" when opt). */
static int set_string(char **slot, const char *v, bool opt)
{
	char *copy = NULL;

	if (!opt || *v) {
		copy = strdup(v);
		if (!copy)
			return KW_ERR_NOMEM;
	}
	free(*slot);
	*slot = copy;
	return 0;
}

static int set_text(struct ini_text *t, const char *lang, const char *name,
		    const char *v, char *why, size_t whylen)
{
	size_t i;

	if (!lang)
		return set_string(&t->def, v, false);
	for (i = 0; i < t->nvar; i++)
		if (str_ieq(t->var[i].lang, lang))
			return set_string(&t->var[i].text, v, false);
	if (t->nvar == INI_TEXT_LANGS) {
		str_msg(why, whylen, "%s: more than %d language variants",
			name, INI_TEXT_LANGS);
		return KW_ERR_INVALID;
	}
	if (set_string(&t->var[i].text, v, false) < 0)
		return KW_ERR_NOMEM;
	memcpy(t->var[i].lang, lang, strlen(lang) + 1);
	t->nvar++;
	return 0;
}

static int parse_duration(const char *v, int64_t min, int64_t max,
			  int64_t *out, const char *name, char *why,
			  size_t whylen)
{
	char q[96], lo[24], hi[24];
	int64_t d;

	if (str_to_duration(v, INT64_MAX, &d) < 0) {
		str_msg(why, whylen, "%s: '%s' is not a duration (use e.g. 90s, "
			"5m, 1h%s)", name, ini_quote(v, q, sizeof(q)),
			min == 0 ? " or 0" : " or 30d");
		return KW_ERR_INVALID;
	}
	if (d < min || d > max) {
		str_format_duration(min, lo, sizeof(lo));
		str_format_duration(max, hi, sizeof(hi));
		str_msg(why, whylen, "%s: '%s' is out of range (%s to %s)", name,
			ini_quote(v, q, sizeof(q)), lo, hi);
		return KW_ERR_INVALID;
	}
	*out = d;
	return 0;
}

static int parse_rate(const char *v, struct ini_rate *out,
		      const char *name, char *why, size_t whylen)
{
	char num[16], q[96];
	const char *slash = strchr(v, '/');
	size_t n = slash ? (size_t)(slash - v) : 0;
	int64_t count, window;

	if (slash && n > 0 && n < sizeof(num)) {
		memcpy(num, v, n);
		num[n] = '\0';
		str_trim(num);
		if (all_digits(num) &&
		    str_to_i64(num, 1, 1000000, &count) == 0 &&
		    str_to_duration(slash + 1 + strspn(slash + 1, " \t"),
				    TEN_YEARS, &window) == 0 &&
		    window > 0) {
			out->count = count;
			out->window = window;
			return 0;
		}
	}
	str_msg(why, whylen, "%s: '%s' is not a rate (use COUNT/DURATION, e.g. "
		"5/15m, with COUNT from 1 to 1000000)", name,
		ini_quote(v, q, sizeof(q)));
	return KW_ERR_INVALID;
}

/* why = "name: reason", or the reason alone when it names the key itself. */
static void give_reason(char *why, size_t whylen, const char *name,
			const char *reason)
{
	size_t n = strlen(name);

	if (!strncmp(reason, name, n) && (reason[n] == ' ' || reason[n] == ':'))
		str_msg(why, whylen, "%s", reason);
	else
		str_msg(why, whylen, "%s: %s", name, reason);
}

struct list_parse {
	const struct ini_key *k;
	char *item[INI_LIST_MAX];
	size_t n;
	char reason[320];
};

static int list_item(char *item, void *arg)
{
	struct list_parse *l = arg;
	char q[96];
	int r;

	if (l->k->check && (r = l->k->check(item, l->reason, sizeof(l->reason))) < 0)
		return r;
	for (size_t i = 0; i < l->n; i++) {
		if (!strcasecmp(l->item[i], item)) {
			str_msg(l->reason, sizeof(l->reason), "'%s' is listed twice",
				ini_quote(item, q, sizeof(q)));
			return KW_ERR_INVALID;
		}
	}
	if (l->n >= (size_t)l->k->max || l->n >= INI_LIST_MAX) {
		str_msg(l->reason, sizeof(l->reason), "more than %lld names",
			(long long)l->k->max);
		return KW_ERR_INVALID;
	}
	if (!(l->item[l->n] = strdup(item)))
		return KW_ERR_NOMEM;
	for (char *p = l->item[l->n]; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	l->n++;
	return 0;
}

static int set_list(struct ini_list *list, const struct ini_key *k,
		    const char *name, const char *v, char *why, size_t whylen)
{
	struct list_parse l = { .k = k };
	char *copy = strdup(v);
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	r = ini_each_item(copy, ',', list_item, &l);
	if (r == 0 && l.n < (size_t)k->min) {
		if (k->min == 1)
			str_msg(l.reason, sizeof(l.reason), "at least one name is needed");
		else
			str_msg(l.reason, sizeof(l.reason), "at least %lld names are needed",
				(long long)k->min);
		r = KW_ERR_INVALID;
	}
	if (r == KW_ERR_INVALID)
		give_reason(why, whylen, name, l.reason);
	if (r == 0) {
		for (size_t i = 0; i < INI_LIST_MAX; i++) {
			free(list->item[i]);
			list->item[i] = l.item[i];
			l.item[i] = NULL; /* owned by list */
		}
		list->n = l.n;
	}
	for (size_t i = 0; i < INI_LIST_MAX; i++)
		free(l.item[i]);
	free(copy);
	return r;
}

/* Sets key k (its index-th name for INI_NAMED; variant lang, or NULL) from
 * text v; name is the key as written, for messages. KW_ERR_INVALID with
 * why, or KW_ERR_NOMEM. */
static int key_set(void *obj, const struct ini_key *k, size_t index,
		   const char *lang, const char *name, const char *v, char *why,
		   size_t whylen)
{
	char q[96], reason[320];
	int r;

	if (*v && !str_is_clean_text(v, INI_LINE_MAX)) {
		str_msg(why, whylen, "%s: the value has control characters or is "
			"not UTF-8", name);
		return KW_ERR_INVALID;
	}
	if (k->check && k->type != INI_LIST) {
		r = k->check(v, reason, sizeof(reason));
		if (r == KW_ERR_INVALID)
			give_reason(why, whylen, name, reason);
		if (r < 0)
			return r;
	}
	switch (k->type) {
	case INI_STR:
	case INI_OPT:
		return set_string(FIELD(obj, k, char *), v, k->type == INI_OPT);
	case INI_TEXT:
		return set_text(FIELD(obj, k, struct ini_text), lang, name, v,
				why, whylen);
	case INI_BOOL:
		if (str_to_bool(v, FIELD(obj, k, bool)) == 0)
			return 0;
		str_msg(why, whylen, "%s: '%s' is not a boolean (use true or false)",
			name, ini_quote(v, q, sizeof(q)));
		return KW_ERR_INVALID;
	case INI_INT:
		if (str_to_i64(v, k->min, k->max, FIELD(obj, k, int64_t)) == 0)
			return 0;
		str_msg(why, whylen, "%s: '%s' is not a number from %lld to %lld",
			name, ini_quote(v, q, sizeof(q)), (long long)k->min,
			(long long)k->max);
		return KW_ERR_INVALID;
	case INI_DURATION:
		return parse_duration(v, k->min, k->max, FIELD(obj, k, int64_t),
				      name, why, whylen);
	case INI_RATE:
		return parse_rate(v, FIELD(obj, k, struct ini_rate), name, why,
				  whylen);
	case INI_LIST:
		return set_list(FIELD(obj, k, struct ini_list), k, name, v, why,
				whylen);
	case INI_CIDRS:
		r = check_cidrs(v, (size_t)k->max, reason, sizeof(reason));
		if (r == KW_ERR_INVALID)
			give_reason(why, whylen, name, reason);
		if (r < 0)
			return r;
		return set_string(FIELD(obj, k, char *), v, false);
	case INI_NAMED:
		return set_string(&FIELD(obj, k, char *)[index], v, false);
	case INI_CUSTOM:
		r = k->of.custom->parse(FIELD(obj, k, void), v, reason, sizeof(reason));
		if (r == KW_ERR_INVALID)
			give_reason(why, whylen, name, reason);
		return r;
	}
	return KW_ERR_INTERNAL;
}

/* The key named name (n bytes) in section, and for INI_NAMED which name. */
static const struct ini_key *key_find(const struct ini_schema *s,
				      const char *section, const char *name,
				      size_t n, size_t *index)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_key *k = &s->keys[i];

		if (strcmp(k->section, section) != 0)
			continue;
		if (k->type == INI_NAMED) {
			for (size_t j = 0; k->of.names[j]; j++) {
				if (strlen(k->of.names[j]) == n &&
				    strncmp(k->of.names[j], name, n) == 0) {
					*index = j;
					return k;
				}
			}
		} else if (strlen(k->name) == n && strncmp(k->name, name, n) == 0) {
			*index = 0;
			return k;
		}
	}
	return NULL;
}

static bool section_known(const struct ini_schema *s, const char *name, size_t n)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->keys[i].section) == n &&
		    strncmp(s->keys[i].section, name, n) == 0)
			return true;
	return false;
}

int ini_defaults(const struct ini_schema *s, void *obj)
{
	char why[512];
	int r = 0;

	for (size_t i = 0; i < s->n && r == 0; i++) {
		const struct ini_key *k = &s->keys[i];

		if (k->type != INI_NAMED) {
			r = key_set(obj, k, 0, NULL, k->name, k->def, why, sizeof(why));
			continue;
		}
		for (size_t j = 0; k->of.names[j] && r == 0; j++)
			r = key_set(obj, k, j, NULL, k->of.names[j], k->def, why,
				    sizeof(why));
	}
	/* Anything but ENOMEM means the table is wrong. */
	return r == 0 || r == KW_ERR_NOMEM ? r : KW_ERR_INTERNAL;
}

/* ---- reading a file ---- */

/* State shared by the line reader and the handler. The reader feeds inih
 * one line at a time, so it knows the line number the handler is on. */
struct parse {
	const struct ini_schema *schema;
	void *obj;
	FILE *f;
	size_t lineno;        /* line last handed to inih */
	size_t nread;         /* bytes read, against INI_FILE_MAX */
	bool pending_key;     /* that line must reach the handler */
	int read_errno;
	int err;              /* first error: code, line and reason */
	size_t err_line;
	char reason[512];
};

static void parse_fail(struct parse *p, int err, size_t line,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void parse_fail(struct parse *p, int err, size_t line,
		       const char *fmt, ...)
{
	va_list ap;

	if (p->err)
		return;
	p->err = err;
	p->err_line = line;
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
}

/* "[name]" with inih's rule: " ;" starts a comment before the ']'. */
static void parse_section_line(struct parse *p, const char *s, size_t line)
{
	const char *name = s + 1, *end = name;
	bool was_space = false;
	char q[96], tmp[64];
	size_t n;

	for (; *end && *end != ']'; end++) {
		if (was_space && *end == ';')
			break;
		was_space = is_space(*end);
	}
	if (*end != ']') {
		parse_fail(p, KW_ERR_INVALID, line, "'%s': a section name "
			   "needs a closing ']'", ini_quote(s, q, sizeof(q)));
		return;
	}
	n = (size_t)(end - name);
	if (section_known(p->schema, name, n))
		return;
	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	memcpy(tmp, name, n);
	tmp[n] = '\0';
	parse_fail(p, KW_ERR_INVALID, line, "unknown section [%s]",
		   ini_quote(tmp, q, sizeof(q)));
}

/* inih reader (fgets-like) used instead of fgets for three reasons: an
 * over-long line must be an error, not split into two lines (Debian's inih
 * holds 200 bytes); an indented line must not continue the previous value
 * (inih's multi-line mode would silently replace it); and inih reports
 * neither unknown empty sections nor why a line was rejected. */
static char *parse_read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	size_t line = p->lineno + 1, cap, n = 0, skip = 0;
	int c = EOF;

	/* inih calls the handler for every line holding '=' or ':'. */
	if (p->pending_key)
		parse_fail(p, KW_ERR_INVALID, p->lineno,
			   "expected 'key = value'");
	p->pending_key = false;
	if (p->err || num < 3)
		return NULL;
	/* Keep room for '\n': newer inih takes a full buffer without one
	 * for an over-long line and skips the next. */
	cap = (size_t)num - 2;
	if (cap > INI_LINE_MAX)
		cap = INI_LINE_MAX;
	while ((c = getc(p->f)) != EOF) {
		if (++p->nread > INI_FILE_MAX) {
			parse_fail(p, KW_ERR_INVALID, line,
				   "the file is larger than 1 MiB");
			return NULL;
		}
		if (c == '\n')
			break;
		if (c == '\0') {
			parse_fail(p, KW_ERR_INVALID, line,
				   "the line holds a NUL byte");
			return NULL;
		}
		if (n == cap) {
			parse_fail(p, KW_ERR_INVALID, line,
				   "the line is longer than %zu bytes", cap);
			return NULL;
		}
		str[n++] = (char)c;
	}
	if (c == EOF && ferror(p->f)) {
		p->read_errno = errno ? errno : EIO;
		return NULL;
	}
	if (c == EOF && n == 0)
		return NULL;
	str[n] = '\0';
	p->lineno = line;

	if (line == 1 && n >= 3 && memcmp(str, "\xef\xbb\xbf", 3) == 0)
		skip = 3;
	while (skip < n && is_space(str[skip]))
		skip++;
	n -= skip;
	memmove(str, str + skip, n + 1);

	if (str[0] == '[')
		parse_section_line(p, str, line);
	else if (str[0] && str[0] != ';' && str[0] != '#')
		p->pending_key = true;
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static int parse_handler(void *user, const char *section, const char *name,
			 const char *value)
{
	struct parse *p = user;
	const struct ini_key *k;
	const char *dot = strchr(name, '.');
	char lang[8], why[512], q[96], qs[64];
	size_t index = 0;
	int r;

	p->pending_key = false;
	if (p->err)
		return 0;
	if (!*section) {
		parse_fail(p, KW_ERR_INVALID, p->lineno, "key '%s' is outside "
			   "any section", ini_quote(name, q, sizeof(q)));
		return 0;
	}
	k = key_find(p->schema, section, name,
		     dot ? (size_t)(dot - name) : strlen(name), &index);
	if (!k || (dot && k->type != INI_TEXT)) {
		parse_fail(p, KW_ERR_INVALID, p->lineno, "unknown key '%s' in "
			   "section [%s]", ini_quote(name, q, sizeof(q)),
			   ini_quote(section, qs, sizeof(qs)));
		return 0;
	}
	if (dot && lang_tag(dot + 1, lang) < 0) {
		parse_fail(p, KW_ERR_INVALID, p->lineno, "%s: '%s' is not a "
			   "language tag (use e.g. sv or sv-SE)", k->name,
			   ini_quote(dot + 1, q, sizeof(q)));
		return 0;
	}
	r = key_set(p->obj, k, index, dot ? lang : NULL, name, value, why,
		    sizeof(why));
	if (r == KW_ERR_NOMEM)
		parse_fail(p, r, p->lineno, "out of memory");
	else if (r < 0)
		parse_fail(p, r, p->lineno, "%s", why);
	return r < 0 ? 0 : 1;
}

int ini_load(const struct ini_schema *s, void *obj, const char *path, char *msg,
	     size_t msglen)
{
	struct parse p = { .schema = s, .obj = obj };
	struct stat st;
	int r;

	str_msg_clear(msg, msglen);
	p.f = fopen(path, "re");
	if (!p.f) {
		str_msg(msg, msglen, "cannot open %s: %s", path, strerror(errno));
		return KW_ERR_IO;
	}
	/* The reader counts bytes too, for files that are not regular. */
	if (fstat(fileno(p.f), &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > INI_FILE_MAX) {
		str_msg(msg, msglen, "%s: the file is larger than 1 MiB", path);
		r = KW_ERR_INVALID;
		goto out;
	}
	r = ini_parse_stream(parse_read_line, &p, parse_handler, &p);
	if (p.read_errno) {
		str_msg(msg, msglen, "cannot read %s: %s", path,
			strerror(p.read_errno));
		r = KW_ERR_IO;
	} else if (r > 0 && (!p.err || (size_t)r < p.err_line)) {
		/* inih rejected a line the reader and handler accepted. */
		str_msg(msg, msglen, "%s:%d: syntax error", path, r);
		r = KW_ERR_INVALID;
	} else if (p.err) {
		str_msg(msg, msglen, "%s:%zu: %s", path, p.err_line, p.reason);
		r = p.err;
	} else if (r < 0) {
		str_msg(msg, msglen, "%s: %s", path, kw_strerror(KW_ERR_NOMEM));
		r = KW_ERR_NOMEM;
	}
out:
	fclose(p.f);
	return r;
}

/* ---- writing ---- */

static int dump_pair(struct buf *out, const char *name, const char *lang,
		     const char *v)
{
	size_t len = strlen(name) + (lang ? 1 + strlen(lang) : 0) + 3 +
		     strlen(v);
	const char *eq = " = ";

	if (v[0] == ';' || len > DUMP_SPACED_MAX)
		eq = "=";
	else if (!v[0])
		eq = " =";
	return buf_printf(out, "%s%s%s%s%s\n", name, lang ? "." : "",
			  lang ? lang : "", eq, v);
}

static int format_list(const struct ini_list *l, bool compact, struct buf *out)
{
	int r;

	for (size_t i = 0; i < l->n; i++)
		if ((r = buf_printf(out, "%s%s", i ? (compact ? "," : ", ") : "",
				    l->item[i])) < 0)
			return r;
	return 0;
}

/* A list-like value: spaced when the line stays short, else compact (no
 * longer than the line it came from). */
static int dump_formatted(const struct ini_key *k, const void *field,
			  struct buf *out)
{
	struct buf v;
	int r;

	buf_init(&v, INI_FILE_MAX);
	r = k->type == INI_LIST ? format_list(field, false, &v) :
				  k->of.custom->format(field, false, &v);
	if (r == 0 && v.len > DUMP_SPACED_MAX) {
		buf_reset(&v);
		r = k->type == INI_LIST ? format_list(field, true, &v) :
					  k->of.custom->format(field, true, &v);
	}
	if (r == 0)
		r = dump_pair(out, k->name, NULL, v.data ? v.data : "");
	buf_free(&v);
	return r;
}

static int dump_key(const void *obj, const struct ini_key *k, struct buf *out)
{
	char tmp[32];
	const struct ini_text *t;
	const struct ini_rate *rl;
	const char *s;
	int r;

	switch (k->type) {
	case INI_STR:
	case INI_OPT:
	case INI_CIDRS:
		s = *CFIELD(obj, k, char *);
		return dump_pair(out, k->name, NULL, s ? s : "");
	case INI_TEXT:
		t = CFIELD(obj, k, struct ini_text);
		if ((r = dump_pair(out, k->name, NULL, t->def ? t->def : "")) < 0)
			return r;
		for (size_t i = 0; i < t->nvar; i++)
			if ((r = dump_pair(out, k->name, t->var[i].lang,
					   t->var[i].text ? t->var[i].text :
							    "")) < 0)
				return r;
		return 0;
	case INI_BOOL:
		return dump_pair(out, k->name, NULL,
				 *CFIELD(obj, k, bool) ? "true" : "false");
	case INI_INT:
		snprintf(tmp, sizeof(tmp), "%lld",
			 (long long)*CFIELD(obj, k, int64_t));
		return dump_pair(out, k->name, NULL, tmp);
	case INI_DURATION:
		str_format_duration(*CFIELD(obj, k, int64_t), tmp, sizeof(tmp));
		return dump_pair(out, k->name, NULL, tmp);
	case INI_RATE:
		rl = CFIELD(obj, k, struct ini_rate);
		str_format_duration(rl->window, tmp, sizeof(tmp));
		return buf_printf(out, "%s = %lld/%s\n", k->name,
				  (long long)rl->count, tmp);
	case INI_LIST:
	case INI_CUSTOM:
		return dump_formatted(k, CFIELD(obj, k, void), out);
	case INI_NAMED:
		for (size_t j = 0; k->of.names[j]; j++) {
			s = CFIELD(obj, k, char *)[j];
			if ((r = dump_pair(out, k->of.names[j], NULL, s ? s : "")) < 0)
				return r;
		}
		return 0;
	}
	return KW_ERR_INTERNAL;
}

int ini_dump(const struct ini_schema *s, const void *obj, struct buf *out)
{
	const char *section = NULL;
	int r;

	for (size_t i = 0; i < s->n; i++) {
		if (!section || strcmp(section, s->keys[i].section) != 0) {
			section = s->keys[i].section;
			if ((r = buf_printf(out, "%s[%s]\n", i ? "\n" : "",
					    section)) < 0)
				return r;
		}
		if ((r = dump_key(obj, &s->keys[i], out)) < 0)
			return r;
	}
	return 0;
}

const char *ini_text(const struct ini_text *t, const char *lang)
{
	size_t n;

	if (lang && *lang) {
		for (size_t i = 0; i < t->nvar; i++)
			if (str_ieq(t->var[i].lang, lang))
				return t->var[i].text;
		n = strcspn(lang, "-");
		if (lang[n])
			for (size_t i = 0; i < t->nvar; i++)
				if (strlen(t->var[i].lang) == n &&
				    strncasecmp(t->var[i].lang, lang, n) == 0)
					return t->var[i].text;
	}
	return t->def ? t->def : "";
}

static void text_free(struct ini_text *t)
{
	free(t->def);
	for (size_t i = 0; i < INI_TEXT_LANGS; i++)
		free(t->var[i].text);
	memset(t, 0, sizeof(*t));
}

void ini_free(const struct ini_schema *s, void *obj)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_key *k = &s->keys[i];
		struct ini_list *l;
		char **p;

		switch (k->type) {
		case INI_STR:
		case INI_OPT:
		case INI_CIDRS:
			p = FIELD(obj, k, char *);
			free(*p);
			*p = NULL;
			break;
		case INI_TEXT:
			text_free(FIELD(obj, k, struct ini_text));
			break;
		case INI_LIST:
			l = FIELD(obj, k, struct ini_list);
			for (size_t j = 0; j < INI_LIST_MAX; j++) {
				free(l->item[j]);
				l->item[j] = NULL;
			}
			l->n = 0;
			break;
		case INI_NAMED:
			p = FIELD(obj, k, char *);
			for (size_t j = 0; k->of.names[j]; j++) {
				free(p[j]);
				p[j] = NULL;
			}
			break;
		case INI_BOOL:
		case INI_INT:
		case INI_DURATION:
		case INI_RATE:
		case INI_CUSTOM:
			break;
		}
	}
}
