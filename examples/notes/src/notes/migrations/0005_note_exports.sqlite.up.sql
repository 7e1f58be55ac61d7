-- "Export my notes": one row per export a user asked for, made in the same transaction as
-- the notes.export job that fills it in (src/notes/export.rs). `content` is the JSON file
-- once `status` is 'ready'; `error` says why when it is 'failed'.
CREATE TABLE note_exports (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    note_count INTEGER,
    content TEXT,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    finished_at TEXT
);
CREATE INDEX note_exports_user ON note_exports (user_id, id);
