//! The CSRF app: every POST, PUT, PATCH and DELETE must carry a token from the form field
//! `csrf_token` or the `X-CSRF-Token` header (htmx sends it).
//!
//! The user's secret lives in a cookie signed with `CSRF_KEY` (so a planted cookie is
//! rejected; under https it is named `__Host-_csrf`, so it cannot even be planted). Tokens
//! are the secret masked with fresh random bytes on every use, so the token in a compressed
//! page changes each time (BREACH cannot recover it).
//!
//! The `Origin` header, or the `Referer` when there is no `Origin`, must be this site, as
//! in Django: the base URL's origin, or the request's scheme with its `Host` (a browser
//! sends the host it is really talking to, so this is sound, and a server reached as
//! 127.0.0.1:PORT with a base URL of localhost:PORT still works). The request's scheme is
//! the base URL's, or https when a trusted proxy says so; behind one, the host is the one
//! it forwarded (`X-Forwarded-Host`, [`crate::Forwarded`]). `Origin:
//! null` (sandboxed frames, some redirects) is refused. A request with neither header is
//! refused under https, where every browser sends one, and allowed over plain http, for
//! clients that are not browsers.
//!
//! Failures answer 403 through the error renderer; the reason is logged. A body too large
//! to read for its token is a 413, as it would be in the handler. A multipart body (an
//! upload) is read for its token as it streams in, its files spooled to disk, and handed
//! to the handler parsed: it is never held in memory whole.
//!
//! Templates get `csrf_token()` and `csrf_field()`; pages for htmx put the token in
//! `hx-headers`. Paths can be exempted (webhooks): `Csrf::new().exempt("/hooks")`.

use axum::Router;
use axum::extract::Request;
use axum::http::{Extensions, Method, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use minijinja::value::Value;

use super::securecookie::{Codec, now};
use super::session::{
    CookieName, CookieState, Cookies, append_cookie, cookie_name, generated_key, parse_keys,
};
use crate::app::App;
use crate::config::{AnySetting, Config, ConfigError, Optional, Setting};
use crate::context::AppContext;
use crate::error::Error;
use crate::forms::extract::{Encoding, Parsed, read_body};
use crate::http::around::{Around, AroundLayer};
use crate::request::{Forwarded, Scope};
use crate::template::{TemplateEnv, request_of};

/// The form field and header carrying the token.
pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
const SECRET_LEN: usize = 32;
/// The CSRF cookie lasts a year; the session does not need to exist.
const COOKIE_MAX_AGE: u64 = 365 * 24 * 3600;

const KEY: Setting<Vec<[u8; 32]>, Optional> = Setting::with_parser("csrf.key", parse_keys)
    .optional()
    .default_note("random, with a warning")
    .secret()
    .help("Signs CSRF tokens: 32 bytes as 64 hex characters");
const KEY_PREVIOUS: Setting<Vec<[u8; 32]>, Optional> =
    Setting::with_parser("csrf.key_previous", parse_keys)
        .optional()
        .secret()
        .help("Former CSRF keys still accepted (comma-separated)");
const COOKIE_NAME: Setting<String> =
    Setting::new("csrf.cookie_name").default("_csrf").help("Name of the CSRF cookie");

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

    /// Skips the check for the path `prefix` and the paths below it (e.g. a webhook that
    /// other sites post to, which authenticates its callers itself). `"/hooks"` and
    /// `"/hooks/"` both exempt `/hooks` and `/hooks/github`, never `/hooksevil`.
    pub fn exempt(mut self, prefix: impl Into<String>) -> Csrf {
        let prefix: String = prefix.into();
        self.exempt.push(prefix.trim_end_matches('/').to_string());
        self
    }

    /// The app's settings as the core stack holds them, with the session's
    /// ([`Sessions::cookie_apps`](super::session::Sessions)).
    pub(crate) fn config(&self, ctx: &AppContext) -> CsrfConfig {
        let base = &ctx.settings.base_url;
        let secure = base.starts_with("https://");
        let scheme = if secure { "https" } else { "http" };
        let authority = origin_of(base).and_then(|o| o.split_once("://")).map_or("", |(_, a)| a);
        CsrfConfig {
            codec: Codec::new(&self.keys, &[], COOKIE_MAX_AGE),
            cookie_name: CookieName::new(&self.cookie_name, secure),
            scheme,
            authority: without_default_port(authority, scheme).to_string(),
            exempt: self.exempt.clone(),
        }
    }
}

