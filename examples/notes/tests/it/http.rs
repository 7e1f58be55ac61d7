//! The framework's HTTP behaviour as the notes server shows it: error pages, body limit,
//! request ids, health checks, gzip, static files.

use serde_json::Value;

use crate::support::{
    Launch, RawRequest, VERSION, chmod, client, connect, create_note, db_path, get, header,
    note_ids, require_nobody, tempdir,
};

#[tokio::test]
async fn errors_are_html_or_json() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();

    let res =
        server.credentials().attach(http.get(server.url("/no/such/page"))).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(
        header(&res, "content-type").is_some_and(|t| t.starts_with("text/html")),
        "404 content type: {:?}",
        header(&res, "content-type")
    );
    let body = res.text().await.unwrap();
    assert!(body.contains("404"), "404 page does not show the code:\n{body}");

    let res = server
        .credentials()
        .attach(http.get(server.url("/no/such/page")))
        .header("Accept", "application/json")
        .header("X-Request-Id", "json-404")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(
        header(&res, "content-type").is_some_and(|t| t.starts_with("application/json")),
        "JSON 404 content type: {:?}",
        header(&res, "content-type")
    );
    let json: Value = res.json().await.unwrap();
    assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()), "error: {json}");
    assert_eq!(json["code"], 404, "{json}");
    assert_eq!(json["request_id"], "json-404", "{json}");

    // A PUT needs a CSRF token like any unsafe method (without one it is a 403, see
    // sessions::csrf_is_enforced_over_http); with one, the router answers 405.
    let csrf = server.credentials();
    let res = csrf.attach(http.put(server.url("/notes"))).send().await.unwrap();
    assert_eq!(res.status(), 405, "PUT /notes");
    let allow = header(&res, "allow").expect("Allow header on 405");
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow: {allow}");
    assert!(res.text().await.unwrap().contains("405"), "405 page does not show the code");

    let res = csrf
        .attach(http.put(server.url("/notes")))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["code"], 405, "{json}");

    // burrow::Path: an id that does not parse is a page that does not exist, not a 400.
    for path in [
        "/notes/abc",
        "/notes/abc/edit",
        "/notes/1.5",
        "/notes/99999999999999999999999",
        "/notes/0",
        "/notes/-1",
    ] {
        assert_eq!(get(&http, &server, path).await.0, 404, "GET {path}");
    }
    let res = server
        .credentials()
        .attach(http.get(server.url("/notes/abc")))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["code"], 404, "{json}");
}

/// Large bodies are sent as curl sends them (`Expect: 100-continue`); see
/// [`RawRequest::send_expecting_continue`] for why not with the HTTP client.
#[tokio::test]
async fn large_bodies_get_413() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let big = format!("title=big&content={}", "a".repeat(2 * 1024 * 1024));
    // With the cookies and CSRF token (as a header) a form needs, so that nothing but the
    // size is wrong.
    let csrf = server.credentials().headers();
    let post =
        || RawRequest::post_form(server.port, "/notes", big.as_bytes()).headers(csrf.clone());

    let res = post().send_expecting_continue().expect("POST /notes");
    assert_eq!(res.status, 413, "2 MB form with the default 1 MB limit");
    assert!(
        res.header("content-type").is_some_and(|t| t.starts_with("text/html")),
        "413 content type {:?}",
        res.header("content-type")
    );
    assert!(String::from_utf8_lossy(&res.body).contains("413"), "413 page does not show the code");
    assert!(res.header("x-request-id").is_some(), "no X-Request-Id on 413");

    let res =
        post().header("Accept", "application/json").send_expecting_continue().expect("POST /notes");
    assert_eq!(res.status, 413);
    assert!(
        res.header("content-type").is_some_and(|t| t.starts_with("application/json")),
        "413 content type {:?}",
        res.header("content-type")
    );
    let json: Value = serde_json::from_slice(&res.body).expect("JSON 413 body");
    assert_eq!(json["code"], 413, "{json}");
    assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()), "{json}");
    assert_eq!(json["request_id"].as_str(), res.header("x-request-id"), "{json}");

    let (_, list) = get(&http, &server, "/notes").await;
    assert!(note_ids(&list).is_empty(), "a note was stored from a rejected body");
}

