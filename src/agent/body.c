#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "agent/body.h"
#include "util/err.h"
#include "util/jsonwipe.h"
#include "util/timeutil.h"

/* The length of the UTF-8 character at p as the server's text check takes
 * it (no overlong forms, surrogates or code points past U+10FFFF), with its
 * code point in *cp; 0 when p does not start a valid one. */
static size_t utf8_char(const unsigned char *p, uint32_t *cp)
{
	size_t n;
	uint32_t c = p[0], min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2; c &= 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3; c &= 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4; c &= 0x07; min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

void body_clean_text(const char *in, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t j = 0;

	if (!outlen)
		return;
	while (p && *p) {
		uint32_t cp = 0;
		size_t n = utf8_char(p, &cp);

		if (!n || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
			/* One '?' for a byte that is not text, or a control character. */
			if (j + 1 >= outlen)
				break;
			out[j++] = '?';
			p += n ? n : 1;
			continue;
		}
		if (j + n >= outlen)
			break;    /* cut before a character, never inside one */
		memcpy(out + j, p, n);
		j += n;
		p += n;
	}
	out[j] = '\0';
}

void body_mount_decode(const char *raw, char *out, size_t outlen)
{
	char tmp[4096];
	size_t j = 0;

	/* mountinfo writes space, tab, newline and backslash as \ooo. */
	for (size_t i = 0; raw[i] && j + 1 < sizeof(tmp); i++) {
		if (raw[i] == '\\' && raw[i + 1] >= '0' && raw[i + 1] <= '3' &&
		    raw[i + 2] >= '0' && raw[i + 2] <= '7' && raw[i + 3] >= '0' && raw[i + 3] <= '7') {
			tmp[j++] = (char)((raw[i + 1] - '0') * 64 + (raw[i + 2] - '0') * 8 +
					  (raw[i + 3] - '0'));
			i += 3;
		} else {
			tmp[j++] = raw[i];
		}
	}
	tmp[j] = '\0';
	body_clean_text(tmp, out, outlen);
}

/* json_object_set_new on a fresh value: false when either allocation failed. */
static bool put(json_t *obj, const char *k, json_t *v)
{
	return v && json_object_set_new(obj, k, v) == 0;
}

static json_t *volume_json(const struct agent_volume *v)
{
	json_t *o = json_object(), *keys = json_array();
	char mount[CHECKIN_MOUNT_MAX + 1], enc[BODY_ENCRYPTION_MAX + 1];

	if (!o || !keys)
		goto fail;
	/* Whatever was found, the server accepts it: one odd field would make
	 * it refuse the whole check-in (and the keys in it). */
	body_clean_text(v->mount, mount, sizeof(mount));
	body_encryption_name(v->encryption, NULL, enc, sizeof(enc));
	if (!put(o, "id", json_string(v->id)) || !put(o, "mount", json_string(mount)) ||
	    !put(o, "type", json_string(v->type)) ||
	    !put(o, "protection", json_string(v->protection)) ||
	    !put(o, "encryption", json_string(enc)) ||
	    !put(o, "percent_encrypted", json_integer(v->percent)))
		goto fail;
	for (size_t i = 0; i < v->nkeys; i++) {
		json_t *k = json_object();

		if (!k || json_array_append_new(keys, k) < 0 ||
		    !put(k, "key_id", json_string(v->keys[i].key_id)) ||
		    !put(k, "recovery_password", json_string(v->keys[i].password)))
			goto fail;
	}
	if (!put(o, "recovery_keys", keys)) {
		keys = NULL;    /* freed by json_object_set_new */
		goto fail;
	}
	return o;
fail:
	json_decref(keys);
	json_decref(o);
	return NULL;
}

json_t *body_json(const struct agent_facts *f)
{
	json_t *o = json_object(), *vols = json_array(), *logons = json_array();

	char text[CHECKIN_TEXT_MAX + 1];

	if (!o || !vols || !logons)
		goto fail;
	body_clean_text(f->os, text, sizeof(text));
	if (!put(o, "os", json_string(text)))
		goto fail;
	for (size_t i = 0; i < f->nvolumes; i++)
		if (json_array_append_new(vols, volume_json(&f->volumes[i])) < 0)
			goto fail;
	for (size_t i = 0; i < f->nlogons; i++) {
		char at[TIME_ISO_LEN];
		json_t *l = json_object();

		time_format_iso(f->logons[i].at, at);
		body_clean_text(f->logons[i].user, text, sizeof(text));
		if (!l || json_array_append_new(logons, l) < 0 ||
		    !put(l, "user", json_string(text)) ||
		    !put(l, "type", json_string(f->logons[i].remote ? "remote" : "local")) ||
		    !put(l, "at", json_string(at)))
			goto fail;
	}
	if (json_object_set_new(o, "volumes", vols) < 0) {
		vols = NULL;
		goto fail;
	}
	vols = NULL;
	if (json_object_set_new(o, "logons", logons) < 0) {
		logons = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(vols);
	json_decref(logons);
	json_decref(o);
	return NULL;
}

int body_build(const struct agent_facts *f, char **out, size_t *outlen)
{
	json_t *o = body_json(f);

	*out = NULL;
	if (!o)
		return KW_ERR_NOMEM;
	*out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!*out)
		return KW_ERR_NOMEM;
	*outlen = strlen(*out);
	if (*outlen > BODY_MAX) {
		sodium_memzero(*out, *outlen);
		json_free_string(*out);
		*out = NULL;
		return KW_ERR_TOO_LARGE;
	}
	return 0;
}

void body_encryption_name(const char *cipher, const char *mode, char *out, size_t outlen)
{
	char tmp[128];
	size_t j = 0;

	snprintf(tmp, sizeof(tmp), "%s%s%s", cipher ? cipher : "", mode && *mode ? "-" : "",
		 mode ? mode : "");
	for (size_t i = 0; tmp[i] && j + 1 < outlen && j < BODY_ENCRYPTION_MAX; i++) {
		unsigned char c = (unsigned char)tolower((unsigned char)tmp[i]);

		/* The server takes [a-z0-9_] only (plain ASCII: no locale). */
		out[j++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? (char)c : '_';
	}
	if (outlen)
		out[j] = '\0';
}
