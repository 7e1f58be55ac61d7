//! The session app: the whole session in one signed (and optionally encrypted) cookie.
//!
//! Keys come from `--session-hash-key` / `SESSION_HASH_KEY` / `session.hash_key` (signs,
//! HMAC-SHA256) and `--session-block-key` (encrypts, AES-256-GCM), 32 bytes as 64 hex
//! characters; `…-previous` settings accept older keys for reading during a rotation. A
//! missing hash key is generated (with one warning): sessions then survive a SIGHUP
//! restart (the key is handed over) but not a stop/start.
//!
//! Under an https base URL the cookie is `Secure` and named `__Host-` + the configured name
//! (`__Host-_session`), which no other site and no one on plain http can set; so it is on
//! a request a trusted proxy says came over https (`X-Forwarded-Proto`, see
//! [`crate::Forwarded`]). Of several cookies of that name in a request, the first one that
//! validates is used.
//!
//! ```no_run
//! use burrow::contrib::session::Session;
//! async fn visits(session: Session) -> Result<String, burrow::Error> {
//!     let n: u32 = session.get("visits").unwrap_or(0) + 1;
//!     session.insert("visits", n)?;
//!     Ok(format!("visit number {n}"))
//! }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::csrf::{CsrfConfig, Secret};
use super::securecookie::{Codec, MAX_COOKIE_SIZE, TooLarge, now, parse_key};
use crate::app::App;
use crate::config::{AnySetting, Config, ConfigError, Optional, Setting, SettingInfo};
use crate::context::AppContext;
use crate::error::Error;
use crate::request::{Forwarded, Scope};

const COOKIE_NAME: Setting<String> =
    Setting::new("session.cookie_name").default("_session").help("Name of the session cookie");
const MAX_AGE: Setting<u64> =
    Setting::new("session.max_age").default("604800").help("Session lifetime in seconds");
const HASH_KEY: Setting<Vec<[u8; 32]>, Optional> =
    Setting::with_parser("session.hash_key", parse_keys)
        .optional()
        .default_note("random, with a warning")
        .secret()
        .help("Signs session cookies: 32 bytes as 64 hex characters");
const BLOCK_KEY: Setting<Vec<[u8; 32]>, Optional> =
    Setting::with_parser("session.block_key", parse_keys)
        .optional()
        .default_note("none: signed, not encrypted")
        .secret()
        .help("Encrypts session cookies: 32 bytes as 64 hex characters");
const HASH_KEY_PREVIOUS: Setting<Vec<[u8; 32]>, Optional> =
    Setting::with_parser("session.hash_key_previous", parse_keys)
        .optional()
        .secret()
        .help("Former hash keys still accepted when reading (comma-separated), for key rotation");
const BLOCK_KEY_PREVIOUS: Setting<Vec<[u8; 32]>, Optional> =
    Setting::with_parser("session.block_key_previous", parse_keys)
        .optional()
        .secret()
        .help("Former block keys still accepted when reading (comma-separated)");

/// Registers signed cookie sessions. Other apps get a [`Session`] extractor.
#[derive(Default)]
pub struct Sessions {
    keys: Option<Keys>,
    cookie_name: String,
    max_age: u64,
}

struct Keys {
    hash: Vec<[u8; 32]>,
    block: Vec<[u8; 32]>,
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }
}

/// The session cookie's keys, lifetime and names.
struct SessionConfig {
    codec: Codec,
    cookie_name: CookieName,
}

