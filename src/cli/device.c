#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/inventory.h"
#include "store/store.h"
#include "util/err.h"
#include "util/timeutil.h"

static const char device_usage[] =
	"usage: keywarden device list [NAME-PREFIX]\n"
	"       keywarden device show ID\n"
	"       keywarden device revoke ID\n"
	"\n"
	"The inventory of registered devices. show prints a device's volumes,\n"
	"recovery key history (never the passwords), logons and associations.\n"
	"revoke stops the device's secret from being accepted.\n";

static const char assoc_usage[] =
	"usage: keywarden assoc add USER DEVICE-ID\n"
	"\n"
	"Lets USER recover the keys of a device through self-service without a\n"
	"recorded local logon (e.g. a new owner).\n";

static void when(int64_t t, char out[TIME_ISO_LEN])
{
	if (t)
		time_format_iso(t, out);
	else
		snprintf(out, TIME_ISO_LEN, "never");
}

static int print_device(const struct device_rec *d, void *arg)
{
	char seen[TIME_ISO_LEN];

	when(d->last_checkin_at, seen);
	printf("%-36s %-24s %-16s %-20s %s\n", d->id, d->name, *d->domain ? d->domain : "-",
	       seen, d->revoked ? "revoked" : "");
	return 0;
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
	       *v->mount ? v->mount : "-", v->type, v->protection,
	       *v->encryption ? v->encryption : "-", v->percent);
	return 0;
}

static int show_key(const struct key_rec *k, void *arg)
{
	char created[TIME_ISO_LEN], changed[TIME_ISO_LEN];

	time_format_iso(k->created_at, created);
	time_format_iso(k->changed_at, changed);
	printf("  key %s %-10s escrowed %s, changed %s\n", k->key_id, key_state_name(k->state),
	       created, changed);
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

static const struct inventory_device_fns show_fns = {
	show_device, show_volume, show_key, show_logon, show_assoc,
};

int cmd_device(struct cli *c, int argc, char **argv)
{
	struct store *s = NULL;
	const char *verb;
	int rc = 1;

	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(device_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	verb = argv[1];
	if (!strcmp(verb, "list") ? argc > 3 : argc != 3) {
		fputs(device_usage, stderr);
		return 2;
	}
	if (strcmp(verb, "list") && strcmp(verb, "show") && strcmp(verb, "revoke"))
		return cli_error("unknown device command '%s'; see keywarden device --help", verb);
	if (cli_config(c) || cli_store(c, &s))
		goto out;
	if (!strcmp(verb, "list")) {
		printf("%-36s %-24s %-16s %-20s\n", "ID", "NAME", "DOMAIN", "LAST CHECK-IN");
		rc = inventory_devices(s, argc == 3 ? argv[2] : "", 0, print_device, NULL);
	} else if (!strcmp(verb, "show")) {
		rc = inventory_device_show(s, argv[2], &show_fns, NULL);
	} else {
		rc = inventory_device_revoke(s, argv[2]);
	}
	if (rc == KW_ERR_NOT_FOUND) {
		rc = cli_error("no device %s (see keywarden device list)", argv[2]);
		goto out;
	}
	if (rc < 0) {
		rc = cli_error("%s", kw_strerror(rc));
		goto out;
	}
	if (!strcmp(verb, "revoke"))
		printf("device %s revoked: its secret is no longer accepted\n", argv[2]);
	rc = 0;
out:
	store_close(s);
	return rc;
}

int cmd_assoc(struct cli *c, int argc, char **argv)
{
	struct store *s = NULL;
	int rc = 1;

	if (cli_wants_help(argc, argv)) {
		fputs(assoc_usage, stdout);
		return 0;
	}
	if (argc != 4 || strcmp(argv[1], "add")) {
		fputs(assoc_usage, stderr);
		return 2;
	}
	if (!inventory_user_valid(argv[2]))
		return cli_error("'%s' is not a valid user name", argv[2]);
	if (cli_config(c) || cli_store(c, &s))
		goto out;
	rc = inventory_assoc_add(s, argv[2], argv[3], "cli", time_now());
	if (rc == KW_ERR_NOT_FOUND) {
		rc = cli_error("no device %s (see keywarden device list)", argv[3]);
		goto out;
	}
	if (rc == KW_ERR_EXISTS) {
		printf("%s is already associated with device %s\n", argv[2], argv[3]);
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		rc = cli_error("%s", kw_strerror(rc));
		goto out;
	}
	printf("%s may now recover the keys of device %s\n", argv[2], argv[3]);
	rc = 0;
out:
	store_close(s);
	return rc;
}
