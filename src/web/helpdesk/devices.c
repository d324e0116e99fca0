/* The help desk's devices (SPEC §4, issue 10 point 3): search by computer
 * name, a device's page (volumes, users, key history, associations) and
 * the view for a lost or stolen computer. Everything comes from
 * core/inventory, which never hands out a recovery password. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "core/checkin.h"
#include "core/enroll.h"
#include "core/inventory.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/log.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "web/app.h"
#include "web/helpdesk/helpdesk.h"
#include "web/web.h"

#define SEARCH_MAX 50        /* devices a search lists */
#define ROWS_MAX 500         /* rows of one table of a device's page */
#define WHEN_HTML 112        /* a time as HTML (<time …>…</time>) */

/* ---- words for codes ---- */

static const char *volume_type_text(const char *t)
{
	if (!strcmp(t, "os"))
		return _("Operating system drive");
	if (!strcmp(t, "fixed"))
		return _("Fixed data drive");
	if (!strcmp(t, "removable"))
		return _("Removable data drive");
	return t;
}

static const char *protection_text(const char *p)
{
	if (!strcmp(p, "on"))
		return _("On");
	if (!strcmp(p, "off"))
		return _("Off");
	if (!strcmp(p, "suspended"))
		return _("Suspended");
	return p;
}

/* Encryption methods as Windows names them; other codes as reported. */
static const char *encryption_text(const char *e)
{
	static const struct {
		const char *code, *text;
	} known[] = {
		{ "xts_aes_128", "XTS-AES 128" }, { "xts_aes_256", "XTS-AES 256" },
		{ "aes_128", "AES-CBC 128" }, { "aes_256", "AES-CBC 256" },
		{ "aes_cbc_128", "AES-CBC 128" }, { "aes_cbc_256", "AES-CBC 256" },
		{ "aes_128_diffuser", "AES-CBC 128 + Diffuser" },
		{ "aes_256_diffuser", "AES-CBC 256 + Diffuser" },
		{ "hardware", "Hardware encryption" },
	};

	if (!*e)
		return _("Not reported");
	if (!strcmp(e, "none"))
		return _("None");
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(e, known[i].code))
			return known[i].text;
	return e;
}

static const char *key_state_text(enum key_state s)
{
	switch (s) {
	case KEY_ACTIVE:
		return _("Active");
	case KEY_REMOVED:
		return _("Removed");
	case KEY_DISCLOSED:
		return _("Disclosed");
	case KEY_SUPERSEDED:
		return _("Superseded");
	}
	return "";
}

/* A time as HTML: <time datetime="ISO">YYYY-MM-DD HH:MM UTC</time>, or
 * "Never" for 0. Only digits and our own words: no escaping needed
 * beyond the word's. */
static void when_html(int64_t t, char out[WHEN_HTML])
{
	char iso[TIME_ISO_LEN];
	struct buf b;

	if (!t) {
		buf_init(&b, WHEN_HTML - 1);
		if (buf_put_html(&b, _("Never"), strlen(_("Never"))) == 0 && b.data)
			snprintf(out, WHEN_HTML, "%s", b.data);
		else
			out[0] = '\0';
		buf_free(&b);
		return;
	}
	time_format_iso(t, iso);
	snprintf(out, WHEN_HTML, "<time datetime=\"%s\">%.10s %.5s UTC</time>", iso, iso,
		 iso + 11);
}

/* How long ago t was, in words ("3 days ago"). */
static void ago_text(int64_t now, int64_t t, char *out, size_t outlen)
{
	int64_t d = now - t;

	if (d < 3600)
		snprintf(out, outlen, "%s", _("less than an hour ago"));
	else if (d < 2 * 3600)
		snprintf(out, outlen, "%s", _("1 hour ago"));
	else if (d < 2 * 86400)
		snprintf(out, outlen, _("%lld hours ago"), (long long)(d / 3600));
	else
		snprintf(out, outlen, _("%lld days ago"), (long long)(d / 86400));
}

