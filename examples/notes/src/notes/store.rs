//! Notes on SQLite or PostgreSQL (the same SQL): queries, validation and search. Every
//! note belongs to its author, and every query is for one author's notes (the index
//! `notes_user (user_id, id)` serves the list and the lookups).

use burrow::Db;
use burrow::contrib::auth::User;
use burrow::db::search::{SearchIndex, SearchQuery};
use burrow::db::{Conn, DbError, FromRow, Row, params, utc_now};
use burrow::forms::{Clean, Errors, Form};
use burrow::live::Event;
use burrow::pagination::{Page, Paginator};
use serde::Serialize;

pub const PER_PAGE: usize = 20;

/// Whose notes a request reads and writes: the signed-in user's id.
#[derive(Clone, Copy, Debug)]
pub struct Author(pub i64);

impl Author {
    pub fn of(user: &User) -> Author {
        Author(user.id)
    }

    /// The live-update topic of this author's notes: every change to them is published
    /// there ([`changed`]), and their list pages subscribe to it.
    pub fn topic(self) -> String {
        format!("notes:user:{}", self.0)
    }
}

/// The event a change to an author's notes publishes: the list refetches its rows.
pub const CHANGED: &str = "notes-changed";

/// Tells `author`'s open list pages that their notes changed, once the transaction
/// commits (every store function that adds, changes or deletes notes calls it).
pub fn changed(c: &Conn, author: Author) -> Result<(), DbError> {
    c.publish(&author.topic(), Event::new(CHANGED))
}

