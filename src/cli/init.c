#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/password.h"
#include "cli/cli.h"
#include "core/account.h"
#include "core/database.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"
#include "web/app.h"

static const char init_usage[] =
	"usage: keywarden init [--admin NAME] [--password-stdin]\n"
	"\n"
	"Creates the database, the master key file (mode 0600) and the first\n"
	"administrator account (default name: admin). Without --password-stdin a\n"
	"random one-time password is printed.\n";

static const char migrate_usage[] =
	"usage: keywarden migrate\n"
	"\n"
	"Applies the database schema migrations this program has and prints the\n"
	"schema version before and after. The server also applies them at start.\n";

/* Makes the folder holding path (mode 0700) when it does not exist. */
static int make_parent(const char *path)
{
	char *copy = strdup(path), *dir;
	int rc = 0;

	if (!copy)
		return cli_error("out of memory");
	dir = dirname(copy);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		rc = cli_error("cannot create the folder %s: %s", dir, strerror(errno));
	free(copy);
	return rc;
}

/* A random password of 20 characters a person can type. */
void cli_random_password(char out[24])
{
	static const char alphabet[] = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

	for (int i = 0; i < 20; i++)
		out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
	out[20] = '\0';
}

int cli_add_user(struct store *s, const char *name, unsigned roles, const char *pw)
{
	char msg[512];
	int rc = account_add(s, name, roles, pw, msg, sizeof(msg));

	if (rc == KW_ERR_INVALID && *msg)
		return cli_error("%s", msg);
	if (rc == KW_ERR_EXISTS)
		return cli_error("user %s already exists", name);
	if (rc < 0)
		return cli_error("cannot add user %s: %s", name, kw_strerror(rc));
	return 0;
}

int cmd_init(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "password-stdin", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *admin = "admin";
	bool from_stdin = false;
	char pw[PASSWORD_MAX + 2], msg[512];
	struct seal *k = NULL;
	struct app app;
	int o, rc = 1;

	optind = 0;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'a': admin = optarg; break;
		case 'p': from_stdin = true; break;
		case 'h': fputs(init_usage, stdout); return 0;
		default: fputs(init_usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(init_usage, stderr);
		return 2;
	}
	memset(&app, 0, sizeof(app));
	if (cli_config(c))
		return 1;
	if (from_stdin) {
		if (cli_read_password(pw, sizeof(pw)) < 0)
			return 1;
	} else {
		cli_random_password(pw);
	}
	if (password_check_policy(pw, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	if (make_parent(c->cfg.key_file))
		goto out;
	if (!strncmp(c->cfg.database, "sqlite:", 7) && make_parent(c->cfg.database + 7))
		goto out;
	if (seal_load(c->cfg.key_file, &k, msg, sizeof(msg)) == 0) {
		fprintf(stderr, "keywarden: using the existing key file %s\n", c->cfg.key_file);
	} else if (access(c->cfg.key_file, F_OK) == 0) {
		cli_error("%s", msg);
		goto out;
	} else {
		if (seal_generate(&k) < 0 ||
		    seal_save(k, c->cfg.key_file, 1, msg, sizeof(msg)) < 0) {
			cli_error("%s", msg);
			goto out;
		}
	}
	seal_free(k);
	k = NULL;
	if (app_open(&app, &c->cfg, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	if (cli_add_user(app.store, admin, ROLE_ADMIN, pw))
		goto out;
	printf("keywarden initialised.\n  database: %s\n  key file: %s (keep a copy "
	       "somewhere safe: without it no key can be read)\n  administrator: %s\n",
	       c->cfg.database, c->cfg.key_file, admin);
	if (!from_stdin)
		printf("  one-time password: %s\n", pw);
	rc = 0;
out:
	sodium_memzero(pw, sizeof(pw));
	seal_free(k);
	app_close(&app);
	return rc;
}

int cmd_migrate(struct cli *c, int argc, char **argv)
{
	char msg[512];
	int from, to;

	if (cli_wants_help(argc, argv)) {
		fputs(migrate_usage, stdout);
		return 0;
	}
	if (argc != 1) {
		fputs(migrate_usage, stderr);
		return 2;
	}
	if (cli_config(c))
		return 1;
	if (database_migrate(c->cfg.database, &from, &to, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	if (from == to)
		printf("schema version %d: up to date\n", to);
	else
		printf("schema version %d -> %d\n", from, to);
	return 0;
}
