#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/err.h"

static const char config_usage[] =
	"usage: keywarden config check\n"
	"\n"
	"Reads the configuration file and prints the effective configuration, or\n"
	"what is wrong with it (file, line and reason) with a non-zero exit.\n";

int cmd_config(struct cli *c, int argc, char **argv)
{
	struct buf out;
	int rc;

	if (cli_wants_help(argc, argv)) {
		fputs(config_usage, stdout);
		return 0;
	}
	if (argc != 2 || strcmp(argv[1], "check")) {
		fputs(config_usage, stderr);
		return 2;
	}
	if (cli_config(c))
		return 1;
	buf_init(&out, 1024 * 1024);
	rc = config_dump(&c->cfg, &out);
	if (rc == 0) {
		printf("# %s\n%s", c->cfg.path ? c->cfg.path : "built-in defaults (no file)",
		       out.data ? out.data : "");
	}
	buf_free(&out);
	return rc < 0 ? cli_error("%s", kw_strerror(rc)) : 0;
}
