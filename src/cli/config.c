#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/err.h"

const char usage_config[] =
	"usage: keywarden config check\n"
	"\n"
	"Reads the configuration file and prints the effective configuration, or\n"
	"what is wrong with it (file, line and reason) with a non-zero exit.\n";

int cmd_config_check(struct cli_call *call)
{
	struct cli *c = call->cli;
	struct buf out;
	int rc;

	buf_init(&out, 1024 * 1024);
	rc = config_dump(&c->cfg, &out);
	if (rc == 0) {
		printf("# %s\n%s", c->cfg.path ? c->cfg.path : "built-in defaults (no file)",
		       out.data ? out.data : "");
	}
	buf_free(&out);
	return rc < 0 ? cli_error("%s", kw_strerror(rc)) : 0;
}
