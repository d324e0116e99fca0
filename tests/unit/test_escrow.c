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

#include <jansson.h>
#include <sodium.h>

#include "core/escrow.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"

#define DEV_A "aaaaaaaa-1111-4111-8111-111111111111"
#define DEV_B "bbbbbbbb-2222-4222-8222-222222222222"
#define VOL1 "11111111-0000-4000-8000-00000000000A"
#define VOL2 "22222222-0000-4000-8000-00000000000B"
#define K1 "4290B6C0-B17A-497A-8552-272CC30E80D1"
#define K2 "4290B6C0-B17A-497A-8552-272CC30E80D2"
#define K3 "4290B6C0-B17A-497A-8552-272CC30E80D3"
#define K4 "4290B6C0-B17A-497A-8552-272CC30E80D4"
#define K5 "4290B6C0-B17A-497A-8552-272CC30E80D5"
#define PW1 "496298-461032-321464-595518-463221-173943-033616-139579"
#define PW2 "471207-278498-422125-177177-561902-537405-468006-693451"
#define PW3 "000000-000011-000022-000033-000044-000055-000066-000077"
#define PW4 "720885-000000-111111-222222-333333-444444-555555-666666"
#define PW5 "011011-022022-033033-044044-055055-066066-077077-088088"
#define BAD_PW "311111-461032-321464-595518-463221-173943-033616-139579"
#define NOW INT64_C(1795161600)         /* 2026-11-20T08:00:00Z */

/* ---- fixture: a store with two devices and a master key ---- */

struct fx {
	char dir[64];
	char db[160];
	struct store *s;
	struct seal *k;
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
	d.os = "Windows 10";
	d.created_at = NOW - 86400;
	memset(h, n, sizeof(h));
	return store_device_insert(tx, &d, h);
}

static int tx_devices(struct store_tx *tx, void *arg)
{
	int rc;

	if ((rc = put_device(tx, DEV_A, "PC-A", 1)) < 0)
		return rc;
	return put_device(tx, DEV_B, "PC-B", 2);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256] = "";

	if (!f)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-escrow-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "sqlite:%s/kw.db", f->dir);
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0) {
		print_error("store_open: %s\n", msg);
		return -1;
	}
	if (seal_generate(&f->k) < 0 || store_write(f->s, tx_devices, NULL) < 0)
		return -1;
	return 0;
}

/* Parsing tests need no store. */
static int setup_none(void **state)
{
	*state = NULL;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	store_close(f->s);
	seal_free(f->k);
	remove_dir(f->dir);
	free(f);
	return 0;
}

/* ---- building check-in bodies ---- */

static json_t *jkey(const char *id, const char *pw)
{
	return json_pack("{s:s, s:s}", "key_id", id, "recovery_password", pw);
}

/* A volume; keys is stolen (NULL: no recovery_keys member). */
static json_t *jvol(const char *id, const char *mount, json_t *keys)
{
	json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "id", id, "mount", mount,
			      "type", "os", "protection", "on", "encryption", "xts_aes_256",
			      "percent_encrypted", 100);

	if (keys)
		json_object_set_new(v, "recovery_keys", keys);
	return v;
}

static json_t *jkeys(const char *id1, const char *pw1, const char *id2, const char *pw2)
{
	json_t *a = json_array();

	if (id1)
		json_array_append_new(a, jkey(id1, pw1));
	if (id2)
		json_array_append_new(a, jkey(id2, pw2));
	return a;
}

static json_t *jlogon(const char *user, const char *type, const char *at)
{
	json_t *l = json_pack("{s:s, s:s}", "user", user, "type", type);

	if (at)
		json_object_set_new(l, "at", json_string(at));
	return l;
}

/* A body; volumes and logons (either may be NULL) are stolen. */
static json_t *jbody(json_t *volumes, json_t *logons)
{
	json_t *b = json_pack("{s:s}", "os", "Windows 11 Pro 23H2");

	if (volumes)
		json_object_set_new(b, "volumes", volumes);
	if (logons)
		json_object_set_new(b, "logons", logons);
	return b;
}

static json_t *jarr1(json_t *a)
{
	json_t *arr = json_array();

	json_array_append_new(arr, a);
	return arr;
}

static json_t *jarr2(json_t *a, json_t *b)
{
	json_t *arr = jarr1(a);

	json_array_append_new(arr, b);
	return arr;
}

/* One volume with K1 and K2 and one logon: every field valid. */
static json_t *base_body(void)
{
	return jbody(jarr1(jvol(VOL1, "C:", jkeys(K1, PW1, K2, PW2))),
		     jarr1(jlogon("CORP\\alice", "local", "2026-11-20T07:00:00Z")));
}

static json_t *vol0(json_t *body)
{
	return json_array_get(json_object_get(body, "volumes"), 0);
}

static json_t *key_of(json_t *body, size_t i)
{
	return json_array_get(json_object_get(vol0(body), "recovery_keys"), i);
}

static json_t *logon0(json_t *body)
{
	return json_array_get(json_object_get(body, "logons"), 0);
}

/* Key ID and password number i, all distinct. */
static void nth_key(unsigned i, char id[KEYID_CANON_LEN + 1], char pw[RECPW_CANON_LEN + 1])
{
	uint8_t raw[16];

	snprintf(id, KEYID_CANON_LEN + 1, "%08X-0000-4000-8000-%012X", 0xC0DE0000u + i, i);
	memset(raw, 0, sizeof(raw));
	raw[0] = (uint8_t)(i & 0xff);
	raw[1] = (uint8_t)(i >> 8);
	raw[15] = 0x42;
	recpw_from_key(raw, pw);
}

