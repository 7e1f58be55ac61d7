//! The three workloads of `bench/compare.sh` in-process, on both servers: the bench app's
//! router (every default layer and app: request id, access log call site, error renderer,
//! body limit, timeout, gzip negotiation, security headers, session, CSRF, flash messages)
//! and bench-bare's, without sockets or HTTP parsing. Each workload is a group with a
//! `bare` and a `burrow` function, so the framework's own cost is their difference, and a
//! regression in its request path shows in a diff of these figures (issue 13).
//!
//! Run by hand: `cargo bench -p bench-app --bench workloads` (see bench/README.md).

use std::hint::black_box;

use burrow::axum::Router;
use burrow::axum::body::{Body, Bytes, to_bytes};
use burrow::axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower::ServiceExt;

struct Fixture {
    rt: Runtime,
    router: Router,
    /// The browser's `Cookie` header (`_session` with `user`, `_csrf`) and the form token.
    cookie: String,
    token: String,
    _dir: tempfile::TempDir,
}

/// The two servers, each on its own database in a temp dir.
#[derive(Clone, Copy, Debug)]
enum Stack {
    Bare,
    Burrow,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Bare => "bare",
            Stack::Burrow => "burrow",
        }
    }
}

fn setup(stack: Stack) -> Fixture {
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let dsn = dir.path().join("app.db");
    let dsn = dsn.to_str().expect("UTF-8 temp dir");
    let router = {
        let _guard = rt.enter();
        match stack {
            Stack::Burrow => {
                let server = bench_app::server().build(["bench-app", "--database-dsn", dsn]);
                server.expect("the bench app builds").router
            }
            // The requests' `Host` (bench-app's base URL is derived the same way).
            Stack::Bare => bench_bare::app(dsn, "127.0.0.1".into()).expect("bench-bare builds"),
        }
    };
    let (cookie, token) = rt.block_on(credentials(&router));
    Fixture { rt, router, cookie, token, _dir: dir }
}

/// `GET /login` for the session cookie, then `GET /entries` for the CSRF cookie and the
/// form's token, as bench/compare.sh gets them.
async fn credentials(router: &Router) -> (String, String) {
    let cookies = |response: &burrow::axum::response::Response| {
        let values = response.headers().get_all(header::SET_COOKIE).iter();
        values.filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string)).collect()
    };
    let login = router.clone().oneshot(get("/login", "")).await.expect("infallible");
    let session: Vec<String> = cookies(&login);
    let page = router.clone().oneshot(get("/entries", &session.join("; "))).await.unwrap();
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

fn post(fx: &Fixture, n: u64) -> Request<Body> {
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

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    (status, to_bytes(response.into_body(), usize::MAX).await.expect("response body"))
}

/// Runs `request` once and panics unless it answers `want` with `needle` in the body:
/// a broken route fails loudly instead of timing an error page.
fn check(fx: &Fixture, request: Request<Body>, want: StatusCode, needle: &str) {
    let (status, body) = fx.rt.block_on(send(&fx.router, request));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, want, "unexpected status; body:\n{text}");
    assert!(text.contains(needle), "body lacks {needle:?}:\n{text}");
}

fn workloads(c: &mut Criterion) {
    let fixtures = [Stack::Bare, Stack::Burrow].map(|stack| (stack, setup(stack)));
    for (_, fx) in &fixtures {
        check(fx, get("/plaintext", &fx.cookie), StatusCode::OK, "Hello, World!");
        check(fx, get("/entries", &fx.cookie), StatusCode::OK, "Signed in as bench");
        check(fx, post(fx, 0), StatusCode::SEE_OTHER, "");
    }
    for (name, uri) in [("plaintext", "/plaintext"), ("page", "/entries")] {
        let mut group = c.benchmark_group(name);
        for (stack, fx) in &fixtures {
            group.bench_function(stack.name(), |b| {
                b.iter(|| {
                    let (status, body) = fx.rt.block_on(send(&fx.router, get(uri, &fx.cookie)));
                    debug_assert_eq!(status, StatusCode::OK);
                    black_box(body)
                })
            });
        }
        group.finish();
    }
    // Last: it grows the tables (the page shows the 12 newest rows either way).
    let mut group = c.benchmark_group("post");
    for (stack, fx) in &fixtures {
        let mut n = 0;
        group.bench_function(stack.name(), |b| {
            b.iter(|| {
                n += 1;
                let (status, body) = fx.rt.block_on(send(&fx.router, post(fx, n)));
                debug_assert_eq!(status, StatusCode::SEE_OTHER);
                black_box(body)
            })
        });
    }
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
