#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/password.h"
#include "cli/cli.h"
#include "core/account.h"
#include "store/store.h"
#include "util/err.h"
#include "util/timeutil.h"

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

static int print_user(const struct account *a, void *arg)
{
	char roles[ACCOUNT_ROLES_TEXT_MAX], created[TIME_ISO_LEN];

	account_roles_text(a->roles, roles, sizeof(roles));
	time_format_iso(a->created_at, created);
	printf("%-32s %-40s %-9s %s\n", a->name, roles, a->disabled ? "disabled" : "active",
	       created);
	return 0;
}

/* The new password: from standard input, or random and printed. */
static int get_password(bool from_stdin, char *pw, size_t pwlen, bool *generated)
{
	*generated = !from_stdin;
	if (from_stdin)
		return cli_read_password(pw, pwlen) < 0 ? 1 : 0;
	cli_random_password(pw);
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
	char pw[PASSWORD_MAX + 2], msg[512];
	struct store *s = NULL;
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
			if (!account_role(optarg))
				return cli_error("unknown role '%s' (use helpdesk, helpdesk_admin, "
						 "reports or admin)", optarg);
			roles |= account_role(optarg);
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
	if (name && account_check_name(name, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	if (strcmp(verb, "add") && strcmp(verb, "passwd") && strcmp(verb, "list") &&
	    strcmp(verb, "disable") && strcmp(verb, "enable"))
		return cli_error("unknown user command '%s'; see keywarden user --help", verb);
	if (cli_config(c) || cli_store(c, &s))
		goto out;
	if (!strcmp(verb, "list")) {
		printf("%-32s %-40s %-9s %s\n", "NAME", "ROLES", "STATE", "CREATED");
		if ((rc = account_each(s, print_user, NULL)) < 0) {
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
			rc = account_set_password(s, name, pw, msg, sizeof(msg));
		} else {
			rc = account_set_disabled(s, name, !strcmp(verb, "disable"));
		}
		if (rc == KW_ERR_NOT_FOUND) {
			rc = cli_error("no user %s", name);
			goto out;
		}
		if (rc == KW_ERR_INVALID && *msg) {
			rc = cli_error("%s", msg);
			goto out;
		}
		if (rc < 0) {
			rc = cli_error("cannot update user %s: %s", name, kw_strerror(rc));
			goto out;
		}
		printf("user %s %s\n", name, !strcmp(verb, "passwd") ? "has a new password" :
		       !strcmp(verb, "disable") ? "disabled" : "enabled");
	}
	if (generated)
		printf("password: %s\n", pw);
	rc = 0;
out:
	sodium_memzero(pw, sizeof(pw));
	store_close(s);
	return rc;
}