static int not_found(struct app *app, struct http_request *req, struct http_response *resp)
{
	struct tpl t;

	tpl_init(&t);
	tpl_set(&t, "title", _("Device not found"));
	tpl_set(&t, "message", _("There is no device with this ID. Search for the computer by "
				 "its name instead."));
	tpl_set(&t, "link_url", "/helpdesk/devices");
	tpl_set(&t, "link_text", _("Search for devices"));
	return helpdesk_page(app, req, resp, 404, HD_NAV_DEVICES, "message.html", &t);
}

/* ---- search ---- */

struct found {
	struct device_rec d;     /* its id and revoked; the strings are below */
	char name[DEVICE_NAME_MAX + 1];
	char domain[DEVICE_TEXT_MAX + 1];
	char os[DEVICE_TEXT_MAX + 1];
	char seen[WHEN_HTML];
};

struct search {
	struct found *rows;      /* SEARCH_MAX + 1: one more tells the list was cut */
	size_t n;
};

static int found_device(const struct device_rec *d, void *arg)
{
	struct search *s = arg;
	struct found *f;

	if (s->n > SEARCH_MAX)
		return 1;
	f = &s->rows[s->n++];
	f->d = *d;
	f->d.name = f->d.domain = f->d.os = NULL;   /* live only during the call */
	snprintf(f->name, sizeof(f->name), "%s", d->name);
	snprintf(f->domain, sizeof(f->domain), "%s", d->domain);
	snprintf(f->os, sizeof(f->os), "%s", d->os);
	when_html(d->last_checkin_at, f->seen);
	return 0;
}

