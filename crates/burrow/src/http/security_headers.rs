//! Security headers on every response the server sends: pages, static files, redirects and
//! errors from any layer (404, 405, 413, 503, …).
//!
//! Always: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//! `Referrer-Policy: strict-origin-when-cross-origin`, `Cross-Origin-Opener-Policy:
//! same-origin`. With an https base URL: `Strict-Transport-Security` (two years,
//! subdomains, `preload` with `--hsts-preload`). From the settings:
//! `Content-Security-Policy` (with `frame-ancestors 'none'` appended when it names no
//! `frame-ancestors`, so a CSP-aware browser refuses framing like X-Frame-Options does) and
//! `Permissions-Policy`.
//!
//! A header the response already carries is left alone: that is the per-route override. A
//! handler returns `([(header::X_FRAME_OPTIONS, "SAMEORIGIN")], page)`, or a route layer
//! sets it for a group of routes. Browsers that know CSP's `frame-ancestors` ignore
//! `X-Frame-Options`, so with a configured CSP a route that may be framed sets its own
//! `Content-Security-Policy` as well.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;

use super::around::{Around, AroundLayer};

use crate::settings::Settings;

/// Two years, subdomains included: what the HSTS preload list asks for.
const HSTS: &str = "max-age=63072000; includeSubDomains";
const HSTS_PRELOAD: &str = "max-age=63072000; includeSubDomains; preload";

/// Wraps `router` so that every response it gives carries the security headers (the ACME
/// HTTP port's router, which is not behind the core stack; the core stack has the
/// [`SecurityHeaders`] layer).
pub(crate) fn security_headers(router: Router, settings: &Settings) -> Router {
    router.layer(AroundLayer(SecurityHeaders::from_settings(settings)))
}

/// Adds the headers to every response: an [`Around`] layer, so no boxed future per
/// request; the headers are built once and cloning them per response copies a pointer or
/// bumps a refcount.
impl Around for SecurityHeaders {
    type State = ();

    fn before(&self, _request: &mut Request) {}

    fn after(&self, _state: (), mut response: Response) -> Response {
        self.add_missing(response.headers_mut());
        response
    }
}

/// The headers, built once from the settings.
#[derive(Clone)]
pub(crate) struct SecurityHeaders(Arc<[(HeaderName, HeaderValue)]>);

impl SecurityHeaders {
    pub(crate) fn from_settings(settings: &Settings) -> SecurityHeaders {
        let mut headers = vec![
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ];
        if settings.base_url.starts_with("https://") {
            let hsts = if settings.security.hsts_preload { HSTS_PRELOAD } else { HSTS };
            headers.push((header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(hsts)));
        }
        let configured = [
            (
                header::CONTENT_SECURITY_POLICY,
                settings.security.content_security_policy.as_deref().map(with_frame_ancestors),
            ),
            (
                HeaderName::from_static("permissions-policy"),
                settings.security.permissions_policy.clone(),
            ),
        ];
        for (name, value) in configured {
            let Some(value) = value else { continue };
            // Settings only accept printable ASCII, so this holds; should it not, the header is
            // better missing than the server down.
            match HeaderValue::from_str(&value) {
                Ok(value) => headers.push((name, value)),
                Err(_) => tracing::error!("{name} not sent: the value is not a valid header value"),
            }
        }
        SecurityHeaders(headers.into())
    }

    /// How many headers a response gets (fewer when it has some of them already).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn add_missing(&self, response: &mut HeaderMap) {
        // One growth of the map at most, instead of one per header.
        response.reserve(self.0.len());
        for (name, value) in self.0.iter() {
            response.entry(name).or_insert_with(|| value.clone());
        }
    }
}

/// The policy with `frame-ancestors 'none'` appended, unless it has a `frame-ancestors`
/// directive of its own.
fn with_frame_ancestors(policy: &str) -> String {
    let has_directive = policy.split(';').any(|directive| {
        directive
            .split_ascii_whitespace()
            .next()
            .is_some_and(|name| name.eq_ignore_ascii_case("frame-ancestors"))
    });
    if has_directive {
        return policy.to_string();
    }
    let policy = policy.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    if policy.is_empty() {
        "frame-ancestors 'none'".to_string()
    } else {
        format!("{policy}; frame-ancestors 'none'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_is_appended_unless_present() {
        assert_eq!(
            with_frame_ancestors("default-src 'self'"),
            "default-src 'self'; frame-ancestors 'none'"
        );
        assert_eq!(
            with_frame_ancestors("default-src 'self'; img-src *;  "),
            "default-src 'self'; img-src *; frame-ancestors 'none'"
        );
        assert_eq!(
            with_frame_ancestors("default-src 'self'; Frame-Ancestors 'self'"),
            "default-src 'self'; Frame-Ancestors 'self'"
        );
        // A directive's value that merely mentions the name is not the directive.
        assert_eq!(
            with_frame_ancestors("report-uri /frame-ancestors"),
            "report-uri /frame-ancestors; frame-ancestors 'none'"
        );
    }
}
