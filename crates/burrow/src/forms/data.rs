//! [`FormData`]: the submitted fields as text, whatever the body's encoding:
//! `application/x-www-form-urlencoded` bodies and query strings, and `multipart/form-data`
//! bodies, whose text parts are fields like any other and whose file parts are kept as
//! [`UploadedFile`]s. Forms read the same pairs either way.

use axum::body::{Body, Bytes};

use crate::error::Error;

/// Submitted `name=value` pairs, in order (a name may repeat), and the files of a
/// multipart body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormData {
    pairs: Vec<(String, String)>,
    files: Vec<UploadedFile>,
}

/// A file part of a `multipart/form-data` body. It is held in memory: the body-size limit
/// (`--max-body-size`) bounds it, as it bounds the whole body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedFile {
    /// The form field's name.
    pub field: String,
    /// The name the browser gives, as sent: never trust it as a path.
    pub file_name: String,
    /// The type the browser claims, if any: never trust it for what the file is.
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl FormData {
    pub fn new(pairs: Vec<(String, String)>) -> FormData {
        FormData { pairs, files: Vec::new() }
    }

    /// Parses a `multipart/form-data` body (`content_type` is the request's header, which
    /// names the boundary): text parts become fields, file parts [`UploadedFile`]s. A file
    /// input left empty (no name, no bytes, as browsers send it) is no file. A 400 if it is
    /// not such a body.
    pub async fn from_multipart(bytes: Bytes, content_type: &str) -> Result<FormData, Error> {
        let bad = |_| Error::bad_request("The form data could not be read.");
        let boundary = multer::parse_boundary(content_type).map_err(bad)?;
        let mut parts = multer::Multipart::new(Body::from(bytes).into_data_stream(), boundary);
        let mut data = FormData::default();
        while let Some(part) = parts.next_field().await.map_err(bad)? {
            let field = part.name().unwrap_or_default().to_string();
            match part.file_name().map(str::to_string) {
                None => data.pairs.push((field, part.text().await.map_err(bad)?)),
                Some(file_name) => {
                    let content_type = part.content_type().map(|m| m.to_string());
                    let bytes = part.bytes().await.map_err(bad)?;
                    if !(file_name.is_empty() && bytes.is_empty()) {
                        data.files.push(UploadedFile { field, file_name, content_type, bytes });
                    }
                }
            }
        }
        Ok(data)
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
