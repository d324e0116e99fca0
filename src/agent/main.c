/* keywarden-agent: registers a Linux machine with keywarden, keeps a
 * recovery keyslot on each of its LUKS2 volumes, escrows the recovery
 * passwords and the logons, and rotates a key once it was disclosed.
 * Every message is one line; no secret is ever printed. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "agent/body.h"
#include "agent/conf.h"
#include "agent/facts.h"
#include "agent/http.h"
#include "agent/luks.h"
#include "agent/state.h"
#include "kw_build.h"
#include "util/err.h"
#include "util/jsonwipe.h"
#include "util/str.h"
#include "util/timeutil.h"

#define MAX_VOLUMES CHECKIN_MAX_VOLUMES
#define MAX_LOGONS CHECKIN_MAX_LOGONS
#define DEFAULT_INTERVAL 5400
#define ROUNDS_MAX 6      /* check-ins a run makes at most: a rotation takes three */
#define MSG_MAX 512

static const char usage_text[] =
	"usage: keywarden-agent [--config FILE] COMMAND\n"
	"\n"
	"  register [--force]       enroll this machine; the enrollment token is read\n"
	"                           from standard input\n"
	"  enroll-volume DEVICE     add the agent's recovery keyslot to a LUKS2 volume;\n"
	"                           an existing passphrase of the volume is read from\n"
	"                           standard input (used once, never stored)\n"
	"  checkin [--daemon]       report volumes, keys and logons; rotate disclosed\n"
	"                           keys (--daemon: again every checkin_interval)\n"
	"  status                   registration, volumes and their keyslots, last check-in\n"
	"\n"
	"Configuration: " AGENT_DEFAULT_CONFIG " unless --config is given.\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int usage_error(const char *what)
{
	fprintf(stderr, "keywarden-agent: %s\n%s", what, usage_text);
	return 2;
}

static int fail(const char *msg)
{
	fprintf(stderr, "keywarden-agent: error: %s\n", msg);
	return 1;
}

/* Reads one line (at most max - 1 bytes) from standard input without its
 * line end, with read(2) one byte at a time: no copy of the secret is left
 * in stdio's buffer, and nothing past the line is taken. KW_ERR_INVALID
 * when empty, KW_ERR_TOO_LARGE when longer, KW_ERR_IO on a read error. */
static int read_stdin_line(char *buf, size_t max, size_t *len)
{
	size_t n = 0;
	char c;
	ssize_t got;

	*len = 0;
	buf[0] = '\0';
	for (;;) {
		got = read(STDIN_FILENO, &c, 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			sodium_memzero(buf, max);
			return KW_ERR_IO;
		}
		if (got == 0 || c == '\n')
			break;
		if (n + 1 >= max) {
			sodium_memzero(buf, max);
			sodium_memzero(&c, sizeof(c));
			return KW_ERR_TOO_LARGE;
		}
		buf[n++] = c;
	}
	sodium_memzero(&c, sizeof(c));
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	return n ? 0 : KW_ERR_INVALID;
}

/* What the server sends as a device ID or secret goes into a file of
 * name=value lines and an HTTP header: printable ASCII, no space. */
static bool is_printable_word(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e)
			return false;
	return true;
}

/* The volumes to manage: the configured paths or, for "auto", every LUKS
 * device found. */
static int volume_paths(const struct agent_conf *conf, char (*paths)[LUKS_PATH_MAX],
			size_t max)
{
	char *list, *save = NULL, *item;
	int n = 0;

	if (!strcmp(conf->volumes, "auto"))
		return luks_find(paths, max);
	if (!(list = strdup(conf->volumes)))
		return KW_ERR_NOMEM;
	for (item = strtok_r(list, ",", &save); item && (size_t)n < max;
	     item = strtok_r(NULL, ",", &save)) {
		item = str_trim(item);
		if (*item)
			snprintf(paths[n++], LUKS_PATH_MAX, "%s", item);
	}
	free(list);
	return n;
}