static void nth_guid(unsigned i, char id[KEYID_CANON_LEN + 1])
{
	snprintf(id, KEYID_CANON_LEN + 1, "%08X-0000-4000-8000-%012X", 0x70100000u + i, i);
}

/* ---- parsing ---- */

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* Parses body (and frees it); the result must be exactly one error, on
 * field. Returns nothing; the message is checked to be non-empty. */
static void expect_error(json_t *body, const char *field)
{
	struct checkin ci;
	struct field_errors errs;
	int rc;

	rc = checkin_parse(body, NOW, &ci, &errs);
	json_decref(body);
	checkin_free(&ci);
	if (rc != KW_ERR_INVALID)
		fail_msg("expected an error on %s, got %d", field, rc);
	if (errs.total != 1 || errs.n != 1) {
		for (size_t i = 0; i < errs.n; i++)
			print_error("  %s: %s\n", errs.e[i].field, errs.e[i].message);
		fail_msg("expected one error on %s, got %zu", field, errs.total);
	}
	if (strcmp(errs.e[0].field, field))
		fail_msg("error on \"%s\" (%s), want \"%s\"", errs.e[0].field,
			 errs.e[0].message, field);
	assert_true(errs.e[0].message[0] != '\0');
}

static void test_parse_valid(void **state)
{
	struct checkin ci;
	struct field_errors errs;
	json_t *b = base_body();

	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_int_equal(errs.total, 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(ci.os, "Windows 11 Pro 23H2");
	assert_int_equal(ci.nvolumes, 1);
	assert_string_equal(ci.volumes[0].guid, VOL1);
	assert_string_equal(ci.volumes[0].mount, "C:");
	assert_string_equal(ci.volumes[0].type, "os");
	assert_string_equal(ci.volumes[0].protection, "on");
	assert_string_equal(ci.volumes[0].encryption, "xts_aes_256");
	assert_int_equal(ci.volumes[0].percent, 100);
	assert_int_equal(ci.volumes[0].nkeys, 2);
	assert_string_equal(ci.volumes[0].keys[0].key_id, K1);
	assert_string_equal(ci.volumes[0].keys[0].password, PW1);
	assert_string_equal(ci.volumes[0].keys[1].key_id, K2);
	assert_string_equal(ci.volumes[0].keys[1].password, PW2);
	assert_int_equal(ci.nlogons, 1);
	assert_string_equal(ci.logons[0].user, "CORP\\alice");
	assert_int_equal(ci.logons[0].type, LOGON_LOCAL);
	assert_int_equal(ci.logons[0].at, NOW - 3600);
	checkin_free(&ci);
	assert_null(ci.volumes);
	assert_int_equal(ci.nvolumes, 0);
	json_decref(b);
}

static void test_parse_canonicalises(void **state)
{
	struct checkin ci;
	struct field_errors errs;
	json_t *b;

	/* Lower case with braces; password without hyphens, with spaces. */
	b = jbody(jarr1(jvol("{11111111-0000-4000-8000-00000000000a}", "",
			     jarr1(jkey("{4290b6c0-b17a-497a-8552-272cc30e80d1}",
					"496298461032 321464595518-463221173943033616139579")))),
		  jarr2(jlogon("CORP\\bob", "remote", NULL),
			jlogon("CORP\\carol", "local", "2027-01-01T00:00:00Z")));
	/* Optional members absent: percent, encryption. */
	json_object_del(vol0(b), "percent_encrypted");
	json_object_del(vol0(b), "encryption");
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_string_equal(ci.volumes[0].guid, VOL1);
	assert_string_equal(ci.volumes[0].keys[0].key_id, K1);
	assert_string_equal(ci.volumes[0].keys[0].password, PW1);
	assert_string_equal(ci.volumes[0].mount, "");
	assert_string_equal(ci.volumes[0].encryption, "");
	assert_int_equal(ci.volumes[0].percent, 0);
	assert_int_equal(ci.logons[0].type, LOGON_REMOTE);
	/* No time: now. A time ahead of the server's clock: clamped to now. */
	assert_int_equal(ci.logons[0].at, NOW);
	assert_int_equal(ci.logons[1].at, NOW);
	checkin_free(&ci);
	json_decref(b);

	/* No logons member, a volume without keys, and no os. */
	b = jbody(jarr1(jvol(VOL1, "D:", NULL)), NULL);
	json_object_del(b, "os");
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_string_equal(ci.os, "");
	assert_int_equal(ci.nvolumes, 1);
	assert_int_equal(ci.volumes[0].nkeys, 0);
	assert_int_equal(ci.nlogons, 0);
	checkin_free(&ci);
	json_decref(b);

	/* An empty volume list is a valid report of nothing. */
	b = jbody(json_array(), json_array());
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_int_equal(ci.nvolumes, 0);
	checkin_free(&ci);
	json_decref(b);
}

static void test_parse_key_fields(void **state)
{
	json_t *b;

	b = base_body();
	json_object_set_new(key_of(b, 1), "recovery_password", json_string(BAD_PW));
	expect_error(b, "volumes[0].recovery_keys[1].recovery_password");

	b = base_body();
	json_object_set_new(key_of(b, 1), "recovery_password",
			    json_string("720896-461032-321464-595518-463221-173943-033616-139579"));
	expect_error(b, "volumes[0].recovery_keys[1].recovery_password");

	b = base_body();
	json_object_set_new(key_of(b, 0), "recovery_password", json_string("12345"));
	expect_error(b, "volumes[0].recovery_keys[0].recovery_password");

	b = base_body();
	json_object_del(key_of(b, 0), "recovery_password");
	expect_error(b, "volumes[0].recovery_keys[0].recovery_password");

	b = base_body();
	json_object_set_new(key_of(b, 0), "recovery_password", json_integer(496298));
	expect_error(b, "volumes[0].recovery_keys[0].recovery_password");

	b = base_body();
	json_object_set_new(key_of(b, 0), "key_id", json_string("XYZ"));
	expect_error(b, "volumes[0].recovery_keys[0].key_id");

	b = base_body();
	json_object_set_new(key_of(b, 1), "key_id",
			    json_string("4290B6C0-B17A-497A-8552-272CC30E80D"));  /* 31 */
	expect_error(b, "volumes[0].recovery_keys[1].key_id");

	b = base_body();
	json_object_del(key_of(b, 1), "key_id");
	expect_error(b, "volumes[0].recovery_keys[1].key_id");

	b = base_body();
	json_object_set_new(key_of(b, 0), "key_id", json_null());
	expect_error(b, "volumes[0].recovery_keys[0].key_id");

	b = base_body();
	json_array_set_new(json_object_get(vol0(b), "recovery_keys"), 1, json_string(K2));
	expect_error(b, "volumes[0].recovery_keys[1]");

	b = base_body();
	json_object_set_new(vol0(b), "recovery_keys", json_object());
	expect_error(b, "volumes[0].recovery_keys");
}

static void test_parse_volume_fields(void **state)
{
	static const char *const bad_types[] = { "floppy", "OS", "", "os " };
	json_t *b;
	char longmount[CHECKIN_MOUNT_MAX + 2];

	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
		b = base_body();
		json_object_set_new(vol0(b), "type", json_string(bad_types[i]));
		expect_error(b, "volumes[0].type");
	}
	b = base_body();
	json_object_del(vol0(b), "type");
	expect_error(b, "volumes[0].type");

	b = base_body();
	json_object_set_new(vol0(b), "protection", json_string("maybe"));
	expect_error(b, "volumes[0].protection");

	b = base_body();
	json_object_set_new(vol0(b), "id", json_string("C:"));
	expect_error(b, "volumes[0].id");

	b = base_body();
	json_object_del(vol0(b), "id");
	expect_error(b, "volumes[0].id");

	b = base_body();
	json_object_set_new(vol0(b), "percent_encrypted", json_integer(101));
	expect_error(b, "volumes[0].percent_encrypted");
	b = base_body();
	json_object_set_new(vol0(b), "percent_encrypted", json_integer(-1));
	expect_error(b, "volumes[0].percent_encrypted");
	b = base_body();
	json_object_set_new(vol0(b), "percent_encrypted", json_string("50"));
	expect_error(b, "volumes[0].percent_encrypted");
	b = base_body();
	json_object_set_new(vol0(b), "percent_encrypted", json_real(50.5));
	expect_error(b, "volumes[0].percent_encrypted");

	b = base_body();
	json_object_set_new(vol0(b), "encryption", json_string("XTS-AES"));
	expect_error(b, "volumes[0].encryption");

	memset(longmount, 'M', sizeof(longmount) - 1);
	longmount[sizeof(longmount) - 1] = '\0';
	b = base_body();
	json_object_set_new(vol0(b), "mount", json_string(longmount));
	expect_error(b, "volumes[0].mount");
	b = base_body();
	json_object_set_new(vol0(b), "mount", json_string("C:\n"));
	expect_error(b, "volumes[0].mount");

	/* The second volume, not an object. */
	b = base_body();
	json_array_append_new(json_object_get(b, "volumes"), json_integer(7));
	expect_error(b, "volumes[1]");
}

