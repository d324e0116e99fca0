#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define UNTOUCHED 123456789

/* ---- str_to_i64 ---- */

static void i64_ok(const char *s, int64_t min, int64_t max, int64_t want)
{
	int64_t v = UNTOUCHED;

	if (str_to_i64(s, min, max, &v) != 0)
		fail_msg("str_to_i64(\"%s\") refused", s);
	assert_int_equal(v, want);
}

static void i64_bad(const char *s, int64_t min, int64_t max)
{
	int64_t v = UNTOUCHED;

	if (str_to_i64(s, min, max, &v) != KW_ERR_INVALID)
		fail_msg("str_to_i64(\"%s\") accepted", s ? s : "(null)");
	assert_int_equal(v, UNTOUCHED);
}

static void test_i64_values(void **state)
{
	i64_ok("0", 0, 10, 0);
	i64_ok("42", 0, 100, 42);
	i64_ok("-5", -10, 10, -5);
	i64_ok("007", 0, 10, 7);
	i64_ok("9223372036854775807", INT64_MIN, INT64_MAX, INT64_MAX);
	i64_ok("-9223372036854775808", INT64_MIN, INT64_MAX, INT64_MIN);
}

static void test_i64_bounds(void **state)
{
	i64_bad("0", 1, 10);
	i64_ok("1", 1, 10, 1);
	i64_ok("10", 1, 10, 10);
	i64_bad("11", 1, 10);
	i64_bad("-1", 0, 10);
	/* Past the range of int64_t: refused, not clamped. */
	i64_bad("9223372036854775808", INT64_MIN, INT64_MAX);
	i64_bad("-9223372036854775809", INT64_MIN, INT64_MAX);
	i64_bad("99999999999999999999999", INT64_MIN, INT64_MAX);
}

static void test_i64_junk(void **state)
{
	i64_bad("", 0, 100);
	i64_bad(NULL, 0, 100);
	i64_bad("12abc", 0, 100);
	i64_bad("12 ", 0, 100);
	i64_bad(" 12", 0, 100);
	i64_bad("\t12", 0, 100);
	i64_bad("\n", 0, 100);
	i64_bad("abc", 0, 100);
	i64_bad("1.5", 0, 100);
	i64_bad("0x10", 0, 100);
	i64_bad("-", 0, 100);
	i64_bad("1e3", 0, 10000);
}

/* ---- durations ---- */

static void dur_ok(const char *s, int64_t max, int64_t want)
{
	int64_t v = UNTOUCHED;

	if (str_to_duration(s, max, &v) != 0)
		fail_msg("str_to_duration(\"%s\", %lld) refused", s, (long long)max);
	assert_int_equal(v, want);
}

static void dur_bad(const char *s, int64_t max)
{
	int64_t v = UNTOUCHED;

	if (str_to_duration(s, max, &v) != KW_ERR_INVALID)
		fail_msg("str_to_duration(\"%s\", %lld) accepted", s ? s : "(null)",
			 (long long)max);
	assert_int_equal(v, UNTOUCHED);
}

static void test_duration_units(void **state)
{
	dur_ok("90s", INT64_MAX, 90);
	dur_ok("5m", INT64_MAX, 300);
	dur_ok("1h", INT64_MAX, 3600);
	dur_ok("30d", INT64_MAX, 30 * 86400);
	dur_ok("0", INT64_MAX, 0);
	dur_ok("0s", INT64_MAX, 0);
	dur_ok("0d", INT64_MAX, 0);
	dur_ok("45", INT64_MAX, 45);        /* no unit: seconds */
	dur_ok("90m", INT64_MAX, 5400);
}

static void test_duration_invalid(void **state)
{
	dur_bad("5x", INT64_MAX);
	dur_bad("", INT64_MAX);
	dur_bad(NULL, INT64_MAX);
	dur_bad("-1", INT64_MAX);
	dur_bad("-1s", INT64_MAX);
	dur_bad("+1s", INT64_MAX);
	dur_bad("s", INT64_MAX);
	dur_bad("m", INT64_MAX);
	dur_bad("1.5h", INT64_MAX);
	dur_bad(" 5m", INT64_MAX);
	dur_bad("5m ", INT64_MAX);
	dur_bad("5 m", INT64_MAX);
	dur_bad("5mm", INT64_MAX);
	dur_bad("1h30m", INT64_MAX);
	dur_bad("5M", INT64_MAX);
	dur_bad("1w", INT64_MAX);
}

