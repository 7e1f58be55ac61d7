//! [`FormData`]: the submitted fields as text, whatever the body's encoding:
//! `application/x-www-form-urlencoded` bodies and query strings, and `multipart/form-data`
//! bodies, whose text parts are fields like any other and whose file parts are spooled to
//! disk as [`UploadedFile`]s (`upload.rs`). Forms read the same pairs either way.

use axum::body::{Body, Bytes};

use super::upload::{Spool, UploadedFile, read_multipart};
use crate::error::Error;

/// Submitted `name=value` pairs, in order (a name may repeat), and the files of a
/// multipart body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormData {
    pairs: Vec<(String, String)>,
    files: Vec<UploadedFile>,
}

impl FormData {
    pub fn new(pairs: Vec<(String, String)>) -> FormData {
        FormData { pairs, files: Vec::new() }
    }

    /// Parses a `multipart/form-data` body (`content_type` is the request's header, which
    /// names the boundary): text parts become fields, file parts [`UploadedFile`]s, spooled
    /// to the system's temporary directory. (A server's requests are read as they stream
    /// in, their files spooled in the storage directory: take [`FormData`] as an argument.)
    /// A 400 if it is not such a body.
    pub async fn from_multipart(bytes: Bytes, content_type: &str) -> Result<FormData, Error> {
        read_multipart(Body::from(bytes), content_type, &Spool::default()).await
    }

    pub(crate) fn push(&mut self, name: String, value: String) {
        self.pairs.push((name, value));
    }

    pub(crate) fn set_files(&mut self, files: Vec<UploadedFile>) {
        self.files = files;
    }

    /// The files of a multipart body, in order.
    pub fn files(&self) -> &[UploadedFile] {
        &self.files
    }

    /// The first file sent as `field`.
    pub fn file(&self, field: &str) -> Option<&UploadedFile> {
        self.files.iter().find(|f| f.field == field)
    }

    /// Parses `a=1&b=two` (a urlencoded body or a query string); a 400 if it is not one.
    pub fn from_urlencoded(bytes: &[u8]) -> Result<FormData, Error> {
        serde_urlencoded::from_bytes(bytes)
            .map(FormData::new)
            .map_err(|_| Error::bad_request("The form data could not be read."))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.pairs.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for FormData {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> FormData {
        FormData::new(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}