static void test_parse_logon_and_top_fields(void **state)
{
	json_t *b;
	char longtext[CHECKIN_TEXT_MAX + 2];

	b = base_body();
	json_object_set_new(logon0(b), "at", json_string("2026-13-01T00:00:00Z"));
	expect_error(b, "logons[0].at");
	b = base_body();
	json_object_set_new(logon0(b), "at", json_string("yesterday"));
	expect_error(b, "logons[0].at");
	b = base_body();
	json_object_set_new(logon0(b), "at", json_integer(1795161600));
	expect_error(b, "logons[0].at");

	b = base_body();
	json_object_set_new(logon0(b), "type", json_string("console"));
	expect_error(b, "logons[0].type");

	b = base_body();
	json_object_del(logon0(b), "user");
	expect_error(b, "logons[0].user");
	b = base_body();
	json_object_set_new(logon0(b), "user", json_string(""));
	expect_error(b, "logons[0].user");
	b = base_body();
	json_object_set_new(logon0(b), "user", json_string("CORP\\al\x01ice"));
	expect_error(b, "logons[0].user");
	b = base_body();
	json_object_set_new(logon0(b), "user", json_string("CORP\\\xc3\xa5sa"));
	json_array_append_new(json_object_get(b, "logons"), json_string("x"));
	expect_error(b, "logons[1]");

	memset(longtext, 'a', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	b = base_body();
	json_object_set_new(b, "os", json_string(longtext));
	expect_error(b, "os");
	b = base_body();
	json_object_set_new(b, "os", json_integer(11));
	expect_error(b, "os");

	b = base_body();
	json_object_del(b, "volumes");
	expect_error(b, "volumes");
	b = base_body();
	json_object_set_new(b, "volumes", json_object());
	expect_error(b, "volumes");
	b = base_body();
	json_object_set_new(b, "logons", json_string("x"));
	expect_error(b, "logons");

	expect_error(json_array(), "");
}

static void test_parse_reports_every_error(void **state)
{
	struct checkin ci;
	struct field_errors errs;
	json_t *b = base_body(), *logons;

	json_object_set_new(vol0(b), "type", json_string("floppy"));
	json_object_set_new(key_of(b, 1), "recovery_password", json_string(BAD_PW));
	json_object_set_new(logon0(b), "at", json_string("2026-02-30T00:00:00Z"));
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), KW_ERR_INVALID);
	assert_int_equal(errs.total, 3);
	assert_int_equal(errs.n, 3);
	bool seen[3] = { false, false, false };
	for (size_t i = 0; i < errs.n; i++) {
		if (!strcmp(errs.e[i].field, "volumes[0].type"))
			seen[0] = true;
		else if (!strcmp(errs.e[i].field,
				 "volumes[0].recovery_keys[1].recovery_password"))
			seen[1] = true;
		else if (!strcmp(errs.e[i].field, "logons[0].at"))
			seen[2] = true;
	}
	assert_true(seen[0] && seen[1] && seen[2]);
	checkin_free(&ci);
	json_decref(b);

	/* More faults than are listed: all counted, CHECKIN_MAX_ERRORS kept. */
	logons = json_array();
	for (int i = 0; i < 40; i++)
		json_array_append_new(logons, jlogon("u", "console", NULL));
	b = jbody(json_array(), logons);
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), KW_ERR_INVALID);
	assert_int_equal(errs.total, 40);
	assert_int_equal(errs.n, CHECKIN_MAX_ERRORS);
	assert_string_equal(errs.e[CHECKIN_MAX_ERRORS - 1].field, "logons[31].type");
	checkin_free(&ci);
	json_decref(b);
}

