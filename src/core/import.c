#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/checkin.h"
#include "core/enroll.h"
#include "core/import.h"
#include "core/keyfile.h"
#include "core/inventory.h"
#include "core/keyid.h"
#include "core/recpw.h"
#include "core/secret.h"
#include "util/buf.h"
#include "util/csv.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

#define FUTURE_SLACK 86400       /* a time at most this far ahead is taken */
#define WHY_MAX 480
#define COMMENT_MAX 1024

int import_format_parse(const char *name, enum import_format *f)
{
	if (!strcmp(name, "keywarden"))
		*f = IMPORT_KEYWARDEN;
	else if (!strcmp(name, "mbam"))
		*f = IMPORT_MBAM;
	else
		return KW_ERR_INVALID;
	return 0;
}

/* ---- columns ---- */

enum col {
	COL_DEVICE_ID, COL_NAME, COL_DOMAIN, COL_VOLUME, COL_MOUNT, COL_KEY_ID,
	COL_PASSWORD, COL_STATE, COL_CREATED, COL_DISCLOSED, COL_USERS, NCOLS
};

struct colname {
	enum col col;
	const char *name;        /* as compared: lower case, no ' ', '_', '-' */
};

/* The columns of `export csv` (core/export.h), and users. */
static const struct colname keywarden_cols[] = {
	{ COL_DEVICE_ID, "deviceid" }, { COL_NAME, "devicename" }, { COL_DOMAIN, "domain" },
	{ COL_VOLUME, "volumeid" }, { COL_MOUNT, "mount" }, { COL_KEY_ID, "keyid" },
	{ COL_PASSWORD, "recoverypassword" }, { COL_STATE, "state" },
	{ COL_CREATED, "createdat" }, { COL_DISCLOSED, "disclosedat" }, { COL_USERS, "users" },
	{ NCOLS, NULL },
};

/* MBAM's RecoveryAndHardwareCore tables as an administrator exports them:
 * Keys (RecoveryKeyId, RecoveryKey, LastUpdateTime), Volumes (VolumeId),
 * Machines (Name as MachineName), Domains (DomainName), Users. */
static const struct colname mbam_cols[] = {
	{ COL_KEY_ID, "recoverykeyid" }, { COL_PASSWORD, "recoverykey" },
	{ COL_PASSWORD, "recoverypassword" }, { COL_VOLUME, "volumeid" },
	{ COL_VOLUME, "volumeguid" }, { COL_NAME, "machinename" },
	{ COL_NAME, "computername" }, { COL_DOMAIN, "domainname" }, { COL_DOMAIN, "domain" },
	{ COL_CREATED, "lastupdatetime" }, { COL_USERS, "username" }, { COL_USERS, "users" },
	{ NCOLS, NULL },
};

static const bool keywarden_required[NCOLS] = {
	[COL_DEVICE_ID] = true, [COL_NAME] = true, [COL_VOLUME] = true, [COL_KEY_ID] = true,
	[COL_PASSWORD] = true,
};
static const bool mbam_required[NCOLS] = {
	[COL_NAME] = true, [COL_VOLUME] = true, [COL_KEY_ID] = true, [COL_PASSWORD] = true,
};

/* The names a message uses for a missing column. */
static const char *const keywarden_names[NCOLS] = {
	"device_id", "device_name", "domain", "volume_id", "mount", "key_id",
	"recovery_password", "state", "created_at", "disclosed_at", "users",
};
static const char *const mbam_names[NCOLS] = {
	"", "MachineName", "DomainName", "VolumeId", "", "RecoveryKeyId", "RecoveryKey", "",
	"LastUpdateTime", "", "UserName",
};

struct header {
	size_t nfields;
	int idx[NCOLS];                  /* field of each column; -1 = none */
	char label[NCOLS][64];           /* the column's name as the file has it */
};

static void normalize(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in && n + 1 < outlen; in++) {
		char c = *in;

		if (c == ' ' || c == '_' || c == '-' || c == '\t')
			continue;
		out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
}

/* v as a message may quote it: a value that may hold a recovery password
 * (a file with its columns mislabelled) or is long is not quoted. */
static const char *quotable(const char *v)
{
	if (recpw_may_contain(v))
		return "(a value that looks like a recovery password)";
	if (strlen(v) > 64)
		return "(a long value)";
	return v;
}

static int error_add(struct import_report *rep, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int error_add(struct import_report *rep, size_t line, const char *fmt, ...)
{
	struct import_error *e;
	va_list ap;

	if (rep->nerrors >= IMPORT_ERRORS_MAX)
		return 0;
	if (!rep->errors && !(rep->errors = calloc(IMPORT_ERRORS_MAX, sizeof(*rep->errors))))
		return KW_ERR_NOMEM;
	e = &rep->errors[rep->nerrors++];
	e->line = line;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof(e->why), fmt, ap);
	va_end(ap);
	return 0;
}

