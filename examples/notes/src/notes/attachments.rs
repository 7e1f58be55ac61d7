//! Files attached to notes: uploaded on the note's page (a plain multipart form, or htmx),
//! listed there with their size (and an image's width and height), downloaded only by the
//! note's author, and gone with the note.
//!
//! The bytes are in the server's storage, private (never under `/media/`), under their
//! SHA-256: equal files are stored once, so a file is deleted only when no row names it
//! any more. Every deleted row leaves its hash in `note_orphan_blobs` (a trigger, so rows
//! deleted with their note, by the admin or with their user count too); [`sweep`] deletes
//! the files no row names, right after a note is deleted here and every few minutes for
//! the rest ([`SweepAttachments`]).

use std::time::{Duration, SystemTime};

use burrow::axum::extract::State;
use burrow::axum::response::{IntoResponse, Redirect, Response};
use burrow::contrib::auth::RequireAuth;
use burrow::db::{FromRow, params};
use burrow::forms::{Form, FormResult, UploadedFile, Valid};
use burrow::i18n::Locale;
use burrow::jobs::{Job, JobContext};
use burrow::minijinja::context;
use burrow::minijinja::value::Serde;
use burrow::storage::{Access, Storage};
use burrow::{BoxError, Db, Error, Messages, Path, Render, Result};
use serde::{Deserialize, Serialize};

use super::store::{self, Author, Note};

/// What a note may carry: images and PDFs, by what their bytes are.
#[derive(Form)]
pub struct AttachmentForm {
    #[form(
        required,
        max_size = "10MB",
        accept = "image/png,image/jpeg,image/gif,image/webp,application/pdf",
        label = "File",
        help = "An image (PNG, JPEG, GIF, WebP) or a PDF, up to 10 MB."
    )]
    pub file: UploadedFile,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Attachment {
    pub id: i64,
    pub sha256: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub created_at: String,
}

/// The attachments of a note, oldest first.
pub async fn of_note(db: &Db, note_id: i64) -> Result<Vec<Attachment>, burrow::db::DbError> {
    db.read(move |c| {
        c.query(
            "SELECT id, sha256, name, content_type, size, width, height, created_at
                 FROM note_attachments WHERE note_id = ? ORDER BY id",
            params![note_id],
        )
    })
    .await
}

/// The note page's context: the note, its attachments and the upload form (`form`).
pub async fn page_context(db: &Db, note: &Note) -> Result<burrow::minijinja::Value> {
    let attachments = of_note(db, note.id).await?;
    Ok(context! {
        note => Serde(note),
        attachments => Serde(attachments),
        form => AttachmentForm::blank(),
    })
}

/// `POST /notes/{id}/attachments`: a multipart form. The row first, then the file: a
/// sweep that runs meanwhile keeps a file stored after it looked (see `Storage::delete`).
pub async fn create(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path(id): Path<i64>,
    storage: Storage,
    render: Render,
    (messages, locale): (Messages, Locale),
    form: FormResult<AttachmentForm>,
) -> Result<Response> {
    let note = store::get(&db, Author::of(&user), id).await?.ok_or_else(Error::not_found)?;
    let file = match form {
        Ok(Valid(form)) => form.file,
        Err(invalid) => {
            let ctx = page_context(&db, &note).await?;
            if render.is_htmx() {
                let invalid = invalid.retarget("#attachments");
                return invalid.partial(&render, "notes/_attachments.html", ctx);
            }
            return invalid.page(&render, "notes/detail.html", ctx);
        }
    };
    let (width, height) = match file.dimensions() {
        Some((w, h)) => (Some(w as i64), Some(h as i64)),
        None => (None, None),
    };
    let row = (
        id,
        file.sha256().to_string(),
        shown_name(&file.file_name),
        file.sniffed().unwrap_or("application/octet-stream").to_string(),
        file.size() as i64,
    );
    let attachment_id: i64 = db
        .write(move |c| {
            let (id, sha256, name, content_type, size) = row;
            let (attachment_id,): (i64,) = c.query_one(
                "INSERT INTO note_attachments
                     (note_id, sha256, name, content_type, size, width, height)
                     VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                params![id, sha256, name, content_type, size, width, height],
            )?;
            Ok(attachment_id)
        })
        .await?;
    if let Err(e) = storage.put(Access::Private, &file).await {
        // No row without its file: the sweep takes care of the hash.
        db.write(move |c| {
            c.execute("DELETE FROM note_attachments WHERE id = ?", params![attachment_id])
        })
        .await?;
        return Err(Error::internal(format!("storing an attachment: {e}")));
    }
    if render.is_htmx() {
        let ctx = page_context(&db, &note).await?;
        return Ok(render.partial("notes/_attachments.html", ctx)?.into_response());
    }
    let name = shown_name(&file.file_name);
    messages.success(locale.t_args("notes-attached", &[("name", &name)]))?;
    Ok(Redirect::to(&format!("/notes/{id}")).into_response())
}

