/* One error convention for all of keywarden: functions return 0 (KW_OK) or a
 * negative value from enum kw_err; kw_strerror() names it. */
#ifndef KW_UTIL_ERR_H
#define KW_UTIL_ERR_H

enum kw_err {
	KW_OK = 0,
	KW_ERR_NOMEM = -1,       /* allocation failed */
	KW_ERR_INVALID = -2,     /* input is malformed or out of range */
	KW_ERR_NOT_FOUND = -3,   /* no such record */
	KW_ERR_CONFLICT = -4,    /* contradicts what is stored */
	KW_ERR_EXISTS = -5,      /* already there */
	KW_ERR_STORE = -6,       /* the database failed */
	KW_ERR_IO = -7,          /* a file or socket operation failed */
	KW_ERR_CRYPTO = -8,      /* encryption, decryption or hashing failed */
	KW_ERR_AUTH = -9,        /* bad credentials */
	KW_ERR_TOO_LARGE = -10,  /* input above its cap */
	KW_ERR_LIMIT = -11,      /* rate limit reached */
	KW_ERR_PERM = -12,       /* not allowed (file mode, role) */
	KW_ERR_SCHEMA = -13,     /* database schema is newer than the program */
	KW_ERR_AMBIGUOUS = -14,  /* several records match */
	KW_ERR_UNAVAILABLE = -15,/* a service is down or timed out */
	KW_ERR_EXPIRED = -16,    /* token or session expired */
	KW_ERR_INTERNAL = -17,   /* a bug: an impossible state */
	KW_ERR_RETRY = -18,      /* a transient conflict: serialization failure
				  * or deadlock, try again */
};

/* Static English name of an error code; never NULL. */
const char *kw_strerror(int err);

#endif
