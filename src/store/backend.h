/* What the store's backends (sqlite/, a future pgsql/) share, so that none
 * repeats it: the migration runner over embedded SQL files, the audit
 * chain's step. Not for the store's users, who include store.h. */
#ifndef KW_STORE_BACKEND_H
#define KW_STORE_BACKEND_H

#include <stddef.h>

#include "store/store.h"
#include "util/embedded.h"

/* The newest schema version among migration files named "NNNN_what.sql". */
int store_schema_latest(const struct embedded_file *files);

/* 0 when a database at location with schema version can be used by this
 * program; KW_ERR_SCHEMA with msg saying so when it is newer than files. */
int store_schema_check(const char *location, int version,
		       const struct embedded_file *files, char *msg, size_t msglen);

/* Applies one migration file's sql and records version, atomically; on
 * failure err says why. */
typedef int (*store_apply_fn)(struct store *s, const char *sql, int version,
			      char *err, size_t errlen);

/* Brings a database at version *to up to store_schema_latest(files),
 * applying each later file in order through apply; *to gets each version
 * reached. A newer database is KW_ERR_SCHEMA, a missing file
 * KW_ERR_INTERNAL, a failed one apply's error; msg says which. */
int store_schema_migrate(struct store *s, const char *location,
			 const struct embedded_file *files, store_apply_fn apply, int *to,
			 char *msg, size_t msglen);

/* The meta value holding the audit chain's head: "<seq>:<64 hex digits>".
 * Without it, deleting the newest records would leave a shorter but
 * intact chain. */
#define STORE_AUDIT_HEAD "audit_head"
#define STORE_AUDIT_HEAD_LEN (20 + 1 + 64 + 1)

/* The audit chain's step, once the backend holds the chain (see
 * store_audit_append): from the newest record's seq and hash (0 and zeros
 * when there is none) and the head's meta value (NULL when unset), sets
 * rec->seq and rec->prev_hash, hashes rec and writes the new head's value
 * to head. KW_ERR_TOO_LARGE when seq would overflow. The backend then
 * inserts rec and sets the head. */
int store_audit_chain(int64_t last_seq, const uint8_t last_hash[32], const char *head_now,
		      struct audit_rec *rec, store_audit_hash_fn hash,
		      char head[STORE_AUDIT_HEAD_LEN]);

#endif
