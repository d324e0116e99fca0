-- keywarden schema for PostgreSQL, version 3: indexes for the help desk's
-- reports (as migrations/sqlite/0003_reports.sql; store.h: store_audit_page,
-- store_key_each_state).

-- Lower-cased copies of the names the audit report filters on, folded by
-- keywarden when it appends. Records from before this version get lower(),
-- which folds ASCII as str_fold does (the C collation).
ALTER TABLE audit ADD COLUMN actor_lc text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN end_user_lc text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN computer_lc text COLLATE "C" NOT NULL DEFAULT '';
UPDATE audit SET actor_lc = lower(actor), end_user_lc = lower(end_user),
	computer_lc = lower(computer);

CREATE INDEX audit_actor ON audit (actor_lc, at, result, source);
CREATE INDEX audit_end_user ON audit (end_user_lc, at, result, source);
CREATE INDEX audit_computer ON audit (computer_lc, at, result, source);
CREATE INDEX audit_result ON audit (result, at, source);
CREATE INDEX audit_source ON audit (source, at, result);
CREATE INDEX audit_result_source ON audit (result, source, at);

CREATE INDEX recovery_keys_disclosed_at ON recovery_keys (changed_at, id) WHERE state = 2;
