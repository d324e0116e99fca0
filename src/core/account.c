#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "core/account.h"
#include "core/audit.h"
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

/* The record of a change to name, appended in the change's transaction;
 * nothing without who. */
static int record(struct store_tx *tx, const struct audit_rec *who, const char *result,
		  const char *name, const char *comment)
{
	struct audit_rec a;

	if (!who)
		return 0;
	memset(&a, 0, sizeof(a));
	a.at = time_now();
	a.source = who->source;
	a.actor = who->actor;
	a.client = who->client;
	a.result = result;
	a.end_user = name;
	a.comment = comment;
	return audit_append(tx, &a);
}

static void roles_comment(unsigned roles, unsigned old, bool with_old, char *out,
			  size_t outlen)
{
	char now[ROLES_TEXT_MAX], was[ROLES_TEXT_MAX];

	roles_text(roles, now, sizeof(now));
	roles_text(old, was, sizeof(was));
	if (with_old)
		snprintf(out, outlen, "roles: %s (were: %s)", roles ? now : "none",
			 old ? was : "none");
	else
		snprintf(out, outlen, "roles: %s", roles ? now : "none");
}

struct add {
	struct user_rec u;
	const struct audit_rec *who;
};

static int insert_tx(struct store_tx *tx, void *arg)
{
	struct add *a = arg;
	char comment[ROLES_TEXT_MAX + 32];
	int rc;

	if ((rc = store_user_insert(tx, &a->u)) < 0)
		return rc;
	roles_comment(a->u.roles, 0, false, comment, sizeof(comment));
	return record(tx, a->who, AUDIT_USER_ADDED, a->u.name, comment);
}

