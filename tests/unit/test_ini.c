/* The INI engine on a table of its own: nothing here is keywarden's. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/ini.h"
#include "util/str.h"

#define TMPL "/tmp/kw-test-ini-XXXXXX"

struct pair {
	int a, b;
};

struct obj {
	char *name;
	char *opt;
	bool flag;
	int64_t count;
	int64_t wait;
	struct ini_rate rate;
	struct ini_text title;
	struct ini_list colours;
	char *nets;
	char *per_fruit[3];
	struct pair pair;
};

static const char *const fruits[] = { "apple", "pear", "plum", NULL };

/* "A:B" with small numbers. */
static int pair_parse(void *field, const char *v, char *why, size_t whylen)
{
	struct pair *p = field;

	if (sscanf(v, "%d : %d", &p->a, &p->b) == 2)
		return 0;
	str_msg(why, whylen, "'%s' is not A:B", v);
	return KW_ERR_INVALID;
}

static int pair_format(const void *field, bool compact, struct buf *out)
{
	const struct pair *p = field;

	return buf_printf(out, compact ? "%d:%d" : "%d : %d", p->a, p->b);
}

static const struct ini_custom pair = { pair_parse, pair_format };

/* A check whose message names the key itself, and one that does not. */
static int check_name(const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "bad") == 0) {
		str_msg(why, whylen, "name = bad: not a name");
		return KW_ERR_INVALID;
	}
	return 0;
}

static int check_colour(const char *v, char *why, size_t whylen)
{
	if (!strcasecmp(v, "red") || !strcasecmp(v, "green") || !strcasecmp(v, "blue"))
		return 0;
	str_msg(why, whylen, "'%s' is not a colour", v);
	return KW_ERR_INVALID;
}

#define OFF(m) offsetof(struct obj, m)
static const struct ini_key keys[] = {
	{ "a", "name", INI_STR, OFF(name), "x", 0, 0, check_name, { NULL } },
	{ "a", "opt", INI_OPT, OFF(opt), "", 0, 0, NULL, { NULL } },
	{ "a", "flag", INI_BOOL, OFF(flag), "on", 0, 0, NULL, { NULL } },
	{ "a", "count", INI_INT, OFF(count), "3", 1, 9, NULL, { NULL } },
	{ "a", "wait", INI_DURATION, OFF(wait), "1m", 0, 3600, NULL, { NULL } },
	{ "a", "rate", INI_RATE, OFF(rate), "2/1h", 0, 0, NULL, { NULL } },
	{ "a", "title", INI_TEXT, OFF(title), "Hello", 0, 0, NULL, { NULL } },
	{ "b", "colours", INI_LIST, OFF(colours), "red", 1, 2, check_colour, { NULL } },
	{ "b", "nets", INI_CIDRS, OFF(nets), "", 0, 2, NULL, { NULL } },
	{ "c", NULL, INI_NAMED, OFF(per_fruit), "none", 0, 0, NULL, { .names = fruits } },
	{ "d", "pair", INI_CUSTOM, OFF(pair), "1:2", 0, 0, NULL, { .custom = &pair } },
};
static const struct ini_schema schema = { keys, sizeof(keys) / sizeof(keys[0]) };

/* Loads text over the defaults into o; msg gets "LINE: reason" (the file
 * name cut off) on failure. */
static int load(const char *text, struct obj *o, char *msg, size_t msglen)
{
	char path[sizeof(TMPL)], full[512];
	int fd, r;

	memset(o, 0, sizeof(*o));
	assert_int_equal(ini_defaults(&schema, o), 0);
	memcpy(path, TMPL, sizeof(TMPL));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	r = ini_load(&schema, o, path, full, sizeof(full));
	unlink(path);
	snprintf(msg, msglen, "%s", r ? full + strlen(path) + 1 : "");
	return r;
}