/* -- register -- */

static int cmd_register(const struct agent_conf *conf, bool force)
{
	struct agent_registration reg;
	char token[512], msg[MSG_MAX], os[CHECKIN_TEXT_MAX + 1], host[256];
	char *body = NULL, *resp = NULL;
	json_t *req = NULL, *ans = NULL;
	const char *id, *secret;
	size_t tlen;
	long status;
	int rc = 1, r;

	memset(&reg, 0, sizeof(reg));
	if (http_check_url(conf->server, msg, sizeof(msg)) < 0 ||
	    state_prepare(conf->state_dir, msg, sizeof(msg)) < 0) {
		rc = fail(msg);
		goto out;
	}
	r = state_registration_read(conf->state_dir, &reg);
	if (r != KW_ERR_NOT_FOUND && !force) {
		str_msg(msg, sizeof(msg), r == 0 ?
			"already registered as %s; --force replaces the registration" :
			"a registration is in %s but cannot be read; --force replaces it",
			r == 0 ? reg.device_id : conf->state_dir);
		rc = fail(msg);
		goto out;
	}
	state_registration_wipe(&reg);
	if ((r = read_stdin_line(token, sizeof(token), &tlen)) < 0) {
		rc = fail(r == KW_ERR_INVALID ? "no enrollment token on standard input" :
			  r == KW_ERR_IO ? "cannot read standard input" :
			  "the enrollment token is too long");
		goto out;
	}
	facts_os_name(os, sizeof(os));
	if (conf->name)
		snprintf(host, sizeof(host), "%s", conf->name);
	else if (gethostname(host, sizeof(host)) < 0 || !*host)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	req = json_pack("{s:s, s:s, s:s, s:s}", "enrollment_token", token, "name", host,
			"domain", conf->domain ? conf->domain : "", "os", os);
	if (!req || !(body = json_dumps(req, JSON_COMPACT))) {
		rc = fail(kw_strerror(KW_ERR_NOMEM));
		goto out;
	}
	if (http_post_json(conf, "/api/v1/register", NULL, body, strlen(body), &status, &resp,
			   msg, sizeof(msg)) < 0) {
		rc = fail(msg);
		goto out;
	}
	if (status == 401) {
		rc = fail("the server refused the enrollment token (wrong, expired or used up)");
		goto out;
	}
	if (status != 201 || !(ans = json_loads(resp, 0, NULL)) ||
	    !(id = json_string_value(json_object_get(ans, "device_id"))) ||
	    !(secret = json_string_value(json_object_get(ans, "device_secret")))) {
		str_msg(msg, sizeof(msg), "registration failed: the server answered %ld", status);
		rc = fail(msg);
		goto out;
	}
	if (strlen(id) >= sizeof(reg.device_id) || strlen(secret) >= sizeof(reg.secret) ||
	    strlen(conf->server) >= sizeof(reg.server)) {
		rc = fail("the server's answer does not fit");
		goto out;
	}
	if (!is_printable_word(id) || !is_printable_word(secret)) {
		rc = fail("the server's answer holds a device ID or secret with control "
			  "characters or spaces; nothing stored");
		goto out;
	}
	snprintf(reg.device_id, sizeof(reg.device_id), "%s", id);
	snprintf(reg.secret, sizeof(reg.secret), "%s", secret);
	snprintf(reg.server, sizeof(reg.server), "%s", conf->server);
	if ((r = state_registration_write(conf->state_dir, &reg, true)) < 0) {
		str_msg(msg, sizeof(msg), "registered as %s but cannot store the secret in %s: %s",
			reg.device_id, conf->state_dir, kw_strerror(r));
		rc = fail(msg);
		goto out;
	}
	printf("registered as device %s with %s\n", reg.device_id, conf->server);
	rc = 0;
out:
	sodium_memzero(token, sizeof(token));
	state_registration_wipe(&reg);
	if (body) {
		sodium_memzero(body, strlen(body));
		json_free_string(body);
	}
	if (resp) {
		sodium_memzero(resp, strlen(resp));
		free(resp);
	}
	json_decref(req);
	json_decref(ans);
	return rc;
}

