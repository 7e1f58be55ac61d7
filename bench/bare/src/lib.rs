//! The bare side of `bench/compare.sh`: the three endpoints of `bench/app` written directly
//! on axum + rusqlite + minijinja + tokio (+ ring), with no framework around them. It does
//! the work each endpoint needs, the same way burrow does it, and nothing else: no request
//! id, no access log, no error pages, no timeouts, no gzip, no panic catcher — those are
//! what the comparison measures.
//!
//! Equivalences with burrow (see bench/README.md, "Burrow against the bare stack"):
//! - the same security headers on every response (`burrow::http::security_headers` with
//!   default settings and an http base URL), added only where missing;
//! - the same SQLite PRAGMAs on every connection (`burrow::db::sqlite::PRAGMAS`), WAL, a
//!   prepared-statement cache of 64, writes in `BEGIN IMMEDIATE` transactions on one
//!   writer connection;
//! - the same cookies: gorilla/securecookie values (`TIMESTAMP.PAYLOAD.MAC`, HMAC-SHA256
//!   over `NAME|TIMESTAMP|PAYLOAD`, max age checked) under the same names and keys
//!   (`SESSION_HASH_KEY`, `CSRF_KEY`), so a cookie from one server works on the other;
//! - the same CSRF scheme: a 32-byte secret in the signed `_csrf` cookie, tokens masked
//!   with 32 fresh random bytes per use, the token from the `csrf_token` field or the
//!   `X-CSRF-Token` header, Origin (or Referer) checked against the base URL or the Host;
//! - the same form rules (trimmed, required, at most 80 and 1000 characters) and 422 on
//!   failure, one INSERT, 303.
//!
//! Reads run inline on the runtime's worker threads, each with its own connection (a
//! thread-local, opened on first use: as many readers as workers, no lock, no hop to the
//! blocking pool). The writer is one connection behind a `std::sync::Mutex`, also used
//! inline: a WAL commit with `synchronous = NORMAL` does not fsync, so it holds the lock
//! for microseconds.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use tower::util::MapResponseLayer;

const MIGRATION: &str = include_str!("../../files/migrations/0001_entries.sqlite.up.sql");
const PAGE: &str = include_str!("../../files/templates/page.html");

/// burrow's `PRAGMAS` (crates/burrow/src/db/sqlite.rs), applied to every connection.
const PRAGMAS: &str = "
    PRAGMA synchronous = NORMAL;
    PRAGMA foreign_keys = ON;
    PRAGMA busy_timeout = 5000;
    PRAGMA temp_store = MEMORY;
    PRAGMA mmap_size = 134217728;
    PRAGMA journal_size_limit = 27103364;
    PRAGMA cache_size = -8000;
";
const NEWEST: &str = "SELECT id, name, message, created_at FROM entries ORDER BY id DESC LIMIT 12";
const INSERT: &str = "INSERT INTO entries (name, message) VALUES (?, ?)";

/// burrow's defaults: `_session` for a week, `_csrf` for a year.
const SESSION_COOKIE: &str = "_session";
const SESSION_MAX_AGE: u64 = 604_800;
const CSRF_COOKIE: &str = "_csrf";
const CSRF_MAX_AGE: u64 = 365 * 24 * 3600;
const SECRET_LEN: usize = 32;
const MAX_COOKIE_SIZE: usize = 4096;
/// burrow's default body limit (1 MB) instead of axum's 2 MB.
const BODY_LIMIT: usize = 1 << 20;

struct AppState {
    env: Environment<'static>,
    session_key: hmac::Key,
    csrf_key: hmac::Key,
    writer: Mutex<Connection>,
    rng: SystemRandom,
    /// `host[:port]` of the base URL (`http://HOST:PORT`, as burrow derives it).
    authority: String,
}

/// The database file, for the thread-local readers.
static DB_PATH: OnceLock<String> = OnceLock::new();

thread_local! {
    static READER: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

fn open(path: &str) -> rusqlite::Result<Connection> {
    // burrow's flags: each connection is used by one thread at a time.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch(PRAGMAS)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs `f` on this worker thread's reader, opening it on first use.
fn read<T>(f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    READER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(open(DB_PATH.get().expect("database path set at start"))?);
        }
        f(slot.as_ref().expect("opened above"))
    })
}

