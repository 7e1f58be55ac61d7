//! Full-text search with one API over SQLite's FTS5 and PostgreSQL's `tsvector`.
//!
//! An app declares which text columns of a table are searchable ([`SearchIndex`]), creates
//! the index in a migration ([`SearchIndex::create_sql`] prints the SQL for each engine,
//! to paste into `NNNN_search.sqlite.up.sql` and `NNNN_search.postgres.up.sql`), parses
//! what the user typed with [`SearchQuery::parse`] and runs it with [`Conn::search`]:
//!
//! ```no_run
//! # fn demo(c: &burrow::db::Conn) -> Result<(), burrow::db::DbError> {
//! use burrow::db::search::{SearchIndex, SearchQuery};
//! const NOTES: SearchIndex = SearchIndex::new("notes", &["title", "content"]);
//! // None when the user typed nothing; an error (a message for them) when it cannot run.
//! let query = SearchQuery::parse("deploy* OR backup -draft").expect("valid").expect("not blank");
//! let hits: Vec<(i64, String, String)> = c
//!     .search(&NOTES, &query)
//!     .select(&["id"])
//!     .highlight("title")
//!     .excerpt("content", 24, "excerpt")
//!     .page(20, 0)
//!     .fetch()?;
//! # Ok(()) }
//! ```
//!
//! Results come best first (FTS5's bm25, PostgreSQL's `ts_rank`), a match in an earlier
//! column weighing more (1.0, 0.4, 0.2, 0.1: PostgreSQL's weights A to D on both).
//! Matches in highlighted and excerpted columns are wrapped in [`MARK_START`] and
//! [`MARK_END`] (`\x02`, `\x03`): escape the text for HTML, then turn the markers into
//! `<mark>` tags; stored text must not contain them.
//!
//! The query language is the same on both engines, and small: words (all must match),
//! `"a phrase"`, `prefix*` (at least 2 letters before the `*`), `OR` between alternatives
//! and `-word` or `NOT word` to exclude. Words are split at punctuation as both engines'
//! tokenizers do. Nothing a user types is a syntax error; a query over the limits
//! ([`QUERY_MAX_CHARS`], [`QUERY_MAX_TERMS`]) is refused with a message for the user,
//! because every term costs a lookup.
//!
//! Both engines tokenize alike (Unicode letters and digits, case-insensitive); they differ
//! in accents: FTS5 (`remove_diacritics 2`) finds "café" for "cafe", PostgreSQL's `simple`
//! configuration does not.

use std::fmt;

use super::{Conn, DbError, Engine, FromRow, Value};

/// Marks the start of a match in highlighted or excerpted text.
pub const MARK_START: char = '\u{2}';
/// Marks the end of a match.
pub const MARK_END: char = '\u{3}';
/// The longest query, in characters.
pub const QUERY_MAX_CHARS: usize = 200;
/// The most words in a query (each word, prefix and phrase word is looked up).
pub const QUERY_MAX_TERMS: usize = 12;

/// Searchable text columns of a table whose key is the integer column `id`.
#[derive(Clone, Copy, Debug)]
pub struct SearchIndex {
    table: &'static str,
    key: &'static str,
    columns: &'static [&'static str],
}

