-- Full-text search over title and content: an FTS5 external-content index on `notes`,
-- kept in step by triggers, so the text is stored once.
CREATE VIRTUAL TABLE notes_fts USING fts5(
    title, content,
    content = 'notes', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, title, content) VALUES (new.id, new.title, new.content);
END;

CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, content) VALUES ('delete', old.id, old.title, old.content);
END;

CREATE TRIGGER notes_fts_update AFTER UPDATE OF title, content ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, content) VALUES ('delete', old.id, old.title, old.content);
    INSERT INTO notes_fts (rowid, title, content) VALUES (new.id, new.title, new.content);
END;

-- Index notes that existed before this migration.
INSERT INTO notes_fts (notes_fts) VALUES ('rebuild');
