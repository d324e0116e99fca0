#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "core/enroll.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define EXPIRES_MAX (10LL * 365 * 86400)

static const char enroll_usage[] =
	"usage: keywarden enroll create [--expires DURATION] [--uses N]\n"
	"       keywarden enroll list\n"
	"       keywarden enroll revoke ID\n"
	"\n"
	"Enrollment tokens let devices register (POST /api/v1/register).\n"
	"create prints the token alone on standard output; it is not shown again.\n"
	"  --expires DURATION  e.g. 30d, 12h; 0 = never (default 30d)\n"
	"  --uses N            registrations allowed (default: unlimited)\n";

static int print_token(const struct token_rec *t, void *arg)
{
	char created[TIME_ISO_LEN], expires[TIME_ISO_LEN], uses[24];
	int64_t now = *(int64_t *)arg;
	static const char *const states[] = {
		[ENROLL_TOKEN_VALID] = "valid",
		[ENROLL_TOKEN_REVOKED] = "revoked",
		[ENROLL_TOKEN_EXPIRED] = "expired",
		[ENROLL_TOKEN_USED_UP] = "used up",
	};

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

int cmd_enroll(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "expires", required_argument, NULL, 'e' },
		{ "uses", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t expires = 30 * 86400, uses = -1, id = 0, now = time_now();
	char token[SECRET_TEXT_MAX];
	struct store *s = NULL;
	const char *verb, *arg = NULL;
	int o, rc = 1;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(enroll_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	optind = 0;
	while ((o = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'e':
			if (str_to_duration(optarg, EXPIRES_MAX, &expires) < 0)
				return cli_error("--expires %s: use a duration like 30d, 12h or 0 "
						 "(never), at most 10 years", optarg);
			break;
		case 'u':
			if (str_to_i64(optarg, 1, 1000000000, &uses) < 0)
				return cli_error("--uses %s: use a whole number from 1", optarg);
			break;
		case 'h': fputs(enroll_usage, stdout); return 0;
		default: fputs(enroll_usage, stderr); return 2;
		}
	}
	if (optind < argc - 1)
		arg = argv[1 + optind++];
	if (optind != argc - 1 || (!strcmp(verb, "revoke") != (arg != NULL))) {
		fputs(enroll_usage, stderr);
		return 2;
	}
	if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "revoke"))
		return cli_error("unknown enroll command '%s'; see keywarden enroll --help", verb);
	if (arg && str_to_i64(arg, 1, INT64_MAX, &id) < 0)
		return cli_error("'%s' is not a token ID (see keywarden enroll list)", arg);
	if (cli_config(c) || cli_store(c, &s))
		goto out;
	if (!strcmp(verb, "create")) {
		rc = enroll_token_create(s, now, expires ? now + expires : 0, uses, token, &id);
		if (rc < 0) {
			rc = cli_error("cannot create a token: %s", kw_strerror(rc));
			goto out;
		}
		printf("%s\n", token);
		sodium_memzero(token, sizeof(token));
	} else if (!strcmp(verb, "list")) {
		printf("%-6s %-20s %-20s %-10s %-6s %s\n", "ID", "CREATED", "EXPIRES",
		       "USES LEFT", "USED", "STATE");
		if ((rc = enroll_token_each(s, print_token, &now)) < 0) {
			rc = cli_error("cannot list tokens: %s", kw_strerror(rc));
			goto out;
		}
	} else {
		rc = enroll_token_revoke(s, id);
		if (rc == KW_ERR_NOT_FOUND) {
			rc = cli_error("no enrollment token %lld", (long long)id);
			goto out;
		}
		if (rc < 0) {
			rc = cli_error("cannot revoke token %lld: %s", (long long)id, kw_strerror(rc));
			goto out;
		}
		printf("enrollment token %lld revoked\n", (long long)id);
	}
	rc = 0;
out:
	store_close(s);
	return rc;
}
