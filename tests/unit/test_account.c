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
				     NULL, msg, sizeof(msg)), 0);
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

	assert_int_equal(account_add(f->s, "dup", 0, PW, NULL, msg, sizeof(msg)), 0);
	/* names compare case-insensitively */
	assert_int_equal(account_add(f->s, "DUP", 0, PW, NULL, msg, sizeof(msg)), KW_ERR_EXISTS);
	assert_int_equal(account_add(f->s, "weak", 0, "short", NULL, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_non_null(strstr(msg, "at least 8 characters"));
	assert_int_equal(account_get(f->s, "weak", &a), KW_ERR_NOT_FOUND);
	assert_int_equal(account_add(f->s, "two words", 0, PW, NULL, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_non_null(strstr(msg, "not a valid user name"));
	assert_int_equal(account_get(f->s, "two words", &a), KW_ERR_NOT_FOUND);
	assert_int_equal(account_add(f->s, "odd", 1u << 9, PW, NULL, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_int_equal(account_get(f->s, "odd", &a), KW_ERR_NOT_FOUND);
}

static void test_new_password_ends_sessions(void **state)
{
	struct fx *f = *state;
	char msg[512];

	assert_int_equal(account_add(f->s, "alice", 0, PW, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "bob", 0, PW, NULL, msg, sizeof(msg)), 0);
	session_put(f->s, "alice", 1);
	session_put(f->s, "ALICE", 2);
	session_put(f->s, "bob", 3);
	/* a password the policy refuses changes nothing */
	assert_int_equal(account_set_password(f->s, "alice", "short", NULL, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_true(*msg);
	assert_true(session_exists(f->s, 1));
	assert_true(password_is(f->s, "alice", PW));

	assert_int_equal(account_set_password(f->s, "Alice", "Another-Password-1", NULL, msg,
					      sizeof(msg)), 0);
	assert_true(password_is(f->s, "alice", "Another-Password-1"));
	assert_false(password_is(f->s, "alice", PW));
	assert_false(session_exists(f->s, 1));
	assert_false(session_exists(f->s, 2));
	assert_true(session_exists(f->s, 3));
	assert_int_equal(account_set_password(f->s, "ghost", "Another-Password-1", NULL, msg,
					      sizeof(msg)), KW_ERR_NOT_FOUND);
}

static void test_disable_ends_sessions(void **state)
{
	struct fx *f = *state;
	struct account a;
	char msg[512];

	/* another admin: alice is not the last one */
	assert_int_equal(account_add(f->s, "root", ROLE_ADMIN, PW, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "alice", ROLE_ADMIN, PW, NULL, msg, sizeof(msg)), 0);
	session_put(f->s, "alice", 1);
	session_put(f->s, "bob", 2);
	assert_int_equal(account_set_disabled(f->s, "alice", true, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_get(f->s, "alice", &a), 0);
	assert_true(a.disabled);
	assert_int_equal(a.roles, ROLE_ADMIN);
	assert_false(session_exists(f->s, 1));
	assert_true(session_exists(f->s, 2));
	/* twice is no error */
	assert_int_equal(account_set_disabled(f->s, "alice", true, NULL, msg, sizeof(msg)), 0);

	/* enabling keeps the password and the roles, and ends nothing */
	session_put(f->s, "alice", 4);
	assert_int_equal(account_set_disabled(f->s, "ALICE", false, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_get(f->s, "alice", &a), 0);
	assert_false(a.disabled);
	assert_int_equal(a.roles, ROLE_ADMIN);
	assert_true(password_is(f->s, "alice", PW));
	assert_true(session_exists(f->s, 4));
	assert_int_equal(account_set_disabled(f->s, "ghost", true, NULL, msg, sizeof(msg)), KW_ERR_NOT_FOUND);
}

/* ---- roles, the last admin, the audit records ---- */

static void test_roles_end_sessions(void **state)
{
	struct fx *f = *state;
	struct account a;
	char msg[512];
	bool changed;

	assert_int_equal(account_add(f->s, "alice", ROLE_HELPDESK, PW, NULL, msg, sizeof(msg)),
			 0);
	session_put(f->s, "alice", 1);
	/* the same roles change nothing, end nothing, and say so */
	changed = true;
	assert_int_equal(account_set_roles(f->s, "ALICE", ROLE_HELPDESK, NULL, &changed, msg,
					   sizeof(msg)), 0);
	assert_false(changed);
	assert_true(session_exists(f->s, 1));
	/* a session holds the roles of its sign-in: a change ends it */
	assert_int_equal(account_set_roles(f->s, "alice", ROLE_REPORTS | ROLE_ADMIN, NULL,
					   &changed, msg, sizeof(msg)), 0);
	assert_true(changed);
	assert_int_equal(account_get(f->s, "alice", &a), 0);
	assert_int_equal(a.roles, ROLE_REPORTS | ROLE_ADMIN);
	assert_false(a.disabled);
	assert_true(password_is(f->s, "alice", PW));
	assert_false(session_exists(f->s, 1));
	assert_int_equal(account_set_roles(f->s, "alice", 1u << 9, NULL, NULL, msg, sizeof(msg)),
			 KW_ERR_INVALID);
	assert_int_equal(account_get(f->s, "alice", &a), 0);
	assert_int_equal(a.roles, ROLE_REPORTS | ROLE_ADMIN);
	assert_int_equal(account_set_roles(f->s, "ghost", 0, NULL, NULL, msg, sizeof(msg)),
			 KW_ERR_NOT_FOUND);
}

static void test_last_admin_stays(void **state)
{
	struct fx *f = *state;
	struct account a;
	char msg[512];

	assert_int_equal(account_add(f->s, "root", ROLE_ADMIN, PW, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "alice", ROLE_ADMIN | ROLE_HELPDESK, PW, NULL, msg,
				     sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "bob", ROLE_HELPDESK_ADMIN, PW, NULL, msg,
				     sizeof(msg)), 0);
	session_put(f->s, "root", 1);
	/* two admins: one may go */
	assert_int_equal(account_set_disabled(f->s, "alice", true, NULL, msg, sizeof(msg)), 0);
	/* a disabled admin does not count: root is the last one */
	assert_int_equal(account_set_disabled(f->s, "ROOT", true, NULL, msg, sizeof(msg)),
			 KW_ERR_CONFLICT);
	assert_non_null(strstr(msg, "root is the only enabled account with the admin role"));
	assert_int_equal(account_set_roles(f->s, "root", ROLE_HELPDESK, NULL, NULL, msg, sizeof(msg)),
			 KW_ERR_CONFLICT);
	assert_non_null(strstr(msg, "root"));
	assert_int_equal(account_get(f->s, "root", &a), 0);
	assert_int_equal(a.roles, ROLE_ADMIN);
	assert_false(a.disabled);
	assert_true(session_exists(f->s, 1));
	/* other changes to the last admin are fine: roles that keep admin, a
	 * password */
	assert_int_equal(account_set_roles(f->s, "root", ROLE_ADMIN | ROLE_REPORTS, NULL, NULL, msg,
					   sizeof(msg)), 0);
	assert_int_equal(account_set_password(f->s, "root", "Another-Password-1", NULL, msg,
					      sizeof(msg)), 0);
	/* and so is anything done to the others */
	assert_int_equal(account_set_roles(f->s, "bob", 0, NULL, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_set_disabled(f->s, "bob", true, NULL, msg, sizeof(msg)), 0);
	/* once alice is back, root may go */
	assert_int_equal(account_set_disabled(f->s, "alice", false, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_set_roles(f->s, "root", 0, NULL, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_set_disabled(f->s, "alice", true, NULL, msg, sizeof(msg)),
			 KW_ERR_CONFLICT);
}

struct trail {
	char result[8][32], end_user[8][64], comment[8][128], actor[8][64], source[8][32],
		client[8][64];
	size_t n;
};

static int trail_one(const struct audit_rec *r, void *arg)
{
	struct trail *t = arg;

	if (t->n == 8)
		return 0;
	snprintf(t->result[t->n], sizeof(t->result[0]), "%s", r->result);
	snprintf(t->end_user[t->n], sizeof(t->end_user[0]), "%s", r->end_user);
	snprintf(t->comment[t->n], sizeof(t->comment[0]), "%s", r->comment);
	snprintf(t->actor[t->n], sizeof(t->actor[0]), "%s", r->actor);
	snprintf(t->source[t->n], sizeof(t->source[0]), "%s", r->source);
	snprintf(t->client[t->n++], sizeof(t->client[0]), "%s", r->client);
	return 0;
}

static int trail_tx(struct store_tx *tx, void *arg)
{
	((struct trail *)arg)->n = 0;
	return store_audit_each(tx, NULL, trail_one, arg);
}

static void trail_read(struct store *s, struct trail *t)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(store_read(s, trail_tx, t), 0);
}

static void test_changes_are_recorded(void **state)
{
	struct fx *f = *state;
	struct audit_rec who = { .source = "helpdesk", .actor = "root", .client = "192.0.2.7" };
	struct trail t;
	char msg[512];

	assert_int_equal(account_add(f->s, "root", ROLE_ADMIN, PW, NULL, msg, sizeof(msg)), 0);
	trail_read(f->s, &t);
	assert_int_equal(t.n, 0);     /* without who: no record */
	assert_int_equal(account_add(f->s, "CORP\\alice", ROLE_HELPDESK | ROLE_ADMIN, PW, &who,
				     msg, sizeof(msg)), 0);
	assert_int_equal(account_set_roles(f->s, "corp\\ALICE", ROLE_REPORTS, &who, NULL, msg,
					   sizeof(msg)), 0);
	assert_int_equal(account_set_roles(f->s, "CORP\\alice", ROLE_REPORTS, &who, NULL, msg,
					   sizeof(msg)), 0);     /* no change: no record */
	assert_int_equal(account_set_disabled(f->s, "CORP\\alice", true, &who, msg,
					      sizeof(msg)), 0);
	assert_int_equal(account_set_disabled(f->s, "CORP\\alice", true, &who, msg,
					      sizeof(msg)), 0);  /* no change */
	assert_int_equal(account_set_disabled(f->s, "CORP\\alice", false, &who, msg,
					      sizeof(msg)), 0);
	assert_int_equal(account_set_password(f->s, "CORP\\alice", "Another-Password-1", &who,
					      msg, sizeof(msg)), 0);
	/* refused: no change, no record */
	assert_int_equal(account_set_disabled(f->s, "root", true, &who, msg, sizeof(msg)),
			 KW_ERR_CONFLICT);
	assert_int_equal(account_add(f->s, "root", 0, PW, &who, msg, sizeof(msg)),
			 KW_ERR_EXISTS);
	trail_read(f->s, &t);
	assert_int_equal(t.n, 5);
	assert_string_equal(t.result[0], "user_added");
	assert_string_equal(t.comment[0], "roles: helpdesk,admin");
	assert_string_equal(t.result[1], "roles_changed");
	assert_string_equal(t.comment[1], "roles: reports (were: helpdesk,admin)");
	assert_string_equal(t.result[2], "user_disabled");
	assert_string_equal(t.result[3], "user_enabled");
	assert_string_equal(t.result[4], "password_reset");
	for (size_t i = 0; i < t.n; i++) {
		/* the account as it is stored, whatever spelling was asked for */
		assert_string_equal(t.end_user[i], "CORP\\alice");
		assert_string_equal(t.actor[i], "root");
		assert_string_equal(t.source[i], "helpdesk");
		assert_string_equal(t.client[i], "192.0.2.7");
		assert_null(strstr(t.comment[i], "Another-Password-1"));
	}
}

static void test_random_password(void **state)
{
	char a[ACCOUNT_RANDOM_PASSWORD_LEN + 1], b[ACCOUNT_RANDOM_PASSWORD_LEN + 1], msg[256];

	(void)state;
	account_random_password(a);
	account_random_password(b);
	assert_int_equal(strlen(a), ACCOUNT_RANDOM_PASSWORD_LEN);
	assert_string_not_equal(a, b);
	assert_int_equal(password_check_policy(a, msg, sizeof(msg)), 0);
	for (size_t i = 0; i < ACCOUNT_RANDOM_PASSWORD_LEN; i++)
		assert_non_null(strchr("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
				       a[i]));
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
	assert_int_equal(account_add(f->s, "carol", 0, PW, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "Alice", 0, PW, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(account_add(f->s, "bob", 0, PW, NULL, msg, sizeof(msg)), 0);
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
		cmocka_unit_test_setup_teardown(test_roles_end_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_admin_stays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_are_recorded, setup, teardown),
		cmocka_unit_test(test_random_password),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
