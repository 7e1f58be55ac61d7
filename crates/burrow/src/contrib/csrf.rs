//! The CSRF app: every POST, PUT, PATCH and DELETE must carry a token from the form field
//! `csrf_token` or the `X-CSRF-Token` header (htmx sends it).
//!
//! The user's secret lives in a cookie signed with `CSRF_KEY` (so a planted cookie is
//! rejected). Tokens are the secret masked with fresh random bytes on every use, so the
//! token in a compressed page changes each time (BREACH cannot recover it). Under https
//! the `Origin` (or `Referer`) must also match the base URL. Failures answer 403 through
//! the error renderer; the reason is logged.
//!
//! Templates get `csrf_token()` and `csrf_field()`; pages for htmx put the token in
//! `hx-headers`. Paths can be exempted (webhooks): `Csrf::new().exempt("/hooks/")`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use minijinja::value::Value;
use ring::rand::{SecureRandom, SystemRandom};

use super::securecookie::{Codec, now};
use super::session::{Session, append_cookie, cookie, generated_key, keys};
use crate::app::{App, AppContext};
use crate::config::{Config, ConfigError, Setting};
use crate::error::Error;
use crate::template::{RequestContext, RequestInfo};

/// The form field and header carrying the token.
pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
const SECRET_LEN: usize = 32;
/// The CSRF cookie lasts a year; the session does not need to exist.
const COOKIE_MAX_AGE: u64 = 365 * 24 * 3600;

/// Registers CSRF protection for every unsafe request.
#[derive(Default)]
pub struct Csrf {
    keys: Vec<[u8; 32]>,
    cookie_name: String,
    exempt: Vec<String>,
}

impl Csrf {
    pub fn new() -> Csrf {
        Csrf::default()
    }

    /// Skips the check for paths starting with `prefix` (e.g. a webhook that other sites
    /// post to, which authenticates its callers itself).
    pub fn exempt(mut self, prefix: impl Into<String>) -> Csrf {
        self.exempt.push(prefix.into());
        self
    }
}

struct CsrfConfig {
    codec: Codec,
    cookie_name: String,
    secure: bool,
    /// scheme://host[:port] of the base URL, for the Origin check under https.
    origin: String,
    exempt: Vec<String>,
}

/// A fresh masked CSRF token for this request, for clients that send it in the
/// `X-CSRF-Token` header (JavaScript, APIs) rather than in a rendered form.
pub struct CsrfToken(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CsrfToken {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let state = parts
            .extensions
            .get::<CsrfState>()
            .ok_or_else(|| Error::internal("CsrfToken used, but the csrf app is not registered"))?;
        Ok(CsrfToken(state.token()))
    }
}

/// This request's CSRF secret; the cookie is set only if a new secret was handed out.
#[derive(Clone)]
pub(crate) struct CsrfState(Arc<Inner>);

struct Inner {
    secret: std::sync::Mutex<[u8; SECRET_LEN]>,
    fresh: AtomicBool,
    used: AtomicBool,
}

impl CsrfState {
    /// A masked token for the current secret: different bytes on every call.
    pub(crate) fn token(&self) -> String {
        self.0.used.store(true, Ordering::Relaxed);
        let secret = *self.0.secret.lock().expect("csrf poisoned");
        let mut mask = [0u8; SECRET_LEN];
        SystemRandom::new().fill(&mut mask).expect("system random");
        let mut out = mask.to_vec();
        out.extend(secret.iter().zip(mask.iter()).map(|(s, m)| s ^ m));
        B64.encode(out)
    }
}

