/* The command line (SPEC §9): `keywarden [--config FILE] COMMAND …`.
 *
 * One table (cli_commands in cli.c) names every command and sub-verb
 * ("user add"), with its one-line summary, usage text, options, how many
 * positional arguments it takes and what it needs. cli_main does the rest
 * the same way for all: getopt, --help (usage on stdout, exit 0), a wrong
 * option or argument count (usage on stderr, exit 2), the command's check
 * of its arguments, then the configuration, the store and the master key it
 * asked for (each failure printed, exit 1), the command, and the cleanup.
 * A command only parses what is its own, calls core and prints; errors go
 * to stderr with a non-zero exit. */
#ifndef KW_CLI_CLI_H
#define KW_CLI_CLI_H

#include <getopt.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

struct store;
struct keyfile;

struct cli {
	const char *config_path;     /* --config, or NULL for the default */
	struct config cfg;
};

/* What a command needs before it runs; each level has the ones before. */
enum cli_needs {
	CLI_NOTHING = 0,
	CLI_CONFIG,                  /* the configuration, loaded and validated */
	CLI_STORE,                   /* the store, opened and migrated */
	CLI_KEY,                     /* the master key, its file locked shared
				      * (core/keyfile.h) */
	CLI_KEY_EXCLUSIVE,           /* … locked exclusively */
};

#define CLI_OPTS_MAX 32
#define CLI_ARGS_MAX 256

/* One run of a command, as cli_main prepared it. */
struct cli_call {
	struct cli *cli;             /* config_path; cfg once CLI_CONFIG */
	const char *name;            /* "user add" */
	int argc;                    /* positional arguments, options taken out */
	char **argv;
	struct {
		int val;             /* struct option .val */
		const char *arg;     /* its argument, or NULL */
	} opts[CLI_OPTS_MAX];        /* the options given, in order */
	size_t nopts;
	struct store *store;         /* CLI_STORE */
	struct keyfile *key;         /* CLI_KEY */
	/* What check parsed, for run: a command's own struct (static_assert
	 * it fits). Zeroed before check; wiped after run. */
	alignas(max_align_t) unsigned char args[CLI_ARGS_MAX];
};

struct cli_command {
	const char *name;            /* "init", or "user add" for a sub-verb */
	const char *summary;         /* the line in `keywarden --help`; NULL for
				      * sub-verbs */
	const char *usage;           /* for --help and usage errors */
	const struct option *opts;   /* long options (but --help), {0}-ended;
				      * NULL = none */
	const char *shortopts;       /* short ones (but -h), getopt syntax */
	int min_args, max_args;      /* positional arguments */
	enum cli_needs needs;
	/* Checks the arguments and options before anything is loaded; may
	 * keep what it parsed in call->args. 0, or an exit status after
	 * printing why. NULL: nothing to check. */
	int (*check)(struct cli_call *call);
	/* The command; returns its exit status. NULL: a group, whose
	 * sub-verbs are the entries named "NAME VERB". */
	int (*run)(struct cli_call *call);
};

int cli_main(int argc, char **argv);

/* The value of the last option val given, or NULL; whether one was. */
const char *cli_opt(const struct cli_call *call, int val);
bool cli_has_opt(const struct cli_call *call, int val);

/* Loads and validates the configuration; prints the error and returns
 * non-zero on failure. For commands that load it themselves (demo). */
int cli_config(struct cli *c);
/* Opens the store (applying migrations); prints the error on failure. */
int cli_store(struct cli *c, struct store **out);
/* Locks the key file and loads the key the store is sealed with, finishing
 * an interrupted rekey (core/keyfile.h); says on stderr when it found one.
 * Prints the error on failure. Release kf with keyfile_close. */
int cli_key(struct cli *c, struct store *s, bool exclusive, struct keyfile *kf);

/* Creates path for a file only the service user may read (mode 0600,
 * truncated, not through a symbolic link); prints the error and returns
 * NULL on failure. */
FILE *cli_create_private(const char *path);

/* The audit actor of a command: the operating-system account running it,
 * and the account that ran sudo as sudo reports it (SUDO_USER), e.g.
 * "root (sudo from alice)". out: at least CLI_ACTOR_MAX bytes. */
#define CLI_ACTOR_MAX 160
void cli_actor(char *out, size_t outlen);

/* Reads one line (a password) from standard input into out, without the
 * newline; at most outlen - 1 bytes. Prints the error on failure. */
int cli_read_password(char *out, size_t outlen);

/* Adds a local account with a password (core/account.h); prints the error
 * and returns non-zero on failure. */
int cli_add_user(struct store *s, const char *name, unsigned roles, const char *pw);

/* Prints "keywarden: " and the message to stderr; returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs the server until SIGTERM or SIGINT (shared by serve and demo). */
int cli_serve_run(struct cli *c, const char *banner);

/* ---- the commands, one file per group; the table in cli.c ---- */

extern const char usage_init[], usage_migrate[], usage_serve[], usage_demo[];
extern const char usage_user[], usage_enroll[], usage_device[], usage_assoc[];
extern const char usage_export[], usage_audit[], usage_rekey[], usage_config[];
extern const char usage_import[], usage_backup[], usage_migrate_store[];

extern const struct option opts_init[], opts_demo[], opts_user_add[], opts_user_passwd[];
extern const struct option opts_enroll_create[], opts_export_csv[], opts_audit_export[];
extern const struct option opts_import_csv[];
extern const struct option opts_import_ldap[];
extern const struct option opts_migrate_store[];

int check_init(struct cli_call *call);
int check_user_name(struct cli_call *call);
int check_user_add(struct cli_call *call);
int check_enroll_create(struct cli_call *call);
int check_enroll_revoke(struct cli_call *call);
int check_assoc_add(struct cli_call *call);
int check_audit_export(struct cli_call *call);
int check_import_csv(struct cli_call *call);
int check_migrate_store(struct cli_call *call);

int cmd_init(struct cli_call *call);
int cmd_migrate(struct cli_call *call);
int cmd_serve(struct cli_call *call);
int cmd_demo(struct cli_call *call);
int cmd_user_add(struct cli_call *call);
int cmd_user_passwd(struct cli_call *call);
int cmd_user_list(struct cli_call *call);
int cmd_user_disable(struct cli_call *call);
int cmd_user_enable(struct cli_call *call);
int cmd_enroll_create(struct cli_call *call);
int cmd_enroll_list(struct cli_call *call);
int cmd_enroll_revoke(struct cli_call *call);
int cmd_device_list(struct cli_call *call);
int cmd_device_show(struct cli_call *call);
int cmd_device_revoke(struct cli_call *call);
int cmd_assoc_add(struct cli_call *call);
int cmd_export_csv(struct cli_call *call);
int cmd_import_csv(struct cli_call *call);
int cmd_import_ldap(struct cli_call *call);
int cmd_audit_verify(struct cli_call *call);
int cmd_audit_export(struct cli_call *call);
int cmd_rekey(struct cli_call *call);
int cmd_config_check(struct cli_call *call);
int cmd_backup(struct cli_call *call);
int cmd_migrate_store(struct cli_call *call);

#endif
