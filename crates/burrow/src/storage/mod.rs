//! Where uploaded files are kept: the [`Storage`] handle (on the [`AppContext`] and an
//! extractor), over a [`StorageBackend`]. [`FileSystem`], under `--storage-dir`, is the one
//! there is; an S3-compatible one would implement the same trait.
//!
//! Files are content-addressed, like Git's objects: a file is stored under the SHA-256 of
//! its bytes (computed while the upload streams in, [`UploadedFile::sha256`]), so equal
//! files are stored once and a name never changes meaning. What a file is comes from its
//! bytes ([`UploadedFile::sniffed`]), never from its name or the client's claim.
//!
//! Two kinds of files, [`Access`]: public ones are served by anyone under
//! `/media/{sha256}` (with `nosniff`, a safe `Content-Disposition` and immutable caching);
//! private ones are served only by the app's own routes, after they checked who asks
//! ([`Storage::response`] streams one). A hash is no secret (anyone holding the same file
//! can compute it), so private files are never reachable under `/media/`.
//!
//! The app's rows refer to files by hash. Since one file may back several rows, a file is
//! deleted only when no row refers to it any more; [`Storage::delete`] skips a file stored
//! again after the moment the caller checked that (see docs/guide/uploads.md).
//!
//! [`AppContext`]: crate::AppContext
//! [`UploadedFile::sha256`]: crate::forms::UploadedFile::sha256
//! [`UploadedFile::sniffed`]: crate::forms::UploadedFile::sniffed

pub(crate) mod backup;
mod fs;
pub(crate) mod serve;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub use crate::sniff::is_inline_image;
pub use fs::FileSystem;
pub use serve::{Disposition, content_disposition};

use crate::error::Error;
use crate::forms::UploadedFile;

/// The future of a [`StorageBackend`] method. (Spelled out rather than the context's
/// `BoxFuture`: the context holds the storage, so this module comes before it.)
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Who may read a stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, under `/media/{sha256}`.
    Public,
    /// Only through the app's routes ([`Storage::response`]).
    Private,
}

/// A stored file opened for reading.
pub struct Opened {
    pub size: u64,
    /// The type its first bytes show (`None`: not one that is known).
    pub content_type: Option<&'static str>,
    pub body: Body,
}

/// Where files go: [`FileSystem`] now; another place (an S3-compatible bucket) would
/// implement the same methods.
pub trait StorageBackend: Send + Sync + 'static {
    /// Keeps `file` under its hash. A file with that hash stored already is kept, and
    /// counts as stored now (for [`StorageBackend::delete`]).
    fn put<'a>(&'a self, access: Access, file: &'a UploadedFile) -> BoxFuture<'a, io::Result<()>>;

    /// The file stored under `sha256`, or `None`.
    fn open<'a>(
        &'a self,
        access: Access,
        sha256: &'a str,
    ) -> BoxFuture<'a, io::Result<Option<Opened>>>;

    fn exists<'a>(&'a self, access: Access, sha256: &'a str) -> BoxFuture<'a, io::Result<bool>>;

    /// Deletes the file stored under `sha256` unless it was stored (again) at or after
    /// `unless_stored_since`; true if it was deleted.
    fn delete<'a>(
        &'a self,
        access: Access,
        sha256: &'a str,
        unless_stored_since: SystemTime,
    ) -> BoxFuture<'a, io::Result<bool>>;

    /// A local directory for uploads while they stream in, on the same filesystem as the
    /// stored files when there are any (so storing one is a rename).
    fn spool_dir(&self) -> &Path;
}

/// The server's file storage: cheap to clone. A handler takes it as an argument
/// (`storage: Storage`), other code finds it on the [`AppContext`](crate::AppContext).
#[derive(Clone)]
pub struct Storage(Arc<dyn StorageBackend>);

impl Storage {
    pub fn new(backend: impl StorageBackend) -> Storage {
        Storage(Arc::new(backend))
    }

    pub fn backend(&self) -> &dyn StorageBackend {
        &*self.0
    }

    /// Stores an upload (see [`StorageBackend::put`]).
    pub async fn put(&self, access: Access, file: &UploadedFile) -> io::Result<()> {
        self.0.put(access, file).await
    }

    pub async fn open(&self, access: Access, sha256: &str) -> io::Result<Option<Opened>> {
        if !is_sha256(sha256) {
            return Ok(None);
        }
        self.0.open(access, sha256).await
    }

    pub async fn exists(&self, access: Access, sha256: &str) -> io::Result<bool> {
        Ok(is_sha256(sha256) && self.0.exists(access, sha256).await?)
    }

    /// Deletes a file no row refers to any more: call it with the time taken before the
    /// check that found no row, so a file stored again meanwhile (for a new row) stays.
    pub async fn delete(
        &self,
        access: Access,
        sha256: &str,
        unless_stored_since: SystemTime,
    ) -> io::Result<bool> {
        if !is_sha256(sha256) {
            return Ok(false);
        }
        self.0.delete(access, sha256, unless_stored_since).await
    }

    /// Where a public file is served: `/media/{sha256}`.
    pub fn url(&self, sha256: &str) -> String {
        format!("/media/{sha256}")
    }

    /// A stored file as a download: its sniffed type, `nosniff`, `Content-Disposition`
    /// (inline for images, else attachment, with `file_name` escaped), `Cache-Control:
    /// private, no-store` and an ETag. For a route that checked who may read it; 404 when
    /// the file is missing.
    pub async fn response(
        &self,
        access: Access,
        sha256: &str,
        file_name: &str,
    ) -> Result<axum::response::Response, Error> {
        let opened = self.open(access, sha256).await?.ok_or_else(Error::not_found)?;
        Ok(serve::file_response(opened, sha256, file_name, serve::PRIVATE_CACHE))
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("spool_dir", &self.0.spool_dir()).finish()
    }
}

/// 64 lowercase hex digits: the only names files are stored and served under, so no
/// path can be made of a request's text.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The storage of the running server (the core layer puts it in every request).
impl<S: Send + Sync> FromRequestParts<S> for Storage {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Storage, Error> {
        crate::http::Services::of(&parts.extensions)
            .map(|s| s.storage.clone())
            .ok_or_else(|| Error::internal("Storage used outside a request of the server"))
    }
}
