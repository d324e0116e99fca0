-- keywarden schema, version 5: the audit report's search indexes (0003)
-- leave the database. With them on the audit table every disclosure wrote
-- its record into seven B-trees, three at a place chosen by a name, and
-- each commit wrote a page of each to the log: 10 log pages a disclosure
-- against 3.6 without them, three times the checkpoints, and a disclosure
-- p99 four times longer (BENCHMARKS.md, session 6). They now live in a
-- file of their own beside the database, DATABASE-find, which a thread of
-- the server fills in batches after the records' commits (sqlite/find.c);
-- a report reads the records it does not hold yet from the audit table
-- itself, so it is never behind. That file is derived data: it is rebuilt
-- from the audit table whenever it is missing or does not match it.
DROP INDEX audit_actor;
DROP INDEX audit_end_user;
DROP INDEX audit_computer;
DROP INDEX audit_result;
DROP INDEX audit_source;
DROP INDEX audit_result_source;
-- audit.actor_lc, end_user_lc and computer_lc (0003) are no longer written
-- (left '') nor read; they stay, as dropping a column rewrites the table.