#[derive(Serialize)]
struct Entry {
    id: i64,
    name: String,
    message: String,
    created_at: String,
}

// --- securecookie (crates/burrow/src/contrib/securecookie.rs, signed, not encrypted) ----

fn signed_message(name: &str, ts: &str, payload: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(name.len() + ts.len() + payload.len() + 2);
    m.extend_from_slice(name.as_bytes());
    m.push(b'|');
    m.extend_from_slice(ts.as_bytes());
    m.push(b'|');
    m.extend_from_slice(payload.as_bytes());
    m
}

fn encode_cookie(key: &hmac::Key, name: &str, bytes: &[u8], now: u64) -> String {
    let payload = B64.encode(bytes);
    let ts = now.to_string();
    let tag = hmac::sign(key, &signed_message(name, &ts, &payload));
    format!("{ts}.{payload}.{}", B64.encode(tag.as_ref()))
}

fn decode_cookie(key: &hmac::Key, name: &str, value: &str, max_age: u64) -> Option<Vec<u8>> {
    if value.len() > MAX_COOKIE_SIZE {
        return None;
    }
    let mut parts = value.splitn(3, '.');
    let (ts, payload, mac) = (parts.next()?, parts.next()?, parts.next()?);
    let mac = B64.decode(mac).ok()?;
    hmac::verify(key, &signed_message(name, ts, payload), &mac).ok()?;
    let stamped: u64 = ts.parse().ok()?;
    let now = now();
    if stamped > now.saturating_add(60) || now.saturating_sub(stamped) > max_age {
        return None;
    }
    B64.decode(payload).ok()
}

/// The first value of cookie `name` that `accept` takes (several may be sent).
fn cookie<T>(headers: &HeaderMap, name: &str, accept: impl Fn(&str) -> Option<T>) -> Option<T> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .find_map(|(_, v)| accept(v.trim_matches('"')))
}

fn set_cookie(response: &mut Response, name: &str, value: &str, max_age: u64) {
    let header = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// --- CSRF (crates/burrow/src/contrib/csrf.rs) -------------------------------------------

fn csrf_secret(state: &AppState, headers: &HeaderMap) -> Option<[u8; SECRET_LEN]> {
    cookie(headers, CSRF_COOKIE, |v| {
        decode_cookie(&state.csrf_key, CSRF_COOKIE, v, CSRF_MAX_AGE)?.try_into().ok()
    })
}

fn random<const N: usize>(rng: &SystemRandom) -> [u8; N] {
    let mut bytes = [0u8; N];
    rng.fill(&mut bytes).expect("system random");
    bytes
}

/// The secret masked with fresh random bytes: a different token on every call.
fn masked_token(rng: &SystemRandom, secret: &[u8; SECRET_LEN]) -> String {
    let mask: [u8; SECRET_LEN] = random(rng);
    let mut out = mask.to_vec();
    out.extend(secret.iter().zip(mask.iter()).map(|(s, m)| s ^ m));
    B64.encode(out)
}

/// Unmasks a token and compares it with the secret in constant time.
fn token_matches(token: &str, secret: &[u8; SECRET_LEN]) -> bool {
    let Ok(bytes) = B64.decode(token.trim()) else { return false };
    if bytes.len() != 2 * SECRET_LEN {
        return false;
    }
    let (mask, masked) = bytes.split_at(SECRET_LEN);
    let diff =
        masked.iter().zip(mask).zip(secret).fold(0u8, |acc, ((m, k), s)| acc | ((m ^ k) ^ s));
    diff == 0
}

/// burrow's origin check over http: the Origin (or the Referer's origin) must be
/// `http://` + the base URL's authority or the Host; neither header is allowed (clients
/// that are not browsers), `Origin: null` is not.
fn origin_ok(state: &AppState, headers: &HeaderMap) -> bool {
    let claimed = if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        origin
    } else if let Some(referer) = headers.get(header::REFERER) {
        let Some(origin) = referer.to_str().ok().and_then(origin_of) else { return false };
        origin
    } else {
        return true;
    };
    if claimed == "null" {
        return false;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    is_origin(claimed, &state.authority) || host.is_some_and(|h| is_origin(claimed, h))
}

fn origin_of(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..].find(['/', '?', '#']).map_or(url.len(), |at| after_scheme + at);
    Some(&url[..end])
}