static void test_parse_limits(void **state)
{
	struct checkin ci;
	struct field_errors errs;
	char id[KEYID_CANON_LEN + 1], pw[RECPW_CANON_LEN + 1];
	json_t *b, *vols, *keys, *logons;

	/* 64 volumes: accepted; 65: refused. */
	vols = json_array();
	for (unsigned i = 0; i < CHECKIN_MAX_VOLUMES; i++) {
		nth_guid(i, id);
		json_array_append_new(vols, jvol(id, "", NULL));
	}
	b = jbody(vols, NULL);
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_int_equal(ci.nvolumes, 64);
	checkin_free(&ci);
	nth_guid(64, id);
	json_array_append_new(vols, jvol(id, "", NULL));
	expect_error(b, "volumes");

	/* 16 keys on a volume: accepted; 17: refused. */
	keys = json_array();
	for (unsigned i = 0; i < CHECKIN_MAX_KEYS; i++) {
		nth_key(i, id, pw);
		json_array_append_new(keys, jkey(id, pw));
	}
	b = jbody(jarr1(jvol(VOL1, "C:", keys)), NULL);
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_int_equal(ci.volumes[0].nkeys, 16);
	nth_key(15, id, pw);
	assert_string_equal(ci.volumes[0].keys[15].key_id, id);
	assert_string_equal(ci.volumes[0].keys[15].password, pw);
	checkin_free(&ci);
	nth_key(16, id, pw);
	json_array_append_new(keys, jkey(id, pw));
	expect_error(b, "volumes[0].recovery_keys");

	/* 256 logons: accepted; 257: refused. */
	logons = json_array();
	for (unsigned i = 0; i < CHECKIN_MAX_LOGONS; i++) {
		char user[32];

		snprintf(user, sizeof(user), "CORP\\user%u", i);
		json_array_append_new(logons, jlogon(user, "local", NULL));
	}
	b = jbody(json_array(), logons);
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_int_equal(ci.nlogons, 256);
	assert_string_equal(ci.logons[255].user, "CORP\\user255");
	checkin_free(&ci);
	json_array_append_new(logons, jlogon("CORP\\one-more", "local", NULL));
	expect_error(b, "logons");

	/* Text at its limit, and one byte past it. */
	char text[CHECKIN_TEXT_MAX + 2];
	memset(text, 'u', sizeof(text) - 1);
	text[CHECKIN_TEXT_MAX] = '\0';
	b = jbody(json_array(), jarr1(jlogon(text, "local", NULL)));
	assert_int_equal(checkin_parse(b, NOW, &ci, &errs), 0);
	assert_int_equal(strlen(ci.logons[0].user), CHECKIN_TEXT_MAX);
	checkin_free(&ci);
	json_decref(b);
	text[CHECKIN_TEXT_MAX] = 'u';
	text[CHECKIN_TEXT_MAX + 1] = '\0';
	expect_error(jbody(json_array(), jarr1(jlogon(text, "local", NULL))), "logons[0].user");
}

