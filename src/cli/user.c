#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "cli/cli.h"
#include "core/account.h"
#include "core/role.h"
#include "util/err.h"
#include "util/timeutil.h"

const char usage_user[] =
	"usage: keywarden user add NAME [--role ROLE]... [--password-stdin]\n"
	"       keywarden user passwd NAME [--password-stdin]\n"
	"       keywarden user list\n"
	"       keywarden user disable NAME\n"
	"       keywarden user enable NAME\n"
	"\n"
	"Local accounts. ROLE is helpdesk, helpdesk_admin, reports or admin (a user\n"
	"with no role may use the self-service portal). A local account may be named\n"
	"as devices report their users (CORP\\alice or alice@corp.example.com).\n"
	"Without --password-stdin a random password is made and printed once.\n";

enum { OPT_ROLE = 'r', OPT_PASSWORD_STDIN = 'p' };

const struct option opts_user_add[] = {
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
	{ NULL, 0, NULL, 0 },
};

const struct option opts_user_passwd[] = {
	{ "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
	{ NULL, 0, NULL, 0 },
};

struct user_args {
	unsigned roles;
};
_Static_assert(sizeof(struct user_args) <= CLI_ARGS_MAX, "see struct cli_call");

int check_user_name(struct cli_call *call)
{
	char msg[512];

	if (account_check_name(call->argv[0], msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	return 0;
}

int check_user_add(struct cli_call *call)
{
	struct user_args *a = (struct user_args *)call->args;

	for (size_t i = 0; i < call->nopts; i++) {
		unsigned role;

		if (call->opts[i].val != OPT_ROLE)
			continue;
		if (!(role = role_parse(call->opts[i].arg)))
			return cli_error("unknown role '%s' (use helpdesk, helpdesk_admin, "
					 "reports or admin)", call->opts[i].arg);
		a->roles |= role;
	}
	return check_user_name(call);
}

/* The new password: from standard input, or random and then printed by
 * print_password. */
static int get_password(const struct cli_call *call, char *pw, size_t pwlen)
{
	if (cli_has_opt(call, OPT_PASSWORD_STDIN))
		return cli_read_password(pw, pwlen) < 0 ? 1 : 0;
	account_random_password(pw);
	return 0;
}

static void print_password(const struct cli_call *call, const char *pw)
{
	if (!cli_has_opt(call, OPT_PASSWORD_STDIN))
		printf("password: %s\n", pw);
}

int cmd_user_add(struct cli_call *call)
{
	const struct user_args *a = (const struct user_args *)call->args;
	const char *name = call->argv[0];
	char pw[PASSWORD_MAX + 2];
	int rc = 1;

	if (get_password(call, pw, sizeof(pw)) || cli_add_user(call->store, name, a->roles, pw))
		goto out;
	printf("user %s added\n", name);
	print_password(call, pw);
	rc = 0;
out:
	sodium_memzero(pw, sizeof(pw));
	return rc;
}

/* What is printed after a change to an account that went wrong. */
static int update_failed(const char *name, int rc, const char *msg)
{
	if (rc == KW_ERR_NOT_FOUND)
		return cli_error("no user %s", name);
	if ((rc == KW_ERR_INVALID || rc == KW_ERR_CONFLICT) && msg && *msg)
		return cli_error("%s", msg);
	return cli_error("cannot update user %s: %s", name, kw_strerror(rc));
}

int cmd_user_passwd(struct cli_call *call)
{
	const char *name = call->argv[0];
	char pw[PASSWORD_MAX + 2], msg[512];
	int rc = 1;

	if (get_password(call, pw, sizeof(pw)))
		goto out;
	if ((rc = account_set_password(call->store, name, pw, NULL, msg, sizeof(msg))) < 0) {
		rc = update_failed(name, rc, msg);
		goto out;
	}
	printf("user %s has a new password\n", name);
	print_password(call, pw);
out:
	sodium_memzero(pw, sizeof(pw));
	return rc;
}

static int set_disabled(struct cli_call *call, bool disabled)
{
	const char *name = call->argv[0];
	char msg[512];
	int rc = account_set_disabled(call->store, name, disabled, NULL, msg, sizeof(msg));

	if (rc < 0)
		return update_failed(name, rc, msg);
	printf("user %s %s\n", name, disabled ? "disabled" : "enabled");
	return 0;
}

int cmd_user_disable(struct cli_call *call)
{
	return set_disabled(call, true);
}

int cmd_user_enable(struct cli_call *call)
{
	return set_disabled(call, false);
}

static int print_user(const struct account *a, void *arg)
{
	char roles[ROLES_TEXT_MAX], created[TIME_ISO_LEN];

	roles_text(a->roles, roles, sizeof(roles));
	time_format_iso(a->created_at, created);
	printf("%-32s %-40s %-9s %s\n", a->name, roles, a->disabled ? "disabled" : "active",
	       created);
	return 0;
}

int cmd_user_list(struct cli_call *call)
{
	int rc;

	printf("%-32s %-40s %-9s %s\n", "NAME", "ROLES", "STATE", "CREATED");
	if ((rc = account_each(call->store, print_user, NULL)) < 0)
		return cli_error("cannot list users: %s", kw_strerror(rc));
	return 0;
}
