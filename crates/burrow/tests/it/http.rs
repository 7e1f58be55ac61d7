//! The request path: middleware, templates, errors, static files, health.

use burrow::Server;
use burrow::axum::body::Body;
use burrow::axum::http::{Request, StatusCode, header};

use crate::apps::{A, B, Named};
use crate::{Site, get, send};

fn server() -> Server {
    Server::new("server", "9.9.9").app(B::new()).app(A)
}

#[tokio::test(flavor = "multi_thread")]
async fn later_app_overrides_template_and_layout_gets_request_scoped_functions() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let page = send(
        &booted.stack,
        Request::get("/page").header("x-who", "carol").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("page from B: &lt;hi&gt;"),
        "B's template wins, values escaped: {}",
        page.body
    );
    assert!(page.body.contains("path=&#x2f;page who=carol"), "{}", page.body);
    // nav_links(): ordered by `order`, the current one marked active.
    let home = page.body.find(">Home<").unwrap();
    let pages = page.body.find(">Pages<").unwrap();
    assert!(home < pages, "{}", page.body);
    assert!(page.body.contains("class=\"on\">Pages<"), "{}", page.body);
    assert_eq!(page.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread")]
async fn htmx_requests_get_the_content_block_only() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let fragment = send(
        &booted.stack,
        Request::get("/page").header("hx-request", "true").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(fragment.body, "page from B: &lt;hi&gt;");
    // A boosted navigation is a full page.
    let boosted = send(
        &booted.stack,
        Request::get("/page")
            .header("hx-request", "true")
            .header("hx-boosted", "true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(boosted.body.starts_with("<html>"), "{}", boosted.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn app_middleware_runs_in_app_order_around_all_routes() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    assert_eq!(
        get(&booted.stack, "/trail").await.body,
        "a,b",
        "a is registered before b (b depends on a), so a is outer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_ran_and_handlers_read_the_database() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    assert_eq!(get(&booted.stack, "/items").await.body, "first");
}

#[tokio::test(flavor = "multi_thread")]
async fn panics_become_a_500_page_and_the_server_goes_on() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let res = get(&booted.stack, "/panic").await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.body.contains("500") && res.body.contains("Something went wrong"), "{}", res.body);
    assert!(!res.body.contains("boom"), "panic messages are logged, not shown");
    let json = send(
        &booted.stack,
        Request::get("/panic").header("accept", "application/json").body(Body::empty()).unwrap(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(v["code"], 500);
    assert_eq!(get(&booted.stack, "/items").await.status, StatusCode::OK);
}

/// Log lines written while a test holds the subscriber, kept.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// On the test's own thread (current-thread runtime): the subscriber set for this thread
// sees what the stack logs while the test polls it.
#[tokio::test]
async fn errors_and_panics_are_500s_logged_with_the_request_id_by_the_core_stack() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let logged = || String::from_utf8(log.0.lock().unwrap().clone()).unwrap();

    let request = Request::get("/fails")
        .header("x-request-id", "req-500")
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap();
    let res = send(&booted.stack, request).await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    let json: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(json["error"], "Something went wrong on our side.", "the cause is not shown");
    assert_eq!(json["request_id"], "req-500");
    let text = logged();
    let line = text.lines().find(|l| l.contains("ERROR")).unwrap_or_default();
    assert!(line.contains("req-500") && line.contains("No such file"), "{text}");

    let res = send(
        &booted.stack,
        Request::get("/panic").header("x-request-id", "req-panic").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers["x-request-id"], "req-panic");
    assert_eq!(res.headers["x-frame-options"], "DENY", "the security headers too");
    let text = logged();
    let line = text.lines().find(|l| l.contains("boom at 42")).unwrap_or_default();
    assert!(line.contains("handler panicked") && line.contains("req-panic"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_goes_through_one_renderer() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let teapot = get(&booted.stack, "/teapot").await;
    assert_eq!(teapot.status, StatusCode::IM_A_TEAPOT);
    assert!(
        teapot.body.contains("short and stout") && teapot.body.contains("<html"),
        "{}",
        teapot.body
    );
    let missing = send(
        &booted.stack,
        Request::get("/nope").header("accept", "application/json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!((v["code"].as_u64(), v["request_id"].as_str().is_some()), (Some(404), true));
    let wrong_method =
        send(&booted.stack, Request::post("/page").body(Body::empty()).unwrap()).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers[header::ALLOW], "GET,HEAD");
    assert!(wrong_method.body.contains("405"), "{}", wrong_method.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_honoured_or_generated() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let echoed = send(
        &booted.stack,
        Request::get("/id").header("x-request-id", "abc-123").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(echoed.body, "abc-123");
    assert_eq!(echoed.headers["x-request-id"], "abc-123");
    let generated = get(&booted.stack, "/id").await;
    assert!(!generated.body.is_empty());
    assert_eq!(generated.headers["x-request-id"], generated.body.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_peer_is_none_in_process_unless_the_request_brings_one() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    assert_eq!(get(&booted.stack, "/peer").await.body, "None None");
    let mut request = Request::get("/peer").body(Body::empty()).unwrap();
    let addr: std::net::SocketAddr = "[::ffff:10.0.0.7]:5000".parse().unwrap();
    request.extensions_mut().insert(burrow::PeerAddr(addr));
    let reply = send(&booted.stack, request).await;
    assert_eq!(reply.body, r#"Some("[::ffff:10.0.0.7]:5000") Some(10.0.0.7)"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn static_files_have_hashed_immutable_urls() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let page = get(&booted.stack, "/only-a").await;
    let url =
        page.body.split("css at ").nth(1).and_then(|s| s.split('<').next()).unwrap().to_string();
    assert!(
        url.starts_with("/static/probe/site.")
            && url.ends_with(".css")
            && url.len() > "/static/probe/site.css".len(),
        "{url}"
    );
    let css = get(&booted.stack, &url).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.body, "body { color: red }\n");
    assert_eq!(css.headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let etag = css.headers[header::ETAG].clone();
    let unhashed = send(
        &booted.stack,
        Request::get("/static/probe/site.css")
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(unhashed.status, StatusCode::NOT_MODIFIED);
    assert_eq!(get(&booted.stack, "/static/probe/other.css").await.status, StatusCode::NOT_FOUND);
    // htmx ships with the framework.
    assert_eq!(get(&booted.stack, "/static/burrow/htmx.min.js").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_names_the_failing_app_and_liveness_the_version() {
    let site = Site::new();
    let booted = site.build(server(), &["--b-ready", "false"]).unwrap();
    let live = get(&booted.stack, "/healthz/live").await;
    let v: serde_json::Value = serde_json::from_str(&live.body).unwrap();
    assert_eq!((live.status, v["version"].as_str()), (StatusCode::OK, Some("9.9.9")));
    let ready = get(&booted.stack, "/healthz/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert!(v["failed"]["b"].as_str().unwrap().contains("switched off"), "{v}");
    assert!(v["failed"].get("database").is_none(), "{v}");

    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    assert_eq!(get(&booted.stack, "/healthz/ready").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn body_limit_answers_413_through_the_renderer() {
    let site = Site::new();
    let booted = site.build(server(), &["--max-body-size", "1KB"]).unwrap();
    let big = send(
        &booted.stack,
        Request::post("/page")
            .header(header::CONTENT_LENGTH, 4096)
            .body(Body::from(vec![b'a'; 4096]))
            .unwrap(),
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(big.body.contains("413"), "{}", big.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_hooks_run_in_reverse_app_order_and_close_the_database() {
    let site = Site::new();
    let first = Named::new("first", &[]);
    let log = first.2.clone();
    let second = Named("second", &["first"], log.clone());
    let booted = site.build(Server::new("server", "1").app(second).app(first), &[]).unwrap();
    booted.shutdown().await;
    assert_eq!(*log.lock().unwrap(), ["second", "first"]);
    assert!(
        booted.ctx.db.read(|c| c.query::<(i64,)>("SELECT 1", &[])).await.is_err(),
        "database closed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn security_headers_are_added_unless_a_route_sets_its_own() {
    let site = Site::new();
    let booted = site
        .build(
            server(),
            &["--base-url", "https://a.example", "--content-security-policy", "default-src 'self'"],
        )
        .unwrap();
    let page = get(&booted.stack, "/page").await;
    let framable = get(&booted.stack, "/framable").await;
    let missing = get(&booted.stack, "/nope").await;
    for (what, reply) in [("page", &page), ("framable", &framable), ("404", &missing)] {
        assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(
            reply.headers["strict-transport-security"], "max-age=63072000; includeSubDomains",
            "{what}"
        );
        assert_eq!(
            reply.headers["content-security-policy"], "default-src 'self'; frame-ancestors 'none'",
            "{what}"
        );
    }
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let framing: Vec<_> = framable.headers.get_all(header::X_FRAME_OPTIONS).iter().collect();
    assert_eq!(framing, ["SAMEORIGIN"], "the route's own header, and only it");
}

/// gzip for the clients that ask for it, the body as it is for the others; either way a
/// response that could have been compressed says that it varies by `Accept-Encoding`, so a
/// cache never hands the one to the other, and a small one is left alone.
#[tokio::test(flavor = "multi_thread")]
async fn responses_are_gzipped_on_request_and_vary_by_accept_encoding() {
    let site = Site::new();
    let booted = site.build(server(), &[]).unwrap();
    let varies = |reply: &crate::Reply| {
        let vary = reply.headers.get_all(header::VARY).iter();
        vary.filter(|v| v.as_bytes().eq_ignore_ascii_case(b"accept-encoding")).count()
    };
    let page = |encoding: Option<&str>| {
        let mut request = Request::get("/big");
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        send(&booted.stack, request.body(Body::empty()).unwrap())
    };

    let plain = page(None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.body, "<p>big</p>\n".repeat(200));
    assert_eq!(plain.headers.get(header::CONTENT_ENCODING), None);
    assert_eq!(varies(&plain), 1, "{:?}", plain.headers);

    let gzipped = page(Some("gzip")).await;
    assert_eq!(gzipped.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(varies(&gzipped), 1, "{:?}", gzipped.headers);
    assert!(gzipped.body.len() < plain.body.len());

    let identity = page(Some("identity")).await;
    assert_eq!(identity.headers.get(header::CONTENT_ENCODING), None);
    assert_eq!(identity.body, plain.body);
    assert_eq!(varies(&identity), 1, "{:?}", identity.headers);

    let small = get(&booted.stack, "/healthz/live").await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(varies(&small), 0, "{:?}", small.headers);
}

/// A request reaches its handler with few enough extensions that their map keeps its first
/// allocation (room for 3): a 4th would grow it, an allocation and a rehash in every
/// request. Burrow adds its `Scope`, axum the route's parameters; axum's `matched-path`
/// and `original-uri` features, which would add one each, are off (bench/README.md, step
/// 53), and the client's address is added only behind a trusted proxy.
#[tokio::test(flavor = "multi_thread")]
async fn requests_reach_handlers_with_at_most_three_extensions() {
    use burrow::AppBuilder;
    use burrow::axum::extract::Request as Incoming;
    use burrow::axum::routing;

    let count = |request: Incoming| async move { request.extensions().len().to_string() };
    let routes = burrow::axum::Router::new().route("/n", routing::get(count));
    let probe = AppBuilder::new("probe").routes(routes);
    // Every default app: sessions, CSRF, flash messages, theme.
    let server = Server::new("s", "1").defaults("Site").app(probe);
    let site = Site::new();
    let booted = site.build(server, &[]).unwrap();
    let reply = get(&booted.stack, "/n").await;
    assert_eq!(reply.status, StatusCode::OK);
    let extensions: usize = reply.body.parse().unwrap();
    assert!(extensions <= 3, "{extensions} extensions: the map grew a second time");
}
