#include <errno.h>
#include <fcntl.h>
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

static const char usage_head[] =
	"usage: keywarden [--config FILE] COMMAND [ARGS]\n"
	"\n"
	"BitLocker recovery-key escrow: devices escrow their recovery passwords,\n"
	"users and the help desk recover them through audited portals.\n"
	"\n"
	"commands:\n";

static const char usage_tail[] =
	"\n"
	"options:\n"
	"  -c, --config FILE   configuration file (default " KW_DEFAULT_CONFIG ")\n"
	"  -h, --help          this help; COMMAND --help for a command's\n"
	"  -V, --version       the version\n";

/* Every command; a group (run NULL) is followed by its sub-verbs. The order
 * is the order of `keywarden --help`. Columns: name, summary, usage, long
 * options, short options, min and max positional arguments, needs, check,
 * run (struct cli_command). */
static const struct cli_command cli_commands[] = {
	{ "init", "create the database, the key file and the first administrator",
	  usage_init, opts_init, NULL, 0, 0, CLI_CONFIG, check_init, cmd_init },
	{ "serve", "run the server",
	  usage_serve, NULL, NULL, 0, 0, CLI_CONFIG, NULL, cmd_serve },
	{ "demo", "a local demonstration instance, ready to try",
	  usage_demo, opts_demo, NULL, 0, 0, CLI_NOTHING, NULL, cmd_demo },
	{ "migrate", "apply database schema migrations",
	  usage_migrate, NULL, NULL, 0, 0, CLI_CONFIG, NULL, cmd_migrate },

	{ "user", "add, list, disable local accounts; set passwords", usage_user,
	  NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "user add", NULL, usage_user, opts_user_add, NULL, 1, 1, CLI_STORE,
	  check_user_add, cmd_user_add },
	{ "user passwd", NULL, usage_user, opts_user_passwd, NULL, 1, 1, CLI_STORE,
	  check_user_name, cmd_user_passwd },
	{ "user list", NULL, usage_user, NULL, NULL, 0, 0, CLI_STORE, NULL, cmd_user_list },
	{ "user disable", NULL, usage_user, NULL, NULL, 1, 1, CLI_STORE,
	  check_user_name, cmd_user_disable },
	{ "user enable", NULL, usage_user, NULL, NULL, 1, 1, CLI_STORE,
	  check_user_name, cmd_user_enable },

	{ "enroll", "create, list, revoke device enrollment tokens", usage_enroll,
	  NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "enroll create", NULL, usage_enroll, opts_enroll_create, NULL, 0, 0, CLI_STORE,
	  check_enroll_create, cmd_enroll_create },
	{ "enroll list", NULL, usage_enroll, NULL, NULL, 0, 0, CLI_STORE, NULL,
	  cmd_enroll_list },
	{ "enroll revoke", NULL, usage_enroll, NULL, NULL, 1, 1, CLI_STORE,
	  check_enroll_revoke, cmd_enroll_revoke },

	{ "device", "list and show devices; revoke a device", usage_device,
	  NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "device list", NULL, usage_device, NULL, NULL, 0, 1, CLI_STORE, NULL,
	  cmd_device_list },
	{ "device show", NULL, usage_device, NULL, NULL, 1, 1, CLI_STORE, NULL,
	  cmd_device_show },
	{ "device revoke", NULL, usage_device, NULL, NULL, 1, 1, CLI_STORE, NULL,
	  cmd_device_revoke },

	{ "assoc", "associate a user with a device", usage_assoc,
	  NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "assoc add", NULL, usage_assoc, NULL, NULL, 2, 2, CLI_STORE, check_assoc_add,
	  cmd_assoc_add },

	{ "import", "import recovery keys from a CSV file (keywarden's or MBAM's) or "
	  "Active Directory",
	  usage_import, NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "import csv", NULL, usage_import, opts_import_csv, NULL, 1, 1, CLI_KEY,
	  check_import_csv, cmd_import_csv },
	{ "import ldap", NULL, usage_import, opts_import_ldap, NULL, 0, 0, CLI_KEY, NULL,
	  cmd_import_ldap },

	{ "export", "export every escrowed key as CSV (a backup)", usage_export,
	  NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "export csv", NULL, usage_export, opts_export_csv, "o:", 0, 0, CLI_KEY, NULL,
	  cmd_export_csv },

	{ "backup", "a consistent copy of the database while the server runs",
	  usage_backup, NULL, NULL, 1, 1, CLI_CONFIG, NULL, cmd_backup },

	{ "migrate-store", "copy the whole site into another, empty database",
	  usage_migrate_store, opts_migrate_store, NULL, 0, 0, CLI_CONFIG,
	  check_migrate_store, cmd_migrate_store },

	{ "audit", "verify the audit chain; export the audit trail", usage_audit,
	  NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "audit verify", NULL, usage_audit, NULL, NULL, 0, 0, CLI_STORE, NULL,
	  cmd_audit_verify },
	{ "audit export", NULL, usage_audit, opts_audit_export, NULL, 0, 0, CLI_STORE,
	  check_audit_export, cmd_audit_export },

	{ "rekey", "re-encrypt every key under a new master key",
	  usage_rekey, NULL, NULL, 0, 0, CLI_KEY_EXCLUSIVE, NULL, cmd_rekey },

	{ "config", "check the configuration and print it", usage_config,
	  NULL, NULL, 0, 0, CLI_NOTHING, NULL, NULL },
	{ "config check", NULL, usage_config, NULL, NULL, 0, 0, CLI_CONFIG, NULL,
	  cmd_config_check },
};