impl App for Csrf {
    fn name(&self) -> &'static str {
        "csrf"
    }

    /// Session middleware runs outside this app's, so `Session::regenerate` can rotate
    /// the CSRF secret.
    fn dependencies(&self) -> &'static [&'static str] {
        &["session"]
    }

    fn settings(&self) -> Vec<Setting> {
        vec![
            Setting::new(
                "csrf.key",
                "csrf-key",
                "CSRF_KEY",
                "Signs CSRF tokens: 32 bytes as 64 hex characters",
            )
            .default_note("random, with a warning")
            .secret(),
            Setting::new(
                "csrf.key_previous",
                "csrf-key-previous",
                "CSRF_KEY_PREVIOUS",
                "Former CSRF keys still accepted (comma-separated)",
            )
            .default_note("none")
            .secret(),
            Setting::new(
                "csrf.cookie_name",
                "csrf-cookie-name",
                "CSRF_COOKIE_NAME",
                "Name of the CSRF cookie",
            )
            .default("_csrf"),
        ]
    }

    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        let current = match keys(config, "csrf.key")?.into_iter().next() {
            Some(key) => key,
            None => generated_key(
                "csrf.key",
                "no CSRF key configured (--csrf-key, CSRF_KEY or csrf.key)",
                "form tokens",
            ),
        };
        self.keys = vec![current];
        self.keys.extend(keys(config, "csrf.key_previous")?);
        self.cookie_name = config.require("csrf.cookie_name")?;
        Ok(())
    }

    fn middleware(&self, router: Router, ctx: &AppContext) -> Router {
        let base = &ctx.settings.base_url;
        let origin = match base.find("://") {
            Some(i) => {
                base[..i + 3 + base[i + 3..].find('/').unwrap_or(base.len() - i - 3)].to_string()
            }
            None => base.clone(),
        };
        let config = Arc::new(CsrfConfig {
            codec: Codec::new(&self.keys, &[], COOKIE_MAX_AGE),
            cookie_name: self.cookie_name.clone(),
            secure: base.starts_with("https://"),
            origin,
            exempt: self.exempt.clone(),
        });
        // A route layer: an unknown path is still a 404 and a wrong method a 405, checked
        // before the token.
        router.route_layer(from_fn(move |request: Request, next: Next| {
            csrf_middleware(config.clone(), request, next)
        }))
    }

    fn request_context(&self, request: &RequestInfo, context: &mut RequestContext) {
        // Defined even without a CSRF state (e.g. on error pages rendered outside the app
        // middleware), so layouts can always call them.
        let state = request.extensions.get::<CsrfState>().cloned();
        let for_token = state.clone();
        context.function("csrf_token", move || {
            for_token.as_ref().map(CsrfState::token).unwrap_or_default()
        });
        context.function("csrf_field", move || {
            let token = state.as_ref().map(CsrfState::token).unwrap_or_default();
            Value::from_safe_string(format!(
                "<input type=\"hidden\" name=\"{FIELD}\" value=\"{token}\">"
            ))
        });
    }
}

async fn csrf_middleware(config: Arc<CsrfConfig>, request: Request, next: Next) -> Response {
    let existing: Option<[u8; SECRET_LEN]> = cookie(request.headers(), &config.cookie_name)
        .and_then(|v| config.codec.decode(&config.cookie_name, v, now()))
        .and_then(|bytes| bytes.try_into().ok());
    let unsafe_method =
        !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
    let exempt = config.exempt.iter().any(|p| request.uri().path().starts_with(p.as_str()));
    let mut request = request;
    if unsafe_method && !exempt {
        match verify(&config, existing.as_ref(), request).await {
            Ok(checked) => request = checked,
            Err(reason) => {
                tracing::warn!(reason = %reason, "CSRF check failed");
                return Error::forbidden("The form has expired or did not come from this site. Reload the page and try again.")
                    .into_response();
            }
        }
    }
    let state = CsrfState(Arc::new(Inner {
        secret: std::sync::Mutex::new(existing.unwrap_or_else(random_secret)),
        fresh: AtomicBool::new(existing.is_none()),
        used: AtomicBool::new(false),
    }));
    let session = request.extensions().get::<Session>().cloned();
    request.extensions_mut().insert(state.clone());
    let mut response = next.run(request).await;
    // A login (Session::regenerate) gets a new secret: tokens from before are useless.
    if session.is_some_and(|s| s.was_regenerated()) {
        *state.0.secret.lock().expect("csrf poisoned") = random_secret();
        state.0.fresh.store(true, Ordering::Relaxed);
        state.0.used.store(true, Ordering::Relaxed);
    }
    if state.0.fresh.load(Ordering::Relaxed) && state.0.used.load(Ordering::Relaxed) {
        let secret = *state.0.secret.lock().expect("csrf poisoned");
        if let Ok(value) = config.codec.encode(&config.cookie_name, &secret, now()) {
            append_cookie(
                &mut response,
                &config.cookie_name,
                &value,
                COOKIE_MAX_AGE,
                config.secure,
            );
        }
    }
    response
}

