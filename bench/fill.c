/* Fills a keywarden store with generated devices, volumes, recovery keys and
 * logons, for the scale benchmarks (bench/run), through the store interface
 * and the real sealing. It also makes the bench users who sign in during
 * the benchmark and writes their key IDs as JSON on standard output.
 *
 * usage: bench_fill CONFIG KEYS [DEVICES [AUDIT]]
 *   KEYS     recovery keys in all (at least the bench users' own)
 *   DEVICES  spread the other keys over this many devices (one active key
 *            each, the rest removed); without it, two keys per device
 *   AUDIT    also append this many recovery audit records (a year of them)
 * With DEVICES, the devices check in and vary as the reports see them:
 * one in ten unprotected (non-compliant), one in ten last seen 30 days ago
 * (unknown), one in a thousand with its key disclosed and not rotated.
 * The configuration's database and key file must exist (keywarden init). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth/password.h"
#include "core/audit.h"
#include "core/config.h"
#include "core/keyid.h"
#include "core/recpw.h"
#include "core/seal.h"
#include "core/secret.h"
#include "store/store.h"
#include "util/err.h"
#include "util/str.h"

#define BENCH_USERS 64
#define BENCH_KEYS_PER_USER 8
#define BENCH_PASSWORD "bench-password-1"
#define BATCH 2000               /* devices per transaction */
#define AUDIT_BATCH 5000         /* audit records per transaction */
#define DAY 86400

struct fill {
	const struct seal *seal;
	long first, count;           /* devices of this batch */
	int keys_per_device;         /* one active, the rest removed */
	int bench;                   /* bench users' devices */
	int varied;                  /* check in, with the reports' variety */
	char (*ids)[KEYID_CANON_LEN + 1];   /* bench: the key IDs made */
	int64_t now;
};

static void random_key_id(char out[KEYID_CANON_LEN + 1])
{
	uint8_t b[16];
	char hex[KEYID_HEX_LEN + 1];

	randombytes_buf(b, sizeof(b));
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02X", b[i]);
	keyid_format(hex, out);
}

static int fill_tx(struct store_tx *tx, void *arg)
{
	struct fill *f = arg;
	uint8_t hash[SECRET_HASH_LEN], sealed[SEAL_MAX], raw[16];
	char name[64], user[64], pw[RECPW_CANON_LEN + 1];
	int rc;

	for (long i = f->first; i < f->first + f->count; i++) {
		struct device_rec d;
		struct volume_rec v;
		struct logon_rec l;
		int64_t row;

		memset(&d, 0, sizeof(d));
		secret_uuid(d.id);
		if (f->bench) {
			snprintf(name, sizeof(name), "BENCH-%02ld-%ld", i / BENCH_KEYS_PER_USER,
				 i % BENCH_KEYS_PER_USER);
			snprintf(user, sizeof(user), "CORP\\bench%02ld", i / BENCH_KEYS_PER_USER);
		} else {
			snprintf(name, sizeof(name), "PC-%08ld", i);
			snprintf(user, sizeof(user), "CORP\\user%08ld", i);
		}
		d.name = name;
		d.domain = "CORP";
		d.os = "Windows 11 Pro 23H2";
		d.created_at = f->now;
		randombytes_buf(hash, sizeof(hash));
		if ((rc = store_device_insert(tx, &d, hash)) < 0)
			return rc;
		memset(&v, 0, sizeof(v));
		memcpy(v.device_id, d.id, sizeof(v.device_id));
		random_key_id(v.guid);
		v.mount = "C:";
		v.type = "os";
		v.protection = "on";
		v.encryption = "xts_aes_256";
		v.percent = 100;
		v.first_seen = v.last_seen = f->now;
		if (f->varied) {
			int64_t seen = i % 10 == 8 ? f->now - 30 * DAY : f->now - i % DAY;

			if (i % 10 == 7) {
				v.protection = "off";
				v.encryption = "none";
				v.percent = 0;
			}
			v.last_seen = seen;
			if ((rc = store_device_checked_in(tx, d.id, d.os, seen)) < 0)
				return rc;
		}
		if ((rc = store_volume_upsert(tx, &v, &row)) < 0)
			return rc;
		for (int k = 0; k < f->keys_per_device; k++) {
			struct key_rec kr;
			size_t len;

			memset(&kr, 0, sizeof(kr));
			random_key_id(kr.key_id);
			memcpy(kr.device_id, d.id, sizeof(kr.device_id));
			randombytes_buf(raw, sizeof(raw));
			recpw_from_key(raw, pw);
			if ((rc = seal_encrypt(f->seal, kr.key_id, d.id, pw, sealed, &len)) < 0)
				return rc;
			kr.volume_row = row;
			kr.state = k == 0 ? KEY_ACTIVE : KEY_REMOVED;
			kr.sealed = sealed;
			kr.sealed_len = len;
			kr.created_at = f->now - (f->keys_per_device - k) * 30 * DAY;
			kr.changed_at = kr.created_at;
			if (f->varied && k == 0 && i % 1000 == 5) {
				kr.state = KEY_DISCLOSED;
				kr.disclosed_at = kr.changed_at = f->now - (i / 1000 % 30) * DAY;
			}
			if ((rc = store_key_insert(tx, &kr)) < 0)
				return rc;
			if (f->bench && k == 0)
				memcpy(f->ids[i], kr.key_id, sizeof(f->ids[i]));
		}
		memset(&l, 0, sizeof(l));
		memcpy(l.device_id, d.id, sizeof(l.device_id));
		l.user = user;
		l.type = LOGON_LOCAL;
		l.first_seen = l.last_seen = f->now;
		if ((rc = store_logon_upsert(tx, &l)) < 0)
			return rc;
	}
	return 0;
}