impl SearchIndex {
    /// The text `columns` of `table`, most important first (ranked higher on PostgreSQL).
    pub const fn new(table: &'static str, columns: &'static [&'static str]) -> SearchIndex {
        SearchIndex { table, key: "id", columns }
    }

    /// The same index on a table whose integer key is called `key`.
    pub const fn key(self, key: &'static str) -> SearchIndex {
        SearchIndex { key, ..self }
    }

    /// The FTS5 table beside the table on SQLite: `{table}_fts`.
    fn fts(&self) -> String {
        format!("{}_fts", self.table)
    }

    /// The SQL that creates (and fills) the index on `engine`, for a migration file.
    ///
    /// SQLite: an external-content FTS5 table `{table}_fts` kept in step by triggers.
    /// PostgreSQL: a generated `search_vector` column with a GIN index.
    pub fn create_sql(&self, engine: Engine) -> String {
        let (table, key, fts) = (self.table, self.key, self.fts());
        let cols = self.columns.join(", ");
        let new = self.columns.iter().map(|c| format!("new.{c}")).collect::<Vec<_>>().join(", ");
        let old = self.columns.iter().map(|c| format!("old.{c}")).collect::<Vec<_>>().join(", ");
        match engine {
            Engine::Sqlite => format!(
                "CREATE VIRTUAL TABLE {fts} USING fts5(\n    {cols},\n    content = '{table}', \
                 content_rowid = '{key}',\n    tokenize = 'unicode61 remove_diacritics 2'\n);\n\n\
                 CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN\n    \
                 INSERT INTO {fts} (rowid, {cols}) VALUES (new.{key}, {new});\nEND;\n\n\
                 CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN\n    \
                 INSERT INTO {fts} ({fts}, rowid, {cols}) VALUES ('delete', old.{key}, {old});\n\
                 END;\n\n\
                 CREATE TRIGGER {fts}_update AFTER UPDATE OF {cols} ON {table} BEGIN\n    \
                 INSERT INTO {fts} ({fts}, rowid, {cols}) VALUES ('delete', old.{key}, {old});\n    \
                 INSERT INTO {fts} (rowid, {cols}) VALUES (new.{key}, {new});\nEND;\n\n\
                 INSERT INTO {fts} ({fts}) VALUES ('rebuild');\n"
            ),
            Engine::Postgres => {
                let weighted = self
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let weight = ["A", "B", "C", "D"][i.min(3)];
                        format!("setweight(to_tsvector('simple', coalesce({c}, '')), '{weight}')")
                    })
                    .collect::<Vec<_>>()
                    .join("\n        || ");
                format!(
                    "ALTER TABLE {table} ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (\n    \
                     {weighted}\n) STORED;\n\n\
                     CREATE INDEX {table}_search_vector ON {table} USING gin (search_vector);\n"
                )
            }
        }
    }

    /// A condition for a `WHERE` over the table (as `alias`) that keeps the rows matching
    /// `query`, and its one parameter: for combining a match with other conditions and
    /// another order than relevance (the admin's list).
    pub fn condition(&self, engine: Engine, query: &SearchQuery, alias: &str) -> (String, Value) {
        match engine {
            Engine::Sqlite => (
                format!(
                    "{alias}.{} IN (SELECT rowid FROM {fts} WHERE {fts} MATCH ?)",
                    self.key,
                    fts = self.fts()
                ),
                Value::Text(query.fts5()),
            ),
            Engine::Postgres => (
                format!("{alias}.search_vector @@ to_tsquery('simple', ?)"),
                Value::Text(query.tsquery()),
            ),
        }
    }

    fn position(&self, column: &str) -> Result<usize, DbError> {
        self.columns.iter().position(|c| *c == column).ok_or_else(|| {
            DbError::Other(format!(
                "{column} is not a column of the search index on {} ({})",
                self.table,
                self.columns.join(", ")
            ))
        })
    }
}

/// A parsed, bounded search query (see the module docs for the language).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    /// Every group must match; a group matches when one of its terms does.
    groups: Vec<Vec<Term>>,
    excluded: Vec<Term>,
}

/// Words that must appear in this order (one word, or a phrase); `prefix`: the last one
/// may continue.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Term {
    words: Vec<String>,
    prefix: bool,
}

/// Why a query was refused: a message for the person who typed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchError(pub &'static str);

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for SearchError {}

impl SearchQuery {
    /// Parses what a user typed. `Ok(None)` for a blank query (list everything instead);
    /// a query without a word to look for (`*`, `AND`) is refused.
    pub fn parse(raw: &str) -> Result<Option<SearchQuery>, SearchError> {
        if raw.trim().is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > QUERY_MAX_CHARS {
            return Err(SearchError("use at most 200 characters."));
        }
        let mut groups: Vec<Vec<Term>> = Vec::new();
        let mut excluded = Vec::new();
        let mut or_next = false;
        let mut negate_next = false;
        for token in tokens(raw) {
            let (text, quoted) = token;
            if !quoted && text == "OR" {
                or_next = !groups.is_empty();
                continue;
            }
            if !quoted && text == "NOT" {
                negate_next = true;
                continue;
            }
            if !quoted && text == "AND" {
                continue;
            }
            let (text, negated) = match text.strip_prefix('-') {
                Some(rest) if !quoted => (rest, true),
                _ => (text, std::mem::take(&mut negate_next)),
            };
            let (text, prefix) = match text.strip_suffix('*') {
                Some(stem) if !quoted => (stem, true),
                _ => (text, false),
            };
            let words: Vec<String> = text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            if words.is_empty() {
                or_next = false;
                continue;
            }
            if prefix && words.last().is_some_and(|w| w.chars().count() < 2) {
                return Err(SearchError("put at least 2 letters before a * (e.g. dep*)."));
            }
            let term = Term { words, prefix };
            if negated {
                excluded.push(term);
            } else if or_next && let Some(group) = groups.last_mut() {
                group.push(term);
            } else {
                groups.push(vec![term]);
            }
            or_next = false;
        }
        let count: usize = groups.iter().flatten().chain(&excluded).map(|t| t.words.len()).sum();
        if count > QUERY_MAX_TERMS {
            return Err(SearchError("use at most 12 words."));
        }
        if groups.is_empty() && excluded.is_empty() {
            return Err(SearchError("search for at least one word (letters or digits)."));
        }
        if groups.is_empty() {
            return Err(SearchError("add a word to search for besides the excluded ones."));
        }
        Ok(Some(SearchQuery { groups, excluded }))
    }

