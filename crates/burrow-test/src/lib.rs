//! An in-process test client for Burrow apps: [`Client`]. A crate of its own, used from
//! `[dev-dependencies]`, so that an app's release build never compiles it (nor its HTML
//! parser) and `burrow` itself has no test-only code paths.
//!
//! It builds the server with [`Server::build`] on a fresh SQLite file in a temporary
//! directory, then sends requests to the same [`Stack`](burrow::Stack) the accept loop
//! serves, so every request goes through the whole middleware stack (security headers,
//! sessions, CSRF, the error renderer, …) without a port. It behaves like a browser where
//! tests need it to:
//!
//! - **cookies** are kept: `Set-Cookie` stores one, `Max-Age=0` or an `Expires` in the past
//!   removes it, and every request sends them all (paths and domains are not tracked: one
//!   site, one jar);
//! - **CSRF**: a POST, PUT, PATCH or DELETE carries a token the real CSRF check accepts (see
//!   below) and an `Origin` header of the site, as a browser sends;
//! - **redirects** are followed on request ([`TestResponse::follow`], or
//!   [`Client::follow_redirects`] for every request);
//! - **responses** are parsed on demand: [`TestResponse::select`] takes a CSS selector,
//!   [`TestResponse::form_fields`] reads a form as a browser would submit it, and
//!   [`TestResponse::messages`] reads the theme's flash messages.
//!
//! The API is synchronous, so tests are plain `#[test]` functions: the client owns its own
//! tokio runtime. It also works inside `#[tokio::test]` (each call then blocks that test's
//! thread while the client's runtime does the work, on a helper thread).
//!
//! # Where the CSRF token comes from
//!
//! Like a browser's form, from the last page: the client remembers the `csrf_token`
//! hidden field, or the `X-CSRF-Token` of an `hx-headers` attribute (the theme puts it on
//! `<body>`), of the last HTML response that had one. A response that sets a new CSRF
//! cookie without carrying a token (e.g. a redirect after a login, which rotates the
//! secret) makes that token stale, and it is forgotten. Without a token (a POST as the very
//! first request, or after such a rotation), the client asks the server for one: it adds a
//! small app to the server it builds whose only route, `GET /__burrow/test/csrf-token`,
//! answers the framework's [`CsrfToken`] through the real
//! session and CSRF middleware, which also sets the signed CSRF cookie. Either way, the
//! request is checked by the real CSRF middleware; a token the test gives itself (a
//! `csrf_token` form field, an `X-CSRF-Token` header, or [`RequestBuilder::csrf_token`])
//! is sent as it is, and [`RequestBuilder::without_csrf`] sends none.
//!
//! A token is added as the `csrf_token` field of a urlencoded form body (as a browser's
//! form sends it) and as the `X-CSRF-Token` header otherwise (as htmx sends it). Nothing is
//! added when the server has no CSRF app.
//!
//! [`Client`] has an example; docs/guide/testing.md shows more.

mod port;
pub mod smtp;

pub use port::free_port;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::routing::get;
use http_body_util::BodyExt;
use scraper::{ElementRef, Html, Selector};
use tower::ServiceExt;

use burrow::contrib::csrf::{self, CsrfToken};
use burrow::{App, AppContext, Booted, Db, Server};

/// The route of the app the client adds, answering a fresh CSRF token (see the module
/// documentation).
const MINT_PATH: &str = "/__burrow/test/csrf-token";

/// How many redirects one request follows before the client gives up (a loop).
const MAX_REDIRECTS: usize = 20;