struct audit_fill {
	long first, count, total;
	long devices;
	int64_t now;
};

/* Recovery audit records over the past year, oldest first: two in three
 * from self-service, one from the help desk; most disclosed, some not
 * found or ambiguous. */
static int audit_tx(struct store_tx *tx, void *arg)
{
	static const char *const reasons[] = { "bios_tpm_changed", "lost_pin", "tpm_reset" };
	struct audit_fill *a = arg;
	char actor[64], user[64], computer[64], kid[KEYID_CANON_LEN + 1], client[32];
	int rc;

	for (long j = a->first; j < a->first + a->count; j++) {
		long dev = (j * 7919) % (a->devices ? a->devices : 1);
		bool hd = j % 3 == 0;
		struct audit_rec r;

		memset(&r, 0, sizeof(r));
		snprintf(user, sizeof(user), "CORP\\user%08ld", dev);
		snprintf(actor, sizeof(actor), "CORP\\helpdesk%02ld", j % 40);
		snprintf(computer, sizeof(computer), "PC-%08ld", dev);
		snprintf(client, sizeof(client), "10.%ld.%ld.%ld", j % 200, j / 200 % 250,
			 j % 251);
		random_key_id(kid);
		r.at = a->now - (a->total - j) * (365L * DAY) / a->total;
		r.source = hd ? AUDIT_HELPDESK : AUDIT_SELF_SERVICE;
		bool found = j % 20 != 0 && j % 50 != 1;

		r.result = found ? AUDIT_DISCLOSED : j % 20 == 0 ? AUDIT_NOT_FOUND : AUDIT_AMBIGUOUS;
		r.actor = hd ? actor : user;
		r.end_user = user;
		r.computer = computer;
		r.key_id = found ? kid : "1A2B3C4D";
		r.key_type = "recovery_password";
		r.reason = hd ? "lost_pin" : reasons[j % 3];
		r.client = client;
		if ((rc = audit_append(tx, &r)) < 0)
			return rc;
	}
	return 0;
}

struct users {
	const char *hash;
	int64_t now;
};

