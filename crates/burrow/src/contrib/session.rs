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
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::securecookie::{Codec, MAX_COOKIE_SIZE, TooLarge, now, parse_key};
use crate::app::App;
use crate::config::{AnySetting, Config, ConfigError, Optional, Setting, SettingInfo};
use crate::context::AppContext;
use crate::error::Error;
use crate::http::around::Around;
use crate::request::Forwarded;

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

/// Everything the middleware needs, shared by all requests.
pub(crate) struct SessionConfig {
    pub(crate) codec: Codec,
    pub(crate) cookie_name: CookieName,
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

    // No `middleware`: the session's layer is part of the core stack, right around the
    // router ([`Sessions::layer`]), where it costs a request no boxed route level.
}

impl Sessions {
    /// The layer that puts the [`Session`] in every request and writes its cookie back,
    /// which the core stack places around all apps' routes and middleware (as the outermost
    /// app middleware, so a 404 page knows the session too).
    pub(crate) fn layer(&self, ctx: &AppContext) -> SessionLayer {
        let keys = self.keys.as_ref().expect("configure ran before the stack was built");
        SessionLayer(Arc::new(SessionConfig {
            codec: Codec::new(&keys.hash, &keys.block, self.max_age),
            cookie_name: CookieName::new(
                &self.cookie_name,
                ctx.settings.base_url.starts_with("https://"),
            ),
        }))
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

/// The session in the request's extensions before the routes run; after them, the cookie
/// rewritten if the session changed. Neither step waits, so it is an [`Around`] layer.
#[derive(Clone)]
pub(crate) struct SessionLayer(Arc<SessionConfig>);

impl Around for SessionLayer {
    type State = Session;

    fn before(&self, request: &mut Request) -> Session {
        let session = Session {
            secure: self.0.cookie_name.is_https(request.extensions()),
            state: Arc::new(Mutex::new(State {
                data: Data::Unread(RequestCookies::of(request.headers())),
                changed: false,
                regenerated: false,
            })),
            config: self.0.clone(),
        };
        request.extensions_mut().insert(session.clone());
        session
    }

    fn after(&self, session: Session, mut response: Response) -> Response {
        let config = &self.0;
        // Serialized only when the cookie is rewritten: most requests leave the session
        // alone.
        let encoded = {
            let mut state = session.lock();
            if !state.changed {
                return response;
            }
            let (data, existed) = state.read(config, session.cookie_name());
            if data.is_empty() && !existed {
                return response;
            }
            (!data.is_empty()).then(|| serde_json::to_vec(data))
        };
        let (value, max_age) = match encoded {
            None => (String::new(), 0),
            Some(encoded) => {
                let encoded = encoded.map_err(|e| e.to_string()).and_then(|bytes| {
                    let at = now();
                    let name = session.cookie_name();
                    config.codec.encode(name, &bytes, at).map_err(|e| e.to_string())
                });
                match encoded {
                    Ok(value) => (value, config.codec.max_age()),
                    // `insert` refuses what does not fit, so this is not expected; if it
                    // happens, the handler's work (often a committed write) still gets its
                    // answer.
                    Err(e) => {
                        tracing::error!("session cookie not written: {e}");
                        return response;
                    }
                }
            }
        };
        append_cookie(&mut response, session.cookie_name(), &value, max_age, session.secure);
        response
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
        let all = self.first.iter().chain(&self.rest);
        let headers = all.filter_map(|v| v.to_str().ok());
        let pairs = headers.flat_map(|v| v.split(';')).filter_map(|p| p.trim().split_once('='));
        let mut values = pairs.filter(|(k, _)| *k == name).map(|(_, v)| v.trim_matches('"'));
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
    Unread(RequestCookies),
    Read { map: BTreeMap<String, serde_json::Value>, existed: bool },
}

impl State {
    /// The data, decoded on first access, and whether the request came with a valid
    /// session cookie.
    fn read(
        &mut self,
        config: &SessionConfig,
        name: &str,
    ) -> (&mut BTreeMap<String, serde_json::Value>, bool) {
        if let Data::Unread(cookies) = &self.data {
            let decoded = cookies.decode(&config.codec, name, |bytes| {
                serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&bytes).ok()
            });
            self.data = Data::Read { existed: decoded.is_some(), map: decoded.unwrap_or_default() };
        }
        match &mut self.data {
            Data::Read { map, existed } => (map, *existed),
            Data::Unread(_) => unreachable!("read above"),
        }
    }

    fn data(
        &mut self,
        config: &SessionConfig,
        name: &str,
    ) -> &mut BTreeMap<String, serde_json::Value> {
        self.read(config, name).0
    }
}

/// The current request's session; cheap to clone, changes are written back as a cookie.
#[derive(Clone)]
pub struct Session {
    state: Arc<Mutex<State>>,
    config: Arc<SessionConfig>,
    /// Whether this request is served over https (the cookie's name and `Secure`).
    secure: bool,
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
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut state = self.lock();
        state.data(&self.config, self.cookie_name()).get(key).and_then(|v| T::deserialize(v).ok())
    }

    /// Stores a value. Fails, and stores nothing, when the session would no longer fit in
    /// a cookie (4096 bytes) — a cookie is never dropped silently.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|e| SessionError::NotSerializable {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        let mut state = self.lock();
        let data = state.data(&self.config, self.cookie_name());
        let previous = data.insert(key.to_string(), value);
        let bytes = serde_json::to_vec(&data).unwrap_or_default();
        if let Err(TooLarge { size }) = self.config.codec.encode(self.cookie_name(), &bytes, now())
        {
            match previous {
                Some(p) => data.insert(key.to_string(), p),
                None => data.remove(key),
            };
            return Err(SessionError::TooLarge { key: key.to_string(), size });
        }
        state.changed = true;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Option<serde_json::Value> {
        let mut state = self.lock();
        let removed = state.data(&self.config, self.cookie_name()).remove(key);
        state.changed |= removed.is_some();
        removed
    }

    /// Removes a value and returns it (e.g. flash messages).
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.remove(key).and_then(|v| serde_json::from_value(v).ok())
    }

    /// Empties the session (logout).
    pub fn clear(&self) {
        let mut state = self.lock();
        let data = state.data(&self.config, self.cookie_name());
        let had_data = !data.is_empty();
        data.clear();
        state.changed |= had_data;
    }

    /// Keeps the data under a fresh cookie and rotates the CSRF secret (call on login, so
    /// anything learned about the pre-login session is useless).
    pub fn regenerate(&self) {
        let mut state = self.lock();
        state.changed = true;
        state.regenerated = true;
    }

    pub(crate) fn was_regenerated(&self) -> bool {
        self.lock().regenerated
    }

    fn cookie_name(&self) -> &str {
        self.config.cookie_name.get(self.secure)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("session poisoned")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
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
