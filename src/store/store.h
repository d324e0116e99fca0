/* The store: every persistent record of keywarden behind one interface,
 * with one implementation per database (sqlite/; pgsql/ later). SPEC §6.
 *
 * All access goes through a transaction handed to a callback:
 *   store_read()  runs fn on a consistent snapshot (no writes allowed);
 *   store_write() runs fn atomically and returns once the changes are
 *                 durable. Concurrent writes may be committed together in one
 *                 group: each fn still sees the effects of those before it,
 *                 and a fn that returns an error has none of its changes kept.
 * fn must not block on anything but the store: it may run on the store's own
 * writer thread. Results are passed back through arg.
 *
 * fn may run more than once. When it, or the commit, returns KW_ERR_RETRY
 * (a transient conflict: a serialization failure, a deadlock; fn may also
 * return it itself), the transaction is undone and fn runs again, up to
 * STORE_TRIES times in all; after the last the call returns
 * KW_ERR_UNAVAILABLE (KW_ERR_RETRY never reaches the caller). So fn must
 * be idempotent: all its effects go through tx, none outside (no file or
 * output written, no other transaction, no message sent), and it must
 * reset what it writes to arg at its start (counters, lists, flags), so
 * that what arg holds after the call is what the run that counted did.
 *
 * The operations' contract, for every operation unless its own says
 * otherwise (the tests in tests/unit/test_store_contract.c hold every
 * backend to it):
 *
 * Results. 0 on success, or a negative KW_ERR_* code:
 *   KW_ERR_NOT_FOUND   a lookup of one record found none; an update or a
 *                      delete of one record named by its key (ID, name,
 *                      hash, row) found none, and changed nothing; an
 *                      insert or upsert that names another record that must
 *                      exist (a device, a volume) found none, checked
 *                      explicitly, not left to the database's constraints.
 *                      Operations on sets (session_purge,
 *                      session_delete_user, limit_clear, limit_purge)
 *                      return 0 whatever they matched, and so does an
 *                      iteration over a device that does not exist (no
 *                      calls).
 *   KW_ERR_EXISTS      an insert whose key is taken (a duplicate).
 *   KW_ERR_INVALID     an argument the operation cannot use (a key ID that
 *                      is not canonical, a name too long).
 *   KW_ERR_RETRY       a transient conflict in the database: fn returns it
 *                      (it is run again, see above).
 *   KW_ERR_INTERNAL    called from an iteration's callback (see below).
 *   KW_ERR_STORE       the database failed; KW_ERR_NOMEM.
 * An operation that fails leaves the transaction as it was before it (a
 * backend whose database aborts a transaction on an error takes a
 * savepoint, or avoids the error, e.g. ON CONFLICT DO NOTHING): fn may go
 * on after KW_ERR_NOT_FOUND, KW_ERR_EXISTS or KW_ERR_INVALID; after any
 * other error it must return an error.
 *
 * Records. Records handed to callbacks (struct *_rec) and everything they
 * point to live until the callback returns; copy what you keep. Records
 * passed in are read during the call only: the store copies what it keeps.
 * Strings are UTF-8; times are UTC seconds. User names are compared
 * case-insensitively (as str_fold folds them); device IDs, key IDs and
 * GUIDs exactly (key IDs and GUIDs are the canonical upper-case text of
 * core/keyid.h).
 *
 * Batches (the *_many operations) do what their one-record operation does
 * for each record, in one operation: a network database answers them in
 * one round trip. They are all or nothing: on an error nothing of the
 * batch is kept. n may be 0 (nothing done, 0).
 *
 * Iterations (the *_each* operations, and the lookups that hand their one
 * record to a callback): a callback returning non-zero stops the iteration
 * and that value is returned (a positive value stops it without an error).
 * Each iteration says its order. A callback must not call the store: no
 * operation on its transaction or any other, no store_read or store_write
 * (the store_* functions refuse, with KW_ERR_INTERNAL).
 * Collect what is needed (rows, IDs) and act once the iteration has
 * returned: libpq cannot run a statement while another one's rows are
 * being read, and writing to what is being iterated is undefined in any
 * database. */
#ifndef KW_STORE_STORE_H
#define KW_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ID_LEN 36          /* device IDs and GUIDs, canonical text */
#define STORE_TRIES 4            /* runs of a transaction's fn at most */
#define STORE_LIMITER_MAX 64     /* bytes of a limiter's name */
#define STORE_LIMIT_KEY_MAX 256  /* bytes of a limited key */
#define STORE_HASH_LEN 32        /* SHA-256 of a secret */
#define STORE_ORIGIN_MAX 255     /* bytes of a key's origin (key_rec.origin) */

struct store;
struct store_tx;

typedef int (*store_fn)(struct store_tx *tx, void *arg);
typedef void (*store_done_fn)(int rc, void *arg);

/* The store's write health (store_state). */
enum store_state {
	STORE_OK = 0,              /* the last write that reached the disk worked */
	STORE_WRITES_FAILING = 1,  /* writes fail (a full disk, a failed write);
				    * they work again once the cause is gone */
	STORE_RESTART_NEEDED = 2,  /* a sync to disk failed: every write is
				    * refused until keywarden is restarted */
};

enum key_state {
	KEY_ACTIVE = 0,      /* on the volume at the last check-in */
	KEY_REMOVED = 1,     /* no longer reported on its volume */
	KEY_DISCLOSED = 2,   /* given out; the device is asked to rotate it */
	KEY_SUPERSEDED = 3,  /* disclosed, then rotated away by the device */
};
const char *key_state_name(enum key_state s);
#define KEY_STATE_BIT(s) (1u << (s))
#define KEY_STATES_ALL 0xfu

