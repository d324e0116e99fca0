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

#include "auth/password.h"
#include "core/account.h"
#include "core/role.h"
#include "store/store.h"
#include "util/err.h"

#define PW "Correct-Horse-Battery-42"

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

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256] = "";

	if (!f)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-account-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "sqlite:%s/kw.db", f->dir);
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0) {
		print_error("store_open: %s\n", msg);
		return -1;
	}
	return 0;
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

/* ---- sessions, straight in the store: the tests look at what the
 * account operations do to them ---- */

struct sess {
	const char *user;
	uint8_t n;
};

static int session_put_tx(struct store_tx *tx, void *arg)
{
	const struct sess *ss = arg;
	struct session_rec r;

	memset(&r, 0, sizeof(r));
	memset(r.hash, ss->n, sizeof(r.hash));
	r.user = ss->user;
	r.identities = ss->user;
	snprintf(r.csrf, sizeof(r.csrf), "csrf");
	r.created_at = r.last_seen = 1000;
	return store_session_insert(tx, &r);
}

static void session_put(struct store *s, const char *user, uint8_t n)
{
	struct sess ss = { user, n };

	assert_int_equal(store_write(s, session_put_tx, &ss), 0);
}

static int session_seen(const struct session_rec *r, void *arg)
{
	return 0;
}

static int session_get_tx(struct store_tx *tx, void *arg)
{
	uint8_t h[STORE_HASH_LEN];

	memset(h, *(uint8_t *)arg, sizeof(h));
	return store_session_get(tx, h, session_seen, NULL);
}

static bool session_exists(struct store *s, uint8_t n)
{
	int rc = store_read(s, session_get_tx, &n);

	assert_true(rc == 0 || rc == KW_ERR_NOT_FOUND);
	return rc == 0;
}

struct hash_of {
	char hash[PASSWORD_HASH_MAX];
};

static int hash_found(const struct user_rec *u, void *arg)
{
	snprintf(((struct hash_of *)arg)->hash, PASSWORD_HASH_MAX, "%s", u->password_hash);
	return 0;
}

struct hash_job {
	const char *name;
	struct hash_of *out;
};

static int hash_tx(struct store_tx *tx, void *arg)
{
	struct hash_job *j = arg;

	return store_user_get(tx, j->name, hash_found, j->out);
}

/* Does pw open the stored hash of name? */
static bool password_is(struct store *s, const char *name, const char *pw)
{
	struct hash_of h;
	struct hash_job j = { name, &h };

	assert_int_equal(store_read(s, hash_tx, &j), 0);
	return password_verify(h.hash, pw) == 0;
}

/* ---- names and roles ---- */

static void test_names(void **state)
{
	char msg[512], long_name[ACCOUNT_NAME_MAX + 2];

	assert_int_equal(account_check_name("alice", msg, sizeof(msg)), 0);
	assert_int_equal(account_check_name("CORP\\alice", msg, sizeof(msg)), 0);
	assert_int_equal(account_check_name("alice@corp.example.com", msg, sizeof(msg)), 0);
	assert_int_equal(account_check_name("Åsa", msg, sizeof(msg)), 0);
	assert_int_equal(account_check_name("bad name", msg, sizeof(msg)), KW_ERR_INVALID);
	assert_non_null(strstr(msg, "'bad name' is not a valid user name"));
	assert_int_equal(account_check_name("", msg, sizeof(msg)), KW_ERR_INVALID);
	assert_int_equal(account_check_name("a\nb", msg, sizeof(msg)), KW_ERR_INVALID);
	assert_int_equal(account_check_name("a\x7f", msg, sizeof(msg)), KW_ERR_INVALID);
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[ACCOUNT_NAME_MAX] = '\0';
	assert_int_equal(account_check_name(long_name, msg, sizeof(msg)), 0);
	long_name[ACCOUNT_NAME_MAX] = 'a';
	long_name[ACCOUNT_NAME_MAX + 1] = '\0';
	assert_int_equal(account_check_name(long_name, msg, sizeof(msg)), KW_ERR_INVALID);
}

/* ---- accounts ---- */

static void test_add_and_get(void **state)
{
	struct fx *f = *state;
	struct account a;
	char msg[512];

	assert_int_equal(account_add(f->s, "CORP\\alice", ROLE_HELPDESK | ROLE_REPORTS, PW,
				     msg, sizeof(msg)), 0);
	assert_int_equal(account_get(f->s, "corp\\ALICE", &a), 0);
	assert_string_equal(a.name, "CORP\\alice");
	assert_int_equal(a.roles, ROLE_HELPDESK | ROLE_REPORTS);
	assert_false(a.disabled);
	assert_true(a.created_at > 0);
	assert_true(password_is(f->s, "CORP\\alice", PW));
	assert_int_equal(account_get(f->s, "bob", &a), KW_ERR_NOT_FOUND);
}