static int users_tx(struct store_tx *tx, void *arg)
{
	struct users *u = arg;
	char name[64];
	int rc;

	for (int i = 0; i < BENCH_USERS; i++) {
		struct user_rec r;

		memset(&r, 0, sizeof(r));
		snprintf(name, sizeof(name), "CORP\\bench%02d", i);
		r.name = name;
		r.password_hash = u->hash;
		r.created_at = u->now;
		if ((rc = store_user_insert(tx, &r)) < 0)
			return rc;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct store *s = NULL;
	struct seal *k = NULL;
	char msg[512], hash[PASSWORD_HASH_MAX];
	char (*ids)[KEYID_CANON_LEN + 1] = NULL;
	long keys, bench_devices = BENCH_USERS * BENCH_KEYS_PER_USER, others;
	int64_t devices = 0, audit = 0;
	int per_device = 2;
	struct users u;
	int64_t n;
	time_t t0 = time(NULL);
	int rc = 1;

	if (argc < 3 || argc > 5 || str_to_i64(argv[2], bench_devices, 1000000000, &n) < 0 ||
	    (argc > 3 && str_to_i64(argv[3], 1, n, &devices) < 0) ||
	    (argc > 4 && str_to_i64(argv[4], 0, 1000000000, &audit) < 0)) {
		fprintf(stderr, "usage: bench_fill CONFIG KEYS [DEVICES [AUDIT]] (KEYS >= %ld)\n",
			bench_devices);
		return 2;
	}
	keys = (long)n;
	if (devices) {
		per_device = (int)((keys - bench_devices + devices - 1) / devices);
		if (per_device < 1)
			per_device = 1;
	}
	if (sodium_init() < 0 || config_defaults(&cfg) < 0 ||
	    config_load(&cfg, argv[1], msg, sizeof(msg)) < 0 ||
	    seal_load(cfg.key_file, &k, msg, sizeof(msg)) < 0 ||
	    store_open(cfg.database, true, &s, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "bench_fill: %s\n", msg);
		goto out;
	}
	if (password_hash(BENCH_PASSWORD, hash) < 0)
		goto out;
	u.hash = hash;
	u.now = time(NULL);
	if ((rc = store_write(s, users_tx, &u)) < 0) {
		fprintf(stderr, "bench_fill: bench users: %s\n", kw_strerror(rc));
		rc = 1;
		goto out;
	}
	if (!(ids = calloc((size_t)bench_devices, sizeof(*ids))))
		goto out;
	for (long i = 0; i < bench_devices; i += BATCH) {
		struct fill f = { k, i, bench_devices - i < BATCH ? bench_devices - i : BATCH,
				  1, 1, 0, ids, time(NULL) };

		if ((rc = store_write(s, fill_tx, &f)) < 0)
			goto fail;
	}
	/* The rest: devices with an active key and removed ones. */
	others = devices ? (long)devices : (keys - bench_devices + 1) / 2;
	for (long i = 0; i < others; i += BATCH) {
		struct fill f = { k, i, others - i < BATCH ? others - i : BATCH, per_device, 0,
				  devices > 0, NULL, time(NULL) };

		if ((rc = store_write(s, fill_tx, &f)) < 0)
			goto fail;
		if ((i / BATCH) % 250 == 249)
			fprintf(stderr, "bench_fill: %ld of %ld devices (%lds)\n", i + BATCH,
				others, (long)(time(NULL) - t0));
	}
	for (long j = 0; j < audit; j += AUDIT_BATCH) {
		struct audit_fill a = { j, audit - j < AUDIT_BATCH ? (long)(audit - j) : AUDIT_BATCH,
					(long)audit, others, time(NULL) };

		if ((rc = store_write(s, audit_tx, &a)) < 0)
			goto fail;
	}
	printf("{\"password\": \"%s\", \"seconds\": %ld, \"keys\": %ld, \"devices\": %ld, "
	       "\"audit\": %ld, \"users\": [", BENCH_PASSWORD, (long)(time(NULL) - t0),
	       bench_devices + per_device * others, bench_devices + others, (long)audit);
	for (int i = 0; i < BENCH_USERS; i++) {
		printf("%s{\"name\": \"CORP\\\\bench%02d\", \"keys\": [", i ? ", " : "", i);
		for (int j = 0; j < BENCH_KEYS_PER_USER; j++)
			printf("%s\"%s\"", j ? ", " : "", ids[i * BENCH_KEYS_PER_USER + j]);
		printf("]}");
	}
	printf("]}\n");
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench_fill: %s\n", kw_strerror(rc));
	rc = 1;
out:
	free(ids);
	store_close(s);
	seal_free(k);
	config_free(&cfg);
	return rc;
}
