#include <errno.h>
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
#include "core/keyfile.h"
#include "core/role.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"

const char usage_init[] =
	"usage: keywarden init [--admin NAME] [--password-stdin]\n"
	"\n"
	"Creates the database, the master key file (mode 0600) and the first\n"
	"administrator account (default name: admin). Without --password-stdin a\n"
	"random one-time password is printed.\n";

const char usage_migrate[] =
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

int cli_add_user(struct store *s, const char *name, unsigned roles, const char *pw)
{
	char msg[512];
	int rc = account_add(s, name, roles, pw, NULL, msg, sizeof(msg));

	if (rc == KW_ERR_INVALID && *msg)
		return cli_error("%s", msg);
	if (rc == KW_ERR_EXISTS)
		return cli_error("user %s already exists", name);
	if (rc < 0)
		return cli_error("cannot add user %s: %s", name, kw_strerror(rc));
	return 0;
}

enum { OPT_ADMIN = 'a', OPT_PASSWORD_STDIN = 'p' };

const struct option opts_init[] = {
	{ "admin", required_argument, NULL, OPT_ADMIN },
	{ "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
	{ NULL, 0, NULL, 0 },
};

static const char *admin_name(const struct cli_call *call)
{
	const char *admin = cli_opt(call, OPT_ADMIN);

	return admin ? admin : "admin";
}

int check_init(struct cli_call *call)
{
	char msg[512];

	if (account_check_name(admin_name(call), msg, sizeof(msg)) < 0)
		return cli_error("--admin: %s", msg);
	return 0;
}

/* The key file: kept when it holds a key, else made (never replaced). */
static int key_file(const char *path)
{
	struct seal *k = NULL;
	char msg[512];
	int rc = 1;

	if (seal_load(path, &k, msg, sizeof(msg)) == 0) {
		fprintf(stderr, "keywarden: using the existing key file %s\n", path);
	} else if (access(path, F_OK) == 0) {
		cli_error("%s", msg);
		goto out;
	} else if (seal_generate(&k) < 0 || seal_save(k, path, 1, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	rc = 0;
out:
	seal_free(k);
	return rc;
}

int cmd_init(struct cli_call *call)
{
	const struct config *cfg = &call->cli->cfg;
	const char *admin = admin_name(call);
	bool from_stdin = cli_has_opt(call, OPT_PASSWORD_STDIN);
	char pw[PASSWORD_MAX + 2], msg[512];
	struct keyfile kf = { .lock = -1 };
	struct store *s = NULL;
	int rc = 1;

	if (from_stdin) {
		if (cli_read_password(pw, sizeof(pw)) < 0)
			return 1;
	} else {
		account_random_password(pw);
	}
	/* Before anything is made: a refused password leaves no files. */
	if (password_check_policy(pw, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	if (make_parent(cfg->key_file))
		goto out;
	if (!strncmp(cfg->database, "sqlite:", 7) && make_parent(cfg->database + 7))
		goto out;
	/* The store then checks that the key file is the database's (a second
	 * init on a database sealed with another key fails here). */
	if (key_file(cfg->key_file) || cli_store(call->cli, &s) ||
	    cli_key(call->cli, s, false, &kf) || cli_add_user(s, admin, ROLE_ADMIN, pw))
		goto out;
	printf("keywarden initialised.\n  database: %s\n  key file: %s (keep a copy "
	       "somewhere safe: without it no key can be read)\n  administrator: %s\n",
	       cfg->database, cfg->key_file, admin);
	if (!from_stdin)
		printf("  one-time password: %s\n", pw);
	rc = 0;
out:
	sodium_memzero(pw, sizeof(pw));
	keyfile_close(&kf);
	store_close(s);
	return rc;
}

int cmd_migrate(struct cli_call *call)
{
	char msg[512];
	int from, to;

	if (database_migrate(call->cli->cfg.database, &from, &to, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	if (from == to)
		printf("schema version %d: up to date\n", to);
	else
		printf("schema version %d -> %d\n", from, to);
	return 0;
}