/// An in-process client for one server on its own database; see the [module
/// documentation](self).
///
/// Dropping it runs the apps' shutdown hooks, closes the database and deletes the
/// temporary directory.
///
/// ```
/// use burrow::prelude::*;
/// use burrow_test::Client;
///
/// struct Hello;
///
/// impl App for Hello {
///     fn name(&self) -> &'static str { "hello" }
///
///     fn routes(&self, _ctx: &AppContext) -> Router {
///         Router::new()
///             .route("/", get(|| async { Html("<h1>Hello</h1>".to_string()) }))
///             .route("/hello", post(|messages: Messages| async move {
///                 messages.success("Said hello.")?;
///                 Ok::<_, Error>(Redirect::to("/done"))
///             }))
///             // The theme's layout shows the flash messages.
///             .route("/done", get(|render: Render| async move {
///                 render.page("layout.html", context! {})
///             }))
///     }
/// }
///
/// // The default apps: theme, sessions, CSRF, flash messages.
/// let server = Server::new("server", "0.1.0").defaults("Hello").app(Hello);
/// let client = Client::new(server);
///
/// let page = client.get("/");
/// assert_eq!(page.status(), 200);
/// assert_eq!(page.select_one("h1"), "Hello");
///
/// // The CSRF token is added; the redirect is followed with the same cookies.
/// let page = client.post("/hello", &[("name", "Ann")]);
/// assert_eq!(page.status(), 303);
/// let page = page.follow();
/// assert_eq!(page.messages(), ["Said hello."]);
/// ```
pub struct Client {
    /// `None` only while dropping (the fields below must go first).
    inner: Option<Inner>,
    /// Deleted last, when the database is closed.
    dir: tempfile::TempDir,
}

struct Inner {
    booted: Booted,
    runtime: tokio::runtime::Runtime,
    /// `host[:port]` of the base URL, sent as `Host`.
    host: String,
    /// `scheme://host[:port]` of the base URL, sent as `Origin` with unsafe requests.
    origin: String,
    /// The CSRF cookie's name when the server has the CSRF app.
    csrf_cookie: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    cookies: BTreeMap<String, String>,
    /// The token of the last page that had one, while still valid for the CSRF cookie.
    csrf_token: Option<String>,
    follow: bool,
}

impl Client {
    /// Builds `server` in-process on a fresh, migrated SQLite file in a temporary
    /// directory. Panics with the start-up error's message when it does not start.
    pub fn new(server: Server) -> Client {
        Client::with_args(server, &[])
    }

    /// [`Client::new`] with more command-line arguments, e.g. `["--base-url",
    /// "https://example.com"]`. A `--database-dsn` among them replaces the temporary
    /// SQLite file (e.g. with a PostgreSQL test database, which the client leaves as it is).
    ///
    /// As for a server, settings not given here may come from environment variables.
    pub fn with_args(server: Server, args: &[&str]) -> Client {
        let dir = tempfile::tempdir().expect("a temporary directory for the test database");
        let dsn = dir.path().join("app.db").display().to_string();
        let mut all = vec!["server".to_string(), "--database-dsn".to_string(), dsn];
        all.extend(args.iter().map(|a| a.to_string()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("burrow-test-client")
            .enable_all()
            .build()
            .expect("the test client's tokio runtime");
        // Inside the runtime, in case building spawns tasks; not `block_on`, which would
        // panic inside a `#[tokio::test]`.
        let booted = {
            let _entered = runtime.enter();
            server.app(TestSupport).build(all)
        };
        let booted = match booted {
            Ok(booted) => booted,
            Err(e) => panic!("the server did not start: {e} (exit code {})", e.code),
        };
        let base_url = booted.ctx.settings.base_url.clone();
        let origin = csrf::origin_of(&base_url).unwrap_or(&base_url).to_string();
        let host = origin.split_once("://").map_or("localhost", |(_, host)| host).to_string();
        let csrf_cookie = booted.has_app("csrf").then(|| csrf::cookie_name_for(&booted.ctx));
        Client {
            inner: Some(Inner {
                booted,
                runtime,
                host,
                origin,
                csrf_cookie,
                state: Mutex::new(State::default()),
            }),
            dir,
        }
    }

    fn inner(&self) -> &Inner {
        self.inner.as_ref().expect("the client is not being dropped")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock left nothing half-written that matters.
        self.inner().state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `GET path` (a path with an optional query: `/notes?page=2`).
    pub fn get(&self, path: &str) -> TestResponse<'_> {
        self.request(Method::GET, path).send()
    }

    /// `POST path` with a urlencoded form (anything `serde_urlencoded` takes: `&[("name",
    /// "Ann")]`, or the `Vec<(String, String)>` of [`TestResponse::form_fields`]); the
    /// CSRF token is added.
    pub fn post<F: serde::Serialize + ?Sized>(&self, path: &str, form: &F) -> TestResponse<'_> {
        self.request(Method::POST, path).form(form).send()
    }

    /// A request with any method (`"DELETE"`, or a [`Method`]), headers and body; sent by
    /// [`RequestBuilder::send`].
    pub fn request(&self, method: impl AsRef<str>, path: &str) -> RequestBuilder<'_> {
        let method = Method::from_bytes(method.as_ref().as_bytes())
            .unwrap_or_else(|e| panic!("invalid HTTP method {:?}: {e}", method.as_ref()));
        RequestBuilder {
            client: self,
            method,
            path: path.to_string(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            csrf: CsrfMode::Auto,
            follow: None,
        }
    }

    /// From now on, `get`, `post` and `send` follow redirects themselves (up to 20), and
    /// return the final response. Off by default, so tests can check a redirect.
    pub fn follow_redirects(&self, follow: bool) -> &Client {
        self.state().follow = follow;
        self
    }

    /// The value of the cookie `name` in the client's jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.state().cookies.get(name).cloned()
    }

