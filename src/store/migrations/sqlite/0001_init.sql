-- keywarden schema, version 1. Times are UTC seconds since the epoch.
-- Recovery passwords are stored only sealed (core/seal.h); user names are
-- compared through their lower-cased copy (name_lc, user_lc).

CREATE TABLE meta (
	name TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

CREATE TABLE enrollment_tokens (
	id INTEGER PRIMARY KEY,
	token_hash BLOB NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,          -- 0 = never
	uses_left INTEGER NOT NULL,           -- -1 = unlimited
	used INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Rows refer to each other by integer keys; devices are known outside by
-- their uid.
CREATE TABLE devices (
	id INTEGER PRIMARY KEY,
	uid TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	name_lc TEXT NOT NULL,
	domain TEXT NOT NULL,
	os TEXT NOT NULL,
	secret_hash BLOB NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	last_checkin_at INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX devices_name ON devices (name_lc);

CREATE TABLE volumes (
	id INTEGER PRIMARY KEY,
	device INTEGER NOT NULL REFERENCES devices (id),
	guid TEXT NOT NULL,
	mount TEXT NOT NULL,
	type TEXT NOT NULL,
	protection TEXT NOT NULL,
	encryption TEXT NOT NULL,
	percent INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	UNIQUE (device, guid)
) STRICT;

CREATE TABLE recovery_keys (
	id INTEGER PRIMARY KEY,
	key_hex TEXT NOT NULL UNIQUE,         -- the 32 upper-case digits
	device INTEGER NOT NULL REFERENCES devices (id),
	volume INTEGER NOT NULL REFERENCES volumes (id),
	state INTEGER NOT NULL,               -- enum key_state
	sealed BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	changed_at INTEGER NOT NULL,
	disclosed_at INTEGER NOT NULL DEFAULT 0
) STRICT;
-- A check-in touches as few index pages as it can: keys are found by
-- volume (and state, for the sweep of keys gone from it); only disclosed
-- keys, which are few, are indexed by device (for the rotate list).
CREATE INDEX recovery_keys_volume ON recovery_keys (volume, state);
CREATE INDEX recovery_keys_disclosed ON recovery_keys (device) WHERE state = 2;

CREATE TABLE logons (
	device INTEGER NOT NULL REFERENCES devices (id),
	user_lc TEXT NOT NULL,
	user TEXT NOT NULL,
	type INTEGER NOT NULL,                -- enum logon_type
	first_seen INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	PRIMARY KEY (device, user_lc, type)
) STRICT, WITHOUT ROWID;
CREATE INDEX logons_user ON logons (user_lc, type);

CREATE TABLE associations (
	user_lc TEXT NOT NULL,
	user TEXT NOT NULL,
	device INTEGER NOT NULL REFERENCES devices (id),
	added_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (user_lc, device)
) STRICT, WITHOUT ROWID;
CREATE INDEX associations_device ON associations (device);

CREATE TABLE users (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	name_lc TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	roles INTEGER NOT NULL,
	disabled INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
	id_hash BLOB PRIMARY KEY,
	user TEXT NOT NULL,
	roles INTEGER NOT NULL,
	identities TEXT NOT NULL,
	csrf TEXT NOT NULL,
	notice_accepted INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	last_seen INTEGER NOT NULL
) STRICT;

CREATE TABLE audit (
	seq INTEGER PRIMARY KEY,
	at INTEGER NOT NULL,
	source TEXT NOT NULL,
	result TEXT NOT NULL,
	actor TEXT NOT NULL,
	end_user TEXT NOT NULL,
	computer TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key_id TEXT NOT NULL,
	key_type TEXT NOT NULL,
	reason TEXT NOT NULL,
	comment TEXT NOT NULL,
	client TEXT NOT NULL,
	prev_hash BLOB NOT NULL,
	hash BLOB NOT NULL
) STRICT;
CREATE INDEX audit_at ON audit (at);