static void test_duration_overflow_and_max(void **state)
{
	/* The largest whole number of days in int64_t seconds, and one more. */
	dur_ok("106751991167300d", INT64_MAX, INT64_C(106751991167300) * 86400);
	dur_bad("106751991167301d", INT64_MAX);
	dur_bad("153722867280912931m", INT64_MAX);
	dur_bad("99999999999999999999", INT64_MAX);
	dur_bad("99999999999999999999999999999999s", INT64_MAX);
	/* max_seconds is a hard limit, whatever the unit. */
	dur_ok("3600", 3600, 3600);
	dur_ok("1h", 3600, 3600);
	dur_ok("60m", 3600, 3600);
	dur_bad("3601", 3600);
	dur_bad("3601s", 3600);
	dur_bad("61m", 3600);
	dur_bad("2h", 3600);
	dur_bad("1d", 3600);
	dur_ok("0", 0, 0);
	dur_bad("1s", 0);
}

static void test_duration_format(void **state)
{
	static const struct { int64_t s; const char *want; } cases[] = {
		{ 0, "0" }, { 1, "1s" }, { 59, "59s" }, { 60, "1m" }, { 90, "90s" },
		{ 300, "5m" }, { 3600, "1h" }, { 3660, "61m" }, { 5400, "90m" },
		{ 86400, "1d" }, { 86401, "86401s" }, { 30 * 86400, "30d" },
		{ 90000, "25h" },
	};
	char out[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		str_format_duration(cases[i].s, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
	/* A short buffer is truncated, not overrun. */
	memset(out, 'x', sizeof(out));
	str_format_duration(86401, out, 4);
	assert_string_equal(out, "864");
	assert_int_equal(out[4], 'x');
}

static void test_duration_round_trip(void **state)
{
	static const int64_t values[] = {
		0, 1, 59, 60, 61, 90, 120, 3599, 3600, 3601, 5400, 7200, 86399,
		86400, 86460, 172800, 2592000, INT64_C(106751991167300) * 86400,
		INT64_MAX,
	};
	char out[32];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		int64_t back = -1;

		str_format_duration(values[i], out, sizeof(out));
		if (str_to_duration(out, INT64_MAX, &back) != 0)
			fail_msg("\"%s\" (from %lld) does not parse", out,
				 (long long)values[i]);
		assert_int_equal(back, values[i]);
	}
}

/* ---- booleans ---- */

static void test_bool(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "True", "on", "ON", "1" };
	static const char *const no[] = { "no", "No", "false", "FALSE", "off", "Off", "0" };
	static const char *const bad[] = { "", "2", "y", "n", "yes ", " no", "tru",
					   "enabled", "01", "-1" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		bool b = false;

		assert_int_equal(str_to_bool(yes[i], &b), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		bool b = true;

		assert_int_equal(str_to_bool(no[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool b = true;

		if (str_to_bool(bad[i], &b) != KW_ERR_INVALID)
			fail_msg("str_to_bool(\"%s\") accepted", bad[i]);
		assert_true(b);
	}
}

/* ---- clean text ---- */

static void test_clean_text_ascii(void **state)
{
	char all[96];

	assert_true(str_is_clean_text("hello", 100));
	assert_true(str_is_clean_text("CORP\\alice", 100));
	assert_false(str_is_clean_text("", 100));
	assert_false(str_is_clean_text(NULL, 100));
	/* Every printable ASCII character. */
	for (int c = 0x20; c < 0x7f; c++)
		all[c - 0x20] = (char)c;
	all[0x7f - 0x20] = '\0';
	assert_true(str_is_clean_text(all, sizeof(all)));
	/* Every C0 control character and DEL, at the start, middle, end. */
	for (int c = 1; c < 0x20; c++) {
		char s[4] = { 'a', (char)c, 'b', 0 };
		char e[3] = { 'a', (char)c, 0 };
		char f[3] = { (char)c, 'a', 0 };

		if (str_is_clean_text(s, 10) || str_is_clean_text(e, 10) ||
		    str_is_clean_text(f, 10))
			fail_msg("control character 0x%02x accepted", c);
	}
	assert_false(str_is_clean_text("a\x7f" "b", 10));
	assert_false(str_is_clean_text("\x7f", 10));
}

static void test_clean_lines(void **state)
{
	char long_a[1300];

	assert_true(str_is_clean_lines("Docking station replaced", 500));
	assert_true(str_is_clean_lines("line one\r\nline two\tend", 500));
	/* Blank is no comment at all. */
	assert_false(str_is_clean_lines("", 500));
	assert_false(str_is_clean_lines(NULL, 500));
	assert_false(str_is_clean_lines("  \r\n\t ", 500));
	/* Other control characters, DEL, C1 and bad UTF-8 are refused. */
	assert_false(str_is_clean_lines("x\x1b[2J", 500));
	assert_false(str_is_clean_lines("x\x7f", 500));
	assert_false(str_is_clean_lines("x\xc2\x85", 500));
	assert_false(str_is_clean_lines("x\xc3", 500));
	/* The cap counts characters: 500 two-byte letters fit, 501 do not. */
	for (int i = 0; i < 501; i++)
		memcpy(long_a + 2 * i, "\xc3\xa5", 2);
	long_a[2 * 500] = '\0';
	assert_true(str_is_clean_lines(long_a, 500));
	memcpy(long_a + 2 * 500, "\xc3\xa5", 3);
	assert_false(str_is_clean_lines(long_a, 500));
}

static void test_clean_text_utf8(void **state)
{
	/* Valid multibyte: é (2), € (3), 😀 (4), U+10FFFF, U+00A0. */
	assert_true(str_is_clean_text("caf\xc3\xa9", 10));
	assert_true(str_is_clean_text("\xe2\x82\xac 5", 10));
	assert_true(str_is_clean_text("\xf0\x9f\x98\x80", 10));
	assert_true(str_is_clean_text("\xf4\x8f\xbf\xbf", 10));
	assert_true(str_is_clean_text("\xc2\xa0", 10));
	assert_true(str_is_clean_text("\xef\xbf\xbd", 10));   /* U+FFFD */
	assert_true(str_is_clean_text("\xed\x9f\xbf", 10));   /* U+D7FF */
	assert_true(str_is_clean_text("\xee\x80\x80", 10));   /* U+E000 */

	/* Overlong forms of '/' and NUL, and the shortest overlong 3-byte. */
	assert_false(str_is_clean_text("\xc0\xaf", 10));
	assert_false(str_is_clean_text("\xc1\xbf", 10));
	assert_false(str_is_clean_text("\xc0\x80", 10));
	assert_false(str_is_clean_text("\xe0\x80\xaf", 10));
	assert_false(str_is_clean_text("\xe0\x9f\xbf", 10));
	assert_false(str_is_clean_text("\xf0\x80\x80\xaf", 10));
	assert_false(str_is_clean_text("\xf0\x8f\xbf\xbf", 10));
	/* UTF-16 surrogates encoded as UTF-8. */
	assert_false(str_is_clean_text("\xed\xa0\x80", 10));
	assert_false(str_is_clean_text("\xed\xbf\xbf", 10));
	assert_false(str_is_clean_text("a\xed\xb0\x80z", 10));
	/* Above U+10FFFF, and lead bytes that never occur. */
	assert_false(str_is_clean_text("\xf4\x90\x80\x80", 10));
	assert_false(str_is_clean_text("\xf5\x80\x80\x80", 10));
	assert_false(str_is_clean_text("\xf8\x88\x80\x80\x80", 10));
	assert_false(str_is_clean_text("\xfe", 10));
	assert_false(str_is_clean_text("\xff", 10));
	/* Truncated sequences and stray continuation bytes. */
	assert_false(str_is_clean_text("\xc3", 10));
	assert_false(str_is_clean_text("a\xc3", 10));
	assert_false(str_is_clean_text("\xe2\x82", 10));
	assert_false(str_is_clean_text("\xf0\x9f\x98", 10));
	assert_false(str_is_clean_text("\x80", 10));
	assert_false(str_is_clean_text("a\xbf" "b", 10));
	assert_false(str_is_clean_text("\xc3" "a", 10));
	/* C1 controls (U+0080..U+009F), e.g. NEL. */
	assert_false(str_is_clean_text("\xc2\x85", 10));
	assert_false(str_is_clean_text("\xc2\x80", 10));
	assert_false(str_is_clean_text("\xc2\x9f", 10));
}

static void test_clean_text_maxlen(void **state)
{
	assert_true(str_is_clean_text("abcd", 4));
	assert_false(str_is_clean_text("abcd", 3));
	assert_false(str_is_clean_text("a", 0));
	/* maxlen counts bytes, not characters. */
	assert_true(str_is_clean_text("\xc3\xa9", 2));
	assert_false(str_is_clean_text("\xc3\xa9", 1));
	assert_true(str_is_clean_text("a\xf0\x9f\x98\x80", 5));
	assert_false(str_is_clean_text("a\xf0\x9f\x98\x80", 4));
}

/* ---- trim ---- */

static void trim(const char *in, const char *want)
{
	char s[64];

	snprintf(s, sizeof(s), "%s", in);
	assert_ptr_equal(str_trim(s), s);
	if (strcmp(s, want))
		fail_msg("str_trim(\"%s\") = \"%s\", want \"%s\"", in, s, want);
}

static void test_trim(void **state)
{
	trim("  a b \t\n", "a b");
	trim("x", "x");
	trim("", "");
	trim("   ", "");
	trim("\r\n\t\v\f", "");
	trim("lead  ", "lead");
	trim("  trail", "trail");
	trim("in  side", "in  side");
	trim(" \xc3\xa9 ", "\xc3\xa9");
}

/* ---- small helpers ---- */

static void test_misc_helpers(void **state)
{
	static const uint8_t bytes[] = { 0x00, 0x0f, 0xa5, 0xff };
	char hex[9], path[16];
	char *s;

	assert_true(str_ieq("Alice", "aLICE"));
	assert_false(str_ieq("alice", "alice2"));
	/* Letters of Latin-1 and Latin Extended-A fold too: É, Å, Ö, Ł, Ÿ. */
	s = str_lower_dup("CORP\\Alice \xc3\x89 \xc3\x85SA \xc3\x96 \xc5\x81 \xc5\xb8 \xc3\x97");
	assert_string_equal(s, "corp\\alice \xc3\xa9 \xc3\xa5sa \xc3\xb6 \xc5\x82 \xc3\xbf \xc3\x97");
	free(s);
	str_hex(bytes, sizeof(bytes), hex);
	assert_string_equal(hex, "000fa5ff");
	assert_int_equal(str_join_path(path, sizeof(path), "/a/b", "c.db"), 0);
	assert_string_equal(path, "/a/b/c.db");
	assert_int_equal(str_join_path(path, sizeof(path), "/long/folder", "file.db"),
			 KW_ERR_TOO_LARGE);
	assert_null(str_dup(NULL));
	s = str_dup("x");
	assert_string_equal(s, "x");
	free(s);
}

/* The one comparison of user names: what str_fold makes equal. */
static void test_fold_eq(void **state)
{
	static const char *const same[][2] = {
		{ "CORP\\\xc3\x85sa\xc3\xb6\xc3\xa9", "corp\\\xc3\xa5SA\xc3\x96\xc3\x89" },
		{ "\xc5\x81ukasz", "\xc5\x82UKASZ" },
		{ "", "" },
	};
	static const char *const differ[][2] = {
		{ "alice", "alicia" },
		{ "\xc3\x85sa", "Asa" },
		{ "\xc3\x97", "\xc3\xb7" },      /* the multiplication sign has no case */
		{ "abc\xc3", "ABC\xc3\x85" },     /* a cut sequence */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		char *a = str_lower_dup(same[i][0]), *b = str_lower_dup(same[i][1]);

		assert_true(str_fold_eq(same[i][0], strlen(same[i][0]), same[i][1],
					strlen(same[i][1])));
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++)
		assert_false(str_fold_eq(differ[i][0], strlen(differ[i][0]), differ[i][1],
					 strlen(differ[i][1])));
	/* Lengths are part of it: a prefix is not equal. */
	assert_false(str_fold_eq("Alice", 3, "alice", 5));
	assert_true(str_fold_eq("Alice", 3, "ALX", 2 + 1) == false);
	assert_true(str_fold_eq("Alice", 3, "ALI", 3));
}

/* ---- ISO 8601 times ---- */

#define T_20261120_0800 INT64_C(1795161600)   /* 2026-11-20T08:00:00Z */
#define T_20261120 INT64_C(1795132800)        /* 2026-11-20T00:00:00Z */

static void iso_ok(const char *s, int64_t want)
{
	int64_t t = UNTOUCHED;

	if (time_parse_iso(s, &t) != 0)
		fail_msg("time_parse_iso(\"%s\") refused", s);
	if (t != want)
		fail_msg("time_parse_iso(\"%s\") = %lld, want %lld", s,
			 (long long)t, (long long)want);
}

static void iso_bad(const char *s)
{
	int64_t t = UNTOUCHED;

	if (time_parse_iso(s, &t) != KW_ERR_INVALID)
		fail_msg("time_parse_iso(\"%s\") accepted (%lld)", s, (long long)t);
	assert_int_equal(t, UNTOUCHED);
}

static void test_iso_valid(void **state)
{
	iso_ok("2026-11-20T08:00:00Z", T_20261120_0800);
	iso_ok("2026-11-20T08:00:00.123Z", T_20261120_0800);
	iso_ok("2026-11-20T08:00:00.999999999Z", T_20261120_0800);
	iso_ok("2026-11-20T08:00:00+00:00", T_20261120_0800);
	iso_ok("2026-11-20T08:00:00.5+00:00", T_20261120_0800);
	iso_ok("2026-11-20", T_20261120);
	iso_ok("2026-11-20T00:00:00Z", T_20261120);
	iso_ok("2026-11-20T23:59:59Z", T_20261120 + 86399);
	iso_ok("1970-01-01T00:00:00Z", 0);
	iso_ok("1970-01-01", 0);
	iso_ok("2024-02-29", INT64_C(1709164800));       /* leap year */
	iso_ok("2000-02-29T00:00:00Z", INT64_C(951782400));
	iso_ok("2026-12-31T23:59:59Z", INT64_C(1798761599));
}

static void test_iso_invalid(void **state)
{
	iso_bad("");
	iso_bad("garbage");
	iso_bad("garbage-and-more-text");
	iso_bad("2026-02-30");
	iso_bad("2026-02-30T00:00:00Z");
	iso_bad("2025-02-29");                  /* not a leap year */
	iso_bad("1900-02-29");
	iso_bad("2026-04-31");
	iso_bad("2026-13-01");
	iso_bad("2026-13-01T00:00:00Z");
	iso_bad("2026-00-10");
	iso_bad("2026-11-00");
	iso_bad("2026-11-32");
	iso_bad("2026-1-20");
	iso_bad("26-11-20");
	iso_bad("2026/11/20");
	iso_bad("2026-11-20T08:00:00");          /* no zone */
	iso_bad("2026-11-20T08:00:00+01:00");    /* only UTC */
	iso_bad("2026-11-20T08:00:00-00:00x");
	iso_bad("2026-11-20T08:00:00ZZ");
	iso_bad("2026-11-20T08:00:00.Z");
	iso_bad("2026-11-20T24:00:00Z");
	iso_bad("2026-11-20T08:60:00Z");
	iso_bad("2026-11-20T08:00:61Z");
	iso_bad("2026-11-20T8:00:00Z");
	iso_bad("2026-11-20X08:00:00Z");
	iso_bad("2026-11-20Z");
	iso_bad("2026-11-20 ");
	iso_bad(" 2026-11-20");
	iso_bad("-026-11-20");
}

static void test_iso_leap_second_on_invalid_date(void **state)
{
	/* A leap second does not make a day that does not exist valid. */
	iso_bad("2025-02-29T23:59:60Z");
	iso_bad("2026-02-29T00:00:60Z");
}

static void test_iso_format(void **state)
{
	char out[TIME_ISO_LEN];

	time_format_iso(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	time_format_iso(T_20261120_0800, out);
	assert_string_equal(out, "2026-11-20T08:00:00Z");
	assert_int_equal(strlen(out), TIME_ISO_LEN - 1);
	time_format_iso(INT64_C(1709164800) + 86399, out);
	assert_string_equal(out, "2024-02-29T23:59:59Z");
}

static void test_iso_round_trip(void **state)
{
	static const int64_t values[] = {
		0, 1, 59, 86399, 86400, 951782400, 1709164800, T_20261120_0800,
		INT64_C(1798761599), INT64_C(4102444800), INT64_C(253402300799),
	};
	char out[TIME_ISO_LEN];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		time_format_iso(values[i], out);
		iso_ok(out, values[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i64_values),
		cmocka_unit_test(test_i64_bounds),
		cmocka_unit_test(test_i64_junk),
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_invalid),
		cmocka_unit_test(test_duration_overflow_and_max),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_duration_round_trip),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_clean_text_ascii),
		cmocka_unit_test(test_clean_text_utf8),
		cmocka_unit_test(test_clean_lines),
		cmocka_unit_test(test_clean_text_maxlen),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_misc_helpers),
		cmocka_unit_test(test_iso_valid),
		cmocka_unit_test(test_fold_eq),
		cmocka_unit_test(test_iso_invalid),
		cmocka_unit_test(test_iso_leap_second_on_invalid_date),
		cmocka_unit_test(test_iso_format),
		cmocka_unit_test(test_iso_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
