#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "core/export.h"
#include "core/keyfile.h"

const char usage_export[] =
	"usage: keywarden export csv [--output FILE]\n"
	"\n"
	"Writes every escrowed recovery key, in every state, with its device and\n"
	"volume, as CSV: the administrator's backup. The file holds the recovery\n"
	"passwords in clear text: --output creates it with mode 0600.\n"
	"Every export is recorded in the audit trail (who, when, how many keys,\n"
	"where to) before any password is written; without the record, nothing is.\n"
	"Columns: device_id,device_name,domain,volume_id,mount,key_id,\n"
	"recovery_password,state,created_at,disclosed_at\n";

enum { OPT_OUTPUT = 'o' };

const struct option opts_export_csv[] = {
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ NULL, 0, NULL, 0 },
};

int cmd_export_csv(struct cli_call *call)
{
	const char *output = cli_opt(call, OPT_OUTPUT);
	char actor[CLI_ACTOR_MAX], dest[4096], msg[1024];
	struct audit_rec who;
	FILE *out = stdout;
	size_t rows = 0;
	int rc = 1;

	if (output) {
		if (!(out = cli_create_private(output)))
			return 1;
		/* The audit record names the file wherever it was run from. */
		if (!realpath(output, dest))
			snprintf(dest, sizeof(dest), "%s", output);
	} else {
		snprintf(dest, sizeof(dest), "standard output");
	}
	cli_actor(actor, sizeof(actor));
	memset(&who, 0, sizeof(who));
	who.source = AUDIT_CLI;
	who.actor = actor;
	if (export_csv(call->store, call->key->seal, &who, dest, out, &rows, msg,
		       sizeof(msg)) < 0) {
		rc = cli_error("export failed: %s", msg);
		goto out;
	}
	if (output)
		fprintf(stderr, "keywarden: %zu keys written to %s\n", rows, output);
	rc = 0;
out:
	if (out != stdout && fclose(out) != 0 && rc == 0)
		rc = cli_error("cannot write %s: %s", output, strerror(errno));
	return rc;
}