enum logon_type { LOGON_LOCAL = 0, LOGON_REMOTE = 1 };


struct device_rec {
	char id[STORE_ID_LEN + 1];
	const char *name;
	const char *domain;      /* "" when unknown */
	const char *os;
	int64_t created_at;
	int64_t last_checkin_at; /* 0 = never */
	bool revoked;
};

struct volume_rec {
	int64_t row;             /* store's own key */
	char device_id[STORE_ID_LEN + 1];
	char guid[STORE_ID_LEN + 1];
	const char *mount;
	const char *type;        /* os, fixed, removable */
	const char *protection;  /* on, off, suspended */
	const char *encryption;
	int percent;
	int64_t first_seen;
	int64_t last_seen;
};

struct key_rec {
	int64_t row;
	char key_id[STORE_ID_LEN + 1];     /* canonical */
	char device_id[STORE_ID_LEN + 1];
	int64_t volume_row;
	enum key_state state;
	const uint8_t *sealed;             /* nonce || ciphertext (core/seal.h) */
	size_t sealed_len;
	int64_t created_at;
	int64_t changed_at;                /* last state change */
	int64_t disclosed_at;              /* 0 = never */
	const char *origin;                /* "" when its device escrowed it;
					    * otherwise where it was imported
					    * from (store_key_import) */
};

/* A volume with the states its keys are in, as reports need it. */
struct volume_keys_rec {
	struct volume_rec volume;
	unsigned key_states;               /* KEY_STATE_BIT of every state one of
					    * its keys is in; 0 = no key */
};

/* A device with its volumes (store_device_each_volumes). */
struct device_volumes_rec {
	const struct device_rec *device;
	const struct volume_keys_rec *volumes;   /* by mount, then GUID */
	size_t nvolumes;
};

/* A key with its device and volume, as export and search need them. */
struct key_full_rec {
	struct key_rec key;
	const struct device_rec *device;
	const struct volume_rec *volume;
};

struct logon_rec {
	char device_id[STORE_ID_LEN + 1];
	const char *user;        /* as the device reported it */
	enum logon_type type;
	int64_t first_seen;
	int64_t last_seen;
};

struct token_rec {
	int64_t id;
	uint8_t hash[STORE_HASH_LEN];
	int64_t created_at;
	int64_t expires_at;      /* 0 = never */
	int64_t uses_left;       /* -1 = unlimited */
	int64_t used;
	bool revoked;
};

struct user_rec {
	int64_t id;
	const char *name;
	const char *password_hash;   /* argon2id string; "" for directory users */
	unsigned roles;              /* enum role bits (core/role.h) */
	bool disabled;
	int64_t created_at;
};

struct session_rec {
	uint8_t hash[STORE_HASH_LEN];
	const char *user;            /* signed-in name */
	unsigned roles;
	const char *identities;      /* names the user is known by, '\n'-separated */
	char csrf[64];
	bool notice_accepted;
	int64_t created_at;
	int64_t last_seen;
};

struct assoc_rec {
	const char *user;
	char device_id[STORE_ID_LEN + 1];
	const char *added_by;
	int64_t created_at;
};

struct audit_rec {
	int64_t seq;                 /* 1, 2, … assigned by the store */
	int64_t at;
	const char *source;          /* self_service, helpdesk, api, cli */
	const char *result;          /* disclosed, not_found, ambiguous, … */
	const char *actor;           /* who asked (help-desk user, end user) */
	const char *end_user;
	const char *computer;
	const char *device_id;
	const char *key_id;          /* full ID, or the prefix as entered */
	const char *key_type;        /* recovery_password */
	const char *reason;
	const char *comment;
	const char *client;          /* client address */
	uint8_t prev_hash[32];
	uint8_t hash[32];
};

/* A key's new state, for store_key_set_state_many. */
struct key_change {
	int64_t row;
	enum key_state state;
};

struct audit_filter {
	int64_t from, to;            /* 0 = open */
	const char *result, *source, *user, *computer;  /* NULL = any */
	int64_t after_seq;           /* paging: records with seq > this */
	int64_t limit;               /* 0 = all */
};

typedef int (*store_each_device)(const struct device_rec *, void *arg);
typedef int (*store_each_device_volumes)(const struct device_volumes_rec *, void *arg);
typedef int (*store_each_volume)(const struct volume_rec *, void *arg);
typedef int (*store_each_key)(const struct key_rec *, void *arg);
typedef int (*store_each_key_full)(const struct key_full_rec *, void *arg);
typedef int (*store_each_logon)(const struct logon_rec *, void *arg);
typedef int (*store_each_token)(const struct token_rec *, void *arg);
typedef int (*store_each_user)(const struct user_rec *, void *arg);
typedef int (*store_each_session)(const struct session_rec *, void *arg);
typedef int (*store_each_assoc)(const struct assoc_rec *, void *arg);
typedef int (*store_each_audit)(const struct audit_rec *, void *arg);

/* The hash of an audit record (core/audit.c audit_hash), for the store to
 * call when it chains a record. */
typedef void (*store_audit_hash_fn)(const struct audit_rec *rec, uint8_t out[32]);

/* ---- opening, transactions, health ---- */

struct store_ops;

/* The backend for a `database =` value ("sqlite:PATH", "postgresql://…"),
 * or NULL with a reason in msg. */
const struct store_ops *store_backend(const char *database, const char **location,
				      char *msg, size_t msglen);

/* Opens the store named by a `database =` value, applying migrations when
 * migrate is true; a database newer than the program is KW_ERR_SCHEMA.
 * On failure msg says why. */
int store_open(const char *database, bool migrate, struct store **out,
	       char *msg, size_t msglen);
