/* The Linux agent's check-in body against the shared fixture
 * (tests/fixtures/agent-checkin.json, which the Windows agent matches too),
 * and the recovery passwords and key IDs it makes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <jansson.h>

#include "agent/body.h"
#include "agent/luks.h"
#include "core/checkin.h"
#include "core/keyid.h"
#include "core/recpw.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

/* The fixture's facts, as the agent would have found them. */
static void fixture_facts(struct agent_facts *f, struct agent_volume vols[2],
			  struct agent_logon logons[2])
{
	memset(f, 0, sizeof(*f));
	memset(vols, 0, 2 * sizeof(vols[0]));
	memset(logons, 0, 2 * sizeof(logons[0]));
	snprintf(f->os, sizeof(f->os), "Debian GNU/Linux 12 (bookworm)");
	snprintf(vols[0].id, sizeof(vols[0].id), "6F1D5A2C-3B8E-4C71-9A0D-2E4F6B8C1D3A");
	snprintf(vols[0].mount, sizeof(vols[0].mount), "/");
	vols[0].type = "os";
	vols[0].protection = "on";
	body_encryption_name("aes", "xts-plain64", vols[0].encryption,
			     sizeof(vols[0].encryption));
	vols[0].percent = 100;
	snprintf(vols[0].keys[0].key_id, sizeof(vols[0].keys[0].key_id),
		 "1A2B3C4D-5E6F-4A1B-8C2D-3E4F5A6B7C8D");
	snprintf(vols[0].keys[0].password, sizeof(vols[0].keys[0].password),
		 "466895-217492-569250-069608-104434-135707-527241-083622");
	vols[0].nkeys = 1;
	snprintf(vols[1].id, sizeof(vols[1].id), "0B9C8D7E-6F5A-4B3C-9D2E-1F0A9B8C7D6E");
	snprintf(vols[1].mount, sizeof(vols[1].mount), "/srv");
	vols[1].type = "fixed";
	vols[1].protection = "off";
	snprintf(vols[1].encryption, sizeof(vols[1].encryption), "none");
	vols[1].percent = 0;
	snprintf(logons[0].user, sizeof(logons[0].user), "CORP\\alice");
	time_parse_iso("2026-11-20T08:00:00Z", &logons[0].at);
	snprintf(logons[1].user, sizeof(logons[1].user), "CORP\\bob");
	logons[1].remote = true;
	time_parse_iso("2026-11-20T09:30:00Z", &logons[1].at);
	f->volumes = vols;
	f->nvolumes = 2;
	f->logons = logons;
	f->nlogons = 2;
}

static void body_equals_fixture(void **state)
{
	struct agent_facts f;
	struct agent_volume vols[2];
	struct agent_logon logons[2];
	json_error_t jerr;
	json_t *want = json_load_file(FIXTURE_DIR "/agent-checkin.json", 0, &jerr), *got;
	char *text;
	size_t len;

	(void)state;
	assert_non_null(want);
	fixture_facts(&f, vols, logons);
	got = body_json(&f);
	assert_non_null(got);
	/* Same names, nesting, enumerations and values. */
	assert_true(json_equal(got, want));
	assert_int_equal(body_build(&f, &text, &len), 0);
	json_decref(got);
	got = json_loads(text, 0, NULL);
	assert_true(json_equal(got, want));
	free(text);
	json_decref(got);
	json_decref(want);
}

static void body_parses_on_the_server(void **state)
{
	struct agent_facts f;
	struct agent_volume vols[2];
	struct agent_logon logons[2];
	struct checkin ci;
	struct field_errors errs;
	json_t *got;

	(void)state;
	fixture_facts(&f, vols, logons);
	got = body_json(&f);
	memset(&errs, 0, sizeof(errs));
	assert_int_equal(checkin_parse(got, 1800000000, &ci, &errs), 0);
	assert_int_equal(ci.nvolumes, 2);
	assert_int_equal(ci.volumes[0].nkeys, 1);
	assert_string_equal(ci.volumes[0].encryption, "aes_xts_plain64");
	assert_int_equal(ci.nlogons, 2);
	checkin_free(&ci);
	json_decref(got);
}

static void new_passwords_are_valid(void **state)
{
	char pw[RECPW_CANON_LEN + 1], canon[RECPW_CANON_LEN + 1], msg[128];
	char first[RECPW_CANON_LEN + 1];

	(void)state;
	luks_new_password(first);
	for (int i = 0; i < 2000; i++) {
		luks_new_password(pw);
		assert_int_equal(strlen(pw), RECPW_CANON_LEN);
		assert_int_equal(recpw_parse(pw, strlen(pw), canon, msg, sizeof(msg)), 0);
		assert_string_equal(canon, pw);
	}
	assert_string_not_equal(first, pw);
}

static void new_key_ids_are_canonical(void **state)
{
	char id[KEYID_CANON_LEN + 1], canon[KEYID_CANON_LEN + 1], msg[128], first[40];

	(void)state;
	luks_new_key_id(first);
	for (int i = 0; i < 1000; i++) {
		luks_new_key_id(id);
		assert_int_equal(keyid_parse(id, strlen(id), canon, msg, sizeof(msg)), 0);
		assert_string_equal(canon, id);
		assert_int_equal(id[14], '4');      /* version 4 */
		assert_non_null(strchr("89AB", id[19]));
	}
	assert_string_not_equal(first, id);
}

