#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "util/err.h"
#include "util/timeutil.h"

const char usage_audit[] =
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
	"                   denied, exported, rekeyed, associated, imported, or an\n"
	"                   administrator's change:\n"
	"                   user_added, roles_changed, user_disabled, user_enabled,\n"
	"                   password_reset, token_created or token_revoked\n"
	"  --source SOURCE  self_service, helpdesk, api or cli\n";

enum { OPT_OUTPUT = 'o', OPT_FROM = 'f', OPT_TO = 't', OPT_RESULT = 'r', OPT_SOURCE = 's' };

const struct option opts_audit_export[] = {
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "result", required_argument, NULL, OPT_RESULT },
	{ "source", required_argument, NULL, OPT_SOURCE },
	{ NULL, 0, NULL, 0 },
};

/* The filter; its strings point into argv. */
struct audit_args {
	struct audit_filter f;
};
_Static_assert(sizeof(struct audit_args) <= CLI_ARGS_MAX, "see struct cli_call");

int cmd_audit_verify(struct cli_call *call)
{
	struct audit_report r;
	int rc;

	rc = audit_verify(call->store, &r);
	if (rc == KW_ERR_CONFLICT)
		return cli_error("audit chain broken: %s", r.problem);
	if (rc < 0)
		return cli_error("cannot verify the audit chain: %s", kw_strerror(rc));
	printf("audit chain intact: %lld records\n", (long long)r.records);
	return 0;
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

int check_audit_export(struct cli_call *call)
{
	struct audit_filter *f = &((struct audit_args *)call->args)->f;

	for (size_t i = 0; i < call->nopts; i++) {
		const char *v = call->opts[i].arg;

		switch (call->opts[i].val) {
		case OPT_FROM:
			if (parse_date("--from", v, false, &f->from))
				return 1;
			break;
		case OPT_TO:
			if (parse_date("--to", v, true, &f->to))
				return 1;
			break;
		case OPT_RESULT:
			if (!audit_name_known(audit_results, v))
				return cli_error("--result %s: use disclosed, ambiguous, not_found, "
						 "invalid, rate_limited, denied, exported, rekeyed, "
						 "associated, imported, user_added, roles_changed, "
						 "user_disabled, "
						 "user_enabled, password_reset, token_created or "
						 "token_revoked", v);
			f->result = v;
			break;
		case OPT_SOURCE:
			if (!audit_name_known(audit_sources, v))
				return cli_error("--source %s: use self_service, helpdesk, api "
						 "or cli", v);
			f->source = v;
			break;
		}
	}
	if (f->from && f->to && f->from >= f->to)
		return cli_error("--from is after --to: no record can match");
	return 0;
}

int cmd_audit_export(struct cli_call *call)
{
	const struct audit_filter *f = &((const struct audit_args *)call->args)->f;
	const char *output = cli_opt(call, OPT_OUTPUT);
	FILE *out = stdout;
	int rc;

	/* The trail names people and computers: not for other users. */
	if (output && !(out = cli_create_private(output)))
		return 1;
	rc = audit_export_csv(call->store, f, out);
	if (rc < 0)
		rc = cli_error("audit export failed: %s", kw_strerror(rc));
	if (out != stdout && fclose(out) != 0 && rc == 0)
		rc = cli_error("cannot write %s: %s", output, strerror(errno));
	return rc;
}