    /// Puts a cookie in the jar (e.g. one the test forged); it is sent from now on.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let mut state = self.state();
        state.cookies.insert(name.to_string(), value.to_string());
        // The remembered token may belong to another CSRF cookie now.
        state.csrf_token = None;
    }

    /// Empties the jar, as a new browser session would start (the server's sessions and
    /// CSRF secrets are in the cookies, so this logs out too).
    pub fn clear_cookies(&self) {
        let mut state = self.state();
        state.cookies.clear();
        state.csrf_token = None;
    }

    /// The server's database, to seed or check rows directly; its `read` and `write` are
    /// async: run them with [`Client::block_on`].
    pub fn db(&self) -> &Db {
        &self.inner().booted.ctx.db
    }

    /// The temporary directory holding the database (`app.db`), deleted with the client.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The server's context: database, configuration, settings, templates.
    pub fn context(&self) -> &AppContext {
        &self.inner().booted.ctx
    }

    /// What requests go to: the whole stack, as the server serves it.
    pub fn stack(&self) -> &burrow::Stack {
        &self.inner().booted.stack
    }

    /// The server's base URL (`http://localhost:8080` unless configured); requests carry
    /// its host as `Host`, and unsafe ones its origin as `Origin`.
    pub fn base_url(&self) -> &str {
        &self.inner().booted.ctx.settings.base_url
    }

    /// Signs in as `username`, an account of the auth app (created, with the role `user`,
    /// if there is none; the very first account is an admin): the way an operator's
    /// sign-in link does it, through the real pages (`login_link`, `GET` and `POST
    /// /auth/link`). The session cookie then goes with every request. Panics if the server
    /// has no auth app or the account is deactivated.
    ///
    /// ```
    /// use burrow::contrib::auth::Auth;
    /// use burrow_test::Client;
    ///
    /// let client = Client::new(burrow::Server::new("s", "1").defaults("Site").app(Auth::new()));
    /// assert_eq!(client.get("/auth/credentials/").status(), 303, "anonymous: to sign in");
    /// client.sign_in("ann");
    /// assert_eq!(client.get("/auth/credentials/").status(), 200);
    /// ```
    pub fn sign_in(&self, username: &str) -> &Client {
        use burrow::contrib::auth::{NewUser, login_link, users};
        assert!(self.inner().booted.has_app("auth"), "sign_in needs the auth app on the server");
        let ctx = self.context().clone();
        let name = username.to_string();
        self.block_on(async move {
            ctx.db
                .write(move |c| {
                    if users::by_username(c, &name)?.is_none() {
                        let new = NewUser { username: name, ..NewUser::default() };
                        users::create(c, &new)
                            .map_err(|e| burrow::db::DbError::Other(e.to_string()))?;
                    }
                    Ok(())
                })
                .await
                .expect("creating the account")
        });
        let ctx = self.context().clone();
        let name = username.to_string();
        let link = self
            .block_on(async move { login_link(&ctx, &name).await })
            .unwrap_or_else(|e| panic!("a sign-in link for {username}: {e}"));
        let (_, token) = link.url.split_once("?token=").expect("a token in the link");
        let page = self.get(&format!("/auth/link?token={token}"));
        assert_eq!(page.status(), 200, "the sign-in link's page: {}", page.text());
        let done = self.post("/auth/link", &[("token", token)]);
        assert_eq!(done.status(), 303, "signing in with the link: {}", done.text());
        // Where the link leads, as a browser would: its flash message is shown there.
        if let Some(next) = done.location().map(str::to_string) {
            self.get(&next);
        }
        self
    }

    /// Runs a future on the client's runtime and waits for it, e.g.
    /// `client.block_on(client.db().write(|c| c.execute(…)))`.
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = &self.inner().runtime;
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside another runtime (`#[tokio::test]`), where `block_on` panics: wait on a
            // thread of our own instead.
            std::thread::scope(|scope| {
                scope
                    .spawn(|| runtime.block_on(future))
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        } else {
            runtime.block_on(future)
        }
    }

    /// The token to send with an unsafe request: the last page's, or a fresh one.
    fn csrf_token(&self) -> Option<String> {
        self.inner().csrf_cookie.as_ref()?;
        if let Some(token) = self.state().csrf_token.clone() {
            return Some(token);
        }
        let minted = self.execute(self.request(Method::GET, MINT_PATH).prepare(None));
        assert_eq!(
            minted.status,
            StatusCode::OK,
            "the test client could not get a CSRF token from {MINT_PATH}: {}",
            excerpt(&minted.body)
        );
        // Good for the CSRF cookie just set (or kept): the next requests use it too.
        self.state().csrf_token = Some(minted.body.clone());
        Some(minted.body)
    }

    /// Sends one request (no redirects followed) and updates the jar and the token.
    fn execute(&self, request: Request<Body>) -> Raw {
        let stack = self.stack().clone();
        let raw = self.block_on(async move {
            let response = stack.oneshot(request).await.expect("the stack is infallible");
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_else(|e| {
                panic!("reading the response body failed: {e}");
            });
            Raw {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        });
        self.remember(&raw);
        raw
    }

    /// Stores the response's cookies, and the CSRF token of its page.
    fn remember(&self, raw: &Raw) {
        let csrf_cookie = self.inner().csrf_cookie.as_deref();
        let token = csrf_cookie.and_then(|_| page_token(raw));
        let mut state = self.state();
        let mut csrf_changed = false;
        for value in raw.headers.get_all(header::SET_COOKIE) {
            let Some((name, value)) = value.to_str().ok().and_then(parse_set_cookie) else {
                continue;
            };
            csrf_changed |= Some(name.as_str()) == csrf_cookie;
            match value {
                Some(value) => state.cookies.insert(name, value),
                None => state.cookies.remove(&name),
            };
        }
        if token.is_some() {
            state.csrf_token = token;
        } else if csrf_changed {
            state.csrf_token = None;
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        // As a stopping server does: the apps' shutdown hooks, then the database is closed,
        // so its files are released before the directory is deleted.
        let Inner { booted, runtime, .. } = inner;
        let shutdown = booted.shutdown_within(Duration::from_secs(5));
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                let _ = scope.spawn(|| runtime.block_on(shutdown)).join();
            });
            drop(booted);
            // Waiting for the runtime's threads is not allowed inside another runtime.
            runtime.shutdown_background();
        } else {
            runtime.block_on(shutdown);
            drop(booted);
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The app the client adds to the server: one route answering a fresh CSRF token, under
/// the real session and CSRF middleware (routes are merged before any app's middleware
/// wraps them).
struct TestSupport;

impl App for TestSupport {
    fn name(&self) -> &'static str {
        "burrow-test-client"
    }

    fn routes(&self, _ctx: &AppContext) -> Router {
        Router::new().route(MINT_PATH, get(|token: CsrfToken| async move { token.0 }))
    }
}

