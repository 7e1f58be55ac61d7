//! Security hardening, attacked through the real binary over real sockets
//! (docs/security.md): security headers on every kind of response, HSTS and `__Host-`
//! cookies only under https, CSRF origin checks over plain http, 413 for chunked bodies
//! over the limit, flash messages that cannot overflow the session cookie, and cookies
//! that cannot be shadowed by a bad one of the same name.

use crate::support::https::{https_get, trusting};
use crate::support::{
    Launch, RawRequest, RawResponse, client, generate_notes, get, note_ids, set_cookie_value,
    tempdir,
};

/// Headers every response carries, whatever the settings.
const FIXED: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("cross-origin-opener-policy", "same-origin"),
];
const CSP: &str = "default-src 'self'; img-src 'self' data:";
/// What the server sends for [`CSP`]: framing refused in CSP terms too.
const CSP_SENT: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";
const PERMISSIONS: &str = "camera=(), geolocation=()";
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Header names (lower case) and values, as [`RawResponse`] has them.
type Headers = Vec<(String, String)>;

/// The headers of a response, as [`RawResponse`] has them.
fn pairs(headers: &reqwest::header::HeaderMap) -> Headers {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().expect("ASCII header").to_string()))
        .collect()
}

/// Each header of `expected` is there exactly once with that value; `absent` is not there.
fn assert_headers(
    what: &str,
    headers: &[(String, String)],
    expected: &[(&str, &str)],
    absent: &[&str],
) {
    for (name, value) in expected {
        let values: Vec<&str> =
            headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, [*value], "{what}: {name}; all headers: {headers:?}");
    }
    for name in absent {
        assert!(!headers.iter().any(|(n, _)| n == name), "{what}: {name} sent: {headers:?}");
    }
}

/// The headers a server started with `--content-security-policy CSP --permissions-policy
/// PERMISSIONS` and an http base URL sends on every response.
fn assert_all_security_headers(what: &str, headers: &[(String, String)]) {
    let mut expected = FIXED.to_vec();
    expected.extend([("content-security-policy", CSP_SENT), ("permissions-policy", PERMISSIONS)]);
    assert_headers(what, headers, &expected, &["strict-transport-security"]);
}

/// POSTs `body` with `Transfer-Encoding: chunked` on a new connection, so the server learns
/// its size only while reading it.
fn post_chunked(port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> RawResponse {
    RawRequest::post_form(port, path, body)
        .headers(headers.iter().cloned())
        .chunked()
        .send()
        .expect("the answer to a chunked POST")
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(headers: &[(String, String)], name: &str) -> Option<String> {
    let set_cookies = headers.iter().filter(|(n, _)| n == "set-cookie");
    set_cookie_value(set_cookies.map(|(_, v)| v.as_str()), name)
}

// ---------------------------------------------------------------------------------------
// Security headers

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let dir = tempdir();
    let server = Launch::serve(dir.path())
        .args(["--content-security-policy", CSP, "--permissions-policy", PERMISSIONS])
        .args(["--max-body-size", "10KB"])
        .start();
    let http = client();
    let credentials = server.credentials();
    let mut seen: Vec<(&str, u16, Headers)> = Vec::new();

    let res = http.get(server.url("/")).send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), pairs(res.headers()));
    let home = res.text().await.unwrap();
    seen.push(("home page", status, headers));
    let start = home.find("/static/css/app.").expect("a stylesheet link");
    let stylesheet = &home[start..start + home[start..].find('"').unwrap()];
    for (what, path) in [
        ("static file", stylesheet),
        ("missing page", "/no/such/page"),
        ("liveness", "/healthz/live"),
        ("readiness", "/healthz/ready"),
    ] {
        let res = http.get(server.url(path)).send().await.unwrap();
        seen.push((what, res.status().as_u16(), pairs(res.headers())));
    }
    let form = [("title", "Headers"), ("content", "")];
    let res = credentials.attach(http.post(server.url("/notes"))).form(&form).send().await.unwrap();
    seen.push(("redirect after a create", res.status().as_u16(), pairs(res.headers())));
    let res = http.post(server.url("/notes")).form(&form).send().await.unwrap();
    seen.push(("CSRF failure", res.status().as_u16(), pairs(res.headers())));
    let res = credentials.attach(http.put(server.url("/notes"))).send().await.unwrap();
    seen.push(("wrong method", res.status().as_u16(), pairs(res.headers())));

    let big =
        format!("title=big&content={}&csrf_token={}", "a".repeat(20 * 1024), credentials.token);
    let res = RawRequest::post_form(server.port, "/notes", big.as_bytes())
        .header("Cookie", &credentials.cookie)
        .send_expecting_continue()
        .expect("POST /notes");
    seen.push(("413 from Content-Length", res.status, res.headers));
    let res = post_chunked(
        server.port,
        "/notes",
        &[("Cookie", credentials.cookie.clone())],
        big.as_bytes(),
    );
    seen.push(("413 while reading a chunked body", res.status, res.headers));

    let expected_status = [
        ("home page", 200),
        ("static file", 200),
        ("missing page", 404),
        ("liveness", 200),
        ("readiness", 200),
        ("redirect after a create", 303),
        ("CSRF failure", 403),
        ("wrong method", 405),
        ("413 from Content-Length", 413),
        ("413 while reading a chunked body", 413),
    ];
    assert_eq!(
        seen.iter().map(|(what, status, _)| (*what, *status)).collect::<Vec<_>>(),
        expected_status
    );
    for (what, _, headers) in &seen {
        assert_all_security_headers(what, headers);
    }
}

