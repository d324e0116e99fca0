/* core/import against a real SQLite store: what is stored, what is counted,
 * what is reported, and what is not stored when a row is wrong. */
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

#include "core/audit.h"
#include "core/import.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"

#define K1 "4290B6C0-B17A-497A-8552-272CC30E80D1"
#define K2 "4290B6C0-B17A-497A-8552-272CC30E80D2"
#define PW1 "496298-461032-321464-595518-463221-173943-033616-139579"
#define PW2 "471207-278498-422125-177177-561902-537405-468006-693451"
#define BAD_PW "311111-461032-321464-595518-463221-173943-033616-139579"
#define VOL "7F3A2B1C-0D4E-4F5A-8B6C-9D0E1F2A3B4C"
#define DEV "0f4c6b0e-3f7c-4d2a-9c1e-5b8e2a7d9f10"
#define NOW INT64_C(1795161600)         /* 2026-11-20T08:00:00Z */
#define HDR "device_id,device_name,domain,volume_id,mount,key_id,recovery_password," \
	"state,created_at,disclosed_at\r\n"

struct fx {
	char dir[64];
	char db[160];
	struct store *s;
	struct seal *k;
	struct import_report rep;
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

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256] = "";

	if (!f)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-import-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "sqlite:%s/kw.db", f->dir);
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0) {
		print_error("store_open: %s\n", msg);
		return -1;
	}
	return seal_generate(&f->k) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	import_report_free(&f->rep);
	store_close(f->s);
	seal_free(f->k);
	remove_dir(f->dir);
	free(f);
	return 0;
}

static int run(struct fx *f, enum import_format fmt, bool skip, const char *text)
{
	struct import_request req;

	import_report_free(&f->rep);
	memset(&req, 0, sizeof(req));
	req.format = fmt;
	req.data = text;
	req.len = strlen(text);
	req.name = "t.csv";
	req.dest = "/tmp/t.csv";
	req.skip_invalid = skip;
	req.source = AUDIT_CLI;
	req.actor = "root";
	req.now = NOW;
	return import_csv(f->s, f->k, &req, &f->rep);
}

/* Does the report hold an error on line containing text? */
static bool reported(const struct fx *f, size_t line, const char *text)
{
	for (size_t i = 0; i < f->rep.nerrors; i++)
		if (f->rep.errors[i].line == line && strstr(f->rep.errors[i].why, text))
			return true;
	return false;
}

struct key_out {
	const struct seal *k;
	char device_id[STORE_ID_LEN + 1];
	char pw[RECPW_CANON_LEN + 16];
	char origin[STORE_ORIGIN_MAX + 1];
	enum key_state state;
	int64_t created_at, disclosed_at;
	int found;
};

static int read_key(const struct key_rec *k, void *arg)
{
	struct key_out *o = arg;

	o->found++;
	snprintf(o->device_id, sizeof(o->device_id), "%s", k->device_id);
	snprintf(o->origin, sizeof(o->origin), "%s", k->origin);
	o->state = k->state;
	o->created_at = k->created_at;
	o->disclosed_at = k->disclosed_at;
	return seal_decrypt(o->k, k->key_id, k->device_id, k->sealed, k->sealed_len, o->pw,
			    sizeof(o->pw));
}

struct key_q {
	const char *id;
	struct key_out out;
};

static int tx_key(struct store_tx *tx, void *arg)
{
	struct key_q *q = arg;
	int rc = store_key_get(tx, q->id, read_key, &q->out);

	return rc == KW_ERR_NOT_FOUND ? 0 : rc;
}

static struct key_out key(struct fx *f, const char *id)
{
	struct key_q q;

	memset(&q, 0, sizeof(q));
	q.id = id;
	q.out.k = f->k;
	assert_int_equal(store_read(f->s, tx_key, &q), 0);
	return q.out;
}

static int tx_count(struct store_tx *tx, void *arg)
{
	int64_t n = store_key_count(tx);

	*(int64_t *)arg = n;
	return n < 0 ? (int)n : 0;
}

