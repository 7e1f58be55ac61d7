//! The body-size limit (413): `--max-body-size` for every body but `multipart/form-data`
//! ones (uploads), which get `--upload-max-size`. A `Content-Length` over the limit is
//! answered at once, before a byte of the body is read (a client waiting for `100
//! Continue` sends nothing); a body without one is cut off where it passes the limit, so
//! the handler reading it gets a 413 error after reading at most the limit. Multipart
//! bodies are read as they stream in ([`crate::forms`]), so the limit bounds disk, not
//! memory. It also puts the [`Spool`] in a multipart request: where its files go.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;

use crate::error::Error;
use crate::forms::Spool;

/// The limits, and where uploads' files go.
pub(crate) struct Limits {
    body: usize,
    upload: usize,
    spool: Spool,
}

impl Limits {
    pub(crate) fn new(body: usize, upload: usize, spool_dir: std::path::PathBuf) -> Limits {
        let spool = Spool { dir: spool_dir, text_limit: body };
        Limits { body, upload, spool }
    }

    /// Limits the request's body in place, or gives the 413 when it declares a length over
    /// the limit. (In place: the request is over 200 bytes, and each move is a copy.)
    pub(crate) fn refusal(&self, request: &mut Request) -> Option<Response> {
        // Most requests (GETs) come without a body: nothing to limit, so no header lookups
        // and no wrapper around the body.
        if http_body::Body::is_end_stream(request.body()) {
            return None;
        }
        let multipart = is_multipart(request);
        let limit = if multipart { self.upload } else { self.body };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            let error = Error::new(StatusCode::PAYLOAD_TOO_LARGE, crate::error::TOO_LARGE);
            return Some(error.into_response());
        }
        let body = std::mem::take(request.body_mut());
        *request.body_mut() = Body::new(Limited::new(body, limit));
        if multipart {
            // Only uploads need it (a path: an allocation for every other request too).
            request.extensions_mut().insert(self.spool.clone());
        }
        None
    }
}

fn is_multipart(request: &Request) -> bool {
    let content_type = request.headers().get(header::CONTENT_TYPE);
    let essence = content_type.and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next());
    essence.is_some_and(|e| e.trim().eq_ignore_ascii_case("multipart/form-data"))
}
