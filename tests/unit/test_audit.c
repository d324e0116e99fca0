#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/audit.h"
#include "store/store.h"
#include "util/err.h"

#define T0 1767225600 /* 2026-01-01T00:00:00Z */

struct fixture {
	char dir[32];
	char path[64];
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char db[96], msg[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-audit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/kw.db", f->dir);
	snprintf(db, sizeof(db), "sqlite:%s", f->path);
	assert_int_equal(store_open(db, true, &f->s, msg, sizeof(msg)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[80];

	store_close(f->s);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A plausible record; i varies time, source, result and end user. */
static struct audit_rec sample(int i)
{
	static const char *const users[] = { "CORP\\alice", "bob@corp.example.com", "carol" };
	struct audit_rec r;

	memset(&r, 0, sizeof(r));
	r.at = T0 + i * 60;
	r.source = i % 2 ? AUDIT_HELPDESK : AUDIT_SELF_SERVICE;
	r.result = i % 3 == 0 ? AUDIT_NOT_FOUND : AUDIT_DISCLOSED;
	r.actor = i % 2 ? "helpdesk1" : users[i % 3];
	r.end_user = users[i % 3];
	r.computer = "PC-0042";
	r.device_id = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
	r.key_id = "1b6e7a2c-4f0a-4c1e-9d3b-2a5f8e7c6d10";
	r.key_type = "recovery_password";
	r.reason = "lost_pin";
	r.comment = i == 2 ? "called from the airport" : NULL;
	r.client = "192.0.2.7";
	return r;
}

struct append {
	struct audit_rec rec;
	int fail;          /* returned after a successful append */
};

static int append_tx(struct store_tx *tx, void *arg)
{
	struct append *a = arg;
	int rc = audit_append(tx, &a->rec);

	return rc < 0 ? rc : a->fail;
}

/* Appends rec through the store; rec gets seq and hashes back. */
static void append(struct fixture *f, struct audit_rec *rec)
{
	struct append a = { *rec, 0 };

	assert_int_equal(store_write(f->s, append_tx, &a), 0);
	*rec = a.rec;
}

static void append_n(struct fixture *f, int n)
{
	for (int i = 1; i <= n; i++) {
		struct audit_rec r = sample(i);

		append(f, &r);
		assert_int_equal(r.seq, i);
	}
}

/* Runs SQL on the database behind the store's back, as an intruder would. */
static void sql(struct fixture *f, const char *q)
{
	sqlite3 *db;
	char *err = NULL;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", q, err ? err : "?");
	sqlite3_close(db);
}

/* Inserts r as is, the way a forger with write access to the file would. */
static void forge(struct fixture *f, const struct audit_rec *r)
{
	const char *text[] = { r->source, r->result, r->actor, r->end_user, r->computer,
			       r->device_id, r->key_id, r->key_type, r->reason, r->comment,
			       r->client };
	sqlite3_stmt *st;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO audit (seq, at, source, "
					    "result, actor, end_user, computer, device_id, key_id, "
					    "key_type, reason, comment, client, prev_hash, hash) "
					    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
					    "?12, ?13, ?14, ?15)", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, r->seq);
	sqlite3_bind_int64(st, 2, r->at);
	for (int i = 0; i < 11; i++)
		sqlite3_bind_text(st, 3 + i, text[i] ? text[i] : "", -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 14, r->prev_hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 15, r->hash, 32, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

struct hashes {
	int64_t n;
	int64_t seq[16];
	uint8_t prev[16][32];
	uint8_t hash[16][32];
	bool recomputed_ok[16];
};

static int collect(const struct audit_rec *a, void *arg)
{
	struct hashes *h = arg;
	uint8_t again[32];

	assert_true(h->n < 16);
	audit_hash(a, again);
	h->seq[h->n] = a->seq;
	memcpy(h->prev[h->n], a->prev_hash, 32);
	memcpy(h->hash[h->n], a->hash, 32);
	h->recomputed_ok[h->n] = !memcmp(again, a->hash, 32);
	h->n++;
	return 0;
}

static int collect_tx(struct store_tx *tx, void *arg)
{
	return store_audit_each(tx, NULL, collect, arg);
}

static void expect_broken(struct fixture *f, int64_t first_bad, const char *problem)
{
	struct audit_report r;

	assert_int_equal(audit_verify(f->s, &r), KW_ERR_CONFLICT);
	assert_string_equal(r.problem, problem);
	assert_int_equal(r.first_bad, first_bad);
}

static void expect_intact(struct fixture *f, int64_t records)
{
	struct audit_report r;

	assert_int_equal(audit_verify(f->s, &r), 0);
	assert_int_equal(r.records, records);
	assert_int_equal(r.first_bad, 0);
	assert_string_equal(r.problem, "");
}

static void test_empty_verifies(void **state)
{
	expect_intact(*state, 0);
}

static void test_chain_verifies(void **state)
{
	struct fixture *f = *state;
	struct hashes h;
	uint8_t zero[32] = { 0 };

	append_n(f, 6);
	expect_intact(f, 6);
	memset(&h, 0, sizeof(h));
	assert_int_equal(store_read(f->s, collect_tx, &h), 0);
	assert_int_equal(h.n, 6);
	assert_memory_equal(h.prev[0], zero, 32);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(h.seq[i], i + 1);
		assert_true(h.recomputed_ok[i]);
		if (i)
			assert_memory_equal(h.prev[i], h.hash[i - 1], 32);
	}
}

/* The hashed bytes, built by hand from the documented layout. */
static void test_hash_layout(void **state)
{
	static const char *const text[] = { "api", "disclosed", "", "bob", "PC", "",
					    "k", "recovery_password", "", "", "::1" };
	struct audit_rec r;
	unsigned char msg[512], want[32], got[32];
	size_t n = 0;
	uint64_t v;

	(void)state;
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < 32; i++)
		r.prev_hash[i] = (uint8_t)i;
	r.seq = 0x0102030405060708LL;
	r.at = T0;
	r.source = "api";
	r.result = "disclosed";
	r.actor = NULL;
	r.end_user = "bob";
	r.computer = "PC";
	r.device_id = "";
	r.key_id = "k";
	r.key_type = "recovery_password";
	r.client = "::1";
	memcpy(msg, r.prev_hash, 32);
	n = 32;
	v = (uint64_t)r.seq;
	for (int i = 7; i >= 0; i--)
		msg[n++] = (unsigned char)(v >> (8 * i));
	v = (uint64_t)r.at;
	for (int i = 7; i >= 0; i--)
		msg[n++] = (unsigned char)(v >> (8 * i));
	for (int i = 0; i < 11; i++) {
		size_t len = strlen(text[i]);

		msg[n++] = 0;
		msg[n++] = 0;
		msg[n++] = (unsigned char)(len >> 8);
		msg[n++] = (unsigned char)len;
		memcpy(msg + n, text[i], len);
		n += len;
	}
	crypto_hash_sha256(want, msg, n);
	audit_hash(&r, got);
	assert_memory_equal(got, want, 32);
}

static void test_hash_covers_every_field(void **state)
{
	struct audit_rec base = sample(2), r;
	const char **fields[] = { &r.source, &r.result, &r.actor, &r.end_user, &r.computer,
				  &r.device_id, &r.key_id, &r.key_type, &r.reason,
				  &r.comment, &r.client };
	uint8_t h0[32], h[32];

	(void)state;
	audit_hash(&base, h0);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		r = base;
		*fields[i] = "changed";
		audit_hash(&r, h);
		assert_memory_not_equal(h, h0, 32);
	}
	r = base;
	r.seq++;
	audit_hash(&r, h);
	assert_memory_not_equal(h, h0, 32);
	r = base;
	r.at++;
	audit_hash(&r, h);
	assert_memory_not_equal(h, h0, 32);
	r = base;
	r.prev_hash[31] ^= 1;
	audit_hash(&r, h);
	assert_memory_not_equal(h, h0, 32);
	/* Bytes moved across a field boundary. */
	r = base;
	r.computer = "PC-004";
	r.device_id = "26f9619ff-8b86-d011-b42d-00c04fc964ff";
	audit_hash(&r, h);
	assert_memory_not_equal(h, h0, 32);
	/* NULL is stored as "": both hash alike. */
	r = base;
	r.comment = "";
	base.comment = NULL;
	audit_hash(&base, h0);
	audit_hash(&r, h);
	assert_memory_equal(h, h0, 32);
}

static void test_altered_middle_record(void **state)
{
	struct fixture *f = *state;

	append_n(f, 5);
	sql(f, "UPDATE audit SET reason = 'x' WHERE seq = 3");
	expect_broken(f, 3, "record 3 was altered");
}

static void test_altered_time(void **state)
{
	struct fixture *f = *state;

	append_n(f, 5);
	sql(f, "UPDATE audit SET at = at - 3600 WHERE seq = 2");
	expect_broken(f, 2, "record 2 was altered");
}

static void test_deleted_middle_record(void **state)
{
	struct fixture *f = *state;

	append_n(f, 5);
	sql(f, "DELETE FROM audit WHERE seq = 3");
	expect_broken(f, 3, "record 3 is missing");
	sql(f, "DELETE FROM audit WHERE seq = 4");
	expect_broken(f, 3, "records 3 to 4 are missing");
}

static void test_deleted_first_record(void **state)
{
	struct fixture *f = *state;

	append_n(f, 3);
	sql(f, "DELETE FROM audit WHERE seq = 1");
	expect_broken(f, 1, "record 1 is missing");
}

static void test_deleted_newest_record(void **state)
{
	struct fixture *f = *state;
	struct audit_rec r = sample(6);

	append_n(f, 5);
	sql(f, "DELETE FROM audit WHERE seq = 5");
	expect_broken(f, 5, "the newest record(s) after 4 were deleted");
	/* The next append must not paper over the deletion. */
	append(f, &r);
	assert_int_equal(r.seq, 6);
	expect_broken(f, 5, "record 5 is missing");
}

static void test_deleted_all_records(void **state)
{
	struct fixture *f = *state;

	append_n(f, 4);
	sql(f, "DELETE FROM audit");
	expect_broken(f, 1, "all records were deleted (the newest was record 4)");
}

static void test_head_deleted(void **state)
{
	struct fixture *f = *state;

	append_n(f, 4);
	sql(f, "DELETE FROM meta WHERE name = 'audit_head'");
	expect_broken(f, 5, "the chain head is missing: deleted newest records could "
		      "not be noticed");
}

static void test_head_malformed(void **state)
{
	struct fixture *f = *state;

	append_n(f, 2);
	sql(f, "UPDATE meta SET value = '2:zz' WHERE name = 'audit_head'");
	expect_broken(f, 3, "the chain head is malformed");
}

/* The hash of stored record seq. */
static void stored_hash(struct fixture *f, int64_t seq, uint8_t prev[32], uint8_t hash[32])
{
	struct hashes h;

	memset(&h, 0, sizeof(h));
	assert_int_equal(store_read(f->s, collect_tx, &h), 0);
	for (int64_t i = 0; i < h.n; i++) {
		if (h.seq[i] == seq) {
			if (prev)
				memcpy(prev, h.prev[i], 32);
			memcpy(hash, h.hash[i], 32);
			return;
		}
	}
	fail_msg("no record %lld", (long long)seq);
}

static void test_forged_record_with_gap(void **state)
{
	struct fixture *f = *state;
	struct audit_rec r = sample(9);

	append_n(f, 5);
	r.seq = 7;
	stored_hash(f, 5, NULL, r.prev_hash);
	audit_hash(&r, r.hash);
	forge(f, &r);
	expect_broken(f, 6, "record 6 is missing");
}

static void test_forged_record_reusing_prev_hash(void **state)
{
	struct fixture *f = *state;
	struct audit_rec r = sample(9);
	uint8_t h5[32];

	append_n(f, 5);
	r.seq = 6;
	stored_hash(f, 5, r.prev_hash, h5);  /* record 5's prev_hash again */
	audit_hash(&r, r.hash);
	forge(f, &r);
	expect_broken(f, 6, "record 6 does not follow record 5: a record was inserted "
		      "or removed before it");
}

/* A correctly chained record added at the end: only the head tells. */
static void test_forged_record_appended(void **state)
{
	struct fixture *f = *state;
	struct audit_rec r = sample(9);

	append_n(f, 5);
	r.seq = 6;
	stored_hash(f, 5, NULL, r.prev_hash);
	audit_hash(&r, r.hash);
	forge(f, &r);
	expect_broken(f, 6, "record 6 was inserted after the newest record 5");
}

/* Records 3.. renumbered to make room for a forged, correctly chained 3. */
static void test_forged_record_inserted_in_middle(void **state)
{
	struct fixture *f = *state;
	struct audit_rec r = sample(9);

	append_n(f, 5);
	sql(f, "UPDATE audit SET seq = -seq WHERE seq >= 3;"
	       "UPDATE audit SET seq = 1 - seq WHERE seq < 0;");
	r.seq = 3;
	stored_hash(f, 2, NULL, r.prev_hash);
	audit_hash(&r, r.hash);
	forge(f, &r);
	expect_broken(f, 4, "record 4 does not follow record 3: a record was inserted "
		      "or removed before it");
}

/* The newest record replaced by one with a recomputed hash: the chain
 * itself is consistent, the head is not. */
static void test_newest_record_rewritten(void **state)
{
	struct fixture *f = *state;
	struct audit_rec r = sample(5);

	append_n(f, 5);
	sql(f, "DELETE FROM audit WHERE seq = 5");
	r.seq = 5;
	r.result = AUDIT_NOT_FOUND;
	stored_hash(f, 4, NULL, r.prev_hash);
	audit_hash(&r, r.hash);
	forge(f, &r);
	expect_broken(f, 5, "record 5 was altered");
}

/* A transaction that fails after appending keeps nothing, not even the
 * head. */
static void test_rolled_back_append(void **state)
{
	struct fixture *f = *state;
	struct append a = { sample(4), KW_ERR_INTERNAL };
	struct audit_rec r = sample(5);

	append_n(f, 3);
	assert_int_equal(store_write(f->s, append_tx, &a), KW_ERR_INTERNAL);
	expect_intact(f, 3);
	append(f, &r);
	assert_int_equal(r.seq, 4);
	expect_intact(f, 4);
}

static char *export(struct fixture *f, const struct audit_filter *filter)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	assert_int_equal(audit_export_csv(f->s, filter, out), 0);
	assert_int_equal(fclose(out), 0);
	return text;
}

#define HEADER "seq,time,source,result,actor,end_user,computer,device_id,key_id," \
	       "key_type,reason,comment,client,hash\r\n"

static void test_export_csv(void **state)
{
	struct fixture *f = *state;
	struct audit_rec a = sample(1), b = sample(2);
	char ha[65], hb[65], want[2048];
	char *text;

	a.at = T0;
	a.actor = "=cmd|' /C calc'!A0";
	a.reason = "other";
	a.comment = "said \"hi\", then left";
	b.at = T0 + 3661;
	b.comment = "line one\nline two";
	append(f, &a);
	append(f, &b);
	sodium_bin2hex(ha, sizeof(ha), a.hash, 32);
	sodium_bin2hex(hb, sizeof(hb), b.hash, 32);
	snprintf(want, sizeof(want), HEADER
		 "1,2026-01-01T00:00:00Z,helpdesk,disclosed,\"'=cmd|' /C calc'!A0\","
		 "bob@corp.example.com,PC-0042,6f9619ff-8b86-d011-b42d-00c04fc964ff,"
		 "1b6e7a2c-4f0a-4c1e-9d3b-2a5f8e7c6d10,recovery_password,other,"
		 "\"said \"\"hi\"\", then left\",192.0.2.7,%s\r\n"
		 "2,2026-01-01T01:01:01Z,self_service,disclosed,carol,carol,PC-0042,"
		 "6f9619ff-8b86-d011-b42d-00c04fc964ff,1b6e7a2c-4f0a-4c1e-9d3b-2a5f8e7c6d10,"
		 "recovery_password,lost_pin,\"line one\nline two\",192.0.2.7,%s\r\n",
		 ha, hb);
	text = export(f, NULL);
	assert_string_equal(text, want);
	free(text);
}

static void test_export_empty(void **state)
{
	char *text = export(*state, NULL);

	assert_string_equal(text, HEADER);
	free(text);
}

static int count_rows(const char *text)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, "\r\n")); p += 2)
		n++;
	return n - 1;
}

