#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/escrow.h"
#include "core/seal.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

/* ---- validation ---- */

static void field_error(struct field_errors *errs, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void field_error(struct field_errors *errs, const char *msg, const char *fmt, ...)
{
	va_list ap;

	errs->total++;
	if (errs->n >= CHECKIN_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(errs->e[errs->n].field, sizeof(errs->e[0].field), fmt, ap);
	va_end(ap);
	snprintf(errs->e[errs->n].message, sizeof(errs->e[0].message), "%s", msg);
	errs->n++;
}

const char *field_text(const json_t *obj, const char *name, bool required,
			    size_t max, struct field_errors *errs, const char *path)
{
	const json_t *v = json_object_get(obj, name);
	char msg[96];
	const char *s;

	if (!v || json_is_null(v)) {
		if (!required)
			return "";
		field_error(errs, "is required", "%s%s", path, name);
		return NULL;
	}
	if (!json_is_string(v)) {
		field_error(errs, "must be a string", "%s%s", path, name);
		return NULL;
	}
	s = json_string_value(v);
	if (!*s && !required)
		return "";
	if (strlen(s) > max) {
		snprintf(msg, sizeof(msg), "must be at most %zu bytes long", max);
		field_error(errs, msg, "%s%s", path, name);
		return NULL;
	}
	if (!str_is_clean_text(s, max)) {
		field_error(errs, *s ? "must be text without control characters" :
			    "must not be empty", "%s%s", path, name);
		return NULL;
	}
	return s;
}

/* A required string member at most max bytes long, checked no further. */
static const char *get_string(const json_t *obj, const char *name, size_t max,
			      struct field_errors *errs, const char *path)
{
	const json_t *v = json_object_get(obj, name);
	char msg[96];

	if (!v || json_is_null(v)) {
		field_error(errs, "is required", "%s%s", path, name);
		return NULL;
	}
	if (!json_is_string(v)) {
		field_error(errs, "must be a string", "%s%s", path, name);
		return NULL;
	}
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(msg, sizeof(msg), "must be at most %zu characters without NUL", max);
		field_error(errs, msg, "%s%s", path, name);
		return NULL;
	}
	return json_string_value(v);
}

/* One of the words in choices (NULL-terminated). */
static const char *get_choice(const json_t *obj, const char *name,
			      const char *const *choices, struct field_errors *errs,
			      const char *path)
{
	const char *s = field_text(obj, name, true, 32, errs, path);
	char msg[128];
	size_t n = 0;

	if (!s)
		return NULL;
	for (size_t i = 0; choices[i]; i++)
		if (!strcmp(s, choices[i]))
			return s;
	n = (size_t)snprintf(msg, sizeof(msg), "must be one of");
	for (size_t i = 0; choices[i] && n < sizeof(msg); i++)
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s %s", i ? "," : "",
				      choices[i]);
	field_error(errs, msg, "%s%s", path, name);
	return NULL;
}

