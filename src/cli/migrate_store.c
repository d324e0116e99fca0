/* keywarden migrate-store --to DATABASE: the site of this configuration
 * copied whole into another, empty database (store/copy.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "core/keyfile.h"
#include "store/copy.h"
#include "store/store.h"
#include "util/err.h"

const char usage_migrate_store[] =
	"usage: keywarden migrate-store --to DATABASE\n"
	"\n"
	"Copies the whole site of the configured database (database =) into\n"
	"DATABASE, a `database =` value (sqlite:PATH or postgresql://…) naming a\n"
	"new, empty database: users, enrollment tokens, devices with their\n"
	"secrets (agents keep checking in), volumes, keys as they are sealed,\n"
	"logons, associations, the audit trail and the master key ID. Sessions\n"
	"and rate-limit counters are not copied: everyone signs in again.\n"
	"\n"
	"Stop keywarden first: the key file is locked exclusively for the copy,\n"
	"so a server of this configuration on this machine makes it refuse\n"
	"(stop every instance of a shared PostgreSQL database yourself). The\n"
	"source is read in one snapshot and DATABASE written in one transaction:\n"
	"an interrupted copy leaves it empty, and running the command again\n"
	"starts over. The counts of every kind are compared before the commit and\n"
	"printed, and the audit chain of the copy is verified.\n"
	"\n"
	"The key file stays the same: then set database = DATABASE in the\n"
	"configuration and start keywarden (README, \"Moving a site to\n"
	"PostgreSQL\").\n";

enum { OPT_TO = 256 };

const struct option opts_migrate_store[] = {
	{ "to", required_argument, NULL, OPT_TO },
	{ NULL, 0, NULL, 0 },
};

int check_migrate_store(struct cli_call *call)
{
	const char *to = cli_opt(call, OPT_TO);

	if (!to || !*to) {
		fputs(usage_migrate_store, stderr);
		return 2;
	}
	return 0;
}

/* The configured database, which must exist and hold a site. */
static int open_source(struct cli *c, struct store **out)
{
	const char *db = c->cfg.database;
	char msg[512];

	/* Opening a missing SQLite file would create an empty one. */
	if (!strncmp(db, "sqlite:", 7) && access(db + 7, F_OK) != 0)
		return cli_error("the source database %s does not exist: nothing to copy", db + 7);
	if (store_open(db, true, out, msg, sizeof(msg)) < 0)
		return cli_error("cannot open the source database: %s", msg);
	if (store_copy_source(*out, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	return 0;
}

int cmd_migrate_store(struct cli_call *call)
{
	const char *to_db = cli_opt(call, OPT_TO);
	struct keyfile kf = { .lock = -1 };
	struct store *from = NULL, *to = NULL;
	struct store_counts n;
	struct audit_report r;
	char msg[1024];
	int rc = 1, vrc;

	if (!strcmp(to_db, call->cli->cfg.database)) {
		cli_error("--to names the configured database itself");
		goto out;
	}
	if (open_source(call->cli, &from))
		goto out;
	/* Exclusive: no server (nor export) of this key file runs meanwhile,
	 * and the key file must be the source's. */
	if ((vrc = keyfile_open(from, call->cli->cfg.key_file, true, &kf, msg,
				sizeof(msg))) < 0) {
		if (vrc == KW_ERR_UNAVAILABLE)
			cli_error("the key file %s is in use: a keywarden server (or export) of "
				  "this site is running; stop it before migrate-store",
				  call->cli->cfg.key_file);
		else
			cli_error("%s", msg);
		goto out;
	}
	if (kf.how == KEYFILE_PENDING) {
		cli_error("%s", kf.note);
		goto out;
	}
	if (store_open(to_db, true, &to, msg, sizeof(msg)) < 0) {
		cli_error("cannot open the target database: %s", msg);
		goto out;
	}
	if (store_copy(from, to, &n, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	printf("copied: %lld users, %lld enrollment tokens, %lld devices, %lld volumes, "
	       "%lld keys, %lld logons, %lld associations, %lld audit records, "
	       "%lld meta values (the same counts as the source)\n",
	       (long long)n.users, (long long)n.tokens, (long long)n.devices,
	       (long long)n.volumes, (long long)n.keys, (long long)n.logons,
	       (long long)n.assocs, (long long)n.audit, (long long)n.meta);
	vrc = audit_verify(to, &r);
	if (vrc == KW_ERR_CONFLICT) {
		cli_error("the copy's audit chain does not verify: %s", r.problem);
		goto out;
	}
	if (vrc < 0) {
		cli_error("cannot verify the copy's audit chain: %s", kw_strerror(vrc));
		goto out;
	}
	printf("audit chain of the copy intact: %lld records\n"
	       "sessions and rate-limit counters were not copied. Next: set database = "
	       "%s in the configuration (the key file %s stays) and start keywarden\n",
	       (long long)r.records, strncmp(to_db, "sqlite:", 7) ? "<the new URL>" : to_db,
	       call->cli->cfg.key_file);
	rc = 0;
out:
	store_close(to);
	keyfile_close(&kf);
	store_close(from);
	return rc;
}