void store_close(struct store *s);

int store_read(struct store *s, store_fn fn, void *arg);
int store_write(struct store *s, store_fn fn, void *arg);

/* Is the store shared by several instances (store_ops.shared)? */
bool store_shared(struct store *s);

/* Writes a consistent copy of the database to file while the store is in
 * use (by this process or a server): a database keywarden opens as it is,
 * with the same schema version. The copy is made beside file under another
 * name, synced, and only then given file's name; file must not exist (it
 * is never overwritten: KW_ERR_EXISTS). On any failure, and when SIGINT or
 * SIGTERM is pending for the calling thread between steps (a caller that
 * wants to stop cleanly blocks them in every thread, i.e. before
 * store_open, and checks sigpending afterwards), nothing is left behind:
 * KW_ERR_IO with msg saying why (or KW_ERR_UNAVAILABLE when interrupted).
 * The key file is not part of it. A store without this operation (a
 * network database, whose own tools back it up) returns KW_ERR_INVALID
 * with msg saying which tool to use. */
int store_backup(struct store *s, const char *file, char *msg, size_t msglen);

/* Brings the database's statistics up to date after a bulk write (an
 * import, a copy): PostgreSQL plans statements by them, and until its
 * autovacuum comes round it takes freshly filled tables for empty (after a
 * killed import was undone, whole-table scans per row: an export ran into
 * statement_timeout). Stores that need none do nothing. A failure is
 * logged, not returned: the data is written either way. */
void store_analyze(struct store *s);

/* store_read for a fn with effects outside the store (rows printed,
 * written to a file or sent as they are read): fn runs once, never again;
 * a transient conflict returns KW_ERR_UNAVAILABLE (try the whole again). */
int store_read_once(struct store *s, store_fn fn, void *arg);

/* store_read for a fn that runs one single statement (a lookup by key):
 * that is consistent by itself, so no transaction is opened around it. */
int store_lookup(struct store *s, store_fn fn, void *arg);

/* Like store_write (fn rerun on KW_ERR_RETRY too), but returns at once:
 * done(rc, done_arg) is called once the write is durable (rc 0) or has
 * failed, on a thread of the store's. It must be quick and must not call
 * the store. When store_write_async itself returns an error, done is never
 * called. fn and arg must live until then. */
int store_write_async(struct store *s, store_fn fn, void *arg, store_done_fn done,
		      void *done_arg);

/* Write jobs of one kind run together (a network database then answers a
 * statement for all of them, not one a job): batch(tx, args, rcs, n) does
 * in one go what fn(tx, args[i]) would do for each job in turn, and sets
 * rcs[i], each job's result: fn's result, or STORE_BATCH_ALONE for a job
 * it leaves out (it wrote nothing of it), which is then run alone with fn,
 * after the batch. A job left out must not depend on one run after it. A
 * negative return undoes the whole batch, and each job is run alone with
 * fn instead (a conflict, a statement of the batch that failed). */
typedef int (*store_batch_fn)(struct store_tx *tx, void *const *args, int *rcs, size_t n);
#define STORE_BATCH_ALONE 1
/* store_write_async for a job that may be batched with consecutive jobs
 * of the same batch function; stores that do not batch run fn. */
int store_write_async_batch(struct store *s, store_fn fn, store_batch_fn batch, void *arg,
			    store_done_fn done, void *done_arg);
/* For /metrics, process-wide: write jobs that ran in a batch. */
void store_count_batched(size_t n);
uint64_t store_batched(void);

/* The store's write health now; reason (may be NULL) gets a short English
 * sentence for operators and the /healthz body, e.g. "writes are failing:
 * the disk is full" or "a disk sync failed: restart keywarden". Costs no
 * I/O: a store whose writes failed says STORE_WRITES_FAILING until a write
 * that reaches the disk works again (a caller that wants to know sooner
 * makes one). Writes refused while STORE_RESTART_NEEDED return
 * KW_ERR_UNAVAILABLE; other store failures KW_ERR_STORE. */
enum store_state store_state(struct store *s, char *reason, size_t reasonlen);

/* Counts a database failure for /metrics; store_errors() reads the count.
 * The operations below count their own; backends count the failures
 * outside them (a commit, a sync). */
void store_count_error(void);
uint64_t store_errors(void);

/* For /metrics, process-wide like store_errors: the state of the store
 * whose state last changed (backends call store_note_state on every
 * change; keywarden opens one store). */
void store_note_state(enum store_state state);
enum store_state store_last_state(void);

/* For /metrics, process-wide: how many audit records the audit report's
 * search file lacks (SQLite's DATABASE-find; all of them while it cannot
 * be made). 0 for a backend without one. */
void store_note_search_lag(int64_t records);
int64_t store_search_lag(void);

/* ---- the operations, inside a transaction ----
 *
 * Each follows the general contract at the top of this file; what is
 * particular to it is written on it. Called from an iteration's callback,
 * every one of them returns KW_ERR_INTERNAL and does nothing (and so do
 * store_read, store_write and store_lookup). */

/* meta: small named values (master key fingerprint, …) */

/* Copies the value of name into out (cut to outlen - 1 bytes);
 * KW_ERR_NOT_FOUND when unset. On any error out is "". In a write, the
 * value read stays so until the transaction ends: a store_meta_set of that
 * name in another write waits for it (a database shared by instances:
 * core/keyfile.h keyfile_check_tx). */
int store_meta_get(struct store_tx *tx, const char *name, char *out, size_t outlen);
/* Sets name to value, whether set before or not. */
int store_meta_set(struct store_tx *tx, const char *name, const char *value);

/* enrollment tokens */

