/* Local accounts (SPEC §2, §9 `user`): names, roles, passwords and the
 * disabled flag, with the policy that goes with them: a name is checked and
 * a password meets the policy before anything is written, and disabling an
 * account, replacing its password or changing its roles ends its signed-in
 * sessions in the same transaction, and the last enabled administrator
 * cannot be disabled or lose the admin role. The CLI and the help desk call
 * these; neither touches the store's user records itself. */
#ifndef KW_CORE_ACCOUNT_H
#define KW_CORE_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACCOUNT_NAME_MAX 256

struct store;

/* An account as listed: no password hash. */
struct account {
	char name[ACCOUNT_NAME_MAX + 1];
	unsigned roles;              /* enum role bits (core/role.h) */
	bool disabled;
	int64_t created_at;
};

/* 0 when name may name a local account: 1-256 bytes of text without spaces
 * or control characters (CORP\alice and alice@corp.example.com are fine);
 * otherwise KW_ERR_INVALID and msg says so, naming it. */
int account_check_name(const char *name, char *msg, size_t msglen);

/* Who makes a change, for its audit record: who->source, actor and client
 * are copied into a record appended in the change's own transaction (the
 * help desk: source helpdesk, the signed-in administrator, the client's
 * address); no record, no change. who NULL: no record (the command line,
 * whose user holds the database itself; the demo's and the tests' set-up). */
struct audit_rec;

/* Adds an enabled account with password pw; the record (user_added) names
 * its roles. KW_ERR_INVALID when the name or the roles are not valid or
 * the password fails the policy (msg says which); KW_ERR_EXISTS when an
 * account has that name (names compare case-insensitively); a store error
 * otherwise. Nothing is written unless it returns 0. */
int account_add(struct store *s, const char *name, unsigned roles, const char *pw,
		const struct audit_rec *who, char *msg, size_t msglen);

/* Replaces the password of name by pw and ends the account's sessions, in
 * one transaction with its record (password_reset). KW_ERR_INVALID (msg
 * says why) when pw fails the policy, KW_ERR_NOT_FOUND when there is no
 * such account. */
int account_set_password(struct store *s, const char *name, const char *pw,
			 const struct audit_rec *who, char *msg, size_t msglen);

/* Gives name exactly the roles in roles; when they differ from its roles,
 * ends its sessions (they hold the roles of their sign-in) and records
 * roles_changed with the new and the old roles, in one transaction; the
 * same roles change nothing and record nothing (*changed, when not NULL,
 * says which). KW_ERR_INVALID for
 * unknown role bits, KW_ERR_NOT_FOUND when there is no such account,
 * KW_ERR_CONFLICT when name is the last enabled account with the admin role
 * and roles lacks it (msg says so): someone must be left to administer. */
int account_set_roles(struct store *s, const char *name, unsigned roles,
		      const struct audit_rec *who, bool *changed, char *msg, size_t msglen);

/* Disables name, ending its sessions in the same transaction, or enables
 * it; recorded as user_disabled or user_enabled. KW_ERR_NOT_FOUND when
 * there is no such account; KW_ERR_CONFLICT when disabling the last
 * enabled admin (msg says so). Disabling a disabled account (or enabling
 * an enabled one) is no error and records nothing. */
int account_set_disabled(struct store *s, const char *name, bool disabled,
			 const struct audit_rec *who, char *msg, size_t msglen);

#define ACCOUNT_RANDOM_PASSWORD_LEN 20

/* A random password a person can type (letters and digits that cannot be
 * mistaken for one another), ACCOUNT_RANDOM_PASSWORD_LEN characters and a
 * NUL. It meets the policy. */
void account_random_password(char out[ACCOUNT_RANDOM_PASSWORD_LEN + 1]);

/* The account called name (compared case-insensitively) into out;
 * KW_ERR_NOT_FOUND when there is none. */
int account_get(struct store *s, const char *name, struct account *out);

/* Calls fn for every account, by name, in one read snapshot; a non-zero
 * return of fn stops the walk and is returned. fn must not call the
 * store. */
typedef int (*account_each_fn)(const struct account *a, void *arg);
int account_each(struct store *s, account_each_fn fn, void *arg);

#endif