#[tokio::test]
async fn max_body_size_setting_applies() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(["--max-body-size", "10KB"]).start();
    let http = client();
    let form = format!("title=twenty&content={}", "c".repeat(20 * 1024));
    let res = RawRequest::post_form(server.port, "/notes", form)
        .headers(server.credentials().headers())
        .send_expecting_continue()
        .expect("POST /notes");
    assert_eq!(res.status, 413, "20 KB form with --max-body-size 10KB");
    let id = create_note(&http, &server, "five", &"c".repeat(5 * 1024)).await;
    let (_, list) = get(&http, &server, "/notes").await;
    assert_eq!(note_ids(&list), [id]);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let request_id = async |id: Option<&str>, path: &str| -> String {
        let mut req = server.credentials().attach(http.get(server.url(path)));
        if let Some(id) = id {
            req = req.header("X-Request-Id", id);
        }
        let res = req.send().await.unwrap();
        header(&res, "x-request-id").unwrap_or_else(|| panic!("no X-Request-Id on {path}"))
    };

    assert_eq!(request_id(Some("test-abc-123"), "/").await, "test-abc-123");
    assert_eq!(
        request_id(Some("test-abc-123"), "/nope").await,
        "test-abc-123",
        "404s carry it too"
    );
    let longest = "a".repeat(128);
    assert_eq!(request_id(Some(&longest), "/").await, longest, "128 characters is allowed");

    let first = request_id(None, "/").await;
    let second = request_id(None, "/notes").await;
    assert!(!first.is_empty() && !second.is_empty());
    assert_ne!(first, second, "generated ids repeat");

    for bad in ["<script>", &"a".repeat(200), "has space", "semi;colon"] {
        let id = request_id(Some(bad), "/").await;
        assert!(!id.is_empty(), "empty id for bad {bad:?}");
        assert_ne!(id, bad, "bad id {bad:?} was echoed");
        assert!(
            id.len() <= 128
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b)),
            "generated id {id:?}"
        );
    }
}

