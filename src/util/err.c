#include "util/err.h"

const char *kw_strerror(int err)
{
	switch (err) {
	case KW_OK: return "success";
	case KW_ERR_NOMEM: return "out of memory";
	case KW_ERR_INVALID: return "invalid input";
	case KW_ERR_NOT_FOUND: return "not found";
	case KW_ERR_CONFLICT: return "conflicts with stored data";
	case KW_ERR_EXISTS: return "already exists";
	case KW_ERR_STORE: return "database error";
	case KW_ERR_IO: return "input/output error";
	case KW_ERR_CRYPTO: return "cryptographic operation failed";
	case KW_ERR_AUTH: return "authentication failed";
	case KW_ERR_TOO_LARGE: return "input too large";
	case KW_ERR_LIMIT: return "rate limit reached";
	case KW_ERR_PERM: return "permission denied";
	case KW_ERR_SCHEMA: return "database schema is newer than this program";
	case KW_ERR_AMBIGUOUS: return "ambiguous";
	case KW_ERR_UNAVAILABLE: return "service unavailable";
	case KW_ERR_EXPIRED: return "expired";
	case KW_ERR_INTERNAL: return "internal error";
	case KW_ERR_RETRY: return "transient conflict, try again";
	}
	return "unknown error";
}
