/* The PostgreSQL backend of the store (store.h). */
#ifndef KW_STORE_PGSQL_H
#define KW_STORE_PGSQL_H

struct store_ops;

const struct store_ops *store_pgsql_ops(void);

#endif