#[tokio::test]
async fn health_checks_answer_json() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();

    let res =
        server.credentials().attach(http.get(server.url("/healthz/live"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").is_some_and(|t| t.starts_with("application/json")));
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["status"], "ok", "{json}");
    assert_eq!(json["version"], VERSION, "{json}");

    let res =
        server.credentials().attach(http.get(server.url("/healthz/ready"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["status"], "ready", "{json}");
}

/// A small answer's `Content-Length` reaches the client. The admin's redirect from
/// `/admin` to `/admin/` arrives in the core layer with two headers, `Location` and axum's
/// `Content-Length: 0`, and the id and four security headers would grow its header map: so
/// the core layer takes the length out and hyper writes it (`core_layer::make_room`). The
/// answer to a `HEAD` keeps axum's: hyper would not write it.
#[tokio::test]
async fn small_answers_carry_their_length_on_the_wire() {
    use std::io::{Read, Write};

    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let get = RawRequest::get(server.port, "/admin").send().unwrap();
    assert_eq!(get.status, 308);
    assert_eq!(get.header("location"), Some("/admin/"));
    assert_eq!(get.header("content-length"), Some("0"), "{:?}", get.headers);
    assert_eq!(get.header("transfer-encoding"), None, "{:?}", get.headers);
    assert!(get.header("x-request-id").is_some(), "{:?}", get.headers);

    // Read to the end rather than with `send`, which reads a body by `Content-Length`: a
    // body after this head would go unseen.
    let mut stream = connect(server.port).unwrap();
    stream.write_all(RawRequest::new(server.port, "HEAD", "/admin").head().as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    assert!(head.lines().any(|line| line.eq_ignore_ascii_case("content-length: 0")), "{head}");
    assert_eq!(body, "", "a HEAD answer has no body");
}

/// Readiness follows the database: an unreadable file makes it 503, naming "database".
/// File permissions do not apply to root, so the server runs as `nobody`.
#[tokio::test]
async fn readiness_fails_when_the_database_is_unusable() {
    require_nobody();
    let dir = tempdir();
    chmod(dir.path(), 0o777);
    let server = Launch::serve(dir.path()).nobody().start();
    let http = client();
    let ready = async || -> (u16, Value) {
        let res = server
            .credentials()
            .attach(http.get(server.url("/healthz/ready")))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    };
    assert_eq!(ready().await.0, 200);

    let db = db_path(dir.path());
    chmod(&db, 0o000);
    let (status, json) = ready().await;
    assert_eq!(status, 503, "ready with an unreadable database: {json}");
    assert_eq!(json["status"], "unavailable", "{json}");
    assert!(
        json["failed"]["database"].as_str().is_some_and(|r| !r.is_empty()),
        "failed.database missing: {json}"
    );
    assert_eq!(
        json["failed"].as_object().map(|o| o.len()),
        Some(1),
        "only the database failed: {json}"
    );
    let res =
        server.credentials().attach(http.get(server.url("/healthz/live"))).send().await.unwrap();
    assert_eq!(res.status(), 200, "live does not depend on the database");

    chmod(&db, 0o644);
    let (status, json) = ready().await;
    assert_eq!(status, 200, "ready again after chmod back: {json}");
    assert_eq!(json["status"], "ready");
}

#[tokio::test]
async fn responses_are_gzipped_on_request() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    for path in ["/", "/notes"] {
        let res = server
            .credentials()
            .attach(http.get(server.url(path)))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "content-encoding").as_deref(), Some("gzip"), "GET {path}");
        let body = res.bytes().await.unwrap();
        assert!(
            body.starts_with(&[0x1f, 0x8b]),
            "GET {path}: body is not gzip: {:?}",
            &body[..body.len().min(16)]
        );
    }
    let res = server.credentials().attach(http.get(server.url("/"))).send().await.unwrap();
    assert_eq!(header(&res, "content-encoding"), None, "compressed without Accept-Encoding");
    assert!(res.text().await.unwrap().contains("<html"));
}

#[tokio::test]
async fn home_page_links_a_cacheable_stylesheet() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let (status, home) = get(&http, &server, "/").await;
    assert_eq!(status, 200);
    // minijinja escapes `/` in attributes as `&#x2f;`, which browsers decode.
    let decoded = home.replace("&#x2f;", "/");
    for (label, href) in [("Home", "/"), ("Notes", "/notes")] {
        let link = decoded.split("<a ").filter_map(|a| a.split_once("</a>")).find(|(a, _)| {
            a.contains(&format!("href=\"{href}\"")) && a.ends_with(&format!(">{label}"))
        });
        assert!(link.is_some(), "nav link {label} → {href} missing:\n{home}");
    }

    let prefix = "/static/css/app.";
    let start = home
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix}HASH.css link in the home page:\n{home}"));
    let end = start + home[start..].find('"').expect("closing quote");
    let href = &home[start..end];
    let hash = href
        .strip_prefix(prefix)
        .and_then(|h| h.strip_suffix(".css"))
        .unwrap_or_else(|| panic!("stylesheet URL `{href}`"));
    assert!(
        !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "no content hash in `{href}`"
    );
    assert!(
        home[..start].rfind('<').is_some_and(|tag| home[tag..start].contains("stylesheet")),
        "`{href}` is not in a stylesheet link"
    );

    let res = server.credentials().attach(http.get(server.url(href))).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {href}");
    assert!(
        header(&res, "content-type").is_some_and(|t| t.starts_with("text/css")),
        "content type {:?}",
        header(&res, "content-type")
    );
    let cache = header(&res, "cache-control").unwrap_or_default();
    assert!(
        cache.contains("immutable") && cache.contains("max-age=31536000"),
        "Cache-Control: {cache}"
    );
    assert!(!res.text().await.unwrap().is_empty(), "empty stylesheet");

    assert_eq!(get(&http, &server, "/static/nope.css").await.0, 404);
    assert_eq!(
        get(&http, &server, "/static/css/app.000000000000.css").await.0,
        404,
        "a wrong hash is not served"
    );
}
