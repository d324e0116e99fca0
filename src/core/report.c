#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/report.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

/* ---- the recovery audit report ---- */

static const char *keep(struct report_audit *r, const char *s, int *rc)
{
	char *c;

	if (r->nstrs == r->capstrs) {
		size_t cap = r->capstrs ? r->capstrs * 2 : 256;
		char **n = realloc(r->strs, cap * sizeof(*n));

		if (!n) {
			*rc = KW_ERR_NOMEM;
			return "";
		}
		r->strs = n;
		r->capstrs = cap;
	}
	if (!(c = str_dup(s ? s : ""))) {
		*rc = KW_ERR_NOMEM;
		return "";
	}
	r->strs[r->nstrs++] = c;
	return c;
}

static int copy_audit(const struct audit_rec *a, void *arg)
{
	struct report_audit *r = arg;
	struct audit_rec *c;
	int rc = 0;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct audit_rec *n = realloc(r->recs, cap * sizeof(*n));

		if (!n)
			return KW_ERR_NOMEM;
		r->recs = n;
		r->cap = cap;
	}
	c = &r->recs[r->n];
	*c = *a;
	c->source = keep(r, a->source, &rc);
	c->result = keep(r, a->result, &rc);
	c->actor = keep(r, a->actor, &rc);
	c->end_user = keep(r, a->end_user, &rc);
	c->computer = keep(r, a->computer, &rc);
	c->device_id = keep(r, a->device_id, &rc);
	c->key_id = keep(r, a->key_id, &rc);
	c->key_type = keep(r, a->key_type, &rc);
	c->reason = keep(r, a->reason, &rc);
	c->comment = keep(r, a->comment, &rc);
	c->client = keep(r, a->client, &rc);
	r->n++;
	return rc;
}

static int count_one(const struct audit_rec *a, void *arg)
{
	(void)a;
	*(bool *)arg = true;
	return 1;
}

struct audit_page_q {
	const struct audit_filter *f;
	int64_t cursor, limit;
	bool newer;
	struct report_audit *out;
};

static int tx_audit_page(struct store_tx *tx, void *arg)
{
	struct audit_page_q *q = arg;
	struct report_audit *r = q->out;
	int rc;

	report_audit_free(r);
	/* One more than the page: whether more lie that way. */
	rc = store_audit_page(tx, q->f, q->cursor, q->newer, q->limit + 1, copy_audit, r);
	if (rc < 0)
		return rc;
	if ((int64_t)r->n > q->limit) {
		r->n--;
		if (q->newer)
			r->newer = true;
		else
			r->older = true;
	}
	if (q->newer) {
		/* Oldest first from the store: turned round. */
		for (size_t i = 0; i < r->n / 2; i++) {
			struct audit_rec t = r->recs[i];

			r->recs[i] = r->recs[r->n - 1 - i];
			r->recs[r->n - 1 - i] = t;
		}
	}
	if (!r->n)
		return 0;
	/* The other way: one record past the page's end there. */
	if (q->newer)
		rc = store_audit_page(tx, q->f, r->recs[r->n - 1].seq, false, 1, count_one,
				      &r->older);
	else
		rc = store_audit_page(tx, q->f, r->recs[0].seq, true, 1, count_one, &r->newer);
	return rc < 0 ? rc : 0;
}

int report_audit_page(struct store *s, const struct audit_filter *f, int64_t cursor,
		      bool newer, int64_t limit, struct report_audit *out)
{
	struct audit_page_q q = { f, cursor, limit, newer, out };

	memset(out, 0, sizeof(*out));
	if (limit <= 0 || cursor < 0)
		return KW_ERR_INVALID;
	return store_read(s, tx_audit_page, &q);
}

void report_audit_free(struct report_audit *r)
{
	for (size_t i = 0; i < r->nstrs; i++)
		free(r->strs[i]);
	free(r->strs);
	free(r->recs);
	memset(r, 0, sizeof(*r));
}

/* Appends cells (NULL ends them) as a CSV row. */
static int csv_row(struct buf *out, const char *const *cells, size_t n)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (i)
			rc = buf_putc(out, ',');
		if (rc == 0)
			rc = buf_put_csv(out, cells[i] ? cells[i] : "");
	}
	return rc < 0 ? rc : buf_puts(out, "\r\n");
}

