#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

/* The buffer holds exactly want (len and bytes) and is NUL-terminated. */
static void assert_buf(const struct buf *b, const char *want)
{
	assert_int_equal(b->len, strlen(want));
	assert_non_null(b->data);
	assert_memory_equal(b->data, want, b->len);
	assert_int_equal(b->data[b->len], '\0');
	assert_true(b->alloc >= b->len + 1);
}

static void test_empty_buffer(void **state)
{
	struct buf b;

	buf_init(&b, 100);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 100);
	/* An empty append still leaves a usable C string. */
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_buf(&b, "");
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	/* Destructors accept NULL. */
	buf_free(NULL);
	buf_wipe_free(NULL);
}

static void test_cap_exact_fit_then_refused(void **state)
{
	struct buf b;

	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "1234"), 0);
	assert_int_equal(buf_append(&b, "5678", 4), 0);
	assert_buf(&b, "12345678");      /* exactly the cap */
	assert_int_equal(buf_putc(&b, '9'), KW_ERR_TOO_LARGE);
	assert_buf(&b, "12345678");
	assert_int_equal(buf_puts(&b, "abc"), KW_ERR_TOO_LARGE);
	assert_int_equal(buf_printf(&b, "%d", 7), KW_ERR_TOO_LARGE);
	assert_buf(&b, "12345678");
	/* Appending nothing at the cap is fine. */
	assert_int_equal(buf_append(&b, "x", 0), 0);
	assert_buf(&b, "12345678");
	buf_free(&b);
}

static void test_cap_failed_append_leaves_content(void **state)
{
	struct buf b;
	char big[64];

	memset(big, 'z', sizeof(big));
	buf_init(&b, 10);
	assert_int_equal(buf_puts(&b, "abc"), 0);
	/* 3 + 8 > 10: refused whole, not truncated. */
	assert_int_equal(buf_append(&b, big, 8), KW_ERR_TOO_LARGE);
	assert_buf(&b, "abc");
	assert_int_equal(buf_printf(&b, "%s", "12345678"), KW_ERR_TOO_LARGE);
	assert_buf(&b, "abc");
	/* A huge size does not wrap around the cap check. */
	assert_int_equal(buf_append(&b, big, SIZE_MAX), KW_ERR_TOO_LARGE);
	assert_int_equal(buf_append(&b, big, SIZE_MAX - 2), KW_ERR_TOO_LARGE);
	assert_buf(&b, "abc");
	/* What still fits is accepted. */
	assert_int_equal(buf_append(&b, big, 7), 0);
	assert_buf(&b, "abczzzzzzz");
	buf_free(&b);

	/* Cap 0: nothing but empty appends. */
	buf_init(&b, 0);
	assert_int_equal(buf_putc(&b, 'a'), KW_ERR_TOO_LARGE);
	assert_int_equal(buf_puts(&b, ""), 0);
	assert_buf(&b, "");
	buf_free(&b);
}

static void test_growth(void **state)
{
	struct buf b;
	char want[5001];

	buf_init(&b, 5000);
	for (size_t i = 0; i < 5000; i++) {
		want[i] = (char)('a' + i % 26);
		assert_int_equal(buf_putc(&b, want[i]), 0);
		assert_int_equal(b.len, i + 1);
		assert_int_equal(b.data[i + 1], '\0');
	}
	want[5000] = '\0';
	assert_buf(&b, want);
	/* Storage never grows past cap + 1 (the NUL). */
	assert_true(b.alloc <= b.cap + 1);
	assert_int_equal(buf_putc(&b, 'x'), KW_ERR_TOO_LARGE);
	assert_buf(&b, want);
	buf_free(&b);

	/* One large append into a fresh buffer. */
	buf_init(&b, 1 << 20);
	char *big = malloc(100000);
	assert_non_null(big);
	memset(big, 'q', 100000);
	assert_int_equal(buf_append(&b, big, 100000), 0);
	assert_int_equal(b.len, 100000);
	assert_memory_equal(b.data, big, 100000);
	assert_int_equal(b.data[100000], '\0');
	free(big);
	buf_free(&b);
}

