#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/checkin.h"
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