struct audit_csv {
	struct buf *out;
	int64_t last;
	int64_t n;
};

static int audit_csv_row(const struct audit_rec *a, void *arg)
{
	struct audit_csv *c = arg;
	char at[TIME_ISO_LEN];
	const char *cells[10];

	time_format_iso(a->at, at);
	cells[0] = at;
	cells[1] = a->source;
	cells[2] = a->result;
	cells[3] = a->actor;
	cells[4] = a->end_user;
	cells[5] = a->computer;
	cells[6] = a->key_id;
	cells[7] = a->key_type;
	cells[8] = a->reason;
	cells[9] = a->client;
	c->last = a->seq;
	c->n++;
	return csv_row(c->out, cells, 10);
}

struct audit_csv_q {
	const struct audit_filter *f;
	int64_t cursor;
	struct audit_csv c;
};

static int tx_audit_csv(struct store_tx *tx, void *arg)
{
	struct audit_csv_q *q = arg;

	buf_reset(q->c.out);
	q->c.last = q->cursor;
	q->c.n = 0;
	return store_audit_page(tx, q->f, q->cursor, false, REPORT_CSV_PAGE, audit_csv_row, &q->c);
}

int report_audit_csv(struct store *s, const struct audit_filter *f, int64_t *cursor,
		     struct buf *out)
{
	struct audit_csv_q q = { f, *cursor, { out, 0, 0 } };
	int rc;

	rc = store_read(s, tx_audit_csv, &q);
	if (rc < 0) {
		buf_reset(out);
		return rc;
	}
	/* A page of records after the last one: stop after the first read
	 * that comes back short. A cursor of 0 means the newest, so an empty
	 * report must not start over. */
	*cursor = q.c.last;
	return q.c.n < REPORT_CSV_PAGE || q.c.last == 0 ? 1 : 0;
}

/* ---- keys disclosed and not yet rotated ---- */

struct unrotated_q {
	int64_t after_changed, after_row, limit;
	report_each_unrotated cb;
	void *arg;
};

static int unrotated_row(const struct key_full_rec *k, void *arg)
{
	struct unrotated_q *q = arg;
	struct report_unrotated u = {
		k->key.key_id, k->key.device_id, k->device->name, k->volume->mount,
		k->key.disclosed_at ? k->key.disclosed_at : k->key.changed_at,
		k->key.changed_at, k->key.row,
	};

	return q->cb(&u, q->arg);
}

static int tx_unrotated(struct store_tx *tx, void *arg)
{
	struct unrotated_q *q = arg;

	return store_key_each_state(tx, KEY_DISCLOSED, q->after_changed, q->after_row, q->limit,
				    unrotated_row, q);
}

int report_unrotated_page(struct store *s, int64_t after_changed, int64_t after_row,
			  int64_t limit, report_each_unrotated cb, void *arg)
{
	struct unrotated_q q = { after_changed, after_row, limit, cb, arg };

	if (limit <= 0)
		return KW_ERR_INVALID;
	return store_read_once(s, tx_unrotated, &q);
}

struct unrotated_csv {
	struct buf *out;
	int64_t now, changed, row, n;
};

static int unrotated_csv_row(const struct report_unrotated *k, void *arg)
{
	struct unrotated_csv *c = arg;
	char at[TIME_ISO_LEN], days[24];
	const char *cells[6];
	int64_t ago = c->now - k->disclosed_at;

	time_format_iso(k->disclosed_at, at);
	str_msg(days, sizeof(days), "%lld", (long long)(ago > 0 ? ago / 86400 : 0));
	cells[0] = k->computer;
	cells[1] = k->device_id;
	cells[2] = k->mount;
	cells[3] = k->key_id;
	cells[4] = at;
	cells[5] = days;
	c->changed = k->changed_at;
	c->row = k->row;
	c->n++;
	return csv_row(c->out, cells, 6);
}

struct unrotated_csv_q {
	struct unrotated_q q;
	struct unrotated_csv c;
};

static int tx_unrotated_csv(struct store_tx *tx, void *arg)
{
	struct unrotated_csv_q *q = arg;

	buf_reset(q->c.out);
	q->c.changed = q->q.after_changed;
	q->c.row = q->q.after_row;
	q->c.n = 0;
	return tx_unrotated(tx, &q->q);
}

