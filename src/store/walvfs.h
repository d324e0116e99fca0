#ifndef KW_STORE_WALVFS_H
#define KW_STORE_WALVFS_H

/* Registers (once; not thread-safe) the SQLite VFS that gathers
 * write-ahead-log writes into one system call per commit, and returns its
 * name, or NULL if it could not be registered (use the default VFS). */
const char *walvfs_register(void);

#endif