static void test_parse_duplicates(void **state)
{
	json_t *b;

	/* The same key twice on a volume, however it is spelled. */
	b = jbody(jarr1(jvol(VOL1, "C:", jkeys(K1, PW1, K1, PW1))), NULL);
	expect_error(b, "volumes[0].recovery_keys[1].key_id");
	b = jbody(jarr1(jvol(VOL1, "C:", jkeys(K1, PW1,
					      "{4290b6c0b17a497a8552272cc30e80d1}", PW2))),
		  NULL);
	expect_error(b, "volumes[0].recovery_keys[1].key_id");
	/* On two volumes. */
	b = jbody(jarr2(jvol(VOL1, "C:", jkeys(K1, PW1, K2, PW2)),
			jvol(VOL2, "D:", jkeys(K3, PW3, K2, PW2))), NULL);
	expect_error(b, "volumes[1].recovery_keys[1].key_id");
	/* The same volume twice. */
	b = jbody(jarr2(jvol(VOL1, "C:", jkeys(K1, PW1, NULL, NULL)),
			jvol(VOL1, "D:", jkeys(K2, PW2, NULL, NULL))), NULL);
	expect_error(b, "volumes[1].id");
}

/* ---- applying ---- */

/* Parses body (freed) and applies it for device at now. */
static int apply(struct fx *f, const char *device, json_t *body, int64_t now,
		 struct checkin_result *res)
{
	struct checkin ci;
	struct field_errors errs;
	int rc;

	rc = checkin_parse(body, now, &ci, &errs);
	json_decref(body);
	if (rc != 0) {
		for (size_t i = 0; i < errs.n; i++)
			print_error("  %s: %s\n", errs.e[i].field, errs.e[i].message);
		fail_msg("check-in body does not parse (%d)", rc);
	}
	rc = checkin_apply(f->s, f->k, device, &ci, now, res);
	checkin_free(&ci);
	return rc;
}

struct stored_key {
	char key_id[STORE_ID_LEN + 1];
	char device_id[STORE_ID_LEN + 1];
	int64_t volume_row;
	enum key_state state;
	uint8_t sealed[SEAL_MAX];
	size_t sealed_len;
	int64_t created_at, changed_at, disclosed_at;
	int64_t row;
};

struct stored {
	struct stored_key k[32];
	size_t n;
	const char *device;
};

static int collect_key(const struct key_rec *k, void *arg)
{
	struct stored *s = arg;
	struct stored_key *o;

	if (s->n >= 32)
		return KW_ERR_INTERNAL;
	o = &s->k[s->n++];
	snprintf(o->key_id, sizeof(o->key_id), "%s", k->key_id);
	snprintf(o->device_id, sizeof(o->device_id), "%s", k->device_id);
	o->volume_row = k->volume_row;
	o->state = k->state;
	o->sealed_len = k->sealed_len <= SEAL_MAX ? k->sealed_len : 0;
	memcpy(o->sealed, k->sealed, o->sealed_len);
	o->created_at = k->created_at;
	o->changed_at = k->changed_at;
	o->disclosed_at = k->disclosed_at;
	o->row = k->row;
	return 0;
}

static int tx_keys(struct store_tx *tx, void *arg)
{
	struct stored *s = arg;

	s->n = 0;
	return store_key_each_device(tx, s->device, KEY_STATES_ALL, collect_key, s);
}

static void keys_of(struct fx *f, const char *device, struct stored *s)
{
	memset(s, 0, sizeof(*s));
	s->device = device;
	assert_int_equal(store_read(f->s, tx_keys, s), 0);
}

static const struct stored_key *find(const struct stored *s, const char *key_id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->k[i].key_id, key_id))
			return &s->k[i];
	fail_msg("key %s is not stored", key_id);
	return NULL;
}

static enum key_state state_of(struct fx *f, const char *device, const char *key_id)
{
	struct stored s;

	keys_of(f, device, &s);
	return find(&s, key_id)->state;
}

/* The stored password of key_id, opened with the master key. */
static void assert_password(struct fx *f, const char *device, const char *key_id,
			    const char *want)
{
	struct stored s;
	const struct stored_key *k;
	char pw[RECPW_CANON_LEN + 16];

	keys_of(f, device, &s);
	k = find(&s, key_id);
	assert_null(memmem(k->sealed, k->sealed_len, want, strlen(want)));
	assert_int_equal(seal_decrypt(f->k, k->key_id, k->device_id, k->sealed,
				      k->sealed_len, pw, sizeof(pw)), 0);
	assert_string_equal(pw, want);
	sodium_memzero(pw, sizeof(pw));
}

static int64_t total_keys(struct fx *f)
{
	struct stored a, b;

	keys_of(f, DEV_A, &a);
	keys_of(f, DEV_B, &b);
	return (int64_t)(a.n + b.n);
}

struct counts {
	const char *device;
	size_t volumes, logons;
	char os[64];
	int64_t last_checkin_at;
	char mounts[4][16];
};

static int count_volume(const struct volume_rec *v, void *arg)
{
	struct counts *c = arg;

	if (c->volumes < 4)
		snprintf(c->mounts[c->volumes], sizeof(c->mounts[0]), "%s", v->mount);
	c->volumes++;
	return 0;
}

static int count_logon(const struct logon_rec *l, void *arg)
{
	((struct counts *)arg)->logons++;
	return 0;
}

