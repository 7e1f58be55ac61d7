//! Notes in SQLite: queries, validation and the search index (FTS5, kept by triggers).

use burrow::Db;
use burrow::db::{DbError, FromRow, Row, params};
use serde::{Deserialize, Serialize};

pub const PER_PAGE: usize = 20;
pub const TITLE_MAX: usize = 200;
pub const CONTENT_MAX: usize = 100_000;

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub id: i64,
    pub title: String,
    pub content: String,
    pub created_at: String,
    pub updated_at: String,
}

impl FromRow for Note {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Note {
            id: row.get("id")?,
            title: row.get("title")?,
            content: row.get("content")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

/// A note in a list: title and excerpt as HTML, escaped here so search matches can be
/// marked with `<mark>` without trusting the note's text.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: i64,
    pub title_html: String,
    pub excerpt_html: String,
    pub created_at: String,
}

impl FromRow for Item {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Item {
            id: row.get("id")?,
            title_html: marked(&row.get::<String>("title")?),
            excerpt_html: marked(&row.get::<String>("excerpt")?),
            created_at: row.get("created_at")?,
        })
    }
}

/// One page of a listing or search.
#[derive(Debug, Serialize)]
pub struct Page {
    pub items: Vec<Item>,
    pub page: usize,
    pub next: Option<usize>,
    pub prev: Option<usize>,
    /// Why the search query was not run: bad FTS5 syntax, or over the limits below.
    pub search_error: Option<&'static str>,
}

const SYNTAX: &str = "check quotes and operators (AND, OR, NOT), or search for plain words.";

/// The longest search query, in characters.
pub const QUERY_MAX_CHARS: usize = 200;
/// The most terms (words, prefixes, phrase words) in a search query. Each term of an
/// OR is looked up and ranked separately, so the cost of a query grows with its terms:
/// hundreds of one-letter prefixes (`a* OR b* OR …`) kept a reader busy for seconds.
pub const QUERY_MAX_TERMS: usize = 12;

/// Why a search query is refused before it reaches SQLite, if it is.
fn query_error(q: &str) -> Option<&'static str> {
    if q.chars().count() > QUERY_MAX_CHARS {
        return Some("use at most 200 characters.");
    }
    let terms: Vec<&str> = q
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"'))
        .filter(|t| !t.is_empty() && !matches!(*t, "AND" | "OR" | "NOT"))
        .collect();
    if terms.len() > QUERY_MAX_TERMS {
        return Some("use at most 12 words.");
    }
    // `a*` matches a good part of every note's words, and costs accordingly.
    let short_prefix = terms.iter().any(|t| {
        t.strip_suffix('*').is_some_and(|stem| stem.trim_start_matches('^').chars().count() < 2)
    });
    short_prefix.then_some("put at least 2 letters before a * (e.g. dep*).")
}

