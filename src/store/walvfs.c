/* A thin SQLite VFS over the default one that gathers the writes to a
 * write-ahead log and hands them to the kernel in one pwrite.
 *
 * SQLite writes each log frame as two writes (a 24-byte header, then the
 * page), so a commit of 80 pages costs 160 system calls, each paying the
 * file system's per-call and per-page bookkeeping. Here writes that extend
 * the one before are copied into a buffer, and the buffer is written before
 * anything that could observe the file: a read, a sync, a size query, a
 * truncation, a file control, a write elsewhere, the close.
 *
 * Why this is safe: a commit becomes visible to other connections when
 * SQLite updates the wal-index, and with synchronous=FULL (which every
 * keywarden connection sets) it syncs the log first, so every frame of a
 * commit is in the file before anyone can look for it. Frames still in the
 * buffer belong to a transaction that has not committed; losing them in a
 * crash loses nothing acknowledged, exactly as losing unsynced page cache
 * would. Only log files are buffered; the database file and the wal-index
 * pass straight through. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/walvfs.h"

#define WALVFS_NAME "keywarden-wal"
#define BUF_CAP (512 * 1024)
#define WRITE_MAX (64 * 1024)

struct wfile {
	sqlite3_file base;
	bool wal;               /* a write-ahead log: writes are gathered */
	unsigned char *buf;     /* allocated at the first write */
	sqlite3_int64 off;      /* file offset of buf[0] */
	size_t len;
	/* Deferred syncs (walvfs_defer): the log's own descriptor, for
	 * fdatasync from another thread. synced_once: a real sync has made the
	 * file's directory entry and its current header durable. */
	const char *name;       /* valid until xClose (SQLite's promise) */
	int sync_fd;            /* opened at the first walvfs_defer */
	bool synced_once;
	bool defer;
	atomic_bool owed;
	int failed;             /* a flush failed: every later call fails */
	atomic_bool sync_failed; /* a sync of this file failed (walvfs_sync_failed) */
	unsigned long real_syncs;
	sqlite3_file *real;     /* the default VFS's file, right after us */
};

static sqlite3_vfs *real_vfs;
static int (*write_hook)(void);
/* The errno of this thread's last failed call (walvfs_errno): the default
 * VFS reads errno itself, long after the failure, when other calls have
 * changed it. */
static _Thread_local int last_errno;

static int saw(int rc)
{
	if (rc != SQLITE_OK)
		last_errno = errno;
	return rc;
}

/* A failed flush loses frames SQLite believes written (perhaps of a job
 * whose transaction goes on, if SQLite took the error for a passing one):
 * the file fails from then on, so that no commit after the hole can
 * succeed, until walvfs_rolled_back says that transaction is gone. */
static int flush(struct wfile *f)
{
	int rc = f->failed, e;

	if (rc == SQLITE_OK && f->len && write_hook && (e = write_hook()) != 0) {
		last_errno = e;
		rc = e == ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
	}
	/* In pieces: the unix VFS masks a write's length to 17 bits. */
	for (size_t done = 0; done < f->len && rc == SQLITE_OK; done += WRITE_MAX) {
		size_t n = f->len - done < WRITE_MAX ? f->len - done : WRITE_MAX;

		rc = saw(f->real->pMethods->xWrite(f->real, f->buf + done, (int)n,
						   f->off + (sqlite3_int64)done));
	}
	f->len = 0;
	if (rc != SQLITE_OK)
		f->failed = rc;
	return rc;
}

static int w_close(sqlite3_file *file)
{
	struct wfile *f = (struct wfile *)file;
	int rc = flush(f), rc2;

	free(f->buf);
	f->buf = NULL;
	if (f->sync_fd >= 0)
		close(f->sync_fd);
	f->sync_fd = -1;
	rc2 = f->real->pMethods->xClose(f->real);
	return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *file, void *p, int amt, sqlite3_int64 off)
{
	struct wfile *f = (struct wfile *)file;
	int rc = flush(f);

	return rc != SQLITE_OK ? rc : saw(f->real->pMethods->xRead(f->real, p, amt, off));
}