static void test_add_refuses_before_writing(void **state)
{
	struct fx *f = *state;
	struct account a;
	char msg[512];

	assert_int_equal(account_add(f->s, "dup", 0, PW, msg, sizeof(msg)), 0);
	/* names compare case-insensitively */
	assert_int_equal(account_add(f->s, "DUP", 0, PW, msg, sizeof(msg)), KW_ERR_EXISTS);
	assert_int_equal(account_add(f->s, "weak", 0, "short", msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_non_null(strstr(msg, "at least 8 characters"));
	assert_int_equal(account_get(f->s, "weak", &a), KW_ERR_NOT_FOUND);
	assert_int_equal(account_add(f->s, "two words", 0, PW, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_non_null(strstr(msg, "not a valid user name"));
	assert_int_equal(account_get(f->s, "two words", &a), KW_ERR_NOT_FOUND);
	assert_int_equal(account_add(f->s, "odd", 1u << 9, PW, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_int_equal(account_get(f->s, "odd", &a), KW_ERR_NOT_FOUND);
}

static void test_new_password_ends_sessions(void **state)
{
	struct fx *f = *state;
	char msg[512];

	assert_int_equal(account_add(f->s, "alice", 0, PW, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "bob", 0, PW, msg, sizeof(msg)), 0);
	session_put(f->s, "alice", 1);
	session_put(f->s, "ALICE", 2);
	session_put(f->s, "bob", 3);
	/* a password the policy refuses changes nothing */
	assert_int_equal(account_set_password(f->s, "alice", "short", msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_true(*msg);
	assert_true(session_exists(f->s, 1));
	assert_true(password_is(f->s, "alice", PW));

	assert_int_equal(account_set_password(f->s, "Alice", "Another-Password-1", msg,
					      sizeof(msg)), 0);
	assert_true(password_is(f->s, "alice", "Another-Password-1"));
	assert_false(password_is(f->s, "alice", PW));
	assert_false(session_exists(f->s, 1));
	assert_false(session_exists(f->s, 2));
	assert_true(session_exists(f->s, 3));
	assert_int_equal(account_set_password(f->s, "ghost", "Another-Password-1", msg,
					      sizeof(msg)), KW_ERR_NOT_FOUND);
}

static void test_disable_ends_sessions(void **state)
{
	struct fx *f = *state;
	struct account a;
	char msg[512];

	assert_int_equal(account_add(f->s, "alice", ROLE_ADMIN, PW, msg, sizeof(msg)), 0);
	session_put(f->s, "alice", 1);
	session_put(f->s, "bob", 2);
	assert_int_equal(account_set_disabled(f->s, "alice", true), 0);
	assert_int_equal(account_get(f->s, "alice", &a), 0);
	assert_true(a.disabled);
	assert_int_equal(a.roles, ROLE_ADMIN);
	assert_false(session_exists(f->s, 1));
	assert_true(session_exists(f->s, 2));
	/* twice is no error */
	assert_int_equal(account_set_disabled(f->s, "alice", true), 0);

	/* enabling keeps the password and the roles, and ends nothing */
	session_put(f->s, "alice", 4);
	assert_int_equal(account_set_disabled(f->s, "ALICE", false), 0);
	assert_int_equal(account_get(f->s, "alice", &a), 0);
	assert_false(a.disabled);
	assert_int_equal(a.roles, ROLE_ADMIN);
	assert_true(password_is(f->s, "alice", PW));
	assert_true(session_exists(f->s, 4));
	assert_int_equal(account_set_disabled(f->s, "ghost", true), KW_ERR_NOT_FOUND);
}

struct listing {
	char names[8][ACCOUNT_NAME_MAX + 1];
	size_t n;
	size_t stop_after;
};

static int list_one(const struct account *a, void *arg)
{
	struct listing *l = arg;

	snprintf(l->names[l->n++], sizeof(l->names[0]), "%s", a->name);
	return l->stop_after && l->n == l->stop_after ? 42 : 0;
}

static void test_each(void **state)
{
	struct fx *f = *state;
	struct listing l;
	char msg[512];

	memset(&l, 0, sizeof(l));
	assert_int_equal(account_each(f->s, list_one, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(account_add(f->s, "carol", 0, PW, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "Alice", 0, PW, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "bob", 0, PW, msg, sizeof(msg)), 0);
	assert_int_equal(account_each(f->s, list_one, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.names[0], "Alice");
	assert_string_equal(l.names[1], "bob");
	assert_string_equal(l.names[2], "carol");
	/* the callback's non-zero return stops the walk */
	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	assert_int_equal(account_each(f->s, list_one, &l), 42);
	assert_int_equal(l.n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_add_and_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_refuses_before_writing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_password_ends_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disable_ends_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
