//! What the framework attaches to every request, for handlers, templates and logs: its id
//! ([`RequestId`]), the TCP peer's address ([`PeerAddr`]), the client's address
//! ([`ClientIp`]: the peer, or the address trusted proxies forwarded) and what trusted
//! proxies said about the scheme and host ([`Forwarded`]). The values are set by the
//! accept loop and the core middleware (`crate::proxy` resolves the proxies' headers);
//! this module only defines them, so every layer above can read them. The id, the peer
//! and the server's services travel as one extension, [`Scope`]: each extension is an
//! allocation, and the map of them grows as they come. [`cookies`] finds a request's
//! cookies by name, for every app that reads one.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderValue};

/// The id of the current request: the client's `X-Request-Id` when it is a sane token,
/// else a generated one. Echoed on the response and logged with the request.
#[derive(Clone, Debug)]
pub struct RequestId(Repr);

/// A generated id lives inline (every request makes one: no allocation); a client's is a
/// header value of its own (copied: a clone of the request's would share, and keep alive,
/// hyper's whole read buffer for as long as anything keeps the id), which goes back on the
/// response without another copy.
#[derive(Clone, Debug)]
enum Repr {
    Generated {
        text: [u8; GENERATED_MAX],
        len: u8,
    },
    /// Only values [`request_id::acceptable`](crate::http::request_id) accepts: printable
    /// ASCII.
    Given(HeaderValue),
}

/// 12 hex digits of prefix, `-`, up to 16 of counter.
const GENERATED_MAX: usize = 12 + 1 + 16;

impl RequestId {
    /// The id a client sent, if it is a sane token (short, of safe characters only: ids
    /// from clients end up in logs).
    pub(crate) fn given(value: &HeaderValue) -> Option<RequestId> {
        if !crate::http::request_id::acceptable(value.as_bytes()) {
            return None;
        }
        let own = HeaderValue::from_bytes(value.as_bytes()).ok()?;
        Some(RequestId(Repr::Given(own)))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `generate` writes only ASCII hex digits and '-' there. Unchecked: the
            // id is read several times per request (the echo, the access log).
            Repr::Generated { text, len } => unsafe {
                std::str::from_utf8_unchecked(&text[..*len as usize])
            },
            // SAFETY: `given` keeps only printable ASCII.
            Repr::Given(value) => unsafe { std::str::from_utf8_unchecked(value.as_bytes()) },
        }
    }

    /// The id as the response's `X-Request-Id`.
    pub(crate) fn header_value(&self) -> HeaderValue {
        match &self.0 {
            Repr::Generated { .. } => {
                let bytes = bytes::Bytes::copy_from_slice(self.as_str().as_bytes());
                // SAFETY: hex digits and '-', all valid in a header value (checked again
                // in debug builds).
                unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) }
            }
            Repr::Given(value) => value.clone(),
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

impl RequestId {
    /// The request's id, set by the core layer (or, outside it, as an extension of its own).
    pub(crate) fn of(extensions: &Extensions) -> Option<&RequestId> {
        Scope::of(extensions).map(|scope| &scope.id).or_else(|| extensions.get::<RequestId>())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId::of(&parts.extensions).cloned().unwrap_or_else(RequestId::generate))
    }
}

/// The TCP peer of a request, which behind a reverse proxy is the proxy; [`ClientIp`] is
/// the client's address. An extractor as `Option<PeerAddr>`: `None` for a request that
/// came over no socket (built in-process). A request built in-process may carry one as an
/// extension, which is then its peer.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

impl PeerAddr {
    pub(crate) fn of(extensions: &Extensions) -> Option<SocketAddr> {
        match Scope::of(extensions) {
            Some(scope) => scope.peer,
            None => extensions.get::<PeerAddr>().map(|PeerAddr(addr)| *addr),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(PeerAddr::of(&parts.extensions).map(PeerAddr))
    }
}

/// What the core layer attaches to every request, as one extension.
#[derive(Clone)]
pub(crate) struct Scope {
    /// The server's services, for the extractors (`Db`, `Render`, …).
    pub(crate) services: Arc<crate::http::Services>,
    pub(crate) id: RequestId,
    /// The TCP peer; `None` for a request that came over no socket.
    pub(crate) peer: Option<SocketAddr>,
    /// The session's and CSRF secret's state, with the sessions app.
    pub(crate) cookies: Option<Arc<crate::contrib::session::CookieState>>,
}

impl Scope {
    pub(crate) fn of(extensions: &Extensions) -> Option<&Scope> {
        extensions.get::<Scope>()
    }
}

/// The values of the cookies named `name` in a request's `Cookie` header `values`, in the
/// order they came (a browser sends several of one name when cookies exist for other paths
/// or domains), without their quotes. ASCII whitespace around a `name=value` pair is not
/// part of it; `name` must not contain `;`.
///
/// Only a value found is checked as UTF-8 (one that is not is skipped), not the whole
/// header: another site's cookie with other bytes does not hide this one. What a cookie
/// holds is checked by its reader (a signature, a language tag). The pairs are found with
/// `memchr`, 32 bytes a step: splitting the header as a `str` went a character at a time,
/// and each cookie a request reads (the session, the CSRF secret, the language) paid that
/// on the whole header (bench/README.md, step 60).
pub(crate) fn cookies<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    values.into_iter().flat_map(move |header| {
        let bytes = header.as_bytes();
        let mut start = 0;
        std::iter::from_fn(move || {
            while start <= bytes.len() {
                let end = memchr::memchr(b';', &bytes[start..]).map_or(bytes.len(), |i| start + i);
                let pair = bytes[start..end].trim_ascii();
                start = end + 1;
                let value =
                    pair.strip_prefix(name.as_bytes()).and_then(|rest| rest.strip_prefix(b"="));
                if let Some(Ok(value)) = value.map(std::str::from_utf8) {
                    return Some(value.trim_matches('"'));
                }
            }
            None
        })
    })
}

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