static void expect_error(const char *text, const char *want)
{
	struct obj o;
	char msg[512];

	assert_int_equal(load(text, &o, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_string_equal(msg, want);
	ini_free(&schema, &o);
}

static void test_defaults_and_types(void **state)
{
	struct obj o;
	char msg[256];

	assert_int_equal(load("[a]\nopt = o\ncount = 9\nwait = 0\nrate = 5 / 2m\n"
			      "title.sv-se = Hej\n[b]\ncolours = Blue, green\n"
			      "nets = 10.0.0.0/8, ::1\n[c]\npear = ripe\n[d]\npair = 7:8\n",
			      &o, msg, sizeof(msg)), 0);
	assert_string_equal(o.name, "x");
	assert_string_equal(o.opt, "o");
	assert_true(o.flag);
	assert_int_equal(o.count, 9);
	assert_int_equal(o.wait, 0);
	assert_int_equal(o.rate.count, 5);
	assert_int_equal(o.rate.window, 120);
	assert_string_equal(ini_text(&o.title, "sv"), "Hello");
	assert_string_equal(ini_text(&o.title, "sv-SE"), "Hej");
	/* Names of a list are kept lower-case, in order. */
	assert_int_equal(o.colours.n, 2);
	assert_string_equal(o.colours.item[0], "blue");
	assert_string_equal(o.colours.item[1], "green");
	assert_null(o.colours.item[2]);
	assert_string_equal(o.nets, "10.0.0.0/8, ::1");
	/* Each name of an INI_NAMED key has its own value and default. */
	assert_string_equal(o.per_fruit[0], "none");
	assert_string_equal(o.per_fruit[1], "ripe");
	assert_string_equal(o.per_fruit[2], "none");
	assert_int_equal(o.pair.a, 7);
	assert_int_equal(o.pair.b, 8);
	ini_free(&schema, &o);
	/* Freed pointers are cleared: a second free does nothing. */
	assert_null(o.name);
	assert_null(o.per_fruit[1]);
	assert_int_equal(o.colours.n, 0);
	ini_free(&schema, &o);
}

static void test_errors(void **state)
{
	expect_error("[a]\nname = bad\n", "2: name = bad: not a name");
	expect_error("[a]\ncount = 10\n", "2: count: '10' is not a number from 1 to 9");
	expect_error("[b]\ncolours = red, pink\n", "2: colours: 'pink' is not a colour");
	expect_error("[b]\ncolours = red, RED\n", "2: colours: 'RED' is listed twice");
	expect_error("[b]\ncolours = red, green, blue\n", "2: colours: more than 2 names");
	expect_error("[b]\ncolours =\n", "2: colours: at least one name is needed");
	expect_error("[b]\nnets = ::1, ::2, ::3\n", "2: nets: more than 2 entries");
	expect_error("[c]\nfig = x\n", "2: unknown key 'fig' in section [c]");
	expect_error("[c]\npear.sv = x\n", "2: unknown key 'pear.sv' in section [c]");
	expect_error("[d]\npair = 1\n", "2: pair: '1' is not A:B");
	expect_error("[e]\n", "1: unknown section [e]");
}

static void test_dump_round_trip(void **state)
{
	struct obj o, again;
	struct buf out, out2;
	char msg[256];

	assert_int_equal(load("[a]\ntitle.de = Hallo\n[b]\ncolours = green, red\n"
			      "[c]\nplum=;odd\n", &o, msg, sizeof(msg)), 0);
	buf_init(&out, 1 << 16);
	buf_init(&out2, 1 << 16);
	assert_int_equal(ini_dump(&schema, &o, &out), 0);
	assert_string_equal(out.data,
			    "[a]\nname = x\nopt =\nflag = true\ncount = 3\nwait = 1m\n"
			    "rate = 2/1h\ntitle = Hello\ntitle.de = Hallo\n"
			    "\n[b]\ncolours = green, red\nnets =\n"
			    "\n[c]\napple = none\npear = none\nplum=;odd\n"
			    "\n[d]\npair = 1 : 2\n");
	assert_int_equal(load(out.data, &again, msg, sizeof(msg)), 0);
	assert_int_equal(ini_dump(&schema, &again, &out2), 0);
	assert_string_equal(out.data, out2.data);
	ini_free(&schema, &again);
	ini_free(&schema, &o);
	buf_free(&out);
	buf_free(&out2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_types),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_dump_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