static int w_write(sqlite3_file *file, const void *p, int amt, sqlite3_int64 off)
{
	struct wfile *f = (struct wfile *)file;
	int rc;

	if (!f->wal)
		return saw(f->real->pMethods->xWrite(f->real, p, amt, off));
	if (f->failed)
		return f->failed;
	/* The log's header, written when the log starts over: SQLite syncs it
	 * before the frames after it may be written (an old header beside new
	 * frames could replay old frames over newer pages), so that sync is
	 * never deferred. */
	if (off == 0)
		f->synced_once = false;
	if (f->len && (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)amt > BUF_CAP) &&
	    (rc = flush(f)) != SQLITE_OK)
		return rc;
	if ((size_t)amt > WRITE_MAX)
		return saw(f->real->pMethods->xWrite(f->real, p, amt, off));
	if (!f->buf && !(f->buf = malloc(BUF_CAP)))
		return saw(f->real->pMethods->xWrite(f->real, p, amt, off));
	if (!f->len)
		f->off = off;
	memcpy(f->buf + f->len, p, (size_t)amt);
	f->len += (size_t)amt;
	return SQLITE_OK;
}

static int w_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct wfile *f = (struct wfile *)file;
	int rc = flush(f);

	return rc != SQLITE_OK ? rc : saw(f->real->pMethods->xTruncate(f->real, size));
}

static int w_sync(sqlite3_file *file, int flags)
{
	struct wfile *f = (struct wfile *)file;
	int rc = flush(f);

	if (rc != SQLITE_OK)
		return rc;
	if (f->defer && f->synced_once) {
		atomic_store(&f->owed, true);
		return SQLITE_OK;
	}
	if ((rc = saw(f->real->pMethods->xSync(f->real, flags))) == SQLITE_OK)
		f->synced_once = true;
	else
		atomic_store(&f->sync_failed, true);
	f->real_syncs++;
	return rc;
}

static int w_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct wfile *f = (struct wfile *)file;
	int rc = flush(f);

	return rc != SQLITE_OK ? rc : saw(f->real->pMethods->xFileSize(f->real, size));
}

static int w_lock(sqlite3_file *file, int lock)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xLock(f->real, lock);
}

static int w_unlock(sqlite3_file *file, int lock)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xUnlock(f->real, lock);
}

static int w_check_reserved(sqlite3_file *file, int *out)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int w_file_control(sqlite3_file *file, int op, void *arg)
{
	struct wfile *f = (struct wfile *)file;
	int rc = flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int w_sector_size(sqlite3_file *file)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int w_device_characteristics(sqlite3_file *file)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int w_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	struct wfile *f = (struct wfile *)file;

	return saw(f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp));
}

static int w_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void w_shm_barrier(sqlite3_file *file)
{
	struct wfile *f = (struct wfile *)file;

	f->real->pMethods->xShmBarrier(f->real);
}

static int w_shm_unmap(sqlite3_file *file, int del)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xShmUnmap(f->real, del);
}

static int w_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **pp)
{
	struct wfile *f = (struct wfile *)file;
	int rc = flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, amt, pp);
}

static int w_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	struct wfile *f = (struct wfile *)file;

	return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods w_methods = {
	.iVersion = 3,
	.xClose = w_close,
	.xRead = w_read,
	.xWrite = w_write,
	.xTruncate = w_truncate,
	.xSync = w_sync,
	.xFileSize = w_file_size,
	.xLock = w_lock,
	.xUnlock = w_unlock,
	.xCheckReservedLock = w_check_reserved,
	.xFileControl = w_file_control,
	.xSectorSize = w_sector_size,
	.xDeviceCharacteristics = w_device_characteristics,
	.xShmMap = w_shm_map,
	.xShmLock = w_shm_lock,
	.xShmBarrier = w_shm_barrier,
	.xShmUnmap = w_shm_unmap,
	.xFetch = w_fetch,
	.xUnfetch = w_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
		  int *out_flags)
{
	struct wfile *f = (struct wfile *)file;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->sync_fd = -1;
	f->real = (sqlite3_file *)(f + 1);
	rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		if (f->real->pMethods)
			f->real->pMethods->xClose(f->real);
		return rc;
	}
	/* The wrapper's methods must not claim more than the real file has. */
	if (f->real->pMethods->iVersion < 3) {
		f->real->pMethods->xClose(f->real);
		return SQLITE_CANTOPEN;
	}
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->name = name;
	f->base.pMethods = &w_methods;
	return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int v_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return last_errno ? last_errno : real_vfs->xGetLastError(real_vfs, n, out);
}

