#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

/* An iteration callback's way to stop early without reporting an error. */
#define STOP 1

/* A CSV line holds one record; far above what the request handlers accept. */
#define CSV_LINE_MAX (1024 * 1024)

static void hash_i64(crypto_hash_sha256_state *st, int64_t v)
{
	uint64_t u = (uint64_t)v;
	uint8_t b[8];

	for (int i = 7; i >= 0; i--) {
		b[i] = (uint8_t)(u & 0xff);
		u >>= 8;
	}
	crypto_hash_sha256_update(st, b, sizeof(b));
}

/* Length-prefixed, so that moving bytes from one field to the next
 * ("ab","c" and "a","bc") changes the hash. */
static void hash_str(crypto_hash_sha256_state *st, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint8_t b[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
			 (uint8_t)n };

	crypto_hash_sha256_update(st, b, sizeof(b));
	if (n)
		crypto_hash_sha256_update(st, (const unsigned char *)s, n);
}

void audit_hash(const struct audit_rec *rec, uint8_t out[32])
{
	const char *text[] = { rec->source, rec->result, rec->actor, rec->end_user,
			       rec->computer, rec->device_id, rec->key_id, rec->key_type,
			       rec->reason, rec->comment, rec->client };
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, rec->prev_hash, 32);
	hash_i64(&st, rec->seq);
	hash_i64(&st, rec->at);
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		hash_str(&st, text[i]);
	crypto_hash_sha256_final(&st, out);
}

const char *const audit_sources[] = {
	AUDIT_SELF_SERVICE, AUDIT_HELPDESK, AUDIT_API, AUDIT_CLI, NULL,
};

const char *const audit_results[] = {
	AUDIT_DISCLOSED, AUDIT_AMBIGUOUS, AUDIT_NOT_FOUND, AUDIT_INVALID,
	AUDIT_RATE_LIMITED, AUDIT_DENIED, AUDIT_EXPORTED, AUDIT_REKEYED, AUDIT_ASSOCIATED,
	AUDIT_IMPORTED,
	AUDIT_USER_ADDED, AUDIT_ROLES_CHANGED, AUDIT_USER_DISABLED, AUDIT_USER_ENABLED,
	AUDIT_PASSWORD_RESET, AUDIT_TOKEN_CREATED, AUDIT_TOKEN_REVOKED, NULL,
};

bool audit_name_known(const char *const *list, const char *v)
{
	for (; *list; list++)
		if (!strcmp(*list, v))
			return true;
	return false;
}

int audit_append(struct store_tx *tx, struct audit_rec *rec)
{
	return store_audit_append(tx, rec, audit_hash);
}

struct verify {
	struct audit_report *r;
	int64_t last;            /* seq of the last sound record; 0 = none yet */
	uint8_t hash[32];        /* its hash (zeros before the first) */
	bool bad;
};

