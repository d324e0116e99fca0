-- keywarden schema, version 2: rate-limit events kept in the database, so
-- that every instance sharing it counts the same attempts (core/limits.h).
-- One row per event a limiter counted; keys are folded by the caller.

CREATE TABLE limit_events (
	limiter TEXT NOT NULL,
	key TEXT NOT NULL,
	at INTEGER NOT NULL
) STRICT;
-- A key's events, newest first (limit_take), and a limiter's old events
-- (limit_purge).
CREATE INDEX limit_events_key ON limit_events (limiter, key, at);
CREATE INDEX limit_events_at ON limit_events (limiter, at);
