//! Request ids: an incoming `X-Request-Id` is honoured (when it is a sane token), otherwise
//! one is generated ([`RequestId`]); either way it is echoed back and available to
//! handlers and logs.

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use crate::request::RequestId;

// A `HeaderName`, not a `&str`: a custom name given as text is allocated on each insert.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: its `X-Request-Id` when that is a sane token, else a new one.
#[cfg(test)]
pub(crate) fn of(request: &axum::extract::Request) -> RequestId {
    from_header(request.headers().get(HEADER))
}

/// The id for a request whose `X-Request-Id` is `given`.
pub(crate) fn from_header(given: Option<&HeaderValue>) -> RequestId {
    given
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(RequestId::new)
        .unwrap_or_else(RequestId::generate)
}

/// Echoes the id on the response.
pub(crate) fn echo(id: &RequestId, response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
}

/// Ids from clients end up in logs: accept short tokens of safe characters only.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
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
    }
}