/// The 503 of the timeout layer, deep inside the stack: a search ranking thousands of notes
/// by relevance takes well over the 1 ms allowed.
#[tokio::test]
async fn a_request_timeout_503_carries_the_security_headers() {
    let dir = tempdir();
    generate_notes(dir.path(), 5000);
    // Signed in on a server without the timeout (same database and keys): with 1 ms, the
    // pages that sign in would time out too.
    let credentials = Launch::serve(dir.path()).start().credentials();
    let server = Launch::serve(dir.path())
        .args(["--content-security-policy", CSP, "--permissions-policy", PERMISSIONS])
        .args(["--request-timeout", "1ms"])
        .start();
    let http = client();
    // A few tries: one search could still be fast enough (a warm cache, a quick machine).
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let request = http.get(server.url("/notes?q=burrow+OR+cedar+OR+delta"));
        let res = credentials.attach(request).send().await.unwrap();
        let status = res.status().as_u16();
        statuses.push(status);
        if status == 503 {
            assert_all_security_headers("503 from the request timeout", &pairs(res.headers()));
            assert!(res.text().await.unwrap().contains("503"), "the error page shows the code");
            return;
        }
    }
    panic!("no 503 with --request-timeout 1ms: {statuses:?}");
}

#[tokio::test]
async fn hsts_and_host_prefixed_cookies_only_under_https() {
    // Plain http: no HSTS, even when preload is asked for; cookies keep their names.
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(["--hsts-preload", "true"]).start();
    // The login page: a form anyone loads, with a CSRF cookie.
    let res = client().get(server.url("/auth/login")).send().await.unwrap();
    let headers = pairs(res.headers());
    assert_headers("http", &headers, &FIXED, &["strict-transport-security"]);
    assert!(set_cookie(&headers, "_csrf").is_some(), "{headers:?}");

    for (preload, hsts) in [(false, HSTS.to_string()), (true, format!("{HSTS}; preload"))] {
        let dir = tempdir();
        let certs = dir.path().join("certs");
        let mut launch = Launch::serve(dir.path()).selfsigned(&certs);
        if preload {
            launch = launch.args(["--hsts-preload", "true"]);
        }
        let server = launch.start_https();
        let tls = trusting(&certs.join("selfsigned-cert.pem"), &["h2", "http/1.1"]);
        for path in ["/auth/login", "/no/such/page"] {
            let reply = https_get(server.port, "localhost", tls.clone(), path).await.unwrap();
            let headers = pairs(&reply.headers);
            let what = format!("https, preload {preload}, {path} ({})", reply.status);
            let mut expected = FIXED.to_vec();
            expected.push(("strict-transport-security", &hsts));
            assert_headers(&what, &headers, &expected, &[]);
            if path == "/auth/login" {
                let cookie = headers
                    .iter()
                    .find(|(n, v)| n == "set-cookie" && v.starts_with("__Host-_csrf="))
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_else(|| panic!("{what}: no __Host-_csrf cookie: {headers:?}"));
                assert!(cookie.contains("; Secure") && cookie.contains("Path=/"), "{cookie}");
                assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// CSRF over plain http

#[tokio::test]
async fn csrf_refuses_foreign_origins_over_plain_http() {
    const SECRET_IN_REFERER: &str = "R3fererPathS3cret";
    let dir = tempdir();
    // A base URL other than the address the tests use: either one is this site.
    let server = Launch::serve(dir.path()).args(["--base-url", "http://notes.test:8080"]).start();
    let port = server.port;
    let http = client();
    let credentials = server.credentials();
    let post = |origin: Option<String>, referer: Option<String>| {
        let mut request = credentials
            .attach(http.post(server.url("/notes")))
            .form(&[("title", "Origin check"), ("content", "")]);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        if let Some(referer) = referer {
            request = request.header("Referer", referer);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let some = |s: &str| Some(s.to_string());
    let refused = [
        ("foreign Origin", some("https://evil.example"), None),
        ("Origin null", some("null"), None),
        ("foreign Referer", None, Some(format!("http://evil.example/p?t={SECRET_IN_REFERER}"))),
        ("lookalike Referer", None, Some(format!("http://127.0.0.1:{port}.evil.example/"))),
        ("the Host with another port", Some(format!("http://127.0.0.1:{}", port + 1)), None),
        ("the Host over https", Some(format!("https://127.0.0.1:{port}")), None),
        ("foreign Origin, own Referer", some("https://evil.example"), Some(server.url("/"))),
    ];
    for (case, origin, referer) in refused.clone() {
        assert_eq!(post(origin, referer).await, 403, "{case}");
    }
    let accepted = [
        ("Origin of the Host", Some(format!("http://127.0.0.1:{port}")), None),
        ("Origin of the base URL", some("http://notes.test:8080"), None),
        ("Referer of the Host", None, Some(server.url("/notes/new?x=1"))),
        ("neither header (not a browser)", None, None),
    ];
    for (case, origin, referer) in accepted.clone() {
        assert_eq!(post(origin, referer).await, 303, "{case}");
    }
    let (_, list) = get(&http, &server, "/notes").await;
    assert_eq!(note_ids(&list).len(), accepted.len(), "only the accepted posts created notes");

    let mut from = 0;
    for (case, _, _) in &refused {
        let (at, _) = server.wait_for_log_after(from, case, |l| l.contains("CSRF check failed"));
        from = at + 1;
    }
    let log = server.log();
    assert!(
        !log.iter().any(|l| l.contains(SECRET_IN_REFERER)),
        "a Referer's query was logged:\n{}",
        log.join("\n")
    );
}

/// Raw chunked form posts over the limit, with a valid cookie and token: the CSRF layer
/// reads the body for the token (token in the form), or the handler's form extractor does
/// (token in the header). Either way the answer is 413, not a CSRF failure.
#[tokio::test]
async fn chunked_forms_over_the_limit_are_413_not_403() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(["--max-body-size", "10KB"]).start();
    let credentials = server.credentials();
    let content = "b".repeat(40 * 1024);
    let cookie = ("Cookie", credentials.cookie.clone());
    let in_form = format!("title=big&content={content}&csrf_token={}", credentials.token);
    let res =
        post_chunked(server.port, "/notes", std::slice::from_ref(&cookie), in_form.as_bytes());
    assert_eq!(res.status, 413, "token in the form: {}", String::from_utf8_lossy(&res.body));
    assert!(String::from_utf8_lossy(&res.body).contains("413"), "the 413 page");
    let in_header = format!("title=big&content={content}");
    let headers = [cookie, ("X-CSRF-Token", credentials.token.clone())];
    let res = post_chunked(server.port, "/notes", &headers, in_header.as_bytes());
    assert_eq!(res.status, 413, "token in the header: {}", String::from_utf8_lossy(&res.body));
    // Control: the same chunked post under the limit is created.
    let small = format!("title=small&content=c&csrf_token={}", credentials.token);
    let res = post_chunked(server.port, "/notes", &headers[..1], small.as_bytes());
    assert_eq!(res.status, 303, "{}", String::from_utf8_lossy(&res.body));
}

// ---------------------------------------------------------------------------------------
// Flash messages and cookies

/// Long titles of 4-byte characters: a few "Created …" messages fill the 4096-byte cookie.
#[tokio::test]
async fn flash_messages_never_overflow_the_session_cookie() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let credentials = server.credentials();
    let titles: Vec<String> = (1..=5).map(|n| format!("{n}{}", "🦀".repeat(199))).collect();
    // The signed-in session, then each one the server rewrites.
    let mut session = credentials.cookie.split("; ").find_map(|c| c.strip_prefix("_session="));
    let mut session = session.take().map(str::to_string);
    let mut location = String::new();
    for title in &titles {
        let cookie = credentials.cookie_with(&format!("_session={}", session.as_deref().unwrap()));
        let res = http
            .post(server.url("/notes"))
            .header("Cookie", cookie)
            .header("X-CSRF-Token", &credentials.token)
            .form(&[("title", title.as_str()), ("content", "")])
            .send()
            .await
            .unwrap();
        let headers = pairs(res.headers());
        let status = res.status().as_u16();
        assert_eq!(status, 303, "create {}: {}", &title[..1], res.text().await.unwrap());
        location = header_value(&headers, "location");
        let value = set_cookie(&headers, "_session").expect("the session is rewritten");
        assert!("_session=".len() + value.len() <= 4096, "{} bytes", value.len());
        session = Some(value);
    }
    let res = http
        .get(server.url(&location))
        .header("Cookie", format!("_session={}", session.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let created = |title: &str| format!("Created “{title}”.");
    assert!(page.contains(&created(&titles[4])), "the newest message is shown:\n{page}");
    assert!(!page.contains(&created(&titles[0])), "the oldest was dropped:\n{page}");
    let line = server.wait_for_log("a warning about dropped messages", |l| {
        l.contains("WARN") && l.contains("flash messages were dropped")
    });
    assert!(!line.contains("🦀"), "message texts are not logged: {line}");
}

fn header_value(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name}: {headers:?}"))
}

/// A bad cookie of the same name in front of the valid one (as another path, a sibling
/// subdomain or an attacker on the network can set) does not hide the valid one.
#[tokio::test]
async fn a_bad_cookie_in_front_of_a_valid_one_does_not_hide_it() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let credentials = server.credentials();
    let csrf = credentials
        .cookie
        .split("; ")
        .find_map(|c| c.strip_prefix("_csrf="))
        .expect("a _csrf cookie")
        .to_string();
    let signed_in = credentials.cookie.split("; ").find(|c| c.starts_with("_session="));
    let signed_in = signed_in.expect("a signed-in session").to_string();

    let mut session = None;
    for (case, cookies) in [
        ("bad _csrf first", vec![format!("_csrf=forged; _csrf={csrf}")]),
        (
            "bad _csrf in an earlier Cookie header",
            vec!["_csrf=0.AA.AA".into(), format!("_csrf={csrf}")],
        ),
        ("bad _csrf last", vec![format!("_csrf={csrf}; _csrf=forged")]),
    ] {
        let mut request = http
            .post(server.url("/notes"))
            .header("X-CSRF-Token", &credentials.token)
            .form(&[("title", "Shadowed"), ("content", "")])
            .header("Cookie", &signed_in);
        for cookie in cookies {
            request = request.header("Cookie", cookie);
        }
        let res = request.send().await.unwrap();
        let headers = pairs(res.headers());
        assert_eq!(res.status(), 303, "{case}: {}", res.text().await.unwrap());
        session = set_cookie(&headers, "_session").map(|s| (s, header_value(&headers, "location")));
    }

    let (valid, location) = session.expect("a session cookie");
    for cookie in [
        format!("_session=forged; _session={valid}"),
        format!("_session=1.e30.AA; _session={valid}"),
    ] {
        let res = http.get(server.url(&location)).header("Cookie", &cookie).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap();
        assert!(page.contains("Created “Shadowed”."), "{cookie}: the session was hidden:\n{page}");
    }
    // Control: the forged cookie alone is an empty session: signed out.
    let res = http.get(server.url(&location)).header("Cookie", "_session=forged").send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), 303);
    assert!(!res.text().await.unwrap().contains("Created “Shadowed”."));
}
