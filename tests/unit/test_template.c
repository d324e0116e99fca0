/* The template engine, on the real templates compiled into the program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/template.h"
#include "util/buf.h"
#include "util/err.h"

static const char *shout(const char *msgid)
{
	return strcmp(msgid, "Sign in") ? msgid : "LOGGA IN";
}

static void render(const char *name, struct tpl *t, struct buf *out)
{
	buf_init(out, 1 << 20);
	assert_int_equal(tpl_render(name, t, shout, out), 0);
	assert_non_null(out->data);
}

static void test_variables_are_escaped(void **state)
{
	struct tpl t;
	struct buf out;

	tpl_init(&t);
	tpl_set(&t, "title", "<script>alert('x')</script> & \"quotes\"");
	tpl_set(&t, "message", "plain");
	tpl_set(&t, "company", "Contoso");
	render("message.html", &t, &out);
	assert_non_null(strstr(out.data,
		"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"));
	assert_null(strstr(out.data, "<script>alert"));
	buf_free(&out);
}

static void test_sections_and_includes(void **state)
{
	struct tpl t;
	struct buf out;

	tpl_init(&t);
	tpl_set(&t, "title", "T");
	tpl_set(&t, "message", "M");
	/* No link: the {{#link_url}} part is left out. */
	render("message.html", &t, &out);
	assert_null(strstr(out.data, "class=\"button primary\""));
	/* The layout (head.html, foot.html) is included. */
	assert_non_null(strstr(out.data, "<!doctype html>"));
	assert_non_null(strstr(out.data, "</html>"));
	buf_free(&out);

	tpl_set(&t, "link_url", "/login");
	tpl_set(&t, "link_text", "Again");
	render("message.html", &t, &out);
	assert_non_null(strstr(out.data, "<a class=\"button primary\" href=\"/login\">Again</a>"));
	buf_free(&out);
}

static void test_inverted_section_and_translation(void **state)
{
	struct tpl t;
	struct buf out;

	tpl_init(&t);
	tpl_set(&t, "title", "x");
	tpl_set(&t, "is_en", "1");
	tpl_set(&t, "link_sv", "/login?lang=sv");
	render("login.html", &t, &out);
	/* {{#is_en}} shows English as current, {{^is_sv}} links Swedish. */
	assert_non_null(strstr(out.data, "<span aria-current=\"true\">English</span>"));
	assert_non_null(strstr(out.data, "href=\"/login?lang=sv\""));
	/* {{_ Sign in}} went through the translation function. */
	assert_non_null(strstr(out.data, "<h1>LOGGA IN</h1>"));
	buf_free(&out);
}

static void test_raw_variable_is_not_escaped(void **state)
{
	struct tpl t;
	struct buf out;

	tpl_init(&t);
	tpl_set(&t, "title", "x");
	tpl_set_raw(&t, "notice", "<p>Trusted &amp; escaped already</p>");
	render("notice.html", &t, &out);
	assert_non_null(strstr(out.data, "<p>Trusted &amp; escaped already</p>"));
	buf_free(&out);
}

static void test_unknown_template_and_cap(void **state)
{
	struct tpl t;
	struct buf out;

	tpl_init(&t);
	buf_init(&out, 1 << 20);
	assert_int_equal(tpl_render("nope.html", &t, NULL, &out), KW_ERR_NOT_FOUND);
	buf_free(&out);
	/* A page larger than the output cap fails instead of being cut. */
	buf_init(&out, 100);
	assert_int_equal(tpl_render("login.html", &t, NULL, &out), KW_ERR_TOO_LARGE);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variables_are_escaped),
		cmocka_unit_test(test_sections_and_includes),
		cmocka_unit_test(test_inverted_section_and_translation),
		cmocka_unit_test(test_raw_variable_is_not_escaped),
		cmocka_unit_test(test_unknown_template_and_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
