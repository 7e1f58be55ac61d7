-- 0006_user_language.sqlite.up.sql in PostgreSQL's words.
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT '';
