#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldap.h>
#include <sodium.h>

#include "auth/ldap.h"
#include "auth/ldap_escrow.h"
#include "core/enroll.h"
#include "util/err.h"
#include "util/str.h"

#define A_PASSWORD "msFVE-RecoveryPassword"
#define A_GUID "msFVE-RecoveryGuid"
#define A_VOLUME "msFVE-VolumeGuid"
#define A_CREATED "whenCreated"
#define DN_MAX 4096               /* bytes of a DN kept (longer: invalid) */

void ldap_escrow_guid(const uint8_t b[16], char out[KEYID_CANON_LEN + 1])
{
	/* Data1 (4 bytes), Data2 and Data3 (2 each) little-endian; Data4 as is. */
	static const int order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
	char hex[KEYID_HEX_LEN + 1];
	uint8_t be[16];

	for (int i = 0; i < 16; i++)
		be[i] = b[order[i]];
	str_hex(be, 16, hex);
	keyid_format(hex, out);
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int ldap_escrow_time(const char *gt, char out[LDAP_ESCROW_TIME_LEN])
{
	size_t n = strlen(gt), d;

	out[0] = '\0';
	if (n < 15 || !digits(gt, 14))
		return KW_ERR_INVALID;
	d = 14;
	if (gt[d] == '.' || gt[d] == ',') {
		size_t f = strspn(gt + d + 1, "0123456789");

		if (!f || f > 9)
			return KW_ERR_INVALID;
		d += 1 + f;
	}
	if (gt[d] != 'Z' || gt[d + 1])
		return KW_ERR_INVALID;
	snprintf(out, LDAP_ESCROW_TIME_LEN, "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", gt, gt + 4, gt + 6,
		 gt + 8, gt + 10, gt + 12);
	return 0;
}

int ldap_escrow_name_guid(const char *v, size_t len, char out[KEYID_CANON_LEN + 1])
{
	const char *open;

	out[0] = '\0';
	/* "{" + 36 characters + "}" at the end. */
	if (len < KEYID_CANON_LEN + 2 || v[len - 1] != '}')
		return KW_ERR_INVALID;
	open = v + len - KEYID_CANON_LEN - 2;
	if (*open != '{')
		return KW_ERR_INVALID;
	if (keyid_parse(open + 1, KEYID_CANON_LEN, out, NULL, 0) < 0) {
		out[0] = '\0';
		return KW_ERR_INVALID;
	}
	return 0;
}

/* What the search keeps beside the entries: each entry's parent DN,
 * normalized, for matching the computers. */
struct reading {
	struct ldap_escrow *x;
	size_t alloc;
	char **parent;                    /* x->n of them; NULL: none */
	size_t *order;                    /* entries sorted by parent */
	int err;
};

static void invalid(struct ldap_escrow_entry *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void invalid(struct ldap_escrow_entry *e, const char *fmt, ...)
{
	va_list ap;

	if (e->invalid[0])
		return;                   /* the first fault is enough */
	va_start(ap, fmt);
	vsnprintf(e->invalid, sizeof(e->invalid), fmt, ap);
	va_end(ap);
}

/* The one value of a single-valued attribute: NULL when there is none,
 * else v (ldap_value_free_len). */
static struct berval **value_of(LDAP *ld, LDAPMessage *m, const char *attr)
{
	struct berval **v = ldap_get_values_len(ld, m, attr);

	if (v && !v[0]) {
		ldap_value_free_len(v);
		v = NULL;
	}
	return v;
}

static void guid_attr(LDAP *ld, LDAPMessage *m, const char *attr, struct ldap_escrow_entry *e,
		      char out[KEYID_CANON_LEN + 1])
{
	struct berval **v = value_of(ld, m, attr);

	out[0] = '\0';
	if (!v)
		invalid(e, "it has no %s", attr);
	else if (v[1])
		invalid(e, "it has more than one %s", attr);
	else if (v[0]->bv_len != 16)
		invalid(e, "%s is %lu bytes, not 16", attr, (unsigned long)v[0]->bv_len);
	else
		ldap_escrow_guid((const uint8_t *)v[0]->bv_val, out);
	ldap_value_free_len(v);
}

/* The name of the first RDN (its key ID) and the parent's DN. */
static void name_and_parent(const char *dn, struct ldap_escrow_entry *e, char **parent)
{
	LDAPDN ldn = NULL;
	char key[KEYID_CANON_LEN + 1], *p = NULL;

	*parent = NULL;
	if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !ldn || !ldn[0]) {
		invalid(e, "its DN cannot be read");
		goto out;
	}
	if (ldap_escrow_name_guid(ldn[0][0]->la_value.bv_val, ldn[0][0]->la_value.bv_len,
				  key) < 0)
		invalid(e, "its name does not end in {KEY-ID}, as BitLocker names it");
	else if (e->key_id[0] && strcmp(key, e->key_id))
		invalid(e, "its name says key %s, its %s %s", key, A_GUID, e->key_id);
	if (!ldn[1]) {
		invalid(e, "it has no parent: it is not under a computer object");
		goto out;
	}
	if (ldap_dn2str(&ldn[1], &p, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !p) {
		invalid(e, "its parent's DN cannot be read");
		goto out;
	}
	*parent = auth_ldap_dn_norm(p);
	ldap_memfree(p);
out:
	if (ldn)
		ldap_dnfree(ldn);
}

static int recovery_entry(struct ldap_dir *d, LDAPMessage *m, void *arg)
{
	struct reading *r = arg;
	LDAP *ld = ldap_dir_handle(d);
	struct ldap_escrow_entry *e;
	struct berval **v;
	char raw[64], *dn;

	if (r->x->n == LDAP_ESCROW_MAX)
		return KW_ERR_TOO_LARGE;
	if (r->x->n == r->alloc) {
		size_t n = r->alloc ? r->alloc * 2 : 256;
		struct ldap_escrow_entry *ne = realloc(r->x->e, n * sizeof(*ne));
		char **np;

		if (!ne)
			return KW_ERR_NOMEM;
		r->x->e = ne;
		if (!(np = realloc(r->parent, n * sizeof(*np))))
			return KW_ERR_NOMEM;
		r->parent = np;
		r->alloc = n;
	}
	e = &r->x->e[r->x->n];
	memset(e, 0, sizeof(*e));
	r->parent[r->x->n] = NULL;
	r->x->n++;
	if (!(dn = ldap_get_dn(ld, m)))
		return KW_ERR_NOMEM;
	e->dn = strlen(dn) <= DN_MAX ? strdup(dn) : strndup(dn, DN_MAX);
	if (!e->dn) {
		ldap_memfree(dn);
		return KW_ERR_NOMEM;
	}
	if (strlen(dn) > DN_MAX)
		invalid(e, "its DN is longer than %d bytes", DN_MAX);

	v = value_of(ld, m, A_PASSWORD);
	if (!v)
		invalid(e, "it has no %s", A_PASSWORD);
	else if (v[1])
		invalid(e, "it has more than one %s", A_PASSWORD);
	else if (v[0]->bv_len > LDAP_ESCROW_PASSWORD_MAX)
		invalid(e, "%s is longer than %d bytes", A_PASSWORD, LDAP_ESCROW_PASSWORD_MAX);
	else if (memchr(v[0]->bv_val, '\0', v[0]->bv_len))
		invalid(e, "%s holds a NUL byte", A_PASSWORD);
	else if (!(e->password = strndup(v[0]->bv_val, v[0]->bv_len)))
		r->err = KW_ERR_NOMEM;
	for (size_t i = 0; v && v[i]; i++)
		sodium_memzero(v[i]->bv_val, v[i]->bv_len);
	ldap_value_free_len(v);

	guid_attr(ld, m, A_GUID, e, e->key_id);
	guid_attr(ld, m, A_VOLUME, e, e->volume_id);

	v = value_of(ld, m, A_CREATED);
	if (v && v[0]->bv_len < sizeof(raw) && !memchr(v[0]->bv_val, '\0', v[0]->bv_len)) {

		memcpy(raw, v[0]->bv_val, v[0]->bv_len);
		raw[v[0]->bv_len] = '\0';
		if (ldap_escrow_time(raw, e->created) < 0)
			invalid(e, "%s '%s' is not a time in UTC as Active Directory writes it "
				"(YYYYMMDDHHMMSS.0Z)", A_CREATED,
				str_is_clean_text(raw, sizeof(raw)) ? raw : "?");
	} else if (v) {
		invalid(e, "%s is not a time", A_CREATED);
	}
	ldap_value_free_len(v);

	name_and_parent(dn, e, &r->parent[r->x->n - 1]);
	ldap_memfree(dn);
	return r->err;
}

static int cmp_parent(const void *a, const void *b, void *arg)
{
	const struct reading *r = arg;
	const char *x = r->parent[*(const size_t *)a];
	const char *y = r->parent[*(const size_t *)b];

	return strcasecmp(x ? x : "", y ? y : "");
}

/* The first value of attr in m when it is 1 to DEVICE_NAME_MAX bytes
 * without NUL, malloc'd; NULL otherwise. Cuts a trailing '$' (a
 * sAMAccountName) when dollar, and everything from the first '.' when dot
 * (a dNSHostName). */
static char *name_attr(LDAP *ld, LDAPMessage *m, const char *attr, bool dollar, bool dot)
{
	struct berval **v = value_of(ld, m, attr);
	char *out = NULL;
	size_t n;

	if (!v || v[0]->bv_len == 0 || v[0]->bv_len > DEVICE_NAME_MAX ||
	    memchr(v[0]->bv_val, '\0', v[0]->bv_len))
		goto out;
	n = v[0]->bv_len;
	if (dot) {
		char *p = memchr(v[0]->bv_val, '.', n);

		if (p)
			n = (size_t)(p - v[0]->bv_val);
	}
	if (dollar && n && v[0]->bv_val[n - 1] == '$')
		n--;
	if (n)
		out = strndup(v[0]->bv_val, n);
out:
	ldap_value_free_len(v);
	return out;
}

static int computer_entry(struct ldap_dir *d, LDAPMessage *m, void *arg)
{
	struct reading *r = arg;
	LDAP *ld = ldap_dir_handle(d);
	char *dn = ldap_get_dn(ld, m), *norm = NULL, *name = NULL;
	struct berval **guid = NULL;
	size_t lo = 0, hi = r->x->n, mid, i;
	int c;

	if (!dn)
		return KW_ERR_NOMEM;
	norm = auth_ldap_dn_norm(dn);
	ldap_memfree(dn);
	if (!norm)
		return 0;
	/* The first entry (in parent order) under this computer. */
	while (lo < hi) {
		const char *p;

		mid = lo + (hi - lo) / 2;
		p = r->parent[r->order[mid]];
		c = strcasecmp(p ? p : "", norm);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->x->n || !r->parent[r->order[lo]] ||
	    strcasecmp(r->parent[r->order[lo]], norm))
		goto out;
	if (!(name = name_attr(ld, m, "cn", false, false)) &&
	    !(name = name_attr(ld, m, "sAMAccountName", true, false)))
		name = name_attr(ld, m, "dNSHostName", false, true);
	/* The device is the computer object, not its name: a name can be
	 * reused by a new computer, or held by two in different OUs. */
	guid = value_of(ld, m, "objectGUID");
	for (i = lo; i < r->x->n && r->parent[r->order[i]] &&
	     !strcasecmp(r->parent[r->order[i]], norm); i++) {
		struct ldap_escrow_entry *e = &r->x->e[r->order[i]];

		if (!guid || guid[1] || guid[0]->bv_len != 16) {
			invalid(e, "its computer has no objectGUID of 16 bytes, which "
				"keywarden needs to tell computers apart");
			continue;
		}
		ldap_escrow_guid((const uint8_t *)guid[0]->bv_val, e->device_id);
		if (!name) {
			invalid(e, "its computer has no cn, sAMAccountName or dNSHostName "
				"keywarden can use as a name");
			continue;
		}
		free(e->computer);
		if (!(e->computer = strdup(name))) {
			ldap_value_free_len(guid);
			free(name);
			free(norm);
			return KW_ERR_NOMEM;
		}
	}
	ldap_value_free_len(guid);
out:
	free(name);
	free(norm);
	return 0;
}

int ldap_escrow_read(const struct config *cfg, struct ldap_escrow *out, char *why,
		     size_t whylen)
{
	static char *rec_attrs[] = { A_PASSWORD, A_GUID, A_VOLUME, A_CREATED, NULL };
	static char *comp_attrs[] = { "cn", "sAMAccountName", "dNSHostName", "objectGUID",
				      NULL };
	struct ldap_dir *d = NULL;
	struct reading r;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	r.x = out;
	if (!*cfg->ldap.uri || !*cfg->ldap.base_dn) {
		str_msg(why, whylen, "[ldap] needs uri and base_dn");
		return KW_ERR_INVALID;
	}
	if ((rc = ldap_dir_open(cfg, &d, why, whylen)) < 0)
		return rc;
	rc = ldap_dir_search(d, NULL, "(objectClass=msFVE-RecoveryInformation)",
			     rec_attrs, recovery_entry, &r);
	if (rc == KW_ERR_TOO_LARGE && out->n == LDAP_ESCROW_MAX) {
		str_msg(why, whylen, "the directory holds more than %d recovery objects under "
			"%s", LDAP_ESCROW_MAX, cfg->ldap.base_dn);
		goto out;
	}
	if (rc == KW_ERR_NOMEM) {
		str_msg(why, whylen, "%s", kw_strerror(rc));
		goto out;
	}
	if (rc < 0) {
		str_msg(why, whylen, "%s", ldap_dir_why(d));
		goto out;
	}
	if (!out->n)
		goto out;
	if (!(r.order = calloc(out->n, sizeof(*r.order)))) {
		rc = KW_ERR_NOMEM;
		str_msg(why, whylen, "%s", kw_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < out->n; i++)
		r.order[i] = i;
	qsort_r(r.order, out->n, sizeof(*r.order), cmp_parent, &r);
	rc = ldap_dir_search(d, NULL, "(objectClass=computer)", comp_attrs,
			     computer_entry, &r);
	if (rc < 0) {
		str_msg(why, whylen, "%s", rc == KW_ERR_NOMEM ? kw_strerror(rc) : ldap_dir_why(d));
		goto out;
	}
	for (size_t i = 0; i < out->n; i++)
		if (!out->e[i].computer)
			invalid(&out->e[i], "it is not under a computer object");
out:
	if (r.parent)
		for (size_t i = 0; i < out->n; i++)
			free(r.parent[i]);
	free(r.parent);
	free(r.order);
	ldap_dir_close(d);
	return rc;
}

void ldap_escrow_free(struct ldap_escrow *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++) {
		struct ldap_escrow_entry *e = &x->e[i];

		free(e->dn);
		free(e->computer);
		if (e->password) {
			sodium_memzero(e->password, strlen(e->password));
			free(e->password);
		}
	}
	free(x->e);
	x->e = NULL;
	x->n = 0;
}