static int unrotated_csv_cb(const struct report_unrotated *k, void *arg)
{
	return unrotated_csv_row(k, arg);
}

int report_unrotated_csv(struct store *s, int64_t now, int64_t *after_changed,
			 int64_t *after_row, struct buf *out)
{
	struct unrotated_csv_q q;
	int rc;

	memset(&q, 0, sizeof(q));
	q.c.out = out;
	q.c.now = now;
	q.q = (struct unrotated_q){ *after_changed, *after_row, REPORT_CSV_PAGE,
				    unrotated_csv_cb, &q.c };
	rc = store_read(s, tx_unrotated_csv, &q);
	if (rc < 0) {
		buf_reset(out);
		return rc;
	}
	*after_changed = q.c.changed;
	*after_row = q.c.row;
	return q.c.n < REPORT_CSV_PAGE ? 1 : 0;
}

/* ---- compliance ---- */

const char *compliance_state_name(enum compliance_state s)
{
	switch (s) {
	case COMPLIANCE_COMPLIANT:
		return "compliant";
	case COMPLIANCE_NON_COMPLIANT:
		return "non_compliant";
	case COMPLIANCE_UNKNOWN:
		return "unknown";
	}
	return "unknown";
}

bool compliance_volume_required(const struct volume_rec *v)
{
	return !strcmp(v->type, "os") || !strcmp(v->type, "fixed");
}

bool compliance_volume_ok(const struct volume_keys_rec *v)
{
	return !strcmp(v->volume.protection, "on") && v->volume.percent >= 100 &&
	       v->volume.encryption[0] && strcmp(v->volume.encryption, "none") &&
	       (v->key_states & KEY_STATE_BIT(KEY_ACTIVE));
}

enum compliance_state compliance_of(const struct device_volumes_rec *d, int64_t now,
				    int64_t stale_after)
{
	size_t required = 0;

	if (!d->device->last_checkin_at || d->device->last_checkin_at < now - stale_after)
		return COMPLIANCE_UNKNOWN;
	for (size_t i = 0; i < d->nvolumes; i++) {
		if (!compliance_volume_required(&d->volumes[i].volume))
			continue;
		required++;
		if (!compliance_volume_ok(&d->volumes[i]))
			return COMPLIANCE_NON_COMPLIANT;
	}
	return required ? COMPLIANCE_COMPLIANT : COMPLIANCE_NON_COMPLIANT;
}

struct compliance_q {
	const char *after_id;
	int64_t limit;
	store_each_device_volumes cb;
	void *arg;
	char *last;
};

static int compliance_row(const struct device_volumes_rec *d, void *arg)
{
	struct compliance_q *q = arg;

	memcpy(q->last, d->device->id, sizeof(d->device->id));
	return q->cb ? q->cb(d, q->arg) : 0;
}

static int tx_compliance(struct store_tx *tx, void *arg)
{
	struct compliance_q *q = arg;

	q->last[0] = '\0';
	return store_device_each_volumes(tx, q->after_id, q->limit, compliance_row, q);
}

int report_compliance_page(struct store *s, const char *after_id, int64_t limit,
			   store_each_device_volumes cb, void *arg,
			   char last[STORE_ID_LEN + 1])
{
	struct compliance_q q = { after_id, limit, cb, arg, last };

	if (limit <= 0)
		return KW_ERR_INVALID;
	return store_read_once(s, tx_compliance, &q);
}

struct summary_q {
	int64_t now, stale_after;
	struct compliance_summary *out;
	int64_t n;
	char last[STORE_ID_LEN + 1];
};

static int summary_row(const struct device_volumes_rec *d, void *arg)
{
	struct summary_q *q = arg;

	q->out->n[compliance_of(d, q->now, q->stale_after)]++;
	q->out->devices++;
	q->n++;
	memcpy(q->last, d->device->id, sizeof(d->device->id));
	return 0;
}

#define SUMMARY_PAGE 1000

/* Every device, a page at a time, in one snapshot. */
static int tx_summary(struct store_tx *tx, void *arg)
{
	struct summary_q *q = arg;
	int rc;

	memset(q->out, 0, sizeof(*q->out));
	q->last[0] = '\0';
	do {
		q->n = 0;
		rc = store_device_each_volumes(tx, q->last, SUMMARY_PAGE, summary_row, q);
	} while (rc == 0 && q->n == SUMMARY_PAGE);
	return rc;
}