impl App for Sessions {
    fn name(&self) -> &'static str {
        "session"
    }

    fn settings(&self) -> &'static [&'static dyn AnySetting] {
        &[&COOKIE_NAME, &MAX_AGE, &HASH_KEY, &BLOCK_KEY, &HASH_KEY_PREVIOUS, &BLOCK_KEY_PREVIOUS]
    }

    fn configure(&mut self, config: &Config) -> Result<(), ConfigError> {
        let cookie_name = config.get(&COOKIE_NAME)?;
        if cookie_name.is_empty()
            || !cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(config.error(&COOKIE_NAME, "expected letters, digits, '_', '-' or '.'"));
        }
        let max_age = config.get(&MAX_AGE)?;
        if max_age == 0 {
            return Err(config.error(&MAX_AGE, "must be at least 1 second"));
        }
        let hash = match config.get(&HASH_KEY)?.unwrap_or_default().into_iter().next() {
            Some(key) => key,
            None => generated_key(HASH_KEY.info(), "no session hash key configured", "sessions"),
        };
        let mut hash_keys = vec![hash];
        hash_keys.extend(config.get(&HASH_KEY_PREVIOUS)?.unwrap_or_default());
        let mut block_keys = config.get(&BLOCK_KEY)?.unwrap_or_default();
        block_keys.truncate(1);
        let previous_block = config.get(&BLOCK_KEY_PREVIOUS)?.unwrap_or_default();
        if block_keys.is_empty() && !previous_block.is_empty() {
            return Err(config.error(
                &BLOCK_KEY_PREVIOUS,
                "previous block keys need a current --session-block-key",
            ));
        }
        block_keys.extend(previous_block);
        self.keys = Some(Keys { hash: hash_keys, block: block_keys });
        self.cookie_name = cookie_name;
        self.max_age = max_age;
        Ok(())
    }

    // No `middleware`: the core stack makes each request's session state and writes the
    // cookie back ([`Sessions::cookie_apps`]), where it costs a request no boxed route
    // level.
}

impl Sessions {
    /// The session's (and, when `csrf` is given, the CSRF app's) cookies as the core stack
    /// handles them: it makes each request's [`CookieState`] and, after the routes, writes
    /// the cookies back ([`CookieApps::end`]).
    pub(crate) fn cookie_apps(&self, ctx: &AppContext, csrf: Option<CsrfConfig>) -> CookieApps {
        let keys = self.keys.as_ref().expect("configure ran before the stack was built");
        CookieApps {
            session: SessionConfig {
                codec: Codec::new(&keys.hash, &keys.block, self.max_age),
                cookie_name: CookieName::new(
                    &self.cookie_name,
                    ctx.settings.base_url.starts_with("https://"),
                ),
            },
            csrf,
        }
    }
}

/// Parses a key setting: one key, or several separated by commas (for `…_previous`).
pub(crate) fn parse_keys(raw: &str) -> Result<Vec<[u8; 32]>, String> {
    raw.split(',').map(str::trim).filter(|k| !k.is_empty()).map(parse_key).collect()
}

/// The key `setting` would have held, generated because none was configured (named by
/// the setting's key, so `server check` can name the setting); warns once, never printing
/// the key.
pub(crate) fn generated_key(setting: &SettingInfo, missing: &str, what: &str) -> [u8; 32] {
    let name = setting.key();
    let key: [u8; 32] = crate::secrets::generated(name, 32).try_into().expect("32 bytes");
    let origin = if crate::secrets::was_inherited(name) {
        "kept from the previous process"
    } else if crate::secrets::from_dev_file(name) {
        "kept in .burrow-dev-keys by --dev"
    } else {
        "generated at random"
    };
    let lasts = if crate::secrets::dev_file_in_use() {
        "survive restarts (--dev keeps the key in .burrow-dev-keys)"
    } else {
        "survive SIGHUP restarts but not a stop/start"
    };
    crate::secrets::warn_once_started(format!(
        "{missing} ({}): using a key {origin}; {what} {lasts}. Set a key of 64 hex characters \
         for production.",
        setting.ways_to_set()
    ));
    key
}

/// The session and CSRF apps' cookie settings, which the core stack holds (when the
/// sessions app is installed) to make every request's [`CookieState`] and to write the
/// cookies back after the routes. Neither step waits.
pub(crate) struct CookieApps {
    session: SessionConfig,
    /// The CSRF app's settings, when that app is installed.
    pub(crate) csrf: Option<CsrfConfig>,
}

impl CookieApps {
    /// The request's cookie state, which handlers, templates and the CSRF check reach
    /// through the request's [`Scope`]. Nothing is decoded yet: most requests never look
    /// at the session or the CSRF secret.
    pub(crate) fn begin(&self, request: &Request) -> CookieState {
        let secure = self.session.cookie_name.is_https(request.extensions());
        CookieState::new(RequestCookies::of(request.headers()), secure)
    }

