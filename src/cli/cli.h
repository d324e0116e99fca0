/* The command line (SPEC §9): `keywarden [--config FILE] COMMAND …`. Each
 * command group is one file; errors go to stderr with a non-zero exit. */
#ifndef KW_CLI_CLI_H
#define KW_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

struct store;
struct seal;
struct keyfile;

struct cli {
	const char *config_path;     /* --config, or NULL for the default */
	struct config cfg;
};

int cli_main(int argc, char **argv);

/* Loads and validates the configuration; prints the error and returns
 * non-zero on failure. */
int cli_config(struct cli *c);
/* Opens the store (applying migrations); prints the error on failure. */
int cli_store(struct cli *c, struct store **out);
/* Locks the key file and loads the key the store is sealed with, finishing
 * an interrupted rekey (core/keyfile.h); says on stderr when it found one.
 * Prints the error on failure. Release kf with keyfile_close. */
int cli_key(struct cli *c, struct store *s, bool exclusive, struct keyfile *kf);

/* The audit actor of a command: the operating-system account running it,
 * and the account that ran sudo as sudo reports it (SUDO_USER), e.g.
 * "root (sudo from alice)". out: at least CLI_ACTOR_MAX bytes. */
#define CLI_ACTOR_MAX 160
void cli_actor(char *out, size_t outlen);

/* Reads one line (a password) from standard input into out, without the
 * newline; at most outlen - 1 bytes. */
int cli_read_password(char *out, size_t outlen);

/* Adds a local account with a password; prints the error on failure. */
int cli_add_user(struct store *s, const char *name, unsigned roles, const char *pw);

/* A random password of 20 characters a person can type (out: 24 bytes). */
void cli_random_password(char out[24]);

/* True when argv holds -h or --help before any "--". */
bool cli_wants_help(int argc, char **argv);

/* Prints "keywarden: " and the message to stderr; returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a role name into its bit; 0 when unknown. */
unsigned cli_role(const char *name);
/* Writes the role names of bits into out, comma-separated. */
void cli_roles_text(unsigned roles, char *out, size_t outlen);

/* The commands: argv[0] is the command name. */
int cmd_init(struct cli *c, int argc, char **argv);
int cmd_serve(struct cli *c, int argc, char **argv);
int cmd_migrate(struct cli *c, int argc, char **argv);
int cmd_user(struct cli *c, int argc, char **argv);
int cmd_enroll(struct cli *c, int argc, char **argv);
int cmd_device(struct cli *c, int argc, char **argv);
int cmd_assoc(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_audit(struct cli *c, int argc, char **argv);
int cmd_config(struct cli *c, int argc, char **argv);
int cmd_rekey(struct cli *c, int argc, char **argv);
int cmd_demo(struct cli *c, int argc, char **argv);

/* Runs the server until SIGTERM or SIGINT (shared by serve and demo). */
int cli_serve_run(struct cli *c, const char *banner);

#endif
