/* The template engine, on the real templates compiled into the program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
	/* {{{notice}}} set with tpl_set, not tpl_set_raw: escaped all the same */
	tpl_set(&t, "notice", "<script>alert(1)</script>");
	render("notice.html", &t, &out);
	assert_null(strstr(out.data, "<script>alert"));
	assert_non_null(strstr(out.data, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	buf_free(&out);
}

/* More variables than fit: the render fails instead of leaving one out. */
static void test_too_many_variables(void **state)
{
	static char names[TPL_MAX_VARS + 1][8];
	struct tpl t, item;
	struct buf out;

	tpl_init(&t);
	for (int i = 0; i < TPL_MAX_VARS; i++) {
		snprintf(names[i], sizeof(names[i]), "v%d", i);
		tpl_set(&t, names[i], "x");
	}
	tpl_set(&t, "v0", "replaced: still fits");
	buf_init(&out, 1 << 20);
	assert_int_equal(tpl_render("message.html", &t, NULL, &out), 0);
	buf_free(&out);
	tpl_set(&t, "title", "one more: does not fit");
	buf_init(&out, 1 << 20);
	assert_int_equal(tpl_render("message.html", &t, NULL, &out), KW_ERR_TOO_LARGE);
	buf_free(&out);
	/* in a list's item too */
	tpl_init(&t);
	tpl_set(&t, "title", "Help desk");
	tpl_init(&item);
	for (int i = 0; i <= TPL_MAX_VARS; i++)
		tpl_set(&item, names[i < TPL_MAX_VARS ? i : 0], "x");
	tpl_set(&item, "text", "one too many");
	tpl_set_list(&t, "roles", &item, 1);
	buf_init(&out, 1 << 20);
	assert_int_equal(tpl_render("helpdesk.html", &t, NULL, &out), KW_ERR_TOO_LARGE);
	buf_free(&out);
}

/* A list renders its part once per item, escaped, an item's variables
 * before the page's; no items, no part. */
static void test_lists(void **state)
{
	struct tpl t, items[3];
	struct buf out;
	const char *a, *b, *c;

	tpl_init(&t);
	tpl_set(&t, "title", "Help desk");
	tpl_set(&t, "href", "/page-wide");      /* shadowed by each item's */
	for (int i = 0; i < 3; i++)
		tpl_init(&items[i]);
	tpl_set(&items[0], "href", "/first");
	tpl_set(&items[0], "text", "One & <b>two</b>");
	tpl_set(&items[1], "href", "/second");
	tpl_set(&items[1], "text", "Second");
	tpl_set(&items[2], "text", "Third, the page's link");
	tpl_set_list(&t, "roles", items, 3);
	render("helpdesk.html", &t, &out);
	a = strstr(out.data, "<li><a href=\"/first\">One &amp; &lt;b&gt;two&lt;/b&gt;</a></li>");
	b = strstr(out.data, "<li><a href=\"/second\">Second</a></li>");
	c = strstr(out.data, "<li><a href=\"/page-wide\">Third, the page&#39;s link</a></li>");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(a < b && b < c);
	buf_free(&out);

	tpl_set_list(&t, "roles", items, 0);
	render("helpdesk.html", &t, &out);
	assert_null(strstr(out.data, "<li>"));
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
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_too_many_variables),
		cmocka_unit_test(test_unknown_template_and_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
