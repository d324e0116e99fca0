#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "agent/body.h"
#include "util/err.h"
#include "util/jsonwipe.h"
#include "util/timeutil.h"

/* json_object_set_new on a fresh value: false when either allocation failed. */
static bool put(json_t *obj, const char *k, json_t *v)
{
	return v && json_object_set_new(obj, k, v) == 0;
}

static json_t *volume_json(const struct agent_volume *v)
{
	json_t *o = json_object(), *keys = json_array();

	if (!o || !keys)
		goto fail;
	if (!put(o, "id", json_string(v->id)) || !put(o, "mount", json_string(v->mount)) ||
	    !put(o, "type", json_string(v->type)) ||
	    !put(o, "protection", json_string(v->protection)) ||
	    !put(o, "encryption", json_string(v->encryption)) ||
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

	if (!o || !vols || !logons)
		goto fail;
	if (!put(o, "os", json_string(f->os)))
		goto fail;
	for (size_t i = 0; i < f->nvolumes; i++)
		if (json_array_append_new(vols, volume_json(&f->volumes[i])) < 0)
			goto fail;
	for (size_t i = 0; i < f->nlogons; i++) {
		char at[TIME_ISO_LEN];
		json_t *l = json_object();

		time_format_iso(f->logons[i].at, at);
		if (!l || json_array_append_new(logons, l) < 0 ||
		    !put(l, "user", json_string(f->logons[i].user)) ||
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
	return 0;
}

void body_encryption_name(const char *cipher, const char *mode, char *out, size_t outlen)
{
	char tmp[128];
	size_t j = 0;

	snprintf(tmp, sizeof(tmp), "%s%s%s", cipher ? cipher : "", mode && *mode ? "-" : "",
		 mode ? mode : "");
	for (size_t i = 0; tmp[i] && j + 1 < outlen; i++) {
		unsigned char c = (unsigned char)tmp[i];

		out[j++] = c == '-' || c == ':' ? '_' : (char)tolower(c);
	}
	if (outlen)
		out[j] = '\0';
}
