//! The body-size limit (413): `--max-body-size` for every body but `multipart/form-data`
//! ones (uploads), which get `--upload-max-size`. A `Content-Length` over the limit is
//! answered at once, before a byte of the body is read (a client waiting for `100
//! Continue` sends nothing); a body without one is cut off where it passes the limit, so
//! the handler reading it gets a 413 error after reading at most the limit. Multipart
//! bodies are read as they stream in ([`crate::forms`]), so the limit bounds disk, not
//! memory. It also puts the [`Spool`] in a multipart request: where its files go.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;
use tower::{Layer, Service};

use crate::error::{Error, OrRefused};
use crate::forms::Spool;

#[derive(Clone)]
pub(crate) struct BodyLimitLayer(Arc<Limits>);

struct Limits {
    body: usize,
    upload: usize,
    spool: Spool,
}

impl BodyLimitLayer {
    pub(crate) fn new(body: usize, upload: usize, spool_dir: std::path::PathBuf) -> BodyLimitLayer {
        let spool = Spool { dir: spool_dir, text_limit: body };
        BodyLimitLayer(Arc::new(Limits { body, upload, spool }))
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> BodyLimit<S> {
        BodyLimit { limits: self.0.clone(), inner }
    }
}

#[derive(Clone)]
pub(crate) struct BodyLimit<S> {
    limits: Arc<Limits>,
    inner: S,
}

fn is_multipart(request: &Request) -> bool {
    let content_type = request.headers().get(header::CONTENT_TYPE);
    let essence = content_type.and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next());
    essence.is_some_and(|e| e.trim().eq_ignore_ascii_case("multipart/form-data"))
}

impl<S, R> Service<Request> for BodyLimit<S>
where
    S: Service<Request, Response = R, Error = Infallible>,
    R: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = OrRefused<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Most requests (GETs) come without a body: nothing to limit, so no header lookups
        // and no wrapper around the body.
        if http_body::Body::is_end_stream(request.body()) {
            return OrRefused::Admitted { future: self.inner.call(request) };
        }
        let multipart = is_multipart(&request);
        let limit = if multipart { self.limits.upload } else { self.limits.body };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            let error = Error::new(StatusCode::PAYLOAD_TOO_LARGE, crate::error::TOO_LARGE);
            return OrRefused::refused(error);
        }
        let mut request = request.map(|body| Body::new(Limited::new(body, limit)));
        if multipart {
            // Only uploads need it (a path: an allocation for every other request too).
            request.extensions_mut().insert(self.limits.spool.clone());
        }
        OrRefused::Admitted { future: self.inner.call(request) }
    }
}
