#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/demo.h"
#include "core/keyfile.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/str.h"

const char usage_demo[] =
	"usage: keywarden demo [--dir DIR] [--listen HOST:PORT]\n"
	"\n"
	"Starts a local demonstration instance on SQLite in DIR (default\n"
	"./keywarden-demo): the first time it creates the configuration, the key\n"
	"file, demo accounts, devices, recovery keys and logons. Prints the URL, the\n"
	"accounts and a key ID to try, then serves until Ctrl-C. Run it again to\n"
	"serve the same data. Not for production: the demo passwords are public.\n";

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

/* The first time (no key file yet), a key and the demo data; later, the
 * key ID to try that the first run recorded. */
static int prepare(struct cli *c, char key_id[KEYID_CANON_LEN + 1])
{
	bool fresh = access(c->cfg.key_file, F_OK) != 0;
	struct keyfile kf = { .lock = -1 };
	struct store *s = NULL;
	struct seal *k = NULL;
	char msg[512];
	int rc = 1;

	if (fresh && (seal_generate(&k) < 0 ||
		      seal_save(k, c->cfg.key_file, 1, msg, sizeof(msg)) < 0)) {
		cli_error("%s", msg);
		goto out;
	}
	if (cli_store(c, &s) || cli_key(c, s, false, &kf))
		goto out;
	if (fresh && demo_populate(s, kf.seal, key_id, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		goto out;
	}
	if (!fresh)
		demo_key(s, key_id);
	rc = 0;
out:
	keyfile_close(&kf);
	store_close(s);
	seal_free(k);
	return rc;
}

enum { OPT_DIR = 'd', OPT_LISTEN = 'l' };

const struct option opts_demo[] = {
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ NULL, 0, NULL, 0 },
};

int cmd_demo(struct cli_call *call)
{
	struct cli *c = call->cli;
	const char *dir_arg = cli_opt(call, OPT_DIR), *listen = cli_opt(call, OPT_LISTEN);
	char dir[4096], conf[4096 + 32], msg[512], key_id[KEYID_CANON_LEN + 1] = "";
	struct buf banner;
	int rc = 1;

	if (!dir_arg)
		dir_arg = "keywarden-demo";
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
	if (prepare(c, key_id))
		goto out;

	rc = buf_printf(&banner, "\nkeywarden demo is running: http://%s/\n"
			"  data and configuration: %s\n\naccounts (user / password):\n",
			c->cfg.listen, dir);
	for (size_t i = 0; rc == 0 && i < demo_nusers; i++)
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
	buf_free(&banner);
	return rc;
}
