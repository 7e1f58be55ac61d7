//! `multipart/form-data` bodies read as they stream in: text parts into memory (at most
//! `--max-body-size` in all), file parts to files in the storage's spool directory, hashed
//! (SHA-256) and sniffed on the way. Memory stays flat whatever the size of the files; the
//! body's size is bounded by `--upload-max-size` around it (413).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use ring::digest::{Context, SHA256};
use tokio::io::AsyncWriteExt;

use super::data::FormData;
use crate::error::Error;
use crate::files::{SHARED_FILE_MODE, create_new, create_shared_dirs};
use crate::sniff;

/// More file parts than this in one body is a 413: each holds a file open and a head in
/// memory while the body is read.
const MAX_FILES: usize = 20;

/// 400: not a multipart body, or a text field that is not UTF-8.
fn unreadable() -> Error {
    Error::bad_request("The form data could not be read.").translate("error-form-unreadable")
}

/// 413 for a form over one of the limits that are not a file's own size.
fn too_large(english: &'static str, key: &'static str) -> Error {
    Error::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, english).translate(key)
}

/// Where file parts go while the body is read, and how much text a body may hold; the
/// core stack puts it in every request.
#[derive(Clone, Debug)]
pub(crate) struct Spool {
    pub dir: PathBuf,
    pub text_limit: usize,
}

impl Default for Spool {
    /// Outside a server (a form read in a unit test): the system's temporary directory.
    fn default() -> Spool {
        Spool { dir: std::env::temp_dir(), text_limit: 1 << 20 }
    }
}

/// A file part of a `multipart/form-data` body, already on disk (in the storage's spool
/// directory, removed when the last clone is dropped unless stored), with its size, its
/// SHA-256, and what its bytes show it to be. Store it with
/// [`Storage::put`](crate::storage::Storage::put).
#[derive(Clone)]
pub struct UploadedFile {
    /// The form field's name.
    pub field: String,
    /// The name the browser gives, as sent: never trust it as a path (see
    /// [`content_disposition`](crate::storage::content_disposition) to send it back).
    pub file_name: String,
    /// The type the browser claims, if any: never trust it for what the file is.
    pub content_type: Option<String>,
    spooled: Arc<Spooled>,
}

/// The file on disk and what was learnt while writing it.
struct Spooled {
    path: PathBuf,
    size: u64,
    sha256: String,
    sniffed: Option<&'static str>,
    dimensions: Option<(u32, u32)>,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        // Stored files are links or copies of this one: it goes either way.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl UploadedFile {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.spooled.size
    }

    /// The SHA-256 of the bytes, as 64 lowercase hex digits: the name it is stored under.
    pub fn sha256(&self) -> &str {
        &self.spooled.sha256
    }

    /// The MIME type the file's bytes show (`image/png`, `application/pdf`, …), `None`
    /// when they show none that is known (plain text, for one).
    pub fn sniffed(&self) -> Option<&'static str> {
        self.spooled.sniffed
    }

    /// Width and height, for a PNG, JPEG, GIF or WebP image.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        self.spooled.dimensions
    }

    /// Where the bytes are while the request runs.
    pub fn path(&self) -> &Path {
        &self.spooled.path
    }

    /// Every byte, read from disk (for small files).
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path())
    }

    /// An uploaded file made of `bytes` (for tests), spooled in `dir`.
    pub fn spool_bytes(
        dir: &Path,
        field: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> std::io::Result<UploadedFile> {
        create_shared_dirs(dir)?;
        let path = spool_path(dir);
        let mut file = create_new(&path, SHARED_FILE_MODE)?;
        std::io::Write::write_all(&mut file, bytes)?;
        let head = &bytes[..bytes.len().min(sniff::HEAD_LEN)];
        Ok(UploadedFile {
            field: field.to_string(),
            file_name: file_name.to_string(),
            content_type: None,
            spooled: Arc::new(Spooled {
                path,
                size: bytes.len() as u64,
                sha256: hex(ring::digest::digest(&SHA256, bytes).as_ref()),
                sniffed: sniff::content_type(head),
                dimensions: sniff::dimensions(head),
            }),
        })
    }
}

