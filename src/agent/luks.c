#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <jansson.h>
#include <libcryptsetup.h>
#include <sodium.h>

#include "agent/body.h"
#include "agent/luks.h"
#include "agent/state.h"
#include "util/err.h"
#include "util/str.h"

static void quiet_log(int level, const char *msg, void *arg)
{
	(void)level;
	(void)msg;
	(void)arg;
}

void luks_global_init(void)
{
	crypt_set_log_callback(NULL, quiet_log, NULL);
	crypt_token_external_disable();
}

void luks_new_password(char out[RECPW_CANON_LEN + 1])
{
	size_t j = 0;

	for (int g = 0; g < RECPW_GROUPS; g++) {
		uint32_t v = 11u * randombytes_uniform(65536);

		for (int d = 5; d >= 0; d--) {
			out[j + (size_t)d] = (char)('0' + v % 10);
			v /= 10;
		}
		j += 6;
		if (g + 1 < RECPW_GROUPS)
			out[j++] = '-';
	}
	out[j] = '\0';
}

void luks_new_key_id(char out[KEYID_CANON_LEN + 1])
{
	uint8_t b[16];
	char hex[KEYID_HEX_LEN + 1];

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);    /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);    /* RFC 4122 variant */
	str_hex(b, sizeof(b), hex);
	for (size_t i = 0; i < KEYID_HEX_LEN; i++)
		hex[i] = (char)toupper((unsigned char)hex[i]);
	keyid_format(hex, out);
}

/* Opens and loads path's LUKS2 header. */
static int open_luks2(const char *path, struct crypt_device **cd, char *msg, size_t msglen)
{
	int r;

	*cd = NULL;
	if ((r = crypt_init(cd, path)) < 0) {
		str_msg(msg, msglen, "%s: cannot open: %s", path, strerror(-r));
		return KW_ERR_IO;
	}
	if ((r = crypt_load(*cd, CRYPT_LUKS2, NULL)) < 0) {
		str_msg(msg, msglen, "%s: not a LUKS2 volume (%s)", path, strerror(-r));
		crypt_free(*cd);
		*cd = NULL;
		return KW_ERR_INVALID;
	}
	return 0;
}

/* Parses token t when it is one of ours: key ID, slot, escrowed. */
static bool token_ours(struct crypt_device *cd, int t, struct luks_key *k)
{
	const char *text, *type = NULL;
	json_t *o = NULL, *slots;
	char msg[8];
	const char *kid;
	bool ok = false;
	crypt_token_info st = crypt_token_status(cd, t, &type);

	if (st == CRYPT_TOKEN_INVALID || st == CRYPT_TOKEN_INACTIVE || !type ||
	    strcmp(type, LUKS_TOKEN_TYPE))
		return false;
	if (crypt_token_json_get(cd, t, &text) < 0 || !(o = json_loads(text, 0, NULL)))
		return false;
	memset(k, 0, sizeof(*k));
	k->token = t;
	k->slot = -1;
	kid = json_string_value(json_object_get(o, "key_id"));
	if (!kid || keyid_parse(kid, strlen(kid), k->key_id, msg, sizeof(msg)) < 0)
		goto out;
	k->escrowed = json_is_true(json_object_get(o, "escrowed"));
	slots = json_object_get(o, "keyslots");
	if (json_array_size(slots) == 1) {
		int64_t s;
		const char *sv = json_string_value(json_array_get(slots, 0));

		if (sv && str_to_i64(sv, 0, 1023, &s) == 0)
			k->slot = (int)s;
	}
	ok = true;
out:
	json_decref(o);
	return ok;
}

static int load_keys(struct crypt_device *cd, const char *state_dir, bool verify,
		     struct luks_volume *v)
{
	int tmax = crypt_token_max(CRYPT_LUKS2), smax = crypt_keyslot_max(CRYPT_LUKS2);