/* The state directory's lock, or an error with msg. */
static int take_lock(const struct agent_conf *conf, char *msg, size_t msglen)
{
	int fd = state_lock(conf->state_dir);

	if (fd == KW_ERR_EXISTS)
		str_msg(msg, msglen, "another keywarden-agent run holds %s/lock; try again later",
			conf->state_dir);
	else if (fd < 0)
		str_msg(msg, msglen, "cannot lock %s: %s", conf->state_dir, kw_strerror(fd));
	return fd;
}

static void pbkdf_of(const struct agent_conf *conf, struct luks_pbkdf *p)
{
	p->type = conf->pbkdf;
	p->iterations = (uint32_t)conf->pbkdf_iterations;
	p->time_ms = (uint32_t)conf->pbkdf_time_ms;
}

/* -- enroll-volume -- */

static int cmd_enroll_volume(const struct agent_conf *conf, const char *path)
{
	struct luks_volume *v = calloc(1, sizeof(*v));
	struct luks_pbkdf pbkdf;
	char pass[1024], msg[MSG_MAX], kid[KEYID_CANON_LEN + 1];
	size_t plen;
	bool changed;
	int rc = 1, r, lock = -1;

	if (!v)
		return fail(kw_strerror(KW_ERR_NOMEM));
	if (state_prepare(conf->state_dir, msg, sizeof(msg)) < 0 ||
	    (lock = take_lock(conf, msg, sizeof(msg))) < 0) {
		rc = fail(msg);
		goto out;
	}
	state_clean(conf->state_dir);
	if ((r = luks_inspect(path, conf->state_dir, true, v, msg, sizeof(msg))) < 0) {
		rc = fail(msg);
		goto out;
	}
	if (strcmp(v->type, "LUKS2")) {
		str_msg(msg, sizeof(msg), "%s: %s; only LUKS2 volumes can hold the agent's keyslot",
			path, *v->type ? v->type : "not a LUKS volume");
		rc = fail(msg);
		goto out;
	}
	if (luks_repair(path, conf->state_dir, &changed, msg, sizeof(msg)) < 0) {
		rc = fail(msg);
		goto out;
	}
	luks_volume_wipe(v);
	luks_inspect(path, conf->state_dir, true, v, msg, sizeof(msg));
	for (size_t i = 0; i < v->nkeys; i++)
		if (v->keys[i].opens) {
			str_msg(msg, sizeof(msg), "%s: already enrolled (key %s in keyslot %d)", path,
				v->keys[i].key_id, v->keys[i].slot);
			rc = fail(msg);
			goto out;
		}
	if ((r = read_stdin_line(pass, sizeof(pass), &plen)) < 0) {
		rc = fail(r == KW_ERR_INVALID ? "no passphrase on standard input" :
			  r == KW_ERR_IO ? "cannot read standard input" :
			  "the passphrase is too long");
		goto out;
	}
	pbkdf_of(conf, &pbkdf);
	if (luks_add_key(path, conf->state_dir, &pbkdf, pass, plen, kid, msg, sizeof(msg)) < 0) {
		rc = fail(msg);
		goto out;
	}
	printf("%s: recovery key %s added and verified; the next check-in escrows it\n", path,
	       kid);
	rc = 0;
out:
	sodium_memzero(pass, sizeof(pass));
	luks_volume_wipe(v);
	free(v);
	if (lock >= 0)
		close(lock);
	return rc;
}

/* -- checkin -- */

struct run {
	const struct agent_conf *conf;
	struct agent_registration reg;
	char paths[MAX_VOLUMES][LUKS_PATH_MAX];
	struct luks_volume vols[MAX_VOLUMES];
	bool reported[MAX_VOLUMES];
	bool sent[MAX_VOLUMES][LUKS_MAX_KEYS];    /* the keys in this round's body */
	size_t nvols;
	struct agent_volume out[MAX_VOLUMES];
	struct agent_logon logons[MAX_LOGONS];
	char rotate[CHECKIN_MAX_VOLUMES * CHECKIN_MAX_KEYS][KEYID_CANON_LEN + 1];
	size_t nrotate;
	int64_t interval;
	int problems;
};