static int verify_fail(struct verify *v, int64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int verify_fail(struct verify *v, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	v->bad = true;
	v->r->first_bad = seq;
	va_start(ap, fmt);
	vsnprintf(v->r->problem, sizeof(v->r->problem), fmt, ap);
	va_end(ap);
	return STOP;
}

static int verify_rec(const struct audit_rec *a, void *arg)
{
	struct verify *v = arg;
	int64_t want = v->last + 1;
	uint8_t h[32];

	v->r->records++;
	if (a->seq == want + 1)
		return verify_fail(v, want, "record %lld is missing", (long long)want);
	if (a->seq > want)
		return verify_fail(v, want, "records %lld to %lld are missing",
				   (long long)want, (long long)(a->seq - 1));
	if (a->seq != want)   /* only a seq below 1 can get here */
		return verify_fail(v, a->seq, "record %lld has an invalid number",
				   (long long)a->seq);
	/* Checked before the record's own hash: a record renumbered to make
	 * room for a forged one is reported where the chain breaks. */
	if (memcmp(a->prev_hash, v->hash, sizeof(v->hash)) && a->seq == 1)
		return verify_fail(v, 1, "record 1 does not start the chain: a record was "
				   "inserted or removed before it");
	if (memcmp(a->prev_hash, v->hash, sizeof(v->hash)))
		return verify_fail(v, a->seq, "record %lld does not follow record %lld: a "
				   "record was inserted or removed before it",
				   (long long)a->seq, (long long)v->last);
	audit_hash(a, h);
	if (memcmp(h, a->hash, sizeof(h)))
		return verify_fail(v, a->seq, "record %lld was altered", (long long)a->seq);
	v->last = a->seq;
	memcpy(v->hash, a->hash, sizeof(v->hash));
	return 0;
}

/* After the records: the head must name the last of them, or records were
 * deleted from (or added at) the end. */
static int verify_head(struct store_tx *tx, struct verify *v)
{
	uint8_t hash[32];
	int64_t seq;
	int rc;

	rc = store_audit_head(tx, &seq, hash);
	if (rc == KW_ERR_NOT_FOUND && v->last == 0)
		return 0;
	if (rc == KW_ERR_NOT_FOUND)
		return verify_fail(v, v->last + 1, "the chain head is missing: deleted "
				   "newest records could not be noticed");
	if (rc == KW_ERR_INVALID)
		return verify_fail(v, v->last + 1, "the chain head is malformed");
	if (rc < 0)
		return rc;
	if (seq > v->last && v->last == 0)
		return verify_fail(v, 1, "all records were deleted (the newest was "
				   "record %lld)", (long long)seq);
	if (seq > v->last)
		return verify_fail(v, v->last + 1, "the newest record(s) after %lld were "
				   "deleted", (long long)v->last);
	if (seq < v->last)
		return verify_fail(v, seq + 1, "record %lld was inserted after the newest "
				   "record %lld", (long long)(seq + 1), (long long)seq);
	if (memcmp(hash, v->hash, sizeof(hash)))
		return verify_fail(v, seq, "record %lld was altered", (long long)seq);
	return 0;
}

static int verify_tx(struct store_tx *tx, void *arg)
{
	struct verify *v = arg;
	int rc;

	/* A rerun starts afresh. */
	memset(v->r, 0, sizeof(*v->r));
	v->last = 0;
	memset(v->hash, 0, sizeof(v->hash));
	v->bad = false;
	rc = store_audit_each(tx, NULL, verify_rec, v);
	if (rc < 0 || v->bad)
		return rc < 0 ? rc : 0;
	rc = verify_head(tx, v);
	return rc < 0 ? rc : 0;
}

int audit_verify(struct store *s, struct audit_report *report)
{
	struct verify v;
	int rc;

	memset(report, 0, sizeof(*report));
	memset(&v, 0, sizeof(v));
	v.r = report;
	if ((rc = store_read(s, verify_tx, &v)) < 0)
		return rc;
	return v.bad ? KW_ERR_CONFLICT : 0;
}

struct csv {
	FILE *out;
	const struct audit_filter *f;
	struct buf line;
};

static int csv_row(const struct audit_rec *a, void *arg)
{
	struct csv *c = arg;
	char seq[24], at[TIME_ISO_LEN], hex[65];
	const char *fields[] = { seq, at, a->source, a->result, a->actor, a->end_user,
				 a->computer, a->device_id, a->key_id, a->key_type,
				 a->reason, a->comment, a->client, hex };
	int rc = 0;

	snprintf(seq, sizeof(seq), "%lld", (long long)a->seq);
	time_format_iso(a->at, at);
	str_hex(a->hash, sizeof(a->hash), hex);
	buf_reset(&c->line);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && rc == 0; i++) {
		if (i)
			rc = buf_putc(&c->line, ',');
		if (rc == 0)
			rc = buf_put_csv(&c->line, fields[i] ? fields[i] : "");
	}
	if (rc == 0)
		rc = buf_puts(&c->line, "\r\n");
	if (rc < 0)
		return rc;
	if (fwrite(c->line.data, 1, c->line.len, c->out) != c->line.len)
		return KW_ERR_IO;
	return 0;
}

static int csv_tx(struct store_tx *tx, void *arg)
{
	struct csv *c = arg;

	return store_audit_each(tx, c->f, csv_row, c);
}

int audit_export_csv(struct store *s, const struct audit_filter *f, FILE *out)
{
	struct csv c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.out = out;
	c.f = f;
	buf_init(&c.line, CSV_LINE_MAX);
	if (fputs("seq,time,source,result,actor,end_user,computer,device_id,key_id,"
		  "key_type,reason,comment,client,hash\r\n", out) == EOF) {
		rc = KW_ERR_IO;
		goto out;
	}
	/* Rows go to out as they are read. */
	if ((rc = store_read_once(s, csv_tx, &c)) < 0)
		goto out;
	if (fflush(out) != 0 || ferror(out))
		rc = KW_ERR_IO;
out:
	buf_free(&c.line);
	return rc;
}
