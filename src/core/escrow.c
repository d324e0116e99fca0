#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/escrow.h"
#include "core/keyfile.h"
#include "core/seal.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"

/* ---- applying ---- */


/* A check-in is applied in a few batch operations (a network database
 * answers each in one round trip): the device's live keys and the reported
 * keys are read first, what the report does to them is worked out here,
 * and the changes are written at the end. The outcome is the one of going
 * through the report a key at a time: volumes in the order reported, each
 * volume's keys, then its sweep. */

/* A key of the device that the check-in may change: a live one (active or
 * disclosed: a sweep may end it) or one it reports. state is the one the
 * check-in leaves it in. */
struct known {
	int64_t row;
	int64_t volume_row;
	char key_id[KEYID_CANON_LEN + 1];
	enum key_state state;
	bool changed;
};

/* What the store holds of a reported key. */
enum seen {
	SEEN_NEW = 0,             /* nothing: the key is new */
	SEEN_SAME,                /* the same key of this device */
	SEEN_OTHER_DEVICE,        /* conflicts */
	SEEN_OTHER_PASSWORD,      /* conflicts */
	SEEN_UNREADABLE,          /* its sealed password does not decrypt */
};

struct reported {
	const struct checkin_key *key;
	size_t volume;            /* index in ci->volumes */
	enum seen seen;
	int64_t row;              /* SEEN_SAME: the store's */
	int64_t volume_row;
	enum key_state state;
};

/* A reported key's ID and where it is in the report. */
struct id_index {
	const char *id;
	size_t rep;
};

struct apply {
	struct checkin_job *job;
	int64_t vol_row[CHECKIN_MAX_VOLUMES];
	struct reported *rep;     /* in report order */
	size_t nrep;
	const char **ids;         /* the reported key IDs, in report order */
	struct id_index *by_id;   /* the same, by key ID */
	struct known *known;
	size_t nknown, known_alloc;
	struct key_rec *inserts;
	size_t ninserts;
	struct key_change *changes;
	size_t nchanges;
};

static void apply_free(struct apply *ap)
{
	free(ap->rep);
	free(ap->ids);
	free(ap->by_id);
	free(ap->known);
	free(ap->inserts);
	free(ap->changes);
}

static int known_add(struct apply *ap, int64_t row, int64_t volume_row, const char *key_id,
		     enum key_state state)
{
	struct known *k;

	if (ap->nknown == ap->known_alloc) {
		size_t n = ap->known_alloc ? ap->known_alloc * 2 : 16;

		if (!(k = realloc(ap->known, n * sizeof(*k))))
			return KW_ERR_NOMEM;
		ap->known = k;
		ap->known_alloc = n;
	}
	k = &ap->known[ap->nknown++];
	memset(k, 0, sizeof(*k));
	k->row = row;
	k->volume_row = volume_row;
	snprintf(k->key_id, sizeof(k->key_id), "%s", key_id);
	k->state = state;
	return 0;
}

static struct known *known_find(struct apply *ap, int64_t row)
{
	for (size_t i = 0; i < ap->nknown; i++)
		if (ap->known[i].row == row)
			return &ap->known[i];
	return NULL;
}

static int live_key(const struct key_rec *k, void *arg)
{
	return known_add(arg, k->row, k->volume_row, k->key_id, k->state);
}

static int cmp_by_id(const void *a, const void *b)
{
	return strcmp(((const struct id_index *)a)->id, ((const struct id_index *)b)->id);
}

static int find_id(const void *key, const void *elem)
{
	return strcmp(key, ((const struct id_index *)elem)->id);
}

/* A reported key found in the store: the same device and the same
 * password, or a conflict. */