static void test_embedded_nul(void **state)
{
	struct buf b;

	buf_init(&b, 64);
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 4);
	buf_free(&b);
}

static void test_reset(void **state)
{
	struct buf b;

	buf_init(&b, 64);
	buf_reset(&b);                    /* before any append */
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	buf_reset(&b);
	assert_buf(&b, "");
	assert_int_equal(buf_puts(&b, "hi"), 0);
	assert_buf(&b, "hi");
	buf_wipe_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_printf(void **state)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(buf_printf(&b, "%s=%d", "n", 42), 0);
	assert_buf(&b, "n=42");
	assert_int_equal(buf_printf(&b, ", %05.1f|%-3s|%lld", 2.5, "x",
				    (long long)-9000000000), 0);
	assert_buf(&b, "n=42, 002.5|x  |-9000000000");
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_buf(&b, "n=42, 002.5|x  |-9000000000");
	buf_free(&b);

	/* Empty output on a fresh buffer still gives a string. */
	buf_init(&b, 10);
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_buf(&b, "");
	/* Output that needs a reallocation of an existing buffer. */
	buf_free(&b);
	buf_init(&b, 4096);
	assert_int_equal(buf_puts(&b, "start:"), 0);
	assert_int_equal(buf_printf(&b, "%0300d", 1), 0);
	assert_int_equal(b.len, 306);
	assert_memory_equal(b.data, "start:000", 9);
	assert_int_equal(b.data[305], '1');
	assert_int_equal(b.data[306], '\0');
	buf_free(&b);

	/* Exactly at the cap, and one past it. */
	buf_init(&b, 5);
	assert_int_equal(buf_printf(&b, "%d", 12345), 0);
	assert_buf(&b, "12345");
	buf_reset(&b);
	assert_int_equal(buf_printf(&b, "%d", 123456), KW_ERR_TOO_LARGE);
	assert_buf(&b, "");
	buf_free(&b);
}

static void test_html(void **state)
{
	struct buf b;
	const char *in = "a&b<c>d\"e'f";

	buf_init(&b, 1024);
	assert_int_equal(buf_put_html(&b, in, strlen(in)), 0);
	assert_buf(&b, "a&amp;b&lt;c&gt;d&quot;e&#39;f");
	buf_reset(&b);
	/* Only special characters; at both ends. */
	assert_int_equal(buf_put_html(&b, "<<&>>", 5), 0);
	assert_buf(&b, "&lt;&lt;&amp;&gt;&gt;");
	buf_reset(&b);
	/* Text without specials, and UTF-8, pass through unchanged. */
	assert_int_equal(buf_put_html(&b, "Caf\xc3\xa9 #1 = ok", 13), 0);
	assert_buf(&b, "Caf\xc3\xa9 #1 = ok");
	buf_reset(&b);
	/* n is honoured: the < after it is not looked at. */
	assert_int_equal(buf_put_html(&b, "ab<cd", 2), 0);
	assert_buf(&b, "ab");
	buf_reset(&b);
	/* An already escaped entity is escaped again (no double-decoding). */
	assert_int_equal(buf_put_html(&b, "&amp;", 5), 0);
	assert_buf(&b, "&amp;amp;");
	buf_free(&b);

	/* The escaped size counts against the cap. */
	buf_init(&b, 4);
	assert_int_equal(buf_put_html(&b, "<", 1), 0);
	assert_buf(&b, "&lt;");
	assert_int_equal(buf_put_html(&b, "&", 1), KW_ERR_TOO_LARGE);
	assert_buf(&b, "&lt;");
	buf_free(&b);
}

static void csv(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(buf_put_csv(&b, in), 0);
	if (strcmp(b.data, want))
		fail_msg("csv(\"%s\") = [%s], want [%s]", in, b.data, want);
	assert_int_equal(b.len, strlen(want));
	buf_free(&b);
}

