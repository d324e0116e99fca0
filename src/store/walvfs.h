#ifndef KW_STORE_WALVFS_H
#define KW_STORE_WALVFS_H

#include <stdbool.h>

/* Registers (once; not thread-safe) the SQLite VFS that gathers
 * write-ahead-log writes into one system call per commit, and returns its
 * name, or NULL if it could not be registered (use the default VFS). */
const char *walvfs_register(void);

/* Deferred syncs, so that a writer can start its next transaction while
 * the last one's log is being synced (group commit pipelining).
 *
 * walvfs_log: the log file of connection db, or NULL (not opened yet, or
 * not on this VFS). While deferring is on, a sync of the log writes out
 * the buffer and records that a sync is owed (walvfs_owed tells and
 * forgets) instead of waiting for the disk; until the file has been
 * synced once for real (its directory entry durable), and after the log
 * starts over (its header rewritten), the next sync is real. walvfs_sync performs an owed sync with fdatasync on the log's
 * own descriptor; any thread may call it while the writer goes on.
 *
 * Whoever defers must not report a commit as durable before walvfs_sync
 * has returned SQLITE_OK after it, and must not defer across anything but
 * a COMMIT: a checkpoint's sync of the log must be real, so the caller
 * checkpoints itself (wal_autocheckpoint off) with deferring off. */
struct walvfs_log;
struct sqlite3;

struct walvfs_log *walvfs_log(struct sqlite3 *db);
bool walvfs_defer(struct walvfs_log *log, bool on);
bool walvfs_owed(struct walvfs_log *log);
int walvfs_sync(struct walvfs_log *log);

/* Failed writes. A write of the log that fails loses frames SQLite may
 * believe written, so every later call on that log fails too, and no
 * commit after the hole can succeed. Once the transaction that was open
 * then has been rolled back (the connection is in autocommit mode again),
 * its frames are referenced nowhere: walvfs_rolled_back(log) lets the log
 * work again. Call it only from the connection's own thread. */
void walvfs_rolled_back(struct walvfs_log *log);

/* Whether a sync of connection db's database file or log has failed since
 * they were opened (SQLite's own syncs or walvfs_sync). After a failed
 * fsync the kernel may have dropped the data it could not write, and a
 * later sync would not say so: the caller should stop writing. */
bool walvfs_sync_failed(struct sqlite3 *db);

/* The errno of this thread's last failed read, write, sync or resize of a
 * file on this VFS, 0 if none: SQLite's sqlite3_system_errno misses some
 * (a failed COMMIT) and may hold a later call's errno. */
int walvfs_errno(void);

/* For tests: syncs SQLite asked for that were not deferred; a function
 * walvfs_sync calls first (a slow or failing disk: non-zero fails the
 * sync), NULL for none; and a function each write of buffered log frames
 * calls first (non-zero: that errno, ENOSPC or EIO, fails the write).
 * Set the hooks while no store is open. */
unsigned long walvfs_real_syncs(struct walvfs_log *log);
void walvfs_set_sync_hook(int (*hook)(void));
void walvfs_set_write_hook(int (*hook)(void));

#endif
