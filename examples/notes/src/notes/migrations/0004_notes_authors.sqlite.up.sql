-- Notes belong to their author (the auth app's users). Notes written before accounts go to
-- the first admin, if there is one yet (else `server adopt-notes USERNAME` gives them away).
ALTER TABLE notes ADD COLUMN user_id INTEGER REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX notes_user ON notes (user_id, id);
UPDATE notes SET user_id = (SELECT min(id) FROM users WHERE role = 'admin');