#define NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))
#define NAME_MAX_LEN 64          /* "keywarden " + a command and its verb */
#define LONGOPTS_MAX 16

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

FILE *cli_create_private(const char *path)
{
	FILE *f;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	/* fchmod: an existing file keeps its mode through O_CREAT. */
	if (fd < 0 || fchmod(fd, 0600) < 0 || !(f = fdopen(fd, "w"))) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	return f;
}

const char *cli_opt(const struct cli_call *call, int val)
{
	const char *v = NULL;

	for (size_t i = 0; i < call->nopts; i++)
		if (call->opts[i].val == val)
			v = call->opts[i].arg;
	return v;
}

bool cli_has_opt(const struct cli_call *call, int val)
{
	for (size_t i = 0; i < call->nopts; i++)
		if (call->opts[i].val == val)
			return true;
	return false;
}

static void usage_main(FILE *out)
{
	fputs(usage_head, out);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (cli_commands[i].summary)
			fprintf(out, "  %-10s%s\n", cli_commands[i].name, cli_commands[i].summary);
	fputs(usage_tail, out);
}

static const struct cli_command *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(cli_commands[i].name, name))
			return &cli_commands[i];
	return NULL;
}

/* The command argv names: the entry of argv[0], or for a group the entry
 * of its sub-verb argv[1]; *used gets how many words named it. Prints
 * the error and returns NULL with *status set when there is none. */
static const struct cli_command *command_of(int argc, char **argv, int *used, int *status)
{
	const struct cli_command *cmd = find(argv[0]), *sub;
	char name[NAME_MAX_LEN];

	*used = 1;
	if (!cmd) {
		cli_error("unknown command '%s'; see keywarden --help", argv[0]);
		*status = 2;
		return NULL;
	}
	if (cmd->run)
		return cmd;
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(cmd->usage, stdout);
		*status = 0;
		return NULL;
	}
	if (argc < 2 || argv[1][0] == '-') {
		fputs(cmd->usage, stderr);
		*status = 2;
		return NULL;
	}
	snprintf(name, sizeof(name), "%s %s", cmd->name, argv[1]);
	if (strlen(argv[1]) >= NAME_MAX_LEN || !(sub = find(name)) || !sub->run) {
		cli_error("unknown %s command '%s'; see keywarden %s --help", cmd->name, argv[1],
			  cmd->name);
		*status = 2;
		return NULL;
	}
	*used = 2;
	return sub;
}