/* Inserts a token (hash, created_at, expires_at, uses_left; used 0, not
 * revoked); *id (may be NULL) gets its ID (IDs increase).
 * KW_ERR_EXISTS when the hash is taken. */
int store_token_insert(struct store_tx *tx, const struct token_rec *t, int64_t *id);
/* Copies the token with this hash into *out (zeroed on any error). */
int store_token_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		    struct token_rec *out);
/* Counts one use: used + 1, and uses_left - 1 when above 0 (0 and -1
 * stay). Whether the token may be used is the caller's to check. */
int store_token_use(struct store_tx *tx, int64_t id);
/* Marks the token revoked (a revoked one stays so: 0). */
int store_token_revoke(struct store_tx *tx, int64_t id);
/* Every token, by ID. */
int store_token_each(struct store_tx *tx, store_each_token cb, void *arg);

/* devices */

/* Inserts a device (id, name, domain and os, NULL for "", created_at;
 * never checked in, not revoked) with the hash of its secret.
 * KW_ERR_EXISTS when the ID or the secret hash is taken. */
int store_device_insert(struct store_tx *tx, const struct device_rec *d,
			const uint8_t secret_hash[STORE_HASH_LEN]);
int store_device_get(struct store_tx *tx, const char *id, store_each_device cb, void *arg);
/* The device with this secret hash, revoked or not. */
int store_device_by_secret(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
			   store_each_device cb, void *arg);
/* 0 if device id exists, is not revoked and has this secret hash;
 * KW_ERR_AUTH otherwise (an unknown device too), compared in constant
 * time. */
int store_device_check_secret(struct store_tx *tx, const char *id,
			      const uint8_t hash[STORE_HASH_LEN]);
/* Records a check-in: os (NULL for "") and last_checkin_at = at. */
int store_device_checked_in(struct store_tx *tx, const char *id, const char *os, int64_t at);
/* A check-in of one device, for store_device_checkin_many. */
struct device_checkin {
	const char *id;
	const uint8_t *secret_hash;   /* checked unless NULL */
	const char *os;               /* NULL for "" */
	int64_t at;
};
/* For each of n distinct devices: store_device_check_secret (unless its
 * secret_hash is NULL), then store_device_checked_in, in one operation;
 * rcs[i] gets each device's result (0, KW_ERR_AUTH, KW_ERR_NOT_FOUND), and
 * a device that fails is not recorded. Returns 0, or a failure of the
 * store (nothing of the batch kept). */
int store_device_checkin_many(struct store_tx *tx, const struct device_checkin *c, size_t n,
			      int *rcs);
int store_device_set_revoked(struct store_tx *tx, const char *id, bool revoked);
/* Devices whose name starts with prefix (case-insensitive; "" and NULL
 * = all), ordered by name (case-insensitive), then by when they were
 * added; at most limit (0 = all). */
int store_device_each(struct store_tx *tx, const char *prefix, int64_t limit,
		      store_each_device cb, void *arg);
/* Devices with their volumes and the states of each volume's keys, revoked
 * ones too, in store_device_each's order (by name, case-insensitive, then
 * by when they were added), starting after the device after_id (NULL or ""
 * = from the first; an ID that names no device: no calls), at most limit
 * (> 0, else KW_ERR_INVALID): every device a page at a time, for reports.
 * The work of a page does not grow with the devices before it. */
int store_device_each_volumes(struct store_tx *tx, const char *after_id, int64_t limit,
			      store_each_device_volumes cb, void *arg);

/* volumes */

/* Inserts the volume (device_id, guid) or updates its mount, type,
 * protection, encryption, percent and last_seen (first_seen stays);
 * *row gets its row (0 on any error). KW_ERR_NOT_FOUND when the device
 * does not exist. */
int store_volume_upsert(struct store_tx *tx, const struct volume_rec *v, int64_t *row);
/* store_volume_upsert of n volumes (of any devices); rows[i] gets v[i]'s
 * row (all 0 on any error). */
int store_volume_upsert_many(struct store_tx *tx, const struct volume_rec *v, size_t n,
			     int64_t *rows);
/* A device's volumes, by mount, then GUID. */
int store_volume_each(struct store_tx *tx, const char *device_id, store_each_volume cb,
		      void *arg);

/* keys */

/* The key with this canonical ID, on any device; KW_ERR_INVALID when
 * key_id is not canonical (STORE_ID_LEN). */
int store_key_get(struct store_tx *tx, const char *key_id, store_each_key cb, void *arg);
/* The keys with these canonical IDs that exist, on any device, by key ID,
 * each once (IDs not found are left out). KW_ERR_INVALID when an ID is
 * not canonical. */
int store_key_get_many(struct store_tx *tx, const char *const *key_ids, size_t n,
		       store_each_key cb, void *arg);
/* Inserts a key (key_id, device_id, volume_row, state, sealed,
 * created_at; changed_at = created_at, never disclosed, origin "": its
 * device escrowed it; k->origin is not read).
 * KW_ERR_NOT_FOUND when the device does not exist or volume_row is not
 * one of its volumes; KW_ERR_EXISTS when the key ID is taken (on any
 * device). */
int store_key_insert(struct store_tx *tx, const struct key_rec *k);
/* store_key_insert of n keys (of any devices and volumes). */
int store_key_insert_many(struct store_tx *tx, const struct key_rec *k, size_t n);
/* Inserts a key brought from elsewhere (core/import.h): as
 * store_key_insert, but state, created_at, changed_at (0 = created_at)
 * and disclosed_at (0 = never) are stored as k gives them, with
 * k->origin, 1 to STORE_ORIGIN_MAX bytes saying where it came from
 * (KW_ERR_INVALID otherwise, and for a state that is not one). */
