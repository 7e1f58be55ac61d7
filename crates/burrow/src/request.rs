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
pub struct RequestId(Repr);

/// A generated id lives inline (every request makes one: no allocation); a client's is
/// shared.
#[derive(Clone, Debug)]
enum Repr {
    Generated { text: [u8; GENERATED_MAX], len: u8 },
    Given(Arc<str>),
}

/// 12 hex digits of prefix, `-`, up to 16 of counter.
const GENERATED_MAX: usize = 12 + 1 + 16;

impl RequestId {
    pub(crate) fn new(id: &str) -> RequestId {
        RequestId(Repr::Given(id.into()))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only ASCII hex digits and '-' are written there.
            Repr::Generated { text, len } => {
                std::str::from_utf8(&text[..*len as usize]).expect("a generated id is ASCII")
            }
            Repr::Given(id) => id,
        }
    }

    /// A random per-process prefix plus a counter: unique, cheap, and sortable within a
    /// process (`3f1c6a2e8c7d-0000002a`).
    pub(crate) fn generate() -> RequestId {
        static PREFIX: OnceLock<[u8; 12]> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = PREFIX.get_or_init(|| {
            crate::random::hex(6).as_bytes().try_into().expect("6 bytes are 12 hex digits")
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let digits = (16 - n.leading_zeros() as usize / 4).max(8);
        let mut text = [0u8; GENERATED_MAX];
        text[..12].copy_from_slice(prefix);
        text[12] = b'-';
        for (i, slot) in text[13..13 + digits].iter_mut().enumerate() {
            *slot = b"0123456789abcdef"[(n >> (4 * (digits - 1 - i)) & 0xf) as usize];
        }
        RequestId(Repr::Generated { text, len: (13 + digits) as u8 })
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

/// `next` if it is a path on this site: it must start with one `/`, and contain no
/// backslash or control character (browsers read `/\evil` and `//evil` as another host).
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2048;
    ok.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_differ_and_count_in_hex() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a.as_str(), b.as_str());
        let (prefix, n) = a.as_str().split_once('-').unwrap();
        assert_eq!(prefix.len(), 12);
        assert!(prefix.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(n.len(), 8);
        let (b_prefix, m) = b.as_str().split_once('-').unwrap();
        assert_eq!(b_prefix, prefix);
        // Other tests may take ids in between.
        assert!(u64::from_str_radix(m, 16).unwrap() > u64::from_str_radix(n, 16).unwrap());
        assert_eq!(RequestId::new("from-the-client").as_str(), "from-the-client");
    }

    #[test]
    fn next_is_a_path_on_this_site_only() {
        assert_eq!(safe_next("/notes?page=2"), Some("/notes?page=2"));
        assert_eq!(safe_next("/"), Some("/"));
        for evil in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "evil",
            "",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(evil), None, "{evil:?}");
        }
    }
}
