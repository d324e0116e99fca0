#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/export.h"
#include "core/recpw.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/timeutil.h"

#define LINE_MAX_BYTES (64 * 1024)
#define COMMENT_MAX 4200     /* the count and a path */

enum stage { CHECK, RECORD, WRITE };

struct export {
	struct store *s;
	const struct seal *seal;
	const struct audit_rec *who;
	const char *dest;
	FILE *out;
	enum stage stage;
	struct buf line;
	size_t keys, rows;
	char bad[160];           /* the key that did not decrypt */
};

static int export_row(const struct key_full_rec *f, void *arg)
{
	struct export *e = arg;
	char pw[RECPW_CANON_LEN + 16], created[TIME_ISO_LEN], disclosed[TIME_ISO_LEN] = "";
	const char *fields[10];
	int rc;

	if ((rc = seal_decrypt(e->seal, f->key.key_id, f->key.device_id, f->key.sealed,
			       f->key.sealed_len, pw, sizeof(pw))) < 0) {
		snprintf(e->bad, sizeof(e->bad), "key %s of device %s", f->key.key_id,
			 f->key.device_id);
		return rc;
	}
	if (e->stage == CHECK) {
		sodium_memzero(pw, sizeof(pw));
		e->keys++;
		return 0;
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

static int audit_tx(struct store_tx *tx, void *arg)
{
	const struct export *e = arg;
	char comment[COMMENT_MAX];
	struct audit_rec a;

	snprintf(comment, sizeof(comment), "%zu keys to %s", e->keys, e->dest);
	a = *e->who;
	a.at = time_now();
	a.result = AUDIT_EXPORTED;
	a.key_type = "recovery_password";
	a.comment = comment;
	return audit_append(tx, &a);
}

static int export_tx(struct store_tx *tx, void *arg)
{
	struct export *e = arg;
	int rc;

	/* The snapshot begins with this first read and holds until the end,
	 * while the record is committed by a write of its own: the record's
	 * count and the rows written are of the same keys. */
	if ((rc = store_key_each_full(tx, export_row, e)) < 0)
		return rc;
	e->stage = RECORD;
	if ((rc = store_write(e->s, audit_tx, e)) < 0)
		return rc;
	e->stage = WRITE;
	if (fputs(EXPORT_CSV_HEADER "\r\n", e->out) == EOF)
		return KW_ERR_IO;
	return store_key_each_full(tx, export_row, e);
}

int export_csv(struct store *s, const struct seal *k, const struct audit_rec *who,
	       const char *dest, FILE *out, size_t *rows, char *msg, size_t msglen)
{
	struct export e;
	int rc;

	memset(&e, 0, sizeof(e));
	e.s = s;
	e.seal = k;
	e.who = who;
	e.dest = dest;
	e.out = out;
	buf_init(&e.line, LINE_MAX_BYTES);
	/* Rows go to out as they are read, and the record is its own write. */
	rc = store_read_once(s, export_tx, &e);
	if (rc == 0 && fflush(out) != 0)
		rc = KW_ERR_IO;
	*rows = e.rows;
	if (rc < 0 && e.bad[0])
		snprintf(msg, msglen, "%s does not decrypt with this key file; nothing exported",
			 e.bad);
	else if (rc < 0 && e.stage == CHECK)
		snprintf(msg, msglen, "cannot read the keys: %s; nothing exported",
			 kw_strerror(rc));
	else if (rc < 0 && e.stage == RECORD)
		snprintf(msg, msglen, "the export could not be recorded in the audit trail (%s); "
			 "nothing exported", kw_strerror(rc));
	else if (rc < 0)
		snprintf(msg, msglen, "writing the export failed after %zu of %zu keys: %s", e.rows,
			 e.keys, kw_strerror(rc));
	buf_wipe_free(&e.line);
	return rc;
}
