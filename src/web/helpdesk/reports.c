/* The help desk's reports (SPEC §4, issue 10 points 4, 5 and 7): the
 * recovery audit report, the keys disclosed and not yet rotated, and
 * compliance; each a page of HTML or, with ?format=csv, the whole report as
 * CSV streamed a part at a time (core/report.h reads the store). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/report.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "web/app.h"
#include "web/helpdesk/helpdesk.h"
#include "web/web.h"

#define FILTER_MAX 256           /* bytes of a user or computer filter */

/* ---- streamed CSV ---- */

enum csv_kind { CSV_AUDIT, CSV_UNROTATED, CSV_COMPLIANCE };

/* Everything a CSV stream needs, owned: the request is gone by the time
 * its parts are made. */
struct csv_stream {
	enum csv_kind kind;
	struct store *store;
	bool header_sent;
	/* audit */
	struct audit_filter f;
	char *result, *source, *user, *computer;
	int64_t cursor;
	/* unrotated */
	int64_t now, after_changed, after_row;
	/* compliance */
	int64_t stale_after;
	char after_id[STORE_ID_LEN + 1];
};

static void csv_stream_free(void *arg)
{
	struct csv_stream *c = arg;

	free(c->result);
	free(c->source);
	free(c->user);
	free(c->computer);
	free(c);
}

static int csv_stream_part(void *arg, struct buf *out)
{
	static const char *const header[] = {
		[CSV_AUDIT] = REPORT_AUDIT_CSV_HEADER,
		[CSV_UNROTATED] = REPORT_UNROTATED_CSV_HEADER,
		[CSV_COMPLIANCE] = REPORT_COMPLIANCE_CSV_HEADER,
	};
	struct csv_stream *c = arg;
	struct buf part;
	int rc;

	/* A cap, not an allocation: a part is a page of records, about
	 * HTTP_STREAM_PART bytes, more for devices with many volumes. */
	buf_init(&part, 64u << 20);
	switch (c->kind) {
	case CSV_AUDIT:
		rc = report_audit_csv(c->store, &c->f, &c->cursor, &part);
		break;
	case CSV_UNROTATED:
		rc = report_unrotated_csv(c->store, c->now, &c->after_changed, &c->after_row,
					  &part);
		break;
	default:
		rc = report_compliance_csv(c->store, c->now, c->stale_after, c->after_id, &part);
		break;
	}
	if (rc >= 0 && !c->header_sent) {
		int r = buf_puts(out, header[c->kind]);

		c->header_sent = true;
		if (r < 0)
			rc = r;
	}
	if (rc >= 0 && part.len) {
		int r = buf_append(out, part.data, part.len);

		if (r < 0)
			rc = r;
	}
	buf_free(&part);
	return rc;
}

/* Starts the CSV answer: c is the response's from here on, freed with it. */
static int csv_start(struct http_response *resp, struct csv_stream *c, const char *file)
{
	char disp[96];

	resp->status = 200;
	resp->content_type = "text/csv; charset=utf-8";
	buf_reset(&resp->body);
	str_msg(disp, sizeof(disp), "attachment; filename=\"%s\"", file);
	resp->stream = csv_stream_part;
	resp->stream_free = csv_stream_free;
	resp->stream_arg = c;
	if (http_header(resp, "Content-Disposition", disp) < 0 ||
	    http_header(resp, "Cache-Control", "no-store") < 0)
		return KW_ERR_NOMEM;
	return 0;
}

static bool want_csv(const struct http_request *req)
{
	const char *f = http_query(req, "format");

	return f && !strcmp(f, "csv");
}

/* ---- what the pages share ---- */

/* Copies a page keeps until it is rendered. */
struct keep {
	char **v;
	size_t n, cap;
};

static const char *kept(struct keep *k, char *s)
{
	if (!s)
		return NULL;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 128;
		char **n = realloc(k->v, cap * sizeof(*n));

		if (!n) {
			free(s);
			return NULL;
		}
		k->v = n;
		k->cap = cap;
	}
	k->v[k->n++] = s;
	return s;
}