static int copy_dev(const struct device_rec *d, void *arg)
{
	struct counts *c = arg;

	snprintf(c->os, sizeof(c->os), "%s", d->os);
	c->last_checkin_at = d->last_checkin_at;
	return 0;
}

static int tx_counts(struct store_tx *tx, void *arg)
{
	struct counts *c = arg;
	int rc;

	if ((rc = store_volume_each(tx, c->device, count_volume, c)) < 0 ||
	    (rc = store_logon_each_device(tx, c->device, count_logon, c)) < 0)
		return rc;
	return store_device_get(tx, c->device, copy_dev, c);
}

static struct counts counts_of(struct fx *f, const char *device)
{
	struct counts c;

	memset(&c, 0, sizeof(c));
	c.device = device;
	assert_int_equal(store_read(f->s, tx_counts, &c), 0);
	return c;
}

struct disclose {
	int64_t row;
	int64_t at;
};

static int tx_disclose(struct store_tx *tx, void *arg)
{
	struct disclose *d = arg;

	return store_key_set_state(tx, d->row, KEY_DISCLOSED, d->at);
}

static void disclose(struct fx *f, const char *device, const char *key_id, int64_t at)
{
	struct stored s;
	struct disclose d;

	keys_of(f, device, &s);
	d.row = find(&s, key_id)->row;
	d.at = at;
	assert_int_equal(store_write(f->s, tx_disclose, &d), 0);
}

static void test_apply_new_keys(void **state)
{
	struct fx *f = *state;
	struct checkin_result res;
	struct stored s;
	struct counts c;

	assert_int_equal(apply(f, DEV_A, base_body(), NOW, &res), 0);
	assert_int_equal(res.keys_added, 2);
	assert_int_equal(res.nrotate, 0);
	checkin_result_free(&res);

	keys_of(f, DEV_A, &s);
	assert_int_equal(s.n, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(s.k[i].state, KEY_ACTIVE);
		assert_string_equal(s.k[i].device_id, DEV_A);
		assert_int_equal(s.k[i].created_at, NOW);
		assert_int_equal(s.k[i].sealed_len,
				 SEAL_NONCE_LEN + RECPW_CANON_LEN + SEAL_TAG_LEN);
	}
	assert_int_equal(s.k[0].volume_row, s.k[1].volume_row);
	/* Sealed, not plain; bound to their own row. */
	assert_password(f, DEV_A, K1, PW1);
	assert_password(f, DEV_A, K2, PW2);
	{
		char pw[64];
		const struct stored_key *k1 = find(&s, K1);

		assert_int_equal(seal_decrypt(f->k, K2, DEV_A, k1->sealed, k1->sealed_len,
					      pw, sizeof(pw)), KW_ERR_CRYPTO);
		assert_int_equal(seal_decrypt(f->k, K1, DEV_B, k1->sealed, k1->sealed_len,
					      pw, sizeof(pw)), KW_ERR_CRYPTO);
	}
	/* The volume, the logon and the device's check-in. */
	c = counts_of(f, DEV_A);
	assert_int_equal(c.volumes, 1);
	assert_string_equal(c.mounts[0], "C:");
	assert_int_equal(c.logons, 1);
	assert_string_equal(c.os, "Windows 11 Pro 23H2");
	assert_int_equal(c.last_checkin_at, NOW);
	/* The other device is untouched. */
	c = counts_of(f, DEV_B);
	assert_int_equal(c.volumes, 0);
	assert_int_equal(c.last_checkin_at, 0);
}

/* Keys are sealed on the caller's thread, before the store's single writer
 * gets the job, and the writer stores exactly that. */
static void test_apply_seals_before_the_writer(void **state)
{
	struct fx *f = *state;
	struct field_errors errs;
	struct checkin_result res;
	struct checkin ci;
	json_t *body = base_body();
	struct stored s;

	assert_int_equal(checkin_parse(body, NOW, &ci, &errs), 0);
	json_decref(body);
	assert_int_equal(checkin_apply(f->s, f->k, DEV_A, &ci, NOW, &res), 0);
	checkin_result_free(&res);
	keys_of(f, DEV_A, &s);
	for (size_t j = 0; j < ci.volumes[0].nkeys; j++) {
		const struct checkin_key *ck = &ci.volumes[0].keys[j];
		const struct stored_key *k = find(&s, ck->key_id);

		assert_non_null(k);
		assert_int_equal(ck->sealed_len, k->sealed_len);
		assert_memory_equal(ck->sealed, k->sealed, k->sealed_len);
	}
	checkin_free(&ci);
}

static void test_apply_idempotent(void **state)
{
	struct fx *f = *state;
	struct checkin_result res;
	struct stored before, after;
	struct counts c;

	assert_int_equal(apply(f, DEV_A, base_body(), NOW, &res), 0);
	checkin_result_free(&res);
	keys_of(f, DEV_A, &before);
	assert_int_equal(apply(f, DEV_A, base_body(), NOW + 60, &res), 0);
	assert_int_equal(res.keys_added, 0);
	assert_int_equal(res.nrotate, 0);
	checkin_result_free(&res);
	keys_of(f, DEV_A, &after);
	/* Nothing rewritten: the same rows, states and sealed bytes. */
	assert_int_equal(after.n, before.n);
	for (size_t i = 0; i < after.n; i++) {
		assert_string_equal(after.k[i].key_id, before.k[i].key_id);
		assert_int_equal(after.k[i].row, before.k[i].row);
		assert_int_equal(after.k[i].state, before.k[i].state);
		assert_int_equal(after.k[i].changed_at, before.k[i].changed_at);
		assert_int_equal(after.k[i].sealed_len, before.k[i].sealed_len);
		assert_memory_equal(after.k[i].sealed, before.k[i].sealed,
				    before.k[i].sealed_len);
	}
	c = counts_of(f, DEV_A);
	assert_int_equal(c.volumes, 1);
	assert_int_equal(c.logons, 1);
}