    /// After the routes: the session's cookie rewritten if the session changed; the CSRF
    /// secret rotated if a login regenerated the session, and its cookie set when the
    /// request handed out tokens of a new secret.
    pub(crate) fn end(&self, state: &CookieState, mut response: Response) -> Response {
        let mut locked = state.lock();
        // Most requests change neither: one check, under one lock.
        if !locked.session.changed && !matches!(locked.csrf, Secret::Fresh(_)) {
            return response;
        }
        self.end_session(state, &mut locked.session, &mut response);
        if let Some(csrf) = &self.csrf {
            csrf.end(state.secure, &mut locked, &mut response);
        }
        response
    }

    fn end_session(&self, state: &CookieState, session: &mut State, response: &mut Response) {
        let config = &self.session;
        let name = config.cookie_name.get(state.secure);
        // Serialized only when the cookie is rewritten: most requests leave the session
        // alone.
        let encoded = {
            if !session.changed {
                return;
            }
            let (data, existed) = session.read(config, &state.cookies, name);
            if data.is_empty() && !existed {
                return;
            }
            (!data.is_empty()).then(|| serde_json::to_vec(data))
        };
        let (value, max_age) = match encoded {
            None => (String::new(), 0),
            Some(encoded) => {
                let encoded = encoded.map_err(|e| e.to_string()).and_then(|bytes| {
                    config.codec.encode(name, &bytes, now()).map_err(|e| e.to_string())
                });
                match encoded {
                    Ok(value) => (value, config.codec.max_age()),
                    // `insert` refuses what does not fit, so this is not expected; if it
                    // happens, the handler's work (often a committed write) still gets its
                    // answer.
                    Err(e) => {
                        tracing::error!("session cookie not written: {e}");
                        return;
                    }
                }
            }
        };
        append_cookie(response, name, &value, max_age, state.secure);
    }
}

/// One request's session and CSRF state: the `Cookie` headers it came with, and what the
/// request read or changed of the session and the CSRF secret. One allocation per request,
/// shared by the request's [`Scope`] (so by [`Session`]s and CSRF tokens made from it) and
/// the core stack's end, which writes the cookies back.
pub(crate) struct CookieState {
    pub(crate) cookies: RequestCookies,
    /// Whether the request is served over https: the cookies' names (`__Host-`) and
    /// `Secure`, and for the CSRF check the scheme of the site's origin.
    pub(crate) secure: bool,
    locked: Mutex<Cookies>,
}

/// What a request did with its session and CSRF secret.
pub(crate) struct Cookies {
    session: State,
    pub(crate) csrf: Secret,
}

impl Cookies {
    /// Whether [`Session::regenerate`] was called during the request.
    pub(crate) fn was_regenerated(&self) -> bool {
        self.session.regenerated
    }
}

