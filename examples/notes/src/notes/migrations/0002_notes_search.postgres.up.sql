-- Full-text search over title and content (burrow::db::search, SearchIndex::create_sql):
-- a generated tsvector column, title weighted above content, with a GIN index.
ALTER TABLE notes ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', coalesce(title, '')), 'A')
        || setweight(to_tsvector('simple', coalesce(content, '')), 'B')
) STORED;

CREATE INDEX notes_search_vector ON notes USING gin (search_vector);
