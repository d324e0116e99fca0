#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "core/keyfile.h"
#include "kw_build.h"
#include "store/store.h"
#include "util/err.h"
#include "util/jsonwipe.h"
#include "util/str.h"

static const char usage[] =
	"usage: keywarden [--config FILE] COMMAND [ARGS]\n"
	"\n"
	"BitLocker recovery-key escrow: devices escrow their recovery passwords,\n"
	"users and the help desk recover them through audited portals.\n"
	"\n"
	"commands:\n"
	"  init      create the database, the key file and the first administrator\n"
	"  serve     run the server\n"
	"  demo      a local demonstration instance, ready to try\n"
	"  migrate   apply database schema migrations\n"
	"  user      add, list, disable local accounts; set passwords\n"
	"  enroll    create, list, revoke device enrollment tokens\n"
	"  device    list and show devices; revoke a device\n"
	"  assoc     associate a user with a device\n"
	"  export    export every escrowed key as CSV (a backup)\n"
	"  audit     verify the audit chain; export the audit trail\n"
	"  rekey     re-encrypt every key under a new master key\n"
	"  config    check the configuration and print it\n"
	"\n"
	"options:\n"
	"  -c, --config FILE   configuration file (default " KW_DEFAULT_CONFIG ")\n"
	"  -h, --help          this help; COMMAND --help for a command's\n"
	"  -V, --version       the version\n";

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
} commands[] = {
	{ "init", cmd_init },
	{ "serve", cmd_serve },
	{ "demo", cmd_demo },
	{ "migrate", cmd_migrate },
	{ "user", cmd_user },
	{ "enroll", cmd_enroll },
	{ "device", cmd_device },
	{ "assoc", cmd_assoc },
	{ "export", cmd_export },
	{ "audit", cmd_audit },
	{ "rekey", cmd_rekey },
	{ "config", cmd_config },
};

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("keywarden: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

int cli_config(struct cli *c)
{
	char msg[512];
	int rc;

	if ((rc = config_defaults(&c->cfg)) < 0)
		return cli_error("%s", kw_strerror(rc));
	if (c->config_path || access(KW_DEFAULT_CONFIG, F_OK) == 0) {
		const char *path = c->config_path ? c->config_path : KW_DEFAULT_CONFIG;

		if (config_load(&c->cfg, path, msg, sizeof(msg)) < 0)
			return cli_error("%s", msg);
	}
	if (config_validate(&c->cfg, msg, sizeof(msg)) < 0)
		return cli_error("%s%s%s", c->cfg.path ? c->cfg.path : "configuration",
				 ": ", msg);
	return 0;
}

int cli_store(struct cli *c, struct store **out)
{
	char msg[512];

	if (store_open(c->cfg.database, true, out, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	return 0;
}

int cli_key(struct cli *c, struct store *s, bool exclusive, struct keyfile *kf)
{
	char msg[1024];

	if (keyfile_open(s, c->cfg.key_file, exclusive, kf, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	if (kf->how == KEYFILE_FINISHED || kf->how == KEYFILE_PENDING)
		cli_error("%s", kf->note);
	return 0;
}

/* Printable ASCII only, at most 64 characters: the environment is anyone's. */
static void clean_name(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in && n < 64 && n + 1 < outlen; in++)
		out[n++] = (*in > 0x20 && *in < 0x7f) ? *in : '?';
	out[n] = '\0';
}

void cli_actor(char *out, size_t outlen)
{
	const struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER");
	char name[72], by[72];

	if (pw)
		clean_name(pw->pw_name, name, sizeof(name));
	else
		snprintf(name, sizeof(name), "uid %u", (unsigned)getuid());
	if (sudo && *sudo) {
		clean_name(sudo, by, sizeof(by));
		snprintf(out, outlen, "%s (sudo from %s)", name, by);
	} else {
		snprintf(out, outlen, "%s", name);
	}
}

int cli_read_password(char *out, size_t outlen)
{
	size_t n;

	if (!fgets(out, (int)outlen, stdin)) {
		cli_error("no password on standard input");
		return KW_ERR_INVALID;
	}
	n = strlen(out);
	if (n == outlen - 1 && out[n - 1] != '\n') {
		sodium_memzero(out, outlen);
		cli_error("the password on standard input is too long");
		return KW_ERR_TOO_LARGE;
	}
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return 0;
}

static const char *const role_names[] = { "helpdesk", "helpdesk_admin", "reports", "admin" };

unsigned cli_role(const char *name)
{
	for (unsigned i = 0; i < 4; i++)
		if (!strcmp(name, role_names[i]))
			return 1u << i;
	return 0;
}

void cli_roles_text(unsigned roles, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < 4 && n < outlen; i++)
		if (roles & (1u << i))
			n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? "," : "",
					      role_names[i]);
	if (!n)
		snprintf(out, outlen, "-");
}

int cli_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c;
	int o, rc;

	/* Databases, key files and exports are for the service user only. */
	umask(077);
	if (sodium_init() < 0)
		return cli_error("libsodium failed to initialise");
	jsonwipe_install();
	memset(&c, 0, sizeof(c));
	while ((o = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			c.config_path = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("keywarden %s\n", KW_VERSION);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name))
			continue;
		rc = commands[i].fn(&c, argc - optind, argv + optind);
		config_free(&c.cfg);
		return rc;
	}
	cli_error("unknown command '%s'; see keywarden --help", argv[optind]);
	return 2;
}
