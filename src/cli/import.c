#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/ldap_escrow.h"
#include "cli/cli.h"
#include "core/audit.h"
#include "core/import.h"
#include "core/keyfile.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/timeutil.h"

const char usage_import[] =
	"usage: keywarden import csv FILE [--format keywarden|mbam] [--skip-invalid]\n"
	"       keywarden import ldap [--skip-invalid]\n"
	"\n"
	"Imports recovery keys from a CSV file (- reads standard input):\n"
	"  --format keywarden  (default) the columns of `export csv`:\n"
	"      device_id, device_name, volume_id, key_id, recovery_password\n"
	"      (required), domain, mount, state, created_at, disclosed_at, users\n"
	"  --format mbam       an MBAM export: RecoveryKeyId, RecoveryKey, VolumeId,\n"
	"      MachineName (or ComputerName) required; DomainName, LastUpdateTime,\n"
	"      UserName (users separated by ';') optional; other columns ignored\n"
	"  --skip-invalid      store the valid rows when some are not\n"
	"Every row is checked first; by default a file with any invalid row stores\n"
	"nothing. The file is stored in one transaction with its audit record.\n"
	"Keys already stored with the same password are skipped, so running an\n"
	"import again adds nothing twice. Imported devices have no device secret:\n"
	"a computer that registers later becomes a new device.\n"
	"\n"
	"import ldap reads the keys Windows escrowed to Active Directory: every\n"
	"msFVE-RecoveryInformation object under [ldap] base_dn and the computer it\n"
	"is under, with [ldap]'s service account. Invalid objects are named by DN;\n"
	"--skip-invalid stores the others. Safe to run on a timer.\n";

enum { OPT_FORMAT = 'f', OPT_SKIP_INVALID = 's' };

const struct option opts_import_ldap[] = {
	{ "skip-invalid", no_argument, NULL, OPT_SKIP_INVALID },
	{ NULL, 0, NULL, 0 },
};

const struct option opts_import_csv[] = {
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "skip-invalid", no_argument, NULL, OPT_SKIP_INVALID },
	{ NULL, 0, NULL, 0 },
};

struct import_args {
	enum import_format format;
};
_Static_assert(sizeof(struct import_args) <= CLI_ARGS_MAX, "see struct cli_call");

int check_import_csv(struct cli_call *call)
{
	struct import_args *a = (struct import_args *)call->args;
	const char *f = cli_opt(call, OPT_FORMAT);

	a->format = IMPORT_KEYWARDEN;
	if (f && import_format_parse(f, &a->format) < 0)
		return cli_error("--format %s: use keywarden or mbam", f);
	return 0;
}

/* The whole of path ("-": standard input) into b, at most IMPORT_FILE_MAX
 * bytes. Prints why on failure. */