static int reported_key(const struct key_rec *k, void *arg)
{
	struct apply *ap = arg;
	struct checkin_job *a = ap->job;
	char pw[RECPW_CANON_LEN + 16];
	const struct id_index *i;
	struct reported *r;

	if (!(i = bsearch(k->key_id, ap->by_id, ap->nrep, sizeof(*ap->by_id), find_id)))
		return 0;
	r = &ap->rep[i->rep];
	if (strcmp(k->device_id, a->device_id)) {
		r->seen = SEEN_OTHER_DEVICE;
		return 0;
	}
	if (seal_decrypt(a->seal, k->key_id, k->device_id, k->sealed, k->sealed_len,
			 pw, sizeof(pw)) < 0) {
		r->seen = SEEN_UNREADABLE;
		return 0;
	}
	r->seen = sodium_memcmp(pw, r->key->password, RECPW_CANON_LEN + 1) == 0 ?
		SEEN_SAME : SEEN_OTHER_PASSWORD;
	sodium_memzero(pw, sizeof(pw));
	r->row = k->row;
	r->volume_row = k->volume_row;
	r->state = k->state;
	return 0;
}

/* The reported keys, in report order and indexed by ID. */
static int list_reported(struct apply *ap)
{
	const struct checkin *ci = ap->job->ci;
	size_t n = 0;

	for (size_t i = 0; i < ci->nvolumes; i++)
		n += ci->volumes[i].nkeys;
	if (!n)
		return 0;
	ap->rep = calloc(n, sizeof(*ap->rep));
	ap->ids = calloc(n, sizeof(*ap->ids));
	ap->by_id = calloc(n, sizeof(*ap->by_id));
	if (!ap->rep || !ap->ids || !ap->by_id)
		return KW_ERR_NOMEM;
	for (size_t i = 0; i < ci->nvolumes; i++)
		for (size_t j = 0; j < ci->volumes[i].nkeys; j++) {
			ap->rep[ap->nrep].key = &ci->volumes[i].keys[j];
			ap->rep[ap->nrep].volume = i;
			ap->ids[ap->nrep] = ci->volumes[i].keys[j].key_id;
			ap->by_id[ap->nrep].id = ap->ids[ap->nrep];
			ap->by_id[ap->nrep].rep = ap->nrep;
			ap->nrep++;
		}
	qsort(ap->by_id, n, sizeof(*ap->by_id), cmp_by_id);
	return 0;
}

/* What the store holds of the device's live keys and of the reported ones. */
static int read_keys(struct store_tx *tx, struct apply *ap)
{
	int rc;

	if ((rc = store_key_each_device(tx, ap->job->device_id,
					KEY_STATE_BIT(KEY_ACTIVE) | KEY_STATE_BIT(KEY_DISCLOSED),
					live_key, ap)) < 0 ||
	    (rc = store_key_get_many(tx, ap->ids, ap->nrep, reported_key, ap)) < 0)
		return rc;
	/* Reported keys of the device that are not live (removed,
	 * superseded) may change too. */
	for (size_t i = 0; i < ap->nrep; i++) {
		struct reported *r = &ap->rep[i];

		if (r->seen == SEEN_SAME && !known_find(ap, r->row) &&
		    (rc = known_add(ap, r->row, r->volume_row, r->key->key_id, r->state)) < 0)
			return rc;
	}
	return 0;
}

static bool in_volume(const struct checkin_volume *cv, const char *key_id)
{
	for (size_t i = 0; i < cv->nkeys; i++)
		if (!strcmp(cv->keys[i].key_id, key_id))
			return true;
	return false;
}

/* Goes through the report: a known key with a different password, or
 * escrowed by another device, is KW_ERR_CONFLICT; a new key is to be
 * inserted; a removed key reported again is active again; after each
 * volume's keys, its live keys that were not reported have left it
 * (active ones are removed, disclosed ones superseded). */
