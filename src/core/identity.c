#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/identity.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"

static void add_one(struct identity *id, const char *name, size_t len)
{
	if (len == 0 || len > IDENTITY_NAME_MAX || id->n >= IDENTITY_MAX)
		return;
	for (size_t i = 0; i < id->n; i++)
		if (str_fold_eq(id->forms[i], strlen(id->forms[i]), name, len))
			return;
	memcpy(id->forms[id->n], name, len);
	id->forms[id->n++][len] = '\0';
}

void identity_add(const struct identity_domains *d, struct identity *id, const char *name)
{
	const char *bs = strchr(name, '\\'), *at = strrchr(name, '@');
	char other[IDENTITY_NAME_MAX * 2 + 2];

	add_one(id, name, strlen(name));
	for (size_t i = 0; d && i < d->n; i++) {
		const char *nb = d->dom[i].netbios, *dns = d->dom[i].dns;

		if (bs && str_fold_eq(name, (size_t)(bs - name), nb, strlen(nb)))
			snprintf(other, sizeof(other), "%s@%s", bs + 1, dns);
		else if (!bs && at && str_fold_eq(at + 1, strlen(at + 1), dns, strlen(dns)))
			snprintf(other, sizeof(other), "%s\\%.*s", nb, (int)(at - name), name);
		else
			continue;
		add_one(id, other, strlen(other));
	}
}

void identity_from_name(const struct identity_domains *d, const char *name,
			struct identity *id)
{
	id->n = 0;
	identity_add(d, id, name);
}

void identity_join(const struct identity *id, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < id->n && n < outlen; i++)
		n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? "\n" : "", id->forms[i]);
}

void identity_split(const char *joined, struct identity *id)
{
	id->n = 0;
	while (*joined) {
		size_t len = strcspn(joined, "\n");

		add_one(id, joined, len);
		joined += len;
		if (*joined)
			joined++;
	}
}

size_t identity_list(const struct identity *id, const char *out[IDENTITY_MAX])
{
	for (size_t i = 0; i < id->n; i++)
		out[i] = id->forms[i];
	return id->n;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool identity_netbios_ok(const char *s, size_t n)
{
	if (n == 0 || n > 15)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

static bool dns_name_ok(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_alnum(c) || (c == '-' && label)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

struct domain_parse {
	struct identity_domains *d;
	const char *bad;
	const char *why;
};

/* "CORP:corp.example.com", already trimmed; the item is left intact for
 * the error message. */
static int domain_item(char *item, void *arg)
{
	struct domain_parse *p = arg;
	struct identity_domains *d = p->d;
	const char *colon = strchr(item, ':');
	const char *dns;
	size_t nblen, dnslen;

	p->bad = item;
	p->why = "is not NETBIOS:dns.name";
	if (!colon)
		return KW_ERR_INVALID;
	nblen = (size_t)(colon - item);
	while (nblen > 0 && (item[nblen - 1] == ' ' || item[nblen - 1] == '\t'))
		nblen--;
	dns = colon + 1 + strspn(colon + 1, " \t");
	dnslen = strlen(dns);
	if (!identity_netbios_ok(item, nblen) || !dns_name_ok(dns, dnslen))
		return KW_ERR_INVALID;
	for (size_t i = 0; i < d->n; i++) {
		if (strlen(d->dom[i].netbios) == nblen &&
		    strncasecmp(d->dom[i].netbios, item, nblen) == 0) {
			p->why = "repeats a NetBIOS name";
			return KW_ERR_INVALID;
		}
	}
	if (d->n == IDENTITY_DOMAINS_MAX) {
		p->why = "is one domain too many (at most 16)";
		return KW_ERR_INVALID;
	}
	memcpy(d->dom[d->n].netbios, item, nblen);
	d->dom[d->n].netbios[nblen] = '\0';
	memcpy(d->dom[d->n].dns, dns, dnslen + 1);
	d->n++;
	return 0;
}

int identity_domains_parse(struct identity_domains *d, const char *text, char *why,
			   size_t whylen)
{
	struct domain_parse p = { .d = d };
	char *copy = strdup(text), q[96];
	int r;

	if (!copy)
		return KW_ERR_NOMEM;
	d->n = 0;
	r = ini_each_item(copy, ',', domain_item, &p);
	if (r < 0)
		str_msg(why, whylen, "'%s' %s", ini_quote(p.bad, q, sizeof(q)), p.why);
	free(copy);
	return r;
}

int identity_domains_format(const struct identity_domains *d, bool compact,
			    struct buf *out)
{
	int r;

	for (size_t i = 0; i < d->n; i++)
		if ((r = buf_printf(out, "%s%s:%s", i ? (compact ? "," : ", ") : "",
				    d->dom[i].netbios, d->dom[i].dns)) < 0)
			return r;
	return 0;
}
