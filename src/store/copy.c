/* store_copy: one snapshot of the source, one transaction of the target,
 * pages in between.
 *
 * The source's snapshot is a store_read_once, whose fn runs once and may
 * act outside it: it runs the target's store_write, whose fn reads the
 * source's transaction page by page (reads only, no effect of its own: it
 * stays rerunnable) and writes each page to the target before reading the
 * next. The source's transaction is used by the target's writer thread
 * while the reading thread waits in store_write: one thread at a time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/copy.h"
#include "util/err.h"

/* What a page's records point to, freed when the page is written. */
struct owned {
	void **p;
	size_t n, cap;
};

static void owned_free(struct owned *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->p[i]);
	o->n = 0;
}

static void owned_done(struct owned *o)
{
	owned_free(o);
	free(o->p);
	o->p = NULL;
	o->cap = 0;
}

/* A copy of len bytes at p kept until owned_free; NULL without memory. */
static void *own(struct owned *o, const void *p, size_t len)
{
	void *c;

	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 256;
		void **np = realloc(o->p, cap * sizeof(*np));

		if (!np)
			return NULL;
		o->p = np;
		o->cap = cap;
	}
	if (!(c = malloc(len ? len : 1)))
		return NULL;
	if (len)
		memcpy(c, p, len);
	o->p[o->n++] = c;
	return c;
}

static const char *own_str(struct owned *o, const char *s)
{
	return s ? own(o, s, strlen(s) + 1) : "";
}

/* A page being collected: records of one kind (rec: their size). */
struct page {
	void *recs;
	size_t n, size;
	size_t bytes;            /* allocated at recs */
	int64_t last;            /* the cursor: the last row or seq read */
};

static void *page_add(struct page *p)
{
	if ((p->n + 1) * p->size > p->bytes) {
		size_t bytes = p->bytes ? p->bytes * 2 : 64 * p->size;
		void *nr;

		while (bytes < (p->n + 1) * p->size)
			bytes *= 2;
		if (!(nr = realloc(p->recs, bytes)))
			return NULL;
		p->recs = nr;
		p->bytes = bytes;
	}
	return (char *)p->recs + p->n++ * p->size;
}

struct copy {
	struct store *to;
	struct store_tx *from;
	struct store_counts *copied;
	struct owned o;
	struct page pg;
	struct page sub;         /* logons of a page of devices */
	char *msg;
	size_t msglen;
};

