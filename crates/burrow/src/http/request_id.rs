//! Request ids: an incoming `X-Request-Id` is honoured (when it is a sane token), otherwise
//! one is generated; either way it is echoed back and available to handlers and logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

pub(crate) const HEADER: &str = "x-request-id";

/// The id of the current request.
#[derive(Clone, Debug)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().unwrap_or_else(generate))
    }
}

/// Middleware: attaches the id to the request and echoes it on the response.
pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(|v| RequestId(v.into()))
        .unwrap_or_else(generate);
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Ids from clients end up in logs: accept short tokens of safe characters only.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// A random per-process prefix plus a counter: unique, cheap, and sortable within a process.
fn generate() -> RequestId {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("system random");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RequestId(format!("{prefix}-{n:08x}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_honoured() {
        assert!(acceptable("abc-123"));
        assert!(acceptable("3f1c6a2e-8c7d-4b0e-9d1a-2b7c3e4f5a6b"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\"><script>"));
        assert!(!acceptable(&"a".repeat(129)));
        assert_ne!(generate().as_str(), generate().as_str());
    }
}