    /// The query in FTS5's syntax: every word quoted, so nothing is read as an operator.
    fn fts5(&self) -> String {
        let term =
            |t: &Term| format!("\"{}\"{}", t.words.join(" "), if t.prefix { "*" } else { "" });
        let mut out = self
            .groups
            .iter()
            .map(|g| format!("({})", g.iter().map(term).collect::<Vec<_>>().join(" OR ")))
            .collect::<Vec<_>>()
            .join(" AND ");
        for t in &self.excluded {
            out = format!("({out}) NOT {}", term(t));
        }
        out
    }

    /// The query as a PostgreSQL `tsquery` (for `to_tsquery('simple', …)`).
    fn tsquery(&self) -> String {
        let term = |t: &Term| {
            let last = t.words.len() - 1;
            let words: Vec<String> = t
                .words
                .iter()
                .enumerate()
                .map(|(i, w)| format!("'{w}'{}", if t.prefix && i == last { ":*" } else { "" }))
                .collect();
            format!("({})", words.join(" <-> "))
        };
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("({})", g.iter().map(term).collect::<Vec<_>>().join(" | ")))
            .collect();
        parts.extend(self.excluded.iter().map(|t| format!("!{}", term(t))));
        parts.join(" & ")
    }
}

/// Whitespace-separated tokens; `"…"` is one token (quoted: never an operator).
fn tokens(raw: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('"') {
            let end = inner.find('"').unwrap_or(inner.len());
            out.push((&inner[..end], true));
            rest = inner.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
            out.push((&rest[..end], false));
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    out
}

/// A search being built on a connection: what to return and which page.
pub struct Search<'c> {
    conn: &'c Conn,
    index: SearchIndex,
    query: &'c SearchQuery,
    select: Vec<String>,
    shown: Vec<(usize, Shown)>,
    limit: usize,
    offset: usize,
    /// Conditions on the table (`t`), ANDed to the match, and their parameters.
    conditions: Vec<String>,
    params: Vec<Value>,
    /// A column that is not in the index, reported by [`Search::fetch`].
    error: Option<DbError>,
}

enum Shown {
    Highlight,
    Excerpt { words: usize, alias: String },
}

impl Conn {
    /// Starts a search of `index` for `query`; see [`Search`].
    pub fn search<'c>(&'c self, index: &SearchIndex, query: &'c SearchQuery) -> Search<'c> {
        Search {
            conn: self,
            index: *index,
            query,
            select: Vec::new(),
            shown: Vec::new(),
            limit: 20,
            offset: 0,
            conditions: Vec::new(),
            params: Vec::new(),
            error: None,
        }
    }
}