static const char *keepf(struct keep *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const char *keepf(struct keep *k, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(s = malloc((size_t)n + 1)))
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return kept(k, s);
}

static void keep_free(struct keep *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
}

/* "2026-12-03 09:15" (UTC) */
static const char *when(struct keep *k, int64_t t)
{
	char iso[TIME_ISO_LEN];

	if (!t)
		return "";
	time_format_iso(t, iso);
	return keepf(k, "%.10s %.5s", iso, iso + 11);
}

/* How long ago, in the page's language. */
static const char *ago(struct keep *k, int64_t now, int64_t t)
{
	int64_t s = now > t ? now - t : 0;

	if (s < 3600)
		return keepf(k, _("%lld min"), (long long)(s / 60));
	if (s < 2 * 86400)
		return keepf(k, _("%lld h"), (long long)(s / 3600));
	return keepf(k, _("%lld days"), (long long)(s / 86400));
}

static const char *arg_or_null(const struct http_request *req, const char *name)
{
	const char *v = http_query(req, name);

	return v && v[0] ? v : NULL;
}

/* ---- the recovery audit report ---- */

static const struct {
	const char *code, *label;
} sources[] = {
	{ "self_service", N_("Self-service") },
	{ "helpdesk", N_("Help desk") },
	{ "api", N_("API") },
	{ "cli", N_("Command line") },
}, results[] = {
	{ "disclosed", N_("Disclosed") },
	{ "not_found", N_("Not found") },
	{ "ambiguous", N_("Several keys matched") },
	{ "invalid", N_("Invalid request") },
	{ "rate_limited", N_("Rate limited") },
	{ "denied", N_("Denied") },
	{ "exported", N_("Exported") },
	{ "rekeyed", N_("Re-keyed") },
	{ "associated", N_("User associated with a device") },
	{ "imported", N_("Keys imported") },
	{ "user_added", N_("Account added") },
	{ "roles_changed", N_("Roles changed") },
	{ "user_disabled", N_("Account disabled") },
	{ "user_enabled", N_("Account enabled") },
	{ "password_reset", N_("Password reset") },
	{ "token_created", N_("Enrollment token created") },
	{ "token_revoked", N_("Enrollment token revoked") },
};

#define NSOURCES (sizeof(sources) / sizeof(sources[0]))
#define NRESULTS (sizeof(results) / sizeof(results[0]))

static const char *label_of(const char *code, bool source)
{
	size_t n = source ? NSOURCES : NRESULTS;

	for (size_t i = 0; i < n; i++) {
		const char *c = source ? sources[i].code : results[i].code;

		if (!strcmp(c, code))
			return _(source ? sources[i].label : results[i].label);
	}
	return code;
}

static bool known(const char *code, bool source)
{
	return label_of(code, source) != code;
}

/* The filters of the audit report from the query; what is wrong in err. */
struct audit_args {
	struct audit_filter f;
	const char *from, *to;       /* as given */
	int64_t after, before;
	const char *err;
};

static void audit_args(const struct http_request *req, struct audit_args *a)
{
	const char *after = arg_or_null(req, "after"), *before = arg_or_null(req, "before");
	int64_t day;

	memset(a, 0, sizeof(*a));
	a->from = arg_or_null(req, "from");
	a->to = arg_or_null(req, "to");
	a->f.result = arg_or_null(req, "result");
	a->f.source = arg_or_null(req, "source");
	a->f.user = arg_or_null(req, "user");
	a->f.computer = arg_or_null(req, "computer");
	if (a->from) {
		if (strlen(a->from) != 10 || time_parse_iso(a->from, &day) < 0)
			a->err = _("Enter dates as YYYY-MM-DD.");
		else
			a->f.from = day;
	}
	if (a->to) {
		/* To the end of that day. */
		if (strlen(a->to) != 10 || time_parse_iso(a->to, &day) < 0)
			a->err = _("Enter dates as YYYY-MM-DD.");
		else
			a->f.to = day + 86400;
	}
	if (a->f.from && a->f.to && a->f.to <= a->f.from)
		a->err = _("The end date is before the start date.");
	if ((a->f.result && !known(a->f.result, false)) ||
	    (a->f.source && !known(a->f.source, true)))
		a->err = _("Choose a result and a source from the lists.");
	if ((a->f.user && strlen(a->f.user) > FILTER_MAX) ||
	    (a->f.computer && strlen(a->f.computer) > FILTER_MAX))
		a->err = _("A name to filter by is too long.");
	if ((after && str_to_i64(after, 1, INT64_MAX, &a->after) < 0) ||
	    (before && str_to_i64(before, 1, INT64_MAX, &a->before) < 0))
		a->err = _("That page does not exist; start again from the first page.");
}

