#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "core/enroll.h"
#include "core/escrow.h"
#include "core/keyid.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "web/app.h"

static const char demo_usage[] =
	"usage: keywarden demo [--dir DIR] [--listen HOST:PORT]\n"
	"\n"
	"Starts a local demonstration instance on SQLite in DIR (default\n"
	"./keywarden-demo): the first time it creates the configuration, the key\n"
	"file, demo accounts, devices, recovery keys and logons. Prints the URL, the\n"
	"accounts and a key ID to try, then serves until Ctrl-C. Run it again to\n"
	"serve the same data. Not for production: the demo passwords are public.\n";

struct demo_user {
	const char *name;
	const char *password;
	unsigned roles;
	const char *what;
};

static const struct demo_user demo_users[] = {
	{ "admin", "admin-demo-1", ROLE_ADMIN, "administrator" },
	{ "helpdesk", "helpdesk-demo-1", ROLE_HELPDESK_ADMIN,
	  "help-desk administrator (its portal is not built yet)" },
	{ "CORP\\alice", "alice-demo-1", 0, "end user of PC-ALICE and LAPTOP-ALICE" },
	{ "CORP\\bob", "bob-demo-1", 0, "end user of PC-BOB" },
};

struct demo_device {
	const char *name;
	const char *user;        /* local logon */
	const char *remote;      /* remote logon only */
};

static const struct demo_device demo_devices[] = {
	{ "PC-ALICE", "CORP\\alice", NULL },
	{ "PC-BOB", "CORP\\bob", "CORP\\alice" },
	{ "LAPTOP-ALICE", "alice@corp.example.com", NULL },
};

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wxe");

	if (!f)
		return errno == EEXIST ? 0 : cli_error("cannot create %s: %s", path,
						       strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0)
		return cli_error("cannot write %s: %s", path, strerror(errno));
	return 0;
}

static int write_setup(const char *dir, const char *listen)
{
	char path[4096];
	struct buf conf;
	int rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cli_error("cannot create %s: %s", dir, strerror(errno));
	buf_init(&conf, 16384);
	rc = buf_printf(&conf,
		"# keywarden demo instance; see `keywarden config check`\n"
		"[server]\nlisten = %s\n\n"
		"[storage]\ndatabase = sqlite:%s/keywarden.db\nkey_file = %s/master.key\n\n"
		"[portal]\ncompany_name = Contoso IT (demo)\n"
		"helpdesk_text = Contact the Contoso help desk, phone 555-0100\n"
		"helpdesk_text.sv = Kontakta Contosos supportavdelning, telefon 555-0100\n"
		"helpdesk_url = https://helpdesk.contoso.example/\n"
		"display_notice = true\nnotice_file = %s/notice.txt\n\n"
		"[identity]\ndomains = CORP:corp.example.com\n",
		listen, dir, dir, dir);
	if (rc == 0)
		rc = str_join_path(path, sizeof(path), dir, "keywarden.conf");
	if (rc == 0)
		rc = write_file(path, conf.data);
	buf_free(&conf);
	if (rc)
		return rc;
	if (str_join_path(path, sizeof(path), dir, "notice.txt") < 0 || write_file(path, "This service gives out BitLocker recovery keys to the people "
		       "who use the computers. Every request is recorded. Use it only for a "
		       "computer you are allowed to unlock.\n"))
		return 1;
	if (str_join_path(path, sizeof(path), dir, "notice.sv.txt") < 0)
		return cli_error("%s: path too long", dir);
	return write_file(path, "Den här tjänsten lämnar ut BitLocker-återställningsnycklar "
			  "till dem som använder datorerna. Varje begäran registreras. Använd "
			  "den bara för en dator som du har rätt att låsa upp.\n");
}

/* A random key ID whose first 8 digits are prefix (when given). */
static void demo_key_id(const char *prefix, char out[KEYID_CANON_LEN + 1])
{
	uint8_t b[16];
	char hex[KEYID_HEX_LEN + 1];

	randombytes_buf(b, sizeof(b));
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02X", b[i]);
	if (prefix)
		memcpy(hex, prefix, 8);
	keyid_format(hex, out);
}

static int save_key_tx(struct store_tx *tx, void *arg)
{
	return STORE_TX(tx, meta_set, "demo_key_id", arg);
}

