#include <stdio.h>
#include <string.h>

#include "core/audit.h"
#include "core/inventory.h"
#include "util/err.h"
#include "util/str.h"

struct devices {
	const char *prefix;
	int64_t limit;
	store_each_device fn;
	void *arg;
};

static int devices_tx(struct store_tx *tx, void *arg)
{
	const struct devices *d = arg;

	return store_device_each(tx, d->prefix, d->limit, d->fn, d->arg);
}

int inventory_devices(struct store *s, const char *prefix, int64_t limit,
		      store_each_device fn, void *arg)
{
	struct devices d = { prefix ? prefix : "", limit, fn, arg };

	if (limit < 0)
		return KW_ERR_INVALID;
	/* fn may print: the read runs once. */
	return store_read_once(s, devices_tx, &d);
}

/* No device ID is longer; a longer one names no device (rather than the
 * device its first characters name). */
static bool id_fits(const char *id)
{
	return strlen(id) <= STORE_ID_LEN;
}

struct show {
	const char *id;
	const struct inventory_device_fns *fns;
	void *arg;
};

static int no_device(const struct device_rec *d, void *arg)
{
	return 0;
}

/* Key records leave core without their sealed value. */
static int show_key(const struct key_rec *k, void *arg)
{
	const struct show *sh = arg;
	struct key_rec bare = *k;

	bare.sealed = NULL;
	bare.sealed_len = 0;
	return sh->fns->key(&bare, sh->arg);
}

static int show_tx(struct store_tx *tx, void *arg)
{
	const struct show *sh = arg;
	const struct inventory_device_fns *f = sh->fns;
	int rc;

	if ((rc = store_device_get(tx, sh->id, f->device ? f->device : no_device,
			   sh->arg)) != 0)
		return rc;
	if (f->volume && (rc = store_volume_each(tx, sh->id, f->volume, sh->arg)) != 0)
		return rc;
	if (f->key && (rc = store_key_each_device(tx, sh->id, KEY_STATES_ALL, show_key,
				     arg)) != 0)
		return rc;
	if (f->logon && (rc = store_logon_each_device(tx, sh->id, f->logon,
				       sh->arg)) != 0)
		return rc;
	if (f->assoc && (rc = store_assoc_each_device(tx, sh->id, f->assoc,
				       sh->arg)) != 0)
		return rc;
	return 0;
}

int inventory_device_show(struct store *s, const char *id,
			  const struct inventory_device_fns *fns, void *arg)
{
	struct show sh = { id, fns, arg };

	if (!id_fits(id))
		return KW_ERR_NOT_FOUND;
	/* fns may print: the read runs once. */
	return store_read_once(s, show_tx, &sh);
}

static int revoke_tx(struct store_tx *tx, void *arg)
{
	int rc;

	/* Whether a missing row is an error is the backend's choice for an
	 * update; here it is one, checked first. */
	if ((rc = store_device_get(tx, arg, no_device, NULL)) < 0)
		return rc;
	return store_device_set_revoked(tx, arg, true);
}

int inventory_device_revoke(struct store *s, const char *id)
{
	if (!id_fits(id))
		return KW_ERR_NOT_FOUND;
	return store_write(s, revoke_tx, (void *)id);
}

bool inventory_user_valid(const char *user)
{
	return str_is_clean_text(user, INVENTORY_USER_MAX);
}

struct assoc_job {
	const struct inventory_assoc *a;
	char computer[256];      /* the device's name, for the record */
	int64_t seq;
};

static int device_name(const struct device_rec *d, void *arg)
{
	struct assoc_job *j = arg;

	snprintf(j->computer, sizeof(j->computer), "%s", d->name);
	return 0;
}

static int assoc_tx(struct store_tx *tx, void *arg)
{
	struct assoc_job *j = arg;
	const struct inventory_assoc *in = j->a;
	struct assoc_rec a;
	struct audit_rec r;
	int rc;

	j->computer[0] = '\0';
	j->seq = 0;
	if ((rc = store_device_get(tx, in->device_id, device_name, j)) < 0)
		return rc;
	memset(&a, 0, sizeof(a));
	a.user = in->user;
	snprintf(a.device_id, sizeof(a.device_id), "%s", in->device_id);
	a.added_by = in->actor;
	a.created_at = in->now;
	if ((rc = store_assoc_add(tx, &a)) < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.at = in->now;
	r.source = in->source;
	r.result = AUDIT_ASSOCIATED;
	r.actor = in->actor;
	r.end_user = in->user;
	r.computer = j->computer;
	r.device_id = in->device_id;
	r.client = in->client;
	/* The association stands only with its record. */
	if ((rc = audit_append(tx, &r)) < 0)
		return rc;
	j->seq = r.seq;
	return 0;
}

int inventory_assoc_add(struct store *s, const struct inventory_assoc *a, int64_t *audit_seq)
{
	struct assoc_job j = { .a = a };
	int rc;

	if (!a->user || !inventory_user_valid(a->user) || !a->source || !*a->source ||
	    !a->actor || !*a->actor)
		return KW_ERR_INVALID;
	if (!a->device_id || !id_fits(a->device_id))
		return KW_ERR_NOT_FOUND;
	if ((rc = store_write(s, assoc_tx, &j)) < 0)
		return rc;
	if (audit_seq)
		*audit_seq = j.seq;
	return 0;
}

enum inventory_protection inventory_volume_protection(const struct volume_rec *v)
{
	if (!*v->protection)
		return INVENTORY_UNREPORTED;
	if (!strcmp(v->protection, "suspended"))
		return INVENTORY_SUSPENDED;
	if (strcmp(v->protection, "on"))
		return INVENTORY_UNPROTECTED;
	return v->percent >= 100 ? INVENTORY_PROTECTED : INVENTORY_ENCRYPTING;
}
