//! "Export my notes": a JSON file of every note of the user's, made in the background.
//!
//! `POST /notes/export` inserts a `note_exports` row and enqueues [`ExportNotes`] in one
//! transaction, so a job exists for every row and no job for a row that was rolled back.
//! The job writes the file into the row. The export's id waits in the session
//! ([`SESSION_KEY`]) until a notes page has said that it is done ([`ExportNotice`]);
//! `/notes/exports/` lists them all.

use burrow::axum::extract::{FromRequestParts, State};
use burrow::axum::http::request::Parts;
use burrow::axum::http::{HeaderValue, StatusCode, header};
use burrow::axum::response::{IntoResponse, Redirect, Response};
use burrow::contrib::auth::{CurrentUser, RequireAuth, users};
use burrow::db::{FromRow, params, utc_now};
use burrow::i18n::Locale;
use burrow::jobs::{Job, JobContext, JobOptions, Jobs};
use burrow::minijinja::context;
use burrow::minijinja::value::Serde;
use burrow::{BoxError, Db, Error, Html, Messages, Path, Render, Result, Session};
use serde::{Deserialize, Serialize};

use super::store::{self, Author, Note};

/// The session key holding the id of the export the user asked for last, until a page has
/// told them it is done.
const SESSION_KEY: &str = "notes.export";

/// How many exports `/notes/exports/` lists, newest first.
const LISTED: i64 = 50;

/// Fills in export `export_id`: the owner's notes as a JSON file.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportNotes {
    pub export_id: i64,
}

impl Job for ExportNotes {
    const TYPE: &'static str = "notes.export";

    // Retries only help against a busy or briefly unreachable database: three attempts (30 s
    // and 1 min apart by default) tell the user "failed" within two minutes, not eight.
    fn options() -> JobOptions {
        JobOptions::new().max_attempts(3)
    }

    async fn run(self, cx: JobContext) -> Result<(), BoxError> {
        build(&cx.app.db, self.export_id).await
    }

    /// Its attempts are used up (an error, a panic or a timeout): the user is told.
    async fn on_dead(self, cx: JobContext, error: String) {
        let id = self.export_id;
        // Not a ready export: an earlier delivery of this same job (at least once) may have
        // written it.
        let marked = cx
            .app
            .db
            .write(move |c| {
                c.execute(
                    "UPDATE note_exports SET status = 'failed', error = ?, finished_at = ?
                         WHERE id = ? AND status <> 'ready'",
                    params![error, utc_now(), id],
                )
            })
            .await;
        if let Err(e) = marked {
            burrow::tracing::error!(export_id = id, "export not marked as failed: {e}");
        }
    }
}

/// The file: `{"exported_at", "username", "notes": [...]}`.
#[derive(Serialize)]
struct Document<'a> {
    exported_at: String,
    username: &'a str,
    notes: &'a [Note],
}

/// Writes export `id`'s file and marks it ready. Does nothing for an export that is ready
/// already (a job may be delivered twice) or gone (its user was deleted).
async fn build(db: &Db, id: i64) -> Result<(), BoxError> {
    let export: Option<(i64, String)> = db
        .read(move |c| {
            c.query_opt("SELECT user_id, status FROM note_exports WHERE id = ?", params![id])
        })
        .await?;
    let Some((user_id, status)) = export else { return Ok(()) };
    if status == "ready" {
        return Ok(());
    }
    let Some(user) = db.read(move |c| users::by_id(c, user_id)).await? else { return Ok(()) };
    let notes = store::all(db, Author::of(&user)).await?;
    let document = Document { exported_at: utc_now(), username: &user.username, notes: &notes };
    let content = serde_json::to_string_pretty(&document)?;
    let count = notes.len();
    db.write(move |c| {
        c.execute(
            "UPDATE note_exports
                 SET status = 'ready', note_count = ?, content = ?, error = NULL, finished_at = ?
                 WHERE id = ? AND status <> 'ready'",
            params![count, content, utc_now(), id],
        )
    })
    .await?;
    Ok(())
}

/// `POST /notes/export`: asks for an export, and back to the notes.
pub async fn start(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    jobs: Jobs,
    session: Session,
    (messages, locale): (Messages, Locale),
) -> Result<Response> {
    let author = Author::of(&user);
    let id = db
        .write(move |c| {
            let (id,): (i64,) = c.query_one(
                "INSERT INTO note_exports (user_id) VALUES (?) RETURNING id",
                params![author.0],
            )?;
            // A queue that cannot take the job rolls the row back with it.
            let job = jobs.job(&ExportNotes { export_id: id })?;
            jobs.insert(c, &job)?;
            Ok(id)
        })
        .await?;
    // Without the key the user is not told on the notes pages, but the export is made and
    // listed all the same: not worth failing a request whose work is committed.
    if let Err(e) = session.insert(SESSION_KEY, id) {
        burrow::tracing::warn!(export_id = id, "export id not kept in the session: {e}");
    }
    messages.info(locale.t("notes-export-started"))?;
    Ok(Redirect::to("/notes").into_response())
}