static void run_wipe(struct run *run)
{
	state_registration_wipe(&run->reg);
	sodium_memzero(run->vols, sizeof(run->vols));
	sodium_memzero(run->out, sizeof(run->out));
}

static void problem(struct run *run, const char *msg)
{
	fprintf(stderr, "keywarden-agent: %s\n", msg);
	run->problems++;
}

/* Reads every volume again (after a repair) and builds the volumes part of
 * the check-in: each LUKS2 volume with the keys of its own slots whose
 * passwords are known and open the volume. */
static size_t collect(struct run *run, bool quiet)
{
	char msg[MSG_MAX];
	size_t n = 0;

	for (size_t i = 0; i < run->nvols; i++) {
		struct luks_volume *v = &run->vols[i];
		struct agent_volume *o = &run->out[n];
		bool lost = false, dup = false;
		bool changed;
		size_t unsent = 0;

		run->reported[i] = false;
		memset(run->sent[i], 0, sizeof(run->sent[i]));
		luks_volume_wipe(v);
		if (luks_inspect(run->paths[i], run->conf->state_dir, false, v, msg,
				 sizeof(msg)) < 0) {
			if (!quiet)
				problem(run, msg);
			continue;
		}
		if (!*v->type || !*v->uuid) {
			if (!quiet) {
				str_msg(msg, sizeof(msg), "%s: not a LUKS volume; not reported",
					run->paths[i]);
				problem(run, msg);
			}
			continue;
		}
		/* Later rounds follow this run's own steps: nothing to repair. */
		if (!quiet && !strcmp(v->type, "LUKS2") &&
		    luks_repair(run->paths[i], run->conf->state_dir, &changed, msg,
				sizeof(msg)) < 0 && !quiet)
			problem(run, msg);
		luks_volume_wipe(v);
		if (luks_inspect(run->paths[i], run->conf->state_dir, true, v, msg,
				 sizeof(msg)) < 0)
			continue;
		for (size_t j = 0; j < n; j++)
			if (!strcmp(run->out[j].id, v->uuid)) {
				dup = true;
				break;
			}
		if (dup) {
			/* The same header twice (a loop device over an image, a
			 * clone): the server takes a volume once per check-in. */
			if (!quiet)
				fprintf(stderr, "keywarden-agent: warning: %s: LUKS UUID %s already "
					"seen on another device; reported once\n", v->path, v->uuid);
			continue;
		}
		memset(o, 0, sizeof(*o));
		snprintf(o->id, sizeof(o->id), "%s", v->uuid);
		luks_mount_of(v->uuid, o->mount, sizeof(o->mount));
		o->type = !strcmp(o->mount, "/") ? "os" : luks_media_type(v->path);
		o->protection = "on";
		snprintf(o->encryption, sizeof(o->encryption), "%s", v->encryption);
		o->percent = 100;
		for (size_t k = 0; k < v->nkeys; k++) {
			if (v->keys[k].opens && o->nkeys < CHECKIN_MAX_KEYS) {
				memcpy(o->keys[o->nkeys].key_id, v->keys[k].key_id,
				       sizeof(o->keys[0].key_id));
				memcpy(o->keys[o->nkeys].password, v->keys[k].password,
				       sizeof(o->keys[0].password));
				o->nkeys++;
				run->sent[i][k] = true;
			} else if (v->keys[k].opens) {
				unsent++;
			} else if (v->keys[k].escrowed) {
				lost = true;
			}
		}
		if (unsent && !quiet) {
			str_msg(msg, sizeof(msg), "%s: %zu recovery keys beyond the %d a check-in "
				"holds were not sent (and are not escrowed)", v->path, unsent,
				CHECKIN_MAX_KEYS);
			problem(run, msg);
		}
		if (lost) {
			/* Reporting the volume would mark the escrowed key removed
			 * although its slot may still open the volume. */
			if (!quiet) {
				str_msg(msg, sizeof(msg), "%s: the password of an escrowed keyslot is "
					"missing from %s or does not open it; volume not reported",
					v->path, run->conf->state_dir);
				problem(run, msg);
			}
			continue;
		}
		if (!quiet && !o->nkeys) {
			str_msg(msg, sizeof(msg), "%s: %s volume %s without a keywarden recovery key "
				"(the agent was not given a passphrase for it: run enroll-volume); "
				"reported without a key, nothing changed", v->path, v->type, v->uuid);
			problem(run, msg);
		}
		run->reported[i] = true;
		n++;
	}
	return n;
}

