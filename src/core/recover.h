/* Recovery (SPEC §3.4-3.6, §4): one run of a request for a recovery key,
 * from any source (self-service, help desk, API): the input checked, the
 * failure limits taken, the key looked up among the keys the request may
 * reach, the outcome recorded in the audit trail and the key disclosed.
 *
 * Every outcome is recorded. The record of a disclosure is committed in the
 * same transaction that flags the key for rotation, before the password is
 * decrypted for the caller: when the record cannot be written, nothing is
 * disclosed (fail closed). The caller only renders the outcome: codes and
 * arguments, never sentences. */
#ifndef KW_CORE_RECOVER_H
#define KW_CORE_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/identity.h"
#include "core/keyid.h"
#include "core/recpw.h"

struct store;
struct seal;
struct limiter;

enum recover_outcome {
	RECOVER_DISCLOSED,
	RECOVER_AMBIGUOUS,      /* several keys the request may reach match */
	RECOVER_NOT_FOUND,      /* none (no such key, or not the user's) */
	RECOVER_INVALID,        /* the input was refused: see recover_result.invalid */
	RECOVER_RATE_LIMITED,   /* too many failed lookups: retry_after */
};

/* What was wrong with the input (RECOVER_INVALID); several may be. */
struct recover_invalid {
	struct keyid_error key;  /* problem KEYID_OK: the key ID was fine */
	bool key_is_password;    /* a recovery password typed as the key ID:
				  * never shown or recorded again */
	bool reason;             /* missing, or not a reason of this source */
	bool comment;            /* reason "other" without a comment, or a
				  * comment too long */
	bool end_user;           /* required and missing, or not a user name;
				  * from the help desk, a name that is not
				  * DOMAIN\user or user@domain */
};

#define RECOVER_COMMENT_MAX 500
#define RECOVER_CHOICES_MAX 20   /* matching keys listed on ambiguity */

struct recover_request {
	const char *source;              /* AUDIT_SELF_SERVICE, AUDIT_HELPDESK, AUDIT_API */
	/* Whose devices' keys may be given: NULL = any key (a help-desk
	 * administrator). */
	const struct identity *entitled;
	bool end_user_required;          /* the help desk names the user */
	/* Also keys no longer on their volume (removed, superseded): the
	 * help desk, for backups (SPEC §5). Else only active and disclosed. */
	bool any_state;
	const char *key_text;            /* the key ID as typed (may be NULL) */
	const char *reason;              /* a reason code of the source (may be NULL) */
	const char *comment;             /* NULL or "" = none */
	const char *actor;               /* who asks */
	const char *end_user;            /* for whom ("" = no one named); from
					  * the help desk DOMAIN\user or a UPN */
	const char *client;              /* client address */
	int64_t now;
	/* Failed-lookup limits (NULL = none): keyed by actor and by client. */
	struct limiter *per_user;
	struct limiter *per_address;
	/* How many matching keys an ambiguous answer lists (0: none, only
	 * that there are several; at most RECOVER_CHOICES_MAX). */
	size_t list_choices;
};

/* Where a key was when it was found. */
enum recover_key_was {
	RECOVER_KEY_ON_VOLUME,    /* active or disclosed: the device rotates it */
	RECOVER_KEY_REMOVED,      /* gone from its volume at the last check-in;
				   * now disclosed: rotated if it comes back */
	RECOVER_KEY_SUPERSEDED,   /* rotated away already; stays superseded */
};

struct recover_choice {
	char key_id[KEYID_CANON_LEN + 1];
	char computer[256];
	enum recover_key_was was;
};

struct recover_result {
	enum recover_outcome outcome;
	struct recover_invalid invalid;       /* RECOVER_INVALID */
	int64_t retry_after;                  /* RECOVER_RATE_LIMITED: seconds */
	char key_id[KEYID_CANON_LEN + 1];     /* RECOVER_DISCLOSED */
	char device_id[KEYID_CANON_LEN + 1];
	char computer[256];
	enum recover_key_was was;             /* where the key was */
	char password[RECPW_CANON_LEN + 1];   /* only when disclosed; wipe after use */
	struct recover_choice choices[RECOVER_CHOICES_MAX];  /* RECOVER_AMBIGUOUS */
	size_t nchoices;
	bool choices_more;                    /* more keys match than are listed */
	int64_t audit_seq;                    /* the record of this outcome */
};

/* Runs the request and records its outcome. Returns 0 with res filled (wipe
 * res after use: it may hold a password), or an error when the outcome
 * could not be recorded (store, crypto): then nothing was disclosed, and the
 * caller answers that the request could not be recorded. Only a lookup that
 * finds nothing counts against the limits. */
int recover_run(struct store *s, const struct seal *k, const struct recover_request *req,
		struct recover_result *res);

/* Is code a reason a request from source may give? Self-service: the three
 * of SPEC §3; help desk and API: the nine of §4. */
bool recover_reason_valid(const char *source, const char *code);

/* What the audit record of an outcome other than a disclosure keeps of the
 * key ID as typed (out: KEYID_INPUT_MAX + 1 bytes): the prefix when valid
 * (prefix_hex, "" when not), else the text as typed (printable ASCII, at
 * most 64 bytes) — but never anything that may hold a recovery password
 * (typed into the wrong field: recpw_may_contain, or invalid text with 12
 * or more digits): then only a note of its length. */
void recover_key_text(const char *typed, const char *prefix_hex, char *out, size_t outlen);

/* Recovery outcomes counted by source and result since start, for
 * /metrics: the i-th counter (false past the last). */
bool recover_counter(size_t i, const char **source, const char **result, uint64_t *n);

#endif
