#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "core/enroll.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define EXPIRES_MAX (10LL * 365 * 86400)
#define EXPIRES_DEFAULT (30LL * 86400)

const char usage_enroll[] =
	"usage: keywarden enroll create [--expires DURATION] [--uses N]\n"
	"       keywarden enroll list\n"
	"       keywarden enroll revoke ID\n"
	"\n"
	"Enrollment tokens let devices register (POST /api/v1/register).\n"
	"create prints the token alone on standard output; it is not shown again.\n"
	"  --expires DURATION  e.g. 30d, 12h; 0 = never (default 30d)\n"
	"  --uses N            registrations allowed (default: unlimited)\n";

enum { OPT_EXPIRES = 'e', OPT_USES = 'u' };

const struct option opts_enroll_create[] = {
	{ "expires", required_argument, NULL, OPT_EXPIRES },
	{ "uses", required_argument, NULL, OPT_USES },
	{ NULL, 0, NULL, 0 },
};

struct enroll_args {
	int64_t expires;         /* seconds; 0 = never */
	int64_t uses;            /* -1 = unlimited */
	int64_t id;              /* revoke */
};
_Static_assert(sizeof(struct enroll_args) <= CLI_ARGS_MAX, "see struct cli_call");

int check_enroll_create(struct cli_call *call)
{
	struct enroll_args *a = (struct enroll_args *)call->args;

	a->expires = EXPIRES_DEFAULT;
	a->uses = -1;
	for (size_t i = 0; i < call->nopts; i++) {
		const char *v = call->opts[i].arg;

		if (call->opts[i].val == OPT_EXPIRES &&
		    str_to_duration(v, EXPIRES_MAX, &a->expires) < 0)
			return cli_error("--expires %s: use a duration like 30d, 12h or 0 "
					 "(never), at most 10 years", v);
		if (call->opts[i].val == OPT_USES && str_to_i64(v, 1, 1000000000, &a->uses) < 0)
			return cli_error("--uses %s: use a whole number from 1", v);
	}
	return 0;
}

int cmd_enroll_create(struct cli_call *call)
{
	const struct enroll_args *a = (const struct enroll_args *)call->args;
	char token[SECRET_TEXT_MAX];
	int64_t now = time_now();
	int rc;

	rc = enroll_token_create(call->store, now, a->expires ? now + a->expires : 0, a->uses,
				 NULL, token, NULL);
	if (rc < 0)
		return cli_error("cannot create a token: %s", kw_strerror(rc));
	printf("%s\n", token);
	sodium_memzero(token, sizeof(token));
	return 0;
}

static int print_token(const struct token_rec *t, void *arg)
{
	static const char *const states[] = {
		[ENROLL_TOKEN_VALID] = "valid",
		[ENROLL_TOKEN_REVOKED] = "revoked",
		[ENROLL_TOKEN_EXPIRED] = "expired",
		[ENROLL_TOKEN_USED_UP] = "used up",
	};
	char created[TIME_ISO_LEN], expires[TIME_ISO_LEN], uses[24];
	int64_t now = *(int64_t *)arg;

	time_format_iso(t->created_at, created);
	if (t->expires_at)
		time_format_iso(t->expires_at, expires);
	else
		snprintf(expires, sizeof(expires), "never");
	if (t->uses_left < 0)
		snprintf(uses, sizeof(uses), "unlimited");
	else
		snprintf(uses, sizeof(uses), "%lld", (long long)t->uses_left);
	printf("%-6lld %-20s %-20s %-10s %-6lld %s\n", (long long)t->id, created, expires,
	       uses, (long long)t->used, states[enroll_token_state(t, now)]);
	return 0;
}

int cmd_enroll_list(struct cli_call *call)
{
	int64_t now = time_now();
	int rc;

	printf("%-6s %-20s %-20s %-10s %-6s %s\n", "ID", "CREATED", "EXPIRES", "USES LEFT",
	       "USED", "STATE");
	if ((rc = enroll_token_each(call->store, print_token, &now)) < 0)
		return cli_error("cannot list tokens: %s", kw_strerror(rc));
	return 0;
}

int check_enroll_revoke(struct cli_call *call)
{
	struct enroll_args *a = (struct enroll_args *)call->args;

	if (str_to_i64(call->argv[0], 1, INT64_MAX, &a->id) < 0)
		return cli_error("'%s' is not a token ID (see keywarden enroll list)",
				 call->argv[0]);
	return 0;
}

int cmd_enroll_revoke(struct cli_call *call)
{
	int64_t id = ((const struct enroll_args *)call->args)->id;
	int rc = enroll_token_revoke(call->store, id, NULL);

	if (rc == KW_ERR_NOT_FOUND)
		return cli_error("no enrollment token %lld", (long long)id);
	if (rc < 0)
		return cli_error("cannot revoke token %lld: %s", (long long)id, kw_strerror(rc));
	printf("enrollment token %lld revoked\n", (long long)id);
	return 0;
}