impl std::fmt::Debug for UploadedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadedFile")
            .field("field", &self.field)
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("size", &self.size())
            .field("sha256", &self.sha256())
            .field("sniffed", &self.sniffed())
            .finish()
    }
}

/// Equal when they hold the same bytes under the same field, name and claimed type.
impl PartialEq for UploadedFile {
    fn eq(&self, other: &UploadedFile) -> bool {
        (&self.field, &self.file_name, &self.content_type, self.sha256())
            == (&other.field, &other.file_name, &other.content_type, other.sha256())
    }
}
impl Eq for UploadedFile {}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spool_path(dir: &Path) -> PathBuf {
    dir.join(format!("upload-{}", crate::random::hex(16)))
}

/// Reads a `multipart/form-data` body (`content_type` is the request's header, which
/// names the boundary). A file input left empty (no name, no bytes, as browsers send it)
/// is no file. 400 if it is not such a body, 413 when it is over a limit.
pub(crate) async fn read_multipart(
    body: Body,
    content_type: &str,
    spool: &Spool,
) -> Result<FormData, Error> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| unreadable())?;
    let mut parts = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut data = FormData::default();
    let (mut files, mut text) = (Vec::new(), 0usize);
    let failed = |e: multer::Error| Error::unreadable_body(&e);
    while let Some(mut part) = parts.next_field().await.map_err(failed)? {
        let field = part.name().unwrap_or_default().to_string();
        let Some(file_name) = part.file_name().map(str::to_string) else {
            let mut value = Vec::new();
            while let Some(chunk) = part.chunk().await.map_err(failed)? {
                text += chunk.len();
                if text > spool.text_limit {
                    let english = "The form's text fields are too large.";
                    return Err(too_large(english, "error-form-text-too-large"));
                }
                value.extend_from_slice(&chunk);
            }
            data.push(field, String::from_utf8(value).map_err(|_| unreadable())?);
            continue;
        };
        if files.len() == MAX_FILES {
            let english = "The form sends too many files at once.";
            return Err(too_large(english, "error-form-too-many-files"));
        }
        let content_type = part.content_type().map(|m| m.to_string());
        let spooled = spool_part(&mut part, &spool.dir).await?;
        if !(file_name.is_empty() && spooled.size == 0) {
            files.push(UploadedFile { field, file_name, content_type, spooled: Arc::new(spooled) });
        }
    }
    data.set_files(files);
    Ok(data)
}

/// Writes one file part to a new file in `dir`, hashing it and keeping its first bytes
/// to judge it by.
async fn spool_part(part: &mut multer::Field<'_>, dir: &Path) -> Result<Spooled, Error> {
    let io = |e: std::io::Error| Error::internal(format!("spooling an upload: {e}"));
    let path = spool_path(dir);
    let dir = dir.to_path_buf();
    let create_path = path.clone();
    let file = tokio::task::spawn_blocking(move || {
        create_shared_dirs(&dir)?;
        create_new(&create_path, SHARED_FILE_MODE)
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))?
    .map_err(io)?;
    // From here on, dropping `spooled` removes the file, whatever fails.
    let mut spooled =
        Spooled { path, size: 0, sha256: String::new(), sniffed: None, dimensions: None };
    let mut file = tokio::fs::File::from_std(file);
    let mut hash = Context::new(&SHA256);
    let mut head = Vec::new();
    while let Some(chunk) = part.chunk().await.map_err(|e| Error::unreadable_body(&e))? {
        hash.update(&chunk);
        if head.len() < sniff::HEAD_LEN {
            let take = chunk.len().min(sniff::HEAD_LEN - head.len());
            head.extend_from_slice(&chunk[..take]);
        }
        spooled.size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    spooled.sha256 = hex(hash.finish().as_ref());
    spooled.sniffed = sniff::content_type(&head);
    spooled.dimensions = sniff::dimensions(&head);
    Ok(spooled)
}