/// [`changed`] for the authors of the notes `ids` (the admin's changes).
pub fn changed_notes(c: &Conn, ids: &[i64]) -> Result<(), DbError> {
    for id in ids {
        let author: Option<(Option<i64>,)> =
            c.query_opt("SELECT user_id FROM notes WHERE id = ?", params![*id])?;
        if let Some((Some(user_id),)) = author {
            changed(c, Author(user_id))?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Note {
    pub id: i64,
    pub title: String,
    pub content: String,
    pub created_at: String,
    pub updated_at: String,
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

/// One page of a listing or search: `page.items`, `page.next`… in templates.
#[derive(Debug, Serialize)]
pub struct Listing {
    #[serde(flatten)]
    pub page: Page<Item>,
    /// Why the search query was not run: no word in it, or over the limits of
    /// [`SearchQuery::parse`] (every term costs a lookup).
    pub search_error: Option<&'static str>,
}

/// Title and content are searchable, the title weighing more (migrations 0002).
pub const SEARCH: SearchIndex = SearchIndex::new("notes", &["title", "content"]);

/// Lists newest first, or searches by relevance when `q` is not blank. A query that
/// cannot be run is an empty page with `search_error`, never an error.
pub async fn page(
    db: &Db,
    author: Author,
    q: &str,
    paginator: Paginator,
) -> Result<Listing, DbError> {
    let query = match SearchQuery::parse(q) {
        Ok(query) => query,
        Err(reason) => {
            return Ok(Listing { page: paginator.empty(), search_error: Some(reason.0) });
        }
    };
    let (limit, offset) = (paginator.limit(), paginator.offset());
    let items = db
        .read(move |c| match query {
            None => c.query::<Item>(
                "SELECT id, title, substr(content, 1, 240) AS excerpt, created_at
                     FROM notes WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                params![author.0, limit, offset],
            ),
            Some(query) => c
                .search(&SEARCH, &query)
                .and_where("t.user_id = ?", &[author.0.into()])
                .select(&["id", "created_at"])
                .highlight("title")
                .excerpt("content", 24, "excerpt")
                .page(limit, offset)
                .fetch(),
        })
        .await?;
    Ok(Listing { page: paginator.page_of(items), search_error: None })
}

/// A note of `author`'s; `None` when there is none, or it is someone else's.
pub async fn get(db: &Db, author: Author, id: i64) -> Result<Option<Note>, DbError> {
    db.read(move |c| {
        c.query_opt(
            "SELECT id, title, content, created_at, updated_at FROM notes
                 WHERE id = ? AND user_id = ?",
            params![id, author.0],
        )
    })
    .await
}

/// Every note of `author`'s, oldest first: what an export holds.
pub async fn all(db: &Db, author: Author) -> Result<Vec<Note>, DbError> {
    db.read(move |c| {
        c.query(
            "SELECT id, title, content, created_at, updated_at FROM notes
                 WHERE user_id = ? ORDER BY id",
            params![author.0],
        )
    })
    .await
}

/// A new note of `author`'s.
pub async fn create(db: &Db, author: Author, form: NoteForm) -> Result<Note, DbError> {
    db.write(move |c| {
        changed(c, author)?;
        c.query_one(
            "INSERT INTO notes (title, content, user_id) VALUES (?, ?, ?)
             RETURNING id, title, content, created_at, updated_at",
            params![plain(&form.title), plain(&form.content), author.0],
        )
    })
    .await
}

/// Updates a note of `author`'s; `None` when there is none.
pub async fn update(
    db: &Db,
    author: Author,
    id: i64,
    form: NoteForm,
) -> Result<Option<Note>, DbError> {
    db.write(move |c| {
        let note: Option<Note> = c.query_opt(
            "UPDATE notes SET title = ?, content = ?, updated_at = ?
                 WHERE id = ? AND user_id = ? RETURNING id, title, content, created_at, updated_at",
            params![plain(&form.title), plain(&form.content), utc_now(), id, author.0],
        )?;
        if note.is_some() {
            changed(c, author)?;
        }
        Ok(note)
    })
    .await
}

/// Deletes a note of `author`'s; returns its title, or `None` when there is none.
pub async fn delete(db: &Db, author: Author, id: i64) -> Result<Option<String>, DbError> {
    db.write(move |c| {
        let title: Option<String> = c.query_opt(
            "DELETE FROM notes WHERE id = ? AND user_id = ? RETURNING title",
            params![id, author.0],
        )?;
        if title.is_some() {
            changed(c, author)?;
        }
        Ok(title)
    })
    .await
}

/// Gives the notes without an author (written before accounts, on a server that had no
/// admin when it upgraded) to `author`; returns how many.
pub async fn adopt(db: &Db, author: Author) -> Result<usize, DbError> {
    db.write(move |c| {
        changed(c, author)?;
        c.execute("UPDATE notes SET user_id = ? WHERE user_id IS NULL", params![author.0])
    })
    .await
}

/// The first admin (the account notes made from the command line belong to by default).
pub async fn first_admin(db: &Db) -> Result<Option<User>, DbError> {
    use burrow::contrib::auth::users;
    db.read(|c| Ok(users::list(c)?.into_iter().find(|u| u.is_admin() && u.is_active))).await
}

/// Inserts many notes of `author` in few transactions.
pub async fn insert_many(
    db: &Db,
    author: Author,
    notes: Vec<(String, String)>,
) -> Result<(), DbError> {
    for chunk in notes.chunks(500) {
        let chunk = chunk.to_vec();
        db.write(move |c| {
            changed(c, author)?;
            for (title, content) in &chunk {
                c.execute(
                    "INSERT INTO notes (title, content, user_id) VALUES (?, ?, ?)",
                    params![plain(title), plain(content), author.0],
                )?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// Inserts the notes of `author` whose title none of theirs has yet, in one transaction;
/// returns how many.
pub async fn insert_missing(
    db: &Db,
    author: Author,
    notes: Vec<(String, String)>,
) -> Result<usize, DbError> {
    db.write(move |c| {
        changed(c, author)?;
        let mut added = 0;
        for (title, content) in &notes {
            let (title, content) = (plain(title), plain(content));
            let existing: Option<(i64,)> = c.query_opt(
                "SELECT id FROM notes WHERE title = ? AND user_id = ? LIMIT 1",
                params![&title, author.0],
            )?;
            if existing.is_none() {
                c.execute(
                    "INSERT INTO notes (title, content, user_id) VALUES (?, ?, ?)",
                    params![title, content, author.0],
                )?;
                added += 1;
            }
        }
        Ok(added)
    })
    .await
}

/// The note form: declared once, validated by its `#[form(...)]` rules. The title is
/// trimmed; the content is kept as typed (leading indentation may matter in a note).
#[derive(Debug, Clone, Default, Form)]
#[form(clean)]
pub struct NoteForm {
    #[form(required, max_length = 200, label = "Title")]
    pub title: String,
    #[form(max_length = 100_000, label = "Content", widget = "textarea", no_trim)]
    pub content: String,
}

/// Every way a note is saved (the notes pages, the admin) stores plain text.
impl Clean for NoteForm {
    fn clean(&mut self, _errors: &mut Errors) {
        self.title = plain(&self.title);
        self.content = plain(&self.content);
    }
}

impl NoteForm {
    pub fn from_note(note: &Note) -> NoteForm {
        NoteForm { title: note.title.clone(), content: note.content.clone() }
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
    fn the_postgres_search_migration_is_what_the_index_declares() {
        let file = include_str!("migrations/0002_notes_search.postgres.up.sql");
        let sql: String =
            file.lines().filter(|l| !l.starts_with("--")).map(|l| format!("{l}\n")).collect();
        assert_eq!(sql, SEARCH.create_sql(burrow::db::Engine::Postgres));
    }

    #[test]
    fn validation() {
        use burrow::forms::FormData;
        let errors = |title: &str, content: &str| {
            let data: FormData = [("title", title), ("content", content)].into_iter().collect();
            let errors = NoteForm::from_data(&data).err().unwrap_or_default();
            let field = |name| errors.field(name).map(|m| m.english(Some("Title"))).collect();
            (field("title"), field("content"))
        };
        let none: Vec<String> = Vec::new();
        assert_eq!(errors("  ", "").0, ["Title is required."]);
        assert_eq!(errors(&"x".repeat(201), "").0, ["Title must be at most 200 characters."]);
        assert_eq!(errors(&"é".repeat(200), ""), (none.clone(), none.clone()));
        assert_eq!(errors("t", &"x".repeat(100_001)).1.len(), 1);
        let data: FormData =
            [("title", "  Trimmed  "), ("content", "  kept  ")].into_iter().collect();
        let form = NoteForm::from_data(&data).unwrap();
        assert_eq!((form.title.as_str(), form.content.as_str()), ("Trimmed", "  kept  "));
    }
}