/// Which CSRF token a request carries.
#[derive(Clone)]
enum CsrfMode {
    /// The client's, unless the request already has one.
    Auto,
    /// This one.
    Token(String),
    /// None.
    Without,
}

/// A request being built by [`Client::request`]; [`RequestBuilder::send`] sends it.
#[must_use = "a request is sent by .send()"]
pub struct RequestBuilder<'c> {
    client: &'c Client,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    csrf: CsrfMode,
    follow: Option<bool>,
}

impl<'c> RequestBuilder<'c> {
    /// Adds a header (another value if it is already there). The client's own `Host`,
    /// `Accept`, `Origin` (also left out when a `Referer` is given), `Cookie` and
    /// `X-CSRF-Token` are not sent when given here.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("invalid header name {name:?}: {e}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("invalid value for header {name}: {e}"));
        self.headers.append(name, value);
        self
    }

    /// `HX-Request: true`, as htmx sends.
    pub fn htmx(self) -> Self {
        self.header("hx-request", "true")
    }

    /// A urlencoded form body (`Content-Type: application/x-www-form-urlencoded`).
    pub fn form<F: serde::Serialize + ?Sized>(mut self, form: &F) -> Self {
        let encoded = serde_urlencoded::to_string(form)
            .unwrap_or_else(|e| panic!("the form cannot be urlencoded: {e}"));
        self.body = encoded.into_bytes();
        self.content_type("application/x-www-form-urlencoded")
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value)
            .unwrap_or_else(|e| panic!("the value cannot be written as JSON: {e}"));
        self.content_type("application/json")
    }

    /// A raw body with its content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.content_type(content_type)
    }

    fn content_type(mut self, value: &str) -> Self {
        self.headers.remove(header::CONTENT_TYPE);
        self.header(header::CONTENT_TYPE.as_str(), value)
    }

    /// Sends this CSRF token instead of the client's (e.g. a wrong one, to see a 403).
    pub fn csrf_token(mut self, token: &str) -> Self {
        self.csrf = CsrfMode::Token(token.to_string());
        self
    }

    /// Sends no CSRF token, whatever the method.
    pub fn without_csrf(mut self) -> Self {
        self.csrf = CsrfMode::Without;
        self
    }

    /// Follows redirects for this request (or not), whatever the client's setting.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow = Some(follow);
        self
    }

    /// Sends the request through the whole middleware stack; follows redirects if asked to.
    pub fn send(self) -> TestResponse<'c> {
        let client = self.client;
        let follow = self.follow.unwrap_or_else(|| client.state().follow);
        let (mut method, mut path, mut headers, mut body) =
            (self.method, self.path, self.headers, self.body);
        let mut csrf = self.csrf;
        for _ in 0..=MAX_REDIRECTS {
            let builder = RequestBuilder {
                client,
                method: method.clone(),
                path: path.clone(),
                headers: headers.clone(),
                body: body.clone(),
                csrf: csrf.clone(),
                follow: None,
            };
            let token = builder.token();
            let raw = client.execute(builder.prepare(token));
            let next = match raw.status {
                _ if !follow => None,
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER => {
                    Some(false)
                }
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => Some(true),
                _ => None,
            };
            let location = raw.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
            let (Some(keep_method), Some(location)) = (next, location) else {
                return TestResponse { client, path, raw };
            };
            path = resolve(client, &path, location);
            // 307 and 308 repeat the request; the others become a GET without a body, as
            // browsers do.
            // A repeated request is the same request (its token too); a GET needs none.
            if !keep_method {
                method = Method::GET;
                body = Vec::new();
                headers.remove(header::CONTENT_TYPE);
                csrf = CsrfMode::Auto;
            }
        }
        panic!("more than {MAX_REDIRECTS} redirects, the last to {path}: a redirect loop?");
    }

    /// The token to send: given, the client's, or none.
    fn token(&self) -> Option<String> {
        let safe =
            matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
        match &self.csrf {
            CsrfMode::Token(token) => Some(token.clone()),
            CsrfMode::Without => None,
            CsrfMode::Auto if safe || self.carries_token() => None,
            CsrfMode::Auto => self.client.csrf_token(),
        }
    }

    fn is_form(&self) -> bool {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
    }

    /// True when the test put a token in the request itself.
    fn carries_token(&self) -> bool {
        self.headers.contains_key(csrf::HEADER)
            || (self.is_form()
                && serde_urlencoded::from_bytes::<Vec<(String, String)>>(&self.body)
                    .is_ok_and(|fields| fields.iter().any(|(name, _)| name == csrf::FIELD)))
    }

    /// The request as a browser would send it: `Host`, cookies, `Origin` on unsafe
    /// methods, and `token` in the form or the header.
    fn prepare(self, token: Option<String>) -> Request<Body> {
        let inner = self.client.inner();
        let safe =
            matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
        let is_form = self.is_form();
        let mut body = self.body;
        let mut headers = self.headers;
        if let Some(token) = token {
            if is_form {
                let field = serde_urlencoded::to_string([(csrf::FIELD, token.as_str())])
                    .expect("a string pair encodes");
                if !body.is_empty() {
                    body.push(b'&');
                }
                body.extend_from_slice(field.as_bytes());
            } else {
                headers.remove(csrf::HEADER);
                headers.insert(csrf::HEADER, HeaderValue::from_str(&token).expect("base64"));
            }
        }
        let mut request = Request::builder()
            .method(self.method)
            .uri(&self.path)
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("invalid request path {:?}: {e}", self.path));
        let defaults = [
            (header::HOST, Some(inner.host.clone())),
            (header::ORIGIN, (!safe).then(|| inner.origin.clone())),
            (header::ACCEPT, Some("text/html,application/xhtml+xml,*/*;q=0.8".to_string())),
        ];
        for (name, value) in defaults {
            if let Some(value) = value
                && !headers.contains_key(&name)
                && !(name == header::ORIGIN && headers.contains_key(header::REFERER))
            {
                headers.insert(name, HeaderValue::from_str(&value).expect("a header value"));
            }
        }
        let cookies = self.client.state().cookies.clone();
        if !cookies.is_empty() && !headers.contains_key(header::COOKIE) {
            let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if let Ok(value) = HeaderValue::from_str(&line.join("; ")) {
                headers.insert(header::COOKIE, value);
            }
        }
        *request.headers_mut() = headers;
        request
    }
}

