/* The database as a whole, for the commands that manage it (SPEC §6, §9
 * `migrate`): schema migrations without opening it for use. */
#ifndef KW_CORE_DATABASE_H
#define KW_CORE_DATABASE_H

#include <stddef.h>

/* Applies the schema migrations this program has to the database named by
 * a `database =` value; *from and *to get the schema version before and
 * after (equal when it was up to date). A database newer than the program
 * is KW_ERR_SCHEMA and is left as it is. msg says why on failure. */
int database_migrate(const char *database, int *from, int *to, char *msg, size_t msglen);

#endif
