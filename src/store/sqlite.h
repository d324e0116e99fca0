/* The SQLite backend of the store (store.h). */
#ifndef KW_STORE_SQLITE_H
#define KW_STORE_SQLITE_H

struct store_ops;

const struct store_ops *store_sqlite_ops(void);

#endif