/// What came back, before it is given to the test.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// A response, with helpers to read it; from [`Client::get`], [`Client::post`] or
/// [`RequestBuilder::send`].
pub struct TestResponse<'c> {
    client: &'c Client,
    /// The path of the request that got this response (the last one, after redirects).
    path: String,
    raw: Raw,
}

impl<'c> TestResponse<'c> {
    /// The status code, e.g. `200`.
    pub fn status(&self) -> u16 {
        self.raw.status.as_u16()
    }

    /// The path (and query) of the request that got this response: after followed
    /// redirects, the last one.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The first value of a header, if it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every header.
    pub fn headers(&self) -> &HeaderMap {
        &self.raw.headers
    }

    /// The `Location` header of a redirect.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> &str {
        &self.raw.body
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.raw.body).unwrap_or_else(|e| {
            panic!("the response is not JSON ({e}): {}", excerpt(&self.raw.body))
        })
    }

    /// The text of every element matching a CSS selector, in document order, trimmed and
    /// with runs of whitespace made one space (as a browser shows it). Panics when the
    /// selector is not valid CSS.
    pub fn select(&self, selector: &str) -> Vec<String> {
        let html = Html::parse_document(&self.raw.body);
        let selector = parse_selector(selector);
        html.select(&selector).map(text_of).collect()
    }

    /// The text of the first element matching a CSS selector (as [`select`](Self::select)
    /// gives it). Panics, naming the selector and showing the body, when none matches.
    pub fn select_one(&self, selector: &str) -> String {
        self.select(selector).into_iter().next().unwrap_or_else(|| {
            panic!(
                "no element matches the selector {selector:?} in the response to {} \
                 (status {}):\n{}",
                self.path,
                self.status(),
                excerpt(&self.raw.body)
            )
        })
    }

    /// The value of the attribute `name` of every element matching a CSS selector that has
    /// it, e.g. `attr("a.title", "href")`.
    pub fn attr(&self, selector: &str, name: &str) -> Vec<String> {
        let html = Html::parse_document(&self.raw.body);
        let selector = parse_selector(selector);
        html.select(&selector).filter_map(|e| e.value().attr(name)).map(str::to_string).collect()
    }

    /// The fields of the first form matching a CSS selector, as a browser would submit it:
    /// named inputs (checkboxes and radio buttons only when checked; not buttons or files),
    /// textareas, and selects (the selected option, else the first). Disabled fields are
    /// left out. The result can be posted back, changed or not:
    /// `client.post(path, &page.form_fields("form"))`. Panics when no form matches.
    pub fn form_fields(&self, selector: &str) -> Vec<(String, String)> {
        let html = Html::parse_document(&self.raw.body);
        let form_selector = parse_selector(selector);
        let Some(form) = html.select(&form_selector).next() else {
            panic!(
                "no form matches the selector {selector:?} in the response to {} (status \
                 {}):\n{}",
                self.path,
                self.status(),
                excerpt(&self.raw.body)
            );
        };
        let fields = parse_selector("input, textarea, select");
        form.select(&fields).filter_map(field_value).collect()
    }

    /// The flash messages shown on the page: the text of each `.message` inside the theme's
    /// `<div id="messages">` (docs/theme.md), in order.
    pub fn messages(&self) -> Vec<String> {
        self.select("#messages .message")
    }

    /// Follows this redirect: a `GET` of its `Location` with the same client (and so the
    /// same cookies). Panics when this is not a redirect with a `Location`.
    pub fn follow(&self) -> TestResponse<'c> {
        let location = match self.location() {
            Some(location) if self.raw.status.is_redirection() => location,
            _ => panic!(
                "follow(): the response to {} is not a redirect with a Location (status {}):\n{}",
                self.path,
                self.status(),
                excerpt(&self.raw.body)
            ),
        };
        let path = resolve(self.client, &self.path, location);
        self.client.get(&path)
    }
}