static void encryption_names(void **state)
{
	char out[33];

	(void)state;
	body_encryption_name("aes", "xts-plain64", out, sizeof(out));
	assert_string_equal(out, "aes_xts_plain64");
	body_encryption_name("serpent", "cbc-essiv:sha256", out, sizeof(out));
	assert_string_equal(out, "serpent_cbc_essiv_sha256");
}

static void encryption_names_are_tokens(void **state)
{
	char out[33];

	(void)state;
	/* Whatever libcryptsetup reports, only [a-z0-9_], at most 32 bytes. */
	body_encryption_name("Twofish+X", "CBC-plain64 \xc3\xa9", out, sizeof(out));
	assert_string_equal(out, "twofish_x_cbc_plain64___");
	body_encryption_name("capi:cbc(aes)", "essiv:sha256-very-long-mode-name-beyond", out,
			     sizeof(out));
	assert_int_equal(strlen(out), 32);
	for (const char *p = out; *p; p++)
		assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz0123456789_", *p));
	body_encryption_name("aes", NULL, out, sizeof(out));
	assert_string_equal(out, "aes");
}

static void mount_points_decoded_and_cut(void **state)
{
	char out[CHECKIN_MOUNT_MAX + 1], raw[512];
	size_t n = 0;

	(void)state;
	body_mount_decode("/mnt/my\\040disk\\134x", out, sizeof(out));
	assert_string_equal(out, "/mnt/my disk\\x");
	/* a tab or a newline is a control character: '?' */
	body_mount_decode("/a\\011b\\012c", out, sizeof(out));
	assert_string_equal(out, "/a?b?c");
	/* invalid UTF-8 (a Latin-1 name, an overlong '/', a surrogate) */
	body_mount_decode("/caf\xe9/\xc0\xaf/\xed\xa0\x80", out, sizeof(out));
	assert_true(str_is_clean_text(out, CHECKIN_MOUNT_MAX));
	assert_string_equal(out, "/caf?/?" "?/?" "?" "?");
	/* cut on a character boundary: 1 + 31 x "é" (2 bytes) + "€" would be 66 */
	raw[n++] = '/';
	for (int i = 0; i < 31; i++) {
		raw[n++] = '\xc3';
		raw[n++] = '\xa9';
	}
	memcpy(raw + n, "\xe2\x82\xac", 4);
	body_mount_decode(raw, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	assert_true(str_is_clean_text(out, CHECKIN_MOUNT_MAX));
	body_clean_text("\xe2\x82", out, sizeof(out));    /* a cut-off character */
	assert_string_equal(out, "??");
}

/* Odd values the machine may hold still make a body the server takes. */
static void odd_facts_accepted_by_the_server(void **state)
{
	struct agent_facts f;
	struct agent_volume vols[2];
	struct agent_logon logons[2];
	struct checkin ci;
	struct field_errors errs;
	json_t *got;

	(void)state;
	fixture_facts(&f, vols, logons);
	memset(vols[0].mount, 0, sizeof(vols[0].mount));
	for (size_t i = 0; i + 1 < sizeof(vols[0].mount); i++)
		vols[0].mount[i] = i % 2 ? '\x80' : 'a';    /* stray continuation bytes */
	snprintf(vols[1].encryption, sizeof(vols[1].encryption), "AES-XTS:Plain64+");
	snprintf(logons[0].user, sizeof(logons[0].user), "b\x01ob\xff");
	snprintf(f.os, sizeof(f.os), "Linux\x7f\xc2\x85");
	got = body_json(&f);
	assert_non_null(got);
	memset(&errs, 0, sizeof(errs));
	assert_int_equal(checkin_parse(got, 1800000000, &ci, &errs), 0);
	assert_int_equal(errs.n, 0);
	assert_int_equal(ci.nvolumes, 2);
	assert_string_equal(ci.volumes[1].encryption, "aes_xts_plain64_");
	assert_string_equal(ci.logons[0].user, "b?ob?");
	checkin_free(&ci);
	json_decref(got);
}

static void body_over_the_limit_refused(void **state)
{
	static struct agent_logon logons[CHECKIN_MAX_LOGONS];
	struct agent_facts f;
	char *text = (char *)"x";
	size_t len = 0;

	(void)state;
	memset(&f, 0, sizeof(f));
	snprintf(f.os, sizeof(f.os), "Linux");
	for (size_t i = 0; i < CHECKIN_MAX_LOGONS; i++) {
		memset(logons[i].user, 'u', CHECKIN_TEXT_MAX);
		logons[i].user[CHECKIN_TEXT_MAX] = '\0';
		logons[i].at = 1800000000;
	}
	f.logons = logons;
	f.nlogons = CHECKIN_MAX_LOGONS;
	assert_int_equal(body_build(&f, &text, &len), KW_ERR_TOO_LARGE);
	assert_null(text);
	f.nlogons = 100;    /* about 30 KB: fits */
	assert_int_equal(body_build(&f, &text, &len), 0);
	assert_true(len <= BODY_MAX);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(body_equals_fixture),
		cmocka_unit_test(body_parses_on_the_server),
		cmocka_unit_test(new_passwords_are_valid),
		cmocka_unit_test(new_key_ids_are_canonical),
		cmocka_unit_test(encryption_names),
		cmocka_unit_test(encryption_names_are_tokens),
		cmocka_unit_test(mount_points_decoded_and_cut),
		cmocka_unit_test(odd_facts_accepted_by_the_server),
		cmocka_unit_test(body_over_the_limit_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