static void test_apply_changed_password_conflicts(void **state)
{
	struct fx *f = *state;
	struct checkin_result res;
	struct counts before, after;
	struct stored s;
	json_t *b;

	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL1, "C:",
							  jkeys(K1, PW1, NULL, NULL))),
					       NULL), NOW, &res), 0);
	checkin_result_free(&res);
	before = counts_of(f, DEV_A);

	/* A new volume with a new key, then the known volume with a new key
	 * and K1 with another password, a new logon and another os. */
	b = jbody(jarr2(jvol(VOL2, "D:", jkeys(K3, PW3, NULL, NULL)),
			jvol(VOL1, "C:", jkeys(K4, PW4, K1, PW2))),
		  jarr1(jlogon("CORP\\mallory", "local", NULL)));
	json_object_set_new(b, "os", json_string("Other OS"));
	memset(&res, 0, sizeof(res));
	assert_int_equal(apply(f, DEV_A, b, NOW + 100, &res), KW_ERR_CONFLICT);
	assert_string_equal(res.conflict_key, K1);
	assert_non_null(res.conflict_why);
	assert_contains(res.conflict_why, "different");
	assert_int_equal(res.keys_added, 0);
	assert_int_equal(res.nrotate, 0);
	assert_null(res.rotate);
	checkin_result_free(&res);

	/* Nothing of it is kept. */
	keys_of(f, DEV_A, &s);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.k[0].key_id, K1);
	assert_int_equal(s.k[0].state, KEY_ACTIVE);
	assert_int_equal(total_keys(f), 1);
	assert_password(f, DEV_A, K1, PW1);
	after = counts_of(f, DEV_A);
	assert_int_equal(after.volumes, before.volumes);
	assert_int_equal(after.logons, before.logons);
	assert_string_equal(after.os, before.os);
	assert_int_equal(after.last_checkin_at, NOW);
}

static void test_apply_other_device_conflicts(void **state)
{
	struct fx *f = *state;
	struct checkin_result res;
	struct counts c;

	assert_int_equal(apply(f, DEV_A, base_body(), NOW, &res), 0);
	checkin_result_free(&res);
	/* The same key ID and even the same password, from another device. */
	memset(&res, 0, sizeof(res));
	assert_int_equal(apply(f, DEV_B, jbody(jarr1(jvol(VOL2, "C:", jkeys(K5, PW5, K2, PW2))),
					       jarr1(jlogon("CORP\\bob", "local", NULL))),
			       NOW + 10, &res), KW_ERR_CONFLICT);
	assert_string_equal(res.conflict_key, K2);
	assert_non_null(res.conflict_why);
	assert_contains(res.conflict_why, "another device");
	assert_int_equal(res.keys_added, 0);
	checkin_result_free(&res);
	c = counts_of(f, DEV_B);
	assert_int_equal(c.volumes, 0);
	assert_int_equal(c.logons, 0);
	assert_int_equal(c.last_checkin_at, 0);
	assert_int_equal(total_keys(f), 2);
	/* K2 still belongs to A, with A's password. */
	assert_password(f, DEV_A, K2, PW2);
}

static void test_apply_absent_key_removed(void **state)
{
	struct fx *f = *state;
	struct checkin_result res;
	struct stored s;

	assert_int_equal(apply(f, DEV_A, jbody(jarr2(jvol(VOL1, "C:", jkeys(K1, PW1, K2, PW2)),
						     jvol(VOL2, "D:", jkeys(K5, PW5, NULL, NULL))),
					       NULL), NOW, &res), 0);
	assert_int_equal(res.keys_added, 3);
	checkin_result_free(&res);

	/* C: without K2; D: not reported at all. */
	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL1, "C:", jkeys(K1, PW1, NULL, NULL))),
					       NULL), NOW + 100, &res), 0);
	assert_int_equal(res.keys_added, 0);
	checkin_result_free(&res);
	keys_of(f, DEV_A, &s);
	assert_int_equal(s.n, 3);                       /* nothing deleted */
	assert_int_equal(find(&s, K1)->state, KEY_ACTIVE);
	assert_int_equal(find(&s, K2)->state, KEY_REMOVED);
	assert_int_equal(find(&s, K2)->changed_at, NOW + 100);
	assert_int_equal(find(&s, K5)->state, KEY_ACTIVE);  /* volume absent: as it was */
	assert_int_equal(find(&s, K5)->changed_at, NOW);
	assert_password(f, DEV_A, K2, PW2);             /* still readable */

	/* K2 back on its volume: active again, not added twice. */
	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL1, "C:", jkeys(K1, PW1, K2, PW2))),
					       NULL), NOW + 200, &res), 0);
	assert_int_equal(res.keys_added, 0);
	checkin_result_free(&res);
	assert_int_equal(state_of(f, DEV_A, K2), KEY_ACTIVE);

	/* A volume reported with an empty key set: all of its keys removed. */
	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL1, "C:", json_array())), NULL),
			       NOW + 300, &res), 0);
	checkin_result_free(&res);
	keys_of(f, DEV_A, &s);
	assert_int_equal(find(&s, K1)->state, KEY_REMOVED);
	assert_int_equal(find(&s, K2)->state, KEY_REMOVED);
	assert_int_equal(find(&s, K5)->state, KEY_ACTIVE);
}

