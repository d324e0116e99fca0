#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/audit.h"
#include "core/enroll.h"
#include "core/inventory.h"
#include "store/store.h"
#include "util/err.h"

#define DEV_A "aaaaaaaa-1111-4111-8111-111111111111"
#define DEV_B "bbbbbbbb-2222-4222-8222-222222222222"
#define DEV_C "cccccccc-3333-4333-8333-333333333333"
#define VOL1 "11111111-0000-4000-8000-00000000000A"
#define K1 "4290B6C0-B17A-497A-8552-272CC30E80D1"
#define K2 "4290B6C0-B17A-497A-8552-272CC30E80D2"
#define NOW INT64_C(1795161600)

struct fx {
	char dir[64];
	char db[160];
	struct store *s;
};

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int put_device(struct store_tx *tx, const char *id, const char *name, int n)
{
	struct device_rec d;
	uint8_t h[STORE_HASH_LEN];

	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", id);
	d.name = name;
	d.domain = "CORP";
	d.os = "Windows 11";
	d.created_at = NOW - 86400 * n;
	memset(h, n, sizeof(h));
	return store_device_insert(tx, &d, h);
}

static int put_key(struct store_tx *tx, const char *id, int64_t volume_row, int64_t at)
{
	static const uint8_t sealed[40] = { 1, 2, 3 };
	struct key_rec k;

	memset(&k, 0, sizeof(k));
	snprintf(k.key_id, sizeof(k.key_id), "%s", id);
	snprintf(k.device_id, sizeof(k.device_id), "%s", DEV_A);
	k.volume_row = volume_row;
	k.state = KEY_ACTIVE;
	k.sealed = sealed;
	k.sealed_len = sizeof(sealed);
	k.created_at = k.changed_at = at;
	return store_key_insert(tx, &k);
}

/* PC-A with a volume, two keys and a logon; PC-B; LAPTOP-C. */
static int fill_tx(struct store_tx *tx, void *arg)
{
	struct volume_rec v;
	struct logon_rec l;
	int64_t row;
	int rc;

	if ((rc = put_device(tx, DEV_A, "PC-A", 1)) < 0 ||
	    (rc = put_device(tx, DEV_B, "pc-b", 2)) < 0 ||
	    (rc = put_device(tx, DEV_C, "LAPTOP-C", 3)) < 0)
		return rc;
	memset(&v, 0, sizeof(v));
	snprintf(v.device_id, sizeof(v.device_id), "%s", DEV_A);
	snprintf(v.guid, sizeof(v.guid), "%s", VOL1);
	v.mount = "C:";
	v.type = "os";
	v.protection = "on";
	v.encryption = "xts_aes_256";
	v.percent = 100;
	v.first_seen = v.last_seen = NOW;
	if ((rc = store_volume_upsert(tx, &v, &row)) < 0 ||
	    (rc = put_key(tx, K1, row, NOW - 10)) < 0 ||
	    (rc = put_key(tx, K2, row, NOW)) < 0)
		return rc;
	memset(&l, 0, sizeof(l));
	snprintf(l.device_id, sizeof(l.device_id), "%s", DEV_A);
	l.user = "CORP\\alice";
	l.type = LOGON_LOCAL;
	l.first_seen = l.last_seen = NOW;
	return store_logon_upsert(tx, &l);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256] = "";

	if (!f)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-inventory-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "sqlite:%s/kw.db", f->dir);
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0) {
		print_error("store_open: %s\n", msg);
		return -1;
	}
	return store_write(f->s, fill_tx, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	store_close(f->s);
	remove_dir(f->dir);
	free(f);
	return 0;
}

/* ---- what the callbacks saw ---- */

struct seen {
	char log[2048];
	size_t n;
	bool revoked;
	bool sealed;             /* a key record came with its sealed value */
};

static void note(struct seen *s, const char *what, const char *v)
{
	size_t len = strlen(s->log);

	snprintf(s->log + len, sizeof(s->log) - len, "%s%s:%s", len ? " " : "", what, v);
	s->n++;
}

