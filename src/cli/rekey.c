#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"

static const char rekey_usage[] =
	"usage: keywarden rekey\n"
	"\n"
	"Makes a new master key and re-encrypts every recovery password under it in\n"
	"one transaction. The new key is first written to KEY_FILE.new; if rekey is\n"
	"interrupted after the database changed, the server completes the switch at\n"
	"its next start. Stop the server first, and back up the new key file.\n";

struct rekey {
	const struct seal *old, *new;
	char fingerprint[SEAL_FINGERPRINT_LEN + 1];
	struct store_tx *tx;
	size_t n;
};

static int rekey_row(const struct key_full_rec *f, void *arg)
{
	struct rekey *r = arg;
	char pw[RECPW_CANON_LEN + 16];
	uint8_t sealed[SEAL_MAX];
	size_t len;
	int rc;

	if ((rc = seal_decrypt(r->old, f->key.key_id, f->key.device_id, f->key.sealed,
			       f->key.sealed_len, pw, sizeof(pw))) < 0) {
		cli_error("key %s of device %s does not decrypt with the current key file",
			  f->key.key_id, f->key.device_id);
		return rc;
	}
	rc = seal_encrypt(r->new, f->key.key_id, f->key.device_id, pw, sealed, &len);
	sodium_memzero(pw, sizeof(pw));
	if (rc < 0)
		return rc;
	/* Only the sealed column changes: the iteration's index is untouched. */
	if ((rc = STORE_TX(r->tx, key_set_sealed, f->key.row, sealed, len)) < 0)
		return rc;
	r->n++;
	return 0;
}

static int rekey_tx(struct store_tx *tx, void *arg)
{
	struct rekey *r = arg;
	int rc;

	r->tx = tx;
	r->n = 0;
	if ((rc = STORE_TX(tx, key_each_full, rekey_row, r)) < 0)
		return rc;
	return STORE_TX(tx, meta_set, "master_key_id", r->fingerprint);
}

int cmd_rekey(struct cli *c, int argc, char **argv)
{
	char pending[4096], msg[512], fp[SEAL_FINGERPRINT_LEN + 1];
	struct seal *old = NULL, *new = NULL;
	struct store *s = NULL;
	struct rekey r;
	int lock = -1, rc = 1;

	if (cli_wants_help(argc, argv)) {
		fputs(rekey_usage, stdout);
		return 0;
	}
	if (argc != 1) {
		fputs(rekey_usage, stderr);
		return 2;
	}
	if (cli_config(c) || cli_seal(c, &old))
		goto out;
	if ((lock = seal_lock(c->cfg.key_file, 1, msg, sizeof(msg))) < 0) {
		rc = cli_error("%s", msg);
		goto out;
	}
	if (cli_store(c, &s))
		goto out;
	if ((size_t)snprintf(pending, sizeof(pending), "%s.new", c->cfg.key_file) >=
	    sizeof(pending)) {
		rc = cli_error("key file path too long");
		goto out;
	}
	if (seal_generate(&new) < 0 || seal_save(new, pending, 0, msg, sizeof(msg)) < 0) {
		rc = cli_error("%s", msg);
		goto out;
	}
	memset(&r, 0, sizeof(r));
	r.old = old;
	r.new = new;
	seal_fingerprint(new, r.fingerprint);
	seal_fingerprint(old, fp);
	if ((rc = store_write(s, rekey_tx, &r)) < 0) {
		unlink(pending);
		rc = cli_error("rekey failed, nothing changed: %s", kw_strerror(rc));
		goto out;
	}
	if (rename(pending, c->cfg.key_file) < 0) {
		rc = cli_error("the database now uses the key in %s, but it could not replace "
			       "%s; the server will finish this at its next start", pending,
			       c->cfg.key_file);
		goto out;
	}
	printf("%zu keys re-encrypted; master key %s replaced by %s in %s\n", r.n, fp,
	       r.fingerprint, c->cfg.key_file);
	rc = 0;
out:
	if (lock >= 0)
		close(lock);
	seal_free(old);
	seal_free(new);
	store_close(s);
	return rc;
}
