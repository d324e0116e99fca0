#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "core/export.h"
#include "core/keyfile.h"
#include "store/store.h"

static const char export_usage[] =
	"usage: keywarden export csv [--output FILE]\n"
	"\n"
	"Writes every escrowed recovery key, in every state, with its device and\n"
	"volume, as CSV: the administrator's backup. The file holds the recovery\n"
	"passwords in clear text: --output creates it with mode 0600.\n"
	"Every export is recorded in the audit trail (who, when, how many keys,\n"
	"where to) before any password is written; without the record, nothing is.\n"
	"Columns: device_id,device_name,domain,volume_id,mount,key_id,\n"
	"recovery_password,state,created_at,disclosed_at\n";

int cmd_export(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char actor[CLI_ACTOR_MAX], dest[4096], msg[1024];
	struct keyfile kf = { .lock = -1 };
	struct audit_rec who;
	struct store *s = NULL;
	const char *output = NULL;
	FILE *out = NULL;
	size_t rows = 0;
	int o, fd = -1, rc = 1;

	optind = 0;
	while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (o) {
		case 'o': output = optarg; break;
		case 'h': fputs(export_usage, stdout); return 0;
		default: fputs(export_usage, stderr); return 2;
		}
	}
	if (optind != argc - 1 || strcmp(argv[optind], "csv")) {
		fputs(export_usage, stderr);
		return 2;
	}
	if (cli_config(c) || cli_store(c, &s) || cli_key(c, s, false, &kf))
		goto out;
	if (output) {
		fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || fchmod(fd, 0600) < 0 || !(out = fdopen(fd, "w"))) {
			rc = cli_error("cannot write %s: %s", output, strerror(errno));
			goto out;
		}
		fd = -1;  /* owned by out */
		/* The audit record names the file wherever it was run from. */
		if (!realpath(output, dest))
			snprintf(dest, sizeof(dest), "%s", output);
	} else {
		out = stdout;
		snprintf(dest, sizeof(dest), "standard output");
	}
	cli_actor(actor, sizeof(actor));
	memset(&who, 0, sizeof(who));
	who.source = AUDIT_CLI;
	who.actor = actor;
	if (export_csv(s, kf.seal, &who, dest, out, &rows, msg, sizeof(msg)) < 0) {
		rc = cli_error("export failed: %s", msg);
		goto out;
	}
	if (output)
		fprintf(stderr, "keywarden: %zu keys written to %s\n", rows, output);
	rc = 0;
out:
	if (out && out != stdout && fclose(out) != 0 && rc == 0)
		rc = cli_error("cannot write %s: %s", output, strerror(errno));
	if (fd >= 0)
		close(fd);
	keyfile_close(&kf);
	store_close(s);
	return rc;
}
