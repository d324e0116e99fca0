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
	rc = STORE_TX(tx, key_get, ck->key_id, existing_key, a);
	if (rc == KW_ERR_CONFLICT)
		snprintf(a->res->conflict_key, sizeof(a->res->conflict_key), "%s", ck->key_id);
	if (rc == 0 && a->reactivate)
		return STORE_TX(tx, key_set_state, a->reactivate, KEY_ACTIVE, a->now);
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
	if ((rc = STORE_TX(tx, key_insert, &k)) < 0)
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
		if ((rc = STORE_TX(tx, key_each_volume, a->volume_row,
				   KEY_STATE_BIT(KEY_ACTIVE) | KEY_STATE_BIT(KEY_DISCLOSED),
				   sweep_key, &sw)) < 0)
			return rc;
		for (size_t i = 0; i < sw.n; i++)
			if ((rc = STORE_TX(tx, key_set_state, sw.row[i], sw.to[i], a->now)) < 0)
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

	if (a->secret_hash &&
	    (rc = STORE_TX(tx, device_check_secret, a->device_id, a->secret_hash)) < 0)
		return rc;
	if ((rc = STORE_TX(tx, device_checked_in, a->device_id, ci->os, a->now)) < 0)
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
		if ((rc = STORE_TX(tx, volume_upsert, &v, &a->volume_row)) < 0)
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
		if ((rc = STORE_TX(tx, logon_upsert, &l)) < 0)
			return rc;
	}
	return STORE_TX(tx, key_each_device, a->device_id, KEY_STATE_BIT(KEY_DISCLOSED),
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