	v->nkeys = 0;
	v->active_slots = v->free_slots = 0;
	for (int s = 0; s < smax; s++) {
		crypt_keyslot_info ks = crypt_keyslot_status(cd, s);

		if (ks == CRYPT_SLOT_ACTIVE || ks == CRYPT_SLOT_ACTIVE_LAST || ks == CRYPT_SLOT_UNBOUND)
			v->active_slots++;
		else if (ks == CRYPT_SLOT_INACTIVE)
			v->free_slots++;
	}
	for (int t = 0; t < tmax && v->nkeys < LUKS_MAX_KEYS; t++) {
		struct luks_key *k = &v->keys[v->nkeys];
		int fslot;

		if (!token_ours(cd, t, k))
			continue;
		v->nkeys++;
		if (k->slot >= 0) {
			crypt_keyslot_info ks = crypt_keyslot_status(cd, k->slot);

			k->active = ks == CRYPT_SLOT_ACTIVE || ks == CRYPT_SLOT_ACTIVE_LAST;
		}
		k->known = state_key_read(state_dir, k->key_id, k->password, &fslot, NULL) == 0;
		if (!k->known)
			sodium_memzero(k->password, sizeof(k->password));
		/* An escrowed key was proven before it was escrowed, and a slot
		 * killed since would have left its token: no PBKDF run again. */
		if (verify && k->known && k->active) {
			if (!k->escrowed) {
				int a = crypt_activate_by_passphrase(cd, NULL, k->slot, k->password,
								     strlen(k->password), 0);

				k->check = a == k->slot ? 1 : a < 0 ? a : -EINVAL;
			}
			k->opens = k->escrowed || k->check == 1;
		}
	}
	return 0;
}

int luks_inspect(const char *path, const char *state_dir, bool verify,
		 struct luks_volume *v, char *msg, size_t msglen)
{
	struct crypt_device *cd = NULL;
	const char *type, *uuid;
	char m[8];
	int r;

	memset(v, 0, sizeof(*v));
	if ((size_t)snprintf(v->path, sizeof(v->path), "%s", path) >= sizeof(v->path)) {
		str_msg(msg, msglen, "%s: path too long", path);
		return KW_ERR_TOO_LARGE;
	}
	if ((r = crypt_init(&cd, path)) < 0) {
		str_msg(msg, msglen, "%s: cannot open: %s", path, strerror(-r));
		return KW_ERR_IO;
	}
	if (crypt_load(cd, CRYPT_LUKS, NULL) < 0) {
		r = 0;    /* not LUKS: v->type stays "" */
		goto out;
	}
	type = crypt_get_type(cd);
	snprintf(v->type, sizeof(v->type), "%s", type ? type : "");
	uuid = crypt_get_uuid(cd);
	if (uuid)
		keyid_parse(uuid, strlen(uuid), v->uuid, m, sizeof(m));
	body_encryption_name(crypt_get_cipher(cd), crypt_get_cipher_mode(cd), v->encryption,
			     sizeof(v->encryption));
	r = 0;
	if (!strcmp(v->type, CRYPT_LUKS2))
		r = load_keys(cd, state_dir, verify, v);
out:
	crypt_free(cd);
	return r;
}

void luks_volume_wipe(struct luks_volume *v)
{
	sodium_memzero(v->keys, sizeof(v->keys));
}

static int token_json(const char *key_id, int slot, bool escrowed, char *out, size_t len)
{
	return (size_t)snprintf(out, len,
				"{\"type\":\"" LUKS_TOKEN_TYPE "\",\"keyslots\":[\"%d\"],"
				"\"key_id\":\"%s\",\"escrowed\":%s}",
				slot, key_id, escrowed ? "true" : "false") < len ? 0 : KW_ERR_TOO_LARGE;
}

static int set_pbkdf(struct crypt_device *cd, const struct luks_pbkdf *p)
{
	struct crypt_pbkdf_type t;
	const struct crypt_pbkdf_type *def;

	if (!p || !p->type || !strcmp(p->type, "default"))
		return 0;
	if (!(def = crypt_get_pbkdf_default(CRYPT_LUKS2)))
		return KW_ERR_CRYPTO;
	t = *def;
	t.type = !strcmp(p->type, "pbkdf2") ? CRYPT_KDF_PBKDF2 :
		 !strcmp(p->type, "argon2i") ? CRYPT_KDF_ARGON2I : CRYPT_KDF_ARGON2ID;
	t.time_ms = p->time_ms;
	t.flags = 0;
	if (!strcmp(p->type, "pbkdf2")) {
		t.max_memory_kb = 0;
		t.parallel_threads = 0;
		if (p->iterations) {
			t.iterations = p->iterations < 1000 ? 1000 : p->iterations;
			t.flags = CRYPT_PBKDF_NO_BENCHMARK;
		}
	}
	return crypt_set_pbkdf_type(cd, &t) < 0 ? KW_ERR_CRYPTO : 0;
}

