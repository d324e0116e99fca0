/* Copying a whole site from one store to another (keywarden migrate-store):
 * SQLite to PostgreSQL, or any pair the store supports. */
#ifndef KW_STORE_COPY_H
#define KW_STORE_COPY_H

#include <stddef.h>

#include "store/store.h"

/* Records read and written per page: what the copy holds in memory at
 * once, whatever the size of the site. */
#define STORE_COPY_PAGE 500

/* Copies every record of from into to, which must hold no record (a
 * freshly migrated schema): meta values (the master key ID, the audit
 * chain's head), users with their password hashes, enrollment tokens,
 * devices with their secret hashes, volumes, keys as they are sealed (rows
 * kept: a key's associated data, its ID and its device's, is unchanged),
 * logons, associations and the audit trail verbatim. Sessions and
 * rate-limit events are not copied (everyone signs in again; limits start
 * afresh).
 *
 * from is read in one snapshot (store_read_once), to is written in one
 * transaction (store_write), a page at a time in between: an interrupted
 * copy leaves to as it was, empty, and can be run again. Before the commit
 * the counts of every kind copied are compared; *copied gets them.
 *
 * 0, or: KW_ERR_EXISTS when to holds records (nothing written);
 * KW_ERR_CONFLICT when the counts differ (nothing written); a store error.
 * msg says why. */
/* 0 when s holds a site (keywarden init recorded its master key ID);
 * KW_ERR_NOT_FOUND when it does not, or a store error; msg says which. */
int store_copy_source(struct store *s, char *msg, size_t msglen);

int store_copy(struct store *from, struct store *to, struct store_counts *copied,
	       char *msg, size_t msglen);

#endif