int store_key_import(struct store_tx *tx, const struct key_rec *k);
/* Sets a key's state and changed_at = at; disclosed_at = at too when
 * the state is KEY_DISCLOSED. */
int store_key_set_state(struct store_tx *tx, int64_t row, enum key_state state, int64_t at);
/* store_key_set_state of n keys, all at time at. */
int store_key_set_state_many(struct store_tx *tx, const struct key_change *c, size_t n,
			     int64_t at);
/* Replaces a key's sealed password (rekey); nothing else changes. */
int store_key_set_sealed(struct store_tx *tx, int64_t row, const uint8_t *sealed, size_t len);
/* A volume's or a device's keys in the given states (bit 1 << state;
 * KEY_STATES_ALL for every key), oldest first (by row). */
int store_key_each_volume(struct store_tx *tx, int64_t volume_row, unsigned states,
			  store_each_key cb, void *arg);
/* store_key_each_device for n distinct devices in one operation: device
 * by device in the order given, each one's keys in those states by row
 * (each key_rec names its device). */
int store_key_each_devices(struct store_tx *tx, const char *const *ids, size_t n,
			   unsigned states, store_each_key cb, void *arg);
int store_key_each_device(struct store_tx *tx, const char *device_id, unsigned states,
			  store_each_key cb, void *arg);
/* Keys whose row is above after_row, by row, at most limit (> 0, else
 * KW_ERR_INVALID): all keys a page at a time, each page collected before
 * it is acted on. */
int store_key_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			store_each_key cb, void *arg);
/* Keys in state with their device and volume, by changed_at (for a
 * disclosed key: when it was disclosed), then row, starting after the key
 * (after_changed, after_row) in that order ((0, 0) = from the first), at
 * most limit (> 0, else KW_ERR_INVALID): a report a page at a time.
 * Backends index the disclosed keys, which are few, so that a page of them
 * does not grow with the keys before it or the keys in other states; a page
 * of another state may cost a walk of every key. */
int store_key_each_state(struct store_tx *tx, enum key_state state, int64_t after_changed,
			 int64_t after_row, int64_t limit, store_each_key_full cb, void *arg);
/* Every key with its device and volume, by device name
 * (case-insensitive), then device, volume and key in the order they
 * were added. */
int store_key_each_full(struct store_tx *tx, store_each_key_full cb, void *arg);
/* Keys whose 32 hex digits start with prefix_hex (upper-case), on
 * devices where one of the users has a local logon or an association,
 * in the given states (bit 1 << state), by key ID. The work done must
 * not depend on keys of other devices (SPEC §3: no timing difference
 * between a key that exists elsewhere and one that exists nowhere). */
int store_key_each_entitled(struct store_tx *tx, const char *prefix_hex,
			    const char *const *users, size_t nusers, unsigned states,
			    store_each_key_full cb, void *arg);
/* Keys whose digits start with prefix_hex in the given states, any
 * device (help-desk administrators), by key ID. */
int store_key_each_prefix(struct store_tx *tx, const char *prefix_hex, unsigned states,
			  store_each_key_full cb, void *arg);
/* The number of keys (>= 0), or an error. */
int64_t store_key_count(struct store_tx *tx);

/* logons and associations */

/* Records that user (compared case-insensitively; the name first
 * reported is kept) logged on to the device with this type: inserted,
 * or first_seen lowered and last_seen raised to cover the new times.
 * KW_ERR_NOT_FOUND when the device does not exist. */
int store_logon_upsert(struct store_tx *tx, const struct logon_rec *l);
/* store_logon_upsert of n logons (of any devices), in order. */
int store_logon_upsert_many(struct store_tx *tx, const struct logon_rec *l, size_t n);
/* A device's logons, by user name (case-insensitive), then type. */
int store_logon_each_device(struct store_tx *tx, const char *device_id,
			    store_each_logon cb, void *arg);
/* Associates user with the device. KW_ERR_NOT_FOUND when the device
 * does not exist; KW_ERR_EXISTS when the user (case-insensitive) is
 * already associated with it. */
int store_assoc_add(struct store_tx *tx, const struct assoc_rec *a);
/* A device's associations, by user name (case-insensitive). */
int store_assoc_each_device(struct store_tx *tx, const char *device_id,
			    store_each_assoc cb, void *arg);

/* users */

/* Inserts a local user (id is assigned). KW_ERR_EXISTS when the name
 * (case-insensitive) is taken. */
int store_user_insert(struct store_tx *tx, const struct user_rec *u);
/* The user with this name (case-insensitive). */
int store_user_get(struct store_tx *tx, const char *name, store_each_user cb, void *arg);
/* Replaces the password hash, roles and disabled flag of the user named
 * u->name (case-insensitive); the name, id and created_at stay. */
int store_user_update(struct store_tx *tx, const struct user_rec *u);
/* Every user, by name (case-insensitive). */
int store_user_each(struct store_tx *tx, store_each_user cb, void *arg);

/* sessions */

/* Inserts a session (identities NULL for ""; last_seen = created_at).
 * KW_ERR_EXISTS when the hash is taken. */
int store_session_insert(struct store_tx *tx, const struct session_rec *r);
int store_session_get(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN],
		      store_each_session cb, void *arg);
/* Raises last_seen to at (never lowers it); notice_accepted is set to
 * 0 or 1, or left as it is for -1. */
int store_session_touch(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN], int64_t at,
			int notice_accepted);
int store_session_delete(struct store_tx *tx, const uint8_t hash[STORE_HASH_LEN]);
/* Deletes the sessions last seen before idle_before or created before
 * created_before (a set: 0 whatever it matched). */
