#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/recover.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"

/* Keys a person may still need to unlock with: on the volume now. */
#define RECOVERABLE ((1u << KEY_ACTIVE) | (1u << KEY_DISCLOSED))
#define CANDIDATES_MAX 2   /* one is an answer, two is ambiguity */

struct candidate {
	int64_t row;
	char key_id[KEYID_CANON_LEN + 1];
	char device_id[KEYID_CANON_LEN + 1];
	char computer[256];
	uint8_t sealed[SEAL_MAX];
	size_t sealed_len;
};

struct job {
	const struct seal *seal;
	const struct recover_request *req;
	struct recover_result *res;
	struct candidate c[CANDIDATES_MAX];
	size_t n;
};

static int candidate(const struct key_full_rec *f, void *arg)
{
	struct job *j = arg;
	struct candidate *c;

	if (j->n == CANDIDATES_MAX)
		return 1;  /* enough to know it is ambiguous */
	c = &j->c[j->n++];
	c->row = f->key.row;
	snprintf(c->key_id, sizeof(c->key_id), "%s", f->key.key_id);
	snprintf(c->device_id, sizeof(c->device_id), "%s", f->device->id);
	snprintf(c->computer, sizeof(c->computer), "%s", f->device->name);
	c->sealed_len = f->key.sealed_len <= SEAL_MAX ? f->key.sealed_len : 0;
	memcpy(c->sealed, f->key.sealed, c->sealed_len);
	return 0;
}

static void fill_audit(const struct recover_request *req, struct audit_rec *a)
{
	memset(a, 0, sizeof(*a));
	a->at = req->now;
	a->source = req->source;
	a->actor = req->actor;
	a->end_user = req->end_user;
	a->key_type = "recovery_password";
	a->reason = req->reason;
	a->comment = req->comment;
	a->client = req->client;
}

static int recover_tx(struct store_tx *tx, void *arg)
{
	struct job *j = arg;
	const struct recover_request *req = j->req;
	struct recover_result *res = j->res;
	const char *users[IDENTITY_MAX];
	size_t nusers = req->entitled ? identity_list(req->entitled, users) : 0;
	char key_text[KEYID_INPUT_MAX + 1];
	struct audit_rec a;
	int rc;

	j->n = 0;
	rc = req->entitled ?
		STORE_TX(tx, key_each_entitled, req->prefix, users, nusers, RECOVERABLE,
			 candidate, j) :
		STORE_TX(tx, key_each_prefix, req->prefix, RECOVERABLE, candidate, j);
	if (rc < 0)
		return rc;
	fill_audit(req, &a);
	if (j->n == 1) {
		struct candidate *c = &j->c[0];

		/* Decrypt before recording: a key that cannot be read is not
		 * reported as disclosed. */
		if ((rc = seal_decrypt(j->seal, c->key_id, c->device_id, c->sealed,
				       c->sealed_len, res->password, sizeof(res->password))) < 0)
			return rc;
		res->outcome = RECOVER_DISCLOSED;
		snprintf(res->key_id, sizeof(res->key_id), "%s", c->key_id);
		snprintf(res->device_id, sizeof(res->device_id), "%s", c->device_id);
		snprintf(res->computer, sizeof(res->computer), "%s", c->computer);
		a.result = AUDIT_DISCLOSED;
		a.key_id = c->key_id;
		a.device_id = c->device_id;
		a.computer = c->computer;
		if ((rc = STORE_TX(tx, key_set_state, c->row, KEY_DISCLOSED, req->now)) < 0)
			return rc;
	} else {
		res->outcome = j->n ? RECOVER_AMBIGUOUS : RECOVER_NOT_FOUND;
		a.result = j->n ? AUDIT_AMBIGUOUS : AUDIT_NOT_FOUND;
		recover_key_text(req, key_text, sizeof(key_text));
		a.key_id = key_text;
	}
	if ((rc = audit_append(tx, &a)) < 0)
		return rc;
	res->audit_seq = a.seq;
	return 0;
}

int recover_key(struct store *s, const struct seal *k, const struct recover_request *req,
		struct recover_result *res)
{
	struct job j;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&j, 0, sizeof(j));
	j.seal = k;
	j.req = req;
	j.res = res;
	rc = store_write(s, recover_tx, &j);
	sodium_memzero(j.c, sizeof(j.c));
	if (rc < 0)
		sodium_memzero(res, sizeof(*res));   /* the commit failed: no key */
	return rc;
}

void recover_key_text(const struct recover_request *req, char *out, size_t outlen)
{
	const char *typed = req->typed ? req->typed : "";
	size_t n = 0;

	/* Text that is not even a key ID is kept only while it holds few
	 * digits: a password split by letters is no group of the format. */
	for (const char *p = typed; !req->prefix[0] && *p; p++)
		n += *p >= '0' && *p <= '9';
	if (recpw_may_contain(typed) || n >= 12) {
		snprintf(out, outlen, "(not recorded: %zu characters that may hold a recovery "
			 "password)", strlen(typed));
		return;
	}
	if (req->prefix[0]) {
		snprintf(out, outlen, "%s", req->prefix);
		return;
	}
	/* Readable and short: printable ASCII only. */
	n = 0;
	for (const char *p = typed; *p && n < 64 && n + 1 < outlen; p++)
		out[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	out[n] = '\0';
}

struct audit_job {
	const struct recover_request *req;
	const char *result;
};

static int audit_tx(struct store_tx *tx, void *arg)
{
	struct audit_job *j = arg;
	char key_text[KEYID_INPUT_MAX + 1];
	struct audit_rec a;

	fill_audit(j->req, &a);
	a.result = j->result;
	recover_key_text(j->req, key_text, sizeof(key_text));
	a.key_id = key_text;
	return audit_append(tx, &a);
}

int recover_audit(struct store *s, const struct recover_request *req, const char *result)
{
	struct audit_job j = { req, result };

	return store_write(s, audit_tx, &j);
}