static int saw_device(const struct device_rec *d, void *arg)
{
	struct seen *s = arg;

	note(s, "device", d->name);
	s->revoked = d->revoked;
	return 0;
}

static int saw_volume(const struct volume_rec *v, void *arg)
{
	note(arg, "volume", v->guid);
	return 0;
}

static int saw_key(const struct key_rec *k, void *arg)
{
	struct seen *s = arg;

	note(s, "key", k->key_id);
	s->sealed = s->sealed || k->sealed || k->sealed_len;
	return 0;
}

static int saw_logon(const struct logon_rec *l, void *arg)
{
	note(arg, "logon", l->user);
	return 0;
}

static int saw_assoc(const struct assoc_rec *a, void *arg)
{
	char v[320];

	snprintf(v, sizeof(v), "%s/%s", a->user, a->added_by);
	note(arg, "assoc", v);
	return 0;
}

static int stop_at_first(const struct device_rec *d, void *arg)
{
	note(arg, "device", d->name);
	return 7;
}

static const struct inventory_device_fns all_fns = {
	saw_device, saw_volume, saw_key, saw_logon, saw_assoc,
};

static void test_devices(void **state)
{
	struct fx *f = *state;
	struct seen s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_devices(f->s, "", 0, saw_device, &s), 0);
	assert_string_equal(s.log, "device:LAPTOP-C device:PC-A device:pc-b");
	/* the prefix is case-insensitive; NULL is every device */
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_devices(f->s, "PC-", 0, saw_device, &s), 0);
	assert_string_equal(s.log, "device:PC-A device:pc-b");
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_devices(f->s, NULL, 2, saw_device, &s), 0);
	assert_string_equal(s.log, "device:LAPTOP-C device:PC-A");
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_devices(f->s, "zz", 0, saw_device, &s), 0);
	assert_int_equal(s.n, 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_devices(f->s, NULL, 0, stop_at_first, &s), 7);
	assert_int_equal(s.n, 1);
	assert_int_equal(inventory_devices(f->s, NULL, -1, saw_device, &s), KW_ERR_INVALID);
}

static void test_show(void **state)
{
	struct fx *f = *state;
	struct inventory_device_fns only_keys = { .key = saw_key };
	struct seen s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_A, &all_fns, &s), 0);
	assert_string_equal(s.log, "device:PC-A volume:" VOL1 " key:" K1 " key:" K2
			    " logon:CORP\\alice");
	/* never a sealed recovery password */
	assert_false(s.sealed);

	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_A, &only_keys, &s), 0);
	assert_string_equal(s.log, "key:" K1 " key:" K2);

	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, "no-such-device", &all_fns, &s),
			 KW_ERR_NOT_FOUND);
	/* an ID with more after a real one names no device */
	assert_int_equal(inventory_device_show(f->s, DEV_A "0", &all_fns, &s),
			 KW_ERR_NOT_FOUND);
	assert_int_equal(s.n, 0);
}

static void test_revoke(void **state)
{
	struct fx *f = *state;
	struct seen s;

	assert_int_equal(inventory_device_revoke(f->s, "no-such-device"), KW_ERR_NOT_FOUND);
	assert_int_equal(inventory_device_revoke(f->s, DEV_B "x"), KW_ERR_NOT_FOUND);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_B, &all_fns, &s), 0);
	assert_false(s.revoked);
	assert_int_equal(inventory_device_revoke(f->s, DEV_B), 0);
	assert_int_equal(inventory_device_revoke(f->s, DEV_B), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_B, &all_fns, &s), 0);
	assert_true(s.revoked);
	/* the others are untouched */
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_A, &all_fns, &s), 0);
	assert_false(s.revoked);
}

struct audits {
	char log[1024];
	size_t n;
};

static int saw_audit(const struct audit_rec *r, void *arg)
{
	struct audits *l = arg;
	size_t len = strlen(l->log);

	snprintf(l->log + len, sizeof(l->log) - len, "%s%lld %s/%s/%s/%s/%s/%s/%s",
		 len ? " | " : "", (long long)r->seq, r->source, r->result, r->actor,
		 r->end_user, r->computer, r->device_id, r->client);
	l->n++;
	return 0;
}