int store_session_purge(struct store_tx *tx, int64_t idle_before, int64_t created_before);
/* Ends every session of a user (name compared case-insensitively; a
 * set: 0 whatever it matched). */
int store_session_delete_user(struct store_tx *tx, const char *user);

/* audit */

/* Appends rec to the audit chain (NULL strings are stored as ""): sets
 * rec->seq to the newest record's seq + 1 and rec->prev_hash to its hash
 * (zeros before the first), or to the chain head's when that is newer (the
 * newest records were deleted: the gap keeps that visible to
 * audit_verify), calls hash(rec, rec->hash), inserts the record and
 * records the new head (store_audit_head). KW_ERR_TOO_LARGE when seq would
 * overflow. Appends are serialised by the backend, across every instance
 * sharing the database: no two records get one seq, and each follows the
 * one before. (SQLite: its single writer. PostgreSQL: a lock taken before
 * the head is read, e.g. pg_advisory_xact_lock on a fixed key, or the head
 * row locked FOR UPDATE; a serialization failure is KW_ERR_RETRY.) */
int store_audit_append(struct store_tx *tx, struct audit_rec *rec, store_audit_hash_fn hash);
/* The chain head: the seq and hash of the newest record appended.
 * KW_ERR_NOT_FOUND before the first append; KW_ERR_INVALID when what is
 * stored is not a head (it was tampered with). */
int store_audit_head(struct store_tx *tx, int64_t *seq, uint8_t hash[32]);
/* The records matching f (NULL = all), by seq: at in [from, to) (0 =
 * open), result and source equal, user the actor or the end user and
 * computer equal (case-insensitive), seq > after_seq, at most limit
 * (0 = all). */
int store_audit_each(struct store_tx *tx, const struct audit_filter *f, store_each_audit cb,
		     void *arg);

/* A page of the audit report: the records matching f (from, to, result,
 * source, user and computer as for store_audit_each; f->after_seq and
 * f->limit are not used), newest first: by at, then seq, both descending.
 * cursor 0 starts at the newest record. Otherwise the page starts next to
 * the record whose seq is cursor (in that order, whether it matches f or
 * not): with newer false the records after it (older), newest first; with
 * newer true the records before it (newer), oldest first (the caller turns
 * them round). At most limit (> 0, else KW_ERR_INVALID). A cursor that
 * names no record: no calls. Backends index the records so that a page
 * costs about the same at a million records as at a thousand, whichever
 * single filter is given (and the time range with it). */
int store_audit_page(struct store_tx *tx, const struct audit_filter *f, int64_t cursor,
		     bool newer, int64_t limit, store_each_audit cb, void *arg);

/* rate limits shared by every instance (core/limits.h's semantics)
 *
 * A limiter (named, at most STORE_LIMITER_MAX bytes) allows count events
 * per window seconds for each key (at most STORE_LIMIT_KEY_MAX bytes,
 * compared exactly: the caller folds them as it compares them). An event
 * at t counts at now while t <= now and now - t < window. Longer names or
 * keys, a count or a window below 1: KW_ERR_INVALID. Run these in
 * store_write. */

/* One atomic step: when key has count events that count at now, returns
 * 0 and records nothing, *retry_after (may be NULL) getting the seconds
 * until one more is allowed (at least 1); otherwise records an event at
 * now and returns 1 (*retry_after 0). Of concurrent takes of one key, in
 * any instance, no more than count succeed. Events that no longer count
 * may be dropped. (SQLite: its single writer serialises takes.
 * PostgreSQL: lock the key first, e.g. pg_advisory_xact_lock on a hash of
 * limiter and key, or run serializable, a conflict being KW_ERR_RETRY.) */
int store_limit_take(struct store_tx *tx, const char *limiter, const char *key, int64_t now,
		     int64_t count, int64_t window, int64_t *retry_after);
/* Removes one event recorded for key at time at (by store_limit_take):
 * the attempt did not count. KW_ERR_NOT_FOUND when there is none (the key
 * was cleared or purged meanwhile). */
int store_limit_give_back(struct store_tx *tx, const char *limiter, const char *key,
			  int64_t at);
/* Forgets every event of key (e.g. after a successful sign-in); a set: 0
 * whatever it matched. */
int store_limit_clear(struct store_tx *tx, const char *limiter, const char *key);
/* Removes the limiter's events that no longer count at now (recorded at
 * or before now - window), for every key; a set: 0 whatever it matched. */
int store_limit_purge(struct store_tx *tx, const char *limiter, int64_t now, int64_t window);

/* copying a whole store (store/copy.h: keywarden migrate-store)
 *
 * What a copy needs that the operations above do not give: every record
 * as it is stored, a page at a time, and inserts that keep what the
 * others assign (rows, IDs, seqs, hashes, counters, states, times), so
 * that the copy is the same site: a device's secret still checks, a key's
 * row and volume row are the same numbers, the audit chain verifies. Rows
 * given are kept; rows assigned later by the other operations are above
 * every row copied. */

/* The number of records of every kind in the store. */
struct store_counts {
	int64_t meta, users, tokens, devices, volumes, keys, logons, assocs, audit;
	int64_t sessions, limit_events;
};
int store_count_all(struct store_tx *tx, struct store_counts *out);

typedef int (*store_each_meta)(const char *name, const char *value, void *arg);
/* Every meta value, by name (byte order). */
int store_meta_each(struct store_tx *tx, store_each_meta cb, void *arg);

/* A device as a copy needs it: with its row and its secret's hash. */
struct device_copy_rec {
	int64_t row;                         /* the store's own key: devices
					      * are numbered as they are added */
	struct device_rec device;
	uint8_t secret_hash[STORE_HASH_LEN];
};
typedef int (*store_each_device_copy)(const struct device_copy_rec *, void *arg);
/* Devices whose row is above after_row, by row, at most limit (> 0, else
 * KW_ERR_INVALID), revoked ones too. */