fn is_origin(origin: &str, authority: &str) -> bool {
    let Some((scheme, origin_authority)) = origin.split_once("://") else { return false };
    let plain = |a: &str| a.strip_suffix(":80").unwrap_or(a).to_ascii_lowercase();
    !authority.is_empty()
        && scheme.eq_ignore_ascii_case("http")
        && plain(origin_authority) == plain(authority)
}

fn forbidden() -> Response {
    let text =
        "The form has expired or did not come from this site. Reload the page and try again.";
    (StatusCode::FORBIDDEN, text).into_response()
}

// --- handlers ---------------------------------------------------------------------------

async fn plaintext() -> &'static str {
    "Hello, World!"
}

#[derive(Deserialize)]
struct SessionData {
    user: Option<String>,
}

async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let session = cookie(&headers, SESSION_COOKIE, |v| {
        let bytes = decode_cookie(&state.session_key, SESSION_COOKIE, v, SESSION_MAX_AGE)?;
        serde_json::from_slice::<SessionData>(&bytes).ok()
    });
    let user = session.and_then(|s| s.user).unwrap_or_else(|| "nobody".to_string());
    let entries = read(|c| {
        let mut stmt = c.prepare_cached(NEWEST)?;
        let rows = stmt.query_map([], |r| {
            Ok(Entry { id: r.get(0)?, name: r.get(1)?, message: r.get(2)?, created_at: r.get(3)? })
        })?;
        rows.collect::<rusqlite::Result<Vec<Entry>>>()
    });
    let mut entries = match entries {
        Ok(entries) => entries,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    // As burrow: the secret from the cookie, or a new one, sent as a cookie only then.
    let existing = csrf_secret(&state, &headers);
    let secret = existing.unwrap_or_else(|| random(&state.rng));
    let for_field = state.clone();
    let csrf_field = Value::from_function(move || {
        let token = masked_token(&for_field.rng, &secret);
        Value::from_safe_string(format!(
            "<input type=\"hidden\" name=\"csrf_token\" value=\"{token}\">"
        ))
    });
    let html = state
        .env
        .get_template("page.html")
        .and_then(|t| t.render(context! { user, entries => Serde(&entries), csrf_field }));
    let mut response = match html {
        Ok(html) => Html(html).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    if existing.is_none() {
        let value = encode_cookie(&state.csrf_key, CSRF_COOKIE, &secret, now());
        set_cookie(&mut response, CSRF_COOKIE, &value, CSRF_MAX_AGE);
    }
    response
}

#[derive(Deserialize)]
struct EntryForm {
    csrf_token: Option<String>,
    name: Option<String>,
    message: Option<String>,
}

/// burrow's `read_field` for a required text field: trimmed, not blank, at most `max`
/// characters.
fn text_field(value: Option<String>, label: &str, max: usize, errors: &mut Vec<String>) -> String {
    let text = value.as_deref().map(str::trim).unwrap_or_default();
    if text.is_empty() {
        errors.push(format!("{label}: this field is required."));
    } else if text.chars().count() > max {
        errors.push(format!("{label}: at most {max} characters."));
    }
    text.to_string()
}

async fn sign(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    // CSRF first, as burrow's middleware does before the handler sees the form.
    if !origin_ok(&state, &headers) {
        return forbidden();
    }
    let Some(secret) = csrf_secret(&state, &headers) else { return forbidden() };
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected a urlencoded form").into_response();
    }
    let Ok(form) = serde_urlencoded::from_bytes::<EntryForm>(&body) else {
        return (StatusCode::BAD_REQUEST, "unreadable form").into_response();
    };
    let header_token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    let token = header_token.or(form.csrf_token.as_deref()).unwrap_or_default();
    if token.is_empty() || !token_matches(token, &secret) {
        return forbidden();
    }
    let mut errors = Vec::new();
    let name = text_field(form.name, "name", 80, &mut errors);
    let message = text_field(form.message, "message", 1000, &mut errors);
    if !errors.is_empty() {
        return (StatusCode::UNPROCESSABLE_ENTITY, errors.join(" ")).into_response();
    }
    let written = {
        let mut conn = state.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // burrow's write: BEGIN IMMEDIATE, the statement, COMMIT (rolled back on error).
        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).and_then(|tx| {
            tx.prepare_cached(INSERT)?.execute((&name, &message))?;
            tx.commit()
        })
    };
    match written {
        Ok(()) => Redirect::to("/entries").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Puts `user` in the session, for the benchmark's client (not measured). The JSON is what
/// burrow's session writes (a map, keys in order), so the cookie works on both servers.
async fn login(State(state): State<Arc<AppState>>) -> Response {
    let data: BTreeMap<&str, &str> = BTreeMap::from([("user", "bench")]);
    let json = serde_json::to_vec(&data).expect("a map of strings");
    let value = encode_cookie(&state.session_key, SESSION_COOKIE, &json, now());
    let mut response = Redirect::to("/entries").into_response();
    set_cookie(&mut response, SESSION_COOKIE, &value, SESSION_MAX_AGE);
    response
}

// --- start ------------------------------------------------------------------------------

/// burrow's defaults for an http base URL and no CSP / Permissions-Policy configured.
fn security_headers() -> Arc<[(HeaderName, HeaderValue)]> {
    Arc::new([
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ])
}

/// A key from `var` (64 hex characters, as burrow reads it), or a random one.
fn key(var: &str, rng: &SystemRandom) -> Result<hmac::Key, String> {
    let bytes: [u8; 32] = match std::env::var(var) {
        Ok(raw) => {
            let raw = raw.trim();
            if raw.len() != 64 {
                return Err(format!("{var}: expected 64 hex characters"));
            }
            let mut key = [0u8; 32];
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&raw[2 * i..2 * i + 2], 16)
                    .map_err(|_| format!("{var}: expected hex characters"))?;
            }
            key
        }
        Err(_) => random(rng),
    };
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

