//! Request ids: an incoming `X-Request-Id` is honoured (when it is a sane token), otherwise
//! one is generated ([`RequestId`]); either way it is echoed back and available to
//! handlers and logs.

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use crate::request::RequestId;

// A `HeaderName`, not a `&str`: a custom name given as text is allocated on each insert.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id for a request whose `X-Request-Id` is `given`.
pub(crate) fn from_header(given: Option<&HeaderValue>) -> RequestId {
    given.and_then(RequestId::given).unwrap_or_else(RequestId::generate)
}

/// Echoes the id on the response.
pub(crate) fn echo(id: &RequestId, response: &mut Response) {
    response.headers_mut().insert(HEADER, id.header_value());
}

/// Ids from clients end up in logs: accept short tokens of safe characters only (so no
/// `"` or `\` either, which the access log would have to escape).
pub(crate) fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_honoured() {
        assert!(acceptable(b"abc-123"));
        assert!(acceptable(b"3f1c6a2e-8c7d-4b0e-9d1a-2b7c3e4f5a6b"));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"a b"));
        assert!(!acceptable(b"x\"><script>"));
        assert!(!acceptable("a".repeat(129).as_bytes()));
    }
}
