#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/audit.h"
#include "core/limits.h"
#include "core/recover.h"
#include "core/seal.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"

/* Keys a person may still need to unlock with: on the volume now. */
#define RECOVERABLE ((1u << KEY_ACTIVE) | (1u << KEY_DISCLOSED))
/* One is an answer, two is ambiguity; more only to list them, and one
 * past the list to know that more match than it shows. */
#define CANDIDATES_MAX (RECOVER_CHOICES_MAX + 1)

struct candidate {
	int64_t row;
	char key_id[KEYID_CANON_LEN + 1];
	char device_id[KEYID_CANON_LEN + 1];
	char computer[256];
	enum key_state state;
	uint8_t sealed[SEAL_MAX];
	size_t sealed_len;
};

struct job {
	const struct seal *seal;
	const struct recover_request *req;
	const char *prefix;
	struct recover_result *res;
	struct candidate c[CANDIDATES_MAX];
	size_t n;
	size_t want;              /* candidates collected at most */
};

static int candidate(const struct key_full_rec *f, void *arg)
{
	struct job *j = arg;
	struct candidate *c;

	if (j->n == j->want)
		return 1;  /* enough to answer */
	c = &j->c[j->n++];
	c->row = f->key.row;
	snprintf(c->key_id, sizeof(c->key_id), "%s", f->key.key_id);
	snprintf(c->device_id, sizeof(c->device_id), "%s", f->device->id);
	snprintf(c->computer, sizeof(c->computer), "%s", f->device->name);
	c->state = f->key.state;
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
	/* Only a reason of the source's: anything else was typed by someone. */
	a->reason = recover_reason_valid(req->source, req->reason) ? req->reason : "";
	a->comment = req->comment;
	a->client = req->client;
}

static enum recover_key_was key_was(enum key_state state)
{
	return state == KEY_REMOVED ? RECOVER_KEY_REMOVED :
		state == KEY_SUPERSEDED ? RECOVER_KEY_SUPERSEDED : RECOVER_KEY_ON_VOLUME;
}

static int recover_tx(struct store_tx *tx, void *arg)
{
	struct job *j = arg;
	const struct recover_request *req = j->req;
	struct recover_result *res = j->res;
	const char *users[IDENTITY_MAX];
	size_t nusers = req->entitled ? identity_list(req->entitled, users) : 0;
	char key_text[KEYID_INPUT_MAX + 1];
	unsigned states = req->any_state ? KEY_STATES_ALL : RECOVERABLE;
	struct audit_rec a;
	int rc;

	/* Run again after a retry: start afresh. */
	j->n = 0;
	memset(res, 0, sizeof(*res));
	rc = req->entitled ?
		store_key_each_entitled(tx, j->prefix, users, nusers, states, candidate, j) :
		store_key_each_prefix(tx, j->prefix, states, candidate, j);
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
		res->was = key_was(c->state);
		a.result = AUDIT_DISCLOSED;
		a.key_id = c->key_id;
		a.device_id = c->device_id;
		a.computer = c->computer;
		/* A key on its volume, or one that may come back to it (removed),
		 * is to be rotated; a superseded one has been already. */
		if (c->state != KEY_SUPERSEDED &&
		    (rc = store_key_set_state(tx, c->row, KEY_DISCLOSED, req->now)) < 0)
			return rc;
	} else {
		res->outcome = j->n ? RECOVER_AMBIGUOUS : RECOVER_NOT_FOUND;
		a.result = j->n ? AUDIT_AMBIGUOUS : AUDIT_NOT_FOUND;
		recover_key_text(req->key_text, j->prefix, key_text, sizeof(key_text));
		a.key_id = key_text;
		for (size_t i = 0; j->n > 1 && i < j->n && i < req->list_choices &&
		     i < RECOVER_CHOICES_MAX; i++) {
			snprintf(res->choices[i].key_id, sizeof(res->choices[i].key_id), "%s",
				 j->c[i].key_id);
			snprintf(res->choices[i].computer, sizeof(res->choices[i].computer),
				 "%s", j->c[i].computer);
			res->choices[i].was = key_was(j->c[i].state);
			res->nchoices = i + 1;
		}
		res->choices_more = res->nchoices && j->n > res->nchoices;
	}
	if ((rc = audit_append(tx, &a)) < 0)
		return rc;
	res->audit_seq = a.seq;
	return 0;
}