static void test_export_filter(void **state)
{
	struct fixture *f = *state;
	struct audit_filter flt;
	char *text;

	append_n(f, 6);   /* results: 3 and 6 not_found; sources alternate */
	text = export(f, NULL);
	assert_int_equal(count_rows(text), 6);
	free(text);

	memset(&flt, 0, sizeof(flt));
	flt.result = AUDIT_NOT_FOUND;
	text = export(f, &flt);
	assert_int_equal(count_rows(text), 2);
	assert_non_null(strstr(text, "\r\n3,"));
	assert_non_null(strstr(text, "\r\n6,"));
	free(text);

	memset(&flt, 0, sizeof(flt));
	flt.source = AUDIT_HELPDESK;
	flt.from = T0 + 2 * 60;   /* records 2..: helpdesk ones are 3 and 5 */
	flt.to = T0 + 5 * 60;     /* exclusive: not 5 */
	text = export(f, &flt);
	assert_int_equal(count_rows(text), 1);
	assert_non_null(strstr(text, "\r\n3,"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
		cmocka_unit_test(test_hash_layout),
		cmocka_unit_test(test_hash_covers_every_field),
		cmocka_unit_test_setup_teardown(test_altered_middle_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_altered_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_middle_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_first_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_newest_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_all_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_record_with_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_record_reusing_prev_hash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forged_record_appended, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_record_inserted_in_middle, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_newest_record_rewritten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rolled_back_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_filter, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