static int work_out(struct apply *ap)
{
	struct checkin_job *a = ap->job;
	const struct checkin *ci = a->ci;
	size_t r = 0;

	if (ap->nrep && !(ap->inserts = calloc(ap->nrep, sizeof(*ap->inserts))))
		return KW_ERR_NOMEM;
	for (size_t v = 0; v < ci->nvolumes; v++) {
		const struct checkin_volume *cv = &ci->volumes[v];

		for (; r < ap->nrep && ap->rep[r].volume == v; r++) {
			const struct reported *rp = &ap->rep[r];
			struct key_rec *k;
			struct known *kn;

			switch (rp->seen) {
			case SEEN_OTHER_DEVICE:
			case SEEN_OTHER_PASSWORD:
				snprintf(a->res->conflict_key, sizeof(a->res->conflict_key),
					 "%s", rp->key->key_id);
				a->res->conflict_why = rp->seen == SEEN_OTHER_DEVICE ?
					"this recovery key ID is escrowed for another device" :
					"a different recovery password is already escrowed "
					"for this key ID";
				return KW_ERR_CONFLICT;
			case SEEN_UNREADABLE:
				return KW_ERR_CRYPTO;
			case SEEN_SAME:
				kn = known_find(ap, rp->row);
				if (kn && kn->state == KEY_REMOVED) {
					kn->state = KEY_ACTIVE;
					kn->changed = true;
				}
				break;
			case SEEN_NEW:
				k = &ap->inserts[ap->ninserts++];
				snprintf(k->key_id, sizeof(k->key_id), "%s", rp->key->key_id);
				snprintf(k->device_id, sizeof(k->device_id), "%s", a->device_id);
				k->volume_row = ap->vol_row[v];
				k->state = KEY_ACTIVE;
				k->sealed = rp->key->sealed;   /* by seal_keys, before the job */
				k->sealed_len = rp->key->sealed_len;
				k->created_at = a->now;
				break;
			}
		}
		for (size_t i = 0; i < ap->nknown; i++) {
			struct known *kn = &ap->known[i];

			if (kn->volume_row != ap->vol_row[v] || in_volume(cv, kn->key_id))
				continue;
			if (kn->state == KEY_ACTIVE)
				kn->state = KEY_REMOVED;
			else if (kn->state == KEY_DISCLOSED)
				kn->state = KEY_SUPERSEDED;
			else
				continue;
			kn->changed = true;
		}
	}
	return 0;
}

static int cmp_row(const void *a, const void *b)
{
	const struct known *x = a, *y = b;

	return (x->row > y->row) - (x->row < y->row);
}

/* Keys disclosed and still on the device, by row: it must rotate them. */
static int list_rotate(struct apply *ap)
{
	struct checkin_result *res = ap->job->res;

	if (ap->nknown > 1)
		qsort(ap->known, ap->nknown, sizeof(*ap->known), cmp_row);
	for (size_t i = 0; i < ap->nknown; i++) {
		char (*r)[KEYID_CANON_LEN + 1];

		if (ap->known[i].state != KEY_DISCLOSED)
			continue;
		if (!(r = realloc(res->rotate, (res->nrotate + 1) * sizeof(*r))))
			return KW_ERR_NOMEM;
		res->rotate = r;
		snprintf(r[res->nrotate++], KEYID_CANON_LEN + 1, "%s", ap->known[i].key_id);
	}
	return 0;
}

static int write_changes(struct store_tx *tx, struct apply *ap)
{
	struct checkin_job *a = ap->job;
	int rc;

	if (ap->nknown && !(ap->changes = calloc(ap->nknown, sizeof(*ap->changes))))
		return KW_ERR_NOMEM;
	for (size_t i = 0; i < ap->nknown; i++)
		if (ap->known[i].changed) {
			ap->changes[ap->nchanges].row = ap->known[i].row;
			ap->changes[ap->nchanges++].state = ap->known[i].state;
		}
	if ((rc = store_key_insert_many(tx, ap->inserts, ap->ninserts)) < 0 ||
	    (rc = store_key_set_state_many(tx, ap->changes, ap->nchanges, a->now)) < 0)
		return rc;
	a->res->keys_added = ap->ninserts;
	return 0;
}

/* A reported volume and logon as the store's records. */
static void fill_volume(struct volume_rec *v, const struct checkin_job *a,
			const struct checkin_volume *cv)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->device_id, sizeof(v->device_id), "%s", a->device_id);
	snprintf(v->guid, sizeof(v->guid), "%s", cv->guid);
	v->mount = cv->mount;
	v->type = cv->type;
	v->protection = cv->protection;
	v->encryption = cv->encryption;
	v->percent = cv->percent;
	v->first_seen = v->last_seen = a->now;
}

