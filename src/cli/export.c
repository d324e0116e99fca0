#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/timeutil.h"

static const char export_usage[] =
	"usage: keywarden export csv [--output FILE]\n"
	"\n"
	"Writes every escrowed recovery key, in every state, with its device and\n"
	"volume, as CSV: the administrator's backup. The file holds the recovery\n"
	"passwords in clear text: --output creates it with mode 0600.\n"
	"Columns: device_id,device_name,domain,volume_id,mount,key_id,\n"
	"recovery_password,state,created_at,disclosed_at\n";

struct export {
	const struct seal *seal;
	FILE *out;
	struct buf line;
	size_t rows;
	int failed;
};

static int export_row(const struct key_full_rec *f, void *arg)
{
	struct export *e = arg;
	char pw[RECPW_CANON_LEN + 16], created[TIME_ISO_LEN], disclosed[TIME_ISO_LEN] = "";
	const char *fields[10];
	int rc;

	if ((rc = seal_decrypt(e->seal, f->key.key_id, f->key.device_id, f->key.sealed,
			       f->key.sealed_len, pw, sizeof(pw))) < 0) {
		cli_error("key %s of device %s does not decrypt with this key file",
			  f->key.key_id, f->key.device_id);
		return rc;
	}
	time_format_iso(f->key.created_at, created);
	if (f->key.disclosed_at)
		time_format_iso(f->key.disclosed_at, disclosed);
	fields[0] = f->device->id;
	fields[1] = f->device->name;
	fields[2] = f->device->domain;
	fields[3] = f->volume->guid;
	fields[4] = f->volume->mount;
	fields[5] = f->key.key_id;
	fields[6] = pw;
	fields[7] = key_state_name(f->key.state);
	fields[8] = created;
	fields[9] = disclosed;
	buf_reset(&e->line);
	for (int i = 0; i < 10 && rc == 0; i++) {
		if (i)
			rc = buf_putc(&e->line, ',');
		if (rc == 0)
			rc = buf_put_csv(&e->line, fields[i]);
	}
	if (rc == 0)
		rc = buf_puts(&e->line, "\r\n");
	sodium_memzero(pw, sizeof(pw));
	if (rc < 0)
		return rc;
	if (fwrite(e->line.data, 1, e->line.len, e->out) != e->line.len)
		return KW_ERR_IO;
	e->rows++;
	return 0;
}

static int export_tx(struct store_tx *tx, void *arg)
{
	return STORE_TX(tx, key_each_full, export_row, arg);
}

int cmd_export(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct export e;
	struct store *s = NULL;
	const char *output = NULL;
	int o, fd = -1, rc = 1;

	memset(&e, 0, sizeof(e));
	buf_init(&e.line, 64 * 1024);
	optind = 0;
	while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (o) {
		case 'o': output = optarg; break;
		case 'h': fputs(export_usage, stdout); return 0;
		default: fputs(export_usage, stderr); return 2;
		}
	}
	if (optind != argc - 1 || strcmp(argv[optind], "csv")) {
		fputs(export_usage, stderr);
		return 2;
	}
	if (cli_config(c) || cli_seal(c, (struct seal **)&e.seal) || cli_store(c, &s))
		goto out;
	if (output) {
		fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || fchmod(fd, 0600) < 0 || !(e.out = fdopen(fd, "w"))) {
			rc = cli_error("cannot write %s: %s", output, strerror(errno));
			goto out;
		}
		fd = -1;  /* owned by e.out */
	} else {
		e.out = stdout;
	}
	fputs("device_id,device_name,domain,volume_id,mount,key_id,recovery_password,"
	      "state,created_at,disclosed_at\r\n", e.out);
	rc = store_read(s, export_tx, &e);
	if (rc == 0 && fflush(e.out) != 0)
		rc = KW_ERR_IO;
	if (rc < 0) {
		rc = cli_error("export failed: %s", kw_strerror(rc));
		goto out;
	}
	if (output)
		fprintf(stderr, "keywarden: %zu keys written to %s\n", e.rows, output);
	rc = 0;
out:
	if (e.out && e.out != stdout && fclose(e.out) != 0 && rc == 0)
		rc = cli_error("cannot write %s: %s", output, strerror(errno));
	if (fd >= 0)
		close(fd);
	buf_wipe_free(&e.line);
	seal_free((struct seal *)e.seal);
	store_close(s);
	return rc;
}