impl fmt::Debug for TestResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestResponse")
            .field("path", &self.path)
            .field("status", &self.raw.status)
            .field("headers", &self.raw.headers)
            .field("body", &excerpt(&self.raw.body))
            .finish()
    }
}

fn parse_selector(selector: &str) -> Selector {
    Selector::parse(selector).unwrap_or_else(|e| panic!("invalid CSS selector {selector:?}: {e}"))
}

/// An element's text, trimmed, whitespace runs collapsed.
fn text_of(element: ElementRef<'_>) -> String {
    element.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The name and value a form field submits, if it submits one.
fn field_value(element: ElementRef<'_>) -> Option<(String, String)> {
    let field = element.value();
    let name = field.attr("name").filter(|n| !n.is_empty())?;
    if field.attr("disabled").is_some() {
        return None;
    }
    let value = match field.name() {
        "textarea" => {
            // As browsers do: one newline right after the start tag is not content.
            let text: String = element.text().collect();
            text.strip_prefix('\n').map(str::to_string).unwrap_or(text)
        }
        "select" => {
            let options: Vec<ElementRef<'_>> = element.select(&parse_selector("option")).collect();
            let chosen = options
                .iter()
                .find(|o| o.value().attr("selected").is_some())
                .or_else(|| options.first())?;
            chosen.value().attr("value").map(str::to_string).unwrap_or_else(|| text_of(*chosen))
        }
        _ => {
            let kind = field.attr("type").unwrap_or("text").to_ascii_lowercase();
            match kind.as_str() {
                "submit" | "button" | "image" | "reset" | "file" => return None,
                "checkbox" | "radio" if field.attr("checked").is_none() => return None,
                "checkbox" | "radio" => field.attr("value").unwrap_or("on").to_string(),
                _ => field.attr("value").unwrap_or_default().to_string(),
            }
        }
    };
    Some((name.to_string(), value))
}

/// The CSRF token a page carries: its `csrf_token` hidden field, else the `X-CSRF-Token` of
/// an `hx-headers` attribute.
fn page_token(raw: &Raw) -> Option<String> {
    let is_html = raw
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if !is_html || !raw.body.contains(csrf::FIELD) && !raw.body.contains("hx-headers") {
        return None;
    }
    let html = Html::parse_document(&raw.body);
    let field = parse_selector(&format!("input[name=\"{}\"]", csrf::FIELD));
    if let Some(value) = html.select(&field).find_map(|e| e.value().attr("value")) {
        return (!value.is_empty()).then(|| value.to_string());
    }
    let hx = parse_selector("[hx-headers]");
    html.select(&hx).find_map(|e| {
        let headers: serde_json::Value =
            serde_json::from_str(e.value().attr("hx-headers")?).ok()?;
        let token = headers.as_object()?.iter().find_map(|(name, value)| {
            name.eq_ignore_ascii_case(csrf::HEADER).then(|| value.as_str())?
        })?;
        (!token.is_empty()).then(|| token.to_string())
    })
}

/// A `Set-Cookie` header's name and value; `None` as the value when it deletes the cookie
/// (`Max-Age` zero or less, or an `Expires` in the past).
fn parse_set_cookie(line: &str) -> Option<(String, Option<String>)> {
    let mut parts = line.split(';');
    let (name, value) = parts.next()?.trim().split_once('=')?;
    let mut deleted = false;
    for attribute in parts {
        let (key, val) = attribute.trim().split_once('=').unwrap_or((attribute.trim(), ""));
        if key.eq_ignore_ascii_case("max-age") {
            deleted = val.trim().parse::<i64>().is_ok_and(|age| age <= 0);
            // Max-Age wins over Expires.
            break;
        }
        if key.eq_ignore_ascii_case("expires") && expired(val.trim()) {
            deleted = true;
        }
    }
    let value = value.trim().trim_matches('"').to_string();
    Some((name.trim().to_string(), (!deleted).then_some(value)))
}

/// True for an HTTP date (`Thu, 01 Jan 1970 00:00:00 GMT`) in the past; false for one it
/// cannot read.
fn expired(date: &str) -> bool {
    let words: Vec<&str> = date.split([' ', ',', ':']).filter(|w| !w.is_empty()).collect();
    let [_, day, month, year, hour, minute, second, "GMT"] = words.as_slice() else {
        return false;
    };
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let at = (|| {
        let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u8 + 1;
        let date = time::Date::from_calendar_date(
            year.parse().ok()?,
            time::Month::try_from(month).ok()?,
            day.parse().ok()?,
        )
        .ok()?;
        let time =
            time::Time::from_hms(hour.parse().ok()?, minute.parse().ok()?, second.parse().ok()?)
                .ok()?;
        Some(time::PrimitiveDateTime::new(date, time).assume_utc())
    })();
    at.is_some_and(|at| at <= time::OffsetDateTime::now_utc())
}

/// The path to request for a `Location`: an absolute URL of this site becomes its path; a
/// relative one is resolved against the current path. Panics for another site.
fn resolve(client: &Client, current: &str, location: &str) -> String {
    if location.starts_with('/') && !location.starts_with("//") {
        return location.to_string();
    }
    if let Some(rest) = location.strip_prefix(client.inner().origin.as_str())
        && (rest.is_empty() || rest.starts_with(['/', '?']))
    {
        return if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
    }
    if location.contains("://") || location.starts_with("//") {
        panic!("redirect to another site, which the test client cannot follow: {location}");
    }
    let path = current.split(['?', '#']).next().unwrap_or("/");
    let dir = &path[..=path.rfind('/').unwrap_or(0)];
    if location.starts_with('?') { format!("{path}{location}") } else { format!("{dir}{location}") }
}

/// The start of a body, for panic messages.
fn excerpt(body: &str) -> String {
    const MAX: usize = 2000;
    match body.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &body[..at], body.len()),
        None if body.is_empty() => "(empty body)".to_string(),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_lines_set_and_delete() {
        let set = parse_set_cookie("_csrf=abc; Path=/; Max-Age=31536000; HttpOnly").unwrap();
        assert_eq!(set, ("_csrf".to_string(), Some("abc".to_string())));
        let gone = parse_set_cookie("_session=; Path=/; Max-Age=0; HttpOnly").unwrap();
        assert_eq!(gone, ("_session".to_string(), None));
        let old = parse_set_cookie("a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
        assert_eq!(old, ("a".to_string(), None));
        let later = parse_set_cookie("a=b; Expires=Fri, 01 Jan 2100 00:00:00 GMT").unwrap();
        assert_eq!(later, ("a".to_string(), Some("b".to_string())));
        assert_eq!(parse_set_cookie("no equals sign"), None);
    }

    #[test]
    fn excerpts_are_cut_on_a_character() {
        assert_eq!(excerpt(""), "(empty body)");
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(3000);
        assert!(excerpt(&long).starts_with(&"é".repeat(2000)));
        assert!(excerpt(&long).ends_with("(6000 bytes in all)"));
    }
}
