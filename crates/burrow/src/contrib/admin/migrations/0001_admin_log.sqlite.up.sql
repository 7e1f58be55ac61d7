-- The admin log: every change made through the admin (who, what, when, which fields).
-- Rows outlive their objects and their authors: the object is kept by id and label, the
-- author by name.
CREATE TABLE _admin_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    user_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    username TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    object_id INTEGER,
    object_label TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX _admin_log_object ON _admin_log (model, object_id, id);