static int header_read(const struct csv_record *rec, enum import_format fmt,
		       struct header *h, struct import_report *rep)
{
	const struct colname *cols = fmt == IMPORT_MBAM ? mbam_cols : keywarden_cols;
	const bool *required = fmt == IMPORT_MBAM ? mbam_required : keywarden_required;
	const char *const *names = fmt == IMPORT_MBAM ? mbam_names : keywarden_names;
	struct buf unknown, missing;
	bool looks_mbam = false;
	int rc = 0;

	buf_init(&unknown, 2048);
	buf_init(&missing, 512);
	h->nfields = rec->n;
	for (int c = 0; c < NCOLS; c++) {
		h->idx[c] = -1;
		snprintf(h->label[c], sizeof(h->label[0]), "%s", names[c]);
	}
	for (size_t i = 0; i < rec->n; i++) {
		char norm[64];
		const struct colname *m;

		normalize(rec->field[i], norm, sizeof(norm));
		if (!strcmp(norm, "recoverykeyid"))
			looks_mbam = true;
		for (m = cols; m->name && strcmp(m->name, norm); m++)
			;
		if (!m->name) {
			if (unknown.len)
				buf_puts(&unknown, ", ");
			buf_puts(&unknown, rec->field[i][0] ? quotable(rec->field[i]) : "(empty)");
			continue;
		}
		if (h->idx[m->col] >= 0) {
			rc = error_add(rep, 0, "the header names the column %s twice (as '%s' "
				       "and '%s')", names[m->col], h->label[m->col],
				       quotable(rec->field[i]));
			if (rc == 0)
				rc = KW_ERR_INVALID;
			goto out;
		}
		h->idx[m->col] = (int)i;
		snprintf(h->label[m->col], sizeof(h->label[0]), "%s", quotable(rec->field[i]));
	}
	for (int c = 0; c < NCOLS; c++) {
		if (required[c] && h->idx[c] < 0) {
			if (missing.len)
				buf_puts(&missing, ", ");
			buf_puts(&missing, names[c]);
		}
	}
	if (missing.len) {
		rc = error_add(rep, 0, "the header lacks the column%s %s%s",
			       strchr(missing.data, ',') ? "s" : "", missing.data,
			       fmt == IMPORT_KEYWARDEN && looks_mbam ?
			       " (an MBAM export? use --format mbam)" : "");
		if (rc == 0)
			rc = KW_ERR_INVALID;
		goto out;
	}
	if (unknown.len && fmt == IMPORT_KEYWARDEN) {
		rc = error_add(rep, 0, "the header has columns keywarden does not know: %s "
			       "(known: device_id, device_name, domain, volume_id, mount, key_id, "
			       "recovery_password, state, created_at, disclosed_at, users)",
			       unknown.data);
		if (rc == 0)
			rc = KW_ERR_INVALID;
		goto out;
	}
	if (unknown.len)
		snprintf(rep->ignored, sizeof(rep->ignored), "%s", unknown.data);
out:
	buf_free(&unknown);
	buf_free(&missing);
	return rc;
}

/* ---- rows ---- */

struct row {
	size_t line;
	char device_id[UUID_LEN + 1];
	char volume[KEYID_CANON_LEN + 1];
	char key_id[KEYID_CANON_LEN + 1];
	enum key_state state;
	int64_t created_at, disclosed_at;
	char *name, *domain, *mount;
	char *users;                      /* '\n'-separated; NULL = none */
	uint8_t *sealed;
	size_t sealed_len;
};

static void row_free(struct row *r)
{
	free(r->name);
	free(r->domain);
	free(r->mount);
	free(r->users);
	free(r->sealed);
}

/* A field's value; "" for a column the file does not have. */
static const char *field(const struct csv_record *rec, const struct header *h, enum col c)
{
	return h->idx[c] < 0 ? "" : rec->field[h->idx[c]];
}