static int read_audit_tx(struct store_tx *tx, void *arg)
{
	memset(arg, 0, sizeof(struct audits));
	return store_audit_each(tx, NULL, saw_audit, arg);
}

static struct inventory_assoc assoc(const char *user, const char *id, const char *actor)
{
	struct inventory_assoc a = { .user = user, .device_id = id, .source = AUDIT_HELPDESK,
				     .actor = actor, .client = "192.0.2.7", .now = NOW };
	return a;
}

static void test_assoc_add(void **state)
{
	struct fx *f = *state;
	struct inventory_assoc a;
	struct audits au;
	struct seen s;
	int64_t seq = -1;

	assert_true(inventory_user_valid("CORP\\erin"));
	assert_true(inventory_user_valid("Erin Example"));
	assert_false(inventory_user_valid(""));
	assert_false(inventory_user_valid("bad\x01"));
	a = assoc("bad\x01", DEV_B, "CORP\\hd");
	assert_int_equal(inventory_assoc_add(f->s, &a, NULL), KW_ERR_INVALID);
	a = assoc("CORP\\erin", DEV_B, "");
	assert_int_equal(inventory_assoc_add(f->s, &a, NULL), KW_ERR_INVALID);
	a = assoc("CORP\\erin", "no-such-device", "CORP\\hd");
	assert_int_equal(inventory_assoc_add(f->s, &a, NULL), KW_ERR_NOT_FOUND);
	a = assoc("CORP\\erin", DEV_B "0", "CORP\\hd");
	assert_int_equal(inventory_assoc_add(f->s, &a, NULL), KW_ERR_NOT_FOUND);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_B, &all_fns, &s), 0);
	assert_string_equal(s.log, "device:pc-b");
	/* nothing refused is recorded */
	assert_int_equal(store_read(f->s, read_audit_tx, &au), 0);
	assert_int_equal(au.n, 0);

	a = assoc("CORP\\erin", DEV_B, "CORP\\hd");
	assert_int_equal(inventory_assoc_add(f->s, &a, &seq), 0);
	assert_int_equal(seq, 1);
	a = assoc("corp\\ERIN", DEV_B, "CORP\\other");
	assert_int_equal(inventory_assoc_add(f->s, &a, NULL), KW_ERR_EXISTS);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_B, &all_fns, &s), 0);
	assert_string_equal(s.log, "device:pc-b assoc:CORP\\erin/CORP\\hd");
	/* one record, of the association that was added, with the device's
	 * name; none for the one that existed already */
	assert_int_equal(store_read(f->s, read_audit_tx, &au), 0);
	assert_string_equal(au.log, "1 helpdesk/associated/CORP\\hd/CORP\\erin/pc-b/" DEV_B
			    "/192.0.2.7");
}

/* Runs SQL on the database behind the store's back. */
static void sql(struct fx *f, const char *q)
{
	char path[200], *err = NULL;
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/kw.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", q, err);
	sqlite3_close(db);
}

/* No association without its record: when the audit record cannot be
 * written, nothing is added. */
static void test_assoc_fails_closed(void **state)
{
	struct fx *f = *state;
	struct inventory_assoc a = assoc("CORP\\frank", DEV_C, "CORP\\hd");
	struct seen s;

	sql(f, "CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN "
	       "SELECT RAISE(ABORT, 'audit store failure'); END;");
	assert_true(inventory_assoc_add(f->s, &a, NULL) < 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_C, &all_fns, &s), 0);
	assert_string_equal(s.log, "device:LAPTOP-C");
	/* and it works once records can be written again */
	sql(f, "DROP TRIGGER fail_audit");
	assert_int_equal(inventory_assoc_add(f->s, &a, NULL), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inventory_device_show(f->s, DEV_C, &all_fns, &s), 0);
	assert_string_equal(s.log, "device:LAPTOP-C assoc:CORP\\frank/CORP\\hd");
}