/* The last slow count (see report.h); under summary_lock, which is held
 * for the count itself too. */
static pthread_mutex_t summary_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	const struct store *store;
	int64_t stale_after;
	struct compliance_summary sum;
} slow;

int report_compliance_summary(struct store *s, int64_t now, int64_t stale_after,
			      struct compliance_summary *out)
{
	struct summary_q q;
	int64_t t0;
	int rc;

	pthread_mutex_lock(&summary_lock);
	if (slow.store == s && slow.stale_after == stale_after && now >= slow.sum.counted_at &&
	    now - slow.sum.counted_at < REPORT_SUMMARY_REUSE_S) {
		*out = slow.sum;
		pthread_mutex_unlock(&summary_lock);
		return 0;
	}
	memset(&q, 0, sizeof(q));
	q.now = now;
	q.stale_after = stale_after;
	q.out = out;
	t0 = time_mono_ms();
	rc = store_read(s, tx_summary, &q);
	out->counted_at = now;
	slow.store = NULL;
	if (rc == 0 && time_mono_ms() - t0 > REPORT_SUMMARY_SLOW_MS) {
		slow.store = s;
		slow.stale_after = stale_after;
		slow.sum = *out;
	}
	pthread_mutex_unlock(&summary_lock);
	return rc;
}

struct compliance_csv {
	struct buf *out;
	int64_t now, stale_after, n;
};

static int compliance_csv_row(const struct device_volumes_rec *d, void *arg)
{
	struct compliance_csv *c = arg;
	const struct device_rec *dev = d->device;
	char at[TIME_ISO_LEN] = "", pct[16];
	const char *cells[12];
	int rc = 0;

	if (dev->last_checkin_at)
		time_format_iso(dev->last_checkin_at, at);
	cells[0] = dev->name;
	cells[1] = dev->id;
	cells[2] = dev->domain;
	cells[3] = dev->os;
	cells[4] = at;
	cells[5] = compliance_state_name(compliance_of(d, c->now, c->stale_after));
	c->n++;
	if (!d->nvolumes) {
		for (size_t i = 6; i < 12; i++)
			cells[i] = "";
		return csv_row(c->out, cells, 12);
	}
	for (size_t i = 0; rc == 0 && i < d->nvolumes; i++) {
		const struct volume_keys_rec *v = &d->volumes[i];

		str_msg(pct, sizeof(pct), "%d", v->volume.percent);
		cells[6] = v->volume.mount;
		cells[7] = v->volume.type;
		cells[8] = v->volume.protection;
		cells[9] = v->volume.encryption;
		cells[10] = pct;
		cells[11] = v->key_states & KEY_STATE_BIT(KEY_ACTIVE) ? "yes" : "no";
		rc = csv_row(c->out, cells, 12);
	}
	return rc;
}

struct compliance_csv_q {
	struct compliance_q q;
	struct compliance_csv c;
};

static int tx_compliance_csv(struct store_tx *tx, void *arg)
{
	struct compliance_csv_q *q = arg;

	buf_reset(q->c.out);
	q->c.n = 0;
	return tx_compliance(tx, &q->q);
}

#define COMPLIANCE_CSV_PAGE 200   /* devices of a part: about 64 KiB */

int report_compliance_csv(struct store *s, int64_t now, int64_t stale_after,
			  char after_id[STORE_ID_LEN + 1], struct buf *out)
{
	struct compliance_csv_q q;
	char last[STORE_ID_LEN + 1] = "";
	int rc;

	memset(&q, 0, sizeof(q));
	q.c = (struct compliance_csv){ out, now, stale_after, 0 };
	q.q = (struct compliance_q){ after_id, COMPLIANCE_CSV_PAGE, compliance_csv_row, &q.c,
				     last };
	rc = store_read(s, tx_compliance_csv, &q);
	if (rc < 0) {
		buf_reset(out);
		return rc;
	}
	if (last[0])
		memcpy(after_id, last, sizeof(last));
	return q.c.n < COMPLIANCE_CSV_PAGE ? 1 : 0;
}