/* Adds "label: reason" to why. */
static void why_add(struct buf *why, const struct header *h, enum col c, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void why_add(struct buf *why, const struct header *h, enum col c, const char *fmt, ...)
{
	char text[WHY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (why->len)
		buf_puts(why, "; ");
	if (c < NCOLS)
		buf_printf(why, "%s: %s", h->label[c], text);
	else
		buf_puts(why, text);
}

/* A text column: optional ("" allowed) or not, clean text of at most max
 * bytes. */
static const char *text_field(const struct csv_record *rec, const struct header *h, enum col c,
			      bool required, size_t max, struct buf *why)
{
	const char *v = field(rec, h, c);

	if (!*v) {
		if (required)
			why_add(why, h, c, "is empty");
		return required ? NULL : v;
	}
	if (strlen(v) > max) {
		why_add(why, h, c, "is longer than %zu bytes", max);
		return NULL;
	}
	if (!str_is_clean_text(v, max)) {
		why_add(why, h, c, "holds a control character");
		return NULL;
	}
	return v;
}

static bool parse_uuid(const char *s, char out[UUID_LEN + 1])
{
	if (strlen(s) != UUID_LEN)
		return false;
	for (size_t i = 0; i < UUID_LEN; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (c >= 'A' && c <= 'F') {
			c = (char)(c - 'A' + 'a');
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
		out[i] = c;
	}
	out[UUID_LEN] = '\0';
	return true;
}

/* ISO 8601 in UTC as export writes it ("2026-11-20T08:00:00Z"), a date,
 * or "YYYY-MM-DD HH:MM:SS[.fff]" without a zone (SQL Server's text),
 * taken as UTC. */
static int parse_time(const char *s, int64_t *out)
{
	char z[48];
	size_t n = strlen(s);

	if (n >= 19 && n < sizeof(z) - 1 && !strpbrk(s + 19, "Zz+")) {
		snprintf(z, sizeof(z), "%sZ", s);
		return time_parse_iso(z, out);
	}
	return time_parse_iso(s, out);
}

static void time_field(const struct csv_record *rec, const struct header *h, enum col c,
		       int64_t now, int64_t *out, struct buf *why)
{
	const char *v = field(rec, h, c);

	*out = 0;
	if (!*v)
		return;
	if (parse_time(v, out) < 0) {
		why_add(why, h, c, "is not a time: write YYYY-MM-DDTHH:MM:SSZ (or "
			"YYYY-MM-DD HH:MM:SS, taken as UTC)");
		*out = 0;
	} else if (*out > now + FUTURE_SLACK) {
		why_add(why, h, c, "is in the future");
		*out = 0;
	}
}

/* A recovery password's fault without the digits recpw_parse quotes:
 * "Group 3 (311111) is not divisible by 11." loses " (311111)". */
static void drop_digits(char *msg)
{
	char *p = msg;

	while ((p = strstr(p, " ("))) {
		size_t d = strspn(p + 2, "0123456789");

		if (d && p[2 + d] == ')')
			memmove(p, p + 3 + d, strlen(p + 3 + d) + 1);
		else
			p += 2;
	}
}

/* Undoes export's guard against spreadsheet formulas ('= in quotes);
 * refuses a value that would run as one. */
static bool formula_check(struct csv_record *rec, const struct header *h, struct buf *why)
{
	bool ok = true;

	for (int c = 0; c < NCOLS; c++) {
		char *v;

		if (h->idx[c] < 0)
			continue;
		v = rec->field[h->idx[c]];
		if (rec->quoted[h->idx[c]] && v[0] == '\'' && v[1] && strchr("=+-@", v[1])) {
			memmove(v, v + 1, strlen(v));
			continue;
		}
		if (v[0] && strchr("=+-@", v[0])) {
			why_add(why, h, (enum col)c, "starts with '%c', as a spreadsheet formula does",
				v[0]);
			ok = false;
		}
	}
	return ok;
}

static char *users_field(const struct csv_record *rec, const struct header *h,
			 struct buf *why)
{
	const char *v = field(rec, h, COL_USERS);
	struct buf out;
	size_t n = 0;
	char *copy, *save = NULL;

	if (!*v)
		return NULL;
	buf_init(&out, (size_t)IMPORT_USERS_MAX * (INVENTORY_USER_MAX + 1));
	if (!(copy = strdup(v))) {
		why_add(why, h, COL_USERS, "out of memory");
		return NULL;
	}
	for (char *u = strtok_r(copy, ";", &save); u; u = strtok_r(NULL, ";", &save)) {
		str_trim(u);
		if (!*u)
			continue;
		if (++n > IMPORT_USERS_MAX) {
			why_add(why, h, COL_USERS, "more than %d users", IMPORT_USERS_MAX);
			goto bad;
		}
		if (!inventory_user_valid(u)) {
			why_add(why, h, COL_USERS, "user %zu is not a valid user name (1 to %d "
				"bytes of text)", n, INVENTORY_USER_MAX);
			goto bad;
		}
		if ((out.len && buf_putc(&out, '\n') < 0) || buf_puts(&out, u) < 0) {
			why_add(why, h, COL_USERS, "out of memory");
			goto bad;
		}
	}
	free(copy);
	if (!out.len) {
		buf_free(&out);
		return NULL;
	}
	return buf_steal(&out, NULL);
bad:
	free(copy);
	buf_free(&out);
	return NULL;
}

/* Reads and checks one data record into r; why gets every fault. */
static int row_read(struct csv_record *rec, const struct header *h,
		    const struct import_request *req, const struct seal *k, struct row *r,
		    struct buf *why)
{
	char pw[RECPW_CANON_LEN + 1], msg[256];
	uint8_t sealed[SEAL_MAX];
	const char *v, *name, *domain, *mount;
	int rc;

	memset(r, 0, sizeof(*r));
	r->line = rec->line;
	if (rec->n != h->nfields) {
		why_add(why, h, NCOLS, "%zu fields where the header has %zu", rec->n, h->nfields);
		return 0;
	}
	if (!formula_check(rec, h, why))
		return 0;

	name = text_field(rec, h, COL_NAME, true, DEVICE_NAME_MAX, why);
	domain = text_field(rec, h, COL_DOMAIN, false, DEVICE_TEXT_MAX, why);
	mount = text_field(rec, h, COL_MOUNT, false, CHECKIN_MOUNT_MAX, why);
	if (req->format == IMPORT_KEYWARDEN || req->format == IMPORT_LDAP) {
		v = field(rec, h, COL_DEVICE_ID);
		if (!parse_uuid(v, r->device_id))
			why_add(why, h, COL_DEVICE_ID, "is not a device ID (a UUID: 8-4-4-4-12 "
				"hex digits)");
	} else if (name && domain) {
		import_mbam_device_id(domain, name, r->device_id);
	}

	v = field(rec, h, COL_VOLUME);
	if (keyid_parse(v, strlen(v), r->volume, NULL, 0) < 0)
		why_add(why, h, COL_VOLUME, "is not a volume GUID (32 hex digits)");
	v = field(rec, h, COL_KEY_ID);
	if (keyid_parse(v, strlen(v), r->key_id, msg, sizeof(msg)) < 0)
		why_add(why, h, COL_KEY_ID, "%s", msg);
	v = field(rec, h, COL_PASSWORD);
	if ((rc = recpw_parse(v, strlen(v), pw, msg, sizeof(msg))) < 0) {
		drop_digits(msg);
		why_add(why, h, COL_PASSWORD, "%s", msg);
	}

	v = field(rec, h, COL_STATE);
	r->state = KEY_ACTIVE;
	if (*v) {
		enum key_state s;

		for (s = KEY_ACTIVE; s <= KEY_SUPERSEDED && !str_ieq(v, key_state_name(s)); s++)
			;
		if (s > KEY_SUPERSEDED)
			why_add(why, h, COL_STATE, "is not one of active, removed, disclosed, "
				"superseded");
		r->state = s > KEY_SUPERSEDED ? KEY_ACTIVE : s;
	}
	time_field(rec, h, COL_CREATED, req->now, &r->created_at, why);
	time_field(rec, h, COL_DISCLOSED, req->now, &r->disclosed_at, why);
	if (!r->created_at)
		r->created_at = req->now;
	if (r->state == KEY_DISCLOSED && !r->disclosed_at && !*field(rec, h, COL_DISCLOSED))
		why_add(why, h, COL_DISCLOSED, "is empty: a disclosed key was disclosed at "
			"some time");
	if (r->disclosed_at && r->disclosed_at < r->created_at)
		why_add(why, h, COL_DISCLOSED, "is before %s", h->idx[COL_CREATED] >= 0 ?
			h->label[COL_CREATED] : "now");
	r->users = users_field(rec, h, why);

	if (why->len == 0) {
		if (!(r->name = strdup(name)) || !(r->domain = strdup(domain)) ||
		    !(r->mount = strdup(mount))) {
			rc = KW_ERR_NOMEM;
			goto out;
		}
		if ((rc = seal_encrypt(k, r->key_id, r->device_id, pw, sealed,
				       &r->sealed_len)) < 0)
			goto out;
		if (!(r->sealed = malloc(r->sealed_len))) {
			rc = KW_ERR_NOMEM;
			goto out;
		}
		memcpy(r->sealed, sealed, r->sealed_len);
	}
	rc = 0;
out:
	sodium_memzero(pw, sizeof(pw));
	return rc;
}

void import_mbam_device_id(const char *domain, const char *name, char out[37])
{
	crypto_hash_sha256_state st;
	uint8_t h[crypto_hash_sha256_BYTES];
	char *d = str_lower_dup(domain), *n = str_lower_dup(name);
	char hex[33];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)"keywarden import mbam", 22);
	const char *dl = d ? d : domain, *nl = n ? n : name;

	crypto_hash_sha256_update(&st, (const uint8_t *)dl, strlen(dl) + 1);
	crypto_hash_sha256_update(&st, (const uint8_t *)nl, strlen(nl) + 1);
	crypto_hash_sha256_final(&st, h);
	free(d);
	free(n);
	/* A version 8 (custom) UUID, RFC 9562. */
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x80);
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	str_hex(h, 16, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
		 hex + 20);
}