/* The filters as a query string (for links), ending in '&' when not empty. */
static const char *audit_query(struct keep *k, const struct audit_args *a)
{
	const char *names[] = { "from", "to", "result", "source", "user", "computer" };
	const char *vals[] = { a->from, a->to, a->f.result, a->f.source, a->f.user,
			       a->f.computer };
	struct buf b;
	int rc = 0;

	buf_init(&b, 8 * 1024);
	rc = buf_puts(&b, "");
	for (size_t i = 0; rc == 0 && i < 6; i++) {
		if (!vals[i])
			continue;
		if ((rc = buf_printf(&b, "%s=", names[i])) == 0 &&
		    (rc = buf_put_url(&b, vals[i])) == 0)
			rc = buf_putc(&b, '&');
	}
	if (rc < 0) {
		buf_free(&b);
		return NULL;
	}
	return kept(k, buf_steal(&b, NULL));
}

static int audit_csv(struct app *app, const struct audit_args *a, struct http_response *resp)
{
	struct csv_stream *c = calloc(1, sizeof(*c));

	if (!c)
		return KW_ERR_NOMEM;
	c->kind = CSV_AUDIT;
	c->store = app->store;
	c->f.from = a->f.from;
	c->f.to = a->f.to;
	if ((a->f.result && !(c->result = str_dup(a->f.result))) ||
	    (a->f.source && !(c->source = str_dup(a->f.source))) ||
	    (a->f.user && !(c->user = str_dup(a->f.user))) ||
	    (a->f.computer && !(c->computer = str_dup(a->f.computer)))) {
		csv_stream_free(c);
		return KW_ERR_NOMEM;
	}
	c->f.result = c->result;
	c->f.source = c->source;
	c->f.user = c->user;
	c->f.computer = c->computer;
	return csv_start(resp, c, "recovery-audit.csv");
}

/* The options of a <select>: value, label, selected. */
static void options(struct tpl *items, bool source, const char *chosen)
{
	size_t n = source ? NSOURCES : NRESULTS;

	for (size_t i = 0; i < n; i++) {
		const char *c = source ? sources[i].code : results[i].code;

		tpl_init(&items[i]);
		tpl_set(&items[i], "value", c);
		tpl_set(&items[i], "label", _(source ? sources[i].label : results[i].label));
		tpl_set(&items[i], "selected", chosen && !strcmp(chosen, c) ? "1" : NULL);
	}
}