static void test_volume_protection(void **state)
{
	struct volume_rec v;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.protection = "on";
	v.percent = 100;
	assert_int_equal(inventory_volume_protection(&v), INVENTORY_PROTECTED);
	v.percent = 40;
	assert_int_equal(inventory_volume_protection(&v), INVENTORY_ENCRYPTING);
	v.protection = "suspended";
	v.percent = 100;
	assert_int_equal(inventory_volume_protection(&v), INVENTORY_SUSPENDED);
	v.protection = "off";
	assert_int_equal(inventory_volume_protection(&v), INVENTORY_UNPROTECTED);
	v.protection = "";          /* imported: never reported */
	assert_int_equal(inventory_volume_protection(&v), INVENTORY_UNREPORTED);
}

/* ---- enrollment tokens: the list and the state of each ---- */

struct tokens {
	int64_t ids[8];
	enum enroll_token_state states[8];
	size_t n;
	int64_t now;
};

static int saw_token(const struct token_rec *t, void *arg)
{
	struct tokens *l = arg;

	l->ids[l->n] = t->id;
	l->states[l->n++] = enroll_token_state(t, l->now);
	return 0;
}

static void test_tokens(void **state)
{
	struct fx *f = *state;
	char token[SECRET_TEXT_MAX], id[UUID_LEN + 1], secret[SECRET_TEXT_MAX];
	struct device_new d = { "PC-NEW", "CORP", "" };
	struct tokens l;
	int64_t a, b, c, e;

	assert_int_equal(enroll_token_create(f->s, NOW, 0, -1, NULL, token, &a), 0);
	assert_int_equal(enroll_token_create(f->s, NOW, NOW + 60, -1, NULL, token, &b), 0);
	assert_int_equal(enroll_token_create(f->s, NOW, 0, 1, NULL, token, &c), 0);
	assert_int_equal(enroll_register(f->s, token, &d, NOW, id, secret), 0);
	assert_int_equal(enroll_token_create(f->s, NOW, 0, 5, NULL, token, &e), 0);
	assert_int_equal(enroll_token_revoke(f->s, e, NULL), 0);
	assert_int_equal(enroll_token_revoke(f->s, 9999, NULL), KW_ERR_NOT_FOUND);

	memset(&l, 0, sizeof(l));
	l.now = NOW + 60;
	assert_int_equal(enroll_token_each(f->s, saw_token, &l), 0);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.ids[0], a);
	assert_int_equal(l.states[0], ENROLL_TOKEN_VALID);
	assert_int_equal(l.ids[1], b);
	assert_int_equal(l.states[1], ENROLL_TOKEN_EXPIRED);
	assert_int_equal(l.ids[2], c);
	assert_int_equal(l.states[2], ENROLL_TOKEN_USED_UP);
	assert_int_equal(l.ids[3], e);
	assert_int_equal(l.states[3], ENROLL_TOKEN_REVOKED);
	/* a second before it expires, b is valid */
	memset(&l, 0, sizeof(l));
	l.now = NOW + 59;
	assert_int_equal(enroll_token_each(f->s, saw_token, &l), 0);
	assert_int_equal(l.states[1], ENROLL_TOKEN_VALID);
	/* the used-up token registers nothing more */
	assert_int_equal(enroll_register(f->s, token, &d, NOW, id, secret), KW_ERR_AUTH);
}

/* ---- enrollment tokens made by an administrator: expiry, records ---- */