/* ---- the write ---- */

struct apply {
	const struct import_request *req;
	const struct seal *seal;
	struct row *rows;
	size_t nrows;
	bool *bad;                       /* rows found invalid by the parse */
	const char *origin;
	const char *format;
	bool check_key;                  /* a shared store: keyfile_check_tx */
	size_t parse_invalid;
	/* Reset at every run of the transaction. */
	size_t keys_added, keys_present, devices_added, assocs_added, invalid;
	struct import_report errs;       /* errors of this run */
	char last_dev[UUID_LEN + 1];     /* a device known to match its rows */
	char last_name[DEVICE_NAME_MAX + 1];
	char vol_dev[UUID_LEN + 1], vol_guid[KEYID_CANON_LEN + 1];
	int64_t vol_row;
};

struct found_key {
	bool found;
	char device_id[STORE_ID_LEN + 1];
	uint8_t sealed[SEAL_MAX];
	size_t sealed_len;
};

static int copy_found_key(const struct key_rec *k, void *arg)
{
	struct found_key *f = arg;

	if (k->sealed_len > sizeof(f->sealed))
		return KW_ERR_CRYPTO;
	f->found = true;
	memcpy(f->device_id, k->device_id, sizeof(f->device_id));
	memcpy(f->sealed, k->sealed, k->sealed_len);
	f->sealed_len = k->sealed_len;
	return 0;
}

