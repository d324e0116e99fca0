#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "core/keyfile.h"
#include "store/store.h"

static const char rekey_usage[] =
	"usage: keywarden rekey\n"
	"\n"
	"Makes a new master key and re-encrypts every recovery password under it in\n"
	"one transaction, recorded in the audit trail. The current key is kept as\n"
	"KEY_FILE.old.FINGERPRINT (for database backups taken before the rekey); the\n"
	"new one is written to KEY_FILE.new and becomes KEY_FILE after the\n"
	"transaction. If rekey is interrupted, every keywarden command still finds\n"
	"the key the database uses, and the next one finishes the switch; rekey run\n"
	"again finishes it too. Stop the server first, and back up the new key file.\n";

int cmd_rekey(struct cli *c, int argc, char **argv)
{
	char actor[CLI_ACTOR_MAX], msg[1024];
	struct keyfile kf = { .lock = -1 };
	struct keyfile_rekey_result res;
	struct audit_rec who;
	struct store *s = NULL;
	int rc = 1;

	if (cli_wants_help(argc, argv)) {
		fputs(rekey_usage, stdout);
		return 0;
	}
	if (argc != 1) {
		fputs(rekey_usage, stderr);
		return 2;
	}
	if (cli_config(c) || cli_store(c, &s) || cli_key(c, s, true, &kf))
		goto out;
	if (kf.how == KEYFILE_FINISHED) {
		/* That rekey made a new key already; another one is a new run. */
		printf("the database uses master key %s in %s; run rekey again for another "
		       "new key\n", kf.fingerprint, c->cfg.key_file);
		rc = 0;
		goto out;
	}
	if (kf.how == KEYFILE_PENDING) {
		rc = 1;   /* the note, printed already, says why */
		goto out;
	}
	cli_actor(actor, sizeof(actor));
	memset(&who, 0, sizeof(who));
	who.source = AUDIT_CLI;
	who.actor = actor;
	if (keyfile_rekey(s, c->cfg.key_file, &kf, &who, &res, msg, sizeof(msg)) < 0) {
		rc = cli_error("%s", msg);
		goto out;
	}
	printf("%zu keys re-encrypted; master key %s replaced by %s in %s%s\n"
	       "the previous key is kept in %s for database backups made before now\n",
	       res.keys, res.old_fp, res.new_fp, c->cfg.key_file,
	       res.reused ? " (made by an earlier rekey that had not committed)" : "",
	       res.retired);
	rc = 0;
out:
	keyfile_close(&kf);
	store_close(s);
	return rc;
}