static bool in_rotate(const struct run *run, const char *key_id)
{
	for (size_t i = 0; i < run->nrotate; i++)
		if (!strcmp(run->rotate[i], key_id))
			return true;
	return false;
}

/* One check-in: 0 after the server's acknowledgement (200 with the rotate
 * array and the interval, both read), else an error with msg. */
static int send_checkin(struct run *run, size_t nout, size_t nlogons, char *msg,
			size_t msglen)
{
	struct agent_facts f;
	char *body = NULL, *resp = NULL;
	json_t *ans = NULL, *rot, *iv;
	const char *field;
	size_t len;
	long status;
	int r;

	memset(&f, 0, sizeof(f));
	facts_os_name(f.os, sizeof(f.os));
	f.volumes = run->out;
	f.nvolumes = nout;
	f.logons = run->logons;
	f.nlogons = nlogons;
	if ((r = body_build(&f, &body, &len)) < 0) {
		if (r == KW_ERR_TOO_LARGE)
			str_msg(msg, msglen, "the check-in would be larger than the server's limit "
				"(%d bytes: too many volumes or logons); not sent", BODY_MAX);
		else
			str_msg(msg, msglen, "%s", kw_strerror(r));
		return r;
	}
	r = http_post_json(run->conf, "/api/v1/checkin", run->reg.secret, body, len, &status,
			   &resp, msg, msglen);
	sodium_memzero(body, len);
	json_free_string(body);
	if (r < 0)
		return r;
	if (status < 200 || status > 299) {
		r = status == 401 ? KW_ERR_AUTH : status == 409 ? KW_ERR_CONFLICT :
		    status == 422 ? KW_ERR_INVALID : KW_ERR_UNAVAILABLE;
		/* A 422 names the first field it refused (names only: no value). */
		ans = json_loads(resp, 0, NULL);
		field = json_string_value(json_object_get(
			json_array_get(json_object_get(ans, "errors"), 0), "field"));
		if (status == 401)
			str_msg(msg, msglen, "the server refused the check-in (401): the device "
				"secret is unknown or revoked");
		else if (field)
			str_msg(msg, msglen, "the server refused the check-in (%ld): %s is invalid",
				status, field);
		else
			str_msg(msg, msglen, "the server refused the check-in (%ld)", status);
		goto out;
	}
	/* Only the server's own answer acknowledges the keys sent: a 200 with
	 * a JSON object holding the rotate array and the interval. A 204, or a
	 * proxy's or captive portal's 200 page, proves nothing was stored. */
	ans = json_loads(resp, 0, NULL);
	rot = json_object_get(ans, "rotate");
	iv = json_object_get(ans, "checkin_interval");
	if (status != 200 || !json_is_object(ans) || !json_is_array(rot) ||
	    !json_is_integer(iv)) {
		str_msg(msg, msglen, "the answer to the check-in (%ld) is not the server's "
			"acknowledgement; nothing marked escrowed, nothing removed", status);
		r = KW_ERR_UNAVAILABLE;
		goto out;
	}
	run->nrotate = 0;
	run->interval = DEFAULT_INTERVAL;
	{
		size_t i;
		json_t *k;

		json_array_foreach(rot, i, k) {
			const char *s = json_string_value(k);
			char m[8];

			if (s && run->nrotate < sizeof(run->rotate) / sizeof(run->rotate[0]) &&
			    keyid_parse(s, strlen(s), run->rotate[run->nrotate], m, sizeof(m)) == 0)
				run->nrotate++;
		}
		if (json_integer_value(iv) >= 60 && json_integer_value(iv) <= 7 * 86400)
			run->interval = json_integer_value(iv);
	}
	r = 0;
out:
	json_decref(ans);
	if (resp) {
		sodium_memzero(resp, strlen(resp));
		free(resp);
	}
	return r;
}