static void test_apply_disclosed_rotates(void **state)
{
	struct fx *f = *state;
	struct checkin_result res;
	struct stored s;

	assert_int_equal(apply(f, DEV_A, base_body(), NOW, &res), 0);
	checkin_result_free(&res);
	disclose(f, DEV_A, K1, NOW + 50);

	/* Still on the device: rotate it, and keep asking. */
	for (int i = 1; i <= 2; i++) {
		assert_int_equal(apply(f, DEV_A, base_body(), NOW + 100 * i, &res), 0);
		assert_int_equal(res.keys_added, 0);
		assert_int_equal(res.nrotate, 1);
		assert_non_null(res.rotate);
		assert_string_equal(res.rotate[0], K1);
		checkin_result_free(&res);
		assert_null(res.rotate);
		assert_int_equal(state_of(f, DEV_A, K1), KEY_DISCLOSED);
	}
	/* A check-in without that volume does not settle it. */
	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL2, "D:", jkeys(K5, PW5, NULL, NULL))),
					       NULL), NOW + 300, &res), 0);
	assert_int_equal(res.keys_added, 1);
	assert_int_equal(res.nrotate, 1);
	assert_string_equal(res.rotate[0], K1);
	checkin_result_free(&res);

	/* Rotated: the volume comes back with a new key instead. */
	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL1, "C:", jkeys(K2, PW2, K3, PW3))),
					       NULL), NOW + 400, &res), 0);
	assert_int_equal(res.keys_added, 1);
	assert_int_equal(res.nrotate, 0);
	checkin_result_free(&res);
	keys_of(f, DEV_A, &s);
	assert_int_equal(find(&s, K1)->state, KEY_SUPERSEDED);
	assert_int_equal(find(&s, K1)->changed_at, NOW + 400);
	assert_int_equal(find(&s, K1)->disclosed_at, NOW + 50);
	assert_int_equal(find(&s, K2)->state, KEY_ACTIVE);
	assert_int_equal(find(&s, K3)->state, KEY_ACTIVE);
	assert_int_equal(find(&s, K5)->state, KEY_ACTIVE);
	assert_password(f, DEV_A, K1, PW1);             /* kept for backups */

	/* And it stays out of the list. */
	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL1, "C:", jkeys(K2, PW2, K3, PW3))),
					       NULL), NOW + 500, &res), 0);
	assert_int_equal(res.nrotate, 0);
	checkin_result_free(&res);
}

static void test_apply_two_disclosed(void **state)
{
	struct fx *f = *state;
	struct checkin_result res;
	bool k1 = false, k5 = false;

	assert_int_equal(apply(f, DEV_A, jbody(jarr2(jvol(VOL1, "C:", jkeys(K1, PW1, K2, PW2)),
						     jvol(VOL2, "D:", jkeys(K5, PW5, NULL, NULL))),
					       NULL), NOW, &res), 0);
	checkin_result_free(&res);
	disclose(f, DEV_A, K1, NOW + 1);
	disclose(f, DEV_A, K5, NOW + 2);
	assert_int_equal(apply(f, DEV_A, jbody(jarr1(jvol(VOL1, "C:", jkeys(K1, PW1, K2, PW2))),
					       NULL), NOW + 10, &res), 0);
	assert_int_equal(res.nrotate, 2);
	for (size_t i = 0; i < res.nrotate; i++) {
		k1 |= !strcmp(res.rotate[i], K1);
		k5 |= !strcmp(res.rotate[i], K5);
	}
	assert_true(k1 && k5);
	checkin_result_free(&res);
	/* Another device's disclosed keys are not this one's business. */
	assert_int_equal(apply(f, DEV_B, jbody(jarr1(jvol(VOL2, "C:", jkeys(K3, PW3, NULL, NULL))),
					       NULL), NOW + 20, &res), 0);
	assert_int_equal(res.nrotate, 0);
	checkin_result_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse_valid, setup_none, teardown),
		cmocka_unit_test_setup_teardown(test_parse_canonicalises, setup_none, teardown),
		cmocka_unit_test_setup_teardown(test_parse_key_fields, setup_none, teardown),
		cmocka_unit_test_setup_teardown(test_parse_volume_fields, setup_none, teardown),
		cmocka_unit_test_setup_teardown(test_parse_logon_and_top_fields, setup_none,
						teardown),
		cmocka_unit_test_setup_teardown(test_parse_reports_every_error, setup_none,
						teardown),
		cmocka_unit_test_setup_teardown(test_parse_limits, setup_none, teardown),
		cmocka_unit_test_setup_teardown(test_parse_duplicates, setup_none, teardown),
		cmocka_unit_test_setup_teardown(test_apply_new_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_seals_before_the_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_changed_password_conflicts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_apply_other_device_conflicts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_apply_absent_key_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_disclosed_rotates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_two_disclosed, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