static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs walvfs = {
	.iVersion = 2,
	.zName = WALVFS_NAME,
	.xOpen = v_open,
	.xDelete = v_delete,
	.xAccess = v_access,
	.xFullPathname = v_full_pathname,
	.xRandomness = v_randomness,
	.xSleep = v_sleep,
	.xCurrentTime = v_current_time,
	.xGetLastError = v_last_error,
	.xCurrentTimeInt64 = v_current_time64,
	/* xDlOpen and friends stay NULL: keywarden loads no extensions. */
};

/* ---- deferred syncs ---- */

/* The file behind a file control of db's main database, if it is ours. */
static struct wfile *db_file(sqlite3 *db, int op)
{
	sqlite3_file *file = NULL;

	if (sqlite3_file_control(db, "main", op, &file) != SQLITE_OK || !file ||
	    file->pMethods != &w_methods)
		return NULL;
	return (struct wfile *)file;
}

struct walvfs_log *walvfs_log(sqlite3 *db)
{
	struct wfile *f = db_file(db, SQLITE_FCNTL_JOURNAL_POINTER);

	return f && f->wal ? (struct walvfs_log *)f : NULL;
}

bool walvfs_defer(struct walvfs_log *log, bool on)
{
	struct wfile *f = (struct wfile *)log;

	if (on && f->wal && f->sync_fd < 0 && f->name)
		f->sync_fd = open(f->name, O_RDWR | O_CLOEXEC);
	f->defer = on && f->wal && f->sync_fd >= 0;
	return f->defer;
}

bool walvfs_owed(struct walvfs_log *log)
{
	return atomic_exchange(&((struct wfile *)log)->owed, false);
}

unsigned long walvfs_real_syncs(struct walvfs_log *log)
{
	return ((struct wfile *)log)->real_syncs;
}

static int (*sync_hook)(void);

void walvfs_set_sync_hook(int (*hook)(void))
{
	sync_hook = hook;
}

void walvfs_set_write_hook(int (*hook)(void))
{
	write_hook = hook;
}

int walvfs_sync(struct walvfs_log *log)
{
	struct wfile *f = (struct wfile *)log;

	if ((sync_hook && sync_hook() != 0) || fdatasync(f->sync_fd) != 0) {
		atomic_store(&f->sync_failed, true);
		return SQLITE_IOERR_FSYNC;
	}
	return SQLITE_OK;
}

int walvfs_errno(void)
{
	return last_errno;
}

void walvfs_rolled_back(struct walvfs_log *log)
{
	((struct wfile *)log)->failed = SQLITE_OK;
}

bool walvfs_sync_failed(sqlite3 *db)
{
	struct wfile *main = db_file(db, SQLITE_FCNTL_FILE_POINTER);
	struct wfile *log = db_file(db, SQLITE_FCNTL_JOURNAL_POINTER);

	return (main && atomic_load(&main->sync_failed)) ||
	       (log && atomic_load(&log->sync_failed));
}

const char *walvfs_register(void)
{
	if (!real_vfs) {
		if (!(real_vfs = sqlite3_vfs_find(NULL)) || real_vfs->iVersion < 2)
			return NULL;
		walvfs.szOsFile = (int)sizeof(struct wfile) + real_vfs->szOsFile;
		walvfs.mxPathname = real_vfs->mxPathname;
		if (sqlite3_vfs_register(&walvfs, 0) != SQLITE_OK) {
			real_vfs = NULL;
			return NULL;
		}
	}
	return WALVFS_NAME;
}