int helpdesk_devices(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	const char *arg = http_query(req, "q");
	char q[DEVICE_NAME_MAX + 2], summary[DEVICE_NAME_MAX + 200];
	struct search s = { NULL, 0 };
	struct tpl t, *items = NULL;
	size_t shown, len;
	int rc, status = 200;

	tpl_init(&t);
	tpl_set(&t, "title", _("Devices"));
	/* Trimmed as typed, before any copy: a copy cut at q's size could
	 * search a shorter prefix than the one asked for, or cut a letter. */
	if (!arg)
		arg = "";
	while (isspace((unsigned char)*arg))
		arg++;
	len = strlen(arg);
	while (len && isspace((unsigned char)arg[len - 1]))
		len--;
	if (!len)
		return helpdesk_page(app, req, resp, 200, HD_NAV_DEVICES, "devices.html", &t);
	if (len <= DEVICE_NAME_MAX) {
		memcpy(q, arg, len);
		q[len] = '\0';
	}
	if (len > DEVICE_NAME_MAX || !str_is_clean_text(q, DEVICE_NAME_MAX)) {
		tpl_set(&t, "q_error", _("Enter the start of a computer name (at most 255 "
					 "characters, no control characters)."));
		return helpdesk_page(app, req, resp, 422, HD_NAV_DEVICES, "devices.html", &t);
	}
	tpl_set(&t, "q", q);
	if (!(s.rows = calloc(SEARCH_MAX + 1, sizeof(*s.rows)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	if ((rc = inventory_devices(app->store, q, SEARCH_MAX + 1, found_device, &s)) < 0)
		goto out;
	shown = s.n > SEARCH_MAX ? SEARCH_MAX : s.n;
	if (shown && !(items = calloc(shown, sizeof(*items)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < shown; i++) {
		struct found *f = &s.rows[i];

		tpl_init(&items[i]);
		tpl_set(&items[i], "d_id", f->d.id);
		tpl_set(&items[i], "d_name", f->name);
		tpl_set(&items[i], "d_domain", *f->domain ? f->domain : "–");
		tpl_set(&items[i], "d_os", *f->os ? f->os : "–");
		tpl_set_raw(&items[i], "d_seen", f->seen);
		tpl_set(&items[i], "d_revoked", f->d.revoked ? "1" : NULL);
	}
	tpl_set_list(&t, "devices", items, shown);
	tpl_set(&t, "any", shown ? "1" : NULL);
	if (s.n > SEARCH_MAX)
		snprintf(summary, sizeof(summary),
			 _("The first %d devices whose name starts with “%s” are shown. Type "
			   "more of the name to find fewer."), SEARCH_MAX, q);
	else if (shown == 1)
		snprintf(summary, sizeof(summary), _("1 device whose name starts with “%s”."), q);
	else if (shown)
		snprintf(summary, sizeof(summary), _("%zu devices whose name starts with “%s”."),
			 shown, q);
	else
		snprintf(summary, sizeof(summary), _("No device's name starts with “%s”."), q);
	tpl_set(&t, "summary", summary);
	tpl_set(&t, "searched", "1");
	rc = helpdesk_page(app, req, resp, status, HD_NAV_DEVICES, "devices.html", &t);
out:
	free(items);
	free(s.rows);
	return rc;
}

/* ---- what is known of one device ---- */

struct vol {
	int64_t row;
	char guid[STORE_ID_LEN + 1];
	char mount[CHECKIN_MOUNT_MAX + 1];
	char type[16];
	char protection[16];
	char encryption[40];
	int percent;
	int64_t first_seen, last_seen;
	int active, disclosed;   /* keys on it in these states */
	char first_html[WHEN_HTML], last_html[WHEN_HTML];
	char percent_text[8];
};

struct logon {
	char user[INVENTORY_USER_MAX + 1];
	enum logon_type type;
	char first_html[WHEN_HTML], last_html[WHEN_HTML];
};

struct assoc {
	char user[INVENTORY_USER_MAX + 1];
	char added_by[INVENTORY_USER_MAX + 1];
	char at_html[WHEN_HTML];
};

struct key {
	char key_id[STORE_ID_LEN + 1];
	int64_t volume_row;
	enum key_state state;
	char created_html[WHEN_HTML], changed_html[WHEN_HTML], disclosed_html[WHEN_HTML];
	char origin[STORE_ORIGIN_MAX + 1];   /* "" unless imported */
};

struct device {
	struct device_rec d;     /* strings point into the fields below */
	char name[DEVICE_NAME_MAX + 1];
	char domain[DEVICE_TEXT_MAX + 1];
	char os[DEVICE_TEXT_MAX + 1];
	struct vol *vols;
	size_t nvols, vols_cap, vols_total;
	struct logon *logons;
	size_t nlogons, logons_cap, logons_total;
	struct assoc *assocs;
	size_t nassocs, assocs_cap, assocs_total;
	/* The newest ROWS_MAX keys: key k (0-based, oldest first) at
	 * keys[k % ROWS_MAX]. */
	struct key *keys;
	size_t keys_total;
	int nomem;
};

/* Room for one more row in a table of at most ROWS_MAX; NULL when full
 * (the row is counted, not kept) or out of memory (dev->nomem). */
static void *row_add(struct device *dev, void **rows, size_t *n, size_t *cap, size_t *total,
		     size_t size)
{
	(*total)++;
	if (*n == ROWS_MAX)
		return NULL;
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 8;
		void *p = realloc(*rows, c * size);

		if (!p) {
			dev->nomem = 1;
			return NULL;
		}
		*rows = p;
		*cap = c;
	}
	return (char *)*rows + (*n)++ * size;
}

static int got_device(const struct device_rec *d, void *arg)
{
	struct device *dev = arg;

	dev->d = *d;
	snprintf(dev->name, sizeof(dev->name), "%s", d->name);
	snprintf(dev->domain, sizeof(dev->domain), "%s", d->domain);
	snprintf(dev->os, sizeof(dev->os), "%s", d->os);
	dev->d.name = dev->name;
	dev->d.domain = dev->domain;
	dev->d.os = dev->os;
	return 0;
}

static int got_volume(const struct volume_rec *v, void *arg)
{
	struct device *dev = arg;
	struct vol *o = row_add(dev, (void **)&dev->vols, &dev->nvols, &dev->vols_cap,
				&dev->vols_total, sizeof(*o));

	if (!o)
		return dev->nomem ? KW_ERR_NOMEM : 0;
	memset(o, 0, sizeof(*o));
	o->row = v->row;
	snprintf(o->guid, sizeof(o->guid), "%s", v->guid);
	snprintf(o->mount, sizeof(o->mount), "%s", v->mount);
	snprintf(o->type, sizeof(o->type), "%s", v->type);
	snprintf(o->protection, sizeof(o->protection), "%s", v->protection);
	snprintf(o->encryption, sizeof(o->encryption), "%s", v->encryption);
	o->percent = v->percent;
	o->first_seen = v->first_seen;
	o->last_seen = v->last_seen;
	return 0;
}

static struct vol *vol_of(struct device *dev, int64_t row)
{
	for (size_t i = 0; i < dev->nvols; i++)
		if (dev->vols[i].row == row)
			return &dev->vols[i];
	return NULL;
}

static int got_key(const struct key_rec *k, void *arg)
{
	struct device *dev = arg;
	struct vol *v = vol_of(dev, k->volume_row);
	struct key *o;

	if (v && k->state == KEY_ACTIVE)
		v->active++;
	if (v && k->state == KEY_DISCLOSED)
		v->disclosed++;
	if (!dev->keys && !(dev->keys = calloc(ROWS_MAX, sizeof(*dev->keys))))
		return KW_ERR_NOMEM;
	o = &dev->keys[dev->keys_total++ % ROWS_MAX];
	snprintf(o->key_id, sizeof(o->key_id), "%s", k->key_id);
	o->volume_row = k->volume_row;
	o->state = k->state;
	snprintf(o->origin, sizeof(o->origin), "%s", k->origin ? k->origin : "");
	when_html(k->created_at, o->created_html);
	when_html(k->changed_at, o->changed_html);
	if (k->disclosed_at)
		when_html(k->disclosed_at, o->disclosed_html);
	else
		snprintf(o->disclosed_html, sizeof(o->disclosed_html), "–");
	return 0;
}

static int got_logon(const struct logon_rec *l, void *arg)
{
	struct device *dev = arg;
	struct logon *o = row_add(dev, (void **)&dev->logons, &dev->nlogons, &dev->logons_cap,
				  &dev->logons_total, sizeof(*o));

	if (!o)
		return dev->nomem ? KW_ERR_NOMEM : 0;
	snprintf(o->user, sizeof(o->user), "%s", l->user);
	o->type = l->type;
	when_html(l->first_seen, o->first_html);
	when_html(l->last_seen, o->last_html);
	return 0;
}

static int got_assoc(const struct assoc_rec *a, void *arg)
{
	struct device *dev = arg;
	struct assoc *o = row_add(dev, (void **)&dev->assocs, &dev->nassocs, &dev->assocs_cap,
				  &dev->assocs_total, sizeof(*o));

	if (!o)
		return dev->nomem ? KW_ERR_NOMEM : 0;
	snprintf(o->user, sizeof(o->user), "%s", a->user);
	snprintf(o->added_by, sizeof(o->added_by), "%s", a->added_by);
	when_html(a->created_at, o->at_html);
	return 0;
}

static void device_free(struct device *dev)
{
	if (!dev)
		return;
	free(dev->vols);
	free(dev->logons);
	free(dev->assocs);
	free(dev->keys);
	free(dev);
}

/* Reads device id with its volumes and keys (each view counts the keys
 * of each volume), and with its logons and associations when want_users.
 * KW_ERR_NOT_FOUND when there is no such device. */
static int device_read(struct app *app, const char *id, bool want_users,
		       struct device **out)
{
	static const struct inventory_device_fns all = {
		got_device, got_volume, got_key, got_logon, got_assoc,
	};
	static const struct inventory_device_fns lost = {
		got_device, got_volume, got_key, NULL, NULL,
	};
	struct device *dev = calloc(1, sizeof(*dev));
	int rc;

	if (!dev)
		return KW_ERR_NOMEM;
	rc = inventory_device_show(app->store, id, want_users ? &all : &lost, dev);
	if (rc < 0) {
		device_free(dev);
		return rc;
	}
	for (size_t i = 0; i < dev->nvols; i++) {
		struct vol *v = &dev->vols[i];

		when_html(v->first_seen, v->first_html);
		when_html(v->last_seen, v->last_html);
		snprintf(v->percent_text, sizeof(v->percent_text), "%d %%", v->percent);
	}
	*out = dev;
	return 0;
}

/* The volumes as table rows (both views). */
static struct tpl *volume_items(struct device *dev)
{
	struct tpl *items = calloc(dev->nvols ? dev->nvols : 1, sizeof(*items));

	if (!items)
		return NULL;
	for (size_t i = 0; i < dev->nvols; i++) {
		const struct vol *v = &dev->vols[i];
		struct volume_rec r = { .protection = v->protection, .percent = v->percent };
		struct tpl *it = &items[i];

		tpl_init(it);
		tpl_set(it, "v_mount", *v->mount ? v->mount : NULL);
		tpl_set(it, "v_guid", v->guid);
		tpl_set(it, "v_type", volume_type_text(v->type));
		tpl_set(it, "v_protection", protection_text(v->protection));
		tpl_set(it, "v_encryption", encryption_text(v->encryption));
		tpl_set(it, "v_percent", v->percent_text);
		tpl_set_raw(it, "v_first", v->first_html);
		tpl_set_raw(it, "v_last", v->last_html);
		switch (inventory_volume_protection(&r)) {
		case INVENTORY_PROTECTED:
			tpl_set(it, "v_ok", _("Protected"));
			break;
		case INVENTORY_ENCRYPTING:
			tpl_set(it, "v_bad", _("Partly encrypted"));
			break;
		case INVENTORY_SUSPENDED:
			tpl_set(it, "v_bad", _("Not protected: protection suspended"));
			break;
		case INVENTORY_UNPROTECTED:
			tpl_set(it, "v_bad", _("Not protected"));
			break;
		case INVENTORY_UNREPORTED:
			tpl_set(it, "v_bad", _("Not reported"));
			break;
		}
		if (v->active)
			tpl_set(it, "v_key_ok", _("Yes"));
		else
			tpl_set(it, "v_key_bad", _("No"));
		tpl_set(it, "v_key_disclosed", v->disclosed ?
			_("a disclosed key is still on the drive (not yet replaced)") : NULL);
	}
	return items;
}

/* The table notes for rows left out ("500 of 812 are shown"). */
static void cut_note(size_t shown, size_t total, char *out, size_t outlen)
{
	if (total > shown)
		snprintf(out, outlen, _("%zu of %zu are shown."), shown, total);
	else
		out[0] = '\0';
}

struct assoc_form {
	const char *user;        /* as entered */
	const char *error;
	bool added;
};

static int device_page(struct app *app, struct http_request *req, struct http_response *resp,
		       int status, const char *id, const struct assoc_form *form)
{
	struct device *dev = NULL;
	struct tpl t, *vols = NULL, *logons = NULL, *assocs = NULL, *keys = NULL, facts[8];
	char registered[WHEN_HTML], seen[WHEN_HTML], keys_cut[64], logons_cut[64],
		assocs_cut[64], lost_href[64];
	size_t nkeys, nf = 0;
	int rc;

	if ((rc = device_read(app, id, true, &dev)) == KW_ERR_NOT_FOUND)
		return not_found(app, req, resp);
	if (rc < 0)
		return rc;
	nkeys = dev->keys_total < ROWS_MAX ? dev->keys_total : ROWS_MAX;
	if (!(vols = volume_items(dev)) ||
	    !(logons = calloc(dev->nlogons + 1, sizeof(*logons))) ||
	    !(assocs = calloc(dev->nassocs + 1, sizeof(*assocs))) ||
	    !(keys = calloc(nkeys + 1, sizeof(*keys)))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < dev->nlogons; i++) {
		const struct logon *l = &dev->logons[i];

		tpl_init(&logons[i]);
		tpl_set(&logons[i], "l_user", l->user);
		tpl_set(&logons[i], "l_local", l->type == LOGON_LOCAL ? "1" : NULL);
		tpl_set_raw(&logons[i], "l_first", l->first_html);
		tpl_set_raw(&logons[i], "l_last", l->last_html);
	}
	for (size_t i = 0; i < dev->nassocs; i++) {
		const struct assoc *a = &dev->assocs[i];

		tpl_init(&assocs[i]);
		tpl_set(&assocs[i], "a_user", a->user);
		tpl_set(&assocs[i], "a_by", a->added_by);
		tpl_set_raw(&assocs[i], "a_at", a->at_html);
	}
	/* Newest key first. */
	for (size_t i = 0; i < nkeys; i++) {
		const struct key *k = &dev->keys[(dev->keys_total - 1 - i) % ROWS_MAX];
		const struct vol *v = vol_of(dev, k->volume_row);
		struct tpl *it = &keys[i];

		tpl_init(it);
		tpl_set(it, "k_id", k->key_id);
		tpl_set(it, "k_volume", v && *v->mount ? v->mount : v ? v->guid : "–");
		tpl_set(it, "k_state", key_state_text(k->state));
		tpl_set(it, "k_class", key_state_name(k->state));
		tpl_set(it, "k_origin", *k->origin ? k->origin : NULL);
		tpl_set_raw(it, "k_created", k->created_html);
		tpl_set_raw(it, "k_changed", k->changed_html);
		tpl_set_raw(it, "k_disclosed", k->disclosed_html);
	}

	when_html(dev->d.created_at, registered);
	when_html(dev->d.last_checkin_at, seen);
	tpl_init(&facts[nf]);
	tpl_set(&facts[nf], "f_label", _("Computer name"));
	tpl_set(&facts[nf++], "f_text", dev->name);
	tpl_init(&facts[nf]);
	tpl_set(&facts[nf], "f_label", _("Domain"));
	tpl_set(&facts[nf++], "f_text", *dev->domain ? dev->domain : "–");
	tpl_init(&facts[nf]);
	tpl_set(&facts[nf], "f_label", _("Operating system"));
	tpl_set(&facts[nf++], "f_text", *dev->os ? dev->os : "–");
	tpl_init(&facts[nf]);
	tpl_set(&facts[nf], "f_label", _("Device ID"));
	tpl_set(&facts[nf], "f_mono", "1");
	tpl_set(&facts[nf++], "f_text", dev->d.id);
	tpl_init(&facts[nf]);
	tpl_set(&facts[nf], "f_label", _("Registered"));
	tpl_set_raw(&facts[nf++], "f_html", registered);
	tpl_init(&facts[nf]);
	tpl_set(&facts[nf], "f_label", _("Last check-in"));
	tpl_set_raw(&facts[nf++], "f_html", seen);
	tpl_init(&facts[nf]);
	tpl_set(&facts[nf], "f_label", _("State"));
	tpl_set(&facts[nf++], "f_text", dev->d.revoked ?
		_("Revoked: its check-ins are refused") : _("Active"));

	cut_note(nkeys, dev->keys_total, keys_cut, sizeof(keys_cut));
	cut_note(dev->nlogons, dev->logons_total, logons_cut, sizeof(logons_cut));
	cut_note(dev->nassocs, dev->assocs_total, assocs_cut, sizeof(assocs_cut));
	snprintf(lost_href, sizeof(lost_href), "/helpdesk/devices/%s/lost", dev->d.id);

	tpl_init(&t);
	tpl_set(&t, "title", dev->name);
	tpl_set(&t, "id", dev->d.id);
	tpl_set(&t, "revoked", dev->d.revoked ? "1" : NULL);
	tpl_set(&t, "lost_href", lost_href);
	tpl_set_list(&t, "facts", facts, nf);
	tpl_set_list(&t, "volumes", vols, dev->nvols);
	tpl_set_list(&t, "logons", logons, dev->nlogons);
	tpl_set_list(&t, "assocs", assocs, dev->nassocs);
	tpl_set_list(&t, "keys", keys, nkeys);
	tpl_set(&t, "keys_cut", *keys_cut ? keys_cut : NULL);
	tpl_set(&t, "logons_cut", *logons_cut ? logons_cut : NULL);
	tpl_set(&t, "assocs_cut", *assocs_cut ? assocs_cut : NULL);
	tpl_set(&t, "assoc_user", form ? form->user : NULL);
	tpl_set(&t, "assoc_error", form ? form->error : NULL);
	tpl_set(&t, "added", form && form->added ? "1" : NULL);
	rc = helpdesk_page(app, req, resp, status, HD_NAV_DEVICES, "device.html", &t);
out:
	free(vols);
	free(logons);
	free(assocs);
	free(keys);
	device_free(dev);
	return rc;
}

int helpdesk_device(void *ctx, struct http_request *req, struct http_response *resp)
{
	const char *added = http_query(req, "added");
	struct assoc_form f = { .added = added && !strcmp(added, "1") };

	return device_page(ctx, req, resp, 200, req->params[0], &f);
}

/* ---- a lost or stolen computer ---- */

int helpdesk_device_lost(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct device *dev = NULL;
	struct tpl t, *vols = NULL;
	char seen[WHEN_HTML], ago[64], back[64];
	size_t nprotected = 0, nunreported = 0, nkey = 0;
	int64_t now = time_now();
	int rc;

	if ((rc = device_read(app, req->params[0], false, &dev)) == KW_ERR_NOT_FOUND)
		return not_found(app, req, resp);
	if (rc < 0)
		return rc;
	if (!(vols = volume_items(dev))) {
		rc = KW_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < dev->nvols; i++) {
		struct volume_rec r = { .protection = dev->vols[i].protection,
					.percent = dev->vols[i].percent };

		enum inventory_protection p = inventory_volume_protection(&r);

		nprotected += p == INVENTORY_PROTECTED;
		nunreported += p == INVENTORY_UNREPORTED;
		nkey += dev->vols[i].active > 0;
	}
	when_html(dev->d.last_checkin_at, seen);
	snprintf(back, sizeof(back), "/helpdesk/devices/%s", dev->d.id);
	tpl_init(&t);
	tpl_set(&t, "title", dev->name);
	tpl_set(&t, "back_href", back);
	tpl_set_raw(&t, "seen", seen);
	if (dev->d.last_checkin_at) {
		ago_text(now, dev->d.last_checkin_at, ago, sizeof(ago));
		tpl_set(&t, "ago", ago);
	}
	tpl_set_list(&t, "volumes", vols, dev->nvols);
	if (!dev->nvols)
		tpl_set(&t, "verdict_unknown", _("This computer has not reported any drive, so "
						 "nothing is known of its encryption."));
	else if (nunreported == dev->nvols)
		tpl_set(&t, "verdict_unknown", _("This computer has not reported its drives (its "
						 "keys were imported), so nothing is known of "
						 "its encryption."));
	else if (nprotected == dev->nvols)
		tpl_set(&t, "verdict_ok", _("Every drive was protected (BitLocker on, fully "
					    "encrypted) when it last reported."));
	else
		tpl_set(&t, "verdict_bad", _("Not every drive was protected when it last "
					     "reported: see the drives below."));
	tpl_set(&t, "keys_ok", nkey == dev->nvols && dev->nvols ?
		_("An active recovery key is escrowed for every drive.") : NULL);
	tpl_set(&t, "keys_bad", nkey < dev->nvols ?
		_("Some drives have no active recovery key escrowed.") : NULL);
	tpl_set(&t, "revoked", dev->d.revoked ? "1" : NULL);
	rc = helpdesk_page(app, req, resp, 200, HD_NAV_DEVICES, "device_lost.html", &t);
out:
	free(vols);
	device_free(dev);
	return rc;
}

/* ---- adding an association ---- */

/* The answer when the association's audit record cannot be written: no
 * change without its record (fail closed). */
static int unrecorded(struct app *app, struct http_request *req, struct http_response *resp)
{
	struct tpl t;
	int rc;

	if ((rc = http_header(resp, "Retry-After", "10")) < 0)
		return rc;
	tpl_init(&t);
	tpl_set(&t, "title", _("Service unavailable"));
	tpl_set(&t, "message", _("The association could not be recorded in the audit trail, so "
				 "it was not added. Try again in a few minutes."));
	return helpdesk_page(app, req, resp, 503, HD_NAV_DEVICES, "message.html", &t);
}

/* The user name typed, without white space around it, into out; false
 * when it is too long for one. */
static bool typed_user(const char *in, char out[INVENTORY_USER_MAX + 1])
{
	const char *end;

	out[0] = '\0';
	if (!in)
		return true;
	while (*in == ' ' || (*in >= '\t' && *in <= '\r'))
		in++;
	end = in + strlen(in);
	while (end > in && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r')))
		end--;
	if (end - in > INVENTORY_USER_MAX)
		return false;
	memcpy(out, in, (size_t)(end - in));
	out[end - in] = '\0';
	return true;
}

int helpdesk_device_assoc(void *ctx, struct http_request *req, struct http_response *resp)
{
	struct app *app = ctx;
	struct web_req *w = web_ctx(req);
	const char *id = req->params[0];
	const char *bad_name = _("This is not a user name: at most 255 characters, without "
				 "control characters.");
	char user[INVENTORY_USER_MAX + 1], where[STORE_ID_LEN + 64];
	struct assoc_form f = { 0 };
	struct inventory_assoc a = {
		.user = user, .device_id = id, .source = AUDIT_HELPDESK, .actor = w->s.user,
		.client = req->client, .now = time_now(),
	};
	int64_t seq = 0;
	int rc;

	if (!typed_user(form_get(&w->form, "user"), user)) {
		f.error = bad_name;
		return device_page(app, req, resp, 422, id, &f);
	}
	f.user = user;
	if (!*user) {
		f.error = _("Enter the user's name as computers report it, e.g. CORP\\alice or "
			    "alice@corp.example.com.");
		return device_page(app, req, resp, 422, id, &f);
	}
	if (!inventory_user_valid(user)) {
		f.user = NULL;   /* not shown again */
		f.error = bad_name;
		return device_page(app, req, resp, 422, id, &f);
	}
	rc = inventory_assoc_add(app->store, &a, &seq);
	switch (rc) {
	case 0:
		log_info("%s associated %s with device %s (audit record %lld)", w->s.user, user,
			 id, (long long)seq);
		snprintf(where, sizeof(where), "/helpdesk/devices/%s?added=1", id);
		return http_redirect(resp, where);
	case KW_ERR_NOT_FOUND:
		return not_found(app, req, resp);
	case KW_ERR_EXISTS:
		f.error = _("This user is associated with this computer already.");
		return device_page(app, req, resp, 409, id, &f);
	case KW_ERR_INVALID:
		f.error = bad_name;
		return device_page(app, req, resp, 422, id, &f);
	default:
		log_error("association of %s with device %s by %s failed, nothing added: %s",
			  user, id, w->s.user, kw_strerror(rc));
		return unrecorded(app, req, resp);
	}
}