static int read_all(const char *path, struct buf *b)
{
	char chunk[65536];
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	int rc = 0;

	if (fd < 0)
		return cli_error("cannot open %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cli_error("cannot read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (buf_append(b, chunk, (size_t)n) < 0) {
			rc = cli_error("%s is larger than %u MiB: split it", path,
				       IMPORT_FILE_MAX >> 20);
			break;
		}
	}
	sodium_memzero(chunk, sizeof(chunk));
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

/* What an import stored, on standard output; what it skipped, on standard
 * error. */
static void print_done(const struct import_report *rep, const char *from, const char *what)
{
	printf("%zu keys imported from %s: %zu devices and %zu associations added, "
	       "%zu keys already present\n", rep->keys_added, from, rep->devices_added,
	       rep->assocs_added, rep->keys_present);
	if (rep->invalid)
		fprintf(stderr, "keywarden: %zu invalid %s skipped\n", rep->invalid, what);
}

int cmd_import_csv(struct cli_call *call)
{
	const struct import_args *a = (const struct import_args *)call->args;
	const char *path = call->argv[0], *base;
	char actor[CLI_ACTOR_MAX], dest[PATH_MAX];
	struct import_request req;
	struct import_report rep;
	struct buf data;
	int rc;

	memset(&rep, 0, sizeof(rep));
	buf_init(&data, IMPORT_FILE_MAX);
	if ((rc = read_all(path, &data)) != 0)
		goto out;
	if (!strcmp(path, "-")) {
		snprintf(dest, sizeof(dest), "standard input");
		base = "stdin";
	} else {
		if (!realpath(path, dest))
			snprintf(dest, sizeof(dest), "%s", path);
		base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	}
	cli_actor(actor, sizeof(actor));
	memset(&req, 0, sizeof(req));
	req.format = a->format;
	req.data = data.data ? data.data : "";
	req.len = data.len;
	req.name = base;
	req.dest = dest;
	req.skip_invalid = cli_has_opt(call, OPT_SKIP_INVALID);
	req.source = AUDIT_CLI;
	req.actor = actor;
	req.now = time_now();
	rc = import_csv(call->store, call->key->seal, &req, &rep);

	for (size_t i = 0; i < rep.nerrors; i++) {
		if (rep.errors[i].line)
			fprintf(stderr, "keywarden: %s:%zu: %s\n", path, rep.errors[i].line,
				rep.errors[i].why);
		else
			fprintf(stderr, "keywarden: %s: %s\n", path, rep.errors[i].why);
	}
	if (rep.nerrors == IMPORT_ERRORS_MAX)
		fprintf(stderr, "keywarden: %s: only the first %d errors are shown\n", path,
			IMPORT_ERRORS_MAX);
	if (rep.ignored[0])
		fprintf(stderr, "keywarden: %s: columns not used: %s\n", path, rep.ignored);
	if (rc == KW_ERR_INVALID && rep.rows) {
		rc = cli_error("nothing imported: %zu of %zu rows are invalid "
			       "(--skip-invalid stores the valid ones)", rep.invalid, rep.rows);
		goto out;
	}
	if (rc == KW_ERR_INVALID || rc == KW_ERR_TOO_LARGE) {
		rc = cli_error("nothing imported");
		goto out;
	}
	if (rc < 0) {
		rc = cli_error("nothing imported: %s", kw_strerror(rc));
		goto out;
	}
	if (!rep.rows) {
		printf("%s holds no rows: nothing imported\n", path);
		rc = 0;
		goto out;
	}
	print_done(&rep, path, "rows");
	rc = 0;
out:
	import_report_free(&rep);
	buf_wipe_free(&data);
	return rc;
}

int cmd_import_ldap(struct cli_call *call)
{
	const struct config *cfg = &call->cli->cfg;
	char actor[CLI_ACTOR_MAX], dest[1024], name[IMPORT_NAME_MAX + 1], why[512];
	struct import_item *items = NULL;
	struct import_request req;
	struct import_report rep;
	struct ldap_escrow x;
	int rc;

	memset(&rep, 0, sizeof(rep));
	memset(&x, 0, sizeof(x));
	why[0] = '\0';
	if ((rc = ldap_escrow_read(cfg, &x, why, sizeof(why))) < 0) {
		rc = cli_error("nothing imported: %s", why);
		goto out;
	}
	if (x.n && !(items = calloc(x.n, sizeof(*items)))) {
		rc = cli_error("nothing imported: %s", kw_strerror(KW_ERR_NOMEM));
		goto out;
	}
	for (size_t i = 0; i < x.n; i++) {
		const struct ldap_escrow_entry *e = &x.e[i];

		items[i].device_id = e->device_id;
		items[i].device_name = e->computer;
		items[i].domain = cfg->ldap.netbios_domain;
		items[i].volume_id = e->volume_id;
		items[i].key_id = e->key_id;
		items[i].recovery_password = e->password;
		items[i].created_at = e->created;
		items[i].invalid = e->invalid[0] ? e->invalid : NULL;
	}
	/* The origin names the directory by its first URI. */
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(cfg->ldap.uri, " ,"), cfg->ldap.uri);
	snprintf(dest, sizeof(dest), "%s (%s)", name, cfg->ldap.base_dn);
	cli_actor(actor, sizeof(actor));
	memset(&req, 0, sizeof(req));
	req.format = IMPORT_LDAP;
	req.data = "";
	req.name = name;
	req.dest = dest;
	req.skip_invalid = cli_has_opt(call, OPT_SKIP_INVALID);
	req.source = AUDIT_CLI;
	req.actor = actor;
	req.now = time_now();
	req.labels[0] = "the computer's name";
	req.labels[1] = "[ldap] netbios_domain";
	req.labels[2] = "msFVE-VolumeGuid";
	req.labels[3] = "msFVE-RecoveryGuid";
	req.labels[4] = "msFVE-RecoveryPassword";
	req.labels[5] = "whenCreated";
	req.labels[6] = "the computer's objectGUID";
	rc = import_items(call->store, call->key->seal, &req, items, x.n, &rep);

	for (size_t i = 0; i < rep.nerrors; i++) {
		size_t at = rep.errors[i].line;

		if (at && at <= x.n)
			fprintf(stderr, "keywarden: %s: %s\n", x.e[at - 1].dn, rep.errors[i].why);
		else
			fprintf(stderr, "keywarden: %s\n", rep.errors[i].why);
	}
	if (rep.nerrors == IMPORT_ERRORS_MAX)
		fprintf(stderr, "keywarden: only the first %d errors are shown\n",
			IMPORT_ERRORS_MAX);
	if (rc == KW_ERR_INVALID && rep.rows) {
		rc = cli_error("nothing imported: %zu of %zu recovery objects are invalid "
			       "(--skip-invalid stores the valid ones)", rep.invalid, rep.rows);
		goto out;
	}
	if (rc < 0) {
		rc = cli_error("nothing imported: %s", kw_strerror(rc));
		goto out;
	}
	if (!rep.rows) {
		printf("%s holds no recovery objects under %s: nothing imported\n", name,
		       cfg->ldap.base_dn);
		rc = 0;
		goto out;
	}
	print_done(&rep, dest, "recovery objects");
	rc = 0;
out:
	free(items);
	import_report_free(&rep);
	ldap_escrow_free(&x);
	return rc;
}