/* getopt over argv (argv[0] the command's name, for getopt's messages):
 * the options into call, the positional arguments after them, as getopt
 * moves them. Returns -1 to go on, or the exit status. */
static int parse(const struct cli_command *cmd, int argc, char **argv, struct cli_call *call)
{
	struct option longopts[LONGOPTS_MAX + 1];
	char shortopts[32];
	size_t n = 0;
	int o;

	for (; cmd->opts && cmd->opts[n].name; n++) {
		if (n == LONGOPTS_MAX)
			return cli_error("%s: too many options in the command table", cmd->name);
		longopts[n] = cmd->opts[n];
	}
	longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	memset(&longopts[n], 0, sizeof(longopts[n]));
	snprintf(shortopts, sizeof(shortopts), "h%s", cmd->shortopts ? cmd->shortopts : "");
	optind = 0;      /* a full restart of getopt for a new argv */
	while ((o = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (o == 'h') {
			fputs(cmd->usage, stdout);
			return 0;
		}
		if (o == '?' || o == ':' || call->nopts == CLI_OPTS_MAX) {
			fputs(cmd->usage, stderr);
			return 2;
		}
		call->opts[call->nopts].val = o;
		call->opts[call->nopts++].arg = optarg;
	}
	call->argc = argc - optind;
	call->argv = argv + optind;
	if (call->argc < cmd->min_args || call->argc > cmd->max_args) {
		fputs(cmd->usage, stderr);
		return 2;
	}
	return -1;
}

/* Gets what cmd needs, runs it and releases what it got. */
static int run(const struct cli_command *cmd, struct cli_call *call)
{
	struct keyfile kf = { .lock = -1 };
	int rc = 1;

	if (cmd->check && (rc = cmd->check(call)) != 0)
		goto out;
	rc = 1;
	if (cmd->needs >= CLI_CONFIG && cli_config(call->cli))
		goto out;
	if (cmd->needs >= CLI_STORE && cli_store(call->cli, &call->store))
		goto out;
	if (cmd->needs >= CLI_KEY) {
		if (cli_key(call->cli, call->store, cmd->needs == CLI_KEY_EXCLUSIVE, &kf))
			goto out;
		call->key = &kf;
	}
	rc = cmd->run(call);
out:
	keyfile_close(&kf);
	store_close(call->store);
	return rc;
}

int cli_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cli_command *cmd;
	char name[NAME_MAX_LEN], **sub = NULL;
	struct cli c;
	struct cli_call *call = NULL;
	int o, used, rc = 2;

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
			usage_main(stdout);
			return 0;
		case 'V':
			printf("keywarden %s\n", KW_VERSION);
			return 0;
		default:
			usage_main(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage_main(stderr);
		return 2;
	}
	argc -= optind;
	argv += optind;
	if (!(cmd = command_of(argc, argv, &used, &rc)))
		return rc;
	/* The command's own argv: its name first, for getopt's messages. */
	call = calloc(1, sizeof(*call));
	sub = calloc((size_t)argc + 1, sizeof(*sub));
	if (!call || !sub) {
		rc = cli_error("out of memory");
		goto out;
	}
	snprintf(name, sizeof(name), "keywarden %s", cmd->name);
	sub[0] = name;
	memcpy(sub + 1, argv + used, (size_t)(argc - used) * sizeof(*sub));
	call->cli = &c;
	call->name = cmd->name;
	if ((rc = parse(cmd, argc - used + 1, sub, call)) < 0)
		rc = run(cmd, call);
out:
	if (call)
		sodium_memzero(call, sizeof(*call));
	free(call);
	free(sub);
	config_free(&c.cfg);
	return rc;
}
