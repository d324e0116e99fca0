#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "core/account.h"
#include "core/role.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define ROLES_ALL ((1u << ROLE_COUNT) - 1)

int account_check_name(const char *name, char *msg, size_t msglen)
{
	if (!str_is_clean_text(name, ACCOUNT_NAME_MAX) || strchr(name, ' ')) {
		str_msg(msg, msglen, "'%s' is not a valid user name (1-%d characters, no "
			"spaces or control characters)", name, ACCOUNT_NAME_MAX);
		return KW_ERR_INVALID;
	}
	return 0;
}

/* The policy and the hash, before any transaction: hashing takes a while
 * and must not hold the store's writer. */
static int hash_new_password(const char *pw, char hash[PASSWORD_HASH_MAX], char *msg,
			     size_t msglen)
{
	int rc;

	if ((rc = password_check_policy(pw, msg, msglen)) < 0)
		return rc;
	return password_hash(pw, hash);
}

static int insert_tx(struct store_tx *tx, void *arg)
{
	return store_user_insert(tx, arg);
}

int account_add(struct store *s, const char *name, unsigned roles, const char *pw,
		char *msg, size_t msglen)
{
	char hash[PASSWORD_HASH_MAX];
	struct user_rec u;
	int rc;

	str_msg_clear(msg, msglen);
	if ((rc = account_check_name(name, msg, msglen)) < 0)
		return rc;
	if (roles & ~ROLES_ALL) {
		str_msg(msg, msglen, "unknown role bits 0x%x", roles & ~ROLES_ALL);
		return KW_ERR_INVALID;
	}
	if ((rc = hash_new_password(pw, hash, msg, msglen)) < 0)
		goto out;
	memset(&u, 0, sizeof(u));
	u.name = name;
	u.password_hash = hash;
	u.roles = roles;
	u.created_at = time_now();
	rc = store_write(s, insert_tx, &u);
out:
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

/* A change to one account: the fields not asked for keep their value. */
struct update {
	const char *name;
	const char *hash;            /* new password hash, or NULL to keep */
	int disabled;                /* 0 or 1, or -1 to keep */
	char old_hash[PASSWORD_HASH_MAX];
	unsigned roles;
	bool was_disabled;
};

static int update_found(const struct user_rec *u, void *arg)
{
	struct update *up = arg;

	snprintf(up->old_hash, sizeof(up->old_hash), "%s", u->password_hash);
	up->roles = u->roles;
	up->was_disabled = u->disabled;
	return 0;
}

static int update_tx(struct store_tx *tx, void *arg)
{
	struct update *up = arg;
	struct user_rec u;
	int rc;

	if ((rc = store_user_get(tx, up->name, update_found, up)) < 0)
		return rc;
	memset(&u, 0, sizeof(u));
	u.name = up->name;
	u.password_hash = up->hash ? up->hash : up->old_hash;
	u.roles = up->roles;
	u.disabled = up->disabled < 0 ? up->was_disabled : up->disabled;
	if ((rc = store_user_update(tx, &u)) < 0)
		return rc;
	/* Whoever signed in with the old password, or as the account now
	 * disabled, is out at once, not at the session's idle timeout. */
	if (up->hash || u.disabled)
		return store_session_delete_user(tx, u.name);
	return 0;
}

static int update(struct store *s, struct update *up)
{
	int rc = store_write(s, update_tx, up);

	sodium_memzero(up, sizeof(*up));
	return rc;
}

int account_set_password(struct store *s, const char *name, const char *pw,
			 char *msg, size_t msglen)
{
	char hash[PASSWORD_HASH_MAX];
	struct update up;
	int rc;

	str_msg_clear(msg, msglen);
	if ((rc = hash_new_password(pw, hash, msg, msglen)) < 0)
		goto out;
	memset(&up, 0, sizeof(up));
	up.name = name;
	up.hash = hash;
	up.disabled = -1;
	rc = update(s, &up);
out:
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

int account_set_disabled(struct store *s, const char *name, bool disabled)
{
	struct update up;

	memset(&up, 0, sizeof(up));
	up.name = name;
	up.disabled = disabled;
	return update(s, &up);
}

static void account_from(const struct user_rec *u, struct account *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", u->name);
	a->roles = u->roles;
	a->disabled = u->disabled;
	a->created_at = u->created_at;
}

static int get_found(const struct user_rec *u, void *arg)
{
	account_from(u, arg);
	return 0;
}

struct get {
	const char *name;
	struct account *out;
};

static int get_tx(struct store_tx *tx, void *arg)
{
	struct get *g = arg;

	return store_user_get(tx, g->name, get_found, g->out);
}

int account_get(struct store *s, const char *name, struct account *out)
{
	struct get g = { name, out };

	return store_lookup(s, get_tx, &g);
}

struct each {
	account_each_fn fn;
	void *arg;
};

static int each_found(const struct user_rec *u, void *arg)
{
	const struct each *e = arg;
	struct account a;

	account_from(u, &a);
	return e->fn(&a, e->arg);
}

static int each_tx(struct store_tx *tx, void *arg)
{
	return store_user_each(tx, each_found, arg);
}

int account_each(struct store *s, account_each_fn fn, void *arg)
{
	struct each e = { fn, arg };

	/* fn may print: the read runs once. */
	return store_read_once(s, each_tx, &e);
}