struct found_name {
	char name[DEVICE_NAME_MAX + 1];
};

static int copy_device_name(const struct device_rec *d, void *arg)
{
	struct found_name *f = arg;

	snprintf(f->name, sizeof(f->name), "%s", d->name);
	return 0;
}

struct find_volume {
	const char *guid;
	int64_t row;
};

static int match_volume(const struct volume_rec *v, void *arg)
{
	struct find_volume *f = arg;

	if (!strcmp(v->guid, f->guid))
		f->row = v->row;
	return 0;
}

/* Is the row's password the one stored for its key? 1 yes, 0 no, or an
 * error (KW_ERR_CRYPTO: the stored key does not open with this key file). */
static int same_password(struct apply *a, const struct row *r, const struct found_key *f)
{
	char stored[RECPW_CANON_LEN + 16], mine[RECPW_CANON_LEN + 16];
	int rc;

	if ((rc = seal_decrypt(a->seal, r->key_id, f->device_id, f->sealed, f->sealed_len,
			       stored, sizeof(stored))) < 0)
		goto out;
	if ((rc = seal_decrypt(a->seal, r->key_id, r->device_id, r->sealed, r->sealed_len, mine,
			       sizeof(mine))) < 0)
		goto out;
	rc = strlen(stored) == strlen(mine) && sodium_memcmp(stored, mine, strlen(mine)) == 0;
out:
	sodium_memzero(stored, sizeof(stored));
	sodium_memzero(mine, sizeof(mine));
	return rc;
}

/* The volume row of r on its device, added when new (with what import
 * knows: the mount; type and protection unknown until a check-in). */
static int volume_of(struct store_tx *tx, struct apply *a, const struct row *r, int64_t *row)
{
	struct find_volume f = { r->volume, 0 };
	struct volume_rec v;
	int rc;

	if (!strcmp(a->vol_dev, r->device_id) && !strcmp(a->vol_guid, r->volume)) {
		*row = a->vol_row;
		return 0;
	}
	if ((rc = store_volume_each(tx, r->device_id, match_volume, &f)) < 0)
		return rc;
	if (!f.row) {
		memset(&v, 0, sizeof(v));
		memcpy(v.device_id, r->device_id, sizeof(r->device_id));
		memcpy(v.guid, r->volume, sizeof(r->volume));
		v.mount = r->mount;
		v.type = "";
		v.protection = "";
		v.encryption = "";
		v.first_seen = v.last_seen = r->created_at;
		if ((rc = store_volume_upsert(tx, &v, &f.row)) < 0)
			return rc;
	}
	memcpy(a->vol_dev, r->device_id, sizeof(a->vol_dev));
	memcpy(a->vol_guid, r->volume, sizeof(a->vol_guid));
	a->vol_row = *row = f.row;
	return 0;
}

/* The device of r: 0 when it is there under the row's name or was added;
 * 1 (and an error for the row) when its ID is taken by another name. */
static int device_of(struct store_tx *tx, struct apply *a, const struct row *r)
{
	struct found_name f;
	struct device_rec d;
	uint8_t hash[STORE_HASH_LEN];
	int rc;

	if (!strcmp(a->last_dev, r->device_id))
		goto compare;
	memset(&f, 0, sizeof(f));
	rc = store_device_get(tx, r->device_id, copy_device_name, &f);
	if (rc == KW_ERR_NOT_FOUND) {
		/* No one knows a secret of this hash: the device cannot check
		 * in; the computer registers as a new device. */
		memset(&d, 0, sizeof(d));
		memcpy(d.id, r->device_id, sizeof(r->device_id));
		d.name = r->name;
		d.domain = r->domain;
		d.os = "";
		d.created_at = a->req->now;
		randombytes_buf(hash, sizeof(hash));
		if ((rc = store_device_insert(tx, &d, hash)) < 0)
			return rc;
		a->devices_added++;
		snprintf(f.name, sizeof(f.name), "%s", r->name);
	} else if (rc < 0) {
		return rc;
	}
	memcpy(a->last_dev, r->device_id, sizeof(a->last_dev));
	memcpy(a->last_name, f.name, sizeof(a->last_name));
compare:
	/* A directory's computer keeps its objectGUID when it is renamed: the
	 * key is that computer's, under the name keywarden first saw. */
	if (a->req->format == IMPORT_LDAP ||
	    str_fold_eq(a->last_name, strlen(a->last_name), r->name, strlen(r->name)))
		return 0;
	if ((rc = error_add(&a->errs, r->line, "device %s is in keywarden as '%s'; this row "
			    "names it '%s'", r->device_id, quotable(a->last_name),
			    quotable(r->name))) < 0)
		return rc;
	return 1;
}

