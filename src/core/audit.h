/* The recovery audit trail (SPEC §3.5, §6): every outcome of a recovery
 * request is a record, and so is every change an administrator makes to
 * accounts and enrollment tokens; records form a hash chain so that an altered,
 * inserted or deleted record is found by audit_verify. The trail is a table,
 * not a log. */
#ifndef KW_CORE_AUDIT_H
#define KW_CORE_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include "store/store.h"

/* Sources and results as stored and reported. */
#define AUDIT_SELF_SERVICE "self_service"
#define AUDIT_HELPDESK "helpdesk"
#define AUDIT_API "api"
#define AUDIT_CLI "cli"

#define AUDIT_DISCLOSED "disclosed"
#define AUDIT_AMBIGUOUS "ambiguous"
#define AUDIT_NOT_FOUND "not_found"
#define AUDIT_INVALID "invalid"
#define AUDIT_RATE_LIMITED "rate_limited"
#define AUDIT_DENIED "denied"
#define AUDIT_EXPORTED "exported"
#define AUDIT_REKEYED "rekeyed"
#define AUDIT_ASSOCIATED "associated"   /* a user-device association added */
#define AUDIT_IMPORTED "imported"       /* keys imported (core/import.h): the
					 * comment says how many from where */

/* Changes by an administrator (core/account, core/enroll): actor the
 * administrator, end_user the account concerned, comment the roles or the
 * token's ID, expiry and uses (never a password or a token). */
#define AUDIT_USER_ADDED "user_added"
#define AUDIT_ROLES_CHANGED "roles_changed"
#define AUDIT_USER_DISABLED "user_disabled"
#define AUDIT_USER_ENABLED "user_enabled"
#define AUDIT_PASSWORD_RESET "password_reset"
#define AUDIT_TOKEN_CREATED "token_created"
#define AUDIT_TOKEN_REVOKED "token_revoked"

/* Every source and every result above, NULL-terminated: what a filter
 * (the CLI's, the audit report's) accepts. */
extern const char *const audit_sources[];
extern const char *const audit_results[];
/* v is one of list's names. */
bool audit_name_known(const char *const *list, const char *v);

/* Appends rec inside a write transaction: assigns seq (last + 1), sets
 * prev_hash and hash, inserts, and records the chain head in the store's
 * meta table. rec's seq, prev_hash and hash are written back. */
int audit_append(struct store_tx *tx, struct audit_rec *rec);

/* The hash of a record: SHA-256 over prev_hash and every field (seq, at and
 * the strings, each length-prefixed). */
void audit_hash(const struct audit_rec *rec, uint8_t out[32]);

struct audit_report {
	int64_t records;         /* records checked */
	int64_t first_bad;       /* seq of the first bad record; 0 = none */
	char problem[256];       /* what is wrong with it */
};

/* Walks the whole chain. Returns 0 when intact, KW_ERR_CONFLICT when a
 * record is altered, inserted or missing (report says which and how), or
 * a store error. */
int audit_verify(struct store *s, struct audit_report *report);

/* Writes every record matching f (NULL = all) as CSV with a header row:
 * seq,time,source,result,actor,end_user,computer,device_id,key_id,key_type,
 * reason,comment,client,hash */
int audit_export_csv(struct store *s, const struct audit_filter *f, FILE *out);

#endif