int luks_add_key(const char *path, const char *state_dir, const struct luks_pbkdf *pbkdf,
		 const char *existing, size_t existing_len, char key_id[KEYID_CANON_LEN + 1],
		 char *msg, size_t msglen)
{
	struct crypt_device *cd = NULL;
	char pw[RECPW_CANON_LEN + 1], tok[256], vol[KEYID_CANON_LEN + 1], m[8];
	const char *uuid;
	int slot = -1, smax, r, added = -1, token = -1;
	bool filed = false;

	if ((r = open_luks2(path, &cd, msg, msglen)) < 0)
		return r;
	smax = crypt_keyslot_max(CRYPT_LUKS2);
	for (int s = 0; s < smax && slot < 0; s++)
		if (crypt_keyslot_status(cd, s) == CRYPT_SLOT_INACTIVE)
			slot = s;
	if (slot < 0) {
		str_msg(msg, msglen, "%s: the keyslot table is full (%d slots); nothing changed",
			path, smax);
		r = KW_ERR_LIMIT;
		goto out;
	}
	uuid = crypt_get_uuid(cd);
	if (!uuid || keyid_parse(uuid, strlen(uuid), vol, m, sizeof(m)) < 0) {
		str_msg(msg, msglen, "%s: the LUKS2 header has no valid UUID", path);
		r = KW_ERR_INVALID;
		goto out;
	}
	luks_new_password(pw);
	luks_new_key_id(key_id);
	/* The password is on disk before the slot exists: a run killed from
	 * here on leaves a file luks_repair can match to the slot. */
	if ((r = state_key_write(state_dir, key_id, pw, slot, vol)) < 0) {
		str_msg(msg, msglen, "%s: cannot write the key file in %s: %s", path, state_dir,
			kw_strerror(r));
		goto out;
	}
	filed = true;
	if ((r = set_pbkdf(cd, pbkdf)) < 0) {
		str_msg(msg, msglen, "%s: cannot set the PBKDF %s", path, pbkdf->type);
		goto out;
	}
	added = crypt_keyslot_add_by_passphrase(cd, slot, existing, existing_len, pw, strlen(pw));
	if (added == -EPERM) {
		/* libcryptsetup unlocks with existing first: one key derivation
		 * fewer than checking it beforehand. */
		str_msg(msg, msglen, "%s: the passphrase given opens no keyslot; nothing changed",
			path);
		r = KW_ERR_AUTH;
		goto out;
	}
	if (added < 0) {
		str_msg(msg, msglen, "%s: cannot add a keyslot: %s%s", path, strerror(-added),
			added == -ENOSPC ? " (the keyslot area is full); nothing changed" : "");
		r = added == -ENOSPC ? KW_ERR_LIMIT : KW_ERR_CRYPTO;
		goto out;
	}
	if ((r = token_json(key_id, added, false, tok, sizeof(tok))) < 0)
		goto out;
	token = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, tok);
	if (token < 0) {
		str_msg(msg, msglen, "%s: cannot add the LUKS2 token: %s", path, strerror(-token));
		r = KW_ERR_IO;
		goto out;
	}
	if (crypt_activate_by_passphrase(cd, NULL, added, pw, strlen(pw), 0) != added) {
		str_msg(msg, msglen, "%s: the new keyslot %d does not open the volume; removed",
			path, added);
		r = KW_ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	if (r < 0) {
		/* Undo in the reverse order: slot, token, file. */
		if (added >= 0)
			crypt_keyslot_destroy(cd, added);
		if (token >= 0)
			crypt_token_json_set(cd, token, NULL);
		if (filed)
			state_key_remove(state_dir, key_id);
	}
	sodium_memzero(pw, sizeof(pw));
	crypt_free(cd);
	return r;
}

static int find_token(struct crypt_device *cd, const char *key_id, struct luks_key *k)
{
	int tmax = crypt_token_max(CRYPT_LUKS2);

	for (int t = 0; t < tmax; t++)
		if (token_ours(cd, t, k) && !strcmp(k->key_id, key_id))
			return 0;
	return KW_ERR_NOT_FOUND;
}

int luks_mark_escrowed(const char *path, const char *key_id, char *msg, size_t msglen)
{
	struct crypt_device *cd = NULL;
	struct luks_key k;
	char tok[256];
	int r;

	if ((r = open_luks2(path, &cd, msg, msglen)) < 0)
		return r;
	if ((r = find_token(cd, key_id, &k)) < 0) {
		str_msg(msg, msglen, "%s: no token for key %s", path, key_id);
		goto out;
	}
	if (k.escrowed)
		goto out;
	if ((r = token_json(key_id, k.slot, true, tok, sizeof(tok))) < 0)
		goto out;
	if (crypt_token_json_set(cd, k.token, tok) < 0) {
		str_msg(msg, msglen, "%s: cannot update the token of key %s", path, key_id);
		r = KW_ERR_IO;
	}
out:
	crypt_free(cd);
	return r;
}