int store_device_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			   store_each_device_copy cb, void *arg);
/* Inserts n devices as given: row (>= 1, else KW_ERR_INVALID), every field
 * of device (domain and os NULL for "") and the secret hash. KW_ERR_EXISTS
 * when a row, an ID or a secret hash is taken. */
int store_device_copy_many(struct store_tx *tx, const struct device_copy_rec *d, size_t n);

/* Volumes whose row is above after_row, by row, at most limit (> 0, else
 * KW_ERR_INVALID), with their device's ID. */
int store_volume_each_page(struct store_tx *tx, int64_t after_row, int64_t limit,
			   store_each_volume cb, void *arg);
/* Inserts n volumes as given, row (>= 1, else KW_ERR_INVALID), first_seen
 * and last_seen included. KW_ERR_NOT_FOUND when a device does not exist;
 * KW_ERR_EXISTS when a row or a (device, GUID) is taken. */
int store_volume_copy_many(struct store_tx *tx, const struct volume_rec *v, size_t n);

/* Inserts n keys as given: row (>= 1), key_id, device_id, volume_row,
 * state, sealed, created_at, changed_at, disclosed_at and origin (NULL for
 * ""). KW_ERR_NOT_FOUND when a device does not exist or volume_row is not
 * one of its volumes; KW_ERR_EXISTS when a row or a key ID is taken;
 * KW_ERR_INVALID for a key ID that is not canonical, a state that is not
 * one, a row below 1. */
int store_key_copy_many(struct store_tx *tx, const struct key_rec *k, size_t n);

/* Inserts a token as given: id (>= 1, else KW_ERR_INVALID), hash, times,
 * uses_left, used, revoked. KW_ERR_EXISTS when the id or the hash is
 * taken. */
int store_token_copy(struct store_tx *tx, const struct token_rec *t);

/* Inserts a user as given: id (>= 1, else KW_ERR_INVALID), name, password
 * hash, roles, disabled, created_at. KW_ERR_EXISTS when the id or the name
 * (case-insensitive) is taken. */
int store_user_copy(struct store_tx *tx, const struct user_rec *u);

/* Inserts n audit records as they are (NULL strings as ""): seq (>= 1,
 * else KW_ERR_INVALID), prev_hash and hash kept, nothing chained or
 * hashed, and the chain head (meta audit_head) left as it is: the copy
 * sets it with store_meta_set like the other meta values. KW_ERR_EXISTS
 * when a seq is taken. */
int store_audit_copy_many(struct store_tx *tx, const struct audit_rec *r, size_t n);

/* ---- for backends ---- */

/* A backend's operations. Callers go through the functions above, which
 * hold each operation's contract, count failures and fill in defaults
 * (NULL strings and filters): backends implement exactly that contract
 * and may take the defaults as given. */
struct store_ops {
	const char *name;
	/* Several instances of keywarden may use one such store at once (a
	 * network database): what they share (rate limits) is kept in it. */
	bool shared;
	int (*open)(const char *location, struct store **out, char *msg, size_t msglen);
	void (*close)(struct store *s);
	int (*migrate)(struct store *s, int *from, int *to, char *msg, size_t msglen);
	int (*read)(struct store *s, store_fn fn, void *arg);
	int (*lookup)(struct store *s, store_fn fn, void *arg);
	int (*write)(struct store *s, store_fn fn, void *arg);
	int (*write_async)(struct store *s, store_fn fn, void *arg, store_done_fn done,
			   void *done_arg);
	/* NULL where jobs are not batched (write_async runs them). */
	int (*write_async_batch)(struct store *s, store_fn fn, store_batch_fn batch, void *arg,
				 store_done_fn done, void *done_arg);
	enum store_state (*state)(struct store *s, char *reason, size_t reasonlen);
	/* store_analyze; NULL where there is nothing to do. */
	void (*analyze)(struct store *s);
	/* store_backup; NULL where the database's own tools do it. */
	int (*backup)(struct store *s, const char *file, char *msg, size_t msglen);

	int (*meta_get)(struct store_tx *, const char *name, char *out, size_t outlen);
	int (*meta_set)(struct store_tx *, const char *name, const char *value);

	int (*token_insert)(struct store_tx *, const struct token_rec *, int64_t *id);
	int (*token_get)(struct store_tx *, const uint8_t hash[STORE_HASH_LEN],
			 struct token_rec *);
	int (*token_use)(struct store_tx *, int64_t id);
	int (*token_revoke)(struct store_tx *, int64_t id);
	int (*token_each)(struct store_tx *, store_each_token, void *);

	int (*device_insert)(struct store_tx *, const struct device_rec *,
			     const uint8_t secret_hash[STORE_HASH_LEN]);
	int (*device_get)(struct store_tx *, const char *id, store_each_device, void *);
	int (*device_by_secret)(struct store_tx *, const uint8_t hash[STORE_HASH_LEN],
				store_each_device, void *);
	int (*device_check_secret)(struct store_tx *, const char *id,
				   const uint8_t hash[STORE_HASH_LEN]);
	int (*device_checked_in)(struct store_tx *, const char *id, const char *os, int64_t at);
	int (*device_checkin_many)(struct store_tx *, const struct device_checkin *, size_t n,
				   int *rcs);
	int (*device_set_revoked)(struct store_tx *, const char *id, bool revoked);
	int (*device_each)(struct store_tx *, const char *prefix, int64_t limit,
			   store_each_device, void *);
	int (*device_each_volumes)(struct store_tx *, const char *after_id, int64_t limit,
				   store_each_device_volumes, void *);

