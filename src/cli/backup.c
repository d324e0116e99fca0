/* keywarden backup FILE: a consistent copy of the database while the
 * server runs (store_backup). */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "cli/cli.h"
#include "store/store.h"
#include "util/err.h"

const char usage_backup[] =
	"usage: keywarden backup FILE\n"
	"\n"
	"Writes a consistent copy of the database to FILE while the server runs\n"
	"and goes on serving (SQLite; a PostgreSQL database is backed up with\n"
	"pg_dump). FILE must not exist: it is never replaced. The copy is made\n"
	"beside FILE under a temporary name with mode 0600, synced, and only\n"
	"then named FILE; a failure or an interruption (Ctrl-C, SIGTERM) leaves\n"
	"nothing behind. A signal that cannot be caught or is not handled\n"
	"(SIGKILL, SIGHUP, SIGQUIT, a power loss before the sync) can leave the\n"
	"temporary file FILE.XXXXXX: delete it (it holds the sealed keys).\n"
	"\n"
	"The key file is not in the copy: the keys in it are sealed with the\n"
	"master key, so back the key file up separately, and keep the two apart\n"
	"(README, \"Backup and restore\").\n"
	"To restore: stop keywarden, delete the database's -wal and -shm files\n"
	"and its search files (DATABASE-find, -find-wal, -find-shm),\n"
	"copy FILE to the database's path, put the key file that sealed it in\n"
	"place, start keywarden.\n";

int cmd_backup(struct cli_call *call)
{
	const char *file = call->argv[0];
	struct store *s = NULL;
	sigset_t stop;
	char msg[1024];
	bool interrupted = false;
	int rc;

	/* Blocked before the store's threads start, so that they inherit it:
	 * the copy sees a stop between its steps and cleans up (store.h),
	 * then the signal ends the process as usual. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if (cli_store(call->cli, &s) != 0) {
		rc = 1;
		goto out;
	}
	rc = store_backup(s, file, msg, sizeof(msg));
	interrupted = rc == KW_ERR_UNAVAILABLE;
	if (interrupted)
		rc = cli_error("backup interrupted: nothing was written");
	else if (rc < 0)
		rc = cli_error("backup failed: %s", msg);
	else
		printf("database copied to %s; the key file (%s) is not in it: back it up "
		       "separately\n", file, call->cli->cfg.key_file);
out:
	store_close(s);
	if (!interrupted) {
		/* A stop that came after the copy's last look: the backup is
		 * made (or failed) and said so; the signal is taken here, and
		 * the two stay blocked until the process exits just after (a
		 * later one stays pending): never killed after a success. */
		const struct timespec now = { 0, 0 };

		while (sigtimedwait(&stop, NULL, &now) > 0)
			;
		return rc;
	}
	/* Interrupted: the signal, still pending, ends the process now (even
	 * one blocked before keywarden started). */
	pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
	return rc;
}
