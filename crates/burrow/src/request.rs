//! What the framework attaches to every request, for handlers, templates and logs: its id
//! ([`RequestId`]) and the client's address ([`PeerAddr`]). The values are set by the
//! accept loop and the core middleware; this module only defines them, so every layer
//! above can read them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The id of the current request: the client's `X-Request-Id` when it is a sane token,
/// else a generated one. Echoed on the response and logged with the request.
#[derive(Clone, Debug)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub(crate) fn new(id: &str) -> RequestId {
        RequestId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A random per-process prefix plus a counter: unique, cheap, and sortable within a
    /// process.
    pub(crate) fn generate() -> RequestId {
        static PREFIX: OnceLock<String> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = PREFIX.get_or_init(|| crate::random::hex(6));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        RequestId(format!("{prefix}-{n:08x}").into())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().unwrap_or_else(RequestId::generate))
    }
}

/// The client address of a request (in request extensions): the TCP peer, which behind
/// a reverse proxy is the proxy.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_differ() {
        assert_ne!(RequestId::generate().as_str(), RequestId::generate().as_str());
    }
}