/// Lists newest first, or searches by relevance when `q` is not blank. Invalid search
/// syntax, or a query over the limits, is an empty page with `search_error`, never an
/// error.
pub async fn page(db: &Db, q: &str, page: usize) -> Result<Page, DbError> {
    let q = q.trim().to_string();
    let page = page.max(1);
    if let Some(reason) = query_error(&q) {
        let search_error = Some(reason);
        return Ok(Page { items: Vec::new(), page, next: None, prev: None, search_error });
    }
    let offset = (page - 1) * PER_PAGE;
    // One row more than a page tells whether there is a next page.
    let limit = PER_PAGE + 1;
    let result = db
        .read(move |c| {
            if q.is_empty() {
                c.query::<Item>(
                    "SELECT id, title, substr(content, 1, 240) AS excerpt, created_at
                     FROM notes ORDER BY id DESC LIMIT ? OFFSET ?",
                    params![limit, offset],
                )
            } else {
                c.query::<Item>(
                    "SELECT n.id, highlight(notes_fts, 0, char(2), char(3)) AS title,
                            snippet(notes_fts, 1, char(2), char(3), '…', 24) AS excerpt,
                            n.created_at
                     FROM notes_fts JOIN notes n ON n.id = notes_fts.rowid
                     WHERE notes_fts MATCH ? ORDER BY rank LIMIT ? OFFSET ?",
                    params![q, limit, offset],
                )
            }
        })
        .await;
    let (mut items, search_error) = match result {
        Ok(items) => (items, None),
        Err(e) if e.is_rejected_query() => (Vec::new(), Some(SYNTAX)),
        Err(e) => return Err(e),
    };
    let next = (items.len() > PER_PAGE).then_some(page + 1);
    items.truncate(PER_PAGE);
    Ok(Page { items, page, next, prev: (page > 1).then(|| page - 1), search_error })
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Note>, DbError> {
    db.read(move |c| {
        c.query_opt(
            "SELECT id, title, content, created_at, updated_at FROM notes WHERE id = ?",
            params![id],
        )
    })
    .await
}

pub async fn create(db: &Db, form: NoteForm) -> Result<Note, DbError> {
    db.write(move |c| {
        c.query_one(
            "INSERT INTO notes (title, content) VALUES (?, ?)
             RETURNING id, title, content, created_at, updated_at",
            params![plain(form.title.trim()), plain(&form.content)],
        )
    })
    .await
}

/// Updates a note; `None` when it does not exist.
pub async fn update(db: &Db, id: i64, form: NoteForm) -> Result<Option<Note>, DbError> {
    db.write(move |c| {
        c.query_opt(
            "UPDATE notes SET title = ?, content = ?,
                              updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
             WHERE id = ? RETURNING id, title, content, created_at, updated_at",
            params![plain(form.title.trim()), plain(&form.content), id],
        )
    })
    .await
}

/// Deletes a note; returns its title, or `None` when it did not exist.
pub async fn delete(db: &Db, id: i64) -> Result<Option<String>, DbError> {
    db.write(move |c| {
        c.query_opt::<(String,)>("DELETE FROM notes WHERE id = ? RETURNING title", params![id])
            .map(|r| r.map(|(t,)| t))
    })
    .await
}

/// Inserts many notes in few transactions.
pub async fn insert_many(db: &Db, notes: Vec<(String, String)>) -> Result<(), DbError> {
    for chunk in notes.chunks(500) {
        let chunk = chunk.to_vec();
        db.write(move |c| {
            for (title, content) in &chunk {
                c.execute(
                    "INSERT INTO notes (title, content) VALUES (?, ?)",
                    params![plain(title), plain(content)],
                )?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// The note form as submitted; missing fields are empty so validation reports them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NoteForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub content: String,
}

impl NoteForm {
    pub fn from_note(note: &Note) -> NoteForm {
        NoteForm { title: note.title.clone(), content: note.content.clone() }
    }

    /// Field → message, empty when valid.
    pub fn errors(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let title = self.title.trim();
        if title.is_empty() {
            errors.push(("title", "Title is required.".to_string()));
        } else if title.chars().count() > TITLE_MAX {
            errors.push(("title", format!("Title must be at most {TITLE_MAX} characters.")));
        }
        if self.content.chars().count() > CONTENT_MAX {
            errors.push(("content", format!("Content must be at most {CONTENT_MAX} characters.")));
        }
        errors
    }
}

/// Text as stored: without control characters other than tab and line breaks. They have
/// no place in a note, and search results use two of them (\x02, \x03) to mark matches,
/// so text that contained them could inject `<mark>` tags (migration 0003 cleaned the
/// notes stored before).
fn plain(text: &str) -> String {
    text.chars().filter(|&c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).collect()
}

/// Escapes text for HTML, turning the FTS highlight markers (\x02, \x03) into `<mark>`.
/// Stored text never contains them ([`plain`]).
fn marked(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '\u{2}' => out.push_str("<mark>"),
            '\u{3}' => out.push_str("</mark>"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_matches_and_escapes_the_rest() {
        assert_eq!(
            marked("a <b> \u{2}word\u{3} & 'c'"),
            "a &lt;b&gt; <mark>word</mark> &amp; &#x27;c&#x27;"
        );
    }

    #[test]
    fn stored_text_has_no_control_characters_but_keeps_line_breaks() {
        assert_eq!(plain("a\u{2}b\u{3}c\u{0}d\u{1b}[0m\u{85}e"), "abcd[0me");
        assert_eq!(plain("line 1\r\nline 2\tcol"), "line 1\r\nline 2\tcol");
    }

    #[test]
    fn search_queries_are_bounded() {
        assert_eq!(query_error("backup OR deploy*"), None);
        assert_eq!(query_error(&["w"; 12].join(" OR ")), None);
        assert!(query_error(&["w*"; 13].join(" OR ")).is_some_and(|m| m.contains("12 words")));
        assert!(query_error("\"a b c d e f g h i j k l m\"").is_some());
        assert!(query_error(&"x".repeat(201)).is_some_and(|m| m.contains("200 characters")));
        assert!(query_error("backup OR d*").is_some_and(|m| m.contains("2 letters")));
        assert!(query_error("^a* OR *").is_some());
        assert_eq!(query_error("de* ^dep*"), None);
    }

    #[test]
    fn validation() {
        let form = |t: &str| NoteForm { title: t.into(), content: String::new() };
        assert_eq!(form("  ").errors()[0].1, "Title is required.");
        assert!(form(&"x".repeat(201)).errors()[0].1.contains("at most 200"));
        assert!(form(&"é".repeat(200)).errors().is_empty());
    }
}