/// Checks origin and token; gives the request back (with its body, if it was read).
async fn verify(
    config: &CsrfConfig,
    secret: Option<&[u8; SECRET_LEN]>,
    request: Request,
) -> Result<Request, String> {
    if config.secure {
        let headers = request.headers();
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
        match (origin, referer) {
            (Some(o), _) if o == config.origin => {}
            (Some(o), _) => return Err(format!("Origin {o} is not {}", config.origin)),
            (None, Some(r))
                if r.strip_prefix(config.origin.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) => {}
            (None, Some(_)) => return Err("Referer is from another site".into()),
            (None, None) => return Err("no Origin or Referer header on an https request".into()),
        }
    }
    let secret = secret.ok_or("no valid CSRF cookie")?;
    let (token, request) = match request.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) => (token.to_string(), request),
        None => form_token(request).await?,
    };
    if token.is_empty() {
        return Err("no CSRF token in the form or the X-CSRF-Token header".into());
    }
    if !matches(&token, secret) {
        return Err("the CSRF token does not match the CSRF cookie".into());
    }
    Ok(request)
}

/// Reads the `csrf_token` field of a urlencoded form, then rebuilds the request with the
/// same body for the handler.
async fn form_token(request: Request) -> Result<(String, Request), String> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((String::new(), request));
    }
    let (parts, body) = request.into_parts();
    // The core body limit already wraps this body; exceeding it fails here.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| format!("cannot read the form: {e}"))?;
    let token = form_urlencoded_value(&bytes, FIELD).unwrap_or_default();
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Unmasks a token and compares it with the secret in constant time.
pub fn matches(token: &str, secret: &[u8; SECRET_LEN]) -> bool {
    let Ok(bytes) = B64.decode(token.trim()) else { return false };
    if bytes.len() != 2 * SECRET_LEN {
        return false;
    }
    let (mask, masked) = bytes.split_at(SECRET_LEN);
    let diff =
        masked.iter().zip(mask).zip(secret).fold(0u8, |acc, ((m, k), s)| acc | ((m ^ k) ^ s));
    diff == 0
}

fn random_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    SystemRandom::new().fill(&mut secret).expect("system random");
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_tokens_differ_but_match() {
        let state = CsrfState(Arc::new(Inner {
            secret: std::sync::Mutex::new([7; 32]),
            fresh: AtomicBool::new(false),
            used: AtomicBool::new(false),
        }));
        let (a, b) = (state.token(), state.token());
        assert_ne!(a, b);
        assert!(matches(&a, &[7; 32]) && matches(&b, &[7; 32]));
        assert!(!matches(&a, &[8; 32]));
        assert!(!matches("", &[7; 32]));
        assert!(!matches("not base64 !!", &[7; 32]));
        assert!(!matches(&a[..a.len() - 2], &[7; 32]));
    }

    #[test]
    fn form_field_is_found() {
        assert_eq!(
            form_urlencoded_value(b"title=x&csrf_token=abc%2Bd&content=y", FIELD).as_deref(),
            Some("abc+d")
        );
        assert_eq!(form_urlencoded_value(b"title=x", FIELD), None);
    }
}
