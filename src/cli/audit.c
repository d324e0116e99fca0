#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "store/store.h"
#include "util/err.h"
#include "util/timeutil.h"

static const char audit_usage[] =
	"usage: keywarden audit verify\n"
	"       keywarden audit export [--output FILE] [--from DATE] [--to DATE]\n"
	"                              [--result RESULT] [--source SOURCE]\n"
	"\n"
	"The recovery audit trail: one record for every outcome of a recovery\n"
	"request, chained by hashes.\n"
	"verify checks the whole chain and names the first altered, inserted or\n"
	"missing record (exit status 1).\n"
	"export writes the records as CSV, to standard output by default:\n"
	"seq,time,source,result,actor,end_user,computer,device_id,key_id,key_type,\n"
	"reason,comment,client,hash\n"
	"  --output FILE    write to FILE instead (created with mode 0600)\n"
	"  --from DATE      records at or after DATE (UTC)\n"
	"  --to DATE        records up to and including DATE; a date alone\n"
	"                   includes that whole day\n"
	"                   DATE: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ\n"
	"  --result RESULT  disclosed, ambiguous, not_found, invalid, rate_limited,\n"
	"                   denied, exported or rekeyed\n"
	"  --source SOURCE  self_service, helpdesk, api or cli\n";

static const char *const results[] = {
	AUDIT_DISCLOSED, AUDIT_AMBIGUOUS, AUDIT_NOT_FOUND, AUDIT_INVALID,
	AUDIT_RATE_LIMITED, AUDIT_DENIED, AUDIT_EXPORTED, AUDIT_REKEYED, NULL,
};

static const char *const sources[] = {
	AUDIT_SELF_SERVICE, AUDIT_HELPDESK, AUDIT_API, AUDIT_CLI, NULL,
};

static bool known(const char *const *list, const char *v)
{
	for (; *list; list++)
		if (!strcmp(*list, v))
			return true;
	return false;
}

static int verify(struct store *s)
{
	struct audit_report r;
	int rc;

	rc = audit_verify(s, &r);
	if (rc == KW_ERR_CONFLICT)
		return cli_error("audit chain broken: %s", r.problem);
	if (rc < 0)
		return cli_error("cannot verify the audit chain: %s", kw_strerror(rc));
	printf("audit chain intact: %lld records\n", (long long)r.records);
	return 0;
}

static int export(struct store *s, const struct audit_filter *f, const char *output)
{
	FILE *out = stdout;
	int fd, rc;

	if (output) {
		/* The trail names people and computers: not for other users. */
		fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || fchmod(fd, 0600) < 0 || !(out = fdopen(fd, "w"))) {
			rc = cli_error("cannot write %s: %s", output, strerror(errno));
			if (fd >= 0)
				close(fd);
			return rc;
		}
	}
	rc = audit_export_csv(s, f, out);
	if (rc < 0)
		rc = cli_error("audit export failed: %s", kw_strerror(rc));
	if (out != stdout && fclose(out) != 0 && rc == 0)
		rc = cli_error("cannot write %s: %s", output, strerror(errno));
	return rc;
}

/* --from DATE and --to DATE; a date alone in --to means its whole day. */
static int parse_date(const char *opt, const char *v, bool end, int64_t *out)
{
	if (time_parse_iso(v, out) < 0)
		return cli_error("%s %s: use a UTC date, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
				 opt, v);
	/* The store's upper bound is exclusive. */
	if (end)
		*out += strlen(v) == 10 ? 86400 : 1;
	return 0;
}

int cmd_audit(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "result", required_argument, NULL, 'r' },
		{ "source", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct audit_filter f;
	struct store *s = NULL;
	const char *verb, *output = NULL;
	bool options = false;
	int o, rc = 1;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(audit_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	memset(&f, 0, sizeof(f));
	optind = 0;
	while ((o = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		options = options || o != 'h';
		switch (o) {
		case 'o': output = optarg; break;
		case 'f':
			if (parse_date("--from", optarg, false, &f.from))
				return 1;
			break;
		case 't':
			if (parse_date("--to", optarg, true, &f.to))
				return 1;
			break;
		case 'r':
			if (!known(results, optarg))
				return cli_error("--result %s: use disclosed, ambiguous, not_found, "
						 "invalid, rate_limited, denied, exported or rekeyed",
						 optarg);
			f.result = optarg;
			break;
		case 's':
			if (!known(sources, optarg))
				return cli_error("--source %s: use self_service, helpdesk, api "
						 "or cli", optarg);
			f.source = optarg;
			break;
		case 'h': fputs(audit_usage, stdout); return 0;
		default: fputs(audit_usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(audit_usage, stderr);
		return 2;
	}
	if (strcmp(verb, "verify") && strcmp(verb, "export"))
		return cli_error("unknown audit command '%s'; see keywarden audit --help", verb);
	if (!strcmp(verb, "verify") && options)
		return cli_error("audit verify takes no options; see keywarden audit --help");
	if (f.from && f.to && f.from >= f.to)
		return cli_error("--from is after --to: no record can match");
	if (cli_config(c) || cli_store(c, &s))
		goto out;
	rc = !strcmp(verb, "verify") ? verify(s) : export(s, &f, output);
out:
	store_close(s);
	return rc;
}