impl CookieState {
    pub(crate) fn new(cookies: RequestCookies, secure: bool) -> CookieState {
        let session = State { data: Data::Unread, changed: false, regenerated: false };
        let locked = Mutex::new(Cookies { session, csrf: Secret::Unread });
        CookieState { cookies, secure, locked }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Cookies> {
        // Every change is one step on the map or one assignment: a panic elsewhere (in a
        // handler holding a `Session`) leaves the state whole.
        self.locked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Appends `Set-Cookie` for a framework cookie (session, CSRF); `max_age` 0 deletes it.
pub(crate) fn append_cookie(
    response: &mut Response,
    name: &str,
    value: &str,
    max_age: u64,
    secure: bool,
) {
    let secure = if secure { "; Secure" } else { "" };
    let header =
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The name a framework cookie (session, CSRF) is sent under: under https with the
/// `__Host-` prefix, which browsers accept only from a secure origin, with `Secure`,
/// `Path=/` and no `Domain`, so a sibling subdomain or a man in the middle on plain http
/// cannot plant one.
pub(crate) fn cookie_name(configured: &str, secure: bool) -> String {
    if secure { format!("__Host-{configured}") } else { configured.to_string() }
}

/// A framework cookie's names over http and https ([`cookie_name`]), and which a request
/// gets: https under an https base URL, or when a trusted proxy says the client used it.
pub(crate) struct CookieName {
    plain: String,
    secure: String,
    base_https: bool,
}

impl CookieName {
    pub(crate) fn new(configured: &str, base_https: bool) -> CookieName {
        CookieName {
            plain: cookie_name(configured, false),
            secure: cookie_name(configured, true),
            base_https,
        }
    }

    pub(crate) fn is_https(&self, extensions: &Extensions) -> bool {
        Forwarded::is_https(extensions, self.base_https)
    }

    pub(crate) fn get(&self, secure: bool) -> &str {
        if secure { &self.secure } else { &self.plain }
    }
}

/// A request's `Cookie` header values, kept (cheap clones of the received bytes) so that
/// a signed cookie is checked only when something asks for it.
pub(crate) struct RequestCookies {
    // Browsers send one `Cookie` header: kept without a `Vec` (an allocation per request
    // for each app that reads cookies); HTTP/2 clients may split them over several.
    first: Option<HeaderValue>,
    rest: Vec<HeaderValue>,
}

impl RequestCookies {
    pub(crate) fn of(headers: &HeaderMap) -> RequestCookies {
        let mut all = headers.get_all(header::COOKIE).iter().cloned();
        RequestCookies { first: all.next(), rest: all.collect() }
    }

    fn values(&self) -> impl Iterator<Item = &HeaderValue> {
        self.first.iter().chain(&self.rest)
    }

    /// The first cookie `name` that `codec` validates and `parse` accepts. A browser sends
    /// several of one name when cookies exist for other paths or domains, and one planted
    /// by another site may come first.
    pub(crate) fn decode<T>(
        &self,
        codec: &Codec,
        name: &str,
        parse: impl Fn(Vec<u8>) -> Option<T>,
    ) -> Option<T> {
        let now_secs = now();
        let mut values = crate::request::cookies(self.values(), name);
        values.find_map(|value| parse(codec.decode(name, value, now_secs)?))
    }
}

struct State {
    data: Data,
    changed: bool,
    regenerated: bool,
}

/// The session's data is decoded from the cookie (an HMAC check and a JSON parse) on first
/// access: most requests never look at the session.
enum Data {
    Unread,
    Read { map: BTreeMap<String, serde_json::Value>, existed: bool },
}

impl State {
    /// The data, decoded on first access, and whether the request came with a valid
    /// session cookie.
    fn read(
        &mut self,
        config: &SessionConfig,
        cookies: &RequestCookies,
        name: &str,
    ) -> (&mut BTreeMap<String, serde_json::Value>, bool) {
        if let Data::Unread = self.data {
            let decoded = cookies.decode(&config.codec, name, |bytes| {
                serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&bytes).ok()
            });
            self.data = Data::Read { existed: decoded.is_some(), map: decoded.unwrap_or_default() };
        }
        match &mut self.data {
            Data::Read { map, existed } => (map, *existed),
            Data::Unread => unreachable!("read above"),
        }
    }
}

/// The current request's session; cheap to clone, changes are written back as a cookie.
///
/// A handler takes it as an extractor; middleware and template functions, which see the
/// request rather than extract from it, get it with [`Session::of`].
#[derive(Clone)]
pub struct Session {
    state: Arc<CookieState>,
    apps: Arc<CookieApps>,
}

/// A value that [`Session::insert`] did not store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The value cannot be written as JSON (e.g. a map with non-string keys).
    NotSerializable { key: String, reason: String },
    /// With the value, the session cookie would be `size` bytes, more than browsers keep.
    TooLarge { key: String, size: usize },
}

impl SessionError {
    /// True when the value did not fit: a smaller one may.
    pub fn is_too_large(&self) -> bool {
        matches!(self, SessionError::TooLarge { .. })
    }
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::NotSerializable { key, reason } => {
                write!(f, "session value '{key}': {reason}")
            }
            SessionError::TooLarge { key, size } => write!(
                f,
                "session value '{key}' not stored: the session cookie would be {size} bytes, \
                 over the {MAX_COOKIE_SIZE} browsers keep"
            ),
        }
    }
}

impl std::error::Error for SessionError {}