int helpdesk_report_audit(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct audit_args a;
	struct report_audit page;
	struct tpl t, *rows, src[NSOURCES], res[NRESULTS];
	struct keep k = { NULL, 0, 0 };
	const char *q;
	int rc, status = 200;

	audit_args(req, &a);
	if (!a.err && want_csv(req))
		return audit_csv(app, &a, resp);
	/* Off the worker's small stack. */
	if (!(rows = calloc(REPORT_PAGE, sizeof(*rows))))
		return KW_ERR_NOMEM;
	memset(&page, 0, sizeof(page));
	if (!a.err) {
		rc = report_audit_page(app->store, &a.f, a.before ? a.before : a.after,
				       a.before != 0, REPORT_PAGE, &page);
		if (rc < 0) {
			report_audit_free(&page);
			free(rows);
			return rc;
		}
	} else {
		status = 400;
	}
	tpl_init(&t);
	tpl_set(&t, "title", _("Recovery audit report"));
	tpl_set(&t, "error", a.err);
	tpl_set(&t, "f_from", a.from);
	tpl_set(&t, "f_to", a.to);
	tpl_set(&t, "f_user", a.f.user);
	tpl_set(&t, "f_computer", a.f.computer);
	options(src, true, a.f.source);
	options(res, false, a.f.result);
	tpl_set_list(&t, "sources", src, NSOURCES);
	tpl_set_list(&t, "results", res, NRESULTS);
	q = audit_query(&k, &a);
	for (size_t i = 0; i < page.n; i++) {
		const struct audit_rec *r = &page.recs[i];

		tpl_init(&rows[i]);
		tpl_set(&rows[i], "at", when(&k, r->at));
		tpl_set(&rows[i], "source", label_of(r->source, true));
		tpl_set(&rows[i], "result", label_of(r->result, false));
		tpl_set(&rows[i], "disclosed", strcmp(r->result, "disclosed") ? NULL : "1");
		tpl_set(&rows[i], "actor", r->actor);
		tpl_set(&rows[i], "end_user", r->end_user);
		tpl_set(&rows[i], "computer", r->computer);
		tpl_set(&rows[i], "key_id", r->key_id);
		tpl_set(&rows[i], "key_type", r->key_type);
		tpl_set(&rows[i], "reason", r->reason);
		tpl_set(&rows[i], "client", r->client);
	}
	tpl_set_list(&t, "rows", rows, page.n);
	if (page.n && page.newer)
		tpl_set(&t, "newer_url", keepf(&k, "/helpdesk/reports/audit?%sbefore=%lld", q ? q : "",
					       (long long)page.recs[0].seq));
	if (page.n && page.older)
		tpl_set(&t, "older_url", keepf(&k, "/helpdesk/reports/audit?%safter=%lld", q ? q : "",
					       (long long)page.recs[page.n - 1].seq));
	if (!a.err)
		tpl_set(&t, "csv_url", keepf(&k, "/helpdesk/reports/audit?%sformat=csv", q ? q : ""));
	if (a.after || a.before)
		tpl_set(&t, "first_url", keepf(&k, "/helpdesk/reports/audit?%s", q ? q : ""));
	rc = helpdesk_page(app, req, resp, status, HD_NAV_AUDIT, "report_audit.html", &t);
	report_audit_free(&page);
	free(rows);
	keep_free(&k);
	return rc;
}

/* ---- keys disclosed and not yet rotated ---- */

struct unrotated_page {
	struct keep *k;
	struct tpl rows[REPORT_PAGE + 1];
	size_t n;
	int64_t now, changed[REPORT_PAGE + 1], row[REPORT_PAGE + 1];
};

static int unrotated_row(const struct report_unrotated *u, void *arg)
{
	struct unrotated_page *p = arg;
	struct tpl *r = &p->rows[p->n];

	tpl_init(r);
	tpl_set(r, "computer", keepf(p->k, "%s", u->computer));
	tpl_set(r, "device_href", keepf(p->k, "/helpdesk/devices/%s", u->device_id));
	tpl_set(r, "mount", keepf(p->k, "%s", u->mount));
	tpl_set(r, "key_id", keepf(p->k, "%s", u->key_id));
	tpl_set(r, "at", when(p->k, u->disclosed_at));
	tpl_set(r, "ago", ago(p->k, p->now, u->disclosed_at));
	p->changed[p->n] = u->changed_at;
	p->row[p->n++] = u->row;
	return 0;
}

/* "after=CHANGED.ROW": the last key of the page before. */
static bool unrotated_after(const char *s, int64_t *changed, int64_t *row)
{
	const char *dot = s ? strchr(s, '.') : NULL;
	char head[24];

	if (!dot || (size_t)(dot - s) >= sizeof(head))
		return false;
	memcpy(head, s, (size_t)(dot - s));
	head[dot - s] = '\0';
	return str_to_i64(head, 0, INT64_MAX, changed) == 0 &&
	       str_to_i64(dot + 1, 0, INT64_MAX, row) == 0;
}