int account_add(struct store *s, const char *name, unsigned roles, const char *pw,
		const struct audit_rec *who, char *msg, size_t msglen)
{
	char hash[PASSWORD_HASH_MAX];
	struct add a;
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
	memset(&a, 0, sizeof(a));
	a.u.name = name;
	a.u.password_hash = hash;
	a.u.roles = roles;
	a.u.created_at = time_now();
	a.who = who;
	rc = store_write(s, insert_tx, &a);
out:
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

/* A change to one account: the fields not asked for keep their value. */
struct update {
	const char *name;
	const char *hash;            /* new password hash, or NULL to keep */
	int disabled;                /* 0 or 1, or -1 to keep */
	int64_t roles;               /* new roles, or -1 to keep */
	const struct audit_rec *who;
	/* the account as found */
	char stored_name[ACCOUNT_NAME_MAX + 1];
	char old_hash[PASSWORD_HASH_MAX];
	unsigned old_roles;
	bool was_disabled;
	bool changed;                /* out: something was written */
};

static int update_found(const struct user_rec *u, void *arg)
{
	struct update *up = arg;

	snprintf(up->stored_name, sizeof(up->stored_name), "%s", u->name);
	snprintf(up->old_hash, sizeof(up->old_hash), "%s", u->password_hash);
	up->old_roles = u->roles;
	up->was_disabled = u->disabled;
	return 0;
}

/* Counts the enabled accounts with the admin role other than one. */
struct admins {
	const char *but;
	int64_t n;
};

static int admin_seen(const struct user_rec *u, void *arg)
{
	struct admins *a = arg;

	if ((u->roles & ROLE_ADMIN) && !u->disabled &&
	    !str_fold_eq(u->name, strlen(u->name), a->but, strlen(a->but)))
		a->n++;
	return 0;
}

/* KW_ERR_CONFLICT when the change leaves no enabled admin: read in the
 * change's own transaction, so two administrators removing each other at
 * once cannot both pass (SQLite has one writer; a backend that runs
 * writers side by side must serialise this read with the update). */
static int keeps_an_admin(struct store_tx *tx, const struct update *up, unsigned roles,
			  bool disabled)
{
	struct admins a = { up->stored_name, 0 };
	int rc;

	if (!(up->old_roles & ROLE_ADMIN) || up->was_disabled ||
	    ((roles & ROLE_ADMIN) && !disabled))
		return 0;
	if ((rc = store_user_each(tx, admin_seen, &a)) < 0)
		return rc;
	return a.n ? 0 : KW_ERR_CONFLICT;
}

static int update_tx(struct store_tx *tx, void *arg)
{
	struct update *up = arg;
	char comment[2 * ROLES_TEXT_MAX + 32];
	struct user_rec u;
	bool roles_changed;
	int rc;

	if ((rc = store_user_get(tx, up->name, update_found, up)) < 0)
		return rc;
	memset(&u, 0, sizeof(u));
	u.name = up->stored_name;
	u.password_hash = up->hash ? up->hash : up->old_hash;
	u.roles = up->roles < 0 ? up->old_roles : (unsigned)up->roles;
	u.disabled = up->disabled < 0 ? up->was_disabled : up->disabled;
	roles_changed = u.roles != up->old_roles;
	up->changed = false;         /* a rerun starts afresh */
	if (!up->hash && !roles_changed && u.disabled == up->was_disabled)
		return 0;            /* nothing changes: nothing to record */
	up->changed = true;
	if ((rc = keeps_an_admin(tx, up, u.roles, u.disabled)) < 0)
		return rc;
	if ((rc = store_user_update(tx, &u)) < 0)
		return rc;
	/* Whoever signed in with the old password, as the account now
	 * disabled or with the old roles (a session keeps the roles of its
	 * sign-in), is out at once, not at the session's idle timeout. */
	if ((up->hash || u.disabled || roles_changed) &&
	    (rc = store_session_delete_user(tx, u.name)) < 0)
		return rc;
	if (up->hash)
		return record(tx, up->who, AUDIT_PASSWORD_RESET, u.name, NULL);
	if (roles_changed) {
		roles_comment(u.roles, up->old_roles, true, comment, sizeof(comment));
		return record(tx, up->who, AUDIT_ROLES_CHANGED, u.name, comment);
	}
	return record(tx, up->who, u.disabled ? AUDIT_USER_DISABLED : AUDIT_USER_ENABLED,
		      u.name, NULL);
}

static int update(struct store *s, struct update *up, bool *changed, char *msg,
		  size_t msglen)
{
	int rc = store_write(s, update_tx, up);

	if (changed)
		*changed = rc == 0 && up->changed;
	if (rc == KW_ERR_CONFLICT)
		str_msg(msg, msglen, "%s is the only enabled account with the admin role; "
			"give another account that role first", up->stored_name);
	sodium_memzero(up, sizeof(*up));
	return rc;
}

static void update_init(struct update *up, const char *name, const struct audit_rec *who)
{
	memset(up, 0, sizeof(*up));
	up->name = name;
	up->disabled = -1;
	up->roles = -1;
	up->who = who;
}

int account_set_password(struct store *s, const char *name, const char *pw,
			 const struct audit_rec *who, char *msg, size_t msglen)
{
	char hash[PASSWORD_HASH_MAX];
	struct update up;
	int rc;

	str_msg_clear(msg, msglen);
	if ((rc = hash_new_password(pw, hash, msg, msglen)) < 0)
		goto out;
	update_init(&up, name, who);
	up.hash = hash;
	rc = update(s, &up, NULL, msg, msglen);
out:
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

int account_set_roles(struct store *s, const char *name, unsigned roles,
		      const struct audit_rec *who, bool *changed, char *msg, size_t msglen)
{
	struct update up;

	str_msg_clear(msg, msglen);
	if (roles & ~ROLES_ALL) {
		str_msg(msg, msglen, "unknown role bits 0x%x", roles & ~ROLES_ALL);
		return KW_ERR_INVALID;
	}
	update_init(&up, name, who);
	up.roles = roles;
	return update(s, &up, changed, msg, msglen);
}

int account_set_disabled(struct store *s, const char *name, bool disabled,
			 const struct audit_rec *who, char *msg, size_t msglen)
{
	struct update up;

	str_msg_clear(msg, msglen);
	update_init(&up, name, who);
	up.disabled = disabled;
	return update(s, &up, NULL, msg, msglen);
}

void account_random_password(char out[ACCOUNT_RANDOM_PASSWORD_LEN + 1])
{
	static const char alphabet[] = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

	for (int i = 0; i < ACCOUNT_RANDOM_PASSWORD_LEN; i++)
		out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
	out[ACCOUNT_RANDOM_PASSWORD_LEN] = '\0';
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
