-- Files attached to notes. The bytes live in the server's storage (--storage-dir), private,
-- under their SHA-256; equal files are stored once, so several rows may name one file.
-- Rows go with their note (ON DELETE CASCADE, also from the admin or with the user).
CREATE TABLE note_attachments (
    id INTEGER PRIMARY KEY,
    note_id INTEGER NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    width INTEGER,
    height INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX note_attachments_note ON note_attachments (note_id, id);
CREATE INDEX note_attachments_sha256 ON note_attachments (sha256);
-- The files that may no longer be needed: every deleted row's, however it was deleted.
-- The sweep (attachments.rs) deletes those no row refers to any more.
CREATE TABLE note_orphan_blobs (sha256 TEXT NOT NULL);
CREATE TRIGGER note_attachments_orphan AFTER DELETE ON note_attachments
BEGIN
    INSERT INTO note_orphan_blobs (sha256) VALUES (OLD.sha256);
END;