/* Looks the prefix up and records the outcome. */
static int lookup(struct store *s, const struct seal *k, const struct recover_request *req,
		  const char *prefix, struct recover_result *res)
{
	struct job j;
	int rc;

	memset(&j, 0, sizeof(j));
	j.seal = k;
	j.req = req;
	j.prefix = prefix;
	j.res = res;
	/* Enough to list the choices and know whether more match, or just to
	 * know there are several. */
	j.want = req->list_choices > 1 ? req->list_choices + 1 : 2;
	if (j.want > CANDIDATES_MAX)
		j.want = CANDIDATES_MAX;
	rc = store_write(s, recover_tx, &j);
	sodium_memzero(j.c, sizeof(j.c));
	if (rc < 0)
		sodium_memzero(res, sizeof(*res));   /* the commit failed: no key */
	return rc;
}

void recover_key_text(const char *typed, const char *prefix_hex, char *out, size_t outlen)
{
	size_t n = 0;

	if (!typed)
		typed = "";
	/* Text that is not even a key ID is kept only while it holds few
	 * digits: a password split by letters is no group of the format. */
	for (const char *p = typed; !prefix_hex[0] && *p; p++)
		n += *p >= '0' && *p <= '9';
	if (recpw_may_contain(typed) || n >= 12) {
		snprintf(out, outlen, "(not recorded: %zu characters that may hold a recovery "
			 "password)", strlen(typed));
		return;
	}
	if (prefix_hex[0]) {
		snprintf(out, outlen, "%s", prefix_hex);
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
	const char *prefix;
	const char *result;
	int64_t seq;
};

static int audit_tx(struct store_tx *tx, void *arg)
{
	struct audit_job *j = arg;
	char key_text[KEYID_INPUT_MAX + 1];
	struct audit_rec a;
	int rc;

	fill_audit(j->req, &a);
	a.result = j->result;
	recover_key_text(j->req->key_text, j->prefix, key_text, sizeof(key_text));
	a.key_id = key_text;
	if ((rc = audit_append(tx, &a)) == 0)
		j->seq = a.seq;
	return rc;
}

/* Records an outcome reached before any lookup (invalid input, a limit). */
static int record(struct store *s, const struct recover_request *req, const char *prefix,
		  const char *result, struct recover_result *res)
{
	struct audit_job j = { req, prefix, result, 0 };
	int rc = store_write(s, audit_tx, &j);

	res->audit_seq = j.seq;
	return rc;
}

/* ---- the reasons of each source ---- */

static const char *const self_service_reasons[] = {
	"bios_tpm_changed", "os_files_changed", "lost_pin", NULL,
};

static const char *const helpdesk_reasons[] = {
	"os_boot_order_changed", "bios_changed", "os_files_changed", "lost_startup_key",
	"lost_pin", "tpm_reset", "lost_passphrase", "lost_smartcard", "other", NULL,
};

bool recover_reason_valid(const char *source, const char *code)
{
	const char *const *list = !strcmp(source, AUDIT_SELF_SERVICE) ? self_service_reasons :
		helpdesk_reasons;

	for (size_t i = 0; code && list[i]; i++)
		if (!strcmp(code, list[i]))
			return true;
	return false;
}

/* ---- counters ---- */

static const char *const sources[] = { AUDIT_SELF_SERVICE, AUDIT_HELPDESK, AUDIT_API, AUDIT_CLI };
static const char *const results[] = { AUDIT_DISCLOSED, AUDIT_AMBIGUOUS, AUDIT_NOT_FOUND,
				       AUDIT_INVALID, AUDIT_RATE_LIMITED, AUDIT_DENIED, "error" };
#define NSOURCE (sizeof(sources) / sizeof(sources[0]))
#define NRESULT (sizeof(results) / sizeof(results[0]))
static atomic_uint_fast64_t counters[NSOURCE][NRESULT];

static void count(const char *source, const char *result)
{
	for (size_t s = 0; s < NSOURCE; s++)
		for (size_t r = 0; r < NRESULT; r++)
			if (!strcmp(sources[s], source) && !strcmp(results[r], result))
				atomic_fetch_add_explicit(&counters[s][r], 1,
							  memory_order_relaxed);
}

bool recover_counter(size_t i, const char **source, const char **result, uint64_t *n)
{
	if (i >= NSOURCE * NRESULT)
		return false;
	*source = sources[i / NRESULT];
	*result = results[i % NRESULT];
	*n = atomic_load(&counters[i / NRESULT][i % NRESULT]);
	return true;
}

/* ---- one run ---- */

static const char *result_of(enum recover_outcome o)
{
	switch (o) {
	case RECOVER_DISCLOSED: return AUDIT_DISCLOSED;
	case RECOVER_AMBIGUOUS: return AUDIT_AMBIGUOUS;
	case RECOVER_NOT_FOUND: return AUDIT_NOT_FOUND;
	case RECOVER_INVALID: return AUDIT_INVALID;
	case RECOVER_RATE_LIMITED: return AUDIT_RATE_LIMITED;
	}
	return "error";
}

/* DOMAIN\user or user@domain: how devices report the people who sign in,
 * the only names a help-desk user may name an end user by. */
static bool qualified_name(const char *name)
{
	const char *bs = strchr(name, '\\'), *at = strrchr(name, '@');

	if (bs)
		return bs > name && bs[1] && !strchr(bs + 1, '\\') && !at;
	return at && at > name && at[1];
}

/* The input's faults into iv; true when there are none. */
static bool check_input(const struct recover_request *req, char prefix[KEYID_HEX_LEN + 1],
			struct recover_invalid *iv)
{
	char pw[RECPW_CANON_LEN + 1];
	const char *kt = req->key_text;
	size_t len = 0;

	prefix[0] = '\0';
	if (keyid_check_prefix(kt, kt ? strlen(kt) : 0, prefix, &len, &iv->key) < 0) {
		prefix[0] = '\0';
		/* The password of another key, typed into the wrong field. */
		if (kt && recpw_parse(kt, strlen(kt), pw, NULL, 0) == 0)
			iv->key_is_password = true;
		sodium_memzero(pw, sizeof(pw));
	}
	iv->reason = !recover_reason_valid(req->source, req->reason);
	/* A comment is words: "other" needs some, and any comment is lines of
	 * text of at most RECOVER_COMMENT_MAX characters. */
	iv->comment = (!iv->reason && !strcmp(req->reason, "other") &&
		       (!req->comment || !*req->comment)) ||
		(req->comment && *req->comment &&
		 !str_is_clean_lines(req->comment, RECOVER_COMMENT_MAX));
	iv->end_user = (req->end_user_required && (!req->end_user || !*req->end_user)) ||
		(req->end_user && *req->end_user &&
		 (!str_is_clean_text(req->end_user, IDENTITY_NAME_MAX) ||
		  (!strcmp(req->source, AUDIT_HELPDESK) && !qualified_name(req->end_user))));
	return iv->key.problem == KEYID_OK && !iv->reason && !iv->comment && !iv->end_user;
}

int recover_run(struct store *s, const struct seal *k, const struct recover_request *req,
		struct recover_result *res)
{
	char prefix[KEYID_HEX_LEN + 1];
	int64_t retry = 0, retry_addr = 0;
	bool blocked = false;
	int rc;

	memset(res, 0, sizeof(*res));
	if (!check_input(req, prefix, &res->invalid)) {
		res->outcome = RECOVER_INVALID;
		rc = record(s, req, prefix, AUDIT_INVALID, res);
		goto out;
	}
	/* The lookup takes its place under both limits before it runs (given
	 * back unless it fails): concurrent lookups cannot all pass a check
	 * made before any of them is counted. */
	if ((rc = limiter_take(req->per_user, req->actor, req->now, &retry)) < 0)
		goto out;
	blocked = rc == 0;
	if (!blocked &&
	    (rc = limiter_take(req->per_address, req->client, req->now, &retry_addr)) <= 0) {
		limiter_give_back(req->per_user, req->actor, req->now);
		if (rc < 0)
			goto out;
		blocked = true;
	}
	if (blocked) {
		res->outcome = RECOVER_RATE_LIMITED;
		res->retry_after = retry > retry_addr ? retry : retry_addr;
		rc = record(s, req, prefix, AUDIT_RATE_LIMITED, res);
		goto out;
	}
	rc = lookup(s, k, req, prefix, res);
	/* Only a lookup that found nothing counts as a failure. */
	if (rc < 0 || res->outcome != RECOVER_NOT_FOUND) {
		limiter_give_back(req->per_user, req->actor, req->now);
		limiter_give_back(req->per_address, req->client, req->now);
	}
out:
	count(req->source, rc < 0 ? "error" : result_of(res->outcome));
	return rc;
}