impl Search<'_> {
    /// Columns of the table returned as stored (e.g. `["id", "created_at"]`).
    pub fn select(mut self, columns: &[&str]) -> Self {
        self.select.extend(columns.iter().map(|c| c.to_string()));
        self
    }

    /// Returns the indexed `column` whole, under its own name, with every match marked.
    pub fn highlight(self, column: &str) -> Self {
        self.show(column, Shown::Highlight)
    }

    /// Returns about `words` words of the indexed `column` around its best match, marked,
    /// as `alias`.
    pub fn excerpt(self, column: &str, words: usize, alias: &str) -> Self {
        self.show(column, Shown::Excerpt { words, alias: alias.into() })
    }

    fn show(mut self, column: &str, how: Shown) -> Self {
        match self.index.position(column) {
            Ok(i) => self.shown.push((i, how)),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Only the rows that also meet `condition`: SQL over the table's columns as `t.name`,
    /// with `?` for `params` (e.g. `("t.user_id = ?", params![user.id])`). Written by the
    /// app, like any query; never put user input into the SQL itself.
    pub fn and_where(mut self, condition: &str, params: &[Value]) -> Self {
        self.conditions.push(format!("({condition})"));
        self.params.extend_from_slice(params);
        self
    }

    /// At most `limit` hits, after skipping `offset`.
    pub fn page(mut self, limit: usize, offset: usize) -> Self {
        self.limit = limit;
        self.offset = offset;
        self
    }

    /// Runs the search; hits best first.
    pub fn fetch<T: FromRow>(self) -> Result<Vec<T>, DbError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (sql, query) = match self.conn.engine() {
            Engine::Sqlite => (self.sqlite_sql(), self.query.fts5()),
            Engine::Postgres => (self.postgres_sql(), self.query.tsquery()),
        };
        let mut params = vec![Value::Text(query)];
        params.extend(self.params.iter().cloned());
        params.extend([Value::from(self.limit), Value::from(self.offset)]);
        self.conn.query(&sql, &params)
    }

    /// The select list: plain columns, then each shown column as `shown(position, name,
    /// how)` renders it.
    fn columns(&self, shown: impl Fn(usize, &str, &Shown) -> String) -> String {
        let mut columns: Vec<String> = self.select.iter().map(|c| format!("t.{c}")).collect();
        for (i, how) in &self.shown {
            columns.push(shown(*i, self.index.columns[*i], how));
        }
        columns.join(", ")
    }

    /// ` AND (…) AND (…)` of [`Search::and_where`], or nothing.
    fn and_conditions(&self) -> String {
        self.conditions.iter().map(|c| format!(" AND {c}")).collect()
    }

    fn sqlite_sql(&self) -> String {
        let (table, key, fts) = (self.index.table, self.index.key, self.index.fts());
        let columns = self.columns(|i, column, how| match how {
            Shown::Highlight => format!("highlight({fts}, {i}, char(2), char(3)) AS {column}"),
            Shown::Excerpt { words, alias } => {
                format!("snippet({fts}, {i}, char(2), char(3), '…', {words}) AS {alias}")
            }
        });
        // Weighted like PostgreSQL's A, B, C, D: a match in the first column counts most.
        let weights = (0..self.index.columns.len())
            .map(|i| ["1.0", "0.4", "0.2", "0.1"][i.min(3)])
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {columns} FROM {fts} JOIN {table} t ON t.{key} = {fts}.rowid \
             WHERE {fts} MATCH ?{} ORDER BY bm25({fts}, {weights}), t.{key} DESC LIMIT ? OFFSET ?",
            self.and_conditions()
        )
    }

    fn postgres_sql(&self) -> String {
        let (table, key) = (self.index.table, self.index.key);
        const MARKS: &str = "'StartSel=' || chr(2) || ', StopSel=' || chr(3)";
        let columns = self.columns(|_, column, how| match how {
            Shown::Highlight => format!(
                "ts_headline('simple', coalesce(t.{column}, ''), q, {MARKS} || ', HighlightAll=true') \
                 AS {column}"
            ),
            Shown::Excerpt { words, alias } => format!(
                "ts_headline('simple', coalesce(t.{column}, ''), q, {MARKS} || \
                 ', MaxWords={words}, MinWords={}, MaxFragments=1, FragmentDelimiter=…') \
                 AS {alias}",
                (words / 2).max(1)
            ),
        });
        format!(
            "SELECT {columns} FROM {table} t, to_tsquery('simple', ?) q \
             WHERE t.search_vector @@ q{} \
             ORDER BY ts_rank(t.search_vector, q) DESC, t.{key} DESC LIMIT ? OFFSET ?",
            self.and_conditions()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> SearchQuery {
        SearchQuery::parse(raw).unwrap().unwrap()
    }

    #[test]
    fn the_query_language_renders_for_both_engines() {
        let q = parse("deploy* OR backup \"wal file\" -draft");
        assert_eq!(q.fts5(), "((\"deploy\"* OR \"backup\") AND (\"wal file\")) NOT \"draft\"");
        assert_eq!(q.tsquery(), "(('deploy':*) | ('backup')) & (('wal' <-> 'file')) & !('draft')");
        // Punctuation splits words as the tokenizers do; operators in quotes are words.
        assert_eq!(parse("e-mail").tsquery(), "(('e' <-> 'mail'))");
        assert_eq!(parse("\"OR\" NOT x y").fts5(), "((\"or\") AND (\"y\")) NOT \"x\"");
        // Nothing is a syntax error: stray operators and quotes are ignored or closed.
        assert_eq!(parse("OR a OR").fts5(), "(\"a\")");
        assert_eq!(parse("\"unclosed phrase").fts5(), "(\"unclosed phrase\")");
        assert_eq!(parse("(a) ^b").fts5(), "(\"a\") AND (\"b\")");
    }

    #[test]
    fn queries_are_bounded() {
        assert_eq!(SearchQuery::parse("   "), Ok(None));
        assert!(SearchQuery::parse("*** --").unwrap_err().0.contains("at least one word"));
        assert!(SearchQuery::parse("AND").is_err());
        assert!(SearchQuery::parse(&["w"; 12].join(" OR ")).unwrap().is_some());
        let err = SearchQuery::parse(&["ww*"; 13].join(" OR ")).unwrap_err();
        assert!(err.0.contains("12 words"));
        assert!(SearchQuery::parse("\"a b c d e f g h i j k l m\"").is_err());
        assert!(SearchQuery::parse(&"x".repeat(201)).unwrap_err().0.contains("200 characters"));
        assert!(SearchQuery::parse("backup OR d*").unwrap_err().0.contains("2 letters"));
        assert!(SearchQuery::parse("-only").unwrap_err().0.contains("besides"));
        assert!(SearchQuery::parse("de* dep*").unwrap().is_some());
    }
}
