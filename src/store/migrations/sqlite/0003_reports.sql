-- keywarden schema, version 3: indexes for the help desk's reports, so that
-- a page of a report costs about the same at a million records as at a
-- thousand (store.h: store_audit_page, store_key_each_state).

-- The audit report filters on user and computer names case-insensitively:
-- through lower-cased copies (as fold() folds them), like name_lc and
-- user_lc. They are search keys only; the hash chain covers the names.
ALTER TABLE audit ADD COLUMN actor_lc TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN end_user_lc TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN computer_lc TEXT NOT NULL DEFAULT '';
UPDATE audit SET actor_lc = fold(actor), end_user_lc = fold(end_user),
	computer_lc = fold(computer);

-- A page is newest first (by at, then seq): each index leads with its
-- filter and goes on with at (and the row's seq), so a filter's newest
-- records are found in order and the time range bounds the walk. Result
-- and source follow, so that a second filter is checked in the index and
-- only the records that match are read from the table. audit_at (0001)
-- serves the report without a filter.
CREATE INDEX audit_actor ON audit (actor_lc, at, result, source);
CREATE INDEX audit_end_user ON audit (end_user_lc, at, result, source);
CREATE INDEX audit_computer ON audit (computer_lc, at, result, source);
CREATE INDEX audit_result ON audit (result, at, source);
CREATE INDEX audit_source ON audit (source, at, result);
CREATE INDEX audit_result_source ON audit (result, source, at);

-- Keys disclosed and not yet rotated, oldest disclosure first: few keys,
-- so a partial index (changed_at is the disclosure time while the state
-- stays disclosed).
CREATE INDEX recovery_keys_disclosed_at ON recovery_keys (changed_at) WHERE state = 2;
