/* util/csv: RFC 4180 records, line numbers, caps, and what a bad record
 * does (reported with its line, skipped, reading goes on). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/csv.h"
#include "util/err.h"

static struct csv_record rec;

/* The next record must be good, on line, with the fields given (NULL-ended). */
static void expect(struct csv_reader *r, size_t line, ...)
{
	enum csv_problem p;
	va_list ap;
	const char *want;
	size_t i = 0;
	int rc = csv_next(r, &rec, &p);

	if (rc != 1)
		fail_msg("csv_next: %d (%s), want a record on line %zu", rc, csv_problem_text(p),
			 line);
	assert_int_equal(rec.line, line);
	va_start(ap, line);
	while ((want = va_arg(ap, const char *))) {
		assert_true(i < rec.n);
		assert_string_equal(rec.field[i], want);
		i++;
	}
	va_end(ap);
	assert_int_equal(rec.n, i);
}

static void expect_bad(struct csv_reader *r, size_t line, enum csv_problem want)
{
	enum csv_problem p;

	assert_int_equal(csv_next(r, &rec, &p), KW_ERR_INVALID);
	assert_int_equal(p, want);
	assert_int_equal(rec.line, line);
	assert_true(strlen(csv_problem_text(p)) > 0);
}

static void expect_end(struct csv_reader *r)
{
	enum csv_problem p;

	assert_int_equal(csv_next(r, &rec, &p), 0);
	assert_int_equal(csv_next(r, &rec, &p), 0);
}

static void read_text(struct csv_reader *r, const char *s)
{
	csv_init(r, s, strlen(s));
}

static void test_plain(void **state)
{
	struct csv_reader r;

	read_text(&r, "a,b,c\n1,,3\r\n\n,\nlast");
	expect(&r, 1, "a", "b", "c", NULL);
	expect(&r, 2, "1", "", "3", NULL);
	expect(&r, 4, "", "", NULL);
	expect(&r, 5, "last", NULL);
	expect_end(&r);
	read_text(&r, "");
	expect_end(&r);
	read_text(&r, "\r\n\n");
	expect_end(&r);
}

static void test_quoted(void **state)
{
	struct csv_reader r;

	read_text(&r, "\"a,b\",\"say \"\"hi\"\"\",\"\"\r\n\"two\nlines\",x\r\nnext,\"'=1+1\"\n");
	expect(&r, 1, "a,b", "say \"hi\"", "", NULL);
	assert_true(rec.quoted[0] && rec.quoted[2]);
	expect(&r, 2, "two\nlines", "x", NULL);
	assert_false(rec.quoted[1]);
	expect(&r, 4, "next", "'=1+1", NULL);
	assert_false(rec.quoted[0]);
	assert_true(rec.quoted[1]);
	expect_end(&r);
}

static void test_bom(void **state)
{
	struct csv_reader r;

	read_text(&r, "\xef\xbb\xbfid,name\n1,\xc3\xa5sa\n");
	expect(&r, 1, "id", "name", NULL);
	expect(&r, 2, "1", "\xc3\xa5sa", NULL);
	expect_end(&r);
}

static void test_bad_records_are_skipped(void **state)
{
	struct csv_reader r;

	read_text(&r, "ok,1\nbad\"quote,2\n\"closed\"x,3\nfine,4\n\"open,5\nnever closed");
	expect(&r, 1, "ok", "1", NULL);
	expect_bad(&r, 2, CSV_BAD_QUOTE);
	expect_bad(&r, 3, CSV_BAD_QUOTE);
	expect(&r, 4, "fine", "4", NULL);
	expect_bad(&r, 5, CSV_UNTERMINATED);
	expect_end(&r);
}

static void test_utf8_and_nul(void **state)
{
	static const char nul[] = "a,b\0c\nnext\n";
	struct csv_reader r;

	read_text(&r, "a,\xff\xfe\nb,\xc0\xaf\nc,\xed\xa0\x80\nok\n");
	expect_bad(&r, 1, CSV_BAD_UTF8);
	assert_int_equal(rec.bad_field, 2);
	expect_bad(&r, 2, CSV_BAD_UTF8);      /* overlong */
	expect_bad(&r, 3, CSV_BAD_UTF8);      /* a surrogate */
	expect(&r, 4, "ok", NULL);
	expect_end(&r);
	csv_init(&r, nul, sizeof(nul) - 1);
	expect_bad(&r, 1, CSV_NUL);
	expect(&r, 2, "next", NULL);
	expect_end(&r);
}

static void test_caps(void **state)
{
	size_t len = 2 * CSV_RECORD_MAX + 64;
	char *s = malloc(len + 16);
	struct csv_reader r;
	size_t n = 0;

	assert_non_null(s);
	/* The longest record fits; one byte more does not. */
	memset(s, 'x', CSV_RECORD_MAX);
	n = CSV_RECORD_MAX;
	s[n++] = '\n';
	memset(s + n, 'y', CSV_RECORD_MAX + 1);
	n += CSV_RECORD_MAX + 1;
	memcpy(s + n, "\nafter\n", 7);
	n += 7;
	csv_init(&r, s, n);
	assert_int_equal(csv_next(&r, &rec, &(enum csv_problem){ 0 }), 1);
	assert_int_equal(strlen(rec.field[0]), CSV_RECORD_MAX);
	expect_bad(&r, 2, CSV_TOO_LONG);
	expect(&r, 3, "after", NULL);
	expect_end(&r);
	csv_init(&r, s, CSV_RECORD_MAX);
	assert_int_equal(csv_next(&r, &rec, &(enum csv_problem){ 0 }), 1);
	assert_int_equal(strlen(rec.field[0]), CSV_RECORD_MAX);
	free(s);

	/* 64 fields fit; 65 do not. */
	s = malloc(200);
	assert_non_null(s);
	n = 0;
	for (int i = 0; i < CSV_FIELDS_MAX; i++)
		s[n++] = ',';
	s[n++] = '\n';
	for (int i = 0; i < CSV_FIELDS_MAX - 1; i++)
		s[n++] = ',';
	s[n++] = '\n';
	csv_init(&r, s, n);
	expect_bad(&r, 1, CSV_TOO_MANY_FIELDS);
	assert_int_equal(csv_next(&r, &rec, &(enum csv_problem){ 0 }), 1);
	assert_int_equal(rec.n, CSV_FIELDS_MAX);
	expect_end(&r);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_bad_records_are_skipped),
		cmocka_unit_test(test_utf8_and_nul),
		cmocka_unit_test(test_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