/// The CSRF app's settings, which the core stack holds with the session's
/// ([`CookieApps`](super::session::CookieApps)) and requests reach through their `Scope`:
/// the cookie's key and names, and what the check of an unsafe request compares its origin
/// and path with. (Not in the app's route layer, which axum clones for every request: its
/// reference count would be one more that every thread of the server bumps.)
pub(crate) struct CsrfConfig {
    codec: Codec,
    /// The names the cookie is sent under (`__Host-` prefixed under https).
    cookie_name: CookieName,
    /// `http` or `https`: the base URL's scheme.
    scheme: &'static str,
    /// host[:port] of the base URL, without a default port.
    authority: String,
    /// Path prefixes without their trailing `/`.
    exempt: Vec<String>,
}

impl CsrfConfig {
    fn is_exempt(&self, path: &str) -> bool {
        self.exempt.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// The name the CSRF cookie is sent under by a server with this context (for the test
/// client, burrow-test, which must tell it from other cookies).
#[doc(hidden)]
pub fn cookie_name_for(ctx: &AppContext) -> String {
    let configured = ctx.config.get(&COOKIE_NAME).unwrap_or_else(|_| "_csrf".to_string());
    cookie_name(&configured, ctx.settings.base_url.starts_with("https://"))
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
        let (state, config) = csrf_of(&parts.extensions)
            .ok_or_else(|| Error::internal("CsrfToken used, but the csrf app is not registered"))?;
        Ok(CsrfToken(config.token(state)))
    }
}

/// The request's cookie state and the CSRF app's settings, in a request that went through
/// the core stack with the CSRF app.
fn csrf_of(extensions: &Extensions) -> Option<(&CookieState, &CsrfConfig)> {
    let scope = Scope::of(extensions)?;
    let config = scope.services.cookie_apps.as_ref()?.csrf.as_ref()?;
    Some((scope.cookies.as_deref()?, config))
}

/// A request's CSRF secret (in its [`CookieState`]), read from the cookie (an HMAC check)
/// only when something needs it: a token for a page, or the check of an unsafe request. A
/// new secret is drawn only when a token is handed out without one, and only then is the
/// cookie set.
pub(crate) enum Secret {
    /// The cookie is not read yet.
    Unread,
    /// No valid cookie came with the request, and no token was handed out.
    Absent,
    /// The secret in the request's cookie.
    Existing([u8; SECRET_LEN]),
    /// A new secret that a token was made of: the response sets its cookie.
    Fresh([u8; SECRET_LEN]),
}

impl CsrfConfig {
    /// The name of the cookie for a request over https (`secure`) or not.
    fn name(&self, secure: bool) -> &str {
        self.cookie_name.get(secure)
    }

    /// The secret the request's cookie holds, if it holds a valid one.
    fn existing(&self, state: &CookieState) -> Option<[u8; SECRET_LEN]> {
        let secret = &mut state.lock().csrf;
        self.read(state, secret);
        match *secret {
            Secret::Existing(bytes) => Some(bytes),
            _ => None,
        }
    }

    fn read(&self, state: &CookieState, secret: &mut Secret) {
        if let Secret::Unread = secret {
            let name = self.name(state.secure);
            let existing = state.cookies.decode(&self.codec, name, |bytes| bytes.try_into().ok());
            *secret = existing.map_or(Secret::Absent, Secret::Existing);
        }
    }

