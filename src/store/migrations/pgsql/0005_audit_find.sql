-- keywarden schema, version 5. For SQLite, version 5 moves the audit
-- report's search indexes out of the database into a file of their own,
-- filled after the commits (sqlite/find.c): with SQLite's one writer,
-- every index on the audit table made each disclosure's commit longer.
-- PostgreSQL's writers each maintain the indexes of 0003 as they insert,
-- and its group commit writes log records, not pages: they stay. The
-- version exists here so that one schema version means one thing.
SELECT 1;
