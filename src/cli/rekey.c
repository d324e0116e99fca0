#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "core/keyfile.h"

const char usage_rekey[] =
	"usage: keywarden rekey\n"
	"\n"
	"Makes a new master key and re-encrypts every recovery password under it in\n"
	"one transaction, recorded in the audit trail. The current key is kept as\n"
	"KEY_FILE.old.FINGERPRINT (for database backups taken before the rekey); the\n"
	"new one is written to KEY_FILE.new and becomes KEY_FILE after the\n"
	"transaction. If rekey is interrupted, every keywarden command still finds\n"
	"the key the database uses, and the next one finishes the switch; rekey run\n"
	"again finishes it too. Stop the server first, and back up the new key file.\n";

int cmd_rekey(struct cli_call *call)
{
	const char *key_file = call->cli->cfg.key_file;
	char actor[CLI_ACTOR_MAX], msg[1024];
	struct keyfile_rekey_result res;
	struct audit_rec who;

	if (call->key->how == KEYFILE_FINISHED) {
		/* That rekey made a new key already; another one is a new run. */
		printf("the database uses master key %s in %s; run rekey again for another "
		       "new key\n", call->key->fingerprint, key_file);
		return 0;
	}
	if (call->key->how == KEYFILE_PENDING)
		return 1;   /* the note, printed already, says why */
	cli_actor(actor, sizeof(actor));
	memset(&who, 0, sizeof(who));
	who.source = AUDIT_CLI;
	who.actor = actor;
	if (keyfile_rekey(call->store, key_file, call->key, &who, &res, msg, sizeof(msg)) < 0)
		return cli_error("%s", msg);
	printf("%zu keys re-encrypted; master key %s replaced by %s in %s%s\n"
	       "the previous key is kept in %s for database backups made before now\n",
	       res.keys, res.old_fp, res.new_fp, key_file,
	       res.reused ? " (made by an earlier rekey that had not committed)" : "",
	       res.retired);
	return 0;
}