/// `GET /notes/{id}/attachments/{attachment}`: for the note's author only (anyone else
/// gets the 404 of a note that does not exist).
pub async fn download(
    State(db): State<Db>,
    RequireAuth(user): RequireAuth,
    Path((note_id, attachment_id)): Path<(i64, i64)>,
    storage: Storage,
) -> Result<Response> {
    let author = Author::of(&user);
    let found: Option<(String, String)> = db
        .read(move |c| {
            c.query_opt(
                "SELECT a.sha256, a.name FROM note_attachments a JOIN notes n ON n.id = a.note_id
                     WHERE a.id = ? AND a.note_id = ? AND n.user_id = ?",
                params![attachment_id, note_id, author.0],
            )
        })
        .await?;
    let (sha256, name) = found.ok_or_else(Error::not_found)?;
    storage.response(Access::Private, &sha256, &name).await
}

/// A browser's file name as shown and sent back: its last path segment, at most 200
/// characters (the download escapes it again for its header).
fn shown_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let name: String = last.chars().filter(|c| !c.is_control()).take(200).collect();
    if name.is_empty() { "file".to_string() } else { name }
}

/// Deletes the stored files that no attachment names any more; how many.
pub async fn sweep(db: &Db, storage: &Storage) -> Result<usize> {
    // Taken before looking for rows: a file stored again after it (for a row added after
    // the look) is kept.
    let looked = SystemTime::now();
    let hashes: Vec<(String,)> =
        db.write(|c| c.query("DELETE FROM note_orphan_blobs RETURNING sha256", &[])).await?;
    let mut hashes: Vec<String> = hashes.into_iter().map(|(h,)| h).collect();
    hashes.sort();
    hashes.dedup();
    let mut deleted = 0;
    for sha256 in hashes {
        let wanted = sha256.clone();
        let (used,): (i64,) = db
            .read(move |c| {
                c.query_one(
                    "SELECT count(*) FROM note_attachments WHERE sha256 = ?",
                    params![wanted],
                )
            })
            .await?;
        if used == 0 && storage.delete(Access::Private, &sha256, looked).await? {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Runs [`sweep`] for attachments deleted elsewhere than on the note pages (the admin, a
/// deleted user).
#[derive(Debug, Serialize, Deserialize)]
pub struct SweepAttachments;

impl SweepAttachments {
    pub const EVERY: Duration = Duration::from_secs(600);
}

impl Job for SweepAttachments {
    const TYPE: &'static str = "notes.sweep_attachments";

    async fn run(self, cx: JobContext) -> Result<(), BoxError> {
        let deleted = sweep(&cx.app.db, &cx.app.storage).await.map_err(|e| format!("{e:?}"))?;
        if deleted > 0 {
            burrow::tracing::info!(deleted, "deleted attachment files no note uses");
        }
        Ok(())
    }
}