    /// A masked token for the request's secret: different bytes on every call.
    pub(crate) fn token(&self, state: &CookieState) -> String {
        let current = {
            let secret = &mut state.lock().csrf;
            self.read(state, secret);
            match *secret {
                Secret::Existing(bytes) | Secret::Fresh(bytes) => bytes,
                Secret::Unread | Secret::Absent => {
                    let bytes = random_secret();
                    *secret = Secret::Fresh(bytes);
                    bytes
                }
            }
        };
        let mut token = [0u8; 2 * SECRET_LEN];
        let (mask, masked) = token.split_at_mut(SECRET_LEN);
        crate::random::fill_per_request(mask);
        for ((out, m), s) in masked.iter_mut().zip(mask.iter()).zip(current.iter()) {
            *out = s ^ m;
        }
        B64.encode(token)
    }

    /// The request's end, after the session's ([`CookieApps::end`](super::session::CookieApps)),
    /// under the state's lock: a login (`Session::regenerate`) gets a new secret, so tokens
    /// from before are useless; a new secret's cookie is set.
    pub(crate) fn end(&self, secure: bool, cookies: &mut Cookies, response: &mut Response) {
        if cookies.was_regenerated() {
            rotate(&mut cookies.csrf);
        }
        let name = self.name(secure);
        if let Some(secret) = to_set(&cookies.csrf)
            && let Ok(value) = self.codec.encode(name, &secret, now())
        {
            append_cookie(response, name, &value, COOKIE_MAX_AGE, secure);
        }
    }
}

/// A new secret (on login): tokens from before are useless.
fn rotate(secret: &mut Secret) {
    *secret = Secret::Fresh(random_secret());
}

/// The secret to set in the cookie: a new one that a token was made of.
fn to_set(secret: &Secret) -> Option<[u8; SECRET_LEN]> {
    match *secret {
        Secret::Fresh(bytes) => Some(bytes),
        _ => None,
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

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[&KEY, &KEY_PREVIOUS, &COOKIE_NAME]
    }

    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        let current = match config.get(&KEY)?.unwrap_or_default().into_iter().next() {
            Some(key) => key,
            None => generated_key(KEY.info(), "no CSRF key configured", "form tokens"),
        };
        self.keys = vec![current];
        self.keys.extend(config.get(&KEY_PREVIOUS)?.unwrap_or_default());
        self.cookie_name = config.get(&COOKIE_NAME)?;
        Ok(())
    }

    fn template_env(&self, env: &mut TemplateEnv) {
        // Defined even without a CSRF state (e.g. on error pages rendered outside the app
        // middleware), so layouts can always call them.
        fn token(state: &minijinja::State) -> String {
            let request = request_of(state);
            let csrf = request.as_ref().and_then(|r| csrf_of(&r.extensions));
            csrf.map(|(state, config)| config.token(state)).unwrap_or_default()
        }
        env.add_function("csrf_token", token);
        env.add_function("csrf_field", |state: &minijinja::State| {
            let token = token(state);
            Value::from_safe_string(format!(
                "<input type=\"hidden\" name=\"{FIELD}\" value=\"{token}\">"
            ))
        });
    }
}

/// `routes` with the check in front of every route: the routes the core stack sends
/// unsafe requests to (a safe request without a body goes to `routes` as they are, and
/// passes through no layer of this app). Applied by the core stack around every app's
/// middleware, so no app's middleware sees an unsafe request that failed the check.
///
/// A route layer, so an unknown path is a 404 whatever the token. In axum a route layer
/// also wraps a matched path's 405 fallback: an unsafe method that the path does not have
/// is checked like one it has (403 without a valid token, 405 with one), as Django's
/// CsrfViewMiddleware checks before the view looks at the method.
pub(crate) fn checked(routes: Router) -> Router {
    routes.route_layer(AroundLayer(CsrfLayer))
}

