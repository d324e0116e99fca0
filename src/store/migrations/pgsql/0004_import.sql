-- keywarden schema for PostgreSQL, version 4: where an imported key came
-- from, '' for a key its device escrowed itself (store.h: key_rec.origin).
ALTER TABLE recovery_keys ADD COLUMN origin text NOT NULL DEFAULT '';