static bool is_token(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static const char *const volume_types[] = { "os", "fixed", "removable", NULL };
static const char *const protections[] = { "on", "off", "suspended", NULL };
static const char *const logon_types[] = { "local", "remote", NULL };

static void parse_keys(const json_t *arr, struct checkin *ci, struct checkin_volume *vol,
		       const char *path, struct field_errors *errs)
{
	char kpath[128], msg[192];
	size_t i;
	const json_t *k;

	json_array_foreach(arr, i, k) {
		struct checkin_key *ck = &vol->keys[vol->nkeys];
		const char *id, *pw;

		snprintf(kpath, sizeof(kpath), "%srecovery_keys[%zu].", path, i);
		if (!json_is_object(k)) {
			field_error(errs, "must be an object", "%srecovery_keys[%zu]", path, i);
			continue;
		}
		/* These two may hold white space of any kind: their parsers say
		 * what is wrong with them. */
		id = get_string(k, "key_id", KEYID_INPUT_MAX, errs, kpath);
		pw = get_string(k, "recovery_password", RECPW_INPUT_MAX, errs, kpath);
		if (id && keyid_parse(id, strlen(id), ck->key_id, msg, sizeof(msg)) < 0) {
			field_error(errs, msg, "%skey_id", kpath);
			id = NULL;
		}
		if (pw && recpw_parse(pw, strlen(pw), ck->password, msg, sizeof(msg)) < 0) {
			field_error(errs, msg, "%srecovery_password", kpath);
			pw = NULL;
		}
		if (!id || !pw)
			continue;
		/* A key ID twice in one report is a contradiction. */
		for (size_t v = 0; v <= ci->nvolumes && v < CHECKIN_MAX_VOLUMES; v++) {
			const struct checkin_volume *o = &ci->volumes[v];
			size_t nk = (o == vol) ? vol->nkeys : o->nkeys;

			for (size_t j = 0; j < nk; j++)
				if (!strcmp(o->keys[j].key_id, ck->key_id))
					id = NULL;
		}
		if (!id) {
			field_error(errs, "appears more than once in this check-in",
				    "%skey_id", kpath);
			continue;
		}
		vol->nkeys++;
	}
}

static void parse_volumes(const json_t *arr, struct checkin *ci, struct field_errors *errs)
{
	char path[64], msg[192];
	size_t i;
	const json_t *v;

	json_array_foreach(arr, i, v) {
		struct checkin_volume *vol = &ci->volumes[ci->nvolumes];
		const char *id, *mount, *type, *prot, *enc;
		const json_t *pct, *keys;
		bool ok = true;

		memset(vol, 0, sizeof(*vol));
		snprintf(path, sizeof(path), "volumes[%zu].", i);
		if (!json_is_object(v)) {
			field_error(errs, "must be an object", "volumes[%zu]", i);
			continue;
		}
		id = field_text(v, "id", true, KEYID_INPUT_MAX, errs, path);
		if (id && keyid_parse(id, strlen(id), vol->guid, msg, sizeof(msg)) < 0) {
			field_error(errs, "must be a volume GUID (32 hexadecimal digits)",
				    "%sid", path);
			id = NULL;
		}
		for (size_t j = 0; id && j < ci->nvolumes; j++)
			if (!strcmp(ci->volumes[j].guid, vol->guid)) {
				field_error(errs, "appears more than once in this check-in",
					    "%sid", path);
				id = NULL;
			}
		mount = field_text(v, "mount", false, CHECKIN_MOUNT_MAX, errs, path);
		type = get_choice(v, "type", volume_types, errs, path);
		prot = get_choice(v, "protection", protections, errs, path);
		enc = field_text(v, "encryption", false, 32, errs, path);
		if (enc && !is_token(enc)) {
			field_error(errs, "must be lower-case letters, digits and '_' "
				    "(e.g. xts_aes_256)", "%sencryption", path);
			enc = NULL;
		}
		pct = json_object_get(v, "percent_encrypted");
		if (pct && !json_is_null(pct) &&
		    (!json_is_integer(pct) || json_integer_value(pct) < 0 ||
		     json_integer_value(pct) > 100)) {
			field_error(errs, "must be a whole number from 0 to 100",
				    "%spercent_encrypted", path);
			ok = false;
		}
		keys = json_object_get(v, "recovery_keys");
		if (!keys || json_is_null(keys)) {
			keys = NULL;
		} else if (!json_is_array(keys)) {
			field_error(errs, "must be an array", "%srecovery_keys", path);
			ok = false;
			keys = NULL;
		} else if (json_array_size(keys) > CHECKIN_MAX_KEYS) {
			snprintf(msg, sizeof(msg), "has %zu keys; at most %d are allowed",
				 json_array_size(keys), CHECKIN_MAX_KEYS);
			field_error(errs, msg, "%srecovery_keys", path);
			ok = false;
			keys = NULL;
		}
		if (keys)
			parse_keys(keys, ci, vol, path, errs);
		if (!id || !mount || !type || !prot || !enc || !ok)
			continue;
		snprintf(vol->mount, sizeof(vol->mount), "%s", mount);
		snprintf(vol->type, sizeof(vol->type), "%s", type);
		snprintf(vol->protection, sizeof(vol->protection), "%s", prot);
		snprintf(vol->encryption, sizeof(vol->encryption), "%s", enc);
		vol->percent = pct && json_is_integer(pct) ? (int)json_integer_value(pct) : 0;
		ci->nvolumes++;
	}
}

static void parse_logons(const json_t *arr, int64_t now, struct checkin *ci,
			 struct field_errors *errs)
{
	char path[64];
	size_t i;
	const json_t *l;

	json_array_foreach(arr, i, l) {
		struct checkin_logon *cl = &ci->logons[ci->nlogons];
		const char *user, *type, *at;
		int64_t t = now;

		snprintf(path, sizeof(path), "logons[%zu].", i);
		if (!json_is_object(l)) {
			field_error(errs, "must be an object", "logons[%zu]", i);
			continue;
		}
		user = field_text(l, "user", true, CHECKIN_TEXT_MAX, errs, path);
		type = get_choice(l, "type", logon_types, errs, path);
		at = field_text(l, "at", false, 40, errs, path);
		if (at && *at && time_parse_iso(at, &t) < 0) {
			field_error(errs, "must be a UTC time like 2026-11-20T08:00:00Z",
				    "%sat", path);
			at = NULL;
		}
		if (!user || !type || !at)
			continue;
		snprintf(cl->user, sizeof(cl->user), "%s", user);
		cl->type = strcmp(type, "local") ? LOGON_REMOTE : LOGON_LOCAL;
		/* A device clock ahead of ours must not make a logon "future". */
		cl->at = t > now ? now : t;
		ci->nlogons++;
	}
}

/* An optional array member with at most max elements; NULL when absent. */
static const json_t *get_array(const json_t *obj, const char *name, size_t max,
			       bool required, struct field_errors *errs, bool *bad)
{
	const json_t *a = json_object_get(obj, name);
	char msg[96];

	if (!a || json_is_null(a)) {
		if (required) {
			field_error(errs, "is required", "%s", name);
			*bad = true;
		}
		return NULL;
	}
	if (!json_is_array(a)) {
		field_error(errs, "must be an array", "%s", name);
		*bad = true;
		return NULL;
	}
	if (json_array_size(a) > max) {
		snprintf(msg, sizeof(msg), "has %zu entries; at most %zu are allowed",
			 json_array_size(a), max);
		field_error(errs, msg, "%s", name);
		*bad = true;
		return NULL;
	}
	return a;
}

int checkin_parse(const json_t *body, int64_t now, struct checkin *ci,
		  struct field_errors *errs)
{
	const json_t *vols, *logons;
	const char *os;
	bool bad = false;

	memset(ci, 0, sizeof(*ci));
	errs->n = errs->total = 0;
	if (!json_is_object(body)) {
		field_error(errs, "the body must be a JSON object", "%s", "");
		return KW_ERR_INVALID;
	}
	os = field_text(body, "os", false, CHECKIN_TEXT_MAX, errs, "");
	if (os)
		snprintf(ci->os, sizeof(ci->os), "%s", os);
	vols = get_array(body, "volumes", CHECKIN_MAX_VOLUMES, true, errs, &bad);
	logons = get_array(body, "logons", CHECKIN_MAX_LOGONS, false, errs, &bad);
	if (vols && json_array_size(vols)) {
		if (!(ci->volumes = calloc(json_array_size(vols), sizeof(*ci->volumes))))
			return KW_ERR_NOMEM;
		ci->volumes_alloc = json_array_size(vols);
	}
	if (logons && json_array_size(logons) &&
	    !(ci->logons = calloc(json_array_size(logons), sizeof(*ci->logons))))
		return KW_ERR_NOMEM;
	if (vols)
		parse_volumes(vols, ci, errs);
	if (logons)
		parse_logons(logons, now, ci, errs);
	return errs->total ? KW_ERR_INVALID : 0;
}

void checkin_free(struct checkin *ci)
{
	if (!ci)
		return;
	if (ci->volumes) {
		/* Rejected volumes may hold parsed passwords too. */
		sodium_memzero(ci->volumes, ci->volumes_alloc * sizeof(*ci->volumes));
		free(ci->volumes);
	}
	free(ci->logons);
	memset(ci, 0, sizeof(*ci));
}

/* ---- applying ---- */


/* A reported key found in the store: same device and same password, or a
 * conflict. A removed key reported again is active again. */
static int existing_key(const struct key_rec *k, void *arg)
{
	struct checkin_job *a = arg;
	char pw[RECPW_CANON_LEN + 16];
	int same;

	if (strcmp(k->device_id, a->device_id)) {
		a->res->conflict_why = "this recovery key ID is escrowed for another device";
		return KW_ERR_CONFLICT;
	}
	if (seal_decrypt(a->seal, k->key_id, k->device_id, k->sealed, k->sealed_len,
			 pw, sizeof(pw)) < 0)
		return KW_ERR_CRYPTO;
	same = sodium_memcmp(pw, a->key->password, RECPW_CANON_LEN + 1) == 0;
	sodium_memzero(pw, sizeof(pw));
	if (!same) {
		a->res->conflict_why = "a different recovery password is already escrowed "
			"for this key ID";
		return KW_ERR_CONFLICT;
	}
	a->reactivate = k->state == KEY_REMOVED ? k->row : 0;
	return 0;
}

static int put_key(struct store_tx *tx, struct checkin_job *a, const struct checkin_key *ck)
{
	struct key_rec k;
	int rc;

	a->key = ck;
	a->reactivate = 0;
	rc = store_key_get(tx, ck->key_id, existing_key, a);
	if (rc == KW_ERR_CONFLICT)
		snprintf(a->res->conflict_key, sizeof(a->res->conflict_key), "%s", ck->key_id);
	if (rc == 0 && a->reactivate)
		return store_key_set_state(tx, a->reactivate, KEY_ACTIVE, a->now);
	if (rc != KW_ERR_NOT_FOUND)
		return rc;
	memset(&k, 0, sizeof(k));
	snprintf(k.key_id, sizeof(k.key_id), "%s", ck->key_id);
	snprintf(k.device_id, sizeof(k.device_id), "%s", a->device_id);
	k.volume_row = a->volume_row;
	k.state = KEY_ACTIVE;
	k.sealed = ck->sealed;       /* by seal_keys, before the job was queued */
	k.sealed_len = ck->sealed_len;
	k.created_at = a->now;
	if ((rc = store_key_insert(tx, &k)) < 0)
		return rc;
	a->res->keys_added++;
	return 0;
}

/* After a volume's report: its live keys that were not reported have left
 * it (active ones are removed, disclosed ones superseded). */
struct sweep {
	int64_t row[CHECKIN_MAX_KEYS * 4];
	enum key_state to[CHECKIN_MAX_KEYS * 4];
	size_t n;
	bool overflow;
	const struct checkin_volume *vol;
};

static int sweep_key(const struct key_rec *k, void *arg)
{
	struct sweep *sw = arg;
	bool reported = false;
	enum key_state to = k->state;

	for (size_t i = 0; i < sw->vol->nkeys; i++)
		if (!strcmp(sw->vol->keys[i].key_id, k->key_id))
			reported = true;
	if (!reported && k->state == KEY_ACTIVE)
		to = KEY_REMOVED;
	else if (!reported && k->state == KEY_DISCLOSED)
		to = KEY_SUPERSEDED;
	if (to == k->state)
		return 0;
	if (sw->n == sizeof(sw->row) / sizeof(sw->row[0])) {
		sw->overflow = true;
		return 0;
	}
	sw->row[sw->n] = k->row;
	sw->to[sw->n++] = to;
	return 0;
}

static int sweep_volume(struct store_tx *tx, struct checkin_job *a)
{
	struct sweep sw;
	int rc;

	do {
		memset(&sw, 0, sizeof(sw));
		sw.vol = a->vol;
		if ((rc = store_key_each_volume(tx, a->volume_row,
				   KEY_STATE_BIT(KEY_ACTIVE) | KEY_STATE_BIT(KEY_DISCLOSED),
				   sweep_key, &sw)) < 0)
			return rc;
		for (size_t i = 0; i < sw.n; i++)
			if ((rc = store_key_set_state(tx, sw.row[i], sw.to[i], a->now)) < 0)
				return rc;
	} while (sw.overflow);
	return 0;
}

static int collect_rotate(const struct key_rec *k, void *arg)
{
	struct checkin_result *res = arg;
	char (*r)[KEYID_CANON_LEN + 1];

	if (k->state != KEY_DISCLOSED)
		return 0;
	r = realloc(res->rotate, (res->nrotate + 1) * sizeof(*r));
	if (!r)
		return KW_ERR_NOMEM;
	res->rotate = r;
	snprintf(r[res->nrotate++], KEYID_CANON_LEN + 1, "%s", k->key_id);
	return 0;
}

static int apply_tx(struct store_tx *tx, void *arg)
{
	struct checkin_job *a = arg;
	const struct checkin *ci = a->ci;
	int rc;

	/* A rerun (KW_ERR_RETRY) reports its own run only. */
	checkin_result_free(a->res);
	a->res->conflict_key[0] = '\0';
	a->res->conflict_why = NULL;
	if (a->secret_hash &&
	    (rc = store_device_check_secret(tx, a->device_id, a->secret_hash)) < 0)
		return rc;
	if ((rc = store_device_checked_in(tx, a->device_id, ci->os, a->now)) < 0)
		return rc;
	for (size_t i = 0; i < ci->nvolumes; i++) {
		const struct checkin_volume *cv = &ci->volumes[i];
		struct volume_rec v;

		memset(&v, 0, sizeof(v));
		snprintf(v.device_id, sizeof(v.device_id), "%s", a->device_id);
		snprintf(v.guid, sizeof(v.guid), "%s", cv->guid);
		v.mount = cv->mount;
		v.type = cv->type;
		v.protection = cv->protection;
		v.encryption = cv->encryption;
		v.percent = cv->percent;
		v.first_seen = v.last_seen = a->now;
		if ((rc = store_volume_upsert(tx, &v, &a->volume_row)) < 0)
			return rc;
		a->vol = cv;
		for (size_t j = 0; j < cv->nkeys; j++)
			if ((rc = put_key(tx, a, &cv->keys[j])) < 0)
				return rc;
		if ((rc = sweep_volume(tx, a)) < 0)
			return rc;
	}
	for (size_t i = 0; i < ci->nlogons; i++) {
		struct logon_rec l;

		memset(&l, 0, sizeof(l));
		snprintf(l.device_id, sizeof(l.device_id), "%s", a->device_id);
		l.user = ci->logons[i].user;
		l.type = ci->logons[i].type;
		l.first_seen = l.last_seen = ci->logons[i].at;
		if ((rc = store_logon_upsert(tx, &l)) < 0)
			return rc;
	}
	return store_key_each_device(tx, a->device_id, KEY_STATE_BIT(KEY_DISCLOSED),
			collect_rotate, a->res);
}

/* Seals every reported key here, not on the store's writer thread, which
 * all check-ins share: most keys are new when fleets rotate en masse. */
static int seal_keys(const struct seal *k, const char *device_id, struct checkin *ci)
{
	for (size_t i = 0; i < ci->nvolumes; i++)
		for (size_t j = 0; j < ci->volumes[i].nkeys; j++) {
			struct checkin_key *ck = &ci->volumes[i].keys[j];
			int rc = seal_encrypt(k, ck->key_id, device_id, ck->password, ck->sealed,
					      &ck->sealed_len);

			if (rc < 0)
				return rc;
		}
	return 0;
}

static void job_init(struct checkin_job *a, const struct seal *k, const char *device_id,
		     const struct checkin *ci, int64_t now, struct checkin_result *res)
{
	memset(res, 0, sizeof(*res));
	memset(a, 0, sizeof(*a));
	a->seal = k;
	a->device_id = device_id;
	a->ci = ci;
	a->now = now;
	a->res = res;
}

int checkin_apply(struct store *s, const struct seal *k, const char *device_id,
		  struct checkin *ci, int64_t now, struct checkin_result *res)
{
	struct checkin_job a;
	int rc;

	job_init(&a, k, device_id, ci, now, res);
	if ((rc = seal_keys(k, device_id, ci)) < 0)
		return rc;
	rc = store_write(s, apply_tx, &a);
	if (rc < 0)
		checkin_result_free(res);
	return rc;
}

int checkin_apply_async(struct store *s, const struct seal *k, const char *device_id,
			const uint8_t *secret_hash, struct checkin *ci, int64_t now,
			struct checkin_result *res, struct checkin_job *job,
			store_done_fn done, void *done_arg)
{
	int rc;

	job_init(job, k, device_id, ci, now, res);
	job->secret_hash = secret_hash;
	if ((rc = seal_keys(k, device_id, ci)) < 0)
		return rc;
	return store_write_async(s, apply_tx, job, done, done_arg);
}

void checkin_result_free(struct checkin_result *res)
{
	if (!res)
		return;
	free(res->rotate);
	res->rotate = NULL;
	res->nrotate = 0;
	res->keys_added = 0;
}