	int (*volume_upsert)(struct store_tx *, const struct volume_rec *, int64_t *row);
	int (*volume_upsert_many)(struct store_tx *, const struct volume_rec *, size_t n,
				  int64_t *rows);
	int (*volume_each)(struct store_tx *, const char *device_id, store_each_volume, void *);

	int (*key_get)(struct store_tx *, const char *key_id, store_each_key, void *);
	int (*key_get_many)(struct store_tx *, const char *const *key_ids, size_t n,
			    store_each_key, void *);
	int (*key_insert)(struct store_tx *, const struct key_rec *);
	int (*key_insert_many)(struct store_tx *, const struct key_rec *, size_t n);
	int (*key_import)(struct store_tx *, const struct key_rec *);
	int (*key_set_state)(struct store_tx *, int64_t row, enum key_state, int64_t at);
	int (*key_set_state_many)(struct store_tx *, const struct key_change *, size_t n,
				  int64_t at);
	int (*key_set_sealed)(struct store_tx *, int64_t row, const uint8_t *sealed, size_t len);
	int (*key_each_volume)(struct store_tx *, int64_t volume_row, unsigned states,
			       store_each_key, void *);
	int (*key_each_devices)(struct store_tx *, const char *const *ids, size_t n,
				unsigned states, store_each_key cb, void *arg);
	int (*key_each_device)(struct store_tx *, const char *device_id, unsigned states,
			       store_each_key, void *);
	int (*key_each_page)(struct store_tx *, int64_t after_row, int64_t limit,
			     store_each_key, void *);
	int (*key_each_full)(struct store_tx *, store_each_key_full, void *);
	int (*key_each_state)(struct store_tx *, enum key_state, int64_t after_changed,
			      int64_t after_row, int64_t limit, store_each_key_full, void *);
	int (*key_each_entitled)(struct store_tx *, const char *prefix_hex,
				 const char *const *users, size_t nusers, unsigned states,
				 store_each_key_full, void *);
	int (*key_each_prefix)(struct store_tx *, const char *prefix_hex, unsigned states,
			       store_each_key_full, void *);
	int64_t (*key_count)(struct store_tx *);

	int (*logon_upsert)(struct store_tx *, const struct logon_rec *);
	int (*logon_upsert_many)(struct store_tx *, const struct logon_rec *, size_t n);
	int (*logon_each_device)(struct store_tx *, const char *device_id, store_each_logon,
				 void *);
	int (*assoc_add)(struct store_tx *, const struct assoc_rec *);
	int (*assoc_each_device)(struct store_tx *, const char *device_id, store_each_assoc,
				 void *);

	int (*user_insert)(struct store_tx *, const struct user_rec *);
	int (*user_get)(struct store_tx *, const char *name, store_each_user, void *);
	int (*user_update)(struct store_tx *, const struct user_rec *);
	int (*user_each)(struct store_tx *, store_each_user, void *);

	int (*session_insert)(struct store_tx *, const struct session_rec *);
	int (*session_get)(struct store_tx *, const uint8_t hash[STORE_HASH_LEN],
			   store_each_session, void *);
	int (*session_touch)(struct store_tx *, const uint8_t hash[STORE_HASH_LEN],
			     int64_t at, int notice_accepted);
	int (*session_delete)(struct store_tx *, const uint8_t hash[STORE_HASH_LEN]);
	int (*session_purge)(struct store_tx *, int64_t idle_before, int64_t created_before);
	int (*session_delete_user)(struct store_tx *, const char *user);

	int (*audit_append)(struct store_tx *, struct audit_rec *, store_audit_hash_fn);
	int (*audit_each)(struct store_tx *, const struct audit_filter *, store_each_audit,
			  void *);
	int (*audit_page)(struct store_tx *, const struct audit_filter *, int64_t cursor,
			  bool newer, int64_t limit, store_each_audit, void *);

	int (*limit_take)(struct store_tx *, const char *limiter, const char *key, int64_t now,
			  int64_t count, int64_t window, int64_t *retry_after);
	int (*limit_give_back)(struct store_tx *, const char *limiter, const char *key,
			       int64_t at);
	int (*limit_clear)(struct store_tx *, const char *limiter, const char *key);
	int (*limit_purge)(struct store_tx *, const char *limiter, int64_t now, int64_t window);

	/* copying a whole store (store/sqlite/copy.c, store/pgsql/copy.c) */
	int (*count_all)(struct store_tx *, struct store_counts *);
	int (*meta_each)(struct store_tx *, store_each_meta, void *);
	int (*device_each_page)(struct store_tx *, int64_t after_row, int64_t limit,
				store_each_device_copy, void *);
	int (*device_copy_many)(struct store_tx *, const struct device_copy_rec *, size_t n);
	int (*volume_each_page)(struct store_tx *, int64_t after_row, int64_t limit,
				store_each_volume, void *);
	int (*volume_copy_many)(struct store_tx *, const struct volume_rec *, size_t n);
	int (*key_copy_many)(struct store_tx *, const struct key_rec *, size_t n);
	int (*token_copy)(struct store_tx *, const struct token_rec *);
	int (*user_copy)(struct store_tx *, const struct user_rec *);
	int (*audit_copy_many)(struct store_tx *, const struct audit_rec *, size_t n);
};

/* The operations of the store a transaction belongs to. */
const struct store_ops *store_tx_ops(struct store_tx *tx);
const struct store_ops *store_ops_of(struct store *s);

/* Every backend's struct store and struct store_tx begin with these. */
struct store_base {
	const struct store_ops *ops;
};
struct store_tx_base {
	const struct store_ops *ops;
};

#endif