impl Session {
    /// The session of a request, from its extensions; `None` without the sessions app.
    ///
    /// ```no_run
    /// use burrow::axum::{extract::Request, middleware::Next, response::Response};
    /// use burrow::contrib::session::Session;
    /// async fn count_visits(request: Request, next: Next) -> Response {
    ///     if let Some(session) = Session::of(request.extensions()) {
    ///         let visits: u32 = session.get("visits").unwrap_or(0);
    ///         let _ = session.insert("visits", visits + 1);
    ///     }
    ///     next.run(request).await
    /// }
    /// ```
    pub fn of(extensions: &Extensions) -> Option<Session> {
        let scope = Scope::of(extensions)?;
        let state = scope.cookies.clone()?;
        let apps = scope.services.cookie_apps.clone()?;
        Some(Session { state, apps })
    }

    /// The request's `Cookie` header values, for a cookie that is not the session's.
    pub(crate) fn request_cookies(&self) -> impl Iterator<Item = &HeaderValue> {
        self.state.cookies.values()
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut state = self.lock();
        self.data(&mut state.session).get(key).and_then(|v| T::deserialize(v).ok())
    }

    /// Stores a value. Fails, and stores nothing, when the session would no longer fit in
    /// a cookie (4096 bytes) — a cookie is never dropped silently.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|e| SessionError::NotSerializable {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        let mut state = self.lock();
        let data = self.data(&mut state.session);
        let previous = data.insert(key.to_string(), value);
        let bytes = serde_json::to_vec(&data).unwrap_or_default();
        let codec = &self.apps.session.codec;
        if let Err(TooLarge { size }) = codec.encode(self.cookie_name(), &bytes, now()) {
            match previous {
                Some(p) => data.insert(key.to_string(), p),
                None => data.remove(key),
            };
            return Err(SessionError::TooLarge { key: key.to_string(), size });
        }
        state.session.changed = true;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Option<serde_json::Value> {
        let mut state = self.lock();
        let removed = self.data(&mut state.session).remove(key);
        state.session.changed |= removed.is_some();
        removed
    }

    /// Removes a value and returns it (e.g. flash messages).
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.remove(key).and_then(|v| serde_json::from_value(v).ok())
    }

    /// Empties the session (logout).
    pub fn clear(&self) {
        let mut state = self.lock();
        let data = self.data(&mut state.session);
        let had_data = !data.is_empty();
        data.clear();
        state.session.changed |= had_data;
    }

    /// Keeps the data under a fresh cookie and rotates the CSRF secret (call on login, so
    /// anything learned about the pre-login session is useless).
    pub fn regenerate(&self) {
        let session = &mut self.lock().session;
        session.changed = true;
        session.regenerated = true;
    }

    /// The data, decoded from the request's cookie on first access.
    fn data<'a>(&self, state: &'a mut State) -> &'a mut BTreeMap<String, serde_json::Value> {
        state.read(&self.apps.session, &self.state.cookies, self.cookie_name()).0
    }

    fn cookie_name(&self) -> &str {
        self.apps.session.cookie_name.get(self.state.secure)
    }

    fn lock(&self) -> MutexGuard<'_, Cookies> {
        self.state.lock()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Session::of(&parts.extensions)
            .ok_or_else(|| Error::internal("Session used, but the session app is not registered"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cookie_of_the_name_that_validates_and_parses_wins() {
        let codec = Codec::new(&[[3; 32]], &[], 60);
        let signed = |payload: &[u8]| codec.encode("_s", payload, now()).unwrap();
        let mut headers = HeaderMap::new();
        // A planted value first, another name with a valid value, one that parse refuses,
        // then the real one in a second `Cookie` header (HTTP/2 splits them so).
        let first = format!("_s=planted; other={}; _s=\"{}\"", signed(b"other"), signed(b"no"));
        headers.append(header::COOKIE, HeaderValue::from_str(&first).unwrap());
        headers.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("_s={}", signed(b"yes"))).unwrap(),
        );
        let cookies = RequestCookies::of(&headers);
        let parse = |bytes: Vec<u8>| (bytes != b"no").then_some(bytes);
        assert_eq!(cookies.decode(&codec, "_s", parse), Some(b"yes".to_vec()));
        assert_eq!(cookies.decode(&codec, "_none", parse), None);
        let other_key = Codec::new(&[[4; 32]], &[], 60);
        assert_eq!(cookies.decode(&other_key, "_s", parse), None, "no cookie of another key");
    }
}