static bool slot_active(struct crypt_device *cd, int s)
{
	crypt_keyslot_info ks = crypt_keyslot_status(cd, s);

	return ks == CRYPT_SLOT_ACTIVE || ks == CRYPT_SLOT_ACTIVE_LAST;
}

static int count_active(struct crypt_device *cd)
{
	int n = 0, smax = crypt_keyslot_max(CRYPT_LUKS2);

	for (int s = 0; s < smax; s++)
		n += slot_active(cd, s);
	return n;
}

/* Proves in this run that key_id's password file names its token's slot
 * and opens it: 0, KW_ERR_PERM (not proven: -EPERM or another slot), or
 * KW_ERR_IO (the test itself failed). */
static int prove_key(struct crypt_device *cd, const char *state_dir, const struct luks_key *k)
{
	char pw[RECPW_CANON_LEN + 1];
	int fslot = -1, a, r;

	if (state_key_read(state_dir, k->key_id, pw, &fslot, NULL) < 0 || fslot != k->slot) {
		r = KW_ERR_PERM;
		goto out;
	}
	a = crypt_activate_by_passphrase(cd, NULL, k->slot, pw, strlen(pw), 0);
	r = a == k->slot ? 0 : a == -EPERM || a >= 0 ? KW_ERR_PERM : KW_ERR_IO;
out:
	sodium_memzero(pw, sizeof(pw));
	return r;
}

int luks_kill_key(const char *path, const char *state_dir, const char *key_id,
		  const char *keep_key_id, bool *slot_kept, char *msg, size_t msglen)
{
	struct crypt_device *cd = NULL;
	struct luks_key k, keep;
	int r;

	*slot_kept = false;
	if ((r = open_luks2(path, &cd, msg, msglen)) < 0)
		return r;
	if ((r = find_token(cd, key_id, &k)) < 0) {
		str_msg(msg, msglen, "%s: no token for key %s", path, key_id);
		goto out;
	}
	if (k.slot < 0) {
		str_msg(msg, msglen, "%s: the token of key %s names no single keyslot; kept", path,
			key_id);
		r = KW_ERR_PERM;
		goto out;
	}
	if (slot_active(cd, k.slot)) {
		if (count_active(cd) < 2) {
			str_msg(msg, msglen, "%s: keyslot %d of key %s is the volume's last; kept",
				path, k.slot, key_id);
			r = KW_ERR_PERM;
			goto out;
		}
		/* The replacement first: it must open the volume now. */
		if (find_token(cd, keep_key_id, &keep) < 0 || keep.slot < 0 ||
		    keep.slot == k.slot || !slot_active(cd, keep.slot) ||
		    (r = prove_key(cd, state_dir, &keep)) < 0) {
			r = r == KW_ERR_IO ? r : KW_ERR_PERM;
			str_msg(msg, msglen, "%s: the new key %s is not proven to open the volume%s; "
				"keyslot %d of key %s kept", path, keep_key_id,
				r == KW_ERR_IO ? " (it cannot be tested now)" : "", k.slot, key_id);
			goto out;
		}
		/* Only the slot the agent made: its own password opens it. A slot
		 * it does not open (reused by someone, or its key material wiped by
		 * a destroy killed halfway) stays; the agent lets go of the key. */
		if ((r = prove_key(cd, state_dir, &k)) == KW_ERR_IO) {
			str_msg(msg, msglen, "%s: keyslot %d of key %s cannot be tested now; kept",
				path, k.slot, key_id);
			goto out;
		}
		if (r < 0) {
			str_msg(msg, msglen, "%s: keyslot %d does not open with the password of key "
				"%s: not proven the agent's, so kept; the agent's token and file of "
				"that key removed", path, k.slot, key_id);
			*slot_kept = true;
		} else if (crypt_keyslot_destroy(cd, k.slot) < 0) {
			str_msg(msg, msglen, "%s: cannot remove keyslot %d", path, k.slot);
			r = KW_ERR_IO;
			goto out;
		}
	}
	if (crypt_token_json_set(cd, k.token, NULL) < 0) {
		str_msg(msg, msglen, "%s: cannot remove the token of key %s", path, key_id);
		r = KW_ERR_IO;
		goto out;
	}
	if ((r = state_key_remove(state_dir, key_id)) < 0)
		str_msg(msg, msglen, "%s: cannot remove the key file of %s", path, key_id);
	if (r < 0)
		*slot_kept = false;
out:
	sodium_memzero(&k, sizeof(k));
	sodium_memzero(&keep, sizeof(keep));
	crypt_free(cd);
	return r;
}