/// Whether requests with `method` go without the check: the methods that must not change
/// anything (RFC 9110's safe methods).
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// An unsafe request's origin and token checked (its body read for the token) before the
/// routes see it. The request's secret is in its [`CookieState`], which the core stack
/// makes, and which sets the cookie after the routes; the settings are the core stack's
/// too ([`csrf_of`]).
#[derive(Clone)]
struct CsrfLayer;

impl Around for CsrfLayer {
    type State = ();

    fn before(&self, _request: &mut Request) {}

    fn needs_check(&self, request: &Request) -> bool {
        // Without the core stack's settings, checked (and refused).
        let exempt = |(_, config): (_, &CsrfConfig)| config.is_exempt(request.uri().path());
        !is_safe(request.method()) && !csrf_of(request.extensions()).is_some_and(exempt)
    }

    async fn check(&self, request: Request, _state: &()) -> Result<Request, Response> {
        match verify(request).await {
            Ok(checked) => Ok(checked),
            Err(Refused::Check(reason)) => {
                tracing::warn!(reason = %reason, "CSRF check failed");
                Err(Error::forbidden(
                    "The form has expired or did not come from this site. Reload the page and try \
                     again.",
                )
                .translate("error-csrf")
                .into_response())
            }
            Err(Refused::Body(error)) => Err(error.into_response()),
        }
    }

    fn after(&self, _state: (), response: Response) -> Response {
        response
    }
}

/// Why an unsafe request was not let through.
enum Refused {
    /// The CSRF check failed (403); the reason is for the log.
    Check(String),
    /// The body, read for its token, could not be read (413 when too large, else 400).
    Body(Error),
}

impl From<&str> for Refused {
    fn from(reason: &str) -> Refused {
        Refused::Check(reason.to_string())
    }
}

/// Checks origin and token; gives the request back (with its body, if it was read).
async fn verify(request: Request) -> Result<Request, Refused> {
    let (state, config) = csrf_of(request.extensions())
        .ok_or("no CSRF state: the request did not come through the core stack")?;
    check_origin(config, state.secure, &request).map_err(Refused::Check)?;
    let secret = config.existing(state).ok_or("no valid CSRF cookie")?;
    let secret = &secret;
    let (token, request) = match request.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) => (token.to_string(), request),
        None => form_token(request).await.map_err(Refused::Body)?,
    };
    if token.is_empty() {
        return Err("no CSRF token in the form or the X-CSRF-Token header".into());
    }
    if !matches(&token, secret) {
        return Err("the CSRF token does not match the CSRF cookie".into());
    }
    Ok(request)
}

/// The Origin (or, without one, the Referer's origin) must be this site; see the module
/// documentation. The error is the reason, for the log: it names origins, never a whole
/// Referer, whose path and query may hold secrets.
fn check_origin(config: &CsrfConfig, secure: bool, request: &Request) -> Result<(), String> {
    let headers = request.headers();
    let (header, claimed) = if let Some(origin) = headers.get(header::ORIGIN) {
        ("Origin", origin.to_str().map_err(|_| "the Origin header is not ASCII")?)
    } else if let Some(referer) = headers.get(header::REFERER) {
        let referer = referer.to_str().map_err(|_| "the Referer header is not ASCII")?;
        ("Referer", origin_of(referer).ok_or("the Referer header is not an absolute URL")?)
    } else if secure {
        return Err("no Origin or Referer header on an https request".into());
    } else {
        return Ok(());
    };
    if claimed == "null" {
        return Err("Origin null (a sandboxed page, a file or a cross-site redirect)".into());
    }
    // Under HTTP/2 the host travels in the URI (`:authority`), not in a Host header.
    let host = Forwarded::host_of(request.extensions(), headers)
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let scheme = if secure { "https" } else { "http" };
    if is_origin(claimed, config.scheme, &config.authority)
        || host.is_some_and(|host| is_origin(claimed, scheme, host))
    {
        return Ok(());
    }
    // Both come from the client: kept short in the log.
    let short = |text: &str| text.chars().take(200).collect::<String>();
    Err(format!(
        "{header} {} is neither the base URL's origin nor {scheme}://{}",
        short(claimed),
        short(host.unwrap_or("(no host)"))
    ))
}

