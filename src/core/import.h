/* Keys brought in from a CSV file (SPEC §9 `import csv`): keywarden's own
 * export, or an MBAM export; or read elsewhere and handed over as items
 * (`import ldap`: auth/ldap_escrow.h). Every row is checked before anything is
 * stored; the keys are sealed as escrow seals them (core/seal.h) and the
 * whole file is stored in one store write, with its audit record: an
 * interrupted import leaves nothing, and running an import again adds
 * nothing twice. Errors name the line and the column, never a recovery
 * password. The columns each format takes are in README.md ("Importing
 * keys"). */
#ifndef KW_CORE_IMPORT_H
#define KW_CORE_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/seal.h"
#include "store/store.h"

#define IMPORT_FILE_MAX (64u * 1024 * 1024)  /* bytes of a file */
#define IMPORT_ROWS_MAX 500000               /* data rows of a file */
#define IMPORT_ERRORS_MAX 1000               /* errors kept (all are counted) */
#define IMPORT_USERS_MAX 32                  /* users of a row */
#define IMPORT_NAME_MAX 200                  /* bytes of the file name kept */

enum import_format {
	IMPORT_KEYWARDEN = 0,    /* the columns of `export csv` */
	IMPORT_MBAM,             /* RecoveryKeyId, RecoveryKey, VolumeId, … */
	IMPORT_LDAP,             /* import_items: read from a directory */
};

/* "keywarden" or "mbam" into *f; KW_ERR_INVALID for anything else. */
int import_format_parse(const char *name, enum import_format *f);

struct import_error {
	size_t line;             /* 0: the file as a whole (its header) */
	char why[480];           /* column and reason, never a password */
};

/* What an import found and did. */
struct import_report {
	size_t rows;             /* data rows read (valid or not) */
	size_t invalid;          /* rows with an error: not stored */
	size_t keys_added;
	size_t keys_present;     /* already stored with the same password */
	size_t devices_added;
	size_t assocs_added;     /* user-device associations added */
	bool stored;             /* the write was committed */
	char ignored[256];       /* MBAM columns not used, ", "-separated */
	struct import_error *errors;   /* the first IMPORT_ERRORS_MAX */
	size_t nerrors;
};

struct import_request {
	enum import_format format;
	const char *data;        /* the file's bytes */
	size_t len;              /* at most IMPORT_FILE_MAX (else KW_ERR_TOO_LARGE) */
	const char *name;        /* the file's name without folders (the
				  * origin "import:csv:NAME" or
				  * "import:mbam:NAME" of every key; cut to
				  * IMPORT_NAME_MAX, characters that are not
				  * clean text become '?') */
	const char *dest;        /* where it came from, for the audit record
				  * ("/srv/keys.csv", "standard input") */
	bool skip_invalid;       /* store the valid rows when some are not */
	const char *source;      /* the audit record's source (AUDIT_CLI) */
	const char *actor;       /* … and actor (cli_actor) */
	int64_t now;
	/* import_items only: what messages call the device name, domain,
	 * volume ID, key ID, recovery password and creation time (the
	 * source's attribute names). */
	const char *labels[7];
};

/* Imports req->data. Every row is read and checked; then one store write
 * checks the rows against what is stored (a device ID known under another
 * name, a key ID stored with another password: errors), adds the devices,
 * volumes, keys and associations that are new, and appends the audit
 * record (source, actor, result "imported", comment "N keys imported from
 * DEST …"), all or nothing. Keys already stored with the same password are
 * left as they are and counted in keys_present.
 *
 * Returns 0 when the write was committed (rep->stored), also when rows
 * were skipped with skip_invalid (rep->invalid > 0), and when the file has
 * no rows (nothing written). KW_ERR_INVALID when the header is unusable or
 * any row has an error and !skip_invalid: nothing stored, rep->errors say
 * why. KW_ERR_TOO_LARGE for a file above IMPORT_FILE_MAX or
 * IMPORT_ROWS_MAX rows. Otherwise the store's error, nothing stored.
 * rep is filled in every case; free it with import_report_free. */
int import_csv(struct store *s, const struct seal *k, const struct import_request *req,
	       struct import_report *rep);

/* One key read from elsewhere than a file (format IMPORT_LDAP), as text:
 * checked as an MBAM row, but for its device ID, which the source gives
 * (a directory's computer objectGUID: a computer's name may be reused by
 * another computer, or held by two in different OUs). NULL fields count
 * as empty. */
struct import_item {
	const char *device_id;   /* UUID text, any case */
	const char *device_name, *domain, *volume_id, *key_id, *recovery_password;
	const char *created_at;  /* ISO 8601, or "" (now) */
	const char *invalid;     /* non-NULL: the reader found it invalid, why */
};

/* Imports n items as import_csv imports n rows (same checks, same one
 * write, same audit record with the format "ldap" and the origin
 * "import:ldap:NAME"); the errors' line is the item's index + 1.
 * req->format must be IMPORT_LDAP (else KW_ERR_INVALID), req->data is not
 * used, req->labels name the fields. Returns as import_csv; n = 0 stores
 * nothing and returns 0. */
int import_items(struct store *s, const struct seal *k, const struct import_request *req,
		 const struct import_item *items, size_t n, struct import_report *rep);

/* import_csv's reading and checking of every row, without a store: 0
 * when every row is valid, KW_ERR_INVALID (rep->errors say why) or
 * another error as import_csv returns them before its write. Conflicts
 * with what is stored are not looked for. For the fuzzer, and a check
 * before a long import. */
int import_check(const struct seal *k, const struct import_request *req,
		 struct import_report *rep);

void import_report_free(struct import_report *rep);

/* The device ID of an MBAM computer (lower-case UUID text, UUID_LEN + 1 bytes):
 * the same for the same domain and name (compared case-insensitively), so
 * that a second import finds the device the first one added. */
void import_mbam_device_id(const char *domain, const char *name, char out[37]);

#endif
