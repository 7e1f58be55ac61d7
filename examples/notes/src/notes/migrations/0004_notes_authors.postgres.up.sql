-- As 0004_notes_authors.sqlite.up.sql.
ALTER TABLE notes ADD COLUMN user_id BIGINT REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX notes_user ON notes (user_id, id);
UPDATE notes SET user_id = (SELECT min(id) FROM users WHERE role = 'admin');