/* After a check-in the server acknowledged: every reported key is
 * escrowed; then one step of each rotation asked for. Returns whether
 * anything changed (another check-in is due). */
static bool after_ack(struct run *run)
{
	struct luks_pbkdf pbkdf;
	char msg[MSG_MAX], kid[KEYID_CANON_LEN + 1];
	bool acted = false, kept;

	pbkdf_of(run->conf, &pbkdf);
	for (size_t i = 0; i < run->nvols; i++) {
		struct luks_volume *v = &run->vols[i];
		const struct luks_key *replacement = NULL;

		if (!run->reported[i])
			continue;
		for (size_t k = 0; k < v->nkeys; k++) {
			if (!v->keys[k].opens)
				continue;
			/* Only what this body held is acknowledged. */
			if (!v->keys[k].escrowed && !run->sent[i][k])
				continue;
			if (!v->keys[k].escrowed) {
				if (luks_mark_escrowed(v->path, v->keys[k].key_id, msg, sizeof(msg)) < 0) {
					problem(run, msg);
					continue;
				}
				v->keys[k].escrowed = true;
				printf("%s: recovery key %s escrowed\n", v->path, v->keys[k].key_id);
			}
			if (!in_rotate(run, v->keys[k].key_id))
				replacement = &v->keys[k];
		}
		for (size_t k = 0; k < v->nkeys; k++) {
			struct luks_key *old = &v->keys[k];

			if (!old->opens || !in_rotate(run, old->key_id))
				continue;
			if (replacement) {
				/* The new key is escrowed: the disclosed one may go. */
				if (luks_kill_key(v->path, run->conf->state_dir, old->key_id,
						  replacement->key_id, &kept, msg, sizeof(msg)) < 0) {
					problem(run, msg);
					continue;
				}
				if (kept)
					fprintf(stderr, "keywarden-agent: warning: %s\n", msg);
				else
					printf("%s: disclosed recovery key %s removed (replaced by %s)\n",
					       v->path, old->key_id, replacement->key_id);
				acted = true;
				break;
			}
			if (luks_add_key(v->path, run->conf->state_dir, &pbkdf, old->password,
					 strlen(old->password), kid, msg, sizeof(msg)) < 0) {
				problem(run, msg);
				str_msg(msg, sizeof(msg), "%s: recovery key %s was disclosed and could "
					"not be rotated; it stays", v->path, old->key_id);
				problem(run, msg);
				continue;
			}
			printf("%s: recovery key %s added to replace the disclosed %s\n", v->path, kid,
			       old->key_id);
			acted = true;
			break;
		}
	}
	return acted;
}