/// An export as listed. Not its file, nor its error, which is for operators (it may name
/// database details), not for the page.
#[derive(Debug, Serialize, FromRow)]
struct Listed {
    id: i64,
    status: String,
    note_count: Option<i64>,
    created_at: String,
}

/// `GET /notes/exports/`: the user's exports, newest first. While one is pending the list
/// refreshes itself (htmx), or by the Refresh link without JavaScript.
pub async fn list(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    session: Session,
    render: Render,
) -> Result<Html> {
    let author = Author::of(&user);
    let exports: Vec<Listed> = db
        .read(move |c| {
            c.query(
                "SELECT id, status, note_count, created_at
                     FROM note_exports WHERE user_id = ? ORDER BY id DESC LIMIT ?",
                params![author.0, LISTED],
            )
        })
        .await?;
    // This page shows how the export in the session ended: the notes pages need not.
    if let Some(id) = session.get::<i64>(SESSION_KEY)
        && !exports.iter().any(|e| e.id == id && e.status == "pending")
    {
        session.remove(SESSION_KEY);
    }
    let pending = exports.iter().any(|e| e.status == "pending");
    render.page("notes/exports.html", context! { exports => Serde(&exports), pending })
}

/// `GET /notes/exports/{id}/download`: the file of a ready export of the user's; another
/// user's, or none, is a 404, one that is not ready a 409.
pub async fn download(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path(id): Path<i64>,
) -> Result<Response> {
    let author = Author::of(&user);
    let export: (String, Option<String>) = db
        .read(move |c| {
            c.query_opt(
                "SELECT status, content FROM note_exports WHERE id = ? AND user_id = ?",
                params![id, author.0],
            )
        })
        .await?
        .ok_or_else(Error::not_found)?;
    let content = match export {
        (status, Some(content)) if status == "ready" => content,
        (status, _) if status == "failed" => {
            return Err(Error::new(
                StatusCode::CONFLICT,
                "This export failed: start a new one from the notes page.",
            )
            .translate("notes-export-failed"));
        }
        _ => {
            return Err(Error::new(
                StatusCode::CONFLICT,
                "This export is not ready yet: the exports page says when it is.",
            )
            .translate("notes-export-not-ready"));
        }
    };
    let disposition = format!("attachment; filename=\"notes-export-{id}.json\"");
    let mut res = content.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("digits and ASCII"),
    );
    // Someone's notes: not for shared caches, nor the browser's cache after sign-out.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(res)
}

/// How the export in the session ended, for the notes pages' notice (`export_notice` in
/// their templates).
#[derive(Debug, Serialize)]
pub struct Finished {
    id: i64,
    ready: bool,
}

/// An extractor: what a notes page says about the user's last export once it is done. A
/// session without an export costs no query.
pub struct ExportNotice {
    session: Session,
    /// Whether the key is to leave the session: the export is done, or not the user's.
    done: bool,
    finished: Option<Finished>,
}

impl ExportNotice {
    /// The notice of a page about to be shown, taken out of the session so it shows once.
    /// Taken by the handler, not the extractor, so that a page that fails (a missing note)
    /// does not swallow it.
    pub fn take(self) -> Option<Finished> {
        if self.done {
            self.session.remove(SESSION_KEY);
        }
        self.finished
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ExportNotice {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ExportNotice> {
        let session = Session::from_request_parts(parts, state).await?;
        let Some(id) = session.get::<i64>(SESSION_KEY) else {
            return Ok(ExportNotice { session, done: false, finished: None });
        };
        let CurrentUser(Some(user)) = CurrentUser::from_request_parts(parts, state).await? else {
            return Ok(ExportNotice { session, done: false, finished: None });
        };
        let db = Db::from_request_parts(parts, state).await?;
        // Scoped by user: signing out leaves the key in the session, and the next user of
        // the browser must not hear of (nor keep querying for) someone else's export.
        let author = Author::of(&user);
        let status: Option<(String,)> = db
            .read(move |c| {
                c.query_opt(
                    "SELECT status FROM note_exports WHERE id = ? AND user_id = ?",
                    params![id, author.0],
                )
            })
            .await?;
        let (done, finished) = match status {
            Some((status,)) if status == "pending" => (false, None),
            Some((status,)) => (true, Some(Finished { id, ready: status == "ready" })),
            None => (true, None),
        };
        Ok(ExportNotice { session, done, finished })
    }
}