/// `scheme://authority` of an absolute URL: what comes before its path, query or fragment.
#[doc(hidden)]
pub fn origin_of(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..].find(['/', '?', '#']).map_or(url.len(), |at| after_scheme + at);
    Some(&url[..end])
}

/// True if `origin` is `scheme://authority`, ignoring case and a default port on either.
fn is_origin(origin: &str, scheme: &str, authority: &str) -> bool {
    let Some((origin_scheme, origin_authority)) = origin.split_once("://") else {
        return false;
    };
    !authority.is_empty()
        && origin_scheme.eq_ignore_ascii_case(scheme)
        && without_default_port(origin_authority, scheme)
            .eq_ignore_ascii_case(without_default_port(authority, scheme))
}

/// `host:443` under https and `host:80` under http are `host`, as browsers write origins.
fn without_default_port<'a>(authority: &'a str, scheme: &str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Reads the `csrf_token` field of a urlencoded or multipart form, then rebuilds the
/// request with the same body for the handler, and with the parsed fields, which the
/// handler's form extractor takes instead of parsing the body again.
async fn form_token(request: Request) -> Result<(String, Request), Error> {
    let Some(encoding) = Encoding::of(&request) else {
        return Ok((String::new(), request));
    };
    let (data, mut request) = read_body(request, encoding).await?;
    // A body that does not parse carries no token (403); the handler never sees it.
    let Ok(data) = data else {
        return Ok((String::new(), request));
    };
    let token = data.get(FIELD).unwrap_or_default().to_string();
    request.extensions_mut().insert(Parsed(data));
    Ok((token, request))
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
    crate::random::fill(&mut secret);
    secret
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contrib::session::RequestCookies;
    use axum::body::Body;

    fn test_config(exempt: Vec<String>) -> CsrfConfig {
        CsrfConfig {
            codec: Codec::new(&[[1; 32]], &[], 60),
            cookie_name: CookieName::new("_csrf", false),
            scheme: "http",
            authority: "localhost".into(),
            exempt,
        }
    }

    /// The state of a request whose `Cookie` header is `cookie`.
    fn state_for(cookie: &str) -> CookieState {
        let request = Request::get("/").header(header::COOKIE, cookie).body(Body::empty());
        CookieState::new(RequestCookies::of(request.unwrap().headers()), false)
    }

    #[test]
    fn masked_tokens_differ_but_match() {
        let csrf = test_config(Vec::new());
        let signed = csrf.codec.encode("_csrf", &[7; 32], now()).unwrap();
        let state = state_for(&format!("other=1; _csrf={signed}"));
        let (a, b) = (csrf.token(&state), csrf.token(&state));
        assert_ne!(a, b);
        assert!(matches(&a, &[7; 32]) && matches(&b, &[7; 32]));
        assert!(!matches(&a, &[8; 32]));
        assert!(!matches("", &[7; 32]));
        assert!(!matches("not base64 !!", &[7; 32]));
        assert!(!matches(&a[..a.len() - 2], &[7; 32]));
        assert_eq!(csrf.existing(&state), Some([7; 32]));
        assert!(to_set(&state.lock().csrf).is_none(), "the cookie's secret is not set again");
    }

    #[test]
    fn a_secret_is_drawn_and_set_only_when_a_token_is_handed_out() {
        let csrf = test_config(Vec::new());
        let untouched = state_for("_session=x");
        assert!(matches!(untouched.lock().csrf, Secret::Unread), "the cookie was never read");

        let forged = state_for("_csrf=AAAA.BBBB.CCCC");
        assert_eq!(csrf.existing(&forged), None, "an unsigned cookie is no secret");
        let token = csrf.token(&forged);
        let fresh = to_set(&forged.lock().csrf).expect("a new secret to set");
        assert!(matches(&token, &fresh));
        assert!(
            matches(&csrf.token(&forged), &fresh),
            "the same secret for the rest of the request"
        );

        let signed = csrf.codec.encode("_csrf", &[7; 32], now()).unwrap();
        let login = state_for(&format!("_csrf={signed}"));
        rotate(&mut login.lock().csrf);
        let rotated = to_set(&login.lock().csrf).expect("a rotated secret is set");
        assert_ne!(rotated, [7; 32]);
        assert!(!matches(&csrf.token(&login), &[7; 32]));
    }

    #[test]
    fn origins_match_the_base_url_or_the_host() {
        assert_eq!(origin_of("https://a.example:8443/x?y#z"), Some("https://a.example:8443"));
        assert_eq!(origin_of("http://a.example?q"), Some("http://a.example"));
        assert_eq!(origin_of("https://a.example"), Some("https://a.example"));
        assert_eq!(origin_of("/relative"), None);
        assert!(is_origin("https://A.example", "https", "a.example:443"));
        assert!(is_origin("http://127.0.0.1:8080", "http", "127.0.0.1:8080"));
        assert!(is_origin("http://a.example:80", "http", "a.example"));
        assert!(!is_origin("https://a.example", "http", "a.example"), "scheme differs");
        assert!(!is_origin("http://a.example:8080", "http", "a.example"), "port differs");
        assert!(!is_origin("http://a.example.evil.example", "http", "a.example"));
        assert!(!is_origin("null", "http", "a.example"));
        assert!(!is_origin("http://", "http", ""), "no authority");
    }

    #[test]
    fn exempt_prefixes_end_on_a_path_segment() {
        let csrf = Csrf::new().exempt("/hooks/").exempt("/api");
        let config = test_config(csrf.exempt);
        for path in ["/hooks", "/hooks/", "/hooks/github", "/api", "/api/v1/x"] {
            assert!(config.is_exempt(path), "{path}");
        }
        for path in ["/hooksevil", "/hook", "/apis", "/", "/notes/hooks"] {
            assert!(!config.is_exempt(path), "{path}");
        }
    }

    /// A request with `body` as `content_type`.
    fn post(content_type: &str, body: &'static str) -> Request {
        let request = Request::post("/").header(header::CONTENT_TYPE, content_type);
        request.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn the_token_is_read_from_urlencoded_and_multipart_forms_and_the_body_kept() {
        let urlencoded = "title=x&csrf_token=abc%2Bd&content=y";
        let form = post("application/x-www-form-urlencoded", urlencoded);
        let (token, request) = form_token(form).await.unwrap();
        assert_eq!(token, "abc+d");
        let (parts, body) = request.into_parts();
        let kept = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(kept, urlencoded.as_bytes());
        // The handler's extractor takes the fields parsed here, not the body again.
        let garbled = Request::from_parts(parts, Body::from("%%% not a form"));
        let data = crate::forms::extract::read(garbled).await.unwrap();
        assert_eq!((data.get("title"), data.get("content")), (Some("x"), Some("y")));

        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\nabc+d\r\n\
             --XyZ--\r\n";
        let form = post("multipart/form-data; boundary=XyZ", multipart);
        let (token, request) = form_token(form).await.unwrap();
        assert_eq!(token, "abc+d");
        // A multipart body was read as it streamed in: its fields travel parsed, not as
        // bytes held in memory.
        let data = crate::forms::extract::read(request).await.unwrap();
        assert_eq!((data.get("title"), data.get(FIELD)), (Some("x"), Some("abc+d")));

        for (content_type, body) in [
            ("application/x-www-form-urlencoded", "title=x"),
            ("multipart/form-data; boundary=XyZ", "not multipart at all"),
            ("text/plain", "csrf_token=abc"),
        ] {
            let (token, _) = form_token(post(content_type, body)).await.unwrap();
            assert_eq!(token, "", "{content_type}: {body}");
        }
    }
}