int helpdesk_report_unrotated(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct keep k = { NULL, 0, 0 };
	struct unrotated_page *p;
	struct tpl t;
	const char *after = arg_or_null(req, "after");
	int64_t ac = 0, ar = 0;
	int rc;

	if (!unrotated_after(after, &ac, &ar))
		after = NULL, ac = ar = 0;
	if (want_csv(req)) {
		struct csv_stream *c = calloc(1, sizeof(*c));

		if (!c)
			return KW_ERR_NOMEM;
		c->kind = CSV_UNROTATED;
		c->store = app->store;
		c->now = time_now();
		return csv_start(resp, c, "keys-not-rotated.csv");
	}
	if (!(p = calloc(1, sizeof(*p))))
		return KW_ERR_NOMEM;
	p->k = &k;
	p->now = time_now();
	/* One more than the page: whether a next page exists. */
	rc = report_unrotated_page(app->store, ac, ar, REPORT_PAGE + 1, unrotated_row, p);
	if (rc < 0) {
		free(p);
		keep_free(&k);
		return rc;
	}
	tpl_init(&t);
	tpl_set(&t, "title", _("Keys disclosed and not yet rotated"));
	if (p->n > REPORT_PAGE) {
		p->n = REPORT_PAGE;
		tpl_set(&t, "next_url", keepf(&k, "/helpdesk/reports/unrotated?after=%lld.%lld",
					      (long long)p->changed[p->n - 1],
					      (long long)p->row[p->n - 1]));
	}
	tpl_set_list(&t, "rows", p->rows, p->n);
	tpl_set(&t, "paged", after ? "1" : NULL);
	rc = helpdesk_page(app, req, resp, 200, HD_NAV_UNROTATED, "report_unrotated.html", &t);
	free(p);
	keep_free(&k);
	return rc;
}

/* ---- compliance ---- */

struct compliance_page {
	struct keep *k;
	struct tpl rows[REPORT_PAGE + 1];
	struct tpl vols[(REPORT_PAGE + 1) * 4];
	char ids[REPORT_PAGE + 1][STORE_ID_LEN + 1];
	size_t n, nv;
	int64_t now, stale_after;
};

static const char *state_label(enum compliance_state s)
{
	switch (s) {
	case COMPLIANCE_COMPLIANT:
		return _("Compliant");
	case COMPLIANCE_NON_COMPLIANT:
		return _("Not compliant");
	default:
		return _("Unknown");
	}
}

static int compliance_row(const struct device_volumes_rec *d, void *arg)
{
	struct compliance_page *p = arg;
	struct tpl *r = &p->rows[p->n];
	enum compliance_state s = compliance_of(d, p->now, p->stale_after);
	size_t first = p->nv;

	memcpy(p->ids[p->n++], d->device->id, sizeof(p->ids[0]));
	tpl_init(r);
	tpl_set(r, "name", keepf(p->k, "%s", d->device->name));
	tpl_set(r, "domain", keepf(p->k, "%s", d->device->domain));
	tpl_set(r, "os", keepf(p->k, "%s", d->device->os));
	tpl_set(r, "checkin", d->device->last_checkin_at ?
		when(p->k, d->device->last_checkin_at) : _("Never"));
	tpl_set(r, "state", state_label(s));
	tpl_set(r, "state_code", compliance_state_name(s));
	for (size_t i = 0; i < d->nvolumes && p->nv < sizeof(p->vols) / sizeof(p->vols[0]);
	     i++) {
		const struct volume_keys_rec *v = &d->volumes[i];
		struct tpl *vt = &p->vols[p->nv++];

		tpl_init(vt);
		tpl_set(vt, "mount", keepf(p->k, "%s", v->volume.mount));
		tpl_set(vt, "type", keepf(p->k, "%s", v->volume.type));
		tpl_set(vt, "protection", keepf(p->k, "%s", v->volume.protection));
		tpl_set(vt, "encryption", keepf(p->k, "%s", v->volume.encryption));
		tpl_set(vt, "percent", keepf(p->k, "%d", v->volume.percent));
		tpl_set(vt, "escrowed", v->key_states & KEY_STATE_BIT(KEY_ACTIVE) ?
			_("Yes") : _("No"));
		tpl_set(vt, "bad", compliance_volume_required(&v->volume) &&
			!compliance_volume_ok(v) ? "1" : NULL);
	}
	tpl_set_list(r, "vols", p->vols + first, p->nv - first);
	return 0;
}

