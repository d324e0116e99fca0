#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/audit.h"
#include "core/inventory.h"
#include "util/err.h"
#include "util/timeutil.h"

const char usage_device[] =
	"usage: keywarden device list [NAME-PREFIX]\n"
	"       keywarden device show ID\n"
	"       keywarden device revoke ID\n"
	"\n"
	"The inventory of registered devices. show prints a device's volumes,\n"
	"recovery key history (never the passwords), logons and associations.\n"
	"revoke stops the device's secret from being accepted.\n";

const char usage_assoc[] =
	"usage: keywarden assoc add USER DEVICE-ID\n"
	"\n"
	"Lets USER recover the keys of a device through self-service without a\n"
	"recorded local logon (e.g. a new owner). The association is recorded in\n"
	"the audit trail (source cli, result associated); without the record it\n"
	"is not added.\n";

static void when(int64_t t, char out[TIME_ISO_LEN])
{
	if (t)
		time_format_iso(t, out);
	else
		snprintf(out, TIME_ISO_LEN, "never");
}

/* A failure of an operation on device id. */
static int device_failed(const char *id, int rc)
{
	if (rc == KW_ERR_NOT_FOUND)
		return cli_error("no device %s (see keywarden device list)", id);
	return cli_error("%s", kw_strerror(rc));
}

static int print_device(const struct device_rec *d, void *arg)
{
	char seen[TIME_ISO_LEN];

	when(d->last_checkin_at, seen);
	printf("%-36s %-24s %-16s %-20s %s\n", d->id, d->name, *d->domain ? d->domain : "-",
	       seen, d->revoked ? "revoked" : "");
	return 0;
}

int cmd_device_list(struct cli_call *call)
{
	int rc;

	printf("%-36s %-24s %-16s %-20s\n", "ID", "NAME", "DOMAIN", "LAST CHECK-IN");
	rc = inventory_devices(call->store, call->argc ? call->argv[0] : "", 0, print_device,
			       NULL);
	return rc < 0 ? cli_error("%s", kw_strerror(rc)) : 0;
}

static int show_device(const struct device_rec *d, void *arg)
{
	char created[TIME_ISO_LEN], seen[TIME_ISO_LEN];

	time_format_iso(d->created_at, created);
	when(d->last_checkin_at, seen);
	printf("device %s\n  name: %s\n  domain: %s\n  os: %s\n  registered: %s\n"
	       "  last check-in: %s\n  state: %s\n", d->id, d->name, d->domain, d->os, created,
	       seen, d->revoked ? "revoked" : "active");
	return 0;
}

static int show_volume(const struct volume_rec *v, void *arg)
{
	printf("  volume %s %s type=%s protection=%s encryption=%s %d%%\n", v->guid,
	       *v->mount ? v->mount : "-", *v->type ? v->type : "-",
	       *v->protection ? v->protection : "-",
	       *v->encryption ? v->encryption : "-", v->percent);
	return 0;
}

static int show_key(const struct key_rec *k, void *arg)
{
	char created[TIME_ISO_LEN], changed[TIME_ISO_LEN];

	time_format_iso(k->created_at, created);
	time_format_iso(k->changed_at, changed);
	printf("  key %s %-10s escrowed %s, changed %s%s%s\n", k->key_id,
	       key_state_name(k->state), created, changed,
	       k->origin && *k->origin ? ", imported: " : "", k->origin ? k->origin : "");
	return 0;
}

static int show_logon(const struct logon_rec *l, void *arg)
{
	char first[TIME_ISO_LEN], last[TIME_ISO_LEN];

	time_format_iso(l->first_seen, first);
	time_format_iso(l->last_seen, last);
	printf("  logon %-32s %-6s first %s, last %s\n", l->user,
	       l->type == LOGON_LOCAL ? "local" : "remote", first, last);
	return 0;
}

static int show_assoc(const struct assoc_rec *a, void *arg)
{
	char created[TIME_ISO_LEN];

	time_format_iso(a->created_at, created);
	printf("  association %s, added by %s at %s\n", a->user, a->added_by, created);
	return 0;
}

int cmd_device_show(struct cli_call *call)
{
	static const struct inventory_device_fns fns = {
		show_device, show_volume, show_key, show_logon, show_assoc,
	};
	int rc = inventory_device_show(call->store, call->argv[0], &fns, NULL);

	return rc < 0 ? device_failed(call->argv[0], rc) : 0;
}

int cmd_device_revoke(struct cli_call *call)
{
	int rc = inventory_device_revoke(call->store, call->argv[0]);

	if (rc < 0)
		return device_failed(call->argv[0], rc);
	printf("device %s revoked: its secret is no longer accepted\n", call->argv[0]);
	return 0;
}

int check_assoc_add(struct cli_call *call)
{
	if (!inventory_user_valid(call->argv[0]))
		return cli_error("'%s' is not a valid user name", call->argv[0]);
	return 0;
}

int cmd_assoc_add(struct cli_call *call)
{
	const char *user = call->argv[0], *id = call->argv[1];
	char actor[CLI_ACTOR_MAX];
	struct inventory_assoc a = { .user = user, .device_id = id, .source = AUDIT_CLI,
				     .actor = actor, .now = time_now() };
	int rc;

	cli_actor(actor, sizeof(actor));
	rc = inventory_assoc_add(call->store, &a, NULL);

	if (rc == KW_ERR_EXISTS) {
		printf("%s is already associated with device %s\n", user, id);
		return 0;
	}
	if (rc < 0)
		return device_failed(id, rc);
	printf("%s may now recover the keys of device %s\n", user, id);
	return 0;
}