fn setup(database: &str) -> rusqlite::Result<Connection> {
    let mut writer = open(database)?;
    let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidQuery);
    }
    let tables: i64 = writer.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'entries'",
        [],
        |r| r.get(0),
    )?;
    if tables == 0 {
        let tx = writer.transaction()?;
        tx.execute_batch(MIGRATION)?;
        tx.commit()?;
    }
    Ok(writer)
}

/// The bare server's router on the SQLite file `database` (created and migrated if new):
/// what `bench-bare` serves, and what `cargo bench -p bench-app --bench workloads` sends
/// requests to in-process beside bench-app's. `authority` is the `host:port` a form's
/// `Origin` must name (or the request's `Host`). One database per process: the readers
/// are thread-locals that open the first path given.
pub fn app(database: &str, authority: String) -> Result<Router, String> {
    let writer = setup(database).map_err(|e| format!("{database}: {e}"))?;
    if DB_PATH.get_or_init(|| database.to_string()) != database {
        return Err(format!("{database}: this process already reads another database"));
    }
    let rng = SystemRandom::new();
    let mut env = Environment::new();
    env.add_template("page.html", PAGE).map_err(|e| e.to_string())?;
    let state = Arc::new(AppState {
        env,
        session_key: key("SESSION_HASH_KEY", &rng)?,
        csrf_key: key("CSRF_KEY", &rng)?,
        writer: Mutex::new(writer),
        rng,
        authority,
    });
    let headers = security_headers();
    Ok(Router::new()
        .route("/plaintext", get(plaintext))
        .route("/entries", get(page).post(sign))
        .route("/login", get(login))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
        // As burrow: built once, added to every response that does not carry them yet.
        .layer(MapResponseLayer::new(move |mut response: Response| {
            let map = response.headers_mut();
            map.reserve(headers.len());
            for (name, value) in headers.iter() {
                map.entry(name).or_insert_with(|| value.clone());
            }
            response
        })))
}
