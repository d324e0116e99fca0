/* The sign-in chain (auth/auth.c): order, fall-through, roles, the cap.
 * The local backend is the real one over a real SQLite store; the
 * "directories" are test backends compiled in here, since what is tested
 * is the chain, not a directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/password.h"
#include "core/config.h"
#include "core/identity.h"
#include "core/role.h"
#include "store/store.h"
#include "util/err.h"
#include "util/timeutil.h"

/* ---- test directories ---- */

/* One user, and how the directory behaves. */
struct dir {
	const char *user;
	const char *password;
	unsigned roles;
	bool down;                /* answers KW_ERR_UNAVAILABLE */
	bool block;               /* waits until released (or its deadline) */
	/* under dir_lock */
	bool release;
	int inside;               /* calls in progress */
	int authenticates, roles_calls;
	int seq;                  /* order of the last authenticate call */
};

static struct dir dir_a, dir_b;
static int seq;                   /* authenticate calls across directories */
static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dir_cond = PTHREAD_COND_INITIALIZER;

/* Waits (with dir_lock held) until released or past the
 * deadline: a directory that hangs, but honours the deadline. */
static int dir_wait(struct dir *d, int64_t deadline_ms)
{
	while (!d->release) {
		struct timespec ts;

		if (time_mono_ms() >= deadline_ms)
			return KW_ERR_UNAVAILABLE;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&dir_cond, &dir_lock, &ts);
	}
	return 0;
}

static int dir_open_a(const struct config *cfg, struct store *s, void **ctx, char *msg,
		      size_t msglen)
{
	*ctx = &dir_a;
	return 0;
}

static int dir_open_b(const struct config *cfg, struct store *s, void **ctx, char *msg,
		      size_t msglen)
{
	*ctx = &dir_b;
	return 0;
}

static void dir_close(void *ctx)
{
}

static int dir_authenticate(void *ctx, const char *user, const char *password,
			    int64_t deadline_ms, struct auth_user *out)
{
	struct dir *d = ctx;
	char other[IDENTITY_NAME_MAX + 8];
	int rc = 0;

	pthread_mutex_lock(&dir_lock);
	d->authenticates++;
	d->seq = ++seq;
	d->inside++;
	if (d->block)
		rc = dir_wait(d, deadline_ms);
	d->inside--;
	pthread_mutex_unlock(&dir_lock);
	if (rc < 0 || d->down)
		return KW_ERR_UNAVAILABLE;
	if (!d->user || strcmp(user, d->user) != 0)
		return KW_ERR_NOT_FOUND;
	snprintf(out->name, sizeof(out->name), "%s", d->user);
	if (strcmp(password, d->password) != 0)
		return KW_ERR_AUTH;
	out->roles = d->roles;
	/* As a directory would: the name and the DOMAIN\\name form. */
	identity_from_name(NULL, user, &out->id);
	snprintf(other, sizeof(other), "CORP\\%s", user);
	identity_add(NULL, &out->id, other);
	return 0;
}

static int dir_roles(void *ctx, const struct identity *id, int64_t deadline_ms,
		     unsigned *roles)
{
	struct dir *d = ctx;

	pthread_mutex_lock(&dir_lock);
	d->roles_calls++;
	pthread_mutex_unlock(&dir_lock);
	if (d->down)
		return KW_ERR_UNAVAILABLE;
	for (size_t i = 0; d->user && i < id->n; i++) {
		if (!strcmp(id->forms[i], d->user)) {
			*roles = d->roles;
			return 0;
		}
	}
	return KW_ERR_NOT_FOUND;
}

#define DIR_CAP 2

static const struct auth_backend backend_a = {
	"dir_a", DIR_CAP, dir_open_a, dir_close, dir_authenticate, dir_roles,
};
static const struct auth_backend backend_b = {
	"dir_b", DIR_CAP, dir_open_b, dir_close, dir_authenticate, dir_roles,
};

/* ---- fixture: a store with local accounts ---- */

struct fx {
	char dir[64];
	char db[96];
	struct store *s;
	struct config cfg;
};