static void test_token_expiry(void **state)
{
	int64_t t = -1;

	(void)state;
	assert_int_equal(enroll_parse_expiry("30d", NOW, &t), 0);
	assert_int_equal(t, NOW + 30 * 86400);
	assert_int_equal(enroll_parse_expiry("12h", NOW, &t), 0);
	assert_int_equal(t, NOW + 12 * 3600);
	assert_int_equal(enroll_parse_expiry("0", NOW, &t), 0);
	assert_int_equal(t, 0);
	/* a date: valid through that whole day (NOW is 2026-11-20T08:00:00Z) */
	assert_int_equal(enroll_parse_expiry("2026-12-31", NOW, &t), 0);
	assert_int_equal(t, 1798761600);      /* 2027-01-01T00:00:00Z */
	assert_int_equal(enroll_parse_expiry("2026-11-20", NOW, &t), 0);
	assert_int_equal(enroll_parse_expiry("2026-11-19", NOW, &t), KW_ERR_INVALID);
	assert_int_equal(enroll_parse_expiry("2099-01-01", NOW, &t), KW_ERR_INVALID);
	assert_int_equal(enroll_parse_expiry("3651d", NOW, &t), KW_ERR_INVALID);
	assert_int_equal(enroll_parse_expiry("soon", NOW, &t), KW_ERR_INVALID);
	assert_int_equal(enroll_parse_expiry("", NOW, &t), KW_ERR_INVALID);
	assert_int_equal(enroll_parse_expiry("-5d", NOW, &t), KW_ERR_INVALID);
	assert_int_equal(enroll_parse_expiry("2027-02-30", NOW, &t), KW_ERR_INVALID);
	assert_int_equal(enroll_parse_expiry(NULL, NOW, &t), KW_ERR_INVALID);
}

struct token_trail {
	char text[4][160];
	size_t n;
};

static int token_trail_one(const struct audit_rec *r, void *arg)
{
	struct token_trail *t = arg;

	if (t->n < 4)
		snprintf(t->text[t->n++], sizeof(t->text[0]), "%s|%s|%s|%s|%s|%s", r->source,
			 r->result, r->actor, r->end_user, r->comment, r->client);
	return 0;
}

static int token_trail_tx(struct store_tx *tx, void *arg)
{
	((struct token_trail *)arg)->n = 0;
	return store_audit_each(tx, NULL, token_trail_one, arg);
}

static void test_token_records(void **state)
{
	struct fx *f = *state;
	struct audit_rec who = { .source = "helpdesk", .actor = "root", .client = "192.0.2.7" };
	char token[SECRET_TEXT_MAX], text[4 * 160];
	struct token_trail t;
	int64_t a, b;

	assert_int_equal(enroll_token_create(f->s, NOW, 1798761600, 5, &who, token, &a), 0);
	assert_int_equal(enroll_token_create(f->s, NOW, 0, -1, &who, token, &b), 0);
	assert_int_equal(enroll_token_create(f->s, NOW, 0, 1, NULL, token, NULL), 0);
	assert_int_equal(enroll_token_revoke(f->s, a, &who), 0);
	assert_int_equal(enroll_token_revoke(f->s, a, &who), 0);      /* no change */
	assert_int_equal(enroll_token_revoke(f->s, 9999, &who), KW_ERR_NOT_FOUND);
	memset(&t, 0, sizeof(t));
	assert_int_equal(store_read(f->s, token_trail_tx, &t), 0);
	assert_int_equal(t.n, 3);
	snprintf(text, sizeof(text), "token %lld, expires 2027-01-01T00:00:00Z, 5 uses",
		 (long long)a);
	assert_non_null(strstr(t.text[0], text));
	assert_non_null(strstr(t.text[0], "helpdesk|token_created|root||"));
	assert_non_null(strstr(t.text[0], "|192.0.2.7"));
	snprintf(text, sizeof(text), "token %lld, expires never, unlimited uses", (long long)b);
	assert_non_null(strstr(t.text[1], text));
	snprintf(text, sizeof(text), "helpdesk|token_revoked|root||token %lld|192.0.2.7",
		 (long long)a);
	assert_string_equal(t.text[2], text);
	/* the token itself is in no record */
	for (size_t i = 0; i < t.n; i++)
		assert_null(strstr(t.text[i], "kwe_"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_show, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assoc_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assoc_fails_closed, setup, teardown),
		cmocka_unit_test(test_volume_protection),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test(test_token_expiry),
		cmocka_unit_test_setup_teardown(test_token_records, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