static int populate(struct app *app, char first_key[KEYID_CANON_LEN + 1])
{
	char token[SECRET_TEXT_MAX], secret[SECRET_TEXT_MAX], id[UUID_LEN + 1];
	char prefix[9];
	int64_t now = time_now();
	uint8_t raw[16];
	int rc;

	for (size_t i = 0; i < sizeof(demo_users) / sizeof(demo_users[0]); i++)
		if (cli_add_user(app->store, demo_users[i].name, demo_users[i].roles,
				 demo_users[i].password))
			return 1;
	if ((rc = enroll_token_create(app->store, now, now + 3600, -1, token, NULL)) < 0)
		return cli_error("cannot create a token: %s", kw_strerror(rc));
	randombytes_buf(raw, 4);
	snprintf(prefix, sizeof(prefix), "%02X%02X%02X%02X", raw[0], raw[1], raw[2], raw[3]);
	for (size_t i = 0; i < sizeof(demo_devices) / sizeof(demo_devices[0]); i++) {
		const struct demo_device *dd = &demo_devices[i];
		struct device_new d = { dd->name, "CORP", "Windows 11 Pro 23H2" };
		struct checkin_volume vol;
		struct checkin_logon logons[2];
		struct checkin ci;
		struct checkin_result res;

		if ((rc = enroll_register(app->store, token, &d, now, id, secret)) < 0)
			return cli_error("cannot register %s: %s", dd->name, kw_strerror(rc));
		sodium_memzero(secret, sizeof(secret));
		memset(&vol, 0, sizeof(vol));
		memset(&ci, 0, sizeof(ci));
		demo_key_id(NULL, vol.guid);
		snprintf(vol.mount, sizeof(vol.mount), "C:");
		snprintf(vol.type, sizeof(vol.type), "os");
		snprintf(vol.protection, sizeof(vol.protection), "on");
		snprintf(vol.encryption, sizeof(vol.encryption), "xts_aes_256");
		vol.percent = 100;
		vol.nkeys = 1;
		/* PC-ALICE and PC-BOB share a key ID prefix: alice typing 8
		 * characters still gets only her own key. */
		demo_key_id(i < 2 ? prefix : NULL, vol.keys[0].key_id);
		randombytes_buf(raw, sizeof(raw));
		recpw_from_key(raw, vol.keys[0].password);
		memset(logons, 0, sizeof(logons));
		snprintf(logons[0].user, sizeof(logons[0].user), "%s", dd->user);
		logons[0].type = LOGON_LOCAL;
		logons[0].at = now - 3600;
		if (dd->remote) {
			snprintf(logons[1].user, sizeof(logons[1].user), "%s", dd->remote);
			logons[1].type = LOGON_REMOTE;
			logons[1].at = now - 1800;
		}
		snprintf(ci.os, sizeof(ci.os), "Windows 11 Pro 23H2");
		ci.volumes = &vol;
		ci.nvolumes = 1;
		ci.logons = logons;
		ci.nlogons = dd->remote ? 2 : 1;
		rc = checkin_apply(app->store, app->seal, id, &ci, now, &res);
		checkin_result_free(&res);
		if (i == 0)
			memcpy(first_key, vol.keys[0].key_id, KEYID_CANON_LEN + 1);
		sodium_memzero(&vol, sizeof(vol));
		if (rc < 0)
			return cli_error("cannot escrow the demo keys: %s", kw_strerror(rc));
	}
	sodium_memzero(token, sizeof(token));
	if ((rc = store_write(app->store, save_key_tx, first_key)) < 0)
		return cli_error("cannot record the demo key: %s", kw_strerror(rc));
	return 0;
}

static int load_key_tx(struct store_tx *tx, void *arg)
{
	return STORE_TX(tx, meta_get, "demo_key_id", arg, KEYID_CANON_LEN + 1);
}

int cmd_demo(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_arg = "keywarden-demo", *listen = NULL;
	char dir[4096], conf[4096 + 32], msg[512], key_id[KEYID_CANON_LEN + 1] = "";
	struct seal *k = NULL;
	struct app app;
	struct buf banner;
	bool fresh;
	int o, rc = 1;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dir_arg = optarg; break;
		case 'l': listen = optarg; break;
		case 'h': fputs(demo_usage, stdout); return 0;
		default: fputs(demo_usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(demo_usage, stderr);
		return 2;
	}
	memset(&app, 0, sizeof(app));
	buf_init(&banner, 16384);
	if (mkdir(dir_arg, 0700) < 0 && errno != EEXIST)
		return cli_error("cannot create %s: %s", dir_arg, strerror(errno));
	if (!realpath(dir_arg, dir))
		return cli_error("cannot resolve %s: %s", dir_arg, strerror(errno));
	if (write_setup(dir, listen ? listen : "127.0.0.1:8080"))
		return 1;
	if (str_join_path(conf, sizeof(conf), dir, "keywarden.conf") < 0)
		return cli_error("%s: path too long", dir);
	c->config_path = conf;
	if (cli_config(c))
		return 1;
	/* --listen wins over the kept configuration of an earlier run. */
	if (listen) {
		char *l = strdup(listen);

		if (!l)
			return cli_error("out of memory");
		free(c->cfg.listen);
		c->cfg.listen = l;
		if (config_validate(&c->cfg, msg, sizeof(msg)) < 0)
			return cli_error("--listen %s: %s", listen, msg);
	}
	fresh = access(c->cfg.key_file, F_OK) != 0;
	if (fresh && (seal_generate(&k) < 0 ||
		      seal_save(k, c->cfg.key_file, 1, msg, sizeof(msg)) < 0)) {
		cli_error("%s", msg);
		goto out;
	}
	if (app_open(&app, &c->cfg, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	if (fresh && populate(&app, key_id))
		goto out;
	if (!fresh)
		store_read(app.store, load_key_tx, key_id);
	app_close(&app);

	rc = buf_printf(&banner, "\nkeywarden demo is running: http://%s/\n"
			"  data and configuration: %s\n\naccounts (user / password):\n",
			c->cfg.listen, dir);
	for (size_t i = 0; rc == 0 && i < sizeof(demo_users) / sizeof(demo_users[0]); i++)
		rc = buf_printf(&banner, "  %-9s %-16s %s\n",
				strchr(demo_users[i].name, '\\') ?
				strchr(demo_users[i].name, '\\') + 1 : demo_users[i].name,
				demo_users[i].password, demo_users[i].what);
	if (rc == 0)
		rc = buf_printf(&banner, "\nto try self-service, sign in as alice and enter the "
				"key ID %.8s (full ID %s)\n"
				"device API: keywarden --config %s enroll create\n"
				"stop with Ctrl-C\n\n", key_id, key_id, conf);
	if (rc < 0) {
		rc = cli_error("%s", kw_strerror(rc));
		goto out;
	}
	rc = cli_serve_run(c, banner.data);
out:
	app_close(&app);
	seal_free(k);
	buf_free(&banner);
	return rc;
}