struct new_user {
	const char *name, *password;
	unsigned roles;
	bool disabled;
};

static int insert_tx(struct store_tx *tx, void *arg)
{
	const struct new_user *nu = arg;
	char hash[PASSWORD_HASH_MAX];
	struct user_rec u;
	int rc;

	if ((rc = password_hash(nu->password, hash)) < 0)
		return rc;
	memset(&u, 0, sizeof(u));
	u.name = nu->name;
	u.password_hash = hash;
	u.roles = nu->roles;
	u.disabled = nu->disabled;
	u.created_at = time_now();
	return store_user_insert(tx, &u);
}

static void add_user(struct fx *f, const char *name, const char *password,
		     unsigned roles, bool disabled)
{
	struct new_user nu = { name, password, roles, disabled };

	assert_int_equal(store_write(f->s, insert_tx, &nu), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kw-test-auth-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "sqlite:%s/kw.db", f->dir);
	if (store_open(f->db, true, &f->s, msg, sizeof(msg)) < 0 ||
	    config_defaults(&f->cfg) < 0 ||
	    identity_domains_parse(&f->cfg.domains, "CORP:corp.example.com", msg,
				   sizeof(msg)) < 0)
		return -1;
	memset(&dir_a, 0, sizeof(dir_a));
	memset(&dir_b, 0, sizeof(dir_b));
	seq = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char path[512];
	struct dirent *e;
	DIR *d;

	store_close(f->s);
	config_free(&f->cfg);
	if ((d = opendir(f->dir))) {
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
				unlink(path);
			}
		closedir(d);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct auth *open_chain(struct fx *f, const struct auth_backend *b1,
			       const struct auth_backend *b2)
{
	const struct auth_backend *chain[2] = { b1, b2 };
	struct auth *a = NULL;
	char msg[256];

	assert_int_equal(auth_open_backends(chain, b2 ? 2 : 1, &f->cfg, f->s, &a, msg,
					    sizeof(msg)), 0);
	return a;
}

static int sign_in(struct auth *a, const char *user, const char *password,
		   struct auth_user *u)
{
	return auth_authenticate(a, user, password, time_mono_ms() + 5000, u);
}

/* ---- tests ---- */

static void test_order(void **state)
{
	struct fx *f = *state;
	struct auth_user u;
	struct auth *a;

	dir_a = (struct dir){ .user = "bob", .password = "pw-of-bob", .roles = ROLE_REPORTS };
	dir_b = (struct dir){ .user = "bob", .password = "pw-of-bob", .roles = ROLE_HELPDESK };
	a = open_chain(f, &backend_a, &backend_b);
	assert_int_equal(sign_in(a, "bob", "pw-of-bob", &u), 0);
	/* The first backend takes the password; the second only adds roles. */
	assert_string_equal(u.backend, "dir_a");
	assert_int_equal(dir_b.authenticates, 0);
	assert_int_equal(dir_b.roles_calls, 1);
	auth_close(a);

	a = open_chain(f, &backend_b, &backend_a);
	assert_int_equal(sign_in(a, "bob", "pw-of-bob", &u), 0);
	assert_string_equal(u.backend, "dir_b");
	assert_int_equal(dir_a.authenticates, 1);   /* in the first chain only */
	assert_int_equal(u.roles, ROLE_HELPDESK | ROLE_REPORTS);
	auth_close(a);

	/* Unknown to the first: the second is asked after it. */
	dir_a.user = "someone-else";
	a = open_chain(f, &backend_a, &backend_b);
	assert_int_equal(sign_in(a, "bob", "pw-of-bob", &u), 0);
	assert_string_equal(u.backend, "dir_b");
	assert_true(dir_a.seq < dir_b.seq);
	assert_int_equal(u.ndown, 0);
	auth_close(a);

	/* Unknown everywhere: the generic refusal, naming no account. */
	a = open_chain(f, &backend_a, &auth_local);
	assert_int_equal(sign_in(a, "nobody", "whatever-pw", &u), KW_ERR_AUTH);
	assert_string_equal(u.name, "");
	assert_null(u.backend);
	auth_close(a);
}

static void test_unavailable_falls_through_to_local(void **state)
{
	struct fx *f = *state;
	struct auth_user u;
	struct auth *a;

	add_user(f, "breakglass", "local-admin-pw", ROLE_ADMIN, false);
	dir_a.user = "breakglass";
	dir_a.password = "directory-pw";
	dir_a.down = true;
	a = open_chain(f, &backend_a, &auth_local);

	/* The directory is down: the local break-glass account still works. */
	assert_int_equal(sign_in(a, "breakglass", "local-admin-pw", &u), 0);
	assert_string_equal(u.name, "breakglass");
	assert_string_equal(u.backend, "local");
	assert_int_equal(u.roles, ROLE_ADMIN);
	/* The caller is told, to log it; the directory gave no roles. */
	assert_int_equal(u.ndown, 1);
	assert_string_equal(u.down[0], "dir_a");
	assert_int_equal(dir_a.roles_calls, 0);

	/* A wrong local password is still refused. */
	assert_int_equal(sign_in(a, "breakglass", "directory-pw", &u), KW_ERR_AUTH);
	assert_string_equal(u.name, "breakglass");
	assert_int_equal(u.roles, 0);
	assert_int_equal(u.ndown, 1);

	/* Nobody took the password and a backend was down: say so. */
	assert_int_equal(sign_in(a, "carol", "carols-password", &u), KW_ERR_UNAVAILABLE);
	assert_string_equal(u.name, "");
	assert_int_equal(u.ndown, 1);
	auth_close(a);

	/* Up again: the directory signs its user in. */
	dir_a.down = false;
	a = open_chain(f, &backend_a, &auth_local);
	assert_int_equal(sign_in(a, "breakglass", "directory-pw", &u), 0);
	assert_string_equal(u.backend, "dir_a");
	assert_int_equal(u.ndown, 0);
	auth_close(a);
}

static void test_wrong_password_stops_the_chain(void **state)
{
	struct fx *f = *state;
	struct auth_user u;
	struct auth *a;

	/* The same name in the directory and locally, with two passwords:
	 * the directory knows the user, so its refusal is final, and the
	 * local password does not get a second try. */
	add_user(f, "alice", "local-password", ROLE_ADMIN, false);
	dir_a.user = "alice";
	dir_a.password = "directory-password";
	a = open_chain(f, &backend_a, &auth_local);
	assert_int_equal(sign_in(a, "alice", "local-password", &u), KW_ERR_AUTH);
	assert_string_equal(u.name, "alice");
	assert_int_equal(u.roles, 0);
	assert_null(u.backend);
	auth_close(a);

	/* The same between two directories: the second is never asked. */
	dir_b.user = "alice";
	dir_b.password = "local-password";
	a = open_chain(f, &backend_a, &backend_b);
	assert_int_equal(sign_in(a, "alice", "local-password", &u), KW_ERR_AUTH);
	assert_int_equal(dir_b.authenticates, 0);
	assert_int_equal(dir_b.roles_calls, 0);
	auth_close(a);

	/* A disabled local account is refused, and the chain stops there. */
	add_user(f, "dave", "dave-password", ROLE_ADMIN, true);
	dir_b.user = "dave";
	dir_b.password = "dave-password";
	a = open_chain(f, &auth_local, &backend_b);
	assert_int_equal(sign_in(a, "dave", "dave-password", &u), KW_ERR_AUTH);
	assert_int_equal(dir_b.authenticates, 0);
	auth_close(a);
}

static void test_roles_union(void **state)
{
	struct fx *f = *state;
	struct auth_user u;
	struct auth *a;

	/* The directory grants helpdesk; a local account under another form
	 * of the same person (CORP\alice, alice@corp.example.com) grants
	 * reports, one under the name itself admin: the widest wins. */
	add_user(f, "CORP\\alice", "unused-password-1", ROLE_REPORTS, false);
	add_user(f, "alice", "unused-password-2", ROLE_ADMIN, false);
	add_user(f, "erin", "unused-password-3", ROLE_ADMIN, true);
	dir_a.user = "alice";
	dir_a.password = "directory-password";
	dir_a.roles = ROLE_HELPDESK;
	a = open_chain(f, &backend_a, &auth_local);
	assert_int_equal(sign_in(a, "alice", "directory-password", &u), 0);
	assert_string_equal(u.backend, "dir_a");
	assert_int_equal(u.roles, ROLE_HELPDESK | ROLE_REPORTS | ROLE_ADMIN);

	/* A disabled local account adds nothing. */
	dir_a.user = "erin";
	dir_a.password = "erin-directory-pw";
	dir_a.roles = ROLE_HELPDESK;
	assert_int_equal(sign_in(a, "erin", "erin-directory-pw", &u), 0);
	assert_int_equal(u.roles, ROLE_HELPDESK);
	auth_close(a);

	/* Signed in locally, a directory adds its roles; one that is down
	 * adds nothing and is reported. */
	add_user(f, "frank", "franks-local-pw", ROLE_REPORTS, false);
	dir_a.user = "frank";
	dir_a.roles = ROLE_HELPDESK_ADMIN;
	dir_b.user = "frank";
	dir_b.roles = ROLE_ADMIN;
	dir_b.down = true;
	a = open_chain(f, &auth_local, &backend_a);
	assert_int_equal(sign_in(a, "frank", "franks-local-pw", &u), 0);
	assert_int_equal(u.roles, ROLE_REPORTS | ROLE_HELPDESK_ADMIN);
	assert_int_equal(u.ndown, 0);
	auth_close(a);
	a = open_chain(f, &auth_local, &backend_b);
	assert_int_equal(sign_in(a, "frank", "franks-local-pw", &u), 0);
	assert_int_equal(u.roles, ROLE_REPORTS);
	assert_int_equal(u.ndown, 1);
	assert_string_equal(u.down[0], "dir_b");
	auth_close(a);
}

static void test_unknown_backend_refused(void **state)
{
	struct fx *f = *state;
	struct auth *a = (struct auth *)1;
	char why[256], msg[256];

	assert_int_equal(auth_backend_check("local", why, sizeof(why)), 0);
	assert_int_equal(auth_backend_check("LOCAL", why, sizeof(why)), 0);
	assert_int_equal(auth_backend_check("ldap", why, sizeof(why)), 0);
	/* Not built, or misspelled: refused, naming what there is. */
	assert_int_equal(auth_backend_check("kerberos", why, sizeof(why)), KW_ERR_INVALID);
	assert_string_equal(why, "'kerberos' is not a sign-in backend of this keywarden "
			    "(use local, ldap)");
	assert_int_equal(auth_backend_check("lcoal", why, sizeof(why)), KW_ERR_INVALID);

	/* A configuration changed by hand does not get past auth_open. */
	free(f->cfg.backends.item[0]);
	f->cfg.backends.item[0] = strdup("kerberos");
	assert_int_equal(auth_open(&f->cfg, f->s, &a, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_null(a);
	assert_string_equal(msg, "'kerberos' is not a sign-in backend of this keywarden "
			    "(use local, ldap)");

	/* The directory needs somewhere to look. */
	free(f->cfg.backends.item[0]);
	f->cfg.backends.item[0] = strdup("ldap");
	assert_int_equal(auth_open(&f->cfg, f->s, &a, msg, sizeof(msg)), KW_ERR_INVALID);
	assert_null(a);
	assert_string_equal(msg, "[auth] backends names ldap: [ldap] needs uri and base_dn");

	/* The defaults open the local backend. */
	free(f->cfg.backends.item[0]);
	f->cfg.backends.item[0] = strdup("local");
	assert_int_equal(auth_open(&f->cfg, f->s, &a, msg, sizeof(msg)), 0);
	auth_close(a);
	auth_close(NULL);
}

struct call {
	struct auth *a;
	const char *user, *password;
	int64_t deadline_ms;
	int rc;
	struct auth_user u;
	pthread_t t;
};

static void call_init(struct call *c, struct auth *a, const char *user,
		      const char *password, int64_t deadline_ms)
{
	memset(c, 0, sizeof(*c));
	c->a = a;
	c->user = user;
	c->password = password;
	c->deadline_ms = deadline_ms;
}

static void *call_thread(void *arg)
{
	struct call *c = arg;

	c->rc = auth_authenticate(c->a, c->user, c->password, c->deadline_ms, &c->u);
	return NULL;
}

static int inside(struct dir *d)
{
	int n;

	pthread_mutex_lock(&dir_lock);
	n = d->inside;
	pthread_mutex_unlock(&dir_lock);
	return n;
}

static void test_cap(void **state)
{
	struct fx *f = *state;
	struct call hang[DIR_CAP], extra;
	struct auth *a;
	int64_t start, took;

	add_user(f, "breakglass", "local-admin-pw", ROLE_ADMIN, false);
	dir_a.user = "alice";
	dir_a.password = "directory-password";
	dir_a.block = true;
	a = open_chain(f, &backend_a, &auth_local);

	/* The directory hangs: DIR_CAP sign-ins are inside it... */
	for (int i = 0; i < DIR_CAP; i++) {
		call_init(&hang[i], a, "alice", "directory-password", time_mono_ms() + 20000);
		assert_int_equal(pthread_create(&hang[i].t, NULL, call_thread, &hang[i]), 0);
	}
	for (int i = 0; i < 2000 && inside(&dir_a) < DIR_CAP; i++)
		usleep(1000);
	assert_int_equal(inside(&dir_a), DIR_CAP);

	/* ...so one more never reaches it: it waits for a place until its
	 * deadline, then counts the directory as down. */
	start = time_mono_ms();
	call_init(&extra, a, "alice", "directory-password", start + 300);
	call_thread(&extra);
	took = time_mono_ms() - start;
	assert_int_equal(extra.rc, KW_ERR_UNAVAILABLE);
	assert_true(took >= 290);
	assert_true(took < 3000);
	assert_int_equal(dir_a.authenticates, DIR_CAP);
	assert_int_equal(extra.u.ndown, 1);

	/* Meanwhile the local break-glass account gets in. */
	start = time_mono_ms();
	call_init(&extra, a, "breakglass", "local-admin-pw", start + 300);
	call_thread(&extra);
	assert_int_equal(extra.rc, 0);
	assert_string_equal(extra.u.backend, "local");
	assert_int_equal(extra.u.roles, ROLE_ADMIN);
	assert_int_equal(dir_a.authenticates, DIR_CAP);

	/* Released, the hung calls finish and their places are free again:
	 * a free place is taken even past the deadline. */
	pthread_mutex_lock(&dir_lock);
	dir_a.release = true;
	pthread_cond_broadcast(&dir_cond);
	pthread_mutex_unlock(&dir_lock);
	for (int i = 0; i < DIR_CAP; i++) {
		assert_int_equal(pthread_join(hang[i].t, NULL), 0);
		assert_int_equal(hang[i].rc, 0);
		assert_string_equal(hang[i].u.backend, "dir_a");
	}
	call_init(&extra, a, "alice", "directory-password", time_mono_ms() - 1);
	call_thread(&extra);
	assert_int_equal(extra.rc, 0);
	assert_int_equal(inside(&dir_a), 0);
	auth_close(a);
}

static void test_deadline(void **state)
{
	struct fx *f = *state;
	struct auth *a;
	int64_t before, d;

	/* The default deadline is [ldap] timeout from now. */
	f->cfg.ldap.timeout = 7;
	a = open_chain(f, &auth_local, NULL);
	before = time_mono_ms();
	d = auth_deadline(a);
	assert_true(d >= before + 7000);
	assert_true(d <= time_mono_ms() + 7000);
	auth_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unavailable_falls_through_to_local,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password_stops_the_chain,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_roles_union, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_backend_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
