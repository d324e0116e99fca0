#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "cli/cli.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define USER_NAME_MAX 256

static const char user_usage[] =
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

struct user_op {
	const char *name;
	const char *hash;      /* new password hash, or NULL to keep */
	int disabled;          /* -1 keep */
	int found;
	char old_hash[PASSWORD_HASH_MAX];
	unsigned roles;
};

static int user_found(const struct user_rec *u, void *arg)
{
	struct user_op *op = arg;

	op->found = 1;
	op->roles = u->roles;
	if (!op->hash)
		snprintf(op->old_hash, sizeof(op->old_hash), "%s", u->password_hash);
	if (op->disabled < 0)
		op->disabled = u->disabled;
	return 0;
}

static int user_update_tx(struct store_tx *tx, void *arg)
{
	struct user_op *op = arg;
	struct user_rec u;
	int rc;

	if ((rc = STORE_TX(tx, user_get, op->name, user_found, op)) < 0)
		return rc;
	memset(&u, 0, sizeof(u));
	u.name = op->name;
	u.password_hash = op->hash ? op->hash : op->old_hash;
	u.roles = op->roles;
	u.disabled = op->disabled;
	if ((rc = STORE_TX(tx, user_update, &u)) < 0)
		return rc;
	/* A disabled account or a replaced password ends the signed-in
	 * sessions at once. */
	if (op->hash || op->disabled)
		return STORE_TX(tx, session_delete_user, u.name);
	return 0;
}

static int print_user(const struct user_rec *u, void *arg)
{
	char roles[96], created[TIME_ISO_LEN];

	cli_roles_text(u->roles, roles, sizeof(roles));
	time_format_iso(u->created_at, created);
	printf("%-32s %-40s %-9s %s\n", u->name, roles, u->disabled ? "disabled" : "active",
	       created);
	return 0;
}

static int list_tx(struct store_tx *tx, void *arg)
{
	printf("%-32s %-40s %-9s %s\n", "NAME", "ROLES", "STATE", "CREATED");
	return STORE_TX(tx, user_each, print_user, NULL);
}

/* The new password: from standard input, or random and printed. */
static int get_password(bool from_stdin, char *pw, size_t pwlen, bool *generated)
{
	char msg[128];

	*generated = !from_stdin;
	if (from_stdin) {
		if (cli_read_password(pw, pwlen) < 0)
			return 1;
	} else {
		cli_random_password(pw);
	}
	if (password_check_policy(pw, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	return 0;
}

static int valid_name(const char *name)
{
	if (!str_is_clean_text(name, USER_NAME_MAX) || strchr(name, ' ') ||
	    strchr(name, '\n'))
		return cli_error("'%s' is not a valid user name (1-%d characters, no spaces "
				 "or control characters)", name, USER_NAME_MAX);
	return 0;
}

int cmd_user(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "password-stdin", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char pw[PASSWORD_MAX + 2], hash[PASSWORD_HASH_MAX];
	struct store *s = NULL;
	struct user_op op;
	unsigned roles = 0;
	bool from_stdin = false, generated = false;
	const char *verb, *name = NULL;
	int o, rc = 1;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(user_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	optind = 0;
	while ((o = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'r':
			if (!cli_role(optarg))
				return cli_error("unknown role '%s' (use helpdesk, helpdesk_admin, "
						 "reports or admin)", optarg);
			roles |= cli_role(optarg);
			break;
		case 'p': from_stdin = true; break;
		case 'h': fputs(user_usage, stdout); return 0;
		default: fputs(user_usage, stderr); return 2;
		}
	}
	if (optind < argc - 1)
		name = argv[1 + optind++];
	if (optind != argc - 1 || (!name) != !strcmp(verb, "list")) {
		fputs(user_usage, stderr);
		return 2;
	}
	if ((roles || from_stdin) && strcmp(verb, "add") &&
	    !(from_stdin && !strcmp(verb, "passwd"))) {
		fputs(user_usage, stderr);
		return 2;
	}
	if (name && valid_name(name))
		return 1;
	if (strcmp(verb, "add") && strcmp(verb, "passwd") && strcmp(verb, "list") &&
	    strcmp(verb, "disable") && strcmp(verb, "enable"))
		return cli_error("unknown user command '%s'; see keywarden user --help", verb);
	if (cli_config(c) || cli_store(c, &s))
		goto out;
	memset(&op, 0, sizeof(op));
	op.name = name;
	op.disabled = -1;
	if (!strcmp(verb, "list")) {
		if ((rc = store_read(s, list_tx, NULL)) < 0) {
			rc = cli_error("cannot list users: %s", kw_strerror(rc));
			goto out;
		}
	} else if (!strcmp(verb, "add")) {
		if (get_password(from_stdin, pw, sizeof(pw), &generated) ||
		    cli_add_user(s, name, roles, pw))
			goto out;
		printf("user %s added\n", name);
	} else {
		if (!strcmp(verb, "passwd")) {
			if (get_password(from_stdin, pw, sizeof(pw), &generated))
				goto out;
			if ((rc = password_hash(pw, hash)) < 0) {
				rc = cli_error("cannot hash the password: %s", kw_strerror(rc));
				goto out;
			}
			op.hash = hash;
		} else {
			op.disabled = !strcmp(verb, "disable");
		}
		rc = store_write(s, user_update_tx, &op);
		if (rc == KW_ERR_NOT_FOUND) {
			rc = cli_error("no user %s", name);
			goto out;
		}
		if (rc < 0) {
			rc = cli_error("cannot update user %s: %s", name, kw_strerror(rc));
			goto out;
		}
		printf("user %s %s\n", name, op.hash ? "has a new password" :
		       op.disabled ? "disabled" : "enabled");
	}
	if (generated)
		printf("password: %s\n", pw);
	rc = 0;
out:
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(hash, sizeof(hash));
	sodium_memzero(&op, sizeof(op));
	store_close(s);
	return rc;
}