static void fill_logon(struct logon_rec *l, const struct checkin_job *a,
		       const struct checkin_logon *cl)
{
	snprintf(l->device_id, sizeof(l->device_id), "%s", a->device_id);
	l->user = cl->user;
	l->type = cl->type;
	l->first_seen = l->last_seen = cl->at;
}

static int put_volumes(struct store_tx *tx, struct apply *ap)
{
	struct checkin_job *a = ap->job;
	const struct checkin *ci = a->ci;
	struct volume_rec v[CHECKIN_MAX_VOLUMES];

	for (size_t i = 0; i < ci->nvolumes; i++)
		fill_volume(&v[i], a, &ci->volumes[i]);
	return store_volume_upsert_many(tx, v, ci->nvolumes, ap->vol_row);
}

static int put_logons(struct store_tx *tx, const struct checkin_job *a)
{
	const struct checkin *ci = a->ci;
	struct logon_rec *l;
	int rc;

	if (!ci->nlogons)
		return 0;
	if (!(l = calloc(ci->nlogons, sizeof(*l))))
		return KW_ERR_NOMEM;
	for (size_t i = 0; i < ci->nlogons; i++)
		fill_logon(&l[i], a, &ci->logons[i]);
	rc = store_logon_upsert_many(tx, l, ci->nlogons);
	free(l);
	return rc;
}

static int apply_tx(struct store_tx *tx, void *arg)
{
	struct checkin_job *a = arg;
	struct apply ap;
	int rc;

	/* A rerun (KW_ERR_RETRY) reports its own run only. */
	checkin_result_free(a->res);
	a->res->conflict_key[0] = '\0';
	a->res->conflict_why = NULL;
	memset(&ap, 0, sizeof(ap));
	ap.job = a;
	if ((a->secret_hash &&
	     (rc = store_device_check_secret(tx, a->device_id, a->secret_hash)) < 0) ||
	    (rc = store_device_checked_in(tx, a->device_id, a->ci->os, a->now)) < 0 ||
	    (rc = put_volumes(tx, &ap)) < 0 ||
	    (rc = list_reported(&ap)) < 0 ||
	    (rc = read_keys(tx, &ap)) < 0 ||
	    (rc = work_out(&ap)) < 0 ||
	    (a->check_key && ap.ninserts && (rc = keyfile_check_tx(tx, a->seal)) < 0) ||
	    (rc = write_changes(tx, &ap)) < 0 ||
	    (rc = put_logons(tx, a)) < 0 ||
	    (rc = list_rotate(&ap)) < 0)
		goto out;
	rc = 0;
out:
	apply_free(&ap);
	return rc;
}

/* ---- several check-ins at once ---- */

/* The check-ins of a batch that take part in it (distinct devices whose
 * secret checked), and what the store hands back routed to them. */
struct batch {
	struct apply *ap;
	size_t n;
};

static struct apply *batch_find(struct batch *b, const char *device_id)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->ap[i].job->device_id, device_id))
			return &b->ap[i];
	return NULL;
}

static int batch_live_key(const struct key_rec *k, void *arg)
{
	struct apply *ap = batch_find(arg, k->device_id);

	return ap ? live_key(k, ap) : 0;
}

/* A reported key goes to every check-in that reported it. */
static int batch_reported_key(const struct key_rec *k, void *arg)
{
	struct batch *b = arg;
	int rc;

	for (size_t i = 0; i < b->n; i++)
		if (bsearch(k->key_id, b->ap[i].by_id, b->ap[i].nrep, sizeof(*b->ap[i].by_id),
			    find_id) && (rc = reported_key(k, &b->ap[i])) != 0)
			return rc;
	return 0;
}

/* Volumes, keys and their changes, and logons of the batch's check-ins:
 * one store operation each. */