static int assocs_add(struct store_tx *tx, struct apply *a, const struct row *r,
		      const char *device_id)
{
	struct assoc_rec as;
	const char *u = r->users;
	char name[INVENTORY_USER_MAX + 1];
	int rc;

	while (u && *u) {
		size_t n = strcspn(u, "\n");

		snprintf(name, sizeof(name), "%.*s", (int)n, u);
		u += n + (u[n] == '\n');
		memset(&as, 0, sizeof(as));
		as.user = name;
		snprintf(as.device_id, sizeof(as.device_id), "%s", device_id);
		as.added_by = a->req->actor;
		as.created_at = a->req->now;
		rc = store_assoc_add(tx, &as);
		if (rc == 0)
			a->assocs_added++;
		else if (rc != KW_ERR_EXISTS)
			return rc;
	}
	return 0;
}

static int row_apply(struct store_tx *tx, struct apply *a, const struct row *r)
{
	struct found_key f;
	struct key_rec k;
	int rc;

	memset(&f, 0, sizeof(f));
	if ((rc = store_key_get(tx, r->key_id, copy_found_key, &f)) < 0 &&
	    rc != KW_ERR_NOT_FOUND)
		return rc;
	if (f.found) {
		rc = same_password(a, r, &f);
		sodium_memzero(f.sealed, sizeof(f.sealed));
		if (rc == KW_ERR_CRYPTO)
			rc = error_add(&a->errs, r->line, "key %s is stored already and does not "
				       "decrypt with this key file", r->key_id);
		else if (rc == 0)
			rc = error_add(&a->errs, r->line, "key %s is stored already with a "
				       "different recovery password", r->key_id);
		else if (rc == 1) {
			/* The users of the computer may recover the key where it is. */
			a->keys_present++;
			return assocs_add(tx, a, r, f.device_id);
		}
		return rc < 0 ? rc : 1;
	}
	if ((rc = device_of(tx, a, r)) != 0)
		return rc;
	memset(&k, 0, sizeof(k));
	memcpy(k.key_id, r->key_id, sizeof(r->key_id));
	memcpy(k.device_id, r->device_id, sizeof(r->device_id));
	if ((rc = volume_of(tx, a, r, &k.volume_row)) < 0)
		return rc;
	k.state = r->state;
	k.sealed = r->sealed;
	k.sealed_len = r->sealed_len;
	k.created_at = r->created_at;
	k.disclosed_at = r->disclosed_at;
	k.changed_at = r->disclosed_at > r->created_at ? r->disclosed_at : r->created_at;
	k.origin = a->origin;
	if ((rc = store_key_import(tx, &k)) < 0)
		return rc;
	a->keys_added++;
	return assocs_add(tx, a, r, r->device_id);
}

static int apply_tx(struct store_tx *tx, void *arg)
{
	struct apply *a = arg;
	char comment[COMMENT_MAX];
	struct audit_rec rec;
	int rc;

	a->keys_added = a->keys_present = a->devices_added = a->assocs_added = 0;
	a->invalid = 0;
	a->errs.nerrors = 0;
	a->last_dev[0] = a->vol_dev[0] = '\0';
	/* The rows were sealed with this process's key before the write. */
	if (a->check_key && (rc = keyfile_check_tx(tx, a->seal)) < 0)
		return rc;
	for (size_t i = 0; i < a->nrows; i++) {
		if (a->bad[i])
			continue;
		if ((rc = row_apply(tx, a, &a->rows[i])) < 0)
			return rc;
		a->invalid += (size_t)rc;
	}
	if ((a->invalid || a->parse_invalid) && !a->req->skip_invalid)
		return KW_ERR_INVALID;
	snprintf(comment, sizeof(comment), "%zu keys imported from %s (%s format): %zu devices "
		 "and %zu associations added, %zu keys already present, %zu invalid rows "
		 "skipped", a->keys_added, a->req->dest, a->format, a->devices_added,
		 a->assocs_added, a->keys_present, a->invalid + a->parse_invalid);
	memset(&rec, 0, sizeof(rec));
	rec.at = a->req->now;
	rec.source = a->req->source;
	rec.actor = a->req->actor;
	rec.result = AUDIT_IMPORTED;
	rec.key_type = "recovery_password";
	rec.comment = comment;
	return audit_append(tx, &rec);
}

/* ---- the whole ---- */

static int cmp_error(const void *x, const void *y)
{
	const struct import_error *a = x, *b = y;

	return (a->line > b->line) - (a->line < b->line);
}

static const char *format_name(enum import_format f)
{
	return f == IMPORT_MBAM ? "mbam" : f == IMPORT_LDAP ? "ldap" : "keywarden";
}