static int checkin_once(const struct agent_conf *conf, int64_t *interval)
{
	struct run *run = calloc(1, sizeof(*run));
	char msg[MSG_MAX], outcome[MSG_MAX];
	size_t nlogons, nout = 0;
	int paths, r = KW_ERR_NOMEM, rounds, lock = -1;

	*interval = DEFAULT_INTERVAL;
	if (!run)
		return fail(kw_strerror(r));
	run->conf = conf;
	if ((r = state_prepare(conf->state_dir, msg, sizeof(msg))) < 0 ||
	    (r = lock = take_lock(conf, msg, sizeof(msg))) < 0)
		goto out;
	state_clean(conf->state_dir);
	r = state_registration_read(conf->state_dir, &run->reg);
	if (r < 0) {
		str_msg(msg, sizeof(msg), r == KW_ERR_NOT_FOUND ?
			"not registered: run keywarden-agent register first" :
			"the registration in %s cannot be read (%s)", conf->state_dir, kw_strerror(r));
		goto out;
	}
	if ((paths = volume_paths(conf, run->paths, MAX_VOLUMES)) < 0) {
		r = paths;
		str_msg(msg, sizeof(msg), "%s", kw_strerror(r));
		goto out;
	}
	run->nvols = (size_t)paths;
	nlogons = facts_logons(conf->logons_file, run->logons, MAX_LOGONS);
	for (rounds = 0; rounds < ROUNDS_MAX; rounds++) {
		nout = collect(run, rounds > 0);
		if ((r = send_checkin(run, nout, nlogons, msg, sizeof(msg))) < 0)
			goto out;
		if (!after_ack(run))
			break;
	}
	*interval = run->interval;
	r = 0;
out:
	if (r == 0) {
		size_t keys = 0;

		for (size_t i = 0; i < nout; i++)
			keys += run->out[i].nkeys;
		str_msg(outcome, sizeof(outcome), "ok: %zu volume(s), %zu key(s), %zu logon(s)%s",
			nout, keys, nlogons, run->problems ? "; with problems (see above)" : "");
		printf("checked in: %zu volume(s), %zu recovery key(s), %zu logon(s); next in %llds\n",
		       nout, keys, nlogons, (long long)run->interval);
	} else {
		str_msg(outcome, sizeof(outcome), "failed: %s", msg);
		fail(msg);
	}
	if (lock >= 0)
		state_last_write(conf->state_dir, time_now(), outcome, *interval);
	r = r < 0 || run->problems ? 1 : 0;
	if (lock >= 0)
		close(lock);
	run_wipe(run);
	free(run);
	return r;
}

