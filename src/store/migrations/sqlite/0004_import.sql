-- keywarden schema, version 4: keys imported from elsewhere (keywarden
-- import csv, import ldap) record where they came from, e.g.
-- "import:csv:backup.csv" or "import:mbam:keys.csv"; '' for a key its
-- device escrowed itself (store.h: key_rec.origin).
ALTER TABLE recovery_keys ADD COLUMN origin TEXT NOT NULL DEFAULT '';