/* "import:csv:NAME" (":mbam:", ":ldap:") with NAME as clean text. */
static void make_origin(const struct import_request *req, char *out, size_t outlen)
{
	char name[IMPORT_NAME_MAX + 1];
	const char *n = req->name && *req->name ? req->name : "-";

	snprintf(name, sizeof(name), "%s", n);
	for (char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	snprintf(out, outlen, "import:%s:%s", req->format == IMPORT_MBAM ? "mbam" :
		 req->format == IMPORT_LDAP ? "ldap" : "csv", name);
}

/* The one store write of the rows in a (a->rows, a->bad, a->nrows; rep
 * counts the rows and the invalid ones found before): see import_csv. */
static int import_write(struct store *s, const struct seal *k, const struct import_request *req,
			struct apply *a, struct import_report *rep)
{
	char origin[STORE_ORIGIN_MAX + 1];
	int rc;

	make_origin(req, origin, sizeof(origin));
	a->req = req;
	a->seal = k;
	a->origin = origin;
	a->format = format_name(req->format);
	a->parse_invalid = rep->invalid;
	a->check_key = store_shared(s);
	/* With invalid rows and !skip_invalid the write still runs, to find
	 * every conflict with what is stored, and is undone (apply_tx). */
	rc = store_write(s, apply_tx, a);
	if (rc == KW_ERR_INVALID || rc == 0) {
		for (size_t i = 0; i < a->errs.nerrors; i++) {
			int e = error_add(rep, a->errs.errors[i].line, "%s", a->errs.errors[i].why);

			if (e < 0) {
				rc = e;
				break;
			}
		}
		rep->invalid += a->invalid;
	}
	if (rc == 0) {
		if (a->keys_added || a->devices_added)
			store_analyze(s);
		rep->stored = true;
		rep->keys_added = a->keys_added;
		rep->keys_present = a->keys_present;
		rep->devices_added = a->devices_added;
		rep->assocs_added = a->assocs_added;
	}
	return rc;
}

/* Reads and checks every row of req->data into a->rows (the bad ones
 * flagged in a->bad), with the errors in rep. 0, or an error that stops
 * the import (a file or header that cannot be used, a cap, memory). */
static int parse_all(const struct import_request *req, const struct seal *k,
		     struct apply *a, struct import_report *rep)
{
	struct csv_record *rec = NULL;
	struct csv_reader rd;
	struct header h;
	struct buf why;
	enum csv_problem p;
	size_t alloc = 0;
	int rc;

	if (req->len > IMPORT_FILE_MAX) {
		rc = error_add(rep, 0, "the file is larger than %u MiB", IMPORT_FILE_MAX >> 20);
		return rc < 0 ? rc : KW_ERR_TOO_LARGE;
	}
	if (req->len >= 2 && (!memcmp(req->data, "\xff\xfe", 2) ||
			      !memcmp(req->data, "\xfe\xff", 2))) {
		rc = error_add(rep, 0, "the file is UTF-16: save it as UTF-8 (PowerShell: "
			       "Export-Csv -Encoding UTF8)");
		return rc < 0 ? rc : KW_ERR_INVALID;
	}
	if (!(rec = malloc(sizeof(*rec))))
		return KW_ERR_NOMEM;
	buf_init(&why, WHY_MAX * 4);
	csv_init(&rd, req->data, req->len);
	rc = csv_next(&rd, rec, &p);
	if (rc == 0) {
		rc = error_add(rep, 0, "the file is empty: the first line names the columns");
		rc = rc < 0 ? rc : KW_ERR_INVALID;
		goto out;
	}
	if (rc < 0) {
		rc = error_add(rep, 0, "the header (line %zu): %s", rec->line, csv_problem_text(p));
		rc = rc < 0 ? rc : KW_ERR_INVALID;
		goto out;
	}
	if ((rc = header_read(rec, req->format, &h, rep)) < 0)
		goto out;

	for (;;) {
		if ((rc = csv_next(&rd, rec, &p)) == 0)
			break;
		if (rep->rows == IMPORT_ROWS_MAX) {
			rc = error_add(rep, 0, "the file has more than %d rows", IMPORT_ROWS_MAX);
			rc = rc < 0 ? rc : KW_ERR_TOO_LARGE;
			goto out;
		}
		rep->rows++;
		if (a->nrows == alloc) {
			size_t n = alloc ? alloc * 2 : 256;
			struct row *rows = realloc(a->rows, n * sizeof(*rows));
			bool *bad = realloc(a->bad, n * sizeof(*bad));

			if (rows)
				a->rows = rows;
			if (bad)
				a->bad = bad;
			if (!rows || !bad) {
				rc = KW_ERR_NOMEM;
				goto out;
			}
			alloc = n;
		}
		buf_reset(&why);
		if (rc < 0) {
			memset(&a->rows[a->nrows], 0, sizeof(a->rows[0]));
			a->rows[a->nrows].line = rec->line;
			if (p == CSV_BAD_UTF8)
				why_add(&why, &h, NCOLS, "field %zu: %s", rec->bad_field,
					csv_problem_text(p));
			else
				why_add(&why, &h, NCOLS, "%s", csv_problem_text(p));
		} else if ((rc = row_read(rec, &h, req, k, &a->rows[a->nrows], &why)) < 0) {
			row_free(&a->rows[a->nrows]);
			goto out;
		}
		a->bad[a->nrows] = why.len > 0;
		if (why.len) {
			rep->invalid++;
			if ((rc = error_add(rep, a->rows[a->nrows].line, "%s", why.data)) < 0) {
				row_free(&a->rows[a->nrows]);
				goto out;
			}
		}
		a->nrows++;
	}
	rc = 0;
out:
	sodium_memzero(rec, sizeof(*rec));
	free(rec);
	buf_free(&why);
	return rc;
}

static void apply_free(struct apply *a)
{
	for (size_t i = 0; i < a->nrows; i++)
		row_free(&a->rows[i]);
	free(a->rows);
	free(a->bad);
	free(a->errs.errors);
}

static void errors_sort(struct import_report *rep)
{
	if (rep->errors && rep->nerrors > 1)
		qsort(rep->errors, rep->nerrors, sizeof(*rep->errors), cmp_error);
}

int import_check(const struct seal *k, const struct import_request *req,
		 struct import_report *rep)
{
	struct apply a;
	int rc;

	memset(rep, 0, sizeof(*rep));
	memset(&a, 0, sizeof(a));
	rc = parse_all(req, k, &a, rep);
	if (rc == 0 && rep->invalid)
		rc = KW_ERR_INVALID;
	errors_sort(rep);
	apply_free(&a);
	return rc;
}

int import_csv(struct store *s, const struct seal *k, const struct import_request *req,
	       struct import_report *rep)
{
	struct apply a;
	int rc;

	memset(rep, 0, sizeof(*rep));
	memset(&a, 0, sizeof(a));
	if ((rc = parse_all(req, k, &a, rep)) < 0 || !rep->rows)
		goto out;
	rc = import_write(s, k, req, &a, rep);
out:
	errors_sort(rep);
	apply_free(&a);
	return rc;
}

void import_report_free(struct import_report *rep)
{
	if (!rep)
		return;
	free(rep->errors);
	rep->errors = NULL;
	rep->nerrors = 0;
}

int import_items(struct store *s, const struct seal *k, const struct import_request *req,
		 const struct import_item *items, size_t n, struct import_report *rep)
{
	/* Each item goes through row_read as an MBAM row would: the same
	 * checks, with the source's names in messages; the device ID is the
	 * item's own, as a keywarden row's. */
	static const enum col cols[] = {
		COL_NAME, COL_DOMAIN, COL_VOLUME, COL_KEY_ID, COL_PASSWORD, COL_CREATED,
		COL_DEVICE_ID,
	};
	struct csv_record *rec = NULL;
	struct header h;
	struct apply a;
	struct buf why;
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	memset(&a, 0, sizeof(a));
	buf_init(&why, WHY_MAX * 4);
	if (req->format != IMPORT_LDAP)
		return KW_ERR_INVALID;
	if (n > IMPORT_ROWS_MAX) {
		rc = error_add(rep, 0, "more than %d keys", IMPORT_ROWS_MAX);
		return rc < 0 ? rc : KW_ERR_TOO_LARGE;
	}
	if (!n)
		return 0;
	if (!(rec = calloc(1, sizeof(*rec))) || !(a.rows = calloc(n, sizeof(*a.rows))) ||
	    !(a.bad = calloc(n, sizeof(*a.bad)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	a.nrows = n;                       /* all zeroed: apply_free frees each */
	memset(&h, 0, sizeof(h));
	for (int c = 0; c < NCOLS; c++)
		h.idx[c] = -1;
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		h.idx[cols[i]] = (int)i;
		snprintf(h.label[cols[i]], sizeof(h.label[0]), "%s", req->labels[i]);
	}
	h.nfields = rec->n = sizeof(cols) / sizeof(cols[0]);
	for (size_t i = 0; i < n; i++) {
		const struct import_item *it = &items[i];
		const char *v[] = { it->device_name, it->domain, it->volume_id, it->key_id,
				    it->recovery_password, it->created_at, it->device_id };

		rep->rows++;
		buf_reset(&why);
		if (it->invalid) {
			memset(&a.rows[i], 0, sizeof(a.rows[0]));
			a.rows[i].line = i + 1;
			why_add(&why, &h, NCOLS, "%s", it->invalid);
		} else {
			rec->line = i + 1;
			for (size_t f = 0; f < rec->n; f++) {
				rec->field[f] = (char *)(v[f] ? v[f] : "");
				rec->quoted[f] = false;
			}
			if ((rc = row_read(rec, &h, req, k, &a.rows[i], &why)) < 0)
				goto out;
		}
		a.bad[i] = why.len > 0;
		if (why.len) {
			rep->invalid++;
			if ((rc = error_add(rep, i + 1, "%s", why.data)) < 0)
				goto out;
		}
	}
	rc = import_write(s, k, req, &a, rep);
out:
	errors_sort(rep);
	free(rec);
	apply_free(&a);
	buf_free(&why);
	return rc;
}
