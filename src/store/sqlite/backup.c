/* store_backup for SQLite: SQLite's online backup API from a read
 * connection of its own, into a new file beside the target that takes the
 * target's name only once it is complete and on disk. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite/internal.h"
#include "util/err.h"

/* Pages copied a step (4 MiB of 2 KiB pages): between steps the copy looks
 * for a signal. A step holds no lock the server waits for: in WAL mode a
 * reader never blocks the writer. */
#define BACKUP_STEP_PAGES 2048
#define BACKUP_SUFFIX ".XXXXXX"
/* A step the server's checkpoint or another connection holds off (BUSY,
 * LOCKED) is tried again after a pause, at most this many times in a row:
 * about 10 s without progress, then the copy fails. */
#define BACKUP_RETRY_MS 50
#define BACKUP_RETRIES 200

/* SIGINT or SIGTERM pending for this thread (blocked by the caller). */
static bool stop_pending(void)
{
	sigset_t set;

	if (sigpending(&set) != 0)
		return false;
	return sigismember(&set, SIGINT) == 1 || sigismember(&set, SIGTERM) == 1;
}

static int sync_path(const char *path, bool dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (fsync(fd) != 0)
		rc = -1;
	close(fd);
	return rc;
}

/* Copies the database into dst (an empty file's connection) from src,
 * whose read transaction is open: every step sees the same snapshot. */
static int copy(sqlite3 *src, sqlite3 *dst, char *msg, size_t msglen)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int rc, busy = 0;

	if (!b) {
		snprintf(msg, msglen, "cannot start the copy: %s", sqlite3_errmsg(dst));
		return KW_ERR_IO;
	}
	do {
		if (stop_pending()) {
			sqlite3_backup_finish(b);
			snprintf(msg, msglen, "interrupted");
			return KW_ERR_UNAVAILABLE;
		}
		rc = sqlite3_backup_step(b, BACKUP_STEP_PAGES);
		if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
			if (++busy > BACKUP_RETRIES)
				break;
			sqlite3_sleep(BACKUP_RETRY_MS);
		} else {
			busy = 0;
		}
	} while (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		snprintf(msg, msglen, "the copy failed: %s", sqlite3_errstr(rc));
		return KW_ERR_IO;
	}
	return 0;
}

int sq_backup(struct store *s, const char *file, char *msg, size_t msglen)
{
	char *dir_copy = strdup(file), *tmp = NULL, *err = NULL;
	const char *dir;
	struct conn *src = NULL;
	sqlite3 *dst = NULL;
	struct stat st;
	size_t n;
	int fd, rc = KW_ERR_NOMEM;
	bool made = false;

	if (!dir_copy)
		goto out;
	dir = dirname(dir_copy);
	n = strlen(file) + sizeof(BACKUP_SUFFIX);
	if (!(tmp = malloc(n)))
		goto out;
	rc = KW_ERR_EXISTS;
	if (lstat(file, &st) == 0) {
		snprintf(msg, msglen, "%s exists: a backup never replaces a file", file);
		goto out;
	}
	rc = KW_ERR_IO;
	if (errno != ENOENT) {
		snprintf(msg, msglen, "%s: %s", file, strerror(errno));
		goto out;
	}
	/* Beside the target, so that the rename stays in one file system;
	 * mode 0600 (mkstemp): the database holds the sealed keys. */
	snprintf(tmp, n, "%s" BACKUP_SUFFIX, file);
	if ((fd = mkstemp(tmp)) < 0) {
		snprintf(msg, msglen, "cannot create a file in %s: %s", dir, strerror(errno));
		goto out;
	}
	close(fd);
	made = true;
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot open %s: %s", tmp,
			 dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	if ((rc = sq_conn_open(s->path, false, &src, msg, msglen)) < 0)
		goto out;
	/* One read transaction around every step: one snapshot, which the
	 * server's commits meanwhile do not change (without it the copy would
	 * start over after each of them). */
	if (sqlite3_exec(src->db, "BEGIN; SELECT count(*) FROM sqlite_schema;", NULL, NULL,
			 &err) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot read %s: %s", s->path, err ? err : "");
		rc = KW_ERR_IO;
		goto out;
	}
	if ((rc = copy(src->db, dst, msg, msglen)) < 0)
		goto out;
	rc = KW_ERR_IO;
	if (sqlite3_close(dst) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot write %s: %s", tmp, sqlite3_errmsg(dst));
		goto out;
	}
	dst = NULL;
	/* On disk before it has its name, and the name on disk after; link
	 * rather than rename: it fails if file appeared meanwhile. */
	if (sync_path(tmp, false) != 0) {
		snprintf(msg, msglen, "cannot sync %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (stop_pending()) {
		snprintf(msg, msglen, "interrupted");
		rc = KW_ERR_UNAVAILABLE;
		goto out;
	}
	if (link(tmp, file) != 0) {
		if (errno == EEXIST) {
			rc = KW_ERR_EXISTS;
			snprintf(msg, msglen, "%s exists: a backup never replaces a file", file);
		} else {
			snprintf(msg, msglen, "cannot name the backup %s: %s", file,
				 strerror(errno));
		}
		goto out;
	}
	/* The temporary name goes before the directory's sync: a power loss
	 * after it cannot bring back a second full copy of the sealed keys. */
	unlink(tmp);
	made = false;
	if (sync_path(dir, true) != 0) {
		snprintf(msg, msglen, "cannot sync the directory %s: %s", dir, strerror(errno));
		unlink(file);
		goto out;
	}
	rc = 0;
out:
	sqlite3_free(err);
	sqlite3_close(dst);   /* NULL: nothing */
	sq_conn_close(src);
	if (made)
		unlink(tmp);
	if (rc == KW_ERR_NOMEM)
		snprintf(msg, msglen, "out of memory");
	free(tmp);
	free(dir_copy);
	return rc;
}