static int64_t keys(struct fx *f)
{
	int64_t n = -1;

	assert_int_equal(store_read(f->s, tx_count, &n), 0);
	return n;
}

static int count_imported(const struct audit_rec *a, void *arg)
{
	if (!strcmp(a->result, AUDIT_IMPORTED))
		++*(int *)arg;
	return 0;
}

static int tx_audit(struct store_tx *tx, void *arg)
{
	*(int *)arg = 0;
	return store_audit_each(tx, NULL, count_imported, arg);
}

static int records(struct fx *f)
{
	int n = 0;

	assert_int_equal(store_read(f->s, tx_audit, &n), 0);
	return n;
}

static void test_keywarden_rows(void **state)
{
	struct fx *f = *state;
	struct key_out o;

	assert_int_equal(run(f, IMPORT_KEYWARDEN, false,
			     "\xef\xbb\xbf" HDR
			     DEV ",PC-1,CORP," VOL ",C:," K1 "," PW1 ",superseded,"
			     "2026-01-05T08:00:00Z,2026-02-01T00:00:00Z\r\n"
			     DEV ",PC-1,CORP," VOL ",C:,{" K2 "},\"" PW2 "\",,"
			     "2026-01-06 08:00:00.123,\r\n"
			     DEV ",pc-1,CORP," VOL ",C:," K1 "," PW1 ",active,,\r\n"), 0);
	assert_true(f->rep.stored);
	assert_int_equal(f->rep.rows, 3);
	assert_int_equal(f->rep.keys_added, 2);
	assert_int_equal(f->rep.keys_present, 1);   /* the repeated row */
	assert_int_equal(f->rep.devices_added, 1);
	assert_int_equal(f->rep.invalid, 0);
	o = key(f, K1);
	assert_int_equal(o.found, 1);
	assert_string_equal(o.pw, PW1);
	assert_string_equal(o.device_id, DEV);
	assert_string_equal(o.origin, "import:csv:t.csv");
	assert_int_equal(o.state, KEY_SUPERSEDED);
	assert_int_equal(o.created_at, 1767600000);
	assert_int_equal(o.disclosed_at, 1769904000);
	o = key(f, K2);
	assert_string_equal(o.pw, PW2);
	assert_int_equal(o.state, KEY_ACTIVE);
	assert_int_equal(o.created_at, 1767686400);
	assert_int_equal(records(f), 1);

	/* Again: nothing added, one more record. */
	assert_int_equal(run(f, IMPORT_KEYWARDEN, false,
			     HDR DEV ",PC-1,CORP," VOL ",C:," K1 "," PW1 ",,,\r\n"), 0);
	assert_int_equal(f->rep.keys_added, 0);
	assert_int_equal(f->rep.keys_present, 1);
	assert_int_equal(keys(f), 2);
	assert_int_equal(records(f), 2);
}

static void test_errors_store_nothing(void **state)
{
	struct fx *f = *state;

	assert_int_equal(run(f, IMPORT_KEYWARDEN, false,
			     HDR DEV ",PC-1,CORP," VOL ",C:," K1 "," PW1 ",,,\r\n"), 0);
	/* A row with a bad password, and one whose key is stored with
	 * another password: both reported, by line; nothing stored. */
	assert_int_equal(run(f, IMPORT_KEYWARDEN, false,
			     HDR
			     DEV ",PC-1,CORP," VOL ",C:," K1 "," PW2 ",,,\r\n"
			     DEV ",PC-1,CORP," VOL ",C:," K2 "," BAD_PW ",,,\r\n"
			     DEV ",PC-1,CORP," VOL ",C:,4290B6C0-B17A-497A-8552-272CC30E80D3,"
			     PW2 ",,,\r\n"), KW_ERR_INVALID);
	assert_false(f->rep.stored);
	assert_int_equal(f->rep.invalid, 2);
	assert_int_equal(f->rep.nerrors, 2);
	assert_int_equal(f->rep.errors[0].line, 2);
	assert_true(reported(f, 2, "different recovery password"));
	assert_true(reported(f, 3, "recovery_password: Group 1 is not divisible by 11"));
	for (size_t i = 0; i < f->rep.nerrors; i++) {
		assert_null(strstr(f->rep.errors[i].why, "311111"));
		assert_null(strstr(f->rep.errors[i].why, "461032"));
	}
	assert_int_equal(keys(f), 1);
	assert_string_equal(key(f, K1).pw, PW1);
	assert_int_equal(records(f), 1);

	/* --skip-invalid: the good row is stored, the two are counted. */
	assert_int_equal(run(f, IMPORT_KEYWARDEN, true,
			     HDR
			     DEV ",PC-1,CORP," VOL ",C:," K1 "," PW2 ",,,\r\n"
			     DEV ",PC-1,CORP," VOL ",C:," K2 "," BAD_PW ",,,\r\n"
			     DEV ",PC-1,CORP," VOL ",C:,4290B6C0-B17A-497A-8552-272CC30E80D3,"
			     PW2 ",,,\r\n"), 0);
	assert_true(f->rep.stored);
	assert_int_equal(f->rep.keys_added, 1);
	assert_int_equal(f->rep.invalid, 2);
	assert_int_equal(keys(f), 2);
	assert_string_equal(key(f, K1).pw, PW1);
	assert_int_equal(records(f), 2);
}