struct repair_ctx {
	struct crypt_device *cd;
	const char *state_dir;
	const struct luks_volume *v;
	bool changed;
	bool untested;
	int err;
};

/* A password file of this volume that no token names: its slot gets a
 * token when the password opens it (a run killed between the slot and the
 * token); otherwise the password opens nothing (killed before the slot was
 * added, or after the slot and its token were removed) and the file goes. */
static int repair_file(const char *key_id, void *arg)
{
	struct repair_ctx *c = arg;
	char pw[RECPW_CANON_LEN + 1], tok[256], vol[KEYID_CANON_LEN + 1];
	bool named = false;
	int slot, a;

	for (size_t i = 0; i < c->v->nkeys; i++)
		named |= !strcmp(c->v->keys[i].key_id, key_id);
	if (named || state_key_read(c->state_dir, key_id, pw, &slot, vol) < 0 ||
	    strcmp(vol, c->v->uuid))
		return 0;    /* another volume's, or damaged: left alone */
	for (size_t i = 0; i < c->v->nkeys; i++)
		named |= c->v->keys[i].slot == slot;
	a = !named && slot >= 0 && slot_active(c->cd, slot) ?
	    crypt_activate_by_passphrase(c->cd, NULL, slot, pw, strlen(pw), 0) : -EPERM;
	if (a == slot) {
		if (token_json(key_id, slot, false, tok, sizeof(tok)) == 0 &&
		    crypt_token_json_set(c->cd, CRYPT_ANY_TOKEN, tok) >= 0)
			c->changed = true;
		else
			c->err = KW_ERR_IO;
	} else if (a != -EPERM && a < 0) {
		/* Not tested (ENOMEM, EIO): the file may be the slot's only copy. */
		c->untested = true;
	} else if (state_key_remove(c->state_dir, key_id) == 0) {
		c->changed = true;
	}
	sodium_memzero(pw, sizeof(pw));
	return 0;
}

int luks_repair(const char *path, const char *state_dir, bool *changed, char *msg,
		size_t msglen)
{
	struct crypt_device *cd = NULL;
	struct luks_volume *v = NULL;
	struct repair_ctx ctx;
	const char *uuid;
	char m[8];
	int r, untested = -1;

	*changed = false;
	if (!(v = calloc(1, sizeof(*v))))
		return KW_ERR_NOMEM;
	if ((r = open_luks2(path, &cd, msg, msglen)) < 0)
		goto out;
	uuid = crypt_get_uuid(cd);
	if (!uuid || keyid_parse(uuid, strlen(uuid), v->uuid, m, sizeof(m)) < 0) {
		str_msg(msg, msglen, "%s: the LUKS2 header has no valid UUID", path);
		r = KW_ERR_INVALID;
		goto out;
	}
	load_keys(cd, state_dir, true, v);
	for (size_t i = 0; i < v->nkeys; i++) {
		struct luks_key *k = &v->keys[i];

		if (k->slot < 0 || !k->active) {
			/* Its slot is gone (killed before its token was). */
			if (crypt_token_json_set(cd, k->token, NULL) < 0) {
				r = KW_ERR_IO;
				str_msg(msg, msglen, "%s: cannot remove a stale token", path);
				goto out;
			}
			state_key_remove(state_dir, k->key_id);
			*changed = true;
		} else if (!k->escrowed && k->known && k->check != 1 && k->check != -EPERM) {
			/* Not tested (ENOMEM, EIO): nothing is known, nothing changes. */
			untested = k->slot;
		} else if (!k->escrowed && !k->opens) {
			/* Password lost, or it does not open the slot: the slot is
			 * not proven to be the agent's (someone may have reused
			 * it) and stays; only the agent's token and file go. */
			if (crypt_token_json_set(cd, k->token, NULL) < 0) {
				r = KW_ERR_IO;
				str_msg(msg, msglen, "%s: cannot remove the token of keyslot %d",
					path, k->slot);
				goto out;
			}
			state_key_remove(state_dir, k->key_id);
			*changed = true;
		}
	}
	luks_volume_wipe(v);
	load_keys(cd, state_dir, false, v);
	ctx = (struct repair_ctx){ cd, state_dir, v, false, false, 0 };
	r = state_key_each(state_dir, repair_file, &ctx);
	if (r == 0 && ctx.err < 0) {
		r = ctx.err;
		str_msg(msg, msglen, "%s: cannot add a token for a keyslot made before", path);
	} else if (r == 0 && (untested >= 0 || ctx.untested)) {
		r = KW_ERR_IO;
		if (untested >= 0)
			str_msg(msg, msglen, "%s: the agent's password for keyslot %d cannot be "
				"tested now; that key left as it is", path, untested);
		else
			str_msg(msg, msglen, "%s: a password file of the agent cannot be tested "
				"against its keyslot now; left as it is", path);
	}
	*changed |= ctx.changed;
out:
	if (v) {
		luks_volume_wipe(v);
		free(v);
	}
	crypt_free(cd);
	return r;
}

