//! The three workloads of `bench/compare.sh` in-process, on both servers: the bench app's
//! router (every default layer and app: request id, access log call site, error renderer,
//! body limit, timeout, gzip negotiation, security headers, session, CSRF, flash messages)
//! and bench-bare's, without sockets or HTTP parsing. Each workload is a group with a
//! `bare` and a `burrow` function, so the framework's own cost is their difference, and a
//! regression in its request path shows in a diff of these figures (issue 13).
//!
//! Run by hand: `cargo bench -p bench-app --bench workloads` (see bench/README.md).

use std::convert::Infallible;
use std::hint::black_box;

use burrow::axum::body::{Body, Bytes, to_bytes};
use burrow::axum::http::{Request, StatusCode, header};
use burrow::axum::response::Response;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};

// The allocator bench-app's binary declares (src/main.rs), for both servers here: the
// figures are of the code the binary runs.
#[global_allocator]
static ALLOCATOR: burrow::Allocator = burrow::Allocator;

/// What both servers are: bench-bare's `Router` and bench-app's `burrow::Stack`.
trait Server:
    Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Server for S where
    S: Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

struct Fixture<S> {
    rt: Runtime,
    server: S,
    /// The browser's `Cookie` header (`_session` with `user`, `_csrf`) and the form token.
    cookie: String,
    token: String,
    _dir: tempfile::TempDir,
}

/// The server `make` builds on a database in a temp dir, with a browser's credentials.
fn setup<S: Server>(make: impl FnOnce(&str) -> S) -> Fixture<S> {
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let dsn = dir.path().join("app.db");
    let server = {
        let _guard = rt.enter();
        make(dsn.to_str().expect("UTF-8 temp dir"))
    };
    let (cookie, token) = rt.block_on(credentials(&server));
    let fx = Fixture { rt, server, cookie, token, _dir: dir };
    check(&fx, get("/plaintext", &fx.cookie), StatusCode::OK, "Hello, World!");
    check(&fx, get("/entries", &fx.cookie), StatusCode::OK, "Signed in as bench");
    check(&fx, post(&fx, 0), StatusCode::SEE_OTHER, "");
    fx
}

/// `GET /login` for the session cookie, then `GET /entries` for the CSRF cookie and the
/// form's token, as bench/compare.sh gets them.
async fn credentials(server: &impl Server) -> (String, String) {
    let cookies = |response: &Response| {
        let values = response.headers().get_all(header::SET_COOKIE).iter();
        values.filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string)).collect()
    };
    let login = server.clone().oneshot(get("/login", "")).await.expect("infallible");
    let session: Vec<String> = cookies(&login);
    let page = server.clone().oneshot(get("/entries", &session.join("; "))).await.unwrap();
    let cookie = [session, cookies(&page)].concat().join("; ");
    let body = to_bytes(page.into_body(), usize::MAX).await.expect("page body");
    let html = String::from_utf8_lossy(&body);
    const FIELD: &str = "name=\"csrf_token\" value=\"";
    let at = html.find(FIELD).expect("a csrf_token field on /entries") + FIELD.len();
    (cookie, html[at..].chars().take_while(|&c| c != '"').collect())
}

fn get(uri: &str, cookie: &str) -> Request<Body> {
    let request = Request::get(uri).header(header::HOST, "127.0.0.1");
    let request = if cookie.is_empty() { request } else { request.header(header::COOKIE, cookie) };
    request.body(Body::empty()).expect("request")
}

fn post<S>(fx: &Fixture<S>, n: u64) -> Request<Body> {
    let body = format!(
        "csrf_token={}&name=bench+{n}&message=Written+by+the+workloads+benchmark.",
        fx.token.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
    );
    Request::post("/entries")
        .header(header::HOST, "127.0.0.1")
        .header(header::ORIGIN, "http://127.0.0.1")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &fx.cookie)
        .body(Body::from(body))
        .expect("request")
}

async fn send(server: &impl Server, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = server.clone().oneshot(request).await.expect("the server is infallible");
    let status = response.status();
    (status, to_bytes(response.into_body(), usize::MAX).await.expect("response body"))
}

/// Runs `request` once and panics unless it answers `want` with `needle` in the body:
/// a broken route fails loudly instead of timing an error page.
fn check<S: Server>(fx: &Fixture<S>, request: Request<Body>, want: StatusCode, needle: &str) {
    let (status, body) = fx.rt.block_on(send(&fx.server, request));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, want, "unexpected status; body:\n{text}");
    assert!(text.contains(needle), "body lacks {needle:?}:\n{text}");
}

/// Times `request(n)` (the n-th request) against `want`, as `name` in `group`.
fn time<S: Server>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    fx: &Fixture<S>,
    request: impl Fn(&Fixture<S>, u64) -> Request<Body>,
    want: StatusCode,
) {
    let mut n = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            n += 1;
            let (status, body) = fx.rt.block_on(send(&fx.server, request(fx, n)));
            debug_assert_eq!(status, want);
            black_box(body)
        })
    });
}

fn workloads(c: &mut Criterion) {
    let bare = setup(|dsn| {
        // The requests' `Host` (bench-app's base URL is derived the same way).
        bench_bare::app(dsn, "127.0.0.1".into()).expect("bench-bare builds")
    });
    let burrow = setup(|dsn| {
        let server = bench_app::server().build(["bench-app", "--database-dsn", dsn]);
        server.expect("the bench app builds").stack
    });
    for (name, uri) in [("plaintext", "/plaintext"), ("page", "/entries")] {
        let request = |cookie: &str| get(uri, cookie);
        let mut group = c.benchmark_group(name);
        time(&mut group, "bare", &bare, |fx, _| request(&fx.cookie), StatusCode::OK);
        time(&mut group, "burrow", &burrow, |fx, _| request(&fx.cookie), StatusCode::OK);
        group.finish();
    }
    // Last: it grows the tables (the page shows the 12 newest rows either way).
    let mut group = c.benchmark_group("post");
    time(&mut group, "bare", &bare, post, StatusCode::SEE_OTHER);
    time(&mut group, "burrow", &burrow, post, StatusCode::SEE_OTHER);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = workloads
}
criterion_main!(benches);