static void test_mbam(void **state)
{
	struct fx *f = *state;
	char id[37], id2[37];
	struct key_out o;

	import_mbam_device_id("CORP", "WS-0142", id);
	import_mbam_device_id("corp", "ws-0142", id2);
	assert_string_equal(id, id2);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[14], '8');            /* version 8 */
	assert_true(strchr("89ab", id[19]) != NULL);
	import_mbam_device_id("", "WS-0142", id2);
	assert_string_not_equal(id, id2);

	assert_int_equal(run(f, IMPORT_MBAM, false,
			     "Id,Recovery Key Id,RecoveryKey,VolumeId,MachineName,DomainName,"
			     "LastUpdateTime,UserName\n"
			     "1," K1 "," PW1 "," VOL ",WS-0142,CORP,2024-03-11 09:15:02.483,"
			     "\"CORP\\alice;CORP\\bob ; \"\n"), 0);
	assert_int_equal(f->rep.keys_added, 1);
	assert_int_equal(f->rep.assocs_added, 2);
	assert_string_equal(f->rep.ignored, "Id");
	o = key(f, K1);
	assert_string_equal(o.device_id, id);
	assert_string_equal(o.origin, "import:mbam:t.csv");
	assert_int_equal(o.created_at, 1710148502);

	/* The key elsewhere already (here: imported as keywarden's): the
	 * users are associated with the device that holds it. */
	assert_int_equal(run(f, IMPORT_MBAM, false,
			     "RecoveryKeyId,RecoveryKey,VolumeId,ComputerName,Users\n"
			     K1 "," PW1 "," VOL ",OTHER-NAME,CORP\\carol\n"), 0);
	assert_int_equal(f->rep.keys_present, 1);
	assert_int_equal(f->rep.devices_added, 0);
	assert_int_equal(f->rep.assocs_added, 1);
	assert_int_equal(keys(f), 1);
}

static void test_empty_and_caps(void **state)
{
	struct fx *f = *state;
	struct import_request req;

	assert_int_equal(run(f, IMPORT_KEYWARDEN, false, HDR), 0);
	assert_false(f->rep.stored);
	assert_int_equal(f->rep.rows, 0);
	assert_int_equal(records(f), 0);
	assert_int_equal(run(f, IMPORT_KEYWARDEN, false, ""), KW_ERR_INVALID);
	assert_true(reported(f, 0, "empty"));

	import_report_free(&f->rep);
	memset(&req, 0, sizeof(req));
	req.data = "";
	req.len = IMPORT_FILE_MAX + 1;       /* not read: refused by its size */
	req.source = AUDIT_CLI;
	req.actor = "root";
	assert_int_equal(import_csv(f->s, f->k, &req, &f->rep), KW_ERR_TOO_LARGE);
	assert_int_equal(keys(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keywarden_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_store_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mbam, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_caps, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