static int batch_volumes(struct store_tx *tx, struct batch *b)
{
	struct volume_rec *v;
	int64_t *rows;
	size_t total = 0, at = 0;
	int rc = KW_ERR_NOMEM;

	for (size_t i = 0; i < b->n; i++)
		total += b->ap[i].job->ci->nvolumes;
	if (!total)
		return 0;
	v = calloc(total, sizeof(*v));
	rows = calloc(total, sizeof(*rows));
	if (!v || !rows)
		goto out;
	for (size_t i = 0; i < b->n; i++) {
		const struct checkin_job *a = b->ap[i].job;

		for (size_t k = 0; k < a->ci->nvolumes; k++)
			fill_volume(&v[at++], a, &a->ci->volumes[k]);
	}
	if ((rc = store_volume_upsert_many(tx, v, total, rows)) < 0)
		goto out;
	at = 0;
	for (size_t i = 0; i < b->n; i++)
		for (size_t k = 0; k < b->ap[i].job->ci->nvolumes; k++)
			b->ap[i].vol_row[k] = rows[at++];
out:
	free(v);
	free(rows);
	return rc;
}

static int batch_keys(struct store_tx *tx, struct batch *b)
{
	const char **ids = calloc(b->n, sizeof(*ids)), **rep = NULL;
	size_t nrep = 0, at = 0;
	int rc = KW_ERR_NOMEM;

	if (!ids)
		return rc;
	for (size_t i = 0; i < b->n; i++) {
		ids[i] = b->ap[i].job->device_id;
		nrep += b->ap[i].nrep;
	}
	if (nrep && !(rep = calloc(nrep, sizeof(*rep))))
		goto out;
	for (size_t i = 0; i < b->n; i++)
		for (size_t k = 0; k < b->ap[i].nrep; k++)
			rep[at++] = b->ap[i].ids[k];
	if ((rc = store_key_each_devices(tx, ids, b->n,
					 KEY_STATE_BIT(KEY_ACTIVE) | KEY_STATE_BIT(KEY_DISCLOSED),
					 batch_live_key, b)) < 0 ||
	    (rc = store_key_get_many(tx, rep, nrep, batch_reported_key, b)) < 0)
		goto out;
	/* As read_keys: reported keys that are not live may change too. */
	for (size_t i = 0; i < b->n && rc == 0; i++) {
		struct apply *ap = &b->ap[i];

		for (size_t k = 0; k < ap->nrep && rc == 0; k++) {
			struct reported *r = &ap->rep[k];

			if (r->seen == SEEN_SAME && !known_find(ap, r->row))
				rc = known_add(ap, r->row, r->volume_row, r->key->key_id, r->state);
		}
	}
out:
	free(ids);
	free(rep);
	return rc;
}

static int batch_writes(struct store_tx *tx, struct batch *b)
{
	struct key_rec *ins = NULL;
	struct key_change *chg = NULL;
	struct logon_rec *l = NULL;
	size_t nins = 0, nchg = 0, nlog = 0, at;
	int rc = KW_ERR_NOMEM;

	for (size_t i = 0; i < b->n; i++) {
		nins += b->ap[i].ninserts;
		nchg += b->ap[i].nknown;
		nlog += b->ap[i].job->ci->nlogons;
	}
	if ((nins && !(ins = calloc(nins, sizeof(*ins)))) ||
	    (nchg && !(chg = calloc(nchg, sizeof(*chg)))) ||
	    (nlog && !(l = calloc(nlog, sizeof(*l)))))
		goto out;
	at = 0;
	for (size_t i = 0; i < b->n; i++)
		for (size_t k = 0; k < b->ap[i].ninserts; k++)
			ins[at++] = b->ap[i].inserts[k];
	if ((rc = store_key_insert_many(tx, ins, nins)) < 0)
		goto out;
	/* State changes at one time each (check-ins of one second: one). */
	for (size_t first = 0; first < b->n && rc == 0; first++) {
		int64_t now = b->ap[first].job->now;
		bool seen = false;

		for (size_t k = 0; k < first && !seen; k++)
			seen = b->ap[k].job->now == now;
		if (seen)
			continue;
		nchg = 0;
		for (size_t i = first; i < b->n; i++) {
			struct apply *ap = &b->ap[i];

			if (ap->job->now != now)
				continue;
			for (size_t k = 0; k < ap->nknown; k++)
				if (ap->known[k].changed) {
					chg[nchg].row = ap->known[k].row;
					chg[nchg++].state = ap->known[k].state;
				}
		}
		rc = store_key_set_state_many(tx, chg, nchg, now);
	}
	if (rc < 0)
		goto out;
	at = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct checkin_job *a = b->ap[i].job;

		for (size_t k = 0; k < a->ci->nlogons; k++)
			fill_logon(&l[at++], a, &a->ci->logons[k]);
	}
	rc = store_logon_upsert_many(tx, l, nlog);