int luks_find(char out[][LUKS_PATH_MAX], size_t max)
{
	FILE *f = fopen("/proc/partitions", "re");
	char line[256], name[128];
	size_t n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned maj, mn;
		unsigned long long blocks;
		struct crypt_device *cd = NULL;

		if (sscanf(line, " %u %u %llu %127s", &maj, &mn, &blocks, name) != 4 ||
		    !strncmp(name, "dm-", 3) || !strncmp(name, "ram", 3))
			continue;
		snprintf(out[n], LUKS_PATH_MAX, "/dev/%s", name);
		if (crypt_init(&cd, out[n]) == 0 && crypt_load(cd, CRYPT_LUKS, NULL) == 0)
			n++;
		crypt_free(cd);
	}
	fclose(f);
	return (int)n;
}

/* Reads a small sysfs file's first line. */
static int read_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return KW_ERR_IO;
	ok = fgets(out, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return KW_ERR_IO;
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

void luks_mount_of(const char *uuid, char *mount, size_t mountlen)
{
	char want[80], hex[KEYID_HEX_LEN + 1], path[512], line[4096], dev[32] = "", best[1024] = "";
	struct dirent *e;
	DIR *d;
	FILE *f;

	mount[0] = '\0';
	keyid_to_hex(uuid, hex);
	for (char *p = hex; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	snprintf(want, sizeof(want), "CRYPT-LUKS2-%s-", hex);
	if (!(d = opendir("/sys/block")))
		return;
	while (!*dev && (e = readdir(d))) {
		char u[256];

		if (strncmp(e->d_name, "dm-", 3))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/dm/uuid", e->d_name);
		if (read_line(path, u, sizeof(u)) == 0 && !strncmp(u, want, strlen(want))) {
			snprintf(path, sizeof(path), "/sys/block/%s/dev", e->d_name);
			read_line(path, dev, sizeof(dev));
		}
	}
	closedir(d);
	if (!*dev || !(f = fopen("/proc/self/mountinfo", "re")))
		return;
	/* "36 35 253:0 / /mnt ...": the third field is the device, the fifth
	 * the mount point (octal escapes, decoded once the shortest is known). */
	while (fgets(line, sizeof(line), f)) {
		char mm[32], root[1024], mp[1024];

		if (sscanf(line, "%*s %*s %31s %1023s %1023s", mm, root, mp) == 3 &&
		    !strcmp(mm, dev) && !strcmp(root, "/")) {
			if (!*best || strlen(mp) < strlen(best))
				snprintf(best, sizeof(best), "%s", mp);
		}
	}
	fclose(f);
	body_mount_decode(best, mount, mountlen);
}

const char *luks_media_type(const char *path)
{
	char real[PATH_MAX], sys[PATH_MAX + 64], val[16];
	const char *base;

	if (!realpath(path, real) || strncmp(real, "/dev/", 5))
		return "fixed";
	base = real + 5;
	snprintf(sys, sizeof(sys), "/sys/class/block/%s/removable", base);
	if (read_line(sys, val, sizeof(val)) == 0)
		return strcmp(val, "1") ? "fixed" : "removable";
	snprintf(sys, sizeof(sys), "/sys/class/block/%s/../removable", base);
	if (read_line(sys, val, sizeof(val)) == 0 && !strcmp(val, "1"))
		return "removable";
	return "fixed";
}