static int fail(struct copy *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct copy *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, c->msglen, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- collecting (callbacks of the source's iterations) ---- */

struct meta_pair {
	const char *name, *value;
};

static int meta_cb(const char *name, const char *value, void *arg)
{
	struct copy *c = arg;
	struct meta_pair *m = page_add(&c->pg);

	if (!m || !(m->name = own_str(&c->o, name)) || !(m->value = own_str(&c->o, value)))
		return KW_ERR_NOMEM;
	return 0;
}

static int user_cb(const struct user_rec *u, void *arg)
{
	struct copy *c = arg;
	struct user_rec *r = page_add(&c->pg);

	if (!r)
		return KW_ERR_NOMEM;
	*r = *u;
	if (!(r->name = own_str(&c->o, u->name)) ||
	    !(r->password_hash = own_str(&c->o, u->password_hash)))
		return KW_ERR_NOMEM;
	return 0;
}

static int token_cb(const struct token_rec *t, void *arg)
{
	struct copy *c = arg;
	struct token_rec *r = page_add(&c->pg);

	if (!r)
		return KW_ERR_NOMEM;
	*r = *t;
	return 0;
}

static int device_cb(const struct device_copy_rec *d, void *arg)
{
	struct copy *c = arg;
	struct device_copy_rec *r = page_add(&c->pg);

	if (!r)
		return KW_ERR_NOMEM;
	*r = *d;
	c->pg.last = d->row;
	if (!(r->device.name = own_str(&c->o, d->device.name)) ||
	    !(r->device.domain = own_str(&c->o, d->device.domain)) ||
	    !(r->device.os = own_str(&c->o, d->device.os)))
		return KW_ERR_NOMEM;
	return 0;
}

static int logon_cb(const struct logon_rec *l, void *arg)
{
	struct copy *c = arg;
	struct logon_rec *r = page_add(&c->sub);

	if (!r)
		return KW_ERR_NOMEM;
	*r = *l;
	return (r->user = own_str(&c->o, l->user)) ? 0 : KW_ERR_NOMEM;
}

static int assoc_cb(const struct assoc_rec *a, void *arg)
{
	struct copy *c = arg;
	struct assoc_rec *r = page_add(&c->sub);

	if (!r)
		return KW_ERR_NOMEM;
	*r = *a;
	if (!(r->user = own_str(&c->o, a->user)) ||
	    !(r->added_by = own_str(&c->o, a->added_by)))
		return KW_ERR_NOMEM;
	return 0;
}

static int volume_cb(const struct volume_rec *v, void *arg)
{
	struct copy *c = arg;
	struct volume_rec *r = page_add(&c->pg);

	if (!r)
		return KW_ERR_NOMEM;
	*r = *v;
	c->pg.last = v->row;
	if (!(r->mount = own_str(&c->o, v->mount)) || !(r->type = own_str(&c->o, v->type)) ||
	    !(r->protection = own_str(&c->o, v->protection)) ||
	    !(r->encryption = own_str(&c->o, v->encryption)))
		return KW_ERR_NOMEM;
	return 0;
}

static int key_cb(const struct key_rec *k, void *arg)
{
	struct copy *c = arg;
	struct key_rec *r = page_add(&c->pg);

	if (!r)
		return KW_ERR_NOMEM;
	*r = *k;
	c->pg.last = k->row;
	if (!(r->sealed = own(&c->o, k->sealed, k->sealed_len)) ||
	    !(r->origin = own_str(&c->o, k->origin)))
		return KW_ERR_NOMEM;
	return 0;
}

static int audit_cb(const struct audit_rec *a, void *arg)
{
	struct copy *c = arg;
	struct audit_rec *r = page_add(&c->pg);
	const char **f[] = { &r->source, &r->result, &r->actor, &r->end_user, &r->computer,
			     &r->device_id, &r->key_id, &r->key_type, &r->reason, &r->comment,
			     &r->client };

	if (!r)
		return KW_ERR_NOMEM;
	*r = *a;
	c->pg.last = a->seq;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!(*f[i] = own_str(&c->o, *f[i])))
			return KW_ERR_NOMEM;
	return 0;
}

/* ---- the steps (in the target's transaction) ---- */

/* Starts a page of records of size size after cursor last. */
static void page_start(struct page *p, size_t size, int64_t last)
{
	p->n = 0;
	p->size = size;
	p->last = last;
}

static int copy_meta(struct copy *c, struct store_tx *to)
{
	int rc;

	page_start(&c->pg, sizeof(struct meta_pair), 0);
	if ((rc = store_meta_each(c->from, meta_cb, c)) < 0)
		return fail(c, rc, "cannot read the meta values: %s", kw_strerror(rc));
	for (size_t i = 0; i < c->pg.n; i++) {
		const struct meta_pair *m = (const struct meta_pair *)c->pg.recs + i;

		if ((rc = store_meta_set(to, m->name, m->value)) < 0)
			return fail(c, rc, "cannot write meta %s: %s", m->name, kw_strerror(rc));
	}
	owned_free(&c->o);
	return 0;
}

static int copy_users(struct copy *c, struct store_tx *to)
{
	int rc;

	page_start(&c->pg, sizeof(struct user_rec), 0);
	if ((rc = store_user_each(c->from, user_cb, c)) < 0)
		return fail(c, rc, "cannot read the users: %s", kw_strerror(rc));
	for (size_t i = 0; i < c->pg.n; i++) {
		const struct user_rec *u = (const struct user_rec *)c->pg.recs + i;

		if ((rc = store_user_copy(to, u)) < 0)
			return fail(c, rc, "cannot write user %s: %s", u->name, kw_strerror(rc));
	}
	owned_free(&c->o);
	return 0;
}

static int copy_tokens(struct copy *c, struct store_tx *to)
{
	int rc;

	page_start(&c->pg, sizeof(struct token_rec), 0);
	if ((rc = store_token_each(c->from, token_cb, c)) < 0)
		return fail(c, rc, "cannot read the enrollment tokens: %s", kw_strerror(rc));
	for (size_t i = 0; i < c->pg.n; i++) {
		const struct token_rec *t = (const struct token_rec *)c->pg.recs + i;

		if ((rc = store_token_copy(to, t)) < 0)
			return fail(c, rc, "cannot write enrollment token %lld: %s",
				    (long long)t->id, kw_strerror(rc));
	}
	return 0;
}

/* The logons and associations of a page of devices. */
static int copy_device_links(struct copy *c, struct store_tx *to,
			     const struct device_copy_rec *d, size_t n)
{
	int rc = 0;

	page_start(&c->sub, sizeof(struct logon_rec), 0);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = store_logon_each_device(c->from, d[i].device.id, logon_cb, c);
	if (rc < 0)
		return fail(c, rc, "cannot read the logons: %s", kw_strerror(rc));
	if ((rc = store_logon_upsert_many(to, c->sub.recs, c->sub.n)) < 0)
		return fail(c, rc, "cannot write the logons: %s", kw_strerror(rc));
	c->copied->logons += (int64_t)c->sub.n;
	page_start(&c->sub, sizeof(struct assoc_rec), 0);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = store_assoc_each_device(c->from, d[i].device.id, assoc_cb, c);
	if (rc < 0)
		return fail(c, rc, "cannot read the associations: %s", kw_strerror(rc));
	for (size_t i = 0; i < c->sub.n; i++) {
		const struct assoc_rec *a = (const struct assoc_rec *)c->sub.recs + i;

		if ((rc = store_assoc_add(to, a)) < 0)
			return fail(c, rc, "cannot write an association of device %s: %s",
				    a->device_id, kw_strerror(rc));
	}
	c->copied->assocs += (int64_t)c->sub.n;
	return 0;
}

static int copy_devices(struct copy *c, struct store_tx *to)
{
	int64_t after = 0;
	int rc;

	do {
		page_start(&c->pg, sizeof(struct device_copy_rec), after);
		if ((rc = store_device_each_page(c->from, after, STORE_COPY_PAGE, device_cb,
						 c)) < 0)
			return fail(c, rc, "cannot read the devices: %s", kw_strerror(rc));
		if ((rc = store_device_copy_many(to, c->pg.recs, c->pg.n)) < 0)
			return fail(c, rc, "cannot write the devices: %s", kw_strerror(rc));
		if ((rc = copy_device_links(c, to, c->pg.recs, c->pg.n)) < 0)
			return rc;
		c->copied->devices += (int64_t)c->pg.n;
		after = c->pg.last;
		owned_free(&c->o);
	} while (c->pg.n == STORE_COPY_PAGE);
	return 0;
}

static int copy_volumes(struct copy *c, struct store_tx *to)
{
	int64_t after = 0;
	int rc;

	do {
		page_start(&c->pg, sizeof(struct volume_rec), after);
		if ((rc = store_volume_each_page(c->from, after, STORE_COPY_PAGE, volume_cb,
						 c)) < 0)
			return fail(c, rc, "cannot read the volumes: %s", kw_strerror(rc));
		if ((rc = store_volume_copy_many(to, c->pg.recs, c->pg.n)) < 0)
			return fail(c, rc, "cannot write the volumes: %s", kw_strerror(rc));
		c->copied->volumes += (int64_t)c->pg.n;
		after = c->pg.last;
		owned_free(&c->o);
	} while (c->pg.n == STORE_COPY_PAGE);
	return 0;
}

static int copy_keys(struct copy *c, struct store_tx *to)
{
	int64_t after = 0;
	int rc;

	do {
		page_start(&c->pg, sizeof(struct key_rec), after);
		if ((rc = store_key_each_page(c->from, after, STORE_COPY_PAGE, key_cb, c)) < 0)
			return fail(c, rc, "cannot read the keys: %s", kw_strerror(rc));
		if ((rc = store_key_copy_many(to, c->pg.recs, c->pg.n)) < 0)
			return fail(c, rc, "cannot write the keys: %s", kw_strerror(rc));
		c->copied->keys += (int64_t)c->pg.n;
		after = c->pg.last;
		owned_free(&c->o);
	} while (c->pg.n == STORE_COPY_PAGE);
	return 0;
}

static int copy_audit(struct copy *c, struct store_tx *to)
{
	struct audit_filter f = { .limit = STORE_COPY_PAGE };
	int rc;

	do {
		page_start(&c->pg, sizeof(struct audit_rec), f.after_seq);
		if ((rc = store_audit_each(c->from, &f, audit_cb, c)) < 0)
			return fail(c, rc, "cannot read the audit trail: %s", kw_strerror(rc));
		if ((rc = store_audit_copy_many(to, c->pg.recs, c->pg.n)) < 0)
			return fail(c, rc, "cannot write the audit trail: %s", kw_strerror(rc));
		c->copied->audit += (int64_t)c->pg.n;
		f.after_seq = c->pg.last;
		owned_free(&c->o);
	} while (c->pg.n == STORE_COPY_PAGE);
	return 0;
}

/* The counts of what is copied differ between from and to: which. */
static int compare(struct copy *c, const struct store_counts *a,
		   const struct store_counts *b)
{
	static const struct {
		const char *name;
		size_t off;
	} kinds[] = {
		{ "meta values", offsetof(struct store_counts, meta) },
		{ "users", offsetof(struct store_counts, users) },
		{ "enrollment tokens", offsetof(struct store_counts, tokens) },
		{ "devices", offsetof(struct store_counts, devices) },
		{ "volumes", offsetof(struct store_counts, volumes) },
		{ "keys", offsetof(struct store_counts, keys) },
		{ "logons", offsetof(struct store_counts, logons) },
		{ "associations", offsetof(struct store_counts, assocs) },
		{ "audit records", offsetof(struct store_counts, audit) },
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int64_t x = *(const int64_t *)(const void *)((const char *)a + kinds[i].off);
		int64_t y = *(const int64_t *)(const void *)((const char *)b + kinds[i].off);

		if (x != y)
			return fail(c, KW_ERR_CONFLICT, "the copy has %lld %s, the source %lld: "
				    "nothing was written", (long long)y, kinds[i].name,
				    (long long)x);
	}
	return 0;
}

static int copy_write(struct store_tx *to, void *arg)
{
	struct copy *c = arg;
	struct store_counts have, want;
	int rc;

	/* A rerun starts afresh (store.h: fn resets what it writes to arg). */
	memset(c->copied, 0, sizeof(*c->copied));
	owned_free(&c->o);
	c->msg[0] = '\0';
	if ((rc = store_count_all(to, &have)) < 0)
		return fail(c, rc, "cannot count the records of the target: %s",
			    kw_strerror(rc));
	if (have.meta || have.users || have.tokens || have.devices || have.volumes ||
	    have.keys || have.logons || have.assocs || have.audit || have.sessions ||
	    have.limit_events)
		return fail(c, KW_ERR_EXISTS, "the target database is not empty (%lld devices, "
			    "%lld keys, %lld users, %lld audit records, %lld meta values): "
			    "it must be a new, empty database; nothing was written",
			    (long long)have.devices, (long long)have.keys,
			    (long long)have.users, (long long)have.audit, (long long)have.meta);
	if ((rc = copy_meta(c, to)) < 0 || (rc = copy_users(c, to)) < 0 ||
	    (rc = copy_tokens(c, to)) < 0 || (rc = copy_devices(c, to)) < 0 ||
	    (rc = copy_volumes(c, to)) < 0 || (rc = copy_keys(c, to)) < 0 ||
	    (rc = copy_audit(c, to)) < 0)
		return rc;
	if ((rc = store_count_all(c->from, &want)) < 0 ||
	    (rc = store_count_all(to, &have)) < 0)
		return fail(c, rc, "cannot count the records: %s", kw_strerror(rc));
	if ((rc = compare(c, &want, &have)) < 0)
		return rc;
	*c->copied = have;
	c->copied->sessions = c->copied->limit_events = 0;
	return 0;
}

static int copy_read(struct store_tx *from, void *arg)
{
	struct copy *c = arg;
	int rc;

	c->from = from;
	rc = store_write(c->to, copy_write, c);
	if (rc < 0 && !c->msg[0])
		fail(c, rc, "the copy failed: %s; nothing was written", kw_strerror(rc));
	return rc;
}

static int read_master_key_id(struct store_tx *tx, void *arg)
{
	char v[128];

	return store_meta_get(tx, "master_key_id", v, sizeof(v));
}

int store_copy_source(struct store *s, char *msg, size_t msglen)
{
	int rc = store_read(s, read_master_key_id, NULL);

	if (rc == KW_ERR_NOT_FOUND)
		snprintf(msg, msglen, "the source database holds no site (no master key ID "
			 "recorded; was keywarden init run?): nothing to copy");
	else if (rc < 0)
		snprintf(msg, msglen, "cannot read the source database: %s", kw_strerror(rc));
	return rc;
}

int store_copy(struct store *from, struct store *to, struct store_counts *copied,
	       char *msg, size_t msglen)
{
	struct copy c = { .to = to, .copied = copied, .msg = msg, .msglen = msglen };
	int rc;

	msg[0] = '\0';
	memset(copied, 0, sizeof(*copied));
	rc = store_read_once(from, copy_read, &c);
	if (rc < 0 && !msg[0])
		snprintf(msg, msglen, "cannot read the source database: %s", kw_strerror(rc));
	if (rc == 0)
		store_analyze(to);
	owned_done(&c.o);
	free(c.pg.recs);
	free(c.sub.recs);
	return rc;
}