static void test_csv(void **state)
{
	csv("plain", "plain");
	csv("", "");
	csv("with space", "with space");
	csv("a,b", "\"a,b\"");
	csv("say \"hi\"", "\"say \"\"hi\"\"\"");
	csv("\"", "\"\"\"\"");
	csv("two\nlines", "\"two\nlines\"");
	csv("cr\rhere", "\"cr\rhere\"");
	csv("crlf\r\n", "\"crlf\r\n\"");
	/* Formula prefixes get an apostrophe inside the quotes. */
	csv("=1+2", "\"'=1+2\"");
	csv("+1", "\"'+1\"");
	csv("-1", "\"'-1\"");
	csv("@SUM(A1)", "\"'@SUM(A1)\"");
	csv("=HYPERLINK(\"http://x\",\"y\")",
	    "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
	/* Only a leading one counts. */
	csv("a=b", "a=b");
	csv("a-b+c@d", "a-b+c@d");
	csv("x@example.org", "x@example.org");
}

static void test_csv_row(void **state)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(buf_put_csv(&b, "PC-1"), 0);
	assert_int_equal(buf_putc(&b, ','), 0);
	assert_int_equal(buf_put_csv(&b, "-cmd|' /C calc'!A0"), 0);
	assert_int_equal(buf_putc(&b, ','), 0);
	assert_int_equal(buf_put_csv(&b, "Smith, J."), 0);
	assert_buf(&b, "PC-1,\"'-cmd|' /C calc'!A0\",\"Smith, J.\"");
	buf_free(&b);
}

static void test_url(void **state)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(buf_put_url(&b, "AZaz09-_.~"), 0);
	assert_buf(&b, "AZaz09-_.~");
	buf_reset(&b);
	assert_int_equal(buf_put_url(&b, "a b&c=d/e?f#g%h+i"), 0);
	assert_buf(&b, "a%20b%26c%3Dd%2Fe%3Ff%23g%25h%2Bi");
	buf_reset(&b);
	/* Bytes above 0x7f, upper-case hex. */
	assert_int_equal(buf_put_url(&b, "caf\xc3\xa9\xff\x01"), 0);
	assert_buf(&b, "caf%C3%A9%FF%01");
	buf_reset(&b);
	assert_int_equal(buf_put_url(&b, ""), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_put_url(&b, "CORP\\alice"), 0);
	assert_buf(&b, "CORP%5Calice");
	buf_free(&b);

	buf_init(&b, 5);
	assert_int_equal(buf_put_url(&b, "ab"), 0);
	assert_int_equal(buf_put_url(&b, " "), 0);
	assert_buf(&b, "ab%20");
	assert_int_equal(buf_put_url(&b, "c"), KW_ERR_TOO_LARGE);
	buf_free(&b);
}

static void test_steal(void **state)
{
	struct buf b;
	size_t len = 99;
	char *p;

	buf_init(&b, 64);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	p = buf_steal(&b, &len);
	assert_non_null(p);
	assert_string_equal(p, "hello");
	assert_int_equal(len, 5);
	/* The buffer is empty and reusable, and does not own p. */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.alloc, 0);
	assert_int_equal(b.cap, 64);
	assert_int_equal(buf_puts(&b, "again"), 0);
	assert_buf(&b, "again");
	assert_ptr_not_equal(b.data, p);
	assert_string_equal(p, "hello");
	free(p);
	buf_free(&b);

	/* An empty buffer gives an empty string, not NULL. */
	buf_init(&b, 64);
	p = buf_steal(&b, &len);
	assert_non_null(p);
	assert_string_equal(p, "");
	assert_int_equal(len, 0);
	free(p);
	/* len may be NULL. */
	assert_int_equal(buf_puts(&b, "x"), 0);
	p = buf_steal(&b, NULL);
	assert_string_equal(p, "x");
	free(p);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_buffer),
		cmocka_unit_test(test_cap_exact_fit_then_refused),
		cmocka_unit_test(test_cap_failed_append_leaves_content),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_html),
		cmocka_unit_test(test_csv),
		cmocka_unit_test(test_csv_row),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_steal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