static const char *percent(struct keep *k, int64_t n, int64_t total)
{
	if (!total)
		return "0 %";
	/* One decimal, rounded. */
	return keepf(k, "%lld.%lld %%", (long long)((n * 1000 + total / 2) / total / 10),
		     (long long)((n * 1000 + total / 2) / total % 10));
}

int helpdesk_report_compliance(void *ctx, struct http_request *req,
			       struct http_response *resp)
{
	struct app *app = ctx;
	struct keep k = { NULL, 0, 0 };
	struct compliance_page *p;
	struct compliance_summary sum;
	struct tpl t;
	const char *after = arg_or_null(req, "after");
	char last[STORE_ID_LEN + 1];
	int64_t now = time_now(), stale = app->cfg->stale_after;
	int rc;

	if (after && strlen(after) > STORE_ID_LEN)
		after = NULL;
	if (want_csv(req)) {
		struct csv_stream *c = calloc(1, sizeof(*c));

		if (!c)
			return KW_ERR_NOMEM;
		c->kind = CSV_COMPLIANCE;
		c->store = app->store;
		c->now = now;
		c->stale_after = stale;
		return csv_start(resp, c, "compliance.csv");
	}
	if ((rc = report_compliance_summary(app->store, now, stale, &sum)) < 0)
		return rc;
	if (!(p = calloc(1, sizeof(*p))))
		return KW_ERR_NOMEM;
	p->k = &k;
	p->now = now;
	p->stale_after = stale;
	rc = report_compliance_page(app->store, after, REPORT_PAGE + 1, compliance_row, p, last);
	if (rc < 0) {
		free(p);
		keep_free(&k);
		return rc;
	}
	tpl_init(&t);
	tpl_set(&t, "title", _("Compliance report"));
	tpl_set(&t, "devices", keepf(&k, "%lld", (long long)sum.devices));
	tpl_set(&t, "n_compliant", keepf(&k, "%lld", (long long)sum.n[COMPLIANCE_COMPLIANT]));
	tpl_set(&t, "n_non_compliant",
		keepf(&k, "%lld", (long long)sum.n[COMPLIANCE_NON_COMPLIANT]));
	tpl_set(&t, "n_unknown", keepf(&k, "%lld", (long long)sum.n[COMPLIANCE_UNKNOWN]));
	tpl_set(&t, "p_compliant", percent(&k, sum.n[COMPLIANCE_COMPLIANT], sum.devices));
	tpl_set(&t, "p_non_compliant", percent(&k, sum.n[COMPLIANCE_NON_COMPLIANT], sum.devices));
	tpl_set(&t, "p_unknown", percent(&k, sum.n[COMPLIANCE_UNKNOWN], sum.devices));
	tpl_set(&t, "stale_text", keepf(&k, _("Computers that have not checked in for %lld "
					      "days are unknown."), (long long)(stale / 86400)));
	if (sum.counted_at != now) {
		char at[TIME_ISO_LEN];

		time_format_iso(sum.counted_at, at);
		at[10] = ' ';
		at[19] = '\0';   /* 2026-12-03 09:41:07 */
		tpl_set(&t, "counted_at", keepf(&k, _("Counted at %s UTC; the counts of a "
						      "large site are made at most once a "
						      "minute."), at));
	}
	if (p->n > REPORT_PAGE) {
		p->n = REPORT_PAGE;
		tpl_set(&t, "next_url", keepf(&k, "/helpdesk/reports/compliance?after=%s",
					      p->ids[p->n - 1]));
	}
	tpl_set_list(&t, "rows", p->rows, p->n);
	tpl_set(&t, "paged", after ? "1" : NULL);
	rc = helpdesk_page(app, req, resp, 200, HD_NAV_COMPLIANCE, "report_compliance.html", &t);
	free(p);
	keep_free(&k);
	return rc;
}