/// The client's IP address, resolved once per request by the core layer: the TCP peer, or
/// with `--trusted-proxies` and `--client-ip-mode` the address the trusted proxies
/// forwarded (docs/guide/deployment.md, "Behind a reverse proxy"). What the access log
/// shows and what rate limits count by. `None` only for a request that came over no
/// socket (built in-process, as the test client does).
///
/// ```no_run
/// async fn whoami(burrow::ClientIp(ip): burrow::ClientIp) -> String {
///     ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    pub(crate) fn of(extensions: &Extensions) -> ClientIp {
        match extensions.get::<ClientIp>() {
            Some(ip) => *ip,
            // Outside the core layer (a router tested alone): the peer.
            None => ClientIp(PeerAddr::of(extensions).map(|a| a.ip().to_canonical())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(&parts.extensions))
    }
}

/// What a trusted proxy said about how the client reached the site: the scheme
/// (`X-Forwarded-Proto`, `Forwarded: proto=`) and the host (`X-Forwarded-Host`,
/// `Forwarded: host=`). In the request's extensions only when a trusted proxy said
/// something; never from an untrusted peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarded {
    pub(crate) https: Option<bool>,
    pub(crate) host: Option<HeaderValue>,
}

impl Forwarded {
    /// `Some(true)` if the client used https, `Some(false)` for http, `None` if unsaid.
    pub fn https(&self) -> Option<bool> {
        self.https
    }

    /// The host (and port) the client asked for, if the proxy said.
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok())
    }

    /// Whether a request is served over https as the browser sees it: always under an
    /// https base URL (so cookies stay `Secure` even if a proxy forwards plain http), and
    /// under an http one when a trusted proxy says the client used https.
    pub(crate) fn is_https(extensions: &Extensions, base_https: bool) -> bool {
        base_https || extensions.get::<Forwarded>().is_some_and(|f| f.https == Some(true))
    }

    /// The host the client asked for: a trusted proxy's word, else the Host header.
    pub(crate) fn host_of<'a>(
        extensions: &'a Extensions,
        headers: &'a axum::http::HeaderMap,
    ) -> Option<&'a str> {
        extensions
            .get::<Forwarded>()
            .and_then(Forwarded::host)
            .or_else(|| headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_in_every_header_in_order() {
        let headers = [
            HeaderValue::from_static("a=1; _session=\"first\";lang=de"),
            // Not UTF-8: skipped, the other headers and cookies still read.
            HeaderValue::from_bytes(b"_session=\xff\xfe").unwrap(),
            // UTF-8 in another cookie (visible-ASCII checks rejected the whole header).
            HeaderValue::from_bytes("note=caf\u{e9}; _session=second".as_bytes()).unwrap(),
            HeaderValue::from_static("x_session=no; _session_x=no; novalue; _session =no"),
            // Another cookie that is not UTF-8 does not hide this one; spaces and tabs
            // around a pair are not part of it, an empty value is a value.
            HeaderValue::from_bytes(b"bad=\xff;\t _session=third \t;;_session=").unwrap(),
            HeaderValue::from_static("_session"),
        ];
        let found: Vec<&str> = cookies(&headers, "_session").collect();
        assert_eq!(found, ["first", "second", "third", ""]);
        assert_eq!(cookies(&headers, "lang").collect::<Vec<_>>(), ["de"]);
        assert_eq!(cookies(&headers, "note").collect::<Vec<_>>(), ["caf\u{e9}"]);
        assert_eq!(cookies(&headers, "missing").next(), None);
        assert_eq!(cookies(&[HeaderValue::from_static("")], "_session").next(), None);
    }

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
        let given = RequestId::given(&HeaderValue::from_static("from-the-client")).unwrap();
        assert_eq!(given.as_str(), "from-the-client");
        assert_eq!(given.header_value(), "from-the-client");
        assert_eq!(a.header_value(), a.as_str());
        assert!(RequestId::given(&HeaderValue::from_static("not sane")).is_none());
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
