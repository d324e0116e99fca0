/* Recovery: finding the key a person asks for among the keys they are
 * entitled to, recording the outcome in the audit trail, and disclosing it
 * (SPEC §3.4-3.6, §4). The audit record of a disclosure is committed in the
 * same transaction that flags the key for rotation, before the password is
 * decrypted for the caller: when the record cannot be written, nothing is
 * disclosed (fail closed). */
#ifndef KW_CORE_RECOVER_H
#define KW_CORE_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/identity.h"
#include "core/keyid.h"
#include "core/recpw.h"

struct store;
struct seal;

enum recover_outcome {
	RECOVER_DISCLOSED,
	RECOVER_AMBIGUOUS,      /* several entitled keys start with the prefix */
	RECOVER_NOT_FOUND,      /* none (no such key, or not the user's) */
};

struct recover_request {
	const struct identity *entitled; /* whose keys; NULL = any key (help desk) */
	const char *typed;               /* the key ID as entered */
	char prefix[KEYID_HEX_LEN + 1];  /* its upper-case hex digits; "" when invalid */
	const char *source;              /* AUDIT_SELF_SERVICE, AUDIT_HELPDESK */
	const char *actor;               /* who asks */
	const char *end_user;            /* for whom */
	const char *reason;
	const char *comment;
	const char *client;
	int64_t now;
};

struct recover_result {
	enum recover_outcome outcome;
	char key_id[KEYID_CANON_LEN + 1];
	char device_id[KEYID_CANON_LEN + 1];
	char computer[256];
	char password[RECPW_CANON_LEN + 1];   /* only when disclosed; wipe after use */
	int64_t audit_seq;
};

/* Looks the prefix up and records the outcome. Returns 0 with res filled,
 * or an error (store, crypto): then nothing was disclosed or recorded. */
int recover_key(struct store *s, const struct seal *k, const struct recover_request *req,
		struct recover_result *res);

/* Records an outcome that ended before any lookup (invalid input, rate
 * limit): result is AUDIT_INVALID, AUDIT_RATE_LIMITED, …. */
int recover_audit(struct store *s, const struct recover_request *req, const char *result);

/* What the audit record of an outcome other than a disclosure keeps of the
 * key ID the person entered (out: KEYID_INPUT_MAX + 1 bytes): the prefix
 * when valid, else the text as typed (printable ASCII, at most 64 bytes) —
 * but never anything that may hold a recovery password (typed into the
 * wrong field: recpw_may_contain, or invalid text with 12 or more digits):
 * then only a note of its length. */
void recover_key_text(const struct recover_request *req, char *out, size_t outlen);

#endif