out:
	free(ins);
	free(chg);
	free(l);
	return rc;
}

/* store_batch_fn of check-ins: what apply_tx does for each, with one
 * store operation for all of them at each step. A device that checks in
 * twice in the batch is left out with every check-in after it (run alone
 * after, in order: it must see the first, and the ones after it it);
 * one whose secret does not check gets KW_ERR_AUTH and nothing written; a
 * conflict or an unreadable key anywhere fails the batch (each is then run
 * alone, and its own check-in gets the error). */
static int apply_batch(struct store_tx *tx, void *const *args, int *rcs, size_t n)
{
	struct batch b = { calloc(n, sizeof(struct apply)), 0 };
	struct device_checkin *dc = calloc(n, sizeof(*dc));
	size_t *from = calloc(n, sizeof(*from));
	int *drc = calloc(n, sizeof(*drc));
	const struct seal *check_key = NULL;
	size_t m = 0;
	int rc = KW_ERR_NOMEM;

	if (!b.ap || !dc || !from || !drc)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct checkin_job *a = args[i];
		bool again = false;

		for (size_t k = 0; k < i && !again; k++)
			again = !strcmp(((struct checkin_job *)args[k])->device_id, a->device_id);
		if (again) {
			/* It must see the first; and a check-in after it may
			 * depend on it (a key ID both report): it and all after
			 * it run alone, in order. */
			for (; i < n; i++)
				rcs[i] = STORE_BATCH_ALONE;
			break;
		}
		checkin_result_free(a->res);
		a->res->conflict_key[0] = '\0';
		a->res->conflict_why = NULL;
		dc[m] = (struct device_checkin){ a->device_id, a->secret_hash, a->ci->os, a->now };
		from[m++] = i;
	}
	if ((rc = store_device_checkin_many(tx, dc, m, drc)) < 0)
		goto out;
	for (size_t k = 0; k < m; k++) {
		struct checkin_job *a = args[from[k]];

		if (drc[k] < 0) {
			rcs[from[k]] = drc[k];
			continue;
		}
		b.ap[b.n].job = a;
		from[b.n++] = from[k];
		if ((rc = list_reported(&b.ap[b.n - 1])) < 0)
			goto out;
	}
	if ((rc = batch_volumes(tx, &b)) < 0 || (rc = batch_keys(tx, &b)) < 0)
		goto out;
	for (size_t i = 0; i < b.n; i++) {
		if ((rc = work_out(&b.ap[i])) < 0)
			goto out;
		if (b.ap[i].job->check_key && b.ap[i].ninserts)
			check_key = b.ap[i].job->seal;
	}
	if ((check_key && (rc = keyfile_check_tx(tx, check_key)) < 0) ||
	    (rc = batch_writes(tx, &b)) < 0)
		goto out;
	for (size_t i = 0; i < b.n; i++) {
		b.ap[i].job->res->keys_added = b.ap[i].ninserts;
		if ((rc = list_rotate(&b.ap[i])) < 0)
			goto out;
		rcs[from[i]] = 0;
	}
	rc = 0;
out:
	if (rc < 0)
		for (size_t i = 0; i < n; i++)
			checkin_result_free(((struct checkin_job *)args[i])->res);
	for (size_t i = 0; b.ap && i < b.n; i++)
		apply_free(&b.ap[i]);
	free(b.ap);
	free(dc);
	free(from);
	free(drc);
	return rc;
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
	a.check_key = store_shared(s);
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
	job->check_key = store_shared(s);
	if ((rc = seal_keys(k, device_id, ci)) < 0)
		return rc;
	return store_write_async_batch(s, apply_tx, apply_batch, job, done, done_arg);
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