static int cmd_checkin(const struct agent_conf *conf, bool daemon)
{
	int64_t interval;
	int rc;

	if (!daemon)
		return checkin_once(conf, &interval);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	for (;;) {
		struct timespec ts;

		rc = checkin_once(conf, &interval);
		fflush(stdout);
		/* After a failure, try again sooner: an unescrowed key waits. */
		ts.tv_sec = rc ? (interval < 300 ? interval : 300) : interval;
		ts.tv_nsec = 0;
		while (!stop_requested && nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (stop_requested)
			return 0;
	}
}

/* -- status -- */

static int cmd_status(const struct agent_conf *conf)
{
	struct agent_registration reg;
	static char paths[MAX_VOLUMES][LUKS_PATH_MAX];
	struct luks_volume *v = calloc(1, sizeof(*v));
	char msg[MSG_MAX], outcome[MSG_MAX], iso[TIME_ISO_LEN];
	int64_t at, interval;
	int n, r, rc = 0;

	if (!v)
		return fail(kw_strerror(KW_ERR_NOMEM));
	r = state_registration_read(conf->state_dir, &reg);
	if (r == 0)
		printf("registered: device %s with %s\n", reg.device_id, reg.server);
	else if (r == KW_ERR_NOT_FOUND)
		printf("registered: no (run keywarden-agent register)\n");
	else {
		printf("registered: unreadable registration in %s (%s)\n", conf->state_dir,
		       kw_strerror(r));
		rc = 1;
	}
	state_registration_wipe(&reg);
	printf("server: %s\n", *conf->server ? conf->server : "(none configured)");
	n = volume_paths(conf, paths, MAX_VOLUMES);
	if (n <= 0)
		printf("volumes: none found (%s)\n", conf->volumes);
	for (int i = 0; i < n; i++) {
		char mount[CHECKIN_MOUNT_MAX + 1];

		if (luks_inspect(paths[i], conf->state_dir, false, v, msg, sizeof(msg)) < 0) {
			printf("volume %s: %s\n", paths[i], msg);
			rc = 1;
			continue;
		}
		if (!*v->type) {
			printf("volume %s: not a LUKS volume\n", paths[i]);
			continue;
		}
		luks_mount_of(v->uuid, mount, sizeof(mount));
		printf("volume %s: %s %s, %s, mounted at %s, %d of %d keyslots free\n", paths[i],
		       v->type, v->uuid, v->encryption, *mount ? mount : "(not mounted)",
		       v->free_slots, v->free_slots + v->active_slots);
		if (!v->nkeys)
			printf("  no keywarden recovery keyslot (run enroll-volume)\n");
		for (size_t k = 0; k < v->nkeys; k++)
			printf("  recovery key %s in keyslot %d: %s%s\n", v->keys[k].key_id,
			       v->keys[k].slot, v->keys[k].escrowed ? "escrowed" : "not escrowed yet",
			       !v->keys[k].active ? ", slot missing" :
			       !v->keys[k].known ? ", password missing from the state directory" : "");
		luks_volume_wipe(v);
	}
	if (state_last_read(conf->state_dir, &at, outcome, sizeof(outcome), &interval) == 0) {
		time_format_iso(at, iso);
		printf("last check-in: %s %s\n", iso, outcome);
	} else {
		printf("last check-in: never\n");
	}
	free(v);
	return rc;
}

/* Reads options up to the next non-option: -1 to go on, or the exit
 * status when one ends the run (--help, --version before the command, an
 * unknown option). */
static int read_options(int argc, char **argv, bool version, const char **config,
			bool *force, bool *daemon)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "force", no_argument, NULL, 'f' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': *config = optarg; break;
		case 'f': *force = true; break;
		case 'd': *daemon = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'V':
			if (!version)
				return usage_error("unknown option");
			printf("keywarden-agent %s\n", KW_VERSION);
			return 0;
		default: return usage_error("unknown option");
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct agent_conf conf;
	const char *config = AGENT_DEFAULT_CONFIG, *cmd;
	char msg[MSG_MAX];
	bool force = false, daemon = false;
	int c, rc;

	if ((c = read_options(argc, argv, true, &config, &force, &daemon)) >= 0)
		return c;
	if (optind >= argc)
		return usage_error("no command given");
	cmd = argv[optind++];
	/* Options may follow the command too. */
	if ((c = read_options(argc, argv, false, &config, &force, &daemon)) >= 0)
		return c;
	if ((force && strcmp(cmd, "register")) || (daemon && strcmp(cmd, "checkin")))
		return usage_error(force ? "--force belongs to register" :
				   "--daemon belongs to checkin");
	if (strcmp(cmd, "register") && strcmp(cmd, "checkin") && strcmp(cmd, "status") &&
	    strcmp(cmd, "enroll-volume"))
		return usage_error("unknown command");
	if ((!strcmp(cmd, "enroll-volume")) != (optind + 1 == argc) || optind + 1 < argc)
		return usage_error(strcmp(cmd, "enroll-volume") ? "too many arguments" :
				   "enroll-volume takes one DEVICE");
	if (sodium_init() < 0)
		return fail("libsodium cannot start");
	jsonwipe_install();
	umask(077);
	if (agent_conf_load(&conf, config, msg, sizeof(msg)) < 0) {
		agent_conf_free(&conf);
		return fail(msg);
	}
	luks_global_init();
	if (http_global_init() < 0) {
		agent_conf_free(&conf);
		return fail("libcurl cannot start");
	}
	if (!strcmp(cmd, "register"))
		rc = cmd_register(&conf, force);
	else if (!strcmp(cmd, "enroll-volume"))
		rc = cmd_enroll_volume(&conf, argv[optind]);
	else if (!strcmp(cmd, "checkin"))
		rc = cmd_checkin(&conf, daemon);
	else
		rc = cmd_status(&conf);
	http_global_cleanup();
	agent_conf_free(&conf);
	return rc;
}
